/* test_image.c - image decoding (PNG/JPEG built here with libpng/libjpeg
 * writers, every truncation, hostile headers, limits, base64 and data URLs)
 * and the CLIP preprocessing against ../shared/conformance/clip-tiny. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>
#include <png.h>

#include "image.h"
#include "npy.h"

/* ------------------------------------------------------------------------ */
/* In-memory writers                                                        */
/* ------------------------------------------------------------------------ */

typedef struct membuf {
    unsigned char *p;
    size_t len, cap;
} membuf;

static void mb_put(membuf *m, const void *d, size_t n) {
    if (m->len + n > m->cap) {
        m->cap = (m->len + n) * 2 + 64;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->len, d, n);
    m->len += n;
}

static void png_w(png_structp png, png_bytep d, size_t n) { mb_put(png_get_io_ptr(png), d, n); }
static void png_flush_noop(png_structp png) { (void)png; }

/* A PNG of w x h with the given color type / depth / interlace; rows are
 * packed as libpng expects (16-bit big-endian). plte/trns optional. */
static unsigned char *mk_png(int w, int h, int ctype, int depth, int interlace,
                             const unsigned char *pix, const png_color *plte, int nplte,
                             const unsigned char *trns, int ntrns, size_t *len) {
    membuf m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    assert_non_null(info);
    if (setjmp(png_jmpbuf(png))) fail_msg("libpng write failed");
    png_set_write_fn(png, &m, png_w, png_flush_noop);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype, interlace,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    if (plte) png_set_PLTE(png, info, plte, nplte);
    if (trns) png_set_tRNS(png, info, trns, ntrns, NULL);
    png_write_info(png, info);
    int ch = ctype == PNG_COLOR_TYPE_RGB ? 3 : ctype == PNG_COLOR_TYPE_RGBA ? 4
           : ctype == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    size_t rowbytes = ((size_t)w * ch * depth + 7) / 8;
    png_bytep *rows = malloc(sizeof *rows * (size_t)h);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)pix + (size_t)y * rowbytes;
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    *len = m.len;
    return m.p;
}

static unsigned char *mk_jpeg(int w, int h, int comps, J_COLOR_SPACE cs, const unsigned char *pix,
                              size_t *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr jerr;
    unsigned char *buf = NULL;
    unsigned long blen = 0;
    c.err = jpeg_std_error(&jerr);
    jpeg_create_compress(&c);
    jpeg_mem_dest(&c, &buf, &blen);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comps;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 95, TRUE);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)pix + (size_t)c.next_scanline * w * comps;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    *len = blen;
    return buf;
}

/* 6x5 test pattern: pixel (x, y) = (40x + 7, 50y + 3, 255 - 30x - 20y). */
#define PW 6
#define PH 5
static void pattern_rgb(unsigned char *p) {
    for (int y = 0; y < PH; y++)
        for (int x = 0; x < PW; x++) {
            unsigned char *o = p + (y * PW + x) * 3;
            o[0] = (unsigned char)(40 * x + 7);
            o[1] = (unsigned char)(50 * y + 3);
            o[2] = (unsigned char)(255 - 30 * x - 20 * y);
        }
}

static void expect_pixels(const image_u8 *img, const unsigned char *rgb, int w, int h) {
    assert_int_equal(img->w, w);
    assert_int_equal(img->h, h);
    assert_memory_equal(img->rgb, rgb, (size_t)w * h * 3);
}

static const image_limits no_limits = {0, 0};

/* ------------------------------------------------------------------------ */
/* PNG variants                                                             */
/* ------------------------------------------------------------------------ */

static void test_png_rgb_and_interlaced(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3];
    pattern_rgb(rgb);
    for (int il = 0; il < 2; il++) {
        size_t len;
        unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_RGB, 8,
                                  il ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, rgb, NULL, 0,
                                  NULL, 0, &len);
        image_u8 img;
        eng_err err = {0};
        assert_int_equal(image_decode(f, len, &no_limits, &img, &err), 0);
        expect_pixels(&img, rgb, PW, PH);
        image_free(&img);
        image_free(&img); /* idempotent */
        image_free(NULL);
        free(f);
    }
}

