/* eng_err.h - the engine's error report: functions return 0 or a negative
 * code and, when the caller passes an eng_err, fill it with a message naming
 * the thing at fault ("<file>: tensor 'x': offset beyond end of file").
 * Any thread. */
#ifndef ENG_ERR_H
#define ENG_ERR_H

typedef struct eng_err {
    int code;       /* the negative code also returned; 0 when none */
    char msg[512];  /* NUL-terminated */
} eng_err;

/* Fills *err (when not NULL) with code and the formatted message; returns
 * code, so callers can write `return eng_fail(err, -EINVAL, "...")`. */
int eng_fail(eng_err *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
