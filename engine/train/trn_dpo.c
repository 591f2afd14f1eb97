/* trn_dpo.c - DPO training of a LoRA adapter (trn_dpo.h). */
#include "trn_dpo.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const trn_dpo__names[] = {"sigmoid", "hinge", "ipo"};

const char *trn_dpo_loss_name(trn_dpo_loss l)
{
    return l >= TRN_DPO_SIGMOID && l <= TRN_DPO_IPO ? trn_dpo__names[l] : "?";
}

int trn_dpo_loss_parse(const char *s, trn_dpo_loss *out)
{
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, trn_dpo__names[i])) {
            *out = (trn_dpo_loss)i;
            return 0;
        }
    return -EINVAL;
}

void trn_dpo_cfg_default(trn_dpo_cfg *c)
{
    *c = (trn_dpo_cfg){.loss = TRN_DPO_SIGMOID, .beta = 0.1, .batch = 4, .accum = 1,
                       .epochs = 1, .log_every = 10, .seed = 42};
    c->optim = trn_optim_cfg_default();
    c->optim.sched.kind = TRN_SCHED_LINEAR;
    c->optim.sched.lr = 5e-5;
    c->optim.sched.warmup_steps = -1; /* 10% of the run, resolved at init */
    c->optim.weight_decay = 0.0;
}

static double trn_dpo__logsig(double x)
{
    return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x));
}

static double trn_dpo__sig(double x)
{
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}

double trn_dpo_pair_loss(const trn_dpo_cfg *c, double z, double *dz)
{
    double b = c->beta, e = c->label_smoothing;
    switch (c->loss) {
    case TRN_DPO_HINGE:
        *dz = 1 - b * z > 0 ? -b : 0;
        return fmax(0, 1 - b * z);
    case TRN_DPO_IPO: {
        double d = z - 1 / (2 * b);
        *dz = 2 * d;
        return d * d;
    }
    default:
        *dz = b * (-(1 - e) * trn_dpo__sig(-b * z) + e * trn_dpo__sig(b * z));
        return -(1 - e) * trn_dpo__logsig(b * z) - e * trn_dpo__logsig(-b * z);
    }
}

/* ---- batches of pairs ----------------------------------------------------- */

static int trn_dpo__forward(trn_dpo *t, const int *idx, int n, char *err, size_t errlen)
{
    int rc = pref_batch_make(&t->pb, t->data, idx, n, err, errlen);
    if (rc)
        return rc;
    size_t T = (size_t)t->pb.B * t->pb.L;
    if (T > t->cap) {
        float *a = realloc(t->logp, T * sizeof(float)), *b = NULL;
        if (a)
            t->logp = a;
        if (a && (b = realloc(t->dlogp, T * sizeof(float))))
            t->dlogp = b;
        if (!a || !b) {
            snprintf(err, errlen, "DPO: out of memory for a batch of %zu tokens", T);
            return -ENOMEM;
        }
        t->cap = T;
    }
    trn_batch b = {.B = t->pb.B, .L = t->pb.L, .tokens = t->pb.tokens, .lens = t->pb.lens,
                   .targets = t->pb.targets};
    return trn_dec_forward(t->d, &b, t->logp, err, errlen);
}

/* Summed log-prob of row's response and its token count. */
static double trn_dpo__seq(const trn_dpo *t, int row, int *count)
{
    const float *lp = t->logp + (size_t)row * t->pb.L;
    const int32_t *tg = t->pb.targets + (size_t)row * t->pb.L;
    double s = 0;
    int c = 0;
    for (int i = 0; i < t->pb.L; i++)
        if (tg[i] >= 0) {
            s += lp[i];
            c++;
        }
    *count = c;
    return s;
}

/* The policy log-probs of a batch's pairs against their cached references:
 * adds the metrics, and when grad_scale > 0 fills dlogp for backward. */
static void trn_dpo__pairs(trn_dpo *t, const int *idx, int n, double grad_scale,
                           trn_dpo_metrics *m)
{
    bool ipo = t->cfg.loss == TRN_DPO_IPO;
    double beta = t->cfg.beta;
    if (grad_scale > 0)
        memset(t->dlogp, 0, (size_t)t->pb.B * t->pb.L * sizeof(float));
    /* the NLL term is a mean over the micro-batch's chosen tokens (as TRL's):
     * each pair's share of it is -pc / n_chosen, counted n times by finish */
    int n_chosen = 0, c;
    for (int i = 0; i < n; i++) {
        trn_dpo__seq(t, 2 * i, &c);
        n_chosen += c;
    }
    double per_token = n_chosen ? (double)n / n_chosen : 0, alpha = t->cfg.rpo_alpha;
    for (int i = 0; i < n; i++) {
        int nc, nr;
        double pc = trn_dpo__seq(t, 2 * i, &nc), pr = trn_dpo__seq(t, 2 * i + 1, &nr);
        double rc = t->ref[2 * idx[i]], rr = t->ref[2 * idx[i] + 1];
        double fc = ipo ? 1.0 / (nc ? nc : 1) : 1, fr = ipo ? 1.0 / (nr ? nr : 1) : 1;
        double z = fc * (pc - rc) - fr * (pr - rr), dz;
        double nll = -pc * per_token;
        m->loss += trn_dpo_pair_loss(&t->cfg, z, &dz) + alpha * nll;
        m->nll_loss += nll;
        m->rewards_chosen += beta * (pc - rc);
        m->rewards_rejected += beta * (pr - rr);
        m->rewards_accuracies += beta * (pc - rc) > beta * (pr - rr);
        m->logps_chosen += pc;
        m->logps_rejected += pr;
        m->n++;
        if (grad_scale <= 0)
            continue;
        for (int k = 0; k < 2; k++) {
            int row = 2 * i + k;
            float g = (float)(((k ? -fr : fc) * dz - (k ? 0 : alpha * per_token)) * grad_scale);
            for (int j = 0; j < t->pb.L; j++)
                if (t->pb.targets[(size_t)row * t->pb.L + j] >= 0)
                    t->dlogp[(size_t)row * t->pb.L + j] = g;
        }
    }
}

