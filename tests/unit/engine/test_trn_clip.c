/* test_trn_clip.c - the training CLIP (trn_clip.h, trn_clip_ops.h):
 *   - each new kernel's backward pass against central finite differences
 *     of its forward pass, in double (the _f64 instantiation of the float
 *     code): patch embedding (unfold + matmul, and fold), bidirectional
 *     attention with padding (its backward is trn_attn_bwd), quick_gelu /
 *     gelu / gelu_tanh, L2 normalisation, the InfoNCE loss (against a
 *     naive loss too);
 *   - the whole model's gradient (every weight, a tiny configuration with
 *     padded captions) against finite differences of the loss in double,
 *     and the float backward against the double one;
 *   - the forward pass against the inference code (clip.h) and the
 *     transformers reference on ../shared/conformance/clip-tiny;
 *   - a saved model loads through clip_load and trn_clip_load and gives the
 *     training forward's embeddings;
 *   - the training loop learns a toy set (coloured squares, captions naming
 *     the colour) well above chance, in-batch and zero-shot on held-out
 *     images, and resumes from a checkpoint bit for bit.
 *
 * Finite differences: loss = sum(out * G) for a fixed random G; the
 * analytic gradient is the backward pass fed dout = G; the numeric one
 * perturbs each input by +-h and divides the loss difference by 2h. */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "npy.h"
#include "rng.h"
#include "trn_clip.h"
#include "trn_clip_train.h"
#include "trn_ops.h"
#include "trn_optim.h"

#define FD_H 1e-6
#define FD_TOL 1e-6 /* max |analytic - numeric| / max(1, |numeric|) */
#define CLIP_TOL 1e-4 /* against the inference code and transformers */

static rng g_rng;
static char err[512];

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

static double dot(const double *a, const double *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

typedef double (*loss_fn)(void *ctx);

/* Compares grad[n] with central differences of f over x[n]; returns the
 * largest numeric gradient. */
static double check_grad_n(const char *what, loss_fn f, void *ctx, double *x,
                           const double *grad, size_t n)
{
    double worst = 0, biggest = 0;
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
        biggest = fmax(biggest, fabs(num));
        if (e > worst) {
            worst = e;
            at = i;
        }
    }
    if (worst > FD_TOL)
        fail_msg("%s: gradient element %zu off by %.3g (relative) from finite differences",
                 what, at, worst);
    return biggest;
}

/* check_grad_n, and a check of zeros against zeros proves nothing. */
static void check_grad(const char *what, loss_fn f, void *ctx, double *x, const double *grad,
                       size_t n)
{
    assert_true(check_grad_n(what, f, ctx, x, grad, n) > 1e-3);
}

/* ---- patch embedding ---------------------------------------------------- */

typedef struct patch_ctx {
    int B, Sz, P, C;
    double *px, *w, *G, *patches, *out;
} patch_ctx;

static double patch_loss(void *p)
{
    patch_ctx *c = p;
    int NP = (c->Sz / c->P) * (c->Sz / c->P), K = 3 * c->P * c->P;
    trn_clip_unfold_f64(c->patches, c->px, c->B, c->Sz, c->P);
    trn_matmul_fwd_f64(c->out, c->C, c->patches, K, c->w, NULL, c->B * NP, K, c->C);
    return dot(c->out, c->G, (size_t)c->B * NP * c->C);
}

static void test_patch_embedding(void **state)
{
    (void)state;
    patch_ctx c = {.B = 2, .Sz = 6, .P = 3, .C = 5};
    const int NP = 4, K = 27;
    size_t npx = (size_t)2 * 3 * 36;
    c.px = rnd(npx, 1);
    c.w = rnd((size_t)5 * K, 1);
    c.G = rnd((size_t)2 * NP * 5, 1);
    c.patches = zeros((size_t)2 * NP * K);
    c.out = zeros((size_t)2 * NP * 5);
    patch_loss(&c);
    /* a patch row is the conv window in (channel, row, column) order */
    assert_true(c.patches[(size_t)(1 * NP + 3) * K + 1 * 9 + 2 * 3 + 1] ==
                c.px[((size_t)(1 * 3 + 1) * 6 + 3 + 2) * 6 + 3 + 1]);
    double *dpatch = zeros((size_t)2 * NP * K), *dw = zeros((size_t)5 * K), *dpx = zeros(npx);
    trn_matmul_bwd_f64(dpatch, K, dw, NULL, c.G, 5, c.patches, c.w, 2 * NP, K, 5);
    trn_clip_fold_f64(dpx, dpatch, 2, 6, 3);
    check_grad("patch embedding dpixels", patch_loss, &c, c.px, dpx, npx);
    check_grad("patch embedding dw", patch_loss, &c, c.w, dw, (size_t)5 * K);
    free(c.px), free(c.w), free(c.G), free(c.patches), free(c.out);
    free(dpatch), free(dw), free(dpx);
}

/* ---- bidirectional attention ---------------------------------------------------- */

typedef struct attn_ctx {
    int B, L, NH, HS;
    int32_t lens[2];
    double *qkv, *G, *out, *probs;
} attn_ctx;

static double attn_loss(void *p)
{
    attn_ctx *c = p;
    size_t ldq = (size_t)3 * c->NH * c->HS, w = (size_t)c->NH * c->HS;
    trn_clip_attn_fwd_f64(c->out, c->probs, c->qkv, ldq, 0, (int)w, 2 * (int)w, c->lens, c->B,
                          c->L, c->NH, c->HS, 1 / sqrt((double)c->HS));
    double s = 0;
    for (int b = 0; b < c->B; b++) /* only real (non-pad) queries count */
        for (int i = 0; i < c->lens[b]; i++) {
            size_t t = (size_t)b * c->L + i;
            s += dot(c->out + t * w, c->G + t * w, w);
        }
    return s;
}

