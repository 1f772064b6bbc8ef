/* AVX2 + FMA + F16C pieces of the blocked GEMM in ops/gemm_blocked.c: the
 * 6x16 micro-kernel and the packing routines for 6 x 16 and for the AVX-512
 * kernel's 12 x 32 tile (the weight micro-panels widen BF16/F16 to F32 while
 * they are packed). Compiled into libpx_avx2.la with
 * -mavx2 -mfma -mf16c; only reached after CPU detection (px_gemm_kernels_for).
 *
 * Bit-identical to the scalar versions in ops/gemm.c: every output element
 * is one fused multiply-add chain over k in increasing order, started from
 * zero, then added to C (or to the bias) exactly as the scalar kernel does. */
#include "gemm_internal.h"

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define V __m256

/* ---- micro-kernel ------------------------------------------------------ */

/* c (6 x 16, row stride ldc) op= a (kc x 6 packed) @ b (kc x 16 packed);
 * see px_gemm_kernel in gemm_internal.h for `mode`. */
static void kernel_6x16_avx2(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                             const float *bias, int mode)
{
    V c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
    V c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    V c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
    V c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    V c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
    V c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    /* the C tile is needed only after the k loop: start fetching it now */
    for (int i = 0; i < PX_GEMM_MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 15), _MM_HINT_T0);
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        V b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
        V a0 = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(a0, b0, c00);
        c01 = _mm256_fmadd_ps(a0, b1, c01);
        V a1 = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(a1, b0, c10);
        c11 = _mm256_fmadd_ps(a1, b1, c11);
        V a2 = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(a2, b0, c20);
        c21 = _mm256_fmadd_ps(a2, b1, c21);
        V a3 = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(a3, b0, c30);
        c31 = _mm256_fmadd_ps(a3, b1, c31);
        V a4 = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(a4, b0, c40);
        c41 = _mm256_fmadd_ps(a4, b1, c41);
        V a5 = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(a5, b0, c50);
        c51 = _mm256_fmadd_ps(a5, b1, c51);
        a += PX_GEMM_MR;
        b += PX_GEMM_NR;
    }
    V acc[PX_GEMM_MR][2] = { { c00, c01 }, { c10, c11 }, { c20, c21 },
                             { c30, c31 }, { c40, c41 }, { c50, c51 } };
    if (mode == PX_GEMM_STORE) {
        for (int i = 0; i < PX_GEMM_MR; i++) {
            _mm256_storeu_ps(c + i * ldc, acc[i][0]);
            _mm256_storeu_ps(c + i * ldc + 8, acc[i][1]);
        }
    } else if (mode == PX_GEMM_ROW_BIAS) {
        for (int i = 0; i < PX_GEMM_MR; i++) {
            V bi = _mm256_broadcast_ss(bias + i);
            _mm256_storeu_ps(c + i * ldc, _mm256_add_ps(bi, acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_add_ps(bi, acc[i][1]));
        }
    } else {
        /* PX_GEMM_BIAS: bias + acc; PX_GEMM_ACCUMULATE: c + acc */
        for (int i = 0; i < PX_GEMM_MR; i++) {
            const float *base = mode == PX_GEMM_BIAS ? bias : c + i * ldc;
            _mm256_storeu_ps(c + i * ldc, _mm256_add_ps(_mm256_loadu_ps(base), acc[i][0]));
            _mm256_storeu_ps(c + i * ldc + 8, _mm256_add_ps(_mm256_loadu_ps(base + 8), acc[i][1]));
        }
    }
}

/* ---- packing ------------------------------------------------------------ */

/* r[i] (row i, 8 k's) -> r[k] (8 rows at one k) */
static inline void transpose8(V r[8])
{
    V t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    V t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    V t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    V t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    V u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    V u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    V u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    V u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

static inline V bf16x8(const uint16_t *p)
{
    __m256i u = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(u, 16));
}

/* exact F16 -> F32 (F16C quietens signalling NaNs; rebuilt from the bits
 * like ops/simd_avx2.c so the widening equals tensor/half.h's) */
static inline V f16x8(const uint16_t *p)
{
    __m128i h = _mm_loadu_si128((const __m128i *)p);
    V f = _mm256_cvtph_ps(h);
    __m256i u = _mm256_cvtepu16_epi32(h);
    __m256i e = _mm256_and_si256(u, _mm256_set1_epi32(0x7c00));
    __m256i special = _mm256_cmpeq_epi32(e, _mm256_set1_epi32(0x7c00));
    if (_mm256_testz_si256(special, special)) return f;
    __m256i bits = _mm256_or_si256(
        _mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x8000)), 16),
        _mm256_or_si256(_mm256_set1_epi32(0x7f800000),
                        _mm256_slli_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x3ff)), 13)));
    return _mm256_blendv_ps(f, _mm256_castsi256_ps(bits), _mm256_castsi256_ps(special));
}

