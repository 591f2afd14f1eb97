/* bench_decode.c - prefill (pp) and decode (tg) throughput of model_forward.
 *
 *   bench_decode [-m MODEL] [-p N] [-n M] [-s SEQS] [-r REPS] [-t THREADS]
 *                [--small-t TMAX] [--kv-f16]
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
 * matmul, the behaviour before that kernel existed). --kv-f16 keeps the KV
 * cache in half floats (model.NAME.kv_type = f16).
 * The numbers are figures, not pass/fail. The GGUF is written with
 * bench_util.h's bench_gen (engine/gguf_writer.h) from random tensors (a
 * constant plus uniform noise from a fixed-seed rng), so every run
 * benchmarks the same weights.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "gguf_writer.h"
#include "model.h"
#include "ops.h"
#include "threadpool.h"

/* ---- the machine's read bandwidth: the decode roofline ---------------------- */

typedef struct bw_job {
    const float *a;
    double sums[64];
} bw_job;

static void bw_run(void *ctx, size_t i0, size_t i1, int worker)
{
    bw_job *j = ctx;
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = i0; i + 3 < i1; i += 4) {
        s0 += j->a[i];
        s1 += j->a[i + 1];
        s2 += j->a[i + 2];
        s3 += j->a[i + 3];
    }
    j->sums[worker & 63] += s0 + s1 + s2 + s3;
}

/* GB/s of reading a 512 MiB array on the engine's pool (best of 3). */
static double bench_read_bw(void)
{
    size_t n = (size_t)128 << 20;
    float *a = malloc(n * sizeof(float));
    if (!a)
        return 0;
    for (size_t i = 0; i < n; i++)
        a[i] = (float)(i & 7);
    bw_job j = {.a = a};
    double best = 0;
    for (int r = 0; r < 3; r++) {
        double t0 = bench_now();
        tp_parallel_for(ops_matmul_pool(), n, 1 << 16, bw_run, &j);
        best = fmax(best, (double)n * sizeof(float) / (bench_now() - t0) / 1e9);
    }
    free(a);
    return j.sums[0] == -1 ? 0 : best; /* keep the sums alive */
}


static const char bd_usage[] =
    "bench_decode [-m MODEL] [-p N] [-n M] [-s SEQS] [-r REPS] [-t THREADS] [--small-t TMAX] [--kv-f16]\n"
    "       bench_decode --gen OUT.gguf [--q8]";

/* ---- the random llama GGUF (engine/gguf_writer.h) ---------------------- */

enum { BD_C = 768, BD_L = 12, BD_NH = 12, BD_FF = 2048, BD_V = 32000 };
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
static int bd_meta(bench_gen *g)
{
    static const bench_hparam hp[] = {
        {"context_length", 2048}, {"embedding_length", BD_C}, {"block_count", BD_L},
        {"feed_forward_length", BD_FF}, {"attention.head_count", BD_NH},
        {"attention.head_count_kv", BD_NH},
    };
    bench_gen_arch(g, "llama", "bench random llama", hp, (int)(sizeof hp / sizeof *hp));
    gguf_writer_set_f32(g->w, "llama.attention.layer_norm_rms_epsilon", 1e-5f);
    gguf_writer_set_f32(g->w, "llama.rope.freq_base", 10000.0f);
    return bd_vocab(g->w, BD_V);
}

/* Norms 1, matrices U(-0.05, 0.05) (stored as Q8_0 when g->q8). */
static void bd_fill(bench_gen *g)
{
    const int C = BD_C, FF = BD_FF, V = BD_V;
    const float w = 0.05f;
    g->oom |= bd_meta(g) != 0; /* its scratch, not a tensor */
    bench_gen_tensor(g, V, C, 0, w, "token_embd.weight");
    bench_gen_tensor(g, 0, C, 1, 0, "output_norm.weight");
    bench_gen_tensor(g, V, C, 0, w, "output.weight");
    for (int l = 0; l < BD_L; l++) {
        bench_gen_tensor(g, 0, C, 1, 0, "blk.%d.attn_norm.weight", l);
        bench_gen_tensor(g, C, C, 0, w, "blk.%d.attn_q.weight", l);
        bench_gen_tensor(g, C, C, 0, w, "blk.%d.attn_k.weight", l);
        bench_gen_tensor(g, C, C, 0, w, "blk.%d.attn_v.weight", l);
        bench_gen_tensor(g, C, C, 0, w, "blk.%d.attn_output.weight", l);
        bench_gen_tensor(g, 0, C, 1, 0, "blk.%d.ffn_norm.weight", l);
        bench_gen_tensor(g, FF, C, 0, w, "blk.%d.ffn_gate.weight", l);
        bench_gen_tensor(g, FF, C, 0, w, "blk.%d.ffn_up.weight", l);
        bench_gen_tensor(g, C, FF, 0, w, "blk.%d.ffn_down.weight", l);
    }
}

/* ---- timing -------------------------------------------------------------- */

