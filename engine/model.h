/* model.h - the common model interface: loading a decoder (llama, gpt2) or
 * an encoder (bert) from a GGUF file or a Hugging Face directory, its
 * hyper-parameters, a batched forward pass over a KV cache (decoders), and
 * a batched encode pass over complete sequences (every architecture).
 *
 * Loading: model_load detects the format (a directory is an HF folder with
 * config.json; a file is GGUF) and the architecture (general.architecture /
 * config.json "model_type"), then the architecture's loader reads the
 * hyper-parameters and converts every weight to F32 into one arena
 * (weights.h). The source file is closed before model_load returns: a model
 * owns no mapping. Scratch memory for n_batch tokens is allocated at load;
 * forward passes allocate nothing.
 *
 * Batches: model_forward takes n tokens from any number of sequences at once,
 * each with its own position and sequence id. Keys and values are written to
 * the KV cache blocks of the token's sequence, which the caller reserved
 * beforehand (kv_seq_reserve); a token at position p of
 * sequence s attends to positions 0..p of s only (causal, never across
 * sequences). Within one sequence, tokens must come in increasing position
 * order and each position must be at most the sequence's current length
 * (no holes); a position below the length rewinds the sequence. Batches
 * longer than n_batch are run in chunks of n_batch tokens.
 *
 * Errors: 0 or a negative errno (-EINVAL bad file or argument, -ENOENT
 * missing file/tensor, -ENOMEM, -ENOTSUP unsupported architecture or
 * feature), with a message naming the file, key or tensor at fault in the
 * caller's err buffer.
 *
 * Adapters: a batch may carry LoRA adapters (engine/train/trn_lora.h) and
 * give each token one of them (model_batch.adapter): every projection with
 * a site of that adapter then adds scale * B A x for that token only, as the
 * training decoder does (q and k before RoPE). Tokens are grouped by
 * adapter so each adapter's A and B are read once per matmul; a batch
 * without adapters runs exactly the base path.
 *
 * Encoding: model_encode runs complete sequences (all their tokens at once)
 * and returns every token's final hidden state: the input of pooling
 * (pooling.h) for sentence embeddings. Encoders attend bidirectionally,
 * decoders causally (through a KV cache the model keeps for this).
 *
 * Threads: a loaded model is read-only; model_forward and model_encode may
 * be called from one thread at a time per model (they use the model's
 * scratch), model_forward with a KV cache owned by that thread. Matmuls and
 * attention run on the engine's pool (ops_matmul_pool), or on OpenBLAS's
 * threads where a product goes to OpenBLAS (no AVX-512).
 */
#ifndef MODEL_H
#define MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gguf.h"
#include "hf_dir.h"
#include "kv_cache.h"
#include "ops.h"
#include "weights.h"

/* Architectures: X(enum suffix, GGUF general.architecture, HF model_type,
 * kind). */
#define MODEL_ARCHS(X)                                 \
    X(LLAMA, "llama", "llama", MODEL_KIND_DECODER)     \
    X(GPT2, "gpt2", "gpt2", MODEL_KIND_DECODER)        \
    X(BERT, "bert", "bert", MODEL_KIND_ENCODER)

/* Decoders predict the next token (model_forward: logits); encoders only
 * produce hidden states (model_encode). */
typedef enum model_kind { MODEL_KIND_DECODER, MODEL_KIND_ENCODER } model_kind;

typedef enum model_arch_id {
#define MODEL__ARCH_ENUM(e, gguf_name, hf_name, kind) MODEL_ARCH_##e,
    MODEL_ARCHS(MODEL__ARCH_ENUM)
#undef MODEL__ARCH_ENUM
    MODEL_ARCH_COUNT
} model_arch_id;

typedef enum model_format {
    MODEL_FMT_GGUF = 0,
    MODEL_FMT_HF = 1,
} model_format;

