/* trn_reward.c - Bradley-Terry reward models: the head, the pair loss, the
 * training loop, scoring and the folder format (trn_reward.h). */
#include "trn_reward.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rng.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "trn_peft.h"

struct trn_reward {
    trn_dec *d;            /* owned; borrows the model's weights */
    trn_lora *lo;          /* owned; NULL for a head-only model */
    model_arch_id arch;
    int C, n_vocab, n_ctx;
    float *head;           /* [2 * (C + 1)]: w [C], b, then dw [C], db */
    float *w, *b, *dw, *db;
    /* the last forward pass: what backward needs */
    int B, L;
    int32_t *last;         /* [B] position of each sequence's last real token */
    float *r, *dr;         /* [B] rewards and their gradient (trn_reward_pairs) */
    float *dh;             /* [B * L * C] the hidden-state gradient */
    size_t cap_seqs, cap_dh;
};

static double trn_reward__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- the model -------------------------------------------------------------- */

static int trn_reward__init_head(trn_reward *rm, const trn_reward_cfg *cfg)
{
    rm->head = calloc(2 * ((size_t)rm->C + 1), sizeof(float));
    if (!rm->head)
        return -ENOMEM;
    rm->w = rm->head;
    rm->b = rm->w + rm->C;
    rm->dw = rm->b + 1;
    rm->db = rm->dw + rm->C;
    rng r;
    rng_seed(&r, cfg->seed);
    double std = cfg->head_init / sqrt((double)rm->C);
    for (int c = 0; std > 0 && c < rm->C; c++)
        rm->w[c] = (float)(rng_normal(&r) * std);
    return 0;
}

int trn_reward_new(trn_reward **out, model *m, const trn_reward_cfg *cfg, char *err,
                   size_t errlen)
{
    *out = NULL;
    trn_reward *rm = calloc(1, sizeof(*rm));
    if (!rm) {
        snprintf(err, errlen, "reward model: out of memory");
        return -ENOMEM;
    }
    int rc = trn_dec_from_model(&rm->d, m, err, errlen);
    if (rc)
        goto fail;
    const model_hparams *hp = model_hp(m);
    rm->arch = model_arch(m);
    rm->C = hp->n_embd;
    rm->n_vocab = hp->n_vocab;
    rm->n_ctx = model_n_ctx(m);
    if (!(cfg->head_init >= 0 && isfinite(cfg->head_init))) {
        snprintf(err, errlen, "reward model: head_init %g must be a finite number >= 0",
                 cfg->head_init);
        rc = -EINVAL;
        goto fail;
    }
    if ((rc = trn_reward__init_head(rm, cfg))) {
        snprintf(err, errlen, "reward model: out of memory");
        goto fail;
    }
    if (cfg->use_lora) {
        if ((rc = trn_lora_new(&rm->lo, rm->arch, hp, &cfg->lora, err, errlen)))
            goto fail;
        trn_dec_set_lora(rm->d, rm->lo);
    }
    *out = rm;
    return 0;
fail:
    trn_reward_free(rm);
    return rc;
}

void trn_reward_free(trn_reward *rm)
{
    if (!rm)
        return;
    trn_dec_free(rm->d);
    trn_lora_free(rm->lo);
    free(rm->head);
    free(rm->last);
    free(rm->r);
    free(rm->dr);
    free(rm->dh);
    free(rm);
}

int trn_reward_hidden_size(const trn_reward *rm)
{
    return rm->C;
}

trn_lora *trn_reward_lora(trn_reward *rm)
{
    return rm->lo;
}

trn_dec *trn_reward_dec(trn_reward *rm)
{
    return rm->d;
}

int trn_reward_params(trn_reward *rm, trn_params *ps)
{
    int rc = trn_params_add(ps, "score.weight", rm->w, rm->dw, (size_t)rm->C, true);
    if (!rc)
        rc = trn_params_add(ps, "score.bias", rm->b, rm->db, 1, false);
    if (!rc && rm->lo)
        rc = trn_lora_params(rm->lo, ps);
    return rc;
}

