/* gguf.c - GGUF v2/v3 reader: maps or borrows the bytes, validates the whole
 * file against a bounds-checked cursor, and keeps metadata as aligned native
 * copies while tensor data stays in place (see gguf.h for the contracts). */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c decodes little-endian fields with memcpy; add byte swapping for this host"
#endif
_Static_assert(sizeof(bool) == 1, "bool arrays are copied byte for byte");

/* Smallest encodings, used to cap counts before allocating: a kv pair is a
 * key length (8), a value type (4) and at least one value byte; a tensor info
 * is a name length (8), n_dims (4), one dim (8), a type (4), an offset (8). */
#define GGUF__MIN_KV_BYTES 13u
#define GGUF__MIN_TENSOR_BYTES 32u
#define GGUF__ARENA_CHUNK (64u * 1024u)

/* ---- arena: owns every metadata copy; freed in one sweep ----------------- */

typedef struct gguf__chunk {
    struct gguf__chunk *next;
    size_t cap, used;         /* bytes in mem / bytes handed out */
    max_align_t mem[];        /* starts aligned for any element type */
} gguf__chunk;

typedef struct gguf__arena {
    gguf__chunk *head; /* newest chunk first */
} gguf__arena;

static void gguf__arena_free(gguf__arena *a) {
    gguf__chunk *c = a->head;
    while (c) {
        gguf__chunk *next = c->next;
        free(c);
        c = next;
    }
    a->head = NULL;
}

/* Returns n bytes aligned to align (a power of two <= sizeof(max_align_t)),
 * or NULL when out of memory. The memory lives until gguf__arena_free.
 * Strings ask for align 1 so a vocabulary of short tokens stays compact. */
static void *gguf__arena_alloc(gguf__arena *a, size_t n, size_t align) {
    gguf__chunk *c = a->head;
    size_t at = c ? (c->used + align - 1) & ~(align - 1) : 0;
    if (!c || at > c->cap || c->cap - at < n) {
        size_t cap = n > GGUF__ARENA_CHUNK ? n : GGUF__ARENA_CHUNK;
        if (cap > SIZE_MAX - sizeof(gguf__chunk)) return NULL;
        c = malloc(sizeof(gguf__chunk) + cap);
        if (!c) return NULL;
        c->cap = cap;
        c->used = 0;
        c->next = a->head;
        a->head = c;
        at = 0;
    }
    c->used = at + n;
    return (char *)c->mem + at;
}

/* ---- name index: open addressing over a names array ---------------------- */

typedef struct gguf__index {
    size_t *slots; /* entry index + 1; 0 = empty */
    size_t mask;   /* capacity - 1, capacity a power of two */
} gguf__index;

static uint64_t gguf__hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Sizes the index for n entries (load factor <= 1/2). */
static int gguf__index_init(gguf__index *ix, size_t n) {
    size_t cap = 16;
    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 2 / sizeof(size_t)) return GGUF_ENOMEM;
        cap *= 2;
    }
    ix->slots = calloc(cap, sizeof(size_t));
    if (!ix->slots) return GGUF_ENOMEM;
    ix->mask = cap - 1;
    return GGUF_OK;
}

static void gguf__index_free(gguf__index *ix) {
    free(ix->slots);
    ix->slots = NULL;
}

/* Probes for s among names[]: returns the slot where the search stopped and
 * sets *found to the entry index holding s, or SIZE_MAX when s is absent (the
 * returned slot is then the free one where s belongs). */
static size_t gguf__index_slot(const gguf__index *ix, const gguf_str *names, const char *s,
                               size_t len, size_t *found) {
    size_t i = (size_t)gguf__hash(s, len) & ix->mask;
    for (;;) {
        size_t e = ix->slots[i];
        if (e == 0) break;
        const gguf_str *nm = &names[e - 1];
        if (nm->len == len && memcmp(nm->s, s, len) == 0) {
            *found = e - 1;
            return i;
        }
        i = (i + 1) & ix->mask;
    }
    *found = SIZE_MAX;
    return i;
}

/* Entry index of s, or SIZE_MAX. */
static size_t gguf__index_find(const gguf__index *ix, const gguf_str *names, const char *s,
                               size_t len) {
    size_t found = SIZE_MAX;
    if (ix->slots) gguf__index_slot(ix, names, s, len, &found);
    return found;
}

/* Adds entry i (names[i]) unless its name is present: returns SIZE_MAX when
 * added, else the index of the entry that already has the name. */
