/* test_model_reward.c - Bradley-Terry reward models (trn_reward.h) on the
 * tiny conformance decoders (../shared/conformance):
 *   - the pair loss against its closed form;
 *   - head and LoRA gradients through the loss against finite differences
 *     (gpt2 with PEFT's c_attn target, llama with q and v);
 *   - padding: a sequence's reward is the same alone, in a batch of
 *     different lengths, with other pad values and through the batching of
 *     trn_reward_score (the head reads the last REAL token);
 *   - a synthetic preference task (chosen responses contain " great",
 *     rejected ones a neutral word instead) learnt to >= 0.9 eval accuracy;
 *   - save / load gives identical scores; a model of another shape is
 *     refused. */
#include "tu_model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pref.h"
#include "rng.h"
#include "tok_load.h"
#include "trn_reward.h"

static char err[512];

static model *load_shared(const char *rel)
{
    char *path = tu_shared_path(rel);
    if (!path)
        return NULL;
    model *m = tu_model_load(path, NULL);
    free(path);
    return m;
}

static trn_reward *new_rm(model *m, unsigned targets, uint64_t seed)
{
    trn_reward_cfg cfg = {.use_lora = targets != 0, .head_init = TRN_REWARD_HEAD_INIT,
                          .seed = seed,
                          .lora = {.rank = 4, .alpha = 8, .targets = targets, .seed = seed}};
    trn_reward *rm;
    if (trn_reward_new(&rm, m, &cfg, err, sizeof err))
        fail_msg("trn_reward_new: %s", err);
    return rm;
}

/* Gives the adapter's B (zero at init) and the head random values, so
 * every gradient is far from zero. */
static void randomize(trn_reward *rm, uint64_t seed, double b_std)
{
    rng r;
    rng_seed(&r, seed);
    trn_lora *lo = trn_reward_lora(rm);
    for (int i = 0; lo && i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * lo->cfg.rank; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * b_std);
    trn_params ps = {0};
    assert_int_equal(trn_reward_params(rm, &ps), 0);
    for (size_t c = 0; c < ps.p[0].n; c++)
        ps.p[0].value[c] = (float)rng_normal(&r);
    ps.p[1].value[0] = 0.3f;
    trn_params_free(&ps);
}

/* Appends a pair of explicit token ids. */
static void add_pair(pref_set *s, const int32_t *p, int np, const int32_t *c, int nc,
                     const int32_t *r, int nr, float margin, bool eval)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->p = realloc(s->p, (size_t)s->cap * sizeof(*s->p));
    }
    pref_pair *q = &s->p[s->n++];
    *q = (pref_pair){.n_prompt = np, .n_chosen = nc, .n_rejected = nr, .margin = margin,
                     .eval = eval};
    q->ids = malloc((size_t)(np + nc + nr) * sizeof(int32_t));
    memcpy(q->ids, p, (size_t)np * sizeof(int32_t));
    memcpy(q->ids + np, c, (size_t)nc * sizeof(int32_t));
    memcpy(q->ids + np + nc, r, (size_t)nr * sizeof(int32_t));
    s->n_eval += eval;
}

/* Three pairs of different lengths (some margins) with ids below 256. */
static void small_pairs(pref_set *s)
{
    int32_t p0[] = {40, 588, 257}, c0[] = {3290, 50, 13}, r0[] = {99, 7};
    int32_t p1[] = {464, 3139, 286, 4881, 318}, c1[] = {11}, r1[] = {1000, 2000, 3000, 17};
    int32_t p2[] = {5}, c2[] = {12, 13, 14, 15, 16, 17}, r2[] = {18, 19, 20};
    add_pair(s, p0, 3, c0, 3, r0, 2, 0.0f, false);
    add_pair(s, p1, 5, c1, 1, r1, 4, 0.5f, false);
    add_pair(s, p2, 1, c2, 6, r2, 3, -0.25f, false);
}

/* ---- the pair loss --------------------------------------------------------- */

