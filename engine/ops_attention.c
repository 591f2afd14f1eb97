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
#include <stdbool.h>
#include <string.h>

#include "safetensors.h" /* st_f16_to_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define AT__X86 1
#endif

typedef float (*at__dot_fn)(const float *a, const void *b, int n);
typedef void (*at__axpy_fn)(float *y, float a, const void *x, int n);

/* The kernels for keys and values of one element type (float or IEEE half,
 * es bytes each). */
typedef struct at__kernels {
    at__dot_fn dot;   /* a . b over n elements */
    at__axpy_fn axpy; /* y[0, n) += a * x */
    size_t es;
} at__kernels;

static float at__dot_scalar(const float *a, const void *bv, int n)
{
    const float *b = bv;
    float s[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int i = 0; i < 8; i++)
            s[i] += a[d + i] * b[d + i];
    for (; d < n; d++)
        s[d & 7] += a[d] * b[d];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void at__axpy_scalar(float *y, float a, const void *xv, int n)
{
    const float *x = xv;
    for (int d = 0; d < n; d++)
        y[d] += a * x[d];
}

static float at__dot_f16_scalar(const float *a, const void *bv, int n)
{
    const uint16_t *b = bv;
    float s[8] = {0};
    for (int d = 0; d < n; d++)
        s[d & 7] += a[d] * st_f16_to_f32(b[d]);
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

static void at__axpy_f16_scalar(float *y, float a, const void *xv, int n)
{
    const uint16_t *x = xv;
    for (int d = 0; d < n; d++)
        y[d] += a * st_f16_to_f32(x[d]);
}

#ifdef AT__X86

#define AT__AVX512 __attribute__((target("avx512f,fma")))
#define AT__AVX2 __attribute__((target("avx2,fma")))

/* Two 16-lane partial sums, the tail under a mask. */
AT__AVX512 static float at__dot_avx512(const float *a, const void *bv, int n)
{
    const float *b = bv;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d), _mm512_loadu_ps(b + d), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 16), _mm512_loadu_ps(b + d + 16), s1);
    }
    for (; d < n; d += 16) {
        __mmask16 m = n - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - d)) - 1);
        s0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + d), _mm512_maskz_loadu_ps(m, b + d), s0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

AT__AVX512 static void at__axpy_avx512(float *y, float a, const void *xv, int n)
{
    const float *x = xv;
    __m512 va = _mm512_set1_ps(a);
    for (int d = 0; d < n; d += 16) {
        __mmask16 m = n - d >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - d)) - 1);
        __m512 v = _mm512_fmadd_ps(va, _mm512_maskz_loadu_ps(m, x + d), _mm512_maskz_loadu_ps(m, y + d));
        _mm512_mask_storeu_ps(y + d, m, v);
    }
}

AT__AVX2 static float at__dot_avx2(const float *a, const void *bv, int n)
{
    const float *b = bv;
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
    }
    for (; d + 8 <= n; d += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    __m256 s = _mm256_add_ps(s0, s1);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; d < n; d++)
        r += a[d] * b[d];
    return r;
}

AT__AVX2 static void at__axpy_avx2(float *y, float a, const void *xv, int n)
{
    const float *x = xv;
    __m256 va = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + d), _mm256_loadu_ps(y + d)));
    for (; d < n; d++)
        y[d] += a * x[d];
}

/* Half-float keys and values, converted 16 (8) at a time (F16C). */
#define AT__AVX512_F16 __attribute__((target("avx512f,fma,f16c")))
#define AT__AVX2_F16 __attribute__((target("avx2,fma,f16c")))

AT__AVX512_F16 static float at__dot_f16_avx512(const float *a, const void *bv, int n)
{
    const uint16_t *b = bv;
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    int d = 0;
    for (; d + 32 <= n; d += 32) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + d))), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + d + 16))), s1);
    }
    for (; d + 16 <= n; d += 16)
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + d),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(b + d))), s0);
    float r = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
    for (; d < n; d++)
        r += a[d] * st_f16_to_f32(b[d]);
    return r;
}

AT__AVX512_F16 static void at__axpy_f16_avx512(float *y, float a, const void *xv, int n)
{
    const uint16_t *x = xv;
    __m512 va = _mm512_set1_ps(a);
    int d = 0;
    for (; d + 16 <= n; d += 16)
        _mm512_storeu_ps(y + d, _mm512_fmadd_ps(va, _mm512_cvtph_ps(_mm256_loadu_si256(
                                                        (const __m256i *)(x + d))),
                                                _mm512_loadu_ps(y + d)));
    for (; d < n; d++)
        y[d] += a * st_f16_to_f32(x[d]);
}

AT__AVX2_F16 static float at__dot_f16_avx2(const float *a, const void *bv, int n)
{
    const uint16_t *b = bv;
    __m256 s0 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 8 <= n; d += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d),
                             _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + d))), s0);
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_add_ps(h, _mm_movehl_ps(h, h));
    h = _mm_add_ss(h, _mm_movehdup_ps(h));
    float r = _mm_cvtss_f32(h);
    for (; d < n; d++)
        r += a[d] * st_f16_to_f32(b[d]);
    return r;
}

AT__AVX2_F16 static void at__axpy_f16_avx2(float *y, float a, const void *xv, int n)
{
    const uint16_t *x = xv;
    __m256 va = _mm256_set1_ps(a);
    int d = 0;
    for (; d + 8 <= n; d += 8)
        _mm256_storeu_ps(y + d, _mm256_fmadd_ps(va, _mm256_cvtph_ps(_mm_loadu_si128(
                                                        (const __m128i *)(x + d))),
                                                _mm256_loadu_ps(y + d)));
    for (; d < n; d++)
        y[d] += a * st_f16_to_f32(x[d]);
}

#endif /* AT__X86 */

static at__kernels at__pick(bool f16)
{
#ifdef AT__X86
    bool f16c = cpu_features_get()->f16c;
    switch (cpu_isa_best()) {
    case CPU_ISA_AVX512:
        if (!f16)
            return (at__kernels){at__dot_avx512, at__axpy_avx512, sizeof(float)};
        if (f16c)
            return (at__kernels){at__dot_f16_avx512, at__axpy_f16_avx512, sizeof(uint16_t)};
        break;
    case CPU_ISA_AVX2:
        if (!f16)
            return (at__kernels){at__dot_avx2, at__axpy_avx2, sizeof(float)};
        if (f16c)
            return (at__kernels){at__dot_f16_avx2, at__axpy_f16_avx2, sizeof(uint16_t)};
        break;
    default:
        break;
    }
#endif
    return f16 ? (at__kernels){at__dot_f16_scalar, at__axpy_f16_scalar, sizeof(uint16_t)}
               : (at__kernels){at__dot_scalar, at__axpy_scalar, sizeof(float)};
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
        for (int j = 0; j < TK; j++)
            att[j] = K.dot(qh, k + (size_t)j * ldk + koff, HS) * scale;
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        for (int j = 0; j < TK; j++)
            K.axpy(oh, att[j], v + (size_t)j * ldk + koff, HS);
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
            for (int r = 0; r < n; r++)
                att[j0 + r] = K->dot(qh, kb + (size_t)r * ldk * K->es, HS) * scale;
        }
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        for (int j0 = 0, bi = 0; j0 < TK; j0 += BS, bi++) {
            const char *vb = vc + ((size_t)table[bi] * bstride + koff) * K->es;
            int n = TK - j0 < BS ? TK - j0 : BS;
            for (int r = 0; r < n; r++)
                K->axpy(oh, att[j0 + r], vb + (size_t)r * ldk * K->es, HS);
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
