/* arch_bert.c - the BERT encoder: token + absolute position + token-type
 * embeddings, embedding LayerNorm, post-LN blocks (attention, add, LayerNorm;
 * MLP with GELU, add, LayerNorm), bidirectional attention within each
 * sequence. No final norm, no pooler (pooling.h pools the hidden states;
 * the HF pooler weights are ignored).
 *
 * Sources: HF BertModel safetensors (keys with or without the "bert."
 * prefix, LayerNorm weight/bias or the old gamma/beta names) and GGUF as
 * llama.cpp's converter writes it (arch "bert": token_embd, position_embd,
 * token_types, token_embd_norm, blk.N.attn_q/k/v/output, attn_output_norm,
 * ffn_up/down, layer_output_norm). q, k and v are fused into one [3C, C]
 * matrix at load, so a layer runs four GEMMs over all tokens of the batch.
 *
 * Attention runs per sequence and head as two sgemms (S = q k^T / sqrt(HS),
 * row softmax, S v) on the rows of that sequence only, so sequences of a
 * batch never see each other and need no padding or mask.
 *
 * Only model_encode runs an encoder (ops.forward is NULL: model_forward
 * answers -ENOTSUP).
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BERT__X86 1
#endif

#include "cpu_features.h"
#include "model.h"

typedef struct bert__layer {
    float *wqkv, *bqkv;     /* [3C, C], [3C]: q rows, k rows, v rows */
    float *wo, *bo;         /* [C, C], [C] attention output */
    float *ln1_w, *ln1_b;   /* [C] attention output LayerNorm */
    float *wup, *bup;       /* [FF, C], [FF] intermediate */
    float *wdown, *bdown;   /* [C, FF], [C] output */
    float *ln2_w, *ln2_b;   /* [C] layer output LayerNorm */
} bert__layer;

typedef struct bert__impl {
    float *tok_embd;        /* [V, C] */
    float *pos_embd;        /* [P, C] */
    float *type_embd;       /* [n_type_vocab, C]; NULL when absent */
    float *emb_ln_w, *emb_ln_b; /* [C] */
    bert__layer *layers;
    bool gelu_tanh;         /* hidden_act gelu_new / gelu_pytorch_tanh */
    /* scratch for n_batch tokens (one allocation) */
    float *scratch;
    float *x;               /* [T, C] residual stream */
    float *xb;              /* [T, C] */
    float *qkv;             /* [T, 3C] */
    float *attn;            /* [T, C] */
    float *h;               /* [T, FF] */
    float *att;             /* [n_ctx, n_ctx] scores of one (sequence, head) */
} bert__impl;

/* ---- hyper-parameters ---------------------------------------------------- */

static int bert__hparams_gguf(model *m, const model_src *src, char *err, size_t errlen)
{
    model_hparams *hp = &m->hp;
    int rc;
    double d;
    if ((rc = model_gguf_int(src, ".embedding_length", 0, true, &hp->n_embd, err, errlen)) ||
        (rc = model_gguf_int(src, ".block_count", 0, true, &hp->n_layer, err, errlen)) ||
        (rc = model_gguf_int(src, ".attention.head_count", 0, true, &hp->n_head, err,
                             errlen)) ||
        (rc = model_gguf_int(src, ".feed_forward_length", 4 * (int64_t)hp->n_embd, false,
                             &hp->n_ff, err, errlen)) ||
        (rc = model_gguf_int(src, ".context_length", 512, false, &hp->n_ctx_train, err,
                             errlen)) ||
        (rc = model_gguf_float(src, ".attention.layer_norm_epsilon", 1e-12, &d, err, errlen)))
        return rc;
    hp->norm_eps = (float)d;
    bool causal = false;
    if (gguf_get_bool(src->gguf, "bert.attention.causal", &causal, NULL, 0) == 0 && causal) {
        snprintf(err, errlen, "%s: bert.attention.causal = true is not supported", src->path);
        return -ENOTSUP;
    }
    wt_view v, tt;
    if ((rc = model_src_tensor(src, "token_embd.weight", &v, false, err, errlen)) ||
        (rc = model_src_tensor(src, "token_types.weight", &tt, true, err, errlen)))
        return rc;
    if (v.n_dims != 2 || v.shape[0] < 1 || v.shape[0] > INT32_MAX) {
        snprintf(err, errlen, "%s: tensor token_embd.weight is not [V, C]", src->path);
        return -EINVAL;
    }
    hp->n_vocab = (int)v.shape[0];
    if (tt.data) {
        if (tt.n_dims != 2 || tt.shape[0] < 1 || tt.shape[0] > 1024) {
            snprintf(err, errlen, "%s: tensor token_types.weight is not [types, C]", src->path);
            return -EINVAL;
        }
        hp->n_type_vocab = (int)tt.shape[0];
    }
    hp->bos_id = model_token_id(src, "tokenizer.ggml.cls_token_id");
    hp->eos_id = model_token_id(src, "tokenizer.ggml.seperator_token_id");
    return 0;
}

