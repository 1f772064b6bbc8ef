/* PixArt DiT (model/dit.c) against diffusers' PixArtTransformer2DModel: every
 * recorded module output of the first denoising step of small_dpm2_cfg
 * (pipe_small) and ms_dpm2_cfg_32x80 (pipe_ms: micro-conditioning,
 * interpolation_scale 2, 2x5 grid), the raw transformer output of the first
 * step of every reference case, half-precision weight copies, and load errors.
 * Tolerances and their reasons: doc/dit.md. */
#include "testutil.h"

#include "model/dit.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Tolerances (doc/dit.md), |got - want| <= ATOL + RTOL * |want|, values are O(1).
 * Measured maxima in brackets; the main source is the 1-ULP differences of
 * torch's SLEEF exp/sin/cos in the timestep embedding (see sinusoid_atol),
 * then sgemm / attention summation order. */
#define ACT_ATOL 1e-5   /* every transformer/ activation, F32 weights [4.5e-6] */
#define ACT_RTOL 0
#define OUT_ATOL 5e-6   /* transformer_out_step00 of every case [2.6e-6] */
#define OUT_RTOL 0
#define POS_ATOL 6e-8   /* extra/pos_embed: one float32 ULP below 1 for libm sin/cos [0: bit-exact] */
#define POS_RTOL 0
#define BF16_ATOL 1e-2  /* BF16 weight copy vs the F32 model [5.1e-3] */
#define F16_ATOL 1e-3   /* F16 weight copy vs the F32 model [5.2e-4] */

static int verbose(void)
{
    const char *v = getenv("PIXART_TEST_VERBOSE");
    return v && *v && strcmp(v, "0") != 0;
}

// ----------------------------------------------------------------------------
// the transformer call of a case's first denoising step

typedef struct {
    char name[64];
    px_st_file *f;
    px_json *j;
    int B, h, w, L, cap, micro;
    float *x, *t, *ctx, *res, *ar;
    int32_t *mask;
} tcase;

static const px_json *jreq(const px_json *o, const char *key, const char *ctx)
{
    const px_json *v = px_json_get(o, key);
    if (!v) ck_abort_msg("%s: JSON has no '%s'", ctx, key);
    return v;
}

/* latent_model_input = cat([latents] * 2) with CFG; timestep expanded;
 * encoder_hidden_states = cat([negative_prompt_embeds, prompt_embeds]);
 * mask = cat([negative_mask, mask]); resolution / aspect ratio per row. */
static void tcase_load(tcase *c, const char *name)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s.safetensors", name);
    c->f = px_test_open(px_test_data(rel));
    snprintf(rel, sizeof rel, "cases/%s.json", name);
    c->j = px_json_load_file(px_test_data(rel));
    if (!c->j) ck_abort_msg("%s", px_last_error());
    const px_json *d = jreq(c->j, "derived", name);
    int cfg = jreq(d, "do_classifier_free_guidance", name)->boolean;

    const px_tensor *lt = px_st_find(c->f, "pipeline/initial_latents");
    ck_assert_ptr_nonnull(lt);
    ck_assert_int_eq(lt->ndim, 4);
    const int Bi = (int)lt->shape[0], Cin = (int)lt->shape[1];
    c->h = (int)lt->shape[2];
    c->w = (int)lt->shape[3];
    c->B = cfg ? 2 * Bi : Bi;
    size_t n;
    float *lat = px_test_get_f32(c->f, "pipeline/initial_latents", &n);
    c->x = malloc((size_t)c->B * n / Bi * sizeof(float));
    for (int k = 0; k < (cfg ? 2 : 1); k++) memcpy(c->x + k * n, lat, n * sizeof(float));
    free(lat);
    (void)Cin;

    int64_t *ts = px_test_get_i64(c->f, "pipeline/timesteps", &n);
    c->t = malloc((size_t)c->B * sizeof(float));
    for (int b = 0; b < c->B; b++) c->t[b] = (float)ts[0];
    free(ts);

    const px_tensor *pe = px_st_find(c->f, "pipeline/prompt_embeds");
    ck_assert_ptr_nonnull(pe);
    c->L = (int)pe->shape[1];
    c->cap = (int)pe->shape[2];
    size_t ne, nm;
    float *emb = px_test_get_f32(c->f, "pipeline/prompt_embeds", &ne);
    int64_t *msk = px_test_get_i64(c->f, "pipeline/prompt_attention_mask", &nm);
    c->ctx = malloc((size_t)c->B * c->L * c->cap * sizeof(float));
    c->mask = malloc((size_t)c->B * c->L * sizeof(int32_t));
    size_t off_e = 0, off_m = 0;
    if (cfg) {
        size_t ne2, nm2;
        float *nemb = px_test_get_f32(c->f, "pipeline/negative_prompt_embeds", &ne2);
        int64_t *nmsk = px_test_get_i64(c->f, "pipeline/negative_prompt_attention_mask", &nm2);
        ck_assert(ne2 == ne && nm2 == nm);
        memcpy(c->ctx, nemb, ne * sizeof(float));
        for (size_t i = 0; i < nm; i++) c->mask[i] = (int32_t)nmsk[i];
        off_e = ne;
        off_m = nm;
        free(nemb);
        free(nmsk);
    }
    memcpy(c->ctx + off_e, emb, ne * sizeof(float));
    for (size_t i = 0; i < nm; i++) c->mask[off_m + i] = (int32_t)msk[i];
    free(emb);
    free(msk);

    const px_json *ack = px_json_get(d, "added_cond_kwargs");
    c->micro = ack && ack->type == PX_JSON_OBJECT;
    if (c->micro) {
        const px_json *res = jreq(ack, "resolution", name);
        const px_json *ar = jreq(ack, "aspect_ratio", name);
        ck_assert(res->type == PX_JSON_ARRAY && res->count == 2);
        c->res = malloc((size_t)c->B * 2 * sizeof(float));
        c->ar = malloc((size_t)c->B * sizeof(float));
        for (int b = 0; b < c->B; b++) {
            /* the pipeline builds them as float32 tensors */
            c->res[2 * b] = (float)res->items[0]->number;
            c->res[2 * b + 1] = (float)res->items[1]->number;
            c->ar[b] = (float)ar->number;
        }
    }
}

