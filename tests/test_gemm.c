/* The blocked GEMM of ops/gemm_blocked.c (px_linear's path for half-precision
 * weights with many rows): against a double-precision product of the same
 * (widened) weights at shapes that are not multiples of the blocking, every
 * ISA variant bit-identical to the scalar one, the result independent of the
 * thread count, and close to the cblas_sgemm path. */
#include "testutil.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/half.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* M, N, K: single elements, a lone edge tile, exact 6 x 16 tiles, one row,
 * K = 1, K past one k-block (257: two blocks of 136 and 121 after the split
 * into near-equal parts) and past several, M past one 168-row block,
 * N past one packed weight block (K = 1024: 4096 columns per block). */
static const int64_t shapes[][3] = {
    { 1, 1, 1 },    { 1, 17, 5 },   { 5, 7, 3 },     { 6, 16, 8 },     { 12, 32, 1 },
    { 13, 33, 257 }, { 1, 100, 300 }, { 7, 45, 520 }, { 200, 70, 40 }, { 7, 4100, 1024 },
};

typedef struct {
    int64_t M, N, K;
    float *x, *b, *wr; /* activations, bias, weights as rounded to the dtype (F32) */
    void *w[3];        /* F32, BF16, F16 storage */
} problem;

static const px_dtype dtypes[3] = { PX_F32, PX_BF16, PX_F16 };

static void problem_make(problem *p, int64_t M, int64_t N, int64_t K, uint64_t seed)
{
    p->M = M, p->N = N, p->K = K;
    p->x = malloc((size_t)(M * K) * 4);
    p->b = malloc((size_t)N * 4);
    p->wr = malloc((size_t)(N * K) * 4 * 3);
    px_test_fill_uniform(p->x, (size_t)(M * K), seed, -1, 1);
    px_test_fill_uniform(p->b, (size_t)N, seed + 1, -1, 1);
    px_test_fill_uniform(p->wr, (size_t)(N * K), seed + 2, -1, 1);
    p->w[0] = p->wr;
    for (int d = 1; d < 3; d++) {
        p->w[d] = malloc((size_t)(N * K) * 2);
        px_convert_from_f32(p->w[d], dtypes[d], p->wr, N * K);
        px_convert_to_f32(p->wr + (size_t)d * (size_t)(N * K), p->w[d], dtypes[d], N * K);
    }
}

static void problem_free(problem *p)
{
    free(p->x);
    free(p->b);
    free(p->wr);
    free(p->w[1]);
    free(p->w[2]);
}

static px_tensor weight(const problem *p, int d)
{
    return px_tensor_view(dtypes[d], p->w[d], 2, (int64_t[]){ p->N, p->K });
}

START_TEST(blocked_matches_double_product)
{
    px_gemm_kernels g;
    ck_assert_int_eq(px_gemm_kernels_for(PX_ISA_REF, &g), 0);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        problem p;
        problem_make(&p, shapes[si][0], shapes[si][1], shapes[si][2], 10 + si);
        const size_t n = (size_t)(p.M * p.N);
        float *want = malloc(n * 4), *got = malloc(n * 4);
        for (int d = 0; d < 3; d++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bias = with_bias ? p.b : NULL;
                px_test_linear_double(want, p.x, p.wr + (size_t)d * (size_t)(p.N * p.K), bias, p.M, p.N, p.K);
                px_tensor wt = weight(&p, d);
                ck_assert_int_eq(px_linear_blocked(got, p.x, &wt, bias, p.M, &g, 2), 0);
                char label[96];
                snprintf(label, sizeof label, "blocked %s %lldx%lldx%lld bias %d", px_dtype_name(dtypes[d]),
                         (long long)p.M, (long long)p.N, (long long)p.K, with_bias);
                /* float32 accumulation over K terms of magnitude <= 1 (as test_ops) */
                assert_close(got, want, n, 2e-6 * sqrt((double)p.K) + 1e-6, 1e-5, label);
            }
        free(want);
        free(got);
        problem_free(&p);
    }
}
END_TEST

