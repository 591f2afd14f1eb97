/* test_gguf.c - the GGUF reader: the reference models in ../shared, hostile
 * files grouped by the parsing stage that must reject them, every prefix of
 * a valid file, and a hand-built file that round-trips every metadata type.
 *
 * Files are built in the test by a small writer (tw_*). Every parse runs on
 * an exactly-sized heap copy, so an out-of-bounds read trips ASan. */
#include "tu_util.h"

#include "gguf.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the test writer ----------------------------------------------------- */

typedef struct tw {
    uint8_t *p;
    size_t n, cap;
} tw;

static void tw_raw(tw *w, const void *src, size_t n) {
    if (w->n + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->n + n) cap *= 2;
        w->p = realloc(w->p, cap);
        assert_non_null(w->p);
        w->cap = cap;
    }
    memcpy(w->p + w->n, src, n);
    w->n += n;
}

static void tw_u8(tw *w, uint8_t v) { tw_raw(w, &v, 1); }
static void tw_u32(tw *w, uint32_t v) { tw_raw(w, &v, 4); }
static void tw_u64(tw *w, uint64_t v) { tw_raw(w, &v, 8); }

static void tw_zeros(tw *w, size_t n) {
    for (size_t i = 0; i < n; i++) tw_u8(w, 0);
}

static void tw_strn(tw *w, const char *s, size_t n) {
    tw_u64(w, n);
    tw_raw(w, s, n);
}

static void tw_str(tw *w, const char *s) { tw_strn(w, s, strlen(s)); }

static void tw_header(tw *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    tw_raw(w, "GGUF", 4);
    tw_u32(w, version);
    tw_u64(w, n_tensors);
    tw_u64(w, n_kv);
}

/* key and value type; the caller writes the value */
static void tw_key(tw *w, const char *key, uint32_t type) {
    tw_str(w, key);
    tw_u32(w, type);
}

static void tw_kv_u32(tw *w, const char *key, uint32_t v) {
    tw_key(w, key, GGUF_TYPE_UINT32);
    tw_u32(w, v);
}

static void tw_kv_str(tw *w, const char *key, const char *v) {
    tw_key(w, key, GGUF_TYPE_STRING);
    tw_str(w, v);
}

/* array header: key, ARRAY, element type, count; the caller writes elements */
static void tw_arr(tw *w, const char *key, uint32_t elem, uint64_t n) {
    tw_key(w, key, GGUF_TYPE_ARRAY);
    tw_u32(w, elem);
    tw_u64(w, n);
}

/* tensor info; dims holds n_dims entries */
static void tw_tensor(tw *w, const char *name, uint32_t n_dims, const uint64_t *dims,
                      uint32_t type, uint64_t offset) {
    tw_str(w, name);
    tw_u32(w, n_dims);
    for (uint32_t d = 0; d < n_dims; d++) tw_u64(w, dims[d]);
    tw_u32(w, type);
    tw_u64(w, offset);
}

static void tw_pad(tw *w, size_t align) {
    while (w->n % align) tw_u8(w, 0);
}

static void tw_free(tw *w) {
    free(w->p);
    memset(w, 0, sizeof *w);
}

/* Parses an exactly-sized heap copy of bytes (size 0: a 1-byte allocation
 * nobody may read). Returns the parse result; *out must be closed. */
static int parse_copy(const uint8_t *bytes, size_t n, gguf_file **out, void **copy,
                      char *err, size_t errlen) {
    *copy = malloc(n ? n : 1);
    assert_non_null(*copy);
    if (n) memcpy(*copy, bytes, n);
    return gguf_parse(out, *copy, n, err, errlen);
}

static void expect_err(const char *what, const char *err, const char *sub) {
    if (strncmp(err, "gguf: ", 6) != 0 || !strstr(err, sub))
        fail_msg("%s: error \"%s\" lacks \"%s\"", what, err, sub);
}

/* ---- a small valid file: two kvs, two tensors, data ending at EOF -------- */

static void build_small(tw *w) {
    tw_header(w, 3, 2, 4);
    tw_kv_str(w, "general.architecture", "llama");
    tw_kv_u32(w, "llama.context_length", 128);
    tw_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 2);
    tw_str(w, "<s>");
    tw_str(w, "hi");
    tw_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, 2);
    tw_u32(w, 0x3f800000u); /* 1.0f */
    tw_u32(w, 0x40000000u); /* 2.0f */
    tw_tensor(w, "a", 2, (const uint64_t[]){4, 2}, GGUF_DTYPE_F32, 0);
    tw_tensor(w, "b", 1, (const uint64_t[]){32}, GGUF_DTYPE_Q8_0, 32);
    tw_pad(w, 32);
    for (int i = 0; i < 32 + 34; i++) tw_u8(w, (uint8_t)i);
}

static void test_small_valid(void **state) {
    tw w = {0};
    build_small(&w);
    gguf_file *f;
    void *copy;
    char err[256];
    int rc = parse_copy(w.p, w.n, &f, &copy, err, sizeof err);
    if (rc) fail_msg("%s", err);
    assert_int_equal(gguf_version(f), 3);
    assert_int_equal(gguf_n_kv(f), 4);
    assert_int_equal(gguf_n_tensors(f), 2);
    const gguf_tensor *b = gguf_find_tensor(f, "b");
    assert_non_null(b);
    assert_int_equal(b->nbytes, 34);
    assert_ptr_equal(b->data, (const uint8_t *)copy + gguf_data_offset(f) + 32);
    assert_int_equal(gguf_data_offset(f) + 32 + 34, w.n);
    gguf_close(f);
    free(copy);
    tw_free(&w);
}

/* Every proper prefix of a valid file must fail cleanly. */
static void check_prefixes(const tw *w) {
    char err[512];
    for (size_t n = 0; n < w->n; n++) {
        gguf_file *f = (gguf_file *)1;
        void *copy;
        err[0] = '\0';
        int rc = parse_copy(w->p, n, &f, &copy, err, sizeof err);
        if (rc != GGUF_EFORMAT || f != NULL)
            fail_msg("prefix of %zu/%zu bytes: rc %d (%s)", n, w->n, rc, err);
        char what[64];
        snprintf(what, sizeof what, "prefix of %zu bytes", n);
        expect_err(what, err, "");
        free(copy);
    }
}

static void test_truncated_every_byte(void **state) {
    tw w = {0};
    build_small(&w);
    check_prefixes(&w);
    tw_free(&w);
}

/* ---- hostile files, one row per case, grouped by parsing stage ----------- */

