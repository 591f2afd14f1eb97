/* store.h - the preference-feedback store (DESIGN.md section 6).
 *
 * A small interface with two backends (store_backend.h): SQLite
 * (store_sqlite.c, a file path) and PostgreSQL (store_pg.c, a
 * "postgres://" or "postgresql://" URL), which several daemons may share.
 * The same test suites run against both. Every function returns 0 or a
 * negative errno and,
 * on failure, writes a message naming the thing at fault into err (errlen
 * bytes, may be NULL/0):
 *   -EINVAL   bad argument or row field ("rows[2].kind: must be ...")
 *   -ENOENT   no feedback row with that id
 *   -EEXIST   idempotency key reused with another request, or duplicate id
 *   -ENOTSUP  the database was written by a newer alignd (schema version)
 *   -EBUSY    the database stayed locked past the busy timeout
 *   -ENOMEM   out of memory
 *   -EIO      any other database or system failure (message has its text)
 *
 * Threads: a store is one database connection guarded by a mutex; any thread
 * may call any function, calls are serialised. Several processes may open the
 * same SQLite file (WAL mode, busy timeout) or PostgreSQL database.
 * store_feedback_each holds the mutex while it streams: its callback must not
 * call back into the same store.
 *
 * Split: every row gets split "eval" when FNV-1a-64(id bytes) % 10 == 0,
 * otherwise "train" (store_split_of). Stable for a given id forever.
 */
#ifndef STORE_H
#define STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

typedef struct store store;

#define STORE_ID_LEN 27          /* "fb_" + 24 lowercase hex digits */
#define STORE_CURSOR_MAX 64      /* bytes enough for any next_cursor */
#define STORE_LIST_DEFAULT 50    /* page size when filter.limit <= 0 */
#define STORE_LIST_MAX 1000      /* larger limits are clamped to this */

/* One feedback row. Every string is owned by the struct (malloc'd, freed by
 * store_feedback_clear); NULL means SQL NULL. Required on insert: prompt,
 * chosen, rejected, format, kind, source. */
typedef struct store_feedback {
    char *id;          /* "fb_" + 24 hex; assigned on insert unless set */
    int64_t created_at;/* unix ms; assigned (now) on insert when <= 0 */
    char *prompt;      /* text, or JSON messages array when format=messages */
    char *chosen;      /* response A (preferred one for kind=pair) */
    char *rejected;    /* response B */
    char *format;      /* "text" | "messages" */
    char *kind;        /* "pair" | "tie" | "both_bad" */
    char *annotator;   /* optional */
    char *source;      /* "api" | "form" */
    char *model;       /* optional */
    char *adapter;     /* optional */
    char *comment;     /* optional */
    char *metadata;    /* optional JSON text (any JSON value) */
    char *split;       /* "train" | "eval"; always computed from id */
} store_feedback;

/* Frees the owned strings and zeroes the struct. NULL ok. */
void store_feedback_clear(store_feedback *row);

/* Frees a NULL-terminated id array from store_feedback_insert. NULL ok. */
void store_ids_free(char **ids);

/* Filter and page for list/each. Zero/NULL fields do not filter. */
typedef struct store_filter {
    const char *kind;      /* exact match */
    const char *annotator; /* exact match */
    int64_t since_ms;      /* created_at >= since_ms when > 0 */
    int64_t until_ms;      /* created_at <  until_ms when > 0 */
    const char *after;     /* list only: next_cursor of the previous page
                              ("<created_at>:<id>"), NULL/"" = first page */
    int limit;             /* list only: page size (see STORE_LIST_*) */
} store_filter;

/* Opens the store at path: a PostgreSQL URL ("postgres://..." or
 * "postgresql://...", libpq's connection URI) or an SQLite file, created
 * when absent (":memory:" works) in WAL mode with synchronous=FULL and a 5 s
 * busy timeout. Applies pending migrations, each in its own transaction
 * (serialised between processes). Refuses (-ENOTSUP) a database whose
 * schema_version is newer than this code knows. *out: a new store, close it
 * with store_close. */
