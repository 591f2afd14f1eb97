/* app.c - start-up, signals and graceful shutdown of the daemon.
 *
 * Shutdown: SIGTERM/SIGINT -> state DRAINING, /ready answers 503, the
 * listening socket closes, in-flight requests go on; when the last one ends
 * (or server.shutdown_grace passes, or a second signal arrives) the HTTP
 * server stops, the loop's handles close and app_run returns 0.
 */
#include "app.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "debug_worker.h"
#include "trainer.h"
#include "log.h"
#include "routes.h"
#include "sdnotify.h"

static int app__authorize(void *ud, route_auth need, const char *header) {
    app *a = ud;
    auth_role role = AUTH_ROLE_INFER; /* health and metrics when not public: any key */
    switch (need) {
    case ROUTE_AUTH_OPEN: return 0;
    case ROUTE_AUTH_HEALTH: if (a->cfg->server_public_health) return 0; break;
    case ROUTE_AUTH_METRICS: if (a->cfg->server_public_metrics) return 0; break;
    case ROUTE_AUTH_INFER: break;
    case ROUTE_AUTH_FEEDBACK: role = AUTH_ROLE_FEEDBACK; break;
    case ROUTE_AUTH_ADMIN: role = AUTH_ROLE_ADMIN; break;
    }
    switch (auth_authorize(&a->auth, role, header)) {
    case AUTH_OK: return 0;
    case AUTH_FORBIDDEN: return API_ERR_FORBIDDEN;
    case AUTH_UNAUTHORIZED: break;
    }
    return API_ERR_UNAUTHORIZED;
}

static int app__ready_check(void *ud) {
    app *a = ud;
    return a->state == APP_READY ? 0 : API_ERR_NOT_READY;
}

static void app__on_complete(void *ud, const route *r, const char *method, unsigned status,
                             double seconds) {
    app *a = ud;
    metrics_observe_http(a->metrics, r ? r->pattern : NULL, method, status, seconds);
}

static void app__on_closed(uv_handle_t *h) { (void)h; }

static void app__on_http_stopped(void *arg) {
    app *a = arg;
    a->http = NULL;
    sdnotify_watchdog_stop();
    uv_close((uv_handle_t *)&a->sig_term, app__on_closed);
    uv_close((uv_handle_t *)&a->sig_int, app__on_closed);
    uv_close((uv_handle_t *)&a->sig_hup, app__on_closed);
    uv_close((uv_handle_t *)&a->grace_timer, app__on_closed);
    store_watch_close(&a->watch);
}

/* Ends the daemon: stops the HTTP server; the loop ends when handles close. */
static void app__finish(app *a) {
    if (a->finishing) return;
    a->finishing = true;
    uv_timer_stop(&a->grace_timer);
    unsigned left = http_server_in_flight(a->http);
    if (left) LOG_WRN("app", "giving up on %u request(s) still in flight", left);
    http_server_stop(a->http, app__on_http_stopped, a);
}

static void app__on_finish_timer(uv_timer_t *t) { app__finish(t->data); }

/* Runs inside MHD's completion callback, where MHD must not be stopped:
 * finish from the next loop iteration instead (replacing the grace timer). */
static void app__on_drained(void *ud) {
    app *a = ud;
    LOG_INF("app", "all requests finished");
    uv_timer_start(&a->grace_timer, app__on_finish_timer, 0, 0);
}

static void app__on_grace(uv_timer_t *t) {
    app *a = t->data;
    LOG_WRN("app", "shutdown grace of %llds is over", a->cfg->server_shutdown_grace);
    app__finish(a);
}

