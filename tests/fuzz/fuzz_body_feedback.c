/* fuzz_body_feedback.c - libFuzzer target: a POST /v1/feedback body, one item
 * or a batch (api/feedback.c: every item's validation, then the insert into an
 * in-memory store and the rows read back). The real dispatcher steps and
 * handler run in process (body_harness.h: built-in models, no server, nothing
 * computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/feedback", data, size);
    return 0;
}
