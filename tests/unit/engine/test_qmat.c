/* test_qmat.c - quantized weight matrices (qmat.h):
 *   - the quantizers: ggml's Q8_0 bytes equal the GGUF writer's (an
 *     independent implementation of the same reference), hand-computed
 *     Q4_0 blocks, and every dequantized weight within half a step;
 *   - the product: the row-major (portable) kernel against the naive
 *     reference (W dequantized, x exact) within the bound that x's
 *     quantization allows, computed per output; on the packed layout, each
 *     ISA level's kernel against the row-major one (the same integer sums:
 *     equal to float rounding), writing nothing past the last row;
 *     T not a multiple of the kernels' 4 tokens, rows not a multiple of the
 *     pool's chunks, a bias, a wider ldo, a thread pool; bad shapes;
 *   - the packed layout, padded when rows % 4: its rows dequantize to the
 *     same weights. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gguf.h"
#include "gguf_writer.h"
#include "qmat.h"
#include "rng.h"
#include "safetensors.h"
#include "threadpool.h"

static float *rand_floats(size_t n, uint64_t seed, float scale)
{
    float *x = malloc(n * sizeof(float));
    assert_non_null(x);
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)(2 * rng_uniform(&r) - 1);
    return x;
}

static float block_d(const uint8_t *blk)
{
    uint16_t h;
    memcpy(&h, blk, 2);
    return st_f16_to_f32(h);
}

static void test_q8_0_matches_gguf_writer(void **state)
{
    (void)state;
    const int R = 3, C = 96;
    float *w = rand_floats((size_t)R * C, 1, 2.0f);
    w[5] = 0; /* and an all-zero block */
    for (int i = 32; i < 64; i++)
        w[i] = 0;
    char *dir = tu_tmpdir("qmat"), path[512], err[256];
    tu_join(path, sizeof path, dir, "q8.gguf");
    gguf_writer *gw;
    assert_int_equal(gguf_writer_new(&gw), 0);
    int64_t shape[2] = {R, C};
    assert_int_equal(gguf_writer_add_tensor(gw, "w", 2, shape, GGUF_WRITER_Q8_0, w), 0);
    assert_int_equal(gguf_writer_write(gw, path, err, sizeof err), 0);
    gguf_writer_free(gw);
    gguf_file *f;
    assert_int_equal(gguf_open(&f, path, err, sizeof err), 0);
    const gguf_tensor *t = gguf_find_tensor(f, "w");
    uint8_t *mine = malloc(qm_row_bytes(QM_Q8_0, C) * R);
    for (int r = 0; r < R; r++)
        qm_quantize_row(QM_Q8_0, w + (size_t)r * C, C, mine + r * qm_row_bytes(QM_Q8_0, C));
    assert_int_equal(t->nbytes, qm_row_bytes(QM_Q8_0, C) * R);
    assert_memory_equal(mine, t->data, t->nbytes);
    gguf_close(f);
    unlink(path);
    rmdir(dir);
    free(dir), free(mine), free(w);
}

static void test_roundtrip(void **state)
{
    (void)state;
    const int C = 256;
    float *x = rand_floats(C, 2, 3.0f), y[256];
    for (int k = 0; k < 2; k++) {
        qm_type t = k ? QM_Q4_0 : QM_Q8_0;
        uint8_t buf[256 * 2];
        qm_quantize_row(t, x, C, buf);
        qm_dequantize_row(t, buf, C, y);
        for (int b = 0; b < C / 32; b++) {
            float d = fabsf(block_d(buf + b * qm_block_bytes(t)));
            for (int i = 0; i < 32; i++) {
                float e = fabsf(y[b * 32 + i] - x[b * 32 + i]);
                /* half a step (Q4_0: a whole one where 8 steps up is clamped to 7),
                 * plus the f16 rounding of the scale over 127 or 8 steps */
                float step = t == QM_Q8_0 ? 0.5f * d : d;
                if (e > step + d * (t == QM_Q8_0 ? 127 : 8) * 0x1p-11f + 1e-6f)
                    fail_msg("%s element %d: %.6f -> %.6f (step %.6f)", qm_type_name(t),
                             b * 32 + i, x[b * 32 + i], y[b * 32 + i], d);
            }
        }
    }
    /* Q4_0 by hand: the largest magnitude (-4) maps to q = 0 (d = 0.5) */
    float blk[32] = {0};
    blk[0] = -4.0f, blk[1] = 1.0f, blk[16] = 3.9f, blk[17] = 0.2f;
    uint8_t q[18];
    qm_quantize_row(QM_Q4_0, blk, 32, q);
    assert_true(block_d(q) == 0.5f);
    assert_int_equal(q[2], 0 | 15 << 4);   /* -4 -> 0; 3.9/0.5 + 8.5 = 16.3 -> 15 */
    assert_int_equal(q[3], 10 | 8 << 4);   /* 1 -> 10; 0.2/0.5 + 8.5 = 8.9 -> 8 */
    assert_int_equal(q[4], 8 | 8 << 4);    /* zeros -> 8 */
    free(x);
}

