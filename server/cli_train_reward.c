/* cli_train_reward.c - `alignd train reward`: a Bradley-Terry reward model
 * (engine/train/trn_reward.h) trained on preference pairs, written as a
 * folder that the server loads through a model's `reward_model` key and
 * serves at POST /v1/rewards.
 *
 * Pairs come from a JSONL file in TRL's prompt/chosen/rejected forms
 * (pref_load_jsonl; split from "split" or a stable hash) or from the
 * feedback store (kind=pair rows, text or messages per the row's format,
 * split from the row). The backbone is the model, frozen, with a LoRA
 * adapter by default (r 8, alpha 16 on q,v for llama and on c_attn (qkv)
 * for gpt2, as TRL/PEFT users expect; --lora-r 0 trains the head only).
 * A progress line goes to stderr; --json prints the final figures on
 * stdout. */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "cli_opts.h"
#include "cli_train.h"
#include "model.h"
#include "pref.h"
#include "train_data.h"
#include "trn_reward.h"

#define RW "alignd train reward"

typedef struct reward_opts {
    const char *model, *data, *store, *out, *schedule, *chat_template;
    double epochs, batch, lr, wd, seed, max_len, max_prompt_len, eval_frac, warmup, clip,
        head_init, log_every, threads;
    train_lora_opts lora;
    bool json, no_eos;
} reward_opts;

static int reward__usage(void)
{
    fprintf(stderr,
            "usage: " RW " -m MODEL (--data FILE.jsonl | --store DB) -o OUTDIR [options]\n"
            "  -m MODEL            the base: a GGUF file or Hugging Face folder (llama, gpt2)\n"
            "  --data FILE         JSONL of TRL pairs: {\"prompt\", \"chosen\", \"rejected\"}\n"
            "                      (strings or messages; optional \"split\", \"margin\")\n"
            "  --store DB          the feedback store (kind=pair rows, split from the row)\n"
            "  -o, --out DIR       the reward-model folder to write\n"
            "  --epochs N --batch N      (default 1, 8 pairs)\n"
            "  --lr X --wd X --warmup N --schedule linear|cosine|constant --clip X\n"
            "                      (default 1e-4, 0, 0, linear, 1.0)\n"
            "  --lora-r N          LoRA rank, 0 = train the head only (default 8)\n"
            "  --lora-alpha X --lora-dropout X  (default 16, 0)\n"
            "  --lora-targets L    e.g. q,v (default q,v for llama, qkv for gpt2)\n"
            "  --max-len N --max-prompt-len N   tokens (default 512 or the context, 128 or\n"
            "                      half of --max-len)\n"
            "  --no-eos            do not end responses with EOS\n"
            "  --chat-template NAME  for messages (default: the model file's template)\n"
            "  --eval-frac X       share held out when a pair names no split (default 0.1)\n"
            "  --head-init X       std of the head times sqrt(width) (default 0.1)\n"
            "  --seed N            head, adapter and pair order (default 42)\n"
            "  --log-every N       steps between progress lines (default 10)\n"
            "  --json              print the final figures as JSON on stdout\n"
            "  -t N                threads for the matrix products\n");
    return 2;
}

#define RO(f) offsetof(reward_opts, f)
#define RN(name, f, lo, hi) {name, CLI_OPT_NUM, RO(f), lo, hi}
#define RS(name, f) {name, CLI_OPT_STR, RO(f), 0, 0}
#define RF(name, f) {name, CLI_OPT_FLAG, RO(f), 0, 0}
static const cli_opt reward__opts[] = {
    RS("-m", model), RS("--model", model), RS("--data", data), RS("--store", store),
    RS("-o", out), RS("--out", out), RS("--schedule", schedule),
    RS("--chat-template", chat_template), RS("--lora-targets", lora.targets),
    RF("--json", json), RF("--no-eos", no_eos),
    RN("--epochs", epochs, 1, 1e6), RN("--batch", batch, 1, 65536), RN("--lr", lr, 0, 10),
    RN("--wd", wd, 0, 10), RN("--seed", seed, 0, 1.8e19), RN("--lora-r", lora.r, 0, 4096),
    RN("--lora-alpha", lora.alpha, 0, 1e6), RN("--lora-dropout", lora.dropout, 0, 0.99),
    RN("--max-len", max_len, 2, 1 << 20), RN("--max-prompt-len", max_prompt_len, 1, 1 << 20),
    RN("--eval-frac", eval_frac, 0, 0.99), RN("--warmup", warmup, 0, 1e9),
    RN("--clip", clip, 0, 1e9), RN("--head-init", head_init, 0, 100),
    RN("--log-every", log_every, 1, 1e9), RN("-t", threads, 1, 1024),
};
#undef RO
#undef RN
#undef RS
#undef RF

