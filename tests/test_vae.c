/* VAE tests (model/vae.c, diffusers AutoencoderKL): every vae/... activation
 * of the two reference pipelines' first case, pipeline/vae_decoded of every
 * reference case, tiled decoding and encoding against diffusers'
 * enable_tiling() (data/vae/, tools/gen_vae_fixture.py) and against the blend
 * rule worked out by hand, the encoder module by module, BF16/F16 copies of
 * the checkpoints, and broken checkpoints/inputs.
 * Tolerances and the measured errors are in doc/vae.md. */
#include "testutil.h"
#include "model/vae.h"
#include "ops/ops.h"
#include "tensor/dump.h"
#include "tensor/error.h"
#include "tensor/half.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per-tensor tolerance (doc/vae.md): |got - want| <= TOL * max|want|. The
 * errors are float32 summation-order differences (im2col + OpenBLAS sgemm vs
 * torch's mkldnn convolution, GroupNorm statistics, the tiled softmax),
 * amplified by the random-weight networks (measured worst: see doc/vae.md). */
#define TOL 5e-6
/* BF16 / F16 weights against the F32 reference, times max|want| (weight
 * rounding, 2^-9 resp. 2^-12 relative, through every layer). */
#define BF16_TOL 1e-2
#define F16_TOL 1.5e-3

static int verbose(void) { return getenv("PIXART_VAE_REPORT") != NULL; }

static double absmax(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static void check_close(const float *got, const float *want, size_t n, const char *label, double tol,
                        double *worst)
{
    double am = absmax(want, n), ma = 0;
    px_close_stats(got, want, n, 0, 0, &ma, NULL);
    if (verbose())
        fprintf(stderr, "  %-72s max|want| %9.3g  max abs err %9.3g  (%.3g of max)\n", label, am, ma,
                am > 0 ? ma / am : 0);
    if (worst && am > 0 && ma / am > *worst) *worst = ma / am;
    assert_close(got, want, n, tol * am, 0, label);
}

static px_vae *load_pipe(const char *pipe)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/vae", px_test_data(pipe));
    px_vae *m = px_vae_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    return m;
}

/* The decoder input of a case: the last pipeline/latents_stepNN divided by
 * scaling_factor, as the pipeline does (latents / vae.config.scaling_factor). */
static float *case_latents(px_vae *m, const px_st_file *ref, int64_t shape[4])
{
    char key[64];
    const px_tensor *t = NULL;
    for (int s = 99; s >= 0 && !t; s--) {
        snprintf(key, sizeof key, "pipeline/latents_step%02d", s);
        t = px_st_find(ref, key);
    }
    ck_assert_msg(t != NULL, "no pipeline/latents_stepNN");
    ck_assert_int_eq(t->ndim, 4);
    memcpy(shape, t->shape, 4 * sizeof(int64_t));
    size_t n;
    float *z = px_test_get_f32(ref, key, &n);
    const float sf = px_vae_scaling_factor(m);
    for (size_t i = 0; i < n; i++) z[i] = z[i] / sf;
    return z;
}

/* ---- decoder: every vae/ activation of the first case of each pipeline ---- */

static void check_modules(const char *pipe, const char *case_name)
{
    char path[512];
    snprintf(path, sizeof path, "cases/%s.safetensors", case_name);
    px_st_file *ref = px_test_open(px_test_data(path));
    px_vae *m = load_pipe(pipe);
    int64_t s[4];
    float *z = case_latents(m, ref, s);
    const int f = px_vae_downscale(m);
    ck_assert_int_eq(s[1], px_vae_latent_channels(m));

    /* the decoder input is exactly what the reference pipeline fed it */
    size_t nz;
    float *zin = px_test_get_f32(ref, "vae/post_quant_conv#0.in", &nz);
    ck_assert_uint_eq(nz, (size_t)(s[0] * s[1] * s[2] * s[3]));
    assert_close(z, zin, nz, 0, 0, "latents / scaling_factor vs vae/post_quant_conv#0.in");
    free(zin);

    const int64_t nout = s[0] * 3 * s[2] * f * s[3] * f;
    float *out = malloc((size_t)nout * sizeof *out);
    px_dump *dump = px_dump_new();
    ck_assert_msg(px_vae_decode(m, out, z, (int)s[0], (int)s[2], (int)s[3], dump) == 0, "%s",
                  px_last_error());

    px_json *aliases = NULL;
    const px_json *al = ref->metadata ? px_json_get(ref->metadata, "aliases") : NULL;
    if (al && al->type == PX_JSON_STRING) aliases = px_json_parse(al->string, al->len, "aliases");
    ck_assert_ptr_nonnull(aliases);

    if (verbose()) fprintf(stderr, "%s (%s):\n", case_name, pipe);
    double worst = 0;
    size_t nref = 0, naliased = 0;
    /* every stored reference key is produced ... */
    for (size_t i = 0; i < ref->n; i++) {
        const char *key = ref->entries[i].name;
        if (strncmp(key, "vae/", 4) != 0) continue;
        nref++;
        size_t n, nw;
        const float *got = px_dump_get(dump, key, &n);
        ck_assert_msg(got != NULL, "%s: reference key %s was not produced", case_name, key);
        float *want = px_test_get_f32(ref, key, &nw);
        ck_assert_uint_eq(n, nw);
        check_close(got, want, n, key, TOL, &worst);
        free(want);
    }
    /* ... every aliased reference key too ... */
    for (size_t i = 0; i < aliases->count; i++) {
        const char *key = aliases->keys[i];
        if (strncmp(key, "vae/", 4) != 0) continue;
        ck_assert_msg(px_dump_get(dump, key, NULL) != NULL, "%s: aliased reference key %s was not produced",
                      case_name, key);
    }
    /* ... and every produced key is in the reference (stored or aliased) */
    for (size_t i = 0; i < px_dump_count(dump); i++) {
        const char *key = px_dump_key(dump, i);
        if (px_st_find(ref, key)) continue;
        const px_json *target = px_json_get(aliases, key);
        ck_assert_msg(target && target->type == PX_JSON_STRING, "%s: produced key %s is not in the reference",
                      case_name, key);
        size_t n, nw;
        const float *got = px_dump_get(dump, key, &n);
        float *want = px_test_get_f32(ref, target->string, &nw);
        ck_assert_uint_eq(n, nw);
        check_close(got, want, n, key, TOL, &worst);
        free(want);
        naliased++;
    }
    ck_assert_uint_eq(nref + naliased, px_dump_count(dump));

    /* the output before clamping */
    size_t nw;
    float *want = px_test_get_f32(ref, "pipeline/vae_decoded", &nw);
    ck_assert_uint_eq(nw, (size_t)nout);
    check_close(out, want, nw, "pipeline/vae_decoded", TOL, &worst);
    /* and without a dump (one batch element at a time) the same numbers */
    float *out2 = malloc((size_t)nout * sizeof *out2);
    ck_assert_int_eq(px_vae_decode(m, out2, z, (int)s[0], (int)s[2], (int)s[3], NULL), 0);
    assert_close(out2, out, (size_t)nout, 0, 0, "decode without dump vs with dump");
    if (verbose())
        fprintf(stderr, "%s: %zu stored + %zu aliased keys, worst abs err / max|want| = %.3g\n", case_name,
                nref, naliased, worst);
    free(want);
    free(out2);
    free(out);
    free(z);
    px_json_free(aliases);
    px_dump_free(dump);
    px_vae_free(m);
    px_st_close(ref);
}

START_TEST(modules_pipe_small) { check_modules("pipe_small", "small_dpm2_cfg"); }
END_TEST

START_TEST(modules_pipe_ms) { check_modules("pipe_ms", "ms_dpm2_cfg_32x80"); }
END_TEST

/* The same comparison with the scalar reference kernels (PIXART_FORCE_REF). */
START_TEST(modules_reference_kernels)
{
    px_ops_init();
    px_isa best = px_ops_isa();
    ck_assert_int_eq(px_ops_select(PX_ISA_REF), 0);
    check_modules("pipe_small", "small_dpm2_cfg");
    check_modules("pipe_ms", "ms_dpm2_cfg_32x80");
    ck_assert_int_eq(px_ops_select(best), 0);
}
END_TEST

/* pipeline/vae_decoded of every reference case that stores it. */
START_TEST(vae_decoded_every_case)
{
    px_json *index = px_json_load_file(px_test_data("cases/index.json"));
    ck_assert_msg(index != NULL, "%s", px_last_error());
    ck_assert_int_eq(index->type, PX_JSON_ARRAY);
    const char *pipes[4] = { "pipe_small", "pipe_ms", "pipe_lcm", "pipe_sigma" };
    px_vae *models[4];
    for (int k = 0; k < 4; k++) models[k] = load_pipe(pipes[k]);
    int checked = 0;
    for (size_t c = 0; c < index->count; c++) {
        const char *name = NULL, *pipe = NULL;
        ck_assert_int_eq(px_json_req_string(index->items[c], "name", &name, "index.json"), 0);
        ck_assert_int_eq(px_json_req_string(index->items[c], "pipeline", &pipe, "index.json"), 0);
        char rel[256];
        snprintf(rel, sizeof rel, "cases/%s.safetensors", name);
        px_st_file *ref = px_test_open(px_test_data(rel));
        if (!px_st_find(ref, "pipeline/vae_decoded")) { /* the large binning image */
            px_st_close(ref);
            continue;
        }
        px_vae *m = NULL;
        for (int k = 0; k < 4; k++)
            if (!strcmp(pipe, pipes[k])) m = models[k];
        ck_assert_msg(m != NULL, "case %s: unknown pipeline %s", name, pipe);
        int64_t s[4];
        float *z = case_latents(m, ref, s);
        const int f = px_vae_downscale(m);
        size_t nw;
        float *want = px_test_get_f32(ref, "pipeline/vae_decoded", &nw);
        ck_assert_uint_eq(nw, (size_t)(s[0] * 3 * s[2] * f * s[3] * f));
        float *out = malloc(nw * sizeof *out);
        ck_assert_msg(px_vae_decode(m, out, z, (int)s[0], (int)s[2], (int)s[3], NULL) == 0, "%s",
                      px_last_error());
        char label[300];
        snprintf(label, sizeof label, "%s pipeline/vae_decoded (%lldx%lldx%lld latents)", name,
                 (long long)s[0], (long long)s[2], (long long)s[3]);
        check_close(out, want, nw, label, TOL, NULL);
        free(out);
        free(want);
        free(z);
        px_st_close(ref);
        checked++;
    }
    ck_assert_int_ge(checked, 28);
    for (int k = 0; k < 4; k++) px_vae_free(models[k]);
    px_json_free(index);
}
END_TEST

/* Results do not depend on the thread count. */
START_TEST(threads_bit_identical)
{
    px_st_file *ref = px_test_open(px_test_data("cases/ms_dpm2_cfg_32x80.safetensors"));
    px_vae *m = load_pipe("pipe_ms");
    int64_t s[4];
    float *z = case_latents(m, ref, s);
    const int f = px_vae_downscale(m);
    size_t n = (size_t)(s[0] * 3 * s[2] * f * s[3] * f);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    int old = px_get_num_threads();
    px_set_num_threads(1);
    ck_assert_int_eq(px_vae_decode(m, a, z, (int)s[0], (int)s[2], (int)s[3], NULL), 0);
    px_set_num_threads(2);
    ck_assert_int_eq(px_vae_decode(m, b, z, (int)s[0], (int)s[2], (int)s[3], NULL), 0);
    px_set_num_threads(old);
    assert_close(b, a, n, 0, 0, "2 threads vs 1 thread");
    free(a);
    free(b);
    free(z);
    px_vae_free(m);
    px_st_close(ref);
}
END_TEST

/* ---- tiling ---------------------------------------------------------------- */

/* Latents no larger than tile_latent_min_size are not tiled: bit-identical. */
START_TEST(tiling_small_latents_untouched)
{
    px_st_file *ref = px_test_open(px_test_data("cases/small_dpm2_cfg.safetensors"));
    px_vae *m = load_pipe("pipe_small"); /* sample_size 16, f 2: tiles of 8 latents */
    int64_t s[4];
    float *z = case_latents(m, ref, s);
    ck_assert_int_eq(s[2], 8);
    ck_assert_int_eq(s[3], 8);
    size_t n = (size_t)(s[0] * 3 * 16 * 16);
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    ck_assert_int_eq(px_vae_decode(m, a, z, 1, 8, 8, NULL), 0);
    ck_assert_int_eq(px_vae_set_tiling(m, 1), 0);
    ck_assert_int_eq(px_vae_decode(m, b, z, 1, 8, 8, NULL), 0);
    assert_close(b, a, n, 0, 0, "tiling on, 8x8 latents vs untiled");
    ck_assert_int_eq(px_vae_set_tiling(m, 0), 1);
    free(a);
    free(b);
    free(z);
    px_vae_free(m);
    px_st_close(ref);
}
END_TEST

/* Against diffusers' tiled_decode / tiled_encode (data/vae/diffusers_vae.safetensors). */
static void check_fixture_decode(px_vae *m, const px_st_file *fx, const char *zkey, const char *okey)
{
    const px_tensor *zt = px_st_find(fx, zkey);
    ck_assert_ptr_nonnull(zt);
    size_t nz, nw;
    float *z = px_test_get_f32(fx, zkey, &nz), *want = px_test_get_f32(fx, okey, &nw);
    const int B = (int)zt->shape[0], h = (int)zt->shape[2], w = (int)zt->shape[3], f = px_vae_downscale(m);
    ck_assert_uint_eq(nw, (size_t)B * 3 * h * f * w * f);
    float *out = malloc(nw * sizeof *out);
    ck_assert_msg(px_vae_decode(m, out, z, B, h, w, NULL) == 0, "%s", px_last_error());
    check_close(out, want, nw, okey, TOL, NULL);
    /* and tiles do matter here: the untiled decode differs */
    int old = px_vae_set_tiling(m, 0);
    ck_assert_int_eq(px_vae_decode(m, out, z, B, h, w, NULL), 0);
    size_t bad = px_close_stats(out, want, nw, 1e-2 * absmax(want, nw), 0, NULL, NULL);
    ck_assert_msg(bad > 0, "%s: the untiled decode matches the tiled one", okey);
    px_vae_set_tiling(m, old);
    free(out);
    free(z);
    free(want);
}

START_TEST(tiled_decode_diffusers)
{
    px_st_file *fx = px_test_open(px_test_data("vae/diffusers_vae.safetensors"));
    px_vae *m = load_pipe("pipe_small");
    px_vae_set_tiling(m, 1);
    check_fixture_decode(m, fx, "tiled_decode/small/z", "tiled_decode/small/out");
    check_fixture_decode(m, fx, "tiled_decode/small_b2/z", "tiled_decode/small_b2/out");
    /* with a dump the decoder runs once per tile, like diffusers' hooks see it */
    size_t nz;
    float *z = px_test_get_f32(fx, "tiled_decode/small/z", &nz);
    float *out = malloc((size_t)3 * 26 * 44 * sizeof *out);
    px_dump *d = px_dump_new();
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 13, 22, d), 0);
    ck_assert_ptr_nonnull(px_dump_get(d, "vae/decoder.conv_out#11", NULL));
    ck_assert_ptr_null(px_dump_get(d, "vae/decoder.conv_out#12", NULL));
    size_t n;
    ck_assert_ptr_nonnull(px_dump_get(d, "vae/post_quant_conv#11.in", &n));
    ck_assert_uint_eq(n, 4 * 1 * 4); /* the last tile: rows 12..12, columns 18..21 */
    px_dump_free(d);
    free(out);
    free(z);
    px_vae_free(m);
    px_st_close(fx);
}
END_TEST

