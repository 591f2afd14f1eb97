/* metrics.c - HTTP request counters and latency histograms, rendered with
 * the process gauges in Prometheus text format. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const double metrics__buckets[] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                          0.5,   1,     2.5,  5,     10,   30,  60};
#define METRICS__NB (sizeof metrics__buckets / sizeof metrics__buckets[0])

typedef struct metrics__counter {
    const char *route, *method; /* route patterns are static; methods interned below */
    unsigned status;
    unsigned long long count;
} metrics__counter;

typedef struct metrics__hist {
    const char *route, *method;
    unsigned long long buckets[METRICS__NB]; /* non-cumulative; summed when rendered */
    unsigned long long count;
    double sum;
} metrics__hist;

struct metrics {
    metrics__counter *counters;
    size_t n_counters, cap_counters;
    metrics__hist *hists;
    size_t n_hists, cap_hists;
};

/* Methods come from clients: keep the known ones, lump the rest. */
static const char *metrics__method(const char *m) {
    static const char *known[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(m, known[i]) == 0) return known[i];
    return "other";
}

metrics *metrics_create(void) { return calloc(1, sizeof(metrics)); }

void metrics_free(metrics *m) {
    if (!m) return;
    free(m->counters);
    free(m->hists);
    free(m);
}

static void *metrics__grow(void *arr, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return arr;
    size_t nc = *cap ? *cap * 2 : 16;
    void *na = realloc(arr, nc * elem);
    if (!na) return NULL;
    memset((char *)na + *cap * elem, 0, (nc - *cap) * elem);
    *cap = nc;
    return na;
}

void metrics_observe_http(metrics *m, const char *route, const char *method, unsigned status,
                          double seconds) {
    route = route ? route : "unmatched";
    method = metrics__method(method);
    size_t i;
    for (i = 0; i < m->n_counters; i++) {
        metrics__counter *c = &m->counters[i];
        if (c->status == status && c->method == method && strcmp(c->route, route) == 0) break;
    }
    if (i == m->n_counters) {
        metrics__counter *nc = metrics__grow(m->counters, &m->cap_counters, m->n_counters, sizeof *nc);
        if (!nc) return;
        m->counters = nc;
        m->counters[m->n_counters++] = (metrics__counter){route, method, status, 0};
    }
    m->counters[i].count++;

    for (i = 0; i < m->n_hists; i++)
        if (m->hists[i].method == method && strcmp(m->hists[i].route, route) == 0) break;
    if (i == m->n_hists) {
        metrics__hist *nh = metrics__grow(m->hists, &m->cap_hists, m->n_hists, sizeof *nh);
        if (!nh) return;
        m->hists = nh;
        memset(&m->hists[m->n_hists], 0, sizeof *nh);
        m->hists[m->n_hists].route = route;
        m->hists[m->n_hists].method = method;
        m->n_hists++;
    }
    metrics__hist *h = &m->hists[i];
    for (size_t b = 0; b < METRICS__NB; b++)
        if (seconds <= metrics__buckets[b]) {
            h->buckets[b]++;
            break;
        }
    h->count++;
    h->sum += seconds;
}

static long metrics__rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%ld %ld", &pages, &rss) != 2) rss = 0;
    fclose(f);
    return rss * sysconf(_SC_PAGESIZE);
}

static void metrics__sched_hist(FILE *f, const char *name, const char *mname, const sched_hist *h) {
    unsigned long long cum = 0;
    for (int b = 0; b < SCHED_HIST_BUCKETS; b++) {
        cum += h->buckets[b];
        fprintf(f, "%s_bucket{model=\"%s\",le=\"%g\"} %llu\n", name, mname, sched_hist_bounds[b], cum);
    }
    fprintf(f, "%s_bucket{model=\"%s\",le=\"+Inf\"} %llu\n%s_sum{model=\"%s\"} %.6f\n"
               "%s_count{model=\"%s\"} %llu\n",
            name, mname, h->count, name, mname, h->sum, name, mname, h->count);
}

