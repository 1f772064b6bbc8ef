/* Internal to ops/: running single-threaded cblas_sgemm calls from our own
 * OpenMP threads, and the blocked GEMM for half-precision weights (ops/gemm.c
 * explains both). Not installed, not public API. */
#ifndef PX_GEMM_INTERNAL_H
#define PX_GEMM_INTERNAL_H

#include <stdint.h>

/* Before an OpenMP region whose threads call cblas: with a pthreads OpenBLAS
 * and more than one thread, sets OpenBLAS to one thread and returns 1 (else 0).
 * px_blas_leave(returned value) restores the thread count. */
int px_blas_enter(void);
void px_blas_leave(int entered);

/* Once per process, when OpenBLAS's kernels are older than the CPU, the user
 * did not set OPENBLAS_CORETYPE and px_blas_fix_core did not already say so:
 * a line on stderr saying what to set (ops/blas.c; called by px_ops_init
 * unless the reference ISA is active). */
void px_blas_warn_core(void);

/* One row-major cblas_sgemm call on the calling thread (no tiling). */
void px_sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* ---- blocked GEMM (BLIS-style) ------------------------------------------ */

#include "tensor/tensor.h"

/* Micro-tile: mr rows of the output x nr columns, chosen per ISA (scalar
 * and AVX2 6 x 16: 12 ymm accumulators; AVX-512 12 x 32: 24 zmm). The tile
 * shape does not change the bits: every output element is the same fmaf
 * chain over k whatever tile it falls in. MR_MAX / NR_MAX bound the edge-tile
 * buffers; pack_a writes up to PX_GEMM_A_SLACK floats past its panels. */
enum { PX_GEMM_MR = 6, PX_GEMM_NR = 16, PX_GEMM_MR_MAX = 16, PX_GEMM_NR_MAX = 32, PX_GEMM_A_SLACK = 8 };

/* How a micro-kernel combines its k-block sum `acc` with C:
 * STORE c = acc; BIAS c = bias[j] + acc; ACCUMULATE c = c + acc;
 * ROW_BIAS c = bias[i] + acc (a bias per output row: the convolution's
 * per-channel bias, its rows being output channels). */
enum { PX_GEMM_STORE = 0, PX_GEMM_BIAS = 1, PX_GEMM_ACCUMULATE = 2, PX_GEMM_ROW_BIAS = 3 };

/* Weight storage types a micro-panel can be packed from. */
enum { PX_GEMM_W_F32 = 0, PX_GEMM_W_BF16, PX_GEMM_W_F16, PX_GEMM_W_COUNT };

/* One ISA's pieces, for its tile of mr x nr; every variant computes
 * bit-identical results (each output element is one fmaf chain over k in
 * increasing order from 0).
 *  kernel: c (mr x nr, row stride ldc) op= a (kc x mr) @ b (kc x nr), both
 *          packed; bias (nr, or mr in ROW_BIAS mode) read only in the bias
 *          modes.
 *  pack_a: mc rows of a (row stride lda) into ceil(mc/mr) micro-panels of
 *          kc x mr (zero rows past mc); dst needs PX_GEMM_A_SLACK extra floats.
 *  pack_b: up to nr rows of a weight matrix (row stride ldw elements, of the
 *          storage type) into one kc x nr micro-panel, widened to F32, zero
 *          columns past `rows`; dst 64-byte aligned. */
typedef void (*px_gemm_kernel)(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                               const float *bias, int mode);
/*  pack_conv: one kc x nr micro-panel of the implicit im2col matrix of a
 *          stride-1 ks x ks convolution (ks 1 or 3, zero padding ks / 2) of
 *          one image x (Cin, H, W): dst[k * nr + j] = x[ci][oy + ky - ks/2]
 *          [ox + kx - ks/2] (0 outside the image) where k0 + k = (ci * ks +
 *          ky) * ks + kx and pixel n0 + j = oy * W + ox, for j < cols (<= nr);
 *          zero columns past cols; dst 64-byte aligned. */
