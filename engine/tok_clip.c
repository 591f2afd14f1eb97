/* tok_clip.c - CLIP's byte-level BPE (OpenAI CLIP simple_tokenizer.py,
 * Hugging Face CLIPTokenizer, the slow one) as TOK_KIND_CLIP. The contract
 * is in tok.h; the encode driver and special-token matching are tok.c's.
 *
 * Encoding one fragment (special tokens already split off by tok.c, as the
 * Hugging Face tokenizer splits its added tokens before _tokenize):
 *  1. Clean: invalid UTF-8 becomes U+FFFD (maximal subparts; CLIP itself
 *     only sees Python str), then NFC. ftfy.fix_text is NOT applied: NFC is
 *     the only part of it done here (for the conformance prompts ftfy changes
 *     nothing beyond NFC). Runs of whitespace (Python's str.isspace set, which
 *     re's \s uses: White_Space plus U+001C..U+001F) become one space and the
 *     ends are stripped (whitespace_clean).
 *  2. Lower-case as Python's str.lower: utf8proc's simple mapping, plus
 *     U+0130 -> "i" U+0307 and the final-sigma rule.
 *  3. Pre-tokenize with CLIP's regex, case-insensitive (PCRE2 UTF + UCP):
 *       's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *     The "<|startoftext|>|<|endoftext|>" alternatives of the original are
 *     left out: special tokens are recognised only with
 *     TOK_ENC_PARSE_SPECIAL (by tok.c, case-sensitively, before cleaning),
 *     so user text cannot produce them. Characters no alternative matches
 *     (spaces) are skipped, as re.findall skips them.
 *  4. Each pre-token: one symbol per byte (GPT-2's byte-to-unicode token),
 *     the LAST one being the "</w>" form ("t</w>"); adjacent symbols merged
 *     by merge rank, lowest first and leftmost among equals (the heap scheme
 *     of tok_bpe.c).
 *
 * Decoding: a token "xyz</w>" decodes to the bytes of "xyz" plus a space;
 * tok_decode then strips leading and trailing ASCII whitespace of the whole
 * text (Hugging Face's convert_tokens_to_string .strip(); OpenAI's decode
 * keeps the trailing space). No clean_up_tokenization_spaces (" ." stays).
 */
#include "tok_impl.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_utf8.h"

#define TOK__CLIP_WS "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}" \
                     "\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}"

static const char tok__clip_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d|\\p{L}+|\\p{N}|[^" TOK__CLIP_WS "\\p{L}\\p{N}]+";

#define TOK__CLIP_EOW "</w>"

/* GPT-2's bytes_to_unicode (the same table as tok_bpe.c's). */
static void tok__clip_byte_to_cp(uint32_t cp[256]) {
    uint32_t extra = 0;
    for (uint32_t b = 0; b < 256; b++) {
        bool self = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        cp[b] = self ? b : 256 + extra++;
    }
}

/* ---- merge pair map (t->merges, freed by tok_free) ------------------------ */

static size_t tok__clip_slot(uint64_t key, size_t cap) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

