/* safetensors.c - safetensors files and sharded indexes (see safetensors.h).
 *
 * Validation happens once, at open: after st_open/st_parse succeeds every
 * st_tensor's data pointer and nbytes lie inside the buffer, so readers never
 * re-check bounds. The parsed JSON header is kept alive for the file's life:
 * tensor names and metadata strings point into it.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Tensor bytes are little-endian; F32 data is handed out as-is. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

struct st_file {
    char *label;            /* path or caller label, owned */
    const uint8_t *base;    /* whole image: length field, header, data */
    size_t size;            /* bytes at base */
    bool mapped;            /* base is our mmap of size bytes */
    const uint8_t *data;    /* base + 8 + header length */
    uint64_t data_size;     /* bytes from data to the end of the image */
    json_t *header;         /* owns the strings names/metadata point into */
    st_tensor *tensors;     /* n_tensors, sorted by name */
    size_t n_tensors;
    const char **meta_keys; /* n_meta, sorted by key */
    const char **meta_vals;
    size_t n_meta;
};

typedef struct st__entry {
    const char *name;       /* borrowed from the index JSON or the st_file */
    const st_tensor *t;
    const st_file *f;
} st__entry;

struct st_set {
    st_file **files;        /* n_files, owned */
    const char **shard_names; /* per file: name in the index (borrowed) */
    size_t n_files;
    st__entry *entries;     /* n_entries, sorted by name */
    size_t n_entries;
    json_t *index;          /* the index document (NULL for one file) */
};

/* ---- errors -------------------------------------------------------------- */

#define st__fail eng_fail

/* Replaces err->msg with "<prefix><old message>" (for wrapping a shard's
 * error in the index's context). */
static void st__prefix(st_error *err, const char *prefix) {
    if (!err) return;
    char old[sizeof err->msg];
    memcpy(old, err->msg, sizeof old);
    size_t cap = sizeof err->msg - 1;
    size_t pl = strnlen(prefix, cap);
    size_t ol = strnlen(old, cap - pl);
    memcpy(err->msg, prefix, pl);
    memcpy(err->msg + pl, old, ol);
    err->msg[pl + ol] = '\0';
}

/* ---- dtypes -------------------------------------------------------------- */

static const char *const st__dtype_names[ST_DTYPE_COUNT] = {
#define ST__DTYPE_NAME(e, name, size) name,
    ST_DTYPES(ST__DTYPE_NAME)
#undef ST__DTYPE_NAME
};

static const unsigned char st__dtype_sizes[ST_DTYPE_COUNT] = {
#define ST__DTYPE_SIZE(e, name, size) size,
    ST_DTYPES(ST__DTYPE_SIZE)
#undef ST__DTYPE_SIZE
};

const char *st_dtype_name(st_dtype t) {
    return (unsigned)t < ST_DTYPE_COUNT ? st__dtype_names[t] : "?";
}

size_t st_dtype_size(st_dtype t) {
    return (unsigned)t < ST_DTYPE_COUNT ? st__dtype_sizes[t] : 0;
}

int st_dtype_from_name(const char *name, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(name, st__dtype_names[i]) == 0) {
            *out = (st_dtype)i;
            return 0;
        }
    }
    return -EINVAL;
}

void st_format_shape(char *buf, size_t n, int n_dims, const int64_t *shape) {
    size_t used = 0;
    if (n == 0) return;
    buf[0] = '\0';
    for (int i = -1; i <= n_dims && used < n; i++) {
        int w;
        if (i < 0) w = snprintf(buf + used, n - used, "[");
        else if (i == n_dims) w = snprintf(buf + used, n - used, "]");
        else w = snprintf(buf + used, n - used, "%s%lld", i ? ", " : "",
                          (long long)shape[i]);
        if (w < 0) break;
        used += (size_t)w;
    }
}

/* ---- header parsing ------------------------------------------------------ */

static int st__cmp_tensor_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int st__cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorts tensors by offset, then end (for the overlap scan). */
static int st__cmp_tensor_ptr_offset(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a;
    const st_tensor *y = *(const st_tensor *const *)b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    if (x->nbytes != y->nbytes) return x->nbytes < y->nbytes ? -1 : 1;
    return 0;
}

/* "__metadata__": an object of string values. Keys and values are borrowed
 * from the header. */
