/* `pixart generate`: a diffusers PixArt-alpha checkpoint folder and a prompt
 * in, PNG images (or the float image / latents as .npy) out — the same image
 * diffusers' PixArtAlphaPipeline gives for the same seed and arguments. */
#include "config.h"
#include "pixart/pixart.h" // the only library header: the CLI is a client of the public API
#include "src/cli/cli.h"
#include "src/cli/progress.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static void generate_usage(FILE *f)
{
    fprintf(f,
            "usage: pixart generate --model DIR --prompt TEXT [--prompt TEXT ...] -o OUT [options]\n"
            "\n"
            "Runs diffusers' PixArtAlphaPipeline or PixArtSigmaPipeline (as the checkpoint's\n"
            "model_index.json says) on a checkpoint folder (scheduler/, text_encoder/, tokenizer/,\n"
            "transformer/, vae/) on the CPU in float32. Defaults are diffusers' defaults, except\n"
            "with an LCM scheduler (PixArt-LCM): 4 steps without guidance, as its model card runs it.\n"
            "\n"
            "what to draw:\n"
            "  --model DIR               diffusers checkpoint folder (e.g. PixArt-XL-2-512x512)\n"
            "  --prompt TEXT             a prompt; repeat for a batch of prompts\n"
            "  --negative-prompt TEXT    once (for every prompt) or once per prompt (default \"\")\n"
            "  --prompt-embeds FILE      T5 embeddings written by 'pixart encode' instead of --prompt\n"
            "  --max-sequence-length N   tokens per prompt (120; PixArt-Sigma: 300)\n"
            "sampling:\n"
            "  --steps N                 denoising steps (20; LCM: 4)\n"
            "  --timesteps T1,T2,...     custom descending timesteps instead of --steps\n"
            "  --guidance-scale G        classifier-free guidance (4.5, LCM: 0; <= 1 turns it off)\n"
            "  --height H, --width W     image size, multiples of 8 (transformer sample_size x 8)\n"
            "  --no-resolution-binning   generate at H x W instead of the nearest aspect-ratio bucket\n"
            "  --num-images-per-prompt K images per prompt (1)\n"
            "  --seed S | S1,S2,...      torch.manual_seed: one generator for the batch, or one per\n"
            "                            image (unsigned 64-bit; random and printed when omitted)\n"
            "  --latents FILE            initial noise: safetensors with tensor 'latents' (N, 4, h, w)\n"
            "  --scheduler dpm|ddim|lcm|sa-solver\n"
            "                            DPMSolverMultistepScheduler / DDIMScheduler / LCMScheduler /\n"
            "                            SASolverScheduler from the checkpoint's scheduler config\n"
            "                            (default: the checkpoint's)\n"
            "  --scheduler-config FILE   a diffusers scheduler_config.json replacing the scheduler\n"
            "  --eta E                   DDIM eta (0)\n"
            "output:\n"
            "  -o, --output OUT          out.png (out-0.png, out-1.png, ... for several images)\n"
            "  --output-type png|npy|latent\n"
            "                            png (default); npy: one float32 array (N, H, W, 3) in [0, 1];\n"
            "                            latent: the final latents (N, 4, h, w) as .npy\n"
            "  --dump FILE.safetensors   save the run's intermediates under the reference key names:\n"
            "                            embeddings, T5 block outputs, every transformer block's\n"
            "                            output at the first step, the latents after every step,\n"
            "                            every VAE up block's output, the decoded image\n"
            "  --dump-all                with --dump: every module's output and input (large)\n"
            "other:\n"
            "  --variant fp16|bf16       load *.VARIANT.safetensors weights\n"
            "  --vae-tiling              decode in overlapping tiles (diffusers' vae.enable_tiling():\n"
            "                            less memory at large sizes, a slightly different image)\n"
            "  --no-vae-tiling           never tile (default: tile only when the untiled decode\n"
            "                            would need more than --max-memory, and say so)\n"
            "  --max-memory SIZE         memory budget of the VAE decode stage, e.g. 3G, 2500M\n"
            "                            (default PIXART_MAX_MEMORY, else half the RAM); a size whose\n"
            "                            decode cannot fit fails before the denoising loop\n"
            "  --threads N               operator threads\n"
            "  -q, --quiet               no progress output\n"
            "  -h, --help                show this help\n");
}

