/* bench_matmul.c - out[T, N] = x[T, K] . w[N, K]^T for decode-sized T: the
 * small-T kernel (ops_matmul_small) against OpenBLAS sgemm and the old
 * ops_matmul path (sgemv for T == 1, sgemm otherwise), plus the machine's
 * streaming read bandwidth to relate them to.
 *
 *   bench_matmul [-t THREADS] [-r REPS] [-M MIB] [-T T,T,...] [-s NxK,...]
 *                [-q q8_0|q4_0]
 *
 * Each shape cycles through enough copies of w to read MIB MiB (default 512,
 * about the 110M llama's weights) so the weights come from memory, not cache,
 * as in a decode step. Prints per (shape, T) the best of REPS runs of each
 * path: microseconds per call, GFLOP/s (2 T N K per call) and GB/s of weight
 * reads (4 N K bytes per call). THREADS (default: the CPUs online) sizes both
 * our pool and OpenBLAS's. Figures, not pass/fail.
 *
 * -q: the same for a quantized matrix (qm_matmul), packed in 16- and
 * 32-row panels, with the best kernel and the AVX2 one; GB/s of packed
 * weights.
 */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "bench_util.h"
#include "cpu_features.h"
#include "ops.h"
#include "qmat.h"
#include "threadpool.h"

/* ---- streaming read bandwidth ------------------------------------------- */