static void test_png_rgba_drops_alpha(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3], rgba[PW * PH * 4];
    pattern_rgb(rgb);
    for (int i = 0; i < PW * PH; i++) {
        memcpy(rgba + i * 4, rgb + i * 3, 3);
        rgba[i * 4 + 3] = (unsigned char)(i * 9); /* includes fully transparent */
    }
    size_t len;
    unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_RGBA, 8, 0, rgba, NULL, 0, NULL, 0, &len);
    image_u8 img;
    eng_err err = {0};
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    expect_pixels(&img, rgb, PW, PH); /* no blending */
    image_free(&img);
    free(f);
}

static void test_png_grey_variants(void **state) {
    (void)state;
    unsigned char g[PW * PH], ga[PW * PH * 2], want[PW * PH * 3];
    for (int i = 0; i < PW * PH; i++) {
        g[i] = (unsigned char)(i * 8 + 1);
        ga[i * 2] = g[i];
        ga[i * 2 + 1] = (unsigned char)(255 - i);
        want[i * 3] = want[i * 3 + 1] = want[i * 3 + 2] = g[i];
    }
    size_t len;
    image_u8 img;
    eng_err err = {0};
    unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_GRAY, 8, 0, g, NULL, 0, NULL, 0, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    expect_pixels(&img, want, PW, PH);
    image_free(&img);
    free(f);
    f = mk_png(PW, PH, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, ga, NULL, 0, NULL, 0, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    expect_pixels(&img, want, PW, PH);
    image_free(&img);
    free(f);

    /* 1-bit grey: 8x2, alternating bits -> 0 / 255 */
    unsigned char bits[2] = {0xAA, 0x0F};
    f = mk_png(8, 2, PNG_COLOR_TYPE_GRAY, 1, 0, bits, NULL, 0, NULL, 0, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    assert_int_equal(img.w, 8);
    for (int x = 0; x < 8; x++) {
        int b0 = (0xAA >> (7 - x)) & 1, b1 = (0x0F >> (7 - x)) & 1;
        assert_int_equal(img.rgb[x * 3 + 1], b0 ? 255 : 0);
        assert_int_equal(img.rgb[(8 + x) * 3 + 2], b1 ? 255 : 0);
    }
    image_free(&img);
    free(f);
}

static void test_png_palette(void **state) {
    (void)state;
    png_color plte[4] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {10, 20, 30}};
    unsigned char trns[4] = {0, 128, 255, 255};
    unsigned char idx[PW * PH], want[PW * PH * 3];
    for (int i = 0; i < PW * PH; i++) {
        idx[i] = (unsigned char)(i % 4);
        want[i * 3] = plte[i % 4].red;
        want[i * 3 + 1] = plte[i % 4].green;
        want[i * 3 + 2] = plte[i % 4].blue;
    }
    for (int t = 0; t < 2; t++) {
        size_t len;
        unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_PALETTE, 8, 0, idx, plte, 4,
                                  t ? trns : NULL, t ? 4 : 0, &len);
        image_u8 img;
        eng_err err = {0};
        if (image_decode(f, len, NULL, &img, &err) != 0) fail_msg("%s", err.msg);
        expect_pixels(&img, want, PW, PH);
        image_free(&img);
        free(f);
    }
    /* 2-bit palette */
    unsigned char packed[2] = {0x1B, 0xE4}; /* indices 0,1,2,3 / 3,2,1,0 */
    size_t len;
    unsigned char *f = mk_png(4, 2, PNG_COLOR_TYPE_PALETTE, 2, 0, packed, plte, 4, NULL, 0, &len);
    image_u8 img;
    eng_err err = {0};
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    assert_int_equal(img.rgb[1 * 3 + 1], 255);       /* (1,0) idx 1 green */
    assert_int_equal(img.rgb[(4 + 0) * 3 + 0], 10);  /* (0,1) idx 3 */
    image_free(&img);
    free(f);
}

