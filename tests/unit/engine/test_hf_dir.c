/* test_hf_dir.c - Hugging Face model directories: config.json getters, the
 * four reference models in ../shared/conformance, a sharded directory built
 * in a temp folder, and hostile config / directory cases. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hf_dir.h"

#define TOK(f) (1u << HF_TOK_##f)

/* ---- helpers ------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const void *p, size_t n) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* Writes text with single quotes turned into double quotes. */
static void write_text(const char *dir, const char *name, const char *text) {
    char *t = strdup(text);
    assert_non_null(t);
    for (char *c = t; *c; c++)
        if (*c == '\'') *c = '"';
    write_file(dir, name, t, strlen(t));
    free(t);
}

static void remove_in(const char *dir, const char *name) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* A safetensors image: le64 header length, header (quotes converted), data. */
static void write_st(const char *dir, const char *name, const char *header,
                     const void *data, size_t data_len) {
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    for (size_t i = 0; i < hl; i++) b[8 + i] = header[i] == '\'' ? '"' : (unsigned char)header[i];
    memcpy(b + 8 + hl, data, data_len);
    write_file(dir, name, b, n);
    free(b);
}

static hf_config *parse_cfg(const char *text) {
    char *t = strdup(text);
    assert_non_null(t);
    for (char *c = t; *c; c++)
        if (*c == '\'') *c = '"';
    hf_config *c;
    st_error err = {0};
    if (hf_config_parse(&c, t, strlen(t), "test-config.json", &err))
        fail_msg("parse: %s", err.msg);
    free(t);
    return c;
}

/* ---- config getters ------------------------------------------------------ */

static const char *const cfg_text =
    "{'model_type':'llama','architectures':['LlamaForCausalLM','Other'],"
    "'hidden_size':32,'rope_theta':500000.0,'rms_norm_eps':1e-05,'eps_big':1e300,"
    "'tie_word_embeddings':false,'rope_scaling':null,'hidden_act':'silu',"
    "'neg':-7,'frac':2.5,'text_config':{'hidden_size':64,'inner':{'depth':3},"
    "'none':null},'with.dot':5,'list':[1,2]}";

