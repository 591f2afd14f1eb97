/* bpe_train.h - learning a GPT-2 byte-level BPE vocabulary from a corpus:
 * what `alignd pretrain` writes into a GGUF as tokenizer.ggml.model "gpt2",
 * tokenizer.ggml.tokens, token_type and merges, and what tok_create_bpe
 * (tok.h) then loads.
 *
 * The algorithm is Hugging Face tokenizers' BpeTrainer over the ByteLevel
 * pre-tokenizer (the way GPT-2's merges were made):
 *   1. The corpus is cut at every occurrence of a special token's text
 *      (leftmost first, then longest), so specials are never learnt from and
 *      a corpus may separate documents with "<|endoftext|>". Each fragment is
 *      pre-tokenized exactly as tok_encode does for a BPE tokenizer (GPT-2's
 *      regex; a run of invalid UTF-8 is one pre-token: training is byte level
 *      and accepts any bytes). Equal pre-tokens ("words") are counted.
 *   2. The vocabulary starts as the 256 byte tokens in GPT-2's
 *      bytes_to_unicode string form, in GPT-2's vocab.json order, i.e. by the
 *      code point of that string: ids 0..187 are the bytes that stand for
 *      themselves ('!'..'~', 0xA1..0xAC, 0xAE..0xFF) in byte order, ids
 *      188..255 the other 68 bytes (0x00..0x20, 0x7F..0xA0, 0xAD: "Ā".."Ń")
 *      in byte order. So id 0 is "!", id 188 is "Ā" (byte 0), id 220 "Ġ"
 *      (space), as in GPT-2.
 *   3. Repeatedly the adjacent pair of tokens that occurs most often in the
 *      corpus (summed over words, times each word's count) is merged into a
 *      new token with the next id; ties go to the pair whose left token
 *      string is bytewise smallest, then whose right token string is. A word
 *      is merged left to right ("a a a" by "a a" gives "aa a"). When the
 *      merged string already is a token, that token is reused: the merge is
 *      recorded but the vocabulary does not grow (as BpeTrainer). A pair
 *      whose merged string equals a special token's text is never merged.
 *      Training stops when the vocabulary holds vocab_size - n_special
 *      tokens, or when the best pair occurs fewer than min_frequency times,
 *      or when no pair is left.
 *   4. The special tokens follow, as CONTROL tokens, in the order given.
 * Pair counts are kept incrementally: a pair -> (count, words holding it)
 * map and a max-heap whose out-of-date entries are re-queued at their
 * current count when they surface. Counting is linear in the corpus; a
 * merge costs time in proportion to the words that hold its pair.
 *
 * Errors: TOK_OK (0) or a negative TOK_E* code (tok.h), with a message in
 * err (nullable) naming what is wrong.
 *
 * Threads: bpe_train_run keeps no global state; any number of runs may go at
 * once on different results. Results are plain data owned by their user.
 */
#ifndef BPE_TRAIN_H
#define BPE_TRAIN_H

#include <stddef.h>
#include <stdint.h>

#include "tok.h"

#define BPE_TRAIN_N_BYTES 256 /* byte tokens every vocabulary starts with */

/* Progress: learnt of total new tokens so far (learnt counts vocabulary
 * growth, so it stays <= total even when a merge reuses a token). Called on
 * the training thread every progress_every merges and once at the end. */
typedef void (*bpe_train_progress_fn)(void *ctx, size_t learnt, size_t total);

typedef struct bpe_train_options {
    size_t vocab_size;      /* tokens in all: 256 bytes + learnt + specials */
    int64_t min_frequency;  /* a pair must occur this often to be merged (default 2; 0 acts as 1) */
    const char *const *special; /* [n_special] special token texts, borrowed for the call */
    size_t n_special;
    bpe_train_progress_fn progress; /* nullable */
    void *progress_ctx;
    size_t progress_every;  /* merges between progress calls (default 100; 0 acts as 1) */
} bpe_train_options;

/* The learnt vocabulary. tokens/types/merges pass straight to
 * tok_create_bpe(&t, (const char *const *)r.tokens, r.n_tokens,
 * (const char *const *)r.merges, r.n_merges, r.types, NULL, &err). */
typedef struct bpe_train_result {
    char **tokens;         /* [n_tokens] NUL-terminated; byte-level form ("Ġthe"), specials as given */
    int32_t *types;        /* [n_tokens] TOK_TYPE_NORMAL, TOK_TYPE_CONTROL for the specials */
    size_t n_tokens;       /* 256 + n_learnt + n_special */
    size_t n_learnt;       /* tokens made by merges: ids 256 .. 256 + n_learnt - 1 */
    char **merges;         /* [n_merges] "left right" by rank */
    int64_t *merge_count;  /* [n_merges] how often the pair occurred when it was merged */
    size_t n_merges;       /* n_learnt, plus merges that reused a token */
    size_t n_words;        /* distinct pre-tokens in the corpus */
    uint64_t n_pretokens;  /* pre-tokens in the corpus */
} bpe_train_result;

/* Fills *o with the defaults: vocab_size 0 (the caller must set it),
 * min_frequency 2, no specials, no progress callback, progress_every 100. */
void bpe_train_options_init(bpe_train_options *o);

/* Learns a vocabulary from text[0..len) (any bytes; at most UINT32_MAX).
 * Borrows text and opt for the call. On success *out owns a new result
 * (free with bpe_train_free); on failure *out is left empty. Fails with
 * TOK_EINVAL for NULL arguments, vocab_size < 256 + n_special (or over
 * INT32_MAX), a negative min_frequency, a NULL, empty or repeated special
 * token or one equal to a byte token's string, and a corpus with no text
 * outside special tokens; TOK_ENOMEM when memory runs out. */
int bpe_train_run(bpe_train_result *out, const char *text, size_t len, const bpe_train_options *opt,
                  tok_err *err);

/* Frees what *r owns and leaves it empty; accepts NULL. */
void bpe_train_free(bpe_train_result *r);

#endif
