/* router.h - the route table's types and path matching.
 *
 * A route pattern is a path of literal segments and {name} parameters, e.g.
 * "/v1/feedback/{id}". A parameter matches one non-empty segment. Literal
 * routes win over parameter routes when both match ("/v1/feedback/export"
 * before "/v1/feedback/{id}"), whatever their order in the table.
 * Pure functions; any thread.
 */
#ifndef ROUTER_H
#define ROUTER_H

#include <stddef.h>

typedef struct http_req http_req;
typedef void (*route_handler)(http_req *req);

typedef enum {
    /* When API keys are configured (server.api_keys), these need a key whose
     * role is at least the one named (auth.h); with no keys, all are open. */
    ROUTE_AUTH_INFER,    /* role infer: inference and model listing */
    ROUTE_AUTH_FEEDBACK, /* role feedback: storing and reading feedback */
    ROUTE_AUTH_ADMIN,    /* role admin: training, adapters, deletion, export, debug */
    ROUTE_AUTH_HEALTH,   /* open when server.public_health, else any key */
    ROUTE_AUTH_METRICS,  /* open when server.public_metrics, else any key */
    ROUTE_AUTH_OPEN,     /* never needs a key */
} route_auth;

typedef enum {
    ROUTE_BODY_NONE, /* body ignored (GET, DELETE) */
    ROUTE_BODY_JSON, /* application/json, parsed before the handler runs */
} route_body;

enum {
    ROUTE_F_NEEDS_READY = 1u << 0, /* 503 until every model is loaded */
    ROUTE_F_DEBUG = 1u << 1,       /* only with server.debug_routes */
};

typedef struct route {
    const char *method;   /* "GET", "POST", "DELETE" ... (HEAD matches GET) */
    const char *pattern;  /* "/v1/feedback/{id}" */
    route_handler handler;
    route_auth auth;
    route_body body;
    size_t body_limit;    /* bytes; 0 = server.max_body_size */
    unsigned flags;       /* ROUTE_F_* */
    const char *summary;  /* one line, for logs and docs */
} route;

#define ROUTER_MAX_PARAMS 4

typedef struct router_match {
    const route *route;
    int n_params;
    struct {
        const char *name; /* points into the pattern, not NUL-terminated */
        size_t name_len;
        const char *value; /* points into the path, not NUL-terminated */
        size_t value_len;
    } params[ROUTER_MAX_PARAMS];
} router_match;

typedef enum { ROUTER_FOUND, ROUTER_NOT_FOUND, ROUTER_BAD_METHOD } router_result;

/* Matches method+path against table[0..n). `skip_flags` hides routes that
 * have any of those flags (e.g. ROUTE_F_DEBUG when debug routes are off).
 * On ROUTER_BAD_METHOD, `allow` receives the methods the path does accept
 * ("GET, HEAD, POST"). The query string must already be cut off. */
router_result router_match_path(const route *table, size_t n, unsigned skip_flags,
                                const char *method, const char *path,
                                router_match *m, char *allow, size_t allowlen);

/* Returns 1 if the pattern is well-formed (leading '/', balanced braces,
 * at most ROUTER_MAX_PARAMS parameters), else 0. */
int router_pattern_valid(const char *pattern);

#endif
