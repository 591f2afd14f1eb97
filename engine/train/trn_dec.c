/* trn_dec.c - the training decoder's weights, activations, forward and
 * backward passes (trn_dec.h). The layer structure mirrors arch_llama.c and
 * arch_gpt2.c (fused qkv and gate/up matrices), built from trn_ops.h. */
#include "trn_dec.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_ops.h"

/* What one layer's forward keeps for its backward ([T, width] each). */
typedef struct trn__layer_act {
    float *x_in;         /* [T, C] residual stream entering the layer */
    float *n1, *m1, *r1; /* attention-input norm: out, mean, rstd */
    float *qkv;          /* [T, QKV] after RoPE */
    float *probs;        /* [B, NH, L, L] */
    float *att;          /* [T, A] attention output (input of wo) */
    float *x_mid;        /* [T, C] residual after attention */
    float *n2, *m2, *r2; /* MLP-input norm */
    float *hpre;         /* [T, FW] before the activation */
    float *hact;         /* [T, FF] after it (input of wdown) */
} trn__layer_act;

struct trn_dec {
    model_arch_id arch;
    model_hparams hp;
    int n_pos;                 /* longest sequence */
    model_decoder_view w;      /* weights */
    model_decoder_view g;      /* gradients (all NULL when frozen) */
    model_decoder_view nog;    /* all NULL: what backward uses when frozen */
    bool owned, frozen;
    float *warena, *garena;
    size_t n_weights;
    float *inv_freq;           /* owned copy (trn_dec_new) */
    trn_lora *lora;
    /* activations for up to cap_floats, carved for the current (B, L) */
    int B, L;
    float *act;
    size_t act_floats;
    trn__layer_act *la;
    float *x_out, *nf, *mf, *rf, *logits, *lse;
    float *dx, *dn, *dqkv, *datt, *dh, *dhpre, *dS, *dlora;
    int32_t *ibuf;             /* pos, tokens, targets [T] and lens [B] */
    size_t ibuf_n;             /* its capacity in elements */
    int32_t *pos, *tokens, *targets, *lens;
};

/* ---- shapes ------------------------------------------------------------- */

static int trn__qkv(const model_hparams *hp)
{
    return (hp->n_head + 2 * hp->n_head_kv) * hp->head_dim;
}

static int trn__fw(const trn_dec *d)
{
    return d->arch == MODEL_ARCH_LLAMA ? 2 * d->hp.n_ff : d->hp.n_ff;
}

/* ---- construction ------------------------------------------------------- */

static trn_dec *trn__alloc(const model_hparams *hp)
{
    trn_dec *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->hp = *hp;
    d->w.layers = calloc((size_t)hp->n_layer, sizeof(model_layer_view));
    d->g.layers = calloc((size_t)hp->n_layer, sizeof(model_layer_view));
    d->nog.layers = calloc((size_t)hp->n_layer, sizeof(model_layer_view));
    d->la = calloc((size_t)hp->n_layer, sizeof(trn__layer_act));
    if (!d->w.layers || !d->g.layers || !d->nog.layers || !d->la) {
        trn_dec_free(d);
        return NULL;
    }
    return d;
}

int trn_dec_from_model(trn_dec **out, model *m, char *err, size_t errlen)
{
    *out = NULL;
    model_arch_id arch = model_arch(m);
    if (arch != MODEL_ARCH_LLAMA && arch != MODEL_ARCH_GPT2) {
        snprintf(err, errlen, "training needs a decoder (llama or gpt2), not %s",
                 model_arch_name(arch));
        return -ENOTSUP;
    }
    trn_dec *d = trn__alloc(model_hp(m));
    if (!d)
        goto nomem;
    model_decoder_view v;
    int rc = model_decoder_view_get(m, &v);
    if (rc == -ENOTSUP) {
        trn_dec_free(d);
        snprintf(err, errlen, "training needs F32 weights, and this model's matrices stayed "
                 "quantized (load it with f32 weights: model weights = f32)");
        return rc;
    }
    if (rc)
        goto nomem;
    d->arch = arch;
    memcpy(d->w.layers, v.layers, (size_t)d->hp.n_layer * sizeof(model_layer_view));
    model_layer_view *keep = d->w.layers;
    d->w = v;
    d->w.layers = keep;
    d->n_pos = model_n_ctx(m);
    d->n_weights = model_weight_bytes(m) / sizeof(float);
    if (d->hp.rope_freq_scale == 0)
        d->hp.rope_freq_scale = 1.0f;
    *out = d;
    return 0;
nomem:
    trn_dec_free(d);
    snprintf(err, errlen, "training decoder: out of memory");
    return -ENOMEM;
}

