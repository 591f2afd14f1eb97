/* feedback.c - preference feedback over REST:
 *   POST   /v1/feedback            one object or an array (all or nothing);
 *                                  Idempotency-Key makes retries safe
 *   GET    /v1/feedback            newest first, cursor pagination, filters
 *   GET    /v1/feedback/{id}
 *   DELETE /v1/feedback/{id}
 *   GET    /v1/feedback/export     JSONL in TRL's prompt/chosen/rejected form,
 *                                  streamed from a thread (pairs by default)
 *   GET    /v1/feedback/stats      counts by kind, annotator, day
 * Items are text (prompt/chosen/rejected strings) or TRL's conversational
 * form (messages arrays). The store is SQLite (server/store_sqlite.c).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "routes.h"
#include "tok_utf8.h"

/* ---- validation ------------------------------------------------------------ */

typedef struct api__fb_err {
    api_error_code code;
    char param[64];
    char msg[512];
} api__fb_err;

__attribute__((format(printf, 4, 5)))
static int api__fb_bad(api__fb_err *e, api_error_code code, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param);
    return -1;
}

/* A text field, or a messages array ([{role, content}]) serialised to JSON. */
static int api__fb_text(json_t *v, const char *name, size_t idx, bool messages, size_t max, char **out,
                        api__fb_err *e) {
    if (!v || json_is_null(v))
        return api__fb_bad(e, API_ERR_BAD_REQUEST, name, "items[%zu].%s is required", idx, name);
    if (messages) {
        if (!json_is_array(v) || json_array_size(v) == 0)
            return api__fb_bad(e, API_ERR_BAD_REQUEST, name,
                               "items[%zu].%s must be a non-empty messages array (the prompt is one)", idx, name);
        size_t i;
        json_t *m;
        json_array_foreach(v, i, m) {
            const char *role = json_string_value(json_object_get(m, "role"));
            if (!role || !json_is_string(json_object_get(m, "content")))
                return api__fb_bad(e, API_ERR_BAD_REQUEST, name,
                                   "items[%zu].%s[%zu] must be {\"role\": string, \"content\": string}", idx, name, i);
            if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant"))
                return api__fb_bad(e, API_ERR_INVALID_VALUE, name,
                                   "items[%zu].%s[%zu].role must be system, user or assistant", idx, name, i);
        }
        *out = json_dumps(v, JSON_COMPACT);
    } else {
        if (!json_is_string(v))
            return api__fb_bad(e, API_ERR_BAD_REQUEST, name, "items[%zu].%s must be a string", idx, name);
        if (json_string_length(v) == 0)
            return api__fb_bad(e, API_ERR_BAD_REQUEST, name, "items[%zu].%s is empty", idx, name);
        *out = strdup(json_string_value(v));
    }
    if (!*out) return api__fb_bad(e, API_ERR_INTERNAL, name, "out of memory");
    if (strlen(*out) > max)
        return api__fb_bad(e, API_ERR_INVALID_VALUE, name, "items[%zu].%s is %zu bytes; the limit is %zu",
                           idx, name, strlen(*out), max);
    return 0;
}

static int api__fb_opt(json_t *item, const char *name, size_t idx, size_t max, char **out, api__fb_err *e) {
    json_t *v = json_object_get(item, name);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return api__fb_bad(e, API_ERR_BAD_REQUEST, name, "items[%zu].%s must be a string", idx, name);
    if (json_string_length(v) > max)
        return api__fb_bad(e, API_ERR_INVALID_VALUE, name, "items[%zu].%s is longer than %zu bytes", idx, name, max);
    if (!(*out = strdup(json_string_value(v)))) return api__fb_bad(e, API_ERR_INTERNAL, name, "out of memory");
    return 0;
}

