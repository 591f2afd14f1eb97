/* auth.h - API keys: "Authorization: Bearer KEY" checked in constant time.
 * Built on the main thread; read-only afterwards (any thread). */
#ifndef AUTH_H
#define AUTH_H

#include <stdbool.h>
#include <stddef.h>

typedef struct auth {
    char **keys;
    size_t n_keys;
} auth;

/* Collects keys from a comma-separated list and from a file (one per line,
 * '#' comments); either may be empty. Returns 0 or -1 with err filled. */
int auth_init(auth *a, const char *csv, const char *key_file, char *err, size_t errlen);
void auth_free(auth *a);
/* True when no keys are configured (open server). */
bool auth_disabled(const auth *a);
/* True when the Authorization header carries one of the keys. Takes the same
 * time whichever key matches or how many leading bytes agree. */
bool auth_check(const auth *a, const char *authorization_header);

#endif
