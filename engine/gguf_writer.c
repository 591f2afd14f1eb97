/* gguf_writer.c - GGUF v3 writer: metadata is serialized when it is set,
 * tensor data is converted in fixed-size chunks while streaming to a
 * temporary file that is renamed into place (see gguf_writer.h). */
#include "gguf_writer.h"

#include "atomic_file.h"
#include "qmat.h"
#include "weights.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf_writer.c writes native integers and floats as little-endian fields"
#endif

#define GGUF_WRITER__Q8_BLOCK 32
#define GGUF_WRITER__Q8_BYTES 34 /* f16 scale + 32 int8 */
/* Elements converted per fwrite: a multiple of the Q8_0 block, small
 * enough for the stack. */
#define GGUF_WRITER__CHUNK 4096

/* A growable byte buffer; a failed allocation sticks and is checked once. */
typedef struct gguf_writer__buf {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} gguf_writer__buf;

typedef struct gguf_writer__kv {
    char *key;      /* owned: for duplicate checks */
    uint8_t *bytes; /* owned: the whole pair as on disk (key, type, value) */
    size_t len;
} gguf_writer__kv;

typedef struct gguf_writer__tensor {
    char *name;                /* owned */
    uint32_t n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* innermost first (GGUF order); unused 1 */
    int64_t n_elements;
    gguf_writer_type type;
    const float *data;         /* borrowed until the write */
    size_t nbytes;             /* stored bytes, before padding */
    uint64_t offset;           /* from the start of the data section */
} gguf_writer__tensor;

struct gguf_writer {
    gguf_writer__kv *kvs;
    size_t n_kv, cap_kv;
    gguf_writer__tensor *tensors;
    size_t n_tensors, cap_tensors;
    uint64_t data_size; /* bytes of the data section so far, padded */
    int rc;             /* first set/add failure, 0 when none (sticky) */
    char err[256];      /* its message */
};

/* ---- errors and small helpers -------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static int gguf_writer__fail(gguf_writer *w, int code, const char *fmt, ...) {
    if (w->rc) return code; /* the first failure is the one worth reporting */
    w->rc = code;
    int k = snprintf(w->err, sizeof w->err, "gguf_writer: ");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err + k, sizeof w->err - (size_t)k, fmt, ap);
    va_end(ap);
    return code;
}

