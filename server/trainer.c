/* trainer.c - the closed loop's worker thread: the trainer election, runs
 * queued in the store, automatic triggers, cancellation, activation, the
 * sync of what other daemons activated, and start-up restore (trainer.h).
 * The run itself is trainer_run.c. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "trainer.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "trn_peft.h"

const char *const trainer_status_names[5] = {"queued", "running", "succeeded", "failed",
                                             "cancelled"};

struct trainer {
    const cfg *c;
    models_registry *models;
    store *st;
    pthread_t thread;
    pthread_mutex_t mu;          /* guards current, stop */
    pthread_cond_t cv;           /* a run was queued, or stop */
    bool stop;
    char current[STORE_RUN_ID_LEN + 1]; /* the run this daemon runs, "" idle */
    _Atomic int cancel;          /* of the running run */
    _Atomic long long step;
    _Atomic unsigned long long runs[5];
    _Atomic int last_status;
    _Atomic bool leader;         /* holds the store's trainer lock */
};

void trainer_get_stats(const trainer *t, trainer_stats *out)
{
    memset(out, 0, sizeof *out);
    out->last_status = -1;
    if (!t)
        return;
    for (int i = 0; i < 5; i++)
        out->runs[i] = atomic_load(&((trainer *)t)->runs[i]);
    out->step = atomic_load(&((trainer *)t)->step);
    out->last_status = atomic_load(&((trainer *)t)->last_status);
    out->leader = atomic_load(&((trainer *)t)->leader);
}

/* ---- activation and restore ------------------------------------------------ */

/* Loads the PEFT folder of ad and publishes it in sm's loop slot. */
static int trainer__serve(served_model *sm, const store_adapter *ad, char *err, size_t errlen)
{
    trn_lora *lo = NULL;
    char msg[256];
    if (trn_peft_load(&lo, ad->path, model_arch(sm->m), model_hp(sm->m), msg, sizeof msg)) {
        snprintf(err, errlen, "adapter %s (%s): %s", ad->id, ad->path, msg);
        return -EINVAL;
    }
    lo->enabled = true;
    return models_adapter_install(sm, MODELS_LOOP_SLOT, lo);
}

/* Serialises activations: the worker's promotion and an API activation
 * each write the registry and then the serving slot; without it the two
 * could interleave and leave the registry and serving disagreeing. */
static pthread_mutex_t trainer__activate_mu = PTHREAD_MUTEX_INITIALIZER;

static int trainer__activate(store *st, served_model *sm, const char *id, char *err,
                             size_t errlen);

int trainer_activate(store *st, served_model *sm, const char *id, char *err, size_t errlen)
{
    pthread_mutex_lock(&trainer__activate_mu);
    int rc = trainer__activate(st, sm, id, err, errlen);
    pthread_mutex_unlock(&trainer__activate_mu);
    return rc;
}

static int trainer__activate(store *st, served_model *sm, const char *id, char *err,
                             size_t errlen)
{
    if (!models_adapter_slot(sm, MODELS_LOOP_SLOT)) {
        snprintf(err, errlen, "model '%s' has no training loop (a llama or gpt2 decoder with "
                 "training.enabled)", sm->cfg->name);
        return -EINVAL;
    }
    bool base = !id || !strcmp(id, MODELS_BASE_NAME);
    store_adapter ad = {0};
    int rc = 0;
    if (!base) {
        if ((rc = store_adapter_get(st, id, &ad, err, errlen)))
            return rc;
        if (strcmp(ad.model, sm->cfg->name)) {
            snprintf(err, errlen, "adapter %s belongs to model '%s'", id, ad.model);
            store_adapter_clear(&ad);
            return -ENOENT;
        }
        /* load first: a folder that does not load never becomes active */
        trn_lora *lo = NULL;
        char msg[256];
        if (trn_peft_load(&lo, ad.path, model_arch(sm->m), model_hp(sm->m), msg, sizeof msg)) {
            snprintf(err, errlen, "adapter %s (%s): %s", ad.id, ad.path, msg);
            store_adapter_clear(&ad);
            return -EIO;
        }
        lo->enabled = true;
        if (!(rc = store_adapter_activate(st, sm->cfg->name, id, err, errlen)))
            rc = models_adapter_install(sm, MODELS_LOOP_SLOT, lo);
        else
            trn_lora_free(lo);
    } else if (!(rc = store_adapter_activate(st, sm->cfg->name, NULL, err, errlen))) {
        rc = models_adapter_install(sm, MODELS_LOOP_SLOT, NULL);
    }
    if (!rc)
        snprintf(sm->loop_adapter_id, sizeof sm->loop_adapter_id, "%s", base ? "" : id);
    if (!rc)
        LOG_INF("trainer", "model '%s': serving %s%s", sm->cfg->name, base ? "the base" : "adapter ",
                base ? "" : id);
    store_adapter_clear(&ad);
    return rc;
}