/* The blend rule worked out by hand on two tiles: the top-left crop of the
 * tiled result is tile (0,0) alone; the next columns are tile (0,1) with its
 * first blend_extent columns mixed with the last ones of tile (0,0) as
 * a * (1 - x/e) + b * (x/e); rows below row_limit come from the tile row below. */
START_TEST(tiled_decode_blend_rule)
{
    px_vae *m = load_pipe("pipe_small"); /* tile 8 latents, step 6, blend 4 px, keep 12 px */
    /* one row of tiles (h <= 6) and two columns: latents [0, 8) and [6, 12) */
    const int h = 6, w = 12, f = 2, w1 = w - 6, OW = w * f, e = 4, keep = 12;
    float *z = malloc((size_t)4 * h * w * sizeof *z);
    px_test_fill_uniform(z, (size_t)4 * h * w, 11, -5.0f, 5.0f);
    float *tiled = malloc((size_t)3 * h * f * OW * sizeof *tiled);
    px_vae_set_tiling(m, 1);
    ck_assert_int_eq(px_vae_decode(m, tiled, z, 1, h, w, NULL), 0);
    px_vae_set_tiling(m, 0);
    /* the two tiles decoded on their own */
    float *t0 = malloc((size_t)4 * h * 8 * sizeof *t0), *t1 = malloc((size_t)4 * h * w1 * sizeof *t1);
    for (int c = 0; c < 4; c++)
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < 8; x++) t0[(c * h + y) * 8 + x] = z[(c * h + y) * w + x];
            for (int x = 0; x < w1; x++) t1[(c * h + y) * w1 + x] = z[(c * h + y) * w + 6 + x];
        }
    const int W0 = 8 * f, W1 = w1 * f, Hp = h * f;
    float *d0 = malloc((size_t)3 * Hp * W0 * sizeof *d0), *d1 = malloc((size_t)3 * Hp * W1 * sizeof *d1);
    ck_assert_int_eq(px_vae_decode(m, d0, t0, 1, h, 8, NULL), 0);
    ck_assert_int_eq(px_vae_decode(m, d1, t1, 1, h, w1, NULL), 0);
    double maxerr = 0;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < Hp; y++)
            for (int x = 0; x < OW; x++) {
                double want;
                if (x < keep) { /* tile (0,0) cropped to row_limit */
                    want = d0[(c * Hp + y) * W0 + x];
                } else {        /* tile (0,1): its first e columns blended with tile (0,0)'s last e */
                    int bx = x - keep;
                    double b = d1[(c * Hp + y) * W1 + bx];
                    if (bx < e) {
                        double a = d0[(c * Hp + y) * W0 + W0 - e + bx];
                        want = a * (1.0 - (double)bx / e) + b * ((double)bx / e);
                    } else {
                        want = b;
                    }
                }
                double err = fabs(tiled[(c * Hp + y) * OW + x] - want);
                if (x < keep || x >= keep + e)
                    ck_assert_msg(err == 0, "unblended pixel (%d,%d,%d) differs by %g", c, y, x, err);
                maxerr = err > maxerr ? err : maxerr;
            }
    /* float32 weights and products vs this double evaluation: a few ulp */
    double am = absmax(d1, (size_t)3 * Hp * W1);
    if (verbose()) fprintf(stderr, "blend rule: max abs err %.3g (max|tile| %.3g)\n", maxerr, am);
    ck_assert_msg(maxerr <= 1e-6 * am, "blend error %g", maxerr);
    free(z); free(tiled); free(t0); free(t1); free(d0); free(d1);
    px_vae_free(m);
}
END_TEST