/* |qm_matmul - exact| may be up to sum_c |w_c| |x_c - xq_c|, with
 * |x_c - xq_c| <= d_x / 2 = max|x in block| / 254 (plus float rounding). */
static double err_bound(const float *x, const float *wd, int C)
{
    double b = 0;
    for (int k = 0; k < C / 32; k++) {
        double amax = 0, sw = 0;
        for (int i = 0; i < 32; i++) {
            amax = fmax(amax, fabs(x[k * 32 + i]));
            sw += fabs(wd[k * 32 + i]);
        }
        b += sw * amax / 254.0 * 1.001;
    }
    return b + 1e-4;
}

static void check_product(qm_type type, int R, int C, int T, tp_pool *pool)
{
    float *w = rand_floats((size_t)R * C, 10 + T, 1.0f);
    float *x = rand_floats((size_t)T * C, 20 + T, 2.0f);
    float *bias = rand_floats((size_t)R, 30, 0.5f);
    size_t rb = qm_row_bytes(type, C), ldo = (size_t)R + 3;
    uint8_t *wq = malloc(rb * R);
    float *wd = malloc((size_t)R * C * sizeof(float));
    for (int r = 0; r < R; r++) {
        qm_quantize_row(type, w + (size_t)r * C, C, wq + r * rb);
        qm_dequantize_row(type, wq + r * rb, C, wd + (size_t)r * C);
    }
    qm_mat m = {.type = type, .rows = R, .cols = C, .data = wq};
    float *ref = calloc(T * ldo, sizeof(float)), *scalar = calloc(T * ldo, sizeof(float));
    float *got = calloc(T * ldo, sizeof(float));
    qm_matmul_naive(ref, ldo, x, &m, bias, T);
    assert_int_equal(qm_matmul(scalar, ldo, x, &m, bias, T, CPU_ISA_SCALAR, pool, NULL), 0);
    for (int t = 0; t < T; t++)
        for (int r = 0; r < R; r++) {
            double bound = err_bound(x + (size_t)t * C, wd + (size_t)r * C, C);
            double e = fabs(scalar[t * ldo + r] - ref[t * ldo + r]);
            if (e > bound)
                fail_msg("%s T %d token %d row %d: %.6f vs exact %.6f (bound %.6f)",
                         qm_type_name(type), T, t, r, scalar[t * ldo + r], ref[t * ldo + r],
                         bound);
        }
    /* the packed layouts, 16 and 32 rows a panel (the last panel padded):
     * the same rows, and every ISA's kernel gives the row-major scalar
     * products on either */
    float *row = malloc((size_t)C * sizeof(float));
    for (int P = QM_GROUP; P <= QM_PANEL_MAX; P *= 2) {
        qm_mat pk, dflt;
        size_t bytes = qm_mat_bytes(&(qm_mat){.type = type, .rows = R, .cols = C, .packed = P});
        uint8_t *buf = malloc(bytes), *buf2 = malloc(bytes);
        assert_int_equal(qm_pack_panel(&m, P, buf, &pk), 0);
        assert_int_equal(pk.packed, P);
        assert_int_equal(qm_pack(&pk, buf, &pk), -EINVAL);
        if (P == qm_pack_panel_rows()) { /* qm_pack: this CPU's layout */
            assert_int_equal(qm_pack(&m, buf2, &dflt), 0);
            assert_int_equal(dflt.packed, P);
            assert_memory_equal(buf, buf2, bytes);
        }
        free(buf2);
        for (int r = 0; r < R; r++) {
            qm_mat_row(&pk, r, row);
            assert_memory_equal(row, wd + (size_t)r * C, (size_t)C * sizeof(float));
        }
        for (int isa = CPU_ISA_SCALAR; isa < CPU_ISA_COUNT; isa++) {
            if (!cpu_isa_supported((cpu_isa)isa))
                continue;
            for (size_t i = 0; i < T * ldo; i++)
                got[i] = -7.0f; /* the columns past R must stay untouched */
            assert_int_equal(qm_matmul(got, ldo, x, &pk, bias, T, (cpu_isa)isa, pool, NULL), 0);
            for (int t = 0; t < T; t++)
                for (size_t r = 0; r < ldo; r++) {
                    float g = got[t * ldo + r], want = r < (size_t)R ? scalar[t * ldo + r] : -7.0f;
                    if (fabsf(g - want) > 1e-4f * (1 + fabsf(want)))
                        fail_msg("%s packed %d %s T %d [%d, %zu]: %.7f, row-major scalar %.7f",
                                 qm_type_name(type), P, cpu_isa_name((cpu_isa)isa), T, t, r, g,
                                 want);
                }
        }
        free(buf);
    }
    free(row);
    free(w), free(x), free(bias), free(wq), free(wd), free(ref), free(scalar), free(got);
}

