/* test_tok_clip.c - CLIP's byte-level BPE (engine/tok_clip.c).
 *
 * Reference checks use ../shared/conformance/clip-tiny (skipped when
 * absent): the folder is loaded with tok_load_hf_dir (which must pick CLIP
 * over GPT-2 for it), and reference.json's label_input_ids and every
 * prompts[i].input_ids (HF CLIPTokenizer, truncation=True, max_length=77)
 * must match exactly. A built-in vocabulary tests "</w>" merges, cleaning,
 * special tokens, decoding and truncation without the shared files. */
#include "tu_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_load.h"
#include "tok_utf8.h"

static tok *g_clip; /* the clip-tiny tokenizer, NULL when ../shared is absent */
static json_t *g_ref;

static int setup_clip(void **state) {
    (void)state;
    char *ref = tu_shared_path("conformance/clip-tiny/reference.json");
    if (ref) {
        char *dir = strdup(ref);
        assert_non_null(dir);
        *strrchr(dir, '/') = '\0';
        tok_err err = {0};
        if (tok_load_hf_dir(&g_clip, dir, &err)) fprintf(stderr, "clip tokenizer: %s\n", err.msg);
        g_ref = json_load_file(ref, 0, NULL);
        free(dir);
    }
    free(ref);
    return 0;
}

static int teardown_clip(void **state) {
    (void)state;
    tok_free(g_clip);
    json_decref(g_ref);
    g_clip = NULL;
    g_ref = NULL;
    return 0;
}

#define NEED_CLIP()                   \
    do {                              \
        if (!g_clip || !g_ref) {      \
            skip();                   \
            return;                   \
        }                             \
    } while (0)

