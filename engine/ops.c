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

/* ---- attention ---------------------------------------------------------- */

/* q . k over n dims in 8 interleaved partial sums, added pairwise at the
 * end: the chain of one running sum would wait on every add's latency. Both
 * attention kernels use it, so they stay bitwise equal. */
static inline float ops__dot(const float *a, const float *b, int n)
{
    float s[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int i = 0; i < 8; i++)
            s[i] += a[d + i] * b[d + i];
    for (; d < n; d++)
        s[d & 7] += a[d] * b[d];
    return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

void ops_attention(float *out, const float *q, const float *k, const float *v,
                   size_t ldk, int TK, int NH, int NKV, int HS, float scale,
                   float *att)
{
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HS;
        size_t koff = (size_t)(h / group) * HS;
        for (int j = 0; j < TK; j++) {
            att[j] = ops__dot(qh, k + (size_t)j * ldk + koff, HS) * scale;
        }
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        for (int j = 0; j < TK; j++) {
            const float *vj = v + (size_t)j * ldk + koff;
            float a = att[j];
            for (int d = 0; d < HS; d++)
                oh[d] += a * vj[d];
        }
    }
}

void ops_attention_paged(float *out, const float *q, const float *k,
                         const float *v, size_t bstride, const int32_t *table,
                         int BS, size_t ldk, int TK, int NH, int NKV, int HS,
                         float scale, float *att)
{
    int group = NH / NKV;
    for (int h = 0; h < NH; h++) {
        const float *qh = q + (size_t)h * HS;
        size_t koff = (size_t)(h / group) * HS;
        for (int j0 = 0, bi = 0; j0 < TK; j0 += BS, bi++) {
            const float *kb = k + (size_t)table[bi] * bstride + koff;
            int n = TK - j0 < BS ? TK - j0 : BS;
            for (int r = 0; r < n; r++) {
                att[j0 + r] = ops__dot(qh, kb + (size_t)r * ldk, HS) * scale;
            }
        }
        ops_softmax(att, TK);
        float *oh = out + (size_t)h * HS;
        memset(oh, 0, (size_t)HS * sizeof(float));
        for (int j0 = 0, bi = 0; j0 < TK; j0 += BS, bi++) {
            const float *vb = v + (size_t)table[bi] * bstride + koff;
            int n = TK - j0 < BS ? TK - j0 : BS;
            for (int r = 0; r < n; r++) {
                const float *vj = vb + (size_t)r * ldk;
                float a = att[j0 + r];
                for (int d = 0; d < HS; d++)
                    oh[d] += a * vj[d];
            }
        }
    }
}

void ops_attention_naive(float *out, const float *q, const float *k,
                         const float *v, const unsigned char *mask, int T,
                         int TK, int NH, int NKV, int HS, float scale)
{
    int qd = NH * HS, kd = NKV * HS;
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < NH; h++) {
            int g = h / (NH / NKV);
            double mx = -INFINITY, sum = 0.0;
            for (int j = 0; j < TK; j++) {
                if (!mask[(size_t)t * TK + j])
                    continue;
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)t * qd + h * HS + d] *
                         k[(size_t)j * kd + g * HS + d];
                s *= scale;
                mx = s > mx ? s : mx;
            }
            for (int j = 0; j < TK; j++) {
                if (!mask[(size_t)t * TK + j])
                    continue;
                double s = 0.0;
                for (int d = 0; d < HS; d++)
                    s += (double)q[(size_t)t * qd + h * HS + d] *
                         k[(size_t)j * kd + g * HS + d];
                sum += exp(s * scale - mx);
            }
            for (int d = 0; d < HS; d++) {
                double acc = 0.0;
                for (int j = 0; j < TK; j++) {
                    if (!mask[(size_t)t * TK + j])
                        continue;
                    double s = 0.0;
                    for (int e = 0; e < HS; e++)
                        s += (double)q[(size_t)t * qd + h * HS + e] *
                             k[(size_t)j * kd + g * HS + e];
                    acc += exp(s * scale - mx) / sum *
                           v[(size_t)j * kd + g * HS + d];
                }
                out[(size_t)t * qd + h * HS + d] = (float)acc;
            }
        }
    }
}
