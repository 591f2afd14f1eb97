/* gen_rerank.c - best_of / n choices reranked by the model's reward model
 * ("rerank": "reward"): every choice is scored as POST /v1/rewards scores
 * a pair (its prompt, and its text as the response), once generation has
 * ended, on the thread that finalizes the job (gen.h). */
#include <stdio.h>
#include <stdlib.h>

#include "gen.h"
#include "log.h"
#include "rewards.h"
#include "trn_reward.h"

/* The (prompt, response) of choice c as /v1/rewards takes them: two
 * strings (completions), or two arrays of messages (chat). New references
 * in *prompt and *resp; -1 when out of memory. */
static int gen__rr_pair(const gen_job *job, const gen_choice *c, json_t **prompt, json_t **resp) {
    const char *text = c->text ? c->text : "";
    if (job->kind == GEN_CHAT) {
        *prompt = json_incref(job->prompt_msgs);
        *resp = json_pack("[{s:s, s:s%}]", "role", "assistant", "content", text, c->len);
    } else {
        *prompt = json_string(job->prompt_text[c->prompt_i]);
        *resp = json_stringn(text, c->len);
    }
    return *prompt && *resp ? 0 : -1;
}

int gen_rerank_score(gen_job *job, api_error_code *code, char *err, size_t errlen) {
    const int n = job->n_choices;
    int32_t **seqs = calloc((size_t)n, sizeof *seqs);
    int *lens = calloc((size_t)n, sizeof *lens), *of = calloc((size_t)n, sizeof *of); /* of[k]: choice of seqs[k] */
    float *r = calloc((size_t)n, sizeof *r);
    int k = 0, rc = -1;
    bool locked = false;
    models_reward rw;
    *code = API_ERR_INTERNAL;
    if (http_pending_cancelled(job->p)) { /* the client left: no forward pass */
        rc = 0;
        goto out;
    }
    if (!seqs || !lens || !of || !r || (job->kind == GEN_CHAT ? !job->prompt_msgs : !job->prompt_text)) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!(locked = models_reward_lock(job->sm, &rw))) {
        *code = API_ERR_REWARD_MODEL_UNAVAILABLE;
        snprintf(err, errlen, "model '%s' has no reward model any more: rerank \"reward\" needs one", job->sm->cfg->name);
        goto out;
    }
    /* tokenized under the lock too: the truncation belongs to this reward model */
    for (int i = 0; i < n; i++) {
        gen_choice *c = &job->choices[i];
        json_t *prompt = NULL, *resp = NULL;
        char msg[640];
        int prc = gen__rr_pair(job, c, &prompt, &resp);
        if (prc == 0) prc = api_reward_pair_ids(job->sm, &rw, prompt, resp, &seqs[k], &lens[k], msg, sizeof msg);
        else snprintf(msg, sizeof msg, "out of memory");
        json_decref(prompt);
        json_decref(resp);
        c->has_reward = false;
        if (prc == 1) continue; /* nothing to score: ranked last, reward null */
        if (prc != 0) {
            snprintf(err, errlen, "choice %d: %s", i, msg);
            goto out;
        }
        of[k++] = i;
    }
    char msg[512];
    if (k > 0 && trn_reward_score(rw.rm, (const int32_t *const *)seqs, lens, k, r, msg, sizeof msg) != 0) {
        snprintf(err, errlen, "reward model: %s", msg);
        goto out;
    }
    for (int j = 0; j < k; j++) {
        job->choices[of[j]].reward = r[j];
        job->choices[of[j]].has_reward = true;
    }
    rc = 0;
out:
    if (locked) models_reward_unlock(job->sm);
    if (rc == 0 && k > 0)
        LOG_DBG("gen", "request %s: %d choices scored by the reward model of '%s'", http_pending_request_id(job->p), k,
                job->sm->cfg->name);
    for (int j = 0; seqs && j < k; j++) free(seqs[j]);
    free(seqs), free(lens), free(of), free(r);
    return rc;
}