/* Encodes s; returns malloc'd ids, count in *n. */
static int32_t *enc(const tok *t, const char *s, unsigned flags, size_t *n) {
    tok_err err = {0};
    size_t need = 0, len = strlen(s);
    int rc = tok_encode(t, s, len, flags, NULL, 0, &need, &err);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    rc = tok_encode(t, s, len, flags, ids, need, n, &err);
    if (rc) fprintf(stderr, "encode: %s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    assert_int_equal(*n, need);
    return ids;
}

/* Decodes ids; returns a malloc'd NUL-terminated string. */
static char *dec(const tok *t, const int32_t *ids, size_t n, unsigned flags) {
    size_t need = 0, got = 0;
    int rc = tok_decode(t, ids, n, flags, NULL, 0, &need, NULL);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    char *buf = malloc(need + 1);
    assert_non_null(buf);
    assert_int_equal(tok_decode(t, ids, n, flags, buf, need, &got, NULL), TOK_OK);
    assert_int_equal(got, need);
    buf[got] = '\0';
    return buf;
}

static void expect_ids(const tok *t, const char *s, unsigned flags, const int32_t *want, size_t nw) {
    size_t n;
    int32_t *ids = enc(t, s, flags, &n);
    if (n != nw || memcmp(ids, want, n * sizeof *ids) != 0) {
        fprintf(stderr, "\"%s\": got", s);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    assert_int_equal(n, nw);
    assert_memory_equal(ids, want, n * sizeof *ids);
    free(ids);
}

/* ---- clip-tiny --------------------------------------------------------------- */

static void test_loaded_kind(void **state) {
    (void)state;
    NEED_CLIP();
    assert_int_equal(tok_get_kind(g_clip), TOK_KIND_CLIP);
    assert_int_equal(tok_n_vocab(g_clip), 49408);
    assert_int_equal(tok_bos(g_clip), 49406);
    assert_int_equal(tok_eos(g_clip), 49407);
    assert_int_equal(tok_pad(g_clip), 49407);
    assert_true(tok_adds_bos(g_clip) && tok_adds_eos(g_clip));
}

static void test_cat(void **state) {
    (void)state;
    NEED_CLIP();
    static const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 269, 49407};
    expect_ids(g_clip, "a photo of a cat.", TOK_ENC_ADD_SPECIAL, want, 8);
    expect_ids(g_clip, "a photo of a cat.", 0, want + 1, 6);
}

/* Checks ids (a json array) for text, truncated to 77 as HF does. */
static void check_ref_ids(const char *text, const json_t *want) {
    assert_true(json_is_array(want));
    size_t n;
    int32_t *ids = enc(g_clip, text, TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(tok_clip_truncate(ids, &n, 77), TOK_OK);
    if (n != json_array_size(want)) fprintf(stderr, "\"%s\": %zu ids, want %zu\n", text, n, json_array_size(want));
    assert_int_equal(n, json_array_size(want));
    for (size_t i = 0; i < n; i++) {
        if (ids[i] != json_integer_value(json_array_get(want, i)))
            fprintf(stderr, "\"%s\": ids[%zu] = %d, want %lld\n", text, i, ids[i],
                    (long long)json_integer_value(json_array_get(want, i)));
        assert_int_equal(ids[i], json_integer_value(json_array_get(want, i)));
    }
    free(ids);
}

static void test_reference_labels(void **state) {
    (void)state;
    NEED_CLIP();
    const json_t *prompts = json_object_get(g_ref, "label_prompts");
    const json_t *ids = json_object_get(g_ref, "label_input_ids");
    assert_true(json_array_size(prompts) == 4 && json_array_size(ids) == 4);
    for (size_t i = 0; i < 4; i++)
        check_ref_ids(json_string_value(json_array_get(prompts, i)), json_array_get(ids, i));
}

static void test_reference_prompts(void **state) {
    (void)state;
    NEED_CLIP();
    const json_t *prompts = json_object_get(g_ref, "prompts");
    assert_true(json_array_size(prompts) >= 1);
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        const json_t *p = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        assert_non_null(text);
        check_ref_ids(text, json_object_get(p, "input_ids"));
    }
}

static void test_whitespace_and_case(void **state) {
    (void)state;
    NEED_CLIP();
    static const int32_t want[] = {49406, 320, 1125, 539, 320, 2368, 269, 49407};
    expect_ids(g_clip, "  A   PHOTO\tof a\n\r CAT.   ", TOK_ENC_ADD_SPECIAL, want, 8);
    expect_ids(g_clip, "A Photo Of A Cat.", TOK_ENC_ADD_SPECIAL, want, 8);
    expect_ids(g_clip, "a\xE3\x80\x80photo\xC2\xA0of\x1F" "a cat.", TOK_ENC_ADD_SPECIAL, want, 8);
    /* empty and all-space text: just the specials */
    static const int32_t empty[] = {49406, 49407};
    expect_ids(g_clip, "", TOK_ENC_ADD_SPECIAL, empty, 2);
    expect_ids(g_clip, " \t\n ", TOK_ENC_ADD_SPECIAL, empty, 2);
    /* NFC: "e" + U+0301 encodes as U+00E9 */
    size_t n1, n2;
    int32_t *a = enc(g_clip, "caf\xC3\xA9", 0, &n1), *b = enc(g_clip, "cafe\xCC\x81", 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof *a);
    free(a);
    free(b);
    /* "'S" lower-cases into the "'s" contraction */
    a = enc(g_clip, "IT'S", 0, &n1);
    b = enc(g_clip, "it's", 0, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(a, b, n1 * sizeof *a);
    free(a);
    free(b);
}

static void test_decode_round_trip(void **state) {
    (void)state;
    NEED_CLIP();
    static const char *texts[] = {"a photo of a cat", "the quick brown fox jumps over the lazy dog",
                                  "na\xC3\xAFve caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
                                  "emoji \xF0\x9F\x98\x80\xF0\x9F\x9A\x80 done", "x", ""};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        size_t n;
        int32_t *ids = enc(g_clip, texts[i], TOK_ENC_ADD_SPECIAL, &n);
        char *s = dec(g_clip, ids, n, 0);
        assert_string_equal(s, texts[i]);
        free(s);
        free(ids);
    }
    /* upper case and extra spaces come back lower-cased and collapsed */
    size_t n;
    int32_t *ids = enc(g_clip, "  A Photo   OF a CAT.  ", TOK_ENC_ADD_SPECIAL, &n);
    char *s = dec(g_clip, ids, n, 0);
    assert_string_equal(s, "a photo of a cat .");
    free(s);
    s = dec(g_clip, ids, n, TOK_DEC_SPECIAL);
    assert_string_equal(s, "<|startoftext|>a photo of a cat . <|endoftext|>");
    free(s);
    /* a single piece keeps its "</w>" space */
    char piece[16];
    size_t pl;
    assert_int_equal(tok_decode_piece(g_clip, 2368, 0, piece, sizeof piece, &pl, NULL), TOK_OK);
    assert_int_equal(pl, 4);
    assert_memory_equal(piece, "cat ", 4);
    free(ids);
}

static void test_special_tokens(void **state) {
    (void)state;
    NEED_CLIP();
    const char *s = "a cat<|endoftext|>a <|startoftext|>dog";
    size_t n;
    int32_t *ids = enc(g_clip, s, TOK_ENC_PARSE_SPECIAL, &n);
    static const int32_t want[] = {320, 2368, 49407, 320, 49406, 1929};
    assert_int_equal(n, 6);
    assert_memory_equal(ids, want, sizeof want);
    free(ids);
    ids = enc(g_clip, s, 0, &n); /* plain text: no special ids */
    for (size_t i = 0; i < n; i++) assert_true(ids[i] < 49406);
    free(ids);
}

static void test_truncate(void **state) {
    (void)state;
    NEED_CLIP();
    char text[1024] = "";
    for (int i = 0; i < 100; i++) strcat(text, i % 2 ? "dog " : "cat ");
    size_t n;
    int32_t *ids = enc(g_clip, text, TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(n, 102);
    assert_int_equal(tok_clip_truncate(ids, &n, 77), TOK_OK);
    assert_int_equal(n, 77);
    assert_int_equal(ids[0], 49406);
    assert_int_equal(ids[76], 49407);
    for (size_t i = 1; i < 76; i++) assert_int_equal(ids[i], i % 2 ? 2368 : 1929);
    free(ids);
}

/* ---- built-in vocabulary (no shared files) ------------------------------------ */

static tok *make_small(void) {
    static char bytes[512][12];
    const char *v[512 + 16];
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        int self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        size_t l = tok_utf8_encode(self ? b : 256 + extra++, bytes[b]);
        bytes[b][l] = '\0';
        memcpy(bytes[256 + b], bytes[b], l);
        memcpy(bytes[256 + b] + l, "</w>", 5);
        v[b] = bytes[b];
        v[256 + b] = bytes[256 + b];
    }
    const char *more[] = {"he", "ll", "hell", "o</w>", "hello</w>", "lo</w>", "<|startoftext|>",
                          "<|endoftext|>"};
    const char *merges[] = {"h e", "l l", "he ll", "hell o</w>", "l o</w>"};
    size_t n = 512 + sizeof more / sizeof *more;
    for (size_t i = 512; i < n; i++) v[i] = more[i - 512];
    tok *t = NULL;
    tok_err err = {0};
    int rc = tok_create_clip(&t, v, n, merges, sizeof merges / sizeof *merges, NULL, NULL, &err);
    if (rc) fprintf(stderr, "small clip: %s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    return t;
}

static void test_small_vocab(void **state) {
    (void)state;
    tok *t = make_small();
    int32_t hello = tok_find(t, "hello</w>", 9), lo = tok_find(t, "lo</w>", 6);
    int32_t sot = tok_find(t, "<|startoftext|>", 15), eot = tok_find(t, "<|endoftext|>", 13);
    int32_t l = tok_find(t, "l", 1), hell = tok_find(t, "hell", 4);
    assert_int_equal(tok_bos(t), sot);
    assert_int_equal(tok_eos(t), eot);
    int32_t w1[] = {sot, hello, eot};
    expect_ids(t, "HELLO", TOK_ENC_ADD_SPECIAL, w1, 3);
    /* "llo": "l l" (rank 1) beats "l o</w>" (rank 4) */
    size_t n;
    int32_t *ids = enc(t, "llo", 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], tok_find(t, "ll", 2));
    assert_int_equal(ids[1], tok_find(t, "o</w>", 5));
    free(ids);
    (void)hell;
    int32_t w4[] = {lo}; /* "lo": one word, "l o</w>" */
    expect_ids(t, "lo", 0, w4, 1);
    /* "hell" alone ends in "l</w>": no "ll</w>" token, so hell cannot form */
    ids = enc(t, "hell", 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], tok_find(t, "he", 2));
    assert_int_equal(ids[1], l);
    assert_int_equal(ids[2], tok_find(t, "l</w>", 5));
    char *s = dec(t, ids, n, 0);
    assert_string_equal(s, "hell");
    free(s);
    free(ids);
    /* invalid UTF-8 becomes U+FFFD, which round-trips as its bytes */
    ids = enc(t, "a\xFF" "b", 0, &n);
    s = dec(t, ids, n, 0);
    assert_string_equal(s, "a \xEF\xBF\xBD b"); /* three pre-tokens: L, other, L */
    free(s);
    free(ids);
    tok_free(t);
}

