/* scheduler_config.json -> px_sched_config, with diffusers v0.30.3 from_config
 * semantics (see config.h). The input is hostile: every value is type-checked
 * and every enum-like string validated; errors name the file and the key. */
#include "sched/config.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void px_sched_config_defaults(px_sched_config *c, px_sched_kind kind)
{
    memset(c, 0, sizeof *c);
    c->kind = kind;
    c->num_train_timesteps = 1000;
    c->beta_start = 0.0001;
    c->beta_end = 0.02;
    c->beta_schedule = PX_BETA_LINEAR;
    c->prediction_type = PX_PRED_EPSILON;
    c->dynamic_thresholding_ratio = 0.995;
    c->sample_max_value = 1.0;
    c->timestep_spacing = kind == PX_SCHED_DDIM ? PX_SPACING_LEADING : PX_SPACING_LINSPACE;
    c->clip_sample = 1;
    c->clip_sample_range = 1.0;
    c->set_alpha_to_one = 1;
    c->solver_order = 2;
    c->algorithm_type = PX_DPM_DPMSOLVER_PP;
    c->solver_type = PX_DPM_MIDPOINT;
    c->lower_order_final = 1;
    c->final_sigmas_type = PX_FINAL_SIGMA_ZERO;
    c->lambda_min_clipped = -INFINITY;
    /* LCMScheduler() / SASolverScheduler() */
    c->original_inference_steps = 50;
    c->timestep_scaling = 10.0;
    c->predictor_order = 2;
    c->corrector_order = 2;
    c->sa_algorithm = PX_SA_DATA_PREDICTION;
    if (kind == PX_SCHED_LCM) {
        c->beta_start = 0.00085;
        c->beta_end = 0.012;
        c->beta_schedule = PX_BETA_SCALED_LINEAR;
        c->clip_sample = 0;
        c->timestep_spacing = PX_SPACING_LEADING;
    }
}

int px_sched_kind_from_name(const char *name)
{
    if (!name) return -1;
    if (!strcmp(name, "ddim") || !strcmp(name, "DDIMScheduler")) return PX_SCHED_DDIM;
    if (!strcmp(name, "dpm") || !strcmp(name, "dpmsolver") || !strcmp(name, "dpm-solver") ||
        !strcmp(name, "DPMSolverMultistepScheduler"))
        return PX_SCHED_DPM;
    if (!strcmp(name, "lcm") || !strcmp(name, "LCMScheduler")) return PX_SCHED_LCM;
    if (!strcmp(name, "sa-solver") || !strcmp(name, "sasolver") || !strcmp(name, "SASolverScheduler"))
        return PX_SCHED_SA;
    return -1;
}

const char *px_sched_class_name(px_sched_kind kind)
{
    switch (kind) {
    case PX_SCHED_DDIM: return "DDIMScheduler";
    case PX_SCHED_DPM: return "DPMSolverMultistepScheduler";
    case PX_SCHED_LCM: return "LCMScheduler";
    case PX_SCHED_SA: return "SASolverScheduler";
    }
    return "?";
}

void px_sched_config_free(px_sched_config *c)
{
    if (!c) return;
    free(c->trained_betas);
    c->trained_betas = NULL;
    c->n_trained_betas = 0;
}

int px_sched_config_copy(px_sched_config *dst, const px_sched_config *src)
{
    *dst = *src;
    dst->trained_betas = NULL;
    if (src->trained_betas) {
        size_t n = src->n_trained_betas;
        dst->trained_betas = px_malloc((n ? n : 1) * sizeof(double), "trained_betas");
        if (!dst->trained_betas) return -1;
        memcpy(dst->trained_betas, src->trained_betas, n * sizeof(double));
    }
    return 0;
}

// ---------------------------------------------------------------------------
// key lookup with from_config rules

typedef struct {
    const px_json *obj;
    const px_json *use_defaults; /* "_use_default_values" array or NULL */
    const char *src;
} reader;

/* The value of key, or NULL when absent or listed in _use_default_values. */
static const px_json *member(const reader *r, const char *key)
{
    if (r->use_defaults)
        for (size_t i = 0; i < r->use_defaults->count; i++) {
            const px_json *k = r->use_defaults->items[i];
            if (k->type == PX_JSON_STRING && !strcmp(k->string, key)) return NULL;
        }
    return px_json_get(r->obj, key);
}

