/* clip.c - CLIP (HF CLIPModel): loading (config.json + safetensors, or
 * random weights), the shared pre-LN transformer encoder, the text tower and
 * the vision tower. See clip.h for the contract.
 *
 * Weights live in one arena carved by a two-pass binder (pass 0 sizes every
 * tensor, pass 1 fills it), the same walk for safetensors and for random
 * init. q, k and v are fused into one [3C, C] matrix at load, so a block is
 * four ops_matmul calls over every token of the batch (qkv, out_proj, fc1,
 * fc2). Sequences of a batch are packed back to back (no padding); attention
 * runs per (sequence, head) as two sgemms over that sequence's rows only,
 * with the causal mask for the text tower.
 */
#include "clip.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hf_dir.h"
#include "ops.h"
#include "rng.h"

/* Limits on shapes and batch sizes (allocation sizes stay far from
 * overflow under them). */
#define CLIP__MAX_WIDTH (1 << 14)
#define CLIP__MAX_FF (1 << 16)
#define CLIP__MAX_LAYERS 1024
#define CLIP__MAX_VOCAB (1 << 22)
#define CLIP__MAX_CTX (1 << 12)
#define CLIP__MAX_TOKENS_VISION (1 << 14) /* (S/P)^2 + 1 */
#define CLIP__MAX_BATCH 4096

typedef enum clip__act {
    CLIP__QUICK_GELU,  /* x * sigmoid(1.702 x) */
    CLIP__GELU,        /* x/2 (1 + erf(x / sqrt 2)) */
    CLIP__GELU_TANH,   /* gelu_new / gelu_pytorch_tanh */
} clip__act;

typedef struct clip__layer {
    float *ln1_w, *ln1_b;  /* [C] */
    float *wqkv, *bqkv;    /* [3C, C], [3C]: q rows, k rows, v rows */
    float *wo, *bo;        /* [C, C], [C] out_proj */
    float *ln2_w, *ln2_b;  /* [C] */
    float *fc1_w, *fc1_b;  /* [FF, C], [FF] */
    float *fc2_w, *fc2_b;  /* [C, FF], [C] */
} clip__layer;

typedef struct clip__tower {
    int C, NH, FF, n_layer;
    float eps;
    clip__act act;
    clip__layer *layers;   /* [n_layer] */
} clip__tower;

struct clip_model {
    clip_hparams hp;
    float logit_scale;      /* exp(stored) */
    clip__tower text, vision;
    /* text tower */
    float *tok_embd;        /* [text_vocab, Ct] */
    float *tpos_embd;       /* [text_ctx, Ct] */
    float *final_ln_w, *final_ln_b; /* [Ct] */
    float *text_proj;       /* [proj_dim, Ct] */
    /* vision tower */
    float *patch_w;         /* [Cv, 3*P*P] (conv weight [Cv, 3, P, P] flattened) */
    float *cls;             /* [Cv] */
    float *vpos_embd;       /* [NT, Cv] */
    float *pre_ln_w, *pre_ln_b;   /* [Cv] */
    float *post_ln_w, *post_ln_b; /* [Cv] */
    float *vis_proj;        /* [proj_dim, Cv] */
    float *arena;           /* every weight, one allocation */
    float *scratch;         /* activations, grown on demand */
    size_t scratch_n;       /* floats */
};

/* ---- the weight binder ---------------------------------------------------- */

typedef enum clip__init { CLIP__INIT_NORMAL, CLIP__INIT_ONES, CLIP__INIT_ZEROS } clip__init;

typedef struct clip__binder {
    const hf_dir *hf;   /* NULL: random weights */
    rng *r;
    int pass;           /* 0: count, 1: carve and fill */
    float *base;        /* the arena in pass 1 */
    size_t used;        /* floats taken */
    char *err;
    size_t errlen;
} clip__binder;

static float *clip__take(clip__binder *b, size_t n)
{
    float *p = b->pass ? b->base + b->used : NULL;
    b->used += n;
    return p;
}

/* Fills dst with the tensor called name, which must have exactly the shape
 * shape[nd] (or with random values of that size). Pass 0 does nothing. */
