/* metrics.h - Prometheus metrics (text exposition format 0.0.4).
 * Threads: observe and render on the loop thread only. */
#ifndef METRICS_H
#define METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "embedder.h"
#include "scheduler.h"

typedef struct metrics metrics;

/* The closed loop's worker (server/trainer.h), when training is enabled. */
typedef struct metrics_training {
    const char *const *status_names; /* [5]: queued, running, succeeded, failed, cancelled */
    unsigned long long runs[5];      /* runs this process finished, by status index */
    long long step;                  /* optimizer step of the current run; 0 idle */
    int last_status;                 /* status index of the newest finished run; -1 none */
    bool leader;                     /* this daemon holds the store's trainer lock */
} metrics_training;

typedef struct metrics_gauges {
    unsigned in_flight;       /* HTTP requests in flight */
    int ready;                /* 1 when /ready answers 200 */
    double start_time;        /* process start, seconds since the epoch */
    const metrics_training *training; /* NULL: training disabled (no series) */
} metrics_gauges;

metrics *metrics_create(void);
void metrics_free(metrics *m); /* accepts NULL */

/* Counts one finished request. `route` is the route pattern, or NULL for
 * unmatched paths (label "unmatched", so scanners cannot blow up the series). */
void metrics_observe_http(metrics *m, const char *route, const char *method, unsigned status,
                          double seconds);

/* Generation requests that named one LoRA adapter of a model. */
typedef struct metrics_adapter {
    const char *name;
    unsigned long long requests;
} metrics_adapter;

/* One served model's scheduler counters, for the model-labelled series. */
typedef struct metrics_model {
    const char *name;
    bool has_sched;   /* decoders; encoders only embed */
    sched_stats st;
    emb_stats emb;
    const metrics_adapter *adapters; /* [n_adapters], borrowed */
    int n_adapters;
    bool has_loop;              /* the closed loop trains this model */
    long long active_version;   /* its active adapter's version; 0: the base */
    long long pairs_since;      /* feedback pairs since its last run was created */
} metrics_model;

/* Returns the exposition text (malloc'd, caller frees) and its length. */
char *metrics_render(const metrics *m, const metrics_gauges *g, const metrics_model *models,
                     int n_models, size_t *len);

#endif
