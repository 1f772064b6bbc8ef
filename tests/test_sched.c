/* Tests for sched/: DDIMScheduler and DPMSolverMultistepScheduler against
 * diffusers v0.30.3 traces, the config reader, and a toy denoising loop.
 *
 * Always on: data/sched/traces.* (the 28 reference traces, trimmed) and
 * data/sched/extra.* (more configurations traced with the real diffusers
 * scheduler code). Optional: the full $PIXART_REFERENCE/sched/ set, incl. the
 * model outputs and initial samples. Every timestep must be identical and
 * every tensor bit-identical (doc/schedulers.md: the arithmetic allows it);
 * the max relative error is printed when not. */
#include "testutil.h"
#include "sched/scheduler.h"
#include "sched/tmath.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------
// trace runner

typedef struct {
    size_t tensors, not_bitexact, out_of_tol;
    double max_rel;
} trace_stats;

/* Compares got with tensor `key`; bit-identical expected, 1e-6 relative reported. */
static void compare(const px_st_file *f, const char *prefix, const char *key, const float *got, size_t n,
                    trace_stats *st)
{
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, key);
    size_t nw;
    float *want = px_test_get_f32(f, name, &nw);
    ck_assert_msg(nw == n, "%s: %zu values, expected %zu", name, n, nw);
    size_t diff = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], 4) && !(isnan(got[i]) && isnan(want[i]))) diff++;
    double max_abs = 0, max_rel = 0;
    size_t bad = px_close_stats(got, want, n, 1e-30, 1e-6, &max_abs, &max_rel);
    st->tensors++;
    if (diff) {
        st->not_bitexact++;
        fprintf(stderr, "%s: %zu of %zu values not bit-identical (max abs %.3g, max rel %.3g)\n", name, diff,
                n, max_abs, max_rel);
    }
    if (bad) st->out_of_tol++;
    if (max_rel > st->max_rel) st->max_rel = max_rel;
    free(want);
}

static int has_key(const px_json *stored, const char *key)
{
    if (!stored) return 1; /* full reference: everything is there */
    for (size_t i = 0; i < stored->count; i++)
        if (!strcmp(stored->items[i]->string, key)) return 1;
    return 0;
}

static int64_t shape_numel(const px_json *s, int64_t *dims4)
{
    ck_assert(s && s->type == PX_JSON_ARRAY && s->count >= 2 && s->count <= 4);
    int64_t n = 1;
    for (size_t i = 0; i < s->count; i++) {
        dims4[i] = s->items[i]->integer;
        n *= dims4[i];
    }
    return n;
}

/* SA-Solver's per-step facts against the reference's record (trace `steps`,
 * case `derived.sasolver_steps`): corrector on/off, its order and tau, the
 * predictor's order and tau. */
static void check_sa_step(const px_json *steps, int64_t i, const px_sa_step_info *got, const char *name)
{
    if (!steps) return; /* gen_extra.py's SA traces record samples and sigmas, not these facts */
    ck_assert_msg(steps && steps->type == PX_JSON_ARRAY && (int64_t)steps->count > i, "%s: steps", name);
    const px_json *e = steps->items[i];
    ck_assert_int_eq(px_json_get(e, "step")->integer, i);
    ck_assert_msg(px_json_get(e, "use_corrector")->boolean == got->use_corrector, "%s step %lld: use_corrector",
                  name, (long long)i);
    if (got->use_corrector) {
        ck_assert_int_eq(px_json_get(e, "corrector_order")->integer, got->corrector_order);
        ck_assert_int_eq(px_json_get(e, "tau_corrector")->integer, got->tau_corrector);
    }
    ck_assert_int_eq(px_json_get(e, "predictor_order")->integer, got->predictor_order);
    ck_assert_int_eq(px_json_get(e, "tau_predictor")->integer, got->tau_predictor);
    const px_json *drawn = px_json_get(e, "noise_drawn");
    if (drawn) ck_assert(drawn->boolean);
}

/* Runs one trace (reference JSON layout); tensors are f[prefix + key]. */
static void run_trace(const px_json *t, const px_st_file *f, const char *prefix, int full, trace_stats *st)
{
    const char *name = px_json_get(t, "name")->string;
    const px_json *stored = full ? NULL : px_json_get(t, "stored");

    px_sched_config cfg;
    ck_assert_msg(!px_sched_config_from_json(&cfg, px_json_get(t, "config"), -1, name), "%s", px_last_error());
    ck_assert_str_eq(px_sched_class_name(cfg.kind), px_json_get(t, "class")->string);
    px_scheduler s;
    ck_assert_msg(!px_scheduler_init(&s, &cfg), "%s: %s", name, px_last_error());
    ck_assert(s.init_noise_sigma == 1.0f);

    const px_json *sts = px_json_get(t, "set_timesteps");
    const px_json *custom = px_json_get(sts, "timesteps");
    if (custom && custom->type == PX_JSON_ARRAY) {
        int64_t ts[256];
        ck_assert(custom->count <= 256);
        for (size_t i = 0; i < custom->count; i++) ts[i] = custom->items[i]->integer;
        ck_assert_msg(!px_scheduler_set_timesteps(&s, 0, ts, custom->count), "%s", px_last_error());
    } else if (px_json_get(sts, "original_inference_steps")) {
        /* LCMScheduler.set_timesteps(n, original_inference_steps=...): not a
         * pipeline argument, so not in the common interface */
        ck_assert_int_eq(cfg.kind, PX_SCHED_LCM);
        ck_assert_msg(!px_lcm_set_timesteps(&s.lcm, px_json_get(sts, "num_inference_steps")->integer,
                                            px_json_get(sts, "original_inference_steps")->integer, NULL, 0),
                      "%s: %s", name, px_last_error());
        s.timesteps = s.lcm.timesteps;
        s.n_timesteps = s.lcm.n_timesteps;
    } else {
        ck_assert_msg(!px_scheduler_set_timesteps(&s, px_json_get(sts, "num_inference_steps")->integer, NULL, 0),
                      "%s: %s", name, px_last_error());
    }

    /* timesteps: identical */
    char key[256];
    snprintf(key, sizeof key, "%stimesteps", prefix);
    size_t nts;
    int64_t *want_ts = px_test_get_i64(f, key, &nts);
    ck_assert_msg((int64_t)nts == s.n_timesteps, "%s: %lld timesteps, expected %zu", name,
                  (long long)s.n_timesteps, nts);
    for (size_t i = 0; i < nts; i++)
        ck_assert_msg(s.timesteps[i] == want_ts[i], "%s: timesteps[%zu] = %lld, expected %lld", name, i,
                      (long long)s.timesteps[i], (long long)want_ts[i]);
    free(want_ts);

    const float *ac = cfg.kind == PX_SCHED_DDIM ? s.ddim.alphas_cumprod
                      : cfg.kind == PX_SCHED_LCM ? s.lcm.alphas_cumprod
                      : cfg.kind == PX_SCHED_SA  ? s.sa.tables.alphas_cumprod
                                                 : s.dpm.alphas_cumprod;
    if (has_key(stored, "alphas_cumprod")) compare(f, prefix, "alphas_cumprod", ac, (size_t)cfg.num_train_timesteps, st);
    if (cfg.kind == PX_SCHED_DPM && has_key(stored, "sigmas"))
        compare(f, prefix, "sigmas", s.dpm.sigmas, (size_t)s.n_timesteps + 1, st);
    if (cfg.kind == PX_SCHED_SA && has_key(stored, "sigmas"))
        compare(f, prefix, "sigmas", s.sa.sigmas, (size_t)s.n_timesteps + 1, st);
    if (cfg.kind == PX_SCHED_LCM && has_key(stored, "c_skip")) {
        /* the float32 boundary-condition scalings (pitfall 22) */
        float cs[256], co[256];
        ck_assert(s.n_timesteps <= 256);
        for (int64_t i = 0; i < s.n_timesteps; i++) px_lcm_scalings(&s.lcm, s.timesteps[i], &cs[i], &co[i]);
        compare(f, prefix, "c_skip", cs, (size_t)s.n_timesteps, st);
        compare(f, prefix, "c_out", co, (size_t)s.n_timesteps, st);
    }

    /* sample and model outputs: torch.randn(shape, manual_seed(seed)) */
    int64_t d[4] = { 1, 1, 1, 1 }, md[4] = { 1, 1, 1, 1 };
    const px_json *shape = px_json_get(t, "shape");
    const int64_t n = shape_numel(shape, d);
    const px_json *mshape = px_json_get(t, "model_output_shape");
    const int64_t mn = shape_numel(mshape ? mshape : shape, md);
    px_sched_dims dims = { d[0], d[1], n / (d[0] * d[1]) };
    const int64_t mc = md[1];

    float *x = malloc((size_t)n * 4), *next = malloc((size_t)n * 4), *x0 = malloc((size_t)n * 4);
    float *noise = malloc((size_t)n * 4), *mo = malloc((size_t)mn * 4), *den = malloc((size_t)n * 4);
    ck_assert(x && next && x0 && noise && mo && den);
    px_rng g;
    px_rng_seed(&g, (uint64_t)px_json_get(t, "sample_seed")->integer);
    px_randn(&g, x, (size_t)n);
    if (full) compare(f, prefix, "sample_initial", x, (size_t)n, st);

    const px_json *sk = px_json_get(t, "step_kwargs");
    px_step_args args = { 0 };
    px_rng gens[8];
    double eta = 0;
    if (sk) {
        px_json_opt_number(sk, "eta", &eta, name);
        int ucmo = 0;
        px_json_opt_bool(sk, "use_clipped_model_output", &ucmo, name);
        args.use_clipped_model_output = ucmo;
        const px_json *gj = px_json_get(sk, "generator");
        if (gj && gj->type == PX_JSON_STRING) { /* "torch.Generator('cpu').manual_seed(S)" */
            const char *p = strstr(gj->string, "manual_seed(");
            ck_assert(p);
            px_rng_seed(&gens[0], strtoull(p + 12, NULL, 10));
            args.generators = gens;
            args.n_generators = 1;
        } else if (gj && gj->type == PX_JSON_ARRAY) {
            ck_assert(gj->count >= 1 && gj->count <= 8);
            for (size_t i = 0; i < gj->count; i++) px_rng_seed(&gens[i], (uint64_t)gj->items[i]->integer);
            args.generators = gens;
            args.n_generators = gj->count;
        }
    }
    args.eta = eta;
    const int64_t mo_base = px_json_get(t, "model_output_seed_base")->integer;

    for (int64_t i = 0; i < s.n_timesteps; i++) {
        px_rng_seed(&g, (uint64_t)(mo_base + i));
        px_randn(&g, mo, (size_t)mn);
        char k[64];
        if (full) {
            snprintf(k, sizeof k, "model_output_%02lld", (long long)i);
            compare(f, prefix, k, mo, (size_t)mn, st);
        }
        /* the noise a step draws: DDIM variance_noise_NN, LCM / SA noise_NN */
        snprintf(k, sizeof k, cfg.kind == PX_SCHED_DDIM ? "variance_noise_%02lld" : "noise_%02lld", (long long)i);
        int draws = px_scheduler_step_draws(&s, i, eta);
        int want_noise = has_key(stored, k) && cfg.kind != PX_SCHED_DPM && draws;
        args.variance_noise_out = want_noise ? noise : NULL;
        args.denoised_out = cfg.kind == PX_SCHED_LCM ? den : NULL;
        int rc = px_scheduler_step(&s, mo, mc, s.timesteps[i], x, dims, &args, next,
                                   cfg.kind == PX_SCHED_DDIM ? x0 : NULL);
        ck_assert_msg(rc == 0, "%s step %lld: %s", name, (long long)i, px_last_error());
        if (want_noise) compare(f, prefix, k, noise, (size_t)n, st);
        snprintf(k, sizeof k, "denoised_%02lld", (long long)i);
        if (cfg.kind == PX_SCHED_LCM && has_key(stored, k)) compare(f, prefix, k, den, (size_t)n, st);
        if (cfg.kind == PX_SCHED_SA) {
            /* the corrected sample (the predictor's input), the converted model output */
            snprintf(k, sizeof k, "sample_corrected_%02lld", (long long)i);
            if (has_key(stored, k)) compare(f, prefix, k, s.sa.last_sample, (size_t)n, st);
            snprintf(k, sizeof k, "model_output_converted_%02lld", (long long)i);
            if (has_key(stored, k)) compare(f, prefix, k, s.sa.model_outputs[s.sa.history - 1], (size_t)n, st);
            check_sa_step(px_json_get(t, "steps"), i, &s.sa.last_step, name);
        }
        snprintf(k, sizeof k, "prev_sample_%02lld", (long long)i);
        if (has_key(stored, k)) compare(f, prefix, k, next, (size_t)n, st);
        snprintf(k, sizeof k, "pred_original_sample_%02lld", (long long)i);
        if (cfg.kind == PX_SCHED_DDIM && has_key(stored, k)) compare(f, prefix, k, x0, (size_t)n, st);
        float *tmp = x;
        x = next;
        next = tmp;
    }
    free(x);
    free(next);
    free(x0);
    free(noise);
    free(mo);
    free(den);
    px_scheduler_free(&s);
    px_sched_config_free(&cfg);
}

