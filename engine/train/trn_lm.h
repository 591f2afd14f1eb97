/* trn_lm.h - causal language-model training: the loop that pretraining
 * (`alignd pretrain`) runs on a token stream.
 *
 * Data: one stream of token ids for training and one held out. A training
 * batch is `batch` windows of seq_len + 1 consecutive tokens starting at
 * random offsets of the training stream (drawn from the loop's own seeded
 * generator, saved in checkpoints, so a resumed run sees the same batches);
 * each window's first seq_len tokens are the input and the last seq_len the
 * targets. The held-out loss is the mean cross-entropy (nats per token) over
 * consecutive, non-overlapping windows from the start of the held-out
 * stream, the same windows at every evaluation.
 *
 * A step: gradient accumulation over `accum` batches (each batch's loss
 * scaled by 1 / (accum * tokens)), then trn_optim_step (clipping, AdamW,
 * schedule). Progress: a callback every log_every steps and after each
 * evaluation, with loss, learning rate, gradient norm, tokens/s and ETA.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one thread drives a trn_lm.
 */
#ifndef TRN_LM_H
#define TRN_LM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "trn_dec.h"
#include "trn_optim.h"
#include "trn_param.h"

typedef struct trn_lm_data {
    const int32_t *train;
    size_t n_train;
    const int32_t *eval;
    size_t n_eval;
} trn_lm_data;

typedef struct trn_lm_cfg {
    int batch;          /* windows per micro-batch */
    int seq_len;        /* tokens per window (<= the model's context) */
    int accum;          /* micro-batches per optimizer step */
    int64_t steps;      /* optimizer steps in all (the schedule's length) */
    int64_t stop_after; /* > 0: trn_lm_run stops at this step (a run paused
                           to be resumed from its checkpoint) */
    int eval_every;     /* steps between held-out evaluations (0: end only) */
    int eval_windows;   /* held-out windows per evaluation (0: all, max 256) */
    int log_every;      /* steps between progress reports */
    uint64_t seed;      /* batch sampling */
    trn_optim_cfg optim;
} trn_lm_cfg;

typedef struct trn_lm_progress {
    int64_t step, steps;
    double loss;        /* mean training loss of the step (nats/token) */
    double lr, grad_norm;
    double tok_per_s;   /* training tokens per second since the run began */
    double eta_s;
    bool has_eval;
    double eval_loss;   /* held-out loss when has_eval */
} trn_lm_progress;

typedef void (*trn_lm_progress_fn)(void *ctx, const trn_lm_progress *p);

typedef struct trn_lm {
    trn_lm_cfg cfg;
    trn_dec *d;          /* borrowed */
    trn_params ps;
    trn_optim opt;
    rng data_rng;
    int32_t *tokens, *targets;
    float *logp, *dlogp;
    double last_loss;
} trn_lm;

/* Sets up training of every weight of d (a trn_dec_new model). */
int trn_lm_init(trn_lm *lm, trn_dec *d, const trn_lm_cfg *cfg, char *err, size_t errlen);
void trn_lm_free(trn_lm *lm);

/* One optimizer step (accum micro-batches); *loss gets its mean loss. */
int trn_lm_step(trn_lm *lm, const trn_lm_data *data, trn_optim_stats *st, double *loss,
                char *err, size_t errlen);
/* Held-out loss in nats per token (see above). */
int trn_lm_eval(trn_lm *lm, const trn_lm_data *data, double *loss, char *err, size_t errlen);
/* Steps until cfg.steps (or cfg.stop_after), evaluating and reporting on the way; checkpoints
 * to ckpt_path (NULL: none) every ckpt_every steps and at the end, with
 * blob stored beside the weights. *eval_loss: the final held-out loss. */
int trn_lm_run(trn_lm *lm, const trn_lm_data *data, trn_lm_progress_fn fn, void *ctx,
               const char *ckpt_path, int ckpt_every, const void *blob, size_t blob_len,
               double *eval_loss, char *err, size_t errlen);

/* Saves / restores weights, AdamW state, step and the batch generator. */
int trn_lm_save(trn_lm *lm, const char *path, const void *blob, size_t blob_len, char *err,
                size_t errlen);
int trn_lm_load(trn_lm *lm, const char *path, char *err, size_t errlen);

/* The unigram baseline: cross-entropy (nats/token) of the held-out stream
 * under the training stream's token frequencies (add-one smoothing over
 * n_vocab). A model that learnt anything beats it. */
double trn_lm_unigram_loss(const trn_lm_data *data, int n_vocab);

#endif
