/* tok_load.h - the tokenizer of a model file: from a GGUF file's
 * tokenizer.ggml.* metadata, or from a Hugging Face folder's tokenizer files
 * (tokenizer.model for SentencePiece, vocab.json + merges.txt for GPT-2
 * BPE). Main/loader thread; the result is immutable (any thread). */
#ifndef TOK_LOAD_H
#define TOK_LOAD_H

#include "gguf.h"
#include "tok.h"

/* Builds the tokenizer described by an open GGUF file (borrowed: the
 * tokenizer copies what it needs). tokenizer.ggml.model "llama" gives SPM,
 * "gpt2" gives byte-level BPE; special ids and add_bos/add_eos/
 * add_space_prefix come from the metadata when present. */
int tok_load_gguf(tok **out, const gguf_file *f, tok_err *err);

/* Builds a byte-level BPE tokenizer from a Hugging Face tokenizer.json
 * (model.type BPE, model.vocab, model.merges, added_tokens; special added
 * tokens become CONTROL). SentencePiece-style files are refused (-EINVAL
 * naming the file): their tokenizer.model is read instead. */
int tok_create_bpe_from_hf_json(tok **out, const char *path, tok_err *err);

/* Builds the tokenizer of a Hugging Face model folder: tokenizer.model
 * (SentencePiece), else vocab.json + merges.txt, else tokenizer.json. */
int tok_load_hf_dir(tok **out, const char *dir, tok_err *err);

/* Either of the above, by what `path` is (a folder or a GGUF file). */
int tok_load(tok **out, const char *path, tok_err *err);

#endif
