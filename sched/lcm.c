/* LCMScheduler (diffusers v0.30.3 schedulers/scheduling_lcm.py).
 *
 * set_timesteps is numpy integer / float64 arithmetic; step is float32 torch
 * arithmetic with 0-dim coefficients computed first and one rounding per
 * elementwise op (built with -ffp-contract=off). doc/schedulers.md has the
 * formulas. */
#include "sched/lcm.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int px_lcm_init(px_lcm *l, const px_sched_config *c)
{
    memset(l, 0, sizeof *l);
    l->step_index = -1;
    if (c->kind != PX_SCHED_LCM) return px_fail("px_lcm_init: config is not an LCMScheduler config");
    if (px_sched_config_check_lcm_sa(c)) return -1;
    l->num_train_timesteps = c->num_train_timesteps;
    l->original_inference_steps = c->original_inference_steps;
    l->prediction_type = c->prediction_type;
    l->clip_sample = c->clip_sample;
    l->clip_sample_range = (float)c->clip_sample_range;
    l->thresholding = c->thresholding;
    l->dynamic_thresholding_ratio = c->dynamic_thresholding_ratio;
    l->sample_max_value = c->sample_max_value;
    l->timestep_scaling = c->timestep_scaling;

    px_schedule_params p = { c->num_train_timesteps, c->beta_start, c->beta_end, c->beta_schedule,
                             c->trained_betas, c->n_trained_betas, c->rescale_betas_zero_snr };
    l->alphas_cumprod = px_malloc((size_t)c->num_train_timesteps * sizeof(float), "alphas_cumprod");
    if (!l->alphas_cumprod) return -1;
    if (px_schedule_alphas_cumprod(l->alphas_cumprod, &p)) {
        px_lcm_free(l);
        return px_fail_ctx("LCMScheduler");
    }
    return 0;
}

void px_lcm_free(px_lcm *l)
{
    if (!l) return;
    free(l->alphas_cumprod);
    free(l->timesteps);
    memset(l, 0, sizeof *l);
    l->step_index = -1;
}

// ---------------------------------------------------------------------------
// set_timesteps

int px_lcm_set_timesteps(px_lcm *l, int64_t n, int64_t original_steps, const int64_t *custom, size_t n_custom)
{
    const int64_t N = l->num_train_timesteps;
    /* original_steps = original_inference_steps if given else config.original_inference_steps */
    const int64_t orig = original_steps > 0 ? original_steps : l->original_inference_steps;
    if (original_steps < 0)
        return px_fail("LCMScheduler.set_timesteps: original_inference_steps %lld must be >= 1",
                       (long long)original_steps);
    if (orig > N)
        return px_fail("LCMScheduler.set_timesteps: original_inference_steps %lld cannot be larger than "
                       "num_train_timesteps %lld", (long long)orig, (long long)N);
    /* k = N // original_steps; lcm_origin_timesteps = [1, 2, ..., original_steps] * k - 1 */
    const int64_t k = N / orig;

    int64_t *ts;
    int64_t count;
    if (custom) {
        if (n_custom == 0) return px_fail("LCMScheduler.set_timesteps: empty custom timesteps");
        for (size_t i = 1; i < n_custom; i++)
            if (custom[i] >= custom[i - 1])
                return px_fail("LCMScheduler.set_timesteps: `custom_timesteps` must be in descending order "
                               "(timesteps[%zu] = %lld after %lld)", i, (long long)custom[i],
                               (long long)custom[i - 1]);
        if (custom[0] >= N)
            return px_fail("LCMScheduler.set_timesteps: `timesteps` must start before num_train_timesteps "
                           "%lld (got %lld)", (long long)N, (long long)custom[0]);
        /* diffusers accepts negative ones (then indexes alphas_cumprod[-k]
         * Python-style and uses final_alpha_cumprod): refused here */
        if (custom[n_custom - 1] < 0)
            return px_fail("LCMScheduler.set_timesteps: custom timestep %lld is negative",
                           (long long)custom[n_custom - 1]);
        /* diffusers only warns when timesteps[0] != N - 1, when a timestep is
         * not k*j - 1 (off the distillation schedule) or when there are more
         * than original_steps of them; the schedule is used as given. */
        count = (int64_t)n_custom;
        ts = px_malloc(n_custom * sizeof *ts, "timesteps");
        if (!ts) return -1;
        memcpy(ts, custom, n_custom * sizeof *ts);
    } else {
        if (n < 1) return px_fail("LCMScheduler.set_timesteps: num_inference_steps %lld must be >= 1", (long long)n);
        if (n > N)
            return px_fail("LCMScheduler.set_timesteps: num_inference_steps %lld cannot be larger than "
                           "num_train_timesteps %lld", (long long)n, (long long)N);
        /* skipping_step = len(lcm_origin_timesteps) // n < 1, and n > original_steps: both ValueError */
        if (n > orig)
            return px_fail("LCMScheduler.set_timesteps: num_inference_steps %lld cannot be larger than "
                           "original_inference_steps %lld (the schedule is a subset of that one)",
                           (long long)n, (long long)orig);
        count = n;
        ts = px_malloc((size_t)n * sizeof *ts, "timesteps");
        if (!ts) return -1;
        /* origin reversed: entry j is (orig - j) * k - 1; inference_indices =
         * floor(np.linspace(0, orig, n, endpoint=False)) = floor(i * (orig / n)) */
        const double step = (double)orig / (double)n;
        for (int64_t i = 0; i < n; i++) {
            int64_t j = (int64_t)floor((double)i * step + 0.0);
            ts[i] = (orig - j) * k - 1;
        }
    }
    free(l->timesteps);
    l->timesteps = ts;
    l->n_timesteps = count;
    l->step_index = -1;
    return 0;
}

