/* test_scheduler.c - the continuous-batching scheduler without HTTP, on
 * stories260K: greedy output equals llama.cpp's, submit errors, EOS,
 * cancellation freeing blocks, queue limit, batched == alone, and the
 * prefix cache (reused positions, llama.cpp's tokens still, eviction when
 * blocks are short). */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "scheduler.h"
#include "tu_util.h"

typedef struct got {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tokens[512];
    int n;
    sched_finish finish;
    bool done;
    int cancel_after; /* is_cancelled says yes once n reaches this (0: never) */
    int n_cached;     /* the last event's */
} got;

static sched_reply on_event(void *ud, const sched_event *ev) {
    got *g = ud;
    pthread_mutex_lock(&g->mu);
    if (ev->token >= 0) g->tokens[g->n++] = ev->token;
    g->n_cached = ev->n_cached;
    if (ev->finish != SCHED_FINISH_NONE) {
        g->finish = ev->finish;
        g->done = true;
        pthread_cond_signal(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return SCHED_CONTINUE;
}

static bool is_cancelled(void *ud) {
    got *g = ud;
    pthread_mutex_lock(&g->mu);
    bool c = g->cancel_after > 0 && g->n >= g->cancel_after;
    pthread_mutex_unlock(&g->mu);
    return c;
}

static void got_init(got *g) {
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
}

static void got_wait(got *g) {
    pthread_mutex_lock(&g->mu);
    while (!g->done) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static void got_free(got *g) {
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static const int32_t prompt[] = {1, 403, 407, 261, 378}; /* "<s> Once upon a time" */

static sched_req req_for(got *g, int max_tokens, float temperature, uint64_t seed) {
    sched_req r = {.prompt = prompt, .n_prompt = 5, .max_tokens = max_tokens, .eos_id = -1,
                   .on_event = on_event, .is_cancelled = is_cancelled, .ud = g};
    samp_params_default(&r.samp);
    r.samp.temperature = temperature;
    r.samp.seed = seed;
    return r;
}

static model *m;
static json_t *ref;

static int setup(void **st) {
    (void)st;
    char *path = tu_shared_path("models/stories260K.gguf");
    char *rpath = tu_shared_path("models/stories260K.reference.json");
    char err[512];
    if (path && rpath) {
        if (model_load(&m, path, err, sizeof err) != 0) fail_msg("%s", err);
        ref = json_load_file(rpath, 0, NULL);
    }
    free(path), free(rpath);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    model_free(m);
    json_decref(ref);
    return 0;
}

static sched *start_cached(int max_seqs, int queue, int budget, int prefix_cache) {
    sched_opts o = {.max_seqs = max_seqs, .max_batch_tokens = 64, .kv_budget = budget,
                    .kv_block_size = 8, .queue_size = queue, .n_ctx = 256,
                    .prefix_cache = prefix_cache};
    sched *s;
    char err[256];
    if (sched_create(&s, m, &o, err, sizeof err) != 0) fail_msg("%s", err);
    return s;
}

static sched *start(int max_seqs, int queue, int budget) {
    return start_cached(max_seqs, queue, budget, 0);
}

static void test_greedy_equals_llama_cpp(void **st) {
    (void)st;
    if (!m) skip();
    sched *s = start(4, 8, 0);
    got g;
    got_init(&g);
    sched_req r = req_for(&g, 32, 0, 0);
    char err[256];
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    got_wait(&g);
    json_t *want = json_object_get(json_array_get(ref, 0), "greedy_token_ids_32");
    assert_int_equal(g.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(g.n, 32);
    for (int i = 0; i < 32; i++) assert_int_equal(g.tokens[i], json_integer_value(json_array_get(want, i)));
    got_free(&g);
    sched_free(s);
}

/* An F16 KV cache (as llama.cpp keeps it by default): still llama.cpp's
 * greedy tokens. */
static void test_greedy_f16_kv(void **st) {
    (void)st;
    if (!m) skip();
    char *path = tu_shared_path("models/stories260K.gguf");
    char err[256];
    model *m16 = NULL;
    model_opts o16 = {.kv_f16 = true};
    if (model_load_opts(&m16, path, &o16, err, sizeof err) != 0) fail_msg("%s", err);
    free(path);
    sched_opts o = {.max_seqs = 2, .max_batch_tokens = 64, .kv_block_size = 8, .queue_size = 4,
                    .n_ctx = 256};
    sched *s;
    if (sched_create(&s, m16, &o, err, sizeof err) != 0) fail_msg("%s", err);
    got g;
    got_init(&g);
    sched_req r = req_for(&g, 32, 0, 0);
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    got_wait(&g);
    json_t *want = json_object_get(json_array_get(ref, 0), "greedy_token_ids_32");
    assert_int_equal(g.n, 32);
    for (int i = 0; i < 32; i++) assert_int_equal(g.tokens[i], json_integer_value(json_array_get(want, i)));
    got_free(&g);
    sched_free(s);
    model_free(m16);
}

static void test_submit_errors(void **st) {
    (void)st;
    if (!m) skip();
    sched *s = start(2, 4, 0);
    got g;
    got_init(&g);
    char err[256];
    sched_req r = req_for(&g, 300, 0, 0);
    assert_int_equal(sched_submit(s, &r, err, sizeof err), -E2BIG);
    assert_non_null(strstr(err, "context"));
    r = req_for(&g, 4, 0, 0);
    r.n_prompt = 0;
    assert_int_equal(sched_submit(s, &r, err, sizeof err), -EINVAL);
    int32_t bad[] = {1, 99999};
    r = req_for(&g, 4, 0, 0);
    r.prompt = bad;
    r.n_prompt = 2;
    assert_int_equal(sched_submit(s, &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "99999"));
    r = req_for(&g, 4, 5.0f, 0); /* the sampler's own validation */
    assert_int_equal(sched_submit(s, &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "temperature"));
    got_free(&g);
    sched_free(s);
}

static void test_eos_and_cancel(void **st) {
    (void)st;
    if (!m) skip();
    sched *s = start(2, 4, 0);
    char err[256];
    got a, c;
    got_init(&a);
    got_init(&c);
    sched_req r = req_for(&a, 32, 0, 0);
    r.eos_id = 261; /* " a": the 4th greedy token, so generation stops after 3 */
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    c.cancel_after = 3;
    r = req_for(&c, 200, 1.0f, 9);
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    got_wait(&a);
    got_wait(&c);
    assert_int_equal(a.finish, SCHED_FINISH_STOP);
    assert_int_equal(a.n, 3);
    assert_int_equal(c.finish, SCHED_FINISH_CANCELLED);
    assert_in_range(c.n, 3, 5); /* noticed at the next step boundary */
    sched_stats stt;
    for (int i = 0; i < 100; i++) { /* stats are published after the step */
        sched_stats_get(s, &stt);
        if (stt.kv_blocks_used == 0 && stt.running == 0) break;
        usleep(1000);
    }
    assert_int_equal(stt.kv_blocks_used, 0);
    assert_int_equal(stt.requests_finished[SCHED_FINISH_CANCELLED], 1);
    assert_int_equal(stt.requests_finished[SCHED_FINISH_STOP], 1);
    got_free(&a);
    got_free(&c);
    sched_free(s);
}

static void test_batched_equals_alone_and_queue(void **st) {
    (void)st;
    if (!m) skip();
    char err[256];
    enum { N = 6 };
    got alone[N], together[N];
    sched *s = start(N, 16, 0);
    for (int i = 0; i < N; i++) { /* one at a time */
        got_init(&alone[i]);
        sched_req r = req_for(&alone[i], 20 + 7 * i, 0.9f, 100 + (uint64_t)i);
        assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
        got_wait(&alone[i]);
    }
    for (int i = 0; i < N; i++) { /* all at once */
        got_init(&together[i]);
        sched_req r = req_for(&together[i], 20 + 7 * i, 0.9f, 100 + (uint64_t)i);
        assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    }
    for (int i = 0; i < N; i++) {
        got_wait(&together[i]);
        assert_int_equal(together[i].n, alone[i].n);
        assert_memory_equal(together[i].tokens, alone[i].tokens, (size_t)alone[i].n * sizeof(int32_t));
        got_free(&alone[i]);
        got_free(&together[i]);
    }
    sched_free(s);
    /* one slot, a queue of one: a burst cannot all be queued */
    s = start(1, 1, 0);
    got b[4];
    int again = 0;
    for (int i = 0; i < 4; i++) {
        got_init(&b[i]);
        sched_req r = req_for(&b[i], 200, 1.0f, (uint64_t)i);
        int rc = sched_submit(s, &r, err, sizeof err);
        if (rc == -EAGAIN) again++, b[i].done = true;
        else assert_int_equal(rc, 0);
    }
    assert_true(again >= 2);
    for (int i = 0; i < 4; i++) got_wait(&b[i]), got_free(&b[i]);
    sched_free(s);
}

/* Greedy from "<s> Once upon a time" + the first k reference tokens, n
 * more: the reference's tokens k..k+n (llama.cpp's greedy continuation of
 * its own output), whatever the prefix cache supplied. */
static void run_greedy_from(sched *s, int k, int n, int want_cached) {
    json_t *want = json_object_get(json_array_get(ref, 0), "greedy_token_ids_32");
    int32_t p[64];
    memcpy(p, prompt, sizeof prompt);
    for (int i = 0; i < k; i++) p[5 + i] = (int32_t)json_integer_value(json_array_get(want, i));
    got g;
    got_init(&g);
    sched_req r = req_for(&g, n, 0, 0);
    r.prompt = p;
    r.n_prompt = 5 + k;
    char err[256];
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    got_wait(&g);
    assert_int_equal(g.n, n);
    for (int i = 0; i < n; i++)
        if (g.tokens[i] != json_integer_value(json_array_get(want, k + i)))
            fail_msg("prefix %d, token %d: %d, llama.cpp %d (cached %d)", k, i, g.tokens[i],
                     (int)json_integer_value(json_array_get(want, k + i)), g.n_cached);
    assert_int_equal(g.n_cached, want_cached);
    got_free(&g);
}

static void test_prefix_cache(void **st) {
    (void)st;
    if (!m) skip();
    sched *s = start_cached(2, 8, 0, 4); /* blocks of 8 positions */
    run_greedy_from(s, 20, 12, 0);  /* 25 + 11 computed: 32 positions kept */
    run_greedy_from(s, 20, 12, 24); /* its prompt's 24 first positions (the 25th is computed) */
    run_greedy_from(s, 28, 4, 32);  /* prompt 33 = the kept 32 + 1 */
    run_greedy_from(s, 2, 8, 0);    /* 7 tokens: less than a block to share */
    sched_stats stats;
    sched_stats_get(s, &stats);
    assert_int_equal(stats.prefix_hits, 2);
    assert_int_equal(stats.prefix_tokens, 56);
    assert_true(stats.prefix_entries >= 1 && stats.prefix_entries <= 4);
    sched_free(s);

    /* a pool of 8 blocks: what is kept must make way for a prompt that
     * needs the blocks, and nothing then waits */
    s = start_cached(1, 8, 64, 4);
    run_greedy_from(s, 20, 12, 0); /* keeps 4 of the 8 blocks */
    got g;
    got_init(&g);
    int32_t other[48];
    for (int i = 0; i < 48; i++) other[i] = 300 + i;
    sched_req r = req_for(&g, 8, 0, 0);
    r.prompt = other;
    r.n_prompt = 48; /* 48 + 8 positions: 7 blocks */
    char err[256];
    assert_int_equal(sched_submit(s, &r, err, sizeof err), 0);
    got_wait(&g);
    assert_int_equal(g.finish, SCHED_FINISH_LENGTH);
    assert_int_equal(g.n, 8);
    assert_int_equal(g.n_cached, 0);
    got_free(&g);
    sched_stats_get(s, &stats);
    assert_int_equal(stats.preemptions, 0);
    sched_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greedy_equals_llama_cpp), cmocka_unit_test(test_submit_errors),
        cmocka_unit_test(test_eos_and_cancel), cmocka_unit_test(test_batched_equals_alone_and_queue),
        cmocka_unit_test(test_prefix_cache), cmocka_unit_test(test_greedy_f16_kv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
