/* test_kv_cache.c - the paged KV cache: reserve / clear / truncate
 * accounting, -ENOSPC leaving the pool unchanged, reference counts and
 * copy-on-write through kv_seq_fork, ops_attention_prefill (GEMM) against
 * ops_attention_paged, ops_attention_paged against the
 * contiguous kernels on random block tables, and llama-tiny logits through
 * scattered and forked block tables (needs ../shared; skipped without it). */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "model.h"
#include "ops.h"
#include "safetensors.h"
#include "weights.h"

static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint32_t urand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 32);
}

static float frand(void) { /* uniform in [-1, 1) */
    return (float)(urand() * (1.0 / 4294967296.0)) * 2.0f - 1.0f;
}

/* A value that names (seq tag, layer, pos, i, k or v). */
static float tagv(int tag, int layer, int pos, int i, int isv) {
    return (float)(tag * 100000 + layer * 10000 + pos * 10 + i) + (isv ? 0.5f : 0.0f);
}

/* Writes tagged K/V rows for positions [p0, p1) of seq (all layers). */
static void write_rows(kv_cache *kv, int seq, int tag, int p0, int p1) {
    char err[160];
    for (int p = p0; p < p1; p++) {
        if (kv_check_write(kv, seq, p, err, sizeof err) != 0) fail_msg("%s", err);
        for (int l = 0; l < kv_n_layer(kv); l++)
            for (int i = 0; i < kv_kv_dim(kv); i++) {
                kv_k(kv, l, seq, p)[i] = tagv(tag, l, p, i, 0);
                kv_v(kv, l, seq, p)[i] = tagv(tag, l, p, i, 1);
            }
    }
}

/* True when positions [p0, p1) of seq hold the rows write_rows(tag) made. */
static bool rows_are(kv_cache *kv, int seq, int tag, int p0, int p1) {
    for (int p = p0; p < p1; p++)
        for (int l = 0; l < kv_n_layer(kv); l++)
            for (int i = 0; i < kv_kv_dim(kv); i++)
                if (kv_k(kv, l, seq, p)[i] != tagv(tag, l, p, i, 0) ||
                    kv_v(kv, l, seq, p)[i] != tagv(tag, l, p, i, 1))
                    return false;
    return true;
}

/* Every block is either free or held, and the holders add up. */
static void check_refs(const kv_cache *kv) {
    int *count = calloc((size_t)kv_n_blocks(kv), sizeof(int));
    assert_non_null(count);
    for (int s = 0; s < kv_n_seq(kv); s++) {
        const int32_t *t = kv_seq_table(kv, s);
        assert_true(kv_seq_len(kv, s) <= kv_seq_capacity(kv, s));
        for (int i = 0; i < kv_seq_n_blocks(kv, s); i++) {
            assert_true(t[i] >= 0 && t[i] < kv_n_blocks(kv));
            count[t[i]]++;
        }
    }
    int n_free = 0;
    for (int b = 0; b < kv_n_blocks(kv); b++) {
        assert_int_equal(count[b], kv_block_refs(kv, b));
        n_free += count[b] == 0;
    }
    assert_int_equal(n_free, kv_n_free_blocks(kv));
    free(count);
}

/* ---- accounting ----------------------------------------------------------- */

