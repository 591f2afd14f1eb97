/* fuzz_body_chat.c - libFuzzer target: a POST /v1/chat/completions body
 * (api/chat.c, api/gen_params.c: the shared fields, messages and content
 * parts, the chat templates, reward reranking's probe tokenization). The real
 * dispatcher steps and handler run in process (body_harness.h: built-in
 * models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/chat/completions", data, size);
    return 0;
}