static void test_png_16bit(void **state) {
    (void)state;
    unsigned char rgb16[PW * PH * 6], want[PW * PH * 3];
    for (int i = 0; i < PW * PH * 3; i++) {
        rgb16[i * 2] = (unsigned char)(i * 5);       /* high byte */
        rgb16[i * 2 + 1] = (unsigned char)(255 - i); /* low byte: ignored */
        want[i] = (unsigned char)(i * 5);
    }
    size_t len;
    unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_RGB, 16, PNG_INTERLACE_ADAM7, rgb16, NULL,
                              0, NULL, 0, &len);
    image_u8 img;
    eng_err err = {0};
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    expect_pixels(&img, want, PW, PH);
    image_free(&img);
    free(f);
    /* 16-bit RGBA and grey */
    unsigned char rgba16[PW * PH * 8];
    for (int i = 0; i < PW * PH; i++) {
        memcpy(rgba16 + i * 8, rgb16 + i * 6, 6);
        rgba16[i * 8 + 6] = rgba16[i * 8 + 7] = (unsigned char)i;
    }
    f = mk_png(PW, PH, PNG_COLOR_TYPE_RGBA, 16, 0, rgba16, NULL, 0, NULL, 0, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    expect_pixels(&img, want, PW, PH);
    image_free(&img);
    free(f);
    unsigned char g16[PW * PH * 2];
    for (int i = 0; i < PW * PH; i++) {
        g16[i * 2] = (unsigned char)(i * 7);
        g16[i * 2 + 1] = 0xff;
    }
    f = mk_png(PW, PH, PNG_COLOR_TYPE_GRAY, 16, 0, g16, NULL, 0, NULL, 0, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    for (int i = 0; i < PW * PH; i++) assert_int_equal(img.rgb[i * 3 + 2], i * 7);
    image_free(&img);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */
/* ------------------------------------------------------------------------ */

static void test_jpeg_rgb_grey_cmyk(void **state) {
    (void)state;
    enum { W = 16, H = 16 };
    unsigned char rgb[W * H * 3], g[W * H], cmyk[W * H * 4];
    for (int i = 0; i < W * H; i++) {
        rgb[i * 3] = 200, rgb[i * 3 + 1] = 100, rgb[i * 3 + 2] = 50;
        g[i] = 128;
        cmyk[i * 4] = cmyk[i * 4 + 1] = cmyk[i * 4 + 2] = cmyk[i * 4 + 3] = 60;
    }
    size_t len;
    image_u8 img;
    eng_err err = {0};
    unsigned char *f = mk_jpeg(W, H, 3, JCS_RGB, rgb, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    assert_int_equal(img.w, W);
    assert_int_equal(img.h, H);
    for (int i = 0; i < W * H * 3; i++) assert_true(abs(img.rgb[i] - rgb[i]) <= 3);
    image_free(&img);
    free(f);
    f = mk_jpeg(W, H, 1, JCS_GRAYSCALE, g, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), 0);
    for (int i = 0; i < W * H * 3; i++) assert_true(abs(img.rgb[i] - 128) <= 1);
    image_free(&img);
    free(f);
    f = mk_jpeg(W, H, 4, JCS_CMYK, cmyk, &len);
    assert_int_equal(image_decode(f, len, NULL, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "CMYK"));
    assert_null(img.rgb);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Hostile data                                                             */
/* ------------------------------------------------------------------------ */

static void check_all_prefixes_fail(const unsigned char *f, size_t len, const char *what) {
    for (size_t n = 0; n < len; n++) {
        image_u8 img;
        eng_err err = {0};
        int rc = image_decode(f, n, NULL, &img, &err);
        if (rc != -EINVAL) fail_msg("%s prefix %zu/%zu: rc %d", what, n, len, rc);
        assert_int_equal(err.code, -EINVAL);
        assert_true(err.msg[0] != '\0');
        assert_null(img.rgb);
    }
}

static void test_truncated_and_corrupt(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3];
    pattern_rgb(rgb);
    size_t plen, jlen;
    unsigned char *p = mk_png(PW, PH, PNG_COLOR_TYPE_RGB, 8, PNG_INTERLACE_ADAM7, rgb, NULL, 0,
                              NULL, 0, &plen);
    unsigned char big[24 * 24 * 3];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (unsigned char)(i * 31);
    unsigned char *j = mk_jpeg(24, 24, 3, JCS_RGB, big, &jlen);
    check_all_prefixes_fail(p, plen, "png");
    check_all_prefixes_fail(j, jlen, "jpeg");
    /* a truncation message names the problem */
    image_u8 img;
    eng_err err = {0};
    assert_int_equal(image_decode(p, plen - 20, NULL, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "png"));
    assert_int_equal(image_decode(j, jlen - 20, NULL, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "truncated"));
    /* every single-byte corruption: succeed or fail cleanly (ASan watches) */
    for (int k = 0; k < 2; k++) {
        unsigned char *f = k ? j : p;
        size_t len = k ? jlen : plen;
        unsigned char *c = malloc(len);
        for (size_t i = 0; i < len; i++) {
            memcpy(c, f, len);
            c[i] ^= (unsigned char)(0x5a + i);
            int rc = image_decode(c, len, NULL, &img, &err);
            if (rc == 0) {
                assert_true(img.w > 0 && img.h > 0);
                image_free(&img);
            } else {
                assert_int_equal(rc, -EINVAL);
                assert_null(img.rgb);
            }
        }
        free(c);
    }
    /* not an image */
    assert_int_equal(image_decode("GIF89a....", 10, NULL, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not recognised"));
    free(p);
    free(j);
}

static uint32_t crc32_of(const unsigned char *d, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= d[i];
        for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1)));
    }
    return ~c;
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24), p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8), p[3] = (unsigned char)v;
}

