/* tok.c - what every tokenizer shares: the vocabulary store and its string
 * map, special-token recognition, the encode driver, decoding and the
 * accessors. The algorithms live in tok_bpe.c and tok_spm.c. */
#include "tok_impl.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_utf8.h"


/* FNV-1a, 64 bit. */
uint64_t tok__hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

int32_t tok__map_find(const tok *t, const char *s, size_t len) {
    if (!t->map.cap) return TOK_ID_NONE;
    size_t mask = t->map.cap - 1, i = (size_t)tok__hash(s, len) & mask;
    for (;;) {
        int32_t id = t->map.slot[i];
        if (id < 0) return TOK_ID_NONE;
        if (t->text_len[id] == len && memcmp(t->text[id], s, len) == 0) return id;
        i = (i + 1) & mask;
    }
}

/* ---- merge heap: smallest key first, then leftmost ---------------------- */

static bool tok__cand_less(const tok__cand *a, const tok__cand *b) {
    if (a->key != b->key) return a->key < b->key;
    return a->left < b->left;
}

int tok__heap_push(tok__heap *h, tok__cand c) {
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        tok__cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return TOK_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tok__cand_less(&c, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return TOK_OK;
}

bool tok__heap_pop(tok__heap *h, tok__cand *out) {
    if (h->n == 0) return false;
    *out = h->v[0];
    tok__cand last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const tok__cand *best = &last;
        if (l < n && tok__cand_less(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < n && tok__cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (n > 0) h->v[i] = last;
    return true;
}

int tok__scratch_syms(tok__scratch *sc, size_t n) {
    if (n <= sc->sym_cap) return TOK_OK;
    if (n > SIZE_MAX / sizeof(tok__sym) / 2) return TOK_ENOMEM;
    size_t cap = n < 64 ? 64 : n + n / 2;
    tok__sym *s = realloc(sc->sym, cap * sizeof *s);
    if (!s) return TOK_ENOMEM;
    sc->sym = s;
    sc->sym_cap = cap;
    return TOK_OK;
}

int tok__scratch_buf(tok__scratch *sc, size_t n) {
    if (n <= sc->buf_cap) return TOK_OK;
    if (n > SIZE_MAX / 2) return TOK_ENOMEM;
    size_t cap = n < 256 ? 256 : n + n / 2;
    char *b = realloc(sc->buf, cap);
    if (!b) return TOK_ENOMEM;
    sc->buf = b;
    sc->buf_cap = cap;
    return TOK_OK;
}

static void tok__scratch_free(tok__scratch *sc) {
    free(sc->sym);
    free(sc->heap.v);
    free(sc->buf);
    tok__bpe_scratch_free(sc);
    memset(sc, 0, sizeof *sc);
}

/* ---- options and creation -------------------------------------------------- */

void tok_options_init(tok_options *o, tok_kind kind) {
    memset(o, 0, sizeof *o);
    o->bos_id = o->eos_id = o->unk_id = TOK_ID_AUTO;
    o->pad_id = TOK_ID_NONE;
    if (kind == TOK_KIND_SPM) {
        o->add_bos = true;
        o->add_space_prefix = true;
    }
    if (kind == TOK_KIND_WORDPIECE || kind == TOK_KIND_CLIP) { /* [CLS] ... [SEP]; <sot> ... <eot> */
        o->pad_id = TOK_ID_AUTO;
        o->add_bos = o->add_eos = true;
    }
}

/* Resolves one special id: AUTO looks up `name` (NULL: none). */
static int tok__resolve_id(const tok *t, int32_t want, const char *name, const char *what,
                           int32_t *out, tok_err *err) {
    if (want == TOK_ID_AUTO) {
        *out = name ? tok__map_find(t, name, strlen(name)) : TOK_ID_NONE;
        return TOK_OK;
    }
    if (want == TOK_ID_NONE) {
        *out = TOK_ID_NONE;
        return TOK_OK;
    }
    if (want < 0 || (size_t)want >= t->n)
        return tok__err(err, TOK_EINVAL, "tokenizer option %s: id %ld is out of range (vocabulary has %zu tokens)",
                        what, (long)want, t->n);
    *out = want;
    return TOK_OK;
}

char *tok__piece_space(tok *t, size_t len) {
    if (len > t->arena_cap - t->arena_used) return NULL; /* cannot happen: sized in create */
    char *p = t->arena + t->arena_used;
    t->arena_used += len;
    return p;
}

int tok__create_base(tok **out, tok_kind kind, const char *const *tokens, size_t n,
                     const tok_options *opt, tok_err *err) {
    *out = NULL;
    if (!tokens || n == 0) return tok__err(err, TOK_EINVAL, "tokenizer: empty vocabulary");
    if (n > (size_t)INT32_MAX / 2)
        return tok__err(err, TOK_EINVAL, "tokenizer: vocabulary of %zu tokens is too large", n);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!tokens[i]) return tok__err(err, TOK_EINVAL, "token %zu: string is NULL", i);
        size_t l = strlen(tokens[i]);
        if (l > UINT32_MAX / 4 || total > SIZE_MAX / 4 - l - 1)
            return tok__err(err, TOK_EINVAL, "token %zu: string too long", i);
        total += l + 1;
    }
    tok_options defaults;
    if (!opt) {
        tok_options_init(&defaults, kind);
        opt = &defaults;
    }

    tok *t = calloc(1, sizeof *t);
    if (!t) goto nomem;
    t->kind = kind;
    t->n = n;
    t->arena_cap = 2 * total;
    t->arena = malloc(t->arena_cap);
    t->text = calloc(n, sizeof *t->text);
    t->text_len = calloc(n, sizeof *t->text_len);
    t->piece = calloc(n, sizeof *t->piece);
    t->piece_len = calloc(n, sizeof *t->piece_len);
    t->score = calloc(n, sizeof *t->score);
    t->type = calloc(n, sizeof *t->type);
    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    t->map.slot = malloc(cap * sizeof *t->map.slot);
    t->map.cap = cap;
    if (!t->arena || !t->text || !t->text_len || !t->piece || !t->piece_len || !t->score ||
        !t->type || !t->map.slot)
        goto nomem;
    for (size_t i = 0; i < 256; i++) t->byte_id[i] = TOK_ID_NONE;

    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(tokens[i]);
        char *p = t->arena + t->arena_used;
        memcpy(p, tokens[i], l + 1);
        t->arena_used += l + 1;
        t->text[i] = t->piece[i] = p;
        t->text_len[i] = t->piece_len[i] = (uint32_t)l;
        t->type[i] = TOK_TYPE_NORMAL;
    }
    /* String map; a repeated string maps to its highest id. */
    memset(t->map.slot, 0xFF, cap * sizeof *t->map.slot);
    for (size_t i = 0; i < n; i++) {
        size_t j = (size_t)tok__hash(t->text[i], t->text_len[i]) & (cap - 1);
        for (;;) {
            int32_t id = t->map.slot[j];
            if (id < 0 || (t->text_len[id] == t->text_len[i] &&
                           memcmp(t->text[id], t->text[i], t->text_len[i]) == 0)) {
                t->map.slot[j] = (int32_t)i;
                break;
            }
            j = (j + 1) & (cap - 1);
        }
    }

    const char *bos = kind == TOK_KIND_BPE ? "<|endoftext|>" : "<s>";
    const char *eos = kind == TOK_KIND_BPE ? "<|endoftext|>" : "</s>";
    const char *unk = kind == TOK_KIND_BPE ? "<|endoftext|>" : "<unk>";
    const char *pad = NULL;
    if (kind == TOK_KIND_WORDPIECE) bos = "[CLS]", eos = "[SEP]", unk = "[UNK]", pad = "[PAD]";
    if (kind == TOK_KIND_CLIP) /* issue "CLIP" */
        bos = "<|startoftext|>", eos = unk = pad = "<|endoftext|>";
    t->mask = TOK_ID_NONE;
    int rc;
    if ((rc = tok__resolve_id(t, opt->bos_id, bos, "bos_id", &t->bos, err)) ||
        (rc = tok__resolve_id(t, opt->eos_id, eos, "eos_id", &t->eos, err)) ||
        (rc = tok__resolve_id(t, opt->unk_id, unk, "unk_id", &t->unk, err)) ||
        (rc = tok__resolve_id(t, opt->pad_id, pad, "pad_id", &t->pad, err))) {
        tok_free(t);
        return rc;
    }
    t->add_bos = opt->add_bos;
    t->add_eos = opt->add_eos;
    t->add_space_prefix = kind == TOK_KIND_SPM && opt->add_space_prefix;
    *out = t;
    return TOK_OK;
nomem:
    tok_free(t);
    return tok__err(err, TOK_ENOMEM, "tokenizer: out of memory for %zu tokens", n);
}

