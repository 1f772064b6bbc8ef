/* Tests for sched/rng: torch.Generator('cpu') + torch.randn (float32) bit for
 * bit, diffusers randn_tensor with generator lists, and `pixart randn`.
 *
 * Always on: data/rng/ (the reference entries, large ones trimmed to head +
 * tail + a hash of every value). Optional: every entry of
 * $PIXART_REFERENCE/rng/ in full. */
#include "testutil.h"
#include "sched/rng.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/npy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------------------
// helpers

static uint64_t seed_of(const px_json *v)
{
    if (v && v->type == PX_JSON_OBJECT) v = px_json_get(v, "u64"); /* reference: {"int", "u64"} */
    ck_assert_msg(v && v->type == PX_JSON_STRING, "seed is not a u64 string");
    return strtoull(v->string, NULL, 10);
}

static size_t shape_of(const px_json *e, int64_t *shape, int *ndim)
{
    const px_json *s = px_json_get(e, "shape");
    ck_assert(s && s->type == PX_JSON_ARRAY && s->count <= 8);
    size_t n = 1;
    for (size_t i = 0; i < s->count; i++) {
        shape[i] = s->items[i]->integer;
        n *= (size_t)shape[i];
    }
    *ndim = (int)s->count;
    return n;
}

static uint64_t fnv1a64(const float *x, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *b = (const unsigned char *)x;
    for (size_t i = 0; i < n * 4; i++) h = (h ^ b[i]) * 0x100000001b3ull; /* little-endian host */
    return h;
}

/* 0 when bit-identical; prints the first differences otherwise */
static size_t bit_diff(const float *got, const float *want, size_t n, const char *label)
{
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4)) {
            if (bad < 3) fprintf(stderr, "%s[%zu]: got %.9g want %.9g\n", label, i, got[i], want[i]);
            bad++;
        }
    return bad;
}

/* Generates every entry of a randn.json (reference or trimmed format) and
 * compares it with the tensors of f. Returns the number of entries checked. */
static int check_entries(const char *json_path, const char *st_path, int full)
{
    px_json *meta = px_json_load_file(json_path);
    ck_assert_msg(meta, "%s", px_last_error());
    px_st_file *f = px_test_open(st_path);
    const px_json *entries = px_json_get(meta, "entries");
    ck_assert(entries && entries->type == PX_JSON_ARRAY && entries->count > 0);

    px_rng seq[8];
    char seq_name[8][32] = { { 0 } };
    int checked = 0;
    size_t bad_entries = 0;
    for (size_t k = 0; k < entries->count; k++) {
        const px_json *e = entries->items[k];
        const char *key = px_json_get(e, "key")->string;
        const char *kind = px_json_get(e, "kind")->string;
        int64_t shape[8];
        int ndim;
        size_t n = shape_of(e, shape, &ndim);
        float *got = malloc((n ? n : 1) * sizeof *got);
        ck_assert(got);

        if (!strcmp(kind, "randn")) {
            px_rng g;
            px_rng_seed(&g, seed_of(px_json_get(e, "seed")));
            px_randn(&g, got, n);
        } else if (!strcmp(kind, "sequence")) {
            /* successive calls on one generator: sequence<k>/call<j>_... */
            char name[32];
            snprintf(name, sizeof name, "%.*s", (int)(strchr(key, '/') - key), key);
            int slot = -1;
            for (int i = 0; i < 8; i++)
                if (!strcmp(seq_name[i], name)) slot = i;
            int64_t call = px_json_get(e, "call_index")->integer;
            if (call == 0) {
                for (int i = 0; i < 8 && slot < 0; i++)
                    if (!seq_name[i][0]) slot = i;
                ck_assert(slot >= 0);
                snprintf(seq_name[slot], sizeof seq_name[slot], "%s", name);
                px_rng_seed(&seq[slot], seed_of(px_json_get(e, "seed")));
            }
            ck_assert_msg(slot >= 0, "%s: sequence without call 0", key);
            px_randn(&seq[slot], got, n);
        } else {
            /* randn_tensor(shape, generator=[g0, g1, ...]) */
            const px_json *seeds = px_json_get(e, "seeds");
            ck_assert(seeds && seeds->type == PX_JSON_ARRAY && seeds->count >= 2 && seeds->count <= 8);
            px_rng gens[8];
            for (size_t i = 0; i < seeds->count; i++) px_rng_seed(&gens[i], seed_of(seeds->items[i]));
            ck_assert_msg(!px_randn_tensor(gens, seeds->count, got, ndim, shape), "%s", px_last_error());
        }

        const px_json *stored = px_json_get(e, "stored");
        size_t bad;
        if (full || !stored || !strcmp(stored->string, "all")) {
            size_t nw;
            float *want = px_test_get_f32(f, key, &nw);
            ck_assert_uint_eq(nw, n);
            bad = bit_diff(got, want, n, key);
            free(want);
        } else {
            char k2[160];
            size_t nh, nt;
            snprintf(k2, sizeof k2, "%s#head", key);
            float *head = px_test_get_f32(f, k2, &nh);
            snprintf(k2, sizeof k2, "%s#tail", key);
            float *tail = px_test_get_f32(f, k2, &nt);
            ck_assert(nh <= n && nt <= n);
            bad = bit_diff(got, head, nh, key) + bit_diff(got + n - nt, tail, nt, key);
            char hex[32];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)fnv1a64(got, n));
            if (strcmp(hex, px_json_get(e, "fnv1a64")->string)) {
                fprintf(stderr, "%s: hash of all %zu values differs\n", key, n);
                bad++;
            }
            free(head);
            free(tail);
        }
        if (bad) {
            fprintf(stderr, "%s: %zu values differ\n", key, bad);
            bad_entries++;
        }
        free(got);
        checked++;
    }
    px_st_close(f);
    px_json_free(meta);
    ck_assert_msg(bad_entries == 0, "%zu of %d entries are not bit-identical", bad_entries, checked);
    return checked;
}