static const char *type_name(px_json_type t)
{
    switch (t) {
    case PX_JSON_NULL: return "null";
    case PX_JSON_BOOL: return "a boolean";
    case PX_JSON_NUMBER: return "a number";
    case PX_JSON_STRING: return "a string";
    case PX_JSON_ARRAY: return "an array";
    case PX_JSON_OBJECT: return "an object";
    }
    return "?";
}

static int bad_type(const reader *r, const char *key, const px_json *v, const char *want)
{
    return px_fail("%s: scheduler key '%s' should be %s (got %s)", r->src, key, want, type_name(v->type));
}

static int get_bool(const reader *r, const char *key, int *out, int nullable)
{
    const px_json *v = member(r, key);
    if (!v) return 0;
    if (v->type == PX_JSON_NULL && nullable) { *out = 0; return 0; } /* Optional[bool]: None is falsy */
    if (v->type != PX_JSON_BOOL) return bad_type(r, key, v, "true or false");
    *out = v->boolean;
    return 0;
}

static int get_number(const reader *r, const char *key, double *out)
{
    const px_json *v = member(r, key);
    if (!v) return 0;
    if (v->type != PX_JSON_NUMBER) return bad_type(r, key, v, "a number");
    *out = v->number;
    return 0;
}

static int get_finite(const reader *r, const char *key, double *out)
{
    if (get_number(r, key, out)) return -1;
    if (!isfinite(*out)) return px_fail("%s: scheduler key '%s' must be finite (got %g)", r->src, key, *out);
    return 0;
}

static int get_int(const reader *r, const char *key, int64_t *out, int64_t lo, int64_t hi)
{
    const px_json *v = member(r, key);
    if (!v) return 0;
    if (v->type != PX_JSON_NUMBER || !v->is_integer || v->int_overflow) return bad_type(r, key, v, "an integer");
    if (v->integer < lo || v->integer > hi)
        return px_fail("%s: scheduler key '%s' = %lld is not supported (expected %lld..%lld)", r->src, key,
                       (long long)v->integer, (long long)lo, (long long)hi);
    *out = v->integer;
    return 0;
}

/* A string key whose value must be one of names[] (NULL-terminated); *out =
 * vals[i]. Returns 1 when absent (out untouched). */
static int get_enum(const reader *r, const char *key, const char *const *names, const int *vals, int *out)
{
    const px_json *v = member(r, key);
    if (!v) return 1;
    if (v->type != PX_JSON_STRING) return bad_type(r, key, v, "a string");
    for (int i = 0; names[i]; i++)
        if (!strcmp(v->string, names[i])) {
            *out = vals[i];
            return 0;
        }
    char list[256] = "";
    for (int i = 0; names[i]; i++) {
        strncat(list, i ? ", " : "", sizeof list - strlen(list) - 1);
        strncat(list, names[i], sizeof list - strlen(list) - 1);
    }
    return px_fail("%s: scheduler key '%s' = \"%.64s\" is not supported (expected one of: %s)", r->src, key,
                   v->string, list);
}

#define ENUM(key, field, T, names, vals)                                              \
    do {                                                                              \
        int tmp_ = (int)(c->field);                                                   \
        int rc_ = get_enum(&r, key, names, vals, &tmp_);                              \
        if (rc_ < 0) goto fail;                                                       \
        c->field = (T)tmp_;                                                           \
    } while (0)

static const char *const beta_names[] = { "linear", "scaled_linear", "squaredcos_cap_v2", NULL };
static const int beta_vals[] = { PX_BETA_LINEAR, PX_BETA_SCALED_LINEAR, PX_BETA_SQUAREDCOS_CAP_V2 };
static const char *const pred_names[] = { "epsilon", "sample", "v_prediction", NULL };
static const int pred_vals[] = { PX_PRED_EPSILON, PX_PRED_SAMPLE, PX_PRED_V };
static const char *const spacing_names[] = { "linspace", "leading", "trailing", NULL };
static const int spacing_vals[] = { PX_SPACING_LINSPACE, PX_SPACING_LEADING, PX_SPACING_TRAILING };
static const char *const algo_names[] = { "dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver", "deis", NULL };
static const int algo_vals[] = { PX_DPM_DPMSOLVER_PP, PX_DPM_DPMSOLVER, PX_DPM_SDE_DPMSOLVER_PP,
                                 PX_DPM_SDE_DPMSOLVER, PX_DPM_DPMSOLVER_PP };
