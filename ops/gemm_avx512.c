/* AVX-512 micro-kernel of the blocked GEMM in ops/gemm_blocked.c: a 12 x 32
 * tile (24 zmm accumulators, two weight vectors and one broadcast live per
 * k). The packing routines are the AVX2 ones for this tile (ops/gemm_avx2.c).
 * Compiled into libpx_avx512.la with -mavx512f...; only reached after CPU
 * detection (px_gemm_kernels_for).
 *
 * Bit-identical to the scalar and AVX2 kernels: every output element is one
 * fused multiply-add chain over k in increasing order, started from zero,
 * then added to C (or to the bias) as the scalar kernel does. The vector
 * width only changes how many columns share an instruction, never the order
 * of the sum. 12 x 32 measured against 8 x 32 and 14 x 32 in doc/performance.md. */
#include "gemm_internal.h"

#include <immintrin.h>
#include <stdint.h>

enum { MR = 12, NR = 32 };

/* c (12 x 32, row stride ldc) op= a (kc x 12 packed) @ b (kc x 32 packed);
 * see px_gemm_kernel in gemm_internal.h for `mode`. */
static void kernel_12x32_avx512(int64_t kc, const float *a, const float *b, float *c, int64_t ldc,
                                const float *bias, int mode)
{
    __m512 acc[MR][2];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    /* the C tile is needed only after the k loop: start fetching it now */
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + 31), _MM_HINT_T0);
    }
    /* unrolled by 4; the weight panel (32 KiB at kc = 256, most of L1) is
     * prefetched 8 k's ahead */
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        _mm_prefetch((const char *)(b + 8 * NR), _MM_HINT_T0);
        _mm_prefetch((const char *)(b + 8 * NR + 16), _MM_HINT_T0);
        const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 ai = _mm512_set1_ps(a[i]);
            acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
        }
        a += MR;
        b += NR;
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        float *ci = c + i * ldc;
        __m512 base0, base1;
        if (mode == PX_GEMM_STORE) {
            _mm512_storeu_ps(ci, acc[i][0]);
            _mm512_storeu_ps(ci + 16, acc[i][1]);
            continue;
        }
        if (mode == PX_GEMM_ROW_BIAS) {
            base0 = base1 = _mm512_set1_ps(bias[i]);
        } else {
            /* PX_GEMM_BIAS: bias + acc; PX_GEMM_ACCUMULATE: c + acc */
            const float *base = mode == PX_GEMM_BIAS ? bias : ci;
            base0 = _mm512_loadu_ps(base);
            base1 = _mm512_loadu_ps(base + 16);
        }
        _mm512_storeu_ps(ci, _mm512_add_ps(base0, acc[i][0]));
        _mm512_storeu_ps(ci + 16, _mm512_add_ps(base1, acc[i][1]));
    }
}

void px_gemm_kernels_init_avx512(px_gemm_kernels *g)
{
    g->mr = MR;
    g->nr = NR;
    g->kernel = kernel_12x32_avx512;
    px_gemm_packs_avx2(g);
}
