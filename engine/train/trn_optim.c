/* trn_optim.c - AdamW, the learning-rate schedule and gradient clipping
 * (trn_optim.h). */
#include "trn_optim.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- configuration ------------------------------------------------------- */

trn_optim_cfg trn_optim_cfg_default(void) {
    trn_optim_cfg c = {
        .sched = {.kind = TRN_SCHED_CONSTANT, .lr = 1e-3},
        .beta1 = 0.9,
        .beta2 = 0.999,
        .eps = 1e-8,
        .weight_decay = 0.01,
        .max_grad_norm = 1.0,
    };
    return c;
}

static int trn_optim__check_sched(const trn_sched *s, eng_err *err) {
    if (s->kind != TRN_SCHED_CONSTANT && s->kind != TRN_SCHED_LINEAR &&
        s->kind != TRN_SCHED_COSINE)
        return eng_fail(err, -EINVAL, "optimizer: unknown schedule kind %d", (int)s->kind);
    if (!isfinite(s->lr) || s->lr < 0)
        return eng_fail(err, -EINVAL, "optimizer: lr %g is not a finite value >= 0", s->lr);
    if (!isfinite(s->min_lr) || s->min_lr < 0 || s->min_lr > s->lr)
        return eng_fail(err, -EINVAL, "optimizer: min_lr %g is not in [0, lr = %g]", s->min_lr,
                        s->lr);
    if (s->warmup_steps < 0)
        return eng_fail(err, -EINVAL, "optimizer: warmup_steps %lld < 0",
                        (long long)s->warmup_steps);
    if (s->kind != TRN_SCHED_CONSTANT && s->total_steps < s->warmup_steps)
        return eng_fail(err, -EINVAL, "optimizer: total_steps %lld < warmup_steps %lld",
                        (long long)s->total_steps, (long long)s->warmup_steps);
    return 0;
}

int trn_optim_cfg_check(const trn_optim_cfg *cfg, eng_err *err) {
    int rc = trn_optim__check_sched(&cfg->sched, err);
    if (rc) return rc;
    /* !(x >= 0 && x < 1) also rejects NaN. */
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1))
        return eng_fail(err, -EINVAL, "optimizer: beta1 %g is not in [0, 1)", cfg->beta1);
    if (!(cfg->beta2 >= 0 && cfg->beta2 < 1))
        return eng_fail(err, -EINVAL, "optimizer: beta2 %g is not in [0, 1)", cfg->beta2);
    if (!isfinite(cfg->eps) || cfg->eps < 0)
        return eng_fail(err, -EINVAL, "optimizer: eps %g is not a finite value >= 0", cfg->eps);
    if (!isfinite(cfg->weight_decay) || cfg->weight_decay < 0)
        return eng_fail(err, -EINVAL, "optimizer: weight_decay %g is not a finite value >= 0",
                        cfg->weight_decay);
    if (isnan(cfg->max_grad_norm))
        return eng_fail(err, -EINVAL, "optimizer: max_grad_norm is NaN");
    return 0;
}

/* ---- schedule ------------------------------------------------------------ */

