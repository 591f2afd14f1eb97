/* debug_worker.h - a background thread that answers the /debug routes late:
 * the smallest real user of the asynchronous path (queue + uv_async_send +
 * suspend/resume), used by the HTTP tests and as an example for the engine.
 *
 * Threads: start/stop on the main thread; submit/full on the loop thread;
 * the worker thread produces answers through http_pending.
 */
#ifndef DEBUG_WORKER_H
#define DEBUG_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

typedef struct debug_worker debug_worker;

/* Returns a running worker with a queue of `queue_size` jobs, or NULL. */
debug_worker *debug_worker_start(size_t queue_size);
/* Stops and joins the thread, dropping unfinished jobs. Accepts NULL. */
void debug_worker_stop(debug_worker *w);
/* True when another job would exceed the queue (answer 429). */
bool debug_worker_full(debug_worker *w);
/* Replies {"message": message, "delay_ms": delay_ms} after delay_ms.
 * Steals the pending ref and `message`. */
void debug_worker_submit_echo(debug_worker *w, http_pending *p, json_t *message,
                              unsigned delay_ms);
/* Sends `count` SSE events "tick" ({"n": i}) every interval_ms, then
 * "data: [DONE]" and ends the stream. Steals the pending ref. */
void debug_worker_submit_ticks(debug_worker *w, http_pending *p, unsigned count,
                               unsigned interval_ms);

#endif
