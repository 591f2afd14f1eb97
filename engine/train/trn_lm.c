/* trn_lm.c - the causal-LM training loop (trn_lm.h). */
#include "trn_lm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trn_ckpt.h"

#define TRN_LM_MAX_EVAL_WINDOWS 256

static double trn_lm__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int trn_lm__check(const trn_lm_cfg *c, const trn_dec *d, char *err, size_t errlen)
{
    int n_ctx = trn_dec_hp(d)->n_ctx_train;
    if (c->batch < 1 || c->seq_len < 2 || c->seq_len > n_ctx || c->accum < 1 || c->steps < 1 ||
        c->eval_every < 0 || c->eval_windows < 0 || c->log_every < 1) {
        snprintf(err, errlen, "training: batch %d, seq_len %d (context %d), accum %d, steps %lld,"
                 " log_every %d: need batch, accum, steps, log_every >= 1 and seq_len in 2..%d",
                 c->batch, c->seq_len, n_ctx, c->accum, (long long)c->steps, c->log_every, n_ctx);
        return -EINVAL;
    }
    eng_err e = {0};
    if (trn_optim_cfg_check(&c->optim, &e)) {
        snprintf(err, errlen, "training: %s", e.msg);
        return -EINVAL;
    }
    return 0;
}

int trn_lm_init(trn_lm *lm, trn_dec *d, const trn_lm_cfg *cfg, char *err, size_t errlen)
{
    memset(lm, 0, sizeof(*lm));
    int rc = trn_lm__check(cfg, d, err, errlen);
    if (rc)
        return rc;
    lm->cfg = *cfg;
    lm->d = d;
    rng_seed(&lm->data_rng, cfg->seed);
    if ((rc = trn_dec_params(d, &lm->ps))) {
        snprintf(err, errlen, "training: the model's weights cannot be trained (%s)",
                 rc == -ENOTSUP ? "borrowed from a served model" : "out of memory");
        return rc;
    }
    eng_err e = {0};
    if ((rc = trn_optim_init(&lm->opt, &lm->ps, &cfg->optim, &e))) {
        snprintf(err, errlen, "training: %s", e.msg);
        trn_lm_free(lm);
        return rc;
    }
    size_t T = (size_t)cfg->batch * cfg->seq_len;
    lm->tokens = malloc(T * sizeof(int32_t));
    lm->targets = malloc(T * sizeof(int32_t));
    lm->logp = malloc(T * sizeof(float));
    lm->dlogp = malloc(T * sizeof(float));
    if (!lm->tokens || !lm->targets || !lm->logp || !lm->dlogp) {
        trn_lm_free(lm);
        snprintf(err, errlen, "training: out of memory");
        return -ENOMEM;
    }
    return trn_dec_reserve(d, cfg->batch, cfg->seq_len, err, errlen);
}

void trn_lm_free(trn_lm *lm)
{
    if (!lm)
        return;
    trn_params_free(&lm->ps);
    trn_optim_free(&lm->opt);
    free(lm->tokens);
    free(lm->targets);
    free(lm->logp);
    free(lm->dlogp);
    memset(lm, 0, sizeof(*lm));
}

/* Window w of the batch starts at stream[start]. */
static void trn_lm__window(trn_lm *lm, int w, const int32_t *stream, size_t start)
{
    int L = lm->cfg.seq_len;
    memcpy(lm->tokens + (size_t)w * L, stream + start, (size_t)L * sizeof(int32_t));
    memcpy(lm->targets + (size_t)w * L, stream + start + 1, (size_t)L * sizeof(int32_t));
}

static int trn_lm__fwd(trn_lm *lm, int B, char *err, size_t errlen)
{
    trn_batch b = {.B = B, .L = lm->cfg.seq_len, .tokens = lm->tokens, .targets = lm->targets};
    return trn_dec_forward(lm->d, &b, lm->logp, err, errlen);
}

int trn_lm_step(trn_lm *lm, const trn_lm_data *data, trn_optim_stats *st, double *loss,
                char *err, size_t errlen)
{
    int B = lm->cfg.batch, L = lm->cfg.seq_len;
    if (data->n_train < (size_t)L + 2) {
        snprintf(err, errlen, "training: %zu training tokens, need more than seq_len + 1 = %d",
                 data->n_train, L + 1);
        return -EINVAL;
    }
    size_t T = (size_t)B * L;
    float scale = 1.0f / (float)(T * (size_t)lm->cfg.accum);
    double sum = 0;
    trn_params_zero_grad(&lm->ps);
    for (int k = 0; k < lm->cfg.accum; k++) {
        for (int w = 0; w < B; w++)
            trn_lm__window(lm, w, data->train,
                           (size_t)rng_below(&lm->data_rng, data->n_train - L));
        int rc = trn_lm__fwd(lm, B, err, errlen);
        if (rc)
            return rc;
        for (size_t t = 0; t < T; t++) {
            sum -= lm->logp[t];
            lm->dlogp[t] = -scale;
        }
        trn_dec_backward(lm->d, lm->dlogp);
    }
    *loss = sum / (double)(T * (size_t)lm->cfg.accum);
    eng_err e = {0};
    int rc = trn_optim_step(&lm->opt, &lm->ps, st, &e);
    if (rc < 0) {
        snprintf(err, errlen, "training: %s", e.msg);
        return rc;
    }
    lm->last_loss = *loss;
    return 0;
}

