/* hf_dir.c - Hugging Face model directories and config.json (see hf_dir.h). */
#include "hf_dir.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct hf_config {
    char *label;             /* file path or caller label, owned */
    json_t *root;            /* the document; getters borrow from it */
    const char *model_type;  /* borrowed from root, NULL when absent */
    const char **archs;      /* n_archs, borrowed from root */
    size_t n_archs;
};

struct hf_dir {
    char *path;              /* as given, owned */
    hf_config *config;
    st_set *weights;
    bool sharded;
    unsigned tok_files;      /* bit (1u << hf_tok_file) per present file */
};

static const char *const hf__tok_names[HF_TOK_FILE_COUNT] = {
#define HF__TOK_NAME(e, file) file,
    HF_TOK_FILES(HF__TOK_NAME)
#undef HF__TOK_NAME
};

#define hf__fail eng_fail

static const char *hf__type_name(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* ---- hf_config ----------------------------------------------------------- */

int hf_config_parse(hf_config **out, const char *json, size_t len, const char *label,
                    st_error *err) {
    *out = NULL;
    if (!label) label = "config.json";
    if (!json && len) return hf__fail(err, -EINVAL, "%s: NULL buffer", label);
    int rc;
    hf_config *c = calloc(1, sizeof *c);
    if (!c || !(c->label = strdup(label))) {
        rc = hf__fail(err, -ENOMEM, "%s: out of memory", label);
        goto fail;
    }
    json_error_t je;
    c->root = json_loadb(json ? json : "", len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY,
                         &je);
    if (!c->root) {
        rc = hf__fail(err, -EINVAL, "%s: not valid JSON: %s (line %d, column %d)",
                      label, je.text, je.line, je.column);
        goto fail;
    }
    if (!json_is_object(c->root)) {
        rc = hf__fail(err, -EINVAL, "%s: top level is %s, expected an object", label,
                      hf__type_name(c->root));
        goto fail;
    }
    json_t *mt = json_object_get(c->root, "model_type");
    if (mt && !json_is_null(mt)) {
        if (!json_is_string(mt)) {
            rc = hf__fail(err, -EINVAL, "%s: \"model_type\" is %s, expected a string",
                          label, hf__type_name(mt));
            goto fail;
        }
        c->model_type = json_string_value(mt);
    }
    json_t *ar = json_object_get(c->root, "architectures");
    if (ar && !json_is_null(ar)) {
        if (!json_is_array(ar)) {
            rc = hf__fail(err, -EINVAL,
                          "%s: \"architectures\" is %s, expected an array of strings",
                          label, hf__type_name(ar));
            goto fail;
        }
        size_t n = json_array_size(ar);
        c->archs = calloc(n ? n : 1, sizeof *c->archs);
        if (!c->archs) {
            rc = hf__fail(err, -ENOMEM, "%s: out of memory", label);
            goto fail;
        }
        for (size_t i = 0; i < n; i++) {
            json_t *a = json_array_get(ar, i);
            if (!json_is_string(a)) {
                rc = hf__fail(err, -EINVAL,
                              "%s: \"architectures\"[%zu] is %s, expected a string",
                              label, i, hf__type_name(a));
                goto fail;
            }
            c->archs[c->n_archs++] = json_string_value(a);
        }
    }
    *out = c;
    return 0;
fail:
    hf_config_free(c);
    return rc;
}

/* Reads a whole regular file of at most cap bytes; *buf is new (caller
 * frees). */
static int hf__slurp(const char *path, size_t cap, char **buf, size_t *len,
                     st_error *err) {
    *buf = NULL;
    int rc;
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        rc = -errno;
        return hf__fail(err, rc, "%s: cannot open: %s", path, strerror(-rc));
    }
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = hf__fail(err, -EINVAL, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)sb.st_size > cap) {
        rc = hf__fail(err, -EFBIG, "%s: %lld bytes, more than the cap of %zu", path,
                      (long long)sb.st_size, cap);
        goto out;
    }
    size_t n = (size_t)sb.st_size;
    *buf = malloc(n + 1);
    if (!*buf) {
        rc = hf__fail(err, -ENOMEM, "%s: out of memory", path);
        goto out;
    }
    if (fread(*buf, 1, n, fp) != n) {
        free(*buf);
        *buf = NULL;
        rc = hf__fail(err, -EIO, "%s: short read", path);
        goto out;
    }
    (*buf)[n] = '\0';
    *len = n;
    rc = 0;
out:
    fclose(fp);
    return rc;
}

int hf_config_load(hf_config **out, const char *path, st_error *err) {
    *out = NULL;
    char *text;
    size_t len = 0;
    int rc = hf__slurp(path, HF_MAX_CONFIG_BYTES, &text, &len, err);
    if (rc != 0) return rc;
    rc = hf_config_parse(out, text, len, path, err);
    free(text);
    return rc;
}

