/* threadpool.c - persistent pthread pool with a spin-then-sleep wait; see
 * threadpool.h.
 *
 * A job's range is cut into up to TP__CHUNKS_PER_THREAD chunks per thread,
 * which the caller and the workers claim one at a time from one atomic word
 * (generation << 32 | n_chunks << 16 | next chunk). Claiming by CAS on the
 * whole word means a worker that wakes late, after the caller has finished
 * every chunk itself, finds nothing to claim and never reads the job's other
 * fields; so the caller waits only for chunks that are actually running,
 * never for a worker that has lost its core (the machine shared with other
 * processes, or more threads than cores), and a slow core gets fewer chunks.
 *
 * Hand-off: the dispatcher writes the job fields, resets done, then stores
 * the word (release, under mu so a worker about to sleep cannot miss it);
 * a claim is an acquire CAS, after which the fields are stable until the
 * chunk is counted done. */
#include "threadpool.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TP__RELAX() _mm_pause()
#else
#define TP__RELAX() ((void)0)
#endif

#define TP__MAX_THREADS 256
#define TP__CHUNKS_PER_THREAD 4
/* How long an idle worker spins before it sleeps: longer than the gap
 * between two matmuls of a decode step, short against a whole step. */
#define TP__SPIN_NS 200000L
/* How long the caller spins on running chunks before yielding its core. */
#define TP__WAIT_SPIN_NS 20000L

struct tp_pool {
    int n;                   /* threads in all, the caller included */
    int n_started;           /* workers running */
    pthread_t *th;           /* [n - 1] */
    pthread_mutex_t run_mu;  /* held by the one tp_parallel_for running */
    pthread_mutex_t mu;      /* guards n_sleeping and the word's publication */
    pthread_cond_t cv;
    int n_sleeping;          /* workers waiting on cv (under mu) */
    atomic_bool stop;
    _Atomic uint64_t word;   /* gen << 32 | n_chunks << 16 | next chunk */
    atomic_int done;         /* chunks of this job finished */
    atomic_int park;         /* nonzero: stop spinning, sleep */
    /* the current job, written before the word is published */
    tp_fn fn;
    void *ctx;
    size_t n_items, grain, n_units;
};

static long tp__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Chunk i of n_chunks over n_units units of grain items, clipped to n. */
static void tp__chunk(const tp_pool *p, unsigned i, unsigned n_chunks, size_t *b, size_t *e)
{
    size_t u0 = p->n_units * i / n_chunks, u1 = p->n_units * (i + 1) / n_chunks;
    *b = u0 * p->grain < p->n_items ? u0 * p->grain : p->n_items;
    *e = u1 * p->grain < p->n_items ? u1 * p->grain : p->n_items;
}

/* Claims and runs chunks of the job in the word until none is left. */
static void tp__work(tp_pool *p, int worker)
{
    uint64_t w = atomic_load_explicit(&p->word, memory_order_relaxed);
    for (;;) {
        unsigned n_chunks = (unsigned)(w >> 16) & 0xffffu, next = (unsigned)w & 0xffffu;
        if (next >= n_chunks)
            return;
        if (!atomic_compare_exchange_weak_explicit(&p->word, &w, w + 1, memory_order_acquire,
                                                   memory_order_relaxed))
            continue;
        size_t b, e;
        tp__chunk(p, next, n_chunks, &b, &e);
        if (b < e)
            p->fn(p->ctx, b, e, worker);
        atomic_fetch_add_explicit(&p->done, 1, memory_order_release);
        w = atomic_load_explicit(&p->word, memory_order_relaxed);
    }
}

static unsigned tp__gen(const tp_pool *p)
{
    return (unsigned)(atomic_load_explicit(&p->word, memory_order_acquire) >> 32);
}

/* Waits until the generation differs from seen; returns the new one. */
static unsigned tp__wait(tp_pool *p, unsigned seen)
{
    unsigned g;
    long t0 = 0;
    for (int spins = 0;; spins++) {
        if ((g = tp__gen(p)) != seen)
            return g;
        if (atomic_load_explicit(&p->park, memory_order_relaxed))
            break;
        if ((spins & 63) == 0) {
            long now = tp__now_ns();
            if (t0 == 0)
                t0 = now;
            else if (now - t0 > TP__SPIN_NS)
                break;
        }
        TP__RELAX();
    }
    pthread_mutex_lock(&p->mu);
    p->n_sleeping++;
    while ((g = tp__gen(p)) == seen)
        pthread_cond_wait(&p->cv, &p->mu);
    p->n_sleeping--;
    pthread_mutex_unlock(&p->mu);
    return g;
}

