/* DPMSolverMultistepScheduler of diffusers v0.30.3 (DPM-Solver / DPM-Solver++,
 * orders 1-3, midpoint / heun, SDE variants, Karras sigmas, learned variance).
 *
 * px_dpm holds the schedule (data: alphas_cumprod, sigmas, timesteps) and the
 * multistep run state diffusers keeps on the scheduler object (the last
 * solver_order converted model outputs, lower_order_nums, step_index);
 * px_dpm_set_timesteps resets that state, px_dpm_step advances it. */
#ifndef PX_SCHED_DPMSOLVER_H
#define PX_SCHED_DPMSOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "sched/config.h"
#include "sched/ddim.h" /* px_sched_dims, px_sched_threshold */
#include "sched/rng.h"

typedef struct px_dpm {
    px_sched_config config;   /* own copy */

    /* schedule from __init__ (float32, num_train_timesteps entries) */
    float *alphas_cumprod;
    float *train_sigmas;      /* ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 */
    float *lambda_t;          /* log(sqrt(ac)) - log(sqrt(1 - ac)), for lambda_min_clipped */

    /* after px_dpm_set_timesteps */
    int64_t *timesteps;       /* (n_timesteps,) int64 */
    int64_t n_timesteps;      /* == num_inference_steps of diffusers */
    float *sigmas;            /* (n_timesteps + 1,) float32, last = final sigma */

    /* run state (reset by set_timesteps) */
    float *model_outputs[3];  /* history, oldest first (diffusers' self.model_outputs) */
    int have_output[3];
    size_t state_numel;       /* size of each history buffer (0 = not sized yet) */
    int lower_order_nums;
    int64_t step_index;       /* -1 until the first step */
} px_dpm;

int px_dpm_init(px_dpm *s, const px_sched_config *c);
void px_dpm_free(px_dpm *s);

/* DPMSolverMultistepScheduler.set_timesteps(num_inference_steps) when
 * timesteps == NULL, else set_timesteps(timesteps=[...]) (custom timesteps,
 * not allowed with use_karras_sigmas). */
int px_dpm_set_timesteps(px_dpm *s, int64_t num_inference_steps, const int64_t *timesteps, size_t n);

/* _sigma_to_alpha_sigma_t(sigma) in float32 (SASolverScheduler has the same
 * method): alpha_t = 1 / ((sigma**2 + 1) ** 0.5), sigma_t = sigma * alpha_t. */
void px_dpm_alpha_sigma_t(float sigma, float *alpha_t, float *sigma_t);
/* lambda = torch.log(alpha_t) - torch.log(sigma_t) (float32, torch's SLEEF log). */
float px_dpm_lambda(float alpha_t, float sigma_t);

typedef struct {
    px_rng *generators;       /* sde-* algorithms: noise = randn_tensor(shape, generators) */
    size_t n_generators;
    const float *variance_noise; /* sde-*: use this noise instead */
} px_dpm_step_args;

/* DPMSolverMultistepScheduler.step(model_output, t, sample).prev_sample.
 * sample, prev_sample: (dims). model_output: (batch, model_channels, spatial);
 * model_channels == dims.channels, except with a learned variance_type where
 * diffusers keeps model_output[:, :3] (then dims.channels must be 3).
 * The first call sets the step index from t (index_for_timestep); later calls
 * advance it by one, like diffusers. */
int px_dpm_step(px_dpm *s, const float *model_output, int64_t model_channels, int64_t t,
                const float *sample, px_sched_dims dims, const px_dpm_step_args *args, float *prev_sample);

#endif
