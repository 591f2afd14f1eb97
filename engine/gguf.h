/* gguf.h - read-only GGUF (v2/v3) model files: metadata, tensor infos and
 * tensor data, mapped from disk or borrowed from a memory buffer.
 *
 * Format (little-endian): "GGUF", u32 version, u64 tensor count, u64 kv count,
 * the kv pairs (string key, u32 value type, value), the tensor infos (string
 * name, u32 n_dims, u64 dims[n_dims], u32 ggml type, u64 offset), padding up
 * to `general.alignment` (default 32), then the tensor data; each tensor's
 * offset is relative to the start of the data section. Strings are a u64
 * length and that many bytes (no NUL).
 *
 * Everything in the file is treated as hostile: each count, length and offset
 * is checked against the bytes that remain before it is used, and a file that
 * fails any check is rejected as a whole with a message naming the key,
 * tensor or field at fault. A gguf_file that was returned is fully validated:
 * every tensor's data lies inside the file, is aligned, and overlaps no other.
 *
 * Threads: gguf_open/gguf_parse/gguf_close are called by the owner. A
 * gguf_file is immutable after it is returned, so any number of threads may
 * call the accessors concurrently; none may race with gguf_close.
 *
 * Errors: functions that can fail return 0 or a negative GGUF_E* code and,
 * when err is not NULL, write a NUL-terminated message starting with "gguf: "
 * into err (truncated to errlen bytes).
 */
#ifndef GGUF_H
#define GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- error codes --------------------------------------------------------- */

enum {
    GGUF_OK = 0,
    GGUF_EIO = -1,       /* file cannot be opened, read or mapped */
    GGUF_EFORMAT = -2,   /* malformed, truncated or hostile file */
    GGUF_ENOMEM = -3,    /* allocation failed */
    GGUF_ENOTFOUND = -4, /* no such key or tensor */
    GGUF_ETYPE = -5,     /* key exists with another value type */
    GGUF_ERANGE = -6,    /* value does not fit the requested range or type */
    GGUF_EINVAL = -7,    /* bad argument from the caller */
};

/* Returns a static string describing a GGUF_E* code ("unknown error" else). */
const char *gguf_strerror(int code);

/* ---- metadata value types (numbering as in the GGUF spec) ---------------- */

typedef enum gguf_type {
    GGUF_TYPE_UINT8 = 0,
    GGUF_TYPE_INT8 = 1,
    GGUF_TYPE_UINT16 = 2,
    GGUF_TYPE_INT16 = 3,
    GGUF_TYPE_UINT32 = 4,
    GGUF_TYPE_INT32 = 5,
    GGUF_TYPE_FLOAT32 = 6,
    GGUF_TYPE_BOOL = 7,
    GGUF_TYPE_STRING = 8,
    GGUF_TYPE_ARRAY = 9,
    GGUF_TYPE_UINT64 = 10,
    GGUF_TYPE_INT64 = 11,
    GGUF_TYPE_FLOAT64 = 12,
    GGUF_TYPE_COUNT
} gguf_type;

/* Returns a static name ("uint32", "array", ...) or "invalid". */
const char *gguf_type_name(gguf_type t);

/* ---- tensor data types (numbering equals ggml's enum ggml_type) ---------- */

typedef enum gguf_dtype {
    GGUF_DTYPE_F32 = 0,
    GGUF_DTYPE_F16 = 1,
    GGUF_DTYPE_Q4_0 = 2,
    GGUF_DTYPE_Q4_1 = 3,
    GGUF_DTYPE_Q5_0 = 6,
    GGUF_DTYPE_Q5_1 = 7,
    GGUF_DTYPE_Q8_0 = 8,
    GGUF_DTYPE_Q8_1 = 9,
    GGUF_DTYPE_Q2_K = 10,
    GGUF_DTYPE_Q3_K = 11,
    GGUF_DTYPE_Q4_K = 12,
    GGUF_DTYPE_Q5_K = 13,
    GGUF_DTYPE_Q6_K = 14,
    GGUF_DTYPE_Q8_K = 15,
    GGUF_DTYPE_IQ2_XXS = 16,
    GGUF_DTYPE_IQ2_XS = 17,
    GGUF_DTYPE_IQ3_XXS = 18,
    GGUF_DTYPE_IQ1_S = 19,
    GGUF_DTYPE_IQ4_NL = 20,
    GGUF_DTYPE_IQ3_S = 21,
    GGUF_DTYPE_IQ2_S = 22,
    GGUF_DTYPE_IQ4_XS = 23,
    GGUF_DTYPE_I8 = 24,
    GGUF_DTYPE_I16 = 25,
    GGUF_DTYPE_I32 = 26,
    GGUF_DTYPE_I64 = 27,
    GGUF_DTYPE_F64 = 28,
    GGUF_DTYPE_IQ1_M = 29,
    GGUF_DTYPE_BF16 = 30,
    GGUF_DTYPE_TQ1_0 = 34,
    GGUF_DTYPE_TQ2_0 = 35,
    GGUF_DTYPE_MXFP4 = 39,
    GGUF_DTYPE_COUNT /* one past the largest value; not every value below is a type */
} gguf_dtype;

