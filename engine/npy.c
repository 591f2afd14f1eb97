/* npy.c - NumPy .npy reader (see npy.h).
 *
 * The header is a Python dict literal such as
 *   {'descr': '<f4', 'fortran_order': False, 'shape': (4, 50257), }
 * padded with spaces and ended by '\n'. It is parsed with a bounds-checked
 * cursor over exactly the header bytes; only the subset of Python literal
 * syntax that numpy writes is accepted (quoted strings without escapes,
 * True/False, tuples of non-negative decimal integers).
 */
#include "npy.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "npy.c hands little-endian data out as-is; it assumes a little-endian host"
#endif

/* Largest file npy_load reads (the fixtures are a few MB). */
#define NPY__MAX_FILE_BYTES ((size_t)1 << 31)

static const char npy__magic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

typedef struct npy__cur {
    const char *p;    /* next unread byte */
    const char *end;  /* one past the header */
} npy__cur;

#define npy__fail eng_fail

const char *npy_dtype_name(npy_dtype t) {
    switch (t) {
    case NPY_F32: return "<f4";
    case NPY_F64: return "<f8";
    case NPY_I64: return "<i8";
    }
    return "?";
}

size_t npy_dtype_size(npy_dtype t) {
    switch (t) {
    case NPY_F32: return 4;
    case NPY_F64: return 8;
    case NPY_I64: return 8;
    }
    return 0;
}

/* ---- header cursor ------------------------------------------------------- */

static void npy__ws(npy__cur *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' ||
                             *c->p == '\r'))
        c->p++;
}

