/* DDIMScheduler (diffusers v0.30.3 schedulers/scheduling_ddim.py).
 *
 * Every tensor expression is evaluated in float32 with the operation order and
 * rounding of the torch ops it mirrors: 0-dim coefficients first (sqrt via
 * pow(x, 0.5) == sqrt), then one rounding per elementwise op. Built with
 * -ffp-contract=off so the compiler cannot fuse them. */
#include "sched/ddim.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int px_ddim_init(px_ddim *d, const px_sched_config *c)
{
    memset(d, 0, sizeof *d);
    if (c->kind != PX_SCHED_DDIM) return px_fail("px_ddim_init: config is not a DDIMScheduler config");
    d->num_train_timesteps = c->num_train_timesteps;
    d->prediction_type = c->prediction_type;
    d->clip_sample = c->clip_sample;
    d->clip_sample_range = (float)c->clip_sample_range;
    d->thresholding = c->thresholding;
    d->dynamic_thresholding_ratio = c->dynamic_thresholding_ratio;
    d->sample_max_value = c->sample_max_value;
    d->timestep_spacing = c->timestep_spacing;
    d->steps_offset = c->steps_offset;

    px_schedule_params p = { c->num_train_timesteps, c->beta_start, c->beta_end, c->beta_schedule,
                             c->trained_betas, c->n_trained_betas, c->rescale_betas_zero_snr };
    d->alphas_cumprod = px_malloc((size_t)c->num_train_timesteps * sizeof(float), "alphas_cumprod");
    if (!d->alphas_cumprod) return -1;
    if (px_schedule_alphas_cumprod(d->alphas_cumprod, &p)) {
        px_ddim_free(d);
        return -1;
    }
    /* torch.tensor(1.0) if set_alpha_to_one else alphas_cumprod[0] */
    d->final_alpha_cumprod = c->set_alpha_to_one ? 1.0f : d->alphas_cumprod[0];
    return 0;
}

void px_ddim_free(px_ddim *d)
{
    if (!d) return;
    free(d->alphas_cumprod);
    free(d->timesteps);
    memset(d, 0, sizeof *d);
}

int px_ddim_set_timesteps(px_ddim *d, int64_t n)
{
    if (n < 1 || n > d->num_train_timesteps)
        return px_fail("DDIMScheduler: num_inference_steps %lld must be in [1, %lld]", (long long)n,
                       (long long)d->num_train_timesteps);
    int64_t *ts = px_malloc((size_t)(n + 1) * sizeof *ts, "timesteps");
    if (!ts) return -1;
    int64_t count = 0;
    if (px_ddim_timesteps(ts, &count, n, d->num_train_timesteps, d->timestep_spacing, d->steps_offset)) {
        free(ts);
        return px_fail_ctx("DDIMScheduler.set_timesteps(%lld)", (long long)n);
    }
    free(d->timesteps);
    d->timesteps = ts;
    d->n_timesteps = count;
    d->num_inference_steps = n;
    return 0;
}

// ---------------------------------------------------------------------------
// dynamic thresholding (DDIMScheduler / DPMSolverMultistepScheduler
// ._threshold_sample): torch.quantile(|x|, ratio, dim=1) with linear
// interpolation, clamp to [1, sample_max_value], clamp(x, -s, s) / s.

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* torch's lerp(self, end, weight) as its AVX2 kernel computes it (lerp_vec:
 * one fused multiply-add; verified against torch.quantile, doc/schedulers.md) */
static float lerp_f(float a, float b, float w)
{
    float d = b - a;
    return fabsf(w) < 0.5f ? fmaf(w, d, a) : fmaf(w - 1.0f, d, b);
}

