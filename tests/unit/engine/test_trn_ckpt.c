/* test_trn_ckpt.c - checkpoints: a toy training run resumed from a
 * checkpoint matches the uninterrupted run bitwise (parameters, moments,
 * generators); mismatched parameter lists, truncated and corrupt files are
 * refused with a message and leave the caller's state alone; saving is
 * atomic. */
#include "tu_util.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rng.h"
#include "trn_ckpt.h"
#include "trn_optim.h"
#include "trn_param.h"

/* ---- a toy training run -----------------------------------------------------
 * Least squares on a fixed data set, with mini-batches drawn by a generator
 * (so a resume must restore it) and two accumulated micro-batches per step. */

#define ROWS 64
#define COLS 6
#define BATCH 8
#define ACCUM 2

typedef struct toy {
    float A[ROWS][COLS], y[ROWS];
    float w[COLS], gw[COLS], c[1], gc[1];
    trn_params ps;
    trn_optim o;
    rng rngs[2];  /* [0] draws batches, [1] stands for another stream */
} toy;

static trn_optim_cfg toy_cfg(void) {
    trn_optim_cfg c = trn_optim_cfg_default();
    c.sched = (trn_sched){TRN_SCHED_COSINE, 0.05, 1e-3, 5, 40};
    c.weight_decay = 0.05;
    c.max_grad_norm = 5.0;  /* clips about half of the steps */
    return c;
}

/* The data set depends only on a fixed seed; init_seed picks the starting
 * weights and generator states, so a "fresh process" can differ. */
static void toy_init(toy *t, uint64_t init_seed, const trn_optim_cfg *cfg) {
    memset(t, 0, sizeof *t);
    rng r;
    rng_seed(&r, 99);
    for (int i = 0; i < ROWS; i++) {
        t->y[i] = (float)rng_normal(&r);
        for (int j = 0; j < COLS; j++) t->A[i][j] = (float)rng_normal(&r);
    }
    rng_seed(&r, init_seed);
    for (int j = 0; j < COLS; j++) t->w[j] = (float)rng_normal(&r);
    t->c[0] = (float)rng_normal(&r);
    rng_seed(&t->rngs[0], init_seed + 1);
    rng_seed(&t->rngs[1], init_seed + 2);
    assert_int_equal(trn_params_add(&t->ps, "blk.0.w", t->w, t->gw, COLS, true), 0);
    assert_int_equal(trn_params_add(&t->ps, "blk.0.c", t->c, t->gc, 1, false), 0);
    eng_err err = {0};
    if (trn_optim_init(&t->o, &t->ps, cfg, &err)) fail_msg("%s", err.msg);
}

static void toy_free(toy *t) {
    trn_optim_free(&t->o);
    trn_params_free(&t->ps);
}

/* Backward of one micro-batch's mean squared error / ACCUM (accumulates). */
static void toy_micro_batch(toy *t) {
    for (int b = 0; b < BATCH; b++) {
        int i = (int)rng_below(&t->rngs[0], ROWS);
        float r = t->c[0] - t->y[i];
        for (int j = 0; j < COLS; j++) r += t->A[i][j] * t->w[j];
        float k = 2.0f * r / (BATCH * ACCUM);
        for (int j = 0; j < COLS; j++) t->gw[j] += k * t->A[i][j];
        t->gc[0] += k;
    }
}

static void toy_train(toy *t, int steps) {
    for (int s = 0; s < steps; s++) {
        trn_params_zero_grad(&t->ps);
        for (int k = 0; k < ACCUM; k++) toy_micro_batch(t);
        (void)rng_next_u64(&t->rngs[1]);  /* e.g. a dropout stream */
        eng_err err = {0};
        if (trn_optim_step(&t->o, &t->ps, NULL, &err) != 0) fail_msg("step: %s", err.msg);
    }
}

