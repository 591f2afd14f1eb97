/* trainer_onpolicy.c - policy samples and reward labels for the training
 * worker (trainer_onpolicy.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trainer_onpolicy.h"

#include <cblas.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_reward.h"

static bool onp__cancelled(const _Atomic int *cancel) { return cancel && atomic_load(cancel) != 0; }

int trainer_onpolicy_generate(trn_dec *d, const int32_t *prompt, int n_prompt, int B, int max_new,
                              float temperature, uint64_t seed, int32_t eos, int32_t *out,
                              int *n_out, char *err, size_t errlen)
{
    const model_hparams *hp = trn_dec_hp(d);
    int C = hp->n_embd, V = hp->n_vocab, n_ctx = hp->n_ctx_train;
    if (n_prompt < 1 || B < 1 || max_new < 1) {
        snprintf(err, errlen, "generate: empty prompt or nothing to generate");
        return -EINVAL;
    }
    int room = n_ctx > 0 ? n_ctx - n_prompt : max_new;
    int steps = max_new < room ? max_new : room;
    if (steps < 1) {
        snprintf(err, errlen, "generate: a prompt of %d tokens leaves no room in the context of %d",
                 n_prompt, n_ctx);
        return -EINVAL;
    }
    int Lmax = n_prompt + steps;
    int32_t *toks = malloc((size_t)B * Lmax * sizeof *toks);
    float *logits = malloc((size_t)B * V * sizeof *logits);
    bool *done = calloc((size_t)B, sizeof *done);
    int rc = 0;
    if (!toks || !logits || !done) {
        snprintf(err, errlen, "generate: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    rng r;
    rng_seed(&r, seed);
    for (int b = 0; b < B; b++)
        n_out[b] = 0;
    for (int t = 0; t < steps; t++) {
        int L = n_prompt + t;
        for (int b = 0; b < B; b++) {
            int32_t *row = toks + (size_t)b * L;
            memcpy(row, prompt, (size_t)n_prompt * sizeof *row);
            /* a finished sequence repeats its last token: it is never read */
            for (int i = 0; i < t; i++)
                row[n_prompt + i] = out[(size_t)b * max_new + (i < n_out[b] ? i : n_out[b] - 1)];
        }
        trn_batch bt = {.B = B, .L = L, .tokens = toks, .hidden_only = true};
        if ((rc = trn_dec_forward(d, &bt, NULL, err, errlen)))
            goto out;
        const float *h = trn_dec_hidden(d) + (size_t)(L - 1) * C; /* last position of each */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, V, C, 1.0f, h, L * C,
                    trn_dec_weights(d)->output, C, 0.0f, logits, V);
        bool all = true;
        for (int b = 0; b < B; b++) {
            if (done[b])
                continue;
            const float *z = logits + (size_t)b * V;
            int best = 0;
            for (int v = 1; v < V; v++)
                if (z[v] > z[best])
                    best = v;
            int pick = best;
            if (temperature > 0) {
                double s = 0, u = rng_uniform(&r);
                for (int v = 0; v < V; v++)
                    s += exp((double)(z[v] - z[best]) / temperature);
                double acc = 0, target = u * s;
                pick = V - 1;
                for (int v = 0; v < V; v++) {
                    acc += exp((double)(z[v] - z[best]) / temperature);
                    if (acc > target) {
                        pick = v;
                        break;
                    }
                }
            }
            out[(size_t)b * max_new + n_out[b]++] = pick;
            if (pick == eos)
                done[b] = true;
            all = all && done[b];
        }
        if (all)
            break;
    }
out:
    free(toks);
    free(logits);
    free(done);
    return rc;
}

