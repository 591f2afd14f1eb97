/* trn_clip_impl.h - the inside of a trn_clip, shared by trn_clip.c (weights,
 * activations, forward and backward), trn_clip_io.c (Hugging Face folders)
 * and the model code written once for float and double
 * (trn_clip_impl.inc). Not part of the API: include trn_clip.h.
 *
 * Weights: one arena (and one gradient arena of the same layout) carved by
 * the tensor table m->tensors, one row per Hugging Face CLIPModel tensor in
 * a fixed order. q, k and v of a layer come one after the other (weights
 * then biases), so they form the fused [3C, C] matrix and [3C] bias the
 * forward pass multiplies with. Every position below is an offset in
 * floats (or reals) into an arena, so one layout serves the float model and
 * the double twin of the gradient checks.
 *
 * Activations: one arena carved per batch shape by trn_clip__carve_act.
 */
#ifndef TRN_CLIP_IMPL_H
#define TRN_CLIP_IMPL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trn_clip.h"
#include "trn_param.h"

/* One tensor of the table: where it lives and how it starts. */
typedef struct trn_clip__tensor {
    char name[TRN_PARAM_NAME_MAX];  /* the Hugging Face name */
    int nd;                         /* 0 (the scalar logit_scale) .. 4 */
    int64_t shape[4];
    size_t off, n;                  /* floats into the arena */
    double std;                     /* > 0: N(0, std) at init; 0: fill */
    float fill;
    bool decay;                     /* AdamW weight decay (matrices only) */
} trn_clip__tensor;

/* A layer's weights (offsets). */
typedef struct trn_clip__lw {
    size_t ln1_w, ln1_b;   /* [C] */
    size_t wqkv, bqkv;     /* [3C, C], [3C]: q, k, v rows */
    size_t wo, bo;         /* [C, C], [C] */
    size_t ln2_w, ln2_b;   /* [C] */
    size_t fc1_w, fc1_b;   /* [FF, C], [FF] */
    size_t fc2_w, fc2_b;   /* [C, FF], [C] */
} trn_clip__lw;

/* What a layer's forward pass keeps for its backward (offsets, [T, width]). */
typedef struct trn_clip__la {
    size_t x_in;           /* [T, C] residual stream entering the layer */
    size_t n1, m1, r1;     /* layer_norm1: out [T, C], mean [T], rstd [T] */
    size_t qkv;            /* [T, 3C] */
    size_t probs;          /* [B, NH, L, L] */
    size_t att;            /* [T, C] attention output (input of out_proj) */
    size_t x_mid;          /* [T, C] residual after attention */
    size_t n2, m2, r2;     /* layer_norm2 */
    size_t hpre, hact;     /* [T, FF] fc1 output, after the activation */
} trn_clip__la;

/* One tower: shape, weights and the activations of the current batch. */
typedef struct trn_clip__tower {
    int C, NH, FF, n_layer;
    float eps;
    trn_clip_act act;
    bool causal;           /* text: causal mask; vision: none */
    trn_clip__lw *lw;      /* [n_layer] */
    trn_clip__la *la;      /* [n_layer] */
    /* activations (offsets) of the current batch: B sequences of L tokens */
    int B, L;
    size_t x_out;          /* [T, C] the last layer's output (the input when
                              there are no layers) */
    size_t pool;           /* [B, C] the pooled rows (EOT / CLS) */
    size_t nf, mf, rf;     /* final / post LayerNorm of pool */
    size_t emb, embn, norm; /* [B, D] projection, normalised, [B] its norms */
    size_t demb;           /* [B, D] backward: gradient of embn */
} trn_clip__tower;

struct trn_clip {
    trn_clip_cfg cfg;
    trn_clip__tower text, vision;
    /* weights outside the towers (offsets) */
    size_t tok_embd, tpos_embd;       /* [V, Ct], [ctx, Ct] */
    size_t final_ln_w, final_ln_b;    /* [Ct] */
    size_t text_proj;                 /* [D, Ct] */
    size_t patch_w;                   /* [Cv, 3*P*P] (conv [Cv, 3, P, P]) */
    size_t cls, vpos_embd;            /* [Cv], [NT, Cv] */
    size_t pre_ln_w, pre_ln_b;        /* [Cv] */
    size_t post_ln_w, post_ln_b;      /* [Cv] */
    size_t vis_proj;                  /* [D, Cv] */
    size_t logit_scale;               /* [1] ln of the scale */
    trn_clip__tensor *tensors;        /* the table */
    int n_tensors;
    size_t n_weights;
    float *w, *g;                     /* arenas [n_weights] */
    /* activations of the last forward pass */
    size_t patches, pe, x0, m0, r0;   /* vision: [Bv*NP, K], [Bv*NP, Cv], [Tv, Cv] pre-LN
                                         input, its mean / rstd [Tv] */
    size_t logits, lse_r, lse_c;      /* [B, B], [B], [B] */
    size_t dx, dn, dqkv, datt, dh, dhpre, dS, dG; /* backward scratch */
    size_t act_n;                     /* floats the current carve uses */
    float *act;
    size_t act_cap;
    int32_t *ibuf;                    /* tokens [Bt*L], positions [Bt*L], lens [Bt],
                                         pool [Bt], vision lens [Bv] */
    size_t ibuf_cap;
    int32_t *tokens, *pos, *lens, *pool, *vlens;
    bool has_text, has_image, has_loss;
    trn_clip_result last;
};

/* Sets the activation layout for a batch of Bt texts of L tokens and Bv
 * images (either may be 0) and makes room for it in m->act and m->ibuf
 * (floats a double twin needs: m->act_n). 0 or -ENOMEM. */
int trn_clip__reserve(trn_clip *m, int Bt, int L, int Bv, char *err, size_t errlen);

/* The model code, in float (trn_clip.c) and double (the gradient check):
 * forward of each tower and of the loss, and the backward of all three.
 * w, g and a are arenas laid out as m says; tokens, lengths and pooling
 * positions come from m->ibuf (set by the caller). */
#define TRN_CLIP__DECLARE(R, S)                                                            \
    void trn_clip__text_fwd_##S(const trn_clip *m, const R *w, R *a);                     \
    void trn_clip__vision_fwd_##S(const trn_clip *m, const R *w, R *a, const R *pixels);  \
    R trn_clip__loss_fwd_##S(const trn_clip *m, const R *w, R *a);                        \
    void trn_clip__backward_##S(const trn_clip *m, const R *w, R *g, R *a, R dloss);

TRN_CLIP__DECLARE(float, f32)
TRN_CLIP__DECLARE(double, f64)

#endif