__attribute__((format(printf, 3, 4)))
static void gguf_writer__seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Makes room for n + 1 elements of size elem in *p (capacity *cap). */
static int gguf_writer__grow(void **p, size_t *cap, size_t n, size_t elem) {
    if (n < *cap) return 0;
    size_t c = *cap ? *cap * 2 : 16;
    if (c > SIZE_MAX / elem) return -ENOMEM;
    void *q = realloc(*p, c * elem);
    if (!q) return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static uint64_t gguf_writer__pad_to(uint64_t n) {
    return (GGUF_WRITER_ALIGNMENT - n % GGUF_WRITER_ALIGNMENT) % GGUF_WRITER_ALIGNMENT;
}

/* One ggml Q8_0 block of 32 elements, as ggml's quantize_row_q8_0_ref:
 * the scale is rounded to f16 for storage but quantization uses the F32
 * one, so files match ggml's byte for byte. */
static void gguf_writer__q8_0_block(uint8_t *dst, const float *x) {
    float amax = 0.0f;
    for (int j = 0; j < GGUF_WRITER__Q8_BLOCK; j++) amax = fmaxf(amax, fabsf(x[j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    uint16_t h = wt_f16_from_f32(d);
    dst[0] = (uint8_t)h;
    dst[1] = (uint8_t)(h >> 8);
    for (int j = 0; j < GGUF_WRITER__Q8_BLOCK; j++)
        dst[2 + j] = (uint8_t)(int8_t)roundf(x[j] * id);
}

/* ---- the byte buffer ----------------------------------------------------- */

static void gguf_writer__put(gguf_writer__buf *b, const void *src, size_t n) {
    if (b->oom || n == 0) return;
    if (n > b->cap - b->n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n) {
            if (cap > SIZE_MAX / 2) {
                b->oom = true;
                return;
            }
            cap *= 2;
        }
        uint8_t *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void gguf_writer__put_u32(gguf_writer__buf *b, uint32_t v) { gguf_writer__put(b, &v, 4); }
static void gguf_writer__put_u64(gguf_writer__buf *b, uint64_t v) { gguf_writer__put(b, &v, 8); }

static void gguf_writer__put_str(gguf_writer__buf *b, const char *s) {
    size_t n = strlen(s);
    gguf_writer__put_u64(b, n);
    gguf_writer__put(b, s, n);
}

/* ---- metadata ------------------------------------------------------------ */

static int gguf_writer__check_key(gguf_writer *w, const char *key) {
    if (!key || !*key) return gguf_writer__fail(w, -EINVAL, "empty metadata key");
    size_t n = strlen(key);
    if (n > GGUF_MAX_KEY_LEN)
        return gguf_writer__fail(w, -EINVAL, "key '%.32s...': %zu bytes, more than %d", key, n,
                                 GGUF_MAX_KEY_LEN);
    /* linear: models have tens of keys */
    for (size_t i = 0; i < w->n_kv; i++)
        if (strcmp(w->kvs[i].key, key) == 0)
            return gguf_writer__fail(w, -EINVAL, "key '%s': already set", key);
    return 0;
}

/* Starts pair key of type in *b after checking the key; the caller appends
 * the value and hands b to gguf_writer__kv_end. */
static int gguf_writer__kv_begin(gguf_writer *w, const char *key, gguf_type type,
                                 gguf_writer__buf *b) {
    memset(b, 0, sizeof *b);
    int rc = gguf_writer__check_key(w, key);
    if (rc) return rc;
    gguf_writer__put_str(b, key);
    gguf_writer__put_u32(b, (uint32_t)type);
    return 0;
}

/* Keeps the finished pair in b (steals its bytes; frees them on failure). */
static int gguf_writer__kv_end(gguf_writer *w, const char *key, gguf_writer__buf *b) {
    char *k = NULL;
    if (b->oom || gguf_writer__grow((void **)&w->kvs, &w->cap_kv, w->n_kv, sizeof *w->kvs) ||
        !(k = strdup(key))) {
        free(b->p);
        return gguf_writer__fail(w, -ENOMEM, "key '%s': out of memory", key);
    }
    w->kvs[w->n_kv++] = (gguf_writer__kv){.key = k, .bytes = b->p, .len = b->n};
    return 0;
}

/* A pair with a fixed-size value of n bytes at v. */
static int gguf_writer__set(gguf_writer *w, const char *key, gguf_type type, const void *v,
                            size_t n) {
    if (!w) return -EINVAL;
    gguf_writer__buf b;
    int rc = gguf_writer__kv_begin(w, key, type, &b);
    if (rc) return rc;
    gguf_writer__put(&b, v, n);
    return gguf_writer__kv_end(w, key, &b);
}

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v) {
    return gguf_writer__set(w, key, GGUF_TYPE_UINT32, &v, 4);
}

int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v) {
    return gguf_writer__set(w, key, GGUF_TYPE_INT32, &v, 4);
}

int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v) {
    return gguf_writer__set(w, key, GGUF_TYPE_UINT64, &v, 8);
}

int gguf_writer_set_f32(gguf_writer *w, const char *key, float v) {
    return gguf_writer__set(w, key, GGUF_TYPE_FLOAT32, &v, 4);
}

int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v) {
    uint8_t b = v ? 1 : 0; /* the reader accepts only 0 and 1 */
    return gguf_writer__set(w, key, GGUF_TYPE_BOOL, &b, 1);
}

int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v) {
    if (!w) return -EINVAL;
    if (!v) return gguf_writer__fail(w, -EINVAL, "key '%s': NULL string", key ? key : "");
    gguf_writer__buf b;
    int rc = gguf_writer__kv_begin(w, key, GGUF_TYPE_STRING, &b);
    if (rc) return rc;
    gguf_writer__put_str(&b, v);
    return gguf_writer__kv_end(w, key, &b);
}

