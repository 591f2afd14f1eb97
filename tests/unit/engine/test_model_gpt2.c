/* test_model_gpt2.c - the gpt2 forward pass against reference outputs:
 * ../shared/conformance/gpt2-tiny (HF transformers logits, hidden states and
 * greedy continuations; loaded from the HF folder and from model-f32.gguf),
 * and a batch of interleaved sequences against each sequence alone. */
#include "tu_model.h"

#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

/* ---- tests --------------------------------------------------------------- */

static void test_gpt2_tiny_gguf(void **state) {
    (void)state;
    tu_model_check_conformance("conformance/gpt2-tiny", "model-f32.gguf");
}

static void test_gpt2_tiny_hf(void **state) {
    (void)state;
    tu_model_check_conformance("conformance/gpt2-tiny", NULL);
}

static void test_hparams(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/model-f32.gguf");
    if (!path) skip();
    model *g = tu_model_load(path, NULL);
    free(path);
    path = tu_shared_path("conformance/gpt2-tiny");
    model *h = tu_model_load(path, NULL);
    free(path);
    for (int i = 0; i < 2; i++) {
        const model *m = i ? h : g;
        const model_hparams *hp = model_hp(m);
        assert_int_equal(model_arch(m), MODEL_ARCH_GPT2);
        assert_int_equal(hp->n_vocab, 50257);
        assert_int_equal(hp->n_embd, 32);
        assert_int_equal(hp->n_layer, 2);
        assert_int_equal(hp->n_head, 4);
        assert_int_equal(hp->n_head_kv, 4);
        assert_int_equal(hp->head_dim, 8);
        assert_int_equal(hp->n_ff, 128);
        assert_int_equal(hp->n_ctx_train, 512);
        assert_int_equal(model_n_ctx(m), 512);
        assert_true(fabs(hp->norm_eps - 1e-5f) < 1e-9);
        assert_int_equal(hp->bos_id, 50256);
        assert_int_equal(hp->eos_id, 50256);
    }
    assert_false(model_hp(g)->tied_output); /* llama.cpp stores output.weight */
    assert_true(model_hp(h)->tied_output);  /* lm_head absent: wte */
    /* learned positions: the context cannot exceed the table */
    model_opts o = {.n_ctx = 4096};
    path = tu_shared_path("conformance/gpt2-tiny");
    model *big = tu_model_load(path, &o);
    free(path);
    assert_int_equal(model_n_ctx(big), 512);
    model_free(big);
    model_free(g);
    model_free(h);
}

static void test_batched(void **state) {
    (void)state;
    tu_model_check_batched("conformance/gpt2-tiny", NULL);
}

static void test_batched_chunked(void **state) {
    (void)state;
    model_opts o = {.n_batch = 5};
    tu_model_check_batched("conformance/gpt2-tiny", &o);
}

int main(void) {
    tu_require_shared("test_model_gpt2");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_gpt2_tiny_gguf),
        cmocka_unit_test(test_gpt2_tiny_hf),
        cmocka_unit_test(test_batched),
        cmocka_unit_test(test_batched_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
