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
 * outputs. ops_matmul runs on OpenBLAS's threads.
 */
#ifndef OPS_H
#define OPS_H

#include <stddef.h>

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
