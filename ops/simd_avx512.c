/* avx512 kernels (filled in by the SIMD work; entries not set here keep the
 * reference). Compiled with per-target flags in its own convenience library. */
#include "ops.h"

void px_kernels_init_avx512(px_kernels *k)
{
    (void)k;
}
