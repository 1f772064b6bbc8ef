/* The denoising loop of PixArtAlphaPipeline.__call__ (v0.30.3) with the
 * model behind a callback, and the small pieces of its body tested on their
 * own: classifier-free guidance with the learned-sigma split, the
 * num_images_per_prompt repetition, the image post-processing. */
#include "src/pipeline/pipeline.h"
#include "tensor/dump.h"
#include "tensor/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// ---------------------------------------------------------------------------
// Small pieces of the loop body (tested on their own)

/* torch evaluates `uncond + g * (cond - uncond)` as separate float32 kernels;
 * keep the compiler from fusing the multiply-add (GCC contracts across
 * statements with -ffp-contract=fast, its gnu11 default, when FMA is enabled). */
#if defined(__GNUC__) && !defined(__clang__)
#define PX_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define PX_NO_CONTRACT
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

PX_NO_CONTRACT void px_guidance_combine(float *eps, const float *model_out, int N, int out_ch, int in_ch, int64_t hw,
                         int cfg, float g)
{
    int keep = (out_ch / 2 == in_ch) ? in_ch : out_ch; // learned sigma: keep the first half
    for (int n = 0; n < N; n++)
        for (int c = 0; c < keep; c++) {
            float *e = eps + ((int64_t)n * keep + c) * hw;
            if (cfg) {
                // noise_pred.chunk(2): [uncond; cond]
                const float *u = model_out + ((int64_t)n * out_ch + c) * hw;
                const float *t = model_out + ((int64_t)(N + n) * out_ch + c) * hw;
                for (int64_t i = 0; i < hw; i++) {
                    float d = t[i] - u[i]; // (noise_pred_text - noise_pred_uncond)
                    float s = g * d;       // guidance_scale * (...)
                    e[i] = u[i] + s;       // noise_pred_uncond + ...
                }
            } else {
                memcpy(e, model_out + ((int64_t)n * out_ch + c) * hw, sizeof(float) * (size_t)hw);
            }
        }
}

void px_repeat_rows(float *out, const float *in, int B, int n, int64_t row)
{
    for (int i = 0; i < B * n; i++) memcpy(out + (int64_t)i * row, in + (int64_t)(i / n) * row, sizeof(float) * (size_t)row);
}

void px_repeat_rows_i32(int32_t *out, const int32_t *in, int B, int n, int64_t row)
{
    for (int i = 0; i < B * n; i++)
        memcpy(out + (int64_t)i * row, in + (int64_t)(i / n) * row, sizeof(int32_t) * (size_t)row);
}

void px_postprocess_image(float *out, const float *x, int N, int C, int H, int W)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    float v = x[(((int64_t)n * C + c) * H + y) * W + xx];
                    v = v / 2.0f + 0.5f;              // images / 2 + 0.5
                    v = v < 0.f ? 0.f : v > 1.f ? 1.f : v; // .clamp(0, 1) (NaN stays NaN)
                    out[(((int64_t)n * H + y) * W + xx) * C + c] = v;
                }
}

/* Records x under "pipeline/<name>NN" exactly (the reference's pipeline keys
 * have no "#k" call index). */
static int dump_step(px_dump *d, const char *name, int step, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    char key[128];
    snprintf(key, sizeof key, "pipeline/%s%02d", name, step);
    return px_dump_add_key(d, key, x, ndim, shape);
}

// ---------------------------------------------------------------------------
// The denoising loop (the transformer behind a callback)

/* What a step computed besides prev_sample, under the reference's keys: the
 * noise it drew from the generator(s) (DDIM eta > 0: ddim_variance_noise;
 * LCM, every step but the last: lcm_noise; SA-Solver, every step:
 * sasolver_noise), LCM's denoised, SA-Solver's corrected sample and
 * converted model output. */
static int dump_step_extras(px_dump *d, const px_scheduler *s, int i, double eta, const float *noise,
                            const float *denoised, const int64_t *shape)
{
    if (s->kind != PX_SCHED_DPM && px_scheduler_step_draws(s, i, eta)) {
        const char *key = s->kind == PX_SCHED_DDIM ? "ddim_variance_noise_step"
                          : s->kind == PX_SCHED_LCM ? "lcm_noise_step"
                                                    : "sasolver_noise_step";
        if (dump_step(d, key, i, noise, 4, shape)) return -1;
    }
    if (s->kind == PX_SCHED_LCM) return dump_step(d, "lcm_denoised_step", i, denoised, 4, shape);
    if (s->kind == PX_SCHED_SA)
        return dump_step(d, "sasolver_corrected_step", i, s->sa.last_sample, 4, shape) ||
               dump_step(d, "sasolver_model_output_converted_step", i, s->sa.model_outputs[s->sa.history - 1], 4,
                         shape);
    return 0;
}

