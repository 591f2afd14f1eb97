/* ops.h - forward kernels of the decoder architectures: matmul (OpenBLAS),
 * norms, RoPE, activations, softmax and single-query attention.
 *
 * Kernels are free functions on float arrays plus dimensions, outputs first.
 * Dimension alphabet: T tokens, C input channels, OC output channels,
 * NH query heads, NKV key/value heads, HS head size, TK keys attended to.
 * Every fast kernel has a naive reference beside it (ops_*_naive) that the
 * unit tests compare it with; the fast path falls back to the reference when
 * its preconditions fail.
 *
 * Weights of a linear layer are always stored [OC, C] row-major (what
 * PyTorch nn.Linear and GGUF use), so y = x W^T (+ b). The loaders transpose
 * HF Conv1D weights to this layout.
 *
 * Threads: kernels keep no state; they may run concurrently on disjoint
 * outputs. ops_matmul runs on the engine's pool (small T) or OpenBLAS's
 * threads (large T), never both at once.
 */
#ifndef OPS_H
#define OPS_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"
#include "threadpool.h"

/* RoPE pairing conventions. */
typedef enum ops_rope_layout {
    OPS_ROPE_ADJACENT = 0,  /* GGML "normal": dims (2i, 2i+1) rotate together
                               (GGUF llama, after the converter's q/k permute) */
    OPS_ROPE_HALF = 1,      /* HF rotate_half / GGML "neox": dims (i, i+n_rot/2) */
} ops_rope_layout;

/* out[T, OC] = x[T, C] . w[OC, C]^T + bias[OC] (bias may be NULL).
 * ldo is the row stride of out in floats (>= OC), so results can land in a
 * slice of a wider buffer. Uses sgemm for T > 1 and a streaming sgemv for
 * T == 1. out must not alias x or w. */
void ops_matmul(float *out, size_t ldo, const float *x, const float *w,
                const float *bias, int T, int C, int OC);
/* The reference: plain loops, double accumulation. */
void ops_matmul_naive(float *out, size_t ldo, const float *x, const float *w,
                      const float *bias, int T, int C, int OC);

/* ---- matmul: small-T kernel, thread pool, dispatch (ops_matmul.c) -------
 * ops_matmul serves T <= ops_matmul_small_t_max() (decode batches and short
 * prompts) with
 * ops_matmul_small on the engine's pool and the widest ISA the CPU has, and
 * larger T (prefill) with ops_gemm on that pool where the CPU has AVX-512,
 * else with ops_matmul_blas after parking the pool. */

/* Defaults of ops_matmul_small_t_max by the CPU's best ISA: up to there the
 * small-T kernel beat OpenBLAS 0.3.21 sgemm (which uses its Haswell kernels
 * on AVX-512 CPUs) on a 2-core AVX-512 EPYC, for N x K = 768 x 768,
 * 2048 x 768, 768 x 2048 and 32000 x 768 (bench/bench_matmul). Without
 * AVX2, OpenBLAS always. */
#define OPS_MATMUL_SMALL_T_MAX_AVX512 256
#define OPS_MATMUL_SMALL_T_MAX_AVX2 64

/* The small-T kernel: tiles of 4 weight rows x up to 6 (AVX-512) / 3 (AVX2)
 * / 4 (scalar) tokens, so each weight row is read from memory once for all
 * T tokens; float32 accumulation. isa is forced (one cpu_isa_supported()
 * says yes; otherwise scalar runs); pool splits the OC rows across its
 * threads (NULL: the caller's thread only). Falls back to the reference on
 * bad dimensions. Same contract as ops_matmul otherwise. */
void ops_matmul_small(float *out, size_t ldo, const float *x, const float *w,
                      const float *bias, int T, int C, int OC, cpu_isa isa,
                      tp_pool *pool);
/* The OpenBLAS path: sgemv for T == 1, sgemm otherwise (runs on OpenBLAS's
 * threads). */
void ops_matmul_blas(float *out, size_t ldo, const float *x, const float *w,
                     const float *bias, int T, int C, int OC);
/* The pool ops_matmul splits rows over: the one set here (borrowed: it must
 * outlive every ops_matmul call; NULL restores the default), else a default
 * pool of openblas_get_num_threads() threads (capped at the online CPUs)
 * created at the first call and kept for the process's life. Any thread;
 * a pool busy with another thread's matmul makes the second run serially. */
void ops_matmul_set_pool(tp_pool *pool);
tp_pool *ops_matmul_pool(void);
/* The largest T that ops_matmul gives the small-T kernel (0: OpenBLAS always,
 * the old behaviour; -1, the initial value: the default for the CPU's ISA).
 * Any thread; for benchmarks and tuning. */
void ops_matmul_set_small_t_max(int t_max);
int ops_matmul_small_t_max(void);
/* The prefill GEMM (ops_gemm.c): out[t * ldo + r] = sum_c x[t * ldx + c]
 * w[r * ldw + c] (+ bias[r]) for t < T, r < OC, with an AVX-512 blocked
 * kernel on pool (NULL: the caller's thread); float32 sums. Where
 * ops_gemm_available() is false it runs plain loops: callers use
 * OpenBLAS there. Nothing happens for T, C or OC <= 0. */
bool ops_gemm_available(void);
void ops_gemm(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw,
              const float *bias, int T, int C, int OC, tp_pool *pool);
/* ---- end of matmul block ------------------------------------------------ */

/* out[C] = x[C] / sqrt(mean(x^2) + eps) * w[C]. out may equal x. */
void ops_rmsnorm(float *out, const float *x, const float *w, int C, float eps);
void ops_rmsnorm_naive(float *out, const float *x, const float *w, int C,
                       float eps);

