/* test_stop_match.c - stop strings across piece boundaries: hand-picked
 * splits and overlaps, then a differential test against a naive matcher over
 * random texts, stops and piece splits. */
#include "tu_util.h"

#include "stop_match.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Feeds the pieces (NULL-terminated list) and returns everything emitted
 * (flushed at the end when no stop matched); *matched_at is the piece index
 * whose feed reported the match, or -1. Checks the stream invariants on the
 * way: emitted + held == text so far. Caller frees. */
static char *run_pieces(const char *const *stops, size_t n_stops, const char *const *pieces,
                        int *matched_at) {
    stop_matcher m;
    eng_err err = {0};
    assert_int_equal(stop_matcher_init(&m, stops, n_stops, &err), 0);
    char *all = calloc(1, 4096);
    size_t all_len = 0, text_len = 0;
    char text[4096];
    *matched_at = -1;
    for (int i = 0; pieces[i]; i++) {
        size_t len = strlen(pieces[i]);
        char out[STOP_MAX_LEN + 512];
        size_t out_len = sizeof out;
        bool matched = true;
        assert_int_equal(stop_matcher_feed(&m, pieces[i], len, out, &out_len, &matched), 0);
        memcpy(all + all_len, out, out_len);
        all_len += out_len;
        if (*matched_at < 0) {
            memcpy(text + text_len, pieces[i], len);
            text_len += len;
        }
        if (matched && *matched_at < 0) *matched_at = i;
        if (*matched_at < 0) {
            assert_false(matched);
            assert_int_equal(all_len + stop_matcher_held(&m), text_len);
            assert_memory_equal(all, text, all_len);
        } else {
            assert_true(matched);
        }
    }
    char out[STOP_MAX_LEN];
    size_t out_len = sizeof out;
    assert_int_equal(stop_matcher_flush(&m, out, &out_len), 0);
    if (*matched_at >= 0) assert_int_equal(out_len, 0);
    memcpy(all + all_len, out, out_len);
    all_len += out_len;
    all[all_len] = '\0';
    stop_matcher_free(&m);
    return all;
}

static void expect_run(const char *const *stops, size_t n_stops, const char *const *pieces, const char *want,
                       int want_matched_at) {
    int at;
    char *got = run_pieces(stops, n_stops, pieces, &at);
    if (strcmp(got, want) != 0 || at != want_matched_at)
        fprintf(stderr, "got [%s] at %d, want [%s] at %d\n", got, at, want, want_matched_at);
    assert_string_equal(got, want);
    assert_int_equal(at, want_matched_at);
    free(got);
}

/* One feed, checking exactly what is emitted now and what is held. */
static void feed_expect(stop_matcher *m, const char *piece, const char *want_out, size_t want_held,
                        bool want_matched) {
    char out[STOP_MAX_LEN + 64];
    size_t out_len = sizeof out;
    bool matched = !want_matched;
    assert_int_equal(stop_matcher_feed(m, piece, strlen(piece), out, &out_len, &matched), 0);
    assert_int_equal(out_len, strlen(want_out));
    assert_memory_equal(out, want_out, out_len);
    assert_int_equal(stop_matcher_held(m), want_held);
    assert_int_equal(matched, want_matched);
}

static void test_split_two_three_many(void **state) {
    (void)state;
    const char *stop[] = {"</end>"};
    expect_run(stop, 1, (const char *[]){"Hello </e", "nd> tail", NULL}, "Hello ", 1);
    expect_run(stop, 1, (const char *[]){"Hello <", "/en", "d> tail", NULL}, "Hello ", 2);
    expect_run(stop, 1, (const char *[]){"Hi", "<", "/", "e", "n", "d", ">", "never", NULL}, "Hi", 6);
    expect_run(stop, 1, (const char *[]){"a</end>", NULL}, "a", 0);

    /* what is emitted and held at each step */
    stop_matcher m;
    assert_int_equal(stop_matcher_init(&m, stop, 1, NULL), 0);
    feed_expect(&m, "Hello <", "Hello ", 1, false);
    feed_expect(&m, "/e", "", 3, false);
    feed_expect(&m, "nd", "", 5, false);
    feed_expect(&m, ">!", "", 0, true);
    feed_expect(&m, "more", "", 0, true);  /* done: nothing more comes out */
    stop_matcher_free(&m);
}

