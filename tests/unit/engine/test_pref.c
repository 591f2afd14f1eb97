/* test_pref.c - preference pairs (pref.h): tokenization against the DPO
 * reference's ids (../shared/conformance/gpt2-tiny), the truncation rules,
 * JSONL in both TRL forms with line-numbered errors, and padded batches. */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pref.h"
#include "tok_load.h"

static char err[512];

static tok *load_gpt2_tok(void)
{
    char *path = tu_shared_path("conformance/gpt2-tiny");
    if (!path)
        return NULL;
    tok *t = NULL;
    tok_err te = {0};
    if (tok_load(&t, path, &te))
        fail_msg("%s", te.msg);
    free(path);
    return t;
}

static pref_tok gpt2_pt(tok *t)
{
    return (pref_tok){.t = t, .add_bos = false, .eos_id = tok_eos(t)};
}

static void assert_ids(const int32_t *got, int n, json_t *want)
{
    assert_int_equal(n, (int)json_array_size(want));
    for (int i = 0; i < n; i++)
        assert_int_equal(got[i], json_integer_value(json_array_get(want, (size_t)i)));
}

static void test_matches_dpo_reference_ids(void **state)
{
    (void)state;
    tok *t = load_gpt2_tok();
    if (!t)
        skip();
    char *path = tu_shared_path("conformance/gpt2-tiny/dpo_reference.json");
    json_t *ref = json_load_file(path, 0, NULL);
    free(path);
    json_t *pairs = json_object_get(json_object_get(json_object_get(ref, "cases"), "lora"),
                                    "pairs");
    pref_opts o;
    pref_opts_default(&o);
    o.add_eos = false; /* the reference appends no EOS */
    pref_tok pt = gpt2_pt(t);
    pref_set s = {0};
    for (size_t i = 0; i < json_array_size(pairs); i++) {
        json_t *p = json_array_get(pairs, i);
        assert_int_equal(pref_add_text(&s, &pt, json_string_value(json_object_get(p, "prompt")),
                                       json_string_value(json_object_get(p, "chosen")),
                                       json_string_value(json_object_get(p, "rejected")), false,
                                       0, &o, err, sizeof err),
                         0);
        const pref_pair *q = &s.p[i];
        assert_ids(pref_prompt(q), q->n_prompt, json_object_get(p, "prompt_ids"));
        assert_ids(pref_chosen(q), q->n_chosen, json_object_get(p, "chosen_ids"));
        assert_ids(pref_rejected(q), q->n_rejected, json_object_get(p, "rejected_ids"));
    }
    /* with EOS (TRL's default) each response ends in <|endoftext|> */
    o.add_eos = true;
    json_t *p0 = json_array_get(pairs, 0);
    pref_add_text(&s, &pt, json_string_value(json_object_get(p0, "prompt")),
                  json_string_value(json_object_get(p0, "chosen")),
                  json_string_value(json_object_get(p0, "rejected")), false, 0, &o, err,
                  sizeof err);
    const pref_pair *q = &s.p[s.n - 1];
    assert_int_equal(pref_chosen(q)[q->n_chosen - 1], 50256);
    assert_int_equal(q->n_chosen, s.p[0].n_chosen + 1);
    pref_set_free(&s);
    json_decref(ref);
    tok_free(t);
}

static void test_truncation(void **state)
{
    (void)state;
    tok *t = load_gpt2_tok();
    if (!t)
        skip();
    pref_tok pt = gpt2_pt(t);
    pref_opts o;
    pref_opts_default(&o);
    o.add_eos = false;
    pref_set full = {0}, cut = {0};
    const char *prompt = "one two three four five six seven eight";
    const char *chosen = " alpha beta gamma delta epsilon", *rejected = " zeta eta";
    pref_add_text(&full, &pt, prompt, chosen, rejected, false, 0, &o, err, sizeof err);
    o.max_prompt_len = 3;
    o.max_len = 6;
    assert_int_equal(pref_add_text(&cut, &pt, prompt, chosen, rejected, false, 0, &o, err,
                                   sizeof err), 0);
    const pref_pair *f = &full.p[0], *c = &cut.p[0];
    assert_true(c->truncated);
    assert_int_equal(cut.n_truncated, 1);
    /* the END of the prompt */
    assert_int_equal(c->n_prompt, 3);
    assert_memory_equal(pref_prompt(c), pref_prompt(f) + f->n_prompt - 3, 3 * sizeof(int32_t));
    /* the START of each response, within max_len */
    assert_int_equal(c->n_chosen, 3);
    assert_memory_equal(pref_chosen(c), pref_chosen(f), 3 * sizeof(int32_t));
    assert_int_equal(c->n_rejected, f->n_rejected < 3 ? f->n_rejected : 3);
    /* bad options */
    o.max_prompt_len = 6;
    assert_int_equal(pref_add_text(&cut, &pt, prompt, chosen, rejected, false, 0, &o, err,
                                   sizeof err), -EINVAL);
    assert_non_null(strstr(err, "max_prompt_len"));
    /* an empty response is skipped and counted */
    pref_opts_default(&o);
    o.add_eos = false;
    assert_int_equal(pref_add_text(&cut, &pt, prompt, "", rejected, false, 0, &o, err,
                                   sizeof err), 0);
    assert_int_equal(cut.n_skipped, 1);
    assert_int_equal(cut.n, 1);
    pref_set_free(&full);
    pref_set_free(&cut);
    tok_free(t);
}

