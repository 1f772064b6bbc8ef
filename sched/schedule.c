/* Noise schedules and timestep spacings of diffusers v0.30.3 DDIMScheduler /
 * DPMSolverMultistepScheduler (see schedule.h). float32 where torch computes
 * in float32, float64 where Python / numpy do. Built with -ffp-contract=off. */
#include "sched/schedule.h"
#include "sched/tmath.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>

#define MAX_TRAIN_TIMESTEPS 1000000

// ---------------------------------------------------------------------------
// betas

/* betas_for_alpha_bar(N, max_beta=0.999, "cosine") in Python floats, then
 * torch.tensor(betas, dtype=torch.float32). */
static double alpha_bar_cosine(double t)
{
    return pow(cos((t + 0.008) / 1.008 * M_PI / 2), 2.0); /* math.cos(...) ** 2 */
}

/* rescale_zero_terminal_snr(betas), all in float32 torch ops. */
static int rescale_zero_terminal_snr(float *betas, int64_t n)
{
    float *s = px_malloc((size_t)n * sizeof *s, "rescale_zero_terminal_snr");
    if (!s) return -1;
    for (int64_t i = 0; i < n; i++) s[i] = 1.0f - betas[i];        /* alphas = 1.0 - betas */
    px_t_cumprod_f32(s, s, n);                                       /* alphas_cumprod */
    for (int64_t i = 0; i < n; i++) s[i] = sqrtf(s[i]);              /* .sqrt() */
    float s0 = s[0], sT = s[n - 1];
    float scale = s0 / (s0 - sT);
    for (int64_t i = 0; i < n; i++) s[i] = s[i] - sT;                /* -= sqrt_T */
    for (int64_t i = 0; i < n; i++) s[i] = s[i] * scale;             /* *= s0 / (s0 - sT) */
    for (int64_t i = 0; i < n; i++) s[i] = s[i] * s[i];              /* alphas_bar = ** 2 */
    /* alphas = cat([alphas_bar[0:1], alphas_bar[1:] / alphas_bar[:-1]]); betas = 1 - alphas */
    betas[0] = 1.0f - s[0];
    for (int64_t i = 1; i < n; i++) betas[i] = 1.0f - s[i] / s[i - 1];
    free(s);
    return 0;
}

// ---------------------------------------------------------------------------
// validation: a hostile scheduler config must not reach the math with betas
// outside (0, 1) (NaN alphas, sigmas and timesteps cast from NaN follow)

int px_schedule_check_open01(const char *field, int64_t index, double v)
{
    if (isfinite(v) && v > 0 && v < 1) return 0;
    if (index < 0) return px_fail("%s = %g is not in (0, 1)", field, v);
    return px_fail("%s[%lld] = %g is not in (0, 1)", field, (long long)index, v);
}

/* The betas' inputs: trained_betas, or beta_start / beta_end for the schedules
 * that use them, each finite and in (0, 1). */
static int check_beta_params(const px_schedule_params *p)
{
    if (p->trained_betas) {
        for (size_t i = 0; i < p->n_trained_betas; i++)
            if (px_schedule_check_open01("trained_betas", (int64_t)i, p->trained_betas[i])) return -1;
        return 0;
    }
    if (p->beta_schedule != PX_BETA_LINEAR && p->beta_schedule != PX_BETA_SCALED_LINEAR) return 0;
    if (px_schedule_check_open01("beta_start", -1, p->beta_start)) return -1;
    return px_schedule_check_open01("beta_end", -1, p->beta_end);
}

/* The derived tables: float32 rounding can still push betas to 0 (1 - beta
 * == 1) or alphas_cumprod to 0 / a denormal (sigma = inf). The zero-SNR
 * rescaling sets the last alphas_cumprod to 0 on purpose. */