static int bert__hparams_hf(model *m, const model_src *src, bool *gelu_tanh, char *err,
                            size_t errlen)
{
    model_hparams *hp = &m->hp;
    int rc;
    double d;
    if ((rc = model_hf_int(src, "hidden_size", 0, true, &hp->n_embd, err, errlen)) ||
        (rc = model_hf_int(src, "num_hidden_layers", 0, true, &hp->n_layer, err, errlen)) ||
        (rc = model_hf_int(src, "num_attention_heads", 0, true, &hp->n_head, err, errlen)) ||
        (rc = model_hf_int(src, "intermediate_size", 4 * (int64_t)hp->n_embd, false, &hp->n_ff,
                           err, errlen)) ||
        (rc = model_hf_int(src, "max_position_embeddings", 512, false, &hp->n_ctx_train, err,
                           errlen)) ||
        (rc = model_hf_int(src, "vocab_size", 0, true, &hp->n_vocab, err, errlen)) ||
        (rc = model_hf_int(src, "type_vocab_size", 2, false, &hp->n_type_vocab, err, errlen)) ||
        (rc = model_hf_float(src, "layer_norm_eps", 1e-12, &d, err, errlen)))
        return rc;
    hp->norm_eps = (float)d;
    st_error se = {0};
    const char *act = "gelu";
    hf_config_str(src->cfg, "hidden_act", "gelu", &act, &se);
    if (strcmp(act, "gelu") == 0) {
        *gelu_tanh = false;
    } else if (strcmp(act, "gelu_new") == 0 || strcmp(act, "gelu_pytorch_tanh") == 0) {
        *gelu_tanh = true;
    } else {
        snprintf(err, errlen, "%s/config.json: hidden_act '%s' is not supported (gelu, "
                 "gelu_new)", src->path, act);
        return -ENOTSUP;
    }
    const char *pet = "absolute";
    hf_config_str(src->cfg, "position_embedding_type", "absolute", &pet, &se);
    if (strcmp(pet, "absolute") != 0) {
        snprintf(err, errlen, "%s/config.json: position_embedding_type '%s' is not supported "
                 "(absolute)", src->path, pet);
        return -ENOTSUP;
    }
    bool dec = false;
    hf_config_bool(src->cfg, "is_decoder", false, &dec, &se);
    if (dec) {
        snprintf(err, errlen, "%s/config.json: is_decoder = true is not supported", src->path);
        return -ENOTSUP;
    }
    hp->bos_id = model_token_id(src, "cls_token_id");
    hp->eos_id = model_token_id(src, "sep_token_id");
    return 0;
}

/* ---- weights ------------------------------------------------------------- */

/* HF names: "<pre>embeddings.LayerNorm.weight" or the old ".gamma" /
 * ".beta" spelling; writes the name found into name. */
static void bert__hf_norm(const model_src *src, char *name, size_t n, const char *pre,
                          const char *base, bool bias)
{
    snprintf(name, n, "%s%s.%s", pre, base, bias ? "bias" : "weight");
    if (hf_dir_find(src->hf, name))
        return;
    snprintf(name, n, "%s%s.%s", pre, base, bias ? "beta" : "gamma");
    if (!hf_dir_find(src->hf, name)) /* neither: report the current name */
        snprintf(name, n, "%s%s.%s", pre, base, bias ? "bias" : "weight");
}