/* ---- forward and backward ------------------------------------------------------ */

/* Room for B sequences (and, with an adapter, the hidden-state gradient of
 * a B x L batch). */
static int trn_reward__reserve(trn_reward *rm, int B, int L)
{
    size_t n = rm->lo ? (size_t)B * L * rm->C : 0;
    if (n > rm->cap_dh) {
        float *dh = realloc(rm->dh, n * sizeof(float));
        if (!dh)
            return -ENOMEM;
        rm->dh = dh;
        rm->cap_dh = n;
    }
    if ((size_t)B <= rm->cap_seqs)
        return 0;
    int32_t *last = realloc(rm->last, (size_t)B * sizeof(int32_t));
    if (last)
        rm->last = last;
    float *r = realloc(rm->r, (size_t)B * sizeof(float));
    if (r)
        rm->r = r;
    float *dr = realloc(rm->dr, (size_t)B * sizeof(float));
    if (dr)
        rm->dr = dr;
    if (!last || !r || !dr)
        return -ENOMEM;
    rm->cap_seqs = (size_t)B;
    return 0;
}

int trn_reward_forward(trn_reward *rm, const trn_batch *b, float *rewards, char *err,
                       size_t errlen)
{
    /* only the hidden states: the LM head's logits are never computed */
    trn_batch hb = {.B = b->B, .L = b->L, .tokens = b->tokens, .lens = b->lens,
                    .hidden_only = true};
    int rc = trn_dec_forward(rm->d, &hb, NULL, err, errlen);
    if (rc)
        return rc;
    if (trn_reward__reserve(rm, b->B, b->L)) {
        snprintf(err, errlen, "reward model: out of memory");
        return -ENOMEM;
    }
    const float *h = trn_dec_hidden(rm->d);
    rm->B = b->B;
    rm->L = b->L;
    for (int s = 0; s < b->B; s++) {
        /* the last REAL token: right padding puts pads after lens[s] - 1 */
        int32_t t = s * b->L + (b->lens ? b->lens[s] : b->L) - 1;
        const float *hs = h + (size_t)t * rm->C;
        double acc = rm->b[0];
        for (int c = 0; c < rm->C; c++)
            acc += (double)rm->w[c] * hs[c];
        rm->last[s] = t;
        rewards[s] = (float)acc;
    }
    return 0;
}

void trn_reward_backward(trn_reward *rm, const float *drewards)
{
    const float *h = trn_dec_hidden(rm->d);
    int C = rm->C;
    for (int s = 0; s < rm->B; s++) {
        const float *hs = h + (size_t)rm->last[s] * C;
        for (int c = 0; c < C; c++)
            rm->dw[c] += drewards[s] * hs[c];
        rm->db[0] += drewards[s];
    }
    if (!rm->lo) /* the base is frozen: nothing below the head learns */
        return;
    size_t n = (size_t)rm->B * rm->L * C; /* trn_reward__reserve made room */
    memset(rm->dh, 0, n * sizeof(float));
    for (int s = 0; s < rm->B; s++)
        for (int c = 0; c < C; c++)
            rm->dh[(size_t)rm->last[s] * C + c] = drewards[s] * rm->w[c];
    trn_dec_backward_hidden(rm->d, rm->dh);
}

/* -log sigmoid(z) without overflow for any z. */
static double trn_reward__softplus_neg(double z)
{
    return z > 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
}

double trn_reward_bt_loss(const float *r, const float *margins, int n, float *dr,
                          int *n_correct)
{
    double loss = 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        double z = (double)r[2 * i] - r[2 * i + 1] - (margins ? margins[i] : 0.0f);
        loss += trn_reward__softplus_neg(z);
        correct += r[2 * i] > r[2 * i + 1];
        if (dr) { /* d/dz of -log sigmoid(z) is -sigmoid(-z) */
            double g = -1.0 / (1.0 + exp(z)) / n;
            dr[2 * i] = (float)g;
            dr[2 * i + 1] = (float)-g;
        }
    }
    if (n_correct)
        *n_correct = correct;
    return n > 0 ? loss / n : 0;
}

