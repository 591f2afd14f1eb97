/* test_model_adapters.c - LoRA adapters in model_forward (model_batch's
 * adapter table), on llama-tiny (GGUF and HF, every target) and gpt2-tiny
 * (PEFT's fused c_attn target, plus o, up, down):
 *   - logits with an adapter (random non-zero B) agree with the training
 *     forward pass (trn_dec + trn_dec_set_lora) and with the base pass of
 *     the model with the adapter merged into its weights, for a prompt fed
 *     at once (prefill) and token by token (decode);
 *   - a batch mixing base, adapter 1 and adapter 2 sequences (tokens
 *     interleaved, so groups are not contiguous; also in chunks smaller
 *     than the batch) gives each sequence what it gets alone;
 *   - the scheduler runs requests naming different adapters (or none) in
 *     shared steps, each generating what it generates alone;
 *   - bad adapter indices, tables and shapes are refused before anything
 *     is written. */
#include "tu_model.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "scheduler.h"
#include "trn_dec.h"
#include "trn_lora.h"

#define ADAPTER_TOL 1e-4   /* logits / log-probs vs training and merged */

static char err[512];

static const int32_t prompt_ids[9] = {1, 450, 4996, 17354, 1701, 432, 17204, 975, 278};
#define N_PROMPT 9

/* An adapter of m on targets with random A (PEFT init) and B ~ N(0, 0.1). */
static trn_lora *make_adapter(model *m, unsigned targets, int rank, uint64_t seed)
{
    trn_lora_cfg cfg = {.rank = rank, .alpha = 2.0f * rank, .targets = targets, .seed = seed};
    trn_lora *lo;
    if (trn_lora_new(&lo, model_arch(m), model_hp(m), &cfg, err, sizeof err))
        fail_msg("trn_lora_new: %s", err);
    rng r;
    rng_seed(&r, seed + 100);
    for (int i = 0; i < lo->n_sites; i++)
        for (int j = 0; j < lo->sites[i].out * rank; j++)
            lo->sites[i].B[j] = (float)(rng_normal(&r) * 0.1);
    return lo;
}

/* Feeds ids[0..n) of sequence seq from pos0 with adapter index a of the
 * table (-1: base); every token's logits go to out [n, V]. */
static void feed(model *m, kv_cache *kv, int seq, const int32_t *ids, int n, int pos0, int a,
                 const trn_lora *const *table, int n_table, float *out)
{
    int32_t pos[64], sid[64];
    int16_t ad[64];
    int8_t want[64];
    assert_true(n <= 64);
    for (int i = 0; i < n; i++) {
        pos[i] = pos0 + i;
        sid[i] = seq;
        ad[i] = (int16_t)a;
        want[i] = 1;
    }
    model_batch b = {.n_tokens = n, .token = ids, .pos = pos, .seq_id = sid, .logits = want,
                     .adapter = ad, .adapters = table, .n_adapters = n_table};
    if (kv_seq_reserve(kv, seq, pos0 + n) != 0)
        fail_msg("kv: cannot reserve %d positions", pos0 + n);
    if (model_forward(m, kv, &b, out, err, sizeof err) != 0)
        fail_msg("forward: %s", err);
}

/* Logits of every prompt position, fed at once (decode false) or the
 * first token then one token per pass (decode true). */
static float *prompt_logits(model *m, int a, const trn_lora *const *table, int n_table,
                            bool decode)
{
    int V = model_hp(m)->n_vocab;
    float *out = malloc((size_t)N_PROMPT * V * sizeof(float));
    kv_cache *kv = tu_model_kv(m, 1);
    if (!decode)
        feed(m, kv, 0, prompt_ids, N_PROMPT, 0, a, table, n_table, out);
    else
        for (int i = 0; i < N_PROMPT; i++)
            feed(m, kv, 0, prompt_ids + i, 1, i, a, table, n_table, out + (size_t)i * V);
    kv_free(kv);
    return out;
}

static double max_diff(const float *x, const float *y, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d = fmax(d, fabs((double)x[i] - y[i]));
    return d;
}

