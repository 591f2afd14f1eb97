/* rewards.c - POST /v1/rewards: the scores a served model's reward model
 * (its `reward_model` key, a folder from `alignd train reward`) gives to
 * prompt + response pairs.
 *
 *   {"model"?, "input": [{"prompt", "response"} | {"messages"}, ...]}
 *     -> {"object": "list", "data": [{"index", "reward"}], "model", "usage"}
 *   {"model"?, "query": ["full text", ...]}         (OpenRLHF's reward server)
 *     -> {"rewards": [...]}
 *
 * "model" may be left out when exactly one served model has a reward model.
 * Pairs are tokenized as training tokenized them (pref.h: prompt and
 * response separately, BOS and EOS as the model adds them, the truncation
 * recorded in the reward model's config); prompt and response are both
 * strings, or both messages arrays (TRL's conversational form), or one
 * "messages" array whose trailing assistant turns are the response. A
 * query is one chat-formatted text (its special-token text parsed), with a
 * trailing EOS text dropped and the EOS token appended, as OpenRLHF does.
 *
 * Tokenization runs on the loop thread (as for embeddings) with a snapshot
 * of the reward model's truncation (models_reward_peek: the loop thread
 * never waits for model_lock); scoring on a libuv work thread under the
 * model's model_lock (models_reward_lock), so it never overlaps the model's
 * other forward passes (the reward model reads the same weights). The
 * training loop may replace the reward model in between: scoring then
 * goes ahead when the new one was trained with the same truncation (the
 * tokens are the same), and answers 409 reward_model_unavailable otherwise
 * (a retry tokenizes afresh). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"
#include "fields.h"
#include "pref.h"
#include "rewards.h"
#include "routes.h"
#include "trn_reward.h"

#define API_RW_MAX_INPUTS 2048

typedef struct api_rw_job {
    uv_work_t work;      /* a libuv work thread; the loop (and models) outlive it */
    http_pending *p;
    served_model *sm;
    int32_t **seqs;      /* [n] */
    int *lens;           /* [n] */
    int n, tokens;
    bool openrlhf;       /* answer {"rewards": [...]} */
    models_reward rw;    /* the truncation the sequences were made with */
    char model[CFG_MODEL_NAME_MAX];
} api_rw_job;

static void api__rw_job_free(api_rw_job *job) {
    for (int i = 0; job && job->seqs && i < job->n; i++) free(job->seqs[i]);
    if (job) free(job->seqs), free(job->lens);
    free(job);
}

/* ---- which model ---------------------------------------------------------- */

/* The served model to score with, or NULL after answering an error. */
static served_model *api__rw_model(http_req *req, const char *name) {
    models_registry *r = &((app *)http_req_app(req))->models;
    if (name) {
        served_model *sm = models_find(r, name);
        bool has = sm && models_reward_present(sm);
        if (!sm) http_reply_error(req, API_ERR_MODEL_NOT_FOUND, "model", "model '%s' is not served here (see GET /v1/models)", name);
        else if (!has)
            http_reply_error(req, API_ERR_REWARD_MODEL_UNAVAILABLE, "model",
                             "model '%s' has no reward model: train one with `alignd train reward` and set "
                             "reward_model in its [model.%s] section", name, name);
        return has ? sm : NULL;
    }
    served_model *found = NULL;
    int n = 0;
    for (int i = 0; i < r->n; i++)
        if (models_reward_present(&r->items[i])) found = &r->items[i], n++;
    if (n == 1) return found;
    if (n == 0)
        http_reply_error(req, API_ERR_REWARD_MODEL_UNAVAILABLE, "model",
                         "no served model has a reward model: train one with `alignd train reward` and set "
                         "reward_model in the model's section");
    else
        http_reply_error(req, API_ERR_BAD_REQUEST, "model", "model is required: %d served models have reward models", n);
    return NULL;
}

/* ---- tokenization ----------------------------------------------------------- */

static pref_tok api__rw_pt(const served_model *sm) {
    return (pref_tok){.t = sm->tok, .add_bos = tok_adds_bos(sm->tok), .eos_id = tok_eos(sm->tok),
                      .has_chat = sm->has_chat, .chat_kind = sm->chat_kind,
                      .bos_text = sm->bos_text, .eos_text = sm->eos_text};
}

