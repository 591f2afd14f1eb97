/* test_ops.c - every fast kernel against its naive reference (or the closed
 * form) on random inputs; the weight conversions and arena; the KV cache. */
#include "tu_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_cache.h"
#include "ops.h"
#include "weights.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;

static float frand(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static float *rand_vec(size_t n, float scale) {
    float *v = malloc((n ? n : 1) * sizeof(float));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++) v[i] = frand() * scale;
    return v;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* ---- matmul -------------------------------------------------------------- */

static void test_matmul(void **state) {
    (void)state;
    const int Ts[] = {1, 2, 7, 33};
    for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++)
        for (int with_bias = 0; with_bias < 2; with_bias++) {
            int T = Ts[ti], C = 37, OC = 29;
            size_t ldo = (size_t)OC + 5;
            float *x = rand_vec((size_t)T * C, 1), *w = rand_vec((size_t)OC * C, 1);
            float *b = with_bias ? rand_vec((size_t)OC, 1) : NULL;
            float *o1 = rand_vec((size_t)T * ldo, 1), *o2 = malloc((size_t)T * ldo * sizeof(float));
            memcpy(o2, o1, (size_t)T * ldo * sizeof(float));
            ops_matmul(o1, ldo, x, w, b, T, C, OC);
            ops_matmul_naive(o2, ldo, x, w, b, T, C, OC);
            /* the padding columns are untouched by both */
            double m = max_abs_diff(o1, o2, (size_t)T * ldo);
            if (m > 1e-4) fail_msg("matmul T=%d bias=%d: max diff %g", T, with_bias, m);
            free(x);
            free(w);
            free(b);
            free(o1);
            free(o2);
        }
}

/* ---- norms --------------------------------------------------------------- */

static void test_norms(void **state) {
    (void)state;
    int C = 257;
    float *x = rand_vec((size_t)C, 3), *w = rand_vec((size_t)C, 1), *b = rand_vec((size_t)C, 1);
    float *o1 = malloc((size_t)C * sizeof(float)), *o2 = malloc((size_t)C * sizeof(float));
    ops_rmsnorm(o1, x, w, C, 1e-5f);
    ops_rmsnorm_naive(o2, x, w, C, 1e-5f);
    assert_true(max_abs_diff(o1, o2, (size_t)C) < 1e-5);
    /* definition: mean of squares of (o / w) is 1 (for eps ~ 0) */
    double ss = 0;
    for (int i = 0; i < C; i++) ss += (double)(o2[i] / w[i]) * (o2[i] / w[i]);
    assert_true(fabs(ss / C - 1.0) < 1e-3);
    ops_layernorm(o1, x, w, b, C, 1e-5f);
    ops_layernorm_naive(o2, x, w, b, C, 1e-5f);
    assert_true(max_abs_diff(o1, o2, (size_t)C) < 1e-5);
    ops_layernorm(o1, x, w, NULL, C, 1e-12f);
    ops_layernorm_naive(o2, x, w, NULL, C, 1e-12f);
    assert_true(max_abs_diff(o1, o2, (size_t)C) < 1e-5);
    /* in place */
    memcpy(o1, x, (size_t)C * sizeof(float));
    ops_layernorm(o1, o1, w, b, C, 1e-5f);
    ops_layernorm_naive(o2, x, w, b, C, 1e-5f);
    assert_true(max_abs_diff(o1, o2, (size_t)C) < 1e-5);
    free(x);
    free(w);
    free(b);
    free(o1);
    free(o2);
}

/* ---- rope ---------------------------------------------------------------- */

