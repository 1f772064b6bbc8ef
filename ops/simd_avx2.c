/* AVX2 + FMA + F16C row kernels (8 floats per vector). Compiled in its own
 * convenience library with -mavx2 -mfma -mf16c; px_kernels_init_avx2 is only
 * called after CPU detection. Every kernel computes what its reference in
 * ops/ref.c computes, in the same order of float operations where the
 * reference is plain arithmetic (bit-identical), and to a few ulp where it
 * calls libm (exp / tanh / erf are polynomial approximations, coefficients
 * from tools/gen_simd_poly.py, errors measured in doc/performance.md).
 *
 * Remainders: arithmetic kernels finish with a scalar tail doing the same
 * operations; the transcendental kernels run the last n % 8 elements through
 * the same vector code on a zero-padded stack copy, so an element's result
 * never depends on its position in the row. Nothing reads or writes past n. */
#include "ops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- polynomial coefficients (tools/gen_simd_poly.py) ------------------- */

/* exp_c: g(r) = (exp(r) - 1 - r) / r^2 on [-0.346574, 0.346574], degree 5, fit error 1.4e-09 */
static const float exp_c[6] = { 0.000198909809f, 0.00139336416f, 0.00833331048f, 0.0416664667f, 0.166666672f, 0.5f };
/* tanh_c: h(s) = (tanh(sqrt s) - sqrt s) / s^1.5 on [0, 0.390625], degree 4, fit error 4.3e-08 */
static const float tanh_c[5] = { -0.00609671418f, 0.0209971797f, -0.0538509078f, 0.133327693f, -0.333333284f };
/* erf_small_c: T(s) = erf(sqrt s) / sqrt s - 1 on [0, 1], degree 6, fit error 1.2e-09 */
static const float erf_small_c[7] = { 7.87587487e-05f, -0.00080168643f, 0.00518908724f, -0.0268542115f, 0.112835944f, -0.37612626f, 0.128379166f };
/* erf_large_c: Q(z) = log(erfc(z)) on [1, 4], degree 9, fit error 8e-09 */
static const float erf_large_c[10] = { -7.58268186e-08f, 3.32168452e-06f, -6.22983498e-05f, 0.000685836654f, -0.00506494706f, 0.0270995237f, -0.111055017f, -0.630953014f, -1.1306752f, 0.000416329218f };

#define V __m256
#define SET1 _mm256_set1_ps

static inline __attribute__((always_inline)) V poly(V x, const float *c, int n)
{
    V p = SET1(c[0]);
    /* fully unrolled: n is a constant at every call; a loop here costs 3x in exp */
#pragma GCC unroll 16
    for (int i = 1; i < n; i++) p = _mm256_fmadd_ps(p, x, SET1(c[i]));
    return p;
}

/* exp(x) to about 1 ulp: x = n ln2 + r, exp(r) = 1 + r + r^2 g(r), times 2^n
 * applied as two factors 2^(n/2) 2^(n - n/2) so that results in the
 * subnormal range round once and overflow gives +inf. x is clamped to
 * [-110, 89] first (exp is 0 / inf beyond); NaN propagates. */
static inline V exp8(V x)
{
    x = _mm256_max_ps(SET1(-110.0f), x); /* max/min return the 2nd operand for NaN */
    x = _mm256_min_ps(SET1(89.0f), x);
    V n = _mm256_round_ps(_mm256_mul_ps(x, SET1(1.44269504088896341f)),
                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm256_fnmadd_ps(n, SET1(0.693145751953125f), x);    /* ln2 high bits (exact n*hi) */
    r = _mm256_fnmadd_ps(n, SET1(1.42860682030941723e-6f), r); /* ln2 - hi */
    V g = poly(r, exp_c, 6);
    V y = _mm256_add_ps(_mm256_fmadd_ps(g, _mm256_mul_ps(r, r), r), SET1(1.0f));
    __m256i ni = _mm256_cvtps_epi32(n);
    __m256i n1 = _mm256_srai_epi32(ni, 1), n2 = _mm256_sub_epi32(ni, n1);
    __m256i bias = _mm256_set1_epi32(127);
    V s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
    V s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(y, s1), s2);
}

