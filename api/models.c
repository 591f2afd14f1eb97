/* models.c - GET /v1/models and GET /v1/models/{model} (OpenAI shapes).
 * No model is loaded by the daemon yet (the engine's serving issue adds
 * them), so the list is empty and every lookup is a 404. */
#include "app.h"
#include "http.h"
#include "routes.h"

void api_models_list(http_req *req) {
    http_reply_json(req, 200, json_pack("{s:s, s:[]}", "object", "list", "data"));
}

void api_models_get(http_req *req) {
    const char *name = http_req_param(req, "model");
    http_reply_error(req, API_ERR_NOT_FOUND, "model", "model '%s' is not served here", name);
}
