/* ops_attention.c - attention over the KV cache for one query token at a
 * time (decode; ops.h): contiguous keys (ops_attention) and the paged cache
 * (ops_attention_paged), and the naive reference.
 *
 * Per head: scores q . k_j for every key, softmax, then the values summed
 * with those weights. The dot products and the weighted sums are the work;
 * they run in SIMD (AVX-512 or AVX2 with FMA, picked at run time, portable
 * C otherwise), through the same two helpers in both kernels, so the
 * kernels stay bitwise equal to each other on any one machine. The
 * portable dot product keeps 8 interleaved partial sums (one running sum
 * would wait on every add's latency). */
#include "ops.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "safetensors.h" /* st_f16_to_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AT__X86 1
#endif

typedef float (*at__dot_fn)(const float *a, const void *b, int n);
typedef void (*at__dot4_fn)(const float *a, const void *const b[4], int n, float out[4]);
typedef void (*at__axpy_fn)(float *y, float a, const void *x, int n);
typedef void (*at__axpy4_fn)(float *y, const float a[4], const void *const x[4], int n);

/* The kernels for keys and values of one element type (float or IEEE half,
 * es bytes each). The 4-row forms give bitwise the results of 4 calls of
 * the 1-row ones (the same operations per row, only batched: 4 dot
 * products share their horizontal sums, 4 weighted rows one pass over y). */
typedef struct at__kernels {
    at__dot_fn dot;     /* a . b over n elements */
    at__dot4_fn dot4;   /* out[i] = a . b[i], i < 4; NULL: 4 dots */
    at__axpy_fn axpy;   /* y[0, n) += a * x */
    at__axpy4_fn axpy4; /* y += a[0] x[0], then a[1] x[1] ...; NULL: 4 axpys */
    size_t es;
} at__kernels;

/* Element e of a row of keys or values: a float, or (f16) a half float. */
static inline float at__elem(const void *row, int e, bool f16)
{
    return f16 ? st_f16_to_f32(((const uint16_t *)row)[e]) : ((const float *)row)[e];
}

/* Each kernel below is one body for both element types (f16 a constant
 * once inlined), instantiated by AT__BOTH. */

/* Portable: 8 interleaved partial sums (one running sum would wait on
 * every add's latency), added pairwise at the end. */
static inline __attribute__((always_inline)) float at__dot_scalar_t(const float *a, const void *b,
                                                                   int n, bool f16)
{
    float s[8] = {0};
    for (int d = 0; d < n; d++)
        s[d & 7] += a[d] * at__elem(b, d, f16);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static inline __attribute__((always_inline)) void at__axpy_scalar_t(float *y, float a,
                                                                   const void *x, int n, bool f16)
{
    for (int d = 0; d < n; d++)
        y[d] += a * at__elem(x, d, f16);
}

#define AT__UNPAREN(...) __VA_ARGS__
#define AT__BOTH(ATTR, NAME, RET, PARAMS, ARGS)                                             \
    ATTR static RET NAME##_f32 PARAMS { return NAME##_t(AT__UNPAREN ARGS, false); }         \
    ATTR static RET NAME##_f16 PARAMS { return NAME##_t(AT__UNPAREN ARGS, true); }
#define AT__BOTH_VOID(ATTR, NAME, PARAMS, ARGS)                                             \
    ATTR static void NAME##_f32 PARAMS { NAME##_t(AT__UNPAREN ARGS, false); }               \
    ATTR static void NAME##_f16 PARAMS { NAME##_t(AT__UNPAREN ARGS, true); }

AT__BOTH(, at__dot_scalar, float, (const float *a, const void *b, int n), (a, b, n))
AT__BOTH_VOID(, at__axpy_scalar, (float *y, float a, const void *x, int n), (y, a, x, n))

#ifdef AT__X86

/* f16c for the half-float instances; the float ones never execute it */
#define AT__AVX512 __attribute__((target("avx512f,fma,f16c")))
#define AT__AVX2 __attribute__((target("avx2,fma,f16c")))
#define AT__INLINE inline __attribute__((always_inline))

/* 16 (8) elements of a row from element d, as floats. */
AT__AVX512 static AT__INLINE __m512 at__load16(const void *row, int d, bool f16)
{
    return f16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + d)))
               : _mm512_loadu_ps((const float *)row + d);
}

AT__AVX2 static AT__INLINE __m256 at__load8(const void *row, int d, bool f16)
{
    return f16 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)row + d)))
               : _mm256_loadu_ps((const float *)row + d);
}

/* The sum of v's 16 lanes in a fixed order (halves added: 16 -> 8 -> 4
 * -> 2 -> 1), which at__reduce4 repeats lane for lane on 4 vectors. */
