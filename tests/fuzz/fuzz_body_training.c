/* fuzz_body_training.c - libFuzzer target: a POST /v1/training/runs body, and
 * the same body for POST /v1/adapters/{id}/activate with id "base" and an
 * unknown id (api/training.c, api/adapters.c). The real dispatcher steps and
 * handler run in process (body_harness.h: built-in models, no server, nothing
 * computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/training/runs", data, size);
    fuzz_body_request("POST", "/v1/adapters/base/activate", data, size);
    fuzz_body_request("POST", "/v1/adapters/ad-0001/activate", data, size);
    return 0;
}
