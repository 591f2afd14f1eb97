/* arch_llama.c - the LLaMA decoder: RMSNorm, RoPE, SwiGLU MLP, grouped-query
 * attention, tied or untied output.
 *
 * Weights are converted to F32 at load into the model's arena, with q, k and
 * v fused into one [NH*HS + 2*NKV*HS, C] matrix and gate/up into one
 * [2*FF, C] matrix, so a layer runs four GEMMs (GEMVs when decoding).
 * A GGUF's Q8_0 / Q4_0 matrices stay quantized instead (unless the model
 * is loaded with f32_weights), fused the same way in a byte arena, and run
 * through qmat.h; a quantized token embedding is dequantized row by row at
 * lookup, and serves as the tied output matrix as it is.
 *
 * RoPE layout follows the source: GGUF q/k rows were permuted by the
 * converter for GGML's adjacent-pair rotation; HF safetensors use
 * rotate_half (dim i pairs with i + HS/2).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "qmat.h"

/* packed matrices start on a cache line: the 512-bit kernels' loads are
 * then aligned */
#define LLAMA__ALIGN64(n) (((n) + 63) & ~(size_t)63)

/* A matrix: F32 in the arena, or quantized (q.data != NULL, f NULL). */
typedef struct llama__mat {
    float *f;
    qm_mat q;
} llama__mat;

typedef struct llama__layer {
    float *attn_norm;  /* [C] */
    llama__mat wqkv;   /* [NH*HS + 2*NKV*HS, C] q rows, then k, then v */
    llama__mat wo;     /* [C, NH*HS] */
    float *ffn_norm;   /* [C] */
    llama__mat wgu;    /* [2*FF, C] gate rows, then up */
    llama__mat wdown;  /* [C, FF] */
} llama__layer;

typedef struct llama__impl {
    llama__mat tok_embd; /* [V, C] */
    float *out_norm;   /* [C] */
    llama__mat output; /* [V, C]; == tok_embd when tied */
    llama__layer *layers;
    uint8_t *qarena;   /* the quantized matrices (one allocation) */
    size_t qused;      /* bytes handed out (counted in the first pass) */
    void *qscratch;    /* quantized activations of n_batch rows */
    float *inv_freq;   /* [n_rot / 2] */
    /* scratch for n_batch tokens (one allocation) */
    float *scratch;
    float *x;          /* [T, C] residual stream */
    float *xb;         /* [T, C] */
    float *qkv;        /* [T, NH*HS + 2*NKV*HS] */
    float *attn;       /* [T, NH*HS] */
    float *gu;         /* [T, 2*FF] */
    float *hb;         /* [T, FF] */
    float *att;        /* [n_ctx] attention scores */
} llama__impl;

/* ---- hyper-parameters ---------------------------------------------------- */

