/* auth.c - API key list and constant-time comparison. */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int auth__add(auth *a, const char *s, size_t n) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0) return 0;
    char **nk = realloc(a->keys, (a->n_keys + 1) * sizeof *nk);
    if (!nk) return -1;
    a->keys = nk;
    if (!(a->keys[a->n_keys] = strndup(s, n))) return -1;
    a->n_keys++;
    return 0;
}

int auth_init(auth *a, const char *csv, const char *key_file, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    for (const char *p = csv ? csv : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if (auth__add(a, p, n) != 0) goto oom;
        p += n + (comma ? 1 : 0);
    }
    if (key_file && *key_file) {
        FILE *f = fopen(key_file, "r");
        if (!f) {
            snprintf(err, errlen, "server.api_key_file %s: %s", key_file, strerror(errno));
            auth_free(a);
            return -1;
        }
        char line[1024];
        while (fgets(line, sizeof line, f)) {
            if (line[0] == '#') continue;
            if (auth__add(a, line, strlen(line)) != 0) {
                fclose(f);
                goto oom;
            }
        }
        fclose(f);
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory reading API keys");
    auth_free(a);
    return -1;
}

void auth_free(auth *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_keys; i++) free(a->keys[i]);
    free(a->keys);
    memset(a, 0, sizeof *a);
}

bool auth_disabled(const auth *a) { return a->n_keys == 0; }

/* Compares in time that depends only on the length of `given` (which the
 * caller already knows), never on where the first difference is. */
static unsigned auth__differs(const char *key, const char *given, size_t glen) {
    size_t klen = strlen(key);
    unsigned diff = (unsigned)(klen != glen);
    for (size_t i = 0; i < glen; i++)
        diff |= (unsigned char)given[i] ^ (unsigned char)key[klen ? i % klen : 0];
    return diff;
}

bool auth_check(const auth *a, const char *header) {
    if (auth_disabled(a)) return true;
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return false;
    const char *given = header + 7;
    while (*given == ' ') given++;
    size_t glen = strlen(given);
    unsigned ok = 0;
    for (size_t i = 0; i < a->n_keys; i++) ok |= !auth__differs(a->keys[i], given, glen);
    return ok != 0;
}
