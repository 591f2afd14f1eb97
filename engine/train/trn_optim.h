/* trn_optim.h - the optimizer of a training run: AdamW, its learning-rate
 * schedule and gradient clipping, walking the flat parameter list of
 * trn_param.h.
 *
 * AdamW is PyTorch's torch.optim.AdamW (amsgrad off, maximize off), with t
 * the step counted from 1 and lr the schedule's value for this step:
 *
 *   p <- p * (1 - lr * weight_decay)        only for params with decay=true
 *   m <- m + (1 - beta1) * (g - m)          (torch: exp_avg.lerp_)
 *   v <- beta2 * v + (1 - beta2) * g * g
 *   p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Element arithmetic is float32 as torch does on float32 tensors; the scalar
 * factors (bias corrections, step size) are computed in double.
 *
 * Schedule (trn_sched_lr): the formulas of HF transformers'
 * get_{constant,linear,cosine}_schedule_with_warmup, which LambdaLR evaluates
 * at the number of optimizer steps already taken (so the first update of a
 * warm-up uses lr 0, as there). With W warmup_steps, T total_steps and
 * progress q = (step - W) / max(1, T - W):
 *
 *   step < W:  lr * step / max(1, W)
 *   constant:  lr
 *   linear:    min_lr + (lr - min_lr) * max(0, (T - step) / max(1, T - W))
 *   cosine:    min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * min(q, 1)))
 *
 * min_lr = 0 gives HF's schedules exactly; min_lr > 0 is HF's
 * get_cosine_with_min_lr_schedule_with_warmup (and the same floor for
 * linear). One deliberate difference: HF's cosine rises again past T; here
 * it stays at min_lr.
 *
 * A training step with gradient accumulation over n micro-batches:
 *
 *   trn_params_zero_grad(ps);
 *   for (k = 0; k < n; k++)
 *       forward + backward of micro-batch k with the loss scaled by 1/n
 *       (backward kernels accumulate, so grads end as the mean over the
 *       micro-batches; or scale the loss by 1 and call
 *       trn_optim_scale_grads(ps, 1.0f / n) here, once, after the loop);
 *   rc = trn_optim_step(o, ps, &st, &err);
 *
 * trn_optim_step clips to cfg.max_grad_norm itself (the global norm over
 * all of ps, as torch.nn.utils.clip_grad_norm_), then updates. When that
 * norm is NaN or infinite (an overflow in the forward or backward), the step
 * is skipped: it returns TRN_OPTIM_SKIPPED and leaves the parameters, the
 * moments, the gradients and the step counter as they were, counting the
 * skip in n_skipped. The caller logs it and goes on with the next batch.
 *
 * Memory: the moments m and v are one arena of 2 * trn_params_count floats,
 * allocated at init for the parameter list it was given; every later call
 * must pass a list with the same sizes in the same order.
 *
 * Errors: 0 or a negative errno (-EINVAL bad configuration or a parameter
 * list unlike the one at init, -ENOMEM) with a message in the caller's
 * eng_err when one is given.
 *
 * Threads: an optimizer is plain data owned by the training loop; one
 * thread at a time.
 */
#ifndef TRN_OPTIM_H
#define TRN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"
#include "trn_param.h"

/* trn_optim_step's return when the gradient norm is not finite. */
#define TRN_OPTIM_SKIPPED 1

typedef enum trn_sched_kind {
    TRN_SCHED_CONSTANT = 0,  /* warm-up, then lr */
    TRN_SCHED_LINEAR = 1,    /* warm-up, then linear decay to min_lr at T */
    TRN_SCHED_COSINE = 2,    /* warm-up, then half a cosine to min_lr at T */
} trn_sched_kind;

typedef struct trn_sched {
    trn_sched_kind kind;
    double lr;               /* peak, reached when warm-up ends; >= 0 */
    double min_lr;           /* floor of the decay, in [0, lr] */
    int64_t warmup_steps;    /* >= 0; lr rises linearly from 0 over these */
    int64_t total_steps;     /* decay ends here (>= warmup_steps unless
                                constant); min_lr from then on */
} trn_sched;

