/* test_safetensors.c - safetensors parsing, hostile headers, sharded
 * indexes, F16/BF16 conversion, and the reference files in ../shared. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "safetensors.h"

/* ---- helpers ------------------------------------------------------------- */

/* Returns a new image: 8-byte little-endian hlen, the header bytes, then
 * data_len bytes of data (copied from data, or a byte pattern when NULL).
 * Single quotes in header become double quotes, so tables stay readable. */
static unsigned char *mk_image(const char *header, uint64_t hlen, const void *data,
                               size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    unsigned char *b = malloc(*len ? *len : 1);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(hlen >> (8 * i));
    for (size_t i = 0; i < hl; i++) b[8 + i] = header[i] == '\'' ? '"' : (unsigned char)header[i];
    for (size_t i = 0; i < data_len; i++)
        b[8 + hl + i] = data ? ((const unsigned char *)data)[i] : (unsigned char)(i * 7 + 1);
    return b;
}

static unsigned char *mk_simple(const char *header, size_t data_len, size_t *len) {
    return mk_image(header, strlen(header), NULL, data_len, len);
}

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char *t = strdup(text);
    assert_non_null(t);
    for (char *c = t; *c; c++)
        if (*c == '\'') *c = '"';
    write_file(dir, name, t, strlen(t));
    free(t);
}

