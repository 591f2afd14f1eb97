/* kv_cache.c - contiguous per-sequence KV cache (see kv_cache.h).
 *
 * Layout: k and v are each [n_seq][n_layer][n_ctx][kv_dim] floats.
 */
#include "kv_cache.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kv_cache {
    int n_layer, kv_dim, n_ctx, n_seq;
    float *k;       /* [n_seq][n_layer][n_ctx][kv_dim] */
    float *v;       /* same */
    int *seq_len;   /* [n_seq] valid positions */
};

int kv_create(kv_cache **out, int n_layer, int kv_dim, int n_ctx, int n_seq,
              char *err, size_t errlen)
{
    *out = NULL;
    if (n_layer <= 0 || kv_dim <= 0 || n_ctx <= 0 || n_seq <= 0) {
        if (err && errlen)
            snprintf(err, errlen,
                     "kv: bad sizes (layers %d, kv_dim %d, n_ctx %d, n_seq %d)",
                     n_layer, kv_dim, n_ctx, n_seq);
        return -EINVAL;
    }
    size_t n = (size_t)n_seq * (size_t)n_layer;
    if (n > SIZE_MAX / (size_t)n_ctx || n * n_ctx > SIZE_MAX / (size_t)kv_dim ||
        n * n_ctx * kv_dim > SIZE_MAX / (2 * sizeof(float)))
        goto nomem;
    n = n * (size_t)n_ctx * (size_t)kv_dim;
    kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv)
        goto nomem;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->n_ctx = n_ctx;
    kv->n_seq = n_seq;
    kv->k = calloc(n, sizeof(float));
    kv->v = calloc(n, sizeof(float));
    kv->seq_len = calloc((size_t)n_seq, sizeof(int));
    if (!kv->k || !kv->v || !kv->seq_len) {
        kv_free(kv);
        goto nomem;
    }
    *out = kv;
    return 0;
nomem:
    if (err && errlen)
        snprintf(err, errlen,
                 "kv: cannot allocate the cache (%d seqs x %d layers x %d ctx x %d floats x 2)",
                 n_seq, n_layer, n_ctx, kv_dim);
    return -ENOMEM;
}

void kv_free(kv_cache *kv)
{
    if (!kv)
        return;
    free(kv->k);
    free(kv->v);
    free(kv->seq_len);
    free(kv);
}

int kv_n_layer(const kv_cache *kv) { return kv->n_layer; }
int kv_kv_dim(const kv_cache *kv) { return kv->kv_dim; }
int kv_n_ctx(const kv_cache *kv) { return kv->n_ctx; }
int kv_n_seq(const kv_cache *kv) { return kv->n_seq; }

size_t kv_bytes(const kv_cache *kv)
{
    return 2 * (size_t)kv->n_seq * kv->n_layer * kv->n_ctx * kv->kv_dim *
           sizeof(float);
}

static size_t kv__off(const kv_cache *kv, int layer, int seq, int pos)
{
    return (((size_t)seq * kv->n_layer + layer) * kv->n_ctx + pos) * kv->kv_dim;
}

float *kv_k(kv_cache *kv, int layer, int seq, int pos)
{
    return kv->k + kv__off(kv, layer, seq, pos);
}

float *kv_v(kv_cache *kv, int layer, int seq, int pos)
{
    return kv->v + kv__off(kv, layer, seq, pos);
}

int kv_check(const kv_cache *kv, int seq, int pos, char *err, size_t errlen)
{
    if (seq < 0 || seq >= kv->n_seq) {
        if (err && errlen)
            snprintf(err, errlen, "kv: sequence id %d out of range [0, %d)", seq,
                     kv->n_seq);
        return -EINVAL;
    }
    if (pos < 0 || pos >= kv->n_ctx) {
        if (err && errlen)
            snprintf(err, errlen,
                     "kv: position %d of sequence %d out of range [0, %d)", pos,
                     seq, kv->n_ctx);
        return -EINVAL;
    }
    return 0;
}

int kv_seq_len(const kv_cache *kv, int seq) { return kv->seq_len[seq]; }

void kv_seq_set_len(kv_cache *kv, int seq, int len) { kv->seq_len[seq] = len; }

void kv_seq_clear(kv_cache *kv, int seq) { kv->seq_len[seq] = 0; }

void kv_seq_truncate(kv_cache *kv, int seq, int len)
{
    if (len < kv->seq_len[seq])
        kv->seq_len[seq] = len < 0 ? 0 : len;
}
