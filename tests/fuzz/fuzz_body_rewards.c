/* fuzz_body_rewards.c - libFuzzer target: a POST /v1/rewards body
 * (api/rewards.c: input pairs as text or messages, the {messages} split,
 * OpenRLHF queries, the pair tokenization of engine/train/pref.c with the
 * reward model's truncation). The real dispatcher steps and handler run in
 * process (body_harness.h: built-in models, no server, nothing computed). */
#include <stddef.h>
#include <stdint.h>

#include "body_harness.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_body_request("POST", "/v1/rewards", data, size);
    return 0;
}
