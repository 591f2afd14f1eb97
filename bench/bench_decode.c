/* bench_decode.c - prefill (pp) and decode (tg) throughput of model_forward.
 *
 *   bench_decode [-m MODEL] [-p N] [-n M] [-s SEQS] [-r REPS] [-t THREADS]
 *                [--small-t TMAX]
 *   bench_decode --gen OUT.gguf [--q8]      write a random llama GGUF
 *
 * Without -m a random-weight llama-shaped GGUF (dim 768, 12 layers, 12 heads,
 * FF 2048, vocab 32000, untied output; ~110 M parameters) is written to a
 * temporary file first. Prints:
 *   pp  N tokens of one prompt in one batch           tokens/s
 *   tg  M single-sequence decode steps                tokens/s
 *   tgB M decode steps of SEQS sequences per batch    tokens/s (all seqs)
 * -t sets OpenBLAS's threads and installs a matmul pool of as many threads
 * (default: both as configured by the environment). --small-t sets the
 * largest T that ops_matmul gives its small-T kernel (0: OpenBLAS for every
 * matmul, the behaviour before that kernel existed).
 * The numbers are figures, not pass/fail. The GGUF is written with
 * engine/gguf_writer.h from random tensors (a constant plus uniform noise
 * from a fixed-seed rng), so every run benchmarks the same weights.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "gguf_writer.h"
#include "model.h"
#include "ops.h"
#include "rng.h"
#include "threadpool.h"

/* ---- the random llama GGUF (engine/gguf_writer.h) ---------------------- */

enum { BD_C = 768, BD_L = 12, BD_NH = 12, BD_FF = 2048, BD_V = 32000 };
#define BD_NT (3 + BD_L * 9)

/* The tensors being generated: the writer borrows each buffer until the
 * write, so they are all kept here (~440 MB in F32). */
typedef struct bd_gen {
    gguf_writer *w;
    rng r;           /* fixed seed: every run writes the same model */
    int q8;          /* store 2-D tensors as Q8_0 */
    float *buf[BD_NT];
    int nt;
    int oom;         /* a buffer could not be allocated */
} bd_gen;

/* Adds tensor [rows, cols] ([cols] when rows is 0), every element
 * value + noise * U(-1, 1). Writer errors stick in the writer (its write
 * reports them), allocation failures in g->oom. */
