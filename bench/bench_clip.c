/* bench_clip.c - image throughput of clip_encode_images on a random
 * ViT-B/32-shaped vision tower (image 224, patch 32 -> 50 tokens, width 768,
 * 12 layers, 12 heads, MLP 3072, projection 512; ~88 M parameters), built in
 * memory with clip_create_random (the text tower is a minimal placeholder:
 * no layers).
 *
 *   bench_clip [-b BATCH] [-r REPS] [-t THREADS]
 *
 * Prints, best of REPS runs each, images/s and ms per call at batch 1 and
 * at BATCH (default 16) images per call, with the achieved GFLOP/s
 * (per token and layer 8C^2 + 4C FF FLOPs of projections and 4 NT C of
 * attention, plus the patch embedding and projection; ~8.8 GFLOP an image)
 * and its share of a 2048^3 cblas_sgemm measured in the same run. -t sets
 * OpenBLAS's threads and the matmul pool's size. Figures, not pass/fail.
 */
#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_util.h"
#include "clip.h"
#include "ops.h"
#include "threadpool.h"

enum { BC_S = 224, BC_P = 32, BC_C = 768, BC_L = 12, BC_NH = 12, BC_FF = 3072, BC_D = 512 };

/* Best seconds per call over reps calls of n images. */
static double bc_time(clip_model *m, const float *px, int n, int reps, float *out)
{
    char err[256] = "";
    double best = INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        if (clip_encode_images(m, px, n, out, err, sizeof err) != 0) {
            fprintf(stderr, "bench_clip: %s\n", err);
            exit(1);
        }
        double dt = bench_now() - t0;
        if (dt < best)
            best = dt;
    }
    return best;
}

int main(int argc, char **argv)
{
    int batch = 16, reps = 5, threads = 0, opt;
    while ((opt = getopt(argc, argv, "b:r:t:")) != -1) {
        switch (opt) {
        case 'b': batch = atoi(optarg); break;
        case 'r': reps = atoi(optarg); break;
        case 't': threads = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: bench_clip [-b BATCH] [-r REPS] [-t THREADS]\n");
            return 2;
        }
    }
    if (batch < 1 || reps < 1) {
        fprintf(stderr, "bench_clip: -b and -r must be >= 1\n");
        return 2;
    }
    tp_pool *pool;
    if (bench_threads(threads, &pool) != 0)
        return 1;
    clip_hparams hp = {.text_ctx = 77, .text_vocab = 49408, .text_width = 512,
                       .vision_width = BC_C, .image_size = BC_S, .patch_size = BC_P,
                       .proj_dim = BC_D, .eot_id = 49407, .text_layers = 0, .text_heads = 8,
                       .text_ff = 2048, .vision_layers = BC_L, .vision_heads = BC_NH,
                       .vision_ff = BC_FF};
    clip_model *m = NULL;
    char err[256] = "";
    double t0 = bench_now();
    if (clip_create_random(&m, &hp, 1234, err, sizeof err) != 0) {
        fprintf(stderr, "bench_clip: %s\n", err);
        return 1;
    }
    printf("random ViT-B/32 vision tower built in %.2f s (OpenBLAS threads %d)\n",
           bench_now() - t0, openblas_get_num_threads());
    const size_t per = (size_t)3 * BC_S * BC_S;
    float *px = malloc((size_t)batch * per * sizeof(float));
    float *out = malloc((size_t)batch * BC_D * sizeof(float));
    if (!px || !out) {
        fprintf(stderr, "bench_clip: out of memory\n");
        return 1;
    }
    for (size_t i = 0; i < (size_t)batch * per; i++)
        px[i] = (float)sin((double)i * 0.001) * 1.5f;
    const double NT = (double)(BC_S / BC_P) * (BC_S / BC_P) + 1;
    const double flop_img = NT * BC_L * (8.0 * BC_C * BC_C + 4.0 * BC_C * BC_FF +
                                         4.0 * NT * BC_C) +
                            2.0 * ((NT - 1) * 3.0 * BC_P * BC_P * BC_C + (double)BC_C * BC_D);
    bc_time(m, px, 1, 1, out); /* warm-up: scratch, pools */
    double peak = bench_sgemm_peak(2048, 3);
    printf("sgemm 2048^3: %.1f GFLOP/s (peak)\n", peak);
    int sizes[2] = {1, batch};
    for (int i = 0; i < (batch == 1 ? 1 : 2); i++) {
        int n = sizes[i];
        if (n > 1)
            bc_time(m, px, n, 1, out);
        double s = bc_time(m, px, n, reps, out);
        double gf = flop_img * n / s * 1e-9;
        printf("batch %2d: %8.2f images/s  %9.2f ms/call  %7.1f GFLOP/s (%.0f%% of peak)\n", n,
               n / s, s * 1e3, gf, peak > 0 ? 100.0 * gf / peak : 0.0);
    }
    clip_free(m);
    free(px);
    free(out);
    bench_threads_end(pool);
    return 0;
}
