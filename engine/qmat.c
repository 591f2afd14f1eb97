/* qmat.c - Q8_0 / Q4_0 weight matrices and their product (qmat.h). */
#include "qmat.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h" /* st_f16_to_f32 */
#include "weights.h"     /* wt_f16_from_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QM__X86 1
#endif

#define QM__NT 4 /* tokens per pass over a weight row */

/* A block of quantized activations: its own layout, with the sum of q the
 * Q4_0 offset needs. */
typedef struct qm__xblock {
    float d;
    int32_t sum;
    int8_t q[QM_BLOCK];
} qm__xblock;

size_t qm_block_bytes(qm_type t)
{
    return t == QM_Q8_0 ? 2 + QM_BLOCK : 2 + QM_BLOCK / 2;
}

size_t qm_row_bytes(qm_type t, int cols)
{
    return (size_t)(cols / QM_BLOCK) * qm_block_bytes(t);
}

const char *qm_type_name(qm_type t)
{
    return t == QM_Q8_0 ? "q8_0" : t == QM_Q4_0 ? "q4_0" : "?";
}

static float qm__d(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2);
    return st_f16_to_f32(h);
}

static void qm__put_d(uint8_t *blk, float d)
{
    uint16_t h = wt_f16_from_f32(d);
    memcpy(blk, &h, 2);
}

/* ---- quantizers (ggml's reference) ------------------------------------------ */

static void qm__quantize_q8_0(const float *x, uint8_t *blk)
{
    float amax = 0;
    for (int i = 0; i < QM_BLOCK; i++)
        amax = fmaxf(amax, fabsf(x[i]));
    float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
    qm__put_d(blk, d);
    for (int i = 0; i < QM_BLOCK; i++)
        blk[2 + i] = (uint8_t)(int8_t)roundf(x[i] * id);
}

static void qm__quantize_q4_0(const float *x, uint8_t *blk)
{
    float amax = 0, max = 0;
    for (int i = 0; i < QM_BLOCK; i++)
        if (fabsf(x[i]) > amax) {
            amax = fabsf(x[i]);
            max = x[i];
        }
    float d = max / -8.0f, id = d ? 1.0f / d : 0.0f;
    qm__put_d(blk, d);
    for (int j = 0; j < QM_BLOCK / 2; j++) {
        int a = (int)(int8_t)(x[j] * id + 8.5f), b = (int)(int8_t)(x[j + 16] * id + 8.5f);
        a = a < 15 ? a : 15;
        b = b < 15 ? b : 15;
        blk[2 + j] = (uint8_t)(a | b << 4);
    }
}

void qm_quantize_row(qm_type t, const float *x, int n, uint8_t *dst)
{
    size_t bb = qm_block_bytes(t);
    for (int b = 0; b < n / QM_BLOCK; b++)
        if (t == QM_Q8_0)
            qm__quantize_q8_0(x + (size_t)b * QM_BLOCK, dst + (size_t)b * bb);
        else
            qm__quantize_q4_0(x + (size_t)b * QM_BLOCK, dst + (size_t)b * bb);
}

void qm_dequantize_row(qm_type t, const uint8_t *src, int n, float *dst)
{
    size_t bb = qm_block_bytes(t);
    for (int b = 0; b < n / QM_BLOCK; b++) {
        const uint8_t *blk = src + (size_t)b * bb;
        float d = qm__d(blk), *o = dst + (size_t)b * QM_BLOCK;
        if (t == QM_Q8_0) {
            for (int i = 0; i < QM_BLOCK; i++)
                o[i] = d * (float)(int8_t)blk[2 + i];
        } else {
            for (int j = 0; j < QM_BLOCK / 2; j++) {
                o[j] = d * (float)((blk[2 + j] & 15) - 8);
                o[j + 16] = d * (float)((blk[2 + j] >> 4) - 8);
            }
        }
    }
}

/* Activations: a row of n floats into n / 32 blocks (scale max|x| / 127). */
static void qm__quantize_x(const float *x, int n, qm__xblock *out)
{
    for (int b = 0; b < n / QM_BLOCK; b++) {
        const float *xb = x + (size_t)b * QM_BLOCK;
        float amax = 0;
        for (int i = 0; i < QM_BLOCK; i++)
            amax = fmaxf(amax, fabsf(xb[i]));
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        int32_t s = 0;
        for (int i = 0; i < QM_BLOCK; i++) {
            int q = (int)lrintf(xb[i] * id);
            out[b].q[i] = (int8_t)q;
            s += q;
        }
        out[b].d = d;
        out[b].sum = s;
    }
}

