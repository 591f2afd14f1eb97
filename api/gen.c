/* gen.c - scheduler events -> OpenAI completion / chat responses. */
#include "gen.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "tok_load.h"

/* ---- small helpers ------------------------------------------------------ */

static int gen__append(gen_choice *c, const char *s, size_t n) {
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        while (cap < c->len + n + 1) cap *= 2;
        char *nt = realloc(c->text, cap);
        if (!nt) return -1;
        c->text = nt;
        c->cap = cap;
    }
    memcpy(c->text + c->len, s, n);
    c->len += n;
    c->text[c->len] = '\0';
    return 0;
}

json_t *gen_piece_json(const tok *t, int32_t id) {
    char piece[256], out[TOK_STREAM_OUT_MAX(256) + 8];
    size_t n = 0;
    tok_err e;
    if (tok_decode_piece(t, id, TOK_DEC_SPECIAL, piece, sizeof piece, &n, &e) != 0) n = 0;
    tok_stream st;
    tok_stream_init(&st);
    long a = tok_stream_feed(&st, piece, n, out, sizeof out);
    long b = tok_stream_flush(&st, out + (a > 0 ? a : 0), sizeof out - (size_t)(a > 0 ? a : 0));
    return json_stringn(out, (size_t)((a > 0 ? a : 0) + (b > 0 ? b : 0)));
}

static json_t *gen__piece_bytes(const tok *t, int32_t id) {
    char piece[256];
    size_t n = 0;
    tok_err e;
    json_t *arr = json_array();
    if (tok_decode_piece(t, id, TOK_DEC_SPECIAL, piece, sizeof piece, &n, &e) == 0)
        for (size_t i = 0; i < n; i++) json_array_append_new(arr, json_integer((unsigned char)piece[i]));
    return arr;
}

/* -inf is not JSON: OpenAI clients expect a number; use a very low one. */
static json_t *gen__lp(float lp) { return json_real(isfinite(lp) ? lp : -9999.0); }

static void gen__record_logprobs(gen_choice *c, const sched_event *ev) {
    const tok *t = c->job->sm->tok;
    if (c->job->kind == GEN_COMPLETION) {
        json_t *top = json_object();
        for (int i = 0; i < ev->n_top; i++) {
            json_t *k = gen_piece_json(t, ev->top[i].token);
            const char *ks = json_string_value(k);
            if (ks && !json_object_get(top, ks)) json_object_set_new(top, ks, gen__lp(ev->top[i].logprob));
            json_decref(k);
        }
        json_array_append_new(json_object_get(c->logprobs, "tokens"), gen_piece_json(t, ev->token));
        json_array_append_new(json_object_get(c->logprobs, "token_logprobs"), gen__lp(ev->logprob));
        json_array_append_new(json_object_get(c->logprobs, "top_logprobs"), top);
        json_array_append_new(json_object_get(c->logprobs, "text_offset"),
                              json_integer((json_int_t)c->text_offset));
        return;
    }
    json_t *top = json_array();
    for (int i = 0; i < ev->n_top; i++)
        json_array_append_new(top, json_pack("{s:o, s:o, s:o}", "token", gen_piece_json(t, ev->top[i].token),
                                             "logprob", gen__lp(ev->top[i].logprob), "bytes",
                                             gen__piece_bytes(t, ev->top[i].token)));
    json_array_append_new(json_object_get(c->logprobs, "content"),
                          json_pack("{s:o, s:o, s:o, s:o}", "token", gen_piece_json(t, ev->token),
                                    "logprob", gen__lp(ev->logprob), "bytes",
                                    gen__piece_bytes(t, ev->token), "top_logprobs", top));
}

static json_t *gen__new_logprobs(gen_kind kind) {
    if (kind == GEN_COMPLETION)
        return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs",
                         "text_offset");
    return json_pack("{s:[]}", "content");
}

/* ---- streaming ------------------------------------------------------------ */

