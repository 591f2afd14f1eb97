/* test_safetensors_writer.c - the safetensors writer, checked through the
 * reader (safetensors.h) and against the format's rules as the reference
 * Rust implementation enforces them: tensors of 0 to 3 dims (and empty ones)
 * read back exactly, metadata, names that need JSON escapes, F16 rounding,
 * the header padded with spaces to a multiple of 8, tensors in the order
 * added and back to back (no gaps, nothing after the last), argument errors
 * that stick, and failed writes that leave nothing behind.
 *
 * Every test works in its own temporary folder and removes it with rmdir at
 * the end, which fails if a stray file (a leftover .tmp) is still there. */
#include "tu_util.h"

#include "rng.h"
#include "safetensors.h"
#include "safetensors_writer.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ------------------------------------------------------------- */

static st_writer *new_writer(void) {
    st_writer *w = NULL;
    assert_int_equal(st_writer_new(&w), 0);
    assert_non_null(w);
    return w;
}

static void write_ok(st_writer *w, const char *path) {
    st_error err = {0};
    int rc = st_writer_write(w, path, &err);
    if (rc) fail_msg("write %s: %d %s", path, rc, err.msg);
}

static st_file *open_ok(const char *path) {
    st_file *f = NULL;
    st_error err = {0};
    if (st_open(&f, path, &err)) fail_msg("%s", err.msg);
    return f;
}

static float *rand_floats(size_t n, uint64_t seed) {
    float *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    rng r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) x[i] = (float)rng_normal(&r);
    return x;
}

static uint64_t le64(const char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | (unsigned char)p[i];
    return v;
}

/* ---- round trips ---------------------------------------------------------- */

static void test_f32_roundtrip(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512], tmp[520];
    tu_join(path, sizeof path, dir, "m.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    static const struct { const char *name; int n_dims; int64_t shape[3]; } ts[] = {
        {"z.scalar", 0, {0}}, {"b.vec", 1, {7}}, {"a.mat", 2, {3, 5}},
        {"c.cube", 3, {2, 3, 4}}, {"d.empty", 2, {0, 4}},
    };
    enum { N = sizeof ts / sizeof ts[0] };
    float *data[N];
    st_writer *w = new_writer();
    assert_int_equal(st_writer_set_metadata(w, "format", "pt"), 0);
    assert_int_equal(st_writer_set_metadata(w, "note", "caf\xc3\xa9 \"quoted\"\n"), 0);
    for (int i = 0; i < N; i++) {
        size_t n = 1;
        for (int d = 0; d < ts[i].n_dims; d++) n *= (size_t)ts[i].shape[d];
        data[i] = rand_floats(n, 10 + (uint64_t)i);
        assert_int_equal(st_writer_add(w, ts[i].name, ST_F32, ts[i].n_dims, ts[i].shape,
                                       data[i]), 0);
    }
    assert_string_equal(st_writer_error(w), "");
    write_ok(w, path);
    assert_false(tu_exists(tmp));

    st_file *f = open_ok(path);
    assert_int_equal(st_n_tensors(f), N);
    for (int i = 0; i < N; i++) {
        const st_tensor *t = st_find(f, ts[i].name);
        assert_non_null(t);
        assert_int_equal(t->dtype, ST_F32);
        assert_int_equal(t->n_dims, ts[i].n_dims);
        for (int d = 0; d < ts[i].n_dims; d++) assert_int_equal(t->shape[d], ts[i].shape[d]);
        assert_int_equal(t->nbytes, t->n_elements * 4);
        if (t->nbytes) assert_memory_equal(t->data, data[i], (size_t)t->nbytes);
    }
    assert_int_equal(st_n_metadata(f), 2);
    assert_string_equal(st_metadata_get(f, "format"), "pt");
    assert_string_equal(st_metadata_get(f, "note"), "caf\xc3\xa9 \"quoted\"\n");
    st_close(f);
    st_writer_free(w);
    for (int i = 0; i < N; i++) free(data[i]);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* The layout the reference reader insists on: header length a multiple of
 * 8, padding spaces, tensors in add order back to back up to the end. */
