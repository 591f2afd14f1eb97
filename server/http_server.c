/* http_server.c - libmicrohttpd in external-poll mode on a libuv loop, and
 * the dispatcher that runs every route-independent check once, before any
 * handler (route, method, auth, readiness, content type, body size, JSON).
 *
 * MHD runs with MHD_USE_EPOLL and no thread of its own: a uv_poll_t watches
 * MHD's epoll fd (readable -> MHD_run) and a uv_timer_t is re-armed from
 * MHD_get_timeout after every run. Handlers that answer later suspend their
 * connection; producers wake the loop with uv_async_send (http_pending.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http_internal.h"
#include "log.h"

static void http__arm_timer(http_server *srv, uint64_t deadline_ms);

/* Shuts down the connections whose request is late (http_conn); MHD closes
 * them on its next run (the socket reads EOF). Returns the milliseconds to
 * the next deadline, UINT64_MAX when none. */
static uint64_t http__sweep(http_server *srv) {
    uint64_t now = uv_hrtime(), next = UINT64_MAX;
    uint64_t limit = (uint64_t)srv->opts.connection_timeout * 1000000000ull;
    for (http_conn *c = srv->conns; c; c = c->next) {
        if (!c->receiving || c->dropped) continue;
        uint64_t deadline =
            c->since_ns + limit + c->body_bytes * 1000000000ull / HTTP__BODY_MIN_RATE;
        if (now < deadline) {
            uint64_t ms = (deadline - now + 999999) / 1000000;
            if (ms < next) next = ms;
            continue;
        }
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(c->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci && ci->connect_fd != MHD_INVALID_SOCKET) shutdown(ci->connect_fd, SHUT_RDWR);
        c->dropped = true;
        LOG_DBG("http", "dropped a connection: its request did not arrive within %llds",
                (long long)srv->opts.connection_timeout);
    }
    return next;
}

void http__run(http_server *srv) {
    if (!srv->mhd) return;
    /* When a connection closes while MHD is at its connection limit, MHD puts
     * its listening socket back into its epoll set only on the next run, and
     * nothing else would wake us for it: run again after any close. */
    do {
        srv->closed_in_run = false;
        MHD_run(srv->mhd);
    } while (srv->closed_in_run);
    http__arm_timer(srv, http__sweep(srv));
}

static void http__on_timer(uv_timer_t *t) { http__run(t->data); }

static void http__on_poll(uv_poll_t *p, int status, int events) {
    (void)events;
    if (status < 0) LOG_ERR("http", "poll on MHD's epoll fd failed: %s", uv_strerror(status));
    http__run(p->data);
}

/* Wakes the loop at MHD's next timeout or our next receive deadline. */
static void http__arm_timer(http_server *srv, uint64_t deadline_ms) {
    MHD_UNSIGNED_LONG_LONG ms;
    uint64_t wait = deadline_ms;
    if (srv->mhd && MHD_get_timeout(srv->mhd, &ms) == MHD_YES && ms < wait) wait = ms;
    if (srv->mhd && wait != UINT64_MAX)
        uv_timer_start(&srv->timer, http__on_timer, wait, 0);
    else
        uv_timer_stop(&srv->timer);
}

/* A deferred reply's connection is suspended, and MHD does not look at a
 * suspended socket: a client that leaves while its answer is being computed
 * would go unnoticed until the answer is ready (a non-streamed completion
 * runs to its end for nobody). So watch the socket for the peer's close
 * (EPOLLRDHUP) while suspended: then cancel the request (producers see
 * http_pending_cancelled) and close the connection. */
static void http__watch_closed(uv_handle_t *h) { free(h); }

void http__watch_stop(http_req *req) {
    if (!req->watch) return;
    uv_poll_stop(req->watch);
    uv_close((uv_handle_t *)req->watch, http__watch_closed);
    req->watch = NULL;
}

void http__resume(http_req *req) {
    http__watch_stop(req);
    if (req->suspended) {
        req->suspended = false;
        MHD_resume_connection(req->conn);
    }
}

static void http__on_client_gone(uv_poll_t *w, int status, int events) {
    http_req *req = w->data;
    (void)status, (void)events; /* only the peer's close or an error wake us */
    LOG_DBG("http", "request %s: the client left before its answer; cancelling it", req->id);
    req->client_gone = true;
    if (req->pending) http__pending_cancel(req->pending);
    http__resume(req); /* MHD calls the handler again, which closes the connection */
    http__run(req->srv);
}