static void test_overlapping_candidates(void **state) {
    (void)state;
    /* "ab" completes before "abc" can */
    const char *ab_abc[] = {"abc", "ab"};
    expect_run(ab_abc, 2, (const char *[]){"xa", "bc", NULL}, "x", 1);
    /* a stop that is a prefix of another: the shorter completes first */
    const char *pre[] = {"STOP here", "STOP"};
    expect_run(pre, 2, (const char *[]){"go ST", "OP here", NULL}, "go ", 1);
    /* two ending at the same byte: the longer one (earlier start) wins */
    const char *suffix[] = {"bc", "abc"};
    expect_run(suffix, 2, (const char *[]){"xab", "c", NULL}, "x", 1);
    /* "bcd" ends before "abcde" would */
    const char *inner[] = {"abcde", "bcd"};
    expect_run(inner, 2, (const char *[]){"abcdef", NULL}, "a", 0);
    /* repeated partial matches: "aab" in "aaab" */
    const char *aab[] = {"aab"};
    expect_run(aab, 1, (const char *[]){"a", "a", "a", "b", "z", NULL}, "a", 3);
    stop_matcher m;
    assert_int_equal(stop_matcher_init(&m, aab, 1, NULL), 0);
    feed_expect(&m, "a", "", 1, false);
    feed_expect(&m, "a", "", 2, false);
    feed_expect(&m, "a", "a", 2, false);  /* the oldest 'a' can no longer start "aab" */
    feed_expect(&m, "b", "", 0, true);
    stop_matcher_free(&m);
    /* a partial match that fails releases everything it held */
    assert_int_equal(stop_matcher_init(&m, aab, 1, NULL), 0);
    feed_expect(&m, "xaa", "x", 2, false);
    feed_expect(&m, "c", "aac", 0, false);
    stop_matcher_free(&m);
    /* several stops, a held tail serving two of them */
    const char *two[] = {"\nUser:", "\n\n"};
    expect_run(two, 2, (const char *[]){"ok\n", "Us", "er:", NULL}, "ok", 2);
    expect_run(two, 2, (const char *[]){"ok\n", "Use", "d", NULL}, "ok\nUsed", -1);
    expect_run(two, 2, (const char *[]){"ok\n", "\n", NULL}, "ok", 1);
}

static void test_match_at_start_and_empty_pieces(void **state) {
    (void)state;
    const char *stop[] = {"###"};
    expect_run(stop, 1, (const char *[]){"###", "x", NULL}, "", 0);
    expect_run(stop, 1, (const char *[]){"#", "", "##", NULL}, "", 2);
    expect_run(stop, 1, (const char *[]){"", "", NULL}, "", -1);
    stop_matcher m;
    assert_int_equal(stop_matcher_init(&m, stop, 1, NULL), 0);
    feed_expect(&m, "", "", 0, false);
    char out[4];
    size_t out_len = sizeof out;
    bool matched;
    assert_int_equal(stop_matcher_feed(&m, NULL, 0, out, &out_len, &matched), 0);
    assert_int_equal(out_len, 0);
    stop_matcher_free(&m);
}

/* Held text comes back on flush, and only text that could begin a stop is
 * ever held. */
static void test_flush_and_no_false_holdback(void **state) {
    (void)state;
    const char *stop[] = {"<|im_end|>"};
    expect_run(stop, 1, (const char *[]){"The answer is 4.<|im", NULL}, "The answer is 4.<|im", -1);
    stop_matcher m;
    assert_int_equal(stop_matcher_init(&m, stop, 1, NULL), 0);
    feed_expect(&m, "no angle brackets here", "no angle brackets here", 0, false);
    feed_expect(&m, "a<b", "a<b", 0, false);  /* '<' then 'b' cannot begin "<|im_end|>" */
    feed_expect(&m, "x<|i", "x", 3, false);
    char out[STOP_MAX_LEN];
    size_t out_len = 2;
    assert_int_equal(stop_matcher_flush(&m, out, &out_len), -ENOSPC);  /* too small: nothing lost */
    assert_int_equal(stop_matcher_held(&m), 3);
    out_len = sizeof out;
    assert_int_equal(stop_matcher_flush(&m, out, &out_len), 0);
    assert_int_equal(out_len, 3);
    assert_memory_equal(out, "<|i", 3);
    assert_int_equal(stop_matcher_held(&m), 0);
    out_len = sizeof out;
    assert_int_equal(stop_matcher_flush(&m, out, &out_len), 0);
    assert_int_equal(out_len, 0);
    stop_matcher_free(&m);

    /* no stops: everything passes straight through */
    assert_int_equal(stop_matcher_init(&m, NULL, 0, NULL), 0);
    feed_expect(&m, "anything at all", "anything at all", 0, false);
    stop_matcher_free(&m);
}