int trn_reward_pairs(trn_reward *rm, const pref_batch *pb, const float *margins, bool backward,
                     trn_reward_stats *st, char *err, size_t errlen)
{
    if (pb->B < 2 || pb->B % 2) {
        snprintf(err, errlen, "reward model: a pair batch needs an even number of sequences, "
                 "not %d", pb->B);
        return -EINVAL;
    }
    trn_batch b = {.B = pb->B, .L = pb->L, .tokens = pb->tokens, .lens = pb->lens};
    if (trn_reward__reserve(rm, pb->B, pb->L)) {
        snprintf(err, errlen, "reward model: out of memory");
        return -ENOMEM;
    }
    int rc = trn_reward_forward(rm, &b, rm->r, err, errlen);
    if (rc)
        return rc;
    int n = pb->B / 2;
    *st = (trn_reward_stats){.n_pairs = n};
    st->loss = trn_reward_bt_loss(rm->r, margins, n, backward ? rm->dr : NULL, &st->n_correct);
    for (int i = 0; i < n; i++) {
        st->mean_chosen += rm->r[2 * i] / (double)n;
        st->mean_rejected += rm->r[2 * i + 1] / (double)n;
    }
    if (backward)
        trn_reward_backward(rm, rm->dr);
    return 0;
}

/* ---- training ------------------------------------------------------------------ */

/* One split's pair indices (a new array; *n its length). */
static int *trn_reward__split(const pref_set *s, bool eval, int *n)
{
    int *idx = malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof(int));
    *n = 0;
    for (int i = 0; idx && i < s->n; i++)
        if (s->p[i].eval == eval)
            idx[(*n)++] = i;
    return idx;
}

/* The batch of pairs idx[0..n) and their margins (margins[n] filled). */
static int trn_reward__batch(pref_batch *pb, float *margins, const pref_set *s, const int *idx,
                             int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++)
        margins[i] = s->p[idx[i]].margin;
    return pref_batch_make(pb, s, idx, n, err, errlen);
}

int trn_reward_evaluate(trn_reward *rm, const pref_set *s, bool eval, int batch, double *loss,
                        double *accuracy, char *err, size_t errlen)
{
    int n = 0, rc = 0;
    int *idx = trn_reward__split(s, eval, &n);
    float *margins = malloc((size_t)(batch > 0 ? batch : 1) * sizeof(float));
    pref_batch pb = {0};
    bool was_training = rm->lo && rm->lo->training;
    if (!idx || !margins || batch < 1) {
        snprintf(err, errlen, "reward model: %s", batch < 1 ? "batch < 1" : "out of memory");
        rc = batch < 1 ? -EINVAL : -ENOMEM;
        goto out;
    }
    if (n == 0) {
        snprintf(err, errlen, "reward model: no %s pairs", eval ? "eval" : "train");
        rc = -ENOENT;
        goto out;
    }
    if (rm->lo)
        rm->lo->training = false; /* no dropout when measuring */
    double sum = 0;
    int correct = 0;
    for (int i0 = 0; i0 < n && !rc; i0 += batch) {
        int k = n - i0 < batch ? n - i0 : batch;
        trn_reward_stats st;
        rc = trn_reward__batch(&pb, margins, s, idx + i0, k, err, errlen);
        if (!rc && !(rc = trn_reward_pairs(rm, &pb, margins, false, &st, err, errlen))) {
            sum += st.loss * k;
            correct += st.n_correct;
        }
    }
    *loss = sum / n;
    *accuracy = (double)correct / n;
out:
    if (rm->lo)
        rm->lo->training = was_training;
    pref_batch_free(&pb);
    free(margins);
    free(idx);
    return rc;
}

