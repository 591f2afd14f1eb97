/* clip_data_bpe.h - learning a CLIP-format byte-level BPE tokenizer
 * (vocab.json + merges.txt with "</w>" end-of-word markers, as OpenAI CLIP
 * and Hugging Face CLIPTokenizer have them) from a set of captions: what
 * `alignd pretrain clip` writes next to the model it trains, and what
 * tok_create_clip (tok.h) and the server's tok_load then read.
 *
 * Vocabulary layout (OpenAI CLIP's):
 *   ids 0..255    the 256 byte tokens in GPT-2's bytes_to_unicode form, by
 *                 code point ("!" .. "~", "¡" .. "¬", "®" .. "ÿ", then
 *                 "Ā" .. "Ń" for the other 68 bytes);
 *   ids 256..511  the same with "</w>" (the last symbol of a word);
 *   then the learnt merges' tokens, in merge order;
 *   then "<|startoftext|>" and "<|endoftext|>" (CONTROL; the latter is the
 *   text tower's pooling token, eot_id = n_tokens - 1).
 * Any text therefore encodes (byte fallback): a word no merge covers is
 * spelt in bytes.
 *
 * Training: each caption is cleaned and pre-tokenized exactly as the CLIP
 * tokenizer encodes it (tok_clip.c: NFC, whitespace, lower case, CLIP's
 * regex; this is done by encoding it with a merge-less CLIP tokenizer, whose
 * "</w>" tokens mark the word ends). Equal words are counted. Then, as
 * Hugging Face's BpeTrainer with an end-of-word suffix: repeatedly the
 * adjacent pair occurring most often (summed over words, times their
 * counts) is merged into a new token (ties: the bytewise smallest left
 * string, then right string; a merged string that already is a token is
 * reused); words are merged left to right. Training stops when no pair
 * occurs min_frequency times or more, or the vocabulary holds vocab_size
 * tokens (specials included). With min_frequency 1 and room enough, every
 * word of the captions ends up as one token, and it encodes so (BPE by
 * rank replays the training merges).
 *
 * Cost: each merge recounts the pairs of the distinct words: fine for the
 * small vocabularies this is meant for (a few hundred distinct words).
 *
 * Errors: 0 or a negative errno (-EINVAL bad argument, -ENOMEM, -errno of a
 * failed write) with a message in err.
 * Threads: no shared state.
 */
#ifndef CLIP_DATA_BPE_H
#define CLIP_DATA_BPE_H

#include <stddef.h>
#include <stdint.h>

#include "tok.h"

#define CLIP_DATA_BPE_BOS "<|startoftext|>"
#define CLIP_DATA_BPE_EOS "<|endoftext|>"
#define CLIP_DATA_BPE_BASE 512 /* byte tokens with and without "</w>" */

typedef struct clip_data_bpe {
    char **tokens;         /* [n_tokens] vocabulary strings, by id */
    int32_t *types;        /* [n_tokens] TOK_TYPE_NORMAL / TOK_TYPE_CONTROL */
    size_t n_tokens;       /* 512 + learnt + 2 */
    char **merges;         /* [n_merges] "left right", by rank */
    size_t n_merges;
    size_t n_words;        /* distinct words in the captions */
    size_t n_single;       /* of them, those that ended as one token */
} clip_data_bpe;

/* Learns a tokenizer from texts[0..n). vocab_size 0: no limit (until no
 * pair is left); otherwise at least 514. min_frequency < 1 acts as 1. On
 * success *out owns a new result (clip_data_bpe_free). */
int clip_data_bpe_train(clip_data_bpe *out, const char *const *texts, size_t n,
                        size_t vocab_size, int64_t min_frequency, char *err, size_t errlen);

/* The tokenizer of r (tok_create_clip with r's arrays and types). */
int clip_data_bpe_tok(const clip_data_bpe *r, tok **out, char *err, size_t errlen);

/* Writes dir/vocab.json, dir/merges.txt ("#version: 0.2" first),
 * dir/tokenizer_config.json (CLIPTokenizer, model_max_length = text_ctx)
 * and dir/special_tokens_map.json, each atomically. dir must exist. */
int clip_data_bpe_write(const clip_data_bpe *r, const char *dir, int text_ctx, char *err,
                        size_t errlen);

/* Accepts NULL; leaves *r empty. */
void clip_data_bpe_free(clip_data_bpe *r);

#endif
