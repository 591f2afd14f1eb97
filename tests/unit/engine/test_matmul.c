/* test_matmul.c - the small-T matmul kernel against ops_matmul_naive for many
 * shapes, every ISA level the CPU supports forced in turn, on 1 and 2
 * threads; the prefill GEMM (ops_gemm) likewise; the ops_matmul dispatcher
 * on both sides of its threshold; the
 * thread pool's parallel-for; CPU feature detection. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_features.h"
#include "ops.h"
#include "threadpool.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* n floats at a deliberately odd offset (one float past a 64-byte boundary),
 * so that no kernel can rely on alignment; free with tm_free. */
static float *tm_alloc(size_t n) {
    float *base = malloc((n + 17) * sizeof(float));
    assert_non_null(base);
    base[0] = 0.0f;
    return base + 1;
}
static void tm_free(float *p) {
    if (p) free(p - 1);
}
static float *tm_rand(size_t n) {
    float *v = tm_alloc(n);
    for (size_t i = 0; i < n; i++) v[i] = frand();
    return v;
}

#define TM_SENTINEL -12345.0f

/* Compares got with ref on the T x OC block and checks the ldo - OC padding
 * columns still hold the sentinel. Tolerance: 1e-5 of sum_c |x_c w_c|, the
 * scale of float32 accumulation error, plus a tiny absolute term. */
static void tm_check(const char *what, const float *got, const float *ref, size_t ldo,
                     const float *x, const float *w, const float *bias, int T, int C, int OC) {
    for (int t = 0; t < T; t++) {
        for (int o = 0; o < OC; o++) {
            double mag = bias ? fabs(bias[o]) : 0.0;
            for (int c = 0; c < C; c++) mag += fabs((double)x[(size_t)t * C + c] * w[(size_t)o * C + c]);
            double g = got[(size_t)t * ldo + o], r = ref[(size_t)t * ldo + o];
            if (!(fabs(g - r) <= 1e-5 * mag + 1e-6))
                fail_msg("%s T=%d C=%d OC=%d: out[%d][%d] = %.9g, reference %.9g (scale %g)", what,
                         T, C, OC, t, o, g, r, mag);
        }
        for (size_t o = (size_t)OC; o < ldo; o++)
            if (got[(size_t)t * ldo + o] != TM_SENTINEL)
                fail_msg("%s T=%d C=%d OC=%d: padding column %zu of row %d written", what, T, C,
                         OC, o, t);
    }
}

static void tm_fill(float *out, size_t n) {
    for (size_t i = 0; i < n; i++) out[i] = TM_SENTINEL;
}

/* One shape: the reference once, then every supported ISA on pools of 1 and
 * 2 threads (and on no pool), with and without bias. */
static void tm_shape(int T, int C, int OC, size_t ldo, tp_pool *pools[3]) {
    float *x = tm_rand((size_t)T * C), *w = tm_rand((size_t)OC * C), *b = tm_rand((size_t)OC);
    float *ref = tm_alloc((size_t)T * ldo), *got = tm_alloc((size_t)T * ldo);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *bias = with_bias ? b : NULL;
        tm_fill(ref, (size_t)T * ldo);
        ops_matmul_naive(ref, ldo, x, w, bias, T, C, OC);
        for (int isa = 0; isa < CPU_ISA_COUNT; isa++) {
            if (!cpu_isa_supported((cpu_isa)isa)) continue;
            for (int p = 0; p < 3; p++) {
                char what[64];
                snprintf(what, sizeof what, "%s threads=%d bias=%d", cpu_isa_name((cpu_isa)isa),
                         tp_threads(pools[p]), with_bias);
                tm_fill(got, (size_t)T * ldo);
                ops_matmul_small(got, ldo, x, w, bias, T, C, OC, (cpu_isa)isa, pools[p]);
                tm_check(what, got, ref, ldo, x, w, bias, T, C, OC);
            }
        }
    }
    tm_free(x);
    tm_free(w);
    tm_free(b);
    tm_free(ref);
    tm_free(got);
}

static void tm_pools(tp_pool *pools[3]) {
    pools[0] = NULL;
    assert_int_equal(tp_create(&pools[1], 1), 0);
    assert_int_equal(tp_create(&pools[2], 2), 0);
    assert_int_equal(tp_threads(pools[1]), 1);
    assert_int_equal(tp_threads(pools[2]), 2);
}

static void tm_pools_free(tp_pool *pools[3]) {
    for (int p = 0; p < 3; p++) tp_free(pools[p]);
}

