/* SASolverScheduler of diffusers v0.30.3 (schedulers/scheduling_sasolver.py):
 * SA-Solver, a stochastic Adams predictor-corrector for diffusion SDEs
 * (data_prediction or noise_prediction, predictor and corrector orders 1-3,
 * the default tau_func, Karras sigmas, lower_order_final).
 *
 * px_sa holds the schedule (alphas_cumprod, sigmas, timesteps: the same
 * tables and spacings as DPMSolverMultistepScheduler, so a px_dpm computes
 * them) and the run state diffusers keeps on the scheduler object: the
 * converted model outputs and their timesteps, the last corrected sample and
 * the last noise (the corrector of step i re-does step i-1's update with the
 * model output of step i), the orders, lower_order_nums and the step index.
 * Every step draws randn_tensor(model_output.shape) from the generator(s),
 * also the last one and also where tau is 0. */
#ifndef PX_SCHED_SASOLVER_H
#define PX_SCHED_SASOLVER_H

#include <stddef.h>
#include <stdint.h>

#include "sched/config.h"
#include "sched/ddim.h" /* px_sched_dims, px_sched_threshold */
#include "sched/dpmsolver.h"
#include "sched/rng.h"

/* What one step did (diffusers' local variables; the reference records them). */
typedef struct {
    int use_corrector;
    int corrector_order, tau_corrector; /* valid when use_corrector */
    int predictor_order, tau_predictor;
} px_sa_step_info;

typedef struct px_sa {
    px_sched_config config;   /* own copy */
    px_dpm tables;            /* alphas_cumprod, train sigmas, lambda_t; timesteps / sigmas */

    /* after px_sa_set_timesteps (pointers into tables) */
    const int64_t *timesteps; /* (n_timesteps,) */
    int64_t n_timesteps;      /* == diffusers' num_inference_steps */
    const float *sigmas;      /* (n_timesteps + 1,) float32; the last one is sigma(t=0), not 0 */

    /* run state (reset by set_timesteps) */
    int history;              /* max(predictor_order, corrector_order - 1) */
    float *model_outputs[4];  /* history, oldest first, + one spare buffer */
    int64_t timestep_list[3];
    float *last_sample;       /* the corrected sample the last predictor started from */
    float *last_noise;        /* the noise the last predictor used */
    float *scratch;
    int have_last;
    size_t state_numel;
    int lower_order_nums;
    int this_predictor_order, this_corrector_order;
    int64_t step_index;       /* -1 until the first step */
    px_sa_step_info last_step;
} px_sa;

int px_sa_init(px_sa *s, const px_sched_config *c);
void px_sa_free(px_sa *s);

/* SASolverScheduler.set_timesteps(num_inference_steps). */
int px_sa_set_timesteps(px_sa *s, int64_t num_inference_steps);

/* tau_func default: 1 if 200 <= t <= 800 else 0 */
int px_sa_tau(int64_t t);

typedef struct {
    px_rng *generators;       /* noise = randn_tensor(model_output.shape, generators) */
    size_t n_generators;      /*   1 generator, or one per batch element */
    const float *noise;       /* use this noise instead of drawing it (optional) */
    float *noise_out;         /* receives the noise (optional) */
} px_sa_step_args;

/* SASolverScheduler.step(model_output, t, sample, generator).prev_sample.
 * model_output, sample, prev_sample: (dims); the outputs may not alias the
 * inputs. After the call, last_sample is the corrected sample (the
 * predictor's input), model_outputs[history - 1] the converted model output,
 * last_noise the noise, last_step what was done. */
int px_sa_step(px_sa *s, const float *model_output, int64_t model_channels, int64_t t, const float *sample,
               px_sched_dims dims, const px_sa_step_args *args, float *prev_sample);

#endif