/* One item of the body into a row (source "api"). */
static int api__fb_item(json_t *item, size_t idx, size_t max, store_feedback *row, api__fb_err *e) {
    memset(row, 0, sizeof *row);
    if (!json_is_object(item)) return api__fb_bad(e, API_ERR_BAD_REQUEST, "items", "items[%zu] must be an object", idx);
    bool messages = json_is_array(json_object_get(item, "prompt"));
    if (api__fb_text(json_object_get(item, "prompt"), "prompt", idx, messages, max, &row->prompt, e) ||
        api__fb_text(json_object_get(item, "chosen"), "chosen", idx, messages, max, &row->chosen, e) ||
        api__fb_text(json_object_get(item, "rejected"), "rejected", idx, messages, max, &row->rejected, e))
        return -1;
    const char *kind = "pair";
    json_t *k = json_object_get(item, "kind");
    if (k && !json_is_null(k)) {
        kind = json_string_value(k);
        if (!kind || (strcmp(kind, "pair") && strcmp(kind, "tie") && strcmp(kind, "both_bad")))
            return api__fb_bad(e, API_ERR_INVALID_VALUE, "kind", "items[%zu].kind must be pair, tie or both_bad", idx);
    }
    if (!strcmp(kind, "pair") && !strcmp(row->chosen, row->rejected))
        return api__fb_bad(e, API_ERR_INVALID_VALUE, "rejected", "items[%zu]: chosen and rejected are the same", idx);
    if (api__fb_opt(item, "annotator", idx, 256, &row->annotator, e) || api__fb_opt(item, "model", idx, 256, &row->model, e) ||
        api__fb_opt(item, "adapter", idx, 256, &row->adapter, e) || api__fb_opt(item, "comment", idx, max, &row->comment, e))
        return -1;
    json_t *meta = json_object_get(item, "metadata");
    if (meta && !json_is_null(meta)) {
        if (!json_is_object(meta)) return api__fb_bad(e, API_ERR_BAD_REQUEST, "metadata", "items[%zu].metadata must be an object", idx);
        row->metadata = json_dumps(meta, JSON_COMPACT);
        if (row->metadata && strlen(row->metadata) > max)
            return api__fb_bad(e, API_ERR_INVALID_VALUE, "metadata", "items[%zu].metadata is larger than %zu bytes", idx, max);
    }
    const char *source = "api";
    json_t *src = json_object_get(item, "source");
    if (src && !json_is_null(src)) {
        source = json_string_value(src);
        if (!source || (strcmp(source, "api") && strcmp(source, "form")))
            return api__fb_bad(e, API_ERR_INVALID_VALUE, "source", "items[%zu].source must be api or form", idx);
    }
    row->format = strdup(messages ? "messages" : "text");
    row->kind = strdup(kind);
    row->source = strdup(source);
    if (!row->format || !row->kind || !row->source) return api__fb_bad(e, API_ERR_INTERNAL, "items", "out of memory");
    return 0;
}

/* ---- rows as JSON -------------------------------------------------------- */

static json_t *api__fb_field(const char *s, bool messages) {
    if (!s) return json_null();
    if (messages) {
        json_t *j = json_loads(s, 0, NULL);
        if (j) return j;
    }
    return json_string(s);
}

static json_t *api__fb_json(const store_feedback *r) {
    bool m = r->format && !strcmp(r->format, "messages");
    json_t *meta = r->metadata ? json_loads(r->metadata, 0, NULL) : NULL;
    return json_pack("{s:s, s:s, s:I, s:o, s:o, s:o, s:s, s:o, s:s, s:o, s:o, s:o, s:o, s:s}", "id", r->id, "object",
                     "feedback", "created_at", (json_int_t)(r->created_at / 1000), "prompt", api__fb_field(r->prompt, m),
                     "chosen", api__fb_field(r->chosen, m), "rejected", api__fb_field(r->rejected, m), "kind", r->kind,
                     "annotator", api__fb_field(r->annotator, false), "source", r->source, "model",
                     api__fb_field(r->model, false), "adapter", api__fb_field(r->adapter, false), "comment",
                     api__fb_field(r->comment, false), "metadata", meta ? meta : json_null(), "split", r->split);
}

static unsigned api__fb_status(int rc) {
    return rc == -ENOENT ? 404 : rc == -EEXIST ? 409 : rc == -EINVAL ? 422 : rc == -EBUSY ? 503 : 500;
}

/* ---- handlers ------------------------------------------------------------ */

