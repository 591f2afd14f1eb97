/* image_preproc.c - CLIPImageProcessor: reading preprocessor_config.json,
 * PIL-compatible bicubic resize, center crop, rescale and normalise.
 *
 * The resize follows the algorithm of Pillow's ImagingResample (written
 * here from its description, not copied): for each output pixel a window of
 * input pixels centred at (x + 0.5) * scale, of half-width
 * 2 * max(scale, 1) (the bicubic support widened when downscaling, which is
 * PIL's antialiasing), with weights filter((i - centre + 0.5) / max(scale,1))
 * normalised to sum 1, then converted to fixed point with 22 fractional bits
 * (rounded away from zero). Each pass accumulates with a rounding bias of
 * 2^21, shifts right 22 and clips to 0..255; the horizontal pass runs first
 * and its 8-bit result feeds the vertical pass. */
#include "image.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define IMAGE__PRECISION_BITS 22 /* 32 - 8 - 2, as PIL */

void image_preproc_default(image_preproc *out) {
    static const float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    static const float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};
    memset(out, 0, sizeof *out);
    out->shortest_edge = 224;
    out->crop_h = out->crop_w = 224;
    out->rescale = (float)(1.0 / 255.0);
    memcpy(out->mean, mean, sizeof mean);
    memcpy(out->std, std, sizeof std);
    out->do_resize = out->do_crop = out->do_normalize = true;
}

/* ------------------------------------------------------------------------ */
/* preprocessor_config.json                                                 */
/* ------------------------------------------------------------------------ */

static int image__json_bool(json_t *root, const char *key, bool *v, const char *path,
                            eng_err *err) {
    json_t *j = json_object_get(root, key);
    if (!j || json_is_null(j)) return 0;
    if (!json_is_boolean(j)) return eng_fail(err, -EINVAL, "%s: '%s' must be a boolean", path, key);
    *v = json_is_true(j);
    return 0;
}

static int image__json_dim(json_t *j, int *v, const char *path, const char *key, eng_err *err) {
    if (!json_is_integer(j) || json_integer_value(j) < 1 || json_integer_value(j) > 65536)
        return eng_fail(err, -EINVAL, "%s: '%s' must be an integer in 1..65536", path, key);
    *v = (int)json_integer_value(j);
    return 0;
}

static int image__json_vec3(json_t *root, const char *key, float v[3], bool positive,
                            const char *path, eng_err *err) {
    json_t *j = json_object_get(root, key);
    if (!j || json_is_null(j)) return 0;
    if (json_is_number(j)) { /* HF accepts one number for all channels */
        double x = json_number_value(j);
        v[0] = v[1] = v[2] = (float)x;
    } else if (json_is_array(j) && json_array_size(j) == 3) {
        for (size_t i = 0; i < 3; i++) {
            json_t *e = json_array_get(j, i);
            if (!json_is_number(e))
                return eng_fail(err, -EINVAL, "%s: '%s' must hold 3 numbers", path, key);
            v[i] = (float)json_number_value(e);
        }
    } else {
        return eng_fail(err, -EINVAL, "%s: '%s' must be a list of 3 numbers", path, key);
    }
    for (int i = 0; i < 3; i++)
        if (!isfinite(v[i]) || (positive && !(v[i] > 0)))
            return eng_fail(err, -EINVAL, "%s: '%s' has an invalid value", path, key);
    return 0;
}

int image_preproc_load(const char *path, image_preproc *out, eng_err *err) {
    image_preproc_default(out);
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return eng_fail(err, -EINVAL, "%s: line %d: %s", path, je.line, je.text);
    int rc = 0;
    bool do_rescale = true;
    double rescale = 1.0 / 255.0;
    if (!json_is_object(root)) {
        rc = eng_fail(err, -EINVAL, "%s: not a JSON object", path);
        goto done;
    }
    json_t *j = json_object_get(root, "size");
    if (j && !json_is_null(j)) {
        if (json_is_integer(j)) {
            rc = image__json_dim(j, &out->shortest_edge, path, "size", err);
        } else if (json_is_object(j) && json_object_get(j, "shortest_edge")) {
            rc = image__json_dim(json_object_get(j, "shortest_edge"), &out->shortest_edge, path,
                                 "size.shortest_edge", err);
        } else {
            rc = eng_fail(err, -EINVAL, "%s: 'size' must be an integer or {\"shortest_edge\": n}",
                          path);
        }
        if (rc) goto done;
    }
    j = json_object_get(root, "crop_size");
    if (j && !json_is_null(j)) {
        if (json_is_integer(j)) {
            rc = image__json_dim(j, &out->crop_h, path, "crop_size", err);
            out->crop_w = out->crop_h;
        } else if (json_is_object(j)) {
            rc = image__json_dim(json_object_get(j, "height"), &out->crop_h, path,
                                 "crop_size.height", err);
            if (!rc)
                rc = image__json_dim(json_object_get(j, "width"), &out->crop_w, path,
                                     "crop_size.width", err);
        } else {
            rc = eng_fail(err, -EINVAL, "%s: 'crop_size' must be an integer or {height, width}",
                          path);
        }
        if (rc) goto done;
    }
    j = json_object_get(root, "rescale_factor");
    if (j && !json_is_null(j)) {
        if (!json_is_number(j) || !isfinite(json_number_value(j)) || json_number_value(j) <= 0) {
            rc = eng_fail(err, -EINVAL, "%s: 'rescale_factor' must be a positive number", path);
            goto done;
        }
        rescale = json_number_value(j);
    }
    j = json_object_get(root, "resample");
    if (j && !json_is_null(j) && !(json_is_integer(j) && json_integer_value(j) == 3)) {
        rc = eng_fail(err, -EINVAL, "%s: 'resample' must be 3 (bicubic), the only filter supported",
                      path);
        goto done;
    }
    if ((rc = image__json_bool(root, "do_resize", &out->do_resize, path, err)) ||
        (rc = image__json_bool(root, "do_center_crop", &out->do_crop, path, err)) ||
        (rc = image__json_bool(root, "do_rescale", &do_rescale, path, err)) ||
        (rc = image__json_bool(root, "do_normalize", &out->do_normalize, path, err)) ||
        (rc = image__json_vec3(root, "image_mean", out->mean, false, path, err)) ||
        (rc = image__json_vec3(root, "image_std", out->std, true, path, err)))
        goto done;
    out->rescale = do_rescale ? (float)rescale : 1.0f;
done:
    json_decref(root);
    if (rc) image_preproc_default(out);
    return rc;
}

