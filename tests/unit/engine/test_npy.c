/* test_npy.c - the .npy reader: images built here (valid and hostile, one
 * table row per case, every truncation) and the reference arrays in
 * ../shared/conformance. */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"

/* Returns a new .npy image: magic, version major.0, the header padded with
 * spaces plus '\n' to a multiple of 64 (as numpy writes), and data_len bytes
 * (from data, or a pattern when NULL). hlen_override, when nonzero, replaces
 * the header length field. */
static unsigned char *mk_npy(int major, const char *dict, const void *data,
                             size_t data_len, uint32_t hlen_override, size_t *len) {
    size_t pre = major == 1 ? 10 : 12;
    size_t dl = strlen(dict);
    size_t hl = dl + 1;
    while ((pre + hl) % 64) hl++;
    *len = pre + hl + data_len;
    unsigned char *b = malloc(*len);
    assert_non_null(b);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)major;
    b[7] = 0;
    uint32_t field = hlen_override ? hlen_override : (uint32_t)hl;
    for (size_t i = 0; i < pre - 8; i++) b[8 + i] = (unsigned char)(field >> (8 * i));
    memcpy(b + pre, dict, dl);
    memset(b + pre + dl, ' ', hl - dl - 1);
    b[pre + hl - 1] = '\n';
    for (size_t i = 0; i < data_len; i++)
        b[pre + hl + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)i;
    return b;
}

static void test_valid_images(void **state) {
    (void)state;
    float f[6] = {1, 2, 3, 4, 5, -6};
    double d[2] = {0.5, -1e300};
    int64_t q[3] = {-1, 0, INT64_MAX};
    size_t len;
    npy_array a;
    npy_error err = {0};

    unsigned char *img = mk_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
                                f, sizeof f, 0, &len);
    if (npy_parse(&a, img, len, "f4", &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.n_dims, 2);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.n_elements, 6);
    assert_int_equal(a.nbytes, 24);
    assert_non_null(npy_f32(&a));
    assert_null(npy_f64(&a));
    assert_null(npy_i64(&a));
    assert_true(npy_f32(&a)[5] == -6.0f);
    assert_true(npy_get(&a, 2) == 3.0);
    assert_true(npy_get(&a, 6) == 0.0);  /* out of range */
    npy_free(&a);
    assert_null(a.data);
    npy_free(&a);  /* twice is harmless */
    npy_free(NULL);
    free(img);

    /* version 2, double quotes, no trailing comma, 1-d shape "(2,)" */
    img = mk_npy(2, "{\"descr\":\"<f8\",\"fortran_order\":False,\"shape\":(2,)}", d, sizeof d, 0,
                 &len);
    if (npy_parse(&a, img, len, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_F64);
    assert_int_equal(a.n_dims, 1);
    assert_true(npy_f64(&a)[1] == -1e300);
    npy_free(&a);
    free(img);

    /* version 3, int64, keys in another order */
    img = mk_npy(3, "{'shape': (3,), 'fortran_order': False, 'descr': '<i8'}", q, sizeof q, 0,
                 &len);
    if (npy_parse(&a, img, len, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_I64);
    assert_true(npy_i64(&a)[2] == INT64_MAX);
    assert_true(npy_get(&a, 0) == -1.0);
    npy_free(&a);
    free(img);

    /* a scalar "()" and an empty array "(0, 3)" */
    img = mk_npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", d, 8, 0, &len);
    if (npy_parse(&a, img, len, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.n_dims, 0);
    assert_int_equal(a.n_elements, 1);
    assert_true(npy_get(&a, 0) == 0.5);
    npy_free(&a);
    free(img);
    img = mk_npy(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 3), }", NULL, 0, 0,
                 &len);
    if (npy_parse(&a, img, len, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.n_elements, 0);
    assert_int_equal(a.nbytes, 0);
    npy_free(&a);
    free(img);

    assert_string_equal(npy_dtype_name(NPY_I64), "<i8");
    assert_int_equal(npy_dtype_size(NPY_F32), 4);
}

/* ---- hostile images: one row per case ------------------------------------ */

typedef struct npy_case {
    const char *name;
    int major;
    const char *dict;
    size_t data_len;
    uint32_t hlen;      /* 0: computed */
    const char *want;
} npy_case;

#define OK_F4(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"

static const npy_case npy_cases[] = {
    {"format version 4", 4, OK_F4("(1,)"), 4, 0, "version 4.0 is not supported"},
    {"format version 0", 0, OK_F4("(1,)"), 4, 0, "version 0.0 is not supported"},
    {"header length past end", 1, OK_F4("(1,)"), 4, 4000, "runs past the end"},
    {"header length huge (v2)", 2, OK_F4("(1,)"), 4, 0xffffffffu, "exceeds the cap"},
    {"not a dict", 1, "['descr', '<f4']", 0, 0, "not a dict literal"},
    {"big-endian float", 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", 4, 0,
     "dtype '>f4' is not supported"},
    {"uint8", 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4,), }", 4, 0,
     "dtype '|u1' is not supported"},
    {"float16", 1, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4, 0,
     "'<f2' is not supported"},
    {"int32", 1, "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", 4, 0,
     "'<i4' is not supported"},
    {"object array", 1, "{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", 8, 0,
     "'|O' is not supported"},
    {"structured dtype", 1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }", 4,
     0, "structured dtypes are not supported"},
    {"Fortran order", 1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, 0,
     "Fortran-order arrays are not supported"},
    {"fortran_order not a bool", 1, "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }", 4, 0,
     "not True or False"},
    {"missing shape", 1, "{'descr': '<f4', 'fortran_order': False, }", 4, 0, "missing key 'shape'"},
    {"missing descr", 1, "{'fortran_order': False, 'shape': (1,), }", 4, 0, "missing key 'descr'"},
    {"missing fortran_order", 1, "{'descr': '<f4', 'shape': (1,), }", 4, 0,
     "missing key 'fortran_order'"},
    {"unknown key", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1, }", 4, 0,
     "unexpected key 'x'"},
    {"duplicate key", 1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}",
     4, 0, "duplicate key 'descr'"},
    {"negative dim", 1, OK_F4("(-1,)"), 4, 0, "shape[0] is not a non-negative integer"},
    {"fractional dim", 1, OK_F4("(2.5,)"), 10, 0, "malformed shape tuple"},
    {"dim too long", 1, OK_F4("(1234567890123456789,)"), 4, 0, "at most 18 digits"},
    {"shape not a tuple", 1, OK_F4("[1]"), 4, 0, "'shape' is not a tuple"},
    {"shape with a lone comma", 1, OK_F4("(,)"), 4, 0, "shape[0] is not a non-negative integer"},
    {"unclosed shape", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,", 4, 0,
     "shape[1]"},
    {"too many dims", 1, OK_F4("(1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1)"), 4, 0,
     "more than 16 dimensions"},
    {"element count overflow", 1, OK_F4("(999999999999999999, 999999999999999999)"), 4, 0,
     "overflows"},
    {"dim of 19 digits", 1, OK_F4("(4611686018427387904,)"), 4, 0, "at most 18 digits"},
    {"byte size overflow", 1, OK_F4("(100000000000000000, 100)"), 4, 0, "overflows"},
    {"data too short", 1, OK_F4("(2, 3)"), 20, 0, "data is 20 bytes but dtype <f4 with 6 elements needs 24"},
    {"data too long", 1, OK_F4("(2,)"), 12, 0, "data is 12 bytes"},
    {"unterminated key string", 1, "{'descr: '<f4'}", 0, 0, "expected ':' after key"},
    {"escape in a string", 1, "{'de\\scr': '<f4'}", 0, 0, "expected a quoted key"},
    {"missing colon", 1, "{'descr' '<f4'}", 0, 0, "expected ':'"},
    {"missing comma", 1, "{'descr': '<f4' 'shape': (1,)}", 0, 0, "expected ',' or '}'"},
    {"trailing bytes after dict", 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
     4, 0, "trailing bytes"},
    {"empty dict", 1, "{}", 0, 0, "missing key 'descr'"},
};

