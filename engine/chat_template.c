/* chat_template.c - chat template detection and rendering (see
 * chat_template.h). Formats follow llama.cpp's llama_chat_apply_template
 * (src/llama-chat.cpp), written here from its documented outputs. */
#include "chat_template.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    bool alternate;  /* optional system first, then user/assistant/user... */
} chat__table[CHAT_TEMPLATE_COUNT] = {
#define CHAT__ROW(e, name, alt) [CHAT_TEMPLATE_##e] = {name, alt},
    CHAT_TEMPLATE_TABLE(CHAT__ROW)
#undef CHAT__ROW
};

const char *chat_template_name(chat_template_kind k) {
    if ((unsigned)k >= CHAT_TEMPLATE_COUNT) return "?";
    return chat__table[k].name;
}

/* ---- detection ------------------------------------------------------------ */

static bool chat__has(const char *s, const char *needle) { return strstr(s, needle) != NULL; }

static int chat__unsupported(eng_err *err, const char *family) {
    return eng_fail(err, -ENOTSUP,
                    "chat template looks like %s, which alignd does not render; " CHAT_TEMPLATE_HINT,
                    family);
}

/* The [INST] families, in llama.cpp's order of tests. */
static chat_template_kind chat__detect_inst(const char *t) {
    if (chat__has(t, "[SYSTEM_PROMPT]")) return CHAT_TEMPLATE_MISTRAL_V7;
    if (chat__has(t, "' [INST] ' + system_message") || chat__has(t, "[AVAILABLE_TOOLS]")) {
        /* mistral's official v1 / v3 / v3-tekken templates */
        if (chat__has(t, " [INST]")) return CHAT_TEMPLATE_MISTRAL_V1;
        if (chat__has(t, "\"[INST]\"")) return CHAT_TEMPLATE_MISTRAL_V3_TEKKEN;
        return CHAT_TEMPLATE_MISTRAL_V3;
    }
    if (chat__has(t, "content.strip()")) return CHAT_TEMPLATE_LLAMA2_SYS_STRIP;
    if (chat__has(t, "bos_token + '[INST]")) return CHAT_TEMPLATE_LLAMA2_SYS_BOS;
    if (chat__has(t, "<<SYS>>")) return CHAT_TEMPLATE_LLAMA2_SYS;
    return CHAT_TEMPLATE_LLAMA2;
}

int chat_template_detect(const char *t, chat_template_kind *out, eng_err *err) {
    if (!out) return eng_fail(err, -EINVAL, "chat_template_detect: out is NULL");
    if (!t || !*t) return eng_fail(err, -ENOENT, "model has no chat template; " CHAT_TEMPLATE_HINT);
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++) {
        if (strcmp(t, chat__table[k].name) == 0) {
            *out = (chat_template_kind)k;
            return 0;
        }
    }
    chat_template_kind k;
    if (chat__has(t, "<|im_start|>")) {
        /* SmolVLM uses <|im_start|> as a BOS but is not ChatML */
        if (chat__has(t, "<end_of_utterance>")) return chat__unsupported(err, "SmolVLM");
        k = chat__has(t, "<|im_sep|>") ? CHAT_TEMPLATE_PHI4 : CHAT_TEMPLATE_CHATML;
    } else if (strncmp(t, "mistral", 7) == 0 || chat__has(t, "[INST]")) {
        k = chat__detect_inst(t);
    } else if (chat__has(t, "<|assistant|>") && chat__has(t, "<|end|>")) {
        k = CHAT_TEMPLATE_PHI3;
    } else if (chat__has(t, "[gMASK]")) {
        return chat__unsupported(err, "ChatGLM");
    } else if (chat__has(t, "<|begin_of_image|>")) {
        return chat__unsupported(err, "GLM-Edge");
    } else if (chat__has(t, "<|user|>") &&
               (chat__has(t, "<|endoftext|>") || chat__has(t, "eos_token"))) {
        /* llama.cpp sends <|user|> + <|assistant|> templates to falcon3 /
         * glmedge first, so the HF zephyr-7b-beta template (which closes
         * turns with eos_token) is not zephyr there; alignd takes a closed
         * user turn as the sign of zephyr. */
        k = CHAT_TEMPLATE_ZEPHYR;
    } else if (chat__has(t, "<start_of_turn>")) {
        k = CHAT_TEMPLATE_GEMMA;
    } else if (chat__has(t, "<|START_OF_TURN_TOKEN|>")) {
        return chat__unsupported(err, "Command-R");
    } else if (chat__has(t, "<|start_header_id|>") && chat__has(t, "<|end_header_id|>")) {
        k = CHAT_TEMPLATE_LLAMA3;
    } else if (chat__has(t, "<|header_start|>") && chat__has(t, "<|header_end|>")) {
        return chat__unsupported(err, "Llama-4");
    } else {
        return eng_fail(err, -ENOTSUP,
                        "chat template not recognised (none of the markers of chatml, llama2, "
                        "mistral, llama3, zephyr, gemma, phi3 found); " CHAT_TEMPLATE_HINT);
    }
    *out = k;
    return 0;
}