/* The state of one training run. */
typedef struct trn_reward__run {
    trn_reward *rm;
    const pref_set *s;
    const trn_reward_train_cfg *cfg;
    trn_params ps;
    trn_optim opt;
    rng order;
    int *train, n_train, n_eval;
    float *margins;
    pref_batch pb;
    int64_t steps;
    double t0;
    trn_reward_result res;
} trn_reward__run;

static int trn_reward__check(const trn_reward_train_cfg *c, char *err, size_t errlen)
{
    if (c->epochs < 1 || c->batch < 1 || c->eval_batch < 0 || c->log_every < 0) {
        snprintf(err, errlen, "reward training: need epochs >= 1, batch >= 1, eval_batch >= 0 "
                 "and log_every >= 0 (got %d, %d, %d, %d)", c->epochs, c->batch, c->eval_batch,
                 c->log_every);
        return -EINVAL;
    }
    return 0;
}

static int trn_reward__run_init(trn_reward__run *run, char *err, size_t errlen)
{
    const trn_reward_train_cfg *cfg = run->cfg;
    run->train = trn_reward__split(run->s, false, &run->n_train);
    run->n_eval = run->s->n_eval;
    run->margins = malloc((size_t)cfg->batch * sizeof(float));
    if (!run->train || !run->margins || trn_reward_params(run->rm, &run->ps)) {
        snprintf(err, errlen, "reward training: out of memory");
        return -ENOMEM;
    }
    if (run->n_train == 0) {
        snprintf(err, errlen, "reward training: no training pairs (all %d are in the eval "
                 "split)", run->s->n);
        return -EINVAL;
    }
    run->steps = (int64_t)cfg->epochs * ((run->n_train + cfg->batch - 1) / cfg->batch);
    trn_optim_cfg oc = cfg->optim;
    if (oc.sched.total_steps <= 0)
        oc.sched.total_steps = run->steps;
    if (oc.sched.warmup_steps > oc.sched.total_steps) /* a short run: warm up over all of it */
        oc.sched.warmup_steps = oc.sched.total_steps;
    eng_err e = {0};
    if (trn_optim_cfg_check(&oc, &e) || trn_optim_init(&run->opt, &run->ps, &oc, &e)) {
        snprintf(err, errlen, "reward training: %s", e.msg);
        return -EINVAL;
    }
    rng_seed(&run->order, cfg->seed);
    return 0;
}

static void trn_reward__shuffle(trn_reward__run *run)
{
    for (int i = run->n_train - 1; i > 0; i--) {
        int j = (int)rng_below(&run->order, (uint64_t)i + 1);
        int t = run->train[i];
        run->train[i] = run->train[j];
        run->train[j] = t;
    }
}

/* One optimizer step on pairs train[i0 .. i0 + k). */
static int trn_reward__step(trn_reward__run *run, int i0, int k, trn_reward_stats *st,
                            trn_optim_stats *os, char *err, size_t errlen)
{
    int rc = trn_reward__batch(&run->pb, run->margins, run->s, run->train + i0, k, err, errlen);
    if (rc)
        return rc;
    trn_params_zero_grad(&run->ps);
    if ((rc = trn_reward_pairs(run->rm, &run->pb, run->margins, true, st, err, errlen)))
        return rc;
    eng_err e = {0};
    rc = trn_optim_step(&run->opt, &run->ps, os, &e);
    if (rc < 0) {
        snprintf(err, errlen, "reward training: %s", e.msg);
        return rc;
    }
    return 0; /* TRN_OPTIM_SKIPPED (a non-finite gradient) goes on with the next batch */
}

static void trn_reward__report(trn_reward__run *run, trn_reward_progress_fn fn, void *ctx,
                               trn_reward_progress *p, int64_t pairs_done)
{
    if (!fn)
        return;
    double el = trn_reward__now() - run->t0;
    int64_t step = run->opt.step + run->opt.n_skipped;
    p->step = step;
    p->steps = run->steps;
    p->pairs_per_s = el > 0 ? (double)pairs_done / el : 0;
    p->eta_s = step > 0 ? el / (double)step * (double)(run->steps - step) : 0;
    fn(ctx, p);
}

