/* tok_bpe.c - GPT-2 byte-level BPE (OpenAI's encoder.py, Hugging Face
 * GPT2Tokenizer).
 *
 * Encoding one fragment of text (special tokens already split off by tok.c):
 *  1. Pre-tokenize with GPT-2's regex
 *       's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *     run by PCRE2 in UTF + UCP mode. \s is spelled out as Unicode's
 *     White_Space property (TOK__WS below), which is what the Python `regex`
 *     module used by encoder.py matches; PCRE2's own UCP \s also matches
 *     U+180E and JavaScript's also matches U+FEFF, neither of which is
 *     White_Space. \p{L} / \p{N} come from PCRE2's Unicode tables.
 *  2. Each pre-token's bytes start as one symbol each (token of the byte's
 *     GPT-2 byte-to-unicode character); adjacent symbols are merged by merge
 *     rank, lowest first and leftmost among equals, with a heap of
 *     candidate pairs over a linked list of symbols: O(m log m) per word of
 *     m bytes. This equals encoder.py's "merge every occurrence of the best
 *     pair" loop for merge lists in which a merged token is only used by
 *     later merges, which holds for every trained BPE merge list.
 *
 * Invalid UTF-8 (behaviour of this implementation; GPT-2 itself only sees
 * Python str): the text is split into maximal valid runs and maximal runs
 * of invalid bytes. Valid runs are pre-tokenized separately (so a regex
 * look-ahead does not see across an invalid run); each invalid run is one
 * pre-token and is BPE-encoded from its raw bytes like any other, since
 * every byte has a token. Decoding therefore reproduces the input bytes
 * exactly, valid or not.
 */
#include "tok_impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok_utf8.h"

/* Unicode White_Space (Unicode 14 PropList.txt). */
#define TOK__WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
                "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static const char tok__gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^" TOK__WS "\\p{L}\\p{N}]+"
    "|[" TOK__WS "]+(?![^" TOK__WS "])|[" TOK__WS "]+";

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the other 68 bytes (0..32, 127..160, 173) map to U+0100.. in order. */
void tok__byte_to_unicode(uint32_t cp[256]) {
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = self ? b : 256 + extra++;
    }
}

size_t tok_bpe_byte_text(uint8_t b, char out[5]) {
    uint32_t cp[256];
    tok__byte_to_unicode(cp);
    size_t n = tok_utf8_encode(cp[b], out);
    out[n] = '\0';
    return n;
}

/* ---- merge pair map ------------------------------------------------------- */

static size_t tok__pair_slot(uint64_t key, size_t cap) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static const tok__pairent *tok__pair_find(const tok__pairmap *m, int32_t a, int32_t b) {
    if (!m->cap) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = tok__pair_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->slot[i].key == key) return &m->slot[i];
        if (m->slot[i].key == UINT64_MAX) return NULL;
    }
}

/* Inserts or replaces (a, b) -> (rank, id); the map never fills (cap >= 2n). */
static void tok__pair_put(tok__pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = tok__pair_slot(key, m->cap);
    while (m->slot[i].key != UINT64_MAX && m->slot[i].key != key) i = (i + 1) & (m->cap - 1);
    m->slot[i] = (tok__pairent){key, rank, id};
}

/* Splits merge string s at its single separating space. Returns false when
 * it is not "left right" with both parts non-empty. */
static bool tok__merge_split(const char *s, size_t *left_len, const char **right) {
    const char *sp = strchr(s, ' ');
    if (!sp || sp == s || sp[1] == '\0' || strchr(sp + 1, ' ')) return false;
    *left_len = (size_t)(sp - s);
    *right = sp + 1;
    return true;
}

/* Fills t->merges from merges[0..n_merges) ("left right"; rank = index);
 * merges whose parts or concatenation are not tokens are skipped. who names
 * the caller in the out-of-memory message. */