static int bert__bind(model *m, const model_src *src, bert__impl *im, char *err,
                      size_t errlen)
{
    const model_hparams *hp = &m->hp;
    bool gg = src->fmt == MODEL_FMT_GGUF;
    int64_t C = hp->n_embd, V = hp->n_vocab, FF = hp->n_ff, P = hp->n_ctx_train;
    int64_t NT = hp->n_type_vocab;
    const char *pre = "";
    if (!gg && hf_dir_find(src->hf, "bert.embeddings.word_embeddings.weight"))
        pre = "bert.";
    char name[192], base[160];
    int rc;
    /* takes arena space for dst and loads the weight called name */
#define BERT__LOAD(dst, rows, cols)                                                        \
    do {                                                                                   \
        if ((rc = model_take(m, (size_t)((rows) > 0 ? (rows) : 1) * (size_t)(cols), &(dst), \
                             err, errlen)) ||                                              \
            (rc = model_src_load(src, name, rows, cols, 0, dst, err, errlen)))             \
            return rc;                                                                     \
    } while (0)
    /* a matrix or bias: GGUF name, HF name (after the prefix) */
#define BERT__W(dst, gname, hname, rows, cols)                                             \
    do {                                                                                   \
        if (gg)                                                                            \
            snprintf(name, sizeof(name), "%s", gname);                                     \
        else                                                                               \
            snprintf(name, sizeof(name), "%s%s", pre, hname);                              \
        BERT__LOAD(dst, rows, cols);                                                       \
    } while (0)
    /* a LayerNorm: GGUF base name, HF base name */
#define BERT__NORM(w, b, gbase, hbase)                                                     \
    do {                                                                                   \
        for (int bi = 0; bi < 2; bi++) {                                                   \
            if (gg)                                                                        \
                snprintf(name, sizeof(name), "%s.%s", gbase, bi ? "bias" : "weight");      \
            else                                                                           \
                bert__hf_norm(src, name, sizeof(name), pre, hbase, bi);                    \
            if (bi)                                                                        \
                BERT__LOAD(b, 0, C);                                                       \
            else                                                                           \
                BERT__LOAD(w, 0, C);                                                       \
        }                                                                                  \
    } while (0)

    BERT__W(im->tok_embd, "token_embd.weight", "embeddings.word_embeddings.weight", V, C);
    BERT__W(im->pos_embd, "position_embd.weight", "embeddings.position_embeddings.weight",
            P, C);
    if (NT > 0)
        BERT__W(im->type_embd, "token_types.weight",
                "embeddings.token_type_embeddings.weight", NT, C);
    BERT__NORM(im->emb_ln_w, im->emb_ln_b, "token_embd_norm", "embeddings.LayerNorm");

    for (int l = 0; l < hp->n_layer; l++) {
        bert__layer *L = &im->layers[l];
        char g[96], h[128];
        /* q, k, v into one [3C, C] matrix and one [3C] bias */
        if ((rc = model_take(m, (size_t)(3 * C * C), &L->wqkv, err, errlen)) ||
            (rc = model_take(m, (size_t)(3 * C), &L->bqkv, err, errlen)))
            return rc;
        static const char *const gq[3] = {"attn_q", "attn_k", "attn_v"};
        static const char *const hq[3] = {"query", "key", "value"};
        for (int i = 0; i < 3; i++) {
            float *w = L->wqkv ? L->wqkv + i * C * C : NULL;
            float *b = L->bqkv ? L->bqkv + i * C : NULL;
            for (int bi = 0; bi < 2; bi++) {
                if (gg)
                    snprintf(name, sizeof(name), "blk.%d.%s.%s", l, gq[i],
                             bi ? "bias" : "weight");
                else
                    snprintf(name, sizeof(name), "%sencoder.layer.%d.attention.self.%s.%s",
                             pre, l, hq[i], bi ? "bias" : "weight");
                if ((rc = bi ? model_src_load(src, name, 0, C, 0, b, err, errlen)
                             : model_src_load(src, name, C, C, 0, w, err, errlen)))
                    return rc;
            }
        }
        snprintf(g, sizeof(g), "blk.%d.attn_output.weight", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.attention.output.dense.weight", l);
        BERT__W(L->wo, g, h, C, C);
        snprintf(g, sizeof(g), "blk.%d.attn_output.bias", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.attention.output.dense.bias", l);
        BERT__W(L->bo, g, h, 0, C);
        snprintf(g, sizeof(g), "blk.%d.attn_output_norm", l);
        snprintf(base, sizeof(base), "encoder.layer.%d.attention.output.LayerNorm", l);
        BERT__NORM(L->ln1_w, L->ln1_b, g, base);
        snprintf(g, sizeof(g), "blk.%d.ffn_up.weight", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.intermediate.dense.weight", l);
        BERT__W(L->wup, g, h, FF, C);
        snprintf(g, sizeof(g), "blk.%d.ffn_up.bias", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.intermediate.dense.bias", l);
        BERT__W(L->bup, g, h, 0, FF);
        snprintf(g, sizeof(g), "blk.%d.ffn_down.weight", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.output.dense.weight", l);
        BERT__W(L->wdown, g, h, C, FF);
        snprintf(g, sizeof(g), "blk.%d.ffn_down.bias", l);
        snprintf(h, sizeof(h), "encoder.layer.%d.output.dense.bias", l);
        BERT__W(L->bdown, g, h, 0, C);
        snprintf(g, sizeof(g), "blk.%d.layer_output_norm", l);
        snprintf(base, sizeof(base), "encoder.layer.%d.output.LayerNorm", l);
        BERT__NORM(L->ln2_w, L->ln2_b, g, base);
    }
#undef BERT__NORM
#undef BERT__W
#undef BERT__LOAD
    return 0;
}

static int bert__load(model *m, const model_src *src, char *err, size_t errlen)
{
    bool gelu_tanh = false;
    int rc = src->fmt == MODEL_FMT_GGUF ? bert__hparams_gguf(m, src, err, errlen)
                                        : bert__hparams_hf(m, src, &gelu_tanh, err, errlen);
    if (rc)
        return rc;
    model_hparams *hp = &m->hp;
    if (hp->n_embd % hp->n_head != 0 || hp->n_embd > (1 << 16) || hp->n_ff > (1 << 18) ||
        hp->n_layer > 4096 || hp->n_vocab > (1 << 24) || hp->n_ctx_train > (1 << 16) ||
        hp->n_type_vocab > 1024) {
        snprintf(err, errlen, "%s: unsupported bert shape (C %d, heads %d, FF %d, layers %d, "
                 "positions %d)", src->path, hp->n_embd, hp->n_head, hp->n_ff, hp->n_layer,
                 hp->n_ctx_train);
        return -EINVAL;
    }
    hp->n_head_kv = hp->n_head;
    hp->head_dim = hp->n_embd / hp->n_head;
    hp->n_rot = 0;
    hp->rope_theta = 0.0;
    /* learned positions: no position past the table */
    if (m->n_ctx <= 0 || m->n_ctx > hp->n_ctx_train)
        m->n_ctx = hp->n_ctx_train;

    bert__impl *im = calloc(1, sizeof(*im));
    if (!im)
        goto nomem;
    m->impl = im;
    im->gelu_tanh = gelu_tanh;
    im->layers = calloc((size_t)hp->n_layer, sizeof(*im->layers));
    if (!im->layers)
        goto nomem;
    wt_arena_count(&m->warena);
    if ((rc = bert__bind(m, src, im, err, errlen)))
        return rc;
    if ((rc = wt_arena_alloc(&m->warena, err, errlen)) ||
        (rc = bert__bind(m, src, im, err, errlen)))
        return rc;

    size_t T = (size_t)m->n_batch, C = (size_t)hp->n_embd, FF = (size_t)hp->n_ff;
    size_t L = (size_t)m->n_ctx;
    size_t n = T * (C + C + 3 * C + C + FF) + L * L;
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
    snprintf(err, errlen, "%s: out of memory allocating the bert model", src->path);
    return -ENOMEM;
}

static void bert__free(model *m)
{
    bert__impl *im = m->impl;
    if (!im)
        return;
    free(im->layers);
    free(im->scratch);
    free(im);
    m->impl = NULL;
}

/* ---- GELU (erf) ----------------------------------------------------------- */

/* x[n] = x/2 (1 + erf(x / sqrt 2)), HF "gelu". The FF activations are a
 * large share of an encoder's non-GEMM work (T x FF per layer) and libm's
 * erff is about 15 ns, so x86 CPUs with AVX2 run an 8-lane version:
 * Abramowitz & Stegun 7.1.26 (|erf error| <= 1.5e-7) with a Cephes-style
 * exp polynomial. The tail and other CPUs use erff. */
static void bert__gelu_erf_scalar(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

#ifdef BERT__X86
__attribute__((target("avx2,fma")))
static void bert__gelu_erf_avx2(float *x, size_t n)
{
    const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
    const __m256 rsqrt2 = _mm256_set1_ps(0.70710678118654752f);
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256 p = _mm256_set1_ps(0.3275911f);
    const __m256 a1 = _mm256_set1_ps(0.254829592f), a2 = _mm256_set1_ps(-0.284496736f),
                 a3 = _mm256_set1_ps(1.421413741f), a4 = _mm256_set1_ps(-1.453152027f),
                 a5 = _mm256_set1_ps(1.061405429f);
    const __m256 log2e = _mm256_set1_ps(1.44269504088896341f);
    const __m256 ln2hi = _mm256_set1_ps(0.693359375f), ln2lo = _mm256_set1_ps(-2.12194440e-4f);
    const __m256 lo = _mm256_set1_ps(-87.0f);
    const __m256 e0 = _mm256_set1_ps(1.9875691500e-4f), e1 = _mm256_set1_ps(1.3981999507e-3f),
                 e2 = _mm256_set1_ps(8.3334519073e-3f), e3 = _mm256_set1_ps(4.1665795894e-2f),
                 e4 = _mm256_set1_ps(1.6666665459e-1f), e5 = _mm256_set1_ps(5.0000001201e-1f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256 u = _mm256_mul_ps(v, rsqrt2);
        __m256 s = _mm256_and_ps(u, sign);
        __m256 a = _mm256_andnot_ps(sign, u);
        /* e = exp(-a^2), a^2 clamped so 2^k stays a normal number */
        __m256 zz = _mm256_max_ps(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(a, a)), lo);
        __m256 k = _mm256_round_ps(_mm256_mul_ps(zz, log2e),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(k, ln2hi, zz);
        r = _mm256_fnmadd_ps(k, ln2lo, r);
        __m256 q = _mm256_fmadd_ps(e0, r, e1);
        q = _mm256_fmadd_ps(q, r, e2);
        q = _mm256_fmadd_ps(q, r, e3);
        q = _mm256_fmadd_ps(q, r, e4);
        q = _mm256_fmadd_ps(q, r, e5);
        q = _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), _mm256_add_ps(r, one));
        __m256i ki = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k),
                                                        _mm256_set1_epi32(127)), 23);
        __m256 e = _mm256_mul_ps(q, _mm256_castsi256_ps(ki));
        /* erf(a) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) e */
        __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(p, a, one));
        __m256 poly = _mm256_fmadd_ps(a5, t, a4);
        poly = _mm256_fmadd_ps(poly, t, a3);
        poly = _mm256_fmadd_ps(poly, t, a2);
        poly = _mm256_fmadd_ps(poly, t, a1);
        poly = _mm256_mul_ps(poly, t);
        __m256 erf = _mm256_fnmadd_ps(poly, e, one);
        erf = _mm256_or_ps(erf, s);  /* erf is odd; erf(a) >= 0 */
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(half, v), _mm256_add_ps(one, erf)));
    }
    bert__gelu_erf_scalar(x + i, n - i);
}
#endif

