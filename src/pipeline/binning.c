/* Resolution binning: diffusers' aspect-ratio bucket tables, the nearest
 * bucket rule and the bilinear resize + centre crop back to the requested
 * size (PixArtImageProcessor, diffusers v0.30.3). */
#include "src/pipeline/binning.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// The bucket tables, in diffusers' dict order (the order decides ties).
// Each bucket is (height, width) in pixels; key = height / width rounded.

static const px_ar_bin bins_1024[] = {
    {"0.25", 512, 2048},  {"0.28", 512, 1856},  {"0.32", 576, 1792},  {"0.33", 576, 1728},
    {"0.35", 576, 1664},  {"0.4", 640, 1600},   {"0.42", 640, 1536},  {"0.48", 704, 1472},
    {"0.5", 704, 1408},   {"0.52", 704, 1344},  {"0.57", 768, 1344},  {"0.6", 768, 1280},
    {"0.68", 832, 1216},  {"0.72", 832, 1152},  {"0.78", 896, 1152},  {"0.82", 896, 1088},
    {"0.88", 960, 1088},  {"0.94", 960, 1024},  {"1.0", 1024, 1024},  {"1.07", 1024, 960},
    {"1.13", 1088, 960},  {"1.21", 1088, 896},  {"1.29", 1152, 896},  {"1.38", 1152, 832},
    {"1.46", 1216, 832},  {"1.67", 1280, 768},  {"1.75", 1344, 768},  {"2.0", 1408, 704},
    {"2.09", 1472, 704},  {"2.4", 1536, 640},   {"2.5", 1600, 640},   {"3.0", 1728, 576},
    {"4.0", 2048, 512},
};

static const px_ar_bin bins_512[] = {
    {"0.25", 256, 1024}, {"0.28", 256, 928},  {"0.32", 288, 896},  {"0.33", 288, 864},
    {"0.35", 288, 832},  {"0.4", 320, 800},   {"0.42", 320, 768},  {"0.48", 352, 736},
    {"0.5", 352, 704},   {"0.52", 352, 672},  {"0.57", 384, 672},  {"0.6", 384, 640},
    {"0.68", 416, 608},  {"0.72", 416, 576},  {"0.78", 448, 576},  {"0.82", 448, 544},
    {"0.88", 480, 544},  {"0.94", 480, 512},  {"1.0", 512, 512},   {"1.07", 512, 480},
    {"1.13", 544, 480},  {"1.21", 544, 448},  {"1.29", 576, 448},  {"1.38", 576, 416},
    {"1.46", 608, 416},  {"1.67", 640, 384},  {"1.75", 672, 384},  {"2.0", 704, 352},
    {"2.09", 736, 352},  {"2.4", 768, 320},   {"2.5", 800, 320},   {"3.0", 864, 288},
    {"4.0", 1024, 256},
};

static const px_ar_bin bins_256[] = {
    {"0.25", 128, 512}, {"0.28", 128, 464}, {"0.32", 144, 448}, {"0.33", 144, 432},
    {"0.35", 144, 416}, {"0.4", 160, 400},  {"0.42", 160, 384}, {"0.48", 176, 368},
    {"0.5", 176, 352},  {"0.52", 176, 336}, {"0.57", 192, 336}, {"0.6", 192, 320},
    {"0.68", 208, 304}, {"0.72", 208, 288}, {"0.78", 224, 288}, {"0.82", 224, 272},
    {"0.88", 240, 272}, {"0.94", 240, 256}, {"1.0", 256, 256},  {"1.07", 256, 240},
    {"1.13", 272, 240}, {"1.21", 272, 224}, {"1.29", 288, 224}, {"1.38", 288, 208},
    {"1.46", 304, 208}, {"1.67", 320, 192}, {"1.75", 336, 192}, {"2.0", 352, 176},
    {"2.09", 368, 176}, {"2.4", 384, 160},  {"2.5", 400, 160},  {"3.0", 432, 144},
    {"4.0", 512, 128},
};