typedef struct model_hparams {
    int n_vocab;        /* V */
    int n_ctx_train;    /* context length of training (positions for gpt2
                           and bert) */
    int n_embd;         /* C */
    int n_layer;
    int n_head;         /* NH */
    int n_head_kv;      /* NKV (== NH without GQA) */
    int head_dim;       /* HS */
    int n_ff;           /* feed-forward width */
    int n_rot;          /* rotary dims per head (llama), 0 for none */
    float norm_eps;     /* RMSNorm / LayerNorm epsilon */
    int n_type_vocab;   /* token types (bert segment embeddings), else 0 */
    double rope_theta;  /* RoPE base */
    float rope_freq_scale;        /* 1 / linear scaling factor; 1 unscaled */
    ops_rope_layout rope_layout;  /* ADJACENT for GGUF, HALF for HF */
    bool tied_output;   /* output projection is the token embedding */
    int32_t bos_id;     /* -1 when not known */
    int32_t eos_id;     /* -1 when not known */
} model_hparams;

/* Load options; zero fields take the defaults. */
typedef struct model_opts {
    int n_batch;  /* max tokens per internal chunk (default 512) */
    int n_ctx;    /* max positions per sequence (default n_ctx_train; for
                     gpt2 and bert at most n_ctx_train) */
    bool f32_weights; /* convert Q8_0 / Q4_0 matrices to F32 at load (what
                     training and merging adapters need); default: a llama
                     GGUF's quantized matrices stay quantized (qmat.h) */
    bool kv_f16;  /* model_kv_create makes F16 pools (kv_create_typed):
                     half the KV memory and attention reads; default F32 */
} model_opts;

#define MODEL_DEFAULT_BATCH 512

/* A LoRA adapter (engine/train/trn_lora.h). */
typedef struct trn_lora trn_lora;

/* A batch: n_tokens tokens; arrays borrowed for the call. */
typedef struct model_batch {
    int n_tokens;
    const int32_t *token;   /* [n_tokens] token ids */
    const int32_t *pos;     /* [n_tokens] positions within their sequence */
    const int32_t *seq_id;  /* [n_tokens] KV cache slot of the sequence */
    const int8_t *logits;   /* [n_tokens] nonzero: want this token's logits;
                               NULL: only the last token's */
    const int16_t *adapter; /* [n_tokens] index into adapters, -1: the base
                               model; NULL: every token is base. All tokens
                               of a sequence must use the same adapter (its
                               KV cache was computed with it) */
    const trn_lora *const *adapters; /* [n_adapters] borrowed for the call
                               and only read (A, B, scale, sites): one
                               adapter may serve several models' threads */
    int n_adapters;         /* 0..MODEL_MAX_ADAPTERS */
} model_batch;

/* Most adapters in one batch's table (indices fit int16_t). */
#define MODEL_MAX_ADAPTERS 4096

typedef struct model model;
typedef struct model_src model_src;

/* ---- the public interface ------------------------------------------------ */

/* Loads the model at path (GGUF file or HF directory). On success *out is a
 * new model (free with model_free). opts may be NULL. */
int model_load(model **out, const char *path, char *err, size_t errlen);
int model_load_opts(model **out, const char *path, const model_opts *opts,
                    char *err, size_t errlen);
/* Accepts NULL. */
void model_free(model *m);

/* Borrowed views. */
const model_hparams *model_hp(const model *m);
model_arch_id model_arch(const model *m);
model_format model_fmt(const model *m);
model_kind model_get_kind(const model *m);
const char *model_arch_name(model_arch_id a);   /* "llama", "gpt2", "bert" */
model_kind model_arch_kind(model_arch_id a);
/* The architecture named name (GGUF general.architecture for
 * MODEL_FMT_GGUF, config.json model_type for MODEL_FMT_HF), or
 * MODEL_ARCH_COUNT when none is. */
model_arch_id model_arch_find(const char *name, model_format fmt);
int model_n_batch(const model *m);
int model_n_ctx(const model *m);
/* Bytes of converted weights. */
size_t model_weight_bytes(const model *m);
/* Bytes of the weights one decode step reads: all of them but the token
 * embedding table (one row is looked up) unless it is also the output. */
size_t model_decode_bytes(const model *m);

/* Creates a KV cache for this model: a pool of blocks of block_size
 * positions (0: KV_DEFAULT_BLOCK_SIZE) holding at least budget_tokens
 * positions in all (0: n_seq_max whole contexts of model_n_ctx each),
 * shared by n_seq_max sequence slots of at most model_n_ctx positions.
 * New reference; free with kv_free. Callers reserve blocks
 * (kv_seq_reserve) before model_forward writes a position. Half floats
 * when the model was loaded with model_opts.kv_f16. */
