/* qmat.c - Q8_0 / Q4_0 weight matrices and their product (qmat.h). */
#include "qmat.h"

#include <errno.h>
#include <stdbool.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h" /* st_f16_to_f32 */
#include "weights.h"     /* wt_f16_from_f32 */

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QM__X86 1
#endif

#define QM__NT_MAX 4 /* tokens per tile, at most */

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

/* ---- kernel levels ------------------------------------------------------------ */

typedef enum qm__level { QM__SCALAR, QM__AVX2L, QM__VNNIL } qm__level;

/* The kernel that runs for isa on this CPU. */
static qm__level qm__level_for(cpu_isa isa)
{
    if (!cpu_isa_supported(isa) || isa == CPU_ISA_SCALAR)
        return QM__SCALAR;
    const cpu_features *f = cpu_features_get();
    if (!f->f16c)
        return QM__SCALAR;
    if (isa >= CPU_ISA_AVX512 && f->avx512bw && f->avx512vl && f->avx512vnni)
        return QM__VNNIL;
    return QM__AVX2L;
}

/* ---- the packed layout --------------------------------------------------------- */

/* Bytes of the quants of a group-block (QM_GROUP rows, one block): 4-byte
 * chunks interleaved by row (qmat.h). */
static size_t qm__qbytes(qm_type t)
{
    return QM_GROUP * (qm_block_bytes(t) - 2);
}

/* Bytes of a panel-block of P rows: 64 bytes of scales (P = 32: as f16,
 * as GGUF has them; P = 16: as float, which the AVX2 tile reads faster),
 * then each group's quants; so the quant vectors keep the arena's 64-byte
 * alignment. */
#define QM__SCALE_BYTES 64
static size_t qm__pbytes(qm_type t, int P)
{
    return QM__SCALE_BYTES + (size_t)(P / QM_GROUP) * qm__qbytes(t);
}

int qm_pack_panel_rows(void)
{
    return qm__level_for(cpu_isa_best()) == QM__VNNIL ? QM_PANEL_MAX : QM_GROUP;
}

/* 4-byte chunks of quants per row and block: 8 (Q8_0), 4 (Q4_0). */
static int qm__chunks(qm_type t)
{
    return (int)(qm_block_bytes(t) - 2) / 4;
}

size_t qm_mat_bytes(const qm_mat *m)
{
    if (m->packed)
        return (size_t)((m->rows + m->packed - 1) / m->packed) * (size_t)(m->cols / QM_BLOCK) *
               qm__pbytes(m->type, m->packed);
    return (size_t)m->rows * qm_row_bytes(m->type, m->cols);
}

int qm_pack(const qm_mat *src, uint8_t *buf, qm_mat *dst)
{
    return qm_pack_panel(src, qm_pack_panel_rows(), buf, dst);
}

int qm_pack_panel(const qm_mat *src, int P, uint8_t *buf, qm_mat *dst)
{
    if (src->packed || src->cols % QM_BLOCK || src->rows <= 0 ||
        (P != QM_GROUP && P != QM_PANEL_MAX))
        return -EINVAL;
    int nb = src->cols / QM_BLOCK, nc = qm__chunks(src->type);
    size_t rb = qm_row_bytes(src->type, src->cols), bb = qm_block_bytes(src->type);
    size_t pb = qm__pbytes(src->type, P), qb = qm__qbytes(src->type);
    for (int p = 0; p < (src->rows + P - 1) / P; p++)
        for (int b = 0; b < nb; b++) {
            uint8_t *o = buf + ((size_t)p * nb + b) * pb;
            memset(o, 0, pb); /* rows past the end: scale 0, so products 0 */
            for (int k = 0; k < P && P * p + k < src->rows; k++) {
                const uint8_t *blk =
                    src->data + (size_t)(P * p + k) * rb + (size_t)b * bb;
                uint8_t *q = o + QM__SCALE_BYTES + (k / QM_GROUP) * qb + 4 * (k % QM_GROUP);
                if (P == QM_GROUP) {
                    float d = qm__d(blk);
                    memcpy(o + sizeof(float) * k, &d, sizeof(float));
                } else {
                    memcpy(o + 2 * k, blk, 2); /* the f16 scale as it is */
                }
                for (int c = 0; c < nc; c++)
                    memcpy(q + QM_GROUP * 4 * c, blk + 2 + 4 * c, 4);
            }
        }
    *dst = *src;
    dst->packed = P;
    dst->data = buf;
    return 0;
}

