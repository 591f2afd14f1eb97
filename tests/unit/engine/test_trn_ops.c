/* test_trn_ops.c - every training kernel's backward pass against central
 * finite differences of its forward pass, in double precision (the _f64
 * instantiation of the same source as the float kernels), on small shapes;
 * and the float kernels against the double ones and against the inference
 * kernels (ops.h) they must agree with.
 *
 * Method: loss = sum(out * G) for a fixed random G; the analytic gradient is
 * the backward pass fed dout = G; the numeric one perturbs each input by
 * +-h and divides the loss difference by 2h. */
#include "tu_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_ops.h"

#define FD_H 1e-6
#define FD_TOL 1e-6 /* max |analytic - numeric| / max(1, |numeric|) */

static rng g_rng;

static double *rnd(size_t n, double scale)
{
    double *a = malloc(n * sizeof(double));
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = (2 * rng_uniform(&g_rng) - 1) * scale;
    return a;
}

static double *zeros(size_t n)
{
    double *a = calloc(n, sizeof(double));
    assert_non_null(a);
    return a;
}

/* A forward pass under test: computes the scalar loss from the inputs held
 * in ctx. */
typedef double (*loss_fn)(void *ctx);

/* Compares grad[n] with central differences of f over x[n]. */
static void check_grad(const char *what, loss_fn f, void *ctx, double *x, const double *grad,
                       size_t n)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + FD_H;
        double lp = f(ctx);
        x[i] = keep - FD_H;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * FD_H);
        double e = fabs(grad[i] - num) / fmax(1.0, fabs(num));
        if (e > worst) {
            worst = e;
            at = i;
        }
    }
    if (worst > FD_TOL)
        fail_msg("%s: gradient element %zu off by %.3g (relative) from finite differences",
                 what, at, worst);
}

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

/* ---- matmul ------------------------------------------------------------- */

typedef struct mm_ctx {
    int T, C, OC;
    double *x, *w, *b, *G, *y;
} mm_ctx;

static double mm_loss(void *p)
{
    mm_ctx *c = p;
    trn_matmul_fwd_f64(c->y, c->OC, c->x, c->C, c->w, c->b, c->T, c->C, c->OC);
    return dot(c->y, c->G, (size_t)c->T * c->OC);
}

static void test_matmul(void **state)
{
    (void)state;
    mm_ctx c = {.T = 5, .C = 7, .OC = 6};
    c.x = rnd(35, 1);
    c.w = rnd(42, 1);
    c.b = rnd(6, 1);
    c.G = rnd(30, 1);
    c.y = zeros(30);
    double *dx = zeros(35), *dw = zeros(42), *db = zeros(6);
    trn_matmul_bwd_f64(dx, 7, dw, db, c.G, 6, c.x, c.w, 5, 7, 6);
    check_grad("matmul dx", mm_loss, &c, c.x, dx, 35);
    check_grad("matmul dw", mm_loss, &c, c.w, dw, 42);
    check_grad("matmul db", mm_loss, &c, c.b, db, 6);
    /* backward accumulates: a second call doubles the gradients */
    double keep = dw[3];
    trn_matmul_bwd_f64(NULL, 7, dw, NULL, c.G, 6, c.x, c.w, 5, 7, 6);
    assert_true(fabs(dw[3] - 2 * keep) < 1e-12);
    free(c.x), free(c.w), free(c.b), free(c.G), free(c.y), free(dx), free(dw), free(db);
}

/* ---- norms -------------------------------------------------------------- */

typedef struct norm_ctx {
    int T, C, layer;
    double *x, *w, *b, *G, *y, *m, *r;
} norm_ctx;

static double norm_loss(void *p)
{
    norm_ctx *c = p;
    if (c->layer)
        trn_layernorm_fwd_f64(c->y, c->m, c->r, c->x, c->w, c->b, c->T, c->C, 1e-5);
    else
        trn_rmsnorm_fwd_f64(c->y, c->r, c->x, c->w, c->T, c->C, 1e-5);
    return dot(c->y, c->G, (size_t)c->T * c->C);
}

