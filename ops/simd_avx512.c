/* AVX-512 (F/BW/VL/DQ) row kernels, 16 floats per vector. Compiled in its own
 * convenience library with -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma
 * -mf16c; px_kernels_init_avx512 is only called after CPU detection, on top
 * of the AVX2 table. The algorithms, operation order and polynomial
 * coefficients are those of ops/simd_avx2.c (read that file first); only the
 * vector width and the remainder handling differ: remainders use masked
 * loads and stores (no access past n, masked-off lanes never fault), so an
 * element's result never depends on its position in the row. */
#include "ops.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>

/* ---- polynomial coefficients (tools/gen_simd_poly.py) ------------------- */

static const float exp_c[6] = { 0.000198909809f, 0.00139336416f, 0.00833331048f, 0.0416664667f, 0.166666672f, 0.5f };
static const float tanh_c[5] = { -0.00609671418f, 0.0209971797f, -0.0538509078f, 0.133327693f, -0.333333284f };
static const float erf_small_c[7] = { 7.87587487e-05f, -0.00080168643f, 0.00518908724f, -0.0268542115f, 0.112835944f, -0.37612626f, 0.128379166f };
static const float erf_large_c[10] = { -7.58268186e-08f, 3.32168452e-06f, -6.22983498e-05f, 0.000685836654f, -0.00506494706f, 0.0270995237f, -0.111055017f, -0.630953014f, -1.1306752f, 0.000416329218f };

#define V __m512
#define SET1 _mm512_set1_ps

/* lanes [0, r) of a 16-lane vector */
static inline __mmask16 tail_mask(size_t r) { return (__mmask16)((1u << r) - 1u); }

static inline __attribute__((always_inline)) V poly(V x, const float *c, int n)
{
    V p = SET1(c[0]);
    /* fully unrolled: n is a constant at every call; a loop here costs 3x in exp */
#pragma GCC unroll 16
    for (int i = 1; i < n; i++) p = _mm512_fmadd_ps(p, x, SET1(c[i]));
    return p;
}

/* exp(x), as exp8 in simd_avx2.c, except the last step: exp8 multiplies by
 * 2^n as two exact factors 2^(n/2) 2^(n - n/2) so that a result in the
 * subnormal range is rounded once; vscalefps computes y 2^n with that one
 * correct rounding (and +inf on overflow) in a single instruction instead of
 * nine, so the results are the same bits. */
static inline V exp16(V x)
{
    x = _mm512_max_ps(SET1(-110.0f), x); /* max/min return the 2nd operand for NaN */
    x = _mm512_min_ps(SET1(89.0f), x);
    V n = _mm512_roundscale_ps(_mm512_mul_ps(x, SET1(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    V r = _mm512_fnmadd_ps(n, SET1(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, SET1(1.42860682030941723e-6f), r);
    V g = poly(r, exp_c, 6);
    V y = _mm512_add_ps(_mm512_fmadd_ps(g, _mm512_mul_ps(r, r), r), SET1(1.0f));
    return _mm512_scalef_ps(y, n);
}

static inline V sign_of(V x)
{
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32((int)0x80000000u)));
}
static inline V abs_of(V x)
{
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
static inline V or_ps(V a, V b)
{
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b)));
}

static inline V tanh16(V u)
{
    V a = abs_of(u);
    V s = _mm512_mul_ps(u, u);
    V t_small = _mm512_fmadd_ps(_mm512_mul_ps(u, s), poly(s, tanh_c, 5), u);
    V e = exp16(_mm512_add_ps(a, a));
    V t_large = _mm512_sub_ps(SET1(1.0f), _mm512_div_ps(SET1(2.0f), _mm512_add_ps(e, SET1(1.0f))));
    t_large = or_ps(t_large, sign_of(u));
    /* NaN compares false: the large branch, which propagates it */
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, SET1(0.625f), _CMP_LT_OQ), t_large, t_small);
}

static inline V erf16(V z)
{
    V a = abs_of(z);
    V e_small = _mm512_fmadd_ps(z, poly(_mm512_mul_ps(z, z), erf_small_c, 7), z);
    V q = poly(_mm512_min_ps(SET1(4.0f), a), erf_large_c, 10);
    V e_large = or_ps(_mm512_sub_ps(SET1(1.0f), exp16(q)), sign_of(z));
    return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(a, SET1(1.0f), _CMP_LT_OQ), e_large, e_small);
}

