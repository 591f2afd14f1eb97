/* weights.h - weight tensors as the architectures see them: a typed view of
 * a tensor inside a GGUF or safetensors file, and one F32 arena that every
 * weight of a model is converted into at load.
 *
 * wt_view   borrowed view of one stored tensor (F32, F16, BF16, Q8_0, Q4_0),
 *           shape outermost first (numpy order): a GGUF tensor with
 *           ne = [in, out] is the view [out, in], the same as a PyTorch
 *           nn.Linear weight in safetensors.
 * wt_arena  one allocation holding every converted weight. Loaders run their
 *           binding code twice: first on a counting arena (wt_take returns
 *           NULL and only adds up sizes; wt_convert is a no-op on NULL),
 *           then on the allocated arena. So the arena is sized exactly and
 *           shape checks run before anything big is allocated.
 *
 * Architectures compute in F32 from the arena (F16/BF16/Q8_0/Q4_0
 * dequantized), except the llama matrices that stay Q8_0 / Q4_0 (qmat.h).
 *
 * Errors: 0 or a negative errno (-EINVAL shape/type mismatch, -ENOMEM), with
 * a message naming the tensor in the caller's buffer.
 *
 * Threads: an arena is filled by the loader's thread, then read-only.
 */
#ifndef WEIGHTS_H
#define WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "safetensors.h"

typedef enum wt_dtype {
    WT_F32 = 0,
    WT_F16 = 1,
    WT_BF16 = 2,
    WT_Q8_0 = 3,   /* ggml blocks of 32: f16 scale + 32 int8 (34 bytes) */
    WT_Q4_0 = 4,   /* ggml blocks of 32: f16 scale + 16 bytes of nibbles (qmat.h) */
} wt_dtype;

#define WT_MAX_DIMS 4
#define WT_Q8_0_BLOCK 32

typedef struct wt_view {
    const char *name;            /* borrowed, for messages */
    wt_dtype type;
    int n_dims;                  /* 1..WT_MAX_DIMS */
    int64_t shape[WT_MAX_DIMS];  /* outermost first; unused dims 1 */
    int64_t n_elements;
    const void *data;            /* borrowed; may be unaligned (safetensors) */
} wt_view;

/* Static name of a dtype ("f32", "q8_0", ...). */
const char *wt_dtype_name(wt_dtype t);

/* Views of stored tensors. An unsupported stored type is -EINVAL naming the
 * tensor and its type. */
int wt_view_gguf(wt_view *out, const gguf_tensor *t, char *err, size_t errlen);
int wt_view_st(wt_view *out, const st_tensor *t, char *err, size_t errlen);

/* Checks that v is 2-D [rows, cols] (or 1-D [cols] when rows is 0);
 * -EINVAL "tensor <name>: shape [..], expected [..]" otherwise. */
int wt_expect(const wt_view *v, int64_t rows, int64_t cols, char *err,
              size_t errlen);

/* Converts v (any type) into dst as F32. With transpose, a 2-D [R, C] view
 * lands as [C, R] (HF Conv1D to nn.Linear layout). dst == NULL does
 * nothing (the counting pass). */
void wt_convert(float *dst, const wt_view *v, int transpose);

/* F32 to IEEE half (the writers' F16): round to nearest even, overflow to
 * inf, NaN stays NaN (quiet), subnormals rounded exactly. */
uint16_t wt_f16_from_f32(float f);

/* ---- the arena ---------------------------------------------------------- */

typedef struct wt_arena {
    float *base;      /* NULL while counting */
    size_t cap;       /* floats allocated */
    size_t used;      /* floats handed out (or counted) */
} wt_arena;

/* Starts a counting arena (no allocation). */
void wt_arena_count(wt_arena *a);
/* Allocates the counted size (64-byte aligned) and rewinds for the real
 * pass. -ENOMEM on failure. */
int wt_arena_alloc(wt_arena *a, char *err, size_t errlen);
/* Hands out n floats (rounded up to 16 for 64-byte alignment): NULL in the
 * counting pass. In the real pass more than was counted is a programming
 * error and returns NULL. */
float *wt_take(wt_arena *a, size_t n);
/* Frees the allocation. Accepts a zeroed arena. */
void wt_arena_free(wt_arena *a);

/* Dequantizes n elements (a multiple of 32) of Q8_0 blocks at src. */
void wt_dequant_q8_0(float *dst, const void *src, size_t n);

#endif
