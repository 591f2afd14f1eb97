/* tok_hf_json.c - a Hugging Face tokenizer.json of the byte-level BPE kind
 * (GPT-2 and its descendants): model.vocab, model.merges ("a b" strings or
 * ["a", "b"] pairs) and added_tokens. SentencePiece-style tokenizer.json
 * files (Metaspace, byte_fallback) are refused with a clear error: alignd
 * reads those models' tokenizer.model instead. */
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_load.h"

int tok_create_bpe_from_hf_json(tok **out, const char *path, tok_err *err) {
    *out = NULL;
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return eng_fail(err, TOK_EFORMAT, "%s: line %d: %s", path, je.line, je.text);
    int rc = TOK_EFORMAT;
    const char **tokens = NULL, **merges = NULL;
    char **merge_buf = NULL;
    int32_t *types = NULL;
    size_t n_tokens = 0, n_merges = 0;
    json_t *model = json_object_get(root, "model");
    const char *type = json_string_value(json_object_get(model, "type"));
    json_t *vocab = json_object_get(model, "vocab"), *mj = json_object_get(model, "merges");
    if (!type || strcmp(type, "BPE") != 0) {
        rc = eng_fail(err, TOK_EINVAL, "%s: model.type '%s' is not supported (BPE only)", path,
                      type ? type : "(missing)");
        goto out;
    }
    char *pre = json_dumps(json_object_get(root, "pre_tokenizer"), JSON_COMPACT | JSON_ENCODE_ANY);
    bool spm_style = json_is_true(json_object_get(model, "byte_fallback")) || (pre && strstr(pre, "Metaspace"));
    free(pre);
    if (spm_style) {
        rc = eng_fail(err, TOK_EINVAL, "%s: a SentencePiece-style tokenizer.json; alignd reads "
                                       "tokenizer.model for these models", path);
        goto out;
    }
    if (!json_is_object(vocab) || !json_is_array(mj)) {
        rc = eng_fail(err, TOK_EFORMAT, "%s: model.vocab must be an object and model.merges an array", path);
        goto out;
    }
    /* ids: vocab plus added_tokens, dense from 0 */
    json_t *added = json_object_get(root, "added_tokens");
    size_t max_id = 0;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 10000000) {
            rc = eng_fail(err, TOK_EFORMAT, "%s: model.vocab['%s'] is not a token id", path, key);
            goto out;
        }
        if ((size_t)json_integer_value(v) + 1 > max_id) max_id = (size_t)json_integer_value(v) + 1;
    }
    size_t i;
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        if (!json_is_string(json_object_get(v, "content")) || id < 0 || id > 10000000) {
            rc = eng_fail(err, TOK_EFORMAT, "%s: added_tokens[%zu] needs content and an id", path, i);
            goto out;
        }
        if ((size_t)id + 1 > max_id) max_id = (size_t)id + 1;
    }
    n_tokens = max_id;
    tokens = calloc(n_tokens ? n_tokens : 1, sizeof *tokens);
    types = calloc(n_tokens ? n_tokens : 1, sizeof *types);
    if (!tokens || !types) goto oom;
    json_object_foreach(vocab, key, v) {
        tokens[json_integer_value(v)] = key;
        types[json_integer_value(v)] = TOK_TYPE_NORMAL;
    }
    json_array_foreach(added, i, v) {
        json_int_t id = json_integer_value(json_object_get(v, "id"));
        tokens[id] = json_string_value(json_object_get(v, "content"));
        types[id] = json_is_true(json_object_get(v, "special")) ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
    }
    for (size_t k = 0; k < n_tokens; k++)
        if (!tokens[k]) {
            rc = eng_fail(err, TOK_EFORMAT, "%s: token id %zu is missing (ids must be dense)", path, k);
            goto out;
        }
    n_merges = json_array_size(mj);
    merges = calloc(n_merges ? n_merges : 1, sizeof *merges);
    merge_buf = calloc(n_merges ? n_merges : 1, sizeof *merge_buf);
    if (!merges || !merge_buf) goto oom;
    json_array_foreach(mj, i, v) {
        if (json_is_string(v)) {
            merges[i] = json_string_value(v);
        } else if (json_is_array(v) && json_array_size(v) == 2 && json_is_string(json_array_get(v, 0)) &&
                   json_is_string(json_array_get(v, 1))) {
            if (asprintf(&merge_buf[i], "%s %s", json_string_value(json_array_get(v, 0)),
                         json_string_value(json_array_get(v, 1))) < 0) {
                merge_buf[i] = NULL;
                goto oom;
            }
            merges[i] = merge_buf[i];
        } else {
            rc = eng_fail(err, TOK_EFORMAT, "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", path, i);
            goto out;
        }
    }
    rc = tok_create_bpe(out, tokens, n_tokens, merges, n_merges, types, NULL, err);
    goto out;
oom:
    rc = eng_fail(err, TOK_ENOMEM, "%s: out of memory", path);
out:
    if (merge_buf)
        for (size_t k = 0; k < n_merges; k++) free(merge_buf[k]);
    free(merge_buf);
    free(merges);
    free(tokens);
    free(types);
    json_decref(root);
    return rc;
}
