/* kv_cache.h - per-sequence key/value cache of a decoder.
 *
 * The cache holds, for each of n_seq sequence slots and each layer, the keys
 * and values (kv_dim = NKV * HS floats each) of positions 0..n_ctx-1. This
 * version is one contiguous allocation: slot s, layer l is a [n_ctx, kv_dim]
 * block for keys and one for values, so kv_k(kv, l, s, 0) is the base of a
 * contiguous run of positions with row stride kv_dim. The scheduler issue
 * replaces it by a block pool; callers must only reach the memory through
 * the kv_ functions.
 *
 * kv_seq_len is the number of valid positions of a slot: model_forward sets
 * it to (last position written in that slot) + 1; kv_seq_clear empties a slot
 * and kv_seq_truncate drops its tail (e.g. to re-generate).
 *
 * Threads: owned by one engine thread; no internal locking.
 */
#ifndef KV_CACHE_H
#define KV_CACHE_H

#include <stddef.h>

typedef struct kv_cache kv_cache;

/* Creates a zeroed cache for n_seq sequences of up to n_ctx positions each.
 * On success *out is new (free with kv_free). -EINVAL for non-positive
 * sizes, -ENOMEM when the allocation fails (message gives the byte count). */
int kv_create(kv_cache **out, int n_layer, int kv_dim, int n_ctx, int n_seq,
              char *err, size_t errlen);
/* Accepts NULL. */
void kv_free(kv_cache *kv);

int kv_n_layer(const kv_cache *kv);
int kv_kv_dim(const kv_cache *kv);
int kv_n_ctx(const kv_cache *kv);
int kv_n_seq(const kv_cache *kv);
/* Bytes held. */
size_t kv_bytes(const kv_cache *kv);

/* Row of kv_dim floats for (layer, seq, pos). No bounds checks (callers
 * validate seq and pos once per batch with kv_check). Rows of positions
 * 0..n_ctx-1 of one (layer, seq) are contiguous with stride kv_kv_dim. */
float *kv_k(kv_cache *kv, int layer, int seq, int pos);
float *kv_v(kv_cache *kv, int layer, int seq, int pos);

/* 0 when 0 <= seq < n_seq and 0 <= pos < n_ctx; else -EINVAL with a message
 * naming the bad value. */
int kv_check(const kv_cache *kv, int seq, int pos, char *err, size_t errlen);

/* Valid positions of a slot (0 when empty). */
int kv_seq_len(const kv_cache *kv, int seq);
void kv_seq_set_len(kv_cache *kv, int seq, int len);
void kv_seq_clear(kv_cache *kv, int seq);
/* Keeps positions [0, len) (no-op when len >= current length). */
void kv_seq_truncate(kv_cache *kv, int seq, int len);

#endif
