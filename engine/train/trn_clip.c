/* trn_clip.c - the training CLIP model (trn_clip.h): the tensor table,
 * initialisation, the activation layout, and the float and double
 * instantiations of the forward and backward passes (trn_clip_impl.inc). */
#include "trn_clip.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_clip_impl.h"
#include "trn_ops.h"

/* Shape limits: those of clip.c, so whatever trains here also loads there. */
#define TRN_CLIP__MAX_WIDTH (1 << 14)
#define TRN_CLIP__MAX_FF (1 << 16)
#define TRN_CLIP__MAX_LAYERS 1024
#define TRN_CLIP__MAX_VOCAB (1 << 22)
#define TRN_CLIP__MAX_CTX (1 << 12)
#define TRN_CLIP__MAX_TOKENS_VISION (1 << 14)
#define TRN_CLIP__LOGIT_SCALE_INIT 2.6592f /* transformers' logit_scale_init_value */

#define R float
#define S f32
#define M(fn) fn##f
#include "trn_clip_impl.inc"
#undef R
#undef S
#undef M

#define R double
#define S f64
#define M(fn) fn
#include "trn_clip_impl.inc"
#undef R
#undef S
#undef M

/* ---- configuration ------------------------------------------------------------- */

int trn_clip_cfg_check(const trn_clip_cfg *cfg, char *err, size_t errlen)
{
    const clip_hparams *hp = &cfg->hp;
    bool ok = hp->text_ctx >= 1 && hp->text_ctx <= TRN_CLIP__MAX_CTX && hp->text_vocab >= 1 &&
              hp->text_vocab <= TRN_CLIP__MAX_VOCAB && hp->text_width >= 1 &&
              hp->text_width <= TRN_CLIP__MAX_WIDTH && hp->vision_width >= 1 &&
              hp->vision_width <= TRN_CLIP__MAX_WIDTH && hp->proj_dim >= 1 &&
              hp->proj_dim <= TRN_CLIP__MAX_WIDTH && hp->patch_size >= 1 &&
              hp->image_size >= 1 && hp->image_size % hp->patch_size == 0 &&
              (int64_t)(hp->image_size / hp->patch_size) * (hp->image_size / hp->patch_size) <
                  TRN_CLIP__MAX_TOKENS_VISION &&
              hp->text_layers >= 0 && hp->text_layers <= TRN_CLIP__MAX_LAYERS &&
              hp->vision_layers >= 0 && hp->vision_layers <= TRN_CLIP__MAX_LAYERS &&
              hp->text_heads >= 1 && hp->text_width % hp->text_heads == 0 &&
              hp->vision_heads >= 1 && hp->vision_width % hp->vision_heads == 0 &&
              hp->text_ff >= 1 && hp->text_ff <= TRN_CLIP__MAX_FF && hp->vision_ff >= 1 &&
              hp->vision_ff <= TRN_CLIP__MAX_FF;
    if (!ok) {
        snprintf(err, errlen, "clip shape not supported (text: ctx %d, vocab %d, width %d, "
                 "heads %d, ff %d, layers %d; vision: image %d, patch %d, width %d, heads %d, "
                 "ff %d, layers %d; proj %d)", hp->text_ctx, hp->text_vocab, hp->text_width,
                 hp->text_heads, hp->text_ff, hp->text_layers, hp->image_size, hp->patch_size,
                 hp->vision_width, hp->vision_heads, hp->vision_ff, hp->vision_layers,
                 hp->proj_dim);
        return -EINVAL;
    }
    if (hp->eot_id < 0 || hp->eot_id >= hp->text_vocab) {
        snprintf(err, errlen, "clip config: eot_id %d is outside the vocabulary (%d)",
                 (int)hp->eot_id, hp->text_vocab);
        return -EINVAL;
    }
    if ((unsigned)cfg->act_text > TRN_CLIP_GELU_TANH ||
        (unsigned)cfg->act_vision > TRN_CLIP_GELU_TANH || !(cfg->eps_text >= 0) ||
        !(cfg->eps_vision >= 0) || !isfinite(cfg->eps_text) || !isfinite(cfg->eps_vision) ||
        !isfinite(cfg->logit_scale_init)) {
        snprintf(err, errlen, "clip config: activations %d / %d, eps %g / %g, logit_scale_init "
                 "%g: need known activations and finite eps >= 0 and scale",
                 (int)cfg->act_text, (int)cfg->act_vision, cfg->eps_text, cfg->eps_vision,
                 cfg->logit_scale_init);
        return -EINVAL;
    }
    return 0;
}

