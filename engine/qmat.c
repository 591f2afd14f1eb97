/* qmat.c - Q8_0 / Q4_0 weight matrices and their product (qmat.h). */
#include "qmat.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"         /* ops_matmul_blas */
#include "safetensors.h" /* st_f16_to_f32 */
#include "weights.h"     /* wt_f16_from_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QM__X86 1
#endif

#define QM__NT 4 /* tokens per pass over a weight row, at most */

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

/* ---- the packed layout --------------------------------------------------------- */

/* Bytes of the group-block of 4 rows: 4 float scales, then 4 rows of quants. */
static size_t qm__gbytes(qm_type t)
{
    return 4 * sizeof(float) + 4 * (qm_block_bytes(t) - 2);
}

size_t qm_mat_bytes(const qm_mat *m)
{
    if (m->packed)
        return (size_t)((m->rows + 3) / 4) * (size_t)(m->cols / QM_BLOCK) * qm__gbytes(m->type);
    return (size_t)m->rows * qm_row_bytes(m->type, m->cols);
}

int qm_pack(const qm_mat *src, uint8_t *buf, qm_mat *dst)
{
    if (src->packed || src->cols % QM_BLOCK || src->rows <= 0)
        return -EINVAL;
    int nb = src->cols / QM_BLOCK;
    size_t rb = qm_row_bytes(src->type, src->cols), bb = qm_block_bytes(src->type);
    size_t gb = qm__gbytes(src->type), qb = bb - 2;
    for (int g = 0; g < (src->rows + 3) / 4; g++)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = buf + ((size_t)g * nb + b) * gb;
            memset(o, 0, gb); /* rows past the end: scale 0, so products 0 */
            for (int k = 0; k < 4 && 4 * g + k < src->rows; k++) {
                const uint8_t *blk = src->data + (size_t)(4 * g + k) * rb + (size_t)b * bb;
                float d = qm__d(blk);
                memcpy(o + k * sizeof(float), &d, sizeof(float));
                memcpy(o + 4 * sizeof(float) + k * qb, blk + 2, qb);
            }
        }
    *dst = *src;
    dst->packed = 1;
    dst->data = buf;
    return 0;
}

#ifdef QM__X86
/* dst[32] = d * q for 32 signed bytes: the same products as the scalar loop. */
__attribute__((target("avx2"))) static void qm__deq32_avx2(float *dst, const int8_t *q, float d)
{
    __m256 vd = _mm256_set1_ps(d);
    for (int i = 0; i < QM_BLOCK; i += 8) {
        __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + i)));
        _mm256_storeu_ps(dst + i, _mm256_mul_ps(vd, _mm256_cvtepi32_ps(v)));
    }
}
#endif

