/* Operator tests: the scalar references against PyTorch's results
 * (data/core/ops_torch.safetensors, tools/gen_core_fixture.py), every SIMD
 * variant the host supports against the references, the fast attention and
 * convolution paths against theirs, and bit-identical results for 1 and 2
 * threads. */
#include "testutil.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/half.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static px_st_file *fx;

static void open_fixture(void) { fx = px_test_open(px_test_data("core/ops_torch.safetensors")); }
static void close_fixture(void) { px_st_close(fx); }

static float *get(const char *k, size_t *n) { return px_test_get_f32(fx, k, n); }

/* ---- references against torch ----------------------------------------- */

START_TEST(ref_activations_match_torch)
{
    px_kernels r;
    px_kernels_for(PX_ISA_REF, &r);
    size_t n;
    float *x = get("act/x", &n), *y = malloc(n * sizeof *y);
    struct { const char *key; void (*f)(float *, const float *, size_t); } cases[] = {
        { "act/gelu_tanh", r.gelu_tanh }, { "act/gelu_new", r.gelu_tanh },
        { "act/gelu_erf", r.gelu_erf },   { "act/silu", r.silu },
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        cases[c].f(y, x, n);
        /* float32 transcendental functions: a few ulp */
        px_test_check_ref(fx, cases[c].key, y, n, 1e-6, 1e-6);
    }
    free(x);
    free(y);
}
END_TEST

START_TEST(ref_norms_match_torch)
{
    px_kernels r;
    px_kernels_for(PX_ISA_REF, &r);
    size_t n, nw;
    float *x = get("layernorm/x", &n), *w = get("layernorm/w", &nw), *b = get("layernorm/b", &nw);
    float *y = malloc(n * sizeof *y);
    for (size_t i = 0; i < n / nw; i++) r.layernorm(y + i * nw, x + i * nw, w, b, nw, 1e-6f);
    px_test_check_ref(fx, "layernorm/y_affine", y, n, 1e-6, 1e-6);
    for (size_t i = 0; i < n / nw; i++) r.layernorm(y + i * nw, x + i * nw, NULL, NULL, nw, 1e-6f);
    px_test_check_ref(fx, "layernorm/y_plain", y, n, 1e-6, 1e-6);
    for (size_t i = 0; i < n / nw; i++) r.rmsnorm(y + i * nw, x + i * nw, w, nw, 1e-6f);
    px_test_check_ref(fx, "rmsnorm/y", y, n, 1e-6, 1e-6);
    free(x); free(w); free(b); free(y);

    float *s = get("softmax/x", &n);
    for (size_t i = 0; i < n / 29; i++) r.softmax(s + i * 29, 29);
    px_test_check_ref(fx, "softmax/y", s, n, 1e-7, 1e-6);
    free(s);

    size_t ng;
    float *gx = get("groupnorm/x", &n), *gw = get("groupnorm/w", &ng), *gb = get("groupnorm/b", &ng);
    float *gy = malloc(n * sizeof *gy);
    px_groupnorm(gy, gx, gw, gb, 2, 8, 15, 4, 1e-6f);
    px_test_check_ref(fx, "groupnorm/y", gy, n, 1e-6, 1e-6);
    free(gx); free(gw); free(gb); free(gy);
}
END_TEST

START_TEST(conv_and_upsample_match_torch)
{
    size_t n, nb;
    float *x = get("conv/x", &n), *b = get("conv/b", &nb);
    const char *wk[] = { "conv/w3", "conv/w1", "conv/w2" }, *yk[] = { "conv/y3", "conv/y1", "conv/y2" };
    int ks[] = { 3, 1, 2 }, ss[] = { 1, 1, 2 }, ps[] = { 1, 0, 0 };
    for (int c = 0; c < 3; c++) {
        const px_tensor *w = px_st_find(fx, wk[c]);
        int64_t H = c == 2 ? 6 : 7, W = 6;
        float *xin = x;
        float *xc = NULL;
        if (c == 2) { /* the fixture used x[:, :, :6, :] */
            xc = malloc(2 * 3 * 6 * 6 * sizeof *xc);
            for (int i = 0; i < 6; i++)
                for (int bc = 0; bc < 6; bc++) memcpy(xc + (bc * 6 + i) * 6, x + (bc * 7 + i) * 6, 6 * 4);
            xin = xc;
        }
        int64_t Ho = (H + 2 * ps[c] - ks[c]) / ss[c] + 1, Wo = (W + 2 * ps[c] - ks[c]) / ss[c] + 1;
        size_t no = (size_t)(2 * 5 * Ho * Wo);
        float *y = malloc(no * sizeof *y), *yr = malloc(no * sizeof *yr);
        ck_assert_int_eq(px_conv2d_ref(yr, xin, w, b, 2, 3, H, W, 5, ks[c], ss[c], ps[c]), 0);
        px_test_check_ref(fx, yk[c], yr, no, 1e-5, 1e-5);
        ck_assert_int_eq(px_conv2d(y, xin, w, b, 2, 3, H, W, 5, ks[c], ss[c], ps[c]), 0);
        px_test_check_ref(fx, yk[c], y, no, 1e-5, 1e-5);
        free(y); free(yr); free(xc);
    }
    float *u = malloc(2 * 3 * 14 * 12 * sizeof *u);
    px_upsample_nearest2x(u, x, 2, 3, 7, 6);
    px_test_check_ref(fx, "upsample/y", u, 2 * 3 * 14 * 12, 0, 0);
    free(u); free(x); free(b);
}
END_TEST