/* The scheduler series: one family at a time, a sample per model. */
static void metrics__models(FILE *f, const metrics_model *ms, int n) {
    static const struct { const char *name, *type, *help; } fam[] = {
        {"alignd_queue_depth", "gauge", "Requests waiting for a sequence slot."},
        {"alignd_running_sequences", "gauge", "Sequences being generated."},
        {"alignd_kv_blocks_used", "gauge", "KV-cache blocks in use."},
        {"alignd_kv_blocks_free", "gauge", "KV-cache blocks free."},
        {"alignd_kv_blocks_cached", "gauge", "KV-cache blocks only the prefix cache holds (reclaimed when wanted)."},
        {"alignd_prompt_tokens_total", "counter", "Prompt tokens processed (recomputation included)."},
        {"alignd_generated_tokens_total", "counter", "Tokens generated."},
        {"alignd_engine_steps_total", "counter", "Engine steps (forward passes over a batch)."},
        {"alignd_preemptions_total", "counter", "Sequences preempted for lack of KV blocks."},
        {"alignd_prefix_cache_hits_total", "counter", "Prompts that reused KV blocks of the prefix cache."},
        {"alignd_prefix_cache_tokens_total", "counter", "Prompt positions taken from the prefix cache instead of computed."},
        {"alignd_prefix_cache_entries", "gauge", "Finished prompts whose KV blocks the prefix cache holds."},
    };
    static const struct { const char *name, *type, *help; } efam[] = {
        {"alignd_embedding_queue_depth", "gauge", "Embedding requests waiting."},
        {"alignd_embedding_requests_total", "counter", "Embedding requests accepted."},
        {"alignd_embedding_inputs_total", "counter", "Embedding inputs computed."},
        {"alignd_embedding_tokens_total", "counter", "Tokens run through embedding passes."},
        {"alignd_embedding_batches_total", "counter", "Embedding forward passes (each holds one or more requests)."},
    };
    for (size_t k = 0; k < sizeof efam / sizeof efam[0]; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", efam[k].name, efam[k].help, efam[k].name, efam[k].type);
        for (int i = 0; i < n; i++) {
            const emb_stats *e = &ms[i].emb;
            unsigned long long v[] = {(unsigned long long)e->queued, e->requests, e->inputs, e->tokens, e->batches};
            fprintf(f, "%s{model=\"%s\"} %llu\n", efam[k].name, ms[i].name, v[k]);
        }
    }
    for (size_t k = 0; k < sizeof fam / sizeof fam[0]; k++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[k].name, fam[k].help, fam[k].name, fam[k].type);
        for (int i = 0; i < n; i++) {
            if (!ms[i].has_sched) continue;
            const sched_stats *st = &ms[i].st;
            unsigned long long v[] = {(unsigned long long)st->waiting, (unsigned long long)st->running,
                                      (unsigned long long)st->kv_blocks_used,
                                      (unsigned long long)(st->kv_blocks_total - st->kv_blocks_used -
                                                           st->kv_blocks_cached),
                                      (unsigned long long)st->kv_blocks_cached,
                                      st->prompt_tokens, st->generated_tokens, st->steps, st->preemptions,
                                      st->prefix_hits, st->prefix_tokens,
                                      (unsigned long long)st->prefix_entries};
            fprintf(f, "%s{model=\"%s\"} %llu\n", fam[k].name, ms[i].name, v[k]);
        }
    }
    fprintf(f, "# HELP alignd_adapter_requests_total Generation requests that named a LoRA adapter.\n"
               "# TYPE alignd_adapter_requests_total counter\n");
    for (int i = 0; i < n; i++)
        for (int k = 0; k < ms[i].n_adapters; k++)
            fprintf(f, "alignd_adapter_requests_total{model=\"%s\",adapter=\"%s\"} %llu\n", ms[i].name,
                    ms[i].adapters[k].name, ms[i].adapters[k].requests);
    fprintf(f, "# HELP alignd_adapter_active_version Version of the closed loop's active adapter "
               "(0: the base model serves).\n# TYPE alignd_adapter_active_version gauge\n");
    for (int i = 0; i < n; i++)
        if (ms[i].has_loop)
            fprintf(f, "alignd_adapter_active_version{model=\"%s\"} %lld\n", ms[i].name, ms[i].active_version);
    fprintf(f, "# HELP alignd_feedback_pairs_since_last_run Preference pairs stored since the model's "
               "last training run was created (what training.min_new_pairs compares).\n"
               "# TYPE alignd_feedback_pairs_since_last_run gauge\n");
    for (int i = 0; i < n; i++)
        if (ms[i].has_loop)
            fprintf(f, "alignd_feedback_pairs_since_last_run{model=\"%s\"} %lld\n", ms[i].name,
                    ms[i].pairs_since);
    fprintf(f, "# HELP alignd_requests_finished_total Generations finished, by reason.\n"
               "# TYPE alignd_requests_finished_total counter\n");
    for (int i = 0; i < n; i++)
        for (int r = SCHED_FINISH_LENGTH; r <= SCHED_FINISH_ERROR && ms[i].has_sched; r++)
            fprintf(f, "alignd_requests_finished_total{model=\"%s\",reason=\"%s\"} %llu\n", ms[i].name,
                    sched_finish_name((sched_finish)r), ms[i].st.requests_finished[r]);
    fprintf(f, "# HELP alignd_time_to_first_token_seconds From request to its first generated token.\n"
               "# TYPE alignd_time_to_first_token_seconds histogram\n");
    for (int i = 0; i < n; i++)
        if (ms[i].has_sched) metrics__sched_hist(f, "alignd_time_to_first_token_seconds", ms[i].name, &ms[i].st.ttft);
    fprintf(f, "# HELP alignd_inter_token_latency_seconds Between two generated tokens of one sequence.\n"
               "# TYPE alignd_inter_token_latency_seconds histogram\n");
    for (int i = 0; i < n; i++)
        if (ms[i].has_sched) metrics__sched_hist(f, "alignd_inter_token_latency_seconds", ms[i].name, &ms[i].st.itl);
}

