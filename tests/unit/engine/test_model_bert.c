/* test_model_bert.c - model_encode: the BERT encoder against Hugging Face
 * transformers / sentence-transformers (../shared/conformance/bert-tiny,
 * from the HF folder and from llama.cpp's GGUF), batching of several
 * sequences in one call, argument checks, and the final hidden states of
 * the decoders (llama-tiny, gpt2-tiny) through the same entry point. */
#include "tu_model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"
#include "pooling.h"

/* Max abs error of hidden states and pooled embeddings against HF. */
#define BERT_TOL 1e-4

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx;
}

/* Runs one sequence alone (seq id 0, positions 0..n-1) into out[n, C]. */
static void encode_one(model *m, const int32_t *ids, int n, float *out)
{
    int32_t *pos = malloc((size_t)n * sizeof *pos), *sid = calloc((size_t)n, sizeof *sid);
    assert_non_null(pos);
    assert_non_null(sid);
    for (int i = 0; i < n; i++) pos[i] = i;
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid};
    char err[256] = "";
    if (model_encode(m, &b, out, err, sizeof err) != 0) fail_msg("encode: %s", err);
    free(pos);
    free(sid);
}

/* A JSON array of numbers as floats (n of them, else fail). */
static void json_floats(json_t *arr, float *out, size_t n, const char *what)
{
    if (!json_is_array(arr) || json_array_size(arr) != n)
        fail_msg("reference %s: not an array of %zu numbers", what, n);
    for (size_t i = 0; i < n; i++) out[i] = (float)json_number_value(json_array_get(arr, i));
}

typedef struct bert_ref {
    char *dir;
    json_t *ref;
    json_t *prompts;
    int n[4];
    int32_t *ids[4];
} bert_ref;

static int bert_ref_open(bert_ref *r)
{
    memset(r, 0, sizeof *r);
    r->dir = tu_shared_path("conformance/bert-tiny/reference.json");
    if (!r->dir) return -1;
    json_error_t je;
    r->ref = json_load_file(r->dir, 0, &je);
    if (!r->ref) fail_msg("%s: %s", r->dir, je.text);
    *strrchr(r->dir, '/') = '\0';
    r->prompts = json_object_get(r->ref, "prompts");
    assert_int_equal(json_array_size(r->prompts), 4);
    for (int i = 0; i < 4; i++)
        r->ids[i] = tu_model_json_ids(json_object_get(json_array_get(r->prompts, (size_t)i),
                                                      "input_ids"), &r->n[i]);
    return 0;
}

static void bert_ref_close(bert_ref *r)
{
    for (int i = 0; i < 4; i++) free(r->ids[i]);
    json_decref(r->ref);
    free(r->dir);
}

