/* pref.h - preference pairs ready for DPO and reward training: token ids
 * of a prompt and of a chosen and a rejected response, with a train/eval
 * split, built from text (JSONL files, the feedback store) with one
 * tokenization and truncation rule.
 *
 * Tokenization: the prompt and each response are tokenized SEPARATELY and
 * concatenated (prompt + response), as TRL does, so the boundary between
 * them is exact; the prompt gets the tokenizer's BOS when the model adds
 * one; responses get EOS appended when opts.add_eos (TRL's default) and the
 * model has one. Only response tokens count in the log-probs (the prompt is
 * masked).
 *
 * Truncation (TRL's "keep_end" for prompts, "keep_start" for responses):
 *   1. a prompt longer than max_prompt_len keeps its LAST max_prompt_len
 *      tokens (the end of the prompt is what the response answers);
 *   2. then each response keeps its FIRST max_len - prompt tokens.
 * A pair whose prompt leaves no room for a response token is skipped and
 * counted. Truncated pairs are counted.
 *
 * JSONL: one object per line, TRL's two forms:
 *   {"prompt": "...", "chosen": "...", "rejected": "..."}
 *   {"prompt": [messages], "chosen": [messages], "rejected": [messages]}
 * (messages {"role", "content"}; the prompt is rendered with the chat
 * template and the generation prompt, each response is the content of its
 * assistant message(s) followed by the template's end of turn). Optional
 * fields: "split" ("train" | "eval"), "margin" (a number, for reward
 * models). Without "split", a stable hash of the line puts eval_frac of the
 * pairs in eval. Errors name the line and the field.
 *
 * Errors: 0 or a negative errno with a message in err.
 * Threads: a pref_set is plain data owned by its user.
 */
#ifndef PREF_H
#define PREF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chat_template.h"
#include "tok.h"

typedef struct pref_pair {
    int32_t *ids;        /* [n_prompt + n_chosen + n_rejected]: prompt, chosen,
                            rejected, one allocation */
    int n_prompt, n_chosen, n_rejected;
    bool eval;           /* held out */
    bool truncated;
    float margin;        /* reward-model margin (0 when not given) */
} pref_pair;

typedef struct pref_set {
    pref_pair *p;
    int n, cap;
    int n_eval;
    int n_truncated;
    int n_skipped;       /* no room for a response */
} pref_set;

typedef struct pref_opts {
    int max_prompt_len;  /* default 128 */
    int max_len;         /* prompt + response; default 512 */
    double eval_frac;    /* default 0.1 */
    bool add_eos;        /* default true */
} pref_opts;

/* How to turn text into ids: the tokenizer, and for the messages form the
 * chat template (has_chat false: messages are refused). */
typedef struct pref_tok {
    const tok *t;
    bool add_bos;                 /* prepend BOS to the prompt */
    int32_t eos_id;               /* -1: none */
    bool has_chat;
    chat_template_kind chat_kind;
    const char *bos_text, *eos_text; /* the template's BOS/EOS strings */
} pref_tok;

void pref_opts_default(pref_opts *o);

/* Adds one pair of texts (prompt may be ""). Truncates as above; a pair
 * with no room for a response is skipped (counted) and returns 0. */
int pref_add_text(pref_set *s, const pref_tok *pt, const char *prompt, const char *chosen,
                  const char *rejected, bool eval, float margin, const pref_opts *o, char *err,
                  size_t errlen);
/* The same for TRL's conversational form (JSON arrays of messages). */
struct json_t;
int pref_add_messages(pref_set *s, const pref_tok *pt, const struct json_t *prompt,
                      const struct json_t *chosen, const struct json_t *rejected, bool eval,
                      float margin, const pref_opts *o, char *err, size_t errlen);

/* One JSONL line of len bytes (no newline needed): a pair as above. */
int pref_add_jsonl_line(pref_set *s, const pref_tok *pt, const char *line, size_t len,
                        const pref_opts *o, char *err, size_t errlen);

/* Reads a JSONL file of pairs (see above). */
int pref_load_jsonl(pref_set *s, const char *path, const pref_tok *pt, const pref_opts *o,
                    char *err, size_t errlen);

/* The token spans of pair p: prompt, chosen, rejected. */
static inline const int32_t *pref_prompt(const pref_pair *p) { return p->ids; }
static inline const int32_t *pref_chosen(const pref_pair *p) { return p->ids + p->n_prompt; }
static inline const int32_t *pref_rejected(const pref_pair *p)
{
    return p->ids + p->n_prompt + p->n_chosen;
}

void pref_set_free(pref_set *s);

/* A right-padded batch of n pairs for trn_dec (trn_dec.h): sequence 2i is
 * pair idx[i]'s prompt + chosen, 2i + 1 its prompt + rejected; lens are
 * the real lengths; targets are the next token on positions whose next
 * token is a response token (so summing log-probs gives the response's
 * log-probability), -1 elsewhere. Buffers grow as needed; reuse b. */
typedef struct pref_batch {
    int B, L;
    int32_t *tokens, *targets, *lens;
    size_t cap_tokens;
    int cap_seqs;
} pref_batch;

int pref_batch_make(pref_batch *b, const pref_set *s, const int *idx, int n, char *err,
                    size_t errlen);
void pref_batch_free(pref_batch *b);

#endif