static int check_alphas_cumprod(const float *ac, const px_schedule_params *p)
{
    int64_t n = p->num_train_timesteps;
    for (int64_t i = 0; i < n; i++) {
        float a = ac[i];
        if (p->rescale_betas_zero_snr && i == n - 1 && a == 0.0f) continue;
        if (!(a > 0.0f && a < 1.0f))
            return px_fail("alphas_cumprod[%lld] = %g is not in (0, 1) (betas too close to 0 or 1 "
                           "for float32, or rescale_betas_zero_snr with one timestep)", (long long)i, (double)a);
        float sigma = sqrtf((1.0f - a) / a); /* DPM-Solver's sigmas */
        if (!isfinite(sigma))
            return px_fail("sigma[%lld] = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 is %g "
                           "(alphas_cumprod %g)", (long long)i, (double)sigma, (double)a);
    }
    return 0;
}

int px_schedule_validate(const px_schedule_params *p)
{
    int64_t n = p->num_train_timesteps;
    if (n < 1 || n > MAX_TRAIN_TIMESTEPS)
        return px_fail("num_train_timesteps %lld is not in [1, %d]", (long long)n, MAX_TRAIN_TIMESTEPS);
    float *ac = px_malloc((size_t)n * sizeof *ac, "alphas_cumprod");
    if (!ac) return -1;
    int rc = px_schedule_alphas_cumprod(ac, p);
    free(ac);
    return rc;
}

int px_schedule_betas(float *betas, const px_schedule_params *p)
{
    int64_t n = p->num_train_timesteps;
    if (n < 1 || n > MAX_TRAIN_TIMESTEPS)
        return px_fail("num_train_timesteps %lld is not in [1, %d]", (long long)n, MAX_TRAIN_TIMESTEPS);
    if (p->trained_betas && p->n_trained_betas != (size_t)n)
        return px_fail("trained_betas has %zu entries but num_train_timesteps is %lld",
                       p->n_trained_betas, (long long)n);
    if (check_beta_params(p)) return -1;
    if (p->trained_betas) {
        for (int64_t i = 0; i < n; i++) betas[i] = (float)p->trained_betas[i];
    } else {
        switch (p->beta_schedule) {
        case PX_BETA_LINEAR:
            px_t_linspace_f32(betas, p->beta_start, p->beta_end, n);
            break;
        case PX_BETA_SCALED_LINEAR:
            /* Python floats beta_start**0.5 (pow(x, 0.5)), then float32 linspace, then ** 2 */
            px_t_linspace_f32(betas, pow(p->beta_start, 0.5), pow(p->beta_end, 0.5), n);
            for (int64_t i = 0; i < n; i++) betas[i] = betas[i] * betas[i];
            break;
        case PX_BETA_SQUAREDCOS_CAP_V2:
            for (int64_t i = 0; i < n; i++) {
                double t1 = (double)i / (double)n, t2 = (double)(i + 1) / (double)n;
                double b = 1 - alpha_bar_cosine(t2) / alpha_bar_cosine(t1);
                betas[i] = (float)(b < 0.999 ? b : 0.999); /* min(b, max_beta) */
            }
            break;
        default:
            return px_fail("unknown beta_schedule %d", (int)p->beta_schedule);
        }
    }
    for (int64_t i = 0; i < n; i++) /* float32 rounding of a valid schedule */
        if (px_schedule_check_open01("betas", i, betas[i])) return -1;
    if (p->rescale_betas_zero_snr) return rescale_zero_terminal_snr(betas, n);
    return 0;
}

int px_schedule_alphas_cumprod(float *ac, const px_schedule_params *p)
{
    if (px_schedule_betas(ac, p)) return -1;
    int64_t n = p->num_train_timesteps;
    for (int64_t i = 0; i < n; i++) ac[i] = 1.0f - ac[i]; /* alphas = 1.0 - betas */
    px_t_cumprod_f32(ac, ac, n);
    return check_alphas_cumprod(ac, p);
}

// ---------------------------------------------------------------------------
// timestep spacings

