/* ops_attention_prefill.c - causal attention for a run of consecutive query
 * positions of one sequence as matrix products (ops.h).
 *
 * Prefill asks every query of a prompt to attend over the keys before it:
 * per head that is Q[nq, HS] . K[TK, HS]^T and P[nq, TK] . V[TK, HS], two
 * GEMMs of which the per-(token, head) kernel computes one dot product at a
 * time (about 5 GFLOP/s there against sgemm's 100+). The queries go in
 * chunks of OPS__QCHUNK so that a chunk's product covers only the keys up to
 * its last position (causal: about 1/8 of the work past the diagonal is
 * computed and masked instead of half). Keys and values of one kv head are
 * gathered out of the paged cache into contiguous rows first (a copy of
 * 2 * TK * HS floats against the 4 * nq * TK * HS of the products); with
 * AVX-512 the products run on ops_gemm and the engine's pool (values
 * gathered transposed, the layout it multiplies by), else on OpenBLAS. */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"
#include "safetensors.h" /* st_f16_to_f32 */

#define OPS__QCHUNK 64

size_t ops_attention_prefill_ws(int nq, int p0, int HS)
{
    size_t tk = (size_t)p0 + (size_t)nq;
    size_t qc = nq < OPS__QCHUNK ? (size_t)nq : OPS__QCHUNK;
    return (2 * tk * (size_t)HS + qc * tk) * sizeof(float);
}

/* Rows [0, n) of kv head g (HS elements at + g * HS) out of the paged pool
 * (floats, or half floats when f16) as floats: rows dst[j * HS + d], or
 * transposed dst[d * n + j]. */
static void ops__gather(float *dst, const void *pool, bool f16, size_t bstride,
                        const int32_t *table, int BS, size_t ldk, int g, int HS, int n,
                        bool transposed)
{
    const float *p32 = pool;
    const uint16_t *p16 = pool;
    for (int j = 0; j < n; j++) {
        size_t off = (size_t)table[j / BS] * bstride + (size_t)(j % BS) * ldk + (size_t)g * HS;
        if (!f16 && !transposed) {
            memcpy(dst + (size_t)j * HS, p32 + off, (size_t)HS * sizeof(float));
            continue;
        }
        for (int d = 0; d < HS; d++) {
            float val = f16 ? st_f16_to_f32(p16[off + d]) : p32[off + d];
            dst[transposed ? (size_t)d * n + j : (size_t)j * HS + d] = val;
        }
    }
}

int ops_attention_prefill(float *out, size_t ldo, const float *q, size_t ldq, int nq, int p0,
                          const void *k, const void *v, bool kv_f16, size_t bstride,
                          const int32_t *table, int BS, size_t ldk, int NH, int NKV, int HS,
                          float scale, float *ws)
{
    if (nq <= 0 || p0 < 0 || NKV <= 0 || NH % NKV)
        return -EINVAL;
    int TK = p0 + nq, group = NH / NKV;
    /* ops_gemm on the engine's pool where it runs; else OpenBLAS, with our
     * threads parked */
    bool ours = ops_gemm_available();
    tp_pool *pool = ops_matmul_pool();
    if (!ours)
        tp_park(pool);
    float *kg = ws, *vg = kg + (size_t)TK * HS, *s = vg + (size_t)TK * HS;
    for (int g = 0; g < NKV; g++) {
        ops__gather(kg, k, kv_f16, bstride, table, BS, ldk, g, HS, TK, false);
        ops__gather(vg, v, kv_f16, bstride, table, BS, ldk, g, HS, TK, ours); /* ours: V^T */
        for (int h = g * group; h < (g + 1) * group; h++)
            for (int c0 = 0; c0 < nq; c0 += OPS__QCHUNK) {
                int nc = nq - c0 < OPS__QCHUNK ? nq - c0 : OPS__QCHUNK;
                int keys = p0 + c0 + nc; /* up to the chunk's last position */
                const float *qc = q + (size_t)c0 * ldq + (size_t)h * HS;
                float *oc = out + (size_t)c0 * ldo + (size_t)h * HS;
                if (ours)
                    ops_gemm(s, (size_t)keys, qc, ldq, kg, (size_t)HS, NULL, nc, HS, keys, pool);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nc, keys, HS, 1.0f, qc,
                                (int)ldq, kg, HS, 0.0f, s, keys);
                for (int i = 0; i < nc; i++) {
                    float *row = s + (size_t)i * keys;
                    int seen = p0 + c0 + i + 1; /* keys 0..its own position */
                    for (int j = 0; j < seen; j++)
                        row[j] *= scale;
                    ops_softmax(row, seen);
                    memset(row + seen, 0, (size_t)(keys - seen) * sizeof(float));
                }
                if (ours) /* P . V = P . (V^T)^T, V^T's rows TK apart */
                    ops_gemm(oc, ldo, s, (size_t)keys, vg, (size_t)TK, NULL, nc, keys, HS, pool);
                else
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nc, HS, keys, 1.0f, s,
                                keys, vg, HS, 0.0f, oc, (int)ldo);
            }
    }
    return 0;
}
