/* Threaded wrappers: split work into independent rows (or channels) and call
 * the active row kernel. Chunking never changes what a row computes, so the
 * result does not depend on the thread count. */
#include "ops.h"

#include "tensor/error.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/mman.h>
#endif

void *px_malloc_huge(size_t n, const char *what)
{
    if (n < PX_HUGE_BYTES) return px_malloc(n, what);
    const size_t align = PX_HUGE_BYTES;
    void *p = n <= SIZE_MAX - align ? aligned_alloc(align, (n + align - 1) / align * align) : NULL;
    if (!p) {
        px_fail("out of memory (%zu bytes for %s)", n, what);
        return NULL;
    }
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    (void)madvise(p, (n + align - 1) / align * align, MADV_HUGEPAGE); /* a hint: else 4 KiB pages */
#endif
    return p;
}

/* Elementwise ops run over fixed chunks so every element sees the same kernel
 * code path (vector body vs scalar tail) whatever the thread count. */
#define CHUNK 4096

#define ELEMENTWISE1(name, field)                                         \
    void name(float *y, const float *x, int64_t n)                        \
    {                                                                     \
        px_ops_init();                                                    \
        int64_t nchunks = (n + CHUNK - 1) / CHUNK;                        \
        _Pragma("omp parallel for schedule(static) if (nchunks > 4)")     \
        for (int64_t c = 0; c < nchunks; c++) {                           \
            int64_t b = c * CHUNK, e = b + CHUNK < n ? b + CHUNK : n;     \
            px_k.field(y + b, x + b, (size_t)(e - b));                    \
        }                                                                 \
    }

ELEMENTWISE1(px_gelu_tanh, gelu_tanh)
ELEMENTWISE1(px_gelu_erf, gelu_erf)
ELEMENTWISE1(px_silu, silu)

#define ELEMENTWISE2(name, field)                                         \
    void name(float *y, const float *a, const float *bb, int64_t n)       \
    {                                                                     \
        px_ops_init();                                                    \
        int64_t nchunks = (n + CHUNK - 1) / CHUNK;                        \
        _Pragma("omp parallel for schedule(static) if (nchunks > 4)")     \
        for (int64_t c = 0; c < nchunks; c++) {                           \
            int64_t b = c * CHUNK, e = b + CHUNK < n ? b + CHUNK : n;     \
            px_k.field(y + b, a + b, bb + b, (size_t)(e - b));            \
        }                                                                 \
    }

ELEMENTWISE2(px_add, add)
ELEMENTWISE2(px_mul, mul)

void px_modulate(float *y, const float *x, const float *shift, const float *scale, int64_t rows,
                 int64_t C)
{
    px_ops_init();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; r++) px_k.modulate(y + r * C, x + r * C, shift, scale, (size_t)C);
}

void px_add_bias(float *y, const float *bias, int64_t rows, int64_t C)
{
    px_ops_init();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; r++) px_k.add(y + r * C, y + r * C, bias, (size_t)C);
}

void px_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t C,
                  float eps)
{
    px_ops_init();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; r++) px_k.layernorm(y + r * C, x + r * C, w, b, (size_t)C, eps);
}

void px_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t C, float eps)
{
    px_ops_init();
#pragma omp parallel for schedule(static) if (rows * C > 65536)
    for (int64_t r = 0; r < rows; r++) px_k.rmsnorm(y + r * C, x + r * C, w, (size_t)C, eps);
}

void px_softmax(float *x, int64_t rows, int64_t n)
{
    px_ops_init();
#pragma omp parallel for schedule(static) if (rows * n > 65536)
    for (int64_t r = 0; r < rows; r++) px_k.softmax(x + r * n, (size_t)n);
}

void px_groupnorm(float *y, const float *x, const float *w, const float *b, int64_t B, int64_t C,
                  int64_t HW, int64_t G, float eps)
{
    /* torch.nn.GroupNorm: statistics over (C/G channels x HW) per (batch, group),
     * biased variance, then per-channel affine. Statistics in double (the
     * sum / sumsq_dev / norm_affine row kernels, SIMD when available). */
    px_ops_init();
    int64_t cg = C / G;
#pragma omp parallel for collapse(2) schedule(static) if (B * C * HW > 65536)
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t g = 0; g < G; g++) {
            const float *xg = x + (bi * C + g * cg) * HW;
            float *yg = y + (bi * C + g * cg) * HW;
            int64_t n = cg * HW;
            double mean = px_k.sum(xg, (size_t)n) / (double)n;
            double ss = px_k.sumsq_dev(xg, mean, (size_t)n);
            float rstd = (float)(1.0 / sqrt(ss / (double)n + eps));
            float m = (float)mean;
            for (int64_t c = 0; c < cg; c++) {
                float wc = w ? w[g * cg + c] : 1.0f, bc = b ? b[g * cg + c] : 0.0f;
                /* (x - m) * rstd * wc + bc */
                px_k.norm_affine(yg + c * HW, xg + c * HW, m, rstd, wc, bc, (size_t)HW);
            }
        }
}

void px_upsample_nearest2x(float *out, const float *in, int64_t B, int64_t C, int64_t H, int64_t W)
{
#pragma omp parallel for schedule(static) if (B * C * H * W > 65536)
    for (int64_t bc = 0; bc < B * C; bc++) {
        const float *src = in + bc * H * W;
        float *dst = out + bc * 4 * H * W;
        for (int64_t i = 0; i < H; i++) {
            float *r0 = dst + (2 * i) * 2 * W, *r1 = r0 + 2 * W;
            for (int64_t j = 0; j < W; j++) r0[2 * j] = r0[2 * j + 1] = src[i * W + j];
            memcpy(r1, r0, (size_t)(2 * W) * sizeof(float));
        }
    }
}
