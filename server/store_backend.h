/* store_backend.h - private to the store's files: the two backends behind
 * store.h and store_train.h (SQLite: store_sqlite*.c; PostgreSQL:
 * store_pg*.c), the table of their functions that store.c dispatches
 * through, and the helpers both share (store.c).
 *
 * struct store holds the fields of both backends; each uses its own. The
 * mutex serialises every call on one store (one connection per store). */
#ifndef STORE_BACKEND_H
#define STORE_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"
#include "store_train.h"

struct sqlite3;
struct pg_conn;

/* One entry per backend function of store.h / store_train.h (same
 * arguments and contract, except the three inserts), plus open and close. */
typedef struct store_ops {
    const char *name; /* "sqlite" | "postgresql" */
    void (*close)(store *s);
    int (*feedback_insert)(store *s, store_feedback *rows, size_t n, const char *idem_key,
                           const char *request_hash, char ***ids_out, bool *replayed,
                           char *err, size_t errlen);
    int (*feedback_get)(store *s, const char *id, store_feedback *out, char *err, size_t errlen);
    int (*feedback_delete)(store *s, const char *id, char *err, size_t errlen);
    int (*feedback_list)(store *s, const store_filter *f, store_feedback **rows, size_t *n,
                         char *next_cursor, size_t cursor_len, char *err, size_t errlen);
    int (*feedback_each)(store *s, const store_filter *f,
                         int (*cb)(void *ud, const store_feedback *row), void *ud, char *err,
                         size_t errlen);
    int (*feedback_stats)(store *s, json_t **out, char *err, size_t errlen);

    /* the front (store.c) checks the fields, makes id and now, and hands
     * the assigned values back to the caller's struct */
    int (*run_insert)(store *s, const store_run *r, const char *id, int64_t now, char *err,
                      size_t errlen);
    int (*run_update)(store *s, const store_run *r, char *err, size_t errlen);
    int (*run_get)(store *s, const char *id, store_run *out, char *err, size_t errlen);
    int (*run_list)(store *s, int limit, store_run **rows, size_t *n, char *err, size_t errlen);
    int (*runs_fail_interrupted)(store *s, int *n, char *err, size_t errlen);
    int (*run_last_created)(store *s, const char *model, int64_t *ms, char *err, size_t errlen);
    int (*pairs_since)(store *s, int64_t since_ms, int64_t *n, char *err, size_t errlen);
    int (*run_claim)(store *s, store_run *out, char *err, size_t errlen);
    int (*run_request_cancel)(store *s, const char *id, store_run *out, char *err,
                              size_t errlen);

    int (*adapter_insert)(store *s, const store_adapter *a, const char *id, int64_t now,
                          int64_t *version, char *err, size_t errlen);
    int (*adapter_get)(store *s, const char *id, store_adapter *out, char *err, size_t errlen);
    int (*adapter_active)(store *s, const char *model, store_adapter *out, char *err,
                          size_t errlen);
    int (*adapter_list)(store *s, const char *model, store_adapter **rows, size_t *n, char *err,
                        size_t errlen);
    int (*adapter_activate)(store *s, const char *model, const char *id, char *err,
                            size_t errlen);
    int (*adapter_set_reason)(store *s, const char *id, const char *reason, const char *metrics,
                              char *err, size_t errlen);
    int (*reward_model_insert)(store *s, const store_reward_model *r, const char *id,
                               int64_t now, char *err, size_t errlen);
    int (*reward_model_active)(store *s, const char *model, store_reward_model *out, char *err,
                               size_t errlen);

    int (*trainer_lock)(store *s, bool *held, char *err, size_t errlen);
    int (*listen_fd)(store *s, int *fd, char *err, size_t errlen);
    int (*listen_drain)(store *s, int *n, char *err, size_t errlen);
} store_ops;

struct store {
    const store_ops *ops;
    pthread_mutex_t mu;          /* held for the whole of every call */
    /* SQLite */
    struct sqlite3 *db;
    char *lock_path;             /* the trainer lock file (<db>-trainer.lock) */
    int lock_fd;                 /* -1: not held */
    /* PostgreSQL */
    struct pg_conn *pg;          /* every call's connection */
    struct pg_conn *pg_listen;   /* LISTEN alignd_adapters (store_listen_fd) */
    char *url;                   /* as given (for reconnects and messages) */
    bool lock_held;              /* the session advisory lock is ours */
};

extern const store_ops store_sqlite_ops;
extern const store_ops store_pg_ops;

/* Backend opens: fill s (allocated and zeroed by store_open, mutex
 * initialised, lock_fd -1) or fail with a message. */
int store_sqlite_open(store *s, const char *path, char *err, size_t errlen);
int store_pg_open(store *s, const char *url, char *err, size_t errlen);

/* ---- shared helpers (store.c) ------------------------------------------------ */

void store_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int64_t store_now_ms(void);
/* prefix + 24 random lowercase hex digits into out (strlen(prefix) + 25). */
int store_new_id(char *out, const char *prefix);
/* "fb_" + 24 lowercase hex. */
bool store_valid_feedback_id(const char *id);
/* Checks row i of an insert (required fields, enumerations, JSON fields,
 * id form) with a message naming "rows[i].field". */
int store_feedback_validate(const store_feedback *r, size_t i, char *err, size_t errlen);
/* A stored idempotency response (JSON array of ids) as a new
 * NULL-terminated array; NULL when unreadable. */
char **store_ids_from_json(const char *text);
/* A next_cursor "<created_at>:<id>": 0 or -EINVAL. */
int store_parse_cursor(const char *c, int64_t *ms, const char **id);

/* The PostgreSQL advisory lock key of the trainer election and the
 * LISTEN/NOTIFY channel of adapter activations. */
#define STORE_PG_TRAINER_LOCK 0x616c69676e64LL /* "alignd" */
#define STORE_PG_CHANNEL "alignd_adapters"

#endif
