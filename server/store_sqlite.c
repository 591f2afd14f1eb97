/* store_sqlite.c - the SQLite backend of the store (store.h,
 * store_backend.h): connection, schema, feedback, the trainer lock file and
 * the ops table (the training tables are store_sqlite_train.c).
 * Every statement is constant SQL with bound parameters; the only SQL built
 * at run time is the WHERE clause, from constant fragments. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "store_backend.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <sqlite3.h>

#include "store_sqlite_impl.h"
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

/* ---------------------------------------------------------------- schema */

/* Migrations in order; migrations[i] takes the schema to version i + 1.
 * Never edit a shipped entry: append a new one. */
static const char *const store__migrations[] = {
    /* 1: feedback and idempotency */
    "CREATE TABLE feedback ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  prompt TEXT NOT NULL,"
    "  chosen TEXT NOT NULL,"
    "  rejected TEXT NOT NULL,"
    "  format TEXT NOT NULL CHECK (format IN ('text','messages')),"
    "  kind TEXT NOT NULL CHECK (kind IN ('pair','tie','both_bad')),"
    "  annotator TEXT,"
    "  source TEXT NOT NULL CHECK (source IN ('api','form')),"
    "  model TEXT,"
    "  adapter TEXT,"
    "  comment TEXT,"
    "  metadata TEXT,"
    "  split TEXT NOT NULL CHECK (split IN ('train','eval'))"
    ");"
    "CREATE INDEX feedback_created ON feedback (created_at, id);"
    "CREATE INDEX feedback_kind ON feedback (kind, created_at, id);"
    "CREATE INDEX feedback_annotator ON feedback (annotator, created_at, id);"
    "CREATE TABLE idempotency ("
    "  key TEXT PRIMARY KEY NOT NULL,"
    "  request_hash TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  response TEXT NOT NULL"
    ");",
    /* 2: the closed loop: training runs and the adapter registry
     * (server/store_train.c). At most one active adapter per model. */
    "CREATE TABLE training_runs ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  model TEXT NOT NULL,"
    "  kind TEXT NOT NULL CHECK (kind IN ('dpo','reward','both')),"
    "  trigger TEXT NOT NULL CHECK (trigger IN ('api','pairs','schedule')),"
    "  status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),"
    "  created_at INTEGER NOT NULL,"
    "  started_at INTEGER,"
    "  finished_at INTEGER,"
    "  pairs INTEGER NOT NULL DEFAULT 0,"
    "  config TEXT,"
    "  metrics TEXT,"
    "  history TEXT,"
    "  error TEXT,"
    "  adapter_id TEXT"
    ");"
    "CREATE INDEX training_runs_created ON training_runs (created_at, id);"
    "CREATE TABLE adapters ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  model TEXT NOT NULL,"
    "  version INTEGER NOT NULL,"
    "  parent_id TEXT,"
    "  run_id TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('candidate','active','retired')),"
    "  metrics TEXT,"
    "  path TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  created_at INTEGER NOT NULL,"
    "  reason TEXT,"
    "  UNIQUE (model, version)"
    ");"
    "CREATE UNIQUE INDEX adapters_one_active ON adapters (model) WHERE status = 'active';",
    /* 3: the reward models the loop trained (server/store_train.c), so a
     * restart serves the newest again. At most one active per model. */
    "CREATE TABLE reward_models ("
    "  id TEXT PRIMARY KEY NOT NULL,"
    "  model TEXT NOT NULL,"
    "  run_id TEXT,"
    "  path TEXT NOT NULL,"
    "  status TEXT NOT NULL CHECK (status IN ('active','retired')),"
    "  created_at INTEGER NOT NULL"
    ");"
    "CREATE INDEX reward_models_model ON reward_models (model, created_at);"
    "CREATE UNIQUE INDEX reward_models_one_active ON reward_models (model) WHERE status = 'active';",
    /* 4: a run may be cancelled from another daemon sharing the store: its
     * trainer polls the flag (store_run_request_cancel) */
    "ALTER TABLE training_runs ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;",
};
#define STORE__VERSION ((int)(sizeof store__migrations / sizeof store__migrations[0]))

