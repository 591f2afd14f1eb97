/* trn_ops.h - forward and backward kernels of the decoder ops, for training.
 *
 * Every kernel exists in float (suffix _f32, what training runs) and in
 * double (suffix _f64, what the gradient checks run against central finite
 * differences): both are compiled from one source, trn_ops_impl.inc, so the
 * double check covers the float code line for line.
 *
 * Layout: activations are [T, width] row-major, T = B sequences x L
 * positions (token t = b*L + i). Linear weights are [OC, C] (y = x W^T + b),
 * as in ops.h. Backward kernels ACCUMULATE into parameter gradients (dw, db)
 * and into dx unless the comment says "writes"; any gradient pointer may be
 * NULL when that gradient is not wanted (frozen weights, the first layer's
 * input).
 *
 * Attention is causal within each sequence and never across sequences; keys
 * at positions >= lens[b] (right padding) are masked out as well, so pads
 * never influence a real token. Softmax probabilities are kept for the
 * backward pass: probs[B, NH, L, L].
 *
 * Threads: kernels keep no state; matmuls run on OpenBLAS's threads.
 */
#ifndef TRN_OPS_H
#define TRN_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "ops.h"

#define TRN_OPS_DECLARE(R, S)                                                              \
    /* y[T, ldy] (OC used) = x[T, ldx] w[OC, C]^T + b (b may be NULL); writes */           \
    void trn_matmul_fwd_##S(R *y, size_t ldy, const R *x, size_t ldx, const R *w,          \
                            const R *b, int T, int C, int OC);                             \
    /* dx += dy w; dw += dy^T x; db += sum over t of dy */                                 \
    void trn_matmul_bwd_##S(R *dx, size_t ldx, R *dw, R *db, const R *dy, size_t ldy,      \
                            const R *x, const R *w, int T, int C, int OC);                 \
    /* out = x / sqrt(mean(x^2) + eps) * w per row; rstd[T] saved */                     \
    void trn_rmsnorm_fwd_##S(R *out, R *rstd, const R *x, const R *w, int T, int C,        \
                             R eps);                                                       \
    void trn_rmsnorm_bwd_##S(R *dx, R *dw, const R *dout, const R *x, const R *w,          \
                             const R *rstd, int T, int C);                                 \
    /* out = (x - mean) * rstd * w + b per row; mean[T], rstd[T] saved */                 \
    void trn_layernorm_fwd_##S(R *out, R *mean, R *rstd, const R *x, const R *w,           \
                               const R *b, int T, int C, R eps);                           \
    void trn_layernorm_bwd_##S(R *dx, R *dw, R *db, const R *dout, const R *x, const R *w, \
                               const R *mean, const R *rstd, int T, int C);                \
    /* Rotates NH heads of each row x[t, ld] in place by angle pos[t]*pos_scale*inv_freq; \
     * inverse != 0 rotates back (the backward pass of a rotation is its inverse) */      \
    void trn_rope_##S(R *x, size_t ld, const int32_t *pos, int T, int NH, int HS,          \
                      int n_rot, ops_rope_layout layout, const R *inv_freq, R pos_scale,   \
                      int inverse);                                                        \
    /* out[T, NH*HS] = causal attention of q, k, v (columns of qkv[T, ldq] at q_off,     \
     * k_off, v_off; kv head of query head h is h / (NH / NKV)); probs saved */          \
    void trn_attn_fwd_##S(R *out, R *probs, const R *qkv, size_t ldq, int q_off,           \
                          int k_off, int v_off, const int32_t *lens, int B, int L, int NH, \
                          int NKV, int HS, R scale);                                       \
    /* dqkv (same layout as qkv) += gradients of q, k and v; scratch[2*L*L] */           \
    void trn_attn_bwd_##S(R *dqkv, const R *dout, const R *qkv, size_t ldq, int q_off,     \
                          int k_off, int v_off, const R *probs, const int32_t *lens,       \
                          int B, int L, int NH, int NKV, int HS, R scale, R *scratch);     \
    /* out[T, FF] = silu(gu[:, :FF]) * gu[:, FF:]; writes */                               \
    void trn_swiglu_fwd_##S(R *out, const R *gu, int T, int FF);                           \
    /* dgu[T, 2FF] writes the gradient of gate and up */                                  \
    void trn_swiglu_bwd_##S(R *dgu, const R *dout, const R *gu, int T, int FF);            \
    /* out[n] = gelu_tanh(x) (GPT-2 gelu_new); writes */                                  \
    void trn_gelu_fwd_##S(R *out, const R *x, size_t n);                                   \
    /* dx[n] writes dout * gelu'(x) */                                                     \
    void trn_gelu_bwd_##S(R *dx, const R *dout, const R *x, size_t n);                     \
    /* logp[t] = log_softmax(logits[t])[target[t]], lse[t] saved; 0 where target < 0 */   \
    void trn_logprob_fwd_##S(R *logp, R *lse, const R *logits, const int32_t *target,      \
                             int T, int V);                                                \
    /* dlogits[t] writes dlogp[t] * (onehot(target) - softmax(logits[t])); zero rows      \
     * where target < 0 or dlogp[t] == 0; dlogits may equal logits (in place) */          \
    void trn_logprob_bwd_##S(R *dlogits, const R *logits, const R *lse,                    \
                             const int32_t *target, const R *dlogp, int T, int V);         \
    /* dtable[token[t]] += dx[t] (the embedding lookup's backward) */                      \
    void trn_embed_bwd_##S(R *dtable, const R *dx, const int32_t *token, int T, int C);

TRN_OPS_DECLARE(float, f32)
TRN_OPS_DECLARE(double, f64)

#endif
