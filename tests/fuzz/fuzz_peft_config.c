/* fuzz_peft_config.c - libFuzzer target for adapter_config.json parsing
 * (trn_peft_config_parse), for both architectures PEFT adapters exist for.
 * Whatever the input, a call must fail with a negative code and a
 * NUL-terminated, non-empty message, or succeed with a configuration
 * trn_lora_new accepts (rank, alpha, dropout in range, known targets).
 * The seed corpus (corpus/fuzz_peft_config/) holds configs as PEFT writes
 * them, ones alignd refuses, and malformed ones. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trn_peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(model_arch_id arch, const uint8_t *data, size_t size)
{
    trn_peft_config c;
    char err[512];
    memset(err, 'x', sizeof err);
    int rc = trn_peft_config_parse(&c, (const char *)data, size, arch, NULL, err, sizeof err);
    if (rc) {
        if (rc > 0 || !memchr(err, '\0', sizeof err) || !err[0])
            abort();
        return;
    }
    if (c.rank < 1 || c.rank > 4096 || !(c.alpha > 0) || !isfinite(c.alpha) ||
        !(c.dropout >= 0 && c.dropout < 1) || !c.targets || c.targets >> TRN_LORA_N_TARGETS ||
        !memchr(c.base_model, '\0', sizeof c.base_model))
        abort();
    for (int t = 0; t < TRN_LORA_N_TARGETS; t++)
        if ((c.targets & (1u << t)) && !trn_peft_module_name(arch, (trn_lora_target)t))
            abort(); /* every target parsed must be writable back */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check(MODEL_ARCH_LLAMA, data, size);
    check(MODEL_ARCH_GPT2, data, size);
    return 0;
}