typedef struct tp__arg {
    tp_pool *pool;
    int index;
} tp__arg;

static void *tp__main(void *arg)
{
    tp_pool *p = ((tp__arg *)arg)->pool;
    int index = ((tp__arg *)arg)->index;
    free(arg);
    unsigned seen = 0;
    for (;;) {
        seen = tp__wait(p, seen);
        if (atomic_load_explicit(&p->stop, memory_order_acquire))
            return NULL;
        tp__work(p, index);
    }
}

/* Publishes a job of n_chunks (0: a wake-up without work) as the next
 * generation; the job fields must be written already. */
static void tp__publish(tp_pool *p, unsigned n_chunks)
{
    atomic_store_explicit(&p->done, 0, memory_order_relaxed);
    atomic_store_explicit(&p->park, 0, memory_order_relaxed);
    pthread_mutex_lock(&p->mu);
    uint64_t gen = (atomic_load_explicit(&p->word, memory_order_relaxed) >> 32) + 1;
    atomic_store_explicit(&p->word, (gen & 0xffffffffu) << 32 | (uint64_t)n_chunks << 16,
                          memory_order_release);
    if (p->n_sleeping > 0)
        pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
}

static void tp__stop(tp_pool *p)
{
    if (p->n_started == 0)
        return;
    atomic_store_explicit(&p->stop, true, memory_order_release);
    tp__publish(p, 0);
    for (int i = 0; i < p->n_started; i++)
        pthread_join(p->th[i], NULL);
    p->n_started = 0;
}

int tp_create(tp_pool **out, int n_threads)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > TP__MAX_THREADS)
        return -EINVAL;
    tp_pool *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc = 0;
    p->n = n_threads;
    pthread_mutex_init(&p->run_mu, NULL);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    atomic_init(&p->stop, false);
    atomic_init(&p->word, 0);
    atomic_init(&p->done, 0);
    atomic_init(&p->park, 0);
    if (n_threads > 1 && !(p->th = calloc((size_t)n_threads - 1, sizeof *p->th))) {
        rc = -ENOMEM;
        goto fail;
    }
    for (int i = 0; i < n_threads - 1; i++) {
        tp__arg *arg = malloc(sizeof *arg);  /* the worker frees it */
        if (!arg) {
            rc = -ENOMEM;
            goto fail;
        }
        arg->pool = p;
        arg->index = i + 1;
        int e = pthread_create(&p->th[i], NULL, tp__main, arg);
        if (e != 0) {
            free(arg);
            rc = -e;
            goto fail;
        }
        p->n_started++;
    }
    *out = p;
    return 0;
fail:
    tp_free(p);
    return rc;
}

void tp_free(tp_pool *pool)
{
    if (!pool)
        return;
    tp__stop(pool);
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    pthread_mutex_destroy(&pool->run_mu);
    free(pool->th);
    free(pool);
}

int tp_threads(const tp_pool *pool) { return pool ? pool->n : 1; }

void tp_parallel_for(tp_pool *pool, size_t n, size_t grain, tp_fn fn, void *ctx)
{
    if (n == 0)
        return;
    if (grain == 0)
        grain = 1;
    size_t units = n / grain + (n % grain != 0);
    if (!pool || pool->n_started == 0 || units < 2 || pthread_mutex_trylock(&pool->run_mu) != 0) {
        fn(ctx, 0, n, 0);
        return;
    }
    size_t max_chunks = (size_t)pool->n * TP__CHUNKS_PER_THREAD;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_items = n;
    pool->grain = grain;
    pool->n_units = units;
    int n_chunks = (int)(units < max_chunks ? units : max_chunks);
    tp__publish(pool, (unsigned)n_chunks);
    tp__work(pool, 0);
    /* every chunk is claimed: wait for the ones still running elsewhere */
    long t0 = 0;
    for (int spins = 0; atomic_load_explicit(&pool->done, memory_order_acquire) < n_chunks;
         spins++) {
        if (t0 < 0) {
            sched_yield();  /* a worker lost its core mid-chunk: let it run */
            continue;
        }
        if ((spins & 63) == 0) {
            long now = tp__now_ns();
            if (t0 == 0)
                t0 = now;
            else if (now - t0 > TP__WAIT_SPIN_NS)
                t0 = -1;
        }
        TP__RELAX();
    }
    pthread_mutex_unlock(&pool->run_mu);
}

void tp_park(tp_pool *pool)
{
    if (pool)
        atomic_store_explicit(&pool->park, 1, memory_order_relaxed);
}