static void run_trace_file(const char *json_path, const char *st_path, size_t expect)
{
    px_json *meta = px_json_load_file(json_path);
    ck_assert_msg(meta, "%s", px_last_error());
    const px_json *traces = px_json_get(meta, "traces");
    ck_assert(traces && traces->type == PX_JSON_ARRAY);
    ck_assert_uint_eq(traces->count, expect);
    px_st_file *f = px_test_open(st_path);
    trace_stats st = { 0 };
    for (size_t i = 0; i < traces->count; i++) {
        char prefix[160];
        snprintf(prefix, sizeof prefix, "%s/", px_json_get(traces->items[i], "name")->string);
        run_trace(traces->items[i], f, prefix, 0, &st);
    }
    fprintf(stderr, "%s: %zu traces, %zu tensors, %zu not bit-identical, max rel err %.3g\n", json_path,
            traces->count, st.tensors, st.not_bitexact, st.max_rel);
    ck_assert_uint_eq(st.out_of_tol, 0);
    ck_assert_uint_eq(st.not_bitexact, 0);
    px_st_close(f);
    px_json_free(meta);
}

START_TEST(test_reference_traces_fixture)
{
    run_trace_file(px_test_data("sched/traces.json"), px_test_data("sched/traces.safetensors"), 28);
}
END_TEST

/* lcm_* and sa_* traces of the reference (data/sched/lcm_sa.*): the noise
 * comes from ONE generator manual_seed(noise_seed) passed to every step. */
START_TEST(test_lcm_sa_traces_fixture)
{
    run_trace_file(px_test_data("sched/lcm_sa.json"), px_test_data("sched/lcm_sa.safetensors"), 29);
}
END_TEST

START_TEST(test_extra_traces_fixture)
{
    run_trace_file(px_test_data("sched/extra.json"), px_test_data("sched/extra.safetensors"), 28);
}
END_TEST

/* The full reference set: every stored tensor incl. model outputs and samples. */
START_TEST(test_reference_traces_full)
{
    if (!px_test_have_ref("sched/index.json", "full scheduler reference traces")) return;
    px_json *index = px_json_load_file(px_test_ref("sched/index.json"));
    ck_assert_msg(index && index->type == PX_JSON_ARRAY, "%s", px_last_error());
    trace_stats st = { 0 };
    for (size_t i = 0; i < index->count; i++) {
        const char *name = px_json_get(index->items[i], "name")->string;
        char rel[256];
        snprintf(rel, sizeof rel, "sched/%s.json", name);
        px_json *t = px_json_load_file(px_test_ref(rel));
        ck_assert_msg(t, "%s", px_last_error());
        snprintf(rel, sizeof rel, "sched/%s.safetensors", name);
        px_st_file *f = px_test_open(px_test_ref(rel));
        run_trace(t, f, "", 1, &st);
        px_st_close(f);
        px_json_free(t);
    }
    fprintf(stderr, "reference sched/: %zu traces, %zu tensors, %zu not bit-identical, max rel err %.3g\n",
            index->count, st.tensors, st.not_bitexact, st.max_rel);
    ck_assert_uint_ge(index->count, 28 + 14 + 15);
    ck_assert_uint_eq(st.out_of_tol, 0);
    ck_assert_uint_eq(st.not_bitexact, 0);
    px_json_free(index);
}
END_TEST

// ---------------------------------------------------------------------------
// pipeline cases: initial latents, timesteps and every latents_stepNN of the
// reference pipeline calls, replayed from the stored transformer outputs
// (CFG and learned-sigma split as PixArtAlphaPipeline does them). This pins
// the generator(s) and scheduler inside a real diffusers run, independent of
// the model's own numerics.

/* dir: "cases" (data/cases), "sched/cases" (data/sched/cases: the LCM and
 * SA-Solver calls, trimmed to what this replay reads) or NULL for the shared
 * reference's cases/. */