// ---------------------------------------------------------------------------
// Option values

#define MAX_LIST 4096

typedef struct {
    const char *model, *out, *variant, *dump, *latents, *prompt_embeds;
    const char *scheduler, *scheduler_config;
    const char *prompts[MAX_LIST];
    int nprompts;
    const char *negs[MAX_LIST];
    int nnegs;
    long long steps, height, width, nipp, threads, max_seq;
    int steps_set, guidance_set;
    double guidance, eta;
    uint64_t seeds[MAX_LIST];
    int nseeds;
    int64_t timesteps[1000];
    int ntimesteps;
    const char *timesteps_arg;
    int binning, quiet, dump_all, vae_tiling; /* vae_tiling: 1, 0, -1 auto */
    unsigned long long max_memory;            /* bytes, 0: the pipeline's default */
    const char *output_type; /* png, npy, latent */
} gen_opts;

static int err_usage(const char *fmt, const char *a, const char *b)
{
    fprintf(stderr, "pixart generate: ");
    fprintf(stderr, fmt, a, b);
    fputc('\n', stderr);
    return 2;
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "pixart generate: %s: '%s' is not an integer in [%lld, %lld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
    if (!*s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

static int parse_seeds(const char *s, gen_opts *o)
{
    char buf[64];
    o->nseeds = 0;
    const char *p = s;
    for (;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == 0 || n >= sizeof buf || o->nseeds >= MAX_LIST) goto bad;
        memcpy(buf, p, n);
        buf[n] = 0;
        if (parse_u64(buf, &o->seeds[o->nseeds])) goto bad;
        o->nseeds++;
        if (!c) break;
        p = c + 1;
    }
    return 0;
bad:
    fprintf(stderr, "pixart generate: --seed: '%s' is not an unsigned 64-bit integer or a comma-separated list of them\n", s);
    return -1;
}

static int parse_timesteps(const char *s, gen_opts *o)
{
    o->ntimesteps = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || v < 0 || v > 1000000 ||
            o->ntimesteps >= (int)(sizeof o->timesteps / sizeof o->timesteps[0]))
            goto bad;
        o->timesteps[o->ntimesteps++] = v;
        if (!*end) break;
        p = end + 1;
    }
    for (int i = 1; i < o->ntimesteps; i++)
        if (o->timesteps[i] >= o->timesteps[i - 1]) {
            fprintf(stderr, "pixart generate: --timesteps must be in descending order\n");
            return -1;
        }
    return 0;
bad:
    fprintf(stderr, "pixart generate: --timesteps: '%s' is not a comma-separated list of integers\n", s);
    return -1;
}