/* Serves model sm's newest reward model from the loop again, unless its
 * reward_model key names one (the configuration wins). A folder that does
 * not load is logged; the model then serves no reward model. Loop thread,
 * before the daemon is ready: nothing holds model_lock for long yet. */
static void trainer__restore_reward(store *st, served_model *sm)
{
    store_reward_model rm;
    char msg[1024];
    if (!sm->m || !sm->decoder || store_reward_model_active(st, sm->cfg->name, &rm, msg, sizeof msg))
        return;
    if (sm->cfg->reward_model && sm->cfg->reward_model[0])
        LOG_INF("trainer", "model '%s': serving the reward_model key's %s, not the loop's newest %s "
                "(the configuration wins)", sm->cfg->name, sm->cfg->reward_model, rm.path);
    else if (models_reward_load(sm, rm.path, msg, sizeof msg))
        LOG_ERR("trainer", "model '%s': cannot serve the loop's reward model of run %s: %s; serving none",
                sm->cfg->name, rm.run_id ? rm.run_id : "?", msg);
    else
        LOG_INF("trainer", "model '%s': serving the reward model of run %s (%s)", sm->cfg->name,
                rm.run_id ? rm.run_id : "?", rm.path);
    snprintf(sm->loop_reward_id, sizeof sm->loop_reward_id, "%s", rm.id);
    store_reward_model_clear(&rm);
}

int trainer_restore(const cfg *c, models_registry *models, store *st, char *err, size_t errlen)
{
    (void)err, (void)errlen;
    for (int i = 0; c->training_enabled && i < models->n; i++) {
        served_model *sm = &models->items[i];
        store_adapter ad;
        char msg[1024];
        if (models_adapter_slot(sm, MODELS_LOOP_SLOT))
            trainer__restore_reward(st, sm);
        if (!models_adapter_slot(sm, MODELS_LOOP_SLOT) ||
            store_adapter_active(st, sm->cfg->name, &ad, msg, sizeof msg))
            continue;
        /* recorded even when it does not load: the sync does not retry it */
        snprintf(sm->loop_adapter_id, sizeof sm->loop_adapter_id, "%s", ad.id);
        if (trainer__serve(sm, &ad, msg, sizeof msg))
            LOG_ERR("trainer", "model '%s': cannot serve its active %s; serving the base", sm->cfg->name, msg);
        else
            LOG_INF("trainer", "model '%s': serving active adapter %s (version %lld)", sm->cfg->name,
                    ad.id, (long long)ad.version);
        store_adapter_clear(&ad);
    }
    return 0;
}

/* ---- sync with other daemons -------------------------------------------------- */

