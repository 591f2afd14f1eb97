/* test_chat_template.c - chat template detection and rendering.
 *
 * Expected strings are those llama.cpp's llama_chat_apply_template produces
 * for the same family (its tests/test-chat-template.cpp uses the same
 * six-message conversation), derived from the template definitions. Where
 * the model's own Jinja template renders differently, alignd follows
 * llama.cpp; the differences are noted beside each case:
 *   - the leading BOS ({{ bos_token }}) is never rendered: the tokenizer
 *     adds it;
 *   - llama2 / llama2-sys*: HF puts ' ' + content + ' ' + eos_token around an
 *     assistant turn; llama.cpp writes content + eos with no spaces;
 *   - gemma: HF raises on a system message; llama.cpp merges it into the
 *     first user turn followed by a blank line;
 *   - mistral-v3: HF puts the system prompt into the LAST user turn;
 *     llama.cpp into the first. */
#include "tu_util.h"

#include "chat_template.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* llama.cpp's test conversation */
static const chat_message conv6[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

/* the brief's system, user, assistant, user conversation */
static const chat_message conv4[] = {
    {"system", "Be brief."},
    {"user", "Hi"},
    {"assistant", "Hello!"},
    {"user", "2+2?"},
};

static char *render_ok(chat_template_kind k, const chat_message *m, size_t n, bool gen, const char *bos,
                       const char *eos) {
    char *out = (char *)1;
    size_t len = 99;
    eng_err err = {0};
    int rc = chat_render(k, m, n, gen, bos, eos, &out, &len, &err);
    if (rc) fprintf(stderr, "chat_render(%s): %d %s\n", chat_template_name(k), rc, err.msg);
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_int_equal(len, strlen(out));
    return out;
}

static void expect_render(chat_template_kind k, const chat_message *m, size_t n, bool gen,
                          const char *bos, const char *eos, const char *want) {
    char *got = render_ok(k, m, n, gen, bos, eos);
    if (strcmp(got, want) != 0) fprintf(stderr, "%s:\n got  [%s]\n want [%s]\n", chat_template_name(k), got, want);
    assert_string_equal(got, want);
    free(got);
}

/* ---- rendering: llama.cpp's six-message conversation ---------------------- */

static const struct {
    chat_template_kind k;
    const char *eos;
    const char *want;
} cases6[] = {
    {CHAT_TEMPLATE_CHATML, NULL,
     "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
     "<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n"
     "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n"
     "<|im_start|>assistant\n"},
    /* mistral-7b-instruct-v0.2's old template: no <<SYS>>, system + "\n" */
    {CHAT_TEMPLATE_LLAMA2, "</s>",
     "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>[INST] Who are you [/INST]   I am an "
     "assistant   </s>[INST] Another question [/INST]"},
    /* HF: "... [/INST] Hi there </s>..." (spaces); llama.cpp: none */
    {CHAT_TEMPLATE_LLAMA2_SYS, "</s>",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
     "[/INST]   I am an assistant   </s>[INST] Another question [/INST]"},
    {CHAT_TEMPLATE_LLAMA2_SYS_BOS, "</s>",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s><s>[INST] Who are "
     "you [/INST]   I am an assistant   </s><s>[INST] Another question [/INST]"},
    {CHAT_TEMPLATE_LLAMA2_SYS_STRIP, "</s>",
     "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>[INST] Who are you "
     "[/INST]I am an assistant</s>[INST] Another question [/INST]"},
    {CHAT_TEMPLATE_MISTRAL_V1, "</s>",
     " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s> [INST] Who are you [/INST]    I am "
     "an assistant   </s> [INST] Another question [/INST]"},
    {CHAT_TEMPLATE_MISTRAL_V3, "</s>",
     "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>[INST] Who are you[/INST] I am an "
     "assistant</s>[INST] Another question[/INST]"},
    {CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, "</s>",
     "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>[INST]Who are you[/INST]   I am an "
     "assistant   </s>[INST]Another question[/INST]"},
    {CHAT_TEMPLATE_MISTRAL_V7, "</s>",
     "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST] Hi there</s>[INST] Who "
     "are you[/INST]    I am an assistant   </s>[INST] Another question[/INST]"},
    /* HF also writes {{ bos_token }} first: the tokenizer's job here */
    {CHAT_TEMPLATE_LLAMA3, NULL,
     "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>"
     "user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_"
     "id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_"
     "header_id|>\n\nI am an assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nAnother question<|"
     "eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"},
    /* stablelm-2-zephyr: eos is <|endoftext|> (the NULL default) */
    {CHAT_TEMPLATE_ZEPHYR, NULL,
     "<|system|>\nYou are a helpful assistant<|endoftext|>\n<|user|>\nHello<|endoftext|>\n<|assistant|>\nHi "
     "there<|endoftext|>\n<|user|>\nWho are you<|endoftext|>\n<|assistant|>\n   I am an assistant   "
     "<|endoftext|>\n<|user|>\nAnother question<|endoftext|>\n<|assistant|>\n"},
    /* HF gemma raises on the system role; llama.cpp merges it */
    {CHAT_TEMPLATE_GEMMA, NULL,
     "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi "
     "there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\nI am an "
     "assistant<end_of_turn>\n<start_of_turn>user\nAnother question<end_of_turn>\n<start_of_turn>model\n"},
    {CHAT_TEMPLATE_PHI3, NULL,
     "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi "
     "there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\n"
     "Another question<|end|>\n<|assistant|>\n"},
    {CHAT_TEMPLATE_PHI4, NULL,
     "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|><|im_start|>user<|im_sep|>Hello<|im_"
     "end|><|im_start|>assistant<|im_sep|>Hi there<|im_end|><|im_start|>user<|im_sep|>Who are you<|im_end|>"
     "<|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|><|im_start|>user<|im_sep|>Another "
     "question<|im_end|><|im_start|>assistant<|im_sep|>"},
};

static void test_render_llama_cpp_conversation(void **state) {
    (void)state;
    assert_int_equal(sizeof cases6 / sizeof cases6[0], CHAT_TEMPLATE_COUNT);  /* every family covered */
    for (size_t i = 0; i < sizeof cases6 / sizeof cases6[0]; i++)
        expect_render(cases6[i].k, conv6, 6, true, "<s>", cases6[i].eos, cases6[i].want);
}

/* ---- rendering: system, user, assistant, user ----------------------------- */

static void test_render_four_messages(void **state) {
    (void)state;
    expect_render(CHAT_TEMPLATE_CHATML, conv4, 4, true, NULL, NULL,
                  "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                  "<|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
                  "<|im_start|>assistant\n");
    expect_render(CHAT_TEMPLATE_LLAMA2_SYS, conv4, 4, true, "<s>", "</s>",
                  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!</s>[INST] 2+2? [/INST]");
    expect_render(CHAT_TEMPLATE_LLAMA2_SYS_BOS, conv4, 4, true, "<s>", "</s>",
                  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!</s><s>[INST] 2+2? [/INST]");
    expect_render(CHAT_TEMPLATE_LLAMA3, conv4, 4, true, NULL, NULL,
                  "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>"
                  "<|start_header_id|>user<|end_header_id|>\n\n2+2?<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    /* HuggingFaceH4/zephyr-7b-beta: eos_token is </s> */
    expect_render(CHAT_TEMPLATE_ZEPHYR, conv4, 4, true, "<s>", "</s>",
                  "<|system|>\nBe brief.</s>\n<|user|>\nHi</s>\n<|assistant|>\nHello!</s>\n"
                  "<|user|>\n2+2?</s>\n<|assistant|>\n");
    expect_render(CHAT_TEMPLATE_GEMMA, conv4, 4, true, NULL, NULL,
                  "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n"
                  "<start_of_turn>user\n2+2?<end_of_turn>\n<start_of_turn>model\n");
    expect_render(CHAT_TEMPLATE_PHI3, conv4, 4, true, NULL, NULL,
                  "<|system|>\nBe brief.<|end|>\n<|user|>\nHi<|end|>\n<|assistant|>\nHello!<|end|>\n"
                  "<|user|>\n2+2?<|end|>\n<|assistant|>\n");
    /* custom bos / eos reach the [INST] families */
    expect_render(CHAT_TEMPLATE_LLAMA2_SYS_BOS, conv4, 4, true, "<BOS>", "<EOS>",
                  "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello!<EOS><BOS>[INST] 2+2? [/INST]");
}

/* Without the generation prompt: the same text minus the opened assistant
 * turn; the [INST] families have none to drop. */
static void test_render_without_generation_prompt(void **state) {
    (void)state;
    static const struct {
        chat_template_kind k;
        const char *suffix;
    } gen[] = {
        {CHAT_TEMPLATE_CHATML, "<|im_start|>assistant\n"},
        {CHAT_TEMPLATE_LLAMA3, "<|start_header_id|>assistant<|end_header_id|>\n\n"},
        {CHAT_TEMPLATE_ZEPHYR, "<|assistant|>\n"},
        {CHAT_TEMPLATE_GEMMA, "<start_of_turn>model\n"},
        {CHAT_TEMPLATE_PHI3, "<|assistant|>\n"},
        {CHAT_TEMPLATE_PHI4, "<|im_start|>assistant<|im_sep|>"},
        {CHAT_TEMPLATE_LLAMA2, ""},
        {CHAT_TEMPLATE_LLAMA2_SYS, ""},
        {CHAT_TEMPLATE_LLAMA2_SYS_BOS, ""},
        {CHAT_TEMPLATE_LLAMA2_SYS_STRIP, ""},
        {CHAT_TEMPLATE_MISTRAL_V1, ""},
        {CHAT_TEMPLATE_MISTRAL_V3, ""},
        {CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, ""},
        {CHAT_TEMPLATE_MISTRAL_V7, ""},
    };
    assert_int_equal(sizeof gen / sizeof gen[0], CHAT_TEMPLATE_COUNT);
    for (size_t i = 0; i < sizeof gen / sizeof gen[0]; i++) {
        char *with = render_ok(gen[i].k, conv4, 4, true, NULL, NULL);
        char *without = render_ok(gen[i].k, conv4, 4, false, NULL, NULL);
        size_t lw = strlen(with), lo = strlen(without), ls = strlen(gen[i].suffix);
        assert_int_equal(lw, lo + ls);
        assert_memory_equal(with, without, lo);
        assert_string_equal(with + lo, gen[i].suffix);
        free(with);
        free(without);
    }
}

/* A lone user message, no system prompt; trimming keeps non-ASCII bytes. */
static void test_render_single_and_trim(void **state) {
    (void)state;
    const chat_message one[] = {{"user", " \t\xc3\xa9t\xc3\xa9\xc2\xa0\n"}};
    /* trim removes ASCII whitespace only: U+00A0 (c2 a0) stays */
    expect_render(CHAT_TEMPLATE_LLAMA3, one, 1, true, NULL, NULL,
                  "<|start_header_id|>user<|end_header_id|>\n\n\xc3\xa9t\xc3\xa9\xc2\xa0<|eot_id|>"
                  "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect_render(CHAT_TEMPLATE_LLAMA2, one, 1, true, NULL, NULL,
                  "[INST]  \t\xc3\xa9t\xc3\xa9\xc2\xa0\n [/INST]");
    const chat_message empty[] = {{"user", ""}};
    expect_render(CHAT_TEMPLATE_CHATML, empty, 1, false, NULL, NULL, "<|im_start|>user\n<|im_end|>\n");
    /* gemma: a whitespace-only system prompt adds nothing */
    const chat_message ws[] = {{"system", "  "}, {"user", "q"}};
    expect_render(CHAT_TEMPLATE_GEMMA, ws, 2, true, NULL, NULL,
                  "<start_of_turn>user\nq<end_of_turn>\n<start_of_turn>model\n");
    /* non-alternating families accept any order and repeated roles */
    const chat_message any[] = {{"user", "a"}, {"user", "b"}, {"system", "c"}};
    expect_render(CHAT_TEMPLATE_CHATML, any, 3, true, NULL, NULL,
                  "<|im_start|>user\na<|im_end|>\n<|im_start|>user\nb<|im_end|>\n<|im_start|>system\nc<|im_end|>\n"
                  "<|im_start|>assistant\n");
}

/* ---- rendering errors ----------------------------------------------------- */

static void expect_render_error(chat_template_kind k, const chat_message *m, size_t n, int code,
                                const char *needle) {
    char *out = (char *)1;
    size_t len = 7;
    eng_err err = {0};
    int rc = chat_render(k, m, n, true, NULL, NULL, &out, &len, &err);
    if (rc != code || !strstr(err.msg, needle))
        fprintf(stderr, "%s: rc %d, msg [%s], wanted %d and [%s]\n", chat_template_name(k), rc, err.msg, code,
                needle);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(out);
    assert_int_equal(len, 0);
    assert_non_null(strstr(err.msg, needle));
}

static void test_render_errors(void **state) {
    (void)state;
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++) {
        expect_render_error((chat_template_kind)k, conv4, 0, -EINVAL, "messages: empty");
        const chat_message bad_role[] = {{"user", "a"}, {"tool", "b"}};
        expect_render_error((chat_template_kind)k, bad_role, 2, -EINVAL, "messages[1].role: 'tool'");
        const chat_message no_role[] = {{NULL, "a"}};
        expect_render_error((chat_template_kind)k, no_role, 1, -EINVAL, "messages[0].role: missing");
        const chat_message no_content[] = {{"system", "s"}, {"user", NULL}};
        expect_render_error((chat_template_kind)k, no_content, 2, -EINVAL, "messages[1].content: missing");
        const chat_message upper[] = {{"User", "a"}};
        expect_render_error((chat_template_kind)k, upper, 1, -EINVAL, "messages[0].role: 'User'");
    }
    expect_render_error(CHAT_TEMPLATE_COUNT, conv4, 4, -EINVAL, "out of range");
    expect_render_error((chat_template_kind)-1, conv4, 4, -EINVAL, "out of range");

    char *out;
    size_t len;
    eng_err err = {0};
    assert_int_equal(chat_render(CHAT_TEMPLATE_CHATML, conv4, 4, true, NULL, NULL, NULL, &len, &err), -EINVAL);
    assert_int_equal(chat_render(CHAT_TEMPLATE_CHATML, conv4, 4, true, NULL, NULL, &out, NULL, &err), -EINVAL);
    assert_int_equal(chat_render(CHAT_TEMPLATE_CHATML, NULL, 2, true, NULL, NULL, &out, &len, NULL), -EINVAL);
}

/* Families whose templates require alternation name the offending index. */
static void test_render_alternation(void **state) {
    (void)state;
    const chat_message two_users[] = {{"system", "s"}, {"user", "a"}, {"user", "b"}};
    const chat_message starts_assistant[] = {{"assistant", "a"}, {"user", "b"}};
    const chat_message late_system[] = {{"user", "a"}, {"assistant", "b"}, {"system", "c"}};
    const chat_message only_system[] = {{"system", "s"}};
    const chat_template_kind alt[] = {
        CHAT_TEMPLATE_LLAMA2,     CHAT_TEMPLATE_LLAMA2_SYS, CHAT_TEMPLATE_LLAMA2_SYS_BOS,
        CHAT_TEMPLATE_LLAMA2_SYS_STRIP, CHAT_TEMPLATE_MISTRAL_V1, CHAT_TEMPLATE_MISTRAL_V3,
        CHAT_TEMPLATE_MISTRAL_V3_TEKKEN, CHAT_TEMPLATE_GEMMA,
    };
    for (size_t i = 0; i < sizeof alt / sizeof alt[0]; i++) {
        expect_render_error(alt[i], two_users, 3, -EINVAL, "messages[2].role: chat template");
        expect_render_error(alt[i], two_users, 3, -EINVAL, "expects 'assistant' here");
        expect_render_error(alt[i], starts_assistant, 2, -EINVAL, "messages[0].role");
        expect_render_error(alt[i], starts_assistant, 2, -EINVAL, "expects 'user' here");
        expect_render_error(alt[i], late_system, 3, -EINVAL, "messages[2].role");
        expect_render_error(alt[i], only_system, 1, -EINVAL, "only a system message");
    }
    /* ... and the name of the family */
    expect_render_error(CHAT_TEMPLATE_LLAMA2, two_users, 3, -EINVAL, "chat template llama2 expects");
    /* an assistant turn last is fine (prefill-style continuation) */
    const chat_message ends_assistant[] = {{"user", "a"}, {"assistant", "b"}};
    char *s = render_ok(CHAT_TEMPLATE_LLAMA2_SYS, ends_assistant, 2, true, NULL, NULL);
    assert_string_equal(s, "[INST] a [/INST]b</s>");
    free(s);
}

/* ---- detection ------------------------------------------------------------ */

static void expect_detect(const char *tmpl, chat_template_kind want) {
    chat_template_kind got = CHAT_TEMPLATE_COUNT;
    eng_err err = {0};
    int rc = chat_template_detect(tmpl, &got, &err);
    if (rc || got != want)
        fprintf(stderr, "detect [%.80s]: rc %d (%s) got %s want %s\n", tmpl, rc, err.msg, chat_template_name(got),
                chat_template_name(want));
    assert_int_equal(rc, 0);
    assert_int_equal(got, want);
}

static void expect_detect_error(const char *tmpl, int code, const char *needle) {
    chat_template_kind got = CHAT_TEMPLATE_COUNT;
    eng_err err = {0};
    int rc = chat_template_detect(tmpl, &got, &err);
    if (rc != code || !strstr(err.msg, needle))
        fprintf(stderr, "detect [%.80s]: rc %d msg [%s]\n", tmpl ? tmpl : "(null)", rc, err.msg);
    assert_int_equal(rc, code);
    assert_int_equal(got, CHAT_TEMPLATE_COUNT);  /* untouched */
    assert_non_null(strstr(err.msg, needle));
    assert_non_null(strstr(err.msg, "set chat_template = chatml|llama2|llama3|zephyr|gemma|phi3"));
}

static void test_detect_by_name(void **state) {
    (void)state;
    for (int k = 0; k < CHAT_TEMPLATE_COUNT; k++) {
        expect_detect(chat_template_name((chat_template_kind)k), (chat_template_kind)k);
        for (int j = 0; j < k; j++)  /* names are distinct */
            assert_string_not_equal(chat_template_name((chat_template_kind)j),
                                    chat_template_name((chat_template_kind)k));
    }
    assert_string_equal(chat_template_name(CHAT_TEMPLATE_COUNT), "?");
    assert_string_equal(chat_template_name((chat_template_kind)-3), "?");
    /* llama.cpp: a name starting "mistral" goes to the [INST] tests */
    expect_detect("mistral", CHAT_TEMPLATE_LLAMA2);
}

/* Short excerpts in the style of the families' published templates. */
static void test_detect_from_jinja(void **state) {
    (void)state;
    expect_detect("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
                  "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                  "}}{% endif %}",
                  CHAT_TEMPLATE_CHATML);
    expect_detect("{% for m in messages %}{{'<|im_start|>' + m['role'] + '<|im_sep|>' + m['content'] + "
                  "'<|im_end|>'}}{% endfor %}",
                  CHAT_TEMPLATE_PHI4);
    expect_detect("{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                  "message['content'] + ' [/INST]' }}{% else %}{{ message['content'] + eos_token }}{% endif %}"
                  "{% endfor %}",
                  CHAT_TEMPLATE_LLAMA2);
    expect_detect("{% if loop.index0 == 0 %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' "
                  "+ message['content'] %}{% endif %}{{ '[INST] ' + content + ' [/INST]' }}",
                  CHAT_TEMPLATE_LLAMA2_SYS);
    expect_detect("{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}{{- '[INST] <<SYS>>\\n' "
                  "+ messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}",
                  CHAT_TEMPLATE_LLAMA2_SYS_BOS);
    /* meta-llama/Llama-2-7b-chat-hf strips contents */
    expect_detect("{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}"
                  "{% elif message['role'] == 'system' %}{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}"
                  "{% endif %}",
                  CHAT_TEMPLATE_LLAMA2_SYS_STRIP);
    expect_detect("{{- ' [INST] ' + system_message + '\\n\\n' + message['content'] + ' [/INST]' }}",
                  CHAT_TEMPLATE_MISTRAL_V1);
    expect_detect("{{- \"[AVAILABLE_TOOLS] [\" }}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}",
                  CHAT_TEMPLATE_MISTRAL_V3);
    expect_detect("{{- \"[AVAILABLE_TOOLS][\" }}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}",
                  CHAT_TEMPLATE_MISTRAL_V3_TEKKEN);
    expect_detect("{{- '[SYSTEM_PROMPT]' + system_message + '[/SYSTEM_PROMPT]' }}{{- '[INST]' + "
                  "message['content'] + '[/INST]' }}",
                  CHAT_TEMPLATE_MISTRAL_V7);
    expect_detect("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
                  "message['content'] | trim + '<|eot_id|>' %}{{ content }}",
                  CHAT_TEMPLATE_LLAMA3);
    /* stablelm-2-zephyr and HuggingFaceH4/zephyr-7b-beta */
    expect_detect("{% if message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|endoftext|>\\n'}}"
                  "{% endif %}",
                  CHAT_TEMPLATE_ZEPHYR);
    expect_detect("{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n"
                  "{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + "
                  "eos_token }}\n{% endif %}",
                  CHAT_TEMPLATE_ZEPHYR);
    expect_detect("{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% endif %}{{ "
                  "'<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}",
                  CHAT_TEMPLATE_GEMMA);
    expect_detect("{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + "
                  "'<|end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}",
                  CHAT_TEMPLATE_PHI3);
}

