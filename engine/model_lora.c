/* model_lora.c - LoRA adapters in the inference forward pass (model.h):
 * checking an adapter against a model, grouping a chunk's tokens by
 * adapter, and adding scale * B A x at the sites of each group.
 *
 * Why group: a decode step may mix many sequences and a few adapters;
 * computing u = x A^T and u B^T once per (adapter, site) over all of that
 * adapter's tokens reads A and B once per step instead of once per
 * sequence. A group whose tokens are one contiguous run of the batch (a
 * prompt chunk, or a batch with one adapter) is multiplied in place;
 * otherwise its rows are gathered, multiplied and scattered back.
 *
 * Adapters are only read here (A, B, scale, cfg.rank, sites, index): the
 * training-only state (enabled, training, dropout, activations) is never
 * consulted, so a served adapter's result does not depend on it.
 */
#include "model.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trn_lora.h"

/* The targets applied at each place of the layer (model_lora_at). */
static const unsigned model__lora_at_targets[] = {
    [MODEL_LORA_AT_QKV] = 1u << TRN_LORA_Q | 1u << TRN_LORA_K | 1u << TRN_LORA_V |
                          1u << TRN_LORA_QKV,
    [MODEL_LORA_AT_O] = 1u << TRN_LORA_O,
    [MODEL_LORA_AT_UP] = 1u << TRN_LORA_GATE | 1u << TRN_LORA_UP,
    [MODEL_LORA_AT_DOWN] = 1u << TRN_LORA_DOWN,
};

/* ---- checking ------------------------------------------------------------ */

/* Input and output widths of target t and its first row in the fused
 * weight: the layout of the weights in arch_llama.c / arch_gpt2.c (and of
 * trn_lora_new's sites). False for a target the architecture lacks. */
static bool model__lora_shape(const model *m, trn_lora_target t, int *in, int *out, int *row0)
{
    const model_hparams *hp = &m->hp;
    int C = hp->n_embd, A = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    int FF = hp->n_ff;
    bool gated = m->arch == MODEL_ARCH_LLAMA;
    *in = C;
    *row0 = 0;
    switch (t) {
    case TRN_LORA_Q: *out = A; return true;
    case TRN_LORA_K: *out = KV; *row0 = A; return true;
    case TRN_LORA_V: *out = KV; *row0 = A + KV; return true;
    case TRN_LORA_O: *in = A; *out = C; return true;
    case TRN_LORA_GATE: *out = FF; return gated;
    case TRN_LORA_UP: *out = FF; *row0 = gated ? FF : 0; return true;
    case TRN_LORA_DOWN: *in = FF; *out = C; return true;
    case TRN_LORA_QKV: *out = A + 2 * KV; return true;
    default: return false;
    }
}

static int model__lora_site_check(const model *m, const trn_lora *lo, int i, char *err,
                                  size_t errlen)
{
    const trn_lora_site *s = &lo->sites[i];
    int in, out, row0;
    bool known = s->target >= 0 && s->target < TRN_LORA_N_TARGETS &&
                 model__lora_shape(m, s->target, &in, &out, &row0);
    if (s->layer < 0 || s->layer >= m->hp.n_layer || !known) {
        snprintf(err, errlen, "LoRA site %d (layer %d, target %s) does not exist in this %s "
                 "model", i, s->layer, trn_lora_target_name(s->target), model_arch_name(m->arch));
        return -EINVAL;
    }
    if (s->in != in || s->out != out || s->row0 != row0 || !s->A || !s->B ||
        lo->index[s->layer][s->target] != i) {
        snprintf(err, errlen, "LoRA site blk.%d.%s: shape [%d <- %d] at row %d, the model "
                 "needs [%d <- %d] at row %d", s->layer, trn_lora_target_name(s->target),
                 s->out, s->in, s->row0, out, in, row0);
        return -EINVAL;
    }
    return 0;
}

