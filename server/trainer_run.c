/* trainer_run.c - one closed-loop run on the worker thread (trainer.h):
 * pairs from the store, an optional reward model, DPO on a new LoRA adapter
 * of a frozen view of the served weights, PEFT save, registry, evaluation
 * gate, promotion.
 *
 * Serving and training share the model's weights read-only: trn_dec keeps
 * its own activations and never writes the weights (no merge), while the
 * scheduler's model_forward uses the model's scratch; so no lock is taken
 * around training steps.
 *
 * The gate's KL is exact over the full vocabulary: for each eval pair's
 * prompt + chosen response (at most TRAINER_KL_PAIRS), the logits at the
 * response positions are computed from the final hidden states and the
 * output matrix with the adapter on and off, and KL(policy || base) is
 * averaged over those positions.
 *
 * When the model serves a reward model (trained by this run or earlier),
 * the gate also compares its mean score of greedy continuations
 * (as long as the eval chosen responses on average, at most
 * TRAINER_GATE_TOKENS tokens) of the eval split's first
 * TRAINER_GATE_PROMPTS distinct prompts under the new adapter and under the
 * active one (the base when none): the new one must score at least as well.
 * With training.onpolicy, pairs sampled from the active policy and labelled
 * by that reward model join the human ones before DPO
 * (trainer_onpolicy.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trainer.h"

#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "log.h"
#include "sha256.h"
#include "train_data.h"
#include "trn_dpo.h"
#include "trn_peft.h"
#include "trn_reward.h"
#include "trainer_onpolicy.h"

#define TRAINER_KL_PAIRS 64
#define TRAINER_GATE_PROMPTS 16   /* eval prompts the gate samples */
#define TRAINER_GATE_TOKENS 16    /* greedy tokens per gate sample */
#define TRAINER_ONPOLICY_TOKENS 32 /* tokens per on-policy sample */

enum { ST_QUEUED, ST_RUNNING, ST_SUCCEEDED, ST_FAILED, ST_CANCELLED };

typedef struct run_ctx {
    trainer_job *job;
    served_model *sm;
    pref_tok pt;
    pref_opts po;
    pref_set s;
    json_t *history, *metrics;
    char dir[1024];          /* <training.dir>/<model> */
    char err[1024];
    double rm_accuracy;      /* held-out accuracy of this run's reward model;
                                -1 when the run trained none */
    int64_t cancel_checked_ms; /* when the store's cancel flag was last read */
} run_ctx;

static int64_t run__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void run__set(char **field, const char *v)
{
    free(*field);
    *field = v ? strdup(v) : NULL;
}

static void run__set_json(char **field, const json_t *j)
{
    free(*field);
    *field = j ? json_dumps(j, JSON_COMPACT) : NULL;
}

/* Writes the run's progress (history and metrics so far) to the store. */
static void run__save(run_ctx *x)
{
    store_run *r = x->job->run;
    run__set_json(&r->history, x->history);
    run__set_json(&r->metrics, x->metrics);
    char err[256];
    if (store_run_update(x->job->st, r, err, sizeof err))
        LOG_ERR("trainer", "run %s: %s", r->id, err);
}

/* This daemon's stop (trainer_cancel, shutdown), or a cancel another daemon
 * sharing the store asked for (store_run_request_cancel): the store is
 * read at most once a second. */
static bool run__cancelled(run_ctx *x)
{
    if (atomic_load(x->job->cancel))
        return true;
    int64_t now = run__now_ms();
    if (now - x->cancel_checked_ms < 1000)
        return false;
    x->cancel_checked_ms = now;
    store_run r;
    char err[256];
    bool asked = store_run_get(x->job->st, x->job->run->id, &r, err, sizeof err) == 0 &&
                 r.cancel_requested;
    store_run_clear(&r);
    if (asked)
        LOG_INF("trainer", "run %s: cancel requested through the store", x->job->run->id);
    return asked;
}

/* Between optimizer steps: let serving threads run first. */
static void run__yield(void)
{
    sched_yield();
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
}