static void test_rope(void **state) {
    (void)state;
    const int NH = 3, HS = 16;
    const int n_rots[] = {16, 8};
    const double thetas[] = {10000.0, 500000.0};
    const int poss[] = {0, 1, 17, 511};
    float inv[8];
    for (int layout = 0; layout < 2; layout++)
        for (int ri = 0; ri < 2; ri++)
            for (int th = 0; th < 2; th++)
                for (int pi = 0; pi < 4; pi++) {
                    int n_rot = n_rots[ri];
                    float *x = rand_vec((size_t)NH * HS, 1);
                    float y[3 * 16];
                    memcpy(y, x, sizeof y);
                    ops_rope_inv_freq(inv, n_rot, thetas[th]);
                    ops_rope(x, NH, HS, n_rot, (ops_rope_layout)layout, inv, 1.0f, poss[pi]);
                    ops_rope_naive(y, NH, HS, n_rot, (ops_rope_layout)layout, thetas[th], 1.0f,
                                   poss[pi]);
                    /* float angles at pos 511 lose a few ulps */
                    double m = max_abs_diff(x, y, (size_t)NH * HS);
                    if (m > 2e-4)
                        fail_msg("rope layout %d n_rot %d pos %d: diff %g", layout, n_rot,
                                 poss[pi], m);
                    /* position 0 is the identity; norms are preserved */
                    free(x);
                }
    /* The two layouts agree up to the GGUF converter's permutation: with
     * a[2i] = x[i], a[2i+1] = x[i + HS/2] per head, rope_adjacent(a) is the
     * same permutation of rope_half(x). */
    float x[3 * 16], a[3 * 16];
    for (int i = 0; i < NH * HS; i++) x[i] = frand();
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HS / 2; i++) {
            a[h * HS + 2 * i] = x[h * HS + i];
            a[h * HS + 2 * i + 1] = x[h * HS + i + HS / 2];
        }
    ops_rope_inv_freq(inv, HS, 500000.0);
    ops_rope(x, NH, HS, HS, OPS_ROPE_HALF, inv, 1.0f, 37);
    ops_rope(a, NH, HS, HS, OPS_ROPE_ADJACENT, inv, 1.0f, 37);
    for (int h = 0; h < NH; h++)
        for (int i = 0; i < HS / 2; i++) {
            assert_true(fabsf(a[h * HS + 2 * i] - x[h * HS + i]) < 1e-6f);
            assert_true(fabsf(a[h * HS + 2 * i + 1] - x[h * HS + i + HS / 2]) < 1e-6f);
        }
    /* linear scaling: position p with scale 1/4 equals position p/4 */
    float s1[16], s2[16];
    for (int i = 0; i < 16; i++) s1[i] = s2[i] = frand();
    ops_rope(s1, 1, 16, 16, OPS_ROPE_HALF, inv, 0.25f, 40);
    ops_rope(s2, 1, 16, 16, OPS_ROPE_HALF, inv, 1.0f, 10);
    assert_true(max_abs_diff(s1, s2, 16) < 1e-6);
}

/* ---- softmax and activations --------------------------------------------- */

static void test_softmax(void **state) {
    (void)state;
    const int ns[] = {1, 5, 1000};
    for (int k = 0; k < 3; k++) {
        int n = ns[k];
        float *x = rand_vec((size_t)n, 20), *y = malloc((size_t)n * sizeof(float));
        x[n / 2] += 1000.0f; /* overflow without max subtraction */
        memcpy(y, x, (size_t)n * sizeof(float));
        ops_softmax(x, n);
        ops_softmax_naive(y, n);
        assert_true(max_abs_diff(x, y, (size_t)n) < 1e-6);
        double s = 0;
        for (int i = 0; i < n; i++) s += x[i];
        assert_true(fabs(s - 1.0) < 1e-5);
        free(x);
        free(y);
    }
}

