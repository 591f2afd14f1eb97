/* log.h - the daemon's log: text lines for events, JSON lines for access.
 *
 * Threads: every function may be called from any thread (one mutex guards
 * the stream). log_init/log_close on the main thread only.
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* Opens `path` for appending (NULL or "" = standard error) and sets the least
 * severe level written. Returns 0, or -1 with err filled. */
int log_init(const char *path, log_level min_level, char *err, size_t errlen);
/* Reopens the log file (after rotation, on SIGHUP). Returns 0 or -1. */
int log_reopen(void);
void log_close(void);
/* Parses "debug|info|warn|error"; returns -1 when unknown. */
int log_level_parse(const char *name);

/* One event line: "TIME LEVEL component: message". */
void log_write(log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* One raw line (already formatted JSON, no newline). */
void log_line(const char *line);

/* Writes an ISO-8601 UTC timestamp with milliseconds into buf (>= 32 bytes). */
void log_timestamp(char *buf, size_t len);

#define LOG_DBG(comp, ...) log_write(LOG_DEBUG, comp, __VA_ARGS__)
#define LOG_INF(comp, ...) log_write(LOG_INFO, comp, __VA_ARGS__)
#define LOG_WRN(comp, ...) log_write(LOG_WARN, comp, __VA_ARGS__)
#define LOG_ERR(comp, ...) log_write(LOG_ERROR, comp, __VA_ARGS__)

#endif
