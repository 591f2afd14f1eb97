/* trn_clip.h - a CLIP model for training: the dual encoder of clip.h (HF
 * CLIPModel: a causal text transformer pooled at the first <|endoftext|>
 * and a ViT pooled at its class token, each followed by a bias-free
 * projection) with owned weights, a forward pass that keeps its
 * activations, the symmetric InfoNCE loss with a learned temperature, and
 * the backward pass to every weight.
 *
 *   image i -> img_i = visual_projection(post_layernorm(ViT(pixels_i)[CLS]))
 *   text i  -> txt_i = text_projection(final_layer_norm(T(tokens_i)[eot_i]))
 *   logits[i][j] = exp(logit_scale) <img_i/|img_i|, txt_j/|txt_j|>
 *   loss = (CE(logits rows, diagonal) + CE(logits columns, diagonal)) / 2
 *
 * (transformers' CLIPModel(return_loss=True)). logit_scale is a weight like
 * the others; CLIP caps the scale at 100: call trn_clip_clamp_logit_scale
 * after each optimizer step (OpenCLIP clamps there too, so the forward pass
 * stays the plain exp that the inference code uses).
 *
 * The forward pass equals clip.h's on the same weights (tested on the
 * conformance model), and trn_clip_save writes a folder clip_load reads.
 * Initialisation follows transformers' CLIPPreTrainedModel._init_weights
 * (initializer_factor 1, initializer_range 0.02).
 *
 * Batches: B (image, caption) pairs. Images are preprocessed float CHW
 * [B, 3, S, S] (image_clip_pixels); captions are token ids with
 * <|startoftext|> ... <|endoftext|>, right-padded to L (pads are ignored,
 * any value). A caption is pooled at its first eot_id, or at its highest
 * id when it has none (the legacy rule of clip.h). Either tower may be
 * left out (encoding only; no loss then).
 *
 * Errors: 0 or a negative errno (-EINVAL bad shape or input, -ENOENT
 * missing file or tensor, -ENOMEM) with a message in err naming the thing
 * at fault.
 * Threads: one caller at a time per model; matmuls run on OpenBLAS's
 * threads.
 */
#ifndef TRN_CLIP_H
#define TRN_CLIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clip.h"
#include "image.h"
#include "trn_clip_ops.h"
#include "trn_param.h"

typedef struct trn_clip trn_clip;

typedef struct trn_clip_cfg {
    clip_hparams hp;              /* shapes and eot_id, as clip.h has them
                                     (text_layers / vision_layers may be 0) */
    trn_clip_act act_text, act_vision;
    float eps_text, eps_vision;   /* LayerNorm eps (0: 1e-5) */
    float logit_scale_init;       /* ln of the initial scale (0: HF's 2.6592
                                     = ln(1 / 0.07)) */
} trn_clip_cfg;

typedef struct trn_clip_batch {
    int B;                        /* pairs, 1..TRN_CLIP_MAX_BATCH */
    const float *pixels;          /* [B, 3, S, S]; NULL: no image tower */
    int L;                        /* padded caption length, 1..text_ctx */
    const int32_t *tokens;        /* [B, L]; NULL: no text tower */
    const int32_t *lens;          /* [B] real tokens, 1..L; NULL: all L */
} trn_clip_batch;

#define TRN_CLIP_MAX_BATCH 4096

/* What a forward pass with both towers found. */
typedef struct trn_clip_result {
    double loss;                  /* the InfoNCE loss (NAN with one tower) */
    int i2t_correct;              /* images whose best caption is right */
    int t2i_correct;              /* captions whose best image is right */
    float scale;                  /* exp(logit_scale) used */
} trn_clip_result;

/* The shape a forward, training or save step needs checked: the limits of
 * clip.h (heads divide widths, patch divides image, ...). */
int trn_clip_cfg_check(const trn_clip_cfg *cfg, char *err, size_t errlen);

/* A new model of shape cfg with weights drawn from seed as transformers
 * initialises CLIPModel. *out is new (trn_clip_free); NULL on failure. */