/* Log-prob of the next prompt token at each position from logits [n, V]. */
static void next_logp(const float *logits, int V, double *out)
{
    for (int i = 0; i + 1 < N_PROMPT; i++) {
        const float *row = logits + (size_t)i * V;
        double mx = row[0], s = 0;
        for (int v = 1; v < V; v++)
            mx = fmax(mx, row[v]);
        for (int v = 0; v < V; v++)
            s += exp(row[v] - mx);
        out[i] = row[prompt_ids[i + 1]] - mx - log(s);
    }
}

/* The training forward pass with lo: next-token log-probs of the prompt. */
static void training_logp(model *m, trn_lora *lo, float *logp)
{
    trn_dec *d;
    if (trn_dec_from_model(&d, m, err, sizeof err))
        fail_msg("%s", err);
    trn_dec_set_lora(d, lo);
    int32_t targets[N_PROMPT];
    for (int i = 0; i < N_PROMPT; i++)
        targets[i] = i + 1 < N_PROMPT ? prompt_ids[i + 1] : -1;
    trn_batch b = {.B = 1, .L = N_PROMPT, .tokens = prompt_ids, .targets = targets};
    if (trn_dec_forward(d, &b, logp, err, sizeof err))
        fail_msg("trn_dec_forward: %s", err);
    trn_dec_free(d);
}

static void check_against_training(model *m, trn_lora *lo, const float *logits,
                                   const char *what)
{
    float tl[N_PROMPT];
    double il[N_PROMPT];
    training_logp(m, lo, tl);
    next_logp(logits, model_hp(m)->n_vocab, il);
    for (int i = 0; i + 1 < N_PROMPT; i++)
        if (fabs(il[i] - tl[i]) > ADAPTER_TOL)
            fail_msg("%s pos %d: model_forward log-prob %.6f, training %.6f", what, i, il[i],
                     (double)tl[i]);
}

/* Adapter logits == training forward == merged weights, prefill and decode. */
static void check_adapter_matches(const char *rel, unsigned targets)
{
    char *path = tu_shared_path(rel);
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    size_t n = (size_t)N_PROMPT * model_hp(m)->n_vocab;
    trn_lora *lo = make_adapter(m, targets, 4, 7);
    assert_int_equal(model_lora_check(m, lo, err, sizeof err), 0);
    const trn_lora *table[1] = {lo};
    float *base = prompt_logits(m, -1, table, 1, false);
    float *plain = prompt_logits(m, -1, NULL, 0, false);
    float *pre = prompt_logits(m, 0, table, 1, false);
    float *dec = prompt_logits(m, 0, table, 1, true);
    assert_true(max_diff(base, plain, n) == 0.0);   /* -1 is exactly the base path */
    assert_true(max_diff(base, pre, n) > 1e-2);     /* the adapter does something */
    if (max_diff(pre, dec, n) > ADAPTER_TOL)
        fail_msg("%s: prefill and decode differ by %g", rel, max_diff(pre, dec, n));
    check_against_training(m, lo, pre, rel);
    check_against_training(m, lo, dec, rel);

    model_decoder_view v;
    assert_int_equal(model_decoder_view_get(m, &v), 0);
    trn_lora_merge(lo, &v, 1.0f);
    float *merged = prompt_logits(m, -1, NULL, 0, false);
    trn_lora_merge(lo, &v, -1.0f);
    float *back = prompt_logits(m, -1, NULL, 0, false);
    if (max_diff(pre, merged, n) > ADAPTER_TOL)
        fail_msg("%s: adapter and merged weights differ by %g", rel, max_diff(pre, merged, n));
    assert_true(max_diff(base, back, n) < ADAPTER_TOL);
    free(base), free(plain), free(pre), free(dec), free(merged), free(back);
    trn_lora_free(lo);
    model_free(m);
}

static const unsigned gpt2_targets = 1u << TRN_LORA_QKV | 1u << TRN_LORA_O |
                                     1u << TRN_LORA_UP | 1u << TRN_LORA_DOWN;

static void test_llama_gguf_matches(void **state)
{
    (void)state;
    check_adapter_matches("conformance/llama-tiny/model-f32.gguf", TRN_LORA_ALL);
}

static void test_llama_hf_matches(void **state)
{
    (void)state;
    check_adapter_matches("conformance/llama-tiny", TRN_LORA_ALL);
}

