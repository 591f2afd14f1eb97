/* test_model_dpo.c - DPO (trn_dpo.h):
 *   - the three losses and their derivatives (finite differences), ln 2 at
 *     z = 0 for the sigmoid loss;
 *   - the conformance reference (../shared/conformance/gpt2-tiny): the DPO
 *     loss with the given LoRA delta and ln 2 when policy = reference, both
 *     through trn_dpo's cached reference and eval pass;
 *   - DPO + the RPO term (rpo_alpha): the backward pass's LoRA gradients
 *     against central finite differences of the loss the eval pass reports,
 *     and the loss = DPO loss + alpha x nll_loss;
 *   - end to end on stories260K (../shared/models): the base model's own
 *     samples after "<name> felt", preferred when they say "happy"; after a
 *     short DPO run the implicit reward accuracy on held-out pairs (unseen
 *     names) is >= 0.9, and sampling from the adapted model says "happy"
 *     clearly more often than the base model over many seeded samples. */
#include "tu_model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "pref.h"
#include "rng.h"
#include "tok_load.h"
#include "trn_dpo.h"

static char err[512];

static void test_losses(void **state)
{
    (void)state;
    trn_dpo_cfg c;
    trn_dpo_cfg_default(&c);
    double dz;
    assert_true(fabs(trn_dpo_pair_loss(&c, 0, &dz) - log(2)) < 1e-15);
    for (int l = 0; l < 3; l++)
        for (int ls = 0; ls < 2; ls++) {
            c.loss = (trn_dpo_loss)l;
            c.label_smoothing = ls ? 0.2 : 0;
            for (double z = -30; z <= 30; z += 7.3) {
                double d0, d1, d2;
                trn_dpo_pair_loss(&c, z, &d0);
                double h = 1e-5;
                double num = (trn_dpo_pair_loss(&c, z + h, &d1) -
                              trn_dpo_pair_loss(&c, z - h, &d2)) / (2 * h);
                if (fabs(num - d0) > 1e-6 * fmax(1, fabs(num)))
                    fail_msg("%s ls %g z %g: dz %g, numeric %g", trn_dpo_loss_name(c.loss),
                             c.label_smoothing, z, d0, num);
            }
        }
    trn_dpo_loss l;
    assert_int_equal(trn_dpo_loss_parse("ipo", &l), 0);
    assert_int_equal(l, TRN_DPO_IPO);
    assert_int_equal(trn_dpo_loss_parse("kto", &l), -EINVAL);
}

/* ---- the conformance reference ---------------------------------------------- */

static void add_ids(pref_set *s, json_t *pair)
{
    int np, nc, nr;
    int32_t *p = tu_model_json_ids(json_object_get(pair, "prompt_ids"), &np);
    int32_t *c = tu_model_json_ids(json_object_get(pair, "chosen_ids"), &nc);
    int32_t *r = tu_model_json_ids(json_object_get(pair, "rejected_ids"), &nr);
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->p = realloc(s->p, (size_t)s->cap * sizeof(pref_pair));
    }
    pref_pair *q = &s->p[s->n++];
    memset(q, 0, sizeof(*q));
    q->ids = malloc((size_t)(np + nc + nr) * sizeof(int32_t));
    memcpy(q->ids, p, (size_t)np * 4);
    memcpy(q->ids + np, c, (size_t)nc * 4);
    memcpy(q->ids + np + nc, r, (size_t)nr * 4);
    q->n_prompt = np, q->n_chosen = nc, q->n_rejected = nr;
    free(p), free(c), free(r);
}

static void load_lora(trn_lora *lo, const char *case_name)
{
    char *dir = tu_shared_path("conformance/gpt2-tiny/dpo");
    char path[600];
    for (int l = 0; l < 2; l++)
        for (int t = 0; t < 2; t++)
            for (int ab = 0; ab < 2; ab++) {
                trn_lora_site *s = trn_lora_site_at(lo, l, t ? TRN_LORA_V : TRN_LORA_Q);
                snprintf(path, sizeof path, "%s/%s/h.%d.attn.%s.lora_%s.npy", dir, case_name, l,
                         t ? "v" : "q", ab ? "B" : "A");
                npy_array a;
                npy_error e = {0};
                if (npy_load(&a, path, &e))
                    fail_msg("%s", e.msg);
                float *dst = ab ? s->B : s->A;
                for (size_t i = 0; i < a.n_elements; i++)
                    dst[i] = (float)npy_get(&a, i);
                npy_free(&a);
            }
    free(dir);
}

