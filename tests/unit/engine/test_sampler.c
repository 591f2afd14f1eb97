/* test_sampler.c - the token sampler (engine/sampler.c) and its generator
 * (engine/rng.c): exact numeric effects of bias and penalties, exact
 * truncation sets of top_k / top_p / min_p against a naive reference,
 * empirical frequencies against the renormalised probabilities, seeds,
 * logprobs, validation messages, and a 150k-vocabulary run. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "sampler.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static samp *mk(const samp_params *p, int vocab) {
    char err[256];
    if (samp_validate(p, vocab, err, sizeof err)) fail_msg("validate: %s", err);
    samp *s = samp_create(p, vocab);
    assert_non_null(s);
    return s;
}

/* One sample from a copy of logits (samp_sample scribbles on its input). */
static int32_t draw1(samp *s, const float *logits, int V, float *scratch) {
    memcpy(scratch, logits, (size_t)V * sizeof *scratch);
    int32_t t = -1;
    assert_int_equal(samp_sample(s, scratch, &t), 0);
    assert_true(t >= 0 && t < V);
    return t;
}

/* Draws n tokens into counts[V]. */
static void draw_many(samp *s, const float *logits, int V, int n, long *counts) {
    float *scratch = malloc((size_t)V * sizeof *scratch);
    assert_non_null(scratch);
    memset(counts, 0, (size_t)V * sizeof *counts);
    for (int i = 0; i < n; i++) counts[draw1(s, logits, V, scratch)]++;
    free(scratch);
}

/* Every count within 5 standard errors of n * probs[i] (binomial); a token
 * of probability 0 is never drawn. */
static void check_freq(const long *counts, const double *probs, int V, int n) {
    for (int i = 0; i < V; i++) {
        if (probs[i] == 0.0) {
            if (counts[i] != 0) fail_msg("token %d drawn %ld times but is outside the set", i, counts[i]);
            continue;
        }
        double mean = n * probs[i];
        double sd = sqrt(n * probs[i] * (1.0 - probs[i]));
        if (fabs((double)counts[i] - mean) > 5.0 * sd + 1.0)
            fail_msg("token %d: %ld draws, expected %.1f +- %.1f", i, counts[i], mean, sd);
    }
}

/* probs[i] = softmax(logits / T) restricted to keep[i]. */
static void renorm(const float *logits, const bool *keep, int V, double T, double *probs) {
    double mx = -INFINITY, z = 0.0;
    for (int i = 0; i < V; i++) if (keep[i] && logits[i] > mx) mx = logits[i];
    for (int i = 0; i < V; i++) z += keep[i] ? exp((logits[i] - mx) / T) : 0.0;
    for (int i = 0; i < V; i++) probs[i] = keep[i] ? exp((logits[i] - mx) / T) / z : 0.0;
}

static samp_params defaults(void) {
    samp_params p;
    samp_params_default(&p);
    return p;
}

/* Processed logit differences as seen through greedy logprobs (T = 1):
 * lp[i] = logprob of token i, all V <= SAMP_TOP_LOGPROBS_MAX tokens. */
static void greedy_logprobs(samp *s, const float *logits, int V, float *lp, int32_t *tok) {
    float buf[SAMP_TOP_LOGPROBS_MAX];
    samp_output o;
    assert_true(V <= SAMP_TOP_LOGPROBS_MAX);
    memcpy(buf, logits, (size_t)V * sizeof *buf);
    assert_int_equal(samp_sample_ex(s, buf, V, &o), 0);
    for (int i = 0; i < V; i++) lp[i] = -INFINITY;
    for (int j = 0; j < o.n_top; j++) lp[o.top[j].token] = o.top[j].logprob;
    *tok = o.token;
}

/* ------------------------------------------------------------------------ */
/* rng                                                                      */
/* ------------------------------------------------------------------------ */

static void test_rng_vectors(void **state) {
    (void)state;
    uint64_t sm = 0;
    /* splitmix64's published first output for state 0. */
    assert_true(rng_splitmix64(&sm) == 0xe220a8397b1dcdafull);
    /* xoshiro256** outputs computed by an independent Python transcription. */
    rng r;
    rng_seed(&r, 0);
    assert_true(rng_next_u64(&r) == 0x99ec5f36cb75f2b4ull);
    assert_true(rng_next_u64(&r) == 0xbf6e1f784956452aull);
    assert_true(rng_next_u64(&r) == 0x1a5f849d4933e6e0ull);
    rng_seed(&r, 42);
    assert_true(rng_next_u64(&r) == 0x15780b2e0c2ec716ull);
    assert_true(rng_next_u64(&r) == 0x6104d9866d113a7eull);
    assert_true(rng_next_u64(&r) == 0xae17533239e499a1ull);
}

