/* test_model_embed.c - contrastive sentence-embedding training (trn_embed.h,
 * trn_embed_ops.h, trn_dec_copy_model):
 *   - mean pooling and the ranking loss against central finite differences
 *     in double (the _f64 instantiation of the float code), the loss also
 *     against a naive formula, and float against double;
 *   - the whole pipeline's gradient (every weight of a tiny llama: pooled,
 *     normalised embeddings into the ranking loss) against finite
 *     differences of the float loss;
 *   - a trainable copy of a loaded llama gives the inference code's hidden
 *     states (model_encode), and refuses a gpt2;
 *   - training learns a toy retrieval task far above chance;
 *   - a trained model written as GGUF and served through model_encode with
 *     mean pooling gives trn_embed_encode's embeddings. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tu_model.h"

#include "gguf_writer.h"
#include "model.h"
#include "pooling.h"
#include "rng.h"
#include "trn_dec.h"
#include "trn_embed.h"
#include "trn_embed_ops.h"

#define FD_H 1e-6
#define FD_TOL 1e-6

static rng g_rng;
static char err[512];

static double *rnd(size_t n)
{
    double *a = malloc(n * sizeof(double));
    assert_non_null(a);
    for (size_t i = 0; i < n; i++)
        a[i] = 2 * rng_uniform(&g_rng) - 1;
    return a;
}

typedef double (*loss_fn)(void *ctx);

/* grad[n] against central differences of f over x[n]; the loss must not be flat. */
static void check_grad(const char *what, loss_fn f, void *ctx, double *x, const double *grad,
                       size_t n)
{
    double biggest = 0;
    for (size_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + FD_H;
        double lp = f(ctx);
        x[i] = keep - FD_H;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * FD_H);
        biggest = fmax(biggest, fabs(num));
        if (fabs(grad[i] - num) / fmax(1.0, fabs(num)) > FD_TOL)
            fail_msg("%s: element %zu: analytic %.9g, numeric %.9g", what, i, grad[i], num);
    }
    assert_true(biggest > 1e-3);
}

/* ---- mean pooling ----------------------------------------------------------------- */

typedef struct pool_ctx {
    int B, L, C;
    int32_t lens[3];
    double *h, *G, *out;
} pool_ctx;

static double pool_loss(void *p)
{
    pool_ctx *c = p;
    trn_embed_meanpool_fwd_f64(c->out, c->h, c->lens, c->B, c->L, c->C);
    double s = 0;
    for (int i = 0; i < c->B * c->C; i++)
        s += c->out[i] * c->G[i];
    return s;
}

static void test_meanpool(void **state)
{
    (void)state;
    pool_ctx c = {.B = 3, .L = 4, .C = 5, .lens = {4, 1, 3}};
    size_t nh = (size_t)c.B * c.L * c.C;
    c.h = rnd(nh);
    c.G = rnd((size_t)c.B * c.C);
    c.out = calloc((size_t)c.B * c.C, sizeof(double));
    pool_loss(&c);
    /* sequence 2: the mean of its 3 real tokens, the pad ignored */
    for (int d = 0; d < c.C; d++) {
        double want = (c.h[(2 * 4 + 0) * 5 + d] + c.h[(2 * 4 + 1) * 5 + d] +
                       c.h[(2 * 4 + 2) * 5 + d]) / 3;
        assert_true(fabs(c.out[2 * 5 + d] - want) < 1e-12);
    }
    double *dh = calloc(nh, sizeof(double));
    trn_embed_meanpool_bwd_f64(dh, c.G, c.lens, c.B, c.L, c.C);
    check_grad("mean pooling", pool_loss, &c, c.h, dh, nh);
    for (int d = 0; d < c.C; d++) /* pads get no gradient */
        assert_true(dh[(1 * 4 + 1) * 5 + d] == 0 && dh[(2 * 4 + 3) * 5 + d] == 0);
    free(c.h), free(c.G), free(c.out), free(dh);
}

/* ---- the ranking loss ------------------------------------------------------------ */

typedef struct rank_ctx {
    int Q, M, D;
    double scale, *q, *c, *logits, *lse;
} rank_ctx;

static double rank_loss(void *p)
{
    rank_ctx *r = p;
    return trn_embed_rank_fwd_f64(r->logits, r->lse, r->q, r->c, r->Q, r->M, r->D, r->scale);
}