static inline V sign_of(V x) { return _mm256_and_ps(x, SET1(-0.0f)); }
static inline V abs_of(V x) { return _mm256_andnot_ps(SET1(-0.0f), x); }

/* tanh(u): u + u^3 h(u^2) below 0.625, else sign(u) (1 - 2 / (exp(2|u|) + 1)). */
static inline V tanh8(V u)
{
    V a = abs_of(u);
    V s = _mm256_mul_ps(u, u);
    V t_small = _mm256_fmadd_ps(_mm256_mul_ps(u, s), poly(s, tanh_c, 5), u);
    V e = exp8(_mm256_add_ps(a, a));
    V t_large = _mm256_sub_ps(SET1(1.0f), _mm256_div_ps(SET1(2.0f), _mm256_add_ps(e, SET1(1.0f))));
    t_large = _mm256_or_ps(t_large, sign_of(u));
    return _mm256_blendv_ps(t_large, t_small, _mm256_cmp_ps(a, SET1(0.625f), _CMP_LT_OQ));
}

/* erf(z): z + z T(z^2) below 1, else sign(z) (1 - exp(Q(min(|z|, 4)))). */
static inline V erf8(V z)
{
    V a = abs_of(z);
    V e_small = _mm256_fmadd_ps(z, poly(_mm256_mul_ps(z, z), erf_small_c, 7), z);
    V q = poly(_mm256_min_ps(SET1(4.0f), a), erf_large_c, 10);
    V e_large = _mm256_or_ps(_mm256_sub_ps(SET1(1.0f), exp8(q)), sign_of(z));
    return _mm256_blendv_ps(e_large, e_small, _mm256_cmp_ps(a, SET1(1.0f), _CMP_LT_OQ));
}

/* y = f(x) over a row: full vectors, then the remainder through a padded copy. */
#define MAP1(fname, body)                                                     \
    static inline V fname##_v(V x) { body }                                   \
    static void fname(float *y, const float *x, size_t n)                     \
    {                                                                         \
        size_t i = 0;                                                         \
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, fname##_v(_mm256_loadu_ps(x + i))); \
        if (i < n) {                                                          \
            float buf[8] = { 0 };                                             \
            memcpy(buf, x + i, (n - i) * sizeof(float));                      \
            _mm256_storeu_ps(buf, fname##_v(_mm256_loadu_ps(buf)));          \
            memcpy(y + i, buf, (n - i) * sizeof(float));                      \
        }                                                                     \
    }

/* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), same operation order as the reference */
MAP1(gelu_tanh_avx2, {
    V inner = _mm256_mul_ps(SET1(0.7978845608028654f),
                            _mm256_add_ps(x, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(SET1(0.044715f), x), x), x)));
    return _mm256_mul_ps(_mm256_mul_ps(SET1(0.5f), x), _mm256_add_ps(SET1(1.0f), tanh8(inner)));
})

/* 0.5 x (1 + erf(x / sqrt 2)) */
MAP1(gelu_erf_avx2, {
    V e = erf8(_mm256_mul_ps(x, SET1(0.70710678118654752f)));
    return _mm256_mul_ps(_mm256_mul_ps(SET1(0.5f), x), _mm256_add_ps(SET1(1.0f), e));
})

/* x / (1 + exp(-x)) */
MAP1(silu_avx2, {
    V e = exp8(_mm256_xor_ps(x, SET1(-0.0f)));
    return _mm256_div_ps(x, _mm256_add_ps(SET1(1.0f), e));
})

/* ---- plain arithmetic (bit-identical to the reference) ------------------ */

static void add_avx2(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_avx2(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] * b[i];
}

