/* `pixart generate` and `pixart encode` as a user runs them ($PIXART_BIN):
 * the happy paths reproduce reference cases (from embeddings always, from the
 * prompt text when $PIXART_REFERENCE/t5/spiece.model is there), and every bad
 * input ends with one clear line on stderr, a non-zero exit status and no
 * output file. Also the progress output (src/cli/progress.c). */
#include "testutil.h"
#include "ops/ops.h"
#include "src/pipeline/png.h"
#include "src/cli/progress.h"
#include "tensor/error.h"
#include "tensor/npy.h"
#include "tensor/safetensors.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char tmp[256];
static char out_txt[300], err_txt[300];
static const char *shell_prefix = ""; /* e.g. a ulimit for the out-of-memory test */

static void setup(void)
{
    px_test_tmpdir_make(tmp, sizeof tmp, "cli");
    snprintf(out_txt, sizeof out_txt, "%s/stdout.txt", tmp);
    snprintf(err_txt, sizeof err_txt, "%s/stderr.txt", tmp);
}

static void teardown(void) { px_test_tmpdir_remove(tmp); }

static const char *bin(void)
{
    const char *b = getenv("PIXART_BIN");
    ck_assert_msg(b && *b, "PIXART_BIN is not set to the built pixart program");
    return b;
}

/* Runs "$PIXART_BIN ARGS" (ARGS is shell text) with stdout/stderr captured;
 * returns the exit status. */
static int run(const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "%sPIXART_NUM_THREADS=1 '%s' %s >'%s' 2>'%s'", shell_prefix, bin(), args, out_txt,
             err_txt);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* The last run failed with exactly one line on stderr, starting with
 * "pixart CMD: " and containing `what`, and wrote nothing into the output
 * folder `outdir` (which held `files_before` entries). */
static void expect_error(int status, const char *cmd, const char *what, const char *outdir, int files_before)
{
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(status != 0, "expected a failure mentioning '%s', got exit 0", what);
    size_t lines = 0;
    for (char *p = e; *p; p++) lines += *p == '\n';
    char prefix[64];
    snprintf(prefix, sizeof prefix, "pixart %s: ", cmd);
    ck_assert_msg(lines == 1 && !strncmp(e, prefix, strlen(prefix)), "expected one line '%s...', got:\n%s", prefix, e);
    ck_assert_msg(strstr(e, what), "error message lacks '%s':\n%s", what, e);
    if (outdir) ck_assert_int_eq(px_test_count_entries(outdir), files_before);
    free(e);
}

// ---------------------------------------------------------------------------
// Fixtures made from the reference cases

/* A --prompt-embeds file from a case's encode_prompt outputs (first image of
 * each prompt: the reference repeats them per image). */
static void write_embeds(const char *case_name, const char *path, int with_negative)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s.safetensors", case_name);
    px_st_file *f = px_test_open(px_test_data(rel));
    px_st_writer *w = px_st_writer_new();
    const char *keys[4][2] = {{"pipeline/prompt_embeds", "prompt_embeds"},
                              {"pipeline/prompt_attention_mask", "prompt_attention_mask"},
                              {"pipeline/negative_prompt_embeds", "negative_prompt_embeds"},
                              {"pipeline/negative_prompt_attention_mask", "negative_prompt_attention_mask"}};
    for (int k = 0; k < (with_negative ? 4 : 2); k++) {
        const px_tensor *t = px_st_find(f, keys[k][0]);
        ck_assert_ptr_nonnull(t);
        size_t n;
        float *v = px_test_get_f32(f, keys[k][0], &n);
        ck_assert_int_eq(px_st_writer_add(w, keys[k][1], PX_F32, t->ndim, t->shape, v), 0);
        free(v);
    }
    ck_assert_int_eq(px_st_writer_save(w, path), 0);
    px_st_writer_free(w);
    px_st_close(f);
}

static float *ref_tensor(const char *case_name, const char *key, size_t *n)
{
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s.safetensors", case_name);
    px_st_file *f = px_test_open(px_test_data(rel));
    float *v = px_test_get_f32(f, key, n);
    px_st_close(f);
    return v;
}

/* A PNG written by the command holds the reference image rounded (pixels that
 * sit within 2e-5 of a rounding boundary may differ by one: doc/pipeline.md). */
static void check_png(const char *path, const float *img, int h, int w)
{
    uint8_t *rgb;
    int pw, ph;
    if (px_png_read(path, &rgb, &pw, &ph, NULL, NULL)) ck_abort_msg("%s", px_last_error());
    ck_assert_int_eq(pw, w);
    ck_assert_int_eq(ph, h);
    size_t n = (size_t)h * w * 3;
    uint8_t *want = malloc(n);
    px_image_to_u8(want, img, n);
    for (size_t i = 0; i < n; i++)
        if (rgb[i] != want[i]) {
            double v = img[i] * 255.0, frac = v - floor(v);
            ck_assert_msg(abs(rgb[i] - want[i]) == 1 && fabs(frac - 0.5) <= 255 * 2e-5,
                          "%s: pixel %zu is %d, reference %d", path, i, rgb[i], want[i]);
        }
    free(want);
    free(rgb);
}

static void check_npy_image(const char *path, const char *case_name, double atol)
{
    px_tensor *t = px_npy_load(path);
    if (!t) ck_abort_msg("%s", px_last_error());
    size_t n;
    float *want = ref_tensor(case_name, "pipeline/image", &n);
    ck_assert_int_eq(t->ndim, 4);
    ck_assert_uint_eq((size_t)px_numel(t), n);
    assert_close((const float *)t->data, want, n, atol, 0, path);
    free(want);
    px_tensor_free(t);
}

// ---------------------------------------------------------------------------
// Happy paths (always on: from reference embeddings)

