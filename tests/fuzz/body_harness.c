/* body_harness.c - the in-process daemon of the request-body fuzz targets
 * (body_harness.h).
 *
 * How a request runs without a server: the request object is the real one
 * (http__req_new with no MHD connection: libmicrohttpd answers "no" to every
 * look-up and queue on a NULL connection, so headers such as
 * Idempotency-Key read as absent), matched by the real router, its body
 * parsed as the dispatcher parses it (server/http_server.c). Before the
 * handler runs, the request is marked as answered (req->responded): every
 * reply the handler builds (its JSON error body included) is then dropped by
 * http_req.c, and http_defer / http_stream_sse return NULL. That is where
 * each handler hands its work to the engine (scheduler, embedder, CLIP
 * batcher, reward-scoring thread), so every path stops after the request's
 * parsing, validation and tokenization, and before anything is computed; a
 * handler frees what it built, so a leak there is a finding too.
 *
 * What the handlers reach through http_req_app is real as far as they go:
 * the configuration (defaults + the [model.*] sections below), an SQLite
 * store in memory (feedback inserts run; reopened now and then to bound its
 * size), real tokenizers and chat templates, a real scheduler per decoder
 * (idle: api_gen_start reads its queue counters), adapter slots and
 * references. Stand-ins: the model structs carry only their
 * hyper-parameters (no weights: nothing runs a forward pass), the reward
 * models and the trainer are placeholders that are only compared with NULL
 * (the reward scoring runs on a work thread after http_defer; training
 * submits need a model with a training loop, which none has here). Logs go
 * to /dev/null (FUZZ_BODY_LOG=1: to stderr). */
#include "body_harness.h"

#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "clip.h"
#include "http_internal.h"
#include "log.h"
#include "routes.h"
#include "store.h"
#include "tok.h"
#include "tok_load.h"

#define FUZZ_N_MODELS 5
#define FUZZ_STORE_REOPEN 4096 /* requests between fresh in-memory stores */

static cfg g_cfg;
static app g_app;
static http_server g_srv;
static served_model g_models[FUZZ_N_MODELS];
static model g_fake[FUZZ_N_MODELS];
static adapter_slot g_slot_a1;
/* Placeholders: never dereferenced on the paths the harness lets run. */
static max_align_t g_reward_stub, g_trainer_stub;
static unsigned long g_n_requests;

static void fuzz__die(const char *what, const char *msg) {
    fprintf(stderr, "body_harness: %s: %s\n", what, msg);
    abort();
}

/* GPT-2's byte alphabet, a few merges, ChatML's specials. */
static tok *fuzz__bpe(void) {
    static char bytes[256][5];
    const char *v[256 + 16];
    int32_t types[256 + 16];
    for (uint32_t b = 0; b < 256; b++) {
        tok_bpe_byte_text((uint8_t)b, bytes[b]);
        v[b] = bytes[b];
        types[b] = TOK_TYPE_NORMAL;
    }
    const char *more[] = {"\xC4\xA0t", "he", "\xC4\xA0the", "in", "er", "an", "\xC4\xA0\x61",
                          "<|endoftext|>", "<|im_start|>", "<|im_end|>"};
    const char *merges[] = {"\xC4\xA0 t", "h e", "\xC4\xA0t he", "i n", "e r", "a n", "\xC4\xA0 a"};
    size_t n = 256;
    for (size_t i = 0; i < sizeof more / sizeof *more; i++, n++) {
        v[n] = more[i];
        types[n] = more[i][0] == '<' ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL;
    }
    tok_options o;
    tok_options_init(&o, TOK_KIND_BPE);
    tok *t = NULL;
    tok_err e;
    if (tok_create_bpe(&t, v, n, merges, sizeof merges / sizeof *merges, types, &o, &e)) fuzz__die("BPE", e.msg);
    return t;
}

/* SentencePiece with byte fallback, BOS added. */
static tok *fuzz__spm(void) {
    static char bytes[256][7];
    const char *v[3 + 256 + 16];
    float sc[3 + 256 + 16];
    int32_t ty[3 + 256 + 16];
    size_t n = 0;
    v[n] = "<unk>", ty[n] = TOK_TYPE_UNKNOWN, sc[n++] = 0;
    v[n] = "<s>", ty[n] = TOK_TYPE_CONTROL, sc[n++] = 0;
    v[n] = "</s>", ty[n] = TOK_TYPE_CONTROL, sc[n++] = 0;
    for (int b = 0; b < 256; b++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        v[n] = bytes[b], ty[n] = TOK_TYPE_BYTE, sc[n++] = 0;
    }
    const char *more[] = {"\xE2\x96\x81", "a", "e", "h", "t", "n", "[", "]", "I", "S", "T",
                          "\xE2\x96\x81t", "he", "\xE2\x96\x81the", "INST", "[INST]"};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++)
        v[n] = more[i], ty[n] = TOK_TYPE_NORMAL, sc[n++] = -(float)i;
    tok *t = NULL;
    tok_err e;
    if (tok_create_spm(&t, v, sc, ty, n, NULL, &e)) fuzz__die("SPM", e.msg);
    return t;
}

