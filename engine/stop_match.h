/* stop_match.h - OpenAI `stop` strings over a stream of decoded text pieces.
 *
 * The scheduler feeds each generated sequence's decoded pieces, in order, to
 * its matcher. The matcher returns the bytes that are safe to emit now and
 * holds back any tail that could still be the start of a stop string, so a
 * stop string never reaches a stream even when it arrives split over several
 * pieces. When a stop string completes, the text before it is returned and
 * `matched` is set; the stop string itself is dropped (as OpenAI does).
 *
 * Which stop wins: the one that completes first in the concatenated text
 * (smallest end offset), as a byte-by-byte check would see it; of two ending
 * at the same byte, the longer one (its text starts earlier). The result is
 * therefore the same however the text is split into pieces.
 *
 * Bytes: matching is on bytes, with no UTF-8 knowledge. When the pieces and
 * the stop strings are valid UTF-8, every split point the matcher makes (end
 * of emitted text, start of a held tail or of a match) is a character
 * boundary, because it is where a copy of a stop string's first byte begins.
 *
 * Memory: a matcher is a fixed-size value (copies of the stops and the held
 * tail, about 1.3 KiB) that never allocates; stop_matcher_free only clears it.
 *
 * Threads: a matcher belongs to one sequence; one thread at a time. */
#ifndef STOP_MATCH_H
#define STOP_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_err.h"

#define STOP_MAX_N 4      /* OpenAI's limit on `stop` */
#define STOP_MAX_LEN 256  /* bytes per stop string */

/* Fields are private; the struct is public so it can be embedded. */
typedef struct stop_matcher {
    char stops[STOP_MAX_N][STOP_MAX_LEN];  /* not NUL-terminated */
    size_t lens[STOP_MAX_N];               /* bytes, 1..STOP_MAX_LEN */
    size_t n;                              /* stop strings in use, 0..STOP_MAX_N */
    char held[STOP_MAX_LEN];               /* tail that may begin a stop */
    size_t held_len;                       /* < the longest stop's length */
    bool matched;                          /* a stop completed: the matcher is done */
} stop_matcher;

/* Copies stops[0..n) (NUL-terminated; borrowed). n == 0 is allowed: the
 * matcher then passes every byte through. Returns 0, or -EINVAL naming the
 * fault: n > STOP_MAX_N, stops NULL, "stop[2]: empty string", a NULL string,
 * a string over STOP_MAX_LEN bytes. On failure *m is left cleared. */
int stop_matcher_init(stop_matcher *m, const char *const *stops, size_t n, eng_err *err);

/* Bytes currently held back; the text of a feed can be up to this plus the
 * piece's length. */
size_t stop_matcher_held(const stop_matcher *m);

/* Feeds piece[0..len) (any bytes, NUL included; borrowed). On entry *out_len
 * is the capacity of `out`, which must be at least stop_matcher_held(m) + len
 * (STOP_MAX_LEN - 1 + len always suffices); on return it is the number of
 * bytes written to `out` (not NUL-terminated), the text safe to emit now.
 * *matched is set when a stop string completed: `out` then holds the text
 * before it, the stop string and anything after it are dropped, and later
 * feeds return nothing with *matched set again.
 * Returns 0; -EINVAL for NULL arguments (piece may be NULL when len is 0);
 * -ENOSPC when out is too small (nothing is consumed). */
int stop_matcher_feed(stop_matcher *m, const char *piece, size_t len, char *out, size_t *out_len,
                      bool *matched);

/* Generation ended for another reason (length, EOS, cancel): writes the held
 * bytes to out (capacity *out_len on entry, STOP_MAX_LEN always suffices;
 * written length on return) and empties the matcher. After a match there is
 * nothing to flush. Returns 0, -EINVAL, or -ENOSPC (nothing written). */
int stop_matcher_flush(stop_matcher *m, char *out, size_t *out_len);

/* Clears the matcher; accepts NULL. */
void stop_matcher_free(stop_matcher *m);

#endif