/* A special token with its sort key inline (qsort has no context). */
typedef struct tok__skey {
    unsigned char first;
    uint32_t len;
    int32_t id;
} tok__skey;

/* Special tokens: by first byte, then longest first, then highest id. */
static int tok__special_cmp(const void *pa, const void *pb) {
    const tok__skey *a = pa, *b = pb;
    if (a->first != b->first) return a->first < b->first ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->id > b->id ? -1 : (a->id < b->id);
}

static bool tok__is_special_type(int ty) {
    return ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED;
}

int tok__set_types(tok *t, const int32_t *types, tok_err *err) {
    for (size_t i = 0; i < t->n; i++) {
        if (types[i] < 0 || types[i] > TOK_TYPE_BYTE)
            return tok__err(err, TOK_EINVAL, "token %zu (\"%.40s\"): type %ld is not a token type (0..6)",
                            i, t->text[i], (long)types[i]);
        t->type[i] = (int8_t)(types[i] == TOK_TYPE_UNDEFINED ? TOK_TYPE_NORMAL : types[i]);
    }
    return TOK_OK;
}

int tok__finish(tok *t, tok_err *err) {
    size_t ns = 0;
    for (size_t i = 0; i < t->n; i++)
        if (tok__is_special_type(t->type[i]) && t->text_len[i] > 0) ns++;
    memset(t->special_start, 0, sizeof t->special_start);
    t->n_special = 0;
    if (ns == 0) return TOK_OK;
    tok__skey *keys = malloc(ns * sizeof *keys);
    t->special = malloc(ns * sizeof *t->special);
    if (!keys || !t->special) {
        free(keys);
        return tok__err(err, TOK_ENOMEM, "tokenizer: out of memory for %zu special tokens", ns);
    }
    ns = 0;
    for (size_t i = 0; i < t->n; i++)
        if (tok__is_special_type(t->type[i]) && t->text_len[i] > 0)
            keys[ns++] = (tok__skey){(unsigned char)t->text[i][0], t->text_len[i], (int32_t)i};
    qsort(keys, ns, sizeof *keys, tok__special_cmp);
    t->n_user_defined = 0;
    for (size_t i = 0; i < ns; i++) {
        t->special[i] = keys[i].id;
        t->special_start[keys[i].first + 1]++;
        t->n_user_defined += t->type[keys[i].id] == TOK_TYPE_USER_DEFINED;
    }
    free(keys);
    t->n_special = ns;
    for (size_t b = 0; b < 256; b++) t->special_start[b + 1] += t->special_start[b];
    return TOK_OK;
}