int model_kv_create(const model *m, int n_seq_max, int budget_tokens,
                    int block_size, kv_cache **out, char *err, size_t errlen);

/* Runs the batch. logits_out receives one row of V floats per token whose
 * logits are wanted, in batch order ([n_wanted, V]); it may be NULL when
 * no logits are wanted (e.g. a prompt prefix). Validates everything
 * (token ids, sequence ids, positions, adapter indices and shapes) before
 * touching the cache; on an
 * error nothing is written. Every token's position must be reserved in the
 * cache (kv_check_write: covered by its sequence's block table, in a block
 * that sequence holds alone), else -EINVAL naming the token, sequence and
 * position. Updates kv_seq_len of every sequence in the batch to its last
 * position + 1. An encoder has no logits: -ENOTSUP (use model_encode).
 * The first batch with adapters may allocate the adapter workspace
 * (-ENOMEM). */
int model_forward(model *m, kv_cache *kv, const model_batch *b,
                  float *logits_out, char *err, size_t errlen);

/* 0 when lo fits m (a llama or gpt2 decoder): same layer count and every
 * site's shape and place in the fused weights as trn_lora_new would make
 * for this model; else -EINVAL naming the site (or -ENOTSUP for an
 * encoder). model_forward checks the adapters of each batch with it; a
 * caller that loads adapters checks once up front for a clear error. */
int model_lora_check(const model *m, const trn_lora *lo, char *err, size_t errlen);

/* Runs COMPLETE sequences: every token of each sequence in the batch, with
 * positions 0..n-1 in order. b->seq_id groups them: the tokens of one
 * sequence form one contiguous run of the batch (any ids >= 0, each id in
 * one run only); b->pos may be NULL (positions implied), else it must hold
 * 0..n-1 within each run; b->logits is ignored. Any number of sequences, at
 * most model_n_batch(m) tokens in all, each sequence at most model_n_ctx;
 * b->adapter is ignored (base model). Encoders (bert) attend
 * bidirectionally within a sequence (token type 0), never across
 * sequences; decoders attend causally. Writes the final hidden
 * state of every token, after the final norm (decoders: no lm_head), to
 * hidden_out [n_tokens, n_embd] in batch order. Needs no KV cache from the
 * caller (a decoder keeps one internally, grown to the largest batch seen,
 * freed with the model). Validates everything first: -EINVAL naming the
 * token at fault, and nothing is computed. One caller at a time per model. */
int model_encode(model *m, const model_batch *b, float *hidden_out, char *err,
                 size_t errlen);

/* ---- the weights of a decoder, for training (engine/train/) -------------- */

/* Borrowed pointers into a decoder's F32 weights, in the fused layouts the
 * forward pass uses. Absent weights (llama's biases and LayerNorm shifts,
 * gpt2's gate) are NULL. */
typedef struct model_layer_view {
    float *norm1_w, *norm1_b;  /* [C] attention-input norm */
    float *wqkv, *bqkv;        /* [NH*HS + 2*NKV*HS, C]: q rows, k rows, v rows */
    float *wo, *bo;            /* [C, NH*HS] */
    float *norm2_w, *norm2_b;  /* [C] MLP-input norm */
    float *wup, *bup;          /* llama: [2*FF, C] gate rows then up rows;
                                  gpt2: [FF, C] */
    float *wdown, *bdown;      /* [C, FF] */
} model_layer_view;

typedef struct model_decoder_view {
    float *tok_embd;           /* [V, C] */
    float *pos_embd;           /* [n_ctx_train, C] learned positions (gpt2) */
    float *norm_f_w, *norm_f_b;/* [C] final norm */
    float *output;             /* [V, C]; == tok_embd when tied */
    const float *inv_freq;     /* [n_rot / 2] RoPE frequencies (llama) */
    model_layer_view *layers;  /* [n_layer], owned by the model */
} model_decoder_view;

/* Fills v with the decoder's weights: writable, so a caller that owns the
 * model may change them (merging an adapter); the model must outlive v.
 * -ENOTSUP for encoders and for models whose matrices stayed quantized
 * (load them with model_opts.f32_weights). */
