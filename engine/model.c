/* model.c - model loading dispatch, batch validation and chunking, and the
 * pieces the architectures share (see model.h). */
#include "model.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *gguf_name;
    const char *hf_name;
    model_kind kind;
} model__archs[MODEL_ARCH_COUNT] = {
#define MODEL__ARCH_ROW(e, g, h, k) [MODEL_ARCH_##e] = {g, h, k},
    MODEL_ARCHS(MODEL__ARCH_ROW)
#undef MODEL__ARCH_ROW
};

static const model_arch_ops *model__ops(model_arch_id a)
{
    switch (a) {
    case MODEL_ARCH_LLAMA: return &model_arch_llama_ops;
    case MODEL_ARCH_GPT2: return &model_arch_gpt2_ops;
    case MODEL_ARCH_BERT: return &model_arch_bert_ops;
    case MODEL_ARCH_COUNT: break;
    }
    return NULL;
}

const char *model_arch_name(model_arch_id a)
{
    return (unsigned)a < MODEL_ARCH_COUNT ? model__archs[a].gguf_name : "?";
}

model_kind model_arch_kind(model_arch_id a)
{
    return (unsigned)a < MODEL_ARCH_COUNT ? model__archs[a].kind : MODEL_KIND_DECODER;
}

model_arch_id model_arch_find(const char *name, model_format fmt)
{
    for (int i = 0; name && i < MODEL_ARCH_COUNT; i++) {
        const char *n = fmt == MODEL_FMT_HF ? model__archs[i].hf_name
                                            : model__archs[i].gguf_name;
        if (strcmp(n, name) == 0)
            return (model_arch_id)i;
    }
    return MODEL_ARCH_COUNT;
}

__attribute__((format(printf, 4, 5)))
static int model__fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- loading ------------------------------------------------------------- */

int model_load(model **out, const char *path, char *err, size_t errlen)
{
    return model_load_opts(out, path, NULL, err, errlen);
}

int model_load_opts(model **out, const char *path, const model_opts *opts,
                    char *err, size_t errlen)
{
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    struct stat sb;
    if (!path || stat(path, &sb) != 0)
        return model__fail(err, errlen, -ENOENT, "model %s: %s",
                           path ? path : "(null)", "no such file or directory");

    model_src src = {.path = path};
    const char *arch_name = NULL;
    int rc;
    if (S_ISDIR(sb.st_mode)) {
        st_error se = {0};
        src.fmt = MODEL_FMT_HF;
        rc = hf_dir_open(&src.hf, path, &se);
        if (rc != 0) {
            if (err && errlen)
                snprintf(err, errlen, "%s", se.msg);
            return rc;
        }
        src.cfg = hf_dir_config(src.hf);
        arch_name = hf_config_model_type(src.cfg);
        if (!arch_name) {
            rc = model__fail(err, errlen, -EINVAL, "%s/config.json: %s", path,
                             "no \"model_type\"");
            goto done;
        }
    } else {
        src.fmt = MODEL_FMT_GGUF;
        rc = gguf_open(&src.gguf, path, err, errlen);
        if (rc != 0)
            return rc == GGUF_ENOMEM ? -ENOMEM : rc == GGUF_EIO ? -EIO : -EINVAL;
        rc = gguf_get_str(src.gguf, "general.architecture", &arch_name, NULL,
                          err, errlen);
        if (rc != 0) {
            rc = model__fail(err, errlen, -EINVAL, "%s: %s", path,
                             "missing or bad general.architecture");
            goto done;
        }
    }

    model_arch_id arch = model_arch_find(arch_name, src.fmt);
    if (arch == MODEL_ARCH_COUNT) {
        rc = model__fail(err, errlen, -ENOTSUP,
                         "%s: architecture '%s' is not supported", path, arch_name);
        goto done;
    }

    model *m = calloc(1, sizeof(*m));
    if (!m) {
        rc = model__fail(err, errlen, -ENOMEM, "%s: %s", path, "out of memory");
        goto done;
    }
    m->arch = arch;
    m->fmt = src.fmt;
    m->ops = model__ops(arch);
    m->n_batch = opts && opts->n_batch > 0 ? opts->n_batch : MODEL_DEFAULT_BATCH;
    m->n_ctx = opts && opts->n_ctx > 0 ? opts->n_ctx : 0;
    m->f32_weights = opts && opts->f32_weights;
    m->kv_f16 = opts && opts->kv_f16;
    m->hp.bos_id = m->hp.eos_id = -1;
    m->hp.rope_freq_scale = 1.0f;
    rc = m->ops->load(m, &src, err, errlen);
    if (rc != 0) {
        model_free(m);
        goto done;
    }
    /* decoders' attention heads split over the engine's pool: scores per thread */
    int nth = tp_threads(ops_matmul_pool());
    if (m->ops->forward && nth > 1 && m->n_ctx > 0 &&
        (m->attn_ws = malloc((size_t)nth * (size_t)m->n_ctx * sizeof(float))))
        m->attn_threads = nth;
    if (m->ops->forward && !(m->attn_rest = malloc((size_t)m->n_batch * sizeof(int)))) {
        model_free(m);
        rc = model__fail(err, errlen, -ENOMEM, "%s: out of memory for attention scratch", path);
        goto done;
    }
    *out = m;
done:
    gguf_close(src.gguf);
    hf_dir_close(src.hf);
    return rc;
}