/* ------------------------------------------------------------------------ */
/* Resize                                                                   */
/* ------------------------------------------------------------------------ */

static double image__bicubic(double x) {
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
}

/* Fixed-point weights for resampling in_size -> out_size along one axis:
 * out pixel i reads in[first[i] .. first[i] + count[i]) with weights
 * w[i * ksize ...]. Returns ksize, or 0 on allocation failure. */
static int image__coeffs(int in_size, int out_size, int **first, int **count, int32_t **w) {
    double scale = (double)in_size / out_size;
    double fscale = scale < 1 ? 1 : scale;
    double support = 2.0 * fscale;
    int ksize = (int)ceil(support) * 2 + 1;
    *first = malloc(sizeof **first * (size_t)out_size);
    *count = malloc(sizeof **count * (size_t)out_size);
    *w = calloc((size_t)out_size * (size_t)ksize, sizeof **w);
    double *k = malloc(sizeof *k * (size_t)ksize);
    if (!*first || !*count || !*w || !k) {
        free(k);
        return 0;
    }
    for (int i = 0; i < out_size; i++) {
        double centre = (i + 0.5) * scale;
        int lo = (int)(centre - support + 0.5);
        if (lo < 0) lo = 0;
        int hi = (int)(centre + support + 0.5);
        if (hi > in_size) hi = in_size;
        int n = hi - lo;
        double sum = 0;
        for (int x = 0; x < n; x++) {
            k[x] = image__bicubic((x + lo - centre + 0.5) / fscale);
            sum += k[x];
        }
        for (int x = 0; x < n; x++) {
            double v = sum != 0 ? k[x] / sum : k[x];
            double f = v * (1 << IMAGE__PRECISION_BITS);
            (*w)[(size_t)i * ksize + x] = (int32_t)(v < 0 ? f - 0.5 : f + 0.5);
        }
        (*first)[i] = lo;
        (*count)[i] = n;
    }
    free(k);
    return ksize;
}

static inline uint8_t image__clip8(int64_t acc) {
    acc >>= IMAGE__PRECISION_BITS;
    return acc < 0 ? 0 : acc > 255 ? 255 : (uint8_t)acc;
}

/* One pass along x (horizontal) or y (vertical) of an RGB image in
 * [h][w][3] -> out [oh][ow][3]; exactly one of the sizes changes. */
static int image__pass(const image_u8 *in, image_u8 *out, bool horizontal, eng_err *err) {
    int in_size = horizontal ? in->w : in->h;
    int out_size = horizontal ? out->w : out->h;
    int *first = NULL, *count = NULL;
    int32_t *w = NULL;
    int ksize = image__coeffs(in_size, out_size, &first, &count, &w);
    if (!ksize) {
        free(first);
        free(count);
        free(w);
        return eng_fail(err, -ENOMEM, "image resize: out of memory");
    }
    const int64_t bias = (int64_t)1 << (IMAGE__PRECISION_BITS - 1);
    size_t in_stride = (size_t)in->w * 3;
    size_t out_stride = (size_t)out->w * 3;
    for (int y = 0; y < out->h; y++) {
        for (int x = 0; x < out->w; x++) {
            int i = horizontal ? x : y;
            const int32_t *k = w + (size_t)i * ksize;
            int64_t acc[3] = {bias, bias, bias};
            for (int t = 0; t < count[i]; t++) {
                const uint8_t *p = horizontal
                                       ? in->rgb + (size_t)y * in_stride + (size_t)(first[i] + t) * 3
                                       : in->rgb + (size_t)(first[i] + t) * in_stride + (size_t)x * 3;
                acc[0] += (int64_t)p[0] * k[t];
                acc[1] += (int64_t)p[1] * k[t];
                acc[2] += (int64_t)p[2] * k[t];
            }
            uint8_t *o = out->rgb + (size_t)y * out_stride + (size_t)x * 3;
            o[0] = image__clip8(acc[0]);
            o[1] = image__clip8(acc[1]);
            o[2] = image__clip8(acc[2]);
        }
    }
    free(first);
    free(count);
    free(w);
    return 0;
}

