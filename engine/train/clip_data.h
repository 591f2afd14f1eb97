/* clip_data.h - an image-caption set on disk for CLIP training (the shapes
 * set of models/gen/gen_shapes.py, or any folder laid out the same way):
 * reading its JSONL records, decoding and preprocessing its images as the
 * server does (image.h), and tokenizing captions for trn_clip_train.h.
 *
 * A record is one JSON object per line:
 *   {"image": "images/000005.png", "caption": "a photo of a small red
 *    triangle", "shape": ..., "color": ..., "size": ..., "unseen": true}
 * "image" (a path relative to the folder) and "caption" are required; the
 * other fields are optional (NULL / false when absent or not strings /
 * booleans). Blank lines are skipped.
 *
 * Errors: 0 or a negative errno (-EINVAL malformed, -ENOENT missing file,
 * -ENOMEM, -errno of a failed open) with a message in err naming the file
 * (and line) at fault.
 * Threads: no shared state.
 */
#ifndef CLIP_DATA_H
#define CLIP_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"
#include "tok.h"

typedef struct clip_data_rec {
    char *image;               /* as in the file (relative to the folder) */
    char *caption;
    char *shape, *color, *size; /* NULL when absent */
    bool unseen;
} clip_data_rec;

typedef struct clip_data_set {
    clip_data_rec *r;
    int n;
} clip_data_set;

/* Reads the JSONL file at path: at most max records (0: all). An empty
 * file gives n = 0. On failure *out is empty. */
int clip_data_read(clip_data_set *out, const char *path, int max, char *err, size_t errlen);
/* Accepts NULL; leaves *s empty. */
void clip_data_set_free(clip_data_set *s);

/* Decodes dir/<image> of each record (PNG or JPEG, at most 64 MiB and 64
 * Mpixels) and preprocesses it with pp (image_clip_pixels) into
 * out[i * 3 * crop_h * crop_w ...]. */
int clip_data_pixels(const clip_data_set *s, const char *dir, const image_preproc *pp,
                     float *out, char *err, size_t errlen);

/* Per-channel mean and standard deviation of n images [n, 3, H, W]. */
void clip_data_channel_stats(const float *px, size_t n, int H, int W, float mean[3],
                             float std[3]);
/* In place: x = (x - mean[c]) / std[c], as image_clip_pixels normalises. */
void clip_data_normalize(float *px, size_t n, int H, int W, const float mean[3],
                         const float std[3]);

/* Tokenizes texts[0..n) with TOK_ENC_ADD_SPECIAL (<|startoftext|> ...
 * <|endoftext|>), truncated to ctx as the server does (tok_clip_truncate),
 * into *tokens [n, *L] (right-padded with pad, *L the longest) and *lens
 * [n] (both new, caller frees). */
int clip_data_tokens(const tok *t, const char *const *texts, int n, int ctx, int32_t pad,
                     int32_t **tokens, int32_t **lens, int *L, char *err, size_t errlen);

#endif
