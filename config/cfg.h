/* cfg.h - alignd configuration: the table in cfg_table.h, filled from four
 * sources in increasing precedence:
 *     built-in defaults < INI file (--config FILE) < environment
 *     (ALIGND_SECTION_KEY) < flags (--section.key=value)
 * Each value remembers where it came from (for --print-config and errors).
 *
 * Threads: a cfg is built once on the main thread before anything else runs
 * and is read-only afterwards; any thread may read it then.
 */
#ifndef CFG_H
#define CFG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cfg_table.h"

typedef enum { CFG_T_INT, CFG_T_BOOL, CFG_T_STR, CFG_T_SIZE, CFG_T_DOUBLE, CFG_T_ENUM } cfg_type;
typedef enum { CFG_SRC_DEFAULT, CFG_SRC_FILE, CFG_SRC_ENV, CFG_SRC_FLAG } cfg_source;

#define CFG_CTYPE_INT long long
#define CFG_CTYPE_BOOL bool
#define CFG_CTYPE_STR char *
#define CFG_CTYPE_SIZE uint64_t
#define CFG_CTYPE_DOUBLE double
#define CFG_CTYPE_ENUM char *

/* Key ids: CFG_KEY_server_port ... */
typedef enum {
#define X(sec, key, type, def, min, max, choices, flags, help) CFG_KEY_##sec##_##key,
    CFG_TABLE(X)
#undef X
    CFG_KEY_COUNT
} cfg_key;

typedef struct cfg_origin {
    cfg_source source;
    char where[160]; /* "default", "FILE:LINE", "env ALIGND_X_Y", "flag --x.y" */
} cfg_origin;

/* Per-model key ids: CFG_MKEY_path ... */
typedef enum {
#define X(sec, key, type, def, min, max, choices, flags, help) CFG_MKEY_##key,
    CFG_MODEL_TABLE(X)
#undef X
    CFG_MKEY_COUNT
} cfg_model_key;

#define CFG_MAX_MODELS 16
#define CFG_MODEL_NAME_MAX 64

/* One [model.NAME] section. */
typedef struct cfg_model {
    char name[CFG_MODEL_NAME_MAX]; /* [A-Za-z0-9._-]+ */
#define X(sec, key, type, def, min, max, choices, flags, help) CFG_CTYPE_##type key;
    CFG_MODEL_TABLE(X)
#undef X
    cfg_origin origin[CFG_MKEY_COUNT];
} cfg_model;

typedef struct cfg {
#define X(sec, key, type, def, min, max, choices, flags, help) CFG_CTYPE_##type sec##_##key;
    CFG_TABLE(X)
#undef X
    cfg_origin origin[CFG_KEY_COUNT];
    cfg_model models[CFG_MAX_MODELS];
    int n_models;
} cfg;

/* Description of one key, from the table. */
typedef struct cfg_desc {
    const char *section;
    const char *key;
    cfg_type type;
    const char *def;
    double min, max;
    const char *choices; /* ENUM only: "a|b|c" */
    unsigned flags;      /* CFG_F_* */
    const char *help;
    size_t offset;       /* of the field in struct cfg */
} cfg_desc;

extern const cfg_desc cfg_descs[CFG_KEY_COUNT];
extern const cfg_desc cfg_model_descs[CFG_MKEY_COUNT]; /* offsets into cfg_model */

/* Error codes (negative). */
enum { CFG_OK = 0, CFG_EINVAL = -1, CFG_EUNKNOWN = -2, CFG_EIO = -3, CFG_ENOMEM = -4 };

/* Sets every key to its built-in default. Call cfg_free when done. */
int cfg_init(cfg *c);
/* The store to open: store.url when set, else the SQLite file store.path. */
static inline const char *cfg_store_location(const cfg *c)
{
    return c->store_url[0] ? c->store_url : c->store_path;
}
/* Frees the strings a cfg owns; accepts NULL; leaves *c zeroed. */
void cfg_free(cfg *c);

/* Returns the index of "section.key" (or section + key), or -1. */
int cfg_find(const char *section, const char *key);

/* Parses `value` as key `id` and stores it with its origin.
 * Returns 0, or CFG_EINVAL with a message in err naming key, value and `where`. */
int cfg_set(cfg *c, int id, const char *value, cfg_source src, const char *where,
            char *err, size_t errlen);

/* Returns the index of a per-model key, or -1. */
int cfg_model_find_key(const char *key);
/* Returns the model section named `name`, creating it (with defaults) when
 * `create`; NULL when absent, when the name is invalid or when there are
 * already CFG_MAX_MODELS (err says which). */
cfg_model *cfg_model_get(cfg *c, const char *name, bool create, char *err, size_t errlen);
/* Like cfg_set for a per-model key. */
int cfg_model_set(cfg_model *m, int id, const char *value, cfg_source src, const char *where,
                  char *err, size_t errlen);
/* Checks what cannot be checked key by key (every model has a path).
 * Returns 0 or CFG_EINVAL naming the model. */
int cfg_validate(const cfg *c, char *err, size_t errlen);

/* Loads an INI file; unknown sections/keys and bad values are errors naming
 * the file and line. Returns 0 or a negative code with err filled. */
int cfg_load_file(cfg *c, const char *path, char *err, size_t errlen);
/* The same for INI text in memory; `label` names it in messages. */
int cfg_load_string(cfg *c, const char *text, const char *label, char *err, size_t errlen);

/* Applies ALIGND_SECTION_KEY variables from envp (NULL-terminated). A variable
 * whose prefix names a known section but whose key is unknown is an error. */
int cfg_apply_env(cfg *c, char *const *envp, char *err, size_t errlen);

/* The environment variable name of a key, e.g. "ALIGND_SERVER_PORT". */
void cfg_env_name(int id, char *buf, size_t len);

/* Writes the effective configuration in INI form, each value with its source;
 * secrets are masked. */
void cfg_print(const cfg *c, FILE *out);
/* Writes the documented example INI (every key, its default, env var, help). */
void cfg_print_example(FILE *out);
/* Writes the --section.key flag list for --help. */
void cfg_print_flags(FILE *out);

/* Formats the current value of key id into buf (secrets shown as-is). */
void cfg_format_value(const cfg *c, int id, char *buf, size_t len);

#endif