static void tcase_free(tcase *c)
{
    px_st_close(c->f);
    px_json_free(c->j);
    free(c->x); free(c->t); free(c->ctx); free(c->mask); free(c->res); free(c->ar);
}

static px_dit *load_model(const char *pipe)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/transformer", pipe);
    px_dit *m = px_dit_load(px_test_data(rel), NULL);
    if (!m) ck_abort_msg("px_dit_load(%s): %s", rel, px_last_error());
    return m;
}

static float *run(px_dit *m, const tcase *c, px_dump *dump)
{
    const int oc = px_dit_out_channels(m);
    float *out = malloc((size_t)c->B * oc * c->h * c->w * sizeof(float));
    if (px_dit_forward(m, out, c->x, c->t, c->ctx, c->mask, c->B, c->h, c->w, c->L, c->res, c->ar, dump) < 0)
        ck_abort_msg("%s: forward failed: %s", c->name, px_last_error());
    return out;
}

static void report(const char *label, const float *got, const float *want, size_t n)
{
    if (!verbose()) return;
    double ma, mr;
    px_close_stats(got, want, n, 0, 0, &ma, &mr);
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(want[i]));
    fprintf(stderr, "  %-70s max abs %.3g (|ref| max %.3g) max rel %.3g\n", label, ma, amax, mr);
}

/* The sinusoidal embeddings (time_proj, additional_condition_proj) compute
 * sin/cos(t * exp(-ln(10000) k / 128)) in float32. torch evaluates exp, sin
 * and cos with its vectorised SLEEF kernels (1-ULP bound), glibc rounds
 * correctly; a 1-ULP difference of exp moves the argument by 1 ULP of t*f,
 * which moves sin/cos by up to that much. So the tolerance is one float32
 * ULP of the largest argument (max |t|) plus one ULP of the result. */
static double sinusoid_atol(const px_dump *d, const char *key)
{
    char in[256];
    snprintf(in, sizeof in, "%s.in", key);
    size_t n;
    const float *t = px_dump_get(d, in, &n);
    if (!t) ck_abort_msg("'%s' was not recorded", in);
    double tmax = 0;
    for (size_t i = 0; i < n; i++) tmax = fmax(tmax, fabs(t[i]));
    int e;
    frexp(tmax, &e); /* tmax in [2^(e-1), 2^e) -> ulp = 2^(e-24) */
    return ldexp(1.0, e - 24) + ldexp(1.0, -24);
}

