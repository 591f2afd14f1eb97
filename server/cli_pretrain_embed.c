/* cli_pretrain_embed.c - `alignd pretrain embed`: fine-tunes a causal LM
 * (a llama GGUF, e.g. from `alignd pretrain`) into a sentence-embedding
 * model with a contrastive objective (trn_embed.h) on (query, positive,
 * hard negatives) items, as models/gen/gen_paraphrases.py writes them, and
 * writes a GGUF with mean pooling (llama.pooling_type = 1) that
 * /v1/embeddings serves as is.
 *
 * Before training it measures the retrieval of the LM's own mean-pooled
 * embeddings on the --eval set, so the log states plainly what the
 * contrastive objective adds. --json prints the figures as one JSON object
 * on stdout. */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_opts.h"
#include "gguf.h"
#include "gguf_writer.h"
#include "model.h"
#include "tok.h"
#include "tok_load.h"
#include "trn_dec.h"
#include "trn_embed.h"
#include "trn_embed_items.h"

typedef struct embed_opts {
    const char *model, *data, *eval, *out, *name, *schedule;
    double steps, batch, negatives, scale, lr, min_lr, warmup, wd, clip, seed;
    double log_every, eval_every, max_items, threads;
    trn_sched_kind sched;
    bool json;
} embed_opts;

static int embed__usage(void)
{
    fprintf(stderr,
            "usage: alignd pretrain embed -m LM.gguf --data ITEMS.jsonl -o OUT.gguf [options]\n"
            "  -m, --model FILE    the causal LM to start from (a llama GGUF)\n"
            "  --data FILE         training items, one JSON object per line:\n"
            "                      {\"query\", \"positive\", \"negatives\": [...]}\n"
            "  --eval FILE         held-out items: retrieval (the positive against all the\n"
            "                      item's negatives) before and during training\n"
            "  -o, --out FILE      the embedding model (GGUF, mean pooling) to write\n"
            "  --steps N --batch N optimizer steps, items per step (default 600, 32)\n"
            "  --negatives K       hard negatives per item in a step (default 2)\n"
            "  --scale X           logit scale, 1/temperature (default 20)\n"
            "  --lr X --min-lr X --warmup N --schedule cosine|linear|constant\n"
            "                      (default 3e-4, 3e-5, steps/20, cosine)\n"
            "  --wd X --clip X     AdamW weight decay, gradient-norm clip (default 0.01, 1.0)\n"
            "  --max-items N       use the first N training items (default all)\n"
            "  --log-every N --eval-every N  (default 20, steps/5)\n"
            "  --seed N            item sampling (default 1)\n"
            "  --name S            general.name in the GGUF\n"
            "  --json              print the final figures as JSON on stdout\n"
            "  -t N                threads for the matrix products\n");
    return 2;
}

#define EO(f) offsetof(embed_opts, f)
#define EN(name, f, lo, hi) {name, CLI_OPT_NUM, EO(f), lo, hi}
#define ES(name, f) {name, CLI_OPT_STR, EO(f), 0, 0}
static const cli_opt embed__opts[] = {
    ES("-m", model), ES("--model", model), ES("--data", data), ES("--eval", eval),
    ES("-o", out), ES("--out", out), ES("--name", name), ES("--schedule", schedule),
    {"--json", CLI_OPT_FLAG, EO(json), 0, 0},
    EN("--steps", steps, 1, 1e9), EN("--batch", batch, 2, 65536),
    EN("--negatives", negatives, 0, 1024), EN("--scale", scale, 1e-3, 1e4),
    EN("--lr", lr, 0, 10), EN("--min-lr", min_lr, 0, 10), EN("--warmup", warmup, 0, 1e9),
    EN("--wd", wd, 0, 10), EN("--clip", clip, 0, 1e9), EN("--seed", seed, 0, 1.8e19),
    EN("--log-every", log_every, 1, 1e9), EN("--eval-every", eval_every, 0, 1e9),
    EN("--max-items", max_items, 0, 1e9), EN("-t", threads, 1, 1024),
};
#undef EO
#undef EN
#undef ES

static int embed__parse(embed_opts *o, int argc, char **argv)
{
    *o = (embed_opts){.steps = 600, .batch = 32, .negatives = 2, .scale = 20, .lr = 3e-4,
                      .min_lr = 3e-5, .warmup = -1, .wd = 0.01, .clip = 1.0, .seed = 1,
                      .log_every = 20, .eval_every = -1, .schedule = "cosine",
                      .name = "alignd-embed"};
    int rc = cli_opts_parse("pretrain embed", embed__opts,
                            sizeof(embed__opts) / sizeof(embed__opts[0]), o, argc, argv);
    if (rc)
        return rc == 1 ? embed__usage() : 2;
    if (!o->model || !o->data || !o->out)
        return embed__usage();
    if (cli_opts_schedule("pretrain embed", o->schedule, &o->sched))
        return 2;
    if (o->warmup < 0)
        o->warmup = floor(o->steps / 20);
    if (o->eval_every < 0)
        o->eval_every = fmax(1, floor(o->steps / 5));
    return 0;
}