/* -1/Q sum_i log softmax(scale q_i . c)[i], written out */
static double rank_naive(const rank_ctx *r)
{
    double L = 0;
    for (int i = 0; i < r->Q; i++) {
        double z = 0, own = 0;
        for (int j = 0; j < r->M; j++) {
            double s = 0;
            for (int d = 0; d < r->D; d++)
                s += r->q[i * r->D + d] * r->c[j * r->D + d];
            z += exp(r->scale * s);
            if (j == i)
                own = r->scale * s;
        }
        L += log(z) - own;
    }
    return L / r->Q;
}

static void test_rank_loss(void **state)
{
    (void)state;
    rank_ctx r = {.Q = 3, .M = 7, .D = 4, .scale = 2.5};
    r.q = rnd(12);
    r.c = rnd(28);
    r.logits = calloc(21, sizeof(double));
    r.lse = calloc(3, sizeof(double));
    double L = rank_loss(&r);
    assert_true(fabs(L - rank_naive(&r)) < 1e-12);
    double *dq = calloc(12, sizeof(double)), *dc = calloc(28, sizeof(double));
    double *scratch = calloc(21, sizeof(double)), dl = 1.5;
    trn_embed_rank_bwd_f64(dq, dc, r.logits, r.lse, r.q, r.c, 3, 7, 4, 2.5, dl, scratch);
    for (int i = 0; i < 12; i++)
        dq[i] /= dl;
    for (int i = 0; i < 28; i++)
        dc[i] /= dl;
    check_grad("ranking loss dq", rank_loss, &r, r.q, dq, 12);
    check_grad("ranking loss dc", rank_loss, &r, r.c, dc, 28);
    float fq[12], fc[28], fl[21], flse[3];
    for (int i = 0; i < 12; i++)
        fq[i] = (float)r.q[i];
    for (int i = 0; i < 28; i++)
        fc[i] = (float)r.c[i];
    assert_true(fabs(trn_embed_rank_fwd_f32(fl, flse, fq, fc, 3, 7, 4, 2.5f) - L) < 1e-5);
    free(r.q), free(r.c), free(r.logits), free(r.lse), free(dq), free(dc), free(scratch);
}

/* ---- the whole pipeline --------------------------------------------------------- */

static trn_dec *tiny_model(int vocab, int embd, int layers, uint64_t seed)
{
    trn_dec_shape s = {.n_vocab = vocab, .n_ctx = 16, .n_embd = embd, .n_layer = layers,
                       .n_head = 2, .n_head_kv = 2, .n_ff = 2 * embd, .tied = 1};
    trn_dec *d;
    if (trn_dec_new(&d, &s, seed, err, sizeof err))
        fail_msg("%s", err);
    return d;
}

static trn_embed_cfg tiny_cfg(int batch, int negatives, int64_t steps)
{
    trn_embed_cfg c = {.batch = batch, .negatives = negatives, .scale = 20, .steps = steps,
                       .log_every = 1000, .seed = 3, .optim = trn_optim_cfg_default()};
    c.optim.sched.lr = 3e-3;
    c.optim.sched.total_steps = steps;
    return c;
}

typedef struct whole_ctx {
    trn_embed *te;
    const int32_t *const *seqs;
    const int32_t *lens;
    int Q, K;
} whole_ctx;

static double whole_loss(void *p)
{
    whole_ctx *w = p;
    double loss;
    if (trn_embed_batch_loss(w->te, w->seqs, w->lens, w->Q, w->K, false, &loss, err, sizeof err))
        fail_msg("%s", err);
    return loss;
}

