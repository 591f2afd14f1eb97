/* sampler.c - logits to a token: bias, penalties, top_k / top_p / min_p,
 * temperature, draw. See sampler.h for the contract.
 *
 * Cost per call, V = vocab: one pass for bias/sanitising/max, one per
 * distinct token in the penalty window, then
 *   greedy:               nothing more;
 *   top_k on:             O(V log k) min-heap selection of k ids, O(k log k)
 *                         sort of them;
 *   top_p < 1, top_k off: O(V) heapify of the candidates, O(m log V) to pop
 *                         the m tokens of the nucleus;
 *   neither:              two O(V) passes (sum of weights, then the draw),
 *                         the weights' expf computed once (with logprobs'
 *                         pass when there is one).
 * No full sort of the vocabulary, and no allocation once scratch exists.
 */
#include "sampler.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"

/* Logit distance below the maximum inside which the top_p path looks for
 * its nucleus first (probability ratio e^-12, about 6e-6). */
#define SAMP__NEAR_LOGIT 12.0f

typedef struct samp__count {
    int32_t token;
    int32_t count;  /* occurrences in the penalty window, >= 1 */
} samp__count;

struct samp {
    samp_params p;            /* copy; p.logit_bias points at bias below */
    int vocab;                /* V */
    samp_logit_bias *bias;    /* owned copy, p.n_logit_bias entries */
    rng gen;                  /* seeded from p.seed */

    /* Penalty window. repeat_last_n > 0: ring of win_cap tokens, oldest at
     * win_head. -1: no ring (nothing is evicted), win_len counts accepted
     * tokens. 0: nothing is recorded. */
    int32_t *win;
    int win_cap, win_head, win_len;
    /* Distinct tokens of the window with their counts, sorted by token. */
    samp__count *counts;
    int n_counts, counts_cap;

    /* Candidate ids (top_k heap or top_p heap), allocated on first need. */
    int32_t *cand;
    size_t cand_cap;
    /* exp((l - mx) / temp) of each token [V], allocated on first need: the
     * logprobs pass and the draw's two passes over the vocabulary compute
     * each once, not three times (390 -> 273 us a token at V = 32000). */
    float *ex;
};

/* ------------------------------------------------------------------------ */
/* Parameters                                                               */
/* ------------------------------------------------------------------------ */

void samp_params_default(samp_params *p) {
    memset(p, 0, sizeof *p);
    p->temperature = 1.0f;
    p->top_k = 0;
    p->top_p = 1.0f;
    p->min_p = 0.0f;
    p->repetition_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->presence_penalty = 0.0f;
    p->frequency_penalty = 0.0f;
    p->logit_bias = NULL;
    p->n_logit_bias = 0;
    p->seed = 0;
}