START_TEST(generate_from_embeds)
{
    char emb[300], npy[300], png[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(npy, sizeof npy, "%s/img.npy", tmp);
    snprintf(png, sizeof png, "%s/img.png", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    // small_dpm2_cfg: DPM-Solver++ 2 steps, guidance 4.5, 16x16, seed 0
    int st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning "
                 "--output-type npy -o '%s' --quiet",
                 px_test_data("pipe_small"), emb, npy);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    ck_assert_str_eq(e, ""); // --quiet
    free(e);
    check_npy_image(npy, "small_dpm2_cfg", 2e-5);

    // the same call as PNG, with the parameters in text chunks and progress lines on stderr
    st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning -o '%s'",
             px_test_data("pipe_small"), emb, png);
    e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    ck_assert_ptr_nonnull(strstr(e, "step 2/2"));
    ck_assert_ptr_nonnull(strstr(e, "time:"));
    ck_assert_ptr_nonnull(strstr(e, "wrote "));
    free(e);
    size_t n;
    float *img = ref_tensor("small_dpm2_cfg", "pipeline/image", &n);
    check_png(png, img, 16, 16);
    free(img);
    uint8_t *rgb;
    int w, h, nt;
    px_png_kv *kv;
    ck_assert_int_eq(px_png_read(png, &rgb, &w, &h, &kv, &nt), 0);
    int seen = 0;
    for (int i = 0; i < nt; i++) {
        if (!strcmp(kv[i].key, "seed")) seen += !strcmp(kv[i].value, "0");
        if (!strcmp(kv[i].key, "steps")) seen += !strcmp(kv[i].value, "2");
        if (!strcmp(kv[i].key, "guidance_scale")) seen += !strcmp(kv[i].value, "4.5");
        if (!strcmp(kv[i].key, "scheduler")) seen += !strcmp(kv[i].value, "DPMSolverMultistepScheduler");
        if (!strcmp(kv[i].key, "size")) seen += !strcmp(kv[i].value, "16x16");
    }
    ck_assert_int_eq(seen, 5);
    px_png_text_free(kv, nt);
    free(rgb);
}
END_TEST

/* PixArt-LCM as its model card runs it, with no scheduler, step or guidance
 * flag: pipe_lcm's model_index names LCMScheduler, so generate takes 4 steps
 * without guidance (lcm4_nocfg_64x64: 64x64, seed 0); `--scheduler sa-solver`
 * builds SASolverScheduler() from pipe_small's DPM config (small_sa5_cfg). */
START_TEST(generate_lcm_and_sasolver_defaults)
{
    char emb[300], npy[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(npy, sizeof npy, "%s/lcm.npy", tmp);
    write_embeds("lcm4_nocfg_64x64", emb, 0);
    int st = run("generate --model '%s' --prompt-embeds '%s' --seed 500 --no-resolution-binning --height 64 "
                 "--width 64 --output-type npy -o '%s' --quiet",
                 px_test_data("pipe_lcm"), emb, npy);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    check_npy_image(npy, "lcm4_nocfg_64x64", 2e-5);

    snprintf(npy, sizeof npy, "%s/sa.npy", tmp);
    write_embeds("small_sa5_cfg", emb, 1);
    st = run("generate --model '%s' --prompt-embeds '%s' --scheduler sa-solver --steps 5 --seed 600 "
             "--no-resolution-binning --output-type npy -o '%s' --quiet",
             px_test_data("pipe_small"), emb, npy);
    e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    check_npy_image(npy, "small_sa5_cfg", 2e-5);
}
END_TEST

START_TEST(generate_batch_ddim_seed_list)
{
    // small_ddim2_batch2_genlist_eta1: two prompts, DDIMScheduler() (from a config file),
    // eta 1, one generator per image, guidance 3
    char emb[300], cfgp[300], png[300], p0[300], p1[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(cfgp, sizeof cfgp, "%s/ddim.json", tmp);
    snprintf(png, sizeof png, "%s/pair.png", tmp);
    snprintf(p0, sizeof p0, "%s/pair-0.png", tmp);
    snprintf(p1, sizeof p1, "%s/pair-1.png", tmp);
    write_embeds("small_ddim2_batch2_genlist_eta1", emb, 1);
    px_test_write_text(cfgp, "{\"_class_name\": \"DDIMScheduler\", \"_diffusers_version\": \"0.30.3\"}\n");
    int st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 7,8 --eta 1 --guidance-scale 3 "
                 "--scheduler-config '%s' --no-resolution-binning -o '%s' --quiet",
                 px_test_data("pipe_small"), emb, cfgp, png);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    ck_assert(!exists(png));
    size_t n;
    float *img = ref_tensor("small_ddim2_batch2_genlist_eta1", "pipeline/image", &n);
    check_png(p0, img, 16, 16);
    check_png(p1, img + 16 * 16 * 3, 16, 16);
    free(img);
}
END_TEST

/* The keys of a saved dump against a key-list fixture (data/dumps/). */
static void check_dump_keys(const px_st_file *f, const char *fixture, const char *const *prefixes)
{
    const char **keys = malloc((f->n ? f->n : 1) * sizeof *keys);
    for (size_t i = 0; i < f->n; i++) keys[i] = f->entries[i].name;
    px_test_check_keys(keys, f->n, fixture, prefixes);
    free(keys);
}

START_TEST(generate_latents_dump_and_latent_output)
{
    // ms_dpm2_cfg_32x80 (1024-MS micro-conditioning) from --latents instead of a seed
    char emb[300], lat[300], out[300], dump[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(lat, sizeof lat, "%s/lat.safetensors", tmp);
    snprintf(out, sizeof out, "%s/final.npy", tmp);
    snprintf(dump, sizeof dump, "%s/dump.safetensors", tmp);
    write_embeds("ms_dpm2_cfg_32x80", emb, 1);
    size_t n;
    float *l0 = ref_tensor("ms_dpm2_cfg_32x80", "pipeline/initial_latents", &n);
    px_st_writer *w = px_st_writer_new();
    ck_assert_int_eq(px_st_writer_add(w, "latents", PX_F32, 4, (int64_t[]){1, 4, 4, 10}, l0), 0);
    ck_assert_int_eq(px_st_writer_save(w, lat), 0);
    px_st_writer_free(w);
    free(l0);
    int st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --latents '%s' --height 32 --width 80 "
                 "--no-resolution-binning --output-type latent --dump '%s' -o '%s' --quiet",
                 px_test_data("pipe_ms"), emb, lat, dump, out);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    px_tensor *t = px_npy_load(out);
    ck_assert_ptr_nonnull(t);
    float *want = ref_tensor("ms_dpm2_cfg_32x80", "pipeline/latents_step01", &n);
    ck_assert_uint_eq((size_t)px_numel(t), n);
    double scale = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(want[i]));
    assert_close((const float *)t->data, want, n, 3e-5 + 5e-6 * scale, 0, "final latents");
    free(want);
    px_tensor_free(t);
    // the dump holds the pipeline's and the transformer's intermediates under reference names
    px_st_file *f = px_test_open(dump);
    ck_assert_ptr_nonnull(px_st_find(f, "pipeline/initial_latents"));
    ck_assert_ptr_nonnull(px_st_find(f, "pipeline/latents_step00"));
    ck_assert_ptr_nonnull(px_st_find(f, "pipeline/latents_step01"));
    ck_assert_ptr_nonnull(px_st_find(f, "pipeline/prompt_embeds"));
    ck_assert_ptr_nonnull(px_st_find(f, "transformer/transformer_blocks.0#0"));
    ck_assert_ptr_nonnull(px_st_find(f, "transformer/transformer_blocks.1#0"));
    ck_assert_ptr_null(px_st_find(f, "vae/decoder.conv_out#0")); // latent output: no decode
    // the default dump keeps the main modules only, with the reference's values
    ck_assert_ptr_null(px_st_find(f, "transformer/transformer_blocks.0.attn1.to_q#0"));
    const px_tensor *t1 = px_st_find(f, "transformer/transformer_blocks.1#0");
    float *r1 = ref_tensor("ms_dpm2_cfg_32x80", "transformer/transformer_blocks.1#0", &n);
    ck_assert_uint_eq((size_t)px_numel(t1), n);
    assert_close((const float *)t1->data, r1, n, 1e-4, 1e-4, "transformer_blocks.1#0");
    free(r1);
    px_st_close(f);
    // --dump-all: every module
    int st2 = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --latents '%s' --height 32 --width 80 "
                  "--no-resolution-binning --output-type latent --dump '%s' --dump-all -o '%s' --quiet",
                  px_test_data("pipe_ms"), emb, lat, dump, out);
    ck_assert_int_eq(st2, 0);
    f = px_test_open(dump);
    ck_assert_ptr_nonnull(px_st_find(f, "transformer/transformer_blocks.0.attn1.to_q#0"));
    ck_assert_ptr_nonnull(px_st_find(f, "transformer/adaln_single.emb.resolution_embedder.linear_1#0"));
    check_dump_keys(f, "dumps/generate_ms_dump_all.keys", (const char *[]){"transformer/", NULL});
    px_st_close(f);
}
END_TEST