static void gen__send(gen_job *job, json_t *chunk) {
    char *text = json_dumps(chunk, JSON_COMPACT | JSON_REAL_PRECISION(7));
    json_decref(chunk);
    if (text) http_pending_sse_event(job->p, NULL, text);
    free(text);
}

static json_t *gen__chunk(gen_job *job, json_t *choices) {
    return json_pack("{s:s, s:s, s:I, s:s, s:o}", "id", job->id, "object",
                     job->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion", "created",
                     (json_int_t)job->created, "model", job->model, "choices", choices);
}

/* Sends a piece of text (and/or the finish) of one choice. */
static void gen__stream_delta(gen_choice *c, const char *s, size_t n, json_t *logprobs) {
    gen_job *job = c->job;
    json_t *choice;
    json_t *fin = c->finish ? json_string(c->finish) : json_null();
    if (job->kind == GEN_COMPLETION) {
        choice = json_pack("{s:s%, s:i, s:o, s:o}", "text", s, n, "index", c->index, "logprobs",
                           logprobs ? logprobs : json_null(), "finish_reason", fin);
    } else {
        json_t *delta = json_object();
        if (!c->role_sent) {
            json_object_set_new(delta, "role", json_string("assistant"));
            c->role_sent = true;
        }
        if (n || !c->finish) json_object_set_new(delta, "content", json_stringn(s, n));
        choice = json_pack("{s:i, s:o, s:o, s:o}", "index", c->index, "delta", delta, "logprobs",
                           logprobs ? logprobs : json_null(), "finish_reason", fin);
    }
    gen__send(job, gen__chunk(job, json_pack("[o]", choice)));
}

/* ---- the end -------------------------------------------------------------- */

/* OpenAI's usage; prompt_tokens_details.cached_tokens counts each prompt's
 * positions that came from the prefix cache once (the most any of its
 * choices got). */
static json_t *gen__usage(gen_job *job) {
    int completion = 0, cached = 0;
    for (int i = 0; i < job->n_choices; i++) {
        const gen_choice *c = &job->choices[i];
        completion += c->n_generated;
        bool first = true; /* of its prompt's choices, the one with the most */
        for (int k = 0; k < job->n_choices && first; k++) {
            const gen_choice *o = &job->choices[k];
            if (k != i && o->prompt_i == c->prompt_i &&
                (o->n_cached > c->n_cached || (o->n_cached == c->n_cached && k < i)))
                first = false;
        }
        if (first) cached += c->n_cached;
    }
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", job->prompt_tokens,
                     "completion_tokens", completion, "total_tokens", job->prompt_tokens + completion,
                     "prompt_tokens_details", "cached_tokens", cached);
}

static int gen__by_logprob(const void *a, const void *b) {
    const gen_choice *x = *(gen_choice *const *)a, *y = *(gen_choice *const *)b;
    if (x->prompt_i != y->prompt_i) return x->prompt_i - y->prompt_i;
    if (x->sum_logprob != y->sum_logprob) return x->sum_logprob > y->sum_logprob ? -1 : 1;
    return x->index - y->index;
}

/* Highest reward first; choices that could not be scored last. */
static int gen__by_reward(const void *a, const void *b) {
    const gen_choice *x = *(gen_choice *const *)a, *y = *(gen_choice *const *)b;
    if (x->prompt_i != y->prompt_i) return x->prompt_i - y->prompt_i;
    if (x->has_reward != y->has_reward) return x->has_reward ? -1 : 1;
    if (x->has_reward && x->reward != y->reward) return x->reward > y->reward ? -1 : 1;
    return x->index - y->index;
}

/* The answer of a non-stream job: each prompt's n best choices (all of
 * them, in order, unless best_of > n or reranking by reward). */