static void replay_case(const char *dir, const char *name, trace_stats *st)
{
    char rel[256];
    snprintf(rel, sizeof rel, "%s/%s.json", dir ? dir : "cases", name);
    px_json *cj = px_json_load_file(dir ? px_test_data(rel) : px_test_ref(rel));
    ck_assert_msg(cj, "%s", px_last_error());
    snprintf(rel, sizeof rel, "%s/%s.safetensors", dir ? dir : "cases", name);
    px_st_file *f = px_test_open(dir ? px_test_data(rel) : px_test_ref(rel));

    const px_json *call = px_json_get(cj, "call"), *derived = px_json_get(cj, "derived");
    px_sched_config cfg;
    ck_assert_msg(!px_sched_config_from_json(&cfg, px_json_get(px_json_get(cj, "scheduler"), "config"), -1, name),
                  "%s", px_last_error());
    px_scheduler s;
    ck_assert(!px_scheduler_init(&s, &cfg));
    const px_json *custom = px_json_get(call, "timesteps");
    if (custom && custom->type == PX_JSON_ARRAY) {
        int64_t ts[64];
        for (size_t i = 0; i < custom->count && i < 64; i++) ts[i] = custom->items[i]->integer;
        ck_assert(!px_scheduler_set_timesteps(&s, 0, ts, custom->count));
    } else {
        ck_assert(!px_scheduler_set_timesteps(&s, px_json_get(call, "num_inference_steps")->integer, NULL, 0));
    }
    size_t nts;
    int64_t *want_ts = px_test_get_i64(f, "pipeline/timesteps", &nts);
    ck_assert_int_eq((int64_t)nts, s.n_timesteps);
    for (size_t i = 0; i < nts; i++) ck_assert_int_eq(s.timesteps[i], want_ts[i]);
    free(want_ts);

    /* generators: one seed, or a list (one generator per image) */
    px_rng gens[8];
    size_t ngens = 0;
    const px_json *seed = px_json_get(call, "seed");
    if (seed->type == PX_JSON_ARRAY) {
        for (size_t i = 0; i < seed->count && i < 8; i++)
            px_rng_seed(&gens[ngens++], strtoull(px_json_get(seed->items[i], "u64")->string, NULL, 10));
    } else {
        px_rng_seed(&gens[ngens++], strtoull(px_json_get(seed, "u64")->string, NULL, 10));
    }
    int64_t shape[4];
    const px_json *ls = px_json_get(derived, "latents_shape");
    size_t n = 1;
    for (int i = 0; i < 4; i++) n *= (size_t)(shape[i] = ls->items[i]->integer);
    const int64_t B = shape[0], C = shape[1], S = shape[2] * shape[3];
    float *lat = malloc(n * 4), *next = malloc(n * 4), *eps = malloc(n * 4), *noise = malloc(n * 4);
    float *x0 = malloc(n * 4), *den = malloc(n * 4);
    ck_assert(lat && next && eps && noise && x0 && den);
    ck_assert(!px_randn_tensor(gens, ngens, lat, 4, shape));
    compare(f, "", "pipeline/initial_latents", lat, n, st);

    double g = 1.0, eta = 0.0;
    px_json_opt_number(call, "guidance_scale", &g, name);
    px_json_opt_number(call, "eta", &eta, name);
    int cfg_on = px_json_get(derived, "do_classifier_free_guidance")->boolean;
    px_step_args args = { .eta = eta, .generators = gens, .n_generators = ngens, .variance_noise_out = noise,
                          .denoised_out = cfg.kind == PX_SCHED_LCM ? den : NULL };
    px_sched_dims dims = { B, C, S };
    /* LCM: the steps that draw noise, as the reference recorded them */
    const px_json *lcm_drawn = px_json_get(derived, "lcm_noise_drawn_at_steps");
    if (cfg.kind == PX_SCHED_LCM) {
        ck_assert(lcm_drawn && lcm_drawn->type == PX_JSON_ARRAY);
        ck_assert_int_eq((int64_t)lcm_drawn->count, s.n_timesteps - 1);
        for (size_t i = 0; i < lcm_drawn->count; i++) {
            ck_assert_int_eq(lcm_drawn->items[i]->integer, (int64_t)i);
            ck_assert(px_scheduler_step_draws(&s, (int64_t)i, eta));
        }
        ck_assert(!px_scheduler_step_draws(&s, s.n_timesteps - 1, eta));
    }
    for (int64_t i = 0; i < s.n_timesteps; i++) {
        char k[96];
        snprintf(k, sizeof k, "pipeline/transformer_out_step%02lld", (long long)i);
        if (!px_st_find(f, k)) break; /* large latents: only step 00 is stored */
        size_t no;
        float *out = px_test_get_f32(f, k, &no);
        const int64_t OC = (int64_t)no / ((cfg_on ? 2 : 1) * B * S); /* 8: learned sigma */
        ck_assert_int_eq(OC, 2 * C);
        /* noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond), then chunk(2, dim=1)[0] */
        for (int64_t b = 0; b < B; b++)
            for (int64_t c = 0; c < C; c++)
                for (int64_t p = 0; p < S; p++) {
                    float u = out[(b * OC + c) * S + p];
                    if (cfg_on) {
                        float t = out[((B + b) * OC + c) * S + p];
                        u = u + (float)g * (t - u);
                    }
                    eps[(b * C + c) * S + p] = u;
                }
        free(out);
        int one_step = s.n_timesteps == 1 && cfg.kind == PX_SCHED_DDIM;
        ck_assert_msg(!px_scheduler_step(&s, eps, C, s.timesteps[i], lat, dims, &args, next, one_step ? x0 : NULL),
                      "%s: %s", name, px_last_error());
        if (eta > 0) {
            snprintf(k, sizeof k, "pipeline/ddim_variance_noise_step%02lld", (long long)i);
            compare(f, "", k, noise, n, st);
        }
        if (cfg.kind == PX_SCHED_SA) {
            snprintf(k, sizeof k, "pipeline/sasolver_noise_step%02lld", (long long)i);
            compare(f, "", k, noise, n, st);
            snprintf(k, sizeof k, "pipeline/sasolver_corrected_step%02lld", (long long)i);
            compare(f, "", k, s.sa.last_sample, n, st);
            snprintf(k, sizeof k, "pipeline/sasolver_model_output_converted_step%02lld", (long long)i);
            compare(f, "", k, s.sa.model_outputs[s.sa.history - 1], n, st);
            check_sa_step(px_json_get(derived, "sasolver_steps"), i, &s.sa.last_step, name);
        }
        if (cfg.kind == PX_SCHED_LCM) {
            snprintf(k, sizeof k, "pipeline/lcm_noise_step%02lld", (long long)i);
            ck_assert_int_eq(px_st_find(f, k) != NULL, px_scheduler_step_draws(&s, i, eta));
            if (px_scheduler_step_draws(&s, i, eta)) compare(f, "", k, noise, n, st);
            snprintf(k, sizeof k, "pipeline/lcm_denoised_step%02lld", (long long)i);
            compare(f, "", k, den, n, st);
        }
        /* the 1-step pipeline keeps pred_original_sample */
        memcpy(lat, one_step ? x0 : next, n * 4);
        snprintf(k, sizeof k, "pipeline/latents_step%02lld", (long long)i);
        compare(f, "", k, lat, n, st);
    }
    free(lat);
    free(next);
    free(eps);
    free(noise);
    free(x0);
    free(den);
    px_scheduler_free(&s);
    px_sched_config_free(&cfg);
    px_st_close(f);
    px_json_free(cj);
}

START_TEST(test_pipeline_cases)
{
    px_json *index = px_json_load_file(px_test_data("cases/index.json"));
    ck_assert_msg(index && index->type == PX_JSON_ARRAY, "%s", px_last_error());
    trace_stats st = { 0 };
    for (size_t i = 0; i < index->count; i++) replay_case("cases", px_json_get(index->items[i], "name")->string, &st);
    fprintf(stderr, "pipeline cases: %zu calls, %zu tensors, %zu not bit-identical, max rel err %.3g\n",
            index->count, st.tensors, st.not_bitexact, st.max_rel);
    ck_assert_uint_ge(index->count, 17);
    ck_assert_uint_eq(st.out_of_tol, 0);
    ck_assert_uint_eq(st.not_bitexact, 0);
    px_json_free(index);
}
END_TEST

/* The LCM and SA-Solver pipeline calls (data/sched/cases, trimmed copies of
 * the reference's lcm and sasolver groups): the same replay, plus the noise
 * each step drew from the call's generator(s), LCM's denoised and SA's
 * corrected sample and converted model output. */
