/* tu_util.c - helpers shared by the cmocka unit tests. */
#include "tu_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char *tu__join(const char *dir, const char *rel) {
    size_t n = strlen(dir) + 1 + strlen(rel) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

char *tu_shared_path(const char *rel) {
    char *p = tu__join(ALIGND_SHARED_DIR, rel);
    struct stat st;
    if (p && stat(p, &st) == 0) return p;
    fprintf(stderr, "\n*** SKIPPED: reference file %s is absent "
                    "(../shared is not beside this checkout) ***\n\n", p ? p : rel);
    free(p);
    return NULL;
}

void tu_require_shared(const char *test_name) {
    struct stat st;
    if (stat(ALIGND_SHARED_DIR, &st) == 0 && S_ISDIR(st.st_mode)) return;
    fprintf(stderr, "\n*** SKIPPED: %s needs the reference files in %s, "
                    "which is absent ***\n\n", test_name, ALIGND_SHARED_DIR);
    exit(TU_SKIP_EXIT);
}

char *tu_source_path(const char *rel) { return tu__join(ALIGND_SOURCE_DIR, rel); }

char *tu_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    if (fseek(f, 0, SEEK_END) != 0) goto fail;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) goto fail;
    buf[n] = '\0';
    if (len) *len = (size_t)n;
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

char *tu_tmpdir(const char *tag) {
    char *d = malloc(strlen(tag) + 32);
    assert_non_null(d);
    sprintf(d, "/tmp/alignd_%s_XXXXXX", tag);
    assert_non_null(mkdtemp(d));
    return d;
}

void tu_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

int tu_exists(const char *path) {
    struct stat st;
    return lstat(path, &st) == 0;
}
