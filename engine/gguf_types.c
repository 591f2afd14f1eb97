/* gguf_types.c - the tables behind GGUF: metadata value types, ggml tensor
 * types (block size, bytes per block) and the size arithmetic built on them.
 * Pure functions over static tables; any thread. */
#include "gguf.h"

#include <limits.h>

/* ---- metadata value types ------------------------------------------------ */

static const char *const gguf__type_names[GGUF_TYPE_COUNT] = {
    [GGUF_TYPE_UINT8] = "uint8",     [GGUF_TYPE_INT8] = "int8",
    [GGUF_TYPE_UINT16] = "uint16",   [GGUF_TYPE_INT16] = "int16",
    [GGUF_TYPE_UINT32] = "uint32",   [GGUF_TYPE_INT32] = "int32",
    [GGUF_TYPE_FLOAT32] = "float32", [GGUF_TYPE_BOOL] = "bool",
    [GGUF_TYPE_STRING] = "string",   [GGUF_TYPE_ARRAY] = "array",
    [GGUF_TYPE_UINT64] = "uint64",   [GGUF_TYPE_INT64] = "int64",
    [GGUF_TYPE_FLOAT64] = "float64",
};

const char *gguf_type_name(gguf_type t) {
    if ((unsigned)t >= GGUF_TYPE_COUNT) return "invalid";
    return gguf__type_names[t];
}

const char *gguf_strerror(int code) {
    switch (code) {
    case GGUF_OK: return "ok";
    case GGUF_EIO: return "cannot read file";
    case GGUF_EFORMAT: return "malformed GGUF file";
    case GGUF_ENOMEM: return "out of memory";
    case GGUF_ENOTFOUND: return "not found";
    case GGUF_ETYPE: return "wrong value type";
    case GGUF_ERANGE: return "value out of range";
    case GGUF_EINVAL: return "invalid argument";
    default: return "unknown error";
    }
}

/* ---- ggml tensor types --------------------------------------------------- */

/* X(enum, name, elements per block, bytes per block). Sizes follow ggml's
 * block structs (ggml-common.h); the gaps (4, 5, 31..33, 36..38) are types
 * ggml has removed from GGUF files. */
#define GGUF__DTYPES(X)                      \
    X(GGUF_DTYPE_F32, "f32", 1, 4)           \
    X(GGUF_DTYPE_F16, "f16", 1, 2)           \
    X(GGUF_DTYPE_Q4_0, "q4_0", 32, 18)       \
    X(GGUF_DTYPE_Q4_1, "q4_1", 32, 20)       \
    X(GGUF_DTYPE_Q5_0, "q5_0", 32, 22)       \
    X(GGUF_DTYPE_Q5_1, "q5_1", 32, 24)       \
    X(GGUF_DTYPE_Q8_0, "q8_0", 32, 34)       \
    X(GGUF_DTYPE_Q8_1, "q8_1", 32, 36)       \
    X(GGUF_DTYPE_Q2_K, "q2_K", 256, 84)      \
    X(GGUF_DTYPE_Q3_K, "q3_K", 256, 110)     \
    X(GGUF_DTYPE_Q4_K, "q4_K", 256, 144)     \
    X(GGUF_DTYPE_Q5_K, "q5_K", 256, 176)     \
    X(GGUF_DTYPE_Q6_K, "q6_K", 256, 210)     \
    X(GGUF_DTYPE_Q8_K, "q8_K", 256, 292)     \
    X(GGUF_DTYPE_IQ2_XXS, "iq2_xxs", 256, 66) \
    X(GGUF_DTYPE_IQ2_XS, "iq2_xs", 256, 74)  \
    X(GGUF_DTYPE_IQ3_XXS, "iq3_xxs", 256, 98) \
    X(GGUF_DTYPE_IQ1_S, "iq1_s", 256, 50)    \
    X(GGUF_DTYPE_IQ4_NL, "iq4_nl", 32, 18)   \
    X(GGUF_DTYPE_IQ3_S, "iq3_s", 256, 110)   \
    X(GGUF_DTYPE_IQ2_S, "iq2_s", 256, 82)    \
    X(GGUF_DTYPE_IQ4_XS, "iq4_xs", 256, 136) \
    X(GGUF_DTYPE_I8, "i8", 1, 1)             \
    X(GGUF_DTYPE_I16, "i16", 1, 2)           \
    X(GGUF_DTYPE_I32, "i32", 1, 4)           \
    X(GGUF_DTYPE_I64, "i64", 1, 8)           \
    X(GGUF_DTYPE_F64, "f64", 1, 8)           \
    X(GGUF_DTYPE_IQ1_M, "iq1_m", 256, 56)    \
    X(GGUF_DTYPE_BF16, "bf16", 1, 2)         \
    X(GGUF_DTYPE_TQ1_0, "tq1_0", 256, 54)    \
    X(GGUF_DTYPE_TQ2_0, "tq2_0", 256, 66)    \
    X(GGUF_DTYPE_MXFP4, "mxfp4", 32, 17)

