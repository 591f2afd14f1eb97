/* store_pg_train.c - training runs, the adapter registry and the reward
 * models in the PostgreSQL store (store_train.h; the ops table in
 * store_pg.c points here). The same semantics, messages and columns as the
 * SQLite backend: the same test suite runs against both.
 *
 * Constant SQL with $n text parameters (store_pg_exec); every call holds
 * s->mu for its whole duration, and a call that writes more than one
 * statement is one transaction. Several daemons may share the tables:
 * run_create and adapter_register serialise on transaction advisory locks
 * keyed on the schema, run_claim takes a row with FOR UPDATE SKIP LOCKED,
 * adapter_activate announces on STORE_PG_CHANNEL in its transaction. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store_pg_impl.h"

#define PGT__STR(x) #x
#define PGT__XSTR(x) PGT__STR(x)
/* The trainer lock class as SQL text; + 10: run_create, + 11: adapter
 * versions (int4 arithmetic in SQL, well below 2^31). */
#define PGT__CLASS PGT__XSTR(STORE_PG_LOCK_CLASS_TRAINER)

#define RUN_COLS "id, model, kind, trigger, status, created_at, started_at, finished_at, pairs, " \
                 "config, metrics, history, error, adapter_id, cancel_requested"
#define AD_COLS "id, model, version, parent_id, run_id, status, metrics, path, sha256, " \
                "created_at, reason"
#define RM_COLS "id, model, run_id, path, status, created_at"

/* Rows changed by an INSERT/UPDATE/DELETE result. */
static long pgt__changes(PGresult *r)
{
    const char *t = PQcmdTuples(r);
    return t && *t ? strtol(t, NULL, 10) : 0;
}

/* COMMIT when e is 0, else ROLLBACK; returns e or COMMIT's failure. */
static int pgt__end(store *s, int e, char *err, size_t errlen)
{
    if (!e && !(e = store_pg_commit(s, err, errlen)))
        return 0;
    store_pg_rollback(s);
    return e;
}

