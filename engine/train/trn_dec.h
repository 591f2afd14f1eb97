/* trn_dec.h - the training decoder: a forward pass that keeps its
 * activations and the backward pass through it, for the llama and gpt2
 * architectures, over a batch of right-padded sequences.
 *
 * Weights come from either
 *   - a loaded model (trn_dec_from_model): borrowed, frozen; gradients flow
 *     only to a LoRA adapter (trn_dec_set_lora). Used by DPO and reward
 *     training on the served model;
 *   - trn_dec_new: a new llama-architecture model owned by the decoder, with
 *     a gradient for every weight (pretraining), written out as GGUF by
 *     trn_dec_write_gguf.
 *
 * The forward pass computes, for every position, the log-probability of a
 * chosen target token (usually the next token): the one quantity causal-LM,
 * DPO and reward losses are built from. The backward pass takes the
 * gradient of the loss with respect to each of those log-probabilities, so
 * the loss itself stays with the caller:
 *   cross-entropy over N counted tokens:  dlogp[t] = -1/N
 *   DPO:  dlogp[t] = dL/d(summed log-prob of the sequence) on response tokens
 * The forward pass matches model_forward's logits (tested).
 *
 * Batches: B sequences of L positions (token t = b*L + i, position i);
 * sequence b holds lens[b] real tokens followed by padding. Attention is
 * causal and never sees a pad key, so pads change nothing for real tokens;
 * give pads target -1.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one caller at a time; matmuls use OpenBLAS's threads.
 */
#ifndef TRN_DEC_H
#define TRN_DEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "trn_lora.h"
#include "trn_param.h"

typedef struct trn_dec trn_dec;

typedef struct trn_batch {
    int B, L;
    const int32_t *tokens;   /* [B*L] */
    const int32_t *lens;     /* [B] real tokens per sequence, 1..L; NULL: all L */
    const int32_t *targets;  /* [B*L] token whose log-prob is wanted, -1: none;
                                unused (may be NULL) with hidden_only */
    bool hidden_only;        /* stop at the final norm: no logits, no logp
                                (reward models read trn_dec_hidden) */
} trn_batch;

/* The shape of a new llama model for pretraining. */
typedef struct trn_dec_shape {
    int n_vocab, n_ctx, n_embd, n_layer, n_head, n_head_kv, n_ff;
    float norm_eps;      /* 0: 1e-5 */
    double rope_theta;   /* 0: 10000 */
    int tied;            /* output projection = token embedding */
} trn_dec_shape;

/* Frozen weights borrowed from m (a decoder); m must outlive the result. */
int trn_dec_from_model(trn_dec **out, model *m, char *err, size_t errlen);
/* A new llama model initialised GPT-2 style from seed: N(0, 0.02) matrices,
 * the projections into the residual stream scaled by 1/sqrt(2 n_layer),
 * norms 1; every weight trainable. */
int trn_dec_new(trn_dec **out, const trn_dec_shape *shape, uint64_t seed, char *err,
                size_t errlen);
/* A trainable copy of m's weights (every weight owned, with gradients, as
 * trn_dec_new makes; m may be freed afterwards): fine-tuning a whole
 * model, e.g. into a sentence-embedding model (trn_embed.h). Llama models
 * with full adjacent-pair RoPE only (-ENOTSUP otherwise): the layout
 * trn_dec_add_to_gguf writes back. */
int trn_dec_copy_model(trn_dec **out, model *m, char *err, size_t errlen);
void trn_dec_free(trn_dec *d);

const model_hparams *trn_dec_hp(const trn_dec *d);
model_arch_id trn_dec_arch(const trn_dec *d);
/* The weights (writable); for merging adapters and writing files. */
model_decoder_view *trn_dec_weights(trn_dec *d);
/* True for a trn_dec_new model (owned, trainable weights). */
bool trn_dec_owns_weights(const trn_dec *d);
/* Number of weights (all of them, trainable or not). */
size_t trn_dec_n_weights(const trn_dec *d);

/* frozen: backward leaves the weights' gradients alone (the base of a
 * LoRA run); a trn_dec_from_model decoder is always frozen. */
void trn_dec_freeze(trn_dec *d, bool frozen);

/* Uses lo in every following pass (NULL: none). The adapter is borrowed;
 * lo->enabled = false runs the base model. */
void trn_dec_set_lora(trn_dec *d, trn_lora *lo);

/* Appends every weight as a trainable parameter (GGUF tensor names);
 * -ENOTSUP for frozen weights (trn_dec_from_model). */
int trn_dec_params(trn_dec *d, trn_params *ps);

/* Makes room for the activations of a B x L batch (done by forward when
 * needed). Bytes held for activations and backward scratch. */
int trn_dec_reserve(trn_dec *d, int B, int L, char *err, size_t errlen);
size_t trn_dec_act_bytes(const trn_dec *d);

/* Runs the batch; logp[B*L] receives the target log-probs (0 where the
 * target is -1). Keeps the activations for trn_dec_backward. */
int trn_dec_forward(trn_dec *d, const trn_batch *b, float *logp, char *err, size_t errlen);
/* Back-propagates dlogp[B*L] through the last forward pass; accumulates
 * into the weight gradients (trn_dec_new) and the adapter's. Not after a
 * hidden_only forward. */
void trn_dec_backward(trn_dec *d, const float *dlogp);

/* The final-norm hidden states of the last forward pass, [B*L, C] (what
 * the output projection would read); valid until the next forward. */
const float *trn_dec_hidden(const trn_dec *d);
/* Back-propagates d(loss)/d(hidden)[B*L, C] (e.g. from a reward head)
 * through the last forward pass, like trn_dec_backward. */
void trn_dec_backward_hidden(trn_dec *d, const float *dhidden);

/* Adds a trn_dec_new model to w as llama.cpp lays out a llama GGUF:
 * general.architecture "llama", the llama.* hyper-parameters and F32
 * tensors (the fused qkv and gate/up matrices split into attn_q/k/v and
 * ffn_gate/up; q and k rows stay in the adjacent-pair RoPE layout the model
 * trained with, which is what GGUF readers expect). The caller adds the
 * tokenizer metadata and writes the file; the tensors are borrowed from d
 * until then. -ENOTSUP for a borrowed model; -EINVAL/-ENOMEM from w. */
struct gguf_writer;
int trn_dec_add_to_gguf(trn_dec *d, struct gguf_writer *w, const char *name, char *err,
                        size_t errlen);

#endif
