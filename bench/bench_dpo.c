/* bench_dpo.c - DPO training speed: optimizer steps/s and preference pairs/s
 * (forward and backward of the chosen and rejected sequences through the
 * frozen base with a LoRA adapter, AdamW on the adapter), plus the
 * one-off reference pass.
 *
 *   bench_dpo [-m stories260K.gguf] [-b PAIRS] [-p PROMPT] [-r RESPONSE] [-s STEPS]
 *
 * Two models: the file given with -m (stories260K by default when
 * ../shared/models/stories260K.gguf is found next to the checkout) and the
 * 110M-shaped llama (dim 768, 12 layers, 12 heads, FF 2048, vocab 32000,
 * random weights). LoRA r 8, alpha 16 on q and v (TRL/PEFT's default);
 * pairs of random tokens, PROMPT + RESPONSE tokens per sequence (default
 * 64 + 64), b pairs per step (default 4). Figures, not pass/fail.
 */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "model.h"
#include "pref.h"
#include "rng.h"
#include "trn_dpo.h"

/* n pairs of random tokens below V. */
static void bd_pairs(pref_set *s, int n, int np, int nr, int V)
{
    rng r;
    rng_seed(&r, 1);
    s->p = calloc((size_t)n, sizeof(pref_pair));
    s->n = s->cap = n;
    for (int i = 0; i < n; i++) {
        pref_pair *p = &s->p[i];
        p->n_prompt = np, p->n_chosen = p->n_rejected = nr;
        p->ids = malloc((size_t)(np + 2 * nr) * sizeof(int32_t));
        for (int j = 0; j < np + 2 * nr; j++)
            p->ids[j] = (int32_t)rng_below(&r, (uint64_t)V);
    }
}

static int bd_run(const char *what, trn_dec *d, model_arch_id arch, int B, int np, int nr,
                  int steps)
{
    char err[512];
    const model_hparams *hp = trn_dec_hp(d);
    pref_set s = {0};
    bd_pairs(&s, B * steps, np, nr, hp->n_vocab);
    trn_lora_cfg lc = {.rank = 8, .alpha = 16, .seed = 1,
                       .targets = arch == MODEL_ARCH_GPT2 ? 1u << TRN_LORA_QKV
                                                          : 1u << TRN_LORA_Q | 1u << TRN_LORA_V};
    trn_lora *lo = NULL;
    trn_dpo t;
    trn_dpo_cfg c;
    trn_dpo_cfg_default(&c);
    c.batch = B;
    c.max_steps = steps;
    double t0 = bench_now();
    if (trn_lora_new(&lo, arch, hp, &lc, err, sizeof err) ||
        trn_dpo_init(&t, d, lo, &s, &c, err, sizeof err)) {
        fprintf(stderr, "bench_dpo: %s\n", err);
        trn_lora_free(lo);
        pref_set_free(&s);
        return 1;
    }
    double t_ref = bench_now() - t0, best = 1e30;
    for (int i = 0; i < steps; i++) {
        trn_dpo_metrics m;
        double t1 = bench_now();
        if (trn_dpo_step(&t, &m, NULL, err, sizeof err)) {
            fprintf(stderr, "bench_dpo: %s\n", err);
            break;
        }
        double dt = bench_now() - t1;
        best = dt < best ? dt : best;
    }
    printf("%-12s B=%d pairs x (%d + %d) tokens: %6.2f steps/s, %7.1f pairs/s, reference pass "
           "%.1f pairs/s, activations %.0f MiB\n", what, B, np, nr, 1 / best, B / best,
           s.n / t_ref, (double)trn_dec_act_bytes(d) / (1 << 20));
    trn_dpo_free(&t);
    trn_lora_free(lo);
    pref_set_free(&s);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = ALIGND_SHARED_MODEL;
    int B = 4, np = 64, nr = 64, steps = 5;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m"))
            path = argv[i + 1];
        else if (!strcmp(argv[i], "-b"))
            B = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p"))
            np = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r"))
            nr = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-s"))
            steps = atoi(argv[i + 1]);
    }
    if (B < 1 || np < 1 || nr < 1 || steps < 1) {
        fprintf(stderr, "usage: bench_dpo [-m MODEL] [-b PAIRS] [-p PROMPT] [-r RESPONSE] "
                "[-s STEPS]\n");
        return 2;
    }
    char err[512];
    int rc = 0;
    model *m = NULL;
    trn_dec *d = NULL;
    if (model_load(&m, path, err, sizeof err) == 0 && !trn_dec_from_model(&d, m, err, sizeof err)) {
        rc |= bd_run("stories260K", d, model_arch(m), B, np, nr, steps);
        trn_dec_free(d);
    } else
        fprintf(stderr, "bench_dpo: skipping %s: %s\n", path, err);
    model_free(m);
    trn_dec_shape sh = {.n_vocab = 32000, .n_ctx = 2048, .n_embd = 768, .n_layer = 12,
                        .n_head = 12, .n_head_kv = 12, .n_ff = 2048};
    if (trn_dec_new(&d, &sh, 1, err, sizeof err)) {
        fprintf(stderr, "bench_dpo: %s\n", err);
        return 1;
    }
    trn_dec_freeze(d, true);
    rc |= bd_run("llama-110M", d, MODEL_ARCH_LLAMA, B, np, nr, steps);
    trn_dec_free(d);
    return rc;
}
