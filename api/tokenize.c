/* tokenize.c - POST /tokenize and POST /detokenize, in llama.cpp server's
 * shapes: {"content": "...", "add_special": bool, "with_pieces": bool}
 * -> {"tokens": [ids] | [{"id", "piece"}]}, and {"tokens": [ids]} ->
 * {"content": "..."}. "model" picks the model (default: the first). */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "fields.h"
#include "gen.h"
#include "routes.h"
#include "tok_utf8.h"

static served_model *api__tok_model(http_req *req, json_t *body) {
    app *a = http_req_app(req);
    const char *name = NULL;
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return NULL;
    }
    if (api_field_string(req, body, "model", &name)) return NULL;
    served_model *sm = name ? models_find(&a->models, name) : a->models.n ? &a->models.items[0] : NULL;
    if (!sm) http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", name ? "model '%s' is not served here" : "no model is served%s", name ? name : "");
    return sm;
}

void api_tokenize(http_req *req) {
    json_t *body = http_req_json(req);
    served_model *sm = api__tok_model(req, body);
    if (!sm) return;
    const char *content = NULL;
    bool add_special = false, with_pieces = false;
    if (api_field_required_string(req, body, "content", &content) ||
        api_field_bool(req, body, "add_special", &add_special) ||
        api_field_bool(req, body, "with_pieces", &with_pieces))
        return;
    size_t len = json_string_length(json_object_get(body, "content")), cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    tok_err e;
    unsigned flags = (add_special ? TOK_ENC_ADD_SPECIAL : 0) | TOK_ENC_PARSE_SPECIAL;
    int rc = ids ? tok_encode(sm->tok, content, len, flags, ids, cap, &n, &e) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (more) ids = more;
        rc = more ? tok_encode(sm->tok, content, len, flags, ids, n, &n, &e) : TOK_ENOMEM;
    }
    if (rc != 0) {
        free(ids);
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot tokenize");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, with_pieces ? json_pack("{s:i, s:o}", "id", ids[i], "piece", gen_piece_json(sm->tok, ids[i]))
                                               : json_integer(ids[i]));
    free(ids);
    http_reply_json(req, 200, json_pack("{s:o}", "tokens", arr));
}

void api_detokenize(http_req *req) {
    json_t *body = http_req_json(req);
    served_model *sm = api__tok_model(req, body);
    if (!sm) return;
    json_t *tokens = json_object_get(body, "tokens");
    if (!json_is_array(tokens)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "tokens", "tokens must be an array of token ids");
        return;
    }
    size_t n = json_array_size(tokens);
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    if (!ids) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return;
    }
    int vocab = (int)tok_n_vocab(sm->tok);
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(tokens, i);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
            free(ids);
            http_reply_error(req, API_ERR_INVALID_VALUE, "tokens", "tokens[%zu] must be a token id in [0, %d)", i, vocab);
            return;
        }
        ids[i] = (int32_t)json_integer_value(v);
    }
    size_t cap = n * 32 + 16, len = 0;
    char *raw = malloc(cap), *text = malloc(TOK_STREAM_OUT_MAX(cap));
    tok_err e;
    long w = -1;
    if (raw && text && tok_decode(sm->tok, ids, n, 0, raw, cap, &len, &e) == 0) {
        tok_stream st; /* invalid UTF-8 (a cut character) becomes U+FFFD */
        tok_stream_init(&st);
        w = tok_stream_feed(&st, raw, len, text, TOK_STREAM_OUT_MAX(cap));
        long f = w >= 0 ? tok_stream_flush(&st, text + w, TOK_STREAM_OUT_MAX(cap) - (size_t)w) : -1;
        w = f >= 0 ? w + f : -1;
    }
    if (w >= 0) http_reply_json(req, 200, json_pack("{s:s%}", "content", text, (size_t)w));
    else http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot detokenize");
    free(raw);
    free(text);
    free(ids);
}