static const tok__pairent *tok__clip_pair_find(const tok__pairmap *m, int32_t a, int32_t b) {
    if (!m->cap) return NULL;
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    for (size_t i = tok__clip_slot(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (m->slot[i].key == key) return &m->slot[i];
        if (m->slot[i].key == UINT64_MAX) return NULL;
    }
}

static void tok__clip_pair_put(tok__pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    uint64_t key = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    size_t i = tok__clip_slot(key, m->cap);
    while (m->slot[i].key != UINT64_MAX && m->slot[i].key != key) i = (i + 1) & (m->cap - 1);
    m->slot[i] = (tok__pairent){key, rank, id};
}

/* "left right" with both parts non-empty and one space. */
static bool tok__clip_merge_split(const char *s, size_t *left_len, const char **right) {
    const char *sp = strchr(s, ' ');
    if (!sp || sp == s || sp[1] == '\0' || strchr(sp + 1, ' ')) return false;
    *left_len = (size_t)(sp - s);
    *right = sp + 1;
    return true;
}

/* ---- creation --------------------------------------------------------------- */

int tok_create_clip(tok **out, const char *const *tokens, size_t n_tokens,
                    const char *const *merges, size_t n_merges, const int32_t *types,
                    const tok_options *opt, tok_err *err) {
    if (!out) return tok__err(err, TOK_EINVAL, "tok_create_clip: out is NULL");
    *out = NULL;
    if (n_merges && !merges) return tok__err(err, TOK_EINVAL, "tok_create_clip: merges is NULL");
    if (n_merges > (size_t)INT32_MAX / 4)
        return tok__err(err, TOK_EINVAL, "tok_create_clip: %zu merges are too many", n_merges);
    tok *t;
    int rc = tok__create_base(&t, TOK_KIND_CLIP, tokens, n_tokens, opt, err);
    if (rc) return rc;
    char *cat = NULL;

    if (types) {
        for (size_t i = 0; i < t->n; i++) {
            if (types[i] < 0 || types[i] > TOK_TYPE_BYTE) {
                rc = tok__err(err, TOK_EINVAL, "token %zu (\"%.40s\"): type %ld is not a token type (0..6)",
                              i, t->text[i], (long)types[i]);
                goto fail;
            }
            t->type[i] = (int8_t)(types[i] == TOK_TYPE_UNDEFINED ? TOK_TYPE_NORMAL : types[i]);
        }
    } else {
        int32_t sp[4] = {t->bos, t->eos, t->unk, t->pad};
        for (int k = 0; k < 4; k++)
            if (sp[k] >= 0) t->type[sp[k]] = TOK_TYPE_CONTROL;
    }

    /* Pieces: byte-level text mapped back to bytes, "</w>" at the end -> ' '.
     * A piece is never longer than its text, as tok__create_base assumes. */
    uint32_t cp_of[256];
    int16_t byte_of[324];
    tok__clip_byte_to_cp(cp_of);
    memset(byte_of, 0xFF, sizeof byte_of);
    for (int b = 0; b < 256; b++) byte_of[cp_of[b]] = (int16_t)b;
    for (size_t i = 0; i < t->n; i++) {
        int ty = t->type[i];
        if (ty == TOK_TYPE_CONTROL || ty == TOK_TYPE_UNKNOWN || ty == TOK_TYPE_USER_DEFINED) continue;
        const char *s = t->text[i];
        size_t len = t->text_len[i], k = 0, w = 0;
        bool eow = len > 4 && memcmp(s + len - 4, TOK__CLIP_EOW, 4) == 0;
        if (eow) len -= 4;
        char tmp[1024];
        if (len >= sizeof tmp) continue; /* longer than any byte-level token; keep its text */
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

    if (n_merges) {
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
            if (!tok__clip_merge_split(merges[r], &ll, &right)) {
                rc = tok__err(err, TOK_EINVAL, "merge %zu (\"%.40s\"): expected two tokens separated by one space",
                              r, merges[r]);
                goto fail;
            }
            size_t rl = strlen(right);
            int32_t a = tok__map_find(t, merges[r], ll), b = tok__map_find(t, right, rl);
            memcpy(cat, merges[r], ll);
            memcpy(cat + ll, right, rl);
            int32_t c = tok__map_find(t, cat, ll + rl);
            if (a < 0 || b < 0 || c < 0) continue; /* skipped, as tok_create_bpe does */
            tok__clip_pair_put(&t->merges, a, b, (int32_t)r, c);
        }
        free(cat);
        cat = NULL;
    }

    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)tok__clip_pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &ec, &eo, NULL);
    if (!re) {
        PCRE2_UCHAR msg[120];
        pcre2_get_error_message(ec, msg, sizeof msg);
        rc = tok__err(err, TOK_EINVAL, "CLIP pre-tokenizer regex: %s at offset %zu", (char *)msg, (size_t)eo);
        goto fail;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    t->re = re; /* freed by tok__bpe_release */

    if ((rc = tok__finish(t, err))) goto fail;
    *out = t;
    return TOK_OK;
nomem:
    rc = tok__err(err, TOK_ENOMEM, "tok_create_clip: out of memory for %zu merges", n_merges);
fail:
    free(cat);
    tok_free(t);
    return rc;
}