static void run_norm(int layer)
{
    norm_ctx c = {.T = 4, .C = 9, .layer = layer};
    size_t n = 36;
    c.x = rnd(n, 2);
    c.w = rnd(9, 1);
    c.b = rnd(9, 1);
    c.G = rnd(n, 1);
    c.y = zeros(n);
    c.m = zeros(4);
    c.r = zeros(4);
    double *dx = zeros(n), *dw = zeros(9), *db = zeros(9);
    norm_loss(&c);
    if (layer)
        trn_layernorm_bwd_f64(dx, dw, db, c.G, c.x, c.w, c.m, c.r, 4, 9);
    else
        trn_rmsnorm_bwd_f64(dx, dw, c.G, c.x, c.w, c.r, 4, 9);
    check_grad(layer ? "layernorm dx" : "rmsnorm dx", norm_loss, &c, c.x, dx, n);
    check_grad(layer ? "layernorm dw" : "rmsnorm dw", norm_loss, &c, c.w, dw, 9);
    if (layer)
        check_grad("layernorm db", norm_loss, &c, c.b, db, 9);
    free(c.x), free(c.w), free(c.b), free(c.G), free(c.y), free(c.m), free(c.r);
    free(dx), free(dw), free(db);
}

static void test_rmsnorm(void **state)
{
    (void)state;
    run_norm(0);
}

static void test_layernorm(void **state)
{
    (void)state;
    run_norm(1);
}

/* ---- rope --------------------------------------------------------------- */

typedef struct rope_ctx {
    int T, NH, HS, n_rot;
    ops_rope_layout layout;
    int32_t pos[3];
    double inv_freq[4];
    double *x, *G, *y;
} rope_ctx;

static double rope_loss(void *p)
{
    rope_ctx *c = p;
    size_t n = (size_t)c->T * c->NH * c->HS;
    memcpy(c->y, c->x, n * sizeof(double));
    trn_rope_f64(c->y, (size_t)c->NH * c->HS, c->pos, c->T, c->NH, c->HS, c->n_rot, c->layout,
                 c->inv_freq, 1.0, 0);
    return dot(c->y, c->G, n);
}

static void test_rope(void **state)
{
    (void)state;
    for (int layout = 0; layout < 2; layout++) {
        rope_ctx c = {.T = 3, .NH = 2, .HS = 8, .n_rot = 6, .layout = layout,
                      .pos = {0, 5, 17}};
        for (int i = 0; i < 3; i++)
            c.inv_freq[i] = pow(10000.0, -2.0 * i / 6);
        size_t n = 48;
        c.x = rnd(n, 1);
        c.G = rnd(n, 1);
        c.y = zeros(n);
        double *dx = malloc(n * sizeof(double));
        memcpy(dx, c.G, n * sizeof(double));
        trn_rope_f64(dx, 16, c.pos, 3, 2, 8, 6, layout, c.inv_freq, 1.0, 1);
        check_grad("rope dx", rope_loss, &c, c.x, dx, n);
        /* the float kernel matches the inference kernel */
        float xf[48], yf[48], inv[3];
        ops_rope_inv_freq(inv, 6, 10000.0);
        for (size_t i = 0; i < n; i++)
            xf[i] = yf[i] = (float)c.x[i];
        trn_rope_f32(xf, 16, c.pos, 3, 2, 8, 6, layout, inv, 1.0f, 0);
        for (int t = 0; t < 3; t++)
            ops_rope(yf + t * 16, 2, 8, 6, layout, inv, 1.0f, c.pos[t]);
        for (size_t i = 0; i < n; i++)
            assert_true(fabsf(xf[i] - yf[i]) < 1e-6f);
        free(c.x), free(c.G), free(c.y), free(dx);
    }
}

/* ---- attention ---------------------------------------------------------- */

typedef struct attn_ctx {
    int B, L, NH, NKV, HS;
    int32_t lens[2];
    double *qkv, *G, *out, *probs;
} attn_ctx;

static double attn_loss(void *p)
{
    attn_ctx *c = p;
    size_t ldq = (size_t)(c->NH + 2 * c->NKV) * c->HS;
    trn_attn_fwd_f64(c->out, c->probs, c->qkv, ldq, 0, c->NH * c->HS,
                     (c->NH + c->NKV) * c->HS, c->lens, c->B, c->L, c->NH, c->NKV, c->HS,
                     1 / sqrt((double)c->HS));
    double s = 0;
    /* only real (non-pad) tokens count, as in training */
    for (int b = 0; b < c->B; b++)
        for (int i = 0; i < c->lens[b]; i++) {
            size_t t = (size_t)b * c->L + i, w = (size_t)c->NH * c->HS;
            s += dot(c->out + t * w, c->G + t * w, w);
        }
    return s;
}