static void test_reserve_accounting(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[200];
    assert_int_equal(kv_create(&kv, 2, 8, 0, 6, 3, 20, err, sizeof err), -EINVAL);
    assert_null(kv);
    assert_non_null(strstr(err, "block size 0"));
    assert_int_equal(kv_create(&kv, 2, 8, 4, -1, 3, 20, err, sizeof err), -EINVAL);
    assert_int_equal(kv_create(&kv, INT32_MAX, INT32_MAX, INT32_MAX, 2, 1, 1, err, sizeof err),
                     -ENOMEM); /* size_t overflow, caught before allocating */
    assert_null(kv);
    assert_non_null(strstr(err, "overflows"));

    /* 2 layers, kv_dim 8, blocks of 4, 6 blocks, 3 slots of at most 20 */
    assert_int_equal(kv_create(&kv, 2, 8, 4, 6, 3, 20, err, sizeof err), 0);
    assert_int_equal(kv_n_blocks(kv), 6);
    assert_int_equal(kv_n_free_blocks(kv), 6);
    assert_int_equal(kv_block_size(kv), 4);
    assert_int_equal(kv_n_seq(kv), 3);
    assert_int_equal(kv_n_ctx(kv), 20);
    assert_true(kv_bytes(kv) >= 6u * 2 * 2 * 4 * 8 * sizeof(float));
    assert_int_equal(kv_block_stride(kv), 2u * 2 * 4 * 8);

    assert_int_equal(kv_blocks_needed(kv, 0, 0), 0);
    assert_int_equal(kv_blocks_needed(kv, 0, 1), 1);
    assert_int_equal(kv_blocks_needed(kv, 0, 9), 3);
    assert_int_equal(kv_blocks_needed(kv, 0, 21), -EINVAL);
    assert_int_equal(kv_blocks_needed(kv, 3, 1), -EINVAL);
    assert_int_equal(kv_seq_reserve(kv, 0, 9), 0);
    assert_int_equal(kv_n_free_blocks(kv), 3);
    assert_int_equal(kv_seq_capacity(kv, 0), 12);
    assert_int_equal(kv_seq_n_blocks(kv, 0), 3);
    assert_int_equal(kv_seq_len(kv, 0), 0); /* reserving does not change the length */
    assert_int_equal(kv_blocks_needed(kv, 0, 12), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 12), 0); /* already covered */
    assert_int_equal(kv_seq_reserve(kv, 0, 5), 0);  /* never shrinks */
    assert_int_equal(kv_n_free_blocks(kv), 3);
    assert_int_equal(kv_seq_reserve(kv, 0, 21), -EINVAL);
    assert_int_equal(kv_seq_reserve(kv, -1, 1), -EINVAL);
    assert_int_equal(kv_seq_reserve(kv, 0, -1), -EINVAL);
    check_refs(kv);

    /* -ENOSPC changes nothing */
    int32_t before[8];
    memcpy(before, kv_seq_table(kv, 0), 3 * sizeof(int32_t));
    assert_int_equal(kv_blocks_needed(kv, 1, 16), 4);
    assert_int_equal(kv_seq_reserve(kv, 1, 16), -ENOSPC);
    assert_int_equal(kv_n_free_blocks(kv), 3);
    assert_int_equal(kv_seq_n_blocks(kv, 1), 0);
    assert_int_equal(memcmp(before, kv_seq_table(kv, 0), 3 * sizeof(int32_t)), 0);
    assert_int_equal(kv_seq_reserve(kv, 1, 12), 0); /* exactly what is left */
    assert_int_equal(kv_n_free_blocks(kv), 0);
    assert_int_equal(kv_seq_reserve(kv, 2, 1), -ENOSPC);
    assert_int_equal(kv_seq_reserve(kv, 2, 0), 0);
    check_refs(kv);

    /* distinct positions are distinct rows; rows of one block are adjacent */
    assert_ptr_equal(kv_k(kv, 1, 0, 5), kv_k(kv, 1, 0, 4) + 8);
    assert_ptr_equal(kv_v(kv, 1, 0, 5), kv_k(kv, 1, 0, 5) + 4 * 8);
    write_rows(kv, 0, 1, 0, 12);
    write_rows(kv, 1, 2, 0, 12);
    assert_true(rows_are(kv, 0, 1, 0, 12));
    assert_true(rows_are(kv, 1, 2, 0, 12));

    /* writing needs a reservation */
    assert_int_equal(kv_check_write(kv, 2, 0, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "position 0 of sequence 2 is not reserved"));
    assert_int_equal(kv_check_write(kv, 0, 12, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "position 12 of sequence 0"));
    assert_int_equal(kv_check_write(kv, 0, 20, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "out of range"));
    assert_int_equal(kv_check_write(kv, 0, 11, err, sizeof err), 0);

    /* truncate: length and blocks wholly beyond len */
    kv_seq_set_len(kv, 0, 10);
    kv_seq_truncate(kv, 0, 11); /* length stays, no block is wholly beyond 11 */
    assert_int_equal(kv_seq_len(kv, 0), 10);
    assert_int_equal(kv_seq_n_blocks(kv, 0), 3);
    kv_seq_truncate(kv, 0, 8); /* block 2 (positions 8..11) goes */
    assert_int_equal(kv_seq_len(kv, 0), 8);
    assert_int_equal(kv_seq_n_blocks(kv, 0), 2);
    assert_int_equal(kv_n_free_blocks(kv), 1);
    kv_seq_truncate(kv, 0, 5);
    assert_int_equal(kv_seq_len(kv, 0), 5);
    assert_int_equal(kv_seq_n_blocks(kv, 0), 2);
    assert_true(rows_are(kv, 0, 1, 0, 5)); /* kept positions keep their rows */
    kv_seq_truncate(kv, 0, -3);
    assert_int_equal(kv_seq_len(kv, 0), 0);
    assert_int_equal(kv_seq_n_blocks(kv, 0), 0);
    assert_int_equal(kv_n_free_blocks(kv), 3);
    check_refs(kv);
    /* clear returns everything; clearing twice is harmless */
    kv_seq_set_len(kv, 1, 12);
    kv_seq_clear(kv, 1);
    kv_seq_clear(kv, 1);
    assert_int_equal(kv_seq_len(kv, 1), 0);
    assert_int_equal(kv_n_free_blocks(kv), 6);
    check_refs(kv);
    /* the whole pool to one sequence, up to its context */
    assert_int_equal(kv_seq_reserve(kv, 2, 20), 0);
    assert_int_equal(kv_n_free_blocks(kv), 1);
    kv_free(kv);
    kv_free(NULL);
}

/* ---- fork ------------------------------------------------------------------ */

