/* trn_clip_train.c - the contrastive pretraining loop (trn_clip_train.h). */
#include "trn_clip_train.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trn_ckpt.h"

#define TRN_CLIP_TRAIN__ZS_CHUNK 256

static double trn_clip_train__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

trn_clip_train_cfg trn_clip_train_cfg_default(void)
{
    trn_clip_train_cfg c = {.batch = 64, .steps = 1000, .log_every = 50, .seed = 1};
    c.optim = trn_optim_cfg_default();
    c.optim.sched = (trn_sched){.kind = TRN_SCHED_COSINE, .lr = 5e-4, .min_lr = 0,
                                .warmup_steps = 50, .total_steps = 1000};
    c.optim.beta2 = 0.98;
    c.optim.eps = 1e-6;
    c.optim.weight_decay = 0.2;
    c.optim.max_grad_norm = 1.0;
    return c;
}

void trn_clip_progress_format(const trn_clip_progress *p, char *buf, size_t len)
{
    long eta = isfinite(p->eta_s) && p->eta_s > 0 ? (long)(p->eta_s + 0.5) : 0;
    snprintf(buf, len, "step %lld/%lld loss %.4f acc %.3f lr %.2e gnorm %.3f scale %.1f "
             "%.0f img/s eta %ldm%02lds", (long long)p->step, (long long)p->steps, p->loss,
             p->accuracy, p->lr, p->grad_norm, p->scale, p->img_per_s, eta / 60, eta % 60);
}

static int trn_clip_train__check(const trn_clip_train_cfg *c, char *err, size_t errlen)
{
    if (c->batch < 2 || c->batch > TRN_CLIP_MAX_BATCH || c->steps < 1 || c->log_every < 1) {
        snprintf(err, errlen, "clip training: batch %d, steps %lld, log_every %d: need batch in "
                 "2..%d and steps, log_every >= 1", c->batch, (long long)c->steps,
                 c->log_every, TRN_CLIP_MAX_BATCH);
        return -EINVAL;
    }
    eng_err e = {0};
    if (trn_optim_cfg_check(&c->optim, &e)) {
        snprintf(err, errlen, "clip training: %s", e.msg);
        return -EINVAL;
    }
    return 0;
}

int trn_clip_train_init(trn_clip_train *t, trn_clip *m, const trn_clip_train_cfg *cfg,
                        char *err, size_t errlen)
{
    memset(t, 0, sizeof *t);
    int rc = trn_clip_train__check(cfg, err, errlen);
    if (rc)
        return rc;
    t->cfg = *cfg;
    t->m = m;
    rng_seed(&t->data_rng, cfg->seed);
    const clip_hparams *hp = &trn_clip_config(m)->hp;
    const size_t B = (size_t)cfg->batch, S = (size_t)hp->image_size;
    eng_err e = {0};
    if ((rc = trn_clip_params(m, &t->ps)))
        goto nomem;
    if ((rc = trn_optim_init(&t->opt, &t->ps, &cfg->optim, &e))) {
        snprintf(err, errlen, "clip training: %s", e.msg);
        trn_clip_train_free(t);
        return rc;
    }
    t->pixels = malloc(B * 3 * S * S * sizeof(float));
    t->tokens = malloc(B * (size_t)hp->text_ctx * sizeof(int32_t));
    t->lens = malloc(B * sizeof(int32_t));
    if (!t->pixels || !t->tokens || !t->lens)
        goto nomem;
    return 0;
nomem:
    trn_clip_train_free(t);
    snprintf(err, errlen, "clip training: out of memory");
    return -ENOMEM;
}

void trn_clip_train_free(trn_clip_train *t)
{
    if (!t)
        return;
    trn_params_free(&t->ps);
    trn_optim_free(&t->opt);
    free(t->perm);
    free(t->pixels);
    free(t->tokens);
    free(t->lens);
    memset(t, 0, sizeof *t);
}

static int trn_clip_train__check_data(const trn_clip_train *t, const trn_clip_data *d,
                                      char *err, size_t errlen)
{
    const clip_hparams *hp = &trn_clip_config(t->m)->hp;
    if (d->n < t->cfg.batch || !d->pixels || !d->tokens || d->L < 1 || d->L > hp->text_ctx) {
        snprintf(err, errlen, "clip training data: %d pairs with captions of stride %d: need at "
                 "least a batch (%d) of pairs, pixels, tokens and a stride in 1..%d", d->n,
                 d->L, t->cfg.batch, hp->text_ctx);
        return -EINVAL;
    }
    return 0;
}