double trn_sched_lr(const trn_sched *s, int64_t step) {
    if (step < 0) step = 0;
    if (step < s->warmup_steps)
        return s->lr * (double)step / (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
    if (s->kind == TRN_SCHED_CONSTANT) return s->lr;
    double span = (double)(s->total_steps - s->warmup_steps > 1
                               ? s->total_steps - s->warmup_steps : 1);
    double f;
    if (s->kind == TRN_SCHED_LINEAR) {
        /* HF's (T - step) / max(1, T - W), not 1 - q: they differ at T == W. */
        f = (double)(s->total_steps - step) / span;
        if (f < 0) f = 0;
    } else {
        double q = (double)(step - s->warmup_steps) / span;
        if (q > 1) q = 1;  /* past total_steps: stay at min_lr (HF's cosine rises again) */
        f = 0.5 * (1.0 + cos(M_PI * q));
    }
    return s->min_lr + (s->lr - s->min_lr) * f;
}

/* ---- life cycle ---------------------------------------------------------- */

int trn_optim_init(trn_optim *o, const trn_params *ps, const trn_optim_cfg *cfg, eng_err *err) {
    memset(o, 0, sizeof *o);
    int rc = trn_optim_cfg_check(cfg, err);
    if (rc) return rc;
    o->cfg = *cfg;
    o->n_params = ps->n;
    o->off = malloc(((size_t)ps->n + 1) * sizeof *o->off);
    if (!o->off) goto oom;
    o->off[0] = 0;
    for (int i = 0; i < ps->n; i++) {
        if (ps->p[i].n > SIZE_MAX / (2 * sizeof(float)) - o->off[i]) {
            rc = eng_fail(err, -EINVAL, "optimizer: parameter '%s': too many elements",
                          ps->p[i].name);
            goto fail;
        }
        o->off[i + 1] = o->off[i] + ps->p[i].n;
    }
    o->n_total = o->off[ps->n];
    /* One arena for both moments (calloc: they start at zero, as torch's). */
    o->m = calloc(2 * o->n_total + 1, sizeof(float));
    if (!o->m) goto oom;
    o->v = o->m + o->n_total;
    return 0;
oom:
    rc = eng_fail(err, -ENOMEM, "optimizer: out of memory for %d parameters", ps->n);
fail:
    trn_optim_free(o);
    return rc;
}

void trn_optim_free(trn_optim *o) {
    if (!o) return;
    free(o->off);
    free(o->m);
    memset(o, 0, sizeof *o);
}

int trn_optim_check_params(const trn_optim *o, const trn_params *ps, eng_err *err) {
    int n = ps->n < o->n_params ? ps->n : o->n_params;
    for (int i = 0; i < n; i++) {
        size_t want = o->off[i + 1] - o->off[i];
        if (ps->p[i].n != want)
            return eng_fail(err, -EINVAL,
                            "optimizer: parameter %d '%s' has %zu elements, %zu at init", i,
                            ps->p[i].name, ps->p[i].n, want);
    }
    if (ps->n != o->n_params)
        return eng_fail(err, -EINVAL, "optimizer: %d parameters, %d at init", ps->n,
                        o->n_params);
    return 0;
}

/* ---- gradients ----------------------------------------------------------- */

void trn_optim_scale_grads(trn_params *ps, float s) {
    for (int i = 0; i < ps->n; i++) {
        float *g = ps->p[i].grad;
        for (size_t j = 0; j < ps->p[i].n; j++) g[j] *= s;
    }
}

double trn_optim_clip_grad_norm(trn_params *ps, double max_norm) {
    double norm = trn_params_grad_norm(ps);
    if (!isfinite(norm) || !(max_norm > 0)) return norm;
    /* torch's coefficient, 1e-6 included, so clipped runs match it. */
    double coef = max_norm / (norm + 1e-6);
    if (coef < 1.0) trn_optim_scale_grads(ps, (float)coef);
    return norm;
}

/* ---- AdamW --------------------------------------------------------------- */

/* The per-step scalars, computed once in double as torch does in Python. */
typedef struct trn_optim__adamw_k {
    float decay;      /* 1 - lr * weight_decay */
    float b1, one_b1; /* beta1, 1 - beta1 */
    float b2, one_b2; /* beta2, 1 - beta2 */
    float bc2_sqrt;   /* sqrt(1 - beta2^t) */
    float eps;
    float neg_step;   /* -lr / (1 - beta1^t) */
} trn_optim__adamw_k;

static trn_optim__adamw_k trn_optim__adamw_scalars(const trn_optim_cfg *c, double lr,
                                                   int64_t t) {
    trn_optim__adamw_k k;
    k.decay = (float)(1.0 - lr * c->weight_decay);
    k.b1 = (float)c->beta1;
    k.one_b1 = (float)(1.0 - c->beta1);
    k.b2 = (float)c->beta2;
    k.one_b2 = (float)(1.0 - c->beta2);
    k.bc2_sqrt = (float)sqrt(1.0 - pow(c->beta2, (double)t));
    k.eps = (float)c->eps;
    k.neg_step = (float)(-lr / (1.0 - pow(c->beta1, (double)t)));
    return k;
}

/* p, g, m, v: [n]. Operation order follows torch's _single_tensor_adamw
 * (weight decay first, then lerp, addcmul, addcdiv) so float rounding
 * matches it as closely as plain C allows. */
static void trn_optim__adamw_param(float *p, const float *g, float *m, float *v, size_t n,
                                   const trn_optim__adamw_k *k, bool decay) {
    if (decay)
        for (size_t j = 0; j < n; j++) p[j] *= k->decay;
    for (size_t j = 0; j < n; j++) {
        /* torch's lerp switches form at weight 0.5 to stay exact at 1. */
        if (k->one_b1 < 0.5f)
            m[j] += k->one_b1 * (g[j] - m[j]);
        else
            m[j] = g[j] - (g[j] - m[j]) * k->b1;
        v[j] = v[j] * k->b2 + k->one_b2 * g[j] * g[j];
        float denom = sqrtf(v[j]) / k->bc2_sqrt + k->eps;
        p[j] += k->neg_step * m[j] / denom;
    }
}

int trn_optim_step(trn_optim *o, trn_params *ps, trn_optim_stats *st, eng_err *err) {
    int rc = trn_optim_check_params(o, ps, err);
    if (!rc) rc = trn_optim_cfg_check(&o->cfg, err);
    if (rc) return rc;
    /* A restored checkpoint may carry any counter; never overflow one. */
    if (o->step == INT64_MAX || o->n_skipped == INT64_MAX)
        return eng_fail(err, -EOVERFLOW, "optimizer: step counter at its limit");
    double lr = trn_sched_lr(&o->cfg.sched, o->step);
    double norm = trn_optim_clip_grad_norm(ps, o->cfg.max_grad_norm);
    if (st) {
        st->grad_norm = norm;
        st->lr = lr;
    }
    if (!isfinite(norm)) {
        o->n_skipped++;
        return TRN_OPTIM_SKIPPED;
    }
    o->step++;
    trn_optim__adamw_k k = trn_optim__adamw_scalars(&o->cfg, lr, o->step);
    for (int i = 0; i < ps->n; i++) {
        trn_param *p = &ps->p[i];
        trn_optim__adamw_param(p->value, p->grad, o->m + o->off[i], o->v + o->off[i], p->n, &k,
                         p->decay && o->cfg.weight_decay != 0);
    }
    return 0;
}