/* header */
static void h_empty(tw *w) { (void)w; }
static void h_bad_magic(tw *w) { tw_raw(w, "GGML\3\0\0\0", 8); tw_zeros(w, 16); }
static void h_v1(tw *w) { tw_header(w, 1, 0, 0); }
static void h_v4(tw *w) { tw_header(w, 4, 0, 0); }
static void h_big_endian(tw *w) { tw_header(w, 0x03000000u, 0, 0); }
static void h_huge_kv_count(tw *w) { tw_header(w, 3, 0, UINT64_MAX); tw_zeros(w, 64); }
static void h_huge_tensor_count(tw *w) { tw_header(w, 3, 1ull << 60, 0); tw_zeros(w, 64); }
static void h_truncated_counts(tw *w) { tw_raw(w, "GGUF\3\0\0\0\1\0\0", 11); }

/* metadata kvs */
static void k_huge_key_len(tw *w) { tw_header(w, 3, 0, 1); tw_u64(w, UINT64_MAX); tw_zeros(w, 8); }
static void k_key_over_limit(tw *w) { tw_header(w, 3, 0, 1); tw_u64(w, 70000); tw_zeros(w, 70010); }
static void k_key_past_end(tw *w) { tw_header(w, 3, 0, 1); tw_u64(w, 100); tw_raw(w, "general.na", 10); tw_zeros(w, 8); }
static void k_empty_key(tw *w) { tw_header(w, 3, 0, 1); tw_str(w, ""); tw_u32(w, GGUF_TYPE_UINT8); tw_u8(w, 1); }
static void k_nul_in_key(tw *w) { tw_header(w, 3, 0, 1); tw_strn(w, "a\0b", 3); tw_u32(w, GGUF_TYPE_UINT8); tw_u8(w, 1); }
static void k_huge_str_len(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_key(w, "general.name", GGUF_TYPE_STRING);
    tw_u64(w, 1ull << 62);
    tw_raw(w, "llama", 5);
}
static void k_huge_arr_count(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, 1ull << 61);
    tw_zeros(w, 16);
}
static void k_arr_count_wraps(tw *w) { /* n * 8 wraps to 0 in 64 bits */
    tw_header(w, 3, 0, 1);
    tw_arr(w, "x.u64s", GGUF_TYPE_UINT64, 1ull << 61);
    tw_zeros(w, 16);
}
static void k_huge_str_arr_count(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, UINT64_MAX / 2);
    tw_str(w, "a");
}
static void k_arr_str_past_end(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_arr(w, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, 2);
    tw_str(w, "a");
    tw_u64(w, 1000);
    tw_zeros(w, 8);
}
static void k_unknown_type(tw *w) { tw_header(w, 3, 0, 1); tw_key(w, "x", 13); tw_u64(w, 0); }
static void k_unknown_elem_type(tw *w) { tw_header(w, 3, 0, 1); tw_arr(w, "x", 99, 1); tw_u64(w, 0); }
static void k_nested_array(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_arr(w, "x", GGUF_TYPE_ARRAY, 1);
    tw_u32(w, GGUF_TYPE_UINT8);
    tw_u64(w, 1);
    tw_u8(w, 1);
}
static void k_duplicate_key(tw *w) {
    tw_header(w, 3, 0, 3);
    tw_kv_u32(w, "llama.context_length", 128);
    tw_kv_str(w, "general.name", "x");
    tw_kv_u32(w, "llama.context_length", 256);
}
static void k_bad_bool(tw *w) { tw_header(w, 3, 0, 1); tw_key(w, "b", GGUF_TYPE_BOOL); tw_u8(w, 2); }
static void k_bad_bool_in_array(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_arr(w, "b", GGUF_TYPE_BOOL, 3);
    tw_raw(w, "\1\0\7", 3);
}
static void k_truncated_scalar(tw *w) { tw_header(w, 3, 0, 1); tw_key(w, "u", GGUF_TYPE_UINT64); tw_u32(w, 7); }

/* tensor infos */
static const uint64_t dims_8[4] = {8, 1, 1, 1};
static void t_prologue(tw *w, uint64_t n_tensors) { tw_header(w, 3, n_tensors, 0); }
static void t_data(tw *w, size_t n) { tw_pad(w, 32); tw_zeros(w, n); }
static void t_ndims_5(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "blk.0.attn_q.weight", 5, (const uint64_t[]){1, 1, 1, 1, 1}, GGUF_DTYPE_F32, 0);
    tw_zeros(w, 64);
}
static void t_ndims_0(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "blk.0.attn_q.weight", 0, dims_8, GGUF_DTYPE_F32, 0);
    tw_zeros(w, 64);
}
static void t_dim_over_int64(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, (const uint64_t[]){1ull << 63}, GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}
static void t_dims_overflow(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "blk.0.ffn_up.weight", 2, (const uint64_t[]){1ull << 32, 1ull << 32},
              GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}
static void t_dims_overflow_behind_zero(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 4, (const uint64_t[]){0, 1ull << 32, 1ull << 32, 4}, GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}
static void t_bytes_overflow(tw *w) { /* 2^62 elements fit int64; 2^65 bytes do not */
    t_prologue(w, 1);
    tw_tensor(w, "w", 2, (const uint64_t[]){1ull << 31, 1ull << 31}, GGUF_DTYPE_I64, 0);
    t_data(w, 32);
}
static void t_unknown_ggml_type(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, dims_8, 1000, 0);
    t_data(w, 32);
}
static void t_removed_ggml_type(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, dims_8, 4 /* Q4_2, removed */, 0);
    t_data(w, 32);
}
static void t_not_block_multiple(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, (const uint64_t[]){33}, GGUF_DTYPE_Q4_0, 0);
    t_data(w, 64);
}
static void t_duplicate_name(tw *w) {
    t_prologue(w, 2);
    tw_tensor(w, "token_embd.weight", 1, dims_8, GGUF_DTYPE_F32, 0);
    tw_tensor(w, "token_embd.weight", 1, dims_8, GGUF_DTYPE_F32, 32);
    t_data(w, 64);
}
static void t_name_too_long(tw *w) {
    char name[300];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    t_prologue(w, 1);
    tw_tensor(w, name, 1, dims_8, GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}
static void t_empty_name(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "", 1, dims_8, GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}

/* general.alignment */
static void a_not_pow2(tw *w) {
    tw_header(w, 3, 1, 1);
    tw_kv_u32(w, "general.alignment", 48);
    tw_tensor(w, "w", 1, dims_8, GGUF_DTYPE_F32, 0);
    tw_pad(w, 48);
    tw_zeros(w, 32);
}
static void a_zero(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_kv_u32(w, "general.alignment", 0);
}
static void a_string(tw *w) {
    tw_header(w, 3, 0, 1);
    tw_kv_str(w, "general.alignment", "32");
}

/* data layout */
static void d_offset_beyond(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "blk.3.attn_q.weight", 1, dims_8, GGUF_DTYPE_F32, 4096);
    t_data(w, 32);
}
static void d_size_beyond(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "blk.3.attn_q.weight", 1, dims_8, GGUF_DTYPE_F32, 0);
    t_data(w, 31);
}
static void d_offset_wraps(tw *w) { /* offset + size wraps around 2^64 */
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, (const uint64_t[]){64}, GGUF_DTYPE_F32, UINT64_MAX - 31);
    t_data(w, 256);
}
static void d_misaligned(tw *w) {
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, dims_8, GGUF_DTYPE_F32, 4);
    t_data(w, 64);
}
static void d_overlap(tw *w) {
    t_prologue(w, 2);
    tw_tensor(w, "first", 1, (const uint64_t[]){16}, GGUF_DTYPE_F32, 0);
    tw_tensor(w, "second", 1, dims_8, GGUF_DTYPE_F32, 32);
    t_data(w, 96);
}
static void d_same_offset(tw *w) {
    t_prologue(w, 2);
    tw_tensor(w, "first", 1, dims_8, GGUF_DTYPE_F32, 0);
    tw_tensor(w, "second", 1, dims_8, GGUF_DTYPE_F32, 0);
    t_data(w, 32);
}
static void d_section_beyond(tw *w) { /* the file ends inside the padding */
    t_prologue(w, 1);
    tw_tensor(w, "w", 1, dims_8, GGUF_DTYPE_F32, 0);
    if (w->n % 32 == 0) tw_zeros(w, 1);
}

