/* training.c - the closed loop's runs (server/trainer.h):
 *   POST   /v1/training/runs       {"model"?, "kind"?: "dpo"|"reward"|"both"} -> 202 run
 *   GET    /v1/training/runs       newest first
 *   GET    /v1/training/runs/{id}  one run with its per-step history
 *   DELETE /v1/training/runs/{id}  cancel (checked between steps)
 * "model" may be left out when exactly one served model has a training
 * loop. Loop thread; the store writes are single small transactions. */
#include <errno.h>
#include <string.h>

#include "api_error.h"
#include "app.h"
#include "http.h"
#include "routes.h"
#include "trainer.h"

/* A JSON text column as a value (null when empty or not JSON). */
static json_t *api__json_col(const char *text)
{
    json_t *j = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

static json_t *api__ms(int64_t ms) { return ms ? json_integer((json_int_t)(ms / 1000)) : json_null(); }

json_t *api_training_run_json(const store_run *r, bool history);
json_t *api_training_run_json(const store_run *r, bool history)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}",
                          "id", r->id, "object", "training.run", "model", r->model, "kind", r->kind,
                          "trigger", r->trigger, "status", r->status, "created_at", api__ms(r->created_at),
                          "started_at", api__ms(r->started_at), "finished_at", api__ms(r->finished_at),
                          "pairs", (json_int_t)r->pairs, "config", api__json_col(r->config),
                          "metrics", api__json_col(r->metrics),
                          "error", r->error ? json_string(r->error) : json_null(),
                          "adapter_id", r->adapter_id ? json_string(r->adapter_id) : json_null());
    if (j && history)
        json_object_set_new(j, "history", api__json_col(r->history));
    return j;
}

/* The model a training request names, or the only one with a loop. */
static served_model *api__loop_model(http_req *req, const char *name)
{
    app *a = http_req_app(req);
    if (name) {
        served_model *sm = models_find(&a->models, name);
        if (!sm)
            http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here", name);
        else if (!models_adapter_slot(sm, MODELS_LOOP_SLOT))
            http_reply_error(req, API_ERR_INVALID_VALUE, "model", "model '%s' has no training loop "
                             "(a llama or gpt2 decoder, training.enabled)", name);
        else
            return sm;
        return NULL;
    }
    served_model *found = NULL;
    int n = 0;
    for (int i = 0; i < a->models.n; i++)
        if (models_adapter_slot(&a->models.items[i], MODELS_LOOP_SLOT))
            found = &a->models.items[i], n++;
    if (n > 1)
        http_reply_error(req, API_ERR_BAD_REQUEST, "model", "model is required: %d models have a training loop", n);
    else if (n == 0)
        http_reply_error(req, API_ERR_BAD_REQUEST, "model", "no served model has a training loop");
    return n == 1 ? found : NULL;
}

void api_training_create(http_req *req)
{
    app *a = http_req_app(req);
    json_t *body = http_req_json(req);
    if (!a->trainer) {
        http_reply_error(req, API_ERR_TRAINING_DISABLED, NULL,
                         "training is not running: training.enabled is false or no model is served");
        return;
    }
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return;
    }
    json_t *jm = json_object_get(body, "model"), *jk = json_object_get(body, "kind");
    if ((jm && !json_is_string(jm)) || (jk && !json_is_string(jk))) {
        http_reply_error(req, API_ERR_INVALID_VALUE, jm && !json_is_string(jm) ? "model" : "kind",
                         "must be a string");
        return;
    }
    const char *kind = jk ? json_string_value(jk) : "dpo";
    if (strcmp(kind, "dpo") && strcmp(kind, "reward") && strcmp(kind, "both")) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "kind", "kind must be dpo, reward or both");
        return;
    }
    served_model *sm = api__loop_model(req, jm ? json_string_value(jm) : NULL);
    if (!sm)
        return;
    store_run r;
    char err[512];
    int rc = trainer_submit(a->trainer, sm, kind, "api", &r, err, sizeof err);
    if (rc == -EBUSY)
        http_reply_error(req, API_ERR_TRAINING_BUSY, NULL, "%s", err);
    else if (rc)
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else
        http_reply_json(req, 202, api_training_run_json(&r, false));
    store_run_clear(&r);
}

void api_training_list(http_req *req)
{
    app *a = http_req_app(req);
    store_run *rows = NULL;
    size_t n = 0;
    char err[512];
    if (store_run_list(a->store, 0, &rows, &n, err, sizeof err)) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(data, api_training_run_json(&rows[i], false));
    store_run_list_free(rows, n);
    http_reply_json(req, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static void api__run_reply(http_req *req, const char *id)
{
    app *a = http_req_app(req);
    store_run r;
    char err[512];
    int rc = store_run_get(a->store, id, &r, err, sizeof err);
    if (rc == -ENOENT)
        http_reply_error(req, API_ERR_RUN_NOT_FOUND, "id", "no training run with id '%s'", id);
    else if (rc)
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else
        http_reply_json(req, 200, api_training_run_json(&r, true));
    store_run_clear(&r);
}

void api_training_get(http_req *req) { api__run_reply(req, http_req_param(req, "id")); }

void api_training_cancel(http_req *req)
{
    app *a = http_req_app(req);
    const char *id = http_req_param(req, "id");
    char err[512];
    int rc = a->trainer ? trainer_cancel(a->trainer, id, err, sizeof err) : -ENOENT;
    if (rc == -ENOENT)
        http_reply_error(req, API_ERR_RUN_NOT_FOUND, "id", "no training run with id '%s'", id);
    else if (rc == -EINVAL)
        http_reply_error(req, API_ERR_RUN_FINISHED, "id", "%s", err);
    else if (rc)
        http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else
        api__run_reply(req, id); /* a running run shows "cancelled" once its step ends */
}