/* y = f(x) over a row: full vectors, then one masked vector */
#define MAP1(fname, body)                                                     \
    static inline V fname##_v(V x) { body }                                   \
    static void fname(float *y, const float *x, size_t n)                     \
    {                                                                         \
        size_t i = 0;                                                         \
        for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, fname##_v(_mm512_loadu_ps(x + i))); \
        if (i < n) {                                                          \
            __mmask16 m = tail_mask(n - i);                                   \
            _mm512_mask_storeu_ps(y + i, m, fname##_v(_mm512_maskz_loadu_ps(m, x + i))); \
        }                                                                     \
    }

MAP1(gelu_tanh_avx512, {
    V inner = _mm512_mul_ps(SET1(0.7978845608028654f),
                            _mm512_add_ps(x, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(SET1(0.044715f), x), x), x)));
    return _mm512_mul_ps(_mm512_mul_ps(SET1(0.5f), x), _mm512_add_ps(SET1(1.0f), tanh16(inner)));
})

MAP1(gelu_erf_avx512, {
    V e = erf16(_mm512_mul_ps(x, SET1(0.70710678118654752f)));
    return _mm512_mul_ps(_mm512_mul_ps(SET1(0.5f), x), _mm512_add_ps(SET1(1.0f), e));
})

MAP1(silu_avx512, {
    V e = exp16(_mm512_xor_ps(x, SET1(-0.0f)));
    return _mm512_div_ps(x, _mm512_add_ps(SET1(1.0f), e));
})

/* ---- plain arithmetic (bit-identical to the reference) ------------------ */

static void add_avx512(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] + b[i];
}

static void mul_avx512(float *y, const float *a, const float *b, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i)));
    for (; i < n; i++) y[i] = a[i] * b[i];
}

static void modulate_avx512(float *y, const float *x, const float *shift, const float *scale, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V s = _mm512_add_ps(SET1(1.0f), _mm512_loadu_ps(scale + i));
        _mm512_storeu_ps(y + i, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(x + i), s),
                                              _mm512_loadu_ps(shift + i)));
    }
    for (; i < n; i++) y[i] = x[i] * (1.0f + scale[i]) + shift[i];
}

/* ---- reductions --------------------------------------------------------- */

static inline __m512d lo_pd(V v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); }
static inline __m512d hi_pd(V v)
{
    return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}

static double sum_avx512(const float *x, size_t n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V v = _mm512_loadu_ps(x + i);
        a0 = _mm512_add_pd(a0, lo_pd(v));
        a1 = _mm512_add_pd(a1, hi_pd(v));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; i < n; i++) s += x[i];
    return s;
}

static double sumsq_dev_avx512(const float *x, double mean, size_t n)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), m = _mm512_set1_pd(mean);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V v = _mm512_loadu_ps(x + i);
        __m512d d0 = _mm512_sub_pd(lo_pd(v), m), d1 = _mm512_sub_pd(hi_pd(v), m);
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; i < n; i++) {
        double d = x[i] - mean;
        ss += d * d;
    }
    return ss;
}

static float max_avx512(const float *x, size_t n)
{
    V m = SET1(-INFINITY);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(_mm512_loadu_ps(x + i), m); /* NaN in x -> keeps m */
    float mx = _mm512_reduce_max_ps(m);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* 16 partial sums reduced exactly as simd_avx2.c's exp_sum does (lanes k and
 * k + 8, then the tree of its hsum_ps) */
static inline float hsum_as_avx2(V acc)
{
    __m256 s8 = _mm256_add_ps(_mm512_castps512_ps256(acc),
                              _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(acc), 1)));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(s8), _mm256_extractf128_ps(s8, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

/* Element i goes to lane i mod 16 in increasing i, then hsum_as_avx2: the
 * order simd_avx2.c uses with two 8-lane vectors, so the attention softmax
 * gives the same bits at both widths. */
static float exp_sum_avx512(float *y, const float *x, float c, size_t n)
{
    V cv = SET1(c), acc = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), cv));
        _mm512_storeu_ps(y + i, e);
        acc = _mm512_add_ps(acc, e);
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        V e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), cv));
        _mm512_mask_storeu_ps(y + i, m, e);
        acc = _mm512_mask_add_ps(acc, m, acc, e); /* only the live lanes */
    }
    return hsum_as_avx2(acc);
}

static void layernorm_avx512(float *y, const float *x, const float *w, const float *b, size_t n, float eps)
{
    double mean = sum_avx512(x, n) / (double)n;
    double ss = sumsq_dev_avx512(x, mean, n);
    float rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
    float m = (float)mean;
    V mv = SET1(m), rv = SET1(rstd);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V v = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv), rv);
        if (w) v = _mm512_mul_ps(v, _mm512_loadu_ps(w + i));
        if (b) v = _mm512_add_ps(v, _mm512_loadu_ps(b + i));
        _mm512_storeu_ps(y + i, v);
    }
    for (; i < n; i++) {
        float v = (x[i] - m) * rstd;
        if (w) v = v * w[i];
        if (b) v = v + b[i];
        y[i] = v;
    }
}

