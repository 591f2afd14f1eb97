/* cli_pretrain_clip.c - `alignd pretrain clip`: trains a small CLIP model
 * (trn_clip.h) on an image-caption folder (the shapes set of
 * models/gen/gen_shapes.py) and writes a Hugging Face CLIP folder that the
 * daemon serves for /v1/classify.
 *
 * Steps: read DIR/train.jsonl (and DIR/test.jsonl, DIR/meta.json when
 * there), learn a CLIP-format BPE tokenizer from the training captions
 * (clip_data_bpe.h: every caption word becomes one token; other text falls
 * back to bytes), decode and preprocess every image as the server will
 * (clip_data.h; the mean and std of the training pixels, or CLIP's, go to
 * preprocessor_config.json), then contrastive training (trn_clip_train.h)
 * with a progress line on stderr, zero-shot evaluation on the test records
 * along the way (--eval-every) and at the end, split into seen and unseen
 * colour-shape combinations ("unseen": true). The classes are meta.json's
 * "prompts" ("a photo of a {size} {color} {shape}", 128 for the shapes
 * set), or the distinct captions when there is no meta.json. A share of the
 * training captions (--period-share) ends with "." so that the server's
 * default template "a photo of a {label}." works as well as the bare
 * prompt.
 *
 * The folder is written next to OUT_DIR under a temporary name, its
 * tokenizer read back the way the server reads it (and checked to encode
 * every class prompt as in training), then moved into place in one rename
 * (an existing model folder is exchanged with it and removed).
 *
 * With --checkpoint the run saves its state as it goes; --resume continues
 * from it (the data and settings must be the same: a fingerprint in the
 * checkpoint is checked). --json prints the final figures as one JSON
 * object on stdout. Exit status: 0, 1 (data or runtime failure), 2 (bad
 * usage). */
#include <cblas.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_opts.h"
#include "clip_data.h"
#include "clip_data_bpe.h"
#include "fnv.h"
#include "rng.h"
#include "tok.h"
#include "tok_load.h"
#include "trn_ckpt.h"
#include "trn_clip.h"
#include "trn_clip_train.h"

#define PC "alignd pretrain clip"

typedef struct pclip_opts {
    const char *data, *out, *ckpt, *act, *norm, *schedule;
    double max_images, image_size, patch, v_width, v_layers, v_heads, v_ff;
    double t_width, t_layers, t_heads, t_ff, ctx, proj, vocab;
    double steps, stop_after, batch, warmup, eval_every, log_every, ckpt_every, seed;
    double lr, min_lr, wd, clip, period_share, threads;
    trn_sched_kind sched;
    bool resume, json;
} pclip_opts;

static int pclip__usage(void)
{
    fprintf(stderr,
            "usage: alignd pretrain clip --data DIR -o OUT_DIR [options]\n"
            "  --data DIR          train.jsonl, test.jsonl, meta.json and the images, as\n"
            "                      models/gen/gen_shapes.py writes them\n"
            "  -o, --out DIR       the model folder to write (replaced as a whole)\n"
            "  --max-images N      use the first N training records (default all)\n"
            "shape:\n"
            "  --image-size N --patch N    input size and patch (default meta.json's size\n"
            "                      or 32, and 8)\n"
            "  --vision-width N --vision-layers N --vision-heads N --vision-ff N\n"
            "                      ViT (default 96, 4, 4, 4 x width)\n"
            "  --text-width N --text-layers N --text-heads N --text-ff N\n"
            "                      text transformer (default 64, 2, 4, 4 x width)\n"
            "  --ctx N             text context in tokens (default 32)\n"
            "  --proj N            shared embedding size (default 64)\n"
            "  --vocab N           tokenizer size limit, >= 514 (default: every caption word\n"
            "                      one token)\n"
            "  --act quick_gelu|gelu    MLP activation (default quick_gelu)\n"
            "training:\n"
            "  --steps N --batch N       optimizer steps, pairs per step (default 1000, 64)\n"
            "  --lr X --min-lr X --warmup N --schedule cosine|linear|constant\n"
            "                      (default 2e-3, 0, steps/20, cosine)\n"
            "  --wd X --clip X     AdamW weight decay, gradient-norm clip (default 0.2, 1.0)\n"
            "  --period-share X    share of training captions ending with \".\" (default 0.5)\n"
            "  --norm data|clip    pixel mean/std: of the training images or CLIP's\n"
            "                      (default data)\n"
            "  --log-every N --eval-every N  progress lines; zero-shot on test.jsonl\n"
            "                      (default steps/20, steps/5; 0: at the end only)\n"
            "  --checkpoint FILE --checkpoint-every N --resume\n"
            "  --stop-after N      stop at step N (resume later with --resume)\n"
            "  --seed N            initialisation, batches, captions (default 1)\n"
            "  --json              print the final figures as JSON on stdout\n"
            "  -t N                threads for the matrix products\n");
    return 2;
}