/* Each SIMD variant gives the scalar variant's bits, for any thread count;
 * and px_linear on this path gives the same bits for 1 and 2 threads. */
START_TEST(blocked_isas_and_threads_bit_identical)
{
    px_gemm_kernels ref;
    ck_assert_int_eq(px_gemm_kernels_for(PX_ISA_REF, &ref), 0);
    int tested = 0;
    for (int isa = 0; isa < PX_ISA_COUNT; isa++) {
        px_gemm_kernels g;
        if (px_gemm_kernels_for(isa, &g)) continue;
        tested++;
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            problem p;
            problem_make(&p, shapes[si][0], shapes[si][1], shapes[si][2], 40 + si);
            const size_t n = (size_t)(p.M * p.N);
            float *want = malloc(n * 4), *got = malloc(n * 4);
            for (int d = 0; d < 3; d++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    const float *bias = with_bias ? p.b : NULL;
                    px_tensor wt = weight(&p, d);
                    ck_assert_int_eq(px_linear_blocked(want, p.x, &wt, bias, p.M, &ref, 1), 0);
                    for (int nt = 1; nt <= 3; nt++) {
                        memset(got, 0xff, n * 4);
                        ck_assert_int_eq(px_linear_blocked(got, p.x, &wt, bias, p.M, &g, nt), 0);
                        ck_assert_msg(memcmp(got, want, n * 4) == 0,
                                      "%s, %d threads, %s %lldx%lldx%lld bias %d: not the scalar bits",
                                      px_isa_name((px_isa)isa), nt, px_dtype_name(dtypes[d]), (long long)p.M,
                                      (long long)p.N, (long long)p.K, with_bias);
                    }
                }
            free(want);
            free(got);
            problem_free(&p);
        }
    }
    fprintf(stderr, "blocked GEMM: %d ISA variant(s) compared with the scalar one\n", tested);

    /* px_linear itself (the blocked path on AVX2 CPUs for M > 256) */
    problem p;
    problem_make(&p, 300, 260, 190, 77);
    px_tensor wt = weight(&p, 1);
    float *y[2];
    for (int t = 0; t < 2; t++) {
        px_set_num_threads(t + 1);
        y[t] = malloc((size_t)(p.M * p.N) * 4);
        ck_assert_int_eq(px_linear(y[t], p.x, &wt, p.b, p.M), 0);
    }
    px_set_num_threads(2);
    ck_assert(memcmp(y[0], y[1], (size_t)(p.M * p.N) * 4) == 0);
    free(y[0]);
    free(y[1]);
    problem_free(&p);
}
END_TEST

/* Half-precision weights give the bits of F32 weights holding the same
 * rounded values, on both sides of the M = 256 switch between the paths
 * (test_t5 relies on this for whole models). */
START_TEST(half_weights_equal_rounded_f32)
{
    const int64_t sh[][3] = { { 200, 70, 300 }, { 300, 70, 300 } };
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
        problem p;
        problem_make(&p, sh[si][0], sh[si][1], sh[si][2], 60 + si);
        const size_t n = (size_t)(p.M * p.N);
        float *a = malloc(n * 4), *b = malloc(n * 4);
        for (int d = 1; d < 3; d++) {
            px_tensor wh = weight(&p, d);
            px_tensor wf = px_tensor_view(PX_F32, p.wr + (size_t)d * (size_t)(p.N * p.K), 2, (int64_t[]){ p.N, p.K });
            ck_assert_int_eq(px_linear(a, p.x, &wh, p.b, p.M), 0);
            ck_assert_int_eq(px_linear(b, p.x, &wf, p.b, p.M), 0);
            ck_assert_msg(memcmp(a, b, n * 4) == 0, "M=%lld: %s weights differ from rounded F32 weights",
                          (long long)p.M, px_dtype_name(dtypes[d]));
        }
        free(a);
        free(b);
        problem_free(&p);
    }
}
END_TEST