static int clip__fill(clip__binder *b, float *dst, const char *name, clip__init init, int nd,
                      const int64_t *shape)
{
    if (!b->pass)
        return 0;
    size_t n = 1;
    for (int i = 0; i < nd; i++)
        n *= (size_t)shape[i];
    if (!b->hf) {
        for (size_t i = 0; i < n; i++)
            dst[i] = init == CLIP__INIT_ONES ? 1.0f
                   : init == CLIP__INIT_ZEROS ? 0.0f
                   : (float)(0.02 * 1.7320508 * (2.0 * rng_uniform(b->r) - 1.0));
        return 0;
    }
    const st_tensor *t = hf_dir_find(b->hf, name);
    if (!t) {
        snprintf(b->err, b->errlen, "%s: tensor '%s' not found", hf_dir_path(b->hf), name);
        return -ENOENT;
    }
    bool ok = t->n_dims == nd;
    for (int i = 0; ok && i < nd; i++)
        ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[96], want[96];
        st_format_shape(got, sizeof got, t->n_dims, t->shape);
        st_format_shape(want, sizeof want, nd, shape);
        snprintf(b->err, b->errlen, "%s: tensor '%s': shape %s, expected %s",
                 hf_dir_path(b->hf), name, got, want);
        return -EINVAL;
    }
    float *tmp = NULL;
    st_error se = {0};
    int rc = st_tensor_to_f32(t, &tmp, &se);
    if (rc) {
        snprintf(b->err, b->errlen, "%s: %s", hf_dir_path(b->hf), se.msg);
        return rc;
    }
    memcpy(dst, tmp, n * sizeof(float));
    free(tmp);
    return 0;
}

/* Takes space for a tensor of shape shape[nd] and fills it. */
static int clip__w(clip__binder *b, float **dst, const char *name, clip__init init, int nd,
                   int64_t d0, int64_t d1)
{
    int64_t shape[2] = {d0, d1};
    *dst = clip__take(b, (size_t)d0 * (size_t)(nd > 1 ? d1 : 1));
    return clip__fill(b, *dst, name, init, nd, shape);
}

/* One tower's blocks: "<pre>encoder.layers.<l>.{layer_norm1,self_attn,...}". */
static int clip__bind_tower(clip__binder *b, clip__tower *tw, const char *pre)
{
    int64_t C = tw->C, FF = tw->FF;
    char name[192];
    int rc;
#define CLIP__W(dst, suffix, init, nd, d0, d1)                                               \
    do {                                                                                  \
        snprintf(name, sizeof name, "%sencoder.layers.%d.%s", pre, l, suffix);            \
        if ((rc = clip__w(b, &(dst), name, init, nd, d0, d1)))                            \
            return rc;                                                                    \
    } while (0)
    for (int l = 0; l < tw->n_layer; l++) {
        clip__layer *L = &tw->layers[l];
        CLIP__W(L->ln1_w, "layer_norm1.weight", CLIP__INIT_ONES, 1, C, 0);
        CLIP__W(L->ln1_b, "layer_norm1.bias", CLIP__INIT_ZEROS, 1, C, 0);
        L->wqkv = clip__take(b, (size_t)(3 * C * C));
        L->bqkv = clip__take(b, (size_t)(3 * C));
        static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
        for (int i = 0; i < 3; i++) {
            int64_t sw[2] = {C, C}, sb[1] = {C};
            snprintf(name, sizeof name, "%sencoder.layers.%d.self_attn.%s.weight", pre, l, qkv[i]);
            if ((rc = clip__fill(b, L->wqkv ? L->wqkv + i * C * C : NULL, name,
                                 CLIP__INIT_NORMAL, 2, sw)))
                return rc;
            snprintf(name, sizeof name, "%sencoder.layers.%d.self_attn.%s.bias", pre, l, qkv[i]);
            if ((rc = clip__fill(b, L->bqkv ? L->bqkv + i * C : NULL, name, CLIP__INIT_ZEROS, 1,
                                 sb)))
                return rc;
        }
        CLIP__W(L->wo, "self_attn.out_proj.weight", CLIP__INIT_NORMAL, 2, C, C);
        CLIP__W(L->bo, "self_attn.out_proj.bias", CLIP__INIT_ZEROS, 1, C, 0);
        CLIP__W(L->ln2_w, "layer_norm2.weight", CLIP__INIT_ONES, 1, C, 0);
        CLIP__W(L->ln2_b, "layer_norm2.bias", CLIP__INIT_ZEROS, 1, C, 0);
        CLIP__W(L->fc1_w, "mlp.fc1.weight", CLIP__INIT_NORMAL, 2, FF, C);
        CLIP__W(L->fc1_b, "mlp.fc1.bias", CLIP__INIT_ZEROS, 1, FF, 0);
        CLIP__W(L->fc2_w, "mlp.fc2.weight", CLIP__INIT_NORMAL, 2, C, FF);
        CLIP__W(L->fc2_b, "mlp.fc2.bias", CLIP__INIT_ZEROS, 1, C, 0);
    }
#undef CLIP__W
    return 0;
}