/* ---- the tensor table --------------------------------------------------------------- */

/* Appends a tensor of shape d[0..nd) at the end of the arena; *off receives
 * its offset. 0 or -ENOMEM. */
static int trn_clip__tensor_add(trn_clip *m, int *cap, size_t *off, double std, float fill,
                                int nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                                const char *fmt, ...) __attribute__((format(printf, 11, 12)));

static int trn_clip__tensor_add(trn_clip *m, int *cap, size_t *off, double std, float fill,
                                int nd, int64_t d0, int64_t d1, int64_t d2, int64_t d3,
                                const char *fmt, ...)
{
    if (m->n_tensors == *cap) {
        int nc = *cap ? 2 * *cap : 64;
        trn_clip__tensor *t = realloc(m->tensors, (size_t)nc * sizeof *t);
        if (!t)
            return -ENOMEM;
        m->tensors = t;
        *cap = nc;
    }
    trn_clip__tensor *t = &m->tensors[m->n_tensors++];
    memset(t, 0, sizeof *t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->name, sizeof t->name, fmt, ap);
    va_end(ap);
    int64_t d[4] = {d0, d1, d2, d3};
    t->nd = nd;
    t->n = 1;
    for (int i = 0; i < nd; i++) {
        t->shape[i] = d[i];
        t->n *= (size_t)d[i];
    }
    t->off = m->n_weights;
    t->std = std;
    t->fill = fill;
    t->decay = nd >= 2; /* OpenCLIP: no decay on gains, biases, 1-D embeddings, scale */
    m->n_weights += t->n;
    *off = t->off;
    return 0;
}

/* A tower's layers, "<pre>encoder.layers.<l>.*", with transformers' stds. */
static int trn_clip__table_tower(trn_clip *m, int *cap, trn_clip__tower *tw, const char *pre)
{
    const int64_t C = tw->C, FF = tw->FF;
    const double in_std = pow((double)C, -0.5) * pow(2.0 * tw->n_layer, -0.5);
    const double out_std = pow((double)C, -0.5), fc_std = pow(2.0 * C, -0.5);
    static const char *const qkv[3] = {"q_proj", "k_proj", "v_proj"};
    int rc = 0;
#define TRN_CLIP__T(off, std, fill, nd, d0, d1, what)                                     \
    do {                                                                                 \
        if (!rc)                                                                         \
            rc = trn_clip__tensor_add(m, cap, &(off), std, fill, nd, d0, d1, 0, 0,       \
                                      "%sencoder.layers.%d.%s", pre, l, what);           \
    } while (0)
    for (int l = 0; l < tw->n_layer && !rc; l++) {
        trn_clip__lw *W = &tw->lw[l];
        char name[32];
        size_t o[3] = {0};
        TRN_CLIP__T(W->ln1_w, 0, 1.0f, 1, C, 0, "layer_norm1.weight");
        TRN_CLIP__T(W->ln1_b, 0, 0.0f, 1, C, 0, "layer_norm1.bias");
        /* q, k, v weights back to back (the fused [3C, C]), then their biases */
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "self_attn.%s.weight", qkv[i]);
            TRN_CLIP__T(o[i], in_std, 0.0f, 2, C, C, name);
        }
        W->wqkv = o[0];
        for (int i = 0; i < 3; i++) {
            snprintf(name, sizeof name, "self_attn.%s.bias", qkv[i]);
            TRN_CLIP__T(o[i], 0, 0.0f, 1, C, 0, name);
        }
        W->bqkv = o[0];
        TRN_CLIP__T(W->wo, out_std, 0.0f, 2, C, C, "self_attn.out_proj.weight");
        TRN_CLIP__T(W->bo, 0, 0.0f, 1, C, 0, "self_attn.out_proj.bias");
        TRN_CLIP__T(W->ln2_w, 0, 1.0f, 1, C, 0, "layer_norm2.weight");
        TRN_CLIP__T(W->ln2_b, 0, 0.0f, 1, C, 0, "layer_norm2.bias");
        TRN_CLIP__T(W->fc1_w, fc_std, 0.0f, 2, FF, C, "mlp.fc1.weight");
        TRN_CLIP__T(W->fc1_b, 0, 0.0f, 1, FF, 0, "mlp.fc1.bias");
        TRN_CLIP__T(W->fc2_w, in_std, 0.0f, 2, C, FF, "mlp.fc2.weight");
        TRN_CLIP__T(W->fc2_b, 0, 0.0f, 1, C, 0, "mlp.fc2.bias");
    }