static void test_attention(void **state)
{
    (void)state;
    attn_ctx c = {.B = 2, .L = 5, .NH = 2, .HS = 3, .lens = {5, 3}};
    size_t w = 6, ldq = 18, T = 10;
    c.qkv = rnd(T * ldq, 1);
    c.G = rnd(T * w, 1);
    for (int i = 3; i < 5; i++) /* pads get no upstream gradient */
        memset(c.G + (5 + i) * w, 0, w * sizeof(double));
    c.out = zeros(T * w);
    c.probs = zeros((size_t)2 * 2 * 25);
    attn_loss(&c);
    double *dqkv = zeros(T * ldq), *scratch = zeros(2 * 25);
    trn_attn_bwd_f64(dqkv, c.G, c.qkv, ldq, 0, 6, 12, c.probs, c.lens, 2, 5, 2, 2, 3,
                     1 / sqrt(3.0), scratch);
    check_grad("bidirectional attention dqkv", attn_loss, &c, c.qkv, dqkv, T * ldq);
    /* no causal mask: the first query sees the last key; pads are unseen */
    assert_true(c.probs[4] > 0.0);
    for (int i = 0; i < 5; i++)
        assert_true(c.probs[(size_t)2 * 25 + (size_t)i * 5 + 3] == 0.0);
    for (int i = 3; i < 5; i++)
        for (size_t j = 6; j < ldq; j++)
            assert_true(dqkv[(5 + i) * ldq + j] == 0.0);
    /* the float kernel agrees */
    float qf[10 * 18], of[10 * 6], pf[100];
    for (size_t i = 0; i < T * ldq; i++)
        qf[i] = (float)c.qkv[i];
    trn_clip_attn_fwd_f32(of, pf, qf, ldq, 0, 6, 12, c.lens, 2, 5, 2, 3, 1 / sqrtf(3.0f));
    attn_loss(&c);
    for (size_t i = 0; i < 8 * w; i++)
        assert_true(fabs(of[i] - c.out[i]) < 1e-5);
    free(c.qkv), free(c.G), free(c.out), free(c.probs), free(dqkv), free(scratch);
}

/* ---- activations --------------------------------------------------------- */

typedef struct act_ctx {
    size_t n;
    trn_clip_act act;
    double *x, *G, *y;
} act_ctx;

static double act_loss(void *p)
{
    act_ctx *c = p;
    trn_clip_act_fwd_f64(c->y, c->x, c->n, c->act);
    return dot(c->y, c->G, c->n);
}

static void test_activations(void **state)
{
    (void)state;
    static const char *const names[3] = {"quick_gelu", "gelu", "gelu_tanh"};
    for (int k = 0; k < 3; k++) {
        act_ctx c = {.n = 24, .act = (trn_clip_act)k};
        c.x = rnd(24, 4);
        c.G = rnd(24, 1);
        c.y = zeros(24);
        double *dx = zeros(24);
        trn_clip_act_bwd_f64(dx, c.G, c.x, 24, c.act);
        check_grad(names[k], act_loss, &c, c.x, dx, 24);
        /* float against double, and in place */
        float xf[24];
        for (int i = 0; i < 24; i++)
            xf[i] = (float)c.x[i];
        trn_clip_act_fwd_f32(xf, xf, 24, c.act);
        act_loss(&c);
        for (int i = 0; i < 24; i++)
            assert_true(fabs(xf[i] - c.y[i]) < 1e-5);
        free(c.x), free(c.G), free(c.y), free(dx);
    }
    /* the formulas clip.c serves with */
    double x = 0.7, y;
    trn_clip_act_fwd_f64(&y, &x, 1, TRN_CLIP_QUICK_GELU);
    assert_true(fabs(y - x / (1 + exp(-1.702 * x))) < 1e-15);
    trn_clip_act_fwd_f64(&y, &x, 1, TRN_CLIP_GELU);
    assert_true(fabs(y - 0.5 * x * (1 + erf(x / sqrt(2.0)))) < 1e-15);
    trn_clip_act act;
    assert_int_equal(trn_clip_act_parse("gelu_pytorch_tanh", &act), 0);
    assert_int_equal(act, TRN_CLIP_GELU_TANH);
    assert_int_equal(trn_clip_act_parse("relu", &act), -1);
    assert_string_equal(trn_clip_act_name(TRN_CLIP_QUICK_GELU), "quick_gelu");
}

/* ---- L2 normalisation ------------------------------------------------------ */

typedef struct l2_ctx {
    int T, D;
    double *x, *G, *y, *norm;
} l2_ctx;

static double l2_loss(void *p)
{
    l2_ctx *c = p;
    trn_clip_l2norm_fwd_f64(c->y, c->norm, c->x, c->T, c->D);
    return dot(c->y, c->G, (size_t)c->T * c->D);
}

static void test_l2norm(void **state)
{
    (void)state;
    l2_ctx c = {.T = 3, .D = 5};
    c.x = rnd(15, 2);
    c.G = rnd(15, 1);
    c.y = zeros(15);
    c.norm = zeros(3);
    l2_loss(&c);
    for (int t = 0; t < 3; t++)
        assert_true(fabs(dot(c.y + t * 5, c.y + t * 5, 5) - 1) < 1e-14);
    double *dx = zeros(15);
    trn_clip_l2norm_bwd_f64(dx, c.G, c.y, c.norm, 3, 5);
    check_grad("l2norm", l2_loss, &c, c.x, dx, 15);
    free(c.x), free(c.G), free(c.y), free(c.norm), free(dx);
}

/* ---- InfoNCE ----------------------------------------------------------------- */

typedef struct nce_ctx {
    int B, D;
    double ls;
    double *img, *txt, *logits, *lr, *lc;
} nce_ctx;

static double nce_loss(void *p)
{
    nce_ctx *c = p;
    return trn_clip_infonce_fwd_f64(c->logits, c->lr, c->lc, c->img, c->txt, c->B, c->D,
                                    exp(c->ls));
}

/* transformers' clip_loss, written out. */
static double nce_naive(const nce_ctx *c)
{
    int B = c->B;
    double s = exp(c->ls), rows = 0, cols = 0;
    for (int i = 0; i < B; i++) {
        double zr = 0, zc = 0;
        for (int j = 0; j < B; j++) {
            zr += exp(s * dot(c->img + i * c->D, c->txt + j * c->D, (size_t)c->D));
            zc += exp(s * dot(c->img + j * c->D, c->txt + i * c->D, (size_t)c->D));
        }
        double d = s * dot(c->img + i * c->D, c->txt + i * c->D, (size_t)c->D);
        rows += log(zr) - d;
        cols += log(zc) - d;
    }
    return (rows / B + cols / B) / 2;
}

static double nce_ls_loss(void *p)
{
    return nce_loss(p);
}