/* One integer from sql with one text parameter. */
static int pgt__scalar(store *s, const char *sql, const char *param, int64_t *out,
                       const char *what, char *err, size_t errlen)
{
    PGresult *r = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, what, sql, 1, (const char *const[]){param}, &r, err, errlen);
    if (!e) {
        if (PQntuples(r) == 1)
            *out = store_pg_int(r, 0, 0);
        else
            store_set_err(err, errlen, "store: %s: no row", what), e = -EIO;
        PQclear(r);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* ---- runs ------------------------------------------------------------------ */

static void pgt__run_row(const PGresult *r, int i, store_run *o)
{
    o->id = store_pg_dup(r, i, 0), o->model = store_pg_dup(r, i, 1);
    o->kind = store_pg_dup(r, i, 2), o->trigger = store_pg_dup(r, i, 3);
    o->status = store_pg_dup(r, i, 4);
    o->created_at = store_pg_int(r, i, 5);
    o->started_at = store_pg_int(r, i, 6);
    o->finished_at = store_pg_int(r, i, 7);
    o->pairs = store_pg_int(r, i, 8);
    o->config = store_pg_dup(r, i, 9), o->metrics = store_pg_dup(r, i, 10);
    o->history = store_pg_dup(r, i, 11), o->error = store_pg_dup(r, i, 12);
    o->adapter_id = store_pg_dup(r, i, 13);
    o->cancel_requested = store_pg_int(r, i, 14) != 0;
}

/* Inside run_create's transaction: -EBUSY when a run is queued or running
 * (after the advisory lock, so a concurrent create has committed or not
 * begun), else inserts. */
static int pgt__run_insert(store *s, const store_run *r, const char *id, int64_t now, char *err,
                           size_t errlen)
{
    PGresult *res = NULL;
    int e = store_pg_exec(s, "locking training run creation",
                          "SELECT pg_advisory_xact_lock(" PGT__CLASS " + 10, "
                          "hashtext(current_schema()))", 0, NULL, NULL, err, errlen);
    if (e)
        return e;
    if ((e = store_pg_exec(s, "looking for an open training run",
                           "SELECT id, status FROM training_runs WHERE status IN "
                           "('queued','running') ORDER BY created_at, id LIMIT 1",
                           0, NULL, &res, err, errlen)))
        return e;
    if (PQntuples(res) > 0) {
        store_set_err(err, errlen, "a training run is already %s (%s)",
                      PQgetvalue(res, 0, 1), PQgetvalue(res, 0, 0));
        PQclear(res);
        return -EBUSY;
    }
    PQclear(res);
    char b[24];
    const char *p[] = {id, r->model, r->kind, r->trigger, store_pg_i64(b, now), r->config};
    return store_pg_exec(s, "inserting a training run",
                         "INSERT INTO training_runs (id, model, kind, trigger, status, "
                         "created_at, config) VALUES ($1, $2, $3, $4, 'queued', $5, $6)",
                         6, p, NULL, err, errlen);
}

int store_pg_run_insert(store *s, const store_run *r, const char *id, int64_t now, char *err,
                        size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = store_pg_begin(s, err, errlen);
    if (!e)
        e = pgt__end(s, pgt__run_insert(s, r, id, now, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_run_update(store *s, const store_run *r, char *err, size_t errlen)
{
    char b1[24], b2[24], b3[24];
    const char *p[] = {r->status, store_pg_i64_or_null(b1, r->started_at),
                       store_pg_i64_or_null(b2, r->finished_at), store_pg_i64(b3, r->pairs),
                       r->config, r->metrics, r->history, r->error, r->adapter_id, r->id};
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "updating a training run",
                          "UPDATE training_runs SET status = $1, started_at = $2, "
                          "finished_at = $3, pairs = $4, config = $5, metrics = $6, "
                          "history = $7, error = $8, adapter_id = $9 WHERE id = $10",
                          10, p, &res, err, errlen);
    if (!e) {
        if (pgt__changes(res) != 1) {
            store_set_err(err, errlen, "no training run with id '%s'", r->id);
            e = -ENOENT;
        }
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "reading a training run",
                          "SELECT " RUN_COLS " FROM training_runs WHERE id = $1", 1,
                          (const char *const[]){id}, &res, err, errlen);
    if (!e) {
        if (PQntuples(res) > 0)
            pgt__run_row(res, 0, out);
        else
            store_set_err(err, errlen, "no training run with id '%s'", id), e = -ENOENT;
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_run_list(store *s, int limit, store_run **rows, size_t *n, char *err,
                      size_t errlen)
{
    *rows = NULL, *n = 0;
    limit = limit <= 0 ? STORE_LIST_DEFAULT : limit > STORE_LIST_MAX ? STORE_LIST_MAX : limit;
    char b[24];
    const char *p[] = {store_pg_i64(b, limit)};
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "listing training runs",
                          "SELECT " RUN_COLS " FROM training_runs "
                          "ORDER BY created_at DESC, id DESC LIMIT $1",
                          1, p, &res, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (e)
        return e;
    size_t k = (size_t)PQntuples(res);
    store_run *out = calloc(k ? k : 1, sizeof *out);
    if (!out) {
        PQclear(res);
        return -ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        pgt__run_row(res, (int)i, &out[i]);
    PQclear(res);
    *rows = out, *n = k;
    return 0;
}

int store_pg_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen)
{
    char b[24];
    const char *p[] = {store_pg_i64(b, store_now_ms())};
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "failing interrupted runs",
                          "UPDATE training_runs SET status = 'failed', finished_at = $1, "
                          "error = 'interrupted by a restart', adapter_id = coalesce("
                          "adapter_id, (SELECT a.id FROM adapters a WHERE a.run_id = "
                          "training_runs.id ORDER BY a.version DESC LIMIT 1)) "
                          "WHERE status = 'running'",
                          1, p, &res, err, errlen);
    if (!e) {
        if (n)
            *n = (int)pgt__changes(res);
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_run_last_created(store *s, const char *model, int64_t *ms, char *err,
                              size_t errlen)
{
    return pgt__scalar(s, "SELECT coalesce(max(created_at), 0) FROM training_runs "
                          "WHERE model = $1", model, ms, "reading the newest run", err, errlen);
}

int store_pg_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen)
{
    char b[24];
    return pgt__scalar(s, "SELECT count(*) FROM feedback WHERE kind = 'pair' AND "
                          "created_at >= $1", store_pg_i64(b, since_ms), n,
                       "counting pairs", err, errlen);
}

int store_pg_run_claim(store *s, store_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    char b[24];
    const char *p[] = {store_pg_i64(b, store_now_ms())};
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "claiming a queued training run",
                          "UPDATE training_runs SET status = 'running', started_at = $1 "
                          "WHERE id = (SELECT id FROM training_runs WHERE status = 'queued' "
                          "ORDER BY created_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) "
                          "RETURNING " RUN_COLS, 1, p, &res, err, errlen);
    if (!e) {
        if (PQntuples(res) > 0)
            pgt__run_row(res, 0, out);
        else
            store_set_err(err, errlen, "no queued training run"), e = -ENOENT;
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Inside run_request_cancel's transaction: locks the row, then cancels a
 * queued run or flags a running one; *res gets the row after. */
static int pgt__cancel(store *s, const char *id, PGresult **res, char *err, size_t errlen)
{
    PGresult *r = NULL;
    int e = store_pg_exec(s, "reading a training run",
                          "SELECT status FROM training_runs WHERE id = $1 FOR UPDATE", 1,
                          (const char *const[]){id}, &r, err, errlen);
    if (e)
        return e;
    if (PQntuples(r) == 0) {
        PQclear(r);
        store_set_err(err, errlen, "no training run with id '%s'", id);
        return -ENOENT;
    }
    const char *status = PQgetvalue(r, 0, 0);
    if (!strcmp(status, "queued")) {
        char b[24];
        const char *p[] = {id, store_pg_i64(b, store_now_ms())};
        e = store_pg_exec(s, "cancelling a training run",
                          "UPDATE training_runs SET status = 'cancelled', "
                          "error = 'cancelled before it started', finished_at = $2 "
                          "WHERE id = $1 RETURNING " RUN_COLS, 2, p, res, err, errlen);
    } else if (!strcmp(status, "running")) {
        e = store_pg_exec(s, "cancelling a training run",
                          "UPDATE training_runs SET cancel_requested = 1 "
                          "WHERE id = $1 RETURNING " RUN_COLS, 1, (const char *const[]){id},
                          res, err, errlen);
    } else {
        store_set_err(err, errlen, "training run %s already ended (%s)", id, status);
        e = -EINVAL;
    }
    PQclear(r);
    return e;
}

int store_pg_run_request_cancel(store *s, const char *id, store_run *out, char *err,
                                size_t errlen)
{
    if (out)
        memset(out, 0, sizeof *out);
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_begin(s, err, errlen);
    if (!e)
        e = pgt__end(s, pgt__cancel(s, id, &res, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (!e && out && PQntuples(res) > 0)
        pgt__run_row(res, 0, out);
    PQclear(res);
    return e;
}

/* ---- adapters -------------------------------------------------------------- */

static void pgt__ad_row(const PGresult *r, int i, store_adapter *a)
{
    a->id = store_pg_dup(r, i, 0), a->model = store_pg_dup(r, i, 1);
    a->version = store_pg_int(r, i, 2);
    a->parent_id = store_pg_dup(r, i, 3), a->run_id = store_pg_dup(r, i, 4);
    a->status = store_pg_dup(r, i, 5);
    a->metrics = store_pg_dup(r, i, 6), a->path = store_pg_dup(r, i, 7);
    a->sha256 = store_pg_dup(r, i, 8);
    a->created_at = store_pg_int(r, i, 9);
    a->reason = store_pg_dup(r, i, 10);
}

/* Inside adapter_register's transaction: the model's next version under a
 * transaction advisory lock on (schema, model), so two daemons never pick
 * the same one; then the insert. */
static int pgt__ad_insert(store *s, const store_adapter *a, const char *id, int64_t *version,
                          int64_t now, char *err, size_t errlen)
{
    const char *pm[] = {a->model};
    int e = store_pg_exec(s, "locking adapter versions",
                          "SELECT pg_advisory_xact_lock(" PGT__CLASS " + 11, "
                          "hashtext(current_schema() || '/' || $1))",
                          1, pm, NULL, err, errlen);
    if (e)
        return e;
    PGresult *r = NULL;
    if ((e = store_pg_exec(s, "reading adapter versions",
                           "SELECT coalesce(max(version), 0) + 1 FROM adapters WHERE model = $1",
                           1, pm, &r, err, errlen)))
        return e;
    *version = PQntuples(r) > 0 ? store_pg_int(r, 0, 0) : 1;
    PQclear(r);
    char bv[24], bn[24];
    const char *p[] = {id, a->model, store_pg_i64(bv, *version), a->parent_id, a->run_id,
                       a->status ? a->status : "candidate", a->metrics, a->path, a->sha256,
                       store_pg_i64(bn, now), a->reason};
    return store_pg_exec(s, "registering an adapter",
                         "INSERT INTO adapters (" AD_COLS ") VALUES "
                         "($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                         11, p, NULL, err, errlen);
}

int store_pg_adapter_insert(store *s, const store_adapter *a, const char *id, int64_t now,
                            int64_t *version, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = store_pg_begin(s, err, errlen);
    if (!e)
        e = pgt__end(s, pgt__ad_insert(s, a, id, version, now, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* One adapter row from sql with one text parameter; what: the -ENOENT
 * message. */
static int pgt__ad_one(store *s, const char *sql, const char *param, store_adapter *out,
                       const char *what, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "reading an adapter", sql, 1, (const char *const[]){param}, &res,
                          err, errlen);
    if (!e) {
        if (PQntuples(res) > 0)
            pgt__ad_row(res, 0, out);
        else
            store_set_err(err, errlen, "%s", what), e = -ENOENT;
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_adapter_get(store *s, const char *id, store_adapter *out, char *err,
                         size_t errlen)
{
    char what[128];
    snprintf(what, sizeof what, "no adapter with id '%.60s'", id);
    return pgt__ad_one(s, "SELECT " AD_COLS " FROM adapters WHERE id = $1", id, out, what, err,
                       errlen);
}

int store_pg_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                            size_t errlen)
{
    char what[128];
    snprintf(what, sizeof what, "model '%.60s' has no active adapter", model);
    return pgt__ad_one(s, "SELECT " AD_COLS " FROM adapters WHERE model = $1 AND "
                          "status = 'active'", model, out, what, err, errlen);
}

int store_pg_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n,
                          char *err, size_t errlen)
{
    *rows = NULL, *n = 0;
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "listing adapters",
                          "SELECT " AD_COLS " FROM adapters WHERE $1::text IS NULL OR "
                          "model = $1 ORDER BY created_at DESC, version DESC",
                          1, (const char *const[]){model}, &res, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (e)
        return e;
    size_t k = (size_t)PQntuples(res);
    store_adapter *out = calloc(k ? k : 1, sizeof *out);
    if (!out) {
        PQclear(res);
        return -ENOMEM;
    }
    for (size_t i = 0; i < k; i++)
        pgt__ad_row(res, (int)i, &out[i]);
    PQclear(res);
    *rows = out, *n = k;
    return 0;
}

/* Inside adapter_activate's transaction: retire, activate, announce. */
static int pgt__activate(store *s, const char *model, const char *id, char *err,
                         size_t errlen)
{
    const char *pm[] = {model};
    int e = store_pg_exec(s, "retiring the active adapter",
                          "UPDATE adapters SET status = 'retired' WHERE model = $1 AND "
                          "status = 'active'", 1, pm, NULL, err, errlen);
    if (e)
        return e;
    if (id) {
        PGresult *r = NULL;
        if ((e = store_pg_exec(s, "activating an adapter",
                               "UPDATE adapters SET status = 'active', reason = NULL "
                               "WHERE id = $1 AND model = $2", 2,
                               (const char *const[]){id, model}, &r, err, errlen)))
            return e;
        long changed = pgt__changes(r);
        PQclear(r);
        if (changed != 1) {
            store_set_err(err, errlen, "model '%s' has no adapter with id '%s'", model, id);
            return -ENOENT;
        }
    }
    return store_pg_exec(s, "announcing an adapter activation",
                         "SELECT pg_notify('" STORE_PG_CHANNEL "', $1)", 1, pm, NULL, err,
                         errlen);
}

int store_pg_adapter_activate(store *s, const char *model, const char *id, char *err,
                              size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = store_pg_begin(s, err, errlen);
    if (!e)
        e = pgt__end(s, pgt__activate(s, model, id, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_adapter_set_reason(store *s, const char *id, const char *reason,
                                const char *metrics, char *err, size_t errlen)
{
    const char *p[] = {reason, metrics, id};
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "recording an adapter's reason",
                          "UPDATE adapters SET reason = $1, metrics = coalesce($2, metrics) "
                          "WHERE id = $3", 3, p, NULL, err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* ---- reward models --------------------------------------------------------- */

/* Inside reward_model_add's transaction: retire the active one, insert. */
static int pgt__rm_add(store *s, const store_reward_model *r, const char *id, int64_t now,
                       char *err, size_t errlen)
{
    int e = store_pg_exec(s, "retiring the active reward model",
                          "UPDATE reward_models SET status = 'retired' WHERE model = $1 AND "
                          "status = 'active'", 1, (const char *const[]){r->model}, NULL, err,
                          errlen);
    if (e)
        return e;
    char b[24];
    const char *p[] = {id, r->model, r->run_id, r->path, store_pg_i64(b, now)};
    return store_pg_exec(s, "recording a reward model",
                         "INSERT INTO reward_models (" RM_COLS ") VALUES "
                         "($1, $2, $3, $4, 'active', $5)", 5, p, NULL, err, errlen);
}

int store_pg_reward_model_insert(store *s, const store_reward_model *r, const char *id,
                                 int64_t now, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->mu);
    int e = store_pg_begin(s, err, errlen);
    if (!e)
        e = pgt__end(s, pgt__rm_add(s, r, id, now, err, errlen), err, errlen);
    pthread_mutex_unlock(&s->mu);
    return e;
}

int store_pg_reward_model_active(store *s, const char *model, store_reward_model *out,
                                 char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    PGresult *res = NULL;
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "reading a reward model",
                          "SELECT " RM_COLS " FROM reward_models WHERE model = $1 AND "
                          "status = 'active' ORDER BY created_at DESC, id DESC LIMIT 1",
                          1, (const char *const[]){model}, &res, err, errlen);
    if (!e) {
        if (PQntuples(res) > 0) {
            out->id = store_pg_dup(res, 0, 0), out->model = store_pg_dup(res, 0, 1);
            out->run_id = store_pg_dup(res, 0, 2), out->path = store_pg_dup(res, 0, 3);
            out->status = store_pg_dup(res, 0, 4);
            out->created_at = store_pg_int(res, 0, 5);
        } else {
            store_set_err(err, errlen, "model '%.60s' has no reward model from training",
                          model);
            e = -ENOENT;
        }
        PQclear(res);
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}
