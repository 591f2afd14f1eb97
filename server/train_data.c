/* train_data.c - preference pairs and LoRA options of the training
 * commands (train_data.h). */
#include "train_data.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "tok_load.h"

int train_base_load(train_base *b, const char *path, const char *chat_template, int n_batch,
                    char *err, size_t errlen)
{
    memset(b, 0, sizeof(*b));
    char msg[1024];
    model_opts mo = {.n_batch = n_batch, .f32_weights = true}; /* training reads F32 */
    tok_err te = {0};
    if (model_load_opts(&b->m, path, &mo, msg, sizeof msg)) {
        snprintf(err, errlen, "%s", msg);
        return -EINVAL;
    }
    if (tok_load(&b->t, path, &te)) {
        snprintf(err, errlen, "%s: tokenizer: %s", path, te.msg);
        return -EINVAL;
    }
    tok_special_text(b->t, tok_bos(b->t), b->bos, sizeof b->bos);
    tok_special_text(b->t, tok_eos(b->t), b->eos, sizeof b->eos);
    b->pt = (pref_tok){.t = b->t, .add_bos = tok_adds_bos(b->t), .eos_id = tok_eos(b->t),
                       .bos_text = b->bos, .eos_text = b->eos};
    char *jinja = chat_template ? NULL : tok_load_chat_template(path);
    eng_err ce = {0};
    b->pt.has_chat = (chat_template || jinja) &&
                     chat_template_detect(chat_template ? chat_template : jinja,
                                          &b->pt.chat_kind, &ce) == 0;
    free(jinja);
    if (chat_template && !b->pt.has_chat) {
        snprintf(err, errlen, "--chat-template: %s", ce.msg);
        return -EINVAL;
    }
    return 0;
}

void train_base_free(train_base *b)
{
    if (!b)
        return;
    tok_free(b->t);
    model_free(b->m);
    memset(b, 0, sizeof(*b));
}

typedef struct train_data__ctx {
    pref_set *s;
    const pref_tok *pt;
    const pref_opts *o;
    char *err;
    size_t errlen;
} train_data__ctx;

/* One feedback row: text as it is; the messages form stores prompt, chosen
 * and rejected as JSON arrays of messages (api/feedback.c). */
static int train_data__row(void *ud, const store_feedback *row)
{
    train_data__ctx *c = ud;
    bool eval = row->split && !strcmp(row->split, "eval");
    char msg[512];
    int rc;
    if (!row->format || strcmp(row->format, "messages")) {
        rc = pref_add_text(c->s, c->pt, row->prompt, row->chosen, row->rejected, eval, 0, c->o,
                           msg, sizeof msg);
    } else {
        json_t *p = json_loads(row->prompt, 0, NULL);
        json_t *ch = json_loads(row->chosen, 0, NULL);
        json_t *rj = json_loads(row->rejected, 0, NULL);
        rc = pref_add_messages(c->s, c->pt, p, ch, rj, eval, 0, c->o, msg, sizeof msg);
        json_decref(p), json_decref(ch), json_decref(rj);
    }
    if (rc)
        snprintf(c->err, c->errlen, "feedback %s: %s", row->id ? row->id : "?", msg);
    return rc;
}

static int train_data__store(pref_set *s, const char *path, const pref_tok *pt,
                             const pref_opts *o, char *err, size_t errlen)
{
    store *st = NULL;
    int rc = store_open(&st, path, err, errlen);
    if (rc)
        return rc;
    train_data__ctx c = {.s = s, .pt = pt, .o = o, .err = err, .errlen = errlen};
    store_filter f = {.kind = "pair"};
    char msg[512] = "";
    rc = store_feedback_each(st, &f, train_data__row, &c, msg, sizeof msg);
    if (rc && msg[0] && !err[0])
        snprintf(err, errlen, "%s: %s", path, msg);
    store_close(st);
    if (!rc && s->n == 0) {
        snprintf(err, errlen, "%s: no preference pairs (kind \"pair\") in the store", path);
        rc = -EINVAL;
    }
    return rc;
}

int train_data_load(pref_set *s, const train_data_src *src, const pref_tok *pt,
                    const pref_opts *o, char *err, size_t errlen)
{
    err[0] = '\0';
    if (!src->jsonl == !src->store) {
        snprintf(err, errlen, "give the pairs with exactly one of --data FILE.jsonl and "
                 "--store PATH");
        return -EINVAL;
    }
    if (src->jsonl)
        return pref_load_jsonl(s, src->jsonl, pt, o, err, errlen);
    return train_data__store(s, src->store, pt, o, err, errlen);
}

int train_pref_opts(pref_opts *po, double max_len, double max_prompt_len, double eval_frac,
                    bool no_eos, const model *m, char *err, size_t errlen)
{
    pref_opts_default(po);
    int n_ctx = model_n_ctx(m);
    po->max_len = max_len > 0 ? (int)max_len : (n_ctx < 512 ? n_ctx : 512);
    po->max_prompt_len = max_prompt_len > 0 ? (int)max_prompt_len
                         : po->max_len / 2 < 128 ? po->max_len / 2 : 128;
    po->eval_frac = eval_frac;
    po->add_eos = !no_eos;
    if (po->max_len > n_ctx) {
        snprintf(err, errlen, "--max-len %d is beyond the model's context of %d", po->max_len,
                 n_ctx);
        return -EINVAL;
    }
    if (po->max_prompt_len >= po->max_len) {
        snprintf(err, errlen, "--max-prompt-len %d must be below --max-len %d",
                 po->max_prompt_len, po->max_len);
        return -EINVAL;
    }
    return 0;
}

void train_lora_opts_default(train_lora_opts *o)
{
    *o = (train_lora_opts){.r = 8, .alpha = 16, .dropout = 0, .targets = NULL};
}

int train_lora_cfg(trn_lora_cfg *out, const train_lora_opts *o, const model *m, uint64_t seed,
                   char *err, size_t errlen)
{
    const char *targets = o->targets;
    if (!targets)
        targets = model_arch(m) == MODEL_ARCH_GPT2 ? "qkv" : "q,v";
    *out = (trn_lora_cfg){.rank = (int)o->r, .alpha = (float)o->alpha,
                          .dropout = (float)o->dropout, .seed = seed};
    return trn_lora_targets_parse(targets, &out->targets, err, errlen);
}
