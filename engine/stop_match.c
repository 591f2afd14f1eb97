/* stop_match.c - stop strings across piece boundaries (see stop_match.h).
 *
 * Invariant between feeds: `held` contains no complete stop string, and it
 * is the shortest tail of the text so far that is a proper prefix of some
 * stop string (every earlier byte can no longer start a match, so it has
 * been emitted). A feed scans held + piece for the first completed stop;
 * failing that, it emits all but the new shortest such tail. Pieces and
 * stops are short, so the plain scan (bytes x stops x stop length) is
 * cheaper than building an automaton per request. */
#include "stop_match.h"

#include <errno.h>
#include <string.h>

int stop_matcher_init(stop_matcher *m, const char *const *stops, size_t n, eng_err *err) {
    if (!m) return eng_fail(err, -EINVAL, "stop: matcher is NULL");
    memset(m, 0, sizeof *m);
    int rc;
    if (n > STOP_MAX_N) {
        rc = eng_fail(err, -EINVAL, "stop: %zu strings given, at most %d are allowed", n, STOP_MAX_N);
        goto fail;
    }
    if (n > 0 && !stops) {
        rc = eng_fail(err, -EINVAL, "stop: NULL array with %zu strings", n);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        size_t len = stops[i] ? strlen(stops[i]) : 0;
        if (!stops[i]) {
            rc = eng_fail(err, -EINVAL, "stop[%zu]: NULL string", i);
            goto fail;
        }
        if (len == 0) {
            rc = eng_fail(err, -EINVAL, "stop[%zu]: empty string", i);
            goto fail;
        }
        if (len > STOP_MAX_LEN) {
            rc = eng_fail(err, -EINVAL, "stop[%zu]: %zu bytes, longer than the %d-byte limit", i, len,
                          STOP_MAX_LEN);
            goto fail;
        }
        memcpy(m->stops[i], stops[i], len);
        m->lens[i] = len;
    }
    m->n = n;
    return 0;
fail:
    memset(m, 0, sizeof *m);
    return rc;
}

size_t stop_matcher_held(const stop_matcher *m) { return m ? m->held_len : 0; }

/* In t[0..n): the first completed stop (smallest end, then longest), as its
 * start offset in *at; false when none. */
static bool stop__find(const stop_matcher *m, const char *t, size_t n, size_t *at) {
    for (size_t end = 1; end <= n; end++) {
        size_t best = 0;
        for (size_t s = 0; s < m->n; s++) {
            size_t L = m->lens[s];
            if (L <= end && L > best && memcmp(t + end - L, m->stops[s], L) == 0) best = L;
        }
        if (best) {
            *at = end - best;
            return true;
        }
    }
    return false;
}

/* The smallest k such that t[k..n) is a proper prefix of some stop (n when
 * none): t[0..k) can no longer begin a match. */
static size_t stop__hold_from(const stop_matcher *m, const char *t, size_t n) {
    for (size_t k = 0; k < n; k++) {
        size_t rest = n - k;
        for (size_t s = 0; s < m->n; s++)
            if (rest < m->lens[s] && memcmp(t + k, m->stops[s], rest) == 0) return k;
    }
    return n;
}

int stop_matcher_feed(stop_matcher *m, const char *piece, size_t len, char *out, size_t *out_len,
                      bool *matched) {
    if (!m || !out || !out_len || !matched || (!piece && len)) return -EINVAL;
    if (m->matched) {
        *out_len = 0;
        *matched = true;
        return 0;
    }
    size_t cap = *out_len;
    if (cap < m->held_len || cap - m->held_len < len) return -ENOSPC;
    /* the text to examine, held + piece, is built in out itself */
    size_t n = m->held_len + len;
    memcpy(out, m->held, m->held_len);
    if (len) memcpy(out + m->held_len, piece, len);
    size_t at;
    if (stop__find(m, out, n, &at)) {
        m->matched = true;
        m->held_len = 0;
        *out_len = at;
        *matched = true;
        return 0;
    }
    size_t k = stop__hold_from(m, out, n);
    m->held_len = n - k;  /* < the longest stop, so it fits */
    memcpy(m->held, out + k, m->held_len);
    *out_len = k;
    *matched = false;
    return 0;
}

int stop_matcher_flush(stop_matcher *m, char *out, size_t *out_len) {
    if (!m || !out || !out_len) return -EINVAL;
    if (*out_len < m->held_len) return -ENOSPC;
    memcpy(out, m->held, m->held_len);
    *out_len = m->held_len;
    m->held_len = 0;
    return 0;
}

void stop_matcher_free(stop_matcher *m) {
    if (m) memset(m, 0, sizeof *m);
}