/* Compares one dumped key with the reference tensor `ref_key`. */
static void compare_key(const px_dump *d, const char *key, const px_st_file *f, const char *ref_key)
{
    size_t n, m;
    const float *got = px_dump_get(d, key, &n);
    if (!got) ck_abort_msg("%s: the forward did not record '%s'", f->path, key);
    float *want = px_test_get_f32(f, ref_key, &m);
    if (m != n) ck_abort_msg("%s: '%s' has %zu elements, the forward recorded %zu", f->path, key, m, n);
    report(key, got, want, n);
    double atol = ACT_ATOL, rtol = ACT_RTOL;
    if ((strstr(key, ".time_proj#") || strstr(key, ".additional_condition_proj#")) && !strstr(key, ".in")) {
        atol = sinusoid_atol(d, key);
        rtol = 0;
    }
    px_assert_close_(got, want, n, atol, rtol, key, __FILE__, __LINE__);
    free(want);
}

/* Every stored transformer/ key must be recorded and match; every recorded
 * key must be a reference key (stored, or an alias of a stored one). */
static void check_dump(const px_dump *d, const tcase *c)
{
    int nstored = 0;
    for (size_t i = 0; i < c->f->n; i++) {
        const char *k = c->f->entries[i].name;
        if (strncmp(k, "transformer/", 12) != 0) continue;
        compare_key(d, k, c->f, k);
        nstored++;
    }
    ck_assert_int_gt(nstored, 50);
    const px_json *aliases = px_json_get(c->j, "aliases");
    for (size_t i = 0; i < px_dump_count(d); i++) {
        const char *k = px_dump_key(d, i);
        if (px_st_find(c->f, k)) continue;
        const px_json *a = aliases ? px_json_get(aliases, k) : NULL;
        if (!a || a->type != PX_JSON_STRING)
            ck_abort_msg("%s: recorded key '%s' is not a reference key", c->name, k);
        compare_key(d, k, c->f, a->string);
    }
}

static void check_out(const float *out, const tcase *c, const char *what)
{
    size_t n;
    float *want = px_test_get_f32(c->f, "pipeline/transformer_out_step00", &n);
    ck_assert_uint_eq(n, (size_t)c->B * 8 * c->h * c->w);
    char label[160];
    snprintf(label, sizeof label, "%s %s transformer_out_step00", c->name, what);
    report(label, out, want, n);
    px_assert_close_(out, want, n, OUT_ATOL, OUT_RTOL, label, __FILE__, __LINE__);
    free(want);
}

static void check_pos_embed(px_dit *m, const tcase *c)
{
    size_t n;
    float *want = px_test_get_f32(c->f, "extra/pos_embed", &n);
    const int p = px_dit_patch_size(m);
    ck_assert_uint_eq(n, (size_t)(c->h / p) * (c->w / p) * px_dit_hidden_size(m));
    float *got = malloc(n * sizeof(float));
    ck_assert_int_eq(px_dit_pos_embed(m, got, c->h, c->w), 0);
    report("extra/pos_embed", got, want, n);
    assert_close(got, want, n, POS_ATOL, POS_RTOL, "extra/pos_embed");
    free(got);
    free(want);
}

static void module_by_module(const char *pipe, const char *name, int micro)
{
    px_dit *m = load_model(pipe);
    ck_assert_int_eq(px_dit_uses_micro_conditions(m), micro);
    tcase c;
    tcase_load(&c, name);
    ck_assert_int_eq(c.micro, micro);
    ck_assert_int_eq(c.cap, px_dit_caption_channels(m));
    if (verbose()) fprintf(stderr, "%s (%s):\n", name, pipe);
    px_dump *d = px_dump_new();
    float *out = run(m, &c, d);
    check_dump(d, &c);
    check_out(out, &c, "F32");
    check_pos_embed(m, &c);
    /* a second call without a dump (other buffer sizes, cached pos-embed) gives the same bits */
    float *out2 = run(m, &c, NULL);
    ck_assert_int_eq(memcmp(out, out2, (size_t)c.B * 8 * c.h * c.w * sizeof(float)), 0);
    free(out);
    free(out2);
    px_dump_free(d);
    tcase_free(&c);
    px_dit_free(m);
}

START_TEST(small_modules_match_diffusers) { module_by_module("pipe_small", "small_dpm2_cfg", 0); }
END_TEST

START_TEST(ms_modules_match_diffusers) { module_by_module("pipe_ms", "ms_dpm2_cfg_32x80", 1); }
END_TEST

/* transformer_out_step00 of every reference case (batch 1..8, no CFG,
 * non-square 8x16 / 12x6 / 6x10, 104x144 binned latents, timestep 0) */
