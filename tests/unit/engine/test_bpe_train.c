/* test_bpe_train.c - BPE training (engine/train/bpe_train.c).
 *
 *   - hand-checked corpora: the first merges, their counts and ids, the
 *     byte-token order, left-to-right merging inside a word, min_frequency;
 *   - a naive reference trainer (recount every pair at every merge) on
 *     generated corpora whose pre-tokens are easy to write down (lower-case
 *     words, single spaces, newlines): tokens, merges and counts must match
 *     exactly, ties and reused tokens included;
 *   - determinism: two runs give the same result;
 *   - the trained vocabulary works with tok_create_bpe: every merge is
 *     usable, encode then decode gives the text back (UTF-8, emoji,
 *     whitespace runs, invalid bytes, held-out text), far fewer tokens than
 *     bytes, specials are CONTROL and parsed as one id;
 *   - errors, progress calls, and the speed of 4k merges on ~2 MB (printed).
 */
#include "tu_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>

#include "bpe_train.h"
#include "tok.h"

/* ---- helpers -------------------------------------------------------------------- */

static bpe_train_result train(const char *text, size_t len, size_t vocab, int64_t minf,
                              const char *const *sp, size_t n_sp) {
    bpe_train_options o;
    bpe_train_options_init(&o);
    o.vocab_size = vocab;
    o.min_frequency = minf;
    o.special = sp;
    o.n_special = n_sp;
    bpe_train_result r;
    tok_err err = {0};
    int rc = bpe_train_run(&r, text, len, &o, &err);
    if (rc) fprintf(stderr, "bpe_train_run: %s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    return r;
}

static tok *make_tok(const bpe_train_result *r) {
    tok *t = NULL;
    tok_err err = {0};
    int rc = tok_create_bpe(&t, (const char *const *)r->tokens, r->n_tokens,
                            (const char *const *)r->merges, r->n_merges, r->types, NULL, &err);
    if (rc) fprintf(stderr, "tok_create_bpe: %s\n", err.msg);
    assert_int_equal(rc, TOK_OK);
    return t;
}

static int32_t *enc(const tok *t, const char *s, size_t len, unsigned flags, size_t *n) {
    size_t need = 0;
    int rc = tok_encode(t, s, len, flags, NULL, 0, &need, NULL);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    int32_t *ids = malloc((need + 1) * sizeof *ids);
    assert_non_null(ids);
    assert_int_equal(tok_encode(t, s, len, flags, ids, need, n, NULL), TOK_OK);
    return ids;
}

/* Encodes and decodes s; asserts the bytes come back; returns the id count. */
static size_t round_trip(const tok *t, const char *s, size_t len, unsigned enc_flags) {
    size_t n, need = 0, got;
    int32_t *ids = enc(t, s, len, enc_flags, &n);
    unsigned df = (enc_flags & TOK_ENC_PARSE_SPECIAL) ? TOK_DEC_SPECIAL : 0;
    int rc = tok_decode(t, ids, n, df, NULL, 0, &need, NULL);
    assert_true(rc == TOK_OK || rc == TOK_ESPACE);
    char *back = malloc(need + 1);
    assert_non_null(back);
    assert_int_equal(tok_decode(t, ids, n, df, back, need, &got, NULL), TOK_OK);
    assert_int_equal(got, len);
    assert_memory_equal(back, s, len);
    free(back);
    free(ids);
    return n;
}

/* Appends printf output to a growing buffer. */
typedef struct buf {
    char *p;
    size_t n, cap;
} buf;

static void put(buf *b, const char *s, size_t len) {
    if (b->n + len + 1 > b->cap) {
        b->cap = (b->n + len + 1) * 2;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void puts_(buf *b, const char *s) { put(b, s, strlen(s)); }

static uint64_t rng_next(uint64_t *s) {
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Word k of a made-up language: common English words first, then words
 * of 1-4 syllables drawn from k's hash (some capitalised, some accented). */
static void gen_word(buf *b, size_t k) {
    static const char *common[] = {
        "the", "of", "and", "to", "in", "is", "was", "that", "for", "it", "with", "as", "his",
        "on", "be", "at", "by", "had", "not", "are", "but", "from", "or", "have", "an", "they",
        "which", "one", "you", "were", "her", "all", "she", "there", "would", "their", "we",
        "him", "been", "has", "when", "who", "will", "more", "no", "if", "out", "so", "said",
        "what", "up", "its", "about", "into", "than", "them", "can", "only", "other", "new",
        "caf\xC3\xA9", "na\xC3\xAFve", "\xE4\xB8\xAD\xE6\x96\x87", "\xF0\x9F\x98\x80",
        "don't", "it's", "we're", "Paris", "The", "It"};
    static const char *syl[] = {
        "con", "ter", "ing", "ab", "tion", "pre", "re", "de", "ver", "al", "an", "en", "ist",
        "or", "ma", "li", "ca", "to", "mo", "ra", "ne", "ti", "ous", "ment", "ly", "ble", "st",
        "qu", "ph", "gr", "sh", "ch", "th", "wa", "ke", "fi", "lo", "nu", "ze", "ro", "vi",
        "\xC3\xA9", "\xC3\xBC", "\xE4\xBA\xAC", "\xD0\xBC\xD0\xB8", "da", "bo", "pu"};
    size_t n_common = sizeof common / sizeof *common, n_syl = sizeof syl / sizeof *syl;
    if (k < n_common) {
        puts_(b, common[k]);
        return;
    }
    uint64_t h = (uint64_t)k * 0x9E3779B97F4A7C15ull + 12345;
    int n = 1 + (int)(rng_next(&h) % 4);
    for (int i = 0; i < n; i++) {
        const char *s = syl[rng_next(&h) % n_syl];
        if (i == 0 && rng_next(&h) % 9 == 0 && s[0] >= 'a' && s[0] <= 'z') {
            char c = (char)(s[0] - 'a' + 'A');
            put(b, &c, 1);
            s++;
        }
        puts_(b, s);
    }
}

/* English-like sentences: Zipf-distributed words of a 40k-word made-up
 * language, numbers, punctuation, whitespace runs, and "<|endoftext|>"
 * between documents; about `bytes` long. */
static buf gen_corpus(uint64_t seed, size_t bytes) {
    static const char *gaps[] = {" ", " ", " ", " ", " ", " ", " ", " ", ", ", "  ", "\t", " - "};
    static const char *ends[] = {".\n", ". ", "!\n", "?\n", ".\n\n", ".   \n", ". "};
    buf b = {0};
    char num[32];
    while (b.n < bytes) {
        int n_words = 4 + (int)(rng_next(&seed) % 12);
        for (int i = 0; i < n_words; i++) {
            uint64_t r = rng_next(&seed);
            if (r % 23 == 0) {
                snprintf(num, sizeof num, "%u", (unsigned)(r >> 40) % 5000);
                puts_(&b, num);
            } else { /* log-uniform index: frequency ~ 1/rank */
                double u = (double)(rng_next(&seed) >> 11) / 9007199254740992.0;
                gen_word(&b, (size_t)(exp(u * log(40000.0))) - 1);
            }
            if (i + 1 < n_words) puts_(&b, gaps[rng_next(&seed) % (sizeof gaps / sizeof *gaps)]);
        }
        puts_(&b, ends[rng_next(&seed) % (sizeof ends / sizeof *ends)]);
        if (rng_next(&seed) % 40 == 0) puts_(&b, "<|endoftext|>");
    }
    return b;
}

static bool has_token(const bpe_train_result *r, const char *s) {
    for (size_t i = 0; i < r->n_tokens; i++)
        if (strcmp(r->tokens[i], s) == 0) return true;
    return false;
}

/* ---- hand-checked corpora ------------------------------------------------------ */

/* Hugging Face's course example: hug x10, pug x5, pun x12, bun x4, hugs x5,
 * one word per line (so no "Ġ" prefixes; "\n" is a word of its own). */
static buf hug_corpus(void) {
    static const struct { const char *w; int n; } ws[] = {
        {"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}};
    buf b = {0};
    for (size_t i = 0; i < 5; i++)
        for (int k = 0; k < ws[i].n; k++) {
            puts_(&b, ws[i].w);
            puts_(&b, "\n");
        }
    return b;
}

static void test_first_merges(void **state) {
    (void)state;
    buf b = hug_corpus();
    bpe_train_result r = train(b.p, b.n, 256 + 6, 2, NULL, 0);
    /* u g 20; u n 16; h ug 15; p un 12; then hug s and p ug tie at 5 and
     * "hug" < "p" decides */
    static const char *merges[] = {"u g", "u n", "h ug", "p un", "hug s", "p ug"};
    static const int64_t counts[] = {20, 16, 15, 12, 5, 5};
    static const char *tokens[] = {"ug", "un", "hug", "pun", "hugs", "pug"};
    assert_int_equal(r.n_merges, 6);
    assert_int_equal(r.n_learnt, 6);
    assert_int_equal(r.n_tokens, 262);
    for (size_t i = 0; i < 6; i++) {
        assert_string_equal(r.merges[i], merges[i]);
        assert_int_equal(r.merge_count[i], counts[i]);
        assert_string_equal(r.tokens[256 + i], tokens[i]);
        assert_int_equal(r.types[256 + i], TOK_TYPE_NORMAL);
    }
    assert_int_equal(r.n_words, 6); /* the five words and "\n" */
    assert_int_equal(r.n_pretokens, 72);
    bpe_train_free(&r);

    /* min_frequency 5 stops before "b un" (4); 2 takes it, then no pair is left */
    r = train(b.p, b.n, 1000, 5, NULL, 0);
    assert_int_equal(r.n_merges, 6);
    bpe_train_free(&r);
    r = train(b.p, b.n, 1000, 2, NULL, 0);
    assert_int_equal(r.n_merges, 7);
    assert_string_equal(r.merges[6], "b un");
    assert_int_equal(r.n_tokens, 256 + 7);
    bpe_train_free(&r);
    free(b.p);
}

/* GPT-2's vocab.json order of the byte tokens. */
static void test_byte_order(void **state) {
    (void)state;
    bpe_train_result r = train("ab", 2, 256, 2, NULL, 0);
    assert_int_equal(r.n_tokens, 256);
    assert_int_equal(r.n_merges, 0);
    assert_string_equal(r.tokens[0], "!");
    assert_string_equal(r.tokens[93], "~");
    assert_string_equal(r.tokens[94], "\xC2\xA1");  /* byte 0xA1 */
    assert_string_equal(r.tokens[187], "\xC3\xBF"); /* byte 0xFF */
    assert_string_equal(r.tokens[188], "\xC4\x80"); /* byte 0x00: U+0100 */
    assert_string_equal(r.tokens[220], "\xC4\xA0"); /* space: U+0120 "Ġ" */
    assert_string_equal(r.tokens[198], "\xC4\x8A"); /* newline: "Ċ" */
    assert_string_equal(r.tokens[255], "\xC5\x83"); /* byte 0xAD: U+0143 */
    for (size_t i = 0; i < 256; i++) assert_int_equal(r.types[i], TOK_TYPE_NORMAL);
    bpe_train_free(&r);
}

/* "aaa" has two overlapping "a a" pairs (count 2 each); merging goes left to
 * right ("aa a"), so the next merge is "aa a". With spaces: "Ġ" prefixes. */
static void test_within_word(void **state) {
    (void)state;
    const char *s = "aaa\naaa\naaa\naaa\n";
    bpe_train_result r = train(s, strlen(s), 258, 2, NULL, 0);
    assert_int_equal(r.n_merges, 2);
    assert_string_equal(r.merges[0], "a a");
    assert_int_equal(r.merge_count[0], 8);
    assert_string_equal(r.merges[1], "aa a");
    assert_int_equal(r.merge_count[1], 4);
    bpe_train_free(&r);

    s = "low lower lowest low lower low";
    r = train(s, strlen(s), 256 + 3, 2, NULL, 0);
    /* pre-tokens: low, Ġlower x2, Ġlowest, Ġlow x2; "l o" and "o w" both 6:
     * "l" < "o"; then "lo w" 6; then "Ġ low" 5 */
    assert_string_equal(r.merges[0], "l o");
    assert_string_equal(r.merges[1], "lo w");
    assert_string_equal(r.merges[2], "\xC4\xA0 low");
    assert_int_equal(r.merge_count[2], 5);
    bpe_train_free(&r);
}

/* ---- naive reference ------------------------------------------------------------ */

/* Words of a corpus of lower-case letters, single spaces and newlines, split
 * the way GPT-2's regex splits it: "w", " w" (as "Ġw") and "\n" ("Ċ"). */
typedef struct nword {
    char **sym; /* byte-level symbol strings (owned) */
    size_t n;
    int64_t count;
} nword;

typedef struct naive {
    nword *w;
    size_t n;
    char **vocab;
    size_t n_vocab;
    char **merges;
    int64_t *counts;
    size_t n_merges;
} naive;

static char *dupn(const char *s, size_t n) {
    char *p = malloc(n + 1);
    assert_non_null(p);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

static void naive_add_word(naive *nv, const char *s, size_t len) {
    for (size_t i = 0; i < nv->n; i++) { /* same word again */
        nword *w = &nv->w[i];
        size_t k = 0, pos = 0;
        for (; k < w->n; k++) {
            const char *y = w->sym[k];
            size_t yl = strcmp(y, "\xC4\xA0") == 0 || strcmp(y, "\xC4\x8A") == 0 ? 2 : 1;
            char c = yl == 2 ? (y[1] == '\xA0' ? ' ' : '\n') : y[0];
            if (pos >= len || s[pos] != c) break;
            pos++;
        }
        if (k == w->n && pos == len) {
            w->count++;
            return;
        }
    }
    nv->w = realloc(nv->w, (nv->n + 1) * sizeof *nv->w);
    nword *w = &nv->w[nv->n++];
    w->sym = malloc(len * sizeof *w->sym);
    w->n = len;
    w->count = 1;
    for (size_t k = 0; k < len; k++)
        w->sym[k] = s[k] == ' ' ? dupn("\xC4\xA0", 2) : s[k] == '\n' ? dupn("\xC4\x8A", 2) : dupn(s + k, 1);
}

static void naive_split(naive *nv, const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t j = i;
        if (s[i] == '\n') j = i + 1;
        else {
            if (s[j] == ' ') j++;
            while (j < len && s[j] >= 'a' && s[j] <= 'z') j++;
        }
        naive_add_word(nv, s + i, j - i);
        i = j;
    }
}

/* One step: counts every pair from scratch, merges the best one. */
static bool naive_step(naive *nv, int64_t minf) {
    const char *ba = NULL, *bb = NULL;
    int64_t best = 0;
    for (size_t i = 0; i < nv->n; i++)
        for (size_t k = 0; k + 1 < nv->w[i].n; k++) {
            const char *a = nv->w[i].sym[k], *b = nv->w[i].sym[k + 1];
            int64_t c = 0;
            for (size_t i2 = 0; i2 < nv->n; i2++)
                for (size_t k2 = 0; k2 + 1 < nv->w[i2].n; k2++)
                    if (!strcmp(nv->w[i2].sym[k2], a) && !strcmp(nv->w[i2].sym[k2 + 1], b))
                        c += nv->w[i2].count;
            int ca = ba ? strcmp(a, ba) : 0;
            if (!ba || c > best || (c == best && (ca < 0 || (ca == 0 && strcmp(b, bb) < 0)))) {
                best = c;
                ba = a;
                bb = b;
            }
        }
    if (!ba || best < minf) return false;
    size_t la = strlen(ba), lb = strlen(bb);
    char *m = malloc(la + lb + 2), *cat = malloc(la + lb + 1);
    snprintf(m, la + lb + 2, "%s %s", ba, bb);
    snprintf(cat, la + lb + 1, "%s%s", ba, bb);
    nv->merges = realloc(nv->merges, (nv->n_merges + 1) * sizeof *nv->merges);
    nv->counts = realloc(nv->counts, (nv->n_merges + 1) * sizeof *nv->counts);
    nv->merges[nv->n_merges] = m;
    nv->counts[nv->n_merges++] = best;
    char *ca = dupn(ba, la), *cb = dupn(bb, lb); /* ba/bb point into words about to change */
    for (size_t i = 0; i < nv->n; i++) {
        nword *w = &nv->w[i];
        size_t j = 0;
        for (size_t k = 0; k < w->n; j++) {
            if (k + 1 < w->n && !strcmp(w->sym[k], ca) && !strcmp(w->sym[k + 1], cb)) {
                free(w->sym[k]);
                free(w->sym[k + 1]);
                w->sym[j] = dupn(cat, la + lb);
                k += 2;
            } else {
                w->sym[j] = w->sym[k++];
            }
        }
        w->n = j;
    }
    bool known = false;
    for (size_t i = 0; i < nv->n_vocab && !known; i++) known = !strcmp(nv->vocab[i], cat);
    if (!known) {
        nv->vocab = realloc(nv->vocab, (nv->n_vocab + 1) * sizeof *nv->vocab);
        nv->vocab[nv->n_vocab++] = cat;
    } else {
        free(cat);
    }
    free(ca);
    free(cb);
    return true;
}

static void naive_free(naive *nv) {
    for (size_t i = 0; i < nv->n; i++) {
        for (size_t k = 0; k < nv->w[i].n; k++) free(nv->w[i].sym[k]);
        free(nv->w[i].sym);
    }
    for (size_t i = 0; i < nv->n_vocab; i++) free(nv->vocab[i]);
    for (size_t i = 0; i < nv->n_merges; i++) free(nv->merges[i]);
    free(nv->w);
    free(nv->vocab);
    free(nv->merges);
    free(nv->counts);
}

/* Lines of words over a small alphabet, so ties and repeated merge results
 * ("ab"+"c" and "a"+"bc") are common. */
static buf gen_simple(uint64_t seed, size_t n_words, int alphabet) {
    buf b = {0};
    for (size_t i = 0; i < n_words; i++) {
        uint64_t r = rng_next(&seed);
        if (i && r % 7 == 0) puts_(&b, "\n");
        else if (i) puts_(&b, " ");
        int len = 1 + (int)(rng_next(&seed) % 6);
        for (int k = 0; k < len; k++) {
            char c = (char)('a' + rng_next(&seed) % (uint64_t)alphabet);
            put(&b, &c, 1);
        }
    }
    return b;
}

static void test_against_naive(void **state) {
    (void)state;
    size_t reused = 0; /* merges whose result was already a token */
    for (uint64_t seed = 1; seed <= 12; seed++) {
        int alphabet = 2 + (int)(seed % 4);
        int64_t minf = (int64_t)(seed % 3); /* 0, 1 and 2 */
        size_t learn = 40 + 10 * (size_t)(seed % 5);
        buf b = gen_simple(seed * 7919, 150 + 40 * seed, alphabet);
        naive nv = {0};
        naive_split(&nv, b.p, b.n);
        while (nv.n_vocab < learn && naive_step(&nv, minf)) {}
        bpe_train_result r = train(b.p, b.n, 256 + learn, minf, NULL, 0);
        assert_int_equal(r.n_merges, nv.n_merges);
        assert_int_equal(r.n_learnt, nv.n_vocab);
        reused += r.n_merges - r.n_learnt;
        assert_int_equal(r.n_words, nv.n);
        for (size_t i = 0; i < nv.n_merges; i++) {
            if (strcmp(r.merges[i], nv.merges[i]) || r.merge_count[i] != nv.counts[i])
                fprintf(stderr, "seed %llu merge %zu: got \"%s\" x%lld, want \"%s\" x%lld\n",
                        (unsigned long long)seed, i, r.merges[i], (long long)r.merge_count[i],
                        nv.merges[i], (long long)nv.counts[i]);
            assert_string_equal(r.merges[i], nv.merges[i]);
            assert_int_equal(r.merge_count[i], nv.counts[i]);
        }
        for (size_t i = 0; i < nv.n_vocab; i++) assert_string_equal(r.tokens[256 + i], nv.vocab[i]);
        tok *t = make_tok(&r);
        round_trip(t, b.p, b.n, 0);
        tok_free(t);
        bpe_train_free(&r);
        naive_free(&nv);
        free(b.p);
    }
    /* A merge that recreates an existing token was never seen in byte-level
     * BPE (nor in a 20k-corpus search with a Python reference); it is
     * handled as BpeTrainer does, and counted here in case a corpus hits it. */
    printf("bpe_train: naive reference agrees on 12 corpora (%zu merges reused a token)\n", reused);
}

/* ---- determinism, round trips, compression ---------------------------------------- */

static void test_deterministic(void **state) {
    (void)state;
    static const char *sp[] = {"<|endoftext|>"};
    buf b = gen_corpus(42, 100000);
    bpe_train_result r1 = train(b.p, b.n, 1500, 2, sp, 1), r2 = train(b.p, b.n, 1500, 2, sp, 1);
    assert_int_equal(r1.n_tokens, r2.n_tokens);
    assert_int_equal(r1.n_merges, r2.n_merges);
    for (size_t i = 0; i < r1.n_tokens; i++) {
        assert_string_equal(r1.tokens[i], r2.tokens[i]);
        assert_int_equal(r1.types[i], r2.types[i]);
    }
    for (size_t i = 0; i < r1.n_merges; i++) {
        assert_string_equal(r1.merges[i], r2.merges[i]);
        assert_int_equal(r1.merge_count[i], r2.merge_count[i]);
    }
    bpe_train_free(&r1);
    bpe_train_free(&r2);
    free(b.p);
}

static void test_round_trip(void **state) {
    (void)state;
    static const char *sp[] = {"<|endoftext|>", "<|pad|>"};
    buf b = gen_corpus(7, 300000);
    bpe_train_result r = train(b.p, b.n, 2000, 2, sp, 2);
    assert_int_equal(r.n_tokens, 2000);
    assert_int_equal(r.n_learnt, 2000 - 256 - 2);
    assert_string_equal(r.tokens[1998], "<|endoftext|>");
    assert_string_equal(r.tokens[1999], "<|pad|>");
    assert_int_equal(r.types[1998], TOK_TYPE_CONTROL);
    assert_int_equal(r.types[1999], TOK_TYPE_CONTROL);
    for (size_t i = 256; i < 1998; i++) /* never learnt from the separators */
        assert_null(strstr(r.tokens[i], "endoftext"));
    for (size_t i = 1; i < r.n_merges; i++) assert_true(r.merge_count[i] <= r.merge_count[i - 1]);
    assert_true(has_token(&r, "\xC4\xA0the")); /* " the" */

    tok *t = make_tok(&r);
    /* every merge is usable: its parts and its result are tokens */
    for (size_t i = 0; i < r.n_merges; i++) {
        const char *m = r.merges[i], *sp1 = strchr(m, ' ');
        char cat[256];
        size_t ll = (size_t)(sp1 - m), rl = strlen(sp1 + 1);
        assert_true(ll + rl < sizeof cat);
        memcpy(cat, m, ll);
        memcpy(cat + ll, sp1 + 1, rl);
        assert_true(tok_find(t, m, ll) >= 0);
        assert_true(tok_find(t, sp1 + 1, rl) >= 0);
        assert_true(tok_find(t, cat, ll + rl) >= 256);
    }
    assert_int_equal(tok_token_type(t, 1998), TOK_TYPE_CONTROL);
    assert_int_equal(tok_eos(t), 1998); /* "<|endoftext|>" found as GPT-2's */

    size_t n = round_trip(t, b.p, b.n, 0);
    double tpb = (double)n / (double)b.n;
    printf("bpe_train: training corpus %zu bytes -> %zu tokens (%.3f tokens/byte)\n", b.n, n, tpb);
    assert_true(tpb < 0.4);
    round_trip(t, b.p, b.n, TOK_ENC_PARSE_SPECIAL);

    /* specials parse as one CONTROL id */
    const char *s = "hello<|endoftext|>world<|pad|>";
    size_t k;
    int32_t *ids = enc(t, s, strlen(s), TOK_ENC_PARSE_SPECIAL, &k);
    int found = 0;
    for (size_t i = 0; i < k; i++) found += ids[i] == 1998 || ids[i] == 1999;
    assert_int_equal(found, 2);
    free(ids);

    /* held-out text, whitespace runs, rare characters and invalid bytes */
    buf held = gen_corpus(99, 20000);
    size_t hn = round_trip(t, held.p, held.n, 0);
    printf("bpe_train: held-out text %zu bytes -> %zu tokens (%.3f tokens/byte)\n", held.n, hn,
           (double)hn / (double)held.n);
    assert_true((double)hn / (double)held.n < 0.45);
    static const char odd[] = "  \t\t\n\n\n   x\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80 \xFF\xFE\xC3 \xE2\x82"
                              " Zebra\xE2\x80\x83\xE3\x80\x80quux 12345678 !!!??? \r\n";
    round_trip(t, odd, sizeof odd - 1, 0);
    free(held.p);
    tok_free(t);
    bpe_train_free(&r);
    free(b.p);
}

/* A corpus of invalid UTF-8 and control bytes trains and round-trips. */
static void test_binary_corpus(void **state) {
    (void)state;
    uint64_t seed = 5;
    char data[20000];
    for (size_t i = 0; i < sizeof data; i++) data[i] = (char)(rng_next(&seed) % 7 == 0 ? 0xFF : rng_next(&seed) % 8);
    bpe_train_result r = train(data, sizeof data, 400, 2, NULL, 0);
    assert_int_equal(r.n_tokens, 400);
    tok *t = make_tok(&r);
    size_t n = round_trip(t, data, sizeof data, 0);
    assert_true(n < sizeof data);
    tok_free(t);
    bpe_train_free(&r);
}

/* A special token written in byte-level form ("Ġa") is what merging " a"
 * would make: that merge is refused, and the special stays CONTROL. */
static void test_special_not_learnt(void **state) {
    (void)state;
    static const char *sp[] = {"\xC4\xA0" "a"};
    const char *s = "x a a a a a a a a b a b a b";
    bpe_train_result r = train(s, strlen(s), 300, 2, sp, 1);
    for (size_t i = 256; i + 1 < r.n_tokens; i++) assert_string_not_equal(r.tokens[i], sp[0]);
    assert_string_equal(r.tokens[r.n_tokens - 1], sp[0]);
    assert_int_equal(r.n_merges, 1); /* "Ġ b" still merges */
    assert_string_equal(r.merges[0], "\xC4\xA0 b");
    tok *t = make_tok(&r);
    round_trip(t, s, strlen(s), 0);
    tok_free(t);
    bpe_train_free(&r);
}

/* ---- progress, errors, speed ---------------------------------------------------- */

typedef struct prog {
    size_t calls, last, total;
    bool monotonic;
} prog;

static void on_progress(void *ctx, size_t learnt, size_t total) {
    prog *p = ctx;
    if (p->calls && learnt < p->last) p->monotonic = false;
    p->calls++;
    p->last = learnt;
    p->total = total;
}

static void test_progress(void **state) {
    (void)state;
    buf b = gen_corpus(3, 50000);
    prog p = {0, 0, 0, true};
    bpe_train_options o;
    bpe_train_options_init(&o);
    assert_int_equal(o.min_frequency, 2);
    o.vocab_size = 256 + 500;
    o.progress = on_progress;
    o.progress_ctx = &p;
    o.progress_every = 50;
    bpe_train_result r;
    assert_int_equal(bpe_train_run(&r, b.p, b.n, &o, NULL), TOK_OK);
    assert_true(p.monotonic);
    assert_int_equal(p.last, r.n_learnt);
    assert_int_equal(p.total, 500);
    assert_true(p.calls >= r.n_merges / 50 + 1 && p.calls <= r.n_merges / 50 + 2);
    bpe_train_free(&r);
    free(b.p);
}

static void expect_err(const char *text, size_t len, const bpe_train_options *o, const char *what) {
    bpe_train_result r;
    tok_err err = {0};
    int rc = bpe_train_run(&r, text, len, o, &err);
    assert_int_equal(rc, TOK_EINVAL);
    assert_int_equal(err.code, TOK_EINVAL);
    if (!strstr(err.msg, what)) fprintf(stderr, "message \"%s\" lacks \"%s\"\n", err.msg, what);
    assert_non_null(strstr(err.msg, what));
    assert_null(r.tokens);
    assert_int_equal(r.n_tokens, 0);
    bpe_train_free(&r);
}

static void test_errors(void **state) {
    (void)state;
    bpe_train_options o;
    bpe_train_options_init(&o);
    o.vocab_size = 255;
    expect_err("abc", 3, &o, "vocab_size 255");
    static const char *sp[] = {"<|endoftext|>", "<|pad|>"};
    o.special = sp;
    o.n_special = 2;
    o.vocab_size = 257;
    expect_err("abc", 3, &o, "2 special tokens");
    o.vocab_size = 300;
    expect_err("", 0, &o, "corpus is empty");
    expect_err(NULL, 0, &o, "corpus is empty");
    expect_err("<|pad|><|endoftext|><|pad|>", 27, &o, "nothing but special tokens");
    expect_err(NULL, 5, &o, "NULL");
    expect_err("abc", 3, NULL, "NULL");
    static const char *dup[] = {"<|a|>", "<|b|>", "<|a|>"};
    o.special = dup;
    o.n_special = 3;
    expect_err("abc", 3, &o, "special token 2 (\"<|a|>\") repeats special token 0");
    static const char *byte[] = {"<|a|>", "a"};
    o.special = byte;
    o.n_special = 2;
    expect_err("abc", 3, &o, "special token 1 (\"a\") is the string of byte token");
    static const char *empty[] = {""};
    o.special = empty;
    o.n_special = 1;
    expect_err("abc", 3, &o, "special token 0 is empty");
    static const char *null[] = {NULL};
    o.special = null;
    expect_err("abc", 3, &o, "special token 0 is NULL");
    o.n_special = 0;
    o.min_frequency = -1;
    expect_err("abc", 3, &o, "min_frequency -1");
    o.min_frequency = 2;
    o.vocab_size = (size_t)INT32_MAX + 1;
    expect_err("abc", 3, &o, "over the limit");
    tok_err err = {0};
    assert_int_equal(bpe_train_run(NULL, "abc", 3, &o, &err), TOK_EINVAL);
    bpe_train_free(NULL);
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* 4k merges on ~2 MB: prints the time; fails only when absurdly slow (a
 * full recount per merge would take minutes). */
static void test_speed(void **state) {
    (void)state;
    static const char *sp[] = {"<|endoftext|>"};
    buf b = gen_corpus(11, 2u << 20);
    double t0 = now_s();
    bpe_train_result r = train(b.p, b.n, 256 + 4000 + 1, 2, sp, 1);
    double dt = now_s() - t0;
    printf("bpe_train: %zu merges (%zu tokens) on %zu bytes (%zu distinct of %llu pre-tokens) in %.3f s\n",
           r.n_merges, r.n_tokens, b.n, r.n_words, (unsigned long long)r.n_pretokens, dt);
    assert_int_equal(r.n_learnt, 4000);
    assert_true(dt < 60.0);
    tok *t = make_tok(&r);
    t0 = now_s();
    size_t n = round_trip(t, b.p, b.n, 0);
    printf("bpe_train: encode+decode of the corpus: %.3f s, %.3f tokens/byte\n", now_s() - t0,
           (double)n / (double)b.n);
    tok_free(t);
    bpe_train_free(&r);
    free(b.p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_merges),
        cmocka_unit_test(test_byte_order),
        cmocka_unit_test(test_within_word),
        cmocka_unit_test(test_against_naive),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_binary_corpus),
        cmocka_unit_test(test_special_not_learnt),
        cmocka_unit_test(test_progress),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_speed),
    };
    return cmocka_run_group_tests_name("bpe_train", tests, NULL, NULL);
}