/* Both paths of px_linear agree to float32 accumulation error. */
START_TEST(blocked_close_to_cblas_path)
{
    const int64_t sh[][3] = { { 300, 260, 190 }, { 517, 129, 1100 }, { 2, 40, 3 } };
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
        problem p;
        problem_make(&p, sh[si][0], sh[si][1], sh[si][2], 90 + si);
        const size_t n = (size_t)(p.M * p.N);
        float *a = malloc(n * 4), *b = malloc(n * 4);
        for (int d = 0; d < 3; d++) {
            px_tensor wt = weight(&p, d);
            px_gemm_path = PX_GEMM_CBLAS;
            ck_assert_int_eq(px_linear(a, p.x, &wt, p.b, p.M), 0);
            px_gemm_path = PX_GEMM_BLOCKED;
            ck_assert_int_eq(px_linear(b, p.x, &wt, p.b, p.M), 0);
            px_gemm_path = PX_GEMM_AUTO;
            char label[96];
            snprintf(label, sizeof label, "blocked vs cblas %s %lldx%lldx%lld", px_dtype_name(dtypes[d]),
                     (long long)p.M, (long long)p.N, (long long)p.K);
            /* two float32 sums of K terms of magnitude <= 1, each within the bound above */
            assert_close(b, a, n, 2 * (2e-6 * sqrt((double)p.K) + 1e-6), 2e-5, label);
        }
        free(a);
        free(b);
        problem_free(&p);
    }
}
END_TEST

/* M > 256 (several M tiles) and N x K over one 16 MiB panel of F32, on each
 * path forced: the cblas path's shared widened panels (px_linear's own choice
 * on CPUs without the AVX2 micro-kernel) and the blocked GEMM over several
 * weight blocks (its choice on AVX2; elsewhere forcing it falls back to
 * cblas). Weights are multiples of 1/256 below 1, exact in F32, BF16 and
 * F16, so one double-precision product is the reference for all three. */
START_TEST(cblas_panels_forced)
{
    const int64_t M = 260, N = 1030, K = 4100;
    float *x = malloc(M * K * 4), *w = malloc(N * K * 4), *b = malloc(N * 4);
    float *want = malloc(M * N * 4), *got = malloc(M * N * 4);
    uint16_t *wh = malloc(N * K * 2);
    px_test_fill_uniform(x, M * K, 31, -1, 1);
    px_test_fill_uniform(w, N * K, 32, -1, 1);
    for (int64_t i = 0; i < N * K; i++) w[i] = rintf(w[i] * 255.0f) / 256.0f;
    px_test_fill_uniform(b, N, 33, -1, 1);
    px_test_linear_double(want, x, w, b, M, N, K);
    for (int path = PX_GEMM_CBLAS; path <= PX_GEMM_BLOCKED; path++)
        for (int d = 0; d < 3; d++) {
            if (d) px_convert_from_f32(wh, dtypes[d], w, N * K);
            px_tensor wt = px_tensor_view(dtypes[d], d ? (void *)wh : (void *)w, 2, (int64_t[]){ N, K });
            px_gemm_path = path;
            ck_assert_int_eq(px_linear(got, x, &wt, b, M), 0);
            px_gemm_path = PX_GEMM_AUTO;
            char label[64];
            snprintf(label, sizeof label, "%s path, panels, %s", path == PX_GEMM_CBLAS ? "cblas" : "blocked",
                     px_dtype_name(dtypes[d]));
            assert_close(got, want, M * N, 2e-6 * sqrt((double)K) + 1e-6, 1e-5, label);
        }
    free(x); free(w); free(b); free(want); free(got); free(wh);
}
END_TEST

