/* test_tok_wordpiece.c - BERT WordPiece (engine/tok_wordpiece.c): the
 * bert-tiny conformance prompts from vocab.txt, model-f32.gguf and a
 * tokenizer.json give transformers' BertTokenizer ids and tokens; hand-made
 * cases cover each step of the basic tokenizer, WordPiece and decoding. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tok.h"
#include "tok_load.h"
#include "tu_util.h"

/* ---- a small uncased vocabulary ------------------------------------------ */

static const char *const k_vocab[] = {
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",             /* 0-4 */
    "hello", "world", "##s", "un", "##aff", "##able",         /* 5-10 */
    ",", ".", "!", "\xE4\xB8\xAD", "\xE6\x96\x87", "a", "##a", /* 11-17: 中 文 */
    "[", "]", "cl", "cafe", "Hello",                          /* 18-22 */
    "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82",                       /* 23: οδος (final sigma) */
    "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x83",                       /* 24: οδοσ */
    "caf\xC3\xA9", "##\xE6\x96\x87",                          /* 25: café, 26: ##文 */
};
#define K_N (sizeof k_vocab / sizeof *k_vocab)

static tok *make_tok(const tok_wordpiece_options *wo) {
    tok *t = NULL;
    tok_err err = {0};
    if (tok_create_wordpiece(&t, k_vocab, K_N, NULL, NULL, wo, &err) != 0) fail_msg("%s", err.msg);
    return t;
}

/* Encodes text[0..len) and compares with want[0..n_want). */
static void expect_len(const tok *t, const char *text, size_t len, unsigned flags, const int32_t *want,
                       size_t n_want) {
    int32_t ids[256];
    size_t n = 0;
    tok_err err = {0};
    if (tok_encode(t, text, len, flags, ids, 256, &n, &err) != 0) fail_msg("encode: %s", err.msg);
    for (size_t i = 0; i < n && i < n_want; i++)
        if (ids[i] != want[i]) fail_msg("\"%.*s\": id %zu is %d, want %d", (int)len, text, i, ids[i], want[i]);
    if (n != n_want) fail_msg("\"%.*s\": %zu ids, want %zu", (int)len, text, n, n_want);
}

#define EXPECT(t, text, flags, ...)                                                  \
    do {                                                                             \
        const int32_t want_[] = {__VA_ARGS__};                                       \
        expect_len(t, text, strlen(text), flags, want_, sizeof want_ / sizeof *want_); \
    } while (0)

static void test_basic(void **st) {
    (void)st;
    tok *t = make_tok(NULL);
    assert_int_equal(tok_get_kind(t), TOK_KIND_WORDPIECE);
    assert_int_equal(tok_bos(t), 2);
    assert_int_equal(tok_eos(t), 3);
    assert_int_equal(tok_unk(t), 1);
    assert_int_equal(tok_pad(t), 0);
    assert_int_equal(tok_mask(t), 4);
    assert_true(tok_adds_bos(t) && tok_adds_eos(t));
    assert_int_equal(tok_token_type(t, 1), TOK_TYPE_UNKNOWN);
    assert_int_equal(tok_token_type(t, 2), TOK_TYPE_CONTROL);
    assert_int_equal(tok_token_type(t, 5), TOK_TYPE_NORMAL);
    EXPECT(t, "hello world", 0, 5, 6);
    EXPECT(t, "hello world", TOK_ENC_ADD_SPECIAL, 2, 5, 6, 3);
    EXPECT(t, "   Hello   WORLDS  ", 0, 5, 6, 7);          /* lower-cased, ##s */
    EXPECT(t, "unaffable", 0, 8, 9, 10);                   /* greedy longest match */
    EXPECT(t, "hello,world!", 0, 5, 11, 6, 13);            /* punctuation split */
    EXPECT(t, "hello.", 0, 5, 12);
    EXPECT(t, "H\xC3\xA9llo", 0, 5);                       /* Héllo -> hello */
    EXPECT(t, "CAF\xC3\x89", 0, 21);                       /* CAFÉ -> cafe */
    EXPECT(t, "cafe\xCC\x81", 0, 21);                      /* combining acute stripped */
    EXPECT(t, "\xE4\xB8\xAD\xE6\x96\x87", 0, 14, 15);      /* 中文: one ideograph per word */
    EXPECT(t, "a\xE4\xB8\xAD" "a", 0, 16, 14, 16);         /* a中a */
    EXPECT(t, "xyz", 0, 1);                                /* out of vocabulary */
    EXPECT(t, "hellox", 0, 1);                             /* no full segmentation */
    EXPECT(t, "hello xyz world", 0, 5, 1, 6);
    EXPECT(t, "", TOK_ENC_ADD_SPECIAL, 2, 3);
    EXPECT(t, " \t\n ", 0);
    /* final sigma: ΟΔΟΣ -> οδος; ΟΔΟΣΑ keeps σ inside the word -> [UNK] */
    EXPECT(t, "\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3", 0, 23);
    tok_free(t);
}