static void http__watch_start(http_req *req) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    uv_poll_t *w = ci && !req->watch ? malloc(sizeof *w) : NULL;
    if (!w) return;
    if (uv_poll_init_socket(req->srv->loop, w, ci->connect_fd) != 0) {
        free(w);
        return;
    }
    w->data = req;
    if (uv_poll_start(w, UV_DISCONNECT, http__on_client_gone) != 0) {
        uv_close((uv_handle_t *)w, http__watch_closed);
        return;
    }
    req->watch = w;
}

/* The connection's receive-deadline record, or NULL. */
static http_conn *http__conn_of(struct MHD_Connection *conn) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* ------------------------------------------------------------------ */
/* dispatcher */

static bool http__content_type_is_json(const char *ct) {
    if (!ct) return true; /* absent: be lenient, the JSON parse decides */
    while (*ct == ' ') ct++;
    if (strncasecmp(ct, "application/json", 16) != 0) return false;
    ct += 16;
    while (*ct == ' ') ct++;
    return *ct == '\0' || *ct == ';';
}

/* The role a route's auth class needs, for the 403 message. */
static const char *http__auth_role(route_auth a) {
    switch (a) {
    case ROUTE_AUTH_FEEDBACK: return "feedback";
    case ROUTE_AUTH_ADMIN: return "admin";
    case ROUTE_AUTH_INFER:
    case ROUTE_AUTH_HEALTH:
    case ROUTE_AUTH_METRICS:
    case ROUTE_AUTH_OPEN: break;
    }
    return "infer";
}

/* ------------------------------------------------------------------ */
/* CORS (server.cors_origins) */

static bool http__cors_on(const http_server *srv) {
    return srv->opts.cors_origins && srv->opts.cors_origins[0];
}

/* The value for Access-Control-Allow-Origin when `origin` may read our
 * answers: "*" when the list has "*", the origin itself when it is listed,
 * else NULL. */
static const char *http__cors_allowed(const http_server *srv, const char *origin) {
    if (!http__cors_on(srv)) return NULL;
    for (const char *p = srv->opts.cors_origins; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        const char *q = p;
        size_t m = n;
        while (m && (*q == ' ' || *q == '\t')) q++, m--;
        while (m && (q[m - 1] == ' ' || q[m - 1] == '\t' || q[m - 1] == '/')) m--;
        if (m == 1 && *q == '*') return "*";
        if (origin && m && strlen(origin) == m && strncasecmp(origin, q, m) == 0) return origin;
        p += n + (comma ? 1 : 0);
    }
    return NULL;
}

/* Adds the CORS headers every answer carries (errors too, so that a page can
 * read them). Returns the allowed origin value or NULL. */
