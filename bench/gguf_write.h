/* gguf_write.h - a minimal GGUF writer for the benchmarks (bench_decode,
 * bench_embed): v3, string/u32/f32/bool metadata, 1-D and 2-D tensors in
 * F32 (or Q8_0 for the 2-D ones) filled with a constant plus uniform noise
 * from a fixed-seed generator, 32-byte alignment. Enough to make random
 * models of real shapes; not a general writer. Single-threaded. */
#ifndef GGUF_WRITE_H
#define GGUF_WRITE_H

#include <stdint.h>
#include <stdio.h>

typedef struct gw_tensor {
    char name[64];
    int n_dims;       /* 1 or 2 */
    uint64_t ne[2];   /* ggml order: ne[0] innermost (row length) */
    float value;      /* every element is value + noise * U(-1, 1) */
    float noise;
} gw_tensor;

/* Writes metadata into f (between the header and the tensor infos): the
 * callback must write exactly the n_kv pairs announced to gw_write. */
typedef void (*gw_kv_fn)(FILE *f, void *ctx);

/* Writes the GGUF file path: header, n_kv pairs from kv(f, ctx), the
 * tensor infos and data of ts[0..nt). q8: 2-D tensors (row length a
 * multiple of 32) as Q8_0. Returns 0, or -1 with a message on stderr. */
int gw_write(const char *path, uint64_t n_kv, gw_kv_fn kv, void *ctx, const gw_tensor *ts,
             int nt, int q8);

/* Metadata pairs (each writes one key/value pair). */
void gw_kv_u32(FILE *f, const char *key, uint32_t v);
void gw_kv_f32(FILE *f, const char *key, float v);
void gw_kv_bool(FILE *f, const char *key, int v);
void gw_kv_str(FILE *f, const char *key, const char *v);
/* A string-array pair of n strings name(i, buf, cap). */
void gw_kv_str_array(FILE *f, const char *key, uint64_t n,
                     void (*name)(uint64_t i, char *buf, size_t cap));

/* Low-level writes, for arrays the helpers above do not cover. */
void gw_u32(FILE *f, uint32_t v);
void gw_u64(FILE *f, uint64_t v);
void gw_str(FILE *f, const char *s);

/* Appends a tensor description to ts[*nt] (name printf-style). */
void gw_add(gw_tensor *ts, int *nt, int n_dims, uint64_t ne0, uint64_t ne1, float value,
            float noise, const char *fmt, ...) __attribute__((format(printf, 8, 9)));

#endif