static void test_bt_loss_closed_form(void **state)
{
    (void)state;
    float r[4] = {2, 1, 0, 3}, m[2] = {0, 0.5f}, dr[4];
    int ok = -1;
    double l = trn_reward_bt_loss(r, m, 2, dr, &ok);
    /* pair 0: z = 1; pair 1: z = -3.5 */
    double want = (log1p(exp(-1.0)) + log1p(exp(3.5))) / 2;
    assert_true(fabs(l - want) < 1e-12);
    assert_int_equal(ok, 1);
    assert_true(fabs(dr[0] - (-1.0 / (1 + exp(1.0)) / 2)) < 1e-7);
    assert_true(fabs(dr[1] + dr[0]) < 1e-12);
    assert_true(fabs(dr[2] - (-1.0 / (1 + exp(-3.5)) / 2)) < 1e-7);
    /* extreme rewards: finite loss, no NaN */
    float big[2] = {-1e4f, 1e4f};
    assert_true(fabs(trn_reward_bt_loss(big, NULL, 1, dr, NULL) - 2e4) < 1e-6);
    big[0] = 1e4f, big[1] = -1e4f;
    assert_true(trn_reward_bt_loss(big, NULL, 1, dr, NULL) == 0 && dr[0] == 0);
    float tie[2] = {1, 1};
    trn_reward_bt_loss(tie, NULL, 1, NULL, &ok);
    assert_int_equal(ok, 0); /* a tie is not a correct ranking */
}

/* ---- gradients -------------------------------------------------------------- */

static double batch_loss(trn_reward *rm, const pref_batch *pb, const float *margins)
{
    trn_reward_stats st;
    if (trn_reward_pairs(rm, pb, margins, false, &st, err, sizeof err))
        fail_msg("%s", err);
    return st.loss;
}

typedef struct bl_ctx {
    trn_reward *rm;
    const pref_batch *pb;
    const float *margins;
} bl_ctx;

static double bl_loss(void *p)
{
    bl_ctx *c = p;
    return batch_loss(c->rm, c->pb, c->margins);
}

static void check_gradients(const char *rel, unsigned targets)
{
    model *m = load_shared(rel);
    if (!m)
        skip();
    trn_reward *rm = new_rm(m, targets, 3);
    randomize(rm, 4, 0.2);
    pref_set s = {0};
    small_pairs(&s);
    int idx[3] = {0, 1, 2};
    float margins[3] = {0, 0.5f, -0.25f};
    pref_batch pb = {0};
    assert_int_equal(pref_batch_make(&pb, &s, idx, 3, err, sizeof err), 0);
    trn_params ps = {0};
    assert_int_equal(trn_reward_params(rm, &ps), 0);
    assert_string_equal(ps.p[0].name, "score.weight");
    assert_true(ps.n > 2); /* the adapter's A and B follow */
    trn_params_zero_grad(&ps);
    trn_reward_stats st;
    assert_int_equal(trn_reward_pairs(rm, &pb, margins, true, &st, err, sizeof err), 0);
    assert_int_equal(st.n_pairs, 3);
    rng r;
    rng_seed(&r, 9);
    bl_ctx c = {.rm = rm, .pb = &pb, .margins = margins};
    double biggest = tu_model_fd_check(&ps, bl_loss, &c, &r, 4, 1e-2f, 1e-4, 2e-2, rel);
    assert_true(biggest > 1e-2); /* the check compared real gradients */
    trn_params_free(&ps);
    pref_batch_free(&pb);
    pref_set_free(&s);
    trn_reward_free(rm);
    model_free(m);
}

static void test_gradients_gpt2(void **state)
{
    (void)state;
    check_gradients("conformance/gpt2-tiny", 1u << TRN_LORA_QKV);
}

static void test_gradients_llama(void **state)
{
    (void)state;
    check_gradients("conformance/llama-tiny/model-f32.gguf",
                    1u << TRN_LORA_Q | 1u << TRN_LORA_V);
}

/* ---- padding ---------------------------------------------------------------- */

