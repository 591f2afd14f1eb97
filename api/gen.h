/* gen.h - one generation request (completions or chat) in flight: its
 * choices, turned from scheduler events into OpenAI-shaped responses, either
 * one JSON body at the end or a stream of Server-Sent Events.
 *
 * Threads: a job is built on the loop thread (gen_job_create, gen_submit).
 * From the first gen_submit on, the job belongs to the scheduler's thread:
 * every event of every choice arrives there (one scheduler per model), and
 * the last choice to finish answers through http_pending and frees the job.
 * `remaining` and `failed` are atomics because a failed submit on the loop
 * thread may race with choices already running.
 *
 * Reranking by reward (rerank GEN_RERANK_REWARD, never streamed): the
 * thread of the last choice to finish (the model's scheduler thread)
 * scores every choice with the model's reward model under its model_lock
 * (gen_rerank_score) before it answers, so the scoring never runs on the
 * loop thread and waits for, never overlaps, the model's forward passes.
 */
#ifndef API_GEN_H
#define API_GEN_H

#include <stdatomic.h>
#include <stdbool.h>

#include "http.h"
#include "models.h"
#include "stop_match.h"
#include "tok_utf8.h"

typedef enum { GEN_COMPLETION, GEN_CHAT } gen_kind;

/* Which best_of / n choices are returned, best first. */
typedef enum {
    GEN_RERANK_LOGPROB, /* OpenAI's: the most likely (by summed log-prob) */
    GEN_RERANK_REWARD,  /* the highest rewards of the model's reward model */
} gen_rerank;

typedef struct gen_choice {
    struct gen_job *job;
    int index;            /* as generated (prompt_i * best_of + j) */
    int prompt_i;
    stop_matcher stop;
    tok_stream utf8;
    char *text;           /* everything emitted (non-stream, or for best_of) */
    size_t len, cap;
    json_t *logprobs;     /* completion: {tokens, token_logprobs, top_logprobs,
                             text_offset}; chat: {content: [...]}; NULL when off */
    size_t text_offset;   /* bytes of text before the next token (completions) */
    double sum_logprob;   /* for best_of */
    float reward;         /* rerank by reward: the choice's score ... */
    bool has_reward;      /* ... when it could be scored (else ranked last) */
    int n_generated;
    int n_cached;         /* prompt positions the prefix cache gave (usage) */
    const char *finish;   /* "stop", "length"; NULL while running */
    bool role_sent;       /* chat streams send the role first */
} gen_choice;

typedef struct gen_job {
    gen_kind kind;
    served_model *sm;
    served_adapter *adapter; /* the job's reference (NULL: base); its LoRA
                                runs every choice, so it is given back only
                                when the last choice has ended */
    char model[2 * CFG_MODEL_NAME_MAX]; /* "model" of the answers: NAME or
                                NAME:ADAPTER */
    http_pending *p;      /* the job's reference */
    bool stream, include_usage, echo;
    int top_logprobs;     /* -1: no logprobs; else entries per token (0..20) */
    int n;                /* choices returned per prompt */
    int best_of;          /* choices generated per prompt (>= n) */
    int n_prompts;
    int n_choices;        /* n_prompts * best_of */
    int prompt_tokens;    /* usage: each prompt counted once */
    char id[48];
    long created;
    gen_rerank rerank;
    char **prompt_text;   /* [n_prompts] prompt texts (completions, for `echo`
                             and for reward reranking), or NULL */
    json_t *prompt_msgs;  /* chat with reward reranking: the messages as
                             [{role, content}] (owned, a copy only this job
                             reads), or NULL */
    atomic_int remaining; /* choices not finished */
    atomic_bool failed;   /* stop every choice: the request is being answered with an error */
    char error[512];      /* first error, answered when the last choice ends */
    int error_status;
    api_error_code error_code;
    gen_choice choices[]; /* [n_choices] */
} gen_job;

/* Returns a new JSON string: token id's text as valid UTF-8 (a partial
 * character, e.g. one byte token of an emoji, becomes U+FFFD); special
 * tokens render as their text. Any thread. */
json_t *gen_piece_json(const tok *t, int32_t id);

/* A new job with n_choices zeroed choices (stop strings copied into each
 * choice's matcher); NULL with err filled on failure (a bad stop string:
 * the message names stop[i]). */
gen_job *gen_job_create(gen_kind kind, served_model *sm, int n_prompts, int best_of,
                        const char *const *stops, size_t n_stops, char *err, size_t errlen);
/* Frees a job that was never submitted (and its pending and adapter
 * references). */
void gen_job_free(gen_job *job);

/* Loop thread: submits every choice (prompts[i] of n_tokens[i] tokens, with
 * `base` for the sampling settings; choice j of a prompt gets seed
 * base.samp.seed + j when seeded). The caller has checked the queue has
 * room. From the first submit on the job is the scheduler's. Returns 0, or
 * -1 when even the first submit failed (err filled; the caller still owns
 * the job and answers). */
int gen_submit(gen_job *job, int32_t *const *prompts, const int *n_tokens, const sched_req *base,
               bool seeded, char *err, size_t errlen, int *err_status);

/* Reward reranking: scores every choice of job (prompt + its text, as
 * POST /v1/rewards scores a pair) with the reward model of job->sm,
 * filling reward / has_reward. Call on the thread that finalizes the job,
 * never the loop thread; takes the model's model_lock. Returns 0 (also
 * when the client has gone: nothing is scored then), or -1 with *code and
 * err filled (the model has no reward model now: REWARD_MODEL_UNAVAILABLE;
 * else INTERNAL). */
int gen_rerank_score(gen_job *job, api_error_code *code, char *err, size_t errlen);

#endif
