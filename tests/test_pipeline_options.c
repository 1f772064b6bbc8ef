/* The pipeline's options for programs that make many images: models kept
 * loaded between calls (px_pipeline_keep_models) give the same bits as
 * models loaded for each stage; VAE tiling chosen through the API
 * (px_pipeline_set_vae_tiling) is diffusers' tiled decode, and the automatic
 * choice follows the memory budget (px_pipeline_set_max_memory,
 * PIXART_MAX_MEMORY); a decode that cannot fit fails before any model runs.
 * On the tiny pipeline in data/pipe_small, from token ids (no vocabulary
 * needed). */
#include "testutil.h"
#include "src/pipeline/pipeline.h"
#include "src/pipeline/internal.h"
#include "model/vae.h"
#include "tensor/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define L 8

/* Two prompts and their negatives as token rows (ids < the tiny T5's vocabulary). */
static const int32_t ids[2 * L] = {71, 1782, 5, 1, 0, 0, 0, 0, 3, 9, 2335, 13, 1, 0, 0, 0};
static const int32_t ids_mask[2 * L] = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0};
static const int32_t neg[2 * L] = {1, 0, 0, 0, 0, 0, 0, 0, 18, 1, 0, 0, 0, 0, 0, 0};
static const int32_t neg_mask[2 * L] = {1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0};
static const uint64_t seeds[4] = {0, 7, 8, 9};

/* Call `which`: 0 = two prompts with guidance, DPM-Solver, 16 x 16; 1 = one
 * prompt twice without guidance, DDIM with eta, 24 x 16, a seed per image;
 * 2 = one prompt at 32 x 32 (latents larger than the VAE's 8-latent tile). */
static void params(px_generate_params *prm, int which)
{
    px_generate_params_init(prm);
    prm->prompt_ids = ids;
    prm->prompt_mask = ids_mask;
    prm->negative_ids = neg;
    prm->negative_mask = neg_mask;
    prm->max_sequence_length = L;
    prm->num_prompts = which == 0 ? 2 : 1;
    prm->num_inference_steps = 2;
    prm->use_resolution_binning = 0;
    prm->height = prm->width = which == 2 ? 32 : 16;
    prm->seeds = seeds;
    prm->num_seeds = 1;
    if (which == 1) {
        prm->guidance_scale = 1.0;
        prm->num_images_per_prompt = 2;
        prm->width = 24;
        prm->scheduler = "ddim";
        prm->eta = 1.0;
        prm->seeds = seeds + 1;
        prm->num_seeds = 2;
    }
}

static void run(px_pipeline *p, int which, px_generate_result *res)
{
    px_generate_params prm;
    params(&prm, which);
    ck_assert_msg(px_pipeline_generate(p, &prm, res) == 0, "call %d: %s", which, px_last_error());
}

/* Bit-identical images and latents. */
static void assert_same(const px_generate_result *a, const px_generate_result *b, const char *what)
{
    ck_assert_int_eq(a->num_images, b->num_images);
    ck_assert(a->height == b->height && a->width == b->width);
    size_t nl = (size_t)a->num_images * a->latent_channels * a->latent_height * a->latent_width;
    size_t ni = (size_t)a->num_images * a->height * a->width * 3;
    ck_assert_msg(!memcmp(a->latents, b->latents, nl * sizeof(float)), "%s: latents differ", what);
    ck_assert_msg(!memcmp(a->images, b->images, ni * sizeof(float)), "%s: images differ", what);
}