static int image__alloc(image_u8 *img, int w, int h, eng_err *err) {
    img->w = w;
    img->h = h;
    img->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!img->rgb) return eng_fail(err, -ENOMEM, "image: out of memory for %dx%d", w, h);
    return 0;
}

int image_resize(const image_u8 *in, int w, int h, image_u8 *out, eng_err *err) {
    memset(out, 0, sizeof *out);
    if (!in || !in->rgb || in->w < 1 || in->h < 1)
        return eng_fail(err, -EINVAL, "image resize: empty input image");
    if (w < 1 || h < 1 || (size_t)w > SIZE_MAX / 3 / (size_t)h)
        return eng_fail(err, -EINVAL, "image resize: invalid target size %dx%d", w, h);
    int rc;
    if (w == in->w && h == in->h) { /* PIL returns a copy */
        if ((rc = image__alloc(out, w, h, err))) return rc;
        memcpy(out->rgb, in->rgb, (size_t)w * h * 3);
        return 0;
    }
    image_u8 mid = *in;
    image_u8 tmp = {0};
    if (w != in->w) {
        if ((rc = image__alloc(&tmp, w, in->h, err))) return rc;
        if ((rc = image__pass(in, &tmp, true, err))) {
            image_free(&tmp);
            return rc;
        }
        mid = tmp;
        if (h == in->h) {
            *out = tmp;
            return 0;
        }
    }
    if ((rc = image__alloc(out, w, h, err)) || (rc = image__pass(&mid, out, false, err))) {
        image_free(out);
        image_free(&tmp);
        return rc;
    }
    image_free(&tmp);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The whole processor                                                      */
/* ------------------------------------------------------------------------ */

int image_clip_pixels(const image_u8 *in, const image_preproc *p, float *out, eng_err *err) {
    if (!in || !in->rgb || in->w < 1 || in->h < 1)
        return eng_fail(err, -EINVAL, "image preprocessing: empty input image");
    if (p->crop_h < 1 || p->crop_w < 1 || (p->do_resize && p->shortest_edge < 1))
        return eng_fail(err, -EINVAL, "image preprocessing: invalid sizes in the config");
    image_u8 resized = {0};
    const image_u8 *img = in;
    int rc;
    if (p->do_resize) {
        int se = p->shortest_edge;
        int64_t tw, th;
        if (in->w <= in->h) {
            tw = se;
            th = (int64_t)((double)se * in->h / in->w); /* int(size * long / short) */
        } else {
            th = se;
            tw = (int64_t)((double)se * in->w / in->h);
        }
        if (tw < 1 || th < 1 || tw > INT32_MAX / 4 || th > INT32_MAX / 4 ||
            tw * th > (int64_t)1 << 30)
            return eng_fail(err, -EINVAL, "image preprocessing: image %dx%d has an extreme aspect "
                            "ratio (resize target %lldx%lld)", in->w, in->h, (long long)tw,
                            (long long)th);
        if ((rc = image_resize(in, (int)tw, (int)th, &resized, err))) return rc;
        img = &resized;
    }
    int top = 0, left = 0;
    if (p->do_crop) {
        if (img->w < p->crop_w || img->h < p->crop_h) {
            rc = eng_fail(err, -EINVAL, "image preprocessing: %dx%d image is smaller than the "
                          "%dx%d crop (padding is not supported)", img->w, img->h, p->crop_w,
                          p->crop_h);
            goto done;
        }
        top = (img->h - p->crop_h) / 2;
        left = (img->w - p->crop_w) / 2;
    } else if (img->w != p->crop_w || img->h != p->crop_h) {
        rc = eng_fail(err, -EINVAL, "image preprocessing: without center crop the image must be "
                      "%dx%d, got %dx%d", p->crop_w, p->crop_h, img->w, img->h);
        goto done;
    }
    /* As HF: uint8 -> float64 * rescale -> float32, then float32
     * (x - mean) / std. */
    double rs = p->rescale == (float)(1.0 / 255.0) ? 1.0 / 255.0 : (double)p->rescale;
    size_t plane = (size_t)p->crop_h * (size_t)p->crop_w;
    for (int c = 0; c < 3; c++) {
        for (int y = 0; y < p->crop_h; y++) {
            const uint8_t *row = img->rgb + ((size_t)(top + y) * img->w + left) * 3;
            float *o = out + c * plane + (size_t)y * p->crop_w;
            for (int x = 0; x < p->crop_w; x++) {
                float v = (float)(row[x * 3 + c] * rs);
                if (p->do_normalize) v = (v - p->mean[c]) / p->std[c];
                o[x] = v;
            }
        }
    }
    rc = 0;
done:
    image_free(&resized);
    return rc;
}
