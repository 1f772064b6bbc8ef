/* DPMSolverMultistepScheduler (diffusers v0.30.3
 * schedulers/scheduling_dpmsolver_multistep.py).
 *
 * Precision mirrors the upstream code expression by expression: the schedule
 * tables and every tensor op in float32 (torch), log/exp of 0-dim tensors
 * through torch's SLEEF kernels (px_t_logf / px_t_expf), set_timesteps'
 * numpy parts in float64. Scalar coefficients are computed first (they are
 * 0-dim tensors upstream), then each elementwise op rounds once. Built with
 * -ffp-contract=off. */
#include "sched/dpmsolver.h"
#include "sched/tmath.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int px_dpm_init(px_dpm *s, const px_sched_config *c)
{
    memset(s, 0, sizeof *s);
    s->step_index = -1;
    if (c->kind != PX_SCHED_DPM) return px_fail("px_dpm_init: config is not a DPMSolverMultistepScheduler config");
    if (c->solver_order < 1 || c->solver_order > 3)
        return px_fail("DPMSolverMultistepScheduler: solver_order %d is not supported", c->solver_order);
    if (px_sched_config_copy(&s->config, c)) return -1;

    const int64_t N = c->num_train_timesteps;
    s->alphas_cumprod = px_malloc((size_t)N * sizeof(float), "alphas_cumprod");
    s->train_sigmas = px_malloc((size_t)N * sizeof(float), "sigmas");
    s->lambda_t = px_malloc((size_t)N * sizeof(float), "lambda_t");
    if (!s->alphas_cumprod || !s->train_sigmas || !s->lambda_t) goto fail;
    px_schedule_params p = { N, c->beta_start, c->beta_end, c->beta_schedule, c->trained_betas,
                             c->n_trained_betas, c->rescale_betas_zero_snr };
    if (px_schedule_alphas_cumprod(s->alphas_cumprod, &p)) goto fail;
    if (c->rescale_betas_zero_snr) s->alphas_cumprod[N - 1] = 0x1p-24f; /* 2**-24 */

    for (int64_t i = 0; i < N; i++) {
        float ac = s->alphas_cumprod[i];
        float alpha_t = sqrtf(ac), sigma_t = sqrtf(1.0f - ac);        /* torch.sqrt(...) */
        s->lambda_t[i] = px_dpm_lambda(alpha_t, sigma_t);             /* torch.log(a) - torch.log(s) */
        s->train_sigmas[i] = sqrtf((1.0f - ac) / ac);                  /* ((1 - ac) / ac) ** 0.5 */
    }
    return 0;

fail:
    px_dpm_free(s);
    return -1;
}

static void reset_state(px_dpm *s)
{
    for (int i = 0; i < 3; i++) s->have_output[i] = 0;
    s->lower_order_nums = 0;
    s->step_index = -1;
}

void px_dpm_free(px_dpm *s)
{
    if (!s) return;
    free(s->alphas_cumprod);
    free(s->train_sigmas);
    free(s->lambda_t);
    free(s->timesteps);
    free(s->sigmas);
    for (int i = 0; i < 3; i++) free(s->model_outputs[i]);
    px_sched_config_free(&s->config);
    memset(s, 0, sizeof *s);
    s->step_index = -1;
}

// ---------------------------------------------------------------------------
// set_timesteps

/* torch.searchsorted(torch.flip(lambda_t, [0]), lambda_min_clipped): the
 * binary search of ATen's cus_lower_bound over the flipped table, compared in
 * double (the Python float threshold becomes a float64 tensor). */
static int64_t clipped_index(const px_dpm *s)
{
    const int64_t N = s->config.num_train_timesteps;
    const double val = s->config.lambda_min_clipped;
    int64_t start = 0, end = N;
    while (start < end) {
        int64_t mid = start + ((end - start) >> 1);
        double mid_val = (double)s->lambda_t[N - 1 - mid];
        if (!(mid_val >= val)) start = mid + 1;
        else end = mid;
    }
    return start;
}