/* Configurations whose diffusers tiles would not cover the image exactly are refused. */
static const px_tensor *set_lookup(void *ctx, const char *name) { return px_st_set_find(ctx, name); }

START_TEST(tiling_refuses_inexact_sample_size)
{
    px_vae_config c;
    ck_assert_int_eq(px_vae_config_load(&c, px_test_data("pipe_small/vae/config.json")), 0);
    /* sample_size 18 with f 2: tiles of 9 latents every int(6.75) = 6, but
     * row_limit 18 - int(4.5) = 14 pixels > 12: diffusers returns an image of
     * another size (22 instead of 20 pixels here) */
    c.sample_size = 18;
    px_st_set *st = px_st_set_open_file(px_test_data("pipe_small/vae/diffusion_pytorch_model.safetensors"));
    ck_assert_msg(st != NULL, "%s", px_last_error());
    px_vae *m = px_vae_new(&c, set_lookup, st, "edited");
    ck_assert_msg(m != NULL, "%s", px_last_error());
    float z[4 * 10 * 10], out[3 * 20 * 20];
    px_test_fill_uniform(z, 400, 3, -1, 1);
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 10, 10, NULL), 0); /* untiled: fine */
    px_vae_set_tiling(m, 1);
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 10, 10, NULL), -1);
    ck_assert_msg(strstr(px_last_error(), "sample_size 18") != NULL, "%s", px_last_error());
    px_vae_free(m);
    px_st_set_close(st);
}
END_TEST

