/* test_clip.c - the CLIP dual encoder against Hugging Face transformers
 * (../shared/conformance/clip-tiny): text embeddings of the label prompts
 * (batched) and the other prompts (batched and alone), image embeddings
 * (both images in one call and each alone), the vision hidden states of
 * image 0, logit_scale, zero-shot logits and probabilities; then argument
 * checks, the legacy pooling fallback, and a random model. */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip.h"
#include "npy.h"

/* Max abs error against HF for embeddings, hidden states, logits, probs. */
#define CLIP_TOL 1e-4

static double max_abs_diff(const float *a, const float *b, size_t n)
{
    double mx = 0.0;
    for (size_t i = 0; i < n; i++)
        mx = fmax(mx, fabs((double)a[i] - b[i]));
    return mx;
}

/* A JSON array of numbers as floats (n of them, else fail). */
static void json_floats(json_t *arr, float *out, size_t n, const char *what)
{
    if (!json_is_array(arr) || json_array_size(arr) != n)
        fail_msg("reference %s: not an array of %zu numbers", what, n);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)json_number_value(json_array_get(arr, i));
}

/* A JSON array of rows of numbers ([rows][cols]) as floats. */
static void json_matrix(json_t *arr, float *out, size_t rows, size_t cols, const char *what)
{
    if (!json_is_array(arr) || json_array_size(arr) != rows)
        fail_msg("reference %s: not %zu rows", what, rows);
    for (size_t r = 0; r < rows; r++)
        json_floats(json_array_get(arr, r), out + r * cols, cols, what);
}