/* np.arange(start, 0, -step).round() [- 1 applied by the caller]; returns the count. */
static int64_t arange_round_desc(int64_t *out, int64_t cap, double start, double step)
{
    int64_t len = px_np_arange_len(start, 0.0, -step);
    if (len < 0 || len > cap) return -1;
    double *tmp = px_malloc((size_t)(len ? len : 1) * sizeof *tmp, "timesteps");
    if (!tmp) return -1;
    px_np_arange(tmp, start, 0.0, -step);
    for (int64_t i = 0; i < len; i++) out[i] = (int64_t)px_np_round(tmp[i]);
    free(tmp);
    return len;
}

int px_ddim_timesteps(int64_t *out, int64_t *count, int64_t n, int64_t N,
                      px_timestep_spacing spacing, int64_t steps_offset)
{
    if (n < 1 || n > N)
        return px_fail("num_inference_steps %lld must be in [1, num_train_timesteps = %lld]",
                       (long long)n, (long long)N);
    switch (spacing) {
    case PX_SPACING_LINSPACE: {
        double *tmp = px_malloc((size_t)n * sizeof *tmp, "timesteps");
        if (!tmp) return -1;
        px_np_linspace(tmp, 0.0, (double)(N - 1), n);
        for (int64_t i = 0; i < n; i++) out[i] = (int64_t)px_np_round(tmp[n - 1 - i]);
        free(tmp);
        *count = n;
        return 0;
    }
    case PX_SPACING_LEADING: {
        int64_t ratio = N / n;
        for (int64_t i = 0; i < n; i++) out[i] = (n - 1 - i) * ratio + steps_offset;
        *count = n;
        return 0;
    }
    case PX_SPACING_TRAILING: {
        /* np.round(np.arange(N, 0, -N / n)).astype(int64) - 1. numpy's arange
         * has ceil(N / (N/n)) entries, which is n + 1 for some n (61 of 1000):
         * then the last timestep is round(-1e-13) - 1 = -1, which diffusers
         * indexes Python-style (alphas_cumprod[-1]). Mirrored. */
        int64_t len = arange_round_desc(out, n + 1, (double)N, (double)N / (double)n);
        if (len < 1) return px_fail("trailing spacing gives no timesteps");
        for (int64_t i = 0; i < len; i++) out[i] -= 1;
        *count = len;
        return 0;
    }
    }
    return px_fail("unknown timestep_spacing %d", (int)spacing);
}

int px_dpm_timesteps(int64_t *out, int64_t *count, int64_t n, int64_t N, int64_t last,
                     px_timestep_spacing spacing, int64_t steps_offset)
{
    if (n < 1 || n > MAX_TRAIN_TIMESTEPS)
        return px_fail("num_inference_steps %lld must be in [1, %d]", (long long)n, MAX_TRAIN_TIMESTEPS);
    switch (spacing) {
    case PX_SPACING_LINSPACE: {
        double *tmp = px_malloc((size_t)(n + 1) * sizeof *tmp, "timesteps");
        if (!tmp) return -1;
        px_np_linspace(tmp, 0.0, (double)(last - 1), n + 1);
        /* .round()[::-1][:-1]: drop the 0 at the start */
        for (int64_t i = 0; i < n; i++) out[i] = (int64_t)px_np_round(tmp[n - i]);
        free(tmp);
        *count = n;
        return 0;
    }
    case PX_SPACING_LEADING: {
        int64_t ratio = last / (n + 1);
        for (int64_t i = 0; i < n; i++) out[i] = (n - i) * ratio + steps_offset;
        *count = n;
        return 0;
    }
    case PX_SPACING_TRAILING: {
        int64_t len = arange_round_desc(out, n + 1, (double)last, (double)N / (double)n);
        if (len < 1) return px_fail("trailing spacing gives no timesteps (last timestep %lld)", (long long)last);
        for (int64_t i = 0; i < len; i++) out[i] -= 1;
        *count = len;
        return 0;
    }
    }
    return px_fail("unknown timestep_spacing %d", (int)spacing);
}