typedef struct hostile_case {
    const char *name;
    void (*build)(tw *w);
    const char *expect; /* substring of the error */
} hostile_case;

static const hostile_case header_cases[] = {
    {"empty file", h_empty, "truncated: magic"},
    {"bad magic", h_bad_magic, "bad magic"},
    {"version 1", h_v1, "version 1 is not supported"},
    {"version 4", h_v4, "unsupported version 4"},
    {"big-endian", h_big_endian, "big-endian"},
    {"huge kv count", h_huge_kv_count, "kv count 18446744073709551615 exceeds"},
    {"huge tensor count", h_huge_tensor_count, "tensor count 1152921504606846976 exceeds"},
    {"truncated counts", h_truncated_counts, "truncated: tensor count"},
};

static const hostile_case kv_cases[] = {
    {"huge key length", k_huge_key_len, "key length 18446744073709551615 exceeds the limit"},
    {"key over 65535 bytes", k_key_over_limit, "key length 70000 exceeds the limit"},
    {"key past end", k_key_past_end, "key length 100 exceeds the 18 bytes left"},
    {"empty key", k_empty_key, "kv 0: key is empty"},
    {"NUL in key", k_nul_in_key, "key contains a NUL byte"},
    {"huge string length", k_huge_str_len, "kv 0 'general.name': string value length 4611686018427387904 exceeds"},
    {"huge array count", k_huge_arr_count, "array count 2305843009213693952 of float32 exceeds"},
    {"array count wraps", k_arr_count_wraps, "array count 2305843009213693952 of uint64 exceeds"},
    {"huge string array count", k_huge_str_arr_count, "of string exceeds"},
    {"array string past end", k_arr_str_past_end, "array string length 1000 exceeds"},
    {"unknown value type", k_unknown_type, "kv 0 'x': unknown value type 13"},
    {"unknown element type", k_unknown_elem_type, "unknown array element type 99"},
    {"nested array", k_nested_array, "nested arrays are not supported"},
    {"duplicate key", k_duplicate_key, "kv 2 'llama.context_length': duplicate key (also kv 0)"},
    {"bool not 0/1", k_bad_bool, "bool value 2"},
    {"bool in array not 0/1", k_bad_bool_in_array, "bool value 7"},
    {"truncated scalar", k_truncated_scalar, "truncated: uint64 needs 8 bytes"},
};

static const hostile_case tensor_cases[] = {
    {"n_dims 5", t_ndims_5, "tensor 'blk.0.attn_q.weight': n_dims 5 is outside 1..4"},
    {"n_dims 0", t_ndims_0, "n_dims 0 is outside 1..4"},
    {"dim over INT64_MAX", t_dim_over_int64, "ne[0] = 9223372036854775808 exceeds INT64_MAX"},
    {"dims product overflow", t_dims_overflow, "tensor 'blk.0.ffn_up.weight': shape [4294967296, 4294967296, 1, 1] overflows"},
    {"dims overflow behind a zero", t_dims_overflow_behind_zero, "overflows"},
    {"byte size overflow", t_bytes_overflow, "overflows"},
    {"unknown ggml type", t_unknown_ggml_type, "unknown ggml type 1000"},
    {"removed ggml type", t_removed_ggml_type, "unknown ggml type 4"},
    {"ne0 not a block multiple", t_not_block_multiple, "ne[0] = 33 is not a multiple of the block size 32 of type q4_0"},
    {"duplicate tensor name", t_duplicate_name, "tensor 'token_embd.weight': duplicate tensor name (also tensor 0)"},
    {"tensor name too long", t_name_too_long, "tensor name length 299 exceeds the limit of 255"},
    {"empty tensor name", t_empty_name, "tensor name is empty"},
};

static const hostile_case align_cases[] = {
    {"alignment 48", a_not_pow2, "alignment 48 is not a power of two"},
    {"alignment 0", a_zero, "alignment out of range"},
    {"alignment string", a_string, "alignment must be an integer, found string"},
};

static const hostile_case layout_cases[] = {
    {"offset beyond file", d_offset_beyond, "tensor 'blk.3.attn_q.weight': data [4096, 4128) beyond end of file (size 128"},
    {"size beyond file", d_size_beyond, "tensor 'blk.3.attn_q.weight': data [0, 32) beyond end of file (size 127"},
    {"offset + size wraps", d_offset_wraps, "data offset 18446744073709551584 + size 256 wraps around"},
    {"misaligned offset", d_misaligned, "data offset 4 is not a multiple of the alignment 32"},
    {"overlapping tensors", d_overlap, "tensors 'first' [0, 64) and 'second' [32, 64) overlap"},
    {"same offset", d_same_offset, "overlap"},
    {"data section past end", d_section_beyond, "data section starts at offset"},
};

static void run_cases(const char *stage, const hostile_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        tw w = {0};
        cases[i].build(&w);
        gguf_file *f = (gguf_file *)1;
        void *copy;
        char err[512] = "";
        int rc = parse_copy(w.p, w.n, &f, &copy, err, sizeof err);
        char what[128];
        snprintf(what, sizeof what, "%s: %s", stage, cases[i].name);
        if (rc != GGUF_EFORMAT || f != NULL) fail_msg("%s: rc %d, err \"%s\"", what, rc, err);
        expect_err(what, err, cases[i].expect);
        free(copy);
        tw_free(&w);
    }
}

