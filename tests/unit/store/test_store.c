/* test_store.c - the feedback store, on SQLite and on PostgreSQL
 * (tu_store.h): round trips, transactions, idempotency, pagination,
 * filters, split, stats, reopen, schema versions, the trainer lock. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"
#include "tu_store.h"
#include "tu_util.h"

typedef tu_store fx;

static store_feedback mk(const char *kind, const char *annotator, int64_t at) {
    store_feedback r = {0};
    r.prompt = strdup("What is 2+2?");
    r.chosen = strdup("4");
    r.rejected = strdup("5");
    r.format = strdup("text");
    r.kind = strdup(kind);
    r.annotator = annotator ? strdup(annotator) : NULL;
    r.source = strdup("api");
    r.created_at = at;
    return r;
}

static void insert1(store *s, store_feedback *r) {
    char err[256] = "";
    int e = store_feedback_insert(s, r, 1, NULL, NULL, NULL, NULL, err, sizeof err);
    if (e) fprintf(stderr, "insert: %s\n", err);
    assert_int_equal(e, 0);
}

static size_t count_rows(store *s) {
    json_t *j = NULL;
    char err[256];
    assert_int_equal(store_feedback_stats(s, &j, err, sizeof err), 0);
    size_t n = (size_t)json_integer_value(json_object_get(j, "total"));
    json_decref(j);
    return n;
}

static void test_round_trip(void **st) {
    fx *f = *st;
    char err[256] = "";
    store_feedback r = {0};
    r.prompt = strdup("[{\"role\":\"user\",\"content\":\"hi \\u00e9\"}]");
    r.chosen = strdup("[{\"role\":\"assistant\",\"content\":\"hello\"}]");
    r.rejected = strdup("[{\"role\":\"assistant\",\"content\":\"go away\"}]");
    r.format = strdup("messages");
    r.kind = strdup("both_bad");
    r.annotator = strdup("ann-1");
    r.source = strdup("form");
    r.model = strdup("qwen2-0.5b");
    r.adapter = strdup("ad_7");
    r.comment = strdup("it's 'quoted'; DROP TABLE feedback; --");
    r.metadata = strdup("{\"ui\":\"v2\",\"n\":3}");
    char **ids = NULL;
    bool replayed = true;
    assert_int_equal(store_feedback_insert(f->s, &r, 1, NULL, NULL, &ids, &replayed, err, sizeof err), 0);
    assert_false(replayed);
    assert_non_null(ids);
    assert_non_null(ids[0]);
    assert_null(ids[1]);
    assert_int_equal(strlen(ids[0]), STORE_ID_LEN);
    assert_memory_equal(ids[0], "fb_", 3);
    assert_string_equal(r.id, ids[0]);
    assert_true(r.created_at > 1600000000000LL);
    assert_string_equal(r.split, store_split_of(r.id));

    store_feedback g;
    assert_int_equal(store_feedback_get(f->s, ids[0], &g, err, sizeof err), 0);
    assert_string_equal(g.id, r.id);
    assert_int_equal(g.created_at, r.created_at);
    assert_string_equal(g.prompt, r.prompt);
    assert_string_equal(g.chosen, r.chosen);
    assert_string_equal(g.rejected, r.rejected);
    assert_string_equal(g.format, "messages");
    assert_string_equal(g.kind, "both_bad");
    assert_string_equal(g.annotator, "ann-1");
    assert_string_equal(g.source, "form");
    assert_string_equal(g.model, "qwen2-0.5b");
    assert_string_equal(g.adapter, "ad_7");
    assert_string_equal(g.comment, r.comment);
    assert_string_equal(g.metadata, r.metadata);
    assert_string_equal(g.split, r.split);
    store_feedback_clear(&g);

    /* optional fields come back NULL */
    store_feedback m = mk("tie", NULL, 0);
    insert1(f->s, &m);
    assert_int_equal(store_feedback_get(f->s, m.id, &g, err, sizeof err), 0);
    assert_null(g.annotator);
    assert_null(g.model);
    assert_null(g.adapter);
    assert_null(g.comment);
    assert_null(g.metadata);
    store_feedback_clear(&g);
    store_feedback_clear(&m);

    assert_int_equal(store_feedback_delete(f->s, ids[0], err, sizeof err), 0);
    assert_int_equal(store_feedback_get(f->s, ids[0], &g, err, sizeof err), -ENOENT);
    assert_non_null(strstr(err, ids[0]));
    assert_int_equal(store_feedback_delete(f->s, ids[0], err, sizeof err), -ENOENT);
    assert_int_equal(store_feedback_get(f->s, "fb_nope' OR '1'='1", &g, err, sizeof err), -ENOENT);
    store_ids_free(ids);
    store_feedback_clear(&r);
    store_feedback_clear(NULL);
}

