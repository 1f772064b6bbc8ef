/* A BLIS-style blocked GEMM for nn.Linear whose weight micro-panels are
 * widened from BF16/F16 while they are packed (no separate widening pass,
 * no F32 copy of the weights beyond one KC x NC block).
 *
 * Loops (Goto / BLIS): for each NC-wide block of output columns, for each
 * KC-deep block of k: the threads pack the weight block (KC x NC, as nr-wide
 * micro-panels, shared; double-buffered so one barrier per block suffices),
 * then take units of MU output rows from a dynamic queue: pack MU x KC of the
 * activations (in L2) and run the mr x nr micro-kernel (6 x 16 scalar and
 * AVX2, 12 x 32 AVX-512) over every (nr-column, mr-row) tile of the unit, the
 * weight micro-panel staying in L1.
 *
 * Determinism: KC depends on K only, and every output element is the same
 * fmaf chain over each k-block added to C (or to the bias) in k-block order,
 * whichever thread computes it and wherever its tile lies (edge tiles run the
 * same kernel on a padded copy). So the result is independent of the thread
 * count and of the scheduling, and of the ISA (the scalar kernel below uses
 * fmaf; SIMD kernels fuse their multiply-adds the same way). */
#include "config.h"
#include "gemm_internal.h"
#include "ops.h"
#include "tensor/error.h"
#include "tensor/half.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* KC_MAX: depth of a k-block (KC: near-equal parts of K, rounded up to 8);
 * MU_MAX: rows per unit of work (packed MU x KC activations stay in L2;
 *     units are handed out dynamically, so a core slowed by other load does
 *     not hold the other back at every k-block);
 * NC_BYTES: F32 bytes of one packed weight block (two live, in L3). */
enum { KC_MAX = 256, MU_MAX = 96, NC_BYTES = 4 << 20 };

// ----------------------------------------------------------------------------
// scalar pieces (reference; bit-identical to the SIMD ones)

static void kernel_ref(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, const float *bias,
                       int mode)
{
    float acc[PX_GEMM_MR][PX_GEMM_NR] = { { 0 } };
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < PX_GEMM_MR; i++)
            for (int j = 0; j < PX_GEMM_NR; j++)
                acc[i][j] = fmaf(a[k * PX_GEMM_MR + i], b[k * PX_GEMM_NR + j], acc[i][j]);
    for (int i = 0; i < PX_GEMM_MR; i++)
        for (int j = 0; j < PX_GEMM_NR; j++) {
            float *o = c + i * ldc + j;
            *o = mode == PX_GEMM_STORE
                     ? acc[i][j]
                     : (mode == PX_GEMM_BIAS ? bias[j] : mode == PX_GEMM_ROW_BIAS ? bias[i] : *o) + acc[i][j];
        }
}

static void pack_a_ref(float *dst, const float *a, int64_t lda, int64_t mc, int64_t kc)
{
    for (int64_t p = 0; p < mc; p += PX_GEMM_MR, dst += PX_GEMM_MR * kc)
        for (int64_t k = 0; k < kc; k++)
            for (int64_t i = 0; i < PX_GEMM_MR; i++)
                dst[k * PX_GEMM_MR + i] = p + i < mc ? a[(p + i) * lda + k] : 0.0f;
}

#define PACK_B_REF(name, type, widen)                                                              \
    static void name(float *dst, const void *wv, int64_t ldw, int64_t rows, int64_t kc)            \
    {                                                                                              \
        const type *w = wv;                                                                        \
        for (int64_t k = 0; k < kc; k++)                                                           \
            for (int64_t j = 0; j < PX_GEMM_NR; j++)                                               \
                dst[k * PX_GEMM_NR + j] = j < rows ? widen(w[j * ldw + k]) : 0.0f;                 \
    }

static inline float f32_id(float x) { return x; }
PACK_B_REF(pack_b_f32_ref, float, f32_id)
PACK_B_REF(pack_b_bf16_ref, uint16_t, px_bf16_to_f32)
PACK_B_REF(pack_b_f16_ref, uint16_t, px_f16_to_f32)

void px_gemm_pack_conv_ref(float *dst, int nr, const float *x, int64_t H, int64_t W, int ks, int64_t n0,
                           int64_t cols, int64_t k0, int64_t kc)
{
    const int64_t p = ks / 2, kk = (int64_t)ks * ks;
    for (int64_t k = 0; k < kc; k++) {
        const int64_t ci = (k0 + k) / kk, r = (k0 + k) % kk, ky = r / ks, kx = r % ks;
        for (int64_t j = 0; j < nr; j++) {
            float v = 0.0f;
            if (j < cols) {
                const int64_t oy = (n0 + j) / W, ox = (n0 + j) % W, iy = oy + ky - p, ix = ox + kx - p;
                if (iy >= 0 && iy < H && ix >= 0 && ix < W) v = x[(ci * H + iy) * W + ix];
            }
            dst[k * nr + j] = v;
        }
    }
}

