/* cli_perplexity.c - `alignd perplexity`: how well a causal LM predicts a
 * text file (llama.cpp's llama-perplexity, scored as Hugging Face's strided
 * perplexity).
 *
 * The whole file is tokenized once (special-token text such as
 * "<|endoftext|>" becomes its token; BOS first when the tokenizer adds one,
 * unless --no-bos). Windows of --ctx tokens start every --stride tokens
 * (window k covers [k*stride, min(k*stride + ctx, N)), the last one ends at
 * N); each window runs as a fresh sequence at positions 0.. and scores, in
 * double, -log softmax(logits)[next token] of the tokens no earlier window
 * scored and that have at least one token of context in the window. So each
 * token is scored once, with as much left context as its window gives; with
 * --stride equal to --ctx the first token of every later window goes
 * unscored (no context), as in Hugging Face's recipe. A window runs in
 * chunks of --batch tokens through one KV cache, so logits need only
 * [batch, V] floats.
 *
 * Output: progress lines on stderr, a summary line (tokens scored, mean NLL,
 * perplexity, bits per byte of the file, seconds) on stderr, and with
 * --json the same figures as one JSON object on stdout. --dump FILE writes one JSON line per scored
 * token: {"pos": index in the token sequence, "id", "logprob"}.
 * Exit status: 0, 1 runtime failure, 2 bad usage. Main thread. */
#include <cblas.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cli_file.h"
#include "cli_opts.h"
#include "model.h"
#include "tok_load.h"

typedef struct perplexity_opts {
    const char *model, *file, *dump;
    double ctx, stride, batch, threads; /* 0: the default */
    bool no_bos, json;
} perplexity_opts;

/* One run: what was loaded, the scratch of a chunk and the running sums. */
typedef struct perplexity_run {
    const perplexity_opts *o;
    model *m;
    tok *t;
    kv_cache *kv;
    char *text;          /* the file, n_bytes bytes (+ NUL) */
    size_t n_bytes;
    int32_t *ids;        /* [n_ids] the file's tokens */
    size_t n_ids;
    int ctx, stride, n_batch, V;
    float *logits;       /* [n_batch, V] */
    int32_t *pos, *seq;  /* [n_batch] */
    int8_t *want;        /* [n_batch] */
    FILE *dump;          /* --dump, or NULL */
    double nll;          /* sum of -log p over scored tokens, nats */
    size_t scored;
    double t0;           /* when scoring began */
    char err[1024];
} perplexity_run;

static int perplexity__usage(void)
{
    fprintf(stderr,
            "usage: alignd perplexity -m MODEL -f FILE [options]\n"
            "  -m, --model MODEL   a GGUF file or a Hugging Face model folder (a decoder)\n"
            "  -f, --file FILE     the text to score\n"
            "  --ctx N             tokens per window (default: the model's context)\n"
            "  --stride N          tokens between window starts (default ctx/2); each token\n"
            "                      is scored once, with the left context its window gives\n"
            "  --batch N           tokens per forward pass (default 512)\n"
            "  --no-bos            do not start with BOS even where the tokenizer adds one\n"
            "  --json              print the result as one JSON object on stdout\n"
            "  --dump FILE         write each scored token as a JSON line {pos, id, logprob}\n"
            "  -t N                threads for the matrix products (default: OpenBLAS's)\n");
    return 2;
}

#define PO(f) offsetof(perplexity_opts, f)
#define PN(name, f, lo, hi) {name, CLI_OPT_NUM, PO(f), lo, hi}
#define PS(name, f) {name, CLI_OPT_STR, PO(f), 0, 0}
#define PF(name, f) {name, CLI_OPT_FLAG, PO(f), 0, 0}
static const cli_opt perplexity__opts[] = {
    PS("-m", model), PS("--model", model), PS("-f", file), PS("--file", file),
    PS("--dump", dump), PF("--no-bos", no_bos), PF("--json", json),
    PN("--ctx", ctx, 2, 1e7), PN("--stride", stride, 1, 1e7), PN("--batch", batch, 1, 1e6),
    PN("-t", threads, 1, 1024),
};
#undef PO
#undef PN
#undef PS
#undef PF

