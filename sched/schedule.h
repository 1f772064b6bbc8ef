/* The training noise schedule shared by DDIMScheduler and
 * DPMSolverMultistepScheduler (diffusers v0.30.3 __init__): betas ->
 * alphas_cumprod in float32 exactly as torch computes them, and the
 * timestep spacings of set_timesteps. Schedules are data: these functions
 * fill arrays, they hold no state. */
#ifndef PX_SCHED_SCHEDULE_H
#define PX_SCHED_SCHEDULE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    PX_BETA_LINEAR = 0,        /* torch.linspace(beta_start, beta_end, N, float32) */
    PX_BETA_SCALED_LINEAR,     /* torch.linspace(beta_start**0.5, beta_end**0.5, N) ** 2 */
    PX_BETA_SQUAREDCOS_CAP_V2, /* betas_for_alpha_bar(N) (cosine, max_beta 0.999) */
} px_beta_schedule;

typedef enum {
    PX_SPACING_LINSPACE = 0,
    PX_SPACING_LEADING,
    PX_SPACING_TRAILING,
} px_timestep_spacing;

/* What alphas_cumprod is built from. */
typedef struct {
    int64_t num_train_timesteps;
    double beta_start, beta_end;
    px_beta_schedule beta_schedule;
    const double *trained_betas; /* overrides beta_schedule when not NULL ... */
    size_t n_trained_betas;      /* ... and must equal num_train_timesteps */
    int rescale_betas_zero_snr;
} px_schedule_params;

/* 0 when v is finite and in (0, 1); else -1 with "FIELD[INDEX] = V is not in
 * (0, 1)" (index < 0: no index). For the config readers of every scheduler. */
int px_schedule_check_open01(const char *field, int64_t index, double v);

/* Builds the schedule once to validate it: num_train_timesteps, beta_start /
 * beta_end / trained_betas and every beta in (0, 1), every alphas_cumprod in
 * (0, 1) (the zero-SNR rescaling's last one may be 0) and every derived sigma
 * finite. -1 with a message naming the field; callers add the file name. */
int px_schedule_validate(const px_schedule_params *p);

/* betas (float32) as the scheduler constructors build them. betas has
 * num_train_timesteps entries. -1 with px_fail on bad parameters. */
int px_schedule_betas(float *betas, const px_schedule_params *p);

/* alphas_cumprod = torch.cumprod(1.0 - betas, dim=0) (after the optional
 * zero-terminal-SNR rescaling of betas). */
int px_schedule_alphas_cumprod(float *alphas_cumprod, const px_schedule_params *p);

/* Timesteps of DDIMScheduler.set_timesteps(n): N = num_train_timesteps,
 *   linspace: np.linspace(0, N-1, n).round()[::-1]
 *   leading:  np.arange(0, n) * (N // n), reversed, + steps_offset
 *   trailing: np.round(np.arange(N, 0, -N/n)) - 1
 * *count receives the number of timesteps: n, or n + 1 for 'trailing' when
 * numpy's arange rounds that way (the extra last timestep is then -1); out
 * must hold n + 1 entries. -1 with px_fail when n is not in [1, N]. */
int px_ddim_timesteps(int64_t *out, int64_t *count, int64_t n, int64_t N,
                      px_timestep_spacing spacing, int64_t steps_offset);

/* Timesteps of DPMSolverMultistepScheduler.set_timesteps(n) (without Karras):
 * last = N - clipped_idx (the lambda_min_clipped cut, see dpmsolver.c),
 *   linspace: np.linspace(0, last-1, n+1).round()[::-1][:-1]
 *   leading:  np.arange(0, n+1) * (last // (n+1)), reversed, [:-1], + steps_offset
 *   trailing: np.arange(last, 0, -N/n).round() - 1
 * *count receives the number of timesteps (n, except for 'trailing' where
 * numpy's arange decides); out must hold n + 1 entries. */
int px_dpm_timesteps(int64_t *out, int64_t *count, int64_t n, int64_t N, int64_t last,
                     px_timestep_spacing spacing, int64_t steps_offset);

#endif