static void bert__gelu_erf(float *x, size_t n)
{
#ifdef BERT__X86
    if (cpu_isa_supported(CPU_ISA_AVX2)) {
        bert__gelu_erf_avx2(x, n);
        return;
    }
#endif
    bert__gelu_erf_scalar(x, n);
}

/* ---- encode -------------------------------------------------------------- */

/* Bidirectional attention of one sequence (rows [t0, t0 + L) of the batch),
 * every head: out rows = softmax(q k^T / sqrt(HS)) v. */
static void bert__attend(const model_hparams *hp, const float *qkv, float *out, float *att,
                         int t0, int L)
{
    int C = hp->n_embd, HS = hp->head_dim, ld = 3 * C;
    float scale = 1.0f / sqrtf((float)HS);
    for (int h = 0; h < hp->n_head; h++) {
        const float *q = qkv + (size_t)t0 * ld + (size_t)h * HS;
        const float *k = q + C, *v = q + 2 * C;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, L, L, HS, scale, q, ld, k, ld,
                    0.0f, att, L);
        for (int i = 0; i < L; i++)
            ops_softmax(att + (size_t)i * L, L);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, L, HS, L, 1.0f, att, L, v, ld,
                    0.0f, out + (size_t)t0 * C + (size_t)h * HS, C);
    }
}

