/* gguf_write.c - a minimal GGUF writer for the benchmarks; see
 * gguf_write.h. */
#include "gguf_write.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "gguf.h"

#define GW_ALIGN 32

void gw_u32(FILE *f, uint32_t v) { fwrite(&v, 4, 1, f); }
void gw_u64(FILE *f, uint64_t v) { fwrite(&v, 8, 1, f); }

void gw_str(FILE *f, const char *s)
{
    gw_u64(f, strlen(s));
    fwrite(s, 1, strlen(s), f);
}

void gw_kv_u32(FILE *f, const char *key, uint32_t v)
{
    gw_str(f, key);
    gw_u32(f, GGUF_TYPE_UINT32);
    gw_u32(f, v);
}

void gw_kv_f32(FILE *f, const char *key, float v)
{
    gw_str(f, key);
    gw_u32(f, GGUF_TYPE_FLOAT32);
    fwrite(&v, 4, 1, f);
}

void gw_kv_bool(FILE *f, const char *key, int v)
{
    unsigned char b = v != 0;
    gw_str(f, key);
    gw_u32(f, GGUF_TYPE_BOOL);
    fwrite(&b, 1, 1, f);
}

void gw_kv_str(FILE *f, const char *key, const char *v)
{
    gw_str(f, key);
    gw_u32(f, GGUF_TYPE_STRING);
    gw_str(f, v);
}

void gw_kv_str_array(FILE *f, const char *key, uint64_t n,
                     void (*name)(uint64_t i, char *buf, size_t cap))
{
    char buf[256];
    gw_str(f, key);
    gw_u32(f, GGUF_TYPE_ARRAY);
    gw_u32(f, GGUF_TYPE_STRING);
    gw_u64(f, n);
    for (uint64_t i = 0; i < n; i++) {
        name(i, buf, sizeof buf);
        gw_str(f, buf);
    }
}

void gw_add(gw_tensor *ts, int *nt, int n_dims, uint64_t ne0, uint64_t ne1, float value,
            float noise, const char *fmt, ...)
{
    gw_tensor *t = &ts[(*nt)++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    t->n_dims = n_dims;
    t->ne[0] = ne0;
    t->ne[1] = n_dims > 1 ? ne1 : 1;
    t->value = value;
    t->noise = noise;
}

/* ---- data ---------------------------------------------------------------- */

static uint64_t gw__rng = 0x2545F4914F6CDD1Dull;

/* U(-1, 1), xorshift64 */
static float gw__frand(void)
{
    gw__rng ^= gw__rng << 13;
    gw__rng ^= gw__rng >> 7;
    gw__rng ^= gw__rng << 17;
    return (float)((gw__rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

/* float to IEEE half, round-toward-zero on the mantissa; normal values in
 * range only (enough for Q8_0 scales) */
static uint16_t gw__f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000u;
    int32_t e = (int32_t)((u >> 23) & 0xff) - 127 + 15;
    if (e <= 0)
        return (uint16_t)sign;
    uint32_t m = (u >> 13) & 0x3ffu;
    return (uint16_t)(sign | ((uint32_t)e << 10) | m);
}

static int gw__is_q8(const gw_tensor *t, int q8)
{
    return q8 && t->n_dims == 2 && t->ne[0] % 32 == 0;
}

static uint64_t gw__bytes(const gw_tensor *t, int q8)
{
    uint64_t n = t->ne[0] * t->ne[1];
    return gw__is_q8(t, q8) ? n / 32 * 34 : n * 4;
}

static void gw__pad(FILE *f, uint64_t n)
{
    for (; n % GW_ALIGN; n++)
        fputc(0, f);
}

int gw_write(const char *path, uint64_t n_kv, gw_kv_fn kv, void *ctx, const gw_tensor *ts,
             int nt, int q8)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "gguf_write: %s: %s\n", path, strerror(errno));
        return -1;
    }
    fwrite("GGUF", 1, 4, f);
    gw_u32(f, 3);
    gw_u64(f, (uint64_t)nt);
    gw_u64(f, n_kv);
    kv(f, ctx);
    uint64_t off = 0;
    for (int i = 0; i < nt; i++) {
        gw_str(f, ts[i].name);
        gw_u32(f, (uint32_t)ts[i].n_dims);
        for (int d = 0; d < ts[i].n_dims; d++)
            gw_u64(f, ts[i].ne[d]);
        gw_u32(f, gw__is_q8(&ts[i], q8) ? GGUF_DTYPE_Q8_0 : GGUF_DTYPE_F32);
        gw_u64(f, off);
        off += (gw__bytes(&ts[i], q8) + GW_ALIGN - 1) / GW_ALIGN * GW_ALIGN;
    }
    gw__pad(f, (uint64_t)ftell(f));
    for (int i = 0; i < nt; i++) {
        const gw_tensor *t = &ts[i];
        uint64_t n = t->ne[0] * t->ne[1];
        if (gw__is_q8(t, q8)) {
            /* noise only: value is ignored for quantized weights */
            unsigned char blk[34];
            uint16_t d = gw__f16(t->noise / 127.0f);
            for (uint64_t b = 0; b < n / 32; b++) {
                blk[0] = (unsigned char)d;
                blk[1] = (unsigned char)(d >> 8);
                for (int j = 0; j < 32; j++)
                    blk[2 + j] = (unsigned char)(signed char)(gw__frand() * 127.0f);
                fwrite(blk, 1, 34, f);
            }
        } else {
            for (uint64_t j = 0; j < n; j++) {
                float v = t->value + (t->noise != 0.0f ? gw__frand() * t->noise : 0.0f);
                fwrite(&v, 4, 1, f);
            }
        }
        gw__pad(f, gw__bytes(t, q8));
    }
    if (ferror(f) | (fclose(f) != 0)) {
        fprintf(stderr, "gguf_write: %s: write failed\n", path);
        return -1;
    }
    return 0;
}