static size_t gguf__index_add(gguf__index *ix, const gguf_str *names, size_t i) {
    size_t found;
    size_t slot = gguf__index_slot(ix, names, names[i].s, names[i].len, &found);
    if (found == SIZE_MAX) ix->slots[slot] = i + 1;
    return found;
}

/* ---- the file ------------------------------------------------------------ */

struct gguf_file {
    const uint8_t *data;    /* the whole file (mapping or borrowed buffer) */
    size_t size;            /* bytes at data */
    void *map;              /* mmap base for gguf_open, else NULL */
    size_t map_len;
    uint32_t version;
    size_t alignment;       /* power of two */
    size_t data_offset;     /* start of the data section, aligned */
    size_t n_kv;
    gguf_str *keys;         /* [n_kv] */
    gguf_value *values;     /* [n_kv] */
    size_t n_tensors;
    gguf_tensor *tensors;   /* [n_tensors] */
    gguf_str *tensor_names; /* [n_tensors], the index's view of the names */
    gguf__index kv_index, tensor_index;
    gguf__arena arena;
};

/* ---- error messages ------------------------------------------------------ */

__attribute__((format(printf, 3, 4)))
static void gguf__seterr(char *err, size_t errlen, const char *fmt, ...) {
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- the parser: a cursor over the bytes plus error context -------------- */

typedef struct gguf__parser {
    const uint8_t *p;  /* the file */
    size_t size;       /* bytes at p */
    size_t pos;        /* cursor; pos <= size always */
    const char *path;  /* for messages; NULL for a memory buffer */
    char ctx[160];     /* the item being parsed ("kv 3 'general.name'") */
    char *err;
    size_t errlen;
    gguf_file *f;
} gguf__parser;

/* Fills err with "gguf: [path: ][item: ]message" and returns code. */
__attribute__((format(printf, 3, 4)))
static int gguf__fail(gguf__parser *ps, int code, const char *fmt, ...) {
    if (!ps->err || ps->errlen == 0) return code;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(ps->err, ps->errlen, "gguf: %s%s%s%s%s", ps->path ? ps->path : "",
             ps->path ? ": " : "", ps->ctx, ps->ctx[0] ? ": " : "", msg);
    return code;
}

__attribute__((format(printf, 2, 3)))
static void gguf__set_ctx(gguf__parser *ps, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->ctx, sizeof ps->ctx, fmt, ap);
    va_end(ap);
}

static size_t gguf__left(const gguf__parser *ps) { return ps->size - ps->pos; }

/* Checks that n more bytes exist for `what`; the cursor does not move. */
static int gguf__need(gguf__parser *ps, size_t n, const char *what) {
    if (n <= gguf__left(ps)) return GGUF_OK;
    return gguf__fail(ps, GGUF_EFORMAT,
                      "truncated: %s needs %zu bytes at offset %zu, only %zu left",
                      what, n, ps->pos, gguf__left(ps));
}

static int gguf__read(gguf__parser *ps, void *dst, size_t n, const char *what) {
    int rc = gguf__need(ps, n, what);
    if (rc) return rc;
    memcpy(dst, ps->p + ps->pos, n);
    ps->pos += n;
    return GGUF_OK;
}

static int gguf__u32(gguf__parser *ps, uint32_t *v, const char *what) {
    return gguf__read(ps, v, sizeof *v, what);
}

static int gguf__u64(gguf__parser *ps, uint64_t *v, const char *what) {
    return gguf__read(ps, v, sizeof *v, what);
}

/* Reads a string (u64 length + bytes) into a NUL-terminated arena copy.
 * max caps the length (0: only the bytes left); as_name also rejects empty
 * strings and embedded NULs (keys and tensor names are C strings). */
