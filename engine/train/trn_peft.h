/* trn_peft.h - LoRA adapters (trn_lora.h) in Hugging Face PEFT's format, so
 * that PEFT loads what alignd trains and alignd loads what PEFT trains.
 *
 * An adapter is a folder holding
 *   adapter_config.json        LoraConfig's fields: peft_type "LORA",
 *                              task_type "CAUSAL_LM", r, lora_alpha,
 *                              lora_dropout, target_modules, ...
 *   adapter_model.safetensors  lora_A [r, in] and lora_B [out, r] of every
 *                              module, named as PEFT names them:
 *     llama  base_model.model.model.layers.<l>.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
 *            base_model.model.model.layers.<l>.mlp.{gate,up,down}_proj.lora_{A,B}.weight
 *     gpt2   base_model.model.transformer.h.<l>.attn.c_attn...   (target qkv)
 *            base_model.model.transformer.h.<l>.attn.c_proj...   (target o)
 *            base_model.model.transformer.h.<l>.mlp.c_fc...      (target up)
 *            base_model.model.transformer.h.<l>.mlp.c_proj...    (target down)
 * PEFT keeps nn.Linear's [out, in] convention for A and B also on gpt2's
 * Conv1D modules (fan_in_fan_out only transposes the merged delta).
 *
 * What cannot be said in PEFT's terms is refused, never approximated: gpt2
 * q, k or v alone (slices of c_attn; use the qkv target), llama's fused qkv,
 * and on load rank_pattern, alpha_pattern, layers_to_transform,
 * modules_to_save, bias other than "none", DoRA and the other options that
 * change the adapter's structure, a target module alignd has no site for,
 * target_modules given as a regular expression, and adapter_model.bin
 * (pickle). use_rslora (scale alpha / sqrt(r)) is supported both ways.
 *
 * GGUF row order: a llama loaded from GGUF (rope_layout OPS_ROPE_ADJACENT)
 * has the rows of each q and k head permuted against Hugging Face's (the
 * converter interleaves rows [0, hd/2) and [hd/2, hd) of every head), so the
 * rows of a q or k adapter's B trained on it are too. Saving puts them back
 * in Hugging Face's order and loading onto such a model permutes them again,
 * so a file means the same thing whichever way the base was loaded.
 *
 * Files are written through "<name>.tmp" + fsync + rename, the weights
 * first and the config last: a folder that has a config has its weights,
 * and overwriting an adapter leaves only the moment between the two renames
 * in which a reader can pair new weights with the old config (a changed
 * rank or target set is then caught by the shape checks).
 *
 * Errors: 0 or a negative errno (-EINVAL malformed or mismatched, -ENOENT
 * missing file or tensor, -ENOTSUP valid PEFT that alignd cannot represent,
 * -ENOMEM, or the errno of a failed system call), with a message naming the
 * file, key or tensor at fault in err.
 * Threads: no shared state; the adapter must not change during a save.
 */
#ifndef TRN_PEFT_H
#define TRN_PEFT_H

#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "trn_lora.h"

#define TRN_PEFT_CONFIG_FILE "adapter_config.json"
#define TRN_PEFT_WEIGHTS_FILE "adapter_model.safetensors"
/* Largest adapter_config.json read. */
#define TRN_PEFT_MAX_CONFIG_BYTES (1u << 20)

/* What alignd takes from an adapter_config.json. */
typedef struct trn_peft_config {
    int rank;             /* r (PEFT's default 8 when absent) */
    float alpha;          /* lora_alpha (default 8) */
    float dropout;        /* lora_dropout (default 0) */
    unsigned targets;     /* trn_lora_target bit mask from target_modules */
    bool use_rslora;      /* scale = alpha / sqrt(r) instead of alpha / r */
    char base_model[256]; /* base_model_name_or_path, "" when null
                             (truncated when longer) */
} trn_peft_config;

/* The PEFT module of target t on arch, as written to target_modules
 * ("q_proj", "c_attn", "attn.c_proj", ...), or NULL when PEFT has none
 * (gpt2 q/k/v/gate, llama qkv). Static storage. */
const char *trn_peft_module_name(model_arch_id arch, trn_lora_target t);

/* Parses an adapter_config.json image of len bytes (need not be
 * NUL-terminated; not kept) for a model of arch into *out. label names it
 * in messages (NULL: "adapter_config.json"). Target modules are matched as
 * PEFT matches them (a module whose name is, or ends with "." and, the
 * entry: "c_proj" on gpt2 means both o and down); null target_modules take
 * PEFT's defaults (llama q_proj, v_proj; gpt2 c_attn). */
int trn_peft_config_parse(trn_peft_config *out, const char *json, size_t len,
                          model_arch_id arch, const char *label, char *err, size_t errlen);

/* Writes lo, an adapter for a model of arch and shape hp (the shape and
 * rope layout it was trained with), to the folder dir (created, with its
 * parents, when missing) as adapter_model.safetensors (F32) and
 * adapter_config.json. base_model (may be NULL) becomes
 * base_model_name_or_path. lo is borrowed and not changed. */
int trn_peft_save(const trn_lora *lo, model_arch_id arch, const model_hparams *hp,
                  const char *base_model, const char *dir, char *err, size_t errlen);

/* Reads the PEFT adapter in dir for a model of arch and shape hp: on
 * success *out is a new adapter (free with trn_lora_free) with the config's
 * rank, alpha, dropout and targets, A and B from the file (F32, F16 or BF16;
 * the names with or without the "base_model.model." prefix and with
 * ".weight", ".default.weight" or no suffix, as PEFT versions and
 * transformers have written them) and scale alpha / r, or alpha / sqrt(r)
 * with use_rslora. Every tensor's shape is checked against the model, and
 * every tensor in the file must be used. On failure *out is NULL. */
int trn_peft_load(trn_lora **out, const char *dir, model_arch_id arch, const model_hparams *hp,
                  char *err, size_t errlen);

#endif
