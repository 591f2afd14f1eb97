/* test_store_train.c - the closed loop's tables (store_train.h), on SQLite
 * and on PostgreSQL (tu_store.h): schema versions 2 to 4 on a fresh, a
 * version-1, a version-2 and a version-3 database, run life cycle, one open
 * run at a time, claiming and cancelling queued and running runs,
 * interrupted runs failed by the new trainer, adapter versions per model,
 * one active adapter, activation and rollback to the base, the newest
 * reward model per model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store_train.h"
#include "tu_store.h"
#include "tu_util.h"

typedef tu_store fx;

static void test_run_life(void **st)
{
    fx *f = *st;
    char err[256];
    store_run r = {.model = strdup("m"), .kind = strdup("dpo"), .trigger = strdup("api")};
    assert_int_equal(store_run_create(f->s, &r, err, sizeof err), 0);
    assert_int_equal((int)strlen(r.id), STORE_RUN_ID_LEN);
    assert_string_equal(r.status, "queued");
    free(r.status);
    r.status = strdup("running");
    r.started_at = r.created_at + 1;
    r.pairs = 42;
    r.history = strdup("[{\"step\":1,\"loss\":0.69}]");
    assert_int_equal(store_run_update(f->s, &r, err, sizeof err), 0);
    store_run g;
    assert_int_equal(store_run_get(f->s, r.id, &g, err, sizeof err), 0);
    assert_string_equal(g.status, "running");
    assert_int_equal(g.pairs, 42);
    assert_string_equal(g.history, r.history);
    assert_null(g.error);
    store_run_clear(&g);
    /* a bad status is refused by the table's CHECK */
    free(r.status);
    r.status = strdup("bogus");
    assert_int_equal(store_run_update(f->s, &r, err, sizeof err), -EINVAL);
    assert_int_equal(store_run_get(f->s, "run_nope", &g, err, sizeof err), -ENOENT);
    int64_t last = 0;
    assert_int_equal(store_run_last_created(f->s, "m", &last, err, sizeof err), 0);
    assert_int_equal(last, r.created_at);
    store_run_clear(&r);
}

/* A run of the given status (through create and update). */
static char *run_in(store *s, const char *status)
{
    char err[256];
    store_run r = {.model = strdup("m"), .kind = strdup("both"), .trigger = strdup("pairs")};
    int e = store_run_create(s, &r, err, sizeof err);
    if (e)
        fail_msg("store_run_create: %s", err);
    free(r.status);
    r.status = strdup(status);
    assert_int_equal(store_run_update(s, &r, err, sizeof err), 0);
    char *id = strdup(r.id);
    store_run_clear(&r);
    return id;
}

static void expect_status(store *s, const char *id, const char *status)
{
    char err[256];
    store_run g;
    assert_int_equal(store_run_get(s, id, &g, err, sizeof err), 0);
    assert_string_equal(g.status, status);
    store_run_clear(&g);
}

