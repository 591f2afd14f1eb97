/* pref.c - preference pairs: tokenization, truncation, JSONL, batches
 * (pref.h). */
#include "pref.h"

#include "fnv.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pref_opts_default(pref_opts *o)
{
    *o = (pref_opts){.max_prompt_len = 128, .max_len = 512, .eval_frac = 0.1, .add_eos = true};
}

void pref_set_free(pref_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->p[i].ids);
    free(s->p);
    memset(s, 0, sizeof(*s));
}

/* Encodes text into a new array (*ids, *n); bos/eos added when >= 0. */
static int pref__encode(const pref_tok *pt, const char *text, unsigned flags, int32_t bos,
                        int32_t eos, int32_t **ids, int *n, char *err, size_t errlen)
{
    size_t len = strlen(text), cap = len + 4, got = 0;
    int32_t *out = malloc(cap * sizeof(int32_t));
    tok_err te = {0};
    if (!out)
        goto nomem;
    size_t at = bos >= 0 ? 1 : 0;
    if (bos >= 0)
        out[0] = bos;
    if (tok_encode(pt->t, text, len, flags, out + at, cap - at - 1, &got, &te)) {
        snprintf(err, errlen, "tokenizing: %s", te.msg);
        free(out);
        return -EINVAL;
    }
    got += at;
    if (eos >= 0)
        out[got++] = eos;
    *ids = out;
    *n = (int)got;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory tokenizing %zu bytes", len);
    return -ENOMEM;
}

/* Appends a pair from its three token arrays (taken over), truncating. */
static int pref__push(pref_set *s, int32_t *pr, int np, int32_t *ch, int nc, int32_t *rj,
                      int nr, bool eval, float margin, const pref_opts *o, char *err,
                      size_t errlen)
{
    int rc = 0;
    bool trunc = false;
    int keep_p = np, off_p = 0;
    if (np > o->max_prompt_len) { /* keep the end of the prompt */
        off_p = np - o->max_prompt_len;
        keep_p = o->max_prompt_len;
        trunc = true;
    }
    int room = o->max_len - keep_p;
    if (room < 1 || nc < 1 || nr < 1) {
        s->n_skipped++;
        goto out;
    }
    if (nc > room || nr > room) /* keep the start of each response */
        trunc = true;
    nc = nc < room ? nc : room;
    nr = nr < room ? nr : room;
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        pref_pair *p = realloc(s->p, (size_t)cap * sizeof(*p));
        if (!p)
            goto nomem;
        s->p = p;
        s->cap = cap;
    }
    pref_pair *p = &s->p[s->n];
    p->ids = malloc((size_t)(keep_p + nc + nr) * sizeof(int32_t));
    if (!p->ids)
        goto nomem;
    memcpy(p->ids, pr + off_p, (size_t)keep_p * sizeof(int32_t));
    memcpy(p->ids + keep_p, ch, (size_t)nc * sizeof(int32_t));
    memcpy(p->ids + keep_p + nc, rj, (size_t)nr * sizeof(int32_t));
    p->n_prompt = keep_p;
    p->n_chosen = nc;
    p->n_rejected = nr;
    p->eval = eval;
    p->truncated = trunc;
    p->margin = margin;
    s->n++;
    s->n_eval += eval;
    s->n_truncated += trunc;
    goto out;
nomem:
    snprintf(err, errlen, "out of memory for preference pairs");
    rc = -ENOMEM;
out:
    free(pr), free(ch), free(rj);
    return rc;
}

static int pref__check_opts(const pref_opts *o, char *err, size_t errlen)
{
    if (o->max_prompt_len < 1 || o->max_len < 2 || o->max_prompt_len >= o->max_len ||
        !(o->eval_frac >= 0 && o->eval_frac < 1)) {
        snprintf(err, errlen, "preference data: need 1 <= max_prompt_len < max_len and "
                 "eval_frac in [0, 1) (got %d, %d, %g)", o->max_prompt_len, o->max_len,
                 o->eval_frac);
        return -EINVAL;
    }
    return 0;
}

int pref_add_text(pref_set *s, const pref_tok *pt, const char *prompt, const char *chosen,
                  const char *rejected, bool eval, float margin, const pref_opts *o, char *err,
                  size_t errlen)
{
    int rc = pref__check_opts(o, err, errlen);
    if (rc)
        return rc;
    int32_t bos = pt->add_bos ? tok_bos(pt->t) : -1;
    int32_t eos = o->add_eos ? pt->eos_id : -1;
    int32_t *pr = NULL, *ch = NULL, *rj = NULL;
    int np = 0, nc = 0, nr = 0;
    if ((rc = pref__encode(pt, prompt, 0, bos, -1, &pr, &np, err, errlen)) ||
        (rc = pref__encode(pt, chosen, 0, -1, eos, &ch, &nc, err, errlen)) ||
        (rc = pref__encode(pt, rejected, 0, -1, eos, &rj, &nr, err, errlen))) {
        free(pr), free(ch), free(rj);
        return rc;
    }
    return pref__push(s, pr, np, ch, nc, rj, nr, eval, margin, o, err, errlen);
}