AT__AVX512 static AT__INLINE float at__reduce(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    return _mm_cvtss_f32(h);
}

/* at__reduce of v[0..3] into out[0..3]: the same additions, 4 at a time. */
AT__AVX512 static AT__INLINE void at__reduce4(const __m512 v[4], float out[4])
{
    __m256 a[4];
    for (int i = 0; i < 4; i++)
        a[i] = _mm256_add_ps(_mm512_castps512_ps256(v[i]),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v[i]), 1)));
    /* [x.lo4 + x.hi4 | y.lo4 + y.hi4] for (x, y) = (0, 1), (2, 3) */
    __m256 ab = _mm256_add_ps(_mm256_permute2f128_ps(a[0], a[1], 0x20),
                              _mm256_permute2f128_ps(a[0], a[1], 0x31));
    __m256 cd = _mm256_add_ps(_mm256_permute2f128_ps(a[2], a[3], 0x20),
                              _mm256_permute2f128_ps(a[2], a[3], 0x31));
    /* per 128-bit lane: [x0 + x2, x1 + x3, z0 + z2, z1 + z3] */
    __m256 w = _mm256_add_ps(_mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm256_shuffle_ps(ab, cd, _MM_SHUFFLE(3, 2, 3, 2)));
    /* per 128-bit lane: [x01, z01, ., .] */
    __m256 r = _mm256_add_ps(_mm256_shuffle_ps(w, w, _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm256_shuffle_ps(w, w, _MM_SHUFFLE(3, 1, 3, 1)));
    __m128 lo = _mm256_castps256_ps128(r), hi = _mm256_extractf128_ps(r, 1);
    out[0] = _mm_cvtss_f32(lo);
    out[2] = _mm_cvtss_f32(_mm_shuffle_ps(lo, lo, 1));
    out[1] = _mm_cvtss_f32(hi);
    out[3] = _mm_cvtss_f32(_mm_shuffle_ps(hi, hi, 1));
}

/* Two 16-lane partial sums (even and odd 16-element pieces), a last
 * piece of 16 into the first, the reduction, then the < 16 left one by
 * one. at__dot4_avx512_t does exactly this per row. */
AT__AVX512 static AT__INLINE float at__dot_avx512_t(const float *a, const void *b, int n, bool f16)
{
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), at__load16(b, d, f16), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 16), at__load16(b, d + 16, f16), s1);
    }
    for (; d + 16 <= n; d += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), at__load16(b, d, f16), s0);
    float r = at__reduce(_mm512_add_ps(s0, s1));
    for (; d < n; d++)
        r += a[d] * at__elem(b, d, f16);
    return r;
}

AT__AVX512 static AT__INLINE void at__dot4_avx512_t(const float *a, const void *const b[4], int n,
                                                    float out[4], bool f16)
{
    __m512 s0[4], s1[4];
    for (int i = 0; i < 4; i++)
        s0[i] = s1[i] = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= n; d += 32) {
        __m512 a0 = _mm512_loadu_ps(a + d), a1 = _mm512_loadu_ps(a + d + 16);
        for (int i = 0; i < 4; i++) {
            s0[i] = _mm512_fmadd_ps(a0, at__load16(b[i], d, f16), s0[i]);
            s1[i] = _mm512_fmadd_ps(a1, at__load16(b[i], d + 16, f16), s1[i]);
        }
    }
    for (; d + 16 <= n; d += 16) {
        __m512 a0 = _mm512_loadu_ps(a + d);
        for (int i = 0; i < 4; i++)
            s0[i] = _mm512_fmadd_ps(a0, at__load16(b[i], d, f16), s0[i]);
    }
    for (int i = 0; i < 4; i++)
        s0[i] = _mm512_add_ps(s0[i], s1[i]);
    at__reduce4(s0, out);
    for (int i = 0; i < 4; i++)
        for (int e = d; e < n; e++)
            out[i] += a[e] * at__elem(b[i], e, f16);
}

AT__AVX512 static AT__INLINE void at__axpy_avx512_t(float *y, float a, const void *x, int n,
                                                    bool f16)
{
    __m512 va = _mm512_set1_ps(a);
    int d = 0;
    for (; d + 16 <= n; d += 16)
        _mm512_storeu_ps(y + d, _mm512_fmadd_ps(va, at__load16(x, d, f16), _mm512_loadu_ps(y + d)));
    for (; d < n; d++)
        y[d] += a * at__elem(x, d, f16);
}