/* Checks an array argument and starts its pair: element type and count. */
static int gguf_writer__arr_begin(gguf_writer *w, const char *key, gguf_type elem,
                                  const void *v, size_t n, gguf_writer__buf *b) {
    memset(b, 0, sizeof *b);
    if (n && !v)
        return gguf_writer__fail(w, -EINVAL, "key '%s': NULL array of %zu elements",
                                 key ? key : "", n);
    int rc = gguf_writer__kv_begin(w, key, GGUF_TYPE_ARRAY, b);
    if (rc) return rc;
    gguf_writer__put_u32(b, (uint32_t)elem);
    gguf_writer__put_u64(b, n);
    return 0;
}

/* An array of n fixed-size elements of esz bytes. */
static int gguf_writer__set_arr(gguf_writer *w, const char *key, gguf_type elem, const void *v,
                                size_t n, size_t esz) {
    if (!w) return -EINVAL;
    if (n > SIZE_MAX / esz)
        return gguf_writer__fail(w, -EINVAL, "key '%s': %zu elements are too many",
                                 key ? key : "", n);
    gguf_writer__buf b;
    int rc = gguf_writer__arr_begin(w, key, elem, v, n, &b);
    if (rc) return rc;
    gguf_writer__put(&b, v, n * esz);
    return gguf_writer__kv_end(w, key, &b);
}

int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n) {
    return gguf_writer__set_arr(w, key, GGUF_TYPE_INT32, v, n, sizeof *v);
}

int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n) {
    return gguf_writer__set_arr(w, key, GGUF_TYPE_FLOAT32, v, n, sizeof *v);
}

int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n) {
    if (!w) return -EINVAL;
    for (size_t i = 0; v && i < n; i++)
        if (!v[i])
            return gguf_writer__fail(w, -EINVAL, "key '%s': string %zu is NULL",
                                     key ? key : "", i);
    gguf_writer__buf b;
    int rc = gguf_writer__arr_begin(w, key, GGUF_TYPE_STRING, v, n, &b);
    if (rc) return rc;
    for (size_t i = 0; i < n; i++) gguf_writer__put_str(&b, v[i]);
    return gguf_writer__kv_end(w, key, &b);
}

/* Bytes of one fixed-size value of type t; 0 for strings and arrays. */
static size_t gguf_writer__type_size(gguf_type t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static void gguf_writer__put_gstr(gguf_writer__buf *b, const gguf_str *s) {
    gguf_writer__put_u64(b, s->len);
    gguf_writer__put(b, s->s, s->len);
}

int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f, const char *key) {
    if (!w) return -EINVAL;
    const gguf_value *v = f ? gguf_find_value(f, key) : NULL;
    if (!v) return gguf_writer__fail(w, -ENOENT, "key '%s': not in the source file", key ? key : "");
    gguf_writer__buf b;
    int rc;
    if (v->type == GGUF_TYPE_STRING) {
        if ((rc = gguf_writer__kv_begin(w, key, GGUF_TYPE_STRING, &b))) return rc;
        gguf_writer__put_gstr(&b, &v->v.str);
        return gguf_writer__kv_end(w, key, &b);
    }
    if (v->type != GGUF_TYPE_ARRAY) /* bool is one byte 0/1 in the reader's copy too */
        return gguf_writer__set(w, key, v->type, &v->v, gguf_writer__type_size(v->type));
    size_t n = v->v.arr.n, esz = gguf_writer__type_size(v->v.arr.type);
    if ((rc = gguf_writer__arr_begin(w, key, v->v.arr.type, v->v.arr.data, n, &b))) return rc;
    if (v->v.arr.type == GGUF_TYPE_STRING)
        for (size_t i = 0; i < n; i++) gguf_writer__put_gstr(&b, (const gguf_str *)v->v.arr.data + i);
    else if (esz && sizeof(bool) == 1)
        gguf_writer__put(&b, v->v.arr.data, n * esz);
    else {
        free(b.p);
        return gguf_writer__fail(w, -ENOTSUP, "key '%s': array of type %d", key, (int)v->v.arr.type);
    }
    return gguf_writer__kv_end(w, key, &b);
}