static void test_whole_gradient(void **state)
{
    (void)state;
    trn_dec *d = tiny_model(16, 8, 2, 7);
    trn_embed te;
    trn_embed_cfg cfg = tiny_cfg(2, 1, 1);
    cfg.scale = 4;
    if (trn_embed_init(&te, d, &cfg, 6, err, sizeof err))
        fail_msg("%s", err);
    /* 2 queries, 2 positives, 2 negatives of assorted lengths */
    static const int32_t s0[] = {1, 2, 3}, s1[] = {4, 5, 6, 7, 8}, s2[] = {1, 3, 2, 9},
                         s3[] = {5, 4, 7}, s4[] = {1, 2, 11, 12, 13, 14}, s5[] = {15};
    const int32_t *seqs[] = {s0, s1, s2, s3, s4, s5};
    const int32_t lens[] = {3, 5, 4, 3, 6, 1};
    /* make the weights less uniform than the init so every path carries gradient */
    model_decoder_view *v = trn_dec_weights(d);
    rng r;
    rng_seed(&r, 5);
    for (int l = 0; l < 2; l++)
        for (int c = 0; c < 8; c++) {
            v->layers[l].norm1_w[c] += (float)(0.2 * rng_normal(&r));
            v->layers[l].norm2_w[c] += (float)(0.2 * rng_normal(&r));
        }
    trn_params_zero_grad(&te.ps);
    double loss;
    if (trn_embed_batch_loss(&te, seqs, lens, 2, 1, true, &loss, err, sizeof err))
        fail_msg("%s", err);
    assert_true(isfinite(loss) && loss > 0);
    whole_ctx w = {.te = &te, .seqs = seqs, .lens = lens, .Q = 2, .K = 1};
    double biggest = tu_model_fd_check(&te.ps, whole_loss, &w, &r, 4, 1e-3f, 2e-3, 3e-2,
                                       "embedding loss");
    assert_true(biggest > 1e-3);
    trn_embed_free(&te);
    trn_dec_free(d);
}

/* ---- a copy of a loaded model ------------------------------------------------------ */

