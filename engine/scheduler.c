/* scheduler.c - continuous batching over one model: admission, KV blocks,
 * preemption, one model_forward per step, sampling and events. */
#include "scheduler.h"

#include "prefix_cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double sched_hist_bounds[SCHED_HIST_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                                      1,     2.5,  5,     10,    30,  60,  120};

typedef struct sched__seq {
    sched_req req;           /* the caller's request; req.prompt not used after submit */
    int32_t *tokens;         /* prompt + generated */
    int n_tokens, cap;
    int n_prompt;
    int n_computed;          /* tokens whose K/V are in the cache */
    int n_cached;            /* prompt positions the prefix cache gave */
    int n_generated;
    int slot;                /* KV slot while admitted, else -1 */
    samp *samp;
    samp_logit_bias *bias;   /* copy of req.samp.logit_bias */
    double t_submit, t_last, deadline;
    uint64_t admit_order;
    int chunk;               /* tokens fed in the current step */
    struct sched__seq *next; /* inbox / waiting list */
} sched__seq;

struct sched {
    model *m;
    kv_cache *kv;
    pfx_cache *pfx;       /* KV slots [max_seqs, max_seqs + prefix_cache) */
    sched_opts o;
    int n_vocab;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* guarded by mu */
    sched__seq *inbox_head, *inbox_tail;
    int n_inbox, n_waiting_pub;
    bool stop;
    sched_stats stats;
    /* scheduler thread only */
    sched__seq *wait_head, *wait_tail;
    int n_waiting;
    sched__seq **running; /* [max_seqs], in admission order */
    int n_running;
    bool *slot_used;      /* [max_seqs] */
    uint64_t admit_counter;
    int32_t *b_tok, *b_pos, *b_seq; /* [max_batch_tokens] */
    int8_t *b_want;
    int16_t *b_adapter;   /* [max_batch_tokens] index into b_table, -1 base */
    const trn_lora **b_table; /* [max_seqs] the step's distinct adapters */
    sched__seq **b_rows;  /* [max_seqs]: owner of each logits row */
    float *logits;        /* [max_seqs, V] */
};

static double sched__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

const char *sched_finish_name(sched_finish f) {
    static const char *names[] = {"none", "length", "stop", "cancelled", "timeout", "error"};
    return (unsigned)f <= SCHED_FINISH_ERROR ? names[f] : "?";
}

static void sched__hist_add(sched_hist *h, double v) {
    for (int b = 0; b < SCHED_HIST_BUCKETS; b++)
        if (v <= sched_hist_bounds[b]) {
            h->buckets[b]++;
            break;
        }
    h->count++;
    h->sum += v;
}

/* ---- sequences ----------------------------------------------------------- */

static void sched__seq_free(sched__seq *q) {
    if (!q) return;
    samp_free(q->samp);
    free(q->bias);
    free(q->tokens);
    free(q);
}

/* Sends the final event (unless the caller already ended) and frees q.
 * q must already be out of every list, with its KV slot released. */
static void sched__finish(sched *s, sched__seq *q, sched_finish why, int32_t token, const char *error,
                          bool caller_ended) {
    if (!caller_ended) {
        sched_event ev = {.token = token, .finish = why, .n_prompt = q->n_prompt,
                          .n_cached = q->n_cached, .n_generated = q->n_generated, .error = error,
                          .queue_s = sched__now() - q->t_submit};
        q->req.on_event(q->req.ud, &ev);
    }
    pthread_mutex_lock(&s->mu);
    s->stats.requests_finished[why]++;
    pthread_mutex_unlock(&s->mu);
    sched__seq_free(q);
}

static void sched__release_slot(sched *s, sched__seq *q) {
    if (q->slot < 0) return;
    kv_seq_clear(s->kv, q->slot);
    s->slot_used[q->slot] = false;
    q->slot = -1;
    q->n_computed = 0;
}

static void sched__running_remove(sched *s, int i) {
    memmove(&s->running[i], &s->running[i + 1], (size_t)(s->n_running - i - 1) * sizeof *s->running);
    s->n_running--;
}

