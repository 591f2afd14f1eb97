/* trn_embed_ops.c - instantiates the sentence-embedding training kernels
 * (trn_embed_ops_impl.inc) in float and in double. */
#include "trn_embed_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#define R float
#define S f32
#define GEMM cblas_sgemm
#define M(fn) fn##f
#include "trn_embed_ops_impl.inc"
#undef R
#undef S
#undef GEMM
#undef M

#define R double
#define S f64
#define GEMM cblas_dgemm
#define M(fn) fn
#include "trn_embed_ops_impl.inc"
#undef R
#undef S
#undef GEMM
#undef M
