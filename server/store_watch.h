/* store_watch.h - keeps a daemon's served adapters and reward models in
 * step with the store when several daemons share it (DESIGN.md section 6):
 * trainer_sync runs every store.sync_interval_ms on a libuv timer, and at
 * once when PostgreSQL announces an activation (a uv_poll on the store's
 * LISTEN connection, store_listen_fd; reopened on the next tick after it
 * breaks). With SQLite only the timer runs.
 *
 * Threads: the loop thread only. */
#ifndef STORE_WATCH_H
#define STORE_WATCH_H

#include <stdbool.h>

#include <uv.h>

#include "cfg.h"
#include "models.h"
#include "store.h"

typedef struct store_watch {
    const cfg *c;
    models_registry *models;
    store *st;
    uv_timer_t timer;
    uv_poll_t poll;
    bool started;        /* the timer is initialised */
    bool polling;        /* poll is initialised (open or closing) */
    bool listen_ok;      /* the store can notify (false: SQLite) */
} store_watch;

/* Starts watching (the loop borrows w until store_watch_close's handles
 * have closed). */
int store_watch_start(store_watch *w, uv_loop_t *loop, const cfg *c, models_registry *models,
                      store *st);
/* Stops and uv_closes the handles (the loop then ends normally). */
void store_watch_close(store_watch *w);

#endif
