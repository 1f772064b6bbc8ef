/* nn.Conv2d: a direct scalar reference, and im2col + sgemm over bands of
 * output rows (so the column buffer stays bounded at 1024 px), or for
 * stride-1 3x3 (padding 1) and 1x1 convolutions on AVX2 and AVX-512 CPUs
 * (and with the reference ISA) the blocked GEMM with implicit im2col
 * (ops/gemm_blocked.c). */
#include "gemm_internal.h"
#include "ops.h"
#include "tensor/error.h"

#include <stdlib.h>
#include <string.h>

int px_conv2d_ref(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
                  int64_t Cin, int64_t H, int64_t W, int64_t Cout, int k, int s, int p)
{
    const int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    float *wf = px_tensor_to_f32_alloc(w, "conv2d weight");
    if (!wf) return -1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t co = 0; co < Cout; co++)
            for (int64_t oy = 0; oy < Ho; oy++)
                for (int64_t ox = 0; ox < Wo; ox++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int64_t ci = 0; ci < Cin; ci++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int64_t iy = oy * s - p + ky, ix = ox * s - p + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                acc += (double)wf[((co * Cin + ci) * k + ky) * k + kx] *
                                       in[((b * Cin + ci) * H + iy) * W + ix];
                            }
                    out[((b * Cout + co) * Ho + oy) * Wo + ox] = (float)acc;
                }
    free(wf);
    return 0;
}

int px_conv_path = PX_GEMM_AUTO;

int px_conv2d(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
              int64_t Cin, int64_t H, int64_t W, int64_t Cout, int k, int s, int p)
{
    px_ops_init();
    /* stride-1 3x3 and 1x1 on AVX2 and AVX-512: the blocked GEMM, measured
     * 8-33 % faster than im2col + sgemm on every VAE decoder shape on AVX2
     * (3x on the 3-channel conv_out), 12-14 % on a whole 512 px decode
     * (doc/vae.md); with the reference ISA, the same with its scalar kernels
     * (and px_sgemm's reference below for the other shapes) */
    px_gemm_kernels gk;
    const int simd = px_gemm_blocked_kernels(&gk);
    if (s == 1 && ((k == 3 && p == 1) || (k == 1 && p == 0)) &&
        (simd == 0 || (simd > 0 && px_conv_path != PX_GEMM_CBLAS))) {
        const double flops = 2.0 * (double)B * (double)Cout * (double)(H * W) * (double)(Cin * k * k);
        return px_conv2d_blocked(out, in, w, bias, B, Cin, H, W, Cout, k, &gk,
                                 flops < 2e6 ? 1 : px_get_num_threads());
    }
    const int64_t Ho = (H + 2 * p - k) / s + 1, Wo = (W + 2 * p - k) / s + 1;
    const int64_t KK = Cin * k * k; /* GEMM inner dimension */
    const float *wf = w->data;
    float *wconv = NULL;
    if (w->dtype != PX_F32) {
        wconv = px_tensor_to_f32_alloc(w, "conv2d weight");
        if (!wconv) return -1;
        wf = wconv;
    }
    /* out = bias, then out += W @ cols */
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for collapse(2) schedule(static) if (B * Cout * Ho * Wo > 65536)
        for (int64_t b = 0; b < B; b++)
            for (int64_t co = 0; co < Cout; co++) {
                float *o = out + (b * Cout + co) * Ho * Wo;
                for (int64_t i = 0; i < Ho * Wo; i++) o[i] = bias[co];
            }
        beta = 1.0f;
    }
    if (k == 1 && s == 1 && p == 0) {
        for (int64_t b = 0; b < B; b++)
            px_sgemm(0, 0, Cout, H * W, Cin, 1.0f, wf, Cin, in + b * Cin * H * W, H * W, beta,
                     out + b * Cout * H * W, H * W);
        free(wconv);
        return 0;
    }
    /* band of output rows such that the column buffer is at most ~32 MiB */
    int64_t band = (32 << 20) / (int64_t)sizeof(float) / (KK * Wo);
    if (band < 1) band = 1;
    if (band > Ho) band = Ho;
    float *col = px_malloc((size_t)(KK * band * Wo) * sizeof(float), "conv2d im2col buffer");
    if (!col) { free(wconv); return -1; }
    for (int64_t b = 0; b < B; b++) {
        const float *xin = in + b * Cin * H * W;
        for (int64_t oy0 = 0; oy0 < Ho; oy0 += band) {
            int64_t nb = Ho - oy0 < band ? Ho - oy0 : band;
            int64_t ncol = nb * Wo;
            /* col[(ci, ky, kx), (oy - oy0, ox)] = x[ci, oy*s - p + ky, ox*s - p + kx] */
#pragma omp parallel for schedule(static)
            for (int64_t r = 0; r < KK; r++) {
                int64_t ci = r / (k * k), ky = (r / k) % k, kx = r % k;
                float *dst = col + r * ncol;
                for (int64_t oy = 0; oy < nb; oy++) {
                    int64_t iy = (oy0 + oy) * s - p + ky;
                    float *d = dst + oy * Wo;
                    if (iy < 0 || iy >= H) {
                        memset(d, 0, (size_t)Wo * sizeof(float));
                        continue;
                    }
                    const float *srow = xin + (ci * H + iy) * W;
                    for (int64_t ox = 0; ox < Wo; ox++) {
                        int64_t ix = ox * s - p + kx;
                        d[ox] = (ix >= 0 && ix < W) ? srow[ix] : 0.0f;
                    }
                }
            }
            px_sgemm(0, 0, Cout, ncol, KK, 1.0f, wf, KK, col, ncol, beta,
                     out + b * Cout * Ho * Wo + oy0 * Wo, Ho * Wo);
        }
    }
    free(col);
    free(wconv);
    return 0;
}
