/* T5 encoder tests: every text_encoder/... activation of the two reference
 * pipelines' first case (module by module, transformers T5EncoderModel run
 * by the reference generator), the prompt embeddings of every reference
 * case, BF16/F16 copies of the checkpoints, and broken checkpoints/inputs.
 * Tolerances and the measured errors are in doc/t5.md. */
#include "testutil.h"
#include "model/t5.h"
#include "ops/ops.h"
#include "tensor/dump.h"
#include "tensor/error.h"
#include "tensor/half.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Per-module tolerance (doc/t5.md): |got - want| <= ATOL_REL * max|want|.
 * The errors are float32 summation-order differences against torch's sgemm,
 * softmax and mean (measured: at most 7.7e-7 * max|want|); bucket indices,
 * the position bias and the embedding lookup must be exact. */
#define ATOL_REL 2e-6
/* BF16 / F16 weights against the F32 reference, times max|want|: the error
 * is the weight rounding (2^-9 resp. 2^-12 relative) propagated through the
 * blocks (measured: 6.3e-3 resp. 1.1e-3). */
#define BF16_TOL 1.5e-2
#define F16_TOL 2.5e-3

static float *encode_case(px_t5 *m, const px_st_file *ref, size_t *n_out);

static int verbose(void) { return getenv("PIXART_T5_REPORT") != NULL; }

static int32_t *get_i32(const px_st_file *f, const char *key, size_t *n)
{
    int64_t *v = px_test_get_i64(f, key, n);
    int32_t *o = malloc(*n * sizeof *o);
    ck_assert_ptr_nonnull(o);
    for (size_t i = 0; i < *n; i++) o[i] = (int32_t)v[i];
    free(v);
    return o;
}

static double absmax(const float *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* got vs want with the module tolerance; prints the measured error on request. */
static void check_close(const float *got, const float *want, size_t n, const char *label, int exact,
                        double *worst)
{
    double am = absmax(want, n), ma = 0, mr = 0;
    px_close_stats(got, want, n, 0, 0, &ma, &mr);
    if (verbose()) fprintf(stderr, "  %-80s max|want| %9.3g  max abs err %9.3g  (%.3g of max)\n", label, am, ma, am > 0 ? ma / am : 0);
    if (worst && am > 0 && ma / am > *worst) *worst = ma / am;
    if (exact)
        assert_close(got, want, n, 0, 0, label);
    else
        assert_close(got, want, n, ATOL_REL * am, 0, label);
}

/* Runs the encoder on the case's prompt (-> #0) and negative prompt (-> #1),
 * as the reference pipeline does, and compares every text_encoder/ key. */
static void check_modules(const char *pipe, const char *case_name)
{
    char dir[512], path[512];
    snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data(pipe));
    snprintf(path, sizeof path, "cases/%s.safetensors", case_name);
    px_st_file *ref = px_test_open(px_test_data(path));
    px_t5 *m = px_t5_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    const int D = px_t5_d_model(m);
    px_dump *dump = px_dump_new();
    const char *which[2][2] = { { "pipeline/prompt_ids", "pipeline/prompt_mask" },
                                { "pipeline/negative_ids", "pipeline/negative_mask" } };
    for (int c = 0; c < 2; c++) {
        size_t n, nm;
        int32_t *ids = get_i32(ref, which[c][0], &n), *mask = get_i32(ref, which[c][1], &nm);
        ck_assert_uint_eq(n, nm);
        ck_assert_uint_eq(n, 120);
        float *out = malloc(n * D * sizeof *out);
        ck_assert_msg(px_t5_encode(m, ids, mask, 1, 120, out, dump) == 0, "%s", px_last_error());
        free(ids); free(mask); free(out);
    }

    /* keys whose value equals an earlier one are stored once ("aliases") */
    px_json *aliases = NULL;
    const px_json *al = ref->metadata ? px_json_get(ref->metadata, "aliases") : NULL;
    if (al && al->type == PX_JSON_STRING) aliases = px_json_parse(al->string, al->len, "aliases");

    if (verbose()) fprintf(stderr, "%s (%s):\n", case_name, pipe);
    /* every reference key is produced ... */
    size_t nref = 0;
    double worst = 0;
    for (size_t i = 0; i < ref->n; i++) {
        const char *key = ref->entries[i].name;
        if (strncmp(key, "text_encoder/", 13) != 0) continue;
        nref++;
        size_t n;
        const float *got = px_dump_get(dump, key, &n);
        ck_assert_msg(got != NULL, "%s: reference key %s was not produced", case_name, key);
        size_t nw;
        float *want = px_test_get_f32(ref, key, &nw);
        ck_assert_uint_eq(n, nw);
        /* token ids, embedding rows, bucket indices and bias values are exact */
        int exact = strstr(key, "embed_tokens#") != NULL || strstr(key, "relative_attention_bias#") != NULL;
        check_close(got, want, n, key, exact, &worst);
        free(want);
    }
    /* ... and every produced key is in the reference (stored or aliased) */
    size_t naliased = 0;
    for (size_t i = 0; i < px_dump_count(dump); i++) {
        const char *key = px_dump_key(dump, i);
        if (px_st_find(ref, key)) continue;
        const px_json *target = aliases ? px_json_get(aliases, key) : NULL;
        ck_assert_msg(target && target->type == PX_JSON_STRING, "%s: produced key %s is not in the reference",
                      case_name, key);
        size_t n, nw;
        const float *got = px_dump_get(dump, key, &n);
        float *want = px_test_get_f32(ref, target->string, &nw);
        ck_assert_uint_eq(n, nw);
        check_close(got, want, n, key, strstr(key, "relative_attention_bias") != NULL, &worst);
        free(want);
        naliased++;
    }
    if (verbose())
        fprintf(stderr, "%s: %zu stored + %zu aliased keys, worst abs err / max|want| = %.3g\n", case_name,
                nref, naliased, worst);
    /* per call: embed_tokens and relative_attention_bias (each with .in), 14 per
     * block (o and wo with .in), final_layer_norm */
    const px_t5_config *cf = px_t5_get_config(m);
    ck_assert_uint_eq(nref + naliased, px_dump_count(dump));
    ck_assert_uint_eq(px_dump_count(dump), (size_t)(2 * (5 + 14 * cf->num_layers)));
    px_json_free(aliases);
    px_dump_free(dump);
    px_t5_free(m);
    px_st_close(ref);
}