#undef TRN_CLIP__T
    return rc;
}

static int trn_clip__table(trn_clip *m)
{
    const clip_hparams *hp = &m->cfg.hp;
    const int64_t Ct = hp->text_width, Cv = hp->vision_width, D = hp->proj_dim;
    const int64_t P = hp->patch_size, G = hp->image_size / hp->patch_size;
    const float ls = m->cfg.logit_scale_init;
    int cap = 0, rc;
    if ((rc = trn_clip__tensor_add(m, &cap, &m->tok_embd, 0.02, 0, 2, hp->text_vocab, Ct, 0, 0,
                                   "text_model.embeddings.token_embedding.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->tpos_embd, 0.02, 0, 2, hp->text_ctx, Ct, 0, 0,
                                   "text_model.embeddings.position_embedding.weight")) ||
        (rc = trn_clip__table_tower(m, &cap, &m->text, "text_model.")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->final_ln_w, 0, 1, 1, Ct, 0, 0, 0,
                                   "text_model.final_layer_norm.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->final_ln_b, 0, 0, 1, Ct, 0, 0, 0,
                                   "text_model.final_layer_norm.bias")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->text_proj, pow((double)Ct, -0.5), 0, 2, D, Ct,
                                   0, 0, "text_projection.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->patch_w, 0.02, 0, 4, Cv, 3, P, P,
                                   "vision_model.embeddings.patch_embedding.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->cls, pow((double)Cv, -0.5), 0, 1, Cv, 0, 0, 0,
                                   "vision_model.embeddings.class_embedding")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->vpos_embd, 0.02, 0, 2, G * G + 1, Cv, 0, 0,
                                   "vision_model.embeddings.position_embedding.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->pre_ln_w, 0, 1, 1, Cv, 0, 0, 0,
                                   "vision_model.pre_layrnorm.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->pre_ln_b, 0, 0, 1, Cv, 0, 0, 0,
                                   "vision_model.pre_layrnorm.bias")) ||
        (rc = trn_clip__table_tower(m, &cap, &m->vision, "vision_model.")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->post_ln_w, 0, 1, 1, Cv, 0, 0, 0,
                                   "vision_model.post_layernorm.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->post_ln_b, 0, 0, 1, Cv, 0, 0, 0,
                                   "vision_model.post_layernorm.bias")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->vis_proj, pow((double)Cv, -0.5), 0, 2, D, Cv,
                                   0, 0, "visual_projection.weight")) ||
        (rc = trn_clip__tensor_add(m, &cap, &m->logit_scale, 0, ls, 0, 0, 0, 0, 0,
                                   "logit_scale")))
        return rc;
    return 0;
}

static void trn_clip__init_weights(trn_clip *m, uint64_t seed)
{
    rng r;
    rng_seed(&r, seed);
    for (int i = 0; i < m->n_tensors; i++) {
        const trn_clip__tensor *t = &m->tensors[i];
        float *p = m->w + t->off;
        for (size_t j = 0; j < t->n; j++)
            p[j] = t->std > 0 ? (float)(rng_normal(&r) * t->std) : t->fill;
    }
}

/* ---- construction ---------------------------------------------------------------- */

static void trn_clip__tower_init(trn_clip__tower *tw, int C, int NH, int FF, int n_layer,
                                 float eps, trn_clip_act act, bool causal)
{
    tw->C = C;
    tw->NH = NH;
    tw->FF = FF;
    tw->n_layer = n_layer;
    tw->eps = eps > 0 ? eps : 1e-5f;
    tw->act = act;
    tw->causal = causal;
}