static int llama__hparams_gguf(model *m, const model_src *src, char *err,
                               size_t errlen)
{
    model_hparams *hp = &m->hp;
    int rc;
    double d;
    if ((rc = model_gguf_int(src, ".embedding_length", 0, true, &hp->n_embd, err, errlen)) ||
        (rc = model_gguf_int(src, ".block_count", 0, true, &hp->n_layer, err, errlen)) ||
        (rc = model_gguf_int(src, ".feed_forward_length", 0, true, &hp->n_ff, err, errlen)) ||
        (rc = model_gguf_int(src, ".attention.head_count", 0, true, &hp->n_head, err, errlen)) ||
        (rc = model_gguf_int(src, ".attention.head_count_kv", hp->n_head, false,
                             &hp->n_head_kv, err, errlen)) ||
        (rc = model_gguf_int(src, ".context_length", 2048, false, &hp->n_ctx_train, err, errlen)))
        return rc;
    if (hp->n_embd % hp->n_head != 0)
        goto bad_heads;
    if ((rc = model_gguf_int(src, ".attention.key_length", hp->n_embd / hp->n_head, false,
                             &hp->head_dim, err, errlen)) ||
        (rc = model_gguf_int(src, ".rope.dimension_count", hp->head_dim, false,
                             &hp->n_rot, err, errlen)))
        return rc;
    if ((rc = model_gguf_float(src, ".rope.freq_base", 10000.0, &hp->rope_theta, err, errlen)))
        return rc;
    if ((rc = model_gguf_float(src, ".attention.layer_norm_rms_epsilon", 1e-5, &d, err, errlen)))
        return rc;
    hp->norm_eps = (float)d;
    const char *stype = NULL;
    if (gguf_get_str(src->gguf, "llama.rope.scaling.type", &stype, NULL, NULL, 0) == 0 &&
        strcmp(stype, "none") != 0) {
        if (strcmp(stype, "linear") != 0) {
            snprintf(err, errlen, "%s: llama.rope.scaling.type '%s' is not supported",
                     src->path, stype);
            return -ENOTSUP;
        }
        if ((rc = model_gguf_float(src, ".rope.scaling.factor", 1.0, &d, err, errlen)))
            return rc;
        if (d > 0)
            hp->rope_freq_scale = (float)(1.0 / d);
    } else if (model_gguf_float(src, ".rope.scale_linear", 1.0, &d, NULL, 0) == 0 && d > 0) {
        hp->rope_freq_scale = (float)(1.0 / d);
    }
    hp->rope_layout = OPS_ROPE_ADJACENT;
    wt_view v;
    if ((rc = model_src_tensor(src, "token_embd.weight", &v, false, err, errlen)))
        return rc;
    if (v.n_dims != 2 || v.shape[0] < 1 || v.shape[0] > INT32_MAX) {
        snprintf(err, errlen, "%s: tensor token_embd.weight is not [V, C]", src->path);
        return -EINVAL;
    }
    if ((rc = model_gguf_int(src, ".vocab_size", v.shape[0], false, &hp->n_vocab, err, errlen)))
        return rc;
    wt_view o;
    if ((rc = model_src_tensor(src, "output.weight", &o, true, err, errlen)))
        return rc;
    hp->tied_output = o.data == NULL;
    hp->bos_id = model_token_id(src, "tokenizer.ggml.bos_token_id");
    hp->eos_id = model_token_id(src, "tokenizer.ggml.eos_token_id");
    return 0;
bad_heads:
    snprintf(err, errlen, "%s: embedding_length %d not a multiple of head_count %d",
             src->path, hp->n_embd, hp->n_head);
    return -EINVAL;
}

static int llama__hparams_hf(model *m, const model_src *src, char *err,
                             size_t errlen)
{
    model_hparams *hp = &m->hp;
    int rc;
    double d;
    if ((rc = model_hf_int(src, "hidden_size", 0, true, &hp->n_embd, err, errlen)) ||
        (rc = model_hf_int(src, "num_hidden_layers", 0, true, &hp->n_layer, err, errlen)) ||
        (rc = model_hf_int(src, "intermediate_size", 0, true, &hp->n_ff, err, errlen)) ||
        (rc = model_hf_int(src, "num_attention_heads", 0, true, &hp->n_head, err, errlen)) ||
        (rc = model_hf_int(src, "num_key_value_heads", hp->n_head, false, &hp->n_head_kv,
                           err, errlen)) ||
        (rc = model_hf_int(src, "max_position_embeddings", 2048, false, &hp->n_ctx_train,
                           err, errlen)) ||
        (rc = model_hf_int(src, "vocab_size", 0, true, &hp->n_vocab, err, errlen)))
        return rc;
    if (hp->n_embd % hp->n_head != 0 && !hf_config_has(src->cfg, "head_dim")) {
        snprintf(err, errlen, "%s/config.json: hidden_size %d not a multiple of "
                 "num_attention_heads %d", src->path, hp->n_embd, hp->n_head);
        return -EINVAL;
    }
    if ((rc = model_hf_int(src, "head_dim", hp->n_embd / hp->n_head, false, &hp->head_dim,
                           err, errlen)))
        return rc;
    hp->n_rot = hp->head_dim;
    if ((rc = model_hf_float(src, "rope_theta", 10000.0, &hp->rope_theta, err, errlen)) ||
        (rc = model_hf_float(src, "rms_norm_eps", 1e-6, &d, err, errlen)))
        return rc;
    hp->norm_eps = (float)d;
    hp->rope_layout = OPS_ROPE_HALF;
    const char *act = "silu";
    st_error se = {0};
    if (hf_config_str(src->cfg, "hidden_act", "silu", &act, &se) != 0 ||
        strcmp(act, "silu") != 0) {
        snprintf(err, errlen, "%s/config.json: hidden_act must be \"silu\"", src->path);
        return -ENOTSUP;
    }
    if (hf_config_has(src->cfg, "rope_scaling")) {
        const char *type = NULL;
        if (hf_config_str(src->cfg, "rope_scaling.type", NULL, &type, &se) != 0 || !type)
            hf_config_str(src->cfg, "rope_scaling.rope_type", NULL, &type, &se);
        if (type && strcmp(type, "linear") == 0) {
            if ((rc = model_hf_float(src, "rope_scaling.factor", 1.0, &d, err, errlen)))
                return rc;
            if (d > 0)
                hp->rope_freq_scale = (float)(1.0 / d);
        } else if (!type || strcmp(type, "default") != 0) {
            snprintf(err, errlen, "%s/config.json: rope_scaling type '%s' is not supported",
                     src->path, type ? type : "?");
            return -ENOTSUP;
        }
    }
    bool tie = false;
    hf_config_bool(src->cfg, "tie_word_embeddings", false, &tie, &se);
    hp->tied_output = tie || !hf_dir_find(src->hf, "lm_head.weight");
    hp->bos_id = model_token_id(src, "bos_token_id");
    hp->eos_id = model_token_id(src, "eos_token_id");
    return 0;
}