static void test_detect_errors(void **state) {
    (void)state;
    expect_detect_error(NULL, -ENOENT, "model has no chat template");
    expect_detect_error("", -ENOENT, "model has no chat template");
    expect_detect_error("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}", -ENOTSUP,
                        "not recognised");
    expect_detect_error("ChatML", -ENOTSUP, "not recognised");  /* names are exact */
    expect_detect_error("[gMASK]<sop>{% for item in messages %}<|{{ item['role'] }}|>{% endfor %}", -ENOTSUP,
                        "ChatGLM");
    expect_detect_error("<|im_start|>{% for m in messages %}User:{{ m['content'] }}<end_of_utterance>\n"
                        "{% endfor %}",
                        -ENOTSUP, "SmolVLM");
    expect_detect_error("<|START_OF_TURN_TOKEN|><|USER_TOKEN|>", -ENOTSUP, "Command-R");
    expect_detect_error("<|header_start|>user<|header_end|>", -ENOTSUP, "Llama-4");
    eng_err err = {0};
    assert_int_equal(chat_template_detect("chatml", NULL, &err), -EINVAL);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_llama_cpp_conversation),
        cmocka_unit_test(test_render_four_messages),
        cmocka_unit_test(test_render_without_generation_prompt),
        cmocka_unit_test(test_render_single_and_trim),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_render_alternation),
        cmocka_unit_test(test_detect_by_name),
        cmocka_unit_test(test_detect_from_jinja),
        cmocka_unit_test(test_detect_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