static bool npy__eat(npy__cur *c, char ch) {
    npy__ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted string without escapes; *s and *n point into the header. */
static bool npy__str(npy__cur *c, const char **s, size_t *n) {
    npy__ws(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"')) return false;
    char q = *c->p++;
    const char *start = c->p;
    while (c->p < c->end && *c->p != q) {
        if (*c->p == '\\' || *c->p == '\n') return false;
        c->p++;
    }
    if (c->p >= c->end) return false;
    *s = start;
    *n = (size_t)(c->p - start);
    c->p++;
    return true;
}

static bool npy__word(npy__cur *c, const char *w) {
    npy__ws(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0) return false;
    c->p += n;
    return true;
}

/* A non-negative decimal integer of at most 18 digits (no overflow). */
static bool npy__uint(npy__cur *c, int64_t *v) {
    npy__ws(c);
    int digits = 0;
    int64_t x = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (++digits > 18) return false;
        x = x * 10 + (*c->p - '0');
        c->p++;
    }
    *v = x;
    return digits > 0;
}

static bool npy__key_is(const char *s, size_t n, const char *key) {
    return n == strlen(key) && memcmp(s, key, n) == 0;
}

/* Parses the dict into out->dtype/n_dims/shape. */
static int npy__parse_header(npy__cur *c, npy_array *out, const char *L,
                             npy_error *err) {
    bool have_descr = false, have_order = false, have_shape = false;
    if (!npy__eat(c, '{'))
        return npy__fail(err, -EINVAL, "%s: header is not a dict literal", L);
    while (!npy__eat(c, '}')) {
        const char *k;
        size_t kn;
        if (!npy__str(c, &k, &kn))
            return npy__fail(err, -EINVAL, "%s: header: expected a quoted key", L);
        if (!npy__eat(c, ':'))
            return npy__fail(err, -EINVAL, "%s: header: expected ':' after key '%.*s'",
                             L, (int)kn, k);
        if (npy__key_is(k, kn, "descr")) {
            const char *v;
            size_t vn;
            if (have_descr) return npy__fail(err, -EINVAL, "%s: header: duplicate key 'descr'", L);
            if (!npy__str(c, &v, &vn))
                return npy__fail(err, -EINVAL,
                                 "%s: header: 'descr' is not a plain dtype string "
                                 "(structured dtypes are not supported)", L);
            if (npy__key_is(v, vn, "<f4")) out->dtype = NPY_F32;
            else if (npy__key_is(v, vn, "<f8")) out->dtype = NPY_F64;
            else if (npy__key_is(v, vn, "<i8")) out->dtype = NPY_I64;
            else
                return npy__fail(err, -EINVAL,
                                 "%s: dtype '%.*s' is not supported (only '<f4', '<f8', "
                                 "'<i8')", L, (int)(vn > 32 ? 32 : vn), v);
            have_descr = true;
        } else if (npy__key_is(k, kn, "fortran_order")) {
            if (have_order)
                return npy__fail(err, -EINVAL, "%s: header: duplicate key 'fortran_order'", L);
            if (npy__word(c, "True"))
                return npy__fail(err, -EINVAL,
                                 "%s: Fortran-order arrays are not supported", L);
            if (!npy__word(c, "False"))
                return npy__fail(err, -EINVAL,
                                 "%s: header: 'fortran_order' is not True or False", L);
            have_order = true;
        } else if (npy__key_is(k, kn, "shape")) {
            if (have_shape) return npy__fail(err, -EINVAL, "%s: header: duplicate key 'shape'", L);
            if (!npy__eat(c, '('))
                return npy__fail(err, -EINVAL, "%s: header: 'shape' is not a tuple", L);
            int nd = 0;
            while (!npy__eat(c, ')')) {
                int64_t v;
                if (nd == NPY_MAX_DIMS)
                    return npy__fail(err, -EINVAL, "%s: shape has more than %d dimensions",
                                     L, NPY_MAX_DIMS);
                if (!npy__uint(c, &v))
                    return npy__fail(err, -EINVAL,
                                     "%s: header: shape[%d] is not a non-negative integer "
                                     "(at most 18 digits)", L, nd);
                out->shape[nd++] = v;
                if (!npy__eat(c, ',')) {
                    if (!npy__eat(c, ')'))
                        return npy__fail(err, -EINVAL,
                                         "%s: header: malformed shape tuple", L);
                    break;
                }
            }
            out->n_dims = nd;
            have_shape = true;
        } else {
            return npy__fail(err, -EINVAL, "%s: header: unexpected key '%.*s'", L,
                             (int)(kn > 32 ? 32 : kn), k);
        }
        if (!npy__eat(c, ',')) {
            if (!npy__eat(c, '}'))
                return npy__fail(err, -EINVAL, "%s: header: expected ',' or '}'", L);
            break;
        }
    }
    npy__ws(c);
    if (c->p != c->end)
        return npy__fail(err, -EINVAL, "%s: header: trailing bytes after the dict", L);
    if (!have_descr || !have_order || !have_shape)
        return npy__fail(err, -EINVAL, "%s: header: missing key '%s'", L,
                         !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    return 0;
}

/* ---- public -------------------------------------------------------------- */

int npy_parse(npy_array *out, const void *buf, size_t len, const char *label,
              npy_error *err) {
    memset(out, 0, sizeof *out);
    const char *L = label ? label : "<memory>";
    const unsigned char *b = buf;
    if (!b && len) return npy__fail(err, -EINVAL, "%s: NULL buffer", L);
    if (len < 10 || memcmp(b, npy__magic, sizeof npy__magic) != 0)
        return npy__fail(err, -EINVAL, "%s: not a .npy file (bad magic)", L);
    unsigned major = b[6], minor = b[7];
    size_t pre, hlen;
    if (major == 1) {
        pre = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else if (major == 2 || major == 3) {
        if (len < 12) return npy__fail(err, -EINVAL, "%s: truncated before header length", L);
        pre = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    } else {
        return npy__fail(err, -EINVAL, "%s: format version %u.%u is not supported", L,
                         major, minor);
    }
    if (minor != 0)
        return npy__fail(err, -EINVAL, "%s: format version %u.%u is not supported", L,
                         major, minor);
    if (hlen > NPY_MAX_HEADER_BYTES)
        return npy__fail(err, -EINVAL, "%s: header length %zu exceeds the cap of %u", L,
                         hlen, NPY_MAX_HEADER_BYTES);
    if (hlen > len - pre)
        return npy__fail(err, -EINVAL,
                         "%s: header length %zu runs past the end of the file (%zu bytes)",
                         L, hlen, len);

    npy_array a;
    memset(&a, 0, sizeof a);
    npy__cur c = {(const char *)b + pre, (const char *)b + pre + hlen};
    int rc = npy__parse_header(&c, &a, L, err);
    if (rc != 0) return rc;

    size_t esize = npy_dtype_size(a.dtype), n = 1;
    for (int i = 0; i < a.n_dims; i++) {
        uint64_t d = (uint64_t)a.shape[i];
        if (d != 0 && n > SIZE_MAX / d)
            return npy__fail(err, -EINVAL, "%s: shape element count overflows", L);
        n *= (size_t)d;
    }
    if (n > SIZE_MAX / esize)
        return npy__fail(err, -EINVAL, "%s: shape byte size overflows", L);
    a.n_elements = n;
    a.nbytes = n * esize;
    size_t have = len - pre - hlen;
    if (have != a.nbytes)
        return npy__fail(err, -EINVAL,
                         "%s: data is %zu bytes but dtype %s with %zu elements needs %zu",
                         L, have, npy_dtype_name(a.dtype), n, a.nbytes);
    a.data = malloc(a.nbytes ? a.nbytes : 1);  /* malloc aligns for any dtype */
    if (!a.data)
        return npy__fail(err, -ENOMEM, "%s: out of memory for %zu bytes", L, a.nbytes);
    if (a.nbytes) memcpy(a.data, b + pre + hlen, a.nbytes);
    *out = a;
    return 0;
}

int npy_load(npy_array *out, const char *path, npy_error *err) {
    memset(out, 0, sizeof *out);
    int rc;
    unsigned char *buf = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rc = -errno;
        return npy__fail(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        rc = npy__fail(err, -EIO, "%s: cannot determine size", path);
        goto out;
    }
    if ((unsigned long)n > NPY__MAX_FILE_BYTES) {
        rc = npy__fail(err, -EFBIG, "%s: %ld bytes, more than the cap", path, n);
        goto out;
    }
    buf = malloc((size_t)n + 1);
    if (!buf) {
        rc = npy__fail(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        rc = npy__fail(err, -EIO, "%s: short read", path);
        goto out;
    }
    rc = npy_parse(out, buf, (size_t)n, path, err);
out:
    free(buf);
    fclose(fp);
    return rc;
}

void npy_free(npy_array *a) {
    if (!a) return;
    free(a->data);
    memset(a, 0, sizeof *a);
}

const float *npy_f32(const npy_array *a) {
    return a->data && a->dtype == NPY_F32 ? a->data : NULL;
}

const double *npy_f64(const npy_array *a) {
    return a->data && a->dtype == NPY_F64 ? a->data : NULL;
}

const int64_t *npy_i64(const npy_array *a) {
    return a->data && a->dtype == NPY_I64 ? a->data : NULL;
}

double npy_get(const npy_array *a, size_t i) {
    if (!a->data || i >= a->n_elements) return 0.0;
    switch (a->dtype) {
    case NPY_F32: return ((const float *)a->data)[i];
    case NPY_F64: return ((const double *)a->data)[i];
    case NPY_I64: return (double)((const int64_t *)a->data)[i];
    }
    return 0.0;
}