/* pref.h's pair with the response as both chosen and rejected. */
int api_reward_pair_ids(const served_model *sm, const models_reward *rw, const json_t *prompt, const json_t *resp,
                        int32_t **ids, int *n, char *msg, size_t len) {
    pref_tok pt = api__rw_pt(sm);
    pref_opts o;
    pref_opts_default(&o);
    o.max_len = rw->max_len;
    o.max_prompt_len = rw->max_prompt_len;
    o.add_eos = rw->add_eos;
    pref_set s = {0};
    char e[512];
    int rc = json_is_string(prompt)
                 ? pref_add_text(&s, &pt, json_string_value(prompt), json_string_value(resp), json_string_value(resp),
                                 false, 0.0f, &o, e, sizeof e)
                 : pref_add_messages(&s, &pt, prompt, resp, resp, false, 0.0f, &o, e, sizeof e);
    bool skipped = rc == 0 && s.n == 0; /* pref drops a pair without response tokens */
    if (skipped) snprintf(e, sizeof e, "chosen has no tokens to score (empty, and no EOS is added)");
    if (rc == 0 && s.n == 1) {
        *n = s.p[0].n_prompt + s.p[0].n_chosen;
        if ((*ids = malloc((size_t)*n * sizeof(int32_t)))) memcpy(*ids, s.p[0].ids, (size_t)*n * sizeof(int32_t));
        else snprintf(e, sizeof e, "out of memory");
    }
    bool ok = rc == 0 && s.n == 1 && *ids;
    pref_set_free(&s);
    if (!ok) { /* pref names its own "chosen": here that is the response */
        bool ch = !strncmp(e, "chosen", 6);
        snprintf(msg, len, "%s%s", ch ? "response" : "", ch ? e + 6 : e);
    }
    return ok ? 0 : skipped ? 1 : -1;
}

/* Splits {"messages": [...]} into the prompt (new array) and the trailing
 * assistant turns (new array). */
static int api__rw_split_messages(const json_t *msgs, json_t **prompt, json_t **resp) {
    size_t n = json_array_size(msgs), k = n;
    while (k > 0 && json_is_string(json_object_get(json_array_get(msgs, k - 1), "role")) &&
           !strcmp(json_string_value(json_object_get(json_array_get(msgs, k - 1), "role")), "assistant"))
        k--;
    if (k == 0 || k == n) return -1;
    *prompt = json_array();
    *resp = json_array();
    for (size_t i = 0; i < n; i++) json_array_append(i < k ? *prompt : *resp, json_array_get(msgs, i));
    return 0;
}

/* One "input" item into ids; answers the error itself (-1). */
static int api__rw_item(http_req *req, const served_model *sm, const models_reward *rw, const json_t *item, size_t i,
                        int32_t **ids, int *n) {
    char msg[640];
    const json_t *msgs = json_object_get(item, "messages");
    json_t *p = json_object_get(item, "prompt"), *r = json_object_get(item, "response");
    json_t *own_p = NULL, *own_r = NULL;
    if (!json_is_object(item)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%zu] must be an object {\"prompt\", \"response\"} or {\"messages\"}", i);
        return -1;
    }
    if (msgs) {
        if (!json_is_array(msgs) || api__rw_split_messages(msgs, &own_p, &own_r)) {
            http_reply_error(req, API_ERR_BAD_REQUEST, "input",
                             "input[%zu].messages must be an array of messages ending with assistant turns after at least one other", i);
            return -1;
        }
        p = own_p, r = own_r;
    } else if (!(json_is_string(p) && json_is_string(r)) && !(json_is_array(p) && json_is_array(r))) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "input",
                         "input[%zu] needs prompt and response, both strings or both arrays of messages", i);
        return -1;
    } else if (json_is_string(r) && json_string_length(r) == 0) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "input", "input[%zu].response is empty", i);
        return -1;
    }
    int rc = api_reward_pair_ids(sm, rw, p, r, ids, n, msg, sizeof msg);
    json_decref(own_p), json_decref(own_r);
    if (rc) http_reply_error(req, API_ERR_INVALID_VALUE, "input", "input[%zu]: %s", i, msg);
    return rc;
}