static void test_fork_refcounts(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[200];
    assert_int_equal(kv_create(&kv, 2, 6, 4, 8, 4, 32, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 10), 0); /* 3 blocks */
    write_rows(kv, 0, 1, 0, 10);
    kv_seq_set_len(kv, 0, 10);

    /* bad arguments */
    assert_int_equal(kv_seq_fork(kv, 0, 0, 4), -EINVAL);
    assert_int_equal(kv_seq_fork(kv, 1, 0, 11), -EINVAL);
    assert_int_equal(kv_seq_fork(kv, 4, 0, 4), -EINVAL);
    assert_int_equal(kv_seq_fork(kv, 1, -1, 0), -EINVAL);
    assert_int_equal(kv_seq_fork(kv, 1, 0, -1), -EINVAL);

    /* 10 positions: blocks 0 and 1 shared, the partial block 2 copied */
    assert_int_equal(kv_seq_fork(kv, 1, 0, 10), 0);
    assert_int_equal(kv_n_free_blocks(kv), 4);
    assert_int_equal(kv_seq_len(kv, 1), 10);
    assert_int_equal(kv_seq_n_blocks(kv, 1), 3);
    const int32_t *t0 = kv_seq_table(kv, 0), *t1 = kv_seq_table(kv, 1);
    assert_int_equal(t1[0], t0[0]);
    assert_int_equal(t1[1], t0[1]);
    assert_int_not_equal(t1[2], t0[2]);
    assert_int_equal(kv_block_refs(kv, t0[0]), 2);
    assert_int_equal(kv_block_refs(kv, t0[2]), 1);
    assert_true(rows_are(kv, 1, 1, 0, 10));
    check_refs(kv);

    /* a block-aligned fork copies nothing */
    assert_int_equal(kv_seq_fork(kv, 2, 0, 8), 0);
    assert_int_equal(kv_n_free_blocks(kv), 4);
    assert_int_equal(kv_block_refs(kv, t0[1]), 3);
    assert_int_equal(kv_seq_len(kv, 2), 8);
    /* an empty fork empties dst */
    assert_int_equal(kv_seq_fork(kv, 3, 0, 0), 0);
    assert_int_equal(kv_seq_n_blocks(kv, 3), 0);
    /* forking onto a sequence that holds blocks releases them first */
    assert_int_equal(kv_seq_reserve(kv, 3, 8), 0);
    assert_int_equal(kv_n_free_blocks(kv), 2);
    assert_int_equal(kv_seq_fork(kv, 3, 0, 5), 0);
    assert_int_equal(kv_n_free_blocks(kv), 3);
    assert_true(rows_are(kv, 3, 1, 0, 5));
    check_refs(kv);

    /* shared blocks are freed only when the last holder lets go */
    int32_t shared0 = t0[0];
    kv_seq_clear(kv, 0);
    assert_int_equal(kv_n_free_blocks(kv), 4); /* only seq 0's own block 2 */
    assert_int_equal(kv_block_refs(kv, shared0), 3);
    assert_true(rows_are(kv, 1, 1, 0, 10));
    kv_seq_clear(kv, 2);
    kv_seq_clear(kv, 3);
    assert_int_equal(kv_block_refs(kv, shared0), 1);
    assert_true(rows_are(kv, 1, 1, 0, 10));
    kv_seq_clear(kv, 1);
    assert_int_equal(kv_n_free_blocks(kv), 8);
    check_refs(kv);

    /* -ENOSPC: a partial copy with the pool full changes nothing */
    assert_int_equal(kv_seq_reserve(kv, 0, 32), 0); /* all 8 blocks */
    write_rows(kv, 0, 1, 0, 32);
    kv_seq_set_len(kv, 0, 32);
    assert_int_equal(kv_seq_fork(kv, 1, 0, 6), -ENOSPC);
    assert_int_equal(kv_seq_len(kv, 1), 0);
    assert_int_equal(kv_n_free_blocks(kv), 0);
    assert_int_equal(kv_seq_fork(kv, 1, 0, 8), 0); /* aligned: fits */
    assert_int_equal(kv_seq_fork(kv, 2, 1, 7), -ENOSPC);
    assert_int_equal(kv_seq_len(kv, 2), 0);
    check_refs(kv);
    kv_free(kv);
}

static void test_fork_divergent_writes(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[200];
    assert_int_equal(kv_create(&kv, 3, 4, 4, 10, 2, 24, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 10), 0);
    write_rows(kv, 0, 1, 0, 10);
    kv_seq_set_len(kv, 0, 10);
    assert_int_equal(kv_seq_fork(kv, 1, 0, 6), 0); /* block 0 shared, 1 copied */
    assert_int_equal(kv_n_free_blocks(kv), 6);

    /* seq 1 goes its own way after position 6: its own partial block and
     * new blocks */
    assert_int_equal(kv_blocks_needed(kv, 1, 13), 2);
    assert_int_equal(kv_seq_reserve(kv, 1, 13), 0);
    write_rows(kv, 1, 2, 6, 13);
    kv_seq_set_len(kv, 1, 13);
    assert_true(rows_are(kv, 0, 1, 0, 10)); /* seq 0 untouched */
    assert_true(rows_are(kv, 1, 1, 0, 6));
    assert_true(rows_are(kv, 1, 2, 6, 13));
    /* and seq 0 after position 6 does not reach seq 1 */
    write_rows(kv, 0, 3, 6, 10);
    assert_true(rows_are(kv, 1, 2, 6, 13));

    /* rewinding seq 1 into the shared block: not writable until reserved,
     * which copies the block (copy on write) */
    kv_seq_truncate(kv, 1, 2);
    assert_int_equal(kv_seq_n_blocks(kv, 1), 1);
    assert_int_equal(kv_check_write(kv, 1, 2, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "shared"));
    assert_int_equal(kv_check_write(kv, 0, 2, err, sizeof err), -EINVAL); /* both ways */
    int free_before = kv_n_free_blocks(kv);
    assert_int_equal(kv_blocks_needed(kv, 1, 4), 1);
    assert_int_equal(kv_blocks_needed(kv, 1, 6), 2);
    assert_int_equal(kv_seq_reserve(kv, 1, 4), 0);
    assert_int_equal(kv_n_free_blocks(kv), free_before - 1);
    assert_int_not_equal(kv_seq_table(kv, 1)[0], kv_seq_table(kv, 0)[0]);
    assert_int_equal(kv_block_refs(kv, kv_seq_table(kv, 0)[0]), 1);
    assert_true(rows_are(kv, 1, 1, 0, 2)); /* the copy kept the prefix */
    write_rows(kv, 1, 4, 2, 4);
    assert_true(rows_are(kv, 0, 1, 0, 6));
    assert_true(rows_are(kv, 1, 4, 2, 4));
    assert_int_equal(kv_check_write(kv, 0, 2, err, sizeof err), 0);
    check_refs(kv);

    kv_free(kv);

    /* a reserve that needs a copy and cannot get it changes nothing */
    assert_int_equal(kv_create(&kv, 1, 4, 4, 3, 2, 12, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 12), 0); /* every block */
    write_rows(kv, 0, 1, 0, 12);
    kv_seq_set_len(kv, 0, 12);
    assert_int_equal(kv_seq_fork(kv, 1, 0, 8), 0);
    kv_seq_truncate(kv, 1, 1);
    assert_int_equal(kv_n_free_blocks(kv), 0);
    assert_int_equal(kv_blocks_needed(kv, 1, 2), 1);
    int32_t tb = kv_seq_table(kv, 1)[0];
    assert_int_equal(kv_seq_reserve(kv, 1, 2), -ENOSPC);
    assert_int_equal(kv_seq_table(kv, 1)[0], tb);
    assert_int_equal(kv_block_refs(kv, tb), 2);
    check_refs(kv);
    kv_free(kv);
}

