/* cli_pretrain.c - `alignd pretrain`: trains a small llama-architecture model
 * from a text corpus and writes a GGUF that `alignd generate` and the server
 * load.
 *
 * Steps: learn a byte-level BPE vocabulary from the corpus (bpe_train.h;
 * --vocab 256 + 1 is pure bytes), tokenize it, hold out its last part, then
 * causal-LM training (trn_lm.h) with a progress line on stderr, a final
 * held-out loss compared with the unigram baseline, and the GGUF (model +
 * tokenizer). With --checkpoint the run saves its state as it goes;
 * --resume continues from it (the vocabulary is learnt again, which is
 * deterministic, and the corpus and settings must be the same: a
 * fingerprint in the checkpoint is checked). "<|endoftext|>" in the corpus
 * separates documents and becomes the end-of-text token (the model's EOS).
 * --json prints the final
 * figures as one JSON object on stdout. */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bpe_train.h"
#include "cli.h"
#include "cli_file.h"
#include "cli_opts.h"
#include "fnv.h"
#include "gguf_writer.h"
#include "tok.h"
#include "trn_ckpt.h"
#include "trn_dec.h"
#include "trn_lm.h"

#define PRETRAIN_EOT "<|endoftext|>"

typedef struct pretrain_opts {
    const char *corpus, *out, *ckpt, *name;
    double vocab, ctx, embd, layers, heads, kv_heads, ff;
    double steps, stop_after, batch, seq, accum, warmup, eval_every, log_every, ckpt_every, seed;
    double lr, min_lr, wd, clip, heldout, threads;
    const char *schedule;
    trn_sched_kind sched;
    bool resume, json, untied;
} pretrain_opts;

static int pretrain__usage(void)
{
    fprintf(stderr,
            "usage: alignd pretrain --corpus FILE -o OUT.gguf [options]\n"
            "  --corpus FILE       UTF-8 training text\n"
            "  -o, --out FILE      the GGUF to write\n"
            "  --vocab N           vocabulary size incl. 256 bytes and " PRETRAIN_EOT
            " (default 512)\n"
            "  --ctx N             context length (default 128)\n"
            "  --embd N --layers N --heads N --kv-heads N --ff N\n"
            "                      shape (default 128, 4, 4, heads, 8/3 embd rounded to 8)\n"
            "  --untied            a separate output matrix (default: tied to the embedding)\n"
            "  --steps N           optimizer steps (default 500)\n"
            "  --batch N --seq N --accum N   windows per batch, tokens per window,\n"
            "                      batches per step (default 16, 64, 1)\n"
            "  --lr X --min-lr X --warmup N --schedule cosine|linear|constant\n"
            "                      (default 1e-3, 1e-4, steps/20, cosine)\n"
            "  --wd X --clip X     AdamW weight decay, gradient-norm clip (default 0.1, 1.0)\n"
            "  --heldout X         share of the corpus held out (default 0.1)\n"
            "  --eval-every N --log-every N  (default steps/10, 10)\n"
            "  --checkpoint FILE --checkpoint-every N --resume\n"
            "  --stop-after N      stop at step N (resume later with --resume)\n"
            "  --seed N            initialisation and batches (default 1)\n"
            "  --name S            general.name in the GGUF\n"
            "  --json              print the final figures as JSON on stdout\n"
            "  -t N                threads for the matrix products\n");
    return 2;
}

