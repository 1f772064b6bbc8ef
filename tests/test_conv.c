/* The convolution through the blocked GEMM with implicit im2col
 * (px_conv2d_blocked, ops/gemm_blocked.c): against the direct double-
 * accumulating px_conv2d_ref at shapes that are not multiples of the
 * blocking (odd H and W, rows of 16-pixel panels that straddle two image
 * rows, Cout < 6 and past one 96-channel block, K past one and several
 * k-blocks), for F32/BF16/F16 weights with and without bias; every ISA's
 * packing and kernels bit-identical to the scalar ones for 1-3 threads; and
 * px_conv2d itself independent of the thread count on each of its paths. */
#include "testutil.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/half.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* B, Cin, H, W, Cout, ks */
static const int64_t shapes[][6] = {
    { 1, 1, 1, 1, 1, 3 },    /* one pixel: every neighbour is padding */
    { 2, 3, 5, 7, 5, 3 },    /* two images, panels straddling rows */
    { 1, 9, 21, 17, 6, 3 },  /* odd H, W; one full row tile */
    { 1, 13, 17, 16, 7, 3 }, /* W = 16: in-row panels, both edges masked */
    { 1, 5, 3, 40, 13, 3 },  /* W = 40: in-row and straddling panels */
    { 1, 29, 8, 32, 20, 3 }, /* K = 261: two k-blocks */
    { 1, 70, 6, 48, 100, 3 },/* K = 630: three k-blocks; Cout past 96 */
    { 2, 30, 9, 33, 4, 1 },  /* 1x1 */
    { 1, 300, 4, 19, 3, 1 }, /* 1x1, K = 300: two k-blocks */
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

static const px_dtype dtypes[3] = { PX_F32, PX_BF16, PX_F16 };

typedef struct {
    int64_t B, Cin, H, W, Cout, ks, nx, nw, ny;
    float *x, *b, *w32;
    void *w[3];
} problem;

static void problem_make(problem *p, const int64_t *s, uint64_t seed)
{
    p->B = s[0], p->Cin = s[1], p->H = s[2], p->W = s[3], p->Cout = s[4], p->ks = s[5];
    p->nx = p->B * p->Cin * p->H * p->W;
    p->nw = p->Cout * p->Cin * p->ks * p->ks;
    p->ny = p->B * p->Cout * p->H * p->W;
    p->x = malloc((size_t)p->nx * 4);
    p->b = malloc((size_t)p->Cout * 4);
    p->w32 = malloc((size_t)p->nw * 4);
    px_test_fill_uniform(p->x, (size_t)p->nx, seed, -1, 1);
    px_test_fill_uniform(p->b, (size_t)p->Cout, seed + 1, -1, 1);
    px_test_fill_uniform(p->w32, (size_t)p->nw, seed + 2, -1, 1);
    p->w[0] = p->w32;
    for (int d = 1; d < 3; d++) {
        p->w[d] = malloc((size_t)p->nw * 2);
        px_convert_from_f32(p->w[d], dtypes[d], p->w32, p->nw);
    }
}

static void problem_free(problem *p)
{
    free(p->x);
    free(p->b);
    free(p->w32);
    free(p->w[1]);
    free(p->w[2]);
}

static px_tensor weight(const problem *p, int d)
{
    return px_tensor_view(dtypes[d], p->w[d], 4, (int64_t[]){ p->Cout, p->Cin, p->ks, p->ks });
}

static double tol(const problem *p)
{
    /* float32 accumulation over K terms of magnitude <= 1 (as test_gemm) */
    return 2e-6 * sqrt((double)(p->Cin * p->ks * p->ks)) + 1e-6;
}

START_TEST(blocked_matches_reference)
{
    px_gemm_kernels g;
    ck_assert_int_eq(px_gemm_kernels_for(PX_ISA_REF, &g), 0);
    for (int si = 0; si < NSHAPES; si++) {
        problem p;
        problem_make(&p, shapes[si], 10 + (uint64_t)si);
        float *want = malloc((size_t)p.ny * 4), *got = malloc((size_t)p.ny * 4);
        for (int d = 0; d < 3; d++)
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                const float *bias = with_bias ? p.b : NULL;
                px_tensor wt = weight(&p, d);
                const int ks = (int)p.ks;
                ck_assert_int_eq(px_conv2d_ref(want, p.x, &wt, bias, p.B, p.Cin, p.H, p.W, p.Cout, ks, 1, ks / 2), 0);
                memset(got, 0xff, (size_t)p.ny * 4);
                ck_assert_int_eq(px_conv2d_blocked(got, p.x, &wt, bias, p.B, p.Cin, p.H, p.W, p.Cout, ks, &g, 2), 0);
                char label[128];
                snprintf(label, sizeof label, "conv %s B%lld Cin%lld %lldx%lld Cout%lld k%d bias %d",
                         px_dtype_name(dtypes[d]), (long long)p.B, (long long)p.Cin, (long long)p.H, (long long)p.W,
                         (long long)p.Cout, ks, with_bias);
                assert_close(got, want, (size_t)p.ny, tol(&p), 1e-5, label);
            }
        free(want);
        free(got);
        problem_free(&p);
    }
}
END_TEST