void tok_free(tok *t) {
    if (!t) return;
    tok__bpe_release(t);
    tok__wordpiece_release(t);
    free(t->merges.slot);
    free(t->special);
    free(t->map.slot);
    free(t->type);
    free(t->score);
    free(t->piece_len);
    free(t->piece);
    free(t->text_len);
    free(t->text);
    free(t->arena);
    free(t);
}

/* ---- encoding driver ------------------------------------------------------- */

/* Finds the leftmost special token in s[from..len) that may be matched
 * (USER_DEFINED always, CONTROL/UNKNOWN when parse_all), longest at that
 * position. Returns true and its position and id, or false. */
static bool tok__find_special(const tok *t, const char *s, size_t len, size_t from, bool parse_all,
                              size_t *at, int32_t *id) {
    if (t->n_special == 0 || (!parse_all && t->n_user_defined == 0)) return false;
    for (size_t i = from; i < len; i++) {
        unsigned char b = (unsigned char)s[i];
        for (uint32_t k = t->special_start[b]; k < t->special_start[b + 1]; k++) {
            int32_t c = t->special[k];
            if (!parse_all && t->type[c] != TOK_TYPE_USER_DEFINED) continue;
            size_t l = t->text_len[c];
            if (l <= len - i && memcmp(s + i, t->text[c], l) == 0) {
                *at = i;
                *id = c;
                return true;
            }
        }
    }
    return false;
}

