/* embedder.h - dynamic batching of embedding requests for one model.
 *
 * One thread per model collects requests, waits a short while (max_wait_ms)
 * for more to arrive unless the token budget is already full, packs the
 * inputs of as many queued requests as fit max_batch_tokens into ONE
 * model_encode call (each input is one sequence), pools every sequence
 * (pooling.h) and calls each request's callback once all its inputs are
 * done. A request with more inputs than one batch holds is spread over
 * several consecutive batches.
 *
 * Threads: emb_create/emb_free on the owner's thread; emb_submit and
 * emb_stats_get from any thread (a mutex guards the queue); callbacks run on
 * the embedder's thread, must be quick, and must not call back into it.
 * When a model serves both generation and embeddings, `model_lock` (shared
 * with the scheduler) keeps one forward pass at a time on the model.
 */
#ifndef EMBEDDER_H
#define EMBEDDER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "model.h"
#include "pooling.h"

typedef struct emb_batcher emb_batcher;

typedef struct emb_opts {
    int max_batch_tokens;         /* tokens per model_encode */
    int max_wait_ms;              /* how long a lone request waits for company */
    int queue_size;               /* requests queued before emb_submit says -EAGAIN */
    pool_kind pool;
    bool normalize;               /* L2-normalise the pooled vectors */
    pthread_mutex_t *model_lock;  /* NULL when only the embedder uses the model */
} emb_opts;

/* Called once per request on the embedder's thread. status 0: vectors holds
 * n_inputs rows of dim floats (borrowed for the call). Otherwise a negative
 * errno and a message (-ECANCELED when the embedder stops). */
typedef void (*emb_done_fn)(void *ud, int status, const float *vectors, int n_inputs, int dim,
                            const char *error);

int emb_create(emb_batcher **out, model *m, const emb_opts *o, char *err, size_t errlen);
/* Stops the thread; queued requests get -ECANCELED. Accepts NULL. */
void emb_free(emb_batcher *e);

/* Queues n_inputs token sequences (copied; each 1..model_n_ctx tokens and
 * at most max_batch_tokens). Returns 0, -EAGAIN (queue full), -EINVAL (err
 * names the input), -ENOMEM. On failure the callback is never called. */
int emb_submit(emb_batcher *e, int32_t *const *inputs, const int *lens, int n_inputs,
               emb_done_fn done, void *ud, char *err, size_t errlen);

typedef struct emb_stats {
    int queued;                        /* requests waiting */
    unsigned long long requests, inputs, tokens, batches;
} emb_stats;
void emb_stats_get(emb_batcher *e, emb_stats *out);

#endif