START_TEST(test_pipeline_cases_lcm_sa)
{
    px_json *index = px_json_load_file(px_test_data("sched/cases/index.json"));
    ck_assert_msg(index && index->type == PX_JSON_ARRAY, "%s", px_last_error());
    trace_stats st = { 0 };
    for (size_t i = 0; i < index->count; i++) {
        replay_case("sched/cases", px_json_get(index->items[i], "name")->string, &st);
    }
    fprintf(stderr, "LCM / SA-Solver pipeline cases: %zu calls, %zu tensors, %zu not bit-identical, max rel err %.3g\n",
            index->count, st.tensors, st.not_bitexact, st.max_rel);
    ck_assert_uint_eq(index->count, 9);
    ck_assert_uint_eq(st.out_of_tol, 0);
    ck_assert_uint_eq(st.not_bitexact, 0);
    px_json_free(index);
}
END_TEST

/* The one LCM call too large for data/: use_resolution_binning, 160x96
 * latents (only step 00's transformer output is stored, so the replay covers
 * the initial latents and step 00 -- incl. the first noise draw). */
START_TEST(test_pipeline_case_lcm_binning)
{
    if (!px_test_have_ref("cases/lcm4_binning_500x300.safetensors", "LCM binning case (3.4 MB)")) return;
    trace_stats st = { 0 };
    replay_case(NULL, "lcm4_binning_500x300", &st);
    fprintf(stderr, "reference cases/lcm4_binning_500x300: %zu tensors, %zu not bit-identical\n", st.tensors,
            st.not_bitexact);
    ck_assert_uint_ge(st.tensors, 4);
    ck_assert_uint_eq(st.not_bitexact, 0);
}
END_TEST

/* _threshold_sample on its own: torch.quantile's interpolation (a fused lerp)
 * and the clamps, against diffusers on 8 settings x batch 32. */
START_TEST(test_threshold)
{
    px_json *meta = px_json_load_file(px_test_data("sched/extra.json"));
    ck_assert_msg(meta, "%s", px_last_error());
    px_st_file *f = px_test_open(px_test_data("sched/extra.safetensors"));
    const px_json *thr = px_json_get(meta, "threshold");
    ck_assert(thr && thr->type == PX_JSON_ARRAY && thr->count == 8);
    trace_stats st = { 0 };
    for (size_t i = 0; i < thr->count; i++) {
        const px_json *e = thr->items[i];
        double ratio, smv;
        ck_assert(!px_json_req_number(e, "dynamic_thresholding_ratio", &ratio, "threshold"));
        ck_assert(!px_json_req_number(e, "sample_max_value", &smv, "threshold"));
        char key[64];
        snprintf(key, sizeof key, "%s/in", px_json_get(e, "key")->string);
        size_t n;
        float *x = px_test_get_f32(f, key, &n);
        ck_assert_uint_eq(n, 32 * 16);
        px_sched_dims dims = { 32, 4, 4 };
        ck_assert(!px_sched_threshold(x, dims, ratio, smv));
        snprintf(key, sizeof key, "%s/", px_json_get(e, "key")->string);
        compare(f, key, "out", x, n, &st);
        free(x);
    }
    ck_assert_uint_eq(st.not_bitexact, 0);
    px_st_close(f);
    px_json_free(meta);
}
END_TEST

// ---------------------------------------------------------------------------
// config reader

static int parse(px_sched_config *c, const char *text, int kind)
{
    px_json *j = px_json_parse(text, strlen(text), "test.json");
    ck_assert_msg(j, "%s", px_last_error());
    int rc = px_sched_config_from_json(c, j, kind, "sched/scheduler_config.json");
    px_json_free(j);
    return rc;
}

static void expect_error(const char *text, int kind, const char *needle)
{
    px_sched_config c;
    ck_assert_int_eq(parse(&c, text, kind), -1);
    ck_assert_msg(strstr(px_last_error(), needle), "message '%s' lacks '%s'", px_last_error(), needle);
    ck_assert_msg(strstr(px_last_error(), "sched/scheduler_config.json"), "message '%s' lacks the file",
                  px_last_error());
}

/* The PixArt checkpoints' scheduler_config.json (DPMSolverMultistepScheduler
 * defaults, with -Infinity and bookkeeping keys). */
static const char *pixart_cfg =
    "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"_diffusers_version\": \"0.30.3\","
    " \"algorithm_type\": \"dpmsolver++\", \"beta_end\": 0.02, \"beta_schedule\": \"linear\","
    " \"beta_start\": 0.0001, \"dynamic_thresholding_ratio\": 0.995, \"euler_at_final\": false,"
    " \"final_sigmas_type\": \"zero\", \"lambda_min_clipped\": -Infinity, \"lower_order_final\": true,"
    " \"num_train_timesteps\": 1000, \"prediction_type\": \"epsilon\", \"rescale_betas_zero_snr\": false,"
    " \"sample_max_value\": 1.0, \"solver_order\": 2, \"solver_type\": \"midpoint\", \"steps_offset\": 0,"
    " \"thresholding\": false, \"timestep_spacing\": \"linspace\", \"trained_betas\": null,"
    " \"use_karras_sigmas\": false, \"use_lu_lambdas\": false, \"variance_type\": null}";

START_TEST(test_config_pixart)
{
    px_sched_config c;
    ck_assert_msg(!parse(&c, pixart_cfg, -1), "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_DPM);
    ck_assert_int_eq(c.solver_order, 2);
    ck_assert(isinf(c.lambda_min_clipped) && c.lambda_min_clipped < 0);
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LINSPACE);
    px_sched_config_free(&c);

    /* the shared reference copy, when present */
    const char *rel = "configs/PixArt-XL-2-1024-MS/scheduler/scheduler_config.json";
    if (px_test_have_optional_ref(rel, "PixArt scheduler config")) {
        ck_assert_msg(!px_sched_config_load(&c, px_test_ref(rel), -1), "%s", px_last_error());
        ck_assert_int_eq(c.kind, PX_SCHED_DPM);
        px_sched_config_free(&c);
    }
}
END_TEST

/* DDIMScheduler.from_config(dpm_config): shared keys kept (timestep_spacing
 * 'linspace' from the file!), DDIM-only keys take DDIM defaults, DPM-only
 * keys ignored. */
START_TEST(test_config_from_other_class)
{
    px_sched_config c;
    ck_assert_msg(!parse(&c, pixart_cfg, PX_SCHED_DDIM), "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_DDIM);
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LINSPACE);
    ck_assert_int_eq(c.clip_sample, 1);
    ck_assert_int_eq(c.set_alpha_to_one, 1);
    ck_assert(c.clip_sample_range == 1.0);
    ck_assert(c.beta_end == 0.02 && c.num_train_timesteps == 1000);
    px_sched_config_free(&c);

    /* DDIM keys a DPM scheduler does not know are ignored, even odd values */
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": \"weird\","
                             " \"set_alpha_to_one\": 3, \"beta_end\": 0.012}", PX_SCHED_DPM),
                  "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_DPM);
    ck_assert(c.beta_end == 0.012);
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LINSPACE); /* DPM default */
    px_sched_config_free(&c);

    /* _use_default_values: those keys fall back to the defaults */
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"DDIMScheduler\", \"timestep_spacing\": \"trailing\","
                             " \"steps_offset\": 1, \"_use_default_values\": [\"timestep_spacing\"]}", -1),
                  "%s", px_last_error());
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LEADING);
    ck_assert_int_eq(c.steps_offset, 1);
    px_sched_config_free(&c);

    /* unknown keys are ignored; deis / logrho map like diffusers */
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"DPMSolverMultistepScheduler\", \"foo\": [1, {}],"
                             " \"algorithm_type\": \"deis\", \"solver_type\": \"logrho\","
                             " \"variance_type\": \"fixed_small\", \"sigma_min\": null}", -1),
                  "%s", px_last_error());
    ck_assert_int_eq(c.algorithm_type, PX_DPM_DPMSOLVER_PP);
    ck_assert_int_eq(c.solver_type, PX_DPM_MIDPOINT);
    ck_assert_int_eq(c.learned_variance, 0);
    ck_assert_int_eq(c.has_sigma_min, 0);
    px_sched_config_free(&c);

    ck_assert_int_eq(px_sched_kind_from_name("ddim"), PX_SCHED_DDIM);
    ck_assert_int_eq(px_sched_kind_from_name("DPMSolverMultistepScheduler"), PX_SCHED_DPM);
    ck_assert_int_eq(px_sched_kind_from_name("euler"), -1);
}
END_TEST