static void test_infonce(void **state)
{
    (void)state;
    nce_ctx c = {.B = 4, .D = 5, .ls = log(3.0)};
    c.img = rnd(20, 1);
    c.txt = rnd(20, 1);
    c.logits = zeros(16);
    c.lr = zeros(4);
    c.lc = zeros(4);
    double L = nce_loss(&c);
    assert_true(fabs(L - nce_naive(&c)) < 1e-12);
    const double dl = 1.7;
    double *dimg = zeros(20), *dtxt = zeros(20), dls = 0, *scratch = zeros(16);
    trn_clip_infonce_bwd_f64(dimg, dtxt, &dls, c.logits, c.lr, c.lc, c.img, c.txt, 4, 5,
                             exp(c.ls), dl, scratch);
    for (int i = 0; i < 20; i++) {
        dimg[i] /= dl;
        dtxt[i] /= dl;
    }
    dls /= dl;
    check_grad("infonce dimg", nce_loss, &c, c.img, dimg, 20);
    check_grad("infonce dtxt", nce_loss, &c, c.txt, dtxt, 20);
    check_grad("infonce dlogit_scale", nce_ls_loss, &c, &c.ls, &dls, 1);
    /* float */
    float fi[20], ft[20], fl[16], flr[4], flc[4];
    for (int i = 0; i < 20; i++) {
        fi[i] = (float)c.img[i];
        ft[i] = (float)c.txt[i];
    }
    float Lf = trn_clip_infonce_fwd_f32(fl, flr, flc, fi, ft, 4, 5, 3.0f);
    assert_true(fabs(Lf - L) < 1e-5);
    free(c.img), free(c.txt), free(c.logits), free(c.lr), free(c.lc);
    free(dimg), free(dtxt), free(scratch);
}

/* ---- the whole model ---------------------------------------------------------- */

/* A tiny configuration: 16 tokens (eot 15), captions up to 6, 8x8 images
 * of 4x4 patches, two layers per tower. */
static trn_clip_cfg tiny_cfg(void)
{
    trn_clip_cfg c = {
        .hp = {.text_ctx = 6, .text_vocab = 16, .text_width = 8, .vision_width = 12,
               .image_size = 8, .patch_size = 4, .proj_dim = 6, .eot_id = 15,
               .text_layers = 2, .text_heads = 2, .text_ff = 16, .vision_layers = 2,
               .vision_heads = 3, .vision_ff = 10},
        .act_text = TRN_CLIP_QUICK_GELU,
        .act_vision = TRN_CLIP_GELU,
    };
    return c;
}

/* A batch of B pairs with random pixels and captions [sot, words.., eot]
 * of random lengths, right-padded with junk; caption 1 has no eot (pooled
 * at its highest id). Arrays are malloc'd into the struct. */
typedef struct tiny_batch {
    trn_clip_batch b;
    float *px;
    int32_t *tok, *lens;
} tiny_batch;

static tiny_batch tiny_batch_new(const trn_clip_cfg *cfg, int B, int L)
{
    tiny_batch t;
    int S = cfg->hp.image_size, V = cfg->hp.text_vocab;
    t.px = malloc((size_t)B * 3 * S * S * sizeof(float));
    t.tok = malloc((size_t)B * L * sizeof(int32_t));
    t.lens = malloc((size_t)B * sizeof(int32_t));
    assert_non_null(t.px);
    assert_non_null(t.tok);
    assert_non_null(t.lens);
    for (size_t i = 0; i < (size_t)B * 3 * S * S; i++)
        t.px[i] = (float)(2 * rng_uniform(&g_rng) - 1);
    for (int s = 0; s < B; s++) {
        int n = 2 + (int)rng_below(&g_rng, (uint64_t)L - 1);
        t.lens[s] = n;
        for (int i = 0; i < L; i++)
            t.tok[s * L + i] = (int32_t)rng_below(&g_rng, (uint64_t)V - 2);
        t.tok[s * L] = V - 2; /* sot */
        if (s != 1)
            t.tok[s * L + n - 1] = cfg->hp.eot_id;
    }
    t.b = (trn_clip_batch){.B = B, .pixels = t.px, .L = L, .tokens = t.tok, .lens = t.lens};
    return t;
}

static void tiny_batch_free(tiny_batch *t)
{
    free(t->px);
    free(t->tok);
    free(t->lens);
}

/* Shifts every weight by N(0, std), so norms and biases are not 1 and 0. */
static void perturb(trn_clip *m, double std)
{
    float *w = trn_clip_weights(m);
    for (size_t i = 0; i < trn_clip_n_weights(m); i++)
        w[i] += (float)(std * rng_normal(&g_rng));
}

typedef struct model_ctx {
    trn_clip *m;
    const trn_clip_batch *b;
    double *w;
} model_ctx;

static double model_loss(void *p)
{
    model_ctx *c = p;
    double loss;
    if (trn_clip_loss_f64(c->m, c->b, c->w, NULL, &loss, err, sizeof err))
        fail_msg("%s", err);
    return loss;
}

