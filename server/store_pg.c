/* store_pg.c - the PostgreSQL backend of the store (store.h, through
 * store_backend.h): the connection and its reset, schema migrations, the
 * feedback functions, the trainer election, LISTEN for adapter
 * activations, the helpers store_pg_train.c shares (store_pg_impl.h) and
 * the ops table.
 *
 * Every statement is constant SQL with $n text parameters; optional
 * filters are written "($1::text IS NULL OR kind = $1)" so that no SQL is
 * built at run time (an unnamed statement is planned with its values, so
 * the test folds away and the indexes still serve). Integers travel as
 * decimal text. Semantics and messages mirror store_sqlite.c: the same
 * test suites run on both. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "store_pg_impl.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#define PG__STR2(x) #x
#define PG__STR(x) PG__STR2(x)

/* ---------------------------------------------------------------- schema */

/* The statements of each schema version, in order; a version's statements
 * run in one transaction. Never edit a shipped entry: append. They mirror
 * store_sqlite.c's migrations with BIGINT for INTEGER. */
static const struct {
    int version;
    const char *sql;
} pg__migrations[] = {
    /* 1: feedback and idempotency */
    {1, "CREATE TABLE feedback ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  created_at BIGINT NOT NULL,"
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
        ")"},
    {1, "CREATE INDEX feedback_created ON feedback (created_at, id)"},
    {1, "CREATE INDEX feedback_kind ON feedback (kind, created_at, id)"},
    {1, "CREATE INDEX feedback_annotator ON feedback (annotator, created_at, id)"},
    {1, "CREATE TABLE idempotency ("
        "  key TEXT PRIMARY KEY NOT NULL,"
        "  request_hash TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL,"
        "  response TEXT NOT NULL"
        ")"},
    /* 2: training runs and the adapter registry (store_pg_train.c); at most
     * one active adapter per model. */
    {2, "CREATE TABLE training_runs ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  model TEXT NOT NULL,"
        "  kind TEXT NOT NULL CHECK (kind IN ('dpo','reward','both')),"
        "  trigger TEXT NOT NULL CHECK (trigger IN ('api','pairs','schedule')),"
        "  status TEXT NOT NULL CHECK (status IN "
        "('queued','running','succeeded','failed','cancelled')),"
        "  created_at BIGINT NOT NULL,"
        "  started_at BIGINT,"
        "  finished_at BIGINT,"
        "  pairs BIGINT NOT NULL DEFAULT 0,"
        "  config TEXT,"
        "  metrics TEXT,"
        "  history TEXT,"
        "  error TEXT,"
        "  adapter_id TEXT"
        ")"},
    {2, "CREATE INDEX training_runs_created ON training_runs (created_at, id)"},
    {2, "CREATE TABLE adapters ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  model TEXT NOT NULL,"
        "  version BIGINT NOT NULL,"
        "  parent_id TEXT,"
        "  run_id TEXT,"
        "  status TEXT NOT NULL CHECK (status IN ('candidate','active','retired')),"
        "  metrics TEXT,"
        "  path TEXT NOT NULL,"
        "  sha256 TEXT NOT NULL,"
        "  created_at BIGINT NOT NULL,"
        "  reason TEXT,"
        "  UNIQUE (model, version)"
        ")"},
    {2, "CREATE UNIQUE INDEX adapters_one_active ON adapters (model) WHERE status = 'active'"},
    /* 3: the reward models the loop trained; at most one active per model. */
    {3, "CREATE TABLE reward_models ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  model TEXT NOT NULL,"
        "  run_id TEXT,"
        "  path TEXT NOT NULL,"
        "  status TEXT NOT NULL CHECK (status IN ('active','retired')),"
        "  created_at BIGINT NOT NULL"
        ")"},
    {3, "CREATE INDEX reward_models_model ON reward_models (model, created_at)"},
    {3, "CREATE UNIQUE INDEX reward_models_one_active ON reward_models (model) "
        "WHERE status = 'active'"},
    /* 4: a cancel asked of a running run, seen by the daemon that trains it. */
    {4, "ALTER TABLE training_runs ADD COLUMN cancel_requested BIGINT NOT NULL DEFAULT 0"},
};
#define PG__N_MIGRATIONS (sizeof pg__migrations / sizeof pg__migrations[0])
#define PG__VERSION 4 /* the last entry's version */

#define PG__COLS "id, created_at, prompt, chosen, rejected, format, kind, " \
                 "annotator, source, model, adapter, comment, metadata, split"

/* The filters of list and each: $1 kind, $2 annotator, $3 since, $4 until
 * (NULL: no filter). */
#define PG__WHERE " WHERE ($1::text IS NULL OR kind = $1)"              \
                  " AND ($2::text IS NULL OR annotator = $2)"           \
                  " AND ($3::bigint IS NULL OR created_at >= $3)"       \
                  " AND ($4::bigint IS NULL OR created_at < $4)"

/* Session settings, again after every reset: no NOTICE chatter on stderr
 * (CREATE ... IF NOT EXISTS), and a lock wait ends in -EBUSY after 5 s like
 * SQLite's busy timeout. */
static const char *const pg__session_sql[] = {
    "SET client_min_messages = warning",
    "SET lock_timeout = '5s'",
};

/* --------------------------------------------------------------- helpers */

