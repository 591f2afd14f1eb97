/* sampler.h - the token sampler: one per generated sequence.
 *
 * Turns a row of next-token logits into a token, with the settings users of
 * OpenAI, vLLM and llama.cpp's server expect. The processing chain follows
 * llama.cpp's default order:
 *
 *   logit_bias -> penalties (repetition, then presence + frequency)
 *     -> top_k -> top_p -> min_p -> temperature -> softmax -> draw
 *
 *   - logit_bias: logit[t] += bias; a bias of -100 (the lowest allowed) is a
 *     ban (the logit becomes -inf), as OpenAI documents; +100 all but forces.
 *   - repetition_penalty (1 = off; llama.cpp / HF): for each distinct token in
 *     the penalty window, a positive logit is divided by it, a non-positive
 *     one multiplied by it.
 *   - presence_penalty, frequency_penalty (0 = off; OpenAI):
 *     logit[t] -= presence * (count[t] > 0) + frequency * count[t], count over
 *     the penalty window.
 *     The penalty window is the last repeat_last_n tokens given to
 *     samp_accept (-1: all of them; 0: penalties off). Which tokens the window
 *     sees is the caller's choice: llama.cpp's server accepts the prompt
 *     tokens too, OpenAI counts only generated tokens.
 *   - top_k (0 = off): keep the k highest logits (ties: lower id first).
 *   - top_p (1 = off): keep the shortest prefix, by descending logit, whose
 *     probability (softmax over what top_k kept, temperature 1) reaches top_p;
 *     the token that crosses top_p is kept.
 *   - min_p (0 = off): keep tokens whose probability is at least min_p times
 *     the largest one (logit >= max + log(min_p)).
 *   - temperature: probabilities are softmax(logit / temperature) over what
 *     is kept. temperature 0 is greedy: argmax of the biased and penalised
 *     logits (ties: lowest id); top_k / top_p / min_p are then irrelevant and
 *     no random number is drawn.
 *   Non-finite logits from the model (NaN, +-inf) are treated as banned.
 *
 * Logprobs (OpenAI `logprobs` / `top_logprobs`): computed from the full
 * vocabulary after bias and penalties and divided by the temperature
 * (temperature 1 when greedy), BEFORE top_k / top_p / min_p truncation: the
 * distribution the model and the penalties describe, not the truncated one
 * (vLLM's and llama.cpp's "post-sampling probs off" behaviour). Banned
 * tokens have logprob -inf.
 *
 * Determinism: a sampler owns its generator (rng.h, seeded from `seed`),
 * its history and its scratch memory. Each non-greedy samp_sample draws
 * exactly one uniform number, so the same seed, the same logits and the same
 * accepted tokens give the same tokens whether or not the sequence is
 * batched with others.
 *
 * Memory: a sampler holds a copy of logit_bias, the penalty window and its
 * distinct-token counts (repeat_last_n entries each, or growing with the
 * history when -1), and candidate scratch allocated on first need: top_k ids
 * with top_k on, 4 * vocab bytes when only top_p < 1 needs an ordering, none
 * otherwise. samp_sample itself never allocates once warmed up.
 *
 * Errors: 0 or a negative errno: -EINVAL (bad argument), -ENOMEM, -EDOM (no
 * token has a finite logit after bias: everything is banned).
 *
 * Threads: a sampler belongs to one sequence; one thread at a time may call
 * functions on it (the engine thread that steps the sequence). No shared
 * state between samplers.
 */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stddef.h>
#include <stdint.h>

/* Allowed ranges, shared with the API layer's documentation. */
#define SAMP_TEMPERATURE_MAX 2.0f
#define SAMP_REPETITION_PENALTY_MAX 10.0f
#define SAMP_PRESENCE_PENALTY_MAX 2.0f   /* also the bound for frequency */
#define SAMP_LOGIT_BIAS_MAX 100.0f       /* |bias| <= this; -max bans */
#define SAMP_REPEAT_LAST_N_MAX 65536
#define SAMP_TOP_LOGPROBS_MAX 20         /* OpenAI's top_logprobs limit */