static int llama__check(const model *m, const model_src *src, char *err,
                        size_t errlen)
{
    const model_hparams *hp = &m->hp;
    const int big = 1 << 20;
    if (hp->n_embd > big || hp->n_ff > big || hp->n_layer > 4096 || hp->n_head > 4096 ||
        hp->head_dim > 4096 || hp->n_head_kv > hp->n_head || hp->n_head % hp->n_head_kv != 0 ||
        hp->n_rot > hp->head_dim || hp->n_rot % 2 != 0 || hp->n_vocab > (1 << 24)) {
        snprintf(err, errlen,
                 "%s: unsupported llama shape (C %d, FF %d, layers %d, heads %d/%d, "
                 "head_dim %d, n_rot %d, vocab %d)", src->path, hp->n_embd, hp->n_ff,
                 hp->n_layer, hp->n_head, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->n_vocab);
        return -EINVAL;
    }
    return 0;
}

/* ---- weights ------------------------------------------------------------- */

/* One weight: take the arena space and convert (counting pass: only checks). */
static int llama__w(model *m, const model_src *src, const char *name, int64_t rows,
                    int64_t cols, float *dst, char *err, size_t errlen)
{
    return model_src_load(src, name, rows, cols, 0, dst, err, errlen);
}

/* The type the n tensors of one fused matrix keep: Q8_0 or Q4_0 when all
 * of them are stored so (GGUF, not f32_weights), else 0 (convert to F32). */
static int llama__qtype(const model *m, const model_src *src, char names[][128], int n)
{
    if (m->f32_weights || src->fmt != MODEL_FMT_GGUF)
        return 0;
    int type = 0;
    for (int i = 0; i < n; i++) {
        wt_view v;
        if (model_src_tensor(src, names[i], &v, false, NULL, 0) || v.n_dims != 2 ||
            v.shape[1] % QM_BLOCK)
            return 0;
        int t = v.type == WT_Q8_0 ? QM_Q8_0 : v.type == WT_Q4_0 ? QM_Q4_0 : 0;
        if (!t || (type && t != type))
            return 0;
        type = t;
    }
    return type;
}

/* The matrix fused from n tensors of rows[i] x cols: F32 from the arena,
 * or (qtype) their rows gathered and packed (qm_pack) into the byte arena;
 * the counting pass (no arena yet) only checks and counts. */