#define PO(f) offsetof(pclip_opts, f)
#define PN(name, f, lo, hi) {name, CLI_OPT_NUM, PO(f), lo, hi}
#define PS(name, f) {name, CLI_OPT_STR, PO(f), 0, 0}
#define PF(name, f) {name, CLI_OPT_FLAG, PO(f), 0, 0}
static const cli_opt pclip__opts[] = {
    PS("--data", data), PS("-o", out), PS("--out", out), PS("--checkpoint", ckpt),
    PS("--act", act), PS("--norm", norm), PS("--schedule", schedule),
    PF("--resume", resume), PF("--json", json),
    PN("--max-images", max_images, 0, 1e9), PN("--image-size", image_size, 1, 4096),
    PN("--patch", patch, 1, 4096), PN("--vision-width", v_width, 1, 4096),
    PN("--vision-layers", v_layers, 0, 64), PN("--vision-heads", v_heads, 1, 256),
    PN("--vision-ff", v_ff, 0, 65536), PN("--text-width", t_width, 1, 4096),
    PN("--text-layers", t_layers, 0, 64), PN("--text-heads", t_heads, 1, 256),
    PN("--text-ff", t_ff, 0, 65536), PN("--ctx", ctx, 2, 4096), PN("--proj", proj, 1, 4096),
    PN("--vocab", vocab, 514, 1 << 20), PN("--steps", steps, 1, 1e9),
    PN("--stop-after", stop_after, 0, 1e9), PN("--batch", batch, 2, TRN_CLIP_MAX_BATCH),
    PN("--warmup", warmup, 0, 1e9), PN("--eval-every", eval_every, 0, 1e9),
    PN("--log-every", log_every, 1, 1e9), PN("--checkpoint-every", ckpt_every, 0, 1e9),
    PN("--seed", seed, 0, 1.8e19), PN("--lr", lr, 0, 10), PN("--min-lr", min_lr, 0, 10),
    PN("--wd", wd, 0, 10), PN("--clip", clip, 0, 1e9), PN("--period-share", period_share, 0, 1),
    PN("-t", threads, 1, 1024),
};
#undef PO
#undef PN
#undef PS
#undef PF

static int pclip__parse(pclip_opts *o, int argc, char **argv)
{
    *o = (pclip_opts){.image_size = 0, .patch = 8, .v_width = 96, .v_layers = 4,
                      .v_heads = 4, .t_width = 64, .t_layers = 2, .t_heads = 4, .ctx = 32,
                      .proj = 64, .steps = 1000, .batch = 64, .warmup = -1, .eval_every = -1,
                      .log_every = -1, .seed = 1, .lr = 2e-3, .min_lr = 0, .wd = 0.2,
                      .clip = 1.0, .period_share = 0.5, .act = "quick_gelu", .norm = "data",
                      .schedule = "cosine"};
    int rc = cli_opts_parse("pretrain clip", pclip__opts,
                            sizeof(pclip__opts) / sizeof(pclip__opts[0]), o, argc, argv);
    if (rc)
        return rc == 1 ? pclip__usage() : 2;
    if (!o->data || !o->out)
        return pclip__usage();
    if (o->resume && !o->ckpt) {
        fprintf(stderr, PC ": --resume needs --checkpoint FILE\n");
        return 2;
    }
    if (cli_opts_schedule("pretrain clip", o->schedule, &o->sched))
        return 2;
    if (strcmp(o->norm, "data") && strcmp(o->norm, "clip")) {
        fprintf(stderr, PC ": --norm must be data or clip\n");
        return 2;
    }
    trn_clip_act a;
    if (trn_clip_act_parse(o->act, &a)) {
        fprintf(stderr, PC ": --act must be quick_gelu, gelu or gelu_new\n");
        return 2;
    }
    if (o->v_ff == 0)
        o->v_ff = 4 * o->v_width;
    if (o->t_ff == 0)
        o->t_ff = 4 * o->t_width;
    if (o->warmup < 0)
        o->warmup = floor(o->steps / 20);
    if (o->log_every < 0)
        o->log_every = fmax(1, floor(o->steps / 20));
    if (o->eval_every < 0)
        o->eval_every = fmax(1, floor(o->steps / 5));
    return 0;
}

/* ---- the data ------------------------------------------------------------------ */

typedef struct pclip_data {
    clip_data_set train, test;
    json_t *meta;                /* NULL when there is no meta.json */
    image_preproc pp;
    int S;
    float *train_px, *test_px;   /* [n, 3, S, S] */
    int32_t *tokens, *lens;      /* training captions [train.n, L] */
    int L;
    /* zero-shot classes */
    char **prompts;              /* [n_class], owned */
    const clip_data_rec **proto; /* [n_class] a record with that caption (attributes) */
    int n_class;
    int32_t *cls_tokens, *cls_lens; /* [n_class, cls_L] */
    int cls_L;
    int32_t *cls_tokens_p, *cls_lens_p; /* the prompts with "." */
    int cls_L_p;
    int32_t *test_label;         /* [n_test_used] class of each evaluated test image */
    int *test_index;             /* [n_test_used] its record */
    int n_test_used;
    float *test_used_px;         /* test_px compacted to the evaluated images */
} pclip_data;

static void pclip__data_free(pclip_data *d)
{
    clip_data_set_free(&d->train);
    clip_data_set_free(&d->test);
    json_decref(d->meta);
    free(d->train_px);
    free(d->test_px);
    free(d->tokens);
    free(d->lens);
    for (int i = 0; d->prompts && i < d->n_class; i++)
        free(d->prompts[i]);
    free(d->prompts);
    free(d->proto);
    free(d->cls_tokens);
    free(d->cls_lens);
    free(d->cls_tokens_p);
    free(d->cls_lens_p);
    free(d->test_label);
    free(d->test_index);
    if (d->test_used_px != d->test_px)
        free(d->test_used_px);
    memset(d, 0, sizeof *d);
}

static bool pclip__exists(const char *dir, const char *name)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

