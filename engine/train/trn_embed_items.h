/* trn_embed_items.h - the training items of sentence embeddings
 * (trn_embed.h) from JSONL, one item per line, as
 * models/gen/gen_paraphrases.py writes them:
 *
 *   {"query": "...", "positive": "...", "negatives": ["...", ...]}
 *
 * Other keys are ignored. Each sentence is tokenized as /v1/embeddings
 * tokenizes it (the model's special tokens) and cut to max_len tokens.
 *
 * Errors: a negative errno with a message in err that names the field.
 * Threads: no shared state.
 */
#ifndef TRN_EMBED_ITEMS_H
#define TRN_EMBED_ITEMS_H

#include <stddef.h>

#include "tok.h"
#include "trn_embed.h"

/* Adds the item of one line (len bytes, no NUL needed) to set, with its
 * first set->n_neg negatives. Returns 0 when added; 1 when skipped for
 * fewer negatives than set->n_neg; 2 for a blank line; -EINVAL for a line that
 * is not such an item (not JSON, a field missing or of the wrong type, a
 * sentence the tokenizer makes nothing of); -ENOMEM. Nothing is added on
 * an error. */
int trn_embed_items_add_line(trn_embed_set *set, const tok *t, int max_len, const char *line,
                             size_t len, char *err, size_t errlen);

/* The number of negatives of the item on line; -EINVAL when the line is
 * not JSON with a "negatives" array. */
int trn_embed_items_count_negatives(const char *line, size_t len);

#endif
