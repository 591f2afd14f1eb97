/* tok_utf8.h - UTF-8 helpers for the tokenizers and a streaming
 * detokenizer that never emits half a character.
 *
 * Validity follows the Unicode Standard, ch. 3, Table 3-7 (RFC 3629): no
 * overlong forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 * Invalid input is replaced by U+FFFD per "maximal subpart" (Unicode ch. 3,
 * "U+FFFD Substitution of Maximal Subparts", the practice WHATWG's decoder
 * follows): each maximal prefix of a valid sequence that cannot be
 * completed becomes one U+FFFD.
 *
 * Threads: every function here is pure or works on a caller-owned object; any
 * thread may call them, one thread per tok_stream at a time.
 */
#ifndef TOK_UTF8_H
#define TOK_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOK_UTF8_REPLACEMENT 0xFFFDu
/* The three bytes of U+FFFD. */
#define TOK_UTF8_REPLACEMENT_STR "\xEF\xBF\xBD"

/* Decodes the character at s[0..len). Returns its length (1..4) and stores
 * the code point in *cp when s starts with a complete valid sequence.
 * Otherwise returns 0 and stores U+FFFD in *cp; then tok_utf8_invalid_len
 * tells how many bytes one U+FFFD stands for. len 0 returns 0. */
size_t tok_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* For s[0..len) that does not start with a valid sequence (len > 0): the
 * length (1..3) of its maximal subpart, i.e. the bytes one U+FFFD replaces.
 * Returns 0 when s starts with a valid character or len is 0. */
size_t tok_utf8_invalid_len(const char *s, size_t len);

/* When s[0..len) (len 1..3) is an incomplete but so far valid prefix of a
 * sequence (more bytes could complete it), returns true. */
bool tok_utf8_is_incomplete(const char *s, size_t len);

/* Encodes cp into out (room for 4 bytes). Returns the length 1..4, or 0 for
 * a surrogate or a value above U+10FFFF (nothing written). */
size_t tok_utf8_encode(uint32_t cp, char out[4]);

/* Returns the length of the longest valid UTF-8 prefix of s[0..len). */
size_t tok_utf8_valid_prefix(const char *s, size_t len);

/* True when all of s[0..len) is valid UTF-8. */
bool tok_utf8_is_valid(const char *s, size_t len);

/* Length of the sequence a lead byte announces (1..4), or 0 for a byte that
 * cannot start a sequence (continuation bytes, 0xC0, 0xC1, 0xF5..0xFF). */
size_t tok_utf8_lead_len(unsigned char b);

/* ---- streaming detokenizer ------------------------------------------------
 * Token pieces arrive as byte strings that may split a character (a byte
 * fallback token carries one byte of a 4-byte emoji; a GPT-2 token may end
 * in the middle of a CJK character). tok_stream holds back an incomplete
 * trailing sequence until the bytes that complete it arrive, so everything
 * it writes is valid UTF-8, and it replaces invalid bytes with U+FFFD.
 *
 *     tok_stream st; tok_stream_init(&st);
 *     for each token: n = tok_stream_feed(&st, piece, plen, out, cap); send(out, n)
 *     at the end:     n = tok_stream_flush(&st, out, cap);             send(out, n)
 */
typedef struct tok_stream {
    char pend[4];    /* bytes of an incomplete character, held back */
    uint8_t n_pend;  /* 0..3 */
} tok_stream;

/* Output room that always suffices for one tok_stream_feed of len bytes
 * (each held or new byte can become a 3-byte U+FFFD). */
#define TOK_STREAM_OUT_MAX(len) (3u * ((size_t)(len) + 4u))

/* Starts an empty stream. There is nothing to free. */
void tok_stream_init(tok_stream *st);

/* Appends in[0..len) to the stream and writes every complete character
 * (invalid bytes as U+FFFD) to out. Returns the number of bytes written, or
 * -1 when cap < TOK_STREAM_OUT_MAX(len) (then nothing is consumed). An
 * incomplete but valid tail of at most 3 bytes is held for the next call. */
long tok_stream_feed(tok_stream *st, const char *in, size_t len, char *out, size_t cap);

/* Ends the stream: held bytes (an incomplete character) become one U+FFFD.
 * Needs cap >= 3; returns the bytes written (0 or 3), or -1 when cap < 3.
 * The stream is empty afterwards and may be reused. */
long tok_stream_flush(tok_stream *st, char *out, size_t cap);

/* Number of bytes currently held back (0..3). */
size_t tok_stream_pending(const tok_stream *st);

#endif