/* Row k (< P) of a panel-block of P rows as scale and 32 signed weights in
 * order. */
static float qm__panel_row(qm_type t, const uint8_t *pblk, int P, int k, int8_t *w)
{
    float d;
    if (P == QM_GROUP)
        memcpy(&d, pblk + sizeof(float) * k, sizeof(float));
    else
        d = qm__d(pblk + 2 * k);
    const uint8_t *q = pblk + QM__SCALE_BYTES + (k / QM_GROUP) * qm__qbytes(t) + 4 * (k % QM_GROUP);
    for (int c = 0; c < qm__chunks(t); c++, q += 4 * QM_GROUP)
        for (int i = 0; i < 4; i++) {
            if (t == QM_Q8_0) {
                w[4 * c + i] = (int8_t)q[i];
            } else {
                w[4 * c + i] = (int8_t)((q[i] & 15) - 8);
                w[16 + 4 * c + i] = (int8_t)((q[i] >> 4) - 8);
            }
        }
    return d;
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
    if (!m->packed) {
        qm_dequantize_row(m->type, m->data + (size_t)r * qm_row_bytes(m->type, m->cols),
                          m->cols, dst);
        return;
    }
    int nb = m->cols / QM_BLOCK;
    int P = m->packed;
    size_t pb = qm__pbytes(m->type, P);
    const uint8_t *panel = m->data + (size_t)(r / P) * nb * pb;
#ifdef QM__X86
    /* token embeddings and f32 loads dequantize row by row: vectors help */
    int simd = cpu_isa_supported(CPU_ISA_AVX2);
#endif
    for (int b = 0; b < nb; b++) {
        int8_t w[QM_BLOCK];
        float d = qm__panel_row(m->type, panel + (size_t)b * pb, P, r % P, w);
        float *o = dst + (size_t)b * QM_BLOCK;
#ifdef QM__X86
        if (simd) {
            qm__deq32_avx2(o, w, d);
            continue;
        }
#endif
        for (int i = 0; i < QM_BLOCK; i++)
            o[i] = d * (float)w[i];
    }
}

/* Activations: a row of n floats into n / 32 blocks (scale max|x| / 127,
 * q = x / scale rounded to nearest even). */
static void qm__quantize_x_scalar(const float *x, int n, qm__xblock *out)
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

#ifdef QM__X86
/* The same numbers with AVX2: the same float operations, and cvtps rounds
 * like lrintf (the default nearest-even mode). */
__attribute__((target("avx2,fma"))) static void qm__quantize_x_avx2(const float *x, int n,
                                                                   qm__xblock *out)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int b = 0; b < n / QM_BLOCK; b++) {
        const float *xb = x + (size_t)b * QM_BLOCK;
        __m256 v[4], m = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v[i]));
        }
        __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        h = _mm_max_ps(h, _mm_movehl_ps(h, h));
        h = _mm_max_ss(h, _mm_movehdup_ps(h));
        float amax = _mm_cvtss_f32(h);
        float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
        __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int i = 0; i < 4; i++)
            q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], vid));
        /* int32 -> int8 in order: packs work per 128-bit lane, then a permute */
        __m256i p16a = _mm256_packs_epi32(q[0], q[1]), p16b = _mm256_packs_epi32(q[2], q[3]);
        __m256i p8 = _mm256_packs_epi16(p16a, p16b);
        p8 = _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[b].q, p8);
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4e));
        s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xb1));
        out[b].d = d;
        out[b].sum = _mm_cvtsi128_si32(s4);
    }
}
#endif

/* One row with the AVX2 quantizer (simd: the caller checked the CPU) or
 * the scalar one. */
