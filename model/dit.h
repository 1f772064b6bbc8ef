/* The PixArt DiT: diffusers' PixArtTransformer2DModel (v0.30.3), which older
 * checkpoints call Transformer2DModel(norm_type="ada_norm_single").
 *
 * patch embedding + 2-D sin-cos position embedding -> adaLN-single timestep
 * (and, for sample_size 128, resolution / aspect-ratio) conditioning ->
 * caption projection -> N x BasicTransformerBlock(ada_norm_single) ->
 * norm_out + scale_shift_table modulation -> proj_out -> unpatchify. */
#ifndef PX_DIT_H
#define PX_DIT_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/dump.h"

typedef struct px_dit px_dit;

/* Loads DIR/config.json and DIR/diffusion_pytorch_model[.VARIANT].safetensors
 * (a diffusers "transformer/" folder) through the weight layer
 * (model/weights.h). Large matrices stay in the checkpoint's dtype (F32, F16
 * or BF16) in the mapping; biases and the scale-shift tables are read as F32
 * (converted once when stored in half precision). NULL (px_last_error names
 * the file and the field or tensor) on failure, also when the file holds
 * tensors the config does not use (attention_bias false next to q/k/v biases,
 * more layers than num_layers). */
px_dit *px_dit_load(const char *dir, const char *variant);
void px_dit_free(px_dit *m);

int px_dit_in_channels(const px_dit *m);
int px_dit_out_channels(const px_dit *m);   /* 8 with learned sigma: the pipeline keeps [0, 4) */
int px_dit_sample_size(const px_dit *m);    /* latent size the model was trained at */
int px_dit_patch_size(const px_dit *m);
int px_dit_caption_channels(const px_dit *m); /* channels of ctx (T5 d_model: 4096) */
int px_dit_hidden_size(const px_dit *m);    /* heads * head_dim */
int px_dit_num_layers(const px_dit *m);
/* 1 when adaln_single takes resolution and aspect ratio (diffusers'
 * use_additional_conditions: sample_size == 128 unless the config says). */
int px_dit_uses_micro_conditions(const px_dit *m);
/* Bytes of the blocks' matrices copied into 2 MiB pages at load (model/dit.c
 * make_resident); 0 when they are read from the file mapping
 * (PIXART_DIT_MMAP_WEIGHTS=1, or no blocks). */
size_t px_dit_resident_bytes(const px_dit *m);

/* One denoiser evaluation.
 *   out (B, out_ch, h, w)
 *   x (B, in_ch, h, w) latents (h, w multiples of the patch size)
 *   timestep (B): the (integer) timesteps as floats
 *   ctx (B, L, caption_channels) T5 embeddings; ctx_mask (B, L) 0/1 (1 = attend)
 *   resolution (B, 2) [height, width] and aspect_ratio (B) (height / width)
 *     as float32, required when micro-conditioned, ignored (may be NULL) otherwise
 *   dump: records every module output under the reference names, or NULL.
 * Activation buffers are kept in m between calls (resized when B, h, w or L
 * grow), so a model must not be used by two threads at once. Returns 0 / -1. */
int px_dit_forward(px_dit *m, float *out, const float *x, const float *timestep, const float *ctx,
                   const int32_t *ctx_mask, int B, int h, int w, int L, const float *resolution,
                   const float *aspect_ratio, px_dump *dump);

/* The 2-D sin-cos position embedding PatchEmbed adds for latents of size
 * (h, w): out (h/p * w/p, hidden) float32, tokens row-major over the patch grid.
 * Computed as diffusers does (float32 grid, float64 sin/cos, cast to float32),
 * with base_size = sample_size / p and the model's interpolation scale. */
int px_dit_pos_embed(const px_dit *m, float *out, int h, int w);

/* The same for any dimensions (embed_dim a multiple of 4). */
int px_sincos_pos_embed_2d(float *out, int embed_dim, int grid_h, int grid_w, int base_size,
                           double interpolation_scale);

/* Sinusoidal timestep embedding as diffusers' Timesteps(dim, flip_sin_to_cos=True,
 * downscale_freq_shift=0) computes it in float32: out (n, dim) = [cos, sin]. */
void px_timestep_embedding(float *out, const float *t, int n, int dim);

#endif
