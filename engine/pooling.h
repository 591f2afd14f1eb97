/* pooling.h - sentence embeddings from per-token hidden states
 * (model_encode): mean, CLS or last-token pooling, L2 normalization, and
 * the pooling configuration of a model (sentence-transformers files in an
 * HF folder, <arch>.pooling_type in a GGUF).
 *
 * Conventions follow sentence-transformers: the mean runs over every real
 * token of the sequence, [CLS] and [SEP] included (the caller passes only
 * real tokens, no padding); normalization is x / max(||x||_2, 1e-12).
 *
 * Threads: no state; any thread.
 */
#ifndef POOLING_H
#define POOLING_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    POOL_MEAN,  /* mean over all T tokens */
    POOL_CLS,   /* the first token ([CLS]) */
    POOL_LAST,  /* the last token (decoders) */
} pool_kind;

/* out[C] = pooling k of hidden[T, C] (T >= 1; T <= 0 writes zeros). The
 * mean is accumulated in double. out must not alias hidden. */
void pool_apply(pool_kind k, const float *hidden, int T, int C, float *out);

/* v[n] /= max(||v||_2, 1e-12), in place. */
void pool_l2_normalize(float *v, int n);

/* "mean", "cls", "last" ("?" when out of range). */
const char *pool_kind_name(pool_kind k);

/* The pooling configuration of the model at model_path (a GGUF file or an
 * HF folder), without loading its weights:
 *   HF folder  modules.json: normalize iff a sentence_transformers Normalize
 *              module is listed (absent file: the default); the Pooling
 *              module's config.json (1_Pooling/config.json without
 *              modules.json): pooling_mode_mean_tokens / cls_token /
 *              lasttoken (another mode alone: -ENOTSUP);
 *              sentence_bert_config.json max_seq_length, else config.json
 *              max_position_embeddings / n_positions.
 *   GGUF       <arch>.pooling_type (1 mean, 2 cls, 3 last; 0 or absent:
 *              the default; others -ENOTSUP), normalize = true (as
 *              llama.cpp's embeddings), max_seq_len = <arch>.context_length.
 * Defaults: encoders (model_arch_kind) mean + normalize, decoders last +
 * normalize. *max_seq_len is 0 when unknown (use model_n_ctx). Any output
 * pointer may be NULL. Returns 0, or a negative errno (-ENOENT no such
 * model, -EINVAL malformed file, -ENOTSUP unsupported pooling) with a
 * message naming the file in err. */
int pool_config_load(const char *model_path, pool_kind *kind, bool *normalize,
                     int *max_seq_len, char *err, size_t errlen);

#endif