static void test_config_getters(void **state) {
    (void)state;
    hf_config *c = parse_cfg(cfg_text);
    st_error err = {0};
    assert_string_equal(hf_config_label(c), "test-config.json");
    assert_string_equal(hf_config_model_type(c), "llama");
    assert_int_equal(hf_config_n_architectures(c), 2);
    assert_string_equal(hf_config_architecture(c, 0), "LlamaForCausalLM");
    assert_string_equal(hf_config_architecture(c, 1), "Other");
    assert_null(hf_config_architecture(c, 2));

    int64_t i;
    double d;
    bool b;
    const char *s;
    assert_int_equal(hf_config_int(c, "hidden_size", 1, &i, &err), 0);
    assert_int_equal(i, 32);
    assert_int_equal(hf_config_int(c, "neg", 1, &i, &err), 0);
    assert_int_equal(i, -7);
    assert_int_equal(hf_config_int(c, "rope_theta", 1, &i, &err), 0);  /* integral real */
    assert_int_equal(i, 500000);
    assert_int_equal(hf_config_int(c, "absent", 99, &i, &err), 0);
    assert_int_equal(i, 99);
    assert_int_equal(hf_config_int(c, "rope_scaling", 98, &i, &err), 0);  /* null */
    assert_int_equal(i, 98);
    assert_int_equal(hf_config_req_int(c, "hidden_size", &i, &err), 0);
    assert_int_equal(i, 32);

    assert_int_equal(hf_config_float(c, "rope_theta", 10000.0, &d, &err), 0);
    assert_true(d == 500000.0);
    assert_int_equal(hf_config_float(c, "rms_norm_eps", 0, &d, &err), 0);
    assert_true(d == 1e-05);
    assert_int_equal(hf_config_float(c, "hidden_size", 0, &d, &err), 0);  /* int as float */
    assert_true(d == 32.0);
    assert_int_equal(hf_config_float(c, "absent", 0.5, &d, &err), 0);
    assert_true(d == 0.5);
    assert_int_equal(hf_config_req_float(c, "frac", &d, &err), 0);
    assert_true(d == 2.5);

    assert_int_equal(hf_config_bool(c, "tie_word_embeddings", true, &b, &err), 0);
    assert_false(b);
    assert_int_equal(hf_config_bool(c, "absent", true, &b, &err), 0);
    assert_true(b);
    assert_int_equal(hf_config_req_bool(c, "tie_word_embeddings", &b, &err), 0);

    assert_int_equal(hf_config_str(c, "hidden_act", "gelu", &s, &err), 0);
    assert_string_equal(s, "silu");
    assert_int_equal(hf_config_str(c, "absent", "gelu", &s, &err), 0);
    assert_string_equal(s, "gelu");
    assert_int_equal(hf_config_str(c, "absent", NULL, &s, &err), 0);
    assert_null(s);
    assert_int_equal(hf_config_req_str(c, "model_type", &s, &err), 0);
    assert_string_equal(s, "llama");

    /* dotted paths into nested objects; literal dotted keys win */
    assert_int_equal(hf_config_req_int(c, "text_config.hidden_size", &i, &err), 0);
    assert_int_equal(i, 64);
    assert_int_equal(hf_config_req_int(c, "text_config.inner.depth", &i, &err), 0);
    assert_int_equal(i, 3);
    assert_int_equal(hf_config_int(c, "text_config.absent", 4, &i, &err), 0);
    assert_int_equal(i, 4);
    assert_int_equal(hf_config_int(c, "text_config.none.x", 5, &i, &err), 0);
    assert_int_equal(i, 5);
    assert_int_equal(hf_config_int(c, "nothing.x.y", 6, &i, &err), 0);
    assert_int_equal(i, 6);
    assert_int_equal(hf_config_req_int(c, "with.dot", &i, &err), 0);
    assert_int_equal(i, 5);

    assert_true(hf_config_has(c, "hidden_size"));
    assert_true(hf_config_has(c, "text_config.inner"));
    assert_false(hf_config_has(c, "rope_scaling"));
    assert_false(hf_config_has(c, "absent"));
    assert_false(hf_config_has(c, "hidden_act.x"));

    hf_config_free(c);
    hf_config_free(NULL);
}

/* Getter failures: one row per case. kind: 'i' int, 'f' float, 'b' bool,
 * 's' string; req: the required variant. */
typedef struct getter_case {
    char kind;
    bool req;
    const char *key;
    int rc;
    const char *want;
} getter_case;

static const getter_case getter_cases[] = {
    {'i', true, "nonexistent", -ENOENT, "test-config.json: required key 'nonexistent' is missing"},
    {'f', true, "rope_scaling", -ENOENT, "required key 'rope_scaling' is missing"},
    {'b', true, "absent", -ENOENT, "required key 'absent'"},
    {'s', true, "text_config.absent", -ENOENT, "required key 'text_config.absent'"},
    {'i', false, "hidden_act", -EINVAL, "key 'hidden_act' is a string, expected an integer"},
    {'i', true, "frac", -EINVAL, "key 'frac' is 2.5, expected an integer"},
    {'i', false, "eps_big", -EINVAL, "expected an integer"},
    {'i', false, "tie_word_embeddings", -EINVAL, "is a boolean, expected an integer"},
    {'i', false, "text_config", -EINVAL, "is an object, expected an integer"},
    {'f', false, "hidden_act", -EINVAL, "key 'hidden_act' is a string, expected a number"},
    {'f', false, "list", -EINVAL, "is an array, expected a number"},
    {'b', false, "hidden_size", -EINVAL, "key 'hidden_size' is an integer, expected a boolean"},
    {'s', false, "hidden_size", -EINVAL, "key 'hidden_size' is an integer, expected a string"},
    {'i', false, "hidden_act.x", -EINVAL, "key 'hidden_act' is a string, expected an object"},
    {'i', false, "text_config.hidden_size.x", -EINVAL,
     "key 'text_config.hidden_size' is an integer, expected an object"},
};