static tok *fuzz__wordpiece(void) {
    const char *v[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "##s", "a", "##a", "un",
                       "##aff", "##able", ",", ".", "!", "e", "i", "##i", "\xE4\xB8\xAD"};
    tok *t = NULL;
    tok_err e;
    if (tok_create_wordpiece(&t, v, sizeof v / sizeof *v, NULL, NULL, NULL, &e)) fuzz__die("WordPiece", e.msg);
    return t;
}

static tok *fuzz__clip_tok(void) {
    static char bytes[512][12];
    const char *v[512 + 16];
    for (uint32_t b = 0; b < 256; b++) {
        size_t l = tok_bpe_byte_text((uint8_t)b, bytes[b]);
        memcpy(bytes[256 + b], bytes[b], l);
        memcpy(bytes[256 + b] + l, "</w>", 5);
        v[b] = bytes[b];
        v[256 + b] = bytes[256 + b];
    }
    const char *more[] = {"th", "the</w>", "a</w>", "photo</w>", "of</w>", "<|startoftext|>", "<|endoftext|>"};
    const char *merges[] = {"t h", "th e</w>"};
    size_t n = 512;
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) v[n++] = more[i];
    tok *t = NULL;
    tok_err e;
    if (tok_create_clip(&t, v, n, merges, sizeof merges / sizeof *merges, NULL, NULL, &e)) fuzz__die("CLIP BPE", e.msg);
    return t;
}

/* A model struct with hyper-parameters and no weights. */
static model *fuzz__fake_model(int i, const tok *t, model_arch_id arch, int n_ctx) {
    model *m = &g_fake[i];
    memset(m, 0, sizeof *m);
    m->arch = arch;
    m->fmt = MODEL_FMT_GGUF;
    m->hp = (model_hparams){.n_vocab = (int)tok_n_vocab(t), .n_ctx_train = n_ctx, .n_embd = 8, .n_layer = 1,
                            .n_head = 1, .n_head_kv = 1, .head_dim = 8, .n_ff = 8, .norm_eps = 1e-5f,
                            .rope_theta = 10000, .rope_freq_scale = 1, .bos_id = tok_bos(t), .eos_id = tok_eos(t)};
    m->n_batch = 16;
    m->n_ctx = n_ctx;
    return m;
}

static served_model *fuzz__model(int i, const char *name, tok *t, int n_ctx) {
    served_model *sm = &g_models[i];
    char err[256];
    sm->cfg = cfg_model_get(&g_cfg, name, false, err, sizeof err);
    if (!sm->cfg) fuzz__die(name, err);
    sm->tok = t;
    sm->n_ctx = n_ctx;
    sm->created = 1700000000;
    pthread_mutex_init(&sm->model_lock, NULL);
    sm->lock_init = true;
    pthread_mutex_init(&sm->adapters_lock, NULL);
    sm->adapters_lock_init = true;
    tok_special_text(t, tok_bos(t), sm->bos_text, sizeof sm->bos_text);
    tok_special_text(t, tok_eos(t), sm->eos_text, sizeof sm->eos_text);
    snprintf(sm->chat_error, sizeof sm->chat_error, "model '%s': no chat template", name);
    return sm;
}

static void fuzz__decoder(served_model *sm, int i, model_arch_id arch) {
    sm->m = fuzz__fake_model(i, sm->tok, arch, sm->n_ctx);
    sm->decoder = true;
    sm->pool = POOL_LAST;
    sm->normalize = true;
    sched_opts so = {.max_seqs = 1, .max_batch_tokens = 16, .queue_size = 1, .n_ctx = sm->n_ctx,
                     .kv_block_size = 16, .model_lock = &sm->model_lock};
    char err[256];
    if (sched_create(&sm->sched, sm->m, &so, err, sizeof err)) fuzz__die("scheduler", err);
}

static void fuzz__store_open(void) {
    char err[512];
    if (store_open(&g_app.store, ":memory:", err, sizeof err)) fuzz__die("store", err);
}