typedef struct gguf__dtype_info {
    const char *name; /* NULL: not a type */
    uint32_t block_size; /* elements per block */
    uint32_t type_size;  /* bytes per block */
} gguf__dtype_info;

static const gguf__dtype_info gguf__dtypes[GGUF_DTYPE_COUNT] = {
#define GGUF__DTYPE_ROW(e, name, bs, ts) [e] = {name, bs, ts},
    GGUF__DTYPES(GGUF__DTYPE_ROW)
#undef GGUF__DTYPE_ROW
};

bool gguf_dtype_valid(uint32_t t) {
    return t < GGUF_DTYPE_COUNT && gguf__dtypes[t].name != NULL;
}

const char *gguf_dtype_name(uint32_t t) {
    return gguf_dtype_valid(t) ? gguf__dtypes[t].name : NULL;
}

uint32_t gguf_dtype_block_size(uint32_t t) {
    return gguf_dtype_valid(t) ? gguf__dtypes[t].block_size : 0;
}

uint32_t gguf_dtype_type_size(uint32_t t) {
    return gguf_dtype_valid(t) ? gguf__dtypes[t].type_size : 0;
}

int gguf_dtype_row_size(uint32_t t, int64_t ne0, size_t *out) {
    if (!gguf_dtype_valid(t) || ne0 < 0) return GGUF_EINVAL;
    uint64_t bs = gguf__dtypes[t].block_size, ts = gguf__dtypes[t].type_size;
    if ((uint64_t)ne0 % bs != 0) return GGUF_EINVAL;
    uint64_t blocks = (uint64_t)ne0 / bs;
    if (blocks > SIZE_MAX / ts) return GGUF_ERANGE;
    *out = (size_t)(blocks * ts);
    return GGUF_OK;
}

int gguf_dtype_nbytes(uint32_t t, const int64_t ne[4], size_t *out) {
    if (!gguf_dtype_valid(t)) return GGUF_EINVAL;
    /* The product of the non-zero dims must fit int64 (so a zero dim cannot
     * hide an overflowing shape); rows = ne1*ne2*ne3 then fits as well. */
    int64_t nz = 1, rows = 1;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        if (ne[d] < 0) return GGUF_EINVAL;
        if (ne[d] == 0) continue;
        if (nz > INT64_MAX / ne[d]) return GGUF_ERANGE;
        nz *= ne[d];
        if (d > 0) rows *= ne[d];
    }
    size_t row;
    int rc = gguf_dtype_row_size(t, ne[0], &row);
    if (rc != GGUF_OK) return rc;
    if (ne[1] == 0 || ne[2] == 0 || ne[3] == 0) rows = 0;
    if (rows != 0 && row > SIZE_MAX / (uint64_t)rows) return GGUF_ERANGE;
    *out = row * (size_t)rows;
    return GGUF_OK;
}
