/* cli_train_dpo.c - `alignd train dpo`: DPO on a LoRA adapter of a model
 * (GGUF or HF folder) from preference pairs (TRL JSONL or the feedback
 * store), with a progress line in TRL's metric names and the adapter
 * written in PEFT's format. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "cli_train.h"
#include "model.h"
#include "train_data.h"
#include "trn_dpo.h"
#include "trn_peft.h"

typedef struct dpo_opts {
    const char *model, *data, *store, *out, *loss, *chat_template, *targets;
    double beta, label_smoothing, rpo_alpha, epochs, max_steps, batch, accum, lr, wd, warmup_ratio, clip;
    double max_len, max_prompt_len, eval_frac, eval_every, log_every, seed, threads;
    train_lora_opts lora;
    bool no_eos, json;
} dpo_opts;

static int dpo__usage(void)
{
    fprintf(stderr,
            "usage: alignd train dpo -m MODEL (--data FILE.jsonl | --store DB) -o ADAPTER_DIR "
            "[options]\n"
            "  -m MODEL              GGUF file or Hugging Face folder (llama or gpt2)\n"
            "  --data FILE.jsonl     TRL pairs: {prompt, chosen, rejected} as text or messages\n"
            "  --store DB            the feedback store (kind \"pair\" rows, their split)\n"
            "  -o DIR                the adapter, in PEFT's format\n"
            "  --beta X --loss sigmoid|hinge|ipo --label-smoothing X   (0.1, sigmoid, 0)\n"
            "  --rpo-alpha X         adds X x the chosen responses' token NLL (TRL's rpo_alpha; 0)\n"
            "  --lora-r N --lora-alpha X --lora-dropout X --lora-targets LIST\n"
            "                        (8, 16, 0, q,v for llama and qkv for gpt2)\n"
            "  --epochs N --max-steps N --batch N --accum N   (1, 0 = epochs, 4 pairs, 1)\n"
            "  --lr X --wd X --warmup-ratio X --clip X        (5e-5 linear decay, 0, 0.1, 1)\n"
            "  --max-len N --max-prompt-len N   (min(512, context), min(128, max-len/2))\n"
            "  --eval-frac X         JSONL pairs without a split held out (0.1)\n"
            "  --chat-template NAME  for messages (default: the model file's template)\n"
            "  --no-eos              do not append EOS to responses\n"
            "  --eval-every N --log-every N --seed N -t THREADS --json\n");
    return 2;
}

#define DO(f) offsetof(dpo_opts, f)
#define DN(name, f, lo, hi) {name, CLI_OPT_NUM, DO(f), lo, hi}
#define DS(name, f) {name, CLI_OPT_STR, DO(f), 0, 0}
#define DF(name, f) {name, CLI_OPT_FLAG, DO(f), 0, 0}
static const cli_opt dpo__opts[] = {
    DS("-m", model), DS("--model", model), DS("--data", data), DS("--store", store),
    DS("-o", out), DS("--out", out), DS("--loss", loss), DS("--chat-template", chat_template),
    DS("--lora-targets", lora.targets), DF("--no-eos", no_eos), DF("--json", json),
    DN("--beta", beta, 1e-6, 100), DN("--label-smoothing", label_smoothing, 0, 0.49),
    DN("--rpo-alpha", rpo_alpha, 0, 1e6),
    DN("--lora-r", lora.r, 1, 4096), DN("--lora-alpha", lora.alpha, 1e-6, 1e6),
    DN("--lora-dropout", lora.dropout, 0, 0.99), DN("--epochs", epochs, 1, 1e6),
    DN("--max-steps", max_steps, 0, 1e9), DN("--batch", batch, 1, 4096),
    DN("--accum", accum, 1, 4096), DN("--lr", lr, 0, 10), DN("--wd", wd, 0, 10),
    DN("--warmup-ratio", warmup_ratio, 0, 1), DN("--clip", clip, 0, 1e9),
    DN("--max-len", max_len, 0, 1 << 20), DN("--max-prompt-len", max_prompt_len, 0, 1 << 20),
    DN("--eval-frac", eval_frac, 0, 0.9), DN("--eval-every", eval_every, 0, 1e9),
    DN("--log-every", log_every, 1, 1e9), DN("--seed", seed, 0, 1.8e19),
    DN("-t", threads, 1, 1024),
};
#undef DO
#undef DN
#undef DS
#undef DF

static int dpo__parse(dpo_opts *o, int argc, char **argv)
{
    *o = (dpo_opts){.loss = "sigmoid", .beta = 0.1, .epochs = 1, .batch = 4, .accum = 1,
                    .lr = 5e-5, .warmup_ratio = 0.1, .clip = 1.0, .eval_frac = 0.1,
                    .log_every = 10, .seed = 42};
    train_lora_opts_default(&o->lora);
    int rc = cli_opts_parse("train dpo", dpo__opts, sizeof(dpo__opts) / sizeof(dpo__opts[0]), o,
                            argc, argv);
    if (rc)
        return rc == 1 ? dpo__usage() : 2;
    if (!o->model || !o->out || (!o->data == !o->store))
        return dpo__usage();
    return 0;
}

static void dpo__metrics(const char *what, const trn_dpo_metrics *m)
{
    fprintf(stderr, "%sloss %.4f | rewards/chosen %.4f | rewards/rejected %.4f | "
            "rewards/accuracies %.3f | rewards/margins %.4f | logps/chosen %.2f | "
            "logps/rejected %.2f | nll_loss %.4f", what, m->loss, m->rewards_chosen,
            m->rewards_rejected, m->rewards_accuracies, m->rewards_margins, m->logps_chosen,
            m->logps_rejected, m->nll_loss);
}

static void dpo__progress(void *ctx, const trn_dpo_progress *p)
{
    (void)ctx;
    int eta = (int)p->eta_s;
    fprintf(stderr, "alignd train dpo: step %lld/%lld (epoch %.2f) | ", (long long)p->step,
            (long long)p->steps, p->epoch);
    dpo__metrics("", &p->train);
    fprintf(stderr, " | lr %.2e | grad norm %.3f | %.1f pairs/s | ETA %d:%02d\n", p->lr,
            p->grad_norm, p->pairs_per_s, eta / 60, eta % 60);
    if (p->has_eval && p->eval.n > 0) {
        fprintf(stderr, "alignd train dpo: eval (%d pairs) | ", p->eval.n);
        dpo__metrics("", &p->eval);
        fputc('\n', stderr);
    }
}

static void dpo__json(const trn_dpo *t, const trn_dpo_metrics *e, int n_pairs)
{
    printf("{\"steps\": %lld, \"pairs\": %d, \"train_pairs\": %d, \"eval_pairs\": %d, "
           "\"eval\": {\"loss\": %.6f, \"rewards/chosen\": %.6f, \"rewards/rejected\": %.6f, "
           "\"rewards/accuracies\": %.6f, \"rewards/margins\": %.6f, \"logps/chosen\": %.6f, "
           "\"logps/rejected\": %.6f, \"nll_loss\": %.6f}}\n", (long long)t->steps, n_pairs,
           t->n_train, t->n_eval, e->loss, e->rewards_chosen, e->rewards_rejected,
           e->rewards_accuracies, e->rewards_margins, e->logps_chosen, e->logps_rejected,
           e->nll_loss);
}

static int dpo__cfg(trn_dpo_cfg *c, const dpo_opts *o)
{
    trn_dpo_cfg_default(c);
    if (trn_dpo_loss_parse(o->loss, &c->loss)) {
        fprintf(stderr, "alignd train dpo: --loss must be sigmoid, hinge or ipo\n");
        return -1;
    }
    c->beta = o->beta;
    c->label_smoothing = o->label_smoothing;
    c->rpo_alpha = o->rpo_alpha;
    c->batch = (int)o->batch;
    c->accum = (int)o->accum;
    c->epochs = (int)o->epochs;
    c->max_steps = (int64_t)o->max_steps;
    c->eval_every = (int)o->eval_every;
    c->log_every = (int)o->log_every;
    c->seed = (uint64_t)o->seed;
    c->optim.sched.lr = o->lr;
    c->optim.weight_decay = o->wd;
    c->optim.max_grad_norm = o->clip;
    c->optim.sched.warmup_steps = -1; /* the ratio is applied below, once steps are known */
    return 0;
}