/* Reads the records and meta.json. */
static int pclip__read(const pclip_opts *o, pclip_data *d)
{
    char path[4096], err[1024];
    struct stat st;
    if (stat(o->data, &st)) {
        fprintf(stderr, PC ": --data %s: %s\n", o->data, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, PC ": --data %s is not a folder\n", o->data);
        return -1;
    }
    snprintf(path, sizeof path, "%s/train.jsonl", o->data);
    if (access(path, R_OK)) {
        fprintf(stderr, PC ": %s: %s (--data must be a folder with train.jsonl, as "
                "models/gen/gen_shapes.py writes)\n", path, strerror(errno));
        return -1;
    }
    if (clip_data_read(&d->train, path, (int)o->max_images, err, sizeof err)) {
        fprintf(stderr, PC ": %s\n", err);
        return -1;
    }
    if (d->train.n < (int)o->batch) {
        fprintf(stderr, PC ": %s holds %d records, fewer than a batch (%d)\n", path,
                d->train.n, (int)o->batch);
        return -1;
    }
    snprintf(path, sizeof path, "%s/test.jsonl", o->data);
    if (pclip__exists(o->data, "test.jsonl") &&
        clip_data_read(&d->test, path, 0, err, sizeof err)) {
        fprintf(stderr, PC ": %s\n", err);
        return -1;
    }
    snprintf(path, sizeof path, "%s/meta.json", o->data);
    if (pclip__exists(o->data, "meta.json")) {
        json_error_t je;
        d->meta = json_load_file(path, 0, &je);
        if (!json_is_object(d->meta)) {
            fprintf(stderr, PC ": %s: line %d: %s\n", path, je.line,
                    d->meta ? "not a JSON object" : je.text);
            return -1;
        }
    }
    return 0;
}

static int pclip__cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The zero-shot classes: meta.json's prompts, or the distinct captions. */
static int pclip__classes(pclip_data *d, const char *dir)
{
    json_t *pr = d->meta ? json_object_get(d->meta, "prompts") : NULL;
    size_t cap = json_is_array(pr) ? json_array_size(pr) : (size_t)(d->train.n + d->test.n);
    d->prompts = calloc(cap ? cap : 1, sizeof *d->prompts);
    d->proto = calloc(cap ? cap : 1, sizeof *d->proto);
    if (!d->prompts || !d->proto) {
        fprintf(stderr, PC ": out of memory\n");
        return -1;
    }
    if (json_is_array(pr)) {
        for (size_t i = 0; i < cap; i++) {
            const char *s = json_string_value(json_array_get(pr, i));
            if (!s || !*s) {
                fprintf(stderr, PC ": %s/meta.json: prompts[%zu] is not a non-empty string\n",
                        dir, i);
                return -1;
            }
            if (!(d->prompts[d->n_class++] = strdup(s))) {
                fprintf(stderr, PC ": out of memory\n");
                return -1;
            }
        }
    } else {
        const clip_data_set *sets[2] = {&d->train, &d->test};
        for (int k = 0; k < 2; k++)
            for (int i = 0; i < sets[k]->n; i++)
                if (!(d->prompts[d->n_class++] = strdup(sets[k]->r[i].caption))) {
                    fprintf(stderr, PC ": out of memory\n");
                    return -1;
                }
        qsort(d->prompts, (size_t)d->n_class, sizeof *d->prompts, pclip__cmp_str);
        int u = 0;
        for (int i = 0; i < d->n_class; i++) {
            if (u && !strcmp(d->prompts[u - 1], d->prompts[i]))
                free(d->prompts[i]);
            else
                d->prompts[u++] = d->prompts[i];
        }
        d->n_class = u;
    }
    if (d->n_class > TRN_CLIP_MAX_BATCH) {
        fprintf(stderr, PC ": %d zero-shot classes, at most %d\n", d->n_class,
                TRN_CLIP_MAX_BATCH);
        return -1;
    }
    /* a record per class, for its attributes */
    const clip_data_set *sets[2] = {&d->test, &d->train};
    for (int c = 0; c < d->n_class; c++)
        for (int k = 0; k < 2 && !d->proto[c]; k++)
            for (int i = 0; i < sets[k]->n && !d->proto[c]; i++)
                if (!strcmp(sets[k]->r[i].caption, d->prompts[c]))
                    d->proto[c] = &sets[k]->r[i];
    return 0;
}

static int pclip__find_class(const pclip_data *d, const char *caption)
{
    for (int c = 0; c < d->n_class; c++)
        if (!strcmp(d->prompts[c], caption))
            return c;
    return -1;
}