static void test_reference_loss(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/dpo_reference.json");
    if (!path)
        skip();
    json_t *ref = json_load_file(path, 0, NULL);
    free(path);
    path = tu_shared_path("conformance/gpt2-tiny");
    model *m = tu_model_load(path, NULL);
    free(path);
    json_t *cases = json_object_get(ref, "cases");
    pref_set s = {0};
    json_t *pairs = json_object_get(json_object_get(cases, "lora"), "pairs");
    for (size_t i = 0; i < json_array_size(pairs); i++)
        add_ids(&s, json_array_get(pairs, i));
    const char *names[2] = {"lora", "lora_B_zero"};
    for (int k = 0; k < 2; k++) {
        trn_dec *d;
        trn_lora *lo;
        trn_lora_cfg lc = {.rank = 4, .alpha = 8, .seed = 1,
                           .targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_V};
        assert_int_equal(trn_dec_from_model(&d, m, err, sizeof err), 0);
        assert_int_equal(trn_lora_new(&lo, MODEL_ARCH_GPT2, model_hp(m), &lc, err, sizeof err),
                         0);
        load_lora(lo, names[k]);
        trn_dpo_cfg c;
        trn_dpo_cfg_default(&c);
        c.batch = 2; /* the reference pass and eval run in two batches */
        trn_dpo t;
        if (trn_dpo_init(&t, d, lo, &s, &c, err, sizeof err))
            fail_msg("%s", err);
        trn_dpo_metrics mt;
        assert_int_equal(trn_dpo_eval(&t, true, &mt, err, sizeof err), 0);
        double want = json_real_value(json_object_get(json_object_get(cases, names[k]), "loss"));
        if (fabs(mt.loss - want) > 1e-6)
            fail_msg("%s: DPO loss %.9f, reference %.9f", names[k], mt.loss, want);
        assert_int_equal(mt.n, 3);
        if (k == 1) /* B = 0: the policy is the reference (up to batch padding) */
            assert_true(fabs(mt.loss - log(2)) < 1e-6 && fabs(mt.rewards_margins) < 1e-5);
        trn_dpo_free(&t);
        trn_lora_free(lo);
        trn_dec_free(d);
    }
    pref_set_free(&s);
    model_free(m);
    json_decref(ref);
}

/* Loss of the train pairs (eval pass) with the adapter as it stands. */
static double rpo_loss(trn_dpo *t, trn_dpo_metrics *m)
{
    if (trn_dpo_eval(t, true, m, err, sizeof err))
        fail_msg("%s", err);
    return m->loss;
}

static void test_rpo_gradients(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/dpo_reference.json");
    if (!path)
        skip();
    json_t *ref = json_load_file(path, 0, NULL);
    free(path);
    path = tu_shared_path("conformance/gpt2-tiny");
    model *m = tu_model_load(path, NULL);
    free(path);
    pref_set s = {0};
    json_t *pairs = json_object_get(json_object_get(json_object_get(ref, "cases"), "lora"),
                                    "pairs");
    for (size_t i = 0; i < json_array_size(pairs); i++)
        add_ids(&s, json_array_get(pairs, i));
    trn_dec *d;
    trn_lora *lo;
    trn_lora_cfg lc = {.rank = 4, .alpha = 8, .seed = 1,
                       .targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_V};
    assert_int_equal(trn_dec_from_model(&d, m, err, sizeof err), 0);
    assert_int_equal(trn_lora_new(&lo, MODEL_ARCH_GPT2, model_hp(m), &lc, err, sizeof err), 0);
    load_lora(lo, "lora"); /* B != 0: every gradient is live */
    trn_dpo_cfg c;
    trn_dpo_cfg_default(&c);
    c.batch = 3; /* one micro-batch holds the three pairs */
    c.rpo_alpha = 0.7;
    c.optim.sched.lr = 0; /* the step leaves the weights; its gradients stay */
    c.optim.max_grad_norm = 0;
    trn_dpo t;
    if (trn_dpo_init(&t, d, lo, &s, &c, err, sizeof err))
        fail_msg("%s", err);
    trn_dpo_metrics mt, m0;
    trn_optim_stats st;
    assert_int_equal(trn_dpo_step(&t, &mt, &st, err, sizeof err), 0);
    double loss = rpo_loss(&t, &mt);
    t.cfg.rpo_alpha = 0;
    double dpo_only = rpo_loss(&t, &m0);
    t.cfg.rpo_alpha = c.rpo_alpha;
    assert_true(mt.nll_loss > 0 && fabs(mt.nll_loss - m0.nll_loss) < 1e-12);
    assert_true(fabs(loss - (dpo_only + c.rpo_alpha * mt.nll_loss)) < 1e-9);

    /* the largest gradient of each parameter against central differences */
    double gmax = 0;
    for (int i = 0; i < t.ps.n; i++)
        for (size_t j = 0; j < t.ps.p[i].n; j++)
            gmax = fmax(gmax, fabs(t.ps.p[i].grad[j]));
    assert_true(gmax > 0);
    for (int i = 0; i < t.ps.n; i++) {
        trn_param *p = &t.ps.p[i];
        size_t jm = 0;
        for (size_t j = 1; j < p->n; j++)
            if (fabs(p->grad[j]) > fabs(p->grad[jm]))
                jm = j;
        float v = p->value[jm], h = 1e-2f;
        p->value[jm] = v + h;
        double lp = rpo_loss(&t, &mt);
        p->value[jm] = v - h;
        double lm = rpo_loss(&t, &mt);
        p->value[jm] = v;
        double num = (lp - lm) / (2.0 * h);
        if (fabs(num - p->grad[jm]) > 2e-2 * gmax + 1e-4)
            fail_msg("%s[%zu]: gradient %.6f, finite differences %.6f", p->name, jm,
                     p->grad[jm], num);
    }
    trn_dpo_free(&t);
    trn_lora_free(lo);
    trn_dec_free(d);
    pref_set_free(&s);
    model_free(m);
    json_decref(ref);
}