static int clip__bind(clip__binder *b, clip_model *m, float *logit_scale)
{
    const clip_hparams *hp = &m->hp;
    int64_t Ct = hp->text_width, Cv = hp->vision_width, D = hp->proj_dim;
    int64_t P = hp->patch_size, G = hp->image_size / hp->patch_size;
    int rc;
    float *ls = NULL;
    if ((rc = clip__w(b, &m->tok_embd, "text_model.embeddings.token_embedding.weight",
                      CLIP__INIT_NORMAL, 2, hp->text_vocab, Ct)) ||
        (rc = clip__w(b, &m->tpos_embd, "text_model.embeddings.position_embedding.weight",
                      CLIP__INIT_NORMAL, 2, hp->text_ctx, Ct)) ||
        (rc = clip__bind_tower(b, &m->text, "text_model.")) ||
        (rc = clip__w(b, &m->final_ln_w, "text_model.final_layer_norm.weight", CLIP__INIT_ONES,
                      1, Ct, 0)) ||
        (rc = clip__w(b, &m->final_ln_b, "text_model.final_layer_norm.bias", CLIP__INIT_ZEROS,
                      1, Ct, 0)) ||
        (rc = clip__w(b, &m->text_proj, "text_projection.weight", CLIP__INIT_NORMAL, 2, D, Ct)))
        return rc;
    /* the conv weight [Cv, 3, P, P]: checked as 4-D, kept as [Cv, 3*P*P] */
    int64_t pshape[4] = {Cv, 3, P, P};
    m->patch_w = clip__take(b, (size_t)(Cv * 3 * P * P));
    if ((rc = clip__fill(b, m->patch_w, "vision_model.embeddings.patch_embedding.weight",
                         CLIP__INIT_NORMAL, 4, pshape)) ||
        (rc = clip__w(b, &m->cls, "vision_model.embeddings.class_embedding", CLIP__INIT_NORMAL,
                      1, Cv, 0)) ||
        (rc = clip__w(b, &m->vpos_embd, "vision_model.embeddings.position_embedding.weight",
                      CLIP__INIT_NORMAL, 2, G * G + 1, Cv)) ||
        (rc = clip__w(b, &m->pre_ln_w, "vision_model.pre_layrnorm.weight", CLIP__INIT_ONES, 1,
                      Cv, 0)) ||
        (rc = clip__w(b, &m->pre_ln_b, "vision_model.pre_layrnorm.bias", CLIP__INIT_ZEROS, 1,
                      Cv, 0)) ||
        (rc = clip__bind_tower(b, &m->vision, "vision_model.")) ||
        (rc = clip__w(b, &m->post_ln_w, "vision_model.post_layernorm.weight", CLIP__INIT_ONES,
                      1, Cv, 0)) ||
        (rc = clip__w(b, &m->post_ln_b, "vision_model.post_layernorm.bias", CLIP__INIT_ZEROS,
                      1, Cv, 0)) ||
        (rc = clip__w(b, &m->vis_proj, "visual_projection.weight", CLIP__INIT_NORMAL, 2, D,
                      Cv)))
        return rc;
    /* the scalar logit_scale (ln 100 when random); the model keeps its exp */
    ls = clip__take(b, 1);
    if (b->pass) {
        if (b->hf) {
            if ((rc = clip__fill(b, ls, "logit_scale", CLIP__INIT_ZEROS, 0, NULL)))
                return rc;
        } else {
            *ls = (float)log(100.0);
        }
        *logit_scale = expf(*ls);
    }
    return 0;
}

/* ---- construction --------------------------------------------------------- */