/* kv_blocks_held counts distinct blocks: forked (shared) blocks once. */
static void test_blocks_held(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[128];
    assert_int_equal(kv_create(&kv, 1, 4, 4, 16, 4, 64, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 12), 0); /* 3 blocks */
    kv_seq_set_len(kv, 0, 12);
    assert_int_equal(kv_seq_fork(kv, 2, 0, 8), 0);  /* shares 2 */
    assert_int_equal(kv_seq_reserve(kv, 1, 5), 0);  /* 2 of its own */
    assert_int_equal(kv_blocks_held(kv, 0, 1), 3);
    assert_int_equal(kv_blocks_held(kv, 0, 2), 5);
    assert_int_equal(kv_blocks_held(kv, 0, 3), 5); /* slot 2's are slot 0's */
    assert_int_equal(kv_blocks_held(kv, 2, 1), 2);
    assert_int_equal(kv_blocks_held(kv, 2, 2), 2); /* slot 3 is empty */
    assert_int_equal(kv_blocks_held(kv, 3, 2), -EINVAL);
    assert_int_equal(kv_blocks_held(kv, 0, 3), 5); /* the scratch was reset */
    kv_seq_clear(kv, 0);
    assert_int_equal(kv_blocks_held(kv, 0, 4), 4);
    kv_free(kv);
}

/* ---- paged attention ------------------------------------------------------- */

static void check_paged_attention(int NH, int NKV, int HS, int BS, int TK) {
    int kd = NKV * HS, qd = NH * HS;
    int nb = (TK + BS - 1) / BS, pool_blocks = nb + 5;
    size_t bstride = (size_t)2 * BS * kd + 3; /* keys, values, and a gap */
    float *pool = malloc((size_t)pool_blocks * bstride * sizeof(float));
    float *k = malloc((size_t)TK * kd * sizeof(float)), *v = malloc((size_t)TK * kd * sizeof(float));
    float *q = malloc((size_t)qd * sizeof(float));
    float *o1 = malloc((size_t)qd * sizeof(float)), *o2 = malloc((size_t)qd * sizeof(float)),
          *o3 = malloc((size_t)qd * sizeof(float));
    float *att = malloc((size_t)TK * sizeof(float));
    unsigned char *mask = malloc((size_t)TK);
    int32_t *perm = malloc((size_t)pool_blocks * sizeof(int32_t));
    assert_true(pool && k && v && q && o1 && o2 && o3 && att && mask && perm);
    for (size_t i = 0; i < (size_t)pool_blocks * bstride; i++) pool[i] = NAN; /* unused: poison */
    /* a random table: the first nb of a random permutation of the pool */
    for (int i = 0; i < pool_blocks; i++) perm[i] = i;
    for (int i = pool_blocks - 1; i > 0; i--) {
        int j = (int)(urand() % (uint32_t)(i + 1));
        int32_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int j = 0; j < TK; j++) {
        float *kb = pool + (size_t)perm[j / BS] * bstride + (size_t)(j % BS) * kd;
        float *vb = kb + (size_t)BS * kd;
        for (int i = 0; i < kd; i++) {
            k[(size_t)j * kd + i] = kb[i] = 2.0f * frand();
            v[(size_t)j * kd + i] = vb[i] = frand();
        }
        mask[j] = 1;
    }
    for (int i = 0; i < qd; i++) q[i] = 2.0f * frand();
    float scale = 1.0f / sqrtf((float)HS);
    ops_attention_paged(o1, q, pool, pool + (size_t)BS * kd, bstride, perm, BS, (size_t)kd, TK,
                        NH, NKV, HS, scale, att);
    ops_attention(o2, q, k, v, (size_t)kd, TK, NH, NKV, HS, scale, att);
    ops_attention_naive(o3, q, k, v, mask, 1, TK, NH, NKV, HS, scale);
    double d_naive = 0.0;
    for (int i = 0; i < qd; i++) {
        if (o1[i] != o2[i]) /* same order of operations: bitwise equal */
            fail_msg("paged NH %d NKV %d HS %d BS %d TK %d: [%d] %.9g vs contiguous %.9g", NH, NKV,
                     HS, BS, TK, i, o1[i], o2[i]);
        d_naive = fmax(d_naive, fabs((double)o1[i] - o3[i]));
    }
    if (d_naive > 1e-5)
        fail_msg("paged NH %d NKV %d HS %d BS %d TK %d: %g from the naive reference", NH, NKV, HS,
                 BS, TK, d_naive);
    free(pool);
    free(k);
    free(v);
    free(q);
    free(o1);
    free(o2);
    free(o3);
    free(att);
    free(mask);
    free(perm);
}

/* ops_attention_prefill (sgemm, query chunks) for positions p0..TK-1
 * against ops_attention_paged per query over its own prefix of keys. */
