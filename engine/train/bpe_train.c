/* bpe_train.c - learning a GPT-2 byte-level BPE vocabulary (bpe_train.h).
 *
 * Three stages, each over its own tables:
 *   - counting: the corpus is cut at special tokens and pre-tokenized by the
 *     tokenizer's own splitter (tok__bpe_split), distinct pre-tokens ("words")
 *     are counted in a hash map whose keys point into the corpus;
 *   - statistics: every word becomes a row of symbol ids in one int32 array;
 *     a pair map holds, per adjacent pair, its weighted count and the words
 *     that held it when it formed; a max-heap orders the candidates;
 *   - merging: the best pair is merged in the words its list names, each
 *     word's pairs are subtracted before and added back after, and the pairs
 *     that gained (those holding the new token: no other pair can gain) are
 *     queued with their new counts.
 * Heap entries are never removed when a count drops; an entry whose count is
 * out of date is re-queued at the current count when it reaches the top.
 * That is exact because a stored count is never below the current one.
 */
#include "bpe_train.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"
#include "tok_utf8.h"

#define bpe__err eng_fail

/* ---- tables ------------------------------------------------------------------ */

typedef struct bpe__word {
    const char *text; /* borrowed from the corpus */
    uint32_t len;     /* bytes */
    uint32_t n;       /* symbols now (len at first; merges shrink it) */
    size_t off;       /* its symbols are sym[off .. off + n) */
    uint64_t hash;
    int64_t count;    /* occurrences in the corpus */
} bpe__word;

typedef struct bpe__vslot {
    const char *s; /* token string (owned by the vocab) or special text (borrowed) */
    uint32_t len;
    int32_t id;    /* token id; -1 empty; -2 - k for special token k */
} bpe__vslot;

typedef struct bpe__pair {
    uint64_t key;     /* (left << 32) | right; UINT64_MAX empty */
    int64_t count;    /* occurrences, weighted by word counts */
    uint32_t *where;  /* words that held the pair when it formed (some may not now) */
    uint32_t n_where, cap_where;
    uint32_t stamp;   /* merge that last queued it, to queue it once per merge */
    bool banned;      /* its merge would give a special token's text */
} bpe__pair;

typedef struct bpe__hent {
    int64_t count; /* the pair's count when queued: never below its count now */
    int32_t a, b;
} bpe__hent;

typedef struct bpe__tr {
    const bpe_train_options *opt;
    /* words */
    bpe__word *w;
    size_t n_w, cap_w;
    uint32_t *wslot; /* [wslot_cap] word index + 1, 0 empty */
    size_t wslot_cap;
    uint64_t n_pretokens;
    int32_t *sym;    /* every word's symbols */
    /* vocabulary */
    char **str;      /* [n_v] byte-level token strings */
    uint32_t *slen;
    size_t n_v, cap_v;
    bpe__vslot *vslot;
    size_t vslot_cap, vslot_used;
    /* pairs and candidates */
    bpe__pair *p;
    size_t p_cap, p_used;
    bpe__hent *h;
    size_t n_h, cap_h;
    uint64_t *touched; /* pairs that gained during this merge */
    size_t n_touched, cap_touched;
    /* merges */
    char **merges;
    int64_t *merge_count;
    size_t n_m, cap_m;
} bpe__tr;

/* Array v of capacity *cap elements of sz bytes, grown (doubling) to hold
 * need; NULL when memory runs out (v is then unchanged). */
static void *bpe__grow(void *v, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return v;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    if (c > SIZE_MAX / sz) return NULL;
    void *p = realloc(v, c * sz);
    if (p) *cap = c;
    return p;
}

static uint64_t bpe__pair_key(int32_t a, int32_t b) {
    return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
}

/* ---- vocabulary: token strings and the string -> id map ------------------------ */

