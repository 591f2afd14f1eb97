/* weights.c - typed tensor views and the F32 weight arena (see weights.h). */
#include "weights.h"

#include "qmat.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WT__ALIGN_FLOATS 16 /* 64 bytes */

const char *wt_dtype_name(wt_dtype t)
{
    switch (t) {
    case WT_F32: return "f32";
    case WT_F16: return "f16";
    case WT_BF16: return "bf16";
    case WT_Q8_0: return "q8_0";
    case WT_Q4_0: return "q4_0";
    }
    return "?";
}

static int wt__fail(char *err, size_t errlen, int code, const char *name,
                    const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "tensor %s: %s", name ? name : "?", what);
    return code;
}

int wt_view_gguf(wt_view *out, const gguf_tensor *t, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->name = t->name;
    switch (t->type) {
    case GGUF_DTYPE_F32: out->type = WT_F32; break;
    case GGUF_DTYPE_F16: out->type = WT_F16; break;
    case GGUF_DTYPE_BF16: out->type = WT_BF16; break;
    case GGUF_DTYPE_Q8_0: out->type = WT_Q8_0; break;
    case GGUF_DTYPE_Q4_0: out->type = WT_Q4_0; break;
    default: {
        char msg[96];
        const char *n = gguf_dtype_name(t->type);
        snprintf(msg, sizeof(msg), "type %s is not supported (f32, f16, bf16, q8_0, q4_0)",
                 n ? n : "?");
        return wt__fail(err, errlen, -EINVAL, t->name, msg);
    }
    }
    if (t->n_dims < 1 || t->n_dims > WT_MAX_DIMS)
        return wt__fail(err, errlen, -EINVAL, t->name, "bad number of dims");
    out->n_dims = (int)t->n_dims;
    for (int i = 0; i < WT_MAX_DIMS; i++)
        out->shape[i] = 1;
    for (uint32_t i = 0; i < t->n_dims; i++)
        out->shape[i] = t->ne[t->n_dims - 1 - i];
    out->n_elements = t->n_elements;
    out->data = t->data;
    return 0;
}

int wt_view_st(wt_view *out, const st_tensor *t, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    out->name = t->name;
    switch (t->dtype) {
    case ST_F32: out->type = WT_F32; break;
    case ST_F16: out->type = WT_F16; break;
    case ST_BF16: out->type = WT_BF16; break;
    default: {
        char msg[96];
        snprintf(msg, sizeof(msg), "dtype %s is not supported (F32, F16, BF16)",
                 st_dtype_name(t->dtype));
        return wt__fail(err, errlen, -EINVAL, t->name, msg);
    }
    }
    if (t->n_dims < 1 || t->n_dims > WT_MAX_DIMS)
        return wt__fail(err, errlen, -EINVAL, t->name, "bad number of dims");
    out->n_dims = t->n_dims;
    for (int i = 0; i < WT_MAX_DIMS; i++)
        out->shape[i] = i < t->n_dims ? t->shape[i] : 1;
    out->n_elements = (int64_t)t->n_elements;
    out->data = t->data;
    return 0;
}

int wt_expect(const wt_view *v, int64_t rows, int64_t cols, char *err,
              size_t errlen)
{
    int ok = rows == 0 ? (v->n_dims == 1 && v->shape[0] == cols)
                       : (v->n_dims == 2 && v->shape[0] == rows && v->shape[1] == cols);
    if (ok)
        return 0;
    char got[64] = "[", want[64];
    for (int i = 0; i < v->n_dims; i++) {
        size_t l = strlen(got);
        snprintf(got + l, sizeof(got) - l, "%s%lld", i ? ", " : "",
                 (long long)v->shape[i]);
    }
    size_t l = strlen(got);
    snprintf(got + l, sizeof(got) - l, "]");
    if (rows == 0)
        snprintf(want, sizeof(want), "[%lld]", (long long)cols);
    else
        snprintf(want, sizeof(want), "[%lld, %lld]", (long long)rows, (long long)cols);
    if (err && errlen)
        snprintf(err, errlen, "tensor %s: shape %s, expected %s", v->name, got, want);
    return -EINVAL;
}