/* y += a[0] x[0], then a[1] x[1] ... per element: the order of 4 axpys */
AT__AVX512 static AT__INLINE void at__axpy4_avx512_t(float *y, const float a[4],
                                                     const void *const x[4], int n, bool f16)
{
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        __m512 v = _mm512_loadu_ps(y + d);
        for (int i = 0; i < 4; i++)
            v = _mm512_fmadd_ps(_mm512_set1_ps(a[i]), at__load16(x[i], d, f16), v);
        _mm512_storeu_ps(y + d, v);
    }
    for (; d < n; d++)
        for (int i = 0; i < 4; i++)
            y[d] += a[i] * at__elem(x[i], d, f16);
}

AT__AVX2 static AT__INLINE float at__dot_avx2_t(const float *a, const void *b, int n, bool f16)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), at__load8(b, d, f16), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), at__load8(b, d + 8, f16), s1);
    }
    for (; d + 8 <= n; d += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), at__load8(b, d, f16), s0);
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; d < n; d++)
        r += a[d] * at__elem(b, d, f16);
    return r;
}

AT__AVX2 static AT__INLINE void at__axpy_avx2_t(float *y, float a, const void *x, int n, bool f16)
{
    __m256 va = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, at__load8(x, d, f16), _mm256_loadu_ps(y + d)));
    for (; d < n; d++)
        y[d] += a * at__elem(x, d, f16);
}

AT__BOTH(AT__AVX512, at__dot_avx512, float, (const float *a, const void *b, int n), (a, b, n))
AT__BOTH_VOID(AT__AVX512, at__dot4_avx512,
         (const float *a, const void *const b[4], int n, float out[4]), (a, b, n, out))
AT__BOTH_VOID(AT__AVX512, at__axpy_avx512, (float *y, float a, const void *x, int n), (y, a, x, n))
AT__BOTH_VOID(AT__AVX512, at__axpy4_avx512,
         (float *y, const float a[4], const void *const x[4], int n), (y, a, x, n))
AT__BOTH(AT__AVX2, at__dot_avx2, float, (const float *a, const void *b, int n), (a, b, n))
AT__BOTH_VOID(AT__AVX2, at__axpy_avx2, (float *y, float a, const void *x, int n), (y, a, x, n))

#endif /* AT__X86 */

#define AT__KERNELS(DOT, DOT4, AXPY, AXPY4, T) ((at__kernels){DOT, DOT4, AXPY, AXPY4, sizeof(T)})

/* The level ops_attention_force_isa set; -1: the CPU's best. */
static atomic_int at__forced = -1;

void ops_attention_force_isa(int isa)
{
    atomic_store_explicit(&at__forced, isa, memory_order_relaxed);
}

static at__kernels at__pick(bool f16)
{
#ifdef AT__X86
    int forced = atomic_load_explicit(&at__forced, memory_order_relaxed);
    cpu_isa isa = forced >= 0 && cpu_isa_supported((cpu_isa)forced) ? (cpu_isa)forced
                                                                    : cpu_isa_best();
    /* the half-float kernels convert with F16C */
    bool ok = !f16 || cpu_features_get()->f16c;
    switch (ok ? isa : CPU_ISA_SCALAR) {
    case CPU_ISA_AVX512:
        return f16 ? AT__KERNELS(at__dot_avx512_f16, at__dot4_avx512_f16, at__axpy_avx512_f16,
                                 at__axpy4_avx512_f16, uint16_t)
                   : AT__KERNELS(at__dot_avx512_f32, at__dot4_avx512_f32, at__axpy_avx512_f32,
                                 at__axpy4_avx512_f32, float);
    case CPU_ISA_AVX2:
        return f16 ? AT__KERNELS(at__dot_avx2_f16, NULL, at__axpy_avx2_f16, NULL, uint16_t)
                   : AT__KERNELS(at__dot_avx2_f32, NULL, at__axpy_avx2_f32, NULL, float);
    default:
        break;
    }
#endif
    return f16 ? AT__KERNELS(at__dot_scalar_f16, NULL, at__axpy_scalar_f16, NULL, uint16_t)
               : AT__KERNELS(at__dot_scalar_f32, NULL, at__axpy_scalar_f32, NULL, float);
}

/* scores att[0, n) = scale * q . row r (row r at rows + r * ld bytes), 4
 * rows at a time where the kernels have it. */
static void at__scores(const at__kernels *K, float *att, const float *q, const char *rows,
                       size_t ld, int n, int HS, float scale)
{
    int r = 0;
    if (K->dot4)
        for (; r + 4 <= n; r += 4) {
            const void *b[4] = {rows + r * ld, rows + (r + 1) * ld, rows + (r + 2) * ld,
                                rows + (r + 3) * ld};
            K->dot4(q, b, HS, att + r);
            for (int i = 0; i < 4; i++)
                att[r + i] *= scale;
        }
    for (; r < n; r++)
        att[r] = K->dot(q, rows + r * ld, HS) * scale;
}

