/* cfg_file.c - INI configuration files through libinih. */
#include "cfg.h"

#include <errno.h>
#include <ini.h>
#include <string.h>

typedef struct cfg__file_ctx {
    cfg *c;
    const char *path;
    char *err;
    size_t errlen;
    int rc;
} cfg__file_ctx;

/* inih calls this per name=value; returning 0 stops parsing, and ini_parse
 * then returns the line number, which we add to the message. */
static int cfg__on_ini(void *user, const char *section, const char *name, const char *value) {
    cfg__file_ctx *x = user;
    char where[160];
    snprintf(where, sizeof where, "file %s", x->path);
    if (strncmp(section, "model.", 6) == 0) { /* [model.NAME] */
        cfg_model *m = cfg_model_get(x->c, section + 6, true, x->err, x->errlen);
        int mid = m ? cfg_model_find_key(name) : -1;
        if (m && mid < 0)
            snprintf(x->err, x->errlen, "%s: unknown configuration key [%s] %s", x->path, section, name);
        x->rc = !m ? CFG_EINVAL : mid < 0 ? CFG_EUNKNOWN
                : cfg_model_set(m, mid, value, CFG_SRC_FILE, where, x->err, x->errlen);
        return x->rc == 0;
    }
    int id = cfg_find(section, name);
    if (id < 0 && !*section) {
        snprintf(x->err, x->errlen,
                 "%s: key '%s' is outside any [section] (or a section header is malformed)",
                 x->path, name);
        x->rc = CFG_EUNKNOWN;
        return 0;
    }
    if (id < 0) {
        snprintf(x->err, x->errlen, "%s: unknown configuration key [%s] %s", x->path, section, name);
        x->rc = CFG_EUNKNOWN;
        return 0;
    }
    x->rc = cfg_set(x->c, id, value, CFG_SRC_FILE, where, x->err, x->errlen);
    return x->rc == 0;
}

/* Turns ini_parse*'s result into our error convention. */
static int cfg__ini_result(cfg__file_ctx *x, int line) {
    if (line == 0) return 0;
    if (x->rc == 0) { /* a syntax error inih found itself */
        snprintf(x->err, x->errlen, "%s:%d: syntax error (expected [section] or key = value)",
                 x->path, line);
        return CFG_EINVAL;
    }
    size_t n = strlen(x->err);
    if (line > 0 && n < x->errlen) snprintf(x->err + n, x->errlen - n, " (line %d)", line);
    return x->rc;
}

int cfg_load_string(cfg *c, const char *text, const char *label, char *err, size_t errlen) {
    cfg__file_ctx x = {c, label, err, errlen, 0};
    return cfg__ini_result(&x, ini_parse_string(text, cfg__on_ini, &x));
}

int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen) {
    cfg__file_ctx x = {c, path, err, errlen, 0};
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return CFG_EIO;
    }
    int line = ini_parse_file(f, cfg__on_ini, &x);
    fclose(f);
    return cfg__ini_result(&x, line);
}