int trn_clip_new(trn_clip **out, const trn_clip_cfg *cfg, uint64_t seed, char *err,
                 size_t errlen)
{
    *out = NULL;
    int rc = trn_clip_cfg_check(cfg, err, errlen);
    if (rc)
        return rc;
    trn_clip *m = calloc(1, sizeof *m);
    if (!m)
        goto nomem;
    m->cfg = *cfg;
    if (m->cfg.logit_scale_init == 0)
        m->cfg.logit_scale_init = TRN_CLIP__LOGIT_SCALE_INIT;
    const clip_hparams *hp = &m->cfg.hp;
    trn_clip__tower_init(&m->text, hp->text_width, hp->text_heads, hp->text_ff, hp->text_layers,
                         cfg->eps_text, cfg->act_text, true);
    trn_clip__tower_init(&m->vision, hp->vision_width, hp->vision_heads, hp->vision_ff,
                         hp->vision_layers, cfg->eps_vision, cfg->act_vision, false);
    m->cfg.eps_text = m->text.eps;
    m->cfg.eps_vision = m->vision.eps;
    m->text.lw = calloc((size_t)hp->text_layers + 1, sizeof(trn_clip__lw));
    m->text.la = calloc((size_t)hp->text_layers + 1, sizeof(trn_clip__la));
    m->vision.lw = calloc((size_t)hp->vision_layers + 1, sizeof(trn_clip__lw));
    m->vision.la = calloc((size_t)hp->vision_layers + 1, sizeof(trn_clip__la));
    if (!m->text.lw || !m->text.la || !m->vision.lw || !m->vision.la || trn_clip__table(m))
        goto nomem;
    m->w = malloc(m->n_weights * sizeof(float));
    m->g = calloc(m->n_weights, sizeof(float));
    if (!m->w || !m->g)
        goto nomem;
    trn_clip__init_weights(m, seed);
    *out = m;
    return 0;
nomem:
    trn_clip_free(m);
    snprintf(err, errlen, "clip model: out of memory");
    return -ENOMEM;
}

void trn_clip_free(trn_clip *m)
{
    if (!m)
        return;
    free(m->text.lw);
    free(m->text.la);
    free(m->vision.lw);
    free(m->vision.la);
    free(m->tensors);
    free(m->w);
    free(m->g);
    free(m->act);
    free(m->ibuf);
    free(m);
}

const trn_clip_cfg *trn_clip_config(const trn_clip *m)
{
    return &m->cfg;
}

size_t trn_clip_n_weights(const trn_clip *m)
{
    return m->n_weights;
}

float *trn_clip_weights(trn_clip *m)
{
    return m->w;
}

int trn_clip_params(trn_clip *m, trn_params *ps)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const trn_clip__tensor *t = &m->tensors[i];
        int rc = trn_params_add(ps, t->name, m->w + t->off, m->g + t->off, t->n, t->decay);
        if (rc)
            return rc;
    }
    return 0;
}

float trn_clip_scale(const trn_clip *m)
{
    return expf(m->w[m->logit_scale]);
}

void trn_clip_clamp_logit_scale(trn_clip *m)
{
    float *ls = &m->w[m->logit_scale];
    const float hi = logf(100.0f);
    *ls = *ls < 0 ? 0 : *ls > hi ? hi : *ls;
}

/* ---- activations ---------------------------------------------------------------- */

static size_t trn_clip__max(size_t a, size_t b)
{
    return a > b ? a : b;
}

#define TRN_CLIP__TAKE(dst, count) \
    do {                           \
        (dst) = n;                 \
        n += (count);              \
    } while (0)