static void test_copy_model(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    trn_dec *d;
    if (trn_dec_copy_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    assert_true(trn_dec_owns_weights(d));
    int32_t tok[7] = {1, 450, 4996, 17354, 1701, 432, 17204};
    int32_t len = 7, seq[7] = {0}, pos[7];
    for (int i = 0; i < 7; i++)
        pos[i] = i;
    int C = model_hp(m)->n_embd;
    float *want = malloc((size_t)7 * C * sizeof(float));
    model_batch b = {.n_tokens = 7, .token = tok, .pos = pos, .seq_id = seq};
    if (model_encode(m, &b, want, err, sizeof err))
        fail_msg("%s", err);
    model_free(m); /* the copy owns its weights */
    trn_batch tb = {.B = 1, .L = 7, .tokens = tok, .lens = &len, .hidden_only = true};
    if (trn_dec_forward(d, &tb, NULL, err, sizeof err))
        fail_msg("%s", err);
    const float *got = trn_dec_hidden(d);
    for (int i = 0; i < 7 * C; i++)
        if (fabsf(got[i] - want[i]) > 1e-4f)
            fail_msg("hidden %d: copy %.6f, inference %.6f", i, got[i], want[i]);
    free(want);
    trn_dec_free(d);

    path = tu_shared_path("conformance/gpt2-tiny");
    assert_non_null(path);
    m = tu_model_load(path, NULL);
    free(path);
    assert_int_equal(trn_dec_copy_model(&d, m, err, sizeof err), -ENOTSUP);
    assert_non_null(strstr(err, "gpt2"));
    model_free(m);
}

/* ---- learning ------------------------------------------------------------------- */

/* A toy task with hard negatives: a sentence is "subject verb object"
 * (tokens 1-8, 9-12, 13-20); its positive says the same as "filler
 * (21-24) object subject synonym-verb 25" (verbs v and v^1 are synonyms);
 * the negatives swap the subject and the object (same words as the query)
 * or change the object. Mean pooling of untrained states cannot tell a swap
 * from the query; training must. */
static void toy_item(rng *r, int32_t seqs[4][5], int32_t lens[4])
{
    int s = 1 + (int)rng_below(r, 8), v = 9 + (int)rng_below(r, 4);
    int o = 13 + (s - 1 + 1 + (int)rng_below(r, 7)) % 8; /* not s's twin: the swap must differ */
    int o2 = 13 + (o - 13 + 1 + (int)rng_below(r, 7)) % 8;
    int32_t q[] = {s, v, o}, p[] = {21 + (int)rng_below(r, 4), o, s, ((v - 9) ^ 1) + 9, 25};
    int32_t n1[] = {o - 12, v, s + 12}, n2[] = {s, v, o2};
    memcpy(seqs[0], q, sizeof q), lens[0] = 3;
    memcpy(seqs[1], p, sizeof p), lens[1] = 5;
    memcpy(seqs[2], n1, sizeof n1), lens[2] = 3;
    memcpy(seqs[3], n2, sizeof n2), lens[3] = 3;
}

static void toy_set(trn_embed_set *set, int n, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    assert_int_equal(trn_embed_set_init(set, 2), 0);
    for (int i = 0; i < n; i++) {
        int32_t seqs[4][5], lens[4];
        toy_item(&r, seqs, lens);
        const int32_t *p[4] = {seqs[0], seqs[1], seqs[2], seqs[3]};
        assert_int_equal(trn_embed_set_add(set, p, lens), 0);
    }
}

static void test_learns(void **state)
{
    (void)state;
    trn_embed_set train, held;
    toy_set(&train, 400, 1);
    toy_set(&held, 100, 2);
    trn_dec *d = tiny_model(26, 32, 2, 3);
    trn_embed te;
    trn_embed_cfg cfg = tiny_cfg(16, 2, 300);
    if (trn_embed_init(&te, d, &cfg, 5, err, sizeof err))
        fail_msg("%s", err);
    trn_embed_eval before, after;
    assert_int_equal(trn_embed_evaluate(&te, &held, &before, err, sizeof err), 0);
    if (trn_embed_run(&te, &train, NULL, NULL, NULL, err, sizeof err))
        fail_msg("%s", err);
    assert_int_equal(trn_embed_evaluate(&te, &held, &after, err, sizeof err), 0);
    print_message("toy retrieval: top-1 %.2f -> %.2f, MRR %.2f -> %.2f (chance 0.33)\n",
                  before.top1, after.top1, before.mrr, after.mrr);
    assert_true(after.top1 >= 0.9);
    assert_true(after.mrr > before.mrr);

    /* served: the GGUF through model_encode + mean pooling + L2 */
    char *dir = tu_tmpdir("trn_embed");
    char out[512];
    tu_join(out, sizeof out, dir, "embed.gguf");
    gguf_writer *w;
    assert_int_equal(gguf_writer_new(&w), 0);
    if (trn_dec_add_to_gguf(d, w, "toy", err, sizeof err) ||
        gguf_writer_set_u32(w, "llama.pooling_type", 1) ||
        gguf_writer_write(w, out, err, sizeof err))
        fail_msg("%s %s", err, gguf_writer_error(w));
    gguf_writer_free(w);
    pool_kind kind;
    bool normalize;
    int max_len;
    assert_int_equal(pool_config_load(out, &kind, &normalize, &max_len, err, sizeof err), 0);
    assert_int_equal(kind, POOL_MEAN);
    model *m = tu_model_load(out, NULL);
    int C = 32;
    float want[4 * 32], hidden[5 * 32], got[32];
    if (trn_embed_encode(&te, (const int32_t *const *)held.seq, held.len, 4, want, err,
                         sizeof err))
        fail_msg("%s", err);
    for (int k = 0; k < 4; k++) {
        int32_t n = held.len[k], pos[5], sid[5] = {0};
        for (int i = 0; i < n; i++)
            pos[i] = i;
        model_batch b = {.n_tokens = n, .token = held.seq[k], .pos = pos, .seq_id = sid};
        if (model_encode(m, &b, hidden, err, sizeof err))
            fail_msg("%s", err);
        pool_apply(POOL_MEAN, hidden, n, C, got);
        pool_l2_normalize(got, C);
        for (int c = 0; c < C; c++)
            if (fabsf(got[c] - want[k * C + c]) > 1e-4f)
                fail_msg("sentence %d dim %d: served %.6f, trained %.6f", k, c, got[c],
                         want[k * C + c]);
    }
    model_free(m);
    unlink(out);
    rmdir(dir);
    free(dir);
    trn_embed_free(&te);
    trn_dec_free(d);
    trn_embed_set_free(&train);
    trn_embed_set_free(&held);
}

int main(void)
{
    rng_seed(&g_rng, 42);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meanpool),
        cmocka_unit_test(test_rank_loss),
        cmocka_unit_test(test_whole_gradient),
        cmocka_unit_test(test_copy_model),
        cmocka_unit_test(test_learns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