int px_sched_threshold(float *x, px_sched_dims dims, double ratio, double max_value)
{
    int64_t n = dims.channels * dims.spatial;
    if (n <= 0) return 0;
    float *tmp = px_malloc((size_t)n * sizeof *tmp, "threshold");
    if (!tmp) return -1;
    for (int64_t b = 0; b < dims.batch; b++) {
        float *row = x + b * n;
        int has_nan = 0;
        for (int64_t i = 0; i < n; i++) {
            tmp[i] = fabsf(row[i]);
            if (isnan(tmp[i])) has_nan = 1;
        }
        float s;
        if (has_nan) {
            s = NAN; /* torch.quantile: rank = last index, the sorted NaN */
        } else {
            qsort(tmp, (size_t)n, sizeof *tmp, cmp_float);
            float rank = (float)ratio * (float)(n - 1); /* q tensor (float32) * last_index */
            int64_t below = (int64_t)rank;
            int64_t above = (int64_t)ceilf(rank);
            float w = rank - (float)below;
            s = lerp_f(tmp[below], tmp[above], w);
        }
        /* torch.clamp(s, min=1, max=sample_max_value) */
        if (!isnan(s)) {
            float lo = 1.0f, hi = (float)max_value;
            s = s < lo ? lo : s;
            s = s > hi ? hi : s;
        }
        /* torch.clamp(x, -s, s) / s */
        float ns = -s;
        for (int64_t i = 0; i < n; i++) {
            float v = row[i];
            if (isnan(s)) v = NAN;
            else if (!isnan(v)) { v = v < ns ? ns : v; v = v > s ? s : v; }
            row[i] = v / s;
        }
    }
    free(tmp);
    return 0;
}

// ---------------------------------------------------------------------------
// step

/* alphas_cumprod[t] with Python indexing (t in [-N, N)) */
static int alpha_at(const px_ddim *d, int64_t t, float *out)
{
    int64_t N = d->num_train_timesteps;
    if (t < -N || t >= N) return px_fail("DDIMScheduler.step: timestep %lld is outside [0, %lld)", (long long)t, (long long)N);
    *out = d->alphas_cumprod[t < 0 ? t + N : t];
    return 0;
}