/* True when t is a tensor type this reader knows the layout of. */
bool gguf_dtype_valid(uint32_t t);
/* Static lower-case name ("f32", "q4_K", ...) or NULL for an unknown type. */
const char *gguf_dtype_name(uint32_t t);
/* Elements per block (1 for plain types, 32 or 256 for quantized ones);
 * 0 for an unknown type. */
uint32_t gguf_dtype_block_size(uint32_t t);
/* Bytes per block; 0 for an unknown type. */
uint32_t gguf_dtype_type_size(uint32_t t);
/* Bytes of one row of ne0 elements into *out. GGUF_EINVAL for an unknown
 * type, a negative ne0, or ne0 not a multiple of the block size;
 * GGUF_ERANGE when the size overflows size_t. */
int gguf_dtype_row_size(uint32_t t, int64_t ne0, size_t *out);
/* Bytes of a tensor of shape ne[0..3] into *out (same failures as row size,
 * plus GGUF_ERANGE when the element count overflows int64). */
int gguf_dtype_nbytes(uint32_t t, const int64_t ne[4], size_t *out);

/* ---- the file ------------------------------------------------------------ */

#define GGUF_MAX_DIMS 4
#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_KEY_LEN 65535 /* bytes, from the GGUF spec */
#define GGUF_MAX_NAME_LEN 255  /* bytes of a tensor name (ggml allows 63) */

typedef struct gguf_file gguf_file;

/* A string owned by the file: s is NUL-terminated, len excludes the NUL.
 * Metadata strings may contain embedded NUL bytes; keys and tensor names
 * never do. */
typedef struct gguf_str {
    const char *s;
    size_t len;
} gguf_str;

/* A metadata value, owned by the file. Array payloads are aligned native
 * copies: arr.data points at arr.n elements of the C type matching arr.type
 * (uint8_t ... double, bool, or gguf_str for GGUF_TYPE_STRING); it is NULL
 * when arr.n is 0. Nested arrays are rejected at parse time. */
typedef struct gguf_value {
    gguf_type type;
    union {
        uint8_t u8;
        int8_t i8;
        uint16_t u16;
        int16_t i16;
        uint32_t u32;
        int32_t i32;
        uint64_t u64;
        int64_t i64;
        float f32;
        double f64;
        bool b;
        gguf_str str;
        struct {
            gguf_type type; /* element type, never GGUF_TYPE_ARRAY */
            size_t n;       /* element count */
            const void *data;
        } arr;
    } v;
} gguf_value;

/* A tensor, owned by the file. */
typedef struct gguf_tensor {
    const char *name;        /* NUL-terminated, unique within the file */
    gguf_dtype type;         /* always gguf_dtype_valid() */
    uint32_t n_dims;         /* 1..GGUF_MAX_DIMS */
    int64_t ne[GGUF_MAX_DIMS]; /* elements per dim, ne[0] innermost (row
                                  length); dims past n_dims are 1 */
    int64_t n_elements;      /* product of ne */
    size_t nbytes;           /* bytes of data */
    uint64_t offset;         /* from the start of the data section */
    const void *data;        /* nbytes bytes inside the mapping / buffer */
} gguf_tensor;

/* Maps the file at path read-only and parses it. On success *out is a new
 * gguf_file that owns the mapping (free with gguf_close); on failure *out is
 * NULL and err names the path and the fault. Tensor data pointers are
 * aligned in memory to min(alignment, page size). The file must not be
 * truncated on disk while it is open (reads past the new end raise SIGBUS). */
int gguf_open(gguf_file **out, const char *path, char *err, size_t errlen);

