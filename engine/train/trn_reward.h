/* trn_reward.h - reward models (Bradley-Terry): a scalar head on a frozen
 * decoder, optionally with its own LoRA adapter, trained on preference
 * pairs and used to score prompt + response sequences.
 *
 *   r(seq) = w . h(seq, lens - 1) + b
 *
 * h is the final-norm hidden state (trn_dec_hidden: what the LM head would
 * read) at the LAST REAL token of the right-padded sequence, never at a pad
 * (reading a pad position is the classic bug that leaves a reward model at
 * 50% accuracy). This is what Hugging Face's *ForSequenceClassification
 * models do, and the head is stored under their name ("score").
 *
 * Loss per pair (chosen c, rejected r, margin m from the pair, default 0):
 *   -log sigmoid(r_c - r_r - m), the mean over the pairs of a batch;
 * accuracy counts r_c > r_r (a tie is wrong). The gradient flows into the
 * head and, through trn_dec_backward_hidden (non-zero only at each
 * sequence's last real token), into the adapter; the base stays frozen.
 *
 * Head init: w ~ N(0, (head_init / sqrt(C))^2), b = 0. With unit-scale
 * hidden states (what a final norm gives) the initial rewards then have a
 * standard deviation of about head_init (default 0.1) whatever the width,
 * small enough to start near log 2 and random enough that the adapter gets
 * a gradient at the first step (with w = 0 it would get none until the
 * head has moved). head_init = 0 gives a zero head.
 *
 * Files (trn_reward_save): a folder with
 *   reward_head.safetensors  "score.weight" F32 [1, C], "score.bias" F32 [1]
 *   reward_config.json       {"format": "alignd-reward", "version": 1,
 *                             "base_model", "architecture", "hidden_size",
 *                             "vocab_size", "lora": bool, ...caller's keys}
 *   adapter_config.json + adapter_model.safetensors  the LoRA in PEFT's
 *                             format (only when the model has one)
 *
 * Errors: 0 or a negative errno with a message in err naming the thing at
 * fault. Threads: one user of a trn_reward at a time; it reads the base
 * model's weights, so whoever changes those (adapter merges) must be
 * serialised with it.
 */
#ifndef TRN_REWARD_H
#define TRN_REWARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "pref.h"
#include "trn_dec.h"
#include "trn_lora.h"
#include "trn_optim.h"
#include "trn_param.h"

#define TRN_REWARD_HEAD_INIT 0.1f     /* default head_init (see above) */
#define TRN_REWARD_SCORE_TOKENS 4096  /* padded tokens per scoring pass */
#define TRN_REWARD_SCORE_SEQS 64      /* sequences per scoring pass */

typedef struct trn_reward trn_reward;

typedef struct trn_reward_cfg {
    bool use_lora;        /* false: only the head trains */
    trn_lora_cfg lora;    /* used when use_lora */
    float head_init;      /* std of w times sqrt(C); 0: zero head */
    uint64_t seed;        /* head init */
} trn_reward_cfg;

/* A new reward model on m (a llama or gpt2 decoder, borrowed: it must
 * outlive the result). */
int trn_reward_new(trn_reward **out, model *m, const trn_reward_cfg *cfg, char *err,
                   size_t errlen);
/* Accepts NULL. */
void trn_reward_free(trn_reward *rm);

int trn_reward_hidden_size(const trn_reward *rm);
/* The adapter (NULL for a head-only model) and the decoder; borrowed. */
trn_lora *trn_reward_lora(trn_reward *rm);
trn_dec *trn_reward_dec(trn_reward *rm);

/* Appends the trainable parameters: "score.weight" (weight decay),
 * "score.bias" (none), then the adapter's (trn_lora_params). */
int trn_reward_params(trn_reward *rm, trn_params *ps);

/* Rewards of the B sequences of a right-padded batch (b->lens may be NULL:
 * all L tokens real; targets and hidden_only are ignored). Keeps the
 * activations for trn_reward_backward. */
int trn_reward_forward(trn_reward *rm, const trn_batch *b, float *rewards, char *err,
                       size_t errlen);
/* Back-propagates d(loss)/d(reward)[B] of the last forward pass: the head's
 * gradients and the adapter's accumulate (+=). */
