/* embeddings.c - POST /v1/embeddings (OpenAI): strings or token ids in,
 * pooled vectors out (float arrays or base64 of little-endian float32),
 * computed by the model's embedding batcher (engine/embedder.c), which packs
 * concurrent requests into one forward pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "classify.h"
#include "fields.h"
#include "routes.h"

#define API_EMB_MAX_INPUTS 2048 /* OpenAI's limit */

typedef struct api_emb_job {
    http_pending *p;
    char model[CFG_MODEL_NAME_MAX];
    bool base64;
    int dimensions;   /* 0: the model's width */
    int prompt_tokens;
} api_emb_job;

static char *api__base64(const unsigned char *in, size_t n) {
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc(4 * ((n + 2) / 3) + 1), *w = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        *w++ = tbl[v >> 18 & 63];
        *w++ = tbl[v >> 12 & 63];
        *w++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
        *w++ = i + 2 < n ? tbl[v & 63] : '=';
    }
    *w = '\0';
    return out;
}

/* Embedder thread: the vectors are ready (or failed). */
static void api__emb_done(void *ud, int status, const float *vectors, int n_inputs, int dim,
                          const char *error) {
    api_emb_job *job = ud;
    if (status != 0) {
        http_pending_reply_error(job->p, status == -ECANCELED ? API_ERR_SHUTTING_DOWN : API_ERR_INTERNAL,
                                 NULL, "%s", error ? error : "embedding failed");
        goto out;
    }
    int d = job->dimensions ? job->dimensions : dim;
    float *v = malloc((size_t)d * sizeof *v);
    json_t *data = json_array();
    for (int i = 0; v && i < n_inputs; i++) {
        memcpy(v, vectors + (size_t)i * (size_t)dim, (size_t)d * sizeof *v);
        if (job->dimensions && job->dimensions < dim) { /* shortened: unit length again */
            double ss = 0;
            for (int k = 0; k < d; k++) ss += (double)v[k] * v[k];
            float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
            for (int k = 0; k < d; k++) v[k] *= inv;
        }
        json_t *emb;
        if (job->base64) { /* x86-64 is little-endian, as OpenAI's format is */
            char *b = api__base64((const unsigned char *)v, (size_t)d * sizeof *v);
            emb = b ? json_string(b) : json_null();
            free(b);
        } else {
            emb = json_array();
            for (int k = 0; k < d; k++) json_array_append_new(emb, json_real(v[k]));
        }
        json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", i, "embedding", emb));
    }
    free(v);
    http_pending_reply_json(job->p, 200,
                            json_pack("{s:s, s:o, s:s, s:{s:i, s:i}}", "object", "list", "data", data,
                                      "model", job->model, "usage", "prompt_tokens", job->prompt_tokens,
                                      "total_tokens", job->prompt_tokens));
out:
    http_pending_release(job->p);
    free(job);
}

/* Tokenizes text with the model's special tokens (BERT: [CLS] ... [SEP]). */
static int32_t *api__emb_tokenize(const tok *t, const char *text, size_t len, int *n_out) {
    size_t cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    tok_err e;
    int rc = ids ? tok_encode(t, text, len, TOK_ENC_ADD_SPECIAL, ids, cap, &n, &e) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) {
        int32_t *more = realloc(ids, n * sizeof *ids);
        if (more) ids = more;
        rc = more ? tok_encode(t, text, len, TOK_ENC_ADD_SPECIAL, ids, n, &n, &e) : TOK_ENOMEM;
    }
    if (rc != 0) {
        free(ids);
        return NULL;
    }
    *n_out = (int)n;
    return ids;
}

/* Cuts ids to max tokens, keeping a trailing end token the tokenizer added
 * (BERT's [SEP]) as Hugging Face's truncation does. */
static void api__truncate(const tok *t, int32_t *ids, int *n, int max) {
    if (*n <= max) return;
    int32_t last = ids[*n - 1];
    bool keep_end = tok_adds_eos(t) || (tok_get_kind(t) == TOK_KIND_WORDPIECE && last == tok_eos(t));
    *n = max;
    if (keep_end && max >= 2) ids[max - 1] = last;
}

