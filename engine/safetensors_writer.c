/* safetensors_writer.c - .safetensors writer: the JSON header is built with
 * jansson at write time from the tensors added, the data streamed after it
 * to a temporary file that is renamed into place (see safetensors_writer.h). */
#include "safetensors_writer.h"

#include "atomic_file.h"
#include "weights.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors_writer.c writes native floats as little-endian data"
#endif

/* Elements converted to F16 per fwrite: small enough for the stack. */
#define ST_WRITER__CHUNK 4096

typedef struct st_writer__tensor {
    char *name;                  /* owned */
    st_dtype dtype;              /* ST_F32 or ST_F16 */
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    uint64_t n_elements;
    uint64_t offset, nbytes;     /* in the data buffer */
    const float *data;           /* borrowed until the write */
} st_writer__tensor;

struct st_writer {
    st_writer__tensor *tensors;
    size_t n_tensors, cap_tensors;
    json_t *meta;                /* key -> string, in the order set */
    uint64_t data_size;          /* bytes of the data buffer so far */
    int rc;                      /* first set/add failure, 0 when none (sticky) */
    char err[512];               /* its message */
};

/* ---- errors and small helpers -------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int st_writer__fail(st_writer *w, int code, const char *fmt, ...) {
    if (w->rc) return code; /* the first failure is the one worth reporting */
    w->rc = code;
    int k = snprintf(w->err, sizeof w->err, "st_writer: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err + k, sizeof w->err - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}

/* A name or key the header can hold: 1..ST_WRITER_MAX_NAME bytes of UTF-8
 * (jansson refuses anything else, so ask it). */
static bool st_writer__name_ok(const char *s) {
    size_t n = s ? strnlen(s, ST_WRITER_MAX_NAME + 1) : 0;
    if (n == 0 || n > ST_WRITER_MAX_NAME) return false;
    json_t *j = json_string(s);
    json_decref(j);
    return j != NULL;
}

static bool st_writer__has_tensor(const st_writer *w, const char *name) {
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0) return true;
    return false;
}

/* ---- building ------------------------------------------------------------ */

int st_writer_new(st_writer **out) {
    *out = NULL;
    st_writer *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    w->meta = json_object();
    if (!w->meta) {
        free(w);
        return -ENOMEM;
    }
    *out = w;
    return 0;
}

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->tensors);
    json_decref(w->meta);
    free(w);
}

const char *st_writer_error(const st_writer *w) {
    return w ? w->err : "st_writer: no writer";
}

int st_writer_set_metadata(st_writer *w, const char *key, const char *value) {
    if (!w) return -EINVAL;
    if (!st_writer__name_ok(key))
        return st_writer__fail(w, -EINVAL, "metadata key is empty, longer than %d bytes or "
                               "not UTF-8", ST_WRITER_MAX_NAME);
    if (json_object_get(w->meta, key))
        return st_writer__fail(w, -EINVAL, "metadata key '%s' set twice", key);
    json_t *v = value ? json_string(value) : NULL;
    if (!v) return st_writer__fail(w, -EINVAL, "metadata '%s': value missing or not UTF-8", key);
    if (json_object_set_new(w->meta, key, v) != 0)
        return st_writer__fail(w, -ENOMEM, "metadata '%s': out of memory", key);
    return 0;
}

/* Element count of a shape, or -EINVAL naming the tensor when a dim is
 * negative or the byte size would not fit a size_t. */
static int st_writer__count(st_writer *w, const char *name, int n_dims, const int64_t *shape,
                            size_t elem, uint64_t *n) {
    *n = 1;
    for (int i = 0; i < n_dims; i++) {
        if (shape[i] < 0)
            return st_writer__fail(w, -EINVAL, "tensor '%s': dim %d is %lld", name, i,
                                   (long long)shape[i]);
        if (shape[i] && *n > SIZE_MAX / elem / (uint64_t)shape[i])
            return st_writer__fail(w, -EINVAL, "tensor '%s': too many elements", name);
        *n *= (uint64_t)shape[i];
    }
    return 0;
}

static int st_writer__check_add(st_writer *w, const char *name, st_dtype dtype, int n_dims,
                                const int64_t *shape) {
    if (!st_writer__name_ok(name))
        return st_writer__fail(w, -EINVAL, "tensor name is empty, longer than %d bytes or "
                               "not UTF-8", ST_WRITER_MAX_NAME);
    if (strcmp(name, "__metadata__") == 0 || st_writer__has_tensor(w, name))
        return st_writer__fail(w, -EINVAL, "tensor '%s': name already used", name);
    if (dtype != ST_F32 && dtype != ST_F16)
        return st_writer__fail(w, -EINVAL, "tensor '%s': dtype %s (only F32 and F16 are "
                               "written)", name, st_dtype_name(dtype));
    if (n_dims < 0 || n_dims > ST_MAX_DIMS || (n_dims && !shape))
        return st_writer__fail(w, -EINVAL, "tensor '%s': %d dims (0..%d)", name, n_dims,
                               ST_MAX_DIMS);
    return 0;
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int n_dims,
                  const int64_t *shape, const float *data) {
    if (!w) return -EINVAL;
    int rc = st_writer__check_add(w, name, dtype, n_dims, shape);
    uint64_t n;
    if (rc || (rc = st_writer__count(w, name, n_dims, shape, st_dtype_size(dtype), &n)))
        return rc;
    uint64_t nbytes = n * st_dtype_size(dtype);
    if (n && !data) return st_writer__fail(w, -EINVAL, "tensor '%s': no data", name);
    if (nbytes > UINT64_MAX / 2 - w->data_size)
        return st_writer__fail(w, -EINVAL, "tensor '%s': file too large", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 16;
        void *p = realloc(w->tensors, cap * sizeof *w->tensors);
        if (!p) return st_writer__fail(w, -ENOMEM, "tensor '%s': out of memory", name);
        w->tensors = p;
        w->cap_tensors = cap;
    }
    st_writer__tensor *t = &w->tensors[w->n_tensors];
    *t = (st_writer__tensor){.dtype = dtype, .n_dims = n_dims, .n_elements = n,
                             .offset = w->data_size, .nbytes = nbytes, .data = data};
    if (n_dims) memcpy(t->shape, shape, (size_t)n_dims * sizeof *shape);
    if (!(t->name = strdup(name)))
        return st_writer__fail(w, -ENOMEM, "tensor '%s': out of memory", name);
    w->n_tensors++;
    w->data_size += nbytes;
    return 0;
}

