/* ops_matmul.c - out[T, OC] = x[T, C] . w[OC, C]^T (+ bias): the dispatcher
 * (small-T SIMD kernel, ops_gemm or OpenBLAS), the small-T kernel for every
 * instruction-set level, and the naive reference; see ops.h.
 *
 * Why a kernel of our own: a decode step multiplies T = 1..64 token rows
 * (one per running sequence) by every weight matrix. That is memory-bound:
 * the cost is reading w once. OpenBLAS sgemm repacks w on every call and,
 * for small T, costs about T separate sgemv passes. The kernel here walks w
 * in tiles of MM__NR output rows, loads each weight vector once from memory
 * and multiplies it with up to NT token rows held in registers, so a step
 * with T tokens costs about one pass over w until it becomes compute-bound.
 * Rows are split across the thread pool. Above ops_matmul_small_t_max tokens
 * (prefill) a packed GEMM is faster and is used instead: ours (ops_gemm.c)
 * on AVX-512, OpenBLAS's sgemm otherwise.
 *
 * Accumulation is in float32 (per SIMD lane, then a horizontal sum), like
 * sgemm; the reference accumulates in double.
 */
#include "ops.h"

#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define MM__X86 1
#endif

#define MM__NR 4  /* weight rows per tile, every ISA */

/* The largest T served by the small-T kernel; -1: by ISA (see ops.h). */
static atomic_int mm__small_t_max = -1;

/* ---- scalar tile ---------------------------------------------------------- */

/* out[t * ldo + r] for r < nr (<= MM__NR), t < nt, over C; w rows of stride
 * C, x rows of stride C. */
static void mm__tile_scalar(float *out, size_t ldo, const float *x, const float *w,
                            const float *bias, int C, int nr, int nt)
{
    for (int t = 0; t < nt; t++) {
        const float *xr = x + (size_t)t * C;
        float acc[MM__NR] = {0};
        for (int c = 0; c < C; c++) {
            float xv = xr[c];
            for (int r = 0; r < nr; r++)
                acc[r] += w[(size_t)r * C + c] * xv;
        }
        for (int r = 0; r < nr; r++)
            out[(size_t)t * ldo + r] = acc[r] + (bias ? bias[r] : 0.0f);
    }
}

static void mm__rows_scalar(float *out, size_t ldo, const float *x, const float *w,
                            const float *bias, int T, int C, size_t r0, size_t r1)
{
    const int NT = 4;
    for (size_t o = r0; o < r1; o += MM__NR) {
        int nr = r1 - o < MM__NR ? (int)(r1 - o) : MM__NR;
        for (int t = 0; t < T; t += NT)
            mm__tile_scalar(out + (size_t)t * ldo + o, ldo, x + (size_t)t * C, w + o * (size_t)C,
                            bias ? bias + o : NULL, C, nr, T - t < NT ? T - t : NT);
    }
}

#ifdef MM__X86

/* ---- AVX2 + FMA: 4 rows x 3 tokens = 12 accumulators of 16 registers ------ */

#define MM__AVX2 __attribute__((target("avx2,fma")))
#define MM__AVX2_INLINE __attribute__((target("avx2,fma"), always_inline)) static inline
#define MM__AVX2_NT 3

