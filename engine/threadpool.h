/* threadpool.h - a small persistent pool of pthreads for the engine's
 * kernels: a parallel-for over a range of rows, run by the caller and the
 * pool's workers together.
 *
 * Workers spin for a short while after each job (a decode step runs dozens of
 * matmuls a few microseconds apart) and then sleep on a condition variable,
 * so an idle pool costs nothing. tp_park sends them to sleep at once: call it
 * before handing the cores to another thread pool (OpenBLAS), so that the
 * two never compete for them.
 *
 * Threads: tp_create and tp_free are called by the pool's owner, once each.
 * tp_parallel_for may be called from any thread; one call runs on the pool
 * at a time, and a call that finds the pool busy (another thread's job, or a
 * call from inside a job) runs its whole range in the calling thread, so it
 * never deadlocks and never waits. tp_park and tp_threads: any thread.
 */
#ifndef THREADPOOL_H
#define THREADPOOL_H

#include <stddef.h>

typedef struct tp_pool tp_pool;

/* One chunk of a parallel-for: process items [begin, end). worker names the
 * thread running it: 0 the caller, 1..n-1 the pool's workers; chunks with
 * the same worker never run at the same time within one tp_parallel_for
 * call (a busy pool's inline run is worker 0 too, on another thread). */
typedef void (*tp_fn)(void *ctx, size_t begin, size_t end, int worker);

/* Creates a pool for n_threads threads in all, the caller included: it starts
 * n_threads - 1 workers (none for 1). Returns 0 and a new pool in *out, or
 * -EINVAL (n_threads < 1 or > 256), -ENOMEM, or the negated error of
 * pthread_create (nothing is left running then). */
int tp_create(tp_pool **out, int n_threads);

/* Stops and joins the workers and frees the pool; NULL is a no-op. No
 * tp_parallel_for may be running on it. */
void tp_free(tp_pool *pool);

/* Threads that run a job, the caller included; 1 for NULL. */
int tp_threads(const tp_pool *pool);

/* Calls fn over [0, n) split into contiguous chunks whose boundaries are
 * multiples of grain (0 counts as 1), up to 4 chunks per thread, which the
 * caller and the workers claim one by one (so a thread that lost its core
 * delays nobody: the others take its share). Returns when every chunk is
 * done; fn's writes are then visible to the caller. A NULL pool, a busy pool
 * or a range of one grain run fn(ctx, 0, n, 0) in the calling thread.
 * n == 0 calls nothing. */
void tp_parallel_for(tp_pool *pool, size_t n, size_t grain, tp_fn fn, void *ctx);

/* Sends spinning workers to sleep now instead of after their spin time.
 * NULL is a no-op. */
void tp_park(tp_pool *pool);

#endif