int px_denoise_loop(px_scheduler *s, const px_denoise_args *a, float *latents)
{
    const int N = a->num_images, C = a->channels, NB = a->cfg ? 2 * N : N;
    const int64_t hw = (int64_t)a->height * a->width, lat_n = (int64_t)N * C * hw;
    const int out_ch = a->model_out_channels;
    if (N <= 0 || C <= 0 || hw <= 0 || out_ch <= 0) return px_fail("denoise: bad latent shape");
    if (out_ch != C && out_ch != 2 * C)
        return px_fail("denoise: the model predicts %d channels for %d latent channels (expected %d or %d)", out_ch,
                       C, C, 2 * C);
    const int nsteps = (int)s->n_timesteps;
    if (nsteps <= 0) return px_fail("denoise: the scheduler has no timesteps (set_timesteps)");
    float *x_in = px_malloc(sizeof(float) * (size_t)NB * C * hw, "latent_model_input");
    float *out = px_malloc(sizeof(float) * (size_t)NB * out_ch * hw, "noise_pred");
    float *eps = px_malloc(sizeof(float) * (size_t)lat_n, "noise_pred (guided)");
    float *next = px_malloc(sizeof(float) * (size_t)lat_n, "prev_sample");
    float *noise = a->dump ? px_malloc(sizeof(float) * (size_t)lat_n, "variance noise") : NULL;
    float *denoised = a->dump && s->kind == PX_SCHED_LCM ? px_malloc(sizeof(float) * (size_t)lat_n, "denoised") : NULL;
    float *tvec = px_malloc(sizeof(float) * (size_t)NB, "timestep");
    int rc = -1;
    if (!x_in || !out || !eps || !next || !tvec || (a->dump && !noise) ||
        (a->dump && s->kind == PX_SCHED_LCM && !denoised))
        goto out;
    const int64_t dshape[4] = {N, C, a->height, a->width};
    for (int i = 0; i < nsteps; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const int64_t t = s->timesteps[i];
        // latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents;
        // scale_model_input is the identity for DDIM and DPM-Solver
        memcpy(x_in, latents, sizeof(float) * (size_t)lat_n);
        if (a->cfg) memcpy(x_in + lat_n, latents, sizeof(float) * (size_t)lat_n);
        // current_timestep.expand(latent_model_input.shape[0])
        for (int k = 0; k < NB; k++) tvec[k] = (float)t;
        if (a->model(a->model_user, out, x_in, tvec, NB, i)) goto out;
        if (a->dump && (i == 0 || hw <= 64 * 64) &&
            dump_step(a->dump, "transformer_out_step", i, out, 4, (int64_t[]){NB, out_ch, a->height, a->width}))
            goto out;
        px_guidance_combine(eps, out, N, out_ch, C, hw, a->cfg, a->guidance_scale);
        // compute previous image: x_t -> x_t-1
        px_step_args sa = {0};
        sa.eta = a->eta;
        sa.generators = a->generators;
        sa.n_generators = a->n_generators;
        sa.variance_noise_out = noise;
        sa.denoised_out = denoised;
        px_sched_dims dims = {N, C, hw};
        if (nsteps == 1 && !a->no_one_step_x0) {
            // For DMD one step sampling: the pipeline keeps .pred_original_sample
            float *prev = px_malloc(sizeof(float) * (size_t)lat_n, "prev_sample");
            if (!prev) goto out;
            int r = px_scheduler_step(s, eps, C, t, latents, dims, &sa, prev, next);
            free(prev);
            if (r) goto out;
        } else if (px_scheduler_step(s, eps, C, t, latents, dims, &sa, next, NULL)) {
            goto out;
        }
        if (a->dump && dump_step_extras(a->dump, s, i, a->eta, noise, denoised, dshape)) goto out;
        memcpy(latents, next, sizeof(float) * (size_t)lat_n);
        if (dump_step(a->dump, "latents_step", i, latents, 4, dshape)) goto out;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (a->progress) {
            px_progress_event ev = {0};
            ev.kind = PX_EVENT_STEP;
            ev.stage = PX_STAGE_DENOISE;
            ev.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            ev.step = i;
            ev.num_steps = nsteps;
            ev.timestep = t;
            ev.latents = latents;
            ev.num_images = N;
            ev.channels = C;
            ev.height = a->height;
            ev.width = a->width;
            if (a->progress(a->progress_user, &ev)) {
                px_fail("interrupted");
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(x_in);
    free(out);
    free(eps);
    free(next);
    free(noise);
    free(denoised);
    free(tvec);
    return rc;
}