static void test_config_getter_errors(void **state) {
    (void)state;
    hf_config *c = parse_cfg(cfg_text);
    for (size_t k = 0; k < sizeof getter_cases / sizeof getter_cases[0]; k++) {
        const getter_case *g = &getter_cases[k];
        st_error err = {0};
        int64_t i = 1234;
        double d = 1234;
        bool b = true;
        const char *s = "keep";
        int rc = 0;
        switch (g->kind) {
        case 'i': rc = g->req ? hf_config_req_int(c, g->key, &i, &err)
                              : hf_config_int(c, g->key, 0, &i, &err); break;
        case 'f': rc = g->req ? hf_config_req_float(c, g->key, &d, &err)
                              : hf_config_float(c, g->key, 0, &d, &err); break;
        case 'b': rc = g->req ? hf_config_req_bool(c, g->key, &b, &err)
                              : hf_config_bool(c, g->key, false, &b, &err); break;
        case 's': rc = g->req ? hf_config_req_str(c, g->key, &s, &err)
                              : hf_config_str(c, g->key, NULL, &s, &err); break;
        }
        if (rc != g->rc) fail_msg("key '%s' (%c): rc %d, expected %d", g->key, g->kind, rc, g->rc);
        if (!strstr(err.msg, g->want))
            fail_msg("key '%s': error \"%s\" lacks \"%s\"", g->key, err.msg, g->want);
        /* outputs are untouched on failure */
        assert_true(i == 1234 && d == 1234 && b && strcmp(s, "keep") == 0);
    }
    hf_config_free(c);
}

typedef struct config_case {
    const char *name;
    const char *text;  /* single quotes become double quotes */
    const char *want;
} config_case;

static const config_case bad_configs[] = {
    {"empty", "", "not valid JSON"},
    {"not JSON", "model_type: gpt2", "not valid JSON"},
    {"truncated", "{'model_type':'gpt2'", "not valid JSON"},
    {"top level array", "['gpt2']", "top level is an array, expected an object"},
    {"top level number", "42", "top level is an integer"},
    {"model_type number", "{'model_type':2}", "\"model_type\" is an integer, expected a string"},
    {"architectures string", "{'architectures':'GPT2LMHeadModel'}",
     "\"architectures\" is a string, expected an array"},
    {"architectures element", "{'architectures':['A',3]}",
     "\"architectures\"[1] is an integer, expected a string"},
    {"duplicate key", "{'n_embd':32,'n_embd':64}", "duplicate"},
    {"duplicate nested key", "{'text_config':{'a':1,'a':2}}", "duplicate"},
    {"integer too big", "{'n_embd':123456789012345678901234567890}", "not valid JSON"},
    {"invalid UTF-8", "{'model_type':'\xff'}", "not valid JSON"},
};

static void test_config_parse_errors(void **state) {
    (void)state;
    for (size_t k = 0; k < sizeof bad_configs / sizeof bad_configs[0]; k++) {
        const config_case *cc = &bad_configs[k];
        char *t = strdup(cc->text);
        assert_non_null(t);
        for (char *p = t; *p; p++)
            if (*p == '\'') *p = '"';
        hf_config *c = (hf_config *)&c;
        st_error err = {0};
        int rc = hf_config_parse(&c, t, strlen(t), "bad.json", &err);
        if (rc != -EINVAL) fail_msg("case '%s': rc %d", cc->name, rc);
        if (c) fail_msg("case '%s': *out not NULL", cc->name);
        if (!strstr(err.msg, cc->want) || !strstr(err.msg, "bad.json"))
            fail_msg("case '%s': error \"%s\" lacks \"%s\"", cc->name, err.msg, cc->want);
        free(t);
    }
    /* the buffer need not be NUL-terminated; NULL label defaults */
    const char text[] = {'{', '}', 'x'};
    hf_config *c;
    st_error err = {0};
    assert_int_equal(hf_config_parse(&c, text, 2, NULL, &err), 0);
    assert_string_equal(hf_config_label(c), "config.json");
    assert_null(hf_config_model_type(c));
    assert_int_equal(hf_config_n_architectures(c), 0);
    hf_config_free(c);
    /* explicit nulls are treated as absent */
    c = parse_cfg("{'model_type':null,'architectures':null}");
    assert_null(hf_config_model_type(c));
    assert_int_equal(hf_config_n_architectures(c), 0);
    hf_config_free(c);
}

/* ---- the reference models ------------------------------------------------ */

