/* test_trn_optim.c - AdamW against a double-precision re-implementation of
 * torch.optim.AdamW's documented algorithm, the HF learning-rate schedules,
 * gradient clipping, accumulation, skipped steps and convergence on a toy
 * least-squares problem. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_optim.h"
#include "trn_param.h"

/* ---- a reference AdamW in double ------------------------------------------
 * Written from the pseudo-code in torch.optim.AdamW's documentation, not
 * from trn_optim.c: decay first, moments, bias-corrected m_hat / v_hat. */

typedef struct ref_param {
    double *p, *m, *v;  /* [n] */
    size_t n;
    bool decay;
} ref_param;

static void ref_adamw(ref_param *rp, int np, const trn_params *ps, double lr, double b1,
                      double b2, double eps, double wd, int64_t t) {
    for (int i = 0; i < np; i++) {
        for (size_t j = 0; j < rp[i].n; j++) {
            double g = ps->p[i].grad[j];
            if (rp[i].decay) rp[i].p[j] -= lr * wd * rp[i].p[j];
            rp[i].m[j] = b1 * rp[i].m[j] + (1 - b1) * g;
            rp[i].v[j] = b2 * rp[i].v[j] + (1 - b2) * g * g;
            double m_hat = rp[i].m[j] / (1 - pow(b1, (double)t));
            double v_hat = rp[i].v[j] / (1 - pow(b2, (double)t));
            rp[i].p[j] -= lr * m_hat / (sqrt(v_hat) + eps);
        }
    }
}

/* HF transformers' lr_lambda of get_cosine_with_min_lr_schedule_with_warmup
 * (num_cycles 0.5) times lr, and get_linear_schedule_with_warmup with the
 * same floor, transcribed from the Python. */
static double hf_lr(trn_sched_kind kind, int64_t step, int64_t W, int64_t T, double lr,
                    double min_lr) {
    if (step < W) return lr * (double)step / (double)(W > 1 ? W : 1);
    if (kind == TRN_SCHED_CONSTANT) return lr;
    double progress = (double)(step - W) / (double)(T - W > 1 ? T - W : 1);
    double rate = min_lr / lr;
    double f = kind == TRN_SCHED_COSINE ? 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * progress))
                                        : fmax(0.0, (double)(T - step) / (double)(T - W));
    return lr * fmax(0.0, f * (1 - rate) + rate);
}

/* |a - b| within rel of max(|b|, floor). */
static bool near(double a, double b, double rel, double floor) {
    return fabs(a - b) <= rel * fmax(fabs(b), floor);
}

/* ---- AdamW against the reference ----------------------------------------- */

#define NP 3
static const size_t sizes[NP] = {7, 3, 5};
static const bool decays[NP] = {true, false, true};
static const float gscale[NP] = {1.0f, 1e-3f, 30.0f};  /* eps matters for the small one */

typedef struct fixture {
    float val[NP][8], grad[NP][8];
    double rp_mem[NP][3][8];
    ref_param rp[NP];
    trn_params ps;
} fixture;

static void fixture_init(fixture *f, rng *r) {
    memset(f, 0, sizeof *f);
    char name[32];
    for (int i = 0; i < NP; i++) {
        snprintf(name, sizeof name, "blk.%d.w", i);
        assert_int_equal(trn_params_add(&f->ps, name, f->val[i], f->grad[i], sizes[i], decays[i]),
                         0);
        f->rp[i] = (ref_param){f->rp_mem[i][0], f->rp_mem[i][1], f->rp_mem[i][2], sizes[i],
                               decays[i]};
        for (size_t j = 0; j < sizes[i]; j++) {
            f->val[i][j] = (float)rng_normal(r);
            f->rp[i].p[j] = f->val[i][j];
        }
    }
}

static void fixture_grads(fixture *f, rng *r) {
    for (int i = 0; i < NP; i++)
        for (size_t j = 0; j < sizes[i]; j++) f->grad[i][j] = gscale[i] * (float)rng_normal(r);
}

/* Parameters and moments of the optimizer against the reference. Floors
 * of the relative tolerance: values near zero after a cancellation are
 * compared at the scale of their parameter's gradients. */