/* Parses argv into o. Returns 0, 1 for --help (printed), or 2 (message printed). */
static int parse_args(int argc, char **argv, gen_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 20;
    o->guidance = 4.5;
    o->nipp = 1;
    o->binning = 1;
    o->max_seq = 0; /* the pipeline's */
    o->output_type = "png";
    o->vae_tiling = -1; /* PX_VAE_TILING_AUTO */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            generate_usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--no-resolution-binning")) {
            o->binning = 0;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(a, "--dump-all")) {
            o->dump_all = 1;
            continue;
        }
        if (!strcmp(a, "--vae-tiling") || !strcmp(a, "--no-vae-tiling")) {
            o->vae_tiling = a[2] == 'v';
            continue;
        }
        // options with a value: "--opt VALUE" or "--opt=VALUE"
        char name[64];
        const char *val = NULL, *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) return err_usage("unknown option '%s'%s", a, "");
        memcpy(name, a, nl);
        name[nl] = 0;
        static const char *with_value[] = {"--model", "--prompt", "--negative-prompt", "--steps", "--guidance-scale",
                                           "--height", "--width", "--seed", "--num-images-per-prompt",
                                           "--scheduler", "--scheduler-config", "--eta", "--timesteps", "--latents",
                                           "--prompt-embeds", "--output-type", "-o", "--output", "--threads",
                                           "--dump", "--variant", "--max-sequence-length", "--max-memory", NULL};
        int known = 0;
        for (int k = 0; with_value[k]; k++) known |= !strcmp(name, with_value[k]);
        if (!known) return err_usage("unknown option '%s'%s (see pixart generate --help)", a, "");
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return err_usage("%s needs a value%s", name, "");

        if (!strcmp(name, "--model")) o->model = val;
        else if (!strcmp(name, "--prompt")) {
            if (o->nprompts >= MAX_LIST) return err_usage("too many prompts%s%s", "", "");
            o->prompts[o->nprompts++] = val;
        } else if (!strcmp(name, "--negative-prompt")) {
            if (o->nnegs >= MAX_LIST) return err_usage("too many negative prompts%s%s", "", "");
            o->negs[o->nnegs++] = val;
        } else if (!strcmp(name, "--steps")) {
            if (parse_int("--steps", val, 1, 1000, &o->steps)) return 2;
            o->steps_set = 1;
        } else if (!strcmp(name, "--guidance-scale")) {
            if (px_cli_parse_double("generate", "--guidance-scale", val, -1e6, 1e6, &o->guidance)) return 2;
            o->guidance_set = 1;
        } else if (!strcmp(name, "--height")) {
            if (parse_int("--height", val, 8, 65536, &o->height)) return 2;
        } else if (!strcmp(name, "--width")) {
            if (parse_int("--width", val, 8, 65536, &o->width)) return 2;
        } else if (!strcmp(name, "--seed")) {
            if (parse_seeds(val, o)) return 2;
        } else if (!strcmp(name, "--num-images-per-prompt")) {
            if (parse_int("--num-images-per-prompt", val, 1, 1024, &o->nipp)) return 2;
        } else if (!strcmp(name, "--scheduler")) {
            if (strcmp(val, "dpm") && strcmp(val, "ddim") && strcmp(val, "lcm") && strcmp(val, "sa-solver"))
                return err_usage("--scheduler: '%s' is not dpm, ddim, lcm or sa-solver%s", val, "");
            o->scheduler = val;
        } else if (!strcmp(name, "--scheduler-config")) o->scheduler_config = val;
        else if (!strcmp(name, "--eta")) {
            if (px_cli_parse_double("generate", "--eta", val, 0, 1e6, &o->eta)) return 2;
        } else if (!strcmp(name, "--timesteps")) {
            if (parse_timesteps(val, o)) return 2;
            o->timesteps_arg = val;
        } else if (!strcmp(name, "--latents")) o->latents = val;
        else if (!strcmp(name, "--prompt-embeds")) o->prompt_embeds = val;
        else if (!strcmp(name, "--output-type")) {
            if (strcmp(val, "png") && strcmp(val, "npy") && strcmp(val, "latent"))
                return err_usage("--output-type: '%s' is not png, npy or latent%s", val, "");
            o->output_type = val;
        } else if (!strcmp(name, "-o") || !strcmp(name, "--output")) o->out = val;
        else if (!strcmp(name, "--threads")) {
            if (parse_int("--threads", val, 1, 4096, &o->threads)) return 2;
        } else if (!strcmp(name, "--dump")) o->dump = val;
        else if (!strcmp(name, "--variant")) {
            if (strcmp(val, "fp16") && strcmp(val, "bf16"))
                return err_usage("--variant: '%s' is not fp16 or bf16%s", val, "");
            o->variant = val;
        } else if (!strcmp(name, "--max-sequence-length")) {
            if (parse_int("--max-sequence-length", val, 2, 4096, &o->max_seq)) return 2;
        } else if (!strcmp(name, "--max-memory")) {
            if (px_cli_parse_size("generate", "--max-memory", val, &o->max_memory)) return 2;
        }
    }
    if (!o->model) return err_usage("--model DIR is required%s%s", "", "");
    if (!o->out) return err_usage("-o OUT is required%s%s", "", "");
    if (!o->nprompts && !o->prompt_embeds) return err_usage("give --prompt TEXT (or --prompt-embeds FILE)%s%s", "", "");
    if (o->nprompts && o->prompt_embeds) return err_usage("give either --prompt or --prompt-embeds, not both%s%s", "", "");
    if (o->scheduler && o->scheduler_config)
        return err_usage("give either --scheduler or --scheduler-config, not both%s%s", "", "");
    if (o->dump_all && !o->dump) return err_usage("--dump-all needs --dump FILE%s%s", "", "");
    if (o->ntimesteps && o->steps_set) return err_usage("give either --steps or --timesteps, not both%s%s", "", "");
    if (o->nnegs > 1 && o->nprompts && o->nnegs != o->nprompts)
        return err_usage("give --negative-prompt once, or once per --prompt%s%s", "", "");
    return 0;
}