void api_feedback_create(http_req *req) {
    app *a = http_req_app(req);
    json_t *body = http_req_json(req);
    bool many = json_is_array(body);
    size_t n = many ? json_array_size(body) : 1, max = (size_t)a->cfg->feedback_max_text_bytes;
    if (!many && !json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "body must be a feedback object or an array of them");
        return;
    }
    if (n == 0 || n > (size_t)a->cfg->feedback_max_batch) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "items", "send 1 to %lld feedback items, not %zu",
                         a->cfg->feedback_max_batch, n);
        return;
    }
    store_feedback *rows = calloc(n, sizeof *rows);
    char **ids = NULL;
    if (!rows) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return;
    }
    api__fb_err e = {0};
    for (size_t i = 0; i < n; i++)
        if (api__fb_item(many ? json_array_get(body, i) : body, i, max, &rows[i], &e) != 0) {
            http_reply_error(req, e.code, e.param, "%s", e.msg); /* one bad item: nothing is stored */
            goto out;
        }
    const char *key = http_req_header(req, "Idempotency-Key");
    char hash[24] = "";
    if (key) { /* the same key must come with the same body */
        size_t len;
        const char *b = http_req_body(req, &len);
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)b[i]) * 1099511628211ull;
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)h);
        if (strlen(key) > 255) {
            http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "Idempotency-Key is longer than 255 bytes");
            goto out;
        }
    }
    bool replayed = false;
    char err[512];
    int rc = store_feedback_insert(a->store, rows, n, key, key ? hash : NULL, &ids, &replayed, err, sizeof err);
    if (rc != 0) {
        http_reply_json(req, api__fb_status(rc), api_error_body(rc == -EEXIST ? API_ERR_BAD_REQUEST : API_ERR_INTERNAL,
                                                                NULL, err));
        goto out;
    }
    json_t *data = json_array();
    for (size_t i = 0; ids && ids[i]; i++) {
        store_feedback r = {0};
        if (store_feedback_get(a->store, ids[i], &r, err, sizeof err) == 0) json_array_append_new(data, api__fb_json(&r));
        else json_array_append_new(data, json_pack("{s:s, s:s, s:b}", "id", ids[i], "object", "feedback", "deleted", 1));
        store_feedback_clear(&r);
    }
    if (replayed) http_reply_header(req, "Idempotent-Replayed", "true");
    if (many) http_reply_json(req, replayed ? 200 : 201, json_pack("{s:s, s:o}", "object", "list", "data", data));
    else {
        json_t *one = json_incref(json_array_get(data, 0));
        json_decref(data);
        http_reply_json(req, replayed ? 200 : 201, one);
    }
out:
    for (size_t i = 0; i < n; i++) store_feedback_clear(&rows[i]);
    free(rows);
    store_ids_free(ids);
}

/* Filters from the query string; answers the request and returns -1 on a bad one. */
static int api__fb_filter(http_req *req, store_filter *f) {
    memset(f, 0, sizeof *f);
    f->kind = http_req_query(req, "kind");
    f->annotator = http_req_query(req, "annotator");
    f->after = http_req_query(req, "after");
    const char *names[] = {"since", "until", "limit"};
    for (int i = 0; i < 3; i++) {
        const char *v = http_req_query(req, names[i]);
        if (!v) continue;
        char *end;
        errno = 0;
        long long x = strtoll(v, &end, 10);
        if (errno || end == v || *end || x < 0 || (i == 2 && (x < 1 || x > STORE_LIST_MAX))) {
            if (i == 2) http_reply_error(req, API_ERR_INVALID_VALUE, "limit", "limit must be in [1, %d]", STORE_LIST_MAX);
            else http_reply_error(req, API_ERR_INVALID_VALUE, names[i], "%s must be unix seconds", names[i]);
            return -1;
        }
        if (i == 0) f->since_ms = x * 1000;
        else if (i == 1) f->until_ms = x * 1000;
        else f->limit = (int)x;
    }
    if (f->kind && strcmp(f->kind, "pair") && strcmp(f->kind, "tie") && strcmp(f->kind, "both_bad")) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "kind", "kind must be pair, tie or both_bad");
        return -1;
    }
    return 0;
}

void api_feedback_list(http_req *req) {
    app *a = http_req_app(req);
    store_filter f;
    if (api__fb_filter(req, &f) != 0) return;
    store_feedback *rows = NULL;
    size_t n = 0;
    char cursor[STORE_CURSOR_MAX], err[512];
    int rc = store_feedback_list(a->store, &f, &rows, &n, cursor, sizeof cursor, err, sizeof err);
    if (rc != 0) {
        http_reply_json(req, api__fb_status(rc), api_error_body(rc == -EINVAL ? API_ERR_INVALID_VALUE : API_ERR_INTERNAL,
                                                                rc == -EINVAL ? "after" : NULL, err));
        return;
    }
    json_t *data = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(data, api__fb_json(&rows[i]));
        store_feedback_clear(&rows[i]);
    }
    free(rows);
    http_reply_json(req, 200, json_pack("{s:s, s:o, s:b, s:o}", "object", "list", "data", data, "has_more", cursor[0] != 0,
                                        "next_cursor", cursor[0] ? json_string(cursor) : json_null()));
}