static int run__mkdirs(const char *path)
{
    char p[1024];
    snprintf(p, sizeof p, "%s", path);
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            mkdir(p, 0755);
            *s = '/';
        }
    return mkdir(p, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

/* ---- data ---------------------------------------------------------------------- */

static int run__data(run_ctx *x)
{
    served_model *sm = x->sm;
    x->pt = (pref_tok){.t = sm->tok, .add_bos = tok_adds_bos(sm->tok), .eos_id = tok_eos(sm->tok),
                       .has_chat = sm->has_chat, .chat_kind = sm->chat_kind,
                       .bos_text = sm->bos_text, .eos_text = sm->eos_text};
    train_data_src src = {.store = cfg_store_location(x->job->c)};
    int rc = train_pref_opts(&x->po, 0, 0, 0, false, sm->m, x->err, sizeof x->err);
    if (!rc)
        rc = train_data_load(&x->s, &src, &x->pt, &x->po, x->err, sizeof x->err);
    if (!rc && (x->s.n - x->s.n_eval < 1)) {
        snprintf(x->err, sizeof x->err, "no training pairs (only %d eval pairs)", x->s.n_eval);
        rc = -EINVAL;
    }
    x->job->run->pairs = x->s.n;
    return rc;
}

/* ---- reward model ----------------------------------------------------------------- */

static void run__rm_progress(void *ctx, const trn_reward_progress *p)
{
    run_ctx *x = ctx;
    json_array_append_new(x->history, json_pack("{s:s, s:I, s:f, s:f, s:f}", "phase", "reward", "step",
                                                (json_int_t)p->step, "loss", p->loss, "accuracy",
                                                p->accuracy, "lr", p->lr));
    atomic_store(x->job->step, (long long)p->step);
    run__yield();
}

static int run__reward(run_ctx *x)
{
    const cfg *c = x->job->c;
    trn_reward *rm = NULL;
    trn_reward_cfg rc = {.use_lora = false, .head_init = TRN_REWARD_HEAD_INIT, .seed = 42};
    trn_reward_train_cfg tc = {.epochs = (int)c->training_epochs, .batch = (int)c->training_batch,
                               .log_every = 1, .seed = 42, .optim = trn_optim_cfg_default()};
    tc.optim.sched.lr = c->training_lr;
    trn_reward_result res = {0};
    int e = trn_reward_new(&rm, x->sm->m, &rc, x->err, sizeof x->err);
    if (!e)
        e = trn_reward_train(rm, &x->s, &tc, run__rm_progress, x, &res, x->err, sizeof x->err);
    char path[1100];
    snprintf(path, sizeof path, "%s/rm-%s", x->dir, x->job->run->id);
    json_t *extra = json_pack("{s:i, s:i, s:b, s:f}", "max_len", x->po.max_len, "max_prompt_len",
                              x->po.max_prompt_len, "add_eos", x->po.add_eos, "eval_accuracy",
                              res.eval_accuracy);
    if (!e)
        e = trn_reward_save(rm, path, x->sm->cfg->path, extra, x->err, sizeof x->err);
    json_decref(extra);
    if (e) {
        trn_reward_free(rm);
        return e;
    }
    x->rm_accuracy = isnan(res.eval_accuracy) ? -1.0 : res.eval_accuracy;
    json_object_set_new(x->metrics, "reward_model", json_pack("{s:s, s:f, s:f, s:I}", "path", path,
                        "eval_accuracy", isnan(res.eval_accuracy) ? -1.0 : res.eval_accuracy,
                        "eval_loss", isnan(res.eval_loss) ? -1.0 : res.eval_loss, "steps",
                        (json_int_t)res.steps));
    /* the new reward model serves /v1/rewards from now on */
    models_reward_install(x->sm, rm, x->po.max_len, x->po.max_prompt_len, x->po.add_eos);
    return 0;
}

/* ---- gate -------------------------------------------------------------------------- */

/* log-softmax of one logits row in place. */
static void run__log_softmax(float *z, int V)
{
    float mx = z[0];
    for (int v = 1; v < V; v++)
        mx = z[v] > mx ? z[v] : mx;
    double s = 0;
    for (int v = 0; v < V; v++)
        s += exp((double)(z[v] - mx));
    float lse = mx + (float)log(s);
    for (int v = 0; v < V; v++)
        z[v] -= lse;
}

/* Log-probs [n_pos, V] of the response positions of one sequence. */
static int run__resp_logp(trn_dec *d, const int32_t *ids, int L, int p0, float *out, char *err,
                          size_t errlen)
{
    trn_batch b = {.B = 1, .L = L, .tokens = ids, .hidden_only = true};
    int rc = trn_dec_forward(d, &b, NULL, err, errlen);
    if (rc)
        return rc;
    const model_hparams *hp = trn_dec_hp(d);
    int C = hp->n_embd, V = hp->n_vocab, n = L - 1 - p0;
    const float *h = trn_dec_hidden(d) + (size_t)p0 * C;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, V, C, 1.0f, h, C,
                trn_dec_weights(d)->output, C, 0.0f, out, V);
    for (int i = 0; i < n; i++)
        run__log_softmax(out + (size_t)i * V, V);
    return 0;
}