void hf_config_free(hf_config *c) {
    if (!c) return;
    json_decref(c->root);
    free(c->archs);
    free(c->label);
    free(c);
}

const char *hf_config_label(const hf_config *c) { return c->label; }
const char *hf_config_model_type(const hf_config *c) { return c->model_type; }
size_t hf_config_n_architectures(const hf_config *c) { return c->n_archs; }

const char *hf_config_architecture(const hf_config *c, size_t i) {
    return i < c->n_archs ? c->archs[i] : NULL;
}

/* Finds key: first as a literal top-level key, then as a dotted path. *out
 * is NULL when absent or null. A path through a non-object is -EINVAL. */
static int hf__lookup(const hf_config *c, const char *key, json_t **out,
                      st_error *err) {
    *out = json_object_get(c->root, key);
    if (*out || !strchr(key, '.')) goto done;
    char *path = strdup(key);
    if (!path) return hf__fail(err, -ENOMEM, "%s: out of memory", c->label);
    json_t *cur = c->root;
    char *seg = path;
    for (;;) {
        char *dot = strchr(seg, '.');
        if (dot) *dot = '\0';
        cur = json_object_get(cur, seg);
        if (!cur || json_is_null(cur) || !dot) break;
        if (!json_is_object(cur)) {
            int rc = hf__fail(err, -EINVAL, "%s: key '%.*s' is %s, expected an object",
                              c->label, (int)(dot - path), key, hf__type_name(cur));
            free(path);
            return rc;
        }
        seg = dot + 1;
    }
    free(path);
    *out = cur;
done:
    if (*out && json_is_null(*out)) *out = NULL;
    return 0;
}

bool hf_config_has(const hf_config *c, const char *key) {
    json_t *v;
    return hf__lookup(c, key, &v, NULL) == 0 && v != NULL;
}

static int hf__wrong_type(const hf_config *c, const char *key, const json_t *v,
                          const char *want, st_error *err) {
    return hf__fail(err, -EINVAL, "%s: key '%s' is %s, expected %s", c->label, key,
                    hf__type_name(v), want);
}

static int hf__missing(const hf_config *c, const char *key, st_error *err) {
    return hf__fail(err, -ENOENT, "%s: required key '%s' is missing", c->label, key);
}

/* Each typed getter: *found tells whether a value was there. */
static int hf__get_int(const hf_config *c, const char *key, int64_t *out, bool *found,
                       st_error *err) {
    json_t *v;
    int rc = hf__lookup(c, key, &v, err);
    *found = false;
    if (rc != 0 || !v) return rc;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 9223372036854775808.0 is 2^63, the first double past INT64_MAX */
        if (d != floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0)
            return hf__fail(err, -EINVAL, "%s: key '%s' is %g, expected an integer",
                            c->label, key, d);
        *out = (int64_t)d;
    } else {
        return hf__wrong_type(c, key, v, "an integer", err);
    }
    *found = true;
    return 0;
}

static int hf__get_float(const hf_config *c, const char *key, double *out, bool *found,
                         st_error *err) {
    json_t *v;
    int rc = hf__lookup(c, key, &v, err);
    *found = false;
    if (rc != 0 || !v) return rc;
    if (!json_is_number(v)) return hf__wrong_type(c, key, v, "a number", err);
    *out = json_number_value(v);
    *found = true;
    return 0;
}

static int hf__get_bool(const hf_config *c, const char *key, bool *out, bool *found,
                        st_error *err) {
    json_t *v;
    int rc = hf__lookup(c, key, &v, err);
    *found = false;
    if (rc != 0 || !v) return rc;
    if (!json_is_boolean(v)) return hf__wrong_type(c, key, v, "a boolean", err);
    *out = json_is_true(v);
    *found = true;
    return 0;
}

static int hf__get_str(const hf_config *c, const char *key, const char **out,
                       bool *found, st_error *err) {
    json_t *v;
    int rc = hf__lookup(c, key, &v, err);
    *found = false;
    if (rc != 0 || !v) return rc;
    if (!json_is_string(v)) return hf__wrong_type(c, key, v, "a string", err);
    *out = json_string_value(v);
    *found = true;
    return 0;
}

/* Expands the defaulted and the required getter of one type. */
#define HF__GETTERS(suffix, type)                                                   \
    int hf_config_##suffix(const hf_config *c, const char *key, type def, type *out, \
                           st_error *err) {                                         \
        bool found;                                                                 \
        type v = def;                                                               \
        int rc = hf__get_##suffix(c, key, &v, &found, err);                         \
        if (rc == 0) *out = found ? v : def;                                        \
        return rc;                                                                  \
    }                                                                               \
    int hf_config_req_##suffix(const hf_config *c, const char *key, type *out,      \
                               st_error *err) {                                     \
        bool found;                                                                 \
        type v;                                                                     \
        int rc = hf__get_##suffix(c, key, &v, &found, err);                         \
        if (rc != 0) return rc;                                                     \
        if (!found) return hf__missing(c, key, err);                                \
        *out = v;                                                                   \
        return 0;                                                                   \
    }