/* Every column micro-panel (each pixel start, full and partial, each k0)
 * packed by each ISA's routine, at its panel width nr (16 or 32), equals the
 * scalar routine's at that width. The widths cover panels within one image
 * row (W = 16, 32, 40, 70; both edges masked at W = nr) and straddling rows. */
START_TEST(pack_conv_isas_bit_identical)
{
    enum { WMAX = 70, NRMAX = PX_GEMM_NR_MAX };
    const int64_t Cin = 3, H = 5, Ws[] = { 1, 7, 16, 17, 32, 40, WMAX };
    float *x = malloc((size_t)(Cin * H * WMAX) * 4);
    px_test_fill_uniform(x, (size_t)(Cin * H * WMAX), 3, -1, 1);
    float *want = px_malloc(NRMAX * 27 * 4 + 64, "test"), *got = px_malloc(NRMAX * 27 * 4 + 64, "test");
    float *wa = (float *)(((uintptr_t)want + 63) & ~(uintptr_t)63), *ga = (float *)(((uintptr_t)got + 63) & ~(uintptr_t)63);
    int tested = 0;
    for (int isa = 0; isa < PX_ISA_COUNT; isa++) {
        px_gemm_kernels g;
        if (px_gemm_kernels_for(isa, &g)) continue;
        tested++;
        const int nr = g.nr;
        for (size_t wi = 0; wi < sizeof Ws / sizeof Ws[0]; wi++)
            for (int ks = 1; ks <= 3; ks += 2) {
                const int64_t W = Ws[wi], N = H * W, K = Cin * ks * ks;
                for (int64_t n0 = 0; n0 < N; n0++)
                    for (int64_t k0 = 0; k0 < K; k0++) {
                        const int64_t cols = N - n0 < nr ? N - n0 : nr, kc = K - k0;
                        memset(wa, 0xff, (size_t)(nr * kc) * 4);
                        memset(ga, 0xee, (size_t)(nr * kc) * 4);
                        px_gemm_pack_conv_ref(wa, nr, x, H, W, ks, n0, cols, k0, kc);
                        g.pack_conv(ga, x, H, W, ks, n0, cols, k0, kc);
                        ck_assert_msg(memcmp(ga, wa, (size_t)(nr * kc) * 4) == 0,
                                      "%s pack_conv W %lld ks %d n0 %lld k0 %lld differs", px_isa_name((px_isa)isa),
                                      (long long)W, ks, (long long)n0, (long long)k0);
                    }
            }
    }
    ck_assert_int_ge(tested, 1);
    free(x);
    free(want);
    free(got);
}
END_TEST

