/* torch / numpy numerics the schedulers depend on (see tmath.h).
 *
 * Compiled with -ffp-contract=off (sched/local.mk): a fused multiply-add
 * happens exactly where fmaf() is written, as in the upstream machine code. */
#include "sched/tmath.h"

#include <math.h>
#include <string.h>

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

// ---------------------------------------------------------------------------
// SLEEF 3.5 single precision, as torch's Vectorized<float>::log()/exp() call
// it on an AVX2+FMA CPU (Sleef_logf8_u10 -> xlogf_u1, Sleef_expf8_u10 ->
// xexpf, with vmla = fma). Checked against libsleef 3.5.1 for every
// non-negative float and a dense sample of negative ones (doc/schedulers.md).

/* a double-float: value x + y with |y| <= ulp(x)/2 */
typedef struct { float x, y; } df32;

static inline df32 df_add2_ff(float x, float y) /* dfadd2_vf2_vf_vf */
{
    float s = x + y, v = s - x;
    df32 r = { s, (x - (s - v)) + (y - v) };
    return r;
}

static inline df32 df_div(df32 n, df32 d) /* dfdiv_vf2_vf2_vf2, FMA variant */
{
    float t = 1.0f / d.x;
    float s = n.x * t;
    float u = fmaf(t, n.x, -s);
    float v = fmaf(-d.y, t, fmaf(-d.x, t, 1.0f));
    df32 r = { s, fmaf(s, v, fmaf(n.y, t, u)) };
    return r;
}

static inline df32 df_mul_f(df32 x, float y) /* dfmul_vf2_vf2_vf, FMA variant */
{
    float s = x.x * y;
    df32 r = { s, fmaf(x.y, y, fmaf(x.x, y, -s)) };
    return r;
}

static inline df32 df_scale(df32 d, float s) /* dfscale_vf2_vf2_vf */
{
    df32 r = { d.x * s, d.y * s };
    return r;
}

static inline df32 df_add_dd(df32 x, df32 y) /* dfadd_vf2_vf2_vf2 (|x| >= |y|) */
{
    float s = x.x + y.x;
    df32 r = { s, (((x.x - s) + y.x) + x.y) + y.y };
    return r;
}

static inline df32 df_add_df(df32 x, float y) /* dfadd_vf2_vf2_vf */
{
    float s = x.x + y;
    df32 r = { s, ((x.x - s) + y) + x.y };
    return r;
}

float px_t_logf(float d)
{
    if (isnan(d) || d < 0.0f) return NAN;
    if (d == 0.0f) return -INFINITY;
    if (isinf(d)) return INFINITY;
    int tiny = d < 1.17549435e-38f; /* FLT_MIN: scale subnormals up by 2**64 */
    if (tiny) d = d * (4294967296.0f * 4294967296.0f);
    int32_t e = (int32_t)((f2u(d * (1.0f / 0.75f)) >> 23) & 0xff) - 0x7f;
    float m = u2f(f2u(d) + ((uint32_t)(-e) << 23)); /* d * 2**-e, m in [0.75, 1.5) */
    if (tiny) e -= 64;
    df32 s = df_mul_f((df32){ 0.69314718246459960938f, -1.904654323148236017e-09f }, (float)e);
    df32 x = df_div(df_add2_ff(-1.0f, m), df_add2_ff(1.0f, m));
    float x2 = x.x * x.x;
    float t = 0.3027294874e+0f;
    t = fmaf(t, x2, 0.3996108174e+0f);
    t = fmaf(t, x2, 0.6666694880e+0f);
    s = df_add_dd(s, df_scale(x, 2.0f));
    s = df_add_df(s, (x2 * x.x) * t);
    return s.x + s.y;
}