static void qm__quantize_x(const float *x, int n, qm__xblock *out, bool simd)
{
#ifdef QM__X86
    if (simd) {
        qm__quantize_x_avx2(x, n, out);
        return;
    }
#endif
    (void)simd;
    qm__quantize_x_scalar(x, n, out);
}

void qm_quantize_acts(const float *x, int n, cpu_isa isa, int8_t *q, float *d, int32_t *sum)
{
    qm__xblock *xb = malloc((size_t)(n / QM_BLOCK) * sizeof(*xb));
    if (!xb)
        return;
    qm__quantize_x(x, n, xb, isa >= CPU_ISA_AVX2 && cpu_isa_supported(isa));
    for (int b = 0; b < n / QM_BLOCK; b++) {
        memcpy(q + (size_t)b * QM_BLOCK, xb[b].q, QM_BLOCK);
        d[b] = xb[b].d;
        sum[b] = xb[b].sum;
    }
    free(xb);
}

typedef struct qm__xjob {
    const float *x;
    int cols;
    qm__xblock *xq;
    bool simd;
} qm__xjob;

/* Rows [t0, t1) of the activations. */
static void qm__quantize_rows(void *ctx, size_t t0, size_t t1, int worker)
{
    (void)worker;
    const qm__xjob *j = ctx;
    int nb = j->cols / QM_BLOCK;
    for (size_t t = t0; t < t1; t++)
        qm__quantize_x(j->x + t * j->cols, j->cols, j->xq + t * nb, j->simd);
}

/* ---- portable kernels -------------------------------------------------------- */

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

/* The tile contract, for every level: out[t * ldo + r] (+ bias[r]) for the
 * first nr rows (up to P) of the panel of P rows (nb panel-blocks) and nt
 * tokens. */
typedef void (*qm__tile_fn)(float *out, size_t ldo, qm_type type, const uint8_t *panel, int P,
                            int nb, int nr, const float *bias, const qm__xblock *const *xs,
                            int nt);

static void qm__tile_scalar(float *out, size_t ldo, qm_type type, const uint8_t *panel, int P,
                            int nb, int nr, const float *bias, const qm__xblock *const *xs,
                            int nt)
{
    size_t pb = qm__pbytes(type, P);
    for (int r = 0; r < nr; r++) {
        for (int t = 0; t < nt; t++) {
            float acc = 0;
            for (int b = 0; b < nb; b++) {
                int8_t w[QM_BLOCK];
                float d = qm__panel_row(type, panel + (size_t)b * pb, P, r, w);
                const qm__xblock *x = &xs[t][b];
                int32_t s = 0;
                for (int i = 0; i < QM_BLOCK; i++)
                    s += w[i] * x->q[i];
                acc += d * x->d * (float)s;
            }
            out[(size_t)t * ldo + r] = acc + (bias ? bias[r] : 0.0f);
        }
    }
}

#ifdef QM__X86

/* ---- SIMD kernels -------------------------------------------------------------
 * A group-block's quant chunk c holds, for each of the 16 rows, 4 bytes: the
 * weights 4c..4c+3 (Q8_0), or (Q4_0) those in the low nibbles and 16+4c..
 * in the high ones. Broadcasting the token's 4 matching activation bytes
 * then gives, per instruction, 4 products for each of 16 rows (VNNI: one
 * vpdpbusd; AVX2: maddubs + madd per 8 rows), summed in int32 lanes that
 * are the rows: one conversion and one FMA per block and 16 rows, instead
 * of per row. vpdpbusd multiplies unsigned by signed bytes, so weights go
 * in as u = w + off (Q8_0: w ^ 0x80, off 128; Q4_0: the nibble, off 8),
 * and off * sum(x) comes off each block's sum, exactly. */

#define QM__V512                                                                            \
    __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#define QM__AVX2 __attribute__((target("avx2,fma,f16c")))
