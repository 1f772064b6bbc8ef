/* How much diffusers' tiled decode (enable_tiling()) changes the image, on
 * the reference data: for each entry, an untiled decode as diffusers
 * computes it and a tiled one of the same latents, compared as decoded
 * values (max abs difference, and relative to the largest |value|) and as
 * the 8-bit image numpy_to_pil makes of them (largest level difference,
 * share of channel values that differ).
 *   cases/small_*_nonsquare, small_sa4_*: the pipeline's final latents
 *     (8x16, the tiny pipe_small VAE tiles 8 latents every 6, 4-pixel
 *     blends) through our tiled decode, against the reference's untiled
 *     pipeline/vae_decoded (diffusers' own);
 *   vae/diffusers_vae.safetensors, tiled_decode entries: diffusers' tiled decode
 *     (13x22 and 2 x 9x10 latents), against our untiled decode of the same
 *     latents (equal to diffusers' untiled decode to ~1e-6: test_vae).
 * Reads $PIXART_DATA, by default the source tree's data/. doc/vae.md,
 * "Tiling". */
#include "model/vae.h"
#include "pixart/pixart.h"
#include "tensor/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef PX_DATA_DIR
#define PX_DATA_DIR "data"
#endif

static const char *data_dir(void)
{
    const char *d = getenv("PIXART_DATA");
    return d && *d ? d : PX_DATA_DIR;
}

/* Prints the comparison of a (B, 3, H, W) decode with the reference. */
static void report(const char *name, const char *what, const float *got, const float *ref, int64_t n,
                   const char *shape)
{
    double maxabs = 0, maxref = 0, sumabs = 0;
    int maxlev = 0;
    int64_t nlev = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - ref[i]);
        if (d > maxabs) maxabs = d;
        if (fabs(ref[i]) > maxref) maxref = fabs(ref[i]);
        sumabs += d;
        /* numpy_to_pil((x / 2 + 0.5).clamp(0, 1)) */
        float a = got[i] / 2 + 0.5f, b = ref[i] / 2 + 0.5f;
        uint8_t ua, ub;
        a = a < 0 ? 0 : a > 1 ? 1 : a;
        b = b < 0 ? 0 : b > 1 ? 1 : b;
        px_image_to_u8(&ua, &a, 1);
        px_image_to_u8(&ub, &b, 1);
        int lev = abs((int)ua - (int)ub);
        if (lev > maxlev) maxlev = lev;
        nlev += lev != 0;
    }
    printf("%-32s %-9s %8.4f %8.4f %9.5f %6d %6.1f%%  %s\n", name, shape, maxabs, maxabs / maxref, sumabs / n,
           maxlev, 100.0 * nlev / n, what);
}

static int decode_both(px_vae *m, float *untiled, float *tiled, const float *z, int B, int h, int w)
{
    px_vae_set_tiling(m, 0);
    if (untiled && px_vae_decode(m, untiled, z, B, h, w, NULL)) return -1;
    px_vae_set_tiling(m, 1);
    return tiled ? px_vae_decode(m, tiled, z, B, h, w, NULL) : 0;
}

/* A reference case: its last latents_stepNN / scaling_factor, tiled, against vae_decoded. */
static int run_case(px_vae *m, const char *cs, int last_step)
{
    char path[1024], key[64];
    snprintf(path, sizeof path, "%s/cases/%s.safetensors", data_dir(), cs);
    snprintf(key, sizeof key, "pipeline/latents_step%02d", last_step);
    int nd;
    int64_t zs[4], rs[4];
    float *z = px_safetensors_read_f32(path, key, 4, &nd, zs);
    float *ref = px_safetensors_read_f32(path, "pipeline/vae_decoded", 4, &nd, rs);
    if (!z || !ref) return -1;
    const int64_t nz = zs[0] * zs[1] * zs[2] * zs[3], n = rs[0] * rs[1] * rs[2] * rs[3];
    for (int64_t i = 0; i < nz; i++) z[i] /= px_vae_scaling_factor(m);
    float *tiled = malloc((size_t)n * sizeof(float));
    int rc = tiled ? decode_both(m, NULL, tiled, z, (int)zs[0], (int)zs[2], (int)zs[3]) : -1;
    if (!rc) {
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lld", (long long)zs[2], (long long)zs[3]);
        report(cs, "ours tiled vs diffusers untiled", tiled, ref, n, shape);
    }
    free(z);
    free(ref);
    free(tiled);
    return rc;
}

/* diffusers' tiled decode of the fixture against our untiled decode. */
static int run_fixture(px_vae *m, const char *entry)
{
    char path[1024], kz[96], ko[96];
    snprintf(path, sizeof path, "%s/vae/diffusers_vae.safetensors", data_dir());
    snprintf(kz, sizeof kz, "tiled_decode/%s/z", entry);
    snprintf(ko, sizeof ko, "tiled_decode/%s/out", entry);
    int nd;
    int64_t zs[4], rs[4];
    float *z = px_safetensors_read_f32(path, kz, 4, &nd, zs), *ref = px_safetensors_read_f32(path, ko, 4, &nd, rs);
    if (!z || !ref) return -1;
    const int64_t n = rs[0] * rs[1] * rs[2] * rs[3];
    float *untiled = malloc((size_t)n * sizeof(float));
    int rc = untiled ? decode_both(m, untiled, NULL, z, (int)zs[0], (int)zs[2], (int)zs[3]) : -1;
    if (!rc) {
        char shape[32];
        snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)zs[0], (long long)zs[2], (long long)zs[3]);
        report(kz, "diffusers tiled vs ours untiled", ref, untiled, n, shape);
    }
    free(z);
    free(ref);
    free(untiled);
    return rc;
}

int main(void)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/pipe_small/vae", data_dir());
    px_vae *m = px_vae_load(dir, NULL);
    if (!m) {
        fprintf(stderr, "vae_tiling_diff: %s (set PIXART_DATA to the source tree's data/)\n", px_last_error());
        return 1;
    }
    printf("tiled vs untiled VAE decode, pipe_small VAE (sample_size %d: tiles of %d latents)\n",
           px_vae_get_config(m)->sample_size, px_vae_get_config(m)->sample_size / px_vae_downscale(m));
    printf("%-32s %-9s %8s %8s %9s %6s %7s  %s\n", "entry", "latents", "max abs", "rel max", "mean abs", "levels",
           "differ", "compared");
    int rc = run_case(m, "small_dpm4_karras_o3_nonsquare", 3) || run_case(m, "small_sa4_karras_p1c3_nocfg", 3) ||
             run_fixture(m, "small") || run_fixture(m, "small_b2");
    if (rc) fprintf(stderr, "vae_tiling_diff: %s\n", px_last_error());
    px_vae_free(m);
    return rc ? 1 : 0;
}