START_TEST(generate_variant_fp16)
{
    // a copy of pipe_small whose transformer also has *.fp16.safetensors (F16 weights):
    // --variant fp16 must load those, the default the F32 ones
    char model[300], cmd[1200], emb[300], a[300], b[300];
    snprintf(model, sizeof model, "%s/model", tmp);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", px_test_data("pipe_small"), model);
    ck_assert_int_eq(system(cmd), 0);
    static const char *comps[][2] = {{"transformer", "diffusion_pytorch_model"},
                                     {"vae", "diffusion_pytorch_model"},
                                     {"text_encoder", "model"}};
    for (int c = 0; c < 3; c++) {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/%s", model, comps[c][0]);
        px_test_copy_weights(dir, comps[c][1], dir,
                             &(px_test_copy_opts){ .variant = "fp16", .values = PX_TEST_COPY_HALF, .half = PX_F16 });
    }
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(a, sizeof a, "%s/a.npy", tmp);
    snprintf(b, sizeof b, "%s/b.npy", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    int st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning "
                 "--output-type npy -o '%s' --quiet --variant fp16",
                 model, emb, a);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate --variant fp16 failed: %s", e);
    free(e);
    ck_assert_int_eq(run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning "
                         "--output-type npy -o '%s' --quiet",
                         model, emb, b),
                     0);
    check_npy_image(b, "small_dpm2_cfg", 2e-5); // the plain files
    px_tensor *ta = px_npy_load(a), *tb = px_npy_load(b);
    size_t n = (size_t)px_numel(ta), diff = 0;
    double ma = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs(((float *)ta->data)[i] - ((float *)tb->data)[i]);
        diff += d > 0;
        ma = fmax(ma, d);
    }
    ck_assert_msg(diff > 0, "--variant fp16 gave the float32 result: the fp16 files were not used");
    ck_assert_msg(ma < 0.05, "fp16 weights moved the image by %g", ma);
    px_tensor_free(ta);
    px_tensor_free(tb);
    // a variant the checkpoint does not have is an error naming the file
    snprintf(cmd, sizeof cmd, "rm '%s/vae/diffusion_pytorch_model.fp16.safetensors'", model);
    ck_assert_int_eq(system(cmd), 0);
    int before = px_test_count_entries(tmp);
    st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning -o '%s/c.png' "
             "--quiet --variant fp16",
             model, emb, tmp);
    expect_error(st, "generate", "fp16", tmp, before);
}
END_TEST

// ---------------------------------------------------------------------------
// From the prompt text (optional: needs the real T5 vocabulary)

static int model_with_vocab(char *model, size_t size, const char *pipe)
{
    if (!px_test_have_ref("t5/spiece.model", "CLI from prompt text (needs the T5 spiece.model)")) return 0;
    snprintf(model, size, "%s/%s", tmp, pipe);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cp '%s' '%s/tokenizer/spiece.model'", px_test_data(pipe), model,
             px_test_ref("t5/spiece.model"), model);
    ck_assert_int_eq(system(cmd), 0);
    return 1;
}

