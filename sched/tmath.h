/* The few torch / numpy numerics the schedulers depend on, reproduced so that
 * schedules and scheduler steps match diffusers bit for bit.
 *
 * torch 1.13 (x86-64, AVX2 kernels) computes torch.log / torch.exp of float32
 * tensors with SLEEF's Sleef_logf8_u10 / Sleef_expf8_u10 (not libm), fills
 * torch.linspace with a two-sided formula, and accumulates torch.cumprod of
 * float32 in double. numpy's linspace / arange / round have their own exact
 * formulas in float64. Each function names the upstream expression it mirrors;
 * doc/schedulers.md lists where they came from and how they were verified. */
#ifndef PX_SCHED_TMATH_H
#define PX_SCHED_TMATH_H

#include <stdint.h>

/* torch.log(x) for a float32 tensor element (SLEEF xlogf_u1, FMA variant). */
float px_t_logf(float x);
/* torch.exp(x) for a float32 tensor element (SLEEF xexpf, FMA variant). */
float px_t_expf(float x);

/* torch.linspace(start, end, steps, dtype=torch.float32) on CPU. steps >= 1. */
void px_t_linspace_f32(float *out, double start, double end, int64_t steps);

/* torch.cumprod(x, dim=0) of a float32 vector (double accumulator, each
 * output rounded to float). out may alias x. */
void px_t_cumprod_f32(float *out, const float *x, int64_t n);

/* numpy.linspace(start, stop, num) in float64 (endpoint=True). num >= 1. */
void px_np_linspace(double *out, double start, double stop, int64_t num);

/* Length of numpy.arange(start, stop, step) for float64 arguments (0 when
 * empty; -1 when step is 0 or the length does not fit). */
int64_t px_np_arange_len(double start, double stop, double step);
/* numpy.arange(start, stop, step) in float64; out holds px_np_arange_len(). */
void px_np_arange(double *out, double start, double stop, double step);

/* numpy.round / ndarray.round for float64: round half to even. */
double px_np_round(double x);

#endif
