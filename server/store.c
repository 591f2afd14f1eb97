/* store.c - the store's front (store.h, store_train.h): picks the backend
 * by the path's form and dispatches every call through its table
 * (store_backend.h); the helpers both backends share. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "store_backend.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "fnv.h"

/* ---- open / close ------------------------------------------------------------ */

static bool store__is_url(const char *path)
{
    return !strncmp(path, "postgres://", 11) || !strncmp(path, "postgresql://", 13);
}

int store_open(store **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (!path || !*path) {
        store_set_err(err, errlen, "store: empty database path");
        return -EINVAL;
    }
    store *s = calloc(1, sizeof *s);
    if (!s) {
        store_set_err(err, errlen, "store %s: out of memory", path);
        return -ENOMEM;
    }
    pthread_mutex_init(&s->mu, NULL);
    s->lock_fd = -1;
    s->ops = store__is_url(path) ? &store_pg_ops : &store_sqlite_ops;
    int rc = s->ops == &store_pg_ops ? store_pg_open(s, path, err, errlen)
                                     : store_sqlite_open(s, path, err, errlen);
    if (rc) {
        store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void store_close(store *s)
{
    if (!s)
        return;
    s->ops->close(s);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

const char *store_backend_name(const store *s)
{
    return s->ops->name;
}

/* ---- dispatch ------------------------------------------------------------------ */

int store_feedback_insert(store *s, store_feedback *rows, size_t n, const char *idem_key,
                          const char *request_hash, char ***ids_out, bool *replayed, char *err,
                          size_t errlen)
{
    return s->ops->feedback_insert(s, rows, n, idem_key, request_hash, ids_out, replayed, err,
                                   errlen);
}

int store_feedback_get(store *s, const char *id, store_feedback *out, char *err, size_t errlen)
{
    return s->ops->feedback_get(s, id, out, err, errlen);
}

int store_feedback_delete(store *s, const char *id, char *err, size_t errlen)
{
    return s->ops->feedback_delete(s, id, err, errlen);
}

int store_feedback_list(store *s, const store_filter *f, store_feedback **rows, size_t *n,
                        char *next_cursor, size_t cursor_len, char *err, size_t errlen)
{
    return s->ops->feedback_list(s, f, rows, n, next_cursor, cursor_len, err, errlen);
}

int store_feedback_each(store *s, const store_filter *f,
                        int (*cb)(void *ud, const store_feedback *row), void *ud, char *err,
                        size_t errlen)
{
    return s->ops->feedback_each(s, f, cb, ud, err, errlen);
}

int store_feedback_stats(store *s, json_t **out, char *err, size_t errlen)
{
    return s->ops->feedback_stats(s, out, err, errlen);
}

int store_run_create(store *s, store_run *r, char *err, size_t errlen)
{
    char id[STORE_RUN_ID_LEN + 1];
    if (!r->model || !r->kind || !r->trigger) {
        store_set_err(err, errlen, "store: a run needs model, kind and trigger");
        return -EINVAL;
    }
    if (store_new_id(id, "run_"))
        return -EIO;
    int64_t now = store_now_ms();
    int e = s->ops->run_insert(s, r, id, now, err, errlen);
    if (e)
        return e;
    free(r->id), free(r->status);
    r->id = strdup(id);
    r->status = strdup("queued");
    r->created_at = now;
    r->cancel_requested = false;
    return r->id && r->status ? 0 : -ENOMEM;
}

int store_run_update(store *s, const store_run *r, char *err, size_t errlen)
{
    return s->ops->run_update(s, r, err, errlen);
}

int store_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen)
{
    return s->ops->run_get(s, id, out, err, errlen);
}

int store_run_list(store *s, int limit, store_run **rows, size_t *n, char *err, size_t errlen)
{
    return s->ops->run_list(s, limit, rows, n, err, errlen);
}

int store_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen)
{
    return s->ops->runs_fail_interrupted(s, n, err, errlen);
}

int store_run_last_created(store *s, const char *model, int64_t *ms, char *err, size_t errlen)
{
    return s->ops->run_last_created(s, model, ms, err, errlen);
}

int store_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen)
{
    return s->ops->pairs_since(s, since_ms, n, err, errlen);
}

int store_run_claim(store *s, store_run *out, char *err, size_t errlen)
{
    return s->ops->run_claim(s, out, err, errlen);
}

int store_run_request_cancel(store *s, const char *id, store_run *out, char *err, size_t errlen)
{
    return s->ops->run_request_cancel(s, id, out, err, errlen);
}

