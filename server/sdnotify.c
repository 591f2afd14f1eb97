/* sdnotify.c - systemd notifications through libsystemd's sd_notify(3).
 * sd_notify itself returns 0 without NOTIFY_SOCKET, so no call here needs a
 * guard; errors (a vanished socket) are logged once at debug level and
 * otherwise ignored: the daemon must run the same with or without systemd. */
#include "sdnotify.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

static uv_timer_t sdnotify__wd_timer;
static bool sdnotify__wd_on;
static bool sdnotify__stopping;

static void sdnotify__send(const char *msg) {
    const char *sock = getenv("NOTIFY_SOCKET");
    if (!sock || !sock[0]) return;
    int rc = sd_notify(0, msg);
    if (rc < 0) LOG_DBG("sdnotify", "sd_notify failed: %d", rc);
}

void sdnotify_ready(const char *status) {
    if (sdnotify__stopping) return;
    char msg[512];
    if (status) snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    else snprintf(msg, sizeof msg, "READY=1");
    sdnotify__send(msg);
}

void sdnotify_status(const char *fmt, ...) {
    char msg[512] = "STATUS=";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + 7, sizeof msg - 7, fmt, ap);
    va_end(ap);
    sdnotify__send(msg);
}

void sdnotify_reloading(const char *status) {
    if (sdnotify__stopping) return;
    /* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match this
     * reload to the request; older versions ignore it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned long long usec = (unsigned long long)ts.tv_sec * 1000000ULL +
                              (unsigned long long)ts.tv_nsec / 1000ULL;
    char msg[512];
    snprintf(msg, sizeof msg, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=%s", usec,
             status ? status : "reloading");
    sdnotify__send(msg);
}

void sdnotify_stopping(const char *status) {
    if (sdnotify__stopping) return;
    sdnotify__stopping = true;
    char msg[512];
    snprintf(msg, sizeof msg, "STOPPING=1\nSTATUS=%s", status ? status : "stopping");
    sdnotify__send(msg);
}

static void sdnotify__on_wd(uv_timer_t *t) {
    (void)t;
    sdnotify__send("WATCHDOG=1");
}

int sdnotify_watchdog_start(uv_loop_t *loop) {
    uint64_t usec = 0;
    const char *sock = getenv("NOTIFY_SOCKET"); /* nobody to ping without it */
    if (sdnotify__wd_on || !sock || !sock[0]) return 0;
    if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return 0;
    uint64_t ms = usec / 2000; /* half the period, in milliseconds */
    if (ms == 0) ms = 1;
    if (uv_timer_init(loop, &sdnotify__wd_timer) != 0) return 0;
    sdnotify__wd_on = true;
    uv_unref((uv_handle_t *)&sdnotify__wd_timer);
    sdnotify__send("WATCHDOG=1");
    uv_timer_start(&sdnotify__wd_timer, sdnotify__on_wd, ms, ms);
    LOG_INF("sdnotify", "systemd watchdog: pinging every %llu ms", (unsigned long long)ms);
    return 1;
}

void sdnotify_watchdog_stop(void) {
    if (!sdnotify__wd_on) return;
    sdnotify__wd_on = false;
    uv_timer_stop(&sdnotify__wd_timer);
    uv_close((uv_handle_t *)&sdnotify__wd_timer, NULL);
}
