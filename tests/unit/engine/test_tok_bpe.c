/* test_tok_bpe.c - GPT-2 byte-level BPE (engine/tok_bpe.c).
 *
 * Reference checks use the real GPT-2 vocab.json / merges.txt in
 * ../shared/conformance/gpt2-tiny (skipped when absent):
 *   - tests/fixtures/tok_gpt2_cases.json: >= 1000 strings with ids from
 *     gpt-3-encoder@1.1.4 (tests/tools/gen_gpt2_fixture.js); every case must
 *     match exactly and decode back to its bytes;
 *   - reference.json: the 4 prompts' input_ids and the continuation ids.
 * A small built-in vocabulary tests merge order, special tokens, invalid
 * UTF-8 and error reporting without the shared files. */
#include "tu_util.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tok.h"
#include "tok_utf8.h"

static tok *g_gpt2; /* loaded once by the group setup, NULL when ../shared is absent */

static int setup_gpt2(void **state) {
    (void)state;
    char *vocab = tu_shared_path("conformance/gpt2-tiny/vocab.json");
    char *merges = tu_shared_path("conformance/gpt2-tiny/merges.txt");
    if (vocab && merges) {
        tok_err err = {0};
        int rc = tok_create_bpe_from_files(&g_gpt2, vocab, merges, NULL, &err);
        if (rc) fprintf(stderr, "gpt2 tokenizer: %s\n", err.msg);
    }
    free(vocab);
    free(merges);
    return 0;
}

static int teardown_gpt2(void **state) {
    (void)state;
    tok_free(g_gpt2);
    g_gpt2 = NULL;
    return 0;
}

#define NEED_GPT2()                                  \
    do {                                             \
        if (!g_gpt2) {                               \
            skip();                                  \
            return;                                  \
        }                                            \
    } while (0)

/* Encodes and returns a malloc'd id array (count in *n). */
static int32_t *enc(const tok *t, const char *s, size_t len, unsigned flags, size_t *n) {
    tok_err err = {0};
    size_t need = 0;
    int rc = tok_encode(t, s, len, flags, NULL, 0, &need, &err);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    rc = tok_encode(t, s, len, flags, ids, need, n, &err);
    if (rc) fprintf(stderr, "tok_encode: %s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    assert_int_equal(*n, need);
    return ids;
}

/* Decodes ids into a malloc'd buffer (length in *len). */
static char *dec(const tok *t, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    tok_err err = {0};
    size_t need = 0;
    int rc = tok_decode(t, ids, n, flags, NULL, 0, &need, &err);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    char *buf = malloc(need + 1);
    assert_non_null(buf);
    assert_int_equal(tok_decode(t, ids, n, flags, buf, need, len, &err), TOK_OK);
    assert_int_equal(*len, need);
    buf[need] = '\0';
    return buf;
}

static void print_escaped(const char *s, size_t len) {
    for (size_t i = 0; i < len && i < 200; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7F && c != '\\') fputc(c, stderr);
        else fprintf(stderr, "\\x%02X", c);
    }
}

static void print_ids(const char *label, const int32_t *ids, size_t n) {
    fprintf(stderr, "  %s:", label);
    for (size_t i = 0; i < n && i < 60; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "%s\n", n > 60 ? " ..." : "");
}

/* Compares encode(text) with a JSON id array; prints the case when not equal. */
static bool ids_match(const tok *t, const char *text, size_t len, unsigned flags, json_t *want) {
    size_t n;
    int32_t *got = enc(t, text, len, flags, &n);
    size_t nw = json_array_size(want);
    bool ok = n == nw;
    for (size_t i = 0; ok && i < n; i++) ok = got[i] == json_integer_value(json_array_get(want, i));
    if (!ok) {
        fprintf(stderr, "MISMATCH for \"");
        print_escaped(text, len);
        fprintf(stderr, "\"\n");
        int32_t *w = malloc((nw + 1) * sizeof *w);
        for (size_t i = 0; i < nw; i++) w[i] = (int32_t)json_integer_value(json_array_get(want, i));
        print_ids("expected", w, nw);
        print_ids("got     ", got, n);
        free(w);
    }
    free(got);
    return ok;
}

/* ---- reference checks ---------------------------------------------------- */