int model_decoder_view_get(model *m, model_decoder_view *v);

/* ---- for architecture files (arch_*.c) only ------------------------------ */

/* Where the weights come from while loading. */
struct model_src {
    model_format fmt;
    const char *path;         /* file or directory, for messages */
    gguf_file *gguf;          /* MODEL_FMT_GGUF */
    hf_dir *hf;               /* MODEL_FMT_HF */
    const hf_config *cfg;     /* MODEL_FMT_HF */
};

typedef struct model_arch_ops {
    /* Reads hyper-parameters into m->hp, binds and converts weights into
     * m->warena (two passes, see weights.h), allocates m->impl and scratch
     * for m->n_batch tokens and m->n_ctx positions. m->n_batch is set and
     * m->n_ctx holds the requested value (0: default) on entry. */
    int (*load)(model *m, const model_src *src, char *err, size_t errlen);
    /* Decoders: runs one validated chunk (n_tokens <= m->n_batch). Writes
     * the rows of wanted logits (b->logits, or the chunk's last token when
     * NULL) to logits_out; logits_out NULL: compute no logits at all.
     * hidden_out non-NULL (model_encode): writes instead the final-norm
     * hidden state of every token, [n_tokens, C], and no logits.
     * NULL for encoders. */
    void (*forward)(model *m, kv_cache *kv, const model_batch *b,
                    float *logits_out, float *hidden_out);
    /* Encoders: runs a validated model_encode batch whose n_seq sequences
     * are the runs [seq_start[i], seq_start[i + 1]) of its tokens (positions
     * 0..len-1). NULL for decoders (model.c encodes them through forward
     * and an internal KV cache). */
    void (*encode)(model *m, const model_batch *b, int n_seq,
                   const int *seq_start, float *hidden_out);
    /* Decoders: fills the weight view (model_decoder_view_get). */
    void (*view)(model *m, model_decoder_view *v);
    /* Frees m->impl (not the arena). */
    void (*free)(model *m);
} model_arch_ops;

extern const model_arch_ops model_arch_llama_ops;
extern const model_arch_ops model_arch_gpt2_ops;
extern const model_arch_ops model_arch_bert_ops;

/* Where an architecture applies adapters: after the base matmul into the
 * fused qkv output (q, k, v and qkv sites: before RoPE), after wo, after the
 * gate/up (gpt2: fc) matmul before the activation, after the down matmul;
 * always before the residual add. */
typedef enum model_lora_at {
    MODEL_LORA_AT_QKV,
    MODEL_LORA_AT_O,
    MODEL_LORA_AT_UP,
    MODEL_LORA_AT_DOWN,
} model_lora_at;

/* Adapter workspace (model_lora.c): the current chunk's adapter tokens
 * grouped by adapter, and scratch for their rows. Grown on demand by
 * model_forward before anything is computed; freed with the model. */
typedef struct model_lora_ws {
    const trn_lora *const *adapters; /* the current chunk's table */
    int n_groups;        /* adapters used by the chunk (0: base only) */
    int *gid;            /* [n_adapters] adapter of group g */
    int *gstart;         /* [n_adapters + 1] group g: tok[gstart[g]..gstart[g + 1]) */
    int *cursor;         /* [n_adapters + 1] counting-sort scratch */
    int *tok;            /* [n_batch] chunk token indices, by group, in order */
    int cap_adapters, cap_tokens;
    float *buf;          /* [cap_tokens, rank] A x, then [cap_tokens, width]
                            gathered input or output rows */
    size_t cap_buf;
} model_lora_ws;

struct model {
    model_arch_id arch;
    model_format fmt;
    const model_arch_ops *ops;
    model_hparams hp;
    int n_batch;          /* tokens per chunk */
    int n_ctx;            /* positions per sequence */
    wt_arena warena;      /* every weight, F32 */
    bool f32_weights;     /* model_opts.f32_weights */
    bool kv_f16;          /* model_opts.kv_f16 */
    size_t qbytes;        /* bytes of weights kept quantized (llama) */
    size_t embd_bytes;    /* bytes of an untied token-embedding table (llama) */
    void *impl;           /* the architecture's weights and scratch */
    kv_cache *enc_kv;     /* decoders: model_encode's own cache (lazy) */
    model_layer_view *views; /* decoders: model_decoder_view_get's layers */
    model_lora_ws lora;   /* decoders: adapter workspace (empty until used) */
    float *attn_ws;       /* model_attend's per-thread scores, attn_threads x n_ctx */
    int attn_threads;     /* threads attn_ws has room for (0: attention runs serially) */
    int *attn_rest;       /* model_attend's per-token list, n_batch entries (decoders) */
    float *prefill_ws;    /* ops_attention_prefill's scratch, grown as needed */
    size_t prefill_ws_bytes;
};

