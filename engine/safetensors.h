/* safetensors.h - read-only access to safetensors weight files.
 *
 * A safetensors file is: an 8-byte little-endian header length N, N bytes of
 * JSON (an object mapping tensor names to {dtype, shape, data_offsets}, plus
 * an optional "__metadata__" string map), then the data buffer. Offsets are
 * relative to the start of the data buffer.
 *
 * st_file   one file, mapped with mmap (st_open) or parsed from a caller's
 *           buffer (st_parse). Every header field is validated before the
 *           file is handed out: known dtype, at most ST_MAX_DIMS
 *           non-negative dims whose element count does not overflow,
 *           data_offsets inside the data buffer and exactly as long as
 *           dtype size x element count, no two tensors overlapping, no
 *           duplicate names. Gaps between tensors are allowed.
 * st_set    the weights of one model: a single file, or the shards named by a
 *           model.safetensors.index.json ("weight_map": name -> shard file),
 *           each shard opened once. Lookups go to the right shard.
 *
 * Errors: functions return 0 or a negative errno value (-EINVAL malformed
 * input, -ENOENT missing file or tensor, -ENOMEM, or the errno of a failed
 * system call) and fill the caller's st_error, when one is given, with a
 * message that names the file and the tensor or field at fault.
 *
 * Threads: opening and closing are not synchronised; an opened st_file or
 * st_set is immutable, so any number of threads may look up tensors and read
 * their data concurrently until it is closed.
 */
#ifndef SAFETENSORS_H
#define SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "eng_err.h"

#define ST_MAX_DIMS 8
/* Largest accepted JSON header, as the reference implementation caps it. */
#define ST_MAX_HEADER_BYTES 100000000u
/* Largest accepted model.safetensors.index.json. */
#define ST_MAX_INDEX_BYTES (64u * 1024u * 1024u)

/* The dtype table: X(enum suffix, name in the header, element size in bytes).
 * Expanded for the enum, the name lookup and the size lookup. */
#define ST_DTYPES(X)          \
    X(F64, "F64", 8)          \
    X(F32, "F32", 4)          \
    X(F16, "F16", 2)          \
    X(BF16, "BF16", 2)        \
    X(F8_E4M3, "F8_E4M3", 1)  \
    X(F8_E5M2, "F8_E5M2", 1)  \
    X(I64, "I64", 8)          \
    X(I32, "I32", 4)          \
    X(I16, "I16", 2)          \
    X(I8, "I8", 1)            \
    X(U64, "U64", 8)          \
    X(U32, "U32", 4)          \
    X(U16, "U16", 2)          \
    X(U8, "U8", 1)            \
    X(BOOL, "BOOL", 1)

typedef enum st_dtype {
#define ST__DTYPE_ENUM(e, name, size) ST_##e,
    ST_DTYPES(ST__DTYPE_ENUM)
#undef ST__DTYPE_ENUM
    ST_DTYPE_COUNT
} st_dtype;

/* Messages read "<file>: tensor '<name>': <problem>". */
typedef eng_err st_error;

typedef struct st_tensor {
    const char *name;             /* NUL-terminated, owned by the st_file */
    st_dtype dtype;
    int n_dims;                   /* 0 for a scalar */
    int64_t shape[ST_MAX_DIMS];   /* row-major (C order), outermost first */
    uint64_t n_elements;          /* product of shape (1 for a scalar) */
    uint64_t offset;              /* bytes from the start of the data buffer */
    uint64_t nbytes;              /* n_elements * st_dtype_size(dtype) */
    const void *data;             /* borrowed, read-only; may be unaligned
                                     (read it with memcpy or st_tensor_to_f32) */
} st_tensor;

typedef struct st_file st_file;
typedef struct st_set st_set;

/* ---- dtypes ------------------------------------------------------------ */

/* Returns the header name of a dtype ("F32"), or "?" when out of range. */
const char *st_dtype_name(st_dtype t);
/* Returns the element size in bytes, or 0 when out of range. */
size_t st_dtype_size(st_dtype t);
/* Looks up a header dtype name; returns 0 and sets *out, or -EINVAL. */
int st_dtype_from_name(const char *name, st_dtype *out);

