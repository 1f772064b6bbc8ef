/* torch.Generator('cpu') + torch.randn (float32, CPU) bit for bit; diffusers
 * randn_tensor. Upstream: ATen/core/MT19937RNGEngine.h, CPUGeneratorImpl.cpp,
 * core/DistributionsHelper.h, native/cpu/DistributionTemplates.h and
 * avx_mathfun.h of torch 1.13 (see rng.h and doc/schedulers.md).
 *
 * This file is compiled with -ffp-contract=off (sched/local.mk): every float
 * operation below is rounded where torch rounds it, and the fused
 * multiply-adds that torch's AVX2 build executes are written as fmaf(). */
#include "sched/rng.h"
#include "tensor/error.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------
// mt19937 as at::mt19937 (the standard generator; torch seeds it with the
// low 32 bits of the 64-bit seed using the reference init_genrand recurrence).

void px_rng_seed(px_rng *g, uint64_t seed)
{
    memset(g, 0, sizeof *g);
    g->seed = seed;
    g->state[0] = (uint32_t)(seed & 0xffffffffu);
    for (uint32_t j = 1; j < PX_MT_N; j++)
        g->state[j] = 1812433253u * (g->state[j - 1] ^ (g->state[j - 1] >> 30)) + j;
    g->left = 1; /* the first draw twists */
    g->next = 0;
    g->has_next_double = 0; /* manual_seed drops the cached normal */
}

#define MT_M 397
#define MT_MATRIX_A 0x9908b0dfu
#define MT_UMASK 0x80000000u
#define MT_LMASK 0x7fffffffu

static inline uint32_t mt_twist(uint32_t u, uint32_t v)
{
    uint32_t mix = (u & MT_UMASK) | (v & MT_LMASK);
    return (mix >> 1) ^ ((v & 1u) ? MT_MATRIX_A : 0u);
}

static void mt_next_state(px_rng *g)
{
    uint32_t *p = g->state;
    g->left = PX_MT_N;
    g->next = 0;
    int j = 0;
    for (; j < PX_MT_N - MT_M; j++) p[j] = p[j + MT_M] ^ mt_twist(p[j], p[j + 1]);
    for (; j < PX_MT_N - 1; j++) p[j] = p[j + MT_M - PX_MT_N] ^ mt_twist(p[j], p[j + 1]);
    p[PX_MT_N - 1] = p[MT_M - 1] ^ mt_twist(p[PX_MT_N - 1], p[0]);
}

