/* bench_embed.c - embedding throughput of model_encode (+ mean pooling and
 * L2 normalization), against the OpenBLAS SGEMM peak measured in the same
 * run.
 *
 *   bench_embed [-m MODEL] [-b BATCH] [-n TOKENS] [-r REPS] [-t THREADS]
 *   bench_embed --gen OUT.gguf      write the random BERT-base GGUF
 *
 * Two rounds of (sgemm, b1, bB) run interleaved so that all see the same
 * machine; each figure is the best over both rounds.
 * Without -m a random-weight BERT-base-shaped GGUF (vocab 30522, 12 layers,
 * 768 wide, 12 heads, FF 3072, 512 positions; ~110 M parameters; a
 * constant plus uniform noise from a fixed-seed rng) is written to a
 * temporary file first (engine/gguf_writer.h). Prints, best of
 * REPS runs each:
 *   sgemm   a 2048 x 2048 x 2048 cblas_sgemm             GFLOP/s (the peak)
 *   b1      one input of TOKENS tokens per model_encode   embeddings/s
 *   bB      BATCH inputs of TOKENS tokens in one call     embeddings/s
 * with the achieved GFLOP/s of each encode (projections 8C^2 + 4C FF and
 * attention 4 L C multiply-adds x 2 per token and layer) and its share of
 * the SGEMM peak. -t sets OpenBLAS's threads and the matmul pool's size.
 * Figures, not pass/fail.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gguf_writer.h"
#include "model.h"
#include "ops.h"
#include "pooling.h"
#include "rng.h"
#include "threadpool.h"

enum { BE_V = 30522, BE_L = 12, BE_C = 768, BE_NH = 12, BE_FF = 3072, BE_P = 512 };

static double be_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the random BERT-base GGUF (engine/gguf_writer.h) ------------------ */

#define BE_NT (5 + BE_L * 16)

/* The tensors being generated: the writer borrows each buffer until the
 * write, so they are all kept here (~440 MB). */
typedef struct be_gen {
    gguf_writer *w;
    rng r;           /* fixed seed: every run writes the same model */
    float *buf[BE_NT];
    int nt;
    int oom;         /* a buffer could not be allocated */
} be_gen;

/* Adds F32 tensor [rows, cols] ([cols] when rows is 0), every element
 * value + noise * U(-1, 1). Writer errors stick in the writer (its write
 * reports them), allocation failures in g->oom. */