static void pack_conv_ref(float *dst, const float *x, int64_t H, int64_t W, int ks, int64_t n0, int64_t cols,
                          int64_t k0, int64_t kc)
{
    px_gemm_pack_conv_ref(dst, PX_GEMM_NR, x, H, W, ks, n0, cols, k0, kc);
}

int px_gemm_kernels_for(int isa, px_gemm_kernels *g)
{
    if (!px_isa_supported((px_isa)isa)) return -1;
    g->mr = PX_GEMM_MR;
    g->nr = PX_GEMM_NR;
    g->kernel = kernel_ref;
    g->pack_a = pack_a_ref;
    g->pack_b[PX_GEMM_W_F32] = pack_b_f32_ref;
    g->pack_b[PX_GEMM_W_BF16] = pack_b_bf16_ref;
    g->pack_b[PX_GEMM_W_F16] = pack_b_f16_ref;
    g->pack_conv = pack_conv_ref;
#if defined(PX_HOST_X86)
    if (isa == PX_ISA_AVX2) px_gemm_kernels_init_avx2(g);
    if (isa == PX_ISA_AVX512) px_gemm_kernels_init_avx512(g);
#endif
    return 0;
}

int px_gemm_blocked_kernels(px_gemm_kernels *g)
{
    const px_isa isa = px_ops_isa();
    if (isa == PX_ISA_REF) return px_gemm_kernels_for(PX_ISA_REF, g) == 0 ? 0 : -1;
    if (isa != PX_ISA_AVX2 && isa != PX_ISA_AVX512) return -1;
    return px_gemm_kernels_for(isa, g) == 0 ? 1 : -1;
}

// ----------------------------------------------------------------------------
// driver

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* k-block depth for K: near-equal parts of at most KC_MAX, rounded up to 8 */
static int64_t kc_for(int64_t K)
{
    int64_t kc = ceil_div(K, ceil_div(K, KC_MAX));
    return ceil_div(kc, 8) * 8;
}

static float *align64(void *p) { return (float *)(((uintptr_t)p + 63) & ~(uintptr_t)63); }

/* rows [ic, ic + mc) of out for k-block [k0, k0 + kc) and the nc columns
 * from n0 whose packed weights are bp; ap: this thread's pack buffer */
static void block_rows(float *out, int64_t N, const float *in, int64_t K, const float *bias, const float *bp,
                       float *ap, const px_gemm_kernels *g, int64_t ic, int64_t mc, int64_t n0, int64_t nc,
                       int64_t k0, int64_t kc)
{
    const int mode = k0 > 0 ? PX_GEMM_ACCUMULATE : bias ? PX_GEMM_BIAS : PX_GEMM_STORE;
    const int MR = g->mr, NR = g->nr;
    g->pack_a(ap, in + ic * K + k0, K, mc, kc);
    for (int64_t jr = 0; jr < nc; jr += NR) {
        const int64_t nr = nc - jr < NR ? nc - jr : NR;
        const float *b = bp + jr * kc;
        const float *bj = bias ? bias + n0 + jr : NULL;
        for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t mr = mc - ir < MR ? mc - ir : MR;
            float *c = out + (ic + ir) * N + n0 + jr;
            const float *a = ap + ir * kc;
            if (mr == MR && nr == NR) {
                g->kernel(kc, a, b, c, N, bj, mode);
                continue;
            }
            /* edge tile: same kernel on a padded copy */
            float t[PX_GEMM_MR_MAX * PX_GEMM_NR_MAX], tb[PX_GEMM_NR_MAX] = { 0 };
            if (bj) memcpy(tb, bj, (size_t)nr * sizeof(float));
            if (mode == PX_GEMM_ACCUMULATE)
                for (int64_t i = 0; i < mr; i++) memcpy(t + i * NR, c + i * N, (size_t)nr * sizeof(float));
            g->kernel(kc, a, b, t, NR, tb, mode);
            for (int64_t i = 0; i < mr; i++) memcpy(c + i * N, t + i * NR, (size_t)nr * sizeof(float));
        }
    }
}