static inline V f32x8(const float *p) { return _mm256_loadu_ps(p); }

/* One weight micro-panel of width NR (16 or 32): dst[k * NR + j] = w[j][k]
 * for k < kc, j < rows (rows <= NR rows of w, row stride ldw elements,
 * already offset to the first k), zero for j >= rows. 8 x 8 blocks widened
 * and transposed in registers; the last kc % 8 columns through the scalar
 * path. */
#define PACK_B(name, NR, type, load, widen1)                                                       \
    static void name(float *dst, const void *wv, int64_t ldw, int64_t rows, int64_t kc)            \
    {                                                                                              \
        const type *w = wv;                                                                        \
        int64_t k = 0;                                                                             \
        for (int h = 0; h < NR / 8; h++) {                                                         \
            const type *row[8];                                                                    \
            int n = 0;                                                                             \
            for (int i = 0; i < 8; i++)                                                            \
                if (h * 8 + i < rows) row[n++] = w + (h * 8 + i) * ldw;                            \
            for (k = 0; k + 8 <= kc; k += 8) {                                                     \
                V r[8];                                                                            \
                for (int i = 0; i < 8; i++) r[i] = i < n ? load(row[i] + k) : _mm256_setzero_ps(); \
                transpose8(r);                                                                     \
                for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (k + i) * NR + h * 8, r[i]);     \
            }                                                                                      \
        }                                                                                          \
        for (; k < kc; k++)                                                                        \
            for (int64_t j = 0; j < NR; j++) dst[k * NR + j] = j < rows ? widen1(w[j * ldw + k]) : 0.0f; \
    }