/* ---- the items ---------------------------------------------------------------- */

/* The number of negatives of the file's first non-blank line; -1 with a
 * message. */
static int embed__count_negatives(FILE *f, const char *path)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t got;
    int n = -EINVAL;
    while ((got = getline(&buf, &cap, f)) > 0) {
        if (strspn(buf, " \t\r\n") == (size_t)got)
            continue;
        n = trn_embed_items_count_negatives(buf, (size_t)got);
        break;
    }
    free(buf);
    rewind(f);
    if (n < 0)
        fprintf(stderr, "alignd pretrain embed: %s: the first item has no \"negatives\" "
                "array\n", path);
    return n < 0 ? -1 : n;
}

/* Reads up to max_items items (0: all) of n_neg negatives each (-1: as
 * many as the first item has; items with more keep the first n_neg). */
static int embed__read(trn_embed_set *set, const char *path, int n_neg, const tok *t, int max,
                       long max_items)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "alignd pretrain embed: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (n_neg < 0 && (n_neg = embed__count_negatives(f, path)) < 0) {
        fclose(f);
        return -1;
    }
    trn_embed_set_init(set, n_neg);
    char *buf = NULL, err[512];
    size_t cap = 0;
    long line = 0, skipped = 0;
    ssize_t got;
    int rc = 0;
    while (!rc && (max_items <= 0 || set->n_items < max_items) &&
           (got = getline(&buf, &cap, f)) > 0) {
        line++;
        int r = trn_embed_items_add_line(set, t, max, buf, (size_t)got, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "alignd pretrain embed: %s:%ld: %s\n", path, line, err);
            rc = -1;
        }
        skipped += r == 1;
    }
    free(buf);
    fclose(f);
    if (!rc && set->n_items == 0) {
        fprintf(stderr, "alignd pretrain embed: %s: no item with %d negatives\n", path, n_neg);
        rc = -1;
    }
    if (!rc && skipped)
        fprintf(stderr, "alignd pretrain embed: %s: %ld items with fewer than %d negatives "
                "skipped\n", path, skipped, n_neg);
    return rc;
}

/* ---- output --------------------------------------------------------------------- */

static int embed__write(const embed_opts *o, trn_dec *d)
{
    static const char *const keep[] = {
        "tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.scores",
        "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id",
        "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token",
    };
    char err[512];
    gguf_file *src = NULL;
    gguf_writer *w = NULL;
    int rc = gguf_open(&src, o->model, err, sizeof err);
    if (!rc && (rc = gguf_writer_new(&w)) == 0)
        rc = trn_dec_add_to_gguf(d, w, o->name, err, sizeof err);
    for (size_t i = 0; !rc && i < sizeof(keep) / sizeof(keep[0]); i++)
        if (gguf_find_key(src, keep[i]) >= 0)
            rc = gguf_writer_copy_kv(w, src, keep[i]);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.pooling_type", 1); /* mean */
    if (!rc)
        rc = gguf_writer_write(w, o->out, err, sizeof err);
    else if (w && *gguf_writer_error(w))
        snprintf(err, sizeof err, "%s", gguf_writer_error(w));
    if (rc)
        fprintf(stderr, "alignd pretrain embed: %s\n", err);
    gguf_writer_free(w);
    gguf_close(src);
    return rc ? -1 : 0;
}

static void embed__progress(void *ctx, const trn_embed_progress *p)
{
    (void)ctx;
    int eta = (int)p->eta_s;
    fprintf(stderr, "alignd pretrain embed: step %lld/%lld | loss %.4f | lr %.2e | grad norm "
            "%.3f | %.0f sentences/s | ETA %d:%02d", (long long)p->step, (long long)p->steps,
            p->loss, p->lr, p->grad_norm, p->seq_per_s, eta / 60, eta % 60);
    if (p->has_eval)
        fprintf(stderr, " | held-out top-1 %.3f MRR %.3f", p->eval.top1, p->eval.mrr);
    fputc('\n', stderr);
}

static trn_optim_cfg embed__optim(const embed_opts *o)
{
    trn_optim_cfg c = trn_optim_cfg_default();
    cli_opts_optim(&c, o->sched, o->lr, o->min_lr, o->warmup, o->steps, o->wd, o->clip);
    return c;
}

