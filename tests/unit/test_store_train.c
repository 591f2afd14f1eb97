/* test_store_train.c - the closed loop's tables (store_train.h): schema
 * versions 2 and 3 on a fresh, a version-1 and a version-2 database, run
 * life cycle, interrupted runs failed at start-up, adapter versions per
 * model, one active adapter, activation and rollback to the base, the
 * newest reward model per model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store_train.h"
#include "tu_util.h"

typedef struct fx {
    char path[64];
    store *s;
} fx;

static int setup(void **st)
{
    fx *f = calloc(1, sizeof *f);
    strcpy(f->path, "/tmp/alignd_strain_XXXXXX");
    int fd = mkstemp(f->path);
    if (fd < 0)
        return -1;
    close(fd);
    unlink(f->path);
    char err[256] = "";
    if (store_open(&f->s, f->path, err, sizeof err) != 0) {
        fprintf(stderr, "store_open: %s\n", err);
        return -1;
    }
    *st = f;
    return 0;
}

static int teardown(void **st)
{
    fx *f = *st;
    store_close(f->s);
    char p[96];
    unlink(f->path);
    snprintf(p, sizeof p, "%s-wal", f->path), unlink(p);
    snprintf(p, sizeof p, "%s-shm", f->path), unlink(p);
    free(f);
    return 0;
}

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

static void test_interrupted(void **st)
{
    fx *f = *st;
    char err[256];
    const char *states[] = {"queued", "running", "succeeded"};
    char *ids[3];
    for (int i = 0; i < 3; i++) {
        store_run r = {.model = strdup("m"), .kind = strdup("both"), .trigger = strdup("pairs")};
        assert_int_equal(store_run_create(f->s, &r, err, sizeof err), 0);
        free(r.status);
        r.status = strdup(states[i]);
        assert_int_equal(store_run_update(f->s, &r, err, sizeof err), 0);
        ids[i] = strdup(r.id);
        store_run_clear(&r);
    }
    store_close(f->s); /* as after kill -9: reopen, then the start-up sweep */
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    int n = 0;
    assert_int_equal(store_runs_fail_interrupted(f->s, &n, err, sizeof err), 0);
    assert_int_equal(n, 2);
    for (int i = 0; i < 3; i++) {
        store_run g;
        assert_int_equal(store_run_get(f->s, ids[i], &g, err, sizeof err), 0);
        assert_string_equal(g.status, i < 2 ? "failed" : "succeeded");
        if (i < 2) {
            assert_string_equal(g.error, "interrupted by a restart");
            assert_true(g.finished_at > 0);
        }
        store_run_clear(&g);
        free(ids[i]);
    }
    store_run *rows;
    size_t k;
    assert_int_equal(store_run_list(f->s, 0, &rows, &k, err, sizeof err), 0);
    assert_int_equal(k, 3);
    store_run_list_free(rows, k);
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
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE training_runs; DROP TABLE adapters; "
                                      "DROP TABLE reward_models; "
                                      "DELETE FROM schema_version WHERE version >= 2",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
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
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "DROP TABLE reward_models; "
                                      "DELETE FROM schema_version WHERE version = 3",
                                  NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    store_adapter g;
    assert_int_equal(store_adapter_get(f->s, a, &g, err, sizeof err), 0);
    store_adapter_clear(&g);
    store_reward_model r = {.model = "m", .path = "/t/rm"};
    assert_int_equal(store_reward_model_add(f->s, &r, err, sizeof err), 0);
    free(r.id), free(r.status), free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_life, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interrupted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adapters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reward_models, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrates_v2, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