static void test_cleaning(void **st) {
    (void)st;
    tok *t = make_tok(NULL);
    /* NUL, a C0 control, U+FFFD, a zero-width space (Cf) and invalid UTF-8 are dropped */
    const char s1[] = "hel\x01lo\0 wor\xEF\xBF\xBDld\xE2\x80\x8B \xFFhello";
    expect_len(t, s1, sizeof s1 - 1, 0, (const int32_t[]){5, 6, 5}, 3);
    /* \t \r \n, NBSP, U+3000 and U+2028 separate words */
    EXPECT(t, "hello\tworld\rhello\nworld\xC2\xA0hello\xE3\x80\x80world\xE2\x80\xA8hello", 0, 5, 6, 5, 6,
           5, 6, 5);
    /* VT is a control character: dropped, so it joins */
    EXPECT(t, "hel\x0Blo", 0, 5);
    tok_free(t);
}

static void test_long_words(void **st) {
    (void)st;
    tok *t = make_tok(NULL);
    char w[128];
    memset(w, 'a', 100);
    int32_t want[100];
    want[0] = 16;
    for (int i = 1; i < 100; i++) want[i] = 17; /* a ##a ##a ... */
    expect_len(t, w, 100, 0, want, 100);
    memset(w, 'a', 101);
    expect_len(t, w, 101, 0, (const int32_t[]){1}, 1); /* 101 characters: [UNK] */
    /* the limit counts characters, after accent stripping: 100 x "á" is fine */
    char acc[300];
    for (int i = 0; i < 100; i++) memcpy(acc + 2 * i, "\xC3\xA1", 2);
    expect_len(t, acc, 200, 0, want, 100);
    tok_wordpiece_options wo;
    tok_wordpiece_options_init(&wo);
    wo.max_input_chars_per_word = 3;
    tok *t3 = make_tok(&wo);
    EXPECT(t3, "aaa aaaa", 0, 16, 17, 17, 1);
    tok_free(t3);
    tok_free(t);
}

static void test_special(void **st) {
    (void)st;
    tok *t = make_tok(NULL);
    /* not parsed: "[CLS]" is text: [ cl ##s ] */
    EXPECT(t, "[CLS] hello", 0, 18, 20, 7, 19, 5);
    EXPECT(t, "[CLS] hello", TOK_ENC_PARSE_SPECIAL, 2, 5);
    EXPECT(t, "hello[SEP]world[MASK]", TOK_ENC_PARSE_SPECIAL, 5, 3, 6, 4);
    EXPECT(t, "[cls]", TOK_ENC_PARSE_SPECIAL, 18, 20, 7, 19); /* case-sensitive */
    EXPECT(t, "[UNK][PAD]", TOK_ENC_PARSE_SPECIAL | TOK_ENC_ADD_SPECIAL, 2, 1, 0, 3);
    tok_free(t);
}

static void test_options(void **st) {
    (void)st;
    tok_wordpiece_options wo;
    tok_wordpiece_options_init(&wo);
    wo.lowercase = false; /* cased: strip_accents -1 follows lowercase: no stripping */
    tok *t = make_tok(&wo);
    EXPECT(t, "Hello hello HELLO", 0, 22, 5, 1);
    EXPECT(t, "caf\xC3\xA9", 0, 25);
    EXPECT(t, "cafe\xCC\x81", 0, 25); /* NFC: e + U+0301 -> é */
    tok_free(t);
    wo.nfc = false;
    t = make_tok(&wo);
    EXPECT(t, "cafe\xCC\x81", 0, 1);
    tok_free(t);
    tok_wordpiece_options_init(&wo);
    wo.strip_accents = 0; /* lower-case, keep accents */
    t = make_tok(&wo);
    EXPECT(t, "CAF\xC3\x89", 0, 25);
    tok_free(t);
    tok_wordpiece_options_init(&wo);
    wo.tokenize_chinese_chars = false;
    t = make_tok(&wo);
    EXPECT(t, "\xE4\xB8\xAD\xE6\x96\x87", 0, 14, 26); /* 中 ##文 */
    tok_free(t);
    /* no unknown token: refused */
    tok *bad = (tok *)1;
    tok_err err = {0};
    const char *v[] = {"a", "b"};
    assert_int_equal(tok_create_wordpiece(&bad, v, 2, NULL, NULL, NULL, &err), TOK_EINVAL);
    assert_null(bad);
    assert_non_null(strstr(err.msg, "[UNK]"));
}