uint32_t px_rng_u32(px_rng *g)
{
    if (--g->left == 0) mt_next_state(g);
    uint32_t y = g->state[g->next++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680u;
    y ^= (y << 15) & 0xefc60000u;
    y ^= y >> 18;
    return y;
}

uint64_t px_rng_u64(px_rng *g)
{
    uint64_t hi = px_rng_u32(g);
    uint64_t lo = px_rng_u32(g);
    return (hi << 32) | lo;
}

// ---------------------------------------------------------------------------
// Uniforms (transformation::uniform_real): (bits & (2**digits - 1)) * 2**-digits.

float px_rng_uniform_f32(px_rng *g)
{
    return (float)(px_rng_u32(g) & 0xffffffu) * (1.0f / 16777216.0f);
}

double px_rng_uniform_f64(px_rng *g)
{
    return (double)(px_rng_u64(g) & ((UINT64_C(1) << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// ---------------------------------------------------------------------------
// Fewer than 16 elements: at::normal_distribution<double> per element, cast to
// float. Box-Muller in double with libm log/sin/cos; the sine half is cached
// in the generator and returned by the next scalar draw.

static double normal_f64(px_rng *g)
{
    if (g->has_next_double) {
        g->has_next_double = 0;
        return g->next_double;
    }
    double u1 = px_rng_uniform_f64(g);
    double u2 = px_rng_uniform_f64(g);
    double r = sqrt(-2.0 * log(1.0 - u2));
    double theta = 2.0 * M_PI * u1;
    g->has_next_double = 1;
    g->next_double = r * sin(theta);
    return r * cos(theta);
}

// ---------------------------------------------------------------------------
// 16 or more elements: normal_fill_AVX2. Per lane, in float: u1 = 1 - data[j],
// u2 = data[j + 8], radius = sqrt(-2 * log256_ps(u1)), theta = 2pi * u2,
// data[j] = radius * cos(theta), data[j + 8] = radius * sin(theta).
// log256_ps / sincos256_ps are the Cephes-style polynomials of avx_mathfun.h;
// the fused multiply-adds are where GCC contracted them in the Debian torch
// 1.13.1 build (read from its machine code; verified on every reference entry).

static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

/* log256_ps for one lane. Input here is in (0, 1]; the general cases are kept. */
static float am_log(float x)
{
    int invalid = !(x > 0.0f);                          /* cmp LE: NaN for x <= 0 */
    if (!(x >= 1.17549435e-38f)) x = 1.17549435e-38f;   /* max(x, min_norm_pos) */
    uint32_t bits = f2u(x);
    int32_t imm0 = (int32_t)(bits >> 23);
    x = u2f((bits & ~0x7f800000u) | 0x3f000000u);       /* mantissa in [0.5, 1) */
    float e = (float)(imm0 - 0x7f) + 1.0f;
    int lt = x < 0.707106781186547524f;                 /* SQRTHF */
    float tmp = lt ? x : 0.0f;
    x = x - 1.0f;
    e = e - (lt ? 1.0f : 0.0f);
    x = x + tmp;
    float z = x * x;
    float y = 7.0376836292E-2f;
    y = fmaf(y, x, -1.1514610310E-1f);
    y = fmaf(y, x, 1.1676998740E-1f);
    y = fmaf(y, x, -1.2420140846E-1f);
    y = fmaf(y, x, 1.4249322787E-1f);
    y = fmaf(y, x, -1.6668057665E-1f);
    y = fmaf(y, x, 2.0000714765E-1f);
    y = fmaf(y, x, -2.4999993993E-1f);
    y = fmaf(y, x, 3.3333331174E-1f);
    y = y * x;
    float eq1 = e * -2.12194440e-4f;
    y = fmaf(y, z, eq1);            /* y*z + e*q1 */
    y = fmaf(-z, 0.5f, y);          /* y - z*0.5 */
    x = x + y;
    x = fmaf(e, 0.693359375f, x);   /* x + e*q2 */
    return invalid ? u2f(0xffffffffu) : x;
}

/* sincos256_ps for one lane (|x| < 2pi here, so the int conversion is safe). */
static void am_sincos(float xin, float *s, float *c)
{
    uint32_t sign_sin = f2u(xin) & 0x80000000u;
    float x = u2f(f2u(xin) & 0x7fffffffu);
    float y = x * 1.27323954473516f; /* 4/pi */
    int32_t j = (int32_t)y;          /* cvttps: truncation */
    j = (j + 1) & ~1;
    y = (float)j;
    uint32_t swap_sign_sin = ((uint32_t)j & 4u) << 29;
    int poly_first = (j & 2) == 0;
    x = fmaf(y, -0.78515625f, x); /* extended-precision range reduction */
    x = fmaf(y, -2.4187564849853515625e-4f, x);
    x = fmaf(y, -3.77489497744594108e-8f, x);
    uint32_t sign_cos = (~(uint32_t)(j - 2) & 4u) << 29;
    sign_sin ^= swap_sign_sin;

    float z = x * x;
    float yc = 2.443315711809948E-005f; /* cosine polynomial */
    yc = fmaf(yc, z, -1.388731625493765E-003f);
    yc = fmaf(yc, z, 4.166664568298827E-002f);
    yc = yc * z;
    float zh = z * 0.5f;
    yc = fmaf(yc, z, -zh);          /* (yc*z)*z - z*0.5 */
    yc = yc + 1.0f;
    float ys = -1.9515295891E-4f;   /* sine polynomial */
    ys = fmaf(ys, z, 8.3321608736E-3f);
    ys = fmaf(ys, z, -1.6666654611E-1f);
    ys = ys * z;
    ys = fmaf(ys, x, x);

    float ysin2 = poly_first ? ys : 0.0f, ysin1 = poly_first ? 0.0f : yc;
    ys = ys - ysin2;
    yc = yc - ysin1;
    float sn = ysin1 + ysin2, cs = yc + ys;
    *s = u2f(f2u(sn) ^ sign_sin);
    *c = u2f(f2u(cs) ^ sign_cos);
}

/* normal_fill_16_AVX2 with mean 0, std 1 (the final fmadd(n, std, mean) is exact). */
static void normal_fill_16(float *data)
{
    const float two_pi = (float)(2.0 * M_PI); /* _mm256_set1_ps(2.0f * c10::pi<double>) */
    for (int j = 0; j < 8; j++) {
        float u1 = 1.0f - data[j];
        float u2 = data[j + 8];
        float radius = sqrtf(-2.0f * am_log(u1));
        float theta = two_pi * u2;
        float sn, cs;
        am_sincos(theta, &sn, &cs);
        data[j] = radius * cs;
        data[j + 8] = radius * sn;
    }
}

void px_randn(px_rng *g, float *out, size_t n)
{
    if (n < 16) {
        for (size_t i = 0; i < n; i++) out[i] = (float)normal_f64(g);
        return;
    }
    for (size_t i = 0; i < n; i++) out[i] = px_rng_uniform_f32(g);
    for (size_t i = 0; i + 16 <= n; i += 16) normal_fill_16(out + i);
    if (n % 16 != 0) {
        /* torch redraws the last 16 values and transforms them again */
        float *d = out + n - 16;
        for (int i = 0; i < 16; i++) d[i] = px_rng_uniform_f32(g);
        normal_fill_16(d);
    }
}

int px_randn_tensor(px_rng *gens, size_t ngens, float *out, int ndim, const int64_t *shape)
{
    if (!gens || ngens == 0) return px_fail("randn_tensor: no generator");
    if (ndim < 0) return px_fail("randn_tensor: negative rank");
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return px_fail("randn_tensor: negative dimension %lld", (long long)shape[i]);
        numel *= (size_t)shape[i];
    }
    if (ngens == 1) {
        px_randn(&gens[0], out, numel);
        return 0;
    }
    if (ndim < 1) return px_fail("randn_tensor: a generator list needs a batch dimension");
    size_t batch = (size_t)shape[0];
    if (ngens < batch)
        return px_fail("randn_tensor: %zu generators for a batch of %zu", ngens, batch);
    size_t per = batch ? numel / batch : 0;
    for (size_t b = 0; b < batch; b++) px_randn(&gens[b], out + b * per, per);
    return 0;
}
