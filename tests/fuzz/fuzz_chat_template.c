/* fuzz_chat_template.c - libFuzzer target for chat templates: the input,
 * as a string, goes to chat_template_detect; then it is cut into messages
 * and rendered with every family, with and without the generation prompt.
 *
 * Input layout: byte 0 holds flags (bit 0: pass bos/eos strings rather than
 * NULL); the rest is records separated by 0x1e, each a role selector byte
 * (0 system, 1 user, 2 assistant, 3 "tool" - invalid, 4 NULL role, 5 NULL
 * content; taken mod 6) then the content up to the next separator. */
#include "chat_template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_MSGS 64

static volatile size_t fuzz__sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';

    chat_template_kind k;
    eng_err err;
    if (chat_template_detect(text, &k, &err) == 0) fuzz__sink += strlen(chat_template_name(k));

    chat_message msgs[FUZZ_MAX_MSGS];
    size_t n = 0;
    bool tokens = size > 0 && (data[0] & 1);
    /* cut in place: separators become NULs (contents stop at a NUL anyway) */
    size_t i = size > 0 ? 1 : 0;
    while (i < size && n < FUZZ_MAX_MSGS) {
        size_t j = i;
        while (j < size && data[j] != 0x1e) j++;
        text[j] = '\0';
        static const char *const roles[] = {"system", "user", "assistant", "tool"};
        unsigned sel = (unsigned char)text[i] % 6;
        msgs[n].role = sel < 4 ? roles[sel] : sel == 4 ? NULL : "user";
        msgs[n].content = sel == 5 ? NULL : text + (j > i ? i + 1 : i);  /* an empty record: system, "" */
        n++;
        i = j + 1;
    }

    for (int kk = 0; kk <= CHAT_TEMPLATE_COUNT; kk++) {  /* COUNT: out of range */
        for (int gen = 0; gen < 2; gen++) {
            char *out = NULL;
            size_t len = 0;
            int rc = chat_render((chat_template_kind)kk, msgs, n, gen, tokens ? "<s>" : NULL,
                                 tokens ? "</s>" : NULL, &out, &len, &err);
            if (rc == 0) {
                if (!out || strlen(out) != len) abort();
                fuzz__sink += len;
            } else if (out || len != 0 || err.code != rc || !memchr(err.msg, '\0', sizeof err.msg)) {
                abort();
            }
            free(out);
        }
    }
    free(text);
    return 0;
}