int cli_train_dpo(int argc, char **argv)
{
    dpo_opts o;
    int rc = dpo__parse(&o, argc, argv);
    if (rc)
        return rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    char err[1024];
    train_base b = {0};
    model *m = NULL;
    trn_dec *d = NULL;
    trn_lora *lo = NULL;
    pref_set s = {0};
    trn_dpo tr = {0};
    trn_dpo_cfg c;
    trn_lora_cfg lc;
    pref_opts po;
    train_data_src src = {.jsonl = o.data, .store = o.store};
    if (dpo__cfg(&c, &o))
        return 2;
    rc = 1;
    if (train_base_load(&b, o.model, o.chat_template, 64, err, sizeof err) ||
        train_pref_opts(&po, o.max_len, o.max_prompt_len, o.eval_frac, o.no_eos, b.m, err,
                        sizeof err) ||
        train_data_load(&s, &src, &b.pt, &po, err, sizeof err) ||
        train_lora_cfg(&lc, &o.lora, b.m, (uint64_t)o.seed, err, sizeof err) ||
        trn_dec_from_model(&d, b.m, err, sizeof err) ||
        trn_lora_new(&lo, model_arch(b.m), model_hp(b.m), &lc, err, sizeof err)) {
        fprintf(stderr, "alignd train dpo: %s\n", err);
        goto out;
    }
    m = b.m;
    fprintf(stderr, "alignd train dpo: %d pairs (%d eval, %d truncated, %d skipped) from %s; "
            "LoRA r %d alpha %g on %s; computing reference log-probs...\n", s.n, s.n_eval,
            s.n_truncated, s.n_skipped, o.data ? o.data : o.store, lc.rank, (double)lc.alpha,
            o.lora.targets ? o.lora.targets : (model_arch(m) == MODEL_ARCH_GPT2 ? "qkv" : "q,v"));
    if (trn_dpo_init(&tr, d, lo, &s, &c, err, sizeof err)) {
        fprintf(stderr, "alignd train dpo: %s\n", err);
        goto out;
    }
    tr.opt.cfg.sched.warmup_steps = (int64_t)(o.warmup_ratio * (double)tr.steps);
    trn_dpo_metrics fin;
    if (trn_dpo_run(&tr, dpo__progress, NULL, &fin, err, sizeof err) ||
        trn_peft_save(lo, model_arch(m), model_hp(m), o.model, o.out, err, sizeof err)) {
        fprintf(stderr, "alignd train dpo: %s\n", err);
        goto out;
    }
    fprintf(stderr, "alignd train dpo: wrote the adapter to %s (%lld steps)\n", o.out,
            (long long)tr.steps);
    if (o.json)
        dpo__json(&tr, &fin, s.n);
    rc = 0;
out:
    trn_dpo_free(&tr);
    trn_lora_free(lo);
    trn_dec_free(d);
    pref_set_free(&s);
    train_base_free(&b);
    return rc;
}