// ---------------------------------------------------------------------------
// Output

/* out.png -> out-3.png (or OUT-3 when OUT has no extension). */
static int numbered_path(char *dst, size_t size, const char *out, int i)
{
    const char *slash = strrchr(out, '/');
    const char *dot = strrchr(out, '.');
    if (dot && (!slash || dot > slash + 1) && dot != out) {
        int n = snprintf(dst, size, "%.*s-%d%s", (int)(dot - out), out, i, dot);
        return n < 0 || (size_t)n >= size ? -1 : 0;
    }
    int n = snprintf(dst, size, "%s-%d", out, i);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

/* Every file the run will write must be writable (px_output_check: not
 * empty, not a directory, its directory exists and is writable, the name fits
 * NAME_MAX): checked before the model runs, so that a bad path fails in a
 * second. num_images: 1 before the batch size is known (checks OUT itself). */
static int check_outputs(const gen_opts *o, int num_images)
{
    const int numbered = num_images > 1 && !strcmp(o->output_type, "png");
    for (int i = 0; i < (numbered ? num_images : 1); i++) {
        char path[PATH_MAX];
        if (!numbered) snprintf(path, sizeof path, "%s", o->out);
        else if (numbered_path(path, sizeof path, o->out, i))
            return px_set_error("%s: output path too long", o->out);
        if (px_output_check(path)) return -1;
    }
    if (o->dump && !strcmp(o->dump, o->out))
        return px_set_error("--dump %s: the same file as -o", o->dump);
    return o->dump ? px_output_check(o->dump) : 0;
}

static void fmt_u64(char *b, size_t n, uint64_t v) { snprintf(b, n, "%llu", (unsigned long long)v); }

static int write_pngs(const gen_opts *o, const px_generate_result *res, const char *const *prompts, int nprompts,
                      char written[][PATH_MAX], int *nwritten)
{
    const int N = res->num_images;
    const size_t npx = (size_t)res->height * res->width * 3;
    uint8_t *rgb = malloc(npx);
    if (!rgb) return px_set_error("out of memory (8-bit image)");
    char seed[32], steps[32], guidance[32], size[64], idx[32], eta[32];
    snprintf(guidance, sizeof guidance, "%g", o->guidance);
    snprintf(size, sizeof size, "%dx%d", res->width, res->height);
    snprintf(eta, sizeof eta, "%g", o->eta);
    snprintf(steps, sizeof steps, "%d", res->num_steps);
    for (int i = 0; i < N; i++) {
        char path[PATH_MAX];
        if (N == 1) snprintf(path, sizeof path, "%s", o->out);
        else if (numbered_path(path, sizeof path, o->out, i)) {
            free(rgb);
            return px_set_error("%s: output path too long", o->out);
        }
        px_image_to_u8(rgb, res->images + (size_t)i * npx, npx);
        int p = i / (int)o->nipp;
        const char *neg = o->nnegs == 0 ? "" : o->nnegs == 1 ? o->negs[0] : o->negs[p];
        fmt_u64(seed, sizeof seed, o->nseeds == 1 ? o->seeds[0] : o->nseeds ? o->seeds[i] : 0);
        snprintf(idx, sizeof idx, "%d", i);
        px_png_text text[16];
        int nt = 0;
        text[nt++] = (px_png_text){"prompt", prompts && p < nprompts ? prompts[p] : "(from --prompt-embeds)"};
        text[nt++] = (px_png_text){"negative_prompt", o->prompt_embeds && !o->nnegs ? "(from --prompt-embeds)" : neg};
        if (o->latents) text[nt++] = (px_png_text){"latents", o->latents};
        if (o->nseeds) text[nt++] = (px_png_text){"seed", seed};
        if (o->ntimesteps) text[nt++] = (px_png_text){"timesteps", o->timesteps_arg};
        if (N > 1) text[nt++] = (px_png_text){"batch_index", idx};
        text[nt++] = (px_png_text){"steps", steps};
        text[nt++] = (px_png_text){"guidance_scale", guidance};
        text[nt++] = (px_png_text){"scheduler", res->scheduler};
        if (o->eta > 0) text[nt++] = (px_png_text){"eta", eta};
        text[nt++] = (px_png_text){"size", size};
        text[nt++] = (px_png_text){"model", o->model};
        text[nt++] = (px_png_text){"Software", "pixart.c " PACKAGE_VERSION " (diffusers PixArtAlphaPipeline v0.30.3)"};
        if (px_png_write(path, rgb, res->width, res->height, text, nt)) {
            free(rgb);
            return -1;
        }
        snprintf(written[(*nwritten)++], PATH_MAX, "%s", path);
    }
    free(rgb);
    return 0;
}

// ---------------------------------------------------------------------------
// Inputs from files

/* Tensor `key` of the safetensors file at path: ndim dimensions, finite values. */
static float *load_f32(const char *path, const char *key, int ndim, int64_t *shape)
{
    int nd;
    int64_t sh[8];
    float *v = px_safetensors_read_f32(path, key, 8, &nd, sh);
    if (!v) return NULL;
    int64_t n = 1;
    for (int i = 0; i < nd; i++) n *= sh[i];
    if (nd != ndim) {
        px_set_error("%s: tensor '%s' has %d dimensions, expected %d", path, key, nd, ndim);
        free(v);
        return NULL;
    }
    for (int i = 0; i < ndim; i++) shape[i] = sh[i];
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) {
            free(v);
            px_set_error("%s: tensor '%s' has a non-finite value at %lld", path, key, (long long)i);
            return NULL;
        }
    return v;
}

