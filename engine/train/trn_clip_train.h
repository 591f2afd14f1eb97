/* trn_clip_train.h - contrastive pretraining of a trn_clip on (image,
 * caption) pairs: the loop behind "train the default CLIP on the shapes
 * set".
 *
 * Data: n pairs held in memory, images preprocessed ([n, 3, S, S] float,
 * image_clip_pixels) and captions as token ids right-padded to a common
 * stride L (lens[i] real tokens each, <|startoftext|> ... <|endoftext|>).
 *
 * A step: `batch` distinct pairs drawn at random (a partial Fisher-Yates
 * shuffle from the loop's seeded generator, saved in checkpoints, so a
 * resumed run sees the same batches), the symmetric InfoNCE loss of the
 * batch (trn_clip.h), its backward, trn_optim_step (clipping, AdamW,
 * warm-up + cosine or another schedule of trn_optim.h), then logit_scale
 * clamped to [0, ln 100] as CLIP does.
 *
 * Progress: a callback every log_every steps (and after the last) with the
 * mean loss and in-batch matching accuracy over the steps since the last
 * report, learning rate, gradient norm, the temperature scale, images per
 * second and the time left; trn_clip_progress_format makes the line.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one thread drives a trn_clip_train.
 */
#ifndef TRN_CLIP_TRAIN_H
#define TRN_CLIP_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"
#include "trn_clip.h"
#include "trn_optim.h"
#include "trn_param.h"

typedef struct trn_clip_data {
    int n;                      /* pairs */
    const float *pixels;        /* [n, 3, S, S] borrowed */
    int L;                      /* caption stride, 1..text_ctx */
    const int32_t *tokens;      /* [n, L] borrowed */
    const int32_t *lens;        /* [n] 1..L; NULL: all L */
} trn_clip_data;

typedef struct trn_clip_train_cfg {
    int batch;                  /* pairs per step, 2..n */
    int64_t steps;              /* optimizer steps in all; the schedule's
                                   optim.sched.total_steps should be the same */
    int log_every;              /* steps between progress reports, >= 1 */
    uint64_t seed;              /* batch sampling */
    trn_optim_cfg optim;
} trn_clip_train_cfg;

/* Defaults for a small model: batch 64, 1000 steps, AdamW lr 5e-4 with
 * betas 0.9 / 0.98, eps 1e-6, weight decay 0.2 (CLIP's), 5 % warm-up then
 * cosine to 0, gradient clipping at 1, log every 50 steps. */
trn_clip_train_cfg trn_clip_train_cfg_default(void);

typedef struct trn_clip_progress {
    int64_t step, steps;
    double loss;                /* mean InfoNCE loss since the last report */
    double accuracy;            /* mean in-batch matching accuracy since then
                                   (image->caption and caption->image averaged;
                                   chance is about 1 / batch) */
    double lr, grad_norm;       /* of the last step */
    double scale;               /* exp(logit_scale) after the last step */
    double img_per_s;           /* training images per second since the run began */
    double eta_s;
} trn_clip_progress;

typedef void (*trn_clip_progress_fn)(void *ctx, const trn_clip_progress *p);

/* "step 120/1000 loss 2.3412 acc 0.412 lr 4.98e-04 gnorm 0.731 scale 16.2
 * 812 img/s eta 1m48s" into buf[len]. */
void trn_clip_progress_format(const trn_clip_progress *p, char *buf, size_t len);

typedef struct trn_clip_train {
    trn_clip_train_cfg cfg;
    trn_clip *m;                /* borrowed */
    trn_params ps;
    trn_optim opt;
    rng data_rng;
    int n_perm;                 /* pairs of the data set perm was made for */
    int *perm;                  /* [n_perm] sampling scratch */
    float *pixels;              /* [batch, 3, S, S] the current batch */
    int32_t *tokens, *lens;     /* [batch, L], [batch] */
    int L;                      /* stride of tokens */
    /* sums since the last report */
    double sum_loss, sum_acc;
    int n_sum;
} trn_clip_train;

/* Sets up training of every weight of m (borrowed: it must outlive t). */
int trn_clip_train_init(trn_clip_train *t, trn_clip *m, const trn_clip_train_cfg *cfg,
                        char *err, size_t errlen);
/* Accepts NULL; leaves t zeroed. */
void trn_clip_train_free(trn_clip_train *t);

/* One optimizer step on a batch drawn from data; res and st (may be NULL)
 * receive the batch's forward result and the step's statistics. A step the
 * optimizer skips (non-finite gradient) returns 0 with st->grad_norm not
 * finite. */
int trn_clip_train_step(trn_clip_train *t, const trn_clip_data *data, trn_clip_result *res,
                        trn_optim_stats *st, char *err, size_t errlen);

/* Steps until cfg.steps, reporting on the way (fn may be NULL). */
int trn_clip_train_run(trn_clip_train *t, const trn_clip_data *data, trn_clip_progress_fn fn,
                       void *ctx, char *err, size_t errlen);

/* Saves / restores the weights, the AdamW state, the step and the batch
 * generator (trn_ckpt.h); load needs a t set up for the same model shape. */
int trn_clip_train_save(trn_clip_train *t, const char *path, char *err, size_t errlen);
int trn_clip_train_load(trn_clip_train *t, const char *path, char *err, size_t errlen);

/* Zero-shot classification as the server does it: each image's class is
 * the caption (of n_class, right-padded to stride L) with the highest
 * cosine similarity. *accuracy: the share of the n images whose class is
 * labels[i]; pred[n] (may be NULL) receives the classes. Runs in chunks of
 * at most 256 images. */
int trn_clip_zero_shot(trn_clip *m, const float *pixels, int n, const int32_t *labels,
                       const int32_t *class_tokens, const int32_t *class_lens, int n_class,
                       int L, double *accuracy, int32_t *pred, char *err, size_t errlen);

#endif
