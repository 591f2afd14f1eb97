/* tok.h - the engine's tokenizers behind one interface.
 *
 * A `tok` turns UTF-8 text into token ids and token ids back into bytes. Three
 * algorithms are implemented:
 *   - TOK_KIND_BPE: GPT-2 byte-level BPE (tok_bpe.c): GPT-2's pre-tokenizer
 *     regex, bytes mapped to tokens, merges applied by rank. No BOS.
 *   - TOK_KIND_SPM: llama SentencePiece-BPE (tok_spm.c): spaces become U+2581,
 *     a dummy-prefix U+2581, highest-score merges, byte fallback <0xNN>.
 *   - TOK_KIND_WORDPIECE: BERT's WordPiece (tok_wordpiece.c): BERT's basic
 *     tokenizer (cleaning, CJK split, lower-case and accent strip, punctuation
 *     split), then greedy longest-match-first with "##" continuations.
 * A tokenizer owns a copy of everything it was built from (the vocabulary
 * arrays passed in are borrowed only for the duration of the call), so GGUF
 * and tokenizer files can be freed after creation.
 *
 * Token types are GGUF's tokenizer.ggml.token_type values (TOK_TYPE_*).
 * Special tokens: CONTROL and UNKNOWN tokens are recognised in text only when
 * the caller asks (TOK_ENC_PARSE_SPECIAL); USER_DEFINED tokens are always
 * recognised (llama.cpp's rule). Where several special tokens could match,
 * the leftmost occurrence wins, then the longest token at that position.
 *
 * Errors: functions return TOK_OK (0) or a negative TOK_E* code and, when
 * `err` is not NULL, fill it with a message that names what is at fault
 * ("merges.txt line 17: expected two tokens separated by a space").
 *
 * Threads: a tok is immutable after creation; any number of threads may call
 * tok_encode / tok_decode* / accessors on the same tok at once. Create and
 * free on one thread, with no calls in flight.
 */
#ifndef TOK_H
#define TOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"

typedef struct tok tok;

typedef enum tok_kind {
    TOK_KIND_BPE = 1,
    TOK_KIND_SPM = 2,
    TOK_KIND_WORDPIECE = 3, /* added with WordPiece (issue "Embeddings"): see below */
    TOK_KIND_CLIP = 4,      /* added with issue "CLIP": see the CLIP block below */
} tok_kind;

/* GGUF tokenizer.ggml.token_type values. */
enum {
    TOK_TYPE_UNDEFINED = 0,
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,
    TOK_TYPE_USER_DEFINED = 4,
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6,
};

/* Error codes (negative). */
enum {
    TOK_OK = 0,
    TOK_EINVAL = -1,  /* bad argument or inconsistent vocabulary */
    TOK_ENOMEM = -2,  /* allocation failed */
    TOK_EIO = -3,     /* a file could not be read */
    TOK_EFORMAT = -4, /* a file or buffer is malformed */
    TOK_ESPACE = -5,  /* output buffer too small; the needed size is reported */
};

typedef eng_err tok_err; /* messages read "what: why" */

/* Special-token id values in tok_options. */
#define TOK_ID_NONE (-1) /* the tokenizer has no such token */
#define TOK_ID_AUTO (-2) /* find it in the vocabulary (see tok_options_init) */

typedef struct tok_options {
    int32_t bos_id, eos_id, unk_id, pad_id; /* a token id, TOK_ID_NONE or TOK_ID_AUTO */
    bool add_bos;          /* TOK_ENC_ADD_SPECIAL prepends bos_id (when there is one) */
    bool add_eos;          /* TOK_ENC_ADD_SPECIAL appends eos_id (when there is one) */
    bool add_space_prefix; /* SPM: prefix U+2581 to text at the start and after a special token */
} tok_options;