static void compare(const fixture *f, const trn_optim *o, int step) {
    for (int i = 0; i < NP; i++) {
        const float *m = o->m + o->off[i], *v = o->v + o->off[i];
        double gs = gscale[i];
        for (size_t j = 0; j < sizes[i]; j++) {
            if (!near(f->val[i][j], f->rp[i].p[j], 1e-6, 1e-2) ||
                !near(m[j], f->rp[i].m[j], 1e-6, 1e-1 * gs) ||
                !near(v[j], f->rp[i].v[j], 1e-6, 1e-2 * gs * gs))
                fail_msg("step %d param %d[%zu]: p %.9g / %.9g, m %.9g / %.9g, v %.9g / %.9g",
                         step, i, j, f->val[i][j], f->rp[i].p[j], m[j], f->rp[i].m[j], v[j],
                         f->rp[i].v[j]);
        }
    }
}

static void run_against_reference(const trn_optim_cfg *cfg, int steps) {
    rng r;
    rng_seed(&r, 1234);
    fixture f;
    fixture_init(&f, &r);
    trn_optim o;
    eng_err err = {0};
    if (trn_optim_init(&o, &f.ps, cfg, &err)) fail_msg("%s", err.msg);
    const trn_sched *s = &cfg->sched;
    for (int t = 1; t <= steps; t++) {
        fixture_grads(&f, &r);
        trn_optim_stats st;
        assert_int_equal(trn_optim_step(&o, &f.ps, &st, &err), 0);
        /* Past total_steps the schedule stays at min_lr, where HF's cosine
         * would rise again. */
        int64_t k = t - 1 < s->total_steps ? t - 1 : s->total_steps;
        double lr = hf_lr(s->kind, k, s->warmup_steps, s->total_steps, s->lr, s->min_lr);
        assert_true(near(st.lr, lr, 1e-12, 1e-12));
        ref_adamw(f.rp, NP, &f.ps, lr, cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, t);
        compare(&f, &o, t);
    }
    assert_int_equal(o.step, steps);
    trn_optim_free(&o);
    trn_params_free(&f.ps);
}

static void test_adamw_matches_reference(void **state) {
    (void)state;
    trn_optim_cfg c = trn_optim_cfg_default();
    c.sched = (trn_sched){TRN_SCHED_COSINE, 1e-2, 1e-3, 3, 12};
    c.beta1 = 0.9;
    c.beta2 = 0.95;
    c.weight_decay = 0.1;
    c.max_grad_norm = 0;
    run_against_reference(&c, 15);  /* past total_steps: lr stays at min_lr */
    /* beta1 < 0.5 takes torch's other lerp form; a large wd and eps. */
    c.sched = (trn_sched){TRN_SCHED_LINEAR, 3e-2, 0, 0, 10};
    c.beta1 = 0.3;
    c.beta2 = 0.5;
    c.eps = 1e-3;
    c.weight_decay = 1.5;
    run_against_reference(&c, 10);
    /* Defaults (constant lr, wd 0.01); clipping off for the comparison. */
    c = trn_optim_cfg_default();
    c.max_grad_norm = 0;
    run_against_reference(&c, 20);
}

static void test_defaults_are_torch(void **state) {
    (void)state;
    trn_optim_cfg c = trn_optim_cfg_default();
    assert_true(c.sched.kind == TRN_SCHED_CONSTANT && c.sched.lr == 1e-3);
    assert_true(c.sched.warmup_steps == 0);
    assert_true(c.beta1 == 0.9 && c.beta2 == 0.999 && c.eps == 1e-8);
    assert_true(c.weight_decay == 0.01 && c.max_grad_norm == 1.0);
    assert_int_equal(trn_optim_cfg_check(&c, NULL), 0);
}

/* ---- schedules ----------------------------------------------------------- */

static void expect_lr(const trn_sched *s, int64_t step, double want) {
    double got = trn_sched_lr(s, step);
    if (!near(got, want, 1e-12, 1e-15))
        fail_msg("kind %d step %lld: lr %.17g, want %.17g", (int)s->kind, (long long)step, got,
                 want);
}