/* ---- the header ---------------------------------------------------------- */

static json_t *st_writer__entry(const st_writer__tensor *t) {
    json_t *e = json_object(), *shape = json_array(), *offs = json_array();
    bool ok = e && shape && offs;
    for (int i = 0; ok && i < t->n_dims; i++)
        ok = json_array_append_new(shape, json_integer(t->shape[i])) == 0;
    ok = ok && json_array_append_new(offs, json_integer((json_int_t)t->offset)) == 0 &&
         json_array_append_new(offs, json_integer((json_int_t)(t->offset + t->nbytes))) == 0;
    ok = ok && json_object_set_new(e, "dtype", json_string(st_dtype_name(t->dtype))) == 0;
    ok = ok && json_object_set(e, "shape", shape) == 0 &&
         json_object_set(e, "data_offsets", offs) == 0;
    json_decref(shape);
    json_decref(offs);
    if (!ok) {
        json_decref(e);
        return NULL;
    }
    return e;
}

/* The header text, padded with spaces to a multiple of 8 (its length in
 * *len); NULL when out of memory. */
static char *st_writer__header(const st_writer *w, size_t *len) {
    json_t *h = json_object();
    bool ok = h != NULL;
    if (ok && json_object_size(w->meta))
        ok = json_object_set(h, "__metadata__", w->meta) == 0;
    for (size_t i = 0; ok && i < w->n_tensors; i++)
        ok = json_object_set_new(h, w->tensors[i].name, st_writer__entry(&w->tensors[i])) == 0;
    char *s = ok ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (!s) return NULL;
    size_t n = strlen(s), padded = (n + 7) / 8 * 8;
    char *p = realloc(s, padded + 1);
    if (!p) {
        free(s);
        return NULL;
    }
    memset(p + n, ' ', padded - n);
    p[padded] = '\0';
    *len = padded;
    return p;
}

/* ---- output -------------------------------------------------------------- */

static bool st_writer__put_f16(FILE *f, const float *x, uint64_t n) {
    uint16_t buf[ST_WRITER__CHUNK];
    for (uint64_t i = 0; i < n; i += ST_WRITER__CHUNK) {
        size_t m = n - i < ST_WRITER__CHUNK ? (size_t)(n - i) : ST_WRITER__CHUNK;
        for (size_t j = 0; j < m; j++) buf[j] = wt_f16_from_f32(x[i + j]);
        if (fwrite(buf, sizeof *buf, m, f) != m) return false;
    }
    return true;
}

static bool st_writer__put_tensor(FILE *f, const st_writer__tensor *t) {
    if (!t->n_elements) return true;
    if (t->dtype == ST_F16) return st_writer__put_f16(f, t->data, t->n_elements);
    return fwrite(t->data, 1, (size_t)t->nbytes, f) == t->nbytes;
}

/* The errno of a failed stdio call (EIO when it left none). */
static int st_writer__errno(void) {
    return errno ? errno : EIO;
}

/* Writes the whole file to the open f and makes it durable; the message
 * names tmp and the part that failed. */
static int st_writer__emit(const st_writer *w, FILE *f, const char *tmp, st_error *err) {
    size_t hlen;
    char *h = st_writer__header(w, &hlen);
    if (!h) return eng_fail(err, -ENOMEM, "st_writer: %s: header: out of memory", tmp);
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    errno = 0;
    bool ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h, 1, hlen, f) == hlen;
    free(h);
    int e = st_writer__errno();
    if (!ok) return eng_fail(err, -e, "st_writer: %s: writing the header: %s", tmp, strerror(e));
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (st_writer__put_tensor(f, &w->tensors[i])) continue;
        e = st_writer__errno();
        return eng_fail(err, -e, "st_writer: %s: writing tensor '%s': %s", tmp,
                        w->tensors[i].name, strerror(e));
    }
    return 0;
}

int st_writer_write(const st_writer *w, const char *path, st_error *err) {
    if (!w || !path || !*path) return eng_fail(err, -EINVAL, "st_writer: no writer or no path");
    if (w->rc) return eng_fail(err, w->rc, "%s", w->err);
    atomic_file af;
    int rc = atomic_file_open(&af, path, err);
    if (rc) return rc;
    if ((rc = st_writer__emit(w, af.f, af.tmp, err)) != 0) {
        atomic_file_abort(&af);
        return rc;
    }
    return atomic_file_commit(&af, err);
}
