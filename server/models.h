/* models.h - the models the daemon serves: for each [model.NAME] section a
 * loaded model, its tokenizer, its chat template and its scheduler.
 *
 * Adapters: a decoder may serve LoRA adapters (the `adapters` key:
 * NAME=DIR,...; DIR a PEFT folder), chosen per request. Each name is a slot
 * holding the current version of that adapter, a reference-counted
 * served_adapter: a request takes a reference (models_adapter_get) and
 * gives it back when it has ended (models_adapter_put), so replacing a
 * slot's adapter later (hot swap) only has to publish a new version under
 * the slot lock and drop the slot's reference to the old one, which is
 * freed when its last request ends. The set of names is fixed after
 * models_load.
 *
 * Reward model: a decoder may carry a Bradley-Terry reward model (the
 * `reward_model` key: a folder from `alignd train reward`) on the same
 * weights, scored by POST /v1/rewards under model_lock.
 *
 * Threads: models_load runs on a worker thread at start-up (it may take
 * long); models_start, models_find and models_free on the loop thread.
 * After models_start a served model is read-only (the adapter slots
 * excepted, behind their lock); its scheduler takes requests from the loop
 * thread (scheduler.h). models_adapter_get and models_adapter_put are
 * thread-safe.
 */
#ifndef MODELS_H
#define MODELS_H

#include <stdatomic.h>
#include <stdbool.h>

#include "cfg.h"
#include "chat_template.h"
#include "clip_batcher.h"
#include "embedder.h"
#include "model.h"
#include "pooling.h"
#include "scheduler.h"
#include "tok.h"

/* Most adapters per model. */
#define MODELS_MAX_ADAPTERS 64

/* One version of a LoRA adapter: immutable while served. */
typedef struct served_adapter {
    atomic_int refs;            /* the slot's reference plus one per request */
    trn_lora *lora;             /* owned; only read while served */
    const char *name;           /* the slot's name (outlives every version) */
    long created;               /* load time, seconds since the epoch */
} served_adapter;

/* A named adapter of a served model. */
typedef struct adapter_slot {
    char name[CFG_MODEL_NAME_MAX];
    char *dir;                  /* PEFT folder it was loaded from (owned) */
    served_adapter *cur;        /* current version (the slot's reference);
                                   guarded by served_model.adapters_lock */
    atomic_ullong requests;     /* generation requests that named it */
} adapter_slot;

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
    adapter_slot *adapters;     /* [n_adapters], in configuration order */
    int n_adapters;
    pthread_mutex_t adapters_lock; /* guards every slot's `cur` */
    bool adapters_lock_init;
    struct trn_reward *reward;  /* the reward_model key's (NULL: none); borrows m;
                                   used only under model_lock */
    int reward_max_len, reward_max_prompt_len; /* its training truncation */
    bool reward_add_eos;        /* responses ended with EOS in training */
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

/* The adapter slot called `name` of sm, or NULL. Any thread. */
adapter_slot *models_adapter_slot(served_model *sm, const char *name);
/* A new reference to the current version of sm's adapter `name`, or NULL
 * when sm has none of that name. Any thread. */
served_adapter *models_adapter_get(served_model *sm, const char *name);
/* Gives back a reference from models_adapter_get; frees the version when
 * it was the last (the slot's reference is gone after a swap). Accepts
 * NULL. Any thread. */
void models_adapter_put(served_adapter *a);

#endif