float px_t_expf(float d)
{
    if (isnan(d)) return d;
    if (d < -104.0f) return 0.0f;
    if (d > 100.0f) return INFINITY;
    /* q = rint(d / ln 2) (cvtps2dq: round half to even) */
    int32_t q = (int32_t)nearbyintf(d * 1.442695040888963407359924681001892137426645954152985934135449406931f);
    float s = fmaf((float)q, -0.693145751953125f, d);
    s = fmaf((float)q, -1.428606765330187045e-06f, s);
    float u = 0.000198527617612853646278381f;
    u = fmaf(u, s, 0.00139304355252534151077271f);
    u = fmaf(u, s, 0.00833336077630519866943359f);
    u = fmaf(u, s, 0.0416664853692054748535156f);
    u = fmaf(u, s, 0.166666671633720397949219f);
    u = fmaf(u, s, 0.5f);
    u = 1.0f + fmaf(s * s, u, s);
    /* vldexp2: u * 2**(q>>1) * 2**(q - (q>>1)) */
    int32_t h = q >> 1;
    u = u * u2f((uint32_t)(h + 0x7f) << 23);
    u = u * u2f((uint32_t)(q - h + 0x7f) << 23);
    return u;
}

// ---------------------------------------------------------------------------
// torch.linspace (aten/src/ATen/native/cpu/RangeFactoriesKernel.cpp): float
// step = (end - start) / (steps - 1); the first half counts up from start,
// the second half down from end. The output is written 16 at a time by two
// 8-lane vectors Vectorized::arange(base, step) = base + k*step (k = 0..7,
// product rounded, then added) whose base comes from the scalar formula
// (which the AVX2 build contracts into one fma), and the remainder by the
// scalar formula.

static inline float linspace_scalar(float start, float end, float step, int64_t steps, int64_t idx)
{
    int64_t halfway = steps / 2;
    if (idx < halfway) return fmaf(step, (float)idx, start);           /* start + step*idx */
    return fmaf(-step, (float)(steps - idx - 1), end);                  /* end - step*(steps-idx-1) */
}

void px_t_linspace_f32(float *out, double start_d, double end_d, int64_t steps)
{
    if (steps <= 0) return;
    float start = (float)start_d, end = (float)end_d;
    if (steps == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(steps - 1);
    int64_t i = 0;
    for (; i + 16 <= steps; i += 16) {
        for (int v = 0; v < 2; v++) {
            int64_t idx = i + 8 * v;
            float base = linspace_scalar(start, end, step, steps, idx);
            for (int k = 0; k < 8; k++) out[idx + k] = base + (float)k * step;
        }
    }
    for (; i < steps; i++) out[i] = linspace_scalar(start, end, step, steps, i);
}

void px_t_cumprod_f32(float *out, const float *x, int64_t n)
{
    double acc = 1.0; /* at::acc_type<float, false> is double */
    for (int64_t i = 0; i < n; i++) {
        acc *= (double)x[i];
        out[i] = (float)acc;
    }
}

// ---------------------------------------------------------------------------
// numpy (1.24) float64 helpers.

void px_np_linspace(double *out, double start, double stop, int64_t num)
{
    if (num <= 0) return;
    int64_t div = num - 1;
    double delta = stop - start;
    if (div > 0) {
        double step = delta / (double)div;
        if (step == 0) {
            for (int64_t i = 0; i < num; i++) out[i] = ((double)i / (double)div) * delta;
        } else {
            for (int64_t i = 0; i < num; i++) out[i] = (double)i * step;
        }
    } else {
        for (int64_t i = 0; i < num; i++) out[i] = (double)i * delta;
    }
    for (int64_t i = 0; i < num; i++) out[i] += start;
    if (num > 1) out[num - 1] = stop;
}

int64_t px_np_arange_len(double start, double stop, double step)
{
    if (step == 0) return -1;
    double v = ceil((stop - start) / step);
    if (isnan(v)) return -1;
    if (v <= 0) return 0;
    if (v > 1e15) return -1;
    return (int64_t)v;
}

void px_np_arange(double *out, double start, double stop, double step)
{
    int64_t n = px_np_arange_len(start, stop, step);
    if (n <= 0) return;
    out[0] = start;
    if (n == 1) return;
    out[1] = start + step;
    double delta = out[1] - out[0]; /* DOUBLE_fill */
    for (int64_t i = 2; i < n; i++) out[i] = start + (double)i * delta;
}

double px_np_round(double x)
{
    return nearbyint(x); /* default rounding mode: half to even, like np.round */
}