/* Hidden states and the four pooled embeddings of each prompt. */
static void check_bert(const char *model_file)
{
    bert_ref r;
    if (bert_ref_open(&r) != 0) skip();
    char path[1200];
    if (model_file)
        snprintf(path, sizeof path, "%s/%s", r.dir, model_file);
    else
        snprintf(path, sizeof path, "%s", r.dir);
    model *m = tu_model_load(path, NULL);
    assert_int_equal(model_get_kind(m), MODEL_KIND_ENCODER);
    assert_int_equal(model_arch(m), MODEL_ARCH_BERT);
    assert_int_equal(model_n_ctx(m), 512);
    const model_hparams *hp = model_hp(m);
    int C = hp->n_embd;
    assert_int_equal(C, 32);
    assert_int_equal(hp->n_layer, 2);
    assert_int_equal(hp->n_vocab, 30522);
    assert_true(fabsf(hp->norm_eps - 1e-12f) < 1e-15f);

    double worst_h = 0.0, worst_p = 0.0;
    float *want = malloc((size_t)C * sizeof(float)), *got = malloc((size_t)C * sizeof(float));
    assert_non_null(want);
    assert_non_null(got);
    for (int i = 0; i < 4; i++) {
        int n = r.n[i];
        float *h = malloc((size_t)n * C * sizeof(float));
        assert_non_null(h);
        encode_one(m, r.ids[i], n, h);
        char npyp[1400];
        snprintf(npyp, sizeof npyp, "%s/arrays/last_hidden_state_%d.npy", r.dir, i);
        npy_array a;
        npy_error ne = {0};
        if (npy_load(&a, npyp, &ne) != 0) fail_msg("%s", ne.msg);
        assert_int_equal(a.n_dims, 2);
        assert_int_equal(a.shape[0], n);
        assert_int_equal(a.shape[1], C);
        double e = max_abs_diff(h, npy_f32(&a), (size_t)n * C);
        if (e > BERT_TOL) fail_msg("%s prompt %d: last_hidden_state max abs error %g", path, i, e);
        worst_h = fmax(worst_h, e);
        npy_free(&a);

        json_t *p = json_array_get(r.prompts, (size_t)i);
        static const char *const keys[4] = {"mean_raw", "mean_normalized", "cls",
                                            "cls_normalized"};
        for (int k = 0; k < 4; k++) {
            json_floats(json_object_get(p, keys[k]), want, (size_t)C, keys[k]);
            pool_apply(k < 2 ? POOL_MEAN : POOL_CLS, h, n, C, got);
            if (k % 2) pool_l2_normalize(got, C);
            double pe = max_abs_diff(got, want, (size_t)C);
            if (pe > BERT_TOL) fail_msg("%s prompt %d: %s max abs error %g", path, i, keys[k], pe);
            worst_p = fmax(worst_p, pe);
        }
        free(h);
    }
    printf("  %s: last_hidden_state max abs error %.3g, pooled (mean/cls, raw/normalized) "
           "%.3g over 4 prompts\n", path, worst_h, worst_p);
    free(want);
    free(got);
    model_free(m);
    bert_ref_close(&r);
}

static void test_bert_hf(void **state)
{
    (void)state;
    check_bert(NULL);
}

static void test_bert_gguf(void **state)
{
    (void)state;
    check_bert("model-f32.gguf");
}

/* All four prompts in ONE model_encode (sequence ids out of order) equal
 * each prompt alone, and a second, different batch on the same model too. */
static void test_bert_batched(void **state)
{
    (void)state;
    bert_ref r;
    if (bert_ref_open(&r) != 0) skip();
    char path[1200];
    snprintf(path, sizeof path, "%s/model-f32.gguf", r.dir);
    model *m = tu_model_load(path, NULL);
    int C = model_hp(m)->n_embd, total = 0;
    for (int i = 0; i < 4; i++) total += r.n[i];
    float *alone = malloc((size_t)total * C * sizeof(float));
    float *batched = malloc((size_t)total * C * sizeof(float));
    int32_t *tok = malloc((size_t)total * sizeof *tok), *pos = malloc((size_t)total * sizeof *pos),
            *sid = malloc((size_t)total * sizeof *sid);
    assert_non_null(alone);
    assert_non_null(batched);
    assert_non_null(tok);
    assert_non_null(pos);
    assert_non_null(sid);
    const int slot[4] = {7, 0, 3, 1};
    int k = 0;
    for (int i = 0; i < 4; i++) {
        encode_one(m, r.ids[i], r.n[i], alone + (size_t)k * C);
        for (int p = 0; p < r.n[i]; p++, k++) {
            tok[k] = r.ids[i][p];
            pos[k] = p;
            sid[k] = slot[i];
        }
    }
    model_batch b = {.n_tokens = total, .token = tok, .pos = pos, .seq_id = sid};
    char err[256] = "";
    if (model_encode(m, &b, batched, err, sizeof err) != 0) fail_msg("%s", err);
    double mx = max_abs_diff(batched, alone, (size_t)total * C);
    if (mx > TU_MODEL_BATCH_TOL) fail_msg("batched encode differs from single: %g", mx);
    /* implied positions (pos NULL), prompts 3 and 1 only */
    model_batch b2 = {.n_tokens = r.n[3] + r.n[1], .token = tok + total - r.n[3],
                      .seq_id = sid + total - r.n[3]};
    int32_t *t2 = malloc((size_t)b2.n_tokens * sizeof *t2), *s2 = malloc((size_t)b2.n_tokens * sizeof *s2);
    assert_non_null(t2);
    assert_non_null(s2);
    memcpy(t2, r.ids[3], (size_t)r.n[3] * sizeof *t2);
    memcpy(t2 + r.n[3], r.ids[1], (size_t)r.n[1] * sizeof *t2);
    for (int i = 0; i < b2.n_tokens; i++) s2[i] = i < r.n[3] ? 1 : 0;
    b2.token = t2;
    b2.seq_id = s2;
    if (model_encode(m, &b2, batched, err, sizeof err) != 0) fail_msg("%s", err);
    size_t off3 = (size_t)(total - r.n[3]) * C, off1 = (size_t)r.n[0] * C;
    double m2 = fmax(max_abs_diff(batched, alone + off3, (size_t)r.n[3] * C),
                     max_abs_diff(batched + (size_t)r.n[3] * C, alone + off1, (size_t)r.n[1] * C));
    if (m2 > TU_MODEL_BATCH_TOL) fail_msg("second batch differs from single: %g", m2);
    printf("  bert-tiny: 4 prompts (%d tokens) in one encode: max diff %.3g vs alone\n", total,
           mx);
    free(t2);
    free(s2);
    free(tok);
    free(pos);
    free(sid);
    free(alone);
    free(batched);
    model_free(m);
    bert_ref_close(&r);
}