/* Copies a libpq message into out on one line: newlines and tabs become
 * single spaces, trailing blanks go. */
static void pg__oneline(char *out, size_t outlen, const char *msg) {
    if (!outlen) return;
    size_t o = 0;
    bool blank = false;
    for (const char *p = msg ? msg : ""; *p && o + 1 < outlen; p++) {
        bool ws = *p == '\n' || *p == '\t' || *p == '\r';
        if (ws || *p == ' ') {
            if (!blank && o) out[o++] = ' ';
            blank = true;
            continue;
        }
        blank = false;
        out[o++] = *p;
    }
    while (o && out[o - 1] == ' ') o--;
    out[o] = '\0';
}

/* url for messages: a password in the user part ("user:pw@") or in a
 * "password=" parameter is left out. Anything that is not a URI is shown
 * as "(connection string)": it may hold a password anywhere. */
static void pg__shown_url(char *out, size_t outlen, const char *url) {
    const char *p = url ? strstr(url, "://") : NULL;
    if (!p) {
        snprintf(out, outlen, "(connection string)");
        return;
    }
    p += 3;
    size_t auth = strcspn(p, "/?");
    const char *at = NULL;
    for (const char *q = p; q < p + auth; q++)
        if (*q == '@') at = q;
    const char *colon = at ? memchr(p, ':', (size_t)(at - p)) : NULL;
    size_t o = 0;
    for (const char *q = url; *q && o + 1 < outlen;) {
        if (colon && q == colon) { q = at; continue; } /* skip ":password" */
        bool param = q > url && (q[-1] == '?' || q[-1] == '&') && q > p + auth;
        if (param && strncmp(q, "password=", 9) == 0) {
            q += strcspn(q, "&");
            if (*q == '&') q++;
            else if (o && (out[o - 1] == '&' || out[o - 1] == '?')) o--;
            continue;
        }
        out[o++] = *q++;
    }
    if (outlen) out[o < outlen ? o : outlen - 1] = '\0';
}

static int pg__session(PGconn *c, char *msg, size_t msglen) {
    for (size_t i = 0; i < sizeof pg__session_sql / sizeof pg__session_sql[0]; i++) {
        PGresult *r = PQexec(c, pg__session_sql[i]);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (!ok) {
            char m[256];
            pg__oneline(m, sizeof m, PQerrorMessage(c));
            snprintf(msg, msglen, "%s: %s", pg__session_sql[i], m);
        }
        PQclear(r);
        if (!ok) return -EIO;
    }
    return 0;
}

/* Reconnects s->pg with the same parameters and settings. The session's
 * advisory lock died with the old connection whatever happens. */
static int pg__reset(store *s, char *msg, size_t msglen) {
    s->lock_held = false;
    PQreset(s->pg);
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char m[256];
        pg__oneline(m, sizeof m, PQerrorMessage(s->pg));
        snprintf(msg, msglen, "connection lost and reconnecting failed: %s", m);
        return -EIO;
    }
    return pg__session(s->pg, msg, msglen);
}

/* The negative code of a failed result (NULL with a healthy connection:
 * libpq ran out of memory). */
static int pg__code(const PGresult *r, PGconn *c) {
    if (!r) return PQstatus(c) == CONNECTION_OK ? -ENOMEM : -EIO;
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    if (!state) return -EIO;
    if (strncmp(state, "23", 2) == 0) return -EINVAL;
    if (!strcmp(state, "40001") || !strcmp(state, "40P01") || !strcmp(state, "55P03"))
        return -EBUSY;
    return -EIO;
}

/* The server's primary message, else the connection's, else the status. */
static void pg__msg(const PGresult *r, PGconn *c, char *msg, size_t msglen) {
    const char *m = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (!m || !*m) m = PQerrorMessage(c);
    if (!m || !*m) m = r ? PQresStatus(PQresultStatus(r)) : "out of memory";
    pg__oneline(msg, msglen, m);
}

/* store_pg_exec without the message prefix: msg gets the bare text. retry:
 * whether a broken connection may be reset and the statement sent again
 * (never for COMMIT: a reset loses the transaction it would commit). A
 * retry happens only when no transaction was open, so at worst an
 * autocommit statement the server ran just before the connection died runs
 * twice; the usual case, a connection that died while idle, never reached
 * the server. */
static int pg__run(store *s, const char *sql, int n, const char *const *params, bool retry,
                   PGresult **res, char *msg, size_t msglen) {
    if (res) *res = NULL;
    if (!s->pg) {
        snprintf(msg, msglen, "not connected");
        return -EIO;
    }
    /* Known broken before sending: whatever transaction it had is gone and
     * its caller already had the error, so reconnect first. */
    if (PQstatus(s->pg) == CONNECTION_BAD) {
        if (!retry) {
            pg__msg(NULL, s->pg, msg, msglen);
            return -EIO;
        }
        int e = pg__reset(s, msg, msglen);
        if (e) return e;
        retry = false;
    }
    for (;;) {
        bool idle = PQtransactionStatus(s->pg) == PQTRANS_IDLE;
        PGresult *r = PQexecParams(s->pg, sql, n, NULL, params, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(r);
        if (r && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)) {
            if (res) *res = r;
            else PQclear(r);
            return 0;
        }
        if (retry && idle && PQstatus(s->pg) == CONNECTION_BAD) {
            PQclear(r);
            retry = false;
            int e = pg__reset(s, msg, msglen);
            if (e) return e;
            continue;
        }
        int e = pg__code(r, s->pg);
        pg__msg(r, s->pg, msg, msglen);
        PQclear(r);
        return e;
    }
}