static const char *const solver_names[] = { "midpoint", "heun", "logrho", "bh1", "bh2", NULL };
static const int solver_vals[] = { PX_DPM_MIDPOINT, PX_DPM_HEUN, PX_DPM_MIDPOINT, PX_DPM_MIDPOINT, PX_DPM_MIDPOINT };
static const char *const final_names[] = { "zero", "sigma_min", NULL };
static const int final_vals[] = { PX_FINAL_SIGMA_ZERO, PX_FINAL_SIGMA_MIN };

static int get_trained_betas(const reader *r, px_sched_config *c)
{
    const px_json *v = member(r, "trained_betas");
    if (!v || v->type == PX_JSON_NULL) return 0;
    if (v->type != PX_JSON_ARRAY) return bad_type(r, "trained_betas", v, "an array of numbers or null");
    if (v->count == 0) return px_fail("%s: scheduler key 'trained_betas' is empty", r->src);
    double *b = px_malloc(v->count * sizeof *b, "trained_betas");
    if (!b) return -1;
    for (size_t i = 0; i < v->count; i++) {
        if (v->items[i]->type != PX_JSON_NUMBER) {
            free(b);
            return px_fail("%s: scheduler key 'trained_betas'[%zu] should be a number", r->src, i);
        }
        b[i] = v->items[i]->number;
    }
    c->trained_betas = b;
    c->n_trained_betas = v->count;
    return 0;
}

static int lcm_sa_keys(const reader *r, px_sched_config *c, const px_json *obj);

/* The training schedule built once (sched/schedule.c): betas in (0, 1) and
 * finite derived alphas / sigmas, or an error naming the file and the field. */
static int validate_schedule(const px_sched_config *c, const char *src)
{
    px_schedule_params p = { c->num_train_timesteps, c->beta_start, c->beta_end, c->beta_schedule,
                             c->trained_betas, c->n_trained_betas, c->rescale_betas_zero_snr };
    if (px_schedule_validate(&p)) return px_fail_ctx("%s: scheduler config", src);
    return 0;
}

