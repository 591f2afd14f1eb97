/* clip_data_bpe.c - a CLIP-format BPE tokenizer learnt from captions
 * (clip_data_bpe.h). */
#include "clip_data_bpe.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"

#define CLIP_DATA_BPE__EOW "</w>"

/* ---- the base vocabulary ---------------------------------------------------- */

/* GPT-2's bytes_to_unicode: the code point standing for byte b. */
static uint32_t clip_data_bpe__cp(int b)
{
    bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    if (self)
        return (uint32_t)b;
    uint32_t extra = 0;
    for (int k = 0; k < b; k++)
        extra += !((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || k >= 0xAE);
    return 256 + extra;
}

static size_t clip_data_bpe__utf8(uint32_t cp, char *out)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6)); /* cp < 0x800 here */
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* Appends a token; 0 or -ENOMEM. */
static int clip_data_bpe__push(clip_data_bpe *r, size_t *cap, char *s, int32_t type)
{
    if (!s)
        return -ENOMEM;
    if (r->n_tokens == *cap) {
        size_t nc = *cap ? 2 * *cap : 1024;
        char **t = realloc(r->tokens, nc * sizeof *t);
        if (t)
            r->tokens = t;
        int32_t *ty = t ? realloc(r->types, nc * sizeof *ty) : NULL;
        if (ty)
            r->types = ty;
        if (!t || !ty) {
            free(s);
            return -ENOMEM;
        }
        *cap = nc;
    }
    r->tokens[r->n_tokens] = s;
    r->types[r->n_tokens++] = type;
    return 0;
}

/* The 512 byte tokens in CLIP's order. */
static int clip_data_bpe__base(clip_data_bpe *r, size_t *cap)
{
    int order[256], n = 0;
    /* by code point: the self-standing bytes in byte order, then the others */
    for (int b = 0; b < 256; b++)
        if (clip_data_bpe__cp(b) < 256)
            order[n++] = b;
    for (int b = 0; b < 256; b++)
        if (clip_data_bpe__cp(b) >= 256)
            order[n++] = b;
    for (int eow = 0; eow < 2; eow++)
        for (int i = 0; i < 256; i++) {
            char u[8];
            size_t l = clip_data_bpe__utf8(clip_data_bpe__cp(order[i]), u);
            char *s = malloc(l + 5);
            if (s) {
                memcpy(s, u, l);
                strcpy(s + l, eow ? CLIP_DATA_BPE__EOW : "");
            }
            int rc = clip_data_bpe__push(r, cap, s, TOK_TYPE_NORMAL);
            if (rc)
                return rc;
        }
    return 0;
}

/* ---- words -------------------------------------------------------------------- */

typedef struct clip_data_bpe__word {
    int32_t *sym;
    int len;
    int64_t count;
} clip_data_bpe__word;

typedef struct clip_data_bpe__words {
    clip_data_bpe__word *w;
    size_t n, cap;
    size_t *slot;          /* hash table of word indices + 1 (0: empty) */
    size_t n_slot;         /* power of two */
} clip_data_bpe__words;