static void test_schedule_key_steps(void **state) {
    (void)state;
    /* W = 10, T = 110: warm-up end 10, middle 60, quarter 35, end 110. */
    trn_sched cos_s = {TRN_SCHED_COSINE, 1e-3, 1e-4, 10, 110};
    expect_lr(&cos_s, 0, 0.0);
    expect_lr(&cos_s, -5, 0.0);
    expect_lr(&cos_s, 5, 5e-4);
    expect_lr(&cos_s, 10, 1e-3);
    expect_lr(&cos_s, 35, 1e-4 + 9e-4 * 0.5 * (1 + cos(M_PI / 4)));
    expect_lr(&cos_s, 60, 5.5e-4);
    expect_lr(&cos_s, 110, 1e-4);
    expect_lr(&cos_s, 170, 1e-4);  /* HF's cosine would rise again here */

    trn_sched lin = {TRN_SCHED_LINEAR, 1e-3, 1e-4, 10, 110};
    expect_lr(&lin, 0, 0.0);
    expect_lr(&lin, 10, 1e-3);
    expect_lr(&lin, 35, 1e-4 + 9e-4 * 0.75);
    expect_lr(&lin, 60, 5.5e-4);
    expect_lr(&lin, 110, 1e-4);
    expect_lr(&lin, 1000, 1e-4);

    trn_sched cst = {TRN_SCHED_CONSTANT, 2e-3, 0, 4, 0};
    expect_lr(&cst, 0, 0.0);
    expect_lr(&cst, 2, 1e-3);
    expect_lr(&cst, 4, 2e-3);
    expect_lr(&cst, 1000000, 2e-3);

    /* No warm-up: the first step already has the peak. */
    trn_sched nw = {TRN_SCHED_COSINE, 1e-3, 0, 0, 100};
    expect_lr(&nw, 0, 1e-3);
    expect_lr(&nw, 50, 5e-4);
    expect_lr(&nw, 100, 0.0);
    /* total == warmup: HF's linear is at min_lr when warm-up ends, its
     * cosine one step later. */
    trn_sched edge = {TRN_SCHED_LINEAR, 1e-3, 1e-5, 10, 10};
    expect_lr(&edge, 9, 9e-4);
    expect_lr(&edge, 10, 1e-5);
    edge.kind = TRN_SCHED_COSINE;
    expect_lr(&edge, 10, 1e-3);
    expect_lr(&edge, 11, 1e-5);

    /* Every step of both decaying kinds against HF's formula (min_lr 0 is
     * HF's plain schedules). */
    for (int k = TRN_SCHED_CONSTANT; k <= TRN_SCHED_COSINE; k++)
        for (int64_t t = 0; t <= 300; t++) {
            trn_sched s = {(trn_sched_kind)k, 3e-4, k == TRN_SCHED_LINEAR ? 0 : 3e-5, 25, 300};
            expect_lr(&s, t, hf_lr(s.kind, t, 25, 300, 3e-4, s.min_lr));
        }
}

/* Case k of the bad-settings table: a default config with one field broken;
 * returns the field the message must name, NULL past the end. */
static const char *bad_cfg(int k, trn_optim_cfg *c) {
    *c = trn_optim_cfg_default();
    c->sched = (trn_sched){TRN_SCHED_COSINE, 1e-3, 1e-4, 10, 100};
    switch (k) {
    case 0: c->beta1 = 1.0; return "beta1";
    case 1: c->beta2 = -0.1; return "beta2";
    case 2: c->beta1 = NAN; return "beta1";
    case 3: c->eps = -1; return "eps";
    case 4: c->weight_decay = INFINITY; return "weight_decay";
    case 5: c->sched.lr = NAN; return "lr";
    case 6: c->sched.lr = -1e-3; return "lr";
    case 7: c->sched.min_lr = 2e-3; return "min_lr";
    case 8: c->sched.warmup_steps = -1; return "warmup_steps";
    case 9: c->sched.total_steps = 5; return "total_steps";
    case 10: c->sched.kind = (trn_sched_kind)7; return "schedule kind";
    case 11: c->max_grad_norm = NAN; return "max_grad_norm";
    default: return NULL;
    }
}

