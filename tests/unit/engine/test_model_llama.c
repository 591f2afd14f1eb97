/* test_model_llama.c - the llama forward pass against reference outputs:
 * ../shared/conformance/llama-tiny (HF transformers logits and greedy
 * continuations; loaded from the HF folder and from model-f32.gguf),
 * ../shared/models/stories260K.gguf (llama.cpp greedy continuations), a
 * batch of interleaved sequences against each sequence alone, chunking, and
 * the rejection of bad batches. */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "npy.h"

#define LOGIT_TOL 1e-4
#define BATCH_TOL 1e-5

/* ---- helpers ------------------------------------------------------------- */

static model *load_or_fail(const char *path, const model_opts *opts) {
    char err[512] = "";
    model *m = NULL;
    if (model_load_opts(&m, path, opts, err, sizeof err) != 0) fail_msg("load %s: %s", path, err);
    return m;
}

static kv_cache *kv_or_fail(const model *m, int n_seq) {
    char err[256] = "";
    kv_cache *kv = NULL;
    if (model_kv_create(m, n_seq, 0, 0, &kv, err, sizeof err) != 0) fail_msg("kv: %s", err);
    return kv;
}

/* Feeds ids[0..n) to sequence seq from position pos0; logits of the last. */
static void feed(model *m, kv_cache *kv, int seq, const int32_t *ids, int n, int pos0,
                 float *logits) {
    int32_t *pos = malloc((size_t)n * sizeof *pos), *sid = malloc((size_t)n * sizeof *sid);
    assert_non_null(pos);
    assert_non_null(sid);
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sid[i] = seq;
    }
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid, .logits = NULL};
    char err[256] = "";
    if (kv_seq_reserve(kv, seq, pos0 + n) != 0) fail_msg("kv: cannot reserve %d positions", pos0 + n);
    if (model_forward(m, kv, &b, logits, err, sizeof err) != 0) fail_msg("forward: %s", err);
    free(pos);
    free(sid);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

static int32_t *json_ids(json_t *arr, int *n) {
    assert_true(json_is_array(arr));
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

/* Greedy continuation of n_gen tokens from logits of the prompt's last
 * position (seq 0, prompt length n); compares with want. */
static void greedy_check(model *m, kv_cache *kv, float *logits, int n, const int32_t *want,
                         int n_gen, const char *label) {
    int V = model_hp(m)->n_vocab;
    for (int j = 0; j < n_gen; j++) {
        int32_t tok = argmax(logits, V);
        if (tok != want[j])
            fail_msg("%s: greedy step %d: got %d, want %d", label, j, tok, want[j]);
        if (j + 1 < n_gen) feed(m, kv, 0, &tok, 1, n + j, logits);
    }
}

/* The HF conformance folder: last logits within LOGIT_TOL and the 16-token
 * greedy continuation, for each of the 4 prompts. */
static void check_conformance(const char *dir_rel, const char *model_file) {
    char *dir = tu_shared_path(dir_rel);
    if (!dir) skip();
    char path[1024], refp[1024], npyp[1024];
    if (model_file)
        snprintf(path, sizeof path, "%s/%s", dir, model_file);
    else
        snprintf(path, sizeof path, "%s", dir);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    snprintf(npyp, sizeof npyp, "%s/last_logits.npy", dir);
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    npy_array last;
    npy_error ne = {0};
    if (npy_load(&last, npyp, &ne) != 0) fail_msg("%s", ne.msg);

    model *m = load_or_fail(path, NULL);
    int V = model_hp(m)->n_vocab;
    assert_int_equal(last.shape[1], V);
    kv_cache *kv = kv_or_fail(m, 1);
    float *logits = malloc((size_t)V * sizeof(float));
    assert_non_null(logits);
    json_t *prompts = json_object_get(ref, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    double worst = 0.0;
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        json_t *p = json_array_get(prompts, i);
        int n, ng;
        int32_t *ids = json_ids(json_object_get(p, "input_ids"), &n);
        int32_t *greedy = json_ids(json_object_get(p, "greedy_ids"), &ng);
        kv_seq_clear(kv, 0);
        feed(m, kv, 0, ids, n, 0, logits);
        const float *want = npy_f32(&last) + i * (size_t)V;
        double mx = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, fabs((double)logits[v] - want[v]));
        worst = fmax(worst, mx);
        if (mx > LOGIT_TOL) fail_msg("%s prompt %zu: max abs logit error %g", path, i, mx);
        char label[1100];
        snprintf(label, sizeof label, "%s prompt %zu", path, i);
        greedy_check(m, kv, logits, n, greedy, ng, label);
        free(ids);
        free(greedy);
    }
    printf("  %s: max abs logit error %.3g over 4 prompts; greedy continuations match\n", path,
           worst);
    free(logits);
    kv_free(kv);
    model_free(m);
    npy_free(&last);
    json_decref(ref);
    free(dir);
}