static double perplexity__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int perplexity__parse(perplexity_opts *o, int argc, char **argv)
{
    *o = (perplexity_opts){0};
    int rc = cli_opts_parse("perplexity", perplexity__opts,
                            sizeof(perplexity__opts) / sizeof(perplexity__opts[0]), o, argc, argv);
    if (rc)
        return rc == 1 ? perplexity__usage() : 2;
    if (!o->model || !o->file)
        return perplexity__usage();
    if (o->ctx != floor(o->ctx) || o->stride != floor(o->stride) || o->batch != floor(o->batch)) {
        fprintf(stderr, "alignd perplexity: --ctx, --stride and --batch take whole numbers\n");
        return 2;
    }
    if (o->ctx && o->stride > o->ctx) {
        fprintf(stderr, "alignd perplexity: --stride %.0f exceeds --ctx %.0f\n", o->stride, o->ctx);
        return 2;
    }
    return 0;
}

/* ---- input ---------------------------------------------------------------- */

/* Reads the whole file into r->text (NUL-terminated). 0, or -1 after saying
 * why (naming the file). */
static int perplexity__read(perplexity_run *r, const char *path)
{
    if (!(r->text = cli_read_file("perplexity", path, &r->n_bytes)))
        return -1;
    if (r->n_bytes == 0) {
        fprintf(stderr, "alignd perplexity: %s: the file is empty\n", path);
        return -1;
    }
    return 0;
}

/* Tokenizes r->text into r->ids: BOS first where the tokenizer adds one
 * (unless --no-bos), special-token text recognised, no EOS. 0 or -1. */
static int perplexity__tokenize(perplexity_run *r)
{
    bool bos = !r->o->no_bos && tok_adds_bos(r->t);
    size_t cap = r->n_bytes + 8, n = 0;
    tok_err terr = {0};
    int rc = TOK_ENOMEM;
    for (int attempt = 0; attempt < 2; attempt++) {
        free(r->ids);
        r->ids = malloc((cap + 1) * sizeof *r->ids);
        if (!r->ids)
            break;
        rc = tok_encode(r->t, r->text, r->n_bytes, TOK_ENC_PARSE_SPECIAL, r->ids + bos, cap, &n,
                        &terr);
        if (rc != TOK_ESPACE)
            break;
        cap = n; /* byte fallback can need more ids than bytes */
    }
    if (rc != 0) {
        fprintf(stderr, "alignd perplexity: cannot tokenize %s: %s\n", r->o->file,
                terr.msg[0] ? terr.msg : "out of memory");
        return -1;
    }
    if (bos)
        r->ids[0] = tok_bos(r->t);
    r->n_ids = n + bos;
    if (r->n_ids < 2) {
        fprintf(stderr, "alignd perplexity: %s: %zu token(s); at least 2 are needed to score one\n",
                r->o->file, r->n_ids);
        return -1;
    }
    return 0;
}

/* ---- model ---------------------------------------------------------------- */

/* Loads the model (a decoder) and its tokenizer and settles ctx, stride and
 * batch. 0, -1 runtime failure, -2 bad usage (said why). */
static int perplexity__load(perplexity_run *r)
{
    const perplexity_opts *o = r->o;
    model_opts mo = {.n_batch = (int)o->batch, .n_ctx = (int)o->ctx};
    tok_err terr = {0};
    if (model_load_opts(&r->m, o->model, &mo, r->err, sizeof r->err) != 0) {
        fprintf(stderr, "alignd perplexity: %s\n", r->err);
        return -1;
    }
    if (model_get_kind(r->m) != MODEL_KIND_DECODER) {
        fprintf(stderr, "alignd perplexity: %s is an encoder (%s); perplexity needs a causal "
                        "language model (llama, gpt2)\n",
                o->model, model_arch_name(model_arch(r->m)));
        return -1;
    }
    if (tok_load(&r->t, o->model, &terr) != 0) {
        fprintf(stderr, "alignd perplexity: %s\n", terr.msg);
        return -1;
    }
    const model_hparams *hp = model_hp(r->m);
    r->ctx = model_n_ctx(r->m);
    if (o->ctx && (int)o->ctx > r->ctx) { /* gpt2: learned positions end at n_ctx_train */
        fprintf(stderr, "alignd perplexity: --ctx %.0f exceeds the model's %d positions\n", o->ctx,
                r->ctx);
        return -2;
    }
    if (r->ctx > hp->n_ctx_train)
        fprintf(stderr, "alignd perplexity: warning: --ctx %d exceeds the model's training "
                        "context %d\n", r->ctx, hp->n_ctx_train);
    if (o->stride > r->ctx) {
        fprintf(stderr, "alignd perplexity: --stride %.0f exceeds the context %d\n", o->stride,
                r->ctx);
        return -2;
    }
    r->stride = o->stride ? (int)o->stride : (r->ctx / 2 > 0 ? r->ctx / 2 : 1);
    r->n_batch = model_n_batch(r->m);
    r->V = hp->n_vocab;
    return 0;
}