typedef struct bm_read {
    const uint64_t *buf;
    uint64_t sink[256];  /* per worker, so the reads are not optimised away */
} bm_read;

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t bm_xor_avx2(const uint64_t *p, size_t n)
{
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_xor_si256(a0, _mm256_loadu_si256((const __m256i *)(p + i)));
        a1 = _mm256_xor_si256(a1, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        a2 = _mm256_xor_si256(a2, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        a3 = _mm256_xor_si256(a3, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    a0 = _mm256_xor_si256(_mm256_xor_si256(a0, a1), _mm256_xor_si256(a2, a3));
    uint64_t v[4];
    _mm256_storeu_si256((__m256i *)v, a0);
    uint64_t s = v[0] ^ v[1] ^ v[2] ^ v[3];
    for (; i < n; i++)
        s ^= p[i];
    return s;
}
#endif

static uint64_t bm_xor(const uint64_t *p, size_t n)
{
#if defined(__x86_64__)
    if (cpu_isa_supported(CPU_ISA_AVX2))
        return bm_xor_avx2(p, n);
#endif
    uint64_t s = 0;
    for (size_t i = 0; i < n; i++)
        s ^= p[i];
    return s;
}

static void bm_read_fn(void *ctx, size_t b, size_t e, int worker)
{
    bm_read *r = ctx;
    r->sink[worker & 255] ^= bm_xor(r->buf + b, e - b);
}

/* Best GB/s of reading 1 GiB, on the caller alone and on the pool. */
static void bm_bandwidth(tp_pool *pool, int reps)
{
    size_t n = (size_t)1 << 27;  /* 1 GiB of uint64 */
    uint64_t *buf = malloc(n * sizeof *buf);
    if (!buf) {
        fprintf(stderr, "bench_matmul: no memory for the bandwidth test\n");
        return;
    }
    for (size_t i = 0; i < n; i++)
        buf[i] = i * 0x9E3779B97F4A7C15ull;
    bm_read r = {.buf = buf};
    for (int p = 0; p < 2; p++) {
        tp_pool *use = p ? pool : NULL;
        if (p && !pool)
            break;
        double best = 1e30;
        for (int k = 0; k < reps + 1; k++) {
            double t0 = bench_now();
            tp_parallel_for(use, n, 4096, bm_read_fn, &r);
            double dt = bench_now() - t0;
            if (k > 0 && dt < best)  /* the first pass faults the pages in */
                best = dt;
        }
        printf("memory: streaming read, %d thread%s: %.1f GB/s\n", tp_threads(use),
               tp_threads(use) > 1 ? "s" : "", (double)n * 8 / best * 1e-9);
    }
    uint64_t s = 0;
    for (int i = 0; i < 256; i++)
        s ^= r.sink[i];
    if (s == 42)
        printf(" \n");
    free(buf);
}

/* ---- matmul --------------------------------------------------------------- */

enum { BM_SGEMM, BM_OLD, BM_SMALL, BM_AVX2, BM_NPATH };
static const char *const bm_path_name[BM_NPATH] = {"sgemm", "old", "small", "small-avx2"};

static void bm_call(int path, float *out, const float *x, const float *w, int T, int N, int K,
                    tp_pool *pool)
{
    switch (path) {
    case BM_SGEMM:
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, N, K, 1.0f, x, K, w, K, 0.0f,
                    out, N);
        break;
    case BM_OLD:
        ops_matmul_blas(out, (size_t)N, x, w, NULL, T, K, N);
        break;
    case BM_SMALL:
        ops_matmul_small(out, (size_t)N, x, w, NULL, T, K, N, cpu_isa_best(), pool);
        break;
    case BM_AVX2:
        ops_matmul_small(out, (size_t)N, x, w, NULL, T, K, N, CPU_ISA_AVX2, pool);
        break;
    }
}

static int bm_shape(int N, int K, const int *Ts, int nT, tp_pool *pool, int reps, size_t mib)
{
    size_t wn = (size_t)N * K;
    size_t copies = mib * 1024 * 1024 / (wn * sizeof(float)) + 1;
    int Tmax = 1;
    for (int i = 0; i < nT; i++)
        Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
    float *w = malloc(copies * wn * sizeof(float));
    float *x = malloc((size_t)Tmax * K * sizeof(float));
    float *out = malloc((size_t)Tmax * N * sizeof(float));
    if (!w || !x || !out) {
        fprintf(stderr, "bench_matmul: no memory for %d x %d x %zu copies\n", N, K, copies);
        free(w);
        free(x);
        free(out);
        return -1;
    }
    for (size_t i = 0; i < copies * wn; i++)
        w[i] = (float)((i * 2654435761u) % 2001) * 1e-3f - 1.0f;
    for (size_t i = 0; i < (size_t)Tmax * K; i++)
        x[i] = (float)(i % 17) * 0.1f - 0.8f;
    printf("\nN x K = %d x %d (%.1f MiB of weights, %zu copies cycled)\n", N, K,
           (double)wn * 4 / 1048576.0, copies);
    printf("%5s", "T");
    for (int p = 0; p < BM_NPATH; p++)
        if (p != BM_AVX2 || cpu_isa_best() != CPU_ISA_AVX2)
            printf(" | %-10s %8s %6s %6s", bm_path_name[p], "us", "GF/s", "GB/s");
    printf(" | new/old\n");
    for (int ti = 0; ti < nT; ti++) {
        int T = Ts[ti];
        double flops = 2.0 * T * (double)wn, bytes = 4.0 * (double)wn;
        double best_t[BM_NPATH] = {0};
        /* our kernels first, then OpenBLAS's (with our pool parked), then a
         * pause: OpenBLAS's idle threads keep polling (sched_yield) for a
         * while after a call, which would steal the next kernel's cores */
        static const int order[BM_NPATH] = {BM_SMALL, BM_AVX2, BM_SGEMM, BM_OLD};
        for (int oi = 0; oi < BM_NPATH; oi++) {
            int p = order[oi];
            if (p == BM_AVX2 && (cpu_isa_best() == CPU_ISA_AVX2 || !cpu_isa_supported(CPU_ISA_AVX2)))
                continue;
            if (p == BM_SGEMM || p == BM_OLD)
                tp_park(pool);
            /* timed runs of 4 calls, cycling through the copies; REPS
             * passes over all copies. The best run is the figure: the others
             * engineers' jobs on this machine only ever slow a run down. */
            size_t runs = (size_t)reps * ((copies + 3) / 4);
            double best = 1e30;
            for (size_t r = 0, c = 0; r < runs; r++) {
                double t0 = bench_now();
                for (int k = 0; k < 4; k++, c++)
                    bm_call(p, out, x, w + (c % copies) * wn, T, N, K, pool);
                double dt = (bench_now() - t0) / 4.0;
                best = dt < best ? dt : best;
            }
            best_t[p] = best;
        }
        usleep(200000);
        printf("%5d", T);
        for (int p = 0; p < BM_NPATH; p++)
            if (best_t[p] > 0)
                printf(" | %-10s %8.1f %6.1f %6.1f", "", best_t[p] * 1e6, flops / best_t[p] * 1e-9,
                       bytes / best_t[p] * 1e-9);
        printf(" | %5.2fx\n", best_t[BM_OLD] / best_t[BM_SMALL]);
        fflush(stdout);
    }
    free(w);
    free(x);
    free(out);
    return 0;
}

/* ---- quantized matrices (-q) ------------------------------------------------ */

/* qm_matmul on a Q8_0 / Q4_0 matrix packed in 16- and 32-row panels, with
 * the best kernel and (where it is not the best) the AVX2 one: us per call
 * and GB/s of packed weights read, the copies cycled as above. Both
 * layouts' copies are packed once, before the timings. */
static int bm_qshape(qm_type type, int N, int K, const int *Ts, int nT, tp_pool *pool,
                     int reps, size_t mib)
{
    enum { NL = 2 }; /* layouts: 16- and 32-row panels */
    int Tmax = 1, rc = -1;
    for (int i = 0; i < nT; i++)
        Tmax = Ts[i] > Tmax ? Ts[i] : Tmax;
    size_t rb = qm_row_bytes(type, K), copies[NL] = {0}, bytes[NL] = {0};
    uint8_t *raw = malloc((size_t)N * rb), *w[NL] = {NULL};
    qm_mat *mats[NL] = {NULL};
    float *row = malloc((size_t)K * sizeof(float)), *x = malloc((size_t)Tmax * K * sizeof(float));
    float *out = malloc((size_t)Tmax * N * sizeof(float));
    void *scratch = malloc(qm_scratch_bytes(Tmax, K));
    if (K % QM_BLOCK) {
        fprintf(stderr, "bench_matmul: -q needs K a multiple of %d (got %d)\n", QM_BLOCK, K);
        goto done;
    }
    if (!raw || !row || !x || !out || !scratch)
        goto nomem;
    for (int r = 0; r < N; r++) {
        for (int c = 0; c < K; c++)
            row[c] = (float)(((size_t)r * K + c) * 2654435761u % 2001) * 1e-3f - 1.0f;
        qm_quantize_row(type, row, K, raw + (size_t)r * rb);
    }
    for (size_t i = 0; i < (size_t)Tmax * K; i++)
        x[i] = (float)(i % 17) * 0.1f - 0.8f;
    qm_mat src = {.type = type, .rows = N, .cols = K, .data = raw};
    for (int l = 0; l < NL; l++) {
        int P = l ? QM_PANEL_MAX : QM_GROUP;
        bytes[l] = qm_mat_bytes(&(qm_mat){.type = type, .rows = N, .cols = K, .packed = P});
        size_t stride = (bytes[l] + 63) / 64 * 64;
        copies[l] = mib * 1024 * 1024 / stride + 1;
        w[l] = aligned_alloc(64, copies[l] * stride);
        mats[l] = malloc(copies[l] * sizeof *mats[l]);
        if (!w[l] || !mats[l])
            goto nomem;
        for (size_t c = 0; c < copies[l]; c++)
            qm_pack_panel(&src, P, w[l] + c * stride, &mats[l][c]); /* K checked above */
    }
    printf("\n%s N x K = %d x %d\n%5s", qm_type_name(type), N, K, "T");
    cpu_isa isas[2] = {cpu_isa_best(), CPU_ISA_AVX2};
    int n_isa = cpu_isa_best() > CPU_ISA_AVX2 ? 2 : 1;
    for (int l = 0; l < NL; l++)
        for (int i = 0; i < n_isa; i++)
            printf(" | P%d %-7s %8s %6s", mats[l][0].packed, cpu_isa_name(isas[i]), "us", "GB/s");
    printf("\n");
    for (int ti = 0; ti < nT; ti++) {
        int T = Ts[ti];
        printf("%5d", T);
        for (int l = 0; l < NL; l++)
            for (int i = 0; i < n_isa; i++) {
                size_t runs = (size_t)reps * ((copies[l] + 3) / 4);
                double best = 1e30;
                for (size_t r = 0, c = 0; r < runs; r++) {
                    double t0 = bench_now();
                    for (int k = 0; k < 4; k++, c++)
                        qm_matmul(out, (size_t)N, x, &mats[l][c % copies[l]], NULL, T, isas[i],
                                  pool, scratch);
                    double dt = (bench_now() - t0) / 4.0;
                    best = dt < best ? dt : best;
                }
                printf(" | %-10s %8.1f %6.1f", "", best * 1e6, (double)bytes[l] / best * 1e-9);
            }
        printf("\n");
        fflush(stdout);
    }
    rc = 0;
    goto done;
nomem:
    fprintf(stderr, "bench_matmul: no memory for the %d x %d %s matrix\n", N, K,
            qm_type_name(type));
done:
    for (int l = 0; l < NL; l++)
        free(w[l]), free(mats[l]);
    free(raw), free(row), free(x), free(out), free(scratch);
    return rc;
}

/* "a,b,c" -> ints; returns the count (at most cap), 0 on a bad list */
static int bm_parse_list(const char *s, int *v, int cap)
{
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 100000)
            return 0;
        v[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return 0;
    }
    return n;
}

int main(int argc, char **argv)
{
    int threads = (int)sysconf(_SC_NPROCESSORS_ONLN), reps = 5;
    size_t mib = 512;
    int qtype = 0; /* -q: quantized matrices instead of F32 */
    int Ts[32] = {1, 2, 4, 8, 16, 32, 64, 128}, nT = 8;
    int shapes[16][2] = {{768, 768}, {2048, 768}, {32000, 768}}, nS = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            goto usage;
        if (!strcmp(a, "-t"))
            threads = atoi(v);
        else if (!strcmp(a, "-r"))
            reps = atoi(v);
        else if (!strcmp(a, "-M"))
            mib = (size_t)atol(v);
        else if (!strcmp(a, "-q")) {
            if (!strcmp(v, "q8_0"))
                qtype = QM_Q8_0;
            else if (!strcmp(v, "q4_0"))
                qtype = QM_Q4_0;
            else
                goto usage;
        }
        else if (!strcmp(a, "-T")) {
            if ((nT = bm_parse_list(v, Ts, 32)) == 0)
                goto usage;
        } else if (!strcmp(a, "-s")) {
            nS = 0;
            for (const char *s = v; *s && nS < 16;) {
                int n, k, used;
                if (sscanf(s, "%dx%d%n", &n, &k, &used) != 2 || n < 1 || k < 1)
                    goto usage;
                shapes[nS][0] = n;
                shapes[nS][1] = k;
                nS++;
                s += used;
                if (*s == ',')
                    s++;
            }
        } else
            goto usage;
        i++;
    }
    if (threads < 1 || reps < 1 || mib < 1)
        goto usage;
    openblas_set_num_threads(threads);
    tp_pool *pool = NULL;
    if (tp_create(&pool, threads) != 0) {
        fprintf(stderr, "bench_matmul: cannot start %d threads\n", threads);
        return 1;
    }
    printf("threads %d, isa %s, OpenBLAS %s\n", threads, cpu_isa_name(cpu_isa_best()),
           openblas_get_config());
    bm_bandwidth(pool, reps);
    int rc = 0;
    for (int s = 0; s < nS && rc == 0; s++)
        rc = qtype ? bm_qshape((qm_type)qtype, shapes[s][0], shapes[s][1], Ts, nT, pool, reps, mib)
                   : bm_shape(shapes[s][0], shapes[s][1], Ts, nT, pool, reps, mib);
    tp_free(pool);
    return rc == 0 ? 0 : 1;
usage:
    fprintf(stderr, "usage: bench_matmul [-t THREADS] [-r REPS] [-M MIB] [-T T,T,...] "
                    "[-s NxK,...] [-q q8_0|q4_0]\n");
    return 2;
}