int store_pg_exec(store *s, const char *what, const char *sql, int n,
                  const char *const *params, PGresult **res, char *err, size_t errlen) {
    char msg[512];
    int e = pg__run(s, sql, n, params, true, res, msg, sizeof msg);
    if (e) store_set_err(err, errlen, "store: %s: %s", what, msg);
    return e;
}

int store_pg_begin(store *s, char *err, size_t errlen) {
    return store_pg_exec(s, "BEGIN", "BEGIN", 0, NULL, NULL, err, errlen);
}

int store_pg_commit(store *s, char *err, size_t errlen) {
    char msg[512];
    int e = pg__run(s, "COMMIT", 0, NULL, false, NULL, msg, sizeof msg);
    if (e) store_set_err(err, errlen, "store: COMMIT: %s", msg);
    return e;
}

void store_pg_rollback(store *s) {
    /* Only when a transaction is open: on a broken connection there is
     * nothing to roll back, and "ROLLBACK" outside one only warns. */
    if (!s->pg) return;
    PGTransactionStatusType t = PQtransactionStatus(s->pg);
    if (t != PQTRANS_INTRANS && t != PQTRANS_INERROR) return;
    PQclear(PQexec(s->pg, "ROLLBACK"));
}

char *store_pg_dup(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return NULL;
    return strdup(PQgetvalue(r, row, col));
}

int64_t store_pg_int(const PGresult *r, int row, int col) {
    if (PQgetisnull(r, row, col)) return 0;
    const char *v = PQgetvalue(r, row, col);
    /* booleans come back as "t" / "f" */
    if (v[0] == 't' && !v[1]) return 1;
    if (v[0] == 'f' && !v[1]) return 0;
    return (int64_t)strtoll(v, NULL, 10);
}

const char *store_pg_i64(char buf[24], int64_t v) {
    snprintf(buf, 24, "%" PRId64, v);
    return buf;
}

const char *store_pg_i64_or_null(char buf[24], int64_t v) {
    return v ? store_pg_i64(buf, v) : NULL;
}

/* ------------------------------------------------------------ open/close */

/* pg__run for store_pg_open: messages name the database ("store <url>:
 * <what>: <message>"). No reset: the connection was just opened. */
static int pg__open_exec(store *s, const char *shown, const char *what, const char *sql,
                         int n, const char *const *params, PGresult **res, char *err,
                         size_t errlen) {
    char msg[512];
    int e = pg__run(s, sql, n, params, false, res, msg, sizeof msg);
    if (e) store_set_err(err, errlen, "store %s: %s: %s", shown, what, msg);
    return e;
}

/* Applies pending migrations, one transaction per version. Each takes a
 * transaction-scoped advisory lock first and only then creates
 * schema_version and reads the version, so two daemons starting at once
 * apply each version once and never race on CREATE TABLE. */
static int pg__migrate(store *s, const char *shown, char *err, size_t errlen) {
    int e;
    for (;;) {
        PGresult *r = NULL;
        if ((e = pg__open_exec(s, shown, "BEGIN", "BEGIN", 0, NULL, NULL, err, errlen)) ||
            (e = pg__open_exec(s, shown, "locking the schema for migrations",
                               "SELECT pg_advisory_xact_lock("
                               PG__STR(STORE_PG_LOCK_CLASS_MIGRATE) ", hashtext(current_schema()))",
                               0, NULL, NULL, err, errlen)) ||
            (e = pg__open_exec(s, shown, "creating schema_version",
                               "CREATE TABLE IF NOT EXISTS schema_version ("
                               " version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)",
                               0, NULL, NULL, err, errlen)) ||
            (e = pg__open_exec(s, shown, "reading schema_version",
                               "SELECT coalesce(max(version), 0) FROM schema_version",
                               0, NULL, &r, err, errlen)))
            goto fail;
        int have = PQntuples(r) == 1 ? (int)store_pg_int(r, 0, 0) : 0;
        PQclear(r);
        if (have > PG__VERSION) {
            store_set_err(err, errlen,
                          "store %s: database schema version %d is newer than this alignd "
                          "supports (%d); upgrade alignd or use another database",
                          shown, have, PG__VERSION);
            e = -ENOTSUP;
            goto fail;
        }
        if (have == PG__VERSION)
            return pg__open_exec(s, shown, "COMMIT", "COMMIT", 0, NULL, NULL, err, errlen);
        int v = have + 1;
        char what[64];
        snprintf(what, sizeof what, "migration to schema version %d failed", v);
        for (size_t i = 0; i < PG__N_MIGRATIONS; i++) {
            if (pg__migrations[i].version == v &&
                (e = pg__open_exec(s, shown, what, pg__migrations[i].sql, 0, NULL, NULL, err,
                                   errlen)))
                goto fail;
        }
        char vb[24], tb[24];
        const char *p[2] = {store_pg_i64(vb, v), store_pg_i64(tb, store_now_ms())};
        if ((e = pg__open_exec(s, shown, "recording schema_version",
                               "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)",
                               2, p, NULL, err, errlen)) ||
            (e = pg__open_exec(s, shown, "COMMIT", "COMMIT", 0, NULL, NULL, err, errlen)))
            goto fail;
    }
fail:
    store_pg_rollback(s);
    return e;
}