/* Decodes ids into a NUL-terminated static buffer. */
static const char *dec(const tok *t, const int32_t *ids, size_t n, unsigned flags) {
    static char buf[256];
    size_t len = 0;
    tok_err err = {0};
    if (tok_decode(t, ids, n, flags, buf, sizeof buf - 1, &len, &err) != 0) fail_msg("%s", err.msg);
    buf[len] = '\0';
    return buf;
}

static void test_decode(void **st) {
    (void)st;
    tok *t = make_tok(NULL);
    char p[32];
    size_t n;
    assert_int_equal(tok_decode_piece(t, 5, 0, p, sizeof p, &n, NULL), 0);
    assert_true(n == 6 && memcmp(p, " hello", 6) == 0);
    assert_int_equal(tok_decode_piece(t, 5, TOK_DEC_STRIP_SPACE, p, sizeof p, &n, NULL), 0);
    assert_true(n == 5 && memcmp(p, "hello", 5) == 0);
    assert_int_equal(tok_decode_piece(t, 7, 0, p, sizeof p, &n, NULL), 0);
    assert_true(n == 1 && p[0] == 's');
    assert_int_equal(tok_decode_piece(t, 2, 0, p, sizeof p, &n, NULL), 0);
    assert_int_equal(n, 0);
    assert_int_equal(tok_decode_piece(t, 2, TOK_DEC_SPECIAL, p, sizeof p, &n, NULL), 0);
    assert_true(n == 6 && memcmp(p, " [CLS]", 6) == 0);

    const int32_t seq[] = {2, 5, 7, 11, 6, 1, 8, 9, 10, 3};
    /* HF: " ".join(tokens).replace(" ##", "").strip() */
    assert_string_equal(dec(t, seq, 10, TOK_DEC_SPECIAL), "[CLS] hellos , world [UNK] unaffable [SEP]");
    assert_string_equal(dec(t, seq, 10, 0), "hellos , world \xEF\xBF\xBD unaffable");
    const int32_t cont[] = {7, 5}; /* a leading "##s" stays "##s" */
    assert_string_equal(dec(t, cont, 2, 0), "##s hello");
    const int32_t cont2[] = {2, 7}; /* [CLS] ##s: "[CLS]s" with specials, "##s" without */
    assert_string_equal(dec(t, cont2, 2, TOK_DEC_SPECIAL), "[CLS]s");
    assert_string_equal(dec(t, cont2, 2, 0), "##s");
    assert_string_equal(dec(t, NULL, 0, 0), "");
    /* round trip of lower-case text */
    int32_t ids[64];
    size_t k;
    assert_int_equal(tok_encode(t, "hello, worlds! unaffable", 24, TOK_ENC_ADD_SPECIAL, ids, 64, &k, NULL), 0);
    assert_string_equal(dec(t, ids, k, 0), "hello , worlds ! unaffable");
    tok_free(t);
}

/* ---- bert-tiny conformance ---------------------------------------------- */