static uint64_t clip_data_bpe__hash(const int32_t *s, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

static int clip_data_bpe__grow(clip_data_bpe__words *ws)
{
    size_t ns = ws->n_slot ? 2 * ws->n_slot : 256;
    size_t *slot = calloc(ns, sizeof *slot);
    if (!slot)
        return -ENOMEM;
    for (size_t i = 0; i < ws->n; i++) {
        size_t j = clip_data_bpe__hash(ws->w[i].sym, ws->w[i].len) & (ns - 1);
        while (slot[j])
            j = (j + 1) & (ns - 1);
        slot[j] = i + 1;
    }
    free(ws->slot);
    ws->slot = slot;
    ws->n_slot = ns;
    return 0;
}

/* Counts one occurrence of the word s[0..n). */
static int clip_data_bpe__add_word(clip_data_bpe__words *ws, const int32_t *s, int n)
{
    if (2 * (ws->n + 1) > ws->n_slot && clip_data_bpe__grow(ws))
        return -ENOMEM;
    size_t j = clip_data_bpe__hash(s, n) & (ws->n_slot - 1);
    for (; ws->slot[j]; j = (j + 1) & (ws->n_slot - 1)) {
        clip_data_bpe__word *w = &ws->w[ws->slot[j] - 1];
        if (w->len == n && !memcmp(w->sym, s, (size_t)n * sizeof *s)) {
            w->count++;
            return 0;
        }
    }
    if (ws->n == ws->cap) {
        size_t nc = ws->cap ? 2 * ws->cap : 64;
        clip_data_bpe__word *nw = realloc(ws->w, nc * sizeof *nw);
        if (!nw)
            return -ENOMEM;
        ws->w = nw;
        ws->cap = nc;
    }
    int32_t *copy = malloc((size_t)n * sizeof *copy);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, s, (size_t)n * sizeof *s);
    ws->w[ws->n] = (clip_data_bpe__word){.sym = copy, .len = n, .count = 1};
    ws->slot[j] = ++ws->n;
    return 0;
}

static void clip_data_bpe__words_free(clip_data_bpe__words *ws)
{
    for (size_t i = 0; i < ws->n; i++)
        free(ws->w[i].sym);
    free(ws->w);
    free(ws->slot);
    memset(ws, 0, sizeof *ws);
}

/* Splits each text into words with a merge-less CLIP tokenizer (the
 * server's cleaning and pre-tokenization) and counts them. */
static int clip_data_bpe__count(const clip_data_bpe *r, const char *const *texts, size_t n,
                                clip_data_bpe__words *ws, char *err, size_t errlen)
{
    tok *t = NULL;
    tok_err te = {0};
    int rc = tok_create_clip(&t, (const char *const *)r->tokens, r->n_tokens, NULL, 0, r->types,
                             NULL, &te);
    if (rc) {
        snprintf(err, errlen, "clip tokenizer: %s", te.msg);
        return rc == TOK_ENOMEM ? -ENOMEM : -EINVAL;
    }
    int32_t *ids = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (!texts[i]) {
            snprintf(err, errlen, "clip tokenizer: text %zu is NULL", i);
            rc = -EINVAL;
            break;
        }
        size_t len = strlen(texts[i]), got = 0;
        /* a byte gives at most 3 UTF-8 bytes (U+FFFD), then lower case can double */
        if (6 * len + 8 > cap) {
            cap = 6 * len + 8;
            int32_t *ni = realloc(ids, cap * sizeof *ids);
            if (!ni) {
                rc = -ENOMEM;
                break;
            }
            ids = ni;
        }
        if (tok_encode(t, texts[i], len, 0, ids, cap, &got, &te)) {
            snprintf(err, errlen, "clip tokenizer: text %zu: %s", i, te.msg);
            rc = -EINVAL;
            break;
        }
        size_t start = 0;
        for (size_t k = 0; k < got && !rc; k++)
            if (ids[k] >= 256 && ids[k] < CLIP_DATA_BPE_BASE) { /* "</w>": the word ends */
                rc = clip_data_bpe__add_word(ws, ids + start, (int)(k + 1 - start));
                start = k + 1;
            }
    }
    if (rc == -ENOMEM)
        snprintf(err, errlen, "clip tokenizer: out of memory");
    free(ids);
    tok_free(t);
    return rc;
}

/* ---- pairs ---------------------------------------------------------------------- */

typedef struct clip_data_bpe__pair {
    uint64_t key; /* left << 32 | right; UINT64_MAX: empty */
    int64_t count;
} clip_data_bpe__pair;

static size_t clip_data_bpe__slot(uint64_t key, size_t cap)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

/* The best pair of the words (count 0 when none): most frequent, then the
 * smallest left string, then right string. */
