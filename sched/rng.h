/* torch.Generator('cpu') and torch.randn (CPU, float32) reproduced bit for bit,
 * and diffusers' randn_tensor with one generator or a list of generators.
 *
 * Mirrors torch 1.13 (x86-64 build, AVX2 kernels): at::mt19937 seeded by
 * CPUGeneratorImpl::set_current_seed, at::uniform_real_distribution, the scalar
 * Box-Muller path of at::normal_distribution<double> (tensors with fewer than
 * 16 elements) and normal_fill_AVX2 (16 or more elements), whose log/sin/cos
 * come from ATen's avx_mathfun.h. doc/schedulers.md explains every path. */
#ifndef PX_SCHED_RNG_H
#define PX_SCHED_RNG_H

#include <stddef.h>
#include <stdint.h>

#define PX_MT_N 624

/* One torch CPU generator. Plain data: copy it to fork the stream. */
typedef struct px_rng {
    uint32_t state[PX_MT_N]; /* mt19937 state */
    int left;                /* draws left before the next twist (torch's left_) */
    int next;                /* index of the next state word (torch's next_) */
    uint64_t seed;           /* the seed as given (torch.Generator.initial_seed()) */
    int has_next_double;     /* a cached second Box-Muller value is pending */
    double next_double;      /* ... its value (r * sin(theta)) */
} px_rng;

/* torch.Generator('cpu').manual_seed(seed). Seeds are unsigned 64-bit (Python
 * -1 is 2**64-1); only the low 32 bits reach mt19937, as in torch. */
void px_rng_seed(px_rng *g, uint64_t seed);

/* CPUGeneratorImpl::random(): the next 32-bit mt19937 output. */
uint32_t px_rng_u32(px_rng *g);
/* CPUGeneratorImpl::random64(): two draws, the first one is the high word. */
uint64_t px_rng_u64(px_rng *g);

/* at::uniform_real_distribution<float>(0, 1): 24 random bits / 2**24. */
float px_rng_uniform_f32(px_rng *g);
/* at::uniform_real_distribution<double>(0, 1): 53 random bits / 2**53. */
double px_rng_uniform_f64(px_rng *g);

/* out[0..n) = torch.randn(n, generator=g) on CPU as float32 (a contiguous
 * tensor of any shape with n elements gives the same values). Advances g
 * exactly as torch does, so successive calls continue torch's stream. */
void px_randn(px_rng *g, float *out, size_t n);

/* diffusers.utils.torch_utils.randn_tensor(shape, generator=gens):
 *   ngens == 1: torch.randn(shape, generator=gens[0]);
 *   ngens >= 2: row b = torch.randn((1,) + shape[1:], generator=gens[b]) for
 *               b < shape[0], concatenated (diffusers needs ngens >= shape[0];
 *               extra generators are not touched).
 * out holds prod(shape) floats. -1 (px_fail) when ngens is 0 or too small. */
int px_randn_tensor(px_rng *gens, size_t ngens, float *out, int ndim, const int64_t *shape);

#endif
