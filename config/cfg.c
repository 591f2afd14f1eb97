/* cfg.c - the config table expanded into descriptors, value parsing with
 * bounds, and printing (effective config, example file, flag list). */
#include "cfg.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

const cfg_desc cfg_descs[CFG_KEY_COUNT] = {
#define X(sec, key, type, def, mn, mx, choices, flags, help) \
    {#sec, #key, CFG_T_##type, def, mn, mx, choices, flags, help, offsetof(cfg, sec##_##key)},
    CFG_TABLE(X)
#undef X
};

const cfg_desc cfg_model_descs[CFG_MKEY_COUNT] = {
#define X(sec, key, type, def, mn, mx, choices, flags, help) \
    {#sec, #key, CFG_T_##type, def, mn, mx, choices, flags, help, offsetof(cfg_model, key)},
    CFG_MODEL_TABLE(X)
#undef X
};

static const char *cfg__type_name(cfg_type t) {
    switch (t) {
    case CFG_T_INT: return "integer";
    case CFG_T_BOOL: return "boolean";
    case CFG_T_STR: return "string";
    case CFG_T_SIZE: return "size";
    case CFG_T_DOUBLE: return "number";
    case CFG_T_ENUM: return "choice";
    }
    return "?";
}

static void *cfg__field(cfg *c, int id) { return (char *)c + cfg_descs[id].offset; }

int cfg_find(const char *section, const char *key) {
    for (int i = 0; i < CFG_KEY_COUNT; i++)
        if (strcmp(cfg_descs[i].section, section) == 0 && strcmp(cfg_descs[i].key, key) == 0)
            return i;
    return -1;
}

void cfg_env_name(int id, char *buf, size_t len) {
    snprintf(buf, len, "ALIGND_%s_%s", cfg_descs[id].section, cfg_descs[id].key);
    for (char *p = buf; *p; p++) *p = (char)toupper((unsigned char)*p);
}

static int cfg__parse_bool(const char *s, bool *out) {
    static const char *yes[] = {"true", "yes", "on", "1"}, *no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) { *out = true; return 0; }
        if (strcasecmp(s, no[i]) == 0) { *out = false; return 0; }
    }
    return -1;
}

/* "512", "64K", "1M", "2G" (binary multiples; optional trailing 'B'/'iB'). */
static int cfg__parse_size(const char *s, uint64_t *out) {
    errno = 0;
    char *end;
    if (!isdigit((unsigned char)*s)) return -1;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno) return -1;
    uint64_t mult = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mult = 1ull << 10; end++; break;
    case 'M': mult = 1ull << 20; end++; break;
    case 'G': mult = 1ull << 30; end++; break;
    case 'T': mult = 1ull << 40; end++; break;
    default: break;
    }
    if (mult > 1 && (*end == 'i' || *end == 'I')) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0') return -1;
    if (v > UINT64_MAX / mult) return -1;
    *out = v * mult;
    return 0;
}

static int cfg__enum_has(const char *choices, const char *v) {
    size_t n = strlen(v);
    for (const char *p = choices; *p;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        if (len == n && strncmp(p, v, n) == 0) return 1;
        if (!bar) break;
        p = bar + 1;
    }
    return 0;
}

/* Parses value per d and stores it at base + d->offset, with its origin.
 * `label` names the key in messages ("server.port", "model.tiny.n_ctx"). */
