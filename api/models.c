/* models.c - GET /v1/models and GET /v1/models/{model} (OpenAI shapes, with
 * an alignd-specific "meta" object describing each model). A model's LoRA
 * adapters are listed after it as "MODEL:ADAPTER" with "parent": "MODEL",
 * as vLLM lists its LoRA modules. */
#include <string.h>

#include "app.h"
#include "http.h"
#include "routes.h"
#include "trn_lora.h"

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

/* The entry of adapter slot of sm, from its current version. */
static json_t *api__adapter_json(served_model *sm, adapter_slot *slot) {
    served_adapter *ad = models_adapter_get(sm, slot->name);
    if (!ad) return NULL;
    const trn_lora *lo = ad->lora;
    json_t *targets = json_array();
    for (int t = 0; t < TRN_LORA_N_TARGETS; t++)
        if (lo->cfg.targets >> t & 1u) json_array_append_new(targets, json_string(trn_lora_target_name(t)));
    char id[2 * CFG_MODEL_NAME_MAX];
    snprintf(id, sizeof id, "%s:%s", sm->cfg->name, slot->name);
    json_t *j = json_pack("{s:s, s:s, s:I, s:s, s:s, s:{s:s, s:s, s:i, s:f, s:o}}", "id", id, "object", "model",
                          "created", (json_int_t)ad->created, "owned_by", "alignd", "parent", sm->cfg->name,
                          "meta", "type", "lora", "adapter", slot->name, "rank", lo->cfg.rank, "alpha",
                          (double)lo->cfg.alpha, "targets", targets);
    models_adapter_put(ad);
    return j;
}

void api_models_list(http_req *req) {
    app *a = http_req_app(req);
    json_t *data = json_array();
    for (int i = 0; a->state != APP_STARTING && i < a->models.n; i++) {
        served_model *sm = &a->models.items[i];
        json_array_append_new(data, api__model_json(sm));
        for (int k = 0; k < sm->n_adapters; k++) {
            json_t *e = api__adapter_json(sm, &sm->adapters[k]);
            if (e) json_array_append_new(data, e);
        }
    }
    http_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

void api_models_get(http_req *req) {
    app *a = http_req_app(req);
    const char *name = http_req_param(req, "model");
    char base[CFG_MODEL_NAME_MAX] = "";
    size_t len = strcspn(name, ":");
    if (len < sizeof base) memcpy(base, name, len);
    served_model *sm = a->state != APP_STARTING && len < sizeof base ? models_find(&a->models, base) : NULL;
    if (!sm) {
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%.*s' is not served here", (int)len, name);
        return;
    }
    if (!name[len]) {
        http_reply_json(req, 200, api__model_json(sm));
        return;
    }
    adapter_slot *slot = models_adapter_slot(sm, name + len + 1);
    json_t *e = slot ? api__adapter_json(sm, slot) : NULL;
    if (!e) {
        http_reply_error(req, API_ERR_ADAPTER_NOT_FOUND, "model", "adapter '%s' of model '%s' is not served here",
                         name + len + 1, sm->cfg->name);
        return;
    }
    http_reply_json(req, 200, e);
}