static void test_rng_ranges(void **state) {
    (void)state;
    rng r;
    rng_seed(&r, 7);
    double sum = 0, sum2 = 0, nsum = 0, nsum2 = 0;
    long below[10] = {0};
    const int n = 100000;
    for (int i = 0; i < n; i++) {
        double u = rng_uniform(&r);
        assert_true(u >= 0.0 && u < 1.0);
        sum += u;
        sum2 += u * u;
        uint64_t b = rng_below(&r, 10);
        assert_true(b < 10);
        below[b]++;
        double g = rng_normal(&r);
        assert_true(isfinite(g));
        nsum += g;
        nsum2 += g * g;
    }
    assert_true(fabs(sum / n - 0.5) < 0.005);
    assert_true(fabs(sum2 / n - 1.0 / 3.0) < 0.005);
    assert_true(fabs(nsum / n) < 0.02);
    assert_true(fabs(nsum2 / n - 1.0) < 0.03);
    double probs[10];
    for (int i = 0; i < 10; i++) probs[i] = 0.1;
    check_freq(below, probs, 10, n);
    assert_int_equal(rng_below(&r, 0), 0);
    assert_int_equal(rng_below(&r, 1), 0);
}

/* ------------------------------------------------------------------------ */
/* Greedy, logit_bias                                                       */
/* ------------------------------------------------------------------------ */

static void test_greedy_argmax_and_ties(void **state) {
    (void)state;
    samp_params p = defaults();
    p.temperature = 0.0f;
    p.top_k = 1;     /* irrelevant when greedy */
    p.top_p = 0.1f;
    samp *s = mk(&p, 6);
    float a[6] = {0.5f, 2.0f, -1.0f, 3.5f, 3.4f, 0.0f};
    float buf[6];
    for (int i = 0; i < 3; i++) assert_int_equal(draw1(s, a, 6, buf), 3);
    float ties[6] = {1.0f, 4.0f, 2.0f, 4.0f, 4.0f, -9.0f};
    assert_int_equal(draw1(s, ties, 6, buf), 1);
    float all_eq[6] = {0, 0, 0, 0, 0, 0};
    assert_int_equal(draw1(s, all_eq, 6, buf), 0);
    /* NaN and +inf from the model are treated as banned. */
    float bad[6] = {1.0f, NAN, INFINITY, 0.5f, -INFINITY, 2.0f};
    assert_int_equal(draw1(s, bad, 6, buf), 5);
    samp_free(s);
    /* ... also when sampling. */
    p = defaults();
    p.seed = 8;
    s = mk(&p, 6);
    long counts[6];
    draw_many(s, bad, 6, 20000, counts);
    assert_true(counts[1] == 0 && counts[2] == 0 && counts[4] == 0);
    assert_true(counts[0] > 0 && counts[3] > 0 && counts[5] > 0);
    samp_free(s);
}

static void test_logit_bias(void **state) {
    (void)state;
    float a[5] = {1.0f, 5.0f, 2.0f, 4.9f, 0.0f};
    float buf[5];
    samp_logit_bias lb[3] = {{1, -100.0f}, {4, 3.0f}, {3, 0.2f}};
    samp_params p = defaults();
    p.temperature = 0.0f;
    p.logit_bias = lb;
    p.n_logit_bias = 3;
    samp *s = mk(&p, 5);
    /* 1 banned; 3 gets 5.1 > 4 gets 3.0. */
    assert_int_equal(draw1(s, a, 5, buf), 3);
    /* Exact additive effect, seen through the logprobs. */
    float lp[5];
    int32_t tok;
    greedy_logprobs(s, a, 5, lp, &tok);
    assert_int_equal(tok, 3);
    assert_true(lp[1] == -INFINITY);
    assert_float_equal(lp[3] - lp[0], (4.9f + 0.2f) - 1.0f, 1e-5);
    assert_float_equal(lp[4] - lp[0], 3.0f - 1.0f, 1e-5);
    assert_float_equal(lp[2] - lp[0], 1.0f, 1e-5);
    samp_free(s);

    /* +100 forces even under sampling at temperature 2; -100 is never drawn. */
    samp_logit_bias force[2] = {{0, 100.0f}, {2, -100.0f}};
    p = defaults();
    p.temperature = 2.0f;
    p.logit_bias = force;
    p.n_logit_bias = 2;
    p.seed = 3;
    s = mk(&p, 5);
    long counts[5];
    draw_many(s, a, 5, 20000, counts);
    assert_int_equal(counts[0], 20000);
    samp_free(s);

    samp_logit_bias ban[2] = {{1, -100.0f}, {3, -100.0f}};
    p.logit_bias = ban;
    s = mk(&p, 5);
    draw_many(s, a, 5, 50000, counts);
    assert_int_equal(counts[1], 0);
    assert_int_equal(counts[3], 0);
    bool keep[5] = {true, false, true, false, true};
    double probs[5];
    renorm(a, keep, 5, 2.0, probs);
    check_freq(counts, probs, 5, 50000);
    samp_free(s);

    /* Everything banned: -EDOM, greedy or not. */
    samp_logit_bias all[2] = {{0, -100.0f}, {1, -100.0f}};
    float two[2] = {1.0f, 2.0f};
    for (int g = 0; g < 2; g++) {
        p = defaults();
        p.temperature = g ? 0.0f : 1.0f;
        p.logit_bias = all;
        p.n_logit_bias = 2;
        s = mk(&p, 2);
        int32_t t = 77;
        float b2[2] = {two[0], two[1]};
        assert_int_equal(samp_sample(s, b2, &t), -EDOM);
        samp_free(s);
    }
}