static json_t *gen__body(gen_job *job) {
    gen_choice **order = malloc((size_t)job->n_choices * sizeof *order);
    json_t *choices = json_array();
    bool by_reward = job->rerank == GEN_RERANK_REWARD;
    for (int i = 0; order && i < job->n_choices; i++) order[i] = &job->choices[i];
    if (order && (by_reward || job->best_of > job->n))
        qsort(order, (size_t)job->n_choices, sizeof *order, by_reward ? gen__by_reward : gen__by_logprob);
    for (int i = 0, out = 0; order && i < job->n_choices; i++) {
        gen_choice *c = order[i];
        if (i % job->best_of >= job->n) continue;
        json_t *lp = c->logprobs ? json_incref(c->logprobs) : json_null();
        json_t *item;
        if (job->kind == GEN_COMPLETION) {
            json_t *text = json_stringn(c->text ? c->text : "", c->len);
            if (job->echo) {
                char *both = NULL;
                if (asprintf(&both, "%s%.*s", job->prompt_text[c->prompt_i], (int)c->len,
                             c->text ? c->text : "") >= 0) {
                    json_decref(text);
                    text = json_string(both);
                }
                free(both);
            }
            item = json_pack("{s:o, s:i, s:o, s:s}", "text", text, "index", out, "logprobs", lp,
                             "finish_reason", c->finish ? c->finish : "length");
        } else {
            item = json_pack("{s:i, s:{s:s, s:s%}, s:o, s:s}", "index", out, "message", "role",
                             "assistant", "content", c->text ? c->text : "", c->len, "logprobs", lp,
                             "finish_reason", c->finish ? c->finish : "length");
        }
        if (by_reward) /* an extension field: null when the choice could not be scored */
            json_object_set_new(item, "reward", c->has_reward ? json_real(c->reward) : json_null());
        json_array_append_new(choices, item);
        out++;
    }
    free(order);
    return json_pack("{s:s, s:s, s:I, s:s, s:o, s:o}", "id", job->id, "object",
                     job->kind == GEN_CHAT ? "chat.completion" : "text_completion", "created",
                     (json_int_t)job->created, "model", job->model, "choices", choices, "usage", gen__usage(job));
}

static void gen__finish_job(gen_job *job) {
    if (atomic_load(&job->failed)) {
        if (job->stream) {
            json_t *e = api_error_body(job->error_code, NULL, job->error);
            gen__send(job, e);
            http_pending_sse_event(job->p, NULL, "[DONE]");
            http_pending_sse_end(job->p);
        } else {
            http_pending_reply_json(job->p, (unsigned)job->error_status,
                                    api_error_body(job->error_code, NULL, job->error));
        }
    } else if (job->stream) {
        if (job->include_usage)
            gen__send(job, json_pack("{s:s, s:s, s:I, s:s, s:[], s:o}", "id", job->id, "object",
                                     job->kind == GEN_CHAT ? "chat.completion.chunk" : "text_completion",
                                     "created", (json_int_t)job->created, "model", job->model,
                                     "choices", "usage", gen__usage(job)));
        http_pending_sse_event(job->p, NULL, "[DONE]");
        http_pending_sse_end(job->p);
    } else {
        api_error_code code = API_ERR_INTERNAL;
        char err[512];
        if (job->rerank == GEN_RERANK_REWARD && gen_rerank_score(job, &code, err, sizeof err) != 0)
            http_pending_reply_json(job->p, api_error_status(code), api_error_body(code, "rerank", err));
        else
            http_pending_reply_json(job->p, 200, gen__body(job));
    }
    http_pending_release(job->p);
    job->p = NULL;
    gen_job_free(job);
}

/* Records the first error; the request is answered with it at the end. */
static void gen__fail(gen_job *job, unsigned status, api_error_code code, const char *msg) {
    bool expected = false;
    if (atomic_compare_exchange_strong(&job->failed, &expected, true)) {
        snprintf(job->error, sizeof job->error, "%s", msg);
        job->error_status = (int)status;
        job->error_code = code;
    }
}

