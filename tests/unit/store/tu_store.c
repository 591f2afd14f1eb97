/* tu_store.c - the store suites' fixture (tu_store.h). */
#include "tu_store.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>
#include <sqlite3.h>

bool tu_store_pg(void)
{
    const char *b = getenv("ALIGND_TEST_BACKEND");
    return b && !strcmp(b, "pg");
}

/* The server's URL: ALIGND_TEST_PG_URL, or the first line of the file
 * ALIGND_TEST_PG_URL_FILE. 0 ok, -1 none configured. */
static int tu_store__pg_url(char *out, size_t n)
{
    const char *u = getenv("ALIGND_TEST_PG_URL");
    if (u && *u) {
        snprintf(out, n, "%s", u);
        return 0;
    }
    const char *file = getenv("ALIGND_TEST_PG_URL_FILE");
    FILE *f = file ? fopen(file, "r") : NULL;
    if (!f)
        return -1;
    int ok = fgets(out, (int)n, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && *out ? 0 : -1;
}

static int tu_store__pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    int rc = 0;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "tu_store: cannot connect to %s: %s", url, PQerrorMessage(c));
        rc = -1;
    } else {
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK) {
            fprintf(stderr, "tu_store: %s: %s", sql, PQerrorMessage(c));
            rc = -1;
        }
        PQclear(r);
    }
    PQfinish(c);
    return rc;
}

int tu_store_setup(tu_store *f)
{
    memset(f, 0, sizeof *f);
    f->pg = tu_store_pg();
    char err[512] = "";
    if (f->pg) {
        if (tu_store__pg_url(f->base_url, sizeof f->base_url)) {
            fprintf(stderr, "\n*** SKIPPED: no PostgreSQL server for the pg store suite "
                            "(ALIGND_TEST_PG_URL / ALIGND_TEST_PG_URL_FILE unset or empty) ***\n");
            return 77;
        }
        static int seq;
        snprintf(f->schema, sizeof f->schema, "t_%d_%d", (int)getpid(), ++seq);
        char sql[256];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE; CREATE SCHEMA %s", f->schema,
                 f->schema);
        if (tu_store__pg_exec(f->base_url, sql))
            return -1;
        snprintf(f->path, sizeof f->path, "%s%coptions=-csearch_path%%3D%s", f->base_url,
                 strchr(f->base_url, '?') ? '&' : '?', f->schema);
    } else {
        strcpy(f->path, "/tmp/alignd_store_XXXXXX");
        int fd = mkstemp(f->path);
        if (fd < 0)
            return -1;
        close(fd);
        unlink(f->path); /* let SQLite create it */
    }
    if (store_open(&f->s, f->path, err, sizeof err) != 0) {
        fprintf(stderr, "store_open %s: %s\n", f->path, err);
        return -1;
    }
    return 0;
}

void tu_store_teardown(tu_store *f)
{
    store_close(f->s);
    f->s = NULL;
    if (f->pg) {
        char sql[160];
        snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", f->schema);
        tu_store__pg_exec(f->base_url, sql);
        return;
    }
    const char *suffix[] = {"", "-wal", "-shm", "-trainer.lock"};
    for (int i = 0; i < 4; i++) {
        char p[1100];
        snprintf(p, sizeof p, "%s%s", f->path, suffix[i]);
        unlink(p);
    }
}

int tu_store_sql(tu_store *f, const char *sql)
{
    if (f->pg)
        return tu_store__pg_exec(f->path, sql);
    sqlite3 *db = NULL;
    int rc = sqlite3_open(f->path, &db);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        fprintf(stderr, "tu_store: %s: %s\n", sql, sqlite3_errmsg(db));
    sqlite3_close(db);
    return rc == SQLITE_OK ? 0 : -1;
}

int tu_store_cm_setup(void **state)
{
    tu_store *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    int rc = tu_store_setup(f);
    if (rc) {
        free(f);
        if (rc == 77)
            exit(77); /* ctest: Skipped (the whole suite needs the server) */
        return -1;
    }
    *state = f;
    return 0;
}

int tu_store_cm_teardown(void **state)
{
    tu_store *f = *state;
    tu_store_teardown(f);
    free(f);
    return 0;
}