static int st__parse_metadata(st_file *f, json_t *meta, st_error *err) {
    if (!json_is_object(meta))
        return st__fail(err, -EINVAL, "%s: \"__metadata__\" is not an object",
                        f->label);
    size_t n = json_object_size(meta);
    f->meta_keys = calloc(n ? n : 1, sizeof *f->meta_keys);
    f->meta_vals = calloc(n ? n : 1, sizeof *f->meta_vals);
    if (!f->meta_keys || !f->meta_vals)
        return st__fail(err, -ENOMEM, "%s: out of memory for metadata", f->label);
    const char *key;
    json_t *val;
    json_object_foreach(meta, key, val) {
        if (!json_is_string(val))
            return st__fail(err, -EINVAL,
                            "%s: \"__metadata__\" value for key '%s' is not a string",
                            f->label, key);
        f->meta_keys[f->n_meta++] = key;
    }
    qsort(f->meta_keys, f->n_meta, sizeof *f->meta_keys, st__cmp_str_ptr);
    for (size_t i = 0; i < f->n_meta; i++)
        f->meta_vals[i] = json_string_value(json_object_get(meta, f->meta_keys[i]));
    return 0;
}

/* Reads one header entry into t. Every problem is reported with the tensor's
 * name; on success t->data points inside the data buffer. */
static int st__parse_tensor(st_file *f, const char *name, json_t *entry,
                            st_tensor *t, st_error *err) {
    const char *L = f->label;
    memset(t, 0, sizeof *t);
    t->name = name;
    if (!json_is_object(entry))
        return st__fail(err, -EINVAL, "%s: tensor '%s': entry is not an object",
                        L, name);

    json_t *jd = json_object_get(entry, "dtype");
    json_t *js = json_object_get(entry, "shape");
    json_t *jo = json_object_get(entry, "data_offsets");
    if (!jd) return st__fail(err, -EINVAL, "%s: tensor '%s': missing \"dtype\"", L, name);
    if (!js) return st__fail(err, -EINVAL, "%s: tensor '%s': missing \"shape\"", L, name);
    if (!jo)
        return st__fail(err, -EINVAL, "%s: tensor '%s': missing \"data_offsets\"",
                        L, name);

    if (!json_is_string(jd))
        return st__fail(err, -EINVAL, "%s: tensor '%s': \"dtype\" is not a string",
                        L, name);
    if (st_dtype_from_name(json_string_value(jd), &t->dtype) != 0)
        return st__fail(err, -EINVAL, "%s: tensor '%s': unknown dtype \"%s\"", L,
                        name, json_string_value(jd));

    if (!json_is_array(js))
        return st__fail(err, -EINVAL, "%s: tensor '%s': \"shape\" is not an array",
                        L, name);
    size_t nd = json_array_size(js);
    if (nd > ST_MAX_DIMS)
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': shape has %zu dimensions, more than the "
                        "maximum %d", L, name, nd, ST_MAX_DIMS);
    t->n_dims = (int)nd;
    bool has_zero = false;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(js, i);
        if (!json_is_integer(d))
            return st__fail(err, -EINVAL, "%s: tensor '%s': shape[%zu] is not an integer",
                            L, name, i);
        json_int_t v = json_integer_value(d);
        if (v < 0)
            return st__fail(err, -EINVAL, "%s: tensor '%s': shape[%zu] is negative (%lld)",
                            L, name, i, (long long)v);
        t->shape[i] = (int64_t)v;
        if (v == 0) has_zero = true;
    }
    uint64_t n = 1;
    if (has_zero) {
        n = 0;
    } else {
        for (size_t i = 0; i < nd; i++) {
            uint64_t d = (uint64_t)t->shape[i];
            if (n > UINT64_MAX / d)
                return st__fail(err, -EINVAL,
                                "%s: tensor '%s': shape element count overflows", L, name);
            n *= d;
        }
    }
    uint64_t esize = st_dtype_size(t->dtype);
    if (n > UINT64_MAX / esize)
        return st__fail(err, -EINVAL, "%s: tensor '%s': shape byte size overflows", L,
                        name);
    t->n_elements = n;
    t->nbytes = n * esize;

    if (!json_is_array(jo) || json_array_size(jo) != 2)
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': \"data_offsets\" is not an array of two "
                        "integers", L, name);
    json_t *jb = json_array_get(jo, 0), *je = json_array_get(jo, 1);
    if (!json_is_integer(jb) || !json_is_integer(je))
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': \"data_offsets\" is not an array of two "
                        "integers", L, name);
    json_int_t b = json_integer_value(jb), e = json_integer_value(je);
    if (b < 0 || e < 0)
        return st__fail(err, -EINVAL, "%s: tensor '%s': data_offsets are negative", L,
                        name);
    if (b > e)
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': data_offsets reversed (begin %lld > end %lld)",
                        L, name, (long long)b, (long long)e);
    if ((uint64_t)e > f->data_size)
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': data_offsets end %lld is beyond the data "
                        "buffer (%llu bytes)", L, name, (long long)e,
                        (unsigned long long)f->data_size);
    if ((uint64_t)(e - b) != t->nbytes) {
        char sh[128];
        st_format_shape(sh, sizeof sh, t->n_dims, t->shape);
        return st__fail(err, -EINVAL,
                        "%s: tensor '%s': size mismatch: data_offsets span %lld bytes "
                        "but dtype %s shape %s needs %llu", L, name, (long long)(e - b),
                        st_dtype_name(t->dtype), sh, (unsigned long long)t->nbytes);
    }
    t->offset = (uint64_t)b;
    t->data = f->data + t->offset;
    return 0;
}

