/* The common scheduler interface (see scheduler.h): dispatch to DDIM, DPM,
 * LCM or SA-Solver. */
#include "sched/scheduler.h"
#include "tensor/error.h"

#include <string.h>

int px_scheduler_init(px_scheduler *s, const px_sched_config *cfg)
{
    memset(s, 0, sizeof *s);
    s->kind = cfg->kind;
    s->init_noise_sigma = 1.0f;
    s->dpm.step_index = -1;
    switch (cfg->kind) {
    case PX_SCHED_DDIM: return px_ddim_init(&s->ddim, cfg);
    case PX_SCHED_DPM: return px_dpm_init(&s->dpm, cfg);
    case PX_SCHED_LCM: return px_lcm_init(&s->lcm, cfg);
    case PX_SCHED_SA: return px_sa_init(&s->sa, cfg);
    }
    return px_fail("scheduler: unknown kind %d", (int)cfg->kind);
}

void px_scheduler_free(px_scheduler *s)
{
    if (!s) return;
    if (s->kind == PX_SCHED_DDIM) px_ddim_free(&s->ddim);
    else if (s->kind == PX_SCHED_DPM) px_dpm_free(&s->dpm);
    else if (s->kind == PX_SCHED_LCM) px_lcm_free(&s->lcm);
    else if (s->kind == PX_SCHED_SA) px_sa_free(&s->sa);
    s->timesteps = NULL;
    s->n_timesteps = 0;
}

int px_scheduler_set_timesteps(px_scheduler *s, int64_t num_inference_steps, const int64_t *timesteps,
                               size_t n)
{
    if (s->kind == PX_SCHED_DDIM) {
        if (timesteps)
            return px_fail("DDIMScheduler does not support custom timesteps (its set_timesteps has no "
                           "`timesteps` argument)");
        if (px_ddim_set_timesteps(&s->ddim, num_inference_steps)) return -1;
        s->timesteps = s->ddim.timesteps;
        s->n_timesteps = s->ddim.n_timesteps;
        return 0;
    }
    if (s->kind == PX_SCHED_SA) {
        if (timesteps)
            return px_fail("SASolverScheduler does not support custom timesteps (its set_timesteps has no "
                           "`timesteps` argument)");
        if (px_sa_set_timesteps(&s->sa, num_inference_steps)) return -1;
        s->timesteps = s->sa.timesteps;
        s->n_timesteps = s->sa.n_timesteps;
        return 0;
    }
    if (s->kind == PX_SCHED_LCM) {
        if (px_lcm_set_timesteps(&s->lcm, num_inference_steps, 0, timesteps, n)) return -1;
        s->timesteps = s->lcm.timesteps;
        s->n_timesteps = s->lcm.n_timesteps;
        return 0;
    }
    if (px_dpm_set_timesteps(&s->dpm, num_inference_steps, timesteps, n)) return -1;
    s->timesteps = s->dpm.timesteps;
    s->n_timesteps = s->dpm.n_timesteps;
    return 0;
}

int px_scheduler_step(px_scheduler *s, const float *model_output, int64_t model_channels, int64_t t,
                      const float *sample, px_sched_dims dims, const px_step_args *args, float *prev_sample,
                      float *pred_original_sample)
{
    px_step_args none = { 0 };
    if (!args) args = &none;
    if (dims.batch < 0 || dims.channels < 0 || dims.spatial < 0)
        return px_fail("scheduler step: negative dimension");
    if (s->kind == PX_SCHED_DDIM) {
        if (model_channels != dims.channels)
            return px_fail("DDIMScheduler.step: model output has %lld channels, sample has %lld",
                           (long long)model_channels, (long long)dims.channels);
        px_ddim_step_args a = { args->eta, args->use_clipped_model_output, args->generators,
                                args->n_generators, args->variance_noise,
                                args->variance_noise_out };
        return px_ddim_step(&s->ddim, model_output, t, sample, dims, &a, prev_sample, pred_original_sample);
    }
    if (pred_original_sample)
        return px_fail("%s.step has no pred_original_sample (diffusers' 1-step pipeline path needs DDIM)",
                       px_sched_class_name(s->kind));
    if (s->kind == PX_SCHED_LCM) {
        if (model_channels != dims.channels)
            return px_fail("LCMScheduler.step: model output has %lld channels, sample has %lld",
                           (long long)model_channels, (long long)dims.channels);
        px_lcm_step_args a = { args->generators, args->n_generators, args->variance_noise,
                               args->variance_noise_out, args->denoised_out };
        return px_lcm_step(&s->lcm, model_output, t, sample, dims, &a, prev_sample);
    }
    if (s->kind == PX_SCHED_SA) {
        px_sa_step_args a = { args->generators, args->n_generators, args->variance_noise,
                              args->variance_noise_out };
        return px_sa_step(&s->sa, model_output, model_channels, t, sample, dims, &a, prev_sample);
    }
    px_dpm_step_args a = { args->generators, args->n_generators, args->variance_noise };
    return px_dpm_step(&s->dpm, model_output, model_channels, t, sample, dims, &a, prev_sample);
}

int px_scheduler_step_draws(const px_scheduler *s, int64_t i, double eta)
{
    switch (s->kind) {
    case PX_SCHED_DDIM: return eta > 0;
    case PX_SCHED_DPM:
        return s->dpm.config.algorithm_type == PX_DPM_SDE_DPMSOLVER_PP ||
               s->dpm.config.algorithm_type == PX_DPM_SDE_DPMSOLVER;
    case PX_SCHED_LCM: return i != s->n_timesteps - 1; /* step_index != num_inference_steps - 1 */
    case PX_SCHED_SA: return 1;
    }
    return 0;
}

int px_scheduler_needs_generator(const px_scheduler *s, double eta)
{
    for (int64_t i = 0; i < s->n_timesteps; i++)
        if (px_scheduler_step_draws(s, i, eta)) return 1;
    return 0;
}
