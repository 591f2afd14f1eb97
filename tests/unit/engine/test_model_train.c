/* test_model_train.c - the training decoder (trn_dec.h) and LoRA
 * (trn_lora.h) as a whole:
 *   - DPO log-probs, loss and LoRA gradients of gpt2-tiny against the
 *     PyTorch reference in ../shared/conformance/gpt2-tiny/dpo_reference.json
 *     (policy with LoRA on q and v, reference = adapter disabled), with the
 *     three pairs' chosen and rejected sequences in one right-padded batch;
 *   - the training forward pass against model_forward (llama and gpt2);
 *   - adapter on == adapter merged into the weights, adapter off == base;
 *   - a new llama's full-weight gradients against finite differences. */
#include "tu_model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "rng.h"
#include "trn_dec.h"
#include "trn_lora.h"

#define REF_LOGP_TOL 1e-4   /* summed log-probs, absolute */
#define REF_LOSS_TOL 1e-6
#define REF_GRAD_TOL 1e-4   /* relative to the tensor's largest gradient */

static char err[512];

/* ---- DPO reference ------------------------------------------------------ */

typedef struct dpo_seq {
    int32_t *ids;
    int n, n_prompt;
} dpo_seq;

/* The ids of pair p, chosen (which 0) or rejected (1): prompt + response. */
static dpo_seq dpo_seq_of(json_t *pair, int which)
{
    int np, nr;
    int32_t *p = tu_model_json_ids(json_object_get(pair, "prompt_ids"), &np);
    int32_t *r = tu_model_json_ids(json_object_get(pair, which ? "rejected_ids" : "chosen_ids"),
                                   &nr);
    dpo_seq s = {.n = np + nr, .n_prompt = np};
    s.ids = malloc((size_t)s.n * sizeof(int32_t));
    memcpy(s.ids, p, (size_t)np * sizeof(int32_t));
    memcpy(s.ids + np, r, (size_t)nr * sizeof(int32_t));
    free(p);
    free(r);
    return s;
}

/* A right-padded batch of the 2P sequences (pair i chosen at 2i, rejected
 * at 2i + 1); targets are next tokens on response positions only. */
typedef struct dpo_batch {
    int B, L;
    int32_t *tokens, *targets, *lens;
    float *logp, *dlogp;
} dpo_batch;

static void dpo_batch_make(dpo_batch *db, dpo_seq *seqs, int n)
{
    db->B = n;
    db->L = 0;
    for (int i = 0; i < n; i++)
        db->L = seqs[i].n > db->L ? seqs[i].n : db->L;
    size_t T = (size_t)n * db->L;
    db->tokens = calloc(T, sizeof(int32_t));
    db->targets = malloc(T * sizeof(int32_t));
    db->lens = malloc((size_t)n * sizeof(int32_t));
    db->logp = calloc(T, sizeof(float));
    db->dlogp = calloc(T, sizeof(float));
    for (size_t t = 0; t < T; t++)
        db->targets[t] = -1;
    for (int i = 0; i < n; i++) {
        db->lens[i] = seqs[i].n;
        for (int j = 0; j < seqs[i].n; j++)
            db->tokens[(size_t)i * db->L + j] = seqs[i].ids[j];
        /* position j predicts token j + 1; responses start at n_prompt */
        for (int j = seqs[i].n_prompt - 1; j + 1 < seqs[i].n; j++)
            db->targets[(size_t)i * db->L + j] = seqs[i].ids[j + 1];
    }
}

static void dpo_batch_free(dpo_batch *db)
{
    free(db->tokens), free(db->targets), free(db->lens), free(db->logp), free(db->dlogp);
}

/* Summed log-prob of sequence i of the last forward pass. */
static double seq_logp(const dpo_batch *db, int i)
{
    double s = 0;
    for (int j = 0; j < db->L; j++)
        s += db->logp[(size_t)i * db->L + j];
    return s;
}