/* Bytes, not characters: NUL and UTF-8 in pieces and stops. */
static void test_bytes(void **state) {
    (void)state;
    const char *stop[] = {"\xe2\x80\x94" "END"};  /* U+2014 EM DASH + "END" */
    expect_run(stop, 1, (const char *[]){"caf\xc3\xa9 \xe2\x80\x94", "EN", "D", NULL}, "caf\xc3\xa9 ", 2);
    stop_matcher m;
    const char *s[] = {"b"};
    assert_int_equal(stop_matcher_init(&m, s, 1, NULL), 0);
    char out[16];
    size_t out_len = sizeof out;
    bool matched;
    assert_int_equal(stop_matcher_feed(&m, "a\0cb", 4, out, &out_len, &matched), 0);
    assert_true(matched);
    assert_int_equal(out_len, 3);
    assert_memory_equal(out, "a\0c", 3);
    stop_matcher_free(&m);
}

static void test_init_and_feed_errors(void **state) {
    (void)state;
    stop_matcher m;
    eng_err err = {0};
    const char *five[] = {"a", "b", "c", "d", "e"};
    assert_int_equal(stop_matcher_init(&m, five, 5, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "at most 4"));
    assert_int_equal(stop_matcher_init(&m, five, 4, &err), 0);
    stop_matcher_free(&m);
    const char *empty[] = {"x", ""};
    assert_int_equal(stop_matcher_init(&m, empty, 2, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "stop[1]: empty string"));
    assert_int_equal(m.n, 0);  /* cleared */
    const char *null[] = {NULL};
    assert_int_equal(stop_matcher_init(&m, null, 1, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "stop[0]: NULL"));
    assert_int_equal(stop_matcher_init(&m, NULL, 2, &err), -EINVAL);
    char longest[STOP_MAX_LEN + 2];
    memset(longest, 'z', sizeof longest);
    longest[STOP_MAX_LEN + 1] = '\0';
    const char *too_long[] = {"ok", longest};
    assert_int_equal(stop_matcher_init(&m, too_long, 2, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "stop[1]: 257 bytes"));
    longest[STOP_MAX_LEN] = '\0';
    assert_int_equal(stop_matcher_init(&m, too_long, 2, &err), 0);
    /* the longest stop, held to its last byte, then released */
    char out[2 * STOP_MAX_LEN];
    size_t out_len = sizeof out;
    bool matched;
    assert_int_equal(stop_matcher_feed(&m, longest, STOP_MAX_LEN - 1, out, &out_len, &matched), 0);
    assert_int_equal(out_len, 0);
    assert_int_equal(stop_matcher_held(&m), STOP_MAX_LEN - 1);
    out_len = STOP_MAX_LEN - 1;  /* held + 1 byte will not fit */
    assert_int_equal(stop_matcher_feed(&m, "y", 1, out, &out_len, &matched), -ENOSPC);
    assert_int_equal(stop_matcher_held(&m), STOP_MAX_LEN - 1);
    out_len = STOP_MAX_LEN;
    assert_int_equal(stop_matcher_feed(&m, "y", 1, out, &out_len, &matched), 0);
    assert_false(matched);
    assert_int_equal(out_len, STOP_MAX_LEN);
    assert_int_equal(stop_matcher_held(&m), 0);
    assert_int_equal(stop_matcher_feed(&m, NULL, 1, out, &out_len, &matched), -EINVAL);
    assert_int_equal(stop_matcher_feed(&m, "a", 1, NULL, &out_len, &matched), -EINVAL);
    assert_int_equal(stop_matcher_feed(&m, "a", 1, out, NULL, &matched), -EINVAL);
    assert_int_equal(stop_matcher_feed(&m, "a", 1, out, &out_len, NULL), -EINVAL);
    assert_int_equal(stop_matcher_flush(&m, NULL, &out_len), -EINVAL);
    stop_matcher_free(&m);
    stop_matcher_free(NULL);
    assert_int_equal(stop_matcher_init(NULL, five, 1, &err), -EINVAL);
}