static int reward__parse(reward_opts *o, int argc, char **argv)
{
    *o = (reward_opts){.epochs = 1, .batch = 8, .lr = 1e-4, .seed = 42,
                       .eval_frac = 0.1, .clip = 1.0, .head_init = TRN_REWARD_HEAD_INIT,
                       .log_every = 10, .schedule = "linear"};
    train_lora_opts_default(&o->lora);
    int rc = cli_opts_parse("train reward", reward__opts,
                            sizeof(reward__opts) / sizeof(reward__opts[0]), o, argc, argv);
    if (rc == 1)
        reward__usage();
    if (rc)
        return rc; /* 1: help was asked for */
    if (!o->model || !o->out || !o->data == !o->store) {
        fprintf(stderr, RW ": need -m MODEL, -o OUTDIR and one of --data or --store\n");
        return reward__usage();
    }
    if (strcmp(o->schedule, "linear") && strcmp(o->schedule, "cosine") &&
        strcmp(o->schedule, "constant")) {
        fprintf(stderr, RW ": --schedule must be linear, cosine or constant\n");
        return 2;
    }
    return 0;
}

/* ---- the run -------------------------------------------------------------------- */

static int reward__cfg(const reward_opts *o, const train_base *b, trn_reward_cfg *rc)
{
    char err[256];
    *rc = (trn_reward_cfg){.use_lora = o->lora.r > 0, .head_init = (float)o->head_init,
                           .seed = (uint64_t)o->seed};
    if (rc->use_lora &&
        train_lora_cfg(&rc->lora, &o->lora, b->m, (uint64_t)o->seed + 1, err, sizeof err)) {
        fprintf(stderr, RW ": --lora-targets: %s\n", err);
        return -1;
    }
    return 0;
}

static trn_reward_train_cfg reward__train_cfg(const reward_opts *o)
{
    trn_reward_train_cfg c = {.epochs = (int)o->epochs, .batch = (int)o->batch,
                              .log_every = (int)o->log_every, .seed = (uint64_t)o->seed,
                              .optim = trn_optim_cfg_default()};
    c.optim.sched.kind = !strcmp(o->schedule, "cosine")   ? TRN_SCHED_COSINE
                         : !strcmp(o->schedule, "linear") ? TRN_SCHED_LINEAR
                                                          : TRN_SCHED_CONSTANT;
    c.optim.sched.lr = o->lr;
    c.optim.sched.warmup_steps = (int64_t)o->warmup;
    c.optim.weight_decay = o->wd;
    c.optim.max_grad_norm = o->clip;
    return c;
}

static void reward__progress(void *ctx, const trn_reward_progress *p)
{
    (void)ctx;
    int eta = (int)p->eta_s;
    fprintf(stderr, RW ": step %lld/%lld | epoch %d | loss %.4f | accuracy %.3f | lr %.2e | "
            "%.1f pairs/s | ETA %d:%02d", (long long)p->step, (long long)p->steps, p->epoch,
            p->loss, p->accuracy, p->lr, p->pairs_per_s, eta / 60, eta % 60);
    if (p->has_eval)
        fprintf(stderr, " | eval loss %.4f accuracy %.3f", p->eval_loss, p->eval_accuracy);
    fputc('\n', stderr);
}

