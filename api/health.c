/* health.c - GET /health, GET /ready, GET /metrics. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "http.h"
#include "routes.h"

void api_health(http_req *req) {
    http_reply_json(req, 200, json_pack("{s:s}", "status", "ok"));
}

void api_ready(http_req *req) {
    app *a = http_req_app(req);
    if (a->state == APP_READY) {
        http_reply_json(req, 200, json_pack("{s:s}", "status", "ready"));
        return;
    }
    http_reply_header(req, "Retry-After", "1");
    if (a->state == APP_DRAINING)
        http_reply_error(req, API_ERR_SHUTTING_DOWN, NULL, "the server is shutting down");
    else
        http_reply_error(req, API_ERR_NOT_READY, NULL, "models are still loading");
}

void api_metrics(http_req *req) {
    app *a = http_req_app(req);
    metrics_gauges g = {
        .in_flight = http_server_in_flight(a->http),
        .ready = a->state == APP_READY,
        .start_time = a->start_time,
    };
    metrics_model ms[CFG_MAX_MODELS];
    static metrics_adapter ads[CFG_MAX_MODELS][MODELS_MAX_ADAPTERS]; /* loop thread only; off the stack */
    int n = 0;
    if (a->state != APP_STARTING)
        for (int i = 0; i < a->models.n; i++)
            if (a->models.items[i].emb) {
                served_model *sm = &a->models.items[i];
                memset(&ms[n], 0, sizeof ms[n]);
                ms[n].name = sm->cfg->name;
                ms[n].has_sched = sm->sched != NULL;
                if (sm->sched) sched_stats_get(sm->sched, &ms[n].st);
                emb_stats_get(sm->emb, &ms[n].emb);
                for (int k = 0; k < sm->n_adapters; k++)
                    ads[n][k] = (metrics_adapter){sm->adapters[k].name, atomic_load(&sm->adapters[k].requests)};
                ms[n].adapters = ads[n];
                ms[n].n_adapters = sm->n_adapters;
                n++;
            }
    size_t len;
    char *text = metrics_render(a->metrics, &g, ms, n, &len);
    if (!text) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot render metrics");
        return;
    }
    http_reply_data(req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
    free(text);
}