/* The KV cache (one sequence; room for a window, which never exceeds the
 * file's tokens) and a chunk's scratch. */
static int perplexity__alloc(perplexity_run *r)
{
    int room = (size_t)r->ctx < r->n_ids ? r->ctx : (int)r->n_ids;
    if (model_kv_create(r->m, 1, room, 0, &r->kv, r->err, sizeof r->err) != 0) {
        fprintf(stderr, "alignd perplexity: %s\n", r->err);
        return -1;
    }
    size_t B = (size_t)r->n_batch;
    r->logits = B <= SIZE_MAX / sizeof(float) / (size_t)r->V
                    ? malloc(B * (size_t)r->V * sizeof *r->logits) : NULL;
    r->pos = malloc(B * sizeof *r->pos);
    r->seq = calloc(B, sizeof *r->seq);
    r->want = malloc(B * sizeof *r->want);
    if (!r->logits || !r->pos || !r->seq || !r->want) {
        fprintf(stderr, "alignd perplexity: out of memory for a batch of %d x %d logits\n",
                r->n_batch, r->V);
        return -1;
    }
    if (r->o->dump && !(r->dump = fopen(r->o->dump, "w"))) {
        fprintf(stderr, "alignd perplexity: %s: %s\n", r->o->dump, strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- scoring -------------------------------------------------------------- */

/* log softmax(row)[y] in double. row[V]. */
static double perplexity__logprob(const float *row, int V, int32_t y)
{
    double mx = row[0], sum = 0;
    for (int v = 1; v < V; v++)
        mx = row[v] > mx ? row[v] : mx;
    for (int v = 0; v < V; v++)
        sum += exp((double)row[v] - mx);
    return (double)row[y] - mx - log(sum);
}

/* Window [begin, end) scores tokens [first, end). Runs the window's tokens
 * [c0, c1) (positions c0 - begin ..) and scores the next token of each that
 * has one to score. 0 or -1. */
static int perplexity__chunk(perplexity_run *r, size_t begin, size_t first, size_t end, size_t c0,
                             size_t c1)
{
    int n = (int)(c1 - c0);
    for (int i = 0; i < n; i++) {
        size_t j = c0 + (size_t)i; /* token j predicts token j + 1 */
        r->pos[i] = (int32_t)(j - begin);
        r->want[i] = j + 1 >= first && j + 1 < end;
    }
    model_batch b = {.n_tokens = n, .token = r->ids + c0, .pos = r->pos, .seq_id = r->seq,
                     .logits = r->want};
    if (model_forward(r->m, r->kv, &b, r->logits, r->err, sizeof r->err) != 0) {
        fprintf(stderr, "alignd perplexity: %s\n", r->err);
        return -1;
    }
    const float *row = r->logits;
    for (int i = 0; i < n; i++) {
        if (!r->want[i])
            continue;
        size_t j = c0 + (size_t)i + 1;
        double lp = perplexity__logprob(row, r->V, r->ids[j]);
        row += r->V;
        r->nll -= lp;
        r->scored++;
        if (r->dump)
            fprintf(r->dump, "{\"pos\": %zu, \"id\": %d, \"logprob\": %.9g}\n", j, r->ids[j], lp);
    }
    return 0;
}

/* One window [begin, end) as a fresh sequence, scoring [first, end). */
static int perplexity__window(perplexity_run *r, size_t begin, size_t first, size_t end)
{
    kv_seq_clear(r->kv, 0);
    if (kv_seq_reserve(r->kv, 0, (int)(end - begin)) != 0) {
        fprintf(stderr, "alignd perplexity: the KV cache cannot hold %zu positions\n", end - begin);
        return -1;
    }
    for (size_t c0 = begin; c0 + 1 < end; c0 += (size_t)r->n_batch) {
        size_t c1 = c0 + (size_t)r->n_batch < end - 1 ? c0 + (size_t)r->n_batch : end - 1;
        if (perplexity__chunk(r, begin, first, end, c0, c1) != 0)
            return -1;
    }
    return 0;
}

/* Windows the run takes (the loop of perplexity__score without work). */
static size_t perplexity__n_windows(const perplexity_run *r)
{
    size_t n = 0;
    for (size_t begin = 0;; begin += (size_t)r->stride) {
        n++;
        if (begin + (size_t)r->ctx >= r->n_ids)
            return n;
    }
}

static void perplexity__progress(const perplexity_run *r, size_t done, size_t total)
{
    double dt = perplexity__now() - r->t0;
    fprintf(stderr, "alignd perplexity: window %zu/%zu | %zu tokens | ppl %.4f | %.1f tokens/s\n",
            done, total, r->scored, exp(r->nll / (double)(r->scored ? r->scored : 1)),
            (double)r->scored / (dt > 0 ? dt : 1e-9));
}

/* Every window, in order (Hugging Face's strided loop). 0 or -1. */
static int perplexity__score(perplexity_run *r)
{
    size_t total = perplexity__n_windows(r), every = total / 20 > 0 ? total / 20 : 1;
    size_t prev_end = 0, done = 0;
    r->t0 = perplexity__now();
    for (size_t begin = 0;; begin += (size_t)r->stride) {
        size_t end = begin + (size_t)r->ctx < r->n_ids ? begin + (size_t)r->ctx : r->n_ids;
        size_t first = prev_end > begin + 1 ? prev_end : begin + 1;
        if (first < end && perplexity__window(r, begin, first, end) != 0)
            return -1;
        prev_end = end;
        if (++done == 1 || done % every == 0 || end == r->n_ids)
            perplexity__progress(r, done, total);
        if (end == r->n_ids)
            return 0;
    }
}

/* The summary: a line on stderr, and the JSON object on stdout. */
static int perplexity__report(const perplexity_run *r, double seconds)
{
    double mean = r->nll / (double)r->scored, ppl = exp(mean);
    double bpb = r->nll / log(2.0) / (double)r->n_bytes;
    fprintf(stderr, "alignd perplexity: %zu tokens scored (%zu in the file, %zu bytes); mean NLL "
                    "%.6f nats/token; perplexity %.4f; %.6f bits/byte; %.2f s\n",
            r->scored, r->n_ids, r->n_bytes, mean, ppl, bpb, seconds);
    if (!r->o->json)
        return 0;
    json_t *j = json_pack("{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:i, s:i, s:f}", "model",
                          r->o->model, "file", r->o->file, "tokens", (json_int_t)r->scored,
                          "bytes", (json_int_t)r->n_bytes, "nll", r->nll, "ppl", ppl,
                          "bits_per_byte", bpb, "ctx", r->ctx, "stride", r->stride, "seconds",
                          seconds);
    char *s = j ? json_dumps(j, JSON_REAL_PRECISION(17)) : NULL;
    json_decref(j);
    if (!s) {
        fprintf(stderr, "alignd perplexity: out of memory (or a path that is not UTF-8)\n");
        return -1;
    }
    printf("%s\n", s);
    free(s);
    return 0;
}

static void perplexity__free(perplexity_run *r)
{
    if (r->dump)
        fclose(r->dump);
    free(r->want);
    free(r->seq);
    free(r->pos);
    free(r->logits);
    kv_free(r->kv);
    free(r->ids);
    free(r->text);
    tok_free(r->t);
    model_free(r->m);
}

int cli_perplexity(int argc, char **argv)
{
    perplexity_opts o;
    int rc = perplexity__parse(&o, argc, argv);
    if (rc)
        return rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    perplexity_run r = {.o = &o};
    double t0 = perplexity__now();
    rc = 1;
    if (perplexity__read(&r, o.file) != 0)
        goto out;
    int lrc = perplexity__load(&r);
    if (lrc != 0) {
        rc = lrc == -2 ? 2 : 1;
        goto out;
    }
    if (perplexity__tokenize(&r) != 0 || perplexity__alloc(&r) != 0)
        goto out;
    fprintf(stderr, "alignd perplexity: %s: %zu bytes -> %zu tokens; ctx %d, stride %d, batch %d\n",
            o.file, r.n_bytes, r.n_ids, r.ctx, r.stride, r.n_batch);
    if (perplexity__score(&r) != 0)
        goto out;
    if (r.dump && fflush(r.dump) != 0) {
        fprintf(stderr, "alignd perplexity: %s: %s\n", o.dump, strerror(errno));
        goto out;
    }
    if (perplexity__report(&r, perplexity__now() - t0) == 0)
        rc = 0;
out:
    perplexity__free(&r);
    return rc;
}