/* y += sum over rows r < n of w[r] * row r, in row order. */
static void at__weighted(const at__kernels *K, float *y, const float *w, const char *rows,
                         size_t ld, int n, int HS)
{
    int r = 0;
    if (K->axpy4)
        for (; r + 4 <= n; r += 4) {
            const void *x[4] = {rows + r * ld, rows + (r + 1) * ld, rows + (r + 2) * ld,
                                rows + (r + 3) * ld};
            K->axpy4(y, w + r, x, HS);
        }
    for (; r < n; r++)
        K->axpy(y, w[r], rows + r * ld, HS);
}

void ops_attention(float *out, const float *q, const float *k, const float *v,
                   size_t ldk, int TK, int NH, int NKV, int HS, float scale,
                   float *att)
{
    at__kernels K = at__pick(false);
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HS;
        size_t koff = (size_t)(h / group) * HS;
        at__scores(&K, att, qh, (const char *)(k + koff), ldk * sizeof(float), TK, HS, scale);
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        at__weighted(&K, oh, att, (const char *)(v + koff), ldk * sizeof(float), TK, HS);
    }
}

/* The paged kernel for keys and values of K's element type: offsets are
 * counted in elements and turned into bytes here. */
static void at__paged(const at__kernels *K, float *out, const float *q, const void *k,
                      const void *v, size_t bstride, const int32_t *table, int BS, size_t ldk,
                      int TK, int NH, int NKV, int HS, float scale, float *att)
{
    const char *kc = k, *vc = v;
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HS;
        size_t koff = (size_t)(h / group) * HS;
        for (int j0 = 0, bi = 0; j0 < TK; j0 += BS, bi++) {
            const char *kb = kc + ((size_t)table[bi] * bstride + koff) * K->es;
            int n = TK - j0 < BS ? TK - j0 : BS;
            at__scores(K, att + j0, qh, kb, ldk * K->es, n, HS, scale);
        }
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        for (int j0 = 0, bi = 0; j0 < TK; j0 += BS, bi++) {
            const char *vb = vc + ((size_t)table[bi] * bstride + koff) * K->es;
            int n = TK - j0 < BS ? TK - j0 : BS;
            at__weighted(K, oh, att + j0, vb, ldk * K->es, n, HS);
        }
    }
}

void ops_attention_paged(float *out, const float *q, const float *k,
                         const float *v, size_t bstride, const int32_t *table,
                         int BS, size_t ldk, int TK, int NH, int NKV, int HS,
                         float scale, float *att)
{
    at__kernels K = at__pick(false);
    at__paged(&K, out, q, k, v, bstride, table, BS, ldk, TK, NH, NKV, HS, scale, att);
}

void ops_attention_paged_f16(float *out, const float *q, const uint16_t *k, const uint16_t *v,
                             size_t bstride, const int32_t *table, int BS, size_t ldk, int TK,
                             int NH, int NKV, int HS, float scale, float *att)
{
    at__kernels K = at__pick(true);
    at__paged(&K, out, q, k, v, bstride, table, BS, ldk, TK, NH, NKV, HS, scale, att);
}

void ops_attention_naive(float *out, const float *q, const float *k,
                         const float *v, const unsigned char *mask, int T,
                         int TK, int NH, int NKV, int HS, float scale)
{
    int qd = NH * HS, kd = NKV * HS;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / NKV);
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < TK; j++) {
                if (!mask[(size_t)t * TK + j])
                    continue;
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)t * qd + h * HS + d] *
                         k[(size_t)j * kd + g * HS + d];
                s *= scale;
                mx = s > mx ? s : mx;
            }
            for (int j = 0; j < TK; j++) {
                if (!mask[(size_t)t * TK + j])
                    continue;
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)t * qd + h * HS + d] *
                         k[(size_t)j * kd + g * HS + d];
                sum += exp(s * scale - mx);
            }
            for (int d = 0; d < HS; d++) {
                double acc = 0.0;
                for (int j = 0; j < TK; j++) {
                    if (!mask[(size_t)t * TK + j])
                        continue;
                    double s = 0.0;
                    for (int e = 0; e < HS; e++)
                        s += (double)q[(size_t)t * qd + h * HS + e] *
                             k[(size_t)j * kd + g * HS + e];
                    acc += exp(s * scale - mx) / sum *
                           v[(size_t)j * kd + g * HS + d];
                }
                out[(size_t)t * qd + h * HS + d] = (float)acc;
            }
        }
    }
}