/* ---- the output buffer ---------------------------------------------------- */

typedef struct chat__buf {
    char *p;
    size_t n, cap;
    bool failed;  /* an allocation failed or a length overflowed */
} chat__buf;

static void chat__put(chat__buf *b, const char *s, size_t len) {
    if (b->failed || len == 0) return;
    if (len > SIZE_MAX - 1 - b->n) {
        b->failed = true;
        return;
    }
    if (b->n + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len + 1) {
            if (cap > SIZE_MAX / 2) {
                cap = b->n + len + 1;
                break;
            }
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

static void chat__puts(chat__buf *b, const char *s) { chat__put(b, s, strlen(s)); }

static bool chat__space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* Appends s without leading and trailing ASCII whitespace (llama.cpp's trim,
 * without isspace's locale and signed-char pitfalls). */
static void chat__put_trim(chat__buf *b, const char *s) {
    size_t a = 0, z = strlen(s);
    while (a < z && chat__space(s[a])) a++;
    while (z > a && chat__space(s[z - 1])) z--;
    chat__put(b, s + a, z - a);
}

/* ---- validation ----------------------------------------------------------- */

typedef enum chat__role { CHAT__SYSTEM, CHAT__USER, CHAT__ASSISTANT } chat__role;

static const char *const chat__role_names[] = {"system", "user", "assistant"};

/* Checks every message and fills roles[i]; then the family's order rule. */
static int chat__validate(chat_template_kind k, const chat_message *msgs, size_t n,
                          chat__role *roles, eng_err *err) {
    for (size_t i = 0; i < n; i++) {
        const char *r = msgs[i].role;
        if (!r) return eng_fail(err, -EINVAL, "messages[%zu].role: missing", i);
        int found = -1;
        for (int j = 0; j < 3; j++)
            if (strcmp(r, chat__role_names[j]) == 0) found = j;
        if (found < 0)
            return eng_fail(err, -EINVAL,
                            "messages[%zu].role: '%.64s' is not one of system, user, assistant", i, r);
        roles[i] = (chat__role)found;
        if (!msgs[i].content) return eng_fail(err, -EINVAL, "messages[%zu].content: missing", i);
    }
    if (!chat__table[k].alternate) return 0;
    size_t first = roles[0] == CHAT__SYSTEM ? 1 : 0;
    if (first == n)
        return eng_fail(err, -EINVAL,
                        "messages: only a system message; chat template %s needs a user message after it",
                        chat__table[k].name);
    for (size_t i = first; i < n; i++) {
        chat__role want = ((i - first) % 2 == 0) ? CHAT__USER : CHAT__ASSISTANT;
        if (roles[i] != want)
            return eng_fail(err, -EINVAL,
                            "messages[%zu].role: chat template %s expects '%s' here (an optional system "
                            "message first, then alternating user/assistant turns starting with user), "
                            "got '%s'",
                            i, chat__table[k].name, chat__role_names[want], chat__role_names[roles[i]]);
    }
    return 0;
}

/* ---- the families --------------------------------------------------------- */

/* llama2 and its variants: "[INST] " opens the first turn unconditionally
 * (the leading BOS is the tokenizer's); an assistant turn closes with eos and
 * the next user turn reopens with "[INST] " (or bos + "[INST] "). */
static void chat__llama2(chat__buf *b, chat_template_kind k, const chat_message *msgs,
                         const chat__role *roles, size_t n, const char *bos, const char *eos) {
    bool sys_tags = k != CHAT_TEMPLATE_LLAMA2;
    bool bos_inside = k == CHAT_TEMPLATE_LLAMA2_SYS_BOS;
    bool strip = k == CHAT_TEMPLATE_LLAMA2_SYS_STRIP;
    bool in_turn = true;
    chat__puts(b, "[INST] ");
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            in_turn = true;
            if (bos_inside) chat__puts(b, bos);
            chat__puts(b, "[INST] ");
        }
        if (roles[i] == CHAT__SYSTEM && sys_tags) chat__puts(b, "<<SYS>>\n");
        if (strip)
            chat__put_trim(b, msgs[i].content);
        else
            chat__puts(b, msgs[i].content);
        if (roles[i] == CHAT__SYSTEM) {
            chat__puts(b, sys_tags ? "\n<</SYS>>\n\n" : "\n");
        } else if (roles[i] == CHAT__USER) {
            chat__puts(b, " [/INST]");
        } else {
            chat__puts(b, eos);
            in_turn = false;
        }
    }
}

/* mistral v1 / v3 / v3-tekken: the system message joins the first user turn. */
static void chat__mistral(chat__buf *b, chat_template_kind k, const chat_message *msgs,
                          const chat__role *roles, size_t n, const char *eos) {
    const char *lead = k == CHAT_TEMPLATE_MISTRAL_V1 ? " " : "";
    const char *trail = k == CHAT_TEMPLATE_MISTRAL_V3_TEKKEN ? "" : " ";
    bool trim_assistant = k == CHAT_TEMPLATE_MISTRAL_V3;
    bool in_turn = false;
    for (size_t i = 0; i < n; i++) {
        if (!in_turn) {
            chat__puts(b, lead);
            chat__puts(b, "[INST]");
            chat__puts(b, trail);
            in_turn = true;
        }
        if (roles[i] == CHAT__SYSTEM) {
            chat__puts(b, msgs[i].content);
            chat__puts(b, "\n\n");
        } else if (roles[i] == CHAT__USER) {
            chat__puts(b, msgs[i].content);
            chat__puts(b, lead);
            chat__puts(b, "[/INST]");
        } else {
            chat__puts(b, trail);
            if (trim_assistant)
                chat__put_trim(b, msgs[i].content);
            else
                chat__puts(b, msgs[i].content);
            chat__puts(b, eos);
            in_turn = false;
        }
    }
}

static void chat__mistral_v7(chat__buf *b, const chat_message *msgs, const chat__role *roles,
                             size_t n, const char *eos) {
    for (size_t i = 0; i < n; i++) {
        if (roles[i] == CHAT__SYSTEM) {
            chat__puts(b, "[SYSTEM_PROMPT] ");
            chat__puts(b, msgs[i].content);
            chat__puts(b, "[/SYSTEM_PROMPT]");
        } else if (roles[i] == CHAT__USER) {
            chat__puts(b, "[INST] ");
            chat__puts(b, msgs[i].content);
            chat__puts(b, "[/INST]");
        } else {
            chat__puts(b, " ");
            chat__puts(b, msgs[i].content);
            chat__puts(b, eos);
        }
    }
}

/* gemma has no system role: system contents (trimmed, concatenated) open the
 * first user turn, followed by a blank line; "assistant" is "model". */
static void chat__gemma(chat__buf *b, const chat_message *msgs, const chat__role *roles, size_t n,
                        bool add_gen) {
    const char *sys = NULL;  /* alternation allows at most one, at index 0 */
    for (size_t i = 0; i < n; i++) {
        if (roles[i] == CHAT__SYSTEM) {
            sys = msgs[i].content;
            continue;
        }
        chat__puts(b, roles[i] == CHAT__ASSISTANT ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (sys && roles[i] == CHAT__USER) {
            size_t mark = b->n;
            chat__put_trim(b, sys);
            if (b->n != mark) chat__puts(b, "\n\n");  /* llama.cpp skips an empty system prompt */
            sys = NULL;
        }
        chat__put_trim(b, msgs[i].content);
        chat__puts(b, "<end_of_turn>\n");
    }
    if (add_gen) chat__puts(b, "<start_of_turn>model\n");
}

/* Families that wrap each message as open + role + mid + content + close. */
static void chat__wrap(chat__buf *b, const chat_message *msgs, size_t n, const char *open,
                       const char *mid, const char *close, bool trim) {
    for (size_t i = 0; i < n; i++) {
        chat__puts(b, open);
        chat__puts(b, msgs[i].role);
        chat__puts(b, mid);
        if (trim)
            chat__put_trim(b, msgs[i].content);
        else
            chat__puts(b, msgs[i].content);
        chat__puts(b, close);
    }
}

int chat_render(chat_template_kind k, const chat_message *msgs, size_t n, bool add_gen,
                const char *bos, const char *eos, char **out, size_t *out_len, eng_err *err) {
    if (out) *out = NULL;
    if (out_len) *out_len = 0;
    if (!out || !out_len) return eng_fail(err, -EINVAL, "chat_render: out or out_len is NULL");
    if ((unsigned)k >= CHAT_TEMPLATE_COUNT)
        return eng_fail(err, -EINVAL, "chat_render: template kind %d out of range", (int)k);
    if (n == 0) return eng_fail(err, -EINVAL, "messages: empty; at least one message is required");
    if (!msgs) return eng_fail(err, -EINVAL, "messages: NULL with %zu messages", n);
    if (n > SIZE_MAX / sizeof(chat__role)) return eng_fail(err, -ENOMEM, "messages: %zu is too many", n);
    chat__role *roles = malloc(n * sizeof *roles);
    if (!roles) return eng_fail(err, -ENOMEM, "messages: out of memory for %zu roles", n);
    int rc = chat__validate(k, msgs, n, roles, err);
    if (rc) goto fail;

    if (!bos) bos = "<s>";
    if (!eos) eos = k == CHAT_TEMPLATE_ZEPHYR ? "<|endoftext|>" : "</s>";
    chat__buf b = {0};
    switch (k) {
    case CHAT_TEMPLATE_CHATML:
        chat__wrap(&b, msgs, n, "<|im_start|>", "\n", "<|im_end|>\n", false);
        if (add_gen) chat__puts(&b, "<|im_start|>assistant\n");
        break;
    case CHAT_TEMPLATE_PHI4:
        chat__wrap(&b, msgs, n, "<|im_start|>", "<|im_sep|>", "<|im_end|>", false);
        if (add_gen) chat__puts(&b, "<|im_start|>assistant<|im_sep|>");
        break;
    case CHAT_TEMPLATE_PHI3:
        chat__wrap(&b, msgs, n, "<|", "|>\n", "<|end|>\n", false);
        if (add_gen) chat__puts(&b, "<|assistant|>\n");
        break;
    case CHAT_TEMPLATE_ZEPHYR:
        for (size_t i = 0; i < n; i++) {
            chat__puts(&b, "<|");
            chat__puts(&b, msgs[i].role);
            chat__puts(&b, "|>\n");
            chat__puts(&b, msgs[i].content);
            chat__puts(&b, eos);
            chat__puts(&b, "\n");
        }
        if (add_gen) chat__puts(&b, "<|assistant|>\n");
        break;
    case CHAT_TEMPLATE_LLAMA3:
        chat__wrap(&b, msgs, n, "<|start_header_id|>", "<|end_header_id|>\n\n", "<|eot_id|>", true);
        if (add_gen) chat__puts(&b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        break;
    case CHAT_TEMPLATE_GEMMA:
        chat__gemma(&b, msgs, roles, n, add_gen);
        break;
    case CHAT_TEMPLATE_LLAMA2:
    case CHAT_TEMPLATE_LLAMA2_SYS:
    case CHAT_TEMPLATE_LLAMA2_SYS_BOS:
    case CHAT_TEMPLATE_LLAMA2_SYS_STRIP:
        chat__llama2(&b, k, msgs, roles, n, bos, eos);
        break;
    case CHAT_TEMPLATE_MISTRAL_V1:
    case CHAT_TEMPLATE_MISTRAL_V3:
    case CHAT_TEMPLATE_MISTRAL_V3_TEKKEN:
        chat__mistral(&b, k, msgs, roles, n, eos);
        break;
    case CHAT_TEMPLATE_MISTRAL_V7:
        chat__mistral_v7(&b, msgs, roles, n, eos);
        break;
    case CHAT_TEMPLATE_COUNT:
        break;
    }
    if (!b.failed && !b.p) {  /* every family writes markers; kept for safety */
        b.p = calloc(1, 1);
        b.failed = !b.p;
    }
    if (b.failed) {
        free(b.p);
        rc = eng_fail(err, -ENOMEM, "chat_render: out of memory rendering %zu messages with %s", n,
                      chat__table[k].name);
        goto fail;
    }
    free(roles);
    *out = b.p;
    *out_len = b.n;
    return 0;
fail:
    free(roles);
    return rc;
}