static uint16_t wt__u16(const unsigned char *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

void wt_dequant_q8_0(float *dst, const void *src, size_t n)
{
    const unsigned char *p = src;
    for (size_t b = 0; b < n / WT_Q8_0_BLOCK; b++) {
        const unsigned char *blk = p + b * 34;
        float d = st_f16_to_f32(wt__u16(blk));
        const signed char *q = (const signed char *)(blk + 2);
        for (int i = 0; i < WT_Q8_0_BLOCK; i++)
            dst[b * WT_Q8_0_BLOCK + i] = d * (float)q[i];
    }
}

/* Element i of a view, any type (the slow path, for transposes). */
static float wt__elem(const wt_view *v, size_t i)
{
    const unsigned char *p = v->data;
    switch (v->type) {
    case WT_F32: {
        float f;
        memcpy(&f, p + i * 4, 4);
        return f;
    }
    case WT_F16: return st_f16_to_f32(wt__u16(p + i * 2));
    case WT_BF16: return st_bf16_to_f32(wt__u16(p + i * 2));
    case WT_Q8_0: {
        const unsigned char *blk = p + (i / WT_Q8_0_BLOCK) * 34;
        return st_f16_to_f32(wt__u16(blk)) *
               (float)((const signed char *)(blk + 2))[i % WT_Q8_0_BLOCK];
    }
    case WT_Q4_0: { /* byte j: element j low, element j + 16 high */
        const unsigned char *blk = p + (i / 32) * 18;
        size_t j = i % 32;
        int q = j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4;
        return st_f16_to_f32(wt__u16(blk)) * (float)(q - 8);
    }
    }
    return 0.0f;
}

void wt_convert(float *dst, const wt_view *v, int transpose)
{
    if (!dst)
        return;
    size_t n = (size_t)v->n_elements;
    if (transpose && v->n_dims == 2) {
        size_t R = (size_t)v->shape[0], C = (size_t)v->shape[1];
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++)
                dst[c * R + r] = wt__elem(v, r * C + c);
        return;
    }
    switch (v->type) {
    case WT_F32: memcpy(dst, v->data, n * sizeof(float)); break;
    case WT_Q8_0: wt_dequant_q8_0(dst, v->data, n); break;
    case WT_Q4_0: qm_dequantize_row(QM_Q4_0, v->data, (int)n, dst); break;
    default:
        for (size_t i = 0; i < n; i++)
            dst[i] = wt__elem(v, i);
        break;
    }
}

/* ---- the arena ---------------------------------------------------------- */

void wt_arena_count(wt_arena *a)
{
    memset(a, 0, sizeof(*a));
}

int wt_arena_alloc(wt_arena *a, char *err, size_t errlen)
{
    size_t n = a->used ? a->used : WT__ALIGN_FLOATS;
    void *p = NULL;
    if (n > SIZE_MAX / sizeof(float) ||
        posix_memalign(&p, 64, n * sizeof(float)) != 0) {
        if (err && errlen)
            snprintf(err, errlen, "weights: cannot allocate %zu bytes", n * sizeof(float));
        return -ENOMEM;
    }
    a->base = p;
    a->cap = n;
    a->used = 0;
    return 0;
}

float *wt_take(wt_arena *a, size_t n)
{
    size_t r = (n + WT__ALIGN_FLOATS - 1) / WT__ALIGN_FLOATS * WT__ALIGN_FLOATS;
    if (!a->base) {
        a->used += r;
        return NULL;
    }
    if (r > a->cap - a->used)
        return NULL;
    float *p = a->base + a->used;
    a->used += r;
    return p;
}

void wt_arena_free(wt_arena *a)
{
    if (!a)
        return;
    free(a->base);
    memset(a, 0, sizeof(*a));
}

/* F32 to IEEE half, round to nearest even; overflow to inf, NaN stays NaN
 * (quiet), subnormals rounded exactly. */
uint16_t wt_f16_from_f32(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* >= 65520 rounds to inf */
    if (a >= 0x38800000u) { /* normal: rebias 127 -> 15, round the 13 dropped bits */
        uint32_t r = a - 0x38000000u;
        return (uint16_t)(sign | ((r + 0xfffu + ((r >> 13) & 1u)) >> 13));
    }
    if (a <= 0x33000000u) return sign; /* at most half the smallest subnormal */
    /* subnormal: the value in units of 2^-24 is m >> shift, rounded; a carry
     * into 0x400 is exactly the smallest normal's encoding */
    uint32_t m = (a & 0x7fffffu) | 0x800000u, shift = 126u - (a >> 23);
    uint32_t r = m >> shift, rem = m & ((1u << shift) - 1u), half = 1u << (shift - 1u);
    if (rem > half || (rem == half && (r & 1u))) r++;
    return (uint16_t)(sign | r);
}