int store_pg_open(store *s, const char *url, char *err, size_t errlen) {
    char shown[256];
    pg__shown_url(shown, sizeof shown, url);
    if (!(s->url = strdup(url))) {
        store_set_err(err, errlen, "store %s: out of memory", shown);
        return -ENOMEM;
    }
    s->pg = PQconnectdb(url);
    if (!s->pg) {
        store_set_err(err, errlen, "store %s: out of memory", shown);
        return -ENOMEM;
    }
    if (PQstatus(s->pg) != CONNECTION_OK) {
        char m[256];
        pg__oneline(m, sizeof m, PQerrorMessage(s->pg));
        store_set_err(err, errlen, "store %s: cannot connect: %s", shown, m);
        return -EIO;
    }
    char msg[512];
    if (pg__session(s->pg, msg, sizeof msg)) {
        store_set_err(err, errlen, "store %s: %s", shown, msg);
        return -EIO;
    }
    return pg__migrate(s, shown, err, errlen);
}

static void pg_close(store *s) {
    PQfinish(s->pg_listen);
    PQfinish(s->pg);
    s->pg_listen = NULL;
    s->pg = NULL;
    s->lock_held = false;
    free(s->url);
    s->url = NULL;
}

/* ------------------------------------------------------- feedback rows */

/* Copies row i of r (PG__COLS order) into *out: 0 or -ENOMEM. */
static int pg__row(const PGresult *r, int i, store_feedback *out) {
    memset(out, 0, sizeof *out);
    char **col[] = {
        &out->id, NULL, &out->prompt, &out->chosen, &out->rejected, &out->format,
        &out->kind, &out->annotator, &out->source, &out->model, &out->adapter,
        &out->comment, &out->metadata, &out->split,
    };
    for (int c = 0; c < (int)(sizeof col / sizeof col[0]); c++) {
        if (!col[c] || PQgetisnull(r, i, c)) continue;
        if (!(*col[c] = strdup(PQgetvalue(r, i, c)))) {
            store_feedback_clear(out);
            return -ENOMEM;
        }
    }
    out->created_at = store_pg_int(r, i, 1);
    return 0;
}

/* Claims idem_key inside the open transaction: 0 it is ours now (stored
 * with response), 1 a replay (*ids set), or a negative code. Claiming
 * first with ON CONFLICT DO NOTHING makes two inserts with one new key
 * safe: the second waits for the first's transaction, then finds its row. */
static int pg__idem_claim(store *s, const char *key, const char *hash, const char *response,
                          int64_t now, char ***ids, char *err, size_t errlen) {
    char nb[24];
    const char *p[4] = {key, hash, store_pg_i64(nb, now), response};
    PGresult *r = NULL;
    int e = store_pg_exec(s, "storing idempotency key",
                          "INSERT INTO idempotency (key, request_hash, created_at, response)"
                          " VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                          4, p, &r, err, errlen);
    if (e) return e;
    bool ours = strcmp(PQcmdTuples(r), "1") == 0;
    PQclear(r);
    if (ours) return 0;
    /* READ COMMITTED: this statement sees the row that conflicted. */
    if ((e = store_pg_exec(s, "idempotency lookup",
                           "SELECT request_hash, response FROM idempotency WHERE key = $1",
                           1, p, &r, err, errlen)))
        return e;
    if (PQntuples(r) != 1) {
        store_set_err(err, errlen, "idempotency key '%s': changed concurrently; retry", key);
        e = -EBUSY;
    } else if (PQgetisnull(r, 0, 0) || strcmp(PQgetvalue(r, 0, 0), hash) != 0) {
        store_set_err(err, errlen,
                      "idempotency key '%s' was already used with a different request", key);
        e = -EEXIST;
    } else if (!(*ids = store_ids_from_json(PQgetvalue(r, 0, 1)))) {
        store_set_err(err, errlen, "idempotency key '%s': stored response is unreadable", key);
        e = -EIO;
    } else {
        e = 1;
    }
    PQclear(r);
    return e;
}

/* The batch as one JSON array of row objects (keys: PG__COLS; SQL NULL
 * fields left out) for a single INSERT from json_to_recordset: one round
 * trip whatever the batch's size. -EINVAL names a field that is not UTF-8
 * (the database would refuse it). *out: a new string. */
static int pg__rows_json(const store_feedback *rows, size_t n, char *const *ids, int64_t now,
                         char **out, char *err, size_t errlen) {
    *out = NULL;
    json_t *a = json_array();
    if (!a) goto oom;
    for (size_t i = 0; i < n; i++) {
        const store_feedback *r = &rows[i];
        const struct {
            const char *key, *val;
        } f[] = {
            {"id", ids[i]}, {"prompt", r->prompt}, {"chosen", r->chosen},
            {"rejected", r->rejected}, {"format", r->format}, {"kind", r->kind},
            {"annotator", r->annotator}, {"source", r->source}, {"model", r->model},
            {"adapter", r->adapter}, {"comment", r->comment}, {"metadata", r->metadata},
            {"split", store_split_of(ids[i])},
        };
        json_t *o = json_object();
        if (!o || json_array_append_new(a, o) ||
            json_object_set_new(o, "created_at",
                                json_integer(r->created_at > 0 ? r->created_at : now)))
            goto oom;
        for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
            if (!f[k].val) continue;
            json_t *v = json_string(f[k].val);
            if (!v) {
                /* json_string checks UTF-8; its _nocheck twin fails only
                 * for want of memory */
                json_t *raw = json_string_nocheck(f[k].val);
                json_decref(raw);
                if (!raw) goto oom;
                store_set_err(err, errlen, "rows[%zu].%s: not valid UTF-8", i, f[k].key);
                json_decref(a);
                return -EINVAL;
            }
            if (json_object_set_new(o, f[k].key, v)) goto oom;
        }
    }
    *out = json_dumps(a, JSON_COMPACT);
    if (!*out) goto oom;
    json_decref(a);
    return 0;
oom:
    json_decref(a);
    store_set_err(err, errlen, "feedback: out of memory");
    return -ENOMEM;
}