static void run_model_gradients(const trn_clip_cfg *cfgp)
{
    const trn_clip_cfg cfg = *cfgp;
    trn_clip *m;
    if (trn_clip_new(&m, &cfg, 7, err, sizeof err))
        fail_msg("%s", err);
    perturb(m, 0.2);
    const size_t n = trn_clip_n_weights(m);
    /* the parameter list covers the arena once, with unique names */
    trn_params ps = {0};
    assert_int_equal(trn_clip_params(m, &ps), 0);
    assert_int_equal(trn_params_count(&ps), n);
    for (int i = 0; i < ps.n; i++)
        for (int j = 0; j < i; j++)
            assert_true(strcmp(ps.p[i].name, ps.p[j].name) != 0);
    tiny_batch tb = tiny_batch_new(&cfg, 3, 6);
    double *w = malloc(n * sizeof(double)), *g = malloc(n * sizeof(double)), loss;
    assert_non_null(w);
    assert_non_null(g);
    for (size_t i = 0; i < n; i++)
        w[i] = trn_clip_weights(m)[i];
    w[ps.p[ps.n - 1].value - trn_clip_weights(m)] = log(4.0); /* logit_scale */
    trn_clip_weights(m)[n - 1] = (float)log(4.0);
    assert_string_equal(ps.p[ps.n - 1].name, "logit_scale");
    if (trn_clip_loss_f64(m, &tb.b, w, g, &loss, err, sizeof err))
        fail_msg("%s", err);
    /* every element of every tensor */
    model_ctx c = {.m = m, .b = &tb.b, .w = w};
    double biggest = 0;
    for (int i = 0; i < ps.n; i++) {
        size_t off = (size_t)(ps.p[i].value - trn_clip_weights(m));
        double big = check_grad_n(ps.p[i].name, model_loss, &c, w + off, g + off, ps.p[i].n);
        biggest = fmax(biggest, big);
        /* k_proj.bias shifts every score of a query alike: softmax ignores it;
         * without vision layers the class token never sees the patches */
        bool none = strstr(ps.p[i].name, "k_proj.bias") ||
                    (!cfg.hp.vision_layers && strstr(ps.p[i].name, "patch_embedding"));
        if (!none && !(big > 1e-4))
            fail_msg("%s: no gradient", ps.p[i].name);
    }
    printf("tiny model: %zu weights match finite differences (largest gradient %.3g)\n", n,
           biggest);

    /* float forward + backward against the double twin */
    trn_clip_result r;
    if (trn_clip_forward(m, &tb.b, &r, err, sizeof err))
        fail_msg("%s", err);
    printf("tiny model: loss %.6f (double %.6f), i2t %d/3, t2i %d/3\n", r.loss, loss,
           r.i2t_correct, r.t2i_correct);
    assert_true(fabs(r.loss - loss) < 1e-5);
    trn_params_zero_grad(&ps);
    assert_int_equal(trn_clip_backward(m, 1.0f, err, sizeof err), 0);
    double gmax = 0, dmax = 0;
    for (int i = 0; i < ps.n; i++)
        for (size_t j = 0; j < ps.p[i].n; j++) {
            double gd = g[ps.p[i].value - trn_clip_weights(m) + j];
            gmax = fmax(gmax, fabs(gd));
            dmax = fmax(dmax, fabs(gd - ps.p[i].grad[j]));
        }
    printf("tiny model: float gradients within %.3g of double (largest %.3g)\n", dmax, gmax);
    assert_true(dmax < 1e-4 * fmax(1.0, gmax));
    /* backward accumulates */
    float keep = ps.p[3].grad[0];
    assert_int_equal(trn_clip_backward(m, 1.0f, err, sizeof err), 0);
    assert_true(fabsf(ps.p[3].grad[0] - 2 * keep) <= 1e-6f * fabsf(keep) + 1e-12f);
    free(w);
    free(g);
    tiny_batch_free(&tb);
    trn_params_free(&ps);
    trn_clip_free(m);
}

static void test_model_gradients(void **state)
{
    (void)state;
    trn_clip_cfg cfg = tiny_cfg();
    run_model_gradients(&cfg);
    /* gelu_tanh, and a tower without layers */
    cfg.hp.text_layers = 1;
    cfg.act_text = TRN_CLIP_GELU_TANH;
    cfg.hp.vision_layers = 0;
    run_model_gradients(&cfg);
}

/* Pads are ignored; one tower alone gives the same embeddings; bad input
 * is refused with a message. */
