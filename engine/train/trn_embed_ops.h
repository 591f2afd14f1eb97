/* trn_embed_ops.h - the training kernels of contrastive sentence embeddings
 * (trn_embed.h): mean pooling over each sequence's real tokens, and the
 * ranking loss of sentence-transformers' MultipleNegativesRankingLoss
 * (InfoNCE of each query over a shared pool of candidates: its own
 * positive, the other queries' positives and every hard negative).
 *
 * As in trn_ops.h every kernel exists in float (_f32, what training runs)
 * and double (_f64, what the gradient checks run against central finite
 * differences), compiled from one source (trn_embed_ops_impl.inc); layouts
 * are row-major; backward kernels ACCUMULATE into their outputs; gradient
 * outputs may be NULL when not wanted. L2 normalisation is
 * trn_clip_l2norm_* (trn_clip_ops.h).
 *
 * Threads: kernels keep no state; matmuls run on OpenBLAS's threads.
 */
#ifndef TRN_EMBED_OPS_H
#define TRN_EMBED_OPS_H

#include <stddef.h>
#include <stdint.h>

#define TRN_EMBED_OPS_DECLARE(R, S)                                                        \
    /* out[B, C] = mean of hidden[b*L + i, C] over i < lens[b] (right padding); writes */ \
    void trn_embed_meanpool_fwd_##S(R *out, const R *hidden, const int32_t *lens, int B,  \
                                    int L, int C);                                        \
    /* dhidden[B*L, C] += dout[b] / lens[b] on each real token; pads get nothing */       \
    void trn_embed_meanpool_bwd_##S(R *dhidden, const R *dout, const int32_t *lens, int B, \
                                    int L, int C);                                        \
    /* Q queries q[Q, D] over M >= Q candidates c[M, D] (rows L2-normalised);            \
     * query i's positive is candidate i. logits[Q, M] = scale q c^T, lse[Q] saved;      \
     * returns loss = mean_i (lse[i] - logits[i][i]) */                                   \
    R trn_embed_rank_fwd_##S(R *logits, R *lse, const R *q, const R *c, int Q, int M,      \
                             int D, R scale);                                             \
    /* With G = dloss * dL/dlogits: dq += scale G c, dc += scale G^T q; scratch[Q*M] */   \
    void trn_embed_rank_bwd_##S(R *dq, R *dc, const R *logits, const R *lse, const R *q,   \
                                const R *c, int Q, int M, int D, R scale, R dloss,        \
                                R *scratch);

TRN_EMBED_OPS_DECLARE(float, f32)
TRN_EMBED_OPS_DECLARE(double, f64)

#endif
