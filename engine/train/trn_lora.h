/* trn_lora.h - LoRA adapters on a decoder's projections (Hu et al.):
 * y = W x + b + (alpha / r) B A dropout(x), with A [r, in] and B [out, r].
 *
 * Targets name the projections as PEFT users know them: q, k, v (slices of
 * the fused qkv matrix), o, gate, up (slices of the fused gate/up matrix;
 * gpt2 has no gate) and down. One "site" is one target in one layer.
 *
 * Init as PEFT does: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with
 * a = sqrt(5)) from the seed, B = 0, so a new adapter leaves the model
 * unchanged and only B gets a gradient at the first step.
 *
 * The training decoder (trn_dec.h) calls trn_lora_site_fwd/bwd at each
 * matmul it runs: the adapter keeps what its backward needs (A x for each
 * site, and the dropped-out input when dropout > 0) for up to the number of
 * tokens given to trn_lora_reserve. Dropout applies only while
 * lo->training is true.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: one user at a time.
 */
#ifndef TRN_LORA_H
#define TRN_LORA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "rng.h"
#include "trn_param.h"

typedef enum trn_lora_target {
    TRN_LORA_Q,
    TRN_LORA_K,
    TRN_LORA_V,
    TRN_LORA_O,
    TRN_LORA_GATE,
    TRN_LORA_UP,
    TRN_LORA_DOWN,
    TRN_LORA_QKV,   /* the whole fused qkv matrix as one site: PEFT's c_attn
                       on gpt2 (not with q, k or v; not in "all") */
    TRN_LORA_N_TARGETS
} trn_lora_target;

/* "q", "k", "v", "o", "gate", "up", "down", "qkv". */
const char *trn_lora_target_name(trn_lora_target t);
/* Parses a comma-separated list ("q,v", "all" = every target but qkv) into
 * a bit mask (bit t for target t). -EINVAL naming the unknown word. */
#define TRN_LORA_ALL ((1u << TRN_LORA_QKV) - 1)
int trn_lora_targets_parse(const char *list, unsigned *mask, char *err, size_t errlen);

typedef struct trn_lora_cfg {
    int rank;          /* r >= 1 */
    float alpha;       /* scale = alpha / r */
    float dropout;     /* in [0, 1) */
    unsigned targets;  /* bit mask of trn_lora_target */
    uint64_t seed;     /* A's init and dropout masks */
} trn_lora_cfg;

typedef struct trn_lora_site {
    int layer;
    trn_lora_target target;
    int in, out;          /* A [rank, in], B [out, rank] */
    int row0;             /* first row of the target in its (fused) weight */
    float *A, *B;         /* values */
    float *dA, *dB;       /* gradients */
    float *u;             /* [T, rank] A x of the last forward */
    float *xd;            /* [T, in] dropped-out input (dropout > 0 only) */
} trn_lora_site;

typedef struct trn_lora {
    trn_lora_cfg cfg;
    float scale;          /* alpha / rank */
    int n_layer;
    int n_sites;
    trn_lora_site *sites;
    int (*index)[TRN_LORA_N_TARGETS]; /* [n_layer][target] site or -1 */
    bool enabled;         /* false: the decoder runs the base model */
    bool training;        /* dropout on */
    rng drop_rng;
    float *mem;           /* A, B, dA, dB of every site */
    float *act;           /* u and xd for act_tokens tokens */
    int act_tokens;
} trn_lora;

/* A new adapter for a decoder of arch (llama or gpt2) and shape hp. */
int trn_lora_new(trn_lora **out, model_arch_id arch, const model_hparams *hp,
                 const trn_lora_cfg *cfg, char *err, size_t errlen);
void trn_lora_free(trn_lora *lo);

/* Makes room for the activations of T tokens. */
int trn_lora_reserve(trn_lora *lo, int T, char *err, size_t errlen);

/* The site of (layer, target), or NULL when that projection has none. */
trn_lora_site *trn_lora_site_at(trn_lora *lo, int layer, trn_lora_target t);

/* Appends every A and B as "blk.<l>.<target>.lora_A" / "...lora_B"
 * (no weight decay on either, as PEFT's default). */
int trn_lora_params(trn_lora *lo, trn_params *ps);

/* y[t, 0..out) += scale * B A drop(x[t]) for T tokens (x[T, ldx] holds the
 * site's input, y points at the site's output columns). */
void trn_lora_site_fwd(trn_lora *lo, trn_lora_site *s, float *y, size_t ldy, const float *x,
                       size_t ldx, int T);
/* Backward of the last forward at s: dA, dB += ...; dx[T, ldx] += the
 * gradient of the input (dx may be NULL); scratch[T * rank]. */
void trn_lora_site_bwd(trn_lora *lo, trn_lora_site *s, float *dx, size_t ldx, const float *dy,
                       size_t ldy, const float *x, size_t ldx_in, int T, float *scratch);

/* Adds sign * scale * B A to the rows of every target in v's weights
 * (sign 1 merges the adapter into the model, -1 takes it out again). */
void trn_lora_merge(const trn_lora *lo, model_decoder_view *v, float sign);

#endif
