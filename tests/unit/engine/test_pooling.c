/* test_pooling.c - pooling of hidden states (hand-computed values), L2
 * normalization, and pool_config_load on the conformance models and on
 * small sentence-transformers folders written here. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pooling.h"

static void assert_close(const float *got, const float *want, int n)
{
    for (int i = 0; i < n; i++)
        if (fabsf(got[i] - want[i]) > 1e-6f)
            fail_msg("element %d: got %.9g, want %.9g", i, got[i], want[i]);
}

static void test_apply(void **state)
{
    (void)state;
    const float h[3 * 2] = {1, 2, 3, 4, 5, 9};
    float out[2];
    pool_apply(POOL_MEAN, h, 3, 2, out);
    assert_close(out, (const float[]){3, 5}, 2);
    pool_apply(POOL_CLS, h, 3, 2, out);
    assert_close(out, (const float[]){1, 2}, 2);
    pool_apply(POOL_LAST, h, 3, 2, out);
    assert_close(out, (const float[]){5, 9}, 2);
    pool_apply(POOL_MEAN, h, 1, 2, out); /* one token: itself */
    assert_close(out, (const float[]){1, 2}, 2);
    pool_apply(POOL_MEAN, h, 0, 2, out); /* no tokens: zeros */
    assert_close(out, (const float[]){0, 0}, 2);
    /* the mean is accumulated in double: (1e8 + 3 - 1e8) / 3 */
    const float big[3] = {1e8f, 3.0f, -1e8f};
    pool_apply(POOL_MEAN, big, 3, 1, out);
    assert_close(out, (const float[]){1.0f}, 1);
    assert_string_equal(pool_kind_name(POOL_MEAN), "mean");
    assert_string_equal(pool_kind_name(POOL_CLS), "cls");
    assert_string_equal(pool_kind_name(POOL_LAST), "last");
}

static void test_normalize(void **state)
{
    (void)state;
    float v[2] = {3, 4};
    pool_l2_normalize(v, 2);
    assert_close(v, (const float[]){0.6f, 0.8f}, 2);
    float z[3] = {0, 0, 0}; /* stays zero, no NaN */
    pool_l2_normalize(z, 3);
    assert_close(z, (const float[]){0, 0, 0}, 3);
    float tiny[2] = {1e-13f, 0}; /* divided by the 1e-12 floor */
    pool_l2_normalize(tiny, 2);
    assert_true(fabsf(tiny[0] - 0.1f) < 1e-6f);
    float neg[4] = {-1, 1, -1, 1};
    pool_l2_normalize(neg, 4);
    assert_close(neg, (const float[]){-0.5f, 0.5f, -0.5f, 0.5f}, 4);
}

static void check_cfg(const char *rel, pool_kind want_kind, bool want_norm, int want_len)
{
    char *p = tu_shared_path(rel);
    if (!p) skip();
    pool_kind k = (pool_kind)-1;
    bool nz = false;
    int len = -1;
    char err[512] = "";
    if (pool_config_load(p, &k, &nz, &len, err, sizeof err) != 0) fail_msg("%s: %s", rel, err);
    assert_int_equal(k, want_kind);
    assert_int_equal(nz, want_norm);
    assert_int_equal(len, want_len);
    free(p);
}

static void test_cfg_conformance(void **state)
{
    (void)state;
    check_cfg("conformance/bert-tiny", POOL_MEAN, true, 512);
    check_cfg("conformance/bert-tiny/model-f32.gguf", POOL_MEAN, true, 512);
    /* decoders without sentence-transformers files: last token, normalized */
    check_cfg("conformance/llama-tiny", POOL_LAST, true, 512);
    check_cfg("conformance/gpt2-tiny/model-f32.gguf", POOL_LAST, true, 512);
}

/* ---- folders written here ---- */

static void put(const char *dir, const char *name, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void rm(const char *dir, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

static const char *const MODULES_NO_NORM =
    "[{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models."
    "Transformer\"},{\"idx\":1,\"name\":\"1\",\"path\":\"pool\",\"type\":"
    "\"sentence_transformers.models.Pooling\"}]";

static void test_cfg_folders(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_pooling_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[1100];
    snprintf(sub, sizeof sub, "%s/pool", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    pool_kind k;
    bool nz;
    int len;
    char err[512];

    /* bert with no sentence-transformers files: mean + normalize */
    put(dir, "config.json", "{\"model_type\":\"bert\",\"max_position_embeddings\":128}");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), 0);
    assert_int_equal(k, POOL_MEAN);
    assert_true(nz);
    assert_int_equal(len, 128);

    /* CLS pooling in a module folder named by modules.json, no Normalize */
    put(dir, "modules.json", MODULES_NO_NORM);
    put(dir, "pool/config.json", "{\"pooling_mode_cls_token\":true,"
                                 "\"pooling_mode_mean_tokens\":false}");
    put(dir, "sentence_bert_config.json", "{\"max_seq_length\":64}");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), 0);
    assert_int_equal(k, POOL_CLS);
    assert_false(nz);
    assert_int_equal(len, 64);

    /* last-token pooling */
    put(dir, "pool/config.json", "{\"pooling_mode_lasttoken\":true}");
    assert_int_equal(pool_config_load(dir, &k, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(k, POOL_LAST);

    /* max pooling is not supported; the message names the file */
    put(dir, "pool/config.json", "{\"pooling_mode_max_tokens\":true}");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), -ENOTSUP);
    assert_non_null(strstr(err, "pool/config.json"));

    /* a wrong type and a malformed modules.json */
    put(dir, "pool/config.json", "{\"pooling_mode_mean_tokens\":\"yes\"}");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), -EINVAL);
    put(dir, "modules.json", "[{\"type\":");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "modules.json"));

    /* no modules.json but a 1_Pooling folder: its mode, normalized */
    rm(dir, "modules.json");
    put(dir, "1_Pooling/config.json", "{\"pooling_mode_cls_token\":true}");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), 0);
    assert_int_equal(k, POOL_CLS);
    assert_true(nz);

    /* missing things */
    rm(dir, "config.json");
    assert_int_equal(pool_config_load(dir, &k, &nz, &len, err, sizeof err), -ENOENT);
    assert_int_equal(pool_config_load("/nonexistent/model", &k, &nz, &len, err, sizeof err),
                     -ENOENT);

    rm(dir, "1_Pooling/config.json");
    rm(dir, "pool/config.json");
    rm(dir, "sentence_bert_config.json");
    snprintf(sub, sizeof sub, "%s/pool", dir);
    assert_int_equal(rmdir(sub), 0);
    snprintf(sub, sizeof sub, "%s/1_Pooling", dir);
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_apply),
        cmocka_unit_test(test_normalize),
        cmocka_unit_test(test_cfg_conformance),
        cmocka_unit_test(test_cfg_folders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