/* Points v's tensors into base (a llama model of shape hp) in a fixed
 * order; returns the number of floats used. base NULL: only counts. */
static size_t trn__carve_llama(model_decoder_view *v, float *base, const model_hparams *hp)
{
    size_t C = hp->n_embd, V = hp->n_vocab, A = (size_t)hp->n_head * hp->head_dim;
    size_t QKV = trn__qkv(hp), FF = hp->n_ff, n = 0;
#define TRN__TAKE(dst, count)                  \
    do {                                       \
        if (base)                              \
            (dst) = base + n;                  \
        n += (count);                          \
    } while (0)
    TRN__TAKE(v->tok_embd, V * C);
    TRN__TAKE(v->norm_f_w, C);
    if (hp->tied_output) {
        if (base)
            v->output = v->tok_embd;
    } else
        TRN__TAKE(v->output, V * C);
    for (int l = 0; l < hp->n_layer; l++) {
        model_layer_view *L = &v->layers[l];
        TRN__TAKE(L->norm1_w, C);
        TRN__TAKE(L->wqkv, QKV * C);
        TRN__TAKE(L->wo, C * A);
        TRN__TAKE(L->norm2_w, C);
        TRN__TAKE(L->wup, 2 * FF * C);
        TRN__TAKE(L->wdown, C * FF);
    }
#undef TRN__TAKE
    return n;
}

static void trn__normal(rng *r, float *x, size_t n, double std)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(rng_normal(r) * std);
}

static void trn__init_llama(trn_dec *d, uint64_t seed)
{
    const model_hparams *hp = &d->hp;
    size_t C = hp->n_embd, V = hp->n_vocab, A = (size_t)hp->n_head * hp->head_dim;
    size_t FF = hp->n_ff;
    double std = 0.02, proj = 0.02 / sqrt(2.0 * hp->n_layer);
    rng r;
    rng_seed(&r, seed);
    trn__normal(&r, d->w.tok_embd, V * C, std);
    if (!hp->tied_output)
        trn__normal(&r, d->w.output, V * C, std);
    for (size_t c = 0; c < C; c++)
        d->w.norm_f_w[c] = 1.0f;
    for (int l = 0; l < hp->n_layer; l++) {
        model_layer_view *L = &d->w.layers[l];
        for (size_t c = 0; c < C; c++)
            L->norm1_w[c] = L->norm2_w[c] = 1.0f;
        trn__normal(&r, L->wqkv, (size_t)trn__qkv(hp) * C, std);
        trn__normal(&r, L->wo, C * A, proj);
        trn__normal(&r, L->wup, 2 * FF * C, std);
        trn__normal(&r, L->wdown, C * FF, proj);
    }
}

static int trn__check_shape(const trn_dec_shape *s, char *err, size_t errlen)
{
    if (s->n_vocab < 2 || s->n_ctx < 2 || s->n_embd < 2 || s->n_layer < 1 || s->n_head < 1 ||
        s->n_head_kv < 1 || s->n_ff < 1 || s->n_embd % s->n_head || s->n_head % s->n_head_kv ||
        (s->n_embd / s->n_head) % 2 || s->n_vocab > (1 << 24) || s->n_embd > (1 << 16) ||
        s->n_ff > (1 << 18) || s->n_layer > 1024 || s->n_ctx > (1 << 16)) {
        snprintf(err, errlen, "model shape: vocab %d, ctx %d, embd %d, layers %d, heads %d/%d, "
                 "ff %d: embd must split into heads of even size, heads into kv heads",
                 s->n_vocab, s->n_ctx, s->n_embd, s->n_layer, s->n_head, s->n_head_kv, s->n_ff);
        return -EINVAL;
    }
    return 0;
}