static void forward(trn_dec *d, dpo_batch *db)
{
    trn_batch b = {.B = db->B, .L = db->L, .tokens = db->tokens, .lens = db->lens,
                   .targets = db->targets};
    if (trn_dec_forward(d, &b, db->logp, err, sizeof err))
        fail_msg("trn_dec_forward: %s", err);
}

static void load_npy_into(float *dst, size_t n, const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s.npy", dir, name);
    npy_array a;
    npy_error e = {0};
    if (npy_load(&a, path, &e))
        fail_msg("%s: %s", path, e.msg);
    assert_int_equal(a.n_elements, n);
    for (size_t i = 0; i < n; i++)
        dst[i] = (float)npy_get(&a, i);
    npy_free(&a);
}

static void check_grad_npy(const float *got, size_t n, const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/grad.%s.npy", dir, name);
    npy_array a;
    npy_error e = {0};
    if (npy_load(&a, path, &e))
        fail_msg("%s: %s", path, e.msg);
    assert_int_equal(a.n_elements, n);
    double mx = 0, worst = 0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs(npy_get(&a, i)));
    for (size_t i = 0; i < n; i++)
        worst = fmax(worst, fabs(got[i] - npy_get(&a, i)));
    if (mx == 0) {
        if (worst != 0)
            fail_msg("%s: reference gradient is 0, got max |g| %g", name, worst);
    } else if (worst / mx > REF_GRAD_TOL)
        fail_msg("%s: gradient off by %.3g relative to max %.3g", name, worst / mx, mx);
    npy_free(&a);
}

/* One DPO case: log-probs, loss and LoRA gradients. */
static void run_dpo_case(model *m, json_t *ref, const char *case_name)
{
    json_t *c = json_object_get(json_object_get(ref, "cases"), case_name);
    json_t *pairs = json_object_get(c, "pairs");
    int P = (int)json_array_size(pairs);
    double beta = json_real_value(json_object_get(ref, "beta"));
    dpo_seq seqs[8];
    for (int i = 0; i < P; i++) {
        seqs[2 * i] = dpo_seq_of(json_array_get(pairs, (size_t)i), 0);
        seqs[2 * i + 1] = dpo_seq_of(json_array_get(pairs, (size_t)i), 1);
    }
    dpo_batch db;
    dpo_batch_make(&db, seqs, 2 * P);

    trn_dec *d;
    if (trn_dec_from_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    trn_lora_cfg cfg = {.rank = 4, .alpha = 8, .targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_V,
                        .seed = 1};
    trn_lora *lo;
    if (trn_lora_new(&lo, model_arch(m), model_hp(m), &cfg, err, sizeof err))
        fail_msg("%s", err);
    char *dir = tu_shared_path("conformance/gpt2-tiny/dpo");
    char cdir[512], name[64];
    snprintf(cdir, sizeof cdir, "%s/%s", dir, case_name);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            trn_lora_site *s = trn_lora_site_at(lo, l, t ? TRN_LORA_V : TRN_LORA_Q);
            snprintf(name, sizeof name, "h.%d.attn.%s.lora_A", l, t ? "v" : "q");
            load_npy_into(s->A, (size_t)4 * s->in, cdir, name);
            snprintf(name, sizeof name, "h.%d.attn.%s.lora_B", l, t ? "v" : "q");
            load_npy_into(s->B, (size_t)s->out * 4, cdir, name);
        }
    trn_dec_set_lora(d, lo);

    /* reference pass: adapter disabled */
    lo->enabled = false;
    forward(d, &db);
    double refp[8];
    for (int i = 0; i < 2 * P; i++)
        refp[i] = seq_logp(&db, i);
    lo->enabled = true;
    forward(d, &db);
    double loss = 0;
    for (int i = 0; i < P; i++) {
        json_t *pr = json_array_get(pairs, (size_t)i);
        double pc = seq_logp(&db, 2 * i), pj = seq_logp(&db, 2 * i + 1);
        assert_true(fabs(pc - json_real_value(json_object_get(pr, "policy_chosen_logp"))) <
                    REF_LOGP_TOL);
        assert_true(fabs(pj - json_real_value(json_object_get(pr, "policy_rejected_logp"))) <
                    REF_LOGP_TOL);
        assert_true(fabs(refp[2 * i] -
                         json_real_value(json_object_get(pr, "reference_chosen_logp"))) <
                    REF_LOGP_TOL);
        assert_true(fabs(refp[2 * i + 1] -
                         json_real_value(json_object_get(pr, "reference_rejected_logp"))) <
                    REF_LOGP_TOL);
        double z = beta * ((pc - refp[2 * i]) - (pj - refp[2 * i + 1]));
        loss += log1p(exp(-z)) / P;
        /* dL/dpi_c = -beta sigmoid(-z) / P on every response token */
        double g = -beta / (1 + exp(z)) / P;
        for (int j = 0; j < db.L; j++) {
            size_t t0 = (size_t)(2 * i) * db.L + j, t1 = (size_t)(2 * i + 1) * db.L + j;
            db.dlogp[t0] = db.targets[t0] >= 0 ? (float)g : 0;
            db.dlogp[t1] = db.targets[t1] >= 0 ? (float)-g : 0;
        }
    }
    double want = json_real_value(json_object_get(c, "loss"));
    if (fabs(loss - want) > REF_LOSS_TOL)
        fail_msg("%s: DPO loss %.9f, reference %.9f", case_name, loss, want);
    trn_dec_backward(d, db.dlogp);
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++) {
            trn_lora_site *s = trn_lora_site_at(lo, l, t ? TRN_LORA_V : TRN_LORA_Q);
            snprintf(name, sizeof name, "h.%d.attn.%s.lora_A", l, t ? "v" : "q");
            check_grad_npy(s->dA, (size_t)4 * s->in, cdir, name);
            snprintf(name, sizeof name, "h.%d.attn.%s.lora_B", l, t ? "v" : "q");
            check_grad_npy(s->dB, (size_t)s->out * 4, cdir, name);
        }
    free(dir);
    trn_lora_free(lo);
    trn_dec_free(d);
    dpo_batch_free(&db);
    for (int i = 0; i < 2 * P; i++)
        free(seqs[i].ids);
}