#define STORE__COLS "id, created_at, prompt, chosen, rejected, format, kind, " \
                    "annotator, source, model, adapter, comment, metadata, split"

/* --------------------------------------------------------------- helpers */

/* Maps a SQLite result code to a negative errno. */
static int store__code(int rc) {
    switch (rc & 0xff) {
    case SQLITE_BUSY: case SQLITE_LOCKED: return -EBUSY;
    case SQLITE_NOMEM: return -ENOMEM;
    case SQLITE_CONSTRAINT: return -EINVAL;
    default: return -EIO;
    }
}

/* Fails with the connection's message, prefixed by what was being done. */
static int store__sqlerr(store *s, int rc, const char *what, char *err, size_t errlen) {
    store_set_err(err, errlen, "store: %s: %s", what, sqlite3_errmsg(s->db));
    return store__code(rc);
}

static char *store__dup(const unsigned char *t) {
    return t ? strdup((const char *)t) : NULL;
}

static int store__exec(store *s, const char *sql, char *err, size_t errlen) {
    int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK) return store__sqlerr(s, rc, sql, err, errlen);
    return 0;
}

static void store__rollback(store *s) {
    if (!sqlite3_get_autocommit(s->db)) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

static int store__bind_text(sqlite3_stmt *st, int i, const char *v) {
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

/* ------------------------------------------------------------ open/close */

static int store__schema_version(store *s, int *version, char *err, size_t errlen) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT coalesce(max(version), 0) FROM schema_version",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int e = store__sqlerr(s, rc, "reading schema_version", err, errlen);
        sqlite3_finalize(st);
        return e;
    }
    *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int store__migrate(store *s, const char *path, char *err, size_t errlen) {
    int e = store__exec(s, "CREATE TABLE IF NOT EXISTS schema_version ("
                           " version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
                        err, errlen);
    if (e) return e;
    int have = 0;
    if ((e = store__schema_version(s, &have, err, errlen))) return e;
    if (have > STORE__VERSION) {
        store_set_err(err, errlen,
                   "store %s: database schema version %d is newer than this alignd "
                   "supports (%d); upgrade alignd or use another database file",
                   path, have, STORE__VERSION);
        return -ENOTSUP;
    }
    for (int v = have + 1; v <= STORE__VERSION; v++) {
        /* BEGIN IMMEDIATE and re-read: another process may have migrated. */
        if ((e = store__exec(s, "BEGIN IMMEDIATE", err, errlen))) return e;
        int now = 0;
        if ((e = store__schema_version(s, &now, err, errlen))) goto fail;
        if (now >= v) {
            if ((e = store__exec(s, "COMMIT", err, errlen))) goto fail;
            continue;
        }
        int rc = sqlite3_exec(s->db, store__migrations[v - 1], NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            store_set_err(err, errlen, "store %s: migration to schema version %d failed: %s",
                       path, v, sqlite3_errmsg(s->db));
            e = store__code(rc);
            goto fail;
        }
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(s->db, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int(st, 1, v);
            sqlite3_bind_int64(st, 2, store_now_ms());
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            e = store__sqlerr(s, rc, "recording schema_version", err, errlen);
            goto fail;
        }
        if ((e = store__exec(s, "COMMIT", err, errlen))) goto fail;
    }
    return 0;
fail:
    store__rollback(s);
    return e;
}

int store_sqlite_open(store *s, const char *path, char *err, size_t errlen) {
    if (strcmp(path, ":memory:") && asprintf(&s->lock_path, "%s-trainer.lock", path) < 0) {
        s->lock_path = NULL;
        store_set_err(err, errlen, "store %s: out of memory", path);
        return -ENOMEM;
    }
    int e;
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        store_set_err(err, errlen, "store %s: cannot open: %s", path,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        e = store__code(rc);
        goto fail;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);

    /* journal_mode answers the mode in force; ":memory:" stays "memory". */
    sqlite3_stmt *st = NULL;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        store_set_err(err, errlen, "store %s: cannot read the database: %s", path,
                   sqlite3_errmsg(s->db));
        e = store__code(rc);
        sqlite3_finalize(st);
        goto fail;
    }
    const char *mode = (const char *)sqlite3_column_text(st, 0);
    bool ok = mode && (strcmp(mode, "wal") == 0 || strcmp(mode, "memory") == 0);
    if (!ok) {
        store_set_err(err, errlen, "store %s: cannot switch to WAL mode (journal_mode is %s)",
                   path, mode ? mode : "?");
        sqlite3_finalize(st);
        e = -EIO;
        goto fail;
    }
    sqlite3_finalize(st);
    if ((e = store__exec(s, "PRAGMA synchronous=FULL", err, errlen))) goto fail;
    if ((e = store__exec(s, "PRAGMA foreign_keys=ON", err, errlen))) goto fail;
    if ((e = store__migrate(s, path, err, errlen))) goto fail;
    return 0;
fail:
    return e; /* store_open closes s */
}