START_TEST(test_config_rejects)
{
    expect_error("[1, 2]", -1, "not a JSON object");
    expect_error("{\"beta_end\": 0.02}", -1, "_class_name");
    expect_error("{\"_class_name\": \"EulerDiscreteScheduler\"}", -1, "_class_name");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"beta_schedule\": \"sigmoid\"}", -1, "'beta_schedule'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"prediction_type\": \"flow\"}", -1, "'prediction_type'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"timestep_spacing\": 3}", -1, "'timestep_spacing'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 1000.5}", -1, "'num_train_timesteps'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"num_train_timesteps\": 0}", -1, "'num_train_timesteps'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"clip_sample\": 1}", -1, "'clip_sample'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"beta_start\": null}", -1, "'beta_start'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"beta_end\": Infinity}", -1, "'beta_end'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"trained_betas\": [0.1, \"x\"]}", -1, "'trained_betas'");
    expect_error("{\"_class_name\": \"DDIMScheduler\", \"trained_betas\": [0.1, 0.2]}", -1, "'trained_betas'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 4}", -1, "'solver_order'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"unipc\"}", -1,
                 "'algorithm_type'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_type\": \"euler\"}", -1, "'solver_type'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"algorithm_type\": \"dpmsolver\"}", -1,
                 "'final_sigmas_type'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"final_sigmas_type\": \"one\"}", -1,
                 "'final_sigmas_type'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"use_lu_lambdas\": true}", -1,
                 "'use_lu_lambdas'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"lambda_min_clipped\": NaN}", -1,
                 "'lambda_min_clipped'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"variance_type\": 1}", -1, "'variance_type'");
    expect_error("{\"_class_name\": \"DPMSolverMultistepScheduler\", \"solver_order\": 3,"
                 " \"algorithm_type\": \"sde-dpmsolver++\"}", -1, "'solver_order'");
}
END_TEST

/* LCMScheduler configs: the PixArt-LCM hub values (no timestep_scaling key:
 * the default 10), LCMScheduler() defaults, from_config of a DPM config, and
 * the values the math cannot take. */
static const char *pixart_lcm_cfg =
    "{\"_class_name\": \"LCMScheduler\", \"_diffusers_version\": \"0.22.0.dev0\", \"beta_end\": 0.02,"
    " \"beta_schedule\": \"linear\", \"beta_start\": 0.0001, \"clip_sample\": false, \"clip_sample_range\": 1.0,"
    " \"dynamic_thresholding_ratio\": 0.995, \"num_train_timesteps\": 1000, \"original_inference_steps\": 50,"
    " \"prediction_type\": \"epsilon\", \"rescale_betas_zero_snr\": false, \"sample_max_value\": 1.0,"
    " \"set_alpha_to_one\": true, \"steps_offset\": 0, \"thresholding\": false, \"timestep_spacing\": \"leading\","
    " \"trained_betas\": null}";

START_TEST(test_config_lcm)
{
    px_sched_config c;
    ck_assert_msg(!parse(&c, pixart_lcm_cfg, -1), "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_LCM);
    ck_assert_str_eq(px_sched_class_name(c.kind), "LCMScheduler");
    ck_assert_int_eq(c.beta_schedule, PX_BETA_LINEAR);
    ck_assert(c.beta_start == 0.0001 && c.beta_end == 0.02);
    ck_assert_int_eq(c.original_inference_steps, 50);
    ck_assert(c.timestep_scaling == 10.0);
    ck_assert_int_eq(c.clip_sample, 0);
    px_sched_config_free(&c);

    /* LCMScheduler() defaults: scaled_linear 0.00085..0.012, no clipping */
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"LCMScheduler\"}", -1), "%s", px_last_error());
    ck_assert_int_eq(c.beta_schedule, PX_BETA_SCALED_LINEAR);
    ck_assert(c.beta_start == 0.00085 && c.beta_end == 0.012);
    ck_assert_int_eq(c.clip_sample, 0);
    ck_assert_int_eq(c.set_alpha_to_one, 1);
    px_sched_config_free(&c);

    /* LCMScheduler.from_config(PixArt's DPM config): shared keys kept, LCM keys default */
    ck_assert_msg(!parse(&c, pixart_cfg, PX_SCHED_LCM), "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_LCM);
    ck_assert_int_eq(c.beta_schedule, PX_BETA_LINEAR);
    ck_assert_int_eq(c.original_inference_steps, 50);
    ck_assert(c.timestep_scaling == 10.0);
    px_sched_config_free(&c);
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"LCMScheduler\", \"timestep_scaling\": 1.0,"
                             " \"original_inference_steps\": 100}", -1), "%s", px_last_error());
    ck_assert(c.timestep_scaling == 1.0);
    ck_assert_int_eq(c.original_inference_steps, 100);
    px_sched_config_free(&c);

    /* the shared reference copy, when present */
    const char *rel = "configs/PixArt-LCM-XL-2-1024-MS/scheduler/scheduler_config.json";
    if (px_test_have_ref(rel, "PixArt-LCM scheduler config")) {
        ck_assert_msg(!px_sched_config_load(&c, px_test_ref(rel), -1), "%s", px_last_error());
        ck_assert_int_eq(c.kind, PX_SCHED_LCM);
        ck_assert_int_eq(c.original_inference_steps, 50);
        px_sched_config_free(&c);
    }

    ck_assert_int_eq(px_sched_kind_from_name("lcm"), PX_SCHED_LCM);
    ck_assert_int_eq(px_sched_kind_from_name("LCMScheduler"), PX_SCHED_LCM);
    expect_error("{\"_class_name\": \"lcm\"}", -1, "_class_name"); /* CLI names are not class names */
    expect_error("{\"_class_name\": \"LCMScheduler\", \"original_inference_steps\": 0}", -1,
                 "'original_inference_steps'");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"original_inference_steps\": 1001}", -1,
                 "'original_inference_steps'");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"original_inference_steps\": 2.5}", -1,
                 "'original_inference_steps'");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"timestep_scaling\": Infinity}", -1, "'timestep_scaling'");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"timestep_scaling\": \"10\"}", -1, "'timestep_scaling'");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"beta_start\": 0}", -1, "beta_start = 0");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"beta_end\": 1.5}", -1, "beta_end");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"beta_end\": -0.02}", -1, "beta_end");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"num_train_timesteps\": 2,"
                 " \"trained_betas\": [0.5, 1.0]}", -1, "trained_betas[1]");
    expect_error("{\"_class_name\": \"LCMScheduler\", \"clip_sample\": 1}", -1, "'clip_sample'");

    /* a config made in code is checked too, naming the key */
    px_sched_config_defaults(&c, PX_SCHED_LCM);
    c.original_inference_steps = 0;
    px_scheduler s;
    ck_assert_int_eq(px_scheduler_init(&s, &c), -1);
    ck_assert(strstr(px_last_error(), "'original_inference_steps'"));
}
END_TEST

/* LCM set_timesteps / step errors and the noise rule */
START_TEST(test_lcm_errors)
{
    px_sched_config c;
    px_sched_config_defaults(&c, PX_SCHED_LCM);
    px_scheduler s;
    ck_assert(!px_scheduler_init(&s, &c));
    float x[4] = { 0.5f, -0.5f, 0.25f, 1.0f }, y[4], z[4];
    px_sched_dims dims = { 1, 1, 4 };
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, NULL), -1); /* before set_timesteps */
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, NULL, 0), -1);
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 51, NULL, 0), -1); /* > original_inference_steps */
    ck_assert(strstr(px_last_error(), "original_inference_steps"));
    int64_t up[3] = { 999, 500, 500 }, big[2] = { 1000, 500 }, neg[2] = { 999, -1 }, off[3] = { 800, 433, 7 };
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, up, 3), -1);
    ck_assert(strstr(px_last_error(), "descending"));
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, big, 2), -1);
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, neg, 2), -1);
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, NULL, 0) == -1, 1);
    /* off-schedule custom timesteps: diffusers only warns; used as given */
    ck_assert(!px_scheduler_set_timesteps(&s, 0, off, 3));
    ck_assert_int_eq(s.n_timesteps, 3);
    ck_assert_int_eq(s.timesteps[1], 433);
    /* original_inference_steps given to set_timesteps (k = 1000 // 25 = 40) */
    ck_assert(!px_lcm_set_timesteps(&s.lcm, 4, 25, NULL, 0));
    ck_assert(s.lcm.timesteps[0] == 999 && s.lcm.timesteps[1] == 759 && s.lcm.timesteps[3] == 279);
    ck_assert_int_eq(px_lcm_set_timesteps(&s.lcm, 4, 1001, NULL, 0), -1);

    ck_assert(!px_scheduler_set_timesteps(&s, 2, NULL, 0)); /* 999, 499 */
    ck_assert(px_scheduler_needs_generator(&s, 0));
    ck_assert(px_scheduler_step_draws(&s, 0, 0) && !px_scheduler_step_draws(&s, 1, 0));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 500, x, dims, NULL, y, NULL), -1); /* not in the schedule */
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, NULL), -1); /* noise, no generator */
    ck_assert(strstr(px_last_error(), "generator"));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, z), -1); /* no pred_original_sample */
    ck_assert(strstr(px_last_error(), "pred_original_sample"));
    ck_assert_int_eq(px_scheduler_step(&s, x, 2, 999, x, dims, NULL, y, NULL), -1); /* channel mismatch */
    px_rng g;
    px_rng_seed(&g, 5);
    float noise[4], den[4];
    px_step_args a = { .generators = &g, .n_generators = 1, .variance_noise_out = noise, .denoised_out = den };
    ck_assert(!px_scheduler_step(&s, x, 1, 999, x, dims, &a, y, NULL));
    /* the noise is torch.randn(4) from the generator, and prev = sqrt(a_prev) den + sqrt(1 - a_prev) noise */
    px_rng g2;
    px_rng_seed(&g2, 5);
    float want[4];
    px_randn(&g2, want, 4);
    ck_assert(!memcmp(noise, want, sizeof want));
    float ap = s.lcm.alphas_cumprod[499];
    for (int i = 0; i < 4; i++) ck_assert(y[i] == sqrtf(ap) * den[i] + sqrtf(1.0f - ap) * noise[i]);
    /* the last step draws nothing and returns denoised */
    px_rng before = g;
    ck_assert(!px_scheduler_step(&s, y, 1, 499, y, dims, &a, z, NULL));
    ck_assert(!memcmp(&before, &g, sizeof g));
    ck_assert(!memcmp(z, den, sizeof den));
    ck_assert_int_eq(px_scheduler_step(&s, y, 1, 499, y, dims, &a, z, NULL), -1); /* one step too many */
    px_scheduler_free(&s);
}
END_TEST