static int cfg__store(const cfg_desc *d, const char *label, void *base, cfg_origin *origin,
                      const char *value, cfg_source src, const char *where, char *err,
                      size_t errlen) {
    void *f = (char *)base + d->offset;
    char *end;
#define CFG__BAD(...)                                                             \
    do {                                                                          \
        char why_[256];                                                           \
        snprintf(why_, sizeof why_, __VA_ARGS__);                                 \
        snprintf(err, errlen, "%s = '%s' (from %s): %s", label, value, where, why_);  \
        return CFG_EINVAL;                                                        \
    } while (0)

    switch (d->type) {
    case CFG_T_INT: {
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) CFG__BAD("not an integer");
        if ((double)v < d->min || (double)v > d->max)
            CFG__BAD("out of range [%.0f, %.0f]", d->min, d->max);
        *(long long *)f = v;
        break;
    }
    case CFG_T_BOOL:
        if (cfg__parse_bool(value, (bool *)f) != 0) CFG__BAD("not a boolean (true/false)");
        break;
    case CFG_T_SIZE: {
        uint64_t v;
        if (cfg__parse_size(value, &v) != 0) CFG__BAD("not a size (e.g. 4096, 64K, 1M, 2G)");
        if ((double)v < d->min || (double)v > d->max)
            CFG__BAD("out of range [%.0f, %.0f] bytes", d->min, d->max);
        *(uint64_t *)f = v;
        break;
    }
    case CFG_T_DOUBLE: {
        errno = 0;
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) CFG__BAD("not a number");
        if (v < d->min || v > d->max) CFG__BAD("out of range [%g, %g]", d->min, d->max);
        *(double *)f = v;
        break;
    }
    case CFG_T_ENUM:
        if (!cfg__enum_has(d->choices, value)) CFG__BAD("must be one of %s", d->choices);
        __attribute__((fallthrough)); /* stored like a string */
    case CFG_T_STR: {
        char *dup = strdup(value);
        if (!dup) CFG__BAD("out of memory");
        free(*(char **)f);
        *(char **)f = dup;
        break;
    }
    }
#undef CFG__BAD
    origin->source = src;
    snprintf(origin->where, sizeof origin->where, "%s", where);
    return 0;
}

int cfg_set(cfg *c, int id, const char *value, cfg_source src, const char *where,
            char *err, size_t errlen) {
    char label[96];
    snprintf(label, sizeof label, "%s.%s", cfg_descs[id].section, cfg_descs[id].key);
    return cfg__store(&cfg_descs[id], label, c, &c->origin[id], value, src, where, err, errlen);
}

int cfg_model_find_key(const char *key) {
    for (int i = 0; i < CFG_MKEY_COUNT; i++)
        if (strcmp(cfg_model_descs[i].key, key) == 0) return i;
    return -1;
}

int cfg_model_set(cfg_model *m, int id, const char *value, cfg_source src, const char *where,
                  char *err, size_t errlen) {
    char label[128];
    snprintf(label, sizeof label, "model.%s.%s", m->name, cfg_model_descs[id].key);
    return cfg__store(&cfg_model_descs[id], label, m, &m->origin[id], value, src, where, err,
                      errlen);
}

static bool cfg__model_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= CFG_MODEL_NAME_MAX) return false;
    for (const char *p = name; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.') return false;
    return true;
}

cfg_model *cfg_model_get(cfg *c, const char *name, bool create, char *err, size_t errlen) {
    for (int i = 0; i < c->n_models; i++)
        if (strcmp(c->models[i].name, name) == 0) return &c->models[i];
    if (!create) {
        snprintf(err, errlen, "no model named '%s'", name);
        return NULL;
    }
    if (!cfg__model_name_ok(name)) {
        snprintf(err, errlen, "model name '%s' must be 1-%d characters of A-Z a-z 0-9 . _ -",
                 name, CFG_MODEL_NAME_MAX - 1);
        return NULL;
    }
    if (c->n_models >= CFG_MAX_MODELS) {
        snprintf(err, errlen, "too many models (at most %d)", CFG_MAX_MODELS);
        return NULL;
    }
    cfg_model *m = &c->models[c->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    for (int i = 0; i < CFG_MKEY_COUNT; i++)
        if (cfg_model_set(m, i, cfg_model_descs[i].def, CFG_SRC_DEFAULT, "default", err, errlen))
            return NULL; /* a bad default: tests catch it */
    c->n_models++;
    return m;
}

int cfg_validate(const cfg *c, char *err, size_t errlen) {
    for (int i = 0; i < c->n_models; i++)
        if (!c->models[i].path || !c->models[i].path[0]) {
            snprintf(err, errlen, "model '%s' has no path (set [model.%s] path = FILE, or "
                                  "--model %s=PATH)", c->models[i].name, c->models[i].name,
                     c->models[i].name);
            return CFG_EINVAL;
        }
    return 0;
}

int cfg_init(cfg *c) {
    memset(c, 0, sizeof *c);
    char err[512];
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        int rc = cfg_set(c, i, cfg_descs[i].def, CFG_SRC_DEFAULT, "default", err, sizeof err);
        if (rc != 0) { /* a bad default is a programming error; tests catch it */
            fprintf(stderr, "alignd: built-in default invalid: %s\n", err);
            cfg_free(c);
            return rc;
        }
    }
    return 0;
}