/* ---- the small-T kernel ------------------------------------------------- */

/* every T from 1 to 70 (all token-tile remainders of every ISA), odd and
 * round channel counts (SIMD tails of 8 and 16 lanes), row counts around the
 * 4-row tile and the 16-row thread chunk, ldo > OC */
static void test_small_shapes(void **state) {
    (void)state;
    tp_pool *pools[3];
    tm_pools(pools);
    const int Cs[] = {1, 7, 8, 15, 16, 17, 33, 64, 100};
    const int OCs[] = {1, 3, 4, 5, 16, 17, 29, 67};
    for (int T = 1; T <= 70; T++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++) {
            /* all row counts for a few T, one rotating row count otherwise */
            for (size_t oi = 0; oi < sizeof OCs / sizeof OCs[0]; oi++) {
                if (T > 8 && T % 6 != 0 && T != 65 && T != 70 &&
                    oi != (size_t)(T + ci) % (sizeof OCs / sizeof OCs[0]))
                    continue;
                int OC = OCs[oi];
                tm_shape(T, Cs[ci], OC, (size_t)OC + (size_t)(T % 3) * 5, pools);
            }
        }
    tm_pools_free(pools);
}

/* long rows: float32 accumulation over K up to 4096 stays within 1e-5 */
static void test_small_long_rows(void **state) {
    (void)state;
    tp_pool *pools[3];
    tm_pools(pools);
    const int Ts[] = {1, 4, 13, 64};
    const int Cs[] = {768, 2047, 4096};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (size_t ci = 0; ci < sizeof Cs / sizeof Cs[0]; ci++)
            tm_shape(Ts[ti], Cs[ci], 37, 40, pools);
    tm_pools_free(pools);
}

/* ---- the dispatcher -------------------------------------------------------- */

static void tm_dispatch(int T, int C, int OC, size_t ldo) {
    float *x = tm_rand((size_t)T * C), *w = tm_rand((size_t)OC * C), *b = tm_rand((size_t)OC);
    float *ref = tm_alloc((size_t)T * ldo), *got = tm_alloc((size_t)T * ldo);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *bias = with_bias ? b : NULL;
        tm_fill(ref, (size_t)T * ldo);
        ops_matmul_naive(ref, ldo, x, w, bias, T, C, OC);
        tm_fill(got, (size_t)T * ldo);
        ops_matmul(got, ldo, x, w, bias, T, C, OC);
        tm_check("ops_matmul", got, ref, ldo, x, w, bias, T, C, OC);
        tm_fill(got, (size_t)T * ldo);
        ops_matmul_blas(got, ldo, x, w, bias, T, C, OC);
        tm_check("ops_matmul_blas", got, ref, ldo, x, w, bias, T, C, OC);
    }
    tm_free(x);
    tm_free(w);
    tm_free(b);
    tm_free(ref);
    tm_free(got);
}

static void test_dispatch(void **state) {
    (void)state;
    int t_max = ops_matmul_small_t_max();
    assert_int_equal(t_max, cpu_isa_best() == CPU_ISA_AVX512 ? OPS_MATMUL_SMALL_T_MAX_AVX512
                            : cpu_isa_best() == CPU_ISA_AVX2 ? OPS_MATMUL_SMALL_T_MAX_AVX2
                                                             : 0);
    const int Ts[] = {1, 2, 9, 64, 65, t_max, t_max + 1};
    /* the default pool, an explicit 2-thread pool, and OpenBLAS only */
    tp_pool *pool = NULL;
    assert_int_equal(tp_create(&pool, 2), 0);
    for (int mode = 0; mode < 3; mode++) {
        if (mode == 1) ops_matmul_set_pool(pool);
        if (mode == 2) ops_matmul_set_small_t_max(0);
        assert_true(mode != 1 || ops_matmul_pool() == pool);
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            tm_dispatch(Ts[ti], 129, 83, 90);
            tm_dispatch(Ts[ti], 768, 64, 64);
        }
    }
    ops_matmul_set_small_t_max(-1);
    assert_int_equal(ops_matmul_small_t_max(), t_max);
    ops_matmul_set_pool(NULL);
    assert_true(ops_matmul_pool() != pool);
    tp_free(pool);
    /* bad dimensions fall back to the reference (which loops zero times) */
    float o = 7.0f, v = 1.0f;
    ops_matmul_small(&o, 1, &v, &v, NULL, 0, 1, 1, cpu_isa_best(), NULL);
    ops_matmul(&o, 1, &v, &v, NULL, 1, 0, 1);
    assert_true(o == 0.0f); /* C == 0: the empty sum */
}