static void test_gpt2_matches(void **state)
{
    (void)state;
    check_adapter_matches("conformance/gpt2-tiny", 1u << TRN_LORA_QKV);
    check_adapter_matches("conformance/gpt2-tiny", gpt2_targets);
}

/* ---- mixed batches ------------------------------------------------------ */

#define N_MIX 4

/* Sequence s of the mixed batch: prompt length and adapter (-1, 0, 1, 0:
 * base, adapter 1, adapter 2, adapter 1 again after adapter 2's tokens). */
static const int mix_len[N_MIX] = {9, 7, 8, 6};
static const int mix_adapter[N_MIX] = {-1, 0, 1, 0};

static int32_t mix_token(int s, int i)
{
    return prompt_ids[(i + 2 * s) % N_PROMPT];
}

/* Prompt logits (last position) then one decode step, sequence s alone. */
static void mix_solo(model *m, const trn_lora *const *table, int s, float *last, float *step)
{
    int V = model_hp(m)->n_vocab;
    int32_t ids[N_PROMPT + 1];
    for (int i = 0; i <= mix_len[s]; i++)
        ids[i] = mix_token(s, i);
    float *all = malloc((size_t)mix_len[s] * V * sizeof(float));
    kv_cache *kv = tu_model_kv(m, 1);
    feed(m, kv, 0, ids, mix_len[s], 0, mix_adapter[s], table, 2, all);
    memcpy(last, all + (size_t)(mix_len[s] - 1) * V, (size_t)V * sizeof(float));
    feed(m, kv, 0, ids + mix_len[s], 1, mix_len[s], mix_adapter[s], table, 2, step);
    kv_free(kv);
    free(all);
}

/* The four prompts interleaved token by token in one batch, then one
 * decode step of all four together. */
static void mix_batched(model *m, const trn_lora *const *table, float *last, float *step)
{
    int32_t tok[64], pos[64], sid[64];
    int16_t ad[64];
    int8_t want[64];
    int n = 0;
    kv_cache *kv = tu_model_kv(m, N_MIX);
    for (int s = 0; s < N_MIX; s++)
        assert_int_equal(kv_seq_reserve(kv, s, mix_len[s] + 1), 0);
    for (int i = 0; i < N_PROMPT; i++)
        for (int s = 0; s < N_MIX; s++) {
            if (i >= mix_len[s])
                continue;
            tok[n] = mix_token(s, i), pos[n] = i, sid[n] = s;
            ad[n] = (int16_t)mix_adapter[s];
            want[n++] = i == mix_len[s] - 1;
        }
    model_batch b = {.n_tokens = n, .token = tok, .pos = pos, .seq_id = sid, .logits = want,
                     .adapter = ad, .adapters = table, .n_adapters = 2};
    if (model_forward(m, kv, &b, last, err, sizeof err))
        fail_msg("mixed prefill: %s", err);
    /* wanted rows come in batch order: the sequence whose prompt ends first */
    n = 0;
    for (int s = 0; s < N_MIX; s++) {
        tok[n] = mix_token(s, mix_len[s]), pos[n] = mix_len[s], sid[n] = s;
        ad[n] = (int16_t)mix_adapter[s];
        want[n++] = 1;
    }
    b.n_tokens = n;
    if (model_forward(m, kv, &b, step, err, sizeof err))
        fail_msg("mixed decode: %s", err);
    kv_free(kv);
}

/* Row of sequence s among the batched prefill's wanted rows (ordered by
 * the position of each sequence's last prompt token, then by s). */
static int mix_row(int s)
{
    int row = 0;
    for (int o = 0; o < N_MIX; o++)
        row += mix_len[o] < mix_len[s] || (mix_len[o] == mix_len[s] && o < s);
    return row;
}