/* Bitwise, field by field (the struct has padding). */
static void assert_same_cfg(const trn_optim_cfg *a, const trn_optim_cfg *b) {
    assert_int_equal(a->sched.kind, b->sched.kind);
    assert_memory_equal(&a->sched.lr, &b->sched.lr, sizeof(double));
    assert_memory_equal(&a->sched.min_lr, &b->sched.min_lr, sizeof(double));
    assert_int_equal(a->sched.warmup_steps, b->sched.warmup_steps);
    assert_int_equal(a->sched.total_steps, b->sched.total_steps);
    assert_memory_equal(&a->beta1, &b->beta1, sizeof(double));
    assert_memory_equal(&a->beta2, &b->beta2, sizeof(double));
    assert_memory_equal(&a->eps, &b->eps, sizeof(double));
    assert_memory_equal(&a->weight_decay, &b->weight_decay, sizeof(double));
    assert_memory_equal(&a->max_grad_norm, &b->max_grad_norm, sizeof(double));
}

/* Parameters, moments, counters and generators bitwise equal. */
static void assert_same_state(const toy *a, const toy *b) {
    assert_memory_equal(a->w, b->w, sizeof a->w);
    assert_memory_equal(a->c, b->c, sizeof a->c);
    assert_int_equal(a->o.n_total, b->o.n_total);
    assert_memory_equal(a->o.m, b->o.m, 2 * a->o.n_total * sizeof(float));
    assert_int_equal(a->o.step, b->o.step);
    assert_int_equal(a->o.n_skipped, b->o.n_skipped);
    assert_same_cfg(&a->o.cfg, &b->o.cfg);
    assert_memory_equal(a->rngs, b->rngs, sizeof a->rngs);
}

/* ---- files ----------------------------------------------------------------- */