int store_open(store **out, const char *path, char *err, size_t errlen);
void store_close(store *s);
/* "sqlite" or "postgresql". */
const char *store_backend_name(const store *s);

/* The trainer election: tries to take, or checks that this store still
 * holds, the one trainer lock of the database. PostgreSQL: a session
 * advisory lock (released when the holder's connection dies, so another
 * replica takes over); SQLite: an exclusive flock on "<path>-trainer.lock"
 * (":memory:" always holds). *held: whether this store holds it now. Cheap
 * enough to call every second. */
int store_trainer_lock(store *s, bool *held, char *err, size_t errlen);

/* Adapter activations are announced (PostgreSQL NOTIFY on channel
 * "alignd_adapters", payload the model name, sent by
 * store_adapter_activate in its transaction). store_listen_fd opens the
 * listening connection once and gives its socket to poll for reading;
 * store_listen_drain reads what arrived, *n = notifications (any model).
 * SQLite: -ENOTSUP (other processes find changes by polling). After an
 * error the next store_listen_fd reconnects. */
int store_listen_fd(store *s, int *fd, char *err, size_t errlen);
int store_listen_drain(store *s, int *n, char *err, size_t errlen);

/* The split ("train"/"eval", static string) of an id. */
const char *store_split_of(const char *id);

/* Inserts n >= 1 rows in one transaction: all or nothing. Borrows rows; on
 * success writes each row's id (when it was NULL), created_at (when <= 0) and
 * split into it (owned by the row), and *ids_out (may be NULL) gets a new
 * NULL-terminated array of the n ids (free with store_ids_free).
 * idem_key (may be NULL): when that key was already stored with the same
 * request_hash, nothing is inserted, rows are left untouched, *ids_out gets
 * the originally stored ids and *replayed = true; with another request_hash
 * -EEXIST. A key and its response are stored with the rows, in the same
 * transaction. replayed may be NULL. */
int store_feedback_insert(store *s, store_feedback *rows, size_t n,
                          const char *idem_key, const char *request_hash,
                          char ***ids_out, bool *replayed,
                          char *err, size_t errlen);

/* Fills *out (cleared first; the caller clears it afterwards). -ENOENT. */
int store_feedback_get(store *s, const char *id, store_feedback *out,
                       char *err, size_t errlen);

/* Deletes one row. -ENOENT when absent. Idempotency records are kept, so a
 * replay of the original request still answers the (now deleted) ids. */
int store_feedback_delete(store *s, const char *id, char *err, size_t errlen);

/* One page, newest first (created_at DESC, id DESC), keyset pagination:
 * rows inserted between pages neither repeat nor hide older rows. *rows: a
 * new array of *n rows (free each with store_feedback_clear, then free()).
 * next_cursor (cursor_len >= STORE_CURSOR_MAX) gets the cursor for the next
 * page, or "" when this page is the last. */
int store_feedback_list(store *s, const store_filter *f,
                        store_feedback **rows, size_t *n,
                        char *next_cursor, size_t cursor_len,
                        char *err, size_t errlen);

/* Streams the rows matching f (after and limit ignored) oldest first to cb,
 * which borrows the row for the call. Stops when cb returns non-zero and
 * returns that value (positive, or the cb's negative code). */
int store_feedback_each(store *s, const store_filter *f,
                        int (*cb)(void *ud, const store_feedback *row), void *ud,
                        char *err, size_t errlen);

/* *out: a new reference to {"total": n, "by_kind": {kind: n},
 * "by_annotator": {annotator: n} (NULL annotator counted under ""),
 * "by_split": {split: n}, "by_day": {"YYYY-MM-DD" (UTC): n}}. */
int store_feedback_stats(store *s, json_t **out, char *err, size_t errlen);

#endif