static void check_prefill_attention(int NH, int NKV, int HS, int BS, int p0, int TK) {
    int kd = NKV * HS, qd = NH * HS, nq = TK - p0, nb = (TK + BS - 1) / BS;
    size_t bstride = (size_t)2 * BS * kd + 1, ldo = (size_t)qd + 2, ldq = (size_t)qd + 5;
    float *pool = malloc((size_t)(nb + 2) * bstride * sizeof(float));
    int32_t *table = malloc((size_t)nb * sizeof(int32_t));
    float *q = malloc((size_t)nq * ldq * sizeof(float));
    float *got = malloc((size_t)nq * ldo * sizeof(float)), *want = malloc((size_t)qd * sizeof(float));
    float *att = malloc((size_t)TK * sizeof(float));
    float *ws = malloc(ops_attention_prefill_ws(nq, p0, HS));
    assert_true(pool && table && q && got && want && att && ws);
    for (size_t i = 0; i < (size_t)(nb + 2) * bstride; i++) pool[i] = 2.0f * frand();
    for (int i = 0; i < nb; i++) table[i] = (int32_t)(nb + 1 - i); /* reversed, 2 spare */
    for (size_t i = 0; i < (size_t)nq * ldq; i++) q[i] = 2.0f * frand();
    for (size_t i = 0; i < (size_t)nq * ldo; i++) got[i] = -7.0f;
    float scale = 1.0f / sqrtf((float)HS);
    const float *kp = pool, *vp = pool + (size_t)BS * kd;
    assert_int_equal(ops_attention_prefill(got, ldo, q, ldq, nq, p0, kp, vp, false, bstride, table, BS,
                                           (size_t)kd, NH, NKV, HS, scale, ws), 0);
    for (int i = 0; i < nq; i++) {
        ops_attention_paged(want, q + (size_t)i * ldq, kp, vp, bstride, table, BS, (size_t)kd,
                            p0 + i + 1, NH, NKV, HS, scale, att);
        for (int c = 0; c < qd; c++)
            if (fabsf(got[(size_t)i * ldo + c] - want[c]) > 1e-5f * (1 + fabsf(want[c])))
                fail_msg("prefill NH %d NKV %d HS %d BS %d p0 %d TK %d: query %d [%d] %.7f, "
                         "per-token %.7f", NH, NKV, HS, BS, p0, TK, i, c,
                         got[(size_t)i * ldo + c], want[c]);
        for (size_t c = (size_t)qd; c < ldo; c++) /* past the heads: untouched */
            assert_true(got[(size_t)i * ldo + c] == -7.0f);
    }
    assert_int_equal(ops_attention_prefill(got, ldo, q, ldq, 0, p0, kp, vp, false, bstride, table, BS,
                                           (size_t)kd, NH, NKV, HS, scale, ws), -EINVAL);
    /* the pool in half floats: the F16 prefill against the F16 per-token
     * kernel, and that against the F32 one on the same (rounded) values */
    size_t npool = (size_t)(nb + 2) * bstride;
    uint16_t *pool16 = malloc(npool * sizeof(uint16_t));
    float *want32 = malloc((size_t)qd * sizeof(float));
    assert_true(pool16 && want32);
    for (size_t i = 0; i < npool; i++) {
        pool16[i] = wt_f16_from_f32(pool[i]);
        pool[i] = st_f16_to_f32(pool16[i]);
    }
    const uint16_t *kp16 = pool16, *vp16 = pool16 + (size_t)BS * kd;
    assert_int_equal(ops_attention_prefill(got, ldo, q, ldq, nq, p0, kp16, vp16, true, bstride,
                                           table, BS, (size_t)kd, NH, NKV, HS, scale, ws), 0);
    for (int i = 0; i < nq; i++) {
        ops_attention_paged_f16(want, q + (size_t)i * ldq, kp16, vp16, bstride, table, BS,
                                (size_t)kd, p0 + i + 1, NH, NKV, HS, scale, att);
        ops_attention_paged(want32, q + (size_t)i * ldq, kp, vp, bstride, table, BS, (size_t)kd,
                            p0 + i + 1, NH, NKV, HS, scale, att);
        for (int c = 0; c < qd; c++) {
            if (fabsf(got[(size_t)i * ldo + c] - want[c]) > 1e-5f * (1 + fabsf(want[c])))
                fail_msg("f16 prefill HS %d query %d [%d] %.7f, per-token %.7f", HS, i, c,
                         got[(size_t)i * ldo + c], want[c]);
            if (fabsf(want32[c] - want[c]) > 1e-5f * (1 + fabsf(want[c])))
                fail_msg("f16 per-token HS %d query %d [%d] %.7f, F32 kernel %.7f", HS, i, c,
                         want[c], want32[c]);
        }
    }
    free(pool16), free(want32);
    free(pool), free(table), free(q), free(got), free(want), free(att), free(ws);
}

static void test_prefill_attention(void **state) {
    (void)state;
    check_prefill_attention(4, 4, 8, 16, 0, 1);
    check_prefill_attention(4, 2, 8, 4, 0, 40);     /* GQA */
    check_prefill_attention(6, 3, 16, 16, 0, 150);  /* 3 query chunks, the last partial */
    check_prefill_attention(2, 1, 64, 32, 37, 130); /* after a cached prefix */
    check_prefill_attention(8, 8, 5, 7, 5, 70);
}

static void test_paged_attention(void **state) {
    (void)state;
    check_paged_attention(4, 4, 8, 16, 1);
    check_paged_attention(4, 2, 8, 4, 13);   /* GQA, partial last block */
    check_paged_attention(8, 1, 16, 1, 9);   /* MQA, one position per block */
    check_paged_attention(6, 3, 5, 7, 70);
    check_paged_attention(2, 2, 64, 32, 32); /* exactly one full block */
    for (int r = 0; r < 20; r++) {
        int NKV = 1 + (int)(urand() % 4), group = 1 + (int)(urand() % 3);
        int HS = 1 + (int)(urand() % 24), BS = 1 + (int)(urand() % 20);
        int TK = 1 + (int)(urand() % 150);
        check_paged_attention(NKV * group, NKV, HS, BS, TK);
    }
}