static void bert__encode(model *m, const model_batch *b, int n_seq, const int *st,
                         float *hidden)
{
    const model_hparams *hp = &m->hp;
    bert__impl *im = m->impl;
    int T = b->n_tokens, C = hp->n_embd, FF = hp->n_ff;
    float eps = hp->norm_eps;
    float *x = im->x, *xb = im->xb, *qkv = im->qkv;

    /* embeddings: word + position + token type 0, then LayerNorm */
    for (int i = 0; i < n_seq; i++)
        for (int t = st[i]; t < st[i + 1]; t++) {
            float *xt = xb + (size_t)t * C;
            const float *te = im->tok_embd + (size_t)b->token[t] * C;
            const float *pe = im->pos_embd + (size_t)(t - st[i]) * C;
            for (int c = 0; c < C; c++)
                xt[c] = te[c] + pe[c];
            if (im->type_embd)
                ops_add(xt, im->type_embd, (size_t)C);
            ops_layernorm(x + (size_t)t * C, xt, im->emb_ln_w, im->emb_ln_b, C, eps);
        }

    for (int l = 0; l < hp->n_layer; l++) {
        const bert__layer *L = &im->layers[l];
        ops_matmul(qkv, (size_t)3 * C, x, L->wqkv, L->bqkv, T, C, 3 * C);
        for (int i = 0; i < n_seq; i++)
            bert__attend(hp, qkv, im->attn, im->att, st[i], st[i + 1] - st[i]);
        ops_matmul(xb, (size_t)C, im->attn, L->wo, L->bo, T, C, C);
        ops_add(xb, x, (size_t)T * C);
        for (int t = 0; t < T; t++)
            ops_layernorm(x + (size_t)t * C, xb + (size_t)t * C, L->ln1_w, L->ln1_b, C, eps);
        ops_matmul(im->h, (size_t)FF, x, L->wup, L->bup, T, C, FF);
        if (im->gelu_tanh)
            ops_gelu_tanh(im->h, (size_t)T * FF);
        else
            bert__gelu_erf(im->h, (size_t)T * FF);
        ops_matmul(xb, (size_t)C, im->h, L->wdown, L->bdown, T, FF, C);
        ops_add(xb, x, (size_t)T * C);
        float *dst = l == hp->n_layer - 1 ? hidden : x;
        for (int t = 0; t < T; t++)
            ops_layernorm(dst + (size_t)t * C, xb + (size_t)t * C, L->ln2_w, L->ln2_b, C, eps);
    }
}

const model_arch_ops model_arch_bert_ops = {
    .load = bert__load,
    .forward = NULL,
    .encode = bert__encode,
    .free = bert__free,
};
