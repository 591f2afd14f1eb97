/* arch_gpt2.c - the GPT-2 decoder: learned absolute positions, pre-LN blocks
 * (LayerNorm with bias), fused QKV, GELU (tanh approximation) MLP, final
 * ln_f, output tied to the token embedding (HF) or stored (GGUF).
 *
 * HF GPT-2 uses Conv1D layers whose weights are stored [in, out]; they are
 * transposed at load to [out, in] so every matmul has the nn.Linear layout.
 * GGUF (llama.cpp's converter) already stores them [out, in]. HF keys may
 * carry the "transformer." prefix (GPT2LMHeadModel) or not (OpenAI's gpt2
 * checkpoint, which also holds h.N.attn.bias mask buffers, ignored here).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

typedef struct gpt2__layer {
    float *ln1_w, *ln1_b;   /* [C] */
    float *wqkv, *bqkv;     /* [3C, C], [3C]: q rows, k rows, v rows */
    float *wo, *bo;         /* [C, C], [C] */
    float *ln2_w, *ln2_b;   /* [C] */
    float *wfc, *bfc;       /* [FF, C], [FF] */
    float *wproj, *bproj;   /* [C, FF], [C] */
} gpt2__layer;

typedef struct gpt2__impl {
    float *wte;             /* [V, C] */
    float *wpe;             /* [P, C] */
    float *lnf_w, *lnf_b;   /* [C] */
    float *output;          /* [V, C]; == wte when tied */
    gpt2__layer *layers;
    float *scratch;
    float *x;               /* [T, C] */
    float *xb;              /* [T, C] */
    float *qkv;             /* [T, 3C] */
    float *attn;            /* [T, C] */
    float *h;               /* [T, FF] */
    float *att;             /* [n_ctx] */
} gpt2__impl;

/* ---- hyper-parameters ---------------------------------------------------- */

static int gpt2__hparams(model *m, const model_src *src, char *err, size_t errlen)
{
    model_hparams *hp = &m->hp;
    int rc;
    double d;
    if (src->fmt == MODEL_FMT_GGUF) {
        if ((rc = model_gguf_int(src, ".embedding_length", 0, true, &hp->n_embd, err, errlen)) ||
            (rc = model_gguf_int(src, ".block_count", 0, true, &hp->n_layer, err, errlen)) ||
            (rc = model_gguf_int(src, ".attention.head_count", 0, true, &hp->n_head, err,
                                 errlen)) ||
            (rc = model_gguf_int(src, ".feed_forward_length", 4 * hp->n_embd, false,
                                 &hp->n_ff, err, errlen)) ||
            (rc = model_gguf_int(src, ".context_length", 0, true, &hp->n_ctx_train, err,
                                 errlen)) ||
            (rc = model_gguf_float(src, ".attention.layer_norm_epsilon", 1e-5, &d, err,
                                   errlen)))
            return rc;
        wt_view v, o;
        if ((rc = model_src_tensor(src, "token_embd.weight", &v, false, err, errlen)) ||
            (rc = model_src_tensor(src, "output.weight", &o, true, err, errlen)))
            return rc;
        if (v.n_dims != 2 || v.shape[0] < 1 || v.shape[0] > INT32_MAX) {
            snprintf(err, errlen, "%s: tensor token_embd.weight is not [V, C]", src->path);
            return -EINVAL;
        }
        hp->n_vocab = (int)v.shape[0];
        hp->tied_output = o.data == NULL;
        hp->bos_id = model_token_id(src, "tokenizer.ggml.bos_token_id");
        hp->eos_id = model_token_id(src, "tokenizer.ggml.eos_token_id");
    } else {
        if ((rc = model_hf_int(src, "n_embd", 0, true, &hp->n_embd, err, errlen)) ||
            (rc = model_hf_int(src, "n_layer", 0, true, &hp->n_layer, err, errlen)) ||
            (rc = model_hf_int(src, "n_head", 0, true, &hp->n_head, err, errlen)) ||
            (rc = model_hf_int(src, "n_inner", 4 * (int64_t)hp->n_embd, false, &hp->n_ff, err,
                               errlen)) ||
            (rc = model_hf_int(src, "n_positions", 1024, false, &hp->n_ctx_train, err,
                               errlen)) ||
            (rc = model_hf_int(src, "vocab_size", 0, true, &hp->n_vocab, err, errlen)) ||
            (rc = model_hf_float(src, "layer_norm_epsilon", 1e-5, &d, err, errlen)))
            return rc;
        const char *act = "gelu_new";
        st_error se = {0};
        hf_config_str(src->cfg, "activation_function", "gelu_new", &act, &se);
        if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
            snprintf(err, errlen, "%s/config.json: activation_function '%s' is not supported "
                     "(gelu_new)", src->path, act);
            return -ENOTSUP;
        }
        bool flag = false;
        hf_config_bool(src->cfg, "scale_attn_by_inverse_layer_idx", false, &flag, &se);
        if (flag) {
            snprintf(err, errlen, "%s/config.json: scale_attn_by_inverse_layer_idx is not "
                     "supported", src->path);
            return -ENOTSUP;
        }
        hp->tied_output = true;
        hp->bos_id = model_token_id(src, "bos_token_id");
        hp->eos_id = model_token_id(src, "eos_token_id");
    }
    hp->norm_eps = (float)d;
    hp->n_head_kv = hp->n_head;
    if (hp->n_embd % hp->n_head != 0 || hp->n_embd > (1 << 20) || hp->n_ff > (1 << 20) ||
        hp->n_layer > 4096 || hp->n_vocab > (1 << 24) || hp->n_ctx_train > (1 << 24)) {
        snprintf(err, errlen, "%s: unsupported gpt2 shape (C %d, heads %d, FF %d, layers %d)",
                 src->path, hp->n_embd, hp->n_head, hp->n_ff, hp->n_layer);
        return -EINVAL;
    }
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_rot = 0;
    hp->rope_theta = 0.0;
    return 0;
}

