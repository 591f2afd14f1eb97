/* trn_param.h - the trainable parameters of a training run as one flat list:
 * what the optimizer (trn_optim.h), gradient clipping and checkpoints
 * (trn_ckpt.h) walk, whatever produced them (full model weights for
 * pretraining, LoRA adapters for fine-tuning).
 *
 * A trn_param borrows its value and gradient arrays from the owner (the
 * training model or the LoRA set); the list only names and sizes them. Names
 * are stable across runs ("blk.0.attn_qkv.weight", "h.0.attn.q.lora_A"), so a
 * checkpoint can check it resumes the same parameter set.
 *
 * Threads: plain data owned by its user.
 */
#ifndef TRN_PARAM_H
#define TRN_PARAM_H

#include <stdbool.h>
#include <stddef.h>

#define TRN_PARAM_NAME_MAX 96

typedef struct trn_param {
    char name[TRN_PARAM_NAME_MAX];
    float *value;     /* [n] borrowed */
    float *grad;      /* [n] borrowed; accumulated by backward passes */
    size_t n;         /* elements */
    bool decay;       /* AdamW applies weight decay (matrices yes; norms,
                         biases and embeddings' position tables no) */
} trn_param;

typedef struct trn_params {
    trn_param *p;
    int n;
    int cap;
} trn_params;

/* Appends a parameter (the arrays stay borrowed). 0 or -ENOMEM. */
int trn_params_add(trn_params *ps, const char *name, float *value, float *grad, size_t n,
                   bool decay);
/* Frees the list (not the arrays). Accepts NULL; leaves an empty list. */
void trn_params_free(trn_params *ps);
/* Sum of n over the list. */
size_t trn_params_count(const trn_params *ps);
/* Sets every gradient to zero. */
void trn_params_zero_grad(trn_params *ps);
/* Global L2 norm of all gradients (accumulated in double). */
double trn_params_grad_norm(const trn_params *ps);

#endif
