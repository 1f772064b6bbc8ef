/* SASolverScheduler (diffusers v0.30.3 schedulers/scheduling_sasolver.py).
 *
 * Every coefficient is a chain of float32 0-dim tensor ops upstream, with
 * Python ints (tau, 1 + tau**2, its powers) as float32 operands; torch.exp /
 * torch.log are SLEEF's (px_t_expf / px_t_logf); x**2 is x*x and x**3 is
 * (x*x)*x (torch's pow specialisations); 1 / x is a correctly rounded
 * division. Each is written in the upstream evaluation order, then one
 * rounding per elementwise op. Built with -ffp-contract=off. */
#include "sched/sasolver.h"
#include "sched/tmath.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int px_sa_init(px_sa *s, const px_sched_config *c)
{
    memset(s, 0, sizeof *s);
    s->step_index = -1;
    if (c->kind != PX_SCHED_SA) return px_fail("px_sa_init: config is not a SASolverScheduler config");
    if (px_sched_config_check_lcm_sa(c)) return -1;
    if (c->thresholding && c->sa_algorithm == PX_SA_NOISE_PREDICTION)
        /* convert_model_output indexes self.alpha_t[None] there (its timestep
         * argument is gone): a (1, N) tensor that does not broadcast */
        return px_fail("SASolverScheduler: thresholding with algorithm_type noise_prediction fails in diffusers "
                       "0.30.3 (not supported)");
    if (px_sched_config_copy(&s->config, c)) return -1;

    /* The schedule is DPMSolverMultistepScheduler's: same betas, alphas_cumprod,
     * train sigmas ((1 - ac) / ac) ** 0.5, lambda_t for lambda_min_clipped,
     * spacings and Karras conversion; sigma_min as final sigma is SA's
     * sigma_last. */
    px_sched_config d;
    px_sched_config_defaults(&d, PX_SCHED_DPM);
    d.num_train_timesteps = c->num_train_timesteps;
    d.beta_start = c->beta_start;
    d.beta_end = c->beta_end;
    d.beta_schedule = c->beta_schedule;
    d.trained_betas = c->trained_betas; /* borrowed: px_dpm_init copies */
    d.n_trained_betas = c->n_trained_betas;
    d.timestep_spacing = c->timestep_spacing;
    d.steps_offset = c->steps_offset;
    d.use_karras_sigmas = c->use_karras_sigmas;
    d.lambda_min_clipped = c->lambda_min_clipped;
    d.final_sigmas_type = PX_FINAL_SIGMA_MIN;
    if (px_dpm_init(&s->tables, &d)) {
        px_sched_config_free(&s->config);
        return px_fail_ctx("SASolverScheduler");
    }
    s->history = c->predictor_order > c->corrector_order - 1 ? c->predictor_order : c->corrector_order - 1;
    return 0;
}

static void free_state(px_sa *s)
{
    for (int k = 0; k < 4; k++) {
        free(s->model_outputs[k]);
        s->model_outputs[k] = NULL;
    }
    free(s->last_sample);
    free(s->last_noise);
    free(s->scratch);
    s->last_sample = s->last_noise = s->scratch = NULL;
    s->state_numel = 0;
}

void px_sa_free(px_sa *s)
{
    if (!s) return;
    free_state(s);
    px_dpm_free(&s->tables);
    px_sched_config_free(&s->config);
    memset(s, 0, sizeof *s);
    s->step_index = -1;
}

int px_sa_set_timesteps(px_sa *s, int64_t n)
{
    if (n < 1) return px_fail("SASolverScheduler: num_inference_steps %lld must be >= 1", (long long)n);
    if (px_dpm_set_timesteps(&s->tables, n, NULL, 0)) return px_fail_ctx("SASolverScheduler");
    const int64_t count = s->tables.n_timesteps;
    if (s->config.use_karras_sigmas) {
        /* count == n (_convert_to_karras(.., num_inference_steps), whatever the
         * spacing); sigmas = concatenate([sigmas, sigmas[-1:]]): the smallest
         * Karras sigma repeated */
        s->tables.sigmas[count] = s->tables.sigmas[count - 1];
    }
    /* else: np.interp at the timesteps, then sigma_last = ((1 - ac[0]) / ac[0]) ** 0.5 */
    s->timesteps = s->tables.timesteps;
    s->sigmas = s->tables.sigmas;
    s->n_timesteps = count;
    s->have_last = 0;
    s->lower_order_nums = 0;
    s->step_index = -1;
    return 0;
}