/* The end of an epoch: the eval split's loss and accuracy into p and the
 * result (nothing without an eval split). */
static int trn_reward__epoch_eval(trn_reward__run *run, trn_reward_progress *p, char *err,
                                  size_t errlen)
{
    const trn_reward_train_cfg *cfg = run->cfg;
    if (run->n_eval == 0)
        return 0;
    int rc = trn_reward_evaluate(run->rm, run->s, true,
                                 cfg->eval_batch ? cfg->eval_batch : cfg->batch, &p->eval_loss,
                                 &p->eval_accuracy, err, errlen);
    if (rc)
        return rc;
    p->has_eval = true;
    run->res.eval_loss = p->eval_loss;
    run->res.eval_accuracy = p->eval_accuracy;
    return 0;
}

/* One epoch; reports as it goes and scores the eval split at its end. */
static int trn_reward__epoch(trn_reward__run *run, int epoch, trn_reward_progress_fn fn,
                             void *ctx, int64_t *pairs_done, char *err, size_t errlen)
{
    const trn_reward_train_cfg *cfg = run->cfg;
    int log_every = cfg->log_every > 0 ? cfg->log_every : 10;
    double sum = 0;
    int correct = 0, rc = 0;
    trn_reward__shuffle(run);
    for (int i0 = 0; i0 < run->n_train; i0 += cfg->batch) {
        int k = run->n_train - i0 < cfg->batch ? run->n_train - i0 : cfg->batch;
        trn_reward_stats st;
        trn_optim_stats os = {0};
        if (run->rm->lo)
            run->rm->lo->training = true;
        if ((rc = trn_reward__step(run, i0, k, &st, &os, err, errlen)))
            return rc;
        sum += st.loss * k;
        correct += st.n_correct;
        *pairs_done += k;
        bool end = i0 + k >= run->n_train;
        trn_reward_progress p = {.epoch = epoch, .loss = st.loss,
                                 .accuracy = (double)st.n_correct / k, .lr = os.lr,
                                 .grad_norm = os.grad_norm};
        if (end && (rc = trn_reward__epoch_eval(run, &p, err, errlen)))
            return rc;
        int64_t step = run->opt.step + run->opt.n_skipped;
        if (end || step % log_every == 0)
            trn_reward__report(run, fn, ctx, &p, *pairs_done);
    }
    run->res.train_loss = sum / run->n_train;
    run->res.train_accuracy = (double)correct / run->n_train;
    return 0;
}

int trn_reward_train(trn_reward *rm, const pref_set *s, const trn_reward_train_cfg *cfg,
                     trn_reward_progress_fn fn, void *ctx, trn_reward_result *res, char *err,
                     size_t errlen)
{
    int rc = trn_reward__check(cfg, err, errlen);
    if (rc)
        return rc;
    trn_reward__run run = {.rm = rm, .s = s, .cfg = cfg, .t0 = trn_reward__now()};
    run.res.eval_loss = run.res.eval_accuracy = NAN;
    bool was_training = rm->lo && rm->lo->training;
    int64_t pairs_done = 0;
    if (!(rc = trn_reward__run_init(&run, err, errlen)))
        for (int e = 1; e <= cfg->epochs && !rc; e++)
            rc = trn_reward__epoch(&run, e, fn, ctx, &pairs_done, err, errlen);
    if (rm->lo)
        rm->lo->training = was_training;
    run.res.steps = run.opt.step;
    run.res.n_train = run.n_train;
    run.res.n_eval = run.n_eval;
    run.res.seconds = trn_reward__now() - run.t0;
    if (res)
        *res = run.res;
    trn_params_free(&run.ps);
    trn_optim_free(&run.opt);
    pref_batch_free(&run.pb);
    free(run.train);
    free(run.margins);
    return rc;
}

