/* bench_util.c - the helpers the benchmark programs share (see
 * bench_util.h): the clock, the SGEMM peak, the random-weight GGUF
 * generator and the thread / model-load setup.
 */
#include "bench_util.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "ops.h"

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- SGEMM peak ------------------------------------------------------------ */

/* Seconds of one c = a . b^T of side n. */
static double bench_sgemm_once(int n, const float *a, const float *b, float *c)
{
    double t0 = bench_now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    return bench_now() - t0;
}

/* Seconds of one out = a . b^T of side n through ops_gemm on the engine's pool. */
static double bench_gemm_once(int n, const float *a, const float *b, float *c)
{
    double t0 = bench_now();
    ops_gemm(c, (size_t)n, a, (size_t)n, b, (size_t)n, NULL, n, n, n, ops_matmul_pool());
    return bench_now() - t0;
}

/* Best GFLOP/s of reps calls of once on n x n operands, after an untimed
 * warm-up (thread start, page faults); 0 without memory. */
static double bench_peak(int n, int reps, double (*once)(int, const float *, const float *, float *))
{
    size_t nn = (size_t)n * n;
    float *a = malloc(nn * sizeof *a), *b = malloc(nn * sizeof *b), *c = malloc(nn * sizeof *c);
    double best = INFINITY;
    if (a && b && c) {
        /* values in [-0.5, 0.5): no denormals or overflow to slow a call */
        for (size_t i = 0; i < nn; i++) {
            a[i] = (float)((i * 7919u) % 1000u) * 1e-3f - 0.5f;
            b[i] = (float)((i * 104729u) % 1000u) * 1e-3f - 0.5f;
        }
        once(n, a, b, c);
        for (int r = 0; r < reps; r++)
            best = fmin(best, once(n, a, b, c));
    }
    free(a);
    free(b);
    free(c);
    return isinf(best) ? 0.0 : 2.0 * n * (double)nn / best * 1e-9;
}

double bench_sgemm_peak(int n, int reps)
{
    return bench_peak(n, reps, bench_sgemm_once);
}

double bench_gemm_peak(int n, int reps)
{
    return bench_peak(n, reps, bench_gemm_once);
}

/* ---- random-weight GGUF models --------------------------------------------- */

int bench_gen_init(bench_gen *g, uint64_t seed, int q8)
{
    *g = (bench_gen){.q8 = q8};
    rng_seed(&g->r, seed);
    if (gguf_writer_new(&g->w) != 0) {
        fprintf(stderr, "bench: out of memory\n");
        return -1;
    }
    return 0;
}

/* Keeps x until bench_gen_free (the writer reads it only when writing);
 * frees it and marks g->oom when the list cannot grow. */
static int bench_gen_keep(bench_gen *g, float *x)
{
    if (g->nt == g->cap) {
        int cap = g->cap ? 2 * g->cap : 64;
        float **buf = realloc(g->buf, (size_t)cap * sizeof *buf);
        if (!buf) {
            free(x);
            g->oom = 1;
            return -1;
        }
        g->buf = buf;
        g->cap = cap;
    }
    g->buf[g->nt++] = x;
    return 0;
}

void bench_gen_tensor(bench_gen *g, int64_t rows, int64_t cols, float value, float noise,
                      const char *fmt, ...)
{
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    size_t n = (size_t)(rows ? rows : 1) * (size_t)cols;
    float *x = malloc(n * sizeof *x);
    if (!x) {
        g->oom = 1;
        return;
    }
    /* no draw for noise 0, so the models keep the values they always had */
    for (size_t i = 0; i < n; i++)
        x[i] = value + (noise != 0.0f ? noise * (float)(2.0 * rng_uniform(&g->r) - 1.0) : 0.0f);
    if (bench_gen_keep(g, x) != 0)
        return;
    int64_t shape[2] = {rows, cols};
    gguf_writer_type type = g->q8 && rows ? GGUF_WRITER_Q8_0 : GGUF_WRITER_F32;
    gguf_writer_add_tensor(g->w, name, rows ? 2 : 1, rows ? shape : shape + 1, type, x);
}