START_TEST(all_cases_first_step)
{
    px_json *idx = px_json_load_file(px_test_data("cases/index.json"));
    if (!idx) ck_abort_msg("%s", px_last_error());
    ck_assert(idx->type == PX_JSON_ARRAY && idx->count >= 17);
    const char *pipes[4] = { "pipe_small", "pipe_ms", "pipe_lcm", "pipe_sigma" };
    px_dit *models[4];
    for (int k = 0; k < 4; k++) models[k] = load_model(pipes[k]);
    if (verbose()) fprintf(stderr, "first step of every case:\n");
    for (size_t i = 0; i < idx->count; i++) {
        const char *name = jreq(idx->items[i], "name", "index.json")->string;
        const char *pipe = jreq(idx->items[i], "pipeline", "index.json")->string;
        px_dit *m = NULL;
        for (int k = 0; k < 4; k++)
            if (!strcmp(pipe, pipes[k])) m = models[k];
        ck_assert_msg(m != NULL, "case %s: unknown pipeline %s", name, pipe);
        tcase c;
        tcase_load(&c, name);
        ck_assert_int_eq(c.micro, px_dit_uses_micro_conditions(m));
        float *out = run(m, &c, NULL);
        check_out(out, &c, "F32");
        free(out);
        tcase_free(&c);
    }
    for (int k = 0; k < 4; k++) px_dit_free(models[k]);
    px_json_free(idx);
}
END_TEST

// ----------------------------------------------------------------------------
// modified checkpoint copies in a temporary folder

static const char *transformer_dir(const char *pipe)
{
    char rel[128];
    snprintf(rel, sizeof rel, "%s/transformer", pipe);
    return px_test_data(rel);
}

/* config.json of `pipe` with the first occurrence of `from` replaced by `to` */
static void write_config(const char *dir, const char *pipe, const char *from, const char *to)
{
    px_test_copy_config(transformer_dir(pipe), dir, from, to);
}

/* The F32 weights of `pipe` without tensor `drop`, with tensor `reshape`
 * written with its first dimension one larger. */
static void write_weights(const char *dir, const char *pipe, const char *drop, const char *reshape)
{
    px_test_copy_weights(transformer_dir(pipe), "diffusion_pytorch_model", dir,
                         &(px_test_copy_opts){ .drop = drop, .reshape = reshape,
                                               .bad_shape = PX_TEST_SHAPE_DIM0_PLUS1 });
}

static void half_copy(const char *pipe, const char *name, px_dtype dtype, const char *variant, double atol)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "dit");
    write_config(dir, pipe, NULL, NULL);
    px_test_copy_weights(transformer_dir(pipe), "diffusion_pytorch_model", dir,
                         &(px_test_copy_opts){ .variant = variant, .values = PX_TEST_COPY_HALF, .half = dtype });
    px_dit *mh = px_dit_load(dir, variant);
    if (!mh) ck_abort_msg("%s copy: %s", variant, px_last_error());
    px_dit *mf = load_model(pipe);
    tcase c;
    tcase_load(&c, name);
    float *of = run(mf, &c, NULL), *oh = run(mh, &c, NULL);
    size_t n = (size_t)c.B * 8 * c.h * c.w;
    char label[128];
    snprintf(label, sizeof label, "%s %s weights vs F32", name, variant);
    report(label, oh, of, n);
    assert_close(oh, of, n, atol, 0, label);
    /* and it is not the F32 model by accident: rounding the weights must show */
    double ma;
    px_close_stats(oh, of, n, 0, 0, &ma, NULL);
    ck_assert_msg(ma > 0, "%s: identical to the F32 output", label);
    free(of);
    free(oh);
    tcase_free(&c);
    px_dit_free(mf);
    px_dit_free(mh);
    px_test_tmpdir_remove(dir);
}

/* The blocks' matrices copied into 2 MiB pages (the default) and read from
 * the file mapping (PIXART_DIT_MMAP_WEIGHTS=1) hold the same values: the
 * same bits out. */
START_TEST(resident_and_mapped_weights_same_bits)
{
    px_dit *mr = load_model("pipe_ms");
    setenv("PIXART_DIT_MMAP_WEIGHTS", "1", 1);
    px_dit *mm = load_model("pipe_ms");
    unsetenv("PIXART_DIT_MMAP_WEIGHTS");
    ck_assert_uint_gt(px_dit_resident_bytes(mr), 0);
    ck_assert_uint_eq(px_dit_resident_bytes(mm), 0);
    tcase c;
    tcase_load(&c, "ms_dpm2_cfg_32x80");
    float *a = run(mr, &c, NULL), *b = run(mm, &c, NULL);
    const size_t n = (size_t)c.B * px_dit_out_channels(mr) * c.h * c.w;
    ck_assert_msg(memcmp(a, b, n * sizeof(float)) == 0, "resident and mapped weights gave different bits");
    check_out(a, &c, "F32 resident");
    free(a);
    free(b);
    tcase_free(&c);
    px_dit_free(mr);
    px_dit_free(mm);
}
END_TEST

