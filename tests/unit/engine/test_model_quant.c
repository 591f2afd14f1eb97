/* test_model_quant.c - quantized llama weights end to end, on the shipped
 * story LM (models/story-lm.gguf):
 *   - gguf_quantize writes Q8_0 and Q4_0 copies (every matrix quantized,
 *     norms kept), 3.7x / 6.9x smaller;
 *   - loaded as they are (the matrices stay quantized, qmat.h), each gives
 *     the logits of the same file loaded with f32_weights (the quantized
 *     weights dequantized, the F32 kernels) up to the error of quantizing
 *     the activations: the same next token almost everywhere, logits close;
 *   - prefill in one batch equals token-by-token decoding (the prefill and
 *     decode shapes of the int8 kernels, and the GEMM and per-token
 *     attention, agree);
 *   - training refuses a quantized model with a message that says how. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tu_model.h"

#include "gguf_quantize.h"
#include "model.h"
#include "trn_dec.h"

#define N_TOK 48

static char err[512];

/* Logits of every position of ids (one sequence, one batch). */
static float *all_logits(model *m, const int32_t *ids, int n)
{
    int V = model_hp(m)->n_vocab;
    kv_cache *kv = tu_model_kv(m, 1);
    int32_t pos[N_TOK], sid[N_TOK] = {0};
    int8_t want[N_TOK];
    for (int i = 0; i < n; i++)
        pos[i] = i, want[i] = 1;
    float *lg = malloc((size_t)n * V * sizeof(float));
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid, .logits = want};
    assert_int_equal(kv_seq_reserve(kv, 0, n), 0);
    if (model_forward(m, kv, &b, lg, err, sizeof err))
        fail_msg("forward: %s", err);
    kv_free(kv);
    return lg;
}

static int argmax(const float *x, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

static void check_type(qm_type type, const char *dir, const char *src)
{
    char path[512];
    tu_join(path, sizeof path, dir, type == QM_Q8_0 ? "q8.gguf" : "q4.gguf");
    gguf_quantize_stats st;
    if (gguf_quantize(src, path, type, NULL, NULL, &st, err, sizeof err))
        fail_msg("quantize: %s", err);
    assert_int_equal(st.tensors, 38);
    assert_int_equal(st.quantized, 29); /* 4 x 7 matrices + the tied embedding */
    assert_true(st.bytes_out * (type == QM_Q8_0 ? 3.5 : 6.5) < st.bytes_in);

    model_opts f32 = {.f32_weights = true};
    model *q = tu_model_load(path, NULL), *ref = tu_model_load(path, &f32);
    assert_true(model_weight_bytes(q) * 3 < model_weight_bytes(ref));
    int V = model_hp(q)->n_vocab;
    int32_t ids[N_TOK];
    for (int i = 0; i < N_TOK; i++)
        ids[i] = (int32_t)((i * 37 + 11) % V);
    float *a = all_logits(q, ids, N_TOK), *b = all_logits(ref, ids, N_TOK);
    int agree = 0;
    double worst = 0;
    for (int i = 0; i < N_TOK; i++) {
        agree += argmax(a + (size_t)i * V, V) == argmax(b + (size_t)i * V, V);
        for (int v = 0; v < V; v++)
            worst = fmax(worst, fabs(a[(size_t)i * V + v] - b[(size_t)i * V + v]));
    }
    print_message("%s: next token agrees at %d of %d positions, largest logit difference %.4f\n",
                  qm_type_name(type), agree, N_TOK, worst);
    assert_true(agree >= N_TOK * 9 / 10); /* random ids: flat, near-tied logits */
    assert_true(worst < 0.5);

    /* token by token (T = 1 each step: the per-token attention) equals
     * the batch (48 positions: ops_attention_prefill's GEMMs). The two
     * attentions round differently (float summation order), and a
     * difference of one ulp can move an activation across an int8 rounding
     * boundary of the next matrix's quantized input, a step of 1/127 of
     * its block's largest value: logits then differ by a few hundredths
     * (0.06 seen), below the quantization error itself, and not at all
     * before the first crossing */
    kv_cache *kv = tu_model_kv(q, 1);
    float *one = malloc((size_t)V * sizeof(float));
    int exact = 0;
    double step_worst = 0, step_sum = 0;
    for (int i = 0; i < N_TOK; i++) {
        tu_model_feed(q, kv, 0, ids + i, 1, i, one);
        double d = 0;
        for (int v = 0; v < V; v++)
            d = fmax(d, fabs(one[v] - a[(size_t)i * V + v]));
        if (d > 0.2)
            fail_msg("%s position %d: one by one differs from batched by %.5f", qm_type_name(type),
                     i, d);
        exact += d <= 1e-3;
        step_worst = fmax(step_worst, d);
        step_sum += d;
    }
    print_message("%s: one by one = batched within 1e-3 at %d of %d positions (largest %.4f, "
                  "mean %.4f)\n", qm_type_name(type), exact, N_TOK, step_worst, step_sum / N_TOK);
    assert_true(step_sum / N_TOK < 0.04); /* a crossing moves later positions a little too */
    kv_free(kv);

    trn_dec *d;
    assert_int_equal(trn_dec_from_model(&d, q, err, sizeof err), -ENOTSUP);
    assert_non_null(strstr(err, "F32"));
    model_decoder_view view;
    assert_int_equal(model_decoder_view_get(q, &view), -ENOTSUP);
    free(a), free(b), free(one);
    model_free(q);
    model_free(ref);
    unlink(path);
}

static void test_quantized_story_lm(void **state)
{
    (void)state;
    char *src = tu_source_path("models/story-lm.gguf");
    assert_non_null(src);
    char *dir = tu_tmpdir("quant");
    check_type(QM_Q8_0, dir, src);
    check_type(QM_Q4_0, dir, src);
    rmdir(dir);
    free(dir);
    free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantized_story_lm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
