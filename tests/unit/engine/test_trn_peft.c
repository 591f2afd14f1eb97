/* test_trn_peft.c - LoRA adapters in PEFT's format (trn_peft.h):
 *   - save -> load gives back the same adapter (rank, alpha, dropout,
 *     targets, scale, A, B), with PEFT's config keys and tensor names, for
 *     the HF and the GGUF row order, and with rsLoRA;
 *   - the GGUF q/k row permutation: an adapter trained on llama-tiny loaded
 *     from GGUF, saved, then loaded onto llama-tiny loaded from its HF folder
 *     gives the same log-probs (../shared/conformance);
 *   - gpt2 with the qkv target (PEFT's c_attn), and q/v refused;
 *   - adapter_config.json parsing as a table of hostile and odd inputs;
 *   - broken folders: missing files, the pickle format, wrong shapes and
 *     ranks, missing and stray tensors, other spellings of tensor names.
 * Every test works in its own temporary folder and removes it at the end
 * (rmdir fails on a leftover file). */
#include "tu_util.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model.h"
#include "rng.h"
#include "safetensors.h"
#include "safetensors_writer.h"
#include "trn_dec.h"
#include "trn_lora.h"
#include "trn_peft.h"

#define LOGP_TOL 1e-4f

static char err[1024];

/* ---- helpers ------------------------------------------------------------- */