START_TEST(kept_models_same_bits)
{
    // each model loaded for its stage (the default)
    px_pipeline *fresh = px_pipeline_open(px_test_data("pipe_small"), NULL);
    ck_assert_msg(fresh, "%s", px_last_error());
    px_generate_result want[2];
    run(fresh, 0, &want[0]);
    run(fresh, 1, &want[1]);
    px_pipeline_close(fresh);

    // all three kept: calls of different shapes, batch sizes and schedulers in turn
    px_pipeline *p = px_pipeline_open(px_test_data("pipe_small"), NULL);
    ck_assert_msg(p, "%s", px_last_error());
    ck_assert_int_eq(px_pipeline_keep_models(p, PX_MODEL_ALL), 0);
    static const int order[] = {0, 1, 0, 1};
    for (int k = 0; k < 4; k++) {
        px_generate_result got;
        run(p, order[k], &got);
        assert_same(&got, &want[order[k]], k < 2 ? "first calls, models kept" : "later calls, models reused");
        px_generate_result_free(&got);
    }
    // the text encoder released between calls (as pixart batch does after encoding), the rest kept
    px_pipeline_release_models(p, PX_MODEL_TEXT_ENCODER);
    px_generate_result got;
    run(p, 0, &got);
    assert_same(&got, &want[0], "after releasing the text encoder");
    px_generate_result_free(&got);
    ck_assert_int_eq(px_pipeline_keep_models(p, 0), PX_MODEL_ALL);
    run(p, 1, &got);
    assert_same(&got, &want[1], "after keeping nothing again");
    px_generate_result_free(&got);
    px_pipeline_close(p);
    px_generate_result_free(&want[0]);
    px_generate_result_free(&want[1]);
}
END_TEST

/* set_vae_tiling(1): the image is what the tiled decoder gives for the final
 * latents (diffusers' tiled_decode, tested against diffusers in test_vae),
 * and differs from the untiled one; set_vae_tiling(0) restores the untiled. */
START_TEST(vae_tiling_option)
{
    px_pipeline *p = px_pipeline_open(px_test_data("pipe_small"), NULL);
    ck_assert_msg(p, "%s", px_last_error());
    px_generate_result plain, tiled, again;
    run(p, 2, &plain);
    ck_assert_int_eq(px_pipeline_set_vae_tiling(p, 1), PX_VAE_TILING_AUTO); // the default
    run(p, 2, &tiled);
    ck_assert_int_eq(px_pipeline_set_vae_tiling(p, 0), 1);
    run(p, 2, &again);
    assert_same(&again, &plain, "tiling switched off again");
    size_t nl = (size_t)tiled.latent_channels * tiled.latent_height * tiled.latent_width;
    size_t ni = (size_t)tiled.height * tiled.width * 3;
    ck_assert(!memcmp(tiled.latents, plain.latents, nl * sizeof(float))); // only the decode differs
    ck_assert_msg(memcmp(tiled.images, plain.images, ni * sizeof(float)), "tiling changed nothing at 32 x 32");

    // the same decode by hand: latents / scaling_factor through the tiled VAE, then postprocess
    px_vae *vae = px_vae_load(px_test_data("pipe_small/vae"), NULL);
    ck_assert_msg(vae, "%s", px_last_error());
    px_vae_set_tiling(vae, 1);
    float *z = malloc(nl * sizeof(float)), *x = malloc(ni * sizeof(float)), *img = malloc(ni * sizeof(float));
    ck_assert(z && x && img);
    for (size_t i = 0; i < nl; i++) z[i] = tiled.latents[i] / px_vae_scaling_factor(vae);
    ck_assert_msg(px_vae_decode(vae, x, z, 1, tiled.latent_height, tiled.latent_width, NULL) == 0, "%s",
                  px_last_error());
    px_postprocess_image(img, x, 1, 3, tiled.height, tiled.width);
    ck_assert_msg(!memcmp(img, tiled.images, ni * sizeof(float)), "the pipeline's tiled image is not the tiled decode");
    free(z);
    free(x);
    free(img);
    px_vae_free(vae);
    px_generate_result_free(&plain);
    px_generate_result_free(&tiled);
    px_generate_result_free(&again);
    px_pipeline_close(p);
}
END_TEST

