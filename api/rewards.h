/* rewards.h - how a reward model sees a prompt + response pair, shared by
 * POST /v1/rewards (rewards.c) and the reward reranking of completions
 * (gen_rerank.c), so both score the same tokens. */
#ifndef API_REWARDS_H
#define API_REWARDS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "models.h"

/* The ids of prompt + response as training built them (pref.h: prompt and
 * response tokenized separately, BOS and EOS as the model adds them, the
 * truncation of rw; rw->rm is not used): prompt and resp are both JSON
 * strings, or both arrays of messages {role, content} (the response's all
 * assistant turns). *ids gets a new array of *n tokens. Returns 0; 1 when
 * nothing is left to score (an empty response and no EOS to add); -1 on
 * an error (no chat template, too many messages, out of memory). msg
 * names the fault in both cases. Borrows everything; any thread (it reads
 * only sm's tokenizer and chat template). */
int api_reward_pair_ids(const served_model *sm, const models_reward *rw, const json_t *prompt, const json_t *resp,
                        int32_t **ids, int *n, char *msg, size_t len);

#endif