#define QM__INLINE inline __attribute__((always_inline))
/* How far ahead of its loads the VNNI tile prefetches. Decode streams the
 * matrix once, and the hardware prefetcher alone keeps too few lines in
 * flight for these loops. In scratch builds on bench_matmul -q's shapes,
 * without the prefetch the 512-bit tile was 20-30% slower, and a distance
 * of 1 KB (about two Q4_0 panel-blocks) beat 0.5, 2 and 4 KB. */
#define QM__PREFETCH_BLOCKS 2

/* Prefetches the panel-block QM__PREFETCH_BLOCKS ahead of blk (pb bytes). */
static QM__INLINE void qm__prefetch_block(const uint8_t *blk, size_t pb)
{
    for (size_t l = 0; l < pb; l += 64)
        _mm_prefetch((const char *)blk + QM__PREFETCH_BLOCKS * pb + l, _MM_HINT_T0);
}

/* The 4 activation bytes of chunk c of block x, broadcast. */
static QM__INLINE int32_t qm__xchunk(const qm__xblock *x, int c)
{
    int32_t v;
    memcpy(&v, x->q + 4 * c, 4);
    return v;
}

/* Q8_0's chunk position c of a group-block as the unsigned bytes w + 128
 * of its 16 rows (Q4_0 has its own loop in qm__tile512_body). */
QM__V512 static QM__INLINE __m512i qm__q8chunk512(const uint8_t *q, int c)
{
    return _mm512_xor_si512(_mm512_loadu_si512(q + 64 * c), _mm512_set1_epi8((char)0x80));
}

/* G groups (16 rows each) x NT tokens; G and NT constants after inlining.
 * Chunk position c pairs with activations x->q[4c..4c+3]: Q8_0's chunk c,
 * or for Q4_0 the low nibbles of chunk c (c < 4) and the high nibbles of
 * chunk c - 4 (weights 16 + 4(c - 4)..). */