static int clip__check_shape(const clip_hparams *hp, const char *what, char *err, size_t errlen)
{
    bool ok = hp->text_ctx >= 1 && hp->text_ctx <= CLIP__MAX_CTX && hp->text_vocab >= 1 &&
              hp->text_vocab <= CLIP__MAX_VOCAB && hp->text_width >= 1 &&
              hp->text_width <= CLIP__MAX_WIDTH && hp->vision_width >= 1 &&
              hp->vision_width <= CLIP__MAX_WIDTH && hp->proj_dim >= 1 &&
              hp->proj_dim <= CLIP__MAX_WIDTH && hp->patch_size >= 1 && hp->image_size >= 1 &&
              hp->image_size % hp->patch_size == 0 &&
              (int64_t)(hp->image_size / hp->patch_size) * (hp->image_size / hp->patch_size) <
                  CLIP__MAX_TOKENS_VISION &&
              hp->text_layers >= 0 && hp->text_layers <= CLIP__MAX_LAYERS &&
              hp->vision_layers >= 0 && hp->vision_layers <= CLIP__MAX_LAYERS &&
              hp->text_heads >= 1 && hp->text_width % hp->text_heads == 0 &&
              hp->vision_heads >= 1 && hp->vision_width % hp->vision_heads == 0 &&
              hp->text_ff >= 1 && hp->text_ff <= CLIP__MAX_FF && hp->vision_ff >= 1 &&
              hp->vision_ff <= CLIP__MAX_FF;
    if (!ok) {
        snprintf(err, errlen, "%s: unsupported clip shape (text: ctx %d, vocab %d, width %d, "
                 "heads %d, ff %d, layers %d; vision: image %d, patch %d, width %d, heads %d, "
                 "ff %d, layers %d; proj %d)", what, hp->text_ctx, hp->text_vocab,
                 hp->text_width, hp->text_heads, hp->text_ff, hp->text_layers, hp->image_size,
                 hp->patch_size, hp->vision_width, hp->vision_heads, hp->vision_ff,
                 hp->vision_layers, hp->proj_dim);
        return -EINVAL;
    }
    return 0;
}

/* Allocates the model and its arena and runs the binder twice. */
static int clip__build(clip_model **out, const clip_hparams *hp, clip__act act_t,
                       clip__act act_v, float eps_t, float eps_v, const hf_dir *hf, uint64_t seed,
                       const char *what, char *err, size_t errlen)
{
    int rc = clip__check_shape(hp, what, err, errlen);
    if (rc)
        return rc;
    clip_model *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->hp = *hp;
    m->text = (clip__tower){hp->text_width, hp->text_heads, hp->text_ff, hp->text_layers, eps_t,
                            act_t, NULL};
    m->vision = (clip__tower){hp->vision_width, hp->vision_heads, hp->vision_ff,
                              hp->vision_layers, eps_v, act_v, NULL};
    m->text.layers = calloc((size_t)hp->text_layers + 1, sizeof(clip__layer));
    m->vision.layers = calloc((size_t)hp->vision_layers + 1, sizeof(clip__layer));
    if (!m->text.layers || !m->vision.layers)
        goto nomem;
    rng r;
    rng_seed(&r, seed);
    clip__binder b = {.hf = hf, .r = &r, .pass = 0, .err = err, .errlen = errlen};
    float ls = 1.0f;
    if ((rc = clip__bind(&b, m, &ls)))
        goto fail;
    m->arena = malloc(b.used * sizeof(float));
    if (!m->arena)
        goto nomem;
    b.pass = 1;
    b.base = m->arena;
    b.used = 0;
    if ((rc = clip__bind(&b, m, &ls)))
        goto fail;
    if (!isfinite(ls)) {
        snprintf(err, errlen, "%s: logit_scale is not finite after exp", what);
        rc = -EINVAL;
        goto fail;
    }
    m->logit_scale = ls;
    *out = m;
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory allocating the clip model", what);
    rc = -ENOMEM;
fail:
    clip_free(m);
    return rc;
}

static int clip__act_from(const char *s, const char *key, clip__act *act, const char *dir,
                          char *err, size_t errlen)
{
    if (strcmp(s, "quick_gelu") == 0)
        *act = CLIP__QUICK_GELU;
    else if (strcmp(s, "gelu") == 0)
        *act = CLIP__GELU;
    else if (strcmp(s, "gelu_new") == 0 || strcmp(s, "gelu_pytorch_tanh") == 0)
        *act = CLIP__GELU_TANH;
    else {
        snprintf(err, errlen, "%s/config.json: %s '%s' is not supported (quick_gelu, gelu, "
                 "gelu_new)", dir, key, s);
        return -ENOTSUP;
    }
    return 0;
}