/* Looks up a tensor by name in the source. Absent: -ENOENT naming it and
 * the file, unless optional (then 0 with v->data == NULL). */
int model_src_tensor(const model_src *src, const char *name, wt_view *v,
                     bool optional, char *err, size_t errlen);

/* Looks up name, checks its shape ([rows, cols], or [cols] when rows is 0)
 * and converts it into dst (NULL in the counting pass). transpose: the
 * stored tensor is [cols, rows] and lands as [rows, cols]. */
int model_src_load(const model_src *src, const char *name, int64_t rows,
                   int64_t cols, int transpose, float *dst, char *err,
                   size_t errlen);

/* Takes n floats from the arena for a weight; in the real pass a NULL
 * result (arena exhausted) is reported as -ENOMEM. */
int model_take(model *m, size_t n, float **out, char *err, size_t errlen);

/* Attention for a chunk at one layer: stores each token's k/v rows into the
 * cache at (layer, seq, pos), then for each token computes
 * out[t] = attention(q[t], keys 0..pos[t] of its sequence), reading the
 * keys and values through the sequence's block table (ops_attention_paged).
 *   q[T, ldq] (NH*HS used), k/v[T, ldq] (NKV*HS used, already rotated),
 *   out[T, ldo], att[n_ctx] scratch. */
void model_attend(model *m, kv_cache *kv, int layer, const model_batch *b,
                  const float *q, const float *k, const float *v, size_t ldq,
                  float *out, size_t ldo, float *att);

/* Hyper-parameter getters for loaders. GGUF keys are "<arch>.<key>" when
 * key starts with '.', else used as is; HF keys are config.json paths.
 * Absent: def, or -EINVAL naming the key and file when required. Integers
 * must lie in [1, INT32_MAX] (or [0, ..] for ids), else -EINVAL. */
int model_gguf_int(const model_src *src, const char *key, int64_t def,
                   bool required, int *out, char *err, size_t errlen);
int model_gguf_float(const model_src *src, const char *key, double def,
                     double *out, char *err, size_t errlen);
int model_hf_int(const model_src *src, const char *key, int64_t def,
                 bool required, int *out, char *err, size_t errlen);
int model_hf_float(const model_src *src, const char *key, double def,
                   double *out, char *err, size_t errlen);
/* Token id (bos/eos) or -1 when absent, not an integer, or out of range
 * (GGUF writes 4294967295 for "none"; HF may give a list). */
int32_t model_token_id(const model_src *src, const char *key);

/* Adapters inside model.c's forward (model_lora.c). prepare: validates
 * b's adapter indices and table (model_lora_check on each adapter) and
 * grows the workspace for chunks of up to m->n_batch tokens; -EINVAL /
 * -ENOMEM with err naming the token or adapter. group: sorts the chunk's
 * adapter tokens into groups; returns the number of groups (0: the chunk
 * runs the base path and needs no model_lora_apply). */
int model_lora_prepare(model *m, const model_batch *b, char *err, size_t errlen);
int model_lora_group(model *m, const model_batch *chunk);
void model_lora_free(model *m);
/* For architectures, after the base matmul at `at` of layer `layer`: adds
 * each group's adapter sites there to the rows of its tokens.
 *   y[T, ldy]: the matmul's output (site outputs at their row0 columns),
 *   x[T, ldx]: its input. Only after model_lora_group returned > 0. */
void model_lora_apply(model *m, int layer, model_lora_at at, float *y, size_t ldy,
                      const float *x, size_t ldx);

/* Compacts the rows of x[T, C] whose logits are wanted to the front (in
 * place); returns their count. */
int model_gather_rows(const model_batch *b, float *x, int C);

#endif
