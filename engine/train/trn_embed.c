/* trn_embed.c - contrastive sentence-embedding training (trn_embed.h). */
#include "trn_embed.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "trn_clip_ops.h"
#include "trn_embed_ops.h"

static double trn_embed__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the data ------------------------------------------------------------- */

int trn_embed_set_init(trn_embed_set *s, int n_neg)
{
    memset(s, 0, sizeof(*s));
    if (n_neg < 0)
        return -EINVAL;
    s->n_neg = n_neg;
    return 0;
}

int trn_embed_set_add(trn_embed_set *s, const int32_t *const *seqs, const int32_t *lens)
{
    int per = 2 + s->n_neg;
    for (int k = 0; k < per; k++)
        if (lens[k] < 1)
            return -EINVAL;
    size_t n = (size_t)(s->n_items + 1) * per;
    int32_t **seq = realloc(s->seq, n * sizeof(*seq));
    if (!seq)
        return -ENOMEM;
    s->seq = seq;
    int32_t *len = realloc(s->len, n * sizeof(*len));
    if (!len)
        return -ENOMEM;
    s->len = len;
    size_t at = (size_t)s->n_items * per;
    for (int k = 0; k < per; k++) {
        seq[at + k] = malloc((size_t)lens[k] * sizeof(int32_t));
        if (!seq[at + k]) {
            for (int j = 0; j < k; j++)
                free(seq[at + j]);
            return -ENOMEM;
        }
        memcpy(seq[at + k], seqs[k], (size_t)lens[k] * sizeof(int32_t));
        len[at + k] = lens[k];
        if (lens[k] > s->max_len)
            s->max_len = lens[k];
    }
    s->n_items++;
    return 0;
}

void trn_embed_set_free(trn_embed_set *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->seq && i < (size_t)s->n_items * (2 + s->n_neg); i++)
        free(s->seq[i]);
    free(s->seq);
    free(s->len);
    memset(s, 0, sizeof(*s));
}

/* ---- set-up ----------------------------------------------------------------- */

static int trn_embed__check(const trn_embed_cfg *c, const trn_dec *d, int max_len, char *err,
                            size_t errlen)
{
    int n_ctx = trn_dec_hp(d)->n_ctx_train;
    if (c->batch < 2 || c->negatives < 0 || !(c->scale > 0) || c->steps < 1 ||
        c->log_every < 1 || c->eval_every < 0 || max_len < 1 || max_len > n_ctx) {
        snprintf(err, errlen, "embedding training: batch %d, negatives %d, scale %g, steps "
                 "%lld, log_every %d, sentences up to %d tokens (context %d): need batch >= 2, "
                 "scale > 0, steps and log_every >= 1, sentences within the context",
                 c->batch, c->negatives, (double)c->scale, (long long)c->steps, c->log_every,
                 max_len, n_ctx);
        return -EINVAL;
    }
    eng_err e = {0};
    if (trn_optim_cfg_check(&c->optim, &e)) {
        snprintf(err, errlen, "embedding training: %s", e.msg);
        return -EINVAL;
    }
    return 0;
}

int trn_embed_init(trn_embed *te, trn_dec *d, const trn_embed_cfg *cfg, int max_len,
                   char *err, size_t errlen)
{
    memset(te, 0, sizeof(*te));
    int rc = trn_embed__check(cfg, d, max_len, err, errlen);
    if (rc)
        return rc;
    te->cfg = *cfg;
    te->d = d;
    rng_seed(&te->rng, cfg->seed);
    if ((rc = trn_dec_params(d, &te->ps))) {
        snprintf(err, errlen, "embedding training: the model's weights cannot be trained (%s)",
                 rc == -ENOTSUP ? "borrowed from a served model" : "out of memory");
        return rc;
    }
    eng_err e = {0};
    if ((rc = trn_optim_init(&te->opt, &te->ps, &cfg->optim, &e))) {
        snprintf(err, errlen, "embedding training: %s", e.msg);
        trn_embed_free(te);
        return rc;
    }
    size_t N = (size_t)cfg->batch * (2 + cfg->negatives), L = (size_t)max_len;
    size_t C = (size_t)trn_dec_hp(d)->n_embd, Q = (size_t)cfg->batch;
    te->cap_seqs = (int)N;
    te->cap_len = max_len;
    te->tokens = malloc(N * L * sizeof(int32_t));
    te->lens = malloc(N * sizeof(int32_t));
    te->pooled = malloc(N * C * sizeof(float));
    te->emb = malloc(N * C * sizeof(float));
    te->norm = malloc(N * sizeof(float));
    te->dpooled = malloc(N * C * sizeof(float));
    te->demb = malloc(N * C * sizeof(float));
    te->dhidden = malloc(N * L * C * sizeof(float));
    te->logits = malloc(Q * N * sizeof(float));
    te->lse = malloc(Q * sizeof(float));
    te->scratch = malloc(Q * N * sizeof(float));
    if (!te->tokens || !te->lens || !te->pooled || !te->emb || !te->norm || !te->dpooled ||
        !te->demb || !te->dhidden || !te->logits || !te->lse || !te->scratch) {
        trn_embed_free(te);
        snprintf(err, errlen, "embedding training: out of memory");
        return -ENOMEM;
    }
    return trn_dec_reserve(d, (int)N, max_len, err, errlen);
}