/* Parses size bytes at data. Borrows data: it must stay valid and unchanged
 * until gguf_close. Tensor data pointers are aligned relative to data. */
int gguf_parse(gguf_file **out, const void *data, size_t size, char *err,
               size_t errlen);

/* Frees the file, its metadata and (for gguf_open) its mapping. Accepts NULL.
 * Every pointer obtained from the file becomes invalid. */
void gguf_close(gguf_file *f);

uint32_t gguf_version(const gguf_file *f);     /* 2 or 3 */
size_t gguf_alignment(const gguf_file *f);     /* power of two */
size_t gguf_data_offset(const gguf_file *f);   /* file offset of data section */
size_t gguf_file_size(const gguf_file *f);     /* bytes of the file / buffer */

/* ---- metadata: iteration and lookup -------------------------------------- */

/* Number of kv pairs; they keep file order, indexed 0..n-1. */
size_t gguf_n_kv(const gguf_file *f);
/* Key of pair i (NUL-terminated, owned by f), or NULL when i is out of range. */
const char *gguf_kv_key(const gguf_file *f, size_t i);
/* Value of pair i (owned by f), or NULL when i is out of range. */
const gguf_value *gguf_kv_value(const gguf_file *f, size_t i);
/* Index of key, or GGUF_ENOTFOUND. */
int64_t gguf_find_key(const gguf_file *f, const char *key);
/* Value of key (owned by f), or NULL when absent. */
const gguf_value *gguf_find_value(const gguf_file *f, const char *key);

/* Typed getters: *out receives the value of key when it has exactly that
 * type. GGUF_ENOTFOUND when absent (callers with a default keep it),
 * GGUF_ETYPE when of another type; err then names key and types. */
int gguf_get_u8(const gguf_file *f, const char *key, uint8_t *out, char *err, size_t errlen);
int gguf_get_i8(const gguf_file *f, const char *key, int8_t *out, char *err, size_t errlen);
int gguf_get_u16(const gguf_file *f, const char *key, uint16_t *out, char *err, size_t errlen);
int gguf_get_i16(const gguf_file *f, const char *key, int16_t *out, char *err, size_t errlen);
int gguf_get_u32(const gguf_file *f, const char *key, uint32_t *out, char *err, size_t errlen);
int gguf_get_i32(const gguf_file *f, const char *key, int32_t *out, char *err, size_t errlen);
int gguf_get_u64(const gguf_file *f, const char *key, uint64_t *out, char *err, size_t errlen);
int gguf_get_i64(const gguf_file *f, const char *key, int64_t *out, char *err, size_t errlen);
int gguf_get_f32(const gguf_file *f, const char *key, float *out, char *err, size_t errlen);
int gguf_get_f64(const gguf_file *f, const char *key, double *out, char *err, size_t errlen);
int gguf_get_bool(const gguf_file *f, const char *key, bool *out, char *err, size_t errlen);
/* *out borrows the file's string (NUL-terminated); len may be NULL. */
int gguf_get_str(const gguf_file *f, const char *key, const char **out, size_t *len,
                 char *err, size_t errlen);

/* Hyper-parameters: accepts any integer type (uint8..int64; converters differ
 * in widths) and checks min <= value <= max, else GGUF_ERANGE naming the key
 * and the bounds. Use INT64_MIN/INT64_MAX for no bound. */
int gguf_get_int(const gguf_file *f, const char *key, int64_t min, int64_t max,
                 int64_t *out, char *err, size_t errlen);
/* Accepts float32 or float64. */
int gguf_get_float(const gguf_file *f, const char *key, double *out, char *err,
                   size_t errlen);

/* Array of elements of type elem: *data borrows the file's aligned copy
 * (uint8_t ... double, bool, or gguf_str elements; NULL when empty), *n the
 * count. GGUF_ETYPE when key is not an array or has another element type. */
int gguf_get_arr(const gguf_file *f, const char *key, gguf_type elem,
                 const void **data, size_t *n, char *err, size_t errlen);

/* ---- tensors ------------------------------------------------------------- */

/* Number of tensors; they keep file order, indexed 0..n-1. */
size_t gguf_n_tensors(const gguf_file *f);
/* Tensor i (owned by f), or NULL when out of range. */
const gguf_tensor *gguf_tensor_at(const gguf_file *f, size_t i);
/* Tensor named name (owned by f), or NULL when absent. */
const gguf_tensor *gguf_find_tensor(const gguf_file *f, const char *name);

#endif