int trn_dec_new(trn_dec **out, const trn_dec_shape *s, uint64_t seed, char *err, size_t errlen)
{
    *out = NULL;
    int rc = trn__check_shape(s, err, errlen);
    if (rc)
        return rc;
    model_hparams hp = {
        .n_vocab = s->n_vocab, .n_ctx_train = s->n_ctx, .n_embd = s->n_embd,
        .n_layer = s->n_layer, .n_head = s->n_head, .n_head_kv = s->n_head_kv,
        .head_dim = s->n_embd / s->n_head, .n_ff = s->n_ff,
        .norm_eps = s->norm_eps > 0 ? s->norm_eps : 1e-5f,
        .rope_theta = s->rope_theta > 0 ? s->rope_theta : 10000.0, .rope_freq_scale = 1.0f,
        .rope_layout = OPS_ROPE_ADJACENT, .tied_output = s->tied != 0, .bos_id = -1,
        .eos_id = -1,
    };
    hp.n_rot = hp.head_dim;
    trn_dec *d = trn__alloc(&hp);
    if (!d)
        goto nomem;
    d->arch = MODEL_ARCH_LLAMA;
    d->owned = true;
    d->n_pos = s->n_ctx;
    d->n_weights = trn__carve_llama(&d->w, NULL, &hp);
    d->warena = malloc(d->n_weights * sizeof(float));
    d->garena = calloc(d->n_weights, sizeof(float));
    d->inv_freq = malloc((size_t)hp.n_rot / 2 * sizeof(float));
    if (!d->warena || !d->garena || !d->inv_freq)
        goto nomem;
    trn__carve_llama(&d->w, d->warena, &hp);
    trn__carve_llama(&d->g, d->garena, &hp);
    ops_rope_inv_freq(d->inv_freq, hp.n_rot, hp.rope_theta);
    d->w.inv_freq = d->inv_freq;
    trn__init_llama(d, seed);
    *out = d;
    return 0;
nomem:
    trn_dec_free(d);
    snprintf(err, errlen, "new model: out of memory");
    return -ENOMEM;
}

int trn_dec_copy_model(trn_dec **out, model *m, char *err, size_t errlen)
{
    *out = NULL;
    const model_hparams *hp = model_hp(m);
    if (model_arch(m) != MODEL_ARCH_LLAMA || hp->rope_layout != OPS_ROPE_ADJACENT ||
        hp->n_rot != hp->head_dim || hp->head_dim * hp->n_head != hp->n_embd ||
        hp->rope_freq_scale != 1.0f) {
        snprintf(err, errlen, "a trainable copy needs a llama model with full adjacent-pair "
                 "RoPE, unscaled, and heads that split the width (this one: %s)",
                 model_arch_name(model_arch(m)));
        return -ENOTSUP;
    }
    trn_dec_shape s = {
        .n_vocab = hp->n_vocab, .n_ctx = model_n_ctx(m), .n_embd = hp->n_embd,
        .n_layer = hp->n_layer, .n_head = hp->n_head, .n_head_kv = hp->n_head_kv,
        .n_ff = hp->n_ff, .norm_eps = hp->norm_eps, .rope_theta = hp->rope_theta,
        .tied = hp->tied_output,
    };
    model_decoder_view v;
    int rc = model_decoder_view_get(m, &v);
    if (rc) {
        snprintf(err, errlen, "%s", rc == -ENOTSUP ? "a trainable copy needs F32 weights, and "
                 "this model's matrices stayed quantized" : "out of memory");
        return rc;
    }
    if ((rc = trn_dec_new(out, &s, 0, err, errlen)))
        return rc;
    trn_dec *d = *out;
    /* both views hold the same tensors in the same shapes: copy one by one */
    size_t C = hp->n_embd, V = hp->n_vocab, A = (size_t)hp->n_head * hp->head_dim;
    size_t QKV = trn__qkv(hp), FF = hp->n_ff;
    memcpy(d->w.tok_embd, v.tok_embd, V * C * sizeof(float));
    memcpy(d->w.norm_f_w, v.norm_f_w, C * sizeof(float));
    if (!hp->tied_output)
        memcpy(d->w.output, v.output, V * C * sizeof(float));
    for (int l = 0; l < hp->n_layer; l++) {
        model_layer_view *D = &d->w.layers[l], *S = &v.layers[l];
        memcpy(D->norm1_w, S->norm1_w, C * sizeof(float));
        memcpy(D->wqkv, S->wqkv, QKV * C * sizeof(float));
        memcpy(D->wo, S->wo, C * A * sizeof(float));
        memcpy(D->norm2_w, S->norm2_w, C * sizeof(float));
        memcpy(D->wup, S->wup, 2 * FF * C * sizeof(float));
        memcpy(D->wdown, S->wdown, C * FF * sizeof(float));
    }
    d->hp.bos_id = hp->bos_id;
    d->hp.eos_id = hp->eos_id;
    return 0;
}