static int sched__running_index(sched *s, sched__seq *q) {
    for (int i = 0; i < s->n_running; i++)
        if (s->running[i] == q) return i;
    return -1;
}

/* Ends a running sequence: keeps its KV prefix for later prompts (base
 * model only: prefix_cache.h), frees its blocks and slot, then finishes it. */
static void sched__end_running(sched *s, sched__seq *q, sched_finish why, int32_t token,
                               const char *error, bool caller_ended) {
    int i = sched__running_index(s, q);
    if (i >= 0) sched__running_remove(s, i);
    if (q->slot >= 0 && !q->req.adapter && why != SCHED_FINISH_ERROR)
        pfx_retain(s->pfx, q->slot, q->tokens, q->n_computed);
    sched__release_slot(s, q);
    sched__finish(s, q, why, token, error, caller_ended);
}

/* Puts a running sequence back at the head of the waiting list, dropping its
 * cache; it keeps its tokens and is recomputed when admitted again. */
static void sched__preempt(sched *s, sched__seq *q) {
    int i = sched__running_index(s, q);
    if (i >= 0) sched__running_remove(s, i);
    sched__release_slot(s, q);
    q->next = s->wait_head;
    s->wait_head = q;
    if (!s->wait_tail) s->wait_tail = q;
    s->n_waiting++;
    pthread_mutex_lock(&s->mu);
    s->stats.preemptions++;
    pthread_mutex_unlock(&s->mu);
}

/* ---- one step ------------------------------------------------------------- */

/* Cancellations and deadlines, for waiting and running sequences. */
static void sched__reap(sched *s, double now) {
    for (sched__seq **pq = &s->wait_head, *prev = NULL; *pq;) {
        sched__seq *q = *pq;
        bool cancelled = q->req.is_cancelled && q->req.is_cancelled(q->req.ud);
        bool late = q->deadline > 0 && now > q->deadline;
        if (!cancelled && !late) {
            prev = q;
            pq = &q->next;
            continue;
        }
        *pq = q->next;
        if (s->wait_tail == q) s->wait_tail = prev;
        s->n_waiting--;
        sched__finish(s, q, cancelled ? SCHED_FINISH_CANCELLED : SCHED_FINISH_TIMEOUT, -1, NULL, false);
    }
    for (int i = s->n_running - 1; i >= 0; i--) {
        sched__seq *q = s->running[i];
        bool cancelled = q->req.is_cancelled && q->req.is_cancelled(q->req.ud);
        bool late = q->deadline > 0 && now > q->deadline;
        if (cancelled || late)
            sched__end_running(s, q, cancelled ? SCHED_FINISH_CANCELLED : SCHED_FINISH_TIMEOUT, -1,
                               NULL, false);
    }
}

/* Admits waiting sequences (FIFO) while a slot is free and the pool has the
 * blocks for the whole prompt, which are reserved at once (so prompt chunks
 * never wait for blocks and a new prompt never evicts running work). A
 * base-model prompt first takes what the prefix cache holds of it; cached
 * prefixes are evicted when blocks are short. */
static void sched__admit(sched *s) {
    while (s->wait_head && s->n_running < s->o.max_seqs) {
        sched__seq *q = s->wait_head;
        int slot = 0;
        while (s->slot_used[slot]) slot++;
        int cached = q->req.adapter ? 0 : pfx_attach(s->pfx, slot, q->tokens, q->n_tokens);
        while (kv_blocks_needed(s->kv, slot, q->n_tokens) > kv_n_free_blocks(s->kv) &&
               pfx_evict(s->pfx)) {
        }
        if (kv_seq_reserve(s->kv, slot, q->n_tokens) != 0) { /* head-of-line waits for blocks */
            kv_seq_clear(s->kv, slot);
            break;
        }
        s->wait_head = q->next;
        if (!s->wait_head) s->wait_tail = NULL;
        s->n_waiting--;
        q->next = NULL;
        q->slot = slot;
        s->slot_used[slot] = true;
        q->admit_order = ++s->admit_counter;
        q->n_computed = cached;
        q->n_cached = cached > q->n_cached ? cached : q->n_cached;
        s->running[s->n_running++] = q;
        if (cached) {
            pthread_mutex_lock(&s->mu);
            s->stats.prefix_hits++;
            s->stats.prefix_tokens += (unsigned long long)cached;
            pthread_mutex_unlock(&s->mu);
        }
    }
}