/* Rejects two non-empty tensors sharing a byte. */
static int st__check_overlap(st_file *f, st_error *err) {
    if (f->n_tensors < 2) return 0;
    const st_tensor **by_off = malloc(f->n_tensors * sizeof *by_off);
    if (!by_off) return st__fail(err, -ENOMEM, "%s: out of memory", f->label);
    size_t m = 0;
    for (size_t i = 0; i < f->n_tensors; i++)
        if (f->tensors[i].nbytes) by_off[m++] = &f->tensors[i];
    qsort(by_off, m, sizeof *by_off, st__cmp_tensor_ptr_offset);
    const st_tensor *far = NULL;  /* earlier tensor reaching furthest */
    int rc = 0;
    for (size_t i = 0; i < m; i++) {
        const st_tensor *t = by_off[i];
        if (far && far->offset + far->nbytes > t->offset) {
            rc = st__fail(err, -EINVAL,
                          "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap",
                          f->label, far->name, (unsigned long long)far->offset,
                          (unsigned long long)(far->offset + far->nbytes), t->name,
                          (unsigned long long)t->offset,
                          (unsigned long long)(t->offset + t->nbytes));
            break;
        }
        if (!far || t->offset + t->nbytes > far->offset + far->nbytes) far = t;
    }
    free(by_off);
    return rc;
}

/* Validates f->base/f->size; fills header, tensors and metadata. */
static int st__parse_image(st_file *f, st_error *err) {
    const char *L = f->label;
    if (f->size < 8)
        return st__fail(err, -EINVAL,
                        "%s: file is %zu bytes, too small for the 8-byte header length",
                        L, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen > ST_MAX_HEADER_BYTES)
        return st__fail(err, -EINVAL,
                        "%s: header length %llu exceeds the cap of %u bytes", L,
                        (unsigned long long)hlen, ST_MAX_HEADER_BYTES);
    if (hlen > f->size - 8)
        return st__fail(err, -EINVAL,
                        "%s: header length %llu runs past the end of the file "
                        "(%zu bytes follow the length field)", L,
                        (unsigned long long)hlen, f->size - 8);

    json_error_t je;
    f->header = json_loadb((const char *)f->base + 8, (size_t)hlen,
                           JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!f->header)
        return st__fail(err, -EINVAL,
                        "%s: header is not valid JSON: %s (line %d, column %d)", L,
                        je.text, je.line, je.column);
    if (!json_is_object(f->header))
        return st__fail(err, -EINVAL, "%s: header is not a JSON object", L);

    f->data = f->base + 8 + hlen;
    f->data_size = (uint64_t)(f->size - 8) - hlen;

    size_t n = json_object_size(f->header);
    f->tensors = calloc(n ? n : 1, sizeof *f->tensors);
    if (!f->tensors) return st__fail(err, -ENOMEM, "%s: out of memory", L);
    const char *key;
    json_t *val;
    json_object_foreach(f->header, key, val) {
        int rc;
        if (strcmp(key, "__metadata__") == 0) {
            if ((rc = st__parse_metadata(f, val, err)) != 0) return rc;
            continue;
        }
        if ((rc = st__parse_tensor(f, key, val, &f->tensors[f->n_tensors], err)) != 0)
            return rc;
        f->n_tensors++;
    }
    qsort(f->tensors, f->n_tensors, sizeof *f->tensors, st__cmp_tensor_name);
    return st__check_overlap(f, err);
}

static st_file *st__file_new(const char *label) {
    st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->label = strdup(label);
    if (!f->label) {
        free(f);
        return NULL;
    }
    return f;
}

