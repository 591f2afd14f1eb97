/* ops.c - forward kernels; see ops.h. Each fast kernel is followed by its
 * naive reference. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

/* ---- norms -------------------------------------------------------------- */

void ops_rmsnorm(float *out, const float *x, const float *w, int C, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < C; i++)
        ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)C + eps);
    for (int i = 0; i < C; i++)
        out[i] = x[i] * r * w[i];
}

void ops_rmsnorm_naive(float *out, const float *x, const float *w, int C,
                       float eps)
{
    double ss = 0.0;
    for (int i = 0; i < C; i++)
        ss += (double)x[i] * x[i];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int i = 0; i < C; i++)
        out[i] = (float)(x[i] * r * w[i]);
}

void ops_layernorm(float *out, const float *x, const float *w, const float *b,
                   int C, float eps)
{
    float mean = 0.0f;
    for (int i = 0; i < C; i++)
        mean += x[i];
    mean /= (float)C;
    float var = 0.0f;
    for (int i = 0; i < C; i++) {
        float d = x[i] - mean;
        var += d * d;
    }
    var /= (float)C;
    float r = 1.0f / sqrtf(var + eps);
    for (int i = 0; i < C; i++)
        out[i] = (x[i] - mean) * r * w[i] + (b ? b[i] : 0.0f);
}

void ops_layernorm_naive(float *out, const float *x, const float *w,
                         const float *b, int C, float eps)
{
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < C; i++)
        mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++)
        var += (x[i] - mean) * (x[i] - mean);
    var /= C;
    for (int i = 0; i < C; i++)
        out[i] = (float)((x[i] - mean) / sqrt(var + eps) * w[i] +
                         (b ? b[i] : 0.0));
}

/* ---- rope --------------------------------------------------------------- */

void ops_rope_inv_freq(float *inv_freq, int n_rot, double theta)
{
    /* HF: 1 / base ** (arange(0, dim, 2).float() / dim), in float32 */
    for (int i = 0; i < n_rot / 2; i++)
        inv_freq[i] = 1.0f / powf((float)theta, (float)(2 * i) / (float)n_rot);
}

void ops_rope(float *x, int NH, int HS, int n_rot, ops_rope_layout layout,
              const float *inv_freq, float pos_scale, int pos)
{
    int half = n_rot / 2;
    float p = (float)pos * pos_scale;
    for (int i = 0; i < half; i++) {
        float ang = p * inv_freq[i];
        float c = cosf(ang), s = sinf(ang);
        for (int h = 0; h < NH; h++) {
            float *xh = x + (size_t)h * HS;
            int a = layout == OPS_ROPE_ADJACENT ? 2 * i : i;
            int b = layout == OPS_ROPE_ADJACENT ? 2 * i + 1 : i + half;
            float x0 = xh[a], x1 = xh[b];
            xh[a] = x0 * c - x1 * s;
            xh[b] = x0 * s + x1 * c;
        }
    }
}

void ops_rope_naive(float *x, int NH, int HS, int n_rot, ops_rope_layout layout,
                    double theta, float pos_scale, int pos)
{
    /* Definition: pair (a, b) is the complex number a + ib, multiplied by
     * e^{i pos theta^(-2i/n_rot)}. */
    for (int h = 0; h < NH; h++) {
        float *xh = x + (size_t)h * HS;
        for (int i = 0; i < n_rot / 2; i++) {
            double ang = (double)pos * pos_scale *
                         pow(theta, -2.0 * i / (double)n_rot);
            int a = layout == OPS_ROPE_ADJACENT ? 2 * i : i;
            int b = layout == OPS_ROPE_ADJACENT ? 2 * i + 1 : i + n_rot / 2;
            double re = xh[a], im = xh[b];
            xh[a] = (float)(re * cos(ang) - im * sin(ang));
            xh[b] = (float)(re * sin(ang) + im * cos(ang));
        }
    }
}

/* ---- softmax and activations -------------------------------------------- */

void ops_softmax(float *x, int n)
{
    if (n <= 0)
        return;
    float mx = x[0];
    for (int i = 1; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    float sum = 0.0f;
    for (int i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        sum += x[i];
    }
    float inv = 1.0f / sum;
    for (int i = 0; i < n; i++)
        x[i] *= inv;
}

void ops_softmax_naive(float *x, int n)
{
    double mx = -INFINITY, sum = 0.0;
    for (int i = 0; i < n; i++)
        mx = x[i] > mx ? x[i] : mx;
    for (int i = 0; i < n; i++)
        sum += exp(x[i] - mx);
    for (int i = 0; i < n; i++)
        x[i] = (float)(exp(x[i] - mx) / sum);
}

void ops_silu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] / (1.0f + expf(-x[i]));
}

void ops_swiglu(float *out, const float *gate, const float *up, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void ops_gelu_tanh(float *x, size_t n)
{
    const float k = 0.7978845608028654f; /* sqrt(2/pi) */
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(k * (v + 0.044715f * v * v * v)));
    }
}

void ops_add(float *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        y[i] += x[i];
}

