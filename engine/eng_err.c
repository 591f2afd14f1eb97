/* eng_err.c - filling an eng_err. */
#include "eng_err.h"

#include <stdarg.h>
#include <stdio.h>

int eng_fail(eng_err *err, int code, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}