/* Reads a whole file into a NUL-terminated buffer (caller frees). */
static char *tok__clip_slurp(const char *path, size_t *len) {
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

int tok_create_clip_from_files(tok **out, const char *vocab_json_path, const char *merges_path,
                               const tok_options *opt, tok_err *err) {
    if (!out || !vocab_json_path || !merges_path)
        return tok__err(err, TOK_EINVAL, "tok_create_clip_from_files: NULL argument");
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
    mbuf = tok__clip_slurp(merges_path, &mlen);
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
            if (!tok__clip_merge_split(p, &ll, &right)) {
                rc = tok__err(err, TOK_EFORMAT, "%s line %zu: expected two tokens separated by one space",
                              merges_path, line);
                goto done;
            }
            merges[n_merges++] = p;
        }
        if (!nl) break;
        p = nl + 1;
    }
    rc = tok_create_clip(out, tokens, n, merges, n_merges, NULL, opt, err);
    goto done;
nomem:
    rc = tok__err(err, TOK_ENOMEM, "tok_create_clip_from_files: out of memory");
done:
    free(merges);
    free(mbuf);
    free(tokens);
    json_decref(root);
    return rc;
}

int tok_clip_truncate(int32_t *ids, size_t *n, size_t max) {
    if (!ids || !n) return TOK_EINVAL;
    if (*n <= max) return TOK_OK;
    if (max < 2) return TOK_EINVAL;
    ids[max - 1] = ids[*n - 1];
    *n = max;
    return TOK_OK;
}

/* ---- cleaning (steps 1-2) --------------------------------------------------- */

