/* test_model_llama.c - the llama forward pass against reference outputs:
 * ../shared/conformance/llama-tiny (HF transformers logits and greedy
 * continuations; loaded from the HF folder and from model-f32.gguf),
 * ../shared/models/stories260K.gguf (llama.cpp greedy continuations), a
 * batch of interleaved sequences against each sequence alone, chunking, and
 * the rejection of bad batches. */
#include "tu_model.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ---- tests --------------------------------------------------------------- */

static void test_llama_tiny_gguf(void **state) {
    (void)state;
    tu_model_check_conformance("conformance/llama-tiny", "model-f32.gguf");
}

static void test_llama_tiny_hf(void **state) {
    (void)state;
    tu_model_check_conformance("conformance/llama-tiny", NULL);
}

static void test_hparams(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path) skip();
    model *g = tu_model_load(path, NULL);
    free(path);
    path = tu_shared_path("conformance/llama-tiny");
    model *h = tu_model_load(path, NULL);
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
    model *m = tu_model_load(path, NULL);
    const model_hparams *hp = model_hp(m);
    assert_int_equal(hp->n_vocab, 512);
    assert_int_equal(hp->n_head, 8);
    assert_int_equal(hp->n_head_kv, 4);
    assert_true(fabs(hp->rope_theta - 10000.0) < 1e-9);
    kv_cache *kv = tu_model_kv(m, 1);
    float *logits = malloc((size_t)hp->n_vocab * sizeof(float));
    assert_non_null(logits);
    double worst_lp = 0.0;
    for (size_t i = 0; i < json_array_size(ref); i++) {
        json_t *p = json_array_get(ref, i);
        int n, ng;
        int32_t *ids = tu_model_json_ids(json_object_get(p, "token_ids"), &n);
        int32_t *greedy = tu_model_json_ids(json_object_get(p, "greedy_token_ids_32"), &ng);
        assert_int_equal(ng, 32);
        kv_seq_clear(kv, 0);
        tu_model_feed(m, kv, 0, ids, n, 0, logits);
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
        tu_model_greedy_check(m, kv, logits, n, greedy, ng, label);
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

static void test_batched(void **state) {
    (void)state;
    tu_model_check_batched("conformance/llama-tiny", NULL);
}

static void test_batched_chunked(void **state) {
    (void)state;
    model_opts o = {.n_batch = 4};
    tu_model_check_batched("conformance/llama-tiny", &o);
}

static void test_bad_batches(void **state) {
    (void)state;
    char *path = tu_shared_path("models/stories260K.gguf");
    if (!path) skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    kv_cache *kv = tu_model_kv(m, 2);
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
    char *clip = tu_shared_path("conformance/clip-tiny"); /* an architecture not served (yet) */
    if (clip) {
        assert_int_not_equal(model_load(&m, clip, err, sizeof err), 0);
        assert_non_null(strstr(err, "clip"));
        free(clip);
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
