/* store_sqlite_impl.h - private to the SQLite store's files
 * (store_sqlite.c: connection, schema, feedback and the ops table;
 * store_sqlite_train.c: training runs, adapters and reward models). */
#ifndef STORE_SQLITE_IMPL_H
#define STORE_SQLITE_IMPL_H

#include <sqlite3.h>

#include "store_backend.h"

/* store_sqlite_train.c: the store_train.h functions. */
int store_sqlite_run_insert(store *s, const store_run *r, const char *id, int64_t now, char *err,
                      size_t errlen);
int store_sqlite_run_update(store *s, const store_run *r, char *err, size_t errlen);
int store_sqlite_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen);
int store_sqlite_run_list(store *s, int limit, store_run **rows, size_t *n, char *err,
                          size_t errlen);
int store_sqlite_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen);
int store_sqlite_run_last_created(store *s, const char *model, int64_t *ms, char *err,
                                  size_t errlen);
int store_sqlite_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen);
int store_sqlite_run_claim(store *s, store_run *out, char *err, size_t errlen);
int store_sqlite_run_request_cancel(store *s, const char *id, store_run *out, char *err,
                                    size_t errlen);
int store_sqlite_adapter_insert(store *s, const store_adapter *a, const char *id, int64_t now,
                      int64_t *version, char *err, size_t errlen);
int store_sqlite_adapter_get(store *s, const char *id, store_adapter *out, char *err,
                             size_t errlen);
int store_sqlite_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                                size_t errlen);
int store_sqlite_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n,
                              char *err, size_t errlen);
int store_sqlite_adapter_activate(store *s, const char *model, const char *id, char *err,
                                  size_t errlen);
int store_sqlite_adapter_set_reason(store *s, const char *id, const char *reason,
                                    const char *metrics, char *err, size_t errlen);
int store_sqlite_reward_model_insert(store *s, const store_reward_model *r, const char *id,
                      int64_t now, char *err, size_t errlen);
int store_sqlite_reward_model_active(store *s, const char *model, store_reward_model *out,
                                     char *err, size_t errlen);

#endif