/* ---- scoring -------------------------------------------------------------------- */

/* How many sequences from first fit one padded pass; *L gets its length. */
static int trn_reward__pass(const int *lens, int first, int n, int *L)
{
    int k = 0, l = 0;
    while (first + k < n && k < TRN_REWARD_SCORE_SEQS) {
        int nl = lens[first + k] > l ? lens[first + k] : l;
        if (k > 0 && (size_t)(k + 1) * nl > TRN_REWARD_SCORE_TOKENS)
            break;
        l = nl;
        k++;
    }
    *L = l;
    return k;
}

static int trn_reward__check_seqs(const trn_reward *rm, const int32_t *const *seqs,
                                  const int *lens, int n, char *err, size_t errlen)
{
    for (int i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > rm->n_ctx) {
            snprintf(err, errlen, "sequence %d: %d tokens; the model takes 1 to %d", i,
                     lens[i], rm->n_ctx);
            return -EINVAL;
        }
        for (int j = 0; j < lens[i]; j++)
            if (seqs[i][j] < 0 || seqs[i][j] >= rm->n_vocab) {
                snprintf(err, errlen, "sequence %d: token %d at %d is outside the vocabulary "
                         "of %d", i, seqs[i][j], j, rm->n_vocab);
                return -EINVAL;
            }
    }
    return 0;
}

int trn_reward_score(trn_reward *rm, const int32_t *const *seqs, const int *lens, int n,
                     float *out, char *err, size_t errlen)
{
    int rc = trn_reward__check_seqs(rm, seqs, lens, n, err, errlen);
    if (rc || n == 0)
        return rc;
    size_t cap = TRN_REWARD_SCORE_TOKENS > rm->n_ctx ? TRN_REWARD_SCORE_TOKENS : rm->n_ctx;
    int32_t *tokens = malloc(cap * sizeof(int32_t)), pass_lens[TRN_REWARD_SCORE_SEQS];
    if (!tokens) {
        snprintf(err, errlen, "reward model: out of memory");
        return -ENOMEM;
    }
    bool was_training = rm->lo && rm->lo->training;
    if (rm->lo)
        rm->lo->training = false;
    for (int i = 0, k, L; i < n && !rc; i += k) {
        k = trn_reward__pass(lens, i, n, &L);
        memset(tokens, 0, (size_t)k * L * sizeof(int32_t)); /* pads: never attended */
        for (int j = 0; j < k; j++) {
            memcpy(tokens + (size_t)j * L, seqs[i + j], (size_t)lens[i + j] * sizeof(int32_t));
            pass_lens[j] = lens[i + j];
        }
        trn_batch b = {.B = k, .L = L, .tokens = tokens, .lens = pass_lens};
        rc = trn_reward_forward(rm, &b, out + i, err, errlen);
    }
    if (rm->lo)
        rm->lo->training = was_training;
    free(tokens);
    return rc;
}

/* ---- files ---------------------------------------------------------------------- */

/* Writes a[na] then b[nb] to path through a temporary file renamed into
 * place, so a reader never sees half a file. */
static int trn_reward__write_atomic(const char *path, const void *a, size_t na, const void *b,
                                    size_t nb, char *err, size_t errlen)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "wb");
    int rc = 0;
    if (!f || fwrite(a, 1, na, f) != na || (nb && fwrite(b, 1, nb, f) != nb) || fflush(f) ||
        fsync(fileno(f)))
        rc = -(errno ? errno : EIO);
    if (f && fclose(f) && !rc)
        rc = -(errno ? errno : EIO);
    if (!rc && rename(tmp, path))
        rc = -errno;
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, strerror(-rc));
        unlink(tmp);
    }
    return rc;
}

/* reward_head.safetensors: the head as Hugging Face names a sequence
 * classifier's ("score", a Linear(C, 1)). */
