/* trainer_onpolicy.h - sampling from the policy on the training worker
 * (trainer_run.c) and labelling the samples with the served reward model:
 *
 *   - the evaluation gate's reward comparison: the reward model's mean
 *     score of greedy continuations of a fixed prompt set (the eval split's
 *     distinct prompts), for the new adapter and for the active one;
 *   - on-policy pairs (training.onpolicy, iterative DPO as RLHFlow and
 *     OpenRLHF do it): k seeded temperature-1 samples per train prompt from
 *     the current policy, the best and the worst by reward become a pair
 *     (source "onpolicy") when their gap is at least min_gap.
 *
 * Generation runs through trn_dec forward passes (its own activations; the
 * adapter attached by the caller with trn_dec_set_lora, NULL: the base),
 * re-running the whole sequence for every new token (no KV cache: the
 * continuations are short). It never touches the model's shared scratch,
 * so it is safe while the model serves. Scoring takes the served reward
 * model under models_reward_lock (one short hold per prompt).
 *
 * Errors: 0 or a negative errno with a message in err; -ENOENT when the
 * model has no reward model (any more); -ECANCELED when *cancel is set.
 * Threads: the training worker; d is its own.
 */
#ifndef TRAINER_ONPOLICY_H
#define TRAINER_ONPOLICY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "models.h"
#include "pref.h"
#include "trn_dec.h"

/* Continues prompt[0..n_prompt) B times by at most max_new tokens each
 * (clamped to the context), stopping a sequence at eos (kept; eos < 0:
 * none): temperature <= 0 greedy (argmax, lowest id on ties), else sampled
 * from softmax(logits / temperature) with a generator seeded from seed.
 * out[b * max_new ..] gets sequence b's tokens, n_out[b] their number
 * (>= 1). */
int trainer_onpolicy_generate(trn_dec *d, const int32_t *prompt, int n_prompt, int B, int max_new,
                              float temperature, uint64_t seed, int32_t eos, int32_t *out,
                              int *n_out, char *err, size_t errlen);

/* Rewards out[n] of prompt + resp[i] by sm's reward model, each sequence
 * built as /v1/rewards builds one (a trailing eos dropped, one added when
 * the reward model was trained with it) and cut to its max_len. */
int trainer_onpolicy_score(served_model *sm, const int32_t *prompt, int n_prompt,
                           const int32_t *const *resp, const int *n_resp, int n, int32_t eos,
                           float *out, char *err, size_t errlen);

/* The gate's figure: the mean reward of greedy continuations (max_new
 * tokens) of at most max_prompts distinct prompts of s's eval split (the
 * train split when it is empty), with d as attached. *n_prompts (may be
 * NULL) gets how many were used. */
int trainer_onpolicy_reward_mean(served_model *sm, trn_dec *d, const pref_set *s, int max_prompts,
                                 int max_new, int32_t eos, double *mean, int *n_prompts,
                                 const _Atomic int *cancel, char *err, size_t errlen);

typedef struct trainer_onpolicy_cfg {
    int k;                  /* samples per prompt, >= 2 */
    int max_prompts;        /* distinct train prompts sampled at most */
    int max_new;            /* tokens per sample */
    double ratio;           /* most share of on-policy pairs in the train split, [0, 1] */
    double min_gap;         /* least reward gap between best and worst */
    uint64_t seed;
    int32_t eos;            /* -1: none */
    const _Atomic int *cancel; /* non-zero: stop (may be NULL) */
} trainer_onpolicy_cfg;

typedef struct trainer_onpolicy_stats {
    int human;              /* human train pairs of s before */
    int cap;                /* on-policy pairs the ratio allows */
    int prompts;            /* prompts sampled */
    int added;              /* pairs added */
    int below_gap;          /* prompts whose best - worst < min_gap */
    double mean_gap;        /* over the prompts sampled */
} trainer_onpolicy_stats;

/* Samples the train split's distinct prompts (in order) with d as
 * attached and appends the pairs to s's train split (ids as pref.h lays
 * them out; responses cut to po->max_len - prompt), at most
 * floor(human * ratio / (1 - ratio)) of them (no limit at ratio 1); human
 * pairs are never dropped. */
int trainer_onpolicy_pairs(served_model *sm, trn_dec *d, pref_set *s, const pref_opts *po,
                           const trainer_onpolicy_cfg *c, trainer_onpolicy_stats *st, char *err,
                           size_t errlen);

#endif
