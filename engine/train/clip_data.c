/* clip_data.c - an image-caption set on disk for CLIP training
 * (clip_data.h). */
#include "clip_data.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLIP_DATA__MAX_IMAGE_BYTES (64u << 20)
#define CLIP_DATA__MAX_PIXELS (64ll << 20)
#define CLIP_DATA__MAX_LINE (1u << 20)

static char *clip_data__str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static void clip_data__rec_free(clip_data_rec *r)
{
    free(r->image);
    free(r->caption);
    free(r->shape);
    free(r->color);
    free(r->size);
}

void clip_data_set_free(clip_data_set *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        clip_data__rec_free(&s->r[i]);
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* One record from the JSON text of a line; 0, -EINVAL or -ENOMEM. */
static int clip_data__parse(const char *line, size_t len, clip_data_rec *r, const char *path,
                            long lineno, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(line, len, 0, &je);
    if (!o || !json_is_object(o)) {
        snprintf(err, errlen, "%s: line %ld: %s", path, lineno,
                 o ? "not a JSON object" : je.text);
        json_decref(o);
        return -EINVAL;
    }
    const char *img = json_string_value(json_object_get(o, "image"));
    const char *cap = json_string_value(json_object_get(o, "caption"));
    if (!img || !*img || !cap) {
        snprintf(err, errlen, "%s: line %ld: needs the strings \"image\" (a path) and "
                 "\"caption\"", path, lineno);
        json_decref(o);
        return -EINVAL;
    }
    memset(r, 0, sizeof *r);
    r->image = strdup(img);
    r->caption = strdup(cap);
    r->shape = clip_data__str(o, "shape");
    r->color = clip_data__str(o, "color");
    r->size = clip_data__str(o, "size");
    r->unseen = json_is_true(json_object_get(o, "unseen"));
    json_decref(o);
    if (!r->image || !r->caption) {
        clip_data__rec_free(r);
        snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    return 0;
}

int clip_data_read(clip_data_set *out, const char *path, int max, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -e;
    }
    clip_data_set s = {0};
    int cap = 0, rc = 0;
    char *line = NULL;
    size_t lcap = 0;
    ssize_t got;
    long lineno = 0;
    while ((max <= 0 || s.n < max) && (got = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)got;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            len--;
        if (!len)
            continue;
        if (len > CLIP_DATA__MAX_LINE) {
            snprintf(err, errlen, "%s: line %ld is longer than %u bytes", path, lineno,
                     CLIP_DATA__MAX_LINE);
            rc = -EINVAL;
            break;
        }
        if (s.n == cap) {
            int nc = cap ? 2 * cap : 256;
            clip_data_rec *nr = realloc(s.r, (size_t)nc * sizeof *nr);
            if (!nr) {
                snprintf(err, errlen, "%s: out of memory", path);
                rc = -ENOMEM;
                break;
            }
            s.r = nr;
            cap = nc;
        }
        if ((rc = clip_data__parse(line, len, &s.r[s.n], path, lineno, err, errlen)))
            break;
        s.n++;
    }
    if (!rc && ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = -EIO;
    }
    free(line);
    fclose(f);
    if (rc) {
        clip_data_set_free(&s);
        return rc;
    }
    *out = s;
    return 0;
}

static unsigned char *clip_data__slurp(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: %s", path, strerror(e));
        errno = e;
        return NULL;
    }
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (unsigned long)n <= CLIP_DATA__MAX_IMAGE_BYTES)
        buf = malloc((size_t)n + 1);
    if (!buf || fread(buf, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "%s: cannot be read (or larger than %u MiB)", path,
                 CLIP_DATA__MAX_IMAGE_BYTES >> 20);
        free(buf);
        fclose(f);
        errno = EINVAL;
        return NULL;
    }
    fclose(f);
    *len = (size_t)n;
    return buf;
}