static json_t *reward__num_or_null(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* What reward_config.json records beside the model's own keys: the
 * truncation the server must repeat when it scores, and the run. */
static json_t *reward__extra(const reward_opts *o, const pref_opts *po, const trn_reward_cfg *rc,
                             const trn_reward_result *res)
{
    json_t *lora = json_null();
    if (rc->use_lora) {
        lora = json_pack("{s:i, s:f, s:f, s:[]}", "r", rc->lora.rank, "alpha", rc->lora.alpha,
                         "dropout", rc->lora.dropout, "targets");
        for (int t = 0; t < TRN_LORA_N_TARGETS; t++)
            if (rc->lora.targets >> t & 1)
                json_array_append_new(json_object_get(lora, "targets"),
                                      json_string(trn_lora_target_name((trn_lora_target)t)));
    }
    return json_pack("{s:i, s:i, s:b, s:o, s:{s:i, s:i, s:f, s:f, s:s, s:I, s:f}, "
                     "s:{s:I, s:i, s:i, s:o, s:o, s:o, s:o, s:f}}",
                     "max_length", po->max_len, "max_prompt_length", po->max_prompt_len,
                     "add_eos", po->add_eos, "lora_config", lora, "training", "epochs",
                     (int)o->epochs, "batch", (int)o->batch, "lr", o->lr, "weight_decay", o->wd,
                     "data", o->data ? o->data : o->store, "seed", (json_int_t)o->seed,
                     "head_init", o->head_init, "result", "steps", (json_int_t)res->steps,
                     "train_pairs", res->n_train, "eval_pairs", res->n_eval, "train_loss",
                     reward__num_or_null(res->train_loss), "train_accuracy",
                     reward__num_or_null(res->train_accuracy), "eval_loss",
                     reward__num_or_null(res->eval_loss), "eval_accuracy",
                     reward__num_or_null(res->eval_accuracy), "seconds", res->seconds);
}

static void reward__report(const reward_opts *o, const trn_reward_result *res, int n_skipped,
                           int n_truncated)
{
    if (res->n_eval > 0)
        fprintf(stderr, RW ": wrote %s; eval accuracy %.3f (loss %.4f) on %d held-out pairs; "
                "%d training pairs, %lld steps in %.1f s\n", o->out, res->eval_accuracy,
                res->eval_loss, res->n_eval, res->n_train, (long long)res->steps, res->seconds);
    else
        fprintf(stderr, RW ": wrote %s; no held-out pairs (training accuracy %.3f); %d pairs, "
                "%lld steps in %.1f s\n", o->out, res->train_accuracy, res->n_train,
                (long long)res->steps, res->seconds);
    if (!o->json)
        return;
    json_t *j = json_pack("{s:s, s:I, s:i, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:f, s:f}",
                          "output", o->out, "steps", (json_int_t)res->steps, "train_pairs",
                          res->n_train, "eval_pairs", res->n_eval, "skipped_pairs", n_skipped,
                          "truncated_pairs", n_truncated, "train_loss",
                          reward__num_or_null(res->train_loss), "train_accuracy",
                          reward__num_or_null(res->train_accuracy), "eval_loss",
                          reward__num_or_null(res->eval_loss), "eval_accuracy",
                          reward__num_or_null(res->eval_accuracy), "seconds", res->seconds,
                          "pairs_per_s",
                          res->seconds > 0 ? res->n_train * o->epochs / res->seconds : 0.0);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(j);
}

static int reward__train_and_save(const reward_opts *o, train_base *b, const pref_opts *po,
                                  const pref_set *s)
{
    trn_reward_cfg rc;
    trn_reward *rm = NULL;
    trn_reward_result res = {0};
    char err[1024];
    int ret = -1;
    if (reward__cfg(o, b, &rc))
        return -1;
    trn_reward_train_cfg tc = reward__train_cfg(o);
    if (trn_reward_new(&rm, b->m, &rc, err, sizeof err) ||
        trn_reward_train(rm, s, &tc, reward__progress, NULL, &res, err, sizeof err)) {
        fprintf(stderr, RW ": %s\n", err);
        goto out;
    }
    json_t *extra = reward__extra(o, po, &rc, &res);
    /* the server renders messages with its own template: record the one used here */
    json_object_set_new(extra, "chat_template",
                        b->pt.has_chat ? json_string(chat_template_name(b->pt.chat_kind))
                                       : json_null());
    int sr = trn_reward_save(rm, o->out, o->model, extra, err, sizeof err);
    json_decref(extra);
    if (sr) {
        fprintf(stderr, RW ": %s\n", err);
        goto out;
    }
    reward__report(o, &res, s->n_skipped, s->n_truncated);
    ret = 0;
out:
    trn_reward_free(rm);
    return ret;
}

int cli_train_reward(int argc, char **argv)
{
    reward_opts o;
    int rc = reward__parse(&o, argc, argv);
    if (rc)
        return rc == 1 ? 0 : rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    train_base b = {0};
    pref_set s = {0};
    pref_opts po;
    char err[1024];
    train_data_src src = {.jsonl = o.data, .store = o.store};
    rc = 1;
    /* only the weights are used: keep the model's scratch small */
    if (train_base_load(&b, o.model, o.chat_template, 64, err, sizeof err) ||
        train_pref_opts(&po, o.max_len, o.max_prompt_len, o.eval_frac, o.no_eos, b.m, err,
                        sizeof err) ||
        train_data_load(&s, &src, &b.pt, &po, err, sizeof err)) {
        fprintf(stderr, RW ": %s\n", err);
        goto out;
    }
    fprintf(stderr, RW ": %d pairs (%d held out, %d truncated, %d skipped: no room for a "
            "response) from %s; model %s, %s\n", s.n, s.n_eval, s.n_truncated, s.n_skipped,
            o.data ? o.data : o.store, o.model,
            o.lora.r > 0 ? "head + LoRA" : "head only");
    if (s.n_eval == 0)
        fprintf(stderr, RW ": warning: no held-out pairs; eval accuracy cannot be measured\n");
    if (reward__train_and_save(&o, &b, &po, &s) == 0)
        rc = 0;
out:
    pref_set_free(&s);
    train_base_free(&b);
    return rc;
}