int px_sched_config_from_json(px_sched_config *c, const px_json *obj, int kind, const char *source)
{
    const char *src = source ? source : "scheduler config";
    memset(c, 0, sizeof *c);
    if (!obj || obj->type != PX_JSON_OBJECT) return px_fail("%s: scheduler config is not a JSON object", src);

    const px_json *cls = px_json_get(obj, "_class_name");
    if (kind < 0) {
        if (!cls) return px_fail("%s: scheduler key '_class_name' is missing", src);
        if (cls->type != PX_JSON_STRING)
            return px_fail("%s: scheduler key '_class_name' should be a string", src);
        kind = px_sched_kind_from_name(cls->string);
        /* only the diffusers class names, not the short CLI names */
        if (kind < 0 || strcmp(cls->string, px_sched_class_name((px_sched_kind)kind)))
            return px_fail("%s: scheduler key '_class_name' = \"%.64s\" is not supported "
                           "(DDIMScheduler, DPMSolverMultistepScheduler, LCMScheduler or SASolverScheduler)",
                           src, cls->string);
    } else if (kind < PX_SCHED_DDIM || kind > PX_SCHED_SA) {
        return px_fail("%s: unknown scheduler kind %d", src, kind);
    }
    px_sched_config_defaults(c, (px_sched_kind)kind);

    reader r = { obj, NULL, src };
    const px_json *ud = px_json_get(obj, "_use_default_values");
    if (ud && ud->type == PX_JSON_ARRAY) r.use_defaults = ud;

    /* shared __init__ arguments */
    if (get_int(&r, "num_train_timesteps", &c->num_train_timesteps, 1, 1000000)) goto fail;
    if (get_finite(&r, "beta_start", &c->beta_start)) goto fail;
    if (get_finite(&r, "beta_end", &c->beta_end)) goto fail;
    ENUM("beta_schedule", beta_schedule, px_beta_schedule, beta_names, beta_vals);
    if (get_trained_betas(&r, c)) goto fail;
    ENUM("prediction_type", prediction_type, px_prediction_type, pred_names, pred_vals);
    if (get_bool(&r, "thresholding", &c->thresholding, 0)) goto fail;
    if (get_finite(&r, "dynamic_thresholding_ratio", &c->dynamic_thresholding_ratio)) goto fail;
    if (get_finite(&r, "sample_max_value", &c->sample_max_value)) goto fail;
    ENUM("timestep_spacing", timestep_spacing, px_timestep_spacing, spacing_names, spacing_vals);
    if (get_int(&r, "steps_offset", &c->steps_offset, -1000000, 1000000)) goto fail;
    if (get_bool(&r, "rescale_betas_zero_snr", &c->rescale_betas_zero_snr, 0)) goto fail;
    if (c->trained_betas && c->n_trained_betas != (size_t)c->num_train_timesteps) {
        px_fail("%s: scheduler key 'trained_betas' has %zu values but num_train_timesteps is %lld", src,
                c->n_trained_betas, (long long)c->num_train_timesteps);
        goto fail;
    }
    if (c->thresholding && !(c->dynamic_thresholding_ratio >= 0 && c->dynamic_thresholding_ratio <= 1)) {
        px_fail("%s: scheduler key 'dynamic_thresholding_ratio' = %g must be in [0, 1]", src,
                c->dynamic_thresholding_ratio);
        goto fail;
    }
    if (validate_schedule(c, src)) goto fail;

    if (kind == PX_SCHED_LCM || kind == PX_SCHED_SA) {
        if (lcm_sa_keys(&r, c, obj)) goto fail;
        return 0;
    }

    if (kind == PX_SCHED_DDIM) {
        if (get_bool(&r, "clip_sample", &c->clip_sample, 0)) goto fail;
        if (get_finite(&r, "clip_sample_range", &c->clip_sample_range)) goto fail;
        if (get_bool(&r, "set_alpha_to_one", &c->set_alpha_to_one, 0)) goto fail;
        return 0;
    }

    /* DPMSolverMultistepScheduler */
    int64_t order = c->solver_order;
    if (get_int(&r, "solver_order", &order, 1, 3)) goto fail;
    c->solver_order = (int)order;
    ENUM("algorithm_type", algorithm_type, px_dpm_algorithm, algo_names, algo_vals);
    ENUM("solver_type", solver_type, px_dpm_solver_type, solver_names, solver_vals);
    if (get_bool(&r, "lower_order_final", &c->lower_order_final, 0)) goto fail;
    if (get_bool(&r, "euler_at_final", &c->euler_at_final, 0)) goto fail;
    if (get_bool(&r, "use_karras_sigmas", &c->use_karras_sigmas, 1)) goto fail;
    {
        int lu = 0;
        if (get_bool(&r, "use_lu_lambdas", &lu, 1)) goto fail;
        if (lu) {
            px_fail("%s: scheduler key 'use_lu_lambdas' = true is not supported", src);
            goto fail;
        }
    }
    {
        const px_json *v = member(&r, "final_sigmas_type");
        if (v && v->type == PX_JSON_NULL) {
            px_fail("%s: scheduler key 'final_sigmas_type' = null is not supported (zero or sigma_min)", src);
            goto fail;
        }
    }
    ENUM("final_sigmas_type", final_sigmas_type, px_final_sigmas_type, final_names, final_vals);
    if (get_number(&r, "lambda_min_clipped", &c->lambda_min_clipped)) goto fail;
    if (isnan(c->lambda_min_clipped)) {
        px_fail("%s: scheduler key 'lambda_min_clipped' is NaN", src);
        goto fail;
    }
    {
        const px_json *v = member(&r, "variance_type");
        if (v && v->type != PX_JSON_NULL) {
            if (v->type != PX_JSON_STRING) {
                bad_type(&r, "variance_type", v, "a string or null");
                goto fail;
            }
            /* only these two change anything in diffusers; other strings
             * (e.g. DDPM's "fixed_small") behave like None */
            c->learned_variance = !strcmp(v->string, "learned") || !strcmp(v->string, "learned_range");
        }
    }
    /* not __init__ arguments, but used by _convert_to_karras when present */
    {
        const px_json *v = px_json_get(obj, "sigma_min");
        if (v && v->type != PX_JSON_NULL) {
            if (v->type != PX_JSON_NUMBER || !(v->number > 0) || !isfinite(v->number)) {
                px_fail("%s: scheduler key 'sigma_min' should be a finite positive number", src);
                goto fail;
            }
            c->has_sigma_min = 1;
            c->sigma_min = v->number;
        }
        v = px_json_get(obj, "sigma_max");
        if (v && v->type != PX_JSON_NULL) {
            if (v->type != PX_JSON_NUMBER || !(v->number > 0) || !isfinite(v->number)) {
                px_fail("%s: scheduler key 'sigma_max' should be a finite positive number", src);
                goto fail;
            }
            c->has_sigma_max = 1;
            c->sigma_max = v->number;
        }
    }
    /* DPMSolverMultistepScheduler.__init__'s own check */
    if ((c->algorithm_type == PX_DPM_DPMSOLVER || c->algorithm_type == PX_DPM_SDE_DPMSOLVER) &&
        c->final_sigmas_type == PX_FINAL_SIGMA_ZERO) {
        px_fail("%s: scheduler key 'final_sigmas_type' = \"zero\" is not supported with algorithm_type "
                "dpmsolver / sde-dpmsolver (diffusers requires \"sigma_min\")", src);
        goto fail;
    }
    if (c->solver_order == 3 &&
        (c->algorithm_type == PX_DPM_SDE_DPMSOLVER || c->algorithm_type == PX_DPM_SDE_DPMSOLVER_PP)) {
        /* diffusers' third-order update has no SDE branch (it fails at the
         * third step with UnboundLocalError) */
        px_fail("%s: scheduler key 'solver_order' = 3 is not supported with an sde-* algorithm_type", src);
        goto fail;
    }
    return 0;

fail:
    px_sched_config_free(c);
    return -1;
}