static const char *http__cors_headers(http_req *req) {
    http_server *srv = req->srv;
    if (!http__cors_on(srv)) return NULL;
    const char *allowed =
        http__cors_allowed(srv, MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Origin"));
    if (!allowed || strcmp(allowed, "*") != 0) http_reply_header(req, "Vary", "Origin");
    if (allowed) {
        http_reply_header(req, "Access-Control-Allow-Origin", allowed);
        http_reply_header(req, "Access-Control-Expose-Headers",
                          "X-Request-Id, Retry-After, WWW-Authenticate");
    }
    return allowed;
}

/* OPTIONS with CORS on: the preflight answer for any known path, without
 * auth (browsers send no Authorization header on a preflight). */
static void http__preflight(http_req *req, const char *allowed) {
    http_server *srv = req->srv;
    char allow[128];
    router_match m;
    router_result rr = router_match_path(srv->opts.routes, srv->opts.n_routes,
                                         srv->opts.skip_route_flags, "OPTIONS", req->path, &m,
                                         allow, sizeof allow);
    if (rr == ROUTER_NOT_FOUND) {
        http_reply_error(req, API_ERR_NOT_FOUND, NULL, "no route for %s %s", req->method, req->path);
        return;
    }
    if (rr == ROUTER_FOUND) snprintf(allow, sizeof allow, "%s", m.route->method);
    char methods[160];
    snprintf(methods, sizeof methods, "%s, OPTIONS", allow);
    http_reply_header(req, "Allow", methods);
    if (allowed) {
        http_reply_header(req, "Access-Control-Allow-Methods", methods);
        http_reply_header(req, "Access-Control-Allow-Headers",
                          "Authorization, Content-Type, X-Request-Id");
        http_reply_header(req, "Access-Control-Max-Age", "600");
    }
    http_reply_data(req, 204, NULL, "", 0);
}

/* Header-time checks (first callback). Returns true if an error was queued. */
static bool http__check_headers(http_req *req) {
    http_server *srv = req->srv;
    const char *cors_allowed = http__cors_headers(req);
    if (http__cors_on(srv) && strcmp(req->method, "OPTIONS") == 0) {
        http__preflight(req, cors_allowed);
        return true;
    }
    char allow[128];
    router_result rr = router_match_path(srv->opts.routes, srv->opts.n_routes,
                                         srv->opts.skip_route_flags, req->method, req->path,
                                         &req->match, allow, sizeof allow);
    if (rr == ROUTER_NOT_FOUND) {
        http_reply_error(req, API_ERR_NOT_FOUND, NULL, "no route for %s %s", req->method, req->path);
        return true;
    }
    if (rr == ROUTER_BAD_METHOD) {
        http_reply_header(req, "Allow", allow);
        http_reply_error(req, API_ERR_METHOD_NOT_ALLOWED, NULL,
                         "method %s not allowed on %s (allowed: %s)", req->method, req->path, allow);
        return true;
    }
    const route *r = req->route = req->match.route;
    for (int i = 0; i < req->match.n_params; i++)
        req->params[i] = strndup(req->match.params[i].value, req->match.params[i].value_len);

    int auth_err = srv->opts.authorize
                       ? srv->opts.authorize(srv->opts.app, r->auth,
                                             MHD_lookup_connection_value(
                                                 req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_AUTHORIZATION))
                       : 0;
    if (auth_err == API_ERR_FORBIDDEN) { /* a valid key: never echoed, nor its role */
        http_reply_error(req, API_ERR_FORBIDDEN, NULL,
                         "this API key may not use %s %s: it needs the role '%s'", r->method,
                         r->pattern, http__auth_role(r->auth));
        return true;
    }
    if (auth_err) {
        http_reply_header(req, "WWW-Authenticate", "Bearer");
        http_reply_error(req, API_ERR_UNAUTHORIZED, NULL,
                         "missing or invalid API key: send 'Authorization: Bearer KEY'");
        return true;
    }
    if (srv->draining && (r->flags & ROUTE_F_NEEDS_READY)) {
        http_reply_error(req, API_ERR_SHUTTING_DOWN, NULL, "the server is shutting down");
        return true;
    }
    if ((r->flags & ROUTE_F_NEEDS_READY) && srv->opts.ready_check) {
        int e = srv->opts.ready_check(srv->opts.app);
        if (e) {
            http_reply_header(req, "Retry-After", "1");
            http_reply_error(req, (api_error_code)e, NULL, "the server is not ready yet");
            return true;
        }
    }
    req->body_limit = r->body_limit ? r->body_limit : srv->opts.max_body_size;
    if (r->body == ROUTE_BODY_JSON) {
        const char *ct = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                     MHD_HTTP_HEADER_CONTENT_TYPE);
        if (!http__content_type_is_json(ct)) {
            http_reply_error(req, API_ERR_UNSUPPORTED_MEDIA_TYPE, NULL,
                             "Content-Type must be application/json, not '%s'", ct);
            return true;
        }
    }
    const char *cl = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || *end || n > req->body_limit) {
            http_reply_error(req, API_ERR_BODY_TOO_LARGE, NULL,
                             "request body of %s bytes exceeds the limit of %zu bytes", cl,
                             req->body_limit);
            return true;
        }
    }
    return false;
}

static void http__append_body(http_req *req, const char *data, size_t n) {
    if (req->body_too_large) return;
    if (n > req->body_limit - req->body_len) { /* chunked body past the limit */
        req->body_too_large = true;
        free(req->body);
        req->body = NULL;
        req->body_len = req->body_cap = 0;
        return;
    }
    if (req->body_len + n + 1 > req->body_cap) {
        size_t cap = req->body_cap ? req->body_cap : 1024;
        while (cap < req->body_len + n + 1) cap *= 2;
        char *nb = realloc(req->body, cap);
        if (!nb) {
            req->body_too_large = true; /* cannot hold it: treat as too large */
            return;
        }
        req->body = nb;
        req->body_cap = cap;
    }
    memcpy(req->body + req->body_len, data, n);
    req->body_len += n;
    req->body[req->body_len] = '\0';
}