static void test_interrupted(void **st)
{
    fx *f = *st;
    char err[256];
    char *done = run_in(f->s, "succeeded"), *running = run_in(f->s, "running");
    /* it registered its adapter before the kill */
    store_adapter ad = {.model = strdup("m"), .path = strdup("/x"), .sha256 = strdup("00"),
                        .run_id = strdup(running)};
    assert_int_equal(store_adapter_register(f->s, &ad, err, sizeof err), 0);
    store_close(f->s); /* as after kill -9: reopen, then the new trainer's sweep */
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    int n = 0;
    assert_int_equal(store_runs_fail_interrupted(f->s, &n, err, sizeof err), 0);
    assert_int_equal(n, 1);
    expect_status(f->s, done, "succeeded");
    store_run g;
    assert_int_equal(store_run_get(f->s, running, &g, err, sizeof err), 0);
    assert_string_equal(g.status, "failed");
    assert_string_equal(g.error, "interrupted by a restart");
    assert_true(g.finished_at > 0);
    assert_string_equal(g.adapter_id, ad.id);
    store_run_clear(&g);
    store_adapter_clear(&ad);
    /* a queued run waits for the new trainer */
    char *queued = run_in(f->s, "queued");
    assert_int_equal(store_runs_fail_interrupted(f->s, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    expect_status(f->s, queued, "queued");
    store_run *rows;
    size_t k;
    assert_int_equal(store_run_list(f->s, 0, &rows, &k, err, sizeof err), 0);
    assert_int_equal(k, 3);
    store_run_list_free(rows, k);
    free(done), free(running), free(queued);
}

/* One open (queued or running) run at a time, whoever creates it. */
static void test_one_open_run(void **st)
{
    fx *f = *st;
    char err[256];
    char *q = run_in(f->s, "queued");
    store_run r = {.model = strdup("m"), .kind = strdup("dpo"), .trigger = strdup("api")};
    assert_int_equal(store_run_create(f->s, &r, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, q));
    assert_non_null(strstr(err, "queued"));
    store_run c;
    assert_int_equal(store_run_claim(f->s, &c, err, sizeof err), 0);
    assert_int_equal(store_run_create(f->s, &r, err, sizeof err), -EBUSY);
    assert_non_null(strstr(err, "running"));
    free(c.status);
    c.status = strdup("succeeded");
    assert_int_equal(store_run_update(f->s, &c, err, sizeof err), 0);
    assert_int_equal(store_run_create(f->s, &r, err, sizeof err), 0);
    store_run_clear(&c);
    store_run_clear(&r);
    free(q);
}

/* The trainer claims the oldest queued run; any daemon cancels. */
static void test_claim_and_cancel(void **st)
{
    fx *f = *st;
    char err[256];
    store_run c, g;
    assert_int_equal(store_run_claim(f->s, &c, err, sizeof err), -ENOENT);
    char *id = run_in(f->s, "queued");
    assert_int_equal(store_run_claim(f->s, &c, err, sizeof err), 0);
    assert_string_equal(c.id, id);
    assert_string_equal(c.status, "running");
    assert_true(c.started_at > 0);
    assert_false(c.cancel_requested);
    assert_int_equal(store_run_claim(f->s, &g, err, sizeof err), -ENOENT);
    /* running: a flag its trainer polls */
    assert_int_equal(store_run_request_cancel(f->s, id, &g, err, sizeof err), 0);
    assert_string_equal(g.status, "running");
    assert_true(g.cancel_requested);
    store_run_clear(&g);
    free(c.status);
    c.status = strdup("cancelled");
    assert_int_equal(store_run_update(f->s, &c, err, sizeof err), 0);
    assert_int_equal(store_run_request_cancel(f->s, id, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "already ended (cancelled)"));
    store_run_clear(&c);
    free(id);
    /* queued: cancelled at once */
    id = run_in(f->s, "queued");
    assert_int_equal(store_run_request_cancel(f->s, id, &g, err, sizeof err), 0);
    assert_string_equal(g.status, "cancelled");
    assert_string_equal(g.error, "cancelled before it started");
    assert_true(g.finished_at > 0);
    store_run_clear(&g);
    assert_int_equal(store_run_claim(f->s, &c, err, sizeof err), -ENOENT);
    assert_int_equal(store_run_request_cancel(f->s, "run_nope", NULL, err, sizeof err), -ENOENT);
    free(id);
}

/* One trainer per database: a second store on it waits until the first
 * closes (its process died). */
static void test_trainer_lock(void **st)
{
    fx *f = *st;
    char err[256];
    store *other = NULL;
    bool held = false;
    assert_int_equal(store_open(&other, f->path, err, sizeof err), 0);
    assert_int_equal(store_trainer_lock(f->s, &held, err, sizeof err), 0);
    assert_true(held);
    assert_int_equal(store_trainer_lock(f->s, &held, err, sizeof err), 0);
    assert_true(held); /* asking again keeps it */
    assert_int_equal(store_trainer_lock(other, &held, err, sizeof err), 0);
    assert_false(held);
    store_close(f->s);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    assert_int_equal(store_trainer_lock(other, &held, err, sizeof err), 0);
    assert_true(held);
    assert_int_equal(store_trainer_lock(f->s, &held, err, sizeof err), 0);
    assert_false(held);
    store_close(other);
}

static char *reg(store *s, const char *model, const char *parent)
{
    char err[256];
    store_adapter a = {.model = strdup(model), .path = strdup("/x"), .sha256 = strdup("00"),
                       .parent_id = parent ? strdup(parent) : NULL};
    assert_int_equal(store_adapter_register(s, &a, err, sizeof err), 0);
    char *id = strdup(a.id);
    store_adapter_clear(&a);
    return id;
}

static void test_adapters(void **st)
{
    fx *f = *st;
    char err[256];
    char *a1 = reg(f->s, "m", NULL), *a2 = reg(f->s, "m", a1), *b1 = reg(f->s, "other", NULL);
    store_adapter g;
    assert_int_equal(store_adapter_get(f->s, a2, &g, err, sizeof err), 0);
    assert_int_equal(g.version, 2);
    assert_string_equal(g.status, "candidate");
    assert_string_equal(g.parent_id, a1);
    store_adapter_clear(&g);
    assert_int_equal(store_adapter_get(f->s, b1, &g, err, sizeof err), 0);
    assert_int_equal(g.version, 1); /* versions count per model */
    store_adapter_clear(&g);
    assert_int_equal(store_adapter_active(f->s, "m", &g, err, sizeof err), -ENOENT);
    assert_int_equal(store_adapter_activate(f->s, "m", a1, err, sizeof err), 0);
    assert_int_equal(store_adapter_activate(f->s, "m", a2, err, sizeof err), 0);
    assert_int_equal(store_adapter_active(f->s, "m", &g, err, sizeof err), 0);
    assert_string_equal(g.id, a2);
    store_adapter_clear(&g);
    assert_int_equal(store_adapter_get(f->s, a1, &g, err, sizeof err), 0);
    assert_string_equal(g.status, "retired");
    store_adapter_clear(&g);
    /* another model's adapter: refused, and nothing changed (one transaction) */
    assert_int_equal(store_adapter_activate(f->s, "m", b1, err, sizeof err), -ENOENT);
    assert_int_equal(store_adapter_active(f->s, "m", &g, err, sizeof err), 0);
    assert_string_equal(g.id, a2);
    store_adapter_clear(&g);
    /* back to the base */
    assert_int_equal(store_adapter_activate(f->s, "m", NULL, err, sizeof err), 0);
    assert_int_equal(store_adapter_active(f->s, "m", &g, err, sizeof err), -ENOENT);
    assert_int_equal(store_adapter_set_reason(f->s, a2, "kl too high", "{\"kl\":1}", err,
                                              sizeof err), 0);
    store_adapter *rows;
    size_t n;
    assert_int_equal(store_adapter_list(f->s, "m", &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].id, a2); /* newest first */
    assert_string_equal(rows[0].reason, "kl too high");
    store_adapter_list_free(rows, n);
    assert_int_equal(store_adapter_list(f->s, NULL, &rows, &n, err, sizeof err), 0);
    assert_int_equal(n, 3);
    store_adapter_list_free(rows, n);
    free(a1), free(a2), free(b1);
}

/* A version-1 database (feedback only) gains the new tables, rows kept. */
static void test_migrates_v1(void **st)
{
    fx *f = *st;
    char err[256];
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(tu_store_sql(f, "DROP TABLE training_runs; DROP TABLE adapters; "
                                     "DROP TABLE reward_models; "
                                     "DELETE FROM schema_version WHERE version >= 2"), 0);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    int64_t n = -1;
    assert_int_equal(store_pairs_since(f->s, 0, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    char *a = reg(f->s, "m", NULL);
    free(a);
}

/* The newest recorded reward model is the active one, per model. */
static void test_reward_models(void **st)
{
    fx *f = *st;
    char err[256];
    store_reward_model g;
    assert_int_equal(store_reward_model_active(f->s, "m", &g, err, sizeof err), -ENOENT);
    store_reward_model a = {.model = "m", .run_id = "run_a", .path = "/t/m/rm-run_a"};
    assert_int_equal(store_reward_model_add(f->s, &a, err, sizeof err), 0);
    assert_int_equal((int)strlen(a.id), STORE_REWARD_ID_LEN);
    assert_string_equal(a.status, "active");
    usleep(2000); /* created_at in ms orders them */
    store_reward_model b = {.model = "m", .run_id = "run_b", .path = "/t/m/rm-run_b"};
    assert_int_equal(store_reward_model_add(f->s, &b, err, sizeof err), 0);
    store_reward_model o = {.model = "other", .path = "/t/o/rm"};
    assert_int_equal(store_reward_model_add(f->s, &o, err, sizeof err), 0);
    assert_int_equal(store_reward_model_active(f->s, "m", &g, err, sizeof err), 0);
    assert_string_equal(g.id, b.id);
    assert_string_equal(g.path, "/t/m/rm-run_b");
    assert_string_equal(g.run_id, "run_b");
    assert_string_equal(g.status, "active");
    store_reward_model_clear(&g);
    assert_int_equal(store_reward_model_active(f->s, "other", &g, err, sizeof err), 0);
    assert_null(g.run_id);
    store_reward_model_clear(&g);
    store_reward_model bad = {.model = "m"};
    assert_int_equal(store_reward_model_add(f->s, &bad, err, sizeof err), -EINVAL);
    free(a.id), free(a.status), free(b.id), free(b.status), free(o.id), free(o.status);
}

/* A version-2 database (runs and adapters) gains reward_models, rows kept. */
static void test_migrates_v2(void **st)
{
    fx *f = *st;
    char err[256];
    char *a = reg(f->s, "m", NULL);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(tu_store_sql(f, "DROP TABLE reward_models; "
                                     "ALTER TABLE training_runs DROP COLUMN cancel_requested; "
                                     "DELETE FROM schema_version WHERE version >= 3"), 0);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    store_adapter g;
    assert_int_equal(store_adapter_get(f->s, a, &g, err, sizeof err), 0);
    store_adapter_clear(&g);
    store_reward_model r = {.model = "m", .path = "/t/rm"};
    assert_int_equal(store_reward_model_add(f->s, &r, err, sizeof err), 0);
    free(r.id), free(r.status), free(a);
}

/* A version-3 database gains cancel_requested, rows kept. */
static void test_migrates_v3(void **st)
{
    fx *f = *st;
    char err[256];
    char *id = run_in(f->s, "queued");
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(tu_store_sql(f, "ALTER TABLE training_runs DROP COLUMN cancel_requested; "
                                     "DELETE FROM schema_version WHERE version = 4"), 0);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    store_run c;
    assert_int_equal(store_run_claim(f->s, &c, err, sizeof err), 0);
    assert_string_equal(c.id, id);
    assert_false(c.cancel_requested);
    assert_int_equal(store_run_request_cancel(f->s, id, NULL, err, sizeof err), 0);
    store_run_clear(&c);
    assert_int_equal(store_run_get(f->s, id, &c, err, sizeof err), 0);
    assert_true(c.cancel_requested);
    store_run_clear(&c);
    free(id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_life, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_interrupted, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_one_open_run, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_claim_and_cancel, tu_store_cm_setup,
                                        tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_trainer_lock, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v3, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_adapters, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v1, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_reward_models, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v2, tu_store_cm_setup, tu_store_cm_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
