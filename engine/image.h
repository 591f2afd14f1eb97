/* image.h - decoding PNG/JPEG images to 8-bit RGB (image.c) and the CLIP
 * image preprocessing that Hugging Face's CLIPImageProcessor does
 * (image_preproc.c): PIL bicubic resize of the shortest edge, center crop,
 * rescale, normalise, CHW float.
 *
 * Errors: 0 or a negative errno (-EINVAL malformed, unsupported or over a
 * limit; -ENOMEM; -errno of a failed open) with a message in the caller's
 * eng_err naming the problem. libpng/libjpeg errors are caught (setjmp /
 * longjmp handlers); nothing here exits or prints.
 *
 * Threads: no shared state; any thread may call any function on its own
 * objects.
 */
#ifndef IMAGE_H
#define IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

typedef struct image_u8 {
    int w, h;      /* pixels */
    uint8_t *rgb;  /* [h][w][3], owned (malloc); release with image_free */
} image_u8;

typedef struct image_limits {
    size_t max_bytes;    /* encoded size (decoded bytes for base64); 0 = none */
    int64_t max_pixels;  /* width * height; 0 = none */
} image_limits;

/* Decodes a PNG or JPEG (chosen by magic bytes) from data (borrowed).
 *  PNG: palette, grey, grey+alpha, RGB, RGBA at any bit depth, interlaced.
 *       Alpha and tRNS are dropped without blending, as PIL's convert("RGB");
 *       16-bit samples keep their high byte (PIL's RGB;16 unpackers; note PIL
 *       opens 16-bit grey as I;16 and clips rather than shifts on convert).
 *       Gamma/ICC chunks are ignored, as PIL does.
 *  JPEG: grey and YCbCr/RGB (libjpeg's default islow IDCT and fancy
 *       upsampling, as PIL); CMYK/YCCK rejected. A truncated file fails.
 * Limits are checked from the header before pixels are allocated. On
 * success *out owns its pixels; on failure *out is zeroed. */
int image_decode(const void *data, size_t len, const image_limits *lim, image_u8 *out,
                 eng_err *err);

/* Decodes raw base64 (standard alphabet; whitespace skipped; padding
 * optional) or a data URL "data:image/<type>;base64,<payload>" and then the
 * image as image_decode (the type in the URL is not trusted: magic bytes
 * decide). Network URLs are refused. lim->max_bytes bounds the decoded
 * size. Same ownership as image_decode. */
int image_decode_base64(const char *s, size_t len, const image_limits *lim, image_u8 *out,
                        eng_err *err);

/* Frees the pixels and zeroes *img. Accepts NULL and a zeroed image. */
void image_free(image_u8 *img);

typedef struct image_preproc {
    int shortest_edge;      /* resize target of the short side */
    int crop_h, crop_w;     /* output size */
    float rescale;          /* 1/255, or 1 when do_rescale is false */
    float mean[3], std[3];  /* per channel, applied after rescale */
    bool do_resize, do_crop, do_normalize;
} image_preproc;

/* Fills *out with OpenAI CLIP's defaults (224, crop 224x224, 1/255, CLIP
 * mean/std, everything on). */
void image_preproc_default(image_preproc *out);

/* Reads a Hugging Face preprocessor_config.json (CLIPImageProcessor keys:
 * size {shortest_edge} or int, crop_size {height,width} or int,
 * rescale_factor, image_mean, image_std, do_resize, do_center_crop,
 * do_rescale, do_normalize, resample (only 3 = bicubic accepted)); keys
 * absent take the defaults of image_preproc_default. */
int image_preproc_load(const char *path, image_preproc *out, eng_err *err);

/* PIL Image.resize((w, h), BICUBIC): separable, horizontal pass then
 * vertical, with PIL's antialiasing support (2 * max(1, scale)), a = -0.5,
 * 22-bit fixed-point coefficients and an 8-bit intermediate, so the result
 * is bit-exact with Pillow's ImagingResample on RGB. A pass whose size does
 * not change is skipped, as PIL does. in is borrowed; *out receives a new
 * image (image_free). */
int image_resize(const image_u8 *in, int w, int h, image_u8 *out, eng_err *err);

/* The whole CLIPImageProcessor on a decoded RGB image (borrowed):
 *  1. (do_resize) short side to shortest_edge, long side
 *     int(shortest_edge * long / short) (floor), PIL bicubic, uint8;
 *  2. (do_crop) center crop with top = (H - crop_h) / 2,
 *     left = (W - crop_w) / 2 (floor). An image smaller than the crop is
 *     rejected (-EINVAL) rather than zero-padded as HF does: after step 1
 *     this only happens when crop > shortest_edge;
 *     without do_crop the image must already be crop_h x crop_w;
 *  3. x * rescale (float32), then (do_normalize) (x - mean) / std;
 *  4. out: float [3][crop_h][crop_w] (CHW), caller-allocated. */
int image_clip_pixels(const image_u8 *in, const image_preproc *p, float *out, eng_err *err);

#endif