#define RUN_CASES(stage, cases) run_cases(stage, cases, sizeof cases / sizeof cases[0])

static void test_hostile_header(void **state) { RUN_CASES("header", header_cases); }
static void test_hostile_kv(void **state) { RUN_CASES("kv", kv_cases); }
static void test_hostile_tensor_info(void **state) { RUN_CASES("tensor info", tensor_cases); }
static void test_hostile_alignment(void **state) { RUN_CASES("alignment", align_cases); }
static void test_hostile_layout(void **state) { RUN_CASES("layout", layout_cases); }

/* ---- round trip of every metadata type and many tensor types ------------- */

typedef struct rt_tensor {
    const char *name;
    gguf_dtype type;
    uint32_t n_dims;
    uint64_t ne[4];
    size_t nbytes; /* expected, from the ggml block layouts */
} rt_tensor;

static const rt_tensor rt_tensors[] = {
    {"t.f32", GGUF_DTYPE_F32, 2, {3, 2}, 24},
    {"t.f16", GGUF_DTYPE_F16, 1, {8}, 16},
    {"t.bf16", GGUF_DTYPE_BF16, 2, {4, 3}, 24},
    {"t.q8_0", GGUF_DTYPE_Q8_0, 2, {64, 2}, 136},
    {"t.q4_0", GGUF_DTYPE_Q4_0, 1, {32}, 18},
    {"t.empty", GGUF_DTYPE_F32, 2, {0, 4}, 0},
    {"t.q4_1", GGUF_DTYPE_Q4_1, 1, {32}, 20},
    {"t.q5_0", GGUF_DTYPE_Q5_0, 1, {32}, 22},
    {"t.q5_1", GGUF_DTYPE_Q5_1, 1, {64}, 48},
    {"t.q4_K", GGUF_DTYPE_Q4_K, 2, {256, 2}, 288},
    {"t.q5_K", GGUF_DTYPE_Q5_K, 1, {256}, 176},
    {"t.q6_K", GGUF_DTYPE_Q6_K, 1, {512}, 420},
    {"t.q8_K", GGUF_DTYPE_Q8_K, 1, {256}, 292},
    {"t.i8", GGUF_DTYPE_I8, 1, {5}, 5},
    {"t.i16", GGUF_DTYPE_I16, 1, {3}, 6},
    {"t.i32", GGUF_DTYPE_I32, 4, {2, 2, 2, 2}, 64},
};
#define RT_N_TENSORS (sizeof rt_tensors / sizeof rt_tensors[0])
#define RT_ALIGN 64
#define RT_N_KV 31

static void build_roundtrip(tw *w, uint32_t version) {
    tw_header(w, version, RT_N_TENSORS, RT_N_KV);
    tw_kv_u32(w, "general.alignment", RT_ALIGN);
    tw_key(w, "rt.u8", GGUF_TYPE_UINT8); tw_u8(w, 200);
    tw_key(w, "rt.i8", GGUF_TYPE_INT8); tw_u8(w, (uint8_t)-100);
    tw_key(w, "rt.u16", GGUF_TYPE_UINT16); tw_raw(w, &(uint16_t){65000}, 2);
    tw_key(w, "rt.i16", GGUF_TYPE_INT16); tw_raw(w, &(int16_t){-32000}, 2);
    tw_kv_u32(w, "rt.u32", 4000000000u);
    tw_key(w, "rt.i32", GGUF_TYPE_INT32); tw_raw(w, &(int32_t){-2000000000}, 4);
    tw_key(w, "rt.u64", GGUF_TYPE_UINT64); tw_u64(w, (1ull << 63) + 5);
    tw_key(w, "rt.u64.small", GGUF_TYPE_UINT64); tw_u64(w, 4096);
    tw_key(w, "rt.i64", GGUF_TYPE_INT64); tw_raw(w, &(int64_t){INT64_MIN + 1}, 8);
    tw_key(w, "rt.f32", GGUF_TYPE_FLOAT32); tw_raw(w, &(float){1.5f}, 4);
    tw_key(w, "rt.f64", GGUF_TYPE_FLOAT64); tw_raw(w, &(double){-2.25e300}, 8);
    tw_key(w, "rt.bool", GGUF_TYPE_BOOL); tw_u8(w, 1);
    tw_key(w, "rt.bool0", GGUF_TYPE_BOOL); tw_u8(w, 0);
    tw_kv_str(w, "rt.str", "h\xc3\xa9llo");
    tw_kv_str(w, "rt.str.empty", "");
    tw_key(w, "rt.str.nul", GGUF_TYPE_STRING); tw_strn(w, "a\0b", 3);
    tw_arr(w, "rt.arr.u8", GGUF_TYPE_UINT8, 3); tw_raw(w, "\1\2\377", 3);
    tw_arr(w, "rt.arr.i8", GGUF_TYPE_INT8, 3); tw_raw(w, "\377\0\1", 3);
    tw_arr(w, "rt.arr.u16", GGUF_TYPE_UINT16, 2); tw_raw(w, (uint16_t[]){1, 65535}, 4);
    tw_arr(w, "rt.arr.i16", GGUF_TYPE_INT16, 2); tw_raw(w, (int16_t[]){-1, 300}, 4);
    tw_arr(w, "rt.arr.u32", GGUF_TYPE_UINT32, 2); tw_raw(w, (uint32_t[]){7, 4000000000u}, 8);
    tw_arr(w, "rt.arr.i32", GGUF_TYPE_INT32, 2); tw_raw(w, (int32_t[]){-7, 70000}, 8);
    tw_arr(w, "rt.arr.u64", GGUF_TYPE_UINT64, 2); tw_raw(w, (uint64_t[]){0, UINT64_MAX}, 16);
    tw_arr(w, "rt.arr.i64", GGUF_TYPE_INT64, 2); tw_raw(w, (int64_t[]){INT64_MIN, 42}, 16);
    tw_arr(w, "rt.arr.f32", GGUF_TYPE_FLOAT32, 3); tw_raw(w, (float[]){0.5f, -1.0f, 3e38f}, 12);
    tw_arr(w, "rt.arr.f64", GGUF_TYPE_FLOAT64, 2); tw_raw(w, (double[]){1e-300, -0.125}, 16);
    tw_arr(w, "rt.arr.bool", GGUF_TYPE_BOOL, 3); tw_raw(w, "\1\0\1", 3);
    tw_arr(w, "rt.arr.str", GGUF_TYPE_STRING, 3); tw_str(w, "a"); tw_str(w, ""); tw_str(w, "ccc");
    tw_arr(w, "rt.arr.empty", GGUF_TYPE_UINT32, 0);
    tw_arr(w, "rt.arr.str.empty", GGUF_TYPE_STRING, 0);

    uint64_t off = 0;
    for (size_t i = 0; i < RT_N_TENSORS; i++) {
        const rt_tensor *t = &rt_tensors[i];
        tw_tensor(w, t->name, t->n_dims, t->ne, t->type, off);
        off += (t->nbytes + RT_ALIGN - 1) / RT_ALIGN * RT_ALIGN;
    }
    tw_pad(w, RT_ALIGN);
    for (size_t i = 0; i < RT_N_TENSORS; i++) {
        for (size_t b = 0; b < rt_tensors[i].nbytes; b++) tw_u8(w, (uint8_t)(i * 16 + b));
        if (i + 1 < RT_N_TENSORS) tw_pad(w, RT_ALIGN);
    }
}