static void test_bad_settings(void **state) {
    (void)state;
    float w[2] = {1, 2}, g[2] = {0};
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "w", w, g, 2, true), 0);
    trn_optim_cfg c;
    const char *field;
    for (int k = 0; (field = bad_cfg(k, &c)) != NULL; k++) {
        eng_err err = {0};
        trn_optim o;
        assert_int_equal(trn_optim_init(&o, &ps, &c, &err), -EINVAL);
        if (!strstr(err.msg, field))
            fail_msg("case %d: \"%s\" does not name %s", k, err.msg, field);
        assert_null(o.m);
        trn_optim_free(&o);
    }
    /* A constant schedule ignores total_steps; settings broken after init
     * are caught by the step, which then changes nothing. */
    c = trn_optim_cfg_default();
    c.sched.total_steps = -3;
    trn_optim o;
    assert_int_equal(trn_optim_init(&o, &ps, &c, NULL), 0);
    o.cfg.beta2 = 1.0;
    eng_err err = {0};
    assert_int_equal(trn_optim_step(&o, &ps, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "beta2"));
    assert_int_equal(o.step, 0);
    assert_true(w[0] == 1 && w[1] == 2);
    trn_optim_free(&o);
    trn_optim_free(&o);  /* twice, and NULL: both fine */
    trn_optim_free(NULL);
    trn_params_free(&ps);
}

/* The optimizer is bound to the sizes of the list it was made for. */
static void test_param_list_mismatch(void **state) {
    (void)state;
    float a[3] = {0}, ga[3] = {0}, b[2] = {0}, gb[2] = {0};
    trn_params ps = {0}, other = {0};
    assert_int_equal(trn_params_add(&ps, "a", a, ga, 3, true), 0);
    assert_int_equal(trn_params_add(&ps, "b", b, gb, 2, false), 0);
    trn_optim_cfg c = trn_optim_cfg_default();
    trn_optim o;
    assert_int_equal(trn_optim_init(&o, &ps, &c, NULL), 0);
    assert_int_equal(o.n_total, 5);
    assert_int_equal(trn_optim_check_params(&o, &ps, NULL), 0);

    eng_err err = {0};
    assert_int_equal(trn_params_add(&other, "a", a, ga, 3, true), 0);
    assert_int_equal(trn_params_add(&other, "b2", b, gb, 1, false), 0);
    assert_int_equal(trn_optim_step(&o, &other, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "'b2'"));
    other.n = 1;
    assert_int_equal(trn_optim_check_params(&o, &other, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "1 parameters, 2 at init"));
    assert_int_equal(o.step, 0);
    trn_optim_free(&o);
    trn_params_free(&other);

    /* An empty list is a valid, if idle, optimizer. */
    trn_params none = {0};
    assert_int_equal(trn_optim_init(&o, &none, &c, NULL), 0);
    assert_int_equal(trn_optim_step(&o, &none, NULL, NULL), 0);
    trn_optim_free(&o);
    trn_params_free(&ps);
}

/* ---- clipping, accumulation, skipped steps -------------------------------- */

static void test_clip_grad_norm(void **state) {
    (void)state;
    float a[2] = {0}, ga[2] = {3, 4}, b[1] = {0}, gb[1] = {12};  /* norm 13 */
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "a", a, ga, 2, true), 0);
    assert_int_equal(trn_params_add(&ps, "b", b, gb, 1, true), 0);

    /* Below the limit, or clipping off: the gradients are untouched. */
    assert_true(trn_optim_clip_grad_norm(&ps, 100.0) == 13.0);
    assert_true(trn_optim_clip_grad_norm(&ps, 0.0) == 13.0);
    assert_true(trn_optim_clip_grad_norm(&ps, -1.0) == 13.0);
    assert_true(ga[0] == 3 && ga[1] == 4 && gb[0] == 12);

    /* Above: the norm before clipping comes back, the new norm is the
     * limit (up to torch's 1e-6 in the coefficient). */
    assert_true(trn_optim_clip_grad_norm(&ps, 1.3) == 13.0);
    assert_true(near(trn_params_grad_norm(&ps), 1.3, 1e-6, 0));
    assert_true(near(ga[0] / gb[0], 0.25, 1e-6, 0));  /* direction kept */

    /* Non-finite: reported, gradients left alone. */
    ga[0] = NAN;
    assert_true(isnan(trn_optim_clip_grad_norm(&ps, 1.0)));
    ga[0] = 0.3f;
    gb[0] = -INFINITY;
    assert_true(isinf(trn_optim_clip_grad_norm(&ps, 1.0)));
    assert_true(ga[0] == 0.3f && isinf(gb[0]));
    trn_params_free(&ps);
}