/* ---- portable kernel ----------------------------------------------------------- */

/* acc[t] = dot(w row, x_t) for nt tokens (xs[t] = the token's blocks). */
static void qm__row_scalar(float *acc, qm_type type, const uint8_t *w, int nb,
                           const qm__xblock *const *xs, int nt)
{
    size_t bb = qm_block_bytes(type);
    for (int t = 0; t < nt; t++)
        acc[t] = 0;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = w + (size_t)b * bb;
        float d = qm__d(blk);
        for (int t = 0; t < nt; t++) {
            const qm__xblock *x = &xs[t][b];
            int32_t s = 0;
            if (type == QM_Q8_0) {
                for (int i = 0; i < QM_BLOCK; i++)
                    s += (int32_t)(int8_t)blk[2 + i] * x->q[i];
            } else {
                for (int j = 0; j < QM_BLOCK / 2; j++)
                    s += (blk[2 + j] & 15) * x->q[j] + (blk[2 + j] >> 4) * x->q[j + 16];
                s -= 8 * x->sum;
            }
            acc[t] += d * x->d * (float)s;
        }
    }
}

#ifdef QM__X86

/* ---- AVX2 (and AVX-512 VNNI on 256-bit lanes) -------------------------------- */

#define QM__AVX2 __attribute__((target("avx2,fma,f16c")))
#define QM__VNNI __attribute__((target("avx2,fma,f16c,avx512f,avx512vl,avx512vnni")))

QM__AVX2 static inline float qm__hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* The 32 weights of a Q4_0 block as bytes 0..15 in element order. */
QM__AVX2 static inline __m256i qm__nibbles(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_and_si256(both, _mm256_set1_epi8(15));
}

/* One kernel body for both levels: DOT(u, s) is the int32x8 of sums of
 * 4 products of unsigned bytes u and signed bytes s. */