START_TEST(tiled_encode_diffusers)
{
    px_st_file *fx = px_test_open(px_test_data("vae/diffusers_vae.safetensors"));
    px_vae *m = load_pipe("pipe_small");
    size_t nx, nw;
    float *x = px_test_get_f32(fx, "tiled_encode/small/x", &nx);
    float *want = px_test_get_f32(fx, "tiled_encode/small/mean", &nw);
    ck_assert_uint_eq(nw, 4 * 20 * 22);
    float *mean = malloc(nw * sizeof *mean);
    px_vae_set_tiling(m, 1);
    ck_assert_msg(px_vae_encode(m, mean, x, 1, 40, 45, NULL) == 0, "%s", px_last_error());
    check_close(mean, want, nw, "tiled_encode/small/mean", TOL, NULL);
    px_vae_set_tiling(m, 0);
    ck_assert_int_eq(px_vae_encode(m, mean, x, 1, 40, 45, NULL), 0);
    ck_assert_msg(px_close_stats(mean, want, nw, 1e-2 * absmax(want, nw), 0, NULL, NULL) > 0,
                  "untiled encode matches the tiled one");
    free(mean);
    free(x);
    free(want);
    px_vae_free(m);
    px_st_close(fx);
}
END_TEST

/* ---- encoder ------------------------------------------------------------- */