/* SASolverScheduler configs and errors */
START_TEST(test_config_sa)
{
    px_sched_config c;
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"SASolverScheduler\", \"tau_func\": null}", -1), "%s",
                  px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_SA);
    ck_assert_str_eq(px_sched_class_name(c.kind), "SASolverScheduler");
    ck_assert_int_eq(c.predictor_order, 2);
    ck_assert_int_eq(c.corrector_order, 2);
    ck_assert_int_eq(c.sa_algorithm, PX_SA_DATA_PREDICTION);
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LINSPACE);
    ck_assert_int_eq(c.beta_schedule, PX_BETA_LINEAR);
    ck_assert_int_eq(c.lower_order_final, 1);
    px_sched_config_free(&c);
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"SASolverScheduler\", \"algorithm_type\": \"noise_prediction\","
                             " \"predictor_order\": 3, \"corrector_order\": 1, \"use_karras_sigmas\": true,"
                             " \"variance_type\": \"learned_range\"}", -1), "%s", px_last_error());
    ck_assert_int_eq(c.sa_algorithm, PX_SA_NOISE_PREDICTION);
    ck_assert_int_eq(c.predictor_order, 3);
    ck_assert_int_eq(c.corrector_order, 1);
    ck_assert_int_eq(c.use_karras_sigmas, 1);
    ck_assert_int_eq(c.learned_variance, 1);
    px_sched_config_free(&c);

    /* SASolverScheduler.from_config(PixArt's DPM config, algorithm_type='data_prediction')
     * (the model card's call): DPM's "dpmsolver++" is not taken; rescale_betas_zero_snr is
     * not an SA argument */
    ck_assert_msg(!parse(&c, pixart_cfg, PX_SCHED_SA), "%s", px_last_error());
    ck_assert_int_eq(c.kind, PX_SCHED_SA);
    ck_assert_int_eq(c.sa_algorithm, PX_SA_DATA_PREDICTION);
    ck_assert_int_eq(c.timestep_spacing, PX_SPACING_LINSPACE);
    px_sched_config_free(&c);
    ck_assert_msg(!parse(&c, "{\"_class_name\": \"DDIMScheduler\", \"rescale_betas_zero_snr\": true}",
                         PX_SCHED_SA), "%s", px_last_error());
    ck_assert_int_eq(c.rescale_betas_zero_snr, 0);
    px_sched_config_free(&c);

    /* `--scheduler sa-solver` on the pipe_small checkpoint: its DPM config read as
     * SA-Solver is SASolverScheduler(), the scheduler of the small_sa5_cfg call */
    {
        px_sched_config want;
        px_json *cj = px_json_load_file(px_test_data("sched/cases/small_sa5_cfg.json"));
        ck_assert_msg(cj, "%s", px_last_error());
        ck_assert(!px_sched_config_from_json(&want, px_json_get(px_json_get(cj, "scheduler"), "config"), -1, "case"));
        ck_assert_msg(!px_sched_config_load(&c, px_test_data("pipe_small/scheduler/scheduler_config.json"), PX_SCHED_SA),
                      "%s", px_last_error());
        ck_assert_int_eq(c.kind, want.kind);
        ck_assert(c.num_train_timesteps == want.num_train_timesteps && c.beta_start == want.beta_start &&
                  c.beta_end == want.beta_end && c.beta_schedule == want.beta_schedule && !c.trained_betas);
        ck_assert(c.prediction_type == want.prediction_type && c.thresholding == want.thresholding &&
                  c.timestep_spacing == want.timestep_spacing && c.steps_offset == want.steps_offset);
        ck_assert(c.predictor_order == want.predictor_order && c.corrector_order == want.corrector_order &&
                  c.sa_algorithm == want.sa_algorithm && c.lower_order_final == want.lower_order_final &&
                  c.use_karras_sigmas == want.use_karras_sigmas && c.learned_variance == want.learned_variance &&
                  c.lambda_min_clipped == want.lambda_min_clipped);
        px_sched_config_free(&c);
        px_sched_config_free(&want);
        px_json_free(cj);
    }

    ck_assert_int_eq(px_sched_kind_from_name("sa-solver"), PX_SCHED_SA);
    ck_assert_int_eq(px_sched_kind_from_name("SASolverScheduler"), PX_SCHED_SA);
    expect_error("{\"_class_name\": \"sa-solver\"}", -1, "_class_name");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"algorithm_type\": \"dpmsolver++\"}", -1,
                 "'algorithm_type'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"predictor_order\": 4}", -1, "'predictor_order'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"corrector_order\": 0}", -1, "'corrector_order'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"tau_func\": \"lambda t: 0\"}", -1, "'tau_func'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"use_karras_sigmas\": true, \"sigma_min\": 0.1}", -1,
                 "'sigma_min'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"beta_start\": 1}", -1, "beta_start = 1");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"lambda_min_clipped\": NaN}", -1,
                 "'lambda_min_clipped'");
    expect_error("{\"_class_name\": \"SASolverScheduler\", \"num_train_timesteps\": 3,"
                 " \"trained_betas\": [0.1, NaN, 0.2]}", -1, "trained_betas[1]");

    /* diffusers fails on thresholding with noise_prediction (alpha_t[None]) */
    px_sched_config_defaults(&c, PX_SCHED_SA);
    c.sa_algorithm = PX_SA_NOISE_PREDICTION;
    c.thresholding = 1;
    px_scheduler s;
    ck_assert_int_eq(px_scheduler_init(&s, &c), -1);
    ck_assert(strstr(px_last_error(), "thresholding"));
}
END_TEST

START_TEST(test_sa_errors)
{
    px_sched_config c;
    px_sched_config_defaults(&c, PX_SCHED_SA);
    px_scheduler s;
    ck_assert(!px_scheduler_init(&s, &c));
    float x[4] = { 0.5f, -0.5f, 0.25f, 1.0f }, y[4], z[4];
    px_sched_dims dims = { 1, 1, 4 };
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, NULL), -1); /* before set_timesteps */
    int64_t ts[2] = { 999, 500 };
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, ts, 2), -1);
    ck_assert(strstr(px_last_error(), "custom timesteps"));
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, NULL, 0), -1);
    ck_assert(!px_scheduler_set_timesteps(&s, 2, NULL, 0));
    /* the last sigma is sigma(t = 0), not 0 */
    ck_assert(s.sa.sigmas[2] == s.sa.tables.train_sigmas[0] && s.sa.sigmas[2] > 0);
    ck_assert(px_scheduler_step_draws(&s, 0, 0) && px_scheduler_step_draws(&s, 1, 0));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, NULL), -1);
    ck_assert(strstr(px_last_error(), "generator"));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, z), -1);
    ck_assert(strstr(px_last_error(), "pred_original_sample"));
    ck_assert_int_eq(px_scheduler_step(&s, x, 2, 999, x, dims, NULL, y, NULL), -1);
    px_rng g, g2;
    px_rng_seed(&g, 9);
    px_rng_seed(&g2, 9);
    float noise[4], want[4];
    px_step_args a = { .generators = &g, .n_generators = 1, .variance_noise_out = noise };
    ck_assert(!px_scheduler_step(&s, x, 1, 999, x, dims, &a, y, NULL));
    px_randn(&g2, want, 4);
    ck_assert(!memcmp(noise, want, sizeof want));
    /* the last step draws too (tau is 1 at t = 499, and the draw happens whatever tau is) */
    ck_assert(!px_scheduler_step(&s, y, 1, 499, y, dims, &a, z, NULL));
    px_randn(&g2, want, 4);
    ck_assert(!memcmp(noise, want, sizeof want));
    ck_assert(!memcmp(&g, &g2, sizeof g));
    ck_assert(s.sa.last_step.use_corrector && s.sa.last_step.corrector_order == 2);
    ck_assert_int_eq(px_scheduler_step(&s, z, 1, 499, z, dims, &a, y, NULL), -1); /* one step too many */
    px_scheduler_free(&s);
}
END_TEST