int px_linear_blocked(float *out, const float *in, const px_tensor *w, const float *bias, int64_t M,
                      const px_gemm_kernels *g, int nt)
{
    if (w->ndim != 2) return px_fail("linear: weight has %d dims, want 2", w->ndim);
    const int64_t N = w->shape[0], K = w->shape[1];
    if (M <= 0 || N <= 0) return 0;
    int wt;
    size_t esz;
    switch (w->dtype) {
    case PX_F32: wt = PX_GEMM_W_F32; esz = 4; break;
    case PX_BF16: wt = PX_GEMM_W_BF16; esz = 2; break;
    case PX_F16: wt = PX_GEMM_W_F16; esz = 2; break;
    default: return px_fail("linear: weight dtype %s not supported", px_dtype_name(w->dtype));
    }
    if (K == 0) { /* empty sum: bias or zero */
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) out[m * N + n] = bias ? bias[n] : 0.0f;
        return 0;
    }
    const int64_t KC = kc_for(K), MR = g->mr, NR = g->nr;
    /* NC: near-equal parts of N of at most NC_BYTES packed, multiples of nr */
    int64_t NC = NC_BYTES / (KC * (int64_t)sizeof(float));
    if (NC < NR) NC = NR;
    NC = ceil_div(ceil_div(N, ceil_div(N, NC)), NR) * NR;
    /* units: at most MU_MAX rows (rounded down to mr), and at least 4 per
     * thread while they can keep mr rows (few rows: smaller units balance
     * the threads) */
    int64_t MU = ceil_div(ceil_div(M, 4 * (int64_t)(nt > 0 ? nt : 1)), MR) * MR;
    if (MU > MU_MAX / MR * MR) MU = MU_MAX / MR * MR;
    const int64_t nu = ceil_div(M, MU);
    if (nt > nu) nt = (int)nu;
    if (nt < 1) nt = 1;
    const size_t bfl = (size_t)(KC * NC), afl = (size_t)(MU * KC + PX_GEMM_A_SLACK) + 16;
    char *mem = px_malloc((2 * bfl + (size_t)nt * afl) * sizeof(float) + 64, "linear packed blocks");
    if (!mem) return -1;
    float *bpack[2] = { align64(mem), NULL };
    bpack[1] = bpack[0] + bfl;
    const char *wb = w->data;

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        float *ap = align64(bpack[1] + bfl + (size_t)tid * afl);
        int buf = 0;
        for (int64_t n0 = 0; n0 < N; n0 += NC) {
            const int64_t nc = N - n0 < NC ? N - n0 : NC, npan = ceil_div(nc, NR);
            for (int64_t k0 = 0; k0 < K; k0 += KC, buf ^= 1) {
                const int64_t kc = K - k0 < KC ? K - k0 : KC;
                float *bp = bpack[buf];
                /* the weight block, shared. Its buffer was last read two
                 * blocks back, by units every thread finished before the
                 * barrier that closed the previous block's packing. */
#pragma omp for schedule(dynamic, 8)
                for (int64_t p = 0; p < npan; p++) {
                    int64_t rows = nc - p * NR < NR ? nc - p * NR : NR;
                    g->pack_b[wt](bp + p * NR * kc, wb + ((n0 + p * NR) * K + k0) * esz, K, rows, kc);
                }
                /* implicit barrier: the block is packed. A thread done with
                 * its units goes on to pack the next block (no wait here). */
#pragma omp for schedule(dynamic, 1) nowait
                for (int64_t u = 0; u < nu; u++)
                    block_rows(out, N, in, K, bias, bp, ap, g, u * MU, M - u * MU < MU ? M - u * MU : MU, n0, nc,
                               k0, kc);
            }
        }
    }
    free(mem);
    return 0;
}

// ----------------------------------------------------------------------------
// convolution with implicit im2col

/* Per image, out (Cout, N = H*W) = w (Cout, K = Cin*ks*ks) @ cols (K, N):
 * the weights are the mr-row operand (all of them packed once, per k-block,
 * as kc x mr micro-panels), the pixels the nr-column operand (so a micro-tile
 * is mr channels x nr neighbouring pixels of the NCHW output). Units of work
 * are runs of NU pixels of one image, handed out dynamically; a unit packs
 * its kc x NU column block (in L2) from the image for each k-block and runs
 * the micro-kernel over MC_CONV channels (rounded down to mr) at a time (their packed weights,
 * mc x kc, stay in L2 while the column micro-panel sits in L1). A unit
 * covers all of K, so no thread waits for another between k-blocks.
 *
 * Determinism as for px_linear_blocked: KC depends on K only, every output
 * element is the same fmaf chain per k-block, added to the bias (or stored)
 * at the first block and to C at the next ones, in k-block order. */
enum { MC_CONV = 96, NU_MAX = 256 };