static char *write_tmp(const char *text)
{
    char *path = strdup("/tmp/alignd_pref_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_jsonl(void **state)
{
    (void)state;
    tok *t = load_gpt2_tok();
    if (!t)
        skip();
    pref_tok pt = gpt2_pt(t);
    pt.has_chat = true;
    pt.chat_kind = CHAT_TEMPLATE_CHATML;
    pref_opts o;
    pref_opts_default(&o);
    char *path = write_tmp(
        "{\"prompt\": \"Hi\", \"chosen\": \" there\", \"rejected\": \" no\", \"split\": "
        "\"eval\", \"margin\": 1.5}\n"
        "\n"
        "{\"prompt\": [{\"role\": \"user\", \"content\": \"Hi\"}], \"chosen\": [{\"role\": "
        "\"assistant\", \"content\": \"Hello!\"}], \"rejected\": [{\"role\": \"assistant\", "
        "\"content\": \"Go away.\"}], \"split\": \"train\"}\n");
    pref_set s = {0};
    assert_int_equal(pref_load_jsonl(&s, path, &pt, &o, err, sizeof err), 0);
    assert_int_equal(s.n, 2);
    assert_true(s.p[0].eval);
    assert_true(s.p[0].margin == 1.5f);
    assert_false(s.p[1].eval);
    assert_int_equal(s.n_eval, 1);
    /* the chatml prompt ends with the assistant header; the response with
     * <|im_end|> (the template's end of turn, as text tokens here) */
    char text[256];
    size_t n = 0;
    tok_err te = {0};
    const pref_pair *m = &s.p[1];
    tok_decode(t, pref_chosen(m), (size_t)m->n_chosen, 0, text, sizeof text, &n, &te);
    text[n] = '\0';
    assert_non_null(strstr(text, "Hello!"));
    assert_non_null(strstr(text, "<|im_end|>"));
    tok_decode(t, pref_prompt(m), (size_t)m->n_prompt, 0, text, sizeof text, &n, &te);
    text[n] = '\0';
    assert_non_null(strstr(text, "<|im_start|>assistant"));
    pref_set_free(&s);
    unlink(path);
    free(path);

    /* errors name the line and the field */
    const char *bad[][2] = {
        {"{\"prompt\": \"a\", \"chosen\": \"b\"}\n", "line 1"},
        {"\n{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\", \"split\": \"x\"}\n",
         "line 2: split"},
        {"[1, 2]\n", "not a JSON object"},
        {"{\"prompt\": [{\"role\": \"user\", \"content\": \"x\"}], \"chosen\": [{\"role\": "
         "\"user\", \"content\": \"y\"}], \"rejected\": [{\"role\": \"assistant\", \"content\":"
         " \"z\"}]}\n", "chosen[0]: role must be assistant"},
        {"", "no preference pairs"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        path = write_tmp(bad[i][0]);
        pref_set e = {0};
        assert_true(pref_load_jsonl(&e, path, &pt, &o, err, sizeof err) < 0);
        if (!strstr(err, bad[i][1]))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i][1]);
        pref_set_free(&e);
        unlink(path);
        free(path);
    }
    pref_set e = {0};
    assert_true(pref_load_jsonl(&e, "/nonexistent/p.jsonl", &pt, &o, err, sizeof err) < 0);
    assert_non_null(strstr(err, "/nonexistent/p.jsonl"));
    tok_free(t);
}

static void test_batch(void **state)
{
    (void)state;
    pref_set s = {0};
    s.p = calloc(2, sizeof(pref_pair));
    s.n = s.cap = 2;
    int32_t a[] = {1, 2, 3, 10, 11, 20}, b[] = {5, 30, 31, 32, 40};
    s.p[0] = (pref_pair){.ids = a, .n_prompt = 3, .n_chosen = 2, .n_rejected = 1};
    s.p[1] = (pref_pair){.ids = b, .n_prompt = 1, .n_chosen = 3, .n_rejected = 1};
    pref_batch pb = {0};
    int idx[2] = {1, 0};
    assert_int_equal(pref_batch_make(&pb, &s, idx, 2, err, sizeof err), 0);
    assert_int_equal(pb.B, 4);
    assert_int_equal(pb.L, 5);
    int32_t want_lens[4] = {4, 2, 5, 4};
    assert_memory_equal(pb.lens, want_lens, sizeof want_lens);
    /* sequence 2 = pair 0 chosen: 1 2 3 10 11; targets on positions 2, 3 */
    int32_t want_tok[5] = {1, 2, 3, 10, 11}, want_tgt[5] = {-1, -1, 10, 11, -1};
    assert_memory_equal(pb.tokens + 10, want_tok, sizeof want_tok);
    assert_memory_equal(pb.targets + 10, want_tgt, sizeof want_tgt);
    /* sequence 1 = pair 1 rejected: 5 40, then padding with no targets */
    int32_t want_tgt1[5] = {40, -1, -1, -1, -1};
    assert_memory_equal(pb.targets + 5, want_tgt1, sizeof want_tgt1);
    pref_batch_free(&pb);
    free(s.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_dpo_reference_ids),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_jsonl),
        cmocka_unit_test(test_batch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