int trainer_onpolicy_score(served_model *sm, const int32_t *prompt, int n_prompt,
                           const int32_t *const *resp, const int *n_resp, int n, int32_t eos,
                           float *out, char *err, size_t errlen)
{
    int32_t **seqs = calloc((size_t)n, sizeof *seqs);
    int *lens = calloc((size_t)n, sizeof *lens);
    int rc = 0;
    if (!seqs || !lens) {
        free(seqs), free(lens);
        snprintf(err, errlen, "score: out of memory");
        return -ENOMEM;
    }
    models_reward mr;
    if (!models_reward_lock(sm, &mr)) {
        free(seqs), free(lens);
        snprintf(err, errlen, "model '%s' has no reward model", sm->cfg->name);
        return -ENOENT;
    }
    int max_len = mr.max_len > 0 ? mr.max_len : INT_MAX;
    if (sm->n_ctx > 0 && max_len > sm->n_ctx)
        max_len = sm->n_ctx;
    for (int i = 0; i < n && !rc; i++) {
        int nr = n_resp[i];
        while (nr > 0 && eos >= 0 && resp[i][nr - 1] == eos) /* as /v1/rewards: strip, then add one */
            nr--;
        int np = n_prompt < max_len ? n_prompt : max_len - 1;
        const int32_t *p = prompt + (n_prompt - np); /* keep the end of the prompt */
        if ((seqs[i] = malloc((size_t)(np + nr + 1) * sizeof **seqs)) == NULL) {
            snprintf(err, errlen, "score: out of memory");
            rc = -ENOMEM;
            break;
        }
        memcpy(seqs[i], p, (size_t)np * sizeof **seqs);
        memcpy(seqs[i] + np, resp[i], (size_t)nr * sizeof **seqs);
        int L = np + nr;
        if (mr.add_eos && eos >= 0)
            seqs[i][L++] = eos;
        lens[i] = L < max_len ? L : max_len;
        if (lens[i] < 1) {
            snprintf(err, errlen, "score: empty sequence");
            rc = -EINVAL;
        }
    }
    if (!rc)
        rc = trn_reward_score(mr.rm, (const int32_t *const *)seqs, lens, n, out, err, errlen);
    models_reward_unlock(sm);
    for (int i = 0; i < n; i++)
        free(seqs[i]);
    free(seqs), free(lens);
    return rc;
}

/* Indices of at most max distinct prompts of s's split (eval or train). */
static int onp__prompts(const pref_set *s, bool eval, int max, int *idx)
{
    int n = 0;
    for (int i = 0; i < s->n && n < max; i++) {
        const pref_pair *p = &s->p[i];
        if (p->eval != eval || p->n_prompt < 1)
            continue;
        bool seen = false;
        for (int j = 0; j < n && !seen; j++) {
            const pref_pair *q = &s->p[idx[j]];
            seen = q->n_prompt == p->n_prompt &&
                   !memcmp(pref_prompt(q), pref_prompt(p), (size_t)p->n_prompt * sizeof(int32_t));
        }
        if (!seen)
            idx[n++] = i;
    }
    return n;
}

int trainer_onpolicy_reward_mean(served_model *sm, trn_dec *d, const pref_set *s, int max_prompts,
                                 int max_new, int32_t eos, double *mean, int *n_prompts,
                                 const _Atomic int *cancel, char *err, size_t errlen)
{
    int *idx = malloc((size_t)(max_prompts > 0 ? max_prompts : 1) * sizeof *idx);
    int32_t *gen = malloc((size_t)max_prompts * max_new * sizeof *gen);
    int *ngen = calloc((size_t)(max_prompts > 0 ? max_prompts : 1), sizeof *ngen);
    float *r = malloc((size_t)(max_prompts > 0 ? max_prompts : 1) * sizeof *r);
    int rc = 0, n = 0;
    double sum = 0;
    if (!idx || !gen || !ngen || !r) {
        snprintf(err, errlen, "gate: out of memory");
        rc = -ENOMEM;
        goto out;
    }
    n = onp__prompts(s, s->n_eval > 0, max_prompts, idx);
    for (int i = 0; i < n && !rc; i++) {
        if (onp__cancelled(cancel)) {
            rc = -ECANCELED;
            break;
        }
        const pref_pair *p = &s->p[idx[i]];
        int32_t *g = gen + (size_t)i * max_new;
        rc = trainer_onpolicy_generate(d, pref_prompt(p), p->n_prompt, 1, max_new, 0, 0, eos, g,
                                       &ngen[i], err, errlen);
        if (!rc) {
            const int32_t *rs = g;
            rc = trainer_onpolicy_score(sm, pref_prompt(p), p->n_prompt, &rs, &ngen[i], 1, eos,
                                        &r[i], err, errlen);
        }
        if (!rc)
            sum += r[i];
        sched_yield();
    }
    if (!rc && n == 0) {
        snprintf(err, errlen, "gate: no prompts to sample");
        rc = -EINVAL;
    }
out:
    *mean = n > 0 ? sum / n : 0;
    if (n_prompts)
        *n_prompts = n;
    free(idx), free(gen), free(ngen), free(r);
    return rc;
}

