/* fuzz_router.c - libFuzzer target: "METHOD PATH" matched against the real
 * route table; every parameter must lie inside the path. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "routes.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    char *sp = strchr(text, ' ');
    const char *method = "GET", *path = text;
    if (sp) {
        *sp = '\0';
        method = text;
        path = sp + 1;
    }
    router_match m;
    char allow[128];
    router_result r = router_match_path(api_routes, api_routes_count, 0, method, path, &m, allow,
                                        sizeof allow);
    if (r == ROUTER_FOUND) {
        size_t plen = strlen(path);
        for (int i = 0; i < m.n_params; i++)
            if (m.params[i].value < path || m.params[i].value + m.params[i].value_len > path + plen ||
                m.params[i].value_len == 0)
                abort();
    }
    (void)router_pattern_valid(path);
    free(text);
    return 0;
}
