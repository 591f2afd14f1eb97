/* train_data.h - what the training commands (`alignd train dpo|reward`)
 * share: the preference pairs of a run, from a TRL JSONL file or from the
 * feedback store (server/store.h: rows of kind "pair", their split kept),
 * tokenized for a given model (pref.h), and the LoRA options with PEFT's
 * and TRL's defaults.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: main thread of a CLI command.
 */
#ifndef TRAIN_DATA_H
#define TRAIN_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "model.h"
#include "pref.h"
#include "tok.h"
#include "trn_lora.h"

typedef struct train_data_src {
    const char *jsonl;          /* a TRL preference file, or */
    const char *store;          /* the feedback store (SQLite path) */
    const char *chat_template;  /* family name for the messages form (NULL:
                                   messages are refused) */
} train_data_src;

/* Loads the pairs of src into s, tokenized with t for model m. */
int train_data_load(pref_set *s, const train_data_src *src, const model *m, const tok *t,
                    const pref_opts *o, char *err, size_t errlen);

/* LoRA settings as the commands take them (--lora-r, --lora-alpha,
 * --lora-dropout, --lora-targets). Defaults: PEFT's r 8, alpha 16, dropout
 * 0, targets q,v on llama and qkv (c_attn) on gpt2, as TRL's examples. */
typedef struct train_lora_opts {
    double r, alpha, dropout;
    const char *targets;        /* NULL: the default for the architecture */
} train_lora_opts;

void train_lora_opts_default(train_lora_opts *o);
/* The trn_lora_cfg of o for model m, seeded. */
int train_lora_cfg(trn_lora_cfg *out, const train_lora_opts *o, const model *m, uint64_t seed,
                   char *err, size_t errlen);

#endif