int px_sa_tau(int64_t t)
{
    return t >= 200 && t <= 800 ? 1 : 0;
}

// ---------------------------------------------------------------------------
// scalars

/* _sigma_to_alpha_sigma_t is DPMSolverMultistepScheduler's: px_dpm_alpha_sigma_t */

/* torch.log(alpha) - torch.log(sigma) of sigmas[i] */
static float lambda_at(const px_sa *s, int64_t i)
{
    float a, sg;
    px_dpm_alpha_sigma_t(s->sigmas[i], &a, &sg);
    return px_dpm_lambda(a, sg);
}

/* get_coefficients_exponential_positive(order, s, e, tau): the integral of
 * exp(x (1 + tau^2)) x^order over [s, e]; k = 1 + tau**2 (a Python int). */
static float expo_positive(int order, float s, float e, int tau)
{
    const float k = (float)(1 + tau * tau);
    const float ec = k * e, sc = k * s;           /* interval_{end,start}_cov */
    const float E = px_t_expf(ec);
    const float F = px_t_expf(-(ec - sc));        /* exp(-(end_cov - start_cov)) */
    switch (order) {
    case 0: return (E * (1.0f - F)) / k;
    case 1: return (E * ((ec - 1.0f) - (sc - 1.0f) * F)) / (k * k);
    case 2: {
        float pe = ((ec * ec) - 2.0f * ec) + 2.0f; /* end_cov**2 - 2 * end_cov + 2 */
        float ps = ((sc * sc) - 2.0f * sc) + 2.0f;
        return (E * (pe - ps * F)) / (k * k * k);
    }
    default: {
        /* end_cov**3 - 3 * end_cov**2 + 6 * end_cov - 6 */
        float pe = ((((ec * ec) * ec) - 3.0f * (ec * ec)) + 6.0f * ec) - 6.0f;
        float ps = ((((sc * sc) * sc) - 3.0f * (sc * sc)) + 6.0f * sc) - 6.0f;
        return (E * (pe - ps * F)) / (k * k * k * k);
    }
    }
}

/* get_coefficients_exponential_negative(order, s, e): the integral of
 * exp(-x) x^order over [s, e]. */
static float expo_negative(int order, float s, float e)
{
    const float E = px_t_expf(-e), G = px_t_expf(e - s);
    switch (order) {
    case 0: return E * (G - 1.0f);
    case 1: return E * ((s + 1.0f) * G - (e + 1.0f));
    case 2: return E * ((((s * s) + 2.0f * s) + 2.0f) * G - (((e * e) + 2.0f * e) + 2.0f));
    default:
        return E * (((((s * s) * s + 3.0f * (s * s)) + 6.0f * s) + 6.0f) * G -
                     ((((e * e) * e + 3.0f * (e * e)) + 6.0f * e) + 6.0f));
    }
}

/* lagrange_polynomial_coefficient(order - 1, lambdas)[i][j]: the coefficients
 * of the Lagrange basis polynomial of lambdas[i], highest power first. With
 * the other points (a, b) in index order: d = (li - la)(li - lb), row =
 * [1/d, (-la - lb)/d, la lb/d]; for two points [1/d, -la/d]; [[1]] for one.
 * (diffusers also has four points, for orders we do not accept.) */
static void lagrange_row(int order, const float *l, int i, float *row)
{
    float o[2];
    int m = 0;
    for (int j = 0; j < order; j++)
        if (j != i) o[m++] = l[j];
    if (order == 1) {
        row[0] = 1.0f; /* the Python int 1 */
        return;
    }
    float d = l[i] - o[0];
    for (int j = 1; j < m; j++) d = d * (l[i] - o[j]);
    row[0] = 1.0f / d;
    if (order == 2) {
        row[1] = -o[0] / d;
    } else { /* 3 */
        row[1] = (-o[0] - o[1]) / d;
        row[2] = (o[0] * o[1]) / d;
    }
}

/* get_coefficients_fn(order, interval_start, interval_end, lambda_list, tau) */
static void coefficients(const px_sa *s, int order, float start, float end, const float *lambdas, int tau,
                         float *coef)
{
    const int x0 = s->config.sa_algorithm == PX_SA_DATA_PREDICTION;
    for (int i = 0; i < order; i++) {
        float row[3];
        lagrange_row(order, lambdas, i, row);
        float c = 0.0f; /* coefficient = 0; coefficient += lagrange[i][j] * integral(order - 1 - j) */
        for (int j = 0; j < order; j++) {
            float integral = x0 ? expo_positive(order - 1 - j, start, end, tau)
                                : expo_negative(order - 1 - j, start, end);
            c = c + row[j] * integral;
        }
        coef[i] = c;
    }
}