static void check_mixed(const char *rel, unsigned targets, int n_batch)
{
    char *path = tu_shared_path(rel);
    if (!path)
        skip();
    model_opts o = {.n_batch = n_batch};
    model *m = tu_model_load(path, &o);
    free(path);
    int V = model_hp(m)->n_vocab;
    trn_lora *a1 = make_adapter(m, targets, 4, 11), *a2 = make_adapter(m, targets, 2, 12);
    const trn_lora *table[2] = {a1, a2};
    size_t row = (size_t)V * sizeof(float);
    float *last = malloc(N_MIX * row), *step = malloc(N_MIX * row);
    float *solo_last = malloc(N_MIX * row), *solo_step = malloc(N_MIX * row);
    mix_batched(m, table, last, step);
    for (int s = 0; s < N_MIX; s++)
        mix_solo(m, table, s, solo_last + (size_t)s * V, solo_step + (size_t)s * V);
    for (int s = 0; s < N_MIX; s++) {
        double dp = max_diff(last + (size_t)mix_row(s) * V, solo_last + (size_t)s * V, (size_t)V);
        double dd = max_diff(step + (size_t)s * V, solo_step + (size_t)s * V, (size_t)V);
        if (dp > TU_MODEL_BATCH_TOL || dd > TU_MODEL_BATCH_TOL)
            fail_msg("%s (n_batch %d) sequence %d (adapter %d): batched vs alone differ by "
                     "%g (prompt), %g (decode)", rel, n_batch, s, mix_adapter[s], dp, dd);
    }
    /* the sequences really ran different models */
    assert_true(max_diff(solo_step, solo_step + V, (size_t)V) > 1e-3);
    free(last), free(step), free(solo_last), free(solo_step);
    trn_lora_free(a1);
    trn_lora_free(a2);
    model_free(m);
}

static void test_mixed_batch(void **state)
{
    (void)state;
    check_mixed("conformance/llama-tiny/model-f32.gguf", TRN_LORA_ALL, 0);
    check_mixed("conformance/llama-tiny/model-f32.gguf", TRN_LORA_ALL, 5);
    check_mixed("conformance/gpt2-tiny", gpt2_targets, 0);
    /* adapters on different sites: v only and down only */
    check_mixed("conformance/llama-tiny", 1u << TRN_LORA_V | 1u << TRN_LORA_DOWN, 0);
}

/* ---- through the scheduler ----------------------------------------------- */

#define SCHED_GEN 8

typedef struct got {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int32_t tokens[SCHED_GEN];
    int n;
    bool done;
} got;

static sched_reply on_event(void *ud, const sched_event *ev)
{
    got *g = ud;
    pthread_mutex_lock(&g->mu);
    if (ev->token >= 0 && g->n < SCHED_GEN)
        g->tokens[g->n++] = ev->token;
    if (ev->finish != SCHED_FINISH_NONE) {
        g->done = true;
        pthread_cond_signal(&g->cv);
    }
    pthread_mutex_unlock(&g->mu);
    return SCHED_CONTINUE;
}

static void submit(sched *s, got *g, int variant, const trn_lora *adapter)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    sched_req r = {.prompt = prompt_ids + variant, .n_prompt = N_PROMPT - variant,
                   .max_tokens = SCHED_GEN, .eos_id = -1, .adapter = adapter,
                   .on_event = on_event, .ud = g};
    samp_params_default(&r.samp);
    r.samp.temperature = 0;
    if (sched_submit(s, &r, err, sizeof err))
        fail_msg("submit: %s", err);
}

