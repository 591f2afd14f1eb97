/* tok_wordpiece.c - BERT's WordPiece tokenizer (TOK_KIND_WORDPIECE): the
 * basic tokenizer (cleaning, CJK split, NFC, lower-casing, accent strip,
 * punctuation split) and greedy longest-match-first WordPiece, as Hugging
 * Face's BertTokenizer does them; plus reading a vocab.txt. The contract is
 * in tok.h; the encode driver, special-token matching and decoding are
 * tok.c's. */
#include "tok_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tok_utf8.h"

/* WordPiece settings of a tok (t->wp). */
struct tok__wp {
    bool clean, cjk, nfc, lower, strip;
    char *prefix;          /* continuation prefix, NUL-terminated */
    size_t prefix_len;
    uint32_t max_chars;    /* max_input_chars_per_word */
    uint32_t max_tok_len;  /* bytes of the longest vocabulary string */
};

void tok_wordpiece_options_init(tok_wordpiece_options *o) {
    memset(o, 0, sizeof *o);
    o->clean_text = true;
    o->tokenize_chinese_chars = true;
    o->nfc = true;
    o->lowercase = true;
    o->strip_accents = -1;
    o->mask_id = TOK_ID_AUTO;
    o->prefix = "##";
    o->max_input_chars_per_word = 100;
}

void tok__wordpiece_release(tok *t) {
    if (!t->wp) return;
    free(t->wp->prefix);
    free(t->wp);
    t->wp = NULL;
}

int32_t tok_mask(const tok *t) { return t->mask; }

/* ---- character classes (BERT's, with Python's str semantics) ------------- */

/* BERT's _is_chinese_char: the CJK Unified Ideographs blocks it lists. */
static bool tok__wp_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B820 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

/* What Python's str.split() splits on (str.isspace): the ASCII and C1
 * separators, Zs, U+2028 and U+2029. */
static bool tok__wp_is_space(uint32_t c) {
    if (c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F) || c == 0x85) return true;
    if (c < 0x80) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_ZS || cat == UTF8PROC_CATEGORY_ZL || cat == UTF8PROC_CATEGORY_ZP;
}

/* BERT's _is_punctuation: the ASCII non-alphanumerics, and Unicode P*. */
static bool tok__wp_is_punct(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126))
        return true;
    if (c < 0x80) return false;
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

/* BERT's _is_control (after \t \n \r are taken as spaces): category C*.
 * Unassigned code points (Cn) count too, as in Python. */
static bool tok__wp_is_control(uint32_t c) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_CN || cat == UTF8PROC_CATEGORY_CC || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_CS || cat == UTF8PROC_CATEGORY_CO;
}

/* Unicode's Cased and Case_Ignorable properties, close enough for the
 * final-sigma rule of Python's str.lower. */
static bool tok__wp_is_cased(uint32_t c) {
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
           utf8proc_tolower((utf8proc_int32_t)c) != (utf8proc_int32_t)c ||
           utf8proc_toupper((utf8proc_int32_t)c) != (utf8proc_int32_t)c;
}

static bool tok__wp_is_case_ignorable(uint32_t c) {
    switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0x5E: case 0x60: case 0xA8: case 0xAD: case 0xAF:
    case 0xB4: case 0xB7: case 0xB8: case 0x387: case 0x55F: case 0x5F4: case 0x2018: case 0x2019:
    case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07: case 0xFF0E:
    case 0xFF1A:
        return true;
    default:
        break;
    }
    utf8proc_category_t cat = utf8proc_category((utf8proc_int32_t)c);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME || cat == UTF8PROC_CATEGORY_CF ||
           cat == UTF8PROC_CATEGORY_LM || cat == UTF8PROC_CATEGORY_SK;
}

/* Capital sigma at a[i] of a[0..n) becomes final sigma when a cased letter
 * precedes it and none follows (skipping case-ignorables both ways). */
static bool tok__wp_final_sigma(const int32_t *a, size_t i, size_t n) {
    size_t j = i;
    while (j > 0 && tok__wp_is_case_ignorable((uint32_t)a[j - 1])) j--;
    if (j == 0 || !tok__wp_is_cased((uint32_t)a[j - 1])) return false;
    j = i + 1;
    while (j < n && tok__wp_is_case_ignorable((uint32_t)a[j])) j++;
    return j == n || !tok__wp_is_cased((uint32_t)a[j]);
}

