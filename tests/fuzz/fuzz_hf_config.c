/* fuzz_hf_config.c - libFuzzer target for config.json parsing in hf_dir
 * (hf_config_parse from memory) and its typed getters, including dotted
 * paths into nested objects. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hf_dir.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const keys[] = {
    "model_type", "architectures", "hidden_size", "n_embd", "rope_theta",
    "layer_norm_eps", "tie_word_embeddings", "text_config.hidden_size",
    "vision_config.patch_size", "a.b.c", "a..b", ".", "", "x.", ".x",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    hf_config *c;
    st_error err;
    if (hf_config_parse(&c, (const char *)data, size, "fuzz.json", &err) != 0) {
        if (err.code >= 0 || memchr(err.msg, '\0', sizeof err.msg) == NULL) abort();
        return 0;
    }
    const char *mt = hf_config_model_type(c);
    if (mt) (void)strlen(mt);
    for (size_t i = 0; i < hf_config_n_architectures(c); i++)
        (void)strlen(hf_config_architecture(c, i));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int64_t iv;
        double dv;
        bool bv;
        const char *sv;
        (void)hf_config_has(c, keys[i]);
        (void)hf_config_int(c, keys[i], 0, &iv, &err);
        (void)hf_config_float(c, keys[i], 0, &dv, &err);
        (void)hf_config_bool(c, keys[i], false, &bv, &err);
        if (hf_config_str(c, keys[i], NULL, &sv, &err) == 0 && sv) (void)strlen(sv);
        (void)hf_config_req_int(c, keys[i], &iv, &err);
        (void)hf_config_req_str(c, keys[i], &sv, &err);
    }
    hf_config_free(c);
    return 0;
}
