/* byte_tok.h - the tokenizer of the fuzz targets that tokenize text (the
 * training-data lines of fuzz_pref and fuzz_embed_items): a byte-level BPE
 * of the 256 byte tokens and no merges, so every id is a byte. */
#ifndef FUZZ_BYTE_TOK_H
#define FUZZ_BYTE_TOK_H

#include "tok.h"

/* Made once, kept for the process (aborts if it cannot be made). */
tok *fuzz_byte_tok(void);

#endif