typedef struct {
    float *pe, *pm, *ne, *nm;
    int B, L, D;
} embeds_file;

static int load_embeds(const char *path, embeds_file *e)
{
    memset(e, 0, sizeof *e);
    int64_t s3[3], s2[2];
    e->pe = load_f32(path, "prompt_embeds", 3, s3);
    if (!e->pe) return -1;
    e->pm = load_f32(path, "prompt_attention_mask", 2, s2);
    if (!e->pm) return -1;
    if (s3[0] < 1 || s3[0] > MAX_LIST || s3[1] < 1 || s3[2] < 1 || s2[0] != s3[0] || s2[1] != s3[1]) {
        return px_set_error("%s: prompt_embeds (B, L, D) and prompt_attention_mask (B, L) shapes do not match", path);
    }
    e->B = (int)s3[0];
    e->L = (int)s3[1];
    e->D = (int)s3[2];
    for (int64_t i = 0; i < s2[0] * s2[1]; i++)
        if (e->pm[i] != 0.f && e->pm[i] != 1.f) {
            return px_set_error("%s: prompt_attention_mask must hold 0 and 1 only", path);
        }
    int has_neg = px_safetensors_has_tensor(path, "negative_prompt_embeds");
    if (has_neg < 0) return -1;
    if (has_neg) {
        int64_t n3[3], n2[2];
        e->ne = load_f32(path, "negative_prompt_embeds", 3, n3);
        if (!e->ne) return -1;
        e->nm = load_f32(path, "negative_prompt_attention_mask", 2, n2);
        if (!e->nm) return -1;
        if (memcmp(n3, s3, sizeof s3) || memcmp(n2, s2, sizeof s2)) {
            return px_set_error("%s: negative_prompt_embeds/mask must have the shapes of prompt_embeds/mask", path);
        }
        for (int64_t i = 0; i < n2[0] * n2[1]; i++)
            if (e->nm[i] != 0.f && e->nm[i] != 1.f) {
                return px_set_error("%s: negative_prompt_attention_mask must hold 0 and 1 only", path);
            }
    }
    return 0;
}