/* ---- the thread pool ------------------------------------------------------ */

typedef struct tm_cover {
    atomic_int *hits;  /* [n] */
    size_t grain, n;
    atomic_int bad;    /* a chunk boundary not on the grain, or a bad worker id */
    atomic_int nested; /* chunks that ran a nested parallel_for */
    tp_pool *pool;
} tm_cover;

static void tm_cover_fn(void *ctx, size_t b, size_t e, int worker) {
    tm_cover *c = ctx;
    if (b % c->grain != 0 || (e % c->grain != 0 && e != c->n) || b >= e || worker < 0 ||
        worker >= tp_threads(c->pool))
        atomic_fetch_add(&c->bad, 1);
    for (size_t i = b; i < e; i++) atomic_fetch_add(&c->hits[i], 1);
}

static void tm_cover_run(tp_pool *pool, size_t n, size_t grain) {
    tm_cover c = {.grain = grain ? grain : 1, .n = n, .pool = pool};
    c.hits = calloc(n ? n : 1, sizeof *c.hits);
    assert_non_null(c.hits);
    atomic_init(&c.bad, 0);
    tp_parallel_for(pool, n, grain, tm_cover_fn, &c);
    for (size_t i = 0; i < n; i++)
        if (atomic_load(&c.hits[i]) != 1)
            fail_msg("threads=%d n=%zu grain=%zu: item %zu run %d times", tp_threads(pool), n,
                     grain, i, atomic_load(&c.hits[i]));
    assert_int_equal(atomic_load(&c.bad), 0);
    free(c.hits);
}

/* a chunk that runs a parallel-for of its own: it must run inline */
static void tm_nested_fn(void *ctx, size_t b, size_t e, int worker) {
    tm_cover *outer = ctx;
    (void)worker;
    for (size_t i = b; i < e; i++) {
        tm_cover inner = {.grain = 1, .n = 8, .pool = outer->pool};
        atomic_int hits[8];
        for (int k = 0; k < 8; k++) atomic_init(&hits[k], 0);
        inner.hits = hits;
        atomic_init(&inner.bad, 0);
        tp_parallel_for(outer->pool, 8, 1, tm_cover_fn, &inner);
        for (int k = 0; k < 8; k++)
            if (atomic_load(&hits[k]) != 1) atomic_fetch_add(&outer->bad, 1);
        atomic_fetch_add(&outer->hits[i], 1);
    }
}

typedef struct tm_caller {
    tp_pool *pool;
    int rounds;
} tm_caller;

static void *tm_caller_main(void *arg) {
    tm_caller *a = arg;
    for (int r = 0; r < a->rounds; r++) tm_cover_run(a->pool, 1000 + (size_t)r % 7, 16);
    return NULL;
}

static void test_pool(void **state) {
    (void)state;
    tp_pool *p = NULL;
    assert_int_equal(tp_create(&p, 0), -EINVAL);
    assert_null(p);
    assert_int_equal(tp_create(&p, 100000), -EINVAL);
    tp_free(NULL);
    tp_park(NULL);
    assert_int_equal(tp_threads(NULL), 1);
    tm_cover_run(NULL, 10, 3);
    for (int n = 1; n <= 4; n++) {
        assert_int_equal(tp_create(&p, n), 0);
        const size_t ns[] = {0, 1, 2, 15, 16, 17, 100, 1023};
        const size_t gs[] = {0, 1, 4, 16, 1000};
        for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
            for (size_t g = 0; g < sizeof gs / sizeof gs[0]; g++) tm_cover_run(p, ns[i], gs[g]);
        /* many quick jobs back to back (the spin hand-off), then after a
         * park (the sleep hand-off) */
        for (int r = 0; r < 2000; r++) tm_cover_run(p, 64, 8);
        tp_park(p);
        for (int r = 0; r < 20; r++) {
            tm_cover_run(p, 64, 8);
            tp_park(p);
        }
        /* nested */
        tm_cover outer = {.grain = 1, .n = 6, .pool = p};
        atomic_int hits[6];
        for (int k = 0; k < 6; k++) atomic_init(&hits[k], 0);
        outer.hits = hits;
        atomic_init(&outer.bad, 0);
        tp_parallel_for(p, 6, 1, tm_nested_fn, &outer);
        for (int k = 0; k < 6; k++) assert_int_equal(atomic_load(&hits[k]), 1);
        assert_int_equal(atomic_load(&outer.bad), 0);
        /* two callers at once: one of them may run inline, both complete */
        pthread_t th;
        tm_caller a = {.pool = p, .rounds = 300};
        assert_int_equal(pthread_create(&th, NULL, tm_caller_main, &a), 0);
        tm_caller_main(&a);
        assert_int_equal(pthread_join(th, NULL), 0);
        tp_free(p);
        p = NULL;
    }
}