void cfg_free(cfg *c) {
    if (!c) return;
    for (int i = 0; i < CFG_KEY_COUNT; i++)
        if (cfg_descs[i].type == CFG_T_STR || cfg_descs[i].type == CFG_T_ENUM)
            free(*(char **)cfg__field(c, i));
    for (int m = 0; m < c->n_models; m++)
        for (int i = 0; i < CFG_MKEY_COUNT; i++)
            if (cfg_model_descs[i].type == CFG_T_STR || cfg_model_descs[i].type == CFG_T_ENUM)
                free(*(char **)((char *)&c->models[m] + cfg_model_descs[i].offset));
    memset(c, 0, sizeof *c);
}

int cfg_apply_env(cfg *c, char *const *envp, char *err, size_t errlen) {
    for (char *const *e = envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || strncmp(*e, "ALIGND_", 7) != 0) continue;
        size_t nlen = (size_t)(eq - *e);
        int matched = -1, section_known = 0;
        for (int i = 0; i < CFG_KEY_COUNT && matched < 0; i++) {
            char name[128];
            cfg_env_name(i, name, sizeof name);
            if (strlen(name) == nlen && strncmp(name, *e, nlen) == 0) matched = i;
            /* ALIGND_SERVER_... names a known section */
            size_t slen = 7 + strlen(cfg_descs[i].section);
            if (nlen > slen && strncmp(name, *e, slen + 1) == 0) section_known = 1;
        }
        if (matched < 0) {
            if (section_known) {
                snprintf(err, errlen, "unknown configuration key in environment variable %.*s",
                         (int)nlen, *e);
                return CFG_EUNKNOWN;
            }
            continue; /* not ours (e.g. a test harness variable) */
        }
        char where[160];
        snprintf(where, sizeof where, "env %.*s", (int)nlen, *e);
        int rc = cfg_set(c, matched, eq + 1, CFG_SRC_ENV, where, err, errlen);
        if (rc != 0) return rc;
    }
    return 0;
}

static void cfg__format(const cfg_desc *d, const void *base, char *buf, size_t len) {
    const void *f = (const char *)base + d->offset;
    switch (d->type) {
    case CFG_T_INT: snprintf(buf, len, "%lld", *(const long long *)f); break;
    case CFG_T_BOOL: snprintf(buf, len, "%s", *(const bool *)f ? "true" : "false"); break;
    case CFG_T_SIZE: snprintf(buf, len, "%llu", (unsigned long long)*(const uint64_t *)f); break;
    case CFG_T_DOUBLE: snprintf(buf, len, "%g", *(const double *)f); break;
    case CFG_T_STR:
    case CFG_T_ENUM: snprintf(buf, len, "%s", *(char *const *)f ? *(char *const *)f : ""); break;
    }
}

void cfg_format_value(const cfg *c, int id, char *buf, size_t len) {
    cfg__format(&cfg_descs[id], c, buf, len);
}