static void modulate_avx2(float *y, const float *x, const float *shift, const float *scale, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V s = _mm256_add_ps(SET1(1.0f), _mm256_loadu_ps(scale + i));
        _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), s),
                                              _mm256_loadu_ps(shift + i)));
    }
    for (; i < n; i++) y[i] = x[i] * (1.0f + scale[i]) + shift[i];
}

/* ---- reductions --------------------------------------------------------- */

static inline double hsum_pd(__m256d v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

static inline float hsum_ps(V v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

static inline float hmax_ps(V v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}

/* sum of x in double (4 double accumulators per 8 floats, then a scalar tail) */
static double sum_avx2(const float *x, size_t n)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V v = _mm256_loadu_ps(x + i);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    }
    double s = hsum_pd(_mm256_add_pd(a0, a1));
    for (; i < n; i++) s += x[i];
    return s;
}

static double sumsq_dev_avx2(const float *x, double mean, size_t n)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd(), m = _mm256_set1_pd(mean);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V v = _mm256_loadu_ps(x + i);
        __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), m);
        __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)), m);
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
    }
    double ss = hsum_pd(_mm256_add_pd(a0, a1));
    for (; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    return ss;
}

static float max_avx2(const float *x, size_t n)
{
    V m = SET1(-INFINITY);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) m = _mm256_max_ps(_mm256_loadu_ps(x + i), m); /* NaN in x -> keeps m */
    float mx = hmax_ps(m);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* The sum runs in an order that does not depend on the vector width, so that
 * AVX-512 (simd_avx512.c) gives the same bits: element i goes to partial sum
 * i mod 16 (here two vectors, lo for 0..7 and hi for 8..15), in increasing i;
 * then lo + hi and the 8-lane tree of hsum_ps. */
static float exp_sum_avx2(float *y, const float *x, float c, size_t n)
{
    V cv = SET1(c), lo = _mm256_setzero_ps(), hi = lo;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), cv));
        V e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), cv));
        _mm256_storeu_ps(y + i, e0);
        _mm256_storeu_ps(y + i + 8, e1);
        lo = _mm256_add_ps(lo, e0);
        hi = _mm256_add_ps(hi, e1);
    }
    if (i < n) {
        float buf[16] = { 0 };
        size_t r = n - i;
        memcpy(buf, x + i, r * sizeof(float));
        V e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), cv));
        V e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(buf + 8), cv));
        /* only the r live lanes count towards the sum (adding +0 to a
         * partial sum >= +0 leaves it unchanged, like a masked add) */
        __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        V live0 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)r), lane));
        V live1 = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32((int)r - 8), lane));
        lo = _mm256_add_ps(lo, _mm256_and_ps(e0, live0));
        hi = _mm256_add_ps(hi, _mm256_and_ps(e1, live1));
        _mm256_storeu_ps(buf, e0);
        _mm256_storeu_ps(buf + 8, e1);
        memcpy(y + i, buf, r * sizeof(float));
    }
    return hsum_ps(_mm256_add_ps(lo, hi));
}

static void layernorm_avx2(float *y, const float *x, const float *w, const float *b, size_t n, float eps)
{
    double mean = sum_avx2(x, n) / (double)n;
    double ss = sumsq_dev_avx2(x, mean, n);
    float rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
    float m = (float)mean;
    V mv = SET1(m), rv = SET1(rstd);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V v = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), rv);
        if (w) v = _mm256_mul_ps(v, _mm256_loadu_ps(w + i));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

