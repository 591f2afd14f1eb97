/* classify.c - POST /v1/classify (CLIP zero-shot classification) and
 * POST /v1/images/embeddings; CLIP text embeddings come through
 * /v1/embeddings (api/embeddings.c calls api_clip_text_embeddings). The work
 * (image decoding included) runs on the model's CLIP batcher thread. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "classify.h"
#include "classify_req.h"
#include "fields.h"
#include "routes.h"


typedef enum { API_CLIP_CLASSIFY, API_CLIP_IMAGE_EMB, API_CLIP_TEXT_EMB } api_clip_kind;

typedef struct api_clip_job {
    http_pending *p;
    api_clip_kind kind;
    char model[CFG_MODEL_NAME_MAX];
    int top_k;
    int prompt_tokens;
    char **labels;  /* [n_labels], classify only */
    int n_labels;
} api_clip_job;

static void api__clip_job_free(api_clip_job *j) {
    for (int i = 0; j->labels && i < j->n_labels; i++) free(j->labels[i]);
    free(j->labels);
    http_pending_release(j->p);
    free(j);
}

static json_t *api__vec(const float *v, int n) {
    json_t *a = json_array();
    for (int i = 0; i < n; i++) json_array_append_new(a, json_real(v[i]));
    return a;
}

/* CLIP batcher thread. */
static void api__clip_done(void *ud, int status, const float *probs, const float *logits, int n,
                           const float *emb, int dim, const char *error) {
    api_clip_job *j = ud;
    if (status != 0) {
        if (status == -EINVAL) /* the image was bad */
            http_pending_reply_error(j->p, API_ERR_BAD_REQUEST, "image", "image: %s", error);
        else
            http_pending_reply_error(j->p, status == -ECANCELED ? API_ERR_SHUTTING_DOWN : API_ERR_INTERNAL,
                                     NULL, "%s", error ? error : "classification failed");
        api__clip_job_free(j);
        return;
    }
    json_t *usage = json_pack("{s:i, s:i}", "prompt_tokens", j->prompt_tokens, "total_tokens", j->prompt_tokens);
    if (j->kind == API_CLIP_CLASSIFY) {
        int *order = malloc((size_t)n * sizeof *order);
        json_t *data = json_array();
        for (int i = 0; order && i < n; i++) order[i] = i;
        for (int i = 1; order && i < n; i++) /* insertion sort by probability, stable */
            for (int k = i; k > 0 && probs[order[k]] > probs[order[k - 1]]; k--) {
                int t = order[k];
                order[k] = order[k - 1];
                order[k - 1] = t;
            }
        for (int i = 0; order && i < n && i < j->top_k; i++)
            json_array_append_new(data, json_pack("{s:s, s:i, s:f, s:f}", "label", j->labels[order[i]], "index",
                                                  order[i], "probability", (double)probs[order[i]], "logit",
                                                  (double)logits[order[i]]));
        free(order);
        http_pending_reply_json(j->p, 200, json_pack("{s:s, s:s, s:o, s:o}", "object", "classification",
                                                     "model", j->model, "data", data, "usage", usage));
    } else {
        json_t *data = json_array();
        int rows = j->kind == API_CLIP_TEXT_EMB ? n : 1;
        for (int i = 0; i < rows; i++)
            json_array_append_new(data, json_pack("{s:s, s:i, s:o}", "object", "embedding", "index", i, "embedding",
                                                  api__vec(emb + (size_t)i * (size_t)dim, dim)));
        http_pending_reply_json(j->p, 200, json_pack("{s:s, s:o, s:s, s:o}", "object", "list", "data", data,
                                                     "model", j->model, "usage", usage));
    }
    api__clip_job_free(j);
}

/* Tokenizes one prompt for CLIP's 77-token text tower (truncated keeping the
 * end token, as Hugging Face's truncation=True does). */
static int32_t *api__clip_tokens(const served_model *sm, const char *text, int *n_out) {
    size_t len = strlen(text), cap = len + 8, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    tok_err e;
    if (!ids || tok_encode(sm->tok, text, len, TOK_ENC_ADD_SPECIAL, ids, cap, &n, &e) != 0) {
        free(ids);
        return NULL;
    }
    if ((int)n > sm->n_ctx) {
        ids[sm->n_ctx - 1] = ids[n - 1];
        n = (size_t)sm->n_ctx;
    }
    *n_out = (int)n;
    return ids;
}