static void test_limits(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3];
    pattern_rgb(rgb);
    size_t len;
    unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_RGB, 8, 0, rgb, NULL, 0, NULL, 0, &len);
    image_u8 img;
    eng_err err = {0};
    image_limits lim = {len - 1, 0};
    assert_int_equal(image_decode(f, len, &lim, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "limit"));
    lim.max_bytes = len;
    assert_int_equal(image_decode(f, len, &lim, &img, &err), 0);
    image_free(&img);
    lim = (image_limits){0, PW * PH - 1};
    assert_int_equal(image_decode(f, len, &lim, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "pixels"));
    lim.max_pixels = PW * PH;
    assert_int_equal(image_decode(f, len, &lim, &img, &err), 0);
    image_free(&img);

    /* IHDR declaring huge sizes (valid CRC): rejected before allocating */
    static const uint32_t dims[][2] = {{100000, 100000}, {0x7fffffff, 0x7fffffff}, {1, 0x7fffffff}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        unsigned char *h = malloc(len);
        memcpy(h, f, len);
        put_be32(h + 16, dims[d][0]);
        put_be32(h + 20, dims[d][1]);
        put_be32(h + 29, crc32_of(h + 12, 17));
        lim = (image_limits){0, 1 << 24};
        assert_int_equal(image_decode(h, len, &lim, &img, &err), -EINVAL);
        assert_null(img.rgb);
        free(h);
    }
    /* JPEG SOF declaring 60000x60000 */
    unsigned char *j = mk_jpeg(PW, PH, 3, JCS_RGB, rgb, &len);
    for (size_t i = 2; i + 9 < len; i++)
        if (j[i] == 0xff && j[i + 1] == 0xc0) {
            j[i + 5] = 0xea, j[i + 6] = 0x60, j[i + 7] = 0xea, j[i + 8] = 0x60;
            break;
        }
    assert_int_equal(image_decode(j, len, &lim, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "limit"));
    free(j);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* base64 and data URLs                                                     */
/* ------------------------------------------------------------------------ */

static char *b64(const unsigned char *d, size_t n) {
    static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *o = malloc(n / 3 * 4 + 8), *q = o;
    size_t i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
        *q++ = al[v >> 18], *q++ = al[(v >> 12) & 63], *q++ = al[(v >> 6) & 63], *q++ = al[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
        *q++ = al[v >> 18], *q++ = al[(v >> 12) & 63];
        *q++ = i + 1 < n ? al[(v >> 6) & 63] : '=';
        *q++ = '=';
    }
    *q = 0;
    return o;
}

