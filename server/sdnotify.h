/* sdnotify.h - systemd service notifications (sd_notify) for Type=notify.
 *
 * READY=1 once every model is loaded, STATUS= lines, RELOADING=1 ... READY=1
 * around SIGHUP, STOPPING=1 at shutdown and WATCHDOG=1 pings from a libuv
 * timer at half of WATCHDOG_USEC. Every call is a no-op when the daemon does
 * not run under systemd (no NOTIFY_SOCKET in the environment).
 *
 * Threads: loop thread only.
 */
#ifndef SDNOTIFY_H
#define SDNOTIFY_H

#include <uv.h>

/* Sends READY=1 with STATUS=status (NULL: no status). */
void sdnotify_ready(const char *status);
/* Sends STATUS=status; printf-style. */
void sdnotify_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Sends RELOADING=1 (with MONOTONIC_USEC=) and STATUS=status. */
void sdnotify_reloading(const char *status);
/* Sends STOPPING=1 with STATUS=status; later calls send nothing more. */
void sdnotify_stopping(const char *status);

/* Starts WATCHDOG=1 pings on loop every WATCHDOG_USEC/2 when
 * sd_watchdog_enabled() says systemd expects them; returns whether it did.
 * The timer is unreferenced (it keeps no loop alive) and the handle is
 * closed by sdnotify_watchdog_stop(). */
int sdnotify_watchdog_start(uv_loop_t *loop);
/* Stops and closes the watchdog timer (safe when it never started). */
void sdnotify_watchdog_stop(void);

#endif