int store_adapter_register(store *s, store_adapter *a, char *err, size_t errlen)
{
    char id[STORE_ADAPTER_ID_LEN + 1];
    if (!a->model || !a->path || !a->sha256) {
        store_set_err(err, errlen, "store: an adapter needs model, path and sha256");
        return -EINVAL;
    }
    if (store_new_id(id, "ad_"))
        return -EIO;
    int64_t now = store_now_ms(), version = 0;
    int e = s->ops->adapter_insert(s, a, id, now, &version, err, errlen);
    if (e)
        return e;
    free(a->id);
    if (!a->status)
        a->status = strdup("candidate");
    a->id = strdup(id), a->version = version, a->created_at = now;
    return a->id && a->status ? 0 : -ENOMEM;
}

int store_adapter_get(store *s, const char *id, store_adapter *out, char *err, size_t errlen)
{
    return s->ops->adapter_get(s, id, out, err, errlen);
}

int store_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                         size_t errlen)
{
    return s->ops->adapter_active(s, model, out, err, errlen);
}

int store_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n, char *err,
                       size_t errlen)
{
    return s->ops->adapter_list(s, model, rows, n, err, errlen);
}

int store_adapter_activate(store *s, const char *model, const char *id, char *err,
                           size_t errlen)
{
    return s->ops->adapter_activate(s, model, id, err, errlen);
}

int store_adapter_set_reason(store *s, const char *id, const char *reason, const char *metrics,
                             char *err, size_t errlen)
{
    return s->ops->adapter_set_reason(s, id, reason, metrics, err, errlen);
}

int store_reward_model_add(store *s, store_reward_model *r, char *err, size_t errlen)
{
    char id[STORE_REWARD_ID_LEN + 1];
    if (!r->model || !r->path) {
        store_set_err(err, errlen, "store: a reward model needs model and path");
        return -EINVAL;
    }
    if (store_new_id(id, "rm_"))
        return -EIO;
    int64_t now = store_now_ms();
    int e = s->ops->reward_model_insert(s, r, id, now, err, errlen);
    if (e)
        return e;
    free(r->id), free(r->status);
    r->id = strdup(id), r->status = strdup("active"), r->created_at = now;
    return r->id && r->status ? 0 : -ENOMEM;
}

int store_reward_model_active(store *s, const char *model, store_reward_model *out, char *err,
                              size_t errlen)
{
    return s->ops->reward_model_active(s, model, out, err, errlen);
}

int store_trainer_lock(store *s, bool *held, char *err, size_t errlen)
{
    return s->ops->trainer_lock(s, held, err, errlen);
}

int store_listen_fd(store *s, int *fd, char *err, size_t errlen)
{
    return s->ops->listen_fd(s, fd, err, errlen);
}

int store_listen_drain(store *s, int *n, char *err, size_t errlen)
{
    return s->ops->listen_drain(s, n, err, errlen);
}

/* ---- rows ------------------------------------------------------------------------ */

void store_feedback_clear(store_feedback *r)
{
    if (!r)
        return;
    free(r->id), free(r->prompt), free(r->chosen), free(r->rejected);
    free(r->format), free(r->kind), free(r->annotator), free(r->source);
    free(r->model), free(r->adapter), free(r->comment), free(r->metadata);
    free(r->split);
    memset(r, 0, sizeof *r);
}

void store_ids_free(char **ids)
{
    if (!ids)
        return;
    for (char **p = ids; *p; p++)
        free(*p);
    free(ids);
}

void store_run_clear(store_run *r)
{
    if (!r)
        return;
    free(r->id), free(r->model), free(r->kind), free(r->trigger), free(r->status);
    free(r->config), free(r->metrics), free(r->history), free(r->error), free(r->adapter_id);
    memset(r, 0, sizeof *r);
}

void store_run_list_free(store_run *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        store_run_clear(&rows[i]);
    free(rows);
}

void store_adapter_clear(store_adapter *a)
{
    if (!a)
        return;
    free(a->id), free(a->model), free(a->parent_id), free(a->run_id), free(a->status);
    free(a->metrics), free(a->path), free(a->sha256), free(a->reason);
    memset(a, 0, sizeof *a);
}

void store_adapter_list_free(store_adapter *rows, size_t n)
{
    for (size_t i = 0; rows && i < n; i++)
        store_adapter_clear(&rows[i]);
    free(rows);
}

