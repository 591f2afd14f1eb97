/* gguf_quantize.h - `alignd quantize`: a copy of a GGUF model with its
 * weight matrices stored as Q8_0 or Q4_0 (qmat.h), like llama.cpp's
 * llama-quantize with --pure: every 2-D tensor whose rows are a multiple of
 * 32 long (token embedding and output included) is quantized from its F32
 * values; other tensors (norms, biases, odd shapes) are written as F32, or
 * F16 when stored so. Metadata is copied, general.file_type set to ggml's
 * number (7 mostly Q8_0, 2 mostly Q4_0). Already-quantized sources are
 * dequantized first. The output is written atomically (gguf_writer.h).
 *
 * Errors: 0 or a negative errno with a message naming the file or tensor.
 * Threads: no shared state.
 */
#ifndef GGUF_QUANTIZE_H
#define GGUF_QUANTIZE_H

#include <stddef.h>

#include "qmat.h"

typedef struct gguf_quantize_stats {
    int tensors, quantized;     /* tensors written, of which quantized */
    size_t bytes_in, bytes_out; /* tensor data of the source and the result */
} gguf_quantize_stats;

/* progress (may be NULL): called after each tensor with its name. */
int gguf_quantize(const char *in_path, const char *out_path, qm_type type,
                  void (*progress)(void *ctx, int done, int total, const char *name), void *ctx,
                  gguf_quantize_stats *st, char *err, size_t errlen);

#endif