int clip_folder_cfg_read(const hf_dir *d, clip_folder_cfg *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    clip_hparams *hp = &out->hp;
    const hf_config *c = hf_dir_config(d);
    const char *dir = hf_dir_path(d);
    const char *mt = hf_config_model_type(c);
    if (!mt || strcmp(mt, "clip") != 0) {
        snprintf(err, errlen, "%s/config.json: model_type '%s' is not clip", dir,
                 mt ? mt : "(absent)");
        return -ENOTSUP;
    }
    static const struct {
        const char *key;
        int64_t def;
        size_t off;
    } ints[] = {
        {"text_config.hidden_size", 512, offsetof(clip_hparams, text_width)},
        {"text_config.num_hidden_layers", 12, offsetof(clip_hparams, text_layers)},
        {"text_config.num_attention_heads", 8, offsetof(clip_hparams, text_heads)},
        {"text_config.intermediate_size", 2048, offsetof(clip_hparams, text_ff)},
        {"vision_config.hidden_size", 768, offsetof(clip_hparams, vision_width)},
        {"vision_config.num_hidden_layers", 12, offsetof(clip_hparams, vision_layers)},
        {"vision_config.num_attention_heads", 12, offsetof(clip_hparams, vision_heads)},
        {"vision_config.intermediate_size", 3072, offsetof(clip_hparams, vision_ff)},
        {"vision_config.image_size", 224, offsetof(clip_hparams, image_size)},
        {"vision_config.patch_size", 32, offsetof(clip_hparams, patch_size)},
        {"projection_dim", 512, offsetof(clip_hparams, proj_dim)},
    };
    st_error se = {0};
    int rc;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        if ((rc = hf_config_int(c, ints[i].key, ints[i].def, &v, &se)))
            goto cfg_fail;
        if (v < 0 || v > INT32_MAX) {
            snprintf(err, errlen, "%s/config.json: %s = %lld is out of range", dir, ints[i].key,
                     (long long)v);
            return -EINVAL;
        }
        *(int *)((char *)hp + ints[i].off) = (int)v;
    }
    int64_t eos;
    double e1, e2;
    if ((rc = hf_config_int(c, "text_config.eos_token_id", 49407, &eos, &se)) ||
        (rc = hf_config_float(c, "text_config.layer_norm_eps", 1e-5, &e1, &se)) ||
        (rc = hf_config_float(c, "vision_config.layer_norm_eps", 1e-5, &e2, &se)))
        goto cfg_fail;
    out->eps_text = (float)e1;
    out->eps_vision = (float)e2;
    if ((rc = hf_config_str(c, "text_config.hidden_act", "quick_gelu", &out->act_text, &se)) ||
        (rc = hf_config_str(c, "vision_config.hidden_act", "quick_gelu", &out->act_vision, &se)))
        goto cfg_fail;
    const st_tensor *tok = hf_dir_find(d, "text_model.embeddings.token_embedding.weight");
    const st_tensor *pos = hf_dir_find(d, "text_model.embeddings.position_embedding.weight");
    if (!tok || !pos || tok->n_dims != 2 || pos->n_dims != 2 || tok->shape[0] < 1 ||
        tok->shape[0] > CLIP__MAX_VOCAB || pos->shape[0] < 1 || pos->shape[0] > CLIP__MAX_CTX) {
        snprintf(err, errlen, "%s: text_model.embeddings token_embedding / position_embedding "
                 "weights are missing or not [rows, C]", dir);
        return -EINVAL;
    }
    hp->text_vocab = (int)tok->shape[0];
    hp->text_ctx = (int)pos->shape[0];
    /* transformers' old default eos_token_id 2 means "pool at argmax(ids)";
     * with <|endoftext|> the highest id that is the same as eot = V - 1 */
    if (eos == 2)
        eos = hp->text_vocab - 1;
    if (eos < 0 || eos >= hp->text_vocab) {
        snprintf(err, errlen, "%s/config.json: text_config.eos_token_id %lld is outside the "
                 "vocabulary (%d)", dir, (long long)eos, hp->text_vocab);
        return -EINVAL;
    }
    hp->eot_id = (int32_t)eos;
    return 0;
cfg_fail:
    snprintf(err, errlen, "%s", se.msg);
    return rc;
}

