/* fuzz_embed_items.c - libFuzzer target for the JSONL items of
 * sentence-embedding training (engine/train/trn_embed_items.c), tokenized
 * by a byte-level tokenizer (byte_tok.h).
 *
 * Input: byte 0 sets the negatives per item (0..3) and max_len (1..32);
 * the rest is one JSONL line. Checks: a line is refused with a message and
 * nothing added, skipped (1: too few negatives; 2: only whitespace), or
 * added as exactly one item whose 2 + negatives sentences hold 1..max_len
 * byte ids; counting its negatives never fails for an added line. Any crash, sanitizer report, leak or failed check is
 * a finding.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "byte_tok.h"
#include "trn_embed_items.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "fuzz_embed_items: check failed: %s (line %d)\n", #c, __LINE__); \
            abort();                                                                      \
        }                                                                                 \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int n_neg = data[0] & 3, max_len = 1 + (data[0] >> 3);
    const char *line = (const char *)data + 1;
    trn_embed_set s;
    CHECK(trn_embed_set_init(&s, n_neg) == 0);
    char err[512] = "";
    int rc = trn_embed_items_add_line(&s, fuzz_byte_tok(), max_len, line, size - 1, err,
                                      sizeof err);
    CHECK(rc == 0 || rc == 1 || rc == 2 || rc == -EINVAL || rc == -ENOMEM);
    CHECK(rc >= 0 || err[0]);
    CHECK(s.n_items == (rc == 0));
    for (size_t i = 0; rc == 2 && i < size - 1; i++)
        CHECK(line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n');
    for (int k = 0; k < s.n_items * (2 + n_neg); k++) {
        CHECK(s.len[k] >= 1 && s.len[k] <= max_len);
        for (int i = 0; i < s.len[k]; i++)
            CHECK(s.seq[k][i] >= 0 && s.seq[k][i] < 256);
    }
    if (rc == 0)
        CHECK(trn_embed_items_count_negatives(line, size - 1) >= n_neg);
    trn_embed_set_free(&s);
    return 0;
}