/* Submits a job; answers the request on failure. prompts are freed here. */
static void api__clip_submit(http_req *req, served_model *sm, api_clip_job *j, const char *image,
                             size_t image_len, int32_t **prompts, int *lens, int n_labels, int n_templates) {
    int n_prompts = n_labels * n_templates;
    for (int i = 0; i < n_prompts; i++) j->prompt_tokens += lens[i];
    if (!(j->p = http_defer(req))) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot defer the reply");
        api__clip_job_free(j);
        goto out;
    }
    clip_request r = {.image = image, .image_len = image_len, .n_labels = n_labels, .n_templates = n_templates,
                      .prompts = prompts, .prompt_lens = lens, .done = api__clip_done, .ud = j};
    char err[512];
    int rc = clip_batcher_submit(sm->clipb, &r, err, sizeof err);
    if (rc != 0) {
        if (rc == -EAGAIN) http_reply_header(req, "Retry-After", "1");
        http_pending_reply_error(j->p, rc == -EAGAIN ? API_ERR_QUEUE_FULL : API_ERR_INVALID_VALUE, NULL, "%s", err);
        api__clip_job_free(j);
    }
out:
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(lens);
}

/* The CLIP model named in body, or NULL with the request answered. */
static served_model *api__clip_model(http_req *req, json_t *body) {
    app *a = http_req_app(req);
    const char *name = NULL;
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return NULL;
    }
    if (api_field_required_string(req, body, "model", &name)) return NULL;
    served_model *sm = models_find(&a->models, name);
    if (!sm) {
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here (see GET /v1/models)", name);
        return NULL;
    }
    if (!sm->clip) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "model", "model '%s' is not a CLIP model", name);
        return NULL;
    }
    return sm;
}

void api_classify(http_req *req) {
    json_t *body = http_req_json(req);
    served_model *sm = api__clip_model(req, body);
    if (!sm) return;
    api_classify_req cr;
    api_req_error e;
    if (api_classify_parse(body, &cr, &e) != 0) {
        http_reply_error(req, e.code, e.param, "%s", e.msg);
        return;
    }
    api_clip_job *j = calloc(1, sizeof *j);
    int n_prompts = (int)cr.n_labels * cr.n_templates;
    int32_t **prompts = calloc((size_t)n_prompts, sizeof *prompts);
    int *lens = calloc((size_t)n_prompts, sizeof *lens);
    if (!j || !prompts || !lens || !(j->labels = calloc(cr.n_labels, sizeof *j->labels))) goto oom;
    j->kind = API_CLIP_CLASSIFY;
    j->n_labels = (int)cr.n_labels;
    j->top_k = cr.top_k;
    snprintf(j->model, sizeof j->model, "%s", sm->cfg->name);
    for (size_t l = 0; l < cr.n_labels; l++) {
        if (!(j->labels[l] = strdup(cr.labels[l]))) goto oom;
        for (int t = 0; t < cr.n_templates; t++) {
            char *text = api_classify_prompt(cr.templates[t], cr.labels[l]);
            int k = (int)l * cr.n_templates + t;
            prompts[k] = text ? api__clip_tokens(sm, text, &lens[k]) : NULL;
            free(text);
            if (!prompts[k]) goto oom;
        }
    }
    api__clip_submit(req, sm, j, cr.image, cr.image_len, prompts, lens, (int)cr.n_labels, cr.n_templates);
    return;
oom:
    for (int i = 0; prompts && i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(lens);
    if (j) api__clip_job_free(j);
    http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
}

void api_image_embeddings(http_req *req) {
    json_t *body = http_req_json(req);
    served_model *sm = api__clip_model(req, body);
    if (!sm) return;
    const char *image = NULL;
    if (api_field_required_string(req, body, "image", &image)) return;
    api_clip_job *j = calloc(1, sizeof *j);
    if (!j) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return;
    }
    j->kind = API_CLIP_IMAGE_EMB;
    snprintf(j->model, sizeof j->model, "%s", sm->cfg->name);
    api__clip_submit(req, sm, j, image, strlen(image), calloc(1, sizeof(int32_t *)), calloc(1, sizeof(int)), 0, 1);
}

void api_clip_text_embeddings(http_req *req, served_model *sm, char **texts, int n) {
    api_clip_job *j = calloc(1, sizeof *j);
    int32_t **prompts = calloc((size_t)n, sizeof *prompts);
    int *lens = calloc((size_t)n, sizeof *lens);
    if (!j || !prompts || !lens) goto oom;
    j->kind = API_CLIP_TEXT_EMB;
    snprintf(j->model, sizeof j->model, "%s", sm->cfg->name);
    for (int i = 0; i < n; i++)
        if (!(prompts[i] = api__clip_tokens(sm, texts[i], &lens[i]))) goto oom;
    api__clip_submit(req, sm, j, NULL, 0, prompts, lens, n, 1);
    return;
oom:
    for (int i = 0; prompts && i < n; i++) free(prompts[i]);
    free(prompts);
    free(lens);
    if (j) api__clip_job_free(j);
    http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
}