QM__V512 static QM__INLINE void qm__tile512_body(float *out, size_t ldo, qm_type type,
                                                  const uint8_t *panel, int P, int nb,
                                                  int nr, const float *bias,
                                                  const qm__xblock *const *xs, const int G,
                                                  const int NT)
{
    const size_t qb = qm__qbytes(type), pb = qm__pbytes(type, P);
    const int32_t off = type == QM_Q8_0 ? 128 : 8;
    __m512 fa[2][QM__NT_MAX];
    for (int g = 0; g < G; g++)
        for (int t = 0; t < NT; t++)
            fa[g][t] = _mm512_setzero_ps();
    /* few tiles: each sum's 8 dependent vpdpbusd per block would wait on
     * each other's latency; even and odd chunks then go to two sums */
    const int S = NT <= 2 ? 2 : 1;
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = panel + (size_t)b * pb, *q = blk + QM__SCALE_BYTES;
        qm__prefetch_block(blk, pb);
        __m512i ia[2][QM__NT_MAX], ib[2][QM__NT_MAX];
        for (int g = 0; g < G; g++)
            for (int t = 0; t < NT; t++)
                ia[g][t] = ib[g][t] = _mm512_setzero_si512();
        if (type == QM_Q4_0) {
            /* one load per 4 chunk positions: the low nibbles as they are,
             * the high ones masked in place (16 x their value, so their
             * sums go to ib and are divided by 16 exactly at the end):
             * no shift per vector */
            for (int v = 0; v < 4; v++) {
                __m512i lo[2], hi[2];
                for (int g = 0; g < G; g++) {
                    __m512i raw = _mm512_loadu_si512(q + g * qb + 64 * v);
                    lo[g] = _mm512_and_si512(raw, _mm512_set1_epi8(0x0f));
                    hi[g] = _mm512_and_si512(raw, _mm512_set1_epi8((char)0xf0));
                }
                for (int t = 0; t < NT; t++) {
                    __m512i xl = _mm512_set1_epi32(qm__xchunk(&xs[t][b], v));
                    __m512i xh = _mm512_set1_epi32(qm__xchunk(&xs[t][b], v + 4));
                    for (int g = 0; g < G; g++) {
                        ia[g][t] = _mm512_dpbusd_epi32(ia[g][t], lo[g], xl);
                        ib[g][t] = _mm512_dpbusd_epi32(ib[g][t], hi[g], xh);
                    }
                }
            }
            for (int g = 0; g < G; g++)
                for (int t = 0; t < NT; t++)
                    ia[g][t] = _mm512_add_epi32(ia[g][t], _mm512_srai_epi32(ib[g][t], 4));
        } else {
            for (int c = 0; c < 8; c++) {
                __m512i w[2];
                for (int g = 0; g < G; g++)
                    w[g] = qm__q8chunk512(q + g * qb, c);
                for (int t = 0; t < NT; t++) {
                    __m512i xb = _mm512_set1_epi32(qm__xchunk(&xs[t][b], c));
                    for (int g = 0; g < G; g++) {
                        if (S == 2 && (c & 1))
                            ib[g][t] = _mm512_dpbusd_epi32(ib[g][t], w[g], xb);
                        else
                            ia[g][t] = _mm512_dpbusd_epi32(ia[g][t], w[g], xb);
                    }
                }
            }
            if (S == 2)
                for (int g = 0; g < G; g++)
                    for (int t = 0; t < NT; t++)
                        ia[g][t] = _mm512_add_epi32(ia[g][t], ib[g][t]);
        }
        for (int t = 0; t < NT; t++) {
            __m512 xd = _mm512_set1_ps(xs[t][b].d);
            __m512i corr = _mm512_set1_epi32(off * xs[t][b].sum);
            for (int g = 0; g < G; g++) {
                __m512 wd = P == QM_GROUP ? _mm512_loadu_ps((const float *)(const void *)blk)
                                          : _mm512_cvtph_ps(_mm256_loadu_si256(
                                                (const __m256i *)(blk + 32 * g)));
                __m512 s = _mm512_cvtepi32_ps(_mm512_sub_epi32(ia[g][t], corr));
                fa[g][t] = _mm512_fmadd_ps(_mm512_mul_ps(wd, xd), s, fa[g][t]);
            }
        }
    }
    for (int g = 0; g < G; g++) {
        int n = nr - QM_GROUP * g;
        if (n <= 0)
            break;
        __mmask16 mask = n >= QM_GROUP ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);
        __m512 bv = bias ? _mm512_maskz_loadu_ps(mask, bias + QM_GROUP * g) : _mm512_setzero_ps();
        for (int t = 0; t < NT; t++)
            _mm512_mask_storeu_ps(out + (size_t)t * ldo + QM_GROUP * g, mask,
                                  _mm512_add_ps(fa[g][t], bv));
    }
}

/* AVX2: group g of a panel as two halves of 8 rows (the chunk's first and
 * last 32 bytes), maddubs + madd for the products: Q8_0 as |w| . (x *
 * sign(w)) (maddubs's pair sums cannot saturate: |w| <= 128, |x| <= 127),
 * Q4_0 as nibble . x, off 8. out and bias start at the panel's first row.
 * No software prefetch: this tile is bound by its arithmetic, not memory,
 * and the prefetches cost it issue slots. */
