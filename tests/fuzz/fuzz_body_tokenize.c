/* fuzz_body_tokenize.c - libFuzzer target: a POST /tokenize body, and the same
 * body as POST /detokenize (api/tokenize.c: model, content, flags, token ids,
 * pieces). The real dispatcher steps and handler run in process
 * (body_harness.h: built-in models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/tokenize", data, size);
    fuzz_body_request("POST", "/detokenize", data, size);
    return 0;
}