// ---------------------------------------------------------------------------
// tests

/* The C++ standard's check value for mt19937: the 10000th output of a
 * default-constructed engine (seed 5489) is 4123659995. */
START_TEST(test_mt19937_standard)
{
    px_rng g;
    px_rng_seed(&g, 5489);
    uint32_t v = 0;
    for (int i = 0; i < 10000; i++) v = px_rng_u32(&g);
    ck_assert_uint_eq(v, 4123659995u);
}
END_TEST

/* Only the low 32 bits of the seed reach mt19937 (2**32 + 7 behaves like 7),
 * and u64 = (first draw << 32) | second draw. */
START_TEST(test_seed_low_bits)
{
    px_rng a, b;
    px_rng_seed(&a, 7);
    px_rng_seed(&b, (UINT64_C(1) << 32) + 7);
    for (int i = 0; i < 1000; i++) ck_assert_uint_eq(px_rng_u32(&a), px_rng_u32(&b));
    px_rng_seed(&a, 123);
    px_rng_seed(&b, 123);
    uint64_t hi = px_rng_u32(&a), lo = px_rng_u32(&a);
    ck_assert_uint_eq(px_rng_u64(&b), (hi << 32) | lo);
    ck_assert_uint_eq(b.seed, 123);
}
END_TEST

/* Uniform floats use 24 bits, doubles 53: exact values from the bits. */
START_TEST(test_uniform_bits)
{
    px_rng a, b;
    px_rng_seed(&a, 99);
    px_rng_seed(&b, 99);
    for (int i = 0; i < 100; i++) {
        uint32_t u = px_rng_u32(&a);
        ck_assert(px_rng_uniform_f32(&b) == (float)(u & 0xffffff) / 16777216.0f);
    }
    for (int i = 0; i < 100; i++) {
        uint64_t u = px_rng_u64(&a);
        ck_assert(px_rng_uniform_f64(&b) == (double)(u & ((UINT64_C(1) << 53) - 1)) / 9007199254740992.0);
    }
}
END_TEST

/* The scalar path caches the sine half of a Box-Muller pair: randn(1) twice
 * equals randn(2) once, and manual_seed drops the cache. */
START_TEST(test_scalar_cache)
{
    px_rng a, b;
    float x1, x2, y[2];
    px_rng_seed(&a, 5);
    px_rng_seed(&b, 5);
    px_randn(&a, &x1, 1);
    px_randn(&a, &x2, 1);
    px_randn(&b, y, 2);
    ck_assert(x1 == y[0] && x2 == y[1]);
    px_rng_seed(&a, 5);
    px_randn(&a, &x2, 1);
    ck_assert(x2 == x1);
    /* the >= 16 path neither uses nor clears the cache */
    float big[16], z;
    px_rng_seed(&a, 5);
    px_randn(&a, &x1, 1);
    px_randn(&a, big, 16);
    px_randn(&a, &z, 1);
    ck_assert(z == y[1]);
}
END_TEST

/* randn_tensor: a list of one generator is the single-generator call; a list
 * uses generator b for row b; too few generators is an error. */
START_TEST(test_randn_tensor_list)
{
    int64_t shape[4] = { 3, 4, 5, 6 };
    const size_t per = 4 * 5 * 6;
    float out[3 * 120], row[120];
    px_rng gens[3];
    for (int i = 0; i < 3; i++) px_rng_seed(&gens[i], 100 + i);
    ck_assert(!px_randn_tensor(gens, 3, out, 4, shape));
    for (int b = 0; b < 3; b++) {
        px_rng g;
        px_rng_seed(&g, 100 + b);
        px_randn(&g, row, per);
        ck_assert(!memcmp(row, out + b * per, sizeof row));
    }
    px_rng one;
    px_rng_seed(&one, 100);
    ck_assert(!px_randn_tensor(&one, 1, out, 4, shape));
    px_rng g;
    px_rng_seed(&g, 100);
    float all[360];
    px_randn(&g, all, 360);
    ck_assert(!memcmp(all, out, sizeof all));
    ck_assert_int_eq(px_randn_tensor(gens, 2, out, 4, shape), -1);
    ck_assert(strstr(px_last_error(), "2 generators"));
    ck_assert_int_eq(px_randn_tensor(gens, 0, out, 4, shape), -1);
}
END_TEST