static int pg__strcmp_p(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The insert stored fewer rows than asked: *first gets the first row whose
 * id was not stored by it (taken before, or by an earlier row of the
 * batch). r: the ids it stored (distinct). 0 or -ENOMEM. */
static int pg__first_taken(const PGresult *r, char *const *ids, size_t n, size_t *first) {
    size_t m = (size_t)PQntuples(r);
    char **got = calloc(m + 1, sizeof *got);
    bool *used = calloc(m + 1, sizeof *used);
    if (!got || !used) {
        free(got);
        free(used);
        return -ENOMEM;
    }
    for (size_t j = 0; j < m; j++) got[j] = PQgetvalue(r, (int)j, 0);
    qsort(got, m, sizeof *got, pg__strcmp_p);
    *first = n - 1;
    for (size_t i = 0; i < n; i++) {
        char **hit = m ? bsearch(&ids[i], got, m, sizeof *got, pg__strcmp_p) : NULL;
        if (!hit || used[hit - got]) {
            *first = i;
            break;
        }
        used[hit - got] = true;
    }
    free(got);
    free(used);
    return 0;
}

static int pg_feedback_insert(store *s, store_feedback *rows, size_t n, const char *idem_key,
                              const char *request_hash, char ***ids_out, bool *replayed,
                              char *err, size_t errlen) {
    if (ids_out) *ids_out = NULL;
    if (replayed) *replayed = false;
    if (!rows || n == 0) {
        store_set_err(err, errlen, "feedback: at least one row is required");
        return -EINVAL;
    }
    if (idem_key && (!*idem_key || !request_hash)) {
        store_set_err(err, errlen,
                      "idempotency key: must be non-empty and come with a request hash");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        int e = store_feedback_validate(&rows[i], i, err, errlen);
        if (e) return e;
    }
    if (n > SIZE_MAX / sizeof(char *) - 1) return -ENOMEM;
    char **ids = calloc(n + 1, sizeof *ids);
    char *response = NULL;
    int e = 0;
    if (!ids) {
        store_set_err(err, errlen, "feedback: out of memory");
        return -ENOMEM;
    }
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
    if (idem_key) {
        /* The response is known before the transaction: the ids. */
        json_t *a = json_array();
        for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_string(ids[i]));
        response = a ? json_dumps(a, JSON_COMPACT) : NULL;
        json_decref(a);
        if (!response) {
            store_set_err(err, errlen, "feedback: out of memory");
            store_ids_free(ids);
            return -ENOMEM;
        }
    }
    char *batch = NULL;
    if ((e = pg__rows_json(rows, n, ids, now, &batch, err, errlen))) {
        free(response);
        store_ids_free(ids);
        return e;
    }

    pthread_mutex_lock(&s->mu);
    /* READ COMMITTED whatever the database's default: pg__idem_claim relies
     * on each statement seeing what committed before it. */
    if ((e = store_pg_exec(s, "BEGIN", "BEGIN ISOLATION LEVEL READ COMMITTED", 0, NULL, NULL,
                           err, errlen)))
        goto fail;
    if (idem_key) {
        char **old = NULL;
        e = pg__idem_claim(s, idem_key, request_hash, response, now, &old, err, errlen);
        if (e < 0) goto fail;
        if (e == 1) {
            store_pg_rollback(s); /* nothing written */
            pthread_mutex_unlock(&s->mu);
            store_ids_free(ids);
            free(response);
            free(batch);
            if (replayed) *replayed = true;
            if (ids_out) *ids_out = old;
            else store_ids_free(old);
            return 0;
        }
    }
    /* One statement for the batch. A taken id (stored before, or twice in
     * this batch) inserts nothing instead of failing: it is told apart from
     * other errors without parsing them, and named as SQLite names it. */
    const char *p[1] = {batch};
    PGresult *res = NULL;
    if ((e = store_pg_exec(s, "inserting rows",
                           "INSERT INTO feedback (" PG__COLS ") SELECT " PG__COLS
                           " FROM json_to_recordset($1::json) AS x (id text, created_at bigint,"
                           " prompt text, chosen text, rejected text, format text, kind text,"
                           " annotator text, source text, model text, adapter text,"
                           " comment text, metadata text, split text)"
                           " ON CONFLICT (id) DO NOTHING RETURNING id",
                           1, p, &res, err, errlen)))
        goto fail;
    if ((size_t)PQntuples(res) != n) {
        size_t i = 0;
        e = pg__first_taken(res, ids, n, &i);
        if (!e) {
            store_set_err(err, errlen, "rows[%zu].id: feedback %s already exists", i, ids[i]);
            e = -EEXIST;
        } else {
            store_set_err(err, errlen, "feedback: out of memory");
        }
        PQclear(res);
        goto fail;
    }
    PQclear(res);
    if ((e = store_pg_commit(s, err, errlen))) goto fail;
    pthread_mutex_unlock(&s->mu);
    free(response);
    free(batch);

    /* Committed: hand the assigned values back to the rows. Allocation
     * failures here lose only the echo, never the data. */
    for (size_t i = 0; i < n; i++) {
        if (!rows[i].id) rows[i].id = strdup(ids[i]);
        if (rows[i].created_at <= 0) rows[i].created_at = now;
        free(rows[i].split);
        rows[i].split = strdup(store_split_of(ids[i]));
    }
    if (ids_out) *ids_out = ids;
    else store_ids_free(ids);
    return 0;
fail:
    store_pg_rollback(s);
    pthread_mutex_unlock(&s->mu);
    free(response);
    free(batch);
    store_ids_free(ids);
    return e;
}

