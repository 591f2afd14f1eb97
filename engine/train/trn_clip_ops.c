/* trn_clip_ops.c - instantiates the CLIP training kernels
 * (trn_clip_ops_impl.inc) in float and in double, and the activation names. */
#include "trn_clip_ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

#include "trn_ops.h"

const char *trn_clip_act_name(trn_clip_act act)
{
    switch (act) {
    case TRN_CLIP_QUICK_GELU:
        return "quick_gelu";
    case TRN_CLIP_GELU:
        return "gelu";
    case TRN_CLIP_GELU_TANH:
        return "gelu_new";
    }
    return "?";
}

int trn_clip_act_parse(const char *name, trn_clip_act *act)
{
    if (strcmp(name, "quick_gelu") == 0)
        *act = TRN_CLIP_QUICK_GELU;
    else if (strcmp(name, "gelu") == 0)
        *act = TRN_CLIP_GELU;
    else if (strcmp(name, "gelu_new") == 0 || strcmp(name, "gelu_pytorch_tanh") == 0)
        *act = TRN_CLIP_GELU_TANH;
    else
        return -1;
    return 0;
}

#define R float
#define S f32
#define GEMM cblas_sgemm
#define M(fn) fn##f
#include "trn_clip_ops_impl.inc"
#undef R
#undef S
#undef GEMM
#undef M

#define R double
#define S f64
#define GEMM cblas_dgemm
#define M(fn) fn
#include "trn_clip_ops_impl.inc"
#undef R
#undef S
#undef GEMM
#undef M