/* ---- CPU features -------------------------------------------------------- */

/* ---- the prefill GEMM --------------------------------------------------- */

/* ops_gemm against the reference: token tiles of 1..12 (T up to 30 and a
 * long one), panels of 32 columns with every tail, k blocks of 256 with a
 * tail, on no pool and 2 threads, with bias and strides wider than C. */
static void tm_gemm(int T, int C, int OC, tp_pool *pool) {
    size_t ldx = (size_t)C + 3, ldw = (size_t)C + 5, ldo = (size_t)OC + 2;
    float *x = tm_rand((size_t)T * ldx), *w = tm_rand((size_t)OC * ldw), *b = tm_rand((size_t)OC);
    float *xc = tm_alloc((size_t)T * C), *wc = tm_alloc((size_t)OC * C);
    for (int t = 0; t < T; t++) memcpy(xc + (size_t)t * C, x + (size_t)t * ldx, (size_t)C * sizeof(float));
    for (int o = 0; o < OC; o++) memcpy(wc + (size_t)o * C, w + (size_t)o * ldw, (size_t)C * sizeof(float));
    float *ref = tm_alloc((size_t)T * ldo), *got = tm_alloc((size_t)T * ldo);
    for (int with_bias = 0; with_bias < 2; with_bias++) {
        const float *bias = with_bias ? b : NULL;
        tm_fill(ref, (size_t)T * ldo);
        tm_fill(got, (size_t)T * ldo);
        ops_matmul_naive(ref, ldo, xc, wc, bias, T, C, OC);
        ops_gemm(got, ldo, x, ldx, w, ldw, bias, T, C, OC, pool);
        char what[64];
        snprintf(what, sizeof what, "ops_gemm threads=%d bias=%d", tp_threads(pool), with_bias);
        tm_check(what, got, ref, ldo, xc, wc, bias, T, C, OC);
    }
    tm_free(x), tm_free(w), tm_free(b), tm_free(xc), tm_free(wc), tm_free(ref), tm_free(got);
}

static void test_gemm(void **state) {
    (void)state;
    if (!ops_gemm_available()) print_message("ops_gemm: no AVX-512 here, checking its plain loops\n");
    tp_pool *pools[3];
    tm_pools(pools);
    for (int T = 1; T <= 30; T++) tm_gemm(T, 40, 37, pools[T % 3]);
    const int Cs[] = {1, 16, 255, 256, 300, 600}, OCs[] = {1, 31, 32, 33, 64, 100};
    for (size_t i = 0; i < 6; i++)
        for (size_t k = 0; k < 6; k++) tm_gemm(13, Cs[i], OCs[k], pools[2]);
    tm_gemm(200, 520, 70, pools[2]);
    tm_gemm(3, 8, 5, pools[0]);
    tm_pools_free(pools);
}

static void test_cpu_features(void **state) {
    (void)state;
    const cpu_features *f = cpu_features_get();
    assert_non_null(f);
    assert_true(cpu_isa_supported(CPU_ISA_SCALAR));
    assert_true(cpu_isa_supported(cpu_isa_best()));
    assert_false(cpu_isa_supported(CPU_ISA_COUNT));
    assert_int_equal(cpu_isa_supported(CPU_ISA_AVX2), f->avx2 && f->fma);
    if (cpu_isa_supported(CPU_ISA_AVX512)) assert_true(cpu_isa_supported(CPU_ISA_AVX2));
    assert_string_equal(cpu_isa_name(CPU_ISA_AVX512), "avx512");
    assert_string_equal(cpu_isa_name(CPU_ISA_COUNT), "?");
    printf("cpu: best %s (avx2 %d fma %d avx512f %d bw %d vl %d vnni %d bf16 %d)\n",
           cpu_isa_name(cpu_isa_best()), f->avx2, f->fma, f->avx512f, f->avx512bw, f->avx512vl,
           f->avx512vnni, f->avx512bf16);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpu_features),    cmocka_unit_test(test_pool),
        cmocka_unit_test(test_small_shapes),    cmocka_unit_test(test_small_long_rows),
        cmocka_unit_test(test_dispatch),        cmocka_unit_test(test_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
