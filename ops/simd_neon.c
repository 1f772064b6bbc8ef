/* AArch64 Advanced SIMD (NEON) row kernels, 4 floats per vector. Advanced
 * SIMD and FMA are part of the AArch64 base ISA, so no extra flags. The
 * algorithms, operation order and polynomial coefficients are those of
 * ops/simd_avx2.c (read that file first). Differences that matter:
 *  - FMAX/FMIN propagate NaN (x86 max/min return the second operand), so the
 *    exp clamp keeps NaN with vmaxq/vminq, and the NaN-skipping row max uses
 *    vmaxnmq (IEEE maxNum);
 *  - remainders: arithmetic kernels end with a scalar tail, transcendental
 *    ones run the last n % 4 elements through the same vector code on a
 *    zero-padded stack copy (no access past n).
 * Checked by tools/check-neon-build.sh (cross-compile, and under qemu-aarch64
 * against the reference when it is installed). */
#include "ops.h"

#include <arm_neon.h>
#include <math.h>
#include <string.h>

/* ---- polynomial coefficients (tools/gen_simd_poly.py) ------------------- */

static const float exp_c[6] = { 0.000198909809f, 0.00139336416f, 0.00833331048f, 0.0416664667f, 0.166666672f, 0.5f };
static const float tanh_c[5] = { -0.00609671418f, 0.0209971797f, -0.0538509078f, 0.133327693f, -0.333333284f };
static const float erf_small_c[7] = { 7.87587487e-05f, -0.00080168643f, 0.00518908724f, -0.0268542115f, 0.112835944f, -0.37612626f, 0.128379166f };
static const float erf_large_c[10] = { -7.58268186e-08f, 3.32168452e-06f, -6.22983498e-05f, 0.000685836654f, -0.00506494706f, 0.0270995237f, -0.111055017f, -0.630953014f, -1.1306752f, 0.000416329218f };

typedef float32x4_t V;
#define SET1 vdupq_n_f32

static inline __attribute__((always_inline)) V poly(V x, const float *c, int n)
{
    V p = SET1(c[0]);
    /* fully unrolled: n is a constant at every call; a loop here costs 3x in exp */
#pragma GCC unroll 16
    for (int i = 1; i < n; i++) p = vfmaq_f32(SET1(c[i]), p, x); /* c + p * x */
    return p;
}

/* exp(x), as exp8 in simd_avx2.c */
static inline V exp4(V x)
{
    x = vmaxq_f32(x, SET1(-110.0f)); /* NaN stays NaN */
    x = vminq_f32(x, SET1(89.0f));
    V n = vrndnq_f32(vmulq_f32(x, SET1(1.44269504088896341f)));
    V r = vfmsq_f32(x, n, SET1(0.693145751953125f)); /* x - n * ln2_hi */
    r = vfmsq_f32(r, n, SET1(1.42860682030941723e-6f));
    V g = poly(r, exp_c, 6);
    V y = vaddq_f32(vfmaq_f32(r, g, vmulq_f32(r, r)), SET1(1.0f));
    int32x4_t ni = vcvtq_s32_f32(n); /* n is integral */
    int32x4_t n1 = vshrq_n_s32(ni, 1), n2 = vsubq_s32(ni, n1);
    int32x4_t bias = vdupq_n_s32(127);
    V s1 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n1, bias), 23));
    V s2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(n2, bias), 23));
    return vmulq_f32(vmulq_f32(y, s1), s2);
}

static inline uint32x4_t sign_of(V x) { return vandq_u32(vreinterpretq_u32_f32(x), vdupq_n_u32(0x80000000u)); }
static inline V or_sign(V x, uint32x4_t s) { return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(x), s)); }

static inline V tanh4(V u)
{
    V a = vabsq_f32(u);
    V s = vmulq_f32(u, u);
    V t_small = vfmaq_f32(u, vmulq_f32(u, s), poly(s, tanh_c, 5));
    V e = exp4(vaddq_f32(a, a));
    V t_large = vsubq_f32(SET1(1.0f), vdivq_f32(SET1(2.0f), vaddq_f32(e, SET1(1.0f))));
    t_large = or_sign(t_large, sign_of(u));
    return vbslq_f32(vcltq_f32(a, SET1(0.625f)), t_small, t_large);
}