/* ---- tensors ------------------------------------------------------------- */

static int gguf_writer__check_name(gguf_writer *w, const char *name) {
    if (!name || !*name) return gguf_writer__fail(w, -EINVAL, "empty tensor name");
    if (strlen(name) > GGUF_MAX_NAME_LEN)
        return gguf_writer__fail(w, -EINVAL, "tensor '%.32s...': name longer than %d bytes",
                                 name, GGUF_MAX_NAME_LEN);
    /* linear: a few hundred tensors cost well under a millisecond */
    for (size_t i = 0; i < w->n_tensors; i++)
        if (strcmp(w->tensors[i].name, name) == 0)
            return gguf_writer__fail(w, -EINVAL, "tensor '%s': already added", name);
    return 0;
}

/* Fills t's dims (reversed into GGUF order), element count and stored size. */
static int gguf_writer__shape(gguf_writer *w, gguf_writer__tensor *t, const char *name,
                              int n_dims, const int64_t *shape, gguf_writer_type type) {
    if (type != GGUF_WRITER_F32 && type != GGUF_WRITER_F16 && type != GGUF_WRITER_Q8_0 &&
        type != GGUF_WRITER_Q4_0)
        return gguf_writer__fail(w, -EINVAL,
                                 "tensor '%s': type %d is not f32, f16, q8_0 or q4_0", name,
                                 (int)type);
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS || !shape)
        return gguf_writer__fail(w, -EINVAL, "tensor '%s': %d dims, expected 1..%d", name,
                                 n_dims, GGUF_MAX_DIMS);
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 1)
            return gguf_writer__fail(w, -EINVAL, "tensor '%s': dim %d is %lld, must be >= 1",
                                     name, d, (long long)shape[d]);
        t->ne[n_dims - 1 - d] = shape[d];
    }
    int rc = gguf_dtype_nbytes((uint32_t)type, t->ne, &t->nbytes);
    if (rc == GGUF_EINVAL)
        return gguf_writer__fail(w, -EINVAL,
                                 "tensor '%s': row length %lld is not a multiple of %d (%s)",
                                 name, (long long)t->ne[0], GGUF_WRITER__Q8_BLOCK,
                                 type == GGUF_WRITER_Q4_0 ? "q4_0" : "q8_0");
    if (rc || t->nbytes > UINT64_MAX - GGUF_WRITER_ALIGNMENT - w->data_size)
        return gguf_writer__fail(w, -EINVAL, "tensor '%s': too large", name);
    /* the product fits int64 (checked by gguf_dtype_nbytes); the F32 input
     * is the largest form of the data and must be addressable */
    t->n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if ((uint64_t)t->n_elements > SIZE_MAX / sizeof(float))
        return gguf_writer__fail(w, -EINVAL, "tensor '%s': too large", name);
    t->n_dims = (uint32_t)n_dims;
    t->type = type;
    return 0;
}

int gguf_writer_add_tensor(gguf_writer *w, const char *name, int n_dims, const int64_t *shape,
                           gguf_writer_type type, const float *data) {
    if (!w) return -EINVAL;
    gguf_writer__tensor t = {0};
    int rc = gguf_writer__check_name(w, name);
    if (rc || (rc = gguf_writer__shape(w, &t, name, n_dims, shape, type))) return rc;
    if (!data) return gguf_writer__fail(w, -EINVAL, "tensor '%s': NULL data", name);
    if (gguf_writer__grow((void **)&w->tensors, &w->cap_tensors, w->n_tensors,
                          sizeof *w->tensors) ||
        !(t.name = strdup(name)))
        return gguf_writer__fail(w, -ENOMEM, "tensor '%s': out of memory", name);
    t.data = data;
    t.offset = w->data_size;
    w->data_size += t.nbytes + gguf_writer__pad_to(t.nbytes);
    w->tensors[w->n_tensors++] = t;
    return 0;
}

