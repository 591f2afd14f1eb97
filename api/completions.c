/* completions.c - POST /v1/completions (OpenAI's legacy completions API). */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "gen_params.h"
#include "routes.h"

#define API_MAX_PROMPTS 64

/* Tokenizes text into a new array (BOS added as the model wants; special
 * token text recognised, as llama.cpp's and vLLM's servers do). */
static int32_t *api__tokenize(const tok *t, const char *text, size_t len, int *n_out) {
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    tok_err e;
    unsigned flags = TOK_ENC_ADD_SPECIAL | TOK_ENC_PARSE_SPECIAL;
    int rc = ids ? tok_encode(t, text, len, flags, ids, cap, &n, &e) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (more) ids = more;
        rc = more ? tok_encode(t, text, len, flags, ids, n, &n, &e) : TOK_ENOMEM;
    }
    if (rc != 0) {
        free(ids);
        return NULL;
    }
    *n_out = (int)n;
    return ids;
}

/* Detokenizes ids (the text of token prompts, for echo and reranking). */
static char *api__detokenize(const tok *t, const int32_t *ids, int n) {
    size_t cap = (size_t)n * 16 + 16, len = 0;
    char *out = malloc(cap);
    tok_err e;
    if (out && tok_decode(t, ids, (size_t)n, 0, out, cap - 1, &len, &e) != 0) len = 0;
    if (out) out[len] = '\0';
    return out;
}

/* Reads one token-id array; -1 when it is not one. */
static int api__ids(json_t *arr, int vocab, int32_t **out, int *n) {
    size_t k = json_array_size(arr);
    int32_t *ids = malloc((k ? k : 1) * sizeof *ids);
    if (!ids) return -1;
    for (size_t i = 0; i < k; i++) {
        json_t *v = json_array_get(arr, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
            free(ids);
            return -1;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    *out = ids;
    *n = (int)k;
    return 0;
}

void api_completions(http_req *req) {
    json_t *body = http_req_json(req);
    api_gen_params p;
    int32_t *prompts[API_MAX_PROMPTS] = {0};
    int n_tokens[API_MAX_PROMPTS] = {0}, n_prompts = 0;
    char **texts = NULL; /* the prompts as text: for echo and for reward reranking */
    if (api_gen_params_parse(req, body, GEN_COMPLETION, &p) != 0) goto out;
    const tok *t = p.sm->tok;
    int vocab = model_hp(p.sm->m)->n_vocab;
    json_t *prompt = json_object_get(body, "prompt");
    if (!prompt || json_is_null(prompt)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "prompt", "prompt is required");
        goto out;
    }
    /* string | [string] | [int] | [[int]] */
    json_t *items[API_MAX_PROMPTS];
    bool is_ids[API_MAX_PROMPTS];
    if (json_is_string(prompt)) {
        items[0] = prompt, is_ids[0] = false, n_prompts = 1;
    } else if (json_is_array(prompt) && json_array_size(prompt) > 0) {
        json_t *first = json_array_get(prompt, 0);
        if (json_is_integer(first)) {
            items[0] = prompt, is_ids[0] = true, n_prompts = 1;
        } else {
            if (json_array_size(prompt) > API_MAX_PROMPTS) {
                http_reply_error(req, API_ERR_INVALID_VALUE, "prompt", "at most %d prompts per request", API_MAX_PROMPTS);
                goto out;
            }
            size_t i;
            json_t *v;
            json_array_foreach(prompt, i, v) {
                if (!json_is_string(v) && !json_is_array(v)) {
                    http_reply_error(req, API_ERR_BAD_REQUEST, "prompt",
                                     "prompt[%zu] must be a string or an array of token ids", i);
                    goto out;
                }
                items[i] = v;
                is_ids[i] = json_is_array(v);
            }
            n_prompts = (int)json_array_size(prompt);
        }
    } else {
        http_reply_error(req, API_ERR_BAD_REQUEST, "prompt",
                         "prompt must be a string, an array of strings, an array of token ids or an "
                         "array of such arrays (and not empty)");
        goto out;
    }
    bool want_texts = p.echo || p.rerank == GEN_RERANK_REWARD;
    if (want_texts && !(texts = calloc((size_t)n_prompts, sizeof *texts))) goto oom;
    for (int i = 0; i < n_prompts; i++) {
        if (is_ids[i]) {
            if (api__ids(items[i], vocab, &prompts[i], &n_tokens[i]) != 0) {
                http_reply_error(req, API_ERR_INVALID_VALUE, "prompt",
                                 "prompt %d must hold token ids in [0, %d)", i, vocab);
                goto out;
            }
        } else {
            const char *s = json_string_value(items[i]);
            if (!(prompts[i] = api__tokenize(t, s, json_string_length(items[i]), &n_tokens[i]))) goto oom;
        }
        if (texts) {
            texts[i] = is_ids[i] ? api__detokenize(t, prompts[i], n_tokens[i]) : strdup(json_string_value(items[i]));
            if (!texts[i]) goto oom;
        }
    }
    api_gen_start(req, &p, GEN_COMPLETION, prompts, n_tokens, n_prompts, texts);
    texts = NULL;
    goto out;
oom:
    http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
out:
    if (texts)
        for (int i = 0; i < n_prompts; i++) free(texts[i]);
    free(texts);
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    api_gen_params_free(&p);
}