/* ------------------------------------------------------------------------ */
/* Penalties                                                                */
/* ------------------------------------------------------------------------ */

static void test_repetition_penalty(void **state) {
    (void)state;
    samp_params p = defaults();
    p.temperature = 0.0f;
    p.repetition_penalty = 2.0f;
    samp *s = mk(&p, 5);
    float a[5] = {4.0f, -2.0f, 3.0f, 0.0f, 1.0f};
    float lp[5];
    int32_t tok;
    assert_int_equal(samp_accept(s, 0), 0);
    assert_int_equal(samp_accept(s, 1), 0);
    assert_int_equal(samp_accept(s, 0), 0); /* counted once: a set, not a count */
    assert_int_equal(samp_accept(s, 3), 0);
    greedy_logprobs(s, a, 5, lp, &tok);
    /* expected processed logits: 4/2=2, -2*2=-4, 3, 0*2=0, 1 */
    assert_int_equal(tok, 2);
    assert_float_equal(lp[0] - lp[4], 2.0f - 1.0f, 1e-5);
    assert_float_equal(lp[1] - lp[4], -4.0f - 1.0f, 1e-5);
    assert_float_equal(lp[2] - lp[4], 3.0f - 1.0f, 1e-5);
    assert_float_equal(lp[3] - lp[4], 0.0f - 1.0f, 1e-5);
    samp_free(s);

    /* A penalty below 1 encourages: 4 / 0.5 = 8. */
    p.repetition_penalty = 0.5f;
    s = mk(&p, 5);
    assert_int_equal(samp_accept(s, 1), 0);
    greedy_logprobs(s, a, 5, lp, &tok);
    assert_int_equal(tok, 0);
    assert_float_equal(lp[1] - lp[4], -1.0f - 1.0f, 1e-5);
    samp_free(s);
}