#define PO(f) offsetof(pretrain_opts, f)
#define PN(name, f, lo, hi) {name, CLI_OPT_NUM, PO(f), lo, hi}
#define PS(name, f) {name, CLI_OPT_STR, PO(f), 0, 0}
#define PF(name, f) {name, CLI_OPT_FLAG, PO(f), 0, 0}
static const cli_opt pretrain__opts[] = {
    PS("--corpus", corpus), PS("-o", out), PS("--out", out), PS("--checkpoint", ckpt),
    PS("--schedule", schedule), PS("--name", name),
    PF("--resume", resume), PF("--json", json), PF("--untied", untied),
    PN("--vocab", vocab, 257, 1 << 20), PN("--ctx", ctx, 4, 65536),
    PN("--embd", embd, 8, 65536), PN("--layers", layers, 1, 1024),
    PN("--heads", heads, 1, 1024), PN("--kv-heads", kv_heads, 1, 1024),
    PN("--ff", ff, 1, 1 << 18), PN("--steps", steps, 1, 1e9),
    PN("--stop-after", stop_after, 0, 1e9), PN("--batch", batch, 1, 65536),
    PN("--seq", seq, 2, 65536), PN("--accum", accum, 1, 65536),
    PN("--warmup", warmup, 0, 1e9), PN("--eval-every", eval_every, 0, 1e9),
    PN("--log-every", log_every, 1, 1e9), PN("--checkpoint-every", ckpt_every, 0, 1e9),
    PN("--seed", seed, 0, 1.8e19), PN("--lr", lr, 0, 10), PN("--min-lr", min_lr, 0, 10),
    PN("--wd", wd, 0, 10), PN("--clip", clip, 0, 1e9), PN("--heldout", heldout, 0.001, 0.5),
    PN("-t", threads, 1, 1024),
};
#undef PO
#undef PN
#undef PS
#undef PF

static int pretrain__parse(pretrain_opts *o, int argc, char **argv)
{
    *o = (pretrain_opts){.vocab = 512, .ctx = 128, .embd = 128, .layers = 4, .heads = 4,
                         .steps = 500, .batch = 16, .seq = 64, .accum = 1, .warmup = -1,
                         .eval_every = -1, .log_every = 10, .seed = 1, .lr = 1e-3,
                         .min_lr = 1e-4, .wd = 0.1, .clip = 1.0, .heldout = 0.1,
                         .schedule = "cosine", .name = "alignd-pretrained"};
    int rc = cli_opts_parse("pretrain", pretrain__opts,
                            sizeof(pretrain__opts) / sizeof(pretrain__opts[0]), o, argc, argv);
    if (rc)
        return rc == 1 ? pretrain__usage() : 2;
    if (!o->corpus || !o->out)
        return pretrain__usage();
    if (o->resume && !o->ckpt) {
        fprintf(stderr, "alignd pretrain: --resume needs --checkpoint FILE\n");
        return 2;
    }
    if (cli_opts_schedule("pretrain", o->schedule, &o->sched))
        return 2;
    if (o->kv_heads == 0)
        o->kv_heads = o->heads;
    if (o->ff == 0) /* llama's 2/3 of 4C, rounded up to a multiple of 8 */
        o->ff = ceil(8.0 * o->embd / 3.0 / 8.0) * 8.0;
    if (o->warmup < 0)
        o->warmup = floor(o->steps / 20);
    if (o->eval_every < 0)
        o->eval_every = fmax(1, floor(o->steps / 10));
    return 0;
}

/* ---- corpus and vocabulary ---------------------------------------------- */

static void pretrain__bpe_progress(void *ctx, size_t learnt, size_t total)
{
    (void)ctx;
    fprintf(stderr, "alignd pretrain: vocabulary: %zu of at most %zu tokens learnt\n", learnt,
            total);
}

/* Learns the vocabulary and tokenizes the corpus into *ids. */
static int pretrain__tokenize(const pretrain_opts *o, const char *text, size_t len,
                              bpe_train_result *vocab, tok **t, int32_t **ids, size_t *n_ids)
{
    static const char *const special[] = {PRETRAIN_EOT};
    bpe_train_options bo;
    bpe_train_options_init(&bo);
    bo.vocab_size = (size_t)o->vocab;
    bo.special = special;
    bo.n_special = 1;
    bo.progress = pretrain__bpe_progress;
    bo.progress_every = bo.vocab_size / 8 + 1;
    tok_err te = {0};
    if (bpe_train_run(vocab, text, len, &bo, &te) ||
        tok_create_bpe(t, (const char *const *)vocab->tokens, vocab->n_tokens,
                       (const char *const *)vocab->merges, vocab->n_merges, vocab->types, NULL,
                       &te)) {
        fprintf(stderr, "alignd pretrain: vocabulary: %s\n", te.msg);
        return -1;
    }
    *ids = malloc((len + 1) * sizeof(int32_t));
    if (!*ids || tok_encode(*t, text, len, TOK_ENC_PARSE_SPECIAL, *ids, len + 1, n_ids, &te)) {
        fprintf(stderr, "alignd pretrain: tokenizing the corpus: %s\n",
                *ids ? te.msg : "out of memory");
        return -1;
    }
    return 0;
}