static void test_fixture_cases(void **state) {
    (void)state;
    NEED_GPT2();
    char *path = tu_source_path("tests/fixtures/tok_gpt2_cases.json");
    json_error_t je;
    json_t *root = json_load_file(path, JSON_ALLOW_NUL, &je);
    if (!root) fprintf(stderr, "%s: %s (line %d)\n", path, je.text, je.line);
    assert_non_null(root);
    json_t *cases = json_object_get(root, "cases");
    size_t n = json_array_size(cases), bad = 0, bad_rt = 0, n_ids = 0;
    assert_true(n >= 1000);
    clock_t t0 = clock();
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_array_get(cases, i);
        json_t *jt = json_object_get(c, "text");
        const char *text = json_string_value(jt);
        size_t len = json_string_length(jt);
        json_t *want = json_object_get(c, "ids");
        n_ids += json_array_size(want);
        if (!ids_match(g_gpt2, text, len, 0, want)) bad++;
        /* decode(encode(text)) == text, byte for byte */
        size_t ni, dl;
        int32_t *ids = enc(g_gpt2, text, len, 0, &ni);
        char *back = dec(g_gpt2, ids, ni, 0, &dl);
        if (dl != len || memcmp(back, text, len) != 0) bad_rt++;
        free(back);
        free(ids);
    }
    fprintf(stderr, "gpt2 fixture: %zu/%zu strings matched gpt-3-encoder (%zu ids), %zu round-trip failures, %.2f s\n",
            n - bad, n, n_ids, bad_rt, (double)(clock() - t0) / CLOCKS_PER_SEC);
    assert_int_equal(bad, 0);
    assert_int_equal(bad_rt, 0);
    json_decref(root);
    free(path);
}