size_t tok__lower_utf32(const int32_t *a, size_t n, int32_t *b) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t x = a[i];
        if (x == 0x130) { /* Python: "İ".lower() is "i" + U+0307 */
            b[m++] = 'i';
            b[m++] = 0x307;
        } else if (x == 0x3A3) {
            b[m++] = tok__wp_final_sigma(a, i, n) ? 0x3C2 : 0x3C3;
        } else {
            b[m++] = utf8proc_tolower(x);
        }
    }
    return m;
}

/* ---- per-call work buffers -------------------------------------------- */

typedef struct tok__wpwork {
    char *clean;         /* the cleaned fragment (steps 1-2) */
    int32_t *a, *b;      /* code points of a word, two generations */
    size_t a_cap, b_cap;
    char *u8;            /* a word's UTF-8 */
    size_t u8_cap;
    uint32_t *off;       /* [m + 1] byte offset of each code point in u8 */
    size_t off_cap;
    int32_t *ids;        /* pieces of the word being segmented */
    size_t ids_cap;
    char *key;           /* prefix + candidate piece */
    size_t key_cap;
} tok__wpwork;

static void tok__wpwork_free(tok__wpwork *w) {
    free(w->clean);
    free(w->a);
    free(w->b);
    free(w->u8);
    free(w->off);
    free(w->ids);
    free(w->key);
}

/* Grows the array whose pointer is at pp (elements of size sz) to hold n;
 * returns false when out of memory. (The pointer is copied with memcpy, not
 * written through a void **, to keep clear of aliasing rules.) */
static bool tok__wp_grow(void *pp, size_t *cap, size_t n, size_t sz) {
    if (n <= *cap) return true;
    if (n > SIZE_MAX / sz / 2) return false;
    size_t c = n < 64 ? 64 : n + n / 2;
    void *p;
    memcpy(&p, pp, sizeof p);
    void *q = realloc(p, c * sz);
    if (!q) return false;
    memcpy(pp, &q, sizeof q);
    *cap = c;
    return true;
}

/* Decodes UTF-8 s[0..len) (valid) into w->a under utf8proc options (0: just
 * decode; COMPOSE: NFC; DECOMPOSE: NFD). Returns the count or -1 (memory). */
static ptrdiff_t tok__wp_utf32(tok__wpwork *w, const char *s, size_t len, int options) {
    if (!tok__wp_grow(&w->a, &w->a_cap, len + 1, sizeof *w->a)) return -1;
    for (;;) {
        utf8proc_ssize_t n = utf8proc_decompose((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)len,
                                                w->a, (utf8proc_ssize_t)w->a_cap,
                                                (utf8proc_option_t)(options | UTF8PROC_STABLE));
        if (n < 0) return -1; /* cannot happen: s is valid UTF-8 */
        if ((size_t)n <= w->a_cap) {
            if (options & UTF8PROC_COMPOSE)
                n = utf8proc_normalize_utf32(w->a, n, (utf8proc_option_t)(options | UTF8PROC_STABLE));
            return n < 0 ? -1 : n;
        }
        if (!tok__wp_grow(&w->a, &w->a_cap, (size_t)n, sizeof *w->a)) return -1;
    }
}

/* Encodes c[0..n) to UTF-8 in w->u8, with code point offsets in w->off.
 * Returns the byte count or -1. */
static ptrdiff_t tok__wp_utf8(tok__wpwork *w, const int32_t *c, size_t n) {
    if (!tok__wp_grow(&w->u8, &w->u8_cap, 4 * n + 1, 1) ||
        !tok__wp_grow(&w->off, &w->off_cap, n + 1, sizeof *w->off) ||
        !tok__wp_grow(&w->ids, &w->ids_cap, n + 1, sizeof *w->ids))
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        w->off[i] = (uint32_t)k;
        k += tok_utf8_encode((uint32_t)c[i], w->u8 + k);
    }
    w->off[n] = (uint32_t)k;
    return (ptrdiff_t)k;
}

/* ---- WordPiece ------------------------------------------------------------ */

/* Segments one word c[0..n) (no spaces, no punctuation unless alone) and
 * emits its pieces, or unk. */