START_TEST(bf16_weights_close)
{
    half_copy("pipe_small", "small_dpm2_cfg", PX_BF16, "bf16", BF16_ATOL);
    half_copy("pipe_ms", "ms_dpm2_cfg_32x80", PX_BF16, "bf16", BF16_ATOL);
}
END_TEST

START_TEST(f16_weights_close)
{
    half_copy("pipe_small", "small_dpm2_cfg", PX_F16, "fp16", F16_ATOL);
    half_copy("pipe_ms", "ms_dpm2_cfg_32x80", PX_F16, "fp16", F16_ATOL);
}
END_TEST

// ----------------------------------------------------------------------------
// errors

static void expect_load_error(const char *dir, const char *must_contain)
{
    px_clear_error();
    px_dit *m = px_dit_load(dir, NULL);
    if (m) {
        px_dit_free(m);
        ck_abort_msg("load succeeded, expected an error naming '%s'", must_contain);
    }
    const char *e = px_last_error();
    ck_assert_msg(strstr(e, must_contain) != NULL, "error '%s' does not name '%s'", e, must_contain);
}

START_TEST(missing_tensor_named)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "dit");
    write_config(dir, "pipe_small", NULL, NULL);
    write_weights(dir, "pipe_small", "transformer_blocks.1.attn2.to_k.weight", NULL);
    expect_load_error(dir, "transformer_blocks.1.attn2.to_k.weight");
    write_weights(dir, "pipe_ms", "adaln_single.emb.aspect_ratio_embedder.linear_2.bias", NULL);
    write_config(dir, "pipe_ms", NULL, NULL);
    expect_load_error(dir, "adaln_single.emb.aspect_ratio_embedder.linear_2.bias");
    px_test_tmpdir_remove(dir);
}
END_TEST

START_TEST(wrong_shape_named)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "dit");
    write_config(dir, "pipe_small", NULL, NULL);
    const char *names[] = { "proj_out.weight", "transformer_blocks.0.scale_shift_table",
                            "pos_embed.proj.weight", "transformer_blocks.1.ff.net.0.proj.bias" };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        write_weights(dir, "pipe_small", NULL, names[i]);
        expect_load_error(dir, names[i]);
    }
    px_test_tmpdir_remove(dir);
}
END_TEST

/* Tensors the config does not use are an error naming them, not silently
 * dropped weights (issue 11; num_layers: issue 17 finding 9). */
START_TEST(unused_tensors_named)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "dit");
    write_weights(dir, "pipe_small", NULL, NULL);
    write_config(dir, "pipe_small", "\"attention_bias\": true", "\"attention_bias\": false");
    expect_load_error(dir, "diffusion_pytorch_model.safetensors: 12 tensors are not used by this configuration "
                           "(does config.json match the weights?): 'transformer_blocks.0.attn1.to_k.bias', "
                           "'transformer_blocks.0.attn1.to_q.bias', 'transformer_blocks.0.attn1.to_v.bias', ");
    write_config(dir, "pipe_small", "\"num_layers\": 2", "\"num_layers\": 1");
    expect_load_error(dir, "diffusion_pytorch_model.safetensors: 21 tensors are not used by this configuration "
                           "(does config.json match the weights?): 'transformer_blocks.1.attn1.to_k.bias', ");
    /* the unedited config loads from the same weights */
    write_config(dir, "pipe_small", NULL, NULL);
    px_dit *m = px_dit_load(dir, NULL);
    ck_assert_msg(m != NULL, "%s", px_last_error());
    px_dit_free(m);
    px_test_tmpdir_remove(dir);
}
END_TEST