/* out[C] = (x - mean) / sqrt(var + eps) * w + b (biased variance); b may be
 * NULL. out may equal x. */
void ops_layernorm(float *out, const float *x, const float *w, const float *b,
                   int C, float eps);
void ops_layernorm_naive(float *out, const float *x, const float *w,
                         const float *b, int C, float eps);

/* Rotates the first n_rot dims of each of the NH heads of x[NH * HS] in
 * place, for position pos. inv_freq[n_rot / 2] holds theta^(-2i / n_rot)
 * (see ops_rope_inv_freq); pos_scale multiplies the position (linear rope
 * scaling: 1 / factor; 1 when unscaled). n_rot is even and <= HS. */
void ops_rope(float *x, int NH, int HS, int n_rot, ops_rope_layout layout,
              const float *inv_freq, float pos_scale, int pos);
/* The reference: computes the angle with pow() per pair, from theta. */
void ops_rope_naive(float *x, int NH, int HS, int n_rot, ops_rope_layout layout,
                    double theta, float pos_scale, int pos);
/* inv_freq[n_rot / 2] = theta^(-2i / n_rot), computed as HF does (in float). */
void ops_rope_inv_freq(float *inv_freq, int n_rot, double theta);

/* x[n] = softmax(x) in place, max-subtracted. */
void ops_softmax(float *x, int n);
void ops_softmax_naive(float *x, int n);

/* x[n] = x * sigmoid(x). */
void ops_silu(float *x, size_t n);
/* out[n] = silu(gate) * up (SwiGLU); out may equal gate or up. */
void ops_swiglu(float *out, const float *gate, const float *up, size_t n);
/* x[n] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (GPT-2 gelu_new). */
void ops_gelu_tanh(float *x, size_t n);

/* Attention of one query token over TK cached keys (causality is the
 * caller's choice of TK):
 *   out[NH * HS]   result, head h at out + h*HS
 *   q[NH * HS]     query (already rotated)
 *   k[TK, ldk]     keys; kv head g of key j at k + j*ldk + g*HS
 *   v[TK, ldk]     values, same layout
 *   att[TK]        scratch
 * Query head h uses kv head h / (NH / NKV) (grouped-query attention);
 * scores are scaled by scale (usually 1/sqrt(HS)). NH % NKV == 0. */
void ops_attention(float *out, const float *q, const float *k, const float *v,
                   size_t ldk, int TK, int NH, int NKV, int HS, float scale,
                   float *att);
/* ops_attention over keys and values kept in fixed-size blocks (the paged
 * KV cache): key j lives in block table[j / BS], row j % BS:
 *   k + table[j / BS] * bstride + (j % BS) * ldk    (kv head g at + g*HS)
 *   v likewise from v
 *   table[ceil(TK / BS)]   block ids; blocks may lie anywhere, any order
 * out, q, att, NH, NKV, HS, scale as ops_attention. Scores and sums are
 * formed in the same order as ops_attention, so the result is bitwise equal
 * to ops_attention over the same keys stored contiguously. */
void ops_attention_paged(float *out, const float *q, const float *k,
                         const float *v, size_t bstride, const int32_t *table,
                         int BS, size_t ldk, int TK, int NH, int NKV, int HS,
                         float scale, float *att);
/* Runs the attention kernels at level isa (a cpu_isa; a level the CPU lacks,
 * or -1, the initial value: the CPU's best), for every thread. For tests,
 * which check each level's kernels against the others. */
void ops_attention_force_isa(int isa);
/* ops_attention_paged over keys and values stored as IEEE half floats (an
 * F16 KV cache, kv_create_typed): the same layout in elements, each
 * converted to float as it is read; float sums as the F32 kernel. */
void ops_attention_paged_f16(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                             size_t bstride, const int32_t *table, int BS, size_t ldk, int TK,
                             int NH, int NKV, int HS, float scale, float *att);
/* Causal attention for the nq consecutive positions p0..p0+nq-1 of one
 * sequence (prefill), through sgemm: query i attends keys 0..p0+i, read
 * through the block table as in ops_attention_paged (TK = p0 + nq keys);
 * k and v are floats, or half floats when kv_f16 (an F16 KV cache).
 *   out[i * ldo + h*HS], q[i * ldq + h*HS]   for i < nq, head h < NH
 *   ws   ops_attention_prefill_ws(nq, p0, HS) bytes of scratch
 * The same result as ops_attention_paged per query up to float rounding
 * (the products' summation order). The products run on ops_gemm and the
 * engine's pool (ops_matmul_pool) where ops_gemm_available, else on
 * OpenBLAS with that pool parked. -EINVAL for bad shapes (nothing
 * written). */
size_t ops_attention_prefill_ws(int nq, int p0, int HS);
int ops_attention_prefill(float *out, size_t ldo, const float *q, size_t ldq, int nq, int p0,
                          const void *k, const void *v, bool kv_f16, size_t bstride,
                          const int32_t *table, int BS, size_t ldk, int NH, int NKV, int HS,
                          float scale, float *ws);
/* The reference over a whole block of queries with an explicit mask:
 *   out[T, NH*HS], q[T, NH*HS], k[TK, NKV*HS], v[TK, NKV*HS],
 *   mask[T, TK]: nonzero where query t may attend key j (each row needs one).
 * Straightforward loops in double. */
void ops_attention_naive(float *out, const float *q, const float *k,
                         const float *v, const unsigned char *mask, int T,
                         int TK, int NH, int NKV, int HS, float scale);

/* y[C] += x[C]. */
void ops_add(float *y, const float *x, size_t n);

#endif