START_TEST(modules_pipe_small) { check_modules("pipe_small", "small_dpm2_cfg"); }
END_TEST

START_TEST(modules_pipe_ms) { check_modules("pipe_ms", "ms_dpm2_cfg_32x80"); }
END_TEST

/* The same comparison with the scalar reference kernels (PIXART_FORCE_REF). */
START_TEST(modules_reference_kernels)
{
    px_ops_init();
    px_isa best = px_ops_isa();
    ck_assert_int_eq(px_ops_select(PX_ISA_REF), 0);
    check_modules("pipe_small", "small_dpm2_cfg");
    check_modules("pipe_ms", "ms_dpm2_cfg_32x80");
    ck_assert_int_eq(px_ops_select(best), 0);
}
END_TEST

/* With a dump filter that drops the outputs but keeps the ".in" inputs, the
 * inputs are still numbered by call (prompt #0, negative #1). */
static int keep_inputs(const char *key, void *user)
{
    (void)user;
    size_t n = strlen(key);
    return n > 3 && strcmp(key + n - 3, ".in") == 0;
}

START_TEST(dump_filter_keeps_call_indices)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data("pipe_small"));
    px_t5 *m = px_t5_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_st_file *ref = px_test_open(px_test_data("cases/small_dpm2_cfg.safetensors"));
    px_dump *dump = px_dump_new();
    px_dump_set_filter(dump, keep_inputs, NULL);
    const char *which[2][2] = { { "pipeline/prompt_ids", "pipeline/prompt_mask" },
                                { "pipeline/negative_ids", "pipeline/negative_mask" } };
    for (int c = 0; c < 2; c++) {
        size_t n;
        int32_t *ids = get_i32(ref, which[c][0], &n), *mask = get_i32(ref, which[c][1], &n);
        float *out = malloc(n * 24 * sizeof *out);
        ck_assert_msg(px_t5_encode(m, ids, mask, 1, 120, out, dump) == 0, "%s", px_last_error());
        free(ids); free(mask); free(out);
    }
    /* embed_tokens, relative_attention_bias, 2 blocks x (o, wo), per call */
    ck_assert_uint_eq(px_dump_count(dump), 2 * 6);
    const char *keys[2] = { "text_encoder/encoder.embed_tokens#1.in",
                            "text_encoder/encoder.block.1.layer.1.DenseReluDense.wo#1.in" };
    for (int i = 0; i < 2; i++) {
        size_t n, nw;
        const float *got = px_dump_get(dump, keys[i], &n);
        ck_assert_msg(got != NULL, "%s was not recorded", keys[i]);
        float *want = px_test_get_f32(ref, keys[i], &nw);
        ck_assert_uint_eq(n, nw);
        check_close(got, want, n, keys[i], i == 0, NULL);
        free(want);
    }
    px_dump_free(dump);
    px_st_close(ref);
    px_t5_free(m);
}
END_TEST