static int bpe__vmap_grow(bpe__tr *tr) {
    size_t cap = tr->vslot_cap ? tr->vslot_cap * 2 : 1024;
    bpe__vslot *s = malloc(cap * sizeof *s);
    if (!s) return TOK_ENOMEM;
    for (size_t i = 0; i < cap; i++) s[i].id = -1;
    for (size_t i = 0; i < tr->vslot_cap; i++) {
        if (tr->vslot[i].id == -1) continue;
        size_t j = (size_t)tok__hash(tr->vslot[i].s, tr->vslot[i].len) & (cap - 1);
        while (s[j].id != -1) j = (j + 1) & (cap - 1);
        s[j] = tr->vslot[i];
    }
    free(tr->vslot);
    tr->vslot = s;
    tr->vslot_cap = cap;
    return TOK_OK;
}

/* The slot holding s[0..len), or the empty slot where it would go. */
static bpe__vslot *bpe__vmap_slot(const bpe__tr *tr, const char *s, size_t len) {
    size_t mask = tr->vslot_cap - 1, j = (size_t)tok__hash(s, len) & mask;
    for (;; j = (j + 1) & mask) {
        bpe__vslot *v = &tr->vslot[j];
        if (v->id == -1 || (v->len == len && memcmp(v->s, s, len) == 0)) return v;
    }
}

/* Maps s (kept, not copied) to id; the string must not be in the map. */
static int bpe__vmap_put(bpe__tr *tr, const char *s, size_t len, int32_t id) {
    int rc;
    if (2 * (tr->vslot_used + 1) > tr->vslot_cap && (rc = bpe__vmap_grow(tr))) return rc;
    *bpe__vmap_slot(tr, s, len) = (bpe__vslot){s, (uint32_t)len, id};
    tr->vslot_used++;
    return TOK_OK;
}

/* Appends token s (steals it) with the next id. */
static int bpe__vocab_add(bpe__tr *tr, char *s, size_t len) {
    if (tr->n_v == tr->cap_v) { /* str and slen share one capacity */
        size_t cap = tr->cap_v ? 2 * tr->cap_v : 1024;
        char **str = realloc(tr->str, cap * sizeof *str);
        if (str) tr->str = str;
        uint32_t *sl = str ? realloc(tr->slen, cap * sizeof *sl) : NULL;
        if (sl) tr->slen = sl;
        if (!sl) goto nomem;
        tr->cap_v = cap;
    }
    if (bpe__vmap_put(tr, s, len, (int32_t)tr->n_v)) goto nomem;
    tr->str[tr->n_v] = s;
    tr->slen[tr->n_v++] = (uint32_t)len;
    return TOK_OK;
nomem:
    free(s);
    return TOK_ENOMEM;
}

/* The 256 byte tokens in GPT-2's order (by code point of their string:
 * self-standing bytes first, then the 68 remapped ones), and id_of[byte]. */
static int bpe__vocab_bytes(bpe__tr *tr, int32_t id_of[256]) {
    uint32_t cp[256];
    tok__byte_to_unicode(cp);
    for (int pass = 0; pass < 2; pass++) {
        for (int b = 0; b < 256; b++) {
            if ((cp[b] == (uint32_t)b) != (pass == 0)) continue;
            char *s = malloc(4);
            if (!s) return TOK_ENOMEM;
            size_t l = tok_utf8_encode(cp[b], s);
            s[l] = '\0';
            id_of[b] = (int32_t)tr->n_v;
            int rc = bpe__vocab_add(tr, s, l);
            if (rc) return rc;
        }
    }
    return TOK_OK;
}

/* Puts the specials in the string map (so merges avoid them), rejecting
 * NULL, empty and repeated ones and those equal to a byte token. */
