/* gen_params.c - shared request fields and the start of a generation. */
#include "gen_params.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "app.h"
#include "fields.h"

static int api__stop(http_req *req, json_t *body, api_gen_params *p) {
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        p->stops[p->n_stops++] = json_string_value(v);
    } else if (json_is_array(v)) {
        if (json_array_size(v) > STOP_MAX_N) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "stop", "stop may hold at most %d strings", STOP_MAX_N);
            return -1;
        }
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) {
                http_reply_error(req, API_ERR_BAD_REQUEST, "stop", "stop[%zu] must be a string", i);
                return -1;
            }
            p->stops[p->n_stops++] = json_string_value(s);
        }
    } else {
        http_reply_error(req, API_ERR_BAD_REQUEST, "stop", "stop must be a string or an array of strings");
        return -1;
    }
    for (size_t i = 0; i < p->n_stops; i++)
        if (!p->stops[i][0] || strlen(p->stops[i]) > STOP_MAX_LEN) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "stop", "stop[%zu] must be 1 to %d bytes", i, STOP_MAX_LEN);
            return -1;
        }
    return 0;
}

static int api__logit_bias(http_req *req, json_t *body, api_gen_params *p, int vocab) {
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "logit_bias", "logit_bias must be an object of token id -> bias");
        return -1;
    }
    size_t n = json_object_size(v);
    p->bias = calloc(n ? n : 1, sizeof *p->bias);
    if (!p->bias) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    const char *key;
    json_t *b;
    size_t i = 0;
    json_object_foreach(v, key, b) {
        char *end;
        errno = 0;
        long id = strtol(key, &end, 10);
        if (errno || end == key || *end || id < 0 || id >= vocab) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "logit_bias",
                             "logit_bias key '%s' must be a token id in [0, %d)", key, vocab);
            return -1;
        }
        if (!json_is_number(b) || json_number_value(b) < -100 || json_number_value(b) > 100) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "logit_bias",
                             "logit_bias['%s'] must be a number in [-100, 100]", key);
            return -1;
        }
        p->bias[i].token = (int32_t)id;
        p->bias[i].bias = (float)json_number_value(b);
        i++;
    }
    p->samp.logit_bias = p->bias;
    p->samp.n_logit_bias = (int32_t)n;
    return 0;
}

/* The adapter a request names, if any: "model": "NAME:ADAPTER" and/or
 * "adapter": "ADAPTER". Takes a reference to it; answers the request (400
 * when the two disagree, 404 when sm has no such adapter) and returns -1. */
static int api__adapter(http_req *req, json_t *body, const char *requested, api_gen_params *p) {
    const char *field = NULL, *colon = strchr(requested, ':');
    if (api_field_string(req, body, "adapter", &field)) return -1;
    const char *name = colon ? colon + 1 : field;
    if (colon && field && strcmp(colon + 1, field) != 0) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "adapter", "adapter '%s' disagrees with the adapter of model '%s'",
                         field, requested);
        return -1;
    }
    /* just the model: the loop's active adapter when there is one (the
     * base otherwise); "base" forces the base */
    bool found = false;
    p->slot = models_adapter_slot(p->sm, name ? name : MODELS_LOOP_SLOT);
    p->adapter = models_adapter_resolve(p->sm, name, &found);
    if (!found) {
        http_reply_error(req, API_ERR_ADAPTER_NOT_FOUND, colon ? "model" : "adapter",
                         "adapter '%s' of model '%s' is not served here (see GET /v1/models)", name,
                         p->sm->cfg->name);
        return -1;
    }
    return 0;
}

/* "rerank": how the n returned choices are picked from best_of (or n)
 * and ordered. After "stream". */