static int trn_reward__write_head(const trn_reward *rm, const char *path, char *err,
                                  size_t errlen)
{
    st_writer *w = NULL;
    st_error e = {0};
    int64_t sw[2] = {1, rm->C}, sb[1] = {1};
    int rc = st_writer_new(&w);
    if (!rc)
        rc = st_writer_set_metadata(w, "format", "pt");
    if (!rc)
        rc = st_writer_add(w, "score.weight", ST_F32, 2, sw, rm->w);
    if (!rc)
        rc = st_writer_add(w, "score.bias", ST_F32, 1, sb, rm->b);
    if (rc)
        snprintf(err, errlen, "%s: %s", path, w ? st_writer_error(w) : "out of memory");
    else if ((rc = st_writer_write(w, path, &e)))
        snprintf(err, errlen, "%s", e.msg);
    st_writer_free(w);
    return rc;
}

static int trn_reward__write_config(const trn_reward *rm, const char *path,
                                    const char *base_model, const json_t *extra, char *err,
                                    size_t errlen)
{
    /* the caller's keys first, so they cannot overwrite the ones load checks */
    json_t *j = json_object();
    json_t *own = json_pack("{s:s, s:i, s:s, s:s, s:i, s:i, s:b, s:s}", "format",
                            "alignd-reward", "version", 1, "base_model",
                            base_model ? base_model : "", "architecture",
                            model_arch_name(rm->arch), "hidden_size", rm->C, "vocab_size",
                            rm->n_vocab, "lora", rm->lo != NULL, "head",
                            "reward_head.safetensors");
    if (j && extra)
        json_object_update(j, (json_t *)extra);
    if (j && own)
        json_object_update(j, own);
    char *text = j && own ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(own);
    json_decref(j);
    if (!text) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    int rc = trn_reward__write_atomic(path, text, strlen(text), "\n", 1, err, errlen);
    free(text);
    return rc;
}

/* mkdir -p: creates dir and its missing parents. 0 or -errno. */
static int trn_reward__mkdirs(const char *dir, char *err, size_t errlen)
{
    char p[4096];
    if (!dir[0] || strlen(dir) >= sizeof p) {
        snprintf(err, errlen, "reward model folder: an empty or too long path");
        return -EINVAL;
    }
    snprintf(p, sizeof p, "%s", dir);
    for (char *c = p + 1; ; c++) {
        bool end = *c == '\0';
        if (*c != '/' && !end)
            continue;
        *c = '\0';
        if (mkdir(p, 0755) && errno != EEXIST) {
            int e = errno;
            snprintf(err, errlen, "%s: %s", p, strerror(e));
            return -e;
        }
        if (end)
            return 0;
        *c = '/';
    }
}

int trn_reward_save(trn_reward *rm, const char *dir, const char *base_model,
                    const json_t *extra, char *err, size_t errlen)
{
    char path[4096];
    if (extra && !json_is_object(extra)) {
        snprintf(err, errlen, "reward model: extra config must be a JSON object");
        return -EINVAL;
    }
    int rc = trn_reward__mkdirs(dir, err, errlen);
    if (rc)
        return rc;
    if (rm->lo && (rc = trn_peft_save(rm->lo, rm->arch, trn_dec_hp(rm->d), base_model, dir, err,
                                      errlen)))
        return rc;
    snprintf(path, sizeof path, "%s/reward_head.safetensors", dir);
    if ((rc = trn_reward__write_head(rm, path, err, errlen)))
        return rc;
    /* the config last: a folder with a config is complete */
    snprintf(path, sizeof path, "%s/reward_config.json", dir);
    return trn_reward__write_config(rm, path, base_model, extra, err, errlen);
}

