/* clip.h - the CLIP dual encoder (HF CLIPModel): a causal text tower and a
 * ViT vision tower, each ending in a bias-free projection into one shared
 * embedding space, plus the learned logit scale. Used for zero-shot image
 * classification; it does not go through model.h (model_load refuses clip).
 *
 * Text tower: token + position embeddings, pre-LN blocks (layer_norm1,
 * causal self-attention, add; layer_norm2, fc1, act, fc2, add),
 * final_layer_norm, the hidden state at the first eot_id of each sequence,
 * text_projection.
 * Vision tower: the patch conv (stride = patch, no bias) as one matmul over
 * flattened patches, class embedding prepended, position embeddings,
 * pre_layrnorm, the same blocks without a mask, post_layernorm on the CLS
 * token, visual_projection.
 *
 * Both encoders run every sequence / image of a call in one pass: each
 * linear layer is one ops_matmul over all tokens of the batch; attention runs
 * per sequence and head, so sequences never see each other and need no
 * padding.
 *
 * Errors: 0 or a negative errno (-EINVAL bad input or file, -ENOENT missing
 * file or tensor, -ENOTSUP unsupported config, -ENOMEM) with a message in
 * err naming the file, tensor or argument at fault.
 *
 * Threads: a loaded model is immutable apart from its scratch buffers, so
 * one caller at a time per model may encode; different models are
 * independent. Load and free on any thread.
 */
#ifndef CLIP_H
#define CLIP_H

#include <stddef.h>
#include <stdint.h>

typedef struct clip_model clip_model;

typedef struct clip_hparams {
    int text_ctx;       /* positions of the text tower (77) */
    int text_vocab;     /* token embedding rows (49408) */
    int text_width;     /* text hidden size */
    int vision_width;   /* vision hidden size */
    int image_size;     /* S: input images are [3][S][S] */
    int patch_size;     /* P: S % P == 0; (S/P)^2 + 1 vision tokens */
    int proj_dim;       /* shared embedding size */
    int32_t eot_id;     /* <|endoftext|>: the text pooling position */
    /* tower shapes (read from config.json; given to clip_create_random) */
    int text_layers, text_heads, text_ff;
    int vision_layers, vision_heads, vision_ff;
} clip_hparams;

/* What a transformers CLIPModel folder describes: config.json's keys
 * (CLIPConfig's defaults), the vocabulary and text positions from the
 * embedding tables' shapes, eot_id from text_config.eos_token_id (the old
 * default 2 means the highest id). The activations are the hidden_act
 * strings as written (borrowed from d; each reader checks its own list).
 * Shared by clip_load and the trainer (trn_clip_load). 0, or -ENOTSUP /
 * -EINVAL with err naming the file and key. */
struct hf_dir;
typedef struct clip_folder_cfg {
    clip_hparams hp;
    float eps_text, eps_vision;
    const char *act_text, *act_vision;
} clip_folder_cfg;
int clip_folder_cfg_read(const struct hf_dir *d, clip_folder_cfg *out, char *err, size_t errlen);

/* Loads a CLIPModel folder (config.json + model.safetensors or a sharded
 * index). hidden_act quick_gelu, gelu, gelu_new / gelu_pytorch_tanh per
 * tower; layer_norm_eps per tower (default 1e-5). eot_id is
 * text_config.eos_token_id (default 49407); an old config's eos 2 selects
 * the legacy rule (pool at the highest id). On success *out is new (free with
 * clip_free); on failure *out is NULL. */
int clip_load(clip_model **out, const char *hf_dir, char *err, size_t errlen);

/* A model with random weights (uniform, std 0.02; norms 1/0; logit scale
 * ln 100) of the shape in *hp (every field used; text_layers or
 * vision_layers may be 0), quick_gelu, eps 1e-5. For benchmarks and tests.
 * Same ownership as clip_load. */
int clip_create_random(clip_model **out, const clip_hparams *hp, uint64_t seed, char *err,
                       size_t errlen);

/* Accepts NULL. */
void clip_free(clip_model *m);

/* Borrowed; valid until clip_free. */
const clip_hparams *clip_hp(const clip_model *m);

/* exp(stored logit_scale). */
float clip_logit_scale(const clip_model *m);

/* Text embeddings of n token sequences:
 *   ids[n]    ids[i] borrows lens[i] ids (1..text_ctx, each in
 *             [0, text_vocab)), already with <|startoftext|> ... <|endoftext|>
 *   out[n, proj_dim]  projected, unnormalised embeddings
 * Pooled at the first eot_id of each sequence (the highest id when it has
 * none: the legacy rule). One caller at a time per model. */
int clip_encode_text(clip_model *m, int32_t *const *ids, const int *lens, int n, float *out,
                     char *err, size_t errlen);

/* Image embeddings of n preprocessed images:
 *   pixels[n, 3, S, S]  CHW float, S = image_size
 *   out[n, proj_dim]    projected, unnormalised embeddings
 * One caller at a time per model. */
int clip_encode_images(clip_model *m, const float *pixels, int n, float *out, char *err,
                       size_t errlen);

/* The vision tower's hidden states, for conformance tests and debugging:
 *   hidden[vision_layers + 1, n * NT, vision_width], NT = (S/P)^2 + 1
 * entry 0 after pre_layrnorm, then each layer's output; image b's tokens are
 * rows b*NT .. b*NT + NT - 1 (CLS first). out as clip_encode_images (may be
 * NULL). */
int clip_encode_images_hidden(clip_model *m, const float *pixels, int n, float *out,
                              float *hidden, char *err, size_t errlen);

#endif