static int bpe__vocab_specials(bpe__tr *tr, tok_err *err) {
    const bpe_train_options *o = tr->opt;
    for (size_t k = 0; k < o->n_special; k++) {
        const char *s = o->special[k];
        if (!s || !*s)
            return bpe__err(err, TOK_EINVAL, "bpe_train_run: special token %zu is %s", k,
                            s ? "empty" : "NULL");
        size_t len = strlen(s);
        if (len > UINT32_MAX)
            return bpe__err(err, TOK_EINVAL, "bpe_train_run: special token %zu is too long", k);
        const bpe__vslot *v = bpe__vmap_slot(tr, s, len);
        if (v->id >= 0)
            return bpe__err(err, TOK_EINVAL, "bpe_train_run: special token %zu (\"%.40s\") is the string of byte token %d",
                            k, s, v->id);
        if (v->id < -1)
            return bpe__err(err, TOK_EINVAL, "bpe_train_run: special token %zu (\"%.40s\") repeats special token %d",
                            k, s, -2 - v->id);
        int rc = bpe__vmap_put(tr, s, len, -2 - (int32_t)k);
        if (rc) return bpe__err(err, rc, "bpe_train_run: out of memory for special tokens");
    }
    return TOK_OK;
}

/* ---- counting words ----------------------------------------------------------- */

static int bpe__words_grow(bpe__tr *tr) {
    size_t cap = tr->wslot_cap ? tr->wslot_cap * 2 : 4096;
    uint32_t *s = calloc(cap, sizeof *s);
    if (!s) return TOK_ENOMEM;
    for (size_t i = 0; i < tr->n_w; i++) {
        size_t j = (size_t)tr->w[i].hash & (cap - 1);
        while (s[j]) j = (j + 1) & (cap - 1);
        s[j] = (uint32_t)i + 1;
    }
    free(tr->wslot);
    tr->wslot = s;
    tr->wslot_cap = cap;
    return TOK_OK;
}

/* tok__bpe_split's callback: counts pre-token w[0..m). */
static int bpe__count_word(void *ctx, const char *w, size_t m) {
    bpe__tr *tr = ctx;
    if (m == 0) return TOK_OK;
    tr->n_pretokens++;
    uint64_t h = tok__hash(w, m);
    size_t mask = tr->wslot_cap - 1, j = (size_t)h & mask;
    for (; tr->wslot[j]; j = (j + 1) & mask) {
        bpe__word *x = &tr->w[tr->wslot[j] - 1];
        if (x->hash == h && x->len == m && memcmp(x->text, w, m) == 0) {
            x->count++;
            return TOK_OK;
        }
    }
    bpe__word *ws = bpe__grow(tr->w, &tr->cap_w, tr->n_w + 1, sizeof *tr->w);
    if (!ws) return TOK_ENOMEM;
    tr->w = ws;
    tr->w[tr->n_w] = (bpe__word){w, (uint32_t)m, (uint32_t)m, 0, h, 1};
    tr->wslot[j] = (uint32_t)++tr->n_w;
    if (2 * tr->n_w > tr->wslot_cap) return bpe__words_grow(tr);
    return TOK_OK;
}

/* The next special token at or after pos (leftmost, then longest, as
 * tok_encode finds them); next[k] caches special k's next occurrence
 * (SIZE_MAX: not searched yet; len: none).
 * Returns its index, or -1 when none is left. */
static long bpe__next_special(const bpe__tr *tr, const char *text, size_t len, size_t pos,
                              size_t *next) {
    const bpe_train_options *o = tr->opt;
    long best = -1;
    for (size_t k = 0; k < o->n_special; k++) {
        size_t l = strlen(o->special[k]);
        if (next[k] == SIZE_MAX || next[k] < pos) { /* not searched, consumed or overlapped */
            const char *f = memmem(text + pos, len - pos, o->special[k], l);
            next[k] = f ? (size_t)(f - text) : len;
        }
        if (next[k] >= len) continue;
        if (best < 0 || next[k] < next[best] ||
            (next[k] == next[best] && l > strlen(o->special[best])))
            best = (long)k;
    }
    return best;
}

