/* app.h - the daemon: its state, the loop thread's life from start-up to
 * graceful shutdown, and what handlers reach through http_req_app().
 *
 * Threads: an app is created, run and freed on the main thread, which
 * becomes the loop thread inside app_run. Handlers (loop thread) may read
 * every field.
 */
#ifndef APP_H
#define APP_H

#include <stdbool.h>
#include <uv.h>

#include "auth.h"
#include "cfg.h"
#include "http.h"
#include "metrics.h"
#include "models.h"
#include "store.h"
#include "store_watch.h"

typedef struct debug_worker debug_worker;
typedef struct trainer trainer;

typedef enum {
    APP_STARTING, /* loading models: /ready answers 503 */
    APP_READY,    /* serving */
    APP_DRAINING, /* SIGTERM received: finishing in-flight requests */
} app_state;

typedef struct app {
    const cfg *cfg;        /* borrowed; outlives the app */
    uv_loop_t loop;
    http_server *http;
    auth auth;
    metrics *metrics;
    debug_worker *debug;   /* NULL unless server.debug_routes */
    store *store;          /* preference feedback, the loop's tables (store.h) */
    trainer *trainer;      /* the closed loop's worker; NULL when training is off */
    store_watch watch;     /* serves what other daemons activated (store_watch.h) */
    json_t *prompts;       /* feedback.prompts_file as a JSON array of strings */
    models_registry models; /* loaded by a uv work request at start-up */
    uv_work_t load_work;
    int load_rc;
    char load_err[1024];
    app_state state;
    double start_time;     /* seconds since the epoch */
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t grace_timer;
    bool finishing;
    int exit_code;
} app;

/* Runs the daemon on the calling thread until it has shut down.
 * Returns the process exit status (0 after a graceful shutdown; 1 when
 * start-up failed, e.g. a model that does not load, with the reason
 * logged). */
int app_run(const cfg *c);

#endif
