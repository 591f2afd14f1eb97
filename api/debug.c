/* debug.c - POST /debug/echo and GET /debug/sse (server.debug_routes only):
 * answers produced on the debug worker thread, to exercise and show the
 * asynchronous path that completions use. */
#include <errno.h>
#include <stdlib.h>

#include "app.h"
#include "debug_worker.h"
#include "http.h"
#include "routes.h"

#define API_DEBUG_MAX_DELAY_MS 60000

/* Parses a query argument as an integer in [lo, hi]; returns 0 or -1. */
static int api__query_uint(http_req *req, const char *name, unsigned def, unsigned lo,
                           unsigned hi, unsigned *out) {
    const char *s = http_req_query(req, name);
    if (!s) {
        *out = def;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < (long)lo || v > (long)hi) {
        http_reply_error(req, API_ERR_INVALID_VALUE, name, "%s must be an integer in [%u, %u]",
                         name, lo, hi);
        return -1;
    }
    *out = (unsigned)v;
    return 0;
}

static bool api__debug_room(http_req *req, app *a) {
    if (!debug_worker_full(a->debug)) return true;
    http_reply_header(req, "Retry-After", "1");
    http_reply_error(req, API_ERR_QUEUE_FULL, NULL, "the debug queue is full (%lld jobs)",
                     a->cfg->server_debug_queue_size);
    return false;
}

void api_debug_echo(http_req *req) {
    app *a = http_req_app(req);
    json_t *body = http_req_json(req);
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return;
    }
    json_t *message = json_object_get(body, "message");
    if (!message) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "message", "message is required");
        return;
    }
    json_t *delay = json_object_get(body, "delay_ms");
    json_int_t delay_ms = 0;
    if (delay) {
        if (!json_is_integer(delay)) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "delay_ms", "delay_ms must be an integer");
            return;
        }
        delay_ms = json_integer_value(delay);
        if (delay_ms < 0 || delay_ms > API_DEBUG_MAX_DELAY_MS) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "delay_ms",
                             "delay_ms must be in [0, %d]", API_DEBUG_MAX_DELAY_MS);
            return;
        }
    }
    if (!api__debug_room(req, a)) return;
    http_pending *p = http_defer(req);
    if (!p) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot defer the reply");
        return;
    }
    debug_worker_submit_echo(a->debug, p, json_incref(message), (unsigned)delay_ms);
}

void api_debug_sse(http_req *req) {
    app *a = http_req_app(req);
    unsigned count, interval;
    if (api__query_uint(req, "count", 3, 0, 10000, &count) != 0) return;
    if (api__query_uint(req, "interval_ms", 10, 0, API_DEBUG_MAX_DELAY_MS, &interval) != 0) return;
    if (!api__debug_room(req, a)) return;
    http_pending *p = http_stream_sse(req);
    if (!p) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot start the event stream");
        return;
    }
    debug_worker_submit_ticks(a->debug, p, count, interval);
}