/* Copies `batch` distinct random pairs of d into t's batch buffers. */
static int trn_clip_train__sample(trn_clip_train *t, const trn_clip_data *d, char *err,
                                  size_t errlen)
{
    if (t->n_perm != d->n) {
        int *p = realloc(t->perm, (size_t)d->n * sizeof(int));
        if (!p) {
            snprintf(err, errlen, "clip training: out of memory for %d pairs", d->n);
            return -ENOMEM;
        }
        t->perm = p;
        t->n_perm = d->n;
    }
    /* from the identity each time, so a batch depends on the generator only */
    for (int i = 0; i < d->n; i++)
        t->perm[i] = i;
    const int S = trn_clip_config(t->m)->hp.image_size, B = t->cfg.batch;
    const size_t npx = (size_t)3 * S * S;
    t->L = d->L;
    for (int k = 0; k < B; k++) {
        int j = k + (int)rng_below(&t->data_rng, (uint64_t)(d->n - k));
        int s = t->perm[j];
        t->perm[j] = t->perm[k];
        t->perm[k] = s;
        memcpy(t->pixels + (size_t)k * npx, d->pixels + (size_t)s * npx, npx * sizeof(float));
        memcpy(t->tokens + (size_t)k * d->L, d->tokens + (size_t)s * d->L,
               (size_t)d->L * sizeof(int32_t));
        t->lens[k] = d->lens ? d->lens[s] : d->L;
    }
    return 0;
}

int trn_clip_train_step(trn_clip_train *t, const trn_clip_data *data, trn_clip_result *res,
                        trn_optim_stats *st, char *err, size_t errlen)
{
    int rc = trn_clip_train__check_data(t, data, err, errlen);
    if (rc || (rc = trn_clip_train__sample(t, data, err, errlen)))
        return rc;
    trn_clip_batch b = {.B = t->cfg.batch, .pixels = t->pixels, .L = t->L,
                        .tokens = t->tokens, .lens = t->lens};
    trn_clip_result r;
    trn_optim_stats s = {0};
    trn_params_zero_grad(&t->ps);
    if ((rc = trn_clip_forward(t->m, &b, &r, err, errlen)) ||
        (rc = trn_clip_backward(t->m, 1.0f, err, errlen)))
        return rc;
    eng_err e = {0};
    rc = trn_optim_step(&t->opt, &t->ps, &s, &e);
    if (rc < 0) {
        snprintf(err, errlen, "clip training: %s", e.msg);
        return rc;
    }
    trn_clip_clamp_logit_scale(t->m);
    t->sum_loss += r.loss;
    t->sum_acc += (r.i2t_correct + r.t2i_correct) / (2.0 * b.B);
    t->n_sum++;
    if (res)
        *res = r;
    if (st)
        *st = s;
    return 0;
}

int trn_clip_train_run(trn_clip_train *t, const trn_clip_data *data, trn_clip_progress_fn fn,
                       void *ctx, char *err, size_t errlen)
{
    const double t0 = trn_clip_train__now();
    const int64_t step0 = t->opt.step;
    t->sum_loss = t->sum_acc = 0;
    t->n_sum = 0;
    while (t->opt.step < t->cfg.steps) {
        trn_optim_stats st;
        int rc = trn_clip_train_step(t, data, NULL, &st, err, errlen);
        if (rc)
            return rc;
        const int64_t s = t->opt.step;
        if (!fn || (s % t->cfg.log_every && s < t->cfg.steps))
            continue;
        const double el = trn_clip_train__now() - t0;
        const int64_t done = s - step0;
        trn_clip_progress p = {
            .step = s, .steps = t->cfg.steps,
            .loss = t->n_sum ? t->sum_loss / t->n_sum : NAN,
            .accuracy = t->n_sum ? t->sum_acc / t->n_sum : NAN,
            .lr = st.lr, .grad_norm = st.grad_norm, .scale = trn_clip_scale(t->m),
            .img_per_s = el > 0 ? (double)done * t->cfg.batch / el : 0,
            .eta_s = done > 0 ? el / (double)done * (double)(t->cfg.steps - s) : 0,
        };
        fn(ctx, &p);
        t->sum_loss = t->sum_acc = 0;
        t->n_sum = 0;
    }
    return 0;
}