/* pipe_small's encoder module by module (forward hooks in the generator). */
START_TEST(encoder_modules_small)
{
    px_st_file *fx = px_test_open(px_test_data("vae/diffusers_vae.safetensors"));
    px_vae *m = load_pipe("pipe_small");
    size_t nx, nw;
    float *x = px_test_get_f32(fx, "encode/small/x", &nx);
    float *want = px_test_get_f32(fx, "encode/small/mean", &nw);
    ck_assert_uint_eq(nw, 4 * 4 * 6);
    float *mean = malloc(nw * sizeof *mean);
    px_dump *d = px_dump_new();
    ck_assert_msg(px_vae_encode(m, mean, x, 1, 8, 12, d) == 0, "%s", px_last_error());
    if (verbose()) fprintf(stderr, "encoder (pipe_small):\n");
    double worst = 0;
    int nkeys = 0;
    for (size_t i = 0; i < fx->n; i++) {
        const char *key = fx->entries[i].name;
        if (strncmp(key, "vae/", 4) != 0) continue;
        size_t n, nr;
        const float *got = px_dump_get(d, key, &n);
        ck_assert_msg(got != NULL, "encoder key %s was not produced", key);
        float *r = px_test_get_f32(fx, key, &nr);
        ck_assert_uint_eq(n, nr);
        check_close(got, r, n, key, TOL, &worst);
        free(r);
        nkeys++;
    }
    ck_assert_int_ge(nkeys, 50);
    check_close(mean, want, nw, "encode/small/mean", TOL, &worst);
    /* every key, inputs included, as before the modules recorded themselves (issue 11) */
    const char **keys = malloc(px_dump_count(d) * sizeof *keys);
    for (size_t i = 0; i < px_dump_count(d); i++) keys[i] = px_dump_key(d, i);
    px_test_check_keys(keys, px_dump_count(d), "dumps/vae_encode_small.keys", NULL);
    free(keys);
    if (verbose()) fprintf(stderr, "encoder: %d keys, worst %.3g\n", nkeys, worst);
    /* without the dump: the same */
    float *m2 = malloc(nw * sizeof *m2);
    ck_assert_int_eq(px_vae_encode(m, m2, x, 1, 8, 12, NULL), 0);
    assert_close(m2, mean, nw, 0, 0, "encode without dump");
    free(m2);
    px_dump_free(d);
    free(mean);
    free(x);
    free(want);
    px_vae_free(m);
    px_st_close(fx);
}
END_TEST

/* pipe_ms (4 blocks, 4 groups, 2 layers per block), a batch of 2. */
START_TEST(encoder_pipe_ms_batch)
{
    px_st_file *fx = px_test_open(px_test_data("vae/diffusers_vae.safetensors"));
    px_vae *m = load_pipe("pipe_ms");
    size_t nx, nw;
    float *x = px_test_get_f32(fx, "encode/ms/x", &nx);
    float *want = px_test_get_f32(fx, "encode/ms/mean", &nw);
    ck_assert_uint_eq(nw, 2 * 4 * 4 * 6);
    float *mean = malloc(nw * sizeof *mean);
    ck_assert_msg(px_vae_encode(m, mean, x, 2, 32, 48, NULL) == 0, "%s", px_last_error());
    check_close(mean, want, nw, "encode/ms/mean", TOL, NULL);
    free(mean);
    free(x);
    free(want);
    px_vae_free(m);
    px_st_close(fx);
}
END_TEST