/* _sigma_to_t(sigma, log_sigmas) in numpy float64 (log_sigmas is float32). */
static double sigma_to_t(double sigma, const float *log_sigmas, int64_t N)
{
    double log_sigma = log(sigma > 1e-10 ? sigma : 1e-10); /* np.log(np.maximum(sigma, 1e-10)) */
    /* low_idx = cumsum(dists >= 0).argmax(): the last i with log_sigma >= log_sigmas[i], else 0 */
    int64_t low = 0;
    for (int64_t i = 0; i < N; i++)
        if (log_sigma - (double)log_sigmas[i] >= 0) low = i;
    if (low > N - 2) low = N - 2;
    int64_t high = low + 1;
    float lo = log_sigmas[low], hi = log_sigmas[high];
    double w = ((double)lo - log_sigma) / (double)(lo - hi); /* (low - high) is a float32 op */
    if (w < 0) w = 0; /* np.clip(w, 0, 1) */
    if (w > 1) w = 1;
    return (1 - w) * (double)low + w * (double)high;
}

int px_dpm_set_timesteps(px_dpm *s, int64_t n, const int64_t *custom, size_t n_custom)
{
    const px_sched_config *c = &s->config;
    const int64_t N = c->num_train_timesteps;
    int64_t *ts = NULL;
    float *sig = NULL;
    double *tmp = NULL;
    float *log_sigmas = NULL;
    int64_t count = 0;

    if (custom) {
        if (c->use_karras_sigmas)
            return px_fail("DPMSolverMultistepScheduler: custom timesteps cannot be used with use_karras_sigmas");
        if (n_custom == 0) return px_fail("DPMSolverMultistepScheduler: empty custom timesteps");
        count = (int64_t)n_custom;
        ts = px_malloc(n_custom * sizeof *ts, "timesteps");
        if (!ts) return -1;
        memcpy(ts, custom, n_custom * sizeof *ts);
    } else {
        if (n < 1) return px_fail("DPMSolverMultistepScheduler: num_inference_steps %lld must be >= 1", (long long)n);
        if (c->use_karras_sigmas && N < 2)
            return px_fail("DPMSolverMultistepScheduler: Karras sigmas need num_train_timesteps >= 2");
        int64_t last = N - clipped_index(s);
        ts = px_malloc((size_t)(n + 1) * sizeof *ts, "timesteps");
        if (!ts) return -1;
        if (px_dpm_timesteps(ts, &count, n, N, last, c->timestep_spacing, c->steps_offset)) goto fail;
    }

    /* _convert_to_karras(sigmas, num_inference_steps) gives n sigmas and so n
     * timesteps whatever the spacing gave: 'trailing' gives n + 1 for some n
     * (schedule.h), which only sets the count when Karras sigmas are off */
    if (c->use_karras_sigmas) count = n; /* ts holds n + 1 */
    sig = px_malloc((size_t)(count + 1) * sizeof *sig, "sigmas");
    if (!sig) goto fail;
    if (c->use_karras_sigmas) {
        /* log_sigmas = np.log(sigmas) on the float32 table: numpy's own SIMD
         * float32 log; we round the float64 log (see doc/schedulers.md). */
        log_sigmas = px_malloc((size_t)N * sizeof *log_sigmas, "log_sigmas");
        tmp = px_malloc((size_t)count * sizeof *tmp, "karras");
        if (!log_sigmas || !tmp) goto fail;
        for (int64_t i = 0; i < N; i++) log_sigmas[i] = (float)log((double)s->train_sigmas[i]);
        /* _convert_to_karras(flip(sigmas), n): Python/numpy float64 */
        double sigma_min = c->has_sigma_min ? c->sigma_min : (double)s->train_sigmas[0];
        double sigma_max = c->has_sigma_max ? c->sigma_max : (double)s->train_sigmas[N - 1];
        const double rho = 7.0;
        px_np_linspace(tmp, 0.0, 1.0, count); /* ramp */
        double min_inv_rho = pow(sigma_min, 1 / rho);
        double max_inv_rho = pow(sigma_max, 1 / rho);
        double diff = min_inv_rho - max_inv_rho;
        for (int64_t i = 0; i < count; i++) {
            double ks = pow(max_inv_rho + tmp[i] * diff, rho);
            sig[i] = (float)ks;
            ts[i] = (int64_t)px_np_round(sigma_to_t(ks, log_sigmas, N));
        }
    } else {
        /* np.interp(timesteps, arange(N), sigmas): exact table values at the
         * integer timesteps, the end values outside [0, N-1] */
        for (int64_t i = 0; i < count; i++) {
            int64_t t = ts[i] < 0 ? 0 : ts[i] > N - 1 ? N - 1 : ts[i];
            sig[i] = s->train_sigmas[t];
        }
    }
    /* final sigma: ((1 - ac[0]) / ac[0]) ** 0.5 (float32) or 0 */
    sig[count] = c->final_sigmas_type == PX_FINAL_SIGMA_MIN ? s->train_sigmas[0] : 0.0f;

    free(s->timesteps);
    free(s->sigmas);
    s->timesteps = ts;
    s->sigmas = sig;
    s->n_timesteps = count;
    reset_state(s);
    free(tmp);
    free(log_sigmas);
    return 0;

fail:
    free(ts);
    free(sig);
    free(tmp);
    free(log_sigmas);
    return px_fail_ctx("DPMSolverMultistepScheduler.set_timesteps");
}

