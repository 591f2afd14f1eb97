/* prefix_cache.h - KV blocks of finished prompts kept for later requests
 * that start with the same tokens (a shared system prompt, a conversation's
 * earlier turns), so their prefill skips those positions.
 *
 * Entries live in KV slots of their own (slots [first_slot, first_slot +
 * n_entries) of the scheduler's pool), each a token sequence and the KV of
 * its first n positions, n a multiple of the block size: the blocks are
 * shared with kv_seq_fork (reference counts), never copied, so keeping and
 * reusing cost no memory traffic. An entry holds its blocks until it is
 * evicted: least recently used first, when a slot is wanted for a new entry
 * or (pfx_evict) when the scheduler needs free blocks; entries therefore
 * only ever use blocks nobody else wants.
 *
 * What may share: the KV of a position depends on the tokens before it and
 * on the weights, so only sequences of the same weights may: the scheduler
 * keeps and looks up base-model sequences only (adapted ones neither).
 *
 * Threads: the scheduler's thread only. */
#ifndef PREFIX_CACHE_H
#define PREFIX_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "kv_cache.h"

typedef struct pfx_cache pfx_cache;

/* A cache of n_entries (>= 0; 0: everything is a miss) over kv's slots
 * [first_slot, first_slot + n_entries), which nothing else may use.
 * 0, -EINVAL (slots out of kv's range), -ENOMEM. */
int pfx_create(pfx_cache **out, kv_cache *kv, int first_slot, int n_entries);
/* Releases every entry's blocks; NULL is a no-op. */
void pfx_free(pfx_cache *pc);

/* Keeps the KV of slot src for tokens[0, n) (its first n positions must be
 * computed), cut down to whole blocks; nothing when that is 0 or already
 * kept by an entry. An entry that the new one extends is replaced, else a
 * free entry or the least recently used one is taken. */
void pfx_retain(pfx_cache *pc, int src, const int32_t *tokens, int n);

/* The longest kept prefix of tokens[0, n), in whole blocks and shorter
 * than n (the last position is always computed, for its logits): shares it
 * into slot dst (kv_seq_fork, dst's blocks released first) and returns its
 * length; 0 (dst untouched) when nothing matches. */
int pfx_attach(pfx_cache *pc, int dst, const int32_t *tokens, int n);

/* Evicts the least recently used entry; false when there is none. */
bool pfx_evict(pfx_cache *pc);

/* Entries held now. */
int pfx_entries(const pfx_cache *pc);

#endif
