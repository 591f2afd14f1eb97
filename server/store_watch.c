/* store_watch.c - the sync timer and the LISTEN poll (store_watch.h). */
#include "store_watch.h"

#include <errno.h>

#include "log.h"
#include "trainer.h"

static void store_watch__closed(uv_handle_t *h)
{
    store_watch *w = h->data;
    if (h == (uv_handle_t *)&w->poll)
        w->polling = false;
}

static void store_watch__stop_poll(store_watch *w)
{
    if (w->polling && !uv_is_closing((uv_handle_t *)&w->poll))
        uv_close((uv_handle_t *)&w->poll, store_watch__closed);
}

static void store_watch__on_notify(uv_poll_t *p, int status, int events)
{
    (void)events;
    store_watch *w = p->data;
    int n = 0;
    char err[512];
    if (status < 0 || store_listen_drain(w->st, &n, err, sizeof err)) {
        LOG_WRN("store", "notifications: %s; polling every %lld ms until they reconnect",
                status < 0 ? uv_strerror(status) : err, w->c->store_sync_interval_ms);
        store_watch__stop_poll(w);
        return;
    }
    if (n > 0)
        trainer_sync(w->c, w->models, w->st);
}

/* Opens (or reopens) the notification connection and polls its socket. */
static void store_watch__listen(store_watch *w)
{
    if (!w->listen_ok || w->polling)
        return;
    int fd = -1;
    char err[512];
    int rc = store_listen_fd(w->st, &fd, err, sizeof err);
    if (rc == -ENOTSUP) {
        w->listen_ok = false;
        return;
    }
    if (rc) {
        LOG_WRN("store", "notifications: %s", err);
        return;
    }
    if (uv_poll_init(w->timer.loop, &w->poll, fd) != 0)
        return;
    w->poll.data = w;
    w->polling = true;
    uv_poll_start(&w->poll, UV_READABLE, store_watch__on_notify);
}

static void store_watch__on_tick(uv_timer_t *t)
{
    store_watch *w = t->data;
    store_watch__listen(w);
    trainer_sync(w->c, w->models, w->st);
}

int store_watch_start(store_watch *w, uv_loop_t *loop, const cfg *c, models_registry *models,
                      store *st)
{
    *w = (store_watch){.c = c, .models = models, .st = st, .listen_ok = true};
    int rc = uv_timer_init(loop, &w->timer);
    if (rc)
        return rc;
    w->timer.data = w;
    w->started = true;
    store_watch__listen(w);
    uint64_t every = (uint64_t)c->store_sync_interval_ms;
    return uv_timer_start(&w->timer, store_watch__on_tick, every, every);
}

void store_watch_close(store_watch *w)
{
    if (!w->started)
        return;
    w->started = false;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, NULL);
    store_watch__stop_poll(w);
}