int px_conv2d_blocked(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
                      int64_t Cin, int64_t H, int64_t W, int64_t Cout, int ks, const px_gemm_kernels *g, int nt)
{
    if (ks != 1 && ks != 3) return px_fail("conv2d: blocked path: kernel size %d not supported", ks);
    const int64_t M = Cout, N = H * W, K = Cin * ks * ks;
    if (B <= 0 || M <= 0 || N <= 0) return 0;
    if (K == 0) {
        for (int64_t b = 0; b < B; b++)
            for (int64_t m = 0; m < M; m++)
                for (int64_t n = 0; n < N; n++) out[(b * M + m) * N + n] = bias ? bias[m] : 0.0f;
        return 0;
    }
    const float *wf = w->data;
    float *wconv = NULL;
    if (w->dtype != PX_F32) {
        wconv = px_tensor_to_f32_alloc(w, "conv2d weight");
        if (!wconv) return -1;
        wf = wconv;
    }
    const int64_t KC = kc_for(K), nkb = ceil_div(K, KC), Mp = ceil_div(M, g->mr) * g->mr;
    const int64_t MR = g->mr, NR = g->nr, MC = MC_CONV / MR * MR;
    /* one region per k-block, each with pack_a's slack, 64-byte aligned */
    const int64_t astride = ceil_div(Mp * KC + PX_GEMM_A_SLACK, 16) * 16;
    /* units: at most NU_MAX pixels, at least 4 per thread while they can
     * keep nr */
    const int64_t ntt = nt > 0 ? nt : 1;
    int64_t NU = ceil_div(ceil_div(B * N, 4 * ntt), NR) * NR;
    if (NU > NU_MAX / NR * NR) NU = NU_MAX / NR * NR;
    const int64_t upi = ceil_div(N, NU), nu = B * upi;
    if (nt < 1) nt = 1;
    const size_t afl = (size_t)(nkb * astride), bfl = (size_t)(KC * NU) + 16;
    char *mem = px_malloc((afl + (size_t)nt * bfl) * sizeof(float) + 64, "conv2d packed blocks");
    if (!mem) {
        free(wconv);
        return -1;
    }
    float *apack = align64(mem);

#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        const int tid = omp_get_thread_num();
#else
        const int tid = 0;
#endif
        float *bp = align64(apack + afl + (size_t)tid * bfl);
#pragma omp for schedule(dynamic, 1)
        for (int64_t kb = 0; kb < nkb; kb++) {
            const int64_t k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC;
            g->pack_a(apack + kb * astride, wf + k0, K, M, kc);
        }
        /* implicit barrier: the weights are packed */
#pragma omp for schedule(dynamic, 1)
        for (int64_t u = 0; u < nu; u++) {
            const int64_t b = u / upi, n0 = (u % upi) * NU, nc = N - n0 < NU ? N - n0 : NU;
            const float *x = in + b * Cin * N;
            float *o = out + b * M * N;
            for (int64_t kb = 0; kb < nkb; kb++) {
                const int64_t k0 = kb * KC, kc = K - k0 < KC ? K - k0 : KC;
                const int mode = k0 > 0 ? PX_GEMM_ACCUMULATE : bias ? PX_GEMM_ROW_BIAS : PX_GEMM_STORE;
                for (int64_t jr = 0; jr < nc; jr += NR)
                    g->pack_conv(bp + jr * kc, x, H, W, ks, n0 + jr, nc - jr < NR ? nc - jr : NR, k0, kc);
                const float *ab = apack + kb * astride;
                for (int64_t ic = 0; ic < M; ic += MC) {
                    const int64_t mc = M - ic < MC ? M - ic : MC;
                    for (int64_t jr = 0; jr < nc; jr += NR) {
                        const int64_t nr = nc - jr < NR ? nc - jr : NR;
                        const float *bq = bp + jr * kc;
                        for (int64_t ir = ic; ir < ic + mc; ir += MR) {
                            const int64_t mr = M - ir < MR ? M - ir : MR;
                            const float *a = ab + ir * kc;
                            float *c = o + ir * N + n0 + jr;
                            if (mr == MR && nr == NR) {
                                g->kernel(kc, a, bq, c, N, bias ? bias + ir : NULL, mode);
                                continue;
                            }
                            /* edge tile: same kernel on a padded copy */
                            float t[PX_GEMM_MR_MAX * PX_GEMM_NR_MAX], tb[PX_GEMM_MR_MAX] = { 0 };
                            if (bias) memcpy(tb, bias + ir, (size_t)mr * sizeof(float));
                            if (mode == PX_GEMM_ACCUMULATE)
                                for (int64_t i = 0; i < mr; i++)
                                    memcpy(t + i * NR, c + i * N, (size_t)nr * sizeof(float));
                            g->kernel(kc, a, bq, t, NR, tb, mode);
                            for (int64_t i = 0; i < mr; i++)
                                memcpy(c + i * N, t + i * NR, (size_t)nr * sizeof(float));
                        }
                    }
                }
            }
        }
    }
    free(mem);
    free(wconv);
    return 0;
}