/* ---- the model through scattered and forked tables ------------------------- */

enum { N_PROMPT = 22, N_GEN = 5 };

static void forward_ok(model *m, kv_cache *kv, int seq, const int32_t *ids, int n, int pos0,
                       float *logits) {
    int32_t pos[N_PROMPT + N_GEN], sid[N_PROMPT + N_GEN];
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sid[i] = seq;
    }
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid};
    char err[256] = "";
    if (model_forward(m, kv, &b, logits, err, sizeof err) != 0)
        fail_msg("forward seq %d: %s", seq, err);
}

static double max_diff(const float *a, const float *b, int n) {
    double mx = 0.0;
    for (int i = 0; i < n; i++) mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx;
}

/* The llama-tiny conformance model loaded with o (NULL: defaults); skips
 * the test when ../shared is absent. */
static model *tiny_llama(const model_opts *o) {
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path) skip();
    char err[256] = "";
    model *m = NULL;
    if (model_load_opts(&m, path, o, err, sizeof err) != 0) fail_msg("load %s: %s", path, err);
    free(path);
    return m;
}

static void test_model_paged(void **state) {
    (void)state;
    char err[256] = "";
    model *m = tiny_llama(NULL);
    int V = model_hp(m)->n_vocab;
    int32_t ids[N_PROMPT + N_GEN];
    for (int i = 0; i < N_PROMPT; i++) ids[i] = (int32_t)((i * 7919 + 3) % V);
    float *ref = malloc((size_t)(N_GEN + 1) * V * sizeof(float));
    float *got = malloc((size_t)V * sizeof(float));
    assert_non_null(ref);
    assert_non_null(got);

    /* model_kv_create sizes */
    kv_cache *kv = NULL;
    int per_seq = (model_n_ctx(m) + KV_DEFAULT_BLOCK_SIZE - 1) / KV_DEFAULT_BLOCK_SIZE;
    assert_int_equal(model_kv_create(m, 3, 0, 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv_n_blocks(kv), 3 * per_seq);
    assert_int_equal(kv_block_size(kv), KV_DEFAULT_BLOCK_SIZE);
    assert_int_equal(kv_n_ctx(kv), model_n_ctx(m));
    kv_free(kv);
    assert_int_equal(model_kv_create(m, 2, 100, 8, &kv, err, sizeof err), 0);
    assert_int_equal(kv_n_blocks(kv), 13); /* at least 100 positions */
    kv_free(kv);
    assert_int_equal(model_kv_create(m, 0, 0, 0, &kv, err, sizeof err), -EINVAL);
    assert_int_equal(model_kv_create(m, 1, -1, 0, &kv, err, sizeof err), -EINVAL);

    /* the reference: one sequence, one contiguous run of blocks */
    assert_int_equal(model_kv_create(m, 1, 0, 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, N_PROMPT + N_GEN), 0);
    forward_ok(m, kv, 0, ids, N_PROMPT, 0, ref);
    for (int j = 0; j < N_GEN; j++) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (ref[(size_t)j * V + i] > ref[(size_t)j * V + best]) best = i;
        ids[N_PROMPT + j] = best;
        forward_ok(m, kv, 0, &ids[N_PROMPT + j], 1, N_PROMPT + j, ref + (size_t)(j + 1) * V);
    }
    kv_free(kv);

    /* blocks of 4, reserved a little at a time while other sequences take
     * blocks in between: seq 0's table is scattered */
    assert_int_equal(model_kv_create(m, 4, 4 * 64, 4, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 2, 5), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 3), 0);
    assert_int_equal(kv_seq_reserve(kv, 3, 8), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 9), 0);
    assert_int_equal(kv_seq_reserve(kv, 2, 13), 0);
    kv_seq_clear(kv, 3); /* its blocks come back, most recent first */
    assert_int_equal(kv_seq_reserve(kv, 0, N_PROMPT + N_GEN), 0);
    const int32_t *t0 = kv_seq_table(kv, 0);
    bool scattered = false;
    for (int i = 1; i < kv_seq_n_blocks(kv, 0); i++) scattered |= t0[i] != t0[i - 1] + 1;
    assert_true(scattered);

    /* an unreserved or shared position is refused, nothing written */
    int32_t p_bad = 0, s_bad = 1;
    model_batch bad = {.n_tokens = 1, .token = ids, .pos = &p_bad, .seq_id = &s_bad};
    assert_int_equal(model_forward(m, kv, &bad, got, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "position 0 of sequence 1 is not reserved"));
    assert_int_equal(kv_seq_len(kv, 1), 0);

    forward_ok(m, kv, 0, ids, N_PROMPT, 0, got);
    double d_scatter = max_diff(got, ref, V);
    for (int j = 0; j < N_GEN; j++) {
        forward_ok(m, kv, 0, &ids[N_PROMPT + j], 1, N_PROMPT + j, got);
        d_scatter = fmax(d_scatter, max_diff(got, ref + (size_t)(j + 1) * V, V));
    }
    if (d_scatter > 1e-6) fail_msg("scattered blocks change the logits by %g", d_scatter);

    /* fork the first 19 positions (4 full blocks shared, 1 copied) and
     * finish the prompt and the generation in seq 1 */
    int free0 = kv_n_free_blocks(kv);
    assert_int_equal(kv_seq_fork(kv, 1, 0, N_PROMPT - 3), 0);
    assert_int_equal(kv_n_free_blocks(kv), free0 - 1);
    assert_int_equal(kv_seq_table(kv, 1)[3], kv_seq_table(kv, 0)[3]);
    assert_int_equal(kv_seq_reserve(kv, 1, N_PROMPT + N_GEN), 0);
    forward_ok(m, kv, 1, ids + N_PROMPT - 3, 3, N_PROMPT - 3, got);
    double d_fork = max_diff(got, ref, V);
    for (int j = 0; j < N_GEN; j++) {
        forward_ok(m, kv, 1, &ids[N_PROMPT + j], 1, N_PROMPT + j, got);
        d_fork = fmax(d_fork, max_diff(got, ref + (size_t)(j + 1) * V, V));
    }
    if (d_fork > 1e-5) fail_msg("the forked sequence's logits differ by %g", d_fork);

    /* seq 0 cannot rewrite a block it shares with seq 1 ... */
    p_bad = 9;
    s_bad = 0;
    assert_int_equal(model_forward(m, kv, &bad, got, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "shared"));
    assert_int_equal(kv_seq_len(kv, 0), N_PROMPT + N_GEN);
    /* ... until it rewinds and reserves (copy on write); then it recomputes
     * the same logits and seq 1 still sees its own cache */
    kv_seq_truncate(kv, 0, 9);
    assert_int_equal(kv_seq_reserve(kv, 0, N_PROMPT + N_GEN), 0);
    assert_int_not_equal(kv_seq_table(kv, 0)[2], kv_seq_table(kv, 1)[2]);
    assert_int_equal(kv_seq_table(kv, 0)[1], kv_seq_table(kv, 1)[1]);
    forward_ok(m, kv, 0, ids + 9, N_PROMPT - 9, 9, got);
    double d_cow = max_diff(got, ref, V);
    int last = N_PROMPT + N_GEN - 1;
    forward_ok(m, kv, 1, &ids[last], 1, last, got); /* a rewind of seq 1's last step */
    d_cow = fmax(d_cow, max_diff(got, ref + (size_t)N_GEN * V, V));
    if (d_cow > 1e-5) fail_msg("after copy on write the logits differ by %g", d_cow);
    printf("  llama-tiny, blocks of 4: scattered max diff %.3g, forked %.3g, after copy on write "
           "%.3g\n", d_scatter, d_fork, d_cow);
    kv_free(kv);
    free(ref);
    free(got);
    model_free(m);
}