/* Encodes the four prompts with [CLS]/[SEP] and compares ids and tokens. */
static void check_prompts(const tok *t, const json_t *ref, const char *what) {
    json_t *prompts = json_object_get(ref, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        json_t *want = json_object_get(p, "input_ids"), *toks = json_object_get(p, "tokens");
        int32_t ids[512];
        size_t n = 0;
        tok_err err = {0};
        assert_int_equal(tok_encode(t, text, strlen(text), TOK_ENC_ADD_SPECIAL, ids, 512, &n, &err), 0);
        if (n != json_array_size(want)) fail_msg("%s prompt %zu: %zu ids, want %zu", what, i, n, json_array_size(want));
        for (size_t k = 0; k < n; k++) {
            if (ids[k] != json_integer_value(json_array_get(want, k)))
                fail_msg("%s prompt %zu: id %zu is %d, want %lld", what, i, k, ids[k],
                         (long long)json_integer_value(json_array_get(want, k)));
            assert_string_equal(tok_token_text(t, ids[k], NULL), json_string_value(json_array_get(toks, k)));
        }
        /* and with the specials parsed from the text */
        char buf[1024];
        snprintf(buf, sizeof buf, "[CLS]%s[SEP]", text);
        size_t n2 = 0;
        int32_t ids2[512];
        assert_int_equal(tok_encode(t, buf, strlen(buf), TOK_ENC_PARSE_SPECIAL, ids2, 512, &n2, &err), 0);
        assert_int_equal(n2, n);
        assert_memory_equal(ids, ids2, n * sizeof *ids);
    }
}

static json_t *load_ref(void) {
    char *ref_path = tu_shared_path("conformance/bert-tiny/reference.json");
    if (!ref_path) return NULL;
    json_t *ref = json_load_file(ref_path, 0, NULL);
    free(ref_path);
    assert_non_null(ref);
    return ref;
}

static void test_conformance_hf(void **st) {
    (void)st;
    json_t *ref = load_ref();
    char *dir = tu_shared_path("conformance/bert-tiny/vocab.txt");
    if (!ref || !dir) {
        json_decref(ref), free(dir);
        skip();
    }
    *strrchr(dir, '/') = '\0';
    tok *t;
    tok_err err = {0};
    if (tok_load(&t, dir, &err) != 0) fail_msg("%s: %s", dir, err.msg);
    assert_int_equal(tok_get_kind(t), TOK_KIND_WORDPIECE);
    assert_int_equal(tok_n_vocab(t), 30522);
    assert_int_equal(tok_bos(t), 101);
    assert_int_equal(tok_eos(t), 102);
    assert_int_equal(tok_unk(t), 100);
    assert_int_equal(tok_pad(t), 0);
    assert_int_equal(tok_mask(t), 103);
    check_prompts(t, ref, "vocab.txt");
    tok_free(t);
    json_decref(ref);
    free(dir);
}

