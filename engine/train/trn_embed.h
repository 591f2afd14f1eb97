/* trn_embed.h - contrastive fine-tuning of a decoder into a sentence
 * embedding model (`alignd pretrain embed`).
 *
 * An embedding is the mean of the final-norm hidden states over a
 * sentence's tokens, L2-normalised: what /v1/embeddings serves for a model
 * with mean pooling (pooling.h), so the trained model is served as is.
 *
 * Data: items of (query, positive, hard negatives), token ids. A step
 * takes `batch` random items and scores each query against one shared pool
 * of candidates: every positive of the batch and every item's first
 * `negatives` hard negatives (MultipleNegativesRankingLoss of
 * sentence-transformers: cross-entropy over scale * cosine, the target
 * being the query's own positive; the other positives are in-batch
 * negatives). Every weight of the model trains (trn_dec_copy_model or
 * trn_dec_new), with AdamW and the usual schedule.
 *
 * Evaluation: for each item, the query's cosine with its positive against
 * its own negatives; top-1 accuracy (the positive strictly first) and mean
 * reciprocal rank.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one thread drives a trn_embed; matmuls use OpenBLAS's threads.
 */
#ifndef TRN_EMBED_H
#define TRN_EMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "rng.h"
#include "trn_dec.h"
#include "trn_optim.h"
#include "trn_param.h"

/* Items of 2 + n_neg sequences each: query, positive, negatives. */
typedef struct trn_embed_set {
    int n_items, n_neg;
    int32_t **seq;   /* [n_items * (2 + n_neg)] token ids, owned */
    int32_t *len;    /* [n_items * (2 + n_neg)] 1..max_len */
    int max_len;     /* longest sequence */
} trn_embed_set;

/* An empty set for items of n_neg negatives; add items with
 * trn_embed_set_add (the set takes copies). */
int trn_embed_set_init(trn_embed_set *s, int n_neg);
/* seqs[2 + n_neg], lens[2 + n_neg]; -EINVAL for an empty sequence. */
int trn_embed_set_add(trn_embed_set *s, const int32_t *const *seqs, const int32_t *lens);
void trn_embed_set_free(trn_embed_set *s);

typedef struct trn_embed_cfg {
    int batch;          /* items per step */
    int negatives;      /* hard negatives per item in a step (<= the set's) */
    float scale;        /* logit scale (inverse temperature), e.g. 20 */
    int64_t steps;
    int log_every, eval_every;  /* steps between reports / evaluations (0: end) */
    uint64_t seed;      /* item sampling */
    trn_optim_cfg optim;
} trn_embed_cfg;

typedef struct trn_embed_eval {
    double top1;        /* share of items whose positive beats every negative */
    double mrr;         /* mean reciprocal rank of the positive */
} trn_embed_eval;

typedef struct trn_embed_progress {
    int64_t step, steps;
    double loss, lr, grad_norm;
    double seq_per_s;   /* sentences embedded per second (forward and backward) */
    double eta_s;
    bool has_eval;
    trn_embed_eval eval;
} trn_embed_progress;

typedef void (*trn_embed_progress_fn)(void *ctx, const trn_embed_progress *p);

typedef struct trn_embed {
    trn_embed_cfg cfg;
    trn_dec *d;          /* borrowed, trainable */
    trn_params ps;
    trn_optim opt;
    rng rng;
    int cap_seqs, cap_len;        /* the batch the buffers hold */
    int32_t *tokens, *lens;       /* [cap_seqs * cap_len], [cap_seqs] */
    float *pooled, *emb, *norm;   /* [cap_seqs, C], [cap_seqs, C], [cap_seqs] */
    float *dpooled, *demb, *dhidden;
    float *logits, *lse, *scratch;
    double last_loss;
} trn_embed;

/* Sets up training of every weight of d for items up to max_len tokens. */
int trn_embed_init(trn_embed *te, trn_dec *d, const trn_embed_cfg *cfg, int max_len,
                   char *err, size_t errlen);
void trn_embed_free(trn_embed *te);

/* The loss of one batch: seqs/lens hold Q queries, then their Q positives,
 * then Q*K negatives (query i's at 2Q + i*K ...), every candidate shared by
 * all queries. backward: also accumulates the gradients into te->ps (the
 * caller zeroes them). For trn_embed_step and the gradient checks. */
int trn_embed_batch_loss(trn_embed *te, const int32_t *const *seqs, const int32_t *lens, int Q,
                         int K, bool backward, double *loss, char *err, size_t errlen);
/* One optimizer step on random items of set; *loss gets its loss. */
int trn_embed_step(trn_embed *te, const trn_embed_set *set, trn_optim_stats *st, double *loss,
                   char *err, size_t errlen);
/* out[n, C] = the embeddings of n sequences (any n; batched internally). */
int trn_embed_encode(trn_embed *te, const int32_t *const *seqs, const int32_t *lens, int n,
                     float *out, char *err, size_t errlen);
/* Top-1 accuracy and MRR over every item of set (its negatives all count). */
int trn_embed_evaluate(trn_embed *te, const trn_embed_set *set, trn_embed_eval *ev, char *err,
                       size_t errlen);
/* Steps until cfg.steps, evaluating on eval_set (NULL: none) and reporting. */
int trn_embed_run(trn_embed *te, const trn_embed_set *train, const trn_embed_set *eval_set,
                  trn_embed_progress_fn fn, void *ctx, char *err, size_t errlen);

#endif