static void embeds_free(embeds_file *e)
{
    free(e->pe);
    free(e->pm);
    free(e->ne);
    free(e->nm);
}

/* What --dump keeps (without --dump-all): the pipeline's own tensors and the
 * outputs of the main modules, not every submodule (at 1024 px the full set
 * would take tens of gigabytes). */
static int is_index_suffix(const char *s) // "#<digits>" and nothing else
{
    if (*s++ != '#' || !*s) return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

static int match_numbered(const char *key, const char *prefix, const char *suffix) // PREFIX<digits>SUFFIX#k
{
    size_t n = strlen(prefix), m = strlen(suffix);
    if (strncmp(key, prefix, n)) return 0;
    const char *p = key + n;
    if (*p < '0' || *p > '9') return 0;
    while (*p >= '0' && *p <= '9') p++;
    return !strncmp(p, suffix, m) && is_index_suffix(p + m);
}

static int match_plain(const char *key, const char *name) // NAME#k
{
    size_t n = strlen(name);
    return !strncmp(key, name, n) && is_index_suffix(key + n);
}

static int dump_keep(const char *key, void *user)
{
    (void)user;
    if (!strncmp(key, "pipeline/", 9)) return 1;
    static const char *plain[] = {"text_encoder/encoder.embed_tokens", "text_encoder/encoder.final_layer_norm",
                                  "transformer/pos_embed", "transformer/adaln_single.linear",
                                  "transformer/caption_projection.linear_2", "transformer/norm_out",
                                  "transformer/proj_out", "transformer/<root>", "vae/post_quant_conv",
                                  "vae/decoder.conv_in", "vae/decoder.mid_block", "vae/decoder.conv_out",
                                  NULL};
    for (int i = 0; plain[i]; i++)
        if (match_plain(key, plain[i])) return 1;
    // a T5 block's output is its layer.1 (feed-forward) output
    return match_numbered(key, "text_encoder/encoder.block.", ".layer.1") ||
           match_numbered(key, "transformer/transformer_blocks.", "") ||
           match_numbered(key, "vae/decoder.up_blocks.", "");
}

static uint64_t random_seed(void)
{
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
        close(fd);
    }
    if (!s) s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return s & 0xffffffffu; // only the low 32 bits reach torch's mt19937 anyway
}

/* --prompt, or --prompt-embeds (checked against the model) and --negative-prompt. */
static int set_prompts(const gen_opts *o, const px_pipeline *p, px_generate_params *prm, embeds_file *emb)
{
    if (o->nprompts) {
        prm->prompt = o->prompts;
        prm->num_prompts = o->nprompts;
    } else {
        if (load_embeds(o->prompt_embeds, emb)) return -1;
        if (emb->D != px_pipeline_text_dim(p))
            return px_set_error("%s: embeddings have %d channels; the model's text encoder has %d", o->prompt_embeds,
                           emb->D, px_pipeline_text_dim(p));
        if (o->nnegs > 1 && o->nnegs != emb->B)
            return px_set_error("%d negative prompts for %d prompt embeddings", o->nnegs, emb->B);
        if (emb->ne && o->nnegs)
            return px_set_error("%s holds negative_prompt_embeds: --negative-prompt cannot be used with it",
                           o->prompt_embeds);
        prm->prompt_embeds = emb->pe;
        prm->prompt_attention_mask = emb->pm;
        prm->negative_prompt_embeds = emb->ne;
        prm->negative_prompt_attention_mask = emb->nm;
        prm->embeds_len = emb->L;
        prm->num_prompts = emb->B;
    }
    prm->negative_prompt = o->nnegs ? o->negs : NULL;
    prm->num_negative_prompts = o->nnegs;
    return 0;
}