/* ---- tests --------------------------------------------------------------- */

static void test_llama_tiny_gguf(void **state) {
    (void)state;
    check_conformance("conformance/llama-tiny", "model-f32.gguf");
}

static void test_llama_tiny_hf(void **state) {
    (void)state;
    check_conformance("conformance/llama-tiny", NULL);
}

static void test_hparams(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path) skip();
    model *g = load_or_fail(path, NULL);
    free(path);
    path = tu_shared_path("conformance/llama-tiny");
    model *h = load_or_fail(path, NULL);
    free(path);
    const model_hparams *a = model_hp(g), *b = model_hp(h);
    assert_int_equal(model_arch(g), MODEL_ARCH_LLAMA);
    assert_int_equal(model_fmt(g), MODEL_FMT_GGUF);
    assert_int_equal(model_fmt(h), MODEL_FMT_HF);
    assert_int_equal(a->n_vocab, 32000);
    assert_int_equal(a->n_embd, 32);
    assert_int_equal(a->n_layer, 2);
    assert_int_equal(a->n_head, 4);
    assert_int_equal(a->n_head_kv, 2);
    assert_int_equal(a->head_dim, 8);
    assert_int_equal(a->n_ff, 128);
    assert_int_equal(a->n_ctx_train, 512);
    assert_true(fabs(a->rope_theta - 500000.0) < 1e-6);
    assert_true(fabs(a->norm_eps - 1e-5f) < 1e-9);
    assert_int_equal(a->bos_id, 1);
    assert_int_equal(a->eos_id, 2);
    assert_false(a->tied_output);
    assert_int_equal(a->rope_layout, OPS_ROPE_ADJACENT);
    assert_int_equal(b->rope_layout, OPS_ROPE_HALF);
    assert_int_equal(b->n_head_kv, 2);
    assert_true(fabs(b->rope_theta - 500000.0) < 1e-6);
    assert_int_equal(b->bos_id, 1);
    assert_int_equal(b->eos_id, 2);
    assert_false(b->tied_output);
    model_free(g);
    model_free(h);
}

/* stories260K.gguf: llama.cpp's greedy 32-token continuations, token for token
 * (tied-by-copy output, rope theta default 10000, GQA 8/4). */
static void test_stories260k(void **state) {
    (void)state;
    char *path = tu_shared_path("models/stories260K.gguf");
    char *refp = tu_shared_path("models/stories260K.reference.json");
    if (!path || !refp) {
        free(path);
        free(refp);
        skip();
    }
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    model *m = load_or_fail(path, NULL);
    const model_hparams *hp = model_hp(m);
    assert_int_equal(hp->n_vocab, 512);
    assert_int_equal(hp->n_head, 8);
    assert_int_equal(hp->n_head_kv, 4);
    assert_true(fabs(hp->rope_theta - 10000.0) < 1e-9);
    kv_cache *kv = kv_or_fail(m, 1);
    float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
    assert_non_null(logits);
    double worst_lp = 0.0;
    for (size_t i = 0; i < json_array_size(ref); i++) {
        json_t *p = json_array_get(ref, i);
        int n, ng;
        int32_t *ids = json_ids(json_object_get(p, "token_ids"), &n);
        int32_t *greedy = json_ids(json_object_get(p, "greedy_token_ids_32"), &ng);
        assert_int_equal(ng, 32);
        kv_seq_clear(kv, 0);
        feed(m, kv, 0, ids, n, 0, logits);
        /* first-step log-probs against llama.cpp's top-5; llama.cpp keeps
         * its KV cache in F16, so agreement is ~1e-3, not F32-exact */
        double mx = logits[0], sum = 0.0;
        for (int v = 0; v < hp->n_vocab; v++) mx = fmax(mx, logits[v]);
        for (int v = 0; v < hp->n_vocab; v++) sum += exp(logits[v] - mx);
        json_t *top = json_object_get(p, "top5_next_token_logprobs");
        for (size_t k = 0; k < json_array_size(top); k++) {
            json_t *e = json_array_get(top, k);
            int id = (int)json_integer_value(json_object_get(e, "id"));
            double lp = json_real_value(json_object_get(e, "logprob"));
            double mine = logits[id] - mx - log(sum);
            worst_lp = fmax(worst_lp, fabs(mine - lp));
            if (fabs(mine - lp) > 1e-2)
                fail_msg("stories prompt %zu: logprob of %d is %g, llama.cpp %g", i, id, mine, lp);
        }
        char label[64];
        snprintf(label, sizeof label, "stories260K prompt %zu", i);
        greedy_check(m, kv, logits, n, greedy, ng, label);
        free(ids);
        free(greedy);
    }
    printf("  stories260K: 4 prompts x 32 greedy tokens match llama.cpp; top-5 logprob "
           "max diff %.3g\n", worst_lp);
    free(logits);
    kv_free(kv);
    model_free(m);
    json_decref(ref);
    free(path);
    free(refp);
}