int trn_lm_eval(trn_lm *lm, const trn_lm_data *data, double *loss, char *err, size_t errlen)
{
    int B = lm->cfg.batch, L = lm->cfg.seq_len;
    size_t n_win = data->n_eval > (size_t)L ? (data->n_eval - 1) / L : 0;
    size_t cap = lm->cfg.eval_windows ? (size_t)lm->cfg.eval_windows : TRN_LM_MAX_EVAL_WINDOWS;
    if (n_win > cap)
        n_win = cap;
    if (n_win == 0) {
        snprintf(err, errlen, "evaluation: %zu held-out tokens, need more than seq_len = %d",
                 data->n_eval, L);
        return -EINVAL;
    }
    double sum = 0;
    for (size_t w0 = 0; w0 < n_win; w0 += (size_t)B) {
        int nb = (int)(n_win - w0 < (size_t)B ? n_win - w0 : (size_t)B);
        for (int w = 0; w < nb; w++)
            trn_lm__window(lm, w, data->eval, (w0 + (size_t)w) * L);
        int rc = trn_lm__fwd(lm, nb, err, errlen);
        if (rc)
            return rc;
        for (size_t t = 0; t < (size_t)nb * L; t++)
            sum -= lm->logp[t];
    }
    *loss = sum / (double)(n_win * (size_t)L);
    return 0;
}

int trn_lm_save(trn_lm *lm, const char *path, const void *blob, size_t blob_len, char *err,
                size_t errlen)
{
    trn_ckpt_extra x = {.rngs = &lm->data_rng, .n_rngs = 1, .blob = blob,
                        .blob_len = blob_len};
    eng_err e = {0};
    int rc = trn_ckpt_save(path, &lm->ps, &lm->opt, &x, &e);
    if (rc)
        snprintf(err, errlen, "%s", e.msg);
    return rc;
}

int trn_lm_load(trn_lm *lm, const char *path, char *err, size_t errlen)
{
    trn_ckpt_extra x = {.rngs = &lm->data_rng, .n_rngs = 1};
    eng_err e = {0};
    trn_optim_cfg keep = lm->opt.cfg;
    int rc = trn_ckpt_load(path, &lm->ps, &lm->opt, &x, NULL, NULL, &e);
    if (rc)
        snprintf(err, errlen, "%s", e.msg);
    else
        lm->opt.cfg = keep; /* the run's settings (e.g. more steps) win */
    return rc;
}

static void trn_lm__report(trn_lm *lm, trn_lm_progress_fn fn, void *ctx,
                           const trn_optim_stats *st, int64_t step0, double t0, bool has_eval,
                           double eval_loss)
{
    if (!fn)
        return;
    double el = trn_lm__now() - t0;
    int64_t done = lm->opt.step - step0;
    double tokens = (double)done * lm->cfg.batch * lm->cfg.seq_len * lm->cfg.accum;
    trn_lm_progress p = {
        .step = lm->opt.step, .steps = lm->cfg.steps, .loss = lm->last_loss, .lr = st->lr,
        .grad_norm = st->grad_norm, .tok_per_s = el > 0 ? tokens / el : 0,
        .eta_s = done > 0 ? el / (double)done * (double)(lm->cfg.steps - lm->opt.step) : 0,
        .has_eval = has_eval, .eval_loss = eval_loss,
    };
    fn(ctx, &p);
}

int trn_lm_run(trn_lm *lm, const trn_lm_data *data, trn_lm_progress_fn fn, void *ctx,
               const char *ckpt_path, int ckpt_every, const void *blob, size_t blob_len,
               double *eval_loss, char *err, size_t errlen)
{
    double t0 = trn_lm__now(), loss = 0, ev = NAN;
    int64_t step0 = lm->opt.step;
    trn_optim_stats st = {0};
    int rc = 0;
    int64_t end = lm->cfg.steps;
    if (lm->cfg.stop_after > 0 && lm->cfg.stop_after < end)
        end = lm->cfg.stop_after;
    while (lm->opt.step < end) {
        if ((rc = trn_lm_step(lm, data, &st, &loss, err, errlen)))
            return rc;
        int64_t s = lm->opt.step;
        bool last = s >= end;
        bool do_eval = last || (lm->cfg.eval_every > 0 && s % lm->cfg.eval_every == 0);
        if (do_eval && (rc = trn_lm_eval(lm, data, &ev, err, errlen)))
            return rc;
        if (do_eval || s % lm->cfg.log_every == 0)
            trn_lm__report(lm, fn, ctx, &st, step0, t0, do_eval, ev);
        if (ckpt_path && (last || (ckpt_every > 0 && s % ckpt_every == 0)) &&
            (rc = trn_lm_save(lm, ckpt_path, blob, blob_len, err, errlen)))
            return rc;
    }
    if (eval_loss)
        *eval_loss = ev;
    return 0;
}

double trn_lm_unigram_loss(const trn_lm_data *data, int n_vocab)
{
    double *count = calloc((size_t)n_vocab, sizeof(double));
    if (!count || data->n_eval == 0)
        return (free(count), NAN);
    for (size_t i = 0; i < data->n_train; i++)
        count[data->train[i]] += 1;
    double total = (double)data->n_train + n_vocab, s = 0;
    for (size_t i = 0; i < data->n_eval; i++)
        s -= log((count[data->eval[i]] + 1) / total);
    free(count);
    return s / (double)data->n_eval;
}
