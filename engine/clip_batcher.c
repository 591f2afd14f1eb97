/* clip_batcher.c - batched image encoding, label-embedding LRU cache and
 * zero-shot probabilities for one CLIP model. */
#include "clip_batcher.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the LRU cache of normalised prompt embeddings ---------------------- */

typedef struct clip__entry {
    uint64_t hash;
    int32_t *ids;
    int n;
    float *vec;                       /* [dim], L2-normalised */
    struct clip__entry *prev, *next;  /* LRU list, most recent first */
    struct clip__entry *chain;        /* hash bucket */
} clip__entry;

typedef struct clip__cache {
    clip__entry **buckets;
    size_t n_buckets;
    clip__entry *head, *tail;
    int n, cap, dim;
} clip__cache;

static uint64_t clip__hash(const int32_t *ids, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint32_t)ids[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void clip__lru_unlink(clip__cache *c, clip__entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->head = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void clip__lru_front(clip__cache *c, clip__entry *e) {
    e->next = c->head;
    if (c->head) c->head->prev = e;
    c->head = e;
    if (!c->tail) c->tail = e;
}

static clip__entry *clip__cache_get(clip__cache *c, const int32_t *ids, int n) {
    uint64_t h = clip__hash(ids, n);
    for (clip__entry *e = c->buckets[h % c->n_buckets]; e; e = e->chain)
        if (e->hash == h && e->n == n && !memcmp(e->ids, ids, (size_t)n * sizeof *ids)) {
            clip__lru_unlink(c, e);
            clip__lru_front(c, e);
            return e;
        }
    return NULL;
}

static void clip__entry_free(clip__entry *e) {
    if (!e) return;
    free(e->ids);
    free(e->vec);
    free(e);
}

/* Inserts (ids, vec); evicts the least recently used entry when full. */
static void clip__cache_put(clip__cache *c, const int32_t *ids, int n, const float *vec) {
    if (c->cap <= 0) return;
    if (c->n >= c->cap && c->tail) {
        clip__entry *old = c->tail;
        clip__lru_unlink(c, old);
        for (clip__entry **pe = &c->buckets[old->hash % c->n_buckets]; *pe; pe = &(*pe)->chain)
            if (*pe == old) {
                *pe = old->chain;
                break;
            }
        clip__entry_free(old);
        c->n--;
    }
    clip__entry *e = calloc(1, sizeof *e);
    if (!e) return;
    e->ids = malloc((size_t)n * sizeof *ids);
    e->vec = malloc((size_t)c->dim * sizeof *vec);
    if (!e->ids || !e->vec) {
        clip__entry_free(e);
        return; /* a cache miss next time, nothing worse */
    }
    memcpy(e->ids, ids, (size_t)n * sizeof *ids);
    memcpy(e->vec, vec, (size_t)c->dim * sizeof *vec);
    e->n = n;
    e->hash = clip__hash(ids, n);
    e->chain = c->buckets[e->hash % c->n_buckets];
    c->buckets[e->hash % c->n_buckets] = e;
    clip__lru_front(c, e);
    c->n++;
}

static void clip__cache_free(clip__cache *c) {
    while (c->head) {
        clip__entry *e = c->head;
        c->head = e->next;
        clip__entry_free(e);
    }
    free(c->buckets);
}

/* ---- requests and the batcher -------------------------------------------- */

typedef struct clip__req {
    char *image;
    size_t image_len;
    int n_labels, n_templates, n_prompts;
    int32_t **prompts;
    int *prompt_lens;
    clip_done_fn done;
    void *ud;
    struct clip__req *next;
} clip__req;

struct clip_batcher {
    clip_model *m;
    clip_batcher_opts o;
    int dim, S;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    clip__req *head, *tail; /* guarded by mu */
    int n_queued;
    bool stop;
    clip_batcher_stats stats;
    clip__cache cache;      /* batcher thread only */
};

static void clip__req_free(clip__req *r) {
    if (!r) return;
    for (int i = 0; r->prompts && i < r->n_prompts; i++) free(r->prompts[i]);
    free(r->prompts);
    free(r->prompt_lens);
    free(r->image);
    free(r);
}

static void clip__normalize(float *v, int n) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    float inv = (float)(1.0 / fmax(sqrt(ss), 1e-12));
    for (int i = 0; i < n; i++) v[i] *= inv;
}

/* Fills vecs[i] (normalised) for every prompt of the batch's requests,
 * from the cache or one clip_encode_text over the misses. */
static int clip__prompt_vectors(clip_batcher *b, clip__req **reqs, int n_reqs, float **vecs,
                                char *err, size_t errlen) {
    int total = 0;
    for (int r = 0; r < n_reqs; r++) total += reqs[r]->n_prompts;
    int32_t **miss_ids = malloc((size_t)(total ? total : 1) * sizeof *miss_ids);
    int *miss_lens = malloc((size_t)(total ? total : 1) * sizeof *miss_lens);
    int *miss_at = malloc((size_t)(total ? total : 1) * sizeof *miss_at);
    float *out = NULL;
    int n_miss = 0, k = 0, rc = 0;
    unsigned long long hits = 0;
    if (!miss_ids || !miss_lens || !miss_at) goto oom;
    for (int r = 0; r < n_reqs; r++)
        for (int p = 0; p < reqs[r]->n_prompts; p++, k++) {
            clip__entry *e = clip__cache_get(&b->cache, reqs[r]->prompts[p], reqs[r]->prompt_lens[p]);
            if (e) {
                memcpy(vecs[k], e->vec, (size_t)b->dim * sizeof(float));
                hits++;
            } else {
                miss_ids[n_miss] = reqs[r]->prompts[p];
                miss_lens[n_miss] = reqs[r]->prompt_lens[p];
                miss_at[n_miss++] = k;
            }
        }
    if (n_miss) {
        out = malloc((size_t)n_miss * (size_t)b->dim * sizeof *out);
        if (!out) goto oom;
        if ((rc = clip_encode_text(b->m, miss_ids, miss_lens, n_miss, out, err, errlen)) != 0) goto done;
        for (int i = 0; i < n_miss; i++) {
            float *v = out + (size_t)i * (size_t)b->dim;
            clip__normalize(v, b->dim);
            memcpy(vecs[miss_at[i]], v, (size_t)b->dim * sizeof(float));
            clip__cache_put(&b->cache, miss_ids[i], miss_lens[i], v);
        }
    }
    goto done;
oom:
    snprintf(err, errlen, "out of memory");
    rc = -ENOMEM;
done:
    pthread_mutex_lock(&b->mu);
    b->stats.cache_hits += hits;
    b->stats.cache_misses += (unsigned long long)n_miss;
    pthread_mutex_unlock(&b->mu);
    free(out);
    free(miss_ids), free(miss_lens), free(miss_at);
    return rc;
}

/* One batch: decode images, encode them together, embed the prompts (cache
 * first), then score labels (or return text vectors for text-only
 * requests). */
static void clip__run(clip_batcher *b, clip__req **reqs, int n) {
    char err[512];
    size_t px = (size_t)3 * (size_t)b->S * (size_t)b->S;
    float *pixels = malloc((size_t)n * px * sizeof *pixels);
    float *img = malloc((size_t)n * (size_t)b->dim * sizeof *img);
    int *img_at = malloc((size_t)n * sizeof *img_at);
    clip__req **good = malloc((size_t)n * sizeof *good);
    float *pv = NULL, **vecs = NULL;
    int n_good = 0, n_img = 0;
    if (!pixels || !img || !img_at || !good) {
        for (int i = 0; i < n; i++) reqs[i]->done(reqs[i]->ud, -ENOMEM, NULL, NULL, 0, NULL, 0, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++) { /* each image on its own: a bad one fails only its request */
        if (!reqs[i]->image) {
            img_at[n_good] = -1;
            good[n_good++] = reqs[i];
            continue;
        }
        image_u8 im = {0};
        eng_err e = {0};
        int rc = image_decode_base64(reqs[i]->image, reqs[i]->image_len, &b->o.limits, &im, &e);
        if (rc == 0) rc = image_clip_pixels(&im, &b->o.preproc, pixels + (size_t)n_img * px, &e);
        image_free(&im);
        if (rc != 0) {
            reqs[i]->done(reqs[i]->ud, -EINVAL, NULL, NULL, 0, NULL, 0, e.msg);
            continue;
        }
        img_at[n_good] = n_img++;
        good[n_good++] = reqs[i];
    }
    if (n_img && clip_encode_images(b->m, pixels, n_img, img, err, sizeof err) != 0) {
        for (int i = 0; i < n_good; i++) good[i]->done(good[i]->ud, -EIO, NULL, NULL, 0, NULL, 0, err);
        n_good = 0;
    }
    int total = 0;
    for (int i = 0; i < n_good; i++) total += good[i]->n_prompts;
    pv = malloc((size_t)(total ? total : 1) * (size_t)b->dim * sizeof *pv);
    vecs = malloc((size_t)(total ? total : 1) * sizeof *vecs);
    if (!pv || !vecs) {
        for (int i = 0; i < n_good; i++) good[i]->done(good[i]->ud, -ENOMEM, NULL, NULL, 0, NULL, 0, "out of memory");
        goto out;
    }
    for (int k = 0; k < total; k++) vecs[k] = pv + (size_t)k * (size_t)b->dim;
    if (n_good && total && clip__prompt_vectors(b, good, n_good, vecs, err, sizeof err) != 0) {
        for (int i = 0; i < n_good; i++) good[i]->done(good[i]->ud, -EIO, NULL, NULL, 0, NULL, 0, err);
        goto out;
    }
    float scale = clip_logit_scale(b->m);
    for (int i = 0, k = 0; i < n_good; i++) {
        clip__req *r = good[i];
        if (img_at[i] < 0) { /* text embeddings: the prompt vectors, normalised */
            r->done(r->ud, 0, NULL, NULL, r->n_prompts, vecs[k], b->dim, NULL);
            k += r->n_prompts;
            continue;
        }
        float *iv = img + (size_t)img_at[i] * (size_t)b->dim;
        clip__normalize(iv, b->dim);
        int nl = r->n_labels ? r->n_labels : 1;
        float *logits = malloc((size_t)nl * 2 * sizeof *logits);
        float *avg = malloc((size_t)b->dim * sizeof *avg);
        if (!logits || !avg) {
            r->done(r->ud, -ENOMEM, NULL, NULL, 0, NULL, 0, "out of memory");
            free(logits), free(avg);
            k += r->n_prompts;
            continue;
        }
        float *probs = logits + nl, mx = -INFINITY;
        for (int l = 0; l < r->n_labels; l++) { /* prompt ensembling */
            memset(avg, 0, (size_t)b->dim * sizeof *avg);
            for (int t = 0; t < r->n_templates; t++, k++)
                for (int d = 0; d < b->dim; d++) avg[d] += vecs[k][d];
            clip__normalize(avg, b->dim);
            double dot = 0;
            for (int d = 0; d < b->dim; d++) dot += (double)avg[d] * iv[d];
            logits[l] = (float)(scale * dot);
            if (logits[l] > mx) mx = logits[l];
        }
        double sum = 0;
        for (int l = 0; l < r->n_labels; l++) sum += exp((double)logits[l] - mx);
        for (int l = 0; l < r->n_labels; l++) probs[l] = (float)(exp((double)logits[l] - mx) / sum);
        r->done(r->ud, 0, probs, logits, r->n_labels, iv, b->dim, NULL);
        free(logits), free(avg);
    }
out:
    free(pv), free(vecs);
    free(pixels), free(img), free(img_at), free(good);
}

static void *clip__main(void *arg) {
    clip_batcher *b = arg;
    pthread_mutex_lock(&b->mu);
    while (!b->stop) {
        if (!b->head) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        if (b->o.max_wait_ms > 0 && b->n_queued < b->o.max_batch_images) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += (long)b->o.max_wait_ms * 1000000L;
            until.tv_sec += until.tv_nsec / 1000000000L;
            until.tv_nsec %= 1000000000L;
            while (!b->stop && b->n_queued < b->o.max_batch_images &&
                   pthread_cond_timedwait(&b->cv, &b->mu, &until) == 0) {
            }
            if (b->stop) break;
        }
        clip__req *reqs[256];
        int n = 0, cap = b->o.max_batch_images < 256 ? b->o.max_batch_images : 256;
        while (b->head && n < cap) {
            reqs[n++] = b->head;
            b->head = b->head->next;
            b->n_queued--;
        }
        if (!b->head) b->tail = NULL;
        b->stats.batches++;
        b->stats.images += (unsigned long long)n;
        b->stats.queued = b->n_queued;
        pthread_mutex_unlock(&b->mu);
        clip__run(b, reqs, n);
        for (int i = 0; i < n; i++) clip__req_free(reqs[i]);
        pthread_mutex_lock(&b->mu);
    }
    clip__req *rest = b->head;
    b->head = b->tail = NULL;
    pthread_mutex_unlock(&b->mu);
    while (rest) {
        clip__req *r = rest;
        rest = r->next;
        r->done(r->ud, -ECANCELED, NULL, NULL, 0, NULL, 0, "the model is shutting down");
        clip__req_free(r);
    }
    return NULL;
}

int clip_batcher_create(clip_batcher **out, clip_model *m, const clip_batcher_opts *o, char *err,
                        size_t errlen) {
    *out = NULL;
    if (o->max_batch_images < 1 || o->queue_size < 1 || o->max_wait_ms < 0) {
        snprintf(err, errlen, "clip batcher: need max_batch_images >= 1, queue_size >= 1");
        return -EINVAL;
    }
    clip_batcher *b = calloc(1, sizeof *b);
    if (!b) goto oom;
    b->m = m;
    b->o = *o;
    b->dim = clip_hp(m)->proj_dim;
    b->S = clip_hp(m)->image_size;
    b->cache.cap = o->cache_entries;
    b->cache.dim = b->dim;
    b->cache.n_buckets = (size_t)(o->cache_entries > 16 ? o->cache_entries : 16) * 2;
    b->cache.buckets = calloc(b->cache.n_buckets, sizeof *b->cache.buckets);
    if (!b->cache.buckets) goto oom_free;
    if (b->o.preproc.crop_h != b->S || b->o.preproc.crop_w != b->S) {
        snprintf(err, errlen, "clip: preprocessor crop %dx%d differs from the model's image size %d",
                 b->o.preproc.crop_w, b->o.preproc.crop_h, b->S);
        free(b->cache.buckets);
        free(b);
        return -EINVAL;
    }
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    if (pthread_create(&b->thread, NULL, clip__main, b) != 0) {
        pthread_mutex_destroy(&b->mu);
        pthread_cond_destroy(&b->cv);
        goto oom_free;
    }
    *out = b;
    return 0;
oom_free:
    free(b->cache.buckets);
    free(b);
oom:
    snprintf(err, errlen, "clip batcher: out of memory");
    return -ENOMEM;
}

void clip_batcher_free(clip_batcher *b) {
    if (!b) return;
    pthread_mutex_lock(&b->mu);
    b->stop = true;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->thread, NULL);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    clip__cache_free(&b->cache);
    free(b);
}