static void trn_dpo__finish(trn_dpo_metrics *m)
{
    double n = m->n ? m->n : 1;
    m->loss /= n;
    m->rewards_chosen /= n;
    m->rewards_rejected /= n;
    m->rewards_accuracies /= n;
    m->logps_chosen /= n;
    m->logps_rejected /= n;
    m->nll_loss /= n;
    m->rewards_margins = m->rewards_chosen - m->rewards_rejected;
}

/* ---- set-up ----------------------------------------------------------------- */

static int trn_dpo__check(const trn_dpo_cfg *c, char *err, size_t errlen)
{
    if (!(c->beta > 0) || !(c->label_smoothing >= 0 && c->label_smoothing < 0.5) ||
        !(c->rpo_alpha >= 0 && c->rpo_alpha <= 1e6) ||
        c->batch < 1 || c->accum < 1 || c->epochs < 1 || c->max_steps < 0 ||
        c->eval_every < 0 || c->log_every < 1 || c->loss < TRN_DPO_SIGMOID ||
        c->loss > TRN_DPO_IPO) {
        snprintf(err, errlen, "DPO: beta %g, label_smoothing %g, rpo_alpha %g, batch %d, "
                 "accum %d, epochs %d: need beta > 0, label_smoothing in [0, 0.5), rpo_alpha "
                 ">= 0, batch, accum, epochs >= 1", c->beta, c->label_smoothing, c->rpo_alpha,
                 c->batch, c->accum, c->epochs);
        return -EINVAL;
    }
    return 0;
}

/* Reference log-probs of every pair with the adapter off. */
static int trn_dpo__reference(trn_dpo *t, char *err, size_t errlen)
{
    int n = t->data->n, rc = 0;
    int *idx = malloc((size_t)t->cfg.batch * sizeof(int));
    if (!idx)
        return -ENOMEM;
    t->lo->enabled = false;
    t->lo->training = false;
    for (int s = 0; s < n && !rc; s += t->cfg.batch) {
        int k = n - s < t->cfg.batch ? n - s : t->cfg.batch, c;
        for (int i = 0; i < k; i++)
            idx[i] = s + i;
        if ((rc = trn_dpo__forward(t, idx, k, err, errlen)))
            break;
        for (int i = 0; i < 2 * k; i++)
            t->ref[2 * s + i] = (float)trn_dpo__seq(t, i, &c);
    }
    t->lo->enabled = true;
    free(idx);
    return rc;
}

static void trn_dpo__shuffle(trn_dpo *t)
{
    for (int i = t->n_train - 1; i > 0; i--) {
        int j = (int)rng_below(&t->shuffle, (uint64_t)i + 1), x = t->train_idx[i];
        t->train_idx[i] = t->train_idx[j];
        t->train_idx[j] = x;
    }
    t->epoch_pos = 0;
}

