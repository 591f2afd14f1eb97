/* trn_dpo.h - Direct Preference Optimization (Rafailov et al.) of a LoRA
 * adapter on a frozen decoder, as TRL's DPOTrainer does it.
 *
 * For a pair, pi_c / pi_r are the summed log-probs of the chosen / rejected
 * response tokens given the prompt under the policy (base + adapter), and
 * ref_c / ref_r the same under the reference (the base: adapter disabled),
 * computed once for every pair at init and cached. With
 *   z = (pi_c - pi_r) - (ref_c - ref_r)
 * the losses (TRL's loss_type) are
 *   sigmoid  -(1 - eps) log sigmoid(beta z) - eps log sigmoid(-beta z)
 *            (eps = label_smoothing; 0 is the original DPO loss)
 *   hinge    max(0, 1 - beta z)                      (SLiC)
 *   ipo      (z - 1 / (2 beta))^2 with log-probs AVERAGED over the response
 *            tokens instead of summed (Azar et al., as TRL does)
 * averaged over the pairs of a batch. With rpo_alpha > 0 (TRL's rpo_alpha,
 * Pang et al.'s iterative RPO) the loss adds rpo_alpha x the mean token NLL
 * of the batch's chosen responses: the margin then cannot grow by pushing
 * the chosen response down with the rejected one (what plain DPO does on
 * sharply separable pairs, drifting far from the reference). Metrics use
 * TRL's names:
 * rewards/chosen = beta (pi_c - ref_c), rewards/rejected, rewards/margins
 * (their difference), rewards/accuracies (share with chosen > rejected),
 * logps/chosen, logps/rejected (mean summed policy log-probs), nll_loss
 * (the chosen responses' mean token NLL, whatever rpo_alpha).
 *
 * Training walks the train split in shuffled epochs (seeded), `batch` pairs
 * per micro-batch, accum micro-batches per AdamW step; the eval split is
 * evaluated every eval_every steps and at the end.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one thread drives a trn_dpo.
 */
#ifndef TRN_DPO_H
#define TRN_DPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pref.h"
#include "rng.h"
#include "trn_dec.h"
#include "trn_lora.h"
#include "trn_optim.h"

typedef enum trn_dpo_loss {
    TRN_DPO_SIGMOID = 0,
    TRN_DPO_HINGE = 1,
    TRN_DPO_IPO = 2,
} trn_dpo_loss;

/* "sigmoid", "hinge", "ipo"; parse: 0 or -EINVAL. */
const char *trn_dpo_loss_name(trn_dpo_loss l);
int trn_dpo_loss_parse(const char *s, trn_dpo_loss *out);

typedef struct trn_dpo_cfg {
    trn_dpo_loss loss;
    double beta;            /* TRL default 0.1 */
    double label_smoothing; /* sigmoid only, [0, 0.5) */
    double rpo_alpha;       /* >= 0: weight of the chosen NLL term (0: plain DPO) */
    int batch;              /* pairs per micro-batch */
    int accum;              /* micro-batches per step */
    int epochs;             /* passes over the train split */
    int64_t max_steps;      /* > 0: stop here (overrides epochs) */
    int eval_every;         /* steps; 0: at the end only */
    int log_every;
    uint64_t seed;          /* shuffling */
    trn_optim_cfg optim;    /* its schedule's total_steps is set by init */
} trn_dpo_cfg;

/* Defaults: sigmoid, beta 0.1, batch 4, accum 1, 1 epoch, lr 5e-5 with
 * linear decay and 10% warm-up, weight decay 0, clip 1.0. */
void trn_dpo_cfg_default(trn_dpo_cfg *c);

typedef struct trn_dpo_metrics {
    int n;                  /* pairs */
    double loss;
    double rewards_chosen, rewards_rejected, rewards_accuracies, rewards_margins;
    double logps_chosen, logps_rejected;
    double nll_loss;
} trn_dpo_metrics;

typedef struct trn_dpo_progress {
    int64_t step, steps;
    double epoch;           /* fractional */
    double lr, grad_norm, pairs_per_s, eta_s;
    trn_dpo_metrics train;  /* of the last step */
    bool has_eval;
    trn_dpo_metrics eval;
} trn_dpo_progress;

typedef void (*trn_dpo_progress_fn)(void *ctx, const trn_dpo_progress *p);

typedef struct trn_dpo {
    trn_dpo_cfg cfg;
    trn_dec *d;             /* borrowed; frozen */
    trn_lora *lo;           /* borrowed; the trained adapter */
    const pref_set *data;   /* borrowed */
    float *ref;             /* [2 * n pairs] cached reference log-probs */
    int *train_idx, *eval_idx;
    int n_train, n_eval;
    int64_t steps;          /* the run's total */
    int epoch_pos;          /* next position in train_idx */
    int epoch;
    rng shuffle;
    trn_params ps;
    trn_optim opt;
    pref_batch pb;
    float *logp, *dlogp;
    size_t cap;             /* of logp / dlogp */
} trn_dpo;

/* Sets up training of lo on data (a frozen d with lo attached, computes
 * and caches the reference log-probs of every pair). progress (may be NULL)
 * is told of the reference pass as step 0 with no metrics. */
int trn_dpo_init(trn_dpo *t, trn_dec *d, trn_lora *lo, const pref_set *data,
                 const trn_dpo_cfg *cfg, char *err, size_t errlen);
void trn_dpo_free(trn_dpo *t);

/* One optimizer step on the next train pairs. */
int trn_dpo_step(trn_dpo *t, trn_dpo_metrics *m, trn_optim_stats *st, char *err,
                 size_t errlen);
/* Metrics over the eval split (or the train split when eval is empty
 * and use_train), no gradients. */
int trn_dpo_eval(trn_dpo *t, bool use_train, trn_dpo_metrics *m, char *err, size_t errlen);
/* All steps, reporting every log_every steps and at evaluations. *final:
 * the last evaluation. */
int trn_dpo_run(trn_dpo *t, trn_dpo_progress_fn fn, void *ctx, trn_dpo_metrics *final,
                char *err, size_t errlen);

/* The loss of one pair and its derivative with respect to z (see above);
 * exposed for tests. */
double trn_dpo_pair_loss(const trn_dpo_cfg *c, double z, double *dz);

#endif