static void check_padding(const char *rel, unsigned targets)
{
    model *m = load_shared(rel);
    if (!m)
        skip();
    trn_reward *rm = new_rm(m, targets, 5);
    randomize(rm, 6, 0.1);
    int32_t s0[] = {40, 588, 257, 3290, 50, 13, 9}, s1[] = {464, 3139},
            s2[] = {5, 12, 13, 14, 15};
    const int32_t *seqs[3] = {s0, s1, s2};
    int lens[3] = {7, 2, 5};
    float alone[3], batched[3], scored[3];
    for (int i = 0; i < 3; i++) {
        trn_batch b = {.B = 1, .L = lens[i], .tokens = seqs[i]};
        assert_int_equal(trn_reward_forward(rm, &b, &alone[i], err, sizeof err), 0);
    }
    /* one right-padded batch, the pads set to a real token (7) */
    int32_t toks[3 * 7], blens[3] = {7, 2, 5};
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 7; j++)
            toks[i * 7 + j] = j < lens[i] ? seqs[i][j] : 7;
    trn_batch b = {.B = 3, .L = 7, .tokens = toks, .lens = blens};
    assert_int_equal(trn_reward_forward(rm, &b, batched, err, sizeof err), 0);
    assert_int_equal(trn_reward_score(rm, seqs, lens, 3, scored, err, sizeof err), 0);
    for (int i = 0; i < 3; i++) {
        if (fabsf(alone[i] - batched[i]) > 1e-5f || fabsf(alone[i] - scored[i]) > 1e-5f)
            fail_msg("%s seq %d: alone %.7f, padded batch %.7f, scored %.7f", rel, i, alone[i],
                     batched[i], scored[i]);
    }
    /* the reward of a sequence is not the reward of its padded tail */
    trn_batch full = {.B = 1, .L = 7, .tokens = toks + 7};
    float tail;
    assert_int_equal(trn_reward_forward(rm, &full, &tail, err, sizeof err), 0);
    assert_true(fabsf(tail - alone[1]) > 1e-4f);
    trn_reward_free(rm);
    model_free(m);
}

static void test_padding_gpt2(void **state)
{
    (void)state;
    check_padding("conformance/gpt2-tiny", 1u << TRN_LORA_QKV);
}

static void test_padding_llama(void **state)
{
    (void)state;
    check_padding("conformance/llama-tiny/model-f32.gguf", 0);
}

/* Enough sequences for several scoring passes: every one as scored alone. */
static void test_score_passes(void **state)
{
    (void)state;
    model *m = load_shared("conformance/gpt2-tiny");
    if (!m)
        skip();
    trn_reward *rm = new_rm(m, 0, 8);
    enum { N = 150 };
    int32_t *seqs[N];
    int lens[N];
    float all[N];
    rng r;
    rng_seed(&r, 10);
    for (int i = 0; i < N; i++) {
        lens[i] = 1 + (int)rng_below(&r, i % 10 == 0 ? 200 : 20);
        seqs[i] = malloc((size_t)lens[i] * sizeof(int32_t));
        for (int j = 0; j < lens[i]; j++)
            seqs[i][j] = (int32_t)rng_below(&r, 50257);
    }
    assert_int_equal(trn_reward_score(rm, (const int32_t *const *)seqs, lens, N, all, err,
                                      sizeof err), 0);
    for (int i = 0; i < N; i += 7) {
        float one;
        assert_int_equal(trn_reward_score(rm, (const int32_t *const *)&seqs[i], &lens[i], 1,
                                          &one, err, sizeof err), 0);
        assert_true(fabsf(one - all[i]) <= 1e-5f);
    }
    int bad_len = 0;
    assert_int_equal(trn_reward_score(rm, (const int32_t *const *)seqs, &bad_len, 1, all, err,
                                      sizeof err), -EINVAL);
    assert_non_null(strstr(err, "sequence 0"));
    for (int i = 0; i < N; i++)
        free(seqs[i]);
    trn_reward_free(rm);
    model_free(m);
}

/* ---- a synthetic task ----------------------------------------------------------- */

static const char *const WORDS[] = {"the", "a", "blue", "house", "runs", "slowly", "over",
                                    "river", "today", "small", "cat", "green", "book", "is",
                                    "near", "door", "tree", "walks", "under", "light"};