// ---------------------------------------------------------------------------
// the shared update of predictor and corrector

/* x_t = exp(-tau^2 h) (sigma_t / sigma_s0) x + sum_i (1 + tau^2) sigma_t exp(-tau^2 lambda_t) coef_i m_i
 *       + sigma_t sqrt(1 - exp(-2 tau^2 h)) noise                              (data_prediction)
 * x_t = (alpha_t / alpha_s0) x + sum_i -(1 + tau^2) alpha_t coef_i m_i
 *       + tau sigma_t sqrt(exp(2h) - 1) noise                                  (noise_prediction)
 * m[i] is model_output_list[-(i + 1)]. */
static void sa_update(const px_sa *s, float sig_t, float sig_s0, float lambda_t, float lambda_s0,
                      const float *coef, int order, const float *const *m, int tau, const float *x,
                      const float *noise, size_t n, float *out)
{
    float alpha_t, sigma_t, alpha_s0, sigma_s0;
    px_dpm_alpha_sigma_t(sig_t, &alpha_t, &sigma_t);
    px_dpm_alpha_sigma_t(sig_s0, &alpha_s0, &sigma_s0);
    const float h = lambda_t - lambda_s0;
    const int k = 1 + tau * tau;
    float g[3], cx, cn;
    if (s->config.sa_algorithm == PX_SA_DATA_PREDICTION) {
        for (int i = 0; i < order; i++)
            g[i] = (((float)k * sigma_t) * px_t_expf((float)(-(tau * tau)) * lambda_t)) * coef[i];
        cn = sigma_t * sqrtf(1.0f - px_t_expf((float)(-2 * tau * tau) * h));
        cx = px_t_expf((float)(-(tau * tau)) * h) * (sigma_t / sigma_s0);
    } else {
        for (int i = 0; i < order; i++) g[i] = ((float)(-k) * alpha_t) * coef[i];
        cn = ((float)tau * sigma_t) * sqrtf(px_t_expf(2.0f * h) - 1.0f);
        cx = alpha_t / alpha_s0;
    }
    for (size_t e = 0; e < n; e++) {
        float gp = 0.0f; /* gradient_part = zeros_like(sample); += ... */
        for (int i = 0; i < order; i++) gp = gp + g[i] * m[i][e];
        out[e] = (cx * x[e] + gp) + cn * noise[e];
    }
}

/* The O(h^3) term order 2 adds with data_prediction (the "UniPC-like"
 * modification): predictor
 *   1.0 * exp(k lambda_t) * (h^2/2 - (h k - 1 + exp(k (-h))) / k^2) / (lambda_s0 - lambda_s1)
 * corrector
 *   1.0 * exp(k lambda_t) * (h/2 - (h k - 1 + exp(k (-h))) / (k^2 h)),
 * added to coef[0] and subtracted from coef[1]. */
static float order2_term(float lambda_t, float h, int tau, int predictor, float lambda_diff)
{
    const float k = (float)(1 + tau * tau);
    float A = 1.0f * px_t_expf(k * lambda_t);
    float inner = ((h * k) - 1.0f) + px_t_expf(k * -h);
    if (predictor) return (A * ((h * h) / 2.0f - inner / (k * k))) / lambda_diff;
    return A * (h / 2.0f - inner / ((k * k) * h));
}

// ---------------------------------------------------------------------------
// step

/* index_for_timestep (DPMSolverMultistepScheduler's): the first match, the
 * second when t occurs more than once, the last index when absent. */
static int64_t index_for_timestep(const px_sa *s, int64_t t)
{
    int64_t first = -1;
    for (int64_t i = 0; i < s->n_timesteps; i++)
        if (s->timesteps[i] == t) {
            if (first >= 0) return i;
            first = i;
        }
    return first < 0 ? s->n_timesteps - 1 : first;
}