static void test_presence_frequency(void **state) {
    (void)state;
    samp_params p = defaults();
    p.temperature = 0.0f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    samp *s = mk(&p, 4);
    float a[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    int32_t hist[6] = {0, 0, 0, 1, 2, 2};
    for (int i = 0; i < 6; i++) assert_int_equal(samp_accept(s, hist[i]), 0);
    assert_int_equal(samp_window_len(s), 6);
    float lp[4];
    int32_t tok;
    greedy_logprobs(s, a, 4, lp, &tok);
    /* logit -= presence*(c>0) + frequency*c: c = 3, 1, 2, 0 */
    assert_int_equal(tok, 3);
    assert_float_equal(lp[0] - lp[3], -(0.5f + 0.75f), 1e-5);
    assert_float_equal(lp[1] - lp[3], -(0.5f + 0.25f), 1e-5);
    assert_float_equal(lp[2] - lp[3], -(0.5f + 0.5f), 1e-5);
    samp_free(s);

    /* Negative penalties raise; all three combine, repetition first. */
    p.presence_penalty = -1.0f;
    p.frequency_penalty = 0.0f;
    p.repetition_penalty = 2.0f;
    s = mk(&p, 4);
    float b[4] = {4.0f, -1.0f, 0.0f, 2.5f};
    assert_int_equal(samp_accept(s, 0), 0);
    assert_int_equal(samp_accept(s, 1), 0);
    greedy_logprobs(s, b, 4, lp, &tok);
    /* 4/2+1 = 3, -1*2+1 = -1, 0, 2.5 */
    assert_int_equal(tok, 0);
    assert_float_equal(lp[0] - lp[2], 3.0f, 1e-5);
    assert_float_equal(lp[1] - lp[2], -1.0f, 1e-5);
    assert_float_equal(lp[3] - lp[2], 2.5f, 1e-5);
    samp_free(s);
}

static void test_penalty_window(void **state) {
    (void)state;
    float a[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    float lp[4];
    int32_t tok;
    samp_params p = defaults();
    p.temperature = 0.0f;
    p.frequency_penalty = 1.0f;

    /* Window of 3: after 0 1 2 2 0 the window is 2 2 0. */
    p.repeat_last_n = 3;
    samp *s = mk(&p, 4);
    int32_t h[5] = {0, 1, 2, 2, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(samp_accept(s, h[i]), 0);
    assert_int_equal(samp_window_len(s), 3);
    greedy_logprobs(s, a, 4, lp, &tok);
    assert_int_equal(tok, 1); /* 1 left the window: ties with 3, lower id */
    assert_float_equal(lp[0] - lp[1], -1.0f, 1e-5);
    assert_float_equal(lp[2] - lp[1], -2.0f, 1e-5);
    assert_float_equal(lp[3] - lp[1], 0.0f, 1e-5);
    /* A long run through the ring stays consistent. */
    for (int i = 0; i < 1000; i++) assert_int_equal(samp_accept(s, (i * 7) % 4), 0);
    greedy_logprobs(s, a, 4, lp, &tok); /* window: 997%4..999 -> 7*997%4=3, 7*998%4=2, 7*999%4=1 */
    assert_float_equal(lp[0] - lp[1], 1.0f, 1e-5);
    assert_float_equal(lp[2] - lp[1], 0.0f, 1e-5);
    assert_float_equal(lp[3] - lp[1], 0.0f, 1e-5);
    /* samp_reset forgets the history. */
    samp_reset(s);
    assert_int_equal(samp_window_len(s), 0);
    greedy_logprobs(s, a, 4, lp, &tok);
    assert_float_equal(lp[3] - lp[0], 0.0f, 1e-6);
    samp_free(s);

    /* -1: everything counts. */
    p.repeat_last_n = -1;
    s = mk(&p, 4);
    for (int i = 0; i < 500; i++) assert_int_equal(samp_accept(s, i < 300 ? 0 : 1 + i % 3), 0);
    assert_int_equal(samp_window_len(s), 500);
    greedy_logprobs(s, a, 4, lp, &tok);
    /* 0 seen 300 times; 3 = 1 + i % 3 for i = 302, 305, ..., 497: 66 times */
    assert_float_equal(lp[0] - lp[3], -(300.0f - 66.0f), 1e-3);
    samp_free(s);

    /* 0: penalties off. */
    p.repeat_last_n = 0;
    s = mk(&p, 4);
    assert_int_equal(samp_accept(s, 0), 0);
    greedy_logprobs(s, a, 4, lp, &tok);
    assert_int_equal(tok, 0);
    assert_int_equal(samp_accept(s, 4), -EINVAL);
    assert_int_equal(samp_accept(s, -1), -EINVAL);
    samp_free(s);
}

/* ------------------------------------------------------------------------ */
/* Truncation: exact sets and frequencies                                   */
/* ------------------------------------------------------------------------ */

/* Runs draws at the given settings and checks the frequencies against
 * softmax(logits / T) over keep[]. */
static void freq_case(const float *logits, int V, samp_params p, const bool *keep, int n) {
    samp *s = mk(&p, V);
    long *counts = calloc((size_t)V, sizeof *counts);
    double *probs = calloc((size_t)V, sizeof *probs);
    assert_non_null(counts);
    assert_non_null(probs);
    draw_many(s, logits, V, n, counts);
    renorm(logits, keep, V, p.temperature, probs);
    check_freq(counts, probs, V, n);
    free(counts);
    free(probs);
    samp_free(s);
}

static void test_top_k_freq(void **state) {
    (void)state;
    float a[8] = {0.1f, 1.0f, -0.5f, 0.9f, 0.95f, 0.2f, 1.0f, -3.0f};
    samp_params p = defaults();
    p.top_k = 3;
    p.seed = 11;
    /* ranked: 1 (1.0), 6 (1.0), 4 (0.95), 3 (0.9) ... */
    bool keep[8] = {false, true, false, false, true, false, true, false};
    freq_case(a, 8, p, keep, 200000);
    /* Tie at the boundary: top_k = 1 keeps the lower id of the two 1.0s. */
    p.top_k = 1;
    bool keep1[8] = {false, true};
    freq_case(a, 8, p, keep1, 2000);
    /* top_k >= vocab is off. */
    p.top_k = 100;
    bool all[8];
    for (int i = 0; i < 8; i++) all[i] = true;
    freq_case(a, 8, p, all, 200000);
}

static void test_top_p_freq(void **state) {
    (void)state;
    /* probabilities 0.4 0.3 0.2 0.1 (logits = log p), shuffled ids */
    float a[5] = {logf(0.2f), logf(0.4f), -INFINITY, logf(0.1f), logf(0.3f)};
    samp_params p = defaults();
    p.seed = 5;
    p.top_p = 0.65f; /* 0.4 < 0.65 <= 0.7: {1, 4} */
    bool k1[5] = {false, true, false, false, true};
    freq_case(a, 5, p, k1, 200000);
    p.top_p = 0.75f; /* 0.7 < 0.75 <= 0.9: {1, 4, 0} */
    bool k2[5] = {true, true, false, false, true};
    freq_case(a, 5, p, k2, 200000);
    p.top_p = 0.3f; /* the first token alone reaches it */
    bool k3[5] = {false, true};
    freq_case(a, 5, p, k3, 5000);
    /* After top_k = 3 the probabilities are renormalised to .444 .333 .222,
     * so 0.75 now stops after two tokens: {1, 4}. */
    p.top_p = 0.75f;
    p.top_k = 3;
    freq_case(a, 5, p, k1, 200000);
    /* Temperature applies after truncation: the kept pair at T = 0.5. */
    p.temperature = 0.5f;
    freq_case(a, 5, p, k1, 200000);
}

static void test_min_p_freq(void **state) {
    (void)state;
    float a[5] = {logf(0.15f), logf(0.5f), logf(0.1f), logf(0.25f), -INFINITY};
    samp_params p = defaults();
    p.seed = 9;
    p.min_p = 0.25f; /* keep p >= 0.125: {1, 3, 0} */
    bool k[5] = {true, true, false, true, false};
    freq_case(a, 5, p, k, 200000);
    p.temperature = 1.7f; /* threshold on the untempered distribution */
    freq_case(a, 5, p, k, 200000);
    p.top_k = 2; /* min_p after top_k: {1, 3} */
    bool k2[5] = {false, true, false, true, false};
    freq_case(a, 5, p, k2, 200000);
    p.top_k = 0;
    p.top_p = 0.9f; /* top_p would keep {1,3,0}; min_p = 0.4 keeps {1, 3} */
    p.min_p = 0.4f;
    freq_case(a, 5, p, k2, 200000);
    p.min_p = 1.0f; /* only the maximum */
    bool k3[5] = {false, true};
    freq_case(a, 5, p, k3, 3000);
}

static void test_temperature_freq(void **state) {
    (void)state;
    float a[4] = {0.0f, -1.0f, 0.5f, -2.0f};
    bool all[4] = {true, true, true, true};
    const float temps[3] = {0.25f, 1.0f, 2.0f};
    for (int i = 0; i < 3; i++) {
        samp_params p = defaults();
        p.temperature = temps[i];
        p.seed = 100 + (uint64_t)i;
        freq_case(a, 4, p, all, 200000);
    }
}

/* The naive reference of the chain's truncation: full sort, then top_k,
 * top_p (renormalised), min_p. keep[V] out. */
typedef struct { float l; int32_t id; } pair;
static int pair_cmp(const void *x, const void *y) {
    const pair *a = x, *b = y;
    if (a->l != b->l) return a->l > b->l ? -1 : 1;
    return (a->id > b->id) - (a->id < b->id);
}
static int naive_keep(const float *l, int V, const samp_params *p, bool *keep) {
    pair *ps = malloc((size_t)V * sizeof *ps);
    assert_non_null(ps);
    for (int i = 0; i < V; i++) ps[i] = (pair){l[i], i};
    qsort(ps, (size_t)V, sizeof *ps, pair_cmp);
    int n = V;
    if (p->top_k > 0 && p->top_k < n) n = p->top_k;
    if (p->top_p < 1.0f) {
        double z = 0, cum = 0;
        for (int j = 0; j < n; j++) z += exp((double)ps[j].l - ps[0].l);
        for (int j = 0; j < n; j++) {
            cum += exp((double)ps[j].l - ps[0].l) / z;
            if (cum >= p->top_p) { n = j + 1; break; }
        }
    }
    if (p->min_p > 0.0f) {
        float thr = ps[0].l + logf(p->min_p);
        int m = 1;
        while (m < n && ps[m].l >= thr) m++;
        n = m;
    }
    memset(keep, 0, (size_t)V * sizeof *keep);
    for (int j = 0; j < n; j++) keep[ps[j].id] = true;
    free(ps);
    return n;
}

/* Random flat-ish logits over 2000 tokens: every kept token is drawn in
 * 30k draws at temperature 2, so the drawn set must equal the naive set. */
static void test_truncation_sets_vs_naive(void **state) {
    (void)state;
    const int V = 2000, N = 30000;
    float *l = malloc((size_t)V * sizeof *l);
    bool *keep = malloc((size_t)V * sizeof *keep);
    long *counts = malloc((size_t)V * sizeof *counts);
    assert_non_null(l);
    assert_non_null(keep);
    assert_non_null(counts);
    rng r;
    rng_seed(&r, 1234);
    for (int i = 0; i < V; i++) l[i] = (float)(rng_uniform(&r) * 0.6);
    for (int i = 0; i < V; i += 97) l[i] = l[(i + 13) % V]; /* some exact ties */
    /* A second, peaked shape: 80 tokens near 10, the rest far below (the
     * top_p path then only heaps the tokens near the maximum). */
    float *peak = malloc((size_t)V * sizeof *peak);
    assert_non_null(peak);
    for (int i = 0; i < V; i++)
        peak[i] = i % 25 == 3 ? 10.0f + l[i] : -20.0f + 15.0f * l[i];
    struct { int k; float tp, mp; } cases[] = {
        {40, 1.0f, 0.0f}, {0, 0.02f, 0.0f}, {0, 1.0f, 0.97f}, {60, 0.5f, 0.0f},
        {60, 1.0f, 0.95f}, {0, 0.03f, 0.96f}, {100, 0.4f, 0.93f}, {1, 1.0f, 0.0f},
    };
    const size_t n_cases = sizeof cases / sizeof cases[0];
    for (size_t c = 0; c < 2 * n_cases; c++) {
        const float *logits = c < n_cases ? l : peak;
        samp_params p = defaults();
        p.temperature = 2.0f;
        p.top_k = cases[c % n_cases].k;
        p.top_p = cases[c % n_cases].tp;
        p.min_p = cases[c % n_cases].mp;
        if (c >= n_cases && p.top_p < 1.0f) p.top_p = fminf(p.top_p * 20.0f, 0.9f); /* comparable set sizes */
        if (c >= n_cases && p.min_p > 0.0f) p.min_p = 0.6f;
        p.seed = c;
        int n = naive_keep(logits, V, &p, keep);
        if (n < 1 || n > 120) fail_msg("case %zu: naive set size %d", c, n);
        samp *s = mk(&p, V);
        draw_many(s, logits, V, N, counts);
        for (int i = 0; i < V; i++)
            if ((counts[i] > 0) != keep[i])
                fail_msg("case %zu: token %d drawn %ld times, in naive set: %d (set size %d)",
                         c, i, counts[i], keep[i], n);
        samp_free(s);
    }
    free(peak);
    free(l);
    free(keep);
    free(counts);
}

/* ------------------------------------------------------------------------ */
/* Seeds                                                                    */
/* ------------------------------------------------------------------------ */

static void test_seeds(void **state) {
    (void)state;
    const int V = 64, N = 500;
    float l[64], buf[64];
    for (int i = 0; i < V; i++) l[i] = (float)sin(i * 0.7) * 2.0f;
    samp_params p = defaults();
    p.top_k = 20;
    p.top_p = 0.95f;
    p.repetition_penalty = 1.1f;
    p.seed = 424242;
    int32_t a[500], b[500], c[500];

    samp *s1 = mk(&p, V);
    for (int i = 0; i < N; i++) {
        a[i] = draw1(s1, l, V, buf);
        assert_int_equal(samp_accept(s1, a[i]), 0);
    }
    /* Same seed, interleaved with another sequence as in a batch. */
    samp *s2 = mk(&p, V);
    samp_params q = p;
    q.seed = 424243;
    samp *s3 = mk(&q, V);
    for (int i = 0; i < N; i++) {
        c[i] = draw1(s3, l, V, buf);
        assert_int_equal(samp_accept(s3, c[i]), 0);
        b[i] = draw1(s2, l, V, buf);
        assert_int_equal(samp_accept(s2, b[i]), 0);
    }
    assert_memory_equal(a, b, sizeof a);
    int same = 0;
    for (int i = 0; i < N; i++) same += a[i] == c[i];
    assert_true(same < N / 2);
    /* samp_reset replays from the original seed. */
    samp_reset(s1);
    for (int i = 0; i < N; i++) {
        b[i] = draw1(s1, l, V, buf);
        assert_int_equal(samp_accept(s1, b[i]), 0);
    }
    assert_memory_equal(a, b, sizeof a);
    samp_free(s1);
    samp_free(s2);
    samp_free(s3);
}

/* The whole-vocabulary draw with logprobs asked for (the weights computed
 * once, in the logprobs pass) picks exactly the tokens of the draw
 * without, seed for seed; min_p's threshold and banned tokens included. */
static void test_draw_same_with_logprobs(void **state) {
    (void)state;
    const int V = 300, N = 400;
    float l[300], buf[300];
    for (int i = 0; i < V; i++) l[i] = (float)sin(i * 1.3) * 3.0f;
    l[7] = -INFINITY;
    for (int pass = 0; pass < 2; pass++) {
        samp_params p = defaults();
        p.temperature = 0.7f;
        p.min_p = pass ? 0.05f : 0.0f;
        p.seed = 99 + (uint64_t)pass;
        samp *plain = mk(&p, V), *with_lp = mk(&p, V);
        for (int i = 0; i < N; i++) {
            int32_t a = draw1(plain, l, V, buf);
            memcpy(buf, l, sizeof l);
            samp_output o;
            assert_int_equal(samp_sample_ex(with_lp, buf, 3, &o), 0);
            assert_int_equal(a, o.token);
            assert_int_not_equal(a, 7);
        }
        samp_free(plain);
        samp_free(with_lp);
    }
}

/* ------------------------------------------------------------------------ */
/* Logprobs                                                                 */
/* ------------------------------------------------------------------------ */

static void test_logprobs(void **state) {
    (void)state;
    float a[6] = {1.0f, 3.0f, 2.0f, 3.0f, -1.0f, 0.0f};
    float buf[6];
    samp_logit_bias lb[1] = {{5, -100.0f}};
    samp_params p = defaults();
    p.temperature = 0.5f;
    p.top_k = 1; /* truncation does not change the reported logprobs */
    p.logit_bias = lb;
    p.n_logit_bias = 1;
    samp *s = mk(&p, 6);
    samp_output o;
    memcpy(buf, a, sizeof a);
    assert_int_equal(samp_sample_ex(s, buf, 4, &o), 0);
    assert_int_equal(o.token, 1);
    double z = 0;
    for (int i = 0; i < 5; i++) z += exp(a[i] / 0.5);
    double lz = log(z);
    assert_float_equal(o.logprob, a[1] / 0.5 - lz, 1e-5);
    assert_int_equal(o.n_top, 4);
    int order[4] = {1, 3, 2, 0};
    for (int j = 0; j < 4; j++) {
        assert_int_equal(o.top[j].token, order[j]);
        assert_float_equal(o.top[j].logprob, a[order[j]] / 0.5 - lz, 1e-5);
    }
    /* Clamps: n_top 100 -> at most the finite tokens (5), <= max. */
    memcpy(buf, a, sizeof a);
    assert_int_equal(samp_sample_ex(s, buf, 100, &o), 0);
    assert_int_equal(o.n_top, 5);
    memcpy(buf, a, sizeof a);
    assert_int_equal(samp_sample_ex(s, buf, -3, &o), 0);
    assert_int_equal(o.n_top, 0);
    assert_int_equal(samp_sample_ex(s, buf, 1, NULL), -EINVAL);
    samp_free(s);
}

/* ------------------------------------------------------------------------ */
/* Validation                                                               */
/* ------------------------------------------------------------------------ */

static void test_validation(void **state) {
    (void)state;
    samp_logit_bias out_of_range[1] = {{99999, 1.0f}};
    samp_logit_bias negative[1] = {{-1, 1.0f}};
    samp_logit_bias too_big[1] = {{5, 150.0f}};
    samp_logit_bias dup[3] = {{5, 1.0f}, {7, 1.0f}, {5, -2.0f}};
    struct {
        const char *field;
        float temperature, top_p, min_p, rep, pres, freq;
        int top_k, last_n, n_bias;
        const samp_logit_bias *bias;
        const char *want;
    } rows[] = {
        {"temperature", -0.1f, 1, 0, 1, 0, 0, 0, 64, 0, NULL, "temperature must be in [0, 2]"},
        {"temperature", 2.5f, 1, 0, 1, 0, 0, 0, 64, 0, NULL, "temperature must be in [0, 2], got 2.5"},
        {"temperature", NAN, 1, 0, 1, 0, 0, 0, 64, 0, NULL, "temperature must be in [0, 2]"},
        {"top_k", 1, 1, 0, 1, 0, 0, -1, 64, 0, NULL, "top_k must be >= 0"},
        {"top_p", 1, 0, 0, 1, 0, 0, 0, 64, 0, NULL, "top_p must be in (0, 1], got 0"},
        {"top_p", 1, 1.01f, 0, 1, 0, 0, 0, 64, 0, NULL, "top_p must be in (0, 1]"},
        {"min_p", 1, 1, -0.5f, 1, 0, 0, 0, 64, 0, NULL, "min_p must be in [0, 1]"},
        {"min_p", 1, 1, 1.5f, 1, 0, 0, 0, 64, 0, NULL, "min_p must be in [0, 1]"},
        {"repetition_penalty", 1, 1, 0, 0, 0, 0, 0, 64, 0, NULL, "repetition_penalty must be in (0, 10]"},
        {"repetition_penalty", 1, 1, 0, INFINITY, 0, 0, 0, 64, 0, NULL, "repetition_penalty must be in (0, 10]"},
        {"presence_penalty", 1, 1, 0, 1, 2.5f, 0, 0, 64, 0, NULL, "presence_penalty must be in [-2, 2]"},
        {"frequency_penalty", 1, 1, 0, 1, 0, -3, 0, 64, 0, NULL, "frequency_penalty must be in [-2, 2]"},
        {"repeat_last_n", 1, 1, 0, 1, 0, 0, 0, -2, 0, NULL, "repeat_last_n must be in [-1, 65536]"},
        {"repeat_last_n", 1, 1, 0, 1, 0, 0, 0, 1 << 20, 0, NULL, "repeat_last_n must be in [-1, 65536]"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, 1, out_of_range, "logit_bias token 99999 out of range [0, 32000)"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, 1, negative, "logit_bias token -1 out of range [0, 32000)"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, 1, too_big, "logit_bias value for token 5 must be in [-100, 100], got 150"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, 3, dup, "logit_bias token 5 appears more than once"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, 2, NULL, "logit_bias is NULL"},
        {"logit_bias", 1, 1, 0, 1, 0, 0, 0, 64, -1, NULL, "logit_bias must have between 0 and 32000 entries"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        samp_params p = defaults();
        p.temperature = rows[i].temperature;
        p.top_p = rows[i].top_p;
        p.min_p = rows[i].min_p;
        p.repetition_penalty = rows[i].rep;
        p.presence_penalty = rows[i].pres;
        p.frequency_penalty = rows[i].freq;
        p.top_k = rows[i].top_k;
        p.repeat_last_n = rows[i].last_n;
        p.n_logit_bias = rows[i].n_bias;
        p.logit_bias = rows[i].bias;
        err[0] = 'x';
        int rc = samp_validate(&p, 32000, err, sizeof err);
        if (rc != -EINVAL) fail_msg("row %zu: rc %d", i, rc);
        if (!strstr(err, rows[i].want)) fail_msg("row %zu: got \"%s\", want \"%s\"", i, err, rows[i].want);
        if (strncmp(err, rows[i].field, strlen(rows[i].field)) != 0)
            fail_msg("row %zu: \"%s\" does not start with the field %s", i, err, rows[i].field);
        assert_null(samp_create(&p, 32000));
    }
    samp_params p = defaults();
    assert_int_equal(samp_validate(&p, 32000, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(samp_validate(&p, 0, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "vocab must be > 0"));
    assert_int_equal(samp_validate(NULL, 10, err, sizeof err), -EINVAL);
    assert_int_equal(samp_validate(&p, 10, NULL, 0), 0);
    /* Edges that are allowed. */
    samp_logit_bias edge[2] = {{0, -100.0f}, {31999, 100.0f}};
    p.temperature = 2.0f;
    p.top_p = 1e-6f;
    p.min_p = 1.0f;
    p.repetition_penalty = 10.0f;
    p.presence_penalty = -2.0f;
    p.frequency_penalty = 2.0f;
    p.top_k = 1000000;
    p.repeat_last_n = -1;
    p.logit_bias = edge;
    p.n_logit_bias = 2;
    if (samp_validate(&p, 32000, err, sizeof err)) fail_msg("%s", err);
    /* Tiny buffers are truncated and terminated. */
    p.temperature = 3.0f;
    char small[8];
    assert_int_equal(samp_validate(&p, 32000, small, sizeof small), -EINVAL);
    assert_string_equal(small, "tempera");
    /* Arguments to the other calls. */
    int32_t t;
    assert_int_equal(samp_sample(NULL, NULL, &t), -EINVAL);
    samp_free(NULL);
    assert_int_equal(samp_accept(NULL, 0), -EINVAL);
}

/* ------------------------------------------------------------------------ */
/* A 150k vocabulary                                                        */
/* ------------------------------------------------------------------------ */

/* Rank of token t (number of tokens with a strictly higher logit). */
static int rank_of(const float *l, int V, int32_t t) {
    int r = 0;
    for (int i = 0; i < V; i++) r += l[i] > l[t];
    return r;
}

static void test_large_vocab(void **state) {
    (void)state;
    const int V = 152064; /* Qwen2's vocabulary */
    float *l = malloc((size_t)V * sizeof *l);
    float *buf = malloc((size_t)V * sizeof *buf);
    assert_non_null(l);
    assert_non_null(buf);
    rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < V; i++) l[i] = (float)(rng_normal(&r) * 3.0);
    struct { float t; int k; float tp, mp; } cases[] = {
        {0.0f, 0, 1.0f, 0.0f}, {0.8f, 40, 0.95f, 0.05f}, {1.0f, 0, 1.0f, 0.0f},
        {1.0f, 0, 0.9f, 0.0f}, {1.0f, 0, 1.0f, 0.05f}, {0.7f, 50, 1.0f, 0.0f},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        samp_params p = defaults();
        p.temperature = cases[c].t;
        p.top_k = cases[c].k;
        p.top_p = cases[c].tp;
        p.min_p = cases[c].mp;
        p.repetition_penalty = 1.1f;
        p.frequency_penalty = 0.1f;
        p.seed = 17 + c;
        samp *s = mk(&p, V);
        for (int i = 0; i < 40; i++) {
            memcpy(buf, l, (size_t)V * sizeof *buf);
            samp_output o;
            assert_int_equal(samp_sample_ex(s, buf, 5, &o), 0);
            assert_true(o.token >= 0 && o.token < V);
            assert_true(o.n_top == 5);
            assert_true(o.logprob <= 0.0f && isfinite(o.logprob));
            if (p.top_k) assert_true(rank_of(l, V, o.token) < p.top_k + 40); /* penalties shift ranks a little */
            assert_int_equal(samp_accept(s, o.token), 0);
        }
        samp_free(s);
    }
    free(l);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_vectors),
        cmocka_unit_test(test_rng_ranges),
        cmocka_unit_test(test_greedy_argmax_and_ties),
        cmocka_unit_test(test_logit_bias),
        cmocka_unit_test(test_repetition_penalty),
        cmocka_unit_test(test_presence_frequency),
        cmocka_unit_test(test_penalty_window),
        cmocka_unit_test(test_top_k_freq),
        cmocka_unit_test(test_top_p_freq),
        cmocka_unit_test(test_min_p_freq),
        cmocka_unit_test(test_temperature_freq),
        cmocka_unit_test(test_truncation_sets_vs_naive),
        cmocka_unit_test(test_seeds),
        cmocka_unit_test(test_draw_same_with_logprobs),
        cmocka_unit_test(test_logprobs),
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_large_vocab),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