int clip_load(clip_model **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    hf_dir *d = NULL;
    st_error se = {0};
    int rc = hf_dir_open(&d, path, &se);
    if (rc) {
        snprintf(err, errlen, "%s", se.msg);
        return rc;
    }
    clip_folder_cfg fc;
    clip__act at = CLIP__QUICK_GELU, av = CLIP__QUICK_GELU;
    if (!(rc = clip_folder_cfg_read(d, &fc, err, errlen)) &&
        !(rc = clip__act_from(fc.act_text, "text_config.hidden_act", &at, path, err, errlen)) &&
        !(rc = clip__act_from(fc.act_vision, "vision_config.hidden_act", &av, path, err, errlen)))
        rc = clip__build(out, &fc.hp, at, av, fc.eps_text, fc.eps_vision, d, 0, path, err,
                         errlen);
    hf_dir_close(d);
    return rc;
}

int clip_create_random(clip_model **out, const clip_hparams *hp, uint64_t seed, char *err,
                       size_t errlen)
{
    *out = NULL;
    if (hp->eot_id < 0 || hp->eot_id >= hp->text_vocab) {
        snprintf(err, errlen, "clip_create_random: eot_id %d is outside the vocabulary (%d)",
                 (int)hp->eot_id, hp->text_vocab);
        return -EINVAL;
    }
    return clip__build(out, hp, CLIP__QUICK_GELU, CLIP__QUICK_GELU, 1e-5f, 1e-5f, NULL, seed,
                       "clip_create_random", err, errlen);
}

void clip_free(clip_model *m)
{
    if (!m)
        return;
    free(m->text.layers);
    free(m->vision.layers);
    free(m->arena);
    free(m->scratch);
    free(m);
}

const clip_hparams *clip_hp(const clip_model *m)
{
    return &m->hp;
}

float clip_logit_scale(const clip_model *m)
{
    return m->logit_scale;
}

/* ---- the encoder (both towers) -------------------------------------------- */

/* Returns scratch of at least n floats (contents undefined), or NULL. */
static float *clip__scratch(clip_model *m, size_t n)
{
    if (n > m->scratch_n) {
        float *p = malloc(n * sizeof(float));
        if (!p)
            return NULL;
        free(m->scratch);
        m->scratch = p;
        m->scratch_n = n;
    }
    return m->scratch;
}

/* Scratch floats clip__encoder needs for T tokens, sequences at most Lmax long. */
static size_t clip__encoder_scratch(const clip__tower *tw, size_t T, size_t Lmax)
{
    size_t C = (size_t)tw->C, FF = (size_t)tw->FF;
    return T * (C + 3 * C + C + FF) + Lmax * Lmax;
}

static void clip__activate(float *x, size_t n, clip__act act)
{
    switch (act) {
    case CLIP__QUICK_GELU:
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
        break;
    case CLIP__GELU:
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
        break;
    case CLIP__GELU_TANH:
        ops_gelu_tanh(x, n);
        break;
    }
}

/* Runs the tower's blocks over x[T, C] in place: nseq sequences packed back
 * to back, sequence s at rows start[s] .. start[s] + len[s] - 1, attending
 * within itself only (causally when causal). hidden, when not NULL, receives
 * [n_layer, T, C]: each layer's output. scratch holds
 * clip__encoder_scratch(tw, T, Lmax) floats. */
static void clip__encoder(const clip__tower *tw, float *x, int T, const int *start,
                          const int *len, int nseq, bool causal, float *hidden, float *scratch)
{
    const int C = tw->C, FF = tw->FF, NH = tw->NH, HS = C / NH;
    const size_t TC = (size_t)T * (size_t)C;
    float *xb = scratch;                 /* [T, C] */
    float *qkv = xb + TC;                /* [T, 3C] */
    float *attn = qkv + 3 * TC;          /* [T, C] */
    float *h = attn + TC;                /* [T, FF] */
    float *att = h + (size_t)T * FF;     /* [Lmax, Lmax] */
    const float scale = 1.0f / sqrtf((float)HS);
    for (int l = 0; l < tw->n_layer; l++) {
        const clip__layer *L = &tw->layers[l];
        for (int t = 0; t < T; t++)
            ops_layernorm(xb + (size_t)t * C, x + (size_t)t * C, L->ln1_w, L->ln1_b, C, tw->eps);
        ops_matmul(qkv, (size_t)3 * C, xb, L->wqkv, L->bqkv, T, C, 3 * C);
        for (int s = 0; s < nseq; s++) {
            const int n = len[s];
            for (int hd = 0; hd < NH; hd++) {
                const float *q = qkv + (size_t)start[s] * 3 * C + (size_t)hd * HS;
                const float *k = q + C, *v = q + 2 * C;
                /* att[n, n] = scale q k^T; masked rows softmax over j <= i */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, HS, scale, q, 3 * C,
                            k, 3 * C, 0.0f, att, n);
                for (int i = 0; i < n; i++) {
                    float *row = att + (size_t)i * n;
                    int nk = causal ? i + 1 : n;
                    ops_softmax(row, nk);
                    for (int j = nk; j < n; j++)
                        row[j] = 0.0f;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, HS, n, 1.0f, att, n, v,
                            3 * C, 0.0f, attn + (size_t)start[s] * C + (size_t)hd * HS, C);
            }
        }
        ops_matmul(xb, (size_t)C, attn, L->wo, L->bo, T, C, C);
        ops_add(x, xb, TC);
        for (int t = 0; t < T; t++)
            ops_layernorm(xb + (size_t)t * C, x + (size_t)t * C, L->ln2_w, L->ln2_b, C, tw->eps);
        ops_matmul(h, (size_t)FF, xb, L->fc1_w, L->fc1_b, T, C, FF);
        clip__activate(h, (size_t)T * FF, tw->act);
        ops_matmul(xb, (size_t)C, h, L->fc2_w, L->fc2_b, T, FF, C);
        ops_add(x, xb, TC);
        if (hidden)
            memcpy(hidden + (size_t)l * TC, x, TC * sizeof(float));
    }
}