/* ---- the command ------------------------------------------------------------- */

int cli_pretrain_embed(int argc, char **argv)
{
    embed_opts o;
    int rc = embed__parse(&o, argc, argv);
    if (rc)
        return rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    rc = 1;
    char err[1024];
    model *m = NULL;
    tok *t = NULL;
    trn_dec *d = NULL;
    trn_embed te = {0};
    trn_embed_set train = {0}, held = {0};
    tok_err terr;
    model_opts mo = {.f32_weights = true}; /* the trainable copy reads F32 */
    if (model_load_opts(&m, o.model, &mo, err, sizeof err)) {
        fprintf(stderr, "alignd pretrain embed: %s\n", err);
        goto out;
    }
    if (tok_load(&t, o.model, &terr)) {
        fprintf(stderr, "alignd pretrain embed: %s: tokenizer: %s\n", o.model, terr.msg);
        goto out;
    }
    int n_ctx = model_n_ctx(m), K = (int)o.negatives;
    if (embed__read(&train, o.data, K, t, n_ctx, (long)o.max_items) ||
        (o.eval && embed__read(&held, o.eval, -1, t, n_ctx, 0)))
        goto out;
    if (trn_dec_copy_model(&d, m, err, sizeof err)) {
        fprintf(stderr, "alignd pretrain embed: %s: %s\n", o.model, err);
        goto out;
    }
    model_free(m);
    m = NULL;
    trn_embed_cfg cfg = {.batch = (int)o.batch, .negatives = K, .scale = (float)o.scale,
                         .steps = (int64_t)o.steps, .log_every = (int)o.log_every,
                         .eval_every = (int)o.eval_every, .seed = (uint64_t)o.seed,
                         .optim = embed__optim(&o)};
    int max_len = train.max_len > held.max_len ? train.max_len : held.max_len;
    if (trn_embed_init(&te, d, &cfg, max_len, err, sizeof err)) {
        fprintf(stderr, "alignd pretrain embed: %s\n", err);
        goto out;
    }
    fprintf(stderr, "alignd pretrain embed: %d training items (%d negatives each used), %d "
            "held out (%d negatives each), sentences up to %d tokens; model %.2fM parameters, "
            "%d wide\n", train.n_items, K, held.n_items, held.n_neg, max_len,
            (double)trn_dec_n_weights(d) / 1e6, trn_dec_hp(d)->n_embd);
    trn_embed_eval before = {NAN, NAN}, after = {NAN, NAN};
    if (o.eval) {
        if (trn_embed_evaluate(&te, &held, &before, err, sizeof err)) {
            fprintf(stderr, "alignd pretrain embed: %s\n", err);
            goto out;
        }
        fprintf(stderr, "alignd pretrain embed: before training (the LM's mean-pooled hidden "
                "states): held-out top-1 %.3f MRR %.3f (chance %.3f)\n", before.top1,
                before.mrr, 1.0 / (1 + held.n_neg));
    }
    if (trn_embed_run(&te, &train, o.eval ? &held : NULL, embed__progress, NULL, err,
                      sizeof err) ||
        (o.eval && trn_embed_evaluate(&te, &held, &after, err, sizeof err))) {
        fprintf(stderr, "alignd pretrain embed: %s\n", err);
        goto out;
    }
    if (embed__write(&o, d))
        goto out;
    fprintf(stderr, "alignd pretrain embed: wrote %s", o.out);
    if (o.eval)
        fprintf(stderr, "; held-out top-1 %.3f (before %.3f), MRR %.3f (before %.3f)",
                after.top1, before.top1, after.mrr, before.mrr);
    fputc('\n', stderr);
    if (o.json) {
        json_t *j = json_pack("{s:I, s:f, s:i, s:i, s:i}", "steps", (json_int_t)te.opt.step,
                              "train_loss", te.last_loss, "items", train.n_items, "eval_items",
                              held.n_items, "negatives", K);
        if (j && o.eval) {
            json_object_set_new(j, "eval_negatives", json_integer(held.n_neg));
            json_object_set_new(j, "top1_before", json_real(before.top1));
            json_object_set_new(j, "mrr_before", json_real(before.mrr));
            json_object_set_new(j, "top1", json_real(after.top1));
            json_object_set_new(j, "mrr", json_real(after.mrr));
        }
        if (j)
            json_dumpf(j, stdout, JSON_COMPACT);
        putchar('\n');
        json_decref(j);
    }
    rc = 0;
out:
    trn_embed_free(&te);
    trn_embed_set_free(&train);
    trn_embed_set_free(&held);
    trn_dec_free(d);
    tok_free(t);
    model_free(m);
    return rc;
}