int tok__build_merges(tok *t, const char *const *merges, size_t n_merges, const char *who,
                      tok_err *err) {
    int rc;
    char *cat = NULL;
    if (!n_merges) return TOK_OK;
    size_t cap = 16, longest = 0;
    while (cap < 2 * n_merges) cap *= 2;
    t->merges.slot = malloc(cap * sizeof *t->merges.slot);
    if (!t->merges.slot) goto nomem;
    memset(t->merges.slot, 0xFF, cap * sizeof *t->merges.slot);
    t->merges.cap = cap;
    for (size_t r = 0; r < n_merges; r++) {
        if (!merges[r]) {
            rc = tok__err(err, TOK_EINVAL, "merge %zu: string is NULL", r);
            goto fail;
        }
        size_t l = strlen(merges[r]);
        if (l > longest) longest = l;
    }
    cat = malloc(longest + 1);
    if (!cat) goto nomem;
    for (size_t r = 0; r < n_merges; r++) {
        size_t ll;
        const char *right;
        if (!tok__merge_split(merges[r], &ll, &right)) {
            rc = tok__err(err, TOK_EINVAL, "merge %zu (\"%.40s\"): expected two tokens separated by one space",
                          r, merges[r]);
            goto fail;
        }
        size_t rl = strlen(right);
        int32_t a = tok__map_find(t, merges[r], ll), b = tok__map_find(t, right, rl);
        memcpy(cat, merges[r], ll);
        memcpy(cat + ll, right, rl);
        int32_t c = tok__map_find(t, cat, ll + rl);
        if (a < 0 || b < 0 || c < 0) continue; /* documented: skipped */
        tok__pair_put(&t->merges, a, b, (int32_t)r, c);
    }
    free(cat);
    return TOK_OK;
nomem:
    rc = tok__err(err, TOK_ENOMEM, "%s: out of memory for %zu merges", who, n_merges);
fail:
    free(cat);
    return rc;
}

/* Types (given, or CONTROL for the special ids), pieces (byte-level text
 * mapped back to bytes; with end_of_word, a trailing "</w>" becomes ' ') and
 * t->byte_id. A piece is never longer than its text, as tok__create_base
 * assumes. */
int tok__bpe_tables(tok *t, const int32_t *types, bool end_of_word, tok_err *err) {
    if (types) {
        int rc = tok__set_types(t, types, err);
        if (rc) return rc;
    } else {
        int32_t sp[4] = {t->bos, t->eos, t->unk, t->pad};
        for (int k = 0; k < 4; k++)
            if (sp[k] >= 0) t->type[sp[k]] = TOK_TYPE_CONTROL;
    }
    uint32_t cp_of[256];
    int16_t byte_of[324];
    tok__byte_to_unicode(cp_of);
    memset(byte_of, 0xFF, sizeof byte_of);
    for (int b = 0; b < 256; b++) byte_of[cp_of[b]] = (int16_t)b;
    for (size_t i = 0; i < t->n; i++) {
        int ty = t->type[i];
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED) continue;
        const char *s = t->text[i];
        size_t len = t->text_len[i], k = 0, w = 0;
        bool eow = end_of_word && len > 4 && memcmp(s + len - 4, "</w>", 4) == 0;
        if (eow) len -= 4;
        char tmp[1024];
        /* longer than any byte-level token (leaving room for eow's ' '); keep its text */
        if (len > sizeof tmp - (end_of_word ? 1 : 0)) continue;
        while (k < len) {
            uint32_t cp;
            size_t l = tok_utf8_decode(s + k, len - k, &cp);
            if (l == 0 || cp >= 324 || byte_of[cp] < 0) break;
            tmp[w++] = (char)byte_of[cp];
            k += l;
        }
        if (k < len) continue; /* not byte-level text: decodes to itself */
        if (eow) tmp[w++] = ' ';
        char *p = tok__piece_space(t, w);
        if (w) memcpy(p, tmp, w);
        t->piece[i] = p;
        t->piece_len[i] = (uint32_t)w;
    }
    for (int b = 0; b < 256; b++) {
        char u[4];
        size_t l = tok_utf8_encode(cp_of[b], u);
        t->byte_id[b] = tok__map_find(t, u, l);
    }
    return TOK_OK;
}