static void gen__choice_done(gen_choice *c) {
    if (atomic_fetch_sub(&c->job->remaining, 1) == 1) gen__finish_job(c->job);
}

/* ---- scheduler callbacks (scheduler thread) --------------------------- */

static bool gen__cancelled(void *ud) {
    gen_choice *c = ud;
    return atomic_load(&c->job->failed) || http_pending_cancelled(c->job->p);
}

/* Emits text that passed the UTF-8 and stop filters. */
static void gen__emit(gen_choice *c, const char *s, size_t n, json_t *logprobs) {
    if (c->job->stream) {
        if (n || logprobs || c->finish) gen__stream_delta(c, s, n, logprobs);
        else json_decref(logprobs);
    } else {
        json_decref(logprobs);
        gen__append(c, s, n);
    }
}

static sched_reply gen__on_event(void *ud, const sched_event *ev) {
    gen_choice *c = ud;
    gen_job *job = c->job;
    char piece[256], utf8[TOK_STREAM_OUT_MAX(256)], out[STOP_MAX_LEN + sizeof utf8];
    size_t out_len = 0;
    bool matched = false;
    json_t *lp_delta = NULL;

    c->n_cached = ev->n_cached;
    if (ev->token >= 0) {
        size_t plen = 0;
        tok_err te;
        if (tok_decode_piece(job->sm->tok, ev->token, 0, piece, sizeof piece, &plen, &te) != 0) plen = 0;
        long u = tok_stream_feed(&c->utf8, piece, plen, utf8, sizeof utf8);
        out_len = sizeof out;
        stop_matcher_feed(&c->stop, utf8, u > 0 ? (size_t)u : 0, out, &out_len, &matched);
        c->n_generated = ev->n_generated;
        if (isfinite(ev->logprob)) c->sum_logprob += ev->logprob;
        if (c->logprobs) {
            if (job->stream) { /* each chunk carries its own tokens' logprobs */
                json_t *all = c->logprobs;
                c->logprobs = gen__new_logprobs(job->kind);
                gen__record_logprobs(c, ev);
                lp_delta = c->logprobs;
                c->logprobs = all;
            } else {
                gen__record_logprobs(c, ev);
            }
        }
        c->text_offset += out_len;
    }
    if (matched) {
        c->finish = "stop";
    } else if (ev->finish != SCHED_FINISH_NONE) {
        /* generation ended otherwise: release what the filters hold */
        long u = tok_stream_flush(&c->utf8, utf8, sizeof utf8);
        size_t more = sizeof out - out_len;
        stop_matcher_feed(&c->stop, utf8, u > 0 ? (size_t)u : 0, out + out_len, &more, &matched);
        out_len += more;
        if (!matched) {
            more = sizeof out - out_len;
            stop_matcher_flush(&c->stop, out + out_len, &more);
            out_len += more;
        }
        switch (ev->finish) {
        case SCHED_FINISH_LENGTH: c->finish = matched ? "stop" : "length"; break;
        case SCHED_FINISH_STOP: c->finish = "stop"; break;
        case SCHED_FINISH_CANCELLED:
            c->finish = "cancelled";
            gen__fail(job, 503, API_ERR_SHUTTING_DOWN, "the request was cancelled (client gone or server stopping)");
            break;
        case SCHED_FINISH_TIMEOUT:
            c->finish = "timeout";
            gen__fail(job, 503, API_ERR_INTERNAL, "the request ran past the model's request_timeout");
            break;
        default:
            c->finish = "error";
            gen__fail(job, 500, API_ERR_INTERNAL, ev->error ? ev->error : "generation failed");
            break;
        }
    }
    if (!atomic_load(&job->failed)) gen__emit(c, out, out_len, lp_delta);
    else json_decref(lp_delta);
    if (c->finish) {
        gen__choice_done(c);
        return SCHED_END;
    }
    return SCHED_CONTINUE;
}

/* ---- construction -------------------------------------------------------- */

