/* trn_ckpt.c - training checkpoints: writing atomically, parsing against a
 * cursor, matching the parameter list, restoring (trn_ckpt.h). */
#include "trn_ckpt.h"

#include "atomic_file.h"
#include "fnv.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const uint8_t trn_ckpt__magic[8] = {'A', 'L', 'G', 'N', 'C', 'K', 'P', 'T'};

#define TRN_CKPT__MAX_STEP ((int64_t)1 << 53)

/* Smallest possible parameter record: a 1-byte name, n = 0. */
#define TRN_CKPT__MIN_RECORD (4u + 1u + 8u)

/* ---- little-endian encoding and the checksum ----------------------------- */

static void trn_ckpt__le32(uint8_t *b, uint32_t x) {
    for (int i = 0; i < 4; i++) b[i] = (uint8_t)(x >> (8 * i));
}

static void trn_ckpt__le64(uint8_t *b, uint64_t x) {
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)(x >> (8 * i));
}

static uint32_t trn_ckpt__rd32(const uint8_t *b) {
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static uint64_t trn_ckpt__rd64(const uint8_t *b) {
    return (uint64_t)trn_ckpt__rd32(b) | (uint64_t)trn_ckpt__rd32(b + 4) << 32;
}

/* dst: [n] floats from 4n little-endian bytes at src (unaligned). */
static void trn_ckpt__get_f32s(float *dst, const uint8_t *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u = trn_ckpt__rd32(src + 4 * i);
        memcpy(&dst[i], &u, 4);
    }
}

/* ---- writing ------------------------------------------------------------- */

typedef struct trn_ckpt__w {
    FILE *f;
    uint64_t hash;  /* of everything written so far */
    int err_no;     /* first write failure, 0 while all is well */
} trn_ckpt__w;

static void trn_ckpt__put(trn_ckpt__w *w, const void *p, size_t n) {
    if (w->err_no || n == 0) return;
    w->hash = fnv1a64(w->hash, p, n);
    if (fwrite(p, 1, n, w->f) != n) w->err_no = errno ? errno : EIO;
}

static void trn_ckpt__put_u32(trn_ckpt__w *w, uint32_t x) {
    uint8_t b[4];
    trn_ckpt__le32(b, x);
    trn_ckpt__put(w, b, 4);
}

static void trn_ckpt__put_u64(trn_ckpt__w *w, uint64_t x) {
    uint8_t b[8];
    trn_ckpt__le64(b, x);
    trn_ckpt__put(w, b, 8);
}

static void trn_ckpt__put_f64(trn_ckpt__w *w, double x) {
    uint64_t u;
    memcpy(&u, &x, 8);
    trn_ckpt__put_u64(w, u);
}

static void trn_ckpt__put_f32s(trn_ckpt__w *w, const float *x, size_t n) {
    uint8_t buf[4096];
    while (n) {
        size_t k = n < sizeof buf / 4 ? n : sizeof buf / 4;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            trn_ckpt__le32(buf + 4 * i, u);
        }
        trn_ckpt__put(w, buf, 4 * k);
        x += k;
        n -= k;
    }
}

static void trn_ckpt__put_header(trn_ckpt__w *w, const trn_optim *o, int n_rngs, int n_params,
                                 size_t blob_len) {
    const trn_optim_cfg *c = &o->cfg;
    trn_ckpt__put(w, trn_ckpt__magic, sizeof trn_ckpt__magic);
    trn_ckpt__put_u32(w, TRN_CKPT_VERSION);
    trn_ckpt__put_u32(w, 0);
    trn_ckpt__put_u64(w, (uint64_t)o->step);
    trn_ckpt__put_u64(w, (uint64_t)o->n_skipped);
    trn_ckpt__put_u32(w, (uint32_t)c->sched.kind);
    trn_ckpt__put_u32(w, 0);
    trn_ckpt__put_f64(w, c->sched.lr);
    trn_ckpt__put_f64(w, c->sched.min_lr);
    trn_ckpt__put_u64(w, (uint64_t)c->sched.warmup_steps);
    trn_ckpt__put_u64(w, (uint64_t)c->sched.total_steps);
    trn_ckpt__put_f64(w, c->beta1);
    trn_ckpt__put_f64(w, c->beta2);
    trn_ckpt__put_f64(w, c->eps);
    trn_ckpt__put_f64(w, c->weight_decay);
    trn_ckpt__put_f64(w, c->max_grad_norm);
    trn_ckpt__put_u32(w, (uint32_t)n_rngs);
    trn_ckpt__put_u32(w, (uint32_t)n_params);
    trn_ckpt__put_u64(w, (uint64_t)blob_len);
}