static void rmsnorm_avx512(float *y, const float *x, const float *w, size_t n, float eps)
{
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V v = _mm512_loadu_ps(x + i);
        __m512d d0 = lo_pd(v), d1 = hi_pd(v);
        a0 = _mm512_fmadd_pd(d0, d0, a0);
        a1 = _mm512_fmadd_pd(d1, d1, a1);
    }
    double ss = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    for (; i < n; i++) ss += (double)x[i] * x[i];
    float var = (float)(ss / (double)n);
    float r = (float)(1.0 / sqrt((double)(var + eps)));
    V rv = SET1(r);
    for (i = 0; i + 16 <= n; i += 16) {
        V v = _mm512_mul_ps(_mm512_loadu_ps(x + i), rv);
        if (w) v = _mm512_mul_ps(_mm512_loadu_ps(w + i), v);
        _mm512_storeu_ps(y + i, v);
    }
    for (; i < n; i++) y[i] = (w ? w[i] : 1.0f) * (x[i] * r);
}

static void softmax_avx512(float *x, size_t n)
{
    if (n == 0) return;
    float mx = max_avx512(x, n);
    V cv = SET1(mx);
    __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), cv));
        _mm512_storeu_ps(x + i, e);
        a0 = _mm512_add_pd(a0, lo_pd(e));
        a1 = _mm512_add_pd(a1, hi_pd(e));
    }
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        V e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, x + i), cv)));
        _mm512_mask_storeu_ps(x + i, m, e);
        a0 = _mm512_add_pd(a0, lo_pd(e)); /* dead lanes are 0 */
        a1 = _mm512_add_pd(a1, hi_pd(e));
    }
    double s = _mm512_reduce_add_pd(_mm512_add_pd(a0, a1));
    float inv = (float)(1.0 / s);
    V iv = SET1(inv);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), iv));
    for (; i < n; i++) x[i] *= inv;
}

static void norm_affine_avx512(float *y, const float *x, float mean, float rstd, float w, float b, size_t n)
{
    V mv = SET1(mean), rv = SET1(rstd), wv = SET1(w), bv = SET1(b);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        V v = _mm512_mul_ps(_mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(x + i), mv), rv), wv);
        _mm512_storeu_ps(y + i, _mm512_add_ps(v, bv));
    }
    for (; i < n; i++) y[i] = (x[i] - mean) * rstd * w + b;
}

/* ---- half-precision widening (exact) ------------------------------------ */

static void bf16_to_f32_avx512(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(x + i)));
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(u, 16)));
    }
    for (; i < n; i++) {
        uint32_t u = (uint32_t)x[i] << 16;
        memcpy(y + i, &u, 4);
    }
}

/* vcvtph2ps quietens signalling NaNs; rebuild exponent-31 lanes from the bits
 * as the reference does (see simd_avx2.c). */
static inline V f16x16(__m256i h)
{
    V f = _mm512_cvtph_ps(h);
    __m512i u = _mm512_cvtepu16_epi32(h);
    __mmask16 special = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7c00)),
                                                 _mm512_set1_epi32(0x7c00));
    if (!special) return f;
    __m512i bits = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(u, _mm512_set1_epi32(0x8000)), 16),
                                   _mm512_or_si512(_mm512_set1_epi32(0x7f800000),
                                                   _mm512_slli_epi32(_mm512_and_si512(u, _mm512_set1_epi32(0x3ff)), 13)));
    return _mm512_mask_blend_ps(special, f, _mm512_castsi512_ps(bits));
}

static void f16_to_f32_avx512(float *y, const uint16_t *x, size_t n)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, f16x16(_mm256_loadu_si256((const __m256i *)(x + i))));
    if (i < n) {
        __mmask16 m = tail_mask(n - i);
        __m256i h = _mm256_maskz_loadu_epi16(m, x + i); /* AVX512BW + VL */
        _mm512_mask_storeu_ps(y + i, m, f16x16(h));
    }
}

/* ---- attention micro-kernels ------------------------------------------- */

/* Packing layout (px_kernels.attn_kp, attn_vp): K^T panels of 64 keys (4
 * vectors) and V panels of 16 columns (one vector), so a head of 72 is padded
 * to 80 columns in V only; the dot products run over the 72 dimensions. Every
 * element of S and O is the same chain of operations in the same order as in
 * the AVX2 kernels (a multiply-add per d in increasing d, resp. O * alpha then
 * a multiply-add per key in increasing j), only computed in other lanes, so
 * the results are the same bits. */
enum { ATTN_KP = 64, ATTN_VP = 16, PV_MAXV = 5 };

/* S = scale * Q K^T for 4 query rows and one 64-key panel at a time: 16
 * accumulators (4 rows x 4 vectors of keys); per dimension d, four loads of
 * the panel row and four broadcasts of q_r[d] feed 16 FMAs. */
