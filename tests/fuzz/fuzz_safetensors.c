/* fuzz_safetensors.c - libFuzzer target for the safetensors parser
 * (st_parse from memory). Whatever the input, parsing must either fail with
 * a message or yield tensors whose every byte can be read and converted. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    st_file *f;
    st_error err;
    if (st_parse(&f, data, size, "fuzz", &err) != 0) {
        if (err.code >= 0 || memchr(err.msg, '\0', sizeof err.msg) == NULL) abort();
        return 0;
    }
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < st_n_tensors(f); i++) {
        const st_tensor *t = st_tensor_at(f, i);
        if (st_find(f, t->name) != t) abort();
        if (t->offset + t->nbytes < t->offset) abort();
        const uint8_t *p = t->data;
        for (uint64_t k = 0; k < t->nbytes; k++) sink ^= p[k];
        float *v;
        if (st_tensor_to_f32(t, &v, &err) == 0) {
            for (uint64_t k = 0; k < t->n_elements; k++) sink ^= (uint8_t)(v[k] != v[k]);
            free(v);
        }
        int64_t shape[ST_MAX_DIMS] = {0};
        (void)st_tensor_expect(t, ST_F32, t->n_dims, shape, "fuzz", &err);
    }
    for (size_t i = 0; i < st_n_metadata(f); i++) {
        const char *k, *v;
        if (st_metadata_at(f, i, &k, &v) != 0 || st_metadata_get(f, k) != v) abort();
    }
    (void)sink;
    st_close(f);
    return 0;
}