/* Each ISA's kernels give the scalar kernels' bits for 1-3 threads. */
START_TEST(blocked_isas_and_threads_bit_identical)
{
    px_gemm_kernels ref;
    ck_assert_int_eq(px_gemm_kernels_for(PX_ISA_REF, &ref), 0);
    int tested = 0;
    for (int isa = 0; isa < PX_ISA_COUNT; isa++) {
        px_gemm_kernels g;
        if (px_gemm_kernels_for(isa, &g)) continue;
        tested++;
        for (int si = 0; si < NSHAPES; si++) {
            problem p;
            problem_make(&p, shapes[si], 40 + (uint64_t)si);
            float *want = malloc((size_t)p.ny * 4), *got = malloc((size_t)p.ny * 4);
            for (int d = 0; d < 3; d++)
                for (int with_bias = 0; with_bias < 2; with_bias++) {
                    const float *bias = with_bias ? p.b : NULL;
                    px_tensor wt = weight(&p, d);
                    const int ks = (int)p.ks;
                    ck_assert_int_eq(
                        px_conv2d_blocked(want, p.x, &wt, bias, p.B, p.Cin, p.H, p.W, p.Cout, ks, &ref, 1), 0);
                    for (int nt = 1; nt <= 3; nt++) {
                        memset(got, 0xff, (size_t)p.ny * 4);
                        ck_assert_int_eq(
                            px_conv2d_blocked(got, p.x, &wt, bias, p.B, p.Cin, p.H, p.W, p.Cout, ks, &g, nt), 0);
                        ck_assert_msg(memcmp(got, want, (size_t)p.ny * 4) == 0,
                                      "%s, %d threads, shape %d %s bias %d: not the scalar bits",
                                      px_isa_name((px_isa)isa), nt, si, px_dtype_name(dtypes[d]), with_bias);
                    }
                }
            free(want);
            free(got);
            problem_free(&p);
        }
    }
    ck_assert_int_ge(tested, 1);
}
END_TEST

/* px_conv2d on each path (its own choice, im2col + sgemm, blocked) stays
 * close to the reference and gives the same bits for 1 and 2 threads. */
START_TEST(conv2d_paths_threads_bit_identical)
{
    const int paths[] = { PX_GEMM_AUTO, PX_GEMM_CBLAS, PX_GEMM_BLOCKED };
    const int saved_threads = px_get_num_threads();
    /* big enough to run multi-threaded (> 2 MFLOP) with several units */
    const int64_t s[][6] = { { 1, 40, 23, 37, 30, 3 }, { 2, 64, 16, 32, 50, 1 } };
    for (size_t si = 0; si < sizeof s / sizeof s[0]; si++) {
        problem p;
        problem_make(&p, s[si], 70 + si);
        float *want = malloc((size_t)p.ny * 4), *y1 = malloc((size_t)p.ny * 4), *y2 = malloc((size_t)p.ny * 4);
        px_tensor wt = weight(&p, 1);
        const int ks = (int)p.ks;
        ck_assert_int_eq(px_conv2d_ref(want, p.x, &wt, p.b, p.B, p.Cin, p.H, p.W, p.Cout, ks, 1, ks / 2), 0);
        for (size_t pi = 0; pi < sizeof paths / sizeof paths[0]; pi++) {
            px_conv_path = paths[pi];
            px_set_num_threads(1);
            ck_assert_int_eq(px_conv2d(y1, p.x, &wt, p.b, p.B, p.Cin, p.H, p.W, p.Cout, ks, 1, ks / 2), 0);
            px_set_num_threads(2);
            ck_assert_int_eq(px_conv2d(y2, p.x, &wt, p.b, p.B, p.Cin, p.H, p.W, p.Cout, ks, 1, ks / 2), 0);
            ck_assert_msg(memcmp(y1, y2, (size_t)p.ny * 4) == 0, "conv2d path %d shape %zu: 1 vs 2 threads differ",
                          paths[pi], si);
            assert_close(y2, want, (size_t)p.ny, tol(&p), 1e-5, "px_conv2d, 2 threads");
            char label[64];
            snprintf(label, sizeof label, "px_conv2d path %d shape %zu", paths[pi], si);
            assert_close(y1, want, (size_t)p.ny, tol(&p), 1e-5, label);
        }
        px_conv_path = PX_GEMM_AUTO;
        px_set_num_threads(saved_threads);
        free(want);
        free(y1);
        free(y2);
        problem_free(&p);
    }
}
END_TEST

static Suite *conv_suite(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("blocked");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, blocked_matches_reference);
    tcase_add_test(tc, pack_conv_isas_bit_identical);
    tcase_add_test(tc, blocked_isas_and_threads_bit_identical);
    tcase_add_test(tc, conv2d_paths_threads_bit_identical);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(conv_suite()); }