static void test_hostile_images(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof npy_cases / sizeof npy_cases[0]; i++) {
        const npy_case *c = &npy_cases[i];
        size_t len;
        unsigned char *img = mk_npy(c->major, c->dict, NULL, c->data_len, c->hlen, &len);
        npy_array a;
        memset(&a, 0x5a, sizeof a);
        npy_error err = {0};
        int rc = npy_parse(&a, img, len, "hostile.npy", &err);
        if (rc != -EINVAL) fail_msg("case '%s': rc %d (%s)", c->name, rc, err.msg);
        if (a.data != NULL || a.n_dims != 0) fail_msg("case '%s': output not zeroed", c->name);
        if (!strstr(err.msg, c->want) || !strstr(err.msg, "hostile.npy"))
            fail_msg("case '%s': error \"%s\" lacks \"%s\"", c->name, err.msg, c->want);
        free(img);
    }
    /* bad magic and short files */
    npy_array a;
    npy_error err = {0};
    assert_int_equal(npy_parse(&a, "\x93NUMPZ\x01\x00\x00\x00", 10, "m", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "bad magic"));
    assert_int_equal(npy_parse(&a, "\x93NUMPY\x01", 7, "m", &err), -EINVAL);
    assert_int_equal(npy_parse(&a, "\x93NUMPY\x02\x00\x00\x00\x00", 11, "m", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(npy_parse(&a, NULL, 0, "m", &err), -EINVAL);
    unsigned char v11[] = "\x93NUMPY\x01\x01\x00\x00";
    assert_int_equal(npy_parse(&a, v11, 10, "m", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "version 1.1"));
}

/* Every proper prefix of a valid image fails, read from an exact-size
 * allocation (ASan catches any read past it). */
static void test_truncated_prefixes(void **state) {
    (void)state;
    double d[3] = {1, 2, 3};
    for (int major = 1; major <= 2; major++) {
        size_t len;
        unsigned char *img = mk_npy(major, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                                    d, sizeof d, 0, &len);
        for (size_t n = 0; n < len; n++) {
            unsigned char *p = malloc(n ? n : 1);
            assert_non_null(p);
            memcpy(p, img, n);
            npy_array a;
            npy_error err = {0};
            int rc = npy_parse(&a, n ? p : NULL, n, "prefix", &err);
            if (rc != -EINVAL) fail_msg("v%d prefix %zu of %zu accepted", major, n, len);
            free(p);
        }
        npy_array a;
        npy_error err = {0};
        assert_int_equal(npy_parse(&a, img, len, "whole", &err), 0);
        npy_free(&a);
        free(img);
    }
}

static void test_load_errors(void **state) {
    (void)state;
    npy_array a;
    npy_error err = {0};
    assert_int_equal(npy_load(&a, "/nonexistent/x.npy", &err), -ENOENT);
    assert_non_null(strstr(err.msg, "/nonexistent/x.npy: cannot open"));
}

/* ---- reference arrays ---------------------------------------------------- */

static void test_ref_gpt2_logits(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/last_logits.npy");
    if (!path) skip();
    npy_array a;
    npy_error err = {0};
    if (npy_load(&a, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_F32);
    assert_int_equal(a.n_dims, 2);
    assert_int_equal(a.shape[0], 4);
    assert_int_equal(a.shape[1], 50257);
    free(path);

    /* the argmax of each row is the top-1 entry of reference.json */
    path = tu_shared_path("conformance/gpt2-tiny/reference.json");
    if (path) {
        json_error_t je;
        json_t *ref = json_load_file(path, 0, &je);
        assert_non_null(ref);
        json_t *prompts = json_object_get(ref, "prompts");
        assert_int_equal(json_array_size(prompts), 4);
        for (size_t r = 0; r < 4; r++) {
            const float *row = npy_f32(&a) + r * 50257;
            size_t best = 0;
            for (size_t v = 1; v < 50257; v++)
                if (row[v] > row[best]) best = v;
            json_t *top = json_array_get(json_object_get(json_array_get(prompts, r),
                                                         "last_logits_top20"), 0);
            assert_int_equal(best, json_integer_value(json_array_get(top, 0)));
            assert_float_equal(row[best], json_real_value(json_array_get(top, 1)), 1e-6);
        }
        json_decref(ref);
        free(path);
    }
    npy_free(&a);
}

static void test_ref_other_dtypes(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/clip-tiny/arrays/resized_red_square.npy");
    if (!path) skip();
    npy_array a;
    npy_error err = {0};
    if (npy_load(&a, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_I64);
    assert_int_equal(a.n_dims, 3);
    assert_int_equal(a.shape[2], 3);
    assert_int_equal(a.n_elements, (size_t)(a.shape[0] * a.shape[1] * 3));
    const int64_t *px = npy_i64(&a);
    for (size_t i = 0; i < a.n_elements; i += 3) {  /* solid red survives the resize */
        if (px[i] != 255 || px[i + 1] != 0 || px[i + 2] != 0)
            fail_msg("pixel %zu: %lld %lld %lld", i / 3, (long long)px[i], (long long)px[i + 1],
                     (long long)px[i + 2]);
    }
    npy_free(&a);
    free(path);

    path = tu_shared_path("conformance/gpt2-tiny/dpo/lora/h.0.attn.q.lora_A.npy");
    if (!path) skip();
    if (npy_load(&a, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.dtype, NPY_F64);
    assert_int_equal(a.shape[0], 4);
    assert_int_equal(a.shape[1], 32);
    double sum = 0;
    for (size_t i = 0; i < a.n_elements; i++) sum += fabs(npy_get(&a, i));
    assert_true(sum > 0 && isfinite(sum));
    npy_free(&a);
    free(path);

    path = tu_shared_path("conformance/clip-tiny/pixel_values.npy");
    if (!path) skip();
    if (npy_load(&a, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(a.n_dims, 4);
    assert_int_equal(a.shape[0], 2);
    assert_int_equal(a.shape[1], 3);
    assert_int_equal(a.shape[2], 32);
    assert_int_equal(a.shape[3], 32);
    /* red square, channel 0: (1 - 0.48145466) / 0.26862954 */
    assert_float_equal(npy_f32(&a)[0], (1.0 - 0.48145466) / 0.26862954, 1e-5);
    npy_free(&a);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_images),
        cmocka_unit_test(test_hostile_images),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_ref_gpt2_logits),
        cmocka_unit_test(test_ref_other_dtypes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