static void wait_done(got *g)
{
    pthread_mutex_lock(&g->mu);
    while (!g->done)
        pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

/* Requests naming no adapter, adapter 1 or adapter 2, all at once, each
 * generate what they generate alone; an adapter for another model is
 * refused at submit. */
static void test_scheduler_mixed(void **state)
{
    (void)state;
    char *path = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    if (!path)
        skip();
    model *m = tu_model_load(path, NULL);
    free(path);
    trn_lora *a1 = make_adapter(m, TRN_LORA_ALL, 4, 21), *a2 = make_adapter(m, TRN_LORA_ALL, 4, 22);
    const trn_lora *which[6] = {NULL, a1, a2, a1, NULL, a2};
    sched_opts o = {.max_seqs = 6, .max_batch_tokens = 64, .kv_block_size = 4, .queue_size = 16,
                    .n_ctx = 64};
    sched *s;
    if (sched_create(&s, m, &o, err, sizeof err))
        fail_msg("sched_create: %s", err);
    got alone[6], together[6];
    for (int i = 0; i < 6; i++) {
        submit(s, &alone[i], i % 3, which[i]);
        wait_done(&alone[i]);
    }
    for (int i = 0; i < 6; i++)
        submit(s, &together[i], i % 3, which[i]);
    for (int i = 0; i < 6; i++) {
        wait_done(&together[i]);
        assert_int_equal(together[i].n, SCHED_GEN);
        assert_memory_equal(together[i].tokens, alone[i].tokens, sizeof alone[i].tokens);
    }
    /* same prompt (variant 0): base and adapter 1 generate differently */
    assert_true(memcmp(alone[0].tokens, alone[3].tokens, sizeof alone[0].tokens) != 0);

    char *gp = tu_shared_path("conformance/gpt2-tiny");
    model *g = tu_model_load(gp, NULL);
    free(gp);
    trn_lora *ga = make_adapter(g, 1u << TRN_LORA_QKV, 2, 1);
    sched_req r = {.prompt = prompt_ids, .n_prompt = 3, .max_tokens = 2, .eos_id = -1,
                   .adapter = ga, .on_event = on_event};
    samp_params_default(&r.samp);
    assert_int_equal(sched_submit(s, &r, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "LoRA"));
    sched_free(s);
    trn_lora_free(ga);
    model_free(g);
    trn_lora_free(a1);
    trn_lora_free(a2);
    model_free(m);
}

/* ---- refusals ----------------------------------------------------------- */

static void test_bad_adapters(void **state)
{
    (void)state;
    char *lp = tu_shared_path("conformance/llama-tiny/model-f32.gguf");
    char *gp = tu_shared_path("conformance/gpt2-tiny");
    if (!lp || !gp) {
        free(lp);
        free(gp);
        skip();
    }
    model *m = tu_model_load(lp, NULL), *g = tu_model_load(gp, NULL);
    free(lp);
    free(gp);
    trn_lora *lo = make_adapter(m, TRN_LORA_ALL, 2, 1), *go = make_adapter(g, gpt2_targets, 2, 1);
    kv_cache *kv = tu_model_kv(m, 1);
    assert_int_equal(kv_seq_reserve(kv, 0, 2), 0);
    int32_t tok[2] = {1, 450}, pos[2] = {0, 1}, sid[2] = {0, 0};
    int16_t ad[2] = {0, 1};
    const trn_lora *table[2] = {lo, NULL};
    float *logits = malloc((size_t)model_hp(m)->n_vocab * sizeof(float));
    model_batch b = {.n_tokens = 2, .token = tok, .pos = pos, .seq_id = sid, .adapter = ad,
                     .adapters = table, .n_adapters = 1};
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "token 1: adapter 1"));
    b.n_adapters = 2;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "adapter 1: missing"));
    ad[0] = ad[1] = -2;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    /* a gpt2 adapter on the llama model: the sites do not fit */
    table[1] = go;
    ad[0] = ad[1] = 1;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "adapter 1"));
    assert_int_equal(model_lora_check(m, go, err, sizeof err), -EINVAL);
    assert_int_equal(model_lora_check(g, lo, err, sizeof err), -EINVAL);
    assert_non_null(strstr(err, "blk.0.k")); /* q fits (C = NH*HS), k does not (GQA) */
    b.n_adapters = MODEL_MAX_ADAPTERS + 1;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), -EINVAL);
    assert_int_equal(kv_seq_len(kv, 0), 0); /* nothing was written */
    /* a valid one still runs */
    ad[0] = ad[1] = 0;
    b.n_adapters = 1;
    assert_int_equal(model_forward(m, kv, &b, logits, err, sizeof err), 0);
    assert_int_equal(kv_seq_len(kv, 0), 2);
    free(logits);
    kv_free(kv);
    trn_lora_free(lo);
    trn_lora_free(go);
    model_free(m);
    model_free(g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_gguf_matches),
        cmocka_unit_test(test_llama_hf_matches),
        cmocka_unit_test(test_gpt2_matches),
        cmocka_unit_test(test_mixed_batch),
        cmocka_unit_test(test_scheduler_mixed),
        cmocka_unit_test(test_bad_adapters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
