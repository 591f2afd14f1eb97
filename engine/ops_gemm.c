/* ops_gemm.c - out[T, OC] = x[T, C] . w[OC, C]^T (+ bias) for many tokens
 * (prefill) with AVX-512, on the engine's pool (ops.h).
 *
 * Why not OpenBLAS here: Debian's OpenBLAS 0.3.21 may be told to run its
 * Haswell (AVX2) kernels on an AVX-512 CPU (OPENBLAS_CORETYPE, which some
 * machines set because its newer kernels misbehave there), and it runs on
 * threads of its own that spin between calls while ours work. This is the
 * textbook blocked GEMM: w is packed, 32 output columns by KC k-values at a
 * time, transposed into a small buffer (k-major: one k gives 32 columns in
 * two vectors), and a tile of 12 tokens x 32 columns keeps its 24 sums in
 * registers while k runs: per k, 2 loads of w, 12 broadcasts of x and 24
 * FMAs. Panels of 32 columns are split across the pool.
 *
 * Sums are float32 in k order per output within a KC block, blocks added
 * in order: a different rounding from sgemm's, within float error. */
#include "ops.h"

#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GM__X86 1
#endif

#define GM__NR 32  /* output columns per panel: two 16-float vectors */
#define GM__NT 12  /* tokens per tile: 24 accumulators of 32 registers */
#define GM__KC 256 /* k per packed block: 32 KiB of w, 12 KiB of x */

typedef struct gm__job {
    float *out;
    size_t ldo, ldx, ldw;
    const float *x, *w, *bias;
    int T, C, OC;
} gm__job;

/* wp[k * 32 + r] = w[r, k0 + k] for the panel's nr rows and kc k-values,
 * zero past nr (those columns are never stored). */
static void gm__pack(float *wp, const float *w, size_t ldw, int nr, int k0, int kc)
{
    for (int r = 0; r < GM__NR; r++) {
        if (r >= nr) {
            for (int k = 0; k < kc; k++)
                wp[(size_t)k * GM__NR + r] = 0.0f;
            continue;
        }
        const float *src = w + (size_t)r * ldw + k0;
        for (int k = 0; k < kc; k++)
            wp[(size_t)k * GM__NR + r] = src[k];
    }
}

#ifdef GM__X86

#define GM__AVX512 __attribute__((target("avx512f,fma")))

/* NT tokens x the panel's nr columns over kc k-values: the sums start from
 * bias (first block; zero without one) or from out (later blocks). */
GM__AVX512 static inline __attribute__((always_inline)) void
gm__tile(float *out, size_t ldo, const float *x, size_t ldx, const float *wp, int kc,
         bool first, const float *bias, int nr, const int NT)
{
    __mmask16 m0 = nr >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << nr) - 1);
    __mmask16 m1 = nr >= 32 ? (__mmask16)0xffff
                            : nr > 16 ? (__mmask16)((1u << (nr - 16)) - 1) : (__mmask16)0;
    __m512 a0[GM__NT], a1[GM__NT];
    for (int t = 0; t < NT; t++) {
        if (first) {
            a0[t] = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
            a1[t] = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
        } else {
            a0[t] = _mm512_maskz_loadu_ps(m0, out + (size_t)t * ldo);
            a1[t] = _mm512_maskz_loadu_ps(m1, out + (size_t)t * ldo + 16);
        }
    }
    for (int k = 0; k < kc; k++) {
        __m512 w0 = _mm512_load_ps(wp + (size_t)k * GM__NR);
        __m512 w1 = _mm512_load_ps(wp + (size_t)k * GM__NR + 16);
        for (int t = 0; t < NT; t++) {
            __m512 xb = _mm512_set1_ps(x[(size_t)t * ldx + k]);
            a0[t] = _mm512_fmadd_ps(w0, xb, a0[t]);
            a1[t] = _mm512_fmadd_ps(w1, xb, a1[t]);
        }
    }
    for (int t = 0; t < NT; t++) {
        _mm512_mask_storeu_ps(out + (size_t)t * ldo, m0, a0[t]);
        _mm512_mask_storeu_ps(out + (size_t)t * ldo + 16, m1, a1[t]);
    }
}