/* Results do not depend on the thread count (no thread-order reductions). */
START_TEST(threads_bit_identical)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data("pipe_ms"));
    px_t5 *m = px_t5_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_st_file *ref = px_test_open(px_test_data("cases/ms_dpm3_batch2_neg_48x80.safetensors"));
    int saved = px_get_num_threads();
    size_t n1, n2;
    px_set_num_threads(1);
    float *o1 = encode_case(m, ref, &n1);
    px_set_num_threads(2);
    float *o2 = encode_case(m, ref, &n2);
    px_set_num_threads(saved);
    ck_assert_uint_eq(n1, n2);
    ck_assert_msg(memcmp(o1, o2, n1 * sizeof *o1) == 0, "1 and 2 threads differ");
    free(o1); free(o2);
    px_st_close(ref);
    px_t5_free(m);
}
END_TEST

/* Streaming changes where the weights are read from, never the arithmetic:
 * the resident, mmap-streamed and pread-streamed encoders give the same bits,
 * also on a second call that maps the released pages again. The released-byte
 * counter shows the release path is really taken: every block matrix and the
 * embedding table (page-rounded outward, so at least their bytes). */
START_TEST(streaming_bit_identical)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data("pipe_ms"));
    px_t5 *mr = px_t5_load(dir, NULL), *ms = px_t5_load(dir, NULL);
    ck_assert_msg(mr && ms, "%s", px_last_error());
    px_st_file *ref = px_test_open(px_test_data("cases/ms_dpm3_batch2_neg_48x80.safetensors"));
    const px_t5_config *c = px_t5_get_config(ms);
    const size_t I = (size_t)(c->num_heads * c->d_kv), D = (size_t)c->d_model, F = (size_t)c->d_ff;
    const size_t blocks = (size_t)c->num_layers * (4 * I * D + 3 * F * D) * sizeof(float);
    const size_t embed = (size_t)c->vocab_size * D * sizeof(float);

    px_t5_set_stream(mr, PX_T5_RESIDENT);
    size_t n0, n1, n2, n3;
    float *o0 = encode_case(mr, ref, &n0);
    ck_assert_uint_eq(px_t5_released_bytes(mr), 0);

    /* the default is PX_T5_STREAM_MMAP */
    float *o1 = encode_case(ms, ref, &n1);
    const size_t rel1 = px_t5_released_bytes(ms);
    ck_assert_msg(rel1 >= blocks + embed, "released %zu bytes, the blocks and embedding hold %zu", rel1,
                  blocks + embed);
    float *o2 = encode_case(ms, ref, &n2); /* reads the released pages again */
    ck_assert_uint_ge(px_t5_released_bytes(ms), 2 * rel1);

    px_t5_set_stream(ms, PX_T5_STREAM_READ);
    const size_t before = px_t5_released_bytes(ms);
    float *o3 = encode_case(ms, ref, &n3);
    /* the blocks came through pread: only the embedding table was released */
    ck_assert_uint_le(px_t5_released_bytes(ms) - before, embed + 2 * (size_t)sysconf(_SC_PAGESIZE));

    ck_assert_uint_eq(n0, n1);
    ck_assert_uint_eq(n0, n2);
    ck_assert_uint_eq(n0, n3);
    ck_assert_msg(memcmp(o0, o1, n0 * sizeof *o0) == 0, "mmap-streamed differs from resident");
    ck_assert_msg(memcmp(o0, o2, n0 * sizeof *o0) == 0, "second mmap-streamed call differs");
    ck_assert_msg(memcmp(o0, o3, n0 * sizeof *o0) == 0, "pread-streamed differs from resident");
    free(o0); free(o1); free(o2); free(o3);
    px_st_close(ref);
    px_t5_free(mr);
    px_t5_free(ms);
}
END_TEST