static void test_attention(void **state)
{
    (void)state;
    attn_ctx c = {.B = 2, .L = 5, .NH = 4, .NKV = 2, .HS = 3, .lens = {5, 3}};
    size_t ldq = (size_t)(c.NH + 2 * c.NKV) * c.HS, T = 10, w = (size_t)c.NH * c.HS;
    c.qkv = rnd(T * ldq, 1);
    c.G = rnd(T * w, 1);
    for (int i = 3; i < 5; i++) /* pads get no upstream gradient */
        memset(c.G + (5 + i) * w, 0, w * sizeof(double));
    c.out = zeros(T * w);
    c.probs = zeros((size_t)c.B * c.NH * c.L * c.L);
    attn_loss(&c);
    double *dqkv = zeros(T * ldq), *scratch = zeros(2 * 25);
    trn_attn_bwd_f64(dqkv, c.G, c.qkv, ldq, 0, 12, 18, c.probs, c.lens, 2, 5, 4, 2, 3,
                     1 / sqrt(3.0), scratch);
    check_grad("attention dqkv", attn_loss, &c, c.qkv, dqkv, T * ldq);
    /* a pad key never reaches a real query: its k/v gradient is zero */
    for (int i = 3; i < 5; i++)
        for (size_t j = 12; j < ldq; j++)
            assert_true(dqkv[(5 + i) * ldq + j] == 0.0);
    /* causal: the last key of a full sequence only reaches the last query */
    assert_true(c.probs[(size_t)0 * 25 + 0 * 5 + 4] == 0.0);
    free(c.qkv), free(c.G), free(c.out), free(c.probs), free(dqkv), free(scratch);
}

static void test_attention_matches_inference(void **state)
{
    (void)state;
    /* one sequence of 6 tokens; query t against keys 0..t with ops_attention */
    int L = 6, NH = 4, NKV = 2, HS = 4;
    size_t ldq = (size_t)(NH + 2 * NKV) * HS;
    float qkv[6 * 32], out[6 * 16], probs[4 * 36], att[6], ref[16];
    for (size_t i = 0; i < 6 * ldq; i++)
        qkv[i] = (float)(2 * rng_uniform(&g_rng) - 1);
    int32_t len = L;
    trn_attn_fwd_f32(out, probs, qkv, ldq, 0, NH * HS, (NH + NKV) * HS, &len, 1, L, NH, NKV,
                     HS, 0.5f);
    for (int t = 0; t < L; t++) {
        ops_attention(ref, qkv + t * ldq, qkv + NH * HS, qkv + (NH + NKV) * HS, ldq, t + 1, NH,
                      NKV, HS, 0.5f, att);
        for (int i = 0; i < NH * HS; i++)
            assert_true(fabsf(ref[i] - out[t * NH * HS + i]) < 1e-5f);
    }
}

/* ---- activations -------------------------------------------------------- */

typedef struct act_ctx {
    int T, FF, swiglu;
    double *x, *G, *y;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    size_t n = (size_t)c->T * c->FF;
    if (c->swiglu)
        trn_swiglu_fwd_f64(c->y, c->x, c->T, c->FF);
    else
        trn_gelu_fwd_f64(c->y, c->x, n);
    return dot(c->y, c->G, n);
}

static void test_activations(void **state)
{
    (void)state;
    for (int sw = 0; sw < 2; sw++) {
        act_ctx c = {.T = 3, .FF = 5, .swiglu = sw};
        size_t nin = (size_t)3 * 5 * (sw ? 2 : 1);
        c.x = rnd(nin, 3);
        c.G = rnd(15, 1);
        c.y = zeros(15);
        double *dx = zeros(nin);
        if (sw)
            trn_swiglu_bwd_f64(dx, c.G, c.x, 3, 5);
        else
            trn_gelu_bwd_f64(dx, c.G, c.x, 15);
        check_grad(sw ? "swiglu" : "gelu", act_loss, &c, c.x, dx, nin);
        free(c.x), free(c.G), free(c.y), free(dx);
    }
    /* float gelu equals the inference kernel */
    float a[64], b[64];
    for (int i = 0; i < 64; i++)
        a[i] = b[i] = (float)(i - 32) / 8;
    trn_gelu_fwd_f32(a, a, 64);
    ops_gelu_tanh(b, 64);
    for (int i = 0; i < 64; i++)
        assert_true(fabsf(a[i] - b[i]) < 1e-6f);
}

