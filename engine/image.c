/* image.c - PNG (libpng) and JPEG (libjpeg) decoding to 8-bit RGB, and the
 * base64 / data-URL front end. Library errors longjmp back to a small
 * function that holds only the setjmp; all state that survives the jump
 * lives in a context owned by its caller, so no local is indeterminate
 * after longjmp. */
#include "image.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

/* ------------------------------------------------------------------------ */
/* Shared checks                                                            */
/* ------------------------------------------------------------------------ */

/* Validates w x h against the limits and returns the pixel buffer size in
 * *nbytes; fails before anything is allocated. */
static int image__check_dims(const char *kind, uint64_t w, uint64_t h, const image_limits *lim,
                             size_t *nbytes, eng_err *err) {
    if (w == 0 || h == 0)
        return eng_fail(err, -EINVAL, "%s: image has zero size (%llux%llu)", kind,
                        (unsigned long long)w, (unsigned long long)h);
    if (w > INT32_MAX || h > INT32_MAX || w > SIZE_MAX / 3 / h)
        return eng_fail(err, -EINVAL, "%s: image dimensions %llux%llu are too large", kind,
                        (unsigned long long)w, (unsigned long long)h);
    uint64_t px = w * h; /* no overflow: both < 2^31 */
    if (lim && lim->max_pixels > 0 && px > (uint64_t)lim->max_pixels)
        return eng_fail(err, -EINVAL, "%s: image is %llux%llu = %llu pixels, over the limit of %lld",
                        kind, (unsigned long long)w, (unsigned long long)h,
                        (unsigned long long)px, (long long)lim->max_pixels);
    *nbytes = (size_t)px * 3;
    return 0;
}

void image_free(image_u8 *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* ------------------------------------------------------------------------ */
/* PNG                                                                      */
/* ------------------------------------------------------------------------ */

typedef struct image__png {
    const uint8_t *data;
    size_t len, pos;
    const image_limits *lim;
    png_structp png;
    png_infop info;
    uint8_t *rgb;          /* pixels being filled; owned until handed out */
    png_bytep *rows;
    int w, h;
    int code;              /* set by our own failures before png_error */
    char msg[256];         /* the library's or our message */
} image__png;

static void image__png_error(png_structp png, png_const_charp msg) {
    image__png *c = png_get_error_ptr(png);
    snprintf(c->msg, sizeof c->msg, "%s", msg ? msg : "unknown libpng error");
    png_longjmp(png, 1);
}

static void image__png_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg; /* ancillary problems (bad CRC in tEXt...) are tolerated, as PIL */
}

static void image__png_read(png_structp png, png_bytep out, size_t n) {
    image__png *c = png_get_io_ptr(png);
    if (n > c->len - c->pos) png_error(png, "truncated data (unexpected end of file)");
    memcpy(out, c->data + c->pos, n);
    c->pos += n;
}

/* Everything that may longjmp; returns 0, or -1 after a libpng error (c->msg
 * set), or a negative errno with err filled. */
static int image__png_run(image__png *c, eng_err *err) {
    if (setjmp(png_jmpbuf(c->png))) return -1;
    png_set_read_fn(c->png, c, image__png_read);
    png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff);
    png_set_chunk_malloc_max(c->png, 8u << 20);
    png_read_info(c->png, c->info);

    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(c->png, c->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    size_t nbytes;
    int rc = image__check_dims("png", w, h, c->lim, &nbytes, err);
    if (rc) return rc;

    if (ctype == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(c->png);
    if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(c->png);
    if (depth == 16) png_set_strip_16(c->png);
    /* palette expansion turns tRNS into alpha: strip it too */
    if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(c->png, c->info, PNG_INFO_tRNS))
        png_set_strip_alpha(c->png);
    if (ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_GRAY_ALPHA)
        png_set_gray_to_rgb(c->png);
    (void)png_set_interlace_handling(c->png);
    png_read_update_info(c->png, c->info);
    if (png_get_rowbytes(c->png, c->info) != (size_t)w * 3 ||
        png_get_channels(c->png, c->info) != 3 || png_get_bit_depth(c->png, c->info) != 8)
        return eng_fail(err, -EINVAL, "png: unsupported pixel format (color type %d, depth %d)",
                        ctype, depth);

    c->rgb = malloc(nbytes);
    c->rows = malloc(sizeof *c->rows * h);
    if (!c->rgb || !c->rows) return eng_fail(err, -ENOMEM, "png: out of memory for %ux%u", w, h);
    for (png_uint_32 y = 0; y < h; y++) c->rows[y] = c->rgb + (size_t)y * w * 3;
    png_read_image(c->png, c->rows);
    png_read_end(c->png, NULL);
    c->w = (int)w;
    c->h = (int)h;
    return 0;
}