static int gguf__read_str(gguf__parser *ps, gguf_str *out, uint64_t max,
                          bool as_name, const char *what) {
    uint64_t len;
    int rc = gguf__u64(ps, &len, what);
    if (rc) return rc;
    if (max && len > max)
        return gguf__fail(ps, GGUF_EFORMAT, "%s length %" PRIu64 " exceeds the limit of %" PRIu64,
                          what, len, max);
    if (len > gguf__left(ps))
        return gguf__fail(ps, GGUF_EFORMAT,
                          "%s length %" PRIu64 " exceeds the %zu bytes left at offset %zu",
                          what, len, gguf__left(ps), ps->pos);
    const char *src = (const char *)ps->p + ps->pos;
    if (as_name && len == 0) return gguf__fail(ps, GGUF_EFORMAT, "%s is empty", what);
    if (as_name && memchr(src, '\0', (size_t)len))
        return gguf__fail(ps, GGUF_EFORMAT, "%s contains a NUL byte", what);
    /* len + 1 cannot wrap: len <= bytes left < size, as the length field was read */
    char *s = gguf__arena_alloc(&ps->f->arena, (size_t)len + 1, 1);
    if (!s) return gguf__fail(ps, GGUF_ENOMEM, "out of memory for %s", what);
    memcpy(s, src, (size_t)len);
    s[len] = '\0';
    ps->pos += (size_t)len;
    out->s = s;
    out->len = (size_t)len;
    return GGUF_OK;
}

/* ---- metadata values ----------------------------------------------------- */

/* Encoded bytes of a fixed-size value type; 0 for string, array, invalid. */
static size_t gguf__fixed_size(uint32_t t) {
    switch (t) {
    case GGUF_TYPE_UINT8: case GGUF_TYPE_INT8: case GGUF_TYPE_BOOL: return 1;
    case GGUF_TYPE_UINT16: case GGUF_TYPE_INT16: return 2;
    case GGUF_TYPE_UINT32: case GGUF_TYPE_INT32: case GGUF_TYPE_FLOAT32: return 4;
    case GGUF_TYPE_UINT64: case GGUF_TYPE_INT64: case GGUF_TYPE_FLOAT64: return 8;
    default: return 0;
    }
}

static int gguf__check_bool(gguf__parser *ps, uint8_t b, size_t at) {
    if (b <= 1) return GGUF_OK;
    return gguf__fail(ps, GGUF_EFORMAT, "bool value %u at offset %zu is neither 0 nor 1",
                      (unsigned)b, at);
}

static int gguf__read_array(gguf__parser *ps, gguf_value *v) {
    uint32_t et;
    uint64_t n;
    int rc = gguf__u32(ps, &et, "array element type");
    if (rc) return rc;
    if (et == GGUF_TYPE_ARRAY)
        return gguf__fail(ps, GGUF_EFORMAT, "nested arrays are not supported");
    if (et >= GGUF_TYPE_COUNT)
        return gguf__fail(ps, GGUF_EFORMAT, "unknown array element type %" PRIu32, et);
    if ((rc = gguf__u64(ps, &n, "array count"))) return rc;
    size_t esz = gguf__fixed_size(et);           /* bytes per element in the file */
    size_t min = esz ? esz : sizeof(uint64_t);   /* a string is at least its length */
    if (n > gguf__left(ps) / min)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "array count %" PRIu64 " of %s exceeds what the %zu bytes left can hold",
                          n, gguf_type_name((gguf_type)et), gguf__left(ps));
    v->v.arr.type = (gguf_type)et;
    v->v.arr.n = (size_t)n;
    v->v.arr.data = NULL;
    if (n == 0) return GGUF_OK;
    size_t csz = esz ? esz : sizeof(gguf_str);   /* bytes per element in memory */
    if (n > SIZE_MAX / csz) return gguf__fail(ps, GGUF_ENOMEM, "array too large");
    void *mem = gguf__arena_alloc(&ps->f->arena, (size_t)n * csz, sizeof(max_align_t));
    if (!mem) return gguf__fail(ps, GGUF_ENOMEM, "out of memory for %" PRIu64 " elements", n);
    if (esz) {
        size_t start = ps->pos;
        if ((rc = gguf__read(ps, mem, (size_t)n * esz, "array elements"))) return rc;
        if (et == GGUF_TYPE_BOOL)
            for (size_t i = 0; i < n; i++)
                if ((rc = gguf__check_bool(ps, ((uint8_t *)mem)[i], start + i))) return rc;
    } else {
        gguf_str *items = mem;
        for (size_t i = 0; i < n; i++)
            if ((rc = gguf__read_str(ps, &items[i], 0, false, "array string"))) return rc;
    }
    v->v.arr.data = mem;
    return GGUF_OK;
}