static void trn_ckpt__put_body(trn_ckpt__w *w, const trn_params *ps, const trn_optim *o,
                               const trn_ckpt_extra *x) {
    for (int i = 0; i < x->n_rngs; i++)
        for (int k = 0; k < 4; k++) trn_ckpt__put_u64(w, x->rngs[i].s[k]);
    trn_ckpt__put(w, x->blob, x->blob_len);
    for (int i = 0; i < ps->n; i++) {
        const trn_param *p = &ps->p[i];
        size_t name_len = strnlen(p->name, TRN_PARAM_NAME_MAX);
        trn_ckpt__put_u32(w, (uint32_t)name_len);
        trn_ckpt__put(w, p->name, name_len);
        trn_ckpt__put_u64(w, (uint64_t)p->n);
        trn_ckpt__put_f32s(w, p->value, p->n);
        trn_ckpt__put_f32s(w, o->m + o->off[i], p->n);
        trn_ckpt__put_f32s(w, o->v + o->off[i], p->n);
    }
}

static int trn_ckpt__check_save(const trn_params *ps, const trn_optim *o,
                                const trn_ckpt_extra *x, const char *path, eng_err *err) {
    eng_err e = {0};
    if (trn_optim_check_params(o, ps, &e))
        return eng_fail(err, -EINVAL, "%s: %s", path, e.msg);
    if (x->n_rngs < 0 || x->n_rngs > TRN_CKPT_MAX_RNGS || (x->n_rngs && !x->rngs))
        return eng_fail(err, -EINVAL, "%s: %d generators (at most %d, and an array)", path,
                        x->n_rngs, TRN_CKPT_MAX_RNGS);
    if (x->blob_len && !x->blob)
        return eng_fail(err, -EINVAL, "%s: blob of %zu bytes without data", path, x->blob_len);
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].name[0] == '\0')
            return eng_fail(err, -EINVAL, "%s: parameter %d has no name", path, i);
    return 0;
}

/* Writes the whole file into af (atomic_file.h: committed by the caller). */
static int trn_ckpt__write(atomic_file *af, const trn_params *ps, const trn_optim *o,
                           const trn_ckpt_extra *x, eng_err *err) {
    trn_ckpt__w w = {.f = af->f, .hash = FNV1A64_BASIS};
    trn_ckpt__put_header(&w, o, x->n_rngs, ps->n, x->blob_len);
    trn_ckpt__put_body(&w, ps, o, x);
    uint64_t sum = w.hash;
    trn_ckpt__put_u64(&w, sum);
    if (w.err_no)
        return eng_fail(err, -w.err_no, "%s: cannot write: %s", af->tmp, strerror(w.err_no));
    return 0;
}

