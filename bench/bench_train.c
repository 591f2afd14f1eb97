/* bench_train.c - training throughput: tokens/s of a whole training step
 * (forward + backward + AdamW) and the share of the machine's SGEMM peak it
 * reaches.
 *
 *   bench_train [--lora-only | --full-only] [-b B] [-l L] [-r STEPS] [-t THREADS]
 *
 * Two runs, both on random weights (the speed does not depend on them):
 *   lora  the 110M llama shape (dim 768, 12 layers, 12 heads, FF 2048,
 *         vocab 32000), base frozen, LoRA rank 16 on q, k, v, o (the usual
 *         choice), B x L tokens per step (default 4 x 128);
 *   full  a small llama (dim 256, 6 layers, 8 heads, FF 688, vocab 4096,
 *         ~6M parameters) with every weight trained, B x L = 16 x 128.
 * The peak is cblas_sgemm on 2048^3 measured in the same run. A step's
 * FLOPs are counted from the shapes: each matmul of the forward pass costs
 * 2 T C OC; the backward pass costs the same again for the input gradient
 * and, for trained weights, again for the weight gradient; attention
 * (computed as full L x L products per head) costs 4 L^2 HS per head and
 * sequence forward and twice that backward. Figures, not pass/fail.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "rng.h"
#include "trn_dec.h"
#include "trn_lora.h"
#include "trn_optim.h"

/* FLOPs of one step on a B x L batch (see the header comment). */
static double bt_flops(const model_hparams *hp, int B, int L, int train_weights)
{
    double T = (double)B * L, C = hp->n_embd, A = (double)hp->n_head * hp->head_dim;
    double KV = (double)hp->n_head_kv * hp->head_dim, FF = hp->n_ff, V = hp->n_vocab;
    double per_layer = C * (A + 2 * KV) + A * C + C * 2 * FF + FF * C;
    double mm = 2 * T * (hp->n_layer * per_layer + C * V);
    double attn = (double)hp->n_layer * B * hp->n_head * 4.0 * L * L * hp->head_dim;
    return mm * (train_weights ? 3 : 2) + attn * 3;
}

typedef struct bt_run {
    double tok_s, gflops, ms_step, act_mib;
} bt_run;

static int bt_steps(trn_dec *d, trn_params *ps, int B, int L, int reps, int train_weights,
                    bt_run *out)
{
    char err[512];
    const model_hparams *hp = trn_dec_hp(d);
    size_t T = (size_t)B * L;
    int32_t *tok = malloc(T * sizeof(int32_t)), *tgt = malloc(T * sizeof(int32_t));
    float *logp = malloc(T * sizeof(float)), *dlogp = malloc(T * sizeof(float));
    rng r;
    rng_seed(&r, 1);
    for (size_t t = 0; t < T; t++) {
        tok[t] = (int32_t)rng_below(&r, (uint64_t)hp->n_vocab);
        tgt[t] = (int32_t)rng_below(&r, (uint64_t)hp->n_vocab);
        dlogp[t] = -1.0f / (float)T;
    }
    trn_optim o;
    trn_optim_cfg oc = trn_optim_cfg_default();
    eng_err e = {0};
    trn_batch b = {.B = B, .L = L, .tokens = tok, .targets = tgt};
    int rc = trn_optim_init(&o, ps, &oc, &e);
    double best = 1e30;
    for (int i = 0; i <= reps && !rc; i++) { /* step 0 warms up */
        double t0 = bench_now();
        trn_params_zero_grad(ps);
        rc = trn_dec_forward(d, &b, logp, err, sizeof err);
        if (rc)
            break;
        trn_dec_backward(d, dlogp);
        trn_optim_step(&o, ps, NULL, &e);
        double dt = bench_now() - t0;
        if (i > 0 && dt < best)
            best = dt;
    }
    if (rc)
        fprintf(stderr, "bench_train: %s\n", err);
    out->ms_step = best * 1e3;
    out->tok_s = (double)T / best;
    out->gflops = bt_flops(hp, B, L, train_weights) / best / 1e9;
    out->act_mib = (double)trn_dec_act_bytes(d) / (1 << 20);
    trn_optim_free(&o);
    free(tok), free(tgt), free(logp), free(dlogp);
    return rc;
}