typedef struct ref_int { const char *key; int64_t value; } ref_int;
typedef struct ref_float { const char *key; double value; } ref_float;
typedef struct ref_tensor {
    const char *name;
    int n_dims;
    int64_t shape[4];
} ref_tensor;

typedef struct ref_model {
    const char *dir;
    const char *model_type;
    const char *arch;
    unsigned tok_files;
    size_t n_tensors;
    ref_int ints[6];
    ref_float floats[3];
    ref_tensor tensors[5];
    const char *absent[3];
} ref_model;

static const ref_model ref_models[] = {
    {"conformance/gpt2-tiny", "gpt2", "GPT2LMHeadModel",
     TOK(VOCAB_JSON) | TOK(MERGES_TXT) | TOK(SPECIAL_TOKENS_MAP) | TOK(TOKENIZER_CONFIG), 28,
     {{"n_embd", 32}, {"n_layer", 2}, {"n_head", 4}, {"n_inner", 128}, {"vocab_size", 50257},
      {"n_positions", 512}},
     {{"layer_norm_epsilon", 1e-5}},
     {{"transformer.h.0.attn.c_attn.weight", 2, {32, 96}},
      {"transformer.h.1.mlp.c_fc.weight", 2, {32, 128}},
      {"transformer.wte.weight", 2, {50257, 32}},
      {"transformer.wpe.weight", 2, {512, 32}},
      {"transformer.ln_f.bias", 1, {32}}},
     {"lm_head.weight", "h.0.attn.bias", "transformer.h.2.ln_1.weight"}},
    {"conformance/llama-tiny", "llama", "LlamaForCausalLM",
     TOK(SPM_MODEL) | TOK(SPECIAL_TOKENS_MAP) | TOK(TOKENIZER_CONFIG), 21,
     {{"hidden_size", 32}, {"num_key_value_heads", 2}, {"num_attention_heads", 4},
      {"intermediate_size", 128}, {"vocab_size", 32000}, {"max_position_embeddings", 512}},
     {{"rope_theta", 500000.0}, {"rms_norm_eps", 1e-5}},
     {{"lm_head.weight", 2, {32000, 32}},
      {"model.embed_tokens.weight", 2, {32000, 32}},
      {"model.layers.1.self_attn.k_proj.weight", 2, {16, 32}},
      {"model.layers.0.mlp.gate_proj.weight", 2, {128, 32}},
      {"model.norm.weight", 1, {32}}},
     {"model.layers.0.self_attn.q_proj.bias", "model.layers.2.input_layernorm.weight", NULL}},
    {"conformance/bert-tiny", "bert", "BertModel",
     TOK(VOCAB_TXT) | TOK(SPECIAL_TOKENS_MAP) | TOK(TOKENIZER_CONFIG), 39,
     {{"hidden_size", 32}, {"num_hidden_layers", 2}, {"type_vocab_size", 2},
      {"vocab_size", 30522}, {"pad_token_id", 0}},
     {{"layer_norm_eps", 1e-12}},
     {{"embeddings.word_embeddings.weight", 2, {30522, 32}},
      {"embeddings.token_type_embeddings.weight", 2, {2, 32}},
      {"pooler.dense.weight", 2, {32, 32}},
      {"encoder.layer.1.output.LayerNorm.bias", 1, {32}}},
     {"cls.predictions.bias", NULL, NULL}},
    {"conformance/clip-tiny", "clip", "CLIPModel",
     TOK(VOCAB_JSON) | TOK(MERGES_TXT) | TOK(SPECIAL_TOKENS_MAP) | TOK(TOKENIZER_CONFIG), 78,
     {{"projection_dim", 32}, {"text_config.hidden_size", 32}, {"text_config.pad_token_id", 49407},
      {"vision_config.hidden_size", 64}, {"vision_config.patch_size", 8},
      {"vision_config.image_size", 32}},
     {{"logit_scale_init_value", 2.6592}},
     {{"logit_scale", 0, {0}},
      {"vision_model.embeddings.patch_embedding.weight", 4, {64, 3, 8, 8}},
      {"visual_projection.weight", 2, {32, 64}},
      {"text_projection.weight", 2, {32, 32}},
      {"vision_model.pre_layrnorm.weight", 1, {64}}},
     {"text_projection.bias", "visual_projection.bias", NULL}},
};