QM__AVX2 static QM__INLINE void qm__tile256_body(float *out, size_t ldo, qm_type type,
                                                  const uint8_t *panel, int P, int nb, int g,
                                                  int nr, const float *bias,
                                                  const qm__xblock *const *xs, const int NT)
{
    const size_t qb = qm__qbytes(type), pb = qm__pbytes(type, P);
    const int32_t off = type == QM_Q8_0 ? 0 : 8;
    const __m256i ones = _mm256_set1_epi16(1), low4 = _mm256_set1_epi8(15);
    __m256 fa[2][QM__NT_MAX];
    for (int h = 0; h < 2; h++)
        for (int t = 0; t < NT; t++)
            fa[h][t] = _mm256_setzero_ps();
    for (int b = 0; b < nb; b++) {
        const uint8_t *blk = panel + (size_t)b * pb, *q = blk + QM__SCALE_BYTES + g * qb;
        __m256i ia[2][QM__NT_MAX];
        for (int h = 0; h < 2; h++)
            for (int t = 0; t < NT; t++)
                ia[h][t] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++)
            for (int h = 0; h < 2; h++) {
                __m256i w, u;
                if (type == QM_Q8_0) {
                    w = _mm256_loadu_si256((const __m256i *)(q + 64 * c + 32 * h));
                    u = _mm256_sign_epi8(w, w);
                } else {
                    w = _mm256_loadu_si256((const __m256i *)(q + 64 * (c & 3) + 32 * h));
                    u = _mm256_and_si256(c >= 4 ? _mm256_srli_epi16(w, 4) : w, low4);
                }
                for (int t = 0; t < NT; t++) {
                    __m256i xb = _mm256_set1_epi32(qm__xchunk(&xs[t][b], c));
                    if (type == QM_Q8_0)
                        xb = _mm256_sign_epi8(xb, w);
                    __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(u, xb), ones);
                    ia[h][t] = _mm256_add_epi32(ia[h][t], p);
                }
            }
        for (int t = 0; t < NT; t++) {
            __m256 xd = _mm256_set1_ps(xs[t][b].d);
            __m256i corr = _mm256_set1_epi32(off * xs[t][b].sum);
            for (int h = 0; h < 2; h++) {
                __m256 wd = P == QM_GROUP
                                ? _mm256_loadu_ps((const float *)(const void *)blk + 8 * h)
                                : _mm256_cvtph_ps(_mm_loadu_si128(
                                      (const __m128i *)(blk + 32 * g + 16 * h)));
                __m256 s = _mm256_cvtepi32_ps(_mm256_sub_epi32(ia[h][t], corr));
                fa[h][t] = _mm256_fmadd_ps(_mm256_mul_ps(wd, xd), s, fa[h][t]);
            }
        }
    }
    for (int t = 0; t < NT; t++) {
        float v[QM_GROUP];
        _mm256_storeu_ps(v, fa[0][t]);
        _mm256_storeu_ps(v + 8, fa[1][t]);
        for (int r = QM_GROUP * g; r < nr && r < QM_GROUP * (g + 1); r++)
            out[(size_t)t * ldo + r] = v[r - QM_GROUP * g] + (bias ? bias[r] : 0.0f);
    }
}

/* Instances with constant G and NT, so that the accumulators live in
 * registers: 512-bit up to 2 groups x 4 tokens (16 int32 + 16 float
 * accumulators of 32 registers), AVX2 a group at a time x 2 tokens (8 of
 * 16). */
#define QM__T512(G, NT)                                                                     \
    QM__V512 static void qm__tile512_##G##_##NT(float *out, size_t ldo, qm_type type,        \
                                                 const uint8_t *panel, int P, int nb,        \
                                                 int nr, const float *bias,                  \
                                                 const qm__xblock *const *xs, int nt)        \
    {                                                                                       \
        (void)nt;                                                                           \
        qm__tile512_body(out, ldo, type, panel, P, nb, nr, bias, xs, G, NT);                \
    }
QM__T512(1, 1) QM__T512(1, 2) QM__T512(1, 3) QM__T512(1, 4)
QM__T512(2, 1) QM__T512(2, 2) QM__T512(2, 3) QM__T512(2, 4)

#define QM__T256(NT)                                                                        \
    QM__AVX2 static void qm__tile256_##NT(float *out, size_t ldo, qm_type type,              \
                                          const uint8_t *panel, int P, int nb, int nr,       \
                                          const float *bias, const qm__xblock *const *xs,    \
                                          int nt)                                           \
    {                                                                                       \
        (void)nt;                                                                           \
        for (int g = 0; QM_GROUP * g < nr; g++)                                             \
            qm__tile256_body(out, ldo, type, panel, P, nb, g, nr, bias, xs, NT);            \
    }
QM__T256(1) QM__T256(2)

#endif /* QM__X86 */

/* ---- the product ------------------------------------------------------------- */

typedef struct qm__job {
    float *out;
    size_t ldo;
    const qm_mat *w;
    const float *bias;
    const qm__xblock *xq;
    int T;
    qm__level level;
} qm__job;

