/* fuzz_classify.c - libFuzzer target: a /v1/classify request body through
 * JSON parsing, validation and prompt building (api/classify_req.c). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "classify_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    json_t *body = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!body) return 0;
    api_classify_req r;
    api_req_error e;
    if (api_classify_parse(body, &r, &e) == 0) {
        if (r.n_labels < 1 || r.n_templates < 1 || r.top_k < 1 || (size_t)r.top_k > r.n_labels) abort();
        for (size_t l = 0; l < r.n_labels; l++)
            for (int t = 0; t < r.n_templates; t++) {
                char *p = api_classify_prompt(r.templates[t], r.labels[l]);
                if (p && !strstr(p, r.labels[l])) abort(); /* every template has {label} */
                free(p);
            }
    } else if (!e.msg[0]) {
        abort(); /* a refusal always says why */
    }
    json_decref(body);
    return 0;
}
