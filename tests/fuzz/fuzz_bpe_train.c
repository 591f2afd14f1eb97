/* fuzz_bpe_train.c - libFuzzer target for BPE training (engine/train/bpe_train.c).
 *
 * Input: byte 0 picks how many tokens to learn (0..63), byte 1 the
 * min_frequency (bits 0-1) and the special tokens (bit 2: "<|endoftext|>",
 * bit 3: "Ġe", which merging " e" would make and so must never be learnt);
 * the rest is the corpus. Checks:
 *   - training fails only with TOK_EINVAL for a corpus with no text outside
 *     special tokens;
 *   - the result: sizes as promised, byte tokens first, specials CONTROL and
 *     last, merge counts non-increasing and >= min_frequency, no learnt
 *     token equal to a special, and a second run gives the same merges;
 *   - tok_create_bpe accepts it, and decode(encode(corpus)) is the corpus,
 *     with and without TOK_ENC_PARSE_SPECIAL, in no more ids than bytes.
 * Any crash, sanitizer report, leak or failed check (abort) is a finding.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe_train.h"
#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                      \
    do {                                                                              \
        if (!(c)) {                                                                   \
            fprintf(stderr, "fuzz_bpe_train: check failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                  \
        }                                                                             \
    } while (0)

/* decode(encode(text)) == text under enc_flags; ids no more than bytes. */
static void round_trip(const tok *t, const char *text, size_t len, unsigned enc_flags) {
    size_t n = 0, need = 0, got = 0;
    int rc = tok_encode(t, text, len, enc_flags, NULL, 0, &n, NULL);
    CHECK(rc == TOK_OK || rc == TOK_ESPACE);
    CHECK(n <= len);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    if (!ids) return;
    CHECK(tok_encode(t, text, len, enc_flags, ids, n, &n, NULL) == TOK_OK);
    unsigned df = (enc_flags & TOK_ENC_PARSE_SPECIAL) ? TOK_DEC_SPECIAL : 0;
    rc = tok_decode(t, ids, n, df, NULL, 0, &need, NULL);
    CHECK(rc == TOK_OK || rc == TOK_ESPACE);
    char *back = malloc(need + 1);
    if (back) {
        CHECK(tok_decode(t, ids, n, df, back, need, &got, NULL) == TOK_OK);
        CHECK(got == len && (len == 0 || memcmp(back, text, len) == 0));
        free(back);
    }
    free(ids);
}

static void check_result(const bpe_train_result *r, const bpe_train_options *o) {
    CHECK(r->n_tokens <= o->vocab_size);
    CHECK(r->n_tokens == BPE_TRAIN_N_BYTES + r->n_learnt + o->n_special);
    CHECK(r->n_merges >= r->n_learnt);
    CHECK(strcmp(r->tokens[0], "!") == 0);
    for (size_t i = 0; i < r->n_tokens; i++) {
        bool special = i >= r->n_tokens - o->n_special;
        CHECK(r->types[i] == (special ? TOK_TYPE_CONTROL : TOK_TYPE_NORMAL));
        if (special) CHECK(strcmp(r->tokens[i], o->special[i - (r->n_tokens - o->n_special)]) == 0);
        for (size_t k = 0; !special && k < o->n_special; k++) CHECK(strcmp(r->tokens[i], o->special[k]) != 0);
    }
    int64_t floor = o->min_frequency > 1 ? o->min_frequency : 1;
    for (size_t i = 0; i < r->n_merges; i++) {
        CHECK(r->merge_count[i] >= floor);
        if (i) CHECK(r->merge_count[i] <= r->merge_count[i - 1]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const char *sp_all[] = {"<|endoftext|>", "\xC4\xA0" "e"};
    const char *sp[2];
    size_t n_sp = 0;
    if (data[1] & 4) sp[n_sp++] = sp_all[0];
    if (data[1] & 8) sp[n_sp++] = sp_all[1];
    bpe_train_options o;
    bpe_train_options_init(&o);
    o.vocab_size = BPE_TRAIN_N_BYTES + data[0] % 64 + n_sp;
    o.min_frequency = data[1] & 3;
    o.special = sp;
    o.n_special = n_sp;
    const char *text = (const char *)data + 2;
    size_t len = size - 2;

    bpe_train_result r, r2;
    tok_err err;
    int rc = bpe_train_run(&r, text, len, &o, &err);
    if (rc) {
        CHECK(rc == TOK_EINVAL && strstr(err.msg, "corpus is empty"));
        CHECK(r.n_tokens == 0 && r.tokens == NULL);
        return 0;
    }
    check_result(&r, &o);
    CHECK(bpe_train_run(&r2, text, len, &o, &err) == TOK_OK);
    CHECK(r2.n_merges == r.n_merges);
    for (size_t i = 0; i < r.n_merges; i++) CHECK(strcmp(r.merges[i], r2.merges[i]) == 0);
    bpe_train_free(&r2);

    tok *t = NULL;
    rc = tok_create_bpe(&t, (const char *const *)r.tokens, r.n_tokens, (const char *const *)r.merges,
                        r.n_merges, r.types, NULL, &err);
    if (rc) fprintf(stderr, "fuzz_bpe_train: tok_create_bpe: %s\n", err.msg);
    CHECK(rc == TOK_OK);
    round_trip(t, text, len, 0);
    round_trip(t, text, len, TOK_ENC_PARSE_SPECIAL);
    tok_free(t);
    bpe_train_free(&r);
    return 0;
}