/* Fills *o with the conventions of a kind:
 *   BPE: bos/eos/unk = AUTO (the token "<|endoftext|>" when present),
 *        pad NONE, add_bos false, add_eos false, add_space_prefix false.
 *   SPM: bos AUTO ("<s>"), eos AUTO ("</s>"), unk AUTO (the first UNKNOWN
 *        token, else "<unk>"), pad NONE, add_bos true, add_eos false,
 *        add_space_prefix true.
 *   WORDPIECE: bos AUTO ("[CLS]"), eos AUTO ("[SEP]"), unk AUTO ("[UNK]"),
 *        pad AUTO ("[PAD]"), add_bos true, add_eos true (so
 *        TOK_ENC_ADD_SPECIAL gives [CLS] ... [SEP]), add_space_prefix false.
 *   CLIP: bos AUTO ("<|startoftext|>"), eos, unk and pad AUTO
 *        ("<|endoftext|>"), add_bos true, add_eos true, add_space_prefix false.
 * A NULL tok_options pointer anywhere below means these defaults. */
void tok_options_init(tok_options *o, tok_kind kind);

/* ---- creation --------------------------------------------------------- */

/* Builds a GPT-2 byte-level BPE tokenizer. tokens[i] is the vocabulary
 * string of id i in GPT-2's byte-to-unicode alphabet ("Ġthe"); merges[r] is
 * the merge of rank r as "left right" (merges.txt / tokenizer.ggml.merges).
 * types (nullable) are token types; without them every token is NORMAL
 * except the bos/eos/unk/pad tokens, which are CONTROL. A token string with
 * characters outside the byte alphabet (e.g. "<|im_start|>" is fine, but a
 * literal space is not) decodes to its own UTF-8 text and is reachable only
 * as a special token. A merge whose parts or result are not in the
 * vocabulary is skipped; for a duplicated merge the later rank counts (as in
 * OpenAI's encoder.py). Borrows all arrays. On success *out is a new
 * tokenizer (free with tok_free). */
int tok_create_bpe(tok **out, const char *const *tokens, size_t n_tokens,
                   const char *const *merges, size_t n_merges, const int32_t *types,
                   const tok_options *opt, tok_err *err);
/* Byte b as GPT-2's byte-to-unicode alphabet spells it in such a
 * vocabulary ("!" for '!', "Ġ" for ' '): UTF-8 into out, NUL-terminated;
 * returns its length (1 or 2). For callers that build byte-level
 * vocabularies. */
size_t tok_bpe_byte_text(uint8_t b, char out[5]);

/* Reads a Hugging Face GPT-2 vocab.json (object token -> id, ids dense from
 * 0) and merges.txt (optional "#version" first line, then "left right" per
 * line), then tok_create_bpe. */
int tok_create_bpe_from_files(tok **out, const char *vocab_json_path, const char *merges_path,
                              const tok_options *opt, tok_err *err);

/* Builds a llama SentencePiece-BPE tokenizer from GGUF's
 * tokenizer.ggml.tokens / scores / token_type arrays (types nullable: then
 * "<0xNN>" tokens are BYTE, the unk token UNKNOWN, bos/eos/pad CONTROL and
 * the rest NORMAL). Borrows all arrays. On success *out is a new tokenizer. */
int tok_create_spm(tok **out, const char *const *tokens, const float *scores,
                   const int32_t *types, size_t n_tokens, const tok_options *opt, tok_err *err);

/* Frees a tokenizer; accepts NULL. */
void tok_free(tok *t);

/* ---- SentencePiece .model files (tok_spm_model.c) ----------------------
 * A SentencePiece ModelProto (protobuf) holds the pieces with their scores
 * and types, plus trainer and normalizer settings. Only what the tokenizer
 * needs is read; unknown fields are skipped. Parsing is bounds-checked on a
 * cursor and safe on arbitrary bytes. */
typedef struct tok_spm_model {
    char **pieces;          /* [n] NUL-terminated piece strings */
    float *scores;          /* [n] */
    int32_t *types;         /* [n] TOK_TYPE_* (SentencePiece uses the same numbers) */
    size_t n;
    int model_type;         /* trainer_spec.model_type: 1 unigram, 2 bpe, 3 word, 4 char (default 1) */
    int32_t unk_id, bos_id, eos_id, pad_id; /* trainer_spec (defaults 0, 1, 2, -1); -1 = none */
    bool byte_fallback;     /* trainer_spec.byte_fallback */
    bool add_dummy_prefix;  /* normalizer_spec.add_dummy_prefix (default true) */
    bool remove_extra_whitespaces; /* normalizer_spec (default true; not applied by tok_spm) */
} tok_spm_model;