static void test_reference_prompts(void **state) {
    (void)state;
    NEED_GPT2();
    char *path = tu_shared_path("conformance/gpt2-tiny/reference.json");
    if (!path) {
        skip();
        return;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    json_t *prompts = json_object_get(root, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        assert_true(ids_match(g_gpt2, text, strlen(text), TOK_ENC_ADD_SPECIAL, json_object_get(p, "input_ids")));
        /* pieces (vocabulary strings) equal the reference's tokens */
        size_t n, dl;
        int32_t *ids = enc(g_gpt2, text, strlen(text), TOK_ENC_ADD_SPECIAL, &n);
        json_t *toks = json_object_get(p, "tokens");
        assert_int_equal(json_array_size(toks), n);
        for (size_t k = 0; k < n; k++) {
            size_t tl;
            const char *tt = tok_token_text(g_gpt2, ids[k], &tl);
            assert_non_null(tt);
            assert_string_equal(tt, json_string_value(json_array_get(toks, k)));
        }
        char *back = dec(g_gpt2, ids, n, 0, &dl);
        assert_string_equal(back, json_string_value(json_object_get(p, "decoded_roundtrip")));
        free(back);
        free(ids);
    }
    const char *cont = json_string_value(json_object_get(root, "continuation_text"));
    assert_true(ids_match(g_gpt2, cont, strlen(cont), 0, json_object_get(root, "continuation_ids")));
    json_decref(root);
    free(path);
}

static void test_gpt2_conventions(void **state) {
    (void)state;
    NEED_GPT2();
    assert_int_equal(tok_get_kind(g_gpt2), TOK_KIND_BPE);
    assert_int_equal(tok_n_vocab(g_gpt2), 50257);
    assert_int_equal(tok_eos(g_gpt2), 50256);
    assert_int_equal(tok_bos(g_gpt2), 50256);
    assert_false(tok_adds_bos(g_gpt2));
    assert_int_equal(tok_token_type(g_gpt2, 50256), TOK_TYPE_CONTROL);
    assert_int_equal(tok_find(g_gpt2, "\xC4\xA0the", 5), 262); /* "Ġthe" */

    /* no BOS even with ADD_SPECIAL; empty text gives nothing */
    size_t n;
    int32_t *ids = enc(g_gpt2, "", 0, TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(n, 0);
    free(ids);

    /* <|endoftext|> is text unless PARSE_SPECIAL */
    const char *s = "a<|endoftext|>b";
    ids = enc(g_gpt2, s, strlen(s), 0, &n);
    int32_t plain[] = {64, 27, 91, 437, 1659, 5239, 91, 29, 65};
    assert_int_equal(n, 9);
    assert_memory_equal(ids, plain, sizeof plain);
    free(ids);
    ids = enc(g_gpt2, s, strlen(s), TOK_ENC_PARSE_SPECIAL, &n);
    int32_t parsed[] = {64, 50256, 65};
    assert_int_equal(n, 3);
    assert_memory_equal(ids, parsed, sizeof parsed);
    /* control tokens render only on request */
    size_t dl;
    char *back = dec(g_gpt2, ids, n, 0, &dl);
    assert_string_equal(back, "ab");
    free(back);
    back = dec(g_gpt2, ids, n, TOK_DEC_SPECIAL, &dl);
    assert_string_equal(back, s);
    free(back);
    free(ids);
}

static void test_invalid_utf8(void **state) {
    (void)state;
    NEED_GPT2();
    /* invalid runs are pre-tokens of their own and decode to the same bytes */
    const char *s = "ab\xFF\xFE" "cd \xC3 x\xE2\x82 \xED\xA0\x80 \xF4\x90\x80\x80" "end\xC0\xAF";
    size_t len = strlen(s), n, dl;
    int32_t *ids = enc(g_gpt2, s, len, 0, &n);
    char *back = dec(g_gpt2, ids, n, 0, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, s, len);
    free(back);
    free(ids);
    /* a lone invalid byte is its byte token ("\xFF" is the character "ÿ") */
    ids = enc(g_gpt2, "\xFF", 1, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], tok_find(g_gpt2, "\xC3\xBF", 2));
    free(ids);

    /* random bytes: never a crash, always a byte-exact round trip */
    uint32_t x = 12345;
    char buf[512];
    for (int r = 0; r < 300; r++) {
        size_t l = (size_t)(r % 97) * 5;
        for (size_t i = 0; i < l; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = (char)(x >> 16);
        }
        ids = enc(g_gpt2, buf, l, TOK_ENC_PARSE_SPECIAL, &n);
        back = dec(g_gpt2, ids, n, TOK_DEC_SPECIAL, &dl);
        assert_int_equal(dl, l);
        assert_memory_equal(back, buf, l);
        free(back);
        free(ids);
    }
}

static void test_long_inputs(void **state) {
    (void)state;
    NEED_GPT2();
    /* one pre-token of 200000 bytes: the heap keeps this O(m log m) */
    size_t len = 200000;
    char *s = malloc(len);
    for (size_t i = 0; i < len; i++) s[i] = (char)('a' + (i * 7 + i / 13) % 26);
    clock_t t0 = clock();
    size_t n, dl;
    int32_t *ids = enc(g_gpt2, s, len, 0, &n);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    fprintf(stderr, "200000-byte word: %zu ids in %.3f s\n", n, secs);
    assert_true(secs < 20.0);
    char *back = dec(g_gpt2, ids, n, 0, &dl);
    assert_int_equal(dl, len);
    assert_memory_equal(back, s, len);
    free(back);
    free(ids);
    free(s);
}

static void test_streaming_decode(void **state) {
    (void)state;
    NEED_GPT2();
    /* emoji and CJK split across GPT-2 tokens stream out whole */
    const char *s = "Emoji: \xF0\x9F\x98\x80\xF0\x9F\x9A\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD \xE6\x97\xA5\xE6\x9C\xAC";
    size_t n;
    int32_t *ids = enc(g_gpt2, s, strlen(s), 0, &n);
    tok_stream st;
    tok_stream_init(&st);
    char out[4096], piece[64];
    size_t w = 0;
    int partial = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        assert_int_equal(tok_decode_piece(g_gpt2, ids[i], 0, piece, sizeof piece, &pl, NULL), TOK_OK);
        if (!tok_utf8_is_valid(piece, pl)) partial++;
        long k = tok_stream_feed(&st, piece, pl, out + w, sizeof out - w);
        assert_true(k >= 0);
        assert_true(tok_utf8_is_valid(out + w, (size_t)k));
        w += (size_t)k;
    }
    long k = tok_stream_flush(&st, out + w, sizeof out - w);
    assert_int_equal(k, 0);
    assert_true(partial > 0); /* the case does split characters */
    assert_int_equal(w, strlen(s));
    assert_memory_equal(out, s, w);
    free(ids);
}

/* ---- a small built-in vocabulary ---------------------------------------- */