/* Several prompts interleaved in one batch (and then one batched decode
 * step) give the same logits as each prompt alone. */
static void check_batched(const char *rel, const model_opts *opts) {
    char *dir = tu_shared_path(rel);
    if (!dir) skip();
    char path[1024], refp[1024];
    snprintf(path, sizeof path, "%s/model-f32.gguf", dir);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    json_t *prompts = json_object_get(ref, "prompts");
    enum { NP = 3 };
    const int which[NP] = {0, 1, 3};
    int n[NP];
    int32_t *ids[NP];
    int total = 0, maxn = 0;
    for (int i = 0; i < NP; i++) {
        ids[i] = json_ids(json_object_get(json_array_get(prompts, (size_t)which[i]), "input_ids"),
                          &n[i]);
        total += n[i];
        if (n[i] > maxn) maxn = n[i];
    }
    model *m = load_or_fail(path, NULL);
    model *mb = load_or_fail(path, opts);
    int V = model_hp(m)->n_vocab;
    float *alone = malloc((size_t)NP * 2 * V * sizeof(float));
    float *batched = malloc((size_t)NP * V * sizeof(float));
    assert_non_null(alone);
    assert_non_null(batched);
    int32_t next[NP];
    kv_cache *kv1 = kv_or_fail(m, 1);
    for (int i = 0; i < NP; i++) {
        kv_seq_clear(kv1, 0);
        feed(m, kv1, 0, ids[i], n[i], 0, alone + (size_t)(2 * i) * V);
        next[i] = argmax(alone + (size_t)(2 * i) * V, V);
        feed(m, kv1, 0, &next[i], 1, n[i], alone + (size_t)(2 * i + 1) * V);
    }
    /* round-robin interleave; sequence slots 2, 0, 1 (ids need not follow
     * batch order) */
    const int slot[NP] = {2, 0, 1};
    kv_cache *kv = kv_or_fail(mb, NP);
    int32_t *tok = malloc((size_t)total * sizeof *tok), *pos = malloc((size_t)total * sizeof *pos),
            *sid = malloc((size_t)total * sizeof *sid);
    int8_t *want = calloc((size_t)total, 1);
    int order[NP], k = 0;
    for (int p = 0; p < maxn; p++)
        for (int i = 0; i < NP; i++) {
            if (p >= n[i]) continue;
            tok[k] = ids[i][p];
            pos[k] = p;
            sid[k] = slot[i];
            if (p == n[i] - 1) {
                want[k] = 1;
            }
            k++;
        }
    /* logits rows come in batch order: which prompt ends first? */
    int r = 0;
    for (int t = 0; t < total; t++)
        if (want[t])
            for (int i = 0; i < NP; i++)
                if (sid[t] == slot[i]) order[r++] = i;
    model_batch b = {.n_tokens = total, .token = tok, .pos = pos, .seq_id = sid, .logits = want};
    char err[256];
    for (int i = 0; i < NP; i++) assert_int_equal(kv_seq_reserve(kv, slot[i], n[i] + 1), 0);
    if (model_forward(mb, kv, &b, batched, err, sizeof err) != 0) fail_msg("%s", err);
    double mx = 0.0;
    for (int j = 0; j < NP; j++) {
        int i = order[j];
        assert_int_equal(kv_seq_len(kv, slot[i]), n[i]);
        for (int v = 0; v < V; v++)
            mx = fmax(mx, fabs(batched[(size_t)j * V + v] - alone[(size_t)(2 * i) * V + v]));
    }
    if (mx > BATCH_TOL) fail_msg("batched prefill differs from single: %g", mx);
    /* one decode step for all three */
    int32_t dt[NP], dp[NP], ds[NP];
    int8_t dw[NP] = {1, 1, 1};
    for (int i = 0; i < NP; i++) {
        dt[i] = next[i];
        dp[i] = n[i];
        ds[i] = slot[i];
    }
    model_batch d = {.n_tokens = NP, .token = dt, .pos = dp, .seq_id = ds, .logits = dw};
    if (model_forward(mb, kv, &d, batched, err, sizeof err) != 0) fail_msg("%s", err);
    double md = 0.0;
    for (int i = 0; i < NP; i++)
        for (int v = 0; v < V; v++)
            md = fmax(md, fabs(batched[(size_t)i * V + v] - alone[(size_t)(2 * i + 1) * V + v]));
    if (md > BATCH_TOL) fail_msg("batched decode differs from single: %g", md);
    printf("  %s batched (n_batch %d): prefill max diff %.3g, decode max diff %.3g\n", rel,
           model_n_batch(mb), mx, md);
    free(tok);
    free(pos);
    free(sid);
    free(want);
    for (int i = 0; i < NP; i++) free(ids[i]);
    free(alone);
    free(batched);
    kv_free(kv);
    kv_free(kv1);
    model_free(m);
    model_free(mb);
    json_decref(ref);
    free(dir);
}