/* Chooses what each running sequence feeds this step, reserving KV blocks;
 * returns the number of batch tokens. Decoding sequences come first, in
 * admission order; when the pool is full the newest sequence is preempted. */
static int sched__plan(sched *s) {
    int budget = s->o.max_batch_tokens, n = 0;
    for (int i = 0; i < s->n_running; i++) s->running[i]->chunk = 0;
    /* decode: one token each */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        sched__seq *q = s->running[i];
        if (q->n_tokens - q->n_computed != 1) continue;
        while (kv_seq_reserve(s->kv, q->slot, q->n_tokens) == -ENOSPC) {
            if (pfx_evict(s->pfx)) continue; /* cached prefixes go before running work */
            sched__seq *victim = s->running[s->n_running - 1];
            if (victim == q && s->n_running == 1) { /* alone and still too big */
                sched__end_running(s, q, SCHED_FINISH_LENGTH, -1, NULL, false);
                q = NULL;
                break;
            }
            sched__preempt(s, victim);
            if (victim == q) {
                q = NULL;
                break;
            }
        }
        if (!q) {
            i--; /* the array shifted (or q left); look at index i again */
            continue;
        }
        q->chunk = 1;
        budget--;
        n++;
    }
    /* prefill: prompt chunks with what is left */
    for (int i = 0; i < s->n_running && budget > 0; i++) {
        sched__seq *q = s->running[i];
        int left = q->n_tokens - q->n_computed;
        if (q->chunk || left <= 1) continue; /* decoding: handled above */
        int chunk = left < budget ? left : budget; /* blocks were reserved at admission */
        q->chunk = chunk;
        budget -= chunk;
        n += chunk;
    }
    return n;
}

/* Samples the next token of q from its logits row, emits the event, and
 * ends q when it is done. */
static void sched__emit(sched *s, sched__seq *q, float *row) {
    samp_output out;
    int rc = samp_sample_ex(q->samp, row, q->req.top_logprobs, &out);
    if (rc != 0) {
        sched__end_running(s, q, SCHED_FINISH_ERROR, -1,
                           rc == -EDOM ? "every token is banned by logit_bias" : "sampling failed", false);
        return;
    }
    double now = sched__now();
    pthread_mutex_lock(&s->mu);
    if (q->n_generated == 0) sched__hist_add(&s->stats.ttft, now - q->t_submit);
    else sched__hist_add(&s->stats.itl, now - q->t_last);
    pthread_mutex_unlock(&s->mu);
    q->t_last = now;
    if (out.token == q->req.eos_id) {
        sched__end_running(s, q, SCHED_FINISH_STOP, -1, NULL, false);
        return;
    }
    q->tokens[q->n_tokens++] = out.token;
    q->n_generated++;
    samp_accept(q->samp, out.token);
    pthread_mutex_lock(&s->mu);
    s->stats.generated_tokens++;
    pthread_mutex_unlock(&s->mu);
    sched_finish fin = SCHED_FINISH_NONE;
    if (q->n_generated >= q->req.max_tokens || q->n_tokens >= s->o.n_ctx) fin = SCHED_FINISH_LENGTH;
    sched_event ev = {.token = out.token, .logprob = out.logprob, .n_top = out.n_top,
                      .top = out.top, .finish = fin, .n_prompt = q->n_prompt, .n_cached = q->n_cached,
                      .n_generated = q->n_generated, .queue_s = now - q->t_submit};
    sched_reply r = q->req.on_event(q->req.ud, &ev);
    if (fin != SCHED_FINISH_NONE || r != SCHED_CONTINUE)
        sched__end_running(s, q, fin != SCHED_FINISH_NONE ? fin : SCHED_FINISH_STOP, -1, NULL, true);
}