/* Round trip through the model's own encoder and decoder: decode latents,
 * encode the image, decode again. The random-weight networks are not
 * autoencoders, so this checks consistency, not reconstruction: the batch
 * and per-element paths agree, and the encoder's output has the latent shape
 * the decoder takes back. */
START_TEST(encode_decode_consistency)
{
    px_vae *m = load_pipe("pipe_small");
    const int B = 2, h = 5, w = 7, f = 2;
    float z[2 * 4 * 5 * 7];
    px_test_fill_uniform(z, sizeof z / sizeof z[0], 21, -4, 4);
    size_t ni = (size_t)B * 3 * h * f * w * f, nz = sizeof z / sizeof z[0];
    float *img = malloc(ni * sizeof *img), *img1 = malloc(ni / 2 * sizeof *img1);
    ck_assert_int_eq(px_vae_decode(m, img, z, B, h, w, NULL), 0);
    /* batch element 1 alone equals element 1 of the batch */
    ck_assert_int_eq(px_vae_decode(m, img1, z + nz / 2, 1, h, w, NULL), 0);
    assert_close(img1, img + ni / 2, ni / 2, 0, 0, "decode batch element 1 alone");
    float *mean = malloc(nz * sizeof *mean), *mean1 = malloc(nz / 2 * sizeof *mean1);
    ck_assert_int_eq(px_vae_encode(m, mean, img, B, h * f, w * f, NULL), 0);
    ck_assert_int_eq(px_vae_encode(m, mean1, img + ni / 2, 1, h * f, w * f, NULL), 0);
    assert_close(mean1, mean + nz / 2, nz / 2, 0, 0, "encode batch element 1 alone");
    /* the dump path (whole batch at once) gives the same numbers */
    px_dump *d = px_dump_new();
    float *mean_d = malloc(nz * sizeof *mean_d);
    ck_assert_int_eq(px_vae_encode(m, mean_d, img, B, h * f, w * f, d), 0);
    assert_close(mean_d, mean, nz, 0, 0, "encode with dump (batch) vs per element");
    px_dump_free(d);
    /* odd sizes: each Downsample2D keeps floor(H / 2) */
    float *odd = malloc((size_t)3 * 11 * 13 * sizeof *odd), om[4 * 5 * 6];
    px_test_fill_uniform(odd, 3 * 11 * 13, 5, -1, 1);
    ck_assert_int_eq(px_vae_encode(m, om, odd, 1, 11, 13, NULL), 0);
    for (size_t i = 0; i < sizeof om / sizeof om[0]; i++) ck_assert(isfinite(om[i]));
    free(odd);
    free(img); free(img1); free(mean); free(mean1); free(mean_d);
    px_vae_free(m);
}
END_TEST

/* ---- converted copies of the checkpoints --------------------------------- */

static char tmpdir[256];

static void setup(void) { px_test_tmpdir_make(tmpdir, sizeof tmpdir, "vae"); }
static void teardown(void) { px_test_tmpdir_remove(tmpdir); }

static float *decode_case(px_vae *m, const px_st_file *ref, size_t *n_out)
{
    int64_t s[4];
    float *z = case_latents(m, ref, s);
    const int f = px_vae_downscale(m);
    *n_out = (size_t)(s[0] * 3 * s[2] * f * s[3] * f);
    float *out = malloc(*n_out * sizeof *out);
    ck_assert_msg(px_vae_decode(m, out, z, (int)s[0], (int)s[2], (int)s[3], NULL) == 0, "%s",
                  px_last_error());
    free(z);
    return out;
}

/* Half-precision checkpoints stay half in memory and are widened exactly by
 * the operators: their output equals that of an F32 checkpoint holding the
 * same rounded values. Against the F32 reference the difference is the
 * rounding of the weights themselves (doc/vae.md). */