/* ---- one file ---------------------------------------------------------- */

/* Maps and validates the file at path. On success *out is a new st_file the
 * caller closes with st_close; on failure *out is NULL. */
int st_open(st_file **out, const char *path, st_error *err);

/* Validates a safetensors image held in memory. buf is borrowed: it must stay
 * valid and unchanged until st_close. label names the image in error
 * messages (NULL: "<memory>"). Same ownership of *out as st_open. */
int st_parse(st_file **out, const void *buf, size_t len, const char *label,
             st_error *err);

/* Releases the file and its mapping; every st_tensor and string obtained from
 * it becomes invalid. Accepts NULL. */
void st_close(st_file *f);

/* Label given at open: the path, or the st_parse label. Borrowed. */
const char *st_file_label(const st_file *f);
/* Number of tensors; st_tensor_at enumerates them sorted by name
 * (strcmp order). st_tensor_at returns NULL when i is out of range. */
size_t st_n_tensors(const st_file *f);
const st_tensor *st_tensor_at(const st_file *f, size_t i);
/* Returns the tensor called name, or NULL when absent. Borrowed. */
const st_tensor *st_find(const st_file *f, const char *name);

/* "__metadata__" entries, sorted by key; values are strings. Borrowed.
 * st_metadata_get returns NULL when the key is absent. */
size_t st_n_metadata(const st_file *f);
int st_metadata_at(const st_file *f, size_t i, const char **key,
                   const char **value);
const char *st_metadata_get(const st_file *f, const char *key);

/* ---- a model's weights: one file or a sharded index -------------------- */

/* Opens a single safetensors file as a set (for a uniform lookup). */
int st_set_open_file(st_set **out, const char *path, st_error *err);

/* Opens a model.safetensors.index.json: reads "weight_map", opens each
 * distinct shard (a plain file name, resolved beside the index) once, and
 * checks that every listed tensor exists in its shard. Tensors present in a
 * shard but absent from weight_map are not reachable. A missing shard, a
 * shard name with a path separator, or a listed tensor absent from its shard
 * is an error naming both. */
int st_set_open_index(st_set **out, const char *index_path, st_error *err);

/* Closes every shard. Accepts NULL. */
void st_set_close(st_set *s);

/* Number of tensors and files; st_set_tensor_at enumerates tensors sorted by
 * name; st_set_file_at returns the i-th opened file (borrowed). */
size_t st_set_n_tensors(const st_set *s);
const st_tensor *st_set_tensor_at(const st_set *s, size_t i);
size_t st_set_n_files(const st_set *s);
const st_file *st_set_file_at(const st_set *s, size_t i);
/* Returns the tensor called name from whichever shard holds it, or NULL.
 * If file is not NULL it receives the holding st_file (borrowed). */
const st_tensor *st_set_find(const st_set *s, const char *name,
                             const st_file **file);

/* ---- conversions ------------------------------------------------------- */

/* IEEE half and bfloat16 to float, exact for every input (subnormals, signed
 * zeros, infinities; NaNs stay NaN with their sign and payload). */
float st_f16_to_f32(uint16_t h);
float st_bf16_to_f32(uint16_t b);

/* Converts an F32, F16 or BF16 tensor to a new float array of n_elements
 * values (caller frees with free()); any other dtype is -EINVAL naming the
 * tensor. A zero-element tensor yields a valid 1-float allocation. */
int st_tensor_to_f32(const st_tensor *t, float **out, st_error *err);

/* Checks a tensor against an expected dtype and shape; on mismatch returns
 * -EINVAL with a message like "tensor 'w': shape [32, 96], expected [96, 32]".
 * label names the containing file or directory in the message. */
int st_tensor_expect(const st_tensor *t, st_dtype dtype, int n_dims,
                     const int64_t *shape, const char *label, st_error *err);

/* Formats "[d0, d1, ...]" into buf (always NUL-terminated, truncated to n). */
void st_format_shape(char *buf, size_t n, int n_dims, const int64_t *shape);

#endif
