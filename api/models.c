/* models.c - GET /v1/models and GET /v1/models/{model} (OpenAI shapes, with
 * an alignd-specific "meta" object describing each model). */
#include "app.h"
#include "http.h"
#include "routes.h"

static json_t *api__model_json(const served_model *sm) {
    if (sm->clip) {
        const clip_hparams *ch = clip_hp(sm->clip);
        return json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:i, s:i, s:i}}", "id", sm->cfg->name, "object",
                         "model", "created", (json_int_t)sm->created, "owned_by", "alignd", "meta",
                         "architecture", "clip", "image_size", ch->image_size, "n_ctx", ch->text_ctx,
                         "embedding_dim", ch->proj_dim);
    }
    const model_hparams *hp = model_hp(sm->m);
    return json_pack("{s:s, s:s, s:I, s:s, s:{s:s, s:i, s:i, s:i, s:i, s:I, s:s?}}", "id",
                     sm->cfg->name, "object", "model", "created", (json_int_t)sm->created, "owned_by",
                     "alignd", "meta", "architecture", model_arch_name(model_arch(sm->m)), "n_ctx",
                     sm->n_ctx, "n_vocab", hp->n_vocab, "n_embd", hp->n_embd, "n_layer", hp->n_layer,
                     "weight_bytes", (json_int_t)model_weight_bytes(sm->m), "chat_template",
                     sm->has_chat ? chat_template_name(sm->chat_kind) : NULL);
}

void api_models_list(http_req *req) {
    app *a = http_req_app(req);
    json_t *data = json_array();
    if (a->state != APP_STARTING)
        for (int i = 0; i < a->models.n; i++) json_array_append_new(data, api__model_json(&a->models.items[i]));
    http_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void api_models_get(http_req *req) {
    app *a = http_req_app(req);
    const char *name = http_req_param(req, "model");
    served_model *sm = a->state != APP_STARTING ? models_find(&a->models, name) : NULL;
    if (!sm) {
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here", name);
        return;
    }
    http_reply_json(req, 200, api__model_json(sm));
}