static void store__close(store *s) {
    sqlite3_close(s->db); /* every statement is finalised before returning */
    if (s->lock_fd >= 0) close(s->lock_fd); /* releases the trainer lock */
    free(s->lock_path);
}

/* ---------------------------------------------------------------- insert */

/* Looks up an idempotency key inside the open transaction: 0 not found,
 * 1 replay (*ids set), or a negative code. */
static int store__idem_lookup(store *s, const char *key, const char *hash, char ***ids,
                              char *err, size_t errlen) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, "SELECT request_hash, response FROM idempotency WHERE key = ?",
                                -1, &st, NULL);
    if (rc != SQLITE_OK) return store__sqlerr(s, rc, "idempotency lookup", err, errlen);
    sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
    rc = sqlite3_step(st);
    int e = 0;
    if (rc == SQLITE_ROW) {
        const char *h = (const char *)sqlite3_column_text(st, 0);
        if (!h || strcmp(h, hash) != 0) {
            store_set_err(err, errlen, "idempotency key '%s' was already used with a different request", key);
            e = -EEXIST;
        } else if (!(*ids = store_ids_from_json((const char *)sqlite3_column_text(st, 1)))) {
            store_set_err(err, errlen, "idempotency key '%s': stored response is unreadable", key);
            e = -EIO;
        } else {
            e = 1;
        }
    } else if (rc != SQLITE_DONE) {
        e = store__sqlerr(s, rc, "idempotency lookup", err, errlen);
    }
    sqlite3_finalize(st);
    return e;
}