/* Tokens per tile of each level (a tile covers a panel's rows). */
static int qm__tile_nt(qm__level level)
{
    return level == QM__VNNIL ? 4 : level == QM__AVX2L ? 2 : QM__NT_MAX;
}

/* The level's tile for g groups (of a panel's rows in use) and nt tokens. */
static qm__tile_fn qm__tile_for(qm__level level, int g, int nt)
{
#ifdef QM__X86
    static const qm__tile_fn t512[2][4] = {
        {qm__tile512_1_1, qm__tile512_1_2, qm__tile512_1_3, qm__tile512_1_4},
        {qm__tile512_2_1, qm__tile512_2_2, qm__tile512_2_3, qm__tile512_2_4}};
    static const qm__tile_fn t256[2] = {qm__tile256_1, qm__tile256_2};
    if (level == QM__VNNIL)
        return t512[g - 1][nt - 1];
    if (level == QM__AVX2L)
        return t256[nt - 1];
#endif
    (void)level, (void)g, (void)nt;
    return qm__tile_scalar;
}

/* Tokens per pass over a thread's rows: their activations (40 bytes a
 * block) stay in L2 while the rows stream past. */
#define QM__TOKEN_CHUNK 64

/* Rows [r0, r1) of a packed matrix (r0 a multiple of its panel rows: the
 * pool's chunks are multiples of QM_PANEL_MAX). */
static void qm__run_packed(const qm__job *j, size_t r0, size_t r1)
{
    int nb = j->w->cols / QM_BLOCK, NT = qm__tile_nt(j->level), P = j->w->packed;
    size_t psz = (size_t)nb * qm__pbytes(j->w->type, P);
    for (int c0 = 0; c0 < j->T; c0 += QM__TOKEN_CHUNK) {
        int c1 = j->T - c0 < QM__TOKEN_CHUNK ? j->T : c0 + QM__TOKEN_CHUNK;
        for (size_t r = r0; r < r1; r += (size_t)P) {
            int nr = r1 - r < (size_t)P ? (int)(r1 - r) : P;
            int g = (nr + QM_GROUP - 1) / QM_GROUP;
            const uint8_t *panel = j->w->data + r / (size_t)P * psz;
            for (int t0 = c0; t0 < c1; t0 += NT) {
                int nt = c1 - t0 < NT ? c1 - t0 : NT;
                const qm__xblock *xs[QM__NT_MAX];
                for (int t = 0; t < nt; t++)
                    xs[t] = j->xq + (size_t)(t0 + t) * nb;
                qm__tile_for(j->level, g, nt)(j->out + (size_t)t0 * j->ldo + r, j->ldo,
                                              j->w->type, panel, P, nb, nr,
                                              j->bias ? j->bias + r : NULL, xs, nt);
            }
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
        for (int t0 = 0; t0 < j->T; t0 += QM__NT_MAX) {
            int nt = j->T - t0 < QM__NT_MAX ? j->T - t0 : QM__NT_MAX;
            const qm__xblock *xs[QM__NT_MAX];
            for (int t = 0; t < nt; t++)
                xs[t] = j->xq + (size_t)(t0 + t) * nb;
            float acc[QM__NT_MAX];
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
    qm__xblock *xq = scratch ? scratch : malloc(qm_scratch_bytes(T, w->cols));
    if (!xq)
        return -ENOMEM;
    qm__level level = qm__level_for(isa);
    /* little work: not worth waking a thread */
    if ((size_t)T * w->rows * w->cols < (1u << 16))
        pool = NULL;
    qm__xjob xj = {.x = x, .cols = w->cols, .xq = xq, .simd = level != QM__SCALAR};
    tp_parallel_for(T >= 8 ? pool : NULL, (size_t)T, 1, qm__quantize_rows, &xj);
    qm__job j = {.out = out, .ldo = ldo, .w = w, .bias = bias, .xq = xq, .T = T,
                 .level = level};
    tp_parallel_for(pool, (size_t)w->rows, QM_PANEL_MAX, qm__run, &j);
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
