/* test_tok_spm.c - llama SentencePiece-BPE (engine/tok_spm.c) and the
 * SentencePiece .model reader (engine/tok_spm_model.c).
 *
 * Reference checks (skipped when ../shared is absent):
 *   - llama-tiny: the real LLaMA-2 tokenizer.model; the 4 prompts' input_ids
 *     (with BOS 1), their pieces, the continuation ids and the decoded text
 *     in reference.json;
 *   - stories260K: tok512.model against llama.cpp's ids, pieces and greedy
 *     text in ../shared/models/stories260K.reference.json.
 * A small built-in vocabulary tests merge order, ties, byte fallback, unk,
 * special tokens and the dummy prefix without the shared files. */
#include "tu_util.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok.h"
#include "tok_utf8.h"

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
    return ids;
}

static char *dec(const tok *t, const int32_t *ids, size_t n, unsigned flags, size_t *len) {
    size_t need = 0;
    int rc = tok_decode(t, ids, n, flags, NULL, 0, &need, NULL);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    char *buf = malloc(need + 1);
    assert_int_equal(tok_decode(t, ids, n, flags, buf, need, len, NULL), TOK_OK);
    buf[need] = '\0';
    return buf;
}

static void assert_ids(const int32_t *got, size_t n, json_t *want, const char *what) {
    bool ok = n == json_array_size(want);
    for (size_t i = 0; ok && i < n; i++) ok = got[i] == json_integer_value(json_array_get(want, i));
    if (!ok) {
        fprintf(stderr, "MISMATCH (%s)\n  expected:", what);
        for (size_t i = 0; i < json_array_size(want); i++)
            fprintf(stderr, " %lld", (long long)json_integer_value(json_array_get(want, i)));
        fprintf(stderr, "\n  got     :");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", got[i]);
        fprintf(stderr, "\n");
    }
    assert_true(ok);
}