static int store__feedback_insert(store *s, store_feedback *rows, size_t n,
                          const char *idem_key, const char *request_hash,
                          char ***ids_out, bool *replayed,
                          char *err, size_t errlen) {
    if (ids_out) *ids_out = NULL;
    if (replayed) *replayed = false;
    if (!rows || n == 0) {
        store_set_err(err, errlen, "feedback: at least one row is required");
        return -EINVAL;
    }
    if (idem_key && (!*idem_key || !request_hash)) {
        store_set_err(err, errlen, "idempotency key: must be non-empty and come with a request hash");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int e = store_feedback_validate(&rows[i], i, err, errlen);
        if (e) return e;
    }
    if (n > SIZE_MAX / sizeof(char *) - 1) return -ENOMEM;
    char **ids = calloc(n + 1, sizeof *ids);
    char *response = NULL;
    sqlite3_stmt *st = NULL;
    int e = 0;
    if (!ids) { store_set_err(err, errlen, "feedback: out of memory"); return -ENOMEM; }
    int64_t now = store_now_ms();
    for (size_t i = 0; i < n; i++) {
        char id[STORE_ID_LEN + 1];
        if (!rows[i].id && (e = store_new_id(id, "fb_"))) {
            store_set_err(err, errlen, "feedback: no random bytes for an id: %s", strerror(-e));
            store_ids_free(ids);
            return e;
        }
        if (!(ids[i] = strdup(rows[i].id ? rows[i].id : id))) {
            store_ids_free(ids);
            store_set_err(err, errlen, "feedback: out of memory");
            return -ENOMEM;
        }
    }

    pthread_mutex_lock(&s->mu);
    if ((e = store__exec(s, "BEGIN IMMEDIATE", err, errlen))) goto fail;
    if (idem_key) {
        char **old = NULL;
        e = store__idem_lookup(s, idem_key, request_hash, &old, err, errlen);
        if (e < 0) goto fail;
        if (e == 1) {
            store__rollback(s); /* nothing written */
            pthread_mutex_unlock(&s->mu);
            store_ids_free(ids);
            if (replayed) *replayed = true;
            if (ids_out) *ids_out = old; else store_ids_free(old);
            return 0;
        }
    }
    int rc = sqlite3_prepare_v2(s->db,
        "INSERT INTO feedback (" STORE__COLS ") VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        -1, &st, NULL);
    if (rc != SQLITE_OK) { e = store__sqlerr(s, rc, "preparing insert", err, errlen); goto fail; }
    for (size_t i = 0; i < n; i++) {
        const store_feedback *r = &rows[i];
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        store__bind_text(st, 1, ids[i]);
        sqlite3_bind_int64(st, 2, r->created_at > 0 ? r->created_at : now);
        store__bind_text(st, 3, r->prompt);
        store__bind_text(st, 4, r->chosen);
        store__bind_text(st, 5, r->rejected);
        store__bind_text(st, 6, r->format);
        store__bind_text(st, 7, r->kind);
        store__bind_text(st, 8, r->annotator);
        store__bind_text(st, 9, r->source);
        store__bind_text(st, 10, r->model);
        store__bind_text(st, 11, r->adapter);
        store__bind_text(st, 12, r->comment);
        store__bind_text(st, 13, r->metadata);
        store__bind_text(st, 14, store_split_of(ids[i]));
        rc = sqlite3_step(st);
        if (rc != SQLITE_DONE) {
            if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
                store_set_err(err, errlen, "rows[%zu].id: feedback %s already exists", i, ids[i]);
                e = -EEXIST;
            } else {
                char what[48];
                snprintf(what, sizeof what, "inserting rows[%zu]", i);
                e = store__sqlerr(s, rc, what, err, errlen);
            }
            goto fail;
        }
    }
    sqlite3_finalize(st);
    st = NULL;
    if (idem_key) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(ids[i]));
        response = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!response) { store_set_err(err, errlen, "feedback: out of memory"); e = -ENOMEM; goto fail; }
        rc = sqlite3_prepare_v2(s->db,
            "INSERT INTO idempotency (key, request_hash, created_at, response) VALUES (?,?,?,?)",
            -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, idem_key, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(st, 2, request_hash, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 3, now);
            sqlite3_bind_text(st, 4, response, -1, SQLITE_TRANSIENT);
            rc = sqlite3_step(st);
        }
        if (rc != SQLITE_DONE) { e = store__sqlerr(s, rc, "storing idempotency key", err, errlen); goto fail; }
        sqlite3_finalize(st);
        st = NULL;
    }
    if ((e = store__exec(s, "COMMIT", err, errlen))) goto fail;
    pthread_mutex_unlock(&s->mu);
    free(response);

    /* Committed: hand the assigned values back to the rows. Allocation
     * failures here lose only the echo, never the data. */
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].id) rows[i].id = strdup(ids[i]);
        if (rows[i].created_at <= 0) rows[i].created_at = now;
        free(rows[i].split);
        rows[i].split = strdup(store_split_of(ids[i]));
    }
    if (ids_out) *ids_out = ids; else store_ids_free(ids);
    return 0;
fail:
    sqlite3_finalize(st);
    store__rollback(s);
    pthread_mutex_unlock(&s->mu);
    free(response);
    store_ids_free(ids);
    return e;
}

/* ------------------------------------------------------------------ read */

