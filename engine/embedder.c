/* embedder.c - the embedding batcher's queue, packing and pooling. */
#include "embedder.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct emb__req {
    int32_t **inputs;   /* [n_inputs] owned copies */
    int *lens;
    int n_inputs;
    int next;           /* first input not yet run */
    float *vectors;     /* [n_inputs, dim] */
    emb_done_fn done;
    void *ud;
    struct emb__req *next_req;
} emb__req;

struct emb_batcher {
    model *m;
    emb_opts o;
    int dim;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    emb__req *head, *tail;  /* guarded by mu */
    int n_queued;
    bool stop;
    emb_stats stats;
    /* batcher thread only */
    int32_t *b_tok, *b_pos, *b_seq;
    float *hidden;          /* [max_batch_tokens, dim] */
};

static void emb__req_free(emb__req *r) {
    if (!r) return;
    for (int i = 0; i < r->n_inputs; i++) free(r->inputs ? r->inputs[i] : NULL);
    free(r->inputs);
    free(r->lens);
    free(r->vectors);
    free(r);
}

static void emb__deadline(struct timespec *ts, int ms) {
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_nsec += (long)ms * 1000000L;
    ts->tv_sec += ts->tv_nsec / 1000000000L;
    ts->tv_nsec %= 1000000000L;
}

/* Tokens still to run in the queue (mu held). */
static int emb__pending_tokens(const emb_batcher *e) {
    int t = 0;
    for (const emb__req *r = e->head; r; r = r->next_req)
        for (int i = r->next; i < r->n_inputs; i++) t += r->lens[i];
    return t;
}

/* Runs one batch from the head of the queue; finished requests are moved
 * to *done_list for their callbacks (run without the lock). */
static void emb__run_batch(emb_batcher *e, emb__req **done_list) {
    /* plan under the lock: which inputs of which requests */
    typedef struct { emb__req *r; int input, start, len; } slot;
    slot *slots = NULL;
    int n_slots = 0, cap = 0, t = 0;
    pthread_mutex_lock(&e->mu);
    for (emb__req *r = e->head; r; r = r->next_req) {
        int i = r->next;
        for (; i < r->n_inputs && t + r->lens[i] <= e->o.max_batch_tokens; i++) {
            if (n_slots == cap) {
                cap = cap ? cap * 2 : 64;
                slot *ns = realloc(slots, (size_t)cap * sizeof *ns);
                if (!ns) break;
                slots = ns;
            }
            slots[n_slots++] = (slot){r, i, t, r->lens[i]};
            t += r->lens[i];
        }
        r->next = i;
        if (i < r->n_inputs) break; /* the batch is full: keep FIFO order */
    }
    pthread_mutex_unlock(&e->mu);
    if (n_slots == 0) {
        free(slots);
        return;
    }
    for (int s = 0; s < n_slots; s++)
        for (int k = 0; k < slots[s].len; k++) {
            e->b_tok[slots[s].start + k] = slots[s].r->inputs[slots[s].input][k];
            e->b_pos[slots[s].start + k] = k;
            e->b_seq[slots[s].start + k] = s;
        }
    model_batch b = {.n_tokens = t, .token = e->b_tok, .pos = e->b_pos, .seq_id = e->b_seq};
    char err[512];
    if (e->o.model_lock) pthread_mutex_lock(e->o.model_lock);
    int rc = model_encode(e->m, &b, e->hidden, err, sizeof err);
    if (e->o.model_lock) pthread_mutex_unlock(e->o.model_lock);
    for (int s = 0; s < n_slots; s++) {
        emb__req *r = slots[s].r;
        if (rc != 0) continue;
        float *v = r->vectors + (size_t)slots[s].input * (size_t)e->dim;
        pool_apply(e->o.pool, e->hidden + (size_t)slots[s].start * (size_t)e->dim, slots[s].len, e->dim, v);
        if (e->o.normalize) pool_l2_normalize(v, e->dim);
    }
    /* finished requests leave the queue (on failure: every request in the batch) */
    pthread_mutex_lock(&e->mu);
    e->stats.batches++;
    e->stats.tokens += (unsigned long long)t;
    e->stats.inputs += (unsigned long long)n_slots;
    for (emb__req **pr = &e->head, *prev = NULL; *pr;) {
        emb__req *r = *pr;
        bool in_batch = false;
        for (int s = 0; s < n_slots && !in_batch; s++) in_batch = slots[s].r == r;
        if ((rc != 0 && in_batch) || r->next == r->n_inputs) {
            *pr = r->next_req;
            if (e->tail == r) e->tail = prev;
            e->n_queued--;
            r->next_req = *done_list;
            if (rc != 0) r->next = -1; /* marks failure for the callback */
            *done_list = r;
            continue;
        }
        prev = r;
        pr = &r->next_req;
    }
    e->stats.queued = e->n_queued;
    pthread_mutex_unlock(&e->mu);
    if (rc != 0)
        for (emb__req *r = *done_list; r; r = r->next_req)
            if (r->next == -1) r->done(r->ud, -EIO, NULL, r->n_inputs, e->dim, err), r->done = NULL;
    free(slots);
}