// PixArtSigmaPipeline adds ASPECT_RATIO_2048_BIN (pipeline_pixart_sigma.py) for
// the 2K checkpoint (sample_size 256); it has 40 buckets, the others 33.
static const px_ar_bin bins_2048[] = {
    {"0.25", 1024, 4096},  {"0.26", 1024, 3968},  {"0.27", 1024, 3840},  {"0.28", 1024, 3712},
    {"0.32", 1152, 3584},  {"0.33", 1152, 3456},  {"0.35", 1152, 3328},  {"0.4", 1280, 3200},
    {"0.42", 1280, 3072},  {"0.48", 1408, 2944},  {"0.5", 1408, 2816},  {"0.52", 1408, 2688},
    {"0.57", 1536, 2688},  {"0.6", 1536, 2560},  {"0.68", 1664, 2432},  {"0.72", 1664, 2304},
    {"0.78", 1792, 2304},  {"0.82", 1792, 2176},  {"0.88", 1920, 2176},  {"0.94", 1920, 2048},
    {"1.0", 2048, 2048},  {"1.07", 2048, 1920},  {"1.13", 2176, 1920},  {"1.21", 2176, 1792},
    {"1.29", 2304, 1792},  {"1.38", 2304, 1664},  {"1.46", 2432, 1664},  {"1.67", 2560, 1536},
    {"1.75", 2688, 1536},  {"2.0", 2816, 1408},  {"2.09", 2944, 1408},  {"2.4", 3072, 1280},
    {"2.5", 3200, 1280},  {"2.89", 3328, 1152},  {"3.0", 3456, 1152},  {"3.11", 3584, 1152},
    {"3.62", 3712, 1024},  {"3.75", 3840, 1024},  {"3.88", 3968, 1024},  {"4.0", 4096, 1024},
};

#define COUNT(a) ((int)(sizeof(a) / sizeof((a)[0])))

const px_ar_bin *px_ar_bin_table(int sample_size, int *n)
{
    switch (sample_size) {
    case 128: *n = COUNT(bins_1024); return bins_1024;
    case 64: *n = COUNT(bins_512); return bins_512;
    case 32: *n = COUNT(bins_256); return bins_256;
    default: *n = 0; return NULL;
    }
}

const px_ar_bin *px_ar_bin_table_sigma(int sample_size, int *n)
{
    if (sample_size == 256) {
        *n = COUNT(bins_2048);
        return bins_2048;
    }
    return px_ar_bin_table(sample_size, n);
}

int px_classify_height_width_bin(int height, int width, const px_ar_bin *table, int n, int *bin_height,
                                 int *bin_width)
{
    if (height <= 0 || width <= 0) return px_fail("resolution binning: size %dx%d is not positive", height, width);
    if (!table || n <= 0) return px_fail("resolution binning: empty bucket table");
    double ar = (double)height / (double)width; // float(height / width)
    int best = 0;
    double best_d = INFINITY;
    for (int i = 0; i < n; i++) {
        // min(ratios.keys(), key=lambda r: abs(float(r) - ar)): strictly smaller wins
        double d = fabs(strtod(table[i].key, NULL) - ar);
        if (d < best_d) {
            best_d = d;
            best = i;
        }
    }
    *bin_height = table[best].height;
    *bin_width = table[best].width;
    return 0;
}

// ---------------------------------------------------------------------------
// resize_and_crop_tensor

void px_resize_crop_size(int H, int W, int new_h, int new_w, int *resized_h, int *resized_w)
{
    if (H == new_h && W == new_w) {
        *resized_h = H;
        *resized_w = W;
        return;
    }
    // ratio = max(new_height / orig_height, new_width / orig_width)  (Python floats)
    double rh = (double)new_h / (double)H, rw = (double)new_w / (double)W;
    double ratio = rh > rw ? rh : rw;
    *resized_w = (int)((double)W * ratio); // int(orig_width * ratio)
    *resized_h = (int)((double)H * ratio);
    // In exact arithmetic one side is new_w (or new_h) and the other at least
    // its new size, but the division and the product can round to new - 1e-14,
    // which int() truncates a pixel short of the crop: 48x104 binned to
    // 176x368 resizes to 49x103 (about 2% of all sizes in the bucket tables;
    // found by tests/fuzz/fuzz_cli_args). diffusers then slices [-1:103] and
    // returns a 1-pixel-wide image; the crop size is what it means.
    if (*resized_w < new_w) *resized_w = new_w;
    if (*resized_h < new_h) *resized_h = new_h;
}

/* Source indices and weights along one axis, as torch 1.13's CPU kernel
 * (compute_indices_weights_linear, align_corners=False, no scale given):
 * scale = float(in) / out in float32, but the source coordinate
 * scale * (i + 0.5) - 0.5 is evaluated in double (the 0.5 literals are
 * doubles) and only lambda is rounded to float: i0 = floor(src) (clamped),
 * i1 = i0 + (i0 < in - 1), l1 = float(src - i0), l0 = 1 - l1 (float).
 * Rounding src to float first moves the result by up to ~40 ulp on large
 * images (measured against the reference; see doc/pipeline.md). */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("fp-contract=off")))
