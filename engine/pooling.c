/* pooling.c - sentence embeddings from hidden states, and the pooling
 * configuration of a model; see pooling.h. */
#include "pooling.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "gguf.h"
#include "model.h"

void pool_apply(pool_kind k, const float *hidden, int T, int C, float *out)
{
    if (C <= 0)
        return;
    if (T <= 0) {
        memset(out, 0, (size_t)C * sizeof(float));
        return;
    }
    switch (k) {
    case POOL_CLS:
        memcpy(out, hidden, (size_t)C * sizeof(float));
        return;
    case POOL_LAST:
        memcpy(out, hidden + (size_t)(T - 1) * C, (size_t)C * sizeof(float));
        return;
    case POOL_MEAN:
        break;
    }
    for (int c = 0; c < C; c++) {
        double s = 0.0;
        for (int t = 0; t < T; t++)
            s += hidden[(size_t)t * C + c];
        out[c] = (float)(s / T);
    }
}

void pool_l2_normalize(float *v, int n)
{
    double s = 0.0;
    for (int i = 0; i < n; i++)
        s += (double)v[i] * v[i];
    double norm = sqrt(s);
    float inv = (float)(1.0 / (norm > 1e-12 ? norm : 1e-12));
    for (int i = 0; i < n; i++)
        v[i] *= inv;
}

const char *pool_kind_name(pool_kind k)
{
    switch (k) {
    case POOL_MEAN: return "mean";
    case POOL_CLS: return "cls";
    case POOL_LAST: return "last";
    }
    return "?";
}

/* ---- configuration ------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int pool__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* Loads dir/name as a JSON object (an array when array): 0 and *out (new
 * reference), -ENOENT (quietly, *out NULL) when the file does not exist,
 * -EINVAL with a message when it does not parse or has another type. */
static int pool__json(const char *dir, const char *name, bool array, json_t **out,
                      char *err, size_t errlen)
{
    char path[4096];
    *out = NULL;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return pool__fail(err, errlen, -EINVAL, "%s/%s: path too long", dir, name);
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -ENOENT;
    json_error_t je;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!j)
        return pool__fail(err, errlen, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
    if (array ? !json_is_array(j) : !json_is_object(j)) {
        json_decref(j);
        return pool__fail(err, errlen, -EINVAL, "%s: not a JSON %s", path,
                          array ? "array" : "object");
    }
    *out = j;
    return 0;
}

/* A boolean member (absent: false); -EINVAL when of another type. */
static int pool__bool(json_t *o, const char *key, const char *label, bool *out, char *err,
                      size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = false;
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_boolean(v))
        return pool__fail(err, errlen, -EINVAL, "%s: \"%s\" is not a boolean", label, key);
    *out = json_is_true(v);
    return 0;
}

/* A positive integer member, or 0 when absent. */
static int pool__int(json_t *o, const char *key, const char *label, int *out, char *err,
                     size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX)
        return pool__fail(err, errlen, -EINVAL, "%s: \"%s\" is not a positive integer", label,
                          key);
    *out = (int)json_integer_value(v);
    return 0;
}

/* The Pooling module's config.json (dir/sub/config.json). */
static int pool__pooling_cfg(const char *dir, const char *sub, pool_kind *kind, char *err,
                             size_t errlen)
{
    char name[1024], label[4096];
    snprintf(name, sizeof(name), "%s%sconfig.json", sub, sub[0] ? "/" : "");
    snprintf(label, sizeof(label), "%s/%s", dir, name);
    json_t *pc = NULL;
    int rc = pool__json(dir, name, false, &pc, err, errlen);
    if (rc == -ENOENT)
        return pool__fail(err, errlen, -EINVAL, "%s: the Pooling module's config is missing",
                          label);
    if (rc != 0)
        return rc;
    bool mean, cls, last;
    if ((rc = pool__bool(pc, "pooling_mode_mean_tokens", label, &mean, err, errlen)) ||
        (rc = pool__bool(pc, "pooling_mode_cls_token", label, &cls, err, errlen)) ||
        (rc = pool__bool(pc, "pooling_mode_lasttoken", label, &last, err, errlen)))
        goto done;
    if (mean + cls + last != 1) {
        rc = pool__fail(err, errlen, -ENOTSUP,
                        "%s: exactly one of pooling_mode_mean_tokens, cls_token and lasttoken "
                        "must be set (other modes are not supported)", label);
        goto done;
    }
    *kind = mean ? POOL_MEAN : cls ? POOL_CLS : POOL_LAST;
done:
    json_decref(pc);
    return rc;
}