/* Every ISA level's attention kernels (portable C, AVX2, AVX-512 where the
 * CPU has them) through the same checks: paged against contiguous and the
 * naive reference, F32 and F16, per-token against the prefill GEMMs. */
static void test_paged_attention_levels(void **state) {
    for (int isa = CPU_ISA_SCALAR; isa < CPU_ISA_COUNT; isa++) {
        if (!cpu_isa_supported((cpu_isa)isa)) continue;
        ops_attention_force_isa(isa);
        test_paged_attention(state);
        test_prefill_attention(state);
    }
    ops_attention_force_isa(-1);
}

/* A batch as the scheduler builds them: one sequence's decode token, then
 * another's prompt chunk of 40 positions (attended through GEMMs), then a
 * third's chunk of 36 that continues an earlier one: every logits row as
 * when each sequence runs alone. */
static void test_model_mixed_runs(void **state) {
    (void)state;
    char err[256] = "";
    model *m = tiny_llama(NULL);
    int V = model_hp(m)->n_vocab;
    enum { NA = 12, NB = 40, NC0 = 20, NC = 36, NT = 1 + NB + NC };
    int32_t a[NA + 1], bt[NB], c[NC0 + NC];
    for (int i = 0; i < NA + 1; i++) a[i] = (int32_t)((i * 31 + 5) % V);
    for (int i = 0; i < NB; i++) bt[i] = (int32_t)((i * 17 + 2) % V);
    for (int i = 0; i < NC0 + NC; i++) c[i] = (int32_t)((i * 13 + 7) % V);
    float *alone = malloc((size_t)3 * V * sizeof(float)), *got = malloc((size_t)3 * V * sizeof(float));
    float *scratch = malloc((size_t)(NC0 + NC) * V * sizeof(float));
    assert_true(alone && got && scratch);
    /* alone: each in its own pool, token by token past 32 so nothing
     * batched-long is involved */
    kv_cache *kv = NULL;
    assert_int_equal(model_kv_create(m, 1, 0, 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, NA + 1), 0);
    for (int i = 0; i <= NA; i++) forward_ok(m, kv, 0, &a[i], 1, i, alone);
    kv_seq_clear(kv, 0);
    assert_int_equal(kv_seq_reserve(kv, 0, NB), 0);
    for (int i = 0; i < NB; i++) forward_ok(m, kv, 0, &bt[i], 1, i, alone + V);
    kv_seq_clear(kv, 0);
    assert_int_equal(kv_seq_reserve(kv, 0, NC0 + NC), 0);
    for (int i = 0; i < NC0 + NC; i++) forward_ok(m, kv, 0, &c[i], 1, i, alone + 2 * V);
    kv_free(kv);
    /* together: a's prompt and c's first 20 positions first, then the batch */
    assert_int_equal(model_kv_create(m, 3, 0, 8, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, NA + 1), 0);
    assert_int_equal(kv_seq_reserve(kv, 1, NB), 0);
    assert_int_equal(kv_seq_reserve(kv, 2, NC0 + NC), 0);
    forward_ok(m, kv, 0, a, NA, 0, scratch);
    forward_ok(m, kv, 2, c, NC0, 0, scratch);
    int32_t tok[NT], pos[NT], sid[NT];
    int8_t want[NT] = {0};
    tok[0] = a[NA], pos[0] = NA, sid[0] = 0, want[0] = 1;
    for (int i = 0; i < NB; i++) tok[1 + i] = bt[i], pos[1 + i] = i, sid[1 + i] = 1;
    want[NB] = 1;
    for (int i = 0; i < NC; i++)
        tok[1 + NB + i] = c[NC0 + i], pos[1 + NB + i] = NC0 + i, sid[1 + NB + i] = 2;
    want[NT - 1] = 1;
    model_batch b = {.n_tokens = NT, .token = tok, .pos = pos, .seq_id = sid, .logits = want};
    if (model_forward(m, kv, &b, got, err, sizeof err) != 0) fail_msg("mixed batch: %s", err);
    for (int r = 0; r < 3; r++) {
        double d = max_diff(got + (size_t)r * V, alone + (size_t)r * V, V);
        if (d > 1e-4) fail_msg("mixed batch row %d: %g from the sequence alone", r, d);
    }
    kv_free(kv);
    free(alone), free(got), free(scratch);
    model_free(m);
}