/* Parses a ModelProto from buf[0..len) into *m (which is overwritten).
 * Returns TOK_OK, or TOK_EFORMAT naming the offset and field at fault. On
 * failure *m is left empty. Free with tok_spm_model_free. */
int tok_spm_model_parse(tok_spm_model *m, const void *buf, size_t len, tok_err *err);

/* Reads and parses a .model file. */
int tok_spm_model_load(tok_spm_model *m, const char *path, tok_err *err);

/* Frees what *m owns; accepts NULL; leaves *m empty. */
void tok_spm_model_free(tok_spm_model *m);

/* Builds an SPM tokenizer from a parsed model. With opt NULL the unk, bos,
 * eos and pad ids and add_space_prefix (add_dummy_prefix) come from the
 * model, with add_bos true and add_eos false. With opt, its TOK_ID_AUTO ids
 * take the model's ids and everything else is used as given. Borrows m.
 * Fails with TOK_EINVAL unless model_type is BPE (2). */
int tok_create_spm_from_model(tok **out, const tok_spm_model *m, const tok_options *opt,
                              tok_err *err);

/* ---- encoding ------------------------------------------------------------ */

enum {
    TOK_ENC_ADD_SPECIAL = 1u,   /* add bos/eos as the tokenizer's add_bos/add_eos say */
    TOK_ENC_PARSE_SPECIAL = 2u, /* recognise CONTROL/UNKNOWN token text, e.g. "<|endoftext|>" */
};

/* Encodes text[0..len) (UTF-8; invalid bytes are tolerated as described in
 * tok_bpe.c and tok_spm.c) with flags TOK_ENC_*. Writes at most max ids to
 * out and stores the total count in *n. Returns TOK_OK, or TOK_ESPACE when
 * the count exceeds max (out then holds the first max ids; call again with
 * room for *n), or TOK_ENOMEM. Thread-safe. */
int tok_encode(const tok *t, const char *text, size_t len, unsigned flags, int32_t *out,
               size_t max, size_t *n, tok_err *err);

/* ---- decoding ------------------------------------------------------------ */

enum {
    TOK_DEC_SPECIAL = 1u,     /* render CONTROL and UNKNOWN tokens as their text */
    TOK_DEC_STRIP_SPACE = 2u, /* drop one leading space (the SPM dummy prefix) */
};

/* Writes the bytes of token id (flags TOK_DEC_*) to buf and their count to
 * *n. The bytes need not be valid UTF-8 on their own (a byte token, half a
 * character of a GPT-2 token): feed them to a tok_stream (tok_utf8.h).
 * BPE: the byte-level string mapped back to bytes. SPM: U+2581 becomes a
 * space, <0xNN> becomes byte NN. CONTROL tokens give nothing and UNKNOWN
 * tokens U+FFFD unless TOK_DEC_SPECIAL. Returns TOK_OK, TOK_EINVAL for an
 * id out of range, or TOK_ESPACE when cap < *n (nothing written). */
int tok_decode_piece(const tok *t, int32_t id, unsigned flags, char *buf, size_t cap, size_t *n,
                     tok_err *err);

/* Decodes a whole sequence into buf (*n bytes, not NUL-terminated). For an
 * SPM tokenizer with add_space_prefix, one leading space is stripped from the
 * first piece after an optional leading BOS (the dummy prefix the encoder
 * added), so decode(encode(s)) == s; this is Hugging Face LlamaTokenizer's
 * and SentencePiece's convention (llama.cpp keeps the space when a BOS
 * leads). CONTROL tokens render only with TOK_DEC_SPECIAL. Output is the
 * pieces' bytes exactly: no Hugging Face clean_up_tokenization_spaces (" ."
 * stays " ."), no UTF-8 repair (use tok_stream for that). Returns TOK_OK,
 * TOK_EINVAL for a bad id, or TOK_ESPACE with the needed size in *n. */
int tok_decode(const tok *t, const int32_t *ids, size_t n_ids, unsigned flags, char *buf,
               size_t cap, size_t *n, tok_err *err);

/* ---- accessors (any thread) ------------------------------------------- */

tok_kind tok_get_kind(const tok *t);
size_t tok_n_vocab(const tok *t);
int32_t tok_bos(const tok *t); /* TOK_ID_NONE when absent */
int32_t tok_eos(const tok *t);
int32_t tok_unk(const tok *t);
int32_t tok_pad(const tok *t);
bool tok_adds_bos(const tok *t);
bool tok_adds_eos(const tok *t);