/* Index of adapter a in the step's table (added when new); -1 for base. */
static int sched__adapter_index(sched *s, const trn_lora *a, int *n_table) {
    if (!a) return -1;
    for (int i = 0; i < *n_table; i++)
        if (s->b_table[i] == a) return i;
    s->b_table[*n_table] = a; /* at most one entry per running sequence */
    return (*n_table)++;
}

static void sched__step(sched *s) {
    sched__reap(s, sched__now());
    sched__admit(s);
    int n = sched__plan(s);
    if (n == 0) return;

    int t = 0, rows = 0, prompt_tokens = 0, n_table = 0;
    for (int i = 0; i < s->n_running; i++) {
        sched__seq *q = s->running[i];
        int a = q->chunk ? sched__adapter_index(s, q->req.adapter, &n_table) : -1;
        for (int k = 0; k < q->chunk; k++, t++) {
            int pos = q->n_computed + k;
            s->b_tok[t] = q->tokens[pos];
            s->b_pos[t] = pos;
            s->b_seq[t] = q->slot;
            s->b_want[t] = 0;
            s->b_adapter[t] = (int16_t)a;
            if (pos < q->n_prompt) prompt_tokens++;
        }
        if (q->chunk && q->n_computed + q->chunk == q->n_tokens) {
            s->b_want[t - 1] = 1;
            s->b_rows[rows++] = q;
        }
    }
    /* no adapter in the step: the base path, exactly as without adapters */
    model_batch b = {.n_tokens = t, .token = s->b_tok, .pos = s->b_pos, .seq_id = s->b_seq,
                     .logits = s->b_want, .adapter = n_table ? s->b_adapter : NULL,
                     .adapters = s->b_table, .n_adapters = n_table};
    char err[512];
    if (s->o.model_lock) pthread_mutex_lock(s->o.model_lock);
    int rc = model_forward(s->m, s->kv, &b, rows ? s->logits : NULL, err, sizeof err);
    if (s->o.model_lock) pthread_mutex_unlock(s->o.model_lock);
    pthread_mutex_lock(&s->mu);
    s->stats.steps++;
    s->stats.prompt_tokens += (unsigned long long)prompt_tokens;
    pthread_mutex_unlock(&s->mu);
    if (rc != 0) {
        for (int i = s->n_running - 1; i >= 0; i--)
            if (s->running[i]->chunk) sched__end_running(s, s->running[i], SCHED_FINISH_ERROR, -1, err, false);
        return;
    }
    for (int i = 0; i < s->n_running; i++) s->running[i]->n_computed += s->running[i]->chunk;
    /* rows were collected in batch order; emitting may end sequences, which
     * only removes them from `running`, not from b_rows */
    for (int r = 0; r < rows; r++)
        sched__emit(s, s->b_rows[r], s->logits + (size_t)r * (size_t)s->n_vocab);
}

/* ---- the thread ---------------------------------------------------------- */