/* convert_model_output: x0 (data_prediction) or epsilon (noise_prediction) */
static int convert(const px_sa *s, const float *mo, const float *sample, px_sched_dims dims, float *out)
{
    const px_sched_config *c = &s->config;
    const size_t n = (size_t)(dims.batch * dims.channels * dims.spatial);
    float alpha_t, sigma_t;
    px_dpm_alpha_sigma_t(s->sigmas[s->step_index], &alpha_t, &sigma_t);
    if (c->sa_algorithm == PX_SA_DATA_PREDICTION) {
        switch (c->prediction_type) {
        case PX_PRED_EPSILON: /* (sample - sigma_t * model_output) / alpha_t */
            for (size_t i = 0; i < n; i++) out[i] = (sample[i] - sigma_t * mo[i]) / alpha_t;
            break;
        case PX_PRED_SAMPLE:
            memcpy(out, mo, n * sizeof *out);
            break;
        case PX_PRED_V: /* alpha_t * sample - sigma_t * model_output */
            for (size_t i = 0; i < n; i++) out[i] = alpha_t * sample[i] - sigma_t * mo[i];
            break;
        }
        if (c->thresholding && px_sched_threshold(out, dims, c->dynamic_thresholding_ratio, c->sample_max_value))
            return -1;
        return 0;
    }
    switch (c->prediction_type) {
    case PX_PRED_EPSILON:
        memcpy(out, mo, n * sizeof *out);
        break;
    case PX_PRED_SAMPLE: /* (sample - alpha_t * model_output) / sigma_t */
        for (size_t i = 0; i < n; i++) out[i] = (sample[i] - alpha_t * mo[i]) / sigma_t;
        break;
    case PX_PRED_V: /* alpha_t * model_output + sigma_t * sample */
        for (size_t i = 0; i < n; i++) out[i] = alpha_t * mo[i] + sigma_t * sample[i];
        break;
    }
    return 0; /* thresholding with noise_prediction is refused by px_sa_init */
}

static int size_state(px_sa *s, size_t n)
{
    if (s->state_numel == n) return 0;
    if (s->state_numel && s->have_last)
        return px_fail("SASolverScheduler.step: the sample size changed between steps");
    free_state(s);
    const size_t bytes = (n ? n : 1) * sizeof(float);
    for (int k = 0; k <= s->history; k++)
        if (!(s->model_outputs[k] = px_malloc(bytes, "model_outputs"))) return -1;
    s->last_sample = px_malloc(bytes, "last_sample");
    s->last_noise = px_malloc(bytes, "last_noise");
    s->scratch = px_malloc(bytes, "corrected sample");
    if (!s->last_sample || !s->last_noise || !s->scratch) return -1;
    s->state_numel = n;
    return 0;
}