gen_job *gen_job_create(gen_kind kind, served_model *sm, int n_prompts, int best_of,
                        const char *const *stops, size_t n_stops, char *err, size_t errlen) {
    size_t n = (size_t)n_prompts * (size_t)best_of;
    gen_job *job = calloc(1, sizeof *job + n * sizeof(gen_choice));
    if (!job) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    job->kind = kind;
    job->sm = sm;
    job->n_prompts = n_prompts;
    job->best_of = best_of;
    job->n_choices = (int)n;
    job->top_logprobs = -1;
    snprintf(job->model, sizeof job->model, "%s", sm->cfg->name);
    atomic_init(&job->remaining, (int)n);
    atomic_init(&job->failed, false);
    for (size_t i = 0; i < n; i++) {
        gen_choice *c = &job->choices[i];
        c->job = job;
        c->index = (int)i;
        c->prompt_i = (int)(i / (size_t)best_of);
        tok_stream_init(&c->utf8);
        eng_err e = {0};
        if (stop_matcher_init(&c->stop, stops, n_stops, &e) != 0) {
            snprintf(err, errlen, "%s", e.msg);
            gen_job_free(job);
            return NULL;
        }
    }
    return job;
}

void gen_job_free(gen_job *job) {
    if (!job) return;
    for (int i = 0; i < job->n_choices; i++) {
        free(job->choices[i].text);
        json_decref(job->choices[i].logprobs);
        stop_matcher_free(&job->choices[i].stop);
    }
    if (job->prompt_text)
        for (int i = 0; i < job->n_prompts; i++) free(job->prompt_text[i]);
    free(job->prompt_text);
    json_decref(job->prompt_msgs);
    http_pending_release(job->p);
    models_adapter_put(job->adapter);
    free(job);
}

int gen_submit(gen_job *job, int32_t *const *prompts, const int *n_tokens, const sched_req *base,
               bool seeded, char *err, size_t errlen, int *err_status) {
    for (int i = 0; i < job->n_choices; i++) {
        gen_choice *c = &job->choices[i];
        if (job->top_logprobs >= 0) c->logprobs = gen__new_logprobs(job->kind);
        if (job->echo && job->kind == GEN_COMPLETION && job->prompt_text)
            c->text_offset = strlen(job->prompt_text[c->prompt_i]);
    }
    /* After the last successful submit the job may finish and be freed on
     * the scheduler thread at any moment: the loop below reads only locals
     * and the choice it is about to submit. */
    const int n = job->n_choices, best_of = job->best_of, top = job->top_logprobs;
    sched *s = job->sm->sched;
    for (int i = 0; i < n; i++) {
        gen_choice *c = &job->choices[i];
        sched_req r = *base;
        r.prompt = prompts[c->prompt_i];
        r.n_prompt = n_tokens[c->prompt_i];
        r.top_logprobs = top > 0 ? top : 0;
        r.samp.seed = seeded ? base->samp.seed + (uint64_t)(i % best_of)
                             : base->samp.seed + (uint64_t)i * 0x9E3779B97F4A7C15ull;
        r.on_event = gen__on_event;
        r.is_cancelled = gen__cancelled;
        r.ud = c;
        char msg[512];
        int rc = sched_submit(s, &r, msg, sizeof msg);
        if (rc == 0) continue;
        int status = rc == -EAGAIN ? 429 : rc == -E2BIG ? 400 : rc == -EINVAL ? 422 : 503;
        if (i == 0) {
            snprintf(err, errlen, "%s", msg);
            *err_status = status;
            return -1;
        }
        /* later choices: the running ones see `failed` and stop; the last
         * to finish answers with this error */
        gen__fail(job, (unsigned)status, status == 429 ? API_ERR_QUEUE_FULL : API_ERR_INTERNAL, msg);
        int unsubmitted = n - i;
        if (atomic_fetch_sub(&job->remaining, unsubmitted) == unsubmitted) gen__finish_job(job);
        return 0;
    }
    return 0;
}