START_TEST(attention_matches_torch)
{
    size_t n;
    float *q = get("attn/q", &n), *k = get("attn/k", &n), *v = get("attn/v", &n), *kb = get("attn/key_bias", &n);
    px_attn_args a = { .B = 2, .Nq = 19, .Nk = 23, .H = 3, .D = 8, .scale = 1.0f / sqrtf(8.0f), .key_bias = kb };
    size_t no = 2 * 19 * 24;
    float *o = malloc(no * sizeof *o);
    ck_assert_int_eq(px_attention_ref(o, q, k, v, &a), 0);
    px_test_check_ref(fx, "attn/out", o, no, 1e-6, 1e-5);
    ck_assert_int_eq(px_attention(o, q, k, v, &a), 0);
    px_test_check_ref(fx, "attn/out", o, no, 1e-6, 1e-5);
    free(q); free(k); free(v); free(kb); free(o);
}
END_TEST

/* ---- SIMD variants against the reference ------------------------------ */

static const size_t sizes[] = { 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 63, 64, 65, 100, 1000, 1152, 4099 };

START_TEST(simd_kernels_match_reference)
{
    px_kernels r;
    px_kernels_for(PX_ISA_REF, &r);
    int tested = 0;
    for (int isa = PX_ISA_REF + 1; isa < PX_ISA_COUNT; isa++) {
        px_kernels s;
        if (px_kernels_for((px_isa)isa, &s)) continue;
        tested++;
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            float *x = malloc(n * 4), *a = malloc(n * 4), *b = malloc(n * 4), *w = malloc(n * 4);
            float *y1 = malloc(n * 4), *y2 = malloc(n * 4);
            uint16_t *h = malloc(n * 2);
            px_test_fill_uniform(x, n, n, -8, 8);
            px_test_fill_uniform(a, n, n + 1, -2, 2);
            px_test_fill_uniform(b, n, n + 2, -2, 2);
            px_test_fill_uniform(w, n, n + 3, 0.5f, 1.5f);
            char label[64];
#define CMP1(field, atol, rtol)                                                   \
    r.field(y1, x, n);                                                            \
    s.field(y2, x, n);                                                            \
    snprintf(label, sizeof label, "%s %s n=%zu", px_isa_name(isa), #field, n);    \
    assert_close(y2, y1, n, atol, rtol, label);
            CMP1(gelu_tanh, 1e-6, 1e-6)
            CMP1(gelu_erf, 1e-6, 1e-6)
            CMP1(silu, 1e-7, 1e-6)
#define CMP2(field)                                                               \
    r.field(y1, a, b, n);                                                         \
    s.field(y2, a, b, n);                                                         \
    snprintf(label, sizeof label, "%s %s n=%zu", px_isa_name(isa), #field, n);    \
    assert_close(y2, y1, n, 0, 0, label);
            CMP2(add)
            CMP2(mul)
            r.modulate(y1, x, a, b, n);
            s.modulate(y2, x, a, b, n);
            snprintf(label, sizeof label, "%s modulate n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 1e-6, 1e-6, label);
            r.layernorm(y1, x, w, a, n, 1e-6f);
            s.layernorm(y2, x, w, a, n, 1e-6f);
            snprintf(label, sizeof label, "%s layernorm n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 1e-5, 1e-5, label);
            r.layernorm(y1, x, NULL, NULL, n, 1e-6f);
            s.layernorm(y2, x, NULL, NULL, n, 1e-6f);
            assert_close(y2, y1, n, 1e-5, 1e-5, label);
            r.rmsnorm(y1, x, w, n, 1e-6f);
            s.rmsnorm(y2, x, w, n, 1e-6f);
            snprintf(label, sizeof label, "%s rmsnorm n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 1e-6, 1e-5, label);
            memcpy(y1, x, n * 4);
            memcpy(y2, x, n * 4);
            r.softmax(y1, n);
            s.softmax(y2, n);
            snprintf(label, sizeof label, "%s softmax n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 1e-7, 1e-5, label);
            for (size_t i = 0; i < n; i++) h[i] = (uint16_t)(i * 2654435761u >> 7);
            r.bf16_to_f32(y1, h, n);
            s.bf16_to_f32(y2, h, n);
            ck_assert(memcmp(y1, y2, n * 4) == 0);
            r.f16_to_f32(y1, h, n);
            s.f16_to_f32(y2, h, n);
            ck_assert(memcmp(y1, y2, n * 4) == 0);
            /* row reductions (attention softmax, GroupNorm) */
            snprintf(label, sizeof label, "%s max n=%zu", px_isa_name(isa), n);
            ck_assert_msg(r.max(x, n) == s.max(x, n), "%s", label);
            float c = r.max(x, n), s1 = r.exp_sum(y1, x, c, n), s2 = s.exp_sum(y2, x, c, n);
            snprintf(label, sizeof label, "%s exp_sum n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 1e-30, 4e-7, label); /* exp to a few ulp */
            assert_close(&s2, &s1, 1, 0, 1e-5, label);   /* summation order differs */
            px_kernels x2;
            if (isa == PX_ISA_AVX512 && !px_kernels_for(PX_ISA_AVX2, &x2)) {
                /* both sum in one order, independent of the vector width
                 * (simd_avx2.c exp_sum): the same bits */
                float *y3 = malloc(n * 4), s3 = x2.exp_sum(y3, x, c, n);
                ck_assert_msg(memcmp(y3, y2, n * 4) == 0 && memcmp(&s3, &s2, 4) == 0,
                              "%s: sum %.9g, avx2 %.9g", label, s2, s3);
                free(y3);
            }
            double d1 = r.sum(x, n), d2 = s.sum(x, n);
            ck_assert_msg(fabs(d1 - d2) <= 1e-12 * n * 8, "%s sum n=%zu: %.17g vs %.17g", px_isa_name(isa), n, d2, d1);
            d1 = r.sumsq_dev(x, 0.25, n);
            d2 = s.sumsq_dev(x, 0.25, n);
            ck_assert_msg(fabs(d1 - d2) <= 1e-12 * d1, "%s sumsq_dev n=%zu: %.17g vs %.17g", px_isa_name(isa), n, d2, d1);
            r.norm_affine(y1, x, 0.3f, 1.7f, -0.8f, 0.1f, n);
            s.norm_affine(y2, x, 0.3f, 1.7f, -0.8f, 0.1f, n);
            snprintf(label, sizeof label, "%s norm_affine n=%zu", px_isa_name(isa), n);
            assert_close(y2, y1, n, 0, 0, label);
            free(x); free(a); free(b); free(w); free(y1); free(y2); free(h);
        }
    }
    fprintf(stderr, "simd_kernels_match_reference: %d SIMD variant(s) tested on this CPU\n", tested);
}
END_TEST

/* The attention micro-kernels of every SIMD variant against the reference
 * ones. Both accumulate dot products in float in the same order, the SIMD
 * ones with fused multiply-adds, so each result may differ from the
 * reference by at most 2 gamma_n sum |terms| (the recursive-summation error
 * bound of either, gamma_n = n u / (1 - n u), u = 2^-24). */
static void check_within_sum_bound(const float *got, const float *want, const double *abs_sum, size_t n, size_t terms,
                                   const char *label)
{
    const double u = 0x1p-24, gamma = terms * u / (1 - terms * u);
    for (size_t i = 0; i < n; i++) {
        double bound = 2 * gamma * abs_sum[i] + 1e-30;
        ck_assert_msg(fabs((double)got[i] - want[i]) <= bound, "%s [%zu]: %.9g vs %.9g (bound %.3g)", label, i,
                      got[i], want[i], bound);
    }
}

/* K (n keys x dk, row-major) as ceil(n / kp) K^T panels of dk x kp, keys
 * zero-padded: the layout attn_qk reads */
static float *pack_k_panels(const float *K, size_t n, size_t dk, size_t kp, size_t *np)
{
    *np = (n + kp - 1) / kp;
    float *Kp = calloc(*np * dk * kp, 4);
    for (size_t j = 0; j < n; j++)
        for (size_t d = 0; d < dk; d++) Kp[(j / kp) * dk * kp + d * kp + j % kp] = K[j * dk + d];
    return Kp;
}

/* V (n keys x D, row-major) as dv / vp column panels of n rows x vp (dv = D
 * rounded up to vp, columns zero-padded), panel stride n vp: the layout
 * attn_pv reads */
static float *pack_v_panels(const float *Vl, size_t n, size_t D, size_t vp, size_t *dv)
{
    *dv = (D + vp - 1) / vp * vp;
    float *Vp = calloc(*dv * n, 4);
    for (size_t j = 0; j < n; j++)
        for (size_t d = 0; d < D; d++) Vp[(d / vp) * n * vp + j * vp + d % vp] = Vl[j * D + d];
    return Vp;
}

/* S (4 x n keys) = scale Q K^T through table t's attn_qk and packing */
static void run_qk(float *S, const px_kernels *t, const float *Q, const float *K, size_t n, size_t dk, float scale)
{
    size_t np;
    float *Kp = pack_k_panels(K, n, dk, t->attn_kp, &np);
    const size_t lds = np * t->attn_kp + 3;
    float *Sp = malloc(4 * lds * 4);
    t->attn_qk(Sp, lds, Q, Kp, dk, np, scale);
    for (size_t r = 0; r < 4; r++) memcpy(S + r * n, Sp + r * lds, n * 4);
    free(Kp);
    free(Sp);
}

/* O (4 x D) = O alpha + P V (P: 4 x nk, stride ldp) through table t's
 * attn_pv and packing */
static void run_pv(float *O, const px_kernels *t, const float *alpha, const float *P, size_t ldp, const float *Vl,
                   size_t nk, size_t D)
{
    size_t dv;
    float *Vp = pack_v_panels(Vl, nk, D, t->attn_vp, &dv);
    float *Op = calloc(4 * dv, 4);
    for (size_t r = 0; r < 4; r++) memcpy(Op + r * dv, O + r * D, D * 4);
    t->attn_pv(Op, alpha, P, ldp, Vp, nk * t->attn_vp, nk, dv);
    for (size_t r = 0; r < 4; r++) memcpy(O + r * D, Op + r * dv, D * 4);
    free(Vp);
    free(Op);
}

/* Every SIMD variant on its own packing layout against the reference on its
 * own: within the bound above. Every SIMD variant computes each element as
 * the same chain of fused multiply-adds in the same order (increasing d in
 * qk; O alpha, then increasing j in pv), whatever its vector width and panel
 * widths, so all of them must also give the same bits (on x86: AVX2 and
 * AVX-512). Head sizes: 12, 19 (odd), 64 (T5), 72 (PixArt), 144; key counts
 * that fill panels and tiles exactly or not. */
START_TEST(simd_attention_kernels_match_reference)
{
    const size_t dks[] = { 12, 19, 64, 72, 144 }, nss[] = { 5, 64, 200, 384 }, nks[] = { 1, 5, 24, 100, 384 };
    const size_t ldp = 400;
    px_kernels r, tabs[PX_ISA_COUNT];
    px_isa isas[PX_ISA_COUNT];
    px_kernels_for(PX_ISA_REF, &r);
    int ns = 0;
    for (int isa = PX_ISA_REF + 1; isa < PX_ISA_COUNT; isa++)
        if (!px_kernels_for((px_isa)isa, &tabs[ns])) isas[ns++] = (px_isa)isa;
    char label[96];
    for (size_t di = 0; di < sizeof dks / sizeof dks[0]; di++) {
        const size_t dk = dks[di];
        for (size_t si = 0; si < sizeof nss / sizeof nss[0]; si++) {
            const size_t n = nss[si];
            float *Q = malloc(4 * dk * 4), *K = malloc(n * dk * 4);
            float *S1 = malloc(4 * n * 4), *S2 = malloc(4 * n * 4), *S0 = malloc(4 * n * 4);
            double *bound = malloc(4 * n * sizeof *bound);
            px_test_fill_uniform(Q, 4 * dk, dk + n, -1, 1);
            px_test_fill_uniform(K, n * dk, dk * n + 7, -1, 1);
            const float scale = 0.125f; /* a power of two: scaling is exact */
            run_qk(S1, &r, Q, K, n, dk, scale);
            for (size_t i = 0; i < 4; i++)
                for (size_t j = 0; j < n; j++) {
                    double a = 0;
                    for (size_t d = 0; d < dk; d++) a += fabs((double)Q[i * dk + d] * K[j * dk + d]);
                    bound[i * n + j] = a * scale;
                }
            for (int t = 0; t < ns; t++) {
                run_qk(S2, &tabs[t], Q, K, n, dk, scale);
                snprintf(label, sizeof label, "%s attn_qk dk=%zu n=%zu", px_isa_name(isas[t]), dk, n);
                check_within_sum_bound(S2, S1, bound, 4 * n, dk, label);
                if (t == 0) memcpy(S0, S2, 4 * n * 4);
                else ck_assert_msg(memcmp(S2, S0, 4 * n * 4) == 0, "%s: not the bits of %s", label,
                                   px_isa_name(isas[0]));
            }
            free(Q); free(K); free(S1); free(S2); free(S0); free(bound);
        }
        for (size_t ki = 0; ki < sizeof nks / sizeof nks[0]; ki++) {
            const size_t nk = nks[ki];
            float *P = malloc(4 * ldp * 4), *Vl = malloc(nk * dk * 4);
            float *O = malloc(4 * dk * 4), *O1 = malloc(4 * dk * 4), *O2 = malloc(4 * dk * 4), *O0 = malloc(4 * dk * 4);
            double *bound = malloc(4 * dk * sizeof *bound);
            const float alpha[4] = { 1.0f, 0.5f, 0.0f, 0.3f };
            px_test_fill_uniform(P, 4 * ldp, nk + dk, 0, 1);
            px_test_fill_uniform(Vl, nk * dk, nk * dk + 1, -1, 1);
            px_test_fill_uniform(O, 4 * dk, nk + 3, -4, 4);
            for (size_t i = 0; i < 4; i++)
                for (size_t d = 0; d < dk; d++) {
                    double a = fabs((double)O[i * dk + d] * alpha[i]);
                    for (size_t j = 0; j < nk; j++) a += fabs((double)P[i * ldp + j] * Vl[j * dk + d]);
                    bound[i * dk + d] = a;
                }
            memcpy(O1, O, 4 * dk * 4);
            run_pv(O1, &r, alpha, P, ldp, Vl, nk, dk);
            for (int t = 0; t < ns; t++) {
                memcpy(O2, O, 4 * dk * 4);
                run_pv(O2, &tabs[t], alpha, P, ldp, Vl, nk, dk);
                snprintf(label, sizeof label, "%s attn_pv D=%zu nk=%zu", px_isa_name(isas[t]), dk, nk);
                check_within_sum_bound(O2, O1, bound, 4 * dk, nk + 1, label);
                if (t == 0) memcpy(O0, O2, 4 * dk * 4);
                else ck_assert_msg(memcmp(O2, O0, 4 * dk * 4) == 0, "%s: not the bits of %s", label,
                                   px_isa_name(isas[0]));
            }
            free(P); free(Vl); free(O); free(O1); free(O2); free(O0); free(bound);
        }
    }
    fprintf(stderr, "simd_attention_kernels_match_reference: %d SIMD variant(s) tested on this CPU\n", ns);
}
END_TEST

/* Inputs at the edges of the exp/tanh/erf approximations: the overflow and
 * subnormal ranges, the branch points, infinities and NaN. Equal when both are
 * NaN, bitwise equal (infinities, signed zeros), or within atol + rtol |want|. */
static int close_or_same(float g, float w, double atol, double rtol)
{
    if (isnan(g) || isnan(w)) return isnan(g) && isnan(w);
    if (memcmp(&g, &w, 4) == 0) return 1;
    return !isinf(g) && !isinf(w) && fabs((double)g - w) <= atol + rtol * fabs((double)w);
}

START_TEST(simd_kernels_extreme_inputs)
{
    const float special[] = { 0.0f, -0.0f, 1e-40f, -1e-40f, 1e-20f, 0.5f, 0.6249f, 0.625f, 0.6251f,
                              0.99f, 1.0f, 1.01f, 1.4142f, 3.9f, 4.0f, 5.5f, 9.0f, 10.0f, 20.0f,
                              -20.0f, 44.0f, -44.0f, 80.0f, -80.0f, 87.0f, -87.0f, 88.5f, -88.5f,
                              88.8f, -88.8f, 89.5f, -89.5f, 100.0f, -100.0f, 103.0f, -103.0f,
                              110.0f, -110.0f, 1e30f, -1e30f, INFINITY, -INFINITY, NAN, -3.0f, 2.5f };
    const size_t n = sizeof special / sizeof special[0];
    float x[64], y1[64], y2[64];
    memcpy(x, special, sizeof special);
    px_kernels r;
    px_kernels_for(PX_ISA_REF, &r);
    int tested = 0;
    for (int isa = PX_ISA_REF + 1; isa < PX_ISA_COUNT; isa++) {
        px_kernels s;
        if (px_kernels_for((px_isa)isa, &s)) continue;
        tested++;
        struct { const char *name; void (*fr)(float *, const float *, size_t), (*fs)(float *, const float *, size_t); } f[] = {
            { "gelu_tanh", r.gelu_tanh, s.gelu_tanh }, { "gelu_erf", r.gelu_erf, s.gelu_erf }, { "silu", r.silu, s.silu },
        };
        for (size_t k = 0; k < 3; k++) {
            f[k].fr(y1, x, n);
            f[k].fs(y2, x, n);
            for (size_t i = 0; i < n; i++)
                ck_assert_msg(close_or_same(y2[i], y1[i], 1e-6, 1e-5), "%s %s(%g): got %.9g want %.9g",
                              px_isa_name(isa), f[k].name, x[i], y2[i], y1[i]);
        }
        /* exp(x - 0): 0 below the subnormal range, +inf above 88.72 */
        r.exp_sum(y1, x, 0.0f, n);
        s.exp_sum(y2, x, 0.0f, n);
        for (size_t i = 0; i < n; i++)
            ck_assert_msg(close_or_same(y2[i], y1[i], 1e-37, 4e-7), "%s exp(%g): got %.9g want %.9g",
                          px_isa_name(isa), x[i], y2[i], y1[i]);
        ck_assert(s.max(x, n) == INFINITY);
    }
    /* AVX2 and AVX-512 evaluate the same polynomials in the same order
     * (simd_avx512.c; exp16 scales by 2^n in one correctly rounded vscalefps
     * where exp8 uses two exact factors): the same bits everywhere, from
     * exp's underflow to its overflow, including the subnormal results */
    px_kernels a2, a5;
    if (!px_kernels_for(PX_ISA_AVX2, &a2) && !px_kernels_for(PX_ISA_AVX512, &a5)) {
        enum { NS = 1 << 16 };
        float *xs = malloc(NS * 4), *z2 = malloc(NS * 4), *z5 = malloc(NS * 4);
        for (size_t i = 0; i < NS; i++) xs[i] = -120.0f + 210.0f * (float)i / NS;
        memcpy(xs, special, sizeof special);
        struct { const char *name; void (*f2)(float *, const float *, size_t), (*f5)(float *, const float *, size_t); } g[] = {
            { "gelu_tanh", a2.gelu_tanh, a5.gelu_tanh }, { "gelu_erf", a2.gelu_erf, a5.gelu_erf }, { "silu", a2.silu, a5.silu },
            { "exp", NULL, NULL },
        };
        for (size_t k = 0; k < 4; k++) {
            if (g[k].f2) {
                g[k].f2(z2, xs, NS);
                g[k].f5(z5, xs, NS);
            } else {
                a2.exp_sum(z2, xs, 0.0f, NS);
                a5.exp_sum(z5, xs, 0.0f, NS);
            }
            for (size_t i = 0; i < NS; i++)
                ck_assert_msg(memcmp(&z2[i], &z5[i], 4) == 0 || (isnan(z2[i]) && isnan(z5[i])),
                              "avx512 %s(%g): %.9g, avx2 %.9g", g[k].name, xs[i], z5[i], z2[i]);
        }
        free(xs); free(z2); free(z5);
    }
    fprintf(stderr, "simd_kernels_extreme_inputs: %d SIMD variant(s) tested on this CPU\n", tested);
}
END_TEST

/* ---- GEMM -------------------------------------------------------------- */

START_TEST(linear_all_weight_dtypes)
{
    /* {3, 700, 1000}: matrix-vector path, several widened pieces per N tile */
    const int64_t shapes[][3] = { { 1, 1, 1 }, { 5, 7, 3 }, { 17, 33, 65 }, { 3, 700, 1000 }, { 64, 600, 1000 } };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(M * K * 4), *w = malloc(N * K * 4), *b = malloc(N * 4);
        float *want = malloc(M * N * 4), *got = malloc(M * N * 4), *wr = malloc(N * K * 4);
        uint16_t *wh = malloc(N * K * 2);
        px_test_fill_uniform(x, M * K, 11, -1, 1);
        px_test_fill_uniform(w, N * K, 12, -1, 1);
        px_test_fill_uniform(b, N, 13, -1, 1);
        for (int dt = 0; dt < 3; dt++) {
            px_dtype d = dt == 0 ? PX_F32 : dt == 1 ? PX_BF16 : PX_F16;
            void *wd = w;
            if (d != PX_F32) {
                px_convert_from_f32(wh, d, w, N * K);
                px_convert_to_f32(wr, wh, d, N * K);
                wd = wh;
            } else {
                memcpy(wr, w, N * K * 4);
            }
            px_tensor wt = px_tensor_view(d, wd, 2, (int64_t[]){ N, K });
            for (int with_bias = 0; with_bias < 2; with_bias++) {
                px_test_linear_double(want, x, wr, with_bias ? b : NULL, M, N, K);
                ck_assert_int_eq(px_linear(got, x, &wt, with_bias ? b : NULL, M), 0);
                char label[64];
                snprintf(label, sizeof label, "linear %s %lldx%lldx%lld", px_dtype_name(d), (long long)M,
                         (long long)N, (long long)K);
                /* float32 accumulation over K terms of magnitude <= 1 */
                assert_close(got, want, M * N, 2e-6 * sqrt((double)K) + 1e-6, 1e-5, label);
            }
        }
        free(x); free(w); free(b); free(want); free(got); free(wr); free(wh);
    }
}
END_TEST

/* ---- fast paths against references at larger sizes --------------------- */

/* Attention inputs (q, k, v: B x N x H x D; key_bias: B x Nk with every 7th
 * key masked; score_bias: H x Nq x Nk) */
typedef struct {
    px_attn_args a;
    float *q, *k, *v, *kb, *sb;
} attn_case;

static attn_case attn_case_make(int64_t B, int64_t H, int64_t D, int64_t Nq, int64_t Nk)
{
    attn_case c = { .a = { .B = B, .Nq = Nq, .Nk = Nk, .H = H, .D = D, .scale = 0.3f } };
    c.q = malloc(B * Nq * H * D * 4);
    c.k = malloc(B * Nk * H * D * 4);
    c.v = malloc(B * Nk * H * D * 4);
    c.kb = malloc(B * Nk * 4);
    c.sb = malloc(H * Nq * Nk * 4);
    px_test_fill_uniform(c.q, B * Nq * H * D, 1, -2, 2);
    px_test_fill_uniform(c.k, B * Nk * H * D, 2, -2, 2);
    px_test_fill_uniform(c.v, B * Nk * H * D, 3, -1, 1);
    px_test_fill_uniform(c.sb, H * Nq * Nk, 4, -1, 1);
    for (int64_t i = 0; i < B * Nk; i++) c.kb[i] = (i % 7 == 3) ? -10000.0f : 0.0f;
    c.a.key_bias = c.kb;
    c.a.score_bias = c.sb;
    return c;
}

static void attn_case_free(attn_case *c)
{
    free(c->q); free(c->k); free(c->v); free(c->kb); free(c->sb);
}

START_TEST(attention_tiled_matches_reference)
{
    /* sizes that cross the query-block, 4-row strip, key-panel and key-tile
     * boundaries, with both biases; head sizes 12 (padded), 64 (T5) and 72
     * (PixArt); on every kernel table this CPU runs (each with its own
     * packing layout) */
    const int64_t Ds[] = { 12, 64, 72 }, Nqs[] = { 600, 67, 130 }, Nks[] = { 1100, 120, 409 };
    const int64_t D = Ds[_i], Nq = Nqs[_i], Nk = Nks[_i], B = 2, H = 2;
    attn_case c = attn_case_make(B, H, D, Nq, Nk);
    float *o1 = malloc(B * Nq * H * D * 4), *o2 = malloc(B * Nq * H * D * 4);
    ck_assert_int_eq(px_attention_ref(o1, c.q, c.k, c.v, &c.a), 0);
    const px_isa active = px_ops_isa();
    for (int isa = PX_ISA_REF; isa < PX_ISA_COUNT; isa++) {
        if (px_ops_select((px_isa)isa)) continue;
        memset(o2, 0, B * Nq * H * D * 4);
        ck_assert_int_eq(px_attention(o2, c.q, c.k, c.v, &c.a), 0);
        char label[64];
        snprintf(label, sizeof label, "%s tiled attention D=%lld", px_isa_name((px_isa)isa), (long long)D);
        assert_close(o2, o1, B * Nq * H * D, 2e-6, 1e-5, label);
    }
    px_ops_select(active);
    attn_case_free(&c);
    free(o1); free(o2);
}
END_TEST

/* px_attention gives the same bits on every SIMD variant this CPU runs (on
 * x86: AVX2 and AVX-512, whose micro-kernels and softmax sum in the same
 * order) and for 1 and 2 threads; D = 64 has one head of 600 query rows,
 * which is split over several work items (3 blocks of 256). */
START_TEST(attention_simd_variants_bit_identical)
{
    const int64_t Ds[] = { 12, 64, 72 }, Nqs[] = { 77, 600, 130 }, Nks[] = { 1, 409, 777 }, Hs[] = { 3, 1, 2 };
    const int64_t D = Ds[_i], Nq = Nqs[_i], Nk = Nks[_i], B = 2, H = Hs[_i];
    const size_t no = (size_t)(B * Nq * H * D);
    attn_case c = attn_case_make(B, H, D, Nq, Nk);
    float *o0 = malloc(no * 4), *o = malloc(no * 4);
    const px_isa active = px_ops_isa();
    const int threads = px_get_num_threads();
    int runs = 0;
    for (int isa = PX_ISA_REF + 1; isa < PX_ISA_COUNT; isa++) {
        if (px_ops_select((px_isa)isa)) continue;
        for (int t = 1; t <= 2; t++) {
            px_set_num_threads(t);
            ck_assert_int_eq(px_attention(runs ? o : o0, c.q, c.k, c.v, &c.a), 0);
            ck_assert_msg(!runs || memcmp(o, o0, no * 4) == 0, "D=%lld: %s on %d thread(s) differs from the first run",
                          (long long)D, px_isa_name((px_isa)isa), t);
            runs++;
        }
    }
    px_set_num_threads(threads);
    px_ops_select(active);
    fprintf(stderr, "attention_simd_variants_bit_identical D=%lld: %d runs compared\n", (long long)D, runs);
    attn_case_free(&c);
    free(o0); free(o);
}
END_TEST

START_TEST(conv_im2col_matches_reference)
{
    const int64_t B = 1, Cin = 9, H = 21, W = 17, Cout = 6;
    float *x = malloc(B * Cin * H * W * 4), *w = malloc(Cout * Cin * 9 * 4), *b = malloc(Cout * 4);
    float *y1 = malloc(B * Cout * H * W * 4), *y2 = malloc(B * Cout * H * W * 4);
    uint16_t *wh = malloc(Cout * Cin * 9 * 2);
    px_test_fill_uniform(x, B * Cin * H * W, 5, -1, 1);
    px_test_fill_uniform(w, Cout * Cin * 9, 6, -1, 1);
    px_test_fill_uniform(b, Cout, 7, -1, 1);
    px_convert_from_f32(wh, PX_BF16, w, Cout * Cin * 9);
    px_tensor wt = px_tensor_view(PX_BF16, wh, 4, (int64_t[]){ Cout, Cin, 3, 3 });
    ck_assert_int_eq(px_conv2d_ref(y1, x, &wt, b, B, Cin, H, W, Cout, 3, 1, 1), 0);
    ck_assert_int_eq(px_conv2d(y2, x, &wt, b, B, Cin, H, W, Cout, 3, 1, 1), 0);
    assert_close(y2, y1, B * Cout * H * W, 1e-5, 1e-5, "conv3x3 bf16 weights");
    free(x); free(w); free(b); free(y1); free(y2); free(wh);
}
END_TEST

START_TEST(threads_bit_identical)
{
    const int64_t M = 300, N = 260, K = 190;
    float *x = malloc(M * K * 4), *w = malloc(N * K * 4), *b = malloc(N * 4);
    float *y[2], *ln[2], *at[2];
    px_test_fill_uniform(x, M * K, 21, -1, 1);
    px_test_fill_uniform(w, N * K, 22, -1, 1);
    px_test_fill_uniform(b, N, 23, -1, 1);
    uint16_t *wh = malloc(N * K * 2);
    px_convert_from_f32(wh, PX_BF16, w, N * K);
    px_tensor wt = px_tensor_view(PX_BF16, wh, 2, (int64_t[]){ N, K });
    px_attn_args a = { .B = 1, .Nq = M, .Nk = M, .H = 10, .D = 19, .scale = 0.2f };
    /* one head: the query rows are split over several work items */
    px_attn_args a1 = { .B = 1, .Nq = M, .Nk = M, .H = 1, .D = 72, .scale = 0.2f, .q_stride = K, .k_stride = K, .v_stride = K, .o_stride = K };
    float *a1o[2];
    for (int t = 0; t < 2; t++) {
        px_set_num_threads(t + 1);
        y[t] = malloc(M * N * 4);
        ln[t] = malloc(M * N * 4);
        at[t] = malloc(M * K * 4);
        ck_assert_int_eq(px_linear(y[t], x, &wt, b, M), 0);
        px_layernorm(ln[t], y[t], NULL, NULL, M, N, 1e-6f);
        px_gelu_tanh(ln[t], ln[t], M * N);
        ck_assert_int_eq(px_attention(at[t], x, x, x, &a), 0);
        a1o[t] = calloc(M * K, 4);
        ck_assert_int_eq(px_attention(a1o[t], x, x + 72, x + 100, &a1), 0);
    }
    ck_assert(memcmp(a1o[0], a1o[1], M * K * 4) == 0);
    free(a1o[0]); free(a1o[1]);
    ck_assert(memcmp(y[0], y[1], M * N * 4) == 0);
    ck_assert(memcmp(ln[0], ln[1], M * N * 4) == 0);
    ck_assert(memcmp(at[0], at[1], M * K * 4) == 0);
    for (int t = 0; t < 2; t++) { free(y[t]); free(ln[t]); free(at[t]); }
    free(x); free(w); free(b); free(wh);
}
END_TEST

/* px_malloc_huge: small blocks as px_malloc, large ones 2 MiB-aligned and
 * whole (every byte writable: ASan checks the rounding), freed by free(). */
START_TEST(malloc_huge_blocks)
{
    const size_t sizes[] = { 1, 4096, PX_HUGE_BYTES - 1, PX_HUGE_BYTES, PX_HUGE_BYTES + 1, 3 * PX_HUGE_BYTES + 12345 };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = px_malloc_huge(sizes[i], "test block");
        ck_assert_ptr_nonnull(p);
        if (sizes[i] >= PX_HUGE_BYTES) ck_assert_uint_eq((uintptr_t)p % PX_HUGE_BYTES, 0);
        memset(p, 0xa5, sizes[i]);
        ck_assert_uint_eq(p[sizes[i] - 1], 0xa5);
        free(p);
    }
    /* an impossible size fails with a message naming the buffer */
    ck_assert_ptr_null(px_malloc_huge(SIZE_MAX - 5, "test block"));
    ck_assert(strstr(px_last_error(), "test block") != NULL);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("ops");
    TCase *tc = tcase_create("ops");
    tcase_set_timeout(tc, 120);
    tcase_add_unchecked_fixture(tc, open_fixture, close_fixture);
    tcase_add_test(tc, ref_activations_match_torch);
    tcase_add_test(tc, ref_norms_match_torch);
    tcase_add_test(tc, conv_and_upsample_match_torch);
    tcase_add_test(tc, attention_matches_torch);
    tcase_add_test(tc, linear_all_weight_dtypes);
    tcase_add_loop_test(tc, attention_tiled_matches_reference, 0, 3);
    tcase_add_loop_test(tc, attention_simd_variants_bit_identical, 0, 3);
    tcase_add_test(tc, conv_im2col_matches_reference);
    tcase_add_test(tc, threads_bit_identical);
    tcase_add_test(tc, malloc_huge_blocks);
    suite_add_tcase(s, tc);
    /* its own case so that CK_RUN_CASE=simd runs only the kernel comparisons
     * (tools/check-neon-build.sh under qemu) */
    TCase *simd = tcase_create("simd");
    tcase_set_timeout(simd, 120);
    tcase_add_test(simd, simd_kernels_match_reference);
    tcase_add_test(simd, simd_kernels_extreme_inputs);
    tcase_add_test(simd, simd_attention_kernels_match_reference);
    suite_add_tcase(s, simd);
    return s;
}

int main(void) { return px_test_run(suite()); }