/* Begins the graceful shutdown (signal, or a failed start-up). */
static void app__shutdown(app *a, const char *why) {
    if (a->state == APP_DRAINING) {
        LOG_WRN("app", "%s: stopping now", why);
        app__finish(a);
        return;
    }
    LOG_INF("app", "%s: shutting down (grace %llds)", why, a->cfg->server_shutdown_grace);
    sdnotify_stopping(why);
    a->state = APP_DRAINING;
    uv_timer_start(&a->grace_timer, app__on_grace,
                   (uint64_t)a->cfg->server_shutdown_grace * 1000, 0);
    http_server_drain(a->http); /* may call app__on_drained at once */
}

/* uv work thread: the slow part of start-up. */
static void app__load_models(uv_work_t *w) {
    app *a = w->data;
    a->load_rc = models_load(&a->models, a->cfg, a->load_err, sizeof a->load_err);
}

/* Loop thread: models are loaded (or not). */
static void app__models_loaded(uv_work_t *w, int status) {
    app *a = w->data;
    if (status == 0 && a->load_rc == 0 && a->state == APP_STARTING &&
        models_start(&a->models, a->load_err, sizeof a->load_err) == 0) {
        char terr[512];
        if (trainer_restore(a->cfg, &a->models, a->store, terr, sizeof terr) ||
            trainer_start(&a->trainer, a->cfg, &a->models, a->store, terr, sizeof terr)) {
            snprintf(a->load_err, sizeof a->load_err, "training loop: %s", terr);
        } else {
            if (a->cfg->training_enabled &&
                store_watch_start(&a->watch, &a->loop, a->cfg, &a->models, a->store))
                LOG_WRN("app", "cannot start the store watch: adapters other daemons activate "
                        "are served after a restart only");
            a->state = APP_READY; /* /ready answers 200 from here on */
            LOG_INF("app", "ready: %d model(s) loaded", a->models.n);
            char st[128];
            snprintf(st, sizeof st, "serving %d model(s)", a->models.n);
            sdnotify_ready(st);
            return;
        }
    }
    if (a->state == APP_DRAINING) return; /* shutting down anyway */
    LOG_ERR("app", "start-up failed: %s", a->load_err[0] ? a->load_err : "model loading was cancelled");
    sdnotify_status("start-up failed: %s", a->load_err[0] ? a->load_err : "model loading was cancelled");
    a->exit_code = 1;
    app__shutdown(a, "start-up failed");
}

static void app__on_signal(uv_signal_t *s, int signum) {
    app *a = s->data;
    if (signum == SIGHUP) {
        /* systemd's ExecReload: RELOADING=1 ... READY=1, but only once ready
         * (a READY=1 during start-up or drain would lie about the state). */
        bool ready = a->state == APP_READY;
        if (ready) sdnotify_reloading("SIGHUP: reopening the log file");
        if (log_reopen() == 0) LOG_INF("app", "SIGHUP: log file reopened");
        else LOG_ERR("app", "SIGHUP: cannot reopen the log file; still writing to the old one");
        if (ready) sdnotify_ready(a->models.n ? "serving" : "serving (no models configured)");
        return;
    }
    app__shutdown(a, strsignal(signum));
}

