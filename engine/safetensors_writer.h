/* safetensors_writer.h - writes .safetensors files (the format safetensors.h
 * reads) from F32 arrays, stored as F32 or F16.
 *
 * Usage: st_writer_new, any number of st_writer_set_metadata and
 * st_writer_add calls, then st_writer_write. Names, keys and metadata values
 * are copied when set; tensor data is borrowed and read only by
 * st_writer_write.
 *
 * The file: an 8-byte little-endian header length N, N bytes of JSON
 * ({"__metadata__": {...} when any was set, then one entry per tensor in the
 * order added: {"dtype", "shape", "data_offsets"}}) padded with spaces to a
 * multiple of 8, then the tensors' bytes back to back in the order added.
 * No gaps: the reference (Rust) reader, and so Hugging Face's Python stack,
 * rejects them. An F16 tensor of odd length shifts every later tensor off
 * 4-byte alignment; add F32 tensors first when alignment matters to a
 * reader (safetensors.h does not care).
 *
 * Atomicity: the file is written to "<path>.tmp", fsynced and renamed over
 * path, so path holds either its old content or the complete new file; the
 * temporary is removed on failure.
 *
 * Errors: 0 or a negative errno: -EINVAL for a bad argument (empty, too long
 * or not UTF-8 name or key, a duplicate, the name "__metadata__", a bad shape
 * or dtype), -ENOMEM, and the errno of a failed open/write/fsync/rename.
 * Errors of the set and add calls are sticky, as in gguf_writer.h: the first
 * one is kept (st_writer_error) and st_writer_write refuses with it, so an
 * unchecked failure cannot yield a file that silently lacks a tensor.
 * Messages start with "st_writer: " and name the tensor, key or path.
 *
 * Threads: one thread per writer; distinct writers are independent. The host
 * must be little-endian.
 */
#ifndef SAFETENSORS_WRITER_H
#define SAFETENSORS_WRITER_H

#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Longest accepted tensor name or metadata key, in bytes. */
#define ST_WRITER_MAX_NAME 1024

typedef struct st_writer st_writer;

/* *out receives a new, empty writer (free with st_writer_free); -ENOMEM
 * leaves *out NULL. */
int st_writer_new(st_writer **out);

/* Frees the writer and its copies. Accepts NULL. */
void st_writer_free(st_writer *w);

/* Message of the first failed set/add call, "" when none. Owned by w. */
const char *st_writer_error(const st_writer *w);

/* Sets "__metadata__" entry key to value (both copied, NUL-terminated
 * UTF-8; a key may be set once). */
int st_writer_set_metadata(st_writer *w, const char *key, const char *value);

/* Adds tensor name (copied; unique, not "__metadata__") of n_dims
 * (0..ST_MAX_DIMS; 0 is a scalar) dims shape[0..n_dims) >= 0, outermost
 * first, stored as dtype ST_F32 or ST_F16 (round to nearest even). data:
 * the elements in row-major order, borrowed: it must stay valid and
 * unchanged until the last st_writer_write (may be NULL when there are no
 * elements). */
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int n_dims,
                  const int64_t *shape, const float *data);

/* Writes everything added so far to path (through "<path>.tmp"). The writer
 * is unchanged and may be written again. err may be NULL. */
int st_writer_write(const st_writer *w, const char *path, st_error *err);

#endif