static void test_dpo_reference(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/dpo_reference.json");
    if (!path)
        skip();
    json_error_t je;
    json_t *ref = json_load_file(path, 0, &je);
    assert_non_null(ref);
    free(path);
    path = tu_shared_path("conformance/gpt2-tiny");
    model *m = tu_model_load(path, NULL);
    free(path);
    run_dpo_case(m, ref, "lora");
    run_dpo_case(m, ref, "lora_B_zero");
    model_free(m);
    json_decref(ref);
}

/* ---- forward agrees with inference -------------------------------------- */

/* Log-probs of the next tokens of ids under model_forward. */
static void inference_logp(model *m, const int32_t *ids, int n, double *out)
{
    int V = model_hp(m)->n_vocab;
    kv_cache *kv = tu_model_kv(m, 1);
    float *logits = malloc((size_t)V * sizeof(float));
    for (int i = 0; i + 1 < n; i++) {
        tu_model_feed(m, kv, 0, ids + i, 1, i, logits);
        double mx = logits[0], s = 0;
        for (int v = 1; v < V; v++)
            mx = fmax(mx, logits[v]);
        for (int v = 0; v < V; v++)
            s += exp(logits[v] - mx);
        out[i] = logits[ids[i + 1]] - mx - log(s);
    }
    free(logits);
    kv_free(kv);
}