/* ---- the conversational form ---------------------------------------------- */

/* Messages of a JSON array into chat_message views (borrowed from j), after
 * `prefix` messages; names the field on error. */
static int pref__msgs(const json_t *j, const char *field, chat_message *out, size_t cap,
                      size_t at, size_t *n, char *err, size_t errlen)
{
    if (!json_is_array(j) || json_array_size(j) == 0 || at + json_array_size(j) > cap) {
        snprintf(err, errlen, "%s: expected a non-empty array of at most %zu messages", field,
                 cap - at);
        return -EINVAL;
    }
    for (size_t i = 0; i < json_array_size(j); i++) {
        const json_t *m = json_array_get(j, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        const char *content = json_string_value(json_object_get(m, "content"));
        if (!role || !content) {
            snprintf(err, errlen, "%s[%zu]: needs string role and content", field, i);
            return -EINVAL;
        }
        out[at + i] = (chat_message){.role = role, .content = content};
    }
    *n = at + json_array_size(j);
    return 0;
}

/* The text a response adds after the rendered prompt (its end of turn
 * included): render(prompt + response) minus render(prompt, generation
 * prompt). */
static int pref__response_text(const pref_tok *pt, chat_message *msgs, size_t n_prompt,
                               const json_t *resp, const char *field, const char *ptext,
                               char **out, char *err, size_t errlen)
{
    size_t n = 0, len = 0;
    int rc = pref__msgs(resp, field, msgs, 64, n_prompt, &n, err, errlen);
    if (rc)
        return rc;
    for (size_t i = n_prompt; i < n; i++)
        if (strcmp(msgs[i].role, "assistant")) {
            snprintf(err, errlen, "%s[%zu]: role must be assistant", field, i - n_prompt);
            return -EINVAL;
        }
    char *full = NULL;
    eng_err ce = {0};
    if (chat_render(pt->chat_kind, msgs, n, false, pt->bos_text, pt->eos_text, &full, &len,
                    &ce)) {
        snprintf(err, errlen, "%s: %s", field, ce.msg);
        return -EINVAL;
    }
    size_t pl = strlen(ptext);
    if (strncmp(full, ptext, pl) != 0) {
        snprintf(err, errlen, "%s: the chat template does not render the prompt as a prefix of "
                 "the conversation", field);
        free(full);
        return -EINVAL;
    }
    memmove(full, full + pl, len - pl + 1);
    *out = full;
    return 0;
}

int pref_add_messages(pref_set *s, const pref_tok *pt, const json_t *prompt,
                      const json_t *chosen, const json_t *rejected, bool eval, float margin,
                      const pref_opts *o, char *err, size_t errlen)
{
    if (!pt->has_chat) {
        snprintf(err, errlen, "messages: the model has no chat template");
        return -EINVAL;
    }
    int rc = pref__check_opts(o, err, errlen);
    if (rc)
        return rc;
    chat_message msgs[64];
    size_t np = 0, plen = 0;
    char *ptext = NULL, *ctext = NULL, *rtext = NULL;
    eng_err ce = {0};
    if ((rc = pref__msgs(prompt, "prompt", msgs, 64, 0, &np, err, errlen)))
        return rc;
    if (chat_render(pt->chat_kind, msgs, np, true, pt->bos_text, pt->eos_text, &ptext, &plen,
                    &ce)) {
        snprintf(err, errlen, "prompt: %s", ce.msg);
        return -EINVAL;
    }
    int32_t *pr = NULL, *ch = NULL, *rj = NULL;
    int n1 = 0, n2 = 0, n3 = 0;
    /* the template writes BOS/EOS as text: parse special tokens */
    if (!(rc = pref__response_text(pt, msgs, np, chosen, "chosen", ptext, &ctext, err,
                                   errlen)) &&
        !(rc = pref__response_text(pt, msgs, np, rejected, "rejected", ptext, &rtext, err,
                                   errlen)) &&
        !(rc = pref__encode(pt, ptext, TOK_ENC_PARSE_SPECIAL, -1, -1, &pr, &n1, err, errlen)) &&
        !(rc = pref__encode(pt, ctext, TOK_ENC_PARSE_SPECIAL, -1, -1, &ch, &n2, err, errlen)) &&
        !(rc = pref__encode(pt, rtext, TOK_ENC_PARSE_SPECIAL, -1, -1, &rj, &n3, err, errlen)))
        rc = pref__push(s, pr, n1, ch, n2, rj, n3, eval, margin, o, err, errlen);
    else
        free(pr), free(ch), free(rj);
    free(ptext), free(ctext), free(rtext);
    return rc;
}

/* ---- JSONL ------------------------------------------------------------------ */

int pref_add_jsonl_line(pref_set *s, const pref_tok *pt, const char *line, size_t len,
                        const pref_opts *o, char *err, size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!json_is_object(j)) {
        snprintf(err, errlen, "not a JSON object (%s)", j ? "other value" : je.text);
        json_decref(j);
        return -EINVAL;
    }
    const json_t *p = json_object_get(j, "prompt"), *c = json_object_get(j, "chosen"),
                 *r = json_object_get(j, "rejected"), *sp = json_object_get(j, "split"),
                 *mg = json_object_get(j, "margin");
    bool eval = (double)(fnv1a64(FNV1A64_BASIS, line, len) % 1000000) / 1e6 < o->eval_frac;
    int rc = 0;
    if (sp && !(json_is_string(sp) && (!strcmp(json_string_value(sp), "train") ||
                                       !strcmp(json_string_value(sp), "eval")))) {
        snprintf(err, errlen, "split: must be \"train\" or \"eval\"");
        rc = -EINVAL;
    } else if (mg && !json_is_number(mg)) {
        snprintf(err, errlen, "margin: must be a number");
        rc = -EINVAL;
    } else {
        if (sp)
            eval = !strcmp(json_string_value(sp), "eval");
        float margin = mg ? (float)json_number_value(mg) : 0.0f;
        if (json_is_string(p) && json_is_string(c) && json_is_string(r))
            rc = pref_add_text(s, pt, json_string_value(p), json_string_value(c),
                               json_string_value(r), eval, margin, o, err, errlen);
        else if (json_is_array(p) && json_is_array(c) && json_is_array(r))
            rc = pref_add_messages(s, pt, p, c, r, eval, margin, o, err, errlen);
        else {
            snprintf(err, errlen, "needs prompt, chosen and rejected, all strings or all "
                     "arrays of messages");
            rc = -EINVAL;
        }
    }
    json_decref(j);
    return rc;
}

