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

/* The base model of a run and how its text becomes ids. */
typedef struct train_base {
    model *m;
    tok *t;
    pref_tok pt;             /* borrows t, bos and eos */
    char bos[64], eos[64];   /* BOS/EOS as text, for chat templates */
} train_base;

/* Loads the model at path (GGUF or HF folder, scratch for n_batch tokens)
 * and its tokenizer; messages are rendered with chat_template (a family
 * name) when given, else with the template the model file carries (what
 * the server uses), else refused. */
int train_base_load(train_base *b, const char *path, const char *chat_template, int n_batch,
                    char *err, size_t errlen);
void train_base_free(train_base *b);

typedef struct train_data_src {
    const char *jsonl;          /* a TRL preference file, or */
    const char *store;          /* the feedback store (SQLite path) */
} train_data_src;

/* Loads the pairs of src into s, tokenized as pt says. */
int train_data_load(pref_set *s, const train_data_src *src, const pref_tok *pt,
                    const pref_opts *o, char *err, size_t errlen);

/* Truncation settings from the commands' options (0: default) and the
 * model's context: max_len at most min(512, context); max_prompt_len
 * TRL's 128, at most half of max_len when unset. -EINVAL naming the
 * option when they do not fit. */
int train_pref_opts(pref_opts *po, double max_len, double max_prompt_len, double eval_frac,
                    bool no_eos, const model *m, char *err, size_t errlen);

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
