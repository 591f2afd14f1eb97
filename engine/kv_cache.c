/* kv_cache.c - paged KV cache: a block pool, reference counts, a free list
 * and per-sequence block tables (see kv_cache.h).
 *
 * Layout: pool[n_blocks][n_layer][2][bs][kv_dim] floats; block b, layer l
 * starts at b * block_stride + l * layer_stride, its values bs * kv_dim
 * floats later. The free list is a stack, so a block released by one
 * sequence is the next one handed out (likely still in cache).
 */
#include "kv_cache.h"

#include "cpu_features.h"
#include "weights.h" /* wt_f16_from_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define KV__X86 1
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kv_cache {
    int n_layer, kv_dim, bs;  /* bs: positions per block */
    int n_blocks;
    int n_seq, n_ctx;         /* slots; positions per slot at most */
    int max_tbl;              /* table entries per slot: ceil(n_ctx / bs) */
    size_t layer_stride;      /* floats: 2 * bs * kv_dim */
    size_t block_stride;      /* floats: n_layer * layer_stride */
    float *pool;              /* [n_blocks][n_layer][2][bs][kv_dim]; NULL when f16 */
    uint16_t *pool16;         /* the same in IEEE half floats; NULL when not f16 */
    bool f16;
    size_t es;                /* bytes per element: 4 or 2 */
    int32_t *refs;            /* [n_blocks] holders; 0 = free */
    int32_t *free_ids;        /* [n_blocks] stack of free block ids */
    int n_free;               /* entries on the stack */
    int32_t *table;           /* [n_seq][max_tbl] block ids */
    int *n_tbl;               /* [n_seq] table entries in use */
    int *len;                 /* [n_seq] valid positions */
    size_t meta_bytes;        /* bytes of refs, free_ids, table, n_tbl, len */
    uint8_t *mark;            /* [n_blocks] kv_blocks_held's scratch, made at first use */
};