/* Counts progress events: a call refused by the memory check runs no stage. */
static int count_events(void *user, const px_progress_event *ev)
{
    (void)ev;
    ++*(int *)user;
    return 0;
}

/* Generation `which` with budget `bytes` (0: the default); 0 or -1, and the
 * number of progress events seen. */
static int run_budget(px_pipeline *p, int which, uint64_t bytes, px_generate_result *res, int *events)
{
    px_generate_params prm;
    params(&prm, which);
    *events = 0;
    prm.progress = count_events;
    prm.progress_user = events;
    px_pipeline_set_max_memory(p, bytes);
    return px_pipeline_generate(p, &prm, res);
}

/* Auto tiling (the default) at 32 x 32: untiled while the estimate of the
 * untiled decode stage fits the budget, the tiled decode's exact bits
 * (explicit set_vae_tiling(1)) once it does not; explicit on/off override
 * it; over budget either way, the call fails before the first stage. */
START_TEST(vae_tiling_auto_budget)
{
    px_pipeline *p = px_pipeline_open(px_test_data("pipe_small"), NULL);
    ck_assert_msg(p, "%s", px_last_error());
    const double U = px_pl_decode_stage_bytes(p, 1, 16, 16, 32, 32, 0, 0),
                 T = px_pl_decode_stage_bytes(p, 1, 16, 16, 32, 32, 0, 1);
    ck_assert_msg(T < U && T > 0, "tiled estimate %.0f not below untiled %.0f", T, U);
    const uint64_t mid = (uint64_t)((T + U) / 2);
    px_generate_result plain, tiled, got;
    int ev;
    ck_assert_int_eq(px_pipeline_set_vae_tiling(p, 0), PX_VAE_TILING_AUTO);
    run(p, 2, &plain);
    px_pipeline_set_vae_tiling(p, 1);
    run(p, 2, &tiled);
    ck_assert_int_eq(px_pipeline_set_vae_tiling(p, PX_VAE_TILING_AUTO), 1);

    ck_assert_msg(run_budget(p, 2, (uint64_t)U + 1, &got, &ev) == 0, "%s", px_last_error());
    assert_same(&got, &plain, "auto, untiled decode within the budget");
    px_generate_result_free(&got);
    ck_assert(!p->tiling_noted);
    ck_assert_msg(run_budget(p, 2, mid, &got, &ev) == 0, "%s", px_last_error());
    assert_same(&got, &tiled, "auto, untiled decode over the budget");
    px_generate_result_free(&got);
    ck_assert(p->tiling_noted); // said so on stderr

    // the same budget from the environment when none is set
    setenv("PIXART_MAX_MEMORY", "1T", 1);
    ck_assert_msg(run_budget(p, 2, 0, &got, &ev) == 0, "%s", px_last_error());
    assert_same(&got, &plain, "PIXART_MAX_MEMORY=1T");
    px_generate_result_free(&got);
    char v[32];
    snprintf(v, sizeof v, "%.3fK", (double)mid / 1024);
    setenv("PIXART_MAX_MEMORY", v, 1);
    ck_assert_msg(run_budget(p, 2, 0, &got, &ev) == 0, "%s", px_last_error());
    assert_same(&got, &tiled, "PIXART_MAX_MEMORY between the estimates");
    px_generate_result_free(&got);
    setenv("PIXART_MAX_MEMORY", "3X", 1);
    ck_assert(run_budget(p, 2, 0, &got, &ev) == -1 && ev == 0);
    ck_assert_msg(strstr(px_last_error(), "PIXART_MAX_MEMORY='3X'"), "%s", px_last_error());
    unsetenv("PIXART_MAX_MEMORY");

    // explicit off over the budget, or tiled over it: refused before any stage
    px_pipeline_set_vae_tiling(p, 0);
    ck_assert(run_budget(p, 2, mid, &got, &ev) == -1);
    ck_assert_msg(ev == 0 && strstr(px_last_error(), "memory budget") && strstr(px_last_error(), "--vae-tiling"),
                  "%d events: %s", ev, px_last_error());
    px_pipeline_set_vae_tiling(p, PX_VAE_TILING_AUTO);
    ck_assert(run_budget(p, 2, (uint64_t)T - 1, &got, &ev) == -1);
    ck_assert_msg(ev == 0 && strstr(px_last_error(), "in tiles needs about"), "%d events: %s", ev, px_last_error());
    // no decode, no check
    px_generate_params prm;
    params(&prm, 2);
    prm.output_type = PX_OUTPUT_LATENT;
    ck_assert_msg(px_pipeline_generate(p, &prm, &got) == 0, "%s", px_last_error());
    px_generate_result_free(&got);
    px_generate_result_free(&plain);
    px_generate_result_free(&tiled);
    px_pipeline_close(p);
}
END_TEST

