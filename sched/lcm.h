/* LCMScheduler of diffusers v0.30.3 (schedulers/scheduling_lcm.py): the
 * latent-consistency multistep sampler PixArt-LCM-XL-2-1024-MS ships with.
 *
 * px_lcm holds the schedule (alphas_cumprod, the inference timesteps) and the
 * one piece of run state diffusers keeps, the step index. Each step maps the
 * model output to the consistency-model estimate
 *   denoised = c_out(t) * x0(model_output) + c_skip(t) * sample
 * and, except in the last step, re-noises it to the NEXT timestep of the list
 * with noise drawn from the pipeline's generator(s). */
#ifndef PX_SCHED_LCM_H
#define PX_SCHED_LCM_H

#include <stddef.h>
#include <stdint.h>

#include "sched/config.h"
#include "sched/ddim.h" /* px_sched_dims, px_sched_threshold */
#include "sched/rng.h"

typedef struct px_lcm {
    /* from the config */
    int64_t num_train_timesteps;
    int64_t original_inference_steps;
    px_prediction_type prediction_type;
    int clip_sample;
    float clip_sample_range;
    int thresholding;
    double dynamic_thresholding_ratio;
    double sample_max_value;
    double timestep_scaling;

    float *alphas_cumprod;     /* (num_train_timesteps,) float32, as torch. (final_alpha_cumprod
                                  / set_alpha_to_one only matter for negative timesteps, which
                                  set_timesteps refuses) */

    /* after px_lcm_set_timesteps */
    int64_t *timesteps;        /* descending int64 */
    int64_t n_timesteps;       /* == diffusers' num_inference_steps */
    int64_t step_index;        /* -1 until the first step, then counts */
} px_lcm;

int px_lcm_init(px_lcm *l, const px_sched_config *c);
void px_lcm_free(px_lcm *l);

/* LCMScheduler.set_timesteps(num_inference_steps, original_inference_steps=
 * original_steps or None when 0) when timesteps == NULL, otherwise
 * set_timesteps(timesteps=[...]) with n custom timesteps (strictly
 * descending, < num_train_timesteps; diffusers only warns when they are off
 * the original schedule, so do we: they are used as given). Resets the step
 * index. */
int px_lcm_set_timesteps(px_lcm *l, int64_t num_inference_steps, int64_t original_steps,
                         const int64_t *timesteps, size_t n);

/* get_scalings_for_boundary_condition_discrete(t) in float32 (t is the int64
 * timestep tensor): c_skip = 0.25 / ((10 t)^2 + 0.25), c_out = 10 t /
 * ((10 t)^2 + 0.25) ** 0.5 with 10 = timestep_scaling. */
void px_lcm_scalings(const px_lcm *l, int64_t t, float *c_skip, float *c_out);

typedef struct {
    px_rng *generators;       /* noise = randn_tensor(model_output.shape, generators) */
    size_t n_generators;      /*   1 generator, or one per batch element */
    const float *noise;       /* use this noise instead of drawing it (optional) */
    float *noise_out;         /* receives the noise (optional; untouched in the last step) */
    float *denoised_out;      /* receives LCMSchedulerOutput.denoised (optional) */
} px_lcm_step_args;

/* LCMScheduler.step(model_output, t, sample, generator).prev_sample.
 * model_output, sample, prev_sample: (dims). Noise is drawn in every step but
 * the last one (step_index == num_inference_steps - 1), where prev_sample is
 * denoised. -1 (px_fail) when t is not in the schedule, the step is one too
 * many, or noise is needed and there is neither a generator nor noise. */
int px_lcm_step(px_lcm *l, const float *model_output, int64_t t, const float *sample, px_sched_dims dims,
                const px_lcm_step_args *args, float *prev_sample);

#endif