typedef void (*px_gemm_pack_conv)(float *dst, const float *x, int64_t H, int64_t W, int ks, int64_t n0,
                                  int64_t cols, int64_t k0, int64_t kc);
typedef struct {
    int mr, nr;
    px_gemm_kernel kernel;
    void (*pack_a)(float *dst, const float *a, int64_t lda, int64_t mc, int64_t kc);
    void (*pack_b[PX_GEMM_W_COUNT])(float *dst, const void *w, int64_t ldw, int64_t rows, int64_t kc);
    px_gemm_pack_conv pack_conv;
} px_gemm_kernels;

/* the scalar pack_conv for any nr (the SIMD ones fall back to it for
 * panels that straddle two pixel rows) */
void px_gemm_pack_conv_ref(float *dst, int nr, const float *x, int64_t H, int64_t W, int ks, int64_t n0,
                           int64_t cols, int64_t k0, int64_t kc);

/* The scalar pieces, then what the ISA overrides; -1 when unsupported. */
int px_gemm_kernels_for(int isa, px_gemm_kernels *g);
void px_gemm_kernels_init_avx2(px_gemm_kernels *g);
void px_gemm_kernels_init_avx512(px_gemm_kernels *g);
/* The AVX2 packing routines for the tile g->mr x g->nr (mr 6 or 12, nr 16
 * or 32; also used by the AVX-512 kernels: packing is a small share of the
 * time and the 8 x 8 register transposes serve both widths). */
void px_gemm_packs_avx2(px_gemm_kernels *g);

/* The blocked GEMM's kernels for the active ISA: 1 with the AVX2 or
 * AVX-512 ones, 0 with the scalar ones when the active ISA is the reference
 * (PIXART_FORCE_REF=1: GEMM and convolution then never call OpenBLAS), -1
 * when the ISA has no SIMD kernel of its own (NEON: the cblas paths). */
int px_gemm_blocked_kernels(px_gemm_kernels *g);

/* nn.Linear through the blocked GEMM with kernels g on nt threads (the
 * result does not depend on nt): out (M, N) = in (M, K) @ w^T + bias.
 * w F32/BF16/F16 (N, K). Returns -1 on OOM. */
/* Which path px_linear takes (tests and bench_ops compare them):
 * PX_GEMM_AUTO its own choice, PX_GEMM_CBLAS the cblas_sgemm paths,
 * PX_GEMM_BLOCKED the blocked GEMM (when the active ISA has a SIMD kernel). */
enum { PX_GEMM_AUTO = 0, PX_GEMM_CBLAS, PX_GEMM_BLOCKED };
extern int px_gemm_path;

int px_linear_blocked(float *out, const float *in, const px_tensor *w, const float *bias, int64_t M,
                      const px_gemm_kernels *g, int nt);

/* nn.Conv2d with stride 1 and ks 3 (padding 1) or 1 (padding 0) through the
 * blocked GEMM with implicit im2col: per image out (Cout, H*W) = w (Cout,
 * Cin*ks*ks) @ cols + bias, the weights as the mr-row operand (packed once,
 * widened to F32), the column operand packed by g->pack_conv straight from
 * the image (no column buffer). w F32/BF16/F16 (Cout, Cin, ks, ks); bias
 * NULL or Cout. Independent of nt like px_linear_blocked. -1 on OOM. */
int px_conv2d_blocked(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
                      int64_t Cin, int64_t H, int64_t W, int64_t Cout, int ks, const px_gemm_kernels *g, int nt);

/* Which path px_conv2d takes for the shapes the blocked one covers
 * (PX_GEMM_AUTO its choice, PX_GEMM_CBLAS im2col + cblas_sgemm,
 * PX_GEMM_BLOCKED px_conv2d_blocked when the ISA has a SIMD kernel). */
extern int px_conv_path;

#endif