#define N_WORDS (int)(sizeof WORDS / sizeof WORDS[0])

/* n words at random, one of them replaced by `key` when key is not NULL. */
static void words(rng *r, int n, const char *key, int key_at, char *out, size_t cap)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *w = i == key_at && key ? key : WORDS[rng_below(r, N_WORDS)];
        size_t l = strlen(out);
        snprintf(out + l, cap - l, "%s%s", i ? " " : "", w);
    }
}

/* Chosen and rejected share every word but one: " great" in chosen, a
 * neutral word in rejected, so only that token tells them apart. */
static void synth_pairs(pref_set *s, const pref_tok *pt, int n, uint64_t seed)
{
    pref_opts o;
    pref_opts_default(&o);
    rng r;
    rng_seed(&r, seed);
    char prompt[256], chosen[256], rejected[256];
    for (int i = 0; i < n; i++) {
        words(&r, 3 + (int)rng_below(&r, 4), NULL, -1, prompt, sizeof prompt);
        int len = 3 + (int)rng_below(&r, 5), at = (int)rng_below(&r, (uint64_t)len);
        rng keep = r;
        words(&r, len, "great", at, chosen, sizeof chosen);
        r = keep; /* the same words again, with a neutral one at `at` */
        words(&r, len, WORDS[i % N_WORDS], at, rejected, sizeof rejected);
        if (pref_add_text(s, pt, prompt, chosen, rejected, i % 5 == 0, 0.0f, &o, err,
                          sizeof err))
            fail_msg("%s", err);
    }
}

static void test_learns_synthetic_preference(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    tok *t = NULL;
    tok_err te = {0};
    if (tok_load(&t, path, &te))
        fail_msg("%s", te.msg);
    free(path);
    pref_tok pt = {.t = t, .add_bos = tok_adds_bos(t), .eos_id = tok_eos(t)};
    pref_set s = {0};
    synth_pairs(&s, &pt, 300, 21);
    assert_int_equal(s.n, 300);
    assert_int_equal(s.n_eval, 60);
    trn_reward *rm = new_rm(m, 1u << TRN_LORA_QKV, 1);
    trn_reward_train_cfg tc = {.epochs = 6, .batch = 16, .seed = 2,
                               .optim = trn_optim_cfg_default()};
    tc.optim.sched.lr = 3e-3;
    tc.optim.weight_decay = 0;
    double acc0, loss0;
    assert_int_equal(trn_reward_evaluate(rm, &s, true, 32, &loss0, &acc0, err, sizeof err), 0);
    trn_reward_result res;
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    if (trn_reward_train(rm, &s, &tc, NULL, NULL, &res, err, sizeof err))
        fail_msg("%s", err);
    fprintf(stderr, "reward training: %lld steps over %d pairs in %.2f s (%.2f s CPU); eval "
            "accuracy %.3f -> %.3f, loss %.4f -> %.4f\n", (long long)res.steps, res.n_train,
            res.seconds, (double)clock() / CLOCKS_PER_SEC - t0, acc0, res.eval_accuracy, loss0,
            res.eval_loss);
    assert_int_equal(res.n_train, 240);
    assert_int_equal(res.steps, 6 * 15);
    if (!(res.eval_accuracy >= 0.9))
        fail_msg("eval accuracy %.3f after training, want >= 0.9", res.eval_accuracy);
    assert_true(res.eval_loss < loss0);
    pref_set_free(&s);
    trn_reward_free(rm);
    tok_free(t);
    model_free(m);
}

/* ---- files ------------------------------------------------------------------------ */

/* Saves a model (LoRA B and head random, so both matter), loads it back
 * and compares scores bit for bit. */