START_TEST(generate_from_text)
{
    char model[300], png[300], npy[300];
    if (!model_with_vocab(model, sizeof model, "pipe_small")) return;
    snprintf(png, sizeof png, "%s/neg.png", tmp);
    snprintf(npy, sizeof npy, "%s/neg.npy", tmp);
    // small_dpm5_negprompt
    const char *args = "--prompt 'a small cactus with a happy face in the Sahara desert' "
                       "--negative-prompt 'low quality, blurry, watermark' --steps 5 --seed 1 --no-resolution-binning";
    int st = run("generate --model '%s' %s --output-type npy -o '%s' --quiet", model, args, npy);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    check_npy_image(npy, "small_dpm5_negprompt", 2e-5);
    ck_assert_int_eq(run("generate --model '%s' %s -o '%s' --quiet", model, args, png), 0);
    size_t n;
    float *img = ref_tensor("small_dpm5_negprompt", "pipeline/image", &n);
    check_png(png, img, 16, 16);
    free(img);

    // small_dpm2_nipp2_long: two images of one (truncated) prompt
    px_json *j = px_json_load_file(px_test_data("cases/small_dpm2_nipp2_long.json"));
    const char *prompt = px_json_get(px_json_get(j, "call"), "prompt")->string;
    ck_assert_ptr_null(strchr(prompt, '\''));
    snprintf(npy, sizeof npy, "%s/long.npy", tmp);
    st = run("generate --model '%s' --prompt '%s' --num-images-per-prompt 2 --steps 2 --seed 5 "
             "--no-resolution-binning --output-type npy -o '%s' --quiet",
             model, prompt, npy);
    px_json_free(j);
    e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "generate failed: %s", e);
    free(e);
    check_npy_image(npy, "small_dpm2_nipp2_long", 2e-5);

    // --dump from text: T5 block outputs of both text-encoder calls (#0 prompt, #1 negative),
    // numbered as in the reference although the submodules in between are not kept
    char dump[300];
    snprintf(dump, sizeof dump, "%s/d.safetensors", tmp);
    snprintf(npy, sizeof npy, "%s/d.npy", tmp);
    st = run("generate --model '%s' --prompt 'A painting of a squirrel eating a burger' --steps 2 --seed 0 "
             "--no-resolution-binning --output-type npy -o '%s' --dump '%s' --quiet",
             model, npy, dump);
    ck_assert_int_eq(st, 0);
    px_st_file *f = px_test_open(dump);
    ck_assert_ptr_null(px_st_find(f, "text_encoder/encoder.block.1.layer.0.SelfAttention.q#1"));
    static const char *keys[] = {"text_encoder/encoder.block.1.layer.1#0", "text_encoder/encoder.block.1.layer.1#1",
                                 "text_encoder/encoder.final_layer_norm#1", "vae/decoder.conv_out#0",
                                 "pipeline/negative_prompt_embeds"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        const px_tensor *t = px_st_find(f, keys[k]);
        ck_assert_msg(t != NULL, "dump lacks %s", keys[k]);
        float *want = ref_tensor("small_dpm2_cfg", keys[k], &n);
        ck_assert_uint_eq((size_t)px_numel(t), n);
        assert_close((const float *)t->data, want, n, 1e-5, 1e-4, keys[k]);
        free(want);
    }
    px_st_close(f);

    // --dump-all from text: every key of every model, as before the modules recorded
    // themselves (issue 11), for pipe_small and for pipe_ms (micro-conditioning)
    char ms[300];
    ck_assert(model_with_vocab(ms, sizeof ms, "pipe_ms"));
    static const struct { const char *args, *keys; } all[] = {
        { "--seed 0", "dumps/generate_small_dump_all.keys" },
        { "--seed 1 --height 32 --width 80", "dumps/generate_ms_dump_all.keys" },
    };
    for (int i = 0; i < 2; i++) {
        st = run("generate --model '%s' --prompt 'A painting of a squirrel eating a burger' --steps 2 %s "
                 "--no-resolution-binning --output-type npy -o '%s' --dump '%s' --dump-all --quiet",
                 i ? ms : model, all[i].args, npy, dump);
        ck_assert_int_eq(st, 0);
        f = px_test_open(dump);
        check_dump_keys(f, all[i].keys, NULL);
        px_st_close(f);
    }
}
END_TEST

START_TEST(encode_then_generate)
{
    char model[300], emb[300], a[300], b[300];
    if (!model_with_vocab(model, sizeof model, "pipe_ms")) return;
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    snprintf(a, sizeof a, "%s/a.npy", tmp);
    snprintf(b, sizeof b, "%s/b.npy", tmp);
    // ms_dpm3_batch2_neg_48x80: two prompts and a negative prompt
    const char *prompts = "--prompt 'a blue bird on a branch' --prompt 'two robots playing chess in a park' "
                          "--negative-prompt 'cartoon, low resolution'";
    int st = run("encode --model '%s' %s -o '%s' --quiet", model, prompts, emb);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(st == 0, "encode failed: %s", e);
    free(e);
    // the file holds encode_prompt's outputs
    px_st_file *f = px_test_open(emb);
    size_t n;
    float *want = ref_tensor("ms_dpm3_batch2_neg_48x80", "pipeline/prompt_embeds", &n);
    const px_tensor *t = px_st_find(f, "prompt_embeds");
    ck_assert_ptr_nonnull(t);
    ck_assert_uint_eq((size_t)px_numel(t), n);
    assert_close((const float *)t->data, want, n, 1e-5, 0, "prompt_embeds");
    free(want);
    want = ref_tensor("ms_dpm3_batch2_neg_48x80", "pipeline/negative_prompt_attention_mask", &n);
    t = px_st_find(f, "negative_prompt_attention_mask");
    ck_assert_ptr_nonnull(t);
    assert_close((const float *)t->data, want, n, 0, 0, "negative_prompt_attention_mask");
    free(want);
    px_st_close(f);
    const char *call = "--steps 3 --seed 24 --height 48 --width 80 --no-resolution-binning --output-type npy --quiet";
    ck_assert_int_eq(run("generate --model '%s' --prompt-embeds '%s' %s -o '%s'", model, emb, call, a), 0);
    ck_assert_int_eq(run("generate --model '%s' %s %s -o '%s'", model, prompts, call, b), 0);
    check_npy_image(a, "ms_dpm3_batch2_neg_48x80", 2e-5);
    check_npy_image(b, "ms_dpm3_batch2_neg_48x80", 2e-5);
}
END_TEST

// ---------------------------------------------------------------------------
// Error paths: one line, non-zero status, no output file