/* ---- end to end on stories260K ---------------------------------------------- */

static const char *const NAMES[] = {"Lily", "Tom", "Ben", "Mia", "Sam", "Anna", "Max", "Sue",
                                    "Tim", "Zoe", "Jack", "Lucy"};
static const char *const THINGS[] = {"ball", "cat", "dog", "box", "toy", "cake", "car",
                                     "flower", "bird", "tree"};

/* Samples n_gen tokens (temperature 1) after ids[0..np) into ids[np..). */
static void sample(model *m, kv_cache *kv, float *logits, int32_t *ids, int np, int n_gen,
                   rng *r)
{
    int V = model_hp(m)->n_vocab;
    kv_seq_clear(kv, 0);
    tu_model_feed(m, kv, 0, ids, np, 0, logits);
    for (int g = 0; g < n_gen; g++) {
        double mx = logits[0], sum = 0;
        for (int v = 1; v < V; v++)
            mx = fmax(mx, logits[v]);
        for (int v = 0; v < V; v++)
            sum += exp(logits[v] - mx);
        double u = rng_uniform(r) * sum;
        int pick = 0;
        for (; pick < V - 1 && (u -= exp(logits[pick] - mx)) > 0; pick++)
            ;
        ids[np + g] = pick;
        if (g + 1 < n_gen)
            tu_model_feed(m, kv, 0, &ids[np + g], 1, np + g, logits);
    }
}

static bool says_happy(tok *t, const int32_t *ids, int n)
{
    char text[512];
    size_t len = 0;
    tok_err te = {0};
    tok_decode(t, ids, (size_t)n, 0, text, sizeof text - 1, &len, &te);
    text[len] = '\0';
    return strstr(text, "happy") != NULL;
}

static int encode_prompt(tok *t, int name, int thing, int32_t *ids)
{
    char prompt[160];
    snprintf(prompt, sizeof prompt, "Once upon a time, %s found a %s. %s felt", NAMES[name],
             THINGS[thing], NAMES[name]);
    size_t np = 0;
    tok_err te = {0};
    tok_encode(t, prompt, strlen(prompt), TOK_ENC_ADD_SPECIAL, ids, 64, &np, &te);
    return (int)np;
}

static void push_pair(pref_set *s, const int32_t *prompt, int np, const int32_t *c, int nc,
                      const int32_t *r, int nr, bool eval)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->p = realloc(s->p, (size_t)s->cap * sizeof(pref_pair));
    }
    pref_pair *q = &s->p[s->n++];
    memset(q, 0, sizeof(*q));
    q->ids = malloc((size_t)(np + nc + nr) * sizeof(int32_t));
    memcpy(q->ids, prompt, (size_t)np * 4);
    memcpy(q->ids + np, c, (size_t)nc * 4);
    memcpy(q->ids + np + nc, r, (size_t)nr * 4);
    q->n_prompt = np, q->n_chosen = nc, q->n_rejected = nr, q->eval = eval;
    s->n_eval += eval;
}

#define GEN 8

/* The synthetic preference rule, on the base model's own samples: after
 * "<name> felt", a continuation that says "happy" is preferred to one that
 * does not. Per prompt, 6 samples; each sample without "happy" is rejected
 * against one with it (a sampled one, else a written one). Names 9..11 are
 * held out. */
