/* http_pending.c - asynchronous answers: a deferred JSON reply or an SSE
 * stream, produced on any thread and delivered on the loop thread.
 *
 * Hand-off: a producer locks the pending, stores its data, and if the pending
 * is not already on the server's wake list, puts it there (taking a ref) and
 * calls uv_async_send. The async callback (loop thread) takes the whole list,
 * resumes each suspended connection and runs MHD, which then calls the access
 * handler (deferred reply) or the content reader (SSE) again.
 * Lock order: pending->mu, then server->wake_mu.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "log.h"

static void http__pending_ref(http_pending *p) {
    pthread_mutex_lock(&p->mu);
    p->refs++;
    pthread_mutex_unlock(&p->mu);
}

void http_pending_release(http_pending *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    int left = --p->refs;
    pthread_mutex_unlock(&p->mu);
    if (left > 0) return;
    pthread_mutex_destroy(&p->mu);
    free(p->reply_body);
    free(p->buf);
    free(p);
}

http_pending *http__pending_new(http_req *req, bool sse) {
    if (req->pending || req->responded) {
        LOG_ERR("http", "request %s: answered twice (defer/stream after a reply)", req->id);
        return NULL;
    }
    http_pending *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->refs = 2; /* the request's and the producer's */
    p->srv = req->srv;
    p->req = req;
    p->sse = sse;
    p->attached = true;
    snprintf(p->id, sizeof p->id, "%s", req->id);
    req->pending = p;
    return p;
}

/* Called with p->mu held and p attached: makes the loop look at p. */
static void http__pending_wake_locked(http_pending *p) {
    if (p->queued) return;
    p->queued = true;
    p->refs++; /* the wake list's ref */
    http_server *srv = p->srv;
    pthread_mutex_lock(&srv->wake_mu);
    p->wake_next = srv->wake_head;
    srv->wake_head = p;
    pthread_mutex_unlock(&srv->wake_mu);
    uv_async_send(&srv->async);
}

void http__pending_wake_all(uv_async_t *async) {
    http_server *srv = async->data;
    pthread_mutex_lock(&srv->wake_mu);
    http_pending *list = srv->wake_head;
    srv->wake_head = NULL;
    pthread_mutex_unlock(&srv->wake_mu);
    while (list) {
        http_pending *p = list;
        list = p->wake_next;
        pthread_mutex_lock(&p->mu);
        p->queued = false;
        pthread_mutex_unlock(&p->mu);
        http_req *req = p->req; /* loop-thread field */
        if (req) http__resume(req);
        http_pending_release(p);
    }
    http__run(srv);
}

void http__pending_detach(http_pending *p) {
    pthread_mutex_lock(&p->mu);
    p->attached = false;
    if (!p->done) p->cancelled = true;
    p->req = NULL;
    p->srv = NULL;
    pthread_mutex_unlock(&p->mu);
    http_pending_release(p);
}

void http__pending_abort(http_pending *p) {
    pthread_mutex_lock(&p->mu);
    p->aborted = p->cancelled = true;
    pthread_mutex_unlock(&p->mu);
}

void http__pending_cancel(http_pending *p) {
    pthread_mutex_lock(&p->mu);
    p->cancelled = true;
    pthread_mutex_unlock(&p->mu);
}

bool http__pending_deliver(http_req *req) {
    http_pending *p = req->pending;
    pthread_mutex_lock(&p->mu);
    char *body = p->done ? p->reply_body : NULL;
    unsigned status = p->reply_status;
    bool aborted = p->aborted;
    if (body) p->reply_body = NULL;
    pthread_mutex_unlock(&p->mu);
    if (body) {
        http__reply_text_owned(req, status, "application/json", body, strlen(body));
        return true;
    }
    if (aborted) {
        http_reply_error(req, API_ERR_SHUTTING_DOWN, NULL,
                         "the server shut down before the answer was ready");
        return true;
    }
    return false;
}

http_pending *http_defer(http_req *req) { return http__pending_new(req, false); }

http_pending *http_stream_sse(http_req *req) { return http_stream_start(req, "text/event-stream"); }