static int tok__wp_word(const tok *t, tok__wpwork *w, const int32_t *c, size_t n, tok__sink *sink) {
    const struct tok__wp *wp = t->wp;
    if (n == 0) return TOK_OK;
    if (n > wp->max_chars) {
        tok__emit(sink, t->unk);
        return TOK_OK;
    }
    if (tok__wp_utf8(w, c, n) < 0) return TOK_ENOMEM;
    size_t np = 0, start = 0;
    while (start < n) {
        int32_t found = TOK_ID_NONE;
        size_t end = n;
        for (; end > start; end--) {
            size_t bytes = w->off[end] - w->off[start];
            const char *k = w->u8 + w->off[start];
            if (start > 0) {
                if (bytes + wp->prefix_len > wp->max_tok_len) continue;
                if (!tok__wp_grow(&w->key, &w->key_cap, wp->prefix_len + bytes, 1))
                    return TOK_ENOMEM;
                memcpy(w->key, wp->prefix, wp->prefix_len);
                memcpy(w->key + wp->prefix_len, k, bytes);
                k = w->key;
                bytes += wp->prefix_len;
            } else if (bytes > wp->max_tok_len) {
                continue;
            }
            found = tok__map_find(t, k, bytes);
            if (found >= 0) break;
        }
        if (found < 0) {
            tok__emit(sink, t->unk);
            return TOK_OK;
        }
        w->ids[np++] = found;
        start = end;
    }
    for (size_t i = 0; i < np; i++) tok__emit(sink, w->ids[i]);
    return TOK_OK;
}

/* Steps 3-6 of tok.h for one whitespace-delimited word s[0..len). */
static int tok__wp_basic_word(const tok *t, tok__wpwork *w, const char *s, size_t len,
                              tok__sink *sink) {
    const struct tok__wp *wp = t->wp;
    ptrdiff_t n = tok__wp_utf32(w, s, len, wp->nfc ? UTF8PROC_COMPOSE : 0);
    if (n < 0) return TOK_ENOMEM;
    const int32_t *c = w->a;
    if (wp->lower) {
        if (!tok__wp_grow(&w->b, &w->b_cap, 2 * (size_t)n + 1, sizeof *w->b)) return TOK_ENOMEM;
        size_t m = tok__lower_utf32(w->a, (size_t)n, w->b);
        c = w->b;
        n = (ptrdiff_t)m;
    }
    if (wp->strip) { /* NFD, then drop Mn */
        ptrdiff_t bl = tok__wp_utf8(w, c, (size_t)n);
        if (bl < 0) return TOK_ENOMEM;
        ptrdiff_t d = tok__wp_utf32(w, w->u8, (size_t)bl, UTF8PROC_DECOMPOSE);
        if (d < 0) return TOK_ENOMEM;
        size_t m = 0;
        for (size_t i = 0; i < (size_t)d; i++)
            if (utf8proc_category(w->a[i]) != UTF8PROC_CATEGORY_MN) w->a[m++] = w->a[i];
        c = w->a;
        n = (ptrdiff_t)m;
    }
    /* the segmentation below reuses a/b through u8/off only, so c stays put */
    size_t run = 0;
    for (size_t i = 0; i < (size_t)n; i++) {
        uint32_t x = (uint32_t)c[i];
        bool punct = tok__wp_is_punct(x), space = tok__wp_is_space(x);
        if (!punct && !space) continue;
        int rc = tok__wp_word(t, w, c + run, i - run, sink);
        if (rc == TOK_OK && punct) rc = tok__wp_word(t, w, c + i, 1, sink);
        if (rc) return rc;
        run = i + 1;
    }
    return tok__wp_word(t, w, c + run, (size_t)n - run, sink);
}

int tok__wordpiece_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok_err *err) {
    const struct tok__wp *wp = t->wp;
    tok__wpwork w;
    memset(&w, 0, sizeof w);
    int rc = TOK_OK;
    /* Steps 1-2: cleaned UTF-8, whitespace as ' ', CJK ideographs spaced.
     * Each input byte gives at most 3 bytes out (a CJK ideograph: 3 -> 5). */
    if (len > SIZE_MAX / 3 - 8 || !(w.clean = malloc(3 * len + 8))) goto nomem;
    size_t k = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t l = tok_utf8_decode(s + i, len - i, &cp);
        if (l == 0) {
            l = tok_utf8_invalid_len(s + i, len - i);
            if (l == 0) l = 1;
            cp = TOK_UTF8_REPLACEMENT;
        }
        i += l;
        if (cp == '\t' || cp == '\n' || cp == '\r') {
            cp = ' ';
        } else if (wp->clean) {
            if (cp == 0 || cp == TOK_UTF8_REPLACEMENT || tok__wp_is_control(cp)) continue;
        }
        if (tok__wp_is_space(cp)) {
            w.clean[k++] = ' ';
        } else if (wp->cjk && tok__wp_is_cjk(cp)) {
            w.clean[k++] = ' ';
            k += tok_utf8_encode(cp, w.clean + k);
            w.clean[k++] = ' ';
        } else {
            k += tok_utf8_encode(cp, w.clean + k);
        }
    }
    /* Steps 3-6 word by word. */
    for (size_t i = 0; i < k;) {
        while (i < k && w.clean[i] == ' ') i++;
        size_t j = i;
        while (j < k && w.clean[j] != ' ') j++;
        if (j > i && (rc = tok__wp_basic_word(t, &w, w.clean + i, j - i, sink))) {
            if (rc == TOK_ENOMEM) goto nomem;
            goto done;
        }
        i = j;
    }