/* Reads a value of type t (already read and checked < GGUF_TYPE_COUNT). */
static int gguf__read_value(gguf__parser *ps, uint32_t t, gguf_value *v) {
    v->type = (gguf_type)t;
    if (t == GGUF_TYPE_STRING) return gguf__read_str(ps, &v->v.str, 0, false, "string value");
    if (t == GGUF_TYPE_ARRAY) return gguf__read_array(ps, v);
    size_t at = ps->pos;
    /* Every scalar member starts at the union's first byte (C11 6.7.2.1). */
    int rc = gguf__read(ps, &v->v, gguf__fixed_size(t), gguf_type_name((gguf_type)t));
    if (rc) return rc;
    if (t == GGUF_TYPE_BOOL) return gguf__check_bool(ps, v->v.u8, at);
    return GGUF_OK;
}

static int gguf__read_kvs(gguf__parser *ps, uint64_t n_kv) {
    gguf_file *f = ps->f;
    f->keys = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->keys);
    f->values = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->values);
    if (!f->keys || !f->values) return gguf__fail(ps, GGUF_ENOMEM, "out of memory for kv table");
    if (gguf__index_init(&f->kv_index, (size_t)n_kv))
        return gguf__fail(ps, GGUF_ENOMEM, "out of memory for kv index");
    for (size_t i = 0; i < n_kv; i++) {
        gguf__set_ctx(ps, "kv %zu", i);
        gguf_str *key = &f->keys[i];
        int rc = gguf__read_str(ps, key, GGUF_MAX_KEY_LEN, true, "key");
        if (rc) return rc;
        gguf__set_ctx(ps, "kv %zu '%.100s'", i, key->s);
        size_t dup = gguf__index_add(&f->kv_index, f->keys, i);
        if (dup != SIZE_MAX)
            return gguf__fail(ps, GGUF_EFORMAT, "duplicate key (also kv %zu)", dup);
        uint32_t t;
        if ((rc = gguf__u32(ps, &t, "value type"))) return rc;
        if (t >= GGUF_TYPE_COUNT)
            return gguf__fail(ps, GGUF_EFORMAT, "unknown value type %" PRIu32, t);
        if ((rc = gguf__read_value(ps, t, &f->values[i]))) return rc;
        f->n_kv = i + 1;
    }
    ps->ctx[0] = '\0';
    return GGUF_OK;
}

/* ---- tensor infos and layout --------------------------------------------- */

static int gguf__read_tensor_info(gguf__parser *ps, size_t i) {
    gguf_file *f = ps->f;
    gguf_tensor *t = &f->tensors[i];
    gguf_str *name = &f->tensor_names[i];
    gguf__set_ctx(ps, "tensor %zu", i);
    int rc = gguf__read_str(ps, name, GGUF_MAX_NAME_LEN, true, "tensor name");
    if (rc) return rc;
    t->name = name->s;
    gguf__set_ctx(ps, "tensor '%s'", name->s);
    size_t dup = gguf__index_add(&f->tensor_index, f->tensor_names, i);
    if (dup != SIZE_MAX)
        return gguf__fail(ps, GGUF_EFORMAT, "duplicate tensor name (also tensor %zu)", dup);

    uint32_t n_dims;
    if ((rc = gguf__u32(ps, &n_dims, "n_dims"))) return rc;
    if (n_dims == 0 || n_dims > GGUF_MAX_DIMS)
        return gguf__fail(ps, GGUF_EFORMAT, "n_dims %" PRIu32 " is outside 1..%d", n_dims,
                          GGUF_MAX_DIMS);
    t->n_dims = n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        uint64_t ne;
        if ((rc = gguf__u64(ps, &ne, "dim"))) return rc;
        if (ne > (uint64_t)INT64_MAX)
            return gguf__fail(ps, GGUF_EFORMAT, "ne[%" PRIu32 "] = %" PRIu64 " exceeds INT64_MAX",
                              d, ne);
        t->ne[d] = (int64_t)ne;
    }
    uint32_t type;
    if ((rc = gguf__u32(ps, &type, "ggml type"))) return rc;
    if (!gguf_dtype_valid(type))
        return gguf__fail(ps, GGUF_EFORMAT, "unknown ggml type %" PRIu32, type);
    t->type = (gguf_dtype)type;

    rc = gguf_dtype_nbytes(type, t->ne, &t->nbytes);
    if (rc == GGUF_ERANGE)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "shape [%" PRId64 ", %" PRId64 ", %" PRId64 ", %" PRId64
                          "] overflows: element count or byte size too large",
                          t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    if (rc)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "ne[0] = %" PRId64 " is not a multiple of the block size %" PRIu32
                          " of type %s", t->ne[0], gguf_dtype_block_size(type),
                          gguf_dtype_name(type));
    t->n_elements = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
    if ((rc = gguf__u64(ps, &t->offset, "data offset"))) return rc;
    f->n_tensors = i + 1;
    return GGUF_OK;
}