/* Accumulating unscaled micro-batch gradients and scaling once equals
 * scaling each micro-batch's loss: 1/n is a power of two here, so exactly. */
static void test_accumulation(void **state) {
    (void)state;
    float w[4] = {0}, g[4] = {0};
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "w", w, g, 4, true), 0);
    const float mb[4][4] = {{1, 2, 3, 4}, {-1, 0.5f, 7, 2}, {0, 0, 1, -8}, {3, 3, 3, 3}};
    float scaled_loss[4] = {0};
    trn_params_zero_grad(&ps);
    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++) {
            g[j] += mb[k][j];                 /* backward of the plain loss */
            scaled_loss[j] += 0.25f * mb[k][j];  /* backward of loss / 4 */
        }
    trn_optim_scale_grads(&ps, 0.25f);
    assert_memory_equal(g, scaled_loss, sizeof g);
    assert_true(g[0] == 0.75f && g[3] == 0.25f);
    trn_params_free(&ps);
}

static void test_skip_non_finite(void **state) {
    (void)state;
    float w[3] = {1, -2, 3}, g[3] = {0.1f, 0.2f, 0.3f};
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "w", w, g, 3, true), 0);
    trn_optim_cfg c = trn_optim_cfg_default();
    c.max_grad_norm = 1.0;
    trn_optim o;
    assert_int_equal(trn_optim_init(&o, &ps, &c, NULL), 0);
    assert_int_equal(trn_optim_step(&o, &ps, NULL, NULL), 0);  /* moments non-zero */

    float w0[3], m0[3], v0[3];
    memcpy(w0, w, sizeof w);
    memcpy(m0, o.m, sizeof m0);
    memcpy(v0, o.v, sizeof v0);
    const float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int k = 0; k < 3; k++) {
        g[0] = 0.1f;
        g[1] = bad[k];
        g[2] = 0.3f;
        trn_optim_stats st;
        assert_int_equal(trn_optim_step(&o, &ps, &st, NULL), TRN_OPTIM_SKIPPED);
        assert_false(isfinite(st.grad_norm));
        assert_true(st.lr == 1e-3);
        assert_memory_equal(w, w0, sizeof w0);
        assert_memory_equal(o.m, m0, sizeof m0);
        assert_memory_equal(o.v, v0, sizeof v0);
        assert_true(g[0] == 0.1f && g[2] == 0.3f);  /* not clipped either */
        assert_int_equal(o.step, 1);
        assert_int_equal(o.n_skipped, k + 1);
    }
    /* The next finite batch steps normally. */
    g[1] = 0.2f;
    trn_optim_stats st;
    assert_int_equal(trn_optim_step(&o, &ps, &st, NULL), 0);
    assert_int_equal(o.step, 2);
    assert_true(near(st.grad_norm, sqrt(0.14), 1e-6, 0));
    assert_true(w[0] != w0[0]);
    trn_optim_free(&o);
    trn_params_free(&ps);
}