void model_free(model *m)
{
    if (!m)
        return;
    if (m->ops && m->ops->free)
        m->ops->free(m);
    kv_free(m->enc_kv);
    free(m->views);
    free(m->attn_ws);
    free(m->attn_rest);
    free(m->prefill_ws);
    model_lora_free(m);
    wt_arena_free(&m->warena);
    free(m);
}

const model_hparams *model_hp(const model *m) { return &m->hp; }
model_arch_id model_arch(const model *m) { return m->arch; }
model_format model_fmt(const model *m) { return m->fmt; }
model_kind model_get_kind(const model *m) { return model_arch_kind(m->arch); }
int model_n_batch(const model *m) { return m->n_batch; }
int model_n_ctx(const model *m) { return m->n_ctx; }
size_t model_weight_bytes(const model *m) { return m->warena.cap * sizeof(float) + m->qbytes; }
size_t model_decode_bytes(const model *m) { return model_weight_bytes(m) - m->embd_bytes; }

int model_kv_create(const model *m, int n_seq_max, int budget_tokens,
                    int block_size, kv_cache **out, char *err, size_t errlen)
{
    *out = NULL;
    int bs = block_size > 0 ? block_size : KV_DEFAULT_BLOCK_SIZE;
    if (n_seq_max <= 0 || budget_tokens < 0 || block_size < 0)
        return model__fail(err, errlen, -EINVAL,
                           "kv: bad pool request (%d sequences, budget %d tokens, "
                           "block size %d)", n_seq_max, budget_tokens, block_size);
    /* budget 0: every slot can hold a whole context at once */
    long long per_seq = ((long long)m->n_ctx + bs - 1) / bs;
    long long n_blocks = budget_tokens > 0 ? ((long long)budget_tokens + bs - 1) / bs
                                           : per_seq * n_seq_max;
    if (n_blocks > INT32_MAX)
        return model__fail(err, errlen, -EINVAL,
                           "kv: %lld blocks of %d positions is too many", n_blocks, bs);
    return kv_create_typed(out, m->hp.n_layer, m->hp.n_head_kv * m->hp.head_dim, bs,
                           (int)n_blocks, n_seq_max, m->n_ctx, m->kv_f16, err, errlen);
}

/* ---- source lookups (for the architectures) ------------------------------ */

int model_src_tensor(const model_src *src, const char *name, wt_view *v,
                     bool optional, char *err, size_t errlen)
{
    memset(v, 0, sizeof(*v));
    if (src->fmt == MODEL_FMT_GGUF) {
        const gguf_tensor *t = gguf_find_tensor(src->gguf, name);
        if (t)
            return wt_view_gguf(v, t, err, errlen);
    } else {
        const st_tensor *t = hf_dir_find(src->hf, name);
        if (t)
            return wt_view_st(v, t, err, errlen);
    }
    if (optional)
        return 0;
    return model__fail(err, errlen, -ENOENT, "%s: tensor %s not found",
                       src->path, name);
}

int model_src_load(const model_src *src, const char *name, int64_t rows,
                   int64_t cols, int transpose, float *dst, char *err,
                   size_t errlen)
{
    wt_view v;
    int rc = model_src_tensor(src, name, &v, false, err, errlen);
    if (rc != 0)
        return rc;
    rc = transpose ? wt_expect(&v, cols, rows, err, errlen)
                   : wt_expect(&v, rows, cols, err, errlen);
    if (rc != 0)
        return rc;
    wt_convert(dst, &v, transpose);
    return 0;
}

