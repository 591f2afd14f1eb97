/* trn_clip_ops.h - the training kernels CLIP needs beyond trn_ops.h: the
 * ViT patch embedding (unfold / fold around a matmul), attention without
 * the causal mask, CLIP's activations, L2 normalisation and the symmetric
 * InfoNCE loss.
 *
 * As in trn_ops.h every kernel exists in float (_f32, what training runs)
 * and double (_f64, what the gradient checks run against central finite
 * differences), compiled from one source (trn_clip_ops_impl.inc); layouts
 * are row-major [T, width]; backward kernels ACCUMULATE into their outputs
 * unless the comment says "writes"; gradient outputs may be NULL when not
 * wanted.
 *
 * The bidirectional attention keeps its softmax probabilities like
 * trn_attn_fwd, with masked keys at probability exactly 0, so its backward
 * pass is trn_attn_bwd (which works from the probabilities alone and never
 * looks at the mask).
 *
 * Threads: kernels keep no state; matmuls run on OpenBLAS's threads.
 */
#ifndef TRN_CLIP_OPS_H
#define TRN_CLIP_OPS_H

#include <stddef.h>
#include <stdint.h>

/* The MLP activation of a tower (HF hidden_act). */
typedef enum trn_clip_act {
    TRN_CLIP_QUICK_GELU = 0,  /* "quick_gelu": x * sigmoid(1.702 x) (OpenAI CLIP) */
    TRN_CLIP_GELU = 1,        /* "gelu": x/2 (1 + erf(x / sqrt 2)) */
    TRN_CLIP_GELU_TANH = 2,   /* "gelu_new", "gelu_pytorch_tanh" (trn_gelu_*) */
} trn_clip_act;

/* The HF hidden_act name of act ("quick_gelu", "gelu", "gelu_new"). */
const char *trn_clip_act_name(trn_clip_act act);
/* Parses an HF hidden_act name (gelu_pytorch_tanh is gelu_new); 0 or -1. */
int trn_clip_act_parse(const char *name, trn_clip_act *act);

#define TRN_CLIP_OPS_DECLARE(R, S)                                                         \
    /* patches[B*NP, 3*P*P] from images[B, 3, Sz, Sz], NP = (Sz/P)^2 patches in raster   \
     * order, each in the conv weight's order (channel, row, column); writes */          \
    void trn_clip_unfold_##S(R *patches, const R *pixels, int B, int Sz, int P);          \
    /* dpixels[B, 3, Sz, Sz] += dpatches folded back (unfold's backward) */               \
    void trn_clip_fold_##S(R *dpixels, const R *dpatches, int B, int Sz, int P);          \
    /* out[T, NH*HS] = attention of every query over keys 0..lens[b]-1 of its own        \
     * sequence (no causal mask); q, k, v at columns q_off, k_off, v_off of qkv[T, ldq];  \
     * probs[B, NH, L, L] saved. Backward: trn_attn_bwd_S with NKV = NH */                \
    void trn_clip_attn_fwd_##S(R *out, R *probs, const R *qkv, size_t ldq, int q_off,     \
                               int k_off, int v_off, const int32_t *lens, int B, int L,   \
                               int NH, int HS, R scale);                                  \
    /* out[n] = act(x); writes (out may equal x) */                                       \
    void trn_clip_act_fwd_##S(R *out, const R *x, size_t n, trn_clip_act act);            \
    /* dx[n] writes dout * act'(x) */                                                     \
    void trn_clip_act_bwd_##S(R *dx, const R *dout, const R *x, size_t n,                 \
                              trn_clip_act act);                                          \
    /* y[T, D] = x / max(|x|, 1e-12) per row; norm[T] saved (before the floor) */        \
    void trn_clip_l2norm_fwd_##S(R *y, R *norm, const R *x, int T, int D);                \
    /* dx += (dy - y (y . dy)) / |x|; dy / 1e-12 where the floor applied */             \
    void trn_clip_l2norm_bwd_##S(R *dx, const R *dy, const R *y, const R *norm, int T,    \
                                 int D);                                                  \
    /* Symmetric InfoNCE of B matched pairs (pair i: img[i], txt[i], both L2-normalised  \
     * [B, D]): logits[B, B] = scale img txt^T (row: image, column: text) and            \
     * loss = (CE over each row with target i + CE over each column with target j) / 2B, \
     * i.e. HF clip_loss. lse_r[B], lse_c[B] saved. Returns the loss */                  \
    R trn_clip_infonce_fwd_##S(R *logits, R *lse_r, R *lse_c, const R *img, const R *txt, \
                               int B, int D, R scale);                                    \
    /* With G = dloss * dL/dlogits: dimg += scale G txt, dtxt += scale G^T img,          \
     * *dlog_scale += sum(G * logits) (the gradient of ln(scale)); scratch[B*B] */       \
    void trn_clip_infonce_bwd_##S(R *dimg, R *dtxt, R *dlog_scale, const R *logits,       \
                                  const R *lse_r, const R *lse_c, const R *img,           \
                                  const R *txt, int B, int D, R scale, R dloss,           \
                                  R *scratch);

TRN_CLIP_OPS_DECLARE(float, f32)
TRN_CLIP_OPS_DECLARE(double, f64)

#endif