/* ---- creation -------------------------------------------------------------- */

int tok_create_bpe(tok **out, const char *const *tokens, size_t n_tokens,
                   const char *const *merges, size_t n_merges, const int32_t *types,
                   const tok_options *opt, tok_err *err) {
    if (!out) return tok__err(err, TOK_EINVAL, "tok_create_bpe: out is NULL");
    *out = NULL;
    if (n_merges && !merges) return tok__err(err, TOK_EINVAL, "tok_create_bpe: merges is NULL");
    if (n_merges > (size_t)INT32_MAX / 4)
        return tok__err(err, TOK_EINVAL, "tok_create_bpe: %zu merges are too many", n_merges);
    tok *t;
    int rc = tok__create_base(&t, TOK_KIND_BPE, tokens, n_tokens, opt, err);
    if (rc) return rc;

    if ((rc = tok__bpe_tables(t, types, false, err))) goto fail;

    /* Merges: (left id, right id) -> (rank, merged id). */
    if ((rc = tok__build_merges(t, merges, n_merges, "tok_create_bpe", err))) goto fail;

    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tok__gpt2_pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        rc = tok__err(err, TOK_EINVAL, "GPT-2 pre-tokenizer regex: %s at offset %zu", (char *)msg, (size_t)eo);
        goto fail;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional speed-up; the interpreter is fine */
    t->re = re;

    if ((rc = tok__finish(t, err))) goto fail;
    *out = t;
    return TOK_OK;
fail:
    tok_free(t);
    return rc;
}

void tok__bpe_release(tok *t) {
    if (t->re) pcre2_code_free((pcre2_code *)t->re);
    t->re = NULL;
}

void tok__bpe_scratch_free(tok__scratch *sc) {
    if (sc->md) pcre2_match_data_free((pcre2_match_data *)sc->md);
    sc->md = NULL;
}

/* ---- files ---------------------------------------------------------------- */

/* Reads a whole file into a NUL-terminated buffer (caller frees). */
static char *tok__slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    long n;
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) goto fail;
    buf[n] = '\0';
    *len = (size_t)n;
    fclose(f);
    return buf;
fail:
    free(buf);
    fclose(f);
    return NULL;
}

/* Reads vocab.json (token -> id) and merges.txt, then calls create with
 * them; who names the public caller in its messages. */