/* The cblas paths (px_linear forced onto them, and px_sgemm) give the same
 * bits for 1 and 2 threads: their tiles depend on the shape only. (OpenBLAS
 * threading one whole call itself did not: 6-93 % of the elements of these
 * shapes differed in the last bits.) */
START_TEST(cblas_paths_threads_bit_identical)
{
    const int64_t shapes[][3] = { { 300, 260, 190 }, { 513, 1000, 37 }, { 300, 37, 851 } };
    const int saved = px_get_num_threads();
    for (size_t si = 0; si < 3; si++) {
        const int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(M * K * 4), *w = malloc(N * K * 4), *b = malloc(N * 4);
        float *y[2], *g[2];
        uint16_t *wh = malloc(N * K * 2);
        px_test_fill_uniform(x, M * K, 31 + si, -1, 1);
        px_test_fill_uniform(w, N * K, 41 + si, -1, 1);
        px_test_fill_uniform(b, N, 51 + si, -1, 1);
        px_convert_from_f32(wh, PX_BF16, w, N * K);
        px_tensor wf = px_tensor_view(PX_F32, w, 2, (int64_t[]){ N, K });
        px_tensor wb = px_tensor_view(PX_BF16, wh, 2, (int64_t[]){ N, K });
        for (int d = 0; d < 2; d++) {
            px_gemm_path = PX_GEMM_CBLAS;
            for (int t = 0; t < 2; t++) {
                px_set_num_threads(t + 1);
                y[t] = malloc(M * N * 4);
                g[t] = malloc(M * N * 4);
                ck_assert_int_eq(px_linear(y[t], x, d ? &wb : &wf, b, M), 0);
                px_sgemm(0, 1, M, N, K, 1.0f, x, K, w, K, 0.0f, g[t], N);
            }
            px_gemm_path = PX_GEMM_AUTO;
            ck_assert_msg(memcmp(y[0], y[1], M * N * 4) == 0, "px_linear (cblas, %s) %lldx%lldx%lld: 1 vs 2 threads",
                          d ? "bf16" : "f32", (long long)M, (long long)N, (long long)K);
            ck_assert_msg(memcmp(g[0], g[1], M * N * 4) == 0, "px_sgemm %lldx%lldx%lld: 1 vs 2 threads", (long long)M,
                          (long long)N, (long long)K);
            for (int t = 0; t < 2; t++) { free(y[t]); free(g[t]); }
        }
        free(x); free(w); free(b); free(wh);
    }
    px_set_num_threads(saved);
}
END_TEST

/* px_linear gives the same bits with every ISA whose blocked GEMM it runs
 * (the reference's scalar kernels at every M; AVX2 6 x 16 and AVX-512 12 x 32
 * for M > 256) and for 1 and 2 threads: the tile shape and vector width do
 * not change the order of any sum. */
START_TEST(linear_same_bits_every_isa)
{
    const px_isa saved_isa = px_ops_isa();
    const int saved_threads = px_get_num_threads();
    problem p;
    problem_make(&p, 301, 77, 530, 88);
    const size_t n = (size_t)(p.M * p.N);
    float *want = malloc(n * 4), *got = malloc(n * 4);
    for (int d = 0; d < 3; d++) {
        px_tensor wt = weight(&p, d);
        ck_assert_int_eq(px_ops_select(PX_ISA_REF), 0);
        px_set_num_threads(1);
        ck_assert_int_eq(px_linear(want, p.x, &wt, p.b, p.M), 0);
        int tested = 0;
        for (int isa = 0; isa < PX_ISA_COUNT; isa++) {
            px_gemm_kernels g;
            if (px_ops_select((px_isa)isa) || px_gemm_blocked_kernels(&g) < 0) continue;
            tested++;
            for (int nt = 1; nt <= 2; nt++) {
                px_set_num_threads(nt);
                memset(got, 0xff, n * 4);
                ck_assert_int_eq(px_linear(got, p.x, &wt, p.b, p.M), 0);
                ck_assert_msg(memcmp(got, want, n * 4) == 0, "px_linear %s %s, %d threads: not the reference bits",
                              px_isa_name((px_isa)isa), px_dtype_name(dtypes[d]), nt);
            }
        }
        ck_assert_int_ge(tested, 1);
    }
    ck_assert_int_eq(px_ops_select(saved_isa), 0);
    px_set_num_threads(saved_threads);
    free(want);
    free(got);
    problem_free(&p);
}
END_TEST