typedef struct trn_optim_cfg {
    trn_sched sched;
    double beta1;            /* [0, 1); torch default 0.9 */
    double beta2;            /* [0, 1); torch default 0.999 */
    double eps;              /* >= 0, added to sqrt(v_hat); default 1e-8 */
    double weight_decay;     /* >= 0, decoupled; default 0.01 */
    double max_grad_norm;    /* clip the global gradient norm to this;
                                <= 0 disables clipping */
} trn_optim_cfg;

typedef struct trn_optim {
    trn_optim_cfg cfg;       /* may be changed between steps */
    int64_t step;            /* updates applied so far (t of the last one) */
    int64_t n_skipped;       /* steps skipped for a non-finite gradient */
    int n_params;            /* length of the list given at init */
    size_t n_total;          /* elements over all params */
    size_t *off;             /* [n_params + 1] where each param starts in m, v */
    float *m;                /* [n_total] first moments; owns the arena */
    float *v;                /* [n_total] second moments; inside m's arena */
} trn_optim;

/* What one step did. */
typedef struct trn_optim_stats {
    double grad_norm;        /* global L2 norm before clipping */
    double lr;               /* the schedule's lr used (or that would have
                                been used, when skipped) */
} trn_optim_stats;

/* torch.optim.AdamW's defaults (lr 1e-3, betas 0.9 / 0.999, eps 1e-8,
 * weight_decay 0.01), a constant schedule without warm-up, and HF Trainer's
 * max_grad_norm 1.0. */
trn_optim_cfg trn_optim_cfg_default(void);

/* Checks ranges (finite values, betas in [0, 1), min_lr <= lr, total_steps
 * >= warmup_steps for a decaying schedule). 0 or -EINVAL naming the field. */
int trn_optim_cfg_check(const trn_optim_cfg *cfg, eng_err *err);

/* Learning rate for the update that follows `step` updates already applied
 * (see the formulas above). Pure; step < 0 counts as 0. The schedule is not
 * checked: pass one trn_optim_cfg_check accepted. */
double trn_sched_lr(const trn_sched *s, int64_t step);

/* Sets up o for the parameters in ps (borrowed for the call only: only the
 * sizes are kept) with zero moments and step 0; cfg is copied. On failure o
 * is left freed (trn_optim_free is still safe). */
int trn_optim_init(trn_optim *o, const trn_params *ps, const trn_optim_cfg *cfg, eng_err *err);

/* Frees the moments. Accepts NULL; leaves o zeroed. */
void trn_optim_free(trn_optim *o);

/* 0 when ps has the sizes, in order, that o was initialised with; otherwise
 * -EINVAL naming the first parameter that differs. */
int trn_optim_check_params(const trn_optim *o, const trn_params *ps, eng_err *err);

/* Multiplies every gradient by s: for callers who accumulate unscaled
 * micro-batch losses (s = 1 / n_accum). */
void trn_optim_scale_grads(trn_params *ps, float s);

/* torch.nn.utils.clip_grad_norm_: returns the global L2 norm of the
 * gradients before clipping and, when it exceeds max_norm > 0, scales them
 * by max_norm / (norm + 1e-6). A non-finite norm is returned with the
 * gradients untouched (torch would spread the NaN into them). */
double trn_optim_clip_grad_norm(trn_params *ps, double max_norm);

/* One optimizer step on the accumulated gradients of ps: clip to
 * cfg.max_grad_norm, then the AdamW update with lr = trn_sched_lr(step),
 * then step + 1. Returns 0, TRN_OPTIM_SKIPPED (non-finite gradient norm:
 * nothing changed but n_skipped), -EINVAL (ps is not the list o was
 * initialised with, or o->cfg fails trn_optim_cfg_check) or -EOVERFLOW (a
 * counter at INT64_MAX); on an error nothing changed. st may be NULL.
 * Gradients are left clipped; zeroing them is the caller's next
 * trn_params_zero_grad. */
int trn_optim_step(trn_optim *o, trn_params *ps, trn_optim_stats *st, eng_err *err);

#endif
