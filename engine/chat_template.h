/* chat_template.h - rendering an OpenAI messages array into the prompt text a
 * chat model was trained on.
 *
 * alignd does not run Jinja. Like llama.cpp's llama_chat_apply_template, it
 * recognises the common template families by characteristic substrings of
 * the Jinja source (GGUF tokenizer.chat_template, tokenizer_config.json's
 * chat_template) or by a family name set in the configuration, and renders
 * each family with fixed code. Where llama.cpp's built-in renderer and the
 * model's own Jinja template differ (whitespace around Llama-2 assistant
 * turns, trimming, the leading BOS), alignd follows llama.cpp; the tests say
 * where.
 *
 * There is no silent fallback: a model whose template is absent or not
 * recognised is an error that tells the operator to set `chat_template` in
 * the model's configuration section.
 *
 * BOS: the leading BOS token is never rendered (the tokenizer adds it, as
 * llama.cpp's server does); `bos` only appears where a family repeats it
 * inside the history (llama2-sys-bos). `eos` closes assistant turns in the
 * [INST] families and every turn in zephyr. NULL selects the literal
 * llama.cpp hard-codes ("<s>", "</s>"; "<|endoftext|>" for zephyr).
 *
 * Special-token text inside message contents (say "<|im_end|>") is copied
 * as is; whether it becomes a control token is the tokenizer's decision
 * (it must tokenize user content without parsing special tokens).
 *
 * Threads: every function is pure (no shared state); any thread. */
#ifndef CHAT_TEMPLATE_H
#define CHAT_TEMPLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "eng_err.h"

/* The families: X(enum suffix, configuration name, alternation required).
 * "Alternation required" families (their Jinja templates raise otherwise)
 * accept an optional system message at index 0 followed by strictly
 * alternating user / assistant turns starting with user. */
#define CHAT_TEMPLATE_TABLE(X)                        \
    X(CHATML,            "chatml",            false)  \
    X(LLAMA2,            "llama2",            true)   \
    X(LLAMA2_SYS,        "llama2-sys",        true)   \
    X(LLAMA2_SYS_BOS,    "llama2-sys-bos",    true)   \
    X(LLAMA2_SYS_STRIP,  "llama2-sys-strip",  true)   \
    X(MISTRAL_V1,        "mistral-v1",        true)   \
    X(MISTRAL_V3,        "mistral-v3",        true)   \
    X(MISTRAL_V3_TEKKEN, "mistral-v3-tekken", true)   \
    X(MISTRAL_V7,        "mistral-v7",        false)  \
    X(LLAMA3,            "llama3",            false)  \
    X(ZEPHYR,            "zephyr",            false)  \
    X(GEMMA,             "gemma",             true)   \
    X(PHI3,              "phi3",              false)  \
    X(PHI4,              "phi4",              false)

typedef enum chat_template_kind {
#define CHAT__ENUM(e, name, alt) CHAT_TEMPLATE_##e,
    CHAT_TEMPLATE_TABLE(CHAT__ENUM)
#undef CHAT__ENUM
    CHAT_TEMPLATE_COUNT
} chat_template_kind;

/* One message; both strings are borrowed and NUL-terminated. */
typedef struct chat_message {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;  /* any bytes but NUL */
} chat_message;

/* The hint every "no usable template" error ends with. */
#define CHAT_TEMPLATE_HINT \
    "set chat_template = chatml|llama2|llama3|zephyr|gemma|phi3 in its [model.NAME] section"

/* Finds the family of `jinja_or_name`: first an exact family name from the
 * table ("chatml", "llama2-sys", ...), else the Jinja source matched by
 * substrings in llama.cpp's order (<|im_start|> -> chatml or phi4; a name
 * starting "mistral" or [INST] -> the mistral / llama2 variants;
 * <|assistant|> + <|end|> -> phi3; <|user|> + an end token -> zephyr, where
 * llama.cpp would say falcon3 / glmedge, see chat_template.c;
 * <start_of_turn> -> gemma; <|start_header_id|> -> llama3).
 * Returns 0 and sets *out; -ENOENT when the text is NULL or empty ("model has
 * no chat template; set ..."); -ENOTSUP when it is not recognised, or is
 * recognised as a family alignd does not render (the message names it).
 * Borrows the text. */
int chat_template_detect(const char *jinja_or_name, chat_template_kind *out, eng_err *err);

/* The configuration name of `k` ("chatml"), or "?" when out of range.
 * Returns a static string. */
const char *chat_template_name(chat_template_kind k);

/* Renders msgs[0..n) for family `k`; with add_generation_prompt the
 * assistant turn is opened at the end (for the [INST] families, whose
 * assistant turn opens implicitly after [/INST], it changes nothing).
 * On success returns 0 and sets *out to a new malloc'd NUL-terminated string
 * (caller frees) and *out_len to its strlen. On failure *out is NULL and the message names the field at fault:
 *   -EINVAL  n == 0 ("messages: empty"), a NULL role or content, a role
 *            other than system/user/assistant ("messages[2].role: ..."),
 *            an order the family forbids ("messages[3].role: chat template
 *            llama2 expects 'user' here ..."), a kind out of range, NULL out pointers;
 *   -ENOMEM  allocation failed or the length would overflow.
 * Borrows msgs, bos and eos. */
int chat_render(chat_template_kind k, const chat_message *msgs, size_t n,
                bool add_generation_prompt, const char *bos, const char *eos,
                char **out, size_t *out_len, eng_err *err);

#endif