int px_sched_config_load(px_sched_config *c, const char *path, int kind)
{
    px_json *j = px_json_load_file(path);
    if (!j) return -1;
    int rc = px_sched_config_from_json(c, j, kind, path);
    px_json_free(j);
    return rc;
}

// ---------------------------------------------------------------------------
// LCMScheduler and SASolverScheduler keys (after the shared ones above)

static const char *const sa_algo_names[] = { "data_prediction", "noise_prediction", NULL };
static const int sa_algo_vals[] = { PX_SA_DATA_PREDICTION, PX_SA_NOISE_PREDICTION };

static int lcm_sa_keys(const reader *rp, px_sched_config *c, const px_json *obj)
{
    const reader r = *rp; /* for ENUM */
    const char *src = r.src;
    if (c->kind == PX_SCHED_LCM) {
        if (get_int(&r, "original_inference_steps", &c->original_inference_steps, 1, 1000000)) return -1;
        if (get_bool(&r, "clip_sample", &c->clip_sample, 0)) return -1;
        if (get_finite(&r, "clip_sample_range", &c->clip_sample_range)) return -1;
        if (get_bool(&r, "set_alpha_to_one", &c->set_alpha_to_one, 0)) return -1;
        if (get_finite(&r, "timestep_scaling", &c->timestep_scaling)) return -1;
        return px_sched_config_check_lcm_sa(c) ? px_fail_ctx("%s", src) : 0;
    }

    /* SASolverScheduler.__init__ has no rescale_betas_zero_snr argument */
    c->rescale_betas_zero_snr = 0;
    int64_t v = c->predictor_order;
    if (get_int(&r, "predictor_order", &v, 1, 3)) return -1;
    c->predictor_order = (int)v;
    v = c->corrector_order;
    if (get_int(&r, "corrector_order", &v, 1, 3)) return -1;
    c->corrector_order = (int)v;
    /* Another class's algorithm_type (DPM-Solver's "dpmsolver++") would make
     * SASolverScheduler.from_config raise; the PixArt model card swaps it in
     * as from_config(config, algorithm_type='data_prediction'), which is what
     * loading another class's file as SA-Solver does here. */
    const px_json *cls = px_json_get(obj, "_class_name");
    int own = !cls || (cls->type == PX_JSON_STRING && !strcmp(cls->string, "SASolverScheduler"));
    if (own) {
        int tmp = (int)c->sa_algorithm;
        if (get_enum(&r, "algorithm_type", sa_algo_names, sa_algo_vals, &tmp) < 0) return -1;
        c->sa_algorithm = (px_sa_algorithm)tmp;
    }
    if (get_bool(&r, "lower_order_final", &c->lower_order_final, 0)) return -1;
    if (get_bool(&r, "use_karras_sigmas", &c->use_karras_sigmas, 1)) return -1;
    if (get_number(&r, "lambda_min_clipped", &c->lambda_min_clipped)) return -1;
    if (isnan(c->lambda_min_clipped))
        return px_fail("%s: scheduler key 'lambda_min_clipped' is NaN", src);
    const px_json *j = member(&r, "variance_type");
    if (j && j->type != PX_JSON_NULL) {
        if (j->type != PX_JSON_STRING) return bad_type(&r, "variance_type", j, "a string or null");
        c->learned_variance = !strcmp(j->string, "learned") || !strcmp(j->string, "learned_range");
    }
    /* a Python callable cannot come from JSON: only null (the default) */
    j = member(&r, "tau_func");
    if (j && j->type != PX_JSON_NULL)
        return px_fail("%s: scheduler key 'tau_func' is not supported (only null: the default "
                       "1 if 200 <= t <= 800 else 0)", src);
    /* _convert_to_karras would honour sigma_min / sigma_max carried by the
     * config; we do not read them for SA-Solver, so refuse rather than differ */
    const char *const bounds[] = { "sigma_min", "sigma_max" };
    for (int k = 0; k < 2; k++) {
        j = px_json_get(obj, bounds[k]);
        if (j && j->type != PX_JSON_NULL && c->use_karras_sigmas)
            return px_fail("%s: scheduler key '%s' is not supported by SASolverScheduler here", src, bounds[k]);
    }
    return px_sched_config_check_lcm_sa(c) ? px_fail_ctx("%s", src) : 0;
}