/* Final callback: body checks, JSON parse, the handler. */
static void http__dispatch(http_req *req) {
    const route *r = req->route;
    req->dispatched = true;
    if (req->body_too_large) {
        http_reply_error(req, API_ERR_BODY_TOO_LARGE, NULL,
                         "request body exceeds the limit of %zu bytes", req->body_limit);
        return;
    }
    if (r->body == ROUTE_BODY_JSON) {
        if (req->body_len == 0) {
            http_reply_error(req, API_ERR_BAD_JSON, NULL, "request body is empty; expected JSON");
            return;
        }
        json_error_t jerr;
        req->json = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req->json) {
            http_reply_error(req, API_ERR_BAD_JSON, NULL,
                             "malformed JSON body at line %d column %d: %s", jerr.line,
                             jerr.column, jerr.text);
            return;
        }
    }
    r->handler(req);
}

static enum MHD_Result http__on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *version,
                                        const char *upload_data, size_t *upload_data_size,
                                        void **con_cls) {
    http_server *srv = cls;
    http_req *req = *con_cls;
    (void)version;
    if (!req) { /* first call: the headers are in */
        req = http__req_new(srv, conn, method, url);
        if (!req) return MHD_NO;
        *con_cls = req;
        http__check_headers(req);
        return MHD_YES;
    }
    http_conn *hc = http__conn_of(conn);
    if (*upload_data_size) {
        if (hc) hc->body_bytes += *upload_data_size;
        if (!req->responded) http__append_body(req, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (hc) hc->receiving = false; /* the whole request is in */
    if (req->responded) return MHD_YES;
    if (req->client_gone) return MHD_NO; /* nobody to answer: close */
    if (!req->dispatched) http__dispatch(req);
    else if (req->pending && http__pending_deliver(req)) return MHD_YES;

    if (!req->responded) {
        if (req->pending && !req->pending->sse) {
            req->suspended = true; /* the answer comes later (http_pending.c) */
            MHD_suspend_connection(conn);
            http__watch_start(req);
        } else {
            LOG_ERR("http", "request %s: handler for %s %s gave no answer", req->id,
                    req->route ? req->route->method : "?", req->path);
            http_reply_error(req, API_ERR_INTERNAL, NULL, "the handler gave no answer");
        }
    }
    return MHD_YES;
}

static void http__access_log(const http_req *req, double seconds) {
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char addr[INET6_ADDRSTRLEN] = "-";
    if (ci && ci->client_addr) {
        const struct sockaddr *sa = ci->client_addr;
        if (sa->sa_family == AF_INET)
            inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, addr, sizeof addr);
        else if (sa->sa_family == AF_INET6)
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, addr, sizeof addr);
    }
    char ts[40];
    log_timestamp(ts, sizeof ts);
    json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:f, s:I, s:s}", "time", ts,
                          "level", "access", "request_id", req->id, "method", req->method,
                          "path", req->path, "route", req->route ? req->route->pattern : "-",
                          "status", (int)req->status, "duration_ms", seconds * 1000.0,
                          "bytes", (json_int_t)req->bytes_out, "remote", addr);
    char *line = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
    if (line) log_line(line);
    free(line);
    json_decref(j);
}

static void http__on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                               enum MHD_RequestTerminationCode toe) {
    http_server *srv = cls;
    http_req *req = *con_cls;
    http_conn *hc = http__conn_of(conn);
    if (hc) { /* the answer is sent: the clock starts for the next request */
        hc->receiving = true;
        hc->since_ns = uv_hrtime();
        hc->body_bytes = 0;
    }
    if (!req) return;
    *con_cls = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && req->status < 400 && req->pending)
        req->status = 499; /* the client left before the stream ended */
    double seconds = (double)(uv_hrtime() - req->t_start_ns) / 1e9;
    if (srv->opts.access_log) http__access_log(req, seconds);
    if (srv->opts.on_complete)
        srv->opts.on_complete(srv->opts.app, req->route, req->method, req->status, seconds);
    http__req_free(req);
    if (srv->draining && !srv->stopping && srv->n_in_flight == 0 && srv->opts.on_drained)
        srv->opts.on_drained(srv->opts.app);
}

static void http__on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                                enum MHD_ConnectionNotificationCode code) {
    http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        srv->n_connections++;
        http_conn *c = calloc(1, sizeof *c); /* none: no receive deadline */
        if (c) {
            c->conn = conn;
            c->since_ns = uv_hrtime();
            c->receiving = true;
            c->next = srv->conns;
            if (srv->conns) srv->conns->prev = c;
            srv->conns = c;
        }
        *socket_ctx = c;
    } else {
        srv->n_connections--;
        srv->closed_in_run = true;
        http_conn *c = *socket_ctx;
        if (c) {
            if (c->prev) c->prev->next = c->next;
            else srv->conns = c->next;
            if (c->next) c->next->prev = c->prev;
            free(c);
            *socket_ctx = NULL;
        }
    }
}