static void bt_print(const char *what, const trn_dec *d, size_t trained, int B, int L,
                     const bt_run *r, double peak)
{
    printf("%-5s %6.1fM params (%zu trained) B=%d L=%d: %7.0f tokens/s, %6.0f ms/step, "
           "%6.1f GFLOP/s = %4.1f%% of SGEMM peak, activations %.0f MiB\n",
           what, (double)trn_dec_n_weights(d) / 1e6, trained, B, L, r->tok_s, r->ms_step,
           r->gflops, 100 * r->gflops / peak, r->act_mib);
}

/* Times reps steps training ps (train_weights: the model's own weights, so
 * their gradients count in the FLOPs), prints the line of what and frees
 * ps. */
static int bt_measure(const char *what, trn_dec *d, trn_params *ps, int B, int L, int reps,
                      int train_weights, double peak)
{
    bt_run r;
    int rc = bt_steps(d, ps, B, L, reps, train_weights, &r);
    if (!rc)
        bt_print(what, d, trn_params_count(ps), B, L, &r, peak);
    trn_params_free(ps);
    return rc;
}

static int bt_lora(int B, int L, int reps, double peak)
{
    trn_dec_shape sh = {.n_vocab = 32000, .n_ctx = 2048, .n_embd = 768, .n_layer = 12,
                        .n_head = 12, .n_head_kv = 12, .n_ff = 2048};
    char err[512];
    trn_dec *d;
    trn_lora *lo = NULL;
    trn_params ps = {0};
    trn_lora_cfg lc = {.rank = 16, .alpha = 32, .seed = 1,
                       .targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_K | 1u << TRN_LORA_V |
                                  1u << TRN_LORA_O};
    if (trn_dec_new(&d, &sh, 1, err, sizeof err) ||
        trn_lora_new(&lo, MODEL_ARCH_LLAMA, trn_dec_hp(d), &lc, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    trn_dec_freeze(d, true);
    trn_dec_set_lora(d, lo);
    lo->training = true;
    trn_lora_params(lo, &ps);
    int rc = bt_measure("lora", d, &ps, B, L, reps, 0, peak);
    trn_lora_free(lo);
    trn_dec_free(d);
    return rc;
}

static int bt_full(int B, int L, int reps, double peak)
{
    trn_dec_shape sh = {.n_vocab = 4096, .n_ctx = 512, .n_embd = 256, .n_layer = 6,
                        .n_head = 8, .n_head_kv = 8, .n_ff = 688, .tied = 1};
    char err[512];
    trn_dec *d;
    trn_params ps = {0};
    if (trn_dec_new(&d, &sh, 1, err, sizeof err)) {
        fprintf(stderr, "bench_train: %s\n", err);
        return 1;
    }
    trn_dec_params(d, &ps);
    int rc = bt_measure("full", d, &ps, B, L, reps, 1, peak);
    trn_dec_free(d);
    return rc;
}

int main(int argc, char **argv)
{
    int lora = 1, full = 1, B = 0, L = 128, reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--lora-only"))
            full = 0;
        else if (!strcmp(argv[i], "--full-only"))
            lora = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "-b"))
            B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-l"))
            L = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-r"))
            reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "-t"))
            openblas_set_num_threads(atoi(argv[++i]));
        else {
            fprintf(stderr, "usage: bench_train [--lora-only|--full-only] [-b B] [-l L] "
                    "[-r STEPS] [-t THREADS]\n");
            return 2;
        }
    }
    if (L < 2 || reps < 1 || B < 0) {
        fprintf(stderr, "bench_train: need -l >= 2, -r >= 1, -b >= 1\n");
        return 2;
    }
    double peak = bench_sgemm_peak(2048, 3);
    printf("SGEMM peak (2048^3, %d threads): %.1f GFLOP/s\n", openblas_get_num_threads(), peak);
    int rc = 0;
    if (lora)
        rc |= bt_lora(B ? B : 4, L, reps, peak);
    if (full)
        rc |= bt_full(B ? B : 16, L, reps, peak);
    return rc;
}