/* Reads general.alignment when present: any integer type, a power of two
 * that fits uint32 (the spec's type). */
static int gguf__read_alignment(gguf__parser *ps) {
    gguf_file *f = ps->f;
    f->alignment = GGUF_DEFAULT_ALIGNMENT;
    const char *key = "general.alignment";
    size_t i = gguf__index_find(&f->kv_index, f->keys, key, strlen(key));
    if (i == SIZE_MAX) return GGUF_OK;
    gguf__set_ctx(ps, "kv %zu '%s'", i, key);
    int64_t a;
    int rc = gguf_get_int(f, key, 1, UINT32_MAX, &a, NULL, 0);
    if (rc == GGUF_ETYPE)
        return gguf__fail(ps, GGUF_EFORMAT, "alignment must be an integer, found %s",
                          gguf_type_name(f->values[i].type));
    if (rc)
        return gguf__fail(ps, GGUF_EFORMAT, "alignment out of range: must be a power of two "
                                            "in 1..2^31");
    if ((a & (a - 1)) != 0)
        return gguf__fail(ps, GGUF_EFORMAT, "alignment %" PRId64 " is not a power of two", a);
    f->alignment = (size_t)a;
    ps->ctx[0] = '\0';
    return GGUF_OK;
}

static int gguf__cmp_offset(const void *a, const void *b) {
    const gguf_tensor *x = *(const gguf_tensor *const *)a, *y = *(const gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Places every tensor inside the data section and rejects misaligned,
 * out-of-file and overlapping data. */
static int gguf__check_layout(gguf__parser *ps) {
    gguf_file *f = ps->f;
    size_t a = f->alignment, pos = ps->pos;
    if (pos > SIZE_MAX - (a - 1))
        return gguf__fail(ps, GGUF_EFORMAT, "data section offset overflows");
    f->data_offset = (pos + a - 1) & ~(a - 1);
    if (f->n_tensors == 0) return GGUF_OK;
    if (f->data_offset > f->size)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "data section starts at offset %zu, beyond end of file (size %zu)",
                          f->data_offset, f->size);
    size_t avail = f->size - f->data_offset;
    for (size_t i = 0; i < f->n_tensors; i++) {
        gguf_tensor *t = &f->tensors[i];
        gguf__set_ctx(ps, "tensor '%s'", t->name);
        if (t->offset % a != 0)
            return gguf__fail(ps, GGUF_EFORMAT,
                              "data offset %" PRIu64 " is not a multiple of the alignment %zu",
                              t->offset, a);
        if (t->offset > UINT64_MAX - t->nbytes)
            return gguf__fail(ps, GGUF_EFORMAT,
                              "data offset %" PRIu64 " + size %zu wraps around", t->offset,
                              t->nbytes);
        if (t->offset > avail || t->nbytes > avail - t->offset)
            return gguf__fail(ps, GGUF_EFORMAT,
                              "data [%" PRIu64 ", %" PRIu64 ") beyond end of file "
                              "(size %zu, data section at %zu)",
                              t->offset, t->offset + t->nbytes, f->size, f->data_offset);
        t->data = f->data + f->data_offset + t->offset;
    }
    ps->ctx[0] = '\0';

    gguf_tensor **by_off = malloc(f->n_tensors * sizeof *by_off);
    if (!by_off) return gguf__fail(ps, GGUF_ENOMEM, "out of memory for overlap check");
    size_t n = 0;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].nbytes) by_off[n++] = &f->tensors[i];
    qsort(by_off, n, sizeof *by_off, gguf__cmp_offset);
    int rc = GGUF_OK;
    for (size_t i = 1; i < n && !rc; i++) {
        const gguf_tensor *x = by_off[i - 1], *y = by_off[i];
        if (x->offset + x->nbytes > y->offset) /* both in the file: no wrap */
            rc = gguf__fail(ps, GGUF_EFORMAT,
                            "tensors '%s' [%" PRIu64 ", %" PRIu64 ") and '%s' [%" PRIu64 ", %" PRIu64
                            ") overlap", x->name, x->offset, x->offset + x->nbytes, y->name,
                            y->offset, y->offset + y->nbytes);
    }
    free(by_off);
    return rc;
}