// ---------------------------------------------------------------------------
// step

/* _sigma_to_alpha_sigma_t, shared with SASolverScheduler (dpmsolver.h) */
void px_dpm_alpha_sigma_t(float sigma, float *alpha_t, float *sigma_t)
{
    float a = 1.0f / sqrtf(sigma * sigma + 1.0f); /* 1 / ((sigma**2 + 1) ** 0.5) */
    *alpha_t = a;
    *sigma_t = sigma * a;
}

float px_dpm_lambda(float alpha_t, float sigma_t)
{
    return px_t_logf(alpha_t) - px_t_logf(sigma_t); /* torch.log(alpha_t) - torch.log(sigma_t) */
}

/* index_for_timestep: the first match, the second one when t occurs more than
 * once, the last index when it does not occur. */
static int64_t index_for_timestep(const px_dpm *s, int64_t t)
{
    int64_t first = -1, second = -1;
    for (int64_t i = 0; i < s->n_timesteps; i++)
        if (s->timesteps[i] == t) {
            if (first < 0) first = i;
            else if (second < 0) second = i;
        }
    if (first < 0) return s->n_timesteps - 1;
    return second >= 0 ? second : first;
}

/* convert_model_output: x0 (dpmsolver++) or epsilon (dpmsolver) into out. */
static int convert_model_output(const px_dpm *s, const float *mo, int64_t mc, const float *sample,
                                px_sched_dims dims, float *out)
{
    const px_sched_config *c = &s->config;
    const int64_t C = dims.channels, S = dims.spatial;
    const size_t n = (size_t)(dims.batch * C * S);
    float alpha_t, sigma_t;
    px_dpm_alpha_sigma_t(s->sigmas[s->step_index], &alpha_t, &sigma_t);

    /* model_output[:, :3] for a learned variance with epsilon prediction */
    int slice = c->learned_variance && c->prediction_type == PX_PRED_EPSILON;
    if (slice) {
        if (C != 3 || mc < 3)
            return px_fail("DPMSolverMultistepScheduler: variance_type learned keeps model_output[:, :3] "
                           "(diffusers), which needs a 3-channel sample (got %lld) and >= 3 model channels "
                           "(got %lld)", (long long)C, (long long)mc);
    } else if (mc != C) {
        return px_fail("DPMSolverMultistepScheduler: model output has %lld channels, sample has %lld",
                       (long long)mc, (long long)C);
    }
    /* element i = (b, ch, sp) of the (sliced) model output */
#define MO(i) (slice ? mo[((int64_t)(i) / (C * S)) * mc * S + (int64_t)(i) % (C * S)] : mo[i])

    int plus = c->algorithm_type == PX_DPM_DPMSOLVER_PP || c->algorithm_type == PX_DPM_SDE_DPMSOLVER_PP;
    if (plus) {
        switch (c->prediction_type) {
        case PX_PRED_EPSILON: /* (sample - sigma_t * model_output) / alpha_t */
            for (size_t i = 0; i < n; i++) out[i] = (sample[i] - sigma_t * MO(i)) / alpha_t;
            break;
        case PX_PRED_SAMPLE:
            memcpy(out, mo, n * sizeof *out);
            break;
        case PX_PRED_V: /* alpha_t * sample - sigma_t * model_output */
            for (size_t i = 0; i < n; i++) out[i] = alpha_t * sample[i] - sigma_t * mo[i];
            break;
        }
        if (c->thresholding &&
            px_sched_threshold(out, dims, c->dynamic_thresholding_ratio, c->sample_max_value))
            return -1;
        return 0;
    }
    switch (c->prediction_type) {
    case PX_PRED_EPSILON:
        for (size_t i = 0; i < n; i++) out[i] = MO(i);
        break;
    case PX_PRED_SAMPLE: /* (sample - alpha_t * model_output) / sigma_t */
        for (size_t i = 0; i < n; i++) out[i] = (sample[i] - alpha_t * mo[i]) / sigma_t;
        break;
    case PX_PRED_V: /* alpha_t * model_output + sigma_t * sample */
        for (size_t i = 0; i < n; i++) out[i] = alpha_t * mo[i] + sigma_t * sample[i];
        break;
    }
#undef MO
    if (c->thresholding) {
        /* x0 = (sample - sigma_t * eps) / alpha_t; threshold; eps = (sample - alpha_t * x0) / sigma_t */
        float *x0 = px_malloc((n ? n : 1) * sizeof *x0, "x0_pred");
        if (!x0) return -1;
        for (size_t i = 0; i < n; i++) x0[i] = (sample[i] - sigma_t * out[i]) / alpha_t;
        if (px_sched_threshold(x0, dims, c->dynamic_thresholding_ratio, c->sample_max_value)) {
            free(x0);
            return -1;
        }
        for (size_t i = 0; i < n; i++) out[i] = (sample[i] - alpha_t * x0[i]) / sigma_t;
        free(x0);
    }
    return 0;
}