START_TEST(test_reference_fixture)
{
    int n = check_entries(px_test_data("rng/randn.json"), px_test_data("rng/randn.safetensors"), 0);
    ck_assert_int_eq(n, 82);
}
END_TEST

START_TEST(test_reference_full)
{
    if (!px_test_have_ref("rng/randn.safetensors", "full torch.randn reference")) return;
    int n = check_entries(px_test_ref("rng/randn.json"), px_test_ref("rng/randn.safetensors"), 1);
    ck_assert_int_ge(n, 82);
}
END_TEST

// ---------------------------------------------------------------------------
// pixart randn

static int run_bin(const char *args)
{
    const char *bin = getenv("PIXART_BIN");
    ck_assert_msg(bin && *bin, "PIXART_BIN is not set");
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' %s >/dev/null 2>&1", bin, args);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_cli_randn)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "randn");
    char path[300], args[600];
    snprintf(path, sizeof path, "%s/x.npy", dir);

    /* the reference entry randn/seed42/1x4x8x8 */
    snprintf(args, sizeof args, "randn --seed 42 --shape 1,4,8,8 -o '%s'", path);
    ck_assert_int_eq(run_bin(args), 0);
    px_tensor *t = px_npy_load(path);
    ck_assert_msg(t, "%s", px_last_error());
    ck_assert_int_eq(t->dtype, PX_F32);
    ck_assert_int_eq(t->ndim, 4);
    ck_assert(t->shape[0] == 1 && t->shape[1] == 4 && t->shape[2] == 8 && t->shape[3] == 8);
    px_st_file *f = px_test_open(px_test_data("rng/randn.safetensors"));
    size_t n;
    float *want = px_test_get_f32(f, "randn/seed42/1x4x8x8", &n);
    ck_assert_uint_eq(n, 256);
    ck_assert_uint_eq(bit_diff(t->data, want, n, "pixart randn"), 0);
    free(want);
    px_tensor_free(t);

    /* a seed above 2**63 given in decimal (Python's -1): 2**64-1 */
    snprintf(args, sizeof args, "randn --seed 18446744073709551615 --shape 5 -o '%s'", path);
    ck_assert_int_eq(run_bin(args), 0);
    t = px_npy_load(path);
    ck_assert(t && t->ndim == 1 && t->shape[0] == 5);
    want = px_test_get_f32(f, "randn/seed9223372036854775807/5", &n); /* same low 32 bits */
    ck_assert_uint_eq(bit_diff(t->data, want, 5, "pixart randn u64"), 0);
    px_tensor_free(t);
    /* Python's -1 is 2**64-1 */
    snprintf(args, sizeof args, "randn --seed=-1 --shape=5 --output '%s'", path);
    ck_assert_int_eq(run_bin(args), 0);
    t = px_npy_load(path);
    ck_assert(t && t->ndim == 1 && t->shape[0] == 5);
    ck_assert_uint_eq(bit_diff(t->data, want, 5, "pixart randn -1"), 0);
    free(want);
    px_tensor_free(t);
    px_st_close(f);

    /* --help succeeds; bad arguments fail and leave no file behind */
    ck_assert_int_eq(run_bin("randn --help"), 0);
    unlink(path);
    snprintf(args, sizeof args, "randn --seed 18446744073709551616 --shape 2 -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    snprintf(args, sizeof args, "randn --seed 1.5 --shape 2 -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    snprintf(args, sizeof args, "randn --seed 1 --shape 2,,3 -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    snprintf(args, sizeof args, "randn --seed 1 --shape 2,x -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    snprintf(args, sizeof args, "randn --seed 1 -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    ck_assert_int_ne(run_bin("randn --seed 1 --shape 3"), 0);
    snprintf(args, sizeof args, "randn --seed 1 --shape 3 --bogus -o '%s'", path);
    ck_assert_int_ne(run_bin(args), 0);
    ck_assert_int_ne(access(path, F_OK), 0);
    snprintf(args, sizeof args, "randn --seed 1 --shape 3 -o '%s/no/such/dir/x.npy'", dir);
    ck_assert_int_ne(run_bin(args), 0);
    px_test_tmpdir_remove(dir);
}
END_TEST

static Suite *rng_suite(void)
{
    Suite *s = suite_create("rng");
    TCase *tc = tcase_create("generator");
    tcase_add_test(tc, test_mt19937_standard);
    tcase_add_test(tc, test_seed_low_bits);
    tcase_add_test(tc, test_uniform_bits);
    tcase_add_test(tc, test_scalar_cache);
    tcase_add_test(tc, test_randn_tensor_list);
    suite_add_tcase(s, tc);
    TCase *ref = tcase_create("reference");
    tcase_set_timeout(ref, 60);
    tcase_add_test(ref, test_reference_fixture);
    tcase_add_test(ref, test_reference_full);
    suite_add_tcase(s, ref);
    TCase *cli = tcase_create("cli");
    tcase_set_timeout(cli, 60);
    tcase_add_test(cli, test_cli_randn);
    suite_add_tcase(s, cli);
    return s;
}

int main(void)
{
    return px_test_run(rng_suite());
}