/* PixArt-LCM runs 4 steps without guidance (its model card, and PixArt-alpha's
 * scripts/inference_lcm.py; guidance <= 1 also means the negative prompt is not
 * encoded): those are the defaults when the scheduler is LCMScheduler, from
 * --scheduler lcm or the checkpoint (not looked up in a --scheduler-config
 * file). Given --steps/--timesteps/--guidance-scale always win. */
static void lcm_defaults(gen_opts *o, const px_pipeline *p)
{
    const int lcm = o->scheduler ? !strcmp(o->scheduler, "lcm")
                                 : !o->scheduler_config && !strcmp(px_pipeline_scheduler_class(p), "LCMScheduler");
    if (!lcm) return;
    if (!o->steps_set) o->steps = 4;
    if (!o->guidance_set) o->guidance = 0.0;
}

static void set_sampling(const gen_opts *o, px_generate_params *prm)
{
    prm->num_inference_steps = (int)o->steps;
    if (o->ntimesteps) {
        prm->timesteps = o->timesteps;
        prm->num_timesteps = o->ntimesteps;
    }
    prm->guidance_scale = o->guidance;
    prm->num_images_per_prompt = (int)o->nipp;
    prm->height = (int)o->height;
    prm->width = (int)o->width;
    prm->eta = o->eta;
    prm->use_resolution_binning = o->binning;
    prm->max_sequence_length = (int)o->max_seq;
    prm->output_type = !strcmp(o->output_type, "latent") ? PX_OUTPUT_LATENT : PX_OUTPUT_IMAGE;
    prm->scheduler = o->scheduler;
    prm->scheduler_config = o->scheduler_config;
}

/* The initial noise: --latents (shape checked against this call) or the
 * seeds (a random one, printed, when none is given). */
static int set_noise(gen_opts *o, const px_pipeline *p, px_generate_params *prm, float **latents)
{
    int64_t lshape[4];
    if (px_pipeline_latent_shape(p, prm, lshape)) return -1;
    if (o->latents) {
        int64_t s[4];
        *latents = load_f32(o->latents, "latents", 4, s);
        if (!*latents) return -1;
        if (memcmp(s, lshape, sizeof s))
            return px_set_error("%s: 'latents' has shape (%lld, %lld, %lld, %lld); this call needs (%lld, %lld, %lld, %lld)",
                           o->latents, (long long)s[0], (long long)s[1], (long long)s[2], (long long)s[3],
                           (long long)lshape[0], (long long)lshape[1], (long long)lshape[2], (long long)lshape[3]);
        prm->latents = *latents;
    }
    if (o->nseeds > 1 && o->nseeds != lshape[0])
        return px_set_error("--seed: %d seeds for %lld images (give one seed, or one per image)", o->nseeds,
                       (long long)lshape[0]);
    if (!o->nseeds && !o->latents) {
        o->seeds[0] = random_seed();
        o->nseeds = 1;
        if (!o->quiet) fprintf(stderr, "seed: %llu\n", (unsigned long long)o->seeds[0]);
    }
    prm->seeds = o->nseeds ? o->seeds : NULL;
    prm->num_seeds = o->nseeds;
    return 0;
}

/* The PNGs, the float image or the latents, staged (px_output_stage_begin):
 * written to temporaries that px_output_stage_commit renames at the end.
 * written/nwritten: the names, for the "wrote" lines. */
