/* fuzz_body_embeddings.c - libFuzzer target: a POST /v1/embeddings body
 * (api/embeddings.c: model, input forms, token ids, truncation,
 * encoding_format and dimensions; CLIP's text branch in api/classify.c). The
 * real dispatcher steps and handler run in process (body_harness.h: built-in
 * models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/embeddings", data, size);
    return 0;
}
