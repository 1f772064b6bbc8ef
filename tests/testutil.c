/* Shared helpers for the Check suites (see testutil.h). */
#include "testutil.h"
#include "tensor/error.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <unistd.h>

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

// ----------------------------------------------------------------------------
// skipped checks: each is one line "W|P <test name>\t<why>\n" appended to a
// file that px_test_run opens before Check forks the checks and reads after.

static int skip_fd = -1;

static void record_skip(char kind, const char *fmt, va_list ap)
{
    char why[512];
    vsnprintf(why, sizeof why, fmt, ap);
    for (char *c = why; *c; c++)
        if (*c == '\n' || *c == '\t') *c = ' ';
    const char *name = tcase_name();
    fprintf(stderr, "SKIP %s: %s\n", name, why);
    if (skip_fd < 0) return;
    char line[700];
    int n = snprintf(line, sizeof line, "%c %s\t%s\n", kind, name, why);
    if (n > (int)sizeof line - 1) n = (int)sizeof line - 1, line[n - 1] = '\n';
    ck_assert_msg(write(skip_fd, line, (size_t)n) == n, "cannot record a skipped check: %s", strerror(errno));
}

void px_test_skip(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_skip('W', fmt, ap);
    va_end(ap);
}

void px_test_skip_part(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    record_skip('P', fmt, ap);
    va_end(ap);
}

int px_test_have_ref(const char *rel, const char *why)
{
    const char *p = px_test_ref(rel);
    struct stat st;
    if (stat(p, &st) == 0) return 1;
    px_test_skip("%s: %s is absent (set PIXART_REFERENCE to the reference set)", why, p);
    return 0;
}