/* -1 x 8 then 0 x 8: loadu(mm__mask_tab + 8 - n) masks the first n lanes. */
static const int32_t mm__mask_tab[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* {sum(v0), sum(v1), sum(v2), sum(v3)} */
MM__AVX2_INLINE __m128 mm__hsum4_256(__m256 v0, __m256 v1, __m256 v2, __m256 v3)
{
    __m256 a = _mm256_hadd_ps(v0, v1);  /* v0 01 23, v1 01 23 | v0 45 67, v1 45 67 */
    __m256 b = _mm256_hadd_ps(v2, v3);
    __m256 c = _mm256_hadd_ps(a, b);    /* s0 s1 s2 s3 (lo half) | (hi half) */
    return _mm_add_ps(_mm256_castps256_ps128(c), _mm256_extractf128_ps(c, 1));
}

MM__AVX2_INLINE float mm__hsum_256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* One tile of NR (1 or MM__NR) weight rows x NT tokens; NR and NT are
 * constants at every call site, so acc[][] lives in registers. */
MM__AVX2_INLINE void mm__tile_avx2(float *out, size_t ldo, const float *x, const float *w,
                                   const float *pf,
                                   const float *bias, int C, const int NR, const int NT)
{
    __m256 acc[MM__NR][MM__AVX2_NT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        if (pf)
            for (int r = 0; r < NR; r++)
                _mm_prefetch((const char *)(pf + (size_t)r * C + c), _MM_HINT_T0);
        __m256 xv[MM__AVX2_NT];
        for (int t = 0; t < NT; t++)
            xv[t] = _mm256_loadu_ps(x + (size_t)t * C + c);
        for (int r = 0; r < NR; r++) {
            __m256 wv = _mm256_loadu_ps(w + (size_t)r * C + c);
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (c < C) {
        __m256i m = _mm256_loadu_si256((const __m256i *)(mm__mask_tab + 8 - (C - c)));
        __m256 xv[MM__AVX2_NT];
        for (int t = 0; t < NT; t++)
            xv[t] = _mm256_maskload_ps(x + (size_t)t * C + c, m);
        for (int r = 0; r < NR; r++) {
            __m256 wv = _mm256_maskload_ps(w + (size_t)r * C + c, m);
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (NR == MM__NR) {
        __m128 b = bias ? _mm_loadu_ps(bias) : _mm_setzero_ps();
        for (int t = 0; t < NT; t++)
            _mm_storeu_ps(out + (size_t)t * ldo,
                          _mm_add_ps(mm__hsum4_256(acc[0][t], acc[1][t], acc[2][t], acc[3][t]), b));
    } else {
        for (int r = 0; r < NR; r++)
            for (int t = 0; t < NT; t++)
                out[(size_t)t * ldo + r] = mm__hsum_256(acc[r][t]) + (bias ? bias[r] : 0.0f);
    }
}

#define MM__AVX2_CASE(NR, NT)                                                    \
    case NT:                                                                     \
        mm__tile_avx2(out + (size_t)t * ldo + o, ldo, x + (size_t)t * C, wr, pf, br, \
                      C, NR, NT);                                                \
        break

MM__AVX2 static void mm__rows_avx2(float *out, size_t ldo, const float *x, const float *w,
                                   const float *bias, int T, int C, size_t r0, size_t r1)
{
    /* token passes of nearly equal size (8 = 4 + 4, not 6 + 2) */
    int n_pass = (T + MM__AVX2_NT - 1) / MM__AVX2_NT;
    int base = T / n_pass, extra = T % n_pass;
    size_t o = r0;
    for (; o + MM__NR <= r1; o += MM__NR) {
        const float *wr = w + o * (size_t)C, *br = bias ? bias + o : NULL;
        /* the next tile's rows, fetched while this tile computes: without
         * it the memory idles during the passes that hit L1 (measured: T=12
         * on 768 x 768 took 1.5x as long) */
        const float *pf = o + 2 * MM__NR <= r1 ? wr + (size_t)MM__NR * C : NULL;
        for (int p = 0, t = 0; p < n_pass; p++) {
            int nt = base + (p < extra);
            switch (nt) {
                MM__AVX2_CASE(MM__NR, 1);
                MM__AVX2_CASE(MM__NR, 2);
                MM__AVX2_CASE(MM__NR, 3);
            }
            t += nt;
        }
    }
    for (; o < r1; o++) {
        const float *wr = w + o * (size_t)C, *br = bias ? bias + o : NULL, *pf = NULL;
        for (int p = 0, t = 0; p < n_pass; p++) {
            int nt = base + (p < extra);
            switch (nt) {
                MM__AVX2_CASE(1, 1);
                MM__AVX2_CASE(1, 2);
                MM__AVX2_CASE(1, 3);
            }
            t += nt;
        }
    }
}

/* ---- AVX-512: 4 rows x 6 tokens = 24 accumulators of 32 registers --------- */

#define MM__AVX512 __attribute__((target("avx512f,avx2,fma")))
#define MM__AVX512_INLINE __attribute__((target("avx512f,avx2,fma"), always_inline)) static inline
#define MM__AVX512_NT 6

MM__AVX512_INLINE __m256 mm__fold512(__m512 v)
{
    return _mm256_add_ps(_mm512_castps512_ps256(v),
                         _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

MM__AVX512_INLINE void mm__tile_avx512(float *out, size_t ldo, const float *x, const float *w,
                                   const float *pf,
                                       const float *bias, int C, const int NR, const int NT)
{
    __m512 acc[MM__NR][MM__AVX512_NT];
    for (int r = 0; r < NR; r++)
        for (int t = 0; t < NT; t++)
            acc[r][t] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= C; c += 16) {
        if (pf)
            for (int r = 0; r < NR; r++)
                _mm_prefetch((const char *)(pf + (size_t)r * C + c), _MM_HINT_T0);
        __m512 xv[MM__AVX512_NT];
        for (int t = 0; t < NT; t++)
            xv[t] = _mm512_loadu_ps(x + (size_t)t * C + c);
        for (int r = 0; r < NR; r++) {
            __m512 wv = _mm512_loadu_ps(w + (size_t)r * C + c);
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (c < C) {
        __mmask16 m = (__mmask16)((1u << (C - c)) - 1u);
        __m512 xv[MM__AVX512_NT];
        for (int t = 0; t < NT; t++)
            xv[t] = _mm512_maskz_loadu_ps(m, x + (size_t)t * C + c);
        for (int r = 0; r < NR; r++) {
            __m512 wv = _mm512_maskz_loadu_ps(m, w + (size_t)r * C + c);
            for (int t = 0; t < NT; t++)
                acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (NR == MM__NR) {
        __m128 b = bias ? _mm_loadu_ps(bias) : _mm_setzero_ps();
        for (int t = 0; t < NT; t++)
            _mm_storeu_ps(out + (size_t)t * ldo,
                          _mm_add_ps(mm__hsum4_256(mm__fold512(acc[0][t]), mm__fold512(acc[1][t]),
                                                   mm__fold512(acc[2][t]), mm__fold512(acc[3][t])),
                                     b));
    } else {
        for (int r = 0; r < NR; r++)
            for (int t = 0; t < NT; t++)
                out[(size_t)t * ldo + r] = _mm512_reduce_add_ps(acc[r][t]) + (bias ? bias[r] : 0.0f);
    }
}

#define MM__AVX512_CASE(NR, NT)                                                    \
    case NT:                                                                       \
        mm__tile_avx512(out + (size_t)t * ldo + o, ldo, x + (size_t)t * C, wr, pf, br, \
                        C, NR, NT);                                                \
        break

MM__AVX512 static void mm__rows_avx512(float *out, size_t ldo, const float *x, const float *w,
                                   const float *bias, int T, int C, size_t r0, size_t r1)
{
    /* token passes of nearly equal size (8 = 4 + 4, not 6 + 2) */
    int n_pass = (T + MM__AVX512_NT - 1) / MM__AVX512_NT;
    int base = T / n_pass, extra = T % n_pass;
    size_t o = r0;
    for (; o + MM__NR <= r1; o += MM__NR) {
        const float *wr = w + o * (size_t)C, *br = bias ? bias + o : NULL;
        /* the next tile's rows, fetched while this tile computes: without
         * it the memory idles during the passes that hit L1 (measured: T=12
         * on 768 x 768 took 1.5x as long) */
        const float *pf = o + 2 * MM__NR <= r1 ? wr + (size_t)MM__NR * C : NULL;
        for (int p = 0, t = 0; p < n_pass; p++) {
            int nt = base + (p < extra);
            switch (nt) {
                MM__AVX512_CASE(MM__NR, 1);
                MM__AVX512_CASE(MM__NR, 2);
                MM__AVX512_CASE(MM__NR, 3);
                MM__AVX512_CASE(MM__NR, 4);
                MM__AVX512_CASE(MM__NR, 5);
                MM__AVX512_CASE(MM__NR, 6);
            }
            t += nt;
        }
    }
    for (; o < r1; o++) {
        const float *wr = w + o * (size_t)C, *br = bias ? bias + o : NULL, *pf = NULL;
        for (int p = 0, t = 0; p < n_pass; p++) {
            int nt = base + (p < extra);
            switch (nt) {
                MM__AVX512_CASE(1, 1);
                MM__AVX512_CASE(1, 2);
                MM__AVX512_CASE(1, 3);
                MM__AVX512_CASE(1, 4);
                MM__AVX512_CASE(1, 5);
                MM__AVX512_CASE(1, 6);
            }
            t += nt;
        }
    }
}

#endif /* MM__X86 */

/* ---- small-T dispatch ----------------------------------------------------- */

typedef struct mm__job {
    float *out;
    size_t ldo;
    const float *x, *w, *bias;
    int T, C;
    cpu_isa isa;
} mm__job;

static void mm__run(void *ctx, size_t r0, size_t r1, int worker)
{
    (void)worker;
    const mm__job *j = ctx;
    switch (j->isa) {
#ifdef MM__X86
    case CPU_ISA_AVX512:
        mm__rows_avx512(j->out, j->ldo, j->x, j->w, j->bias, j->T, j->C, r0, r1);
        break;
    case CPU_ISA_AVX2:
        mm__rows_avx2(j->out, j->ldo, j->x, j->w, j->bias, j->T, j->C, r0, r1);
        break;
#endif
    default:
        mm__rows_scalar(j->out, j->ldo, j->x, j->w, j->bias, j->T, j->C, r0, r1);
        break;
    }
}

void ops_matmul_small(float *out, size_t ldo, const float *x, const float *w,
                      const float *bias, int T, int C, int OC, cpu_isa isa, tp_pool *pool)
{
    if (T <= 0 || C <= 0 || OC <= 0 || ldo < (size_t)OC) {
        ops_matmul_naive(out, ldo, x, w, bias, T, C, OC);
        return;
    }
    if (!cpu_isa_supported(isa))
        isa = CPU_ISA_SCALAR;
    mm__job j = {.out = out, .ldo = ldo, .x = x, .w = w, .bias = bias, .T = T, .C = C, .isa = isa};
    /* chunks of 16 rows: whole tiles, and whole cache lines of out */
    tp_parallel_for(pool, (size_t)OC, 16, mm__run, &j);
}

/* ---- the engine's pool ---------------------------------------------------- */

static _Atomic(tp_pool *) mm__pool_user;
static tp_pool *mm__pool_default;
static pthread_once_t mm__pool_once = PTHREAD_ONCE_INIT;

static void mm__pool_make(void)
{
    int n = openblas_get_num_threads();
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0 && n > ncpu)
        n = (int)ncpu;
    if (n < 1)
        n = 1;
    if (n > 1 && tp_create(&mm__pool_default, n) != 0)
        mm__pool_default = NULL;  /* run in the caller's thread */
}

void ops_matmul_set_pool(tp_pool *pool)
{
    atomic_store_explicit(&mm__pool_user, pool, memory_order_release);
}

tp_pool *ops_matmul_pool(void)
{
    tp_pool *p = atomic_load_explicit(&mm__pool_user, memory_order_acquire);
    if (p)
        return p;
    pthread_once(&mm__pool_once, mm__pool_make);
    return mm__pool_default;
}

/* ---- the dispatcher and the reference ------------------------------------- */

void ops_matmul(float *out, size_t ldo, const float *x, const float *w,
                const float *bias, int T, int C, int OC)
{
    if (T <= 0 || C <= 0 || OC <= 0 || ldo < (size_t)OC) {
        ops_matmul_naive(out, ldo, x, w, bias, T, C, OC);
        return;
    }
    if (T <= ops_matmul_small_t_max()) {
        /* too little work to be worth waking a thread for */
        tp_pool *pool = (size_t)T * C * OC >= (1u << 16) ? ops_matmul_pool() : NULL;
        ops_matmul_small(out, ldo, x, w, bias, T, C, OC, cpu_isa_best(), pool);
        return;
    }
    if (ops_gemm_available()) { /* prefill on AVX-512: our GEMM, our threads */
        ops_gemm(out, ldo, x, (size_t)C, w, (size_t)C, bias, T, C, OC, ops_matmul_pool());
        return;
    }
    /* prefill: OpenBLAS runs on its own threads; ours must not spin meanwhile */
    tp_park(ops_matmul_pool());
    ops_matmul_blas(out, ldo, x, w, bias, T, C, OC);
}

void ops_matmul_set_small_t_max(int t_max)
{
    atomic_store_explicit(&mm__small_t_max, t_max, memory_order_relaxed);
}

int ops_matmul_small_t_max(void)
{
    int t = atomic_load_explicit(&mm__small_t_max, memory_order_relaxed);
    if (t >= 0)
        return t;
    switch (cpu_isa_best()) {
    case CPU_ISA_AVX512:
        return OPS_MATMUL_SMALL_T_MAX_AVX512;
    case CPU_ISA_AVX2:
        return OPS_MATMUL_SMALL_T_MAX_AVX2;
    default:
        return 0;
    }
}

void ops_matmul_blas(float *out, size_t ldo, const float *x, const float *w,
                     const float *bias, int T, int C, int OC)
{
    if (T <= 0 || C <= 0 || OC <= 0 || ldo < (size_t)OC) {
        ops_matmul_naive(out, ldo, x, w, bias, T, C, OC);
        return;
    }
    float beta = 0.0f;
    if (bias) {
        for (int t = 0; t < T; t++)
            memcpy(out + (size_t)t * ldo, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    if (T == 1) {
        /* one streaming pass over the weight rows */
        cblas_sgemv(CblasRowMajor, CblasNoTrans, OC, C, 1.0f, w, C, x, 1,
                    beta, out, 1);
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, OC, C, 1.0f,
                    x, C, w, C, beta, out, (int)ldo);
    }
}

void ops_matmul_naive(float *out, size_t ldo, const float *x, const float *w,
                      const float *bias, int T, int C, int OC)
{
    for (int t = 0; t < T; t++) {
        const float *xr = x + (size_t)t * C;
        for (int o = 0; o < OC; o++) {
            const float *wr = w + (size_t)o * C;
            double acc = bias ? bias[o] : 0.0;
            for (int c = 0; c < C; c++)
                acc += (double)xr[c] * wr[c];
            out[(size_t)t * ldo + o] = (float)acc;
        }
    }
}