/* ---- header and driver --------------------------------------------------- */

static int gguf__read_header(gguf__parser *ps, uint64_t *n_tensors, uint64_t *n_kv) {
    gguf__set_ctx(ps, "header");
    char magic[4];
    int rc = gguf__read(ps, magic, 4, "magic");
    if (rc) return rc;
    if (memcmp(magic, "GGUF", 4) != 0)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "bad magic %02x %02x %02x %02x, expected \"GGUF\" (not a GGUF file)",
                          (unsigned char)magic[0], (unsigned char)magic[1],
                          (unsigned char)magic[2], (unsigned char)magic[3]);
    uint32_t v;
    if ((rc = gguf__u32(ps, &v, "version"))) return rc;
    if (v == 1)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "version 1 is not supported (it used 32-bit counts); "
                          "convert the model again to get version 2 or 3");
    if (v == 0x02000000u || v == 0x03000000u)
        return gguf__fail(ps, GGUF_EFORMAT, "big-endian GGUF files are not supported");
    if (v != 2 && v != 3)
        return gguf__fail(ps, GGUF_EFORMAT, "unsupported version %" PRIu32 " (only 2 and 3)", v);
    ps->f->version = v;
    if ((rc = gguf__u64(ps, n_tensors, "tensor count"))) return rc;
    if ((rc = gguf__u64(ps, n_kv, "kv count"))) return rc;
    if (*n_kv > gguf__left(ps) / GGUF__MIN_KV_BYTES)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "kv count %" PRIu64 " exceeds what the %zu bytes left can hold",
                          *n_kv, gguf__left(ps));
    if (*n_tensors > gguf__left(ps) / GGUF__MIN_TENSOR_BYTES)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "tensor count %" PRIu64 " exceeds what the %zu bytes left can hold",
                          *n_tensors, gguf__left(ps));
    ps->ctx[0] = '\0';
    return GGUF_OK;
}

static int gguf__parse_all(gguf__parser *ps) {
    uint64_t n_tensors = 0, n_kv = 0; /* set by a successful header read */
    int rc = gguf__read_header(ps, &n_tensors, &n_kv);
    if (rc) return rc;
    if ((rc = gguf__read_kvs(ps, n_kv))) return rc;
    /* recheck against what the metadata left, before allocating */
    if (n_tensors > gguf__left(ps) / GGUF__MIN_TENSOR_BYTES)
        return gguf__fail(ps, GGUF_EFORMAT,
                          "tensor count %" PRIu64 " exceeds what the %zu bytes left can hold",
                          n_tensors, gguf__left(ps));
    gguf_file *f = ps->f;
    size_t nt = n_tensors ? (size_t)n_tensors : 1;
    f->tensors = calloc(nt, sizeof *f->tensors);
    f->tensor_names = calloc(nt, sizeof *f->tensor_names);
    if (!f->tensors || !f->tensor_names)
        return gguf__fail(ps, GGUF_ENOMEM, "out of memory for tensor table");
    if (gguf__index_init(&f->tensor_index, (size_t)n_tensors))
        return gguf__fail(ps, GGUF_ENOMEM, "out of memory for tensor index");
    for (size_t i = 0; i < n_tensors; i++)
        if ((rc = gguf__read_tensor_info(ps, i))) return rc;
    ps->ctx[0] = '\0';
    if ((rc = gguf__read_alignment(ps))) return rc;
    return gguf__check_layout(ps);
}

/* Parses into a new file over data[0..size); map/map_len are handed to the
 * file (unmapped by gguf_close, also on failure). */
static int gguf__parse_impl(gguf_file **out, const void *data, size_t size, void *map,
                            size_t map_len, const char *path, char *err, size_t errlen) {
    gguf_file *f = calloc(1, sizeof *f);
    if (!f) {
        if (map) munmap(map, map_len);
        gguf__seterr(err, errlen, "gguf: %s%sout of memory", path ? path : "", path ? ": " : "");
        return GGUF_ENOMEM;
    }
    f->data = data;
    f->size = size;
    f->map = map;
    f->map_len = map_len;
    gguf__parser ps = {.p = data, .size = size, .path = path, .err = err, .errlen = errlen, .f = f};
    int rc = gguf__parse_all(&ps);
    if (rc) {
        gguf_close(f);
        return rc;
    }
    if (err && errlen) err[0] = '\0';
    *out = f;
    return GGUF_OK;
}

