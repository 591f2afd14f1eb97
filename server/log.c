/* log.c - log stream with reopen for rotation. */
#include "log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log__mu = PTHREAD_MUTEX_INITIALIZER;
static FILE *log__out;           /* NULL means stderr */
static char *log__path;          /* NULL when logging to stderr */
static log_level log__min = LOG_INFO;

static const char *const log__names[] = {"debug", "info", "warn", "error"};

int log_level_parse(const char *name) {
    for (int i = 0; i < 4; i++)
        if (strcmp(name, log__names[i]) == 0) return i;
    return -1;
}

int log_init(const char *path, log_level min_level, char *err, size_t errlen) {
    log__min = min_level;
    if (!path || !*path) return 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        snprintf(err, errlen, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&log__mu);
    log__out = f;
    log__path = strdup(path);
    pthread_mutex_unlock(&log__mu);
    return 0;
}

int log_reopen(void) {
    int rc = 0;
    pthread_mutex_lock(&log__mu);
    if (log__path) {
        FILE *f = fopen(log__path, "a");
        if (f) {
            setvbuf(f, NULL, _IOLBF, 0);
            fclose(log__out);
            log__out = f;
        } else {
            rc = -1; /* keep writing to the old stream rather than lose lines */
        }
    }
    pthread_mutex_unlock(&log__mu);
    return rc;
}

void log_close(void) {
    pthread_mutex_lock(&log__mu);
    if (log__out) fclose(log__out);
    log__out = NULL;
    free(log__path);
    log__path = NULL;
    pthread_mutex_unlock(&log__mu);
}

void log_timestamp(char *buf, size_t len) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

void log_write(log_level level, const char *component, const char *fmt, ...) {
    if (level < log__min) return;
    char ts[40], msg[2048];
    log_timestamp(ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&log__mu);
    FILE *out = log__out ? log__out : stderr;
    fprintf(out, "%s %-5s %s: %s\n", ts, log__names[level], component, msg);
    fflush(out);
    pthread_mutex_unlock(&log__mu);
}

void log_line(const char *line) {
    pthread_mutex_lock(&log__mu);
    FILE *out = log__out ? log__out : stderr;
    fputs(line, out);
    fputc('\n', out);
    fflush(out);
    pthread_mutex_unlock(&log__mu);
}