static void *sched__main(void *arg) {
    sched *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stop) {
        if (s->inbox_head) { /* new requests join between steps */
            if (s->wait_tail) s->wait_tail->next = s->inbox_head;
            else s->wait_head = s->inbox_head;
            s->wait_tail = s->inbox_tail;
            s->n_waiting += s->n_inbox;
            s->n_waiting_pub = s->n_waiting; /* sched_submit's queue count never drops early */
            s->inbox_head = s->inbox_tail = NULL;
            s->n_inbox = 0;
        }
        if (s->n_running == 0 && !s->wait_head) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        int before = s->n_running + s->n_waiting;
        sched__step(s);
        bool stalled = s->n_running == 0 && s->wait_head && before == s->n_waiting;
        pthread_mutex_lock(&s->mu);
        s->n_waiting_pub = s->n_waiting;
        s->stats.waiting = s->n_waiting + s->n_inbox;
        s->stats.running = s->n_running;
        /* blocks that only the prefix cache holds are reclaimable, not used */
        int in_use = kv_n_blocks(s->kv) - kv_n_free_blocks(s->kv);
        int running = s->o.prefix_cache ? kv_blocks_held(s->kv, 0, s->o.max_seqs) : in_use;
        if (running < 0) running = in_use;
        s->stats.kv_blocks_used = running;
        s->stats.kv_blocks_cached = in_use - running;
        s->stats.prefix_entries = pfx_entries(s->pfx);
        if (stalled) { /* nothing can run: poll cancellations and deadlines now and then */
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 50 * 1000000L;
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &until);
        }
    }
    /* stopping: everything still here ends as cancelled */
    sched__seq *rest = s->inbox_head;
    s->inbox_head = s->inbox_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (s->n_running) sched__end_running(s, s->running[s->n_running - 1], SCHED_FINISH_CANCELLED, -1, NULL, false);
    for (sched__seq *lists[2] = {s->wait_head, rest}, **l = lists; l < lists + 2; l++)
        while (*l) {
            sched__seq *q = *l;
            *l = q->next;
            sched__finish(s, q, SCHED_FINISH_CANCELLED, -1, NULL, false);
        }
    s->wait_head = s->wait_tail = NULL;
    return NULL;
}

/* ---- public -------------------------------------------------------------- */

int sched_create(sched **out, model *m, const sched_opts *o, char *err, size_t errlen) {
    *out = NULL;
    /* each running sequence may bring its own adapter into a step's table */
    if (o->max_seqs < 1 || o->max_seqs > MODEL_MAX_ADAPTERS || o->max_batch_tokens < o->max_seqs ||
        o->queue_size < 1 || o->n_ctx < 2 || o->kv_block_size < 1 || o->prefix_cache < 0) {
        snprintf(err, errlen, "scheduler: need max_seqs in [1, %d], max_batch_tokens >= max_seqs, "
                              "queue_size >= 1, n_ctx >= 2, kv_block_size >= 1, prefix_cache >= 0",
                 MODEL_MAX_ADAPTERS);
        return -EINVAL;
    }
    sched *s = calloc(1, sizeof *s);
    if (!s) goto oom;
    s->m = m;
    s->o = *o;
    s->n_vocab = model_hp(m)->n_vocab;
    int budget = o->kv_budget > 0 ? o->kv_budget : o->max_seqs * o->n_ctx;
    int rc = model_kv_create(m, o->max_seqs + o->prefix_cache, budget, o->kv_block_size, &s->kv,
                             err, errlen);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if (pfx_create(&s->pfx, s->kv, o->max_seqs, o->prefix_cache) != 0) goto oom_free;
    size_t nb = (size_t)o->max_batch_tokens;
    s->running = calloc((size_t)o->max_seqs, sizeof *s->running);
    s->slot_used = calloc((size_t)o->max_seqs, sizeof *s->slot_used);
    s->b_tok = malloc(nb * sizeof *s->b_tok);
    s->b_pos = malloc(nb * sizeof *s->b_pos);
    s->b_seq = malloc(nb * sizeof *s->b_seq);
    s->b_want = malloc(nb * sizeof *s->b_want);
    s->b_adapter = malloc(nb * sizeof *s->b_adapter);
    s->b_table = malloc((size_t)o->max_seqs * sizeof *s->b_table);
    s->b_rows = malloc((size_t)o->max_seqs * sizeof *s->b_rows);
    s->logits = malloc((size_t)o->max_seqs * (size_t)s->n_vocab * sizeof *s->logits);
    if (!s->running || !s->slot_used || !s->b_tok || !s->b_pos || !s->b_seq || !s->b_want ||
        !s->b_adapter || !s->b_table || !s->b_rows || !s->logits)
        goto oom_free;
    s->stats.kv_blocks_total = kv_n_blocks(s->kv);
    s->stats.kv_block_size = kv_block_size(s->kv);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, sched__main, s) != 0) {
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        goto oom_free;
    }
    *out = s;
    return 0;
