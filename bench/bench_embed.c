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
 * temporary file first (bench_util.h's bench_gen). Prints, best of
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
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "bench_util.h"
#include "gguf_writer.h"
#include "model.h"
#include "ops.h"
#include "pooling.h"
#include "threadpool.h"

static const char be_usage[] =
    "bench_embed [-m MODEL] [-b BATCH] [-n TOKENS] [-r REPS] [-t THREADS]\n"
    "       bench_embed --gen OUT.gguf";

enum { BE_V = 30522, BE_L = 12, BE_C = 768, BE_NH = 12, BE_FF = 3072, BE_P = 512 };

/* ---- the random BERT-base GGUF (engine/gguf_writer.h) ------------------ */

/* Metadata; set errors stick in the writer and fail its write. */
static void be_meta(bench_gen *g)
{
    static const bench_hparam hp[] = {
        {"block_count", BE_L}, {"context_length", BE_P}, {"embedding_length", BE_C},
        {"feed_forward_length", BE_FF}, {"attention.head_count", BE_NH},
    };
    bench_gen_arch(g, "bert", "bench random bert-base", hp, (int)(sizeof hp / sizeof *hp));
    gguf_writer_set_f32(g->w, "bert.attention.layer_norm_epsilon", 1e-12f);
    gguf_writer_set_bool(g->w, "bert.attention.causal", false);
    gguf_writer_set_u32(g->w, "bert.pooling_type", 1); /* mean */
}

/* Tensor names as llama.cpp's converter writes them; norms 1 + noise,
 * biases and matrices small noise (all F32). */
static void be_fill(bench_gen *g)
{
    const int C = BE_C, FF = BE_FF;
    const float w = 0.04f, b = 0.02f;
    be_meta(g);
    bench_gen_tensor(g, BE_V, C, 0, 0.1f, "token_embd.weight");
    bench_gen_tensor(g, BE_P, C, 0, 0.1f, "position_embd.weight");
    bench_gen_tensor(g, 2, C, 0, 0.1f, "token_types.weight");
    bench_gen_tensor(g, 0, C, 1, 0.1f, "token_embd_norm.weight");
    bench_gen_tensor(g, 0, C, 0, b, "token_embd_norm.bias");
    for (int l = 0; l < BE_L; l++) {
        static const char *const qkv[3] = {"attn_q", "attn_k", "attn_v"};
        for (int i = 0; i < 3; i++) {
            bench_gen_tensor(g, C, C, 0, w, "blk.%d.%s.weight", l, qkv[i]);
            bench_gen_tensor(g, 0, C, 0, b, "blk.%d.%s.bias", l, qkv[i]);
        }
        bench_gen_tensor(g, C, C, 0, w, "blk.%d.attn_output.weight", l);
        bench_gen_tensor(g, 0, C, 0, b, "blk.%d.attn_output.bias", l);
        bench_gen_tensor(g, 0, C, 1, 0.1f, "blk.%d.attn_output_norm.weight", l);
        bench_gen_tensor(g, 0, C, 0, b, "blk.%d.attn_output_norm.bias", l);
        bench_gen_tensor(g, FF, C, 0, w, "blk.%d.ffn_up.weight", l);
        bench_gen_tensor(g, 0, FF, 0, b, "blk.%d.ffn_up.bias", l);
        bench_gen_tensor(g, C, FF, 0, w, "blk.%d.ffn_down.weight", l);
        bench_gen_tensor(g, 0, C, 0, b, "blk.%d.ffn_down.bias", l);
        bench_gen_tensor(g, 0, C, 1, 0.1f, "blk.%d.layer_output_norm.weight", l);
        bench_gen_tensor(g, 0, C, 0, b, "blk.%d.layer_output_norm.bias", l);
    }
}

/* ---- measurements -------------------------------------------------------- */

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
        double t0 = bench_now();
        rc = model_encode(m, &b, h, err, sizeof err);
        for (int s = 0; s < n_seq && rc == 0; s++) {
            pool_apply(POOL_MEAN, h + (size_t)s * len * C, len, C, e + (size_t)s * C);
            pool_l2_normalize(e + (size_t)s * C, C);
        }
        double t = bench_now() - t0;
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

/* Rounds of sgemm, b1 and bB interleaved, so that all three see the same
 * machine (other load, clocks); prints the best of each. */
static int be_measure(model *m, int batch, int len, int reps)
{
    double peak = 0.0;
    be_result r1 = {0}, rb = {0};
    int rc = 0;
    for (int round = 0; round < 2 && rc == 0; round++) {
        peak = fmax(peak, bench_sgemm_peak(2048, reps));
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
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *gen = NULL;
    int batch = 32, len = 128, reps = 3, threads = 0;
    const bench_opt opts[] = {
        {"-m", .str = &path}, {"--gen", .str = &gen}, {"-b", .num = &batch},
        {"-n", .num = &len}, {"-r", .num = &reps}, {"-t", .num = &threads},
    };
    if (bench_parse(argc, argv, opts, (int)(sizeof opts / sizeof *opts), be_usage) != 0)
        return 2;
    if (batch < 1 || len < 2 || reps < 1 || threads < 0) {
        fprintf(stderr, "bench_embed: -b, -r must be positive, -n at least 2\n");
        return 2;
    }
    if (gen)
        return bench_gen_file(gen, 0, be_fill) == 0 ? 0 : 1;
    model_opts o = {.n_batch = batch * len};
    double load_s;
    model *m = bench_open(path, "a random BERT-base GGUF (768 x 12, FF 3072, vocab 30522)",
                          be_fill, 0, &o, &load_s);
    if (!m)
        return 1;
    if (len > model_n_ctx(m)) {
        fprintf(stderr, "bench_embed: -n %d exceeds the model context %d\n", len,
                model_n_ctx(m));
        model_free(m);
        return 1;
    }
    tp_pool *pool;
    if (bench_threads(threads, &pool) != 0) {
        model_free(m);
        return 1;
    }
    const model_hparams *hp = model_hp(m);
    printf("model: %s, C %d, layers %d, heads %d, FF %d, vocab %d, weights %.1f MiB (f32), "
           "load %.2f s\n", model_arch_name(model_arch(m)), hp->n_embd, hp->n_layer,
           hp->n_head, hp->n_ff, hp->n_vocab, (double)model_weight_bytes(m) / 1048576.0,
           load_s);
    printf("threads: OpenBLAS %d, matmul pool %d (small-T kernel up to T = %d)\n",
           openblas_get_num_threads(), tp_threads(ops_matmul_pool()), ops_matmul_small_t_max());
    int rc = be_measure(m, batch, len, reps);
    model_free(m);
    bench_threads_end(pool);
    return rc == 0 ? 0 : 1;
}
