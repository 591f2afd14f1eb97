/* cli_quantize.c - `alignd quantize IN.gguf OUT.gguf q8_0|q4_0`: a copy of a
 * GGUF model with its weight matrices quantized (gguf_quantize.h), which
 * the daemon then serves with its int8 kernels. Prints a progress line per
 * tenth of the tensors and the sizes. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gguf_quantize.h"

static void quantize__progress(void *ctx, int done, int total, const char *name)
{
    (void)ctx;
    if (done == total || done % (total / 10 > 0 ? total / 10 : 1) == 0)
        fprintf(stderr, "alignd quantize: %d/%d tensors (%s)\n", done, total, name);
}

int cli_quantize(int argc, char **argv)
{
    if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
        printf("usage: alignd quantize IN.gguf OUT.gguf q8_0|q4_0\n"
               "  every weight matrix with rows a multiple of 32 long becomes Q8_0 or Q4_0\n"
               "  (token embedding and output included); norms and biases stay F32\n");
        return 0;
    }
    if (argc != 4 || (strcmp(argv[3], "q8_0") && strcmp(argv[3], "q4_0"))) {
        fprintf(stderr, "usage: alignd quantize IN.gguf OUT.gguf q8_0|q4_0\n");
        return 2;
    }
    qm_type type = !strcmp(argv[3], "q8_0") ? QM_Q8_0 : QM_Q4_0;
    gguf_quantize_stats st;
    char err[1024];
    if (gguf_quantize(argv[1], argv[2], type, quantize__progress, NULL, &st, err, sizeof err)) {
        fprintf(stderr, "alignd quantize: %s\n", err);
        return 1;
    }
    fprintf(stderr, "alignd quantize: wrote %s: %d of %d tensors %s, %.1f MiB -> %.1f MiB\n",
            argv[2], st.quantized, st.tensors, argv[3], (double)st.bytes_in / (1 << 20),
            (double)st.bytes_out / (1 << 20));
    return 0;
}