oom_free:
    pfx_free(s->pfx);
    kv_free(s->kv);
    free(s->running), free(s->slot_used), free(s->b_tok), free(s->b_pos), free(s->b_seq);
    free(s->b_want), free(s->b_adapter), free(s->b_table), free(s->b_rows), free(s->logits);
    free(s);
oom:
    snprintf(err, errlen, "scheduler: out of memory");
    return -ENOMEM;
}

void sched_free(sched *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = true;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pfx_free(s->pfx);
    kv_free(s->kv);
    free(s->running), free(s->slot_used), free(s->b_tok), free(s->b_pos), free(s->b_seq);
    free(s->b_want), free(s->b_adapter), free(s->b_table), free(s->b_rows), free(s->logits);
    free(s);
}

int sched_submit(sched *s, const sched_req *req, char *err, size_t errlen) {
    if (req->n_prompt < 1 || !req->prompt) {
        snprintf(err, errlen, "prompt must have at least one token");
        return -EINVAL;
    }
    if (req->max_tokens < 1) {
        snprintf(err, errlen, "max_tokens must be at least 1");
        return -EINVAL;
    }
    if ((long)req->n_prompt + req->max_tokens > s->o.n_ctx) {
        snprintf(err, errlen, "prompt (%d tokens) plus max_tokens (%d) exceeds the context of %d tokens",
                 req->n_prompt, req->max_tokens, s->o.n_ctx);
        return -E2BIG;
    }
    int bs = kv_block_size(s->kv);
    if ((req->n_prompt + 1 + bs - 1) / bs > kv_n_blocks(s->kv)) {
        snprintf(err, errlen, "prompt (%d tokens) does not fit the KV-cache pool (%d tokens)",
                 req->n_prompt, kv_n_blocks(s->kv) * bs);
        return -E2BIG;
    }
    for (int i = 0; i < req->n_prompt; i++)
        if (req->prompt[i] < 0 || req->prompt[i] >= s->n_vocab) {
            snprintf(err, errlen, "prompt token %d at index %d is outside the vocabulary [0, %d)",
                     req->prompt[i], i, s->n_vocab);
            return -EINVAL;
        }
    if (samp_validate(&req->samp, s->n_vocab, err, errlen) != 0) return -EINVAL;
    if (req->adapter && model_lora_check(s->m, req->adapter, err, errlen) != 0) return -EINVAL;

    sched__seq *q = calloc(1, sizeof *q);
    if (!q) goto oom;
    q->req = *req;
    q->req.prompt = NULL;
    q->slot = -1;
    q->n_prompt = q->n_tokens = req->n_prompt;
    q->cap = req->n_prompt + req->max_tokens;
    q->tokens = malloc((size_t)q->cap * sizeof *q->tokens);
    if (!q->tokens) goto oom;
    memcpy(q->tokens, req->prompt, (size_t)req->n_prompt * sizeof *q->tokens);
    q->samp = samp_create(&req->samp, s->n_vocab); /* copies logit_bias */
    if (!q->samp) goto oom;
    q->req.samp.logit_bias = NULL; /* the sampler has its own copy */
    q->req.samp.n_logit_bias = 0;
    q->t_submit = sched__now();
    q->deadline = req->timeout_s > 0 ? q->t_submit + req->timeout_s : 0;

    pthread_mutex_lock(&s->mu);
    int rc = 0;
    if (s->stop) {
        snprintf(err, errlen, "the model is shutting down");
        rc = -ESHUTDOWN;
    } else if (s->n_inbox + s->n_waiting_pub >= s->o.queue_size) {
        snprintf(err, errlen, "the queue is full (%d requests waiting)", s->o.queue_size);
        rc = -EAGAIN;
    } else {
        if (s->inbox_tail) s->inbox_tail->next = q;
        else s->inbox_head = q;
        s->inbox_tail = q;
        s->n_inbox++;
        s->stats.waiting++;
        pthread_cond_signal(&s->cv);
    }
    pthread_mutex_unlock(&s->mu);
    if (rc) sched__seq_free(q);
    return rc;
oom:
    sched__seq_free(q);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

void sched_stats_get(sched *s, sched_stats *out) {
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}