static int pool__hf(const char *dir, pool_kind *kind, bool *normalize, int *max_seq_len,
                    char *err, size_t errlen)
{
    char label[4096];
    json_t *cfg = NULL, *mods = NULL, *sbc = NULL;
    int rc = pool__json(dir, "config.json", false, &cfg, err, errlen);
    if (rc == -ENOENT)
        return pool__fail(err, errlen, -ENOENT, "%s/config.json: no such file", dir);
    if (rc != 0)
        return rc;
    snprintf(label, sizeof(label), "%s/config.json", dir);
    json_t *mt = json_object_get(cfg, "model_type");
    model_arch_id a = model_arch_find(json_is_string(mt) ? json_string_value(mt) : NULL,
                                      MODEL_FMT_HF);
    bool enc = a != MODEL_ARCH_COUNT && model_arch_kind(a) == MODEL_KIND_ENCODER;
    *kind = enc ? POOL_MEAN : POOL_LAST;
    *normalize = true;
    *max_seq_len = 0;
    if ((rc = pool__int(cfg, "max_position_embeddings", label, max_seq_len, err, errlen)) ||
        (rc = pool__int(cfg, "n_positions", label, max_seq_len, err, errlen)))
        goto done;

    rc = pool__json(dir, "modules.json", true, &mods, err, errlen);
    if (rc == 0) {
        snprintf(label, sizeof(label), "%s/modules.json", dir);
        *normalize = false;
        size_t i;
        json_t *mod;
        json_array_foreach(mods, i, mod) {
            json_t *ty = json_object_get(mod, "type"), *pa = json_object_get(mod, "path");
            if (!json_is_string(ty)) {
                rc = pool__fail(err, errlen, -EINVAL, "%s: module %zu has no \"type\"", label,
                                i);
                goto done;
            }
            const char *t = json_string_value(ty);
            const char *dot = strrchr(t, '.');
            const char *cls = dot ? dot + 1 : t;
            if (strcmp(cls, "Normalize") == 0) {
                *normalize = true;
            } else if (strcmp(cls, "Pooling") == 0) {
                if ((rc = pool__pooling_cfg(dir, json_is_string(pa) ? json_string_value(pa)
                                                                    : "", kind, err, errlen)))
                    goto done;
            }
        }
    } else if (rc == -ENOENT) {
        /* no modules.json: a lone 1_Pooling folder still says the mode */
        struct stat sb;
        snprintf(label, sizeof(label), "%s/1_Pooling/config.json", dir);
        rc = stat(label, &sb) == 0 ? pool__pooling_cfg(dir, "1_Pooling", kind, err, errlen) : 0;
        if (rc != 0)
            goto done;
    } else {
        goto done;
    }

    rc = pool__json(dir, "sentence_bert_config.json", false, &sbc, err, errlen);
    if (rc == 0) {
        snprintf(label, sizeof(label), "%s/sentence_bert_config.json", dir);
        rc = pool__int(sbc, "max_seq_length", label, max_seq_len, err, errlen);
    } else if (rc == -ENOENT) {
        rc = 0;
    }
done:
    json_decref(cfg);
    json_decref(mods);
    json_decref(sbc);
    return rc;
}

static int pool__gguf(const char *path, pool_kind *kind, bool *normalize, int *max_seq_len,
                      char *err, size_t errlen)
{
    gguf_file *g = NULL;
    int rc = gguf_open(&g, path, err, errlen);
    if (rc != 0)
        return rc == GGUF_ENOMEM ? -ENOMEM : rc == GGUF_EIO ? -EIO : -EINVAL;
    const char *arch = NULL;
    if (gguf_get_str(g, "general.architecture", &arch, NULL, NULL, 0) != 0) {
        rc = pool__fail(err, errlen, -EINVAL, "%s: missing or bad general.architecture", path);
        goto done;
    }
    model_arch_id a = model_arch_find(arch, MODEL_FMT_GGUF);
    bool enc = a != MODEL_ARCH_COUNT && model_arch_kind(a) == MODEL_KIND_ENCODER;
    *kind = enc ? POOL_MEAN : POOL_LAST;
    *normalize = true;
    *max_seq_len = 0;
    char key[160];
    int64_t v;
    snprintf(key, sizeof(key), "%s.pooling_type", arch);
    rc = gguf_get_int(g, key, INT64_MIN, INT64_MAX, &v, err, errlen);
    if (rc == 0) {
        if (v == 1) {
            *kind = POOL_MEAN;
        } else if (v == 2) {
            *kind = POOL_CLS;
        } else if (v == 3) {
            *kind = POOL_LAST;
        } else if (v != 0) {
            rc = pool__fail(err, errlen, -ENOTSUP,
                            "%s: %s = %lld is not supported (1 mean, 2 cls, 3 last)", path, key,
                            (long long)v);
            goto done;
        }
    } else if (rc != GGUF_ENOTFOUND) {
        rc = -EINVAL;
        goto done;
    }
    snprintf(key, sizeof(key), "%s.context_length", arch);
    rc = 0;
    if (gguf_get_int(g, key, 1, INT32_MAX, &v, NULL, 0) == 0)
        *max_seq_len = (int)v;
done:
    gguf_close(g);
    return rc;
}

int pool_config_load(const char *model_path, pool_kind *kind, bool *normalize,
                     int *max_seq_len, char *err, size_t errlen)
{
    pool_kind k = POOL_MEAN;
    bool nz = true;
    int msl = 0;
    if (err && errlen)
        err[0] = '\0';
    struct stat sb;
    if (!model_path || stat(model_path, &sb) != 0)
        return pool__fail(err, errlen, -ENOENT, "model %s: no such file or directory",
                          model_path ? model_path : "(null)");
    int rc = S_ISDIR(sb.st_mode) ? pool__hf(model_path, &k, &nz, &msl, err, errlen)
                                 : pool__gguf(model_path, &k, &nz, &msl, err, errlen);
    if (rc != 0)
        return rc;
    if (kind)
        *kind = k;
    if (normalize)
        *normalize = nz;
    if (max_seq_len)
        *max_seq_len = msl;
    return 0;
}