static inline V erf4(V z)
{
    V a = vabsq_f32(z);
    V e_small = vfmaq_f32(z, z, poly(vmulq_f32(z, z), erf_small_c, 7));
    V q = poly(vminq_f32(a, SET1(4.0f)), erf_large_c, 10); /* NaN stays NaN */
    V e_large = or_sign(vsubq_f32(SET1(1.0f), exp4(q)), sign_of(z));
    return vbslq_f32(vcltq_f32(a, SET1(1.0f)), e_small, e_large);
}

#define MAP1(fname, body)                                                     \
    static inline V fname##_v(V x) { body }                                   \
    static void fname(float *y, const float *x, size_t n)                     \
    {                                                                         \
        size_t i = 0;                                                         \
        for (; i + 4 <= n; i += 4) vst1q_f32(y + i, fname##_v(vld1q_f32(x + i))); \
        if (i < n) {                                                          \
            float buf[4] = { 0 };                                             \
            memcpy(buf, x + i, (n - i) * sizeof(float));                      \
            vst1q_f32(buf, fname##_v(vld1q_f32(buf)));                        \
            memcpy(y + i, buf, (n - i) * sizeof(float));                      \
        }                                                                     \
    }

MAP1(gelu_tanh_neon, {
    V inner = vmulq_f32(SET1(0.7978845608028654f),
                        vaddq_f32(x, vmulq_f32(vmulq_f32(vmulq_f32(SET1(0.044715f), x), x), x)));
    return vmulq_f32(vmulq_f32(SET1(0.5f), x), vaddq_f32(SET1(1.0f), tanh4(inner)));
})

MAP1(gelu_erf_neon, {
    V e = erf4(vmulq_f32(x, SET1(0.70710678118654752f)));
    return vmulq_f32(vmulq_f32(SET1(0.5f), x), vaddq_f32(SET1(1.0f), e));
})

MAP1(silu_neon, {
    V e = exp4(vnegq_f32(x));
    return vdivq_f32(x, vaddq_f32(SET1(1.0f), e));
})

/* ---- plain arithmetic ---------------------------------------------------- */

static void add_neon(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vaddq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_neon(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vmulq_f32(vld1q_f32(a + i), vld1q_f32(b + i)));
    for (; i < n; i++) y[i] = a[i] * b[i];
}

static void modulate_neon(float *y, const float *x, const float *shift, const float *scale, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V s = vaddq_f32(SET1(1.0f), vld1q_f32(scale + i));
        vst1q_f32(y + i, vaddq_f32(vmulq_f32(vld1q_f32(x + i), s), vld1q_f32(shift + i)));
    }
    for (; i < n; i++) y[i] = x[i] * (1.0f + scale[i]) + shift[i];
}

/* ---- reductions --------------------------------------------------------- */

static double sum_neon(const float *x, size_t n)
{
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V v = vld1q_f32(x + i);
        a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(v)));
        a1 = vaddq_f64(a1, vcvt_high_f64_f32(v));
    }
    double s = vaddvq_f64(vaddq_f64(a0, a1));
    for (; i < n; i++) s += x[i];
    return s;
}

static double sumsq_dev_neon(const float *x, double mean, size_t n)
{
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0), m = vdupq_n_f64(mean);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V v = vld1q_f32(x + i);
        float64x2_t d0 = vsubq_f64(vcvt_f64_f32(vget_low_f32(v)), m);
        float64x2_t d1 = vsubq_f64(vcvt_high_f64_f32(v), m);
        a0 = vfmaq_f64(a0, d0, d0);
        a1 = vfmaq_f64(a1, d1, d1);
    }
    double ss = vaddvq_f64(vaddq_f64(a0, a1));
    for (; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    return ss;
}

static float max_neon(const float *x, size_t n)
{
    V m = SET1(-INFINITY);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) m = vmaxnmq_f32(m, vld1q_f32(x + i)); /* maxNum: skips quiet NaNs */
    float mx = vmaxnmvq_f32(m);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

static float exp_sum_neon(float *y, const float *x, float c, size_t n)
{
    V cv = SET1(c), acc = vdupq_n_f32(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V e = exp4(vsubq_f32(vld1q_f32(x + i), cv));
        vst1q_f32(y + i, e);
        acc = vaddq_f32(acc, e);
    }
    float s = vaddvq_f32(acc);
    if (i < n) {
        float buf[4] = { 0 };
        memcpy(buf, x + i, (n - i) * sizeof(float));
        vst1q_f32(buf, exp4(vsubq_f32(vld1q_f32(buf), cv)));
        for (size_t j = 0; j < n - i; j++) s += buf[j];
        memcpy(y + i, buf, (n - i) * sizeof(float));
    }
    return s;
}