done:
    tok__wpwork_free(&w);
    return rc;
nomem:
    tok__wpwork_free(&w);
    return tok__err(err, TOK_ENOMEM, "tok_encode: out of memory for %zu bytes of text", len);
}

/* ---- creation ----------------------------------------------------------- */

int tok_create_wordpiece(tok **out, const char *const *tokens, size_t n_tokens,
                         const int32_t *types, const tok_options *opt,
                         const tok_wordpiece_options *wpo, tok_err *err) {
    if (out) *out = NULL;
    if (!out) return tok__err(err, TOK_EINVAL, "tok_create_wordpiece: NULL argument");
    tok_options o;
    if (!opt) {
        tok_options_init(&o, TOK_KIND_WORDPIECE);
        opt = &o;
    }
    tok_wordpiece_options wdef;
    if (!wpo) {
        tok_wordpiece_options_init(&wdef);
        wpo = &wdef;
    }
    const char *prefix = wpo->prefix ? wpo->prefix : "";
    if (strlen(prefix) > 64)
        return tok__err(err, TOK_EINVAL, "WordPiece continuation prefix \"%.64s...\" is too long", prefix);
    if (wpo->max_input_chars_per_word == 0)
        return tok__err(err, TOK_EINVAL, "WordPiece max_input_chars_per_word must be at least 1");
    tok *t;
    int rc = tok__create_base(&t, TOK_KIND_WORDPIECE, tokens, n_tokens, opt, err);
    if (rc) return rc;
    /* AUTO ids by the option's names (tok__create_base used the defaults) */
    const char *names[4] = {wpo->cls_token, wpo->sep_token, wpo->unk_token, wpo->pad_token};
    int32_t want[4] = {opt->bos_id, opt->eos_id, opt->unk_id, opt->pad_id};
    int32_t *got[4] = {&t->bos, &t->eos, &t->unk, &t->pad};
    for (int i = 0; i < 4; i++)
        if (want[i] == TOK_ID_AUTO && names[i]) *got[i] = tok__map_find(t, names[i], strlen(names[i]));
    if (t->unk < 0) {
        rc = tok__err(err, TOK_EINVAL, "WordPiece vocabulary of %zu tokens has no unknown token "
                                       "(\"%s\" or unk_id)", t->n, wpo->unk_token ? wpo->unk_token : "[UNK]");
        goto fail;
    }
    if (wpo->mask_id == TOK_ID_AUTO) {
        const char *m = wpo->mask_token ? wpo->mask_token : "[MASK]";
        t->mask = tok__map_find(t, m, strlen(m));
    } else if (wpo->mask_id == TOK_ID_NONE) {
        t->mask = TOK_ID_NONE;
    } else if (wpo->mask_id < 0 || (size_t)wpo->mask_id >= t->n) {
        rc = tok__err(err, TOK_EINVAL, "tokenizer option mask_id: id %ld is out of range (vocabulary has %zu tokens)",
                      (long)wpo->mask_id, t->n);
        goto fail;
    } else {
        t->mask = wpo->mask_id;
    }
    struct tok__wp *wp = calloc(1, sizeof *wp);
    if (!wp || !(wp->prefix = strdup(prefix))) {
        free(wp);
        rc = tok__err(err, TOK_ENOMEM, "tokenizer: out of memory");
        goto fail;
    }
    t->wp = wp;
    wp->prefix_len = strlen(prefix);
    wp->clean = wpo->clean_text;
    wp->cjk = wpo->tokenize_chinese_chars;
    wp->nfc = wpo->nfc;
    wp->lower = wpo->lowercase;
    wp->strip = wpo->strip_accents < 0 ? wpo->lowercase : wpo->strip_accents > 0;
    wp->max_chars = wpo->max_input_chars_per_word;

    /* Types: given, or CONTROL for the special ids; unk is UNKNOWN. */
    if (types) {
        if ((rc = tok__set_types(t, types, err))) goto fail;
    } else {
        int32_t sp[4] = {t->bos, t->eos, t->pad, t->mask};
        for (int i = 0; i < 4; i++)
            if (sp[i] >= 0) t->type[sp[i]] = TOK_TYPE_CONTROL;
    }
    t->type[t->unk] = TOK_TYPE_UNKNOWN;

    /* Pieces: " word" for word-initial and special tokens, "x" for "##x". */
    for (size_t i = 0; i < t->n; i++) {
        uint32_t l = t->text_len[i];
        if (l > wp->max_tok_len) wp->max_tok_len = l;
        bool special = t->type[i] == TOK_TYPE_CONTROL || t->type[i] == TOK_TYPE_UNKNOWN;
        if (!special && wp->prefix_len > 0 && l >= wp->prefix_len &&
            memcmp(t->text[i], wp->prefix, wp->prefix_len) == 0) {
            t->piece[i] = t->text[i] + wp->prefix_len;
            t->piece_len[i] = l - (uint32_t)wp->prefix_len;
            continue;
        }
        char *p = tok__piece_space(t, (size_t)l + 1);
        if (!p) {
            rc = tok__err(err, TOK_ENOMEM, "tokenizer: arena exhausted");
            goto fail;
        }
        p[0] = ' ';
        memcpy(p + 1, t->text[i], l);
        t->piece[i] = p;
        t->piece_len[i] = l + 1;
    }
    if ((rc = tok__finish(t, err))) goto fail;
    *out = t;
    return TOK_OK;
fail:
    tok_free(t);
    return rc;
}