/* An F16 pool (model_opts.kv_f16): rows written through kv_write read back
 * rounded to half, copy-on-write copies them; and llama-tiny's logits over
 * a prompt and a greedy continuation stay within half-float rounding of the
 * F32 cache's, with the same tokens. */
static void test_f16_pool(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[256] = "";
    assert_int_equal(kv_create_typed(&kv, 2, 4, 4, 8, 2, 32, true, err, sizeof err), 0);
    assert_true(kv_is_f16(kv));
    assert_null(kv_k(kv, 0, 0, 0));
    assert_null(kv_pool_k(kv, 0));
    assert_int_equal(kv_seq_reserve(kv, 0, 6), 0);
    float k[4] = {1.0f, -2.5f, 0.1f, 65504.0f}, v[4] = {3.0f, 1e-3f, -0.333f, 7.0f};
    kv_write(kv, 1, 0, 5, k, v);
    kv_seq_set_len(kv, 0, 6);
    const uint16_t *k16 = kv_pool_k16(kv, 1), *v16 = kv_pool_v16(kv, 1);
    int32_t blk = kv_seq_table(kv, 0)[1];
    size_t row = (size_t)blk * kv_block_stride(kv) + 1 * 4; /* position 5: row 1 of block 1 */
    for (int i = 0; i < 4; i++) {
        assert_true(k16[row + i] == wt_f16_from_f32(k[i]));
        assert_true(v16[row + i] == wt_f16_from_f32(v[i]));
    }
    assert_int_equal(kv_seq_fork(kv, 1, 0, 6), 0); /* the partial block is copied */
    int32_t blk1 = kv_seq_table(kv, 1)[1];
    assert_true(blk1 != blk);
    assert_memory_equal(k16 + (size_t)blk1 * kv_block_stride(kv), k16 + (size_t)blk * kv_block_stride(kv),
                        kv_block_stride(kv) / 2 * sizeof(uint16_t));
    kv_free(kv);

    model_opts o16 = {.kv_f16 = true};
    model *m32 = tiny_llama(NULL), *m16 = tiny_llama(&o16);
    int V = model_hp(m32)->n_vocab;
    int32_t ids[N_PROMPT + N_GEN];
    for (int i = 0; i < N_PROMPT; i++) ids[i] = (int32_t)((i * 7919 + 3) % V);
    float *a = malloc((size_t)V * sizeof(float)), *b = malloc((size_t)V * sizeof(float));
    kv_cache *k32 = NULL, *kh = NULL;
    assert_int_equal(model_kv_create(m32, 1, 0, 0, &k32, err, sizeof err), 0);
    assert_int_equal(model_kv_create(m16, 1, 0, 0, &kh, err, sizeof err), 0);
    assert_false(kv_is_f16(k32));
    assert_true(kv_is_f16(kh));
    assert_true(kv_bytes(kh) * 10 < kv_bytes(k32) * 6); /* about half: the pool in halves */
    assert_int_equal(kv_seq_reserve(k32, 0, N_PROMPT + N_GEN), 0);
    assert_int_equal(kv_seq_reserve(kh, 0, N_PROMPT + N_GEN), 0);
    double worst = 0;
    for (int j = 0; j <= N_GEN; j++) {
        const int32_t *in = j ? &ids[N_PROMPT + j - 1] : ids;
        int n = j ? 1 : N_PROMPT, p0 = j ? N_PROMPT + j - 1 : 0;
        forward_ok(m32, k32, 0, in, n, p0, a);
        forward_ok(m16, kh, 0, in, n, p0, b);
        worst = fmax(worst, max_diff(a, b, V));
        int best = 0;
        for (int i = 1; i < V; i++)
            if (a[i] > a[best]) best = i;
        int best16 = 0;
        for (int i = 1; i < V; i++)
            if (b[i] > b[best16]) best16 = i;
        assert_int_equal(best16, best);
        if (j < N_GEN) ids[N_PROMPT + j] = best;
    }
    print_message("  llama-tiny, F16 KV against F32 KV: largest logit difference %.2g\n", worst);
    assert_true(worst > 0 && worst < 1e-2);
    kv_free(k32), kv_free(kh);
    free(a), free(b);
    model_free(m32), model_free(m16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reserve_accounting),
        cmocka_unit_test(test_fork_refcounts),
        cmocka_unit_test(test_fork_divergent_writes),
        cmocka_unit_test(test_blocks_held),
        cmocka_unit_test(test_paged_attention),
        cmocka_unit_test(test_prefill_attention),
        cmocka_unit_test(test_paged_attention_levels),
        cmocka_unit_test(test_model_paged),
        cmocka_unit_test(test_model_mixed_runs),
        cmocka_unit_test(test_f16_pool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
