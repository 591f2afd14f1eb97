/* kv_cache.h - the key/value cache of a decoder: a pool of fixed-size blocks
 * shared by sequence slots through per-sequence block tables.
 *
 * Pool: n_blocks blocks of block_size (BS) positions. A block holds, for
 * every layer, the keys and the values of BS positions (kv_dim = NKV * HS
 * floats per position). The whole pool is one allocation:
 *
 *   pool[n_blocks][n_layer][2][BS][kv_dim]      (2: keys, then values)
 *
 * Why block-major with K and V of one layer side by side: attention at
 * layer l walks the blocks of one sequence and reads, per block, the keys
 * and then the values of that layer; both are one contiguous run of
 * 2 * BS * kv_dim floats, so each block costs one sequential stream (the
 * prefetcher's best case) however scattered the table is. Rows stay
 * [pos][kv_dim] so a new token's K/V row is one memcpy (kv_k / kv_v), and a
 * whole block is one contiguous range, so copy-on-write (fork) is a single
 * memcpy.
 *
 * Sequences: slots 0..n_seq_max-1. Each has a block table (block ids; entry i
 * covers positions [i*BS, (i+1)*BS)) and a length (valid positions). The
 * table may cover more than the length (reserved room). Blocks are
 * reference-counted: kv_seq_fork shares full prefix blocks between
 * sequences, and a block returns to the free list when its last holder
 * releases it.
 *
 * Writing: a position may be written (kv_k / kv_v, model_forward) only when
 * the table covers it and its block is held by that sequence alone
 * (kv_check_write). kv_seq_reserve establishes both for [kv_seq_len, len):
 * the scheduler reserves before each forward pass; model_forward refuses
 * (nothing written) a token whose position is not reserved.
 *
 * Lengths: model_forward sets kv_seq_len to (last position written) + 1;
 * kv_seq_clear empties a slot, kv_seq_truncate drops its tail.
 *
 * Errors: 0 or a negative errno (-EINVAL bad argument, -ENOSPC not enough
 * free blocks, -ENOMEM), with a message in the caller's buffer where one is
 * taken. On any error nothing changes.
 *
 * Threads: owned by one engine thread; no internal locking.
 */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_cache kv_cache;

/* Block size model_kv_create uses (positions per block). */
#define KV_DEFAULT_BLOCK_SIZE 16

/* Creates a pool of n_blocks blocks of block_size positions for n_layer
 * layers of kv_dim floats, and n_seq_max empty sequence slots of at most
 * n_ctx_max positions each. On success *out is new (free with kv_free).
 * -EINVAL for non-positive sizes, -ENOMEM when an allocation fails (message
 * gives the byte count). The pool's contents start zeroed. */
int kv_create(kv_cache **out, int n_layer, int kv_dim, int block_size,
              int n_blocks, int n_seq_max, int n_ctx_max, char *err,
              size_t errlen);
/* kv_create with the pool in IEEE half floats when f16 (half the memory and
 * the bytes attention reads; values rounded to nearest even on writing). */
int kv_create_typed(kv_cache **out, int n_layer, int kv_dim, int block_size,
                    int n_blocks, int n_seq_max, int n_ctx_max, bool f16, char *err,
                    size_t errlen);
/* Accepts NULL. */
void kv_free(kv_cache *kv);

int kv_n_layer(const kv_cache *kv);
int kv_kv_dim(const kv_cache *kv);
/* Most positions of one sequence (n_ctx_max). */
int kv_n_ctx(const kv_cache *kv);
/* Sequence slots (n_seq_max). */
int kv_n_seq(const kv_cache *kv);

/* ---- accounting ---------------------------------------------------------- */

int kv_n_blocks(const kv_cache *kv);
int kv_n_free_blocks(const kv_cache *kv);
int kv_block_size(const kv_cache *kv);
/* Bytes held by the pool and the tables. */
size_t kv_bytes(const kv_cache *kv);
/* Free blocks kv_seq_reserve(kv, seq, len) would take: new table entries
 * plus copies of shared blocks it must make writable. -EINVAL for a bad seq
 * or len outside [0, n_ctx_max]. */
int kv_blocks_needed(const kv_cache *kv, int seq, int len);

/* ---- sequences ------------------------------------------------------------ */