static void test_truncate_args(void **state) {
    (void)state;
    int32_t ids[5] = {1, 2, 3, 4, 5};
    size_t n = 5;
    assert_int_equal(tok_clip_truncate(ids, &n, 5), TOK_OK);
    assert_int_equal(n, 5);
    assert_int_equal(tok_clip_truncate(ids, &n, 1), TOK_EINVAL);
    assert_int_equal(tok_clip_truncate(NULL, &n, 3), TOK_EINVAL);
    assert_int_equal(tok_clip_truncate(ids, &n, 3), TOK_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], 2);
    assert_int_equal(ids[2], 5);
}

static void test_errors(void **state) {
    (void)state;
    const char *v[] = {"a", "b", "ab"};
    const char *bad[] = {"ab"};
    tok *t = (tok *)1;
    tok_err err = {0};
    assert_int_equal(tok_create_clip(&t, v, 3, bad, 1, NULL, NULL, &err), TOK_EINVAL);
    assert_null(t);
    assert_non_null(strstr(err.msg, "merge 0"));
    assert_int_equal(tok_create_clip_from_files(&t, "/nonexistent/vocab.json", "/nonexistent/merges.txt",
                                                NULL, &err),
                     TOK_EFORMAT);
    assert_null(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loaded_kind),      cmocka_unit_test(test_cat),
        cmocka_unit_test(test_reference_labels), cmocka_unit_test(test_reference_prompts),
        cmocka_unit_test(test_whitespace_and_case), cmocka_unit_test(test_decode_round_trip),
        cmocka_unit_test(test_special_tokens),   cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_small_vocab),      cmocka_unit_test(test_truncate_args),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup_clip, teardown_clip);
}