void trn_dec_free(trn_dec *d)
{
    if (!d)
        return;
    free(d->w.layers);
    free(d->g.layers);
    free(d->nog.layers);
    free(d->la);
    free(d->warena);
    free(d->garena);
    free(d->inv_freq);
    free(d->act);
    free(d->ibuf);
    free(d);
}

const model_hparams *trn_dec_hp(const trn_dec *d)
{
    return &d->hp;
}

model_arch_id trn_dec_arch(const trn_dec *d)
{
    return d->arch;
}

model_decoder_view *trn_dec_weights(trn_dec *d)
{
    return &d->w;
}

bool trn_dec_owns_weights(const trn_dec *d)
{
    return d->owned;
}

size_t trn_dec_n_weights(const trn_dec *d)
{
    return d->n_weights;
}

void trn_dec_freeze(trn_dec *d, bool frozen)
{
    d->frozen = frozen;
}

/* The gradients backward accumulates into (all NULL: none). */
static model_decoder_view *trn__grads(trn_dec *d)
{
    return d->frozen ? &d->nog : &d->g;
}

void trn_dec_set_lora(trn_dec *d, trn_lora *lo)
{
    d->lora = lo;
}

int trn_dec_params(trn_dec *d, trn_params *ps)
{
    if (!d->owned)
        return -ENOTSUP;
    const model_hparams *hp = &d->hp;
    size_t C = hp->n_embd, V = hp->n_vocab, A = (size_t)hp->n_head * hp->head_dim;
    size_t FF = hp->n_ff, QKV = trn__qkv(hp);
    char name[TRN_PARAM_NAME_MAX];
    int rc = trn_params_add(ps, "token_embd.weight", d->w.tok_embd, d->g.tok_embd, V * C, true);
    rc = rc ? rc : trn_params_add(ps, "output_norm.weight", d->w.norm_f_w, d->g.norm_f_w, C, false);
    if (!hp->tied_output && !rc)
        rc = trn_params_add(ps, "output.weight", d->w.output, d->g.output, V * C, true);
    for (int l = 0; l < hp->n_layer && !rc; l++) {
        model_layer_view *W = &d->w.layers[l], *G = &d->g.layers[l];
#define TRN__P(suffix, field, count, decay)                                              \
        if (!rc) {                                                                       \
            snprintf(name, sizeof(name), "blk.%d.%s", l, suffix);                        \
            rc = trn_params_add(ps, name, W->field, G->field, count, decay);             \
        }
        TRN__P("attn_norm.weight", norm1_w, C, false)
        TRN__P("attn_qkv.weight", wqkv, QKV * C, true)
        TRN__P("attn_output.weight", wo, C * A, true)
        TRN__P("ffn_norm.weight", norm2_w, C, false)
        TRN__P("ffn_gate_up.weight", wup, 2 * FF * C, true)
        TRN__P("ffn_down.weight", wdown, C * FF, true)
#undef TRN__P
    }
    return rc;
}

/* ---- activations -------------------------------------------------------- */