#endif
static void linear_axis(int in, int out, int *i0, int *i1, float *l0, float *l1)
{
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        double src = (double)scale * ((double)i + 0.5) - 0.5;
        if (src < 0.0) src = 0.0;
        int idx = (int)floor(src);
        if (idx > in - 1) idx = in - 1;
        double lam = src - (double)idx;
        if (lam < 0.0) lam = 0.0;
        if (lam > 1.0) lam = 1.0;
        i0[i] = idx;
        i1[i] = idx + (idx < in - 1 ? 1 : 0);
        l1[i] = (float)lam;
        l0[i] = 1.f - l1[i];
    }
}

/* torch's Interpolate<2> for two taps, t0 * w0 + t1 * w1, as its AVX2 build
 * compiles it: the second product rounded, the first fused (fma). Using
 * fmaf() explicitly keeps this bit-exact whatever the compiler contracts. */
static inline float lerp2(float t0, float w0, float t1, float w1)
{
    return fmaf(t0, w0, t1 * w1);
}

int px_resize_bilinear(float *out, const float *x, int64_t N, int H, int W, int oh, int ow)
{
    if (N <= 0 || H <= 0 || W <= 0 || oh <= 0 || ow <= 0)
        return px_fail("bilinear resize: bad sizes %dx%d -> %dx%d", H, W, oh, ow);
    int *hi0 = px_malloc(sizeof(int) * (size_t)(2 * oh + 2 * ow), "bilinear resize indices");
    float *hw = px_malloc(sizeof(float) * (size_t)(2 * oh + 2 * ow), "bilinear resize weights");
    if (!hi0 || !hw) {
        free(hi0);
        free(hw);
        return -1;
    }
    int *hi1 = hi0 + oh, *wi0 = hi1 + oh, *wi1 = wi0 + ow;
    float *hl0 = hw, *hl1 = hl0 + oh, *wl0 = hl1 + oh, *wl1 = wl0 + ow;
    linear_axis(H, oh, hi0, hi1, hl0, hl1);
    linear_axis(W, ow, wi0, wi1, wl0, wl1);
#pragma omp parallel for schedule(static) if (N * oh * ow > 65536)
    for (int64_t n = 0; n < N; n++) {
        const float *p = x + n * (int64_t)H * W;
        float *o = out + n * (int64_t)oh * ow;
        for (int y = 0; y < oh; y++) {
            const float *r0 = p + (int64_t)hi0[y] * W, *r1 = p + (int64_t)hi1[y] * W;
            for (int xo = 0; xo < ow; xo++) {
                // width first within each source row, then the two rows
                float t0 = lerp2(r0[wi0[xo]], wl0[xo], r0[wi1[xo]], wl1[xo]);
                float t1 = lerp2(r1[wi0[xo]], wl0[xo], r1[wi1[xo]], wl1[xo]);
                o[(int64_t)y * ow + xo] = lerp2(t0, hl0[y], t1, hl1[y]);
            }
        }
    }
    free(hi0);
    free(hw);
    return 0;
}

int px_resize_and_crop(float *out, const float *x, int B, int C, int H, int W, int new_h, int new_w)
{
    if (B <= 0 || C <= 0 || H <= 0 || W <= 0 || new_h <= 0 || new_w <= 0)
        return px_fail("resize_and_crop: bad sizes (%d, %d, %d, %d) -> %dx%d", B, C, H, W, new_h, new_w);
    int64_t N = (int64_t)B * C;
    if (H == new_h && W == new_w) {
        memcpy(out, x, sizeof(float) * (size_t)(N * H * W));
        return 0;
    }
    int rh, rw;
    px_resize_crop_size(H, W, new_h, new_w, &rh, &rw);
    if (rh < new_h || rw < new_w)
        return px_fail("resize_and_crop: resized %dx%d is smaller than the crop %dx%d", rh, rw, new_h, new_w);
    float *tmp = px_malloc(sizeof(float) * (size_t)(N * rh * rw), "resize_and_crop buffer");
    if (!tmp) return -1;
    if (px_resize_bilinear(tmp, x, N, H, W, rh, rw)) {
        free(tmp);
        return -1;
    }
    // centre crop: start = (resized - new) // 2
    int sy = (rh - new_h) / 2, sx = (rw - new_w) / 2;
    for (int64_t n = 0; n < N; n++)
        for (int y = 0; y < new_h; y++)
            memcpy(out + (n * new_h + y) * new_w, tmp + (n * rh + sy + y) * rw + sx, sizeof(float) * (size_t)new_w);
    free(tmp);
    return 0;
}
