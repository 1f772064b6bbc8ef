/* Scheduler configuration ("the blueprint"): scheduler/scheduler_config.json of
 * a diffusers checkpoint, read as diffusers v0.30.3 `<Class>.from_config(cfg)`
 * reads it for DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler and
 * SASolverScheduler.
 *
 * from_config semantics: only the target class's __init__ arguments are taken
 * from the file, every other key is ignored (so a DPM config loaded as DDIM
 * keeps the shared keys -- betas, prediction_type, timestep_spacing, ... -- and
 * uses DDIM defaults for clip_sample, set_alpha_to_one, clip_sample_range);
 * keys listed in "_use_default_values" fall back to the defaults. A value the
 * class would reject (or we do not implement) is an error naming the file and
 * the key. */
#ifndef PX_SCHED_CONFIG_H
#define PX_SCHED_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "sched/schedule.h"
#include "tensor/json.h"

typedef enum {
    PX_SCHED_DDIM = 0, /* DDIMScheduler */
    PX_SCHED_DPM = 1,  /* DPMSolverMultistepScheduler */
    PX_SCHED_LCM = 2,  /* LCMScheduler */
    PX_SCHED_SA = 3,   /* SASolverScheduler */
} px_sched_kind;

typedef enum {
    PX_SA_DATA_PREDICTION = 0, /* "data_prediction" */
    PX_SA_NOISE_PREDICTION,    /* "noise_prediction" */
} px_sa_algorithm;

typedef enum {
    PX_PRED_EPSILON = 0,
    PX_PRED_SAMPLE,
    PX_PRED_V,
} px_prediction_type;

typedef enum {
    PX_DPM_DPMSOLVER_PP = 0, /* "dpmsolver++" (also "deis", which diffusers maps to it) */
    PX_DPM_DPMSOLVER,        /* "dpmsolver" */
    PX_DPM_SDE_DPMSOLVER_PP, /* "sde-dpmsolver++" */
    PX_DPM_SDE_DPMSOLVER,    /* "sde-dpmsolver" */
} px_dpm_algorithm;

typedef enum {
    PX_DPM_MIDPOINT = 0, /* "midpoint" (also "logrho", "bh1", "bh2") */
    PX_DPM_HEUN,
} px_dpm_solver_type;

typedef enum {
    PX_FINAL_SIGMA_ZERO = 0,
    PX_FINAL_SIGMA_MIN,
} px_final_sigmas_type;

typedef struct px_sched_config {
    px_sched_kind kind;

    /* shared by both classes (defaults are the classes' defaults) */
    int64_t num_train_timesteps;  /* 1000 */
    double beta_start, beta_end;  /* 0.0001, 0.02 */
    px_beta_schedule beta_schedule; /* linear */
    double *trained_betas;        /* NULL, or n_trained_betas values (owned) */
    size_t n_trained_betas;
    px_prediction_type prediction_type; /* epsilon */
    int thresholding;             /* false */
    double dynamic_thresholding_ratio; /* 0.995 */
    double sample_max_value;      /* 1.0 */
    px_timestep_spacing timestep_spacing; /* DDIM: leading, DPM: linspace */
    int64_t steps_offset;         /* 0 */
    int rescale_betas_zero_snr;   /* false */

    /* DDIMScheduler only */
    int clip_sample;              /* true */
    double clip_sample_range;     /* 1.0 */
    int set_alpha_to_one;         /* true */

    /* DPMSolverMultistepScheduler only */
    int solver_order;             /* 2 */
    px_dpm_algorithm algorithm_type; /* dpmsolver++ */
    px_dpm_solver_type solver_type;  /* midpoint */
    int lower_order_final;        /* true */
    int euler_at_final;           /* false */
    int use_karras_sigmas;        /* false */
    px_final_sigmas_type final_sigmas_type; /* zero */
    double lambda_min_clipped;    /* -inf */
    int learned_variance;         /* variance_type "learned" / "learned_range" */
    /* sigma_min / sigma_max: not __init__ arguments, but a config that carries
     * them (non-null) is used by the Karras ramp (hasattr(self.config, ...)). */
    int has_sigma_min, has_sigma_max;
    double sigma_min, sigma_max;

    /* LCMScheduler only (also uses clip_sample, clip_sample_range,
     * set_alpha_to_one; its defaults differ: scaled_linear 0.00085..0.012,
     * clip_sample false; timestep_spacing / steps_offset are read but unused) */
    int64_t original_inference_steps; /* 50 */
    double timestep_scaling;          /* 10.0 */

    /* SASolverScheduler only (also uses lower_order_final, use_karras_sigmas,
     * lambda_min_clipped, learned_variance; tau_func is the default
     * `1 if 200 <= t <= 800 else 0`, a config cannot carry another one) */
    int predictor_order;              /* 2 */
    int corrector_order;              /* 2 */
    px_sa_algorithm sa_algorithm;     /* data_prediction */
} px_sched_config;

/* Defaults of DDIMScheduler(), DPMSolverMultistepScheduler(), LCMScheduler()
 * or SASolverScheduler(). */
void px_sched_config_defaults(px_sched_config *c, px_sched_kind kind);

/* Reads a scheduler config object. kind < 0: the class comes from
 * "_class_name" (DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler or
 * SASolverScheduler); kind >= 0:
 * load the file as that class (from_config of another class's config).
 * source names the input in messages. Free with px_sched_config_free. */
int px_sched_config_from_json(px_sched_config *c, const px_json *obj, int kind, const char *source);
/* The same from a file (scheduler/scheduler_config.json). */
int px_sched_config_load(px_sched_config *c, const char *path, int kind);

/* "ddim" / "DDIMScheduler" -> PX_SCHED_DDIM, "dpm" / "dpmsolver" /
 * "DPMSolverMultistepScheduler" -> PX_SCHED_DPM, "lcm" / "LCMScheduler" ->
 * PX_SCHED_LCM, "sa-solver" / "sasolver" / "SASolverScheduler" ->
 * PX_SCHED_SA; -1 otherwise. */
int px_sched_kind_from_name(const char *name);
/* The diffusers class name of a kind. */
const char *px_sched_class_name(px_sched_kind kind);

/* Deep copy (trained_betas duplicated). */
int px_sched_config_copy(px_sched_config *dst, const px_sched_config *src);
void px_sched_config_free(px_sched_config *c);

/* The checks the LCM / SA-Solver math needs, on a config however it was made
 * (file or code): betas finite and in (0, 1), step counts >= 1, orders 1..3,
 * timestep_scaling finite. The message names the key. 0 for other kinds. */
int px_sched_config_check_lcm_sa(const px_sched_config *c);

#endif