void trn_embed_free(trn_embed *te)
{
    if (!te)
        return;
    trn_params_free(&te->ps);
    trn_optim_free(&te->opt);
    free(te->tokens);
    free(te->lens);
    free(te->pooled);
    free(te->emb);
    free(te->norm);
    free(te->dpooled);
    free(te->demb);
    free(te->dhidden);
    free(te->logits);
    free(te->lse);
    free(te->scratch);
    memset(te, 0, sizeof(*te));
}

/* ---- the forward pass: sentences -> normalised embeddings ------------------------ */

/* Runs n <= cap_seqs sequences as one right-padded batch; te->emb[n, C]
 * gets their embeddings (te->pooled, te->norm kept for the backward). *L
 * receives the padded length. */
static int trn_embed__forward(trn_embed *te, const int32_t *const *seqs, const int32_t *lens,
                              int n, int *L_out, char *err, size_t errlen)
{
    int L = 1, C = trn_dec_hp(te->d)->n_embd;
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > te->cap_len) {
            snprintf(err, errlen, "embedding: sentence %d has %d tokens, allowed 1 to %d", i,
                     lens[i], te->cap_len);
            return -EINVAL;
        }
        L = lens[i] > L ? lens[i] : L;
    }
    for (int i = 0; i < n; i++) {
        int32_t *row = te->tokens + (size_t)i * L;
        memcpy(row, seqs[i], (size_t)lens[i] * sizeof(int32_t));
        for (int j = lens[i]; j < L; j++)
            row[j] = 0; /* padding: never attended to, never pooled */
        te->lens[i] = lens[i];
    }
    trn_batch b = {.B = n, .L = L, .tokens = te->tokens, .lens = te->lens, .hidden_only = true};
    int rc = trn_dec_forward(te->d, &b, NULL, err, errlen);
    if (rc)
        return rc;
    trn_embed_meanpool_fwd_f32(te->pooled, trn_dec_hidden(te->d), te->lens, n, L, C);
    trn_clip_l2norm_fwd_f32(te->emb, te->norm, te->pooled, n, C);
    *L_out = L;
    return 0;
}

int trn_embed_encode(trn_embed *te, const int32_t *const *seqs, const int32_t *lens, int n,
                     float *out, char *err, size_t errlen)
{
    size_t C = (size_t)trn_dec_hp(te->d)->n_embd;
    for (int i0 = 0; i0 < n; i0 += te->cap_seqs) {
        int k = n - i0 < te->cap_seqs ? n - i0 : te->cap_seqs, L;
        int rc = trn_embed__forward(te, seqs + i0, lens + i0, k, &L, err, errlen);
        if (rc)
            return rc;
        memcpy(out + (size_t)i0 * C, te->emb, (size_t)k * C * sizeof(float));
    }
    return 0;
}

/* ---- a step ----------------------------------------------------------------- */

int trn_embed_batch_loss(trn_embed *te, const int32_t *const *seqs, const int32_t *lens, int Q,
                         int K, bool backward, double *loss, char *err, size_t errlen)
{
    int N = Q * (2 + K), L, C = trn_dec_hp(te->d)->n_embd;
    if (Q < 1 || K < 0 || N > te->cap_seqs) {
        snprintf(err, errlen, "embedding training: %d queries with %d negatives each exceed "
                 "the %d sentences set up", Q, K, te->cap_seqs);
        return -EINVAL;
    }
    int rc = trn_embed__forward(te, seqs, lens, N, &L, err, errlen);
    if (rc)
        return rc;
    const float *q = te->emb, *cand = te->emb + (size_t)Q * C;
    *loss = trn_embed_rank_fwd_f32(te->logits, te->lse, q, cand, Q, N - Q, C, te->cfg.scale);
    if (!backward)
        return 0;
    memset(te->demb, 0, (size_t)N * C * sizeof(float));
    memset(te->dpooled, 0, (size_t)N * C * sizeof(float));
    memset(te->dhidden, 0, (size_t)N * L * C * sizeof(float));
    trn_embed_rank_bwd_f32(te->demb, te->demb + (size_t)Q * C, te->logits, te->lse, q, cand, Q,
                           N - Q, C, te->cfg.scale, 1.0f, te->scratch);
    trn_clip_l2norm_bwd_f32(te->dpooled, te->demb, te->emb, te->norm, N, C);
    trn_embed_meanpool_bwd_f32(te->dhidden, te->dpooled, te->lens, N, L, C);
    trn_dec_backward_hidden(te->d, te->dhidden);
    return 0;
}