/* Issue 17: 65528 x 65528 with resolution binning denoises a small bucket
 * (pipe_ms: the 256 px table),
 * but the decoded image resized back to 65528 x 65528 (and the final image)
 * are 51.5 GB each: the call fails at once with the numbers, not after the
 * denoising loop. The default budget is half the RAM; 64 GiB here so the
 * test does not depend on the machine. */
START_TEST(undecodable_size_fails_early)
{
    px_pipeline *p = px_pipeline_open(px_test_data("pipe_ms"), NULL);
    ck_assert_msg(p, "%s", px_last_error());
    px_generate_params prm;
    params(&prm, 2);
    prm.use_resolution_binning = 1;
    prm.height = prm.width = 65528;
    int ev = 0;
    prm.progress = count_events;
    prm.progress_user = &ev;
    px_pipeline_set_max_memory(p, (uint64_t)64 << 30);
    px_generate_result res;
    ck_assert(px_pipeline_generate(p, &prm, &res) == -1);
    ck_assert_msg(ev == 0 && strstr(px_last_error(), "65528x65528") && strstr(px_last_error(), "memory budget of 64.00 GiB"),
                  "%d events: %s", ev, px_last_error());
    // the default budget (half the RAM) refuses it too, on machines with less than 192 GiB
    uint64_t budget;
    const char *src;
    px_pipeline_set_max_memory(p, 0);
    ck_assert(px_pl_memory_budget(p, &budget, &src) == 0);
    if (budget < (uint64_t)96 << 30) {
        ck_assert(px_pipeline_generate(p, &prm, &res) == -1 && ev == 0);
        ck_assert_msg(strstr(px_last_error(), "half the RAM") || strstr(px_last_error(), "PIXART_MAX_MEMORY"), "%s",
                      px_last_error());
    }
    px_pipeline_close(p);
}
END_TEST

/* PIXART_MAX_MEMORY's sizes: bytes, K/M/G/T as powers of 1024, fractions. */
START_TEST(parse_size)
{
    uint64_t b;
    ck_assert(px_pl_parse_size("3G", &b) == 0 && b == 3ull << 30);
    ck_assert(px_pl_parse_size("2500M", &b) == 0 && b == 2500ull << 20);
    ck_assert(px_pl_parse_size("1.5GiB", &b) == 0 && b == 3ull << 29);
    ck_assert(px_pl_parse_size("4096", &b) == 0 && b == 4096);
    ck_assert(px_pl_parse_size("64k", &b) == 0 && b == 65536);
    const char *bad[] = {"", "G", "-1G", "0", "3X", "3GG", "1e30T", "nan"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(px_pl_parse_size(bad[i], &b) == -1, "'%s' accepted", bad[i]);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("pipeline_options");
    TCase *tc = tcase_create("options");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, kept_models_same_bits);
    tcase_add_test(tc, vae_tiling_option);
    tcase_add_test(tc, vae_tiling_auto_budget);
    tcase_add_test(tc, undecodable_size_fails_early);
    tcase_add_test(tc, parse_size);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(suite()); }
