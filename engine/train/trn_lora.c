/* trn_lora.c - LoRA adapters: sites, init, forward/backward at a site,
 * merging (trn_lora.h). */
#include "trn_lora.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const trn_lora__names[TRN_LORA_N_TARGETS] = {
    "q", "k", "v", "o", "gate", "up", "down", "qkv",
};

const char *trn_lora_target_name(trn_lora_target t)
{
    return t >= 0 && t < TRN_LORA_N_TARGETS ? trn_lora__names[t] : "?";
}

int trn_lora_targets_parse(const char *list, unsigned *mask, char *err, size_t errlen)
{
    *mask = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == 3 && strncmp(p, "all", 3) == 0)
            *mask |= TRN_LORA_ALL;
        else {
            int t = 0;
            while (t < TRN_LORA_N_TARGETS &&
                   !(strlen(trn_lora__names[t]) == n && strncmp(p, trn_lora__names[t], n) == 0))
                t++;
            if (t == TRN_LORA_N_TARGETS) {
                snprintf(err, errlen, "LoRA target '%.*s' is not one of q, k, v, o, gate, up, "
                         "down, qkv, all", (int)n, p);
                return -EINVAL;
            }
            *mask |= 1u << t;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (!*mask) {
        snprintf(err, errlen, "no LoRA target given (q, k, v, o, gate, up, down, all)");
        return -EINVAL;
    }
    return 0;
}

/* Shape of target t in a decoder: input and output widths and the first
 * row in its (fused) weight matrix. */
static void trn_lora__shape(model_arch_id arch, const model_hparams *hp, trn_lora_target t,
                            int *in, int *out, int *row0)
{
    int C = hp->n_embd, A = hp->n_head * hp->head_dim, KV = hp->n_head_kv * hp->head_dim;
    int FF = hp->n_ff;
    int gated = arch == MODEL_ARCH_LLAMA;
    *in = C;
    *row0 = 0;
    switch (t) {
    case TRN_LORA_Q: *out = A; break;
    case TRN_LORA_K: *out = KV; *row0 = A; break;
    case TRN_LORA_V: *out = KV; *row0 = A + KV; break;
    case TRN_LORA_O: *in = A; *out = C; break;
    case TRN_LORA_GATE: *out = FF; break;
    case TRN_LORA_UP: *out = FF; *row0 = gated ? FF : 0; break;
    case TRN_LORA_QKV: *out = A + 2 * KV; break;
    default: *in = FF; *out = C; break;
    }
}

static int trn_lora__check(model_arch_id arch, const trn_lora_cfg *cfg, char *err,
                           size_t errlen)
{
    if (arch != MODEL_ARCH_LLAMA && arch != MODEL_ARCH_GPT2) {
        snprintf(err, errlen, "LoRA needs a decoder (llama or gpt2)");
        return -ENOTSUP;
    }
    if (cfg->rank < 1 || cfg->rank > 4096 || !(cfg->alpha > 0) || !(cfg->dropout >= 0) ||
        cfg->dropout >= 1 || !cfg->targets || cfg->targets >> TRN_LORA_N_TARGETS) {
        snprintf(err, errlen, "LoRA: rank %d, alpha %g, dropout %g: need rank in [1, 4096], "
                 "alpha > 0, dropout in [0, 1) and some targets", cfg->rank,
                 (double)cfg->alpha, (double)cfg->dropout);
        return -EINVAL;
    }
    unsigned qkv = 1u << TRN_LORA_Q | 1u << TRN_LORA_K | 1u << TRN_LORA_V;
    if ((cfg->targets & (1u << TRN_LORA_QKV)) && (cfg->targets & qkv)) {
        snprintf(err, errlen, "LoRA target 'qkv' covers q, k and v: do not add them too");
        return -EINVAL;
    }
    if (arch == MODEL_ARCH_GPT2 && (cfg->targets & (1u << TRN_LORA_GATE))) {
        snprintf(err, errlen, "LoRA target 'gate': gpt2 has no gated MLP (use up)");
        return -EINVAL;
    }
    return 0;
}