int px_ddim_step(const px_ddim *d, const float *mo, int64_t t, const float *sample, px_sched_dims dims,
                 const px_ddim_step_args *args, float *prev, float *x0_out)
{
    if (!d->timesteps) return px_fail("DDIMScheduler.step: set_timesteps was not called");
    px_ddim_step_args none = { 0 };
    if (!args) args = &none;
    const size_t n = (size_t)(dims.batch * dims.channels * dims.spatial);

    /* prev_timestep = timestep - N // num_inference_steps */
    int64_t prev_t = t - d->num_train_timesteps / d->num_inference_steps;
    float a_t = 0, a_prev = 0;
    if (alpha_at(d, t, &a_t)) return -1;
    if (prev_t >= 0) {
        if (alpha_at(d, prev_t, &a_prev)) return -1;
    } else {
        a_prev = d->final_alpha_cumprod;
    }
    float b_t = 1.0f - a_t;
    float sqrt_a = sqrtf(a_t), sqrt_b = sqrtf(b_t);

    float *x0 = x0_out ? x0_out : px_malloc((n ? n : 1) * sizeof *x0, "pred_original_sample");
    float *eps_buf = NULL;
    if (!x0) return -1;
    const float *eps = mo;

    switch (d->prediction_type) {
    case PX_PRED_EPSILON:
        /* (sample - beta_prod_t ** 0.5 * model_output) / alpha_prod_t ** 0.5 */
        for (size_t i = 0; i < n; i++) x0[i] = (sample[i] - sqrt_b * mo[i]) / sqrt_a;
        break;
    case PX_PRED_SAMPLE:
        /* pred_epsilon = (sample - alpha_prod_t ** 0.5 * pred_original_sample) / beta_prod_t ** 0.5 */
        memcpy(x0, mo, n * sizeof *x0);
        eps_buf = px_malloc((n ? n : 1) * sizeof *eps_buf, "pred_epsilon");
        if (!eps_buf) goto fail;
        for (size_t i = 0; i < n; i++) eps_buf[i] = (sample[i] - sqrt_a * mo[i]) / sqrt_b;
        eps = eps_buf;
        break;
    case PX_PRED_V:
        /* x0 = a**0.5 * sample - b**0.5 * model_output; eps = a**0.5 * model_output + b**0.5 * sample */
        eps_buf = px_malloc((n ? n : 1) * sizeof *eps_buf, "pred_epsilon");
        if (!eps_buf) goto fail;
        for (size_t i = 0; i < n; i++) {
            x0[i] = sqrt_a * sample[i] - sqrt_b * mo[i];
            eps_buf[i] = sqrt_a * mo[i] + sqrt_b * sample[i];
        }
        eps = eps_buf;
        break;
    }

    if (d->thresholding) {
        if (px_sched_threshold(x0, dims, d->dynamic_thresholding_ratio, d->sample_max_value)) goto fail;
    } else if (d->clip_sample) {
        const float lo = -d->clip_sample_range, hi = d->clip_sample_range;
        for (size_t i = 0; i < n; i++) {
            float v = x0[i];
            if (!isnan(v)) { v = v < lo ? lo : v; v = v > hi ? hi : v; }
            x0[i] = v;
        }
    }

    /* _get_variance: (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev) */
    float b_prev = 1.0f - a_prev;
    float variance = (b_prev / b_t) * (1.0f - a_t / a_prev);
    float std_dev_t = (float)args->eta * sqrtf(variance); /* eta * variance ** 0.5 */

    if (args->use_clipped_model_output) {
        /* pred_epsilon = (sample - alpha_prod_t ** 0.5 * pred_original_sample) / beta_prod_t ** 0.5 */
        if (!eps_buf) {
            eps_buf = px_malloc((n ? n : 1) * sizeof *eps_buf, "pred_epsilon");
            if (!eps_buf) goto fail;
        }
        for (size_t i = 0; i < n; i++) eps_buf[i] = (sample[i] - sqrt_a * x0[i]) / sqrt_b;
        eps = eps_buf;
    }

    /* (1 - alpha_prod_t_prev - std_dev_t**2) ** 0.5 * pred_epsilon, then
     * alpha_prod_t_prev ** 0.5 * pred_original_sample + pred_sample_direction */
    float c_dir = sqrtf((1.0f - a_prev) - std_dev_t * std_dev_t);
    float sqrt_a_prev = sqrtf(a_prev);
    for (size_t i = 0; i < n; i++) prev[i] = sqrt_a_prev * x0[i] + c_dir * eps[i];

    if (args->eta > 0) {
        const float *noise = args->variance_noise;
        float *drawn = NULL;
        if (noise && args->generators) {
            px_fail("DDIMScheduler.step: pass either generators or variance_noise, not both");
            goto fail;
        }
        if (!noise) {
            if (!args->generators || !args->n_generators) {
                px_fail("DDIMScheduler.step: eta > 0 needs a generator (or variance_noise)");
                goto fail;
            }
            drawn = args->variance_noise_out;
            if (!drawn) drawn = px_malloc((n ? n : 1) * sizeof *drawn, "variance_noise");
            if (!drawn) goto fail;
            int64_t shape[3] = { dims.batch, dims.channels, dims.spatial };
            if (px_randn_tensor(args->generators, args->n_generators, drawn, 3, shape)) {
                if (drawn != args->variance_noise_out) free(drawn);
                goto fail;
            }
            noise = drawn;
        } else if (args->variance_noise_out && args->variance_noise_out != noise) {
            memcpy(args->variance_noise_out, noise, n * sizeof *noise);
        }
        /* prev_sample + std_dev_t * variance_noise */
        for (size_t i = 0; i < n; i++) prev[i] = prev[i] + std_dev_t * noise[i];
        if (drawn && drawn != args->variance_noise_out) free(drawn);
    }

    free(eps_buf);
    if (x0 != x0_out) free(x0);
    return 0;

fail:
    free(eps_buf);
    if (x0 != x0_out) free(x0);
    return -1;
}