int app_run(const cfg *c) {
    app a;
    memset(&a, 0, sizeof a);
    a.cfg = c;
    a.state = APP_STARTING;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    a.start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
    char err[512];
    int rc = 1;

    if (auth_init(&a.auth, c->server_api_keys, c->server_api_key_file, err, sizeof err) != 0) {
        LOG_ERR("app", "%s", err);
        return 1;
    }
    a.metrics = metrics_create();
    if (!a.metrics || uv_loop_init(&a.loop) != 0) {
        LOG_ERR("app", "out of memory at start-up");
        metrics_free(a.metrics);
        auth_free(&a.auth);
        return 1;
    }
    if (store_open(&a.store, cfg_store_location(c), err, sizeof err) != 0) {
        LOG_ERR("app", "%s: %s", c->store_url[0] ? "store.url" : "store.path", err);
        goto out;
    }
    LOG_INF("app", "store: %s%s%s", store_backend_name(a.store), c->store_url[0] ? "" : " ",
            c->store_url[0] ? "" : c->store_path);
    if (!(a.prompts = json_array())) goto out;
    if (c->feedback_prompts_file[0]) { /* one prompt per line; blank lines skipped */
        FILE *pf = fopen(c->feedback_prompts_file, "r");
        if (!pf) {
            LOG_ERR("app", "feedback.prompts_file %s: %s", c->feedback_prompts_file, strerror(errno));
            goto out;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while ((n = getline(&line, &cap, pf)) >= 0) {
            while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = '\0';
            json_t *s = n > 0 ? json_stringn(line, (size_t)n) : NULL;
            if (s) json_array_append_new(a.prompts, s); /* invalid UTF-8 lines are skipped */
        }
        free(line);
        fclose(pf);
    }
    if (c->server_debug_routes) {
        a.debug = debug_worker_start((size_t)c->server_debug_queue_size);
        if (!a.debug) {
            LOG_ERR("app", "cannot start the debug worker thread");
            goto out;
        }
    }

    http_server_opts o = {
        .host = c->server_host,
        .port = (unsigned)c->server_port,
        .max_connections = (unsigned)c->server_max_connections,
        .connection_timeout = (unsigned)c->server_connection_timeout,
        .max_body_size = (size_t)c->server_max_body_size,
        .access_log = c->log_access,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .skip_route_flags = c->server_debug_routes ? 0 : ROUTE_F_DEBUG,
        .app = &a,
        .authorize = app__authorize,
        .cors_origins = c->server_cors_origins,
        .ready_check = app__ready_check,
        .on_complete = app__on_complete,
        .on_drained = app__on_drained,
    };
    a.http = http_server_start(&a.loop, &o, err, sizeof err);
    if (!a.http) {
        LOG_ERR("app", "%s", err);
        goto out;
    }
    uv_signal_init(&a.loop, &a.sig_term);
    uv_signal_init(&a.loop, &a.sig_int);
    uv_signal_init(&a.loop, &a.sig_hup);
    uv_timer_init(&a.loop, &a.grace_timer);
    a.sig_term.data = a.sig_int.data = a.sig_hup.data = a.grace_timer.data = &a;
    uv_signal_start(&a.sig_term, app__on_signal, SIGTERM);
    uv_signal_start(&a.sig_int, app__on_signal, SIGINT);
    uv_signal_start(&a.sig_hup, app__on_signal, SIGHUP);
    sdnotify_watchdog_start(&a.loop); /* WATCHDOG=1 under systemd's WatchdogSec */

    LOG_INF("app", "alignd %s listening on %s port %lld (%s)", ALIGND_VERSION, c->server_host,
            c->server_port, auth_disabled(&a.auth) ? "no API keys: open" : "API keys required");
    if (c->n_models == 0) {
        a.state = APP_READY;
        LOG_INF("app", "ready (no models configured)");
        sdnotify_ready("serving (no models configured)");
    } else { /* /ready answers 503 until the models are loaded */
        sdnotify_status("loading %d model(s)", c->n_models);
        a.load_work.data = &a;
        uv_queue_work(&a.loop, &a.load_work, app__load_models, app__models_loaded);
    }

    uv_run(&a.loop, UV_RUN_DEFAULT);
    LOG_INF("app", "stopped");
    rc = a.exit_code;
out:
    sdnotify_watchdog_stop();
    if (a.http) { /* start-up failed after the server started */
        http_server_stop(a.http, NULL, NULL);
        uv_run(&a.loop, UV_RUN_DEFAULT);
    }
    trainer_stop(a.trainer); /* before the models it trains */
    models_free(&a.models); /* stops the schedulers; what still runs ends as cancelled */
    store_close(a.store);
    json_decref(a.prompts);
    debug_worker_stop(a.debug);
    if (uv_loop_close(&a.loop) != 0) LOG_WRN("app", "event loop closed with handles still open");
    metrics_free(a.metrics);
    auth_free(&a.auth);
    return rc;
}