__attribute__((format(printf, 6, 7)))
static void be_tensor(be_gen *g, int64_t rows, int64_t cols, float value, float noise,
                      const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    size_t n = (size_t)(rows ? rows : 1) * (size_t)cols;
    float *x = g->nt < BE_NT ? malloc(n * sizeof *x) : NULL;
    if (!x) {
        g->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = value + (noise != 0.0f ? noise * (float)(2.0 * rng_uniform(&g->r) - 1.0) : 0.0f);
    g->buf[g->nt++] = x;
    int64_t shape[2] = {rows, cols};
    gguf_writer_add_tensor(g->w, name, rows ? 2 : 1, rows ? shape : shape + 1, GGUF_WRITER_F32,
                           x);
}

/* Metadata; set errors stick in the writer and fail its write. */
static void be_meta(gguf_writer *w)
{
    gguf_writer_set_str(w, "general.architecture", "bert");
    gguf_writer_set_str(w, "general.name", "bench random bert-base");
    gguf_writer_set_u32(w, "bert.block_count", BE_L);
    gguf_writer_set_u32(w, "bert.context_length", BE_P);
    gguf_writer_set_u32(w, "bert.embedding_length", BE_C);
    gguf_writer_set_u32(w, "bert.feed_forward_length", BE_FF);
    gguf_writer_set_u32(w, "bert.attention.head_count", BE_NH);
    gguf_writer_set_f32(w, "bert.attention.layer_norm_epsilon", 1e-12f);
    gguf_writer_set_bool(w, "bert.attention.causal", false);
    gguf_writer_set_u32(w, "bert.pooling_type", 1);
}

/* Tensor names as llama.cpp's converter writes them; norms 1 + noise,
 * biases and matrices small noise. Returns 0, or -1 with a message on
 * stderr. */
static int be_gen_write(const char *path)
{
    const int C = BE_C, FF = BE_FF;
    const float w = 0.04f, b = 0.02f;
    be_gen g = {0};
    rng_seed(&g.r, 42);
    if (gguf_writer_new(&g.w) != 0) {
        fprintf(stderr, "bench_embed: out of memory\n");
        return -1;
    }
    be_meta(g.w);
    be_tensor(&g, BE_V, C, 0, 0.1f, "token_embd.weight");
    be_tensor(&g, BE_P, C, 0, 0.1f, "position_embd.weight");
    be_tensor(&g, 2, C, 0, 0.1f, "token_types.weight");
    be_tensor(&g, 0, C, 1, 0.1f, "token_embd_norm.weight");
    be_tensor(&g, 0, C, 0, b, "token_embd_norm.bias");
    for (int l = 0; l < BE_L; l++) {
        static const char *const qkv[3] = {"attn_q", "attn_k", "attn_v"};
        for (int i = 0; i < 3; i++) {
            be_tensor(&g, C, C, 0, w, "blk.%d.%s.weight", l, qkv[i]);
            be_tensor(&g, 0, C, 0, b, "blk.%d.%s.bias", l, qkv[i]);
        }
        be_tensor(&g, C, C, 0, w, "blk.%d.attn_output.weight", l);
        be_tensor(&g, 0, C, 0, b, "blk.%d.attn_output.bias", l);
        be_tensor(&g, 0, C, 1, 0.1f, "blk.%d.attn_output_norm.weight", l);
        be_tensor(&g, 0, C, 0, b, "blk.%d.attn_output_norm.bias", l);
        be_tensor(&g, FF, C, 0, w, "blk.%d.ffn_up.weight", l);
        be_tensor(&g, 0, FF, 0, b, "blk.%d.ffn_up.bias", l);
        be_tensor(&g, C, FF, 0, w, "blk.%d.ffn_down.weight", l);
        be_tensor(&g, 0, C, 0, b, "blk.%d.ffn_down.bias", l);
        be_tensor(&g, 0, C, 1, 0.1f, "blk.%d.layer_output_norm.weight", l);
        be_tensor(&g, 0, C, 0, b, "blk.%d.layer_output_norm.bias", l);
    }
    char err[512] = "bench_embed: out of memory for the random tensors";
    int rc = g.oom ? -ENOMEM : gguf_writer_write(g.w, path, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    gguf_writer_free(g.w);
    for (int i = 0; i < g.nt; i++)
        free(g.buf[i]);
    return rc == 0 ? 0 : -1;
}

/* ---- measurements -------------------------------------------------------- */

/* Best GFLOP/s of reps square sgemms of side n (after one warm-up). */
static double be_sgemm_peak(int n, int reps)
{
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof(float)), *b = malloc(nn * sizeof(float)),
          *c = malloc(nn * sizeof(float));
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0.0;
    }
    for (size_t i = 0; i < nn; i++) {
        a[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
        b[i] = (float)((i * 104729u) % 1000u) * 1e-3f - 0.5f;
    }
    double best = 0.0;
    for (int r = 0; r < reps + 1; r++) { /* the first run warms up */
        double t0 = be_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f,
                    c, n);
        double t = be_now() - t0;
        if (r > 0)
            best = fmax(best, 2.0 * n * (double)nn / t * 1e-9);
    }
    free(a);
    free(b);
    free(c);
    return best;
}

/* FLOPs (2 per multiply-add) of one encode of n_seq inputs of len tokens:
 * per token and layer 4 C^2 (q, k, v, output) + 2 C FF (MLP) + 2 len C
 * (scores and weighted values) multiply-adds. */
static double be_flops(const model_hparams *hp, int n_seq, int len)
{
    double C = hp->n_embd, FF = hp->n_ff;
    double per_tok = 8.0 * C * C + 4.0 * C * FF + 4.0 * (double)len * C;
    return hp->n_layer * per_tok * n_seq * (double)len;
}

typedef struct be_result {
    double emb_per_s;   /* best so far (0 before the first run) */
    double gflops;
} be_result;

/* n_seq inputs of len tokens ([CLS]-like 101, pseudo-random ids, 102),
 * one model_encode + mean pooling + normalization per rep; keeps the best
 * rep in *res (improving on what it holds). */
