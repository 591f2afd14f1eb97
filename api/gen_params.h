/* gen_params.h - the request fields completions and chat share (model,
 * sampling, max_tokens, n, stop, stream, logprobs ...), parsed and checked
 * against the model. Loop thread. */
#ifndef API_GEN_PARAMS_H
#define API_GEN_PARAMS_H

#include <stdbool.h>

#include "gen.h"
#include "http.h"
#include "models.h"
#include "sampler.h"

typedef struct api_gen_params {
    served_model *sm;
    served_adapter *adapter;   /* owned reference, or NULL: the base model */
    adapter_slot *slot;        /* the adapter's slot (for its counters) */
    long long max_tokens;
    long long n, best_of;
    samp_params samp;
    samp_logit_bias *bias;     /* owned; samp.logit_bias points here */
    bool seeded;
    const char *stops[STOP_MAX_N]; /* borrowed from the request body */
    size_t n_stops;
    bool stream, include_usage, echo;
    int top_logprobs;          /* -1: off */
    gen_rerank rerank;         /* "rerank": "logprob" (default) | "reward" */
    json_t *prompt_msgs;       /* chat, rerank "reward": the messages as
                                  [{role, content}] (owned; set by chat.c) */
} api_gen_params;

/* Parses the shared fields of `body` for an endpoint of `kind`. The model
 * is "model": "NAME" or "NAME:ADAPTER"; an adapter may also be named by
 * "adapter": "ADAPTER" (both: they must agree, else 400); an unknown model
 * or adapter is 404. "rerank": "reward" needs a model with a reward model
 * (409 reward_model_unavailable) and no stream (400). On an error the request has been answered and -1 is
 * returned; free with api_gen_params_free in every case. */
int api_gen_params_parse(http_req *req, json_t *body, gen_kind kind, api_gen_params *out);
void api_gen_params_free(api_gen_params *p);

/* Checks that every prompt plus max_tokens fits the context (400
 * context_length_exceeded) and that the queue has room for all choices
 * (429), then creates the job (which takes p's adapter reference and
 * prompt_msgs), defers or starts the stream, and submits.
 * Prompts stay the caller's; prompt_texts ([n_prompts] malloc'd strings in
 * a malloc'd array, or NULL; completions need them for echo and for rerank
 * "reward") become the job's or are freed. Answers the request on failure. */
void api_gen_start(http_req *req, api_gen_params *p, gen_kind kind, int32_t **prompts,
                   const int *n_tokens, int n_prompts, char **prompt_texts);

#endif
