/* test_gguf_writer.c - the GGUF writer, checked through the reader: every
 * metadata type (also copied pair by pair from a file), F32/F16/Q8_0 tensors of 1 to 3 dims read back with gguf.h
 * and weights.h (exact for F32, rounding bounds for F16 and Q8_0), F16
 * rounding at its edges, argument errors (duplicates, bad shapes, Q8_0 row
 * lengths), failed writes that must leave nothing behind, and a tiny llama
 * that model_load accepts and runs.
 *
 * Every test works in its own temporary folder and removes it with rmdir at
 * the end, which fails if a stray file (a leftover .tmp) is still there. */
#include "tu_util.h"

#include "gguf.h"
#include "gguf_writer.h"
#include "model.h"
#include "rng.h"
#include "weights.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static gguf_writer *new_writer(void) {
    gguf_writer *w = NULL;
    assert_int_equal(gguf_writer_new(&w), 0);
    assert_non_null(w);
    return w;
}

static void write_ok(gguf_writer *w, const char *path) {
    char err[512] = "";
    int rc = gguf_writer_write(w, path, err, sizeof err);
    if (rc) fail_msg("write %s: %d %s", path, rc, err);
}

static gguf_file *open_ok(const char *path) {
    gguf_file *f = NULL;
    char err[512];
    if (gguf_open(&f, path, err, sizeof err)) fail_msg("%s", err);
    return f;
}

/* n values: a constant plus uniform noise of scale, from a fixed seed. */
static float *rand_floats(size_t n, uint64_t seed, float value, float scale) {
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = value + scale * (float)(2.0 * rng_uniform(&r) - 1.0);
    return x;
}

/* ---- metadata ------------------------------------------------------------ */