int gguf_parse(gguf_file **out, const void *data, size_t size, char *err, size_t errlen) {
    if (!out) return GGUF_EINVAL;
    *out = NULL;
    if (!data && size) {
        gguf__seterr(err, errlen, "gguf: NULL buffer of %zu bytes", size);
        return GGUF_EINVAL;
    }
    static const uint8_t empty[1];
    return gguf__parse_impl(out, data ? data : empty, size, NULL, 0, NULL, err, errlen);
}

int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen) {
    if (!out || !path) return GGUF_EINVAL;
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        gguf__seterr(err, errlen, "gguf: %s: cannot open: %s", path, strerror(errno));
        return GGUF_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        gguf__seterr(err, errlen, "gguf: %s: not a regular file", path);
        close(fd);
        return GGUF_EIO;
    }
    if (st.st_size == 0 || (uint64_t)st.st_size > SIZE_MAX) {
        gguf__seterr(err, errlen, "gguf: %s: %s", path,
                     st.st_size == 0 ? "file is empty" : "file too large to map");
        close(fd);
        return st.st_size == 0 ? GGUF_EFORMAT : GGUF_EIO;
    }
    size_t size = (size_t)st.st_size;
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        gguf__seterr(err, errlen, "gguf: %s: cannot map %zu bytes: %s", path, size, strerror(e));
        return GGUF_EIO;
    }
    return gguf__parse_impl(out, map, size, map, size, path, err, errlen);
}

void gguf_close(gguf_file *f) {
    if (!f) return;
    gguf__index_free(&f->kv_index);
    gguf__index_free(&f->tensor_index);
    gguf__arena_free(&f->arena);
    free(f->keys);
    free(f->values);
    free(f->tensors);
    free(f->tensor_names);
    if (f->map) munmap(f->map, f->map_len);
    free(f);
}

/* ---- accessors ----------------------------------------------------------- */

uint32_t gguf_version(const gguf_file *f) { return f->version; }
size_t gguf_alignment(const gguf_file *f) { return f->alignment; }
size_t gguf_data_offset(const gguf_file *f) { return f->data_offset; }
size_t gguf_file_size(const gguf_file *f) { return f->size; }
size_t gguf_n_kv(const gguf_file *f) { return f->n_kv; }
size_t gguf_n_tensors(const gguf_file *f) { return f->n_tensors; }

const char *gguf_kv_key(const gguf_file *f, size_t i) {
    return i < f->n_kv ? f->keys[i].s : NULL;
}

const gguf_value *gguf_kv_value(const gguf_file *f, size_t i) {
    return i < f->n_kv ? &f->values[i] : NULL;
}

int64_t gguf_find_key(const gguf_file *f, const char *key) {
    size_t i = gguf__index_find(&f->kv_index, f->keys, key, strlen(key));
    return i == SIZE_MAX ? GGUF_ENOTFOUND : (int64_t)i;
}

const gguf_value *gguf_find_value(const gguf_file *f, const char *key) {
    int64_t i = gguf_find_key(f, key);
    return i < 0 ? NULL : &f->values[i];
}

const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name) {
    size_t i = gguf__index_find(&f->tensor_index, f->tensor_names, name, strlen(name));
    return i == SIZE_MAX ? NULL : &f->tensors[i];
}

/* Finds key with value type want; fills err on failure. */
static int gguf__lookup(const gguf_file *f, const char *key, gguf_type want,
                        const gguf_value **out, char *err, size_t errlen) {
    const gguf_value *v = gguf_find_value(f, key);
    if (!v) {
        gguf__seterr(err, errlen, "gguf: key '%s' not found", key);
        return GGUF_ENOTFOUND;
    }
    if (v->type != want) {
        gguf__seterr(err, errlen, "gguf: key '%s' has type %s, expected %s", key,
                     gguf_type_name(v->type), gguf_type_name(want));
        return GGUF_ETYPE;
    }
    *out = v;
    return GGUF_OK;
}

/* X(function suffix, C type, value type, union member): the typed getters
 * declared one by one in gguf.h. */