/* px_sgemm_ref (px_sgemm's path with the reference ISA) against a double-
 * precision product, for every transposition, alpha and beta, with leading
 * dimensions wider than the matrices; px_sgemm (cblas) within the same bound. */
START_TEST(sgemm_reference_matches_double)
{
    const int64_t M = 37, N = 29, K = 300, ld = 311;
    float *A = malloc(ld * ld * 4), *B = malloc(ld * ld * 4), *C0 = malloc(M * ld * 4);
    float *C = malloc(M * ld * 4), *want = malloc(M * N * 4), *got = malloc(M * N * 4);
    px_test_fill_uniform(A, ld * ld, 5, -1, 1);
    px_test_fill_uniform(B, ld * ld, 6, -1, 1);
    px_test_fill_uniform(C0, M * ld, 7, -1, 1);
    const float alpha = 0.75f, betas[2] = { 0.0f, 0.5f };
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int bi = 0; bi < 2; bi++) {
                for (int64_t i = 0; i < M; i++)
                    for (int64_t j = 0; j < N; j++) {
                        double acc = 0;
                        for (int64_t k = 0; k < K; k++)
                            acc += (double)(ta ? A[k * ld + i] : A[i * ld + k]) * (tb ? B[j * ld + k] : B[k * ld + j]);
                        want[i * N + j] = (float)(alpha * acc + betas[bi] * (double)C0[i * ld + j]);
                    }
                for (int path = 0; path < 2; path++) {
                    memcpy(C, C0, (size_t)(M * ld) * 4);
                    if (path == 0)
                        px_sgemm_ref(ta, tb, M, N, K, alpha, A, ld, B, ld, betas[bi], C, ld);
                    else
                        px_sgemm(ta, tb, M, N, K, alpha, A, ld, B, ld, betas[bi], C, ld);
                    for (int64_t i = 0; i < M; i++) memcpy(got + i * N, C + i * ld, (size_t)N * 4);
                    char label[64];
                    snprintf(label, sizeof label, "%s ta %d tb %d beta %g", path ? "px_sgemm" : "px_sgemm_ref", ta,
                             tb, betas[bi]);
                    assert_close(got, want, (size_t)(M * N), 2e-6 * sqrt((double)K) + 1e-6, 1e-5, label);
                    /* columns past N are not written */
                    for (int64_t i = 0; i < M; i++)
                        ck_assert(memcmp(C + i * ld + N, C0 + i * ld + N, (size_t)(ld - N) * 4) == 0);
                }
            }
    free(A); free(B); free(C0); free(C); free(want); free(got);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("gemm");
    TCase *tc = tcase_create("gemm");
    /* every ISA variant (three on an AVX-512 CPU) x 1-3 threads: under the
     * sanitizers (-O1) at load average 10-17 on 2 cores the ISA test alone
     * exceeded 120 s of wall time (the whole suite used under 2 min of CPU;
     * at load 6.5 it passed in 5 min) */
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, blocked_matches_double_product);
    tcase_add_test(tc, blocked_isas_and_threads_bit_identical);
    tcase_add_test(tc, half_weights_equal_rounded_f32);
    tcase_add_test(tc, blocked_close_to_cblas_path);
    tcase_add_test(tc, cblas_panels_forced);
    tcase_add_test(tc, cblas_paths_threads_bit_identical);
    tcase_add_test(tc, linear_same_bits_every_isa);
    tcase_add_test(tc, sgemm_reference_matches_double);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(suite()); }