static inline float bf16_1(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static inline float f16_1(uint16_t h)
{
    uint16_t b[8] = { h };
    float f[8];
    _mm256_storeu_ps(f, f16x8(b));
    return f[0];
}

static inline float f32_1(float x) { return x; }

PACK_B(pack_b_bf16_16, 16, uint16_t, bf16x8, bf16_1)
PACK_B(pack_b_f16_16, 16, uint16_t, f16x8, f16_1)
PACK_B(pack_b_f32_16, 16, float, f32x8, f32_1)
PACK_B(pack_b_bf16_32, 32, uint16_t, bf16x8, bf16_1)
PACK_B(pack_b_f16_32, 32, uint16_t, f16x8, f16_1)
PACK_B(pack_b_f32_32, 32, float, f32x8, f32_1)

/* Activation block: mc rows of a (row stride lda, offset to the first k) into
 * ceil(mc / MR) micro-panels dst[p][k * MR + i] = a[p * MR + i][k], zero rows
 * past mc (MR 6 or 12). Eight k's at a time through 8 x 8 transposes of up
 * to 8 rows each (missing rows are dummies); the 8-float stores of the last
 * group of rows overlap the next k's first floats, which the stores of that
 * k (made after, in increasing k) overwrite, so dst has PX_GEMM_A_SLACK
 * floats of slack at the end. */
static inline void pack_a_mr(float *dst, const float *a, int64_t lda, int64_t mc, int64_t kc, const int MR)
{
    enum { G_MAX = (PX_GEMM_MR_MAX + 7) / 8 };
    const int G = (MR + 7) / 8; /* groups of 8 rows */
    for (int64_t p = 0; p < mc; p += MR, dst += MR * kc) {
        const int64_t rows = mc - p < MR ? mc - p : MR;
        const float *row[PX_GEMM_MR_MAX];
        for (int i = 0; i < MR; i++) row[i] = a + (p + (i < rows ? i : 0)) * lda;
        int64_t k = 0;
        if (rows == MR)
            for (; k + 8 <= kc; k += 8) {
                V r[G_MAX][8];
                for (int g = 0; g < G; g++) {
                    for (int i = 0; i < 8; i++)
                        r[g][i] = g * 8 + i < MR ? _mm256_loadu_ps(row[g * 8 + i] + k) : _mm256_setzero_ps();
                    transpose8(r[g]);
                }
                for (int i = 0; i < 8; i++)
                    for (int g = 0; g < G; g++) _mm256_storeu_ps(dst + (k + i) * MR + g * 8, r[g][i]);
            }
        for (; k < kc; k++)
            for (int i = 0; i < MR; i++) dst[k * MR + i] = i < rows ? row[i][k] : 0.0f;
    }
}

static void pack_a_6(float *dst, const float *a, int64_t lda, int64_t mc, int64_t kc)
{
    pack_a_mr(dst, a, lda, mc, kc, 6);
}

static void pack_a_12(float *dst, const float *a, int64_t lda, int64_t mc, int64_t kc)
{
    pack_a_mr(dst, a, lda, mc, kc, 12);
}

/* One micro-panel of the implicit im2col matrix (px_gemm_pack_conv in
 * gemm_internal.h), NR = 16 or 32 columns. When the NR pixels lie in one row
 * of the image, each k is one shifted row segment: NR / 8 unaligned loads,
 * masked where the segment runs past the left or right edge (masked lanes
 * read as +0 and do not touch memory), zeros where the source row is
 * padding. Panels straddling two rows go through the scalar routine (only
 * when W % NR != 0). */
static inline void pack_conv_nr(float *dst, const float *x, int64_t H, int64_t W, int ks, int64_t n0, int64_t cols,
                                int64_t k0, int64_t kc, const int NR)
{
    enum { Q_MAX = PX_GEMM_NR_MAX / 8 };
    const int64_t oy = n0 / W, ox0 = n0 % W;
    if (cols < NR || ox0 + NR > W || W > INT32_MAX / 2) {
        px_gemm_pack_conv_ref(dst, NR, x, H, W, ks, n0, cols, k0, kc);
        return;
    }
    const int p = ks / 2, kk = ks * ks, Q = NR / 8;
    __m256i m[3][Q_MAX];
    int full[3];
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), wv = _mm256_set1_epi32((int)W);
    for (int kx = 0; kx < ks; kx++) {
        const int64_t lo = ox0 + kx - p;
        full[kx] = lo >= 0 && lo + NR <= W;
        for (int h = 0; h < Q; h++) {
            __m256i ix = _mm256_add_epi32(lane, _mm256_set1_epi32((int)(lo + 8 * h)));
            m[kx][h] = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), ix),
                                           _mm256_cmpgt_epi32(wv, ix));
        }
    }
    int64_t ci = k0 / kk;
    int r = (int)(k0 % kk), ky = r / ks, kx = r % ks;
    const V zero = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++, dst += NR) {
        const int64_t iy = oy + ky - p;
        if (iy < 0 || iy >= H) {
            for (int h = 0; h < Q; h++) _mm256_store_ps(dst + 8 * h, zero);
        } else {
            /* offset from the row start; may be -1 (masked lane) */
            const float *row = x + (ci * H + iy) * W;
            const int64_t off = ox0 + kx - p;
            if (full[kx])
                for (int h = 0; h < Q; h++) _mm256_store_ps(dst + 8 * h, _mm256_loadu_ps(row + off + 8 * h));
            else
                for (int h = 0; h < Q; h++)
                    _mm256_store_ps(dst + 8 * h, _mm256_maskload_ps(row + off + 8 * h, m[kx][h]));
        }
        if (++kx == ks) {
            kx = 0;
            if (++ky == ks) {
                ky = 0;
                ci++;
            }
        }
    }
}

static void pack_conv_16(float *dst, const float *x, int64_t H, int64_t W, int ks, int64_t n0, int64_t cols,
                         int64_t k0, int64_t kc)
{
    pack_conv_nr(dst, x, H, W, ks, n0, cols, k0, kc, 16);
}

static void pack_conv_32(float *dst, const float *x, int64_t H, int64_t W, int ks, int64_t n0, int64_t cols,
                         int64_t k0, int64_t kc)
{
    pack_conv_nr(dst, x, H, W, ks, n0, cols, k0, kc, 32);
}

void px_gemm_packs_avx2(px_gemm_kernels *g)
{
    g->pack_a = g->mr == 12 ? pack_a_12 : pack_a_6;
    if (g->nr == 32) {
        g->pack_b[PX_GEMM_W_F32] = pack_b_f32_32;
        g->pack_b[PX_GEMM_W_BF16] = pack_b_bf16_32;
        g->pack_b[PX_GEMM_W_F16] = pack_b_f16_32;
        g->pack_conv = pack_conv_32;
    } else {
        g->pack_b[PX_GEMM_W_F32] = pack_b_f32_16;
        g->pack_b[PX_GEMM_W_BF16] = pack_b_bf16_16;
        g->pack_b[PX_GEMM_W_F16] = pack_b_f16_16;
        g->pack_conv = pack_conv_16;
    }
}

void px_gemm_kernels_init_avx2(px_gemm_kernels *g)
{
    g->mr = PX_GEMM_MR;
    g->nr = PX_GEMM_NR;
    g->kernel = kernel_6x16_avx2;
    px_gemm_packs_avx2(g);
}