static int be_run(model *m, int n_seq, int len, int reps, be_result *res)
{
    const model_hparams *hp = model_hp(m);
    int T = n_seq * len, C = hp->n_embd;
    int32_t *tok = malloc((size_t)T * sizeof(int32_t)), *sid = malloc((size_t)T * sizeof(int32_t));
    float *h = malloc((size_t)T * C * sizeof(float)), *e = malloc((size_t)n_seq * C * sizeof(float));
    if (!tok || !sid || !h || !e) {
        fprintf(stderr, "bench_embed: out of memory\n");
        free(tok);
        free(sid);
        free(h);
        free(e);
        return -1;
    }
    for (int s = 0; s < n_seq; s++)
        for (int i = 0; i < len; i++) {
            int t = s * len + i;
            tok[t] = i == 0 ? 101 % hp->n_vocab
                   : i == len - 1 ? 102 % hp->n_vocab
                   : (int32_t)((1000u + (unsigned)t * 7919u) % (unsigned)hp->n_vocab);
            sid[t] = s;
        }
    model_batch b = {.n_tokens = T, .token = tok, .seq_id = sid};
    char err[512];
    double best = 1e30;
    int rc = 0;
    for (int r = 0; r < reps + 1 && rc == 0; r++) { /* the first run warms up */
        double t0 = be_now();
        rc = model_encode(m, &b, h, err, sizeof err);
        for (int s = 0; s < n_seq && rc == 0; s++) {
            pool_apply(POOL_MEAN, h + (size_t)s * len * C, len, C, e + (size_t)s * C);
            pool_l2_normalize(e + (size_t)s * C, C);
        }
        double t = be_now() - t0;
        if (r > 0)
            best = fmin(best, t);
    }
    if (rc != 0)
        fprintf(stderr, "bench_embed: encode failed: %s\n", err);
    if (n_seq / best > res->emb_per_s) {
        res->emb_per_s = n_seq / best;
        res->gflops = be_flops(hp, n_seq, len) / best * 1e-9;
    }
    free(tok);
    free(sid);
    free(h);
    free(e);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *gen = NULL;
    int batch = 32, len = 128, reps = 3, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) {
            fprintf(stderr, "bench_embed: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "--gen")) gen = v;
        else if (!strcmp(a, "-b")) batch = atoi(v);
        else if (!strcmp(a, "-n")) len = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else {
            fprintf(stderr, "usage: bench_embed [-m MODEL] [-b BATCH] [-n TOKENS] [-r REPS] "
                            "[-t THREADS] | --gen OUT.gguf\n");
            return 2;
        }
        i++;
    }
    if (batch < 1 || len < 2 || reps < 1 || threads < 0) {
        fprintf(stderr, "bench_embed: -b, -r must be positive, -n at least 2\n");
        return 2;
    }
    if (gen)
        return be_gen_write(gen) == 0 ? 0 : 1;
    tp_pool *pool = NULL;
    if (threads > 0) {
        openblas_set_num_threads(threads);
        if (tp_create(&pool, threads) != 0) {
            fprintf(stderr, "bench_embed: cannot start %d threads\n", threads);
            return 1;
        }
        ops_matmul_set_pool(pool);
    }
    char tmp[] = "/tmp/bench_bert_XXXXXX";
    int made = 0;
    if (!path) {
        int fd = mkstemp(tmp);
        if (fd < 0) {
            perror("mkstemp");
            return 1;
        }
        close(fd);
        fprintf(stderr, "bench: writing a random BERT-base GGUF (768 x 12, FF 3072, vocab "
                        "30522) to %s\n", tmp);
        if (be_gen_write(tmp) != 0)
            return 1;
        path = tmp;
        made = 1;
    }
    char err[512];
    model *m = NULL;
    model_opts o = {.n_batch = batch * len};
    double t0 = be_now();
    int rc = model_load_opts(&m, path, &o, err, sizeof err);
    double t1 = be_now();
    if (made)
        unlink(tmp);
    if (rc != 0) {
        fprintf(stderr, "bench_embed: %s\n", err);
        return 1;
    }
    if (len > model_n_ctx(m)) {
        fprintf(stderr, "bench_embed: -n %d exceeds the model context %d\n", len,
                model_n_ctx(m));
        model_free(m);
        return 1;
    }
    const model_hparams *hp = model_hp(m);
    printf("model: %s, C %d, layers %d, heads %d, FF %d, vocab %d, weights %.1f MiB (f32), "
           "load %.2f s\n", model_arch_name(model_arch(m)), hp->n_embd, hp->n_layer,
           hp->n_head, hp->n_ff, hp->n_vocab, (double)model_weight_bytes(m) / 1048576.0,
           t1 - t0);
    printf("threads: OpenBLAS %d, matmul pool %d (small-T kernel up to T = %d)\n",
           openblas_get_num_threads(), tp_threads(ops_matmul_pool()), ops_matmul_small_t_max());
    /* rounds of sgemm, b1, bB interleaved, so that all three see the same
     * machine (other load, clocks); the best of each */
    double peak = 0.0;
    be_result r1 = {0}, rb = {0};
    rc = 0;
    for (int round = 0; round < 2 && rc == 0; round++) {
        peak = fmax(peak, be_sgemm_peak(2048, reps));
        rc = be_run(m, 1, len, reps, &r1);
        if (rc == 0)
            rc = be_run(m, batch, len, reps, &rb);
    }
    if (rc == 0) {
        printf("sgemm 2048^3        %8.1f GFLOP/s (peak)\n", peak);
        printf("b1  x %3d tokens    %8.1f embeddings/s  %8.1f GFLOP/s  %5.1f%% of peak\n", len,
               r1.emb_per_s, r1.gflops, 100.0 * r1.gflops / peak);
        printf("b%-2d x %3d tokens    %8.1f embeddings/s  %8.1f GFLOP/s  %5.1f%% of peak "
               "(%.2fx b1)\n", batch, len, rb.emb_per_s, rb.gflops, 100.0 * rb.gflops / peak,
               rb.emb_per_s / r1.emb_per_s);
    }
    model_free(m);
    ops_matmul_set_pool(NULL);
    tp_free(pool);
    return rc == 0 ? 0 : 1;
}
