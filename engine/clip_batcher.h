/* clip_batcher.h - zero-shot classification and image embeddings for one
 * CLIP model, with concurrent requests batched.
 *
 * One thread per model collects requests, waits briefly (max_wait_ms) for
 * company, decodes and preprocesses their images (decoding happens here,
 * not on the loop thread), encodes all images of the batch in one
 * clip_encode_images call, encodes the label prompts that are not in the
 * LRU cache of text embeddings in one clip_encode_text call, and answers
 * each request through its callback.
 *
 * Classification (CLIP's prompt ensembling): each label's prompts (one per
 * template) are embedded and L2-normalised, averaged, normalised again;
 * logits = exp(logit_scale) * <image, label>, probabilities = softmax.
 *
 * Threads: create/free on the owner's thread; submit from any thread;
 * callbacks on the batcher's thread (quick; no calls back into it).
 */
#ifndef CLIP_BATCHER_H
#define CLIP_BATCHER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "clip.h"
#include "image.h"

typedef struct clip_batcher clip_batcher;

typedef struct clip_batcher_opts {
    int max_batch_images;   /* images per vision pass */
    int max_wait_ms;
    int queue_size;
    int cache_entries;      /* label-prompt embeddings kept (LRU) */
    image_limits limits;    /* for decoding */
    image_preproc preproc;
} clip_batcher_opts;

/* The answer, borrowed for the call:
 *   image + labels: probs/logits [n_labels], image_embedding [dim];
 *   image, no labels: image_embedding [dim] (normalised);
 *   no image (text embeddings): image_embedding holds n_labels rows of dim,
 *   one normalised vector per prompt. */
typedef void (*clip_done_fn)(void *ud, int status, const float *probs, const float *logits,
                             int n_labels, const float *image_embedding, int dim,
                             const char *error);

typedef struct clip_request {
    const char *image;       /* base64 or data URL (copied); NULL: text embeddings of the prompts */
    size_t image_len;
    int n_labels;            /* 0: only the image embedding; text mode: number of texts */
    int n_templates;         /* prompts per label (>= 1 when n_labels > 0); text mode: 1 */
    int32_t *const *prompts; /* [n_labels * n_templates] token sequences, label-major; copied */
    const int *prompt_lens;
    clip_done_fn done;
    void *ud;
} clip_request;

int clip_batcher_create(clip_batcher **out, clip_model *m, const clip_batcher_opts *o, char *err,
                        size_t errlen);
void clip_batcher_free(clip_batcher *b); /* queued requests get -ECANCELED */
/* 0, -EAGAIN (queue full), -EINVAL (err says why), -ENOMEM. */
int clip_batcher_submit(clip_batcher *b, const clip_request *r, char *err, size_t errlen);

typedef struct clip_batcher_stats {
    int queued;
    unsigned long long requests, images, batches, cache_hits, cache_misses;
} clip_batcher_stats;
void clip_batcher_stats_get(clip_batcher *b, clip_batcher_stats *out);

#endif