/* ---- prompt embeddings of every reference case --------------------------- */

/* Encodes a case's (B, L) ids/mask as one batch (L = the call's
 * max_sequence_length: 120, Sigma 300) and checks the reference embeddings,
 * which encode_prompt repeats per image: rows b*n .. b*n+n-1. */
static void check_embeds(px_t5 *m, const px_st_file *ref, const char *ids_key, const char *mask_key,
                         const char *embeds_key, int64_t nipp, int L, double *worst)
{
    size_t n, nm, ne;
    int32_t *ids = get_i32(ref, ids_key, &n), *mask = get_i32(ref, mask_key, &nm);
    ck_assert_uint_eq(n, nm);
    ck_assert_uint_eq(n % (size_t)L, 0);
    const int B = (int)(n / (size_t)L), D = px_t5_d_model(m);
    float *out = malloc(n * D * sizeof *out);
    ck_assert_msg(px_t5_encode(m, ids, mask, B, L, out, NULL) == 0, "%s", px_last_error());
    float *want = px_test_get_f32(ref, embeds_key, &ne);
    ck_assert_uint_eq(ne, (size_t)(B * nipp) * (size_t)L * D);
    for (int b = 0; b < B; b++)
        for (int64_t r = 0; r < nipp; r++) {
            char label[256];
            snprintf(label, sizeof label, "%s %s[%lld] (prompt %d)", ref->path, embeds_key,
                     (long long)(b * nipp + r), b);
            check_close(out + (size_t)b * L * D, want + (size_t)(b * nipp + r) * L * D, (size_t)L * D, label, 0,
                        worst);
        }
    free(ids); free(mask); free(out); free(want);
}

START_TEST(prompt_embeds_every_case)
{
    px_json *index = px_json_load_file(px_test_data("cases/index.json"));
    ck_assert_msg(index && index->type == PX_JSON_ARRAY, "%s", px_last_error());
    const char *pipes[4] = { "pipe_small", "pipe_ms", "pipe_lcm", "pipe_sigma" };
    px_t5 *models[4] = { NULL, NULL, NULL, NULL };
    size_t ncases = 0, nneg = 0;
    double worst = 0;
    for (size_t c = 0; c < index->count; c++) {
        const char *name, *pipe;
        ck_assert_int_eq(px_json_req_string(index->items[c], "name", &name, "index.json"), 0);
        ck_assert_int_eq(px_json_req_string(index->items[c], "pipeline", &pipe, "index.json"), 0);
        int p = -1;
        for (int k = 0; k < 4; k++)
            if (!strcmp(pipe, pipes[k])) p = k;
        ck_assert_msg(p >= 0, "case %s: unknown pipeline %s", name, pipe);
        if (!models[p]) {
            char dir[512];
            snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data(pipes[p]));
            models[p] = px_t5_load(dir, NULL);
            ck_assert_msg(models[p] != NULL, "%s", px_last_error());
        }
        char rel[512];
        snprintf(rel, sizeof rel, "cases/%s.json", name);
        px_json *cj = px_json_load_file(px_test_data(rel));
        ck_assert_msg(cj != NULL, "%s", px_last_error());
        int64_t nipp;
        ck_assert_int_eq(px_json_req_int(px_json_get(cj, "call"), "num_images_per_prompt", &nipp, rel), 0);
        int64_t L;
        ck_assert_int_eq(px_json_req_int(px_json_get(cj, "call"), "max_sequence_length", &L, rel), 0);
        snprintf(rel, sizeof rel, "cases/%s.safetensors", name);
        px_st_file *ref = px_test_open(px_test_data(rel));
        check_embeds(models[p], ref, "pipeline/prompt_ids", "pipeline/prompt_mask", "pipeline/prompt_embeds",
                     nipp, (int)L, &worst);
        if (px_st_find(ref, "pipeline/negative_ids")) { /* only with classifier-free guidance */
            check_embeds(models[p], ref, "pipeline/negative_ids", "pipeline/negative_mask",
                         "pipeline/negative_prompt_embeds", nipp, (int)L, &worst);
            nneg++;
        }
        px_st_close(ref);
        px_json_free(cj);
        ncases++;
    }
    if (verbose())
        fprintf(stderr, "prompt_embeds: %zu cases (%zu with negative prompts), worst abs err / max|want| = %.3g\n",
                ncases, nneg, worst);
    ck_assert_uint_eq(ncases, index->count);
    ck_assert_uint_ge(ncases, 31);
    ck_assert_uint_ge(nneg, 20);
    for (int k = 0; k < 4; k++) px_t5_free(models[k]);
    px_json_free(index);
}
END_TEST

