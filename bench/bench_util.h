/* bench_util.h - what the benchmark programs in bench/ share, so that each
 * program holds only its own measurement:
 *   - bench_now, the monotonic clock every figure is timed with;
 *   - bench_sgemm_peak, the OpenBLAS SGEMM peak that bench_clip, bench_embed
 *     and bench_train relate their GFLOP/s to;
 *   - bench_gen, the random-weight GGUF writer of bench_decode and
 *     bench_embed (a constant plus uniform noise from a fixed-seed rng, so
 *     every run benchmarks the same weights);
 *   - bench_threads / bench_threads_end, the -t option (OpenBLAS's threads
 *     and the matmul pool); bench_open, the timed load of the model to
 *     benchmark (given, or generated into a temporary file); bench_parse,
 *     "-x VALUE" command lines.
 * Built as the static library alignd_bench_util (bench/CMakeLists.txt).
 */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <stdint.h>

#include "gguf_writer.h"
#include "model.h"
#include "rng.h"
#include "threadpool.h"

/* Seconds on CLOCK_MONOTONIC (wall time, immune to clock changes). */
double bench_now(void);

/* Best GFLOP/s (2 n^3 FLOPs a call) of reps n x n x n cblas_sgemm calls,
 * after one untimed warm-up call; 0 when the buffers cannot be allocated. */
double bench_sgemm_peak(int n, int reps);
/* The same for ops_gemm (the engine's prefill GEMM) on the engine's pool;
 * 0 as above. */
double bench_gemm_peak(int n, int reps);

/* ---- random-weight GGUF models (engine/gguf_writer.h) -------------------- */

typedef struct bench_gen {
    gguf_writer *w;  /* metadata is set on it directly (gguf_writer_set_*) */
    rng r;           /* fixed seed: every run writes the same model */
    int q8;          /* store 2-D tensors as Q8_0 */
    float **buf;     /* every tensor's data: the writer borrows it until the write */
    int nt, cap;
    int oom;         /* an allocation failed (callers may set it for theirs too):
                      * the write then refuses */
} bench_gen;

/* An empty model seeded with seed; with q8 the 2-D tensors are stored as
 * Q8_0 (rows a multiple of 32 long). 0, or -1 with a message on stderr. */
int bench_gen_init(bench_gen *g, uint64_t seed, int q8);

/* Adds tensor fmt... of [rows, cols] ([cols] when rows is 0), every element
 * value + noise * U(-1, 1) (the rng is drawn only when noise is not 0).
 * Writer errors stick in the writer, allocation failures in g->oom; both
 * make bench_gen_write fail. */
__attribute__((format(printf, 6, 7)))
void bench_gen_tensor(bench_gen *g, int64_t rows, int64_t cols, float value, float noise,
                      const char *fmt, ...);

/* Writes the model to path. 0, or -1 with a message on stderr. */
int bench_gen_write(bench_gen *g, const char *path);

/* Frees the writer and the tensors. */
void bench_gen_free(bench_gen *g);

/* A hyperparameter of the model's architecture, stored as the u32
 * "<arch>.<key>". */
typedef struct bench_hparam {
    const char *key;
    uint32_t value;
} bench_hparam;

/* Sets general.architecture = arch, general.name = name, then the n hp in
 * order. Errors stick in the writer. */
void bench_gen_arch(bench_gen *g, const char *arch, const char *name, const bench_hparam *hp,
                    int n);

/* The seed of every generated model (the one they were first written with,
 * so a model file is the same from one version of the benchmarks to the next). */
#define BENCH_GEN_SEED 42

/* Fills a model: metadata on g->w, then bench_gen_tensor calls. */
typedef void bench_fill_fn(bench_gen *g);

/* Writes the model fill makes (seeded with BENCH_GEN_SEED; q8 as for
 * bench_gen_init) to path. 0, or -1 with a message on stderr. */
int bench_gen_file(const char *path, int q8, bench_fill_fn *fill);

/* ---- setup ---------------------------------------------------------------- */

/* -t n: n > 0 sets OpenBLAS's threads and installs a matmul pool of n
 * threads in *pool; n == 0 leaves both as the environment configured them
 * (*pool NULL). 0, or -1 with a message on stderr. */
int bench_threads(int n, tp_pool **pool);

/* Uninstalls and frees the pool of bench_threads (NULL is fine). */
void bench_threads_end(tp_pool *pool);

/* The model to benchmark, loaded with o (*secs: the load time): path (-m)
 * when not NULL; else the model of fill and q8 (what: its description in
 * the message), written to a temporary file that is removed once loaded.
 * NULL, with a message on stderr, on failure. */
model *bench_open(const char *path, const char *what, bench_fill_fn *fill, int q8,
                  const model_opts *o, double *secs);

/* ---- command lines ---------------------------------------------------------- */

/* An option: exactly one of num ("NAME INT"), str ("NAME VALUE") or flag
 * ("NAME", sets 1) points at where it goes. */
typedef struct bench_opt {
    const char *name;
    int *num;
    const char **str;
    int *flag;
} bench_opt;

/* Parses argv[1..argc) against the n opts. 0, or -1 after printing the
 * fault and usage on stderr. */
int bench_parse(int argc, char **argv, const bench_opt *opts, int n, const char *usage);

#endif