int model_take(model *m, size_t n, float **out, char *err, size_t errlen)
{
    *out = wt_take(&m->warena, n);
    if (m->warena.base && !*out) {
        if (err && errlen)
            snprintf(err, errlen, "weights: arena exhausted");
        return -ENOMEM;
    }
    return 0;
}

/* ---- forward ------------------------------------------------------------- */

typedef struct model__attn_job {
    model *m;
    kv_cache *kv;
    const model_batch *b;
    const float *q;
    const void *kp, *vp;  /* the layer's keys and values: floats, or halves when f16 */
    bool f16;
    float *out, *ws;
    size_t ldq, ldo, bstride, kvd;
    const int *toks;   /* model__attn_run's batch tokens (m->attn_rest) */
    int bs;
    float scale;
} model__attn_job;

/* nh heads of batch token t over its keys: all of them (nh = NH, nkv =
 * NKV), or one (nh = nkv = 1, with q, k and v already at that head). */
static void model__attend_token(const model__attn_job *j, int t, const float *q, const void *k,
                                const void *v, int nh, int nkv, float *out, float *att)
{
    const model_hparams *hp = &j->m->hp;
    const int32_t *table = kv_seq_table(j->kv, j->b->seq_id[t]);
    int tk = j->b->pos[t] + 1;
    if (j->f16)
        ops_attention_paged_f16(out, q, k, v, j->bstride, table, j->bs, j->kvd, tk, nh, nkv,
                                hp->head_dim, j->scale, att);
    else
        ops_attention_paged(out, q, k, v, j->bstride, table, j->bs, j->kvd, tk, nh, nkv,
                            hp->head_dim, j->scale, att);
}

/* Items [i0, i1) of (token, head) pairs: one head of one token each, with
 * the worker's own scores (the same arithmetic as all heads at once). */
static void model__attn_run(void *ctx, size_t i0, size_t i1, int worker)
{
    const model__attn_job *j = ctx;
    const model_hparams *hp = &j->m->hp;
    int NH = hp->n_head, HS = hp->head_dim, group = hp->n_head / hp->n_head_kv;
    float *att = j->ws + (size_t)worker * j->m->n_ctx;
    for (size_t i = i0; i < i1; i++) {
        int t = j->toks[i / NH], h = (int)(i % NH), g = h / group;
        size_t off = (size_t)g * HS * (j->f16 ? sizeof(uint16_t) : sizeof(float));
        model__attend_token(j, t, j->q + t * j->ldq + (size_t)h * HS,
                            (const char *)j->kp + off, (const char *)j->vp + off, 1, 1,
                            j->out + t * j->ldo + (size_t)h * HS, att);
    }
}

/* Positions of one sequence in a row from which prefill's GEMM attention
 * pays (below, the per-token kernel's threads win). */
#define MODEL__PREFILL_RUN 32

/* Batch tokens [t0, t0 + n): a run of consecutive positions of one
 * sequence, attended by ops_attention_prefill in the model's scratch (kept
 * between calls: one forward at a time). false: no memory to grow it (the
 * per-token kernel then serves them). */
static bool model__attend_run(model *m, kv_cache *kv, const model_batch *b,
                              const model__attn_job *j, int t0, int n)
{
    const model_hparams *hp = &m->hp;
    int p0 = b->pos[t0];
    size_t need = ops_attention_prefill_ws(n, p0, hp->head_dim);
    if (need > m->prefill_ws_bytes) {
        float *ws = realloc(m->prefill_ws, need);
        if (!ws)
            return false;
        m->prefill_ws = ws;
        m->prefill_ws_bytes = need;
    }
    return ops_attention_prefill(j->out + (size_t)t0 * j->ldo, j->ldo, j->q + (size_t)t0 * j->ldq,
                                 j->ldq, n, p0, j->kp, j->vp, j->f16, j->bstride,
                                 kv_seq_table(kv, b->seq_id[t0]), j->bs, j->kvd, hp->n_head,
                                 hp->n_head_kv, hp->head_dim, j->scale, m->prefill_ws) == 0;
}

