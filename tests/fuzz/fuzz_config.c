/* fuzz_config.c - libFuzzer target: INI configuration text (cfg_load_string),
 * then the loaded values printed back (every formatter runs). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    cfg c;
    char err[512];
    if (cfg_init(&c) == 0) {
        if (cfg_load_string(&c, text, "fuzz.ini", err, sizeof err) == 0) {
            FILE *out = fopen("/dev/null", "w");
            if (out) {
                cfg_print(&c, out);
                fclose(out);
            }
        }
        cfg_free(&c);
    }
    free(text);
    return 0;
}