/* Floats a B x L batch needs; carves them when base is not NULL. */
static size_t trn__carve_act(trn_dec *d, float *base, int B, int L)
{
    const model_hparams *hp = &d->hp;
    size_t T = (size_t)B * L, C = hp->n_embd, A = (size_t)hp->n_head * hp->head_dim;
    size_t QKV = trn__qkv(hp), FF = hp->n_ff, FW = trn__fw(d), V = hp->n_vocab;
    size_t P = (size_t)B * hp->n_head * L * L, n = 0;
#define TRN__A(dst, count)                      \
    do {                                        \
        if (base)                               \
            (dst) = base + n;                   \
        n += (count);                           \
    } while (0)
    for (int l = 0; l < hp->n_layer; l++) {
        trn__layer_act *a = &d->la[l];
        TRN__A(a->x_in, T * C);
        TRN__A(a->n1, T * C);
        TRN__A(a->m1, T);
        TRN__A(a->r1, T);
        TRN__A(a->qkv, T * QKV);
        TRN__A(a->probs, P);
        TRN__A(a->att, T * A);
        TRN__A(a->x_mid, T * C);
        TRN__A(a->n2, T * C);
        TRN__A(a->m2, T);
        TRN__A(a->r2, T);
        TRN__A(a->hpre, T * FW);
        TRN__A(a->hact, T * FF);
    }
    TRN__A(d->x_out, T * C);
    TRN__A(d->nf, T * C);
    TRN__A(d->mf, T);
    TRN__A(d->rf, T);
    TRN__A(d->logits, T * V);
    TRN__A(d->lse, T);
    TRN__A(d->dx, T * C);
    TRN__A(d->dn, T * C);
    TRN__A(d->dqkv, T * QKV);
    TRN__A(d->datt, T * A);
    TRN__A(d->dh, T * FF);
    TRN__A(d->dhpre, T * FW);
    TRN__A(d->dS, 2 * (size_t)L * L);
    TRN__A(d->dlora, T * (d->lora ? (size_t)d->lora->cfg.rank : 1));
#undef TRN__A
    return n;
}

/* Grows *buf to hold n elements of size sz (capacity in *cap). */
static int trn__grow(void **buf, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap)
        return 0;
    void *p = realloc(*buf, n * sz);
    if (!p)
        return -ENOMEM;
    *buf = p;
    *cap = n;
    return 0;
}

int trn_dec_reserve(trn_dec *d, int B, int L, char *err, size_t errlen)
{
    size_t need = trn__carve_act(d, NULL, B, L);
    if (trn__grow((void **)&d->act, &d->act_floats, need, sizeof(float)) ||
        trn__grow((void **)&d->ibuf, &d->ibuf_n, 3 * (size_t)B * L + (size_t)B,
                  sizeof(int32_t))) {
        snprintf(err, errlen, "training decoder: out of memory for the activations of a "
                 "%d x %d batch (%zu MiB)", B, L, need * sizeof(float) >> 20);
        return -ENOMEM;
    }
    trn__carve_act(d, d->act, B, L);
    size_t T = (size_t)B * L;
    d->pos = d->ibuf;
    d->tokens = d->pos + T;
    d->targets = d->tokens + T;
    d->lens = d->targets + T;
    d->B = B;
    d->L = L;
    if (d->lora)
        return trn_lora_reserve(d->lora, B * L, err, errlen);
    return 0;
}

size_t trn_dec_act_bytes(const trn_dec *d)
{
    return d->act_floats * sizeof(float);
}

/* ---- forward ------------------------------------------------------------ */

static int trn__check_batch(const trn_dec *d, const trn_batch *b, char *err, size_t errlen)
{
    if (b->B < 1 || b->L < 1 || b->L > d->n_pos || (int64_t)b->B * b->L > (1 << 24)) {
        snprintf(err, errlen, "batch of %d x %d: need at least one sequence of 1..%d tokens",
                 b->B, b->L, d->n_pos);
        return -EINVAL;
    }
    for (int s = 0; s < b->B; s++)
        if (b->lens && (b->lens[s] < 1 || b->lens[s] > b->L)) {
            snprintf(err, errlen, "sequence %d: length %d outside 1..%d", s, b->lens[s], b->L);
            return -EINVAL;
        }
    for (int t = 0; t < b->B * b->L; t++) {
        int32_t tgt = b->targets ? b->targets[t] : -1;
        if (b->tokens[t] < 0 || b->tokens[t] >= d->hp.n_vocab || tgt < -1 ||
            tgt >= d->hp.n_vocab) {
            snprintf(err, errlen, "sequence %d position %d: token %d / target %d outside the "
                     "vocabulary of %d", t / b->L, t % b->L, b->tokens[t], tgt, d->hp.n_vocab);
            return -EINVAL;
        }
    }
    if (!b->targets && !b->hidden_only) {
        snprintf(err, errlen, "batch without targets: only a hidden_only pass has none");
        return -EINVAL;
    }
    return 0;
}

static void trn__norm_fwd(const trn_dec *d, float *out, float *mean, float *rstd,
                          const float *x, const float *w, const float *bias, int T)
{
    if (d->arch == MODEL_ARCH_LLAMA)
        trn_rmsnorm_fwd_f32(out, rstd, x, w, T, d->hp.n_embd, d->hp.norm_eps);
    else
        trn_layernorm_fwd_f32(out, mean, rstd, x, w, bias, T, d->hp.n_embd, d->hp.norm_eps);
}