/* ---- weights ------------------------------------------------------------- */

static int gpt2__bind(model *m, const model_src *src, gpt2__impl *im, char *err,
                      size_t errlen)
{
    const model_hparams *hp = &m->hp;
    bool gg = src->fmt == MODEL_FMT_GGUF;
    int64_t C = hp->n_embd, V = hp->n_vocab, FF = hp->n_ff, P = hp->n_ctx_train;
    const char *pre = "";
    if (!gg && hf_dir_find(src->hf, "transformer.wte.weight"))
        pre = "transformer.";
    char name[160];
    int rc;
    /* Takes arena space for one weight and loads it under its GGUF or HF
     * name; names are formats with the layer index n (top-level names use
     * "%.0d", which prints nothing for n = 0). */
#define GPT2__W(dst, n, gname, hname, rows, cols, tr)                                     \
    do {                                                                                  \
        if ((rc = model_take(m, (size_t)((rows) > 0 ? (rows) : 1) * (size_t)(cols), &(dst),     \
                             err, errlen)))                                               \
            return rc;                                                                    \
        if (gg)                                                                           \
            snprintf(name, sizeof(name), gname, n);                                       \
        else                                                                              \
            snprintf(name, sizeof(name), "%s" hname, pre, n);                             \
        if ((rc = model_src_load(src, name, rows, cols, tr, dst, err, errlen)))           \
            return rc;                                                                    \
    } while (0)

    GPT2__W(im->wte, 0, "token_embd.weight%.0d", "wte.weight%.0d", V, C, 0);
    GPT2__W(im->wpe, 0, "position_embd.weight%.0d", "wpe.weight%.0d", P, C, 0);
    GPT2__W(im->lnf_w, 0, "output_norm.weight%.0d", "ln_f.weight%.0d", 0, C, 0);
    GPT2__W(im->lnf_b, 0, "output_norm.bias%.0d", "ln_f.bias%.0d", 0, C, 0);
    if (hp->tied_output)
        im->output = im->wte;
    else
        GPT2__W(im->output, 0, "output.weight%.0d", "lm_head.weight%.0d", V, C, 0);
    for (int l = 0; l < hp->n_layer; l++) {
        gpt2__layer *L = &im->layers[l];
        int tr = gg ? 0 : 1; /* HF Conv1D: [in, out] */
        GPT2__W(L->ln1_w, l, "blk.%d.attn_norm.weight", "h.%d.ln_1.weight", 0, C, 0);
        GPT2__W(L->ln1_b, l, "blk.%d.attn_norm.bias", "h.%d.ln_1.bias", 0, C, 0);
        GPT2__W(L->wqkv, l, "blk.%d.attn_qkv.weight", "h.%d.attn.c_attn.weight", 3 * C, C, tr);
        GPT2__W(L->bqkv, l, "blk.%d.attn_qkv.bias", "h.%d.attn.c_attn.bias", 0, 3 * C, 0);
        GPT2__W(L->wo, l, "blk.%d.attn_output.weight", "h.%d.attn.c_proj.weight", C, C, tr);
        GPT2__W(L->bo, l, "blk.%d.attn_output.bias", "h.%d.attn.c_proj.bias", 0, C, 0);
        GPT2__W(L->ln2_w, l, "blk.%d.ffn_norm.weight", "h.%d.ln_2.weight", 0, C, 0);
        GPT2__W(L->ln2_b, l, "blk.%d.ffn_norm.bias", "h.%d.ln_2.bias", 0, C, 0);
        GPT2__W(L->wfc, l, "blk.%d.ffn_up.weight", "h.%d.mlp.c_fc.weight", FF, C, tr);
        GPT2__W(L->bfc, l, "blk.%d.ffn_up.bias", "h.%d.mlp.c_fc.bias", 0, FF, 0);
        GPT2__W(L->wproj, l, "blk.%d.ffn_down.weight", "h.%d.mlp.c_proj.weight", C, FF, tr);
        GPT2__W(L->bproj, l, "blk.%d.ffn_down.bias", "h.%d.mlp.c_proj.bias", 0, C, 0);
    }
#undef GPT2__W
    return 0;
}

