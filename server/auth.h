/* auth.h - API keys with roles: "Authorization: Bearer KEY" checked in
 * constant time. Built on the main thread; read-only afterwards (any thread).
 *
 * Each key has a role; a role grants the ones below it:
 *   infer     completions, chat, embeddings, classify, rewards, tokenize, models
 *   feedback  infer + storing and reading feedback, prompts, stats
 *   admin     everything: training runs, adapters, feedback deletion and
 *             export, debug routes
 * A key is written "KEY" (admin: what every key could do before roles) or
 * "role:KEY". With no keys at all the server is open: every route passes. */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    AUTH_ROLE_NONE = 0, /* no valid key */
    AUTH_ROLE_INFER = 1,
    AUTH_ROLE_FEEDBACK = 2,
    AUTH_ROLE_ADMIN = 3,
} auth_role;

typedef enum {
    AUTH_OK,            /* may pass */
    AUTH_UNAUTHORIZED,  /* no key, or not one of ours: 401 */
    AUTH_FORBIDDEN,     /* a valid key whose role is too low: 403 */
} auth_result;

typedef struct auth {
    char **keys;
    auth_role *roles;   /* roles[i] is the role of keys[i] */
    size_t n_keys;
} auth;

/* Collects keys from a comma-separated list and from a file (one per line,
 * '#' comments); either may be empty. Each entry is "KEY" (admin) or
 * "role:KEY" (role one of infer, feedback, admin). An entry whose part
 * before the first ':' is only letters but not a role is an error (a typo
 * must not grant admin); write such a key as "admin:KEY". Returns 0 or -1
 * with err filled (err never contains a key). */
int auth_init(auth *a, const char *csv, const char *key_file, char *err, size_t errlen);
void auth_free(auth *a);
/* True when no keys are configured (open server). */
bool auth_disabled(const auth *a);
/* The role of the key in the Authorization header, AUTH_ROLE_NONE when it
 * carries none of the keys (AUTH_ROLE_ADMIN when no keys are configured).
 * Takes the same time whichever key matches or how many leading bytes
 * agree. */
auth_role auth_role_of(const auth *a, const char *authorization_header);
/* True when the Authorization header carries one of the keys (any role). */
bool auth_check(const auth *a, const char *authorization_header);
/* Whether a request with this header may use a route that needs `need`. */
auth_result auth_authorize(const auth *a, auth_role need, const char *authorization_header);
/* "infer", "feedback", "admin" ("none" for AUTH_ROLE_NONE). */
const char *auth_role_name(auth_role r);
/* Parses a role name (case-insensitive, n bytes); AUTH_ROLE_NONE if unknown. */
auth_role auth_role_parse(const char *s, size_t n);

#endif
