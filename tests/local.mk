# tests/: Check suites for the foundation (each module's local.mk adds its own).
if HAVE_CHECK
check_PROGRAMS += tests/test_core tests/test_ops
TESTS += tests/test_core tests/test_ops
tests_test_core_SOURCES = tests/test_core.c tests/testutil.c tests/testutil.h
tests_test_core_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_core_LDADD = $(PX_TEST_LIBS)
tests_test_ops_SOURCES = tests/test_ops.c tests/testutil.c tests/testutil.h
tests_test_ops_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_ops_LDADD = $(PX_TEST_LIBS)
endif
# the blocked GEMM for half-precision weights (ops/gemm_blocked.c)
if HAVE_CHECK
check_PROGRAMS += tests/test_gemm
TESTS += tests/test_gemm
tests_test_gemm_SOURCES = tests/test_gemm.c tests/testutil.c tests/testutil.h
tests_test_gemm_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_gemm_LDADD = $(PX_TEST_LIBS)
endif
# the convolution through the blocked GEMM with implicit im2col (ops/conv.c)
if HAVE_CHECK
check_PROGRAMS += tests/test_conv
TESTS += tests/test_conv
tests_test_conv_SOURCES = tests/test_conv.c tests/testutil.c tests/testutil.h
tests_test_conv_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_conv_LDADD = $(PX_TEST_LIBS)
endif
# cblas calls from every OpenMP calling context (issue 17 finding 12: clang + OpenMP OpenBLAS)
if HAVE_CHECK
check_PROGRAMS += tests/test_blas_threads
TESTS += tests/test_blas_threads
tests_test_blas_threads_SOURCES = tests/test_blas_threads.c tests/testutil.c tests/testutil.h
tests_test_blas_threads_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_blas_threads_LDADD = $(PX_TEST_LIBS)
endif
# pixart batch (src/cli/cmd_batch.c): equal to generate, resume after kills, bad lines, MPI
if HAVE_CHECK
check_PROGRAMS += tests/test_batch
TESTS += tests/test_batch
tests_test_batch_SOURCES = tests/test_batch.c tests/testutil.c tests/testutil.h
tests_test_batch_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_batch_LDADD = $(PX_TEST_LIBS)
endif