void model_attend(model *m, kv_cache *kv, int layer, const model_batch *b,
                  const float *q, const float *k, const float *v, size_t ldq,
                  float *out, size_t ldo, float *att)
{
    const model_hparams *hp = &m->hp;
    size_t kvd = (size_t)hp->n_head_kv * hp->head_dim;
    for (int t = 0; t < b->n_tokens; t++)
        kv_write(kv, layer, b->seq_id[t], b->pos[t], k + t * ldq, v + t * ldq);
    bool f16 = kv_is_f16(kv);
    model__attn_job j = {
        .m = m, .kv = kv, .b = b, .q = q, .ldq = ldq, .out = out, .ldo = ldo, .f16 = f16,
        .kp = f16 ? (const void *)kv_pool_k16(kv, layer) : (const void *)kv_pool_k(kv, layer),
        .vp = f16 ? (const void *)kv_pool_v16(kv, layer) : (const void *)kv_pool_v(kv, layer),
        .bstride = kv_block_stride(kv), .bs = kv_block_size(kv), .kvd = kvd,
        .scale = 1.0f / sqrtf((float)hp->head_dim),
    };
    /* long runs of one sequence (prompt chunks) as GEMMs; the other tokens
     * (decode steps, short chunks) in `rest` for the per-token kernel
     * (model_forward's chunks are at most n_batch tokens) */
    int *rest = m->attn_rest, n_rest = 0;
    for (int t0 = 0, t1; t0 < b->n_tokens; t0 = t1) {
        for (t1 = t0 + 1; t1 < b->n_tokens && b->seq_id[t1] == b->seq_id[t0] &&
                          b->pos[t1] == b->pos[t1 - 1] + 1;
             t1++) {
        }
        if (t1 - t0 >= MODEL__PREFILL_RUN && model__attend_run(m, kv, b, &j, t0, t1 - t0))
            continue;
        for (int t = t0; t < t1; t++)
            rest[n_rest++] = t;
    }
    tp_pool *pool = ops_matmul_pool();
    size_t keys = 0;
    for (int i = 0; i < n_rest; i++)
        keys += (size_t)b->pos[rest[i]] + 1;
    /* (token, head) pairs over the pool when there is enough to share */
    if (m->attn_ws && tp_threads(pool) <= m->attn_threads && keys * hp->head_dim >= 16384) {
        j.ws = m->attn_ws;
        j.toks = rest;
        tp_parallel_for(pool, (size_t)n_rest * hp->n_head, 1, model__attn_run, &j);
    } else {
        for (int i = 0; i < n_rest; i++) { /* all heads of a token at once */
            int t = rest[i];
            model__attend_token(&j, t, q + t * ldq, j.kp, j.vp, hp->n_head, hp->n_head_kv,
                                out + t * ldo, att);
        }
    }
}

int model_gather_rows(const model_batch *b, float *x, int C)
{
    int n = 0;
    for (int t = 0; t < b->n_tokens; t++) {
        bool want = b->logits ? b->logits[t] != 0 : t == b->n_tokens - 1;
        if (!want)
            continue;
        if (n != t)
            memmove(x + (size_t)n * C, x + (size_t)t * C, (size_t)C * sizeof(float));
        n++;
    }
    return n;
}

