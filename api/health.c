/* health.c - GET /health, GET /ready, GET /metrics. */
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "http.h"
#include "routes.h"
#include "store_train.h"
#include "trainer.h"

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

/* The loop's per-model gauges: active adapter version, pairs since the last
 * run (two small SQLite reads per model with a loop). */
static void api__loop_gauges(app *a, served_model *sm, metrics_model *mm) {
    char err[256];
    store_adapter ad;
    int64_t last = 0, pairs = 0;
    if (!a->trainer || !models_adapter_slot(sm, MODELS_LOOP_SLOT)) return;
    mm->has_loop = true;
    if (store_adapter_active(a->store, sm->cfg->name, &ad, err, sizeof err) == 0) {
        mm->active_version = (long long)ad.version;
        store_adapter_clear(&ad);
    }
    if (store_run_last_created(a->store, sm->cfg->name, &last, err, sizeof err) == 0 &&
        store_pairs_since(a->store, last, &pairs, err, sizeof err) == 0)
        mm->pairs_since = (long long)pairs;
}

/* The worker's counters; before this process finished a run, the newest
 * stored run's status (e.g. "failed" for one a restart interrupted). */
static void api__training(app *a, metrics_training *mt) {
    trainer_stats ts;
    trainer_get_stats(a->trainer, &ts);
    mt->status_names = trainer_status_names;
    for (int i = 0; i < 5; i++) mt->runs[i] = ts.runs[i];
    mt->step = ts.step;
    mt->last_status = ts.last_status;
    mt->leader = ts.leader;
    store_run *rows = NULL;
    size_t n = 0;
    char err[256];
    if (mt->last_status < 0 && store_run_list(a->store, 1, &rows, &n, err, sizeof err) == 0) {
        for (int i = 2; n > 0 && rows[0].status && i < 5; i++)
            if (!strcmp(rows[0].status, trainer_status_names[i])) mt->last_status = i;
        store_run_list_free(rows, n);
    }
}

void api_metrics(http_req *req) {
    app *a = http_req_app(req);
    metrics_gauges g = {
        .in_flight = http_server_in_flight(a->http),
        .ready = a->state == APP_READY,
        .start_time = a->start_time,
    };
    metrics_training mt;
    if (a->trainer) {
        api__training(a, &mt);
        g.training = &mt;
    }
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
                api__loop_gauges(a, sm, &ms[n]);
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