/* A JSON array of ids as a new int32 array; *n receives its length. */
static int32_t *json_ids(json_t *arr, int *n)
{
    assert_true(json_is_array(arr));
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc((size_t)*n * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < *n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

typedef struct clip_fix {
    clip_model *m;
    json_t *ref;
    char *dir;
} clip_fix;

static int setup(void **state)
{
    clip_fix *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->dir = tu_shared_path("conformance/clip-tiny/config.json");
    if (!f->dir) {
        free(f);
        return -1;
    }
    *strrchr(f->dir, '/') = '\0';
    char err[512] = "", path[1024];
    if (clip_load(&f->m, f->dir, err, sizeof err) != 0)
        fail_msg("clip_load: %s", err);
    snprintf(path, sizeof path, "%s/reference.json", f->dir);
    json_error_t je;
    f->ref = json_load_file(path, 0, &je);
    if (!f->ref)
        fail_msg("%s: %s", path, je.text);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    clip_fix *f = *state;
    if (!f)
        return 0;
    clip_free(f->m);
    json_decref(f->ref);
    free(f->dir);
    free(f);
    return 0;
}

static void test_hparams(void **state)
{
    clip_fix *f = *state;
    const clip_hparams *hp = clip_hp(f->m);
    assert_int_equal(hp->text_ctx, 77);
    assert_int_equal(hp->text_vocab, 49408);
    assert_int_equal(hp->text_width, 32);
    assert_int_equal(hp->vision_width, 64);
    assert_int_equal(hp->image_size, 32);
    assert_int_equal(hp->patch_size, 8);
    assert_int_equal(hp->proj_dim, 32);
    assert_int_equal(hp->eot_id, 49407);
    assert_int_equal(hp->text_layers, 2);
    assert_int_equal(hp->vision_layers, 2);
    float want = (float)json_number_value(json_object_get(f->ref, "logit_scale_exp"));
    float ls = clip_logit_scale(f->m);
    printf("logit_scale %.6f (HF %.6f)\n", ls, want);
    assert_true(fabsf(ls - want) < 1e-4f);
    assert_true(fabsf(ls - 14.2849f) < 1e-3f);
}

/* The four label prompts in one call. */
static void test_text_labels(void **state)
{
    clip_fix *f = *state;
    json_t *lab = json_object_get(f->ref, "label_input_ids");
    assert_int_equal(json_array_size(lab), 4);
    int32_t *ids[4];
    int lens[4];
    for (int i = 0; i < 4; i++)
        ids[i] = json_ids(json_array_get(lab, (size_t)i), &lens[i]);
    float out[4 * 32], want[4 * 32];
    char err[256] = "";
    if (clip_encode_text(f->m, ids, lens, 4, out, err, sizeof err) != 0)
        fail_msg("encode_text: %s", err);
    json_matrix(json_object_get(f->ref, "text_embeds_unnormalized"), want, 4, 32, "text_embeds");
    double d = max_abs_diff(out, want, 4 * 32);
    printf("label text embeds (batched 4): max abs err %.3g\n", d);
    assert_true(d < CLIP_TOL);
    /* normalised */
    json_matrix(json_object_get(f->ref, "text_embeds_normalized"), want, 4, 32, "text_n");
    for (int i = 0; i < 4; i++) {
        double s = 0.0;
        for (int c = 0; c < 32; c++)
            s += (double)out[i * 32 + c] * out[i * 32 + c];
        for (int c = 0; c < 32; c++)
            out[i * 32 + c] = (float)(out[i * 32 + c] / sqrt(s));
    }
    d = max_abs_diff(out, want, 4 * 32);
    printf("label text embeds normalised: max abs err %.3g\n", d);
    assert_true(d < CLIP_TOL);
    for (int i = 0; i < 4; i++)
        free(ids[i]);
}

/* The other prompts: all in one call (different lengths), then each alone. */
static void test_text_prompts(void **state)
{
    clip_fix *f = *state;
    json_t *pr = json_object_get(f->ref, "prompts");
    int n = (int)json_array_size(pr);
    assert_true(n >= 1 && n <= 16);
    int32_t *ids[16];
    int lens[16];
    float *want = malloc((size_t)n * 32 * sizeof(float));
    float *out = malloc((size_t)n * 32 * sizeof(float));
    assert_non_null(want);
    assert_non_null(out);
    for (int i = 0; i < n; i++) {
        json_t *p = json_array_get(pr, (size_t)i);
        ids[i] = json_ids(json_object_get(p, "input_ids"), &lens[i]);
        json_floats(json_object_get(p, "text_embeds_unnormalized"), want + i * 32, 32,
                    "prompt text_embeds");
    }
    char err[256] = "";
    if (clip_encode_text(f->m, ids, lens, n, out, err, sizeof err) != 0)
        fail_msg("encode_text: %s", err);
    double d = max_abs_diff(out, want, (size_t)n * 32);
    printf("prompt text embeds (batched %d): max abs err %.3g\n", n, d);
    assert_true(d < CLIP_TOL);
    double dmax = 0.0;
    for (int i = 0; i < n; i++) {
        float one[32];
        if (clip_encode_text(f->m, &ids[i], &lens[i], 1, one, err, sizeof err) != 0)
            fail_msg("encode_text: %s", err);
        dmax = fmax(dmax, max_abs_diff(one, want + i * 32, 32));
    }
    printf("prompt text embeds (each alone): max abs err %.3g\n", dmax);
    assert_true(dmax < CLIP_TOL);
    for (int i = 0; i < n; i++)
        free(ids[i]);
    free(want);
    free(out);
}

static npy_array load_npy(const clip_fix *f, const char *rel)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", f->dir, rel);
    npy_array a;
    npy_error e = {0};
    if (npy_load(&a, path, &e) != 0)
        fail_msg("%s", e.msg);
    assert_non_null(npy_f32(&a));
    return a;
}

static void test_images(void **state)
{
    clip_fix *f = *state;
    npy_array px = load_npy(f, "pixel_values.npy");
    assert_int_equal(px.n_elements, 2 * 3 * 32 * 32);
    float out[2 * 32], want[2 * 32], one[32];
    char err[256] = "";
    if (clip_encode_images(f->m, npy_f32(&px), 2, out, err, sizeof err) != 0)
        fail_msg("encode_images: %s", err);
    json_matrix(json_object_get(f->ref, "image_embeds_unnormalized"), want, 2, 32, "image");
    double d = max_abs_diff(out, want, 2 * 32);
    printf("image embeds (batched 2): max abs err %.3g\n", d);
    assert_true(d < CLIP_TOL);
    double dmax = 0.0;
    for (int b = 0; b < 2; b++) {
        if (clip_encode_images(f->m, npy_f32(&px) + b * 3 * 32 * 32, 1, one, err,
                               sizeof err) != 0)
            fail_msg("encode_images: %s", err);
        dmax = fmax(dmax, max_abs_diff(one, want + b * 32, 32));
    }
    printf("image embeds (each alone): max abs err %.3g\n", dmax);
    assert_true(dmax < CLIP_TOL);
    npy_free(&px);
}

/* Hidden states of image 0: alone, and as the first image of a batch of 2. */
static void test_vision_hidden(void **state)
{
    clip_fix *f = *state;
    npy_array px = load_npy(f, "pixel_values.npy");
    npy_array hs = load_npy(f, "arrays/image0_vision_hidden_states.npy");
    assert_int_equal(hs.n_dims, 3);
    assert_int_equal(hs.shape[0], 3);
    assert_int_equal(hs.shape[1], 17);
    assert_int_equal(hs.shape[2], 64);
    const size_t per = 17 * 64;
    float *h1 = malloc(3 * per * sizeof(float)), *h2 = malloc(3 * 2 * per * sizeof(float));
    assert_non_null(h1);
    assert_non_null(h2);
    char err[256] = "";
    if (clip_encode_images_hidden(f->m, npy_f32(&px), 1, NULL, h1, err, sizeof err) != 0)
        fail_msg("encode_images_hidden: %s", err);
    if (clip_encode_images_hidden(f->m, npy_f32(&px), 2, NULL, h2, err, sizeof err) != 0)
        fail_msg("encode_images_hidden: %s", err);
    for (int l = 0; l < 3; l++) {
        double d1 = max_abs_diff(h1 + l * per, npy_f32(&hs) + l * per, per);
        double d2 = max_abs_diff(h2 + l * 2 * per, npy_f32(&hs) + l * per, per);
        printf("vision hidden state %d (%s): max abs err alone %.3g, batched %.3g\n", l,
               l ? "layer output" : "after pre_layrnorm", d1, d2);
        assert_true(d1 < CLIP_TOL);
        assert_true(d2 < CLIP_TOL);
    }
    free(h1);
    free(h2);
    npy_free(&px);
    npy_free(&hs);
}

static void l2_normalise(float *v, int rows, int cols)
{
    for (int r = 0; r < rows; r++) {
        double s = 0.0;
        for (int c = 0; c < cols; c++)
            s += (double)v[r * cols + c] * v[r * cols + c];
        for (int c = 0; c < cols; c++)
            v[r * cols + c] = (float)(v[r * cols + c] / sqrt(s));
    }
}

/* logits_per_image = exp(logit_scale) img_n txt_n^T; probs softmax over labels. */
static void test_logits_probs(void **state)
{
    clip_fix *f = *state;
    json_t *lab = json_object_get(f->ref, "label_input_ids");
    int32_t *ids[4];
    int lens[4];
    for (int i = 0; i < 4; i++)
        ids[i] = json_ids(json_array_get(lab, (size_t)i), &lens[i]);
    npy_array px = load_npy(f, "pixel_values.npy");
    float txt[4 * 32], img[2 * 32], logits[8], probs[8], want[8];
    char err[256] = "";
    assert_int_equal(clip_encode_text(f->m, ids, lens, 4, txt, err, sizeof err), 0);
    assert_int_equal(clip_encode_images(f->m, npy_f32(&px), 2, img, err, sizeof err), 0);
    l2_normalise(txt, 4, 32);
    l2_normalise(img, 2, 32);
    float ls = clip_logit_scale(f->m);
    for (int i = 0; i < 2; i++) {
        double mx = -INFINITY, sum = 0.0;
        for (int j = 0; j < 4; j++) {
            double s = 0.0;
            for (int c = 0; c < 32; c++)
                s += (double)img[i * 32 + c] * txt[j * 32 + c];
            logits[i * 4 + j] = (float)(ls * s);
            mx = fmax(mx, logits[i * 4 + j]);
        }
        for (int j = 0; j < 4; j++)
            sum += exp(logits[i * 4 + j] - mx);
        for (int j = 0; j < 4; j++)
            probs[i * 4 + j] = (float)(exp(logits[i * 4 + j] - mx) / sum);
    }
    json_matrix(json_object_get(f->ref, "logits_per_image"), want, 2, 4, "logits");
    double dl = max_abs_diff(logits, want, 8);
    json_matrix(json_object_get(f->ref, "probs"), want, 2, 4, "probs");
    double dp = max_abs_diff(probs, want, 8);
    printf("logits_per_image: max abs err %.3g; probs: max abs err %.3g\n", dl, dp);
    assert_true(dl < CLIP_TOL);
    assert_true(dp < CLIP_TOL);
    /* argmax labels: car, dog */
    json_t *am = json_object_get(f->ref, "argmax_label_per_image");
    json_t *labels = json_object_get(f->ref, "labels");
    for (int i = 0; i < 2; i++) {
        int best = 0;
        for (int j = 1; j < 4; j++)
            if (probs[i * 4 + j] > probs[i * 4 + best])
                best = j;
        assert_string_equal(json_string_value(json_array_get(labels, (size_t)best)),
                            json_string_value(json_array_get(am, (size_t)i)));
    }
    for (int i = 0; i < 4; i++)
        free(ids[i]);
    npy_free(&px);
}

/* No eot in a sequence: pooled at the highest id (here <|startoftext|> at 0),
 * which a causal tower makes equal to encoding that token alone. */
static void test_legacy_pooling(void **state)
{
    clip_fix *f = *state;
    int32_t a[] = {49406, 320, 1125, 539}, b[] = {49406};
    int32_t *ids[2] = {a, b};
    int lens[2] = {4, 1};
    float out[64];
    char err[256] = "";
    assert_int_equal(clip_encode_text(f->m, ids, lens, 2, out, err, sizeof err), 0);
    assert_true(max_abs_diff(out, out + 32, 32) < 1e-6);
    /* a sequence with text after the first eot pools at the first one */
    int32_t c[] = {49406, 320, 2368, 49407}, d[] = {49406, 320, 2368, 49407, 1125, 49407};
    int32_t *ids2[2] = {c, d};
    int lens2[2] = {4, 6};
    assert_int_equal(clip_encode_text(f->m, ids2, lens2, 2, out, err, sizeof err), 0);
    assert_true(max_abs_diff(out, out + 32, 32) < 1e-6);
}

static void test_bad_args(void **state)
{
    clip_fix *f = *state;
    int32_t ok[] = {49406, 49407}, bad[] = {49406, 49408};
    int32_t *ids[1] = {ok};
    int lens[1] = {2};
    float out[64];
    char err[256] = "";
    assert_int_equal(clip_encode_text(f->m, ids, lens, 0, out, err, sizeof err), -EINVAL);
    ids[0] = bad;
    assert_int_equal(clip_encode_text(f->m, ids, lens, 1, out, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "vocabulary"));
    ids[0] = ok;
    lens[0] = 78;
    assert_int_equal(clip_encode_text(f->m, ids, lens, 1, out, err, sizeof err), -EINVAL);
    lens[0] = 0;
    assert_int_equal(clip_encode_text(f->m, ids, lens, 1, out, err, sizeof err), -EINVAL);
    assert_int_equal(clip_encode_images(f->m, NULL, 1, out, err, sizeof err), -EINVAL);
    float px[3 * 32 * 32] = {0};
    assert_int_equal(clip_encode_images(f->m, px, 0, out, err, sizeof err), -EINVAL);
    assert_int_equal(clip_encode_images(f->m, px, 1, NULL, err, sizeof err), -EINVAL);

    clip_model *m = (clip_model *)1;
    assert_true(clip_load(&m, "/nonexistent/clip", err, sizeof err) < 0);
    assert_null(m);
    clip_free(NULL);
}

/* A random model: batched images equal images alone; shapes checked. */
static void test_random_model(void **state)
{
    (void)state;
    clip_hparams hp = {.text_ctx = 16, .text_vocab = 100, .text_width = 24,
                       .vision_width = 48, .image_size = 24, .patch_size = 6,
                       .proj_dim = 8, .eot_id = 99, .text_layers = 1, .text_heads = 2,
                       .text_ff = 40, .vision_layers = 2, .vision_heads = 3, .vision_ff = 96};
    clip_model *m = NULL;
    char err[256] = "";
    if (clip_create_random(&m, &hp, 7, err, sizeof err) != 0)
        fail_msg("create_random: %s", err);
    assert_true(fabsf(clip_logit_scale(m) - 100.0f) < 1e-3f);
    enum { N = 3, PX = 3 * 24 * 24 };
    float *px = malloc(N * PX * sizeof(float));
    assert_non_null(px);
    for (int i = 0; i < N * PX; i++)
        px[i] = (float)sin(i * 0.37);
    float out[N * 8], one[8];
    assert_int_equal(clip_encode_images(m, px, N, out, err, sizeof err), 0);
    for (int b = 0; b < N; b++) {
        assert_int_equal(clip_encode_images(m, px + b * PX, 1, one, err, sizeof err), 0);
        assert_true(max_abs_diff(one, out + b * 8, 8) < 1e-5);
    }
    int32_t t[] = {5, 6, 99};
    int32_t *ids[1] = {t};
    int lens[1] = {3};
    assert_int_equal(clip_encode_text(m, ids, lens, 1, out, err, sizeof err), 0);
    for (int i = 0; i < 8; i++)
        assert_true(isfinite(out[i]));
    hp.image_size = 25; /* not a multiple of the patch */
    clip_model *m2 = NULL;
    assert_int_equal(clip_create_random(&m2, &hp, 7, err, sizeof err), -EINVAL);
    assert_null(m2);
    free(px);
    clip_free(m);
}

int main(void)
{
    const struct CMUnitTest ref[] = {
        cmocka_unit_test(test_hparams),
        cmocka_unit_test(test_text_labels),
        cmocka_unit_test(test_text_prompts),
        cmocka_unit_test(test_images),
        cmocka_unit_test(test_vision_hidden),
        cmocka_unit_test(test_logits_probs),
        cmocka_unit_test(test_legacy_pooling),
        cmocka_unit_test(test_bad_args),
    };
    const struct CMUnitTest plain[] = {
        cmocka_unit_test(test_random_model),
    };
    int rc = cmocka_run_group_tests_name("clip (random)", plain, NULL, NULL);
    tu_require_shared("test_clip");
    return rc | cmocka_run_group_tests_name("clip-tiny", ref, setup, teardown);
}
