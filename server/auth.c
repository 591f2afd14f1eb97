/* auth.c - API keys with roles, and constant-time comparison. */
#include "auth.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const auth__names[] = {"none", "infer", "feedback", "admin"};

const char *auth_role_name(auth_role r) {
    return (unsigned)r < sizeof auth__names / sizeof auth__names[0] ? auth__names[r] : "none";
}

auth_role auth_role_parse(const char *s, size_t n) {
    for (int r = AUTH_ROLE_INFER; r <= AUTH_ROLE_ADMIN; r++)
        if (strlen(auth__names[r]) == n && strncasecmp(s, auth__names[r], n) == 0)
            return (auth_role)r;
    return AUTH_ROLE_NONE;
}

/* Adds one entry, "KEY" or "role:KEY", surrounding blanks trimmed. `where`
 * names the source for errors ("server.api_keys", "FILE line N"). */
static int auth__add(auth *a, const char *s, size_t n, const char *where, char *err,
                     size_t errlen) {
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n == 0) return 0;
    auth_role role = AUTH_ROLE_ADMIN; /* a bare key: what keys could always do */
    const char *colon = memchr(s, ':', n);
    if (colon) {
        size_t plen = (size_t)(colon - s);
        bool letters = plen > 0;
        for (size_t i = 0; i < plen; i++)
            if (!isalpha((unsigned char)s[i])) letters = false;
        if (letters) {
            role = auth_role_parse(s, plen);
            if (role == AUTH_ROLE_NONE) {
                /* the prefix is echoed (it is not the key); the key is not */
                snprintf(err, errlen,
                         "%s: unknown API key role '%.*s' (infer, feedback or admin); "
                         "write a key that contains ':' as admin:KEY",
                         where, (int)(plen > 32 ? 32 : plen), s);
                return -2;
            }
            s = colon + 1;
            n -= plen + 1;
            while (n && isspace((unsigned char)*s)) s++, n--;
            if (n == 0) {
                snprintf(err, errlen, "%s: role '%s' with an empty API key", where,
                         auth_role_name(role));
                return -2;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (isspace((unsigned char)s[i]) || (unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(err, errlen, "%s: an API key contains a blank or control character", where);
            return -2;
        }
    char **nk = realloc(a->keys, (a->n_keys + 1) * sizeof *nk);
    if (!nk) return -1;
    a->keys = nk;
    auth_role *nr = realloc(a->roles, (a->n_keys + 1) * sizeof *nr);
    if (!nr) return -1;
    a->roles = nr;
    if (!(a->keys[a->n_keys] = strndup(s, n))) return -1;
    a->roles[a->n_keys] = role;
    a->n_keys++;
    return 0;
}

int auth_init(auth *a, const char *csv, const char *key_file, char *err, size_t errlen) {
    memset(a, 0, sizeof *a);
    int rc;
    for (const char *p = csv ? csv : ""; *p;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        if ((rc = auth__add(a, p, n, "server.api_keys", err, errlen)) != 0) goto fail;
        p += n + (comma ? 1 : 0);
    }
    if (key_file && *key_file) {
        FILE *f = fopen(key_file, "r");
        if (!f) {
            snprintf(err, errlen, "server.api_key_file %s: %s", key_file, strerror(errno));
            auth_free(a);
            return -1;
        }
        char line[1024], where[512];
        unsigned lineno = 0;
        while (fgets(line, sizeof line, f)) {
            lineno++;
            const char *p = line;
            while (isspace((unsigned char)*p)) p++;
            if (*p == '#') continue;
            snprintf(where, sizeof where, "server.api_key_file %.400s line %u", key_file, lineno);
            if ((rc = auth__add(a, line, strlen(line), where, err, errlen)) != 0) {
                fclose(f);
                goto fail;
            }
        }
        fclose(f);
    }
    return 0;
fail:
    if (rc == -1) snprintf(err, errlen, "out of memory reading API keys");
    auth_free(a);
    return -1;
}

void auth_free(auth *a) {
    if (!a) return;
    for (size_t i = 0; i < a->n_keys; i++) free(a->keys[i]);
    free(a->keys);
    free(a->roles);
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

auth_role auth_role_of(const auth *a, const char *header) {
    if (auth_disabled(a)) return AUTH_ROLE_ADMIN;
    if (!header || strncasecmp(header, "Bearer ", 7) != 0) return AUTH_ROLE_NONE;
    const char *given = header + 7;
    while (*given == ' ') given++;
    size_t glen = strlen(given);
    /* every key is compared, and the matching key's role is selected with a
     * mask, not a branch: the time does not tell which key (if any) matched */
    unsigned role = 0;
    for (size_t i = 0; i < a->n_keys; i++) {
        unsigned d = auth__differs(a->keys[i], given, glen);
        unsigned match = (unsigned)((d | (0u - d)) >> (sizeof d * 8 - 1)) ^ 1u; /* 1 if d == 0 */
        unsigned mask = 0u - match;
        unsigned r = (unsigned)a->roles[i] & mask;
        role = role > r ? role : r; /* two keys alike: the higher role (branch-free max) */
    }
    return (auth_role)role;
}

bool auth_check(const auth *a, const char *header) {
    return auth_role_of(a, header) != AUTH_ROLE_NONE;
}

auth_result auth_authorize(const auth *a, auth_role need, const char *header) {
    if (auth_disabled(a)) return AUTH_OK;
    auth_role have = auth_role_of(a, header);
    if (have == AUTH_ROLE_NONE) return AUTH_UNAUTHORIZED;
    return have >= need ? AUTH_OK : AUTH_FORBIDDEN;
}