int tok_encode(const tok *t, const char *text, size_t len, unsigned flags, int32_t *out,
               size_t max, size_t *n, tok_err *err) {
    if (n) *n = 0;
    if (!t || !n || (!text && len) || (!out && max))
        return tok__err(err, TOK_EINVAL, "tok_encode: NULL argument");
    if (len > (size_t)INT32_MAX / 4) /* symbols are int32-indexed; SPM escapes grow text 3x */
        return tok__err(err, TOK_EINVAL, "tok_encode: text of %zu bytes is too long (limit %d)", len,
                        INT32_MAX / 4);
    tok__sink sink = {out, max, 0};
    tok__scratch sc;
    memset(&sc, 0, sizeof sc);
    bool add = (flags & TOK_ENC_ADD_SPECIAL) != 0, parse = (flags & TOK_ENC_PARSE_SPECIAL) != 0;
    int rc = TOK_OK;

    if (add && t->add_bos && t->bos >= 0) tok__emit(&sink, t->bos);
    size_t pos = 0;
    bool prev_special = true; /* SPM: the dummy prefix goes at the start and after specials */
    while (pos < len) {
        size_t at = len;
        int32_t sid = TOK_ID_NONE;
        bool found = tok__find_special(t, text, len, pos, parse, &at, &sid);
        if (at > pos) {
            if (t->kind == TOK_KIND_BPE)
                rc = tok__bpe_encode(t, text + pos, at - pos, &sink, &sc, err);
            else if (t->kind == TOK_KIND_WORDPIECE)
                rc = tok__wordpiece_encode(t, text + pos, at - pos, &sink, err);
            else if (t->kind == TOK_KIND_CLIP)
                rc = tok__clip_encode(t, text + pos, at - pos, &sink, &sc, err);
            else
                rc = tok__spm_encode(t, text + pos, at - pos, t->add_space_prefix && prev_special,
                                     &sink, &sc, err);
            if (rc) goto done;
            prev_special = false;
        }
        if (!found) break;
        tok__emit(&sink, sid);
        pos = at + t->text_len[sid];
        prev_special = true;
    }
    if (add && t->add_eos && t->eos >= 0) tok__emit(&sink, t->eos);
    *n = sink.n;
    if (sink.n > max)
        rc = tok__err(err, TOK_ESPACE, "tok_encode: %zu ids do not fit in %zu", sink.n, max);
done:
    tok__scratch_free(&sc);
    return rc;
}

/* ---- decoding --------------------------------------------------------------- */

/* The bytes token id decodes to under flags (borrowed or static). */
void tok__piece_of(const tok *t, int32_t id, unsigned flags, const char **p, size_t *len) {
    int ty = t->type[id];
    if ((ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN) && t->kind == TOK_KIND_WORDPIECE) {
        /* WordPiece: the piece is " [CLS]"; unk without TOK_DEC_SPECIAL " U+FFFD" */
        if (flags & TOK_DEC_SPECIAL) {
            *p = t->piece[id];
            *len = t->piece_len[id];
        } else if (ty == TOK_TYPE_UNKNOWN) {
            *p = " " TOK_UTF8_REPLACEMENT_STR;
            *len = 4;
        } else {
            *p = "";
            *len = 0;
        }
        if ((flags & TOK_DEC_STRIP_SPACE) && *len > 0 && (*p)[0] == ' ') {
            (*p)++;
            (*len)--;
        }
        return;
    }
    if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN) {
        if (flags & TOK_DEC_SPECIAL) {
            *p = t->text[id];
            *len = t->text_len[id];
        } else if (ty == TOK_TYPE_UNKNOWN) {
            *p = TOK_UTF8_REPLACEMENT_STR;
            *len = 3;
        } else {
            *p = "";
            *len = 0;
        }
        return;
    }
    *p = t->piece[id];
    *len = t->piece_len[id];
    if ((flags & TOK_DEC_STRIP_SPACE) && *len > 0 && (*p)[0] == ' ') {
        (*p)++;
        (*len)--;
    }
}