int trn_ckpt_save(const char *path, const trn_params *ps, const trn_optim *o,
                  const trn_ckpt_extra *x, eng_err *err) {
    static const trn_ckpt_extra none = {0};
    if (!x) x = &none;
    int rc = trn_ckpt__check_save(ps, o, x, path, err);
    if (rc) return rc;
    /* a stale partial file is never mistaken for a checkpoint: see
     * atomic_file.h */
    atomic_file af;
    if ((rc = atomic_file_open(&af, path, err))) return rc;
    if ((rc = trn_ckpt__write(&af, ps, o, x, err))) {
        atomic_file_abort(&af);
        return rc;
    }
    return atomic_file_commit(&af, err);
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct trn_ckpt__entry {
    const uint8_t *name;  /* name_len bytes, not NUL-terminated */
    uint32_t name_len;
    size_t n;
    const uint8_t *data;  /* 12 n bytes: value[n], m[n], v[n] as f32 LE */
} trn_ckpt__entry;

typedef struct trn_ckpt__file {
    trn_ckpt_info info;
    const uint8_t *rngs;    /* n_rngs x 32 bytes */
    const uint8_t *blob;    /* blob_len bytes */
    trn_ckpt__entry *e;     /* [n_params] owned */
} trn_ckpt__file;

/* A cursor over the bytes before the checksum. */
typedef struct trn_ckpt__cur {
    const uint8_t *base;
    size_t pos, end;
    const char *label;
    eng_err *err;
} trn_ckpt__cur;

/* Points *out at the next n bytes; -EINVAL naming what was being read when
 * fewer remain. */
static int trn_ckpt__take(trn_ckpt__cur *c, size_t n, const uint8_t **out, const char *what) {
    if (n > c->end - c->pos) {
        /* A constant return, so the compiler sees *out set whenever 0 is. */
        eng_fail(c->err, -EINVAL, "%s: truncated: %s needs %zu bytes at offset %zu, %zu remain",
                 c->label, what, n, c->pos, c->end - c->pos);
        return -EINVAL;
    }
    *out = c->base + c->pos;
    c->pos += n;
    return 0;
}

static int trn_ckpt__u32(trn_ckpt__cur *c, uint32_t *x, const char *what) {
    const uint8_t *b;
    int rc = trn_ckpt__take(c, 4, &b, what);
    if (!rc) *x = trn_ckpt__rd32(b);
    return rc;
}

static int trn_ckpt__u64(trn_ckpt__cur *c, uint64_t *x, const char *what) {
    const uint8_t *b;
    int rc = trn_ckpt__take(c, 8, &b, what);
    if (!rc) *x = trn_ckpt__rd64(b);
    return rc;
}

static int trn_ckpt__i64(trn_ckpt__cur *c, int64_t *x, const char *what) {
    uint64_t u;
    int rc = trn_ckpt__u64(c, &u, what);
    if (!rc) *x = (int64_t)u;
    return rc;
}

static int trn_ckpt__f64(trn_ckpt__cur *c, double *x, const char *what) {
    uint64_t u;
    int rc = trn_ckpt__u64(c, &u, what);
    if (!rc) memcpy(x, &u, 8);
    return rc;
}

static int trn_ckpt__parse_cfg(trn_ckpt__cur *c, trn_optim_cfg *cfg) {
    uint32_t kind, reserved;
    int rc = trn_ckpt__u32(c, &kind, "schedule kind");
    if (!rc) rc = trn_ckpt__u32(c, &reserved, "reserved field");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->sched.lr, "lr");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->sched.min_lr, "min_lr");
    if (!rc) rc = trn_ckpt__i64(c, &cfg->sched.warmup_steps, "warmup_steps");
    if (!rc) rc = trn_ckpt__i64(c, &cfg->sched.total_steps, "total_steps");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->beta1, "beta1");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->beta2, "beta2");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->eps, "eps");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->weight_decay, "weight_decay");
    if (!rc) rc = trn_ckpt__f64(c, &cfg->max_grad_norm, "max_grad_norm");
    if (rc) return rc;
    if (reserved != 0)
        return eng_fail(c->err, -EINVAL, "%s: reserved field is %u, not 0", c->label, reserved);
    /* Range-check the raw value before it becomes an enum. */
    cfg->sched.kind = kind <= TRN_SCHED_COSINE ? (trn_sched_kind)kind : (trn_sched_kind)-1;
    eng_err e = {0};
    if (trn_optim_cfg_check(cfg, &e))
        return eng_fail(c->err, -EINVAL, "%s: bad stored settings: %s", c->label, e.msg);
    return 0;
}