static void test_base64(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3];
    pattern_rgb(rgb);
    size_t len;
    unsigned char *f = mk_png(PW, PH, PNG_COLOR_TYPE_RGB, 8, 0, rgb, NULL, 0, NULL, 0, &len);
    char *e = b64(f, len);
    size_t el = strlen(e);
    image_u8 img;
    eng_err err = {0};
    assert_int_equal(image_decode_base64(e, el, NULL, &img, &err), 0);
    expect_pixels(&img, rgb, PW, PH);
    image_free(&img);
    /* data URLs (png and jpeg types; the type is not trusted) */
    const char *pre[] = {"data:image/png;base64,", "data:image/jpeg;base64,",
                         "DATA:image/png;BASE64,"};
    for (size_t k = 0; k < 3; k++) {
        char *u = malloc(strlen(pre[k]) + el + 1);
        strcpy(u, pre[k]);
        strcat(u, e);
        assert_int_equal(image_decode_base64(u, strlen(u), NULL, &img, &err), 0);
        expect_pixels(&img, rgb, PW, PH);
        image_free(&img);
        free(u);
    }
    /* whitespace and missing padding */
    char *ws = malloc(el * 2 + 2), *q = ws;
    for (size_t i = 0; i < el; i++) {
        if (e[i] == '=') continue;
        *q++ = e[i];
        if (i % 10 == 9) *q++ = '\n';
    }
    assert_int_equal(image_decode_base64(ws, (size_t)(q - ws), NULL, &img, &err), 0);
    image_free(&img);
    free(ws);
    /* decoded-size limit */
    image_limits lim = {len - 1, 0};
    assert_int_equal(image_decode_base64(e, el, &lim, &img, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "limit"));

    struct { const char *s; const char *msg; } bad[] = {
        {"http://example.com/cat.png", "image URLs are not fetched"},
        {"https://example.com/cat.png", "image URLs are not fetched"},
        {"data:text/plain;base64,aGVsbG8=", "not an image"},
        {"data:image/png,rawbytes", "base64"},
        {"data:image/png;base64", "','"},
        {"iVBO*w0K", "invalid base64"},
        {"iVBORw0KG", "base64"},
        {"aGVsbG8=", "not recognised"},
        {"", "empty"},
        {"iV=BO", "invalid base64"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        err.msg[0] = 0;
        assert_int_equal(image_decode_base64(bad[k].s, strlen(bad[k].s), NULL, &img, &err),
                         -EINVAL);
        if (!strstr(err.msg, bad[k].msg)) fail_msg("'%s': message '%s'", bad[k].s, err.msg);
        assert_null(img.rgb);
    }
    free(e);
    free(f);
}

/* ------------------------------------------------------------------------ */
/* Preprocessing                                                            */
/* ------------------------------------------------------------------------ */

static char *write_tmp(const char *text) {
    char *path = strdup("/tmp/test_image_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    fputs(text, fp);
    fclose(fp);
    return path;
}

static void test_preproc_load(void **state) {
    (void)state;
    image_preproc p;
    eng_err err = {0};
    char *path = write_tmp("{\"size\": 40, \"crop_size\": 36, \"do_rescale\": false,"
                           " \"image_mean\": [0.5, 0.5, 0.5], \"image_std\": [0.5,0.5,0.5]}");
    assert_int_equal(image_preproc_load(path, &p, &err), 0);
    assert_int_equal(p.shortest_edge, 40);
    assert_int_equal(p.crop_h, 36);
    assert_int_equal(p.crop_w, 36);
    assert_true(p.rescale == 1.0f);
    assert_true(p.mean[1] == 0.5f && p.std[2] == 0.5f);
    assert_true(p.do_resize && p.do_crop && p.do_normalize);
    unlink(path);
    free(path);
    path = write_tmp("{}");
    assert_int_equal(image_preproc_load(path, &p, &err), 0);
    assert_int_equal(p.shortest_edge, 224);
    assert_int_equal(p.crop_w, 224);
    assert_true(p.mean[0] == 0.48145466f && p.std[2] == 0.27577711f);
    unlink(path);
    free(path);
    const char *bad[] = {"{\"resample\": 2}", "{\"size\": {\"height\": 3, \"width\": 4}}",
                         "{\"crop_size\": {\"height\": 0, \"width\": 4}}", "{\"image_std\": [1, 0, 1]}",
                         "[1]", "{\"size\": 1, \"size\": 2}", "{\"do_resize\": 1}"};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        path = write_tmp(bad[k]);
        err.msg[0] = 0;
        assert_int_equal(image_preproc_load(path, &p, &err), -EINVAL);
        assert_non_null(strstr(err.msg, path));
        unlink(path);
        free(path);
    }
    assert_int_equal(image_preproc_load("/nonexistent/preprocessor_config.json", &p, &err), -EINVAL);
}