int tok__read_vocab_merges(tok **out, const char *vocab_json_path, const char *merges_path,
                           const tok_options *opt, tok_err *err, const char *who,
                           tok__create_merges_fn create) {
    if (!out || !vocab_json_path || !merges_path)
        return tok__err(err, TOK_EINVAL, "%s: NULL argument", who);
    *out = NULL;
    int rc;
    json_t *root = NULL;
    const char **tokens = NULL, **merges = NULL;
    char *mbuf = NULL;
    size_t n = 0, n_merges = 0;

    json_error_t je;
    root = json_load_file(vocab_json_path, 0, &je);
    if (!root) {
        rc = tok__err(err, TOK_EFORMAT, "%s line %d: %s", vocab_json_path, je.line, je.text);
        goto done;
    }
    if (!json_is_object(root) || (n = json_object_size(root)) == 0) {
        rc = tok__err(err, TOK_EFORMAT, "%s: expected a non-empty object of token -> id", vocab_json_path);
        goto done;
    }
    tokens = calloc(n, sizeof *tokens);
    if (!tokens) goto nomem;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
        if (id < 0 || (size_t)id >= n) {
            rc = tok__err(err, TOK_EFORMAT, "%s: token \"%.40s\": id must be an integer in 0..%zu",
                          vocab_json_path, key, n - 1);
            goto done;
        }
        if (tokens[id]) {
            rc = tok__err(err, TOK_EFORMAT, "%s: id %ld is used by \"%.40s\" and \"%.40s\"", vocab_json_path,
                          (long)id, tokens[id], key);
            goto done;
        }
        tokens[id] = key;
    }

    size_t mlen;
    mbuf = tok__slurp(merges_path, &mlen);
    if (!mbuf) {
        rc = tok__err(err, TOK_EIO, "%s: cannot read", merges_path);
        goto done;
    }
    size_t lines = 1;
    for (size_t i = 0; i < mlen; i++) lines += mbuf[i] == '\n';
    merges = calloc(lines, sizeof *merges);
    if (!merges) goto nomem;
    char *p = mbuf, *end = mbuf + mlen;
    for (size_t line = 1;; line++) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e--;
        *e = '\0';
        if (memchr(p, '\0', (size_t)(e - p))) {
            rc = tok__err(err, TOK_EFORMAT, "%s line %zu: NUL byte in line", merges_path, line);
            goto done;
        }
        if (*p && !(line == 1 && strncmp(p, "#version", 8) == 0)) {
            size_t ll;
            const char *right;
            if (!tok__merge_split(p, &ll, &right)) {
                rc = tok__err(err, TOK_EFORMAT, "%s line %zu: expected two tokens separated by one space",
                              merges_path, line);
                goto done;
            }
            merges[n_merges++] = p;
        }
        if (!nl) break;
        p = nl + 1;
    }
    rc = create(out, tokens, n, merges, n_merges, NULL, opt, err);
    goto done;
nomem:
    rc = tok__err(err, TOK_ENOMEM, "%s: out of memory", who);
done:
    free(merges);
    free(mbuf);
    free(tokens);
    json_decref(root);
    return rc;
}

int tok_create_bpe_from_files(tok **out, const char *vocab_json_path, const char *merges_path,
                              const tok_options *opt, tok_err *err) {
    return tok__read_vocab_merges(out, vocab_json_path, merges_path, opt, err,
                                  "tok_create_bpe_from_files", tok_create_bpe);
}

/* ---- encoding --------------------------------------------------------------- */

static int tok__bpe_try_pair(const tok *t, tok__scratch *sc, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return TOK_OK;
    const tok__sym *a = &sc->sym[l], *b = &sc->sym[r];
    if (a->id < 0 || b->id < 0) return TOK_OK;
    const tok__pairent *m = tok__pair_find(&t->merges, a->id, b->id);
    if (!m) return TOK_OK;
    tok__cand c = {(double)m->rank, (uint32_t)l, (uint32_t)r, a->len + b->len, m->id};
    return tok__heap_push(&sc->heap, c);
}

/* BPE of one pre-token w[0..m): one symbol per byte (its byte token, the
 * last one last_id instead when last_id is not NULL), merged by rank. */
int tok__bpe_merge_word(const tok *t, const char *w, size_t m, const int32_t *last_id,
                        tok__sink *sink, tok__scratch *sc) {
    if (m == 0) return TOK_OK;
    int rc = tok__scratch_syms(sc, m);
    if (rc) return rc;
    tok__sym *sym = sc->sym;
    for (size_t k = 0; k < m; k++)
        sym[k] = (tok__sym){t->byte_id[(unsigned char)w[k]], 1, (int32_t)k - 1,
                            k + 1 < m ? (int32_t)k + 1 : -1};
    if (last_id) sym[m - 1].id = *last_id;
    sc->heap.n = 0;
    for (size_t k = 0; k + 1 < m; k++)
        if ((rc = tok__bpe_try_pair(t, sc, (int32_t)k, (int32_t)k + 1))) return rc;
    tok__cand c;
    while (tok__heap_pop(&sc->heap, &c)) {
        tok__sym *a = &sym[c.left], *b = &sym[c.right];
        if (a->len == 0 || b->len == 0 || a->next != (int32_t)c.right || a->len + b->len != c.len)
            continue; /* stale: one side has merged since */
        a->id = c.id;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = (int32_t)c.left;
        b->len = 0;
        if ((rc = tok__bpe_try_pair(t, sc, a->prev, (int32_t)c.left)) ||
            (rc = tok__bpe_try_pair(t, sc, (int32_t)c.left, a->next)))
            return rc;
    }
    for (int32_t k = 0; k >= 0; k = sym[k].next) {
        if (sym[k].id >= 0) tok__emit(sink, sym[k].id);
        else if (t->unk >= 0) tok__emit(sink, t->unk); /* a byte the vocabulary lacks */
    }
    return TOK_OK;
}