/* ---- text tower ------------------------------------------------------------ */

int clip_encode_text(clip_model *m, int32_t *const *ids, const int *lens, int n, float *out,
                     char *err, size_t errlen)
{
    const clip_hparams *hp = &m->hp;
    if (n < 1 || n > CLIP__MAX_BATCH || !ids || !lens || !out) {
        snprintf(err, errlen, "clip_encode_text: need 1..%d sequences (got %d) and non-NULL "
                 "ids, lens, out", CLIP__MAX_BATCH, n);
        return -EINVAL;
    }
    int T = 0, Lmax = 0;
    for (int s = 0; s < n; s++) {
        if (!ids[s] || lens[s] < 1 || lens[s] > hp->text_ctx) {
            snprintf(err, errlen, "clip_encode_text: sequence %d has %d tokens (1..%d allowed)",
                     s, lens[s], hp->text_ctx);
            return -EINVAL;
        }
        for (int i = 0; i < lens[s]; i++) {
            if (ids[s][i] < 0 || ids[s][i] >= hp->text_vocab) {
                snprintf(err, errlen, "clip_encode_text: sequence %d token %d: id %d is outside "
                         "the vocabulary (%d)", s, i, (int)ids[s][i], hp->text_vocab);
                return -EINVAL;
            }
        }
        T += lens[s];
        if (lens[s] > Lmax)
            Lmax = lens[s];
    }
    const size_t C = (size_t)hp->text_width;
    size_t need = (size_t)T * C + (size_t)n * C + clip__encoder_scratch(&m->text, (size_t)T,
                                                                       (size_t)Lmax);
    int *start = malloc((size_t)n * sizeof(int));
    float *s0 = clip__scratch(m, need);
    if (!start || !s0) {
        free(start);
        snprintf(err, errlen, "clip_encode_text: out of memory for %d tokens", T);
        return -ENOMEM;
    }
    float *x = s0, *pooled = x + (size_t)T * C, *enc = pooled + (size_t)n * C;
    for (int s = 0, t = 0; s < n; t += lens[s], s++) {
        start[s] = t;
        for (int i = 0; i < lens[s]; i++) {
            const float *te = m->tok_embd + (size_t)ids[s][i] * C;
            const float *pe = m->tpos_embd + (size_t)i * C;
            float *xr = x + (size_t)(t + i) * C;
            for (size_t c = 0; c < C; c++)
                xr[c] = te[c] + pe[c];
        }
    }
    clip__encoder(&m->text, x, T, start, lens, n, true, NULL, enc);
    for (int s = 0; s < n; s++) {
        /* first eot; none: the highest id (first of its maxima, as argmax) */
        int p = -1, amax = 0;
        for (int i = 0; i < lens[s] && p < 0; i++)
            if (ids[s][i] == hp->eot_id)
                p = i;
        if (p < 0) {
            for (int i = 1; i < lens[s]; i++)
                if (ids[s][i] > ids[s][amax])
                    amax = i;
            p = amax;
        }
        ops_layernorm(pooled + (size_t)s * C, x + (size_t)(start[s] + p) * C, m->final_ln_w,
                      m->final_ln_b, (int)C, m->text.eps);
    }
    ops_matmul(out, (size_t)hp->proj_dim, pooled, m->text_proj, NULL, n, (int)C, hp->proj_dim);
    free(start);
    return 0;
}

