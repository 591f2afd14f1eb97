/* router.c - segment-by-segment path matching against the route table. */
#include "router.h"

#include <stdio.h>
#include <string.h>

/* Matches one pattern; fills m's params. Returns the number of literal
 * segments (a specificity score) or -1 when it does not match. */
static int router__match_one(const char *pattern, const char *path, router_match *m) {
    const char *p = pattern, *s = path;
    int literals = 0;
    m->n_params = 0;
    if (*p != '/' || *s != '/') return -1;
    while (*p && *s) {
        if (*p != '/' || *s != '/') return -1;
        p++, s++;
        const char *pend = strchr(p, '/'), *send = strchr(s, '/');
        size_t plen = pend ? (size_t)(pend - p) : strlen(p);
        size_t slen = send ? (size_t)(send - s) : strlen(s);
        if (plen >= 2 && p[0] == '{' && p[plen - 1] == '}') {
            if (slen == 0 || m->n_params >= ROUTER_MAX_PARAMS) return -1;
            m->params[m->n_params].name = p + 1;
            m->params[m->n_params].name_len = plen - 2;
            m->params[m->n_params].value = s;
            m->params[m->n_params].value_len = slen;
            m->n_params++;
        } else {
            if (plen != slen || memcmp(p, s, plen) != 0) return -1;
            literals++;
        }
        p += plen, s += slen;
    }
    return (*p == '\0' && *s == '\0') ? literals : -1;
}

router_result router_match_path(const route *table, size_t n, unsigned skip_flags,
                                const char *method, const char *path,
                                router_match *m, char *allow, size_t allowlen) {
    int best = -1, path_known = 0;
    router_match tmp;
    const char *want = strcmp(method, "HEAD") == 0 ? "GET" : method;
    size_t alen = 0;
    if (allowlen) allow[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const route *r = &table[i];
        if (r->flags & skip_flags) continue;
        int score = router__match_one(r->pattern, path, &tmp);
        if (score < 0) continue;
        path_known = 1;
        if (strcmp(r->method, want) == 0) {
            if (score > best) {
                best = score;
                *m = tmp;
                m->route = r;
            }
        } else if (allowlen && !strstr(allow, r->method)) {
            int w = snprintf(allow + alen, allowlen - alen, "%s%s", alen ? ", " : "", r->method);
            if (w > 0 && (size_t)w < allowlen - alen) alen += (size_t)w;
            if (strcmp(r->method, "GET") == 0 && allowlen - alen > 6) {
                w = snprintf(allow + alen, allowlen - alen, ", HEAD");
                alen += (size_t)w;
            }
        }
    }
    if (best >= 0) return ROUTER_FOUND;
    return path_known ? ROUTER_BAD_METHOD : ROUTER_NOT_FOUND;
}

int router_pattern_valid(const char *pattern) {
    if (!pattern || pattern[0] != '/') return 0;
    int params = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            const char *slash = strchr(p, '/');
            if (!close || (slash && slash < close) || close == p + 1) return 0;
            if (p[-1] != '/' || (close[1] != '/' && close[1] != '\0')) return 0;
            params++;
            p = close;
        } else if (*p == '}') {
            return 0;
        }
    }
    return params <= ROUTER_MAX_PARAMS;
}