/* 256 byte tokens in GPT-2's alphabet, then extra tokens. */
static tok *toy_bpe(const char *const *extra, size_t n_extra, const char *const *merges, size_t nm,
                    const int32_t *types, const tok_options *opt, tok_err *err, int *rc) {
    const char **v = calloc(256 + n_extra, sizeof *v);
    char (*store)[5] = calloc(256, 5);
    uint32_t e = 0;
    for (uint32_t b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        uint32_t cp = self ? b : 256 + e++;
        size_t l = tok_utf8_encode(cp, store[b]);
        store[b][l] = '\0';
        v[b] = store[b];
    }
    for (size_t i = 0; i < n_extra; i++) v[256 + i] = extra[i];
    int32_t *ty = NULL;
    if (types) {
        ty = calloc(256 + n_extra, sizeof *ty);
        for (size_t i = 0; i < 256 + n_extra; i++) ty[i] = i < 256 ? TOK_TYPE_NORMAL : types[i - 256];
    }
    tok *t = NULL;
    *rc = tok_create_bpe(&t, v, 256 + n_extra, merges, nm, ty, opt, err);
    free(ty);
    free(store);
    free(v);
    return t;
}

static void test_toy_merge_order(void **state) {
    (void)state;
    /* ids: 256 "ab", 257 "bc", 258 "abc", 259 "aa", 260 "aaa" */
    const char *extra[] = {"ab", "bc", "abc", "aa", "aaa"};
    const char *merges[] = {"b c", "a b", "a bc", "a a", "aa a"};
    tok_err err = {0};
    int rc;
    tok *t = toy_bpe(extra, 5, merges, 5, NULL, NULL, &err, &rc);
    assert_int_equal(rc, TOK_OK);
    size_t n;
    /* "abc": rank 0 "b c" wins over rank 1 "a b", then "a bc" */
    int32_t *ids = enc(t, "abc", 3, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 258);
    free(ids);
    /* "aaaa": "a a" leftmost first -> aa aa (rank of "aa a" never applies) */
    ids = enc(t, "aaaa", 4, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 259);
    assert_int_equal(ids[1], 259);
    free(ids);
    /* "aaa": aa, a -> "aa a" -> aaa */
    ids = enc(t, "aaa", 3, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 260);
    free(ids);
    /* a space-led word stays one pre-token; " " has its own byte token */
    ids = enc(t, "ab ab", 5, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], ' '); /* in this toy vocabulary byte b has id b */
    assert_int_equal(ids[2], 256);
    free(ids);
    tok_free(t);

    /* a duplicated merge: the later rank counts (encoder.py's dict) */
    const char *m2[] = {"a b", "b c", "a bc", "a b"};
    t = toy_bpe(extra, 5, m2, 4, NULL, NULL, &err, &rc);
    assert_int_equal(rc, TOK_OK);
    ids = enc(t, "abc", 3, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 258); /* "b c" (1) now beats "a b" (3) */
    free(ids);
    tok_free(t);
}

