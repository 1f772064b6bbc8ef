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
/* ---- skipped checks ---------------------------------------------------------
 * A check that cannot run here (no reference set, no pixart program, a
 * sanitizer build) says so, and px_test_run reports it as SKIP to Automake
 * (TAP "# SKIP"), not as a pass. Each also prints "SKIP <test>: <why>" on
 * stderr. Only valid inside a running check (START_TEST body or a helper it
 * calls). A loop test is reported per test name: one skipping iteration marks
 * every iteration of that name. */

/* This whole check is skipped: the caller returns right after. */
void px_test_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* An optional part of this check is skipped; the check's own result (its
 * other assertions) stands, and the part is reported as one more SKIP. */
void px_test_skip_part(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* 1 when the reference file exists; otherwise skips the check
 * (px_test_skip: "<why>: <path> is absent (set PIXART_REFERENCE)") and
 * returns 0, so the test can `return`. */
int px_test_have_ref(const char *rel, const char *why);
/* The same for an optional part of a check (px_test_skip_part). */
int px_test_have_optional_ref(const char *rel, const char *why);

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

/* nn.Linear in double: out (M, N) = in (M, K) @ w (N, K)^T + bias (or NULL),
 * each sum accumulated in double, then rounded once: the reference px_linear
 * is compared against. */
void px_test_linear_double(float *out, const float *in, const float *w, const float *bias, int64_t M, int64_t N,
                           int64_t K);

/* ---- temporary folders and files ------------------------------------------
 * All of these fail the test (ck_abort) when the file system says no. */

/* Makes a fresh folder $TMPDIR/pixart-test-TAG-XXXXXX ($TMPDIR defaults to
 * /tmp) and writes its path into dir (size bytes). */
void px_test_tmpdir_make(char *dir, size_t size, const char *tag);
/* Removes dir and everything in it. */
void px_test_tmpdir_remove(const char *dir);
/* The number of entries in dir, "." and ".." not counted. */
int px_test_count_entries(const char *dir);

/* The whole file as a malloc'd string with a NUL after its last byte; *n
 * (when n is not NULL) is its length, so binary files work too. */
char *px_test_read_text(const char *path, size_t *n);
/* Writes n bytes to path (created or truncated). */
void px_test_write_bytes(const char *path, const void *data, size_t n);
/* Writes a NUL-terminated string to path (created or truncated). */
void px_test_write_text(const char *path, const char *text);

/* ---- edited copies of a checkpoint folder ---------------------------------
 * For tests of half-precision variants and of load errors: a component
 * folder (data/pipe_small/vae, ...) copied into a temporary folder with its
 * weights converted or one thing broken. */

/* Copies SRC_DIR/config.json to DST_DIR/config.json with the first
 * occurrence of `from` replaced by `to` (from NULL: unchanged). Fails the
 * test when `from` does not occur. */
void px_test_copy_config(const char *src_dir, const char *dst_dir, const char *from, const char *to);

/* What the weight copy stores. */
typedef enum {
    PX_TEST_COPY_F32,         /* every tensor as F32 */
    PX_TEST_COPY_HALF,        /* every tensor as `half`, as a diffusers fp16 variant stores them */
    PX_TEST_COPY_HALF_AS_F32, /* rounded to `half` and widened back, stored as F32: the values of
                                 PX_TEST_COPY_HALF in an F32 checkpoint */
} px_test_copy_values;

/* The wrong shape given to the `reshape` tensor. */
typedef enum {
    PX_TEST_SHAPE_SWAPPED,     /* a 2-D tensor's two dimensions swapped (same element count) */
    PX_TEST_SHAPE_DIM0_HALVED, /* first dimension halved (the first half of the data kept) */
    PX_TEST_SHAPE_DIM0_PLUS1,  /* first dimension one larger (a zero row appended) */
} px_test_bad_shape;

typedef struct {
    const char *variant;         /* NULL: DST/STEM.safetensors; else DST/STEM.VARIANT.safetensors */
    px_test_copy_values values;  /* PX_TEST_COPY_F32 when zero-initialised */
    px_dtype half;               /* PX_F16 or PX_BF16, for the two half modes */
    const char *drop;            /* a tensor left out, or NULL */
    const char *reshape;         /* a tensor stored with a wrong shape, or NULL */
    px_test_bad_shape bad_shape; /* which wrong shape */
} px_test_copy_opts;

/* Writes the weights of SRC_DIR's checkpoint STEM ("model" for
 * transformers, "diffusion_pytorch_model" for diffusers; one file or
 * shards) into one file in DST_DIR, as opts says (NULL: a plain F32 copy). */
void px_test_copy_weights(const char *src_dir, const char *stem, const char *dst_dir, const px_test_copy_opts *opts);

/* ---- dump key lists --------------------------------------------------------
 * Compares the keys of a dump with a key-list fixture under data/ (one key a
 * line, sorted; lines starting with "# " are comments), both restricted to
 * the keys that start with one of `prefixes` (NULL-terminated; NULL: every
 * key). keys need not be sorted. Fails the test naming the first keys that
 * one list has and the other lacks. */
void px_test_check_keys(const char *const *keys, size_t n, const char *fixture_rel, const char *const *prefixes);

/* Runs a suite and returns the exit status for main. Besides Check's usual
 * report, prints one TAP line per check on stdout ("ok 3 - name", "not ok",
 * "ok 4 - name # SKIP why"), plus one per skipped part, and the plan, for
 * Automake's tap-driver.sh (Makefile.am LOG_DRIVER). */
int px_test_run(Suite *s);

#endif