/* Decodes the images, normalises them and sets d->pp. */
static int pclip__images(const pclip_opts *o, pclip_data *d)
{
    char err[1024];
    image_preproc_default(&d->pp);
    d->pp.shortest_edge = d->pp.crop_h = d->pp.crop_w = d->S;
    image_preproc raw = d->pp;
    raw.do_normalize = false;
    const size_t npx = (size_t)3 * d->S * d->S;
    d->train_px = malloc((size_t)d->train.n * npx * sizeof(float));
    d->test_px = malloc(((size_t)d->test.n + 1) * npx * sizeof(float));
    if (!d->train_px || !d->test_px) {
        fprintf(stderr, PC ": out of memory for %d + %d images of %dx%d\n", d->train.n,
                d->test.n, d->S, d->S);
        return -1;
    }
    if (clip_data_pixels(&d->train, o->data, &raw, d->train_px, err, sizeof err) ||
        clip_data_pixels(&d->test, o->data, &raw, d->test_px, err, sizeof err)) {
        fprintf(stderr, PC ": %s\n", err);
        return -1;
    }
    if (!strcmp(o->norm, "data"))
        clip_data_channel_stats(d->train_px, (size_t)d->train.n, d->S, d->S, d->pp.mean,
                                d->pp.std);
    clip_data_normalize(d->train_px, (size_t)d->train.n, d->S, d->S, d->pp.mean, d->pp.std);
    clip_data_normalize(d->test_px, (size_t)d->test.n, d->S, d->S, d->pp.mean, d->pp.std);
    /* the test images whose caption is a class */
    d->test_label = malloc(((size_t)d->test.n + 1) * sizeof *d->test_label);
    d->test_index = malloc(((size_t)d->test.n + 1) * sizeof *d->test_index);
    if (!d->test_label || !d->test_index) {
        fprintf(stderr, PC ": out of memory\n");
        return -1;
    }
    int skipped = 0;
    for (int i = 0; i < d->test.n; i++) {
        int c = pclip__find_class(d, d->test.r[i].caption);
        if (c < 0) {
            skipped++;
            continue;
        }
        d->test_label[d->n_test_used] = c;
        d->test_index[d->n_test_used++] = i;
    }
    if (skipped) {
        fprintf(stderr, PC ": %d test records have a caption that is no zero-shot class; "
                "they are left out of the evaluation\n", skipped);
        d->test_used_px = malloc(((size_t)d->n_test_used + 1) * npx * sizeof(float));
        if (!d->test_used_px) {
            fprintf(stderr, PC ": out of memory\n");
            return -1;
        }
        for (int k = 0; k < d->n_test_used; k++)
            memcpy(d->test_used_px + (size_t)k * npx, d->test_px + (size_t)d->test_index[k] * npx,
                   npx * sizeof(float));
    } else {
        d->test_used_px = d->test_px;
    }
    return 0;
}

/* The training captions (a share with "."), tokenized. */
static int pclip__captions(const pclip_opts *o, pclip_data *d, const tok *t, int32_t eot)
{
    char err[1024];
    int n = d->train.n, rc = -1;
    char **texts = calloc((size_t)n, sizeof *texts);
    rng r;
    rng_seed(&r, (uint64_t)o->seed ^ 0xc1a551f1ull);
    for (int i = 0; texts && i < n; i++) {
        const char *c = d->train.r[i].caption;
        bool period = rng_uniform(&r) < o->period_share;
        size_t l = strlen(c);
        if (!(texts[i] = malloc(l + 2))) {
            fprintf(stderr, PC ": out of memory for the captions\n");
            goto out;
        }
        memcpy(texts[i], c, l + 1);
        if (period && l && c[l - 1] != '.')
            memcpy(texts[i] + l, ".", 2);
    }
    if (!texts) {
        fprintf(stderr, PC ": out of memory for the captions\n");
        goto out;
    }
    if (clip_data_tokens(t, (const char *const *)texts, n, (int)o->ctx, eot, &d->tokens,
                         &d->lens, &d->L, err, sizeof err)) {
        fprintf(stderr, PC ": %s/train.jsonl: %s\n", o->data, err);
        goto out;
    }
    /* the class prompts, bare and with "." */
    char **pt = calloc((size_t)d->n_class, sizeof *pt);
    if (!pt) {
        fprintf(stderr, PC ": out of memory for the prompts\n");
        goto out;
    }
    bool ok = true;
    for (int i = 0; i < d->n_class && ok; i++) {
        size_t l = strlen(d->prompts[i]);
        ok = (pt[i] = malloc(l + 2)) != NULL;
        if (ok)
            memcpy(pt[i], d->prompts[i], l), memcpy(pt[i] + l, ".", 2);
    }
    if (ok && !clip_data_tokens(t, (const char *const *)d->prompts, d->n_class, (int)o->ctx,
                                eot, &d->cls_tokens, &d->cls_lens, &d->cls_L, err, sizeof err) &&
        !clip_data_tokens(t, (const char *const *)pt, d->n_class, (int)o->ctx, eot,
                          &d->cls_tokens_p, &d->cls_lens_p, &d->cls_L_p, err, sizeof err))
        rc = 0;
    else
        fprintf(stderr, PC ": zero-shot prompts: %s\n", ok ? err : "out of memory");
    for (int i = 0; i < d->n_class; i++)
        free(pt[i]);
    free(pt);
out:
    for (int i = 0; texts && i < n; i++)
        free(texts[i]);
    free(texts);
    return rc;
}

/* ---- zero-shot evaluation ---------------------------------------------------- */

typedef struct pclip_score {
    int n, full, color_shape, shape, color, size;
} pclip_score;

typedef struct pclip_eval {
    pclip_score seen, unseen;
} pclip_eval;

static bool pclip__same(const char *a, const char *b)
{
    return a && b && !strcmp(a, b);
}

static int pclip__eval(trn_clip *m, const pclip_data *d, bool period, pclip_eval *ev,
                       char *err, size_t errlen)
{
    memset(ev, 0, sizeof *ev);
    if (d->n_test_used == 0)
        return 0;
    int32_t *pred = malloc((size_t)d->n_test_used * sizeof *pred);
    if (!pred) {
        snprintf(err, errlen, "zero-shot: out of memory");
        return -ENOMEM;
    }
    double acc = 0;
    int rc = trn_clip_zero_shot(m, d->test_used_px, d->n_test_used, d->test_label,
                                period ? d->cls_tokens_p : d->cls_tokens,
                                period ? d->cls_lens_p : d->cls_lens, d->n_class,
                                period ? d->cls_L_p : d->cls_L, &acc, pred, err, errlen);
    for (int k = 0; !rc && k < d->n_test_used; k++) {
        const clip_data_rec *r = &d->test.r[d->test_index[k]], *p = d->proto[pred[k]];
        pclip_score *s = r->unseen ? &ev->unseen : &ev->seen;
        s->n++;
        s->full += pred[k] == d->test_label[k];
        bool sh = p && pclip__same(p->shape, r->shape), co = p && pclip__same(p->color, r->color);
        s->shape += sh;
        s->color += co;
        s->color_shape += sh && co;
        s->size += p && pclip__same(p->size, r->size);
    }
    free(pred);
    return rc;
}