/* Carves tw's activations for B sequences of L tokens from offset n. */
static size_t trn_clip__carve_tower(trn_clip__tower *tw, int B, int L, int D, size_t n)
{
    const size_t T = (size_t)B * L, C = tw->C, FF = tw->FF;
    tw->B = B;
    tw->L = L;
    for (int l = 0; l < tw->n_layer; l++) {
        trn_clip__la *a = &tw->la[l];
        TRN_CLIP__TAKE(a->x_in, T * C);
        TRN_CLIP__TAKE(a->n1, T * C);
        TRN_CLIP__TAKE(a->m1, T);
        TRN_CLIP__TAKE(a->r1, T);
        TRN_CLIP__TAKE(a->qkv, 3 * T * C);
        TRN_CLIP__TAKE(a->probs, (size_t)B * tw->NH * L * L);
        TRN_CLIP__TAKE(a->att, T * C);
        TRN_CLIP__TAKE(a->x_mid, T * C);
        TRN_CLIP__TAKE(a->n2, T * C);
        TRN_CLIP__TAKE(a->m2, T);
        TRN_CLIP__TAKE(a->r2, T);
        TRN_CLIP__TAKE(a->hpre, T * FF);
        TRN_CLIP__TAKE(a->hact, T * FF);
    }
    TRN_CLIP__TAKE(tw->x_out, T * C);
    TRN_CLIP__TAKE(tw->pool, (size_t)B * C);
    TRN_CLIP__TAKE(tw->nf, (size_t)B * C);
    TRN_CLIP__TAKE(tw->mf, (size_t)B);
    TRN_CLIP__TAKE(tw->rf, (size_t)B);
    TRN_CLIP__TAKE(tw->emb, (size_t)B * D);
    TRN_CLIP__TAKE(tw->embn, (size_t)B * D);
    TRN_CLIP__TAKE(tw->norm, (size_t)B);
    TRN_CLIP__TAKE(tw->demb, (size_t)B * D);
    return n;
}

int trn_clip__reserve(trn_clip *m, int Bt, int L, int Bv, char *err, size_t errlen)
{
    const clip_hparams *hp = &m->cfg.hp;
    const size_t D = hp->proj_dim, P = hp->patch_size, G = hp->image_size / hp->patch_size;
    const size_t NP = G * G, NT = NP + 1, K = 3 * P * P;
    const int Lt = Bt ? L : 0, Lv = Bv ? (int)NT : 0;
    size_t n = trn_clip__carve_tower(&m->text, Bt, Lt, (int)D, 0);
    n = trn_clip__carve_tower(&m->vision, Bv, Lv, (int)D, n);
    const size_t Tt = (size_t)Bt * Lt, Tv = (size_t)Bv * Lv, Ct = hp->text_width;
    const size_t Cv = hp->vision_width, B = Bt && Bv ? (size_t)Bv : 0;
    const size_t Bm = trn_clip__max((size_t)Bt, (size_t)Bv);
    TRN_CLIP__TAKE(m->patches, (size_t)Bv * NP * K);
    TRN_CLIP__TAKE(m->pe, (size_t)Bv * NP * Cv);
    TRN_CLIP__TAKE(m->x0, Tv * Cv);
    TRN_CLIP__TAKE(m->m0, Tv);
    TRN_CLIP__TAKE(m->r0, Tv);
    TRN_CLIP__TAKE(m->logits, B * B);
    TRN_CLIP__TAKE(m->lse_r, B);
    TRN_CLIP__TAKE(m->lse_c, B);
    /* backward scratch, shared by the towers (and the heads: [B, D], [B, C]) */
    const size_t TC = trn_clip__max(Tt * Ct, Tv * Cv);
    const size_t TF = trn_clip__max(Tt * (size_t)hp->text_ff, Tv * (size_t)hp->vision_ff);
    const size_t BC = Bm * trn_clip__max(Ct, Cv);
    TRN_CLIP__TAKE(m->dx, TC);
    TRN_CLIP__TAKE(m->dn, trn_clip__max(TC, BC));
    TRN_CLIP__TAKE(m->dqkv, 3 * TC);
    TRN_CLIP__TAKE(m->datt, TC);
    TRN_CLIP__TAKE(m->dh, trn_clip__max(TF, Bm * D));
    TRN_CLIP__TAKE(m->dhpre, trn_clip__max(TF, BC));
    TRN_CLIP__TAKE(m->dS, 2 * trn_clip__max((size_t)Lt * Lt, (size_t)Lv * Lv));
    TRN_CLIP__TAKE(m->dG, B * B);
    m->act_n = n;
    const size_t ni = 2 * Tt + 2 * (size_t)Bt + (size_t)Bv;
    if (n > m->act_cap) {
        float *p = realloc(m->act, n * sizeof(float));
        if (!p)
            goto nomem;
        m->act = p;
        m->act_cap = n;
    }
    if (ni > m->ibuf_cap) {
        int32_t *p = realloc(m->ibuf, ni * sizeof(int32_t));
        if (!p)
            goto nomem;
        m->ibuf = p;
        m->ibuf_cap = ni;
    }
    m->tokens = m->ibuf;
    m->pos = m->tokens + Tt;
    m->lens = m->pos + Tt;
    m->pool = m->lens + Bt;
    m->vlens = m->pool + Bt;
    return 0;
nomem:
    snprintf(err, errlen, "clip training: out of memory for the activations of %d captions of "
             "%d tokens and %d images (%zu MiB)", Bt, L, Bv, n * sizeof(float) >> 20);
    return -ENOMEM;
}