/* text tokenized with its special-token text parsed; *ids a new array. */
static int api__rw_encode(const tok *t, const char *text, size_t len, int32_t **ids, size_t *n) {
    size_t cap = len + 8;
    tok_err e;
    *ids = malloc(cap * sizeof(int32_t));
    int rc = *ids ? tok_encode(t, text, len, TOK_ENC_PARSE_SPECIAL, *ids + 1, cap - 2, n, &e) : TOK_ENOMEM;
    if (rc == TOK_ESPACE) { /* room for BOS before and EOS after */
        int32_t *more = realloc(*ids, (*n + 2) * sizeof(int32_t));
        if (more) *ids = more;
        rc = more ? tok_encode(t, text, len, TOK_ENC_PARSE_SPECIAL, *ids + 1, *n, n, &e) : TOK_ENOMEM;
    }
    if (rc != 0) free(*ids), *ids = NULL;
    return rc;
}

/* One OpenRLHF query (a whole conversation as text) into ids. */
static int api__rw_query(http_req *req, const served_model *sm, const models_reward *rw, const json_t *q, size_t i,
                         int32_t **ids, int *n) {
    if (!json_is_string(q) || json_string_length(q) == 0) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "query", "query[%zu] must be a non-empty string", i);
        return -1;
    }
    const char *text = json_string_value(q);
    size_t len = json_string_length(q), el = strlen(sm->eos_text), got = 0;
    while (el && len >= el && !memcmp(text + len - el, sm->eos_text, el)) len -= el; /* OpenRLHF strips, then adds one */
    if (api__rw_encode(sm->tok, text, len, ids, &got) != 0) {
        http_reply_error(req, API_ERR_INTERNAL, "query", "query[%zu]: cannot tokenize", i);
        return -1;
    }
    int32_t bos = tok_bos(sm->tok), eos = tok_eos(sm->tok);
    int32_t *v = *ids + 1, k = (int32_t)got;
    if (tok_adds_bos(sm->tok) && bos >= 0 && !(k > 0 && v[0] == bos)) *--v = bos, k++;
    if (rw->add_eos && eos >= 0) v[k++] = eos;
    memmove(*ids, v, (size_t)k * sizeof(int32_t));
    *n = k;
    if (k == 0 || k > sm->n_ctx) {
        http_reply_error(req, API_ERR_CONTEXT_LENGTH, "query", "query[%zu] has %d tokens; this model takes 1 to %d", i, k,
                         sm->n_ctx);
        return -1;
    }
    return 0;
}

/* ---- scoring (work thread) ---------------------------------------------------- */

static json_t *api__rw_body(const api_rw_job *job, const float *r) {
    json_t *vals = json_array();
    for (int i = 0; i < job->n; i++)
        json_array_append_new(vals, job->openrlhf ? json_real(r[i]) : json_pack("{s:i, s:f}", "index", i, "reward", (double)r[i]));
    if (job->openrlhf) return json_pack("{s:o}", "rewards", vals);
    return json_pack("{s:s, s:o, s:s, s:{s:i, s:i}}", "object", "list", "data", vals, "model", job->model, "usage",
                     "prompt_tokens", job->tokens, "total_tokens", job->tokens);
}