#define QM__ROW_KERNEL(NAME, ATTR, DOT)                                                     \
    ATTR static void NAME(float *acc, qm_type type, const uint8_t *w, int nb,              \
                          const qm__xblock *const *xs, int nt)                             \
    {                                                                                      \
        __m256 a[QM__NT];                                                                  \
        float off[QM__NT] = {0};                                                           \
        for (int t = 0; t < QM__NT; t++)                                                   \
            a[t] = _mm256_setzero_ps();                                                    \
        size_t bb = qm_block_bytes(type);                                                  \
        for (int b = 0; b < nb; b++) {                                                     \
            const uint8_t *blk = w + (size_t)b * bb;                                       \
            uint16_t h;                                                                    \
            memcpy(&h, blk, 2);                                                            \
            float d = _cvtsh_ss(h);                                                        \
            if (type == QM_Q8_0) {                                                         \
                __m256i wq = _mm256_loadu_si256((const __m256i *)(blk + 2));               \
                __m256i aw = _mm256_sign_epi8(wq, wq);                                     \
                for (int t = 0; t < nt; t++) {                                             \
                    const qm__xblock *x = &xs[t][b];                                       \
                    __m256i xq = _mm256_loadu_si256((const __m256i *)x->q);                \
                    __m256i p = DOT(aw, _mm256_sign_epi8(xq, wq));                         \
                    a[t] = _mm256_fmadd_ps(_mm256_set1_ps(d * x->d), _mm256_cvtepi32_ps(p), \
                                           a[t]);                                          \
                }                                                                          \
            } else {                                                                       \
                __m256i nib = qm__nibbles(blk + 2);                                        \
                for (int t = 0; t < nt; t++) {                                             \
                    const qm__xblock *x = &xs[t][b];                                       \
                    __m256i xq = _mm256_loadu_si256((const __m256i *)x->q);                \
                    __m256i p = DOT(nib, xq);                                              \
                    float dd = d * x->d;                                                   \
                    a[t] = _mm256_fmadd_ps(_mm256_set1_ps(dd), _mm256_cvtepi32_ps(p), a[t]); \
                    off[t] += dd * (float)x->sum;                                          \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (int t = 0; t < nt; t++)                                                       \
            acc[t] = qm__hsum(a[t]) - 8.0f * off[t];                                       \
    }

QM__AVX2 static inline __m256i qm__dot_avx2(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

QM__VNNI static inline __m256i qm__dot_vnni(__m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

QM__ROW_KERNEL(qm__row_avx2, QM__AVX2, qm__dot_avx2)
QM__ROW_KERNEL(qm__row_vnni, QM__VNNI, qm__dot_vnni)

#endif /* QM__X86 */

/* ---- the product ------------------------------------------------------------- */

typedef enum qm__level { QM__SCALAR, QM__AVX2L, QM__VNNIL } qm__level;

typedef struct qm__job {
    float *out;
    size_t ldo;
    const qm_mat *w;
    const float *bias;
    const qm__xblock *xq;
    int T;
    qm__level level;
} qm__job;

static void qm__run(void *ctx, size_t r0, size_t r1, int worker)
{
    (void)worker;
    const qm__job *j = ctx;
    int nb = j->w->cols / QM_BLOCK;
    size_t rb = qm_row_bytes(j->w->type, j->w->cols);
    for (size_t r = r0; r < r1; r++) {
        const uint8_t *wr = j->w->data + r * rb;
        for (int t0 = 0; t0 < j->T; t0 += QM__NT) {
            int nt = j->T - t0 < QM__NT ? j->T - t0 : QM__NT;
            const qm__xblock *xs[QM__NT];
            for (int t = 0; t < nt; t++)
                xs[t] = j->xq + (size_t)(t0 + t) * nb;
            float acc[QM__NT];
            switch (j->level) {
#ifdef QM__X86
            case QM__VNNIL:
                qm__row_vnni(acc, j->w->type, wr, nb, xs, nt);
                break;
            case QM__AVX2L:
                qm__row_avx2(acc, j->w->type, wr, nb, xs, nt);
                break;
#endif
            default:
                qm__row_scalar(acc, j->w->type, wr, nb, xs, nt);
                break;
            }
            for (int t = 0; t < nt; t++)
                j->out[(size_t)(t0 + t) * j->ldo + r] = acc[t] + (j->bias ? j->bias[r] : 0.0f);
        }
    }
}

static qm__level qm__level_for(cpu_isa isa)
{
    if (!cpu_isa_supported(isa) || isa == CPU_ISA_SCALAR)
        return QM__SCALAR;
    const cpu_features *f = cpu_features_get();
    if (!f->f16c)
        return QM__SCALAR;
    if (isa >= CPU_ISA_AVX512 && f->avx512vl && f->avx512vnni)
        return QM__VNNIL;
    return QM__AVX2L;
}

size_t qm_scratch_bytes(int T, int cols)
{
    return (size_t)(T > 0 ? T : 0) * (size_t)(cols / QM_BLOCK) * sizeof(qm__xblock);
}

int qm_matmul(float *out, size_t ldo, const float *x, const qm_mat *w, const float *bias,
              int T, cpu_isa isa, tp_pool *pool, void *scratch)
{
    if (w->cols <= 0 || w->cols % QM_BLOCK || w->rows <= 0 || ldo < (size_t)w->rows || T < 0)
        return -EINVAL;
    if (T == 0)
        return 0;
    int nb = w->cols / QM_BLOCK;
    qm__xblock *xq = scratch ? scratch : malloc(qm_scratch_bytes(T, w->cols));
    if (!xq)
        return -ENOMEM;
    for (int t = 0; t < T; t++)
        qm__quantize_x(x + (size_t)t * w->cols, w->cols, xq + (size_t)t * nb);
    qm__job j = {.out = out, .ldo = ldo, .w = w, .bias = bias, .xq = xq, .T = T,
                 .level = qm__level_for(isa)};
    /* little work: not worth waking a thread */
    if ((size_t)T * w->rows * w->cols < (1u << 16))
        pool = NULL;
    tp_parallel_for(pool, (size_t)w->rows, 16, qm__run, &j);
    if (!scratch)
        free(xq);
    return 0;
}

void qm_matmul_naive(float *out, size_t ldo, const float *x, const qm_mat *w,
                     const float *bias, int T)
{
    float *row = malloc((size_t)w->cols * sizeof(float));
    if (!row)
        return;
    size_t rb = qm_row_bytes(w->type, w->cols);
    for (int r = 0; r < w->rows; r++) {
        qm_dequantize_row(w->type, w->data + (size_t)r * rb, w->cols, row);
        for (int t = 0; t < T; t++) {
            const float *xr = x + (size_t)t * w->cols;
            double acc = bias ? bias[r] : 0.0;
            for (int c = 0; c < w->cols; c++)
                acc += (double)xr[c] * row[c];
            out[(size_t)t * ldo + r] = (float)acc;
        }
    }
    free(row);
}