#undef TRN_CLIP__TAKE

/* ---- forward ------------------------------------------------------------------ */

static int trn_clip__check_batch(const trn_clip *m, const trn_clip_batch *b, bool need_both,
                                 char *err, size_t errlen)
{
    const clip_hparams *hp = &m->cfg.hp;
    if (b->B < 1 || b->B > TRN_CLIP_MAX_BATCH || (!b->pixels && !b->tokens) ||
        (need_both && (!b->pixels || !b->tokens))) {
        snprintf(err, errlen, "clip batch: need 1..%d pairs (got %d) with %s", TRN_CLIP_MAX_BATCH,
                 b->B, need_both ? "pixels and tokens" : "pixels or tokens");
        return -EINVAL;
    }
    if (!b->tokens)
        return 0;
    if (b->L < 1 || b->L > hp->text_ctx) {
        snprintf(err, errlen, "clip batch: caption length %d outside 1..%d", b->L, hp->text_ctx);
        return -EINVAL;
    }
    for (int s = 0; s < b->B; s++) {
        int n = b->lens ? b->lens[s] : b->L;
        if (n < 1 || n > b->L) {
            snprintf(err, errlen, "clip batch: caption %d has length %d (1..%d allowed)", s, n,
                     b->L);
            return -EINVAL;
        }
        for (int i = 0; i < n; i++) {
            int32_t id = b->tokens[(size_t)s * b->L + i];
            if (id < 0 || id >= hp->text_vocab) {
                snprintf(err, errlen, "clip batch: caption %d token %d: id %d is outside the "
                         "vocabulary (%d)", s, i, (int)id, hp->text_vocab);
                return -EINVAL;
            }
        }
    }
    return 0;
}

/* Copies the batch's ids into m->ibuf (pads become 0) and finds each
 * caption's pooling position: the first eot_id, or the first highest id. */
static void trn_clip__set_ids(trn_clip *m, const trn_clip_batch *b)
{
    const int L = b->L;
    if (b->tokens) {
        for (int s = 0; s < b->B; s++) {
            const int n = b->lens ? b->lens[s] : L;
            const int32_t *src = b->tokens + (size_t)s * L;
            int32_t *dst = m->tokens + (size_t)s * L;
            int p = -1, amax = 0;
            for (int i = 0; i < L; i++) {
                dst[i] = i < n ? src[i] : 0;
                m->pos[(size_t)s * L + i] = i;
                if (i < n && p < 0 && src[i] == m->cfg.hp.eot_id)
                    p = i;
                if (i < n && src[i] > src[amax])
                    amax = i;
            }
            m->lens[s] = n;
            m->pool[s] = p >= 0 ? p : amax;
        }
    }
    if (b->pixels) {
        const int G = m->cfg.hp.image_size / m->cfg.hp.patch_size;
        for (int s = 0; s < b->B; s++)
            m->vlens[s] = G * G + 1;
    }
}

/* Whether captions i and j of the last batch are the same ids. */
static bool trn_clip__same_caption(const trn_clip *m, int i, int j)
{
    const int L = m->text.L;
    return m->lens[i] == m->lens[j] &&
           !memcmp(m->tokens + (size_t)i * L, m->tokens + (size_t)j * L,
                   (size_t)m->lens[i] * sizeof(int32_t));
}