void trainer_sync(const cfg *c, models_registry *models, store *st)
{
    for (int i = 0; c->training_enabled && i < models->n; i++) {
        served_model *sm = &models->items[i];
        if (!models_adapter_slot(sm, MODELS_LOOP_SLOT))
            continue;
        store_adapter ad = {0};
        char msg[1024];
        /* read under the activation mutex: a promotion between the read and
         * the install would otherwise be undone until the next sync */
        pthread_mutex_lock(&trainer__activate_mu);
        int rc = store_adapter_active(st, sm->cfg->name, &ad, msg, sizeof msg);
        if (rc && rc != -ENOENT) {
            pthread_mutex_unlock(&trainer__activate_mu);
            LOG_WRN("trainer", "model '%s': cannot read its active adapter: %s", sm->cfg->name, msg);
            continue;
        }
        const char *want = rc ? "" : ad.id;
        if (strcmp(sm->loop_adapter_id, want)) {
            snprintf(sm->loop_adapter_id, sizeof sm->loop_adapter_id, "%s", want);
            if (!*want) {
                models_adapter_install(sm, MODELS_LOOP_SLOT, NULL);
                LOG_INF("trainer", "model '%s': serving the base (activated through the store)",
                        sm->cfg->name);
            } else if (trainer__serve(sm, &ad, msg, sizeof msg)) {
                LOG_ERR("trainer", "model '%s': cannot serve the active %s; serving what it did",
                        sm->cfg->name, msg);
            } else {
                LOG_INF("trainer", "model '%s': serving adapter %s (version %lld, activated "
                        "through the store)", sm->cfg->name, ad.id, (long long)ad.version);
            }
        }
        pthread_mutex_unlock(&trainer__activate_mu);
        store_adapter_clear(&ad);
        store_reward_model rm;
        if (store_reward_model_active(st, sm->cfg->name, &rm, msg, sizeof msg))
            continue;
        if (strcmp(sm->loop_reward_id, rm.id) && !(sm->cfg->reward_model && sm->cfg->reward_model[0])) {
            snprintf(sm->loop_reward_id, sizeof sm->loop_reward_id, "%s", rm.id);
            if (models_reward_load(sm, rm.path, msg, sizeof msg))
                LOG_ERR("trainer", "model '%s': cannot serve reward model %s: %s", sm->cfg->name,
                        rm.path, msg);
            else
                LOG_INF("trainer", "model '%s': serving the reward model of run %s (through the "
                        "store)", sm->cfg->name, rm.run_id ? rm.run_id : "?");
        }
        store_reward_model_clear(&rm);
    }
}

/* ---- queue ------------------------------------------------------------------- */

int trainer_submit(trainer *t, served_model *sm, const char *kind, const char *trigger,
                   store_run *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    store_run r = {.model = strdup(sm->cfg->name), .kind = strdup(kind), .trigger = strdup(trigger)};
    int rc = r.model && r.kind && r.trigger ? store_run_create(t->st, &r, err, errlen) : -ENOMEM;
    if (!rc) {
        pthread_mutex_lock(&t->mu);
        pthread_cond_signal(&t->cv); /* the trainer, if it is this daemon */
        pthread_mutex_unlock(&t->mu);
        rc = store_run_get(t->st, r.id, out, err, errlen);
    }
    store_run_clear(&r);
    return rc;
}

int trainer_cancel(trainer *t, const char *id, char *err, size_t errlen)
{
    store_run r;
    pthread_mutex_lock(&t->mu);
    bool mine = !strcmp(t->current, id);
    if (mine) {
        /* the worker records the end before it lets go of the run: a run
         * already ended there is refused, as from any other daemon. Under
         * mu, so that current cannot move on to another run meanwhile */
        int rc = store_run_get(t->st, id, &r, err, errlen);
        bool ended = !rc && strcmp(r.status, "queued") && strcmp(r.status, "running");
        if (ended)
            snprintf(err, errlen, "training run %s already ended (%s)", id, r.status);
        if (!rc)
            store_run_clear(&r);
        if (!rc && !ended)
            atomic_store(&t->cancel, 1);
        pthread_mutex_unlock(&t->mu);
        return rc ? rc : ended ? -EINVAL : 0;
    }
    pthread_mutex_unlock(&t->mu);
    int rc = store_run_request_cancel(t->st, id, &r, err, errlen);
    if (!rc && !strcmp(r.status, "cancelled"))
        atomic_fetch_add(&t->runs[4], 1);
    if (!rc)
        store_run_clear(&r);
    return rc;
}