int trn_clip_train_save(trn_clip_train *t, const char *path, char *err, size_t errlen)
{
    trn_ckpt_extra x = {.rngs = &t->data_rng, .n_rngs = 1};
    eng_err e = {0};
    int rc = trn_ckpt_save(path, &t->ps, &t->opt, &x, &e);
    if (rc)
        snprintf(err, errlen, "%s", e.msg);
    return rc;
}

int trn_clip_train_load(trn_clip_train *t, const char *path, char *err, size_t errlen)
{
    trn_ckpt_extra x = {.rngs = &t->data_rng, .n_rngs = 1};
    eng_err e = {0};
    trn_optim_cfg keep = t->opt.cfg;
    int rc = trn_ckpt_load(path, &t->ps, &t->opt, &x, NULL, NULL, &e);
    if (rc)
        snprintf(err, errlen, "%s", e.msg);
    else
        t->opt.cfg = keep; /* the run's settings (e.g. more steps) win */
    return rc;
}

/* ---- zero-shot classification ------------------------------------------------------ */

static void trn_clip_train__normalize(float *x, int n, int D)
{
    for (int i = 0; i < n; i++) {
        double s = 0;
        for (int k = 0; k < D; k++)
            s += (double)x[(size_t)i * D + k] * x[(size_t)i * D + k];
        float inv = s > 0 ? (float)(1 / sqrt(s)) : 0.0f;
        for (int k = 0; k < D; k++)
            x[(size_t)i * D + k] *= inv;
    }
}

int trn_clip_zero_shot(trn_clip *m, const float *pixels, int n, const int32_t *labels,
                       const int32_t *class_tokens, const int32_t *class_lens, int n_class,
                       int L, double *accuracy, int32_t *pred, char *err, size_t errlen)
{
    const clip_hparams *hp = &trn_clip_config(m)->hp;
    const int D = hp->proj_dim;
    if (n < 1 || n_class < 1 || n_class > TRN_CLIP_MAX_BATCH || !pixels || !labels) {
        snprintf(err, errlen, "zero-shot: %d images, %d classes: need at least one of each "
                 "(at most %d classes)", n, n_class, TRN_CLIP_MAX_BATCH);
        return -EINVAL;
    }
    float *cls = malloc((size_t)n_class * D * sizeof(float));
    if (!cls) {
        snprintf(err, errlen, "zero-shot: out of memory");
        return -ENOMEM;
    }
    trn_clip_batch tb = {.B = n_class, .L = L, .tokens = class_tokens, .lens = class_lens};
    int rc = trn_clip_forward(m, &tb, NULL, err, errlen);
    if (rc)
        goto done;
    memcpy(cls, trn_clip_text_embeds(m), (size_t)n_class * D * sizeof(float));
    trn_clip_train__normalize(cls, n_class, D);
    const size_t npx = (size_t)3 * hp->image_size * hp->image_size;
    int correct = 0;
    for (int i0 = 0; i0 < n; i0 += TRN_CLIP_TRAIN__ZS_CHUNK) {
        int nb = n - i0 < TRN_CLIP_TRAIN__ZS_CHUNK ? n - i0 : TRN_CLIP_TRAIN__ZS_CHUNK;
        trn_clip_batch ib = {.B = nb, .pixels = pixels + (size_t)i0 * npx};
        if ((rc = trn_clip_forward(m, &ib, NULL, err, errlen)))
            goto done;
        const float *img = trn_clip_image_embeds(m); /* the norm does not change the argmax */
        for (int i = 0; i < nb; i++) {
            int best = 0;
            double bs = -INFINITY;
            for (int c = 0; c < n_class; c++) {
                double s = 0;
                for (int k = 0; k < D; k++)
                    s += (double)img[(size_t)i * D + k] * cls[(size_t)c * D + k];
                if (s > bs) {
                    bs = s;
                    best = c;
                }
            }
            correct += best == labels[i0 + i];
            if (pred)
                pred[i0 + i] = best;
        }
    }
    *accuracy = (double)correct / n;
done:
    free(cls);
    return rc;
}
