/* byte_tok.c - the fuzz targets' byte-level tokenizer (byte_tok.h). */
#include "byte_tok.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

tok *fuzz_byte_tok(void)
{
    static tok *t;
    if (t)
        return t;
    static char names[256][5];
    const char *tokens[256];
    for (int b = 0; b < 256; b++) {
        tok_bpe_byte_text((uint8_t)b, names[b]);
        tokens[b] = names[b];
    }
    tok_err e = {0};
    if (tok_create_bpe(&t, tokens, 256, NULL, 0, NULL, NULL, &e) != TOK_OK) {
        fprintf(stderr, "fuzz_byte_tok: %s\n", e.msg);
        abort();
    }
    return t;
}
