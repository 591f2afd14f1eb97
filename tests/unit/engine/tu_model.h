/* tu_model.h - helpers shared by the model forward-pass tests
 * (test_model_*.c): loading, feeding, reference (../shared/conformance)
 * logits and greedy checks, and batched-vs-single checks. Failures go
 * through cmocka (fail_msg); missing reference files skip() loudly. */
#ifndef TU_MODEL_H
#define TU_MODEL_H

#include "tu_util.h"

#include <jansson.h>
#include <stdint.h>

#include "model.h"

/* Max abs error of the last-position logits against HF transformers. */
#define TU_MODEL_LOGIT_TOL 1e-4
/* Max abs difference between batched and single-sequence logits. */
#define TU_MODEL_BATCH_TOL 1e-5

/* model_load_opts, or fail the test naming path and the error. */
model *tu_model_load(const char *path, const model_opts *opts);

/* A KV cache for n_seq sequences, or fail the test. */
kv_cache *tu_model_kv(const model *m, int n_seq);

/* Feeds ids[0..n) to sequence seq from position pos0 (reserving the
 * positions); logits of the last go to logits. */
void tu_model_feed(model *m, kv_cache *kv, int seq, const int32_t *ids, int n, int pos0,
                   float *logits);

/* A JSON array of integers as a malloc'd int32_t array; its length in *n. */
int32_t *tu_model_json_ids(json_t *arr, int *n);

/* Greedy continuation of n_gen tokens from logits of the prompt's last
 * position (seq 0, prompt length n); compares with want. */
void tu_model_greedy_check(model *m, kv_cache *kv, float *logits, int n, const int32_t *want,
                           int n_gen, const char *label);

/* The HF conformance folder dir_rel (under ../shared; loaded from the folder
 * itself when model_file is NULL): last logits within TU_MODEL_LOGIT_TOL and
 * the greedy continuation, for each of the 4 prompts. */
void tu_model_check_conformance(const char *dir_rel, const char *model_file);

/* Several prompts of rel/model-f32.gguf interleaved in one batch (and then
 * one batched decode step) give the same logits as each prompt alone, within
 * TU_MODEL_BATCH_TOL; the batched model is loaded with opts. */
void tu_model_check_batched(const char *rel, const model_opts *opts);

/* Finite-difference check of a parameter list's gradients (already computed
 * by the caller's backward pass) in float: for `per_param` elements drawn
 * from r in every parameter, central differences of loss(ctx) with step h
 * must match the gradient within abs_tol + rel_tol * |numeric|; failures
 * name the parameter, element and label. Returns the largest |numeric|
 * seen (so callers can check the loss was not flat). */
struct trn_params;
struct rng;
double tu_model_fd_check(struct trn_params *ps, double (*loss)(void *ctx), void *ctx,
                         struct rng *r, int per_param, float h, double abs_tol, double rel_tol,
                         const char *label);

#endif