static void set_all_types(gguf_writer *w) {
    static const char *const strs[] = {"<unk>", "", "\xe2\x96\x81hello"};
    static const int32_t i32s[] = {0, -1, INT32_MIN, INT32_MAX};
    static const float f32s[] = {0.5f, -1e-7f, 3.0e38f};
    assert_int_equal(gguf_writer_set_u32(w, "t.u32", 4000000000u), 0);
    assert_int_equal(gguf_writer_set_i32(w, "t.i32", -123456), 0);
    assert_int_equal(gguf_writer_set_u64(w, "t.u64", UINT64_MAX - 5), 0);
    assert_int_equal(gguf_writer_set_f32(w, "t.f32", -2.5e-3f), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.true", true), 0);
    assert_int_equal(gguf_writer_set_bool(w, "t.false", false), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.str", "llama \xc3\xa9"), 0);
    assert_int_equal(gguf_writer_set_str(w, "t.empty_str", ""), 0);
    assert_int_equal(gguf_writer_set_arr_str(w, "t.arr_str", strs, 3), 0);
    assert_int_equal(gguf_writer_set_arr_i32(w, "t.arr_i32", i32s, 4), 0);
    assert_int_equal(gguf_writer_set_arr_f32(w, "t.arr_f32", f32s, 3), 0);
    assert_int_equal(gguf_writer_set_arr_i32(w, "t.arr_empty", NULL, 0), 0);
}

static void check_all_types(const gguf_file *f) {
    char err[256];
    uint32_t u32;
    int32_t i32;
    uint64_t u64;
    float f32;
    bool b;
    const char *s;
    size_t len, n;
    const void *data;
    assert_int_equal(gguf_get_u32(f, "t.u32", &u32, err, sizeof err), 0);
    assert_true(u32 == 4000000000u);
    assert_int_equal(gguf_get_i32(f, "t.i32", &i32, err, sizeof err), 0);
    assert_int_equal(i32, -123456);
    assert_int_equal(gguf_get_u64(f, "t.u64", &u64, err, sizeof err), 0);
    assert_true(u64 == UINT64_MAX - 5);
    assert_int_equal(gguf_get_f32(f, "t.f32", &f32, err, sizeof err), 0);
    assert_true(f32 == -2.5e-3f);
    assert_int_equal(gguf_get_bool(f, "t.true", &b, err, sizeof err), 0);
    assert_true(b);
    assert_int_equal(gguf_get_bool(f, "t.false", &b, err, sizeof err), 0);
    assert_false(b);
    assert_int_equal(gguf_get_str(f, "t.str", &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "llama \xc3\xa9");
    assert_int_equal(gguf_get_str(f, "t.empty_str", &s, &len, err, sizeof err), 0);
    assert_int_equal(len, 0);
    assert_int_equal(gguf_get_arr(f, "t.arr_str", GGUF_TYPE_STRING, &data, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 3);
    const gguf_str *gs = data;
    assert_string_equal(gs[0].s, "<unk>");
    assert_int_equal(gs[1].len, 0);
    assert_string_equal(gs[2].s, "\xe2\x96\x81hello");
    assert_int_equal(gguf_get_arr(f, "t.arr_i32", GGUF_TYPE_INT32, &data, &n, err, sizeof err), 0);
    assert_int_equal(n, 4);
    assert_int_equal(((const int32_t *)data)[2], INT32_MIN);
    assert_int_equal(((const int32_t *)data)[3], INT32_MAX);
    assert_int_equal(gguf_get_arr(f, "t.arr_f32", GGUF_TYPE_FLOAT32, &data, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 3);
    assert_true(((const float *)data)[1] == -1e-7f && ((const float *)data)[2] == 3.0e38f);
    assert_int_equal(gguf_get_arr(f, "t.arr_empty", GGUF_TYPE_INT32, &data, &n, err, sizeof err),
                     0);
    assert_int_equal(n, 0);
}

static void test_metadata_roundtrip(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), path[512];
    tu_join(path, sizeof path, dir, "meta.gguf");
    gguf_writer *w = new_writer();
    set_all_types(w);
    write_ok(w, path);
    gguf_writer_free(w);

    gguf_file *f = open_ok(path);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_alignment(f), 32);
    assert_int_equal(gguf_n_kv(f), 13); /* general.alignment first, then call order */
    assert_string_equal(gguf_kv_key(f, 0), "general.alignment");
    assert_int_equal(gguf_kv_value(f, 0)->type, GGUF_TYPE_UINT32);
    assert_string_equal(gguf_kv_key(f, 1), "t.u32");
    assert_string_equal(gguf_kv_key(f, 12), "t.arr_empty");
    assert_int_equal(gguf_n_tensors(f), 0);
    check_all_types(f);
    gguf_close(f);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* Every pair of a file copied key by key into a new writer reads back the
 * same; a missing key is a sticky -ENOENT naming it. */
static void test_copy_kv(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), src[512], dst[512];
    tu_join(src, sizeof src, dir, "src.gguf");
    tu_join(dst, sizeof dst, dir, "dst.gguf");
    gguf_writer *w = new_writer();
    set_all_types(w);
    write_ok(w, src);
    gguf_writer_free(w);
    gguf_file *f = open_ok(src);
    w = new_writer();
    for (size_t i = 1; i < gguf_n_kv(f); i++) /* 0: general.alignment, preset */
        assert_int_equal(gguf_writer_copy_kv(w, f, gguf_kv_key(f, i)), 0);
    write_ok(w, dst);
    gguf_writer_free(w);
    gguf_file *g = open_ok(dst);
    assert_int_equal(gguf_n_kv(g), gguf_n_kv(f));
    check_all_types(g);
    gguf_close(g);
    w = new_writer();
    assert_int_equal(gguf_writer_copy_kv(w, f, "t.absent"), -ENOENT);
    assert_non_null(strstr(gguf_writer_error(w), "t.absent"));
    char err[256];
    assert_int_equal(gguf_writer_write(w, dst, err, sizeof err), -ENOENT);
    gguf_writer_free(w);
    gguf_close(f);
    assert_int_equal(unlink(src), 0);
    assert_int_equal(unlink(dst), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- tensors ------------------------------------------------------------- */

typedef struct tcase {
    const char *name;
    gguf_writer_type type;
    int n_dims;
    int64_t shape[3];
    float value, scale;
} tcase;

static const tcase CASES[] = {
    {"f32.1d", GGUF_WRITER_F32, 1, {7}, 0.0f, 3.0f},
    {"f32.2d", GGUF_WRITER_F32, 2, {3, 5}, 1.0f, 0.5f},
    {"f32.3d", GGUF_WRITER_F32, 3, {2, 3, 4}, -1.0f, 2.0f},
    {"f16.1d", GGUF_WRITER_F16, 1, {33}, 0.0f, 100.0f},
    {"f16.2d", GGUF_WRITER_F16, 2, {4, 9}, 0.0f, 1e-3f},
    {"q8.1d", GGUF_WRITER_Q8_0, 1, {64}, 0.0f, 0.05f},
    {"q8.2d", GGUF_WRITER_Q8_0, 2, {3, 96}, 0.5f, 1.0f},
    {"q8.big", GGUF_WRITER_Q8_0, 2, {70, 160}, 0.0f, 4.0f}, /* > one write chunk */
    {"f16.big", GGUF_WRITER_F16, 2, {5, 1000}, 0.0f, 1.0f},
    {"q4.2d", GGUF_WRITER_Q4_0, 2, {3, 96}, 0.5f, 1.0f},
    {"q4.big", GGUF_WRITER_Q4_0, 2, {70, 160}, 0.0f, 4.0f}, /* > one write chunk */
};
#define N_CASES (sizeof CASES / sizeof CASES[0])

static size_t case_n(const tcase *c) {
    size_t n = 1;
    for (int d = 0; d < c->n_dims; d++) n *= (size_t)c->shape[d];
    return n;
}

/* Bound of |stored - x| for element i of the case's data. */
static double tol_at(const tcase *c, const float *x, size_t i) {
    if (c->type == GGUF_WRITER_F32) return 0.0;
    if (c->type == GGUF_WRITER_F16) return fabs(x[i]) * 0x1p-11 + 0x1p-25;
    double amax = 0.0; /* of the block: half a step plus the f16 scale */
    for (size_t j = i / 32 * 32; j < i / 32 * 32 + 32; j++) amax = fmax(amax, fabs(x[j]));
    if (c->type == GGUF_WRITER_Q4_0) /* a whole step of amax / 8 where 8 is clamped to 7 */
        return amax * (1.0 / 8.0 + 0x1p-10);
    return amax * (0.5 / 127.0 + 0x1p-10);
}

static void check_tensor(const gguf_file *f, const tcase *c, const float *x) {
    const gguf_tensor *t = gguf_find_tensor(f, c->name);
    assert_non_null(t);
    assert_int_equal((int)t->type, (int)c->type);
    assert_int_equal(t->n_dims, c->n_dims);
    for (int d = 0; d < c->n_dims; d++) assert_int_equal(t->ne[d], c->shape[c->n_dims - 1 - d]);
    assert_int_equal((gguf_data_offset(f) + t->offset) % 32, 0);
    wt_view v;
    char err[256];
    assert_int_equal(wt_view_gguf(&v, t, err, sizeof err), 0);
    assert_int_equal(v.n_dims, c->n_dims);
    for (int d = 0; d < c->n_dims; d++) assert_int_equal(v.shape[d], c->shape[d]);
    size_t n = case_n(c);
    float *y = malloc(n * sizeof *y);
    assert_non_null(y);
    wt_convert(y, &v, 0);
    for (size_t i = 0; i < n; i++)
        if (!(fabs((double)y[i] - x[i]) <= tol_at(c, x, i)))
            fail_msg("%s[%zu]: stored %.9g, written %.9g", c->name, i, y[i], x[i]);
    free(y);
}

/* The largest element of each Q8_0 block is stored as +-127 (0 in an
 * all-zero block). */
static void check_q8_extremes(const gguf_file *f, const tcase *c, const float *x) {
    const uint8_t *p = gguf_find_tensor(f, c->name)->data;
    for (size_t b = 0; b < case_n(c) / 32; b++) {
        size_t at = 0;
        for (size_t j = 1; j < 32; j++)
            if (fabsf(x[b * 32 + j]) > fabsf(x[b * 32 + at])) at = j;
        int8_t q = (int8_t)p[b * 34 + 2 + at];
        float m = x[b * 32 + at];
        assert_int_equal(q, m < 0.0f ? -127 : m > 0.0f ? 127 : 0);
    }
}

static void test_tensor_roundtrip(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), path[512];
    tu_join(path, sizeof path, dir, "tensors.gguf");
    float *data[N_CASES];
    gguf_writer *w = new_writer();
    assert_int_equal(gguf_writer_set_str(w, "general.name", "tensors"), 0);
    for (size_t i = 0; i < N_CASES; i++) {
        const tcase *c = &CASES[i];
        data[i] = rand_floats(case_n(c), 1000 + i, c->value, c->scale);
        assert_int_equal(gguf_writer_add_tensor(w, c->name, c->n_dims, c->shape, c->type,
                                                data[i]), 0);
    }
    for (size_t j = 32; j < 64; j++) data[5][j] = 0.0f; /* an all-zero Q8_0 block: scale 0 */
    write_ok(w, path);
    gguf_writer_free(w); /* the file no longer depends on the writer */

    gguf_file *f = open_ok(path);
    assert_int_equal(gguf_n_tensors(f), N_CASES);
    for (size_t i = 0; i < N_CASES; i++) {
        assert_string_equal(gguf_tensor_at(f, i)->name, CASES[i].name);
        check_tensor(f, &CASES[i], data[i]);
        if (CASES[i].type == GGUF_WRITER_Q8_0) check_q8_extremes(f, &CASES[i], data[i]);
    }
    gguf_close(f);
    for (size_t i = 0; i < N_CASES; i++) free(data[i]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* F16 rounding: nearest even in the normal and subnormal ranges,
 * overflow to inf, NaN kept. */
static void test_f16_edges(void **state) {
    (void)state;
    static const float in[] = {
        0.0f, -0.0f, 1.0f, -2.0f, 65504.0f, 65519.0f, 65520.0f, 1e30f, -INFINITY,
        1.0f + 0x1p-11f,         /* tie: down to even 1 */
        1.0f + 3 * 0x1p-11f,     /* tie: up to even 1 + 2^-9 */
        0x1p-14f,                /* smallest normal */
        0x1p-14f - 0x1p-25f,     /* 1023.5 subnormal units: up to 2^-14 */
        0x1p-24f,                /* smallest subnormal */
        0x1p-25f,                /* tie: down to 0 */
        1.5f * 0x1p-24f,         /* tie: up to 2 units */
        2.5f * 0x1p-24f,         /* tie: down to 2 units */
        0x1p-26f, 1e-45f,        /* underflow to 0 */
        NAN,
    };
    static const float want[] = {
        0.0f, -0.0f, 1.0f, -2.0f, 65504.0f, 65504.0f, INFINITY, INFINITY, -INFINITY,
        1.0f, 1.0f + 0x1p-9f, 0x1p-14f, 0x1p-14f, 0x1p-24f, 0.0f, 2 * 0x1p-24f,
        2 * 0x1p-24f, 0.0f, 0.0f, NAN,
    };
    size_t n = sizeof in / sizeof in[0];
    assert_int_equal(n, sizeof want / sizeof want[0]);
    char *dir = tu_tmpdir("gw"), path[512];
    tu_join(path, sizeof path, dir, "f16.gguf");
    gguf_writer *w = new_writer();
    int64_t shape[1] = {(int64_t)n};
    assert_int_equal(gguf_writer_add_tensor(w, "edges", 1, shape, GGUF_WRITER_F16, in), 0);
    write_ok(w, path);
    gguf_writer_free(w);
    gguf_file *f = open_ok(path);
    const uint8_t *p = gguf_find_tensor(f, "edges")->data;
    for (size_t i = 0; i < n; i++) {
        float got = st_f16_to_f32((uint16_t)(p[2 * i] | p[2 * i + 1] << 8));
        bool ok = isnan(want[i]) ? isnan(got)
                                 : got == want[i] && signbit(got) == signbit(want[i]);
        if (!ok) fail_msg("f16(%a) = %a, expected %a", in[i], got, want[i]);
    }
    gguf_close(f);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- argument errors ----------------------------------------------------- */

/* The writer refuses the write with its first error, and creates nothing. */
static void expect_refused(gguf_writer *w, int code, const char *needle) {
    const char *msg = gguf_writer_error(w);
    if (!strstr(msg, needle)) fail_msg("error \"%s\" lacks \"%s\"", msg, needle);
    char *dir = tu_tmpdir("gw"), path[512], err[512] = "";
    tu_join(path, sizeof path, dir, "refused.gguf");
    assert_int_equal(gguf_writer_write(w, path, err, sizeof err), code);
    assert_string_equal(err, msg);
    assert_int_equal(rmdir(dir), 0); /* fails if anything was created */
    free(dir);
    gguf_writer_free(w);
}

static void test_duplicate_keys(void **state) {
    (void)state;
    gguf_writer *w = new_writer();
    assert_string_equal(gguf_writer_error(w), "");
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", 2), 0);
    assert_int_equal(gguf_writer_set_str(w, "llama.block_count", "x"), -EINVAL);
    /* the first error sticks: a later one does not replace its message */
    assert_int_equal(gguf_writer_set_u32(w, "", 1), -EINVAL);
    expect_refused(w, -EINVAL, "key 'llama.block_count': already set");

    w = new_writer();
    assert_int_equal(gguf_writer_set_u32(w, "general.alignment", 64), -EINVAL);
    expect_refused(w, -EINVAL, "general.alignment");

    w = new_writer();
    static const float one[32] = {1.0f};
    int64_t shape[1] = {32};
    assert_int_equal(gguf_writer_add_tensor(w, "a", 1, shape, GGUF_WRITER_F32, one), 0);
    assert_int_equal(gguf_writer_add_tensor(w, "a", 1, shape, GGUF_WRITER_Q8_0, one), -EINVAL);
    expect_refused(w, -EINVAL, "tensor 'a': already added");
}

static void test_bad_tensors(void **state) {
    (void)state;
    static const float x[4096];
    static const struct {
        const char *name;
        int n_dims;
        int64_t shape[5];
        int type;
        const char *needle;
    } bad[] = {
        {"q8.row48", 1, {48}, GGUF_WRITER_Q8_0, "row length 48 is not a multiple of 32"},
        {"q8.row40", 2, {2, 40}, GGUF_WRITER_Q8_0, "row length 40"},
        {"q8.transposed", 2, {64, 20}, GGUF_WRITER_Q8_0, "row length 20"},
        {"zero.dims", 0, {1}, GGUF_WRITER_F32, "0 dims"},
        {"five.dims", 5, {1, 1, 1, 1, 1}, GGUF_WRITER_F32, "5 dims"},
        {"empty.dim", 2, {3, 0}, GGUF_WRITER_F32, "dim 1 is 0"},
        {"bf16", 1, {4}, GGUF_DTYPE_BF16, "not f32, f16, q8_0 or q4_0"},
        {"", 1, {4}, GGUF_WRITER_F32, "empty tensor name"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        gguf_writer *w = new_writer();
        assert_int_equal(gguf_writer_add_tensor(w, bad[i].name, bad[i].n_dims, bad[i].shape,
                                                (gguf_writer_type)bad[i].type, x),
                         -EINVAL);
        expect_refused(w, -EINVAL, bad[i].needle);
    }
    gguf_writer *w = new_writer();
    int64_t shape[1] = {4};
    assert_int_equal(gguf_writer_add_tensor(w, "null", 1, shape, GGUF_WRITER_F32, NULL), -EINVAL);
    expect_refused(w, -EINVAL, "tensor 'null': NULL data");
}

/* ---- failed writes leave nothing behind ---------------------------------- */

static void test_unwritable_paths(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), path[512], tmp[520], err[512];
    static const float x[32];
    int64_t shape[1] = {32};
    gguf_writer *w = new_writer();
    assert_int_equal(gguf_writer_add_tensor(w, "x", 1, shape, GGUF_WRITER_F32, x), 0);

    tu_join(path, sizeof path, dir, "missing/m.gguf"); /* no such folder */
    assert_int_equal(gguf_writer_write(w, path, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, "missing/m.gguf.tmp"));
    assert_false(tu_exists(path));

    tu_join(path, sizeof path, dir, "sub"); /* a folder: the final rename fails */
    assert_int_equal(mkdir(path, 0700), 0);
    int rc = gguf_writer_write(w, path, err, sizeof err);
    assert_true(rc == -EISDIR || rc == -ENOTDIR || rc == -EEXIST);
    assert_non_null(strstr(err, "rename"));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(tu_exists(tmp));
    assert_int_equal(rmdir(path), 0);

    gguf_writer_free(w);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* A write cut short (here by RLIMIT_FSIZE, as a full disk would) keeps the
 * old file intact and removes the temporary. */
static void test_failed_write_keeps_old_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), path[512], tmp[520], err[512] = "";
    tu_join(path, sizeof path, dir, "m.gguf");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    gguf_writer *w = new_writer();
    assert_int_equal(gguf_writer_set_str(w, "general.name", "old"), 0);
    write_ok(w, path);
    gguf_writer_free(w);
    size_t old_len;
    char *old = tu_read_file(path, &old_len);
    assert_non_null(old);

    float *big = rand_floats(64 * 1024, 7, 0.0f, 1.0f);
    int64_t shape[2] = {256, 256};
    w = new_writer();
    assert_int_equal(gguf_writer_add_tensor(w, "big", 2, shape, GGUF_WRITER_F32, big), 0);
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of dying */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = gguf_writer_write(w, path, err, sizeof err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -EFBIG);
    assert_non_null(strstr(err, "m.gguf.tmp"));
    assert_false(tu_exists(tmp));
    size_t now_len;
    char *now = tu_read_file(path, &now_len);
    assert_non_null(now);
    assert_int_equal(now_len, old_len);
    assert_memory_equal(now, old, old_len);

    write_ok(w, path); /* the writer still holds everything: a retry works */
    gguf_file *f = open_ok(path);
    assert_non_null(gguf_find_tensor(f, "big"));
    assert_null(gguf_find_value(f, "general.name"));
    gguf_close(f);
    gguf_writer_free(w);
    free(big);
    free(old);
    free(now);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- a tiny llama for model_load ----------------------------------------- */

enum { TL_C = 64, TL_NH = 2, TL_FF = 96, TL_V = 40, TL_L = 2 };

static void tl_meta(gguf_writer *w) {
    assert_int_equal(gguf_writer_set_str(w, "general.architecture", "llama"), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.context_length", 64), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.embedding_length", TL_C), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.block_count", TL_L), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.feed_forward_length", TL_FF), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.attention.head_count", TL_NH), 0);
    assert_int_equal(gguf_writer_set_u32(w, "llama.attention.head_count_kv", TL_NH), 0);
    assert_int_equal(gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon", 1e-5f), 0);
    assert_int_equal(gguf_writer_set_f32(w, "llama.rope.freq_base", 10000.0f), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1), 0);
    assert_int_equal(gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2), 0);
}

/* Adds tensor [rows, cols] ([cols] when rows is 0) of random data, kept in
 * bufs[*nb] until the write. */
static void tl_tensor(gguf_writer *w, float **bufs, int *nb, const char *name, int64_t rows,
                      int64_t cols, float value, gguf_writer_type type) {
    int64_t shape[2] = {rows, cols};
    int n_dims = rows ? 2 : 1;
    size_t n = (size_t)(rows ? rows : 1) * (size_t)cols;
    bufs[*nb] = rand_floats(n, 100 + (uint64_t)*nb, value, value != 0.0f ? 0.01f : 0.1f);
    assert_int_equal(gguf_writer_add_tensor(w, name, n_dims, rows ? shape : shape + 1, type,
                                            bufs[*nb]), 0);
    (*nb)++;
}

static void tl_write(const char *path) {
    gguf_writer *w = new_writer();
    float *bufs[3 + TL_L * 9];
    int nb = 0;
    char name[64];
    tl_meta(w);
    tl_tensor(w, bufs, &nb, "token_embd.weight", TL_V, TL_C, 0.0f, GGUF_WRITER_F16);
    tl_tensor(w, bufs, &nb, "output_norm.weight", 0, TL_C, 1.0f, GGUF_WRITER_F32);
    tl_tensor(w, bufs, &nb, "output.weight", TL_V, TL_C, 0.0f, GGUF_WRITER_Q8_0);
    static const struct { const char *n; int rows, cols; } mats[] = {
        {"attn_q", TL_C, TL_C}, {"attn_k", TL_C, TL_C}, {"attn_v", TL_C, TL_C},
        {"attn_output", TL_C, TL_C}, {"ffn_gate", TL_FF, TL_C}, {"ffn_up", TL_FF, TL_C},
        {"ffn_down", TL_C, TL_FF},
    };
    for (int l = 0; l < TL_L; l++) {
        snprintf(name, sizeof name, "blk.%d.attn_norm.weight", l);
        tl_tensor(w, bufs, &nb, name, 0, TL_C, 1.0f, GGUF_WRITER_F32);
        snprintf(name, sizeof name, "blk.%d.ffn_norm.weight", l);
        tl_tensor(w, bufs, &nb, name, 0, TL_C, 1.0f, GGUF_WRITER_F32);
        for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++) {
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, mats[i].n);
            tl_tensor(w, bufs, &nb, name, mats[i].rows, mats[i].cols, 0.0f,
                      l == 0 ? GGUF_WRITER_Q8_0 : GGUF_WRITER_F32);
        }
    }
    write_ok(w, path);
    gguf_writer_free(w);
    for (int i = 0; i < nb; i++) free(bufs[i]);
}

static void test_tiny_llama_loads(void **state) {
    (void)state;
    char *dir = tu_tmpdir("gw"), path[512], err[512];
    tu_join(path, sizeof path, dir, "llama.gguf");
    tl_write(path);
    model *m = NULL;
    if (model_load(&m, path, err, sizeof err)) fail_msg("model_load: %s", err);
    const model_hparams *hp = model_hp(m);
    assert_int_equal(model_arch(m), MODEL_ARCH_LLAMA);
    assert_int_equal(hp->n_embd, TL_C);
    assert_int_equal(hp->n_layer, TL_L);
    assert_int_equal(hp->n_head, TL_NH);
    assert_int_equal(hp->head_dim, TL_C / TL_NH);
    assert_int_equal(hp->n_ff, TL_FF);
    assert_int_equal(hp->n_vocab, TL_V);
    assert_false(hp->tied_output);
    assert_int_equal(hp->bos_id, 1);
    assert_int_equal(hp->eos_id, 2);

    kv_cache *kv = NULL;
    assert_int_equal(model_kv_create(m, 1, 0, 0, &kv, err, sizeof err), 0);
    assert_int_equal(kv_seq_reserve(kv, 0, 3), 0);
    int32_t tok[3] = {1, 7, 39}, pos[3] = {0, 1, 2}, sid[3] = {0, 0, 0};
    model_batch b = {.n_tokens = 3, .token = tok, .pos = pos, .seq_id = sid};
    float logits[TL_V];
    if (model_forward(m, kv, &b, logits, err, sizeof err)) fail_msg("forward: %s", err);
    for (int i = 0; i < TL_V; i++) assert_true(isfinite(logits[i]));
    kv_free(kv);
    model_free(m);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_metadata_roundtrip),
        cmocka_unit_test(test_copy_kv),
        cmocka_unit_test(test_tensor_roundtrip),
        cmocka_unit_test(test_f16_edges),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_bad_tensors),
        cmocka_unit_test(test_unwritable_paths),
        cmocka_unit_test(test_failed_write_keeps_old_file),
        cmocka_unit_test(test_tiny_llama_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
