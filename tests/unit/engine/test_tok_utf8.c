/* test_tok_utf8.c - UTF-8 helpers and the streaming detokenizer
 * (engine/tok_utf8.c). Needs no reference files. */
#include "tu_util.h"

#include <stdlib.h>
#include <string.h>

#include "tok_utf8.h"

#define FFFD TOK_UTF8_REPLACEMENT_STR

static void test_decode_encode(void **state) {
    (void)state;
    uint32_t cp;
    assert_int_equal(tok_utf8_decode("A", 1, &cp), 1);
    assert_int_equal(cp, 'A');
    assert_int_equal(tok_utf8_decode("\xC3\xA9", 2, &cp), 2);
    assert_int_equal(cp, 0xE9);
    assert_int_equal(tok_utf8_decode("\xE2\x96\x81", 3, &cp), 3);
    assert_int_equal(cp, 0x2581);
    assert_int_equal(tok_utf8_decode("\xF0\x9F\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1F600);
    assert_int_equal(tok_utf8_decode("\xF4\x8F\xBF\xBF", 4, &cp), 4);
    assert_int_equal(cp, 0x10FFFF);
    assert_int_equal(tok_utf8_decode("", 0, &cp), 0);
    /* invalid: overlong, surrogate, above U+10FFFF, stray continuation, truncated */
    const char *bad[] = {"\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                         "\xF5\x80\x80\x80", "\x80", "\xBF", "\xFF", "\xC3", "\xE2\x96", "\xF0\x9F\x98"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(tok_utf8_decode(bad[i], strlen(bad[i]), &cp), 0);
        assert_int_equal(cp, 0xFFFD);
    }
    char out[4];
    uint32_t cps[] = {0, 0x7F, 0x80, 0x7FF, 0x800, 0xFFFF, 0x10000, 0x10FFFF};
    for (size_t i = 0; i < sizeof cps / sizeof *cps; i++) {
        size_t l = tok_utf8_encode(cps[i], out);
        assert_true(l >= 1 && l <= 4);
        assert_int_equal(tok_utf8_decode(out, l, &cp), l);
        assert_int_equal(cp, cps[i]);
    }
    assert_int_equal(tok_utf8_encode(0xD800, out), 0);
    assert_int_equal(tok_utf8_encode(0x110000, out), 0);
    assert_int_equal(tok_utf8_lead_len(0x7F), 1);
    assert_int_equal(tok_utf8_lead_len(0xC1), 0);
    assert_int_equal(tok_utf8_lead_len(0xF4), 4);
    assert_int_equal(tok_utf8_lead_len(0xF5), 0);
}

static void test_validity(void **state) {
    (void)state;
    const char *ok = "h\xC3\xA9llo \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD";
    assert_true(tok_utf8_is_valid(ok, strlen(ok)));
    assert_int_equal(tok_utf8_valid_prefix("ab\xC3", 3), 2);
    assert_int_equal(tok_utf8_valid_prefix("ab\xC3\xA9\xFF", 5), 4);
    assert_true(tok_utf8_is_incomplete("\xF0\x9F\x98", 3));
    assert_true(tok_utf8_is_incomplete("\xE2", 1));
    assert_false(tok_utf8_is_incomplete("\xE0\x80", 2)); /* cannot become valid */
    assert_false(tok_utf8_is_incomplete("\xC3\xA9", 2)); /* complete */
    assert_false(tok_utf8_is_incomplete("\x80", 1));
    assert_int_equal(tok_utf8_invalid_len("\xC3\xA9", 2), 0);
    assert_int_equal(tok_utf8_invalid_len("\xF0\x9F\x98" "A", 4), 3);
    assert_int_equal(tok_utf8_invalid_len("\xED\xA0\x80", 3), 1);
}

/* Feeds in[0..len) in one piece and flushes; returns a malloc'd result. */
static char *stream_all(const char *in, size_t len, size_t *out_len) {
    tok_stream st;
    tok_stream_init(&st);
    char *out = malloc(TOK_STREAM_OUT_MAX(len) + 3);
    long a = tok_stream_feed(&st, in, len, out, TOK_STREAM_OUT_MAX(len));
    assert_true(a >= 0);
    long b = tok_stream_flush(&st, out + a, 3);
    assert_true(b >= 0);
    *out_len = (size_t)(a + b);
    return out;
}

static void test_replacement(void **state) {
    (void)state;
    /* Unicode's example of maximal subparts (Table 3-8 style): */
    const char in[] = "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64";
    const char want[] = "a" FFFD FFFD FFFD "b" FFFD "c" FFFD FFFD "d";
    size_t n;
    char *out = stream_all(in, sizeof in - 1, &n);
    assert_int_equal(n, sizeof want - 1);
    assert_memory_equal(out, want, n);
    free(out);
    /* surrogate and overlong: one U+FFFD per byte */
    out = stream_all("\xED\xA0\x80\xC0\xAF", 5, &n);
    assert_int_equal(n, 15);
    free(out);
    /* a truncated tail becomes one U+FFFD at the flush */
    out = stream_all("ok\xF0\x9F\x98", 5, &n);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "ok" FFFD, 5);
    free(out);
}

static void test_stream_emoji_bytes(void **state) {
    (void)state;
    /* An emoji with a skin tone, fed one byte token at a time (as llama's
     * <0xF0><0x9F>... byte fallback tokens arrive). */
    const char *s = "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD!";
    tok_stream st;
    tok_stream_init(&st);
    char out[64];
    size_t w = 0;
    for (size_t i = 0; i < strlen(s); i++) {
        long k = tok_stream_feed(&st, s + i, 1, out + w, sizeof out - w);
        assert_true(k >= 0);
        if (i == 0 || i == 1 || i == 2 || i == 4 || i == 5 || i == 6) assert_int_equal(k, 0);
        if (i == 3 || i == 7) assert_int_equal(k, 4);
        assert_int_equal(tok_stream_pending(&st), (i == 8) ? 0 : (i % 4 + 1) % 4);
        w += (size_t)k;
    }
    assert_int_equal(tok_stream_flush(&st, out + w, sizeof out - w), 0);
    assert_int_equal(w, strlen(s));
    assert_memory_equal(out, s, w);

    /* an empty piece (a control token) changes nothing */
    tok_stream_init(&st);
    assert_int_equal(tok_stream_feed(&st, "\xE6", 1, out, sizeof out), 0);
    assert_int_equal(tok_stream_feed(&st, "", 0, out, sizeof out), 0);
    assert_int_equal(tok_stream_feed(&st, "\x97\xA5x", 3, out, sizeof out), 4);
    assert_memory_equal(out, "\xE6\x97\xA5x", 4);
    /* a held prefix broken by the next byte: U+FFFD, then the new byte */
    assert_int_equal(tok_stream_feed(&st, "\xE6\x97", 2, out, sizeof out), 0);
    assert_int_equal(tok_stream_feed(&st, "A", 1, out, sizeof out), 4);
    assert_memory_equal(out, FFFD "A", 4);
    /* too little room: refused, nothing consumed */
    assert_int_equal(tok_stream_feed(&st, "\xE6", 1, out, 3), -1);
    assert_int_equal(tok_stream_pending(&st), 0);
    assert_int_equal(tok_stream_flush(&st, out, 2), -1);
}

/* Random byte strings split at random points stream to exactly the one-shot
 * result, and every chunk is valid UTF-8. */
static void test_stream_random_splits(void **state) {
    (void)state;
    uint32_t x = 99;
    const char *alphabet[] = {"a", " ", "\xC3\xA9", "\xE4\xB8\x96", "\xF0\x9F\x98\x80", "\x80", "\xFF",
                              "\xE2\x96", "\xF0\x9F", "\xED\xA0\x80", "\xC0"};
    for (int r = 0; r < 2000; r++) {
        char in[256];
        size_t len = 0;
        int parts = r % 40;
        for (int p = 0; p < parts; p++) {
            x = x * 1103515245u + 12345u;
            const char *a = alphabet[(x >> 16) % (sizeof alphabet / sizeof *alphabet)];
            memcpy(in + len, a, strlen(a));
            len += strlen(a);
        }
        size_t want_len;
        char *want = stream_all(in, len, &want_len);
        assert_true(tok_utf8_is_valid(want, want_len));
        tok_stream st;
        tok_stream_init(&st);
        char out[2048];
        size_t w = 0, i = 0;
        while (i < len) {
            x = x * 1103515245u + 12345u;
            size_t step = 1 + (x >> 16) % 5;
            if (step > len - i) step = len - i;
            long k = tok_stream_feed(&st, in + i, step, out + w, sizeof out - w);
            assert_true(k >= 0);
            assert_true(tok_utf8_is_valid(out + w, (size_t)k));
            w += (size_t)k;
            i += step;
        }
        long k = tok_stream_flush(&st, out + w, sizeof out - w);
        w += (size_t)k;
        assert_int_equal(w, want_len);
        assert_memory_equal(out, want, w);
        free(want);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_encode),
        cmocka_unit_test(test_validity),
        cmocka_unit_test(test_replacement),
        cmocka_unit_test(test_stream_emoji_bytes),
        cmocka_unit_test(test_stream_random_splits),
    };
    return cmocka_run_group_tests_name("tok_utf8", tests, NULL, NULL);
}