int trn_embed_step(trn_embed *te, const trn_embed_set *set, trn_optim_stats *st, double *loss,
                   char *err, size_t errlen)
{
    int Q = te->cfg.batch, K = te->cfg.negatives, per = 2 + set->n_neg;
    if (set->n_items < Q || set->n_neg < K) {
        snprintf(err, errlen, "embedding training: %d items of %d negatives, need at least %d "
                 "items of %d", set->n_items, set->n_neg, Q, K);
        return -EINVAL;
    }
    /* order: the Q queries, then the candidates: Q positives, then Q*K negatives */
    int N = Q * (2 + K);
    const int32_t **seqs = malloc((size_t)N * sizeof(*seqs));
    int32_t *lens = malloc((size_t)N * sizeof(int32_t));
    if (!seqs || !lens) {
        free(seqs), free(lens);
        snprintf(err, errlen, "embedding training: out of memory");
        return -ENOMEM;
    }
    for (int i = 0; i < Q; i++) {
        size_t it = (size_t)rng_below(&te->rng, (uint64_t)set->n_items) * per;
        seqs[i] = set->seq[it], lens[i] = set->len[it];
        seqs[Q + i] = set->seq[it + 1], lens[Q + i] = set->len[it + 1];
        for (int k = 0; k < K; k++) {
            int at = 2 * Q + i * K + k;
            seqs[at] = set->seq[it + 2 + k], lens[at] = set->len[it + 2 + k];
        }
    }
    trn_params_zero_grad(&te->ps);
    int rc = trn_embed_batch_loss(te, seqs, lens, Q, K, true, loss, err, errlen);
    free(seqs), free(lens);
    if (rc)
        return rc;
    eng_err e = {0};
    if ((rc = trn_optim_step(&te->opt, &te->ps, st, &e)) < 0) {
        snprintf(err, errlen, "embedding training: %s", e.msg);
        return rc;
    }
    te->last_loss = *loss;
    return 0;
}

/* ---- evaluation ------------------------------------------------------------- */

static double trn_embed__dot(const float *a, const float *b, int C)
{
    double s = 0;
    for (int c = 0; c < C; c++)
        s += (double)a[c] * b[c];
    return s;
}

int trn_embed_evaluate(trn_embed *te, const trn_embed_set *set, trn_embed_eval *ev, char *err,
                       size_t errlen)
{
    int per = 2 + set->n_neg, C = trn_dec_hp(te->d)->n_embd;
    size_t n = (size_t)set->n_items * per;
    if (set->n_items < 1) {
        snprintf(err, errlen, "evaluation: no items");
        return -EINVAL;
    }
    float *emb = malloc(n * C * sizeof(float));
    if (!emb) {
        snprintf(err, errlen, "evaluation: out of memory");
        return -ENOMEM;
    }
    int rc = trn_embed_encode(te, (const int32_t *const *)set->seq, set->len, (int)n, emb, err,
                              errlen);
    double top1 = 0, mrr = 0;
    for (int i = 0; !rc && i < set->n_items; i++) {
        const float *e = emb + (size_t)i * per * C;
        double pos = trn_embed__dot(e, e + C, C);
        int above = 0, ties = 0;
        for (int k = 0; k < set->n_neg; k++) {
            double s = trn_embed__dot(e, e + (size_t)(2 + k) * C, C);
            above += s > pos;
            ties += s == pos;
        }
        top1 += above == 0 && ties == 0;
        mrr += 1.0 / (1 + above + ties);
    }
    free(emb);
    if (rc)
        return rc;
    ev->top1 = top1 / set->n_items;
    ev->mrr = mrr / set->n_items;
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

int trn_embed_run(trn_embed *te, const trn_embed_set *train, const trn_embed_set *eval_set,
                  trn_embed_progress_fn fn, void *ctx, char *err, size_t errlen)
{
    double t0 = trn_embed__now(), loss = 0;
    int64_t step0 = te->opt.step, end = te->cfg.steps;
    trn_optim_stats st = {0};
    while (te->opt.step < end) {
        int rc = trn_embed_step(te, train, &st, &loss, err, errlen);
        if (rc)
            return rc;
        int64_t s = te->opt.step;
        bool last = s >= end;
        bool do_eval = eval_set && (last || (te->cfg.eval_every > 0 && s % te->cfg.eval_every == 0));
        trn_embed_progress p = {.step = s, .steps = end, .loss = loss, .lr = st.lr,
                                .grad_norm = st.grad_norm, .has_eval = do_eval};
        if (do_eval && (rc = trn_embed_evaluate(te, eval_set, &p.eval, err, errlen)))
            return rc;
        if (fn && (do_eval || last || s % te->cfg.log_every == 0)) {
            double el = trn_embed__now() - t0;
            double done = (double)(s - step0);
            p.seq_per_s = el > 0 ? done * te->cfg.batch * (2 + te->cfg.negatives) / el : 0;
            p.eta_s = done > 0 ? el / done * (double)(end - s) : 0;
            fn(ctx, &p);
        }
    }
    return 0;
}
