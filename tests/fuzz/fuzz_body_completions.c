/* fuzz_body_completions.c - libFuzzer target: a POST /v1/completions body
 * (api/completions.c, api/gen_params.c, api/fields.c: every field, the prompt
 * forms, token ids, tokenization, the context and stop checks, the job's
 * creation). The real dispatcher steps and handler run in process
 * (body_harness.h: built-in models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/completions", data, size);
    return 0;
}