static void api__rw_work(uv_work_t *w) {
    api_rw_job *job = w->data;
    if (http_pending_cancelled(job->p)) return; /* the client left: no forward pass */
    float *r = malloc((size_t)job->n * sizeof(float));
    char err[512] = "out of memory";
    int rc = -ENOMEM;
    api_error_code code = API_ERR_INTERNAL;
    models_reward rw;
    if (r && !models_reward_lock(job->sm, &rw)) {
        code = API_ERR_REWARD_MODEL_UNAVAILABLE;
        snprintf(err, sizeof err, "model '%s' has no reward model any more", job->model);
    } else if (r) {
        if (rw.max_len != job->rw.max_len || rw.max_prompt_len != job->rw.max_prompt_len ||
            rw.add_eos != job->rw.add_eos) { /* replaced meanwhile, with another truncation */
            code = API_ERR_REWARD_MODEL_UNAVAILABLE;
            snprintf(err, sizeof err, "model '%s' got a new reward model while the request waited; retry",
                     job->model);
        } else {
            rc = trn_reward_score(rw.rm, (const int32_t *const *)job->seqs, job->lens, job->n, r, err, sizeof err);
        }
        models_reward_unlock(job->sm);
    }
    if (rc == 0) http_pending_reply_json(job->p, 200, api__rw_body(job, r));
    else if (code != API_ERR_INTERNAL) http_pending_reply_error(job->p, code, NULL, "%s", err);
    else http_pending_reply_error(job->p, API_ERR_INTERNAL, NULL, "reward model: %s", err);
    free(r);
}

static void api__rw_done(uv_work_t *w, int status) {
    api_rw_job *job = w->data;
    (void)status;
    http_pending_release(job->p);
    api__rw_job_free(job);
}

/* ---- the handler ------------------------------------------------------------- */

/* The "input" or "query" array: its items as sequences of the job. */
static int api__rw_inputs(http_req *req, json_t *body, api_rw_job *job) {
    json_t *in = json_object_get(body, "input"), *q = json_object_get(body, "query");
    const char *field = q ? "query" : "input";
    json_t *arr = q ? q : in;
    if (in && q) {
        http_reply_error(req, API_ERR_BAD_REQUEST, "query", "send input or query, not both");
        return -1;
    }
    if (!json_is_array(arr) || json_array_size(arr) == 0 || json_array_size(arr) > API_RW_MAX_INPUTS) {
        http_reply_error(req, API_ERR_BAD_REQUEST, field,
                         "%s must be an array of 1 to %d items (input: {\"prompt\", \"response\"} objects; "
                         "query: strings, OpenRLHF's shape)", field, API_RW_MAX_INPUTS);
        return -1;
    }
    job->openrlhf = q != NULL;
    job->n = (int)json_array_size(arr);
    job->seqs = calloc((size_t)job->n, sizeof *job->seqs);
    job->lens = calloc((size_t)job->n, sizeof *job->lens);
    if (!job->seqs || !job->lens) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        return -1;
    }
    for (int i = 0; i < job->n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        if (q ? api__rw_query(req, job->sm, &job->rw, v, (size_t)i, &job->seqs[i], &job->lens[i])
              : api__rw_item(req, job->sm, &job->rw, v, (size_t)i, &job->seqs[i], &job->lens[i]))
            return -1;
        job->tokens += job->lens[i];
    }
    return 0;
}

void api_rewards(http_req *req) {
    app *a = http_req_app(req);
    json_t *body = http_req_json(req);
    const char *name = NULL;
    if (!json_is_object(body)) {
        http_reply_error(req, API_ERR_BAD_REQUEST, NULL, "request body must be a JSON object");
        return;
    }
    if (api_field_string(req, body, "model", &name)) return;
    served_model *sm = api__rw_model(req, name);
    api_rw_job *job = sm ? calloc(1, sizeof *job) : NULL;
    if (sm && !job) http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
    if (!job) return;
    job->sm = sm;
    snprintf(job->model, sizeof job->model, "%s", sm->cfg->name);
    if (!models_reward_peek(sm, &job->rw)) { /* went away since api__rw_model */
        http_reply_error(req, API_ERR_REWARD_MODEL_UNAVAILABLE, "model", "model '%s' has no reward model", job->model);
        api__rw_job_free(job);
        return;
    }
    if (api__rw_inputs(req, body, job)) {
        api__rw_job_free(job);
        return;
    }
    job->work.data = job;
    if (!(job->p = http_defer(req))) {
        http_reply_error(req, API_ERR_INTERNAL, NULL, "out of memory");
        api__rw_job_free(job);
        return;
    }
    if (uv_queue_work(&a->loop, &job->work, api__rw_work, api__rw_done) != 0) {
        http_pending_reply_error(job->p, API_ERR_INTERNAL, NULL, "cannot queue the scoring");
        http_pending_release(job->p);
        api__rw_job_free(job);
    }
}
