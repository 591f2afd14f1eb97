/* http_internal.h - structures shared by http_server.c (MHD + uv glue,
 * dispatcher), http_req.c (accessors, replies) and http_pending.c
 * (asynchronous answers). Not for use outside server/http_*.c. */
#ifndef HTTP_INTERNAL_H
#define HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "http.h"

#define HTTP__MAX_EXTRA_HEADERS 12
/* Least average rate (bytes/s) a request body must arrive at once
 * server.connection_timeout has passed (see http_conn). */
#define HTTP__BODY_MIN_RATE (64 * 1024)

/* One client connection (MHD's socket context), for the receive deadline:
 * MHD's own timeout counts idle time only, so a client sending a byte now
 * and then (slowloris) would hold its connection for ever. A request's
 * headers and body must arrive within server.connection_timeout seconds of
 * the connection opening (or of the previous answer on it being sent),
 * plus one second per HTTP__BODY_MIN_RATE body bytes received; else the
 * connection is shut down. Loop thread only. */
typedef struct http_conn {
    struct MHD_Connection *conn;
    uint64_t since_ns;        /* when the request being received began */
    uint64_t body_bytes;      /* body bytes of that request received so far */
    bool receiving;           /* headers or body not complete yet */
    bool dropped;             /* shut down by the deadline */
    struct http_conn *prev, *next;
} http_conn;

struct http_req {
    http_server *srv;
    struct MHD_Connection *conn;
    char method[16];
    char *path;               /* decoded path, owned */
    router_match match;
    const route *route;       /* NULL when unmatched */
    char *params[ROUTER_MAX_PARAMS]; /* NUL-terminated copies of path params */
    char id[80];              /* X-Request-Id */
    uint64_t t_start_ns;      /* uv_hrtime at the first callback */

    char *body;               /* request body, owned, NUL-terminated */
    size_t body_len, body_cap, body_limit;
    bool body_too_large;      /* chunked body passed the limit: answer 413 */
    json_t *json;             /* parsed body (ROUTE_BODY_JSON), owned */

    bool dispatched;          /* the handler has run */
    bool responded;           /* a response is queued */
    bool suspended;           /* connection suspended by us */
    uv_poll_t *watch;         /* while a deferred reply is awaited: sees the client leave */
    bool client_gone;         /* it left meanwhile: close, answer nobody */
    unsigned status;          /* status queued (499 when the client left first) */
    uint64_t bytes_out;       /* response body bytes handed to MHD */
    http_pending *pending;    /* asynchronous answer; the request holds a ref */

    struct { char *name, *value; } hdr[HTTP__MAX_EXTRA_HEADERS];
    int n_hdr;

    http_req *prev, *next;    /* in-flight list */
};

struct http_pending {
    pthread_mutex_t mu;
    int refs;                 /* guarded by mu */
    http_server *srv;         /* valid while attached (req != NULL) */
    http_req *req;            /* loop thread only; NULL once detached */
    char id[80];              /* request id copy for producers' logs */
    bool sse;                 /* a stream (else one deferred reply) */
    /* guarded by mu: */
    bool attached;            /* the request is still live */
    bool cancelled;           /* client gone or server gave up */
    bool aborted;             /* server gave up (shutdown past grace) */
    bool done;                /* reply given / stream ended */
    bool queued;              /* on the server's wake list */
    unsigned reply_status;
    char *reply_body;         /* JSON text, owned */
    char *buf;                /* SSE bytes not yet handed to MHD */
    size_t buf_len, buf_off, buf_cap;
    http_pending *wake_next;  /* wake list link, guarded by srv->wake_mu */
};

struct http_server {
    http_server_opts opts;
    uv_loop_t *loop;
    struct MHD_Daemon *mhd;
    uv_poll_t poll;           /* MHD's epoll fd */
    uv_timer_t timer;         /* MHD's timeout */
    uv_async_t async;         /* producers' wake-up */
    int handles_open;         /* uv handles not yet closed */
    void (*stop_done)(void *);
    void *stop_arg;

    pthread_mutex_t wake_mu;
    http_pending *wake_head;  /* pendings with news, guarded by wake_mu */

    unsigned n_connections;   /* open client connections */
    http_conn *conns;         /* their receive deadlines (list head) */
    bool closed_in_run;       /* a connection closed during the last MHD_run */
    http_req *in_flight;      /* list head */
    unsigned n_in_flight;
    bool draining, stopping;
    uint64_t next_req_seq;
    char id_prefix[17];
};

/* http_server.c */
void http__run(http_server *srv);
/* Resumes a connection suspended by us (stopping its watch); no-op if not. */
void http__resume(http_req *req);
/* Stops watching a suspended connection for the client leaving. */
void http__watch_stop(http_req *req);

/* http_req.c */
http_req *http__req_new(http_server *srv, struct MHD_Connection *conn, const char *method,
                        const char *url);
void http__req_free(http_req *req);
/* Queues `resp` (consumed) with status, adding X-Request-Id, Content-Type and
 * extra headers. Returns MHD_YES/MHD_NO. */
enum MHD_Result http__queue(http_req *req, unsigned status, const char *content_type,
                            struct MHD_Response *resp);
void http__reply_text_owned(http_req *req, unsigned status, const char *content_type,
                            char *text, size_t len);

/* http_pending.c */
http_pending *http__pending_new(http_req *req, bool sse);
/* Loop thread: the request ends; producers now get -1. Drops req's ref. */
void http__pending_detach(http_pending *p);
/* Loop thread: the server gives up on this request (shutdown). */
void http__pending_abort(http_pending *p);
/* Loop thread: the client left; producers see http_pending_cancelled. */
void http__pending_cancel(http_pending *p);
/* Loop thread: the async callback; resumes connections with news. */
void http__pending_wake_all(uv_async_t *async);
/* Loop thread, after resume of a deferred request: queues the reply if it
 * is ready; returns true if it did (or answered 503 after abort). */
bool http__pending_deliver(http_req *req);
/* MHD content reader for SSE responses. */
ssize_t http__pending_sse_read(void *cls, uint64_t pos, char *buf, size_t max);
void http__pending_sse_free(void *cls);

#endif