__attribute__((format(printf, 3, 4)))
static void kv__msg(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- create / free ------------------------------------------------------- */

int kv_create(kv_cache **out, int n_layer, int kv_dim, int block_size,
              int n_blocks, int n_seq_max, int n_ctx_max, char *err,
              size_t errlen)
{
    return kv_create_typed(out, n_layer, kv_dim, block_size, n_blocks, n_seq_max, n_ctx_max,
                           false, err, errlen);
}

int kv_create_typed(kv_cache **out, int n_layer, int kv_dim, int block_size,
                    int n_blocks, int n_seq_max, int n_ctx_max, bool f16, char *err,
                    size_t errlen)
{
    *out = NULL;
    if (n_layer <= 0 || kv_dim <= 0 || block_size <= 0 || n_blocks <= 0 ||
        n_seq_max <= 0 || n_ctx_max <= 0) {
        kv__msg(err, errlen,
                "kv: bad sizes (layers %d, kv_dim %d, block size %d, blocks %d, "
                "sequences %d, n_ctx %d)",
                n_layer, kv_dim, block_size, n_blocks, n_seq_max, n_ctx_max);
        return -EINVAL;
    }
    /* block_stride = n_layer * 2 * bs * kv_dim floats; pool = n_blocks of them */
    size_t ls = 2 * (size_t)block_size;
    size_t bstride = 0, nfl = 0;
    if (ls > SIZE_MAX / (size_t)kv_dim)
        goto toobig;
    ls *= (size_t)kv_dim;
    if (ls > SIZE_MAX / (size_t)n_layer)
        goto toobig;
    bstride = ls * (size_t)n_layer;
    if (bstride > SIZE_MAX / sizeof(float) / (size_t)n_blocks)
        goto toobig;
    nfl = bstride * (size_t)n_blocks;
    int max_tbl = (int)(((long long)n_ctx_max + block_size - 1) / block_size);

    kv_cache *kv = calloc(1, sizeof(*kv));
    if (!kv)
        goto nomem;
    kv->n_layer = n_layer;
    kv->kv_dim = kv_dim;
    kv->bs = block_size;
    kv->n_blocks = n_blocks;
    kv->n_seq = n_seq_max;
    kv->n_ctx = n_ctx_max;
    kv->max_tbl = max_tbl;
    kv->layer_stride = ls;
    kv->block_stride = bstride;
    kv->f16 = f16;
    kv->es = f16 ? sizeof(uint16_t) : sizeof(float);
    if (f16)
        kv->pool16 = calloc(nfl, sizeof(uint16_t));
    else
        kv->pool = calloc(nfl, sizeof(float));
    kv->refs = calloc((size_t)n_blocks, sizeof(int32_t));
    kv->free_ids = malloc((size_t)n_blocks * sizeof(int32_t));
    kv->table = malloc((size_t)n_seq_max * (size_t)max_tbl * sizeof(int32_t));
    kv->n_tbl = calloc((size_t)n_seq_max, sizeof(int));
    kv->len = calloc((size_t)n_seq_max, sizeof(int));
    if ((!kv->pool && !kv->pool16) || !kv->refs || !kv->free_ids || !kv->table || !kv->n_tbl ||
        !kv->len) {
        kv_free(kv);
        goto nomem;
    }
    kv->meta_bytes = 2 * (size_t)n_blocks * sizeof(int32_t) +
                     (size_t)n_seq_max * (size_t)max_tbl * sizeof(int32_t) +
                     2 * (size_t)n_seq_max * sizeof(int);
    /* block 0 is handed out first */
    for (int i = 0; i < n_blocks; i++)
        kv->free_ids[i] = n_blocks - 1 - i;
    kv->n_free = n_blocks;
    *out = kv;
    return 0;
toobig:
    kv__msg(err, errlen,
            "kv: pool of %d blocks x %d layers x 2 x %d positions x %d floats "
            "overflows size_t", n_blocks, n_layer, block_size, kv_dim);
    return -ENOMEM;
nomem:
    kv__msg(err, errlen,
            "kv: cannot allocate the pool (%zu bytes: %d blocks of %d positions, "
            "%d layers, kv_dim %d)", nfl * (f16 ? sizeof(uint16_t) : sizeof(float)), n_blocks, block_size,
            n_layer, kv_dim);
    return -ENOMEM;
}

void kv_free(kv_cache *kv)
{
    if (!kv)
        return;
    free(kv->pool);
    free(kv->pool16);
    free(kv->refs);
    free(kv->free_ids);
    free(kv->table);
    free(kv->n_tbl);
    free(kv->len);
    free(kv->mark);
    free(kv);
}

int kv_n_layer(const kv_cache *kv) { return kv->n_layer; }
int kv_kv_dim(const kv_cache *kv) { return kv->kv_dim; }
int kv_n_ctx(const kv_cache *kv) { return kv->n_ctx; }
int kv_n_seq(const kv_cache *kv) { return kv->n_seq; }
int kv_n_blocks(const kv_cache *kv) { return kv->n_blocks; }
int kv_n_free_blocks(const kv_cache *kv) { return kv->n_free; }
int kv_block_size(const kv_cache *kv) { return kv->bs; }

size_t kv_bytes(const kv_cache *kv)
{
    return (size_t)kv->n_blocks * kv->block_stride * kv->es +
           kv->meta_bytes;
}

/* ---- blocks -------------------------------------------------------------- */

static int32_t *kv__tbl(const kv_cache *kv, int seq)
{
    return kv->table + (size_t)seq * (size_t)kv->max_tbl;
}

/* Block dst becomes a copy of block src (every layer, keys and values). */
static void kv__copy_block(kv_cache *kv, int32_t dst, int32_t src)
{
    char *base = kv->f16 ? (char *)kv->pool16 : (char *)kv->pool;
    size_t bytes = kv->block_stride * kv->es;
    memcpy(base + (size_t)dst * bytes, base + (size_t)src * bytes, bytes);
}

/* Takes a free block (the caller checked n_free); one holder. */
static int32_t kv__take(kv_cache *kv)
{
    int32_t b = kv->free_ids[--kv->n_free];
    kv->refs[b] = 1;
    return b;
}

/* Drops one holder; the last one returns the block to the free list. */
static void kv__release(kv_cache *kv, int32_t b)
{
    if (--kv->refs[b] == 0)
        kv->free_ids[kv->n_free++] = b;
}

static int kv__blocks_for(const kv_cache *kv, int len)
{
    return (int)(((long long)len + kv->bs - 1) / kv->bs);
}

/* Table entries [*first, *end) whose positions [len(seq), len) a reserve to
 * len must make writable (existing entries only). */
static void kv__write_range(const kv_cache *kv, int seq, int len, int *first,
                            int *end)
{
    int cur = kv->len[seq];
    *first = *end = 0;
    if (len <= cur)
        return;
    *first = cur / kv->bs;
    *end = (len - 1) / kv->bs + 1;
    if (*end > kv->n_tbl[seq])
        *end = kv->n_tbl[seq];
    if (*first > *end)
        *first = *end;
}

int kv_blocks_needed(const kv_cache *kv, int seq, int len)
{
    if (seq < 0 || seq >= kv->n_seq || len < 0 || len > kv->n_ctx)
        return -EINVAL;
    const int32_t *tbl = kv__tbl(kv, seq);
    int want = kv__blocks_for(kv, len);
    int n = want > kv->n_tbl[seq] ? want - kv->n_tbl[seq] : 0;
    int first, end;
    kv__write_range(kv, seq, len, &first, &end);
    for (int i = first; i < end; i++)
        n += kv->refs[tbl[i]] > 1;
    return n;
}

/* ---- sequences ----------------------------------------------------------- */

int kv_seq_reserve(kv_cache *kv, int seq, int len)
{
    int need = kv_blocks_needed(kv, seq, len);
    if (need < 0)
        return need;
    if (need > kv->n_free)
        return -ENOSPC;
    int32_t *tbl = kv__tbl(kv, seq);
    int first, end;
    kv__write_range(kv, seq, len, &first, &end);
    for (int i = first; i < end; i++) {
        if (kv->refs[tbl[i]] <= 1)
            continue;
        /* copy-on-write: the other holders keep the original */
        int32_t nb = kv__take(kv);
        kv__copy_block(kv, nb, tbl[i]);
        kv__release(kv, tbl[i]);
        tbl[i] = nb;
    }
    int want = kv__blocks_for(kv, len);
    while (kv->n_tbl[seq] < want)
        tbl[kv->n_tbl[seq]++] = kv__take(kv);
    return 0;
}

void kv_seq_truncate(kv_cache *kv, int seq, int len)
{
    if (len < 0)
        len = 0;
    if (len < kv->len[seq])
        kv->len[seq] = len;
    int keep = kv__blocks_for(kv, len);
    int32_t *tbl = kv__tbl(kv, seq);
    while (kv->n_tbl[seq] > keep)
        kv__release(kv, tbl[--kv->n_tbl[seq]]);
}

void kv_seq_clear(kv_cache *kv, int seq)
{
    kv_seq_truncate(kv, seq, 0);
}

int kv_seq_fork(kv_cache *kv, int dst, int src, int n_tokens)
{
    if (dst < 0 || dst >= kv->n_seq || src < 0 || src >= kv->n_seq ||
        dst == src || n_tokens < 0 || n_tokens > kv->len[src])
        return -EINVAL;
    int full = n_tokens / kv->bs;
    bool partial = n_tokens % kv->bs != 0;
    const int32_t *stbl = kv__tbl(kv, src);
    int32_t *dtbl = kv__tbl(kv, dst);
    if (partial) {
        /* the copy needs one free block; releasing dst frees the blocks it
         * holds alone */
        int avail = kv->n_free;
        for (int i = 0; i < kv->n_tbl[dst]; i++)
            avail += kv->refs[dtbl[i]] == 1;
        if (avail < 1)
            return -ENOSPC;
    }
    kv_seq_clear(kv, dst);
    for (int i = 0; i < full; i++) {
        dtbl[i] = stbl[i];
        kv->refs[stbl[i]]++;
    }
    kv->n_tbl[dst] = full;
    if (partial) {
        int32_t nb = kv__take(kv);
        kv__copy_block(kv, nb, stbl[full]);
        dtbl[kv->n_tbl[dst]++] = nb;
    }
    kv->len[dst] = n_tokens;
    return 0;
}

int kv_seq_len(const kv_cache *kv, int seq) { return kv->len[seq]; }

void kv_seq_set_len(kv_cache *kv, int seq, int len) { kv->len[seq] = len; }

int kv_seq_capacity(const kv_cache *kv, int seq)
{
    return kv->n_tbl[seq] * kv->bs;
}

int kv_seq_n_blocks(const kv_cache *kv, int seq) { return kv->n_tbl[seq]; }

const int32_t *kv_seq_table(const kv_cache *kv, int seq)
{
    return kv__tbl(kv, seq);
}

int kv_blocks_held(kv_cache *kv, int first_seq, int n_seq)
{
    if (first_seq < 0 || n_seq < 0 || first_seq + n_seq > kv->n_seq)
        return -EINVAL;
    if (!kv->mark && !(kv->mark = calloc((size_t)kv->n_blocks, 1)))
        return -ENOMEM;
    int n = 0;
    for (int pass = 0; pass < 2; pass++) /* count each block once, then unmark */
        for (int q = first_seq; q < first_seq + n_seq; q++)
            for (int i = 0; i < kv->n_tbl[q]; i++) {
                int32_t b = kv->table[(size_t)q * kv->max_tbl + i];
                if (pass == 0 && !kv->mark[b]) {
                    kv->mark[b] = 1;
                    n++;
                } else if (pass == 1) {
                    kv->mark[b] = 0;
                }
            }
    return n;
}

int kv_block_refs(const kv_cache *kv, int block)
{
    return block >= 0 && block < kv->n_blocks ? kv->refs[block] : 0;
}

/* ---- rows ---------------------------------------------------------------- */

int kv_check(const kv_cache *kv, int seq, int pos, char *err, size_t errlen)
{
    if (seq < 0 || seq >= kv->n_seq) {
        kv__msg(err, errlen, "kv: sequence id %d out of range [0, %d)", seq,
                kv->n_seq);
        return -EINVAL;
    }
    if (pos < 0 || pos >= kv->n_ctx) {
        kv__msg(err, errlen, "kv: position %d of sequence %d out of range [0, %d)",
                pos, seq, kv->n_ctx);
        return -EINVAL;
    }
    return 0;
}

int kv_check_write(const kv_cache *kv, int seq, int pos, char *err,
                   size_t errlen)
{
    int rc = kv_check(kv, seq, pos, err, errlen);
    if (rc != 0)
        return rc;
    if (pos >= kv_seq_capacity(kv, seq)) {
        kv__msg(err, errlen,
                "kv: position %d of sequence %d is not reserved (its blocks "
                "cover %d positions)", pos, seq, kv_seq_capacity(kv, seq));
        return -EINVAL;
    }
    int32_t b = kv__tbl(kv, seq)[pos / kv->bs];
    if (kv->refs[b] != 1) {
        kv__msg(err, errlen,
                "kv: position %d of sequence %d lies in block %d shared by %d "
                "sequences (reserve it first)", pos, seq, (int)b, (int)kv->refs[b]);
        return -EINVAL;
    }
    return 0;
}

static size_t kv__row(const kv_cache *kv, int layer, int seq, int pos)
{
    int32_t b = kv__tbl(kv, seq)[pos / kv->bs];
    return (size_t)b * kv->block_stride + (size_t)layer * kv->layer_stride +
           (size_t)(pos % kv->bs) * (size_t)kv->kv_dim;
}

float *kv_k(kv_cache *kv, int layer, int seq, int pos)
{
    return kv->f16 ? NULL : kv->pool + kv__row(kv, layer, seq, pos);
}

float *kv_v(kv_cache *kv, int layer, int seq, int pos)
{
    return kv->f16 ? NULL
                   : kv->pool + kv__row(kv, layer, seq, pos) + (size_t)kv->bs * (size_t)kv->kv_dim;
}

#ifdef KV__X86
__attribute__((target("avx,f16c"))) static void kv__to_f16_f16c(uint16_t *dst, const float *src,
                                                                size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++)
        dst[i] = wt_f16_from_f32(src[i]);
}
#endif

