/* replay_main.c - a main() for the fuzz targets without libFuzzer: runs
 * LLVMFuzzerTestOneInput once on every file named, and on every file of
 * every folder named (sorted, not recursive into dot-files; sub-folders
 * such as regressions/ are walked). With gcc (the release and ASan builds)
 * every fuzz_*.c is linked with it as fuzz_replay_<name> and run by ctest
 * over tests/fuzz/corpus/<name>/ (fuzz.replay.<name>): the seeds and each
 * crash input kept as a regression replay under the normal suite and under
 * ASan + UBSan. A crash, a sanitizer report or a leak fails the test.
 *
 *   fuzz_replay_fuzz_router tests/fuzz/corpus/fuzz_router crash-1234
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* Optional in a target (libFuzzer calls it once before the first input). */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay__file(const char *path, unsigned *n_run) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t cap = 4096, len = 0;
    uint8_t *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len, f)) > 0;) {
        len += got;
        if (len == cap) {
            uint8_t *more = realloc(buf, cap *= 2);
            if (!more) free(buf);
            buf = more;
        }
    }
    bool failed = ferror(f) != 0;
    fclose(f);
    if (!buf || failed) {
        fprintf(stderr, "replay: %s: cannot read\n", path);
        free(buf);
        return -1;
    }
    /* an exact-size copy, so ASan sees a read past the input's end */
    uint8_t *exact = malloc(len ? len : 1);
    if (!exact) {
        free(buf);
        return -1;
    }
    memcpy(exact, buf, len);
    free(buf);
    printf("replay: %s (%zu bytes)\n", path, len);
    fflush(stdout);
    LLVMFuzzerTestOneInput(exact, len);
    free(exact);
    (*n_run)++;
    return 0;
}

static int replay__path(const char *path, unsigned *n_run);

static int replay__dir(const char *path, unsigned *n_run) {
    struct dirent **names = NULL;
    int n = scandir(path, &names, NULL, alphasort);
    if (n < 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < n; i++) {
        const char *name = names[i]->d_name;
        if (name[0] != '.') {
            size_t len = strlen(path) + strlen(name) + 2;
            char *child = malloc(len);
            if (!child) rc = -1;
            else {
                snprintf(child, len, "%s/%s", path, name);
                if (replay__path(child, n_run) != 0) rc = -1;
                free(child);
            }
        }
        free(names[i]);
    }
    free(names);
    return rc;
}

static int replay__path(const char *path, unsigned *n_run) {
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return S_ISDIR(st.st_mode) ? replay__dir(path, n_run) : replay__file(path, n_run);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE|FOLDER...\n", argv[0]);
        return 2;
    }
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    unsigned n_run = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay__path(argv[i], &n_run) != 0) rc = 1;
    printf("replay: %u inputs%s\n", n_run, rc ? ", some could not be read" : "");
    if (n_run == 0) {
        fprintf(stderr, "replay: no input found\n");
        return 1;
    }
    return rc;
}
