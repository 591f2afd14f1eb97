/* trn_dec_gguf.c - a pretrained model's hyper-parameters and weights into
 * a GGUF writer, in llama.cpp's llama layout (trn_dec.h). */
#include <errno.h>
#include <stdio.h>

#include "gguf_writer.h"
#include "trn_dec.h"

static int trn_gguf__meta(gguf_writer *w, const model_hparams *hp, const char *name)
{
    int rc = gguf_writer_set_str(w, "general.architecture", "llama");
    rc = rc ? rc : gguf_writer_set_str(w, "general.name", name);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.context_length", (uint32_t)hp->n_ctx_train);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.embedding_length", (uint32_t)hp->n_embd);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.block_count", (uint32_t)hp->n_layer);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.feed_forward_length", (uint32_t)hp->n_ff);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.attention.head_count", (uint32_t)hp->n_head);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.attention.head_count_kv",
                                       (uint32_t)hp->n_head_kv);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.rope.dimension_count", (uint32_t)hp->n_rot);
    rc = rc ? rc : gguf_writer_set_f32(w, "llama.rope.freq_base", (float)hp->rope_theta);
    rc = rc ? rc : gguf_writer_set_f32(w, "llama.attention.layer_norm_rms_epsilon",
                                       hp->norm_eps);
    rc = rc ? rc : gguf_writer_set_u32(w, "llama.vocab_size", (uint32_t)hp->n_vocab);
    return rc;
}

/* Adds one [rows, cols] (or [cols] when rows is 0) F32 tensor. */
static int trn_gguf__t(gguf_writer *w, const char *name, int64_t rows, int64_t cols,
                       const float *data)
{
    int64_t shape[2] = {rows, cols};
    return rows ? gguf_writer_add_tensor(w, name, 2, shape, GGUF_WRITER_F32, data)
                : gguf_writer_add_tensor(w, name, 1, shape + 1, GGUF_WRITER_F32, data);
}

int trn_dec_add_to_gguf(trn_dec *d, gguf_writer *w, const char *name, char *err,
                        size_t errlen)
{
    if (!trn_dec_owns_weights(d)) {
        snprintf(err, errlen, "only a model trained from scratch can be written as GGUF");
        return -ENOTSUP;
    }
    const model_hparams *hp = trn_dec_hp(d);
    const model_decoder_view *v = trn_dec_weights(d);
    int64_t C = hp->n_embd, V = hp->n_vocab, A = (int64_t)hp->n_head * hp->head_dim;
    int64_t KV = (int64_t)hp->n_head_kv * hp->head_dim, FF = hp->n_ff;
    int rc = trn_gguf__meta(w, hp, name);
    rc = rc ? rc : trn_gguf__t(w, "token_embd.weight", V, C, v->tok_embd);
    rc = rc ? rc : trn_gguf__t(w, "output_norm.weight", 0, C, v->norm_f_w);
    if (!hp->tied_output && !rc)
        rc = trn_gguf__t(w, "output.weight", V, C, v->output);
    char nm[64];
    for (int l = 0; l < hp->n_layer && !rc; l++) {
        const model_layer_view *L = &v->layers[l];
#define TRN_GGUF__T(suffix, rows, cols, data)                          \
        if (!rc) {                                                     \
            snprintf(nm, sizeof(nm), "blk.%d.%s", l, suffix);          \
            rc = trn_gguf__t(w, nm, rows, cols, data);                 \
        }
        TRN_GGUF__T("attn_norm.weight", 0, C, L->norm1_w)
        TRN_GGUF__T("attn_q.weight", A, C, L->wqkv)
        TRN_GGUF__T("attn_k.weight", KV, C, L->wqkv + A * C)
        TRN_GGUF__T("attn_v.weight", KV, C, L->wqkv + (A + KV) * C)
        TRN_GGUF__T("attn_output.weight", C, A, L->wo)
        TRN_GGUF__T("ffn_norm.weight", 0, C, L->norm2_w)
        TRN_GGUF__T("ffn_gate.weight", FF, C, L->wup)
        TRN_GGUF__T("ffn_up.weight", FF, C, L->wup + FF * C)
        TRN_GGUF__T("ffn_down.weight", C, FF, L->wdown)
#undef TRN_GGUF__T
    }
    if (rc)
        snprintf(err, errlen, "GGUF: %s", gguf_writer_error(w));
    return rc;
}