static void test_layout(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512];
    tu_join(path, sizeof path, dir, "l.safetensors");
    float a[3] = {1, 2, 3}, b[5] = {4, 5, 6, 7, 8}, c[2] = {9, 10};
    int64_t s3[1] = {3}, s5[1] = {5}, s2[1] = {2};
    st_writer *w = new_writer();
    /* names out of alphabetical order: the file keeps the order added */
    assert_int_equal(st_writer_add(w, "zeta", ST_F32, 1, s3, a), 0);
    assert_int_equal(st_writer_add(w, "alpha", ST_F16, 1, s5, b), 0);
    assert_int_equal(st_writer_add(w, "mid \"q\" \\ \xe2\x96\x81", ST_F32, 1, s2, c), 0);
    write_ok(w, path);
    size_t len;
    char *img = tu_read_file(path, &len);
    assert_non_null(img);
    uint64_t hlen = le64(img);
    assert_int_equal(hlen % 8, 0);
    assert_int_equal(len, 8 + hlen + 3 * 4 + 5 * 2 + 2 * 4);
    assert_int_equal(img[8], '{');
    char *hdr = strndup(img + 8, (size_t)hlen);
    size_t n = strlen(hdr);
    while (n && hdr[n - 1] == ' ') n--;
    assert_int_equal(hdr[n - 1], '}');
    assert_true(hlen - n < 8);
    char *pz = strstr(hdr, "\"zeta\""), *pa = strstr(hdr, "\"alpha\""), *pm = strstr(hdr, "mid");
    assert_true(pz && pa && pm && pz < pa && pa < pm);
    free(hdr);

    st_file *f = open_ok(path);
    const st_tensor *tz = st_find(f, "zeta"), *ta = st_find(f, "alpha");
    const st_tensor *tm = st_find(f, "mid \"q\" \\ \xe2\x96\x81");
    assert_true(tz && ta && tm);
    assert_int_equal(tz->offset, 0);
    assert_int_equal(ta->offset, 12);
    assert_int_equal(tm->offset, 22);
    assert_int_equal(ta->dtype, ST_F16);
    float *back;
    st_error err;
    assert_int_equal(st_tensor_to_f32(ta, &back, &err), 0);
    assert_memory_equal(back, b, sizeof b); /* small integers are exact in F16 */
    free(back);
    assert_memory_equal(tm->data, c, sizeof c);
    st_close(f);
    st_writer_free(w);
    free(img);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_f16_rounding(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512];
    tu_join(path, sizeof path, dir, "h.safetensors");
    const float x[] = {0.0f, -0.0f, 1.0f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048, 65504.0f,
                       65519.0f, 65520.0f, 1e9f, -1e9f, 5.9604645e-8f, 2.9802322e-8f,
                       1e-10f, INFINITY, -INFINITY, NAN, 0.1f, -3.14159f};
    enum { N = sizeof x / sizeof x[0] };
    int64_t shape[1] = {N};
    st_writer *w = new_writer();
    assert_int_equal(st_writer_add(w, "h", ST_F16, 1, shape, x), 0);
    write_ok(w, path);
    st_file *f = open_ok(path);
    float *y;
    st_error err;
    assert_int_equal(st_tensor_to_f32(st_find(f, "h"), &y, &err), 0);
    assert_true(y[0] == 0.0f && !signbit(y[0]) && y[1] == 0.0f && signbit(y[1]));
    assert_true(y[2] == 1.0f);
    assert_true(y[3] == 1.0f);                  /* a tie rounds to even */
    assert_true(y[4] == 1.0f + 4.0f / 2048);    /* a tie rounds to even, upwards */
    assert_true(y[5] == 65504.0f && y[6] == 65504.0f);
    assert_true(isinf(y[7]) && isinf(y[8]) && y[8] > 0 && isinf(y[9]) && y[9] < 0);
    assert_true(y[10] == 5.9604645e-8f);        /* smallest subnormal */
    assert_true(y[11] == 0.0f && y[12] == 0.0f);
    assert_true(isinf(y[13]) && isinf(y[14]) && isnan(y[15]));
    assert_true(fabsf(y[16] - 0.1f) < 1e-4f && fabsf(y[17] + 3.14159f) < 2e-3f);
    free(y);
    st_close(f);
    st_writer_free(w);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_empty_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512];
    tu_join(path, sizeof path, dir, "e.safetensors");
    st_writer *w = new_writer();
    write_ok(w, path);
    st_file *f = open_ok(path);
    assert_int_equal(st_n_tensors(f), 0);
    assert_int_equal(st_n_metadata(f), 0);
    st_close(f);
    st_writer_free(w);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- argument errors ------------------------------------------------------ */

/* Each bad call fails with -EINVAL on a fresh writer, which then refuses to
 * write with that same message. */