static void test_conformance_gguf(void **st) {
    (void)st;
    json_t *ref = load_ref();
    char *path = tu_shared_path("conformance/bert-tiny/model-f32.gguf");
    char *vpath = tu_shared_path("conformance/bert-tiny/vocab.txt");
    if (!ref || !path || !vpath) {
        json_decref(ref), free(path), free(vpath);
        skip();
    }
    tok *t, *hf;
    tok_err err = {0};
    if (tok_load(&t, path, &err) != 0) fail_msg("%s: %s", path, err.msg);
    assert_int_equal(tok_get_kind(t), TOK_KIND_WORDPIECE);
    assert_int_equal(tok_bos(t), 101);
    assert_int_equal(tok_eos(t), 102);
    assert_int_equal(tok_unk(t), 100);
    assert_int_equal(tok_mask(t), 103);
    check_prompts(t, ref, "model-f32.gguf");
    /* the phantom-space tokens map back to vocab.txt exactly */
    if (tok_create_wordpiece_from_file(&hf, vpath, NULL, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tok_n_vocab(t), tok_n_vocab(hf));
    for (int32_t i = 0; i < (int32_t)tok_n_vocab(t); i++)
        if (strcmp(tok_token_text(t, i, NULL), tok_token_text(hf, i, NULL)) != 0)
            fail_msg("token %d: gguf \"%s\", vocab.txt \"%s\"", i, tok_token_text(t, i, NULL),
                     tok_token_text(hf, i, NULL));
    tok_free(hf);
    tok_free(t);
    json_decref(ref);
    free(path), free(vpath);
}

/* A tokenizer.json written from vocab.txt, as the tokenizers library saves
 * bert-base-uncased, gives the same ids. */
static void test_tokenizer_json(void **st) {
    (void)st;
    json_t *ref = load_ref();
    char *vpath = tu_shared_path("conformance/bert-tiny/vocab.txt");
    if (!ref || !vpath) {
        json_decref(ref), free(vpath);
        skip();
    }
    size_t len;
    char *text = tu_read_file(vpath, &len);
    assert_non_null(text);
    json_t *vocab = json_object(), *added = json_array();
    int id = 0;
    for (char *line = text, *nl; *line; line = nl + 1, id++) {
        nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        json_object_set_new(vocab, line, json_integer(id));
        if (strcmp(line, "[PAD]") == 0 || strcmp(line, "[UNK]") == 0 || strcmp(line, "[CLS]") == 0 ||
            strcmp(line, "[SEP]") == 0 || strcmp(line, "[MASK]") == 0)
            json_array_append_new(added, json_pack("{s:i, s:s, s:b}", "id", id, "content", line, "special", 1));
    }
    json_t *root = json_pack(
        "{s:o, s:{s:s, s:b, s:b, s:n, s:b}, s:{s:s}, "
        "s:{s:s, s:[{s:{s:s, s:i}}, {s:{s:s, s:i}}, {s:{s:s, s:i}}], s:{s:{s:s, s:[i], s:[s]}, s:{s:s, s:[i], s:[s]}}}, "
        "s:{s:s, s:s, s:s, s:i, s:o}}",
        "added_tokens", added,
        "normalizer", "type", "BertNormalizer", "clean_text", 1, "handle_chinese_chars", 1, "strip_accents",
        "lowercase", 1,
        "pre_tokenizer", "type", "BertPreTokenizer",
        "post_processor", "type", "TemplateProcessing", "single",
        "SpecialToken", "id", "[CLS]", "type_id", 0, "Sequence", "id", "A", "type_id", 0,
        "SpecialToken", "id", "[SEP]", "type_id", 0,
        "special_tokens", "[CLS]", "id", "[CLS]", "ids", 101, "tokens", "[CLS]",
        "[SEP]", "id", "[SEP]", "ids", 102, "tokens", "[SEP]",
        "model", "type", "WordPiece", "unk_token", "[UNK]", "continuing_subword_prefix", "##",
        "max_input_chars_per_word", 100, "vocab", vocab);
    assert_non_null(root);
    char dir[] = "/tmp/alignd_wpjson_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
    free(text);
    tok *t;
    tok_err err = {0};
    if (tok_load_hf_dir(&t, dir, &err) != 0) fail_msg("%s", err.msg); /* only tokenizer.json there */
    assert_int_equal(tok_get_kind(t), TOK_KIND_WORDPIECE);
    check_prompts(t, ref, "tokenizer.json");
    tok_free(t);
    /* a BPE tokenizer.json is not WordPiece */
    assert_int_not_equal(tok_create_wordpiece_from_hf_json(&t, "/nonexistent/tokenizer.json", &err), 0);
    assert_null(t);
    unlink(path);
    rmdir(dir);
    json_decref(ref);
    free(vpath);
}

/* vocab.txt with "\r\n" line ends and no final newline; tokenizer_config.json
 * settings (cased) are read. */
static void test_vocab_file(void **st) {
    (void)st;
    char dir[] = "/tmp/alignd_wpvocab_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char vpath[256], cpath[256];
    snprintf(vpath, sizeof vpath, "%s/vocab.txt", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    FILE *f = fopen(vpath, "wb");
    assert_non_null(f);
    fputs("[PAD]\r\n<unk>\r\n[CLS]\r\n[SEP]\r\nHello\r\nhello\r\n##s", f);
    fclose(f);
    f = fopen(cpath, "wb");
    assert_non_null(f);
    fputs("{\"do_lower_case\": false, \"unk_token\": {\"content\": \"<unk>\"}}", f);
    fclose(f);
    tok *t;
    tok_err err = {0};
    if (tok_load(&t, dir, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(tok_n_vocab(t), 7);
    assert_int_equal(tok_unk(t), 1);
    assert_int_equal(tok_mask(t), TOK_ID_NONE);
    EXPECT(t, "Hello hellos HELLO", TOK_ENC_ADD_SPECIAL, 2, 4, 5, 6, 1, 3);
    tok_free(t);
    unlink(cpath);
    unlink(vpath);
    assert_int_not_equal(tok_create_wordpiece_from_file(&t, vpath, NULL, NULL, &err), 0);
    assert_non_null(strstr(err.msg, vpath));
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),          cmocka_unit_test(test_cleaning),
        cmocka_unit_test(test_long_words),     cmocka_unit_test(test_special),
        cmocka_unit_test(test_options),        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_conformance_hf), cmocka_unit_test(test_conformance_gguf),
        cmocka_unit_test(test_tokenizer_json), cmocka_unit_test(test_vocab_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