/* trn_optim_step clips before the update and reports the unclipped norm. */
static void test_step_clips(void **state) {
    (void)state;
    float w[2] = {0.5f, 0.5f}, g[2] = {30, 40};
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "w", w, g, 2, false), 0);
    trn_optim_cfg c = trn_optim_cfg_default();
    c.max_grad_norm = 0.5;
    trn_optim o;
    assert_int_equal(trn_optim_init(&o, &ps, &c, NULL), 0);
    trn_optim_stats st;
    assert_int_equal(trn_optim_step(&o, &ps, &st, NULL), 0);
    assert_true(st.grad_norm == 50.0);
    assert_true(near(trn_params_grad_norm(&ps), 0.5, 1e-6, 0));
    /* m after one step is (1 - beta1) * the clipped gradient. */
    assert_true(near(o.m[0], 0.1 * 0.3, 1e-5, 0));
    assert_true(near(o.m[1], 0.1 * 0.4, 1e-5, 0));
    trn_optim_free(&o);
    trn_params_free(&ps);
}

/* ---- convergence --------------------------------------------------------- */

#define LS_ROWS 48
#define LS_COLS 5

/* Least squares: rows of A x + c against a target made from a known x, c.
 * Fills the gradients of the mean squared residual; returns the loss. */
static double ls_loss_grad(const float A[LS_ROWS][LS_COLS], const float *y, const float *x,
                           const float *c, float *gx, float *gc) {
    double loss = 0, dx[LS_COLS] = {0}, dc = 0;
    for (int i = 0; i < LS_ROWS; i++) {
        double r = c[0] - y[i];
        for (int j = 0; j < LS_COLS; j++) r += (double)A[i][j] * x[j];
        loss += r * r / LS_ROWS;
        for (int j = 0; j < LS_COLS; j++) dx[j] += 2 * r * A[i][j] / LS_ROWS;
        dc += 2 * r / LS_ROWS;
    }
    for (int j = 0; j < LS_COLS; j++) gx[j] = (float)dx[j];
    gc[0] = (float)dc;
    return loss;
}

static void test_converges(void **state) {
    (void)state;
    rng r;
    rng_seed(&r, 7);
    float A[LS_ROWS][LS_COLS], y[LS_ROWS], x[LS_COLS] = {0}, gx[LS_COLS], c[1] = {0}, gc[1];
    const float x_true[LS_COLS] = {1.5f, -2.0f, 0.25f, 3.0f, -0.75f};
    for (int i = 0; i < LS_ROWS; i++) {
        y[i] = 0.5f;
        for (int j = 0; j < LS_COLS; j++) {
            A[i][j] = (float)rng_normal(&r);
            y[i] += A[i][j] * x_true[j];
        }
    }
    trn_params ps = {0};
    assert_int_equal(trn_params_add(&ps, "x", x, gx, LS_COLS, true), 0);
    assert_int_equal(trn_params_add(&ps, "c", c, gc, 1, false), 0);
    trn_optim_cfg cfg = trn_optim_cfg_default();
    cfg.sched = (trn_sched){TRN_SCHED_COSINE, 0.1, 1e-4, 20, 600};
    cfg.weight_decay = 1e-4;
    trn_optim o;
    assert_int_equal(trn_optim_init(&o, &ps, &cfg, NULL), 0);
    double loss0 = ls_loss_grad(A, y, x, c, gx, gc), loss = loss0;
    for (int t = 0; t < 600; t++) {
        trn_params_zero_grad(&ps);
        loss = ls_loss_grad(A, y, x, c, gx, gc);
        assert_int_equal(trn_optim_step(&o, &ps, NULL, NULL), 0);
    }
    loss = ls_loss_grad(A, y, x, c, gx, gc);
    if (!(loss < loss0 * 1e-6)) fail_msg("loss %g -> %g: did not converge", loss0, loss);
    for (int j = 0; j < LS_COLS; j++) assert_true(fabs(x[j] - x_true[j]) < 1e-2);
    assert_true(fabs(c[0] - 0.5f) < 1e-2);
    trn_optim_free(&o);
    trn_params_free(&ps);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adamw_matches_reference),
        cmocka_unit_test(test_defaults_are_torch),
        cmocka_unit_test(test_schedule_key_steps),
        cmocka_unit_test(test_bad_settings),
        cmocka_unit_test(test_param_list_mismatch),
        cmocka_unit_test(test_clip_grad_norm),
        cmocka_unit_test(test_accumulation),
        cmocka_unit_test(test_skip_non_finite),
        cmocka_unit_test(test_step_clips),
        cmocka_unit_test(test_converges),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