START_TEST(bad_config_field_named)
{
    char dir[256];
    px_test_tmpdir_make(dir, sizeof dir, "dit");
    write_weights(dir, "pipe_small", NULL, NULL);
    static const struct { const char *from, *to, *field; } bad[] = {
        { "\"norm_type\": \"ada_norm_single\"", "\"norm_type\": \"ada_norm_zero\"", "norm_type" },
        { "\"num_attention_heads\": 3", "\"num_attention_heads\": -3", "num_attention_heads" },
        { "\"num_attention_heads\": 3", "\"num_attention_heads\": \"3\"", "num_attention_heads" },
        { "\"patch_size\": 2", "\"patch_size\": 2.5", "patch_size" },
        { "\"activation_fn\": \"gelu-approximate\"", "\"activation_fn\": \"geglu\"", "activation_fn" },
        { "\"PixArtTransformer2DModel\"", "\"UNet2DConditionModel\"", "_class_name" },
        { "\"cross_attention_dim\": 24", "\"cross_attention_dim\": 32", "cross_attention_dim" },
        { "\"sample_size\": 8", "\"sample_size\": 1", "sample_size" },
        { "\"attention_head_dim\": 8", "\"attention_head_dim\": 7", "attention_head_dim" },
        { "\"norm_elementwise_affine\": false", "\"norm_elementwise_affine\": true", "norm_elementwise_affine" },
        { "\"norm_eps\": 1e-06", "\"norm_eps\": \"tiny\"", "norm_eps" },
        { "\"interpolation_scale\": null", "\"interpolation_scale\": -1", "interpolation_scale" },
        { "\"use_additional_conditions\": null", "\"use_additional_conditions\": 1", "use_additional_conditions" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_config(dir, "pipe_small", bad[i].from, bad[i].to);
        expect_load_error(dir, bad[i].field);
        expect_load_error(dir, "config.json");
    }
    /* the legacy class name with ada_norm_single loads; without norm_type it must not */
    write_config(dir, "pipe_small", "\"PixArtTransformer2DModel\"", "\"Transformer2DModel\"");
    px_dit *m = px_dit_load(dir, NULL);
    if (!m) ck_abort_msg("Transformer2DModel config: %s", px_last_error());
    px_dit_free(m);
    write_config(dir, "pipe_small", "\"norm_type\": \"ada_norm_single\",", "");
    px_dit *m2 = px_dit_load(dir, NULL); /* PixArtTransformer2DModel default: ada_norm_single */
    if (!m2) ck_abort_msg("config without norm_type: %s", px_last_error());
    px_dit_free(m2);
    px_test_tmpdir_remove(dir);
    /* no folder at all */
    px_clear_error();
    ck_assert_ptr_null(px_dit_load("/nonexistent-pixart-dir", NULL));
    ck_assert_ptr_nonnull(strstr(px_last_error(), "/nonexistent-pixart-dir"));
}
END_TEST

START_TEST(bad_forward_arguments)
{
    px_dit *ms = load_model("pipe_ms");
    tcase c;
    tcase_load(&c, "ms_dpm2_cfg_32x80");
    float *out = malloc((size_t)c.B * 8 * c.h * c.w * sizeof(float));
    px_clear_error();
    /* micro-conditioned model without resolution / aspect ratio */
    ck_assert_int_eq(px_dit_forward(ms, out, c.x, c.t, c.ctx, c.mask, c.B, c.h, c.w, c.L, NULL, NULL, NULL), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "resolution"));
    /* latent width not a multiple of the patch size */
    ck_assert_int_eq(px_dit_forward(ms, out, c.x, c.t, c.ctx, c.mask, c.B, c.h, c.w - 1, c.L, c.res, c.ar, NULL),
                     -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "patch"));
    /* a mask value other than 0/1 */
    c.mask[3] = 2;
    ck_assert_int_eq(px_dit_forward(ms, out, c.x, c.t, c.ctx, c.mask, c.B, c.h, c.w, c.L, c.res, c.ar, NULL), -1);
    ck_assert_ptr_nonnull(strstr(px_last_error(), "mask"));
    free(out);
    tcase_free(&c);
    px_dit_free(ms);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("dit");
    TCase *tc = tcase_create("dit");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, small_modules_match_diffusers);
    tcase_add_test(tc, ms_modules_match_diffusers);
    tcase_add_test(tc, all_cases_first_step);
    tcase_add_test(tc, resident_and_mapped_weights_same_bits);
    tcase_add_test(tc, bf16_weights_close);
    tcase_add_test(tc, f16_weights_close);
    tcase_add_test(tc, missing_tensor_named);
    tcase_add_test(tc, wrong_shape_named);
    tcase_add_test(tc, unused_tensors_named);
    tcase_add_test(tc, bad_config_field_named);
    tcase_add_test(tc, bad_forward_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return px_test_run(suite()); }