void trn_reward_backward(trn_reward *rm, const float *drewards);

/* The Bradley-Terry loss of n pairs whose rewards are r[2i] (chosen) and
 * r[2i + 1] (rejected): returns the mean loss; dr[2n] (may be NULL) gets
 * its gradient, *n_correct (may be NULL) the pairs with r_c > r_r.
 * margins may be NULL (all 0). Pure. */
double trn_reward_bt_loss(const float *r, const float *margins, int n, float *dr,
                          int *n_correct);

/* Loss and accuracy of a batch of pairs (pref_batch_make's layout, with the
 * pairs' margins or NULL); backward: also accumulate the gradients. */
typedef struct trn_reward_stats {
    double loss;          /* mean over the pairs */
    int n_pairs, n_correct;
    double mean_chosen, mean_rejected; /* mean rewards */
} trn_reward_stats;

int trn_reward_pairs(trn_reward *rm, const pref_batch *pb, const float *margins, bool backward,
                     trn_reward_stats *st, char *err, size_t errlen);

/* ---- training ------------------------------------------------------------ */

typedef struct trn_reward_train_cfg {
    int epochs;           /* >= 1 */
    int batch;            /* pairs per optimizer step, >= 1 */
    int eval_batch;       /* pairs per evaluation pass (0: batch) */
    int log_every;        /* steps between progress reports (0: 10) */
    uint64_t seed;        /* the order of the training pairs in each epoch */
    trn_optim_cfg optim;  /* sched.total_steps <= 0: the whole run */
} trn_reward_train_cfg;

typedef struct trn_reward_progress {
    int64_t step, steps;
    int epoch;            /* 1-based */
    double loss, accuracy;    /* the step's batch */
    double lr, grad_norm;
    double pairs_per_s, eta_s;
    bool has_eval;        /* end of an epoch: the eval split was scored */
    double eval_loss, eval_accuracy;
} trn_reward_progress;

typedef void (*trn_reward_progress_fn)(void *ctx, const trn_reward_progress *p);

typedef struct trn_reward_result {
    int64_t steps;
    int n_train, n_eval;      /* pairs in each split */
    double train_loss, train_accuracy; /* over the last epoch's batches */
    double eval_loss, eval_accuracy;   /* NAN without an eval split */
    double seconds;
} trn_reward_result;

/* Trains on the train split of s (AdamW over trn_reward_params, shuffled
 * epochs from cfg.seed, the adapter's dropout on), scoring the eval split
 * at the end of every epoch. res may be NULL. */
int trn_reward_train(trn_reward *rm, const pref_set *s, const trn_reward_train_cfg *cfg,
                     trn_reward_progress_fn fn, void *ctx, trn_reward_result *res, char *err,
                     size_t errlen);

/* Mean loss and accuracy over one split of s (eval: the held-out pairs),
 * in passes of batch pairs, dropout off. -ENOENT when the split is empty. */
int trn_reward_evaluate(trn_reward *rm, const pref_set *s, bool eval, int batch, double *loss,
                        double *accuracy, char *err, size_t errlen);

/* ---- scoring and files ----------------------------------------------------- */

/* Rewards of n sequences seqs[i][0..lens[i]) into out[n], in padded passes
 * of up to TRN_REWARD_SCORE_TOKENS tokens (a sequence's reward does not
 * depend on what it is batched with). Lengths must be 1..the context. */
int trn_reward_score(trn_reward *rm, const int32_t *const *seqs, const int *lens, int n,
                     float *out, char *err, size_t errlen);

/* Writes the folder dir (created when missing; files replaced atomically)
 * as described above. extra (borrowed, may be NULL): a JSON object whose
 * keys are added to reward_config.json (training settings and figures). */
struct json_t;
int trn_reward_save(trn_reward *rm, const char *dir, const char *base_model,
                    const struct json_t *extra, char *err, size_t errlen);
/* Loads a folder written by trn_reward_save onto m (which must have the
 * architecture and width it was trained on). *config (may be NULL) gets a
 * new reference to reward_config.json. */
int trn_reward_load(trn_reward **out, model *m, const char *dir, struct json_t **config,
                    char *err, size_t errlen);

#endif