static int write_outputs(const gen_opts *o, const px_generate_result *res, char written[][PATH_MAX], int *nwritten)
{
    if (!strcmp(o->output_type, "png"))
        return write_pngs(o, res, o->nprompts ? o->prompts : NULL, o->nprompts, written, nwritten);
    int64_t s[4] = {res->num_images, res->height, res->width, 3};
    if (!strcmp(o->output_type, "latent")) {
        s[1] = res->latent_channels;
        s[2] = res->latent_height;
        s[3] = res->latent_width;
    }
    if (px_npy_save_f32(o->out, 4, s, !strcmp(o->output_type, "npy") ? res->images : res->latents)) return -1;
    snprintf(written[(*nwritten)++], PATH_MAX, "%s", o->out);
    return 0;
}

// ---------------------------------------------------------------------------

int cmd_generate(int argc, char **argv)
{
    gen_opts *o = calloc(1, sizeof *o);
    if (!o) {
        fprintf(stderr, "pixart generate: out of memory\n");
        return 1;
    }
    int rc = parse_args(argc, argv, o);
    if (rc) {
        free(o);
        return rc == 1 ? 0 : rc;
    }
    px_pipeline *p = NULL;
    struct px_dump *dump = NULL;
    px_progress *prog = NULL;
    float *latents = NULL;
    embeds_file emb = {0};
    px_generate_result res = {0};
    char (*written)[PATH_MAX] = NULL;
    int nwritten = 0, staged = 0;
    rc = 1;

    if (o->threads) px_set_num_threads((int)o->threads);
    if (check_outputs(o, 1)) goto fail; // before any model is read
    p = px_pipeline_open(o->model, o->variant);
    if (!p) goto fail;

    lcm_defaults(o, p);
    px_generate_params prm;
    px_generate_params_init(&prm);
    px_pipeline_set_vae_tiling(p, o->vae_tiling);
    if (o->max_memory) px_pipeline_set_max_memory(p, o->max_memory);
    if (set_prompts(o, p, &prm, &emb)) goto fail;
    set_sampling(o, &prm);
    if (set_noise(o, p, &prm, &latents)) goto fail;
    int64_t lshape[4];
    if (px_pipeline_latent_shape(p, &prm, lshape) || check_outputs(o, (int)lshape[0])) goto fail; // out-N.png

    if (o->dump) {
        dump = px_dump_new();
        if (!dump) goto fail;
        if (!o->dump_all) px_dump_set_filter(dump, dump_keep, NULL);
        prm.dump = dump;
    }
    prog = px_progress_new(stderr, o->quiet, -1);
    if (!prog) {
        px_set_error("out of memory");
        goto fail;
    }
    prm.progress = px_progress_callback;
    prm.progress_user = prog;

    if (px_pipeline_generate(p, &prm, &res)) {
        if (o->ntimesteps && strstr(px_last_error(), "timestep")) { // the scheduler refused them: name the option
            char why[1024];
            snprintf(why, sizeof why, "%s", px_last_error());
            px_set_error("--timesteps %s: %s", o->timesteps_arg, why);
        }
        goto fail;
    }

    written = calloc((size_t)res.num_images + 1, sizeof *written);
    if (!written) {
        px_set_error("out of memory");
        goto fail;
    }
    // all or nothing: no file of the user's is replaced unless every output
    // (and the dump) could be written; then they are renamed together
    px_output_stage_begin();
    staged = 1;
    if (write_outputs(o, &res, written, &nwritten)) goto fail;
    if (dump && px_dump_save(dump, o->dump)) goto fail;
    staged = 0;
    if (px_output_stage_commit()) goto fail;
    px_progress_summary(prog, res.stage_seconds);
    if (!o->quiet)
        for (int i = 0; i < nwritten; i++) fprintf(stderr, "wrote %s\n", written[i]);
    rc = 0;
    goto done;
fail:
    px_progress_free(prog); // ends a bar line before the message
    prog = NULL;
    if (staged) px_output_stage_discard(); // removes the temporaries, replaces nothing
    fprintf(stderr, "pixart generate: %s\n", px_last_error());
done:
    px_progress_free(prog);
    px_generate_result_free(&res);
    px_dump_free(dump);
    embeds_free(&emb);
    free(latents);
    free(written);
    px_pipeline_close(p);
    free(o);
    return rc;
}