static void test_batched(void **state) {
    (void)state;
    check_batched("conformance/llama-tiny", NULL);
}

static void test_batched_chunked(void **state) {
    (void)state;
    model_opts o = {.n_batch = 4};
    check_batched("conformance/llama-tiny", &o);
}

static void test_bad_batches(void **state) {
    (void)state;
    char *path = tu_shared_path("models/stories260K.gguf");
    if (!path) skip();
    model *m = load_or_fail(path, NULL);
    free(path);
    kv_cache *kv = kv_or_fail(m, 2);
    float *logits = malloc(512 * sizeof(float));
    char err[256];
    int32_t tok[2] = {1, 403}, pos[2] = {0, 1}, sid[2] = {0, 0};
    model_batch b = {.n_tokens = 2, .token = tok, .pos = pos, .seq_id = sid};
    /* positions not reserved in the KV cache: refused, nothing written */
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "position 0 of sequence 0 is not reserved"));
    assert_int_equal(kv_seq_reserve(kv, 0, 2), 0);
    /* a hole in positions */
    pos[1] = 2;
    assert_int_not_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    assert_non_null(strstr(err, "hole"));
    pos[1] = 1;
    /* a bad sequence id */
    sid[1] = 2;
    assert_int_not_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    assert_non_null(strstr(err, "sequence id 2"));
    sid[1] = 0;
    /* a token out of range */
    tok[1] = 512;
    assert_int_not_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    assert_non_null(strstr(err, "out of range"));
    tok[1] = 403;
    /* nothing was written by the failures */
    assert_int_equal(kv_seq_len(kv, 0), 0);
    /* beyond the context */
    pos[0] = model_n_ctx(m);
    b.n_tokens = 1;
    assert_int_not_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    pos[0] = 0;
    b.n_tokens = 2;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    assert_int_equal(kv_seq_len(kv, 0), 2);
    assert_int_equal(kv_seq_len(kv, 1), 0);
    free(logits);
    kv_free(kv);
    model_free(m);

    /* loading errors name the path */
    m = NULL;
    assert_int_not_equal(model_load(&m, "/nonexistent/model.gguf", err, sizeof err), 0);
    assert_null(m);
    assert_non_null(strstr(err, "/nonexistent/model.gguf"));
    char *bert = tu_shared_path("conformance/bert-tiny/model-f32.gguf");
    if (bert) {
        assert_int_not_equal(model_load(&m, bert, err, sizeof err), 0);
        assert_non_null(strstr(err, "bert"));
        free(bert);
    }
}

int main(void) {
    tu_require_shared("test_model_llama");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_llama_tiny_gguf),
        cmocka_unit_test(test_llama_tiny_hf),
        cmocka_unit_test(test_batched),
        cmocka_unit_test(test_batched_chunked),
        cmocka_unit_test(test_bad_batches),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