/* ---- st_file ------------------------------------------------------------- */

int st_parse(st_file **out, const void *buf, size_t len, const char *label,
             st_error *err) {
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && len) return st__fail(err, -EINVAL, "%s: NULL buffer", label);
    st_file *f = st__file_new(label);
    if (!f) return st__fail(err, -ENOMEM, "%s: out of memory", label);
    f->base = buf;
    f->size = len;
    int rc = st__parse_image(f, err);
    if (rc != 0) {
        st_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int st_open(st_file **out, const char *path, st_error *err) {
    *out = NULL;
    st_file *f = NULL;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        return st__fail(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = st__fail(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
        goto fail;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = st__fail(err, -EINVAL, "%s: not a regular file", path);
        goto fail;
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        rc = st__fail(err, -EFBIG, "%s: file too large to map", path);
        goto fail;
    }
    f = st__file_new(path);
    if (!f) {
        rc = st__fail(err, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    f->size = (size_t)sb.st_size;
    if (f->size >= 8) {  /* smaller files fail in st__parse_image */
        void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            rc = st__fail(err, -errno, "%s: cannot mmap: %s", path, strerror(errno));
            goto fail;
        }
        f->base = p;
        f->mapped = true;
    } else {
        static const uint8_t none[1];
        f->base = none;
    }
    close(fd);
    fd = -1;
    if ((rc = st__parse_image(f, err)) != 0) goto fail;
    *out = f;
    return 0;
fail:
    if (fd >= 0) close(fd);
    st_close(f);
    return rc;
}

void st_close(st_file *f) {
    if (!f) return;
    if (f->mapped) munmap((void *)f->base, f->size);
    json_decref(f->header);
    free(f->tensors);
    free(f->meta_keys);
    free(f->meta_vals);
    free(f->label);
    free(f);
}

const char *st_file_label(const st_file *f) { return f->label; }
size_t st_n_tensors(const st_file *f) { return f->n_tensors; }

const st_tensor *st_tensor_at(const st_file *f, size_t i) {
    return i < f->n_tensors ? &f->tensors[i] : NULL;
}

const st_tensor *st_find(const st_file *f, const char *name) {
    st_tensor key = {.name = name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof *f->tensors,
                   st__cmp_tensor_name);
}

size_t st_n_metadata(const st_file *f) { return f->n_meta; }

int st_metadata_at(const st_file *f, size_t i, const char **key, const char **value) {
    if (i >= f->n_meta) return -ENOENT;
    *key = f->meta_keys[i];
    *value = f->meta_vals[i];
    return 0;
}

const char *st_metadata_get(const st_file *f, const char *key) {
    if (f->n_meta == 0) /* bsearch on a NULL array is undefined */
        return NULL;
    const char **k = bsearch(&key, f->meta_keys, f->n_meta, sizeof *f->meta_keys,
                             st__cmp_str_ptr);
    return k ? f->meta_vals[k - f->meta_keys] : NULL;
}

/* ---- st_set -------------------------------------------------------------- */

static int st__cmp_entry(const void *a, const void *b) {
    return strcmp(((const st__entry *)a)->name, ((const st__entry *)b)->name);
}

int st_set_open_file(st_set **out, const char *path, st_error *err) {
    *out = NULL;
    st_set *s = calloc(1, sizeof *s);
    if (!s) return st__fail(err, -ENOMEM, "%s: out of memory", path);
    int rc;
    s->files = calloc(1, sizeof *s->files);
    s->shard_names = calloc(1, sizeof *s->shard_names);
    if (!s->files || !s->shard_names) {
        rc = st__fail(err, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if ((rc = st_open(&s->files[0], path, err)) != 0) goto fail;
    s->n_files = 1;
    s->shard_names[0] = st_file_label(s->files[0]);
    st_file *f = s->files[0];
    s->entries = calloc(f->n_tensors ? f->n_tensors : 1, sizeof *s->entries);
    if (!s->entries) {
        rc = st__fail(err, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    for (size_t i = 0; i < f->n_tensors; i++)
        s->entries[i] = (st__entry){f->tensors[i].name, &f->tensors[i], f};
    s->n_entries = f->n_tensors;  /* already sorted by name */
    *out = s;
    return 0;
fail:
    st_set_close(s);
    return rc;
}

/* A shard must be a plain file name beside the index: no separators, not a
 * dot entry, so an index cannot reach outside its directory. */
static bool st__shard_name_ok(const char *name) {
    return name[0] != '\0' && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0;
}

/* Reads a whole regular file of at most cap bytes into a new buffer. */
static int st__slurp(const char *path, size_t cap, char **buf, size_t *len,
                     st_error *err) {
    *buf = NULL;
    int rc, fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        return st__fail(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        rc = st__fail(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(sb.st_mode)) {
        rc = st__fail(err, -EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size > cap) {
        rc = st__fail(err, -EFBIG, "%s: %lld bytes, more than the cap of %zu", path,
                      (long long)sb.st_size, cap);
        goto out;
    }
    size_t n = (size_t)sb.st_size, got = 0;
    *buf = malloc(n + 1);
    if (!*buf) {
        rc = st__fail(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    while (got < n) {
        ssize_t r = read(fd, *buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            rc = st__fail(err, r < 0 ? -errno : -EIO, "%s: read failed: %s", path,
                          r < 0 ? strerror(errno) : "file shrank");
            free(*buf);
            *buf = NULL;
            goto out;
        }
        got += (size_t)r;
    }
    (*buf)[n] = '\0';
    *len = n;
    rc = 0;
out:
    close(fd);
    return rc;
}

int st_set_open_index(st_set **out, const char *index_path, st_error *err) {
    *out = NULL;
    const char *L = index_path;
    char *text = NULL, *dir = NULL, *shard_path = NULL;
    size_t len = 0;
    int rc;
    st_set *s = calloc(1, sizeof *s);
    if (!s) return st__fail(err, -ENOMEM, "%s: out of memory", L);
    if ((rc = st__slurp(index_path, ST_MAX_INDEX_BYTES, &text, &len, err)) != 0)
        goto fail;

    json_error_t je;
    s->index = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (!s->index) {
        rc = st__fail(err, -EINVAL, "%s: not valid JSON: %s (line %d, column %d)", L,
                      je.text, je.line, je.column);
        goto fail;
    }
    json_t *map = json_object_get(s->index, "weight_map");
    if (!json_is_object(s->index) || !json_is_object(map)) {
        rc = st__fail(err, -EINVAL, "%s: missing \"weight_map\" object", L);
        goto fail;
    }
    size_t n = json_object_size(map);
    if (n == 0) {
        rc = st__fail(err, -EINVAL, "%s: \"weight_map\" is empty", L);
        goto fail;
    }
    s->entries = calloc(n, sizeof *s->entries);
    s->files = calloc(n, sizeof *s->files);  /* at most one shard per tensor */
    s->shard_names = calloc(n, sizeof *s->shard_names);
    const char *slash = strrchr(index_path, '/');
    size_t dlen = slash ? (size_t)(slash - index_path) + 1 : 0;
    dir = strndup(index_path, dlen);
    if (!s->entries || !s->files || !s->shard_names || !dir) {
        rc = st__fail(err, -ENOMEM, "%s: out of memory", L);
        goto fail;
    }

    const char *name;
    json_t *val;
    json_object_foreach(map, name, val) {
        if (!json_is_string(val)) {
            rc = st__fail(err, -EINVAL,
                          "%s: weight_map entry for tensor '%s' is not a string", L, name);
            goto fail;
        }
        const char *shard = json_string_value(val);
        if (!st__shard_name_ok(shard)) {
            rc = st__fail(err, -EINVAL,
                          "%s: tensor '%s': shard name \"%s\" is not a plain file name",
                          L, name, shard);
            goto fail;
        }
        size_t k = 0;
        while (k < s->n_files && strcmp(s->shard_names[k], shard) != 0) k++;
        if (k == s->n_files) {  /* first mention: open it */
            size_t plen = dlen + strlen(shard) + 1;
            free(shard_path);
            shard_path = malloc(plen);
            if (!shard_path) {
                rc = st__fail(err, -ENOMEM, "%s: out of memory", L);
                goto fail;
            }
            snprintf(shard_path, plen, "%s%s", dir, shard);
            if ((rc = st_open(&s->files[k], shard_path, err)) != 0) {
                char pre[384];
                snprintf(pre, sizeof pre, "%s: shard '%s' (for tensor '%s'): ", L,
                         shard, name);
                st__prefix(err, pre);
                goto fail;
            }
            s->shard_names[k] = shard;
            s->n_files++;
        }
        const st_tensor *t = st_find(s->files[k], name);
        if (!t) {
            rc = st__fail(err, -ENOENT,
                          "%s: tensor '%s' is listed in weight_map but absent from "
                          "shard '%s'", L, name, shard);
            goto fail;
        }
        s->entries[s->n_entries++] = (st__entry){name, t, s->files[k]};
    }
    qsort(s->entries, s->n_entries, sizeof *s->entries, st__cmp_entry);
    free(text);
    free(dir);
    free(shard_path);
    *out = s;
    return 0;
fail:
    free(text);
    free(dir);
    free(shard_path);
    st_set_close(s);
    return rc;
}

void st_set_close(st_set *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_files; i++) st_close(s->files[i]);
    free(s->files);
    free(s->shard_names);
    free(s->entries);
    json_decref(s->index);
    free(s);
}

size_t st_set_n_tensors(const st_set *s) { return s->n_entries; }

const st_tensor *st_set_tensor_at(const st_set *s, size_t i) {
    return i < s->n_entries ? s->entries[i].t : NULL;
}

size_t st_set_n_files(const st_set *s) { return s->n_files; }

const st_file *st_set_file_at(const st_set *s, size_t i) {
    return i < s->n_files ? s->files[i] : NULL;
}

const st_tensor *st_set_find(const st_set *s, const char *name, const st_file **file) {
    st__entry key = {.name = name};
    const st__entry *e = bsearch(&key, s->entries, s->n_entries, sizeof *s->entries,
                                 st__cmp_entry);
    if (file) *file = e ? e->f : NULL;
    return e ? e->t : NULL;
}

/* ---- conversions --------------------------------------------------------- */

static float st__bits_to_f32(uint32_t u) {
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0x1f) {           /* inf / NaN: keep the payload */
        u = sign | 0x7f800000u | (mant << 13);
    } else if (exp != 0) {       /* normal: rebias 15 -> 127 */
        u = sign | ((exp + 112u) << 23) | (mant << 13);
    } else if (mant == 0) {      /* signed zero */
        u = sign;
    } else {                     /* subnormal: mant * 2^-24, normalise */
        uint32_t e = 113;        /* exponent field of 2^-14 is 113 */
        while (!(mant & 0x400u)) {
            mant <<= 1;
            e--;
        }
        u = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
    return st__bits_to_f32(u);
}

float st_bf16_to_f32(uint16_t b) { return st__bits_to_f32((uint32_t)b << 16); }

int st_tensor_to_f32(const st_tensor *t, float **out, st_error *err) {
    *out = NULL;
    if (t->dtype != ST_F32 && t->dtype != ST_F16 && t->dtype != ST_BF16)
        return st__fail(err, -EINVAL,
                        "tensor '%s': cannot convert dtype %s to F32 (only F32, F16, "
                        "BF16)", t->name, st_dtype_name(t->dtype));
    if (t->n_elements > SIZE_MAX / sizeof(float) - 1)
        return st__fail(err, -EFBIG, "tensor '%s': too large to convert", t->name);
    size_t n = (size_t)t->n_elements;
    float *dst = malloc((n ? n : 1) * sizeof *dst);
    if (!dst)
        return st__fail(err, -ENOMEM, "tensor '%s': out of memory for %zu floats",
                        t->name, n);
    const uint8_t *src = t->data;
    if (t->dtype == ST_F32) {
        if (n) memcpy(dst, src, n * sizeof *dst);
    } else {
        float (*cvt)(uint16_t) = t->dtype == ST_F16 ? st_f16_to_f32 : st_bf16_to_f32;
        for (size_t i = 0; i < n; i++) {
            uint16_t h = (uint16_t)(src[2 * i] | (src[2 * i + 1] << 8));
            dst[i] = cvt(h);
        }
    }
    *out = dst;
    return 0;
}

int st_tensor_expect(const st_tensor *t, st_dtype dtype, int n_dims,
                     const int64_t *shape, const char *label, st_error *err) {
    if (!label) label = "weights";
    if (t->dtype != dtype)
        return st__fail(err, -EINVAL, "%s: tensor '%s': dtype %s, expected %s", label,
                        t->name, st_dtype_name(t->dtype), st_dtype_name(dtype));
    bool same = t->n_dims == n_dims;
    for (int i = 0; same && i < n_dims; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char got[128], want[128];
        st_format_shape(got, sizeof got, t->n_dims, t->shape);
        st_format_shape(want, sizeof want, n_dims < 0 ? 0 : n_dims, shape);
        return st__fail(err, -EINVAL, "%s: tensor '%s': shape %s, expected %s", label,
                        t->name, got, want);
    }
    return 0;
}