/* Mean per-token KL(policy || base) over the eval pairs' chosen responses. */
static int run__kl(run_ctx *x, trn_dec *d, trn_lora *lo, double *kl)
{
    int V = trn_dec_hp(d)->n_vocab, used = 0;
    double sum = 0;
    long tokens = 0;
    float *a = NULL, *b = NULL;
    int rc = 0;
    for (int i = 0; i < x->s.n && used < TRAINER_KL_PAIRS && !rc; i++) {
        const pref_pair *p = &x->s.p[i];
        if (x->s.n_eval > 0 && !p->eval)
            continue;
        int L = p->n_prompt + p->n_chosen, p0 = p->n_prompt - 1, n = L - 1 - p0;
        if (p->n_prompt < 1 || n < 1)
            continue;
        float *na = realloc(a, (size_t)n * V * sizeof *a), *nb = na ? realloc(b, (size_t)n * V * sizeof *b) : NULL;
        if (!na || !nb) {
            a = na ? na : a, b = nb ? nb : b;
            rc = -ENOMEM;
            break;
        }
        a = na, b = nb;
        lo->enabled = true;
        rc = run__resp_logp(d, p->ids, L, p0, a, x->err, sizeof x->err);
        lo->enabled = false;
        if (!rc)
            rc = run__resp_logp(d, p->ids, L, p0, b, x->err, sizeof x->err);
        lo->enabled = true;
        for (int t = 0; !rc && t < n; t++) {
            double k = 0;
            for (int v = 0; v < V; v++) {
                float lp = a[(size_t)t * V + v];
                k += exp((double)lp) * (double)(lp - b[(size_t)t * V + v]);
            }
            sum += k, tokens++;
        }
        used++;
    }
    free(a), free(b);
    *kl = tokens ? sum / (double)tokens : 0;
    return rc;
}

/* The active adapter (*lo NULL and *active_id NULL: the base). */
static int run__active_load(run_ctx *x, trn_lora **lo, char **active_id)
{
    store_adapter ad;
    char msg[256];
    *lo = NULL;
    if (store_adapter_active(x->job->st, x->sm->cfg->name, &ad, msg, sizeof msg))
        return 0;
    *active_id = strdup(ad.id);
    int rc = trn_peft_load(lo, ad.path, model_arch(x->sm->m), model_hp(x->sm->m), x->err,
                           sizeof x->err);
    if (!rc) {
        (*lo)->enabled = true;
        (*lo)->training = false;
    }
    store_adapter_clear(&ad);
    return rc;
}

