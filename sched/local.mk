# sched/: schedules, DDIM, DPM-Solver, LCM and SA-Solver steps, torch-identical
# random numbers.
#
# Built as a convenience library with -ffp-contract=off: these files mirror
# torch/numpy float arithmetic operation by operation (and write torch's fused
# multiply-adds as explicit fmaf), so the compiler must not contract a*b+c
# into an fma on its own (GCC does by default in gnu11 mode when FMA is
# available, e.g. with -march=native). See doc/schedulers.md.
noinst_LTLIBRARIES += libpx_sched.la
libpx_sched_la_SOURCES = \
	sched/rng.c sched/rng.h \
	sched/tmath.c sched/tmath.h \
	sched/schedule.c sched/schedule.h \
	sched/config.c sched/config.h \
	sched/ddim.c sched/ddim.h \
	sched/dpmsolver.c sched/dpmsolver.h \
	sched/lcm.c sched/lcm.h \
	sched/sasolver.c sched/sasolver.h \
	sched/scheduler.c sched/scheduler.h
libpx_sched_la_CFLAGS = $(AM_CFLAGS) -ffp-contract=off
libpixart_la_LIBADD += libpx_sched.la

if HAVE_CHECK
check_PROGRAMS += tests/test_rng tests/test_sched
TESTS += tests/test_rng tests/test_sched
tests_test_rng_SOURCES = tests/test_rng.c tests/testutil.c tests/testutil.h
tests_test_rng_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_rng_LDADD = $(PX_TEST_LIBS)
tests_test_sched_SOURCES = tests/test_sched.c tests/testutil.c tests/testutil.h
tests_test_sched_CFLAGS = $(PX_TEST_CFLAGS)
tests_test_sched_LDADD = $(PX_TEST_LIBS)
endif
