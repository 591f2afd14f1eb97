/* fuzz_pref.c - libFuzzer target for preference-data lines (engine/train/
 * pref.c: TRL's JSONL in text and conversational form, with split and
 * margin) tokenized by a byte-level tokenizer (256 byte tokens, no merges)
 * and rendered with chatml.
 *
 * Input: byte 0 sets max_prompt_len (1..32) and max_len (max_prompt_len +
 * 1..32); the rest is one JSONL line. Checks: a line is either refused with
 * a message or added (or skipped and counted); every pair added respects
 * the truncation limits, has at least one token on each side, and its ids
 * are byte tokens; a padded batch of it has targets only on response
 * positions. Any crash, sanitizer report, leak or failed check is a
 * finding.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "byte_tok.h"
#include "pref.h"
#include "tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(c)                                                                       \
    do {                                                                               \
        if (!(c)) {                                                                    \
            fprintf(stderr, "fuzz_pref: check failed: %s (line %d)\n", #c, __LINE__);  \
            abort();                                                                   \
        }                                                                              \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    pref_opts o;
    pref_opts_default(&o);
    o.max_prompt_len = 1 + (data[0] & 31);
    o.max_len = o.max_prompt_len + 1 + (data[0] >> 3);
    pref_tok pt = {.t = fuzz_byte_tok(), .eos_id = 0, .has_chat = true,
                   .chat_kind = CHAT_TEMPLATE_CHATML};
    pref_set s = {0};
    char err[512] = "";
    int rc = pref_add_jsonl_line(&s, &pt, (const char *)data + 1, size - 1, &o, err, sizeof err);
    CHECK(rc == 0 || err[0]);
    CHECK(s.n + s.n_skipped <= 1);
    for (int i = 0; i < s.n; i++) {
        const pref_pair *p = &s.p[i];
        CHECK(p->n_prompt <= o.max_prompt_len);
        CHECK(p->n_chosen >= 1 && p->n_rejected >= 1);
        CHECK(p->n_prompt + p->n_chosen <= o.max_len && p->n_prompt + p->n_rejected <= o.max_len);
        for (int j = 0; j < p->n_prompt + p->n_chosen + p->n_rejected; j++)
            CHECK(p->ids[j] >= 0 && p->ids[j] < 256);
        pref_batch b = {0};
        int idx = i;
        CHECK(pref_batch_make(&b, &s, &idx, 1, err, sizeof err) == 0);
        for (int r = 0; r < 2; r++)
            for (int j = 0; j < b.L; j++)
                CHECK(b.targets[r * b.L + j] < 0 || (j + 1 >= p->n_prompt && j + 1 < b.lens[r]));
        pref_batch_free(&b);
    }
    pref_set_free(&s);
    return 0;
}