static int clip_data_bpe__best(const clip_data_bpe *r, const clip_data_bpe__words *ws,
                               clip_data_bpe__pair **tab, size_t *tab_cap, int32_t *bl,
                               int32_t *br, int64_t *best)
{
    size_t total = 0;
    for (size_t i = 0; i < ws->n; i++)
        total += (size_t)ws->w[i].len;
    size_t need = 16;
    while (need < 2 * total)
        need *= 2;
    if (need > *tab_cap) {
        clip_data_bpe__pair *t = realloc(*tab, need * sizeof *t);
        if (!t)
            return -ENOMEM;
        *tab = t;
        *tab_cap = need;
    }
    clip_data_bpe__pair *p = *tab;
    for (size_t j = 0; j < need; j++)
        p[j] = (clip_data_bpe__pair){.key = UINT64_MAX};
    *best = 0;
    for (size_t i = 0; i < ws->n; i++) {
        const clip_data_bpe__word *w = &ws->w[i];
        for (int k = 0; k + 1 < w->len; k++) {
            uint64_t key = (uint64_t)(uint32_t)w->sym[k] << 32 | (uint32_t)w->sym[k + 1];
            size_t j = clip_data_bpe__slot(key, need);
            while (p[j].key != UINT64_MAX && p[j].key != key)
                j = (j + 1) & (need - 1);
            p[j].key = key;
            p[j].count += w->count;
        }
    }
    for (size_t j = 0; j < need; j++) {
        if (p[j].key == UINT64_MAX)
            continue;
        int32_t a = (int32_t)(p[j].key >> 32), b = (int32_t)(p[j].key & 0xFFFFFFFFu);
        int c = 0;
        if (p[j].count == *best) {
            c = strcmp(r->tokens[a], r->tokens[*bl]);
            if (!c)
                c = strcmp(r->tokens[b], r->tokens[*br]);
        }
        if (p[j].count > *best || (p[j].count == *best && c < 0)) {
            *best = p[j].count;
            *bl = a;
            *br = b;
        }
    }
    return 0;
}

/* Replaces each (a, b) in the words, left to right, by m. */
static void clip_data_bpe__apply(clip_data_bpe__words *ws, int32_t a, int32_t b, int32_t m)
{
    for (size_t i = 0; i < ws->n; i++) {
        clip_data_bpe__word *w = &ws->w[i];
        int o = 0;
        for (int k = 0; k < w->len; k++) {
            if (k + 1 < w->len && w->sym[k] == a && w->sym[k + 1] == b) {
                w->sym[o++] = m;
                k++;
            } else {
                w->sym[o++] = w->sym[k];
            }
        }
        w->len = o;
    }
}

static int clip_data_bpe__add_merge(clip_data_bpe *r, size_t *mcap, const char *a,
                                    const char *b)
{
    if (r->n_merges == *mcap) {
        size_t nc = *mcap ? 2 * *mcap : 256;
        char **m = realloc(r->merges, nc * sizeof *m);
        if (!m)
            return -ENOMEM;
        r->merges = m;
        *mcap = nc;
    }
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 2);
    if (!s)
        return -ENOMEM;
    memcpy(s, a, la);
    s[la] = ' ';
    memcpy(s + la + 1, b, lb + 1);
    r->merges[r->n_merges++] = s;
    return 0;
}

