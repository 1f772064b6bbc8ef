/* The common scheduler interface the pipeline calls: DDIMScheduler,
 * DPMSolverMultistepScheduler, LCMScheduler or SASolverScheduler behind
 * {set_timesteps, step, init_noise_sigma},
 * built from a px_sched_config (sched/config.h).
 *
 * The denoising loop belongs to the caller:
 *
 *   px_scheduler s;  px_scheduler_init(&s, &cfg);
 *   px_scheduler_set_timesteps(&s, steps, NULL, 0);
 *   latents = randn_tensor(shape, gens) * s.init_noise_sigma;
 *   for (i = 0; i < s.n_timesteps; i++) {
 *       model(latents, s.timesteps[i]) -> eps            (the pipeline's callback)
 *       px_scheduler_step(&s, eps, C, s.timesteps[i], latents, dims, &args, next, x0);
 *       swap(latents, next);
 *   }
 *   px_scheduler_free(&s);
 *
 * For eta > 0 (DDIM), the sde-* DPM variants, LCM (every step but the last)
 * and SA-Solver (every step), args.generators are the same px_rng objects
 * that produced the initial latents (diffusers passes the pipeline's
 * generator(s) to step): one randn_tensor(latent shape) per step, per image
 * for a generator list. px_scheduler_needs_generator says whether a run
 * draws any. */
#ifndef PX_SCHED_SCHEDULER_H
#define PX_SCHED_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "sched/config.h"
#include "sched/ddim.h"
#include "sched/dpmsolver.h"
#include "sched/lcm.h"
#include "sched/sasolver.h"
#include "sched/rng.h"

typedef struct px_scheduler {
    px_sched_kind kind;
    float init_noise_sigma;     /* 1.0 for both classes */
    const int64_t *timesteps;   /* after set_timesteps: descending, n_timesteps entries */
    int64_t n_timesteps;
    px_ddim ddim;               /* kind == PX_SCHED_DDIM */
    px_dpm dpm;                 /* kind == PX_SCHED_DPM */
    px_lcm lcm;                 /* kind == PX_SCHED_LCM */
    px_sa sa;                   /* kind == PX_SCHED_SA */
} px_scheduler;

int px_scheduler_init(px_scheduler *s, const px_sched_config *cfg);
void px_scheduler_free(px_scheduler *s);

/* set_timesteps(num_inference_steps) when timesteps == NULL, otherwise
 * set_timesteps(timesteps=[...]) with n custom timesteps (DPM and LCM only:
 * diffusers' DDIMScheduler / SASolverScheduler.set_timesteps have no
 * `timesteps` argument, and the pipeline raises ValueError). LCM takes
 * original_inference_steps from its config, as PixArtAlphaPipeline does. */
int px_scheduler_set_timesteps(px_scheduler *s, int64_t num_inference_steps, const int64_t *timesteps,
                               size_t n);

typedef struct {
    double eta;                 /* DDIM only (the pipeline's `eta`, 0 by default) */
    int use_clipped_model_output; /* DDIM only (diffusers default False) */
    px_rng *generators;         /* DDIM eta > 0, DPM sde-*, LCM, SA: the pipeline's generator(s) */
    size_t n_generators;        /* 1, or one per batch element */
    const float *variance_noise;   /* instead of generators (optional) */
    float *variance_noise_out;     /* DDIM, LCM, SA: receives the drawn noise when the step draws
                                      one (optional; see px_scheduler_step_draws) */
    float *denoised_out;        /* LCM: receives LCMSchedulerOutput.denoised (optional) */
} px_step_args;

/* Whether the step at index i of the current schedule draws noise from the
 * generators (DDIM: eta > 0; DPM: sde-*; LCM: every step but the last; SA:
 * every step). */
int px_scheduler_step_draws(const px_scheduler *s, int64_t i, double eta);
/* Whether any step of the current schedule does. */
int px_scheduler_needs_generator(const px_scheduler *s, double eta);

/* scheduler.step(model_output, t, sample, **extra_step_kwargs).
 * model_output: (batch, model_channels, spatial); sample, prev_sample: (dims).
 * pred_original_sample: DDIM's x0 (after clipping) when not NULL; DPM, LCM
 * and SA-Solver have no pred_original_sample in their outputs (the diffusers
 * pipeline's 1-step path fails on it), so passing one for them is an error. */
int px_scheduler_step(px_scheduler *s, const float *model_output, int64_t model_channels, int64_t t,
                      const float *sample, px_sched_dims dims, const px_step_args *args, float *prev_sample,
                      float *pred_original_sample);

#endif