/* Magic, version, counters, settings and the sizes of what follows. */
static int trn_ckpt__parse_header(trn_ckpt__cur *c, trn_ckpt_info *info) {
    const uint8_t *magic;
    uint32_t version, reserved, n_rngs, n_params;
    uint64_t blob_len;
    int rc = trn_ckpt__take(c, 8, &magic, "magic");
    if (rc) return rc;
    if (memcmp(magic, trn_ckpt__magic, 8) != 0)
        return eng_fail(c->err, -EINVAL, "%s: not a checkpoint (bad magic)", c->label);
    rc = trn_ckpt__u32(c, &version, "version");
    if (!rc && version != TRN_CKPT_VERSION)
        return eng_fail(c->err, -EINVAL, "%s: unsupported version %u (this build reads %d)",
                        c->label, version, TRN_CKPT_VERSION);
    if (!rc) rc = trn_ckpt__u32(c, &reserved, "reserved field");
    if (!rc && reserved != 0)
        return eng_fail(c->err, -EINVAL, "%s: reserved field is %u, not 0", c->label, reserved);
    if (!rc) rc = trn_ckpt__i64(c, &info->step, "step");
    if (!rc) rc = trn_ckpt__i64(c, &info->n_skipped, "n_skipped");
    if (!rc) rc = trn_ckpt__parse_cfg(c, &info->cfg);
    if (!rc) rc = trn_ckpt__u32(c, &n_rngs, "n_rngs");
    if (!rc) rc = trn_ckpt__u32(c, &n_params, "n_params");
    if (!rc) rc = trn_ckpt__u64(c, &blob_len, "blob_len");
    if (rc) return rc;
    /* 2^53: counts exact in the schedule's doubles, and far from overflow. */
    if (info->step < 0 || info->n_skipped < 0 || info->step > TRN_CKPT__MAX_STEP ||
        info->n_skipped > TRN_CKPT__MAX_STEP)
        return eng_fail(c->err, -EINVAL, "%s: step %lld or n_skipped %lld not in [0, 2^53]",
                        c->label, (long long)info->step, (long long)info->n_skipped);
    if (n_rngs > TRN_CKPT_MAX_RNGS)
        return eng_fail(c->err, -EINVAL, "%s: %u generators, more than %d", c->label, n_rngs,
                        TRN_CKPT_MAX_RNGS);
    /* Caps before anything is allocated from these counts. */
    if (blob_len > c->end - c->pos)
        return eng_fail(c->err, -EINVAL,
                        "%s: truncated or corrupt: a blob of %llu bytes, %zu bytes remain",
                        c->label, (unsigned long long)blob_len, c->end - c->pos);
    if (n_params > (c->end - c->pos) / TRN_CKPT__MIN_RECORD || n_params > INT32_MAX)
        return eng_fail(c->err, -EINVAL,
                        "%s: truncated or corrupt: %u parameters cannot fit in %zu bytes",
                        c->label, n_params, c->end - c->pos);
    info->n_rngs = (int)n_rngs;
    info->n_params = (int)n_params;
    info->blob_len = (size_t)blob_len;
    return 0;
}

static int trn_ckpt__parse_entry(trn_ckpt__cur *c, int i, trn_ckpt__entry *e) {
    uint32_t name_len;
    uint64_t n;
    int rc = trn_ckpt__u32(c, &name_len, "parameter name length");
    if (rc) return rc;
    if (name_len == 0 || name_len >= TRN_PARAM_NAME_MAX)
        return eng_fail(c->err, -EINVAL, "%s: parameter %d: name length %u not in [1, %d]",
                        c->label, i, name_len, TRN_PARAM_NAME_MAX - 1);
    rc = trn_ckpt__take(c, name_len, &e->name, "parameter name");
    if (!rc) rc = trn_ckpt__u64(c, &n, "parameter size");
    if (rc) return rc;
    e->name_len = name_len;
    if (memchr(e->name, '\0', name_len))
        return eng_fail(c->err, -EINVAL, "%s: parameter %d: NUL byte in its name", c->label, i);
    /* 12 bytes per element (value, m, v); dividing first cannot wrap. */
    if (n > (c->end - c->pos) / 12)
        return eng_fail(c->err, -EINVAL,
                        "%s: truncated: parameter '%.*s' needs %llu x 12 bytes at offset %zu, "
                        "%zu remain",
                        c->label, (int)name_len, (const char *)e->name, (unsigned long long)n,
                        c->pos, c->end - c->pos);
    e->n = (size_t)n;
    return trn_ckpt__take(c, 12 * e->n, &e->data, "parameter data");
}

static int trn_ckpt__parse_entries(trn_ckpt__cur *c, trn_ckpt__file *f) {
    int n = f->info.n_params;
    f->e = calloc(n ? (size_t)n : 1, sizeof *f->e);
    if (!f->e) return eng_fail(c->err, -ENOMEM, "%s: out of memory", c->label);
    for (int i = 0; i < n; i++) {
        int rc = trn_ckpt__parse_entry(c, i, &f->e[i]);
        if (rc) return rc;
        f->info.n_elements += f->e[i].n;
    }
    if (c->pos != c->end)
        return eng_fail(c->err, -EINVAL, "%s: %zu unexpected bytes after the last parameter",
                        c->label, c->end - c->pos);
    return 0;
}