/* Checks reward_config.json against the model it is loaded onto. */
static int trn_reward__check_config(const json_t *j, model *m, const char *path, bool *lora,
                                    char *err, size_t errlen)
{
    const char *fmt = json_string_value(json_object_get(j, "format"));
    const char *arch = json_string_value(json_object_get(j, "architecture"));
    json_int_t ver = json_integer_value(json_object_get(j, "version"));
    json_int_t C = json_integer_value(json_object_get(j, "hidden_size"));
    json_int_t V = json_integer_value(json_object_get(j, "vocab_size"));
    if (!fmt || strcmp(fmt, "alignd-reward") || ver != 1 || !arch) {
        snprintf(err, errlen, "%s: not an alignd reward model (format \"alignd-reward\", "
                 "version 1, with an architecture)", path);
        return -EINVAL;
    }
    const model_hparams *hp = model_hp(m);
    if (strcmp(arch, model_arch_name(model_arch(m))) || C != hp->n_embd || V != hp->n_vocab) {
        snprintf(err, errlen, "%s: trained on a %s model with hidden size %lld and vocabulary "
                 "%lld; this model is %s with %d and %d", path, arch, (long long)C, (long long)V,
                 model_arch_name(model_arch(m)), hp->n_embd, hp->n_vocab);
        return -EINVAL;
    }
    *lora = json_is_true(json_object_get(j, "lora"));
    return 0;
}

static int trn_reward__read_tensor(const st_file *f, const char *name, int n_dims,
                                   const int64_t *shape, float *dst, const char *path,
                                   char *err, size_t errlen)
{
    const st_tensor *t = st_find(f, name);
    st_error e = {0};
    float *v = NULL;
    if (!t) {
        snprintf(err, errlen, "%s: no tensor '%s'", path, name);
        return -EINVAL;
    }
    int rc = st_tensor_expect(t, ST_F32, n_dims, shape, path, &e);
    if (!rc)
        rc = st_tensor_to_f32(t, &v, &e);
    if (rc) {
        snprintf(err, errlen, "%s", e.msg);
        return rc;
    }
    memcpy(dst, v, (size_t)t->n_elements * sizeof(float));
    free(v);
    return 0;
}

static int trn_reward__read_head(trn_reward *rm, const char *path, char *err, size_t errlen)
{
    st_file *f = NULL;
    st_error e = {0};
    if (st_open(&f, path, &e)) {
        snprintf(err, errlen, "%s", e.msg);
        return -EINVAL;
    }
    int64_t sw[2] = {1, rm->C}, sb[1] = {1};
    int rc = trn_reward__read_tensor(f, "score.weight", 2, sw, rm->w, path, err, errlen);
    if (!rc)
        rc = trn_reward__read_tensor(f, "score.bias", 1, sb, rm->b, path, err, errlen);
    st_close(f);
    return rc;
}

int trn_reward_load(trn_reward **out, model *m, const char *dir, json_t **config, char *err,
                    size_t errlen)
{
    char path[4096];
    json_error_t je;
    *out = NULL;
    if (config)
        *config = NULL;
    snprintf(path, sizeof path, "%s/reward_config.json", dir);
    json_t *j = json_load_file(path, 0, &je);
    if (!json_is_object(j)) {
        snprintf(err, errlen, "%s: %s", path, j ? "not a JSON object" : je.text);
        json_decref(j);
        return -EINVAL;
    }
    bool lora = false;
    int rc = trn_reward__check_config(j, m, path, &lora, err, errlen);
    trn_reward_cfg cfg = {0};
    if (!rc)
        rc = trn_reward_new(out, m, &cfg, err, errlen);
    if (!rc && lora && !(rc = trn_peft_load(&(*out)->lo, dir, model_arch(m), model_hp(m), err,
                                            errlen)))
        trn_dec_set_lora((*out)->d, (*out)->lo);
    snprintf(path, sizeof path, "%s/reward_head.safetensors", dir);
    if (!rc)
        rc = trn_reward__read_head(*out, path, err, errlen);
    if (rc) {
        trn_reward_free(*out);
        *out = NULL;
        json_decref(j);
        return rc;
    }
    if (config)
        *config = j;
    else
        json_decref(j);
    return 0;
}
