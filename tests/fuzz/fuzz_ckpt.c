/* fuzz_ckpt.c - libFuzzer target for training checkpoints (trn_ckpt.h):
 * peek and load from memory into a fixed two-parameter list. Whatever the
 * input, a call must fail with a message and leave the caller's state
 * untouched, or succeed with settings the optimizer accepts and agree with
 * the peek. Each input is tried as given and again with its checksum
 * recomputed, so mutations also reach the parameter match and the restore.
 * The seed corpus (corpus/fuzz_ckpt/) holds checkpoints of this very list
 * (w [4], c [1], one generator). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rng.h"
#include "trn_ckpt.h"
#include "trn_optim.h"
#include "trn_param.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const eng_err *err) {
    if (err->code >= 0 || memchr(err->msg, '\0', sizeof err->msg) == NULL || !err->msg[0])
        abort();
}

static void try_load(const uint8_t *data, size_t size) {
    float w[4] = {1, 2, 3, 4}, gw[4] = {0}, c[1] = {5}, gc[1] = {0};
    trn_params ps = {0};
    if (trn_params_add(&ps, "w", w, gw, 4, true) || trn_params_add(&ps, "c", c, gc, 1, false))
        abort();
    trn_optim_cfg cfg = trn_optim_cfg_default();
    trn_optim o;
    if (trn_optim_init(&o, &ps, &cfg, NULL)) abort();
    rng rngs[1];
    rng_seed(&rngs[0], 1);
    const rng r0 = rngs[0];

    trn_ckpt_info info;
    void *pblob = NULL;
    size_t pblob_len = 0;
    eng_err err = {0};
    int peek_rc = trn_ckpt_peek_mem(data, size, "fuzz", &info, &pblob, &pblob_len, &err);
    if (peek_rc) check_err(&err);
    else if (info.n_rngs < 0 || info.n_rngs > TRN_CKPT_MAX_RNGS || info.n_params < 0 ||
             pblob_len != info.blob_len || ((char *)pblob)[pblob_len] != '\0')
        abort();

    trn_ckpt_extra x = {rngs, 1, NULL, 0};
    void *blob = NULL;
    size_t blob_len = 0;
    memset(&err, 0, sizeof err);
    int rc = trn_ckpt_load_mem(data, size, "fuzz", &ps, &o, &x, &blob, &blob_len, &err);
    if (rc) {
        check_err(&err);
        /* All or nothing: a refused file changed nothing. */
        if (blob || w[0] != 1 || w[3] != 4 || c[0] != 5 || o.step != 0 ||
            memcmp(&rngs[0], &r0, sizeof r0) != 0)
            abort();
        for (size_t i = 0; i < 2 * o.n_total; i++)
            if (o.m[i] != 0) abort();
    } else {
        /* A load is a successful peek plus a match. */
        if (peek_rc || trn_optim_cfg_check(&o.cfg, NULL) || o.step != info.step ||
            blob_len != pblob_len || memcmp(blob, pblob, blob_len) != 0)
            abort();
        trn_optim_stats st;
        if (trn_optim_step(&o, &ps, &st, NULL) < 0) abort();
    }
    free(blob);
    free(pblob);
    trn_optim_free(&o);
    trn_params_free(&ps);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    try_load(data, size);
    if (size < 16) return 0;
    uint8_t *fixed = malloc(size);
    if (!fixed) abort();
    memcpy(fixed, data, size);
    uint64_t h = 0xcbf29ce484222325ull;  /* FNV-1a 64, as the format says */
    for (size_t i = 0; i < size - 8; i++) h = (h ^ fixed[i]) * 0x100000001b3ull;
    for (int i = 0; i < 8; i++) fixed[size - 8 + i] = (uint8_t)(h >> (8 * i));
    try_load(fixed, size);
    free(fixed);
    return 0;
}