typedef struct samp_logit_bias {
    int32_t token;  /* in [0, vocab) */
    float bias;     /* in [-100, 100]; -100 bans the token */
} samp_logit_bias;

typedef struct samp_params {
    float temperature;          /* [0, 2]; 0 = greedy */
    int32_t top_k;              /* >= 0; 0 = off; >= vocab is the same as off */
    float top_p;                /* (0, 1]; 1 = off */
    float min_p;                /* [0, 1]; 0 = off */
    float repetition_penalty;   /* (0, 10]; 1 = off */
    int32_t repeat_last_n;      /* [-1, 65536]; penalty window, -1 = all, 0 = off */
    float presence_penalty;     /* [-2, 2]; 0 = off */
    float frequency_penalty;    /* [-2, 2]; 0 = off */
    const samp_logit_bias *logit_bias;  /* borrowed; n_logit_bias entries */
    int32_t n_logit_bias;       /* [0, vocab]; token ids must be distinct */
    uint64_t seed;              /* any value */
} samp_params;

typedef struct samp_logprob {
    int32_t token;
    float logprob;  /* natural log; -inf for banned tokens */
} samp_logprob;

/* What samp_sample_ex reports besides the token. */
typedef struct samp_output {
    int32_t token;     /* the chosen token */
    float logprob;     /* its logprob (see "Logprobs" above) */
    int32_t n_top;     /* entries filled in top[] */
    samp_logprob top[SAMP_TOP_LOGPROBS_MAX];  /* descending; ties: lower id first */
} samp_output;

typedef struct samp samp;

/* Fills *p with OpenAI's defaults: temperature 1, every filter and penalty
 * off, no logit_bias, repeat_last_n 64 (llama.cpp's), seed 0. An endpoint
 * that wants OpenAI's presence/frequency semantics over the whole generated
 * text sets repeat_last_n = -1 and accepts only generated tokens. */
void samp_params_default(samp_params *p);

/* Checks p against a vocabulary of `vocab` tokens. Returns 0, or -EINVAL with
 * a message naming the field and its allowed range in err (errlen bytes,
 * always NUL-terminated when errlen > 0; err may be NULL), e.g.
 * "top_p must be in (0, 1], got 0", "logit_bias token 99999 out of range
 * [0, 32000)". The message starts with the field name (logit_bias for any
 * entry) so the API layer can fill OpenAI's `param`. Any thread. */
int samp_validate(const samp_params *p, int vocab, char *err, size_t errlen);

/* Returns a new sampler for a vocabulary of `vocab` tokens, or NULL when p
 * is invalid (call samp_validate first for the reason) or memory runs out.
 * p and its logit_bias array are copied, not kept. Free with samp_free. */
samp *samp_create(const samp_params *p, int vocab);

/* Frees s. Accepts NULL. */
void samp_free(samp *s);

/* Forgets the history and reseeds the generator from the original seed:
 * the sampler behaves as if just created. */
void samp_reset(samp *s);

/* Records `token` in the penalty window (a prompt token or the token just
 * generated). Returns 0, -EINVAL when token is outside [0, vocab), or
 * -ENOMEM when an unbounded window (-1) cannot grow. */
int samp_accept(samp *s, int32_t token);

/* Samples the next token from logits[V] (V = the vocab given to
 * samp_create). logits is scratch: it is modified in place and holds
 * unspecified values on return. Returns 0 with *out_token set, -EINVAL
 * (NULL argument), -EDOM (every token banned) or -ENOMEM (first-use scratch).
 * Does not accept the token: call samp_accept with it. */
int samp_sample(samp *s, float *logits, int32_t *out_token);

/* As samp_sample, and fills *out with the token, its logprob and the
 * n_top (0..SAMP_TOP_LOGPROBS_MAX, clamped) most likely tokens. */
int samp_sample_ex(samp *s, float *logits, int n_top, samp_output *out);

/* Accessors. */
int samp_vocab(const samp *s);
/* Number of tokens currently in the penalty window. */
int samp_window_len(const samp *s);

#endif