/* Copies the current result row (STORE__COLS order) into *r. */
static int store__row(sqlite3_stmt *st, store_feedback *r) {
    memset(r, 0, sizeof *r);
    r->id = store__dup(sqlite3_column_text(st, 0));
    r->created_at = sqlite3_column_int64(st, 1);
    /* A NULL column stays NULL; a failed copy of a non-NULL one is -ENOMEM. */
#define STORE__COL(field, i) \
    r->field = store__dup(sqlite3_column_text(st, i)); \
    if (!r->field && sqlite3_column_type(st, i) != SQLITE_NULL) goto oom;
    STORE__COL(prompt, 2) STORE__COL(chosen, 3) STORE__COL(rejected, 4)
    STORE__COL(format, 5) STORE__COL(kind, 6) STORE__COL(annotator, 7)
    STORE__COL(source, 8) STORE__COL(model, 9) STORE__COL(adapter, 10)
    STORE__COL(comment, 11) STORE__COL(metadata, 12) STORE__COL(split, 13)
#undef STORE__COL
    if (!r->id) goto oom;
    return 0;
oom:
    store_feedback_clear(r);
    return -ENOMEM;
}

static int store__feedback_get(store *s, const char *id, store_feedback *out, char *err, size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!id) { store_set_err(err, errlen, "feedback: id required"); return -EINVAL; }
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int e = 0;
    int rc = sqlite3_prepare_v2(s->db, "SELECT " STORE__COLS " FROM feedback WHERE id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_ROW) {
        if ((e = store__row(st, out))) store_set_err(err, errlen, "feedback %s: out of memory", id);
    } else if (rc == SQLITE_DONE) {
        store_set_err(err, errlen, "feedback %s: not found", id);
        e = -ENOENT;
    } else {
        e = store__sqlerr(s, rc, "reading feedback", err, errlen);
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int store__feedback_delete(store *s, const char *id, char *err, size_t errlen) {
    if (!id) { store_set_err(err, errlen, "feedback: id required"); return -EINVAL; }
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int e = 0;
    int rc = sqlite3_prepare_v2(s->db, "DELETE FROM feedback WHERE id = ?", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        e = store__sqlerr(s, rc, "deleting feedback", err, errlen);
    } else if (sqlite3_changes(s->db) == 0) {
        store_set_err(err, errlen, "feedback %s: not found", id);
        e = -ENOENT;
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* Builds "SELECT ... WHERE <filters> ORDER BY ..." from constant fragments
 * and binds the filter values in the same order. */
static int store__select(store *s, const store_filter *f, bool newest_first,
                         bool cursor, int64_t cur_ms, const char *cur_id, int limit,
                         sqlite3_stmt **out, char *err, size_t errlen) {
    char sql[512] = "SELECT " STORE__COLS " FROM feedback WHERE 1";
    if (f && f->kind) strcat(sql, " AND kind = ?");
    if (f && f->annotator) strcat(sql, " AND annotator = ?");
    if (f && f->since_ms > 0) strcat(sql, " AND created_at >= ?");
    if (f && f->until_ms > 0) strcat(sql, " AND created_at < ?");
    if (cursor) strcat(sql, " AND (created_at < ? OR (created_at = ? AND id < ?))");
    strcat(sql, newest_first ? " ORDER BY created_at DESC, id DESC"
                             : " ORDER BY created_at ASC, id ASC");
    if (limit > 0) strcat(sql, " LIMIT ?");
    int rc = sqlite3_prepare_v2(s->db, sql, -1, out, NULL);
    if (rc != SQLITE_OK) return store__sqlerr(s, rc, "preparing list", err, errlen);
    int i = 1;
    if (f && f->kind) sqlite3_bind_text(*out, i++, f->kind, -1, SQLITE_TRANSIENT);
    if (f && f->annotator) sqlite3_bind_text(*out, i++, f->annotator, -1, SQLITE_TRANSIENT);
    if (f && f->since_ms > 0) sqlite3_bind_int64(*out, i++, f->since_ms);
    if (f && f->until_ms > 0) sqlite3_bind_int64(*out, i++, f->until_ms);
    if (cursor) {
        sqlite3_bind_int64(*out, i++, cur_ms);
        sqlite3_bind_int64(*out, i++, cur_ms);
        sqlite3_bind_text(*out, i++, cur_id, -1, SQLITE_TRANSIENT);
    }
    if (limit > 0) sqlite3_bind_int(*out, i++, limit);
    return 0;
}

static int store__feedback_list(store *s, const store_filter *f, store_feedback **rows, size_t *n,
                        char *next_cursor, size_t cursor_len, char *err, size_t errlen) {
    *rows = NULL;
    *n = 0;
    if (next_cursor && cursor_len) next_cursor[0] = '\0';
    if (!next_cursor || cursor_len < STORE_CURSOR_MAX) {
        store_set_err(err, errlen, "feedback list: cursor buffer must hold %d bytes", STORE_CURSOR_MAX);
        return -EINVAL;
    }
    int limit = f && f->limit > 0 ? f->limit : STORE_LIST_DEFAULT;
    if (limit > STORE_LIST_MAX) limit = STORE_LIST_MAX;
    int64_t cur_ms = 0;
    const char *cur_id = NULL;
    bool cursor = f && f->after && *f->after;
    if (cursor && store_parse_cursor(f->after, &cur_ms, &cur_id)) {
        store_set_err(err, errlen, "after: not a cursor returned by this server");
        return -EINVAL;
    }
    store_feedback *out = calloc((size_t)limit + 1, sizeof *out);
    if (!out) { store_set_err(err, errlen, "feedback list: out of memory"); return -ENOMEM; }
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    size_t got = 0;
    /* Fetch one more than the page to know whether a next page exists. */
    int e = store__select(s, f, true, cursor, cur_ms, cur_id, limit + 1, &st, err, errlen);
    int rc = SQLITE_DONE;
    while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((e = store__row(st, &out[got]))) store_set_err(err, errlen, "feedback list: out of memory");
        else got++;
    }
    if (!e && rc != SQLITE_DONE) e = store__sqlerr(s, rc, "listing feedback", err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    if (e) {
        for (size_t i = 0; i < got; i++) store_feedback_clear(&out[i]);
        free(out);
        return e;
    }
    if (got > (size_t)limit) {
        store_feedback_clear(&out[limit]);
        got = (size_t)limit;
        snprintf(next_cursor, cursor_len, "%" PRId64 ":%s", out[got - 1].created_at, out[got - 1].id);
    }
    *rows = out;
    *n = got;
    return 0;
}

static int store__feedback_each(store *s, const store_filter *f,
                        int (*cb)(void *ud, const store_feedback *row), void *ud,
                        char *err, size_t errlen) {
    pthread_mutex_lock(&s->mu);
    sqlite3_stmt *st = NULL;
    int e = store__select(s, f, false, false, 0, NULL, 0, &st, err, errlen);
    int rc = SQLITE_DONE;
    while (!e && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        store_feedback r;
        if ((e = store__row(st, &r))) { store_set_err(err, errlen, "feedback export: out of memory"); break; }
        e = cb(ud, &r);
        store_feedback_clear(&r);
    }
    if (!e && rc != SQLITE_DONE) e = store__sqlerr(s, rc, "exporting feedback", err, errlen);
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* ----------------------------------------------------------------- stats */

/* Runs a "SELECT key, count" statement into obj[key] = count. */
static int store__group(store *s, const char *sql, json_t *obj, char *err, size_t errlen) {
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *k = (const char *)sqlite3_column_text(st, 0);
        if (json_object_set_new(obj, k ? k : "", json_integer(sqlite3_column_int64(st, 1)))) {
            sqlite3_finalize(st);
            store_set_err(err, errlen, "feedback stats: out of memory");
            return -ENOMEM;
        }
        rc = SQLITE_OK;
    }
    int e = rc == SQLITE_DONE ? 0 : store__sqlerr(s, rc, "feedback stats", err, errlen);
    sqlite3_finalize(st);
    return e;
}

static int store__feedback_stats(store *s, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    json_t *o = json_object(), *kind = json_object(), *ann = json_object(),
           *split = json_object(), *day = json_object(), *tot = json_object();
    int e = 0;
    if (!o || !kind || !ann || !split || !day || !tot) {
        store_set_err(err, errlen, "feedback stats: out of memory");
        e = -ENOMEM;
        goto done;
    }
    pthread_mutex_lock(&s->mu);
    /* One read transaction: all numbers come from the same snapshot. */
    if (!(e = store__exec(s, "BEGIN", err, errlen))) {
        if (!e) e = store__group(s, "SELECT 'total', count(*) FROM feedback", tot, err, errlen);
        if (!e) e = store__group(s, "SELECT kind, count(*) FROM feedback GROUP BY kind", kind, err, errlen);
        if (!e) e = store__group(s, "SELECT annotator, count(*) FROM feedback GROUP BY annotator", ann, err, errlen);
        if (!e) e = store__group(s, "SELECT split, count(*) FROM feedback GROUP BY split", split, err, errlen);
        if (!e) e = store__group(s, "SELECT strftime('%Y-%m-%d', created_at / 1000, 'unixepoch'), count(*)"
                                    " FROM feedback GROUP BY 1", day, err, errlen);
        store__rollback(s);
    }
    pthread_mutex_unlock(&s->mu);
    if (e) goto done;
    json_object_set(o, "total", json_object_get(tot, "total"));
    json_object_set(o, "by_kind", kind);
    json_object_set(o, "by_annotator", ann);
    json_object_set(o, "by_split", split);
    json_object_set(o, "by_day", day);
    *out = o;
    o = NULL;
done:
    json_decref(o); json_decref(kind); json_decref(ann);
    json_decref(split); json_decref(day); json_decref(tot);
    return e;
}

/* ------------------------------------------------------------ trainer lock */

static int store__trainer_lock(store *s, bool *held, char *err, size_t errlen) {
    pthread_mutex_lock(&s->mu);
    int e = 0;
    if (!s->lock_path) {
        *held = true; /* ":memory:": nobody else can see it */
    } else if (s->lock_fd >= 0) {
        *held = true;
    } else {
        int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) {
            store_set_err(err, errlen, "store: trainer lock %s: %s", s->lock_path, strerror(errno));
            e = -errno;
        } else if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            s->lock_fd = fd;
        } else {
            close(fd);
        }
        *held = s->lock_fd >= 0;
    }
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int store__listen_fd(store *s, int *fd, char *err, size_t errlen) {
    (void)s;
    *fd = -1;
    store_set_err(err, errlen, "store: the SQLite backend has no notifications (changes are polled)");
    return -ENOTSUP;
}

static int store__listen_drain(store *s, int *n, char *err, size_t errlen) {
    *n = 0;
    return store__listen_fd(s, &(int){0}, err, errlen);
}

const store_ops store_sqlite_ops = {
    .name = "sqlite",
    .close = store__close,
    .feedback_insert = store__feedback_insert,
    .feedback_get = store__feedback_get,
    .feedback_delete = store__feedback_delete,
    .feedback_list = store__feedback_list,
    .feedback_each = store__feedback_each,
    .feedback_stats = store__feedback_stats,
    .run_insert = store_sqlite_run_insert,
    .run_update = store_sqlite_run_update,
    .run_get = store_sqlite_run_get,
    .run_list = store_sqlite_run_list,
    .runs_fail_interrupted = store_sqlite_runs_fail_interrupted,
    .run_last_created = store_sqlite_run_last_created,
    .pairs_since = store_sqlite_pairs_since,
    .run_claim = store_sqlite_run_claim,
    .run_request_cancel = store_sqlite_run_request_cancel,
    .adapter_insert = store_sqlite_adapter_insert,
    .adapter_get = store_sqlite_adapter_get,
    .adapter_active = store_sqlite_adapter_active,
    .adapter_list = store_sqlite_adapter_list,
    .adapter_activate = store_sqlite_adapter_activate,
    .adapter_set_reason = store_sqlite_adapter_set_reason,
    .reward_model_insert = store_sqlite_reward_model_insert,
    .reward_model_active = store_sqlite_reward_model_active,
    .trainer_lock = store__trainer_lock,
    .listen_fd = store__listen_fd,
    .listen_drain = store__listen_drain,
};