static int samp__fail(char *err, size_t errlen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int samp__fail(char *err, size_t errlen, int code, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

static int samp__cmp_i32(const void *a, const void *b) {
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

int samp_validate(const samp_params *p, int vocab, char *err, size_t errlen) {
    if (err && errlen) err[0] = '\0';
    if (!p) return samp__fail(err, errlen, -EINVAL, "params is NULL");
    if (vocab <= 0)
        return samp__fail(err, errlen, -EINVAL, "vocab must be > 0, got %d", vocab);
    /* Written as !(in range) so NaN fails too. */
    if (!(p->temperature >= 0.0f && p->temperature <= SAMP_TEMPERATURE_MAX))
        return samp__fail(err, errlen, -EINVAL, "temperature must be in [0, %g], got %g",
                          (double)SAMP_TEMPERATURE_MAX, (double)p->temperature);
    if (p->top_k < 0)
        return samp__fail(err, errlen, -EINVAL, "top_k must be >= 0 (0 = off), got %d",
                          (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return samp__fail(err, errlen, -EINVAL, "top_p must be in (0, 1], got %g",
                          (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        return samp__fail(err, errlen, -EINVAL, "min_p must be in [0, 1], got %g",
                          (double)p->min_p);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= SAMP_REPETITION_PENALTY_MAX))
        return samp__fail(err, errlen, -EINVAL, "repetition_penalty must be in (0, %g], got %g",
                          (double)SAMP_REPETITION_PENALTY_MAX, (double)p->repetition_penalty);
    if (p->repeat_last_n < -1 || p->repeat_last_n > SAMP_REPEAT_LAST_N_MAX)
        return samp__fail(err, errlen, -EINVAL, "repeat_last_n must be in [-1, %d], got %d",
                          SAMP_REPEAT_LAST_N_MAX, (int)p->repeat_last_n);
    if (!(fabsf(p->presence_penalty) <= SAMP_PRESENCE_PENALTY_MAX))
        return samp__fail(err, errlen, -EINVAL, "presence_penalty must be in [-%g, %g], got %g",
                          (double)SAMP_PRESENCE_PENALTY_MAX, (double)SAMP_PRESENCE_PENALTY_MAX,
                          (double)p->presence_penalty);
    if (!(fabsf(p->frequency_penalty) <= SAMP_PRESENCE_PENALTY_MAX))
        return samp__fail(err, errlen, -EINVAL, "frequency_penalty must be in [-%g, %g], got %g",
                          (double)SAMP_PRESENCE_PENALTY_MAX, (double)SAMP_PRESENCE_PENALTY_MAX,
                          (double)p->frequency_penalty);
    if (p->n_logit_bias < 0 || p->n_logit_bias > vocab)
        return samp__fail(err, errlen, -EINVAL,
                          "logit_bias must have between 0 and %d entries (the vocabulary size), got %d",
                          vocab, (int)p->n_logit_bias);
    if (p->n_logit_bias > 0 && !p->logit_bias)
        return samp__fail(err, errlen, -EINVAL, "logit_bias is NULL but has %d entries",
                          (int)p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const samp_logit_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= vocab)
            return samp__fail(err, errlen, -EINVAL, "logit_bias token %d out of range [0, %d)",
                              (int)b->token, vocab);
        if (!(fabsf(b->bias) <= SAMP_LOGIT_BIAS_MAX))
            return samp__fail(err, errlen, -EINVAL,
                              "logit_bias value for token %d must be in [-%g, %g], got %g",
                              (int)b->token, (double)SAMP_LOGIT_BIAS_MAX,
                              (double)SAMP_LOGIT_BIAS_MAX, (double)b->bias);
    }
    if (p->n_logit_bias > 1) {
        int32_t *ids = malloc((size_t)p->n_logit_bias * sizeof *ids);
        if (!ids) return samp__fail(err, errlen, -ENOMEM, "logit_bias: out of memory");
        for (int32_t i = 0; i < p->n_logit_bias; i++) ids[i] = p->logit_bias[i].token;
        qsort(ids, (size_t)p->n_logit_bias, sizeof *ids, samp__cmp_i32);
        for (int32_t i = 1; i < p->n_logit_bias; i++) {
            if (ids[i] == ids[i - 1]) {
                int dup = ids[i];
                free(ids);
                return samp__fail(err, errlen, -EINVAL, "logit_bias token %d appears more than once",
                                  dup);
            }
        }
        free(ids);
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                 */
/* ------------------------------------------------------------------------ */

samp *samp_create(const samp_params *p, int vocab) {
    if (samp_validate(p, vocab, NULL, 0) != 0) return NULL;
    samp *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->p = *p;
    s->vocab = vocab;
    if (p->n_logit_bias > 0) {
        s->bias = malloc((size_t)p->n_logit_bias * sizeof *s->bias);
        if (!s->bias) goto fail;
        memcpy(s->bias, p->logit_bias, (size_t)p->n_logit_bias * sizeof *s->bias);
    }
    s->p.logit_bias = s->bias;
    if (p->repeat_last_n > 0) {
        s->win_cap = p->repeat_last_n;
        s->win = malloc((size_t)s->win_cap * sizeof *s->win);
        s->counts_cap = s->win_cap;
        s->counts = malloc((size_t)s->counts_cap * sizeof *s->counts);
        if (!s->win || !s->counts) goto fail;
    }
    rng_seed(&s->gen, p->seed);
    return s;
fail:
    samp_free(s);
    return NULL;
}

void samp_free(samp *s) {
    if (!s) return;
    free(s->bias);
    free(s->win);
    free(s->counts);
    free(s->cand);
    free(s->ex);
    free(s);
}

void samp_reset(samp *s) {
    if (!s) return;
    s->win_head = s->win_len = 0;
    s->n_counts = 0;
    rng_seed(&s->gen, s->p.seed);
}

int samp_vocab(const samp *s) { return s ? s->vocab : 0; }
int samp_window_len(const samp *s) { return s ? s->win_len : 0; }

/* ------------------------------------------------------------------------ */
/* Penalty window                                                           */
/* ------------------------------------------------------------------------ */

/* Index of token in counts, or -(insertion point) - 1 when absent. */
static int samp__count_find(const samp *s, int32_t token) {
    int lo = 0, hi = s->n_counts;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (s->counts[mid].token < token) lo = mid + 1;
        else hi = mid;
    }
    if (lo < s->n_counts && s->counts[lo].token == token) return lo;
    return -lo - 1;
}

/* Adds one occurrence; grows counts only in the unbounded (-1) mode, where
 * a failure leaves the window unchanged. */
static int samp__count_add(samp *s, int32_t token) {
    int i = samp__count_find(s, token);
    if (i >= 0) {
        s->counts[i].count++;
        return 0;
    }
    i = -i - 1;
    if (s->n_counts == s->counts_cap) {
        int cap = s->counts_cap ? s->counts_cap * 2 : 64;
        samp__count *c = realloc(s->counts, (size_t)cap * sizeof *c);
        if (!c) return -ENOMEM;
        s->counts = c;
        s->counts_cap = cap;
    }
    memmove(&s->counts[i + 1], &s->counts[i], (size_t)(s->n_counts - i) * sizeof *s->counts);
    s->counts[i].token = token;
    s->counts[i].count = 1;
    s->n_counts++;
    return 0;
}

static void samp__count_remove(samp *s, int32_t token) {
    int i = samp__count_find(s, token);
    if (i < 0) return; /* cannot happen: every window token is counted */
    if (--s->counts[i].count == 0) {
        memmove(&s->counts[i], &s->counts[i + 1],
                (size_t)(s->n_counts - i - 1) * sizeof *s->counts);
        s->n_counts--;
    }
}

int samp_accept(samp *s, int32_t token) {
    if (!s || token < 0 || token >= s->vocab) return -EINVAL;
    if (s->p.repeat_last_n == 0) return 0;
    if (s->p.repeat_last_n < 0) {
        int rc = samp__count_add(s, token);
        if (rc) return rc;
        if (s->win_len < INT32_MAX) s->win_len++;
        return 0;
    }
    if (s->win_len == s->win_cap) {
        /* Evict the oldest first: the distinct count then never exceeds
         * win_cap, so the add below never needs to grow. */
        samp__count_remove(s, s->win[s->win_head]);
        s->win[s->win_head] = token;
        s->win_head = (s->win_head + 1) % s->win_cap;
    } else {
        s->win[(s->win_head + s->win_len) % s->win_cap] = token;
        s->win_len++;
    }
    return samp__count_add(s, token);
}

/* logits[V]: repetition, then presence + frequency, once per distinct token
 * of the window (llama.cpp's penalties sampler). */
static void samp__apply_penalties(const samp *s, float *logits) {
    const float rep = s->p.repetition_penalty;
    const float pres = s->p.presence_penalty, freq = s->p.frequency_penalty;
    if (rep == 1.0f && pres == 0.0f && freq == 0.0f) return;
    for (int i = 0; i < s->n_counts; i++) {
        float *l = &logits[s->counts[i].token];
        if (rep != 1.0f) *l = *l <= 0.0f ? *l * rep : *l / rep;
        *l -= (float)s->counts[i].count * freq + pres;
    }
}

/* ------------------------------------------------------------------------ */
/* Candidate selection                                                      */
/* ------------------------------------------------------------------------ */

/* Total order on tokens: a ranks above b when its logit is higher, or equal
 * with a lower id. */
static inline bool samp__above(const float *l, int32_t a, int32_t b) {
    return l[a] > l[b] || (l[a] == l[b] && a < b);
}

/* Sift-down for a heap over ids h[0..n) whose root is the element that ranks
 * lowest (min) when min_root, highest otherwise. */
static void samp__sift_down(const float *l, int32_t *h, size_t n, size_t i, bool min_root) {
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) return;
        if (c + 1 < n && (min_root ? samp__above(l, h[c], h[c + 1])
                                   : samp__above(l, h[c + 1], h[c])))
            c++;
        bool swap = min_root ? samp__above(l, h[i], h[c]) : samp__above(l, h[c], h[i]);
        if (!swap) return;
        int32_t t = h[i];
        h[i] = h[c];
        h[c] = t;
        i = c;
    }
}

static void samp__sift_up(const float *l, int32_t *h, size_t i, bool min_root) {
    while (i > 0) {
        size_t p = (i - 1) / 2;
        bool swap = min_root ? samp__above(l, h[p], h[i]) : samp__above(l, h[i], h[p]);
        if (!swap) return;
        int32_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

static int samp__reserve(samp *s, size_t n) {
    if (s->cand_cap >= n) return 0;
    int32_t *c = realloc(s->cand, n * sizeof *c);
    if (!c) return -ENOMEM;
    s->cand = c;
    s->cand_cap = n;
    return 0;
}

/* Leaves in s->cand[0..*n) the min(k, finite) best tokens, best first.
 * logits[V] must hold -inf for excluded tokens. */
static int samp__top_k(samp *s, const float *l, size_t k, size_t *n) {
    int rc = samp__reserve(s, k);
    if (rc) return rc;
    int32_t *h = s->cand;
    size_t m = 0;
    for (int32_t i = 0; i < s->vocab; i++) {
        if (l[i] == -INFINITY) continue;
        if (m < k) {
            h[m] = i;
            samp__sift_up(l, h, m, true);
            m++;
        } else if (l[i] > l[h[0]]) { /* ids ascend: an equal logit ranks lower */
            h[0] = i;
            samp__sift_down(l, h, m, 0, true);
        }
    }
    /* Heapsort with the lowest-ranked root moved to the back: best first. */
    for (size_t end = m; end > 1; end--) {
        int32_t t = h[0];
        h[0] = h[end - 1];
        h[end - 1] = t;
        samp__sift_down(l, h, end - 1, 0, true);
    }
    *n = m;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Draw                                                                     */
/* ------------------------------------------------------------------------ */

/* Draws one token with probability proportional to exp((l - mx) / temp)
 * among ids[0..n) (ids NULL: all finite tokens of logits[V] with logit >= thr).
 * Consumes exactly one uniform. With ids NULL, ex (V floats, or NULL) holds
 * those weights already when ex_ready and is filled by the first pass
 * otherwise: the same floats either way, so the same draw. */
static int32_t samp__draw(samp *s, const float *l, const int32_t *ids, size_t n,
                          float thr, float mx, float temp, float *ex, bool ex_ready) {
    const float inv_t = 1.0f / temp;
    const size_t count = ids ? n : (size_t)s->vocab;
    double sum = 0.0;
    int32_t last = -1;
    for (size_t j = 0; j < count; j++) {
        int32_t t = ids ? ids[j] : (int32_t)j;
        if (!ids && (l[t] == -INFINITY || l[t] < thr)) continue;
        float e = ex && ex_ready ? ex[t] : expf((l[t] - mx) * inv_t);
        if (ex) ex[t] = e;
        sum += (double)e;
        last = t;
    }
    double target = rng_uniform(&s->gen) * sum;
    double cum = 0.0;
    for (size_t j = 0; j < count; j++) {
        int32_t t = ids ? ids[j] : (int32_t)j;
        if (!ids && (l[t] == -INFINITY || l[t] < thr)) continue;
        cum += (double)(ex ? ex[t] : expf((l[t] - mx) * inv_t));
        if (target < cum) return t;
    }
    return last; /* rounding left target == sum: the last candidate */
}

/* ------------------------------------------------------------------------ */
/* Logprobs                                                                 */
/* ------------------------------------------------------------------------ */

/* Fills out->top with the n_top best tokens and returns log(sum of
 * exp((l - mx) / temp)) over the vocabulary; ex (or NULL) receives each
 * finite token's term. */
static double samp__logprobs(const samp *s, const float *l, float mx, float temp, int n_top,
                             samp_output *out, float *ex) {
    const float inv_t = 1.0f / temp;
    double sum = 0.0;
    int m = 0;
    for (int32_t i = 0; i < s->vocab; i++) {
        if (l[i] == -INFINITY) continue;
        float e = expf((l[i] - mx) * inv_t);
        if (ex) ex[i] = e;
        sum += (double)e;
        if (n_top > 0 && (m < n_top || l[i] > l[out->top[m - 1].token])) {
            int j = m < n_top ? m++ : m - 1;
            while (j > 0 && l[i] > l[out->top[j - 1].token]) {
                out->top[j] = out->top[j - 1];
                j--;
            }
            out->top[j].token = i;
        }
    }
    double lse = log(sum);
    for (int j = 0; j < m; j++)
        out->top[j].logprob = (float)((double)((l[out->top[j].token] - mx) * inv_t) - lse);
    out->n_top = m;
    return lse;
}

/* ------------------------------------------------------------------------ */
/* Sampling                                                                 */
/* ------------------------------------------------------------------------ */

/* The whole chain; out (optional) receives logprobs. */
static int samp__sample(samp *s, float *l, int n_top, samp_output *out, int32_t *out_token) {
    if (!s || !l || !out_token) return -EINVAL;
    const int V = s->vocab;
    const samp_params *p = &s->p;

    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const samp_logit_bias *b = &s->bias[i];
        if (b->bias <= -SAMP_LOGIT_BIAS_MAX) l[b->token] = -INFINITY;
        else l[b->token] += b->bias;
    }
    samp__apply_penalties(s, l);

    /* Non-finite logits are banned; find the greedy choice on the way. */
    float mx = -INFINITY;
    int32_t best = -1;
    for (int32_t i = 0; i < V; i++) {
        if (!isfinite(l[i])) l[i] = -INFINITY;
        else if (l[i] > mx) { /* strict: ties keep the lowest id */
            mx = l[i];
            best = i;
        }
    }
    if (best < 0) return -EDOM;

    const bool greedy = p->temperature == 0.0f;
    const float lp_temp = greedy ? 1.0f : p->temperature;
    const bool use_k = p->top_k > 0 && p->top_k < V;
    const bool use_p = p->top_p < 1.0f;
    /* the plain draw over the whole vocabulary reuses the logprobs' terms */
    const bool whole = !greedy && !use_k && !use_p;
    if (whole && !s->ex && !(s->ex = malloc((size_t)V * sizeof *s->ex))) return -ENOMEM;
    double lse = 0.0;
    if (out) {
        if (n_top < 0) n_top = 0;
        if (n_top > SAMP_TOP_LOGPROBS_MAX) n_top = SAMP_TOP_LOGPROBS_MAX;
        lse = samp__logprobs(s, l, mx, lp_temp, n_top, out, whole ? s->ex : NULL);
    }

    int32_t tok = best;
    if (!greedy) {
        const float thr = p->min_p > 0.0f ? mx + logf(p->min_p) : -INFINITY;
        if (use_k) {
            size_t n;
            int rc = samp__top_k(s, l, (size_t)p->top_k, &n);
            if (rc) return rc;
            const int32_t *c = s->cand;
            if (use_p) { /* renormalised over what top_k kept */
                double z = 0.0, cum = 0.0;
                for (size_t j = 0; j < n; j++) z += (double)expf(l[c[j]] - mx);
                for (size_t j = 0; j < n; j++) {
                    cum += (double)expf(l[c[j]] - mx) / z;
                    if (cum >= (double)p->top_p) {
                        n = j + 1;
                        break;
                    }
                }
            }
            size_t m = 1; /* the best token always passes min_p */
            while (m < n && l[c[m]] >= thr) m++;
            tok = samp__draw(s, l, c, m, thr, mx, p->temperature, NULL, false);
        } else if (use_p) {
            int rc = samp__reserve(s, (size_t)V);
            if (rc) return rc;
            int32_t *h = s->cand;
            /* Both min_p and top_p keep a prefix of the ranking, so the heap
             * needs only the tokens above min_p's threshold, and only those
             * above `near` (a prefix too) when that prefix already holds
             * top_p of the mass: usually a few hundred tokens, not V. */
            const float near = mx - SAMP__NEAR_LOGIT;
            double z = 0.0, z_near = 0.0;
            for (int32_t i = 0; i < V; i++) {
                if (l[i] == -INFINITY) continue;
                double e = (double)expf(l[i] - mx);
                z += e;
                if (l[i] >= near) z_near += e;
            }
            const float cut = z_near >= (double)p->top_p * z && near > thr ? near : thr;
            size_t n = 0;
            for (int32_t i = 0; i < V; i++)
                if (l[i] != -INFINITY && l[i] >= cut) h[n++] = i;
            for (size_t i = n / 2; i-- > 0;) samp__sift_down(l, h, n, i, false);
            /* Pop best-first into the back of the array until top_p is met. */
            double cum = 0.0;
            size_t end = n;
            while (end > 0) {
                int32_t t = h[0];
                h[0] = h[end - 1];
                h[end - 1] = t;
                end--;
                samp__sift_down(l, h, end, 0, false);
                cum += (double)expf(l[t] - mx) / z;
                if (cum >= (double)p->top_p) break;
            }
            tok = samp__draw(s, l, h + end, n - end, thr, mx, p->temperature, NULL, false);
        } else {
            tok = samp__draw(s, l, NULL, 0, thr, mx, p->temperature, s->ex, out != NULL);
        }
    }

    if (out) {
        out->token = tok;
        /* Same arithmetic as samp__logprobs: equal to tok's top[] entry. */
        out->logprob = (float)((double)((l[tok] - mx) * (1.0f / lp_temp)) - lse);
    }
    *out_token = tok;
    return 0;
}

int samp_sample(samp *s, float *logits, int32_t *out_token) {
    return samp__sample(s, logits, 0, NULL, out_token);
}

int samp_sample_ex(samp *s, float *logits, int n_top, samp_output *out) {
    int32_t tok;
    if (!out) return -EINVAL;
    return samp__sample(s, logits, n_top, out, &tok);
}
