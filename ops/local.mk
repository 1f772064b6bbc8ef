# ops/: the operators, their scalar references and SIMD variants. SIMD files
# are compiled in their own convenience libraries with per-target flags, so
# the rest of the library runs on any CPU of the architecture.
libpx_core_la_SOURCES += \
	ops/ops.h ops/blas.c ops/cpu.c ops/ref.c ops/ops.c ops/gemm.c ops/gemm_internal.h ops/gemm_blocked.c ops/conv.c ops/attention.c

# FMAs in the kernels are written explicitly; no silent contraction of a*b+c
# (GNU C's default), so the plain-arithmetic kernels stay bit-identical to ref.c.
PX_SIMD_CFLAGS = -ffp-contract=off
if HOST_X86
noinst_LTLIBRARIES += libpx_avx2.la libpx_avx512.la
libpx_avx2_la_SOURCES = ops/simd_avx2.c ops/gemm_avx2.c
libpx_avx2_la_CFLAGS = $(AM_CFLAGS) $(PX_SIMD_CFLAGS) -mavx2 -mfma -mf16c
libpx_avx512_la_SOURCES = ops/simd_avx512.c ops/gemm_avx512.c
libpx_avx512_la_CFLAGS = $(AM_CFLAGS) $(PX_SIMD_CFLAGS) -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma -mf16c
libpx_core_la_LIBADD += libpx_avx2.la libpx_avx512.la
endif
if HOST_ARM64
noinst_LTLIBRARIES += libpx_neon.la
libpx_neon_la_SOURCES = ops/simd_neon.c
libpx_neon_la_CFLAGS = $(AM_CFLAGS) $(PX_SIMD_CFLAGS)
libpx_core_la_LIBADD += libpx_neon.la
endif
EXTRA_DIST += ops/simd_avx2.c ops/simd_avx512.c ops/simd_neon.c ops/gemm_avx2.c ops/gemm_avx512.c
