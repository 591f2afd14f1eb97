/* scheduler.h - the continuous-batching scheduler of one decoder model.
 *
 * Each scheduler owns a thread, the model's KV-cache pool and a bounded
 * queue. Every engine step runs ONE model_forward over
 *   - the next token of every running sequence (decode), then
 *   - chunks of waiting prompts (prefill), up to max_batch_tokens in all,
 * so the weights are read once per step for everybody. New requests join
 * between steps; finished ones leave and free their KV blocks at once.
 *
 * A sequence is "feed tokens[n_computed .. n_tokens) to the model": a prompt
 * is fed in chunks, a decoding sequence feeds its one new token. When the KV
 * pool runs out of blocks while sequences grow, the most recently admitted
 * running sequence is preempted (its blocks freed, its tokens so far kept)
 * and recomputed later; requests wait for blocks rather than fail.
 *
 * Adapters: a request may name a LoRA adapter (sched_req.adapter); each
 * step passes the distinct adapters of its sequences to model_forward as
 * one table, with every token tagged by its sequence's adapter, so base and
 * adapted sequences share a step. A sequence's KV cache is computed with
 * its adapter, so only base-model sequences share KV (below).
 *
 * Prefix cache (prefix_cache.h): when a base-model sequence ends, its KV
 * blocks (whole blocks of the positions computed) are kept, up to
 * prefix_cache of them in LRU order, in KV slots after the running ones; a
 * new base-model prompt that starts with kept tokens shares those blocks
 * and its prefill starts after them (a shared system prompt costs its
 * prefill once). Kept blocks are evicted before any running sequence is
 * preempted or any prompt waits for blocks.
 *
 * Events: the scheduler calls req.on_event on its own thread for every
 * generated token and once more at the end (finish != SCHED_FINISH_NONE,
 * possibly carrying the last token). After the final event, or after
 * on_event returned anything but SCHED_CONTINUE, the scheduler never calls
 * the request's callbacks again and forgets `ud`: the caller frees it then.
 * Callbacks must be quick and must not call back into the scheduler.
 * req.is_cancelled is polled at every step boundary (a client that left);
 * a cancelled request gets its final event (SCHED_FINISH_CANCELLED) within
 * one step.
 *
 * Threads: sched_create/sched_free on the owner's thread; sched_submit and
 * sched_stats from any thread (a mutex guards the inbox); everything else
 * runs on the scheduler's thread.
 */
#ifndef SCHEDULER_H
#define SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdint.h>

#include "model.h"
#include "sampler.h"

typedef struct sched sched;

typedef struct sched_opts {
    int max_seqs;         /* sequences running at once (KV slots) */
    int max_batch_tokens; /* tokens per engine step */
    int kv_budget;        /* KV pool in tokens; 0 = max_seqs * n_ctx */
    int kv_block_size;    /* tokens per KV block */
    int queue_size;       /* waiting requests before sched_submit says -EAGAIN */
    int prefix_cache;     /* finished prompts whose KV is kept for reuse; 0: none */
    int n_ctx;            /* positions per sequence (the model's context) */
    pthread_mutex_t *model_lock; /* held around model_forward when the model has
                                    another user (the embedder); may be NULL */
} sched_opts;

typedef enum {
    SCHED_FINISH_NONE = 0,  /* more events follow */
    SCHED_FINISH_LENGTH,    /* max_tokens reached, or the context is full */
    SCHED_FINISH_STOP,      /* end-of-sequence token (not reported as a token) */
    SCHED_FINISH_CANCELLED, /* is_cancelled said so, or the scheduler stopped */
    SCHED_FINISH_TIMEOUT,   /* the request's deadline passed */
    SCHED_FINISH_ERROR,     /* the model failed; `error` says why */
} sched_finish;

typedef struct sched_event {
    int32_t token;       /* generated token, or -1 when the event has none */
    float logprob;       /* of token (see sampler.h), when token >= 0 */
    int n_top;           /* entries in top (req.top_logprobs) */
    const samp_logprob *top;
    sched_finish finish; /* SCHED_FINISH_NONE except on the final event */
    int n_prompt;        /* prompt tokens of the request */
    int n_cached;        /* of them, positions taken from the prefix cache */
    int n_generated;     /* tokens generated so far, including this one */
    double queue_s;      /* seconds from submit to the first token */
    const char *error;   /* SCHED_FINISH_ERROR only */
} sched_event;

typedef enum {
    SCHED_CONTINUE = 0,
    SCHED_END,           /* the caller is done (a stop string, client gone) */
} sched_reply;

typedef sched_reply (*sched_event_fn)(void *ud, const sched_event *ev);

typedef struct sched_req {
    const int32_t *prompt;   /* [n_prompt], copied by sched_submit */
    int n_prompt;            /* >= 1 */
    int max_tokens;          /* >= 1 */
    samp_params samp;        /* copied (logit_bias too) */
    int top_logprobs;        /* 0..SAMP_TOP_LOGPROBS_MAX entries per token */
    int32_t eos_id;          /* ends the sequence (SCHED_FINISH_STOP); -1 none */
    const trn_lora *adapter; /* NULL: the base model. Borrowed and only read:
                                the caller keeps it alive until the final
                                event (or an on_event reply other than
                                SCHED_CONTINUE) */
    double timeout_s;        /* from submit; <= 0: none */
    sched_event_fn on_event; /* scheduler thread */
    bool (*is_cancelled)(void *ud); /* scheduler thread; may be NULL */
    void *ud;                /* the caller's; never freed by the scheduler */
} sched_req;

/* Starts a scheduler for `m` (borrowed; outlives the scheduler). Returns 0
 * or a negative errno with err filled (bad options, no memory for the KV
 * pool). */
int sched_create(sched **out, model *m, const sched_opts *o, char *err, size_t errlen);
/* Stops the thread; every request still queued or running gets its final
 * event (SCHED_FINISH_CANCELLED) first. Accepts NULL. */
void sched_free(sched *s);

/* Queues a request. Returns 0; -EAGAIN when the queue is full (answer 429);
 * -E2BIG when the prompt plus max_tokens cannot fit the context or the KV
 * pool; -EINVAL for bad values (err says which, naming the field), an
 * adapter that does not fit the model included;
 * -ESHUTDOWN once sched_free has begun. On failure no callback is called. */
int sched_submit(sched *s, const sched_req *req, char *err, size_t errlen);

/* Counters for /metrics (a consistent snapshot). */
#define SCHED_HIST_BUCKETS 14
typedef struct sched_hist {
    unsigned long long buckets[SCHED_HIST_BUCKETS]; /* non-cumulative, by sched_hist_bounds */
    unsigned long long count;
    double sum;
} sched_hist;
extern const double sched_hist_bounds[SCHED_HIST_BUCKETS]; /* seconds */

typedef struct sched_stats {
    int waiting, running;
    int kv_blocks_total, kv_block_size;
    int kv_blocks_used;   /* held by running sequences */
    int kv_blocks_cached; /* held by the prefix cache alone (evicted when wanted) */
    unsigned long long prompt_tokens, generated_tokens, steps, preemptions;
    unsigned long long prefix_hits;   /* admissions that reused cached positions */
    unsigned long long prefix_tokens; /* prompt positions not computed thanks to them */
    int prefix_entries;               /* prefixes kept now */
    unsigned long long requests_finished[SCHED_FINISH_ERROR + 1];
    sched_hist ttft; /* submit -> first token */
    sched_hist itl;  /* between tokens of one sequence */
} sched_stats;
void sched_stats_get(sched *s, sched_stats *out);

const char *sched_finish_name(sched_finish f); /* "length", "stop", ... */

#endif
