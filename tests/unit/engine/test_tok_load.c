/* test_tok_load.c - a model's tokenizer from GGUF metadata and from HF
 * folders gives the reference token ids (llama.cpp / transformers). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tok_load.h"
#include "tu_util.h"

/* Encodes text with special tokens added and compares with a JSON id array. */
static void check_ids(const tok *t, const char *text, const json_t *want, const char *what) {
    int32_t ids[512];
    size_t n = 0;
    tok_err err = {0};
    assert_int_equal(tok_encode(t, text, strlen(text), TOK_ENC_ADD_SPECIAL, ids, 512, &n, &err), 0);
    if (n != json_array_size(want)) fail_msg("%s: %zu ids, want %zu", what, n, json_array_size(want));
    for (size_t i = 0; i < n; i++)
        if (ids[i] != json_integer_value(json_array_get(want, i)))
            fail_msg("%s: id %zu is %d, want %lld", what, i, ids[i],
                     (long long)json_integer_value(json_array_get(want, i)));
}

/* The four conformance prompts of a model folder, through `path`. */
static void check_conformance(const char *model, const char *path_rel) {
    char ref_rel[256];
    snprintf(ref_rel, sizeof ref_rel, "conformance/%s/reference.json", model);
    char *ref_path = tu_shared_path(ref_rel), *path = tu_shared_path(path_rel);
    if (!ref_path || !path) {
        free(ref_path), free(path);
        skip();
    }
    json_error_t je;
    json_t *ref = json_load_file(ref_path, 0, &je);
    assert_non_null(ref);
    tok *t;
    tok_err err = {0};
    if (tok_load(&t, path, &err) != 0) fail_msg("%s: %s", path, err.msg);
    json_t *prompts = json_object_get(ref, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    for (size_t i = 0; i < 4; i++) {
        json_t *p = json_array_get(prompts, i);
        check_ids(t, json_string_value(json_object_get(p, "text")), json_object_get(p, "input_ids"),
                  path_rel);
    }
    tok_free(t);
    json_decref(ref);
    free(ref_path), free(path);
}

static void test_llama_gguf(void **st) { (void)st; check_conformance("llama-tiny", "conformance/llama-tiny/model-f32.gguf"); }
static void test_llama_hf(void **st) { (void)st; check_conformance("llama-tiny", "conformance/llama-tiny"); }
static void test_gpt2_gguf(void **st) { (void)st; check_conformance("gpt2-tiny", "conformance/gpt2-tiny/model-f32.gguf"); }
static void test_gpt2_hf(void **st) { (void)st; check_conformance("gpt2-tiny", "conformance/gpt2-tiny"); }

static void test_stories260k(void **st) {
    (void)st;
    char *ref_path = tu_shared_path("models/stories260K.reference.json");
    char *path = tu_shared_path("models/stories260K.gguf");
    if (!ref_path || !path) {
        free(ref_path), free(path);
        skip();
    }
    json_error_t je;
    json_t *ref = json_load_file(ref_path, 0, &je);
    assert_true(json_is_array(ref));
    tok *t;
    tok_err err = {0};
    if (tok_load(&t, path, &err) != 0) fail_msg("%s", err.msg);
    size_t i;
    json_t *c;
    json_array_foreach(ref, i, c) {
        const char *text = json_string_value(json_object_get(c, "prompt"));
        json_t *want = json_object_get(c, "token_ids");
        int32_t ids[256];
        size_t n = 0;
        unsigned flags = json_is_true(json_object_get(c, "add_bos")) ? TOK_ENC_ADD_SPECIAL : 0;
        assert_int_equal(tok_encode(t, text, strlen(text), flags, ids, 256, &n, &err), 0);
        assert_int_equal(n, json_array_size(want));
        for (size_t k = 0; k < n; k++)
            assert_int_equal(ids[k], json_integer_value(json_array_get(want, k)));
    }
    tok_free(t);
    json_decref(ref);
    free(ref_path), free(path);
}

/* A tokenizer.json written from gpt2-tiny's vocab.json + merges.txt (merges
 * in both spellings HF uses) must give the reference ids too. */
static void test_gpt2_tokenizer_json(void **st) {
    (void)st;
    char *vocab_path = tu_shared_path("conformance/gpt2-tiny/vocab.json");
    char *merges_path = tu_shared_path("conformance/gpt2-tiny/merges.txt");
    if (!vocab_path || !merges_path) {
        free(vocab_path), free(merges_path);
        skip();
    }
    json_t *vocab = json_load_file(vocab_path, 0, NULL);
    size_t len;
    char *mtext = tu_read_file(merges_path, &len);
    assert_non_null(vocab);
    assert_non_null(mtext);
    json_t *merges = json_array();
    int k = 0;
    for (char *line = strtok(mtext, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#') continue;
        char *sp = strchr(line, ' ');
        if (!sp) continue;
        if (k++ % 2) { /* ["a", "b"] (tokenizers >= 0.20) */
            *sp = '\0';
            json_array_append_new(merges, json_pack("[s, s]", line, sp + 1));
        } else { /* "a b" */
            json_array_append_new(merges, json_string(line));
        }
    }
    json_object_del(vocab, "<|endoftext|>");
    json_t *root = json_pack("{s:{s:s, s:o, s:o}, s:{s:s}, s:[{s:i, s:s, s:b}]}", "model", "type", "BPE",
                             "vocab", vocab, "merges", merges, "pre_tokenizer", "type", "ByteLevel",
                             "added_tokens", "id", 50256, "content", "<|endoftext|>", "special", 1);
    char dir[] = "/tmp/alignd_tokjson_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    assert_int_equal(json_dump_file(root, path, JSON_COMPACT), 0);
    json_decref(root);
    free(mtext);
    free(vocab_path), free(merges_path);
    /* a folder with only tokenizer.json: tok_load_hf_dir picks it */
    tok *t;
    tok_err err = {0};
    if (tok_load_hf_dir(&t, dir, &err) != 0) fail_msg("%s", err.msg);
    char *ref_path = tu_shared_path("conformance/gpt2-tiny/reference.json");
    json_t *ref = json_load_file(ref_path, 0, NULL);
    json_t *prompts = json_object_get(ref, "prompts");
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        json_t *p = json_array_get(prompts, i);
        check_ids(t, json_string_value(json_object_get(p, "text")), json_object_get(p, "input_ids"), "tokenizer.json");
    }
    int32_t ids[8];
    size_t n = 0;
    assert_int_equal(tok_encode(t, "<|endoftext|>", 13, TOK_ENC_PARSE_SPECIAL, ids, 8, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 50256);
    tok_free(t);
    json_decref(ref);
    free(ref_path);
    /* SentencePiece-style files are refused by name */
    json_t *spm = json_pack("{s:{s:s, s:{s:i}, s:[], s:b}}", "model", "type", "BPE", "vocab", "a", 0,
                            "merges", "byte_fallback", 1);
    assert_int_equal(json_dump_file(spm, path, 0), 0);
    json_decref(spm);
    assert_int_not_equal(tok_load_hf_dir(&t, dir, &err), 0);
    assert_non_null(strstr(err.msg, "tokenizer.model"));
    unlink(path);
    rmdir(dir);
}

static void test_errors(void **st) {
    (void)st;
    tok *t = (tok *)1;
    tok_err err = {0};
    assert_int_not_equal(tok_load(&t, "/nonexistent/model.gguf", &err), 0);
    assert_null(t);
    assert_non_null(strstr(err.msg, "/nonexistent/model.gguf"));
    assert_int_not_equal(tok_load(&t, "/tmp", &err), 0); /* a folder without tokenizer files */
    assert_non_null(strstr(err.msg, "no tokenizer files"));
    char *bert = tu_shared_path("conformance/bert-tiny/model-f32.gguf");
    if (bert) { /* tokenizer.ggml.model 'bert' is WordPiece (test_tok_wordpiece.c) */
        if (tok_load(&t, bert, &err) != 0) fail_msg("%s", err.msg);
        assert_int_equal(tok_get_kind(t), TOK_KIND_WORDPIECE);
        tok_free(t);
        free(bert);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_gguf), cmocka_unit_test(test_llama_hf),
        cmocka_unit_test(test_gpt2_gguf),  cmocka_unit_test(test_gpt2_hf),
        cmocka_unit_test(test_stories260k), cmocka_unit_test(test_gpt2_tokenizer_json),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