/* dpm_solver_first_order_update */
static void first_order(const px_dpm *s, const float *m, const float *sample, const float *noise, size_t n,
                        float *x)
{
    const int64_t i = s->step_index;
    float alpha_t, sigma_t, alpha_s, sigma_s;
    px_dpm_alpha_sigma_t(s->sigmas[i + 1], &alpha_t, &sigma_t);
    px_dpm_alpha_sigma_t(s->sigmas[i], &alpha_s, &sigma_s);
    float h = px_dpm_lambda(alpha_t, sigma_t) - px_dpm_lambda(alpha_s, sigma_s);

    switch (s->config.algorithm_type) {
    case PX_DPM_DPMSOLVER_PP: { /* (sigma_t / sigma_s) * sample - (alpha_t * (exp(-h) - 1.0)) * model_output */
        float c1 = sigma_t / sigma_s, c2 = alpha_t * (px_t_expf(-h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = c1 * sample[k] - c2 * m[k];
        break;
    }
    case PX_DPM_DPMSOLVER: { /* (alpha_t / alpha_s) * sample - (sigma_t * (exp(h) - 1.0)) * model_output */
        float c1 = alpha_t / alpha_s, c2 = sigma_t * (px_t_expf(h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = c1 * sample[k] - c2 * m[k];
        break;
    }
    case PX_DPM_SDE_DPMSOLVER_PP: {
        /* (sigma_t / sigma_s * exp(-h)) * sample + (alpha_t * (1 - exp(-2.0 * h))) * model_output
         *   + sigma_t * sqrt(1.0 - exp(-2 * h)) * noise */
        float e2 = px_t_expf(-2.0f * h);
        float c1 = (sigma_t / sigma_s) * px_t_expf(-h), c2 = alpha_t * (1.0f - e2);
        float c3 = sigma_t * sqrtf(1.0f - e2);
        for (size_t k = 0; k < n; k++) x[k] = (c1 * sample[k] + c2 * m[k]) + c3 * noise[k];
        break;
    }
    case PX_DPM_SDE_DPMSOLVER: {
        /* (alpha_t / alpha_s) * sample - 2.0 * (sigma_t * (exp(h) - 1.0)) * model_output
         *   + sigma_t * sqrt(exp(2 * h) - 1.0) * noise */
        float c1 = alpha_t / alpha_s, c2 = 2.0f * (sigma_t * (px_t_expf(h) - 1.0f));
        float c3 = sigma_t * sqrtf(px_t_expf(2.0f * h) - 1.0f);
        for (size_t k = 0; k < n; k++) x[k] = (c1 * sample[k] - c2 * m[k]) + c3 * noise[k];
        break;
    }
    }
}

/* multistep_dpm_solver_second_order_update */
static void second_order(const px_dpm *s, const float *m0, const float *m1, const float *sample,
                         const float *noise, size_t n, float *x)
{
    const int64_t i = s->step_index;
    const px_sched_config *c = &s->config;
    float alpha_t, sigma_t, alpha_s0, sigma_s0, alpha_s1, sigma_s1;
    px_dpm_alpha_sigma_t(s->sigmas[i + 1], &alpha_t, &sigma_t);
    px_dpm_alpha_sigma_t(s->sigmas[i], &alpha_s0, &sigma_s0);
    px_dpm_alpha_sigma_t(s->sigmas[i - 1], &alpha_s1, &sigma_s1);
    float lambda_t = px_dpm_lambda(alpha_t, sigma_t);
    float lambda_s0 = px_dpm_lambda(alpha_s0, sigma_s0);
    float lambda_s1 = px_dpm_lambda(alpha_s1, sigma_s1);
    float h = lambda_t - lambda_s0, h_0 = lambda_s0 - lambda_s1;
    float r0 = h_0 / h;
    float cr = 1.0f / r0; /* D1 = (1.0 / r0) * (m0 - m1) */
    int heun = c->solver_type == PX_DPM_HEUN;

    switch (c->algorithm_type) {
    case PX_DPM_DPMSOLVER_PP: {
        float em1 = px_t_expf(-h) - 1.0f;
        float c1 = sigma_t / sigma_s0, c2 = alpha_t * em1;
        if (!heun) { /* ... - 0.5 * (alpha_t * (exp(-h) - 1.0)) * D1 */
            float c3 = 0.5f * c2;
            for (size_t k = 0; k < n; k++) {
                float d1 = cr * (m0[k] - m1[k]);
                x[k] = (c1 * sample[k] - c2 * m0[k]) - c3 * d1;
            }
        } else { /* ... + (alpha_t * ((exp(-h) - 1.0) / h + 1.0)) * D1 */
            float c3 = alpha_t * (em1 / h + 1.0f);
            for (size_t k = 0; k < n; k++) {
                float d1 = cr * (m0[k] - m1[k]);
                x[k] = (c1 * sample[k] - c2 * m0[k]) + c3 * d1;
            }
        }
        break;
    }
    case PX_DPM_DPMSOLVER: {
        float ep1 = px_t_expf(h) - 1.0f;
        float c1 = alpha_t / alpha_s0, c2 = sigma_t * ep1;
        /* midpoint: 0.5 * (sigma_t * (exp(h) - 1.0)); heun: sigma_t * ((exp(h) - 1.0) / h - 1.0) */
        float c3 = heun ? sigma_t * (ep1 / h - 1.0f) : 0.5f * c2;
        for (size_t k = 0; k < n; k++) {
            float d1 = cr * (m0[k] - m1[k]);
            x[k] = (c1 * sample[k] - c2 * m0[k]) - c3 * d1;
        }
        break;
    }
    case PX_DPM_SDE_DPMSOLVER_PP: {
        float e2 = px_t_expf(-2.0f * h);
        float c1 = (sigma_t / sigma_s0) * px_t_expf(-h), c2 = alpha_t * (1.0f - e2);
        /* midpoint: 0.5 * (alpha_t * (1 - exp(-2h))); heun: alpha_t * ((1 - exp(-2h)) / (-2h) + 1) */
        float c3 = heun ? alpha_t * ((1.0f - e2) / (-2.0f * h) + 1.0f) : 0.5f * c2;
        float c4 = sigma_t * sqrtf(1.0f - e2);
        for (size_t k = 0; k < n; k++) {
            float d1 = cr * (m0[k] - m1[k]);
            x[k] = ((c1 * sample[k] + c2 * m0[k]) + c3 * d1) + c4 * noise[k];
        }
        break;
    }
    case PX_DPM_SDE_DPMSOLVER: {
        float ep1 = px_t_expf(h) - 1.0f;
        float c1 = alpha_t / alpha_s0, c2 = 2.0f * (sigma_t * ep1);
        /* midpoint: sigma_t * (exp(h) - 1); heun: 2.0 * (sigma_t * ((exp(h) - 1) / h - 1)) */
        float c3 = heun ? 2.0f * (sigma_t * (ep1 / h - 1.0f)) : sigma_t * ep1;
        float c4 = sigma_t * sqrtf(px_t_expf(2.0f * h) - 1.0f);
        for (size_t k = 0; k < n; k++) {
            float d1 = cr * (m0[k] - m1[k]);
            x[k] = ((c1 * sample[k] - c2 * m0[k]) - c3 * d1) + c4 * noise[k];
        }
        break;
    }
    }
}

/* multistep_dpm_solver_third_order_update (dpmsolver++ / dpmsolver only) */
static void third_order(const px_dpm *s, const float *m0, const float *m1, const float *m2,
                        const float *sample, size_t n, float *x)
{
    const int64_t i = s->step_index;
    float alpha_t, sigma_t, alpha_s0, sigma_s0, alpha_s1, sigma_s1, alpha_s2, sigma_s2;
    px_dpm_alpha_sigma_t(s->sigmas[i + 1], &alpha_t, &sigma_t);
    px_dpm_alpha_sigma_t(s->sigmas[i], &alpha_s0, &sigma_s0);
    px_dpm_alpha_sigma_t(s->sigmas[i - 1], &alpha_s1, &sigma_s1);
    px_dpm_alpha_sigma_t(s->sigmas[i - 2], &alpha_s2, &sigma_s2);
    float lambda_t = px_dpm_lambda(alpha_t, sigma_t);
    float lambda_s0 = px_dpm_lambda(alpha_s0, sigma_s0);
    float lambda_s1 = px_dpm_lambda(alpha_s1, sigma_s1);
    float lambda_s2 = px_dpm_lambda(alpha_s2, sigma_s2);
    float h = lambda_t - lambda_s0, h_0 = lambda_s0 - lambda_s1, h_1 = lambda_s1 - lambda_s2;
    float r0 = h_0 / h, r1 = h_1 / h;
    float cr0 = 1.0f / r0, cr1 = 1.0f / r1;          /* D1_0, D1_1 */
    float cd1 = r0 / (r0 + r1), cd2 = 1.0f / (r0 + r1); /* D1, D2 */
    float hh = h * h;                                  /* h**2 */
    float c1, c2, c3, c4;
    int plus = s->config.algorithm_type == PX_DPM_DPMSOLVER_PP;
    if (plus) {
        float em1 = px_t_expf(-h) - 1.0f;
        c1 = sigma_t / sigma_s0;
        c2 = alpha_t * em1;                              /* (alpha_t * (exp(-h) - 1.0)) * D0 */
        c3 = alpha_t * (em1 / h + 1.0f);                 /* (alpha_t * ((exp(-h) - 1.0) / h + 1.0)) * D1 */
        c4 = alpha_t * ((em1 + h) / hh - 0.5f);          /* (alpha_t * ((exp(-h) - 1.0 + h) / h**2 - 0.5)) * D2 */
    } else {
        float ep1 = px_t_expf(h) - 1.0f;
        c1 = alpha_t / alpha_s0;
        c2 = sigma_t * ep1;
        c3 = sigma_t * (ep1 / h - 1.0f);
        c4 = sigma_t * ((ep1 - h) / hh - 0.5f);
    }
    for (size_t k = 0; k < n; k++) {
        float d1_0 = cr0 * (m0[k] - m1[k]);
        float d1_1 = cr1 * (m1[k] - m2[k]);
        float dd = d1_0 - d1_1;
        float d1 = d1_0 + cd1 * dd;
        float d2 = cd2 * dd;
        if (plus) x[k] = ((c1 * sample[k] - c2 * m0[k]) + c3 * d1) - c4 * d2;
        else x[k] = ((c1 * sample[k] - c2 * m0[k]) - c3 * d1) - c4 * d2;
    }
}

int px_dpm_step(px_dpm *s, const float *mo, int64_t mc, int64_t t, const float *sample, px_sched_dims dims,
                const px_dpm_step_args *args, float *prev)
{
    const px_sched_config *c = &s->config;
    if (!s->timesteps) return px_fail("DPMSolverMultistepScheduler.step: set_timesteps was not called");
    px_dpm_step_args none = { 0 };
    if (!args) args = &none;
    const size_t n = (size_t)(dims.batch * dims.channels * dims.spatial);
    const int order = c->solver_order;
    const int64_t T = s->n_timesteps;

    if (s->step_index < 0) s->step_index = index_for_timestep(s, t);
    if (s->step_index >= T)
        return px_fail("DPMSolverMultistepScheduler.step: called more often than there are timesteps (%lld)",
                       (long long)T);

    if (s->state_numel != n) {
        if (s->state_numel && s->lower_order_nums)
            return px_fail("DPMSolverMultistepScheduler.step: the sample size changed between steps");
        for (int k = 0; k < 3; k++) {
            free(s->model_outputs[k]);
            s->model_outputs[k] = NULL;
        }
        for (int k = 0; k < order; k++) {
            s->model_outputs[k] = px_malloc((n ? n : 1) * sizeof(float), "model_outputs");
            if (!s->model_outputs[k]) return -1;
        }
        s->state_numel = n;
    }

    int lower_order_final = s->step_index == T - 1 &&
                            (c->euler_at_final || (c->lower_order_final && T < 15) ||
                             c->final_sigmas_type == PX_FINAL_SIGMA_ZERO);
    int lower_order_second = s->step_index == T - 2 && c->lower_order_final && T < 15;

    /* model_outputs shift left by one; the converted output goes last */
    float *recycled = s->model_outputs[0];
    for (int k = 0; k < order - 1; k++) {
        s->model_outputs[k] = s->model_outputs[k + 1];
        s->have_output[k] = s->have_output[k + 1];
    }
    s->model_outputs[order - 1] = recycled;
    s->have_output[order - 1] = 0;
    if (convert_model_output(s, mo, mc, sample, dims, recycled)) return -1;
    s->have_output[order - 1] = 1;

    const float *noise = NULL;
    float *drawn = NULL;
    if (c->algorithm_type == PX_DPM_SDE_DPMSOLVER_PP || c->algorithm_type == PX_DPM_SDE_DPMSOLVER) {
        if (args->variance_noise) {
            noise = args->variance_noise;
        } else {
            if (!args->generators || !args->n_generators)
                return px_fail("DPMSolverMultistepScheduler.step: %s needs a generator (or variance_noise)",
                               c->algorithm_type == PX_DPM_SDE_DPMSOLVER_PP ? "sde-dpmsolver++" : "sde-dpmsolver");
            drawn = px_malloc((n ? n : 1) * sizeof *drawn, "noise");
            if (!drawn) return -1;
            int64_t shape[3] = { dims.batch, dims.channels, dims.spatial };
            if (px_randn_tensor(args->generators, args->n_generators, drawn, 3, shape)) {
                free(drawn);
                return -1;
            }
            noise = drawn;
        }
    }

    float *const *m = s->model_outputs;
    if (order == 1 || s->lower_order_nums < 1 || lower_order_final)
        first_order(s, m[order - 1], sample, noise, n, prev);
    else if (order == 2 || s->lower_order_nums < 2 || lower_order_second)
        second_order(s, m[order - 1], m[order - 2], sample, noise, n, prev);
    else
        third_order(s, m[2], m[1], m[0], sample, n, prev);
    free(drawn);

    if (s->lower_order_nums < order) s->lower_order_nums++;
    s->step_index++;
    return 0;
}
