/* store_sqlite_train.c - training runs, the adapter registry and the reward
 * models in the SQLite store (store_train.h, store_sqlite_impl.h). Constant SQL with bound parameters; every call
 * holds the store's mutex and is one transaction. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "store_sqlite_impl.h"

#define RUN_COLS "id, model, kind, trigger, status, created_at, started_at, finished_at, pairs, " \
                 "config, metrics, history, error, adapter_id, cancel_requested"
#define AD_COLS "id, model, version, parent_id, run_id, status, metrics, path, sha256, " \
                "created_at, reason"

static int st__code(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_CONSTRAINT: return -EINVAL;
    default: return -EIO;
    }
}

static int st__fail(store *s, int rc, const char *what, char *err, size_t errlen)
{
    store_set_err(err, errlen, "store: %s: %s", what, sqlite3_errmsg(s->db));
    return st__code(rc);
}

static char *st__dup(sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? strdup((const char *)t) : NULL;
}

static void st__text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void st__int(sqlite3_stmt *st, int i, int64_t v)
{
    if (v)
        sqlite3_bind_int64(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

/* Runs one prepared statement to completion (no rows wanted). */
static int st__done(store *s, sqlite3_stmt *st, const char *what, char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : st__fail(s, rc, what, err, errlen);
}

static int st__prep(store *s, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
    int rc = sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
    return rc == SQLITE_OK ? 0 : st__fail(s, rc, sql, err, errlen);
}

/* ---- runs ------------------------------------------------------------------ */

static int st__begin(store *s, char *err, size_t errlen)
{
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : st__fail(s, rc, "BEGIN IMMEDIATE", err, errlen);
}

/* COMMIT when e is 0, else ROLLBACK; returns e or COMMIT's failure. */
static int st__end(store *s, int e, char *err, size_t errlen)
{
    if (!e) {
        int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            return 0;
        e = st__fail(s, rc, "COMMIT", err, errlen);
    }
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return e;
}

static void st__run_row(sqlite3_stmt *st, store_run *r)
{
    r->id = st__dup(st, 0), r->model = st__dup(st, 1), r->kind = st__dup(st, 2);
    r->trigger = st__dup(st, 3), r->status = st__dup(st, 4);
    r->created_at = sqlite3_column_int64(st, 5);
    r->started_at = sqlite3_column_int64(st, 6);
    r->finished_at = sqlite3_column_int64(st, 7);
    r->pairs = sqlite3_column_int64(st, 8);
    r->config = st__dup(st, 9), r->metrics = st__dup(st, 10), r->history = st__dup(st, 11);
    r->error = st__dup(st, 12), r->adapter_id = st__dup(st, 13);
    r->cancel_requested = sqlite3_column_int(st, 14) != 0;
}

