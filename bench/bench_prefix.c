/* bench_prefix.c - time to first token of prompts that share a system
 * prompt, through the scheduler, with the prefix cache off and on.
 *
 *   bench_prefix -m MODEL [-S SYSTEM] [-u USER] [-n REQUESTS] [-t THREADS]
 *
 * Each request is the same SYSTEM tokens (default 400) followed by USER
 * tokens of its own (default 16), asking for one token; the requests run one
 * after another, as a chat service's turns arrive. Prints the TTFT of the
 * first request (nothing cached yet) and the mean of the others, for
 * prefix_cache = 0 and 16, and the positions the cache supplied. Token ids
 * are random (fixed seeds): the figure depends on the model's shape, not on
 * its text. A 110M llama: bench_decode --gen FILE. Figures, not pass/fail.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "scheduler.h"

static const char bp_usage[] =
    "usage: bench_prefix -m MODEL [-S SYSTEM_TOKENS] [-u USER_TOKENS] [-n REQUESTS] [-t THREADS]\n";

typedef struct bp_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    double ttft;
    int n_cached;
} bp_wait;

static sched_reply bp_event(void *ud, const sched_event *ev)
{
    bp_wait *w = ud;
    pthread_mutex_lock(&w->mu);
    if (ev->token >= 0 && w->ttft < 0)
        w->ttft = ev->queue_s;
    w->n_cached = ev->n_cached;
    if (ev->finish != SCHED_FINISH_NONE) {
        w->done = true;
        pthread_cond_signal(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return SCHED_CONTINUE;
}

/* One pass of n requests; their TTFTs in ttft[n]; cached positions summed
 * in *cached. 0, or -1 with a message. */
static int bp_pass(model *m, int prefix_cache, int S, int U, int n, double *ttft, long *cached)
{
    int V = model_hp(m)->n_vocab;
    sched_opts o = {.max_seqs = 4, .max_batch_tokens = 512, .kv_block_size = 16,
                    .queue_size = 16, .n_ctx = S + U + 2, .prefix_cache = prefix_cache};
    sched *s;
    char err[256];
    if (sched_create(&s, m, &o, err, sizeof err) != 0) {
        fprintf(stderr, "bench_prefix: %s\n", err);
        return -1;
    }
    int32_t *p = malloc((size_t)(S + U) * sizeof *p);
    if (!p) {
        sched_free(s);
        return -1;
    }
    rng r;
    rng_seed(&r, 1);
    for (int i = 0; i < S; i++)
        p[i] = (int32_t)rng_below(&r, (uint64_t)V);
    *cached = 0;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        rng_seed(&r, 100 + (uint64_t)k);
        for (int i = 0; i < U; i++)
            p[S + i] = (int32_t)rng_below(&r, (uint64_t)V);
        bp_wait w = {.ttft = -1};
        pthread_mutex_init(&w.mu, NULL);
        pthread_cond_init(&w.cv, NULL);
        sched_req q = {.prompt = p, .n_prompt = S + U, .max_tokens = 1, .eos_id = -1,
                       .on_event = bp_event, .ud = &w};
        samp_params_default(&q.samp);
        q.samp.temperature = 0;
        if (sched_submit(s, &q, err, sizeof err) != 0) {
            fprintf(stderr, "bench_prefix: %s\n", err);
            rc = -1;
        } else {
            pthread_mutex_lock(&w.mu);
            while (!w.done)
                pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
            ttft[k] = w.ttft;
            *cached += w.n_cached;
        }
        pthread_mutex_destroy(&w.mu);
        pthread_cond_destroy(&w.cv);
    }
    free(p);
    sched_free(s);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int S = 400, U = 16, n = 8, threads = 0;
    const bench_opt opts[] = {
        {"-m", .str = &path}, {"-S", .num = &S}, {"-u", .num = &U},
        {"-n", .num = &n},    {"-t", .num = &threads},
    };
    if (bench_parse(argc, argv, opts, (int)(sizeof opts / sizeof *opts), bp_usage) != 0)
        return 2;
    if (!path || S < 1 || U < 1 || n < 2 || threads < 0) {
        fputs(bp_usage, stderr);
        return 2;
    }
    model_opts mo = {.n_batch = 512, .n_ctx = S + U + 2};
    double load_s;
    model *m = bench_open(path, NULL, NULL, 0, &mo, &load_s);
    if (!m)
        return 1;
    tp_pool *pool;
    if (bench_threads(threads, &pool) != 0) {
        model_free(m);
        return 1;
    }
    printf("%d requests of %d shared + %d own prompt tokens, 1 token each, %d threads\n", n, S, U,
           tp_threads(ops_matmul_pool()));
    double *ttft = calloc((size_t)n, sizeof *ttft), mean[2] = {0, 0};
    int rc = ttft ? 0 : 1;
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        long cached;
        int entries = pass ? 16 : 0;
        if (bp_pass(m, entries, S, U, n, ttft, &cached) != 0) {
            rc = 1;
            break;
        }
        for (int k = 1; k < n; k++)
            mean[pass] += ttft[k] / (n - 1);
        printf("prefix_cache %2d: TTFT first %7.1f ms, then mean %7.1f ms  (%ld positions "
               "from the cache)\n",
               entries, ttft[0] * 1e3, mean[pass] * 1e3, cached);
    }
    if (rc == 0)
        printf("TTFT with a shared prefix: %.1fx lower with the cache\n", mean[0] / mean[1]);
    free(ttft);
    model_free(m);
    bench_threads_end(pool);
    return rc;
}