static void test_product(void **state)
{
    (void)state;
    tp_pool *pool;
    assert_int_equal(tp_create(&pool, 2), 0);
    const int Ts[] = {1, 3, 4, 5, 17};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizeof Ts / sizeof Ts[0]; i++) {
            check_product(k ? QM_Q4_0 : QM_Q8_0, 37, 96, Ts[i], NULL);
            check_product(k ? QM_Q4_0 : QM_Q8_0, 203, 256, Ts[i], pool);
            check_product(k ? QM_Q4_0 : QM_Q8_0, 64, 96, Ts[i], NULL);
            check_product(k ? QM_Q4_0 : QM_Q8_0, 196, 256, Ts[i], pool);
        }
    /* more tokens than one pass of the packed kernels takes (64) */
    check_product(QM_Q8_0, 203, 96, 70, pool);
    check_product(QM_Q4_0, 40, 64, 130, NULL);
    tp_free(pool);
}

/* The SIMD activation quantizer equals the scalar one bit for bit, ties
 * (x / d exactly k + 0.5) included, and all-zero blocks. */
static void test_activation_quantizer(void **state)
{
    (void)state;
    const int n = 256, nb = n / QM_BLOCK;
    float *x = rand_floats(n, 9, 3.0f);
    for (int i = 64; i < 96; i++)
        x[i] = 0;
    /* block 3: max 127 so d = 1: halves round to even */
    for (int i = 96; i < 128; i++)
        x[i] = (float)(i - 112) + 0.5f;
    x[127] = 127.0f;
    int8_t q0[256], q1[256];
    float d0[8], d1[8];
    int32_t s0[8], s1[8];
    qm_quantize_acts(x, n, CPU_ISA_SCALAR, q0, d0, s0);
    assert_int_equal(q0[96], -16); /* -15.5 -> -16 */
    assert_int_equal(q0[97], -14); /* -14.5 -> -14 */
    for (int isa = CPU_ISA_AVX2; isa < CPU_ISA_COUNT; isa++) {
        if (!cpu_isa_supported((cpu_isa)isa))
            continue;
        qm_quantize_acts(x, n, (cpu_isa)isa, q1, d1, s1);
        assert_memory_equal(q0, q1, sizeof q0);
        assert_memory_equal(d0, d1, sizeof d0);
        assert_memory_equal(s0, s1, sizeof s0);
    }
    for (int b = 0; b < nb; b++) {
        int32_t s = 0;
        for (int i = 0; i < QM_BLOCK; i++)
            s += q0[b * QM_BLOCK + i];
        assert_int_equal(s, s0[b]);
    }
    free(x);
}

static void test_bad_shapes(void **state)
{
    (void)state;
    uint8_t data[128] = {0}; /* 2 rows of Q8_0 for qm_pack_panel */
    float x[40] = {0}, out[4];
    qm_mat m = {.type = QM_Q8_0, .rows = 1, .cols = 40, .data = data};
    assert_int_equal(qm_matmul(out, 1, x, &m, NULL, 1, CPU_ISA_SCALAR, NULL, NULL), -EINVAL);
    m.cols = 32;
    m.rows = 2;
    assert_int_equal(qm_matmul(out, 1, x, &m, NULL, 1, CPU_ISA_SCALAR, NULL, NULL), -EINVAL);
    assert_int_equal(qm_matmul(out, 2, x, &m, NULL, 0, CPU_ISA_SCALAR, NULL, NULL), 0);
    qm_mat pk;
    uint8_t buf[2 * 1088];
    assert_int_equal(qm_pack_panel(&m, 8, buf, &pk), -EINVAL); /* panels are 16 or 32 rows */
    assert_int_equal(qm_pack_panel(&m, QM_PANEL_MAX, buf, &pk), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8_0_matches_gguf_writer),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_product),
        cmocka_unit_test(test_activation_quantizer),
        cmocka_unit_test(test_bad_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