/* Round to nearest even, as wt_f16_from_f32 (the F16C instruction where
 * the CPU has it: the same results, faster). */
static void kv__to_f16(uint16_t *dst, const float *src, size_t n)
{
#ifdef KV__X86
    if (cpu_features_get()->f16c) {
        kv__to_f16_f16c(dst, src, n);
        return;
    }
#endif
    for (size_t i = 0; i < n; i++)
        dst[i] = wt_f16_from_f32(src[i]);
}

void kv_write(kv_cache *kv, int layer, int seq, int pos, const float *k, const float *v)
{
    size_t r = kv__row(kv, layer, seq, pos), vo = (size_t)kv->bs * (size_t)kv->kv_dim;
    if (!kv->f16) {
        memcpy(kv->pool + r, k, (size_t)kv->kv_dim * sizeof(float));
        memcpy(kv->pool + r + vo, v, (size_t)kv->kv_dim * sizeof(float));
        return;
    }
    kv__to_f16(kv->pool16 + r, k, (size_t)kv->kv_dim);
    kv__to_f16(kv->pool16 + r + vo, v, (size_t)kv->kv_dim);
}

bool kv_is_f16(const kv_cache *kv) { return kv->f16; }

const float *kv_pool_k(const kv_cache *kv, int layer)
{
    return kv->f16 ? NULL : kv->pool + (size_t)layer * kv->layer_stride;
}

const float *kv_pool_v(const kv_cache *kv, int layer)
{
    return kv->f16 ? NULL : kv_pool_k(kv, layer) + (size_t)kv->bs * (size_t)kv->kv_dim;
}

const uint16_t *kv_pool_k16(const kv_cache *kv, int layer)
{
    return kv->f16 ? kv->pool16 + (size_t)layer * kv->layer_stride : NULL;
}

const uint16_t *kv_pool_v16(const kv_cache *kv, int layer)
{
    return kv->f16 ? kv_pool_k16(kv, layer) + (size_t)kv->bs * (size_t)kv->kv_dim : NULL;
}

size_t kv_block_stride(const kv_cache *kv) { return kv->block_stride; }