static double pclip__frac(int a, int n)
{
    return n ? (double)a / n : NAN;
}

static void pclip__print_score(const char *name, const pclip_score *s)
{
    fprintf(stderr, PC ":   %-6s %5d images: top-1 %.3f | colour+shape %.3f | shape %.3f | "
            "colour %.3f | size %.3f\n", name, s->n, pclip__frac(s->full, s->n),
            pclip__frac(s->color_shape, s->n), pclip__frac(s->shape, s->n),
            pclip__frac(s->color, s->n), pclip__frac(s->size, s->n));
}

static json_t *pclip__score_json(const pclip_score *s)
{
    json_t *j = json_object();
    json_object_set_new(j, "n", json_integer(s->n));
    const char *k[] = {"accuracy", "color_shape", "shape", "color", "size"};
    int v[] = {s->full, s->color_shape, s->shape, s->color, s->size};
    for (int i = 0; i < 5; i++)
        json_object_set_new(j, k[i], s->n ? json_real((double)v[i] / s->n) : json_null());
    return j;
}

/* ---- the run's fingerprint (checked on --resume) ------------------------------ */

static char *pclip__fingerprint(const pclip_opts *o, const pclip_data *d,
                                const clip_data_bpe *v)
{
    uint64_t h = FNV1A64_BASIS;
    for (int i = 0; i < d->train.n; i++) {
        h = fnv1a64(h, d->train.r[i].caption, strlen(d->train.r[i].caption) + 1);
        h = fnv1a64(h, d->train.r[i].image, strlen(d->train.r[i].image) + 1);
    }
    h = fnv1a64(h, d->train_px, (size_t)d->train.n * 3 * d->S * d->S * sizeof(float));
    h = fnv1a64(h, d->tokens, (size_t)d->train.n * d->L * sizeof(int32_t));
    char *s = NULL;
    if (asprintf(&s, "train %d records fnv %016llx; vocab %zu; image %d patch %d vision %.0f/"
                 "%.0f/%.0f/%.0f text %.0f/%.0f/%.0f/%.0f ctx %.0f proj %.0f act %s; batch %.0f "
                 "period %g norm %s seed %.0f", d->train.n, (unsigned long long)h, v->n_tokens,
                 d->S, (int)o->patch, o->v_width, o->v_layers, o->v_heads, o->v_ff, o->t_width,
                 o->t_layers, o->t_heads, o->t_ff, o->ctx, o->proj, o->act, o->batch,
                 o->period_share, o->norm, o->seed) < 0)
        return NULL;
    return s;
}

static int pclip__check_resume(const char *path, const char *fp)
{
    trn_ckpt_info info;
    void *blob = NULL;
    size_t blen = 0;
    eng_err e = {0};
    if (trn_ckpt_peek(path, &info, &blob, &blen, &e)) {
        fprintf(stderr, PC ": --resume: %s\n", e.msg);
        return -1;
    }
    int same = blob && strcmp(blob, fp) == 0;
    if (!same)
        fprintf(stderr, PC ": --resume: %s was made from other data or settings:\n"
                "  checkpoint: %s\n  this run:   %s\n", path, blob ? (char *)blob : "(none)", fp);
    else
        fprintf(stderr, PC ": resuming from %s at step %lld\n", path, (long long)info.step);
    free(blob);
    return same ? 0 : -1;
}