/* Eval-split reward accuracy of the active adapter lo (0.5 for the base). */
static int run__active_acc(run_ctx *x, trn_dec *d, trn_lora *lo, const trn_dpo_cfg *dc,
                           double *acc)
{
    *acc = 0.5;
    if (!lo)
        return 0;
    trn_dpo t = {0};
    trn_dpo_metrics m;
    int rc = trn_dpo_init(&t, d, lo, &x->s, dc, x->err, sizeof x->err);
    if (!rc)
        rc = trn_dpo_eval(&t, true, &m, x->err, sizeof x->err);
    if (!rc)
        *acc = m.rewards_accuracies;
    trn_dpo_free(&t);
    trn_dec_set_lora(d, NULL);
    return rc;
}

/* ---- sampling with the reward model (trainer_onpolicy.h) ------------------------- */

/* training.onpolicy: pairs from the active policy's samples join x->s's
 * train split. Without a reward model nothing is added (noted). */
static int run__onpolicy(run_ctx *x, trn_dec *d, trn_lora *active)
{
    const cfg *c = x->job->c;
    int human = 0;
    for (int i = 0; i < x->s.n; i++)
        human += !x->s.p[i].eval;
    json_object_set_new(x->metrics, "pairs/human", json_integer(human));
    json_object_set_new(x->metrics, "pairs/onpolicy", json_integer(0));
    if (!c->training_onpolicy)
        return 0;
    if (!models_reward_present(x->sm)) {
        json_object_set_new(x->metrics, "onpolicy/skipped", json_string("no reward model"));
        return 0;
    }
    trainer_onpolicy_cfg oc = {.k = (int)c->training_onpolicy_k,
                               .max_prompts = (int)c->training_onpolicy_prompts,
                               .max_new = TRAINER_ONPOLICY_TOKENS, .ratio = c->training_onpolicy_ratio,
                               .min_gap = c->training_onpolicy_min_gap, .seed = 4242,
                               .eos = x->pt.eos_id, .cancel = x->job->cancel};
    trainer_onpolicy_stats st;
    int64_t t0 = run__now_ms();
    trn_dec_set_lora(d, active);
    int rc = trainer_onpolicy_pairs(x->sm, d, &x->s, &x->po, &oc, &st, x->err, sizeof x->err);
    trn_dec_set_lora(d, NULL);
    if (rc == -ENOENT) { /* the reward model went away meanwhile */
        json_object_set_new(x->metrics, "onpolicy/skipped", json_string(x->err));
        return 0;
    }
    if (rc)
        return rc;
    json_object_set_new(x->metrics, "pairs/onpolicy", json_integer(st.added));
    json_object_set_new(x->metrics, "onpolicy", json_pack("{s:i, s:i, s:i, s:i, s:f, s:f, s:I}",
                        "prompts", st.prompts, "samples_per_prompt", oc.k, "below_min_gap",
                        st.below_gap, "cap", st.cap, "mean_gap", st.mean_gap, "min_gap", oc.min_gap,
                        "ms", (json_int_t)(run__now_ms() - t0)));
    LOG_INF("trainer", "run %s: %d on-policy pairs from %d prompts (%d human train pairs)",
            x->job->run->id, st.added, st.prompts, human);
    return 0;
}

/* The gate's reward figures: mean reward-model score of greedy samples
 * under lo (the new adapter) and under active (NULL: the base). *have
 * false when the model has no reward model. */