static void rmsnorm_avx2(float *y, const float *x, const float *w, size_t n, float eps)
{
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V v = _mm256_loadu_ps(x + i);
        __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        a0 = _mm256_fmadd_pd(d0, d0, a0);
        a1 = _mm256_fmadd_pd(d1, d1, a1);
    }
    double ss = hsum_pd(_mm256_add_pd(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / (double)n);
    float r = (float)(1.0 / sqrt((double)(var + eps)));
    V rv = SET1(r);
    for (i = 0; i + 8 <= n; i += 8) {
        V v = _mm256_mul_ps(_mm256_loadu_ps(x + i), rv);
        if (w) v = _mm256_mul_ps(_mm256_loadu_ps(w + i), v);
        _mm256_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = (w ? w[i] : 1.0f) * (x[i] * r);
}

static void softmax_avx2(float *x, size_t n)
{
    if (n == 0) return;
    float mx = max_avx2(x, n);
    /* the reference sums exp in double */
    V cv = SET1(mx);
    __m256d a0 = _mm256_setzero_pd(), a1 = _mm256_setzero_pd();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V e = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + i), cv));
        _mm256_storeu_ps(x + i, e);
        a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
        a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
    }
    double s = hsum_pd(_mm256_add_pd(a0, a1));
    if (i < n) {
        float buf[8] = { 0 };
        memcpy(buf, x + i, (n - i) * sizeof(float));
        _mm256_storeu_ps(buf, exp8(_mm256_sub_ps(_mm256_loadu_ps(buf), cv)));
        for (size_t j = 0; j < n - i; j++) s += buf[j];
        memcpy(x + i, buf, (n - i) * sizeof(float));
    }
    float inv = (float)(1.0 / s);
    V iv = SET1(inv);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), iv));
    for (; i < n; i++) x[i] *= inv;
}

static void norm_affine_avx2(float *y, const float *x, float mean, float rstd, float w, float b, size_t n)
{
    V mv = SET1(mean), rv = SET1(rstd), wv = SET1(w), bv = SET1(b);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        V v = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), rv), wv);
        _mm256_storeu_ps(y + i, _mm256_add_ps(v, bv));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w + b;
}

/* ---- half-precision widening (exact) ------------------------------------ */

static void bf16_to_f32_avx2(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)(x + i));
        __m256i lo = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(h));
        __m256i hi = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(h, 1));
        _mm256_storeu_ps(y + i, _mm256_castsi256_ps(_mm256_slli_epi32(lo, 16)));
        _mm256_storeu_ps(y + i + 8, _mm256_castsi256_ps(_mm256_slli_epi32(hi, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(y + i, &u, 4);
    }
}

/* F16C converts exactly, except that it quietens signalling NaNs; the
 * reference keeps their payload, so lanes with exponent 31 (inf/NaN) are
 * rebuilt from the bits: sign | 0x7f800000 | mantissa << 13. */
static inline V f16x8(__m128i h)
{
    V f = _mm256_cvtph_ps(h);
    __m256i u = _mm256_cvtepu16_epi32(h);
    __m256i e = _mm256_and_si256(u, _mm256_set1_epi32(0x7c00));
    __m256i special = _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0x7c00));
    if (_mm256_testz_si256(special, special)) return f;
    __m256i bits = _mm256_or_si256(_mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x8000)), 16),
                                   _mm256_or_si256(_mm256_set1_epi32(0x7f800000),
                                                   _mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x3ff)), 13)));
    return _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(special));
}

static void f16_to_f32_avx2(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f16x8(_mm_loadu_si128((const __m128i *)(x + i))));
    if (i < n) {
        uint16_t hb[8] = { 0 };
        float fb[8];
        memcpy(hb, x + i, (n - i) * sizeof(uint16_t));
        _mm256_storeu_ps(fb, f16x8(_mm_loadu_si128((const __m128i *)hb)));
        memcpy(y + i, fb, (n - i) * sizeof(float));
    }
}

/* ---- attention micro-kernels ------------------------------------------- */

/* S = scale * Q K^T for 4 query rows and one 24-key panel at a time: 12
 * accumulators (4 rows x 3 vectors of keys); per dimension d, three loads of
 * the panel row and four broadcasts of q_r[d] feed 12 FMAs. */
