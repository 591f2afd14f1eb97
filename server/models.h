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
 * weights, scored by POST /v1/rewards under model_lock. The training loop
 * may replace it at run time (models_reward_install): its fields are
 * written under model_lock and a small metadata lock together, so a
 * scorer reads them under model_lock (models_reward_lock) and the loop
 * thread, which must not wait for a forward pass, reads the truncation
 * under the metadata lock only (models_reward_peek).
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
    /* The registry ids (store_train.h) the training loop's slot and reward
     * model serve ("" base / none): what trainer_sync compares with the
     * store. Written under the trainer's activation mutex or on the loop
     * thread. */
    char loop_adapter_id[32], loop_reward_id[32];
    int n_adapters;
    pthread_mutex_t adapters_lock; /* guards every slot's `cur` */
    bool adapters_lock_init;
    /* The reward model and its truncation: written (after models_start)
     * only by models_reward_install, under model_lock and the metadata
     * lock; read only through models_reward_lock / models_reward_peek /
     * models_reward_present, never directly. */
    struct trn_reward *reward;  /* NULL: none; borrows m */
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

/* A reward model as scored: what models_reward_lock hands out. */
typedef struct models_reward {
    struct trn_reward *rm;      /* borrowed while sm->model_lock is held */
    int max_len, max_prompt_len; /* the truncation it was trained with */
    bool add_eos;               /* responses end with EOS, as in training */
} models_reward;

/* Takes sm->model_lock; when sm has a reward model now, fills *out and
 * returns true with the lock still held (models_reward_unlock gives it
 * back: *out is valid until then), else releases the lock and returns
 * false. The reward model may be replaced at run time, but only under
 * model_lock, so what *out holds cannot change while the lock is held.
 * Waits for a running forward pass: any thread but the loop thread. */
bool models_reward_lock(served_model *sm, models_reward *out);
void models_reward_unlock(served_model *sm);
/* Whether sm serves a reward model now, and (out may be NULL) the
 * truncation it was trained with (out->rm is set to NULL: the model itself
 * is only handed out under model_lock). A snapshot for validating and
 * tokenizing a request: the reward model may be replaced before the
 * scoring, which compares the truncation again under models_reward_lock.
 * Never waits for a forward pass: any thread, the loop thread included. */
bool models_reward_peek(served_model *sm, models_reward *out);
/* models_reward_peek without the truncation. Any thread. */
bool models_reward_present(served_model *sm);
/* Loads the reward-model folder dir (from `alignd train reward` or the
 * training loop) onto sm's weights with the truncation its
 * reward_config.json records, and serves it (models_reward_install).
 * Returns 0, or -1 with err filled (sm keeps what it served). After
 * models_start; any thread but the loop thread, or the loop thread
 * before the daemon is ready (nothing holds model_lock for long then). */
int models_reward_load(served_model *sm, const char *dir, char *err, size_t errlen);

/* ---- the closed loop (server/trainer.c) -------------------------------------
 * A decoder served with training.enabled has a reserved adapter slot,
 * MODELS_LOOP_SLOT, holding the active adapter of the loop (empty: the
 * base). A request that names just the model gets the slot's current
 * version (models_adapter_resolve); "base" forces the base. */
#define MODELS_LOOP_SLOT "active"
#define MODELS_BASE_NAME "base"

/* Publishes lo (stolen, also on failure; NULL: empty the slot) as the new
 * version of sm's slot `name`: the slot pointer is replaced under the slot
 * lock and the slot's reference to the old version dropped, so requests
 * that hold the old one finish with it and the next step's new requests
 * get the new one. -ENOENT when sm has no such slot. Any thread. */
int models_adapter_install(served_model *sm, const char *name, trn_lora *lo);
/* The adapter a generation request gets: name NULL (the request named just
 * the model) -> a new reference to the loop slot's version, NULL when it
 * is empty; MODELS_BASE_NAME -> NULL (the base); another name -> a new
 * reference to that slot's version. *found = false only for a name that
 * is neither "base" nor a slot with a version. Any thread. */
served_adapter *models_adapter_resolve(served_model *sm, const char *name, bool *found);
/* Replaces sm's reward model (stolen) under model_lock and frees the old
 * one; max_len etc. as models_reward. Any thread but the loop thread. */
void models_reward_install(served_model *sm, struct trn_reward *rm, int max_len, int max_prompt_len,
                           bool add_eos);

#endif