/* Loads a .model from ../shared, or returns false (the caller skips). */
static bool load_model(const char *rel, tok_spm_model *m, tok **t) {
    char *path = tu_shared_path(rel);
    if (!path) return false;
    tok_err err = {0};
    int rc = tok_spm_model_load(m, path, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    rc = tok_create_spm_from_model(t, m, NULL, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    free(path);
    return true;
}

/* ---- llama-tiny ------------------------------------------------------------ */

static void check_llama_reference(const tok *t) {
    char *path = tu_shared_path("conformance/llama-tiny/reference.json");
    assert_non_null(path);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    json_t *prompts = json_object_get(root, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_array_get(prompts, i);
        const char *text = json_string_value(json_object_get(p, "text"));
        size_t n, dl;
        int32_t *ids = enc(t, text, strlen(text), TOK_ENC_ADD_SPECIAL, &n);
        assert_ids(ids, n, json_object_get(p, "input_ids"), text);
        json_t *toks = json_object_get(p, "tokens");
        for (size_t k = 0; k < n; k++)
            assert_string_equal(tok_token_text(t, ids[k], NULL), json_string_value(json_array_get(toks, k)));
        char *back = dec(t, ids, n, 0, &dl);
        assert_string_equal(back, json_string_value(json_object_get(p, "decoded_roundtrip")));
        assert_string_equal(back, text);
        free(back);
        free(ids);
    }
    const char *cont = json_string_value(json_object_get(root, "continuation_text"));
    size_t n;
    int32_t *ids = enc(t, cont, strlen(cont), 0, &n);
    assert_ids(ids, n, json_object_get(root, "continuation_ids"), cont);
    free(ids);
    json_decref(root);
    free(path);
}

static void test_llama_tiny(void **state) {
    (void)state;
    tok_spm_model m;
    tok *t = NULL;
    if (!load_model("conformance/llama-tiny/tokenizer.model", &m, &t)) {
        skip();
        return;
    }
    assert_int_equal(m.n, 32000);
    assert_int_equal(m.model_type, 2);
    assert_true(m.byte_fallback);
    assert_true(m.add_dummy_prefix);
    assert_int_equal(m.unk_id, 0);
    assert_int_equal(m.bos_id, 1);
    assert_int_equal(m.eos_id, 2);
    assert_int_equal(m.pad_id, -1);
    assert_int_equal(tok_bos(t), 1);
    assert_int_equal(tok_eos(t), 2);
    assert_int_equal(tok_unk(t), 0);
    assert_int_equal(tok_pad(t), TOK_ID_NONE);
    assert_true(tok_adds_bos(t));
    assert_int_equal(tok_token_type(t, 13), TOK_TYPE_BYTE); /* <0x0A> */
    check_llama_reference(t);

    /* The GGUF route: the same arrays through tok_create_spm. */
    tok_options o;
    tok_options_init(&o, TOK_KIND_SPM);
    o.bos_id = 1;
    o.eos_id = 2;
    o.unk_id = 0;
    tok *t2 = NULL;
    tok_err err = {0};
    assert_int_equal(tok_create_spm(&t2, (const char *const *)m.pieces, m.scores, m.types, m.n, &o, &err), TOK_OK);
    check_llama_reference(t2);

    /* Newline is a byte token, empty text is just BOS, and the pieces. */
    size_t n;
    int32_t *ids = enc(t2, "a\nb", 3, 0, &n);
    bool has_nl = false;
    for (size_t i = 0; i < n; i++) has_nl = has_nl || ids[i] == 13;
    assert_true(has_nl);
    free(ids);
    ids = enc(t2, "", 0, TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 1);
    free(ids);
    char buf[16];
    size_t pl;
    assert_int_equal(tok_decode_piece(t2, 1678, 0, buf, sizeof buf, &pl, NULL), TOK_OK); /* ▁▁▁ */
    assert_int_equal(pl, 3);
    assert_memory_equal(buf, "   ", 3);
    assert_int_equal(tok_decode_piece(t2, 1678, TOK_DEC_STRIP_SPACE, buf, sizeof buf, &pl, NULL), TOK_OK);
    assert_int_equal(pl, 2);
    assert_int_equal(tok_decode_piece(t2, 1, 0, buf, sizeof buf, &pl, NULL), TOK_OK); /* BOS: nothing */
    assert_int_equal(pl, 0);
    assert_int_equal(tok_decode_piece(t2, 1, TOK_DEC_SPECIAL, buf, sizeof buf, &pl, NULL), TOK_OK);
    assert_memory_equal(buf, "<s>", 3);
    assert_int_equal(tok_decode_piece(t2, 0, 0, buf, sizeof buf, &pl, NULL), TOK_OK); /* unk: U+FFFD */
    assert_memory_equal(buf, TOK_UTF8_REPLACEMENT_STR, 3);
    assert_int_equal(tok_decode_piece(t2, 3 + 0xF0, 0, buf, sizeof buf, &pl, NULL), TOK_OK); /* <0xF0> */
    assert_int_equal(pl, 1);
    assert_int_equal((unsigned char)buf[0], 0xF0);

    /* "</s>" is text unless PARSE_SPECIAL; after it comes a dummy prefix */
    ids = enc(t2, "hi</s>there", 11, TOK_ENC_PARSE_SPECIAL, &n);
    size_t n2;
    int32_t *a = enc(t2, "hi", 2, 0, &n2);
    assert_memory_equal(ids, a, n2 * sizeof *a);
    assert_int_equal(ids[n2], 2);
    free(a);
    a = enc(t2, "there", 5, 0, &n2); /* "▁there" */
    assert_memory_equal(ids + n - n2, a, n2 * sizeof *a);
    free(a);
    free(ids);
    ids = enc(t2, "hi</s>", 6, 0, &n);
    for (size_t i = 0; i < n; i++) assert_int_not_equal(ids[i], 2);
    free(ids);

    /* random bytes round-trip (byte fallback covers everything) */
    uint32_t x = 777;
    char s[300];
    for (int r = 0; r < 200; r++) {
        size_t l = (size_t)(r % 60) * 5;
        for (size_t i = 0; i < l; i++) {
            x = x * 1664525u + 1013904223u;
            s[i] = (char)(x >> 24);
            if (r % 3 == 0) s[i] = (char)(' ' + (x >> 24) % 95); /* some ASCII-only cases */
        }
        if (memmem(s, l, "\xE2\x96\x81", 3)) continue; /* a literal U+2581 decodes to a space */
        size_t dl;
        ids = enc(t2, s, l, TOK_ENC_ADD_SPECIAL, &n);
        char *back = dec(t2, ids, n, 0, &dl);
        assert_int_equal(dl, l);
        assert_memory_equal(back, s, l);
        free(back);
        free(ids);
    }
    tok_free(t2);
    tok_free(t);
    tok_spm_model_free(&m);
}

static void test_llama_emoji_stream(void **state) {
    (void)state;
    tok_spm_model m;
    tok *t = NULL;
    if (!load_model("conformance/llama-tiny/tokenizer.model", &m, &t)) {
        skip();
        return;
    }
    /* The emoji come out as <0xF0><0x9F><0x98><0x80>...: stream them. */
    const char *s = "Emoji: \xF0\x9F\x98\x80\xF0\x9F\x9A\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD done";
    size_t n;
    int32_t *ids = enc(t, s, strlen(s), TOK_ENC_ADD_SPECIAL, &n);
    tok_stream st;
    tok_stream_init(&st);
    char out[512], piece[32];
    size_t w = 0, held_max = 0;
    for (size_t i = 0; i < n; i++) {
        size_t pl;
        unsigned f = i == 1 ? TOK_DEC_STRIP_SPACE : 0; /* the first piece after BOS */
        assert_int_equal(tok_decode_piece(t, ids[i], f, piece, sizeof piece, &pl, NULL), TOK_OK);
        long k = tok_stream_feed(&st, piece, pl, out + w, sizeof out - w);
        assert_true(k >= 0);
        assert_true(tok_utf8_is_valid(out + w, (size_t)k));
        w += (size_t)k;
        if (tok_stream_pending(&st) > held_max) held_max = tok_stream_pending(&st);
    }
    assert_int_equal(held_max, 3);
    assert_int_equal(tok_stream_flush(&st, out + w, sizeof out - w), 0);
    assert_int_equal(w, strlen(s));
    assert_memory_equal(out, s, w);
    free(ids);
    tok_free(t);
    tok_spm_model_free(&m);
}

/* ---- stories260K (tok512) ------------------------------------------------ */

static void test_stories260k(void **state) {
    (void)state;
    tok_spm_model m;
    tok *t = NULL;
    if (!load_model("models/tok512.model", &m, &t)) {
        skip();
        return;
    }
    assert_int_equal(m.n, 512);
    char *path = tu_shared_path("models/stories260K.reference.json");
    if (!path) {
        tok_free(t);
        tok_spm_model_free(&m);
        skip();
        return;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    assert_non_null(root);
    assert_true(json_array_size(root) >= 4);
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *r = json_array_get(root, i);
        const char *prompt = json_string_value(json_object_get(r, "prompt"));
        bool bos = json_is_true(json_object_get(r, "add_bos"));
        size_t n;
        int32_t *ids = enc(t, prompt, strlen(prompt), bos ? TOK_ENC_ADD_SPECIAL : 0, &n);
        assert_ids(ids, n, json_object_get(r, "token_ids"), prompt);
        /* llama.cpp's pieces: "<s>", " Once", ... */
        json_t *pieces = json_object_get(r, "token_pieces");
        for (size_t k = 0; k < n; k++) {
            char buf[64];
            size_t pl;
            assert_int_equal(tok_decode_piece(t, ids[k], TOK_DEC_SPECIAL, buf, sizeof buf - 1, &pl, NULL), TOK_OK);
            buf[pl] = '\0';
            assert_string_equal(buf, json_string_value(json_array_get(pieces, k)));
        }
        free(ids);
        /* the greedy continuation's text is the concatenation of its pieces */
        json_t *g = json_object_get(r, "greedy_token_ids_32");
        char text[2048];
        size_t w = 0;
        for (size_t k = 0; k < json_array_size(g); k++) {
            size_t pl;
            int32_t id = (int32_t)json_integer_value(json_array_get(g, k));
            assert_int_equal(tok_decode_piece(t, id, 0, text + w, sizeof text - 1 - w, &pl, NULL), TOK_OK);
            w += pl;
        }
        text[w] = '\0';
        assert_string_equal(text, json_string_value(json_object_get(r, "greedy_text_32")));
    }
    json_decref(root);
    free(path);
    tok_free(t);
    tok_spm_model_free(&m);
}

/* ---- .model parser robustness ------------------------------------------------ */

static void test_model_parse_hostile(void **state) {
    (void)state;
    tok_spm_model m;
    tok_err err = {0};
    assert_int_equal(tok_spm_model_parse(&m, "", 0, &err), TOK_EFORMAT);
    assert_non_null(strstr(err.msg, "no pieces"));
    /* length beyond the end */
    const unsigned char long_len[] = {0x0A, 0x7F, 0x0A, 0x01};
    assert_int_equal(tok_spm_model_parse(&m, long_len, sizeof long_len, &err), TOK_EFORMAT);
    assert_non_null(strstr(err.msg, "offset"));
    /* group wire type */
    const unsigned char group[] = {0x0B, 0x0C};
    assert_int_equal(tok_spm_model_parse(&m, group, sizeof group, &err), TOK_EFORMAT);
    /* a bad piece type */
    const unsigned char badtype[] = {0x0A, 0x05, 0x0A, 0x01, 'a', 0x18, 0x09};
    assert_int_equal(tok_spm_model_parse(&m, badtype, sizeof badtype, &err), TOK_EFORMAT);
    assert_non_null(strstr(err.msg, "type 9"));
    /* endless varint */
    const unsigned char varint[] = {0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01};
    assert_int_equal(tok_spm_model_parse(&m, varint, sizeof varint, &err), TOK_EFORMAT);
    /* a minimal valid model: one piece "a" with score -1.5, type 1, BPE */
    const unsigned char ok[] = {0x0A, 0x0A, 0x0A, 0x01, 'a', 0x15, 0x00, 0x00, 0xC0, 0xBF, 0x18, 0x01,
                                0x12, 0x02, 0x18, 0x02, 0x1A, 0x02, 0x18, 0x00};
    assert_int_equal(tok_spm_model_parse(&m, ok, sizeof ok, &err), TOK_OK);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.pieces[0], "a");
    assert_true(m.scores[0] == -1.5f);
    assert_int_equal(m.model_type, 2);
    assert_false(m.add_dummy_prefix);
    tok_spm_model_free(&m);
    /* a unigram model is refused by name */
    const unsigned char uni[] = {0x0A, 0x03, 0x0A, 0x01, 'a'};
    assert_int_equal(tok_spm_model_parse(&m, uni, sizeof uni, &err), TOK_OK);
    tok *t = NULL;
    assert_int_equal(tok_create_spm_from_model(&t, &m, NULL, &err), TOK_EINVAL);
    assert_non_null(strstr(err.msg, "model_type 1"));
    tok_spm_model_free(&m);
    assert_int_equal(tok_spm_model_load(&m, "/nonexistent/x.model", &err), TOK_EIO);
    assert_non_null(strstr(err.msg, "/nonexistent/x.model"));
    tok_spm_model_free(NULL);

    /* every truncation and many single-byte corruptions of a real file:
     * an error or a model, never a crash or a leak */
    char *path = tu_shared_path("models/tok512.model");
    if (!path) return;
    size_t len;
    unsigned char *buf = (unsigned char *)tu_read_file(path, &len);
    assert_non_null(buf);
    size_t n_ok = 0;
    for (size_t cut = 0; cut <= len; cut++) {
        int rc = tok_spm_model_parse(&m, buf, cut, &err);
        assert_true(rc == TOK_OK || rc == TOK_EFORMAT);
        if (rc == TOK_OK) {
            n_ok++;
            if (tok_create_spm_from_model(&t, &m, NULL, &err) == TOK_OK) tok_free(t);
        }
        tok_spm_model_free(&m);
    }
    assert_true(n_ok > 0);
    unsigned char *copy = malloc(len);
    for (size_t pos = 0; pos < len; pos += 3) {
        memcpy(copy, buf, len);
        copy[pos] ^= (unsigned char)(0x5A + pos);
        int rc = tok_spm_model_parse(&m, copy, len, &err);
        assert_true(rc == TOK_OK || rc == TOK_EFORMAT);
        if (rc == TOK_OK && tok_create_spm_from_model(&t, &m, NULL, &err) == TOK_OK) {
            size_t n;
            int32_t *ids = enc(t, "Once upon a time", 16, TOK_ENC_ADD_SPECIAL, &n);
            free(ids);
            tok_free(t);
        }
        tok_spm_model_free(&m);
    }
    free(copy);
    free(buf);
    free(path);
}

/* ---- a small built-in vocabulary -------------------------------------------- */

#define SP "\xE2\x96\x81"

/* <unk> <s> </s>, then 256 byte tokens when with_bytes, then extra pieces. */
static tok *toy_spm(const char *const *extra, const float *scores, size_t n_extra, bool with_bytes,
                    const tok_options *opt) {
    size_t nb = with_bytes ? 256 : 0, n = 3 + nb + n_extra;
    const char **v = calloc(n, sizeof *v);
    float *sc = calloc(n, sizeof *sc);
    int32_t *ty = calloc(n, sizeof *ty);
    char (*bytes)[7] = calloc(256, 7);
    v[0] = "<unk>";
    v[1] = "<s>";
    v[2] = "</s>";
    ty[0] = TOK_TYPE_UNKNOWN;
    ty[1] = ty[2] = TOK_TYPE_CONTROL;
    for (size_t b = 0; b < nb; b++) {
        snprintf(bytes[b], 7, "<0x%02X>", (unsigned)b);
        v[3 + b] = bytes[b];
        ty[3 + b] = TOK_TYPE_BYTE;
    }
    for (size_t i = 0; i < n_extra; i++) {
        v[3 + nb + i] = extra[i];
        sc[3 + nb + i] = scores[i];
        ty[3 + nb + i] = strcmp(extra[i], "<user>") == 0 ? TOK_TYPE_USER_DEFINED : TOK_TYPE_NORMAL;
    }
    tok *t = NULL;
    tok_err err = {0};
    int rc = tok_create_spm(&t, v, sc, ty, n, opt, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    free(bytes);
    free(ty);
    free(sc);
    free(v);
    return t;
}

static void test_toy_spm(void **state) {
    (void)state;
    /* ids with bytes: 259.. */
    const char *extra[] = {SP, "a", "b", "c", "ab", "bc", SP "a", "abc", "aa", "<user>"};
    const float scores[] = {-1, -1, -1, -1, -3, -1, -2, -5, -1, 0};
    enum { SPC = 259, A, B, C, AB, BC, SPA, ABC, AA, USER };
    tok *t = toy_spm(extra, scores, 10, true, NULL);
    size_t n;
    /* "▁abc": bc (-1) first, then ▁a (-2) beats a+bc (-5): ▁a bc */
    int32_t *ids = enc(t, "abc", 3, TOK_ENC_ADD_SPECIAL, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 1);
    assert_int_equal(ids[1], SPA);
    assert_int_equal(ids[2], BC);
    free(ids);
    /* ties go to the leftmost pair: "aaa" -> aa a (with the prefix ▁ first: "▁a" -2 < "aa" -1) */
    ids = enc(t, "aaa", 3, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], SPC);
    assert_int_equal(ids[1], AA);
    assert_int_equal(ids[2], A);
    free(ids);
    /* byte fallback for what the vocabulary lacks: "é" -> <0xC3><0xA9> */
    ids = enc(t, "\xC3\xA9", 2, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[1], 3 + 0xC3);
    assert_int_equal(ids[2], 3 + 0xA9);
    size_t dl;
    char *back = dec(t, ids, n, 0, &dl);
    assert_string_equal(back, "\xC3\xA9");
    free(back);
    free(ids);
    /* invalid UTF-8: each maximal subpart is a symbol, bytes round-trip */
    ids = enc(t, "a\xE2\x96" "b\xFF", 5, 0, &n);
    back = dec(t, ids, n, 0, &dl);
    assert_int_equal(dl, 5);
    assert_memory_equal(back, "a\xE2\x96" "b\xFF", 5);
    free(back);
    free(ids);
    /* a user-defined token matches always; the prefix comes back after it */
    ids = enc(t, "a<user>a", 8, 0, &n);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], SPA);
    assert_int_equal(ids[1], USER);
    assert_int_equal(ids[2], SPA);
    back = dec(t, ids, n, 0, &dl);
    assert_string_equal(back, "a<user> a"); /* llama.cpp's rule: a prefix after specials */
    free(back);
    free(ids);
    /* decode strips one leading space after BOS, and only then */
    int32_t seq[] = {1, SPA, SPA};
    back = dec(t, seq, 3, 0, &dl);
    assert_string_equal(back, "a a");
    free(back);
    back = dec(t, seq, 3, TOK_DEC_SPECIAL, &dl);
    assert_string_equal(back, "<s>a a");
    free(back);
    tok_free(t);

    /* no byte tokens: unknown characters become <unk> */
    t = toy_spm(extra, scores, 10, false, NULL);
    ids = enc(t, "a\xC3\xA9", 3, 0, &n);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 3 + 6); /* ▁a without the 256 bytes */
    assert_int_equal(ids[1], 0);
    back = dec(t, ids, n, 0, &dl);
    assert_string_equal(back, "a" TOK_UTF8_REPLACEMENT_STR);
    free(back);
    free(ids);
    tok_free(t);

    /* add_space_prefix off, add_eos on */
    tok_options o;
    tok_options_init(&o, TOK_KIND_SPM);
    o.add_space_prefix = false;
    o.add_eos = true;
    t = toy_spm(extra, scores, 10, true, &o);
    ids = enc(t, "ab c", 4, TOK_ENC_ADD_SPECIAL, &n);
    int32_t want[] = {1, AB, SPC, C, 2};
    assert_int_equal(n, 5);
    assert_memory_equal(ids, want, sizeof want);
    back = dec(t, ids, n, 0, &dl);
    assert_string_equal(back, "ab c");
    free(back);
    free(ids);
    tok_free(t);

    /* without types, "<0xNN>" are BYTE tokens and <unk>/<s>/</s> special */
    const char *v[] = {"<unk>", "<s>", "</s>", "<0x41>", SP "x"};
    const float s0[] = {0, 0, 0, 0, -1};
    tok_err err = {0};
    assert_int_equal(tok_create_spm(&t, v, s0, NULL, 5, NULL, &err), TOK_OK);
    assert_int_equal(tok_token_type(t, 0), TOK_TYPE_UNKNOWN);
    assert_int_equal(tok_token_type(t, 1), TOK_TYPE_CONTROL);
    assert_int_equal(tok_token_type(t, 3), TOK_TYPE_BYTE);
    ids = enc(t, "xA", 2, TOK_ENC_ADD_SPECIAL, &n);
    int32_t w2[] = {1, 4, 3};
    assert_int_equal(n, 3);
    assert_memory_equal(ids, w2, sizeof w2);
    free(ids);
    tok_free(t);

    /* errors are named */
    const float nanv[] = {0, 0, 0, 0, NAN};
    assert_int_equal(tok_create_spm(&t, v, nanv, NULL, 5, NULL, &err), TOK_EINVAL);
    assert_non_null(strstr(err.msg, "token 4"));
    assert_int_equal(tok_create_spm(&t, v, NULL, NULL, 5, NULL, &err), TOK_EINVAL);
    int32_t badty[] = {2, 3, 3, 6, 42};
    assert_int_equal(tok_create_spm(&t, v, s0, badty, 5, NULL, &err), TOK_EINVAL);
    assert_non_null(strstr(err.msg, "type 42"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_tiny),
        cmocka_unit_test(test_llama_emoji_stream),
        cmocka_unit_test(test_stories260k),
        cmocka_unit_test(test_model_parse_hostile),
        cmocka_unit_test(test_toy_spm),
    };
    return cmocka_run_group_tests_name("tok_spm", tests, NULL, NULL);
}