static char *mk_tmpdir(void) {
    char *d = strdup("/tmp/alignd_ckpt_XXXXXX");
    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static char *path_in(const char *dir, const char *name) {
    char *p = malloc(strlen(dir) + strlen(name) + 2);
    assert_non_null(p);
    sprintf(p, "%s/%s", dir, name);
    return p;
}

static void write_bytes(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

static const char blob_text[] = "model=toy rows=64 loader_pos=1234";

/* Saves t (with both generators and the blob) to path. */
static void save_toy(const toy *t, const char *path) {
    trn_ckpt_extra x = {(rng *)t->rngs, 2, blob_text, sizeof blob_text - 1};
    eng_err err = {0};
    if (trn_ckpt_save(path, &t->ps, &t->o, &x, &err)) fail_msg("save: %s", err.msg);
}

/* A saved toy checkpoint's bytes (caller frees). */
static unsigned char *toy_image(size_t *len) {
    char *dir = mk_tmpdir(), *path = path_in(dir, "t.ckpt");
    trn_optim_cfg cfg = toy_cfg();
    toy t;
    toy_init(&t, 1, &cfg);
    toy_train(&t, 7);
    save_toy(&t, path);
    unsigned char *b = (unsigned char *)tu_read_file(path, len);
    assert_non_null(b);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(path);
    free(dir);
    toy_free(&t);
    return b;
}

/* ---- resuming --------------------------------------------------------------- */

static void test_resume_is_bitwise(void **state) {
    (void)state;
    char *dir = mk_tmpdir(), *path = path_in(dir, "run.ckpt");
    trn_optim_cfg cfg = toy_cfg();
    toy straight, first, resumed;
    toy_init(&straight, 1, &cfg);
    toy_train(&straight, 40);

    toy_init(&first, 1, &cfg);
    toy_train(&first, 20);
    save_toy(&first, path);

    /* A fresh process: other weights, generators and settings. */
    trn_optim_cfg other = trn_optim_cfg_default();
    toy_init(&resumed, 12345, &other);
    trn_ckpt_extra x = {resumed.rngs, 2, NULL, 0};
    void *blob = NULL;
    size_t blob_len = 0;
    eng_err err = {0};
    if (trn_ckpt_load(path, &resumed.ps, &resumed.o, &x, &blob, &blob_len, &err))
        fail_msg("load: %s", err.msg);
    assert_same_state(&first, &resumed);
    assert_int_equal(blob_len, sizeof blob_text - 1);
    assert_string_equal((char *)blob, blob_text);  /* NUL-terminated copy */
    free(blob);

    toy_train(&resumed, 20);
    assert_same_state(&straight, &resumed);
    assert_int_equal(resumed.o.step, 40);
    /* The generators go on with the same numbers. */
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 5; i++)
            assert_true(rng_next_u64(&straight.rngs[k]) == rng_next_u64(&resumed.rngs[k]));
    /* Training really moved the weights (the comparison is not vacuous). */
    assert_true(memcmp(first.w, straight.w, sizeof first.w) != 0);

    /* No temporary file left behind. */
    char *tmp = path_in(dir, "run.ckpt.tmp");
    struct stat sb;
    assert_int_equal(stat(tmp, &sb), -1);
    assert_int_equal(errno, ENOENT);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(tmp);
    free(path);
    free(dir);
    toy_free(&straight);
    toy_free(&first);
    toy_free(&resumed);
}

static void test_peek(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = toy_image(&len);
    trn_ckpt_info info;
    void *blob;
    size_t blob_len;
    eng_err err = {0};
    if (trn_ckpt_peek_mem(img, len, "img", &info, &blob, &blob_len, &err)) fail_msg("%s", err.msg);
    trn_optim_cfg cfg = toy_cfg();
    assert_int_equal(info.step, 7);
    assert_int_equal(info.n_skipped, 0);
    assert_same_cfg(&info.cfg, &cfg);
    assert_int_equal(info.n_rngs, 2);
    assert_int_equal(info.n_params, 2);
    assert_int_equal(info.n_elements, COLS + 1);
    assert_int_equal(info.blob_len, sizeof blob_text - 1);
    assert_string_equal((char *)blob, blob_text);
    free(blob);
    /* blob may be left out. */
    assert_int_equal(trn_ckpt_peek_mem(img, len, NULL, &info, NULL, NULL, NULL), 0);

    char *dir = mk_tmpdir(), *path = path_in(dir, "p.ckpt");
    write_bytes(path, img, len);
    memset(&info, 0, sizeof info);
    assert_int_equal(trn_ckpt_peek(path, &info, NULL, NULL, &err), 0);
    assert_int_equal(info.step, 7);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(path);
    free(dir);
    free(img);
}

/* ---- refusals --------------------------------------------------------------- */

/* Loads img into a fresh toy built with names/sizes changed by the caller;
 * checks the refusal names `want` and that nothing was touched. */
static void expect_refused(const unsigned char *img, size_t len, toy *t, int n_rngs,
                           const char *want) {
    float w0[COLS], c0[1], mv0[64];
    rng r0[2];
    assert_true(2 * t->o.n_total <= 64);
    memcpy(w0, t->w, sizeof w0);
    memcpy(c0, t->c, sizeof c0);
    memcpy(mv0, t->o.m, 2 * t->o.n_total * sizeof(float));
    memcpy(r0, t->rngs, sizeof r0);
    trn_optim_cfg cfg0 = t->o.cfg;

    trn_ckpt_extra x = {t->rngs, n_rngs, NULL, 0};
    void *blob = (void *)1;
    eng_err err = {0};
    int rc = trn_ckpt_load_mem(img, len, "x.ckpt", &t->ps, &t->o, &x, &blob, NULL, &err);
    if (rc != -EINVAL) fail_msg("want -EINVAL (%s), got %d", want, rc);
    if (!strstr(err.msg, want)) fail_msg("message \"%s\" lacks \"%s\"", err.msg, want);
    assert_non_null(strstr(err.msg, "x.ckpt"));
    assert_int_equal(err.code, -EINVAL);
    assert_null(blob);
    assert_memory_equal(t->w, w0, sizeof w0);
    assert_memory_equal(t->c, c0, sizeof c0);
    assert_memory_equal(t->o.m, mv0, 2 * t->o.n_total * sizeof(float));
    assert_memory_equal(t->rngs, r0, sizeof r0);
    assert_same_cfg(&t->o.cfg, &cfg0);
    assert_int_equal(t->o.step, 0);
}

static void test_param_mismatch(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = toy_image(&len);
    trn_optim_cfg cfg = toy_cfg();
    toy t;
    float extra[3] = {0}, gextra[3];

    /* Renamed. */
    toy_init(&t, 5, &cfg);
    snprintf(t.ps.p[1].name, TRN_PARAM_NAME_MAX, "blk.0.bias");
    expect_refused(img, len, &t, 2, "parameter 1: the checkpoint has 'blk.0.c' [1], the model "
                                    "'blk.0.bias' [1]");
    toy_free(&t);

    /* Resized (the optimizer made for the resized list). */
    toy_init(&t, 5, &cfg);
    trn_optim_free(&t.o);
    t.ps.p[0].n = COLS - 1;
    assert_int_equal(trn_optim_init(&t.o, &t.ps, &cfg, NULL), 0);
    expect_refused(img, len, &t, 2, "'blk.0.w' [6], the model 'blk.0.w' [5]");
    toy_free(&t);

    /* One parameter more in the model. */
    toy_init(&t, 5, &cfg);
    trn_optim_free(&t.o);
    assert_int_equal(trn_params_add(&t.ps, "blk.1.w", extra, gextra, 3, true), 0);
    assert_int_equal(trn_optim_init(&t.o, &t.ps, &cfg, NULL), 0);
    expect_refused(img, len, &t, 2, "model parameter 'blk.1.w' is not in the checkpoint");
    toy_free(&t);

    /* One fewer. */
    toy_init(&t, 5, &cfg);
    trn_optim_free(&t.o);
    t.ps.n = 1;
    assert_int_equal(trn_optim_init(&t.o, &t.ps, &cfg, NULL), 0);
    expect_refused(img, len, &t, 2, "the checkpoint has parameter 'blk.0.c' beyond");
    toy_free(&t);

    /* Generator count. */
    toy_init(&t, 5, &cfg);
    expect_refused(img, len, &t, 1, "2 generators, the caller 1");
    toy_free(&t);

    /* An optimizer made for another list is a caller bug, still refused. */
    toy_init(&t, 5, &cfg);
    trn_params other = {0};
    assert_int_equal(trn_params_add(&other, "x", extra, gextra, 3, true), 0);
    trn_optim_free(&t.o);
    assert_int_equal(trn_optim_init(&t.o, &other, &cfg, NULL), 0);
    expect_refused(img, len, &t, 2, "optimizer");
    trn_params_free(&other);
    toy_free(&t);
    free(img);
}

static void test_truncated(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = toy_image(&len);
    trn_optim_cfg cfg = toy_cfg();
    toy t;
    toy_init(&t, 5, &cfg);
    for (size_t n = 0; n < len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past it. */
        unsigned char *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, img, n);
        const char *want = n < 16 ? "too small" : "truncated";
        expect_refused(p, n, &t, 2, want);
        free(p);
    }
    /* The same through a file. */
    char *dir = mk_tmpdir(), *path = path_in(dir, "short.ckpt");
    write_bytes(path, img, len / 2);
    trn_ckpt_extra x = {t.rngs, 2, NULL, 0};
    eng_err err = {0};
    assert_int_equal(trn_ckpt_load(path, &t.ps, &t.o, &x, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "short.ckpt: truncated"));
    write_bytes(path, img, 0);
    assert_int_equal(trn_ckpt_load(path, &t.ps, &t.o, &x, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "too small"));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(trn_ckpt_load(path, &t.ps, &t.o, &x, NULL, NULL, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "cannot open"));
    assert_int_equal(trn_ckpt_load(dir, &t.ps, &t.o, &x, NULL, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "not a regular file"));
    assert_int_equal(rmdir(dir), 0);
    free(path);
    free(dir);
    toy_free(&t);
    free(img);
}