static int beta_ok(double b)
{
    return isfinite(b) && b > 0 && b < 1;
}

int px_sched_config_check_lcm_sa(const px_sched_config *c)
{
    if (c->kind != PX_SCHED_LCM && c->kind != PX_SCHED_SA) return 0;
    const char *cls = px_sched_class_name(c->kind);
    if (c->num_train_timesteps < 1)
        return px_fail("%s: scheduler key 'num_train_timesteps' = %lld must be >= 1", cls,
                       (long long)c->num_train_timesteps);
    if (c->trained_betas) {
        if (c->n_trained_betas != (size_t)c->num_train_timesteps)
            return px_fail("%s: scheduler key 'trained_betas' has %zu values but num_train_timesteps is %lld",
                           cls, c->n_trained_betas, (long long)c->num_train_timesteps);
        for (size_t i = 0; i < c->n_trained_betas; i++)
            if (!beta_ok(c->trained_betas[i]))
                return px_fail("%s: scheduler key 'trained_betas'[%zu] = %g must be in (0, 1)", cls, i,
                               c->trained_betas[i]);
    } else {
        /* every beta of linear / scaled_linear lies between these two; the
         * cosine schedule does not use them */
        if (c->beta_schedule != PX_BETA_SQUAREDCOS_CAP_V2) {
            if (!beta_ok(c->beta_start))
                return px_fail("%s: scheduler key 'beta_start' = %g must be in (0, 1)", cls, c->beta_start);
            if (!beta_ok(c->beta_end))
                return px_fail("%s: scheduler key 'beta_end' = %g must be in (0, 1)", cls, c->beta_end);
        }
    }
    if (c->thresholding && !(c->dynamic_thresholding_ratio >= 0 && c->dynamic_thresholding_ratio <= 1))
        return px_fail("%s: scheduler key 'dynamic_thresholding_ratio' = %g must be in [0, 1]", cls,
                       c->dynamic_thresholding_ratio);
    if (c->kind == PX_SCHED_LCM) {
        if (c->original_inference_steps < 1)
            return px_fail("%s: scheduler key 'original_inference_steps' = %lld must be >= 1", cls,
                           (long long)c->original_inference_steps);
        if (c->original_inference_steps > c->num_train_timesteps)
            return px_fail("%s: scheduler key 'original_inference_steps' = %lld cannot be larger than "
                           "num_train_timesteps = %lld", cls, (long long)c->original_inference_steps,
                           (long long)c->num_train_timesteps);
        if (!isfinite(c->timestep_scaling))
            return px_fail("%s: scheduler key 'timestep_scaling' must be finite", cls);
        if (c->clip_sample && !isfinite(c->clip_sample_range))
            return px_fail("%s: scheduler key 'clip_sample_range' must be finite", cls);
        return 0;
    }
    if (c->predictor_order < 1 || c->predictor_order > 3)
        return px_fail("%s: scheduler key 'predictor_order' = %d is not supported (1..3)", cls, c->predictor_order);
    if (c->corrector_order < 1 || c->corrector_order > 3)
        return px_fail("%s: scheduler key 'corrector_order' = %d is not supported (1..3)", cls, c->corrector_order);
    if (c->rescale_betas_zero_snr)
        return px_fail("%s: scheduler key 'rescale_betas_zero_snr' is not an argument of SASolverScheduler", cls);
    if (isnan(c->lambda_min_clipped)) return px_fail("%s: scheduler key 'lambda_min_clipped' is NaN", cls);
    return 0;
}