static int run__gate_rewards(run_ctx *x, trn_dec *d, trn_lora *lo, trn_lora *active,
                             double *r_new, double *r_active, bool *have)
{
    *have = false;
    if (!models_reward_present(x->sm)) {
        json_object_set_new(x->metrics, "gate/reward_skipped", json_string("no reward model"));
        return 0;
    }
    /* samples as long as the feedback's responses (the reward model's
     * training distribution): the eval chosen responses' mean length,
     * at most TRAINER_GATE_TOKENS */
    long sum = 0, cnt = 0;
    for (int i = 0; i < x->s.n; i++)
        if (x->s.p[i].eval == (x->s.n_eval > 0))
            sum += x->s.p[i].n_chosen, cnt++;
    int len = cnt ? (int)((sum + cnt / 2) / cnt) : TRAINER_GATE_TOKENS;
    len = len < 1 ? 1 : len > TRAINER_GATE_TOKENS ? TRAINER_GATE_TOKENS : len;
    int n = 0;
    int64_t t0 = run__now_ms();
    trn_dec_set_lora(d, lo);
    lo->enabled = true;
    int rc = trainer_onpolicy_reward_mean(x->sm, d, &x->s, TRAINER_GATE_PROMPTS, len,
                                          x->pt.eos_id, r_new, &n, x->job->cancel, x->err,
                                          sizeof x->err);
    trn_dec_set_lora(d, active);
    if (!rc)
        rc = trainer_onpolicy_reward_mean(x->sm, d, &x->s, TRAINER_GATE_PROMPTS,
                                          len, x->pt.eos_id, r_active, NULL,
                                          x->job->cancel, x->err, sizeof x->err);
    trn_dec_set_lora(d, lo);
    if (rc == -ENOENT) {
        json_object_set_new(x->metrics, "gate/reward_skipped", json_string(x->err));
        return 0;
    }
    if (rc)
        return rc;
    *have = true;
    json_object_set_new(x->metrics, "gate/reward_new", json_real(*r_new));
    json_object_set_new(x->metrics, "gate/reward_active", json_real(*r_active));
    json_object_set_new(x->metrics, "gate/reward_prompts", json_integer(n));
    json_object_set_new(x->metrics, "gate/reward_tokens", json_integer(len));
    json_object_set_new(x->metrics, "gate/reward_ms", json_integer(run__now_ms() - t0));
    return 0;
}

/* ---- DPO --------------------------------------------------------------------------- */

static void run__dpo_cfg(const cfg *c, trn_dpo_cfg *dc)
{
    trn_dpo_cfg_default(dc);
    dc->beta = c->training_beta;
    dc->rpo_alpha = c->training_rpo_alpha;
    dc->batch = (int)c->training_batch;
    dc->epochs = (int)c->training_epochs;
    dc->seed = 42;
    dc->optim.sched.lr = c->training_lr;
    dc->optim.sched.warmup_steps = -1;
}

static int run__dpo_steps(run_ctx *x, trn_dpo *t)
{
    for (int64_t s = 0; s < t->steps; s++) {
        if (run__cancelled(x))
            return -ECANCELED;
        trn_dpo_metrics m;
        trn_optim_stats os;
        int rc = trn_dpo_step(t, &m, &os, x->err, sizeof x->err);
        if (rc)
            return rc;
        json_array_append_new(x->history, json_pack("{s:s, s:I, s:f, s:f, s:f, s:f, s:f}", "phase",
                              "dpo", "step", (json_int_t)(s + 1), "loss", m.loss,
                              "rewards/accuracies", m.rewards_accuracies, "rewards/margins",
                              m.rewards_margins, "nll_loss", m.nll_loss, "lr",
                              t->opt.cfg.sched.lr));
        atomic_store(x->job->step, (long long)(s + 1));
        if ((s + 1) % 10 == 0)
            run__save(x);
        run__yield();
    }
    return 0;
}

/* Saves lo as the next version's folder and registers it as a candidate. */
static int run__register(run_ctx *x, trn_lora *lo, const char *parent, store_adapter *ad)
{
    store_adapter *rows = NULL;
    size_t n = 0;
    int rc = store_adapter_list(x->job->st, x->sm->cfg->name, &rows, &n, x->err, sizeof x->err);
    int64_t next = rc || n == 0 ? 1 : rows[0].version + 1;
    store_adapter_list_free(rows, n);
    char path[1100], file[1200];
    snprintf(path, sizeof path, "%s/ad-%lld", x->dir, (long long)next);
    snprintf(file, sizeof file, "%s/" TRN_PEFT_WEIGHTS_FILE, path);
    char hex[SHA256_HEX_LEN + 1];
    if (rc || (rc = trn_peft_save(lo, model_arch(x->sm->m), model_hp(x->sm->m), x->sm->cfg->path,
                                  path, x->err, sizeof x->err)))
        return rc;
    if ((rc = sha256_file_hex(file, hex))) {
        snprintf(x->err, sizeof x->err, "%.900s: cannot read it back", file);
        return rc;
    }
    *ad = (store_adapter){.model = strdup(x->sm->cfg->name), .parent_id = parent ? strdup(parent) : NULL,
                          .run_id = strdup(x->job->run->id), .path = strdup(path), .sha256 = strdup(hex)};
    run__set_json(&ad->metrics, x->metrics);
    return store_adapter_register(x->job->st, ad, x->err, sizeof x->err);
}

