/* Issue 17 finding 12: a clang (libomp) build linked with Debian's OpenMP
 * OpenBLAS (built for libgomp) deadlocked in cblas_sgemm when OpenBLAS
 * threaded a call made from one of our OpenMP regions serialised by its if
 * clause (2 prompts x 3 images of pipe_small hung in px_linear). These calls
 * must finish, and give the double-precision nn.Linear's values, from every
 * calling context: top level, a serialised region, an active region. The
 * test case has a timeout, so a deadlock fails it instead of hanging. */
#include "testutil.h"
#include "ops/ops.h"
#include "tensor/error.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* shapes of pipe_small's transformer (M = 192 tokens) and larger ones that
 * OpenBLAS threads when asked */
static const int64_t shapes[][3] = { { 192, 96, 24 }, { 192, 24, 96 }, { 192, 72, 24 }, { 192, 96, 32 }, { 192, 96, 96 }, { 192, 384, 96 }, { 1, 96, 1152 }, { 600, 300, 200 } };

static void linear_once(int64_t M, int64_t N, int64_t K, const char *where)
{
    float *in = malloc((size_t)(M * K) * sizeof *in), *w = malloc((size_t)(N * K) * sizeof *w);
    float *out = malloc((size_t)(M * N) * sizeof *out), *want = malloc((size_t)(M * N) * sizeof *want);
    float *c = malloc((size_t)(M * N) * sizeof *c);
    ck_assert(in && w && out && want && c);
    px_test_fill_uniform(in, (size_t)(M * K), 1, -1, 1);
    px_test_fill_uniform(w, (size_t)(N * K), 2, -1, 1);
    px_tensor wt = px_tensor_view(PX_F32, w, 2, (int64_t[]){ N, K });
    ck_assert_msg(!px_linear(out, in, &wt, NULL, M), "%s", px_last_error());
    px_sgemm(0, 1, M, N, K, 1.f, in, K, w, K, 0.f, c, N);
    px_test_linear_double(want, in, w, NULL, M, N, K);
    char label[96];
    snprintf(label, sizeof label, "px_linear %lldx%lldx%lld %s", (long long)M, (long long)N, (long long)K, where);
    assert_close(out, want, (size_t)(M * N), 1e-4, 1e-4, label);
    snprintf(label, sizeof label, "px_sgemm %lldx%lldx%lld %s", (long long)M, (long long)N, (long long)K, where);
    assert_close(c, want, (size_t)(M * N), 1e-4, 1e-4, label);
    free(in), free(w), free(out), free(want), free(c);
}

START_TEST(test_blas_calling_contexts)
{
    px_ops_init();
    int nt = px_get_num_threads() > 1 ? px_get_num_threads() : 2;
    px_set_num_threads(nt);
    for (int r = 0; r < 3; r++) /* the hang needed a few calls to show */
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int64_t *s = shapes[i];
            linear_once(s[0], s[1], s[2], "at top level");
            int off = 0;
            (void)off;
#pragma omp parallel num_threads(2) if (off)
            linear_once(s[0], s[1], s[2], "in a serialised region");
        }
#ifdef _OPENMP
    ck_assert_int_eq(omp_get_max_threads(), nt); /* the thread count is restored */
#endif
}
END_TEST

int main(void)
{
    Suite *s = suite_create("blas_threads");
    TCase *tc = tcase_create("blas_threads");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_blas_calling_contexts);
    suite_add_tcase(s, tc);
    return px_test_run(s);
}