int model_lora_check(const model *m, const trn_lora *lo, char *err, size_t errlen)
{
    if (m->arch != MODEL_ARCH_LLAMA && m->arch != MODEL_ARCH_GPT2) {
        snprintf(err, errlen, "LoRA adapters need a decoder (llama or gpt2), not %s",
                 model_arch_name(m->arch));
        return -ENOTSUP;
    }
    if (lo->n_layer != m->hp.n_layer || lo->cfg.rank < 1 || lo->cfg.rank > 4096 ||
        !isfinite(lo->scale) || lo->n_sites < 0 || (lo->n_sites && (!lo->sites || !lo->index))) {
        snprintf(err, errlen, "LoRA adapter: %d layers, rank %d, scale %g; the model has %d "
                 "layers (rank must be 1..4096, scale finite)", lo->n_layer, lo->cfg.rank,
                 (double)lo->scale, m->hp.n_layer);
        return -EINVAL;
    }
    for (int i = 0; i < lo->n_sites; i++) {
        int rc = model__lora_site_check(m, lo, i, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- workspace ----------------------------------------------------------- */

/* Grows p to n elements of size sz (keeps it on failure). */
static int model__grow(void **p, size_t n, size_t sz)
{
    void *q = realloc(*p, (n ? n : 1) * sz);
    if (!q)
        return -ENOMEM;
    *p = q;
    return 0;
}

/* Room for chunks of T tokens over adapters whose largest rank is r and
 * largest site width (input or output) is width. */
static int model__lora_reserve(model_lora_ws *w, int n_adapters, int T, int r, int width)
{
    size_t nb = (size_t)T * ((size_t)r + (size_t)width);
    if (n_adapters > w->cap_adapters) {
        if (model__grow((void **)&w->gid, (size_t)n_adapters, sizeof(int)) ||
            model__grow((void **)&w->gstart, (size_t)n_adapters + 1, sizeof(int)) ||
            model__grow((void **)&w->cursor, (size_t)n_adapters + 1, sizeof(int)))
            return -ENOMEM;
        w->cap_adapters = n_adapters;
    }
    if (T > w->cap_tokens) {
        if (model__grow((void **)&w->tok, (size_t)T, sizeof(int)))
            return -ENOMEM;
        w->cap_tokens = T;
    }
    if (nb > w->cap_buf) {
        if (model__grow((void **)&w->buf, nb, sizeof(float)))
            return -ENOMEM;
        w->cap_buf = nb;
    }
    return 0;
}

static int model__lora_check_indices(const model_batch *b, char *err, size_t errlen)
{
    if (b->n_adapters < 0 || b->n_adapters > MODEL_MAX_ADAPTERS ||
        (b->n_adapters > 0 && !b->adapters)) {
        snprintf(err, errlen, "batch: %d adapters (at most %d, with a table)", b->n_adapters,
                 MODEL_MAX_ADAPTERS);
        return -EINVAL;
    }
    for (int t = 0; t < b->n_tokens; t++)
        if (b->adapter[t] < -1 || b->adapter[t] >= b->n_adapters) {
            snprintf(err, errlen, "batch: token %d: adapter %d outside [-1, %d)", t,
                     b->adapter[t], b->n_adapters);
            return -EINVAL;
        }
    return 0;
}

int model_lora_prepare(model *m, const model_batch *b, char *err, size_t errlen)
{
    if (!b->adapter)
        return 0;
    int rc = model__lora_check_indices(b, err, errlen);
    if (rc)
        return rc;
    int r = 1, width = 1;
    char msg[256];
    for (int i = 0; i < b->n_adapters; i++) {
        const trn_lora *lo = b->adapters[i];
        if (!lo || (rc = model_lora_check(m, lo, msg, sizeof msg))) {
            snprintf(err, errlen, "batch: adapter %d: %s", i, lo ? msg : "missing (NULL)");
            return lo ? rc : -EINVAL;
        }
        r = lo->cfg.rank > r ? lo->cfg.rank : r;
        for (int k = 0; k < lo->n_sites; k++) {
            width = lo->sites[k].in > width ? lo->sites[k].in : width;
            width = lo->sites[k].out > width ? lo->sites[k].out : width;
        }
    }
    int T = b->n_tokens < m->n_batch ? b->n_tokens : m->n_batch;
    if (model__lora_reserve(&m->lora, b->n_adapters, T, r, width)) {
        snprintf(err, errlen, "batch: out of memory for the adapters of %d tokens", T);
        return -ENOMEM;
    }
    return 0;
}

void model_lora_free(model *m)
{
    model_lora_ws *w = &m->lora;
    free(w->gid);
    free(w->gstart);
    free(w->cursor);
    free(w->tok);
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

/* ---- grouping ------------------------------------------------------------ */

int model_lora_group(model *m, const model_batch *c)
{
    model_lora_ws *w = &m->lora;
    w->n_groups = 0;
    if (!c->adapter)
        return 0;
    int na = c->n_adapters, n = 0, start = 0;
    int *cnt = w->cursor;
    memset(cnt, 0, (size_t)na * sizeof(int));
    for (int t = 0; t < c->n_tokens; t++)
        if (c->adapter[t] >= 0)
            cnt[c->adapter[t]]++;
    /* counting sort: groups in adapter order, tokens in batch order */
    for (int a = 0; a < na; a++) {
        int k = cnt[a];
        cnt[a] = start;
        if (!k)
            continue;
        w->gid[n] = a;
        w->gstart[n++] = start;
        start += k;
    }
    w->gstart[n] = start;
    for (int t = 0; t < c->n_tokens; t++)
        if (c->adapter[t] >= 0)
            w->tok[cnt[c->adapter[t]]++] = t;
    w->adapters = c->adapters;
    w->n_groups = n;
    return n;
}

/* ---- applying ------------------------------------------------------------ */

/* y[tok[k]] += scale * B A x[tok[k]] at site s for the n tokens tok[]. */
static void model__lora_site(model_lora_ws *w, const trn_lora *lo, const trn_lora_site *s,
                             float *y, size_t ldy, const float *x, size_t ldx, const int *tok,
                             int n)
{
    int r = lo->cfg.rank;
    float *u = w->buf, *rows = w->buf + (size_t)n * r;   /* u [n, r], rows [n, width] */
    if (tok[n - 1] - tok[0] == n - 1) {
        const float *xs = x + (size_t)tok[0] * ldx;
        float *ys = y + (size_t)tok[0] * ldy + s->row0;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, s->in, 1.0f, xs, (int)ldx,
                    s->A, s->in, 0.0f, u, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, s->out, r, lo->scale, u, r,
                    s->B, r, 1.0f, ys, (int)ldy);
        return;
    }
    for (int k = 0; k < n; k++)
        memcpy(rows + (size_t)k * s->in, x + (size_t)tok[k] * ldx, (size_t)s->in * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, r, s->in, 1.0f, rows, s->in, s->A,
                s->in, 0.0f, u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, s->out, r, lo->scale, u, r, s->B, r,
                0.0f, rows, s->out);
    for (int k = 0; k < n; k++) {
        float *ys = y + (size_t)tok[k] * ldy + s->row0;
        const float *d = rows + (size_t)k * s->out;
        for (int j = 0; j < s->out; j++)
            ys[j] += d[j];
    }
}

void model_lora_apply(model *m, int layer, model_lora_at at, float *y, size_t ldy,
                      const float *x, size_t ldx)
{
    model_lora_ws *w = &m->lora;
    unsigned targets = model__lora_at_targets[at];
    for (int g = 0; g < w->n_groups; g++) {
        const trn_lora *lo = w->adapters[w->gid[g]];
        const int *tok = w->tok + w->gstart[g];
        int n = w->gstart[g + 1] - w->gstart[g];
        for (int t = 0; t < TRN_LORA_N_TARGETS; t++) {
            int i = (targets >> t & 1u) ? lo->index[layer][t] : -1;
            if (i >= 0)
                model__lora_site(w, lo, &lo->sites[i], y, ldy, x, ldx, tok, n);
        }
    }
}