static int gpt2__load(model *m, const model_src *src, char *err, size_t errlen)
{
    int rc = gpt2__hparams(m, src, err, errlen);
    if (rc)
        return rc;
    const model_hparams *hp = &m->hp;
    /* learned positions: no position past the table */
    if (m->n_ctx <= 0 || m->n_ctx > hp->n_ctx_train)
        m->n_ctx = hp->n_ctx_train;

    gpt2__impl *im = calloc(1, sizeof(*im));
    if (!im)
        goto nomem;
    m->impl = im;
    im->layers = calloc((size_t)hp->n_layer, sizeof(*im->layers));
    if (!im->layers)
        goto nomem;
    wt_arena_count(&m->warena);
    if ((rc = gpt2__bind(m, src, im, err, errlen)))
        return rc;
    if ((rc = wt_arena_alloc(&m->warena, err, errlen)) ||
        (rc = gpt2__bind(m, src, im, err, errlen)))
        return rc;

    size_t T = (size_t)m->n_batch, C = (size_t)hp->n_embd, FF = (size_t)hp->n_ff;
    size_t n = T * (2 * C + 3 * C + C + FF) + (size_t)m->n_ctx;
    im->scratch = malloc(n * sizeof(float));
    if (!im->scratch)
        goto nomem;
    float *s = im->scratch;
    im->x = s;    s += T * C;
    im->xb = s;   s += T * C;
    im->qkv = s;  s += T * 3 * C;
    im->attn = s; s += T * C;
    im->h = s;    s += T * FF;
    im->att = s;
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory allocating the gpt2 model", src->path);
    return -ENOMEM;
}

static void gpt2__free(model *m)
{
    gpt2__impl *im = m->impl;
    if (!im)
        return;
    free(im->layers);
    free(im->scratch);
    free(im);
    m->impl = NULL;
}