void api_feedback_get(http_req *req) {
    app *a = http_req_app(req);
    store_feedback r = {0};
    char err[512];
    int rc = store_feedback_get(a->store, http_req_param(req, "id"), &r, err, sizeof err);
    if (rc == -ENOENT) http_reply_error(req, API_ERR_NOT_FOUND, "id", "no feedback with id '%s'", http_req_param(req, "id"));
    else if (rc) http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else http_reply_json(req, 200, api__fb_json(&r));
    store_feedback_clear(&r);
}

void api_feedback_delete(http_req *req) {
    app *a = http_req_app(req);
    char err[512];
    const char *id = http_req_param(req, "id");
    int rc = store_feedback_delete(a->store, id, err, sizeof err);
    if (rc == -ENOENT) http_reply_error(req, API_ERR_NOT_FOUND, "id", "no feedback with id '%s'", id);
    else if (rc) http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else http_reply_json(req, 200, json_pack("{s:s, s:s, s:b}", "id", id, "object", "feedback", "deleted", 1));
}

void api_feedback_stats(http_req *req) {
    app *a = http_req_app(req);
    json_t *stats = NULL;
    char err[512];
    if (store_feedback_stats(a->store, &stats, err, sizeof err) != 0) http_reply_error(req, API_ERR_INTERNAL, NULL, "%s", err);
    else http_reply_json(req, 200, stats);
}

/* ---- export: a thread streams JSONL into the response ------------------- */

typedef struct api__export {
    uv_work_t work;  /* a libuv work thread: the loop (and the store) outlive it */
    store *st;
    http_pending *p;
    char *kind, *annotator;
    int64_t since_ms, until_ms;
    bool all_kinds;
} api__export;

static int api__export_row(void *ud, const store_feedback *r) {
    api__export *x = ud;
    bool m = !strcmp(r->format, "messages");
    json_t *line = json_pack("{s:o, s:o, s:o}", "prompt", api__fb_field(r->prompt, m), "chosen", api__fb_field(r->chosen, m),
                             "rejected", api__fb_field(r->rejected, m));
    if (x->all_kinds) json_object_set_new(line, "kind", json_string(r->kind));
    json_object_set_new(line, "id", json_string(r->id));
    char *text = json_dumps(line, JSON_COMPACT);
    json_decref(line);
    int rc = text ? http_pending_write(x->p, text, strlen(text)) : -1;
    if (rc == 0) rc = http_pending_write(x->p, "\n", 1);
    free(text);
    return rc ? 1 : 0; /* client gone: stop */
}

static void api__export_work(uv_work_t *w) {
    api__export *x = w->data;
    store_filter f = {.kind = x->all_kinds ? x->kind : (x->kind ? x->kind : "pair"), .annotator = x->annotator,
                      .since_ms = x->since_ms, .until_ms = x->until_ms};
    char err[512];
    store_feedback_each(x->st, &f, api__export_row, x, err, sizeof err);
    http_pending_sse_end(x->p);
}

static void api__export_done(uv_work_t *w, int status) {
    api__export *x = w->data;
    (void)status;
    http_pending_release(x->p);
    free(x->kind), free(x->annotator);
    free(x);
}

void api_feedback_export(http_req *req) {
    app *a = http_req_app(req);
    store_filter f;
    if (api__fb_filter(req, &f) != 0) return;
    const char *all = http_req_query(req, "all");
    api__export *x = calloc(1, sizeof *x);
    if (!x) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return;
    }
    x->st = a->store;
    x->all_kinds = all && !strcmp(all, "true") && !f.kind;
    x->kind = f.kind ? strdup(f.kind) : NULL;
    x->annotator = f.annotator ? strdup(f.annotator) : NULL;
    x->since_ms = f.since_ms;
    x->until_ms = f.until_ms;
    http_reply_header(req, "Content-Disposition", "attachment; filename=\"feedback.jsonl\"");
    x->p = http_stream_start(req, "application/x-ndjson");
    x->work.data = x;
    if (!x->p || uv_queue_work(&a->loop, &x->work, api__export_work, api__export_done) != 0) {
        if (x->p) {
            http_pending_sse_end(x->p);
            http_pending_release(x->p);
        }
        free(x->kind), free(x->annotator);
        free(x);
    }
}

void api_feedback_prompts(http_req *req) {
    app *a = http_req_app(req);
    http_reply_json(req, 200, json_pack("{s:s, s:O}", "object", "list", "data", a->prompts));
}