/* ---- the run's fingerprint (checked on --resume) -------------------------- */

static char *pretrain__fingerprint(const pretrain_opts *o, const char *text, size_t len)
{
    char *s = NULL;
    if (asprintf(&s, "corpus %zu bytes fnv %016llx; vocab %.0f ctx %.0f embd %.0f layers %.0f "
                 "heads %.0f/%.0f ff %.0f tied %d; batch %.0f seq %.0f heldout %g seed %.0f",
                 len, (unsigned long long)fnv1a64(FNV1A64_BASIS, text, len), o->vocab, o->ctx, o->embd,
                 o->layers, o->heads, o->kv_heads, o->ff, !o->untied, o->batch, o->seq,
                 o->heldout, o->seed) < 0)
        return NULL;
    return s;
}

static int pretrain__check_resume(const char *path, const char *fp)
{
    trn_ckpt_info info;
    void *blob = NULL;
    size_t blen = 0;
    eng_err e = {0};
    if (trn_ckpt_peek(path, &info, &blob, &blen, &e)) {
        fprintf(stderr, "alignd pretrain: --resume: %s\n", e.msg);
        return -1;
    }
    int same = blob && strcmp(blob, fp) == 0;
    if (!same)
        fprintf(stderr, "alignd pretrain: --resume: %s was made from another corpus or "
                "settings:\n  checkpoint: %s\n  this run:   %s\n", path,
                blob ? (char *)blob : "(none)", fp);
    else
        fprintf(stderr, "alignd pretrain: resuming from %s at step %lld\n", path,
                (long long)info.step);
    free(blob);
    return same ? 0 : -1;
}

/* ---- output --------------------------------------------------------------- */

static int pretrain__write(const pretrain_opts *o, trn_dec *d, const bpe_train_result *v)
{
    gguf_writer *w = NULL;
    char err[512];
    int32_t eot = (int32_t)v->n_tokens - 1;
    int rc = gguf_writer_new(&w);
    rc = rc ? rc : trn_dec_add_to_gguf(d, w, o->name, err, sizeof err);
    if (rc) {
        fprintf(stderr, "alignd pretrain: %s\n", w ? err : "out of memory");
        gguf_writer_free(w);
        return -1;
    }
    rc = gguf_writer_set_str(w, "tokenizer.ggml.model", "gpt2");
    rc = rc ? rc : gguf_writer_set_str(w, "tokenizer.ggml.pre", "gpt2");
    rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens",
                                           (const char *const *)v->tokens, v->n_tokens);
    rc = rc ? rc : gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n_tokens);
    rc = rc ? rc : gguf_writer_set_arr_str(w, "tokenizer.ggml.merges",
                                           (const char *const *)v->merges, v->n_merges);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)eot);
    rc = rc ? rc : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)eot);
    rc = rc ? rc : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", false);
    if (rc || gguf_writer_write(w, o->out, err, sizeof err)) {
        fprintf(stderr, "alignd pretrain: %s\n", rc ? gguf_writer_error(w) : err);
        gguf_writer_free(w);
        return -1;
    }
    gguf_writer_free(w);
    return 0;
}

static void pretrain__progress(void *ctx, const trn_lm_progress *p)
{
    const double *unigram = ctx;
    int eta = (int)p->eta_s;
    fprintf(stderr, "alignd pretrain: step %lld/%lld | loss %.4f | lr %.2e | grad norm %.3f | "
            "%.0f tok/s | ETA %d:%02d", (long long)p->step, (long long)p->steps, p->loss, p->lr,
            p->grad_norm, p->tok_per_s, eta / 60, eta % 60);
    if (p->has_eval)
        fprintf(stderr, " | held-out %.4f (unigram %.4f)", p->eval_loss, *unigram);
    fputc('\n', stderr);
}

/* ---- the command ---------------------------------------------------------- */

static trn_optim_cfg pretrain__optim(const pretrain_opts *o)
{
    trn_optim_cfg c = trn_optim_cfg_default();
    cli_opts_optim(&c, o->sched, o->lr, o->min_lr, o->warmup, o->steps, o->wd, o->clip);
    c.beta2 = 0.95; /* the usual choice for language-model pretraining */
    return c;
}

