/* sha256.h - SHA-256 (FIPS 180-4), small and dependency-free: the adapter
 * registry records the digest of every adapter_model.safetensors it
 * publishes, so a served adapter can be traced to its file (and a file
 * changed behind alignd's back is noticed). No Debian package we already
 * link provides one (SQLite and libpq do not export theirs).
 *
 * Threads: no shared state; one sha256_ctx per thread.
 */
#ifndef SHA256_H
#define SHA256_H

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_LEN 32
#define SHA256_HEX_LEN 64  /* without the terminating NUL */

typedef struct sha256_ctx {
    uint32_t h[8];
    uint64_t n_bytes;          /* message length so far */
    uint8_t buf[64];
    size_t n_buf;              /* bytes waiting in buf */
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t len);
void sha256_final(sha256_ctx *c, uint8_t out[SHA256_DIGEST_LEN]);

/* One-shot digest of len bytes as 64 lowercase hex digits + NUL. */
void sha256_hex(const void *data, size_t len, char out[SHA256_HEX_LEN + 1]);
/* The hex digest of the file at path: 0 or a negative errno. */
int sha256_file_hex(const char *path, char out[SHA256_HEX_LEN + 1]);

#endif
