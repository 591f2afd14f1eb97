/* tu_store.h - the store suites' fixture, for either backend.
 *
 * Each suite binary runs twice under ctest: unit.test_store* on a fresh
 * SQLite file per test, and unit.test_store*_pg with ALIGND_TEST_BACKEND=pg
 * on the throw-away PostgreSQL server of the ctest fixture "pg"
 * (tests/tools/pg_server.sh writes its URL to the file named by
 * ALIGND_TEST_PG_URL_FILE, or ALIGND_TEST_PG_URL gives one), in a fresh
 * schema per test (search_path in the URL). Without a server the pg runs
 * report SKIPPED loudly. */
#ifndef TU_STORE_H
#define TU_STORE_H

#include <stdbool.h>

#include "store.h"

typedef struct tu_store {
    bool pg;
    char path[1024];   /* the SQLite file, or the URL with the schema */
    char schema[64];   /* pg: the test's schema */
    char base_url[512];
    store *s;
} tu_store;

/* True when this run tests PostgreSQL. */
bool tu_store_pg(void);
/* A fresh store in f (f->s open). 0 ok; 77 when pg is wanted but no
 * server is configured (the caller skips); -1 on error (message printed). */
int tu_store_setup(tu_store *f);
/* Closes f->s and removes the file or drops the schema. */
void tu_store_teardown(tu_store *f);
/* Runs sql (several statements allowed) on the database directly, on its
 * own connection, in f's schema: for building old schema versions. 0 ok. */
int tu_store_sql(tu_store *f, const char *sql);

/* cmocka setup/teardown around a tu_store (state: the tu_store *). */
int tu_store_cm_setup(void **state);
int tu_store_cm_teardown(void **state);

#endif
