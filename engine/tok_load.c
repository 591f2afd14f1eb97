/* tok_load.c - finding and building a model's tokenizer. */
#include "tok_load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int tok__fail_gguf(tok_err *err, const char *msg) {
    return eng_fail(err, TOK_EFORMAT, "%s", msg);
}

/* Reads an optional integer id key into *id (left alone when absent). */
static int tok__gguf_id(const gguf_file *f, const char *key, int32_t *id, tok_err *err) {
    char msg[256];
    int64_t v;
    int rc = gguf_get_int(f, key, -1, UINT32_MAX, &v, msg, sizeof msg);
    if (rc == GGUF_ENOTFOUND) return 0;
    if (rc != 0) return tok__fail_gguf(err, msg);
    /* converters write "none" as -1 or as uint32 0xFFFFFFFF */
    *id = (v < 0 || v > INT32_MAX) ? TOK_ID_NONE : (int32_t)v;
    return 0;
}

/* Reads an optional boolean key into *b (left alone when absent). */
static int tok__gguf_bool(const gguf_file *f, const char *key, bool *b, tok_err *err) {
    char msg[256];
    int rc = gguf_get_bool(f, key, b, msg, sizeof msg);
    if (rc == GGUF_ENOTFOUND) return 0;
    return rc ? tok__fail_gguf(err, msg) : 0;
}

/* The string array of a key as a C array of pointers (malloc'd; the strings
 * stay the file's). */
static int tok__gguf_strings(const gguf_file *f, const char *key, const char ***out, size_t *n,
                             tok_err *err) {
    char msg[256];
    const void *data;
    if (gguf_get_arr(f, key, GGUF_TYPE_STRING, &data, n, msg, sizeof msg) != 0)
        return tok__fail_gguf(err, msg);
    const gguf_str *s = data;
    const char **ptrs = malloc((*n ? *n : 1) * sizeof *ptrs);
    if (!ptrs) return eng_fail(err, TOK_ENOMEM, "%s: out of memory", key);
    for (size_t i = 0; i < *n; i++) {
        if (strlen(s[i].s) != s[i].len)
            return free(ptrs), eng_fail(err, TOK_EFORMAT, "%s[%zu]: embedded NUL byte", key, i);
        ptrs[i] = s[i].s;
    }
    *out = ptrs;
    return 0;
}

int tok_load_gguf(tok **out, const gguf_file *f, tok_err *err) {
    char msg[256];
    const char *model;
    *out = NULL;
    if (gguf_get_str(f, "tokenizer.ggml.model", &model, NULL, msg, sizeof msg) != 0)
        return eng_fail(err, TOK_EFORMAT, "no tokenizer in this GGUF file: %s", msg);
    tok_kind kind;
    if (strcmp(model, "llama") == 0) kind = TOK_KIND_SPM;
    else if (strcmp(model, "gpt2") == 0) kind = TOK_KIND_BPE;
    else
        return eng_fail(err, TOK_EINVAL,
                        "tokenizer.ggml.model '%s' is not supported (llama or gpt2)", model);
    tok_options o;
    tok_options_init(&o, kind);
    int rc;
    if ((rc = tok__gguf_id(f, "tokenizer.ggml.bos_token_id", &o.bos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.eos_token_id", &o.eos_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.unknown_token_id", &o.unk_id, err)) ||
        (rc = tok__gguf_id(f, "tokenizer.ggml.padding_token_id", &o.pad_id, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_bos_token", &o.add_bos, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_eos_token", &o.add_eos, err)) ||
        (rc = tok__gguf_bool(f, "tokenizer.ggml.add_space_prefix", &o.add_space_prefix, err)))
        return rc;

    const char **tokens = NULL, **merges = NULL;
    size_t n_tokens = 0, n_merges = 0;
    if ((rc = tok__gguf_strings(f, "tokenizer.ggml.tokens", &tokens, &n_tokens, err))) return rc;
    const int32_t *types = NULL;
    size_t n_types = 0;
    const void *data;
    if (gguf_get_arr(f, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, &data, &n_types, msg,
                     sizeof msg) == 0) {
        types = data;
        if (n_types != n_tokens) {
            rc = eng_fail(err, TOK_EFORMAT, "tokenizer.ggml.token_type has %zu entries for %zu tokens",
                          n_types, n_tokens);
            goto out;
        }
    }
    if (kind == TOK_KIND_SPM) {
        size_t n_scores = 0;
        if (gguf_get_arr(f, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, &data, &n_scores, msg,
                         sizeof msg) != 0) {
            rc = tok__fail_gguf(err, msg);
            goto out;
        }
        if (n_scores != n_tokens) {
            rc = eng_fail(err, TOK_EFORMAT, "tokenizer.ggml.scores has %zu entries for %zu tokens",
                          n_scores, n_tokens);
            goto out;
        }
        rc = tok_create_spm(out, tokens, data, types, n_tokens, &o, err);
    } else {
        if ((rc = tok__gguf_strings(f, "tokenizer.ggml.merges", &merges, &n_merges, err))) goto out;
        rc = tok_create_bpe(out, tokens, n_tokens, merges, n_merges, types, &o, err);
    }
out:
    free(tokens);
    free(merges);
    return rc;
}

static bool tok__exists(const char *dir, const char *name, char *path, size_t len) {
    snprintf(path, len, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int tok_load_hf_dir(tok **out, const char *dir, tok_err *err) {
    char a[4096], b[4096];
    *out = NULL;
    if (tok__exists(dir, "tokenizer.model", a, sizeof a)) {
        tok_spm_model m;
        int rc = tok_spm_model_load(&m, a, err);
        if (rc) return rc;
        rc = tok_create_spm_from_model(out, &m, NULL, err);
        tok_spm_model_free(&m);
        return rc;
    }
    if (tok__exists(dir, "vocab.json", a, sizeof a) && tok__exists(dir, "merges.txt", b, sizeof b))
        return tok_create_bpe_from_files(out, a, b, NULL, err);
    if (tok__exists(dir, "tokenizer.json", a, sizeof a)) return tok_create_bpe_from_hf_json(out, a, err);
    return eng_fail(err, TOK_EINVAL,
                    "%s: no tokenizer files (tokenizer.model, vocab.json + merges.txt, or tokenizer.json)", dir);
}

int tok_load(tok **out, const char *path, tok_err *err) {
    struct stat st;
    *out = NULL;
    if (stat(path, &st) != 0)
        return eng_fail(err, TOK_EINVAL, "%s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode)) return tok_load_hf_dir(out, path, err);
    char msg[512];
    gguf_file *f;
    if (gguf_open(&f, path, msg, sizeof msg) != 0) return eng_fail(err, TOK_EFORMAT, "%s", msg);
    int rc = tok_load_gguf(out, f, err);
    gguf_close(f);
    return rc;
}
