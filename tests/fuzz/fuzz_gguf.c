/* fuzz_gguf.c - libFuzzer target for the GGUF reader: parses the input as a
 * file and, when it is accepted, walks every accessor so that a validation
 * gap shows up as an out-of-bounds read under ASan. libFuzzer hands over an
 * exactly-sized heap buffer, so one byte past the end is caught too. */
#include "gguf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Keeps reads from being optimised away. */
static volatile uint64_t fuzz__sink;

static void fuzz__touch(const void *p, size_t n) {
    const uint8_t *b = p;
    if (n == 0) return;
    fuzz__sink += b[0] + b[n - 1] + b[n / 2];
}

static void fuzz__value(const gguf_file *f, const char *key, const gguf_value *v) {
    char err[256];
    int64_t i64;
    double f64;
    const char *s;
    size_t len;
    (void)gguf_get_int(f, key, INT64_MIN, INT64_MAX, &i64, err, sizeof err);
    (void)gguf_get_float(f, key, &f64, err, sizeof err);
    if (gguf_get_str(f, key, &s, &len, err, sizeof err) == 0)
        fuzz__sink += strlen(s) + len + (uint8_t)s[len]; /* the NUL is there */
    if (v->type != GGUF_TYPE_ARRAY) return;
    const void *d;
    size_t n;
    if (gguf_get_arr(f, key, v->v.arr.type, &d, &n, err, sizeof err) != 0) abort();
    if (n != v->v.arr.n) abort();
    if (v->v.arr.type == GGUF_TYPE_STRING) {
        const gguf_str *items = d;
        for (size_t i = 0; i < n; i++) fuzz__sink += strlen(items[i].s) + (uint8_t)items[i].s[items[i].len];
    } else if (n) {
        fuzz__touch(d, n); /* at least n bytes */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    gguf_file *f = NULL;
    char err[512];
    int rc = gguf_parse(&f, data, size, err, sizeof err);
    if (rc != 0) {
        /* a rejection must leave nothing behind and say why */
        if (f != NULL || strncmp(err, "gguf: ", 6) != 0) abort();
        return 0;
    }
    for (size_t i = 0; i < gguf_n_kv(f); i++) {
        const char *key = gguf_kv_key(f, i);
        if (gguf_find_key(f, key) != (int64_t)i) abort(); /* keys are unique */
        fuzz__value(f, key, gguf_kv_value(f, i));
    }
    size_t a = gguf_alignment(f);
    if (a == 0 || (a & (a - 1)) != 0) abort();
    for (size_t i = 0; i < gguf_n_tensors(f); i++) {
        const gguf_tensor *t = gguf_tensor_at(f, i);
        if (gguf_find_tensor(f, t->name) != t) abort();
        size_t nbytes;
        if (gguf_dtype_nbytes(t->type, t->ne, &nbytes) != 0 || nbytes != t->nbytes) abort();
        if (t->offset % a != 0) abort();
        if ((const uint8_t *)t->data < data || t->nbytes > size ||
            (size_t)((const uint8_t *)t->data - data) > size - t->nbytes)
            abort();
        fuzz__touch(t->data, t->nbytes);
    }
    gguf_close(f);
    return 0;
}
