/* trn_ckpt.h - training checkpoints that resume exactly: the parameters of
 * trn_param.h, the AdamW state of trn_optim.h, the caller's random
 * generators (rng.h) and an opaque caller blob (a config string, a data
 * loader position), in one binary file.
 *
 * Resuming N steps from a checkpoint saved at step k gives bitwise the
 * parameters of an uninterrupted run of k + N steps (same binary, same
 * batches): everything AdamW reads (values, m, v, step, hyper-parameters,
 * schedule) is stored exactly, floats as their bits.
 *
 * File format, version 1, all integers and floats little-endian:
 *
 *   magic "ALGNCKPT" (8 bytes), u32 version, u32 reserved (0)
 *   i64 step, i64 n_skipped
 *   u32 schedule kind, u32 reserved (0), f64 lr, f64 min_lr,
 *   i64 warmup_steps, i64 total_steps
 *   f64 beta1, beta2, eps, weight_decay, max_grad_norm
 *   u32 n_rngs, u32 n_params, u64 blob_len
 *   n_rngs x 4 u64 (xoshiro256** states), blob_len bytes of blob
 *   n_params x { u32 name_len, name (no NUL), u64 n,
 *                f32 value[n], f32 m[n], f32 v[n] }
 *   u64 checksum: FNV-1a 64 of every byte before it
 *
 * A reader refuses: another magic or version, non-zero reserved fields,
 * step or n_skipped outside [0, 2^53], settings trn_optim_cfg_check
 * rejects, more than TRN_CKPT_MAX_RNGS generators, empty names or names of
 * TRN_PARAM_NAME_MAX bytes or more or with a NUL, any count that runs past
 * the end, bytes left over, and a wrong checksum.
 *
 * Saving writes "<path>.tmp", fsyncs it, renames it over path and fsyncs
 * the folder, so path holds either the previous checkpoint or the new one,
 * never a half-written file.
 *
 * Loading is all or nothing: the whole file is parsed, bounds-checked and
 * checksummed, and its parameter list compared with the caller's (same
 * names and sizes in the same order; the first difference is named) before
 * anything is written. A failed load leaves the parameters, the optimizer
 * and the generators as they were. The optimizer passed to a load must have
 * been initialised (trn_optim_init) for the same parameter list; the load
 * overwrites its step, n_skipped, hyper-parameters and schedule (change
 * o->cfg afterwards to resume with other settings).
 *
 * Errors: 0 or a negative errno: -EINVAL (malformed, truncated, corrupt,
 * unsupported version, or not this parameter list), -ENOMEM, -EFBIG, or the
 * errno of a failed open/read/write/fsync/rename, with a message naming the
 * file and the fault in the caller's eng_err when one is given.
 *
 * Threads: no shared state; the caller must not change the parameters or
 * the optimizer while a save or load runs.
 */
#ifndef TRN_CKPT_H
#define TRN_CKPT_H

#include <stddef.h>
#include <stdint.h>

#include "eng_err.h"
#include "rng.h"
#include "trn_optim.h"
#include "trn_param.h"

#define TRN_CKPT_VERSION 1
#define TRN_CKPT_MAX_RNGS 1024  /* more is taken as a corrupt header */

/* The caller's state that travels with the parameters and the optimizer. */
typedef struct trn_ckpt_extra {
    rng *rngs;         /* [n_rngs] borrowed: save stores them, load
                          overwrites them; NULL when n_rngs is 0 */
    int n_rngs;        /* load: must equal the number saved */
    const void *blob;  /* save: blob_len opaque bytes, borrowed; ignored by
                          load (see trn_ckpt_peek and the blob argument of
                          trn_ckpt_load) */
    size_t blob_len;
} trn_ckpt_extra;

/* A checkpoint's header, for a caller that must read it (the config in the
 * blob) before it can build the parameter list. */
typedef struct trn_ckpt_info {
    int64_t step;
    int64_t n_skipped;
    trn_optim_cfg cfg;
    int n_rngs;
    int n_params;
    size_t n_elements;  /* over all params */
    size_t blob_len;
} trn_ckpt_info;

/* Writes ps (values), o (moments, step, settings) and x (may be NULL: no
 * generators, empty blob) to path atomically (see above). Everything is
 * borrowed. o must have been initialised for ps. */
int trn_ckpt_save(const char *path, const trn_params *ps, const trn_optim *o,
                  const trn_ckpt_extra *x, eng_err *err);

/* Restores ps's values, o's state and x->rngs from the file at path (see
 * above; x may be NULL for a file without generators). When blob is not
 * NULL, *blob is set to a new copy of the saved blob, NUL-terminated one byte
 * past *blob_len (caller frees; NULL when nothing is restored). */
int trn_ckpt_load(const char *path, trn_params *ps, trn_optim *o, trn_ckpt_extra *x,
                  void **blob, size_t *blob_len, eng_err *err);

/* trn_ckpt_load from a file image of len bytes (borrowed); label names it in
 * messages (NULL: "<memory>"). */
int trn_ckpt_load_mem(const void *buf, size_t len, const char *label, trn_params *ps,
                      trn_optim *o, trn_ckpt_extra *x, void **blob, size_t *blob_len,
                      eng_err *err);

/* Checks the whole file as a load would, without a parameter list, and
 * fills *info; blob as in trn_ckpt_load (may be NULL). */
int trn_ckpt_peek(const char *path, trn_ckpt_info *info, void **blob, size_t *blob_len,
                  eng_err *err);
int trn_ckpt_peek_mem(const void *buf, size_t len, const char *label, trn_ckpt_info *info,
                      void **blob, size_t *blob_len, eng_err *err);

#endif