static char *mk_tmpdir(void)
{
    char *d = strdup("/tmp/alignd_peft_XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static void path_in(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, 512, "%s/%s", dir, name);
    assert_true(n > 0 && n < 512);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    char p[512];
    path_in(p, dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
}

/* Removes the adapter files (those present) and the folder itself. */
static void rm_adapter(char *dir)
{
    static const char *const files[] = {TRN_PEFT_CONFIG_FILE, TRN_PEFT_WEIGHTS_FILE,
                                        "adapter_model.bin"};
    char p[512];
    for (size_t i = 0; i < 3; i++) {
        path_in(p, dir, files[i]);
        unlink(p);
    }
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* A small llama or gpt2 shape that needs no model file. */
static model_hparams tiny_hp(model_arch_id arch, ops_rope_layout layout)
{
    model_hparams hp = {.n_vocab = 50, .n_ctx_train = 32, .n_embd = 16, .n_layer = 2,
                        .n_head = 4, .n_head_kv = arch == MODEL_ARCH_LLAMA ? 2 : 4,
                        .head_dim = 4, .n_ff = 24, .rope_layout = layout};
    return hp;
}

static trn_lora *new_lora(model_arch_id arch, const model_hparams *hp, unsigned targets,
                          int rank, float alpha, uint64_t seed)
{
    trn_lora_cfg cfg = {.rank = rank, .alpha = alpha, .dropout = 0.05f, .targets = targets,
                        .seed = seed};
    trn_lora *lo;
    if (trn_lora_new(&lo, arch, hp, &cfg, err, sizeof err))
        fail_msg("%s", err);
    rng r;
    rng_seed(&r, seed + 1);
    for (int i = 0; i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * rank; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * 0.1);
    return lo;
}

static void save_ok(const trn_lora *lo, model_arch_id arch, const model_hparams *hp,
                    const char *dir)
{
    if (trn_peft_save(lo, arch, hp, "alignd/tiny", dir, err, sizeof err))
        fail_msg("save: %s", err);
}

static trn_lora *load_ok(const char *dir, model_arch_id arch, const model_hparams *hp)
{
    trn_lora *lo;
    if (trn_peft_load(&lo, dir, arch, hp, err, sizeof err))
        fail_msg("load: %s", err);
    return lo;
}

/* Loading fails with code and a message holding every one of the words. */
static void load_fails(const char *dir, model_arch_id arch, const model_hparams *hp, int code,
                       const char *w1, const char *w2)
{
    trn_lora *lo = (trn_lora *)1;
    int rc = trn_peft_load(&lo, dir, arch, hp, err, sizeof err);
    if (rc != code)
        fail_msg("want %d, got %d: %s", code, rc, err);
    assert_null(lo);
    if (w1 && !strstr(err, w1))
        fail_msg("'%s' not in: %s", w1, err);
    if (w2 && !strstr(err, w2))
        fail_msg("'%s' not in: %s", w2, err);
}

static void assert_same_lora(const trn_lora *a, const trn_lora *b)
{
    assert_int_equal(a->cfg.rank, b->cfg.rank);
    assert_true(a->cfg.alpha == b->cfg.alpha);
    assert_true(a->cfg.dropout == b->cfg.dropout);
    assert_int_equal(a->cfg.targets, b->cfg.targets);
    assert_true(fabsf(a->scale - b->scale) <= 1e-7f * a->scale);
    assert_int_equal(a->n_sites, b->n_sites);
    for (int i = 0; i < a->n_sites; i++) {
        const trn_lora_site *s = &a->sites[i], *t = &b->sites[i];
        assert_int_equal(s->layer, t->layer);
        assert_int_equal(s->target, t->target);
        assert_int_equal(s->in, t->in);
        assert_int_equal(s->out, t->out);
        assert_memory_equal(s->A, t->A, (size_t)a->cfg.rank * s->in * sizeof(float));
        assert_memory_equal(s->B, t->B, (size_t)a->cfg.rank * s->out * sizeof(float));
    }
}

static json_t *read_config(const char *dir)
{
    char p[512];
    path_in(p, dir, TRN_PEFT_CONFIG_FILE);
    json_error_t je;
    json_t *c = json_load_file(p, JSON_REJECT_DUPLICATES, &je);
    if (!c)
        fail_msg("%s: %s", p, je.text);
    return c;
}

static st_file *open_weights(const char *dir)
{
    char p[512];
    path_in(p, dir, TRN_PEFT_WEIGHTS_FILE);
    st_file *f;
    st_error se;
    if (st_open(&f, p, &se))
        fail_msg("%s", se.msg);
    return f;
}

/* target_modules holds exactly the given entries (any order). */
static void assert_modules(json_t *cfg, const char *const *want, size_t n)
{
    json_t *tm = json_object_get(cfg, "target_modules");
    assert_true(json_is_array(tm));
    assert_int_equal(json_array_size(tm), n);
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < n && strcmp(json_string_value(json_array_get(tm, j)), want[i]) != 0)
            j++;
        if (j == n)
            fail_msg("target module %s missing", want[i]);
    }
}

static model *load_model(const char *rel)
{
    char *p = tu_shared_path(rel);
    if (!p)
        return NULL;
    model *m;
    if (model_load(&m, p, err, sizeof err))
        fail_msg("load %s: %s", p, err);
    free(p);
    return m;
}

/* Log-probs of the next token along tokens[0..n) with lo on m. */
static void logprobs(model *m, trn_lora *lo, const int32_t *tokens, int n, float *logp)
{
    int32_t targets[16];
    assert_true(n <= 16);
    for (int i = 0; i < n; i++)
        targets[i] = i + 1 < n ? tokens[i + 1] : -1;
    trn_dec *d;
    if (trn_dec_from_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    trn_dec_set_lora(d, lo);
    trn_batch b = {.B = 1, .L = n, .tokens = tokens, .targets = targets};
    if (trn_dec_forward(d, &b, logp, err, sizeof err))
        fail_msg("%s", err);
    trn_dec_free(d);
}

/* ---- round trips ----------------------------------------------------------- */

static void test_roundtrip_llama(void **state)
{
    (void)state;
    char *dir = mk_tmpdir(), sub[512];
    path_in(sub, dir, "a/b"); /* created with its parent */
    model_hparams hp = tiny_hp(MODEL_ARCH_LLAMA, OPS_ROPE_HALF);
    trn_lora *lo = new_lora(MODEL_ARCH_LLAMA, &hp, TRN_LORA_ALL, 3, 5.5f, 4);
    save_ok(lo, MODEL_ARCH_LLAMA, &hp, sub);
    trn_lora *back = load_ok(sub, MODEL_ARCH_LLAMA, &hp);
    assert_same_lora(lo, back);
    assert_true(back->enabled && !back->training);

    json_t *c = read_config(sub);
    assert_string_equal(json_string_value(json_object_get(c, "peft_type")), "LORA");
    assert_string_equal(json_string_value(json_object_get(c, "task_type")), "CAUSAL_LM");
    assert_string_equal(json_string_value(json_object_get(c, "bias")), "none");
    assert_string_equal(json_string_value(json_object_get(c, "base_model_name_or_path")),
                        "alignd/tiny");
    assert_int_equal(json_integer_value(json_object_get(c, "r")), 3);
    assert_true(json_number_value(json_object_get(c, "lora_alpha")) == 5.5);
    assert_true(json_number_value(json_object_get(c, "lora_dropout")) == 0.05);
    assert_true(json_is_false(json_object_get(c, "fan_in_fan_out")));
    assert_true(json_is_true(json_object_get(c, "inference_mode")));
    assert_null(json_object_get(c, "use_rslora")); /* only written when on */
    static const char *const mods[] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                       "gate_proj", "up_proj", "down_proj"};
    assert_modules(c, mods, 7);
    json_decref(c);

    st_file *f = open_weights(sub);
    assert_int_equal(st_n_tensors(f), 2 * 7 * 2);
    assert_string_equal(st_metadata_get(f, "format"), "pt");
    const st_tensor *t =
        st_find(f, "base_model.model.model.layers.1.self_attn.k_proj.lora_B.weight");
    assert_non_null(t);
    assert_int_equal(t->dtype, ST_F32);
    assert_int_equal(t->shape[0], 8);  /* n_head_kv * head_dim */
    assert_int_equal(t->shape[1], 3);
    t = st_find(f, "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
    assert_non_null(t);
    assert_int_equal(t->shape[0], 3);
    assert_int_equal(t->shape[1], 24); /* n_ff */
    assert_non_null(st_find(f, "base_model.model.model.layers.0.mlp.gate_proj.lora_B.weight"));
    st_close(f);

    /* saving again over it replaces both files */
    lo->sites[0].B[0] = 42.0f;
    save_ok(lo, MODEL_ARCH_LLAMA, &hp, sub);
    trn_lora_free(back);
    back = load_ok(sub, MODEL_ARCH_LLAMA, &hp);
    assert_true(back->sites[0].B[0] == 42.0f);
    trn_lora_free(back);
    trn_lora_free(lo);
    rm_adapter(strdup(sub));
    path_in(sub, dir, "a");
    assert_int_equal(rmdir(sub), 0);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* On a GGUF-ordered llama the file holds B's q/k rows in HF order: row
 * h*hd + j*hd/2 + i of the file is row h*hd + 2i + j of the adapter. */
static void test_gguf_rows_in_file(void **state)
{
    (void)state;
    char *dir = mk_tmpdir();
    model_hparams hp = tiny_hp(MODEL_ARCH_LLAMA, OPS_ROPE_ADJACENT);
    unsigned targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_K | 1u << TRN_LORA_V;
    trn_lora *lo = new_lora(MODEL_ARCH_LLAMA, &hp, targets, 2, 4, 8);
    save_ok(lo, MODEL_ARCH_LLAMA, &hp, dir);
    st_file *f = open_weights(dir);
    static const char *const mods[] = {"q_proj", "k_proj", "v_proj"};
    for (int k = 0; k < 3; k++) {
        char name[160];
        snprintf(name, sizeof name, "base_model.model.model.layers.1.self_attn.%s.lora_B.weight",
                 mods[k]);
        const st_tensor *t = st_find(f, name);
        assert_non_null(t);
        const trn_lora_site *s = trn_lora_site_at(lo, 1, (trn_lora_target)(TRN_LORA_Q + k));
        const float *file = t->data;
        int hd = hp.head_dim, half = hd / 2;
        for (int h = 0; h < s->out / hd; h++)
            for (int i = 0; i < half; i++)
                for (int j = 0; j < 2; j++)
                    for (int c = 0; c < 2; c++) {
                        int g = h * hd + 2 * i + j, hf = k == 2 ? g : h * hd + j * half + i;
                        assert_true(file[hf * 2 + c] == s->B[g * 2 + c]);
                    }
    }
    st_close(f);
    trn_lora *back = load_ok(dir, MODEL_ARCH_LLAMA, &hp);
    assert_same_lora(lo, back);
    /* the same file onto an HF-ordered model: q/k rows differ, v rows not */
    model_hparams hf = tiny_hp(MODEL_ARCH_LLAMA, OPS_ROPE_HALF);
    trn_lora *onto_hf = load_ok(dir, MODEL_ARCH_LLAMA, &hf);
    assert_memory_not_equal(onto_hf->sites[0].B, lo->sites[0].B, 16 * 2 * sizeof(float));
    assert_memory_equal(onto_hf->sites[2].B, lo->sites[2].B, 8 * 2 * sizeof(float));
    trn_lora_free(onto_hf);
    trn_lora_free(back);
    trn_lora_free(lo);
    rm_adapter(dir);
}

static void test_rslora(void **state)
{
    (void)state;
    char *dir = mk_tmpdir();
    model_hparams hp = tiny_hp(MODEL_ARCH_LLAMA, OPS_ROPE_HALF);
    trn_lora *lo = new_lora(MODEL_ARCH_LLAMA, &hp, 1u << TRN_LORA_V, 4, 16, 3);
    lo->scale = 16 / sqrtf(4);
    save_ok(lo, MODEL_ARCH_LLAMA, &hp, dir);
    json_t *c = read_config(dir);
    assert_true(json_is_true(json_object_get(c, "use_rslora")));
    assert_true(json_is_integer(json_object_get(c, "lora_alpha")));
    json_decref(c);
    trn_lora *back = load_ok(dir, MODEL_ARCH_LLAMA, &hp);
    assert_true(back->scale == 8.0f);
    assert_same_lora(lo, back);
    trn_lora_free(back);

    lo->scale = 3.0f; /* neither alpha/r nor alpha/sqrt(r) */
    assert_int_equal(trn_peft_save(lo, MODEL_ARCH_LLAMA, &hp, NULL, dir, err, sizeof err),
                     -ENOTSUP);
    assert_non_null(strstr(err, "scale"));
    trn_lora_free(lo);
    rm_adapter(dir);
}

/* ---- the GGUF permutation against the real model -------------------------- */

static void test_gguf_to_hf_logprobs(void **state)
{
    (void)state;
    model *mg = load_model("conformance/llama-tiny/model-f32.gguf");
    model *mh = mg ? load_model("conformance/llama-tiny") : NULL;
    if (!mh) {
        model_free(mg);
        skip();
    }
    assert_int_equal(model_hp(mg)->rope_layout, OPS_ROPE_ADJACENT);
    assert_int_equal(model_hp(mh)->rope_layout, OPS_ROPE_HALF);
    unsigned targets = 1u << TRN_LORA_Q | 1u << TRN_LORA_K | 1u << TRN_LORA_V | 1u << TRN_LORA_O;
    trn_lora *lg = new_lora(MODEL_ARCH_LLAMA, model_hp(mg), targets, 4, 8, 21);
    const int32_t tok[8] = {1, 450, 4996, 17354, 1701, 432, 17204, 975};
    float base[8], on_g[8], on_h[8];
    lg->enabled = false;
    logprobs(mg, lg, tok, 8, base);
    lg->enabled = true;
    logprobs(mg, lg, tok, 8, on_g);

    char *dir = mk_tmpdir();
    save_ok(lg, MODEL_ARCH_LLAMA, model_hp(mg), dir);
    trn_lora *lh = load_ok(dir, MODEL_ARCH_LLAMA, model_hp(mh));
    logprobs(mh, lh, tok, 8, on_h);
    double moved = 0, diff = 0;
    for (int i = 0; i < 7; i++) {
        moved = fmax(moved, fabsf(on_g[i] - base[i]));
        diff = fmax(diff, fabsf(on_g[i] - on_h[i]));
    }
    printf("llama-tiny: adapter moves log-probs by %.4f; GGUF vs HF after save/load %.2e\n",
           moved, diff);
    assert_true(moved > 1e-2);
    assert_true(diff < LOGP_TOL);

    /* and back: HF-loaded adapter saved, loaded onto GGUF = the original */
    save_ok(lh, MODEL_ARCH_LLAMA, model_hp(mh), dir);
    trn_lora *again = load_ok(dir, MODEL_ARCH_LLAMA, model_hp(mg));
    assert_same_lora(lg, again);
    trn_lora_free(again);
    trn_lora_free(lh);
    trn_lora_free(lg);
    rm_adapter(dir);
    model_free(mh);
    model_free(mg);
}

/* ---- gpt2 -------------------------------------------------------------------- */

static void test_gpt2_qkv(void **state)
{
    (void)state;
    model *m = load_model("conformance/gpt2-tiny");
    if (!m)
        skip();
    unsigned targets = 1u << TRN_LORA_QKV | 1u << TRN_LORA_O | 1u << TRN_LORA_UP |
                       1u << TRN_LORA_DOWN;
    trn_lora *lo = new_lora(MODEL_ARCH_GPT2, model_hp(m), targets, 2, 4, 5);
    char *dir = mk_tmpdir();
    save_ok(lo, MODEL_ARCH_GPT2, model_hp(m), dir);
    json_t *c = read_config(dir);
    static const char *const mods[] = {"c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"};
    assert_modules(c, mods, 4);
    assert_true(json_is_true(json_object_get(c, "fan_in_fan_out")));
    json_decref(c);
    st_file *f = open_weights(dir);
    const st_tensor *a = st_find(f, "base_model.model.transformer.h.1.attn.c_attn.lora_A.weight");
    const st_tensor *b = st_find(f, "base_model.model.transformer.h.1.attn.c_attn.lora_B.weight");
    assert_true(a && b);
    assert_true(a->shape[0] == 2 && a->shape[1] == 32 && b->shape[0] == 96 && b->shape[1] == 2);
    assert_non_null(st_find(f, "base_model.model.transformer.h.0.mlp.c_proj.lora_A.weight"));
    assert_non_null(st_find(f, "base_model.model.transformer.h.0.attn.c_proj.lora_B.weight"));
    assert_non_null(st_find(f, "base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight"));
    st_close(f);

    trn_lora *back = load_ok(dir, MODEL_ARCH_GPT2, model_hp(m));
    assert_same_lora(lo, back);
    const int32_t tok[5] = {464, 3139, 286, 4881, 318};
    float x[5], y[5];
    logprobs(m, lo, tok, 5, x);
    logprobs(m, back, tok, 5, y);
    for (int i = 0; i < 4; i++)
        assert_true(fabsf(x[i] - y[i]) < 1e-6f);
    trn_lora_free(back);
    trn_lora_free(lo);
    rm_adapter(dir);
    model_free(m);
}

static void test_gpt2_slices_refused(void **state)
{
    (void)state;
    char *dir = mk_tmpdir(), sub[512];
    path_in(sub, dir, "never");
    model_hparams hp = tiny_hp(MODEL_ARCH_GPT2, OPS_ROPE_HALF);
    trn_lora *lo = new_lora(MODEL_ARCH_GPT2, &hp, 1u << TRN_LORA_Q | 1u << TRN_LORA_V, 2, 4, 1);
    assert_int_equal(trn_peft_save(lo, MODEL_ARCH_GPT2, &hp, NULL, sub, err, sizeof err),
                     -ENOTSUP);
    assert_non_null(strstr(err, "'q'"));
    assert_non_null(strstr(err, "qkv"));
    struct stat st;
    assert_int_equal(stat(sub, &st), -1); /* refused before anything was created */
    trn_lora_free(lo);

    model_hparams ll = tiny_hp(MODEL_ARCH_LLAMA, OPS_ROPE_HALF);
    lo = new_lora(MODEL_ARCH_LLAMA, &ll, 1u << TRN_LORA_QKV, 2, 4, 1);
    assert_int_equal(trn_peft_save(lo, MODEL_ARCH_LLAMA, &ll, NULL, sub, err, sizeof err),
                     -ENOTSUP);
    assert_non_null(strstr(err, "q,k,v"));
    trn_lora_free(lo);
    assert_int_equal(rmdir(dir), 0);
    free(dir);
}

/* ---- adapter_config.json as data ------------------------------------------- */

#define L MODEL_ARCH_LLAMA
#define G MODEL_ARCH_GPT2
#define QV (1u << TRN_LORA_Q | 1u << TRN_LORA_V)
#define BIT(t) (1u << TRN_LORA_##t)

static const struct {
    const char *json;
    model_arch_id arch;
    int rc;
    const char *msg;     /* in the message (rc != 0) */
    int rank;            /* expected (rc == 0) */
    float alpha;
    unsigned targets;
} config_cases[] = {
    /* PEFT's defaults for what is absent */
    {"{\"peft_type\":\"LORA\"}", L, 0, NULL, 8, 8, QV},
    {"{\"peft_type\":\"LORA\",\"target_modules\":null}", G, 0, NULL, 8, 8, BIT(QKV)},
    {"{\"peft_type\":\"LORA\",\"r\":16,\"lora_alpha\":32.0,\"target_modules\":"
     "[\"self_attn.q_proj\",\"down_proj\"],\"rank_pattern\":{},\"alpha_pattern\":{},"
     "\"layers_to_transform\":null,\"modules_to_save\":null,\"use_dora\":false,"
     "\"megatron_core\":\"megatron.core\",\"some_future_key\":[1,2]}",
     L, 0, NULL, 16, 32, BIT(Q) | BIT(DOWN)},
    /* PEFT's suffix rule: c_proj on gpt2 is both projections */
    {"{\"peft_type\":\"LORA\",\"r\":2,\"target_modules\":[\"c_proj\"]}", G, 0, NULL, 2, 8,
     BIT(O) | BIT(DOWN)},
    {"{\"peft_type\":\"LORA\",\"target_modules\":[\"attn.c_attn\",\"mlp.c_fc\"]}", G, 0, NULL,
     8, 8, BIT(QKV) | BIT(UP)},
    /* not alignd's to load */
    {"{\"peft_type\":\"LORA\",\"target_modules\":[\"q_proj\",\"lm_head\"]}", L, -ENOTSUP,
     "'lm_head'", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"target_modules\":[\"q_proj\"]}", G, -ENOTSUP, "gpt2", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"target_modules\":[\"proj\"]}", L, -ENOTSUP, "'proj'", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"target_modules\":\".*q_proj\"}", L, -ENOTSUP,
     "regular expression", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"rank_pattern\":{\"q_proj\":4}}", L, -ENOTSUP, "rank_pattern",
     0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"alpha_pattern\":{\"q_proj\":4}}", L, -ENOTSUP, "alpha_pattern",
     0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"layers_to_transform\":0}", L, -ENOTSUP, "layers_to_transform",
     0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"modules_to_save\":[\"lm_head\"]}", L, -ENOTSUP,
     "modules_to_save", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"use_dora\":true}", L, -ENOTSUP, "DoRA", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"bias\":\"lora_only\"}", L, -ENOTSUP, "bias", 0, 0, 0},
    {"{\"peft_type\":\"IA3\"}", L, -ENOTSUP, "IA3", 0, 0, 0},
    {"{\"peft_type\":\"LORA\"}", MODEL_ARCH_BERT, -ENOTSUP, "llama or gpt2", 0, 0, 0},
    /* malformed */
    {"", L, -EINVAL, "not valid JSON", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",", L, -EINVAL, "line 1", 0, 0, 0},
    {"[1,2]", L, -EINVAL, "not a JSON object", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"r\":8,\"r\":4}", L, -EINVAL, "duplicate", 0, 0, 0},
    {"{}", L, -EINVAL, "peft_type", 0, 0, 0},
    {"{\"peft_type\":7}", L, -EINVAL, "peft_type", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"r\":0}", L, -EINVAL, "r = 0", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"r\":2.5}", L, -EINVAL, "r = 2.5", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"r\":\"8\"}", L, -EINVAL, "'r'", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"r\":1e300}", L, -EINVAL, "r = ", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"lora_alpha\":-1}", L, -EINVAL, "lora_alpha", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"lora_dropout\":1}", L, -EINVAL, "lora_dropout", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"use_rslora\":\"yes\"}", L, -EINVAL, "use_rslora", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"target_modules\":[]}", L, -EINVAL, "target_modules", 0, 0, 0},
    {"{\"peft_type\":\"LORA\",\"target_modules\":[1]}", L, -EINVAL, "target_modules[0]", 0, 0,
     0},
    {"{\"peft_type\":\"LORA\",\"base_model_name_or_path\":3}", L, -EINVAL,
     "base_model_name_or_path", 0, 0, 0},
};

static void test_config_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof config_cases / sizeof config_cases[0]; i++) {
        trn_peft_config c;
        const char *j = config_cases[i].json;
        err[0] = '\0';
        int rc = trn_peft_config_parse(&c, j, strlen(j), config_cases[i].arch, "cfg.json", err,
                                       sizeof err);
        if (rc != config_cases[i].rc)
            fail_msg("case %zu (%s): want %d, got %d: %s", i, j, config_cases[i].rc, rc, err);
        if (rc) {
            if (!strstr(err, config_cases[i].msg) || strncmp(err, "cfg.json: ", 10) != 0)
                fail_msg("case %zu: '%s' not in: %s", i, config_cases[i].msg, err);
            continue;
        }
        assert_int_equal(c.rank, config_cases[i].rank);
        assert_true(c.alpha == config_cases[i].alpha);
        assert_int_equal(c.targets, config_cases[i].targets);
    }
    /* not NUL-terminated: only len bytes are read */
    trn_peft_config c;
    const char img[] = {'{', '}', 'x'};
    assert_int_equal(trn_peft_config_parse(&c, img, 2, L, NULL, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "adapter_config.json: 'peft_type' is missing"));
    assert_string_equal(trn_peft_module_name(G, TRN_LORA_DOWN), "mlp.c_proj");
    assert_null(trn_peft_module_name(G, TRN_LORA_Q));
    assert_null(trn_peft_module_name(L, TRN_LORA_QKV));
}

/* ---- broken folders --------------------------------------------------------- */

static const char *const cfg_qv =
    "{\"peft_type\":\"LORA\",\"r\":3,\"lora_alpha\":6,\"lora_dropout\":0.05,"
    "\"target_modules\":[\"q_proj\",\"v_proj\"]}";

static void test_missing_files(void **state)
{
    (void)state;
    char *dir = mk_tmpdir(), p[512];
    model_hparams hp = tiny_hp(L, OPS_ROPE_HALF);
    load_fails(dir, L, &hp, -ENOENT, TRN_PEFT_CONFIG_FILE, "No such file");
    path_in(p, dir, "nope");
    load_fails(p, L, &hp, -ENOENT, "nope/" TRN_PEFT_CONFIG_FILE, NULL);
    write_text(dir, TRN_PEFT_CONFIG_FILE, cfg_qv);
    load_fails(dir, L, &hp, -ENOENT, TRN_PEFT_WEIGHTS_FILE, "cannot open");
    write_text(dir, "adapter_model.bin", "PK\x03\x04 pickle");
    load_fails(dir, L, &hp, -ENOTSUP, "adapter_model.bin", "safetensors");
    write_text(dir, TRN_PEFT_WEIGHTS_FILE, "garbage!");
    load_fails(dir, L, &hp, -EINVAL, TRN_PEFT_WEIGHTS_FILE, "header");
    write_text(dir, TRN_PEFT_CONFIG_FILE, "{\"peft_type\":\"LORA\",\"r\":");
    load_fails(dir, L, &hp, -EINVAL, TRN_PEFT_CONFIG_FILE, "not valid JSON");
    rm_adapter(dir);
}

static void test_save_errors(void **state)
{
    (void)state;
    char *dir = mk_tmpdir(), p[512];
    model_hparams hp = tiny_hp(L, OPS_ROPE_HALF);
    trn_lora *lo = new_lora(L, &hp, QV, 2, 4, 1);
    write_text(dir, "file", "x");
    path_in(p, dir, "file");
    assert_int_equal(trn_peft_save(lo, L, &hp, NULL, p, err, sizeof err), -ENOTDIR);
    assert_non_null(strstr(err, "file"));
    path_in(p, dir, "file/sub");
    assert_int_equal(trn_peft_save(lo, L, &hp, NULL, p, err, sizeof err), -ENOTDIR);
    assert_non_null(strstr(err, "cannot create folder"));
    model_hparams deep = hp;
    deep.n_layer = 3;
    assert_int_equal(trn_peft_save(lo, L, &deep, NULL, dir, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "2 layers"));
    assert_int_equal(trn_peft_save(lo, G, &hp, NULL, dir, err, sizeof err), -ENOTSUP);
    assert_int_equal(trn_peft_save(lo, L, &hp, "bad\xff", dir, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "UTF-8"));
    struct stat st;
    path_in(p, dir, TRN_PEFT_WEIGHTS_FILE); /* refused before writing anything */
    assert_int_equal(stat(p, &st), -1);
    path_in(p, dir, "file");
    assert_int_equal(unlink(p), 0);
    trn_lora_free(lo);
    rm_adapter(dir);
}

/* Saves a q,v rank-3 adapter for hp into dir; returns it. */
static trn_lora *save_qv(const char *dir, const model_hparams *hp)
{
    trn_lora *lo = new_lora(L, hp, QV, 3, 6, 11);
    save_ok(lo, L, hp, dir);
    return lo;
}

static void test_mismatches(void **state)
{
    (void)state;
    char *dir = mk_tmpdir();
    model_hparams hp = tiny_hp(L, OPS_ROPE_HALF);
    trn_lora *lo = save_qv(dir, &hp);

    model_hparams wide = hp;
    wide.n_embd = 20; /* another model: A's width is wrong */
    load_fails(dir, L, &wide, -EINVAL, "layers.0.self_attn.q_proj.lora_A.weight",
               "shape [3, 16], expected [3, 20]");
    model_hparams deep = hp;
    deep.n_layer = 3;
    load_fails(dir, L, &deep, -ENOENT, "layers.2.self_attn.q_proj.lora_A.weight", "missing");

    /* the config says another rank than the tensors have */
    write_text(dir, TRN_PEFT_CONFIG_FILE,
               "{\"peft_type\":\"LORA\",\"r\":4,\"target_modules\":[\"q_proj\",\"v_proj\"]}");
    load_fails(dir, L, &hp, -EINVAL, "r = 4", "expected [4, 16]");
    /* more targets than tensors */
    write_text(dir, TRN_PEFT_CONFIG_FILE,
               "{\"peft_type\":\"LORA\",\"r\":3,\"target_modules\":[\"q_proj\",\"v_proj\","
               "\"o_proj\"]}");
    load_fails(dir, L, &hp, -ENOENT, "self_attn.o_proj.lora_A.weight' is missing", "o_proj");
    /* fewer: the v tensors are left over */
    write_text(dir, TRN_PEFT_CONFIG_FILE,
               "{\"peft_type\":\"LORA\",\"r\":3,\"target_modules\":[\"q_proj\"]}");
    load_fails(dir, L, &hp, -EINVAL, "v_proj.lora_", "not a LoRA matrix");
    write_text(dir, TRN_PEFT_CONFIG_FILE,
               "{\"peft_type\":\"LORA\",\"r\":3,\"target_modules\":[\"q_proj\",\"embed\"]}");
    load_fails(dir, L, &hp, -ENOTSUP, "'embed'", "q_proj, k_proj");
    /* the config that matches loads again */
    write_text(dir, TRN_PEFT_CONFIG_FILE, cfg_qv);
    trn_lora *back = load_ok(dir, L, &hp);
    assert_same_lora(lo, back);
    trn_lora_free(back);
    trn_lora_free(lo);
    rm_adapter(dir);
}

/* Writes a q-only adapter for tiny llama hp with names prefix + ... +
 * suffix (and a duplicate spelling of layer 0's A when dup). */
static void write_spelled(const char *dir, const char *prefix, const char *suffix, bool dup,
                          float poison)
{
    static float A[3 * 16], B[16 * 3];
    for (int i = 0; i < 48; i++) {
        A[i] = (float)i / 48;
        B[i] = (float)-i / 48;
    }
    A[5] = poison;
    int64_t sa[2] = {3, 16}, sb[2] = {16, 3};
    st_writer *w;
    assert_int_equal(st_writer_new(&w), 0);
    char name[200], p[512];
    for (int l = 0; l < 2; l++) {
        snprintf(name, sizeof name, "%smodel.layers.%d.self_attn.q_proj.lora_A%s", prefix, l,
                 suffix);
        assert_int_equal(st_writer_add(w, name, ST_F16, 2, sa, A), 0);
        snprintf(name, sizeof name, "%smodel.layers.%d.self_attn.q_proj.lora_B%s", prefix, l,
                 suffix);
        assert_int_equal(st_writer_add(w, name, ST_F32, 2, sb, B), 0);
    }
    if (dup)
        assert_int_equal(st_writer_add(w, "base_model.model.model.layers.0.self_attn.q_proj."
                                          "lora_A.weight", ST_F32, 2, sa, A), 0);
    path_in(p, dir, TRN_PEFT_WEIGHTS_FILE);
    st_error se;
    if (st_writer_write(w, p, &se))
        fail_msg("%s", se.msg);
    st_writer_free(w);
    write_text(dir, TRN_PEFT_CONFIG_FILE,
               "{\"peft_type\":\"LORA\",\"r\":3,\"lora_alpha\":3,\"target_modules\":[\"q_proj\"],"
               "\"use_rslora\":false}");
}

static void test_name_spellings(void **state)
{
    (void)state;
    char *dir = mk_tmpdir();
    model_hparams hp = tiny_hp(L, OPS_ROPE_HALF);
    static const char *const spell[][2] = {
        {"base_model.model.", ""},
        {"base_model.model.", ".default.weight"},
        {"", ".weight"},
        {"", ""},
    };
    for (size_t i = 0; i < 4; i++) {
        write_spelled(dir, spell[i][0], spell[i][1], false, 0.5f);
        trn_lora *lo = load_ok(dir, L, &hp);
        assert_int_equal(lo->n_sites, 2);
        assert_true(fabsf(lo->sites[1].A[47] - 47.0f / 48) < 1e-3f); /* F16 in the file */
        assert_true(lo->sites[1].B[47] == -47.0f / 48); /* F32 exact */
        assert_true(lo->scale == 1.0f);
        trn_lora_free(lo);
    }
    write_spelled(dir, "", "", true, 0.5f);
    load_fails(dir, L, &hp, -EINVAL, "same matrix", "layers.0.self_attn.q_proj.lora_A");
    write_spelled(dir, "base_model.model.", ".weight", false, NAN);
    load_fails(dir, L, &hp, -EINVAL, "not finite", "lora_A");
    rm_adapter(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_llama),
        cmocka_unit_test(test_gguf_rows_in_file),
        cmocka_unit_test(test_rslora),
        cmocka_unit_test(test_gguf_to_hf_logprobs),
        cmocka_unit_test(test_gpt2_qkv),
        cmocka_unit_test(test_gpt2_slices_refused),
        cmocka_unit_test(test_config_cases),
        cmocka_unit_test(test_missing_files),
        cmocka_unit_test(test_save_errors),
        cmocka_unit_test(test_mismatches),
        cmocka_unit_test(test_name_spellings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