static void trn__norm_bwd(const trn_dec *d, float *dx, float *dw, float *db, const float *dout,
                          const float *x, const float *w, const float *mean, const float *rstd,
                          int T)
{
    if (d->arch == MODEL_ARCH_LLAMA)
        trn_rmsnorm_bwd_f32(dx, dw, dout, x, w, rstd, T, d->hp.n_embd);
    else
        trn_layernorm_bwd_f32(dx, dw, db, dout, x, w, mean, rstd, T, d->hp.n_embd);
}

/* LoRA contributions of (layer, targets) to y[T, ldy] from x[T, ldx]. */
static void trn__lora_fwd(trn_dec *d, int l, trn_lora_target t0, trn_lora_target t1, float *y,
                          size_t ldy, const float *x, size_t ldx, int T)
{
    for (int t = (int)t0; t <= (int)t1; t++) {
        trn_lora_site *s = trn_lora_site_at(d->lora, l, (trn_lora_target)t);
        if (s)
            trn_lora_site_fwd(d->lora, s, y + s->row0, ldy, x, ldx, T);
    }
}

static void trn__lora_bwd(trn_dec *d, int l, trn_lora_target t0, trn_lora_target t1,
                          float *dx, size_t ldx, const float *dy, size_t ldy, const float *x,
                          int T)
{
    for (int t = (int)t0; t <= (int)t1; t++) {
        trn_lora_site *s = trn_lora_site_at(d->lora, l, (trn_lora_target)t);
        if (s)
            trn_lora_site_bwd(d->lora, s, dx, ldx, dy + s->row0, ldy, x, ldx, T, d->dlora);
    }
}

static void trn__embed(trn_dec *d, float *x, int T)
{
    int C = d->hp.n_embd;
    for (int t = 0; t < T; t++) {
        float *xt = x + (size_t)t * C;
        memcpy(xt, d->w.tok_embd + (size_t)d->tokens[t] * C, (size_t)C * sizeof(float));
        if (d->w.pos_embd) {
            const float *pe = d->w.pos_embd + (size_t)d->pos[t] * C;
            for (int c = 0; c < C; c++)
                xt[c] += pe[c];
        }
    }
}

static void trn__layer_fwd(trn_dec *d, int l, float *x_next)
{
    const model_hparams *hp = &d->hp;
    const model_layer_view *W = &d->w.layers[l];
    trn__layer_act *a = &d->la[l];
    int T = d->B * d->L, C = hp->n_embd, A = hp->n_head * hp->head_dim;
    int KV = hp->n_head_kv * hp->head_dim, QKV = trn__qkv(hp), FF = hp->n_ff, FW = trn__fw(d);

    trn__norm_fwd(d, a->n1, a->m1, a->r1, a->x_in, W->norm1_w, W->norm1_b, T);
    trn_matmul_fwd_f32(a->qkv, QKV, a->n1, C, W->wqkv, W->bqkv, T, C, QKV);
    trn__lora_fwd(d, l, TRN_LORA_Q, TRN_LORA_V, a->qkv, QKV, a->n1, C, T);
    trn__lora_fwd(d, l, TRN_LORA_QKV, TRN_LORA_QKV, a->qkv, QKV, a->n1, C, T);
    if (d->arch == MODEL_ARCH_LLAMA) {
        trn_rope_f32(a->qkv, QKV, d->pos, T, hp->n_head, hp->head_dim, hp->n_rot,
                     hp->rope_layout, d->w.inv_freq, hp->rope_freq_scale, 0);
        trn_rope_f32(a->qkv + A, QKV, d->pos, T, hp->n_head_kv, hp->head_dim, hp->n_rot,
                     hp->rope_layout, d->w.inv_freq, hp->rope_freq_scale, 0);
    }
    trn_attn_fwd_f32(a->att, a->probs, a->qkv, QKV, 0, A, A + KV, d->lens, d->B, d->L,
                     hp->n_head, hp->n_head_kv, hp->head_dim, 1.0f / sqrtf((float)hp->head_dim));
    trn_matmul_fwd_f32(a->x_mid, C, a->att, A, W->wo, W->bo, T, A, C);
    trn__lora_fwd(d, l, TRN_LORA_O, TRN_LORA_O, a->x_mid, C, a->att, A, T);
    ops_add(a->x_mid, a->x_in, (size_t)T * C);

    trn__norm_fwd(d, a->n2, a->m2, a->r2, a->x_mid, W->norm2_w, W->norm2_b, T);
    trn_matmul_fwd_f32(a->hpre, FW, a->n2, C, W->wup, W->bup, T, C, FW);
    trn__lora_fwd(d, l, TRN_LORA_GATE, TRN_LORA_UP, a->hpre, FW, a->n2, C, T);
    if (d->arch == MODEL_ARCH_LLAMA)
        trn_swiglu_fwd_f32(a->hact, a->hpre, T, FF);
    else
        trn_gelu_fwd_f32(a->hact, a->hpre, (size_t)T * FF);
    trn_matmul_fwd_f32(x_next, C, a->hact, FF, W->wdown, W->bdown, T, FF, C);
    trn__lora_fwd(d, l, TRN_LORA_DOWN, TRN_LORA_DOWN, x_next, C, a->hact, FF, T);
    ops_add(x_next, a->x_mid, (size_t)T * C);
}