int trn_lora_new(trn_lora **out, model_arch_id arch, const model_hparams *hp,
                 const trn_lora_cfg *cfg, char *err, size_t errlen)
{
    *out = NULL;
    int rc = trn_lora__check(arch, cfg, err, errlen);
    if (rc)
        return rc;
    unsigned targets = cfg->targets;
    if (arch == MODEL_ARCH_GPT2)
        targets &= ~(1u << TRN_LORA_GATE);
    trn_lora *lo = calloc(1, sizeof(*lo));
    if (!lo)
        goto nomem;
    lo->cfg = *cfg;
    lo->cfg.targets = targets;
    lo->scale = cfg->alpha / (float)cfg->rank;
    lo->n_layer = hp->n_layer;
    lo->enabled = true;
    rng_seed(&lo->drop_rng, cfg->seed ^ 0x9e3779b97f4a7c15ull);
    int per_layer = __builtin_popcount(targets);
    lo->sites = calloc((size_t)hp->n_layer * per_layer, sizeof(*lo->sites));
    lo->index = malloc((size_t)hp->n_layer * sizeof(*lo->index));
    if (!lo->sites || !lo->index)
        goto nomem;
    size_t total = 0;
    for (int l = 0; l < hp->n_layer; l++)
        for (int t = 0; t < TRN_LORA_N_TARGETS; t++) {
            lo->index[l][t] = -1;
            if (!(targets & (1u << t)))
                continue;
            trn_lora_site *s = &lo->sites[lo->n_sites];
            lo->index[l][t] = lo->n_sites++;
            s->layer = l;
            s->target = (trn_lora_target)t;
            trn_lora__shape(arch, hp, s->target, &s->in, &s->out, &s->row0);
            total += 2 * (size_t)cfg->rank * (s->in + s->out);
        }
    lo->mem = calloc(total, sizeof(float));
    if (!lo->mem)
        goto nomem;
    rng init;
    rng_seed(&init, cfg->seed);
    float *p = lo->mem;
    for (int i = 0; i < lo->n_sites; i++) {
        trn_lora_site *s = &lo->sites[i];
        size_t na = (size_t)cfg->rank * s->in, nb = (size_t)s->out * cfg->rank;
        s->A = p, p += na;
        s->B = p, p += nb;
        s->dA = p, p += na;
        s->dB = p, p += nb;
        double bound = 1.0 / sqrt((double)s->in);
        for (size_t j = 0; j < na; j++)
            s->A[j] = (float)((2 * rng_uniform(&init) - 1) * bound);
    }
    *out = lo;
    return 0;
nomem:
    trn_lora_free(lo);
    snprintf(err, errlen, "LoRA: out of memory");
    return -ENOMEM;
}

void trn_lora_free(trn_lora *lo)
{
    if (!lo)
        return;
    free(lo->sites);
    free(lo->index);
    free(lo->mem);
    free(lo->act);
    free(lo);
}

int trn_lora_reserve(trn_lora *lo, int T, char *err, size_t errlen)
{
    if (T <= lo->act_tokens)
        return 0;
    int r = lo->cfg.rank;
    bool drop = lo->cfg.dropout > 0;
    size_t total = 0;
    for (int i = 0; i < lo->n_sites; i++)
        total += (size_t)T * (r + (drop ? 2 * (size_t)lo->sites[i].in : 0));
    float *act = realloc(lo->act, total * sizeof(float));
    if (!act) {
        snprintf(err, errlen, "LoRA: out of memory for the activations of %d tokens", T);
        return -ENOMEM;
    }
    lo->act = act;
    lo->act_tokens = T;
    for (int i = 0; i < lo->n_sites; i++) {
        trn_lora_site *s = &lo->sites[i];
        s->u = act, act += (size_t)T * r;
        s->xd = drop ? act : NULL;
        act += drop ? 2 * (size_t)T * s->in : 0; /* dropped input, then its mask */
    }
    return 0;
}

trn_lora_site *trn_lora_site_at(trn_lora *lo, int layer, trn_lora_target t)
{
    if (!lo || !lo->enabled)
        return NULL;
    int i = lo->index[layer][t];
    return i < 0 ? NULL : &lo->sites[i];
}