static void layernorm_neon(float *y, const float *x, const float *w, const float *b, size_t n, float eps)
{
    double mean = sum_neon(x, n) / (double)n;
    double ss = sumsq_dev_neon(x, mean, n);
    float rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
    float m = (float)mean;
    V mv = SET1(m), rv = SET1(rstd);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V v = vmulq_f32(vsubq_f32(vld1q_f32(x + i), mv), rv);
        if (w) v = vmulq_f32(v, vld1q_f32(w + i));
        if (b) v = vaddq_f32(v, vld1q_f32(b + i));
        vst1q_f32(y + i, v);
    }
    for (; i < n; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

static void rmsnorm_neon(float *y, const float *x, const float *w, size_t n, float eps)
{
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V v = vld1q_f32(x + i);
        float64x2_t d0 = vcvt_f64_f32(vget_low_f32(v)), d1 = vcvt_high_f64_f32(v);
        a0 = vfmaq_f64(a0, d0, d0);
        a1 = vfmaq_f64(a1, d1, d1);
    }
    double ss = vaddvq_f64(vaddq_f64(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / (double)n);
    float r = (float)(1.0 / sqrt((double)(var + eps)));
    V rv = SET1(r);
    for (i = 0; i + 4 <= n; i += 4) {
        V v = vmulq_f32(vld1q_f32(x + i), rv);
        if (w) v = vmulq_f32(vld1q_f32(w + i), v);
        vst1q_f32(y + i, v);
    }
    for (; i < n; i++) y[i] = (w ? w[i] : 1.0f) * (x[i] * r);
}

static void softmax_neon(float *x, size_t n)
{
    if (n == 0) return;
    float mx = max_neon(x, n);
    V cv = SET1(mx);
    float64x2_t a0 = vdupq_n_f64(0), a1 = vdupq_n_f64(0);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V e = exp4(vsubq_f32(vld1q_f32(x + i), cv));
        vst1q_f32(x + i, e);
        a0 = vaddq_f64(a0, vcvt_f64_f32(vget_low_f32(e)));
        a1 = vaddq_f64(a1, vcvt_high_f64_f32(e));
    }
    double s = vaddvq_f64(vaddq_f64(a0, a1));
    if (i < n) {
        float buf[4] = { 0 };
        memcpy(buf, x + i, (n - i) * sizeof(float));
        vst1q_f32(buf, exp4(vsubq_f32(vld1q_f32(buf), cv)));
        for (size_t j = 0; j < n - i; j++) s += buf[j];
        memcpy(x + i, buf, (n - i) * sizeof(float));
    }
    float inv = (float)(1.0 / s);
    V iv = SET1(inv);
    for (i = 0; i + 4 <= n; i += 4) vst1q_f32(x + i, vmulq_f32(vld1q_f32(x + i), iv));
    for (; i < n; i++) x[i] *= inv;
}

static void norm_affine_neon(float *y, const float *x, float mean, float rstd, float w, float b, size_t n)
{
    V mv = SET1(mean), rv = SET1(rstd), wv = SET1(w), bv = SET1(b);
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        V v = vmulq_f32(vmulq_f32(vsubq_f32(vld1q_f32(x + i), mv), rv), wv);
        vst1q_f32(y + i, vaddq_f32(v, bv));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w + b;
}

/* ---- half-precision widening (exact) ------------------------------------ */

static void bf16_to_f32_neon(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vld1q_u16(x + i);
        vst1q_f32(y + i, vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vget_low_u16(h)), 16)));
        vst1q_f32(y + i + 4, vreinterpretq_f32_u32(vshlq_n_u32(vmovl_u16(vget_high_u16(h)), 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(y + i, &u, 4);
    }
}

/* FCVTL quietens signalling NaNs; exponent-31 lanes are rebuilt from the bits
 * as the reference does (see simd_avx2.c). */
static inline V f16x4(uint16x4_t h)
{
    V f = vcvt_f32_f16(vreinterpret_f16_u16(h));
    uint32x4_t u = vmovl_u16(h);
    uint32x4_t special = vceqq_u32(vandq_u32(u, vdupq_n_u32(0x7c00)), vdupq_n_u32(0x7c00));
    if (vmaxvq_u32(special) == 0) return f;
    uint32x4_t bits = vorrq_u32(vshlq_n_u32(vandq_u32(u, vdupq_n_u32(0x8000)), 16),
                                vorrq_u32(vdupq_n_u32(0x7f800000u), vshlq_n_u32(vandq_u32(u, vdupq_n_u32(0x3ff)), 13)));
    return vbslq_f32(special, vreinterpretq_f32_u32(bits), f);
}

static void f16_to_f32_neon(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 4 <= n; i += 4) vst1q_f32(y + i, f16x4(vld1_u16(x + i)));
    if (i < n) {
        uint16_t hb[4] = { 0 };
        float fb[4];
        memcpy(hb, x + i, (n - i) * sizeof(uint16_t));
        vst1q_f32(fb, f16x4(vld1_u16(hb)));
        memcpy(y + i, fb, (n - i) * sizeof(float));
    }
}