int trn_dec_forward(trn_dec *d, const trn_batch *b, float *logp, char *err, size_t errlen)
{
    int rc = trn__check_batch(d, b, err, errlen);
    if (rc || (rc = trn_dec_reserve(d, b->B, b->L, err, errlen)))
        return rc;
    const model_hparams *hp = &d->hp;
    int T = b->B * b->L, C = hp->n_embd, V = hp->n_vocab;
    for (int t = 0; t < T; t++)
        d->pos[t] = t % b->L;
    memcpy(d->tokens, b->tokens, (size_t)T * sizeof(int32_t));
    for (int t = 0; t < T; t++)
        d->targets[t] = b->targets ? b->targets[t] : -1;
    for (int s = 0; s < b->B; s++)
        d->lens[s] = b->lens ? b->lens[s] : b->L;

    trn__embed(d, d->la[0].x_in, T);
    for (int l = 0; l < hp->n_layer; l++)
        trn__layer_fwd(d, l, l + 1 < hp->n_layer ? d->la[l + 1].x_in : d->x_out);
    trn__norm_fwd(d, d->nf, d->mf, d->rf, d->x_out, d->w.norm_f_w, d->w.norm_f_b, T);
    if (b->hidden_only)
        return 0;
    trn_matmul_fwd_f32(d->logits, V, d->nf, C, d->w.output, NULL, T, C, V);
    trn_logprob_fwd_f32(logp, d->lse, d->logits, d->targets, T, V);
    return 0;
}

/* ---- backward ----------------------------------------------------------- */

static void trn__zero(float *x, size_t n)
{
    memset(x, 0, n * sizeof(float));
}