http_pending *http_stream_start(http_req *req, const char *content_type) {
    http_pending *p = http__pending_new(req, true);
    if (!p) return NULL;
    http__pending_ref(p); /* the MHD response's ref, dropped by http__pending_sse_free */
    struct MHD_Response *resp = MHD_create_response_from_callback(
        MHD_SIZE_UNKNOWN, 16 * 1024, http__pending_sse_read, p, http__pending_sse_free);
    if (!resp) http_pending_release(p);
    else MHD_add_response_header(resp, "Cache-Control", "no-cache");
    if (http__queue(req, 200, content_type, resp) != MHD_YES) {
        /* the request keeps its ref; the producer's ref is returned as usual,
         * and every push fails once the request is detached */
        LOG_ERR("http", "request %s: cannot start the event stream", req->id);
    }
    return p;
}

ssize_t http__pending_sse_read(void *cls, uint64_t pos, char *buf, size_t max) {
    http_pending *p = cls;
    (void)pos;
    pthread_mutex_lock(&p->mu);
    size_t avail = p->buf_len - p->buf_off;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, p->buf + p->buf_off, n);
        p->buf_off += n;
        if (p->buf_off == p->buf_len) p->buf_off = p->buf_len = 0;
        http_req *req = p->req;
        pthread_mutex_unlock(&p->mu);
        if (req) req->bytes_out += n;
        return (ssize_t)n;
    }
    bool ended = p->done, aborted = p->aborted;
    http_req *req = p->req;
    pthread_mutex_unlock(&p->mu);
    if (ended) return MHD_CONTENT_READER_END_OF_STREAM;
    if (aborted || !req) return MHD_CONTENT_READER_END_WITH_ERROR;
    /* Nothing buffered: park the connection until a producer wakes it. A push
     * racing with this is safe: it queues a wake that resumes us. */
    req->suspended = true;
    MHD_suspend_connection(req->conn);
    return 0;
}

void http__pending_sse_free(void *cls) { http_pending_release(cls); }

/* Appends bytes to the SSE buffer; p->mu held. */
static int http__pending_append(http_pending *p, const char *s, size_t n) {
    if (p->buf_len + n > p->buf_cap) {
        size_t cap = p->buf_cap ? p->buf_cap : 4096;
        while (cap < p->buf_len + n) cap *= 2;
        char *nb = realloc(p->buf, cap);
        if (!nb) return -1;
        p->buf = nb;
        p->buf_cap = cap;
    }
    memcpy(p->buf + p->buf_len, s, n);
    p->buf_len += n;
    return 0;
}

int http_pending_sse_event(http_pending *p, const char *event, const char *data) {
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->sse || !p->attached || p->cancelled || p->done) {
        rc = -1;
        goto out;
    }
    if (event) {
        rc |= http__pending_append(p, "event: ", 7);
        rc |= http__pending_append(p, event, strlen(event));
        rc |= http__pending_append(p, "\n", 1);
    }
    /* one "data:" line per line of data, so newlines survive framing */
    for (const char *line = data;;) {
        const char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        rc |= http__pending_append(p, "data: ", 6);
        rc |= http__pending_append(p, line, n);
        rc |= http__pending_append(p, "\n", 1);
        if (!nl) break;
        line = nl + 1;
    }
    rc |= http__pending_append(p, "\n", 1);
    if (rc == 0) http__pending_wake_locked(p);
out:
    pthread_mutex_unlock(&p->mu);
    return rc ? -1 : 0;
}

int http_pending_write(http_pending *p, const char *data, size_t len) {
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->sse || !p->attached || p->cancelled || p->done || http__pending_append(p, data, len) != 0) rc = -1;
    else http__pending_wake_locked(p);
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int http_pending_sse_end(http_pending *p) {
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (!p->sse || !p->attached || p->cancelled || p->done) rc = -1;
    else {
        p->done = true;
        http__pending_wake_locked(p);
    }
    pthread_mutex_unlock(&p->mu);
    return rc;
}

int http_pending_reply_json(http_pending *p, unsigned status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    int rc = 0;
    pthread_mutex_lock(&p->mu);
    if (p->sse || !p->attached || p->cancelled || p->done || !text) rc = -1;
    else {
        p->reply_status = status;
        p->reply_body = text;
        text = NULL;
        p->done = true;
        http__pending_wake_locked(p);
    }
    pthread_mutex_unlock(&p->mu);
    free(text);
    return rc;
}

int http_pending_reply_error(http_pending *p, api_error_code code, const char *param,
                             const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return http_pending_reply_json(p, api_error_status(code), api_error_body(code, param, msg));
}

bool http_pending_cancelled(http_pending *p) {
    pthread_mutex_lock(&p->mu);
    bool c = p->cancelled || !p->attached;
    pthread_mutex_unlock(&p->mu);
    return c;
}

const char *http_pending_request_id(const http_pending *p) { return p->id; }
