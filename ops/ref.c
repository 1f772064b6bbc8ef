/* Scalar reference kernels: the specification every SIMD variant is tested
 * against. Written for clarity; reductions are accumulated in double so the
 * reference is at least as accurate as PyTorch's float32 kernels. */
#include "ops.h"
#include "tensor/half.h"

#include <math.h>

static void gelu_tanh_ref(float *y, const float *x, size_t n)
{
    /* F.gelu(x, approximate="tanh") = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    const float k0 = 0.7978845608028654f, k1 = 0.044715f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        y[i] = 0.5f * v * (1.0f + tanhf(k0 * (v + k1 * v * v * v)));
    }
}

static void gelu_erf_ref(float *y, const float *x, size_t n)
{
    /* F.gelu(x) = 0.5 x (1 + erf(x / sqrt(2))) */
    for (size_t i = 0; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

static void silu_ref(float *y, const float *x, size_t n)
{
    /* F.silu(x) = x * sigmoid(x) */
    for (size_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + expf(-x[i]));
}

static void add_ref(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_ref(float *y, const float *a, const float *b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

static void modulate_ref(float *y, const float *x, const float *shift, const float *scale, size_t n)
{
    /* x * (1 + scale) + shift, evaluated in that order as diffusers does */
    for (size_t i = 0; i < n; i++) y[i] = x[i] * (1.0f + scale[i]) + shift[i];
}

static void layernorm_ref(float *y, const float *x, const float *w, const float *b, size_t n, float eps)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double mean = s / (double)n;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    float rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
    float m = (float)mean;
    for (size_t i = 0; i < n; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

static void rmsnorm_ref(float *y, const float *x, const float *w, size_t n, float eps)
{
    /* T5LayerNorm: variance = mean(x^2); x * rsqrt(variance + eps) * weight */
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / (double)n);
    float r = (float)(1.0 / sqrt((double)(var + eps)));
    for (size_t i = 0; i < n; i++) y[i] = (w ? w[i] : 1.0f) * (x[i] * r);
}

static void softmax_ref(float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = expf(x[i] - mx);
        s += x[i];
    }
    float inv = (float)(1.0 / s);
    for (size_t i = 0; i < n; i++) x[i] *= inv;
}

static void bf16_to_f32_ref(float *y, const uint16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = px_bf16_to_f32(x[i]);
}

static void f16_to_f32_ref(float *y, const uint16_t *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = px_f16_to_f32(x[i]);
}

static float max_ref(const float *x, size_t n)
{
    float mx = -INFINITY;
    for (size_t i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

static float exp_sum_ref(float *y, const float *x, float c, size_t n)
{
    float s = 0.0f;
    for (size_t i = 0; i < n; i++) {
        y[i] = expf(x[i] - c);
        s += y[i];
    }
    return s;
}

static double sum_ref(const float *x, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i];
    return s;
}

static double sumsq_dev_ref(const float *x, double mean, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    return ss;
}

static void norm_affine_ref(float *y, const float *x, float mean, float rstd, float w, float b, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = (x[i] - mean) * rstd * w + b;
}

/* attention micro-kernels, on panels of PX_ATTN_KP keys / columns: dot
 * products accumulated in float in increasing d (the SIMD variants fuse the
 * multiply-add, so they agree to rounding) */
static void attn_qk_ref(float *S, size_t lds, const float *Q, const float *Kp, size_t dk, size_t np, float scale)
{
    for (size_t p = 0; p < np; p++) {
        const float *panel = Kp + p * dk * PX_ATTN_KP;
        for (size_t r = 0; r < 4; r++)
            for (size_t j = 0; j < PX_ATTN_KP; j++) {
                float acc = 0.0f;
                for (size_t d = 0; d < dk; d++) acc += Q[r * dk + d] * panel[d * PX_ATTN_KP + j];
                S[r * lds + p * PX_ATTN_KP + j] = acc * scale;
            }
    }
}

static void attn_pv_ref(float *O, const float *alpha, const float *P, size_t ldp, const float *Vp, size_t vstride,
                        size_t nk, size_t dv)
{
    for (size_t r = 0; r < 4; r++)
        for (size_t d = 0; d < dv; d++) {
            const float *col = Vp + (d / PX_ATTN_KP) * vstride + d % PX_ATTN_KP;
            float acc = O[r * dv + d] * alpha[r];
            for (size_t j = 0; j < nk; j++) acc += P[r * ldp + j] * col[j * PX_ATTN_KP];
            O[r * dv + d] = acc;
        }
}

void px_kernels_init_ref(px_kernels *k)
{
    k->attn_qk = attn_qk_ref;
    k->attn_pv = attn_pv_ref;
    k->attn_kp = k->attn_vp = PX_ATTN_KP;
    k->gelu_tanh = gelu_tanh_ref;
    k->gelu_erf = gelu_erf_ref;
    k->silu = silu_ref;
    k->add = add_ref;
    k->mul = mul_ref;
    k->modulate = modulate_ref;
    k->layernorm = layernorm_ref;
    k->rmsnorm = rmsnorm_ref;
    k->softmax = softmax_ref;
    k->bf16_to_f32 = bf16_to_f32_ref;
    k->f16_to_f32 = f16_to_f32_ref;
    k->max = max_ref;
    k->exp_sum = exp_sum_ref;
    k->sum = sum_ref;
    k->sumsq_dev = sumsq_dev_ref;
    k->norm_affine = norm_affine_ref;
}