static int image__decode_png(const uint8_t *data, size_t len, const image_limits *lim,
                             image_u8 *out, eng_err *err) {
    image__png c;
    memset(&c, 0, sizeof c);
    c.data = data;
    c.len = len;
    c.lim = lim;
    c.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &c, image__png_error,
                                   image__png_warning);
    if (!c.png) return eng_fail(err, -ENOMEM, "png: cannot create decoder");
    c.info = png_create_info_struct(c.png);
    int rc;
    if (!c.info) {
        rc = eng_fail(err, -ENOMEM, "png: cannot create decoder");
    } else {
        rc = image__png_run(&c, err);
        if (rc == -1) rc = eng_fail(err, -EINVAL, "png: corrupt or truncated image: %s", c.msg);
    }
    png_destroy_read_struct(&c.png, c.info ? &c.info : NULL, NULL);
    free(c.rows);
    if (rc) {
        free(c.rgb);
        return rc;
    }
    out->w = c.w;
    out->h = c.h;
    out->rgb = c.rgb;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* JPEG                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct image__jpeg {
    struct jpeg_error_mgr pub; /* first: libjpeg hands back this pointer */
    jmp_buf jb;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress;
    bool created;
    const image_limits *lim;
    uint8_t *rgb;
    int w, h;
    char msg[JMSG_LENGTH_MAX + 64];
} image__jpeg;

static void image__jpeg_error_exit(j_common_ptr ci) {
    image__jpeg *c = (image__jpeg *)ci->err;
    char buf[JMSG_LENGTH_MAX];
    c->pub.format_message(ci, buf);
    snprintf(c->msg, sizeof c->msg, "%s", buf);
    longjmp(c->jb, 1);
}

/* Warnings are tolerated (as PIL does) except running out of data: libjpeg
 * would pad the image with grey, PIL raises "image file is truncated". */
static void image__jpeg_emit(j_common_ptr ci, int level) {
    image__jpeg *c = (image__jpeg *)ci->err;
    if (level < 0) {
        c->pub.num_warnings++;
        if (c->pub.msg_code == JWRN_JPEG_EOF) {
            snprintf(c->msg, sizeof c->msg, "truncated data (premature end of JPEG file)");
            longjmp(c->jb, 1);
        }
    }
}

static void image__jpeg_output(j_common_ptr ci) {
    (void)ci; /* never print */
}

/* A progressive JPEG may declare thousands of tiny scans, each a pass over
 * the whole coefficient buffer (a known CPU denial of service): cap them. */
#define IMAGE__JPEG_MAX_SCANS 1000

static void image__jpeg_progress(j_common_ptr ci) {
    image__jpeg *c = (image__jpeg *)ci->err;
    if (c->cinfo.is_decompressor && c->cinfo.input_scan_number > IMAGE__JPEG_MAX_SCANS) {
        snprintf(c->msg, sizeof c->msg, "more than %d scans", IMAGE__JPEG_MAX_SCANS);
        longjmp(c->jb, 1);
    }
}

static int image__jpeg_run(image__jpeg *c, const uint8_t *data, size_t len, eng_err *err) {
    if (setjmp(c->jb)) return -1;
    jpeg_create_decompress(&c->cinfo);
    c->created = true;
    c->progress.progress_monitor = image__jpeg_progress;
    c->cinfo.progress = &c->progress;
    jpeg_mem_src(&c->cinfo, data, (unsigned long)len);
    (void)jpeg_read_header(&c->cinfo, TRUE);
    J_COLOR_SPACE cs = c->cinfo.jpeg_color_space;
    if (cs == JCS_CMYK || cs == JCS_YCCK)
        return eng_fail(err, -EINVAL,
                        "jpeg: CMYK/YCCK images are not supported; convert the image to RGB");
    if (cs != JCS_GRAYSCALE && cs != JCS_YCbCr && cs != JCS_RGB)
        return eng_fail(err, -EINVAL, "jpeg: unsupported color space %d (%d components)",
                        (int)cs, c->cinfo.num_components);
    size_t nbytes;
    int rc = image__check_dims("jpeg", c->cinfo.image_width, c->cinfo.image_height, c->lim,
                               &nbytes, err);
    if (rc) return rc;
    c->cinfo.out_color_space = JCS_RGB;
    (void)jpeg_start_decompress(&c->cinfo);
    if (c->cinfo.output_components != 3 || c->cinfo.output_width != c->cinfo.image_width ||
        c->cinfo.output_height != c->cinfo.image_height)
        return eng_fail(err, -EINVAL, "jpeg: unexpected output format");
    c->w = (int)c->cinfo.output_width;
    c->h = (int)c->cinfo.output_height;
    c->rgb = malloc(nbytes);
    if (!c->rgb) return eng_fail(err, -ENOMEM, "jpeg: out of memory for %dx%d", c->w, c->h);
    while (c->cinfo.output_scanline < c->cinfo.output_height) {
        JSAMPROW row = c->rgb + (size_t)c->cinfo.output_scanline * (size_t)c->w * 3;
        if (jpeg_read_scanlines(&c->cinfo, &row, 1) != 1)
            return eng_fail(err, -EINVAL, "jpeg: truncated data");
    }
    (void)jpeg_finish_decompress(&c->cinfo);
    return 0;
}

