/* debug_worker.c - timed jobs on one thread, answered through http_pending. */
#include "debug_worker.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

typedef struct debug__job {
    http_pending *p;
    json_t *message;      /* echo only */
    unsigned count, sent; /* ticks only */
    unsigned interval_ms;
    bool ticks;
    uint64_t due_ns;      /* CLOCK_MONOTONIC */
    struct debug__job *next;
} debug__job;

struct debug_worker {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    debug__job *jobs; /* unsorted; a handful at most */
    size_t n_jobs, cap;
    bool stop;
};

static uint64_t debug__now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void debug__job_free(debug__job *j) {
    http_pending_release(j->p);
    json_decref(j->message);
    free(j);
}

/* Runs one due job; returns true if it must run again (more ticks). */
static bool debug__run(debug__job *j) {
    if (!j->ticks) {
        json_t *body = json_pack("{s:O, s:i}", "message", j->message, "delay_ms",
                                 (int)j->interval_ms);
        if (http_pending_reply_json(j->p, 200, body) != 0)
            LOG_DBG("debug", "request %s: client gone before the echo", http_pending_request_id(j->p));
        return false;
    }
    if (j->sent < j->count) {
        char data[64];
        snprintf(data, sizeof data, "{\"n\":%u}", j->sent);
        if (http_pending_sse_event(j->p, "tick", data) != 0) return false; /* client gone */
        j->sent++;
        return true;
    }
    http_pending_sse_event(j->p, NULL, "[DONE]");
    http_pending_sse_end(j->p);
    return false;
}

static void *debug__main(void *arg) {
    debug_worker *w = arg;
    pthread_mutex_lock(&w->mu);
    while (!w->stop) {
        debug__job **best = NULL;
        for (debug__job **pj = &w->jobs; *pj; pj = &(*pj)->next)
            if (!best || (*pj)->due_ns < (*best)->due_ns) best = pj;
        if (!best) {
            pthread_cond_wait(&w->cv, &w->mu);
            continue;
        }
        uint64_t now = debug__now_ns();
        if ((*best)->due_ns > now) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until); /* condvar clock */
            uint64_t wait = (*best)->due_ns - now;
            until.tv_sec += (time_t)(wait / 1000000000ull);
            until.tv_nsec += (long)(wait % 1000000000ull);
            if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
            pthread_cond_timedwait(&w->cv, &w->mu, &until);
            continue;
        }
        debug__job *j = *best;
        *best = j->next;
        pthread_mutex_unlock(&w->mu);
        bool again = debug__run(j);
        pthread_mutex_lock(&w->mu);
        if (again) {
            j->due_ns += (uint64_t)j->interval_ms * 1000000ull;
            j->next = w->jobs;
            w->jobs = j;
        } else {
            w->n_jobs--;
            pthread_mutex_unlock(&w->mu);
            debug__job_free(j);
            pthread_mutex_lock(&w->mu);
        }
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

debug_worker *debug_worker_start(size_t queue_size) {
    debug_worker *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->cap = queue_size;
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    if (pthread_create(&w->thread, NULL, debug__main, w) != 0) {
        pthread_cond_destroy(&w->cv);
        pthread_mutex_destroy(&w->mu);
        free(w);
        return NULL;
    }
    return w;
}

void debug_worker_stop(debug_worker *w) {
    if (!w) return;
    pthread_mutex_lock(&w->mu);
    w->stop = true;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    while (w->jobs) {
        debug__job *j = w->jobs;
        w->jobs = j->next;
        debug__job_free(j);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

bool debug_worker_full(debug_worker *w) {
    pthread_mutex_lock(&w->mu);
    bool full = w->n_jobs >= w->cap;
    pthread_mutex_unlock(&w->mu);
    return full;
}

static void debug__submit(debug_worker *w, debug__job *j) {
    pthread_mutex_lock(&w->mu);
    j->next = w->jobs;
    w->jobs = j;
    w->n_jobs++;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

void debug_worker_submit_echo(debug_worker *w, http_pending *p, json_t *message,
                              unsigned delay_ms) {
    debug__job *j = calloc(1, sizeof *j);
    if (!j) {
        http_pending_reply_error(p, API_ERR_INTERNAL, NULL, "out of memory");
        http_pending_release(p);
        json_decref(message);
        return;
    }
    j->p = p;
    j->message = message;
    j->interval_ms = delay_ms;
    j->due_ns = debug__now_ns() + (uint64_t)delay_ms * 1000000ull;
    debug__submit(w, j);
}

void debug_worker_submit_ticks(debug_worker *w, http_pending *p, unsigned count,
                               unsigned interval_ms) {
    debug__job *j = calloc(1, sizeof *j);
    if (!j) {
        http_pending_sse_end(p);
        http_pending_release(p);
        return;
    }
    j->p = p;
    j->ticks = true;
    j->count = count;
    j->interval_ms = interval_ms;
    j->due_ns = debug__now_ns();
    debug__submit(w, j);
}