static int api__rerank(http_req *req, json_t *body, api_gen_params *p) {
    const char *v = NULL;
    if (api_field_string(req, body, "rerank", &v)) return -1;
    if (!v || !strcmp(v, "logprob")) return 0;
    if (strcmp(v, "reward") != 0) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "rerank", "rerank must be \"logprob\" (the default) or \"reward\"");
        return -1;
    }
    if (p->stream) { /* every candidate must end before any can be chosen */
        http_reply_error(req, API_ERR_BAD_REQUEST, "rerank", "rerank \"reward\" cannot be streamed");
        return -1;
    }
    if (!models_reward_present(p->sm)) {
        http_reply_error(req, API_ERR_REWARD_MODEL_UNAVAILABLE, "rerank",
                         "model '%s' has no reward model for rerank \"reward\": train one with `alignd train reward` "
                         "and set reward_model in its [model.%s] section", p->sm->cfg->name, p->sm->cfg->name);
        return -1;
    }
    p->rerank = GEN_RERANK_REWARD;
    return 0;
}

/* "model": the served model called NAME (or NAME:ADAPTER), a decoder. */
static int api__model(http_req *req, json_t *body, api_gen_params *p) {
    app *a = http_req_app(req);
    const char *name = NULL;
    if (api_field_required_string(req, body, "model", &name)) return -1;
    char base[CFG_MODEL_NAME_MAX];
    size_t len = strcspn(name, ":"); /* model names have no ':' */
    if (len < sizeof base) {
        memcpy(base, name, len);
        base[len] = '\0';
        p->sm = models_find(&a->models, base);
    }
    if (!p->sm) {
        http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%.*s' is not served here (see GET /v1/models)",
                         (int)len, name);
        return -1;
    }
    if (!p->sm->decoder) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "model",
                         "model '%s' is an embedding model: use /v1/embeddings", p->sm->cfg->name);
        return -1;
    }
    return api__adapter(req, body, name, p);
}