static int bd_run(model *m, int n_pp, int n_tg, int n_seq, int reps)
{
    const model_hparams *hp = model_hp(m);
    char err[512] = "out of memory";
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
    int rc = -1; /* until every forward has run */
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
        /* tg: n_tg single steps of sequence 0 from an empty cache, as
         * llama-bench's tg test runs (independent of the prompt test) */
        kv_seq_clear(kv, 0);
        if (kv_seq_reserve(kv, 0, n_tg) != 0)
            goto fail;
        t0 = bench_now();
        for (int s = 0; s < n_tg; s++) {
            int32_t t = (int32_t)((s * 31 + 5) % V), p = s, q = 0;
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
    double wbytes = (double)model_weight_bytes(m);
    printf("model: %s, C %d, layers %d, heads %d/%d, FF %d, vocab %d, weights %.1f MiB as "
           "loaded\n", model_arch_name(model_arch(m)), hp->n_embd, hp->n_layer, hp->n_head,
           hp->n_head_kv, hp->n_ff, V, wbytes / (1024.0 * 1024.0));
    /* prefill's matrix products: 2 FLOPs per weight of every matrix (the
     * llama's shapes: q, k, v, o, gate, up, down and the output) a token */
    double qd = (double)hp->n_head * hp->head_dim, kd = (double)hp->n_head_kv * hp->head_dim;
    double mm = (double)hp->n_layer * ((double)hp->n_embd * (2 * qd + 2 * kd) +
                                       3.0 * hp->n_embd * hp->n_ff) +
                (double)V * hp->n_embd;
    double gf = 2.0 * mm * best_pp * 1e-9;
    double peak = ops_gemm_available() ? bench_gemm_peak(1024, 3) : bench_sgemm_peak(1024, 3);
    printf("pp%-4d %10.1f tokens/s = %.0f GFLOP/s of matrix products, %.0f%% of the %.0f GFLOP/s "
           "of a 1024^3 %s\n", n_pp, best_pp, gf, peak > 0 ? 100.0 * gf / peak : 0.0, peak,
           ops_gemm_available() ? "ops_gemm" : "sgemm");
    double bw = bench_read_bw(), rbytes = (double)model_decode_bytes(m);
    /* a decode step reads every weight once, the embedding table aside */
    printf("tg%-4d %10.1f tokens/s = %.1f GB/s of the %.1f MiB read per token, %.0f%% of the "
           "%.1f GB/s the machine reads\n", n_tg, best_tg, best_tg * rbytes / 1e9,
           rbytes / (1024.0 * 1024.0), bw > 0 ? 100.0 * best_tg * rbytes / 1e9 / bw : 0.0, bw);
    if (n_seq > 1)
        printf("tg%-4d x %d seqs %10.1f tokens/s (%.2fx single)\n", n_tg, n_seq, best_tgb,
               best_tgb / best_tg);
    rc = 0;
fail:
    if (rc != 0)
        fprintf(stderr, "bench: forward failed: %s\n", err);
    kv_free(kv);
    free(tok);
    free(pos);
    free(sid);
    free(want);
    free(logits);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *gen = NULL;
    int n_pp = 128, n_tg = 32, n_seq = 8, reps = 2, q8 = 0, threads = 0, small_t = -1, kv_f16 = 0;
    const bench_opt opts[] = {
        {"-m", .str = &path}, {"--gen", .str = &gen}, {"--q8", .flag = &q8},
        {"-p", .num = &n_pp}, {"-n", .num = &n_tg}, {"-s", .num = &n_seq},
        {"-r", .num = &reps}, {"-t", .num = &threads}, {"--small-t", .num = &small_t},
        {"--kv-f16", .flag = &kv_f16},
    };
    if (bench_parse(argc, argv, opts, (int)(sizeof opts / sizeof *opts), bd_usage) != 0)
        return 2;
    if (n_pp < 1 || n_tg < 1 || n_seq < 1 || reps < 1 || threads < 0) {
        fprintf(stderr, "bench_decode: -p, -n, -s, -r must be positive\n");
        return 2;
    }
    if (gen)
        return bench_gen_file(gen, q8, bd_fill) == 0 ? 0 : 1;
    model_opts o = {.n_batch = n_pp > n_seq ? n_pp : n_seq, .n_ctx = n_pp + n_tg + 1,
                    .kv_f16 = kv_f16 != 0};
    const char *what = q8 ? "a random llama GGUF (768 x 12, vocab 32000, q8_0)"
                          : "a random llama GGUF (768 x 12, vocab 32000)";
    double load_s;
    model *m = bench_open(path, what, bd_fill, q8, &o, &load_s);
    if (!m)
        return 1;
    tp_pool *pool;
    if (bench_threads(threads, &pool) != 0) {
        model_free(m);
        return 1;
    }
    if (small_t >= 0)
        ops_matmul_set_small_t_max(small_t);
    printf("load %.2f s, matmul: small-T kernel (%s, %d threads) up to T = %d, %s above\n",
           load_s, cpu_isa_name(cpu_isa_best()), tp_threads(ops_matmul_pool()),
           ops_matmul_small_t_max(), ops_gemm_available() ? "ops_gemm (AVX-512)" : "OpenBLAS");
    int rc = bd_run(m, n_pp, n_tg, n_seq, reps);
    model_free(m);
    bench_threads_end(pool);
    return rc == 0 ? 0 : 1;
}