int store_sqlite_run_insert(store *s, const store_run *r, const char *id, int64_t now,
                            char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    /* check and insert in one write transaction: one open run at a time */
    int e = st__begin(s, err, errlen);
    if (!e)
        e = st__prep(s, "SELECT id, status FROM training_runs WHERE status IN ('queued','running') "
                        "LIMIT 1", &st, err, errlen);
    if (!e) {
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            store_set_err(err, errlen, "a training run is already %s (%s)",
                          (const char *)sqlite3_column_text(st, 1),
                          (const char *)sqlite3_column_text(st, 0));
            e = -EBUSY;
        } else if (rc != SQLITE_DONE) {
            e = st__fail(s, rc, "looking for an open training run", err, errlen);
        }
        sqlite3_finalize(st);
    }
    if (!e)
        e = st__prep(s, "INSERT INTO training_runs (id, model, kind, trigger, status, created_at, "
                        "config) VALUES (?, ?, ?, ?, 'queued', ?, ?)", &st, err, errlen);
    if (!e) {
        st__text(st, 1, id), st__text(st, 2, r->model), st__text(st, 3, r->kind);
        st__text(st, 4, r->trigger), sqlite3_bind_int64(st, 5, now), st__text(st, 6, r->config);
        e = st__done(s, st, "inserting a training run", err, errlen);
    }
    e = st__end(s, e, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_run_update(store *s, const store_run *r, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "UPDATE training_runs SET status = ?, started_at = ?, finished_at = ?, "
                        "pairs = ?, config = ?, metrics = ?, history = ?, error = ?, "
                        "adapter_id = ? WHERE id = ?", &st, err, errlen);
    if (!e) {
        st__text(st, 1, r->status), st__int(st, 2, r->started_at), st__int(st, 3, r->finished_at);
        sqlite3_bind_int64(st, 4, r->pairs), st__text(st, 5, r->config);
        st__text(st, 6, r->metrics), st__text(st, 7, r->history), st__text(st, 8, r->error);
        st__text(st, 9, r->adapter_id), st__text(st, 10, r->id);
        e = st__done(s, st, "updating a training run", err, errlen);
        if (!e && sqlite3_changes(s->db) != 1) {
            store_set_err(err, errlen, "no training run with id '%s'", r->id);
            e = -ENOENT;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "SELECT " RUN_COLS " FROM training_runs WHERE id = ?", &st, err, errlen);
    if (!e) {
        st__text(st, 1, id);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            st__run_row(st, out);
        else if (rc == SQLITE_DONE)
            store_set_err(err, errlen, "no training run with id '%s'", id), e = -ENOENT;
        else
            e = st__fail(s, rc, "reading a training run", err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_run_list(store *s, int limit, store_run **rows, size_t *n, char *err, size_t errlen)
{
    *rows = NULL, *n = 0;
    limit = limit <= 0 ? STORE_LIST_DEFAULT : limit > STORE_LIST_MAX ? STORE_LIST_MAX : limit;
    store_run *out = calloc((size_t)limit, sizeof *out);
    if (!out)
        return -ENOMEM;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "SELECT " RUN_COLS " FROM training_runs ORDER BY created_at DESC, id DESC "
                        "LIMIT ?", &st, err, errlen);
    size_t k = 0;
    if (!e) {
        sqlite3_bind_int(st, 1, limit);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            st__run_row(st, &out[k++]);
        if (rc != SQLITE_DONE)
            e = st__fail(s, rc, "listing training runs", err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    if (e) {
        store_run_list_free(out, k);
        return e;
    }
    *rows = out, *n = k;
    return 0;
}

int store_sqlite_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    /* a run cut short after registering its adapter keeps the link */
    int e = st__prep(s, "UPDATE training_runs SET status = 'failed', finished_at = ?, "
                        "error = 'interrupted by a restart', adapter_id = coalesce(adapter_id, "
                        "(SELECT a.id FROM adapters a WHERE a.run_id = training_runs.id "
                        "ORDER BY a.version DESC LIMIT 1)) WHERE status = 'running'",
                     &st, err, errlen);
    if (!e) {
        sqlite3_bind_int64(st, 1, store_now_ms());
        e = st__done(s, st, "failing interrupted runs", err, errlen);
        if (!e && n)
            *n = sqlite3_changes(s->db);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* One integer from sql with a text parameter (or an int64 when text NULL). */
static int st__scalar(store *s, const char *sql, const char *text, int64_t num, int64_t *out,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, sql, &st, err, errlen);
    if (!e) {
        if (text)
            st__text(st, 1, text);
        else
            sqlite3_bind_int64(st, 1, num);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int64(st, 0);
        else
            e = st__fail(s, rc, sql, err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_run_last_created(store *s, const char *model, int64_t *ms, char *err, size_t errlen)
{
    return st__scalar(s, "SELECT coalesce(max(created_at), 0) FROM training_runs WHERE model = ?",
                      model, 0, ms, err, errlen);
}

int store_sqlite_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen)
{
    return st__scalar(s, "SELECT count(*) FROM feedback WHERE kind = 'pair' AND created_at >= ?",
                      NULL, since_ms, n, err, errlen);
}

int store_sqlite_run_claim(store *s, store_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "UPDATE training_runs SET status = 'running', started_at = ? WHERE id = "
                        "(SELECT id FROM training_runs WHERE status = 'queued' "
                        "ORDER BY created_at, id LIMIT 1) RETURNING " RUN_COLS, &st, err, errlen);
    if (!e) {
        sqlite3_bind_int64(st, 1, store_now_ms());
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            st__run_row(st, out);
            rc = sqlite3_step(st);
        } else if (rc == SQLITE_DONE) {
            store_set_err(err, errlen, "no queued training run");
            e = -ENOENT;
        }
        if (!e && rc != SQLITE_DONE)
            e = st__fail(s, rc, "claiming a queued training run", err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    if (e)
        store_run_clear(out);
    return e;
}

int store_sqlite_run_request_cancel(store *s, const char *id, store_run *out, char *err,
                                    size_t errlen)
{
    store_run r;
    int e = store_sqlite_run_get(s, id, &r, err, errlen);
    if (e)
        return e;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    /* conditional on the status read: a run that moved on meanwhile is
     * looked at again below */
    e = st__prep(s, "UPDATE training_runs SET "
                    "status = CASE status WHEN 'queued' THEN 'cancelled' ELSE status END, "
                    "error = CASE status WHEN 'queued' THEN 'cancelled before it started' ELSE error END, "
                    "finished_at = CASE status WHEN 'queued' THEN ? ELSE finished_at END, "
                    "cancel_requested = CASE status WHEN 'running' THEN 1 ELSE cancel_requested END "
                    "WHERE id = ? AND status IN ('queued','running')", &st, err, errlen);
    if (!e) {
        sqlite3_bind_int64(st, 1, store_now_ms());
        st__text(st, 2, id);
        e = st__done(s, st, "cancelling a training run", err, errlen);
    }
    int changed = e ? 0 : sqlite3_changes(s->db);
    pthread_mutex_unlock(&s->mu);
    store_run_clear(&r);
    if (!e)
        e = store_sqlite_run_get(s, id, &r, err, errlen);
    if (!e && !changed) {
        store_set_err(err, errlen, "training run %s already ended (%s)", id, r.status);
        e = -EINVAL;
    }
    if (!e && out)
        *out = r;
    else
        store_run_clear(&r);
    return e;
}

/* ---- adapters -------------------------------------------------------------- */

static void st__ad_row(sqlite3_stmt *st, store_adapter *a)
{
    a->id = st__dup(st, 0), a->model = st__dup(st, 1);
    a->version = sqlite3_column_int64(st, 2);
    a->parent_id = st__dup(st, 3), a->run_id = st__dup(st, 4), a->status = st__dup(st, 5);
    a->metrics = st__dup(st, 6), a->path = st__dup(st, 7), a->sha256 = st__dup(st, 8);
    a->created_at = sqlite3_column_int64(st, 9);
    a->reason = st__dup(st, 10);
}

static int st__ad_insert(store *s, const store_adapter *a, const char *id, int64_t *version,
                         int64_t now, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int e = st__prep(s, "SELECT coalesce(max(version), 0) + 1 FROM adapters WHERE model = ?", &st,
                     err, errlen);
    if (e)
        return e;
    st__text(st, 1, a->model);
    int rc = sqlite3_step(st);
    *version = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return st__fail(s, rc, "reading adapter versions", err, errlen);
    if ((e = st__prep(s, "INSERT INTO adapters (" AD_COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?)", &st,
                      err, errlen)))
        return e;
    st__text(st, 1, id), st__text(st, 2, a->model), sqlite3_bind_int64(st, 3, *version);
    st__text(st, 4, a->parent_id), st__text(st, 5, a->run_id);
    st__text(st, 6, a->status ? a->status : "candidate"), st__text(st, 7, a->metrics);
    st__text(st, 8, a->path), st__text(st, 9, a->sha256), sqlite3_bind_int64(st, 10, now);
    st__text(st, 11, a->reason);
    return st__done(s, st, "registering an adapter", err, errlen);
}

int store_sqlite_adapter_insert(store *s, const store_adapter *a, const char *id, int64_t now,
                                int64_t *version, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = st__begin(s, err, errlen);
    if (!e)
        e = st__end(s, st__ad_insert(s, a, id, version, now, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* One adapter row from sql with up to two text parameters. */
static int st__ad_one(store *s, const char *sql, const char *p1, const char *p2,
                      store_adapter *out, const char *what, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, sql, &st, err, errlen);
    if (!e) {
        st__text(st, 1, p1);
        if (p2)
            st__text(st, 2, p2);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW)
            st__ad_row(st, out);
        else if (rc == SQLITE_DONE)
            store_set_err(err, errlen, "%s", what), e = -ENOENT;
        else
            e = st__fail(s, rc, "reading an adapter", err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_adapter_get(store *s, const char *id, store_adapter *out, char *err, size_t errlen)
{
    char what[128];
    snprintf(what, sizeof what, "no adapter with id '%.60s'", id);
    return st__ad_one(s, "SELECT " AD_COLS " FROM adapters WHERE id = ?", id, NULL, out, what,
                      err, errlen);
}

int store_sqlite_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                         size_t errlen)
{
    char what[128];
    snprintf(what, sizeof what, "model '%.60s' has no active adapter", model);
    return st__ad_one(s, "SELECT " AD_COLS " FROM adapters WHERE model = ? AND status = 'active'",
                      model, NULL, out, what, err, errlen);
}

int store_sqlite_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n, char *err,
                       size_t errlen)
{
    *rows = NULL, *n = 0;
    size_t cap = 16, k = 0;
    store_adapter *out = calloc(cap, sizeof *out);
    if (!out)
        return -ENOMEM;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "SELECT " AD_COLS " FROM adapters WHERE ?1 IS NULL OR model = ?1 "
                        "ORDER BY created_at DESC, version DESC", &st, err, errlen);
    if (!e) {
        st__text(st, 1, model);
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            if (k == cap) {
                store_adapter *g = realloc(out, 2 * cap * sizeof *out);
                if (!g) {
                    e = -ENOMEM;
                    break;
                }
                out = g, cap *= 2;
            }
            memset(&out[k], 0, sizeof out[k]);
            st__ad_row(st, &out[k++]);
        }
        if (!e && rc != SQLITE_DONE)
            e = st__fail(s, rc, "listing adapters", err, errlen);
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    if (e) {
        store_adapter_list_free(out, k);
        return e;
    }
    *rows = out, *n = k;
    return 0;
}

static int st__activate(store *s, const char *model, const char *id, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int e = st__prep(s, "UPDATE adapters SET status = 'retired' WHERE model = ? AND "
                        "status = 'active'", &st, err, errlen);
    if (e)
        return e;
    st__text(st, 1, model);
    if ((e = st__done(s, st, "retiring the active adapter", err, errlen)) || !id)
        return e;
    if ((e = st__prep(s, "UPDATE adapters SET status = 'active', reason = NULL WHERE id = ? AND "
                         "model = ?", &st, err, errlen)))
        return e;
    st__text(st, 1, id), st__text(st, 2, model);
    if ((e = st__done(s, st, "activating an adapter", err, errlen)))
        return e;
    if (sqlite3_changes(s->db) != 1) {
        store_set_err(err, errlen, "model '%s' has no adapter with id '%s'", model, id);
        return -ENOENT;
    }
    return 0;
}

int store_sqlite_adapter_activate(store *s, const char *model, const char *id, char *err,
                           size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = st__begin(s, err, errlen);
    if (!e)
        e = st__end(s, st__activate(s, model, id, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_adapter_set_reason(store *s, const char *id, const char *reason, const char *metrics,
                             char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "UPDATE adapters SET reason = ?, metrics = coalesce(?, metrics) "
                        "WHERE id = ?", &st, err, errlen);
    if (!e) {
        st__text(st, 1, reason), st__text(st, 2, metrics), st__text(st, 3, id);
        e = st__done(s, st, "recording an adapter's reason", err, errlen);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* ---- reward models --------------------------------------------------------- */

#define RM_COLS "id, model, run_id, path, status, created_at"

static int st__rm_add(store *s, const store_reward_model *r, const char *id, int64_t now,
                      char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int e = st__prep(s, "UPDATE reward_models SET status = 'retired' WHERE model = ? AND "
                        "status = 'active'", &st, err, errlen);
    if (e)
        return e;
    st__text(st, 1, r->model);
    if ((e = st__done(s, st, "retiring the active reward model", err, errlen)))
        return e;
    if ((e = st__prep(s, "INSERT INTO reward_models (" RM_COLS ") VALUES (?,?,?,?,'active',?)",
                      &st, err, errlen)))
        return e;
    st__text(st, 1, id), st__text(st, 2, r->model), st__text(st, 3, r->run_id);
    st__text(st, 4, r->path), sqlite3_bind_int64(st, 5, now);
    return st__done(s, st, "recording a reward model", err, errlen);
}

int store_sqlite_reward_model_insert(store *s, const store_reward_model *r, const char *id,
                                     int64_t now, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = st__begin(s, err, errlen);
    if (!e)
        e = st__end(s, st__rm_add(s, r, id, now, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_sqlite_reward_model_active(store *s, const char *model, store_reward_model *out, char *err,
                              size_t errlen)
{
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->mu);
    int e = st__prep(s, "SELECT " RM_COLS " FROM reward_models WHERE model = ? AND "
                        "status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1", &st, err,
                     errlen);
    if (!e) {
        st__text(st, 1, model);
        int rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            out->id = st__dup(st, 0), out->model = st__dup(st, 1), out->run_id = st__dup(st, 2);
            out->path = st__dup(st, 3), out->status = st__dup(st, 4);
            out->created_at = sqlite3_column_int64(st, 5);
        } else if (rc == SQLITE_DONE) {
            store_set_err(err, errlen, "model '%.60s' has no reward model from training", model);
            e = -ENOENT;
        } else {
            e = st__fail(s, rc, "reading a reward model", err, errlen);
        }
        sqlite3_finalize(st);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}