static void check_half(const char *pipe, const char *case_name, px_dtype half, const char *variant,
                       double tol_vs_ref)
{
    char src[512], half_dir[512], rounded_dir[512], rel[256];
    snprintf(src, sizeof src, "%s/vae", px_test_data(pipe));
    snprintf(half_dir, sizeof half_dir, "%s/%s-%s", tmpdir, pipe, variant);
    snprintf(rounded_dir, sizeof rounded_dir, "%s/%s-%s-f32", tmpdir, pipe, variant);
    ck_assert_int_eq(mkdir(half_dir, 0700), 0);
    ck_assert_int_eq(mkdir(rounded_dir, 0700), 0);
    px_test_copy_config(src, half_dir, NULL, NULL);
    px_test_copy_config(src, rounded_dir, NULL, NULL);
    px_test_copy_weights(src, "diffusion_pytorch_model", half_dir,
                         &(px_test_copy_opts){ .variant = variant, .values = PX_TEST_COPY_HALF, .half = half });
    px_test_copy_weights(src, "diffusion_pytorch_model", rounded_dir,
                         &(px_test_copy_opts){ .values = PX_TEST_COPY_HALF_AS_F32, .half = half });

    px_vae *mh = px_vae_load(half_dir, variant);
    ck_assert_msg(mh != NULL, "%s", px_last_error());
    ck_assert_ptr_null(px_vae_load(half_dir, NULL)); /* no plain diffusion_pytorch_model.safetensors */
    px_vae *mr = px_vae_load(rounded_dir, NULL);
    ck_assert_msg(mr != NULL, "%s", px_last_error());
    snprintf(rel, sizeof rel, "cases/%s.safetensors", case_name);
    px_st_file *ref = px_test_open(px_test_data(rel));
    size_t n, n2, nw;
    float *oh = decode_case(mh, ref, &n), *orr = decode_case(mr, ref, &n2);
    ck_assert_uint_eq(n, n2);
    char label[256];
    snprintf(label, sizeof label, "%s %s weights vs rounded F32 weights", pipe, variant);
    assert_close(oh, orr, n, 0, 0, label);
    float *want = px_test_get_f32(ref, "pipeline/vae_decoded", &nw);
    ck_assert_uint_eq(n, nw);
    snprintf(label, sizeof label, "%s %s weights vs F32 reference", pipe, variant);
    check_close(oh, want, n, label, tol_vs_ref, NULL);
    free(oh); free(orr); free(want);
    px_st_close(ref);
    px_vae_free(mh);
    px_vae_free(mr);
}

START_TEST(bf16_weights)
{
    check_half("pipe_small", "small_dpm2_cfg", PX_BF16, "bf16", BF16_TOL);
    check_half("pipe_ms", "ms_dpm2_cfg_32x80", PX_BF16, "bf16", BF16_TOL);
}
END_TEST

START_TEST(f16_weights)
{
    check_half("pipe_small", "small_dpm2_cfg", PX_F16, "fp16", F16_TOL);
    check_half("pipe_ms", "ms_dpm2_cfg_32x80", PX_F16, "fp16", F16_TOL);
}
END_TEST

/* ---- broken checkpoints and inputs --------------------------------------- */

/* A copy of pipe_small's VAE with one thing wrong must fail to load with a
 * message containing `expect`. */
static void expect_load_error(const char *cfg_from, const char *cfg_to, const char *drop, const char *reshape,
                              const char *expect)
{
    static int k;
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/vae", px_test_data("pipe_small"));
    snprintf(dst, sizeof dst, "%s/broken%d", tmpdir, k++);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    px_test_copy_config(src, dst, cfg_from, cfg_to);
    /* the wrong shape: the first dimension halved */
    px_test_copy_weights(src, "diffusion_pytorch_model", dst,
                         &(px_test_copy_opts){ .drop = drop, .reshape = reshape, .bad_shape = PX_TEST_SHAPE_DIM0_HALVED });
    px_clear_error();
    px_vae *m = px_vae_load(dst, NULL);
    ck_assert_msg(m == NULL, "a broken checkpoint (%s) loaded", expect);
    ck_assert_msg(strstr(px_last_error(), expect) != NULL, "error '%s' does not mention '%s'", px_last_error(),
                  expect);
    if (verbose()) fprintf(stderr, "broken checkpoint: %s\n", px_last_error());
}

