/* tok_impl.h - private to engine/tok*.c: the tok struct and the pieces the
 * BPE and SPM tokenizers share (string map, pair map, merge heap, scratch).
 * Nothing outside engine/tok*.c includes this, except BPE training
 * (engine/train/bpe_train.c), which needs tok__bpe_split and
 * tok__byte_to_unicode to learn from exactly what tok_encode sees. */
#ifndef TOK_IMPL_H
#define TOK_IMPL_H

#include "tok.h"

#include <stdint.h>

/* Open-addressing map from a vocabulary string to its id (the strings live
 * in the tok's arena; the map stores ids only). */
typedef struct tok__strmap {
    int32_t *slot; /* [cap] id, or -1 for empty */
    size_t cap;    /* power of two */
} tok__strmap;

/* Open-addressing map from a pair of token ids to (merge rank, merged id). */
typedef struct tok__pairent {
    uint64_t key; /* (left << 32) | right; UINT64_MAX = empty */
    int32_t rank;
    int32_t id;
} tok__pairent;

typedef struct tok__pairmap {
    tok__pairent *slot; /* [cap] */
    size_t cap;         /* power of two, or 0 */
} tok__pairmap;

struct tok {
    tok_kind kind;
    size_t n;              /* vocabulary size */
    char *arena;           /* every string below */
    size_t arena_cap, arena_used;
    const char **text;     /* [n] vocabulary strings, NUL-terminated */
    uint32_t *text_len;    /* [n] */
    const char **piece;    /* [n] bytes a NORMAL token decodes to */
    uint32_t *piece_len;   /* [n] */
    float *score;          /* [n] SPM scores (0 for BPE) */
    int8_t *type;          /* [n] TOK_TYPE_* */
    tok__strmap map;
    int32_t bos, eos, unk, pad; /* ids or TOK_ID_NONE */
    bool add_bos, add_eos, add_space_prefix;
    /* Special tokens matched in text: ids of CONTROL/UNKNOWN/USER_DEFINED
     * tokens with non-empty text, grouped by first byte, longest first. */
    int32_t *special;          /* [n_special] */
    size_t n_special;
    size_t n_user_defined;     /* how many of them are USER_DEFINED (always matched) */
    uint32_t special_start[257]; /* bucket of first byte b: [start[b], start[b+1]) */
    int32_t byte_id[256];  /* BPE: token of byte b; SPM: "<0xNN>" token; -1 none */
    /* BPE only */
    tok__pairmap merges;
    void *re;              /* pcre2_code * (GPT-2 pre-tokenizer) */
    /* WordPiece only (tok_wordpiece.c) */
    int32_t mask;          /* [MASK] id or TOK_ID_NONE (every kind) */
    struct tok__wp *wp;    /* settings; NULL for other kinds */
};

/* One symbol of a word being merged: a byte range of the word plus the
 * token it currently is; linked to its neighbours. */
typedef struct tok__sym {
    int32_t id;     /* current token id, or -1 (not in the vocabulary) */
    uint32_t len;   /* bytes; 0 once merged into its left neighbour */
    int32_t prev;   /* index of the left neighbour, or -1 */
    int32_t next;   /* index of the right neighbour, or -1 */
} tok__sym;

/* A candidate merge of two adjacent symbols; the heap pops the smallest key,
 * then the leftmost. */
typedef struct tok__cand {
    double key;     /* BPE: merge rank; SPM: -score */
    uint32_t left;  /* symbol index of the left part */
    uint32_t right; /* symbol index of the right part */
    uint32_t len;   /* left.len + right.len when queued (stale check) */
    int32_t id;     /* the merged token */
} tok__cand;

typedef struct tok__heap {
    tok__cand *v;
    size_t n, cap;
} tok__heap;

/* Per-call scratch for tok_encode, reused across fragments and words. */
typedef struct tok__scratch {
    tok__sym *sym;
    size_t sym_cap;
    tok__heap heap;
    char *buf;          /* SPM: the escaped fragment */
    size_t buf_cap;
    void *md;           /* BPE: pcre2_match_data * */
} tok__scratch;

/* Where encoded ids go: at most max are stored, all are counted. */
typedef struct tok__sink {
    int32_t *out;
    size_t max;
    size_t n;
} tok__sink;

static inline void tok__emit(tok__sink *s, int32_t id) {
    if (s->n < s->max) s->out[s->n] = id;
    s->n++;
}

/* tok.c */
#define tok__err eng_fail /* every tok_ error goes through the engine's report */
uint64_t tok__hash(const char *s, size_t len);
int32_t tok__map_find(const tok *t, const char *s, size_t len);
int tok__heap_push(tok__heap *h, tok__cand c);
bool tok__heap_pop(tok__heap *h, tok__cand *out);
int tok__scratch_syms(tok__scratch *sc, size_t n);
int tok__scratch_buf(tok__scratch *sc, size_t n);