/* ---- log-probs (cross-entropy) ------------------------------------------ */

typedef struct lp_ctx {
    int T, V;
    int32_t target[4];
    double *logits, *G, *logp, *lse;
} lp_ctx;

static double lp_loss(void *p)
{
    lp_ctx *c = p;
    trn_logprob_fwd_f64(c->logp, c->lse, c->logits, c->target, c->T, c->V);
    return dot(c->logp, c->G, (size_t)c->T);
}

static void test_logprob(void **state)
{
    (void)state;
    lp_ctx c = {.T = 4, .V = 11, .target = {3, -1, 10, 0}};
    c.logits = rnd(44, 4);
    c.G = rnd(4, 1);
    c.logp = zeros(4);
    c.lse = zeros(4);
    lp_loss(&c);
    assert_true(c.logp[1] == 0.0);
    double s = 0;
    for (int v = 0; v < 11; v++)
        s += exp(c.logits[v] - c.lse[0]);
    assert_true(fabs(s - 1) < 1e-12);
    double *d = zeros(44);
    trn_logprob_bwd_f64(d, c.logits, c.lse, c.target, c.G, 4, 11);
    check_grad("logprob", lp_loss, &c, c.logits, d, 44);
    /* in place (lse of the unperturbed logits again) */
    lp_loss(&c);
    memset(d, 0, 44 * sizeof(double));
    trn_logprob_bwd_f64(d, c.logits, c.lse, c.target, c.G, 4, 11);
    double *inplace = malloc(44 * sizeof(double));
    memcpy(inplace, c.logits, 44 * sizeof(double));
    trn_logprob_bwd_f64(inplace, inplace, c.lse, c.target, c.G, 4, 11);
    for (int i = 0; i < 44; i++)
        assert_true(fabs(inplace[i] - d[i]) < 1e-15);
    free(c.logits), free(c.G), free(c.logp), free(c.lse), free(d), free(inplace);
}

/* ---- embedding ---------------------------------------------------------- */

static void test_embed(void **state)
{
    (void)state;
    double table[5 * 2] = {0}, dx[3 * 2] = {1, 2, 3, 4, 5, 6};
    int32_t tok[3] = {4, 1, 4};
    trn_embed_bwd_f64(table, dx, tok, 3, 2);
    assert_true(table[8] == 6 && table[9] == 8 && table[2] == 3 && table[3] == 4);
    assert_true(table[0] == 0);
}

/* ---- float vs double ---------------------------------------------------- */

static void test_f32_matches_f64(void **state)
{
    (void)state;
    /* layernorm + matmul backward in float against double */
    enum { T = 6, C = 16, OC = 12 };
    double x[T * C], w[OC * C], g[T * OC], dx[T * C] = {0}, dw[OC * C] = {0};
    float xf[T * C], wf[OC * C], gf[T * OC], dxf[T * C] = {0}, dwf[OC * C] = {0};
    for (int i = 0; i < T * C; i++)
        xf[i] = (float)(x[i] = 2 * rng_uniform(&g_rng) - 1);
    for (int i = 0; i < OC * C; i++)
        wf[i] = (float)(w[i] = 2 * rng_uniform(&g_rng) - 1);
    for (int i = 0; i < T * OC; i++)
        gf[i] = (float)(g[i] = 2 * rng_uniform(&g_rng) - 1);
    trn_matmul_bwd_f64(dx, C, dw, NULL, g, OC, x, w, T, C, OC);
    trn_matmul_bwd_f32(dxf, C, dwf, NULL, gf, OC, xf, wf, T, C, OC);
    for (int i = 0; i < T * C; i++)
        assert_true(fabs(dx[i] - dxf[i]) < 1e-5);
    for (int i = 0; i < OC * C; i++)
        assert_true(fabs(dw[i] - dwf[i]) < 1e-5);
}

int main(void)
{
    rng_seed(&g_rng, 20261128);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_matches_inference),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_logprob),
        cmocka_unit_test(test_embed),
        cmocka_unit_test(test_f32_matches_f64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