static void *emb__main(void *arg) {
    emb_batcher *e = arg;
    pthread_mutex_lock(&e->mu);
    while (!e->stop) {
        if (!e->head) {
            pthread_cond_wait(&e->cv, &e->mu);
            continue;
        }
        /* a short wait lets concurrent requests share the pass */
        if (e->o.max_wait_ms > 0 && e->head->next == 0 &&
            emb__pending_tokens(e) < e->o.max_batch_tokens) {
            struct timespec until;
            emb__deadline(&until, e->o.max_wait_ms);
            while (!e->stop && emb__pending_tokens(e) < e->o.max_batch_tokens &&
                   pthread_cond_timedwait(&e->cv, &e->mu, &until) == 0) {
            }
            if (e->stop) break;
        }
        pthread_mutex_unlock(&e->mu);
        emb__req *done = NULL;
        emb__run_batch(e, &done);
        while (done) {
            emb__req *r = done;
            done = r->next_req;
            if (r->done) r->done(r->ud, 0, r->vectors, r->n_inputs, e->dim, NULL);
            emb__req_free(r);
        }
        pthread_mutex_lock(&e->mu);
    }
    emb__req *rest = e->head;
    e->head = e->tail = NULL;
    pthread_mutex_unlock(&e->mu);
    while (rest) {
        emb__req *r = rest;
        rest = r->next_req;
        r->done(r->ud, -ECANCELED, NULL, r->n_inputs, e->dim, "the model is shutting down");
        emb__req_free(r);
    }
    return NULL;
}

int emb_create(emb_batcher **out, model *m, const emb_opts *o, char *err, size_t errlen) {
    *out = NULL;
    if (o->max_batch_tokens < 1 || o->queue_size < 1 || o->max_wait_ms < 0) {
        snprintf(err, errlen, "embedder: need max_batch_tokens >= 1, queue_size >= 1, max_wait_ms >= 0");
        return -EINVAL;
    }
    emb_batcher *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->m = m;
    e->o = *o;
    e->dim = model_hp(m)->n_embd;
    size_t T = (size_t)o->max_batch_tokens;
    e->b_tok = malloc(T * sizeof *e->b_tok);
    e->b_pos = malloc(T * sizeof *e->b_pos);
    e->b_seq = malloc(T * sizeof *e->b_seq);
    e->hidden = malloc(T * (size_t)e->dim * sizeof *e->hidden);
    if (!e->b_tok || !e->b_pos || !e->b_seq || !e->hidden) goto oom_free;
    pthread_mutex_init(&e->mu, NULL);
    pthread_cond_init(&e->cv, NULL);
    if (pthread_create(&e->thread, NULL, emb__main, e) != 0) {
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv);
        goto oom_free;
    }
    *out = e;
    return 0;
oom_free:
    free(e->b_tok), free(e->b_pos), free(e->b_seq), free(e->hidden);
    free(e);
oom:
    snprintf(err, errlen, "embedder: out of memory");
    return -ENOMEM;
}

void emb_free(emb_batcher *e) {
    if (!e) return;
    pthread_mutex_lock(&e->mu);
    e->stop = true;
    pthread_cond_signal(&e->cv);
    pthread_mutex_unlock(&e->mu);
    pthread_join(e->thread, NULL);
    pthread_mutex_destroy(&e->mu);
    pthread_cond_destroy(&e->cv);
    free(e->b_tok), free(e->b_pos), free(e->b_seq), free(e->hidden);
    free(e);
}

int emb_submit(emb_batcher *e, int32_t *const *inputs, const int *lens, int n_inputs,
               emb_done_fn done, void *ud, char *err, size_t errlen) {
    int n_ctx = model_n_ctx(e->m), vocab = model_hp(e->m)->n_vocab;
    if (n_inputs < 1) {
        snprintf(err, errlen, "no inputs");
        return -EINVAL;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (lens[i] < 1 || lens[i] > n_ctx || lens[i] > e->o.max_batch_tokens) {
            snprintf(err, errlen, "input[%d] has %d tokens; allowed 1 to %d", i, lens[i],
                     n_ctx < e->o.max_batch_tokens ? n_ctx : e->o.max_batch_tokens);
            return -EINVAL;
        }
        for (int k = 0; k < lens[i]; k++)
            if (inputs[i][k] < 0 || inputs[i][k] >= vocab) {
                snprintf(err, errlen, "input[%d] token %d is outside the vocabulary [0, %d)", i,
                         inputs[i][k], vocab);
                return -EINVAL;
            }
    }
    emb__req *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->n_inputs = n_inputs;
    r->inputs = calloc((size_t)n_inputs, sizeof *r->inputs);
    r->lens = malloc((size_t)n_inputs * sizeof *r->lens);
    r->vectors = malloc((size_t)n_inputs * (size_t)e->dim * sizeof *r->vectors);
    if (!r->inputs || !r->lens || !r->vectors) goto oom;
    for (int i = 0; i < n_inputs; i++) {
        r->lens[i] = lens[i];
        if (!(r->inputs[i] = malloc((size_t)lens[i] * sizeof(int32_t)))) goto oom;
        memcpy(r->inputs[i], inputs[i], (size_t)lens[i] * sizeof(int32_t));
    }
    r->done = done;
    r->ud = ud;
    int rc = 0;
    pthread_mutex_lock(&e->mu);
    if (e->stop) {
        snprintf(err, errlen, "the model is shutting down");
        rc = -ESHUTDOWN;
    } else if (e->n_queued >= e->o.queue_size) {
        snprintf(err, errlen, "the embedding queue is full (%d requests)", e->o.queue_size);
        rc = -EAGAIN;
    } else {
        if (e->tail) e->tail->next_req = r;
        else e->head = r;
        e->tail = r;
        e->n_queued++;
        e->stats.requests++;
        e->stats.queued = e->n_queued;
        pthread_cond_signal(&e->cv);
    }
    pthread_mutex_unlock(&e->mu);
    if (rc) emb__req_free(r);
    return rc;
oom:
    emb__req_free(r);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

void emb_stats_get(emb_batcher *e, emb_stats *out) {
    pthread_mutex_lock(&e->mu);
    *out = e->stats;
    pthread_mutex_unlock(&e->mu);
}
