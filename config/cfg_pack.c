/* cfg_pack.c - the default model pack (cfg_pack.h). */
#include "cfg_pack.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* The pack.ini to load, or "" when none is wanted or found. */
static int cfg_pack__find(const cfg *c, const char *installed_dir, char *out, size_t n,
                          char *err, size_t errlen)
{
    const char *want = c->server_model_pack;
    out[0] = '\0';
    if (!*want || !strcmp(want, "none"))
        return 0;
    if (strcmp(want, "auto")) {
        if (access(want, R_OK)) {
            snprintf(err, errlen, "server.model_pack %s: %s", want, strerror(errno));
            return -ENOENT;
        }
        snprintf(out, n, "%s", want);
        return 0;
    }
    if (!access("models/pack.ini", R_OK)) {
        snprintf(out, n, "models/pack.ini");
    } else if (installed_dir && *installed_dir) {
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/pack.ini", installed_dir);
        if (!access(p, R_OK))
            snprintf(out, n, "%s", p);
    }
    return 0;
}

int cfg_apply_pack(cfg *c, const char *installed_dir, char *used, size_t usedlen, char *err,
                   size_t errlen)
{
    char path[PATH_MAX];
    if (used && usedlen)
        used[0] = '\0';
    if (c->n_models > 0)
        return 0; /* the configuration names its models: no pack */
    int rc = cfg_pack__find(c, installed_dir, path, sizeof path, err, errlen);
    if (rc || !path[0])
        return rc;
    /* a pack may only add models: load it alone first and check */
    cfg alone;
    if ((rc = cfg_init(&alone)) != 0) {
        snprintf(err, errlen, "out of memory");
        return rc;
    }
    rc = cfg_load_file(&alone, path, err, errlen);
    for (int k = 0; !rc && k < CFG_KEY_COUNT; k++)
        if (alone.origin[k].source != CFG_SRC_DEFAULT) {
            snprintf(err, errlen, "model pack %s: sets %s.%s; a pack holds only [model.NAME] "
                     "sections", path, cfg_descs[k].section, cfg_descs[k].key);
            rc = -EINVAL;
        }
    if (!rc && alone.n_models == 0) {
        snprintf(err, errlen, "model pack %s: no [model.NAME] section", path);
        rc = -EINVAL;
    }
    cfg_free(&alone);
    if (rc || (rc = cfg_load_file(c, path, err, errlen)))
        return rc;
    /* paths in the pack are relative to its folder */
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof dir, ".");
    for (int i = 0; i < c->n_models; i++) {
        cfg_model *m = &c->models[i];
        if (!m->path || m->path[0] == '/')
            continue;
        char full[PATH_MAX * 2];
        snprintf(full, sizeof full, "%s/%s", dir, m->path);
        if ((rc = cfg_model_set(m, CFG_MKEY_path, full, CFG_SRC_FILE, path, err, errlen)))
            return rc;
    }
    if (used && usedlen)
        snprintf(used, usedlen, "%s", path);
    return 0;
}