static void fuzz__init(void) {
    static bool done;
    if (done) return;
    done = true;
    char err[1024];
    /* FUZZ_BODY_LOG=1: the daemon's log on stderr (each dropped answer
     * logs its status: "second reply (status 400) ignored") */
    const char *show = getenv("FUZZ_BODY_LOG");
    if (log_init(show && *show == '1' ? NULL : "/dev/null", LOG_DEBUG, err, sizeof err)) fuzz__die("log", err);
    if (cfg_init(&g_cfg)) fuzz__die("cfg", "cfg_init failed");
    const char *ini = "[model.gpt]\npath = /nonexistent/gpt.gguf\n"
                      "[model.llama]\npath = /nonexistent/llama.gguf\n"
                      "[model.plain]\npath = /nonexistent/plain.gguf\n"
                      "[model.bert]\npath = /nonexistent/bert.gguf\n"
                      "[model.clip]\npath = /nonexistent/clip\n";
    if (cfg_load_string(&g_cfg, ini, "body_harness", err, sizeof err)) fuzz__die("cfg", err);
    for (int i = 0; i < g_cfg.n_models; i++) g_cfg.models[i].queue_size = 100000; /* never 429 */

    tok *bpe = fuzz__bpe();
    served_model *gpt = fuzz__model(0, "gpt", bpe, 128);
    fuzz__decoder(gpt, 0, MODEL_ARCH_GPT2);
    gpt->has_chat = true;
    gpt->chat_kind = CHAT_TEMPLATE_CHATML;
    gpt->reward = (struct trn_reward *)&g_reward_stub;
    gpt->reward_max_len = 96, gpt->reward_max_prompt_len = 64, gpt->reward_add_eos = true;
    snprintf(g_slot_a1.name, sizeof g_slot_a1.name, "a1");
    g_slot_a1.cur = calloc(1, sizeof *g_slot_a1.cur);
    if (!g_slot_a1.cur) fuzz__die("adapter", "out of memory");
    atomic_init(&g_slot_a1.cur->refs, 1); /* the slot's reference: never freed */
    g_slot_a1.cur->name = g_slot_a1.name;
    gpt->adapters = &g_slot_a1;
    gpt->n_adapters = 1;

    served_model *llama = fuzz__model(1, "llama", fuzz__spm(), 64);
    fuzz__decoder(llama, 1, MODEL_ARCH_LLAMA);
    llama->has_chat = true;
    llama->chat_kind = CHAT_TEMPLATE_LLAMA2;
    llama->reward = (struct trn_reward *)&g_reward_stub;
    llama->reward_max_len = 64, llama->reward_max_prompt_len = 48, llama->reward_add_eos = false;

    served_model *plain = fuzz__model(2, "plain", bpe, 32);
    fuzz__decoder(plain, 2, MODEL_ARCH_GPT2);

    served_model *bert = fuzz__model(3, "bert", fuzz__wordpiece(), 16);
    bert->m = fuzz__fake_model(3, bert->tok, MODEL_ARCH_BERT, 16);
    bert->pool = POOL_MEAN;
    bert->normalize = true;

    served_model *clip = fuzz__model(4, "clip", fuzz__clip_tok(), 16);
    clip_hparams hp = {.text_ctx = 16, .text_vocab = (int)tok_n_vocab(clip->tok), .text_width = 8,
                       .vision_width = 8, .image_size = 4, .patch_size = 2, .proj_dim = 4,
                       .eot_id = tok_eos(clip->tok), .text_heads = 1, .text_ff = 8, .vision_heads = 1,
                       .vision_ff = 8};
    if (clip_create_random(&clip->clip, &hp, 1, err, sizeof err)) fuzz__die("clip", err);

    g_app.cfg = &g_cfg;
    g_app.models = (models_registry){.items = g_models, .n = FUZZ_N_MODELS};
    g_app.trainer = (trainer *)&g_trainer_stub;
    g_app.prompts = json_array();
    g_app.state = APP_READY;
    fuzz__store_open();

    g_srv.opts.app = &g_app;
    g_srv.opts.routes = api_routes;
    g_srv.opts.n_routes = api_routes_count;
    g_srv.opts.max_body_size = (size_t)g_cfg.server_max_body_size;
    snprintf(g_srv.id_prefix, sizeof g_srv.id_prefix, "fuzz");
}

void fuzz_body_request(const char *method, const char *path, const uint8_t *data, size_t size) {
    fuzz__init();
    if (++g_n_requests % FUZZ_STORE_REOPEN == 0) {
        store_close(g_app.store);
        fuzz__store_open();
    }
    http_req *req = http__req_new(&g_srv, NULL, method, path);
    if (!req) return;
    char allow[128];
    if (router_match_path(api_routes, api_routes_count, 0, method, path, &req->match, allow, sizeof allow) !=
        ROUTER_FOUND)
        fuzz__die(method, path);
    const route *r = req->route = req->match.route;
    for (int i = 0; i < req->match.n_params; i++)
        req->params[i] = strndup(req->match.params[i].value, req->match.params[i].value_len);
    req->body_limit = r->body_limit ? r->body_limit : g_srv.opts.max_body_size;
    /* the dispatcher answers these itself: 413, 400 (empty), 400 invalid_json */
    if (size == 0 || size > req->body_limit) goto out;
    if (!(req->body = malloc(size + 1))) goto out;
    memcpy(req->body, data, size);
    req->body[size] = '\0';
    req->body_len = size;
    req->body_cap = size + 1;
    if (r->body == ROUTE_BODY_JSON) {
        json_error_t jerr;
        req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req->json) goto out;
    }
    req->dispatched = true;
    req->responded = true; /* every answer is dropped; defer / stream give NULL */
    r->handler(req);
out:
    http__req_free(req);
}
