/* DDIMScheduler of diffusers v0.30.3: the schedule (data) and its step, a pure
 * function of that data, the model output and the sample (plus generators
 * for the eta > 0 variance noise). */
#ifndef PX_SCHED_DDIM_H
#define PX_SCHED_DDIM_H

#include <stddef.h>
#include <stdint.h>

#include "sched/config.h"
#include "sched/rng.h"

/* Layout of a latent batch: (batch, channels, spatial...) with the trailing
 * dimensions flattened; model outputs have the same layout unless noted. */
typedef struct {
    int64_t batch, channels, spatial;
} px_sched_dims;

typedef struct px_ddim {
    /* from the config */
    int64_t num_train_timesteps;
    px_prediction_type prediction_type;
    int clip_sample;
    float clip_sample_range;
    int thresholding;
    double dynamic_thresholding_ratio;
    double sample_max_value;
    px_timestep_spacing timestep_spacing;
    int64_t steps_offset;

    float *alphas_cumprod;     /* (num_train_timesteps,) float32, as torch */
    float final_alpha_cumprod; /* 1.0 (set_alpha_to_one) or alphas_cumprod[0] */

    /* after px_ddim_set_timesteps */
    int64_t num_inference_steps; /* as requested: prev_t = t - N // num_inference_steps */
    int64_t *timesteps;          /* descending int64 (may contain -1, see schedule.h) */
    int64_t n_timesteps;
} px_ddim;

int px_ddim_init(px_ddim *d, const px_sched_config *c);
void px_ddim_free(px_ddim *d);

/* DDIMScheduler.set_timesteps(num_inference_steps). */
int px_ddim_set_timesteps(px_ddim *d, int64_t num_inference_steps);

/* Per-step arguments that are not tensors. */
typedef struct {
    double eta;               /* DDIM eta (Python float); 0 = deterministic */
    int use_clipped_model_output;
    px_rng *generators;       /* eta > 0: noise = randn_tensor(shape, generators) */
    size_t n_generators;      /*   1 generator, or one per batch element */
    const float *variance_noise; /* eta > 0: use this noise instead (no generator) */
    float *variance_noise_out;   /* optional: receives the noise used */
} px_ddim_step_args;

/* DDIMScheduler.step(model_output, t, sample, eta, ...):
 *   prev_sample (and pred_original_sample if not NULL), both (dims).
 * model_output, sample: (dims). The outputs may not alias the inputs.
 * Returns -1 (px_fail) on a timestep outside the schedule or missing noise. */
int px_ddim_step(const px_ddim *d, const float *model_output, int64_t t, const float *sample,
                 px_sched_dims dims, const px_ddim_step_args *args, float *prev_sample,
                 float *pred_original_sample);

/* DDIM/DPM dynamic thresholding (_threshold_sample) of x, in place: per batch
 * row s = clamp(quantile(|x|, ratio), 1, max_value); x = clamp(x, -s, s) / s. */
int px_sched_threshold(float *x, px_sched_dims dims, double ratio, double max_value);

#endif
