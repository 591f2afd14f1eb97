/* tu_util.h - helpers shared by the cmocka unit tests. */
#ifndef TU_UTIL_H
#define TU_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

/* Exit status that ctest reports as "Skipped" (SKIP_RETURN_CODE). */
#define TU_SKIP_EXIT 77

/* Returns a malloc'd path "ALIGND_SHARED_DIR/rel" when that file exists,
 * otherwise prints a loud SKIPPED line naming the file to stderr and returns
 * NULL. Caller frees. */
char *tu_shared_path(const char *rel);

/* Exits with TU_SKIP_EXIT (loudly) when ../shared is absent: for test
 * programs whose every case needs the reference files. */
void tu_require_shared(const char *test_name);

/* Returns a malloc'd path "ALIGND_SOURCE_DIR/rel" (no existence check). */
char *tu_source_path(const char *rel);

/* Reads a whole file; returns a malloc'd, NUL-terminated buffer (caller
 * frees) and its length in *len, or NULL when it cannot be read. */
char *tu_read_file(const char *path, size_t *len);

/* A new empty folder "/tmp/alignd_<tag>_XXXXXX" (malloc'd; the test removes
 * what it writes), or fail the test. */
char *tu_tmpdir(const char *tag);

/* "<dir>/<name>" into out[cap], or fail the test when it does not fit. */
void tu_join(char *out, size_t cap, const char *dir, const char *name);

/* Whether anything (even a dangling link) is at path. */
int tu_exists(const char *path);

#endif