void cfg_print(const cfg *c, FILE *out) {
    const char *section = "";
    fprintf(out, "# effective alignd configuration (value ; source)\n");
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const cfg_desc *d = &cfg_descs[i];
        if (strcmp(section, d->section) != 0) {
            fprintf(out, "%s[%s]\n", i ? "\n" : "", d->section);
            section = d->section;
        }
        char val[1024];
        cfg_format_value(c, i, val, sizeof val);
        if ((d->flags & CFG_F_SECRET) && val[0]) snprintf(val, sizeof val, "(secret, hidden)");
        fprintf(out, "%s = %s ; %s\n", d->key, val, c->origin[i].where);
    }
    for (int m = 0; m < c->n_models; m++) {
        fprintf(out, "\n[model.%s]\n", c->models[m].name);
        for (int i = 0; i < CFG_MKEY_COUNT; i++) {
            char val[1024];
            cfg__format(&cfg_model_descs[i], &c->models[m], val, sizeof val);
            fprintf(out, "%s = %s ; %s\n", cfg_model_descs[i].key, val, c->models[m].origin[i].where);
        }
    }
}

void cfg_print_example(FILE *out) {
    const char *section = "";
    fprintf(out, "; alignd example configuration: every key with its default.\n"
                 "; Generated by `alignd --print-example-config`; a test keeps it in sync.\n"
                 "; Precedence: defaults < this file (--config FILE) < environment\n"
                 "; (ALIGND_SECTION_KEY) < flags (--section.key=value).\n");
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const cfg_desc *d = &cfg_descs[i];
        if (strcmp(section, d->section) != 0) {
            fprintf(out, "\n[%s]\n", d->section);
            section = d->section;
        }
        char env[128];
        cfg_env_name(i, env, sizeof env);
        fprintf(out, "\n; %s\n; type: %s", d->help, cfg__type_name(d->type));
        if (d->type == CFG_T_INT || d->type == CFG_T_SIZE || d->type == CFG_T_DOUBLE)
            fprintf(out, " in [%.15g, %.15g]", d->min, d->max);
        if (d->type == CFG_T_ENUM) fprintf(out, " (%s)", d->choices);
        fprintf(out, "; env: %s; flag: --%s.%s\n", env, d->section, d->key);
        fprintf(out, "%s = %s\n", d->key, d->def);
    }
    fprintf(out, "\n; One section per served model: [model.NAME] (NAME is what requests put in\n"
                 "; \"model\"); on the command line --model NAME=PATH and --model.NAME.KEY=VALUE.\n"
                 "; Only path is required. Example (uncomment to serve a model):\n"
                 ";\n; [model.stories]\n");
    for (int i = 0; i < CFG_MKEY_COUNT; i++) {
        const cfg_desc *d = &cfg_model_descs[i];
        fprintf(out, ";\n; %s\n; type: %s", d->help, cfg__type_name(d->type));
        if (d->type == CFG_T_INT || d->type == CFG_T_SIZE || d->type == CFG_T_DOUBLE)
            fprintf(out, " in [%.15g, %.15g]", d->min, d->max);
        fprintf(out, "\n; %s = %s\n", d->key, i == CFG_MKEY_path ? "/var/lib/alignd/models/stories.gguf" : d->def);
    }
}

void cfg_print_flags(FILE *out) {
    fprintf(out, "  %-40s %s\n", "--model NAME=PATH", "serve the model at PATH as NAME (repeatable)");
    fprintf(out, "  %-40s %s\n", "--model.NAME.KEY=VALUE", "a per-model setting (see config/alignd.ini)");
    for (int i = 0; i < CFG_KEY_COUNT; i++) {
        const cfg_desc *d = &cfg_descs[i];
        char flag[128];
        snprintf(flag, sizeof flag, "--%s.%s=%s", d->section, d->key,
                 d->type == CFG_T_BOOL ? "BOOL" : d->type == CFG_T_INT ? "N"
                 : d->type == CFG_T_SIZE ? "SIZE" : d->type == CFG_T_DOUBLE ? "X" : "VALUE");
        fprintf(out, "  %-40s %s (default: %s)\n", flag, d->help, d->def[0] ? d->def : "empty");
    }
}