static void make_pairs(pref_set *s, model *m, tok *t)
{
    int V = model_hp(m)->n_vocab;
    kv_cache *kv = tu_model_kv(m, 1);
    float *logits = malloc((size_t)V * sizeof(float));
    rng r;
    rng_seed(&r, 5);
    int32_t ids[6][96], written[16];
    size_t nw = 0;
    tok_err te = {0};
    tok_encode(t, "happy and smiled.", 17, 0, written, 16, &nw, &te);
    for (int n = 0; n < 12; n++)
        for (int th = 0; th < 10; th += 2) {
            int np = encode_prompt(t, n, th, ids[0]), good = -1;
            for (int k = 0; k < 6; k++) {
                memcpy(ids[k], ids[0], (size_t)np * 4);
                sample(m, kv, logits, ids[k], np, GEN, &r);
                if (good < 0 && says_happy(t, ids[k] + np, GEN))
                    good = k;
            }
            for (int k = 0; k < 6; k++)
                if (!says_happy(t, ids[k] + np, GEN))
                    push_pair(s, ids[0], np, good >= 0 ? ids[good] + np : written,
                              good >= 0 ? GEN : (int)nw, ids[k] + np, GEN, n >= 9);
        }
    free(logits);
    kv_free(kv);
}

/* Share of n samples after prompts with held-out names that say "happy". */
static double happy_share(model *m, tok *t, int n)
{
    int V = model_hp(m)->n_vocab, hits = 0;
    kv_cache *kv = tu_model_kv(m, 1);
    float *logits = malloc((size_t)V * sizeof(float));
    rng r;
    rng_seed(&r, 77);
    int32_t ids[96];
    for (int k = 0; k < n; k++) {
        int np = encode_prompt(t, 9 + k % 3, k % 10, ids);
        sample(m, kv, logits, ids, np, GEN, &r);
        hits += says_happy(t, ids + np, GEN);
    }
    free(logits);
    kv_free(kv);
    return (double)hits / n;
}

static void test_stories_happy(void **state)
{
    (void)state;
    char *path = tu_shared_path("models/stories260K.gguf");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    tok *t = NULL;
    tok_err te = {0};
    if (tok_load(&t, path, &te))
        fail_msg("%s", te.msg);
    free(path);
    pref_set s = {0};
    make_pairs(&s, m, t);
    assert_true(s.n_eval >= 10 && s.n - s.n_eval >= 60);

    trn_dec *d;
    trn_lora *lo;
    trn_lora_cfg lc = {.rank = 8, .alpha = 16, .seed = 3, .targets = TRN_LORA_ALL};
    assert_int_equal(trn_dec_from_model(&d, m, err, sizeof err), 0);
    assert_int_equal(trn_lora_new(&lo, MODEL_ARCH_LLAMA, model_hp(m), &lc, err, sizeof err), 0);
    trn_dpo_cfg c;
    trn_dpo_cfg_default(&c);
    c.batch = 8;
    c.epochs = 4;
    c.optim.sched.lr = 2e-3;
    c.rpo_alpha = 1; /* plain DPO at this rate may push "happy" down too (CPU-dependent) */
    trn_dpo tr;
    if (trn_dpo_init(&tr, d, lo, &s, &c, err, sizeof err))
        fail_msg("%s", err);
    trn_dpo_metrics before, after;
    trn_dpo_eval(&tr, false, &before, err, sizeof err);
    /* B = 0 at init: the DPO part is ln 2 */
    assert_true(fabs(before.loss - c.rpo_alpha * before.nll_loss - log(2)) < 1e-6);
    if (trn_dpo_run(&tr, NULL, NULL, &after, err, sizeof err))
        fail_msg("%s", err);
    fprintf(stderr, "stories260K DPO: %lld steps, eval loss %.4f -> %.4f, accuracy %.2f, "
            "margin %.3f\n", (long long)tr.steps, before.loss, after.loss,
            after.rewards_accuracies, after.rewards_margins);
    assert_true(after.rewards_accuracies >= 0.9);
    assert_true(after.loss < before.loss);
    assert_true(after.nll_loss < before.nll_loss + 0.5); /* the chosen stay likely */

    double base = happy_share(m, t, 100);
    model_decoder_view v;
    model_decoder_view_get(m, &v);
    trn_lora_merge(lo, &v, 1.0f);
    double tuned = happy_share(m, t, 100);
    fprintf(stderr, "stories260K DPO: samples saying happy: base %.2f, adapted %.2f\n", base,
            tuned);
    assert_true(tuned >= base + 0.3);
    trn_dpo_free(&tr);
    trn_lora_free(lo);
    trn_dec_free(d);
    pref_set_free(&s);
    tok_free(t);
    model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_reference_loss),
        cmocka_unit_test(test_rpo_gradients),
        cmocka_unit_test(test_stories_happy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
