/* Shared helpers for the Check suites. */
#ifndef PX_TESTUTIL_H
#define PX_TESTUTIL_H

#include <check.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/safetensors.h"

/* Compares got against want elementwise: |got - want| <= atol + rtol * |want|.
 * On failure prints the label, the first mismatching elements, the max abs
 * and rel error and where they occur, and fails the test (llm.c check_tensor). */
#define assert_close(got, want, n, atol, rtol, label) \
    px_assert_close_((got), (want), (n), (atol), (rtol), (label), __FILE__, __LINE__)
void px_assert_close_(const float *got, const float *want, size_t n, double atol, double rtol,
                      const char *label, const char *file, int line);

/* Same comparison without failing: returns the number of mismatches and the
 * max abs / rel errors (either pointer may be NULL). */
size_t px_close_stats(const float *got, const float *want, size_t n, double atol, double rtol,
                      double *max_abs, double *max_rel);

/* Path of a fixture under the repository's data/ ($PIXART_DATA). Static buffer
 * rotated over 8 calls. */
const char *px_test_data(const char *rel);
/* Path under the shared reference set ($PIXART_REFERENCE, default
 * ../shared/reference next to the checkout). */
const char *px_test_ref(const char *rel);
/* 1 when the reference file exists; otherwise prints "SKIP <why>: <path> is
 * absent (set PIXART_REFERENCE)" and returns 0, so a test can `return`. */
int px_test_have_ref(const char *rel, const char *why);

/* Opens a safetensors file, failing the test with the library's message. */
px_st_file *px_test_open(const char *path);
/* A tensor from a reference file as a malloc'd float array (F32/F16/BF16/I64
 * converted); fails the test when the key is missing. *n = element count. */
float *px_test_get_f32(const px_st_file *f, const char *key, size_t *n);
/* Integer tensor (I64/I32) as malloc'd int64 array. */
int64_t *px_test_get_i64(const px_st_file *f, const char *key, size_t *n);
/* Compares got with the reference tensor `key` of f (also checks the count). */
void px_test_check_ref(const px_st_file *f, const char *key, const float *got, size_t n, double atol,
                       double rtol);

/* Deterministic pseudo-random floats in [lo, hi) for kernel tests. */
void px_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);

/* Runs a suite and returns the exit status for main. */
int px_test_run(Suite *s);

#endif