static void test_model_batches(void **state)
{
    (void)state;
    trn_clip_cfg cfg = tiny_cfg();
    trn_clip *m;
    if (trn_clip_new(&m, &cfg, 3, err, sizeof err))
        fail_msg("%s", err);
    perturb(m, 0.2);
    tiny_batch tb = tiny_batch_new(&cfg, 4, 6);
    const int D = cfg.hp.proj_dim;
    if (trn_clip_forward(m, &tb.b, NULL, err, sizeof err))
        fail_msg("%s", err);
    float txt[4 * 6], img[4 * 6], lg[16];
    memcpy(txt, trn_clip_text_embeds(m), sizeof txt);
    memcpy(img, trn_clip_image_embeds(m), sizeof img);
    memcpy(lg, trn_clip_logits(m), sizeof lg);
    /* logits = scale * cosine */
    double s = trn_clip_scale(m), ni = 0, nt = 0, d = 0;
    for (int k = 0; k < D; k++) {
        ni += (double)img[2 * D + k] * img[2 * D + k];
        nt += (double)txt[1 * D + k] * txt[1 * D + k];
        d += (double)img[2 * D + k] * txt[1 * D + k];
    }
    assert_true(fabs(lg[2 * 4 + 1] - s * d / sqrt(ni * nt)) < 1e-4);
    /* other pad values */
    for (int sq = 0; sq < 4; sq++)
        for (int i = tb.lens[sq]; i < 6; i++)
            tb.tok[sq * 6 + i] = (int32_t)(i + sq) % 16;
    trn_clip_batch tonly = tb.b;
    tonly.pixels = NULL;
    if (trn_clip_forward(m, &tonly, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_null(trn_clip_image_embeds(m));
    assert_null(trn_clip_logits(m));
    for (int i = 0; i < 4 * D; i++)
        assert_true(fabsf(trn_clip_text_embeds(m)[i] - txt[i]) < 1e-6f);
    assert_int_equal(trn_clip_backward(m, 1.0f, err, sizeof err), -EINVAL);
    /* each caption alone, unpadded */
    for (int sq = 0; sq < 4; sq++) {
        trn_clip_batch one = {.B = 1, .L = tb.lens[sq], .tokens = tb.tok + sq * 6};
        if (trn_clip_forward(m, &one, NULL, err, sizeof err))
            fail_msg("%s", err);
        for (int k = 0; k < D; k++)
            assert_true(fabsf(trn_clip_text_embeds(m)[k] - txt[sq * D + k]) < 1e-5f);
    }
    trn_clip_batch ionly = {.B = 4, .pixels = tb.px};
    if (trn_clip_forward(m, &ionly, NULL, err, sizeof err))
        fail_msg("%s", err);
    for (int i = 0; i < 4 * D; i++)
        assert_true(fabsf(trn_clip_image_embeds(m)[i] - img[i]) < 1e-6f);
    /* refused */
    trn_clip_batch bad = tb.b;
    bad.L = 7;
    assert_int_equal(trn_clip_forward(m, &bad, NULL, err, sizeof err), -EINVAL);
    printf("refused: %s\n", err);
    bad = tb.b;
    tb.tok[5] = 16;
    tb.lens[0] = 6;
    assert_int_equal(trn_clip_forward(m, &bad, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "outside the vocabulary"));
    bad.pixels = NULL;
    bad.tokens = NULL;
    assert_int_equal(trn_clip_forward(m, &bad, NULL, err, sizeof err), -EINVAL);
    trn_clip_cfg bc = cfg;
    bc.hp.vision_heads = 5;
    trn_clip *m2 = NULL;
    assert_int_equal(trn_clip_new(&m2, &bc, 1, err, sizeof err), -EINVAL);
    assert_null(m2);
    /* the scale is clamped to [1, 100] */
    trn_clip_weights(m)[trn_clip_n_weights(m) - 1] = 7.0f;
    trn_clip_clamp_logit_scale(m);
    assert_true(fabsf(trn_clip_scale(m) - 100.0f) < 1e-3f);
    tiny_batch_free(&tb);
    trn_clip_free(m);
}

/* Transformers' init: stds by tensor kind, logit_scale ln(1/0.07). */
static void test_init(void **state)
{
    (void)state;
    trn_clip_cfg cfg = tiny_cfg();
    cfg.hp.text_width = 64;
    cfg.hp.text_heads = 4;
    cfg.hp.text_ff = 256;
    trn_clip *m;
    if (trn_clip_new(&m, &cfg, 5, err, sizeof err))
        fail_msg("%s", err);
    trn_params ps = {0};
    assert_int_equal(trn_clip_params(m, &ps), 0);
    for (int i = 0; i < ps.n; i++) {
        const trn_param *p = &ps.p[i];
        double s = 0, s2 = 0;
        for (size_t j = 0; j < p->n; j++) {
            s += p->value[j];
            s2 += (double)p->value[j] * p->value[j];
        }
        double mean = s / p->n, sd = sqrt(s2 / p->n - mean * mean);
        double want = -1;
        if (strstr(p->name, "text_model.encoder.layers.0.self_attn.q_proj.weight"))
            want = pow(64, -0.5) * pow(4, -0.5);
        else if (strstr(p->name, "text_model.encoder.layers.1.mlp.fc1.weight"))
            want = pow(128, -0.5);
        else if (strstr(p->name, "text_model.encoder.layers.1.self_attn.out_proj.weight"))
            want = pow(64, -0.5);
        else if (!strcmp(p->name, "text_model.embeddings.token_embedding.weight"))
            want = 0.02;
        else if (!strcmp(p->name, "text_projection.weight"))
            want = pow(64, -0.5);
        if (want > 0 && fabs(sd / want - 1) > 0.1)
            fail_msg("%s: std %.4g, transformers %.4g", p->name, sd, want);
        if (strstr(p->name, "norm") && strstr(p->name, ".weight"))
            assert_true(mean == 1.0 && sd == 0.0);
        if (strstr(p->name, ".bias"))
            assert_true(s2 == 0.0);
        assert_true(p->decay == (strstr(p->name, "norm") == NULL && strstr(p->name, "bias") ==
                                 NULL && strcmp(p->name, "logit_scale") != 0 &&
                                 strcmp(p->name, "vision_model.embeddings.class_embedding") != 0));
    }
    assert_true(fabsf(trn_clip_scale(m) - expf(2.6592f)) < 1e-5f);
    trn_params_free(&ps);
    trn_clip_free(m);
}

/* ---- against the inference code and transformers ------------------------------------ */

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx;
}

static void json_matrix(json_t *arr, float *out, size_t rows, size_t cols, const char *what)
{
    if (!json_is_array(arr) || json_array_size(arr) != rows)
        fail_msg("reference %s: not %zu rows", what, rows);
    for (size_t r = 0; r < rows; r++) {
        json_t *row = json_array_get(arr, r);
        if (!json_is_array(row) || json_array_size(row) != cols)
            fail_msg("reference %s: row %zu is not %zu numbers", what, r, cols);
        for (size_t c = 0; c < cols; c++)
            out[r * cols + c] = (float)json_number_value(json_array_get(row, c));
    }
}

/* Right-pads the id lists of arr (n of them) into tok[n, *L]. */
static int32_t *json_padded(json_t *arr, int n, int *L, int32_t *lens, int32_t **ids)
{
    *L = 0;
    for (int i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, (size_t)i);
        lens[i] = (int32_t)json_array_size(a);
        *L = lens[i] > *L ? lens[i] : *L;
    }
    int32_t *tok = malloc((size_t)n * *L * sizeof(int32_t));
    assert_non_null(tok);
    for (int i = 0; i < n; i++) {
        json_t *a = json_array_get(arr, (size_t)i);
        ids[i] = tok + (size_t)i * *L;
        for (int k = 0; k < *L; k++)
            tok[(size_t)i * *L + k] =
                k < lens[i] ? (int32_t)json_integer_value(json_array_get(a, (size_t)k)) : 0;
    }
    return tok;
}

