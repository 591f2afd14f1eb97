/* trainer.h - the closed loop's worker thread (DESIGN.md section 1, 7).
 *
 * One run at a time, in the whole store: several daemons may share one
 * (PostgreSQL), and only the one holding the store's trainer lock
 * (store_trainer_lock; another takes over when its holder dies) trains. A
 * run is created in the store (store_train.h) as "queued" by trainer_submit
 * on any daemon (POST /v1/training/runs), or by the trainer itself when
 * training.min_new_pairs pairs arrived since the model's last run or
 * training.interval_minutes passed with new pairs; the trainer claims it
 * (store_run_claim). The worker (trainer_run.c) loads the pairs from the
 * store, trains a reward model
 * and/or a DPO adapter on a frozen view of the served weights (never merged
 * into them), saves the adapter as a PEFT folder, registers it as a
 * candidate, runs the evaluation gate and, when it passes, activates it:
 * the served model's MODELS_LOOP_SLOT gets the new version between engine
 * steps (models_adapter_install).
 *
 * A run whose reward phase saved a reward model records it in the store
 * (store_reward_model_add) once the run ends: it serves /v1/rewards from
 * then on, and again after a restart (trainer_restore).
 *
 * The worker runs at nice 10 (setpriority on its own thread id) and yields
 * between optimizer steps; cancellation is checked between steps.
 *
 * Threads: trainer_start/stop on the main thread; trainer_submit,
 * trainer_cancel, trainer_activate, trainer_sync and trainer_stats from the
 * loop thread (they do small store writes; activate and sync may read an
 * adapter folder).
 */
#ifndef TRAINER_H
#define TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "cfg.h"
#include "models.h"
#include "store_train.h"

typedef struct trainer trainer;

/* Fails runs a restart interrupted and serves every model's active adapter
 * from the registry again (a missing or corrupt folder is logged and the
 * model serves the base), and its newest reward model from the loop
 * (store_reward_model_active) unless the model's reward_model key names
 * one: the configuration wins. Before trainer_start, after models_start. */
int trainer_restore(const cfg *c, models_registry *models, store *st, char *err, size_t errlen);

/* Starts the worker (does nothing and returns 0 with *out NULL when
 * training.enabled is false). Borrows everything until trainer_stop. */
int trainer_start(trainer **out, const cfg *c, models_registry *models, store *st, char *err,
                  size_t errlen);
/* Cancels the run this daemon runs (it ends "cancelled"; a queued one stays
 * queued for the next trainer), joins, frees. NULL ok. */
void trainer_stop(trainer *t);

/* Queues a run of kind "dpo"|"reward"|"both" for model sm; *out gets the
 * stored run. -EBUSY while another run is queued or running (on any daemon
 * sharing the store). */
int trainer_submit(trainer *t, served_model *sm, const char *kind, const char *trigger,
                   store_run *out, char *err, size_t errlen);
/* Asks run id to stop: a queued run ends at once, a running one at the
 * next step boundary (through the store when another daemon runs it: its
 * trainer reads the flag once a second). -ENOENT unknown, -EINVAL already
 * finished. */
int trainer_cancel(trainer *t, const char *id, char *err, size_t errlen);
/* Serves each model's active adapter and newest reward model as the store
 * says, where that changed since this daemon last looked (another daemon
 * activated or trained them). Loop thread: on the store's notification
 * (store_listen_fd) and every store.sync_interval_ms. */
void trainer_sync(const cfg *c, models_registry *models, store *st);
/* Makes adapter id (NULL or "base": none) model sm's active adapter: in
 * the registry and in serving. */
int trainer_activate(store *st, served_model *sm, const char *id, char *err, size_t errlen);

typedef struct trainer_stats {
    uint64_t runs[5];        /* finished runs by status: queued, running,
                                succeeded, failed, cancelled (index of
                                trainer_status_names) */
    int64_t step;            /* optimizer step of the current run (0: idle) */
    int last_status;         /* index of the last finished run's status; -1 */
    bool leader;             /* this daemon holds the trainer lock */
} trainer_stats;

extern const char *const trainer_status_names[5];
void trainer_get_stats(const trainer *t, trainer_stats *out);

/* ---- between trainer.c and trainer_run.c ------------------------------------ */

typedef struct trainer_job {
    const cfg *c;
    store *st;
    served_model *sm;
    store_run *run;             /* updated as the run goes */
    const _Atomic int *cancel;  /* non-zero: stop at the next step */
    _Atomic long long *step;    /* the current optimizer step, for metrics */
    /* called with the final status index just before it is stored */
    void (*finished)(void *ud, int status);
    void *finished_ud;
} trainer_job;

/* Runs job->run to its end; returns its final status index. */
int trainer_run(trainer_job *job);

#endif
