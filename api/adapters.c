/* adapters.c - the adapter registry of the closed loop (store_train.h):
 *   GET  /v1/adapters                 every model's adapters, newest first
 *   POST /v1/adapters/{id}/activate   serve it (also a rollback to an older
 *                                     one); id "base" with {"model"} goes
 *                                     back to the base model
 * Activation reads the adapter folder on the loop thread (a small LoRA) and
 * publishes it between engine steps (models_adapter_install). */
#include <errno.h>
#include <string.h>

#include "api_error.h"
#include "app.h"
#include "http.h"
#include "routes.h"
#include "trainer.h"

static json_t *api__ad_json(const store_adapter *d)
{
    json_t *m = d->metrics ? json_loads(d->metrics, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:s, s:I, s:o, s:o, s:s, s:o, s:s, s:s, s:I, s:o}", "id", d->id,
                     "object", "adapter", "model", d->model, "version", (json_int_t)d->version,
                     "parent_id", d->parent_id ? json_string(d->parent_id) : json_null(), "run_id",
                     d->run_id ? json_string(d->run_id) : json_null(), "status", d->status, "metrics",
                     m ? m : json_null(), "path", d->path, "sha256", d->sha256, "created_at",
                     (json_int_t)(d->created_at / 1000), "reason",
                     d->reason ? json_string(d->reason) : json_null());
}

void api_adapters_list(http_req *req)
{
    app *a = http_req_app(req);
    store_adapter *rows = NULL;
    size_t n = 0;
    char err[512];
    if (store_adapter_list(a->store, NULL, &rows, &n, err, sizeof err)) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api__ad_json(&rows[i]));
    store_adapter_list_free(rows, n);
    http_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

/* The model of the activation: the adapter's, or the body's for "base". */
static served_model *api__ad_model(http_req *req, const char *id)
{
    app *a = http_req_app(req);
    json_t *body = http_req_json(req), *jm = json_is_object(body) ? json_object_get(body, "model") : NULL;
    char name[CFG_MODEL_NAME_MAX] = "";
    if (jm && json_is_string(jm)) {
        snprintf(name, sizeof name, "%s", json_string_value(jm));
    } else if (strcmp(id, MODELS_BASE_NAME)) {
        store_adapter d;
        char err[256];
        if (store_adapter_get(a->store, id, &d, err, sizeof err)) {
            http_reply_error(req, API_ERR_ADAPTER_NOT_FOUND, "id", "no adapter with id '%s'", id);
            return NULL;
        }
        snprintf(name, sizeof name, "%s", d.model);
        store_adapter_clear(&d);
    } else if (a->models.n == 1) {
        snprintf(name, sizeof name, "%s", a->models.items[0].cfg->name);
    } else {
        http_reply_error(req, API_ERR_BAD_REQUEST, "model", "model is required to go back to the base");
        return NULL;
    }
    served_model *sm = models_find(&a->models, name);
    if (!sm)
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here", name);
    return sm;
}

void api_adapters_activate(http_req *req)
{
    app *a = http_req_app(req);
    const char *id = http_req_param(req, "id");
    served_model *sm = api__ad_model(req, id);
    if (!sm)
        return;
    char err[512];
    int rc = trainer_activate(a->store, sm, id, err, sizeof err);
    if (rc == -ENOENT)
        http_reply_error(req, API_ERR_ADAPTER_NOT_FOUND, "id", "%s", err);
    else if (rc == -EINVAL)
        http_reply_error(req, API_ERR_INVALID_VALUE, "model", "%s", err);
    else if (rc)
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else
        http_reply_json(req, 200, json_pack("{s:s, s:s, s:s}", "object", "adapter.activation", "model",
                                            sm->cfg->name, "active", id));
}