int px_sa_step(px_sa *s, const float *mo, int64_t mc, int64_t t, const float *sample, px_sched_dims dims,
               const px_sa_step_args *args, float *prev)
{
    const px_sched_config *c = &s->config;
    if (!s->timesteps) return px_fail("SASolverScheduler.step: set_timesteps was not called");
    px_sa_step_args none = { 0 };
    if (!args) args = &none;
    if (mc != dims.channels)
        return px_fail("SASolverScheduler.step: model output has %lld channels, sample has %lld (the noise has "
                       "the model output's shape)", (long long)mc, (long long)dims.channels);
    if (c->learned_variance && c->prediction_type == PX_PRED_EPSILON && dims.channels > 3)
        return px_fail("SASolverScheduler: variance_type learned keeps model_output[:, :3] (diffusers), which "
                       "needs a sample of at most 3 channels (got %lld)", (long long)dims.channels);
    /* checked before the run state changes */
    if (args->noise && args->generators)
        return px_fail("SASolverScheduler.step: pass either generators or noise, not both");
    if (!args->noise && (!args->generators || !args->n_generators))
        return px_fail("SASolverScheduler.step: every step draws noise and needs a generator");
    if (!args->noise && args->n_generators > 1 && args->n_generators < (size_t)dims.batch)
        return px_fail("SASolverScheduler.step: %zu generators for a batch of %lld", args->n_generators,
                       (long long)dims.batch);
    const size_t n = (size_t)(dims.batch * dims.channels * dims.spatial);
    const int64_t T = s->n_timesteps;
    const int L = s->history;

    if (s->step_index < 0) s->step_index = index_for_timestep(s, t);
    if (s->step_index >= T)
        return px_fail("SASolverScheduler.step: called more often than there are timesteps (%lld)", (long long)T);
    if (size_state(s, n)) return -1;
    const int64_t si = s->step_index;
    px_sa_step_info info = { 0 };

    /* model_output_convert, into the spare buffer */
    float *conv = s->model_outputs[L];
    if (convert(s, mo, sample, dims, conv)) return -1;

    /* the corrector: step si-1's update again, from last_sample with
     * last_noise, the previous timestep's tau and the order chosen then,
     * now with the model output at x_t included */
    const float *x = sample;
    info.use_corrector = si > 0 && s->have_last;
    if (info.use_corrector) {
        const int order = s->this_corrector_order;
        const int tau = px_sa_tau(s->timestep_list[L - 1]);
        const float lambda_t = lambda_at(s, si), lambda_s0 = lambda_at(s, si - 1);
        float lambdas[3], coef[3];
        for (int i = 0; i < order; i++) lambdas[i] = lambda_at(s, si - i);
        coefficients(s, order, lambda_s0, lambda_t, lambdas, tau, coef);
        if (c->sa_algorithm == PX_SA_DATA_PREDICTION && order == 2) {
            float d = order2_term(lambda_t, lambda_t - lambda_s0, tau, 0, 0.0f);
            coef[0] = coef[0] + d;
            coef[1] = coef[1] - d;
        }
        /* model_prev_list = model_outputs + [this_model_output]; m[i] = list[-(i + 1)] */
        const float *m[3] = { conv, s->model_outputs[L - 1], L >= 2 ? s->model_outputs[L - 2] : NULL };
        sa_update(s, s->sigmas[si], s->sigmas[si - 1], lambda_t, lambda_s0, coef, order, m, tau, s->last_sample,
                  s->last_noise, n, s->scratch);
        x = s->scratch;
        info.corrector_order = order;
        info.tau_corrector = tau;
    }

    /* model_outputs / timestep_list shift left; the converted output goes last */
    float *recycled = s->model_outputs[0];
    for (int i = 0; i < L - 1; i++) {
        s->model_outputs[i] = s->model_outputs[i + 1];
        s->timestep_list[i] = s->timestep_list[i + 1];
    }
    s->model_outputs[L - 1] = conv;
    s->model_outputs[L] = recycled;
    s->timestep_list[L - 1] = t;

    /* noise = randn_tensor(model_output.shape, generator): every step */
    if (args->noise) {
        memcpy(s->last_noise, args->noise, n * sizeof(float));
    } else {
        int64_t shape[3] = { dims.batch, dims.channels, dims.spatial };
        if (px_randn_tensor(args->generators, args->n_generators, s->last_noise, 3, shape)) return -1;
    }
    if (args->noise_out) memcpy(args->noise_out, s->last_noise, n * sizeof(float));

    /* orders: lower_order_final caps them near the end; warm-up from lower_order_nums */
    int p = c->predictor_order, q = c->corrector_order;
    if (c->lower_order_final) {
        if (p > T - si) p = (int)(T - si);
        if (q > T - si + 1) q = (int)(T - si + 1);
    }
    s->this_predictor_order = p < s->lower_order_nums + 1 ? p : s->lower_order_nums + 1;
    s->this_corrector_order = q < s->lower_order_nums + 2 ? q : s->lower_order_nums + 2;

    /* last_sample = sample (the corrected one) */
    if (x != s->last_sample) memcpy(s->last_sample, x, n * sizeof(float));
    s->have_last = 1;

    /* the predictor (stochastic Adams-Bashforth) from sigmas[si] to sigmas[si + 1] */
    {
        const int order = s->this_predictor_order;
        const int tau = px_sa_tau(t);
        const float lambda_t = lambda_at(s, si + 1), lambda_s0 = lambda_at(s, si);
        float lambdas[3], coef[3];
        for (int i = 0; i < order; i++) lambdas[i] = lambda_at(s, si - i);
        coefficients(s, order, lambda_s0, lambda_t, lambdas, tau, coef);
        if (c->sa_algorithm == PX_SA_DATA_PREDICTION && order == 2) {
            float d = order2_term(lambda_t, lambda_t - lambda_s0, tau, 1, lambda_s0 - lambda_at(s, si - 1));
            coef[0] = coef[0] + d;
            coef[1] = coef[1] - d;
        }
        const float *m[3] = { s->model_outputs[L - 1], L >= 2 ? s->model_outputs[L - 2] : NULL,
                              L >= 3 ? s->model_outputs[L - 3] : NULL };
        sa_update(s, s->sigmas[si + 1], s->sigmas[si], lambda_t, lambda_s0, coef, order, m, tau, s->last_sample,
                  s->last_noise, n, prev);
        info.predictor_order = order;
        info.tau_predictor = tau;
    }

    if (s->lower_order_nums < L) s->lower_order_nums++;
    s->step_index++;
    s->last_step = info;
    return 0;
}