START_TEST(broken_checkpoints)
{
    /* the unmodified copy loads (so the failures below are the edits') */
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/vae", px_test_data("pipe_small"));
    snprintf(dst, sizeof dst, "%s/intact", tmpdir);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    px_test_copy_config(src, dst, NULL, NULL);
    px_test_copy_weights(src, "diffusion_pytorch_model", dst, NULL);
    px_vae *m = px_vae_load(dst, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_vae_free(m);

    expect_load_error(NULL, NULL, "decoder.up_blocks.1.resnets.0.conv_shortcut.weight", NULL,
                      "'decoder.up_blocks.1.resnets.0.conv_shortcut.weight' is missing");
    expect_load_error(NULL, NULL, "decoder.mid_block.attentions.0.to_k.bias", NULL,
                      "'decoder.mid_block.attentions.0.to_k.bias' is missing");
    expect_load_error(NULL, NULL, "post_quant_conv.weight", NULL, "'post_quant_conv.weight' is missing");
    expect_load_error(NULL, NULL, "encoder.down_blocks.0.downsamplers.0.conv.weight", NULL,
                      "encoder.down_blocks.0.downsamplers.0.conv.weight");
    expect_load_error(NULL, NULL, NULL, "decoder.conv_in.weight", "decoder.conv_in.weight");
    expect_load_error(NULL, NULL, NULL, "decoder.up_blocks.0.resnets.1.norm2.weight",
                      "decoder.up_blocks.0.resnets.1.norm2.weight");
    /* config fields */
    expect_load_error("\"norm_num_groups\": 8", "\"norm_num_groups\": 5", NULL, NULL, "norm_num_groups");
    expect_load_error("\"norm_num_groups\": 8", "\"norm_num_groups\": 0", NULL, NULL, "norm_num_groups");
    expect_load_error("\"layers_per_block\": 1", "\"layers_per_block\": 2", NULL, NULL,
                      "decoder.up_blocks.0.resnets.2.norm1.weight");
    expect_load_error("\"latent_channels\": 4", "\"latent_channels\": 8", NULL, NULL, "decoder.conv_in.weight");
    expect_load_error("\"act_fn\": \"silu\"", "\"act_fn\": \"gelu\"", NULL, NULL, "act_fn");
    expect_load_error("\"UpDecoderBlock2D\",\n    \"UpDecoderBlock2D\"", "\"AttnUpDecoderBlock2D\",\n    \"UpDecoderBlock2D\"",
                      NULL, NULL, "'up_block_types'[0] = 'AttnUpDecoderBlock2D'");
    expect_load_error("\"DownEncoderBlock2D\",\n    \"DownEncoderBlock2D\"", "\"DownEncoderBlock2D\"", NULL, NULL,
                      "down_block_types");
    expect_load_error("\"scaling_factor\": 0.18215", "\"scaling_factor\": 0", NULL, NULL, "scaling_factor");
    expect_load_error("\"block_out_channels\": [\n    16,\n    32\n  ]", "\"block_out_channels\": [16, \"x\"]",
                      NULL, NULL, "block_out_channels");
    expect_load_error("\"block_out_channels\": [\n    16,\n    32\n  ]", "\"block_out_channels\": []", NULL, NULL,
                      "block_out_channels");
    expect_load_error("\"sample_size\": 16", "\"sample_size\": -16", NULL, NULL, "sample_size");
    expect_load_error("\"_class_name\": \"AutoencoderKL\"", "\"_class_name\": \"AutoencoderTiny\"", NULL, NULL,
                      "AutoencoderTiny");
    expect_load_error("{", "[", NULL, NULL, "config.json");
    /* a config that does not use tensors the file has: an error naming them */
    expect_load_error("\"use_quant_conv\": true", "\"use_quant_conv\": false", NULL, NULL,
                      "diffusion_pytorch_model.safetensors: 2 tensors are not used by this configuration (does "
                      "config.json match the weights?): 'quant_conv.bias', 'quant_conv.weight'");

    /* no checkpoint at all */
    snprintf(dst, sizeof dst, "%s/empty", tmpdir);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    ck_assert_ptr_null(px_vae_load(dst, NULL));
    ck_assert_msg(strstr(px_last_error(), "config.json") != NULL, "%s", px_last_error());
    px_test_copy_config(src, dst, NULL, NULL);
    ck_assert_ptr_null(px_vae_load(dst, NULL));
    ck_assert_msg(strstr(px_last_error(), "diffusion_pytorch_model") != NULL, "%s", px_last_error());
}
END_TEST

START_TEST(bad_inputs)
{
    px_vae *m = load_pipe("pipe_small");
    float z[4 * 4], out[3 * 4 * 4], x[3 * 4 * 4];
    px_test_fill_uniform(z, 16, 1, -1, 1);
    px_test_fill_uniform(x, 48, 2, -1, 1);
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 2, 2, NULL), 0);
    ck_assert_int_eq(px_vae_decode(m, out, z, 0, 2, 2, NULL), -1);
    ck_assert_msg(strstr(px_last_error(), "decode") != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 0, 2, NULL), -1);
    ck_assert_int_eq(px_vae_decode(m, out, z, 1, 2, -1, NULL), -1);
    ck_assert_int_eq(px_vae_encode(m, z, x, 1, 4, 4, NULL), 0);
    ck_assert_int_eq(px_vae_encode(m, z, x, 1, 1, 4, NULL), -1); /* smaller than f = 2 */
    ck_assert_msg(strstr(px_last_error(), "encode") != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_vae_encode(m, z, x, 0, 4, 4, NULL), -1);
    ck_assert_int_eq(px_vae_downscale(m), 2);
    ck_assert_int_eq(px_vae_latent_channels(m), 4);
    ck_assert(px_vae_scaling_factor(m) == 0.18215f);
    px_vae_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vae");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, modules_pipe_small);
    tcase_add_test(tc, modules_pipe_ms);
    tcase_add_test(tc, modules_reference_kernels);
    tcase_add_test(tc, vae_decoded_every_case);
    tcase_add_test(tc, threads_bit_identical);
    tcase_add_test(tc, bad_inputs);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("tiling and encoder");
    tcase_set_timeout(tt, 120);
    tcase_add_test(tt, tiling_small_latents_untouched);
    tcase_add_test(tt, tiled_decode_diffusers);
    tcase_add_test(tt, tiled_decode_blend_rule);
    tcase_add_test(tt, tiling_refuses_inexact_sample_size);
    tcase_add_test(tt, tiled_encode_diffusers);
    tcase_add_test(tt, encoder_modules_small);
    tcase_add_test(tt, encoder_pipe_ms_batch);
    tcase_add_test(tt, encode_decode_consistency);
    suite_add_tcase(s, tt);
    TCase *tw = tcase_create("converted checkpoints");
    tcase_set_timeout(tw, 120);
    tcase_add_checked_fixture(tw, setup, teardown);
    tcase_add_test(tw, bf16_weights);
    tcase_add_test(tw, f16_weights);
    tcase_add_test(tw, broken_checkpoints);
    suite_add_tcase(s, tw);
    return px_test_run(s);
}