// ---------------------------------------------------------------------------
// step

void px_lcm_scalings(const px_lcm *l, int64_t t, float *c_skip, float *c_out)
{
    /* scaled_timestep = timestep * timestep_scaling: int64 tensor * Python float -> float32 */
    float st = (float)t * (float)l->timestep_scaling;
    float d = st * st + 0.25f;          /* scaled_timestep**2 + sigma_data**2 */
    *c_skip = (1.0f / d) * 0.25f;      /* sigma_data**2 / d  (Python float / tensor = reciprocal * 0.25) */
    *c_out = st / sqrtf(d);             /* scaled_timestep / d ** 0.5 */
}

/* index_for_timestep (the EulerDiscrete one): the first match, the second if
 * t occurs twice; -1 when absent (diffusers: IndexError). */
static int64_t index_for_timestep(const px_lcm *l, int64_t t)
{
    int64_t first = -1;
    for (int64_t i = 0; i < l->n_timesteps; i++)
        if (l->timesteps[i] == t) {
            if (first >= 0) return i;
            first = i;
        }
    return first;
}

int px_lcm_step(px_lcm *l, const float *mo, int64_t t, const float *sample, px_sched_dims dims,
                const px_lcm_step_args *args, float *prev)
{
    if (!l->timesteps) return px_fail("LCMScheduler.step: set_timesteps was not called");
    px_lcm_step_args none = { 0 };
    if (!args) args = &none;
    const size_t n = (size_t)(dims.batch * dims.channels * dims.spatial);
    const int64_t T = l->n_timesteps, N = l->num_train_timesteps;

    if (l->step_index < 0) {
        l->step_index = index_for_timestep(l, t);
        if (l->step_index < 0)
            return px_fail("LCMScheduler.step: timestep %lld is not in the schedule", (long long)t);
    }
    if (l->step_index >= T)
        return px_fail("LCMScheduler.step: called more often than there are timesteps (%lld)", (long long)T);
    if (t < 0 || t >= N)
        return px_fail("LCMScheduler.step: timestep %lld is outside [0, %lld)", (long long)t, (long long)N);

    /* 1. prev_timestep = timesteps[step_index + 1], or t itself in the last step */
    const int last = l->step_index == T - 1;
    const int64_t prev_t = last ? t : l->timesteps[l->step_index + 1];

    /* 2. alpha_prod_t, alpha_prod_t_prev (prev_t >= 0: custom timesteps are non-negative) */
    const float a_t = l->alphas_cumprod[t], a_prev = l->alphas_cumprod[prev_t];
    const float b_t = 1.0f - a_t, b_prev = 1.0f - a_prev;
    const float sqrt_a = sqrtf(a_t), sqrt_b = sqrtf(b_t); /* .sqrt() */

    /* 3. boundary-condition scalings */
    float c_skip, c_out;
    px_lcm_scalings(l, t, &c_skip, &c_out);

    float *x0 = px_malloc((n ? n : 1) * sizeof *x0, "predicted_original_sample");
    float *den = args->denoised_out ? args->denoised_out : (last ? prev : NULL);
    float *den_buf = NULL, *drawn = NULL;
    if (!x0) return -1;
    if (!den) {
        den = den_buf = px_malloc((n ? n : 1) * sizeof *den, "denoised");
        if (!den) goto fail;
    }

    /* 4. predicted x0 */
    switch (l->prediction_type) {
    case PX_PRED_EPSILON: /* (sample - beta_prod_t.sqrt() * model_output) / alpha_prod_t.sqrt() */
        for (size_t i = 0; i < n; i++) x0[i] = (sample[i] - sqrt_b * mo[i]) / sqrt_a;
        break;
    case PX_PRED_SAMPLE: /* model_output */
        memcpy(x0, mo, n * sizeof *x0);
        break;
    case PX_PRED_V: /* alpha_prod_t.sqrt() * sample - beta_prod_t.sqrt() * model_output */
        for (size_t i = 0; i < n; i++) x0[i] = sqrt_a * sample[i] - sqrt_b * mo[i];
        break;
    }

    /* 5. thresholding, else clip_sample */
    if (l->thresholding) {
        if (px_sched_threshold(x0, dims, l->dynamic_thresholding_ratio, l->sample_max_value)) goto fail;
    } else if (l->clip_sample) {
        const float lo = -l->clip_sample_range, hi = l->clip_sample_range;
        for (size_t i = 0; i < n; i++) {
            float v = x0[i];
            if (!isnan(v)) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
            x0[i] = v;
        }
    }

    /* 6. denoised = c_out * predicted_original_sample + c_skip * sample */
    for (size_t i = 0; i < n; i++) den[i] = c_out * x0[i] + c_skip * sample[i];

    /* 7. all but the last step: noise = randn_tensor(model_output.shape, generator);
     *    prev_sample = alpha_prod_t_prev.sqrt() * denoised + beta_prod_t_prev.sqrt() * noise */
    if (!last) {
        const float *noise = args->noise;
        if (noise && args->generators) {
            px_fail("LCMScheduler.step: pass either generators or noise, not both");
            goto fail;
        }
        if (!noise) {
            if (!args->generators || !args->n_generators) {
                px_fail("LCMScheduler.step: step %lld of %lld draws noise and needs a generator",
                        (long long)l->step_index, (long long)T);
                goto fail;
            }
            drawn = args->noise_out ? args->noise_out : px_malloc((n ? n : 1) * sizeof *drawn, "noise");
            if (!drawn) goto fail;
            int64_t shape[3] = { dims.batch, dims.channels, dims.spatial };
            if (px_randn_tensor(args->generators, args->n_generators, drawn, 3, shape)) goto fail;
            noise = drawn;
        } else if (args->noise_out && args->noise_out != noise) {
            memcpy(args->noise_out, noise, n * sizeof *noise);
        }
        const float sa_prev = sqrtf(a_prev), sb_prev = sqrtf(b_prev);
        for (size_t i = 0; i < n; i++) prev[i] = sa_prev * den[i] + sb_prev * noise[i];
    } else if (den != prev) {
        memcpy(prev, den, n * sizeof *prev); /* prev_sample = denoised */
    }

    if (drawn != args->noise_out) free(drawn);
    free(den_buf);
    free(x0);
    l->step_index++;
    return 0;

fail:
    if (drawn != args->noise_out) free(drawn);
    free(den_buf);
    free(x0);
    return -1;
}