static void check_ref_model(const ref_model *m) {
    char *path = tu_shared_path(m->dir);
    if (!path) skip();
    hf_dir *d;
    st_error err = {0};
    if (hf_dir_open(&d, path, &err)) fail_msg("%s", err.msg);
    const hf_config *c = hf_dir_config(d);
    assert_string_equal(hf_dir_path(d), path);
    assert_string_equal(hf_config_model_type(c), m->model_type);
    assert_int_equal(hf_config_n_architectures(c), 1);
    assert_string_equal(hf_config_architecture(c, 0), m->arch);
    assert_false(hf_dir_is_sharded(d));
    if (hf_dir_tok_files(d) != m->tok_files)
        fail_msg("%s: tokenizer files 0x%x, expected 0x%x", m->dir, hf_dir_tok_files(d),
                 m->tok_files);
    for (int f = 0; f < HF_TOK_FILE_COUNT; f++)
        assert_int_equal(hf_dir_has_tok_file(d, (hf_tok_file)f), !!(m->tok_files & (1u << f)));
    assert_int_equal(st_set_n_tensors(hf_dir_weights(d)), m->n_tensors);

    for (size_t i = 0; i < 6 && m->ints[i].key; i++) {
        int64_t v;
        if (hf_config_req_int(c, m->ints[i].key, &v, &err)) fail_msg("%s", err.msg);
        if (v != m->ints[i].value)
            fail_msg("%s: %s = %lld, expected %lld", m->dir, m->ints[i].key, (long long)v,
                     (long long)m->ints[i].value);
    }
    for (size_t i = 0; i < 3 && m->floats[i].key; i++) {
        double v;
        if (hf_config_req_float(c, m->floats[i].key, &v, &err)) fail_msg("%s", err.msg);
        if (v != m->floats[i].value)
            fail_msg("%s: %s = %g, expected %g", m->dir, m->floats[i].key, v, m->floats[i].value);
    }
    for (size_t i = 0; i < 5 && m->tensors[i].name; i++) {
        const ref_tensor *r = &m->tensors[i];
        const st_tensor *t;
        if (hf_dir_tensor(d, r->name, &t, &err)) fail_msg("%s", err.msg);
        if (st_tensor_expect(t, ST_F32, r->n_dims, r->shape, m->dir, &err))
            fail_msg("%s", err.msg);
        float *v;
        const st_tensor *t2;
        if (hf_dir_tensor_f32(d, r->name, &v, &t2, &err)) fail_msg("%s", err.msg);
        assert_ptr_equal(t, t2);
        assert_memory_equal(v, t->data, t->nbytes);
        free(v);
    }
    for (size_t i = 0; i < 3 && m->absent[i]; i++) {
        const st_tensor *t = (const st_tensor *)&t;
        assert_null(hf_dir_find(d, m->absent[i]));
        assert_int_equal(hf_dir_tensor(d, m->absent[i], &t, &err), -ENOENT);
        assert_null(t);
        assert_non_null(strstr(err.msg, m->absent[i]));
        assert_non_null(strstr(err.msg, "not found"));
        assert_non_null(strstr(err.msg, m->dir));
    }
    /* a required key that is absent names key and file */
    int64_t v;
    assert_int_equal(hf_config_req_int(c, "no_such_hyper_parameter", &v, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no_such_hyper_parameter"));
    assert_non_null(strstr(err.msg, "config.json"));
    char *fp = hf_dir_file_path(d, "config.json");
    assert_non_null(strstr(fp, m->dir));
    free(fp);
    hf_dir_close(d);
    free(path);
}

static void test_ref_gpt2(void **state) { (void)state; check_ref_model(&ref_models[0]); }
static void test_ref_llama(void **state) { (void)state; check_ref_model(&ref_models[1]); }
static void test_ref_bert(void **state) { (void)state; check_ref_model(&ref_models[2]); }
static void test_ref_clip(void **state) { (void)state; check_ref_model(&ref_models[3]); }

/* Values that the architectures need beyond the table above. */
static void test_ref_details(void **state) {
    (void)state;
    char *path = tu_shared_path("conformance/clip-tiny");
    if (!path) skip();
    hf_dir *d;
    st_error err = {0};
    if (hf_dir_open(&d, path, &err)) fail_msg("%s", err.msg);
    float *ls;
    const st_tensor *t;
    assert_int_equal(hf_dir_tensor_f32(d, "logit_scale", &ls, &t, &err), 0);
    assert_int_equal(t->n_elements, 1);
    assert_float_equal(ls[0], 2.6592, 1e-6);
    assert_float_equal(expf(ls[0]), 14.2849, 1e-3);
    free(ls);
    const char *s;
    assert_int_equal(hf_config_req_str(hf_dir_config(d), "vision_config.model_type", &s, &err), 0);
    assert_string_equal(s, "clip_vision_model");
    hf_dir_close(d);
    free(path);

    path = tu_shared_path("conformance/llama-tiny");
    if (!path) skip();
    if (hf_dir_open(&d, path, &err)) fail_msg("%s", err.msg);
    bool tie = true;
    assert_int_equal(hf_config_bool(hf_dir_config(d), "tie_word_embeddings", true, &tie, &err), 0);
    assert_false(tie);
    assert_false(hf_config_has(hf_dir_config(d), "rope_scaling"));  /* null */
    hf_dir_close(d);
    free(path);
}

/* ---- directories built here ---------------------------------------------- */

static char *mk_tmpdir(void) {
    char *d = strdup("/tmp/alignd_hf_XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static void write_sharded_model(const char *dir) {
    float a[4] = {1, 2, 3, 4};
    uint16_t b[2] = {0x3f80, 0xc000};  /* bf16 1, -2 */
    write_st(dir, "model-00001-of-00002.safetensors",
             "{'__metadata__':{'format':'pt'},"
             "'wte.weight':{'dtype':'F32','shape':[2,2],'data_offsets':[0,16]}}", a, sizeof a);
    write_st(dir, "model-00002-of-00002.safetensors",
             "{'ln.weight':{'dtype':'BF16','shape':[2],'data_offsets':[0,4]}}", b, sizeof b);
    write_text(dir, "config.json",
               "{'model_type':'gpt2','architectures':['GPT2LMHeadModel'],'n_embd':2}");
    write_text(dir, "vocab.json", "{}");
    write_text(dir, "merges.txt", "#version: 0.2\n");
    write_text(dir, "tokenizer.json", "{}");
}

static void clean_sharded_model(const char *dir) {
    static const char *const names[] = {
        "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors", "config.json",
        "vocab.json", "merges.txt", "tokenizer.json", "model.safetensors.index.json",
        "model.safetensors", "pytorch_model.bin",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) remove_in(dir, names[i]);
}

static void test_sharded_dir(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    write_sharded_model(dir);
    write_text(dir, "model.safetensors.index.json",
               "{'metadata':{'total_size':20},'weight_map':{"
               "'wte.weight':'model-00001-of-00002.safetensors',"
               "'ln.weight':'model-00002-of-00002.safetensors'}}");
    hf_dir *d;
    st_error err = {0};
    if (hf_dir_open(&d, dir, &err)) fail_msg("%s", err.msg);
    assert_true(hf_dir_is_sharded(d));
    assert_int_equal(st_set_n_files(hf_dir_weights(d)), 2);
    assert_int_equal(hf_dir_tok_files(d),
                     TOK(VOCAB_JSON) | TOK(MERGES_TXT) | TOK(TOKENIZER_JSON));
    float *v;
    const st_tensor *t;
    assert_int_equal(hf_dir_tensor_f32(d, "ln.weight", &v, &t, &err), 0);
    assert_int_equal(t->dtype, ST_BF16);
    assert_true(v[0] == 1.0f && v[1] == -2.0f);
    free(v);
    assert_int_equal(hf_dir_tensor_f32(d, "wte.weight", &v, NULL, &err), 0);
    assert_true(v[3] == 4.0f);
    free(v);
    assert_int_equal(hf_dir_tensor_f32(d, "nope", &v, NULL, &err), -ENOENT);
    assert_null(v);
    assert_non_null(strstr(err.msg, "tensor 'nope' not found"));
    hf_dir_close(d);
    hf_dir_close(NULL);

    /* missing shard */
    write_text(dir, "model.safetensors.index.json",
               "{'weight_map':{'wte.weight':'model-00001-of-00002.safetensors',"
               "'ln.weight':'model-00009-of-00009.safetensors'}}");
    d = (hf_dir *)&d;
    assert_int_equal(hf_dir_open(&d, dir, &err), -ENOENT);
    assert_null(d);
    assert_non_null(strstr(err.msg, "shard 'model-00009-of-00009.safetensors'"));
    assert_non_null(strstr(err.msg, "ln.weight"));

    /* listed but absent */
    write_text(dir, "model.safetensors.index.json",
               "{'weight_map':{'wte.weight':'model-00001-of-00002.safetensors',"
               "'lm_head.weight':'model-00002-of-00002.safetensors'}}");
    assert_int_equal(hf_dir_open(&d, dir, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "tensor 'lm_head.weight' is listed in weight_map but absent"));

    /* a single model.safetensors is preferred over an index, as in transformers */
    float one = 1;
    write_st(dir, "model.safetensors", "{'x':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}",
             &one, 4);
    if (hf_dir_open(&d, dir, &err)) fail_msg("%s", err.msg);
    assert_false(hf_dir_is_sharded(d));
    assert_non_null(hf_dir_find(d, "x"));
    assert_null(hf_dir_find(d, "wte.weight"));
    hf_dir_close(d);

    clean_sharded_model(dir);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

static void test_bad_dirs(void **state) {
    (void)state;
    char *dir = mk_tmpdir();
    hf_dir *d;
    st_error err = {0};
    char path[512];

    /* empty directory: no config.json */
    assert_int_equal(hf_dir_open(&d, dir, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "config.json: cannot open"));

    /* config.json only */
    write_text(dir, "config.json", "{'model_type':'gpt2'}");
    assert_int_equal(hf_dir_open(&d, dir, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "no model.safetensors or model.safetensors.index.json"));
    write_text(dir, "pytorch_model.bin", "x");
    assert_int_equal(hf_dir_open(&d, dir, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "pytorch_model.bin is present"));

    /* broken config.json names the file */
    write_text(dir, "config.json", "{'model_type':");
    assert_int_equal(hf_dir_open(&d, dir, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "config.json: not valid JSON"));

    /* corrupt weights: the safetensors error comes through */
    write_text(dir, "config.json", "{'model_type':'gpt2'}");
    write_st(dir, "model.safetensors", "{'x':{'dtype':'F32','shape':[2],'data_offsets':[0,4]}}",
             "abcd", 4);
    assert_int_equal(hf_dir_open(&d, dir, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "model.safetensors: tensor 'x': size mismatch"));

    /* a path that is a file, and one that does not exist */
    snprintf(path, sizeof path, "%s/config.json", dir);
    assert_int_equal(hf_dir_open(&d, path, &err), -ENOTDIR);
    assert_non_null(strstr(err.msg, "not a directory"));
    snprintf(path, sizeof path, "%s/absent", dir);
    assert_int_equal(hf_dir_open(&d, path, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot open model directory"));

    /* a trailing slash is accepted and dropped */
    float one = 1;
    write_st(dir, "model.safetensors", "{'x':{'dtype':'F32','shape':[1],'data_offsets':[0,4]}}",
             &one, 4);
    snprintf(path, sizeof path, "%s/", dir);
    if (hf_dir_open(&d, path, &err)) fail_msg("%s", err.msg);
    assert_string_equal(hf_dir_path(d), dir);
    assert_int_equal(hf_dir_tok_files(d), 0);
    assert_string_equal(hf_tok_file_name(HF_TOK_SPM_MODEL), "tokenizer.model");
    assert_string_equal(hf_tok_file_name(HF_TOK_FILE_COUNT), "?");
    hf_dir_close(d);

    clean_sharded_model(dir);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_getters),
        cmocka_unit_test(test_config_getter_errors),
        cmocka_unit_test(test_config_parse_errors),
        cmocka_unit_test(test_ref_gpt2),
        cmocka_unit_test(test_ref_llama),
        cmocka_unit_test(test_ref_bert),
        cmocka_unit_test(test_ref_clip),
        cmocka_unit_test(test_ref_details),
        cmocka_unit_test(test_sharded_dir),
        cmocka_unit_test(test_bad_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