int clip_data_pixels(const clip_data_set *s, const char *dir, const image_preproc *pp,
                     float *out, char *err, size_t errlen)
{
    const size_t npx = (size_t)3 * pp->crop_h * pp->crop_w;
    const image_limits lim = {.max_bytes = CLIP_DATA__MAX_IMAGE_BYTES,
                              .max_pixels = CLIP_DATA__MAX_PIXELS};
    for (int i = 0; i < s->n; i++) {
        char path[4096];
        const char *rel = s->r[i].image;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", rel[0] == '/' ? "" : dir, rel) >=
            sizeof path) {
            snprintf(err, errlen, "%s/%s: path too long", dir, rel);
            return -ENAMETOOLONG;
        }
        size_t len = 0;
        unsigned char *buf = clip_data__slurp(path, &len, err, errlen);
        if (!buf)
            return errno == ENOENT ? -ENOENT : -EINVAL;
        image_u8 img = {0};
        eng_err e = {0};
        int rc = image_decode(buf, len, &lim, &img, &e);
        free(buf);
        if (!rc)
            rc = image_clip_pixels(&img, pp, out + (size_t)i * npx, &e);
        image_free(&img);
        if (rc) {
            snprintf(err, errlen, "%s: %s", path, e.msg);
            return rc;
        }
    }
    return 0;
}

void clip_data_channel_stats(const float *px, size_t n, int H, int W, float mean[3],
                             float std[3])
{
    const size_t plane = (size_t)H * W;
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            const float *p = px + (i * 3 + (size_t)c) * plane;
            for (size_t k = 0; k < plane; k++) {
                s += p[k];
                s2 += (double)p[k] * p[k];
            }
        }
        double cnt = (double)n * (double)plane, m = cnt > 0 ? s / cnt : 0;
        double var = cnt > 0 ? s2 / cnt - m * m : 1;
        mean[c] = (float)m;
        std[c] = var > 1e-8 ? (float)sqrt(var) : 1.0f;
    }
}

void clip_data_normalize(float *px, size_t n, int H, int W, const float mean[3],
                         const float std[3])
{
    const size_t plane = (size_t)H * W;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float *p = px + (i * 3 + (size_t)c) * plane;
            for (size_t k = 0; k < plane; k++)
                p[k] = (p[k] - mean[c]) / std[c];
        }
}

int clip_data_tokens(const tok *t, const char *const *texts, int n, int ctx, int32_t pad,
                     int32_t **tokens, int32_t **lens, int *L, char *err, size_t errlen)
{
    *tokens = *lens = NULL;
    *L = 0;
    if (n < 1 || ctx < 2) {
        snprintf(err, errlen, "captions: %d texts, context %d: need texts and a context of at "
                 "least 2", n, ctx);
        return -EINVAL;
    }
    int32_t *tk = malloc((size_t)n * (size_t)ctx * sizeof *tk);
    int32_t *ln = malloc((size_t)n * sizeof *ln);
    size_t cap = 256;
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = 0, maxl = 1;
    if (!tk || !ln || !ids)
        goto nomem;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(texts[i]), got = 0;
        tok_err te = {0};
        int r = tok_encode(t, texts[i], len, TOK_ENC_ADD_SPECIAL, ids, cap, &got, &te);
        if (r == TOK_ESPACE) {
            int32_t *ni = realloc(ids, got * sizeof *ids);
            if (!ni)
                goto nomem;
            ids = ni;
            cap = got;
            r = tok_encode(t, texts[i], len, TOK_ENC_ADD_SPECIAL, ids, cap, &got, &te);
        }
        if (r) {
            snprintf(err, errlen, "caption %d ('%.80s'): %s", i, texts[i], te.msg);
            rc = r == TOK_ENOMEM ? -ENOMEM : -EINVAL;
            goto fail;
        }
        if (tok_clip_truncate(ids, &got, (size_t)ctx) || got < 1) {
            snprintf(err, errlen, "caption %d ('%.80s'): cannot be truncated to %d tokens", i,
                     texts[i], ctx);
            rc = -EINVAL;
            goto fail;
        }
        memcpy(tk + (size_t)i * ctx, ids, got * sizeof *ids);
        ln[i] = (int32_t)got;
        if ((int)got > maxl)
            maxl = (int)got;
    }
    /* compact to the longest caption's stride, padded */
    for (int i = 0; i < n; i++) {
        int32_t *dst = tk + (size_t)i * maxl;
        memmove(dst, tk + (size_t)i * ctx, (size_t)ln[i] * sizeof *dst);
        for (int k = ln[i]; k < maxl; k++)
            dst[k] = pad;
    }
    free(ids);
    int32_t *shrunk = realloc(tk, (size_t)n * (size_t)maxl * sizeof *tk);
    *tokens = shrunk ? shrunk : tk;
    *lens = ln;
    *L = maxl;
    return 0;
nomem:
    snprintf(err, errlen, "captions: out of memory for %d texts", n);
    rc = -ENOMEM;
fail:
    free(tk);
    free(ln);
    free(ids);
    return rc;
}