/* Counts the pre-tokens of text, cut at special tokens. */
static int bpe__count_corpus(bpe__tr *tr, const tok *splitter, const char *text, size_t len) {
    size_t n_sp = tr->opt->n_special, pos = 0;
    size_t *next = calloc(n_sp ? n_sp : 1, sizeof *next);
    tok__scratch sc;
    memset(&sc, 0, sizeof sc);
    int rc = next ? bpe__words_grow(tr) : TOK_ENOMEM;
    for (size_t k = 0; next && k < n_sp; k++) next[k] = SIZE_MAX;
    while (rc == TOK_OK && pos < len) {
        long k = bpe__next_special(tr, text, len, pos, next);
        size_t at = k < 0 ? len : next[k];
        if (at > pos) rc = tok__bpe_split(splitter, &sc, text + pos, at - pos, bpe__count_word, tr);
        if (k < 0) break;
        pos = at + strlen(tr->opt->special[k]);
    }
    tok__bpe_scratch_free(&sc);
    free(next);
    return rc;
}

/* ---- pair statistics -------------------------------------------------------- */

static int bpe__pairs_grow(bpe__tr *tr) {
    size_t cap = tr->p_cap ? tr->p_cap * 2 : 4096;
    bpe__pair *p = calloc(cap, sizeof *p);
    if (!p) return TOK_ENOMEM;
    for (size_t i = 0; i < cap; i++) p[i].key = UINT64_MAX;
    for (size_t i = 0; i < tr->p_cap; i++) {
        if (tr->p[i].key == UINT64_MAX) continue;
        size_t j = (size_t)((tr->p[i].key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
        while (p[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        p[j] = tr->p[i];
    }
    free(tr->p);
    tr->p = p;
    tr->p_cap = cap;
    return TOK_OK;
}

/* Index of pair key's slot, or of the empty slot where it would go. */
static size_t bpe__pair_slot(const bpe__tr *tr, uint64_t key) {
    size_t mask = tr->p_cap - 1, j = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & mask;
    while (tr->p[j].key != key && tr->p[j].key != UINT64_MAX) j = (j + 1) & mask;
    return j;
}

/* Adds delta to pair (a, b), creating it; *at gets its slot, valid until
 * the next insertion. */
static int bpe__pair_add(bpe__tr *tr, int32_t a, int32_t b, int64_t delta, size_t *at) {
    uint64_t key = bpe__pair_key(a, b);
    size_t j = bpe__pair_slot(tr, key);
    if (tr->p[j].key == UINT64_MAX) {
        if (2 * (tr->p_used + 1) > tr->p_cap) {
            int rc = bpe__pairs_grow(tr);
            if (rc) return rc;
            j = bpe__pair_slot(tr, key);
        }
        tr->p[j].key = key;
        tr->p_used++;
    }
    tr->p[j].count += delta;
    *at = j;
    return TOK_OK;
}

/* Notes that word wi holds the pair at slot j (once per word: a word's
 * pairs are added one word at a time, so a repeat is the last entry). */
static int bpe__pair_where(bpe__tr *tr, size_t j, uint32_t wi) {
    bpe__pair *p = &tr->p[j];
    if (p->n_where && p->where[p->n_where - 1] == wi) return TOK_OK;
    if (p->n_where == p->cap_where) {
        if (p->cap_where > UINT32_MAX / 2) return TOK_ENOMEM;
        uint32_t cap = p->cap_where ? p->cap_where * 2 : 4;
        uint32_t *w = realloc(p->where, cap * sizeof *w);
        if (!w) return TOK_ENOMEM;
        p->where = w;
        p->cap_where = cap;
    }
    p->where[p->n_where++] = wi;
    return TOK_OK;
}

/* ---- candidate heap: highest count first, then smallest strings ------------- */

static int bpe__strcmp(const bpe__tr *tr, int32_t x, int32_t y) {
    uint32_t lx = tr->slen[x], ly = tr->slen[y];
    int c = memcmp(tr->str[x], tr->str[y], lx < ly ? lx : ly);
    return c ? c : (lx > ly) - (lx < ly);
}

static bool bpe__before(const bpe__tr *tr, const bpe__hent *x, const bpe__hent *y) {
    if (x->count != y->count) return x->count > y->count;
    int c = bpe__strcmp(tr, x->a, y->a);
    return c ? c < 0 : bpe__strcmp(tr, x->b, y->b) < 0;
}

static int bpe__heap_push(bpe__tr *tr, bpe__hent e) {
    bpe__hent *h = bpe__grow(tr->h, &tr->cap_h, tr->n_h + 1, sizeof *tr->h);
    if (!h) return TOK_ENOMEM;
    tr->h = h;
    size_t i = tr->n_h++;
    while (i > 0 && bpe__before(tr, &e, &tr->h[(i - 1) / 2])) {
        tr->h[i] = tr->h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    tr->h[i] = e;
    return TOK_OK;
}

static bool bpe__heap_pop(bpe__tr *tr, bpe__hent *out) {
    if (!tr->n_h) return false;
    *out = tr->h[0];
    bpe__hent last = tr->h[--tr->n_h];
    size_t i = 0, n = tr->n_h;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && bpe__before(tr, &tr->h[c + 1], &tr->h[c])) c++;
        if (!bpe__before(tr, &tr->h[c], &last)) break;
        tr->h[i] = tr->h[c];
        i = c;
    }
    if (n) tr->h[i] = last;
    return true;
}

/* Symbols for every word, every adjacent pair counted, every pair queued. */
static int bpe__stats_init(bpe__tr *tr, const int32_t id_of[256]) {
    size_t total = 0, at;
    for (size_t i = 0; i < tr->n_w; i++) total += tr->w[i].len;
    tr->sym = malloc((total ? total : 1) * sizeof *tr->sym);
    int rc = tr->sym ? bpe__pairs_grow(tr) : TOK_ENOMEM;
    total = 0;
    for (size_t i = 0; i < tr->n_w && !rc; i++) {
        bpe__word *w = &tr->w[i];
        w->off = total;
        total += w->len;
        int32_t *s = tr->sym + w->off;
        for (uint32_t k = 0; k < w->len; k++) s[k] = id_of[(unsigned char)w->text[k]];
        for (uint32_t k = 0; k + 1 < w->len && !rc; k++)
            if (!(rc = bpe__pair_add(tr, s[k], s[k + 1], w->count, &at)))
                rc = bpe__pair_where(tr, at, (uint32_t)i);
    }
    for (size_t j = 0; j < tr->p_cap && !rc; j++)
        if (tr->p[j].key != UINT64_MAX && tr->p[j].count > 0)
            rc = bpe__heap_push(tr, (bpe__hent){tr->p[j].count, (int32_t)(tr->p[j].key >> 32),
                                                (int32_t)(uint32_t)tr->p[j].key});
    return rc;
}

/* ---- merging ---------------------------------------------------------------- */

/* Notes that pair slot j gained in merge stamp (once per merge). */
static int bpe__touch(bpe__tr *tr, size_t j, uint32_t stamp) {
    if (tr->p[j].stamp == stamp) return TOK_OK;
    tr->p[j].stamp = stamp;
    uint64_t *t = bpe__grow(tr->touched, &tr->cap_touched, tr->n_touched + 1, sizeof *t);
    if (!t) return TOK_ENOMEM;
    tr->touched = t;
    tr->touched[tr->n_touched++] = tr->p[j].key;
    return TOK_OK;
}

/* Merges every (a, b) in word wi into c, left to right, keeping the pair
 * counts exact: the word's pairs are taken out before and put back after.
 * A word that no longer holds the pair (a stale list entry) is left alone. */
static int bpe__merge_word(bpe__tr *tr, uint32_t wi, int32_t a, int32_t b, int32_t c,
                           uint32_t stamp) {
    bpe__word *w = &tr->w[wi];
    int32_t *s = tr->sym + w->off;
    uint32_t n = w->n, i = 0, j = 0;
    size_t at;
    int rc = TOK_OK;
    while (i + 1 < n && !(s[i] == a && s[i + 1] == b)) i++;
    if (i + 1 >= n) return TOK_OK;
    for (uint32_t k = 0; k + 1 < n; k++) /* every pair of the word is in the map */
        tr->p[bpe__pair_slot(tr, bpe__pair_key(s[k], s[k + 1]))].count -= w->count;
    for (i = 0; i < n; j++) {
        bool hit = i + 1 < n && s[i] == a && s[i + 1] == b;
        s[j] = hit ? c : s[i];
        i += hit ? 2 : 1;
    }
    w->n = n = j;
    for (uint32_t k = 0; k + 1 < n && !rc; k++) {
        if ((rc = bpe__pair_add(tr, s[k], s[k + 1], w->count, &at))) break;
        if (s[k] == c || s[k + 1] == c) /* only these can have gained */
            if (!(rc = bpe__pair_where(tr, at, wi))) rc = bpe__touch(tr, at, stamp);
    }
    return rc;
}

/* Records merge "a b" that occurred count times. */
static int bpe__record(bpe__tr *tr, int32_t a, int32_t b, int64_t count) {
    size_t la = tr->slen[a], lb = tr->slen[b];
    if (tr->n_m == tr->cap_m) { /* merges and merge_count share one capacity */
        size_t cap = tr->cap_m ? 2 * tr->cap_m : 1024;
        char **m = realloc(tr->merges, cap * sizeof *m);
        if (m) tr->merges = m;
        int64_t *mc = m ? realloc(tr->merge_count, cap * sizeof *mc) : NULL;
        if (!mc) return TOK_ENOMEM;
        tr->merge_count = mc;
        tr->cap_m = cap;
    }
    char *m = malloc(la + lb + 2);
    if (!m) return TOK_ENOMEM;
    memcpy(m, tr->str[a], la);
    m[la] = ' ';
    memcpy(m + la + 1, tr->str[b], lb + 1);
    tr->merges[tr->n_m] = m;
    tr->merge_count[tr->n_m++] = count;
    return TOK_OK;
}

/* The token a + b makes: an existing one, a new one, or -1 when the string
 * is a special token's (the caller bans the pair). */
static int bpe__merged_token(bpe__tr *tr, int32_t a, int32_t b, int32_t *c) {
    size_t la = tr->slen[a], lb = tr->slen[b];
    char *s = malloc(la + lb + 1);
    if (!s) return TOK_ENOMEM;
    memcpy(s, tr->str[a], la);
    memcpy(s + la, tr->str[b], lb + 1);
    const bpe__vslot *v = bpe__vmap_slot(tr, s, la + lb);
    if (v->id != -1) {
        *c = v->id >= 0 ? v->id : -1;
        free(s);
        return TOK_OK;
    }
    *c = (int32_t)tr->n_v;
    return bpe__vocab_add(tr, s, la + lb);
}

/* Merges pair (a, b), which occurs count times, everywhere; queues the
 * pairs that gained. *merged is false when the pair was banned instead. */
static int bpe__merge(bpe__tr *tr, int32_t a, int32_t b, int64_t count, bool *merged) {
    int32_t c = -1;
    int rc = bpe__merged_token(tr, a, b, &c);
    size_t j = bpe__pair_slot(tr, bpe__pair_key(a, b));
    *merged = !rc && c >= 0;
    if (rc || c < 0) {
        tr->p[j].banned = !rc;
        return rc;
    }
    if ((rc = bpe__record(tr, a, b, count))) return rc;
    uint32_t *list = tr->p[j].where, n = tr->p[j].n_where, stamp = (uint32_t)tr->n_m;
    tr->p[j].where = NULL; /* the list is walked while the map may grow */
    tr->p[j].n_where = tr->p[j].cap_where = 0;
    tr->n_touched = 0;
    for (uint32_t k = 0; k < n && !rc; k++) rc = bpe__merge_word(tr, list[k], a, b, c, stamp);
    free(list);
    for (size_t k = 0; k < tr->n_touched && !rc; k++) {
        const bpe__pair *p = &tr->p[bpe__pair_slot(tr, tr->touched[k])];
        if (p->count > 0)
            rc = bpe__heap_push(tr, (bpe__hent){p->count, (int32_t)(p->key >> 32), (int32_t)(uint32_t)p->key});
    }
    return rc;
}

/* The merge loop: until the vocabulary is full or no pair is frequent enough. */
static int bpe__learn(bpe__tr *tr) {
    const bpe_train_options *o = tr->opt;
    size_t target = o->vocab_size - o->n_special, total = target - BPE_TRAIN_N_BYTES;
    size_t every = o->progress_every ? o->progress_every : 1;
    bpe__hent top;
    int rc = TOK_OK;
    while (tr->n_v < target && bpe__heap_pop(tr, &top)) {
        const bpe__pair *p = &tr->p[bpe__pair_slot(tr, bpe__pair_key(top.a, top.b))];
        if (p->count <= 0 || p->banned) continue;
        if (p->count != top.count) { /* out of date: queue it at its count now */
            if ((rc = bpe__heap_push(tr, (bpe__hent){p->count, top.a, top.b}))) return rc;
            continue;
        }
        if (top.count < o->min_frequency) break;
        bool merged;
        if ((rc = bpe__merge(tr, top.a, top.b, top.count, &merged))) return rc;
        if (merged && o->progress && tr->n_m % every == 0)
            o->progress(o->progress_ctx, tr->n_v - BPE_TRAIN_N_BYTES, total);
    }
    if (o->progress) o->progress(o->progress_ctx, tr->n_v - BPE_TRAIN_N_BYTES, total);
    return TOK_OK;
}

/* ---- result ------------------------------------------------------------------ */

/* Moves the vocabulary and merges into *out and appends the specials. */
static int bpe__result(bpe__tr *tr, bpe_train_result *out) {
    const bpe_train_options *o = tr->opt;
    size_t n = tr->n_v + o->n_special;
    out->tokens = calloc(n, sizeof *out->tokens);
    if (!out->tokens) return TOK_ENOMEM;
    out->n_tokens = n; /* from here bpe_train_free cleans up */
    out->types = malloc(n * sizeof *out->types);
    if (!out->types) return TOK_ENOMEM;
    for (size_t i = 0; i < o->n_special; i++)
        if (!(out->tokens[tr->n_v + i] = strdup(o->special[i]))) return TOK_ENOMEM;
    for (size_t i = 0; i < n; i++) out->types[i] = i < tr->n_v ? TOK_TYPE_NORMAL : TOK_TYPE_CONTROL;
    memcpy(out->tokens, tr->str, tr->n_v * sizeof *tr->str);
    tr->n_v = 0; /* the strings belong to out now */
    out->n_learnt = n - o->n_special - BPE_TRAIN_N_BYTES;
    out->merges = tr->merges;
    out->merge_count = tr->merge_count;
    out->n_merges = tr->n_m;
    tr->merges = NULL;
    tr->merge_count = NULL;
    tr->n_m = 0;
    out->n_words = tr->n_w;
    out->n_pretokens = tr->n_pretokens;
    return TOK_OK;
}

static void bpe__tr_free(bpe__tr *tr) {
    for (size_t i = 0; i < tr->n_v; i++) free(tr->str[i]);
    for (size_t i = 0; i < tr->n_m; i++) free(tr->merges[i]);
    for (size_t i = 0; i < tr->p_cap; i++) free(tr->p[i].where);
    free(tr->str);
    free(tr->slen);
    free(tr->vslot);
    free(tr->w);
    free(tr->wslot);
    free(tr->sym);
    free(tr->p);
    free(tr->h);
    free(tr->touched);
    free(tr->merges);
    free(tr->merge_count);
}

/* ---- public ------------------------------------------------------------------- */

void bpe_train_options_init(bpe_train_options *o) {
    memset(o, 0, sizeof *o);
    o->min_frequency = 2;
    o->progress_every = 100;
}

static int bpe__check(const char *text, size_t len, const bpe_train_options *o, tok_err *err) {
    if (!o || (!text && len) || (o->n_special && !o->special))
        return bpe__err(err, TOK_EINVAL, "bpe_train_run: NULL argument");
    if (o->vocab_size < BPE_TRAIN_N_BYTES + o->n_special || o->n_special > INT32_MAX)
        return bpe__err(err, TOK_EINVAL,
                        "bpe_train_run: vocab_size %zu is less than the 256 byte tokens plus %zu special tokens",
                        o->vocab_size, o->n_special);
    if (o->vocab_size > INT32_MAX)
        return bpe__err(err, TOK_EINVAL, "bpe_train_run: vocab_size %zu is over the limit %d",
                        o->vocab_size, INT32_MAX);
    if (o->min_frequency < 0)
        return bpe__err(err, TOK_EINVAL, "bpe_train_run: min_frequency %lld is negative",
                        (long long)o->min_frequency);
    if (len > UINT32_MAX)
        return bpe__err(err, TOK_EINVAL, "bpe_train_run: corpus of %zu bytes is over the limit %u",
                        len, UINT32_MAX);
    return TOK_OK;
}

int bpe_train_run(bpe_train_result *out, const char *text, size_t len, const bpe_train_options *opt,
                  tok_err *err) {
    if (!out) return bpe__err(err, TOK_EINVAL, "bpe_train_run: out is NULL");
    memset(out, 0, sizeof *out);
    int rc = bpe__check(text, len, opt, err);
    if (rc) return rc;
    bpe__tr tr;
    memset(&tr, 0, sizeof tr);
    tr.opt = opt;
    tok *splitter = NULL; /* the byte tokens only: it carries the pre-tokenizer regex */
    int32_t id_of[256];
    const char *stage = "the byte tokens"; /* what ran out of memory */
    if ((rc = bpe__vocab_bytes(&tr, id_of))) goto nomem;
    if ((rc = bpe__vocab_specials(&tr, err)) ||
        (rc = tok_create_bpe(&splitter, (const char *const *)tr.str, BPE_TRAIN_N_BYTES, NULL, 0,
                             NULL, NULL, err)))
        goto fail;
    stage = "counting words";
    if ((rc = bpe__count_corpus(&tr, splitter, text, len))) goto nomem;
    if (tr.n_w == 0) {
        rc = bpe__err(err, TOK_EINVAL, "bpe_train_run: corpus is empty%s",
                      len ? " (it holds nothing but special tokens)" : "");
        goto fail;
    }
    stage = "pair counts";
    if ((rc = bpe__stats_init(&tr, id_of))) goto nomem;
    stage = "merges";
    if ((rc = bpe__learn(&tr))) goto nomem;
    stage = "the result";
    if ((rc = bpe__result(&tr, out))) goto nomem;
    tok_free(splitter);
    bpe__tr_free(&tr);
    return TOK_OK;
nomem:
    bpe__err(err, rc, "bpe_train_run: out of memory for %s", stage);
fail:
    tok_free(splitter);
    bpe__tr_free(&tr);
    bpe_train_free(out);
    return rc;
}

void bpe_train_free(bpe_train_result *r) {
    if (!r) return;
    for (size_t i = 0; r->tokens && i < r->n_tokens; i++) free(r->tokens[i]);
    for (size_t i = 0; r->merges && i < r->n_merges; i++) free(r->merges[i]);
    free(r->tokens);
    free(r->types);
    free(r->merges);
    free(r->merge_count);
    memset(r, 0, sizeof *r);
}