/* ---- vision tower ----------------------------------------------------------- */

int clip_encode_images_hidden(clip_model *m, const float *pixels, int n, float *out,
                              float *hidden, char *err, size_t errlen)
{
    const clip_hparams *hp = &m->hp;
    if (n < 1 || n > CLIP__MAX_BATCH || !pixels) {
        snprintf(err, errlen, "clip_encode_images: need 1..%d images (got %d) and non-NULL "
                 "pixels", CLIP__MAX_BATCH, n);
        return -EINVAL;
    }
    const int S = hp->image_size, P = hp->patch_size, G = S / P, NP = G * G, NT = NP + 1;
    const size_t C = (size_t)hp->vision_width, K = (size_t)3 * P * P;
    const int T = n * NT;
    size_t need = (size_t)T * C + (size_t)n * C +
                  clip__encoder_scratch(&m->vision, (size_t)T, (size_t)NT);
    size_t need_patch = (size_t)n * NP * (K + C); /* patches + their embeddings */
    float *s0 = clip__scratch(m, need > need_patch + (size_t)T * C ? need
                                                                   : need_patch + (size_t)T * C);
    if (!s0) {
        snprintf(err, errlen, "clip_encode_images: out of memory for %d images", n);
        return -ENOMEM;
    }
    float *x = s0, *rest = x + (size_t)T * C;
    /* patches[n*NP, K], K in conv weight order (channel, row, column) */
    float *patches = rest, *pe = patches + (size_t)n * NP * K;
    for (int b = 0; b < n; b++)
        for (int py = 0; py < G; py++)
            for (int px = 0; px < G; px++) {
                float *dst = patches + ((size_t)b * NP + (size_t)py * G + px) * K;
                for (int c = 0; c < 3; c++)
                    for (int ky = 0; ky < P; ky++) {
                        const float *src = pixels + (((size_t)b * 3 + c) * S + (size_t)py * P + ky)
                                                        * S + (size_t)px * P;
                        memcpy(dst, src, (size_t)P * sizeof(float));
                        dst += P;
                    }
            }
    ops_matmul(pe, C, patches, m->patch_w, NULL, n * NP, (int)K, (int)C);
    for (int b = 0; b < n; b++) {
        for (int t = 0; t < NT; t++) {
            float *xr = x + ((size_t)b * NT + t) * C;
            const float *src = t == 0 ? m->cls : pe + ((size_t)b * NP + t - 1) * C;
            const float *pos = m->vpos_embd + (size_t)t * C;
            for (size_t c = 0; c < C; c++)
                xr[c] = src[c] + pos[c];
            ops_layernorm(xr, xr, m->pre_ln_w, m->pre_ln_b, (int)C, m->vision.eps);
        }
    }
    const size_t TC = (size_t)T * C;
    if (hidden)
        memcpy(hidden, x, TC * sizeof(float));
    int *start = malloc((size_t)n * 2 * sizeof(int));
    if (!start) {
        snprintf(err, errlen, "clip_encode_images: out of memory for %d images", n);
        return -ENOMEM;
    }
    int *len = start + n;
    for (int b = 0; b < n; b++) {
        start[b] = b * NT;
        len[b] = NT;
    }
    float *pooled = rest, *enc = pooled + (size_t)n * C;
    clip__encoder(&m->vision, x, T, start, len, n, false, hidden ? hidden + TC : NULL, enc);
    free(start);
    if (out) {
        for (int b = 0; b < n; b++)
            ops_layernorm(pooled + (size_t)b * C, x + (size_t)b * NT * C, m->post_ln_w,
                          m->post_ln_b, (int)C, m->vision.eps);
        ops_matmul(out, (size_t)hp->proj_dim, pooled, m->vis_proj, NULL, n, (int)C,
                   hp->proj_dim);
    }
    return 0;
}

int clip_encode_images(clip_model *m, const float *pixels, int n, float *out, char *err,
                       size_t errlen)
{
    if (!out) {
        snprintf(err, errlen, "clip_encode_images: out is NULL");
        return -EINVAL;
    }
    return clip_encode_images_hidden(m, pixels, n, out, NULL, err, errlen);
}