static int image__decode_jpeg(const uint8_t *data, size_t len, const image_limits *lim,
                              image_u8 *out, eng_err *err) {
    if (len > (unsigned long)-1) return eng_fail(err, -EINVAL, "jpeg: data too large");
    image__jpeg *c = calloc(1, sizeof *c);
    if (!c) return eng_fail(err, -ENOMEM, "jpeg: out of memory");
    c->lim = lim;
    c->cinfo.err = jpeg_std_error(&c->pub);
    c->pub.error_exit = image__jpeg_error_exit;
    c->pub.emit_message = image__jpeg_emit;
    c->pub.output_message = image__jpeg_output;
    int rc = image__jpeg_run(c, data, len, err);
    if (rc == -1) rc = eng_fail(err, -EINVAL, "jpeg: corrupt or truncated image: %s", c->msg);
    if (c->created) jpeg_destroy_decompress(&c->cinfo);
    if (rc == 0) {
        out->w = c->w;
        out->h = c->h;
        out->rgb = c->rgb;
    } else {
        free(c->rgb);
    }
    free(c);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Front ends                                                               */
/* ------------------------------------------------------------------------ */

int image_decode(const void *data, size_t len, const image_limits *lim, image_u8 *out,
                 eng_err *err) {
    memset(out, 0, sizeof *out);
    const uint8_t *d = data;
    if (lim && lim->max_bytes > 0 && len > lim->max_bytes)
        return eng_fail(err, -EINVAL, "image is %zu bytes, over the limit of %zu", len,
                        lim->max_bytes);
    if (!d || len == 0) return eng_fail(err, -EINVAL, "image data is empty");
    static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (len >= 8 && memcmp(d, png_magic, 8) == 0) return image__decode_png(d, len, lim, out, err);
    if (len >= 3 && d[0] == 0xff && d[1] == 0xd8 && d[2] == 0xff)
        return image__decode_jpeg(d, len, lim, out, err);
    return eng_fail(err, -EINVAL, "image format not recognised (only PNG and JPEG are supported)");
}

static int image__b64val(unsigned char ch) {
    if (ch >= 'A' && ch <= 'Z') return ch - 'A';
    if (ch >= 'a' && ch <= 'z') return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9') return ch - '0' + 52;
    if (ch == '+') return 62;
    if (ch == '/') return 63;
    return -1;
}

static bool image__prefix(const char *s, size_t len, const char *p) {
    size_t n = strlen(p);
    if (len < n) return false;
    for (size_t i = 0; i < n; i++) {
        char a = s[i];
        if (a >= 'A' && a <= 'Z') a = (char)(a - 'A' + 'a');
        if (a != p[i]) return false;
    }
    return true;
}

int image_decode_base64(const char *s, size_t len, const image_limits *lim, image_u8 *out,
                        eng_err *err) {
    memset(out, 0, sizeof *out);
    if (!s) return eng_fail(err, -EINVAL, "image is empty");
    while (len > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')) s++, len--;
    if (image__prefix(s, len, "http://") || image__prefix(s, len, "https://") ||
        image__prefix(s, len, "ftp://") || image__prefix(s, len, "file:"))
        return eng_fail(err, -EINVAL, "image URLs are not fetched; send base64 or a data URL");
    if (image__prefix(s, len, "data:")) {
        const char *comma = memchr(s, ',', len);
        if (!comma) return eng_fail(err, -EINVAL, "data URL has no ',' before its payload");
        size_t hl = (size_t)(comma - s);
        if (!image__prefix(s, len, "data:image/"))
            return eng_fail(err, -EINVAL, "data URL is not an image (expected data:image/...)");
        if (hl < 7 || !image__prefix(comma - 7, 7, ";base64"))
            return eng_fail(err, -EINVAL, "data URL must be base64-encoded (;base64,)");
        len -= hl + 1;
        s = comma + 1;
    }
    /* decoded size <= len * 3 / 4 (+2): check the limit before allocating */
    size_t cap = len / 4 * 3 + 3;
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) return eng_fail(err, -ENOMEM, "out of memory decoding base64");
    size_t n = 0, pad = 0;
    uint32_t acc = 0;
    int bits = 0;
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n') continue;
        if (ch == '=') {
            pad++;
            continue;
        }
        int v = image__b64val(ch);
        if (v < 0 || pad) {
            rc = eng_fail(err, -EINVAL, "invalid base64 at offset %zu", i);
            goto fail;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
        if (lim && lim->max_bytes > 0 && n > lim->max_bytes) {
            rc = eng_fail(err, -EINVAL, "image is over the limit of %zu bytes", lim->max_bytes);
            goto fail;
        }
    }
    if (bits >= 6 || pad > 2) {
        rc = eng_fail(err, -EINVAL, "invalid base64: bad length or padding");
        goto fail;
    }
    rc = image_decode(buf, n, lim, out, err);
fail:
    free(buf);
    return rc;
}