void store_reward_model_clear(store_reward_model *r)
{
    if (!r)
        return;
    free(r->id), free(r->model), free(r->run_id), free(r->path), free(r->status);
    memset(r, 0, sizeof *r);
}

/* ---- shared helpers ------------------------------------------------------------ */

void store_set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

int64_t store_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int store_new_id(char *out, const char *prefix)
{
    unsigned char b[12];
    size_t got = 0;
    while (got < sizeof b) {
        ssize_t r = getrandom(b + got, sizeof b - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)r;
    }
    static const char hex[] = "0123456789abcdef";
    size_t k = strlen(prefix);
    memcpy(out, prefix, k);
    for (size_t i = 0; i < sizeof b; i++) {
        out[k + 2 * i] = hex[b[i] >> 4];
        out[k + 2 * i + 1] = hex[b[i] & 15];
    }
    out[k + 2 * sizeof b] = '\0';
    return 0;
}

bool store_valid_feedback_id(const char *id)
{
    if (strlen(id) != STORE_ID_LEN || strncmp(id, "fb_", 3) != 0)
        return false;
    for (const char *p = id + 3; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

const char *store_split_of(const char *id)
{
    uint64_t h = fnv1a64(FNV1A64_BASIS, id, strlen(id));
    return h % 10 == 0 ? "eval" : "train";
}

static bool store__one_of(const char *v, const char *a, const char *b, const char *c)
{
    return v && (strcmp(v, a) == 0 || strcmp(v, b) == 0 || (c && strcmp(v, c) == 0));
}

static bool store__is_json(const char *text, bool array_only)
{
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    bool ok = j && (!array_only || json_is_array(j));
    json_decref(j);
    return ok;
}

int store_feedback_validate(const store_feedback *r, size_t i, char *err, size_t errlen)
{
    const char *missing = !r->prompt ? "prompt" : !r->chosen ? "chosen"
                        : !r->rejected ? "rejected" : NULL;
    if (missing) {
        store_set_err(err, errlen, "rows[%zu].%s: required", i, missing);
        return -EINVAL;
    }
    if (!store__one_of(r->format, "text", "messages", NULL)) {
        store_set_err(err, errlen, "rows[%zu].format: must be 'text' or 'messages'", i);
        return -EINVAL;
    }
    if (!store__one_of(r->kind, "pair", "tie", "both_bad")) {
        store_set_err(err, errlen, "rows[%zu].kind: must be 'pair', 'tie' or 'both_bad'", i);
        return -EINVAL;
    }
    if (!store__one_of(r->source, "api", "form", NULL)) {
        store_set_err(err, errlen, "rows[%zu].source: must be 'api' or 'form'", i);
        return -EINVAL;
    }
    if (strcmp(r->format, "messages") == 0) {
        const char *f = !store__is_json(r->prompt, true) ? "prompt"
                      : !store__is_json(r->chosen, true) ? "chosen"
                      : !store__is_json(r->rejected, true) ? "rejected" : NULL;
        if (f) {
            store_set_err(err, errlen, "rows[%zu].%s: must be a JSON messages array when format "
                          "is 'messages'", i, f);
            return -EINVAL;
        }
    }
    if (r->metadata && !store__is_json(r->metadata, false)) {
        store_set_err(err, errlen, "rows[%zu].metadata: not valid JSON", i);
        return -EINVAL;
    }
    if (r->id && !store_valid_feedback_id(r->id)) {
        store_set_err(err, errlen, "rows[%zu].id: must be 'fb_' and 24 lowercase hex digits", i);
        return -EINVAL;
    }
    return 0;
}

char **store_ids_from_json(const char *text)
{
    json_t *a = json_loads(text, 0, NULL);
    if (!json_is_array(a)) {
        json_decref(a);
        return NULL;
    }
    size_t n = json_array_size(a);
    char **ids = calloc(n + 1, sizeof *ids);
    for (size_t i = 0; ids && i < n; i++) {
        const char *v = json_string_value(json_array_get(a, i));
        if (!v || !(ids[i] = strdup(v))) {
            store_ids_free(ids);
            ids = NULL;
        }
    }
    json_decref(a);
    return ids;
}

int store_parse_cursor(const char *c, int64_t *ms, const char **id)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(c, &end, 10);
    if (errno || end == c || *end != ':' || v < 0 || !store_valid_feedback_id(end + 1))
        return -EINVAL;
    *ms = (int64_t)v;
    *id = end + 1;
    return 0;
}