static void check_roundtrip(const gguf_file *f, const void *base, uint32_t version) {
    char err[256];
    assert_int_equal(gguf_version(f), version);
    assert_int_equal(gguf_alignment(f), RT_ALIGN);
    assert_int_equal(gguf_data_offset(f) % RT_ALIGN, 0);
    assert_int_equal(gguf_n_kv(f), RT_N_KV);
    assert_string_equal(gguf_kv_key(f, 0), "general.alignment");
    assert_string_equal(gguf_kv_key(f, 1), "rt.u8");
    assert_string_equal(gguf_kv_key(f, RT_N_KV - 1), "rt.arr.str.empty");
    assert_null(gguf_kv_key(f, RT_N_KV));
    assert_null(gguf_kv_value(f, RT_N_KV));
    assert_int_equal(gguf_find_key(f, "rt.u16"), 3);
    assert_int_equal(gguf_find_key(f, "rt.nope"), GGUF_ENOTFOUND);

    uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
    uint64_t u64; int64_t i64; float f32; double f64; bool b;
    assert_int_equal(gguf_get_u8(f, "rt.u8", &u8, err, sizeof err), 0);     assert_int_equal(u8, 200);
    assert_int_equal(gguf_get_i8(f, "rt.i8", &i8, err, sizeof err), 0);     assert_int_equal(i8, -100);
    assert_int_equal(gguf_get_u16(f, "rt.u16", &u16, err, sizeof err), 0);  assert_int_equal(u16, 65000);
    assert_int_equal(gguf_get_i16(f, "rt.i16", &i16, err, sizeof err), 0);  assert_int_equal(i16, -32000);
    assert_int_equal(gguf_get_u32(f, "rt.u32", &u32, err, sizeof err), 0);  assert_true(u32 == 4000000000u);
    assert_int_equal(gguf_get_i32(f, "rt.i32", &i32, err, sizeof err), 0);  assert_int_equal(i32, -2000000000);
    assert_int_equal(gguf_get_u64(f, "rt.u64", &u64, err, sizeof err), 0);  assert_true(u64 == (1ull << 63) + 5);
    assert_int_equal(gguf_get_i64(f, "rt.i64", &i64, err, sizeof err), 0);  assert_true(i64 == INT64_MIN + 1);
    assert_int_equal(gguf_get_f32(f, "rt.f32", &f32, err, sizeof err), 0);  assert_true(f32 == 1.5f);
    assert_int_equal(gguf_get_f64(f, "rt.f64", &f64, err, sizeof err), 0);  assert_true(f64 == -2.25e300);
    assert_int_equal(gguf_get_bool(f, "rt.bool", &b, err, sizeof err), 0);  assert_true(b);
    assert_int_equal(gguf_get_bool(f, "rt.bool0", &b, err, sizeof err), 0); assert_false(b);

    const char *s;
    size_t len;
    assert_int_equal(gguf_get_str(f, "rt.str", &s, &len, err, sizeof err), 0);
    assert_string_equal(s, "h\xc3\xa9llo");
    assert_int_equal(len, 6);
    assert_int_equal(gguf_get_str(f, "rt.str.empty", &s, NULL, err, sizeof err), 0);
    assert_string_equal(s, "");
    assert_int_equal(gguf_get_str(f, "rt.str.nul", &s, &len, err, sizeof err), 0);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);

    /* typed getters refuse other types and say why */
    assert_int_equal(gguf_get_u32(f, "rt.u8", &u32, err, sizeof err), GGUF_ETYPE);
    expect_err("u32 of u8", err, "key 'rt.u8' has type uint8, expected uint32");
    assert_int_equal(gguf_get_str(f, "rt.u32", &s, NULL, err, sizeof err), GGUF_ETYPE);
    assert_int_equal(gguf_get_f32(f, "missing.key", &f32, err, sizeof err), GGUF_ENOTFOUND);
    expect_err("missing", err, "key 'missing.key' not found");

    /* the any-integer getter */
    int64_t x;
    const void *d;
    size_t n;
    const struct { const char *key; int64_t want; } ints[] = {
        {"rt.u8", 200}, {"rt.i8", -100}, {"rt.u16", 65000}, {"rt.i16", -32000},
        {"rt.u32", 4000000000ll}, {"rt.i32", -2000000000}, {"rt.i64", INT64_MIN + 1},
        {"rt.u64.small", 4096},
    };
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        assert_int_equal(gguf_get_int(f, ints[i].key, INT64_MIN, INT64_MAX, &x, err, sizeof err), 0);
        assert_true(x == ints[i].want);
    }
    assert_int_equal(gguf_get_int(f, "rt.u64", INT64_MIN, INT64_MAX, &x, err, sizeof err), GGUF_ERANGE);
    expect_err("u64 too big", err, "does not fit int64");
    assert_int_equal(gguf_get_int(f, "rt.u32", 1, 100, &x, err, sizeof err), GGUF_ERANGE);
    expect_err("range", err, "key 'rt.u32': value 4000000000 is outside [1, 100]");
    assert_int_equal(gguf_get_int(f, "rt.f32", 0, 1, &x, err, sizeof err), GGUF_ETYPE);
    assert_int_equal(gguf_get_int(f, "rt.bool", 0, 1, &x, err, sizeof err), GGUF_ETYPE);
    assert_int_equal(gguf_get_float(f, "rt.f32", &f64, err, sizeof err), 0);
    assert_true(f64 == 1.5);
    assert_int_equal(gguf_get_float(f, "rt.f64", &f64, err, sizeof err), 0);
    assert_true(f64 == -2.25e300);
    assert_int_equal(gguf_get_float(f, "rt.u8", &f64, err, sizeof err), GGUF_ETYPE);
    expect_err("float of u8", err, "key 'rt.u8' has type uint8, expected a float");
    assert_int_equal(gguf_get_float(f, "rt.nope", &f64, err, sizeof err), GGUF_ENOTFOUND);
    assert_int_equal(gguf_get_int(f, "rt.nope", 0, 1, &x, err, sizeof err), GGUF_ENOTFOUND);
    expect_err("int missing", err, "key 'rt.nope' not found");
    assert_int_equal(gguf_get_arr(f, "rt.nope", GGUF_TYPE_UINT8, &d, &n, NULL, 0), GGUF_ENOTFOUND);

    /* arrays: aligned native copies */
