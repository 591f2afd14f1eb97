/* fnv.h - FNV-1a 64, the engine's non-cryptographic hash: stable splits
 * of data by content, run fingerprints, checkpoint checksums (it catches
 * truncation and bit rot, not tampering; engine/sha256.h is for that).
 * Incremental: start from FNV1A64_BASIS and feed pieces in order. */
#ifndef FNV_H
#define FNV_H

#include <stddef.h>
#include <stdint.h>

#define FNV1A64_BASIS 0xcbf29ce484222325ull /* 14695981039346656037 */
#define FNV1A64_PRIME 0x100000001b3ull

static inline uint64_t fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * FNV1A64_PRIME;
    return h;
}

#endif
