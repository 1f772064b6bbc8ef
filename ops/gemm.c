/* GEMM through OpenBLAS's cblas_sgemm, with F16/BF16 weights widened to F32
 * one cache-sized panel of rows at a time (never a whole-model copy). */
#include "ops.h"
#include "tensor/error.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

void px_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
}

/* Rows of W per panel: about 2 MiB of F32, a multiple of 16, at least 16. */
static int64_t panel_rows(int64_t N, int64_t K)
{
    int64_t r = (2 << 20) / (K * 4);
    r = r / 16 * 16;
    if (r < 16) r = 16;
    return r < N ? r : N;
}

int px_linear(float *out, const float *in, const px_tensor *w, const float *bias, int64_t M)
{
    px_ops_init();
    const int64_t N = w->shape[0], K = w->shape[1];
    if (M == 0 || N == 0) return 0;
    /* out = bias (broadcast over rows), then out += in @ w^T: torch.addmm order */
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static) if (M * N > 65536)
        for (int64_t m = 0; m < M; m++) memcpy(out + m * N, bias, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    if (w->dtype == PX_F32) {
        px_sgemm(0, 1, M, N, K, 1.0f, in, K, (const float *)w->data, K, beta, out, N);
        return 0;
    }
    if (w->dtype != PX_F16 && w->dtype != PX_BF16)
        return px_fail("linear: weight dtype %s not supported", px_dtype_name(w->dtype));
    const int64_t P = panel_rows(N, K);
    float *panel = px_malloc((size_t)(P * K) * sizeof(float), "linear weight panel");
    if (!panel) return -1;
    const uint16_t *wh = w->data;
    void (*widen)(float *, const uint16_t *, size_t) =
        w->dtype == PX_BF16 ? px_k.bf16_to_f32 : px_k.f16_to_f32;
    for (int64_t n0 = 0; n0 < N; n0 += P) {
        int64_t nb = N - n0 < P ? N - n0 : P;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < nb; r++) widen(panel + r * K, wh + (n0 + r) * K, (size_t)K);
        px_sgemm(0, 1, M, nb, K, 1.0f, in, K, panel, K, beta, out + n0, N);
    }
    free(panel);
    return 0;
}