/* Makes the table of seq cover positions [0, len) and makes the blocks of
 * positions [kv_seq_len(seq), len) exclusively held by seq (a block it
 * shares is copied first). 0; -ENOSPC when the pool has fewer free blocks
 * than kv_blocks_needed (nothing changes); -EINVAL for a bad seq or len
 * outside [0, n_ctx_max]. The length is not changed. */
int kv_seq_reserve(kv_cache *kv, int seq, int len);

/* Releases every block of seq (reference counts) and sets its length to 0. */
void kv_seq_clear(kv_cache *kv, int seq);

/* Keeps positions [0, len): the length becomes min(length, len) and blocks
 * wholly at or beyond position len are released (reserved room included).
 * len < 0 counts as 0. */
void kv_seq_truncate(kv_cache *kv, int seq, int len);

/* dst becomes a copy of the first n_tokens positions of src: the full
 * blocks among them are shared (reference counted), a partial last block is
 * copied into a new block. dst's previous blocks are released first; its
 * length becomes n_tokens. 0; -EINVAL for bad slots, dst == src or
 * n_tokens outside [0, kv_seq_len(src)]; -ENOSPC when no block is free for
 * the copy (nothing changes). */
int kv_seq_fork(kv_cache *kv, int dst, int src, int n_tokens);

/* Valid positions of a slot (0 when empty). */
int kv_seq_len(const kv_cache *kv, int seq);
/* Sets the length; callers keep len <= kv_seq_capacity. */
void kv_seq_set_len(kv_cache *kv, int seq, int len);
/* Positions the table covers (table entries * block_size). */
int kv_seq_capacity(const kv_cache *kv, int seq);
/* The block table of seq: kv_seq_n_blocks entries, borrowed (valid until
 * the next call that changes seq). */
int kv_seq_n_blocks(const kv_cache *kv, int seq);
const int32_t *kv_seq_table(const kv_cache *kv, int seq);
/* Distinct blocks held by slots [first_seq, first_seq + n_seq) (a block
 * they share counts once); -EINVAL for a bad range, -ENOMEM. Not const: it
 * uses scratch of the cache's own (made at the first call). */
int kv_blocks_held(kv_cache *kv, int first_seq, int n_seq);
/* Holders of a block (0: free). */
int kv_block_refs(const kv_cache *kv, int block);

/* ---- rows ------------------------------------------------------------------ */

/* 0 when 0 <= seq < n_seq_max and 0 <= pos < n_ctx_max; else -EINVAL with a
 * message naming the bad value. */
int kv_check(const kv_cache *kv, int seq, int pos, char *err, size_t errlen);
/* kv_check, and the table of seq covers pos, and pos's block is held by seq
 * alone; else -EINVAL with a message naming seq and pos. */
int kv_check_write(const kv_cache *kv, int seq, int pos, char *err,
                   size_t errlen);

/* Row of kv_dim floats for (layer, seq, pos), through the block table; NULL
 * for an F16 cache. No checks: callers validate once per batch
 * (kv_check_write for rows they write; rows they read must be covered). */
float *kv_k(kv_cache *kv, int layer, int seq, int pos);
float *kv_v(kv_cache *kv, int layer, int seq, int pos);
/* Stores the key and value rows (kv_dim floats each) of (layer, seq, pos),
 * converted for an F16 cache. Same checks as kv_k. */
void kv_write(kv_cache *kv, int layer, int seq, int pos, const float *k, const float *v);
/* Whether the pool holds half floats (kv_create_typed). */
bool kv_is_f16(const kv_cache *kv);

/* For attention kernels: the keys of block b at layer l are the rows
 * [block_size, kv_dim] at kv_pool_k(kv, l) + b * kv_block_stride(kv); the
 * values likewise from kv_pool_v. */
const float *kv_pool_k(const kv_cache *kv, int layer);
const float *kv_pool_v(const kv_cache *kv, int layer);
/* The same for an F16 cache (NULL for an F32 one, as kv_pool_k for F16). */
const uint16_t *kv_pool_k16(const kv_cache *kv, int layer);
const uint16_t *kv_pool_v16(const kv_cache *kv, int layer);
size_t kv_block_stride(const kv_cache *kv);

#endif