/* The gate: accuracy beats the active adapter's, KL under kl_max, and
 * (with a reward model) the greedy samples score at least as well. A
 * reward model is only trusted to veto when this run trained it to
 * training.gate_rm_min_accuracy on held-out pairs: a weak one's scores
 * are noise (recorded as advisory). */
static const char *run__gate(run_ctx *x, double acc, double acc_active, double kl, bool have_rw,
                             double rw_new, double rw_active, char *why, size_t len)
{
    if (!(acc > acc_active)) {
        snprintf(why, len, "eval reward accuracy %.3f does not beat the active %.3f", acc, acc_active);
        return why;
    }
    if (!(kl < x->job->c->training_kl_max)) {
        snprintf(why, len, "KL(policy || base) %.4f is not under training.kl_max %.4f", kl,
                 x->job->c->training_kl_max);
        return why;
    }
    bool binding = x->rm_accuracy >= x->job->c->training_gate_rm_min_accuracy;
    json_object_set_new(x->metrics, "gate/reward_binding", json_boolean(have_rw && binding));
    if (have_rw && binding && !(rw_new >= rw_active)) {
        snprintf(why, len, "reward-model score of greedy samples %.4f is below the active %.4f",
                 rw_new, rw_active);
        return why;
    }
    return NULL;
}

static int run__dpo(run_ctx *x)
{
    const cfg *c = x->job->c;
    trn_dec *d = NULL;
    trn_lora *lo = NULL;
    trn_dpo t = {0};
    trn_dpo_cfg dc;
    trn_lora_cfg lc;
    train_lora_opts lopt;
    train_lora_opts_default(&lopt);
    lopt.r = (double)c->training_lora_r, lopt.alpha = c->training_lora_alpha;
    lopt.targets = c->training_lora_targets[0] ? c->training_lora_targets : NULL;
    run__dpo_cfg(c, &dc);
    double acc_active = 0.5, kl = 0, rw_new = 0, rw_active = 0;
    bool have_rw = false;
    char *active_id = NULL;
    trn_lora *active = NULL;
    trn_dpo_metrics ev;
    store_adapter ad = {0};
    int rc = train_lora_cfg(&lc, &lopt, x->sm->m, 42, x->err, sizeof x->err);
    if (!rc)
        rc = trn_dec_from_model(&d, x->sm->m, x->err, sizeof x->err);
    if (!rc)
        rc = run__active_load(x, &active, &active_id);
    if (!rc)
        rc = run__active_acc(x, d, active, &dc, &acc_active);
    if (!rc)
        rc = run__onpolicy(x, d, active);
    if (!rc && run__cancelled(x))
        rc = -ECANCELED;
    if (!rc)
        rc = trn_lora_new(&lo, model_arch(x->sm->m), model_hp(x->sm->m), &lc, x->err, sizeof x->err);
    if (!rc)
        rc = trn_dpo_init(&t, d, lo, &x->s, &dc, x->err, sizeof x->err);
    if (!rc) {
        t.opt.cfg.sched.warmup_steps = t.steps / 10;
        rc = run__dpo_steps(x, &t);
    }
    if (!rc) {
        lo->training = false;
        rc = trn_dpo_eval(&t, true, &ev, x->err, sizeof x->err);
    }
    if (!rc)
        rc = run__kl(x, d, lo, &kl);
    if (!rc)
        rc = run__gate_rewards(x, d, lo, active, &rw_new, &rw_active, &have_rw);
    if (!rc) {
        json_object_set_new(x->metrics, "eval", json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "pairs",
                            ev.n, "loss", ev.loss, "rewards/accuracies", ev.rewards_accuracies,
                            "rewards/margins", ev.rewards_margins, "rewards/chosen",
                            ev.rewards_chosen, "nll_loss", ev.nll_loss));
        json_object_set_new(x->metrics, "active_accuracy", json_real(acc_active));
        json_object_set_new(x->metrics, "kl", json_real(kl));
        json_object_set_new(x->metrics, "kl_method", json_string("exact, full vocabulary, eval chosen responses"));
        rc = run__register(x, lo, active_id, &ad);
    }
    if (!rc) {
        run__set(&x->job->run->adapter_id, ad.id);
        char why[256];
        const char *reason = run__gate(x, ev.rewards_accuracies, acc_active, kl, have_rw, rw_new,
                                       rw_active, why, sizeof why);
        if (reason) {
            json_object_set_new(x->metrics, "promoted", json_false());
            store_adapter_set_reason(x->job->st, ad.id, reason, NULL, x->err, sizeof x->err);
            LOG_INF("trainer", "run %s: adapter %s stays a candidate: %s", x->job->run->id, ad.id, reason);
        } else {
            json_object_set_new(x->metrics, "promoted", json_true());
            rc = trainer_activate(x->job->st, x->sm, ad.id, x->err, sizeof x->err);
        }
    }
    store_adapter_clear(&ad);
    free(active_id);
    trn_dpo_free(&t);
    trn_lora_free(lo);
    trn_lora_free(active);
    trn_dec_free(d);
    return rc;
}

