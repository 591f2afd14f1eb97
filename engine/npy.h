/* npy.h - a small reader for NumPy .npy files, for loading reference arrays
 * in conformance tests.
 *
 * Supported: format versions 1.0, 2.0 and 3.0; dtypes '<f4', '<f8', '<i8'
 * (little-endian float32, float64, int64); C order; up to NPY_MAX_DIMS
 * dimensions. Everything else (big-endian, other dtypes, Fortran order,
 * object arrays, unknown header keys, a data size that does not match the
 * shape) is rejected with a message naming the file and the problem.
 *
 * Errors: 0 or a negative errno (-EINVAL malformed or unsupported, -ENOMEM,
 * or the errno of a failed open/read) with a message in the caller's
 * npy_error when one is given.
 *
 * Threads: no shared state; a loaded npy_array may be read from any thread.
 */
#ifndef NPY_H
#define NPY_H

#include <stddef.h>
#include <stdint.h>
#include "eng_err.h"

#define NPY_MAX_DIMS 16
/* Largest accepted header (numpy itself refuses more than 10000 bytes by
 * default). */
#define NPY_MAX_HEADER_BYTES 65536u

typedef enum npy_dtype {
    NPY_F32,  /* '<f4' */
    NPY_F64,  /* '<f8' */
    NPY_I64,  /* '<i8' */
} npy_dtype;

typedef eng_err npy_error;

typedef struct npy_array {
    npy_dtype dtype;
    int n_dims;                   /* 0 for a scalar */
    int64_t shape[NPY_MAX_DIMS];  /* C order, outermost first */
    size_t n_elements;            /* product of shape (1 for a scalar) */
    size_t nbytes;                /* n_elements * element size */
    void *data;                   /* owned (malloc), aligned for dtype */
} npy_array;

/* Parses a .npy image of len bytes; the data is copied, buf is not kept.
 * label names it in error messages (NULL: "<memory>"). On success *out owns
 * its data (release with npy_free); on failure *out is zeroed. */
int npy_parse(npy_array *out, const void *buf, size_t len, const char *label,
              npy_error *err);
/* Reads and parses the file at path. Same ownership as npy_parse. */
int npy_load(npy_array *out, const char *path, npy_error *err);
/* Frees the data and zeroes *a. Accepts NULL and a zeroed array. */
void npy_free(npy_array *a);

/* Typed views of the data: NULL unless the array has that dtype. Borrowed. */
const float *npy_f32(const npy_array *a);
const double *npy_f64(const npy_array *a);
const int64_t *npy_i64(const npy_array *a);
/* Element i (flat C-order index) converted to double; 0 when out of range. */
double npy_get(const npy_array *a, size_t i);

/* '<f4', '<f8', '<i8', or "?" when out of range. */
const char *npy_dtype_name(npy_dtype t);
size_t npy_dtype_size(npy_dtype t);

#endif