/* ---- automatic triggers ------------------------------------------------------ */

/* Queues a run of model sm when its triggers say so (worker thread). */
static void trainer__auto(trainer *t, served_model *sm)
{
    const cfg *c = t->c;
    int64_t last = 0, n = 0, now = (int64_t)time(NULL) * 1000;
    char err[256];
    if (store_run_last_created(t->st, sm->cfg->name, &last, err, sizeof err) ||
        store_pairs_since(t->st, last, &n, err, sizeof err) || n == 0)
        return;
    const char *trigger = NULL;
    if (c->training_min_new_pairs > 0 && n >= c->training_min_new_pairs)
        trigger = "pairs";
    else if (c->training_interval_minutes > 0 && now - last >= c->training_interval_minutes * 60000)
        trigger = "schedule";
    store_run r;
    if (trigger && trainer_submit(t, sm, "dpo", trigger, &r, err, sizeof err) == 0) {
        LOG_INF("trainer", "model '%s': %lld new pairs: run %s (%s)", sm->cfg->name, (long long)n,
                r.id, trigger);
        store_run_clear(&r);
    }
}

static void trainer__check_triggers(trainer *t)
{
    if (t->c->training_min_new_pairs <= 0 && t->c->training_interval_minutes <= 0)
        return;
    for (int i = 0; i < t->models->n; i++)
        if (models_adapter_slot(&t->models->items[i], MODELS_LOOP_SLOT))
            trainer__auto(t, &t->models->items[i]);
}

/* ---- the thread -------------------------------------------------------------- */

/* A run whose reward phase saved a reward model (metrics "reward_model":
 * {"path"}) also made it serve /v1/rewards, whatever came after: records
 * it as the model's active reward model, for trainer_restore. */
static void trainer__record_reward(trainer *t, const store_run *r, served_model *sm)
{
    json_t *m = r->metrics ? json_loads(r->metrics, 0, NULL) : NULL;
    const char *path = json_string_value(json_object_get(json_object_get(m, "reward_model"), "path"));
    char err[512];
    store_reward_model rm = {.model = r->model, .run_id = r->id, .path = (char *)path};
    if (path && store_reward_model_add(t->st, &rm, err, sizeof err))
        LOG_ERR("trainer", "run %s: cannot record its reward model %s: %s (a restart will not serve it)",
                r->id, path, err);
    else if (path) /* served already by the run: the sync must not load it again */
        snprintf(sm->loop_reward_id, sizeof sm->loop_reward_id, "%s", rm.id);
    free(rm.id), free(rm.status); /* the rest is borrowed */
    json_decref(m);
}

static void trainer__count(void *ud, int status)
{
    trainer *t = ud;
    atomic_fetch_add(&t->runs[status], 1);
    atomic_store(&t->last_status, status);
    atomic_store(&t->step, 0);
}

static void trainer__one(trainer *t, store_run *r, served_model *sm)
{
    trainer_job job = {.c = t->c, .st = t->st, .sm = sm, .run = r, .cancel = &t->cancel,
                       .step = &t->step, .finished = trainer__count, .finished_ud = t};
    trainer_run(&job);
    trainer__record_reward(t, r, sm);
}

/* The election: takes or keeps the store's trainer lock. A daemon that
 * just became the trainer fails the runs its predecessor was running. */