int clip_data_bpe_train(clip_data_bpe *out, const char *const *texts, size_t n,
                        size_t vocab_size, int64_t min_frequency, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    if (!texts || n == 0 || (vocab_size && vocab_size < CLIP_DATA_BPE_BASE + 2) ||
        vocab_size > INT32_MAX) {
        snprintf(err, errlen, "clip tokenizer: need texts and a vocabulary of at least %d tokens "
                 "(not %zu)", CLIP_DATA_BPE_BASE + 2, vocab_size);
        return -EINVAL;
    }
    if (min_frequency < 1)
        min_frequency = 1;
    clip_data_bpe r = {0};
    clip_data_bpe__words ws = {0};
    clip_data_bpe__pair *tab = NULL;
    size_t cap = 0, tab_cap = 0, mcap = 0;
    int rc = clip_data_bpe__base(&r, &cap);
    /* specials at the end for the split pass; removed again before merging */
    rc = rc ? rc : clip_data_bpe__push(&r, &cap, strdup(CLIP_DATA_BPE_BOS), TOK_TYPE_CONTROL);
    rc = rc ? rc : clip_data_bpe__push(&r, &cap, strdup(CLIP_DATA_BPE_EOS), TOK_TYPE_CONTROL);
    if (rc) {
        snprintf(err, errlen, "clip tokenizer: out of memory");
        goto fail;
    }
    if ((rc = clip_data_bpe__count(&r, texts, n, &ws, err, errlen)))
        goto fail;
    free(r.tokens[--r.n_tokens]);
    free(r.tokens[--r.n_tokens]);
    if (ws.n == 0) {
        snprintf(err, errlen, "clip tokenizer: the %zu texts hold no words", n);
        rc = -EINVAL;
        goto fail;
    }
    for (;;) {
        if (vocab_size && r.n_tokens + 2 >= vocab_size)
            break;
        int32_t a = 0, b = 0;
        int64_t best = 0;
        if ((rc = clip_data_bpe__best(&r, &ws, &tab, &tab_cap, &a, &b, &best)))
            goto nomem;
        if (best < min_frequency)
            break;
        size_t la = strlen(r.tokens[a]), lb = strlen(r.tokens[b]);
        char *s = malloc(la + lb + 1);
        if (!s)
            goto nomem;
        memcpy(s, r.tokens[a], la);
        memcpy(s + la, r.tokens[b], lb + 1);
        int32_t id = -1; /* an existing token of that string (merged tokens only) */
        for (size_t i = CLIP_DATA_BPE_BASE; i < r.n_tokens && id < 0; i++)
            if (!strcmp(r.tokens[i], s))
                id = (int32_t)i;
        if (id < 0) {
            id = (int32_t)r.n_tokens;
            if ((rc = clip_data_bpe__push(&r, &cap, s, TOK_TYPE_NORMAL)))
                goto nomem;
        } else {
            free(s);
        }
        if ((rc = clip_data_bpe__add_merge(&r, &mcap, r.tokens[a], r.tokens[b])))
            goto nomem;
        clip_data_bpe__apply(&ws, a, b, id);
    }
    rc = clip_data_bpe__push(&r, &cap, strdup(CLIP_DATA_BPE_BOS), TOK_TYPE_CONTROL);
    rc = rc ? rc : clip_data_bpe__push(&r, &cap, strdup(CLIP_DATA_BPE_EOS), TOK_TYPE_CONTROL);
    if (rc)
        goto nomem;
    r.n_words = ws.n;
    for (size_t i = 0; i < ws.n; i++)
        r.n_single += ws.w[i].len == 1;
    free(tab);
    clip_data_bpe__words_free(&ws);
    *out = r;
    return 0;
nomem:
    rc = -ENOMEM;
    snprintf(err, errlen, "clip tokenizer: out of memory");
fail:
    free(tab);
    clip_data_bpe__words_free(&ws);
    clip_data_bpe_free(&r);
    return rc;
}

int clip_data_bpe_tok(const clip_data_bpe *r, tok **out, char *err, size_t errlen)
{
    tok_err te = {0};
    int rc = tok_create_clip(out, (const char *const *)r->tokens, r->n_tokens,
                             (const char *const *)r->merges, r->n_merges, r->types, NULL, &te);
    if (rc) {
        snprintf(err, errlen, "clip tokenizer: %s", te.msg);
        return rc == TOK_ENOMEM ? -ENOMEM : -EINVAL;
    }
    return 0;
}