static void test_resize_basics(void **state) {
    (void)state;
    unsigned char rgb[PW * PH * 3];
    pattern_rgb(rgb);
    image_u8 in = {PW, PH, rgb}, out;
    eng_err err = {0};
    /* identity copies */
    assert_int_equal(image_resize(&in, PW, PH, &out, &err), 0);
    expect_pixels(&out, rgb, PW, PH);
    image_free(&out);
    /* solid colours stay solid at any size (weights sum to 1 in fixed point) */
    unsigned char solid[7 * 9 * 3];
    for (int i = 0; i < 7 * 9; i++) solid[i * 3] = 255, solid[i * 3 + 1] = 0, solid[i * 3 + 2] = 77;
    image_u8 s = {7, 9, solid};
    int sizes[][2] = {{1, 1}, {3, 4}, {7, 20}, {50, 9}, {64, 64}};
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(image_resize(&s, sizes[k][0], sizes[k][1], &out, &err), 0);
        for (int i = 0; i < out.w * out.h; i++) {
            assert_int_equal(out.rgb[i * 3], 255);
            assert_int_equal(out.rgb[i * 3 + 1], 0);
            assert_int_equal(out.rgb[i * 3 + 2], 77);
        }
        image_free(&out);
    }
    assert_int_equal(image_resize(&in, 0, 5, &out, &err), -EINVAL);
    assert_null(out.rgb);
    /* crop bigger than the resized image is rejected */
    image_preproc p;
    image_preproc_default(&p);
    p.shortest_edge = 8;
    p.crop_h = p.crop_w = 10;
    float px[300];
    assert_int_equal(image_clip_pixels(&in, &p, px, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "smaller"));
    /* no resize, no crop, no normalise: CHW x/255 */
    p.do_resize = p.do_crop = p.do_normalize = false;
    p.crop_h = PH, p.crop_w = PW;
    assert_int_equal(image_clip_pixels(&in, &p, px, &err), 0);
    for (int c = 0; c < 3; c++)
        for (int i = 0; i < PW * PH; i++)
            assert_float_equal(px[c * PW * PH + i], rgb[i * 3 + c] / 255.0, 1e-7);
}

/* ------------------------------------------------------------------------ */
/* clip-tiny conformance                                                    */
/* ------------------------------------------------------------------------ */

static int load_shared_image(const char *name, image_u8 *img) {
    char rel[128];
    snprintf(rel, sizeof rel, "conformance/clip-tiny/%s.png", name);
    char *path = tu_shared_path(rel);
    if (!path) return -1;
    size_t len;
    char *data = tu_read_file(path, &len);
    assert_non_null(data);
    eng_err err = {0};
    image_limits lim = {1 << 20, 1 << 20};
    if (image_decode(data, len, &lim, img, &err) != 0) fail_msg("%s: %s", path, err.msg);
    free(data);
    free(path);
    return 0;
}

static void test_clip_tiny_decode(void **state) {
    (void)state;
    image_u8 red, circ;
    if (load_shared_image("red_square", &red) != 0) skip();
    assert_int_equal(red.w, 48);
    assert_int_equal(red.h, 48);
    for (int i = 0; i < 48 * 48; i++)
        assert_true(red.rgb[i * 3] == 255 && red.rgb[i * 3 + 1] == 0 && red.rgb[i * 3 + 2] == 0);
    assert_int_equal(load_shared_image("blue_circle", &circ), 0);
    assert_int_equal(circ.w, 80);
    assert_int_equal(circ.h, 60);
    const uint8_t *corner = circ.rgb, *centre = circ.rgb + (30 * 80 + 40) * 3;
    assert_true(corner[0] == 255 && corner[1] == 255 && corner[2] == 255);
    assert_true(centre[0] == 0 && centre[1] == 0 && centre[2] == 255);
    image_free(&red);
    image_free(&circ);
}