static void test_toy_specials(void **state) {
    (void)state;
    const char *extra[] = {"<|end|>", "<|user|>", "<|end|>x"};
    int32_t types[] = {TOK_TYPE_CONTROL, TOK_TYPE_USER_DEFINED, TOK_TYPE_CONTROL};
    tok_options o;
    tok_options_init(&o, TOK_KIND_BPE);
    o.bos_id = 256;
    o.eos_id = 256;
    o.add_bos = true;
    tok_err err = {0};
    int rc;
    tok *t = toy_bpe(extra, 3, NULL, 0, types, &o, &err, &rc);
    assert_int_equal(rc, TOK_OK);
    size_t n;
    /* user-defined always; control only with PARSE_SPECIAL; longest wins */
    const char *s = "<|user|>hi<|end|>x";
    int32_t *ids = enc(t, s, strlen(s), TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(ids[0], 256); /* bos */
    assert_int_equal(ids[1], 257); /* <|user|> */
    assert_int_equal(n, 2 + 2 + 8); /* h i + "<|end|>x" as bytes */
    free(ids);
    ids = enc(t, s, strlen(s), TOK_ENC_PARSE_SPECIAL, &n);
    assert_int_equal(n, 4);
    assert_int_equal(ids[0], 257);
    assert_int_equal(ids[3], 258); /* "<|end|>x" beats "<|end|>" */
    size_t dl;
    char *back = dec(t, ids, n, 0, &dl);
    assert_string_equal(back, "<|user|>hi"); /* user-defined text renders, control does not */
    free(back);
    free(ids);
    tok_free(t);
}

/* \s is Unicode White_Space, as in Python's `regex` (GPT-2's encoder.py):
 * U+0085 is whitespace, U+FEFF and U+180E are not (JavaScript and PCRE2's
 * own \s disagree on these). A toy vocabulary whose merges join two copies
 * of a character only when they are one pre-token makes the boundaries the
 * regex draws visible. In GPT-2's alphabet byte 0x85 is "ħ", 0xC2 "Â",
 * 0xEF "ï", 0xBB "»", 0xBF "¿", 0xE1 "á", 0xA0 "ł", 0x8E "İ". */
static void test_toy_whitespace_class(void **state) {
    (void)state;
    const char *extra[] = {"\xC3\x82\xC4\xA7", "\xC3\x82\xC4\xA7\xC3\x82\xC4\xA7", /* 256 NEL, 257 NEL NEL */
                           "\xC3\xAF\xC2\xBB", "\xC3\xAF\xC2\xBB\xC2\xBF",                 /* 258, 259 BOM */
                           "\xC3\xAF\xC2\xBB\xC2\xBF\xC3\xAF\xC2\xBB\xC2\xBF",           /* 260 BOM BOM */
                           "\xC3\xA1\xC5\x82", "\xC3\xA1\xC5\x82\xC4\xB0",                 /* 261, 262 U+180E */
                           "\xC3\xA1\xC5\x82\xC4\xB0\xC3\xA1\xC5\x82\xC4\xB0"};          /* 263 U+180E x2 */
    const char *merges[] = {"\xC3\x82 \xC4\xA7", "\xC3\x82\xC4\xA7 \xC3\x82\xC4\xA7",
                            "\xC3\xAF \xC2\xBB", "\xC3\xAF\xC2\xBB \xC2\xBF",
                            "\xC3\xAF\xC2\xBB\xC2\xBF \xC3\xAF\xC2\xBB\xC2\xBF",
                            "\xC3\xA1 \xC5\x82", "\xC3\xA1\xC5\x82 \xC4\xB0",
                            "\xC3\xA1\xC5\x82\xC4\xB0 \xC3\xA1\xC5\x82\xC4\xB0"};
    tok_err err = {0};
    int rc;
    tok *t = toy_bpe(extra, 8, merges, 8, NULL, NULL, &err, &rc);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    size_t n;
    /* NEL is whitespace: "a" "\x85" "\x85" "b" (\s+(?!\S) gives one back) */
    int32_t *ids = enc(t, "a\xC2\x85\xC2\x85" "b", 6, 0, &n);
    int32_t w1[] = {'a', 256, 256, 'b'};
    assert_int_equal(n, 4);
    assert_memory_equal(ids, w1, sizeof w1);
    free(ids);
    /* BOM is not: one punctuation run "\uFEFF\uFEFF", then "x" */
    ids = enc(t, "\xEF\xBB\xBF\xEF\xBB\xBFx", 7, 0, &n);
    int32_t w2[] = {260, 'x'};
    assert_int_equal(n, 2);
    assert_memory_equal(ids, w2, sizeof w2);
    free(ids);
    /* nor is U+180E */
    ids = enc(t, "\xE1\xA0\x8E\xE1\xA0\x8Ex", 7, 0, &n);
    int32_t w3[] = {263, 'x'};
    assert_int_equal(n, 2);
    assert_memory_equal(ids, w3, sizeof w3);
    free(ids);
    tok_free(t);
}

static void test_errors(void **state) {
    (void)state;
    tok_err err = {0};
    tok *t = NULL;
    int rc = tok_create_bpe_from_files(&t, "/nonexistent/vocab.json", "/nonexistent/merges.txt", NULL, &err);
    assert_int_equal(rc, TOK_EFORMAT);
    assert_null(t);
    assert_non_null(strstr(err.msg, "/nonexistent/vocab.json"));

    /* malformed merges file: the line is named */
    char vpath[] = "/tmp/tok_bpe_vocab_XXXXXX", mpath[] = "/tmp/tok_bpe_merges_XXXXXX";
    int fd1 = mkstemp(vpath), fd2 = mkstemp(mpath);
    assert_true(fd1 >= 0 && fd2 >= 0);
    FILE *f = fdopen(fd1, "w");
    fputs("{\"a\": 0, \"b\": 1, \"ab\": 2}", f);
    fclose(f);
    f = fdopen(fd2, "w");
    fputs("#version: 0.2\na b\nab\n", f);
    fclose(f);
    rc = tok_create_bpe_from_files(&t, vpath, mpath, NULL, &err);
    assert_int_equal(rc, TOK_EFORMAT);
    assert_non_null(strstr(err.msg, "line 3"));
    /* a valid pair of files works; "a b" merges */
    f = fopen(mpath, "w");
    fputs("#version: 0.2\r\na b\r\n", f);
    fclose(f);
    rc = tok_create_bpe_from_files(&t, vpath, mpath, NULL, &err);
    assert_int_equal(rc, TOK_OK);
    size_t n;
    int32_t *ids = enc(t, "ab", 2, 0, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 2);
    free(ids);
    /* a byte without a token and no unk: dropped, never a crash */
    ids = enc(t, "abz", 3, 0, &n);
    assert_int_equal(n, 1);
    free(ids);
    tok_free(t);
    /* duplicate ids in vocab.json */
    f = fopen(vpath, "w");
    fputs("{\"a\": 0, \"b\": 0}", f);
    fclose(f);
    rc = tok_create_bpe_from_files(&t, vpath, mpath, NULL, &err);
    assert_int_equal(rc, TOK_EFORMAT);
    assert_non_null(strstr(err.msg, "id 0"));
    remove(vpath);
    remove(mpath);

    /* bad options and types are named */
    const char *v[] = {"a", "b"};
    tok_options o;
    tok_options_init(&o, TOK_KIND_BPE);
    o.eos_id = 7;
    rc = tok_create_bpe(&t, v, 2, NULL, 0, NULL, &o, &err);
    assert_int_equal(rc, TOK_EINVAL);
    assert_non_null(strstr(err.msg, "eos_id"));
    int32_t ty[] = {1, 9};
    rc = tok_create_bpe(&t, v, 2, NULL, 0, ty, NULL, &err);
    assert_int_equal(rc, TOK_EINVAL);
    assert_non_null(strstr(err.msg, "token 1"));
    const char *bad[] = {"ab"};
    rc = tok_create_bpe(&t, v, 2, bad, 1, NULL, NULL, &err);
    assert_int_equal(rc, TOK_EINVAL);
    assert_non_null(strstr(err.msg, "merge 0"));
    rc = tok_create_bpe(&t, v, 0, NULL, 0, NULL, NULL, &err);
    assert_int_equal(rc, TOK_EINVAL);

    /* output space: ESPACE reports the size and fills what fits */
    rc = tok_create_bpe(&t, v, 2, NULL, 0, NULL, NULL, &err);
    assert_int_equal(rc, TOK_OK);
    int32_t out[2] = {-9, -9};
    rc = tok_encode(t, "abab", 4, 0, out, 1, &n, &err);
    assert_int_equal(rc, TOK_ESPACE);
    assert_int_equal(n, 4);
    assert_int_equal(out[0], 0);
    assert_int_equal(out[1], -9);
    char buf[2];
    rc = tok_decode_piece(t, 5, 0, buf, sizeof buf, &n, &err);
    assert_int_equal(rc, TOK_EINVAL);
    assert_non_null(strstr(err.msg, "5"));
    int32_t four[] = {0, 1, 0, 1};
    rc = tok_decode(t, four, 4, 0, buf, sizeof buf, &n, &err);
    assert_int_equal(rc, TOK_ESPACE);
    assert_int_equal(n, 4);
    tok_free(t);
    tok_free(NULL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixture_cases),
        cmocka_unit_test(test_reference_prompts),
        cmocka_unit_test(test_gpt2_conventions),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_long_inputs),
        cmocka_unit_test(test_streaming_decode),
        cmocka_unit_test(test_toy_merge_order),
        cmocka_unit_test(test_toy_specials),
        cmocka_unit_test(test_toy_whitespace_class),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("tok_bpe", tests, setup_gpt2, teardown_gpt2);
}