void api_embeddings(http_req *req) {
    app *a = http_req_app(req);
    json_t *body = http_req_json(req);
    int32_t **inputs = NULL;
    int *lens = NULL, n = 0;
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return;
    }
    const char *name = NULL, *fmt = NULL, *user = NULL;
    bool truncate = false;
    long long dims = 0;
    if (api_field_required_string(req, body, "model", &name) || api_field_string(req, body, "encoding_format", &fmt) ||
        api_field_bool(req, body, "truncate", &truncate) || api_field_string(req, body, "user", &user))
        return;
    served_model *sm = models_find(&a->models, name);
    if (!sm) {
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here (see GET /v1/models)", name);
        return;
    }
    if (sm->clip) { /* CLIP: text embeddings from the text tower */
        json_t *in = json_object_get(body, "input");
        size_t k = json_is_string(in) ? 1 : json_array_size(in);
        char *texts[API_EMB_MAX_INPUTS];
        if ((fmt && strcmp(fmt, "float") != 0) || json_object_get(body, "dimensions")) {
            http_reply_error(req, API_ERR_INVALID_VALUE, fmt ? "encoding_format" : "dimensions",
                             "CLIP text embeddings come as float vectors of the model's width");
            return;
        }
        if (k == 0 || k > API_EMB_MAX_INPUTS) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input must be a string or 1 to %d strings", API_EMB_MAX_INPUTS);
            return;
        }
        for (size_t i = 0; i < k; i++) {
            json_t *v = json_is_string(in) ? in : json_array_get(in, i);
            if (!json_is_string(v) || json_string_length(v) == 0) {
                http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%zu] must be a non-empty string (CLIP takes text)", i);
                return;
            }
            texts[i] = (char *)json_string_value(v);
        }
        api_clip_text_embeddings(req, sm, texts, (int)k);
        return;
    }
    int width = model_hp(sm->m)->n_embd;
    if (api_field_int(req, body, "dimensions", 1, width, &dims)) return;
    if (fmt && strcmp(fmt, "float") != 0 && strcmp(fmt, "base64") != 0) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "encoding_format", "encoding_format must be 'float' or 'base64'");
        return;
    }
    json_t *input = json_object_get(body, "input");
    /* string | [string] | [int] | [[int]] */
    json_t *items[API_EMB_MAX_INPUTS];
    bool ids_form[API_EMB_MAX_INPUTS];
    if (json_is_string(input)) {
        items[0] = input, ids_form[0] = false, n = 1;
    } else if (json_is_array(input) && json_array_size(input) > 0) {
        if (json_is_integer(json_array_get(input, 0))) {
            items[0] = input, ids_form[0] = true, n = 1;
        } else {
            if (json_array_size(input) > API_EMB_MAX_INPUTS) {
                http_reply_error(req, API_ERR_INVALID_VALUE, "input", "at most %d inputs per request", API_EMB_MAX_INPUTS);
                return;
            }
            size_t i;
            json_t *v;
            json_array_foreach(input, i, v) {
                if (!json_is_string(v) && !json_is_array(v)) {
                    http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%zu] must be a string or an array of token ids", i);
                    return;
                }
                items[i] = v;
                ids_form[i] = json_is_array(v);
            }
            n = (int)json_array_size(input);
        }
    } else {
        http_reply_error(req, API_ERR_BAD_REQUEST, "input",
                         json_is_array(input) ? "input is an empty array"
                                              : "input must be a string, an array of strings, an array of token ids or an array of such arrays");
        return;
    }
    inputs = calloc((size_t)n, sizeof *inputs);
    lens = calloc((size_t)n, sizeof *lens);
    if (!inputs || !lens) goto oom;
    int vocab = model_hp(sm->m)->n_vocab, total = 0;
    for (int i = 0; i < n; i++) {
        if (ids_form[i]) {
            size_t k = json_array_size(items[i]);
            if (k == 0) {
                http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%d] is an empty array", i);
                goto out;
            }
            if (!(inputs[i] = malloc(k * sizeof(int32_t)))) goto oom;
            for (size_t j = 0; j < k; j++) {
                json_t *v = json_array_get(items[i], j);
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= vocab) {
                    http_reply_error(req, API_ERR_INVALID_VALUE, "input", "input[%d][%zu] must be a token id in [0, %d)", i, j, vocab);
                    goto out;
                }
                inputs[i][j] = (int32_t)json_integer_value(v);
            }
            lens[i] = (int)k;
        } else {
            if (json_string_length(items[i]) == 0) {
                http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%d] is an empty string", i);
                goto out;
            }
            if (!(inputs[i] = api__emb_tokenize(sm->tok, json_string_value(items[i]), json_string_length(items[i]), &lens[i])))
                goto oom;
        }
        if (lens[i] > sm->n_ctx) {
            if (!truncate) {
                http_reply_error(req, API_ERR_CONTEXT_LENGTH, "input",
                                 "input[%d] has %d tokens; this model takes at most %d (send \"truncate\": true to cut)",
                                 i, lens[i], sm->n_ctx);
                goto out;
            }
            api__truncate(sm->tok, inputs[i], &lens[i], sm->n_ctx);
        }
        total += lens[i];
    }
    api_emb_job *job = calloc(1, sizeof *job);
    if (!job) goto oom;
    snprintf(job->model, sizeof job->model, "%s", name);
    job->base64 = fmt && !strcmp(fmt, "base64");
    job->dimensions = (int)dims;
    job->prompt_tokens = total;
    if (!(job->p = http_defer(req))) {
        free(job);
        goto oom;
    }
    char err[512];
    int rc = emb_submit(sm->emb, inputs, lens, n, api__emb_done, job, err, sizeof err);
    if (rc != 0) {
        if (rc == -EAGAIN) http_reply_header(req, "Retry-After", "1");
        http_pending_reply_error(job->p, rc == -EAGAIN ? API_ERR_QUEUE_FULL : rc == -EINVAL ? API_ERR_INVALID_VALUE : API_ERR_INTERNAL,
                                 rc == -EINVAL ? "input" : NULL, "%s", err);
        http_pending_release(job->p);
        free(job);
    }
    goto out;
oom:
    http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
out:
    for (int i = 0; inputs && i < n; i++) free(inputs[i]);
    free(inputs);
    free(lens);
}
