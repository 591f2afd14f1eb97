/* byte_tok.c - the fuzz targets' byte-level tokenizer (byte_tok.h). */
#include "byte_tok.h"

#include <stdio.h>
#include <stdlib.h>

tok *fuzz_byte_tok(void)
{
    static tok *t;
    if (t)
        return t;
    static char names[256][8];
    const char *tokens[256];
    /* GPT-2's byte-to-unicode spelling is what tok_create_bpe expects:
     * printable bytes stand for themselves, the others for 256 + their rank */
    for (int b = 0; b < 256; b++) {
        unsigned cp = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE
                          ? (unsigned)b
                          : 0;
        if (!cp) {
            int n = 0;
            for (int x = 0; x < b; x++)
                n += !((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || x >= 0xAE);
            cp = 256 + (unsigned)n;
        }
        char *o = names[b];
        if (cp < 0x80)
            o[0] = (char)cp, o[1] = 0;
        else
            o[0] = (char)(0xC0 | cp >> 6), o[1] = (char)(0x80 | (cp & 0x3F)), o[2] = 0;
        tokens[b] = o;
    }
    tok_err e = {0};
    if (tok_create_bpe(&t, tokens, 256, NULL, 0, NULL, NULL, &e) != TOK_OK) {
        fprintf(stderr, "fuzz_byte_tok: %s\n", e.msg);
        abort();
    }
    return t;
}