/* ---- converted copies of the checkpoints --------------------------------- */

static char tmpdir[256];

static void setup(void) { px_test_tmpdir_make(tmpdir, sizeof tmpdir, "t5"); }
static void teardown(void) { px_test_tmpdir_remove(tmpdir); }

static float *encode_case(px_t5 *m, const px_st_file *ref, size_t *n_out)
{
    size_t n, nm;
    int32_t *ids = get_i32(ref, "pipeline/prompt_ids", &n), *mask = get_i32(ref, "pipeline/prompt_mask", &nm);
    const int D = px_t5_d_model(m);
    float *out = malloc(n * D * sizeof *out);
    ck_assert_msg(px_t5_encode(m, ids, mask, (int)(n / 120), 120, out, NULL) == 0, "%s", px_last_error());
    free(ids); free(mask);
    *n_out = n * D;
    return out;
}

/* Half-precision checkpoints stay half in memory and are widened exactly
 * inside the GEMM: their output equals that of an F32 checkpoint holding the
 * same rounded values. Against the F32 reference the difference is the
 * rounding of the weights themselves (documented in doc/t5.md). */
static void check_half(const char *pipe, const char *case_name, px_dtype half, const char *variant,
                       double tol_vs_ref)
{
    char src[512], half_dir[512], rounded_dir[512], rel[256];
    snprintf(src, sizeof src, "%s/text_encoder", px_test_data(pipe));
    snprintf(half_dir, sizeof half_dir, "%s/%s-%s", tmpdir, pipe, variant);
    snprintf(rounded_dir, sizeof rounded_dir, "%s/%s-%s-f32", tmpdir, pipe, variant);
    ck_assert_int_eq(mkdir(half_dir, 0700), 0);
    ck_assert_int_eq(mkdir(rounded_dir, 0700), 0);
    px_test_copy_config(src, half_dir, NULL, NULL);
    px_test_copy_config(src, rounded_dir, NULL, NULL);
    px_test_copy_weights(src, "model", half_dir,
                         &(px_test_copy_opts){ .variant = variant, .values = PX_TEST_COPY_HALF, .half = half });
    px_test_copy_weights(src, "model", rounded_dir,
                         &(px_test_copy_opts){ .values = PX_TEST_COPY_HALF_AS_F32, .half = half });

    px_t5 *mh = px_t5_load(half_dir, variant);
    ck_assert_msg(mh != NULL, "%s", px_last_error());
    ck_assert_ptr_null(px_t5_load(half_dir, NULL)); /* no plain model.safetensors there */
    px_t5 *mr = px_t5_load(rounded_dir, NULL);
    ck_assert_msg(mr != NULL, "%s", px_last_error());
    snprintf(rel, sizeof rel, "cases/%s.safetensors", case_name);
    px_st_file *ref = px_test_open(px_test_data(rel));
    size_t n, n2, nw;
    float *oh = encode_case(mh, ref, &n), *orr = encode_case(mr, ref, &n2);
    ck_assert_uint_eq(n, n2);
    char label[256];
    snprintf(label, sizeof label, "%s %s weights vs rounded F32 weights", pipe, variant);
    assert_close(oh, orr, n, 0, 0, label);
    float *want = px_test_get_f32(ref, "pipeline/prompt_embeds", &nw);
    ck_assert_uint_eq(n, nw);
    double am = absmax(want, n), ma;
    px_close_stats(oh, want, n, 0, 0, &ma, NULL);
    if (verbose())
        fprintf(stderr, "%s %s: max abs err vs F32 reference %.3g (max|want| %.3g, %.3g of max)\n", pipe,
                variant, ma, am, ma / am);
    snprintf(label, sizeof label, "%s %s weights vs F32 reference", pipe, variant);
    assert_close(oh, want, n, tol_vs_ref * am, 0, label);
    free(oh); free(orr); free(want);
    px_st_close(ref);
    px_t5_free(mh);
    px_t5_free(mr);
}