/* ---- attention micro-kernels ------------------------------------------- */

/* As attn_qk_avx2, each 24-key panel in two halves of 12 keys: 4 rows x 3
 * vectors = 12 accumulators (4 x 6 would not leave registers for the panel
 * row and the broadcasts); per dimension d, three loads of the panel row, each
 * multiplied by q_r[d] of the four rows. */
static void attn_qk_neon(float *S, size_t lds, const float *Q, const float *Kp, size_t dp, size_t np, float scale)
{
    for (size_t p = 0; p < np; p++)
        for (size_t half = 0; half < PX_ATTN_KP; half += 12) {
            const float *kp = Kp + p * dp * PX_ATTN_KP + half;
            V c[4][3];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                for (int v = 0; v < 3; v++) c[r][v] = SET1(0.0f);
            for (size_t d = 0; d < dp; d++, kp += PX_ATTN_KP) {
                V k0 = vld1q_f32(kp), k1 = vld1q_f32(kp + 4), k2 = vld1q_f32(kp + 8);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    float a = Q[r * dp + d];
                    c[r][0] = vfmaq_n_f32(c[r][0], k0, a);
                    c[r][1] = vfmaq_n_f32(c[r][1], k1, a);
                    c[r][2] = vfmaq_n_f32(c[r][2], k2, a);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                for (int v = 0; v < 3; v++)
                    vst1q_f32(S + r * lds + p * PX_ATTN_KP + half + 4 * v, vmulq_n_f32(c[r][v], scale));
        }
}

/* As attn_pv_avx2, each 24-column panel of V in two halves of 12 columns:
 * 4 rows x 3 vectors. */
static void attn_pv_neon(float *O, const float *alpha, const float *P, size_t ldp, const float *Vp, size_t vstride,
                         size_t nk, size_t dp)
{
    for (size_t c0 = 0; c0 < dp; c0 += PX_ATTN_KP, Vp += vstride)
        for (size_t half = 0; half < PX_ATTN_KP; half += 12) {
            V x[4][3];
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                for (int v = 0; v < 3; v++) x[r][v] = vmulq_n_f32(vld1q_f32(O + r * dp + c0 + half + 4 * v), alpha[r]);
            const float *vj = Vp + half;
            for (size_t j = 0; j < nk; j++, vj += PX_ATTN_KP) {
                V v0 = vld1q_f32(vj), v1 = vld1q_f32(vj + 4), v2 = vld1q_f32(vj + 8);
#pragma GCC unroll 4
                for (int r = 0; r < 4; r++) {
                    float a = P[r * ldp + j];
                    x[r][0] = vfmaq_n_f32(x[r][0], v0, a);
                    x[r][1] = vfmaq_n_f32(x[r][1], v1, a);
                    x[r][2] = vfmaq_n_f32(x[r][2], v2, a);
                }
            }
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++)
                for (int v = 0; v < 3; v++) vst1q_f32(O + r * dp + c0 + half + 4 * v, x[r][v]);
        }
}

void px_kernels_init_neon(px_kernels *k)
{
    k->attn_qk = attn_qk_neon;
    k->attn_pv = attn_pv_neon;
    k->gelu_tanh = gelu_tanh_neon;
    k->gelu_erf = gelu_erf_neon;
    k->silu = silu_neon;
    k->add = add_neon;
    k->mul = mul_neon;
    k->modulate = modulate_neon;
    k->layernorm = layernorm_neon;
    k->rmsnorm = rmsnorm_neon;
    k->softmax = softmax_neon;
    k->bf16_to_f32 = bf16_to_f32_neon;
    k->f16_to_f32 = f16_to_f32_neon;
    k->max = max_neon;
    k->exp_sum = exp_sum_neon;
    k->sum = sum_neon;
    k->sumsq_dev = sumsq_dev_neon;
    k->norm_affine = norm_affine_neon;
}
