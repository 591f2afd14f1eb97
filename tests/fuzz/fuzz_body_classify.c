/* fuzz_body_classify.c - libFuzzer target: a POST /v1/classify body, and the
 * same body as POST /v1/images/embeddings (api/classify.c, api/classify_req.c:
 * model lookup, labels, templates, top_k, the CLIP tokenization of every
 * prompt). The real dispatcher steps and handler run in process
 * (body_harness.h: built-in models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/classify", data, size);
    fuzz_body_request("POST", "/v1/images/embeddings", data, size);
    return 0;
}