static bool trainer__elect(trainer *t)
{
    bool held = false;
    char err[512];
    if (store_trainer_lock(t->st, &held, err, sizeof err))
        LOG_WRN("trainer", "trainer lock: %s", err);
    bool was = atomic_exchange(&t->leader, held);
    if (held && !was) {
        int n = 0;
        LOG_INF("trainer", "this daemon is the trainer (holds the store's trainer lock)");
        if (store_runs_fail_interrupted(t->st, &n, err, sizeof err))
            LOG_ERR("trainer", "cannot fail interrupted runs: %s", err);
        else if (n)
            LOG_WRN("trainer", "%d training run(s) were interrupted (restart or a trainer that "
                    "died): marked failed", n);
    } else if (!held && was) {
        LOG_WRN("trainer", "lost the trainer lock (store connection reset): another daemon may "
                "train now");
    }
    return held;
}

/* The trainer's next queued run: 1 and *r and *sm set when one was
 * claimed; a run for a model this daemon does not serve with a loop ends
 * failed. */
static int trainer__claim(trainer *t, store_run *r, served_model **sm)
{
    char err[512];
    int rc = store_run_claim(t->st, r, err, sizeof err);
    if (rc) {
        if (rc != -ENOENT)
            LOG_ERR("trainer", "cannot claim a queued run: %s", err);
        return 0;
    }
    *sm = models_find(t->models, r->model);
    if (*sm && models_adapter_slot(*sm, MODELS_LOOP_SLOT))
        return 1;
    free(r->status), free(r->error);
    r->status = strdup("failed");
    r->error = strdup("the trainer daemon does not serve this model with a training loop");
    r->finished_at = (int64_t)time(NULL) * 1000;
    if (store_run_update(t->st, r, err, sizeof err))
        LOG_ERR("trainer", "run %s: %s", r->id, err);
    LOG_ERR("trainer", "run %s: model '%s' is not served here with a training loop: failed", r->id,
            r->model);
    atomic_fetch_add(&t->runs[3], 1);
    store_run_clear(r);
    return 0;
}

static void *trainer__main(void *arg)
{
    trainer *t = arg;
    /* below serving: nice applies per thread on Linux (its own tid) */
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), 10) != 0)
        LOG_WRN("trainer", "cannot lower the worker's priority");
    pthread_mutex_lock(&t->mu);
    while (!t->stop) {
        pthread_mutex_unlock(&t->mu);
        store_run r = {0};
        served_model *sm = NULL;
        bool got = false;
        if (trainer__elect(t)) {
            trainer__check_triggers(t);
            got = trainer__claim(t, &r, &sm);
        }
        pthread_mutex_lock(&t->mu);
        if (!got) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* the lock, triggers and the queue are polled once a second */
            if (!t->stop)
                pthread_cond_timedwait(&t->cv, &t->mu, &ts);
            continue;
        }
        snprintf(t->current, sizeof t->current, "%s", r.id);
        atomic_store(&t->cancel, t->stop ? 1 : 0);
        pthread_mutex_unlock(&t->mu);
        trainer__one(t, &r, sm);
        store_run_clear(&r);
        pthread_mutex_lock(&t->mu);
        t->current[0] = '\0';
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int trainer_start(trainer **out, const cfg *c, models_registry *models, store *st, char *err,
                  size_t errlen)
{
    *out = NULL;
    if (!c->training_enabled)
        return 0;
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    t->c = c, t->models = models, t->st = st;
    atomic_init(&t->last_status, -1);
    atomic_init(&t->leader, false);
    trainer__elect(t); /* before ready: a restart's interrupted run is failed by then */
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    int rc = pthread_create(&t->thread, NULL, trainer__main, t);
    if (rc) {
        snprintf(err, errlen, "cannot start the training worker: %s", strerror(rc));
        pthread_mutex_destroy(&t->mu);
        pthread_cond_destroy(&t->cv);
        free(t);
        return -rc;
    }
    *out = t;
    return 0;
}

void trainer_stop(trainer *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    atomic_store(&t->cancel, 1); /* the running run ends "cancelled" */
    pthread_cond_signal(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL); /* a queued run stays queued for the next trainer */
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    free(t);
}
