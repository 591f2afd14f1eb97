/* store_pg_impl.h - private to the PostgreSQL store's files (store_pg.c:
 * connection, schema, feedback, trainer lock, LISTEN; store_pg_train.c:
 * training runs, adapters and reward models).
 *
 * Every statement is constant SQL with $n text parameters (PQexecParams);
 * callers hold s->mu for the whole call. Integer columns are BIGINT, read
 * back with store_pg_int. */
#ifndef STORE_PG_IMPL_H
#define STORE_PG_IMPL_H

#include <libpq-fe.h>

#include "store_backend.h"

/* The trainer election's advisory lock and the migrations' transaction lock
 * are keyed (class, hashtext(current_schema())): daemons sharing a schema
 * share them, tests in separate schemas of one database do not. */
#define STORE_PG_LOCK_CLASS_TRAINER 1634495591 /* "alig" */
#define STORE_PG_LOCK_CLASS_MIGRATE 1634495592

/* Runs sql with n text parameters (params[i] NULL: SQL NULL). On success
 * (PGRES_COMMAND_OK or PGRES_TUPLES_OK) returns 0 and *res gets the result
 * (PQclear it; res may be NULL when the rows are not wanted). On failure
 * writes "store: <what>: <server message>" and returns -EINVAL for a
 * constraint violation (SQLSTATE class 23), -EBUSY for a serialization
 * failure, deadlock or lock timeout (40001, 40P01, 55P03), -EIO otherwise.
 * A broken connection is reset once (outside a transaction) and the
 * statement retried; the reset drops the trainer lock (lock_held false). */
int store_pg_exec(store *s, const char *what, const char *sql, int n,
                  const char *const *params, PGresult **res, char *err, size_t errlen);
/* BEGIN / COMMIT; rollback ignores errors (a no-op outside a transaction). */
int store_pg_begin(store *s, char *err, size_t errlen);
int store_pg_commit(store *s, char *err, size_t errlen);
void store_pg_rollback(store *s);
/* Column col of row as a new string; NULL for SQL NULL (or no memory). */
char *store_pg_dup(const PGresult *r, int row, int col);
/* Column col of row as an integer; 0 for SQL NULL. */
int64_t store_pg_int(const PGresult *r, int row, int col);
/* v as decimal text in buf (returns buf); store_pg_i64_or_null gives NULL
 * for 0 (the "not yet" timestamps are SQL NULL). */
const char *store_pg_i64(char buf[24], int64_t v);
const char *store_pg_i64_or_null(char buf[24], int64_t v);

/* store_pg_train.c: the store_train.h functions (the ops table in
 * store_pg.c points at them). */
int store_pg_run_insert(store *s, const store_run *r, const char *id, int64_t now, char *err,
                      size_t errlen);
int store_pg_run_update(store *s, const store_run *r, char *err, size_t errlen);
int store_pg_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen);
int store_pg_run_list(store *s, int limit, store_run **rows, size_t *n, char *err,
                      size_t errlen);
int store_pg_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen);
int store_pg_run_last_created(store *s, const char *model, int64_t *ms, char *err,
                              size_t errlen);
int store_pg_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen);
int store_pg_run_claim(store *s, store_run *out, char *err, size_t errlen);
int store_pg_run_request_cancel(store *s, const char *id, store_run *out, char *err,
                                size_t errlen);
int store_pg_adapter_insert(store *s, const store_adapter *a, const char *id, int64_t now,
                      int64_t *version, char *err, size_t errlen);
int store_pg_adapter_get(store *s, const char *id, store_adapter *out, char *err,
                         size_t errlen);
int store_pg_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                            size_t errlen);
int store_pg_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n,
                          char *err, size_t errlen);
int store_pg_adapter_activate(store *s, const char *model, const char *id, char *err,
                              size_t errlen);
int store_pg_adapter_set_reason(store *s, const char *id, const char *reason,
                                const char *metrics, char *err, size_t errlen);
int store_pg_reward_model_insert(store *s, const store_reward_model *r, const char *id,
                      int64_t now, char *err, size_t errlen);
int store_pg_reward_model_active(store *s, const char *model, store_reward_model *out,
                                 char *err, size_t errlen);

#endif