/* The vocabulary string of id ("Ġthe", "▁the", "<0x0A>"), borrowed for the
 * tokenizer's lifetime, with its length in *len (nullable); NULL for an id
 * out of range. */
const char *tok_token_text(const tok *t, int32_t id, size_t *len);

/* TOK_TYPE_* of id, or -1 for an id out of range. */
int tok_token_type(const tok *t, int32_t id);

/* SPM merge score of id (0 for BPE tokens and ids out of range). */
float tok_token_score(const tok *t, int32_t id);

/* Id of the exact vocabulary string text[0..len), or TOK_ID_NONE. When the
 * vocabulary repeats a string, the highest id holding it (llama.cpp's rule). */
int32_t tok_find(const tok *t, const char *text, size_t len);

/* ==== WordPiece (added with issue "Embeddings"; tok_wordpiece.c) ==========
 *
 * Encoding follows Hugging Face's slow BertTokenizer (transformers 4.36):
 *   1. clean (clean_text): drop NUL, U+FFFD, invalid UTF-8 and every
 *      character of a C* category except \t \n \r; \t \n \r, Zs, U+2028 and
 *      U+2029 become spaces;
 *   2. put spaces around CJK ideographs (tokenize_chinese_chars; the blocks
 *      BERT lists: U+4E00-9FFF, 3400-4DBF, 20000-2A6DF, 2A700-2CEAF,
 *      F900-FAFF, 2F800-2FA1F);
 *   3. NFC (nfc; the slow tokenizer does it, tokenizer.json's does not);
 *   4. split on spaces; per word: lower-case (Python's str.lower, with the
 *      final-sigma rule), strip accents (NFD, then drop Mn marks);
 *   5. split punctuation (ASCII 33-47, 58-64, 91-96, 123-126 and Unicode P*)
 *      into one-character words;
 *   6. WordPiece per word: greedy longest match, pieces after the first
 *      carry the continuation prefix; a word with no full segmentation, or
 *      longer than max_input_chars_per_word characters, becomes unk.
 * Special tokens in the text are kept whole with TOK_ENC_PARSE_SPECIAL (they
 * are matched before step 1, case-sensitively, as HF's added-token trie);
 * TOK_ENC_ADD_SPECIAL wraps the ids in bos ([CLS]) and eos ([SEP]).
 *
 * Decoding: tok_decode_piece gives " word" (a leading space) for a
 * word-initial token, "x" for a continuation "##x", " [CLS]" for a CONTROL
 * token with TOK_DEC_SPECIAL (nothing without), " [UNK]" for the unk token
 * with TOK_DEC_SPECIAL and " " U+FFFD without; TOK_DEC_STRIP_SPACE drops the
 * leading space. tok_decode joins the rendered pieces and drops the leading
 * space of the first one (a first "##x" stays "##x"), which is exactly HF's
 * convert_tokens_to_string (" ".join(tokens).replace(" ##", "").strip())
 * over the rendered tokens, without clean_up_tokenization_spaces. */

typedef struct tok_wordpiece_options {
    bool clean_text;             /* step 1 (default true) */
    bool tokenize_chinese_chars; /* step 2 (default true) */
    bool nfc;                    /* step 3 (default true) */
    bool lowercase;              /* do_lower_case (default true) */
    int strip_accents;           /* -1: as lowercase (HF None; default), 0 no, 1 yes */
    int32_t mask_id;             /* TOK_ID_AUTO ("[MASK]"; default), TOK_ID_NONE or an id */
    const char *prefix;          /* continuation prefix (default "##"); borrowed */
    uint32_t max_input_chars_per_word; /* default 100 */
    /* Names that TOK_ID_AUTO ids (tok_options bos/eos/unk/pad, mask_id) are
     * looked up by; NULL (the default) means "[CLS]", "[SEP]", "[UNK]",
     * "[PAD]", "[MASK]". Borrowed for the call. */
    const char *cls_token, *sep_token, *unk_token, *pad_token, *mask_token;
} tok_wordpiece_options;

/* Fills *o with bert-base-uncased's settings (the defaults above). A NULL
 * tok_wordpiece_options pointer below means these defaults. */
