/* enable_tiling(): diffusers AutoencoderKL.tiled_decode / tiled_encode
 * (autoencoders/autoencoder_kl.py, v0.30.3) and its blend_v / blend_h. */
#include "vae_tiled.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"

/* b[:, :, y, :] = a[:, :, -e + y, :] * (1 - y / e) + b[:, :, y, :] * (y / e)
 * for y < e = min(a_h, b_h, extent). The weights are Python floats (double)
 * that torch rounds to float32 for the float32 multiply; each product is
 * rounded before the sum (volatile keeps the compiler from fusing them). */
static void blend_v(const float *a, int64_t ah, float *b, int64_t bh, int64_t BC, int64_t w,
                    int64_t extent)
{
    int64_t e = extent;
    if (ah < e) e = ah;
    if (bh < e) e = bh;
    for (int64_t y = 0; y < e; y++) {
        const float wb = (float)((double)y / (double)e), wa = (float)(1.0 - (double)y / (double)e);
        for (int64_t i = 0; i < BC; i++) {
            const float *ar = a + (i * ah + ah - e + y) * w;
            float *br = b + (i * bh + y) * w;
            for (int64_t x = 0; x < w; x++) {
                volatile float pa = ar[x] * wa;
                br[x] = pa + br[x] * wb;
            }
        }
    }
}

/* b[:, :, :, x] = a[:, :, :, -e + x] * (1 - x / e) + b[:, :, :, x] * (x / e) */
static void blend_h(const float *a, int64_t aw, float *b, int64_t bw, int64_t BC, int64_t h,
                    int64_t extent)
{
    int64_t e = extent;
    if (aw < e) e = aw;
    if (bw < e) e = bw;
    for (int64_t x = 0; x < e; x++) {
        const float wb = (float)((double)x / (double)e), wa = (float)(1.0 - (double)x / (double)e);
        for (int64_t i = 0; i < BC * h; i++) {
            volatile float pa = a[i * aw + aw - e + x] * wa;
            b[i * bw + x] = pa + b[i * bw + x] * wb;
        }
    }
}

static int64_t tile_out(const px_vae_tiling *t, int64_t n, int f) { return t->up ? n * f : n / f; }

/* Output extent of the tiled result along one axis of n input positions. */
static int64_t tiled_extent(const px_vae_tiling *t, int64_t n, int f)
{
    int64_t total = 0;
    for (int64_t s = 0; s < n; s += t->overlap) {
        int64_t len = n - s < t->tile ? n - s : t->tile, o = tile_out(t, len, f);
        total += o < t->row_limit ? o : t->row_limit;
    }
    return total;
}

/* Runs fn on every tile of in (B, cin, H, W), blends and crops into out
 * (B, cout, OH, OW). Tiles are decoded row by row; only the previous row of
 * decoded tiles is kept (the blends read the tile above and the tile to the
 * left, both already blended, as diffusers' in-place blending does). */