/* FNV-1a 64, as the format documents, to forge valid checksums. */
static void fix_checksum(unsigned char *b, size_t len) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len - 8; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++) b[len - 8 + i] = (unsigned char)(h >> (8 * i));
}

static void put_le(unsigned char *b, uint64_t x, int bytes) {
    for (int i = 0; i < bytes; i++) b[i] = (unsigned char)(x >> (8 * i));
}

/* Offsets in the version-1 header (trn_ckpt.h). */
enum {
    OFF_VERSION = 8, OFF_RESERVED = 12, OFF_STEP = 16, OFF_KIND = 32, OFF_RESERVED2 = 36,
    OFF_LR = 40, OFF_BETA1 = 72, OFF_N_RNGS = 112, OFF_N_PARAMS = 116, OFF_BLOB_LEN = 120,
    OFF_RNGS = 128,
};

static void test_corrupt(void **state) {
    (void)state;
    size_t len;
    unsigned char *img = toy_image(&len);
    unsigned char *b = malloc(len + 1);
    assert_non_null(b);
    trn_optim_cfg cfg = toy_cfg();
    toy t;
    toy_init(&t, 5, &cfg);
    const size_t first_name = OFF_RNGS + 64 + (sizeof blob_text - 1) + 4;
    const double nan = NAN;
    uint64_t nan_bits;
    memcpy(&nan_bits, &nan, 8);
    struct {
        size_t off;
        uint64_t val;
        int bytes;
        bool fix;  /* forge the checksum, to reach the structural check */
        const char *want;
    } cases[] = {
        {0, 'X', 1, true, "bad magic"},
        {OFF_VERSION, 2, 4, true, "unsupported version 2"},
        {OFF_RESERVED, 1, 4, true, "reserved"},
        {OFF_RESERVED2, 1, 4, true, "reserved"},
        {OFF_STEP, (uint64_t)-5, 8, true, "step -5"},
        {OFF_STEP, ((uint64_t)1 << 53) + 1, 8, true, "not in [0, 2^53]"},
        {OFF_KIND, 9, 4, true, "schedule kind"},
        {OFF_LR, nan_bits, 8, true, "bad stored settings: optimizer: lr"},
        {OFF_BETA1, 0x3ff0000000000000ull, 8, true, "beta1"},  /* 1.0 */
        {OFF_N_RNGS, 5000, 4, true, "5000 generators"},
        {OFF_N_RNGS, 3, 4, true, "name length"},  /* what follows is misread */
        {OFF_N_PARAMS, 0xffffffffu, 4, true, "cannot fit"},
        {OFF_N_PARAMS, 3, 4, true, "truncated"},
        {OFF_N_PARAMS, 1, 4, true, "unexpected bytes"},
        {OFF_BLOB_LEN, (uint64_t)-1, 8, true, "a blob of 18446744073709551615 bytes"},
        {first_name - 4, 0, 4, true, "name length 0"},
        {first_name - 4, 200, 4, true, "name length 200"},
        {first_name + 2, 0, 1, true, "NUL byte"},
        {first_name + 7, 0xffffffffffffull, 8, true, "truncated: parameter 'blk.0.w'"},
        {first_name + 7, (uint64_t)1 << 62, 8, true, "truncated: parameter 'blk.0.w'"},
        {first_name + 20, 0x55, 1, false, "checksum mismatch"},
        {len - 1, 0x55, 1, false, "checksum mismatch"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        memcpy(b, img, len);
        put_le(b + cases[k].off, cases[k].val, cases[k].bytes);
        if (cases[k].fix) fix_checksum(b, len);
        expect_refused(b, len, &t, 2, cases[k].want);
    }
    /* A byte appended: what was the checksum is now read as data. */
    memcpy(b, img, len);
    b[len] = 0;
    fix_checksum(b, len + 1);
    expect_refused(b, len + 1, &t, 2, "unexpected bytes");
    /* The unmodified image loads. */
    trn_ckpt_extra x = {t.rngs, 2, NULL, 0};
    assert_int_equal(trn_ckpt_load_mem(img, len, NULL, &t.ps, &t.o, &x, NULL, NULL, NULL), 0);
    assert_int_equal(t.o.step, 7);
    toy_free(&t);
    free(b);
    free(img);
}

/* ---- saving ----------------------------------------------------------------- */

static void test_save_atomic(void **state) {
    (void)state;
    char *dir = mk_tmpdir(), *path = path_in(dir, "a.ckpt"), *tmp = path_in(dir, "a.ckpt.tmp");
    trn_optim_cfg cfg = toy_cfg();
    toy t;
    toy_init(&t, 3, &cfg);
    eng_err err = {0};

    /* A stale partial file from a crashed save is replaced, not trusted. */
    write_bytes(tmp, "garbage", 7);
    save_toy(&t, path);
    struct stat sb;
    assert_int_equal(stat(tmp, &sb), -1);

    /* Saving again replaces the checkpoint. */
    toy_train(&t, 3);
    save_toy(&t, path);
    trn_ckpt_info info;
    assert_int_equal(trn_ckpt_peek(path, &info, NULL, NULL, &err), 0);
    assert_int_equal(info.step, 3);

    /* A failed save leaves the previous checkpoint and no temporary. */
    char *bad = path_in(dir, "missing/a.ckpt");
    assert_int_equal(trn_ckpt_save(bad, &t.ps, &t.o, NULL, &err), -ENOENT);
    assert_non_null(strstr(err.msg, "missing/a.ckpt.tmp: cannot create"));
    assert_int_equal(mkdir(tmp, 0700), 0);  /* the temporary cannot be created */
    toy_train(&t, 1);
    assert_true(trn_ckpt_save(path, &t.ps, &t.o, NULL, &err) < 0);
    assert_int_equal(trn_ckpt_peek(path, &info, NULL, NULL, &err), 0);
    assert_int_equal(info.step, 3);
    assert_int_equal(rmdir(tmp), 0);

    /* Bad arguments. */
    trn_ckpt_extra x = {NULL, 1, NULL, 0};
    assert_int_equal(trn_ckpt_save(path, &t.ps, &t.o, &x, &err), -EINVAL);
    x = (trn_ckpt_extra){NULL, 0, NULL, 4};
    assert_int_equal(trn_ckpt_save(path, &t.ps, &t.o, &x, &err), -EINVAL);
    t.ps.p[0].name[0] = '\0';
    assert_int_equal(trn_ckpt_save(path, &t.ps, &t.o, NULL, &err), -EINVAL);
    assert_non_null(strstr(err.msg, "no name"));

    /* Without extras: no generators, an empty blob. */
    snprintf(t.ps.p[0].name, TRN_PARAM_NAME_MAX, "blk.0.w");
    assert_int_equal(trn_ckpt_save(path, &t.ps, &t.o, NULL, &err), 0);
    void *blob;
    size_t blob_len = 99;
    assert_int_equal(trn_ckpt_load(path, &t.ps, &t.o, NULL, &blob, &blob_len, &err), 0);
    assert_int_equal(blob_len, 0);
    assert_string_equal((char *)blob, "");
    free(blob);
    assert_int_equal(t.o.step, 4);

    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);
    free(bad);
    free(tmp);
    free(path);
    free(dir);
    toy_free(&t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_is_bitwise),
        cmocka_unit_test(test_peek),
        cmocka_unit_test(test_param_mismatch),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_corrupt),
        cmocka_unit_test(test_save_atomic),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
