/* tok_load.h - the tokenizer of a model file: from a GGUF file's
 * tokenizer.ggml.* metadata, or from a Hugging Face folder's tokenizer files
 * (tokenizer.model for SentencePiece, vocab.json + merges.txt for GPT-2
 * BPE, vocab.txt or a WordPiece tokenizer.json for BERT). Main/loader
 * thread; the result is immutable (any thread). */
#ifndef TOK_LOAD_H
#define TOK_LOAD_H

#include "gguf.h"
#include "tok.h"

/* Builds the tokenizer described by an open GGUF file (borrowed: the
 * tokenizer copies what it needs). tokenizer.ggml.model "llama" gives SPM,
 * "gpt2" gives byte-level BPE; special ids and add_bos/add_eos/
 * add_space_prefix come from the metadata when present.
 * "bert" gives WordPiece (bert-base-uncased settings): llama.cpp's
 * "phantom space" tokens ("U+2581 word", "x" for "##x") are mapped back to
 * vocab.txt form; [CLS]/[SEP] come from tokenizer.ggml.cls_token_id /
 * seperator_token_id, else the tokens "[CLS]"/"[SEP]", else 101/102 (as
 * llama.cpp); add_bos_token / add_sep_token default to true. */
int tok_load_gguf(tok **out, const gguf_file *f, tok_err *err);

/* Builds a byte-level BPE tokenizer from a Hugging Face tokenizer.json
 * (model.type BPE, model.vocab, model.merges, added_tokens; special added
 * tokens become CONTROL). SentencePiece-style files are refused (-EINVAL
 * naming the file): their tokenizer.model is read instead. */
int tok_create_bpe_from_hf_json(tok **out, const char *path, tok_err *err);

/* Builds a WordPiece tokenizer from a Hugging Face tokenizer.json with
 * model.type "WordPiece": model.vocab, unk_token, continuing_subword_prefix,
 * max_input_chars_per_word; the normalizer's BertNormalizer (clean_text,
 * handle_chinese_chars, lowercase, strip_accents; no normalizer means none
 * of them); added_tokens (special ones CONTROL); [CLS]/[SEP] from the
 * post_processor (BertProcessing or TemplateProcessing; none: encode adds
 * nothing). Unlike the slow BertTokenizer, no NFC (the tokenizers library
 * has none). Other model types are refused (TOK_EINVAL). */
int tok_create_wordpiece_from_hf_json(tok **out, const char *path, tok_err *err);

/* Builds the tokenizer of a Hugging Face model folder: tokenizer.model
 * (SentencePiece), else vocab.json + merges.txt (CLIP's BPE when config.json's
 * model_type is "clip"/"clip_text_model" or tokenizer_config.json's
 * tokenizer_class is CLIPTokenizer(Fast); GPT-2's otherwise), else vocab.txt (WordPiece,
 * with do_lower_case / strip_accents / tokenize_chinese_chars and the
 * special token names from tokenizer_config.json when present), else
 * tokenizer.json (WordPiece or BPE by its model.type). */
int tok_load_hf_dir(tok **out, const char *dir, tok_err *err);

/* Either of the above, by what `path` is (a folder or a GGUF file). */
int tok_load(tok **out, const char *path, tok_err *err);

/* The Jinja chat template a model file carries (GGUF
 * tokenizer.chat_template, or tokenizer_config.json's chat_template in a
 * folder), malloc'd; NULL when there is none or it cannot be read. */
char *tok_load_chat_template(const char *path);

/* Token id's text with specials rendered (BOS/EOS as chat templates write
 * them) into buf[len]; "" for a negative id or a failure. */
void tok_special_text(const tok *t, int32_t id, char *buf, size_t len);

#endif