int model_forward(model *m, kv_cache *kv, const model_batch *b,
                  float *logits_out, char *err, size_t errlen)
{
    const model_hparams *hp = &m->hp;
    char msg[160];
    if (!m->ops->forward)
        return model__fail(err, errlen, -ENOTSUP,
                           "model_forward: %s is an encoder and has no logits; "
                           "use model_encode", model_arch_name(m->arch));
    if (b->n_tokens <= 0 || !b->token || !b->pos || !b->seq_id) {
        snprintf(msg, sizeof(msg), "batch: %d tokens or missing arrays", b->n_tokens);
        return model__fail(err, errlen, -EINVAL, "%s", msg);
    }
    if (kv_n_layer(kv) != hp->n_layer ||
        kv_kv_dim(kv) != hp->n_head_kv * hp->head_dim) {
        return model__fail(err, errlen, -EINVAL, "kv: cache shape (%d layers, kv_dim %d) "
                           "does not match the model (%d, %d)", kv_n_layer(kv),
                           kv_kv_dim(kv), hp->n_layer, hp->n_head_kv * hp->head_dim);
    }
    int rc = model_lora_prepare(m, b, err, errlen);
    if (rc != 0)
        return rc;
    int n_seq = kv_n_seq(kv);
    int *len = malloc((size_t)n_seq * sizeof(int));
    if (!len)
        return model__fail(err, errlen, -ENOMEM, "batch: out of memory");
    for (int s = 0; s < n_seq; s++)
        len[s] = kv_seq_len(kv, s);
    for (int t = 0; t < b->n_tokens; t++) {
        int tok = b->token[t], s = b->seq_id[t], p = b->pos[t];
        if (tok < 0 || tok >= hp->n_vocab) {
            snprintf(msg, sizeof(msg), "batch: token %d: id %d out of range [0, %d)",
                     t, tok, hp->n_vocab);
            rc = -EINVAL;
            break;
        }
        if (kv_check(kv, s, p, msg, sizeof(msg)) != 0) {
            rc = -EINVAL;
            break;
        }
        if (p >= m->n_ctx) {
            snprintf(msg, sizeof(msg),
                     "batch: token %d: position %d beyond the model context %d",
                     t, p, m->n_ctx);
            rc = -EINVAL;
            break;
        }
        if (p > len[s]) {
            snprintf(msg, sizeof(msg),
                     "batch: token %d: position %d of sequence %d leaves a hole "
                     "(sequence length %d)", t, p, s, len[s]);
            rc = -EINVAL;
            break;
        }
        /* the scheduler reserves blocks before the pass (kv_seq_reserve) */
        char kmsg[128];
        if (kv_check_write(kv, s, p, kmsg, sizeof(kmsg)) != 0) {
            snprintf(msg, sizeof(msg), "batch: token %d: %s", t, kmsg);
            rc = -EINVAL;
            break;
        }
        len[s] = p + 1;
    }
    if (rc != 0) {
        free(len);
        return model__fail(err, errlen, rc, "%s", msg);
    }

    float *lo = logits_out;
    for (int t0 = 0; t0 < b->n_tokens; t0 += m->n_batch) {
        int n = b->n_tokens - t0 < m->n_batch ? b->n_tokens - t0 : m->n_batch;
        bool last_chunk = t0 + n == b->n_tokens;
        model_batch c = {
            .n_tokens = n,
            .token = b->token + t0,
            .pos = b->pos + t0,
            .seq_id = b->seq_id + t0,
            .logits = b->logits ? b->logits + t0 : NULL,
            .adapter = b->adapter ? b->adapter + t0 : NULL,
            .adapters = b->adapters,
            .n_adapters = b->n_adapters,
        };
        if (model_lora_group(m, &c) == 0)
            c.adapter = NULL; /* no adapter token: the plain base path */
        /* without a logits array only the batch's last token is wanted:
         * earlier chunks compute none (logits_out NULL) */
        bool any = b->logits != NULL || last_chunk;
        m->ops->forward(m, kv, &c, any ? lo : NULL, NULL);
        if (lo && any) {
            int nw = 0;
            for (int t = 0; t < n; t++)
                nw += c.logits ? c.logits[t] != 0 : t == n - 1;
            lo += (size_t)nw * hp->n_vocab;
        }
    }
    for (int s = 0; s < n_seq; s++)
        kv_seq_set_len(kv, s, len[s]);
    free(len);
    return 0;
}

/* ---- encode (complete sequences) ----------------------------------------- */