#define GGUF__SCALARS(X)                             \
    X(u8, uint8_t, GGUF_TYPE_UINT8, u8)              \
    X(i8, int8_t, GGUF_TYPE_INT8, i8)                \
    X(u16, uint16_t, GGUF_TYPE_UINT16, u16)          \
    X(i16, int16_t, GGUF_TYPE_INT16, i16)            \
    X(u32, uint32_t, GGUF_TYPE_UINT32, u32)          \
    X(i32, int32_t, GGUF_TYPE_INT32, i32)            \
    X(u64, uint64_t, GGUF_TYPE_UINT64, u64)          \
    X(i64, int64_t, GGUF_TYPE_INT64, i64)            \
    X(f32, float, GGUF_TYPE_FLOAT32, f32)            \
    X(f64, double, GGUF_TYPE_FLOAT64, f64)           \
    X(bool, bool, GGUF_TYPE_BOOL, b)

#define GGUF__GETTER(sfx, ctype, tcode, member)                                    \
    int gguf_get_##sfx(const gguf_file *f, const char *key, ctype *out, char *err, \
                       size_t errlen) {                                            \
        const gguf_value *v;                                                       \
        int rc = gguf__lookup(f, key, tcode, &v, err, errlen);                     \
        if (rc == GGUF_OK) *out = v->v.member;                                     \
        return rc;                                                                 \
    }
GGUF__SCALARS(GGUF__GETTER)
#undef GGUF__GETTER

int gguf_get_str(const gguf_file *f, const char *key, const char **out, size_t *len,
                 char *err, size_t errlen) {
    const gguf_value *v;
    int rc = gguf__lookup(f, key, GGUF_TYPE_STRING, &v, err, errlen);
    if (rc) return rc;
    *out = v->v.str.s;
    if (len) *len = v->v.str.len;
    return GGUF_OK;
}

int gguf_get_int(const gguf_file *f, const char *key, int64_t min, int64_t max,
                 int64_t *out, char *err, size_t errlen) {
    const gguf_value *v = gguf_find_value(f, key);
    if (!v) {
        gguf__seterr(err, errlen, "gguf: key '%s' not found", key);
        return GGUF_ENOTFOUND;
    }
    int64_t x;
    switch (v->type) {
    case GGUF_TYPE_UINT8: x = v->v.u8; break;
    case GGUF_TYPE_INT8: x = v->v.i8; break;
    case GGUF_TYPE_UINT16: x = v->v.u16; break;
    case GGUF_TYPE_INT16: x = v->v.i16; break;
    case GGUF_TYPE_UINT32: x = v->v.u32; break;
    case GGUF_TYPE_INT32: x = v->v.i32; break;
    case GGUF_TYPE_INT64: x = v->v.i64; break;
    case GGUF_TYPE_UINT64:
        if (v->v.u64 > (uint64_t)INT64_MAX) {
            gguf__seterr(err, errlen, "gguf: key '%s': value %" PRIu64 " does not fit int64",
                         key, v->v.u64);
            return GGUF_ERANGE;
        }
        x = (int64_t)v->v.u64;
        break;
    default:
        gguf__seterr(err, errlen, "gguf: key '%s' has type %s, expected an integer", key,
                     gguf_type_name(v->type));
        return GGUF_ETYPE;
    }
    if (x < min || x > max) {
        gguf__seterr(err, errlen,
                     "gguf: key '%s': value %" PRId64 " is outside [%" PRId64 ", %" PRId64 "]",
                     key, x, min, max);
        return GGUF_ERANGE;
    }
    *out = x;
    return GGUF_OK;
}

int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err,
                   size_t errlen) {
    const gguf_value *v = gguf_find_value(f, key);
    if (!v) {
        gguf__seterr(err, errlen, "gguf: key '%s' not found", key);
        return GGUF_ENOTFOUND;
    }
    if (v->type == GGUF_TYPE_FLOAT32) *out = v->v.f32;
    else if (v->type == GGUF_TYPE_FLOAT64) *out = v->v.f64;
    else {
        gguf__seterr(err, errlen, "gguf: key '%s' has type %s, expected a float", key,
                     gguf_type_name(v->type));
        return GGUF_ETYPE;
    }
    return GGUF_OK;
}

int gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem, const void **data,
                 size_t *n, char *err, size_t errlen) {
    const gguf_value *v;
    int rc = gguf__lookup(f, key, GGUF_TYPE_ARRAY, &v, err, errlen);
    if (rc) return rc;
    if (v->v.arr.type != elem) {
        gguf__seterr(err, errlen, "gguf: key '%s' is an array of %s, expected %s", key,
                     gguf_type_name(v->v.arr.type), gguf_type_name(elem));
        return GGUF_ETYPE;
    }
    *data = v->v.arr.data;
    *n = v->v.arr.n;
    return GGUF_OK;
}