__attribute__((format(printf, 2, 0)))
static void http__mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && (msg[n - 1] == '\n' || msg[n - 1] == '\r')) msg[--n] = '\0';
    LOG_DBG("mhd", "%s", msg);
}

/* ------------------------------------------------------------------ */
/* lifecycle */

static int http__parse_addr(const char *host, unsigned port, struct sockaddr_storage *ss,
                            bool *v6) {
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = false;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = true;
        return 0;
    }
    return -1;
}

static void http__on_handle_closed(uv_handle_t *h) {
    http_server *srv = h->data;
    if (--srv->handles_open > 0) return;
    void (*done)(void *) = srv->stop_done;
    void *arg = srv->stop_arg;
    pthread_mutex_destroy(&srv->wake_mu);
    free(srv);
    if (done) done(arg);
}

http_server *http_server_start(uv_loop_t *loop, const http_server_opts *opts, char *err,
                               size_t errlen) {
    struct sockaddr_storage ss;
    bool v6;
    if (http__parse_addr(opts->host, opts->port, &ss, &v6) != 0) {
        snprintf(err, errlen, "server.host '%s' is not an IPv4 or IPv6 address", opts->host);
        return NULL;
    }
    http_server *srv = calloc(1, sizeof *srv);
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->opts = *opts;
    srv->loop = loop;
    pthread_mutex_init(&srv->wake_mu, NULL);
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint64_t)uv_hrtime();
    snprintf(srv->id_prefix, sizeof srv->id_prefix, "%08llx", (unsigned long long)(rnd >> 32));

    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (v6) flags |= MHD_USE_IPv6;
    srv->mhd = MHD_start_daemon(
        flags, (uint16_t)opts->port, NULL, NULL, http__on_request, srv,
        MHD_OPTION_EXTERNAL_LOGGER, http__mhd_log, srv, /* first, to catch every message */
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)opts->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)opts->connection_timeout,
        MHD_OPTION_NOTIFY_COMPLETED, http__on_completed, srv,
        MHD_OPTION_NOTIFY_CONNECTION, http__on_connection, srv,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned)1,
        MHD_OPTION_END);
    if (!srv->mhd) {
        snprintf(err, errlen, "cannot listen on %s port %u (address in use, or not allowed?)",
                 opts->host, opts->port);
        pthread_mutex_destroy(&srv->wake_mu);
        free(srv);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_EPOLL_FD);
    uv_poll_init(loop, &srv->poll, di->epoll_fd);
    uv_timer_init(loop, &srv->timer);
    uv_async_init(loop, &srv->async, http__pending_wake_all);
    srv->poll.data = srv->timer.data = srv->async.data = srv;
    srv->handles_open = 3;
    uv_poll_start(&srv->poll, UV_READABLE, http__on_poll);
    http__arm_timer(srv, UINT64_MAX);
    return srv;
}

unsigned http_server_in_flight(const http_server *srv) { return srv ? srv->n_in_flight : 0; }

void http_server_drain(http_server *srv) {
    if (!srv || srv->draining) return;
    srv->draining = true;
    MHD_socket fd = MHD_quiesce_daemon(srv->mhd);
    if (fd != MHD_INVALID_SOCKET) close(fd);
    LOG_INF("http", "stopped accepting connections; %u request(s) in flight", srv->n_in_flight);
    if (srv->n_in_flight == 0 && srv->opts.on_drained) srv->opts.on_drained(srv->opts.app);
}

void http_server_stop(http_server *srv, void (*done)(void *arg), void *arg) {
    if (!srv) {
        if (done) done(arg);
        return;
    }
    srv->stopping = true;
    srv->stop_done = done;
    srv->stop_arg = arg;
    /* Give up on what is left: deferred requests answer 503, streams end.
     * MHD refuses to stop while a connection is suspended, so resume all. */
    for (http_req *r = srv->in_flight; r; r = r->next) {
        if (r->pending) http__pending_abort(r->pending);
        http__resume(r);
    }
    MHD_run(srv->mhd); /* lets the resumed requests queue their last answers */
    uv_close((uv_handle_t *)&srv->poll, http__on_handle_closed); /* before MHD closes the fd */
    MHD_stop_daemon(srv->mhd); /* completes every request (http__on_completed) */
    srv->mhd = NULL;
    http__pending_wake_all(&srv->async); /* releases what producers queued */
    uv_close((uv_handle_t *)&srv->timer, http__on_handle_closed);
    uv_close((uv_handle_t *)&srv->async, http__on_handle_closed);
}