/* ---- differential test ---------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* The naive matcher over the whole text: the first stop to complete
 * (smallest end; of those, the longest); returns the emitted length and
 * whether one matched. */
static size_t naive(const char *const *stops, size_t n, const char *t, size_t len, bool *matched) {
    for (size_t end = 1; end <= len; end++) {
        size_t best = 0;
        for (size_t s = 0; s < n; s++) {
            size_t L = strlen(stops[s]);
            if (L <= end && L > best && memcmp(t + end - L, stops[s], L) == 0) best = L;
        }
        if (best) {
            *matched = true;
            return end - best;
        }
    }
    *matched = false;
    return len;
}

/* The least text a streaming matcher must hold after seeing t[0..len) with
 * no match: the longest tail that is a proper prefix of some stop. */
static size_t naive_hold(const char *const *stops, size_t n, const char *t, size_t len) {
    for (size_t k = 0; k < len; k++)
        for (size_t s = 0; s < n; s++) {
            size_t L = strlen(stops[s]);
            if (len - k < L && memcmp(t + k, stops[s], len - k) == 0) return len - k;
        }
    return 0;
}

static void test_differential_random(void **state) {
    (void)state;
    const char alpha[] = "aab\xc3";  /* few symbols: many partial matches */
    for (int iter = 0; iter < 20000; iter++) {
        size_t n_stops = rnd(STOP_MAX_N + 1);
        char stop_buf[STOP_MAX_N][8];
        const char *stops[STOP_MAX_N];
        for (size_t s = 0; s < n_stops; s++) {
            size_t L = 1 + rnd(iter % 3 == 0 ? 7 : 4);
            for (size_t j = 0; j < L; j++) stop_buf[s][j] = alpha[rnd(4)];
            stop_buf[s][L] = '\0';
            stops[s] = stop_buf[s];
        }
        char text[80];
        size_t len = rnd(sizeof text);
        for (size_t j = 0; j < len; j++) text[j] = alpha[rnd(4)];

        bool want_matched;
        size_t want_len = naive(stops, n_stops, text, len, &want_matched);

        stop_matcher m;
        assert_int_equal(stop_matcher_init(&m, stops, n_stops, NULL), 0);
        char got[sizeof text + STOP_MAX_LEN];
        size_t got_len = 0, pos = 0;
        bool matched = false;
        while (pos < len && !matched) {
            size_t piece = 1 + rnd(rnd(4) == 0 ? 12 : 3);
            if (piece > len - pos) piece = len - pos;
            if (rnd(10) == 0) piece = 0;
            size_t out_len = sizeof got - got_len;
            assert_int_equal(stop_matcher_feed(&m, text + pos, piece, got + got_len, &out_len, &matched), 0);
            got_len += out_len;
            pos += piece;
            if (!matched) {  /* everything not held is out, and held is minimal */
                assert_int_equal(got_len + stop_matcher_held(&m), pos);
                assert_int_equal(stop_matcher_held(&m), naive_hold(stops, n_stops, text, pos));
            }
        }
        size_t out_len = sizeof got - got_len;
        assert_int_equal(stop_matcher_flush(&m, got + got_len, &out_len), 0);
        got_len += out_len;
        stop_matcher_free(&m);
        if (matched != want_matched || got_len != want_len)
            fprintf(stderr, "iter %d: matched %d/%d len %zu/%zu\n", iter, matched, want_matched, got_len, want_len);
        assert_int_equal(matched, want_matched);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, text, got_len);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_two_three_many),
        cmocka_unit_test(test_overlapping_candidates),
        cmocka_unit_test(test_match_at_start_and_empty_pieces),
        cmocka_unit_test(test_flush_and_no_false_holdback),
        cmocka_unit_test(test_bytes),
        cmocka_unit_test(test_init_and_feed_errors),
        cmocka_unit_test(test_differential_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