int px_vae_run_tiled(px_vae *m, const px_vae_tiling *t, px_vae_tile_fn fn, float *out, const float *in, int64_t B,
                     int64_t cin, int64_t H, int64_t W, int64_t cout, px_dump *d)
{
    const int f = px_vae_downscale(m);
    const int64_t nj = (W + t->overlap - 1) / t->overlap, OW = tiled_extent(t, W, f),
                  OH = tiled_extent(t, H, f);
    float **prev = px_calloc((size_t)nj, sizeof(float *), "vae tile row");
    float **cur = px_calloc((size_t)nj, sizeof(float *), "vae tile row");
    float *tin = px_malloc((size_t)(B * cin * t->tile * t->tile) * sizeof(float), "vae input tile");
    int rc = -1;
    if (!prev || !cur || !tin) goto out;
    int64_t oy = 0, prev_oh = 0;
    for (int64_t i = 0; i < H; i += t->overlap) {
        const int64_t th = H - i < t->tile ? H - i : t->tile, oh = tile_out(t, th, f);
        for (int64_t jj = 0; jj < nj; jj++) {
            const int64_t j = jj * t->overlap, tw = W - j < t->tile ? W - j : t->tile,
                          ow = tile_out(t, tw, f);
            /* tile = x[:, :, i : i + tile, j : j + tile] */
            for (int64_t bc = 0; bc < B * cin; bc++)
                for (int64_t y = 0; y < th; y++)
                    memcpy(tin + (bc * th + y) * tw, in + (bc * H + i + y) * W + j,
                           (size_t)tw * sizeof(float));
            cur[jj] = px_malloc((size_t)(B * cout * oh * ow) * sizeof(float), "vae output tile");
            if (!cur[jj] || fn(m, cur[jj], tin, B, th, tw, d)) goto out;
        }
        int64_t ox = 0;
        for (int64_t jj = 0; jj < nj; jj++) {
            const int64_t j = jj * t->overlap, tw = W - j < t->tile ? W - j : t->tile,
                          ow = tile_out(t, tw, f);
            if (i > 0) blend_v(prev[jj], prev_oh, cur[jj], oh, B * cout, ow, t->blend);
            if (jj > 0) {
                const int64_t pw = tile_out(t, W - (j - t->overlap) < t->tile ? W - (j - t->overlap)
                                                                              : t->tile, f);
                blend_h(cur[jj - 1], pw, cur[jj], ow, B * cout, oh, t->blend);
            }
            /* result_row.append(tile[:, :, :row_limit, :row_limit]) */
            const int64_t ch = oh < t->row_limit ? oh : t->row_limit,
                          cw = ow < t->row_limit ? ow : t->row_limit;
            for (int64_t bc = 0; bc < B * cout; bc++)
                for (int64_t y = 0; y < ch; y++)
                    memcpy(out + (bc * OH + oy + y) * OW + ox, cur[jj] + (bc * oh + y) * ow,
                           (size_t)cw * sizeof(float));
            ox += cw;
        }
        for (int64_t jj = 0; jj < nj; jj++) {
            free(prev[jj]);
            prev[jj] = cur[jj];
            cur[jj] = NULL;
        }
        prev_oh = oh;
        oy += oh < t->row_limit ? oh : t->row_limit;
    }
    rc = 0;
out:
    if (prev)
        for (int64_t jj = 0; jj < nj; jj++) free(prev[jj]);
    if (cur)
        for (int64_t jj = 0; jj < nj; jj++) free(cur[jj]);
    free(prev);
    free(cur);
    free(tin);
    return rc;
}

/* The tiling parameters diffusers derives from the config (f = 2^(nblocks-1)). */
static void tiling_params(const px_vae_config *c, px_vae_tiling *t, int up)
{
    const int f = 1 << (c->nblocks - 1);
    const int64_t sample = c->sample_size, latent = (int64_t)((double)sample / f);
    /* tile_overlap_factor 0.25; int() truncates like Python */
    if (up) {
        t->tile = latent;
        t->overlap = (int64_t)((double)latent * (1 - 0.25));
        t->blend = (int64_t)((double)sample * 0.25);
        t->row_limit = sample - t->blend;
    } else {
        t->tile = sample;
        t->overlap = (int64_t)((double)sample * (1 - 0.25));
        t->blend = (int64_t)((double)latent * 0.25);
        t->row_limit = latent - t->blend;
    }
    t->up = up;
}

int px_vae_tiling_covers(const px_vae_config *c, int64_t h, int64_t w)
{
    px_vae_tiling t;
    const int f = 1 << (c->nblocks - 1);
    tiling_params(c, &t, 1);
    return t.overlap >= 1 && tiled_extent(&t, h, f) == h * f && tiled_extent(&t, w, f) == w * f;
}

/* The tiling parameters, and a check that the tiled result has the untiled
 * size (true whenever sample_size is a multiple of 4 * f; otherwise diffusers
 * returns a differently sized image, which this API cannot represent). */
int px_vae_tiling_make(const px_vae *m, px_vae_tiling *t, int up, int64_t H, int64_t W, const char *what)
{
    const int f = px_vae_downscale(m);
    tiling_params(px_vae_get_config(m), t, up);
    if (t->overlap < 1)
        return px_fail("%s: %s: tiling with sample_size %d and %d blocks gives empty tiles",
                       px_vae_desc(m), what, px_vae_get_config(m)->sample_size, px_vae_get_config(m)->nblocks);
    const int64_t eh = up ? H * f : H / f, ew = up ? W * f : W / f;
    if (tiled_extent(t, H, f) != eh || tiled_extent(t, W, f) != ew)
        return px_fail("%s: %s: tiling with sample_size %d gives a %lldx%lld result instead of "
                       "%lldx%lld (diffusers' tiles do not cover it exactly)",
                       px_vae_desc(m), what, px_vae_get_config(m)->sample_size, (long long)tiled_extent(t, H, f),
                       (long long)tiled_extent(t, W, f), (long long)eh, (long long)ew);
    if (!up) /* the encoder needs at least f pixels in every tile */
        for (int64_t s = 0; s < H || s < W; s += t->overlap)
            if ((s < H && H - s < f) || (s < W && W - s < f))
                return px_fail("%s: %s: an edge tile is smaller than %d pixels", px_vae_desc(m), what, f);
    return 0;
}