typedef void (*gm__tile_fn)(float *out, size_t ldo, const float *x, size_t ldx, const float *wp,
                            int kc, bool first, const float *bias, int nr);

#define GM__TILE(NT)                                                                        \
    GM__AVX512 static void gm__tile_##NT(float *out, size_t ldo, const float *x, size_t ldx, \
                                         const float *wp, int kc, bool first,               \
                                         const float *bias, int nr)                         \
    {                                                                                       \
        gm__tile(out, ldo, x, ldx, wp, kc, first, bias, nr, NT);                            \
    }
GM__TILE(1) GM__TILE(2) GM__TILE(3) GM__TILE(4) GM__TILE(5) GM__TILE(6)
GM__TILE(7) GM__TILE(8) GM__TILE(9) GM__TILE(10) GM__TILE(11) GM__TILE(12)

static const gm__tile_fn gm__tiles[GM__NT] = {
    gm__tile_1, gm__tile_2, gm__tile_3, gm__tile_4,  gm__tile_5,  gm__tile_6,
    gm__tile_7, gm__tile_8, gm__tile_9, gm__tile_10, gm__tile_11, gm__tile_12};

/* Panels [p0, p1) of 32 output columns. */
static void gm__run(void *ctx, size_t p0, size_t p1, int worker)
{
    (void)worker;
    const gm__job *j = ctx;
    _Alignas(64) float wp[GM__KC * GM__NR];
    for (size_t p = p0; p < p1; p++) {
        int o = (int)p * GM__NR, nr = j->OC - o < GM__NR ? j->OC - o : GM__NR;
        for (int k0 = 0; k0 < j->C; k0 += GM__KC) {
            int kc = j->C - k0 < GM__KC ? j->C - k0 : GM__KC;
            gm__pack(wp, j->w + (size_t)o * j->ldw, j->ldw, nr, k0, kc);
            for (int t0 = 0; t0 < j->T; t0 += GM__NT) {
                int nt = j->T - t0 < GM__NT ? j->T - t0 : GM__NT;
                gm__tiles[nt - 1](j->out + (size_t)t0 * j->ldo + o, j->ldo,
                                  j->x + (size_t)t0 * j->ldx + k0, j->ldx, wp, kc, k0 == 0,
                                  j->bias ? j->bias + o : NULL, nr);
            }
        }
    }
}

#endif /* GM__X86 */

bool ops_gemm_available(void)
{
#ifdef GM__X86
    return cpu_isa_supported(CPU_ISA_AVX512);
#else
    return false;
#endif
}

void ops_gemm(float *out, size_t ldo, const float *x, size_t ldx, const float *w, size_t ldw,
              const float *bias, int T, int C, int OC, tp_pool *pool)
{
    if (T <= 0 || C <= 0 || OC <= 0)
        return;
#ifdef GM__X86
    if (ops_gemm_available()) {
        gm__job j = {.out = out, .ldo = ldo, .ldx = ldx, .ldw = ldw, .x = x, .w = w,
                     .bias = bias, .T = T, .C = C, .OC = OC};
        tp_parallel_for(pool, (size_t)(OC + GM__NR - 1) / GM__NR, 1, gm__run, &j);
        return;
    }
#endif
    (void)pool;
    for (int t = 0; t < T; t++) /* without AVX-512: plain loops (callers avoid it) */
        for (int r = 0; r < OC; r++) {
            float acc = bias ? bias[r] : 0.0f;
            for (int c = 0; c < C; c++)
                acc += x[(size_t)t * ldx + c] * w[(size_t)r * ldw + c];
            out[(size_t)t * ldo + r] = acc;
        }
}