START_TEST(generate_errors)
{
    char emb[300], outdir[300], model[300], cmd[1200];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    snprintf(outdir, sizeof outdir, "%s/out", tmp);
    ck_assert_int_eq(mkdir(outdir, 0755), 0);
    const char *ok = "--steps 2 --seed 0 --no-resolution-binning --quiet";
    const char *small = px_test_data("pipe_small");
    int st;

    // bad option values
    static const struct {
        const char *args, *what;
    } bad[] = {
        {"--steps 0", "--steps"},
        {"--steps abc", "--steps"},
        {"--guidance-scale x", "--guidance-scale"},
        {"--seed -1", "--seed"},
        {"--seed 1,,2", "--seed"},
        {"--seed 99999999999999999999999", "--seed"},
        {"--eta -0.5", "--eta"},
        {"--timesteps 999,abc", "--timesteps"},
        {"--timesteps 100,900", "descending"},
        {"--output-type jpg", "--output-type"},
        {"--scheduler euler", "--scheduler"},
        {"--variant fp8", "--variant"},
        {"--frobnicate 3", "unknown option"},
        {"--height 12 --width 16", "divisible by 8"},
        {"--num-images-per-prompt 0", "--num-images-per-prompt"},
        {"--threads 0", "--threads"},
        {"--steps 2 --timesteps 999,500", "not both"},
        {"--scheduler ddim --scheduler-config x.json", "not both"},
        {"--seed 1,2,3", "3 seeds for 1 images"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        st = run("generate --model '%s' --prompt-embeds '%s' --no-resolution-binning --quiet %s -o '%s/x.png'", small,
                 emb, bad[i].args, outdir);
        expect_error(st, "generate", bad[i].what, outdir, 0);
    }
    // required options
    st = run("generate --prompt-embeds '%s' -o '%s/x.png'", emb, outdir);
    expect_error(st, "generate", "--model", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s'", small, emb);
    expect_error(st, "generate", "-o", outdir, 0);
    st = run("generate --model '%s' -o '%s/x.png'", small, outdir);
    expect_error(st, "generate", "--prompt", outdir, 0);
    st = run("generate --model '%s' --prompt a --prompt-embeds '%s' -o '%s/x.png'", small, emb, outdir);
    expect_error(st, "generate", "not both", outdir, 0);

    // the model folder
    st = run("generate --model '%s/nowhere' --prompt-embeds '%s' %s -o '%s/x.png'", tmp, emb, ok, outdir);
    expect_error(st, "generate", "model_index.json", outdir, 0);
    snprintf(model, sizeof model, "%s/novae", tmp);
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && rm -r '%s/vae'", small, model, model);
    ck_assert_int_eq(system(cmd), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s/x.png'", model, emb, ok, outdir);
    expect_error(st, "generate", "vae", outdir, 0);
    snprintf(model, sizeof model, "%s/wrongclass", tmp);
    snprintf(cmd, sizeof cmd,
             "cp -r '%s' '%s' && sed -i 's/PixArtTransformer2DModel/UNet2DConditionModel/' '%s/model_index.json'",
             small, model, model);
    ck_assert_int_eq(system(cmd), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s/x.png'", model, emb, ok, outdir);
    expect_error(st, "generate", "UNet2DConditionModel", outdir, 0);
    snprintf(model, sizeof model, "%s/sdxl", tmp);
    snprintf(cmd, sizeof cmd,
             "cp -r '%s' '%s' && sed -i 's/PixArtAlphaPipeline/StableDiffusionXLPipeline/' '%s/model_index.json'",
             small, model, model);
    ck_assert_int_eq(system(cmd), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s/x.png'", model, emb, ok, outdir);
    expect_error(st, "generate", "StableDiffusionXLPipeline", outdir, 0);
    snprintf(model, sizeof model, "%s/badweights", tmp);
    snprintf(cmd, sizeof cmd,
             "cp -r '%s' '%s' && head -c 1000 '%s/transformer/diffusion_pytorch_model.safetensors' > "
             "'%s/transformer/diffusion_pytorch_model.safetensors'",
             small, model, small, model);
    ck_assert_int_eq(system(cmd), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s/x.png'", model, emb, ok, outdir);
    expect_error(st, "generate", "diffusion_pytorch_model.safetensors", outdir, 0);

    // pipe_small has no spiece.model (and sample_size 8: no binning table)
    st = run("generate --model '%s' --prompt 'a cat' %s -o '%s/x.png'", small, ok, outdir);
    expect_error(st, "generate", "spiece.model", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --quiet -o '%s/x.png'", small, emb,
             outdir);
    expect_error(st, "generate", "--no-resolution-binning", outdir, 0);

    // unreadable / wrong input files
    st = run("generate --model '%s' --prompt-embeds '%s/none.safetensors' %s -o '%s/x.png'", small, tmp, ok, outdir);
    expect_error(st, "generate", "none.safetensors", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s' --latents '%s' --steps 2 --no-resolution-binning --quiet "
             "-o '%s/x.png'",
             small, emb, emb, outdir);
    expect_error(st, "generate", "'latents'", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s --scheduler-config '%s/none.json' -o '%s/x.png'", small,
             emb, ok, tmp, outdir);
    expect_error(st, "generate", "none.json", outdir, 0);
    char sch[300];
    snprintf(sch, sizeof sch, "%s/euler.json", tmp);
    px_test_write_text(sch, "{\"_class_name\": \"EulerDiscreteScheduler\"}");
    st = run("generate --model '%s' --prompt-embeds '%s' %s --scheduler-config '%s' -o '%s/x.png'", small, emb, ok,
             sch, outdir);
    expect_error(st, "generate", "EulerDiscreteScheduler", outdir, 0);
    // DPM-Solver cannot do diffusers' 1-step path; DDIM cannot take custom timesteps
    st = run("generate --model '%s' --prompt-embeds '%s' --steps 1 --seed 0 --no-resolution-binning --quiet "
             "-o '%s/x.png'",
             small, emb, outdir);
    expect_error(st, "generate", "pred_original_sample", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s' --timesteps 999,500 --scheduler ddim --seed 0 "
             "--no-resolution-binning --quiet -o '%s/x.png'",
             small, emb, outdir);
    expect_error(st, "generate", "timesteps", outdir, 0);
    // out of memory: a clear message, not a crash (address-space limit; sanitizer builds
    // reserve huge shadow mappings and abort on huge allocations by design, so not there)
    if (getenv("ASAN_OPTIONS") || getenv("UBSAN_OPTIONS")) {
        px_test_skip_part("out-of-memory check under the sanitizers");
    } else {
        shell_prefix = "ulimit -v 3000000; "; // a budget past the limit: the allocation fails
        st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning --height 48000 "
                 "--width 48000 --max-memory 1T --quiet -o '%s/x.png'",
                 small, emb, outdir);
        shell_prefix = "";
        expect_error(st, "generate", "out of memory", outdir, 0);
    }
    // a decode over the memory budget (51.5 GiB for the image buffers alone): refused at once
    st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning --height 48000 "
             "--width 48000 --max-memory 40G --quiet -o '%s/x.png'",
             small, emb, outdir);
    expect_error(st, "generate", "over the memory budget of 40.00 GiB (--max-memory", outdir, 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s --max-memory 3Q -o '%s/x.png'", small, emb, ok, outdir);
    expect_error(st, "generate", "--max-memory: '3Q' is not a size", outdir, 0);
    // output place
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s/no/such/dir/x.png'", small, emb, ok, tmp);
    expect_error(st, "generate", "no/such/dir", NULL, 0);
    ck_assert_int_eq(px_test_count_entries(outdir), 0);
}
END_TEST

START_TEST(encode_errors)
{
    char outdir[300];
    snprintf(outdir, sizeof outdir, "%s/out", tmp);
    ck_assert_int_eq(mkdir(outdir, 0755), 0);
    int st = run("encode --model '%s' -o '%s/e.safetensors'", px_test_data("pipe_small"), outdir);
    expect_error(st, "encode", "--prompt", outdir, 0);
    st = run("encode --model '%s' --prompt a --prompt b --negative-prompt x --negative-prompt y --negative-prompt z "
             "-o '%s/e.safetensors'",
             px_test_data("pipe_small"), outdir);
    expect_error(st, "encode", "once per --prompt", outdir, 0);
    st = run("encode --model '%s' --prompt a -o '%s/e.safetensors' --quiet", px_test_data("pipe_small"), outdir);
    expect_error(st, "encode", "spiece.model", outdir, 0);
    st = run("encode --model '%s' --prompt a --max-sequence-length 1 -o '%s/e.safetensors'", px_test_data("pipe_small"),
             outdir);
    expect_error(st, "encode", "--max-sequence-length", outdir, 0);
    ck_assert_int_eq(run("encode --help"), 0);
    ck_assert_int_eq(run("generate --help"), 0);
    char *o = px_test_read_text(out_txt, NULL);
    ck_assert_ptr_nonnull(strstr(o, "--num-images-per-prompt"));
    free(o);
}
END_TEST


// ---------------------------------------------------------------------------
// Output files (issue 17, findings 5-8): devices and symlinks kept, all or
// nothing, temporaries removed on signals, bad paths refused before the run

/* Entries of dir named like the writers' temporaries (.pixart.tmp.PID.N). */
static int count_temporaries(const char *dir)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) n += !strncmp(e->d_name, ".pixart.tmp.", 12);
    closedir(d);
    return n;
}

static void assert_text(const char *path, const char *want)
{
    char *got = px_test_read_text(path, NULL);
    ck_assert_msg(!strcmp(got, want), "%s holds '%.40s', expected '%s'", path, got, want);
    free(got);
}

START_TEST(generate_output_all_or_nothing)
{
    char emb[300], o[300], o0[300], o1[300], dump[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    const char *small = px_test_data("pipe_small");
    const char *ok = "--steps 2 --seed 0 --no-resolution-binning --quiet";
    snprintf(o, sizeof o, "%s/out.png", tmp);
    snprintf(o0, sizeof o0, "%s/out-0.png", tmp);
    snprintf(o1, sizeof o1, "%s/out-1.png", tmp);
    snprintf(dump, sizeof dump, "%s/dump.safetensors", tmp);
    if (access("/dev/full", W_OK) != 0) {
        px_test_skip_part("no writable /dev/full to make a write fail");
        return;
    }
    // out-1.png cannot be written (ENOSPC): the user's old out-0.png survives
    px_test_write_text(o0, "old out-0");
    ck_assert_int_eq(symlink("/dev/full", o1), 0);
    int st = run("generate --model '%s' --prompt-embeds '%s' %s --num-images-per-prompt 2 -o '%s'", small, emb, ok, o);
    expect_error(st, "generate", "out-1.png", NULL, 0);
    assert_text(o0, "old out-0");
    ck_assert_int_eq(count_temporaries(tmp), 0);
    // --dump fails after the image was written: the old out.png survives
    px_test_write_text(o, "old out");
    ck_assert_int_eq(symlink("/dev/full", dump), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s' --dump '%s'", small, emb, ok, o, dump);
    expect_error(st, "generate", "dump.safetensors", NULL, 0);
    assert_text(o, "old out");
    ck_assert_int_eq(count_temporaries(tmp), 0);
    // and when everything can be written, the old files are replaced
    ck_assert_int_eq(unlink(o1), 0);
    st = run("generate --model '%s' --prompt-embeds '%s' %s --num-images-per-prompt 2 -o '%s'", small, emb, ok, o);
    ck_assert_int_eq(st, 0);
    uint8_t *rgb;
    int w, h;
    for (int i = 0; i < 2; i++) {
        ck_assert_msg(px_png_read(i ? o1 : o0, &rgb, &w, &h, NULL, NULL) == 0, "%s", px_last_error());
        free(rgb);
    }
    ck_assert_int_eq(count_temporaries(tmp), 0);
}
END_TEST

START_TEST(output_targets)
{
    char emb[300], real[300], link[300], name[PATH_MAX], cmd[1200];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    const char *small = px_test_data("pipe_small");
    const char *ok = "--steps 2 --seed 0 --no-resolution-binning --quiet";
    struct stat sb;
    // a device stays a device, a symlink stays a symlink (its target is replaced)
    int st = run("generate --model '%s' --prompt-embeds '%s' %s -o /dev/null", small, emb, ok);
    ck_assert_int_eq(st, 0);
    ck_assert_int_eq(stat("/dev/null", &sb), 0);
    ck_assert(S_ISCHR(sb.st_mode));
    ck_assert_int_eq(run("randn --seed 1 --shape 2,3 -o /dev/null"), 0);
    // a pipe through /dev/stdout (a link to /proc/self/fd/1, whose target "pipe:[N]" is no path)
    ck_assert_int_eq(run("randn --seed 1 --shape 2 -o /dev/stdout | wc -c"), 0);
    char *count = px_test_read_text(out_txt, NULL);
    ck_assert_int_eq(atoi(count), 128 + 2 * 4); // the 128-byte .npy header and two floats
    free(count);
    snprintf(real, sizeof real, "%s/real.npy", tmp);
    snprintf(link, sizeof link, "%s/link.npy", tmp);
    px_test_write_text(real, "old");
    ck_assert_int_eq(symlink("real.npy", link), 0);
    ck_assert_int_eq(run("randn --seed 1 --shape 2,3 -o '%s'", link), 0);
    ck_assert_int_eq(lstat(link, &sb), 0);
    ck_assert(S_ISLNK(sb.st_mode));
    px_tensor *t = px_npy_load(real);
    ck_assert_msg(t && t->ndim == 2 && t->shape[1] == 3, "%s", px_last_error());
    px_tensor_free(t);
    // refused before any model is read (pipe_small would run): a directory, an
    // empty path, a missing folder, a file name longer than NAME_MAX (out-1.png)
    int before = px_test_count_entries(tmp);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o '%s'", small, emb, ok, tmp);
    expect_error(st, "generate", "is a directory", tmp, before);
    st = run("generate --model '%s' --prompt-embeds '%s' %s -o ''", small, emb, ok);
    expect_error(st, "generate", "empty", tmp, before);
    st = run("generate --model '%s' --prompt-embeds '%s' %s --dump '%s' -o '%s/x.png'", small, emb, ok, tmp, tmp);
    expect_error(st, "generate", "is a directory", tmp, before);
    st = run("generate --model '%s' --prompt-embeds '%s' %s --dump '%s/nodir/d.safetensors' -o '%s/x.png'", small, emb,
             ok, tmp, tmp);
    expect_error(st, "generate", "nodir", tmp, before);
    long name_max = pathconf(tmp, _PC_NAME_MAX);
    ck_assert(name_max > 10 && name_max < 1000);
    int n = snprintf(name, sizeof name, "%s/", tmp);
    memset(name + n, 'a', (size_t)name_max - 4);
    snprintf(name + n + name_max - 4, 5, ".png"); // exactly NAME_MAX: out.png fits, out-1.png does not
    st = run("generate --model '%s' --prompt-embeds '%s' %s --num-images-per-prompt 2 -o '%s'", small, emb, ok, name);
    expect_error(st, "generate", "longer than", tmp, before);
    st = run("encode --model '%s' --prompt a -o '%s'", small, tmp);
    expect_error(st, "encode", "is a directory", tmp, before);
    st = run("randn --seed 1 --shape 2 -o '%s/nodir/r.npy'", tmp);
    expect_error(st, "randn", "nodir", tmp, before);
    st = run("randn --seed 1 --shape 2 -o ''");
    expect_error(st, "randn", "empty", tmp, before);
    // --timesteps outside [0, num_train_timesteps - 1]: named with the value
    st = run("generate --model '%s' --prompt-embeds '%s' --timesteps 5000,10 --seed 0 --no-resolution-binning "
             "--quiet -o '%s/x.png'",
             small, emb, tmp);
    expect_error(st, "generate", "--timesteps 5000,10", tmp, before);
    char *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(strstr(e, "custom timestep 5000 is outside [0, 999]"), "%s", e);
    free(e);
    snprintf(cmd, sizeof cmd, "%s/x.png", tmp);
    ck_assert(!exists(cmd));
}
END_TEST

/* pixart generate stopped by sig while its first output is staged and the
 * second (a FIFO without a reader) blocks: the temporary must go. */
static void interrupt_run(int sig)
{
    char emb[300], o[300], o0[300], o1[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    if (!exists(emb)) write_embeds("small_dpm2_cfg", emb, 1);
    snprintf(o, sizeof o, "%s/sig.png", tmp);
    snprintf(o0, sizeof o0, "%s/sig-0.png", tmp);
    snprintf(o1, sizeof o1, "%s/sig-1.png", tmp);
    unlink(o1);
    ck_assert_int_eq(mkfifo(o1, 0600), 0);
    pid_t pid = fork();
    ck_assert_int_ne(pid, -1);
    if (pid == 0) {
        setenv("PIXART_NUM_THREADS", "1", 1);
        char *argv[] = {(char *)bin(), "generate", "--model", (char *)px_test_data("pipe_small"), "--prompt-embeds",
                        emb, "--steps", "2", "--seed", "0", "--no-resolution-binning", "--quiet",
                        "--num-images-per-prompt", "2", "-o", o, NULL};
        execv(bin(), argv);
        _exit(127);
    }
    int seen = 0;
    for (int i = 0; i < 6000 && !seen; i++) { // up to 60 s for the run to reach the outputs
        seen = count_temporaries(tmp) > 0;
        if (!seen) usleep(10000);
    }
    ck_assert_msg(seen, "no temporary appeared");
    usleep(100000); // now blocked opening the FIFO
    ck_assert_int_eq(kill(pid, sig), 0);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == sig, "status %d", status);
    ck_assert_int_eq(count_temporaries(tmp), 0);
    ck_assert(!exists(o0));
    unlink(o1);
}

START_TEST(signal_removes_temporaries)
{
    interrupt_run(SIGINT);
    interrupt_run(SIGTERM);
}
END_TEST

// ---------------------------------------------------------------------------
// Progress output

START_TEST(progress_lines)
{
    char b[32];
    ck_assert_str_eq(px_format_seconds(0.4213, b, sizeof b), "0.42 s");
    ck_assert_str_eq(px_format_seconds(12.34, b, sizeof b), "12.3 s");
    ck_assert_str_eq(px_format_seconds(185, b, sizeof b), "3 min 05 s");
    ck_assert_str_eq(px_format_seconds(7300, b, sizeof b), "2 h 01 min");

    for (int tty = 0; tty < 2; tty++) {
        char *buf = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&buf, &len);
        px_progress *p = px_progress_new(f, 0, tty);
        px_progress_event ev = {0};
        ev.kind = PX_EVENT_BEGIN;
        ev.stage = PX_STAGE_DENOISE;
        px_progress_callback(p, &ev);
        for (int i = 0; i < 3; i++) {
            ev.kind = PX_EVENT_STEP;
            ev.step = i;
            ev.num_steps = 3;
            ev.seconds = 0.5;
            ev.timestep = 999 - 333 * i;
            px_progress_callback(p, &ev);
        }
        ev.kind = PX_EVENT_END;
        ev.seconds = 1.5;
        px_progress_callback(p, &ev);
        double secs[PX_STAGE_COUNT] = {0};
        secs[PX_STAGE_DENOISE] = 1.5;
        secs[PX_STAGE_DECODE] = 0.25;
        px_progress_summary(p, secs);
        px_progress_free(p);
        fclose(f);
        if (!tty) { // a log: one line per step
            ck_assert_ptr_nonnull(strstr(buf, "step 1/3  t=999  0.50 s/step  ETA 1.00 s\n"));
            ck_assert_ptr_nonnull(strstr(buf, "step 3/3  t=333  0.50 s/step  ETA 0.00 s\n"));
            ck_assert_ptr_null(strchr(buf, '\r'));
        } else { // a terminal: the bar is redrawn in place
            ck_assert_ptr_nonnull(strstr(buf, "\rdenoise [##########....................] 1/3  0.50 s/step  ETA 1.00 s"));
            ck_assert_ptr_nonnull(strstr(buf, "3/3  0.50 s/step  ETA 0.00 s"));
        }
        const char *sum = strstr(buf, "time: denoise 1.50 s, decode 0.25 s; total 1.75 s; peak RSS ");
        ck_assert_ptr_nonnull(sum);
        double gib = -1;
        ck_assert_int_eq(sscanf(sum + strlen("time: denoise 1.50 s, decode 0.25 s; total 1.75 s; peak RSS "),
                                "%lf GiB", &gib), 1);
        ck_assert(gib >= 0 && gib < 1024); // this test process's own peak (a few MB: 0.00)
        free(buf);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    px_progress *p = px_progress_new(f, 1, 0); // --quiet
    px_progress_event ev = {0};
    ev.kind = PX_EVENT_STEP;
    ev.num_steps = 1;
    px_progress_callback(p, &ev);
    double secs[PX_STAGE_COUNT] = {1};
    px_progress_summary(p, secs);
    px_progress_free(p);
    fclose(f);
    ck_assert_uint_eq(len, 0);
    free(buf);
}
END_TEST

/* OpenBLAS's kernel choice (ops/blas.c): with OPENBLAS_CORETYPE unset, a
 * pixart whose OpenBLAS picked kernels older than the CPU says once on
 * stderr that it restarts with the right core, and otherwise nothing; a
 * user-set OPENBLAS_CORETYPE is left alone (no line). */
static const char *wanted_core; /* px_blas_wanted_core() of this process, before main's setenv */
static int user_core;            /* OPENBLAS_CORETYPE was set for make check: the above says nothing
                                  * about an unset one, so only the form of the note is checked */

START_TEST(blas_core_restart)
{
    shell_prefix = "env -u OPENBLAS_CORETYPE ";
    int st = run("--version");
    shell_prefix = "";
    ck_assert_int_eq(st, 0);
    char *o = px_test_read_text(out_txt, NULL), *e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(!strncmp(o, "pixart ", 7), "stdout: %s", o);
    if (wanted_core || (user_core && *e)) {
        char want[128];
        snprintf(want, sizeof want, "restarting with OPENBLAS_CORETYPE=%s", wanted_core ? wanted_core : "");
        size_t lines = 0;
        for (char *p = e; *p; p++) lines += *p == '\n';
        ck_assert_msg(lines == 1 && strstr(e, want), "expected one line with '%s', got:\n%s", want, e);
    } else {
        ck_assert_msg(!strcmp(e, ""), "OpenBLAS runs suitable kernels, yet stderr has:\n%s", e);
    }
    free(o);
    free(e);
    shell_prefix = "env OPENBLAS_CORETYPE=Prescott ";
    ck_assert_int_eq(run("--version"), 0);
    shell_prefix = "";
    e = px_test_read_text(err_txt, NULL);
    ck_assert_msg(!strcmp(e, ""), "a user-set OPENBLAS_CORETYPE must win silently, got:\n%s", e);
    free(e);
}
END_TEST

/* --vae-tiling reaches the pipeline: at 32 x 32 (latents larger than the tiny
 * VAE's 8-latent tile) the image changes and the latents do not
 * (test_pipeline_options checks the tiled image itself). */
START_TEST(generate_vae_tiling)
{
    char emb[300], a[300], b[300], la[300], lb[300];
    snprintf(emb, sizeof emb, "%s/emb.safetensors", tmp);
    write_embeds("small_dpm2_cfg", emb, 1);
    const char *outs[4] = {a, b, la, lb};
    const char *names[4] = {"plain.npy", "tiled.npy", "plain_lat.npy", "tiled_lat.npy"};
    for (int k = 0; k < 4; k++) {
        snprintf((char *)outs[k], 300, "%s/%s", tmp, names[k]);
        int st = run("generate --model '%s' --prompt-embeds '%s' --steps 2 --seed 0 --no-resolution-binning "
                     "--height 32 --width 32 --output-type %s %s -o '%s' --quiet",
                     px_test_data("pipe_small"), emb, k < 2 ? "npy" : "latent", k % 2 ? "--vae-tiling" : "",
                     outs[k]);
        char *e = px_test_read_text(err_txt, NULL);
        ck_assert_msg(st == 0, "generate %s failed: %s", names[k], e);
        free(e);
    }
    size_t na, nb, nla, nlb;
    char *da = px_test_read_text(a, &na), *db = px_test_read_text(b, &nb);
    char *dla = px_test_read_text(la, &nla), *dlb = px_test_read_text(lb, &nlb);
    ck_assert(na == nb && nla == nlb);
    ck_assert_msg(memcmp(da, db, na) != 0, "--vae-tiling changed nothing at 32 x 32");
    ck_assert_msg(memcmp(dla, dlb, nla) == 0, "--vae-tiling changed the latents");
    free(da);
    free(db);
    free(dla);
    free(dlb);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("generate");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, generate_from_embeds);
    tcase_add_test(tc, generate_lcm_and_sasolver_defaults);
    tcase_add_test(tc, blas_core_restart);
    tcase_add_test(tc, generate_batch_ddim_seed_list);
    tcase_add_test(tc, generate_latents_dump_and_latent_output);
    tcase_add_test(tc, generate_variant_fp16);
    tcase_add_test(tc, generate_vae_tiling);
    tcase_add_test(tc, generate_from_text);
    tcase_add_test(tc, encode_then_generate);
    tcase_add_test(tc, generate_errors);
    tcase_add_test(tc, encode_errors);
    tcase_add_test(tc, generate_output_all_or_nothing);
    tcase_add_test(tc, output_targets);
    tcase_add_test(tc, signal_removes_temporaries);
    tcase_add_test(tc, progress_lines);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    /* The other runs check pixart's own output: start them with the core
     * pixart would restart with, so its note on that is not in the way. */
    const char *user = getenv("OPENBLAS_CORETYPE");
    user_core = user && *user;
    wanted_core = user_core ? NULL : px_blas_wanted_core();
    if (wanted_core) setenv("OPENBLAS_CORETYPE", wanted_core, 1);
    return px_test_run(suite());
}