void tok_wordpiece_options_init(tok_wordpiece_options *o);

/* Builds a WordPiece tokenizer. tokens[i] is the vocabulary string of id i
 * in vocab.txt form ("the", "##ing", "[CLS]"). types (nullable) are token
 * types; without them the bos/eos/pad/mask tokens are CONTROL and every other
 * token NORMAL. The unk token is always typed UNKNOWN; a tokenizer needs one
 * (TOK_EINVAL otherwise). opt NULL: tok_options_init(TOK_KIND_WORDPIECE).
 * Borrows all arrays. On success *out is a new tokenizer (tok_free). */
int tok_create_wordpiece(tok **out, const char *const *tokens, size_t n_tokens,
                         const int32_t *types, const tok_options *opt,
                         const tok_wordpiece_options *wp, tok_err *err);

/* Reads a BERT vocab.txt (one token per line, id = line number; "\n" or
 * "\r\n" ends a line), then tok_create_wordpiece. */
int tok_create_wordpiece_from_file(tok **out, const char *vocab_txt_path, const tok_options *opt,
                                   const tok_wordpiece_options *wp, tok_err *err);

/* Mask token id ([MASK]) of a WordPiece tokenizer; TOK_ID_NONE otherwise. */
int32_t tok_mask(const tok *t);

/* ==== end of WordPiece additions ========================================= */

/* ==== CLIP (added with issue "CLIP"; tok_clip.c) ===========================
 *
 * OpenAI CLIP's / Hugging Face CLIPTokenizer's (slow) byte-level BPE:
 *   1. invalid UTF-8 -> U+FFFD, NFC (ftfy.fix_text is out of scope: NFC is
 *      the only part of it applied), whitespace runs (Python's str.isspace)
 *      -> one space, ends stripped;
 *   2. lower-case (Python's str.lower);
 *   3. CLIP's regex, case-insensitive:
 *        's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+
 *      (the <|startoftext|>/<|endoftext|> alternatives are replaced by
 *      TOK_ENC_PARSE_SPECIAL: special text is matched, case-sensitively and
 *      before cleaning, only with that flag, as HF splits added tokens; each
 *      fragment between specials is cleaned on its own);
 *   4. per pre-token, GPT-2's byte-to-unicode symbols with "</w>" on the
 *      last one, merged by merges.txt rank.
 * TOK_ENC_ADD_SPECIAL gives <|startoftext|> ... <|endoftext|> (49406, 49407
 * in OpenAI's vocabulary). Decoding: "xyz</w>" gives "xyz " (bytes mapped
 * back); tok_decode strips leading/trailing ASCII whitespace of the whole
 * text (HF's .strip()); no clean_up_tokenization_spaces. */

/* Builds a CLIP tokenizer. tokens[i] is the vocabulary string of id i
 * ("the</w>", "ph"); merges[r] the merge of rank r ("t h</w>"). As
 * tok_create_bpe otherwise (types nullable: then bos/eos/unk/pad are CONTROL;
 * merges with unknown parts skipped). opt NULL: tok_options_init(CLIP).
 * Borrows all arrays. On success *out is a new tokenizer (tok_free). */
int tok_create_clip(tok **out, const char *const *tokens, size_t n_tokens,
                    const char *const *merges, size_t n_merges, const int32_t *types,
                    const tok_options *opt, tok_err *err);

/* Reads a Hugging Face CLIP vocab.json and merges.txt ("#version" first
 * line skipped), then tok_create_clip. */
int tok_create_clip_from_files(tok **out, const char *vocab_json_path, const char *merges_path,
                               const tok_options *opt, tok_err *err);

/* Truncates ids[0..*n), encoded with TOK_ENC_ADD_SPECIAL (first
 * <|startoftext|>, last <|endoftext|>), to at most max ids keeping the first
 * max-1 and the last: with max 77 that is <sot> + the first 75 tokens + <eot>,
 * HF's truncation=True, max_length=77. Edits in place; *n <= max is left
 * alone. Returns TOK_OK, or TOK_EINVAL for NULL arguments or max < 2 when
 * truncation is needed. Any thread. */
int tok_clip_truncate(int32_t *ids, size_t *n, size_t max);

/* ==== end of CLIP additions ============================================== */

#endif