int px_test_have_optional_ref(const char *rel, const char *why)
{
    const char *p = px_test_ref(rel);
    struct stat st;
    if (stat(p, &st) == 0) return 1;
    px_test_skip_part("%s: %s is absent (set PIXART_REFERENCE to the reference set)", why, p);
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

void px_test_linear_double(float *out, const float *in, const float *w, const float *bias, int64_t M, int64_t N,
                           int64_t K)
{
    for (int64_t m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = bias ? bias[n] : 0;
            for (int64_t k = 0; k < K; k++) acc += (double)in[m * K + k] * w[n * K + k];
            out[m * N + n] = (float)acc;
        }
}

// ----------------------------------------------------------------------------
// temporary folders and files

void px_test_tmpdir_make(char *dir, size_t size, const char *tag)
{
    int n = snprintf(dir, size, "%s/pixart-test-%s-XXXXXX", env_or("TMPDIR", "/tmp"), tag);
    ck_assert_msg(n > 0 && (size_t)n < size, "temporary folder name too long");
    ck_assert_msg(mkdtemp(dir) != NULL, "cannot make %s: %s", dir, strerror(errno));
}

void px_test_tmpdir_remove(const char *dir)
{
    char cmd[4200];
    ck_assert_msg(!strchr(dir, '\''), "%s: quote in a temporary folder name", dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_msg(system(cmd) == 0, "cannot remove %s", dir);
}

int px_test_count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_msg(d != NULL, "cannot list %s: %s", dir, strerror(errno));
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

char *px_test_read_text(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0, r;
    char *b = malloc(cap + 1);
    ck_assert_ptr_nonnull(b);
    while ((r = fread(b + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
            ck_assert_ptr_nonnull(b);
        }
    }
    ck_assert_msg(!ferror(f), "cannot read %s", path);
    fclose(f);
    b[len] = 0;
    if (n) *n = len;
    return b;
}

void px_test_write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot create %s: %s", path, strerror(errno));
    ck_assert_msg(fwrite(data, 1, n, f) == n, "cannot write %s", path);
    ck_assert_msg(fclose(f) == 0, "cannot write %s", path);
}

void px_test_write_text(const char *path, const char *text) { px_test_write_bytes(path, text, strlen(text)); }

// ----------------------------------------------------------------------------
// edited copies of a checkpoint folder

void px_test_copy_config(const char *src_dir, const char *dst_dir, const char *from, const char *to)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", src_dir);
    char *cfg = px_test_read_text(p, NULL);
    if (from) {
        char *at = strstr(cfg, from);
        ck_assert_msg(at != NULL, "%s has no '%s'", p, from);
        size_t head = (size_t)(at - cfg), tail = strlen(at + strlen(from));
        char *edited = malloc(head + strlen(to) + tail + 1);
        ck_assert_ptr_nonnull(edited);
        memcpy(edited, cfg, head);
        memcpy(edited + head, to, strlen(to));
        memcpy(edited + head + strlen(to), at + strlen(from), tail + 1);
        free(cfg);
        cfg = edited;
    }
    snprintf(p, sizeof p, "%s/config.json", dst_dir);
    px_test_write_text(p, cfg);
    free(cfg);
}

/* Gives x (n floats of shape[ndim]) the wrong shape `how`; returns the data
 * for the new shape (x, or x grown). */
static float *give_bad_shape(float *x, size_t n, int ndim, int64_t *shape, px_test_bad_shape how,
                             const char *name)
{
    switch (how) {
    case PX_TEST_SHAPE_SWAPPED: {
        ck_assert_msg(ndim == 2, "%s: only a 2-D tensor can have its dimensions swapped", name);
        int64_t t = shape[0];
        shape[0] = shape[1];
        shape[1] = t;
        return x;
    }
    case PX_TEST_SHAPE_DIM0_HALVED:
        shape[0] /= 2;
        return x;
    case PX_TEST_SHAPE_DIM0_PLUS1: {
        size_t row = n / (size_t)shape[0];
        shape[0]++;
        float *y = realloc(x, (n + row) * sizeof(float));
        ck_assert_ptr_nonnull(y);
        memset(y + n, 0, row * sizeof(float));
        return y;
    }
    }
    ck_abort_msg("%s: unknown bad shape %d", name, (int)how);
    return x;
}

void px_test_copy_weights(const char *src_dir, const char *stem, const char *dst_dir, const px_test_copy_opts *opts)
{
    static const px_test_copy_opts plain = { 0 };
    const px_test_copy_opts *o = opts ? opts : &plain;
    ck_assert(o->values == PX_TEST_COPY_F32 || o->half == PX_F16 || o->half == PX_BF16);
    px_st_set *s = px_st_set_open(src_dir, stem, NULL);
    ck_assert_msg(s != NULL, "%s", px_last_error());
    px_st_writer *w = px_st_writer_new();
    ck_assert_ptr_nonnull(w);
    for (int fi = 0; fi < s->nfiles; fi++)
        for (size_t i = 0; i < s->files[fi]->n; i++) {
            const px_st_entry *e = &s->files[fi]->entries[i];
            if (o->drop && strcmp(e->name, o->drop) == 0) continue;
            size_t n = (size_t)px_numel(&e->t);
            float *x = px_tensor_to_f32_alloc(&e->t, e->name);
            ck_assert_ptr_nonnull(x);
            if (o->values == PX_TEST_COPY_HALF_AS_F32) {
                uint16_t *h = malloc((n ? n : 1) * sizeof *h);
                ck_assert_ptr_nonnull(h);
                px_convert_from_f32(h, o->half, x, n);
                px_convert_to_f32(x, h, o->half, n);
                free(h);
            }
            int64_t shape[PX_MAX_DIMS];
            memcpy(shape, e->t.shape, sizeof shape);
            if (o->reshape && strcmp(e->name, o->reshape) == 0)
                x = give_bad_shape(x, n, e->t.ndim, shape, o->bad_shape, e->name);
            px_dtype dt = o->values == PX_TEST_COPY_HALF ? o->half : PX_F32;
            ck_assert_msg(px_st_writer_add_f32_as(w, e->name, dt, e->t.ndim, shape, x) == 0, "%s",
                          px_last_error());
            free(x);
        }
    char p[4200];
    if (o->variant) snprintf(p, sizeof p, "%s/%s.%s.safetensors", dst_dir, stem, o->variant);
    else snprintf(p, sizeof p, "%s/%s.safetensors", dst_dir, stem);
    ck_assert_msg(px_st_writer_save(w, p) == 0, "%s", px_last_error());
    px_st_writer_free(w);
    px_st_set_close(s);
}

/* The test name of one of Check's TAP lines, "ok 3 - FILE:TCASE:NAME: msg"
 * (copied into name), and where the text after "N - " starts. */
static int tap_line_name(const char *line, char *name, size_t size, const char **rest)
{
    const char *p = strstr(line, " - ");
    if (!p) return -1;
    *rest = p + 3;
    const char *f = *rest;
    for (int k = 0; k < 2; k++) {
        f = strchr(f, ':');
        if (!f) return -1;
        f++;
    }
    const char *e = strchr(f, ':');
    if (!e || (size_t)(e - f) >= size) return -1;
    memcpy(name, f, (size_t)(e - f));
    name[e - f] = 0;
    return 0;
}

/* The reason recorded for a whole-check skip of `name`, or NULL. */
static const char *whole_skip(const char *records, const char *name, char *why, size_t size)
{
    size_t nl = strlen(name);
    for (const char *r = records; *r; r = strchr(r, '\n') ? strchr(r, '\n') + 1 : r + strlen(r)) {
        if (r[0] != 'W' || strncmp(r + 2, name, nl) || r[2 + nl] != '\t') continue;
        const char *w = r + 3 + nl, *e = strchr(w, '\n');
        size_t n = e ? (size_t)(e - w) : strlen(w);
        if (n >= size) n = size - 1;
        memcpy(why, w, n);
        why[n] = 0;
        return why;
    }
    return NULL;
}

int px_test_run(Suite *s)
{
    char skips[4096], tap[4096];
    snprintf(skips, sizeof skips, "%s/pixart-skips-XXXXXX", env_or("TMPDIR", "/tmp"));
    snprintf(tap, sizeof tap, "%s/pixart-tap-XXXXXX", env_or("TMPDIR", "/tmp"));
    skip_fd = mkstemp(skips);
    int tap_fd = mkstemp(tap);
    if (skip_fd < 0 || tap_fd < 0) {
        fprintf(stderr, "cannot make temporary files in %s: %s\n", env_or("TMPDIR", "/tmp"), strerror(errno));
        return EXIT_FAILURE;
    }
    close(tap_fd);
    unlink(skips); // the checks (forked children) share the open file

    SRunner *sr = srunner_create(s);
    srunner_set_tap(sr, tap);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    fflush(stdout);

    // the skip records
    off_t len = lseek(skip_fd, 0, SEEK_END);
    char *rec = malloc((size_t)(len > 0 ? len : 0) + 1);
    if (!rec || pread(skip_fd, rec, (size_t)len, 0) != len) {
        fprintf(stderr, "cannot read back the skipped checks\n");
        return EXIT_FAILURE;
    }
    rec[len] = 0;
    close(skip_fd);
    skip_fd = -1;

    // Check's TAP, with the skips marked, then one point per skipped part
    // (no ck_assert here: outside a check it aborts the runner)
    FILE *tf = fopen(tap, "rb");
    char *t = NULL;
    size_t tlen = 0;
    if (tf && fseek(tf, 0, SEEK_END) == 0 && (long)(tlen = (size_t)ftell(tf)) >= 0 && fseek(tf, 0, SEEK_SET) == 0 &&
        (t = malloc(tlen + 1)) && fread(t, 1, tlen, tf) == tlen) {
        t[tlen] = 0;
    } else {
        fprintf(stderr, "cannot read Check's TAP output %s\n", tap);
        return EXIT_FAILURE;
    }
    fclose(tf);
    unlink(tap);
    int k = 0;
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        int ok = !strncmp(line, "ok ", 3);
        if (!ok && strncmp(line, "not ok ", 7)) continue; // the plan: ours comes last
        char name[256], why[512];
        const char *rest;
        if (ok && !tap_line_name(line, name, sizeof name, &rest) && whole_skip(rec, name, why, sizeof why))
            printf("ok %d - %s # SKIP %s\n", ++k, name, why);
        else if (tap_line_name(line, name, sizeof name, &rest) == 0)
            // a pass names TCASE:NAME (Check's FILE is the last assertion's, often testutil.c)
            printf("%s %d - %s\n", ok ? "ok" : "not ok", ++k, ok ? strchr(rest, ':') + 1 : rest);
        else
            printf("%s %d - %s\n", ok ? "ok" : "not ok", ++k, line);
    }
    for (char *r = strtok(rec, "\n"); r; r = strtok(NULL, "\n")) {
        if (r[0] != 'P') continue;
        char *tab = strchr(r, '\t');
        if (tab) *tab = 0;
        printf("ok %d - %s (part) # SKIP %s\n", ++k, r + 2, tab ? tab + 1 : "");
    }
    printf("1..%d\n", k);
    free(t);
    free(rec);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

// ----------------------------------------------------------------------------
// dump key lists

static int key_selected(const char *k, const char *const *prefixes)
{
    if (!prefixes) return 1;
    for (size_t i = 0; prefixes[i]; i++)
        if (strncmp(k, prefixes[i], strlen(prefixes[i])) == 0) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

void px_test_check_keys(const char *const *keys, size_t n, const char *fixture_rel, const char *const *prefixes)
{
    const char *path = px_test_data(fixture_rel);
    char *text = px_test_read_text(path, NULL);
    /* the fixture's selected keys, in file order (sorted) */
    size_t nw = 0, capw = 64;
    const char **want = malloc(capw * sizeof *want);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "# ", 2) == 0 || !key_selected(line, prefixes)) continue;
        if (nw == capw) want = realloc(want, (capw *= 2) * sizeof *want);
        want[nw++] = line;
    }
    const char **got = malloc((n ? n : 1) * sizeof *got);
    size_t ng = 0;
    for (size_t i = 0; i < n; i++)
        if (key_selected(keys[i], prefixes)) got[ng++] = keys[i];
    qsort(got, ng, sizeof *got, cmp_str);
    /* merge: report up to 5 keys on each side */
    char msg[2048] = "";
    size_t len = 0, nmiss = 0, nextra = 0, i = 0, j = 0;
    while (i < nw || j < ng) {
        int c = i == nw ? 1 : j == ng ? -1 : strcmp(want[i], got[j]);
        if (c == 0) {
            i++, j++;
            continue;
        }
        const char *k = c < 0 ? want[i++] : got[j++];
        size_t *cnt = c < 0 ? &nmiss : &nextra;
        if ((*cnt)++ < 5 && len < sizeof msg - 200)
            len += (size_t)snprintf(msg + len, sizeof msg - len, "\n  %s %s", c < 0 ? "missing:" : "extra:  ", k);
    }
    if (nmiss || nextra)
        ck_abort_msg("dump keys differ from %s (%zu expected): %zu missing, %zu extra%s", path, nw, nmiss, nextra,
                     msg);
    ck_assert_msg(nw > 0, "%s: no keys selected", path);
    free(got);
    free(want);
    free(text);
}
