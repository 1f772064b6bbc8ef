/* The VAE: diffusers AutoencoderKL (autoencoders/autoencoder_kl.py, v0.30.3)
 * with its Decoder and Encoder (autoencoders/vae.py), as PixArt-alpha uses it
 * (sd-vae-ft-ema: block_out_channels 128/256/512/512, layers_per_block 2,
 * 32 GroupNorm groups, 4 latent channels) and any configuration of the same
 * family (UpDecoderBlock2D / DownEncoderBlock2D blocks, SiLU).
 *
 * Weights are looked up by their exact state-dict names
 * ("decoder.up_blocks.3.resnets.0.conv_shortcut.weight", ...). Convolution and
 * attention matrices stay in their checkpoint dtype (F32, F16 or BF16, mmap'd)
 * and are widened by the operators; biases and norm weights are read as
 * float32 (converted once at load when stored in half precision). A file
 * with tensors the config does not use is refused. All arithmetic is float32.
 *
 * Memory: without a dump, batch elements are decoded one at a time, buffers
 * are freed as soon as they are dead and the mid-block attention runs through
 * the tiled O(N*d) kernel, so a 1024x1024 sd-vae-ft-ema decode peaks at about
 * 2 GiB of activations (doc/vae.md); px_vae_set_tiling bounds it further. */
#ifndef PX_VAE_H
#define PX_VAE_H

#include <stdint.h>

#include "tensor/dump.h"
#include "tensor/tensor.h"

/* ---- config ("the blueprint", from config.json) ---------------------- */
enum { PX_VAE_MAX_BLOCKS = 8 };

typedef struct {
    int in_channels;      /* image channels (3) */
    int out_channels;     /* decoded channels (3) */
    int latent_channels;  /* (4) */
    int nblocks;          /* len(block_out_channels) */
    int block_out[PX_VAE_MAX_BLOCKS];
    int layers_per_block; /* encoder blocks have this many ResNets, decoder blocks one more */
    int norm_num_groups;  /* GroupNorm groups everywhere (eps 1e-6) */
    int sample_size;      /* tile_sample_min_size of tiled decoding */
    int mid_block_add_attention;
    int use_quant_conv, use_post_quant_conv;
    float scaling_factor;
} px_vae_config;

/* Parses a diffusers AutoencoderKL config.json. Absent fields take
 * AutoencoderKL's defaults (in/out 3, block_out_channels [64],
 * layers_per_block 1, latent 4, 32 groups, sample_size 32, scaling_factor
 * 0.18215, attention and (post_)quant_conv on). Block types other than
 * DownEncoderBlock2D / UpDecoderBlock2D, act_fn other than "silu", group
 * counts that do not divide every channel count, and nonsense sizes are
 * rejected with a message naming the file and field. */
int px_vae_config_load(px_vae_config *c, const char *path);

/* ---- model ----------------------------------------------------------- */
typedef struct px_vae px_vae;

/* Loads DIR/config.json and DIR/diffusion_pytorch_model[.VARIANT].safetensors
 * (or its sharded index). NULL with a message naming the file and tensor on
 * failure (a missing or mis-shaped tensor, or tensors no module uses). */
px_vae *px_vae_load(const char *dir, const char *variant);

/* Builds a model over tensors owned by the caller (benchmarks, tests):
 * get(ctx, name) returns the tensor called `name` in the diffusers state dict,
 * or NULL. The tensors must outlive the model. */
typedef const px_tensor *(*px_vae_lookup_fn)(void *ctx, const char *name);
px_vae *px_vae_new(const px_vae_config *c, px_vae_lookup_fn get, void *ctx, const char *desc);

void px_vae_free(px_vae *m);

const px_vae_config *px_vae_get_config(const px_vae *m);
float px_vae_scaling_factor(const px_vae *m);
/* 2^(len(block_out_channels) - 1): pixels per latent along each axis. */
int px_vae_downscale(const px_vae *m);
int px_vae_latent_channels(const px_vae *m);

/* AutoencoderKL.decode(z).sample.
 * z: (B, latent_channels, h, w), ALREADY divided by scaling_factor (the
 * pipeline does that); out: (B, out_channels, h*f, w*f) with f =
 * px_vae_downscale, the raw decoder output (no /2 + 0.5, no clamp).
 * dump (or NULL) receives "vae/post_quant_conv", "vae/decoder.*" outputs and
 * ".in" inputs under the reference's names (then the whole batch runs at once,
 * like diffusers, instead of one element at a time). Returns 0 or -1. */
int px_vae_decode(px_vae *m, float *out, const float *z, int B, int h, int w, px_dump *dump);

/* enable_tiling() (1) / disable_tiling() (0). With tiling on, latents larger
 * than tile_latent_min_size = sample_size / f in either dimension are decoded
 * in tiles of that size every int(0.75 * tile) latents, and the decoded tiles
 * are blended over int(0.25 * sample_size) pixels with blend_v / blend_h and
 * cropped exactly as diffusers' tiled_decode (the same for images larger than
 * sample_size in px_vae_encode: tiled_encode). Returns the previous setting. */
int px_vae_set_tiling(px_vae *m, int enabled);

/* Memory of a decode, for choosing between the untiled and the tiled path
 * before running it (the pipeline's memory budget, doc/vae.md "Memory").
 * px_vae_decode_work_bytes: the peak of the buffers px_vae_decode allocates
 * itself (activations and operator scratch, B latents decoded at once: 1
 * without a dump) for (B, latent_channels, h, w) latents, untiled (tiled 0)
 * or with tiling on (1), nt operator threads; obtained by replaying this
 * file's allocations in order, so it excludes the caller's z and out and the
 * weights. px_vae_decoder_params: the number of parameters the decode reads
 * (post_quant_conv and the Decoder). */
int64_t px_vae_decode_work_bytes(const px_vae_config *c, int64_t B, int64_t h, int64_t w, int tiled, int nt);
int64_t px_vae_decoder_params(const px_vae_config *c);
/* 1 when enable_tiling()'s tiles give exactly the untiled h*f x w*f image
 * for (h, w) latents (px_vae_decode refuses tiling otherwise). */
int px_vae_tiling_covers(const px_vae_config *c, int64_t h, int64_t w);

/* AutoencoderKL.encode(x).latent_dist.mean.
 * x: (B, in_channels, H, W); mean: (B, latent_channels, H/f, W/f) (integer
 * division: each Downsample2D pads right/bottom by one and convolves with
 * stride 2), quant_conv applied. Dump keys "vae/encoder.*", "vae/quant_conv".
 * Returns 0 or -1. */
int px_vae_encode(px_vae *m, float *mean, const float *x, int B, int H, int W, px_dump *dump);

#endif