/* ---- life cycle ---------------------------------------------------------- */

int gguf_writer_new(gguf_writer **out) {
    *out = NULL;
    gguf_writer *w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    /* set here so that a caller setting it too gets the duplicate error */
    int rc = gguf_writer_set_u32(w, "general.alignment", GGUF_WRITER_ALIGNMENT);
    if (rc) {
        gguf_writer_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

void gguf_writer_free(gguf_writer *w) {
    if (!w) return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].bytes);
    }
    for (size_t i = 0; i < w->n_tensors; i++) free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

const char *gguf_writer_error(const gguf_writer *w) { return w ? w->err : ""; }

/* ---- output -------------------------------------------------------------- */

/* The open temporary file: writes after a failure are skipped, so sections
 * are checked once each. */
typedef struct gguf_writer__out {
    FILE *f;
    uint64_t pos; /* bytes written, for padding */
    int err;      /* errno of the first failed write, 0 when none */
} gguf_writer__out;

static void gguf_writer__emit(gguf_writer__out *o, const void *p, size_t n) {
    if (o->err || n == 0) return;
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n) o->err = errno ? errno : EIO;
    o->pos += n;
}

static void gguf_writer__emit_u32(gguf_writer__out *o, uint32_t v) { gguf_writer__emit(o, &v, 4); }
static void gguf_writer__emit_u64(gguf_writer__out *o, uint64_t v) { gguf_writer__emit(o, &v, 8); }

static void gguf_writer__emit_pad(gguf_writer__out *o) {
    static const uint8_t zeros[GGUF_WRITER_ALIGNMENT];
    gguf_writer__emit(o, zeros, (size_t)gguf_writer__pad_to(o->pos));
}

/* Header, kv pairs, tensor infos, padding up to the data section. */
static void gguf_writer__emit_head(const gguf_writer *w, gguf_writer__out *o) {
    gguf_writer__emit(o, "GGUF", 4);
    gguf_writer__emit_u32(o, 3);
    gguf_writer__emit_u64(o, w->n_tensors);
    gguf_writer__emit_u64(o, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++) gguf_writer__emit(o, w->kvs[i].bytes, w->kvs[i].len);
    for (size_t i = 0; i < w->n_tensors; i++) {
        const gguf_writer__tensor *t = &w->tensors[i];
        size_t n = strlen(t->name);
        gguf_writer__emit_u64(o, n);
        gguf_writer__emit(o, t->name, n);
        gguf_writer__emit_u32(o, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) gguf_writer__emit_u64(o, (uint64_t)t->ne[d]);
        gguf_writer__emit_u32(o, (uint32_t)t->type);
        gguf_writer__emit_u64(o, t->offset);
    }
    gguf_writer__emit_pad(o);
}

static void gguf_writer__emit_f16(gguf_writer__out *o, const float *x, size_t n) {
    uint16_t buf[GGUF_WRITER__CHUNK];
    for (size_t i = 0; i < n && !o->err; i += GGUF_WRITER__CHUNK) {
        size_t m = n - i < GGUF_WRITER__CHUNK ? n - i : GGUF_WRITER__CHUNK;
        for (size_t j = 0; j < m; j++) buf[j] = wt_f16_from_f32(x[i + j]);
        gguf_writer__emit(o, buf, m * sizeof *buf);
    }
}

