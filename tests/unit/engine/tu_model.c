/* tu_model.c - helpers shared by the model forward-pass tests; see
 * tu_model.h. */
#include "tu_model.h"

#include "rng.h"
#include "trn_param.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "npy.h"


model *tu_model_load(const char *path, const model_opts *opts) {
    char err[512] = "";
    model *m = NULL;
    if (model_load_opts(&m, path, opts, err, sizeof err) != 0) fail_msg("load %s: %s", path, err);
    return m;
}

kv_cache *tu_model_kv(const model *m, int n_seq) {
    char err[256] = "";
    kv_cache *kv = NULL;
    if (model_kv_create(m, n_seq, 0, 0, &kv, err, sizeof err) != 0) fail_msg("kv: %s", err);
    return kv;
}

/* Feeds ids[0..n) to sequence seq from position pos0; logits of the last. */
void tu_model_feed(model *m, kv_cache *kv, int seq, const int32_t *ids, int n, int pos0,
                   float *logits) {
    int32_t *pos = malloc((size_t)n * sizeof *pos), *sid = malloc((size_t)n * sizeof *sid);
    assert_non_null(pos);
    assert_non_null(sid);
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sid[i] = seq;
    }
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid, .logits = NULL};
    char err[256] = "";
    if (kv_seq_reserve(kv, seq, pos0 + n) != 0) fail_msg("kv: cannot reserve %d positions", pos0 + n);
    if (model_forward(m, kv, &b, logits, err, sizeof err) != 0) fail_msg("forward: %s", err);
    free(pos);
    free(sid);
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int32_t *tu_model_json_ids(json_t *arr, int *n) {
    assert_true(json_is_array(arr));
    *n = (int)json_array_size(arr);
    int32_t *ids = malloc((size_t)(*n ? *n : 1) * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    return ids;
}

/* Greedy continuation of n_gen tokens from logits of the prompt's last
 * position (seq 0, prompt length n); compares with want. */
void tu_model_greedy_check(model *m, kv_cache *kv, float *logits, int n, const int32_t *want,
                           int n_gen, const char *label) {
    int V = model_hp(m)->n_vocab;
    for (int j = 0; j < n_gen; j++) {
        int32_t tok = argmax(logits, V);
        if (tok != want[j])
            fail_msg("%s: greedy step %d: got %d, want %d", label, j, tok, want[j]);
        if (j + 1 < n_gen) tu_model_feed(m, kv, 0, &tok, 1, n + j, logits);
    }
}

/* The HF conformance folder: last logits within TU_MODEL_LOGIT_TOL and the
 * 16-token greedy continuation, for each of the 4 prompts. */
void tu_model_check_conformance(const char *dir_rel, const char *model_file) {
    char *dir = tu_shared_path(dir_rel);
    if (!dir) skip();
    char path[1024], refp[1024], npyp[1024];
    if (model_file)
        snprintf(path, sizeof path, "%s/%s", dir, model_file);
    else
        snprintf(path, sizeof path, "%s", dir);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    snprintf(npyp, sizeof npyp, "%s/last_logits.npy", dir);
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    npy_array last;
    npy_error ne = {0};
    if (npy_load(&last, npyp, &ne) != 0) fail_msg("%s", ne.msg);

    model *m = tu_model_load(path, NULL);
    int V = model_hp(m)->n_vocab;
    assert_int_equal(last.shape[1], V);
    kv_cache *kv = tu_model_kv(m, 1);
    float *logits = malloc((size_t)V * sizeof(float));
    assert_non_null(logits);
    json_t *prompts = json_object_get(ref, "prompts");
    assert_int_equal(json_array_size(prompts), 4);
    double worst = 0.0;
    for (size_t i = 0; i < json_array_size(prompts); i++) {
        json_t *p = json_array_get(prompts, i);
        int n, ng;
        int32_t *ids = tu_model_json_ids(json_object_get(p, "input_ids"), &n);
        int32_t *greedy = tu_model_json_ids(json_object_get(p, "greedy_ids"), &ng);
        kv_seq_clear(kv, 0);
        tu_model_feed(m, kv, 0, ids, n, 0, logits);
        const float *want = npy_f32(&last) + i * (size_t)V;
        double mx = 0.0;
        for (int v = 0; v < V; v++) mx = fmax(mx, fabs((double)logits[v] - want[v]));
        worst = fmax(worst, mx);
        if (mx > TU_MODEL_LOGIT_TOL) fail_msg("%s prompt %zu: max abs logit error %g", path, i, mx);
        char label[1100];
        snprintf(label, sizeof label, "%s prompt %zu", path, i);
        tu_model_greedy_check(m, kv, logits, n, greedy, ng, label);
        free(ids);
        free(greedy);
    }
    printf("  %s: max abs logit error %.3g over 4 prompts; greedy continuations match\n", path,
           worst);
    free(logits);
    kv_free(kv);
    model_free(m);
    npy_free(&last);
    json_decref(ref);
    free(dir);
}

/* ---- batching ---- */

/* Several prompts interleaved in one batch (and then one batched decode
 * step) give the same logits as each prompt alone. */
void tu_model_check_batched(const char *rel, const model_opts *opts) {
    char *dir = tu_shared_path(rel);
    if (!dir) skip();
    char path[1024], refp[1024];
    snprintf(path, sizeof path, "%s/model-f32.gguf", dir);
    snprintf(refp, sizeof refp, "%s/reference.json", dir);
    json_error_t je;
    json_t *ref = json_load_file(refp, 0, &je);
    if (!ref) fail_msg("%s: %s", refp, je.text);
    json_t *prompts = json_object_get(ref, "prompts");
    enum { NP = 3 };
    const int which[NP] = {0, 1, 3};
    int n[NP];
    int32_t *ids[NP];
    int total = 0, maxn = 0;
    for (int i = 0; i < NP; i++) {
        json_t *p = json_array_get(prompts, (size_t)which[i]);
        ids[i] = tu_model_json_ids(json_object_get(p, "input_ids"), &n[i]);
        total += n[i];
        if (n[i] > maxn) maxn = n[i];
    }
    model *m = tu_model_load(path, NULL);
    model *mb = tu_model_load(path, opts);
    int V = model_hp(m)->n_vocab;
    float *alone = malloc((size_t)NP * 2 * V * sizeof(float));
    float *batched = malloc((size_t)NP * V * sizeof(float));
    assert_non_null(alone);
    assert_non_null(batched);
    int32_t next[NP];
    kv_cache *kv1 = tu_model_kv(m, 1);
    for (int i = 0; i < NP; i++) {
        kv_seq_clear(kv1, 0);
        tu_model_feed(m, kv1, 0, ids[i], n[i], 0, alone + (size_t)(2 * i) * V);
        next[i] = argmax(alone + (size_t)(2 * i) * V, V);
        tu_model_feed(m, kv1, 0, &next[i], 1, n[i], alone + (size_t)(2 * i + 1) * V);
    }
    /* round-robin interleave; sequence slots 2, 0, 1 (ids need not follow
     * batch order) */
    const int slot[NP] = {2, 0, 1};
    kv_cache *kv = tu_model_kv(mb, NP);
    int32_t *tok = malloc((size_t)total * sizeof *tok), *pos = malloc((size_t)total * sizeof *pos),
            *sid = malloc((size_t)total * sizeof *sid);
    int8_t *want = calloc((size_t)total, 1);
    int order[NP], k = 0;
    for (int p = 0; p < maxn; p++)
        for (int i = 0; i < NP; i++) {
            if (p >= n[i]) continue;
            tok[k] = ids[i][p];
            pos[k] = p;
            sid[k] = slot[i];
            if (p == n[i] - 1) {
                want[k] = 1;
            }
            k++;
        }
    /* logits rows come in batch order: which prompt ends first? */
    int r = 0;
    for (int t = 0; t < total; t++)
        if (want[t])
            for (int i = 0; i < NP; i++)
                if (sid[t] == slot[i]) order[r++] = i;
    model_batch b = {.n_tokens = total, .token = tok, .pos = pos, .seq_id = sid, .logits = want};
    char err[256];
    for (int i = 0; i < NP; i++) assert_int_equal(kv_seq_reserve(kv, slot[i], n[i] + 1), 0);
    if (model_forward(mb, kv, &b, batched, err, sizeof err) != 0) fail_msg("%s", err);
    double mx = 0.0;
    for (int j = 0; j < NP; j++) {
        int i = order[j];
        assert_int_equal(kv_seq_len(kv, slot[i]), n[i]);
        for (int v = 0; v < V; v++)
            mx = fmax(mx, fabs(batched[(size_t)j * V + v] - alone[(size_t)(2 * i) * V + v]));
    }
    if (mx > TU_MODEL_BATCH_TOL) fail_msg("batched prefill differs from single: %g", mx);
    /* one decode step for all three */
    int32_t dt[NP], dp[NP], ds[NP];
    int8_t dw[NP] = {1, 1, 1};
    for (int i = 0; i < NP; i++) {
        dt[i] = next[i];
        dp[i] = n[i];
        ds[i] = slot[i];
    }
    model_batch d = {.n_tokens = NP, .token = dt, .pos = dp, .seq_id = ds, .logits = dw};
    if (model_forward(mb, kv, &d, batched, err, sizeof err) != 0) fail_msg("%s", err);
    double md = 0.0;
    for (int i = 0; i < NP; i++)
        for (int v = 0; v < V; v++)
            md = fmax(md, fabs(batched[(size_t)i * V + v] - alone[(size_t)(2 * i + 1) * V + v]));
    if (md > TU_MODEL_BATCH_TOL) fail_msg("batched decode differs from single: %g", md);
    printf("  %s batched (n_batch %d): prefill max diff %.3g, decode max diff %.3g\n", rel,
           model_n_batch(mb), mx, md);
    free(tok);
    free(pos);
    free(sid);
    free(want);
    for (int i = 0; i < NP; i++) free(ids[i]);
    free(alone);
    free(batched);
    kv_free(kv);
    kv_free(kv1);
    model_free(m);
    model_free(mb);
    json_decref(ref);
    free(dir);
}

double tu_model_fd_check(struct trn_params *ps, double (*loss)(void *ctx), void *ctx,
                         struct rng *r, int per_param, float h, double abs_tol, double rel_tol,
                         const char *label) {
    double biggest = 0;
    for (int i = 0; i < ps->n; i++) {
        trn_param *p = &ps->p[i];
        for (int k = 0; k < per_param; k++) {
            size_t j = (size_t)rng_below(r, p->n);
            float keep = p->value[j];
            p->value[j] = keep + h;
            double lp = loss(ctx);
            p->value[j] = keep - h;
            double lm = loss(ctx);
            p->value[j] = keep;
            double num = (lp - lm) / (2 * h);
            biggest = fmax(biggest, fabs(num));
            if (fabs(num - p->grad[j]) > abs_tol + rel_tol * fabs(num))
                fail_msg("%s: %s[%zu]: backward %.6g, finite differences %.6g", label, p->name, j,
                         p->grad[j], num);
        }
    }
    return biggest;
}