__attribute__((format(printf, 6, 7)))
static void bd_tensor(bd_gen *g, int64_t rows, int64_t cols, float value, float noise,
                      const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    size_t n = (size_t)(rows ? rows : 1) * (size_t)cols;
    float *x = g->nt < BD_NT ? malloc(n * sizeof *x) : NULL;
    if (!x) {
        g->oom = 1;
        return;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = value + (noise != 0.0f ? noise * (float)(2.0 * rng_uniform(&g->r) - 1.0) : 0.0f);
    g->buf[g->nt++] = x;
    int64_t shape[2] = {rows, cols};
    gguf_writer_type type = g->q8 && rows ? GGUF_WRITER_Q8_0 : GGUF_WRITER_F32;
    gguf_writer_add_tensor(g->w, name, rows ? 2 : 1, rows ? shape : shape + 1, type, x);
}

/* A synthetic SentencePiece vocabulary of V tokens (<unk>, <s>, </s>, the
 * 256 byte tokens, then "▁t<i>" pieces), so that other engines that insist
 * on a tokenizer (llama.cpp) load the same file. -ENOMEM when its scratch
 * cannot be allocated; setter errors stick in the writer. */
static int bd_vocab(gguf_writer *w, int V)
{
    enum { PIECE = 16 };
    char *text = malloc((size_t)V * PIECE);
    const char **tokens = malloc((size_t)V * sizeof *tokens);
    float *scores = malloc((size_t)V * sizeof *scores);
    int32_t *types = malloc((size_t)V * sizeof *types);
    int rc = text && tokens && scores && types ? 0 : -ENOMEM;
    if (rc == 0) {
        for (int i = 0; i < V; i++) {
            char *p = text + (size_t)i * PIECE;
            if (i < 3) snprintf(p, PIECE, "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            else if (i < 259) snprintf(p, PIECE, "<0x%02X>", (unsigned)(i - 3));
            else snprintf(p, PIECE, "\xe2\x96\x81t%d", i);
            tokens[i] = p;
            scores[i] = i < 259 ? 0.0f : -(float)i;
            types[i] = i == 0 ? 2 : i < 3 ? 3 : i < 259 ? 6 : 1;
        }
        gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
        gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", tokens, (size_t)V);
        gguf_writer_set_arr_f32(w, "tokenizer.ggml.scores", scores, (size_t)V);
        gguf_writer_set_arr_i32(w, "tokenizer.ggml.token_type", types, (size_t)V);
        gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
        gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
        gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    }
    free(text);
    free(tokens);
    free(scores);
    free(types);
    return rc;
}

/* Metadata; set errors stick in the writer and fail its write. */
static int bd_meta(gguf_writer *w)
{
    gguf_writer_set_str(w, "general.architecture", "llama");
    gguf_writer_set_str(w, "general.name", "bench random llama");
    gguf_writer_set_u32(w, "llama.context_length", 2048);
    gguf_writer_set_u32(w, "llama.embedding_length", BD_C);
    gguf_writer_set_u32(w, "llama.block_count", BD_L);
    gguf_writer_set_u32(w, "llama.feed_forward_length", BD_FF);
    gguf_writer_set_u32(w, "llama.attention.head_count", BD_NH);
    gguf_writer_set_u32(w, "llama.attention.head_count_kv", BD_NH);
    gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f);
    return bd_vocab(w, BD_V);
}

/* Norms 1, matrices U(-0.05, 0.05); with q8 the matrices are stored as
 * Q8_0. Returns 0, or -1 with a message on stderr. */
static int bench_gen(const char *path, int q8)
{
    const int C = BD_C, FF = BD_FF, V = BD_V;
    const float w = 0.05f;
    bd_gen g = {.q8 = q8};
    rng_seed(&g.r, 42);
    if (gguf_writer_new(&g.w) != 0) {
        fprintf(stderr, "bench: out of memory\n");
        return -1;
    }
    g.oom = bd_meta(g.w) != 0;
    bd_tensor(&g, V, C, 0, w, "token_embd.weight");
    bd_tensor(&g, 0, C, 1, 0, "output_norm.weight");
    bd_tensor(&g, V, C, 0, w, "output.weight");
    for (int l = 0; l < BD_L; l++) {
        bd_tensor(&g, 0, C, 1, 0, "blk.%d.attn_norm.weight", l);
        bd_tensor(&g, C, C, 0, w, "blk.%d.attn_q.weight", l);
        bd_tensor(&g, C, C, 0, w, "blk.%d.attn_k.weight", l);
        bd_tensor(&g, C, C, 0, w, "blk.%d.attn_v.weight", l);
        bd_tensor(&g, C, C, 0, w, "blk.%d.attn_output.weight", l);
        bd_tensor(&g, 0, C, 1, 0, "blk.%d.ffn_norm.weight", l);
        bd_tensor(&g, FF, C, 0, w, "blk.%d.ffn_gate.weight", l);
        bd_tensor(&g, FF, C, 0, w, "blk.%d.ffn_up.weight", l);
        bd_tensor(&g, C, FF, 0, w, "blk.%d.ffn_down.weight", l);
    }
    char err[512] = "bench: out of memory for the random tensors";
    int rc = g.oom ? -ENOMEM : gguf_writer_write(g.w, path, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    gguf_writer_free(g.w);
    for (int i = 0; i < g.nt; i++)
        free(g.buf[i]);
    return rc == 0 ? 0 : -1;
}

/* ---- timing -------------------------------------------------------------- */

static double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int bench_run(model *m, int n_pp, int n_tg, int n_seq, int reps)
{
    const model_hparams *hp = model_hp(m);
    char err[512];
    int V = hp->n_vocab;
    int maxb = n_pp > n_seq ? n_pp : n_seq;
    int32_t *tok = malloc((size_t)maxb * sizeof(int32_t)), *pos = malloc((size_t)maxb * sizeof(int32_t)),
            *sid = malloc((size_t)maxb * sizeof(int32_t));
    int8_t *want = malloc((size_t)maxb);
    float *logits = malloc((size_t)n_seq * V * sizeof(float));
    kv_cache *kv = NULL;
    if (!tok || !pos || !sid || !want || !logits ||
        model_kv_create(m, n_seq, n_seq * (n_pp + n_tg + 16), 16, &kv, err, sizeof err) != 0) {
        fprintf(stderr, "bench: setup failed: %s\n", err);
        return -1;
    }
    double best_pp = 0, best_tg = 0, best_tgb = 0;
    for (int r = 0; r < reps; r++) {
        /* pp: one prompt of n_pp tokens */
        kv_seq_clear(kv, 0);
        if (kv_seq_reserve(kv, 0, n_pp + n_tg) != 0)
            goto fail;
        for (int i = 0; i < n_pp; i++) {
            tok[i] = (int32_t)((i * 7919 + 3) % V);
            pos[i] = i;
            sid[i] = 0;
        }
        model_batch b = {.n_tokens = n_pp, .token = tok, .pos = pos, .seq_id = sid};
        double t0 = bench_now();
        if (model_forward(m, kv, &b, logits, err, sizeof err) != 0)
            goto fail;
        double t1 = bench_now();
        best_pp = fmax(best_pp, n_pp / (t1 - t0));
        /* tg: n_tg single steps of sequence 0 */
        t0 = bench_now();
        for (int s = 0; s < n_tg; s++) {
            int32_t t = (int32_t)((s * 31 + 5) % V), p = n_pp + s, q = 0;
            model_batch d = {.n_tokens = 1, .token = &t, .pos = &p, .seq_id = &q};
            if (model_forward(m, kv, &d, logits, err, sizeof err) != 0)
                goto fail;
        }
        t1 = bench_now();
        best_tg = fmax(best_tg, n_tg / (t1 - t0));
        /* tgB: n_seq sequences decoding together (empty caches, so the
         * attention is short; the weight streaming is what is measured) */
        if (n_seq > 1) {
            for (int s = 0; s < n_seq; s++) {
                kv_seq_clear(kv, s);
                if (kv_seq_reserve(kv, s, n_tg) != 0)
                    goto fail;
            }
            t0 = bench_now();
            for (int s = 0; s < n_tg; s++) {
                for (int i = 0; i < n_seq; i++) {
                    tok[i] = (int32_t)((s * 131 + i * 17) % V);
                    pos[i] = s;
                    sid[i] = i;
                    want[i] = 1;
                }
                model_batch d = {.n_tokens = n_seq, .token = tok, .pos = pos, .seq_id = sid,
                                 .logits = want};
                if (model_forward(m, kv, &d, logits, err, sizeof err) != 0)
                    goto fail;
            }
            t1 = bench_now();
            best_tgb = fmax(best_tgb, (double)n_tg * n_seq / (t1 - t0));
        }
    }
    printf("model: %s, C %d, layers %d, heads %d/%d, FF %d, vocab %d, weights %.1f MiB (f32)\n",
           model_arch_name(model_arch(m)), hp->n_embd, hp->n_layer, hp->n_head, hp->n_head_kv,
           hp->n_ff, V, (double)model_weight_bytes(m) / (1024.0 * 1024.0));
    printf("pp%-4d %10.1f tokens/s\n", n_pp, best_pp);
    printf("tg%-4d %10.1f tokens/s\n", n_tg, best_tg);
    if (n_seq > 1)
        printf("tg%-4d x %d seqs %10.1f tokens/s (%.2fx single)\n", n_tg, n_seq, best_tgb,
               best_tgb / best_tg);
    kv_free(kv);
    free(tok);
    free(pos);
    free(sid);
    free(want);
    free(logits);
    return 0;
fail:
    fprintf(stderr, "bench: forward failed: %s\n", err);
    kv_free(kv);
    free(tok);
    free(pos);
    free(sid);
    free(want);
    free(logits);
    return -1;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *gen = NULL;
    int n_pp = 128, n_tg = 32, n_seq = 8, reps = 2, q8 = 0, threads = 0, small_t = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--q8")) {
            q8 = 1;
            continue;
        }
        if (!v) {
            fprintf(stderr, "bench_decode: %s needs a value\n", a);
            return 2;
        }
        if (!strcmp(a, "-m")) path = v;
        else if (!strcmp(a, "--gen")) gen = v;
        else if (!strcmp(a, "-p")) n_pp = atoi(v);
        else if (!strcmp(a, "-n")) n_tg = atoi(v);
        else if (!strcmp(a, "-s")) n_seq = atoi(v);
        else if (!strcmp(a, "-r")) reps = atoi(v);
        else if (!strcmp(a, "-t")) threads = atoi(v);
        else if (!strcmp(a, "--small-t")) small_t = atoi(v);
        else {
            fprintf(stderr, "usage: bench_decode [-m MODEL] [-p N] [-n M] [-s SEQS] [-r REPS] "
                            "[-t THREADS] [--small-t TMAX] | --gen OUT.gguf [--q8]\n");
            return 2;
        }
        i++;
    }
    if (n_pp < 1 || n_tg < 1 || n_seq < 1 || reps < 1 || threads < 0) {
        fprintf(stderr, "bench_decode: -p, -n, -s, -r must be positive\n");
        return 2;
    }
    if (gen)
        return bench_gen(gen, q8) == 0 ? 0 : 1;
    char tmp[] = "/tmp/bench_llama_XXXXXX";
    int made = 0;
    if (!path) {
        int fd = mkstemp(tmp);
        if (fd < 0) {
            perror("mkstemp");
            return 1;
        }
        close(fd);
        fprintf(stderr, "bench: writing a random llama GGUF (768 x 12, vocab 32000%s) to %s\n",
                q8 ? ", q8_0" : "", tmp);
        if (bench_gen(tmp, q8) != 0)
            return 1;
        path = tmp;
        made = 1;
    }
    char err[512];
    model *m = NULL;
    model_opts o = {.n_batch = n_pp > n_seq ? n_pp : n_seq, .n_ctx = n_pp + n_tg + 1};
    double t0 = bench_now();
    int rc = model_load_opts(&m, path, &o, err, sizeof err);
    double t1 = bench_now();
    if (made)
        unlink(tmp);
    if (rc != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return 1;
    }
    tp_pool *pool = NULL;
    if (threads > 0) {
        openblas_set_num_threads(threads);
        if (tp_create(&pool, threads) != 0) {
            fprintf(stderr, "bench_decode: cannot start %d threads\n", threads);
            model_free(m);
            return 1;
        }
        ops_matmul_set_pool(pool);
    }
    if (small_t >= 0)
        ops_matmul_set_small_t_max(small_t);
    printf("load %.2f s, matmul: small-T kernel (%s, %d threads) up to T = %d, OpenBLAS above\n",
           t1 - t0, cpu_isa_name(cpu_isa_best()), tp_threads(ops_matmul_pool()),
           ops_matmul_small_t_max());
    rc = bench_run(m, n_pp, n_tg, n_seq, reps);
    model_free(m);
    ops_matmul_set_pool(NULL);
    tp_free(pool);
    return rc == 0 ? 0 : 1;
}