int trn_dpo_init(trn_dpo *t, trn_dec *d, trn_lora *lo, const pref_set *data,
                 const trn_dpo_cfg *cfg, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    int rc = trn_dpo__check(cfg, err, errlen);
    if (rc)
        return rc;
    t->cfg = *cfg;
    t->d = d;
    t->lo = lo;
    t->data = data;
    rng_seed(&t->shuffle, cfg->seed);
    t->ref = malloc((size_t)(2 * data->n + 1) * sizeof(float));
    t->train_idx = malloc((size_t)(data->n + 1) * sizeof(int));
    t->eval_idx = malloc((size_t)(data->n + 1) * sizeof(int));
    if (!t->ref || !t->train_idx || !t->eval_idx || trn_lora_params(lo, &t->ps)) {
        trn_dpo_free(t);
        snprintf(err, errlen, "DPO: out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < data->n; i++) {
        if (data->p[i].eval)
            t->eval_idx[t->n_eval++] = i;
        else
            t->train_idx[t->n_train++] = i;
    }
    if (t->n_train == 0) {
        trn_dpo_free(t);
        snprintf(err, errlen, "DPO: no training pairs (%d pairs, all in the eval split)",
                 data->n);
        return -EINVAL;
    }
    int64_t per_epoch = (t->n_train + (int64_t)cfg->batch * cfg->accum - 1) /
                        ((int64_t)cfg->batch * cfg->accum);
    t->steps = cfg->max_steps > 0 ? cfg->max_steps : per_epoch * cfg->epochs;
    t->cfg.optim.sched.total_steps = t->steps;
    if (t->cfg.optim.sched.warmup_steps < 0)
        t->cfg.optim.sched.warmup_steps = t->steps / 10;
    eng_err e = {0};
    if ((rc = trn_optim_init(&t->opt, &t->ps, &t->cfg.optim, &e))) {
        snprintf(err, errlen, "DPO: %s", e.msg);
        trn_dpo_free(t);
        return rc;
    }
    trn_dpo__shuffle(t);
    trn_dec_set_lora(d, lo);
    if ((rc = trn_dpo__reference(t, err, errlen)))
        trn_dpo_free(t);
    return rc;
}

void trn_dpo_free(trn_dpo *t)
{
    if (!t)
        return;
    free(t->ref);
    free(t->train_idx);
    free(t->eval_idx);
    trn_params_free(&t->ps);
    trn_optim_free(&t->opt);
    pref_batch_free(&t->pb);
    free(t->logp);
    free(t->dlogp);
    memset(t, 0, sizeof(*t));
}

/* ---- steps -------------------------------------------------------------------- */

/* The next n train pairs (a new shuffled epoch when one runs out). */
static int trn_dpo__next(trn_dpo *t, int *idx)
{
    int n = 0;
    while (n < t->cfg.batch) {
        if (t->epoch_pos == t->n_train) {
            t->epoch++;
            trn_dpo__shuffle(t);
            if (n > 0)
                break; /* an epoch's last batch may be short */
        }
        idx[n++] = t->train_idx[t->epoch_pos++];
    }
    return n;
}

int trn_dpo_step(trn_dpo *t, trn_dpo_metrics *m, trn_optim_stats *st, char *err,
                 size_t errlen)
{
    int idx[1024], rc = 0;
    int *ix = t->cfg.batch <= 1024 ? idx : malloc((size_t)t->cfg.batch * sizeof(int));
    if (!ix)
        return -ENOMEM;
    memset(m, 0, sizeof(*m));
    trn_params_zero_grad(&t->ps);
    t->lo->training = true;
    for (int k = 0; k < t->cfg.accum && !rc; k++) {
        int n = trn_dpo__next(t, ix);
        if ((rc = trn_dpo__forward(t, ix, n, err, errlen)))
            break;
        trn_dpo__pairs(t, ix, n, 1.0 / ((double)n * t->cfg.accum), m);
        trn_dec_backward(t->d, t->dlogp);
    }
    t->lo->training = false;
    if (ix != idx)
        free(ix);
    if (rc)
        return rc;
    trn_dpo__finish(m);
    eng_err e = {0};
    rc = trn_optim_step(&t->opt, &t->ps, st, &e);
    if (rc < 0)
        snprintf(err, errlen, "DPO: %s", e.msg);
    return rc < 0 ? rc : 0;
}

int trn_dpo_eval(trn_dpo *t, bool use_train, trn_dpo_metrics *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof(*m));
    const int *all = t->n_eval || !use_train ? t->eval_idx : t->train_idx;
    int n = t->n_eval || !use_train ? t->n_eval : t->n_train;
    for (int s = 0; s < n; s += t->cfg.batch) {
        int k = n - s < t->cfg.batch ? n - s : t->cfg.batch;
        int rc = trn_dpo__forward(t, all + s, k, err, errlen);
        if (rc)
            return rc;
        trn_dpo__pairs(t, all + s, k, 0, m);
    }
    trn_dpo__finish(m);
    return 0;
}

static double trn_dpo__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int trn_dpo_run(trn_dpo *t, trn_dpo_progress_fn fn, void *ctx, trn_dpo_metrics *final,
                char *err, size_t errlen)
{
    double t0 = trn_dpo__now();
    int64_t step0 = t->opt.step;
    trn_dpo_progress p = {.steps = t->steps};
    while (t->opt.step < t->steps) {
        trn_optim_stats st = {0};
        int rc = trn_dpo_step(t, &p.train, &st, err, errlen);
        if (rc)
            return rc;
        int64_t s = t->opt.step;
        bool last = s >= t->steps;
        p.has_eval = last || (t->cfg.eval_every > 0 && s % t->cfg.eval_every == 0);
        if (p.has_eval && (rc = trn_dpo_eval(t, true, &p.eval, err, errlen)))
            return rc;
        if (!fn || !(p.has_eval || s % t->cfg.log_every == 0))
            continue;
        double el = trn_dpo__now() - t0;
        p.step = s;
        p.epoch = t->epoch + (double)t->epoch_pos / t->n_train;
        p.lr = st.lr;
        p.grad_norm = st.grad_norm;
        p.pairs_per_s = el > 0 ? (double)(s - step0) * t->cfg.batch * t->cfg.accum / el : 0;
        p.eta_s = s > step0 ? el / (double)(s - step0) * (double)(t->steps - s) : 0;
        fn(ctx, &p);
    }
    if (final)
        *final = p.eval;
    return 0;
}