void clip_data_bpe_free(clip_data_bpe *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_tokens; i++)
        free(r->tokens[i]);
    for (size_t i = 0; i < r->n_merges; i++)
        free(r->merges[i]);
    free(r->tokens);
    free(r->types);
    free(r->merges);
    memset(r, 0, sizeof *r);
}

/* ---- files ------------------------------------------------------------------------ */

static int clip_data_bpe__write(const char *dir, const char *name, const char *text, size_t len,
                                char *err, size_t errlen)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path) {
        snprintf(err, errlen, "%s/%s: path too long", dir, name);
        return -ENAMETOOLONG;
    }
    atomic_file af;
    eng_err e = {0};
    int rc = atomic_file_open(&af, path, &e);
    if (rc) {
        snprintf(err, errlen, "%s", e.msg);
        return rc;
    }
    if (len && fwrite(text, 1, len, af.f) != len) {
        int en = errno ? errno : EIO;
        atomic_file_abort(&af);
        snprintf(err, errlen, "%s: %s", path, strerror(en));
        return -en;
    }
    if ((rc = atomic_file_commit(&af, &e)))
        snprintf(err, errlen, "%s", e.msg);
    return rc;
}

static int clip_data_bpe__write_json(const char *dir, const char *name, json_t *j, char *err,
                                     size_t errlen)
{
    char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!s) {
        snprintf(err, errlen, "%s/%s: out of memory", dir, name);
        return -ENOMEM;
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        snprintf(err, errlen, "%s/%s: out of memory", dir, name);
        return -ENOMEM;
    }
    memcpy(t + n, "\n", 2);
    int rc = clip_data_bpe__write(dir, name, t, n + 1, err, errlen);
    free(t);
    return rc;
}

int clip_data_bpe_write(const clip_data_bpe *r, const char *dir, int text_ctx, char *err,
                        size_t errlen)
{
    json_t *vocab = json_object();
    for (size_t i = 0; vocab && i < r->n_tokens; i++)
        if (json_object_set_new(vocab, r->tokens[i], json_integer((json_int_t)i))) {
            json_decref(vocab);
            vocab = NULL;
        }
    int rc = clip_data_bpe__write_json(dir, "vocab.json", vocab, err, errlen);
    if (rc)
        return rc;
    size_t len = 32;
    for (size_t i = 0; i < r->n_merges; i++)
        len += strlen(r->merges[i]) + 1;
    char *m = malloc(len);
    if (!m) {
        snprintf(err, errlen, "%s/merges.txt: out of memory", dir);
        return -ENOMEM;
    }
    size_t w = (size_t)sprintf(m, "#version: 0.2\n");
    for (size_t i = 0; i < r->n_merges; i++)
        w += (size_t)sprintf(m + w, "%s\n", r->merges[i]);
    rc = clip_data_bpe__write(dir, "merges.txt", m, w, err, errlen);
    free(m);
    if (rc)
        return rc;
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:b, s:b}",
                            "tokenizer_class", "CLIPTokenizer", "bos_token", CLIP_DATA_BPE_BOS,
                            "eos_token", CLIP_DATA_BPE_EOS, "unk_token", CLIP_DATA_BPE_EOS,
                            "pad_token", CLIP_DATA_BPE_EOS, "model_max_length", text_ctx,
                            "do_lower_case", 1, "errors", "replace", "add_prefix_space", 0,
                            "clean_up_tokenization_spaces", 0);
    if ((rc = clip_data_bpe__write_json(dir, "tokenizer_config.json", cfg, err, errlen)))
        return rc;
    json_t *sp = json_pack("{s:s, s:s, s:s, s:s}", "bos_token", CLIP_DATA_BPE_BOS, "eos_token",
                           CLIP_DATA_BPE_EOS, "unk_token", CLIP_DATA_BPE_EOS, "pad_token",
                           CLIP_DATA_BPE_EOS);
    return clip_data_bpe__write_json(dir, "special_tokens_map.json", sp, err, errlen);
}
