/* store_train.h - the closed loop's tables in the store (store.h, schema
 * versions 2 to 4): training runs, the adapter registry and the reward
 * models the loop trained. Several daemons may share them (PostgreSQL):
 * runs are queued in the store by any of them and claimed by the one that
 * holds the trainer lock (store_trainer_lock).
 *
 * A run: "run_" + 24 hex, kind dpo|reward|both, trigger api|pairs|schedule,
 * status queued -> running -> succeeded|failed|cancelled. JSON columns are
 * kept as text (config, metrics, history: per-step records, a JSON array).
 * An adapter: "ad_" + 24 hex, a version that increases per model, status
 * candidate|active|retired (at most one active per model: a unique partial
 * index), the sha256 of its adapter_model.safetensors.
 *
 * A reward model (schema version 3): "rm_" + 24 hex, the folder a run's
 * reward phase wrote and served, status active|retired (at most one active
 * per model: the newest recorded).
 *
 * Every function is one transaction (all or nothing), returns 0 or a
 * negative errno as store.h says (-ENOENT: no such run / adapter), and may be
 * called from any thread (the store's mutex serialises calls).
 */
#ifndef STORE_TRAIN_H
#define STORE_TRAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define STORE_RUN_ID_LEN 28      /* "run_" + 24 hex */
#define STORE_ADAPTER_ID_LEN 27  /* "ad_" + 24 hex */

/* Every string is owned (malloc'd; NULL = SQL NULL); store_run_clear. */
typedef struct store_run {
    char *id, *model, *kind, *trigger, *status;
    int64_t created_at, started_at, finished_at; /* unix ms; 0 = not yet */
    int64_t pairs;           /* preference pairs the run trained on */
    char *config, *metrics, *history; /* JSON text */
    char *error;             /* why it failed or was cancelled */
    char *adapter_id;        /* the adapter it produced */
    bool cancel_requested;   /* store_run_request_cancel asked a running run
                                to stop (read only: update leaves it) */
} store_run;

void store_run_clear(store_run *r);

/* Inserts r as "queued" (model, kind and trigger required; config
 * optional); writes a new id and created_at into r. -EBUSY (message naming
 * it) while another run is queued or running: one run at a time. */
int store_run_create(store *s, store_run *r, char *err, size_t errlen);
/* Writes r's status, timestamps, pairs, config, metrics, history, error and
 * adapter_id to the row r->id. */
int store_run_update(store *s, const store_run *r, char *err, size_t errlen);
int store_run_get(store *s, const char *id, store_run *out, char *err, size_t errlen);
/* The newest runs first (limit <= 0: 50). *rows: new array of *n. */
int store_run_list(store *s, int limit, store_run **rows, size_t *n, char *err,
                   size_t errlen);
void store_run_list_free(store_run *rows, size_t n);
/* For a daemon that just took the trainer lock: every run still
 * "running" was cut short (its trainer died or restarted): marks it failed
 * ("interrupted by a restart"), linked to the adapter it registered if it
 * got that far; *n (may be NULL) gets the count. Queued runs stay queued
 * for the new holder. */
int store_runs_fail_interrupted(store *s, int *n, char *err, size_t errlen);
/* created_at of model's newest run, 0 when none. */
int store_run_last_created(store *s, const char *model, int64_t *ms, char *err, size_t errlen);
/* Feedback rows of kind "pair" created at or after since_ms. */
int store_pairs_since(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen);
/* The trainer lock holder takes the oldest queued run: it becomes
 * "running" with started_at now, in one statement (no two claim it);
 * *out gets the row. -ENOENT when none is queued. */
int store_run_claim(store *s, store_run *out, char *err, size_t errlen);
/* Cancels run id from any daemon: a queued run ends "cancelled" at once
 * (error "cancelled before it started", finished_at now); a running one gets
 * cancel_requested (its trainer stops at its next check). *out (may be NULL)
 * gets the row after. -ENOENT unknown; -EINVAL when it already ended
 * (message names its status). */
int store_run_request_cancel(store *s, const char *id, store_run *out, char *err,
                             size_t errlen);

typedef struct store_adapter {
    char *id, *model, *parent_id, *run_id, *status;
    int64_t version, created_at;
    char *metrics;           /* JSON text */
    char *path, *sha256;     /* PEFT folder; digest of its weights file */
    char *reason;            /* why it was not promoted */
} store_adapter;

void store_adapter_clear(store_adapter *a);

/* Registers a (model, path, sha256 required) with the next version of its
 * model, status "candidate" unless a->status says otherwise; writes id,
 * version and created_at into a. */
int store_adapter_register(store *s, store_adapter *a, char *err, size_t errlen);
int store_adapter_get(store *s, const char *id, store_adapter *out, char *err, size_t errlen);
/* model's active adapter; -ENOENT when it serves the base. */
int store_adapter_active(store *s, const char *model, store_adapter *out, char *err,
                         size_t errlen);
/* Newest first; model NULL: every model's. */
int store_adapter_list(store *s, const char *model, store_adapter **rows, size_t *n, char *err,
                       size_t errlen);
void store_adapter_list_free(store_adapter *rows, size_t n);
/* Makes id model's active adapter (id NULL: none, the base) and retires the
 * one active before, in one transaction, which also announces it
 * (store_listen_fd). -ENOENT when id is not model's. */
int store_adapter_activate(store *s, const char *model, const char *id, char *err,
                           size_t errlen);
/* Records why a candidate stays a candidate, and its metrics. */
int store_adapter_set_reason(store *s, const char *id, const char *reason, const char *metrics,
                             char *err, size_t errlen);

#define STORE_REWARD_ID_LEN 27   /* "rm_" + 24 hex */

typedef struct store_reward_model {
    char *id, *model, *run_id, *path, *status;
    int64_t created_at;
} store_reward_model;

void store_reward_model_clear(store_reward_model *r);
/* Records r (model and path required, run_id optional) as model's active
 * reward model and retires the one active before, in one transaction;
 * writes id, status and created_at into r. */
int store_reward_model_add(store *s, store_reward_model *r, char *err, size_t errlen);
/* model's active reward model (the newest recorded); -ENOENT when none. */
int store_reward_model_active(store *s, const char *model, store_reward_model *out, char *err,
                              size_t errlen);

#endif
