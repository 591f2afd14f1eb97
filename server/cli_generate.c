/* cli_generate.c - `alignd generate`: a prompt's continuation on stdout, as it
 * is produced, and a timing line on stderr. One sequence, no server. */
#include <cblas.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model.h"
#include "sampler.h"
#include "tok_load.h"
#include "tok_utf8.h"

static int cli__generate_usage(void) {
    fprintf(stderr,
            "usage: alignd generate -m MODEL -p PROMPT [-n N] [options]\n"
            "  -m MODEL            a GGUF file or a Hugging Face model folder\n"
            "  -p PROMPT           the text to continue\n"
            "  -n N                tokens to generate (default 32)\n"
            "  --temp X            temperature, 0 = greedy (default 0)\n"
            "  --top-k N --top-p X --min-p X --repeat-penalty X --presence-penalty X\n"
            "  --frequency-penalty X --seed N\n"
            "  --ignore-eos        keep going after the end-of-sequence token\n"
            "  --no-special        do not add BOS as the model would\n"
            "  -t N                threads for the matrix products (default: OpenBLAS's)\n");
    return 2;
}

static double cli__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Parses a number option's value; returns 0 or prints why and returns -1. */
static int cli__num(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "alignd generate: %s must be a number in [%g, %g], not '%s'\n", opt, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

int cli_generate(int argc, char **argv) {
    const char *path = NULL, *prompt = NULL;
    double n_gen = 32, threads = 0, v;
    bool special = true, ignore_eos = false;
    samp_params sp;
    samp_params_default(&sp);
    sp.temperature = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--ignore-eos")) { ignore_eos = true; continue; }
        if (!strcmp(a, "--no-special")) { special = false; continue; }
        if (!val) return cli__generate_usage();
        i++;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) path = val;
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) prompt = val;
        else if (!strcmp(a, "-n")) bad = cli__num(a, val, 0, 1e6, &n_gen);
        else if (!strcmp(a, "-t")) bad = cli__num(a, val, 1, 1024, &threads);
        else if (!strcmp(a, "--temp")) bad = cli__num(a, val, 0, 2, &v), sp.temperature = (float)v;
        else if (!strcmp(a, "--top-k")) bad = cli__num(a, val, 0, 1e9, &v), sp.top_k = (int32_t)v;
        else if (!strcmp(a, "--top-p")) bad = cli__num(a, val, 0, 1, &v), sp.top_p = (float)v;
        else if (!strcmp(a, "--min-p")) bad = cli__num(a, val, 0, 1, &v), sp.min_p = (float)v;
        else if (!strcmp(a, "--repeat-penalty")) bad = cli__num(a, val, 0, 10, &v), sp.repetition_penalty = (float)v;
        else if (!strcmp(a, "--presence-penalty")) bad = cli__num(a, val, -2, 2, &v), sp.presence_penalty = (float)v;
        else if (!strcmp(a, "--frequency-penalty")) bad = cli__num(a, val, -2, 2, &v), sp.frequency_penalty = (float)v;
        else if (!strcmp(a, "--seed")) bad = cli__num(a, val, 0, 1.8e19, &v), sp.seed = (uint64_t)v;
        else {
            fprintf(stderr, "alignd generate: unknown option %s\n", a);
            return cli__generate_usage();
        }
        if (bad) return 2;
    }
    if (!path || !prompt) return cli__generate_usage();
    if (threads > 0) openblas_set_num_threads((int)threads);

    int rc = 1;
    char err[1024];
    model *m = NULL;
    tok *t = NULL;
    samp *s = NULL;
    kv_cache *kv = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    tok_err terr = {0};
    double t0 = cli__now();
    if (model_load(&m, path, err, sizeof err) != 0) {
        fprintf(stderr, "alignd generate: %s\n", err);
        goto out;
    }
    if (tok_load(&t, path, &terr) != 0) {
        fprintf(stderr, "alignd generate: %s\n", terr.msg);
        goto out;
    }
    const model_hparams *hp = model_hp(m);
    if (samp_validate(&sp, hp->n_vocab, err, sizeof err) != 0) {
        fprintf(stderr, "alignd generate: %s\n", err);
        rc = 2;
        goto out;
    }
    double t_load = cli__now() - t0;
    size_t len = strlen(prompt), n_prompt = 0, cap = len + 8;
    int n_ctx = model_n_ctx(m);
    ids = malloc(((size_t)n_ctx + cap) * sizeof *ids);
    logits = malloc((size_t)hp->n_vocab * sizeof *logits);
    s = samp_create(&sp, hp->n_vocab);
    if (!ids || !logits || !s) {
        fprintf(stderr, "alignd generate: out of memory\n");
        goto out;
    }
    if (tok_encode(t, prompt, len, special ? TOK_ENC_ADD_SPECIAL : 0, ids, cap, &n_prompt, &terr) != 0) {
        fprintf(stderr, "alignd generate: cannot tokenize the prompt: %s\n", terr.msg);
        goto out;
    }
    if (n_prompt == 0 || (long)n_prompt + (long)n_gen > n_ctx) {
        fprintf(stderr, "alignd generate: %zu prompt tokens + %.0f to generate must be in [1, %d] "
                        "(the context)\n", n_prompt, n_gen, n_ctx);
        rc = 2;
        goto out;
    }
    if (model_kv_create(m, 1, n_ctx, 16, &kv, err, sizeof err) != 0 ||
        kv_seq_reserve(kv, 0, (int)n_prompt + (int)n_gen) != 0) {
        fprintf(stderr, "alignd generate: %s\n", err);
        goto out;
    }
    for (size_t i = 0; i < n_prompt; i++) samp_accept(s, ids[i]);

    int32_t *pos = malloc(n_prompt * sizeof *pos), *seq = calloc(n_prompt, sizeof *seq);
    if (!pos || !seq) {
        free(pos), free(seq);
        fprintf(stderr, "alignd generate: out of memory\n");
        goto out;
    }
    for (size_t i = 0; i < n_prompt; i++) pos[i] = (int32_t)i;
    model_batch b = {.n_tokens = (int)n_prompt, .token = ids, .pos = pos, .seq_id = seq};
    double t1 = cli__now();
    int frc = model_forward(m, kv, &b, logits, err, sizeof err);
    free(pos), free(seq);
    if (frc != 0) {
        fprintf(stderr, "alignd generate: %s\n", err);
        goto out;
    }
    double t_prompt = cli__now() - t1, t2 = cli__now();

    tok_stream st;
    tok_stream_init(&st);
    char piece[256], text[TOK_STREAM_OUT_MAX(256)];
    int n_done = 0;
    for (; n_done < (int)n_gen; n_done++) {
        int32_t next;
        if (samp_sample(s, logits, &next) != 0) {
            fprintf(stderr, "\nalignd generate: sampling failed (every token banned)\n");
            goto out;
        }
        if (!ignore_eos && next == hp->eos_id) break;
        samp_accept(s, next);
        size_t plen = 0;
        if (tok_decode_piece(t, next, 0, piece, sizeof piece, &plen, &terr) == 0) {
            long n = tok_stream_feed(&st, piece, plen, text, sizeof text);
            if (n > 0) fwrite(text, 1, (size_t)n, stdout);
            fflush(stdout);
        }
        if (n_done + 1 == (int)n_gen) { n_done++; break; } /* no forward for a token never used */
        int32_t p = (int32_t)(n_prompt + (size_t)n_done), z = 0;
        model_batch one = {.n_tokens = 1, .token = &next, .pos = &p, .seq_id = &z};
        if (model_forward(m, kv, &one, logits, err, sizeof err) != 0) {
            fprintf(stderr, "\nalignd generate: %s\n", err);
            goto out;
        }
    }
    long n = tok_stream_flush(&st, text, sizeof text);
    if (n > 0) fwrite(text, 1, (size_t)n, stdout);
    printf("\n");
    double t_gen = cli__now() - t2;
    fprintf(stderr,
            "alignd generate: load %.0f ms; prompt %zu tokens in %.1f ms (%.1f tokens/s); "
            "generated %d tokens in %.1f ms (%.1f tokens/s)\n",
            t_load * 1e3, n_prompt, t_prompt * 1e3, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9),
            n_done, t_gen * 1e3, n_done / (t_gen > 0 ? t_gen : 1e-9));
    rc = 0;
out:
    kv_free(kv);
    samp_free(s);
    free(logits);
    free(ids);
    tok_free(t);
    model_free(m);
    return rc;
}