int bench_gen_write(bench_gen *g, const char *path)
{
    char err[512] = "bench: out of memory for the random tensors";
    int rc = g->oom ? -ENOMEM : gguf_writer_write(g->w, path, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    return rc == 0 ? 0 : -1;
}

void bench_gen_free(bench_gen *g)
{
    gguf_writer_free(g->w);
    for (int i = 0; i < g->nt; i++)
        free(g->buf[i]);
    free(g->buf);
    *g = (bench_gen){0};
}

void bench_gen_arch(bench_gen *g, const char *arch, const char *name, const bench_hparam *hp,
                    int n)
{
    gguf_writer_set_str(g->w, "general.architecture", arch);
    gguf_writer_set_str(g->w, "general.name", name);
    for (int i = 0; i < n; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%s", arch, hp[i].key);
        gguf_writer_set_u32(g->w, key, hp[i].value);
    }
}

int bench_gen_file(const char *path, int q8, bench_fill_fn *fill)
{
    bench_gen g;
    if (bench_gen_init(&g, BENCH_GEN_SEED, q8) != 0)
        return -1;
    fill(&g);
    int rc = bench_gen_write(&g, path);
    bench_gen_free(&g);
    return rc;
}

/* ---- setup ------------------------------------------------------------------ */

int bench_threads(int n, tp_pool **pool)
{
    *pool = NULL;
    if (n <= 0)
        return 0;
    openblas_set_num_threads(n);
    if (tp_create(pool, n) != 0) {
        fprintf(stderr, "bench: cannot start %d threads\n", n);
        return -1;
    }
    ops_matmul_set_pool(*pool);
    return 0;
}

void bench_threads_end(tp_pool *pool)
{
    ops_matmul_set_pool(NULL);
    tp_free(pool);
}

/* Writes the model of fill and q8 to a new temporary file, its name in
 * tmpl ("/tmp/NAME_XXXXXX"). 0, or -1 with a message on stderr. */
static int bench_tmp_model(char *tmpl, const char *what, bench_fill_fn *fill, int q8)
{
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        perror("bench: mkstemp");
        return -1;
    }
    close(fd);
    fprintf(stderr, "bench: writing %s to %s\n", what, tmpl);
    if (bench_gen_file(tmpl, q8, fill) != 0) {
        unlink(tmpl);
        return -1;
    }
    return 0;
}

model *bench_open(const char *path, const char *what, bench_fill_fn *fill, int q8,
                  const model_opts *o, double *secs)
{
    char tmp[] = "/tmp/alignd_bench_XXXXXX";
    if (!path) {
        if (bench_tmp_model(tmp, what, fill, q8) != 0)
            return NULL;
        path = tmp;
    }
    char err[512];
    model *m = NULL;
    double t0 = bench_now();
    int rc = model_load_opts(&m, path, o, err, sizeof err);
    *secs = bench_now() - t0;
    if (path == tmp) /* loaded (or failed): the file is no longer needed */
        unlink(tmp);
    if (rc != 0) {
        fprintf(stderr, "bench: %s\n", err);
        return NULL;
    }
    return m;
}

/* ---- command lines ------------------------------------------------------------ */

/* The option called name, or NULL. */
static const bench_opt *bench_find(const bench_opt *opts, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name))
            return &opts[i];
    return NULL;
}

int bench_parse(int argc, char **argv, const bench_opt *opts, int n, const char *usage)
{
    for (int i = 1; i < argc; i++) {
        const bench_opt *o = bench_find(opts, n, argv[i]);
        if (o && o->flag) {
            *o->flag = 1;
            continue;
        }
        if (!o || i + 1 == argc) {
            fprintf(stderr, o ? "bench: %s needs a value\n" : "bench: unknown option %s\n",
                    argv[i]);
            fprintf(stderr, "usage: %s\n", usage);
            return -1;
        }
        i++;
        if (o->num)
            *o->num = atoi(argv[i]);
        else
            *o->str = argv[i];
    }
    return 0;
}
