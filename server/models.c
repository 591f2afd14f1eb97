/* models.c - loading and starting the served models. */
#include "models.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "gguf.h"
#include "log.h"
#include "tok_load.h"
#include "trn_lora.h"
#include "trn_peft.h"
#include "trn_reward.h"

/* True when path is a Hugging Face folder of a CLIP model. */
static bool models__is_clip(const char *path) {
    char p[4096];
    snprintf(p, sizeof p, "%s/config.json", path);
    json_t *j = json_load_file(p, 0, NULL);
    const char *t = json_string_value(json_object_get(j, "model_type"));
    bool clip = t && strcmp(t, "clip") == 0;
    json_decref(j);
    return clip;
}

static int models__load_clip(served_model *sm, const cfg_model *mc, char *err, size_t errlen) {
    char msg[1024];
    if (clip_load(&sm->clip, mc->path, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "model '%s' (%s): %s", mc->name, mc->path, msg);
        return -1;
    }
    tok_err te = {0};
    if (tok_load(&sm->tok, mc->path, &te) != 0) {
        snprintf(err, errlen, "model '%s' (%s): tokenizer: %s", mc->name, mc->path, te.msg);
        return -1;
    }
    char pp[4096];
    snprintf(pp, sizeof pp, "%s/preprocessor_config.json", mc->path);
    eng_err ee = {0};
    if (image_preproc_load(pp, &sm->preproc, &ee) != 0) {
        snprintf(err, errlen, "model '%s': %s", mc->name, ee.msg);
        return -1;
    }
    sm->n_ctx = clip_hp(sm->clip)->text_ctx;
    sm->normalize = true;
    return 0;
}

/* ---- adapters ------------------------------------------------------------ */

static bool models__adapter_name_ok(const char *s, size_t n) {
    if (n == 0 || n >= CFG_MODEL_NAME_MAX) return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] >= 'a' && s[i] <= 'z') && !(s[i] >= 'A' && s[i] <= 'Z') && !(s[i] >= '0' && s[i] <= '9') &&
            !strchr("._-", s[i]))
            return false;
    return true;
}

static size_t models__trim(const char **s, size_t n) {
    while (n && (**s == ' ' || **s == '\t')) (*s)++, n--;
    while (n && ((*s)[n - 1] == ' ' || (*s)[n - 1] == '\t')) n--;
    return n;
}