static int llama__mat_bind(model *m, const model_src *src, llama__impl *im, llama__mat *out,
                           char names[][128], const int64_t *rows, int n, int64_t cols,
                           char *err, size_t errlen)
{
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += rows[i];
    int qtype = llama__qtype(m, src, names, n), rc = 0;
    memset(out, 0, sizeof(*out));
    if (!qtype) {
        if ((rc = model_take(m, (size_t)(total * cols), &out->f, err, errlen)))
            return rc;
        float *p = out->f;
        for (int i = 0; i < n; i++) {
            if ((rc = llama__w(m, src, names[i], rows[i], cols, p, err, errlen)))
                return rc;
            p = p ? p + rows[i] * cols : NULL;
        }
        return 0;
    }
    /* the parts' rows one after the other, then packed into the arena */
    qm_mat raw = {.type = (qm_type)qtype, .rows = (int)total, .cols = (int)cols};
    qm_mat packed = raw;
    packed.packed = qm_pack_panel_rows();
    size_t rb = qm_row_bytes(raw.type, raw.cols), bytes = LLAMA__ALIGN64(qm_mat_bytes(&packed));
    uint8_t *tmp = im->qarena ? malloc(qm_mat_bytes(&raw)) : NULL, *dst = tmp;
    if (im->qarena && !tmp) {
        snprintf(err, errlen, "%s: out of memory packing a %lld x %lld matrix", src->path,
                 (long long)total, (long long)cols);
        return -ENOMEM;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        wt_view v;
        if ((rc = model_src_tensor(src, names[i], &v, false, err, errlen)) ||
            (rc = wt_expect(&v, rows[i], cols, err, errlen)))
            break;
        if (dst)
            memcpy(dst, v.data, (size_t)rows[i] * rb);
        dst = dst ? dst + (size_t)rows[i] * rb : NULL;
    }
    out->q = packed; /* counting pass: the shape only */
    if (tmp && rc == 0) {
        raw.data = tmp;
        qm_pack(&raw, im->qarena + im->qused, &out->q);
    }
    free(tmp);
    im->qused += bytes;
    return rc;
}

static int llama__bind(model *m, const model_src *src, llama__impl *im, char *err,
                       size_t errlen)
{
    const model_hparams *hp = &m->hp;
    bool gg = src->fmt == MODEL_FMT_GGUF;
    int64_t C = hp->n_embd, V = hp->n_vocab, FF = hp->n_ff;
    int64_t qd = (int64_t)hp->n_head * hp->head_dim, kd = (int64_t)hp->n_head_kv * hp->head_dim;
    int rc;
    char names[3][128];
    im->qused = 0;

    snprintf(names[0], sizeof names[0], "%s", gg ? "token_embd.weight" : "model.embed_tokens.weight");
    if ((rc = llama__mat_bind(m, src, im, &im->tok_embd, names, &V, 1, C, err, errlen)) ||
        (rc = model_take(m, (size_t)C, &im->out_norm, err, errlen)) ||
        (rc = llama__w(m, src, gg ? "output_norm.weight" : "model.norm.weight", 0, C,
                       im->out_norm, err, errlen)))
        return rc;
    snprintf(names[0], sizeof names[0], "%s", gg ? "output.weight" : "lm_head.weight");
    if (hp->tied_output)
        im->output = im->tok_embd;
    else if ((rc = llama__mat_bind(m, src, im, &im->output, names, &V, 1, C, err, errlen)))
        return rc;
    static const char *const gnames[] = {"attn_norm", "attn_q", "attn_k", "attn_v",
                                         "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
                                         "ffn_down"};
    static const char *const hnames[] = {
        "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
        "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
        "mlp.down_proj"};
    for (int l = 0; l < hp->n_layer; l++) {
        llama__layer *L = &im->layers[l];
        char nm[9][128];
        for (int i = 0; i < 9; i++)
            if (gg)
                snprintf(nm[i], sizeof nm[i], "blk.%d.%s.weight", l, gnames[i]);
            else
                snprintf(nm[i], sizeof nm[i], "model.layers.%d.%s.weight", l, hnames[i]);
        const int64_t qkv_rows[] = {qd, kd, kd}, gu_rows[] = {FF, FF};
        if ((rc = model_take(m, (size_t)C, &L->attn_norm, err, errlen)) ||
            (rc = llama__w(m, src, nm[0], 0, C, L->attn_norm, err, errlen)) ||
            (rc = llama__mat_bind(m, src, im, &L->wqkv, nm + 1, qkv_rows, 3, C, err, errlen)) ||
            (rc = llama__mat_bind(m, src, im, &L->wo, nm + 4, &C, 1, qd, err, errlen)) ||
            (rc = model_take(m, (size_t)C, &L->ffn_norm, err, errlen)) ||
            (rc = llama__w(m, src, nm[5], 0, C, L->ffn_norm, err, errlen)) ||
            (rc = llama__mat_bind(m, src, im, &L->wgu, nm + 6, gu_rows, 2, C, err, errlen)) ||
            (rc = llama__mat_bind(m, src, im, &L->wdown, nm + 8, &C, 1, FF, err, errlen)))
            return rc;
    }
    return 0;
}