/* Allocates a tok of kind with copies of tokens[0..n) as its vocabulary
 * (pieces start equal to the text) and the string map; resolves options'
 * special ids (validated against n). Returns TOK_OK and *out, or an error. */
int tok__create_base(tok **out, tok_kind kind, const char *const *tokens, size_t n,
                     const tok_options *opt, tok_err *err);
/* Room for a piece of len bytes in the arena (which tok__create_base sized
 * for pieces no longer than their text). */
char *tok__piece_space(tok *t, size_t len);
/* After types and pieces are final: builds the special-token buckets. */
int tok__finish(tok *t, tok_err *err);

/* tok_bpe.c / tok_spm.c: encode one fragment of plain text (no special
 * tokens in it). prefix_space: SPM adds the dummy prefix. */
int tok__bpe_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok__scratch *sc,
                    tok_err *err);
int tok__spm_encode(const tok *t, const char *s, size_t len, bool prefix_space, tok__sink *sink,
                    tok__scratch *sc, tok_err *err);
void tok__bpe_release(tok *t);           /* frees the regex */
/* tok_bpe.c: GPT-2 pre-tokenization as tok__bpe_encode does it (valid UTF-8
 * runs split by t->re, each maximal invalid run one pre-token), calling
 * word(ctx, w, m) per pre-token in order. t is a TOK_KIND_BPE tokenizer;
 * sc->md is created on first use (free with tok__bpe_scratch_free). Returns
 * TOK_OK, TOK_ENOMEM, or the first non-zero value word returns. */
typedef int (*tok__word_fn)(void *ctx, const char *w, size_t m);
int tok__bpe_split(const tok *t, tok__scratch *sc, const char *s, size_t len, tok__word_fn word,
                   void *ctx);
/* tok_wordpiece.c: encode one fragment (no special tokens in it); free the
 * WordPiece settings (accepts any kind). */
int tok__wordpiece_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok_err *err);
void tok__wordpiece_release(tok *t);
void tok__bpe_scratch_free(tok__scratch *sc); /* frees the match data */
/* tok_clip.c (issue "CLIP"): encode one fragment (no special tokens in it);
 * decode a sequence (tok_decode's CLIP branch; ids not yet checked). The
 * regex lives in t->re and the merges in t->merges, freed as BPE's are. */
int tok__clip_encode(const tok *t, const char *s, size_t len, tok__sink *sink, tok__scratch *sc,
                     tok_err *err);
int tok__clip_decode(const tok *t, const int32_t *ids, size_t n_ids, unsigned flags, char *buf,
                     size_t cap, size_t *n, tok_err *err);
/* tok_bpe.c: pieces GPT-2 BPE and CLIP share.
 * tok__byte_to_unicode: GPT-2's bytes_to_unicode table (byte -> code point).
 * tok__build_merges: fills t->merges from "left right" strings (rank = index);
 *   who names the caller in the out-of-memory message.
 * tok__bpe_merge_word: BPE of one pre-token w[0..m), one symbol per byte, the
 *   last symbol's token replaced by *last_id when last_id is not NULL.
 * tok__read_vocab_merges: reads vocab.json + merges.txt and calls create;
 *   who names the public caller in its messages. */
typedef int (*tok__create_merges_fn)(tok **out, const char *const *tokens, size_t n_tokens,
                                     const char *const *merges, size_t n_merges,
                                     const int32_t *types, const tok_options *opt, tok_err *err);
void tok__byte_to_unicode(uint32_t cp[256]);
int tok__build_merges(tok *t, const char *const *merges, size_t n_merges, const char *who,
                      tok_err *err);
/* tok__bpe_tables: types (given, or CONTROL for the special ids), pieces
 * (byte-level text -> bytes; end_of_word: trailing "</w>" -> ' ') and byte_id. */
int tok__bpe_tables(tok *t, const int32_t *types, bool end_of_word, tok_err *err);
int tok__bpe_merge_word(const tok *t, const char *w, size_t m, const int32_t *last_id,
                        tok__sink *sink, tok__scratch *sc);
int tok__read_vocab_merges(tok **out, const char *vocab_json_path, const char *merges_path,
                           const tok_options *opt, tok_err *err, const char *who,
                           tok__create_merges_fn create);
/* tok.c: checks types[0..t->n) (0..TOK_TYPE_BYTE; UNDEFINED becomes NORMAL)
 * into t->type. Returns TOK_OK or TOK_EINVAL. */
int tok__set_types(tok *t, const int32_t *types, tok_err *err);
/* tok_wordpiece.c: Python's str.lower on code points a[0..n) (utf8proc's
 * simple mapping, U+0130 -> "i" U+0307, final sigma) into b (room for 2n);
 * returns the length written. */
size_t tok__lower_utf32(const int32_t *a, size_t n, int32_t *b);
/* tok.c: the bytes token id decodes to under flags (borrowed or static). */
void tok__piece_of(const tok *t, int32_t id, unsigned flags, const char **p, size_t *len);

#endif