#define ARR_EQ(key, et, ctype, ...)                                                   \
    do {                                                                              \
        const ctype want[] = {__VA_ARGS__};                                           \
        assert_int_equal(gguf_get_arr(f, key, et, &d, &n, err, sizeof err), 0);       \
        assert_int_equal(n, sizeof want / sizeof want[0]);                            \
        assert_int_equal((uintptr_t)d % _Alignof(ctype), 0);                          \
        assert_memory_equal(d, want, sizeof want);                                    \
    } while (0)
    ARR_EQ("rt.arr.u8", GGUF_TYPE_UINT8, uint8_t, 1, 2, 255);
    ARR_EQ("rt.arr.i8", GGUF_TYPE_INT8, int8_t, -1, 0, 1);
    ARR_EQ("rt.arr.u16", GGUF_TYPE_UINT16, uint16_t, 1, 65535);
    ARR_EQ("rt.arr.i16", GGUF_TYPE_INT16, int16_t, -1, 300);
    ARR_EQ("rt.arr.u32", GGUF_TYPE_UINT32, uint32_t, 7, 4000000000u);
    ARR_EQ("rt.arr.i32", GGUF_TYPE_INT32, int32_t, -7, 70000);
    ARR_EQ("rt.arr.u64", GGUF_TYPE_UINT64, uint64_t, 0, UINT64_MAX);
    ARR_EQ("rt.arr.i64", GGUF_TYPE_INT64, int64_t, INT64_MIN, 42);
    ARR_EQ("rt.arr.f32", GGUF_TYPE_FLOAT32, float, 0.5f, -1.0f, 3e38f);
    ARR_EQ("rt.arr.f64", GGUF_TYPE_FLOAT64, double, 1e-300, -0.125);
    ARR_EQ("rt.arr.bool", GGUF_TYPE_BOOL, bool, true, false, true);
