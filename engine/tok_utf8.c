/* tok_utf8.c - UTF-8 validation, decoding with maximal-subpart replacement,
 * and the streaming detokenizer (see tok_utf8.h for the contracts). */
#include "tok_utf8.h"

#include <string.h>

/* Range of the second byte allowed after lead byte b (Unicode Table 3-7);
 * the third and fourth bytes are always 0x80..0xBF. */
static void tok__utf8_second_range(unsigned char b, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b == 0xE0) *lo = 0xA0;
    else if (b == 0xED) *hi = 0x9F;
    else if (b == 0xF0) *lo = 0x90;
    else if (b == 0xF4) *hi = 0x8F;
}

size_t tok_utf8_lead_len(unsigned char b) {
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0;
}

/* Number of leading bytes of s[0..len) that are a valid (possibly
 * incomplete) prefix of one sequence; *need gets the full length the lead
 * byte announces (0 for an invalid lead). */
static size_t tok__utf8_prefix(const unsigned char *s, size_t len, size_t *need) {
    if (len == 0) {
        *need = 0;
        return 0;
    }
    size_t n = tok_utf8_lead_len(s[0]);
    *need = n;
    if (n == 0) return 0;
    size_t ok = 1;
    for (size_t k = 1; k < n && k < len; k++) {
        unsigned char lo = 0x80, hi = 0xBF;
        if (k == 1) tok__utf8_second_range(s[0], &lo, &hi);
        if (s[k] < lo || s[k] > hi) break;
        ok++;
    }
    return ok;
}

size_t tok_utf8_decode(const char *str, size_t len, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    size_t need;
    size_t ok = tok__utf8_prefix(s, len, &need);
    if (need == 0 || ok < need) {
        if (cp) *cp = TOK_UTF8_REPLACEMENT;
        return 0;
    }
    uint32_t c;
    switch (need) {
    case 1: c = s[0]; break;
    case 2: c = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F); break;
    case 3: c = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F); break;
    default:
        c = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
            ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
        break;
    }
    if (cp) *cp = c;
    return need;
}

size_t tok_utf8_invalid_len(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t need;
    size_t ok = tok__utf8_prefix(s, len, &need);
    if (len == 0 || (need != 0 && ok == need)) return 0;
    return ok == 0 ? 1 : ok;
}

bool tok_utf8_is_incomplete(const char *str, size_t len) {
    size_t need;
    size_t ok = tok__utf8_prefix((const unsigned char *)str, len, &need);
    return len > 0 && need > len && ok == len;
}

size_t tok_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp > 0x10FFFF) return 0;
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t tok_utf8_valid_prefix(const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        if ((unsigned char)s[i] < 0x80) { /* ASCII fast path */
            i++;
            continue;
        }
        size_t n = tok_utf8_decode(s + i, len - i, NULL);
        if (n == 0) break;
        i += n;
    }
    return i;
}

bool tok_utf8_is_valid(const char *s, size_t len) { return tok_utf8_valid_prefix(s, len) == len; }

/* ---- streaming detokenizer ---------------------------------------------- */

void tok_stream_init(tok_stream *st) { memset(st, 0, sizeof *st); }

size_t tok_stream_pending(const tok_stream *st) { return st->n_pend; }

long tok_stream_feed(tok_stream *st, const char *in, size_t len, char *out, size_t cap) {
    if (cap < TOK_STREAM_OUT_MAX(len)) return -1;
    if (len > 0 && !in) return -1;
    size_t np = st->n_pend, total = np + len, i = 0, w = 0;
    while (i < total) {
        /* The window starting at i: straight from `in` once past the held
         * bytes, else a copy joining the held bytes and the first new ones. */
        const char *p;
        size_t avail;
        char win[8];
        if (i >= np) {
            p = in + (i - np);
            avail = total - i;
        } else {
            size_t k = 0;
            for (size_t j = i; j < total && k < 4; j++, k++) win[k] = j < np ? st->pend[j] : in[j - np];
            p = win;
            avail = k;
        }
        size_t n = tok_utf8_decode(p, avail, NULL);
        if (n > 0) {
            memcpy(out + w, p, n);
            w += n;
            i += n;
            continue;
        }
        if (tok_utf8_is_incomplete(p, avail)) { /* only at the very end */
            char keep[4];
            memcpy(keep, p, avail);
            memcpy(st->pend, keep, avail);
            st->n_pend = (uint8_t)avail;
            return (long)w;
        }
        memcpy(out + w, TOK_UTF8_REPLACEMENT_STR, 3);
        w += 3;
        i += tok_utf8_invalid_len(p, avail);
    }
    st->n_pend = 0;
    return (long)w;
}

long tok_stream_flush(tok_stream *st, char *out, size_t cap) {
    if (cap < 3) return -1;
    if (st->n_pend == 0) return 0;
    st->n_pend = 0;
    memcpy(out, TOK_UTF8_REPLACEMENT_STR, 3);
    return 3;
}