static void test_activations(void **state) {
    (void)state;
    size_t n = 301;
    float *x = rand_vec(n, 8), *g = malloc(n * sizeof(float)), *s = malloc(n * sizeof(float));
    float *u = rand_vec(n, 2), *sw = malloc(n * sizeof(float));
    memcpy(g, x, n * sizeof(float));
    memcpy(s, x, n * sizeof(float));
    ops_gelu_tanh(g, n);
    ops_silu(s, n);
    ops_swiglu(sw, x, u, n);
    for (size_t i = 0; i < n; i++) {
        double v = x[i];
        double ge = 0.5 * v * (1 + tanh(sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
        double si = v / (1 + exp(-v));
        assert_true(fabs(g[i] - ge) < 1e-5);
        assert_true(fabs(s[i] - si) < 1e-5);
        assert_true(fabs(sw[i] - si * u[i]) < 1e-5);
    }
    free(x);
    free(g);
    free(s);
    free(u);
    free(sw);
}

/* ---- attention ----------------------------------------------------------- */

static void check_attention(int NH, int NKV, int HS, int T, int past) {
    int TK = past + T;
    int qd = NH * HS, kd = NKV * HS;
    float *q = rand_vec((size_t)T * qd, 2), *k = rand_vec((size_t)TK * kd, 2),
          *v = rand_vec((size_t)TK * kd, 1);
    float *o1 = malloc((size_t)T * qd * sizeof(float)), *o2 = malloc((size_t)T * qd * sizeof(float));
    float *att = malloc((size_t)TK * sizeof(float));
    unsigned char *mask = calloc((size_t)T * TK, 1);
    /* causal: query t sits at position past + t */
    for (int t = 0; t < T; t++)
        for (int j = 0; j <= past + t; j++) mask[(size_t)t * TK + j] = 1;
    float scale = 1.0f / sqrtf((float)HS);
    for (int t = 0; t < T; t++)
        ops_attention(o1 + (size_t)t * qd, q + (size_t)t * qd, k, v, (size_t)kd, past + t + 1, NH,
                      NKV, HS, scale, att);
    ops_attention_naive(o2, q, k, v, mask, T, TK, NH, NKV, HS, scale);
    double m = max_abs_diff(o1, o2, (size_t)T * qd);
    if (m > 1e-5) fail_msg("attention NH %d NKV %d: diff %g", NH, NKV, m);
    /* a non-causal mask (every other key) through the reference equals the
     * fast kernel over the gathered keys */
    memset(mask, 0, (size_t)T * TK);
    int ng = 0;
    float *kg = malloc((size_t)TK * kd * sizeof(float)), *vg = malloc((size_t)TK * kd * sizeof(float));
    for (int j = 0; j < TK; j += 2, ng++) {
        mask[j] = 1;
        memcpy(kg + (size_t)ng * kd, k + (size_t)j * kd, (size_t)kd * sizeof(float));
        memcpy(vg + (size_t)ng * kd, v + (size_t)j * kd, (size_t)kd * sizeof(float));
    }
    ops_attention_naive(o2, q, k, v, mask, 1, TK, NH, NKV, HS, scale);
    ops_attention(o1, q, kg, vg, (size_t)kd, ng, NH, NKV, HS, scale, att);
    assert_true(max_abs_diff(o1, o2, (size_t)qd) < 1e-5);
    free(q);
    free(k);
    free(v);
    free(o1);
    free(o2);
    free(att);
    free(mask);
    free(kg);
    free(vg);
}

static void test_attention(void **state) {
    (void)state;
    check_attention(8, 2, 16, 6, 3); /* GQA, 4 query heads per kv head */
    check_attention(4, 4, 8, 5, 0);  /* MHA, prefill from empty */
    check_attention(4, 1, 8, 1, 40); /* MQA decode */
}

/* ---- weights ------------------------------------------------------------- */

static uint16_t f32_to_f16_exact(float f) {
    /* only for values exactly representable: sign, normal exponent, 10 bits */
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    return (uint16_t)(sign | ((uint32_t)e << 10) | ((u >> 13) & 0x3ffu));
}

static void test_weights(void **state) {
    (void)state;
    /* Q8_0: two blocks with scales 0.5 and -2 */
    unsigned char q[68];
    uint16_t d0 = f32_to_f16_exact(0.5f), d1 = f32_to_f16_exact(-2.0f);
    q[0] = (unsigned char)d0;
    q[1] = (unsigned char)(d0 >> 8);
    q[34] = (unsigned char)d1;
    q[35] = (unsigned char)(d1 >> 8);
    for (int i = 0; i < 32; i++) {
        q[2 + i] = (unsigned char)(signed char)(i - 16);
        q[36 + i] = (unsigned char)(signed char)(100 - i);
    }
    float out[64];
    wt_dequant_q8_0(out, q, 64);
    for (int i = 0; i < 32; i++) {
        assert_true(out[i] == 0.5f * (float)(i - 16));
        assert_true(out[32 + i] == -2.0f * (float)(100 - i));
    }
    /* a transposed Q8_0 view [2, 32] lands as [32, 2] */
    wt_view v = {.name = "q", .type = WT_Q8_0, .n_dims = 2, .shape = {2, 32, 1, 1},
                 .n_elements = 64, .data = q};
    float tr[64];
    wt_convert(tr, &v, 1);
    for (int r = 0; r < 2; r++)
        for (int c = 0; c < 32; c++) assert_true(tr[c * 2 + r] == out[r * 32 + c]);
    /* F16 and BF16 */
    uint16_t h[3] = {f32_to_f16_exact(1.5f), f32_to_f16_exact(-0.25f), 0};
    wt_view vh = {.name = "h", .type = WT_F16, .n_dims = 1, .shape = {3, 1, 1, 1},
                  .n_elements = 3, .data = h};
    wt_convert(out, &vh, 0);
    assert_true(out[0] == 1.5f && out[1] == -0.25f && out[2] == 0.0f);
    uint16_t bf[2] = {0x3fc0, 0xc000}; /* 1.5, -2 */
    wt_view vb = {.name = "b", .type = WT_BF16, .n_dims = 1, .shape = {2, 1, 1, 1},
                  .n_elements = 2, .data = bf};
    wt_convert(out, &vb, 0);
    assert_true(out[0] == 1.5f && out[1] == -2.0f);
    /* shape checks name the tensor */
    char err[128];
    assert_int_equal(wt_expect(&v, 2, 32, err, sizeof err), 0);
    assert_int_not_equal(wt_expect(&v, 32, 2, err, sizeof err), 0);
    assert_non_null(strstr(err, "tensor q: shape [2, 32], expected [32, 2]"));
    /* the two-pass arena */
    wt_arena a;
    wt_arena_count(&a);
    assert_null(wt_take(&a, 3));
    assert_null(wt_take(&a, 17));
    assert_int_equal(wt_arena_alloc(&a, err, sizeof err), 0);
    float *p1 = wt_take(&a, 3), *p2 = wt_take(&a, 17);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_int_equal(((uintptr_t)p2) % 64, 0);
    assert_null(wt_take(&a, 1)); /* more than was counted */
    wt_arena_free(&a);
    wt_arena_free(&a);
}

/* ---- kv cache ------------------------------------------------------------ */

static void test_kv_cache(void **state) {
    (void)state;
    kv_cache *kv = NULL;
    char err[160];
    assert_int_not_equal(kv_create(&kv, 0, 8, 4, 12, 2, 16, err, sizeof err), 0);
    assert_null(kv);
    /* 2 layers, kv_dim 8, blocks of 4 positions, 12 blocks, 3 slots of 16 */
    assert_int_equal(kv_create(&kv, 2, 8, 4, 12, 3, 16, err, sizeof err), 0);
    assert_true(kv_bytes(kv) >= 12u * 2 * 2 * 4 * 8 * sizeof(float));
    assert_int_equal(kv_seq_reserve(kv, 1, 16), 0);
    assert_int_equal(kv_seq_reserve(kv, 2, 16), 0);
    /* rows of one block are contiguous; slots never overlap */
    assert_ptr_equal(kv_k(kv, 1, 2, 5), kv_k(kv, 1, 2, 4) + 8);
    kv_k(kv, 0, 1, 3)[0] = 42.0f;
    kv_v(kv, 0, 1, 3)[0] = 7.0f;
    assert_true(kv_k(kv, 0, 2, 3)[0] == 0.0f && kv_k(kv, 1, 1, 3)[0] == 0.0f);
    assert_true(kv_v(kv, 0, 1, 3)[0] == 7.0f);
    assert_int_equal(kv_check(kv, 2, 15, err, sizeof err), 0);
    assert_int_not_equal(kv_check(kv, 3, 0, err, sizeof err), 0);
    assert_non_null(strstr(err, "sequence id 3"));
    assert_int_not_equal(kv_check(kv, 0, 16, err, sizeof err), 0);
    assert_non_null(strstr(err, "position 16"));
    kv_seq_set_len(kv, 1, 9);
    kv_seq_truncate(kv, 1, 12);
    assert_int_equal(kv_seq_len(kv, 1), 9);
    kv_seq_truncate(kv, 1, 4);
    assert_int_equal(kv_seq_len(kv, 1), 4);
    kv_seq_clear(kv, 1);
    assert_int_equal(kv_seq_len(kv, 1), 0);
    kv_free(kv);
    kv_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),     cmocka_unit_test(test_norms),
        cmocka_unit_test(test_rope),       cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_activations), cmocka_unit_test(test_attention),
        cmocka_unit_test(test_weights),    cmocka_unit_test(test_kv_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