static void remove_in(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* ---- a valid image ------------------------------------------------------- */

/* Four tensors out of header order, a 2-byte gap, a scalar, an empty one. */
#define VALID_HEADER                                                          \
    "{'b.weight':{'dtype':'F32','shape':[2,3],'data_offsets':[0,24]},"       \
    "'__metadata__':{'format':'pt','note':'hi'},"                            \
    "'a.bias':{'dtype':'F16','shape':[3],'data_offsets':[24,30]},"           \
    "'s':{'dtype':'I64','shape':[],'data_offsets':[32,40]},"                 \
    "'z':{'dtype':'U8','shape':[0,5],'data_offsets':[40,40]}}  "

static unsigned char *mk_valid(size_t *len) {
    unsigned char data[40];
    float w[6] = {1, 2, 3, 4, 5, -6.5f};
    uint16_t h[3] = {0x3c00, 0xc000, 0x7c00};  /* 1, -2, inf */
    int64_t s = -42;
    memset(data, 0xee, sizeof data);
    memcpy(data, w, sizeof w);
    memcpy(data + 24, h, sizeof h);
    memcpy(data + 32, &s, sizeof s);
    return mk_image(VALID_HEADER, strlen(VALID_HEADER), data, sizeof data, len);
}

static void test_valid_image(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = mk_valid(&len);
    st_file *f;
    st_error err = {0};
    int rc = st_parse(&f, img, len, "valid", &err);
    if (rc) fail_msg("%s", err.msg);

    assert_int_equal(st_n_tensors(f), 4);
    assert_string_equal(st_tensor_at(f, 0)->name, "a.bias");  /* sorted by name */
    assert_string_equal(st_tensor_at(f, 1)->name, "b.weight");
    assert_string_equal(st_tensor_at(f, 2)->name, "s");
    assert_string_equal(st_tensor_at(f, 3)->name, "z");
    assert_null(st_tensor_at(f, 4));

    const st_tensor *w = st_find(f, "b.weight");
    assert_non_null(w);
    assert_int_equal(w->dtype, ST_F32);
    assert_int_equal(w->n_dims, 2);
    assert_int_equal(w->shape[0], 2);
    assert_int_equal(w->shape[1], 3);
    assert_int_equal(w->n_elements, 6);
    assert_int_equal(w->nbytes, 24);
    assert_int_equal(w->offset, 0);
    float *fw;
    assert_int_equal(st_tensor_to_f32(w, &fw, &err), 0);
    assert_true(fw[0] == 1.0f && fw[5] == -6.5f);
    free(fw);

    const st_tensor *h = st_find(f, "a.bias");
    float *fh;
    assert_int_equal(st_tensor_to_f32(h, &fh, &err), 0);
    assert_true(fh[0] == 1.0f && fh[1] == -2.0f && isinf(fh[2]) && fh[2] > 0);
    free(fh);

    const st_tensor *s = st_find(f, "s");
    assert_int_equal(s->n_dims, 0);
    assert_int_equal(s->n_elements, 1);
    int64_t sv;
    memcpy(&sv, s->data, sizeof sv);
    assert_int_equal(sv, -42);
    float *bad;
    rc = st_tensor_to_f32(s, &bad, &err);
    assert_int_equal(rc, -EINVAL);
    assert_null(bad);
    assert_non_null(strstr(err.msg, "tensor 's'"));
    assert_non_null(strstr(err.msg, "I64"));

    const st_tensor *z = st_find(f, "z");
    assert_int_equal(z->n_elements, 0);
    assert_int_equal(z->nbytes, 0);

    assert_null(st_find(f, "missing"));
    assert_null(st_find(f, "__metadata__"));
    assert_int_equal(st_n_metadata(f), 2);
    assert_string_equal(st_metadata_get(f, "format"), "pt");
    assert_string_equal(st_metadata_get(f, "note"), "hi");
    assert_null(st_metadata_get(f, "nope"));
    const char *k, *v;
    assert_int_equal(st_metadata_at(f, 0, &k, &v), 0);
    assert_string_equal(k, "format");
    assert_int_equal(st_metadata_at(f, 2, &k, &v), -ENOENT);
    assert_string_equal(st_file_label(f), "valid");

    int64_t want[2] = {2, 3}, wrong[2] = {3, 2};
    assert_int_equal(st_tensor_expect(w, ST_F32, 2, want, "valid", &err), 0);
    assert_int_equal(st_tensor_expect(w, ST_F32, 2, wrong, "valid", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "shape [2, 3], expected [3, 2]"));
    assert_int_equal(st_tensor_expect(w, ST_F16, 2, want, "valid", &err), -EINVAL);
    assert_non_null(strstr(err.msg, "dtype F32, expected F16"));

    st_close(f);
    st_close(NULL);
    free(img);
}

static void test_dtype_table(void **state) {
    (void)state;
    static const struct { const char *name; size_t size; } rows[] = {
        {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
        {"I16", 2}, {"I8", 1}, {"U8", 1}, {"BOOL", 1}, {"U16", 2}, {"U32", 4},
        {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        st_dtype t;
        assert_int_equal(st_dtype_from_name(rows[i].name, &t), 0);
        assert_string_equal(st_dtype_name(t), rows[i].name);
        assert_int_equal(st_dtype_size(t), rows[i].size);
    }
    st_dtype t;
    assert_int_equal(st_dtype_from_name("f32", &t), -EINVAL);
    assert_int_equal(st_dtype_from_name("Q8_0", &t), -EINVAL);
    assert_string_equal(st_dtype_name(ST_DTYPE_COUNT), "?");
    assert_int_equal(st_dtype_size(ST_DTYPE_COUNT), 0);

    /* every dtype in a real header */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char hdr[160];
        snprintf(hdr, sizeof hdr, "{'t':{'dtype':'%s','shape':[3],'data_offsets':[0,%zu]}}",
                 rows[i].name, 3 * rows[i].size);
        size_t len;
        unsigned char *img = mk_simple(hdr, 3 * rows[i].size, &len);
        st_file *f;
        st_error err = {0};
        if (st_parse(&f, img, len, NULL, &err)) fail_msg("%s: %s", rows[i].name, err.msg);
        assert_int_equal(st_find(f, "t")->nbytes, 3 * rows[i].size);
        st_close(f);
        free(img);
    }
}

/* ---- hostile images: one row per case ------------------------------------ */

#define HLEN_AUTO UINT64_MAX

typedef struct hostile_case {
    const char *name;
    const char *header;  /* NULL: a 5-byte file */
    size_t data_len;
    uint64_t hlen;       /* header length field; HLEN_AUTO = strlen(header) */
    const char *want;    /* substring expected in the error message */
} hostile_case;

static const hostile_case hostile[] = {
    {"file shorter than the length field", NULL, 0, 0, "too small"},
    {"header length huge", "{}", 0, (uint64_t)1 << 40, "exceeds the cap"},
    {"header length all ones", "{}", 0, UINT64_MAX - 1, "exceeds the cap"},
    {"header length past end of file", "{}", 4, 100, "runs past the end"},
    {"header length zero", "{}", 0, 0, "not valid JSON"},
    {"non-JSON header", "hello world", 0, HLEN_AUTO, "not valid JSON"},
    {"whitespace-only header", "      ", 0, HLEN_AUTO, "not valid JSON"},
    {"trailing garbage after JSON", "{} x", 0, HLEN_AUTO, "not valid JSON"},
    {"header is an array", "[1,2,3]", 0, HLEN_AUTO, "not a JSON object"},
    {"header is a string", "'abc'", 0, HLEN_AUTO, "not a JSON object"},
    {"entry is not an object", "{'t':[1,2]}", 0, HLEN_AUTO, "tensor 't': entry is not an object"},
    {"missing dtype", "{'t':{'shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "tensor 't': missing \"dtype\""},
    {"missing shape", "{'t':{'dtype':'F32','data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "tensor 't': missing \"shape\""},
    {"missing data_offsets", "{'t':{'dtype':'F32','shape':[1]}}", 4, HLEN_AUTO,
     "tensor 't': missing \"data_offsets\""},
    {"dtype not a string", "{'t':{'dtype':4,'shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "\"dtype\" is not a string"},
    {"unknown dtype", "{'t':{'dtype':'Q4_K','shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "tensor 't': unknown dtype \"Q4_K\""},
    {"lower-case dtype", "{'t':{'dtype':'f32','shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "unknown dtype"},
    {"shape not an array", "{'t':{'dtype':'F32','shape':4,'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "\"shape\" is not an array"},
    {"negative dim", "{'t':{'dtype':'F32','shape':[2,-3],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "tensor 't': shape[1] is negative"},
    {"fractional dim", "{'t':{'dtype':'F32','shape':[1.5],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "shape[0] is not an integer"},
    {"string dim", "{'t':{'dtype':'F32','shape':['1'],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "shape[0] is not an integer"},
    {"too many dims", "{'t':{'dtype':'U8','shape':[1,1,1,1,1,1,1,1,1],'data_offsets':[0,1]}}", 1,
     HLEN_AUTO, "9 dimensions"},
    {"shape product overflow",
     "{'t':{'dtype':'U8','shape':[4294967296,4294967296,2],'data_offsets':[0,4]}}", 4,
     HLEN_AUTO, "tensor 't': shape element count overflows"},
    {"shape byte size overflow",
     "{'t':{'dtype':'F32','shape':[4611686018427387904],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "byte size overflows"},
    {"dim beyond int64", "{'t':{'dtype':'U8','shape':[99999999999999999999],'data_offsets':[0,1]}}",
     1, HLEN_AUTO, "not valid JSON"},
    {"offsets not an array", "{'t':{'dtype':'F32','shape':[1],'data_offsets':4}}", 4, HLEN_AUTO,
     "two integers"},
    {"offsets with three entries", "{'t':{'dtype':'F32','shape':[1],'data_offsets':[0,4,8]}}", 8,
     HLEN_AUTO, "two integers"},
    {"offsets not integers", "{'t':{'dtype':'F32','shape':[1],'data_offsets':[0,4.0]}}", 4,
     HLEN_AUTO, "two integers"},
    {"negative offset", "{'t':{'dtype':'F32','shape':[1],'data_offsets':[-4,0]}}", 4, HLEN_AUTO,
     "negative"},
    {"offsets reversed", "{'t':{'dtype':'F32','shape':[1],'data_offsets':[8,4]}}", 8, HLEN_AUTO,
     "tensor 't': data_offsets reversed"},
    {"offsets beyond data", "{'t':{'dtype':'F32','shape':[2],'data_offsets':[0,8]}}", 4, HLEN_AUTO,
     "tensor 't': data_offsets end 8 is beyond the data buffer"},
    {"huge end offset", "{'t':{'dtype':'U8','shape':[1],'data_offsets':[9223372036854775806,9223372036854775807]}}",
     4, HLEN_AUTO, "beyond the data"},
    {"size mismatch with shape", "{'t':{'dtype':'F32','shape':[3],'data_offsets':[0,8]}}", 16,
     HLEN_AUTO, "tensor 't': size mismatch"},
    {"size mismatch for empty", "{'t':{'dtype':'F32','shape':[0],'data_offsets':[0,4]}}", 4,
     HLEN_AUTO, "size mismatch"},
    {"overlapping tensors",
     "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
     "'b':{'dtype':'F32','shape':[2],'data_offsets':[4,12]}}", 12, HLEN_AUTO,
     "tensors 'a' [0, 8) and 'b' [4, 12) overlap"},
    {"identical tensors",
     "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
     "'b':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO, "overlap"},
    {"tensor nested inside another",
     "{'a':{'dtype':'U8','shape':[16],'data_offsets':[0,16]},"
     "'b':{'dtype':'U8','shape':[2],'data_offsets':[2,4]},"
     "'c':{'dtype':'U8','shape':[2],'data_offsets':[8,10]}}", 16, HLEN_AUTO, "overlap"},
    {"overlap hidden behind a long tensor",
     "{'a':{'dtype':'U8','shape':[10],'data_offsets':[0,10]},"
     "'b':{'dtype':'U8','shape':[1],'data_offsets':[1,2]},"
     "'c':{'dtype':'U8','shape':[6],'data_offsets':[9,15]}}", 16, HLEN_AUTO, "overlap"},
    {"duplicate tensor name",
     "{'a':{'dtype':'F32','shape':[1],'data_offsets':[0,4]},"
     "'a':{'dtype':'F32','shape':[1],'data_offsets':[4,8]}}", 8, HLEN_AUTO, "duplicate"},
    {"duplicate key inside an entry",
     "{'a':{'dtype':'F32','dtype':'F16','shape':[1],'data_offsets':[0,4]}}", 4, HLEN_AUTO,
     "duplicate"},
    {"metadata not an object", "{'__metadata__':[1]}", 0, HLEN_AUTO,
     "\"__metadata__\" is not an object"},
    {"metadata value not a string", "{'__metadata__':{'format':1}}", 0, HLEN_AUTO,
     "value for key 'format' is not a string"},
    {"NUL escape in a name", "{'a\\u0000b':{'dtype':'U8','shape':[1],'data_offsets':[0,1]}}", 1,
     HLEN_AUTO, "not valid JSON"},
};

static void test_hostile_images(void **state) {
    (void)state;
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const hostile_case *hc = &hostile[i];
        size_t len;
        unsigned char *img;
        if (hc->header) {
            uint64_t hl = hc->hlen == HLEN_AUTO ? strlen(hc->header) : hc->hlen;
            img = mk_image(hc->header, hl, NULL, hc->data_len, &len);
        } else {
            len = 5;
            img = calloc(1, len);
            assert_non_null(img);
        }
        st_file *f = (st_file *)&f;  /* must be reset to NULL */
        st_error err = {0};
        int rc = st_parse(&f, img, len, "hostile.safetensors", &err);
        if (rc == 0) fail_msg("case '%s': accepted", hc->name);
        if (rc != -EINVAL) fail_msg("case '%s': rc %d, expected -EINVAL", hc->name, rc);
        if (f != NULL) fail_msg("case '%s': *out not NULL on failure", hc->name);
        if (err.code != rc) fail_msg("case '%s': err.code %d != rc", hc->name, err.code);
        if (!strstr(err.msg, hc->want))
            fail_msg("case '%s': error \"%s\" lacks \"%s\"", hc->name, err.msg, hc->want);
        if (!strstr(err.msg, "hostile.safetensors"))
            fail_msg("case '%s': error \"%s\" does not name the file", hc->name, err.msg);
        free(img);
    }
}

/* Gaps between tensors and after the last one are allowed; adjacent
 * tensors and empty tensors at a shared offset are not overlaps. */
static void test_gaps_and_adjacency(void **state) {
    (void)state;
    const char *hdr =
        "{'a':{'dtype':'U8','shape':[4],'data_offsets':[4,8]},"
        "'b':{'dtype':'U8','shape':[4],'data_offsets':[8,12]},"
        "'e1':{'dtype':'F32','shape':[0],'data_offsets':[5,5]},"
        "'e2':{'dtype':'F32','shape':[0],'data_offsets':[5,5]}}";
    size_t len;
    unsigned char *img = mk_simple(hdr, 20, &len);
    st_file *f;
    st_error err = {0};
    if (st_parse(&f, img, len, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_n_tensors(f), 4);
    assert_int_equal(st_n_metadata(f), 0);
    assert_ptr_equal(st_find(f, "b")->data, img + 8 + strlen(hdr) + 8);
    st_close(f);
    free(img);

    /* the empty header object is a valid, empty file */
    img = mk_simple("{}", 0, &len);
    assert_int_equal(st_parse(&f, img, len, NULL, &err), 0);
    assert_int_equal(st_n_tensors(f), 0);
    assert_null(st_find(f, "x"));
    st_close(f);
    free(img);
}

/* Every proper prefix of a valid image is rejected without reading past it
 * (each prefix is its own exact-size allocation, so ASan sees over-reads). */
static void test_truncated_prefixes(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = mk_valid(&len);
    for (size_t n = 0; n < len; n++) {
        unsigned char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, img, n);
        st_file *f;
        st_error err = {0};
        int rc = st_parse(&f, n ? p : NULL, n, "prefix", &err);
        if (rc != -EINVAL) fail_msg("prefix %zu of %zu: rc %d", n, len, rc);
        assert_null(f);
        if (!strstr(err.msg, "too small") && !strstr(err.msg, "runs past the end") &&
            !strstr(err.msg, "beyond the data"))
            fail_msg("prefix %zu: unexpected error \"%s\"", n, err.msg);
        free(p);
    }
    free(img);
}

/* ---- files on disk and sharded indexes ----------------------------------- */

static char *mk_tmpdir(void) {
    char *d = strdup("/tmp/alignd_st_XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static void test_open_file(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    size_t len;
    unsigned char *img = mk_valid(&len);
    write_file(dir, "m.safetensors", img, len);
    write_file(dir, "short.safetensors", img, 3);
    write_file(dir, "empty.safetensors", img, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/m.safetensors", dir);

    st_file *f;
    st_error err = {0};
    if (st_open(&f, path, &err)) fail_msg("%s", err.msg);
    float *w;
    assert_int_equal(st_tensor_to_f32(st_find(f, "b.weight"), &w, &err), 0);
    assert_true(w[4] == 5.0f);
    free(w);
    assert_string_equal(st_file_label(f), path);
    st_close(f);

    snprintf(path, sizeof path, "%s/short.safetensors", dir);
    assert_int_equal(st_open(&f, path, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "too small"));
    assert_non_null(strstr(err.msg, "short.safetensors"));
    snprintf(path, sizeof path, "%s/empty.safetensors", dir);
    assert_int_equal(st_open(&f, path, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "too small"));
    snprintf(path, sizeof path, "%s/absent.safetensors", dir);
    assert_int_equal(st_open(&f, path, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "absent.safetensors: cannot open"));
    assert_null(f);
    assert_int_equal(st_open(&f, dir, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));

    /* a single file as a set */
    st_set *s;
    snprintf(path, sizeof path, "%s/m.safetensors", dir);
    if (st_set_open_file(&s, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_set_n_files(s), 1);
    assert_int_equal(st_set_n_tensors(s), 4);
    const st_file *holder;
    assert_non_null(st_set_find(s, "s", &holder));
    assert_ptr_equal(holder, st_set_file_at(s, 0));
    assert_null(st_set_find(s, "nope", &holder));
    assert_null(holder);
    assert_string_equal(st_set_tensor_at(s, 0)->name, "a.bias");
    st_set_close(s);
    st_set_close(NULL);

    remove_in(dir, "m.safetensors");
    remove_in(dir, "short.safetensors");
    remove_in(dir, "empty.safetensors");
    assert_int_equal(rmdir(dir), 0);
    free(img);
    free(dir);
}

/* Writes a 2-shard model: shard 1 holds a (F32 [2]) and b (F16 [2]),
 * shard 2 holds c (BF16 [2]) and an unlisted tensor. */
static void write_shards(const char *dir) {
    float a[2] = {1.5f, -2.5f};
    uint16_t b[2] = {0x3c00, 0x0001};  /* 1, smallest subnormal */
    uint16_t c[2] = {0x4040, 0xbf80};  /* 3, -1 */
    unsigned char d1[12], d2[8];
    memcpy(d1, a, 8);
    memcpy(d1 + 8, b, 4);
    memcpy(d2, c, 4);
    memset(d2 + 4, 0, 4);
    const char *h1 = "{'a':{'dtype':'F32','shape':[2],'data_offsets':[0,8]},"
                     "'b':{'dtype':'F16','shape':[2],'data_offsets':[8,12]}}";
    const char *h2 = "{'c':{'dtype':'BF16','shape':[2],'data_offsets':[0,4]},"
                     "'extra':{'dtype':'U8','shape':[4],'data_offsets':[4,8]}}";
    size_t n1, n2;
    unsigned char *i1 = mk_image(h1, strlen(h1), d1, sizeof d1, &n1);
    unsigned char *i2 = mk_image(h2, strlen(h2), d2, sizeof d2, &n2);
    write_file(dir, "model-00001-of-00002.safetensors", i1, n1);
    write_file(dir, "model-00002-of-00002.safetensors", i2, n2);
    free(i1);
    free(i2);
}

static const char *const shard_index =
    "{'metadata':{'total_size':20},'weight_map':{"
    "'a':'model-00001-of-00002.safetensors',"
    "'c':'model-00002-of-00002.safetensors',"
    "'b':'model-00001-of-00002.safetensors'}}";

static void test_sharded_index(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_shards(dir);
    write_text(dir, "model.safetensors.index.json", shard_index);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);

    st_set *s;
    st_error err = {0};
    if (st_set_open_index(&s, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_set_n_files(s), 2);  /* each shard opened once */
    assert_int_equal(st_set_n_tensors(s), 3);
    assert_string_equal(st_set_tensor_at(s, 0)->name, "a");
    assert_string_equal(st_set_tensor_at(s, 2)->name, "c");
    assert_null(st_set_tensor_at(s, 3));

    const st_file *fa, *fb, *fc;
    const st_tensor *ta = st_set_find(s, "a", &fa);
    const st_tensor *tb = st_set_find(s, "b", &fb);
    const st_tensor *tc = st_set_find(s, "c", &fc);
    assert_non_null(ta);
    assert_non_null(tb);
    assert_non_null(tc);
    assert_ptr_equal(fa, fb);
    assert_true(fa != fc);
    assert_non_null(strstr(st_file_label(fc), "model-00002-of-00002.safetensors"));
    assert_null(st_set_find(s, "extra", NULL));  /* not in weight_map */

    float *v;
    assert_int_equal(st_tensor_to_f32(ta, &v, &err), 0);
    assert_true(v[0] == 1.5f && v[1] == -2.5f);
    free(v);
    assert_int_equal(st_tensor_to_f32(tb, &v, &err), 0);
    assert_true(v[0] == 1.0f && v[1] == ldexpf(1.0f, -24));
    free(v);
    assert_int_equal(st_tensor_to_f32(tc, &v, &err), 0);
    assert_true(v[0] == 3.0f && v[1] == -1.0f);
    free(v);
    st_set_close(s);

    remove_in(dir, "model-00001-of-00002.safetensors");
    remove_in(dir, "model-00002-of-00002.safetensors");
    remove_in(dir, "model.safetensors.index.json");
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

typedef struct index_case {
    const char *name;
    const char *index;  /* single quotes become double quotes */
    int rc;
    const char *want[2];
} index_case;

static const index_case index_cases[] = {
    {"missing shard",
     "{'weight_map':{'a':'model-00001-of-00002.safetensors','c':'model-00003-of-00003.safetensors'}}",
     -ENOENT, {"shard 'model-00003-of-00003.safetensors' (for tensor 'c')", "cannot open"}},
    {"tensor listed but absent",
     "{'weight_map':{'a':'model-00001-of-00002.safetensors','zz':'model-00002-of-00002.safetensors'}}",
     -ENOENT, {"tensor 'zz' is listed in weight_map but absent", "model-00002-of-00002"}},
    {"tensor in the wrong shard",
     "{'weight_map':{'a':'model-00002-of-00002.safetensors'}}",
     -ENOENT, {"tensor 'a'", "absent from shard 'model-00002-of-00002.safetensors'"}},
    {"shard path escapes the directory",
     "{'weight_map':{'a':'../model-00001-of-00002.safetensors'}}",
     -EINVAL, {"tensor 'a'", "not a plain file name"}},
    {"shard is dot-dot", "{'weight_map':{'a':'..'}}", -EINVAL, {"not a plain file name", "'a'"}},
    {"empty shard name", "{'weight_map':{'a':''}}", -EINVAL, {"not a plain file name", "'a'"}},
    {"shard name not a string", "{'weight_map':{'a':3}}", -EINVAL,
     {"weight_map entry for tensor 'a' is not a string", "index.json"}},
    {"no weight_map", "{'metadata':{}}", -EINVAL, {"missing \"weight_map\"", "index.json"}},
    {"weight_map not an object", "{'weight_map':[]}", -EINVAL, {"missing \"weight_map\"", ""}},
    {"empty weight_map", "{'weight_map':{}}", -EINVAL, {"\"weight_map\" is empty", ""}},
    {"index not JSON", "{'weight_map':", -EINVAL, {"not valid JSON", "index.json"}},
    {"index is an array", "[]", -EINVAL, {"missing \"weight_map\"", ""}},
    {"duplicate tensor in weight_map",
     "{'weight_map':{'a':'model-00001-of-00002.safetensors','a':'model-00001-of-00002.safetensors'}}",
     -EINVAL, {"duplicate", "index.json"}},
};

static void test_sharded_index_errors(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_shards(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    for (size_t i = 0; i < sizeof index_cases / sizeof index_cases[0]; i++) {
        const index_case *c = &index_cases[i];
        write_text(dir, "model.safetensors.index.json", c->index);
        st_set *s = (st_set *)&s;
        st_error err = {0};
        int rc = st_set_open_index(&s, path, &err);
        if (rc != c->rc) fail_msg("case '%s': rc %d, expected %d (%s)", c->name, rc, c->rc, err.msg);
        if (s) fail_msg("case '%s': *out not NULL", c->name);
        for (int k = 0; k < 2; k++)
            if (!strstr(err.msg, c->want[k]))
                fail_msg("case '%s': error \"%s\" lacks \"%s\"", c->name, err.msg, c->want[k]);
    }
    st_set *s;
    st_error err = {0};
    remove_in(dir, "model.safetensors.index.json");
    assert_int_equal(st_set_open_index(&s, path, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot open"));

    /* a corrupt shard's own error surfaces with the index's context */
    write_file(dir, "model-00002-of-00002.safetensors", "xx", 2);
    write_text(dir, "model.safetensors.index.json",
               "{'weight_map':{'c':'model-00002-of-00002.safetensors'}}");
    assert_int_equal(st_set_open_index(&s, path, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "shard 'model-00002-of-00002.safetensors'"));
    assert_non_null(strstr(err.msg, "too small"));

    remove_in(dir, "model-00001-of-00002.safetensors");
    remove_in(dir, "model-00002-of-00002.safetensors");
    remove_in(dir, "model.safetensors.index.json");
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- F16 / BF16 ---------------------------------------------------------- */

static void expect_bits(float got, float want, uint16_t in, const char *what) {
    uint32_t g, w;
    memcpy(&g, &got, 4);
    memcpy(&w, &want, 4);
    if (g != w) fail_msg("%s(0x%04x) = %a (0x%08x), expected %a (0x%08x)", what, in, got, g,
                         want, w);
}

static void test_f16_bf16(void **state) {
    (void)state;
    static const struct { uint16_t h; float want; } f16[] = {
        {0x0000, 0.0f},
        {0x3c00, 1.0f},
        {0xc000, -2.0f},
        {0x3555, 0x1.554p-2f},          /* 0.333251953125 */
        {0x7bff, 65504.0f},             /* largest finite */
        {0x0400, 0x1p-14f},             /* smallest normal */
        {0x0001, 0x1p-24f},             /* smallest subnormal */
        {0x03ff, 0x1.ff8p-15f},         /* largest subnormal */
        {0x0200, 0x1p-15f},
        {0x8001, -0x1p-24f},
        {0x7c00, INFINITY},
        {0xfc00, -INFINITY},
    };
    for (size_t i = 0; i < sizeof f16 / sizeof f16[0]; i++)
        expect_bits(st_f16_to_f32(f16[i].h), f16[i].want, f16[i].h, "f16");

    float nz = st_f16_to_f32(0x8000);
    assert_true(nz == 0.0f && signbit(nz));
    float qnan = st_f16_to_f32(0x7e00), snan = st_f16_to_f32(0x7c01), nnan = st_f16_to_f32(0xfe00);
    assert_true(isnan(qnan) && !signbit(qnan));
    assert_true(isnan(snan));  /* smallest payload stays NaN, not inf */
    assert_true(isnan(nnan) && signbit(nnan));

    /* exhaustive: every half against its value computed with ldexp */
    for (uint32_t h = 0; h < 0x10000; h++) {
        int e = (h >> 10) & 0x1f, m = h & 0x3ff;
        float got = st_f16_to_f32((uint16_t)h);
        if (e == 0x1f) {
            if (m ? !isnan(got) : !isinf(got)) fail_msg("f16 0x%04x special wrong", h);
            continue;
        }
        float mag = e ? ldexpf((float)(1024 + m), e - 25) : ldexpf((float)m, -24);
        expect_bits(got, (h & 0x8000) ? -mag : mag, (uint16_t)h, "f16 exhaustive");
    }

    static const struct { uint16_t b; float want; } bf16[] = {
        {0x0000, 0.0f},
        {0x3f80, 1.0f},
        {0xc040, -3.0f},
        {0x3eab, 0x1.56p-2f},
        {0x7f7f, 0x1.fep127f},          /* largest finite */
        {0x0080, 0x1p-126f},            /* smallest normal */
        {0x0001, 0x1p-133f},            /* smallest subnormal */
        {0x007f, 0x1.fcp-127f},         /* largest subnormal */
        {0x8001, -0x1p-133f},
        {0x7f80, INFINITY},
        {0xff80, -INFINITY},
    };
    for (size_t i = 0; i < sizeof bf16 / sizeof bf16[0]; i++)
        expect_bits(st_bf16_to_f32(bf16[i].b), bf16[i].want, bf16[i].b, "bf16");
    float bnz = st_bf16_to_f32(0x8000);
    assert_true(bnz == 0.0f && signbit(bnz));
    assert_true(isnan(st_bf16_to_f32(0x7fc0)));
    assert_true(isnan(st_bf16_to_f32(0x7f81)));
    assert_true(isnan(st_bf16_to_f32(0xffc0)) && signbit(st_bf16_to_f32(0xffc0)));
}

/* An F16 tensor at an odd data offset converts correctly (unaligned). */
static void test_to_f32_unaligned(void **state) {
    (void)state;
    const char *hdr = "{'pad':{'dtype':'U8','shape':[1],'data_offsets':[0,1]},"
                      "'h':{'dtype':'F16','shape':[3],'data_offsets':[1,7]},"
                      "'f':{'dtype':'F32','shape':[1],'data_offsets':[7,11]}}";
    unsigned char data[11] = {0, 0x01, 0x00, 0x00, 0x80, 0x00, 0x3c};
    float one = 1.0f;
    memcpy(data + 7, &one, 4);
    size_t len;
    unsigned char *img = mk_image(hdr, strlen(hdr), data, sizeof data, &len);
    st_file *f;
    st_error err = {0};
    if (st_parse(&f, img, len, NULL, &err)) fail_msg("%s", err.msg);
    float *v;
    assert_int_equal(st_tensor_to_f32(st_find(f, "h"), &v, &err), 0);
    expect_bits(v[0], 0x1p-24f, 1, "unaligned f16");
    assert_true(v[1] == 0.0f && signbit(v[1]));
    assert_true(v[2] == 1.0f);
    free(v);
    assert_int_equal(st_tensor_to_f32(st_find(f, "f"), &v, &err), 0);
    assert_true(v[0] == 1.0f);
    free(v);
    st_close(f);
    free(img);
}

/* ---- reference files ----------------------------------------------------- */

static void test_reference_gpt2(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/model.safetensors");
    if (!path) skip();
    st_file *f;
    st_error err = {0};
    if (st_open(&f, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_n_tensors(f), 28);
    assert_string_equal(st_metadata_get(f, "format"), "pt");
    const st_tensor *t = st_find(f, "transformer.ln_f.weight");
    assert_non_null(t);
    float *v;
    assert_int_equal(st_tensor_to_f32(t, &v, &err), 0);
    assert_float_equal(v[0], 0.814885139465332, 1e-7);
    assert_float_equal(v[1], 1.0800029039382935, 1e-7);
    free(v);
    t = st_find(f, "transformer.wte.weight");
    assert_int_equal(t->shape[0], 50257);
    assert_int_equal(t->shape[1], 32);
    assert_int_equal(t->offset, 167424);
    assert_null(st_find(f, "lm_head.weight"));
    st_close(f);
    free(path);
}

static void test_reference_lora(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/gpt2-tiny/dpo/lora_and_grads_f32.safetensors");
    if (!path) skip();
    st_file *f;
    st_error err = {0};
    if (st_open(&f, path, &err)) fail_msg("%s", err.msg);
    assert_int_equal(st_n_tensors(f), 32);
    int64_t a_shape[2] = {4, 32}, b_shape[2] = {32, 4};
    assert_int_equal(st_tensor_expect(st_find(f, "lora.h.0.attn.q.lora_A"), ST_F32, 2, a_shape,
                                      path, &err), 0);
    assert_int_equal(st_tensor_expect(st_find(f, "lora_B_zero.grad.h.1.attn.v.lora_B"), ST_F32, 2,
                                      b_shape, path, &err), 0);
    st_close(f);
    free(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_image),
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_hostile_images),
        cmocka_unit_test(test_gaps_and_adjacency),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_sharded_index),
        cmocka_unit_test(test_sharded_index_errors),
        cmocka_unit_test(test_f16_bf16),
        cmocka_unit_test(test_to_f32_unaligned),
        cmocka_unit_test(test_reference_gpt2),
        cmocka_unit_test(test_reference_lora),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