static void test_bad_arguments(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512];
    tu_join(path, sizeof path, dir, "bad.safetensors");
    static const float x[4] = {0};
    int64_t ok[1] = {4}, neg[2] = {2, -2}, big[2] = {INT64_MAX / 2, 8};
    static const int64_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 4};
    char longname[ST_WRITER_MAX_NAME + 2];
    memset(longname, 'n', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    for (int c = 0; c < 10; c++) {
        st_writer *w = new_writer();
        assert_int_equal(st_writer_add(w, "first", ST_F32, 1, ok, x), 0);
        int rc;
        switch (c) {
        case 0: rc = st_writer_add(w, "first", ST_F32, 1, ok, x); break;
        case 1: rc = st_writer_add(w, "__metadata__", ST_F32, 1, ok, x); break;
        case 2: rc = st_writer_add(w, "", ST_F32, 1, ok, x); break;
        case 3: rc = st_writer_add(w, "bad\xff", ST_F32, 1, ok, x); break;
        case 4: rc = st_writer_add(w, "bf", ST_BF16, 1, ok, x); break;
        case 5: rc = st_writer_add(w, "neg", ST_F32, 2, neg, x); break;
        case 6: rc = st_writer_add(w, "nine", ST_F32, 9, nine, x); break;
        case 7: rc = st_writer_add(w, "huge", ST_F32, 2, big, x); break;
        case 8: rc = st_writer_add(w, longname, ST_F32, 1, ok, x); break;
        default:
            assert_int_equal(st_writer_set_metadata(w, "k", "v"), 0);
            rc = st_writer_set_metadata(w, "k", "again");
        }
        assert_int_equal(rc, -EINVAL);
        assert_true(strncmp(st_writer_error(w), "st_writer: ", 11) == 0);
        /* a later good call does not clear the first failure */
        assert_int_equal(st_writer_add(w, "later", ST_F32, 1, ok, x), 0);
        st_error err = {0};
        assert_int_equal(st_writer_write(w, path, &err), -EINVAL);
        assert_string_equal(err.msg, st_writer_error(w));
        assert_false(tu_exists(path));
        st_writer_free(w);
    }
    st_writer_free(NULL);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- failed writes leave nothing behind ---------------------------------- */

static void test_unwritable_paths(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512], tmp[520];
    static const float x[8];
    int64_t shape[1] = {8};
    st_writer *w = new_writer();
    assert_int_equal(st_writer_add(w, "x", ST_F32, 1, shape, x), 0);
    st_error err = {0};
    tu_join(path, sizeof path, dir, "missing/m.safetensors");
    assert_int_equal(st_writer_write(w, path, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "missing/m.safetensors.tmp"));
    assert_false(tu_exists(path));

    tu_join(path, sizeof path, dir, "sub"); /* a folder: the final rename fails */
    assert_int_equal(mkdir(path, 0700), 0);
    int rc = st_writer_write(w, path, &err);
    assert_true(rc == -EISDIR || rc == -ENOTDIR || rc == -EEXIST);
    assert_non_null(strstr(err.msg, "rename"));
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    assert_false(tu_exists(tmp));
    assert_int_equal(rmdir(path), 0);
    assert_int_equal(st_writer_write(w, "", &err), -EINVAL);
    st_writer_free(w);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* A write cut short (RLIMIT_FSIZE, as a full disk) keeps the old file and
 * removes the temporary; the writer still holds everything for a retry. */
static void test_failed_write_keeps_old_file(void **state) {
    (void)state;
    char *dir = tu_tmpdir("stw"), path[512], tmp[520];
    tu_join(path, sizeof path, dir, "m.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    st_writer *w = new_writer();
    assert_int_equal(st_writer_set_metadata(w, "v", "old"), 0);
    write_ok(w, path);
    st_writer_free(w);
    size_t old_len;
    char *old = tu_read_file(path, &old_len);
    assert_non_null(old);

    float *big = rand_floats(64 * 1024, 7);
    int64_t shape[2] = {256, 256};
    w = new_writer();
    assert_int_equal(st_writer_add(w, "big", ST_F32, 2, shape, big), 0);
    struct rlimit saved, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    lim = saved;
    lim.rlim_cur = 64 * 1024;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN); /* get EFBIG instead of dying */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    st_error err = {0};
    int rc = st_writer_write(w, path, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, -EFBIG);
    assert_non_null(strstr(err.msg, "m.safetensors.tmp"));
    assert_false(tu_exists(tmp));
    size_t now_len;
    char *now = tu_read_file(path, &now_len);
    assert_non_null(now);
    assert_int_equal(now_len, old_len);
    assert_memory_equal(now, old, old_len);

    write_ok(w, path);
    st_file *f = open_ok(path);
    assert_non_null(st_find(f, "big"));
    assert_int_equal(st_n_metadata(f), 0); /* the old file's metadata is gone */
    st_close(f);
    st_writer_free(w);
    free(big);
    free(old);
    free(now);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_f32_roundtrip),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_f16_rounding),
        cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_unwritable_paths),
        cmocka_unit_test(test_failed_write_keeps_old_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
