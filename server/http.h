/* http.h - the HTTP server: libmicrohttpd driven by a libuv loop, the
 * dispatcher (route, auth, content type, body limit, JSON parse), replies,
 * and asynchronous answers (deferred replies and Server-Sent Events).
 *
 * Threads: the server, every http_req and every reply function belong to the
 * loop thread. http_pending_* functions (the producer side of asynchronous
 * answers) may be called from any thread; they queue data and wake the loop
 * with uv_async_send. See DESIGN.md section 1.
 */
#ifndef HTTP_H
#define HTTP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "api_error.h"
#include "router.h"

typedef struct http_server http_server;
typedef struct http_pending http_pending;

typedef struct http_server_opts {
    const char *host;             /* IPv4 or IPv6 literal */
    unsigned port;
    unsigned max_connections;
    unsigned connection_timeout;  /* seconds */
    size_t max_body_size;         /* default per-route limit, bytes */
    bool access_log;
    const route *routes;          /* borrowed; must outlive the server */
    size_t n_routes;
    unsigned skip_route_flags;    /* routes with these flags are hidden */
    void *app;                    /* handed to handlers via http_req_app */
    /* Decides whether a request may pass auth: 0, or the error to answer
     * (API_ERR_UNAUTHORIZED: no or unknown key, 401; API_ERR_FORBIDDEN: a
     * valid key without the route's role, 403). NULL = everyone. */
    int (*authorize)(void *app, route_auth auth, const char *authorization);
    /* server.cors_origins: NULL or "" = no CORS headers; "*" = any origin;
     * else a comma-separated list of origins ("https://a.example"). Borrowed. */
    const char *cors_origins;
    /* Returns 0 when routes flagged ROUTE_F_NEEDS_READY may run, else the
     * error to answer (API_ERR_NOT_READY). */
    int (*ready_check)(void *app);
    /* Called on the loop thread when a request ends, for metrics. */
    void (*on_complete)(void *app, const route *r, const char *method, unsigned status,
                        double seconds);
    /* Called when the last in-flight request ends while draining. */
    void (*on_drained)(void *app);
} http_server_opts;

/* Starts listening on `loop`. Returns a new server or NULL with err filled. */
http_server *http_server_start(uv_loop_t *loop, const http_server_opts *opts, char *err,
                               size_t errlen);
/* Stops accepting (closes the listening socket); requests in flight go on,
 * and new requests on open keep-alive connections get 503 shutting_down.
 * on_drained runs once nothing is in flight (maybe at once). */
void http_server_drain(http_server *srv);
/* Ends every request still in flight (deferred ones get 503, streams end),
 * closes all connections and frees the server; then closes its uv handles and
 * calls `done` when they are closed (so the loop can end). Accepts NULL.
 * Never call it from inside a handler or an MHD callback (on_drained,
 * on_complete): MHD cannot stop from within its own run. */
void http_server_stop(http_server *srv, void (*done)(void *arg), void *arg);
/* Requests now in flight (started, not yet completed). */
unsigned http_server_in_flight(const http_server *srv);

/* --- request accessors (loop thread, inside a handler) --- */
typedef struct http_req http_req;
const char *http_req_method(const http_req *req);
const char *http_req_path(const http_req *req);
const char *http_req_id(const http_req *req);
const route *http_req_route(const http_req *req);
void *http_req_app(const http_req *req);
/* Path parameter {name}; NULL when absent. Borrowed, valid during the request. */
const char *http_req_param(const http_req *req, const char *name);
/* Query-string argument (decoded); NULL when absent. */
const char *http_req_query(const http_req *req, const char *name);
/* Request header (case-insensitive); NULL when absent. */
const char *http_req_header(const http_req *req, const char *name);
/* The parsed JSON body (ROUTE_BODY_JSON routes); borrowed. */
json_t *http_req_json(const http_req *req);
const char *http_req_body(const http_req *req, size_t *len);

/* --- immediate replies (loop thread, once per request) --- */
/* Adds a header to the reply about to be sent (e.g. Retry-After). Copies. */
void http_reply_header(http_req *req, const char *name, const char *value);
/* Steals body. */
void http_reply_json(http_req *req, unsigned status, json_t *body);
/* Copies data. */
void http_reply_data(http_req *req, unsigned status, const char *content_type,
                     const char *data, size_t len);
void http_reply_error(http_req *req, api_error_code code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* --- asynchronous answers --- */
/* Loop thread, in a handler: the reply will come later from any thread through
 * the returned handle (a new reference the caller must release). The
 * connection is suspended until then. */
http_pending *http_defer(http_req *req);
/* Loop thread, in a handler: starts a 200 text/event-stream response now;
 * events are pushed later through the handle (a new reference). */
http_pending *http_stream_sse(http_req *req);

/* Loop thread, in a handler: starts a 200 chunked response of content_type
 * whose bytes are pushed later with http_pending_write and ended with
 * http_pending_sse_end (the stream machinery without SSE framing). */
http_pending *http_stream_start(http_req *req, const char *content_type);

/* Any thread. Each returns 0, or -1 when the client is gone or the answer
 * was already given/ended (the producer should stop and release). */
int http_pending_reply_json(http_pending *p, unsigned status, json_t *body); /* steals */
int http_pending_reply_error(http_pending *p, api_error_code code, const char *param,
                             const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Queues one SSE event; `event` may be NULL (no "event:" line); data may
 * contain newlines (one "data:" line each). */
int http_pending_sse_event(http_pending *p, const char *event, const char *data);
/* Appends raw bytes to a stream started with http_stream_start. */
int http_pending_write(http_pending *p, const char *data, size_t len);
/* Ends the stream (the client sees the end of the chunked body). */
int http_pending_sse_end(http_pending *p);
/* True once the client has gone or the server gave up on the request. */
bool http_pending_cancelled(http_pending *p);
/* Request id of the request behind p (for logs); valid until released. */
const char *http_pending_request_id(const http_pending *p);
/* Drops the producer's reference; accepts NULL. */
void http_pending_release(http_pending *p);

#endif