/* Python's str.isspace (what re's \s matches in whitespace_clean). */
static bool tok__clip_is_space(int32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

static bool tok__clip_is_cased(int32_t c) {
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
}

static bool tok__clip_is_case_ignorable(int32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
    case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x55F: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
        return true;
    default:
        break;
    }
    utf8proc_category_t cat = utf8proc_category(c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

/* Python's final-sigma rule for U+03A3 at a[i] of a[0..n). */
static bool tok__clip_final_sigma(const int32_t *a, size_t i, size_t n) {
    size_t j = i;
    while (j > 0 && tok__clip_is_case_ignorable(a[j - 1])) j--;
    if (j == 0 || !tok__clip_is_cased(a[j - 1])) return false;
    j = i + 1;
    while (j < n && tok__clip_is_case_ignorable(a[j])) j++;
    return j == n || !tok__clip_is_cased(a[j]);
}

/* Steps 1-2 on s[0..len): writes the cleaned, lower-cased UTF-8 text to
 * sc->buf and its length to *out_len. Returns TOK_OK or TOK_ENOMEM. */
static int tok__clip_clean(const char *s, size_t len, tok__scratch *sc, size_t *out_len) {
    int rc = TOK_ENOMEM;
    char *valid = NULL;
    int32_t *a = NULL, *b = NULL;
    /* invalid UTF-8 -> U+FFFD (at most 3 bytes per invalid byte) */
    if (len > SIZE_MAX / 3 - 1) return TOK_ENOMEM;
    valid = malloc(3 * len + 1);
    if (!valid) goto done;
    size_t vl = 0;
    for (size_t i = 0; i < len;) {
        size_t l = tok_utf8_decode(s + i, len - i, NULL);
        if (l) {
            memcpy(valid + vl, s + i, l);
            vl += l;
            i += l;
        } else {
            memcpy(valid + vl, TOK_UTF8_REPLACEMENT_STR, 3);
            vl += 3;
            i += tok_utf8_invalid_len(s + i, len - i);
        }
    }
    /* NFC into code points */
    size_t cap = vl + 1;
    utf8proc_ssize_t n;
    for (;;) {
        int32_t *q = realloc(a, cap * sizeof *a);
        if (!q) goto done;
        a = q;
        n = utf8proc_decompose((const utf8proc_uint8_t *)valid, (utf8proc_ssize_t)vl, a,
                               (utf8proc_ssize_t)cap, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
        if (n < 0) goto done; /* cannot happen: valid is valid */
        if ((size_t)n <= cap) break;
        cap = (size_t)n;
    }
    n = utf8proc_normalize_utf32(a, n, (utf8proc_option_t)(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    if (n < 0) goto done;
    /* collapse whitespace, strip (in place) */
    size_t m = 0;
    for (size_t i = 0; i < (size_t)n; i++) {
        if (tok__clip_is_space(a[i])) {
            if (m > 0 && a[m - 1] != ' ') a[m++] = ' ';
        } else {
            a[m++] = a[i];
        }
    }
    if (m > 0 && a[m - 1] == ' ') m--;
    /* lower-case (one character may become two) */
    b = malloc((2 * m + 1) * sizeof *b);
    if (!b) goto done;
    size_t k = 0;
    for (size_t i = 0; i < m; i++) {
        int32_t x = a[i];
        if (x == 0x130) {
            b[k++] = 'i';
            b[k++] = 0x307;
        } else if (x == 0x3A3) {
            b[k++] = tok__clip_final_sigma(a, i, m) ? 0x3C2 : 0x3C3;
        } else {
            b[k++] = utf8proc_tolower(x);
        }
    }
    if (tok__scratch_buf(sc, 4 * k + 1)) goto done;
    size_t w = 0;
    for (size_t i = 0; i < k; i++) w += tok_utf8_encode((uint32_t)b[i], sc->buf + w);
    sc->buf[w] = '\0';
    *out_len = w;
    rc = TOK_OK;
done:
    free(b);
    free(a);
    free(valid);
    return rc;
}

/* ---- BPE (step 4) ------------------------------------------------------------ */

static int tok__clip_try_pair(const tok *t, tok__scratch *sc, int32_t l, int32_t r) {
    if (l < 0 || r < 0) return TOK_OK;
    const tok__sym *a = &sc->sym[l], *b = &sc->sym[r];
    if (a->id < 0 || b->id < 0) return TOK_OK;
    const tok__pairent *m = tok__clip_pair_find(&t->merges, a->id, b->id);
    if (!m) return TOK_OK;
    tok__cand c = {(double)m->rank, (uint32_t)l, (uint32_t)r, a->len + b->len, m->id};
    return tok__heap_push(&sc->heap, c);
}

/* The "</w>" token of byte b (its byte-level character + "</w>"), or -1. */
static int32_t tok__clip_end_id(const tok *t, unsigned char b) {
    uint32_t cp[256];
    tok__clip_byte_to_cp(cp);
    char u[8];
    size_t l = tok_utf8_encode(cp[b], u);
    memcpy(u + l, TOK__CLIP_EOW, 4);
    return tok__map_find(t, u, l + 4);
}

/* BPE of one pre-token w[0..m) (m > 0). */
static int tok__clip_word(const tok *t, const char *w, size_t m, tok__sink *sink, tok__scratch *sc) {
    int rc = tok__scratch_syms(sc, m);
    if (rc) return rc;
    tok__sym *sym = sc->sym;
    for (size_t k = 0; k < m; k++)
        sym[k] = (tok__sym){t->byte_id[(unsigned char)w[k]], 1, (int32_t)k - 1,
                            k + 1 < m ? (int32_t)k + 1 : -1};
    sym[m - 1].id = tok__clip_end_id(t, (unsigned char)w[m - 1]);
    sc->heap.n = 0;
    for (size_t k = 0; k + 1 < m; k++)
        if ((rc = tok__clip_try_pair(t, sc, (int32_t)k, (int32_t)k + 1))) return rc;
    tok__cand c;
    while (tok__heap_pop(&sc->heap, &c)) {
        tok__sym *a = &sym[c.left], *b = &sym[c.right];
        if (a->len == 0 || b->len == 0 || a->next != (int32_t)c.right || a->len + b->len != c.len)
            continue; /* stale */
        a->id = c.id;
        a->len += b->len;
        a->next = b->next;
        if (b->next >= 0) sym[b->next].prev = (int32_t)c.left;
        b->len = 0;
        if ((rc = tok__clip_try_pair(t, sc, a->prev, (int32_t)c.left)) ||
            (rc = tok__clip_try_pair(t, sc, (int32_t)c.left, a->next)))
            return rc;
    }
    for (int32_t k = 0; k >= 0; k = sym[k].next) {
        if (sym[k].id >= 0) tok__emit(sink, sym[k].id);
        else if (t->unk >= 0) tok__emit(sink, t->unk); /* a byte the vocabulary lacks */
    }
    return TOK_OK;
}

int tok__clip_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok__scratch *sc,
                     tok_err *err) {
    if (!sc->md) {
        sc->md = pcre2_match_data_create_from_pattern((const pcre2_code *)t->re, NULL);
        if (!sc->md) return tok__err(err, TOK_ENOMEM, "tok_encode: out of memory for regex match data");
    }
    size_t cl;
    int rc = tok__clip_clean(s, len, sc, &cl);
    if (rc) return tok__err(err, rc, "tok_encode: out of memory cleaning %zu bytes of text", len);
    const char *c = sc->buf;
    pcre2_match_data *md = sc->md;
    size_t off = 0;
    while (off < cl) {
        int mr = pcre2_match((const pcre2_code *)t->re, (PCRE2_SPTR)c, cl, off, PCRE2_NO_UTF_CHECK, md,
                             NULL);
        if (mr <= 0) break; /* only spaces are left */
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (b <= a || a < off || b > cl) break; /* cannot happen: no alternative is empty */
        if ((rc = tok__clip_word(t, c + a, b - a, sink, sc)))
            return tok__err(err, rc, "tok_encode: out of memory for a word");
        off = b;
    }
    return TOK_OK;
}

/* ---- decoding ------------------------------------------------------------------ */

static bool tok__clip_ascii_space(char ch) {
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\v' || ch == '\f' || ch == '\r';
}

int tok__clip_decode(const tok *t, const int32_t *ids, size_t n_ids, unsigned flags, char *buf,
                     size_t cap, size_t *n, tok_err *err) {
    flags &= ~(unsigned)TOK_DEC_STRIP_SPACE;
    size_t total = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || (size_t)ids[i] >= t->n)
            return tok__err(err, TOK_EINVAL, "ids[%zu]: token id %ld is out of range (vocabulary has %zu tokens)",
                            i, (long)ids[i], t->n);
        const char *p;
        size_t len;
        tok__piece_of(t, ids[i], flags, &p, &len);
        total += len;
    }
    /* whitespace to strip at both ends, found piece by piece */
    size_t lead = 0, trail = 0;
    bool done = false;
    for (size_t i = 0; i < n_ids && !done; i++) {
        const char *p;
        size_t len, k = 0;
        tok__piece_of(t, ids[i], flags, &p, &len);
        while (k < len && tok__clip_ascii_space(p[k])) k++;
        lead += k;
        done = k < len;
    }
    if (!done) lead = total; /* all whitespace */
    done = lead == total;
    for (size_t i = n_ids; i-- > 0 && !done;) {
        const char *p;
        size_t len, k = 0;
        tok__piece_of(t, ids[i], flags, &p, &len);
        while (k < len && tok__clip_ascii_space(p[len - 1 - k])) k++;
        trail += k;
        done = k < len;
    }
    size_t want = total - lead - trail, pos = 0, w = 0;
    *n = want;
    if (want > cap) return tok__err(err, TOK_ESPACE, "tok_decode: %zu bytes do not fit in %zu", want, cap);
    for (size_t i = 0; i < n_ids && w < want; i++) {
        const char *p;
        size_t len;
        tok__piece_of(t, ids[i], flags, &p, &len);
        size_t from = pos < lead ? (lead - pos < len ? lead - pos : len) : 0;
        size_t take = len - from;
        if (take > want - w) take = want - w;
        if (take) memcpy(buf + w, p + from, take);
        w += take;
        pos += len;
    }
    return TOK_OK;
}
