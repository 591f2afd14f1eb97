/* models.h - the models the daemon serves: for each [model.NAME] section a
 * loaded model, its tokenizer, its chat template and its scheduler.
 *
 * Threads: models_load runs on a worker thread at start-up (it may take
 * long); models_start, models_find and models_free on the loop thread.
 * After models_start a served model is read-only; its scheduler takes
 * requests from the loop thread (scheduler.h).
 */
#ifndef MODELS_H
#define MODELS_H

#include <stdbool.h>

#include "cfg.h"
#include "chat_template.h"
#include "clip_batcher.h"
#include "embedder.h"
#include "model.h"
#include "pooling.h"
#include "scheduler.h"
#include "tok.h"

typedef struct served_model {
    const cfg_model *cfg;       /* borrowed from the daemon's cfg */
    model *m;                   /* decoders and encoders; NULL for CLIP */
    clip_model *clip;           /* CLIP models; NULL otherwise */
    clip_batcher *clipb;        /* NULL until models_start */
    image_preproc preproc;      /* CLIP's image preprocessing */
    tok *tok;
    sched *sched;               /* NULL until models_start, and for encoders */
    emb_batcher *emb;           /* NULL until models_start */
    pthread_mutex_t model_lock; /* one forward pass at a time (scheduler, embedder) */
    bool lock_init;
    bool decoder;               /* serves completions and chat */
    pool_kind pool;             /* embedding pooling */
    bool normalize;
    int n_ctx;                  /* per sequence */
    bool has_chat;              /* chat_kind is usable */
    chat_template_kind chat_kind;
    char chat_error[640];       /* why there is no chat template */
    char bos_text[64], eos_text[64]; /* special token text for templates */
    long created;               /* load time, seconds since the epoch */
} served_model;

typedef struct models_registry {
    served_model *items;        /* [n] in configuration order */
    int n;
} models_registry;

/* Loads every model of c (files, tokenizers, chat templates). Returns 0, or
 * -1 with a message naming the model, the file and the reason; then nothing
 * stays loaded. */
int models_load(models_registry *r, const cfg *c, char *err, size_t errlen);
/* Starts a scheduler per model. Returns 0 or -1 with err filled. */
int models_start(models_registry *r, char *err, size_t errlen);
/* Stops the schedulers (pending requests end as cancelled) and frees all.
 * Accepts an empty registry. */
void models_free(models_registry *r);
/* The model called `name`, or NULL. */
served_model *models_find(const models_registry *r, const char *name);

#endif
