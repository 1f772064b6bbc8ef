/* enable_tiling() for the VAE: diffusers AutoencoderKL.tiled_decode /
 * tiled_encode (v0.30.3) with blend_v / blend_h, over any function that
 * decodes or encodes one tile (vae.c's decode_tile / encode_tile). Internal
 * to model/: the public switch is px_vae_set_tiling. */
#ifndef PX_VAE_TILED_H
#define PX_VAE_TILED_H

#include <stdint.h>

#include "model/vae.h"

/* Decodes or encodes one (B, cin, h, w) tile into out. */
typedef int (*px_vae_tile_fn)(px_vae *m, float *out, const float *in, int64_t B, int64_t h, int64_t w,
                       px_dump *d);

typedef struct {
    int64_t tile;      /* input tile size (tile_latent_min_size / tile_sample_min_size) */
    int64_t overlap;   /* step between tile starts: int(tile * (1 - 0.25)) */
    int64_t blend;     /* blend_extent (output pixels) */
    int64_t row_limit; /* output rows/cols kept per tile */
    int up;            /* 1: output = input * f (decode); 0: input / f (encode) */
} px_vae_tiling;

/* The tiling parameters diffusers derives from the config for decoding (up 1)
 * or encoding (up 0) an H x W input; -1 with a message when diffusers' tiles
 * would not give the untiled size (what: "decode" / "encode"). */
int px_vae_tiling_make(const px_vae *m, px_vae_tiling *t, int up, int64_t H, int64_t W, const char *what);

/* Runs fn on every tile of in (B, cin, H, W), blends and crops into out
 * (B, cout, OH, OW) exactly as diffusers does. */
int px_vae_run_tiled(px_vae *m, const px_vae_tiling *t, px_vae_tile_fn fn, float *out, const float *in, int64_t B,
                     int64_t cin, int64_t H, int64_t W, int64_t cout, px_dump *d);

/* The weights file, for messages. */
const char *px_vae_desc(const px_vae *m);

#endif