/* ------------------------------------------------------------------ read */

static int pg_feedback_get(store *s, const char *id, store_feedback *out, char *err,
                           size_t errlen) {
    memset(out, 0, sizeof *out);
    if (!id) {
        store_set_err(err, errlen, "feedback: id required");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    PGresult *r = NULL;
    const char *p[1] = {id};
    int e = store_pg_exec(s, "reading feedback",
                          "SELECT " PG__COLS " FROM feedback WHERE id = $1", 1, p, &r, err,
                          errlen);
    if (!e && PQntuples(r) == 0) {
        store_set_err(err, errlen, "feedback %s: not found", id);
        e = -ENOENT;
    } else if (!e && (e = pg__row(r, 0, out))) {
        store_set_err(err, errlen, "feedback %s: out of memory", id);
    }
    PQclear(r);
    pthread_mutex_unlock(&s->mu);
    return e;
}

static int pg_feedback_delete(store *s, const char *id, char *err, size_t errlen) {
    if (!id) {
        store_set_err(err, errlen, "feedback: id required");
        return -EINVAL;
    }
    pthread_mutex_lock(&s->mu);
    PGresult *r = NULL;
    const char *p[1] = {id};
    int e = store_pg_exec(s, "deleting feedback", "DELETE FROM feedback WHERE id = $1", 1, p,
                          &r, err, errlen);
    if (!e && strcmp(PQcmdTuples(r), "0") == 0) {
        store_set_err(err, errlen, "feedback %s: not found", id);
        e = -ENOENT;
    }
    PQclear(r);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* The filter's values as the parameters $1..$4 of PG__WHERE. */
static void pg__filter_params(const store_filter *f, const char *p[4], char since[24],
                              char until[24]) {
    p[0] = f ? f->kind : NULL;
    p[1] = f ? f->annotator : NULL;
    p[2] = f && f->since_ms > 0 ? store_pg_i64(since, f->since_ms) : NULL;
    p[3] = f && f->until_ms > 0 ? store_pg_i64(until, f->until_ms) : NULL;
}

static int pg_feedback_list(store *s, const store_filter *f, store_feedback **rows, size_t *n,
                            char *next_cursor, size_t cursor_len, char *err, size_t errlen) {
    *rows = NULL;
    *n = 0;
    if (next_cursor && cursor_len) next_cursor[0] = '\0';
    if (!next_cursor || cursor_len < STORE_CURSOR_MAX) {
        store_set_err(err, errlen, "feedback list: cursor buffer must hold %d bytes",
                      STORE_CURSOR_MAX);
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
    /* $5, $6: the cursor (NULL: first page); $7: one more than the page,
     * to know whether a next page exists. */
    char since[24], until[24], cb[24], lb[24];
    const char *p[7];
    pg__filter_params(f, p, since, until);
    p[4] = cursor ? store_pg_i64(cb, cur_ms) : NULL;
    p[5] = cursor ? cur_id : NULL;
    p[6] = store_pg_i64(lb, (int64_t)limit + 1);

    pthread_mutex_lock(&s->mu);
    PGresult *r = NULL;
    int e = store_pg_exec(s, "listing feedback",
                          "SELECT " PG__COLS " FROM feedback" PG__WHERE
                          " AND ($5::bigint IS NULL OR (created_at, id) < ($5, $6::text))"
                          " ORDER BY created_at DESC, id DESC LIMIT $7",
                          7, p, &r, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (e) return e;
    size_t got = (size_t)PQntuples(r);
    store_feedback *out = calloc(got ? got : 1, sizeof *out);
    if (!out) {
        PQclear(r);
        store_set_err(err, errlen, "feedback list: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < got; i++) {
        if (pg__row(r, (int)i, &out[i])) {
            for (size_t j = 0; j < i; j++) store_feedback_clear(&out[j]);
            free(out);
            PQclear(r);
            store_set_err(err, errlen, "feedback list: out of memory");
            return -ENOMEM;
        }
    }
    PQclear(r);
    if (got > (size_t)limit) {
        store_feedback_clear(&out[limit]);
        got = (size_t)limit;
        snprintf(next_cursor, cursor_len, "%" PRId64 ":%s", out[got - 1].created_at,
                 out[got - 1].id);
    }
    *rows = out;
    *n = got;
    return 0;
}

#define PG__FETCH 500 /* rows per round trip of each */

/* Streams through a server-side cursor in a read-only transaction, so
 * memory stays bounded by one batch whatever the table's size. */
static int pg_feedback_each(store *s, const store_filter *f,
                            int (*cb)(void *ud, const store_feedback *row), void *ud,
                            char *err, size_t errlen) {
    char since[24], until[24];
    const char *p[4];
    pg__filter_params(f, p, since, until);
    pthread_mutex_lock(&s->mu);
    int e = store_pg_exec(s, "BEGIN", "BEGIN READ ONLY", 0, NULL, NULL, err, errlen);
    if (!e)
        e = store_pg_exec(s, "exporting feedback",
                          "DECLARE store_each NO SCROLL CURSOR FOR SELECT " PG__COLS
                          " FROM feedback" PG__WHERE " ORDER BY created_at ASC, id ASC",
                          4, p, NULL, err, errlen);
    bool more = !e;
    while (more) {
        PGresult *r = NULL;
        if ((e = store_pg_exec(s, "exporting feedback",
                               "FETCH " PG__STR(PG__FETCH) " FROM store_each", 0, NULL, &r,
                               err, errlen)))
            break;
        int got = PQntuples(r);
        more = got == PG__FETCH;
        for (int i = 0; i < got && !e; i++) {
            store_feedback row;
            if ((e = pg__row(r, i, &row))) {
                store_set_err(err, errlen, "feedback export: out of memory");
                break;
            }
            e = cb(ud, &row);
            store_feedback_clear(&row);
        }
        PQclear(r);
        if (e) break;
    }
    store_pg_rollback(s); /* read only: ends the transaction and the cursor */
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* ----------------------------------------------------------------- stats */

static int pg_feedback_stats(store *s, json_t **out, char *err, size_t errlen) {
    *out = NULL;
    json_t *o = json_object(), *kind = json_object(), *ann = json_object(),
           *split = json_object(), *day = json_object();
    int e = 0;
    PGresult *r = NULL;
    if (!o || !kind || !ann || !split || !day) goto oom;
    pthread_mutex_lock(&s->mu);
    /* One statement: every number comes from the same snapshot. */
    e = store_pg_exec(s, "feedback stats",
                      "SELECT 't', NULL, count(*) FROM feedback"
                      " UNION ALL SELECT 'k', kind, count(*) FROM feedback GROUP BY kind"
                      " UNION ALL SELECT 'a', annotator, count(*) FROM feedback GROUP BY annotator"
                      " UNION ALL SELECT 's', split, count(*) FROM feedback GROUP BY split"
                      " UNION ALL SELECT 'd', to_char(to_timestamp(created_at / 1000.0)"
                      " AT TIME ZONE 'UTC', 'YYYY-MM-DD'), count(*) FROM feedback GROUP BY 2",
                      0, NULL, &r, err, errlen);
    pthread_mutex_unlock(&s->mu);
    if (e) goto done;
    json_int_t total = 0;
    for (int i = 0; i < PQntuples(r); i++) {
        const char *g = PQgetvalue(r, i, 0);
        const char *k = PQgetisnull(r, i, 1) ? "" : PQgetvalue(r, i, 1);
        json_int_t c = (json_int_t)store_pg_int(r, i, 2);
        json_t *into = g[0] == 'k' ? kind : g[0] == 'a' ? ann : g[0] == 's' ? split
                     : g[0] == 'd' ? day : NULL;
        if (!into) total = c;
        else if (json_object_set_new(into, k, json_integer(c))) goto oom;
    }
    if (json_object_set_new(o, "total", json_integer(total)) ||
        json_object_set(o, "by_kind", kind) || json_object_set(o, "by_annotator", ann) ||
        json_object_set(o, "by_split", split) || json_object_set(o, "by_day", day))
        goto oom;
    *out = o;
    o = NULL;
    goto done;
oom:
    store_set_err(err, errlen, "feedback stats: out of memory");
    e = -ENOMEM;
done:
    PQclear(r);
    json_decref(o); json_decref(kind); json_decref(ann);
    json_decref(split); json_decref(day);
    return e;
}

/* ----------------------------------------------------- trainer, listen */

/* Whether c still stands, without a round trip: reads what the server sent
 * while idle, as long as more is there (up to a bound). A closed connection
 * (a terminated backend) shows as its last error message, then end of file
 * on a later read. */
static bool pg__alive(PGconn *c) {
    for (int i = 0; i < 64 && PQstatus(c) == CONNECTION_OK; i++) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};
        if (poll(&p, 1, 0) <= 0 || !PQconsumeInput(c)) break;
    }
    return PQstatus(c) == CONNECTION_OK;
}

/* While held, only checks that the connection still stands (pg__alive). A
 * reset (store_pg_exec) or a closed connection means the server released
 * the session lock: take it again if nobody else has. */
static int pg_trainer_lock(store *s, bool *held, char *err, size_t errlen) {
    *held = false;
    pthread_mutex_lock(&s->mu);
    if (s->lock_held && s->pg) {
        if (pg__alive(s->pg)) {
            *held = true;
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
        s->lock_held = false;
    }
    PGresult *r = NULL;
    int e = store_pg_exec(s, "trainer lock",
                          "SELECT pg_try_advisory_lock(" PG__STR(STORE_PG_LOCK_CLASS_TRAINER)
                          ", hashtext(current_schema()))", 0, NULL, &r, err, errlen);
    if (!e) {
        s->lock_held = PQntuples(r) == 1 && store_pg_int(r, 0, 0) == 1;
        *held = s->lock_held;
    }
    PQclear(r);
    pthread_mutex_unlock(&s->mu);
    return e;
}

/* The listening connection is opened without s->mu held (a connect may
 * take long, other calls need not wait); a second caller racing it keeps
 * the first connection installed and drops its own. */
static int pg_listen_fd(store *s, int *fd, char *err, size_t errlen) {
    *fd = -1;
    char shown[256];
    pg__shown_url(shown, sizeof shown, s->url);
    pthread_mutex_lock(&s->mu);
    if (s->pg_listen && PQstatus(s->pg_listen) != CONNECTION_OK) {
        PQfinish(s->pg_listen);
        s->pg_listen = NULL;
    }
    bool connected = s->pg_listen != NULL;
    pthread_mutex_unlock(&s->mu);
    if (!connected) {
        PGconn *c = PQconnectdb(s->url);
        char m[256];
        if (!c || PQstatus(c) != CONNECTION_OK) {
            pg__oneline(m, sizeof m, c ? PQerrorMessage(c) : "out of memory");
            store_set_err(err, errlen, "store %s: listen: cannot connect: %s", shown, m);
            PQfinish(c);
            return -EIO;
        }
        PGresult *r = PQexec(c, "LISTEN " STORE_PG_CHANNEL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            pg__msg(r, c, m, sizeof m);
            store_set_err(err, errlen, "store %s: LISTEN " STORE_PG_CHANNEL ": %s", shown, m);
            PQclear(r);
            PQfinish(c);
            return -EIO;
        }
        PQclear(r);
        pthread_mutex_lock(&s->mu);
        if (!s->pg_listen) s->pg_listen = c;
        else PQfinish(c);
        pthread_mutex_unlock(&s->mu);
    }
    pthread_mutex_lock(&s->mu);
    *fd = s->pg_listen ? PQsocket(s->pg_listen) : -1;
    pthread_mutex_unlock(&s->mu);
    if (*fd < 0) {
        store_set_err(err, errlen, "store %s: listen: connection lost", shown);
        return -EIO;
    }
    return 0;
}

static int pg_listen_drain(store *s, int *n, char *err, size_t errlen) {
    *n = 0;
    char shown[256];
    pg__shown_url(shown, sizeof shown, s->url);
    pthread_mutex_lock(&s->mu);
    PGconn *c = s->pg_listen;
    if (!c) {
        pthread_mutex_unlock(&s->mu);
        store_set_err(err, errlen, "store %s: listen: not listening (store_listen_fd first)",
                      shown);
        return -EIO;
    }
    bool ok = pg__alive(c);
    PGnotify *nf;
    while ((nf = PQnotifies(c))) {
        (*n)++;
        PQfreemem(nf);
    }
    if (!ok) {
        /* Closed here so that the next store_listen_fd reconnects. */
        char m[256];
        pg__oneline(m, sizeof m, PQerrorMessage(c));
        store_set_err(err, errlen, "store %s: listen: connection lost: %s", shown, m);
        PQfinish(c);
        s->pg_listen = NULL;
        pthread_mutex_unlock(&s->mu);
        return -EIO;
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* ------------------------------------------------------------------ ops */

const store_ops store_pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .feedback_insert = pg_feedback_insert,
    .feedback_get = pg_feedback_get,
    .feedback_delete = pg_feedback_delete,
    .feedback_list = pg_feedback_list,
    .feedback_each = pg_feedback_each,
    .feedback_stats = pg_feedback_stats,
    .run_insert = store_pg_run_insert,
    .run_update = store_pg_run_update,
    .run_get = store_pg_run_get,
    .run_list = store_pg_run_list,
    .runs_fail_interrupted = store_pg_runs_fail_interrupted,
    .run_last_created = store_pg_run_last_created,
    .pairs_since = store_pg_pairs_since,
    .run_claim = store_pg_run_claim,
    .run_request_cancel = store_pg_run_request_cancel,
    .adapter_insert = store_pg_adapter_insert,
    .adapter_get = store_pg_adapter_get,
    .adapter_active = store_pg_adapter_active,
    .adapter_list = store_pg_adapter_list,
    .adapter_activate = store_pg_adapter_activate,
    .adapter_set_reason = store_pg_adapter_set_reason,
    .reward_model_insert = store_pg_reward_model_insert,
    .reward_model_active = store_pg_reward_model_active,
    .trainer_lock = pg_trainer_lock,
    .listen_fd = pg_listen_fd,
    .listen_drain = pg_listen_drain,
};