static int model__seq_cmp(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Checks a model_encode batch and splits it into its runs: seq_start[0..n]
 * (n + 1 entries, the last = n_tokens) into *starts (malloc'd), their
 * count into *n_seq. */
static int model__encode_check(const model *m, const model_batch *b, int **starts,
                               int *n_seq, char *err, size_t errlen)
{
    const model_hparams *hp = &m->hp;
    *starts = NULL;
    if (!b || b->n_tokens <= 0 || !b->token || !b->seq_id)
        return model__fail(err, errlen, -EINVAL, "encode: %d tokens or missing arrays",
                           b ? b->n_tokens : 0);
    int T = b->n_tokens;
    if (T > m->n_batch)
        return model__fail(err, errlen, -EINVAL,
                           "encode: %d tokens exceed the batch size %d", T, m->n_batch);
    int *st = malloc(((size_t)T + 1) * sizeof(int));
    int32_t *ids = malloc((size_t)T * sizeof(int32_t));
    if (!st || !ids) {
        free(st);
        free(ids);
        return model__fail(err, errlen, -ENOMEM, "encode: out of memory");
    }
    int n = 0, rc = 0, run0 = 0;
    char msg[192] = "";
    for (int t = 0; t < T; t++) {
        int tok = b->token[t], s = b->seq_id[t];
        if (t == 0 || s != b->seq_id[t - 1]) {
            st[n] = t;
            ids[n++] = s;
            run0 = t;
        }
        int want = t - run0;
        if (tok < 0 || tok >= hp->n_vocab) {
            snprintf(msg, sizeof(msg), "encode: token %d: id %d out of range [0, %d)", t,
                     tok, hp->n_vocab);
        } else if (s < 0) {
            snprintf(msg, sizeof(msg), "encode: token %d: negative sequence id %d", t, s);
        } else if (b->pos && b->pos[t] != want) {
            snprintf(msg, sizeof(msg),
                     "encode: token %d: position %d of sequence %d, expected %d "
                     "(complete sequences, positions 0..n-1 in order)", t, b->pos[t], s,
                     want);
        } else if (want >= m->n_ctx) {
            snprintf(msg, sizeof(msg),
                     "encode: token %d: sequence %d is longer than the model context %d",
                     t, s, m->n_ctx);
        } else {
            continue;
        }
        rc = -EINVAL;
        break;
    }
    if (rc == 0) {
        st[n] = T;
        qsort(ids, (size_t)n, sizeof(int32_t), model__seq_cmp);
        for (int i = 1; i < n; i++)
            if (ids[i] == ids[i - 1]) {
                snprintf(msg, sizeof(msg),
                         "encode: sequence %d is split into several runs (the tokens of a "
                         "sequence must be contiguous in the batch)", ids[i]);
                rc = -EINVAL;
                break;
            }
    }
    free(ids);
    if (rc != 0) {
        free(st);
        return model__fail(err, errlen, rc, "%s", msg);
    }
    *starts = st;
    *n_seq = n;
    return 0;
}

/* Decoders: the runs become slots 0..n_seq-1 of the model's own KV cache
 * (grown as needed), and one forward pass writes the final-norm hidden
 * states. */
static int model__encode_decoder(model *m, const model_batch *b, int n_seq,
                                 const int *st, float *hidden_out, char *err,
                                 size_t errlen)
{
    const model_hparams *hp = &m->hp;
    const int bs = KV_DEFAULT_BLOCK_SIZE;
    int T = b->n_tokens;
    long long need = 0;
    for (int i = 0; i < n_seq; i++)
        need += (st[i + 1] - st[i] + bs - 1) / bs;
    kv_cache *kv = m->enc_kv;
    if (!kv || kv_n_seq(kv) < n_seq || kv_n_blocks(kv) < need) {
        int ns = kv && kv_n_seq(kv) > n_seq ? kv_n_seq(kv) : n_seq;
        long long nb = kv && kv_n_blocks(kv) > need ? kv_n_blocks(kv) : need;
        kv_free(m->enc_kv);
        m->enc_kv = NULL;
        int rc = kv_create(&m->enc_kv, hp->n_layer, hp->n_head_kv * hp->head_dim, bs,
                           (int)nb, ns, m->n_ctx, err, errlen);
        if (rc != 0)
            return rc;
        kv = m->enc_kv;
    }
    int32_t *pos = malloc((size_t)T * sizeof(int32_t));
    int32_t *sid = malloc((size_t)T * sizeof(int32_t));
    if (!pos || !sid) {
        free(pos);
        free(sid);
        return model__fail(err, errlen, -ENOMEM, "encode: out of memory");
    }
    for (int s = 0; s < kv_n_seq(kv); s++)
        kv_seq_clear(kv, s);
    int rc = 0;
    for (int i = 0; i < n_seq && rc == 0; i++) {
        for (int t = st[i]; t < st[i + 1]; t++) {
            pos[t] = t - st[i];
            sid[t] = i;
        }
        if (kv_seq_reserve(kv, i, st[i + 1] - st[i]) != 0)
            rc = model__fail(err, errlen, -ENOMEM, "encode: KV cache reservation failed");
    }
    if (rc == 0) {
        model_batch c = {.n_tokens = T, .token = b->token, .pos = pos, .seq_id = sid};
        m->ops->forward(m, kv, &c, NULL, hidden_out);
    }
    for (int s = 0; s < kv_n_seq(kv); s++)
        kv_seq_clear(kv, s);
    free(pos);
    free(sid);
    return rc;
}

int model_encode(model *m, const model_batch *b, float *hidden_out, char *err,
                 size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!m || !hidden_out)
        return model__fail(err, errlen, -EINVAL, "encode: %s",
                           m ? "no output buffer" : "no model");
    int *st = NULL, n_seq = 0;
    int rc = model__encode_check(m, b, &st, &n_seq, err, errlen);
    if (rc != 0)
        return rc;
    if (m->ops->encode)
        m->ops->encode(m, b, n_seq, st, hidden_out);
    else
        rc = model__encode_decoder(m, b, n_seq, st, hidden_out, err, errlen);
    free(st);
    return rc;
}

/* ---- hyper-parameter getters (for the architectures) --------------------- */

static const char *model__gguf_key(const model_src *src, const char *key,
                                   char *buf, size_t n)
{
    if (key[0] != '.')
        return key;
    const char *arch = "?";
    gguf_get_str(src->gguf, "general.architecture", &arch, NULL, NULL, 0);
    snprintf(buf, n, "%s%s", arch, key);
    return buf;
}

static int model__range(const model_src *src, const char *key, int64_t v,
                        int *out, char *err, size_t errlen)
{
    if (v < 1 || v > INT32_MAX) {
        if (err && errlen)
            snprintf(err, errlen, "%s: %s = %lld out of range [1, %d]", src->path,
                     key, (long long)v, INT32_MAX);
        return -EINVAL;
    }
    *out = (int)v;
    return 0;
}

int model_gguf_int(const model_src *src, const char *key, int64_t def,
                   bool required, int *out, char *err, size_t errlen)
{
    char buf[160];
    const char *k = model__gguf_key(src, key, buf, sizeof(buf));
    int64_t v;
    int rc = gguf_get_int(src->gguf, k, INT64_MIN, INT64_MAX, &v, err, errlen);
    if (rc == GGUF_ENOTFOUND) {
        if (required)
            return model__fail(err, errlen, -EINVAL, "%s: required key %s is missing",
                               src->path, k);
        v = def;
    } else if (rc != 0) {
        return -EINVAL;
    }
    return model__range(src, k, v, out, err, errlen);
}

int model_gguf_float(const model_src *src, const char *key, double def,
                     double *out, char *err, size_t errlen)
{
    char buf[160];
    const char *k = model__gguf_key(src, key, buf, sizeof(buf));
    int rc = gguf_get_float(src->gguf, k, out, err, errlen);
    if (rc == GGUF_ENOTFOUND) {
        *out = def;
        return 0;
    }
    if (rc == 0 && !isfinite(*out))
        return model__fail(err, errlen, -EINVAL, "%s: %s is not finite", src->path, k);
    return rc == 0 ? 0 : -EINVAL;
}

int model_hf_int(const model_src *src, const char *key, int64_t def,
                 bool required, int *out, char *err, size_t errlen)
{
    st_error se = {0};
    int64_t v;
    if (required && !hf_config_has(src->cfg, key))
        return model__fail(err, errlen, -EINVAL,
                           "%s/config.json: required key %s is missing", src->path, key);
    int rc = hf_config_int(src->cfg, key, def, &v, &se);
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", se.msg);
        return -EINVAL;
    }
    return model__range(src, key, v, out, err, errlen);
}