/* n is a multiple of the block (checked when the tensor was added). */
static void gguf_writer__emit_q8_0(gguf_writer__out *o, const float *x, size_t n) {
    uint8_t buf[GGUF_WRITER__CHUNK / GGUF_WRITER__Q8_BLOCK * GGUF_WRITER__Q8_BYTES];
    for (size_t i = 0; i < n && !o->err; i += GGUF_WRITER__CHUNK) {
        size_t m = n - i < GGUF_WRITER__CHUNK ? n - i : GGUF_WRITER__CHUNK;
        size_t nb = m / GGUF_WRITER__Q8_BLOCK;
        for (size_t b = 0; b < nb; b++)
            gguf_writer__q8_0_block(buf + b * GGUF_WRITER__Q8_BYTES,
                                    x + i + b * GGUF_WRITER__Q8_BLOCK);
        gguf_writer__emit(o, buf, nb * GGUF_WRITER__Q8_BYTES);
    }
}

/* One tensor's data and its padding. */
/* Q4_0 blocks of 18 bytes (qmat.h's quantizer, ggml's reference). */
static void gguf_writer__emit_q4_0(gguf_writer__out *o, const float *x, size_t n) {
    uint8_t buf[GGUF_WRITER__CHUNK / GGUF_WRITER__Q8_BLOCK * 18];
    for (size_t i = 0; i < n && !o->err; i += GGUF_WRITER__CHUNK) {
        size_t m = n - i < GGUF_WRITER__CHUNK ? n - i : GGUF_WRITER__CHUNK;
        qm_quantize_row(QM_Q4_0, x + i, (int)m, buf);
        gguf_writer__emit(o, buf, m / GGUF_WRITER__Q8_BLOCK * 18);
    }
}

static void gguf_writer__emit_tensor(gguf_writer__out *o, const gguf_writer__tensor *t) {
    size_t n = (size_t)t->n_elements;
    switch (t->type) {
    case GGUF_WRITER_F32: gguf_writer__emit(o, t->data, t->nbytes); break;
    case GGUF_WRITER_F16: gguf_writer__emit_f16(o, t->data, n); break;
    case GGUF_WRITER_Q8_0: gguf_writer__emit_q8_0(o, t->data, n); break;
    case GGUF_WRITER_Q4_0: gguf_writer__emit_q4_0(o, t->data, n); break;
    }
    gguf_writer__emit_pad(o);
}

/* Writes the whole file to the open f and makes it durable. The message
 * names tmp and the part that failed. */
static int gguf_writer__emit_all(const gguf_writer *w, FILE *f, const char *tmp, char *err,
                                 size_t errlen) {
    gguf_writer__out o = {.f = f};
    gguf_writer__emit_head(w, &o);
    if (o.err) {
        gguf_writer__seterr(err, errlen, "gguf_writer: %s: writing metadata: %s", tmp,
                            strerror(o.err));
        return -o.err;
    }
    for (size_t i = 0; i < w->n_tensors; i++) {
        gguf_writer__emit_tensor(&o, &w->tensors[i]);
        if (o.err) {
            gguf_writer__seterr(err, errlen, "gguf_writer: %s: writing tensor '%s': %s", tmp,
                                w->tensors[i].name, strerror(o.err));
            return -o.err;
        }
    }
    return 0;
}

int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen) {
    if (!w || !path || !*path) {
        gguf_writer__seterr(err, errlen, "gguf_writer: no writer or empty path");
        return -EINVAL;
    }
    if (w->rc) {
        gguf_writer__seterr(err, errlen, "%s", w->err);
        return w->rc;
    }
    atomic_file af;
    eng_err e = {0};
    int rc = atomic_file_open(&af, path, &e);
    if (rc == 0 && (rc = gguf_writer__emit_all(w, af.f, af.tmp, err, errlen)) != 0) {
        atomic_file_abort(&af);
        return rc;
    }
    if (rc == 0)
        rc = atomic_file_commit(&af, &e);
    if (rc)
        gguf_writer__seterr(err, errlen, "gguf_writer: %s", e.msg);
    return rc;
}