static int pclip__ckpt_save(trn_clip_train *t, const char *path, const char *fp)
{
    trn_ckpt_extra x = {.rngs = &t->data_rng, .n_rngs = 1, .blob = fp,
                        .blob_len = strlen(fp) + 1};
    eng_err e = {0};
    if (trn_ckpt_save(path, &t->ps, &t->opt, &x, &e)) {
        fprintf(stderr, PC ": checkpoint: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int pclip__ckpt_load(trn_clip_train *t, const char *path)
{
    trn_ckpt_extra x = {.rngs = &t->data_rng, .n_rngs = 1};
    eng_err e = {0};
    trn_optim_cfg keep = t->opt.cfg;
    if (trn_ckpt_load(path, &t->ps, &t->opt, &x, NULL, NULL, &e)) {
        fprintf(stderr, PC ": --resume: %s\n", e.msg);
        return -1;
    }
    t->opt.cfg = keep; /* this run's settings (e.g. more steps) win */
    return 0;
}

/* ---- the output folder --------------------------------------------------------- */

/* Whether an existing path may be replaced: a missing path, an empty
 * folder or a model folder (one with config.json). */
static int pclip__check_out(const char *out)
{
    struct stat st;
    if (stat(out, &st)) {
        if (errno == ENOENT)
            return 0;
        fprintf(stderr, PC ": -o %s: %s\n", out, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, PC ": -o %s exists and is not a folder\n", out);
        return -1;
    }
    DIR *dp = opendir(out);
    bool empty = true;
    struct dirent *de;
    while (dp && (de = readdir(dp)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            empty = false;
    if (dp)
        closedir(dp);
    if (!empty && !pclip__exists(out, "config.json")) {
        fprintf(stderr, PC ": -o %s is a folder that holds no model (no config.json); "
                "not replacing it\n", out);
        return -1;
    }
    return 0;
}

static int pclip__mkdirs(const char *path)
{
    char p[4096];
    if (snprintf(p, sizeof p, "%s", path) >= (int)sizeof p) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *s = p + 1; *s; s++)
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) && errno != EEXIST)
                return -1;
            *s = '/';
        }
    return mkdir(p, 0755) && errno != EEXIST ? -1 : 0;
}

/* Removes the plain files of a folder we wrote, then the folder; false when
 * something is left. */
static bool pclip__rmdir(const char *dir)
{
    DIR *dp = opendir(dir);
    struct dirent *de;
    while (dp && (de = readdir(dp))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        struct stat st;
        if (!lstat(p, &st) && S_ISREG(st.st_mode))
            unlink(p);
    }
    if (dp)
        closedir(dp);
    return rmdir(dir) == 0;
}

static void pclip__sync_parent(const char *path)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", path);
    char *slash = strrchr(p, '/');
    if (slash == p)
        slash[1] = '\0';
    else if (slash)
        *slash = '\0';
    else
        snprintf(p, sizeof p, ".");
    int fd = open(p, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* Moves the finished folder tmp to out: a rename, or an exchange with the
 * model folder there (then removed). */
static int pclip__install(const char *tmp, const char *out)
{
    char old[4200];
    struct stat st;
    if (stat(out, &st) && errno == ENOENT) {
        if (rename(tmp, out)) {
            fprintf(stderr, PC ": renaming %s to %s: %s\n", tmp, out, strerror(errno));
            return -1;
        }
    } else if (renameat2(AT_FDCWD, tmp, AT_FDCWD, out, RENAME_EXCHANGE) == 0) {
        if (!pclip__rmdir(tmp)) /* tmp is the old folder now */
            fprintf(stderr, PC ": note: the previous %s is left at %s\n", out, tmp);
    } else { /* a file system without exchange: move the old one aside first */
        snprintf(old, sizeof old, "%s.old-%ld", out, (long)getpid());
        if (rename(out, old) || rename(tmp, out)) {
            fprintf(stderr, PC ": replacing %s: %s\n", out, strerror(errno));
            return -1;
        }
        if (!pclip__rmdir(old))
            fprintf(stderr, PC ": note: the previous %s is left at %s\n", out, old);
    }
    pclip__sync_parent(out);
    return 0;
}

/* The tokenizer of the written folder, read as the server reads it, must
 * encode every class prompt as the training tokenizer does. */
static int pclip__verify_tok(const char *dir, const tok *t, const pclip_data *d)
{
    tok *u = NULL;
    tok_err te = {0};
    if (tok_load(&u, dir, &te)) {
        fprintf(stderr, PC ": the written tokenizer does not load: %s\n", te.msg);
        return -1;
    }
    int rc = 0;
    for (int c = 0; c < d->n_class && !rc; c++) {
        int32_t a[256], b[256];
        size_t na = 0, nb = 0;
        const char *p = d->prompts[c];
        if (tok_encode(t, p, strlen(p), TOK_ENC_ADD_SPECIAL, a, 256, &na, &te) ||
            tok_encode(u, p, strlen(p), TOK_ENC_ADD_SPECIAL, b, 256, &nb, &te) || na != nb ||
            memcmp(a, b, na * sizeof *a)) {
            fprintf(stderr, PC ": the written tokenizer encodes '%s' differently\n", p);
            rc = -1;
        }
    }
    tok_free(u);
    return rc;
}

static int pclip__write(const pclip_opts *o, const trn_clip *m, const clip_data_bpe *v,
                        const tok *t, const pclip_data *d)
{
    char tmp[4200], err[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->out, (long)getpid());
    if (pclip__mkdirs(tmp)) {
        fprintf(stderr, PC ": %s: %s\n", tmp, strerror(errno));
        return -1;
    }
    trn_clip_save_opts so = {.tok_dir = NULL, .preproc = &d->pp};
    if (clip_data_bpe_write(v, tmp, (int)o->ctx, err, sizeof err) ||
        trn_clip_save(m, tmp, &so, err, sizeof err)) {
        fprintf(stderr, PC ": %s\n", err);
        pclip__rmdir(tmp);
        return -1;
    }
    if (pclip__verify_tok(tmp, t, d) || pclip__install(tmp, o->out)) {
        pclip__rmdir(tmp);
        return -1;
    }
    return 0;
}

/* ---- the command ------------------------------------------------------------------ */

static double pclip__now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static trn_optim_cfg pclip__optim(const pclip_opts *o)
{
    trn_optim_cfg c = trn_clip_train_cfg_default().optim;
    cli_opts_optim(&c, o->sched, o->lr, o->min_lr, o->warmup, o->steps, o->wd, o->clip);
    return c;
}

typedef struct pclip_run {
    const pclip_opts *o;
    const pclip_data *d;
    trn_clip *m;
    trn_clip_train *t;
    const char *fp;
    double last_loss, last_acc, img_per_s;
} pclip_run;

static int pclip__train(pclip_run *r, const trn_clip_data *data)
{
    const pclip_opts *o = r->o;
    trn_clip_train *t = r->t;
    char err[1024];
    const int64_t steps = (int64_t)o->steps, stop = (int64_t)o->stop_after;
    const int log_every = (int)o->log_every, eval_every = (int)o->eval_every;
    const double t0 = pclip__now();
    const int64_t step0 = t->opt.step;
    t->sum_loss = t->sum_acc = 0;
    t->n_sum = 0;
    while (t->opt.step < steps && (stop <= 0 || t->opt.step < stop)) {
        trn_optim_stats st = {0};
        if (trn_clip_train_step(t, data, NULL, &st, err, sizeof err)) {
            fprintf(stderr, PC ": step %lld: %s\n", (long long)t->opt.step + 1, err);
            return -1;
        }
        const int64_t s = t->opt.step;
        const bool last = s == steps || s == stop;
        if (o->ckpt && ((o->ckpt_every > 0 && s % (int64_t)o->ckpt_every == 0) || last) &&
            pclip__ckpt_save(t, o->ckpt, r->fp))
            return -1;
        if (s % log_every && !last)
            continue;
        const double el = pclip__now() - t0;
        const int64_t done = s - step0;
        r->last_loss = t->n_sum ? t->sum_loss / t->n_sum : NAN;
        r->last_acc = t->n_sum ? t->sum_acc / t->n_sum : NAN;
        r->img_per_s = el > 0 ? (double)done * t->cfg.batch / el : 0;
        const int64_t end = stop > 0 && stop < steps ? stop : steps;
        int eta = done > 0 ? (int)(el / (double)done * (double)(end - s) + 0.5) : 0;
        fprintf(stderr, PC ": step %lld/%lld | loss %.4f | acc %.3f | lr %.2e | grad norm "
                "%.3f | scale %.1f | %.0f img/s | ETA %d:%02d", (long long)s, (long long)steps,
                r->last_loss, r->last_acc, st.lr, st.grad_norm, (double)trn_clip_scale(r->m),
                r->img_per_s, eta / 60, eta % 60);
        if (eval_every > 0 && s % eval_every == 0 && !last && r->d->n_test_used) {
            pclip_eval ev;
            if (pclip__eval(r->m, r->d, false, &ev, err, sizeof err)) {
                fprintf(stderr, "\n" PC ": zero-shot: %s\n", err);
                return -1;
            }
            fprintf(stderr, " | zero-shot seen %.3f unseen %.3f",
                    pclip__frac(ev.seen.full, ev.seen.n),
                    pclip__frac(ev.unseen.full, ev.unseen.n));
        }
        fputc('\n', stderr);
        t->sum_loss = t->sum_acc = 0;
        t->n_sum = 0;
    }
    return 0;
}

int cli_pretrain_clip(int argc, char **argv)
{
    pclip_opts o;
    int rc = pclip__parse(&o, argc, argv);
    if (rc)
        return rc;
    if (o.threads > 0)
        openblas_set_num_threads((int)o.threads);
    rc = 1;
    char err[1024], *fp = NULL;
    pclip_data d = {0};
    clip_data_bpe vocab = {0};
    tok *t = NULL;
    trn_clip *m = NULL;
    trn_clip_train tr = {0};
    if (pclip__check_out(o.out) || pclip__read(&o, &d) || pclip__classes(&d, o.data))
        goto out;
    json_int_t meta_size = d.meta ? json_integer_value(json_object_get(d.meta, "size")) : 0;
    const bool meta_prompts = d.meta && json_is_array(json_object_get(d.meta, "prompts"));
    d.S = o.image_size > 0 ? (int)o.image_size : meta_size > 0 ? (int)meta_size : 32;
    /* the tokenizer, from the training captions */
    const char **caps = malloc((size_t)d.train.n * sizeof *caps);
    if (!caps) {
        fprintf(stderr, PC ": out of memory\n");
        goto out;
    }
    for (int i = 0; i < d.train.n; i++)
        caps[i] = d.train.r[i].caption;
    rc = clip_data_bpe_train(&vocab, caps, (size_t)d.train.n, (size_t)o.vocab, 1, err,
                             sizeof err);
    free(caps);
    rc = rc ? rc : clip_data_bpe_tok(&vocab, &t, err, sizeof err);
    if (rc) {
        fprintf(stderr, PC ": %s\n", err);
        rc = 1;
        goto out;
    }
    rc = 1;
    const int32_t eot = (int32_t)vocab.n_tokens - 1;
    fprintf(stderr, PC ": %d training and %d test records; tokenizer: %zu tokens (%zu merges), "
            "%zu of %zu caption words whole\n", d.train.n, d.test.n, vocab.n_tokens,
            vocab.n_merges, vocab.n_single, vocab.n_words);
    const double t_img = pclip__now();
    if (pclip__images(&o, &d) || pclip__captions(&o, &d, t, eot))
        goto out;
    fprintf(stderr, PC ": %d + %d images decoded at %dx%d in %.1f s (%.0f MiB); pixel mean "
            "%.3f %.3f %.3f std %.3f %.3f %.3f; captions up to %d tokens; %d zero-shot classes "
            "(%s)\n", d.train.n, d.test.n, d.S, d.S, pclip__now() - t_img,
            (double)(d.train.n + d.test.n) * 3 * d.S * d.S * sizeof(float) / (1 << 20),
            d.pp.mean[0], d.pp.mean[1], d.pp.mean[2], d.pp.std[0], d.pp.std[1], d.pp.std[2],
            d.L, d.n_class, meta_prompts ? "meta.json prompts" : "the distinct captions");
    trn_clip_cfg mc = {0};
    trn_clip_act_parse(o.act, &mc.act_text);
    mc.act_vision = mc.act_text;
    mc.hp = (clip_hparams){.text_ctx = (int)o.ctx, .text_vocab = (int)vocab.n_tokens,
                           .text_width = (int)o.t_width, .vision_width = (int)o.v_width,
                           .image_size = d.S, .patch_size = (int)o.patch,
                           .proj_dim = (int)o.proj, .eot_id = eot,
                           .text_layers = (int)o.t_layers, .text_heads = (int)o.t_heads,
                           .text_ff = (int)o.t_ff, .vision_layers = (int)o.v_layers,
                           .vision_heads = (int)o.v_heads, .vision_ff = (int)o.v_ff};
    trn_clip_train_cfg tc = trn_clip_train_cfg_default();
    tc.batch = (int)o.batch;
    tc.steps = (int64_t)o.steps;
    tc.log_every = (int)o.log_every;
    tc.seed = (uint64_t)o.seed ^ 0x5eed;
    tc.optim = pclip__optim(&o);
    if (trn_clip_new(&m, &mc, (uint64_t)o.seed, err, sizeof err) ||
        trn_clip_train_init(&tr, m, &tc, err, sizeof err)) {
        fprintf(stderr, PC ": %s\n", err);
        goto out;
    }
    if (!(fp = pclip__fingerprint(&o, &d, &vocab)) ||
        (o.resume && (pclip__check_resume(o.ckpt, fp) || pclip__ckpt_load(&tr, o.ckpt))))
        goto out;
    fprintf(stderr, PC ": model %.3fM parameters (vision %dx%d patches of %d, %d wide, %d "
            "layers, %d heads; text %d wide, %d layers, %d heads, context %d; projection %d)\n",
            (double)trn_clip_n_weights(m) / 1e6, d.S / mc.hp.patch_size, d.S / mc.hp.patch_size,
            mc.hp.patch_size, mc.hp.vision_width, mc.hp.vision_layers, mc.hp.vision_heads,
            mc.hp.text_width, mc.hp.text_layers, mc.hp.text_heads, mc.hp.text_ctx,
            mc.hp.proj_dim);
    trn_clip_data data = {.n = d.train.n, .pixels = d.train_px, .L = d.L, .tokens = d.tokens,
                          .lens = d.lens};
    pclip_run run = {.o = &o, .d = &d, .m = m, .t = &tr, .fp = fp, .last_loss = NAN,
                     .last_acc = NAN};
    const double t_train = pclip__now();
    if (pclip__train(&run, &data))
        goto out;
    const double train_s = pclip__now() - t_train;
    pclip_eval ev = {0}, evp = {0};
    if (d.n_test_used && (pclip__eval(m, &d, false, &ev, err, sizeof err) ||
                          pclip__eval(m, &d, true, &evp, err, sizeof err))) {
        fprintf(stderr, PC ": zero-shot: %s\n", err);
        goto out;
    }
    if (pclip__write(&o, m, &vocab, t, &d))
        goto out;
    fprintf(stderr, PC ": wrote %s after %lld steps (%.0f s, %.0f img/s)\n", o.out,
            (long long)tr.opt.step, train_s, run.img_per_s);
    if (d.n_test_used) {
        fprintf(stderr, PC ": zero-shot on %d test images among %d prompts (chance %.4f):\n",
                d.n_test_used, d.n_class, 1.0 / d.n_class);
        pclip__print_score("seen", &ev.seen);
        pclip__print_score("unseen", &ev.unseen);
        fprintf(stderr, PC ": with \".\" after each prompt (the server's default template "
                "\"a photo of a {label}.\"): seen %.3f unseen %.3f\n",
                pclip__frac(evp.seen.full, evp.seen.n), pclip__frac(evp.unseen.full, evp.unseen.n));
    } else {
        fprintf(stderr, PC ": no test records (test.jsonl): no zero-shot figures\n");
    }
    if (o.json) {
        json_t *zs = json_pack("{s:i, s:s, s:f, s:o, s:o, s:o, s:o}", "classes", d.n_class,
                               "prompts", meta_prompts ? "meta.json" : "captions", "chance",
                               1.0 / d.n_class, "seen", pclip__score_json(&ev.seen), "unseen",
                               pclip__score_json(&ev.unseen), "seen_period",
                               pclip__score_json(&evp.seen), "unseen_period",
                               pclip__score_json(&evp.unseen));
        json_t *j = json_pack("{s:I, s:I, s:i, s:i, s:I, s:f, s:f, s:o}", "steps",
                              (json_int_t)tr.opt.step, "params",
                              (json_int_t)trn_clip_n_weights(m), "train_images", d.train.n,
                              "test_images", d.n_test_used, "vocab",
                              (json_int_t)vocab.n_tokens, "img_per_s", run.img_per_s,
                              "train_seconds", train_s, "zero_shot", zs);
        if (j) {
            json_object_set_new(j, "train_loss", isfinite(run.last_loss)
                                                     ? json_real(run.last_loss) : json_null());
            json_object_set_new(j, "train_accuracy", isfinite(run.last_acc)
                                                         ? json_real(run.last_acc) : json_null());
            char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (s)
                printf("%s\n", s);
            free(s);
            json_decref(j);
        }
    }
    rc = 0;
out:
    trn_clip_train_free(&tr);
    trn_clip_free(m);
    tok_free(t);
    clip_data_bpe_free(&vocab);
    pclip__data_free(&d);
    free(fp);
    return rc;
}