/* Parses and checksums a whole image. On success f->e is owned by the
 * caller (free it even on failure); the pointers borrow buf. */
static int trn_ckpt__parse(const uint8_t *buf, size_t len, const char *label, trn_ckpt__file *f,
                           eng_err *err) {
    memset(f, 0, sizeof *f);
    if (len < sizeof trn_ckpt__magic + 8)
        return eng_fail(err, -EINVAL, "%s: %zu bytes, too small to be a checkpoint", label, len);
    /* Structure first, checksum last: a message says what is wrong when it
     * can, and a fuzzer reaches the parser without forging checksums. */
    trn_ckpt__cur c = {.base = buf, .end = len - 8, .label = label, .err = err};
    int rc = trn_ckpt__parse_header(&c, &f->info);
    if (!rc) rc = trn_ckpt__take(&c, (size_t)f->info.n_rngs * 32, &f->rngs, "generator states");
    if (!rc) rc = trn_ckpt__take(&c, f->info.blob_len, &f->blob, "blob");
    if (!rc) rc = trn_ckpt__parse_entries(&c, f);
    if (rc) return rc;
    uint64_t want = trn_ckpt__rd64(buf + len - 8);
    if (fnv1a64(FNV1A64_BASIS, buf, len - 8) != want)
        return eng_fail(err, -EINVAL, "%s: checksum mismatch: the file is corrupt", label);
    return 0;
}

/* ---- matching and restoring ---------------------------------------------- */

static bool trn_ckpt__same_name(const trn_ckpt__entry *e, const char *name) {
    return strlen(name) == e->name_len && memcmp(name, e->name, e->name_len) == 0;
}

/* The first difference between the file's list and the caller's. */
static int trn_ckpt__match(const trn_ckpt__file *f, const trn_params *ps, const char *label,
                           eng_err *err) {
    int n = ps->n < f->info.n_params ? ps->n : f->info.n_params;
    for (int i = 0; i < n; i++) {
        const trn_ckpt__entry *e = &f->e[i];
        const trn_param *p = &ps->p[i];
        if (!trn_ckpt__same_name(e, p->name) || e->n != p->n)
            return eng_fail(err, -EINVAL,
                            "%s: parameter %d: the checkpoint has '%.*s' [%zu], the model "
                            "'%s' [%zu]",
                            label, i, (int)e->name_len, (const char *)e->name, e->n, p->name,
                            p->n);
    }
    if (f->info.n_params > n)
        return eng_fail(err, -EINVAL,
                        "%s: the checkpoint has parameter '%.*s' beyond the model's %d", label,
                        (int)f->e[n].name_len, (const char *)f->e[n].name, ps->n);
    if (ps->n > n)
        return eng_fail(err, -EINVAL, "%s: model parameter '%s' is not in the checkpoint (%d)",
                        label, ps->p[n].name, f->info.n_params);
    return 0;
}

/* A new NUL-terminated copy of the blob, or -ENOMEM. */
static int trn_ckpt__copy_blob(const trn_ckpt__file *f, void **blob, size_t *blob_len,
                               const char *label, eng_err *err) {
    if (!blob) return 0;
    char *b = malloc(f->info.blob_len + 1);
    if (!b) return eng_fail(err, -ENOMEM, "%s: out of memory for the blob", label);
    if (f->info.blob_len) memcpy(b, f->blob, f->info.blob_len);
    b[f->info.blob_len] = '\0';
    *blob = b;
    if (blob_len) *blob_len = f->info.blob_len;
    return 0;
}