/* Issue 17 finding 1: betas outside (0, 1) gave NaN sigmas, timesteps cast
 * from NaN (t=-9223372036854775808) and, with DDIM, a garbage image. Each
 * config is refused by the reader, naming the file and the field. */
START_TEST(test_config_bad_schedule)
{
    /* the minimal reproducer */
    expect_error("{\"_class_name\":\"DPMSolverMultistepScheduler\",\"trained_betas\":[2,2],"
                 "\"num_train_timesteps\":2,\"use_karras_sigmas\":true}", -1, "trained_betas[0] = 2 is not in (0, 1)");
    expect_error("{\"_class_name\":\"DDIMScheduler\",\"trained_betas\":[0.5,-0.1],\"num_train_timesteps\":2}", -1,
                 "trained_betas[1] = -0.1");
    expect_error("{\"_class_name\":\"DDIMScheduler\",\"trained_betas\":[0.5,NaN],\"num_train_timesteps\":2}", -1,
                 "trained_betas[1] = nan");
    static const char *const kinds[] = { "DDIMScheduler", "DPMSolverMultistepScheduler" };
    for (int k = 0; k < 2; k++) {
        char text[256];
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"beta_end\":-1}", kinds[k]);
        expect_error(text, -1, "beta_end = -1 is not in (0, 1)");
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"beta_end\":1e300}", kinds[k]);
        expect_error(text, -1, "beta_end = 1e+300 is not in (0, 1)");
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"beta_start\":0,\"beta_schedule\":\"scaled_linear\"}",
                 kinds[k]);
        expect_error(text, -1, "beta_start = 0 is not in (0, 1)");
        /* valid doubles, but 1 - beta rounds to 1 in float32: alphas_cumprod[0] = 1, sigma 0 */
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"beta_start\":1e-9}", kinds[k]);
        expect_error(text, -1, "alphas_cumprod[0] = 1 is not in (0, 1)");
        /* betas near 1: alphas_cumprod becomes denormal (sigma = inf), then 0 */
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"beta_start\":0.9,\"beta_end\":0.99}", kinds[k]);
        expect_error(text, -1, "sigma[38] = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5 is inf");
        /* zero-SNR rescaling of one timestep: 0 / 0 */
        snprintf(text, sizeof text, "{\"_class_name\":\"%s\",\"num_train_timesteps\":1,\"rescale_betas_zero_snr\":true}",
                 kinds[k]);
        expect_error(text, -1, "rescale_betas_zero_snr with one timestep");
    }
    expect_error("{\"_class_name\":\"DPMSolverMultistepScheduler\",\"use_karras_sigmas\":true,\"sigma_max\":Infinity}",
                 -1, "'sigma_max'");

    /* still accepted: the zero-SNR rescaling (last alphas_cumprod exactly 0) and squaredcos */
    px_sched_config c;
    ck_assert_msg(!parse(&c, "{\"_class_name\":\"DDIMScheduler\",\"rescale_betas_zero_snr\":true,"
                             "\"beta_schedule\":\"squaredcos_cap_v2\"}", -1), "%s", px_last_error());
    px_sched_config_free(&c);

    /* a config built in code bypasses the reader: the scheduler refuses it too */
    double tb[2] = { 2, 2 };
    px_sched_config_defaults(&c, PX_SCHED_DPM);
    c.num_train_timesteps = 2;
    c.trained_betas = tb;
    c.n_trained_betas = 2;
    c.use_karras_sigmas = 1;
    px_dpm d;
    ck_assert_int_eq(px_dpm_init(&d, &c), -1);
    ck_assert_msg(strstr(px_last_error(), "trained_betas[0] = 2"), "%s", px_last_error());
}
END_TEST

/* set_timesteps / step argument errors */
START_TEST(test_scheduler_errors)
{
    px_sched_config c;
    px_sched_config_defaults(&c, PX_SCHED_DDIM);
    px_scheduler s;
    ck_assert(!px_scheduler_init(&s, &c));
    float x[4] = { 0 }, y[4];
    px_sched_dims dims = { 1, 1, 4 };
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 0, x, dims, NULL, y, NULL), -1); /* before set_timesteps */
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 1001, NULL, 0), -1);
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, NULL, 0), -1);
    int64_t ts[2] = { 999, 500 };
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, ts, 2), -1);
    ck_assert(strstr(px_last_error(), "custom timesteps"));
    ck_assert(!px_scheduler_set_timesteps(&s, 4, NULL, 0));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 1000, x, dims, NULL, y, NULL), -1); /* t out of range */
    px_step_args a = { .eta = 0.5 };
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 750, x, dims, &a, y, NULL), -1); /* eta without generator */
    ck_assert(strstr(px_last_error(), "generator"));
    ck_assert_int_eq(px_scheduler_step(&s, x, 2, 750, x, dims, NULL, y, NULL), -1); /* channel mismatch */
    px_scheduler_free(&s);

    px_sched_config_defaults(&c, PX_SCHED_DPM);
    ck_assert(!px_scheduler_init(&s, &c));
    ck_assert(!px_scheduler_set_timesteps(&s, 2, NULL, 0));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, y), -1); /* no pred_original for DPM */
    ck_assert(strstr(px_last_error(), "pred_original_sample"));
    ck_assert(!px_scheduler_step(&s, x, 1, 999, x, dims, NULL, y, NULL));
    ck_assert(!px_scheduler_step(&s, x, 1, 500, y, dims, NULL, x, NULL));
    ck_assert_int_eq(px_scheduler_step(&s, x, 1, 500, x, dims, NULL, y, NULL), -1); /* one step too many */
    px_scheduler_free(&s);

    c.use_karras_sigmas = 1;
    ck_assert(!px_scheduler_init(&s, &c));
    ck_assert_int_eq(px_scheduler_set_timesteps(&s, 0, ts, 2), -1);
    px_scheduler_free(&s);
}
END_TEST

// ---------------------------------------------------------------------------
// toy denoising loop

/* A perfect denoiser for a known clean sample x0: at timestep t it returns
 * eps = (x_t - sqrt(ac[t]) x0) / sqrt(1 - ac[t]). With it every DDIM (eta 0)
 * and DPM-Solver(++) step is exact along x_t = alpha_t x0 + sigma_t eps*,
 * eps* = (x_T - alpha_T x0) / sigma_T, so the loop must end at
 * alpha_final x0 + sigma_final eps* (= x0 when the final sigma is 0) up to
 * float rounding -- an independent check of the loop plumbing, the
 * timestep -> sigma mapping and the final-step handling. */
typedef struct {
    const float *x0;
    const float *ac;
    size_t n;
} toy_model;

static void toy_eps(const toy_model *m, const float *x, int64_t t, float *eps)
{
    double a = m->ac[t];
    for (size_t i = 0; i < m->n; i++) eps[i] = (float)((x[i] - sqrt(a) * m->x0[i]) / sqrt(1 - a));
}

/* alpha, sigma of a DPM sigma (sigma_to_alpha_sigma_t) */
static void dpm_as(double sig, double *a, double *s)
{
    *a = 1 / sqrt(sig * sig + 1);
    *s = sig * *a;
}