static void test_clip_tiny_resize(void **state) {
    (void)state;
    const char *names[] = {"red_square", "blue_circle"};
    for (int n = 0; n < 2; n++) {
        image_u8 img, rs;
        if (load_shared_image(names[n], &img) != 0) skip();
        char rel[128];
        snprintf(rel, sizeof rel, "conformance/clip-tiny/arrays/resized_%s.npy", names[n]);
        char *path = tu_shared_path(rel);
        assert_non_null(path);
        npy_array a;
        eng_err err = {0};
        assert_int_equal(npy_load(&a, path, &err), 0);
        assert_int_equal(a.n_dims, 3);
        assert_int_equal(a.shape[2], 3);
        int h = (int)a.shape[0], w = (int)a.shape[1];
        assert_int_equal(image_resize(&img, w, h, &rs, &err), 0);
        const int64_t *ref = npy_i64(&a);
        assert_non_null(ref);
        int64_t maxd = 0;
        size_t ndiff = 0;
        for (size_t i = 0; i < a.n_elements; i++) {
            int64_t d = llabs((int64_t)rs.rgb[i] - ref[i]);
            if (d > maxd) maxd = d;
            ndiff += d != 0;
        }
        printf("resize %s %dx%d -> %dx%d: max level diff %lld, %zu of %zu values differ\n",
               names[n], img.w, img.h, w, h, (long long)maxd, ndiff, a.n_elements);
        assert_int_equal(maxd, 0); /* bit-exact with PIL */
        image_free(&rs);
        image_free(&img);
        npy_free(&a);
        free(path);
    }
}

static void test_clip_tiny_pixels(void **state) {
    (void)state;
    char *cfg = tu_shared_path("conformance/clip-tiny/preprocessor_config.json");
    char *pv = tu_shared_path("conformance/clip-tiny/pixel_values.npy");
    if (!cfg || !pv) {
        free(cfg);
        free(pv);
        skip();
    }
    image_preproc p;
    eng_err err = {0};
    assert_int_equal(image_preproc_load(cfg, &p, &err), 0);
    assert_int_equal(p.shortest_edge, 32);
    assert_int_equal(p.crop_h, 32);
    assert_int_equal(p.crop_w, 32);
    npy_array a;
    assert_int_equal(npy_load(&a, pv, &err), 0);
    assert_int_equal(a.n_dims, 4);
    assert_int_equal(a.shape[0], 2);
    const float *ref = npy_f32(&a);
    assert_non_null(ref);
    const char *names[] = {"red_square", "blue_circle"};
    float out[3 * 32 * 32];
    for (int n = 0; n < 2; n++) {
        image_u8 img;
        assert_int_equal(load_shared_image(names[n], &img), 0);
        assert_int_equal(image_clip_pixels(&img, &p, out, &err), 0);
        double maxd = 0;
        for (int i = 0; i < 3 * 32 * 32; i++) {
            double d = fabs((double)out[i] - ref[n * 3 * 32 * 32 + i]);
            if (d > maxd) maxd = d;
        }
        printf("pixel_values %s: max abs error %.3g\n", names[n], maxd);
        assert_true(maxd <= 1e-6);
        image_free(&img);
    }
    npy_free(&a);
    free(cfg);
    free(pv);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png_rgb_and_interlaced),
        cmocka_unit_test(test_png_rgba_drops_alpha),
        cmocka_unit_test(test_png_grey_variants),
        cmocka_unit_test(test_png_palette),
        cmocka_unit_test(test_png_16bit),
        cmocka_unit_test(test_jpeg_rgb_grey_cmyk),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_preproc_load),
        cmocka_unit_test(test_resize_basics),
        cmocka_unit_test(test_clip_tiny_decode),
        cmocka_unit_test(test_clip_tiny_resize),
        cmocka_unit_test(test_clip_tiny_pixels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