static void test_validation(void **st) {
    fx *f = *st;
    char err[256] = "";
    store_feedback rows[2] = { mk("pair", "a", 0), mk("best", "a", 0) };
    assert_int_equal(store_feedback_insert(f->s, rows, 2, NULL, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rows[1].kind"));
    free(rows[1].kind);
    rows[1].kind = strdup("pair");
    free(rows[1].format);
    rows[1].format = strdup("messages"); /* chosen "4" is not an array */
    assert_int_equal(store_feedback_insert(f->s, rows, 2, NULL, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rows[1].prompt"));
    free(rows[1].format);
    rows[1].format = strdup("text");
    rows[1].metadata = strdup("{not json");
    assert_int_equal(store_feedback_insert(f->s, rows, 2, NULL, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rows[1].metadata"));
    free(rows[0].chosen);
    rows[0].chosen = NULL;
    assert_int_equal(store_feedback_insert(f->s, rows, 2, NULL, NULL, NULL, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "rows[0].chosen"));
    assert_null(rows[0].id);
    assert_int_equal(count_rows(f->s), 0);
    store_feedback_clear(&rows[0]);
    store_feedback_clear(&rows[1]);
}

/* A failure in the middle of a batch (duplicate primary key at row 3,
 * reaching SQLite) leaves nothing stored and the rows untouched. */
static void test_batch_all_or_nothing(void **st) {
    fx *f = *st;
    char err[256] = "";
    store_feedback first = mk("pair", "a", 0);
    insert1(f->s, &first);
    store_feedback rows[5];
    for (int i = 0; i < 5; i++) rows[i] = mk("pair", "b", 0);
    rows[3].id = strdup(first.id);
    char **ids = NULL;
    assert_int_equal(store_feedback_insert(f->s, rows, 5, "k-batch", "h", &ids, NULL, err, sizeof err), -EEXIST);
    assert_non_null(strstr(err, "rows[3].id"));
    assert_null(ids);
    assert_int_equal(count_rows(f->s), 1);
    for (int i = 0; i < 5; i++) {
        if (i != 3) assert_null(rows[i].id);
        assert_null(rows[i].split);
    }
    /* the idempotency key was rolled back too: a corrected retry succeeds */
    free(rows[3].id);
    rows[3].id = NULL;
    bool replayed = true;
    assert_int_equal(store_feedback_insert(f->s, rows, 5, "k-batch", "h", &ids, &replayed, err, sizeof err), 0);
    assert_false(replayed);
    assert_int_equal(count_rows(f->s), 6);
    store_ids_free(ids);
    for (int i = 0; i < 5; i++) store_feedback_clear(&rows[i]);
    store_feedback_clear(&first);
}

static void test_idempotency(void **st) {
    fx *f = *st;
    char err[256] = "";
    store_feedback rows[3] = { mk("pair", "a", 0), mk("tie", "a", 0), mk("pair", "b", 0) };
    char **ids1 = NULL, **ids2 = NULL;
    bool replayed = true;
    assert_int_equal(store_feedback_insert(f->s, rows, 3, "key-1", "sha-A", &ids1, &replayed, err, sizeof err), 0);
    assert_false(replayed);
    store_feedback again[3] = { mk("pair", "a", 0), mk("tie", "a", 0), mk("pair", "b", 0) };
    assert_int_equal(store_feedback_insert(f->s, again, 3, "key-1", "sha-A", &ids2, &replayed, err, sizeof err), 0);
    assert_true(replayed);
    for (int i = 0; i < 3; i++) assert_string_equal(ids1[i], ids2[i]);
    assert_null(ids2[3]);
    assert_null(again[0].id); /* replay leaves rows untouched */
    assert_int_equal(count_rows(f->s), 3);
    store_ids_free(ids2);
    ids2 = NULL;
    assert_int_equal(store_feedback_insert(f->s, again, 3, "key-1", "sha-B", &ids2, &replayed, err, sizeof err), -EEXIST);
    assert_false(replayed);
    assert_null(ids2);
    assert_non_null(strstr(err, "key-1"));
    assert_int_equal(count_rows(f->s), 3);
    assert_int_equal(store_feedback_insert(f->s, again, 3, "key-2", NULL, NULL, NULL, err, sizeof err), -EINVAL);
    store_ids_free(ids1);
    for (int i = 0; i < 3; i++) { store_feedback_clear(&rows[i]); store_feedback_clear(&again[i]); }
}

static int seen_index(char **seen, size_t n, const char *id) {
    for (size_t i = 0; i < n; i++) if (strcmp(seen[i], id) == 0) return (int)i;
    return -1;
}

static void test_pagination(void **st) {
    fx *f = *st;
    char err[256] = "";
    char *orig[25];
    for (int i = 0; i < 25; i++) {
        /* some rows share a timestamp: ties are broken by id */
        store_feedback r = mk("pair", "a", 1700000000000LL + (i / 3) * 1000);
        insert1(f->s, &r);
        orig[i] = strdup(r.id);
        store_feedback_clear(&r);
    }
    char *seen[64];
    size_t n_seen = 0;
    char cursor[STORE_CURSOR_MAX] = "";
    int pages = 0;
    int64_t last_at = INT64_MAX;
    do {
        store_filter flt = { .after = cursor, .limit = 10 };
        char after[STORE_CURSOR_MAX];
        strcpy(after, cursor);
        flt.after = after;
        store_feedback *rows = NULL;
        size_t n = 0;
        assert_int_equal(store_feedback_list(f->s, &flt, &rows, &n, cursor, sizeof cursor, err, sizeof err), 0);
        pages++;
        assert_int_equal(n, pages < 3 ? 10 : 5);
        for (size_t i = 0; i < n; i++) {
            assert_true(rows[i].created_at <= last_at); /* newest first */
            last_at = rows[i].created_at;
            assert_int_equal(seen_index(seen, n_seen, rows[i].id), -1); /* no duplicate */
            seen[n_seen++] = strdup(rows[i].id);
            store_feedback_clear(&rows[i]);
        }
        free(rows);
        if (pages == 1) { /* a new row between pages does not shift the pages */
            store_feedback r = mk("pair", "a", 0);
            insert1(f->s, &r);
            store_feedback_clear(&r);
        }
    } while (cursor[0] && pages < 10);
    assert_int_equal(pages, 3);
    assert_int_equal(n_seen, 25);
    for (int i = 0; i < 25; i++) assert_true(seen_index(seen, n_seen, orig[i]) >= 0); /* no gap */
    for (size_t i = 0; i < n_seen; i++) free(seen[i]);
    for (int i = 0; i < 25; i++) free(orig[i]);

    store_filter bad = { .after = "12:fb_x' OR 1=1 --", .limit = 10 };
    store_feedback *rows = NULL;
    size_t n = 0;
    assert_int_equal(store_feedback_list(f->s, &bad, &rows, &n, cursor, sizeof cursor, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "after"));
}

static size_t list_count(store *s, store_filter flt) {
    char err[256], cursor[STORE_CURSOR_MAX];
    store_feedback *rows = NULL;
    size_t n = 0;
    flt.limit = 1000;
    assert_int_equal(store_feedback_list(s, &flt, &rows, &n, cursor, sizeof cursor, err, sizeof err), 0);
    for (size_t i = 0; i < n; i++) {
        if (flt.kind) assert_string_equal(rows[i].kind, flt.kind);
        if (flt.annotator) assert_string_equal(rows[i].annotator, flt.annotator);
        store_feedback_clear(&rows[i]);
    }
    free(rows);
    return n;
}

#define DAY 86400000LL
#define T0 1704067200000LL /* 2024-01-01T00:00:00Z */

static void seed(store *s) {
    /* day 1: 2 pair/alice, 1 tie/bob; day 2: 1 both_bad/alice, 1 pair/none */
    store_feedback rows[5] = {
        mk("pair", "alice", T0 + 1000), mk("pair", "alice", T0 + 2000),
        mk("tie", "bob", T0 + 3000), mk("both_bad", "alice", T0 + DAY + 1000),
        mk("pair", NULL, T0 + DAY + 2000),
    };
    char err[256] = "";
    assert_int_equal(store_feedback_insert(s, rows, 5, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    for (int i = 0; i < 5; i++) store_feedback_clear(&rows[i]);
}

static int collect(void *ud, const store_feedback *r) {
    int64_t *last = ud;
    assert_true(r->created_at >= last[0]); /* oldest first */
    last[0] = r->created_at;
    last[1]++;
    return last[1] == last[2] ? 42 : 0;
}

static void test_filters_and_each(void **st) {
    fx *f = *st;
    seed(f->s);
    assert_int_equal(list_count(f->s, (store_filter){0}), 5);
    assert_int_equal(list_count(f->s, (store_filter){ .kind = "pair" }), 3);
    assert_int_equal(list_count(f->s, (store_filter){ .kind = "tie" }), 1);
    assert_int_equal(list_count(f->s, (store_filter){ .annotator = "alice" }), 3);
    assert_int_equal(list_count(f->s, (store_filter){ .kind = "pair", .annotator = "alice" }), 2);
    assert_int_equal(list_count(f->s, (store_filter){ .since_ms = T0 + DAY }), 2);
    assert_int_equal(list_count(f->s, (store_filter){ .until_ms = T0 + 2000 }), 1);
    assert_int_equal(list_count(f->s, (store_filter){ .since_ms = T0 + 2000, .until_ms = T0 + DAY + 2000 }), 3);
    assert_int_equal(list_count(f->s, (store_filter){ .annotator = "x' OR '1'='1" }), 0);

    char err[256] = "";
    int64_t acc[3] = { 0, 0, 100 };
    assert_int_equal(store_feedback_each(f->s, NULL, collect, acc, err, sizeof err), 0);
    assert_int_equal(acc[1], 5);
    int64_t acc2[3] = { 0, 0, 100 };
    store_filter flt = { .annotator = "alice" };
    assert_int_equal(store_feedback_each(f->s, &flt, collect, acc2, err, sizeof err), 0);
    assert_int_equal(acc2[1], 3);
    int64_t acc3[3] = { 0, 0, 2 }; /* stop early */
    assert_int_equal(store_feedback_each(f->s, NULL, collect, acc3, err, sizeof err), 42);
    assert_int_equal(acc3[1], 2);
}

static void test_stats(void **st) {
    fx *f = *st;
    seed(f->s);
    json_t *j = NULL;
    char err[256] = "";
    assert_int_equal(store_feedback_stats(f->s, &j, err, sizeof err), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "total")), 5);
    json_t *k = json_object_get(j, "by_kind");
    assert_int_equal(json_integer_value(json_object_get(k, "pair")), 3);
    assert_int_equal(json_integer_value(json_object_get(k, "tie")), 1);
    assert_int_equal(json_integer_value(json_object_get(k, "both_bad")), 1);
    json_t *a = json_object_get(j, "by_annotator");
    assert_int_equal(json_integer_value(json_object_get(a, "alice")), 3);
    assert_int_equal(json_integer_value(json_object_get(a, "bob")), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "")), 1);
    json_t *d = json_object_get(j, "by_day");
    assert_int_equal(json_object_size(d), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "2024-01-01")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "2024-01-02")), 2);
    json_t *sp = json_object_get(j, "by_split");
    assert_int_equal(json_integer_value(json_object_get(sp, "train")) +
                     json_integer_value(json_object_get(sp, "eval")), 5);
    json_decref(j);
}

static void test_split(void **st) {
    fx *f = *st;
    /* FNV-1a 64 of "fb_000000000000000000000000" fixed forever */
    assert_string_equal(store_split_of("fb_000000000000000000000000"),
                        store_split_of("fb_000000000000000000000000"));
    enum { N = 1000 };
    store_feedback *rows = calloc(N, sizeof *rows);
    for (int i = 0; i < N; i++) rows[i] = mk("pair", "a", 0);
    char err[256] = "";
    assert_int_equal(store_feedback_insert(f->s, rows, N, NULL, NULL, NULL, NULL, err, sizeof err), 0);
    int eval = 0;
    for (int i = 0; i < N; i++) {
        assert_string_equal(rows[i].split, store_split_of(rows[i].id));
        if (strcmp(rows[i].split, "eval") == 0) eval++;
    }
    /* Binomial(1000, 0.1): mean 100, sd 9.5; 55..145 is > 4.7 sd. */
    assert_true(eval >= 55 && eval <= 145);
    store_feedback g;
    assert_int_equal(store_feedback_get(f->s, rows[7].id, &g, err, sizeof err), 0);
    assert_string_equal(g.split, rows[7].split);
    store_feedback_clear(&g);
    for (int i = 0; i < N; i++) store_feedback_clear(&rows[i]);
    free(rows);
}

static void test_reopen_integrity(void **st) {
    fx *f = *st;
    seed(f->s);
    char err[256] = "";
    store_feedback r = mk("pair", "z", 0);
    char **ids = NULL;
    assert_int_equal(store_feedback_insert(f->s, &r, 1, "k", "h", &ids, NULL, err, sizeof err), 0);
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), 0);
    assert_int_equal(count_rows(f->s), 6);
    store_feedback g;
    assert_int_equal(store_feedback_get(f->s, r.id, &g, err, sizeof err), 0);
    assert_string_equal(g.annotator, "z");
    store_feedback_clear(&g);
    char **ids2 = NULL;
    bool replayed = false;
    assert_int_equal(store_feedback_insert(f->s, &r, 1, "k", "h", &ids2, &replayed, err, sizeof err), 0);
    assert_true(replayed);
    assert_string_equal(ids2[0], ids[0]);
    store_ids_free(ids);
    store_ids_free(ids2);
    store_feedback_clear(&r);

    if (f->pg)
        return; /* the rest reads SQLite's own pragmas */
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_newer_schema_refused(void **st) {
    fx *f = *st;
    char err[256] = "";
    store_close(f->s);
    f->s = NULL;
    assert_int_equal(tu_store_sql(f, "INSERT INTO schema_version VALUES (99, 0)"), 0);
    assert_int_equal(store_open(&f->s, f->path, err, sizeof err), -ENOTSUP);
    assert_null(f->s);
    assert_non_null(strstr(err, "schema version 99 is newer"));
}

static void test_memory(void **st) {
    (void)st;
    store *s = NULL;
    char err[256] = "";
    assert_int_equal(store_open(&s, ":memory:", err, sizeof err), 0);
    store_feedback r = mk("pair", "a", 0);
    insert1(s, &r);
    assert_int_equal(count_rows(s), 1);
    store_feedback_clear(&r);
    store_close(s);
    store_close(NULL);
    assert_int_equal(store_open(&s, "/nonexistent-dir/x.db", err, sizeof err), -EIO);
    assert_non_null(strstr(err, "/nonexistent-dir/x.db"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_validation, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_batch_all_or_nothing, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_idempotency, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_pagination, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_filters_and_each, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_stats, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_split, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_integrity, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test_setup_teardown(test_newer_schema_refused, tu_store_cm_setup, tu_store_cm_teardown),
        cmocka_unit_test(test_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