static int llama__load(model *m, const model_src *src, char *err, size_t errlen)
{
    int rc = src->fmt == MODEL_FMT_GGUF ? llama__hparams_gguf(m, src, err, errlen)
                                        : llama__hparams_hf(m, src, err, errlen);
    if (rc || (rc = llama__check(m, src, err, errlen)))
        return rc;
    const model_hparams *hp = &m->hp;
    if (m->n_ctx <= 0)
        m->n_ctx = hp->n_ctx_train;

    llama__impl *im = calloc(1, sizeof(*im));
    if (!im)
        goto nomem;
    m->impl = im;
    im->layers = calloc((size_t)hp->n_layer, sizeof(*im->layers));
    if (!im->layers)
        goto nomem;
    wt_arena_count(&m->warena);
    if ((rc = llama__bind(m, src, im, err, errlen)))
        return rc;
    m->qbytes = im->qused;
    if (m->qbytes && !(im->qarena = aligned_alloc(64, m->qbytes)))
        goto nomem;
    if ((rc = wt_arena_alloc(&m->warena, err, errlen)) ||
        (rc = llama__bind(m, src, im, err, errlen)))
        return rc;
    if (!hp->tied_output) /* a lookup table: decode reads one row of it */
        m->embd_bytes = im->tok_embd.q.data ? qm_mat_bytes(&im->tok_embd.q)
                                            : (size_t)hp->n_vocab * hp->n_embd * sizeof(float);
    if (m->qbytes) {
        int widest = (int)(hp->n_ff > hp->n_embd ? hp->n_ff : hp->n_embd);
        int qdim = hp->n_head * hp->head_dim;
        widest = qdim > widest ? qdim : widest;
        if (!(im->qscratch = malloc(qm_scratch_bytes(m->n_batch, widest))))
            goto nomem;
    }

    size_t T = (size_t)m->n_batch, C = (size_t)hp->n_embd, FF = (size_t)hp->n_ff;
    size_t qd = (size_t)hp->n_head * hp->head_dim, kd = (size_t)hp->n_head_kv * hp->head_dim;
    size_t per_tok = 2 * C + (qd + 2 * kd) + qd + 2 * FF + FF;
    size_t n = T * per_tok + (size_t)m->n_ctx + (size_t)hp->n_rot / 2 + 1;
    im->scratch = malloc(n * sizeof(float));
    if (!im->scratch)
        goto nomem;
    float *s = im->scratch;
    im->x = s;  s += T * C;
    im->xb = s; s += T * C;
    im->qkv = s; s += T * (qd + 2 * kd);
    im->attn = s; s += T * qd;
    im->gu = s; s += T * 2 * FF;
    im->hb = s; s += T * FF;
    im->att = s; s += (size_t)m->n_ctx;
    im->inv_freq = s;
    ops_rope_inv_freq(im->inv_freq, hp->n_rot, hp->rope_theta);
    return 0;
nomem:
    snprintf(err, errlen, "%s: out of memory allocating the llama model", src->path);
    return -ENOMEM;
}

static void llama__free(model *m)
{
    llama__impl *im = m->impl;
    if (!im)
        return;
    free(im->layers);
    free(im->scratch);
    free(im->qarena);
    free(im->qscratch);
    free(im);
    m->impl = NULL;
}

/* ---- forward ------------------------------------------------------------- */

/* out[T, OC] = x[T, C] . w^T, F32 or quantized. */
static void llama__mm(llama__impl *im, float *out, size_t ldo, const float *x,
                      const llama__mat *w, int T, int C, int OC)
{
    if (!w->q.data) {
        ops_matmul(out, ldo, x, w->f, NULL, T, C, OC);
        return;
    }
    /* the scratch holds n_batch rows of the widest input: no failure. The
     * int8 kernels serve decode (the matrix read once for all tokens) and
     * prefill (an int8 GEMM: faster than sgemm on dequantized panels) */
    qm_matmul(out, ldo, x, &w->q, NULL, T, cpu_isa_best(), ops_matmul_pool(), im->qscratch);
}

/* Row id of the token embedding as F32. */
static void llama__embed(const llama__impl *im, int32_t id, float *dst, int C)
{
    if (im->tok_embd.q.data)
        qm_mat_row(&im->tok_embd.q, id, dst);
    else
        memcpy(dst, im->tok_embd.f + (size_t)id * C, (size_t)C * sizeof(float));
}

