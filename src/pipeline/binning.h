/* Resolution binning of PixArt-alpha (diffusers v0.30.3):
 * ASPECT_RATIO_1024_BIN / _512_BIN / _256_BIN from pipeline_pixart_alpha.py,
 * ASPECT_RATIO_2048_BIN from pipeline_pixart_sigma.py,
 * PixArtImageProcessor.classify_height_width_bin and
 * PixArtImageProcessor.resize_and_crop_tensor (image_processor.py).
 *
 * With use_resolution_binning the pipeline generates at the bucket nearest to
 * the requested aspect ratio and afterwards resizes (bilinear,
 * align_corners=False, no antialias) and centre-crops back to the requested
 * size. */
#ifndef PX_BINNING_H
#define PX_BINNING_H

#include <stdint.h>

typedef struct {
    const char *key; /* the dict key as diffusers spells it ("0.72"); float(key) is the ratio */
    int height, width;
} px_ar_bin;

/* The table diffusers picks for a transformer sample_size: 128 -> 1024 bins,
 * 64 -> 512 bins, 32 -> 256 bins. NULL (and *n = 0) for any other size, where
 * diffusers raises "Invalid sample size". */
const px_ar_bin *px_ar_bin_table(int sample_size, int *n);

/* PixArtSigmaPipeline's choice: 256 -> the 2048 bins (ASPECT_RATIO_2048_BIN),
 * otherwise as px_ar_bin_table. */
const px_ar_bin *px_ar_bin_table_sigma(int sample_size, int *n);

/* classify_height_width_bin: ar = height / width (double); the first entry in
 * table order minimising |float(key) - ar| (exact ties keep the earlier key,
 * as Python's min() does). Returns 0, or -1 for a non-positive size or an
 * empty table. */
int px_classify_height_width_bin(int height, int width, const px_ar_bin *table, int n, int *bin_height,
                                 int *bin_width);

/* The size resize_and_crop_tensor resizes (H, W) to before cropping to
 * (new_h, new_w): ratio = max(new_h / H, new_w / W), int() truncation, but
 * never smaller than the crop (where float rounding makes int() a pixel
 * short, diffusers returns a broken 1-pixel-wide image; see binning.c).
 * Equal sizes are returned unchanged (no resize). */
void px_resize_crop_size(int H, int W, int new_h, int new_w, int *resized_h, int *resized_w);

/* torch.nn.functional.interpolate(x, size=(oh, ow), mode="bilinear",
 * align_corners=False) on float32, CPU, as torch 1.13 computes it.
 * x: (N, H, W) planes (N = batch * channels), out: (N, oh, ow).
 * Returns 0, or -1 (bad size / out of memory). */
int px_resize_bilinear(float *out, const float *x, int64_t N, int H, int W, int oh, int ow);

/* resize_and_crop_tensor(samples, new_width, new_height).
 * x: (B, C, H, W), out: (B, C, new_h, new_w). When the sizes already match
 * the data is copied. Returns 0, or -1 (out of memory / bad size). */
int px_resize_and_crop(float *out, const float *x, int B, int C, int H, int W, int new_h, int new_w);

#endif