static void round_trip(const char *rel, unsigned targets)
{
    model *m = load_shared(rel);
    if (!m)
        skip();
    trn_reward *rm = new_rm(m, targets, 12);
    randomize(rm, 13, 0.1);
    char dir[] = "/tmp/test_reward_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[64];
    snprintf(sub, sizeof sub, "%s/a/rm", dir); /* save creates the folders */
    json_t *extra = json_pack("{s:i, s:f}", "max_length", 128, "eval_accuracy", 0.75);
    if (trn_reward_save(rm, sub, "tiny", extra, err, sizeof err))
        fail_msg("save: %s", err);
    json_decref(extra);
    int32_t s0[] = {40, 588, 257, 3290}, s1[] = {464, 3139, 286};
    const int32_t *seqs[2] = {s0, s1};
    int lens[2] = {4, 3};
    float a[2], b[2];
    assert_int_equal(trn_reward_score(rm, seqs, lens, 2, a, err, sizeof err), 0);
    trn_reward *back;
    json_t *cfg;
    if (trn_reward_load(&back, m, sub, &cfg, err, sizeof err))
        fail_msg("load: %s", err);
    assert_int_equal(json_integer_value(json_object_get(cfg, "max_length")), 128);
    assert_string_equal(json_string_value(json_object_get(cfg, "base_model")), "tiny");
    assert_int_equal(json_is_true(json_object_get(cfg, "lora")), targets != 0);
    assert_int_equal(trn_reward_lora(back) != NULL, targets != 0);
    json_decref(cfg);
    assert_int_equal(trn_reward_score(back, seqs, lens, 2, b, err, sizeof err), 0);
    if (memcmp(a, b, sizeof a))
        fail_msg("%s: scores %.9g %.9g before saving, %.9g %.9g after loading", rel, a[0], a[1],
                 b[0], b[1]);
    trn_reward_free(back);
    const char *files[] = {"reward_head.safetensors", "reward_config.json",
                           "adapter_model.safetensors", "adapter_config.json"};
    char path[160];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s", sub, files[i]);
        assert_int_equal(unlink(path) == 0, i < 2 || targets != 0);
    }
    snprintf(path, sizeof path, "%s/a", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(rmdir(dir), 0);
    trn_reward_free(rm);
    model_free(m);
}

static void test_save_load_round_trip(void **state)
{
    (void)state;
    round_trip("conformance/gpt2-tiny", 0);
    round_trip("conformance/gpt2-tiny", 1u << TRN_LORA_QKV);
    /* a GGUF llama: q rows are stored in Hugging Face's order and permuted back */
    round_trip("conformance/llama-tiny/model-f32.gguf", 1u << TRN_LORA_Q | 1u << TRN_LORA_V);
}

/* A folder that does not fit the model, or lacks its head, is refused
 * naming the problem. */
static void test_load_refusals(void **state)
{
    (void)state;
    model *m = load_shared("conformance/gpt2-tiny");
    if (!m)
        skip();
    trn_reward *rm = new_rm(m, 0, 1), *back = (trn_reward *)1;
    char dir[] = "/tmp/test_reward_XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(trn_reward_save(rm, dir, NULL, NULL, err, sizeof err), 0);
    model *ll = load_shared("conformance/llama-tiny/model-f32.gguf");
    assert_int_equal(trn_reward_load(&back, ll, dir, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "gpt2"));
    assert_non_null(strstr(err, "llama"));
    assert_null(back);
    model_free(ll);
    char path[128];
    snprintf(path, sizeof path, "%s/reward_head.safetensors", dir);
    unlink(path);
    assert_true(trn_reward_load(&back, m, dir, NULL, err, sizeof err) < 0);
    assert_non_null(strstr(err, "reward_head.safetensors"));
    snprintf(path, sizeof path, "%s/reward_config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"format\": \"something-else\"}", f);
    fclose(f);
    assert_int_equal(trn_reward_load(&back, m, dir, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "not an alignd reward model"));
    unlink(path);
    assert_int_equal(rmdir(dir), 0);
    trn_reward_free(rm);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bt_loss_closed_form),
        cmocka_unit_test(test_gradients_gpt2),
        cmocka_unit_test(test_gradients_llama),
        cmocka_unit_test(test_padding_gpt2),
        cmocka_unit_test(test_padding_llama),
        cmocka_unit_test(test_score_passes),
        cmocka_unit_test(test_learns_synthetic_preference),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_load_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
