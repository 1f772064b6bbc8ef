/* Runtime CPU detection, the kernel table and the thread count. */
#include "config.h"
#include "gemm_internal.h"
#include "ops.h"
#include "pixart/pixart.h" // the exported (PX_API) declarations

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS thread control (declared in cblas.h of OpenBLAS builds). */
void openblas_set_num_threads(int num_threads);

px_kernels px_k;
static px_isa active_isa = PX_ISA_REF;
static int initialised;
static int num_threads = 1;

const char *px_isa_name(px_isa isa)
{
    static const char *n[] = { "ref", "avx2", "avx512", "neon" };
    return (unsigned)isa < PX_ISA_COUNT ? n[isa] : "?";
}

#if defined(PX_HOST_X86) && defined(__GNUC__)
#include <cpuid.h>
/* CPUID.1:ECX.F16C[bit 29]: clang 14 rejects __builtin_cpu_supports("f16c") */
static int cpu_has_f16c(void)
{
    unsigned a, b, c, d;
    return __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
}
#endif

int px_isa_supported(px_isa isa)
{
    switch (isa) {
    case PX_ISA_REF: return 1;
#if defined(PX_HOST_X86) && defined(__GNUC__)
    case PX_ISA_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && cpu_has_f16c();
    case PX_ISA_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#endif
#if defined(PX_HOST_ARM64)
    case PX_ISA_NEON: return 1; /* Advanced SIMD is mandatory on AArch64 */
#endif
    default: return 0;
    }
}

int px_kernels_for(px_isa isa, px_kernels *out)
{
    if (!px_isa_supported(isa)) return -1;
    px_kernels_init_ref(out);
    switch (isa) {
#if defined(PX_HOST_X86)
    case PX_ISA_AVX2: px_kernels_init_avx2(out); break;
    case PX_ISA_AVX512:
        px_kernels_init_avx2(out); /* anything AVX-512 does not override */
        px_kernels_init_avx512(out);
        break;
#endif
#if defined(PX_HOST_ARM64)
    case PX_ISA_NEON: px_kernels_init_neon(out); break;
#endif
    default: break;
    }
    return 0;
}

int px_ops_select(px_isa isa)
{
    px_kernels k;
    if (px_kernels_for(isa, &k)) return -1;
    px_k = k;
    active_isa = isa;
    initialised = 1;
    return 0;
}

px_isa px_ops_isa(void)
{
    px_ops_init();
    return active_isa;
}

static int threads_chosen; /* px_set_num_threads was called: px_ops_init keeps that count */

static void set_threads(int n)
{
    if (n < 1) n = 1;
    num_threads = n;
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    openblas_set_num_threads(n);
}

/* A count set before the first operator runs (e.g. `pixart generate
 * --threads 1`) must survive px_ops_init's default. */
void px_set_num_threads(int n)
{
    threads_chosen = 1;
    set_threads(n);
}

int px_get_num_threads(void) { return num_threads; }

/* PIXART_ISA=ref|avx2|avx512|neon: the ISA to run (tests and benchmarks
 * compare variants on one CPU; e.g. avx2 on an AVX-512 CPU). An ISA this
 * build or CPU cannot run is refused once on stderr and the best one used. */
px_isa px_ops_default_isa(void)
{
    const char *force = getenv("PIXART_FORCE_REF");
    if (force && *force && strcmp(force, "0") != 0) return PX_ISA_REF;
    const char *want = getenv("PIXART_ISA");
    if (want && *want) {
        for (int i = 0; i < PX_ISA_COUNT; i++)
            if (!strcmp(want, px_isa_name((px_isa)i))) {
                if (px_isa_supported((px_isa)i)) return (px_isa)i;
                break;
            }
        fprintf(stderr, "pixart: PIXART_ISA=%s is not one this build and CPU can run (ref, avx2, avx512 or neon "
                        "where supported); using the best available\n", want);
    }
    const px_isa order[] = { PX_ISA_AVX512, PX_ISA_AVX2, PX_ISA_NEON };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (px_isa_supported(order[i])) return order[i];
    return PX_ISA_REF;
}

void px_ops_init(void)
{
    if (initialised) return;
    px_ops_select(px_ops_default_isa());
    if (active_isa != PX_ISA_REF) px_blas_warn_core();
    if (threads_chosen) return;
    const char *nt = getenv("PIXART_NUM_THREADS");
    int n = nt ? atoi(nt) : 0;
#ifdef _OPENMP
    if (n <= 0) n = omp_get_num_procs();
#endif
    set_threads(n > 0 ? n : 1);
}