int tok_decode_piece(const tok *t, int32_t id, unsigned flags, char *buf, size_t cap, size_t *n,
                     tok_err *err) {
    if (n) *n = 0;
    if (!t || !n || (!buf && cap)) return tok__err(err, TOK_EINVAL, "tok_decode_piece: NULL argument");
    if (id < 0 || (size_t)id >= t->n)
        return tok__err(err, TOK_EINVAL, "token id %ld is out of range (vocabulary has %zu tokens)",
                        (long)id, t->n);
    const char *p;
    size_t len;
    tok__piece_of(t, id, flags, &p, &len);
    *n = len;
    if (len > cap)
        return tok__err(err, TOK_ESPACE, "token %ld: piece of %zu bytes does not fit in %zu", (long)id,
                        len, cap);
    if (len) memcpy(buf, p, len);
    return TOK_OK;
}

int tok_decode(const tok *t, const int32_t *ids, size_t n_ids, unsigned flags, char *buf,
               size_t cap, size_t *n, tok_err *err) {
    if (n) *n = 0;
    if (!t || !n || (!ids && n_ids) || (!buf && cap))
        return tok__err(err, TOK_EINVAL, "tok_decode: NULL argument");
    if (t->kind == TOK_KIND_CLIP) return tok__clip_decode(t, ids, n_ids, flags, buf, cap, n, err);
    flags &= ~(unsigned)TOK_DEC_STRIP_SPACE;
    bool strip = t->kind == TOK_KIND_SPM && t->add_space_prefix;
    bool wp_first = t->kind == TOK_KIND_WORDPIECE; /* until the first non-empty piece */
    size_t w = 0;
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || (size_t)id >= t->n)
            return tok__err(err, TOK_EINVAL, "ids[%zu]: token id %ld is out of range (vocabulary has %zu tokens)",
                            i, (long)id, t->n);
        unsigned f = flags;
        if (i == 0 && id == t->bos) {
            /* a leading BOS keeps the dummy-prefix strip for the next piece */
        } else if (strip) {
            f |= TOK_DEC_STRIP_SPACE;
            strip = false;
        }
        const char *p;
        size_t len;
        tok__piece_of(t, id, f, &p, &len);
        if (wp_first && len > 0) {
            /* HF's " ".join(tokens).replace(" ##", "").strip(): the first
             * rendered token loses its space, and a first "##x" stays "##x" */
            wp_first = false;
            if (p[0] == ' ') {
                p++;
                len--;
            } else if (t->type[id] == TOK_TYPE_NORMAL || t->type[id] == TOK_TYPE_USER_DEFINED) {
                p = t->text[id];
                len = t->text_len[id];
            }
        }
        if (len && len <= cap && w <= cap - len) memcpy(buf + w, p, len);
        w += len;
    }
    *n = w;
    if (w > cap) return tok__err(err, TOK_ESPACE, "tok_decode: %zu bytes do not fit in %zu", w, cap);
    return TOK_OK;
}

/* ---- accessors -------------------------------------------------------------- */

tok_kind tok_get_kind(const tok *t) { return t->kind; }
size_t tok_n_vocab(const tok *t) { return t->n; }
int32_t tok_bos(const tok *t) { return t->bos; }
int32_t tok_eos(const tok *t) { return t->eos; }
int32_t tok_unk(const tok *t) { return t->unk; }
int32_t tok_pad(const tok *t) { return t->pad; }
bool tok_adds_bos(const tok *t) { return t->add_bos && t->bos >= 0; }
bool tok_adds_eos(const tok *t) { return t->add_eos && t->eos >= 0; }

const char *tok_token_text(const tok *t, int32_t id, size_t *len) {
    if (id < 0 || (size_t)id >= t->n) return NULL;
    if (len) *len = t->text_len[id];
    return t->text[id];
}

int tok_token_type(const tok *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->n) return -1;
    return t->type[id];
}

float tok_token_score(const tok *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->n) return 0.0f;
    return t->score[id];
}

int32_t tok_find(const tok *t, const char *text, size_t len) {
    if (!text) return TOK_ID_NONE;
    return tok__map_find(t, text, len);
}