static void test_conformance_forward(void **state)
{
    (void)state;
    char *dir = tu_shared_path("conformance/clip-tiny/config.json");
    if (!dir)
        skip();
    *strrchr(dir, '/') = '\0';
    char path[1024];
    snprintf(path, sizeof path, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    if (!ref)
        fail_msg("%s: %s", path, je.text);
    snprintf(path, sizeof path, "%s/pixel_values.npy", dir);
    npy_array px;
    npy_error ne = {0};
    if (npy_load(&px, path, &ne))
        fail_msg("%s", ne.msg);
    trn_clip *m;
    clip_model *cm;
    if (trn_clip_load(&m, dir, err, sizeof err) || clip_load(&cm, dir, err, sizeof err))
        fail_msg("%s", err);
    const trn_clip_cfg *cfg = trn_clip_config(m);
    assert_int_equal(cfg->hp.text_vocab, 49408);
    assert_int_equal(cfg->hp.eot_id, 49407);
    assert_int_equal(cfg->act_text, TRN_CLIP_QUICK_GELU);
    assert_true(memcmp(&cfg->hp, clip_hp(cm), sizeof cfg->hp) == 0);
    assert_true(fabsf(trn_clip_scale(m) - clip_logit_scale(cm)) < 1e-6f);
    const int D = 32;

    /* the label prompts, padded into one batch */
    json_t *lab = json_object_get(ref, "label_input_ids");
    int L;
    int32_t lens[4], *ids[4];
    int32_t *tok = json_padded(lab, 4, &L, lens, ids);
    trn_clip_batch tb = {.B = 4, .L = L, .tokens = tok, .lens = lens};
    if (trn_clip_forward(m, &tb, NULL, err, sizeof err))
        fail_msg("%s", err);
    float inf[4 * 32], want[4 * 32];
    int ilens[4] = {lens[0], lens[1], lens[2], lens[3]};
    if (clip_encode_text(cm, ids, ilens, 4, inf, err, sizeof err))
        fail_msg("%s", err);
    json_matrix(json_object_get(ref, "text_embeds_unnormalized"), want, 4, D, "text");
    double d1 = max_abs_diff(trn_clip_text_embeds(m), inf, 4 * D);
    double d2 = max_abs_diff(trn_clip_text_embeds(m), want, 4 * D);
    printf("label text embeds: max abs diff %.3g to clip.h, %.3g to transformers\n", d1, d2);
    assert_true(d1 < CLIP_TOL && d2 < CLIP_TOL);

    /* the other prompts (long, unicode), padded */
    json_t *pr = json_object_get(ref, "prompts"), *pid = json_array();
    int np = (int)json_array_size(pr);
    assert_true(np >= 1 && np <= 4);
    for (int i = 0; i < np; i++)
        json_array_append(pid, json_object_get(json_array_get(pr, (size_t)i), "input_ids"));
    int32_t plens[4], *pids[4];
    int PL;
    int32_t *ptok = json_padded(pid, np, &PL, plens, pids);
    trn_clip_batch pb = {.B = np, .L = PL, .tokens = ptok, .lens = plens};
    if (trn_clip_forward(m, &pb, NULL, err, sizeof err))
        fail_msg("%s", err);
    double dp = 0;
    for (int i = 0; i < np; i++) {
        float w1[32];
        json_t *row = json_object_get(json_array_get(pr, (size_t)i), "text_embeds_unnormalized");
        for (int k = 0; k < D; k++)
            w1[k] = (float)json_number_value(json_array_get(row, (size_t)k));
        dp = fmax(dp, max_abs_diff(trn_clip_text_embeds(m) + i * D, w1, D));
    }
    printf("prompt text embeds: max abs diff %.3g to transformers\n", dp);
    assert_true(dp < CLIP_TOL);

    /* the two images */
    trn_clip_batch ib = {.B = 2, .pixels = npy_f32(&px)};
    if (trn_clip_forward(m, &ib, NULL, err, sizeof err))
        fail_msg("%s", err);
    float iinf[2 * 32];
    if (clip_encode_images(cm, npy_f32(&px), 2, iinf, err, sizeof err))
        fail_msg("%s", err);
    json_matrix(json_object_get(ref, "image_embeds_unnormalized"), want, 2, D, "image");
    d1 = max_abs_diff(trn_clip_image_embeds(m), iinf, 2 * D);
    d2 = max_abs_diff(trn_clip_image_embeds(m), want, 2 * D);
    printf("image embeds: max abs diff %.3g to clip.h, %.3g to transformers\n", d1, d2);
    assert_true(d1 < CLIP_TOL && d2 < CLIP_TOL);

    /* images with the first two labels: the logits */
    trn_clip_batch both = {.B = 2, .pixels = npy_f32(&px), .L = L, .tokens = tok, .lens = lens};
    trn_clip_result r;
    if (trn_clip_forward(m, &both, &r, err, sizeof err))
        fail_msg("%s", err);
    float lw[2 * 4];
    json_matrix(json_object_get(ref, "logits_per_image"), lw, 2, 4, "logits_per_image");
    double dl = 0;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            dl = fmax(dl, fabs(trn_clip_logits(m)[i * 2 + j] - lw[i * 4 + j]));
    printf("logits: max abs diff %.3g to transformers; loss %.5f, scale %.4f\n", dl, r.loss,
           r.scale);
    assert_true(dl < CLIP_TOL);
    assert_true(isfinite(r.loss));

    json_decref(pid);
    free(tok);
    free(ptok);
    trn_clip_free(m);
    clip_free(cm);
    npy_free(&px);
    json_decref(ref);
    free(dir);
}

/* ---- save and serve --------------------------------------------------------------- */

static void rm_in(const char *dir, const char *name)
{
    char p[1024];
    tu_join(p, sizeof p, dir, name);
    if (tu_exists(p) && unlink(p))
        fail_msg("unlink %s", p);
}

static void test_save_load(void **state)
{
    (void)state;
    trn_clip_cfg cfg = tiny_cfg();
    cfg.act_text = TRN_CLIP_GELU;
    cfg.act_vision = TRN_CLIP_GELU_TANH;
    cfg.eps_vision = 1e-6f;
    trn_clip *m;
    if (trn_clip_new(&m, &cfg, 11, err, sizeof err))
        fail_msg("%s", err);
    /* a few AdamW steps: a trained model */
    trn_params ps = {0};
    assert_int_equal(trn_clip_params(m, &ps), 0);
    trn_optim o;
    trn_optim_cfg oc = trn_optim_cfg_default();
    oc.sched.lr = 3e-2;
    eng_err ee = {0};
    assert_int_equal(trn_optim_init(&o, &ps, &oc, &ee), 0);
    tiny_batch tb = tiny_batch_new(&cfg, 4, 6);
    for (int s = 0; s < 5; s++) {
        trn_params_zero_grad(&ps);
        if (trn_clip_forward(m, &tb.b, NULL, err, sizeof err) ||
            trn_clip_backward(m, 1.0f, err, sizeof err))
            fail_msg("%s", err);
        assert_int_equal(trn_optim_step(&o, &ps, NULL, &ee), 0);
        trn_clip_clamp_logit_scale(m);
    }
    if (trn_clip_forward(m, &tb.b, NULL, err, sizeof err))
        fail_msg("%s", err);
    const int D = cfg.hp.proj_dim;
    float txt[4 * 6], img[4 * 6];
    memcpy(txt, trn_clip_text_embeds(m), sizeof txt);
    memcpy(img, trn_clip_image_embeds(m), sizeof img);

    char *dir = tu_tmpdir("trn_clip"), sub[1024];
    tu_join(sub, sizeof sub, dir, "out/model");
    char *tokdir = tu_shared_path("conformance/clip-tiny/vocab.json");
    if (tokdir)
        *strrchr(tokdir, '/') = '\0';
    trn_clip_save_opts so = {.tok_dir = tokdir};
    if (trn_clip_save(m, sub, &so, err, sizeof err))
        fail_msg("%s", err);

    /* the inference code serves it */
    clip_model *cm;
    if (clip_load(&cm, sub, err, sizeof err))
        fail_msg("clip_load of the saved model: %s", err);
    assert_true(memcmp(clip_hp(cm), &cfg.hp, sizeof cfg.hp) == 0);
    assert_true(fabsf(clip_logit_scale(cm) - trn_clip_scale(m)) < 1e-6f * trn_clip_scale(m));
    float out[4 * 6];
    int32_t *ids[4];
    int lens[4];
    for (int i = 0; i < 4; i++) {
        ids[i] = tb.tok + i * 6;
        lens[i] = tb.lens[i];
    }
    if (clip_encode_text(cm, ids, lens, 4, out, err, sizeof err))
        fail_msg("%s", err);
    double dt = max_abs_diff(out, txt, (size_t)4 * D);
    if (clip_encode_images(cm, tb.px, 4, out, err, sizeof err))
        fail_msg("%s", err);
    double di = max_abs_diff(out, img, (size_t)4 * D);
    printf("saved model through clip.h: text %.3g, images %.3g max abs diff\n", dt, di);
    assert_true(dt < 1e-5 && di < 1e-5);
    clip_free(cm);

    /* and reloads for training bit for bit */
    trn_clip *m2;
    if (trn_clip_load(&m2, sub, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(trn_clip_n_weights(m2), trn_clip_n_weights(m));
    assert_true(memcmp(trn_clip_weights(m2), trn_clip_weights(m),
                       trn_clip_n_weights(m) * sizeof(float)) == 0);
    assert_int_equal(trn_clip_config(m2)->act_text, TRN_CLIP_GELU);
    assert_int_equal(trn_clip_config(m2)->act_vision, TRN_CLIP_GELU_TANH);
    assert_true(trn_clip_config(m2)->eps_vision == 1e-6f);
    trn_clip_free(m2);

    /* the image preprocessing the server reads */
    char p[1024];
    tu_join(p, sizeof p, sub, "preprocessor_config.json");
    image_preproc pp;
    assert_int_equal(image_preproc_load(p, &pp, &ee), 0);
    assert_int_equal(pp.crop_h, 8);
    assert_int_equal(pp.shortest_edge, 8);
    assert_true(fabsf(pp.mean[0] - 0.48145466f) < 1e-7f);

    /* a config that disagrees with the weights is refused, naming the tensor */
    tu_join(p, sizeof p, sub, "config.json");
    json_t *cj = json_load_file(p, 0, NULL);
    assert_non_null(cj);
    json_object_set_new(json_object_get(cj, "vision_config"), "intermediate_size",
                        json_integer(11));
    assert_int_equal(json_dump_file(cj, p, 0), 0);
    trn_clip *bad = NULL;
    assert_int_equal(trn_clip_load(&bad, sub, err, sizeof err), -EINVAL);
    assert_null(bad);
    printf("refused: %s\n", err);
    assert_non_null(strstr(err, "vision_model.encoder.layers.0.mlp.fc1.weight"));
    json_object_set_new(cj, "model_type", json_string("bert"));
    assert_int_equal(json_dump_file(cj, p, 0), 0);
    assert_int_equal(trn_clip_load(&bad, sub, err, sizeof err), -ENOTSUP);
    json_decref(cj);

    static const char *const files[] = {
        "config.json", "model.safetensors", "preprocessor_config.json", "vocab.json",
        "merges.txt", "tokenizer_config.json", "special_tokens_map.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        tu_join(p, sizeof p, sub, files[i]);
        if (i < 3 || tokdir)
            assert_true(tu_exists(p));
        rm_in(sub, files[i]);
    }
    assert_int_equal(rmdir(sub), 0);
    tu_join(p, sizeof p, dir, "out");
    assert_int_equal(rmdir(p), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
    free(tokdir);
    tiny_batch_free(&tb);
    trn_optim_free(&o);
    trn_params_free(&ps);
    trn_clip_free(m);
}

/* ---- the training loop ---------------------------------------------------------------- */

#define TOY_COLOURS 8
#define TOY_S 16
#define TOY_L 5

/* Colour k as +-1 per channel (in the normalised pixel space). */
static const float toy_rgb[TOY_COLOURS][3] = {
    {1, -1, -1}, {-1, 1, -1}, {-1, -1, 1}, {1, 1, -1},
    {-1, 1, 1},  {1, -1, 1},  {1, 1, 1},   {-1, -1, -1},
};

/* n images of a square of colour labels[i] (side 5..10, anywhere) on a
 * grey, noisy background; captions "<sot> a <colour> square <eot>" with
 * words 1 ("a"), 2 ("square"), 3 + colour; sot 14, eot 15. */
typedef struct toy_set {
    int n;
    float *px;
    int32_t *tok, *lens, *labels;
} toy_set;

static toy_set toy_new(int n)
{
    toy_set t = {.n = n};
    t.px = malloc((size_t)n * 3 * TOY_S * TOY_S * sizeof(float));
    t.tok = malloc((size_t)n * TOY_L * sizeof(int32_t));
    t.lens = malloc((size_t)n * sizeof(int32_t));
    t.labels = malloc((size_t)n * sizeof(int32_t));
    assert_true(t.px && t.tok && t.lens && t.labels);
    for (int i = 0; i < n; i++) {
        int k = (int)rng_below(&g_rng, TOY_COLOURS), side = 5 + (int)rng_below(&g_rng, 6);
        int y0 = (int)rng_below(&g_rng, (uint64_t)(TOY_S - side + 1));
        int x0 = (int)rng_below(&g_rng, (uint64_t)(TOY_S - side + 1));
        t.labels[i] = k;
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < TOY_S; y++)
                for (int x = 0; x < TOY_S; x++) {
                    bool in = y >= y0 && y < y0 + side && x >= x0 && x < x0 + side;
                    t.px[(((size_t)i * 3 + c) * TOY_S + y) * TOY_S + x] =
                        (in ? toy_rgb[k][c] : 0.0f) + 0.2f * (float)rng_normal(&g_rng);
                }
        int32_t cap[TOY_L] = {14, 1, 3 + k, 2, 15};
        memcpy(t.tok + (size_t)i * TOY_L, cap, sizeof cap);
        t.lens[i] = TOY_L;
    }
    return t;
}

static void toy_free(toy_set *t)
{
    free(t->px);
    free(t->tok);
    free(t->lens);
    free(t->labels);
}

static trn_clip_cfg toy_cfg(void)
{
    trn_clip_cfg c = {
        .hp = {.text_ctx = 8, .text_vocab = 16, .text_width = 32, .vision_width = 32,
               .image_size = TOY_S, .patch_size = 4, .proj_dim = 16, .eot_id = 15,
               .text_layers = 1, .text_heads = 2, .text_ff = 64, .vision_layers = 1,
               .vision_heads = 2, .vision_ff = 64},
    };
    return c;
}

typedef struct progress_log {
    int calls;
    trn_clip_progress last;
} progress_log;

static void on_progress(void *ctx, const trn_clip_progress *p)
{
    progress_log *l = ctx;
    char line[256];
    trn_clip_progress_format(p, line, sizeof line);
    printf("%s\n", line);
    l->calls++;
    l->last = *p;
}

static void test_train_toy(void **state)
{
    (void)state;
    rng_seed(&g_rng, 77); /* the same data whatever ran before */
    trn_clip_cfg cfg = toy_cfg();
    trn_clip *m;
    if (trn_clip_new(&m, &cfg, 21, err, sizeof err))
        fail_msg("%s", err);
    toy_set train = toy_new(512), held = toy_new(128);
    trn_clip_data data = {.n = train.n, .pixels = train.px, .L = TOY_L, .tokens = train.tok,
                          .lens = train.lens};
    /* the class captions for zero-shot */
    int32_t ctok[TOY_COLOURS * TOY_L], clen[TOY_COLOURS];
    for (int k = 0; k < TOY_COLOURS; k++) {
        int32_t cap[TOY_L] = {14, 1, 3 + k, 2, 15};
        memcpy(ctok + k * TOY_L, cap, sizeof cap);
        clen[k] = TOY_L;
    }
    double zs0;
    if (trn_clip_zero_shot(m, held.px, held.n, held.labels, ctok, clen, TOY_COLOURS, TOY_L,
                           &zs0, NULL, err, sizeof err))
        fail_msg("%s", err);

    trn_clip_train_cfg tc = trn_clip_train_cfg_default();
    tc.batch = 16;
    tc.steps = 300;
    tc.log_every = 100;
    tc.seed = 4;
    tc.optim.sched.lr = 2e-3;
    tc.optim.sched.warmup_steps = 20;
    tc.optim.sched.total_steps = tc.steps;
    tc.optim.weight_decay = 0.01;
    trn_clip_train t;
    if (trn_clip_train_init(&t, m, &tc, err, sizeof err))
        fail_msg("%s", err);
    progress_log log = {0};
    if (trn_clip_train_run(&t, &data, on_progress, &log, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(log.calls, 3);
    assert_int_equal(log.last.step, 300);
    double zs;
    if (trn_clip_zero_shot(m, held.px, held.n, held.labels, ctok, clen, TOY_COLOURS, TOY_L, &zs,
                           NULL, err, sizeof err))
        fail_msg("%s", err);
    printf("toy set: in-batch accuracy %.3f (last 100 steps; chance about 0.18), zero-shot on "
           "held-out images %.3f (before training %.3f, chance 0.125)\n", log.last.accuracy,
           zs, zs0);
    assert_true(log.last.accuracy > 0.6);
    assert_true(zs > 0.8);
    assert_true(log.last.scale >= 1.0 && log.last.scale <= 100.0);
    trn_clip_train_free(&t);
    trn_clip_free(m);
    toy_free(&train);
    toy_free(&held);
}

/* A run resumed from its checkpoint ends with bitwise the weights of an
 * uninterrupted one. */
static void test_train_resume(void **state)
{
    (void)state;
    trn_clip_cfg cfg = toy_cfg();
    cfg.hp.text_width = cfg.hp.vision_width = 16;
    toy_set set = toy_new(64);
    trn_clip_data data = {.n = set.n, .pixels = set.px, .L = TOY_L, .tokens = set.tok,
                          .lens = set.lens};
    trn_clip_train_cfg tc = trn_clip_train_cfg_default();
    tc.batch = 8;
    tc.steps = 12;
    tc.optim.sched.warmup_steps = 3;
    tc.optim.sched.total_steps = 12;
    trn_clip *a, *b;
    if (trn_clip_new(&a, &cfg, 5, err, sizeof err) || trn_clip_new(&b, &cfg, 5, err, sizeof err))
        fail_msg("%s", err);
    trn_clip_train ta, tb;
    if (trn_clip_train_init(&ta, a, &tc, err, sizeof err) ||
        trn_clip_train_init(&tb, b, &tc, err, sizeof err))
        fail_msg("%s", err);
    char *dir = tu_tmpdir("trn_clip_ckpt"), path[1024];
    tu_join(path, sizeof path, dir, "ckpt.bin");
    for (int s = 0; s < 5; s++)
        if (trn_clip_train_step(&ta, &data, NULL, NULL, err, sizeof err))
            fail_msg("%s", err);
    if (trn_clip_train_save(&ta, path, err, sizeof err))
        fail_msg("%s", err);
    if (trn_clip_train_run(&ta, &data, NULL, NULL, err, sizeof err))
        fail_msg("%s", err);
    if (trn_clip_train_load(&tb, path, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(tb.opt.step, 5);
    if (trn_clip_train_run(&tb, &data, NULL, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(tb.opt.step, 12);
    assert_true(memcmp(trn_clip_weights(a), trn_clip_weights(b),
                       trn_clip_n_weights(a) * sizeof(float)) == 0);
    /* bad settings are refused */
    trn_clip_train tbad;
    tc.batch = 1;
    assert_int_equal(trn_clip_train_init(&tbad, a, &tc, err, sizeof err), -EINVAL);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
    trn_clip_train_free(&ta);
    trn_clip_train_free(&tb);
    trn_clip_free(a);
    trn_clip_free(b);
    toy_free(&set);
}

int main(void)
{
    rng_seed(&g_rng, 20261129);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patch_embedding),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_l2norm),
        cmocka_unit_test(test_infonce),
        cmocka_unit_test(test_model_gradients),
        cmocka_unit_test(test_model_batches),
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_conformance_forward),
        cmocka_unit_test(test_save_load),
        cmocka_unit_test(test_train_toy),
        cmocka_unit_test(test_train_resume),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