/* ---- forward ------------------------------------------------------------- */

static void gpt2__forward(model *m, kv_cache *kv, const model_batch *b, float *logits,
                          float *hidden)
{
    const model_hparams *hp = &m->hp;
    gpt2__impl *im = m->impl;
    int T = b->n_tokens, C = hp->n_embd, FF = hp->n_ff, V = hp->n_vocab;
    float eps = hp->norm_eps;
    float *x = im->x, *xb = im->xb, *qkv = im->qkv;

    for (int t = 0; t < T; t++) {
        float *xt = x + (size_t)t * C;
        const float *te = im->wte + (size_t)b->token[t] * C;
        const float *pe = im->wpe + (size_t)b->pos[t] * C;
        for (int c = 0; c < C; c++)
            xt[c] = te[c] + pe[c];
    }
    for (int l = 0; l < hp->n_layer; l++) {
        const gpt2__layer *L = &im->layers[l];
        for (int t = 0; t < T; t++)
            ops_layernorm(xb + (size_t)t * C, x + (size_t)t * C, L->ln1_w, L->ln1_b, C, eps);
        ops_matmul(qkv, (size_t)3 * C, xb, L->wqkv, L->bqkv, T, C, 3 * C);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_QKV, qkv, (size_t)3 * C, xb, (size_t)C);
        model_attend(m, kv, l, b, qkv, qkv + C, qkv + 2 * C, (size_t)3 * C, im->attn,
                     (size_t)C, im->att);
        ops_matmul(xb, (size_t)C, im->attn, L->wo, L->bo, T, C, C);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_O, xb, (size_t)C, im->attn, (size_t)C);
        ops_add(x, xb, (size_t)T * C);
        for (int t = 0; t < T; t++)
            ops_layernorm(xb + (size_t)t * C, x + (size_t)t * C, L->ln2_w, L->ln2_b, C, eps);
        ops_matmul(im->h, (size_t)FF, xb, L->wfc, L->bfc, T, C, FF);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_UP, im->h, (size_t)FF, xb, (size_t)C);
        ops_gelu_tanh(im->h, (size_t)T * FF);
        ops_matmul(xb, (size_t)C, im->h, L->wproj, L->bproj, T, FF, C);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_DOWN, xb, (size_t)C, im->h, (size_t)FF);
        ops_add(x, xb, (size_t)T * C);
    }
    if (hidden) {
        /* model_encode: every token after ln_f, no output projection */
        for (int t = 0; t < T; t++)
            ops_layernorm(hidden + (size_t)t * C, x + (size_t)t * C, im->lnf_w, im->lnf_b, C,
                          eps);
        return;
    }
    if (!logits)
        return;
    int n = model_gather_rows(b, x, C);
    for (int i = 0; i < n; i++)
        ops_layernorm(xb + (size_t)i * C, x + (size_t)i * C, im->lnf_w, im->lnf_b, C, eps);
    if (n > 0)
        ops_matmul(logits, (size_t)V, xb, im->output, NULL, n, C, V);
}

static void gpt2__view(model *m, model_decoder_view *v)
{
    gpt2__impl *im = m->impl;
    v->tok_embd = im->wte;
    v->pos_embd = im->wpe;
    v->norm_f_w = im->lnf_w;
    v->norm_f_b = im->lnf_b;
    v->output = im->output;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const gpt2__layer *L = &im->layers[l];
        v->layers[l] = (model_layer_view){
            .norm1_w = L->ln1_w, .norm1_b = L->ln1_b, .wqkv = L->wqkv, .bqkv = L->bqkv,
            .wo = L->wo, .bo = L->bo, .norm2_w = L->ln2_w, .norm2_b = L->ln2_b,
            .wup = L->wfc, .bup = L->bfc, .wdown = L->wproj, .bdown = L->bproj,
        };
    }
}

const model_arch_ops model_arch_gpt2_ops = {
    .view = gpt2__view,
    .load = gpt2__load,
    .forward = gpt2__forward,
    .free = gpt2__free,
};