/* Bad batches are refused before anything runs, with a message; an
 * encoder has no model_forward. */
static void test_bert_errors(void **state)
{
    (void)state;
    char *dir = tu_shared_path("conformance/bert-tiny/model-f32.gguf");
    if (!dir) skip();
    model_opts o = {.n_batch = 8, .n_ctx = 4};
    model *m = tu_model_load(dir, &o);
    assert_int_equal(model_n_batch(m), 8);
    assert_int_equal(model_n_ctx(m), 4);
    float out[9 * 32];
    char err[256];
    int32_t tok[9] = {101, 7592, 102, 101, 2088, 102, 101, 999, 102};
    int32_t pos[9] = {0, 1, 2, 0, 1, 2, 0, 1, 2};
    int32_t sid[9] = {0, 0, 0, 1, 1, 1, 2, 2, 2};
    model_batch b = {.n_tokens = 6, .token = tok, .pos = pos, .seq_id = sid};
    assert_int_equal(model_encode(m, &b, out, err, sizeof err), 0);

    b.n_tokens = 9; /* more than n_batch */
    assert_int_equal(model_encode(m, &b, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "batch size"));
    b.n_tokens = 6;
    int32_t bad_sid[6] = {0, 0, 0, 1, 1, 0}; /* sequence 0 in two runs */
    b.seq_id = bad_sid;
    b.pos = NULL;
    assert_int_equal(model_encode(m, &b, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "contiguous"));
    b.seq_id = sid;
    int32_t bad_pos[6] = {0, 1, 2, 0, 2, 3}; /* a hole */
    b.pos = bad_pos;
    assert_int_equal(model_encode(m, &b, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "token 4"));
    b.pos = pos;
    int32_t bad_tok[6] = {101, 7592, 102, 101, 30522, 102};
    b.token = bad_tok;
    assert_int_equal(model_encode(m, &b, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "out of range"));
    b.token = tok;
    int32_t one[8] = {0};
    model_batch lb = {.n_tokens = 5, .token = tok, .seq_id = one}; /* 5 > n_ctx 4 */
    assert_int_equal(model_encode(m, &lb, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "context"));
    assert_int_equal(model_encode(m, &b, NULL, err, sizeof err), -EINVAL);

    /* no logits from an encoder */
    kv_cache *kv = NULL;
    assert_int_equal(model_kv_create(m, 1, 0, 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 3), 0);
    float logits[8];
    b.n_tokens = 3;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -ENOTSUP);
    assert_non_null(strstr(err, "model_encode"));
    kv_free(kv);
    model_free(m);
    free(dir);
}

/* Decoders: model_encode gives the final-norm hidden states (HF's last
 * output_hidden_states entry); batched equals alone. */