int api_gen_params_parse(http_req *req, json_t *body, gen_kind kind, api_gen_params *p) {
    memset(p, 0, sizeof *p);
    p->top_logprobs = -1;
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return -1;
    }
    if (api__model(req, body, p)) return -1;
    const cfg_model *mc = p->sm->cfg;
    int vocab = model_hp(p->sm->m)->n_vocab;
    samp_params_default(&p->samp);
    p->samp.temperature = (float)mc->temperature;
    p->samp.top_p = (float)mc->top_p;
    p->samp.top_k = (int32_t)mc->top_k;
    p->samp.min_p = (float)mc->min_p;
    p->samp.repetition_penalty = (float)mc->repetition_penalty;
    p->samp.repeat_last_n = -1; /* OpenAI: penalties see the generated text */
    p->max_tokens = kind == GEN_CHAT ? 0 : mc->max_tokens; /* chat: 0 = until the context ends (api_gen_start) */
    p->n = 1;
    double d;
    long long i;
    const char *mt = kind == GEN_CHAT && json_object_get(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    if (api_field_int(req, body, mt, 1, p->sm->n_ctx, &p->max_tokens)) return -1;
    d = p->samp.temperature;
    if (api_field_number(req, body, "temperature", 0, 2, &d)) return -1;
    p->samp.temperature = (float)d;
    d = p->samp.top_p;
    if (api_field_number(req, body, "top_p", 1e-9, 1, &d)) return -1;
    p->samp.top_p = (float)d;
    i = p->samp.top_k;
    if (api_field_int(req, body, "top_k", 0, vocab, &i)) return -1;
    p->samp.top_k = (int32_t)i;
    d = p->samp.min_p;
    if (api_field_number(req, body, "min_p", 0, 1, &d)) return -1;
    p->samp.min_p = (float)d;
    d = p->samp.presence_penalty;
    if (api_field_number(req, body, "presence_penalty", -2, 2, &d)) return -1;
    p->samp.presence_penalty = (float)d;
    d = p->samp.frequency_penalty;
    if (api_field_number(req, body, "frequency_penalty", -2, 2, &d)) return -1;
    p->samp.frequency_penalty = (float)d;
    d = p->samp.repetition_penalty;
    if (api_field_number(req, body, "repetition_penalty", 0.01, 10, &d)) return -1;
    p->samp.repetition_penalty = (float)d;
    if (api_field_int(req, body, "n", 1, 16, &p->n)) return -1;
    p->best_of = p->n;
    if (kind == GEN_COMPLETION && api_field_int(req, body, "best_of", 1, 16, &p->best_of)) return -1;
    if (p->best_of < p->n) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "best_of", "best_of (%lld) must be at least n (%lld)", p->best_of, p->n);
        return -1;
    }
    json_t *seed = json_object_get(body, "seed");
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "seed", "seed must be an integer");
            return -1;
        }
        p->samp.seed = (uint64_t)json_integer_value(seed);
        p->seeded = true;
    } else if (getrandom(&p->samp.seed, sizeof p->samp.seed, 0) != (ssize_t)sizeof p->samp.seed) {
        p->samp.seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)p;
    }
    if (api_field_bool(req, body, "stream", &p->stream)) return -1;
    json_t *so = json_object_get(body, "stream_options");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so)) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "stream_options", "stream_options must be an object");
            return -1;
        }
        if (!p->stream) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "stream_options", "stream_options is only allowed with stream: true");
            return -1;
        }
        if (api_field_bool(req, so, "include_usage", &p->include_usage)) return -1;
    }
    if (p->stream && p->best_of > p->n) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "best_of", "best_of > n cannot be streamed");
        return -1;
    }
    if (api__rerank(req, body, p)) return -1;
    const char *user = NULL;
    if (api_field_string(req, body, "user", &user)) return -1;
    if (kind == GEN_COMPLETION) {
        if (api_field_bool(req, body, "echo", &p->echo)) return -1;
        long long lp = -1;
        if (api_field_int(req, body, "logprobs", 0, SAMP_TOP_LOGPROBS_MAX, &lp)) return -1;
        p->top_logprobs = (int)lp;
        if (p->echo && lp >= 0) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "echo", "echo together with logprobs is not supported");
            return -1;
        }
        json_t *suffix = json_object_get(body, "suffix");
        if (suffix && !json_is_null(suffix)) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "suffix", "suffix (insertion) is not supported");
            return -1;
        }
    } else {
        bool lp = false;
        long long top = 0;
        if (api_field_bool(req, body, "logprobs", &lp)) return -1;
        if (api_field_int(req, body, "top_logprobs", 0, SAMP_TOP_LOGPROBS_MAX, &top)) return -1;
        if (json_object_get(body, "top_logprobs") && !json_is_null(json_object_get(body, "top_logprobs")) && !lp) {
            http_reply_error(req, API_ERR_INVALID_VALUE, "top_logprobs", "top_logprobs needs logprobs: true");
            return -1;
        }
        p->top_logprobs = lp ? (int)top : -1;
    }
    if (api__stop(req, body, p)) return -1;
    if (api__logit_bias(req, body, p, vocab)) return -1;
    char err[256];
    if (samp_validate(&p->samp, vocab, err, sizeof err) != 0) { /* belt and braces */
        char param[32];
        sscanf(err, "%31[a-z_]", param);
        http_reply_error(req, API_ERR_INVALID_VALUE, param, "%s", err);
        return -1;
    }
    return 0;
}

void api_gen_params_free(api_gen_params *p) {
    free(p->bias);
    p->bias = NULL;
    models_adapter_put(p->adapter);
    p->adapter = NULL;
    json_decref(p->prompt_msgs);
    p->prompt_msgs = NULL;
}

static void api__free_texts(char **texts, int n) {
    if (!texts) return;
    for (int i = 0; i < n; i++) free(texts[i]);
    free(texts);
}