static void attn_qk_avx512(float *S, size_t lds, const float *Q, const float *Kp, size_t dk, size_t np, float scale)
{
    const V vs = SET1(scale);
    for (size_t p = 0; p < np; p++) {
        const float *kp = Kp + p * dk * ATTN_KP;
        V c[4][4];
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) c[r][v] = _mm512_setzero_ps();
        for (size_t d = 0; d < dk; d++, kp += ATTN_KP) {
            V k[4];
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) k[v] = _mm512_loadu_ps(kp + 16 * v);
#pragma GCC unroll 4
            for (int r = 0; r < 4; r++) {
                V a = SET1(Q[(size_t)r * dk + d]);
#pragma GCC unroll 4
                for (int v = 0; v < 4; v++) c[r][v] = _mm512_fmadd_ps(a, k[v], c[r][v]);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) _mm512_storeu_ps(S + r * lds + p * ATTN_KP + 16 * v, _mm512_mul_ps(c[r][v], vs));
    }
}

/* O = O * alpha + P V for 4 rows and nv (<= 5) 16-column panels of V at once:
 * 4 x nv accumulators; per key j, nv loads (one per panel) and four broadcasts
 * of P[r][j] feed 4 nv FMAs. nv is a constant at every call (see below). */
static inline __attribute__((always_inline)) void pv_panels(float *O, const float *alpha, const float *P, size_t ldp,
                                                            const float *Vp, size_t vstride, size_t nk, size_t dv,
                                                            const int nv)
{
    V x[4][PV_MAXV];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        const V a = SET1(alpha[r]);
#pragma GCC unroll 5
        for (int v = 0; v < nv; v++) x[r][v] = _mm512_mul_ps(_mm512_loadu_ps(O + r * dv + 16 * v), a);
    }
    for (size_t j = 0; j < nk; j++) {
        V vj[PV_MAXV];
#pragma GCC unroll 5
        for (int v = 0; v < nv; v++) vj[v] = _mm512_loadu_ps(Vp + v * vstride + j * ATTN_VP);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const V a = SET1(P[r * ldp + j]);
#pragma GCC unroll 5
            for (int v = 0; v < nv; v++) x[r][v] = _mm512_fmadd_ps(a, vj[v], x[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)
#pragma GCC unroll 5
        for (int v = 0; v < nv; v++) _mm512_storeu_ps(O + r * dv + 16 * v, x[r][v]);
}

/* Columns in groups of up to 5 panels (80: a PixArt head of 72 in one pass,
 * T5's 64 in one pass of 4; 20 accumulators, 5 V loads and the broadcast fit
 * in the 32 registers). */
static void attn_pv_avx512(float *O, const float *alpha, const float *P, size_t ldp, const float *Vp, size_t vstride,
                           size_t nk, size_t dv)
{
    for (size_t c = 0; c < dv; c += PV_MAXV * ATTN_VP) {
        const size_t left = (dv - c) / ATTN_VP;
        const float *vp = Vp + c / ATTN_VP * vstride;
        switch (left < PV_MAXV ? left : PV_MAXV) {
        case 1: pv_panels(O + c, alpha, P, ldp, vp, vstride, nk, dv, 1); break;
        case 2: pv_panels(O + c, alpha, P, ldp, vp, vstride, nk, dv, 2); break;
        case 3: pv_panels(O + c, alpha, P, ldp, vp, vstride, nk, dv, 3); break;
        case 4: pv_panels(O + c, alpha, P, ldp, vp, vstride, nk, dv, 4); break;
        default: pv_panels(O + c, alpha, P, ldp, vp, vstride, nk, dv, 5); break;
        }
    }
}

void px_kernels_init_avx512(px_kernels *k)
{
    k->gelu_tanh = gelu_tanh_avx512;
    k->gelu_erf = gelu_erf_avx512;
    k->silu = silu_avx512;
    k->add = add_avx512;
    k->mul = mul_avx512;
    k->modulate = modulate_avx512;
    k->layernorm = layernorm_avx512;
    k->rmsnorm = rmsnorm_avx512;
    k->softmax = softmax_avx512;
    k->bf16_to_f32 = bf16_to_f32_avx512;
    k->f16_to_f32 = f16_to_f32_avx512;
    k->max = max_avx512;
    k->exp_sum = exp_sum_avx512;
    k->sum = sum_avx512;
    k->sumsq_dev = sumsq_dev_avx512;
    k->norm_affine = norm_affine_avx512;
    k->attn_qk = attn_qk_avx512;
    k->attn_pv = attn_pv_avx512;
    k->attn_kp = ATTN_KP;
    k->attn_vp = ATTN_VP;
}