START_TEST(bf16_weights)
{
    check_half("pipe_small", "small_dpm2_cfg", PX_BF16, "bf16", BF16_TOL);
    check_half("pipe_ms", "ms_dpm2_cfg_32x80", PX_BF16, "bf16", BF16_TOL);
}
END_TEST

START_TEST(f16_weights)
{
    check_half("pipe_small", "small_dpm2_cfg", PX_F16, "fp16", F16_TOL);
    check_half("pipe_ms", "ms_dpm2_cfg_32x80", PX_F16, "fp16", F16_TOL);
}
END_TEST

/* ---- broken checkpoints and inputs --------------------------------------- */

/* A copy of pipe_small's encoder with one thing wrong must fail to load with
 * a message containing `expect`. */
static void expect_load_error(const char *cfg_from, const char *cfg_to, const char *drop, const char *reshape,
                              const char *expect)
{
    static int k;
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/text_encoder", px_test_data("pipe_small"));
    snprintf(dst, sizeof dst, "%s/broken%d", tmpdir, k++);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    px_test_copy_config(src, dst, cfg_from, cfg_to);
    /* the wrong shape: a 2-D weight transposed */
    px_test_copy_weights(src, "model", dst,
                         &(px_test_copy_opts){ .drop = drop, .reshape = reshape, .bad_shape = PX_TEST_SHAPE_SWAPPED });
    px_clear_error();
    px_t5 *m = px_t5_load(dst, NULL);
    ck_assert_msg(m == NULL, "a broken checkpoint (%s) loaded", expect);
    ck_assert_msg(strstr(px_last_error(), expect) != NULL, "error '%s' does not mention '%s'", px_last_error(),
                  expect);
    if (verbose()) fprintf(stderr, "broken checkpoint: %s\n", px_last_error());
}