/* The closed loop's worker: finished runs by status, the current step and
 * the newest finished run's status as a state set. */
static void metrics__training(FILE *f, const metrics_training *t) {
    static const int finished[] = {2, 3, 4}; /* succeeded, failed, cancelled */
    fprintf(f, "# HELP alignd_training_runs_total Training runs this process finished, by final status.\n"
               "# TYPE alignd_training_runs_total counter\n");
    for (size_t k = 0; k < sizeof finished / sizeof finished[0]; k++)
        fprintf(f, "alignd_training_runs_total{status=\"%s\"} %llu\n", t->status_names[finished[k]],
                t->runs[finished[k]]);
    fprintf(f, "# HELP alignd_training_step Optimizer step of the running training run (0: idle).\n"
               "# TYPE alignd_training_step gauge\n"
               "alignd_training_step %lld\n", t->step);
    fprintf(f, "# HELP alignd_training_last_run_status Status of the newest finished training run: "
               "1 on its status label, 0 on the others (all 0: no run finished yet).\n"
               "# TYPE alignd_training_last_run_status gauge\n");
    for (size_t k = 0; k < sizeof finished / sizeof finished[0]; k++)
        fprintf(f, "alignd_training_last_run_status{status=\"%s\"} %d\n", t->status_names[finished[k]],
                t->last_status == finished[k]);
    fprintf(f, "# HELP alignd_trainer_leader 1 when this daemon holds the store's trainer lock "
               "(it alone trains among the daemons sharing the store).\n"
               "# TYPE alignd_trainer_leader gauge\n"
               "alignd_trainer_leader %d\n", t->leader);
}

char *metrics_render(const metrics *m, const metrics_gauges *g, const metrics_model *models,
                     int n_models, size_t *len) {
    char *buf = NULL;
    size_t n = 0;
    FILE *f = open_memstream(&buf, &n);
    if (!f) return NULL;
    fprintf(f, "# HELP alignd_build_info Build of the running daemon.\n"
               "# TYPE alignd_build_info gauge\n"
               "alignd_build_info{version=\"%s\",commit=\"%s\"} 1\n",
            ALIGND_VERSION, ALIGND_COMMIT);
    fprintf(f, "# HELP process_start_time_seconds Start time of the process since the epoch.\n"
               "# TYPE process_start_time_seconds gauge\n"
               "process_start_time_seconds %.3f\n", g->start_time);
    fprintf(f, "# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
               "# TYPE process_resident_memory_bytes gauge\n"
               "process_resident_memory_bytes %ld\n", metrics__rss_bytes());
    fprintf(f, "# HELP alignd_ready 1 when every configured model is loaded and the daemon is not shutting down.\n"
               "# TYPE alignd_ready gauge\n"
               "alignd_ready %d\n", g->ready);
    fprintf(f, "# HELP alignd_http_requests_in_flight HTTP requests being served.\n"
               "# TYPE alignd_http_requests_in_flight gauge\n"
               "alignd_http_requests_in_flight %u\n", g->in_flight);
    fprintf(f, "# HELP alignd_http_requests_total HTTP requests finished, by route, method and status.\n"
               "# TYPE alignd_http_requests_total counter\n");
    for (size_t i = 0; i < m->n_counters; i++) {
        const metrics__counter *c = &m->counters[i];
        fprintf(f, "alignd_http_requests_total{route=\"%s\",method=\"%s\",status=\"%u\"} %llu\n",
                c->route, c->method, c->status, c->count);
    }
    fprintf(f, "# HELP alignd_http_request_duration_seconds Time from request headers to the end of the response.\n"
               "# TYPE alignd_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < m->n_hists; i++) {
        const metrics__hist *h = &m->hists[i];
        unsigned long long cum = 0;
        for (size_t b = 0; b < METRICS__NB; b++) {
            cum += h->buckets[b];
            fprintf(f, "alignd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"%g\"} %llu\n",
                    h->route, h->method, metrics__buckets[b], cum);
        }
        fprintf(f, "alignd_http_request_duration_seconds_bucket{route=\"%s\",method=\"%s\",le=\"+Inf\"} %llu\n"
                   "alignd_http_request_duration_seconds_sum{route=\"%s\",method=\"%s\"} %.6f\n"
                   "alignd_http_request_duration_seconds_count{route=\"%s\",method=\"%s\"} %llu\n",
                h->route, h->method, h->count, h->route, h->method, h->sum, h->route, h->method,
                h->count);
    }
    if (g->training) metrics__training(f, g->training);
    if (n_models > 0) metrics__models(f, models, n_models);
    fclose(f);
    if (len) *len = n;
    return buf;
}