/* Appends a train pair (prompt, chosen, rejected) to s as pref.h lays it out. */
static int onp__push(pref_set *s, const int32_t *pr, int np, const int32_t *ch, int nc,
                     const int32_t *rj, int nr)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 64;
        pref_pair *p = realloc(s->p, (size_t)cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        s->p = p;
        s->cap = cap;
    }
    pref_pair *p = &s->p[s->n];
    *p = (pref_pair){.n_prompt = np, .n_chosen = nc, .n_rejected = nr};
    if (!(p->ids = malloc((size_t)(np + nc + nr) * sizeof(int32_t))))
        return -ENOMEM;
    memcpy(p->ids, pr, (size_t)np * sizeof(int32_t));
    memcpy(p->ids + np, ch, (size_t)nc * sizeof(int32_t));
    memcpy(p->ids + np + nc, rj, (size_t)nr * sizeof(int32_t));
    s->n++;
    return 0;
}

int trainer_onpolicy_pairs(served_model *sm, trn_dec *d, pref_set *s, const pref_opts *po,
                           const trainer_onpolicy_cfg *c, trainer_onpolicy_stats *st, char *err,
                           size_t errlen)
{
    *st = (trainer_onpolicy_stats){0};
    for (int i = 0; i < s->n; i++)
        st->human += !s->p[i].eval;
    double cap = c->ratio >= 1 ? (double)INT_MAX : floor(st->human * c->ratio / (1 - c->ratio));
    st->cap = cap > INT_MAX ? INT_MAX : (int)cap;
    int k = c->k, M = c->max_new;
    if (k < 2 || M < 1 || c->max_prompts < 1 || st->cap < 1)
        return 0;
    int *idx = malloc((size_t)c->max_prompts * sizeof *idx);
    int32_t *gen = malloc((size_t)k * M * sizeof *gen);
    const int32_t **rs = malloc((size_t)k * sizeof *rs);
    int *ngen = malloc((size_t)k * sizeof *ngen);
    float *r = malloc((size_t)k * sizeof *r);
    int32_t *prompt = NULL;
    int rc = 0;
    double gaps = 0;
    if (!idx || !gen || !rs || !ngen || !r) {
        rc = -ENOMEM;
        goto out;
    }
    /* the prompts first: s->p moves as pairs are appended */
    int n = onp__prompts(s, false, c->max_prompts, idx);
    for (int i = 0; i < n && st->added < st->cap && !rc; i++) {
        if (onp__cancelled(c->cancel)) {
            rc = -ECANCELED;
            break;
        }
        const pref_pair *p = &s->p[idx[i]];
        int np = p->n_prompt, room = po->max_len - np;
        if (room < 1)
            continue;
        int32_t *cp = realloc(prompt, (size_t)np * sizeof *cp);
        if (!cp) {
            rc = -ENOMEM;
            break;
        }
        prompt = cp;
        memcpy(prompt, pref_prompt(p), (size_t)np * sizeof *prompt);
        int m = M < room ? M : room;
        rc = trainer_onpolicy_generate(d, prompt, np, k, m, 1.0f, c->seed + (uint64_t)i, c->eos,
                                       gen, ngen, err, errlen);
        if (rc)
            break;
        /* generate laid the samples out with stride m */
        for (int j = 0; j < k; j++)
            rs[j] = gen + (size_t)j * m;
        if ((rc = trainer_onpolicy_score(sm, prompt, np, rs, ngen, k, c->eos, r, err, errlen)))
            break;
        int best = 0, worst = 0;
        for (int j = 1; j < k; j++) {
            if (r[j] > r[best])
                best = j;
            if (r[j] < r[worst])
                worst = j;
        }
        double gap = (double)r[best] - (double)r[worst];
        st->prompts++;
        gaps += gap;
        if (!(gap >= c->min_gap) || best == worst) {
            st->below_gap++;
        } else {
            if ((rc = onp__push(s, prompt, np, rs[best], ngen[best], rs[worst], ngen[worst])))
                break;
            st->added++;
        }
        sched_yield();
    }
    st->mean_gap = st->prompts ? gaps / st->prompts : 0;
out:
    if (rc == -ENOMEM)
        snprintf(err, errlen, "on-policy pairs: out of memory");
    free(idx), free(gen), free(rs), free(ngen), free(r), free(prompt);
    return rc;
}
