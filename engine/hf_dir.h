/* hf_dir.h - a Hugging Face model directory: config.json, safetensors weights
 * (model.safetensors, or shards named by model.safetensors.index.json) and
 * the tokenizer files that are present.
 *
 * hf_config  a parsed config.json with typed getters. Keys may be dotted
 *            paths into nested objects ("text_config.hidden_size"). A key that
 *            is absent or JSON null takes the caller's default; a key present
 *            with the wrong type is an error (never silently defaulted); the
 *            _req_ variants fail when the key is absent, naming key and file.
 * hf_dir     the directory: owns one hf_config and one st_set.
 *
 * Errors follow safetensors.h: 0 or a negative errno, and a message in the
 * caller's st_error naming the file, key or tensor at fault.
 *
 * Threads: open/close on any one thread; an opened hf_config or hf_dir is
 * immutable and may be read from any number of threads until closed.
 */
#ifndef HF_DIR_H
#define HF_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

/* Largest accepted config.json. */
#define HF_MAX_CONFIG_BYTES (16u * 1024u * 1024u)

/* Tokenizer files looked for: X(enum suffix, file name). */
#define HF_TOK_FILES(X)                                   \
    X(TOKENIZER_JSON, "tokenizer.json")                   \
    X(VOCAB_JSON, "vocab.json")                           \
    X(MERGES_TXT, "merges.txt")                           \
    X(VOCAB_TXT, "vocab.txt")                             \
    X(SPM_MODEL, "tokenizer.model")                       \
    X(SPECIAL_TOKENS_MAP, "special_tokens_map.json")      \
    X(TOKENIZER_CONFIG, "tokenizer_config.json")

typedef enum hf_tok_file {
#define HF__TOK_ENUM(e, file) HF_TOK_##e,
    HF_TOK_FILES(HF__TOK_ENUM)
#undef HF__TOK_ENUM
    HF_TOK_FILE_COUNT
} hf_tok_file;

typedef struct hf_config hf_config;
typedef struct hf_dir hf_dir;

/* ---- config.json ------------------------------------------------------- */

/* Parses a config.json image (len bytes, need not be NUL-terminated; the
 * bytes are copied, not borrowed). label names it in messages (NULL:
 * "config.json"). The root must be an object; "model_type", when present,
 * a string; "architectures", when present, an array of strings; duplicate
 * keys are rejected. On success *out is new (free with hf_config_free). */
int hf_config_parse(hf_config **out, const char *json, size_t len,
                    const char *label, st_error *err);
/* Reads and parses the file at path (at most HF_MAX_CONFIG_BYTES). */
int hf_config_load(hf_config **out, const char *path, st_error *err);
/* Accepts NULL. */
void hf_config_free(hf_config *c);

/* The label or path given at parse/load. Borrowed. */
const char *hf_config_label(const hf_config *c);
/* "model_type", or NULL when absent. Borrowed. */
const char *hf_config_model_type(const hf_config *c);
/* "architectures" entries (e.g. "GPT2LMHeadModel"); NULL when i is out of
 * range. Borrowed. */
size_t hf_config_n_architectures(const hf_config *c);
const char *hf_config_architecture(const hf_config *c, size_t i);
/* True when the key (dotted path) is present and not null. */
bool hf_config_has(const hf_config *c, const char *key);

/* Typed getters: *out = value, or def when the key is absent or null.
 * Integers accept JSON integers and integral reals within int64 range;
 * floats accept any JSON number. Strings are borrowed from the config. */
int hf_config_int(const hf_config *c, const char *key, int64_t def,
                  int64_t *out, st_error *err);
int hf_config_float(const hf_config *c, const char *key, double def,
                    double *out, st_error *err);
int hf_config_bool(const hf_config *c, const char *key, bool def, bool *out,
                   st_error *err);
int hf_config_str(const hf_config *c, const char *key, const char *def,
                  const char **out, st_error *err);

/* Required getters: -ENOENT "<file>: required key '<key>' is missing" when
 * absent or null; -EINVAL on a wrong type. */
int hf_config_req_int(const hf_config *c, const char *key, int64_t *out,
                      st_error *err);
int hf_config_req_float(const hf_config *c, const char *key, double *out,
                        st_error *err);
int hf_config_req_bool(const hf_config *c, const char *key, bool *out,
                       st_error *err);
int hf_config_req_str(const hf_config *c, const char *key, const char **out,
                      st_error *err);

/* ---- the directory ----------------------------------------------------- */

/* Opens a model directory: config.json is required; weights come from
 * model.safetensors if present, else model.safetensors.index.json (as
 * transformers prefers them); one of the two is required. Tokenizer files
 * are only noted, not read. On success *out is new (close with
 * hf_dir_close). */
int hf_dir_open(hf_dir **out, const char *path, st_error *err);
/* Closes weights and config. Accepts NULL. */
void hf_dir_close(hf_dir *d);

/* The directory path as given. Borrowed. */
const char *hf_dir_path(const hf_dir *d);
/* Returns a new malloc'd "<dir>/<name>" (caller frees), or NULL on OOM. */
char *hf_dir_file_path(const hf_dir *d, const char *name);
/* The parsed config.json and the weights. Borrowed. */
const hf_config *hf_dir_config(const hf_dir *d);
const st_set *hf_dir_weights(const hf_dir *d);
/* True when weights came from model.safetensors.index.json. */
bool hf_dir_is_sharded(const hf_dir *d);

/* Tokenizer files present (regular files): a test for one, or a bit mask
 * with bit (1u << f) set for each present file. */
bool hf_dir_has_tok_file(const hf_dir *d, hf_tok_file f);
unsigned hf_dir_tok_files(const hf_dir *d);
/* File name of a tokenizer file kind ("vocab.json"), "?" out of range. */
const char *hf_tok_file_name(hf_tok_file f);

/* Returns the tensor called name, or NULL when absent. Borrowed. */
const st_tensor *hf_dir_find(const hf_dir *d, const char *name);
/* Same, but absence is -ENOENT "<dir>: tensor '<name>' not found". */
int hf_dir_tensor(const hf_dir *d, const char *name, const st_tensor **out,
                  st_error *err);
/* Looks up a tensor and converts it to a new float array (caller frees);
 * *t, when not NULL, receives the tensor for its shape. */
int hf_dir_tensor_f32(const hf_dir *d, const char *name, float **out,
                      const st_tensor **t, st_error *err);

#endif