/* Adds the slot of one "NAME=DIR" item (n bytes at item) to sm. */
static int models__adapter_slot_add(served_model *sm, const char *item, size_t n, char *err, size_t errlen) {
    const char *mname = sm->cfg->name;
    const char *eq = memchr(item, '=', n);
    const char *name = item, *dir = eq ? eq + 1 : NULL;
    size_t nl = eq ? models__trim(&name, (size_t)(eq - item)) : 0;
    size_t dl = eq ? models__trim(&dir, n - (size_t)(eq - item) - 1) : 0;
    if (!eq || !dl || !models__adapter_name_ok(name, nl)) {
        snprintf(err, errlen, "model '%s': adapters: '%.*s' is not NAME=DIR (NAME of letters, digits, '.', "
                 "'_', '-', at most %d bytes)", mname, (int)n, item, CFG_MODEL_NAME_MAX - 1);
        return -1;
    }
    for (int i = 0; i < sm->n_adapters; i++)
        if (strlen(sm->adapters[i].name) == nl && !strncmp(sm->adapters[i].name, name, nl)) {
            snprintf(err, errlen, "model '%s': adapters: '%.*s' is listed twice", mname, (int)nl, name);
            return -1;
        }
    if (sm->n_adapters == MODELS_MAX_ADAPTERS) {
        snprintf(err, errlen, "model '%s': adapters: more than %d", mname, MODELS_MAX_ADAPTERS);
        return -1;
    }
    adapter_slot *slot = &sm->adapters[sm->n_adapters];
    if (!(slot->dir = strndup(dir, dl))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    memcpy(slot->name, name, nl);
    slot->name[nl] = '\0';
    atomic_init(&slot->requests, 0);
    sm->n_adapters++;
    return 0;
}

/* Reads the PEFT folder of slot into its first version. */
static int models__adapter_load(served_model *sm, adapter_slot *slot, char *err, size_t errlen) {
    char msg[1024];
    trn_lora *lo = NULL;
    int rc = trn_peft_load(&lo, slot->dir, model_arch(sm->m), model_hp(sm->m), msg, sizeof msg);
    if (rc == 0) rc = model_lora_check(sm->m, lo, msg, sizeof msg); /* belt and braces */
    served_adapter *a = rc == 0 ? calloc(1, sizeof *a) : NULL;
    if (!a) {
        snprintf(err, errlen, "model '%s': adapter '%s' (%s): %s", sm->cfg->name, slot->name, slot->dir,
                 rc ? msg : "out of memory");
        trn_lora_free(lo);
        return -1;
    }
    atomic_init(&a->refs, 1);
    a->lora = lo;
    a->name = slot->name;
    a->created = (long)time(NULL);
    slot->cur = a;
    LOG_INF("models", "model '%s': adapter '%s' from %s: rank %d, scale %g, %d sites", sm->cfg->name, slot->name,
            slot->dir, lo->cfg.rank, (double)lo->scale, lo->n_sites);
    return 0;
}

/* The `merge_adapter` key: a PEFT adapter added into the weights
 * (W += scale B A), so the model serves it at the base model's speed. */
static int models__merge_adapter(served_model *sm, const cfg_model *mc, char *err, size_t errlen) {
    if (!mc->merge_adapter || !mc->merge_adapter[0]) return 0;
    trn_lora *lo = NULL;
    model_decoder_view v;
    char msg[1024];
    if (model_decoder_view_get(sm->m, &v) != 0) {
        snprintf(err, errlen, "model '%s': merge_adapter needs a llama or gpt2 decoder", mc->name);
        return -1;
    }
    if (trn_peft_load(&lo, mc->merge_adapter, model_arch(sm->m), model_hp(sm->m), msg, sizeof msg) != 0) {
        snprintf(err, errlen, "model '%s': merge_adapter %s: %s", mc->name, mc->merge_adapter, msg);
        return -1;
    }
    trn_lora_merge(lo, &v, 1.0f);
    LOG_INF("models", "model '%s': merged the adapter in %s (rank %d, scale %g)", mc->name, mc->merge_adapter,
            lo->cfg.rank, (double)lo->scale);
    trn_lora_free(lo);
    return 0;
}

/* The `adapters` key: parses "NAME=DIR,..." and loads each adapter. */
static int models__load_adapters(served_model *sm, const cfg_model *mc, char *err, size_t errlen) {
    const char *list = mc->adapters ? mc->adapters : "";
    if (!*list) return 0;
    if (!sm->m || (model_arch(sm->m) != MODEL_ARCH_LLAMA && model_arch(sm->m) != MODEL_ARCH_GPT2)) {
        snprintf(err, errlen, "model '%s': adapters need a llama or gpt2 decoder", mc->name);
        return -1;
    }
    if (!(sm->adapters = calloc(MODELS_MAX_ADAPTERS, sizeof *sm->adapters))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    pthread_mutex_init(&sm->adapters_lock, NULL);
    sm->adapters_lock_init = true;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        const char *item = p;
        size_t len = models__trim(&item, n);
        if (len && models__adapter_slot_add(sm, item, len, err, errlen)) return -1; /* "a=x,,b=y": skipped */
        p += n + (p[n] == ',');
    }
    for (int i = 0; i < sm->n_adapters; i++)
        if (models__adapter_load(sm, &sm->adapters[i], err, errlen)) return -1;
    return 0;
}

static void models__free_adapters(served_model *sm) {
    for (int i = 0; i < sm->n_adapters; i++) {
        models_adapter_put(sm->adapters[i].cur); /* requests ended with the scheduler */
        free(sm->adapters[i].dir);
    }
    free(sm->adapters);
    if (sm->adapters_lock_init) pthread_mutex_destroy(&sm->adapters_lock);
    sm->adapters = NULL;
    sm->n_adapters = 0;
}

adapter_slot *models_adapter_slot(served_model *sm, const char *name) {
    for (int i = 0; i < sm->n_adapters; i++)
        if (!strcmp(sm->adapters[i].name, name)) return &sm->adapters[i];
    return NULL;
}

served_adapter *models_adapter_get(served_model *sm, const char *name) {
    adapter_slot *slot = models_adapter_slot(sm, name);
    if (!slot) return NULL;
    pthread_mutex_lock(&sm->adapters_lock);
    served_adapter *a = slot->cur;
    if (a) atomic_fetch_add(&a->refs, 1);
    pthread_mutex_unlock(&sm->adapters_lock);
    return a;
}

void models_adapter_put(served_adapter *a) {
    if (!a || atomic_fetch_sub(&a->refs, 1) != 1) return;
    trn_lora_free(a->lora);
    free(a);
}

/* ---- the closed loop's slot ---------------------------------------------- */

/* The reserved slot of a llama/gpt2 decoder (empty until an adapter is
 * activated); a configured adapter may not take its name. */
static int models__loop_slot(served_model *sm, char *err, size_t errlen) {
    if (!sm->m || !sm->decoder || (model_arch(sm->m) != MODEL_ARCH_LLAMA && model_arch(sm->m) != MODEL_ARCH_GPT2))
        return 0;
    if (models_adapter_slot(sm, MODELS_LOOP_SLOT) || models_adapter_slot(sm, MODELS_BASE_NAME)) {
        snprintf(err, errlen, "model '%s': adapters: the names '%s' and '%s' are reserved for the training loop",
                 sm->cfg->name, MODELS_LOOP_SLOT, MODELS_BASE_NAME);
        return -1;
    }
    if (!sm->adapters) {
        if (!(sm->adapters = calloc(MODELS_MAX_ADAPTERS, sizeof *sm->adapters))) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        pthread_mutex_init(&sm->adapters_lock, NULL);
        sm->adapters_lock_init = true;
    }
    if (sm->n_adapters == MODELS_MAX_ADAPTERS) {
        snprintf(err, errlen, "model '%s': adapters: more than %d", sm->cfg->name, MODELS_MAX_ADAPTERS - 1);
        return -1;
    }
    adapter_slot *slot = &sm->adapters[sm->n_adapters++];
    snprintf(slot->name, sizeof slot->name, "%s", MODELS_LOOP_SLOT);
    atomic_init(&slot->requests, 0);
    return 0;
}

int models_adapter_install(served_model *sm, const char *name, trn_lora *lo) {
    adapter_slot *slot = models_adapter_slot(sm, name);
    served_adapter *a = NULL;
    if (!slot || (lo && !(a = calloc(1, sizeof *a)))) {
        trn_lora_free(lo);
        return slot ? -ENOMEM : -ENOENT;
    }
    if (a) {
        atomic_init(&a->refs, 1); /* the slot's */
        a->lora = lo;
        a->name = slot->name;
        a->created = (long)time(NULL);
    }
    pthread_mutex_lock(&sm->adapters_lock);
    served_adapter *old = slot->cur;
    slot->cur = a;
    pthread_mutex_unlock(&sm->adapters_lock);
    models_adapter_put(old); /* freed now, or by the last request holding it */
    return 0;
}

served_adapter *models_adapter_resolve(served_model *sm, const char *name, bool *found) {
    *found = true;
    if (name && !strcmp(name, MODELS_BASE_NAME)) return NULL;
    served_adapter *a = models_adapter_get(sm, name ? name : MODELS_LOOP_SLOT);
    if (name && !a) *found = false;
    return a;
}

/* ---- reward model -------------------------------------------------------- */

/* The metadata lock of every model's reward fields (models.h): held for a
 * few loads and stores only. Order: model_lock, then this one. */
static pthread_mutex_t models__reward_mu = PTHREAD_MUTEX_INITIALIZER;

void models_reward_install(served_model *sm, struct trn_reward *rm, int max_len, int max_prompt_len, bool add_eos) {
    pthread_mutex_lock(&sm->model_lock);
    pthread_mutex_lock(&models__reward_mu);
    struct trn_reward *old = sm->reward;
    sm->reward = rm;
    sm->reward_max_len = max_len;
    sm->reward_max_prompt_len = max_prompt_len;
    sm->reward_add_eos = add_eos;
    pthread_mutex_unlock(&models__reward_mu);
    pthread_mutex_unlock(&sm->model_lock);
    trn_reward_free(old);
}

/* Loads the reward folder dir onto sm's weights: *rm and the truncation
 * recorded in its reward_config.json ("max_length"/"max_prompt_length"
 * from `alignd train reward`, "max_len"/"max_prompt_len" from the training
 * loop; the context and half of it when absent). */
static int models__reward_read(served_model *sm, const char *dir, struct trn_reward **rm, int *max_len,
                               int *max_prompt_len, bool *add_eos, char *err, size_t errlen) {
    char msg[1024];
    json_t *rc = NULL;
    if (!sm->m || trn_reward_load(rm, sm->m, dir, &rc, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "model '%s': reward_model %s: %s", sm->cfg->name, dir,
                 sm->m ? msg : "needs a llama or gpt2 decoder, not clip");
        return -1;
    }
    json_t *jl = json_object_get(rc, "max_length"), *jp = json_object_get(rc, "max_prompt_length");
    if (!jl) jl = json_object_get(rc, "max_len");
    if (!jp) jp = json_object_get(rc, "max_prompt_len");
    json_int_t ml = json_integer_value(jl), mp = json_integer_value(jp);
    *max_len = ml > 1 && ml <= sm->n_ctx ? (int)ml : sm->n_ctx;
    *max_prompt_len = mp > 0 && mp < *max_len ? (int)mp : *max_len / 2;
    *add_eos = !json_is_false(json_object_get(rc, "add_eos"));
    json_t *acc = json_object_get(json_object_get(rc, "result"), "eval_accuracy");
    if (!acc) acc = json_object_get(rc, "eval_accuracy");
    LOG_INF("models", "model '%s': reward model from %s: %s, max length %d (prompt %d), trained to eval accuracy %.3f",
            sm->cfg->name, dir, json_is_true(json_object_get(rc, "lora")) ? "head + LoRA" : "head only",
            *max_len, *max_prompt_len, json_is_number(acc) ? json_number_value(acc) : NAN);
    json_decref(rc);
    return 0;
}

/* The `reward_model` key: a folder from `alignd train reward` on sm's
 * weights, with the truncation it was trained with (repeated when scoring).
 * At load, before any other thread sees sm. */
static int models__load_reward(served_model *sm, const cfg_model *mc, char *err, size_t errlen) {
    const char *dir = mc->reward_model ? mc->reward_model : "";
    if (!*dir) return 0;
    return models__reward_read(sm, dir, &sm->reward, &sm->reward_max_len, &sm->reward_max_prompt_len,
                               &sm->reward_add_eos, err, errlen);
}

int models_reward_load(served_model *sm, const char *dir, char *err, size_t errlen) {
    struct trn_reward *rm = NULL;
    int ml = 0, mp = 0;
    bool eos = true;
    if (models__reward_read(sm, dir, &rm, &ml, &mp, &eos, err, errlen) != 0) return -1;
    models_reward_install(sm, rm, ml, mp, eos);
    return 0;
}

bool models_reward_lock(served_model *sm, models_reward *out) {
    if (!sm->lock_init) return false; /* not started: nothing scores yet */
    pthread_mutex_lock(&sm->model_lock);
    if (!sm->reward) {
        pthread_mutex_unlock(&sm->model_lock);
        return false;
    }
    /* written under model_lock too: stable while it is held */
    *out = (models_reward){.rm = sm->reward, .max_len = sm->reward_max_len,
                           .max_prompt_len = sm->reward_max_prompt_len, .add_eos = sm->reward_add_eos};
    return true;
}

void models_reward_unlock(served_model *sm) { pthread_mutex_unlock(&sm->model_lock); }

bool models_reward_peek(served_model *sm, models_reward *out) {
    pthread_mutex_lock(&models__reward_mu);
    bool present = sm->reward != NULL;
    if (out)
        *out = (models_reward){.rm = NULL, .max_len = sm->reward_max_len,
                               .max_prompt_len = sm->reward_max_prompt_len, .add_eos = sm->reward_add_eos};
    pthread_mutex_unlock(&models__reward_mu);
    return present;
}

bool models_reward_present(served_model *sm) { return models_reward_peek(sm, NULL); }

/* ---- loading ------------------------------------------------------------- */

static int models__load_one(served_model *sm, const cfg_model *mc, char *err, size_t errlen) {
    char msg[1024];
    sm->cfg = mc;
    sm->created = (long)time(NULL);
    if (models__is_clip(mc->path)) {
        if (mc->reward_model && mc->reward_model[0]) return models__load_reward(sm, mc, err, errlen); /* refuses */
        if ((mc->adapters && mc->adapters[0]) || (mc->merge_adapter && mc->merge_adapter[0])) {
            snprintf(err, errlen, "model '%s': adapters need a llama or gpt2 decoder, not clip", mc->name);
            return -1;
        }
        return models__load_clip(sm, mc, err, errlen);
    }
    /* scratch for the larger of a generation step and an embedding pass */
    int n_batch = (int)(mc->max_batch_tokens > mc->embed_batch_tokens ? mc->max_batch_tokens : mc->embed_batch_tokens);
    /* merging an adapter writes the weights: they must be F32 */
    bool f32 = !strcmp(mc->weights, "f32") || (mc->merge_adapter && mc->merge_adapter[0]);
    model_opts mo = {.n_batch = n_batch, .n_ctx = (int)mc->n_ctx, .f32_weights = f32,
                     .kv_f16 = !strcmp(mc->kv_type, "f16")};
    if (model_load_opts(&sm->m, mc->path, &mo, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "model '%s' (%s): %s", mc->name, mc->path, msg);
        return -1;
    }
    tok_err te = {0};
    if (tok_load(&sm->tok, mc->path, &te) != 0) {
        snprintf(err, errlen, "model '%s' (%s): tokenizer: %s", mc->name, mc->path, te.msg);
        return -1;
    }
    if (tok_n_vocab(sm->tok) > (size_t)model_hp(sm->m)->n_vocab) {
        snprintf(err, errlen, "model '%s' (%s): the tokenizer has %zu tokens but the model only %d",
                 mc->name, mc->path, tok_n_vocab(sm->tok), model_hp(sm->m)->n_vocab);
        return -1;
    }
    sm->n_ctx = model_n_ctx(sm->m);
    sm->decoder = model_get_kind(sm->m) == MODEL_KIND_DECODER;
    if (models__merge_adapter(sm, mc, err, errlen) != 0) return -1;
    if (models__load_adapters(sm, mc, err, errlen) != 0) return -1;
    if (models__load_reward(sm, mc, err, errlen) != 0) return -1;
    /* embedding pooling: the model's own settings, then the configuration */
    char msg2[512];
    int max_seq = 0;
    bool st_normalize = true;
    if (pool_config_load(mc->path, &sm->pool, &st_normalize, &max_seq, msg2, sizeof msg2) != 0) {
        sm->pool = sm->decoder ? POOL_LAST : POOL_MEAN;
        st_normalize = true;
    }
    if (!strcmp(mc->embed_pooling, "mean")) sm->pool = POOL_MEAN;
    else if (!strcmp(mc->embed_pooling, "cls")) sm->pool = POOL_CLS;
    else if (!strcmp(mc->embed_pooling, "last")) sm->pool = POOL_LAST;
    sm->normalize = !strcmp(mc->embed_normalize, "auto") ? st_normalize : !strcmp(mc->embed_normalize, "true");
    /* sentence-transformers' max_seq_length bounds an encoder's inputs */
    if (!sm->decoder && max_seq > 0 && max_seq < sm->n_ctx) sm->n_ctx = max_seq;
    tok_special_text(sm->tok, tok_bos(sm->tok), sm->bos_text, sizeof sm->bos_text);
    tok_special_text(sm->tok, tok_eos(sm->tok), sm->eos_text, sizeof sm->eos_text);
    /* the configured template wins; a bad configured name is an error */
    eng_err ce = {0};
    if (mc->chat_template && mc->chat_template[0]) {
        if (chat_template_detect(mc->chat_template, &sm->chat_kind, &ce) != 0) {
            snprintf(err, errlen, "model '%s': chat_template: %s", mc->name, ce.msg);
            return -1;
        }
        sm->has_chat = true;
        return 0;
    }
    char *jinja = tok_load_chat_template(mc->path);
    sm->has_chat = chat_template_detect(jinja, &sm->chat_kind, &ce) == 0;
    if (!sm->has_chat) snprintf(sm->chat_error, sizeof sm->chat_error, "model '%s': %s", mc->name, ce.msg);
    free(jinja);
    return 0;
}

int models_load(models_registry *r, const cfg *c, char *err, size_t errlen) {
    memset(r, 0, sizeof *r);
    if (c->n_models == 0) return 0;
    r->items = calloc((size_t)c->n_models, sizeof *r->items);
    if (!r->items) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->n = c->n_models;
    for (int i = 0; i < c->n_models; i++) {
        double t0 = (double)clock() / CLOCKS_PER_SEC;
        if (models__load_one(&r->items[i], &c->models[i], err, errlen) != 0 ||
            (c->training_enabled && models__loop_slot(&r->items[i], err, errlen) != 0)) {
            models_free(r);
            return -1;
        }
        const served_model *sm = &r->items[i];
        if (sm->clip) {
            LOG_INF("models", "loaded '%s' from %s: clip, image %d, text context %d, embeddings %d",
                    sm->cfg->name, sm->cfg->path, clip_hp(sm->clip)->image_size, sm->n_ctx,
                    clip_hp(sm->clip)->proj_dim);
            continue;
        }
        LOG_INF("models", "loaded '%s' from %s: %s, %d layers, vocab %d, context %d, %.1f MiB "
                          "weights, chat template %s (%.1f s CPU)",
                sm->cfg->name, sm->cfg->path, model_arch_name(model_arch(sm->m)),
                model_hp(sm->m)->n_layer, model_hp(sm->m)->n_vocab, sm->n_ctx,
                model_weight_bytes(sm->m) / 1048576.0,
                sm->has_chat ? chat_template_name(sm->chat_kind) : "none",
                (double)clock() / CLOCKS_PER_SEC - t0);
    }
    return 0;
}

int models_start(models_registry *r, char *err, size_t errlen) {
    for (int i = 0; i < r->n; i++) {
        served_model *sm = &r->items[i];
        const cfg_model *mc = sm->cfg;
        char msg[512];
        pthread_mutex_init(&sm->model_lock, NULL);
        sm->lock_init = true;
        if (sm->clip) {
            clip_batcher_opts co = {
                .max_batch_images = 16,
                .max_wait_ms = (int)mc->embed_max_wait_ms,
                .queue_size = (int)mc->queue_size,
                .cache_entries = 4096,
                .limits = {.max_bytes = 20u << 20, .max_pixels = 40000000},
                .preproc = sm->preproc,
            };
            if (clip_batcher_create(&sm->clipb, sm->clip, &co, msg, sizeof msg) != 0) {
                snprintf(err, errlen, "model '%s': %s", mc->name, msg);
                return -1;
            }
            continue;
        }
        emb_opts eo = {
            .max_batch_tokens = (int)mc->embed_batch_tokens,
            .max_wait_ms = (int)mc->embed_max_wait_ms,
            .queue_size = (int)mc->queue_size,
            .pool = sm->pool,
            .normalize = sm->normalize,
            .model_lock = sm->decoder ? &sm->model_lock : NULL,
        };
        if (eo.max_batch_tokens > model_n_batch(sm->m)) eo.max_batch_tokens = model_n_batch(sm->m);
        if (eo.max_batch_tokens < sm->n_ctx) { /* one full-length input must fit a pass */
            snprintf(err, errlen, "model '%s': embed_batch_tokens (%d) is below the context (%d)",
                     mc->name, eo.max_batch_tokens, sm->n_ctx);
            return -1;
        }
        if (emb_create(&sm->emb, sm->m, &eo, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "model '%s': %s", mc->name, msg);
            return -1;
        }
        if (!sm->decoder) continue;
        sched_opts o = {
            .max_seqs = (int)mc->max_seqs,
            .max_batch_tokens = (int)mc->max_batch_tokens,
            .kv_budget = (int)mc->kv_budget,
            .kv_block_size = (int)mc->kv_block_size,
            .queue_size = (int)mc->queue_size,
            .prefix_cache = (int)mc->prefix_cache,
            .n_ctx = sm->n_ctx,
            .model_lock = &sm->model_lock,
        };
        if (sched_create(&sm->sched, sm->m, &o, msg, sizeof msg) != 0) {
            snprintf(err, errlen, "model '%s': %s", mc->name, msg);
            return -1;
        }
    }
    return 0;
}

void models_free(models_registry *r) {
    for (int i = 0; i < r->n; i++) {
        sched_free(r->items[i].sched);
        emb_free(r->items[i].emb);
        clip_batcher_free(r->items[i].clipb);
        clip_free(r->items[i].clip);
        if (r->items[i].lock_init) pthread_mutex_destroy(&r->items[i].model_lock);
        models__free_adapters(&r->items[i]);
        trn_reward_free(r->items[i].reward); /* before the model it borrows */
        tok_free(r->items[i].tok);
        model_free(r->items[i].m);
    }
    free(r->items);
    memset(r, 0, sizeof *r);
}

served_model *models_find(const models_registry *r, const char *name) {
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->items[i].cfg->name, name) == 0) return &r->items[i];
    return NULL;
}