/* Everything checked: cannot fail. */
static void trn_ckpt__apply(const trn_ckpt__file *f, trn_params *ps, trn_optim *o,
                            trn_ckpt_extra *x) {
    for (int i = 0; i < ps->n; i++) {
        const trn_ckpt__entry *e = &f->e[i];
        trn_ckpt__get_f32s(ps->p[i].value, e->data, e->n);
        trn_ckpt__get_f32s(o->m + o->off[i], e->data + 4 * e->n, e->n);
        trn_ckpt__get_f32s(o->v + o->off[i], e->data + 8 * e->n, e->n);
    }
    for (int i = 0; i < f->info.n_rngs; i++)
        for (int k = 0; k < 4; k++) x->rngs[i].s[k] = trn_ckpt__rd64(f->rngs + 32 * i + 8 * k);
    o->cfg = f->info.cfg;
    o->step = f->info.step;
    o->n_skipped = f->info.n_skipped;
}

int trn_ckpt_load_mem(const void *buf, size_t len, const char *label, trn_params *ps,
                      trn_optim *o, trn_ckpt_extra *x, void **blob, size_t *blob_len,
                      eng_err *err) {
    trn_ckpt_extra none = {0};
    if (!x) x = &none;
    if (!label) label = "<memory>";
    if (blob) *blob = NULL;
    trn_ckpt__file f;
    eng_err e = {0};
    int rc = trn_ckpt__parse(buf, len, label, &f, err);
    if (!rc) rc = trn_ckpt__match(&f, ps, label, err);
    if (!rc && trn_optim_check_params(o, ps, &e))
        rc = eng_fail(err, -EINVAL, "%s: %s", label, e.msg);
    if (!rc && x->n_rngs != f.info.n_rngs)
        rc = eng_fail(err, -EINVAL, "%s: the checkpoint has %d generators, the caller %d", label,
                      f.info.n_rngs, x->n_rngs);
    if (!rc && x->n_rngs && !x->rngs)
        rc = eng_fail(err, -EINVAL, "%s: no array for %d generators", label, x->n_rngs);
    if (!rc) rc = trn_ckpt__copy_blob(&f, blob, blob_len, label, err);
    if (!rc) trn_ckpt__apply(&f, ps, o, x);
    free(f.e);
    return rc;
}

int trn_ckpt_peek_mem(const void *buf, size_t len, const char *label, trn_ckpt_info *info,
                      void **blob, size_t *blob_len, eng_err *err) {
    if (!label) label = "<memory>";
    if (blob) *blob = NULL;
    trn_ckpt__file f;
    int rc = trn_ckpt__parse(buf, len, label, &f, err);
    if (!rc) rc = trn_ckpt__copy_blob(&f, blob, blob_len, label, err);
    if (!rc) *info = f.info;
    free(f.e);
    return rc;
}

/* ---- files --------------------------------------------------------------- */

/* Maps path read-only. *len 0 gives *map NULL (mmap refuses empty maps). */
static int trn_ckpt__map(const char *path, void **map, size_t *len, eng_err *err) {
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return eng_fail(err, -errno, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int rc = 0;
    if (fstat(fd, &sb) != 0)
        rc = eng_fail(err, -errno, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        rc = eng_fail(err, -EINVAL, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > SIZE_MAX)
        rc = eng_fail(err, -EFBIG, "%s: too large to map", path);
    if (!rc && sb.st_size > 0) {
        void *p = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED)
            rc = eng_fail(err, -errno, "%s: cannot mmap: %s", path, strerror(errno));
        else {
            *map = p;
            *len = (size_t)sb.st_size;
        }
    }
    close(fd);
    return rc;
}

int trn_ckpt_load(const char *path, trn_params *ps, trn_optim *o, trn_ckpt_extra *x,
                  void **blob, size_t *blob_len, eng_err *err) {
    void *map;
    size_t len;
    if (blob) *blob = NULL;
    int rc = trn_ckpt__map(path, &map, &len, err);
    if (rc) return rc;
    static const uint8_t empty[1];
    rc = trn_ckpt_load_mem(map ? map : empty, len, path, ps, o, x, blob, blob_len, err);
    if (map) munmap(map, len);
    return rc;
}

int trn_ckpt_peek(const char *path, trn_ckpt_info *info, void **blob, size_t *blob_len,
                  eng_err *err) {
    void *map;
    size_t len;
    if (blob) *blob = NULL;
    int rc = trn_ckpt__map(path, &map, &len, err);
    if (rc) return rc;
    static const uint8_t empty[1];
    rc = trn_ckpt_peek_mem(map ? map : empty, len, path, info, blob, blob_len, err);
    if (map) munmap(map, len);
    return rc;
}