static void check_decoder(const char *rel, const char *model_file)
{
    char *dir = tu_shared_path(rel);
    if (!dir) skip();
    char path[1200], refp[1200], npyp[1200];
    if (model_file)
        snprintf(path, sizeof path, "%s/%s", dir, model_file);
    else
        snprintf(path, sizeof path, "%s", dir);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    snprintf(npyp, sizeof npyp, "%s/prompt0_hidden_states.npy", dir);
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    json_t *prompts = json_object_get(ref, "prompts");
    int n0, n1;
    int32_t *ids0 = tu_model_json_ids(json_object_get(json_array_get(prompts, 0), "input_ids"),
                                      &n0);
    int32_t *ids1 = tu_model_json_ids(json_object_get(json_array_get(prompts, 1), "input_ids"),
                                      &n1);
    npy_array a;
    npy_error ne = {0};
    if (npy_load(&a, npyp, &ne) != 0) fail_msg("%s", ne.msg);
    model *m = tu_model_load(path, NULL);
    assert_int_equal(model_get_kind(m), MODEL_KIND_DECODER);
    int C = model_hp(m)->n_embd;
    assert_int_equal(a.n_dims, 3);
    assert_int_equal(a.shape[1], n0);
    assert_int_equal(a.shape[2], C);
    float *h = malloc((size_t)(n0 + n1) * C * sizeof(float));
    float *hb = malloc((size_t)(n0 + n1) * C * sizeof(float));
    assert_non_null(h);
    assert_non_null(hb);
    encode_one(m, ids0, n0, h);
    const float *want = npy_f32(&a) + (size_t)(a.shape[0] - 1) * n0 * C;
    double e = max_abs_diff(h, want, (size_t)n0 * C);
    if (e > BERT_TOL) fail_msg("%s: final hidden state max abs error %g", path, e);
    encode_one(m, ids1, n1, h + (size_t)n0 * C);
    /* both prompts in one call (prompt 1 first, seq ids 4 and 2) */
    int32_t *tok = malloc((size_t)(n0 + n1) * sizeof *tok), *sid = malloc((size_t)(n0 + n1) * sizeof *sid);
    assert_non_null(tok);
    assert_non_null(sid);
    memcpy(tok, ids1, (size_t)n1 * sizeof *tok);
    memcpy(tok + n1, ids0, (size_t)n0 * sizeof *tok);
    for (int i = 0; i < n0 + n1; i++) sid[i] = i < n1 ? 4 : 2;
    model_batch b = {.n_tokens = n0 + n1, .token = tok, .seq_id = sid};
    char err[256];
    if (model_encode(m, &b, hb, err, sizeof err) != 0) fail_msg("%s", err);
    double mb = fmax(max_abs_diff(hb, h + (size_t)n0 * C, (size_t)n1 * C),
                     max_abs_diff(hb + (size_t)n1 * C, h, (size_t)n0 * C));
    if (mb > TU_MODEL_BATCH_TOL) fail_msg("%s: batched encode differs from single: %g", path, mb);
    printf("  %s: final hidden state max abs error %.3g; batched diff %.3g\n", path, e, mb);
    free(tok);
    free(sid);
    free(h);
    free(hb);
    free(ids0);
    free(ids1);
    model_free(m);
    npy_free(&a);
    json_decref(ref);
    free(dir);
}

static void test_llama_hf(void **state)
{
    (void)state;
    check_decoder("conformance/llama-tiny", NULL);
}

static void test_llama_gguf(void **state)
{
    (void)state;
    check_decoder("conformance/llama-tiny", "model-f32.gguf");
}

static void test_gpt2_hf(void **state)
{
    (void)state;
    check_decoder("conformance/gpt2-tiny", NULL);
}

static void test_gpt2_gguf(void **state)
{
    (void)state;
    check_decoder("conformance/gpt2-tiny", "model-f32.gguf");
}

int main(void)
{
    tu_require_shared("test_model_bert");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bert_hf),     cmocka_unit_test(test_bert_gguf),
        cmocka_unit_test(test_bert_batched), cmocka_unit_test(test_bert_errors),
        cmocka_unit_test(test_llama_hf),
        cmocka_unit_test(test_llama_gguf),  cmocka_unit_test(test_gpt2_hf),
        cmocka_unit_test(test_gpt2_gguf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
