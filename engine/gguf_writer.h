/* gguf_writer.h - writes GGUF v3 model files: typed metadata and F32, F16,
 * Q8_0 or Q4_0 tensors converted from F32 arrays, in the layout gguf.h reads.
 *
 * Usage: gguf_writer_new, any number of gguf_writer_set_* and
 * gguf_writer_add_tensor calls (file order is call order), then
 * gguf_writer_write. The writer copies keys, names and metadata values when
 * they are set; tensor data is borrowed and read only by gguf_writer_write,
 * which converts it in small chunks, so the file is never held in memory.
 *
 * The file: "GGUF", version 3, the kv pairs (general.alignment = 32 first,
 * preset by gguf_writer_new), the tensor infos with dims innermost first
 * (ne[0] = row length; callers pass shapes outermost first, numpy order,
 * as wt_view reports them), then the data, each tensor starting on a
 * 32-byte boundary. Q8_0 is ggml's block layout: per 32 elements an f16
 * scale d = max|x| / 127 and 32 int8 round(x / d), as ggml's reference
 * quantizer; F16 rounds to nearest even. Inputs are expected finite.
 *
 * Atomicity: the file is written to "<path>.tmp", fsynced and renamed over
 * path, so path holds either its old content or the complete new file; the
 * temporary is removed on failure.
 *
 * Errors: 0 or a negative errno: -EINVAL for a bad argument (an empty or
 * too long key or name, a duplicate key or tensor name, a bad shape or type,
 * a Q8_0 row length not a multiple of 32), -ENOMEM, and the errno of a
 * failed open/write/fsync/rename. Errors of the set and add calls are
 * sticky: the first one is kept (gguf_writer_error), and gguf_writer_write
 * then refuses with it, so an unchecked failure cannot produce a file that
 * silently lacks a key or tensor. Messages start with "gguf_writer: " and
 * name the key, tensor or path at fault.
 *
 * Threads: a writer is used by one thread at a time; distinct writers are
 * independent. The host must be little-endian (as for gguf.c).
 */
#ifndef GGUF_WRITER_H
#define GGUF_WRITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"

#define GGUF_WRITER_ALIGNMENT 32

typedef struct gguf_writer gguf_writer;

/* Stored tensor types (values are the ggml type numbers). */
typedef enum gguf_writer_type {
    GGUF_WRITER_F32 = GGUF_DTYPE_F32,
    GGUF_WRITER_F16 = GGUF_DTYPE_F16,
    GGUF_WRITER_Q8_0 = GGUF_DTYPE_Q8_0, /* row length a multiple of 32 */
    GGUF_WRITER_Q4_0 = GGUF_DTYPE_Q4_0, /* row length a multiple of 32 (qmat.h) */
} gguf_writer_type;

/* *out receives a new, empty writer (free with gguf_writer_free); -ENOMEM
 * leaves *out NULL. */
int gguf_writer_new(gguf_writer **out);

/* Frees the writer and its copies. Accepts NULL. */
void gguf_writer_free(gguf_writer *w);

/* Message of the first failed set/add call, "" when none. Owned by w,
 * valid until gguf_writer_free. */
const char *gguf_writer_error(const gguf_writer *w);

/* ---- metadata: one pair per key; each copies key and value -------------- */

int gguf_writer_set_u32(gguf_writer *w, const char *key, uint32_t v);
int gguf_writer_set_i32(gguf_writer *w, const char *key, int32_t v);
int gguf_writer_set_u64(gguf_writer *w, const char *key, uint64_t v);
int gguf_writer_set_f32(gguf_writer *w, const char *key, float v);
int gguf_writer_set_bool(gguf_writer *w, const char *key, bool v);
/* v is NUL-terminated. */
int gguf_writer_set_str(gguf_writer *w, const char *key, const char *v);
/* Arrays of n elements (v may be NULL when n is 0); strings NUL-terminated. */
int gguf_writer_set_arr_str(gguf_writer *w, const char *key, const char *const *v, size_t n);
int gguf_writer_set_arr_i32(gguf_writer *w, const char *key, const int32_t *v, size_t n);
int gguf_writer_set_arr_f32(gguf_writer *w, const char *key, const float *v, size_t n);

/* Copies the pair key of f (any type: scalars, strings with their exact
 * bytes, arrays) into w; -ENOENT when f lacks it. For metadata a new file
 * keeps from the model it was made from (the tokenizer). */
int gguf_writer_copy_kv(gguf_writer *w, const gguf_file *f, const char *key);

/* ---- tensors ------------------------------------------------------------- */

/* Adds tensor name (copied; 1..GGUF_MAX_NAME_LEN bytes, unique) of n_dims
 * (1..GGUF_MAX_DIMS) dims shape[0..n_dims) >= 1, outermost first, stored
 * as type. data: the elements in row-major order; borrowed, must stay
 * valid and unchanged until the last gguf_writer_write. */
int gguf_writer_add_tensor(gguf_writer *w, const char *name, int n_dims,
                           const int64_t *shape, gguf_writer_type type,
                           const float *data);

/* ---- output -------------------------------------------------------------- */

/* Writes everything added so far to path (through "<path>.tmp", see
 * above). The writer is unchanged: it may be written again, to another
 * path. err (may be NULL) receives the message of a failure. */
int gguf_writer_write(gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