#undef ARR_EQ
    assert_int_equal(gguf_get_arr(f, "rt.arr.str", GGUF_TYPE_STRING, &d, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    const gguf_str *strs = d;
    assert_string_equal(strs[0].s, "a");
    assert_int_equal(strs[1].len, 0);
    assert_string_equal(strs[1].s, "");
    assert_string_equal(strs[2].s, "ccc");
    assert_int_equal(strs[2].len, 3);
    assert_int_equal(gguf_get_arr(f, "rt.arr.empty", GGUF_TYPE_UINT32, &d, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(d);
    assert_int_equal(gguf_get_arr(f, "rt.arr.str.empty", GGUF_TYPE_STRING, &d, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(gguf_get_arr(f, "rt.arr.f32", GGUF_TYPE_FLOAT64, &d, &n, err, sizeof err), GGUF_ETYPE);
    expect_err("arr type", err, "key 'rt.arr.f32' is an array of float32, expected float64");
    assert_int_equal(gguf_get_arr(f, "rt.u8", GGUF_TYPE_UINT8, &d, &n, err, sizeof err), GGUF_ETYPE);
    const gguf_value *v = gguf_find_value(f, "rt.arr.str");
    assert_non_null(v);
    assert_int_equal(v->type, GGUF_TYPE_ARRAY);
    assert_int_equal(v->v.arr.type, GGUF_TYPE_STRING);
    assert_null(gguf_find_value(f, "rt"));

    /* tensors, in file order, with their data in place */
    assert_int_equal(gguf_n_tensors(f), RT_N_TENSORS);
    assert_null(gguf_tensor_at(f, RT_N_TENSORS));
    assert_null(gguf_find_tensor(f, "t.nope"));
    for (size_t i = 0; i < RT_N_TENSORS; i++) {
        const rt_tensor *want = &rt_tensors[i];
        const gguf_tensor *t = gguf_tensor_at(f, i);
        assert_ptr_equal(gguf_find_tensor(f, want->name), t);
        assert_string_equal(t->name, want->name);
        assert_int_equal(t->type, want->type);
        assert_int_equal(t->n_dims, want->n_dims);
        int64_t nel = 1;
        for (uint32_t dd = 0; dd < 4; dd++) {
            int64_t ne = dd < want->n_dims ? (int64_t)want->ne[dd] : 1;
            assert_int_equal(t->ne[dd], ne);
            nel *= ne;
        }
        assert_int_equal(t->n_elements, nel);
        assert_int_equal(t->nbytes, want->nbytes);
        assert_int_equal(t->offset % RT_ALIGN, 0);
        const uint8_t *data = t->data;
        assert_ptr_equal(data, (const uint8_t *)base + gguf_data_offset(f) + t->offset);
        for (size_t bb = 0; bb < t->nbytes; bb++) assert_int_equal(data[bb], (uint8_t)(i * 16 + bb));
    }
}

static void test_roundtrip_all_types(void **state) {
    for (uint32_t version = 2; version <= 3; version++) {
        tw w = {0};
        build_roundtrip(&w, version);
        gguf_file *f;
        void *copy;
        char err[256];
        int rc = parse_copy(w.p, w.n, &f, &copy, err, sizeof err);
        if (rc) fail_msg("%s", err);
        check_roundtrip(f, copy, version);
        gguf_close(f);
        free(copy);
        tw_free(&w);
    }
}

static void test_roundtrip_prefixes(void **state) {
    tw w = {0};
    build_roundtrip(&w, 3);
    check_prefixes(&w);
    tw_free(&w);
}

/* gguf_open maps the file; errors name the path. */
static void test_open_file(void **state) {
    char path[] = "/tmp/test_gguf_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    tw w = {0};
    build_roundtrip(&w, 3);
    assert_int_equal(write(fd, w.p, w.n), (ssize_t)w.n);
    close(fd);

    gguf_file *f;
    char err[512];
    int rc = gguf_open(&f, path, err, sizeof err);
    if (rc) fail_msg("%s", err);
    /* tensor 0 sits at offset 0 of the data section */
    check_roundtrip(f, (const uint8_t *)gguf_tensor_at(f, 0)->data - gguf_data_offset(f), 3);
    assert_int_equal(gguf_file_size(f), w.n);
    assert_int_equal((uintptr_t)gguf_tensor_at(f, 1)->data % RT_ALIGN, 0);
    gguf_close(f);

    /* a truncated file on disk fails with its path in the message */
    assert_int_equal(truncate(path, (off_t)(w.n - 1)), 0);
    f = (gguf_file *)1;
    assert_int_equal(gguf_open(&f, path, err, sizeof err), GGUF_EFORMAT);
    assert_null(f);
    expect_err("truncated file", err, path);
    expect_err("truncated file", err, "beyond end of file");
    assert_int_equal(truncate(path, 0), 0);
    assert_int_equal(gguf_open(&f, path, err, sizeof err), GGUF_EFORMAT);
    expect_err("empty file", err, "file is empty");
    unlink(path);
    tw_free(&w);

    assert_int_equal(gguf_open(&f, "/nonexistent/model.gguf", err, sizeof err), GGUF_EIO);
    expect_err("missing file", err, "gguf: /nonexistent/model.gguf: cannot open");
    assert_int_equal(gguf_open(&f, "/tmp", err, sizeof err), GGUF_EIO);
    expect_err("directory", err, "not a regular file");
    gguf_close(NULL);

    /* a NULL buffer is a caller error, not a format error */
    assert_int_equal(gguf_parse(&f, NULL, 5, err, sizeof err), GGUF_EINVAL);
    assert_null(f);
    assert_int_equal(gguf_parse(&f, NULL, 0, err, sizeof err), GGUF_EFORMAT);
    expect_err("empty buffer", err, "truncated: magic");
}

/* ---- the ggml type table ------------------------------------------------- */

static void test_dtype_table(void **state) {
    const struct { uint32_t t; const char *name; uint32_t bs, ts; } want[] = {
        {GGUF_DTYPE_F32, "f32", 1, 4},     {GGUF_DTYPE_F16, "f16", 1, 2},
        {GGUF_DTYPE_BF16, "bf16", 1, 2},   {GGUF_DTYPE_Q8_0, "q8_0", 32, 34},
        {GGUF_DTYPE_Q4_0, "q4_0", 32, 18}, {GGUF_DTYPE_Q4_1, "q4_1", 32, 20},
        {GGUF_DTYPE_Q5_0, "q5_0", 32, 22}, {GGUF_DTYPE_Q5_1, "q5_1", 32, 24},
        {GGUF_DTYPE_Q4_K, "q4_K", 256, 144}, {GGUF_DTYPE_Q5_K, "q5_K", 256, 176},
        {GGUF_DTYPE_Q6_K, "q6_K", 256, 210}, {GGUF_DTYPE_Q8_K, "q8_K", 256, 292},
        {GGUF_DTYPE_I8, "i8", 1, 1},       {GGUF_DTYPE_I16, "i16", 1, 2},
        {GGUF_DTYPE_I32, "i32", 1, 4},     {GGUF_DTYPE_Q2_K, "q2_K", 256, 84},
        {GGUF_DTYPE_Q3_K, "q3_K", 256, 110},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_true(gguf_dtype_valid(want[i].t));
        assert_string_equal(gguf_dtype_name(want[i].t), want[i].name);
        assert_int_equal(gguf_dtype_block_size(want[i].t), want[i].bs);
        assert_int_equal(gguf_dtype_type_size(want[i].t), want[i].ts);
    }
    for (uint32_t t = 0; t < 64; t++) /* the table has no half-filled rows */
        assert_true(gguf_dtype_valid(t) == (gguf_dtype_block_size(t) != 0 && gguf_dtype_type_size(t) != 0));
    assert_false(gguf_dtype_valid(4));
    assert_false(gguf_dtype_valid(GGUF_DTYPE_COUNT));
    assert_false(gguf_dtype_valid(UINT32_MAX));
    assert_null(gguf_dtype_name(31));

    size_t sz;
    assert_int_equal(gguf_dtype_row_size(GGUF_DTYPE_Q4_K, 4096, &sz), 0);
    assert_int_equal(sz, 16 * 144);
    assert_int_equal(gguf_dtype_row_size(GGUF_DTYPE_F16, 7, &sz), 0);
    assert_int_equal(sz, 14);
    assert_int_equal(gguf_dtype_row_size(GGUF_DTYPE_Q8_0, 100, &sz), GGUF_EINVAL);
    assert_int_equal(gguf_dtype_row_size(GGUF_DTYPE_F32, -1, &sz), GGUF_EINVAL);
    assert_int_equal(gguf_dtype_row_size(99, 32, &sz), GGUF_EINVAL);
    assert_int_equal(gguf_dtype_nbytes(GGUF_DTYPE_Q6_K, (const int64_t[]){512, 3, 2, 1}, &sz), 0);
    assert_int_equal(sz, 2 * 210 * 6);
    assert_int_equal(gguf_dtype_nbytes(GGUF_DTYPE_F32, (const int64_t[]){INT64_MAX, 2, 1, 1}, &sz),
                     GGUF_ERANGE);
    assert_int_equal(gguf_dtype_nbytes(GGUF_DTYPE_F32, (const int64_t[]){1ll << 62, 1, 1, 1}, &sz),
                     GGUF_ERANGE);

    assert_string_equal(gguf_type_name(GGUF_TYPE_FLOAT64), "float64");
    assert_string_equal(gguf_type_name((gguf_type)99), "invalid");
    assert_string_equal(gguf_strerror(GGUF_EFORMAT), "malformed GGUF file");
}

/* ---- the reference models in ../shared ----------------------------------- */

static gguf_file *open_shared(const char *rel) {
    char *path = tu_shared_path(rel);
    if (!path) skip();
    gguf_file *f;
    char err[512];
    int rc = gguf_open(&f, path, err, sizeof err);
    free(path);
    if (rc) fail_msg("%s", err);
    return f;
}

static void expect_str(const gguf_file *f, const char *key, const char *want) {
    const char *s;
    char err[256];
    if (gguf_get_str(f, key, &s, NULL, err, sizeof err)) fail_msg("%s", err);
    assert_string_equal(s, want);
}

static int64_t expect_int(const gguf_file *f, const char *key, int64_t want) {
    int64_t x;
    char err[256];
    if (gguf_get_int(f, key, INT64_MIN, INT64_MAX, &x, err, sizeof err)) fail_msg("%s", err);
    assert_int_equal(x, want);
    return x;
}

static size_t arr_count(const gguf_file *f, const char *key, gguf_type et) {
    const void *d;
    size_t n;
    char err[256];
    if (gguf_get_arr(f, key, et, &d, &n, err, sizeof err)) fail_msg("%s", err);
    return n;
}

static void expect_tensor(const gguf_file *f, const char *name, int64_t ne0, int64_t ne1) {
    const gguf_tensor *t = gguf_find_tensor(f, name);
    if (!t) fail_msg("tensor %s absent", name);
    assert_int_equal(t->type, GGUF_DTYPE_F32);
    assert_int_equal(t->n_dims, ne1 > 1 ? 2 : 1);
    assert_int_equal(t->ne[0], ne0);
    assert_int_equal(t->ne[1], ne1);
    assert_int_equal(t->nbytes, (size_t)(ne0 * ne1 * 4));
    assert_int_equal((uintptr_t)t->data % gguf_alignment(f), 0);
    float x;
    memcpy(&x, t->data, sizeof x);
    assert_true(isfinite(x));
}

static void test_shared_stories260k(void **state) {
    gguf_file *f = open_shared("models/stories260K.gguf");
    char err[256];
    assert_int_equal(gguf_version(f), 3);
    expect_str(f, "general.architecture", "llama");
    expect_int(f, "llama.context_length", 128);
    expect_int(f, "llama.embedding_length", 64);
    int64_t n_layer = expect_int(f, "llama.block_count", 5);
    expect_int(f, "llama.attention.head_count_kv", 4);
    double eps;
    assert_int_equal(gguf_get_float(f, "llama.attention.layer_norm_rms_epsilon", &eps, err, sizeof err), 0);
    assert_true(fabs(eps - 1e-5) < 1e-9);
    uint32_t sep;
    assert_int_equal(gguf_get_u32(f, "tokenizer.ggml.seperator_token_id", &sep, err, sizeof err), 0);
    assert_true(sep == UINT32_MAX);

    const void *d;
    size_t n_vocab;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, &d, &n_vocab, err, sizeof err), 0);
    assert_int_equal(n_vocab, 512);
    const gguf_str *tok = d;
    assert_string_equal(tok[1].s, "<s>");
    assert_string_equal(tok[3].s, "<0x00>");
    assert_int_equal(arr_count(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32), n_vocab);
    assert_int_equal(arr_count(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32), n_vocab);

    assert_int_equal(gguf_n_tensors(f), 48);
    assert_int_equal(gguf_n_kv(f), 19);
    expect_tensor(f, "token_embd.weight", 64, 512);
    expect_tensor(f, "output_norm.weight", 64, 1);
    expect_tensor(f, "blk.0.attn_k.weight", 64, 32);
    expect_tensor(f, "blk.4.ffn_down.weight", 172, 64);
    int64_t q_count = 0;
    for (size_t i = 0; i < gguf_n_tensors(f); i++)
        if (strstr(gguf_tensor_at(f, i)->name, ".attn_q.weight")) q_count++;
    assert_int_equal(q_count, n_layer);
    gguf_close(f);
}

static void test_shared_llama_tiny(void **state) {
    gguf_file *f = open_shared("conformance/llama-tiny/model-f32.gguf");
    char err[256];
    expect_str(f, "general.architecture", "llama");
    expect_int(f, "llama.context_length", 512);
    expect_int(f, "llama.embedding_length", 32);
    expect_int(f, "llama.attention.head_count_kv", 2);
    int64_t vocab = expect_int(f, "llama.vocab_size", 32000);
    double theta;
    assert_int_equal(gguf_get_float(f, "llama.rope.freq_base", &theta, err, sizeof err), 0);
    assert_true(theta == 500000.0);
    bool add_bos;
    assert_int_equal(gguf_get_bool(f, "tokenizer.ggml.add_bos_token", &add_bos, err, sizeof err), 0);
    assert_true(add_bos);
    assert_int_equal(arr_count(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING), (size_t)vocab);
    assert_int_equal(arr_count(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32), (size_t)vocab);
    assert_int_equal(gguf_n_tensors(f), 21);
    expect_tensor(f, "output.weight", 32, 32000);
    expect_tensor(f, "token_embd.weight", 32, 32000);
    expect_tensor(f, "blk.1.ffn_down.weight", 128, 32);
    gguf_close(f);
}

static void test_shared_gpt2_tiny(void **state) {
    gguf_file *f = open_shared("conformance/gpt2-tiny/model-f32.gguf");
    char err[256];
    expect_str(f, "general.architecture", "gpt2");
    expect_str(f, "tokenizer.ggml.pre", "gpt-2");
    expect_int(f, "gpt2.context_length", 512);
    expect_int(f, "gpt2.embedding_length", 32);
    assert_int_equal(arr_count(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING), 50257);
    const void *d;
    size_t n;
    assert_int_equal(gguf_get_arr(f, "tokenizer.ggml.merges", GGUF_TYPE_STRING, &d, &n, err, sizeof err), 0);
    assert_int_equal(n, 50000);
    assert_string_equal(((const gguf_str *)d)[0].s, "\xc4\xa0 t");
    assert_int_equal(gguf_n_tensors(f), 29);
    expect_tensor(f, "blk.0.attn_qkv.weight", 32, 96);
    expect_tensor(f, "blk.0.attn_qkv.bias", 96, 1);
    gguf_close(f);
}

static void test_shared_bert_tiny(void **state) {
    gguf_file *f = open_shared("conformance/bert-tiny/model-f32.gguf");
    char err[256];
    expect_str(f, "general.architecture", "bert");
    expect_int(f, "bert.pooling_type", 1);
    bool causal = true;
    assert_int_equal(gguf_get_bool(f, "bert.attention.causal", &causal, err, sizeof err), 0);
    assert_false(causal);
    assert_int_equal(arr_count(f, "tokenizer.ggml.tokens", GGUF_TYPE_STRING), 30522);
    assert_int_equal(gguf_n_tensors(f), 37);
    expect_tensor(f, "token_types.weight", 32, 2);
    expect_tensor(f, "position_embd.weight", 32, 512);
    gguf_close(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dtype_table),
        cmocka_unit_test(test_small_valid),
        cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_hostile_header),
        cmocka_unit_test(test_hostile_kv),
        cmocka_unit_test(test_hostile_tensor_info),
        cmocka_unit_test(test_hostile_alignment),
        cmocka_unit_test(test_hostile_layout),
        cmocka_unit_test(test_roundtrip_all_types),
        cmocka_unit_test(test_roundtrip_prefixes),
        cmocka_unit_test(test_open_file),
        cmocka_unit_test(test_shared_stories260k),
        cmocka_unit_test(test_shared_llama_tiny),
        cmocka_unit_test(test_shared_gpt2_tiny),
        cmocka_unit_test(test_shared_bert_tiny),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