int pref_load_jsonl(pref_set *s, const char *path, const pref_tok *pt, const pref_opts *o,
                    char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -errno;
    }
    char *line = NULL, msg[512];
    size_t cap = 0;
    ssize_t len;
    int rc = 0, lineno = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        if ((rc = pref_add_jsonl_line(s, pt, line, (size_t)len, o, msg, sizeof msg))) {
            snprintf(err, errlen, "%s line %d: %s", path, lineno, msg);
            break;
        }
    }
    free(line);
    fclose(f);
    if (!rc && s->n == 0) {
        snprintf(err, errlen, "%s: no preference pairs", path);
        rc = -EINVAL;
    }
    return rc;
}

/* ---- batches ---------------------------------------------------------------- */

static void pref__seq(pref_batch *b, int row, const pref_pair *p, const int32_t *resp, int nr)
{
    int32_t *ids = b->tokens + (size_t)row * b->L, *tgt = b->targets + (size_t)row * b->L;
    int n = p->n_prompt + nr;
    memcpy(ids, p->ids, (size_t)p->n_prompt * sizeof(int32_t));
    memcpy(ids + p->n_prompt, resp, (size_t)nr * sizeof(int32_t));
    for (int i = n; i < b->L; i++)
        ids[i] = 0;
    for (int i = 0; i < b->L; i++) /* position i predicts token i + 1 */
        tgt[i] = i + 1 < n && i + 1 >= p->n_prompt ? ids[i + 1] : -1;
    b->lens[row] = n;
}

int pref_batch_make(pref_batch *b, const pref_set *s, const int *idx, int n, char *err,
                    size_t errlen)
{
    int L = 1;
    for (int i = 0; i < n; i++) {
        const pref_pair *p = &s->p[idx[i]];
        int m = p->n_prompt + (p->n_chosen > p->n_rejected ? p->n_chosen : p->n_rejected);
        L = m > L ? m : L;
    }
    size_t T = (size_t)2 * n * L;
    if (T > b->cap_tokens || 2 * n > b->cap_seqs) {
        int32_t *tk = realloc(b->tokens, T * sizeof(int32_t));
        if (tk)
            b->tokens = tk;
        int32_t *tg = realloc(b->targets, T * sizeof(int32_t));
        if (tg)
            b->targets = tg;
        int32_t *ln = realloc(b->lens, (size_t)2 * n * sizeof(int32_t));
        if (ln)
            b->lens = ln;
        if (!tk || !tg || !ln) {
            snprintf(err, errlen, "out of memory for a batch of %d pairs", n);
            return -ENOMEM;
        }
        b->cap_tokens = T;
        b->cap_seqs = 2 * n;
    }
    b->B = 2 * n;
    b->L = L;
    for (int i = 0; i < n; i++) {
        const pref_pair *p = &s->p[idx[i]];
        pref__seq(b, 2 * i, p, pref_chosen(p), p->n_chosen);
        pref__seq(b, 2 * i + 1, p, pref_rejected(p), p->n_rejected);
    }
    return 0;
}

void pref_batch_free(pref_batch *b)
{
    if (!b)
        return;
    free(b->tokens);
    free(b->targets);
    free(b->lens);
    memset(b, 0, sizeof(*b));
}