int tok_create_wordpiece_from_file(tok **out, const char *path, const tok_options *opt,
                                   const tok_wordpiece_options *wp, tok_err *err) {
    if (out) *out = NULL;
    if (!out || !path) return tok__err(err, TOK_EINVAL, "tok_create_wordpiece_from_file: NULL argument");
    FILE *f = fopen(path, "rb");
    if (!f) return tok__err(err, TOK_EIO, "%s: %s", path, strerror(errno));
    char *buf = NULL;
    const char **tokens = NULL;
    size_t len = 0, cap = 0;
    int rc;
    for (;;) {
        if (!tok__wp_grow(&buf, &cap, len + 65536 + 1, 1)) goto nomem;
        size_t r = fread(buf + len, 1, cap - len - 1, f);
        len += r;
        if (r == 0) break;
        if (len > (size_t)1 << 30) {
            rc = tok__err(err, TOK_EFORMAT, "%s: larger than 1 GiB", path);
            goto out;
        }
    }
    if (ferror(f)) {
        rc = tok__err(err, TOK_EIO, "%s: read error", path);
        goto out;
    }
    buf[len] = '\0';
    if (memchr(buf, '\0', len)) {
        rc = tok__err(err, TOK_EFORMAT, "%s: a NUL byte in a vocabulary file", path);
        goto out;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += buf[i] == '\n';
    if (len > 0 && buf[len - 1] != '\n') n++; /* a last line without "\n" */
    if (n == 0) {
        rc = tok__err(err, TOK_EFORMAT, "%s: empty vocabulary", path);
        goto out;
    }
    if (!(tokens = malloc(n * sizeof *tokens))) goto nomem;
    size_t k = 0;
    for (char *p = buf; k < n;) {
        char *nl = strchr(p, '\n');
        if (nl) {
            *nl = '\0';
            if (nl > p && nl[-1] == '\r') nl[-1] = '\0';
        }
        tokens[k++] = p;
        if (!nl) break;
        p = nl + 1;
    }
    rc = tok_create_wordpiece(out, tokens, k, NULL, opt, wp, err);
    if (rc && err) { /* name the file */
        char m[sizeof err->msg];
        snprintf(m, sizeof m, "%s", err->msg);
        tok__err(err, rc, "%s: %s", path, m);
    }
    goto out;
nomem:
    rc = tok__err(err, TOK_ENOMEM, "%s: out of memory", path);
out:
    free(tokens);
    free(buf);
    fclose(f);
    return rc;
}
