/* qmat.h - quantized weight matrices in ggml's Q8_0 and Q4_0 block formats,
 * and the matrix product with them.
 *
 * Formats (per row, blocks of 32 weights, as GGUF stores them):
 *   Q8_0  34 bytes: f16 scale d, 32 int8 q;          w = d * q
 *   Q4_0  18 bytes: f16 scale d, 16 bytes of nibbles: byte j holds weight j
 *         in its low nibble and weight j + 16 in its high one; w = d * (q - 8)
 * The quantizers are ggml's reference ones (Q8_0: d = max|x| / 127,
 * q = round(x / d); Q4_0: d = -m / 8 for the element m of largest
 * magnitude, q = min(15, trunc(x / d + 8.5))), so files round-trip.
 *
 * The product: out[T, rows] = x[T, cols] . W^T (+ bias). Each row of x is
 * quantized on the fly to blocks of 32 int8 with a float scale (like
 * ggml's Q8 activations); every block's dot product is exact in integers,
 * scaled by the two scales and summed in float. Kernels for each ISA level
 * (AVX-512 VNNI, AVX2, portable C) give the same integer sums; only the
 * float summation order differs. Rows are split across the thread pool;
 * a tile, one panel of 32 (VNNI) or 16 packed weight rows, is read once for
 * up to 4 tokens (AVX2: 2, a group at a time), with int32 lanes that are rows,
 * so a decode step with T tokens reads the matrix about once, and prefill
 * runs as an int8 GEMM.
 *
 * Threads: no state; qm_matmul runs on the given pool.
 */
#ifndef QMAT_H
#define QMAT_H

#include <stddef.h>
#include <stdint.h>

#include "cpu_features.h"
#include "threadpool.h"

#define QM_BLOCK 32

typedef enum qm_type {
    QM_Q8_0 = 8,
    QM_Q4_0 = 4,
} qm_type;

/* Rows per group of the packed layout (a vector's 32-bit lanes), and the
 * most rows per panel. */
#define QM_GROUP 16
#define QM_PANEL_MAX 32

/* A matrix of rows x cols weights (cols a multiple of 32), in one of two
 * layouts:
 *   row-major (packed 0): GGUF's, each row its blocks one after the other;
 *   packed (packed = P, the rows per panel, 16 or 32; qm_pack): for each
 *     panel of P rows (the last one padded with zero rows), block by block,
 *     a panel-block: 64 bytes of scales (32 rows: f16, as GGUF has them;
 *     16 rows: float, faster for the AVX2 tile), then for each group of 16 rows
 *     its quants as 4-byte chunks interleaved by row: chunk c (of 8 for
 *     Q8_0, 4 for Q4_0: the row's bytes 4c..4c+3 of the block) of rows
 *     0..15, then chunk c + 1 ... A chunk position is one 64-byte vector
 *     whose 32-bit lanes are rows, which is what the SIMD kernels multiply,
 *     and a tile of P rows reads its panel front to back, one stream. Bytes
 *     per weight as in GGUF for 32-row panels. A row-major matrix runs the
 *     portable kernel. */
typedef struct qm_mat {
    qm_type type;
    int rows, cols;
    int packed;
    const uint8_t *data;   /* qm_mat_bytes(this) bytes */
} qm_mat;

/* Bytes of m's data in its layout. */
size_t qm_mat_bytes(const qm_mat *m);
/* The panel rows qm_pack picks on this CPU: 32 where the VNNI kernel runs
 * (its tile covers 32 rows), 16 otherwise (the AVX2 tile reads 16-row
 * panels fastest; measured in bench_matmul -q). */
int qm_pack_panel_rows(void);
/* Packs src (row-major) into buf (qm_mat_bytes of {src's shape, .packed =
 * qm_pack_panel_rows()}; 4-byte aligned, 64 best) and describes it in
 * *dst; -EINVAL for an already packed src or a bad shape. qm_pack_panel:
 * with panel_rows (16 or 32) given, for tests and benchmarks; any level's
 * kernel runs either layout. */
int qm_pack(const qm_mat *src, uint8_t *buf, qm_mat *dst);
int qm_pack_panel(const qm_mat *src, int panel_rows, uint8_t *buf, qm_mat *dst);
/* Row r of m dequantized into dst[cols], any layout. */
void qm_mat_row(const qm_mat *m, int r, float *dst);

/* Bytes of one block / one row of cols weights. */
size_t qm_block_bytes(qm_type t);
size_t qm_row_bytes(qm_type t, int cols);
/* "q8_0", "q4_0" */
const char *qm_type_name(qm_type t);

/* ggml's reference quantizer and the dequantizer; n a multiple of 32. */
void qm_quantize_row(qm_type t, const float *x, int n, uint8_t *dst);
void qm_dequantize_row(qm_type t, const uint8_t *src, int n, float *dst);

/* The activations' quantizer of level isa (a scalar one and an AVX2 one,
 * equal bit for bit) on n floats: q[n], and per block of 32 the scale d and
 * sum of q. For the tests; qm_matmul runs it on every row of x. */
void qm_quantize_acts(const float *x, int n, cpu_isa isa, int8_t *q, float *d, int32_t *sum);

/* Bytes of the quantized activations of T rows of cols. */
size_t qm_scratch_bytes(int T, int cols);

/* out[t * ldo + r] = sum_c x[t, c] w[r, c] (+ bias[r]) for t < T, r <
 * w->rows, with x quantized as above into scratch (qm_scratch_bytes(T,
 * cols), 4-byte aligned; NULL: allocated and freed here); isa is forced
 * (scalar when the CPU lacks it); pool (NULL: the caller's thread) splits
 * the rows. -ENOMEM (nothing written) if scratch is NULL and cannot be
 * allocated; -EINVAL for cols not a multiple of 32 or ldo < rows. */
int qm_matmul(float *out, size_t ldo, const float *x, const qm_mat *w, const float *bias,
              int T, cpu_isa isa, tp_pool *pool, void *scratch);

/* The reference: W dequantized, x as given (not quantized), double
 * accumulation. Differs from qm_matmul by x's quantization error only. */
void qm_matmul_naive(float *out, size_t ldo, const float *x, const qm_mat *w,
                     const float *bias, int T);

#endif
