/* cli_tokenize.c - `alignd tokenize`: a model's token ids for a text. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tok_load.h"

static int cli__tokenize_usage(void) {
    fprintf(stderr, "usage: alignd tokenize -m MODEL [--no-special] [--pieces] TEXT\n"
                    "  -m MODEL       a GGUF file or a Hugging Face model folder\n"
                    "  --no-special   do not add BOS/EOS as the model would\n"
                    "  --pieces       print 'id<TAB>piece' lines instead of one line of ids\n");
    return 2;
}

int cli_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL;
    bool special = true, pieces = false;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-m") || !strcmp(argv[i], "--model")) && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--no-special")) special = false;
        else if (!strcmp(argv[i], "--pieces")) pieces = true;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "alignd tokenize: unknown option %s\n", argv[i]);
            return cli__tokenize_usage();
        } else if (!text) text = argv[i];
        else return cli__tokenize_usage();
    }
    if (!model || !text) return cli__tokenize_usage();

    tok *t;
    tok_err err = {0};
    if (tok_load(&t, model, &err) != 0) {
        fprintf(stderr, "alignd tokenize: %s\n", err.msg);
        return 1;
    }
    size_t len = strlen(text), n = 0, cap = len + 8;
    int32_t *ids = malloc(cap * sizeof *ids);
    int rc = ids ? tok_encode(t, text, len, special ? TOK_ENC_ADD_SPECIAL : 0, ids, cap, &n, &err)
                 : TOK_ENOMEM;
    if (rc == TOK_ESPACE) { /* byte fallback can need more ids than bytes */
        int32_t *more = realloc(ids, n * sizeof *ids);
        rc = more ? tok_encode(t, text, len, special ? TOK_ENC_ADD_SPECIAL : 0, more, n, &n, &err)
                  : TOK_ENOMEM;
        ids = more ? more : ids;
    }
    if (rc != 0) {
        fprintf(stderr, "alignd tokenize: %s\n", err.msg[0] ? err.msg : "out of memory");
        free(ids);
        tok_free(t);
        return 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!pieces) {
            printf(i ? " %d" : "%d", ids[i]);
            continue;
        }
        char buf[256];
        size_t blen = 0;
        if (tok_decode_piece(t, ids[i], TOK_DEC_SPECIAL, buf, sizeof buf, &blen, &err) != 0) blen = 0;
        printf("%d\t'%.*s'\n", ids[i], (int)blen, buf);
    }
    if (!pieces) printf("\n");
    free(ids);
    tok_free(t);
    return 0;
}
