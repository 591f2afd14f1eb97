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

    if ((rc = tok__bpe_tables(t, types, true, err))) goto fail;

    if ((rc = tok__build_merges(t, merges, n_merges, "tok_create_clip", err))) goto fail;

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
fail:
    tok_free(t);
    return rc;
}

int tok_create_clip_from_files(tok **out, const char *vocab_json_path, const char *merges_path,
                               const tok_options *opt, tok_err *err) {
    return tok__read_vocab_merges(out, vocab_json_path, merges_path, opt, err,
                                  "tok_create_clip_from_files", tok_create_clip);
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
    size_t k = tok__lower_utf32(a, m, b);
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

/* The "</w>" token of byte b (its byte-level character + "</w>"), or -1. */
static int32_t tok__clip_end_id(const tok *t, unsigned char b) {
    uint32_t cp[256];
    tok__byte_to_unicode(cp);
    char u[8];
    size_t l = tok_utf8_encode(cp[b], u);
    memcpy(u + l, TOK__CLIP_EOW, 4);
    return tok__map_find(t, u, l + 4);
}

/* BPE of one pre-token w[0..m) (m > 0), its last byte in the "</w>" form. */
static int tok__clip_word(const tok *t, const char *w, size_t m, tok__sink *sink, tok__scratch *sc) {
    int32_t last = tok__clip_end_id(t, (unsigned char)w[m - 1]);
    return tok__bpe_merge_word(t, w, m, &last, sink, sc);
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