int trn_clip_new(trn_clip **out, const trn_clip_cfg *cfg, uint64_t seed, char *err,
                 size_t errlen);
/* Accepts NULL. */
void trn_clip_free(trn_clip *m);

/* Borrowed; valid until trn_clip_free. */
const trn_clip_cfg *trn_clip_config(const trn_clip *m);
/* Number of weights (floats of the arena) and the arena itself (writable:
 * the gradient check and the optimizer change it in place). The layout is
 * the tensor order of trn_clip_params. */
size_t trn_clip_n_weights(const trn_clip *m);
float *trn_clip_weights(trn_clip *m);
/* Appends every weight tensor as a trainable parameter named as in the
 * Hugging Face checkpoint (q, k and v separately); decay on matrices and
 * embedding tables, not on norms, biases, the class embedding or
 * logit_scale (OpenCLIP's rule). The arrays stay borrowed from m. */
int trn_clip_params(trn_clip *m, trn_params *ps);

/* Runs the batch; keeps the activations for trn_clip_backward. res may be
 * NULL. */
int trn_clip_forward(trn_clip *m, const trn_clip_batch *b, trn_clip_result *res, char *err,
                     size_t errlen);
/* Back-propagates dloss * d(loss) through the last forward pass (which had
 * both towers) into the weight gradients (accumulated). -EINVAL when there
 * is no such pass. */
int trn_clip_backward(trn_clip *m, float dloss, char *err, size_t errlen);

/* Outputs of the last forward pass, valid until the next one (NULL for a
 * tower it did not run): projected, unnormalised embeddings [B, D] and the
 * logits [B, B] (row: image, column: caption). */
const float *trn_clip_image_embeds(const trn_clip *m);
const float *trn_clip_text_embeds(const trn_clip *m);
const float *trn_clip_logits(const trn_clip *m);

/* exp(logit_scale). */
float trn_clip_scale(const trn_clip *m);
/* Clamps logit_scale to [0, ln 100] (after an optimizer step). */
void trn_clip_clamp_logit_scale(trn_clip *m);

/* The double-precision twin of forward + backward, for gradient checks:
 * the loss of batch b (both towers) under weights w[trn_clip_n_weights]
 * (the arena's layout) into *loss and, when grad is not NULL, its gradient
 * (written) into grad[trn_clip_n_weights]. The model's own weights and
 * gradients are unchanged; its last forward pass is forgotten (the next
 * trn_clip_backward needs a new trn_clip_forward). */
int trn_clip_loss_f64(trn_clip *m, const trn_clip_batch *b, const double *w, double *grad,
                      double *loss, char *err, size_t errlen);

/* ---- Hugging Face folders (trn_clip_io.c) -------------------------------- */

/* Reads a CLIPModel folder (config.json + model.safetensors, as clip_load
 * does: same keys and defaults) into a new model: to continue training a
 * checkpoint, or to compare with the inference code. Same ownership as
 * trn_clip_new. */
int trn_clip_load(trn_clip **out, const char *dir, char *err, size_t errlen);

typedef struct trn_clip_save_opts {
    const char *tok_dir;          /* copy its tokenizer files (vocab.json,
                                     merges.txt, tokenizer.json,
                                     tokenizer_config.json,
                                     special_tokens_map.json: those present);
                                     NULL: none */
    const image_preproc *preproc; /* written as preprocessor_config.json;
                                     NULL: CLIP's mean and std at image_size */
} trn_clip_save_opts;

/* Writes dir (created with its parents when missing) as a transformers
 * CLIPModel folder: model.safetensors (F32, HF names, the patch conv
 * [Cv, 3, P, P], logit_scale a scalar), preprocessor_config.json, the
 * tokenizer files of opts->tok_dir, and config.json last (a folder with a
 * config is complete). Each file is written atomically. opts may be
 * NULL. */
int trn_clip_save(const trn_clip *m, const char *dir, const trn_clip_save_opts *opts,
                  char *err, size_t errlen);

#endif