int trn_lora_params(trn_lora *lo, trn_params *ps)
{
    char name[TRN_PARAM_NAME_MAX];
    int r = lo->cfg.rank;
    for (int i = 0; i < lo->n_sites; i++) {
        trn_lora_site *s = &lo->sites[i];
        const char *t = trn_lora_target_name(s->target);
        snprintf(name, sizeof(name), "blk.%d.%s.lora_A", s->layer, t);
        if (trn_params_add(ps, name, s->A, s->dA, (size_t)r * s->in, false))
            return -ENOMEM;
        snprintf(name, sizeof(name), "blk.%d.%s.lora_B", s->layer, t);
        if (trn_params_add(ps, name, s->B, s->dB, (size_t)s->out * r, false))
            return -ENOMEM;
    }
    return 0;
}

/* Draws the dropout mask into xd's second half and writes the dropped
 * input into its first: PEFT's nn.Dropout (kept values scaled 1/(1-p)). */
static const float *trn_lora__dropout(trn_lora *lo, trn_lora_site *s, const float *x,
                                      size_t ldx, int T)
{
    float *xd = s->xd, *mask = s->xd + (size_t)T * s->in;
    float keep = 1.0f / (1.0f - lo->cfg.dropout);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < s->in; i++) {
            size_t j = (size_t)t * s->in + i;
            mask[j] = rng_uniform(&lo->drop_rng) < lo->cfg.dropout ? 0.0f : keep;
            xd[j] = x[(size_t)t * ldx + i] * mask[j];
        }
    return xd;
}

static bool trn_lora__dropping(const trn_lora *lo)
{
    return lo->training && lo->cfg.dropout > 0;
}

void trn_lora_site_fwd(trn_lora *lo, trn_lora_site *s, float *y, size_t ldy, const float *x,
                       size_t ldx, int T)
{
    int r = lo->cfg.rank;
    if (trn_lora__dropping(lo)) {
        x = trn_lora__dropout(lo, s, x, ldx, T);
        ldx = (size_t)s->in;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, r, s->in, 1.0f, x, (int)ldx, s->A,
                s->in, 0.0f, s->u, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, s->out, r, lo->scale, s->u, r, s->B,
                r, 1.0f, y, (int)ldy);
}

void trn_lora_site_bwd(trn_lora *lo, trn_lora_site *s, float *dx, size_t ldx, const float *dy,
                       size_t ldy, const float *x, size_t ldx_in, int T, float *scratch)
{
    int r = lo->cfg.rank;
    bool drop = trn_lora__dropping(lo);
    if (drop) {
        x = s->xd;
        ldx_in = (size_t)s->in;
    }
    float *du = scratch;
    /* y += scale u B^T with u = A x: dB += scale dy^T u; du = scale dy B */
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, s->out, r, T, lo->scale, dy, (int)ldy,
                s->u, r, 1.0f, s->dB, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, r, s->out, lo->scale, dy,
                (int)ldy, s->B, r, 0.0f, du, r);
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r, s->in, T, 1.0f, du, r, x,
                (int)ldx_in, 1.0f, s->dA, s->in);
    if (!dx)
        return;
    if (!drop) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, s->in, r, 1.0f, du, r, s->A,
                    s->in, 1.0f, dx, (int)ldx);
        return;
    }
    /* through the mask: dx += (du A) * mask, a row at a time */
    const float *mask = s->xd + (size_t)T * s->in;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < s->in; i++) {
            float g = 0.0f;
            for (int k = 0; k < r; k++)
                g += du[(size_t)t * r + k] * s->A[(size_t)k * s->in + i];
            dx[(size_t)t * ldx + i] += g * mask[(size_t)t * s->in + i];
        }
}

/* The weight matrix a target lives in. */
static float *trn_lora__weight(model_layer_view *L, trn_lora_target t)
{
    switch (t) {
    case TRN_LORA_Q: case TRN_LORA_K: case TRN_LORA_V: case TRN_LORA_QKV: return L->wqkv;
    case TRN_LORA_O: return L->wo;
    case TRN_LORA_GATE: case TRN_LORA_UP: return L->wup;
    default: return L->wdown;
    }
}

void trn_lora_merge(const trn_lora *lo, model_decoder_view *v, float sign)
{
    int r = lo->cfg.rank;
    for (int i = 0; i < lo->n_sites; i++) {
        const trn_lora_site *s = &lo->sites[i];
        float *W = trn_lora__weight(&v->layers[s->layer], s->target) + (size_t)s->row0 * s->in;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->out, s->in, r,
                    sign * lo->scale, s->B, r, s->A, s->in, 1.0f, W, s->in);
    }
}
