/* chat.c - POST /v1/chat/completions: messages rendered with the model's
 * chat template, then generated like a completion. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "chat_template.h"
#include "gen_params.h"
#include "rewards.h"
#include "routes.h"

#define API_MAX_MESSAGES 1024

/* OpenAI content: a string, or an array of parts of which only "text" parts
 * are supported; returns a new string or NULL with the request answered. */
static char *api__content(http_req *req, json_t *content, size_t i) {
    if (json_is_string(content)) return strdup(json_string_value(content));
    if (!json_is_array(content)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "messages",
                         "messages[%zu].content must be a string or an array of content parts", i);
        return NULL;
    }
    size_t len = 0, k;
    json_t *part;
    json_array_foreach(content, k, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        const char *text = json_string_value(json_object_get(part, "text"));
        if (!type || strcmp(type, "text") != 0 || !text) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "messages",
                             "messages[%zu].content[%zu]: only {\"type\": \"text\", \"text\": ...} parts are supported", i, k);
            return NULL;
        }
        len += strlen(text);
    }
    char *out = malloc(len + 1), *w = out;
    if (!out) return NULL;
    json_array_foreach(content, k, part) {
        const char *text = json_string_value(json_object_get(part, "text"));
        size_t n = strlen(text);
        memcpy(w, text, n);
        w += n;
    }
    *w = '\0';
    return out;
}

/* Reward reranking scores each choice as /v1/rewards scores a messages
 * pair: keeps the conversation as [{role, content}] in p->prompt_msgs, and
 * answers 422 now (not after generating) when the reward model's
 * tokenization cannot take it (a placeholder response tried). -1 when the
 * request has been answered. */
static int api__rerank_msgs(http_req *req, api_gen_params *p, const chat_message *msgs, size_t n_msgs) {
    json_t *arr = json_array(), *probe = json_pack("[{s:s, s:s}]", "role", "assistant", "content", "x");
    for (size_t i = 0; arr && i < n_msgs; i++)
        if (json_array_append_new(arr, json_pack("{s:s, s:s}", "role", msgs[i].role, "content", msgs[i].content))) {
            json_decref(arr);
            arr = NULL;
        }
    if (!arr || !probe) {
        json_decref(arr), json_decref(probe);
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    models_reward trunc = {.max_len = p->sm->n_ctx, .max_prompt_len = p->sm->n_ctx - 1, .add_eos = true};
    int32_t *ids = NULL;
    int n = 0;
    char msg[640];
    int rc = api_reward_pair_ids(p->sm, &trunc, arr, probe, &ids, &n, msg, sizeof msg);
    free(ids);
    json_decref(probe);
    if (rc < 0) {
        json_decref(arr);
        http_reply_error(req, API_ERR_INVALID_VALUE, "messages", "rerank \"reward\" cannot score these messages: %s", msg);
        return -1;
    }
    p->prompt_msgs = arr;
    return 0;
}

void api_chat_completions(http_req *req) {
    json_t *body = http_req_json(req);
    api_gen_params p;
    chat_message *msgs = NULL;
    char **contents = NULL, *rendered = NULL;
    int32_t *ids = NULL;
    size_t n_msgs = 0;
    if (api_gen_params_parse(req, body, GEN_CHAT, &p) != 0) goto out;
    served_model *sm = p.sm;
    if (!sm->has_chat) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "model", "%s", sm->chat_error);
        goto out;
    }
    json_t *messages = json_object_get(body, "messages");
    if (!json_is_array(messages) || json_array_size(messages) == 0) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "messages", "messages must be a non-empty array");
        goto out;
    }
    n_msgs = json_array_size(messages);
    if (n_msgs > API_MAX_MESSAGES) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "messages", "at most %d messages", API_MAX_MESSAGES);
        goto out;
    }
    msgs = calloc(n_msgs, sizeof *msgs);
    contents = calloc(n_msgs, sizeof *contents);
    if (!msgs || !contents) goto oom;
    for (size_t i = 0; i < n_msgs; i++) {
        json_t *m = json_array_get(messages, i);
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "messages", "messages[%zu] needs a string role", i);
            goto out;
        }
        if (!(contents[i] = api__content(req, json_object_get(m, "content"), i))) goto out;
        msgs[i].role = role;
        msgs[i].content = contents[i];
    }
    if (p.rerank == GEN_RERANK_REWARD && api__rerank_msgs(req, &p, msgs, n_msgs)) goto out;
    size_t len = 0;
    eng_err e = {0};
    if (chat_render(sm->chat_kind, msgs, n_msgs, true, sm->bos_text[0] ? sm->bos_text : NULL,
                    sm->eos_text[0] ? sm->eos_text : NULL, &rendered, &len, &e) != 0) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "messages", "%s", e.msg);
        goto out;
    }
    size_t cap = len + 16, n = 0;
    ids = malloc(cap * sizeof *ids);
    tok_err te;
    unsigned flags = TOK_ENC_ADD_SPECIAL | TOK_ENC_PARSE_SPECIAL; /* the template's own tokens */
    int rc = ids ? tok_encode(sm->tok, rendered, len, flags, ids, cap, &n, &te) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (more) ids = more;
        rc = more ? tok_encode(sm->tok, rendered, len, flags, ids, n, &n, &te) : TOK_ENOMEM;
    }
    if (rc != 0) goto oom;
    int n_tok = (int)n;
    api_gen_start(req, &p, GEN_CHAT, &ids, &n_tok, 1, NULL);
    goto out;
oom:
    http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
out:
    if (contents)
        for (size_t i = 0; i < n_msgs; i++) free(contents[i]);
    free(contents);
    free(msgs);
    free(rendered);
    free(ids);
    api_gen_params_free(&p);
}