static void attn_qk_avx2(float *S, size_t lds, const float *Q, const float *Kp, size_t dk, size_t np, float scale)
{
    const V vs = SET1(scale);
    const float *q0 = Q, *q1 = Q + dk, *q2 = Q + 2 * dk, *q3 = Q + 3 * dk;
    for (size_t p = 0; p < np; p++) {
        const float *kp = Kp + p * dk * PX_ATTN_KP;
        V c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
        V c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
        for (size_t d = 0; d < dk; d++, kp += PX_ATTN_KP) {
            V k0 = _mm256_loadu_ps(kp), k1 = _mm256_loadu_ps(kp + 8), k2 = _mm256_loadu_ps(kp + 16);
            V a = _mm256_broadcast_ss(q0 + d);
            c00 = _mm256_fmadd_ps(a, k0, c00);
            c01 = _mm256_fmadd_ps(a, k1, c01);
            c02 = _mm256_fmadd_ps(a, k2, c02);
            a = _mm256_broadcast_ss(q1 + d);
            c10 = _mm256_fmadd_ps(a, k0, c10);
            c11 = _mm256_fmadd_ps(a, k1, c11);
            c12 = _mm256_fmadd_ps(a, k2, c12);
            a = _mm256_broadcast_ss(q2 + d);
            c20 = _mm256_fmadd_ps(a, k0, c20);
            c21 = _mm256_fmadd_ps(a, k1, c21);
            c22 = _mm256_fmadd_ps(a, k2, c22);
            a = _mm256_broadcast_ss(q3 + d);
            c30 = _mm256_fmadd_ps(a, k0, c30);
            c31 = _mm256_fmadd_ps(a, k1, c31);
            c32 = _mm256_fmadd_ps(a, k2, c32);
        }
        float *s0 = S + p * PX_ATTN_KP, *s1 = s0 + lds, *s2 = s1 + lds, *s3 = s2 + lds;
        _mm256_storeu_ps(s0, _mm256_mul_ps(c00, vs));
        _mm256_storeu_ps(s0 + 8, _mm256_mul_ps(c01, vs));
        _mm256_storeu_ps(s0 + 16, _mm256_mul_ps(c02, vs));
        _mm256_storeu_ps(s1, _mm256_mul_ps(c10, vs));
        _mm256_storeu_ps(s1 + 8, _mm256_mul_ps(c11, vs));
        _mm256_storeu_ps(s1 + 16, _mm256_mul_ps(c12, vs));
        _mm256_storeu_ps(s2, _mm256_mul_ps(c20, vs));
        _mm256_storeu_ps(s2 + 8, _mm256_mul_ps(c21, vs));
        _mm256_storeu_ps(s2 + 16, _mm256_mul_ps(c22, vs));
        _mm256_storeu_ps(s3, _mm256_mul_ps(c30, vs));
        _mm256_storeu_ps(s3 + 8, _mm256_mul_ps(c31, vs));
        _mm256_storeu_ps(s3 + 16, _mm256_mul_ps(c32, vs));
    }
}

/* O = O * alpha + P V for 4 rows, one 24-column panel of V at a time: 12
 * accumulators (4 rows x 3 vectors of columns); per key j, three loads of the
 * panel row and four broadcasts of P[r][j] feed 12 FMAs. */