/* tok__bpe_encode's per-word callback: BPE-encodes one pre-token. */
typedef struct tok__bpe_enc {
    const tok *t;
    tok__sink *sink;
    tok__scratch *sc;
} tok__bpe_enc;

static int tok__bpe_word(void *ctx, const char *w, size_t m) {
    tok__bpe_enc *e = ctx;
    return tok__bpe_merge_word(e->t, w, m, NULL, e->sink, e->sc);
}

/* Pre-tokenizes valid UTF-8 s[0..len) and hands each piece to word. */
static int tok__bpe_segment(const tok *t, pcre2_match_data *md, const char *s, size_t len,
                            tok__word_fn word, void *ctx) {
    size_t off = 0;
    int rc;
    while (off < len) {
        int mr = pcre2_match((const pcre2_code *)t->re, (PCRE2_SPTR)s, len, off, PCRE2_NO_UTF_CHECK,
                             md, NULL);
        size_t a, b;
        if (mr > 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            a = ov[0];
            b = ov[1];
        } else {
            a = b = off; /* no match (cannot happen: every character matches) */
        }
        if (b <= a || a < off || b > len) { /* take one character and go on */
            size_t l = tok_utf8_decode(s + off, len - off, NULL);
            a = off;
            b = off + (l ? l : 1);
        }
        if (a > off && (rc = word(ctx, s + off, a - off))) return rc;
        if ((rc = word(ctx, s + a, b - a))) return rc;
        off = b;
    }
    return TOK_OK;
}

/* Shared with BPE training (engine/train/bpe_train.c) so that it learns from
 * exactly the pre-tokens tok_encode will see. */
int tok__bpe_split(const tok *t, tok__scratch *sc, const char *s, size_t len, tok__word_fn word,
                   void *ctx) {
    if (!sc->md) {
        sc->md = pcre2_match_data_create_from_pattern((const pcre2_code *)t->re, NULL);
        if (!sc->md) return TOK_ENOMEM;
    }
    size_t i = 0;
    int rc = TOK_OK;
    while (i < len && rc == TOK_OK) {
        size_t v = tok_utf8_valid_prefix(s + i, len - i);
        if (v > 0) {
            rc = tok__bpe_segment(t, sc->md, s + i, v, word, ctx);
            i += v;
            continue;
        }
        size_t j = i;
        while (j < len && tok_utf8_decode(s + j, len - j, NULL) == 0) j += tok_utf8_invalid_len(s + j, len - j);
        rc = word(ctx, s + i, j - i);
        i = j;
    }
    return rc;
}

int tok__bpe_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok__scratch *sc,
                    tok_err *err) {
    if (!sc->md) {
        sc->md = pcre2_match_data_create_from_pattern((const pcre2_code *)t->re, NULL);
        if (!sc->md) return tok__err(err, TOK_ENOMEM, "tok_encode: out of memory for regex match data");
    }
    tok__bpe_enc e = {t, sink, sc};
    int rc = tok__bpe_split(t, sc, s, len, tok__bpe_word, &e);
    if (rc) return tok__err(err, rc, "tok_encode: out of memory for a word");
    return TOK_OK;
}