int clip_batcher_submit(clip_batcher *b, const clip_request *in, char *err, size_t errlen) {
    const clip_hparams *hp = clip_hp(b->m);
    if (in->n_labels < 0 || (in->n_labels > 0 && in->n_templates < 1)) {
        snprintf(err, errlen, "labels need at least one template");
        return -EINVAL;
    }
    int n_prompts = in->n_labels * (in->n_labels ? in->n_templates : 0);
    for (int i = 0; i < n_prompts; i++)
        if (in->prompt_lens[i] < 1 || in->prompt_lens[i] > hp->text_ctx) {
            snprintf(err, errlen, "prompt %d has %d tokens (1 to %d allowed)", i, in->prompt_lens[i], hp->text_ctx);
            return -EINVAL;
        }
    clip__req *r = calloc(1, sizeof *r);
    if (!r) goto oom;
    r->prompts = calloc((size_t)(n_prompts ? n_prompts : 1), sizeof *r->prompts);
    r->prompt_lens = malloc((size_t)(n_prompts ? n_prompts : 1) * sizeof *r->prompt_lens);
    if (!r->prompts || !r->prompt_lens) goto oom;
    if (in->image) {
        if (!(r->image = malloc(in->image_len + 1))) goto oom;
        memcpy(r->image, in->image, in->image_len);
        r->image[in->image_len] = '\0';
        r->image_len = in->image_len;
    }
    r->n_labels = in->n_labels;
    r->n_templates = in->n_templates;
    r->n_prompts = n_prompts;
    for (int i = 0; i < n_prompts; i++) {
        r->prompt_lens[i] = in->prompt_lens[i];
        if (!(r->prompts[i] = malloc((size_t)in->prompt_lens[i] * sizeof(int32_t)))) goto oom;
        memcpy(r->prompts[i], in->prompts[i], (size_t)in->prompt_lens[i] * sizeof(int32_t));
    }
    r->done = in->done;
    r->ud = in->ud;
    int rc = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stop) {
        snprintf(err, errlen, "the model is shutting down");
        rc = -ESHUTDOWN;
    } else if (b->n_queued >= b->o.queue_size) {
        snprintf(err, errlen, "the classification queue is full (%d requests)", b->o.queue_size);
        rc = -EAGAIN;
    } else {
        if (b->tail) b->tail->next = r;
        else b->head = r;
        b->tail = r;
        b->n_queued++;
        b->stats.requests++;
        b->stats.queued = b->n_queued;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc) clip__req_free(r);
    return rc;
oom:
    clip__req_free(r);
    snprintf(err, errlen, "out of memory");
    return -ENOMEM;
}

void clip_batcher_stats_get(clip_batcher *b, clip_batcher_stats *out) {
    pthread_mutex_lock(&b->mu);
    *out = b->stats;
    pthread_mutex_unlock(&b->mu);
}
