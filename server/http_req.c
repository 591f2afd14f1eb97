/* http_req.c - one request's life on the loop thread: creation (request id),
 * accessors for handlers, and immediate replies. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_internal.h"
#include "log.h"

/* A client's X-Request-Id is echoed when it is short and harmless in logs. */
static bool http__id_acceptable(const char *id) {
    size_t n = strlen(id);
    if (n == 0 || n > 64) return false;
    for (const char *p = id; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '-' || *p == '_' || *p == '.' || *p == ':'))
            return false;
    return true;
}

http_req *http__req_new(http_server *srv, struct MHD_Connection *conn, const char *method,
                        const char *url) {
    http_req *req = calloc(1, sizeof *req);
    if (!req) return NULL;
    req->srv = srv;
    req->conn = conn;
    req->t_start_ns = uv_hrtime();
    snprintf(req->method, sizeof req->method, "%s", method);
    req->path = strdup(url);
    if (!req->path) {
        free(req);
        return NULL;
    }
    const char *given = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-Request-Id");
    if (given && http__id_acceptable(given))
        snprintf(req->id, sizeof req->id, "%s", given);
    else
        snprintf(req->id, sizeof req->id, "%s-%06llx", srv->id_prefix,
                 (unsigned long long)++srv->next_req_seq);
    req->status = 499; /* until a response is queued: the client left first */
    /* link into the in-flight list */
    req->next = srv->in_flight;
    if (srv->in_flight) srv->in_flight->prev = req;
    srv->in_flight = req;
    srv->n_in_flight++;
    return req;
}

void http__req_free(http_req *req) {
    if (!req) return;
    http_server *srv = req->srv;
    if (req->prev) req->prev->next = req->next;
    else srv->in_flight = req->next;
    if (req->next) req->next->prev = req->prev;
    srv->n_in_flight--;
    http__watch_stop(req);
    if (req->pending) http__pending_detach(req->pending);
    for (int i = 0; i < ROUTER_MAX_PARAMS; i++) free(req->params[i]);
    for (int i = 0; i < req->n_hdr; i++) {
        free(req->hdr[i].name);
        free(req->hdr[i].value);
    }
    json_decref(req->json);
    free(req->body);
    free(req->path);
    free(req);
}

const char *http_req_method(const http_req *req) { return req->method; }
const char *http_req_path(const http_req *req) { return req->path; }
const char *http_req_id(const http_req *req) { return req->id; }
const route *http_req_route(const http_req *req) { return req->route; }
void *http_req_app(const http_req *req) { return req->srv->opts.app; }
json_t *http_req_json(const http_req *req) { return req->json; }

const char *http_req_body(const http_req *req, size_t *len) {
    if (len) *len = req->body_len;
    return req->body ? req->body : "";
}

const char *http_req_param(const http_req *req, const char *name) {
    size_t n = strlen(name);
    for (int i = 0; i < req->match.n_params; i++)
        if (req->match.params[i].name_len == n && memcmp(req->match.params[i].name, name, n) == 0)
            return req->params[i];
    return NULL;
}

const char *http_req_query(const http_req *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_req_header(const http_req *req, const char *name) {
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

void http_reply_header(http_req *req, const char *name, const char *value) {
    if (req->n_hdr >= HTTP__MAX_EXTRA_HEADERS) {
        LOG_ERR("http", "request %s: too many extra headers, dropping %s", req->id, name);
        return;
    }
    req->hdr[req->n_hdr].name = strdup(name);
    req->hdr[req->n_hdr].value = strdup(value);
    req->n_hdr++;
}

enum MHD_Result http__queue(http_req *req, unsigned status, const char *content_type,
                            struct MHD_Response *resp) {
    if (!resp) {
        LOG_ERR("http", "request %s: cannot create a response (out of memory)", req->id);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "X-Request-Id", req->id);
    /* every answer (JSON, HTML, streams): browsers must not guess types */
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (content_type) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    for (int i = 0; i < req->n_hdr; i++)
        if (req->hdr[i].name && req->hdr[i].value)
            MHD_add_response_header(resp, req->hdr[i].name, req->hdr[i].value);
    if (req->srv->draining) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result rc = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (rc == MHD_YES) {
        req->responded = true;
        req->status = status;
    } else {
        LOG_ERR("http", "request %s: MHD refused to queue status %u", req->id, status);
    }
    return rc;
}

void http__reply_text_owned(http_req *req, unsigned status, const char *content_type,
                            char *text, size_t len) {
    if (req->responded) {
        LOG_ERR("http", "request %s: second reply (status %u) ignored", req->id, status);
        free(text);
        return;
    }
    struct MHD_Response *resp =
        text ? MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!resp) free(text);
    req->bytes_out = len;
    http__queue(req, status, content_type, resp);
}

void http_reply_json(http_req *req, unsigned status, json_t *body) {
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(body);
    if (!text) {
        LOG_ERR("http", "request %s: cannot serialise a JSON reply", req->id);
        status = 500;
        text = strdup("{\"error\":{\"message\":\"cannot serialise reply\",\"type\":"
                      "\"server_error\",\"param\":null,\"code\":\"internal_error\"}}");
    }
    size_t len = text ? strlen(text) : 0;
    http__reply_text_owned(req, status, "application/json", text, len);
}

void http_reply_data(http_req *req, unsigned status, const char *content_type,
                     const char *data, size_t len) {
    char *copy = malloc(len ? len : 1);
    if (copy) memcpy(copy, data, len);
    http__reply_text_owned(req, status, content_type, copy, len);
}

void http_reply_error(http_req *req, api_error_code code, const char *param, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    http_reply_json(req, api_error_status(code), api_error_body(code, param, msg));
}