int model_hf_float(const model_src *src, const char *key, double def,
                   double *out, char *err, size_t errlen)
{
    st_error se = {0};
    int rc = hf_config_float(src->cfg, key, def, out, &se);
    if (rc != 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s", se.msg);
        return -EINVAL;
    }
    if (!isfinite(*out))
        return model__fail(err, errlen, -EINVAL, "%s/config.json: %s is not finite",
                           src->path, key);
    return 0;
}

int32_t model_token_id(const model_src *src, const char *key)
{
    int64_t v = -1;
    if (src->fmt == MODEL_FMT_GGUF) {
        if (gguf_get_int(src->gguf, key, INT64_MIN, INT64_MAX, &v, NULL, 0) != 0)
            return -1;
    } else {
        st_error se = {0};
        if (hf_config_int(src->cfg, key, -1, &v, &se) != 0)
            return -1;
    }
    return v >= 0 && v <= INT32_MAX ? (int32_t)v : -1;
}

int model_decoder_view_get(model *m, model_decoder_view *v)
{
    memset(v, 0, sizeof(*v));
    if (!m->ops->view || m->qbytes)
        return -ENOTSUP;
    if (!m->views) {
        m->views = calloc((size_t)m->hp.n_layer, sizeof(*m->views));
        if (!m->views)
            return -ENOMEM;
    }
    v->layers = m->views;
    m->ops->view(m, v);
    return 0;
}