HF__GETTERS(int, int64_t)
HF__GETTERS(float, double)
HF__GETTERS(bool, bool)
HF__GETTERS(str, const char *)
#undef HF__GETTERS

/* ---- hf_dir -------------------------------------------------------------- */

const char *hf_tok_file_name(hf_tok_file f) {
    return (unsigned)f < HF_TOK_FILE_COUNT ? hf__tok_names[f] : "?";
}

char *hf_dir_file_path(const hf_dir *d, const char *name) {
    size_t n = strlen(d->path) + 1 + strlen(name) + 1;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", d->path, name);
    return p;
}

static bool hf__is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Checks whether "<dir>/<name>" is a regular file; -ENOMEM on failure. */
static int hf__has(const hf_dir *d, const char *name, bool *yes) {
    char *p = hf_dir_file_path(d, name);
    if (!p) return -ENOMEM;
    *yes = hf__is_file(p);
    free(p);
    return 0;
}

int hf_dir_open(hf_dir **out, const char *path, st_error *err) {
    *out = NULL;
    char *p = NULL;
    int rc;
    struct stat sb;
    if (stat(path, &sb) != 0) {
        rc = -errno;
        return hf__fail(err, rc, "%s: cannot open model directory: %s", path,
                        strerror(-rc));
    }
    if (!S_ISDIR(sb.st_mode)) return hf__fail(err, -ENOTDIR, "%s: not a directory", path);
    hf_dir *d = calloc(1, sizeof *d);
    if (!d || !(d->path = strdup(path))) {
        rc = hf__fail(err, -ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    size_t plen = strlen(d->path);
    while (plen > 1 && d->path[plen - 1] == '/') d->path[--plen] = '\0';

    if (!(p = hf_dir_file_path(d, "config.json"))) goto oom;
    if ((rc = hf_config_load(&d->config, p, err)) != 0) goto fail;
    free(p);
    p = NULL;

    bool single, index;
    if (hf__has(d, "model.safetensors", &single) != 0 ||
        hf__has(d, "model.safetensors.index.json", &index) != 0)
        goto oom;
    if (single || index) {
        p = hf_dir_file_path(d, single ? "model.safetensors" : "model.safetensors.index.json");
        if (!p) goto oom;
        rc = single ? st_set_open_file(&d->weights, p, err)
                    : st_set_open_index(&d->weights, p, err);
        if (rc != 0) goto fail;
        d->sharded = !single;
        free(p);
        p = NULL;
    } else {
        bool bin = false;
        if (hf__has(d, "pytorch_model.bin", &bin) != 0) goto oom;
        rc = hf__fail(err, -ENOENT,
                      "%s: no model.safetensors or model.safetensors.index.json%s", path,
                      bin ? " (pytorch_model.bin is present, but only safetensors "
                            "weights are supported)" : "");
        goto fail;
    }

    for (int i = 0; i < HF_TOK_FILE_COUNT; i++) {
        bool yes;
        if (hf__has(d, hf__tok_names[i], &yes) != 0) goto oom;
        if (yes) d->tok_files |= 1u << i;
    }
    *out = d;
    return 0;
oom:
    rc = hf__fail(err, -ENOMEM, "%s: out of memory", path);
fail:
    free(p);
    hf_dir_close(d);
    return rc;
}

void hf_dir_close(hf_dir *d) {
    if (!d) return;
    st_set_close(d->weights);
    hf_config_free(d->config);
    free(d->path);
    free(d);
}

const char *hf_dir_path(const hf_dir *d) { return d->path; }
const hf_config *hf_dir_config(const hf_dir *d) { return d->config; }
const st_set *hf_dir_weights(const hf_dir *d) { return d->weights; }
bool hf_dir_is_sharded(const hf_dir *d) { return d->sharded; }
unsigned hf_dir_tok_files(const hf_dir *d) { return d->tok_files; }

bool hf_dir_has_tok_file(const hf_dir *d, hf_tok_file f) {
    return (unsigned)f < HF_TOK_FILE_COUNT && (d->tok_files & (1u << f));
}

const st_tensor *hf_dir_find(const hf_dir *d, const char *name) {
    return st_set_find(d->weights, name, NULL);
}

int hf_dir_tensor(const hf_dir *d, const char *name, const st_tensor **out,
                  st_error *err) {
    *out = hf_dir_find(d, name);
    if (!*out) return hf__fail(err, -ENOENT, "%s: tensor '%s' not found", d->path, name);
    return 0;
}

int hf_dir_tensor_f32(const hf_dir *d, const char *name, float **out,
                      const st_tensor **t, st_error *err) {
    *out = NULL;
    const st_tensor *tt;
    int rc = hf_dir_tensor(d, name, &tt, err);
    if (rc != 0) return rc;
    if (t) *t = tt;
    return st_tensor_to_f32(tt, out, err);
}