static void check_forward_matches(const char *rel)
{
    char *path = tu_shared_path(rel);
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    int32_t ids[2][9] = {{1, 450, 4996, 17354, 1701, 432, 17204, 975, 278},
                         {1, 306, 763, 29892, 278, 3186, 4, 0, 0}};
    int32_t lens[2] = {9, 7}, targets[18];
    for (int b = 0; b < 2; b++)
        for (int i = 0; i < 9; i++)
            targets[b * 9 + i] = i + 1 < lens[b] ? ids[b][i + 1] : -1;
    trn_dec *d;
    if (trn_dec_from_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    float logp[18];
    trn_batch b = {.B = 2, .L = 9, .tokens = &ids[0][0], .lens = lens, .targets = targets};
    if (trn_dec_forward(d, &b, logp, err, sizeof err))
        fail_msg("%s", err);
    for (int s = 0; s < 2; s++) {
        double want[9];
        inference_logp(m, ids[s], lens[s], want);
        for (int i = 0; i + 1 < lens[s]; i++)
            if (fabs(want[i] - logp[s * 9 + i]) > 1e-4)
                fail_msg("%s seq %d pos %d: training log-prob %.6f, inference %.6f", rel, s, i,
                         logp[s * 9 + i], want[i]);
        assert_true(logp[s * 9 + lens[s] - 1] == 0.0f);
    }
    assert_true(trn_dec_act_bytes(d) > 0);
    trn_dec_free(d);
    model_free(m);
}

static void test_forward_matches_inference(void **state)
{
    (void)state;
    check_forward_matches("conformance/llama-tiny/model-f32.gguf");
    check_forward_matches("conformance/llama-tiny");
    check_forward_matches("conformance/gpt2-tiny");
}

/* ---- adapter on / off / merged ------------------------------------------ */

static void test_lora_merge_agrees(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    trn_dec *d;
    if (trn_dec_from_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    trn_lora_cfg cfg = {.rank = 3, .alpha = 6, .targets = TRN_LORA_ALL,
                        .seed = 7};
    trn_lora *lo;
    if (trn_lora_new(&lo, MODEL_ARCH_LLAMA, model_hp(m), &cfg, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(lo->n_sites, 2 * 7);
    int32_t tokens[8] = {1, 450, 4996, 17354, 1701, 432, 17204, 975}, targets[8];
    for (int i = 0; i < 8; i++)
        targets[i] = i < 7 ? tokens[i + 1] : -1;
    trn_batch b = {.B = 1, .L = 8, .tokens = tokens, .targets = targets};
    float base[8], on[8], off[8], merged[8];
    trn_dec_set_lora(d, lo);
    trn_dec_forward(d, &b, base, err, sizeof err);
    /* B = 0 at init: the adapter changes nothing */
    rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * 3; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * 0.05);
    trn_dec_forward(d, &b, on, err, sizeof err);
    lo->enabled = false;
    trn_dec_forward(d, &b, off, err, sizeof err);
    model_decoder_view v;
    assert_int_equal(model_decoder_view_get(m, &v), 0);
    trn_lora_merge(lo, &v, 1.0f);
    trn_dec_forward(d, &b, merged, err, sizeof err);
    double moved = 0;
    for (int i = 0; i < 7; i++) {
        assert_true(fabsf(off[i] - base[i]) < 1e-6f);
        assert_true(fabsf(on[i] - merged[i]) < 1e-4f);
        moved = fmax(moved, fabsf(on[i] - off[i]));
    }
    assert_true(moved > 1e-3); /* the adapter did change the model */
    trn_lora_merge(lo, &v, -1.0f);
    trn_dec_forward(d, &b, merged, err, sizeof err);
    for (int i = 0; i < 7; i++)
        assert_true(fabsf(off[i] - merged[i]) < 1e-4f);
    trn_lora_free(lo);
    trn_dec_free(d);
    model_free(m);
}

/* ---- a new model's full gradients vs finite differences ------------------ */

static double batch_loss(trn_dec *d, const trn_batch *b, float *logp)
{
    if (trn_dec_forward(d, b, logp, err, sizeof err))
        fail_msg("%s", err);
    double s = 0;
    for (int t = 0; t < b->B * b->L; t++)
        s -= logp[t];
    return s;
}

/* batch_loss as the finite-difference helper calls it. */
typedef struct fd_ctx {
    trn_dec *d;
    const trn_batch *b;
    float *logp;
    trn_lora *lo;      /* with dropout: the generator is rewound each pass */
    rng drop;
} fd_ctx;

static double fd_loss(void *p)
{
    fd_ctx *c = p;
    if (c->lo)
        c->lo->drop_rng = c->drop;
    return batch_loss(c->d, c->b, c->logp);
}

static void test_full_gradients_fd(void **state)
{
    (void)state;
    trn_dec_shape sh = {.n_vocab = 37, .n_ctx = 16, .n_embd = 16, .n_layer = 2, .n_head = 4,
                        .n_head_kv = 2, .n_ff = 24};
    trn_dec *d;
    if (trn_dec_new(&d, &sh, 11, err, sizeof err))
        fail_msg("%s", err);
    trn_params ps = {0};
    assert_int_equal(trn_dec_params(d, &ps), 0);
    assert_int_equal(trn_params_count(&ps), trn_dec_n_weights(d));
    int32_t tokens[2 * 6], targets[2 * 6], lens[2] = {6, 4};
    rng r;
    rng_seed(&r, 5);
    for (int t = 0; t < 12; t++) {
        tokens[t] = (int32_t)rng_below(&r, 37);
        targets[t] = (t % 6) < lens[t / 6] - 1 ? (int32_t)rng_below(&r, 37) : -1;
    }
    trn_batch b = {.B = 2, .L = 6, .tokens = tokens, .lens = lens, .targets = targets};
    float logp[12], dlogp[12];
    batch_loss(d, &b, logp);
    for (int t = 0; t < 12; t++)
        dlogp[t] = -1.0f;
    trn_params_zero_grad(&ps);
    trn_dec_backward(d, dlogp);
    /* central differences in float with a large step: a few elements of
     * every parameter tensor */
    fd_ctx c = {.d = d, .b = &b, .logp = logp};
    tu_model_fd_check(&ps, fd_loss, &c, &r, 4, 1e-2f, 2e-3, 2e-2, "full weights");
    trn_params_free(&ps);
    trn_dec_free(d);
}

/* LoRA with dropout: masks only while training, and the gradients of A and
 * B match finite differences under a fixed mask (the dropout generator is
 * rewound before every pass). */
static void test_lora_dropout(void **state)
{
    (void)state;
    trn_dec_shape sh = {.n_vocab = 29, .n_ctx = 8, .n_embd = 16, .n_layer = 2, .n_head = 2,
                        .n_head_kv = 1, .n_ff = 20};
    trn_dec *d;
    assert_int_equal(trn_dec_new(&d, &sh, 4, err, sizeof err), 0);
    trn_dec_freeze(d, true);
    trn_lora_cfg cfg = {.rank = 2, .alpha = 4, .dropout = 0.3f, .seed = 9,
                        .targets = TRN_LORA_ALL};
    trn_lora *lo;
    assert_int_equal(trn_lora_new(&lo, MODEL_ARCH_LLAMA, trn_dec_hp(d), &cfg, err, sizeof err),
                     0);
    rng r;
    rng_seed(&r, 8);
    for (int i = 0; i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * 2; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * 0.3);
    trn_dec_set_lora(d, lo);
    int32_t tok[6] = {3, 7, 1, 28, 5, 9}, tgt[6] = {7, 1, 28, 5, 9, -1};
    trn_batch b = {.B = 1, .L = 6, .tokens = tok, .targets = tgt};
    float a1[6], a2[6], a3[6];
    lo->training = false;
    trn_dec_forward(d, &b, a1, err, sizeof err);
    trn_dec_forward(d, &b, a2, err, sizeof err);
    lo->training = true;
    trn_dec_forward(d, &b, a3, err, sizeof err);
    double diff = 0;
    for (int i = 0; i < 5; i++) {
        assert_true(a1[i] == a2[i]);
        diff = fmax(diff, fabsf(a1[i] - a3[i]));
    }
    assert_true(diff > 1e-4); /* the mask changed the result */

    trn_params ps = {0};
    assert_int_equal(trn_lora_params(lo, &ps), 0);
    rng keep = lo->drop_rng;
    float logp[6], dlogp[6] = {-1, -1, -1, -1, -1, 0};
    trn_params_zero_grad(&ps);
    trn_dec_forward(d, &b, logp, err, sizeof err);
    trn_dec_backward(d, dlogp);
    fd_ctx c = {.d = d, .b = &b, .logp = logp, .lo = lo, .drop = keep};
    tu_model_fd_check(&ps, fd_loss, &c, &r, 1, 1e-2f, 2e-3, 2e-2, "LoRA with dropout");
    trn_params_free(&ps);
    trn_lora_free(lo);
    trn_dec_free(d);
}

/* gpt2 with PEFT's c_attn target (the fused qkv as one site): merged ==
 * unmerged; and a hidden-state loss (what a reward head reads)
 * back-propagates to the adapter as finite differences say. */
static double hidden_loss(trn_dec *d, const trn_batch *b, const float *w)
{
    if (trn_dec_forward(d, b, NULL, err, sizeof err))
        fail_msg("%s", err);
    const float *h = trn_dec_hidden(d);
    int C = trn_dec_hp(d)->n_embd;
    double s = 0;
    for (int i = 0; i < b->B; i++) /* the last real token of each sequence */
        for (int c = 0; c < C; c++)
            s += w[c] * h[((size_t)i * b->L + b->lens[i] - 1) * C + c];
    return s;
}

typedef struct hidden_ctx {
    trn_dec *d;
    const trn_batch *b;
    const float *w;
} hidden_ctx;

static double hidden_fd_loss(void *p)
{
    hidden_ctx *c = p;
    return hidden_loss(c->d, c->b, c->w);
}

static void test_qkv_target_and_hidden(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    trn_dec *d;
    assert_int_equal(trn_dec_from_model(&d, m, err, sizeof err), 0);
    trn_lora_cfg cfg = {.rank = 4, .alpha = 8, .seed = 2, .targets = 1u << TRN_LORA_QKV};
    trn_lora *lo;
    assert_int_equal(trn_lora_new(&lo, MODEL_ARCH_GPT2, model_hp(m), &cfg, err, sizeof err), 0);
    assert_int_equal(lo->sites[0].out, 96);
    rng r;
    rng_seed(&r, 12);
    for (int i = 0; i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * 4; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * 0.1);
    trn_dec_set_lora(d, lo);
    int32_t tok[2 * 5] = {464, 3139, 286, 4881, 318, 40, 588, 257, 0, 0}, lens[2] = {5, 3};
    int32_t tgt[10];
    for (int t = 0; t < 10; t++)
        tgt[t] = t % 5 < lens[t / 5] - 1 ? tok[t + 1] : -1;
    trn_batch b = {.B = 2, .L = 5, .tokens = tok, .lens = lens, .targets = tgt};
    float on[10], merged[10];
    trn_dec_forward(d, &b, on, err, sizeof err);
    model_decoder_view v;
    model_decoder_view_get(m, &v);
    trn_lora_merge(lo, &v, 1.0f);
    lo->enabled = false;
    trn_dec_forward(d, &b, merged, err, sizeof err);
    for (int t = 0; t < 10; t++)
        assert_true(fabsf(on[t] - merged[t]) < 1e-4f);
    trn_lora_merge(lo, &v, -1.0f);
    lo->enabled = true;

    float w[32];
    for (int c = 0; c < 32; c++)
        w[c] = (float)rng_normal(&r);
    trn_batch hb = {.B = 2, .L = 5, .tokens = tok, .lens = lens, .hidden_only = true};
    trn_params ps = {0};
    trn_lora_params(lo, &ps);
    trn_params_zero_grad(&ps);
    hidden_loss(d, &hb, w);
    float *dh = calloc(10 * 32, sizeof(float));
    for (int i = 0; i < 2; i++)
        memcpy(dh + ((size_t)i * 5 + lens[i] - 1) * 32, w, sizeof w);
    trn_dec_backward_hidden(d, dh);
    hidden_ctx hc = {.d = d, .b = &hb, .w = w};
    tu_model_fd_check(&ps, hidden_fd_loss, &hc, &r, 3, 1e-2f, 2e-3, 2e-2, "from the hidden state");
    free(dh);
    trn_params_free(&ps);
    unsigned mask;
    assert_int_equal(trn_lora_targets_parse("qkv,q", &mask, err, sizeof err), 0);
    trn_lora_cfg both = cfg;
    both.targets = mask;
    trn_lora *bad;
    assert_int_equal(trn_lora_new(&bad, MODEL_ARCH_GPT2, model_hp(m), &both, err, sizeof err),
                     -EINVAL);
    trn_lora_free(lo);
    trn_dec_free(d);
    model_free(m);
}

static void test_bad_batches(void **state)
{
    (void)state;
    trn_dec_shape sh = {.n_vocab = 10, .n_ctx = 4, .n_embd = 8, .n_layer = 1, .n_head = 2,
                        .n_head_kv = 2, .n_ff = 8};
    trn_dec *d;
    assert_int_equal(trn_dec_new(&d, &sh, 1, err, sizeof err), 0);
    int32_t tok[5] = {1, 2, 3, 4, 5}, tgt[5] = {2, 3, 4, 5, -1}, lens[1] = {5};
    float logp[5];
    trn_batch b = {.B = 1, .L = 5, .tokens = tok, .targets = tgt};
    assert_int_equal(trn_dec_forward(d, &b, logp, err, sizeof err), -EINVAL); /* > n_ctx */
    b.L = 4;
    tok[2] = 10;
    assert_int_equal(trn_dec_forward(d, &b, logp, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "vocabulary"));
    tok[2] = 3;
    lens[0] = 5;
    b.lens = lens;
    assert_int_equal(trn_dec_forward(d, &b, logp, err, sizeof err), -EINVAL);
    /* the same token count in more sequences needs more room for lengths
     * (ASan sees an overflow otherwise); 1-token sequences predict alike */
    b = (trn_batch){.B = 1, .L = 4, .tokens = tok, .targets = tgt};
    assert_int_equal(trn_dec_forward(d, &b, logp, err, sizeof err), 0);
    int32_t same[4] = {2, 2, 2, 2}, tgt4[4] = {3, 3, 3, 3}, lens4[4] = {1, 1, 1, 1};
    b = (trn_batch){.B = 4, .L = 1, .tokens = same, .lens = lens4, .targets = tgt4};
    assert_int_equal(trn_dec_forward(d, &b, logp, err, sizeof err), 0);
    for (int i = 1; i < 4; i++)
        assert_true(logp[i] == logp[0]);
    trn_dec_free(d);
    trn_dec_shape bad = sh;
    bad.n_head = 3;
    assert_int_equal(trn_dec_new(&d, &bad, 1, err, sizeof err), -EINVAL);
    assert_null(d);
    unsigned mask;
    assert_int_equal(trn_lora_targets_parse("q,v", &mask, err, sizeof err), 0);
    assert_int_equal(mask, 1u << TRN_LORA_Q | 1u << TRN_LORA_V);
    assert_int_equal(trn_lora_targets_parse("q,x", &mask, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "'x'"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dpo_reference),
        cmocka_unit_test(test_forward_matches_inference),
        cmocka_unit_test(test_lora_merge_agrees),
        cmocka_unit_test(test_full_gradients_fd),
        cmocka_unit_test(test_lora_dropout),
        cmocka_unit_test(test_qkv_target_and_hidden),
        cmocka_unit_test(test_bad_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