int cli_pretrain(int argc, char **argv)
{
    pretrain_opts o;
    int rc = pretrain__parse(&o, argc, argv);
    if (rc)
        return rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    rc = 1;
    size_t len = 0, n_ids = 0;
    char *text = NULL, *fp = NULL, err[1024];
    bpe_train_result vocab = {0};
    tok *t = NULL;
    int32_t *ids = NULL;
    trn_dec *d = NULL;
    trn_lm lm = {0};
    if (!(text = cli_read_file("pretrain", o.corpus, &len)) ||
        pretrain__tokenize(&o, text, len, &vocab, &t, &ids, &n_ids))
        goto out;
    size_t n_eval = (size_t)((double)n_ids * o.heldout);
    trn_lm_data data = {.train = ids, .n_train = n_ids - n_eval, .eval = ids + n_ids - n_eval,
                        .n_eval = n_eval};
    if (!(fp = pretrain__fingerprint(&o, text, len)) ||
        (o.resume && pretrain__check_resume(o.ckpt, fp)))
        goto out;
    trn_dec_shape sh = {.n_vocab = (int)vocab.n_tokens, .n_ctx = (int)o.ctx,
                        .n_embd = (int)o.embd, .n_layer = (int)o.layers, .n_head = (int)o.heads,
                        .n_head_kv = (int)o.kv_heads, .n_ff = (int)o.ff, .tied = !o.untied};
    trn_lm_cfg lc = {.batch = (int)o.batch, .seq_len = (int)o.seq, .accum = (int)o.accum,
                     .steps = (int64_t)o.steps,
                     .stop_after = (int64_t)o.stop_after, .eval_every = (int)o.eval_every,
                     .log_every = (int)o.log_every, .seed = (uint64_t)o.seed ^ 0x5eed,
                     .optim = pretrain__optim(&o)};
    if (trn_dec_new(&d, &sh, (uint64_t)o.seed, err, sizeof err) ||
        trn_lm_init(&lm, d, &lc, err, sizeof err) ||
        (o.resume && trn_lm_load(&lm, o.ckpt, err, sizeof err))) {
        fprintf(stderr, "alignd pretrain: %s\n", err);
        goto out;
    }
    double unigram = trn_lm_unigram_loss(&data, sh.n_vocab), eval_loss = NAN;
    fprintf(stderr, "alignd pretrain: corpus %zu bytes -> %zu tokens (%.2f bytes/token), %zu "
            "held out; vocabulary %zu; model %.2fM parameters (%d layers, %d wide, %d heads, ff "
            "%d); activations %.1f MiB; unigram baseline %.4f nats/token\n", len, n_ids,
            (double)len / (double)(n_ids ? n_ids : 1), n_eval, vocab.n_tokens,
            (double)trn_dec_n_weights(d) / 1e6, sh.n_layer, sh.n_embd, sh.n_head, sh.n_ff,
            (double)trn_dec_act_bytes(d) / (1 << 20), unigram);
    if (trn_lm_run(&lm, &data, pretrain__progress, &unigram, o.ckpt, (int)o.ckpt_every, fp,
                   strlen(fp) + 1, &eval_loss, err, sizeof err)) {
        fprintf(stderr, "alignd pretrain: %s\n", err);
        goto out;
    }
    if (pretrain__write(&o, d, &vocab))
        goto out;
    fprintf(stderr, "alignd pretrain: wrote %s; held-out loss %.4f nats/token vs unigram %.4f\n",
            o.out, eval_loss, unigram);
    if (o.json)
        printf("{\"steps\": %lld, \"eval_loss\": %.6f, \"unigram_loss\": %.6f, \"train_loss\": "
               "%.6f, \"params\": %zu, \"vocab\": %zu, \"tokens\": %zu}\n",
               (long long)lm.opt.step, eval_loss, unigram, lm.last_loss, trn_dec_n_weights(d),
               vocab.n_tokens, n_ids);
    rc = 0;
out:
    trn_lm_free(&lm);
    trn_dec_free(d);
    tok_free(t);
    bpe_train_free(&vocab);
    free(ids);
    free(fp);
    free(text);
    return rc;
}
