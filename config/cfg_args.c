/* cfg_args.c - argument parsing and the precedence of configuration sources. */
#include "cfg_args.h"

#include <stdlib.h>
#include <string.h>

/* Splits "--section.key[=value]" and applies it; `next` is the following
 * argv word for the "--section.key value" form (*used set to 1 if taken). */
/* "--model NAME=PATH" and "--model.NAME.KEY=VALUE" (arg without "--"). */
static int cfg__apply_model_flag(cfg *c, const char *arg, const char *next, int *used,
                                 char *err, size_t errlen) {
    char where[200], name[CFG_MODEL_NAME_MAX + 1];
    const char *value;
    int id;
    if (strcmp(arg, "model") == 0 || strncmp(arg, "model=", 6) == 0) {
        const char *spec = arg[5] == '=' ? arg + 6 : next;
        if (arg[5] != '=') *used = 1;
        const char *eq = spec ? strchr(spec, '=') : NULL;
        if (!eq || eq == spec || (size_t)(eq - spec) > CFG_MODEL_NAME_MAX) {
            snprintf(err, errlen, "--model needs NAME=PATH, not '%s'", spec ? spec : "");
            return CFG_EINVAL;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - spec), spec);
        value = eq + 1;
        id = CFG_MKEY_path;
        snprintf(where, sizeof where, "flag --model %s", name);
    } else { /* model.NAME.KEY[=VALUE] */
        /* the key follows the last '.' before any '=': the value may hold
         * dots and '=' (paths, "adapters=a=/x/y.d") */
        const char *eq = strchr(arg, '='), *dot = NULL;
        for (const char *p = arg + 6; *p && p != eq; p++)
            if (*p == '.') dot = p;
        if (!dot || dot == arg + 6 || (size_t)(dot - (arg + 6)) > CFG_MODEL_NAME_MAX) {
            snprintf(err, errlen, "unknown option --%s (per-model flags are --model.NAME.KEY=VALUE)", arg);
            return CFG_EUNKNOWN;
        }
        snprintf(name, sizeof name, "%.*s", (int)(dot - (arg + 6)), arg + 6);
        char key[64];
        size_t klen = eq ? (size_t)(eq - dot - 1) : strlen(dot + 1);
        snprintf(key, sizeof key, "%.*s", (int)klen, dot + 1);
        if ((id = cfg_model_find_key(key)) < 0) {
            snprintf(err, errlen, "unknown option --%.*s (no per-model key '%s')",
                     (int)(eq ? eq - arg : (long)strlen(arg)), arg, key);
            return CFG_EUNKNOWN;
        }
        value = eq ? eq + 1 : next;
        if (!eq) *used = 1;
        if (!value) {
            snprintf(err, errlen, "option --%s needs a value", arg);
            return CFG_EINVAL;
        }
        snprintf(where, sizeof where, "flag --model.%s.%s", name, key);
    }
    cfg_model *m = cfg_model_get(c, name, true, err, errlen);
    if (!m) return CFG_EINVAL;
    return cfg_model_set(m, id, value, CFG_SRC_FLAG, where, err, errlen);
}

static int cfg__apply_flag(cfg *c, const char *arg, const char *next, int *used,
                           char *err, size_t errlen) {
    if (strncmp(arg, "model", 5) == 0 && (arg[5] == '\0' || arg[5] == '=' || arg[5] == '.'))
        return cfg__apply_model_flag(c, arg, next, used, err, errlen);
    char name[160];
    const char *eq = strchr(arg, '=');
    size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
    if (nlen >= sizeof name) nlen = sizeof name - 1;
    memcpy(name, arg, nlen);
    name[nlen] = '\0';
    char *dot = strchr(name, '.');
    int id = -1;
    if (dot) {
        *dot = '\0';
        id = cfg_find(name, dot + 1);
        *dot = '.';
    }
    if (id < 0) {
        snprintf(err, errlen, "unknown option --%s (see alignd --help)", name);
        return CFG_EUNKNOWN;
    }
    const char *value = eq ? eq + 1 : NULL;
    if (!value) {
        if (cfg_descs[id].type == CFG_T_BOOL) {
            value = "true"; /* bare boolean flag; false needs --x.y=false */
        } else if (next) {
            value = next;
            *used = 1;
        } else {
            snprintf(err, errlen, "option --%s needs a value", name);
            return CFG_EINVAL;
        }
    }
    char where[200];
    snprintf(where, sizeof where, "flag --%s", name);
    return cfg_set(c, id, value, CFG_SRC_FLAG, where, err, errlen);
}

int cfg_load_all(cfg *c, cfg_cli *cli, int argc, char **argv, char *const *envp,
                 char *err, size_t errlen) {
    memset(cli, 0, sizeof *cli);
    int rc = cfg_init(c);
    if (rc != 0) {
        snprintf(err, errlen, "invalid built-in configuration default");
        return rc;
    }
    cli->args = calloc((size_t)argc + 1, sizeof *cli->args);
    if (!cli->args) {
        snprintf(err, errlen, "out of memory");
        return CFG_ENOMEM;
    }

    /* Pass 1: the daemon's own options and the config file path. */
    int end = argc; /* first word of a subcommand, if any */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            end = i;
            while (++i < argc) cli->args[cli->n_args++] = argv[i];
            break;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) cli->help = true;
        else if (strcmp(a, "--version") == 0) cli->version = true;
        else if (strcmp(a, "--print-config") == 0) cli->print_config = true;
        else if (strcmp(a, "--print-example-config") == 0) cli->print_example = true;
        else if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "option %s needs a file name", a);
                return CFG_EINVAL;
            }
            cli->config_path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) cli->config_path = a + 9;
        else if (strncmp(a, "--", 2) == 0) {
            /* a config flag: skip its separate value word, if any, in this pass */
            if ((!strcmp(a, "--model") || (!strncmp(a, "--model.", 8) && !strchr(a, '='))) &&
                i + 1 < argc) {
                i++;
            } else if (!strchr(a, '=') && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
                char sec[160];
                snprintf(sec, sizeof sec, "%s", a + 2);
                char *dot = strchr(sec, '.');
                if (dot) {
                    *dot = '\0';
                    int id = cfg_find(sec, dot + 1);
                    if (id >= 0 && cfg_descs[id].type != CFG_T_BOOL) i++;
                }
            }
        } else { /* a subcommand: it and every later word are its own */
            end = i;
            while (i < argc) cli->args[cli->n_args++] = argv[i++];
            break;
        }
    }

    if (cli->config_path && (rc = cfg_load_file(c, cli->config_path, err, errlen)) != 0) return rc;
    if ((rc = cfg_apply_env(c, envp, err, errlen)) != 0) return rc;

    /* Pass 2: --section.key flags, which win over everything. */
    for (int i = 1; i < end; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) continue;
        if (strcmp(a, "--help") == 0 || strcmp(a, "--version") == 0 ||
            strcmp(a, "--print-config") == 0 || strcmp(a, "--print-example-config") == 0 ||
            strncmp(a, "--config=", 9) == 0)
            continue;
        if (strcmp(a, "--config") == 0) { i++; continue; }
        int used = 0;
        rc = cfg__apply_flag(c, a + 2, i + 1 < argc ? argv[i + 1] : NULL, &used, err, errlen);
        if (rc != 0) return rc;
        i += used;
    }
    return cfg_validate(c, err, errlen);
}

void cfg_cli_free(cfg_cli *cli) {
    if (!cli) return;
    free(cli->args);
    memset(cli, 0, sizeof *cli);
}