static void attn_pv_avx2(float *O, const float *alpha, const float *P, size_t ldp, const float *Vp, size_t vstride,
                         size_t nk, size_t dv)
{
    const float *p0 = P, *p1 = P + ldp, *p2 = P + 2 * ldp, *p3 = P + 3 * ldp;
    for (size_t c = 0; c < dv; c += PX_ATTN_KP, Vp += vstride) {
        float *o0 = O + c, *o1 = o0 + dv, *o2 = o1 + dv, *o3 = o2 + dv;
        V a = SET1(alpha[0]);
        V x00 = _mm256_mul_ps(_mm256_loadu_ps(o0), a);
        V x01 = _mm256_mul_ps(_mm256_loadu_ps(o0 + 8), a);
        V x02 = _mm256_mul_ps(_mm256_loadu_ps(o0 + 16), a);
        a = SET1(alpha[1]);
        V x10 = _mm256_mul_ps(_mm256_loadu_ps(o1), a);
        V x11 = _mm256_mul_ps(_mm256_loadu_ps(o1 + 8), a);
        V x12 = _mm256_mul_ps(_mm256_loadu_ps(o1 + 16), a);
        a = SET1(alpha[2]);
        V x20 = _mm256_mul_ps(_mm256_loadu_ps(o2), a);
        V x21 = _mm256_mul_ps(_mm256_loadu_ps(o2 + 8), a);
        V x22 = _mm256_mul_ps(_mm256_loadu_ps(o2 + 16), a);
        a = SET1(alpha[3]);
        V x30 = _mm256_mul_ps(_mm256_loadu_ps(o3), a);
        V x31 = _mm256_mul_ps(_mm256_loadu_ps(o3 + 8), a);
        V x32 = _mm256_mul_ps(_mm256_loadu_ps(o3 + 16), a);
        const float *vj = Vp;
        for (size_t j = 0; j < nk; j++, vj += PX_ATTN_KP) {
            V v0 = _mm256_loadu_ps(vj), v1 = _mm256_loadu_ps(vj + 8), v2 = _mm256_loadu_ps(vj + 16);
            a = _mm256_broadcast_ss(p0 + j);
            x00 = _mm256_fmadd_ps(a, v0, x00);
            x01 = _mm256_fmadd_ps(a, v1, x01);
            x02 = _mm256_fmadd_ps(a, v2, x02);
            a = _mm256_broadcast_ss(p1 + j);
            x10 = _mm256_fmadd_ps(a, v0, x10);
            x11 = _mm256_fmadd_ps(a, v1, x11);
            x12 = _mm256_fmadd_ps(a, v2, x12);
            a = _mm256_broadcast_ss(p2 + j);
            x20 = _mm256_fmadd_ps(a, v0, x20);
            x21 = _mm256_fmadd_ps(a, v1, x21);
            x22 = _mm256_fmadd_ps(a, v2, x22);
            a = _mm256_broadcast_ss(p3 + j);
            x30 = _mm256_fmadd_ps(a, v0, x30);
            x31 = _mm256_fmadd_ps(a, v1, x31);
            x32 = _mm256_fmadd_ps(a, v2, x32);
        }
        _mm256_storeu_ps(o0, x00); _mm256_storeu_ps(o0 + 8, x01); _mm256_storeu_ps(o0 + 16, x02);
        _mm256_storeu_ps(o1, x10); _mm256_storeu_ps(o1 + 8, x11); _mm256_storeu_ps(o1 + 16, x12);
        _mm256_storeu_ps(o2, x20); _mm256_storeu_ps(o2 + 8, x21); _mm256_storeu_ps(o2 + 16, x22);
        _mm256_storeu_ps(o3, x30); _mm256_storeu_ps(o3 + 8, x31); _mm256_storeu_ps(o3 + 16, x32);
    }
}

void px_kernels_init_avx2(px_kernels *k)
{
    k->attn_qk = attn_qk_avx2;
    k->attn_pv = attn_pv_avx2;
    k->gelu_tanh = gelu_tanh_avx2;
    k->gelu_erf = gelu_erf_avx2;
    k->silu = silu_avx2;
    k->add = add_avx2;
    k->mul = mul_avx2;
    k->modulate = modulate_avx2;
    k->layernorm = layernorm_avx2;
    k->rmsnorm = rmsnorm_avx2;
    k->softmax = softmax_avx2;
    k->bf16_to_f32 = bf16_to_f32_avx2;
    k->f16_to_f32 = f16_to_f32_avx2;
    k->max = max_avx2;
    k->exp_sum = exp_sum_avx2;
    k->sum = sum_avx2;
    k->sumsq_dev = sumsq_dev_avx2;
    k->norm_affine = norm_affine_avx2;
}