/* ---- the run ----------------------------------------------------------------------- */

static int run__body(run_ctx *x)
{
    const char *kind = x->job->run->kind;
    snprintf(x->dir, sizeof x->dir, "%s/%s", x->job->c->training_dir, x->sm->cfg->name);
    int rc = run__mkdirs(x->dir);
    if (rc) {
        snprintf(x->err, sizeof x->err, "training.dir %.900s: %s", x->dir, strerror(-rc));
        return rc;
    }
    if ((rc = run__data(x)))
        return rc;
    if (strcmp(kind, "dpo") && (rc = run__reward(x)))
        return rc;
    if (run__cancelled(x))
        return -ECANCELED;
    return strcmp(kind, "reward") ? run__dpo(x) : 0;
}

int trainer_run(trainer_job *job)
{
    store_run *r = job->run;
    run_ctx x = {.job = job, .sm = job->sm, .history = json_array(), .metrics = json_object(),
                 .rm_accuracy = -1.0};
    run__set(&r->status, "running");
    r->started_at = run__now_ms();
    json_t *conf = json_pack("{s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:s, s:f, s:b}", "epochs",
                             (json_int_t)job->c->training_epochs, "batch", (json_int_t)job->c->training_batch,
                             "lr", job->c->training_lr, "beta", job->c->training_beta, "rpo_alpha",
                             job->c->training_rpo_alpha, "lora_r",
                             (json_int_t)job->c->training_lora_r, "lora_alpha", job->c->training_lora_alpha,
                             "lora_targets", job->c->training_lora_targets, "kl_max", job->c->training_kl_max,
                             "onpolicy", job->c->training_onpolicy);
    run__set_json(&r->config, conf);
    json_decref(conf);
    run__save(&x);
    LOG_INF("trainer", "run %s: %s on model '%s' started", r->id, r->kind, job->sm->cfg->name);
    int rc = run__body(&x);
    int status = rc == 0 ? ST_SUCCEEDED : rc == -ECANCELED ? ST_CANCELLED : ST_FAILED;
    run__set(&r->status, trainer_status_names[status]);
    if (rc)
        run__set(&r->error, rc == -ECANCELED ? "cancelled" : x.err);
    r->finished_at = run__now_ms();
    if (job->finished) /* counted before the store says so: /metrics never lags the API */
        job->finished(job->finished_ud, status);
    run__save(&x);
    LOG_INF("trainer", "run %s: %s%s%s", r->id, r->status, rc ? ": " : "", rc ? r->error : "");
    pref_set_free(&x.s);
    json_decref(x.history);
    json_decref(x.metrics);
    return status;
}