static void llama__forward(model *m, kv_cache *kv, const model_batch *b,
                           float *logits, float *hidden)
{
    const model_hparams *hp = &m->hp;
    llama__impl *im = m->impl;
    int T = b->n_tokens, C = hp->n_embd, FF = hp->n_ff, V = hp->n_vocab;
    int qd = hp->n_head * hp->head_dim, kd = hp->n_head_kv * hp->head_dim;
    int ldqkv = qd + 2 * kd;
    float eps = hp->norm_eps;
    float *x = im->x, *xb = im->xb, *qkv = im->qkv;

    for (int t = 0; t < T; t++)
        llama__embed(im, b->token[t], x + (size_t)t * C, C);

    for (int l = 0; l < hp->n_layer; l++) {
        const llama__layer *L = &im->layers[l];
        /* attention block */
        for (int t = 0; t < T; t++)
            ops_rmsnorm(xb + (size_t)t * C, x + (size_t)t * C, L->attn_norm, C, eps);
        llama__mm(im, qkv, (size_t)ldqkv, xb, &L->wqkv, T, C, ldqkv);
        if (b->adapter) /* before RoPE: the adapter adapts the projection */
            model_lora_apply(m, l, MODEL_LORA_AT_QKV, qkv, (size_t)ldqkv, xb, (size_t)C);
        for (int t = 0; t < T; t++) {
            float *qt = qkv + (size_t)t * ldqkv;
            ops_rope(qt, hp->n_head, hp->head_dim, hp->n_rot, hp->rope_layout,
                     im->inv_freq, hp->rope_freq_scale, b->pos[t]);
            ops_rope(qt + qd, hp->n_head_kv, hp->head_dim, hp->n_rot, hp->rope_layout,
                     im->inv_freq, hp->rope_freq_scale, b->pos[t]);
        }
        model_attend(m, kv, l, b, qkv, qkv + qd, qkv + qd + kd, (size_t)ldqkv,
                     im->attn, (size_t)qd, im->att);
        llama__mm(im, xb, (size_t)C, im->attn, &L->wo, T, qd, C);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_O, xb, (size_t)C, im->attn, (size_t)qd);
        ops_add(x, xb, (size_t)T * C);
        /* MLP block */
        for (int t = 0; t < T; t++)
            ops_rmsnorm(xb + (size_t)t * C, x + (size_t)t * C, L->ffn_norm, C, eps);
        llama__mm(im, im->gu, (size_t)2 * FF, xb, &L->wgu, T, C, 2 * FF);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_UP, im->gu, (size_t)2 * FF, xb, (size_t)C);
        for (int t = 0; t < T; t++) {
            const float *g = im->gu + (size_t)t * 2 * FF;
            ops_swiglu(im->hb + (size_t)t * FF, g, g + FF, (size_t)FF);
        }
        llama__mm(im, xb, (size_t)C, im->hb, &L->wdown, T, FF, C);
        if (b->adapter)
            model_lora_apply(m, l, MODEL_LORA_AT_DOWN, xb, (size_t)C, im->hb, (size_t)FF);
        ops_add(x, xb, (size_t)T * C);
    }

    if (hidden) {
        /* model_encode: every token's final-norm state, no lm_head */
        for (int t = 0; t < T; t++)
            ops_rmsnorm(hidden + (size_t)t * C, x + (size_t)t * C, im->out_norm, C, eps);
        return;
    }
    if (!logits)
        return;
    int n = model_gather_rows(b, x, C);
    for (int i = 0; i < n; i++)
        ops_rmsnorm(xb + (size_t)i * C, x + (size_t)i * C, im->out_norm, C, eps);
    if (n > 0)
        llama__mm(im, logits, (size_t)V, xb, &im->output, n, C, V);
}

static void llama__view(model *m, model_decoder_view *v)
{
    llama__impl *im = m->impl;
    v->tok_embd = im->tok_embd.f;
    v->norm_f_w = im->out_norm;
    v->output = im->output.f;
    v->inv_freq = im->inv_freq;
    for (int l = 0; l < m->hp.n_layer; l++) {
        const llama__layer *L = &im->layers[l];
        model_layer_view *o = &v->layers[l];
        memset(o, 0, sizeof(*o));
        o->norm1_w = L->attn_norm;
        o->wqkv = L->wqkv.f;
        o->wo = L->wo.f;
        o->norm2_w = L->ffn_norm;
        o->wup = L->wgu.f;
        o->wdown = L->wdown.f;
    }
}

const model_arch_ops model_arch_llama_ops = {
    .view = llama__view,
    .load = llama__load,
    .forward = llama__forward,
    .free = llama__free,
};
