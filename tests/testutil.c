/* Shared helpers for the Check suites (see testutil.h). */
#include "testutil.h"
#include "tensor/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

size_t px_close_stats(const float *got, const float *want, size_t n, double atol, double rtol,
                      double *max_abs, double *max_rel)
{
    size_t bad = 0;
    double ma = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double d = fabs(g - w);
        if (isnan(g) != isnan(w) || (!isnan(g) && !(d <= atol + rtol * fabs(w)))) bad++;
        if (d > ma) ma = d;
        double r = d / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
        if (d > 0 && r > mr) mr = r;
    }
    if (max_abs) *max_abs = ma;
    if (max_rel) *max_rel = mr;
    return bad;
}

void px_assert_close_(const float *got, const float *want, size_t n, double atol, double rtol,
                      const char *label, const char *file, int line)
{
    size_t bad = 0, imax_a = 0, imax_r = 0;
    double ma = 0, mr = 0;
    for (size_t i = 0; i < n; i++) {
        double g = got[i], w = want[i];
        double d = fabs(g - w);
        int nan_mismatch = isnan(g) != isnan(w);
        if (nan_mismatch || (!isnan(g) && !(d <= atol + rtol * fabs(w)))) {
            if (bad < 5)
                fprintf(stderr, "%s:%d: %s[%zu]: got %.9g want %.9g (diff %.3g)\n", file, line, label, i,
                        g, w, d);
            bad++;
        }
        if (d > ma) { ma = d; imax_a = i; }
        double r = d / (fabs(w) > 1e-30 ? fabs(w) : 1e-30);
        if (d > 0 && r > mr) { mr = r; imax_r = i; }
    }
    if (bad) {
        fprintf(stderr, "%s:%d: %s: %zu of %zu elements outside atol %.3g rtol %.3g; "
                        "max abs err %.3g at [%zu], max rel err %.3g at [%zu]\n",
                file, line, label, bad, n, atol, rtol, ma, imax_a, mr, imax_r);
        ck_abort_msg("%s: %zu of %zu elements differ (max abs %.3g)", label, bad, n, ma);
    }
}

static const char *env_or(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static char *rotate(void)
{
    static char bufs[8][4096];
    static int k;
    return bufs[k++ & 7];
}

const char *px_test_data(const char *rel)
{
    char *b = rotate();
    snprintf(b, 4096, "%s/%s", env_or("PIXART_DATA", "data"), rel);
    return b;
}

const char *px_test_ref(const char *rel)
{
    char *b = rotate();
    snprintf(b, 4096, "%s/%s", env_or("PIXART_REFERENCE", "../shared/reference"), rel);
    return b;
}

int px_test_have_ref(const char *rel, const char *why)
{
    const char *p = px_test_ref(rel);
    struct stat st;
    if (stat(p, &st) == 0) return 1;
    fprintf(stderr, "SKIP %s: %s is absent (set PIXART_REFERENCE to the reference set)\n", why, p);
    return 0;
}

px_st_file *px_test_open(const char *path)
{
    px_st_file *f = px_st_open(path);
    if (!f) ck_abort_msg("cannot open %s: %s", path, px_last_error());
    return f;
}

float *px_test_get_f32(const px_st_file *f, const char *key, size_t *n)
{
    const px_tensor *t = px_st_find(f, key);
    if (!t) ck_abort_msg("%s: reference tensor '%s' missing", f->path, key);
    size_t cnt = (size_t)px_numel(t);
    float *out = malloc((cnt ? cnt : 1) * sizeof(float));
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < cnt; i++) out[i] = px_tensor_get_f32(t, (int64_t)i);
    if (n) *n = cnt;
    return out;
}

int64_t *px_test_get_i64(const px_st_file *f, const char *key, size_t *n)
{
    const px_tensor *t = px_st_find(f, key);
    if (!t) ck_abort_msg("%s: reference tensor '%s' missing", f->path, key);
    size_t cnt = (size_t)px_numel(t);
    int64_t *out = malloc((cnt ? cnt : 1) * sizeof(int64_t));
    ck_assert_ptr_nonnull(out);
    for (size_t i = 0; i < cnt; i++) {
        if (t->dtype == PX_I64) out[i] = ((const int64_t *)t->data)[i];
        else if (t->dtype == PX_I32) out[i] = ((const int32_t *)t->data)[i];
        else out[i] = (int64_t)px_tensor_get_f32(t, (int64_t)i);
    }
    if (n) *n = cnt;
    return out;
}

void px_test_check_ref(const px_st_file *f, const char *key, const float *got, size_t n, double atol,
                       double rtol)
{
    size_t m;
    float *want = px_test_get_f32(f, key, &m);
    if (m != n) {
        free(want);
        ck_abort_msg("%s: '%s' has %zu elements, computed %zu", f->path, key, m, n);
    }
    px_assert_close_(got, want, n, atol, rtol, key, f->path, 0);
    free(want);
}

void px_test_fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17; /* xorshift64 */
        x[i] = lo + (hi - lo) * (float)((s >> 40) * (1.0 / 16777216.0));
    }
}

int px_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
