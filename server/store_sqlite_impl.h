/* store_sqlite_impl.h - private to the SQLite store's files
 * (store_sqlite.c: schema and feedback; store_train.c: training runs and
 * adapters): the connection and the mutex that serialises every call. */
#ifndef STORE_SQLITE_IMPL_H
#define STORE_SQLITE_IMPL_H

#include <pthread.h>
#include <sqlite3.h>

struct store {
    sqlite3 *db;
    pthread_mutex_t mu;   /* held for the whole of every store_* call */
};

#endif