/* In-batch matching: the arg-max over each row (image -> caption) and each
 * column (caption -> image); a pick counts when its caption equals the true
 * one (datasets repeat captions). */
static void trn_clip__accuracy(const trn_clip *m, trn_clip_result *r)
{
    const int B = m->vision.B;
    const float *lg = m->act + m->logits;
    r->i2t_correct = r->t2i_correct = 0;
    for (int i = 0; i < B; i++) {
        int bj = 0, bi = 0;
        for (int j = 1; j < B; j++) {
            if (lg[(size_t)i * B + j] > lg[(size_t)i * B + bj])
                bj = j;
            if (lg[(size_t)j * B + i] > lg[(size_t)bi * B + i])
                bi = j;
        }
        r->i2t_correct += trn_clip__same_caption(m, i, bj);
        r->t2i_correct += trn_clip__same_caption(m, bi, i);
    }
}

int trn_clip_forward(trn_clip *m, const trn_clip_batch *b, trn_clip_result *res, char *err,
                     size_t errlen)
{
    m->has_text = m->has_image = m->has_loss = false;
    int rc = trn_clip__check_batch(m, b, false, err, errlen);
    if (rc || (rc = trn_clip__reserve(m, b->tokens ? b->B : 0, b->L, b->pixels ? b->B : 0, err,
                                      errlen)))
        return rc;
    trn_clip__set_ids(m, b);
    if (b->tokens)
        trn_clip__text_fwd_f32(m, m->w, m->act);
    if (b->pixels)
        trn_clip__vision_fwd_f32(m, m->w, m->act, b->pixels);
    m->has_text = b->tokens != NULL;
    m->has_image = b->pixels != NULL;
    m->has_loss = m->has_text && m->has_image;
    trn_clip_result r = {.loss = NAN, .scale = trn_clip_scale(m)};
    if (m->has_loss) {
        r.loss = trn_clip__loss_fwd_f32(m, m->w, m->act);
        trn_clip__accuracy(m, &r);
    }
    m->last = r;
    if (res)
        *res = r;
    return 0;
}

int trn_clip_backward(trn_clip *m, float dloss, char *err, size_t errlen)
{
    if (!m->has_loss) {
        snprintf(err, errlen, "clip backward: the last forward pass had no loss (it needs "
                 "images and captions)");
        return -EINVAL;
    }
    trn_clip__backward_f32(m, m->w, m->g, m->act, dloss);
    return 0;
}

const float *trn_clip_image_embeds(const trn_clip *m)
{
    return m->has_image ? m->act + m->vision.emb : NULL;
}

const float *trn_clip_text_embeds(const trn_clip *m)
{
    return m->has_text ? m->act + m->text.emb : NULL;
}

const float *trn_clip_logits(const trn_clip *m)
{
    return m->has_loss ? m->act + m->logits : NULL;
}

/* ---- the double twin ---------------------------------------------------------------- */

int trn_clip_loss_f64(trn_clip *m, const trn_clip_batch *b, const double *w, double *grad,
                      double *loss, char *err, size_t errlen)
{
    m->has_text = m->has_image = m->has_loss = false;
    int rc = trn_clip__check_batch(m, b, true, err, errlen);
    if (rc || (rc = trn_clip__reserve(m, b->B, b->L, b->B, err, errlen)))
        return rc;
    trn_clip__set_ids(m, b);
    const size_t npx = (size_t)b->B * 3 * m->cfg.hp.image_size * m->cfg.hp.image_size;
    double *a = malloc(m->act_n * sizeof(double)), *px = malloc(npx * sizeof(double));
    if (!a || !px) {
        free(a);
        free(px);
        snprintf(err, errlen, "clip gradient check: out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < npx; i++)
        px[i] = b->pixels[i];
    trn_clip__text_fwd_f64(m, w, a);
    trn_clip__vision_fwd_f64(m, w, a, px);
    *loss = trn_clip__loss_fwd_f64(m, w, a);
    if (grad) {
        memset(grad, 0, m->n_weights * sizeof(double));
        trn_clip__backward_f64(m, w, grad, a, 1.0);
    }
    free(a);
    free(px);
    return 0;
}