void api_gen_start(http_req *req, api_gen_params *p, gen_kind kind, int32_t **prompts,
                   const int *n_tokens, int n_prompts, char **prompt_texts) {
    served_model *sm = p->sm;
    int total = 0;
    for (int i = 0; i < n_prompts; i++) {
        if (n_tokens[i] < 1) {
            http_reply_error(req, API_ERR_INVALID_VALUE, kind == GEN_CHAT ? "messages" : "prompt",
                             "prompt %d is empty", i);
            api__free_texts(prompt_texts, n_prompts);
            return;
        }
        if (p->max_tokens == 0) /* chat's default (one prompt): the rest of the context, at least 1 */
            p->max_tokens = sm->n_ctx - n_tokens[i] > 0 ? sm->n_ctx - n_tokens[i] : 1;
        if ((long long)n_tokens[i] + p->max_tokens > sm->n_ctx) {
            http_reply_error(req, API_ERR_CONTEXT_LENGTH, kind == GEN_CHAT ? "messages" : "max_tokens",
                             "this model's context is %d tokens; the prompt has %d and max_tokens asks "
                             "for %lld more", sm->n_ctx, n_tokens[i], p->max_tokens);
            api__free_texts(prompt_texts, n_prompts);
            return;
        }
        total += n_tokens[i];
    }
    sched_stats st;
    sched_stats_get(sm->sched, &st);
    int choices = n_prompts * (int)p->best_of;
    if (st.waiting + choices > (int)sm->cfg->queue_size) {
        http_reply_header(req, "Retry-After", "1");
        http_reply_error(req, API_ERR_QUEUE_FULL, NULL, "model '%s' is busy: %d requests are waiting (queue_size %lld)",
                         sm->cfg->name, st.waiting, sm->cfg->queue_size);
        api__free_texts(prompt_texts, n_prompts);
        return;
    }
    char err[512];
    gen_job *job = gen_job_create(kind, sm, n_prompts, (int)p->best_of, p->stops, p->n_stops, err, sizeof err);
    if (!job) {
        http_reply_error(req, API_ERR_INVALID_VALUE, "stop", "%s", err);
        api__free_texts(prompt_texts, n_prompts);
        return;
    }
    job->stream = p->stream;
    job->include_usage = p->include_usage;
    job->echo = p->echo;
    job->top_logprobs = p->top_logprobs;
    job->n = (int)p->n;
    job->prompt_tokens = total;
    job->created = (long)time(NULL);
    job->prompt_text = prompt_texts;
    job->rerank = p->rerank;
    job->prompt_msgs = p->prompt_msgs; /* the job's now */
    p->prompt_msgs = NULL;
    job->adapter = p->adapter; /* the job's now: given back when it is freed */
    p->adapter = NULL;
    if (job->adapter) snprintf(job->model, sizeof job->model, "%s:%s", sm->cfg->name, job->adapter->name);
    unsigned long long r = 0;
    getrandom(&r, sizeof r, 0);
    snprintf(job->id, sizeof job->id, "%s-%016llx", kind == GEN_CHAT ? "chatcmpl" : "cmpl", r);

    sched_req base = {
        .max_tokens = (int)p->max_tokens,
        .samp = p->samp,
        .eos_id = tok_eos(sm->tok) >= 0 ? tok_eos(sm->tok) : model_hp(sm->m)->eos_id,
        .timeout_s = (double)sm->cfg->request_timeout,
        .adapter = job->adapter ? job->adapter->lora : NULL,
    };
    job->p = p->stream ? http_stream_sse(req) : http_defer(req);
    if (!job->p) {
        gen_job_free(job);
        http_reply_error(req, API_ERR_INTERNAL, NULL, "cannot start the answer");
        return;
    }
    int status = 500;
    if (gen_submit(job, prompts, n_tokens, &base, p->seeded, err, sizeof err, &status) != 0) {
        /* nothing runs: answer here */
        api_error_code code = status == 429 ? API_ERR_QUEUE_FULL : status == 400 ? API_ERR_CONTEXT_LENGTH
                              : status == 422 ? API_ERR_INVALID_VALUE : API_ERR_INTERNAL;
        if (job->stream) {
            json_t *e = api_error_body(code, NULL, err);
            char *text = json_dumps(e, JSON_COMPACT);
            http_pending_sse_event(job->p, NULL, text ? text : "{}");
            http_pending_sse_end(job->p);
            free(text);
            json_decref(e);
        } else {
            http_pending_reply_error(job->p, code, NULL, "%s", err);
        }
        gen_job_free(job);
        return;
    }
    if (p->slot) atomic_fetch_add(&p->slot->requests, 1); /* the job may be gone already */
}