void qm_mat_row(const qm_mat *m, int r, float *dst)
{
#ifdef QM__X86
    /* prefill dequantizes whole matrices per call: the vector loop matters */
    if (m->packed && cpu_isa_supported(CPU_ISA_AVX2)) {
        int nb = m->cols / QM_BLOCK, k = r % 4;
        size_t gb = qm__gbytes(m->type), qb = qm_block_bytes(m->type) - 2;
        for (int b = 0; b < nb; b++) {
            const uint8_t *grp = m->data + ((size_t)(r / 4) * nb + b) * gb;
            float d;
            memcpy(&d, grp + k * sizeof(float), sizeof(float));
            const uint8_t *q = grp + 4 * sizeof(float) + k * qb;
            int8_t s[QM_BLOCK];
            if (m->type == QM_Q8_0) {
                memcpy(s, q, QM_BLOCK);
            } else {
                for (int j = 0; j < QM_BLOCK / 2; j++) {
                    s[j] = (int8_t)((q[j] & 15) - 8);
                    s[j + 16] = (int8_t)((q[j] >> 4) - 8);
                }
            }
            qm__deq32_avx2(dst + (size_t)b * QM_BLOCK, s, d);
        }
        return;
    }
#endif
    if (!m->packed) {
        qm_dequantize_row(m->type, m->data + (size_t)r * qm_row_bytes(m->type, m->cols),
                          m->cols, dst);
        return;
    }
    int nb = m->cols / QM_BLOCK, k = r % 4;
    size_t gb = qm__gbytes(m->type), qb = qm_block_bytes(m->type) - 2;
    for (int b = 0; b < nb; b++) {
        const uint8_t *grp = m->data + ((size_t)(r / 4) * nb + b) * gb;
        float d;
        memcpy(&d, grp + k * sizeof(float), sizeof(float));
        const uint8_t *q = grp + 4 * sizeof(float) + k * qb;
        float *o = dst + (size_t)b * QM_BLOCK;
        if (m->type == QM_Q8_0) {
            for (int i = 0; i < QM_BLOCK; i++)
                o[i] = d * (float)(int8_t)q[i];
        } else {
            for (int j = 0; j < QM_BLOCK / 2; j++) {
                o[j] = d * (float)((q[j] & 15) - 8);
                o[j + 16] = d * (float)((q[j] >> 4) - 8);
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

/* out[t * ldo + k] for the first nr of the 4 rows of packed group grp (nb
 * group-blocks) and nt tokens. */
static void qm__group_scalar(float *out, size_t ldo, qm_type type, const uint8_t *grp, int nb,
                            int nr, const qm__xblock *const *xs, int nt)
{
    size_t gb = qm__gbytes(type), qb = qm_block_bytes(type) - 2;
    float acc[4][QM__NT] = {{0}};
    for (int b = 0; b < nb; b++) {
        const uint8_t *g = grp + (size_t)b * gb;
        for (int k = 0; k < 4; k++) {
            float d;
            memcpy(&d, g + k * sizeof(float), sizeof(float));
            const uint8_t *q = g + 4 * sizeof(float) + k * qb;
            for (int t = 0; t < nt; t++) {
                const qm__xblock *x = &xs[t][b];
                int32_t s = 0;
                if (type == QM_Q8_0) {
                    for (int i = 0; i < QM_BLOCK; i++)
                        s += (int32_t)(int8_t)q[i] * x->q[i];
                } else {
                    for (int j = 0; j < QM_BLOCK / 2; j++)
                        s += ((q[j] & 15) - 8) * x->q[j] + ((q[j] >> 4) - 8) * x->q[j + 16];
                }
                acc[k][t] += d * x->d * (float)s;
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int k = 0; k < nr; k++)
            out[(size_t)t * ldo + k] = acc[k][t];
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

/* The 32 weights of a Q4_0 block as signed bytes q - 8, in element order. */
QM__AVX2 static inline __m256i qm__q4_signed(const uint8_t *qs)
{
    __m128i raw = _mm_loadu_si128((const __m128i *)qs);
    __m256i both = _mm256_set_m128i(_mm_srli_epi16(raw, 4), raw);
    return _mm256_sub_epi8(_mm256_and_si256(both, _mm256_set1_epi8(15)), _mm256_set1_epi8(8));
}

QM__AVX2 static inline __m256i qm__dot_avx2(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

QM__VNNI static inline __m256i qm__dot_vnni(__m256i u, __m256i s)
{
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

/* One packed group of 4 weight rows (the first nr of them written) x nt <=
 * NT tokens, for both levels: DOT(u, s) is the int32x8 of sums of 4
 * products of unsigned bytes u and signed bytes s. Each block's weights
 * become signed bytes w; w . x is computed as |w| . (x * sign(w)) (the
 * unsigned x signed instructions), exact in int32; 4 x NT independent
 * accumulators hide the FMA latency, and the group is one sequential
 * stream (software prefetch on top measured no faster). */
#define QM__GROUP_KERNEL(NAME, ATTR, DOT, NT)                                                \
    ATTR static void NAME(float *out, size_t ldo, qm_type type, const uint8_t *grp, int nb, \
                          int nr, const qm__xblock *const *xs, int nt)                     \
    {                                                                                      \
        __m256 a[4][NT];                                                                   \
        for (int r = 0; r < 4; r++)                                                        \
            for (int t = 0; t < NT; t++)                                                   \
                a[r][t] = _mm256_setzero_ps();                                             \
        size_t gb = qm__gbytes(type), qb = qm_block_bytes(type) - 2;                       \
        for (int b = 0; b < nb; b++) {                                                     \
            const uint8_t *g = grp + (size_t)b * gb;                                       \
            __m256i xq[NT];                                                                \
            __m256 xd[NT];                                                                 \
            for (int t = 0; t < nt; t++) {                                                 \
                xq[t] = _mm256_loadu_si256((const __m256i *)xs[t][b].q);                   \
                xd[t] = _mm256_set1_ps(xs[t][b].d);                                        \
            }                                                                              \
            const float *d = (const float *)(const void *)g;                               \
            for (int r = 0; r < 4; r++) {                                                  \
                const uint8_t *q = g + 4 * sizeof(float) + (size_t)r * qb;                 \
                __m256 wd = _mm256_set1_ps(d[r]);                                          \
                __m256i wq = type == QM_Q8_0 ? _mm256_loadu_si256((const __m256i *)q)      \
                                             : qm__q4_signed(q);                           \
                __m256i aw = _mm256_sign_epi8(wq, wq);                                     \
                for (int t = 0; t < nt; t++) {                                             \
                    __m256i p = DOT(aw, _mm256_sign_epi8(xq[t], wq));                      \
                    a[r][t] = _mm256_fmadd_ps(_mm256_mul_ps(wd, xd[t]),                    \
                                              _mm256_cvtepi32_ps(p), a[r][t]);             \
                }                                                                          \
            }                                                                              \
        }                                                                                  \
        for (int t = 0; t < nt; t++)                                                       \
            for (int r = 0; r < nr; r++)                                                   \
                out[(size_t)t * ldo + r] = qm__hsum(a[r][t]);                              \
    }

/* AVX2 has 16 vector registers: 4 x 2 accumulators; VNNI (AVX-512VL): 32 */
QM__GROUP_KERNEL(qm__group_avx2, QM__AVX2, qm__dot_avx2, 2)
QM__GROUP_KERNEL(qm__group_vnni, QM__VNNI, qm__dot_vnni, 4)

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

/* Tokens per tile of each level. */
static int qm__tile_nt(qm__level level)
{
    return level == QM__VNNIL ? 4 : level == QM__AVX2L ? 2 : QM__NT;
}

/* Rows [r0, r1) of a packed matrix (r0 a multiple of 4: the pool's chunks
 * are multiples of 16 rows), group by group. */
static void qm__run_packed(const qm__job *j, size_t r0, size_t r1)
{
    int nb = j->w->cols / QM_BLOCK, NT = qm__tile_nt(j->level);
    size_t gsz = (size_t)nb * qm__gbytes(j->w->type);
    for (size_t r = r0; r < r1; r += 4) {
        int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
        const uint8_t *grp = j->w->data + r / 4 * gsz;
        for (int t0 = 0; t0 < j->T; t0 += NT) {
            int nt = j->T - t0 < NT ? j->T - t0 : NT;
            const qm__xblock *xs[QM__NT];
            for (int t = 0; t < nt; t++)
                xs[t] = j->xq + (size_t)(t0 + t) * nb;
            float *o = j->out + (size_t)t0 * j->ldo + r;
            switch (j->level) {
#ifdef QM__X86
            case QM__VNNIL:
                qm__group_vnni(o, j->ldo, j->w->type, grp, nb, nr, xs, nt);
                break;
            case QM__AVX2L:
                qm__group_avx2(o, j->ldo, j->w->type, grp, nb, nr, xs, nt);
                break;
#endif
            default:
                qm__group_scalar(o, j->ldo, j->w->type, grp, nb, nr, xs, nt);
                break;
            }
            if (j->bias)
                for (int t = 0; t < nt; t++)
                    for (int k = 0; k < nr; k++)
                        o[(size_t)t * j->ldo + k] += j->bias[r + k];
        }
    }
}

/* Rows [r0, r1) of a row-major matrix: the portable kernel, row by row
 * (pack a matrix for the SIMD kernels). */
static void qm__run_rows(const qm__job *j, size_t r0, size_t r1)
{
    int nb = j->w->cols / QM_BLOCK;
    size_t rb = qm_row_bytes(j->w->type, j->w->cols);
    for (size_t r = r0; r < r1; r++)
        for (int t0 = 0; t0 < j->T; t0 += QM__NT) {
            int nt = j->T - t0 < QM__NT ? j->T - t0 : QM__NT;
            const qm__xblock *xs[QM__NT];
            for (int t = 0; t < nt; t++)
                xs[t] = j->xq + (size_t)(t0 + t) * nb;
            float acc[QM__NT];
            qm__row_scalar(acc, j->w->type, j->w->data + r * rb, nb, xs, nt);
            for (int t = 0; t < nt; t++)
                j->out[(size_t)(t0 + t) * j->ldo + r] = acc[t] + (j->bias ? j->bias[r] : 0.0f);
        }
}

static void qm__run(void *ctx, size_t r0, size_t r1, int worker)
{
    (void)worker;
    const qm__job *j = ctx;
    if (j->w->packed)
        qm__run_packed(j, r0, r1);
    else
        qm__run_rows(j, r0, r1);
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

int qm_matmul_dequant(float *out, size_t ldo, const float *x, const qm_mat *w,
                      const float *bias, int T, float *panel, int panel_rows)
{
    if (w->cols <= 0 || w->cols % QM_BLOCK || w->rows <= 0 || ldo < (size_t)w->rows || T < 0 ||
        panel_rows < 1)
        return -EINVAL;
    for (int r0 = 0; r0 < w->rows && T > 0; r0 += panel_rows) {
        int n = w->rows - r0 < panel_rows ? w->rows - r0 : panel_rows;
        for (int r = 0; r < n; r++)
            qm_mat_row(w, r0 + r, panel + (size_t)r * w->cols);
        ops_matmul_blas(out + r0, ldo, x, panel, bias ? bias + r0 : NULL, T, w->cols, n);
    }
    return 0;
}

void qm_matmul_naive(float *out, size_t ldo, const float *x, const qm_mat *w,
                     const float *bias, int T)
{
    float *row = malloc((size_t)w->cols * sizeof(float));
    if (!row)
        return;
    for (int r = 0; r < w->rows; r++) {
        qm_mat_row(w, r, row);
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