/* dx holds d(loss)/d(layer output) on entry, d(loss)/d(layer input) on exit. */
static void trn__layer_bwd(trn_dec *d, int l)
{
    const model_hparams *hp = &d->hp;
    const model_layer_view *W = &d->w.layers[l];
    model_layer_view *G = &trn__grads(d)->layers[l];
    trn__layer_act *a = &d->la[l];
    int T = d->B * d->L, C = hp->n_embd, A = hp->n_head * hp->head_dim;
    int KV = hp->n_head_kv * hp->head_dim, QKV = trn__qkv(hp), FF = hp->n_ff, FW = trn__fw(d);

    /* MLP: out = x_mid + act(norm2(x_mid) Wup^T) Wdown^T */
    trn__zero(d->dh, (size_t)T * FF);
    trn_matmul_bwd_f32(d->dh, FF, G->wdown, G->bdown, d->dx, C, a->hact, W->wdown, T, FF, C);
    trn__lora_bwd(d, l, TRN_LORA_DOWN, TRN_LORA_DOWN, d->dh, FF, d->dx, C, a->hact, T);
    if (d->arch == MODEL_ARCH_LLAMA)
        trn_swiglu_bwd_f32(d->dhpre, d->dh, a->hpre, T, FF);
    else
        trn_gelu_bwd_f32(d->dhpre, d->dh, a->hpre, (size_t)T * FF);
    trn__zero(d->dn, (size_t)T * C);
    trn_matmul_bwd_f32(d->dn, C, G->wup, G->bup, d->dhpre, FW, a->n2, W->wup, T, C, FW);
    trn__lora_bwd(d, l, TRN_LORA_GATE, TRN_LORA_UP, d->dn, C, d->dhpre, FW, a->n2, T);
    trn__norm_bwd(d, d->dx, G->norm2_w, G->norm2_b, d->dn, a->x_mid, W->norm2_w, a->m2, a->r2,
                  T);

    /* attention: x_mid = x_in + attn(rope(norm1(x_in) Wqkv^T)) Wo^T */
    trn__zero(d->datt, (size_t)T * A);
    trn_matmul_bwd_f32(d->datt, A, G->wo, G->bo, d->dx, C, a->att, W->wo, T, A, C);
    trn__lora_bwd(d, l, TRN_LORA_O, TRN_LORA_O, d->datt, A, d->dx, C, a->att, T);
    trn__zero(d->dqkv, (size_t)T * QKV);
    trn_attn_bwd_f32(d->dqkv, d->datt, a->qkv, QKV, 0, A, A + KV, a->probs, d->lens, d->B,
                     d->L, hp->n_head, hp->n_head_kv, hp->head_dim,
                     1.0f / sqrtf((float)hp->head_dim), d->dS);
    if (d->arch == MODEL_ARCH_LLAMA) {
        trn_rope_f32(d->dqkv, QKV, d->pos, T, hp->n_head, hp->head_dim, hp->n_rot,
                     hp->rope_layout, d->w.inv_freq, hp->rope_freq_scale, 1);
        trn_rope_f32(d->dqkv + A, QKV, d->pos, T, hp->n_head_kv, hp->head_dim, hp->n_rot,
                     hp->rope_layout, d->w.inv_freq, hp->rope_freq_scale, 1);
    }
    trn__zero(d->dn, (size_t)T * C);
    trn_matmul_bwd_f32(d->dn, C, G->wqkv, G->bqkv, d->dqkv, QKV, a->n1, W->wqkv, T, C, QKV);
    trn__lora_bwd(d, l, TRN_LORA_Q, TRN_LORA_V, d->dn, C, d->dqkv, QKV, a->n1, T);
    trn__lora_bwd(d, l, TRN_LORA_QKV, TRN_LORA_QKV, d->dn, C, d->dqkv, QKV, a->n1, T);
    trn__norm_bwd(d, d->dx, G->norm1_w, G->norm1_b, d->dn, a->x_in, W->norm1_w, a->m1, a->r1,
                  T);
}

/* The backward pass below the final norm's output, whose gradient is in dn. */
static void trn__backward_from_hidden(trn_dec *d)
{
    const model_hparams *hp = &d->hp;
    int T = d->B * d->L, C = hp->n_embd;
    model_decoder_view *g = trn__grads(d);
    trn__zero(d->dx, (size_t)T * C);
    trn__norm_bwd(d, d->dx, g->norm_f_w, g->norm_f_b, d->dn, d->x_out, d->w.norm_f_w, d->mf,
                  d->rf, T);
    for (int l = hp->n_layer - 1; l >= 0; l--)
        trn__layer_bwd(d, l);
    if (g->tok_embd)
        trn_embed_bwd_f32(g->tok_embd, d->dx, d->tokens, T, C);
    if (g->pos_embd)
        trn_embed_bwd_f32(g->pos_embd, d->dx, d->pos, T, C);
}

void trn_dec_backward(trn_dec *d, const float *dlogp)
{
    const model_hparams *hp = &d->hp;
    int T = d->B * d->L, C = hp->n_embd, V = hp->n_vocab;
    /* the logits are not needed again: their gradient replaces them */
    trn_logprob_bwd_f32(d->logits, d->logits, d->lse, d->targets, dlogp, T, V);
    trn__zero(d->dn, (size_t)T * C);
    trn_matmul_bwd_f32(d->dn, C, trn__grads(d)->output, NULL, d->logits, V, d->nf, d->w.output,
                       T, C, V);
    trn__backward_from_hidden(d);
}

const float *trn_dec_hidden(const trn_dec *d)
{
    return d->nf;
}

void trn_dec_backward_hidden(trn_dec *d, const float *dhidden)
{
    memcpy(d->dn, dhidden, (size_t)d->B * d->L * d->hp.n_embd * sizeof(float));
    trn__backward_from_hidden(d);
}