static double run_toy_loop(px_sched_config *c, int64_t steps)
{
    enum { B = 2, C = 4, S = 16, N = B * C * S };
    float x0[N], lat[N], next[N], eps[N], xT[N];
    px_rng gens[B];
    px_rng_seed(&gens[0], 1);
    px_rng_seed(&gens[1], 2);
    px_test_fill_uniform(x0, N, 7, -1.0f, 1.0f);
    int64_t shape[4] = { B, C, 4, 4 };
    ck_assert(!px_randn_tensor(gens, B, lat, 4, shape));

    px_scheduler s;
    ck_assert_msg(!px_scheduler_init(&s, c), "%s", px_last_error());
    ck_assert(!px_scheduler_set_timesteps(&s, steps, NULL, 0));
    for (int i = 0; i < N; i++) lat[i] *= s.init_noise_sigma;
    memcpy(xT, lat, sizeof xT);
    const float *ac = c->kind == PX_SCHED_DDIM ? s.ddim.alphas_cumprod
                      : c->kind == PX_SCHED_LCM ? s.lcm.alphas_cumprod
                                                : s.dpm.alphas_cumprod;
    toy_model m = { x0, ac, N };
    double aT, sT, af, sf;
    if (c->kind == PX_SCHED_LCM) {
        /* the last step returns denoised = c_out x0 + c_skip x_t with c_out = 1 and
         * c_skip < 1e-6 at t >= 205: x0, whatever noise the earlier steps added */
        aT = 1, sT = 1, af = 1, sf = 0;
    } else if (c->kind == PX_SCHED_DDIM) {
        aT = sqrt(ac[s.timesteps[0]]), sT = sqrt(1 - ac[s.timesteps[0]]);
        af = sqrt(s.ddim.final_alpha_cumprod), sf = sqrt(1 - s.ddim.final_alpha_cumprod);
    } else {
        dpm_as(s.dpm.sigmas[0], &aT, &sT);
        dpm_as(s.dpm.sigmas[s.n_timesteps], &af, &sf);
    }
    px_sched_dims dims = { B, C, S };
    px_step_args args = { .generators = gens, .n_generators = B };
    for (int64_t i = 0; i < s.n_timesteps; i++) {
        toy_eps(&m, lat, s.timesteps[i], eps); /* the model callback */
        ck_assert_msg(!px_scheduler_step(&s, eps, C, s.timesteps[i], lat, dims, &args, next, NULL), "%s",
                      px_last_error());
        memcpy(lat, next, sizeof lat);
    }
    px_scheduler_free(&s);
    double err = 0;
    for (int i = 0; i < N; i++) {
        double want = af * x0[i] + sf * (xT[i] - aT * x0[i]) / sT;
        err = fmax(err, fabs(lat[i] - want));
    }
    return err;
}

START_TEST(test_toy_loop)
{
    px_sched_config c;
    /* DPM-Solver++ order 2 (PixArt's default), 20 and 5 steps; order 3; dpmsolver; sde-dpmsolver++ */
    px_sched_config_defaults(&c, PX_SCHED_DPM);
    ck_assert_double_lt(run_toy_loop(&c, 20), 1e-4);
    ck_assert_double_lt(run_toy_loop(&c, 5), 1e-4);
    c.solver_order = 3;
    ck_assert_double_lt(run_toy_loop(&c, 25), 1e-4);
    c.solver_type = PX_DPM_HEUN;
    ck_assert_double_lt(run_toy_loop(&c, 8), 1e-4);
    c.solver_order = 2;
    c.algorithm_type = PX_DPM_DPMSOLVER;
    c.final_sigmas_type = PX_FINAL_SIGMA_MIN; /* ends at sigma_min, with the eps* part */
    ck_assert_double_lt(run_toy_loop(&c, 10), 1e-4);
    c.algorithm_type = PX_DPM_SDE_DPMSOLVER_PP; /* noise drawn each step, gone at sigma 0 */
    c.final_sigmas_type = PX_FINAL_SIGMA_ZERO;
    ck_assert_double_lt(run_toy_loop(&c, 10), 1e-4);
    /* DDIM eta 0: ends at the final alpha (1 with set_alpha_to_one) */
    px_sched_config_defaults(&c, PX_SCHED_DDIM);
    ck_assert_double_lt(run_toy_loop(&c, 10), 1e-4);
    c.set_alpha_to_one = 0; /* ends at alphas_cumprod[0] */
    ck_assert_double_lt(run_toy_loop(&c, 7), 1e-4);
    /* LCM (PixArt-LCM config, 4 and 8 steps): lands on x0 (a noise draw in the last step would not) */
    ck_assert_msg(!parse(&c, pixart_lcm_cfg, -1), "%s", px_last_error());
    ck_assert_double_lt(run_toy_loop(&c, 4), 1e-5);
    ck_assert_double_lt(run_toy_loop(&c, 8), 1e-5);
    px_sched_config_free(&c);
    /* (not 'trailing' / 'linspace': DDIM's prev_t = t - N // steps is not the
     * next timestep there, so even a perfect denoiser drifts -- diffusers too) */
}
END_TEST

// ---------------------------------------------------------------------------
// torch/numpy helpers against values computed independently

START_TEST(test_tmath)
{
    /* torch.log / torch.exp are exact at these points */
    ck_assert(px_t_logf(1.0f) == 0.0f);
    ck_assert(px_t_expf(0.0f) == 1.0f);
    ck_assert(isinf(px_t_logf(0.0f)) && px_t_logf(0.0f) < 0);
    ck_assert(isnan(px_t_logf(-1.0f)));
    ck_assert(px_t_expf(-200.0f) == 0.0f && isinf(px_t_expf(200.0f)));
    /* within 1 ulp of the correctly rounded value (SLEEF u10) on a sweep */
    for (float v = 1e-6f; v < 1e6f; v *= 1.37f) {
        float l = px_t_logf(v);
        double want = log((double)v);
        ck_assert_msg(fabs(l - want) <= 1.0 * fabs(nextafterf((float)want, INFINITY) - (float)want) + 1e-12,
                      "log(%g)", v);
    }
    for (float v = -80.0f; v < 80.0f; v += 0.731f) {
        float e = px_t_expf(v);
        double want = exp((double)v);
        ck_assert_msg(fabs(e - want) <= fabs(nextafterf((float)want, INFINITY) - (float)want), "exp(%g)", v);
    }
    /* torch.linspace: exact ends, two-sided fill */
    float ls[1000];
    px_t_linspace_f32(ls, 0.0001, 0.02, 1000);
    ck_assert(ls[0] == 0.0001f && ls[999] == 0.02f);
    float one[1];
    px_t_linspace_f32(one, 0.5, 0.7, 1);
    ck_assert(one[0] == 0.5f);
    /* numpy: linspace endpoint exact, arange fill, round half to even */
    double d[5];
    px_np_linspace(d, 0.0, 999.0, 5);
    ck_assert(d[0] == 0 && d[1] == 249.75 && d[2] == 499.5 && d[4] == 999.0);
    ck_assert(px_np_round(0.5) == 0 && px_np_round(1.5) == 2 && px_np_round(2.5) == 2 && px_np_round(-0.5) == 0);
    ck_assert_int_eq(px_np_arange_len(1000, 0, -200), 5);
    ck_assert_int_eq(px_np_arange_len(1000, 0, -1000.0 / 61), 62); /* numpy: 62 (the trailing quirk) */
    px_np_arange(d, 1000, 0, -200);
    ck_assert(d[0] == 1000 && d[4] == 200);
    /* cumprod accumulates in double */
    float a[3] = { 0.9999f, 0.9998f, 0.9997f }, cp[3];
    px_t_cumprod_f32(cp, a, 3);
    ck_assert(cp[2] == (float)((double)a[0] * (double)a[1] * (double)a[2]));
}
END_TEST

static Suite *sched_suite(void)
{
    Suite *s = suite_create("sched");
    TCase *tc = tcase_create("traces");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_reference_traces_fixture);
    tcase_add_test(tc, test_extra_traces_fixture);
    tcase_add_test(tc, test_lcm_sa_traces_fixture);
    tcase_add_test(tc, test_pipeline_cases_lcm_sa);
    tcase_add_test(tc, test_pipeline_case_lcm_binning);
    tcase_add_test(tc, test_reference_traces_full);
    tcase_add_test(tc, test_pipeline_cases);
    tcase_add_test(tc, test_threshold);
    suite_add_tcase(s, tc);
    TCase *cfg = tcase_create("config");
    tcase_add_test(cfg, test_config_pixart);
    tcase_add_test(cfg, test_config_from_other_class);
    tcase_add_test(cfg, test_config_rejects);
    tcase_add_test(cfg, test_config_bad_schedule);
    tcase_add_test(cfg, test_scheduler_errors);
    tcase_add_test(cfg, test_config_lcm);
    tcase_add_test(cfg, test_lcm_errors);
    tcase_add_test(cfg, test_config_sa);
    tcase_add_test(cfg, test_sa_errors);
    suite_add_tcase(s, cfg);
    TCase *loop = tcase_create("loop");
    tcase_set_timeout(loop, 60);
    tcase_add_test(loop, test_toy_loop);
    tcase_add_test(loop, test_tmath);
    suite_add_tcase(s, loop);
    return s;
}

int main(void)
{
    return px_test_run(sched_suite());
}