START_TEST(broken_checkpoints)
{
    /* the unmodified copy loads (so the failures below are the edits') */
    char src[512], dst[512];
    snprintf(src, sizeof src, "%s/text_encoder", px_test_data("pipe_small"));
    snprintf(dst, sizeof dst, "%s/intact", tmpdir);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    px_test_copy_config(src, dst, NULL, NULL);
    px_test_copy_weights(src, "model", dst, NULL);
    px_t5 *m = px_t5_load(dst, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_t5_free(m);

    expect_load_error(NULL, NULL, "encoder.block.1.layer.1.DenseReluDense.wo.weight", NULL,
                      "'encoder.block.1.layer.1.DenseReluDense.wo.weight' is missing");
    expect_load_error(NULL, NULL, "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight", NULL,
                      "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    expect_load_error(NULL, NULL, "encoder.final_layer_norm.weight", NULL, "encoder.final_layer_norm.weight");
    expect_load_error(NULL, NULL, "shared.weight", NULL, "'shared.weight' is missing");
    expect_load_error(NULL, NULL, NULL, "encoder.block.0.layer.1.DenseReluDense.wi_0.weight",
                      "encoder.block.0.layer.1.DenseReluDense.wi_0.weight");
    expect_load_error("\"gated-gelu\"", "\"relu\"", NULL, NULL, "feed_forward_proj 'relu'");
    expect_load_error("\"d_model\": 24", "\"d_model\": 32", NULL, NULL, "shared.weight");
    expect_load_error("\"d_model\": 24,", "", NULL, NULL, "d_model");
    expect_load_error("\"num_heads\": 3", "\"num_heads\": -3", NULL, NULL, "num_heads");
    expect_load_error("\"num_layers\": 2", "\"num_layers\": 3", NULL, NULL, "encoder.block.2.layer.0.layer_norm.weight");
    /* fewer layers than the file has: block 1's nine tensors are not silently dropped */
    expect_load_error("\"num_layers\": 2", "\"num_layers\": 1", NULL, NULL,
                      "model.safetensors: 9 tensors are not used by this configuration (does config.json match the "
                      "weights?): 'encoder.block.1.layer.0.SelfAttention.k.weight', ");
    expect_load_error("\"relative_attention_num_buckets\": 32", "\"relative_attention_num_buckets\": 16", NULL, NULL,
                      "relative_attention_bias.weight");
    expect_load_error("\"model_type\": \"t5\"", "\"model_type\": \"umt5\"", NULL, NULL, "model_type 'umt5'");
    expect_load_error("\"dense_act_fn\": \"gelu_new\"", "\"dense_act_fn\": \"relu\"", NULL, NULL, "dense_act_fn");
    expect_load_error("{", "[", NULL, NULL, "config.json");

    /* no checkpoint at all */
    snprintf(dst, sizeof dst, "%s/empty", tmpdir);
    ck_assert_int_eq(mkdir(dst, 0700), 0);
    ck_assert_ptr_null(px_t5_load(dst, NULL));
    ck_assert_msg(strstr(px_last_error(), "config.json") != NULL, "%s", px_last_error());
    px_test_copy_config(src, dst, NULL, NULL);
    ck_assert_ptr_null(px_t5_load(dst, NULL));
    ck_assert_msg(strstr(px_last_error(), "model.safetensors") != NULL, "%s", px_last_error());
}
END_TEST

/* DIR/model.safetensors: pipe_small's T5 tensors, shared.weight stored as
 * `shared_as` (NULL: unchanged), plus `extra` (NULL: none) holding the first
 * `extra_rows` rows of shared.weight. */
static void write_t5_copy(const char *dir, const char *shared_as, const char *extra, int64_t extra_rows)
{
    char src[512], path[1200];
    snprintf(src, sizeof src, "%s/text_encoder", px_test_data("pipe_small"));
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    px_test_copy_config(src, dir, NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", src);
    px_st_file *f = px_test_open(path);
    px_st_writer *w = px_st_writer_new();
    for (size_t i = 0; i < f->n; i++) {
        const px_st_entry *e = &f->entries[i];
        const char *name = shared_as && !strcmp(e->name, "shared.weight") ? shared_as : e->name;
        ck_assert_int_eq(px_st_writer_add(w, name, e->t.dtype, e->t.ndim, e->t.shape, e->t.data), 0);
        if (extra && !strcmp(e->name, "shared.weight"))
            ck_assert_int_eq(px_st_writer_add(w, extra, e->t.dtype, 2, (int64_t[]){ extra_rows, e->t.shape[1] },
                                              e->t.data), 0);
    }
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    ck_assert_int_eq(px_st_writer_save(w, path), 0);
    px_st_writer_free(w);
    px_st_close(f);
}

/* encoder.embed_tokens is tied to shared: either name loads, both together
 * load when they agree, and any other tensor the encoder does not use is an
 * error naming it. */
START_TEST(tied_embeddings_and_unused_tensors)
{
    char dir[600];
    px_st_file *ref = px_test_open(px_test_data("cases/small_dpm2_cfg.safetensors"));
    px_t5 *m0 = px_t5_load(px_test_data("pipe_small/text_encoder"), NULL);
    ck_assert_msg(m0 != NULL, "%s", px_last_error());
    size_t n0, n;
    float *want = encode_case(m0, ref, &n0);
    const int64_t vocab = px_t5_get_config(m0)->vocab_size;
    px_t5_free(m0);
    static const struct { const char *shared_as, *extra; int64_t rows_less; const char *error; } cases[] = {
        { NULL, "encoder.embed_tokens.weight", 0, NULL },
        { "encoder.embed_tokens.weight", NULL, 0, NULL },
        { NULL, "encoder.embed_tokens.weight", 1, "tensor 'encoder.embed_tokens.weight': expected shape" },
        { NULL, "lm_head.weight", 0, "model.safetensors: 1 tensor is not used by this configuration (does "
                                     "config.json match the weights?): 'lm_head.weight'" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(dir, sizeof dir, "%s/tied%zu", tmpdir, i);
        write_t5_copy(dir, cases[i].shared_as, cases[i].extra, vocab - cases[i].rows_less);
        px_clear_error();
        px_t5 *m = px_t5_load(dir, NULL);
        if (cases[i].error) {
            ck_assert_msg(m == NULL, "case %zu loaded", i);
            ck_assert_msg(strstr(px_last_error(), cases[i].error) != NULL, "error '%s' does not mention '%s'",
                          px_last_error(), cases[i].error);
            continue;
        }
        ck_assert_msg(m != NULL, "case %zu: %s", i, px_last_error());
        float *got = encode_case(m, ref, &n);
        ck_assert_uint_eq(n, n0);
        assert_close(got, want, n, 0, 0, "tied embedding copy");
        free(got);
        px_t5_free(m);
    }
    free(want);
    px_st_close(ref);
}
END_TEST

START_TEST(bad_inputs)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/text_encoder", px_test_data("pipe_small"));
    px_t5 *m = px_t5_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    int32_t ids[4] = { 100, 1, 0, 0 }, mask[4] = { 1, 1, 0, 0 };
    float out[4 * 24];
    ck_assert_int_eq(px_t5_encode(m, ids, mask, 1, 4, out, NULL), 0);
    ids[1] = 32128;
    ck_assert_int_eq(px_t5_encode(m, ids, mask, 1, 4, out, NULL), -1);
    ck_assert_msg(strstr(px_last_error(), "token id 32128") != NULL, "%s", px_last_error());
    ids[1] = -1;
    ck_assert_int_eq(px_t5_encode(m, ids, mask, 2, 2, out, NULL), -1);
    ck_assert_msg(strstr(px_last_error(), "token id -1 at (0, 1)") != NULL, "%s", px_last_error());
    ids[1] = 1;
    mask[3] = 2;
    ck_assert_int_eq(px_t5_encode(m, ids, mask, 2, 2, out, NULL), -1);
    ck_assert_msg(strstr(px_last_error(), "mask value 2 at (1, 1)") != NULL, "%s", px_last_error());
    ck_assert_int_eq(px_t5_encode(m, ids, mask, 0, 4, out, NULL), -1);
    px_t5_free(m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("t5");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, modules_pipe_small);
    tcase_add_test(tc, modules_pipe_ms);
    tcase_add_test(tc, modules_reference_kernels);
    tcase_add_test(tc, threads_bit_identical);
    tcase_add_test(tc, streaming_bit_identical);
    tcase_add_test(tc, dump_filter_keeps_call_indices);
    tcase_add_test(tc, prompt_embeds_every_case);
    tcase_add_test(tc, bad_inputs);
    suite_add_tcase(s, tc);
    TCase *tw = tcase_create("converted checkpoints");
    tcase_set_timeout(tw, 120);
    tcase_add_checked_fixture(tw, setup, teardown);
    tcase_add_test(tw, bf16_weights);
    tcase_add_test(tw, f16_weights);
    tcase_add_test(tw, broken_checkpoints);
    tcase_add_test(tw, tied_embeddings_and_unused_tensors);
    suite_add_tcase(s, tw);
    return px_test_run(s);
}
