/* `pixart batch`: many images from a prompt file, the text encoder loaded once
 * for all of them, resumable after a crash or Ctrl-C, and spread over the
 * processes of an MPI run (mpirun / srun). Each image is the one `pixart
 * generate` makes with the same parameters and seed, bit for bit, PNG bytes
 * included. Design and formats: doc/batch.md. */
#include "config.h"
#include "pixart/pixart.h"
#include "src/cli/batch.h"
#include "src/cli/batch_mpi.h"
#include "src/cli/cli.h"
#include "src/cli/progress.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

static void batch_usage(FILE *f)
{
    fprintf(f,
            "usage: pixart batch --model DIR --prompts FILE -o OUTDIR [options]\n"
            "       mpirun -n N pixart batch ...   (or srun: the jobs are spread over the processes)\n"
            "\n"
            "Generates the images of every line of FILE into OUTDIR, each the same PNG that\n"
            "'pixart generate' writes for the same parameters and seed. The text encoder is loaded\n"
            "once: every prompt is encoded first, then the transformer and the VAE stay loaded\n"
            "while the jobs run one by one. Rerunning the same command resumes: complete jobs are\n"
            "skipped (see OUTDIR/manifest.jsonl), the others are redone. Ctrl-C finishes the current\n"
            "image and stops (a second Ctrl-C abandons it); nothing half-written is left behind.\n"
            "\n"
            "FILE: JSON Lines, one job per line, e.g.\n"
            "  {\"prompt\": \"a cat\", \"seed\": 7, \"name\": \"cat\"}\n"
            "  fields: prompt (required), negative_prompt, seed (one, or a list: one per image),\n"
            "  steps, guidance_scale, height, width, num_images_per_prompt, scheduler, name\n"
            "  (output stem: A-Z a-z 0-9 . _ + -); or plain text: one prompt per line. Blank lines\n"
            "  are skipped; a bad line is reported with its number and skipped.\n"
            "OUTDIR: NAME-K.png for image K of a job (NAME: its 'name', else its line number),\n"
            "  manifest.jsonl: one line per finished job (job, files, seed, seconds, status).\n"
            "\n"
            "options:\n"
            "  --model DIR               diffusers checkpoint folder\n"
            "  --prompts FILE            the jobs (JSON Lines or plain text)\n"
            "  -o, --output OUTDIR       output folder (created if missing)\n"
            "  --strict                  stop before any work when a line is bad\n"
            "defaults for every job (a job's own fields win; otherwise as in 'pixart generate'):\n"
            "  --negative-prompt TEXT    (\"\")\n"
            "  --steps N                 denoising steps (20; LCM: 4)\n"
            "  --timesteps T1,T2,...     custom descending timesteps (jobs may then not set steps)\n"
            "  --guidance-scale G        classifier-free guidance (4.5, LCM: 0; <= 1 turns it off)\n"
            "  --height H, --width W     image size (transformer sample_size x 8)\n"
            "  --no-resolution-binning   generate at H x W instead of the nearest aspect-ratio bucket\n"
            "  --num-images-per-prompt K images per job (1)\n"
            "  --seed S | S1,S2,...      one seed for each job, or one per image; without any seed\n"
            "                            a job draws a random one (recorded in its PNG and manifest)\n"
            "  --scheduler dpm|ddim|lcm|sa-solver   (default: the checkpoint's)\n"
            "  --scheduler-config FILE   a diffusers scheduler_config.json (jobs may then not set scheduler)\n"
            "  --eta E                   DDIM eta (0)\n"
            "  --max-sequence-length N   tokens per prompt (120; PixArt-Sigma: 300)\n"
            "  --variant fp16|bf16       load *.VARIANT.safetensors weights\n"
            "  --vae-tiling              decode in overlapping tiles\n"
            "  --no-vae-tiling           never tile (default: tile only when the untiled decode\n"
            "                            would need more than --max-memory, and say so)\n"
            "  --max-memory SIZE         memory budget of the VAE decode stage, e.g. 3G, 2500M\n"
            "                            (default PIXART_MAX_MEMORY, else half the RAM)\n"
            "other:\n"
            "  --threads N               operator threads (default: all cores; under MPI the cores of\n"
            "                            the node divided by the processes on that node)\n"
            "  -q, --quiet               only errors\n"
            "  -h, --help                show this help\n"
            "\n"
            "Progress (stderr): jobs done / total, images per hour, time left. Exit status: 0 all\n"
            "jobs complete; 1 a job failed or a line was skipped; 2 bad arguments (or --strict);\n"
            "130 interrupted (rerun the same command to resume). MPI: %s.\n",
            px_mpi_library());
}

// ---------------------------------------------------------------------------
// Options

#define MAX_SEEDS PX_BATCH_MAX_IMAGES

typedef struct {
    const char *model, *prompts, *outdir, *variant, *negative, *scheduler, *scheduler_config, *timesteps_arg;
    long long steps, height, width, nipp, threads, max_seq;
    int steps_set, guidance_set, nipp_set, strict, quiet, binning;
    int vae_tiling;                  /* 1, 0, or PX_VAE_TILING_AUTO (-1), as generate */
    unsigned long long max_memory;   /* bytes, 0: the pipeline's default */
    double guidance, eta;
    uint64_t seeds[MAX_SEEDS];
    int nseeds;
    int64_t timesteps[1000];
    int ntimesteps;
} batch_opts;

static int usage_error(const char *fmt, const char *a)
{
    fprintf(stderr, "pixart batch: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (see pixart batch --help)\n");
    return 2;
}

static int parse_seeds(const char *s, batch_opts *o)
{
    o->nseeds = 0;
    for (const char *p = s;;) {
        char *end;
        if (*p < '0' || *p > '9' || o->nseeds >= MAX_SEEDS) return usage_error("--seed: '%s' is not an unsigned 64-bit integer or a comma-separated list of them", s);
        errno = 0;
        unsigned long long v = strtoull(p, &end, 10);
        if (errno || (*end && *end != ',')) return usage_error("--seed: '%s' is not an unsigned 64-bit integer or a comma-separated list of them", s);
        o->seeds[o->nseeds++] = v;
        if (!*end) return 0;
        p = end + 1;
    }
}

static int parse_timesteps(const char *s, batch_opts *o)
{
    o->ntimesteps = 0;
    for (const char *p = s;;) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (errno || end == p || (*end && *end != ',') || v < 0 || v > 1000000 || o->ntimesteps >= 1000)
            return usage_error("--timesteps: '%s' is not a comma-separated list of integers", s);
        if (o->ntimesteps && v >= o->timesteps[o->ntimesteps - 1])
            return usage_error("--timesteps must be in descending order%s", "");
        o->timesteps[o->ntimesteps++] = v;
        if (!*end) return 0;
        p = end + 1;
    }
}

/* One "--name VALUE" option into o. 0 or 2 (message printed). */
static int set_option(batch_opts *o, const char *name, const char *val)
{
    if (!strcmp(name, "--model")) o->model = val;
    else if (!strcmp(name, "--prompts")) o->prompts = val;
    else if (!strcmp(name, "-o") || !strcmp(name, "--output")) o->outdir = val;
    else if (!strcmp(name, "--negative-prompt")) o->negative = val;
    else if (!strcmp(name, "--steps")) {
        if (px_cli_parse_int("--steps", val, 1, 1000, &o->steps)) return 2;
        o->steps_set = 1;
    } else if (!strcmp(name, "--timesteps")) {
        if (parse_timesteps(val, o)) return 2;
        o->timesteps_arg = val;
    } else if (!strcmp(name, "--guidance-scale")) {
        if (px_cli_parse_double("batch", "--guidance-scale", val, -1e6, 1e6, &o->guidance)) return 2;
        o->guidance_set = 1;
    } else if (!strcmp(name, "--height")) {
        if (px_cli_parse_int("--height", val, 8, 65536, &o->height)) return 2;
    } else if (!strcmp(name, "--width")) {
        if (px_cli_parse_int("--width", val, 8, 65536, &o->width)) return 2;
    } else if (!strcmp(name, "--num-images-per-prompt")) {
        if (px_cli_parse_int("--num-images-per-prompt", val, 1, PX_BATCH_MAX_IMAGES, &o->nipp)) return 2;
        o->nipp_set = 1;
    } else if (!strcmp(name, "--seed")) {
        if (parse_seeds(val, o)) return 2;
    } else if (!strcmp(name, "--scheduler")) {
        if (strcmp(val, "dpm") && strcmp(val, "ddim") && strcmp(val, "lcm") && strcmp(val, "sa-solver"))
            return usage_error("--scheduler: '%s' is not dpm, ddim, lcm or sa-solver", val);
        o->scheduler = val;
    } else if (!strcmp(name, "--scheduler-config")) o->scheduler_config = val;
    else if (!strcmp(name, "--eta")) {
        if (px_cli_parse_double("batch", "--eta", val, 0, 1e6, &o->eta)) return 2;
    } else if (!strcmp(name, "--max-sequence-length")) {
        if (px_cli_parse_int("--max-sequence-length", val, 2, 4096, &o->max_seq)) return 2;
    } else if (!strcmp(name, "--variant")) {
        if (strcmp(val, "fp16") && strcmp(val, "bf16")) return usage_error("--variant: '%s' is not fp16 or bf16", val);
        o->variant = val;
    } else if (!strcmp(name, "--max-memory")) {
        if (px_cli_parse_size("batch", "--max-memory", val, &o->max_memory)) return 2;
    } else if (!strcmp(name, "--threads")) {
        if (px_cli_parse_int("--threads", val, 1, 4096, &o->threads)) return 2;
    } else return usage_error("unknown option '%s'", name);
    return 0;
}

/* argv into o. 0, 1 for --help (printed), or 2 (message printed). */
static int parse_args(int argc, char **argv, batch_opts *o)
{
    memset(o, 0, sizeof *o);
    o->steps = 20;
    o->guidance = 4.5;
    o->nipp = 1;
    o->binning = 1;
    o->vae_tiling = PX_VAE_TILING_AUTO;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            batch_usage(stdout);
            return 1;
        }
        int *flag = !strcmp(a, "--strict")                                   ? &o->strict
                    : !strcmp(a, "--quiet") || !strcmp(a, "-q")              ? &o->quiet
                    : NULL;
        if (flag) {
            *flag = 1;
            continue;
        }
        if (!strcmp(a, "--vae-tiling") || !strcmp(a, "--no-vae-tiling")) {
            o->vae_tiling = a[2] == 'v';
            continue;
        }
        if (!strcmp(a, "--no-resolution-binning")) {
            o->binning = 0;
            continue;
        }
        // "--opt VALUE" or "--opt=VALUE"
        char name[64];
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL, *val;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name || a[0] != '-') return usage_error("unexpected argument '%s'", a);
        memcpy(name, a, nl);
        name[nl] = 0;
        if (eq) val = eq + 1;
        else if (i + 1 < argc) val = argv[++i];
        else return usage_error("%s needs a value", name);
        int rc = set_option(o, name, val);
        if (rc) return rc;
    }
    if (!o->model) return usage_error("--model DIR is required%s", "");
    if (!o->prompts) return usage_error("--prompts FILE is required%s", "");
    if (!o->outdir) return usage_error("-o OUTDIR is required%s", "");
    if (o->scheduler && o->scheduler_config) return usage_error("give either --scheduler or --scheduler-config, not both%s", "");
    if (o->ntimesteps && o->steps_set) return usage_error("give either --steps or --timesteps, not both%s", "");
    if (o->nseeds > 1 && o->nseeds != o->nipp)
        return usage_error("--seed: give one seed, or one per image (--num-images-per-prompt)%s", "");
    return 0;
}

// ---------------------------------------------------------------------------
// Jobs: the command's defaults applied, checked against the checkpoint

/* generate's lcm_defaults: PixArt-LCM runs 4 steps without guidance when the
 * scheduler is LCMScheduler (from "scheduler"/--scheduler or the checkpoint). */
static int job_is_lcm(const batch_opts *o, const px_pipeline *p, const char *sched)
{
    return sched ? !strcmp(sched, "lcm")
                 : !o->scheduler_config && !strcmp(px_pipeline_scheduler_class(p), "LCMScheduler");
}

static uint64_t hash_str(uint64_t h, const char *tag, const char *s)
{
    h = px_fnv1a64(h, tag, strlen(tag) + 1);
    return s ? px_fnv1a64(h, s, strlen(s) + 1) : px_fnv1a64(h, "\xff", 1); // NULL differs from ""
}

static uint64_t hash_num(uint64_t h, const char *tag, double v)
{
    char b[40];
    snprintf(b, sizeof b, "%.17g", v);
    return hash_str(h, tag, b);
}

/* The job key: every parameter that changes the images or their PNG text. */
static uint64_t job_key(const batch_opts *o, const px_batch_job *j, int L)
{
    uint64_t h = PX_FNV1A64_INIT;
    h = hash_str(h, "model", o->model);
    h = hash_str(h, "variant", o->variant);
    h = hash_str(h, "stem", j->stem);
    h = hash_str(h, "prompt", j->prompt);
    h = hash_str(h, "negative", j->r_negative);
    h = hash_num(h, "nseeds", j->r_nseeds);
    for (int i = 0; i < j->r_nseeds; i++) {
        char b[24];
        snprintf(b, sizeof b, "%llu", (unsigned long long)j->r_seeds[i]);
        h = hash_str(h, "seed", b);
    }
    h = hash_num(h, "steps", j->r_steps);
    h = hash_str(h, "timesteps", o->timesteps_arg);
    h = hash_num(h, "guidance", j->r_guidance);
    h = hash_num(h, "height", j->r_height);
    h = hash_num(h, "width", j->r_width);
    h = hash_num(h, "nipp", j->r_nipp);
    h = hash_str(h, "scheduler", j->r_scheduler);
    h = hash_str(h, "scheduler_config", o->scheduler_config);
    h = hash_num(h, "eta", o->eta);
    h = hash_num(h, "L", L);
    h = hash_num(h, "binning", o->binning);
    h = hash_num(h, "vae_tiling", o->vae_tiling);
    h = hash_num(h, "max_memory", (double)o->max_memory); // the automatic tiling depends on it
    return h;
}

static void sampling_params(const batch_opts *o, const px_batch_job *j, px_generate_params *prm)
{
    prm->num_inference_steps = j->r_steps;
    if (o->ntimesteps) {
        prm->timesteps = o->timesteps;
        prm->num_timesteps = o->ntimesteps;
    }
    prm->guidance_scale = j->r_guidance;
    prm->num_images_per_prompt = j->r_nipp;
    prm->height = j->r_height;
    prm->width = j->r_width;
    prm->eta = o->eta;
    prm->use_resolution_binning = o->binning;
    prm->max_sequence_length = (int)o->max_seq;
    prm->scheduler = j->r_scheduler;
    prm->scheduler_config = o->scheduler_config;
}

/* Fills the r_ fields, the key and the cost. 0, or -1 with why. */
static int resolve_job(const batch_opts *o, const px_pipeline *p, int L, px_batch_job *j, char *why, size_t wn)
{
    if (j->scheduler[0] && o->scheduler_config) {
        snprintf(why, wn, "'scheduler' cannot be combined with --scheduler-config");
        return -1;
    }
    if (j->steps && o->ntimesteps) {
        snprintf(why, wn, "'steps' cannot be combined with --timesteps");
        return -1;
    }
    j->r_scheduler = j->scheduler[0] ? j->scheduler : o->scheduler;
    const int lcm = job_is_lcm(o, p, j->r_scheduler);
    j->r_steps = j->steps ? j->steps : o->steps_set ? (int)o->steps : lcm ? 4 : 20;
    j->r_guidance = j->has_guidance ? j->guidance : o->guidance_set ? o->guidance : lcm ? 0.0 : 4.5;
    j->r_height = j->height ? j->height : (int)o->height;
    j->r_width = j->width ? j->width : (int)o->width;
    j->r_nipp = j->nipp ? j->nipp : (int)o->nipp;
    j->r_negative = j->negative ? j->negative : o->negative ? o->negative : "";
    j->r_cfg = j->r_guidance > 1.0; // do_classifier_free_guidance
    j->r_seeds = j->nseeds ? j->seeds : o->nseeds ? o->seeds : NULL;
    j->r_nseeds = j->nseeds ? j->nseeds : o->nseeds;
    if (j->r_nseeds > 1 && j->r_nseeds != j->r_nipp) {
        snprintf(why, wn, "%d seeds for %d images (give one seed, or one per image)", j->r_nseeds, j->r_nipp);
        return -1;
    }
    // the size checks of px_pipeline_generate (binning table, multiples of the VAE factor) now, not mid-run
    px_generate_params prm;
    px_generate_params_init(&prm);
    sampling_params(o, j, &prm);
    prm.prompt = (const char *const *)&j->prompt;
    prm.num_prompts = 1;
    int64_t shape[4];
    if (px_pipeline_latent_shape(p, &prm, shape)) {
        snprintf(why, wn, "%s", px_last_error());
        return -1;
    }
    j->key = job_key(o, j, L);
    // the transformer's work: images x steps x tokens, twice with guidance
    j->cost = (double)j->r_nipp * (o->ntimesteps ? o->ntimesteps : j->r_steps) * (j->r_cfg ? 2 : 1) *
              (double)shape[2] * shape[3];
    return 0;
}

/* Resolves every job; bad ones are reported (rank 0) and dropped. */
static void resolve_jobs(const batch_opts *o, const px_pipeline *p, int L, px_batch_jobs *js, FILE *err)
{
    int m = 0;
    for (int i = 0; i < js->n; i++) {
        px_batch_job *j = &js->jobs[i];
        char why[512];
        if (resolve_job(o, p, L, j, why, sizeof why)) {
            if (err) fprintf(err, "pixart batch: %s:%d: %s; line skipped\n", o->prompts, j->line, why);
            free(j->prompt);
            free(j->negative);
            free(j->seeds);
            js->bad++;
            continue;
        }
        js->jobs[m++] = *j;
    }
    js->n = m;
    // r_seeds may point into a job that moved
    for (int i = 0; i < js->n; i++)
        if (js->jobs[i].nseeds) js->jobs[i].r_seeds = js->jobs[i].seeds;
}

// ---------------------------------------------------------------------------
// Ctrl-C: the first SIGINT lets the current image finish, a second one (or
// SIGTERM) abandons it; either way nothing half-written stays and the next
// run resumes.

#define RC_INTERRUPTED 130 /* exit status after Ctrl-C (128 + SIGINT) */
static volatile sig_atomic_t stop_level; /* 0 run, 1 stop after this job, 2 stop now */

static void on_signal(int sig)
{
    if (sig == SIGTERM || stop_level >= 1) stop_level = 2;
    else stop_level = 1;
    if (stop_level == 1) {
        static const char m[] = "\npixart batch: finishing the current image, then stopping (Ctrl-C again to abandon it)\n";
        ssize_t w = write(2, m, sizeof m - 1); // async-signal-safe, unlike fprintf
        (void)w;
    }
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

// ---------------------------------------------------------------------------
// The run: its state, progress lines

typedef struct {
    const batch_opts *o;
    px_mpi_info mpi;
    px_pipeline *p;
    px_batch_jobs js;
    int L, D;
    int *mine, nmine;       /* indices into js.jobs of this rank's jobs, in file order */
    int64_t *emb_off;       /* (nmine) offset of each job's embeddings in the spill file */
    int spill_fd;
    int manifest_fd;
    int tty;
    int threads;            /* 0: the library's default */
    char who[32];           /* "" or "rank 3: " */
    // progress
    int jobs_done, jobs_failed, images_done, images_total;
    double t_start;
} batch_run;

static void report(const batch_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(const batch_run *r, const char *fmt, ...)
{
    if (r->o->quiet) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s%s%s\n", r->tty ? "\r\033[K" : "", r->who, msg);
    fflush(stderr);
}

/* Progress callback of px_pipeline_generate: a step counter on a terminal,
 * and the second Ctrl-C. */
typedef struct {
    batch_run *r;
    int job; /* 1-based among this rank's jobs */
} step_ctx;

static int on_progress(void *user, const px_progress_event *ev)
{
    step_ctx *c = user;
    if (stop_level >= 2) return px_set_error("interrupted");
    if (c->r->tty && !c->r->o->quiet && ev->kind == PX_EVENT_STEP) {
        fprintf(stderr, "\r%sjob %d/%d: step %d/%d\033[K", c->r->who, c->job, c->r->nmine, ev->step + 1, ev->num_steps);
        fflush(stderr);
    }
    return 0;
}

static void progress_line(const batch_run *r, const px_batch_job *j, double sec, const char *what)
{
    char a[32], b[32];
    double el = now_s() - r->t_start;
    double per_image = r->images_done ? el / r->images_done : 0;
    int left = r->images_total - r->images_done;
    report(r, "%d/%d jobs: %s %s-0.png%s (line %d) in %s; %.0f images/h, ETA %s", r->jobs_done + r->jobs_failed,
           r->nmine, what, j->stem, j->r_nipp > 1 ? " ..." : "", j->line, px_format_seconds(sec, a, sizeof a),
           el > 0 ? 3600.0 * r->images_done / el : 0.0, r->images_done ? px_format_seconds(per_image * left, b, sizeof b) : "?");
}

// ---------------------------------------------------------------------------
// Planning: which jobs are left (rank 0 reads the manifest and tells the
// others), and which of them this rank runs

static int make_dirs(const char *dir)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return px_set_error("%s: path too long", dir);
    for (char *s = buf + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        if (mkdir(buf, 0777) && errno != EEXIST) return px_set_error("%s: cannot create: %s", buf, strerror(errno));
        *s = c;
        if (!c) break;
    }
    struct stat st;
    if (stat(dir, &st) || !S_ISDIR(st.st_mode)) return px_set_error("%s: not a directory", dir);
    if (access(dir, W_OK)) return px_set_error("%s: cannot write to it: %s", dir, strerror(errno));
    return 0;
}

/* Rank 0: the output folder, a killed run's leftovers, and the jobs not yet
 * complete (todo: indices, returns their count, or -1). */
static int plan_todo(batch_run *r, int *todo)
{
    const batch_opts *o = r->o;
    int n = r->js.n, *done = calloc((size_t)n + 1, sizeof(int)), *changed = calloc((size_t)n + 1, sizeof(int));
    int rc = -1;
    if (!done || !changed) {
        px_set_error("out of memory");
        goto out;
    }
    if (make_dirs(o->outdir) || px_batch_manifest_merge(o->outdir)) goto out;
    int cleaned = px_batch_clean_temps(o->outdir);
    if (cleaned) report(r, "removed %d temporary file%s of an interrupted run", cleaned, cleaned == 1 ? "" : "s");
    if (px_batch_manifest_check(o->outdir, r->js.jobs, n, done, changed, o->quiet ? NULL : stderr)) goto out;
    rc = 0;
    int nchanged = 0;
    for (int i = 0; i < n; i++) {
        if (!done[i]) todo[rc++] = i;
        if (!done[i] && changed[i] && nchanged++ < 10)
            report(r, "line %d (%s): parameters changed since the manifest's run: redoing it", r->js.jobs[i].line,
                   r->js.jobs[i].stem);
    }
    if (nchanged > 10) report(r, "... %d jobs with changed parameters in all", nchanged);
out:
    free(done);
    free(changed);
    return rc;
}

/* Static split, balanced by cost: the largest job first to the rank with the
 * least work so far (deterministic, so every rank computes the same split).
 * Each rank runs its jobs in file order. */
static const px_batch_job *split_jobs;
static int by_cost_desc(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    double cx = split_jobs[x].cost, cy = split_jobs[y].cost;
    return cx != cy ? (cx < cy) - (cx > cy) : (x > y) - (x < y);
}
static int by_index(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

static int split_for_rank(batch_run *r, int *todo, int ntodo)
{
    const int R = r->mpi.size;
    double *load = calloc((size_t)R, sizeof(double));
    r->mine = malloc(sizeof(int) * (size_t)(ntodo + 1));
    if (!load || !r->mine) {
        free(load);
        return px_set_error("out of memory");
    }
    split_jobs = r->js.jobs;
    qsort(todo, (size_t)ntodo, sizeof *todo, by_cost_desc);
    r->nmine = 0;
    for (int k = 0; k < ntodo; k++) {
        int best = 0;
        for (int q = 1; q < R; q++)
            if (load[q] < load[best]) best = q;
        load[best] += r->js.jobs[todo[k]].cost;
        if (best == r->mpi.rank) r->mine[r->nmine++] = todo[k];
    }
    qsort(r->mine, (size_t)r->nmine, sizeof(int), by_index);
    free(load);
    return 0;
}

// ---------------------------------------------------------------------------
// Phase 1: the text encoder, once. Each job's embeddings come from the same
// px_pipeline_encode call `generate` makes for it ([prompt, negative] with
// guidance, [prompt] without), so they are its bits; they go to an unlinked
// scratch file in OUTDIR (3.75 MiB a job for PixArt-alpha), not to memory.

static int write_all(int fd, const void *buf, size_t n, int64_t off)
{
    const char *p = buf;
    while (n) {
        ssize_t w = pwrite(fd, p, n, off);
        if (w <= 0) return px_set_error("embeddings scratch file: write failed: %s", w < 0 ? strerror(errno) : "no space");
        p += w, n -= (size_t)w, off += w;
    }
    return 0;
}

static int read_all(int fd, void *buf, size_t n, int64_t off)
{
    char *p = buf;
    while (n) {
        ssize_t g = pread(fd, p, n, off);
        if (g <= 0) return px_set_error("embeddings scratch file: read failed");
        p += g, n -= (size_t)g, off += g;
    }
    return 0;
}

static int open_spill(batch_run *r)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/.pixart-batch-embeds.%d.%ld", r->o->outdir, r->mpi.rank, (long)getpid());
    r->spill_fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0600);
    if (r->spill_fd < 0) return px_set_error("%s: cannot create: %s", path, strerror(errno));
    unlink(path); // gone with the process, however it ends
    return 0;
}

/* A previous job of this rank with the same texts (seed sweeps): its offset, or -1. */
static int64_t same_texts(const batch_run *r, int k)
{
    const px_batch_job *j = &r->js.jobs[r->mine[k]];
    for (int q = k - 1; q >= 0 && q >= k - 64; q--) {
        const px_batch_job *o = &r->js.jobs[r->mine[q]];
        if (o->r_cfg == j->r_cfg && !strcmp(o->prompt, j->prompt) && (!j->r_cfg || !strcmp(o->r_negative, j->r_negative)))
            return r->emb_off[q];
    }
    return -1;
}

static int encode_all(batch_run *r)
{
    const size_t nE = (size_t)r->L * r->D, nM = (size_t)r->L;
    float *e = malloc(sizeof(float) * 2 * nE), *m = malloc(sizeof(float) * 2 * nM);
    r->emb_off = malloc(sizeof(int64_t) * (size_t)(r->nmine + 1));
    int rc = -1, fresh = 0;
    int64_t end = 0;
    double t0 = now_s();
    if (!e || !m || !r->emb_off) {
        px_set_error("out of memory (embeddings)");
        goto out;
    }
    if (open_spill(r)) goto out;
    px_pipeline_keep_models(r->p, PX_MODEL_TEXT_ENCODER);
    for (int k = 0; k < r->nmine; k++) {
        if (stop_level) {
            rc = RC_INTERRUPTED;
            goto out;
        }
        const px_batch_job *j = &r->js.jobs[r->mine[k]];
        if ((r->emb_off[k] = same_texts(r, k)) >= 0) continue;
        const char *texts[2] = {j->prompt, j->r_negative};
        const int n = j->r_cfg ? 2 : 1;
        if (px_pipeline_encode(r->p, texts, n, r->L, e, m)) goto out;
        r->emb_off[k] = end;
        if (write_all(r->spill_fd, e, sizeof(float) * n * nE, end) ||
            write_all(r->spill_fd, m, sizeof(float) * n * nM, end + (int64_t)(sizeof(float) * n * nE)))
            goto out;
        end += (int64_t)(sizeof(float) * n * (nE + nM));
        fresh++;
    }
    char a[32];
    report(r, "encoded %d prompt%s for %d job%s in %s (text encoder loaded once, now released)", fresh,
           fresh == 1 ? "" : "s", r->nmine, r->nmine == 1 ? "" : "s", px_format_seconds(now_s() - t0, a, sizeof a));
    rc = 0;
out:
    // the text encoder goes before the transformer comes (they are never resident together)
    px_pipeline_keep_models(r->p, PX_MODEL_TRANSFORMER | PX_MODEL_VAE);
    free(e);
    free(m);
    return rc;
}

// ---------------------------------------------------------------------------
// Phase 2: the jobs, one px_pipeline_generate call each (the transformer and
// the VAE stay loaded). Jobs are not merged into one transformer batch: the
// result would not be generate's bits (doc/batch.md, "Why one job at a time").

static uint64_t random_seed(void)
{
    // as generate draws one: 32 random bits (all that reach torch's mt19937)
    uint64_t s = 0;
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd >= 0) {
        if (read(fd, &s, sizeof s) != (ssize_t)sizeof s) s = 0;
        close(fd);
    }
    if (!s) s = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return s & 0xffffffffu;
}

/* The PNGs of a job with the text chunks `pixart generate` writes for the
 * same call (src/cli/cmd_generate.c write_pngs; test_batch checks the bytes
 * are equal), each renamed into place and fsynced. */
static int write_job_pngs(const batch_run *r, const px_batch_job *j, const px_generate_result *res,
                          const uint64_t *seeds, int nseeds, uint64_t *hashes, int64_t *sizes)
{
    const batch_opts *o = r->o;
    const int N = res->num_images;
    const size_t npx = (size_t)res->height * res->width * 3;
    uint8_t *rgb = malloc(npx);
    if (!rgb) return px_set_error("out of memory (8-bit image)");
    char seed[32], steps[32], guidance[32], size[64], idx[32], eta[32];
    snprintf(guidance, sizeof guidance, "%g", j->r_guidance);
    snprintf(size, sizeof size, "%dx%d", res->width, res->height);
    snprintf(eta, sizeof eta, "%g", o->eta);
    snprintf(steps, sizeof steps, "%d", res->num_steps);
    int rc = 0;
    for (int i = 0; i < N && !rc; i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s-%d.png", o->outdir, j->stem, i);
        px_image_to_u8(rgb, res->images + (size_t)i * npx, npx);
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)(nseeds == 1 ? seeds[0] : seeds[i]));
        snprintf(idx, sizeof idx, "%d", i);
        px_png_text text[16];
        int nt = 0;
        text[nt++] = (px_png_text){"prompt", j->prompt};
        text[nt++] = (px_png_text){"negative_prompt", j->r_negative};
        text[nt++] = (px_png_text){"seed", seed};
        if (o->ntimesteps) text[nt++] = (px_png_text){"timesteps", o->timesteps_arg};
        if (N > 1) text[nt++] = (px_png_text){"batch_index", idx};
        text[nt++] = (px_png_text){"steps", steps};
        text[nt++] = (px_png_text){"guidance_scale", guidance};
        text[nt++] = (px_png_text){"scheduler", res->scheduler};
        if (o->eta > 0) text[nt++] = (px_png_text){"eta", eta};
        text[nt++] = (px_png_text){"size", size};
        text[nt++] = (px_png_text){"model", o->model};
        text[nt++] = (px_png_text){"Software", "pixart.c " PACKAGE_VERSION " (diffusers PixArtAlphaPipeline v0.30.3)"};
        // written under a temporary name and renamed (px_png_write), then made
        // durable; the digest is of the bytes read back from the disk
        rc = px_png_write(path, rgb, res->width, res->height, text, nt) || px_batch_fsync_path(path, 0) ||
             px_batch_file_digest(path, &hashes[i], &sizes[i]);
        if (rc && !px_last_error()[0]) px_set_error("%s: cannot read it back", path);
    }
    free(rgb);
    if (!rc) rc = px_batch_fsync_path(o->outdir, 1); // the renames
    return rc ? -1 : 0;
}

/* The manifest line of a finished (ok) or failed job. */
static int manifest_line(const batch_run *r, const px_batch_job *j, const uint64_t *seeds, int nseeds, int nfiles,
                         const uint64_t *hashes, const int64_t *sizes, double sec, const char *error)
{
    size_t cap = 512 + (size_t)nfiles * (PX_BATCH_NAME_MAX + 64) + (size_t)nseeds * 24 + (error ? 6 * strlen(error) : 0),
           n = 0;
    char *b = malloc(cap);
    if (!b) return px_set_error("out of memory");
#define ADD(...) n += (size_t)snprintf(b + n, n < cap ? cap - n : 0, __VA_ARGS__)
    ADD("{\"job\": ");
    px_batch_json_string(b, cap, &n, j->stem);
    ADD(", \"line\": %d, \"key\": \"%016llx\", \"files\": [", j->line, (unsigned long long)j->key);
    for (int i = 0; i < nfiles; i++) ADD("%s\"%s-%d.png\"", i ? ", " : "", j->stem, i);
    ADD("], \"bytes\": [");
    for (int i = 0; i < nfiles; i++) ADD("%s%lld", i ? ", " : "", (long long)sizes[i]);
    ADD("], \"fnv1a64\": [");
    for (int i = 0; i < nfiles; i++) ADD("%s\"%016llx\"", i ? ", " : "", (unsigned long long)hashes[i]);
    ADD("], \"seed\": ");
    if (nseeds == 1) ADD("%llu", (unsigned long long)seeds[0]);
    else {
        ADD("[");
        for (int i = 0; i < nseeds; i++) ADD("%s%llu", i ? ", " : "", (unsigned long long)seeds[i]);
        ADD("]");
    }
    ADD(", \"seconds\": %.3f, \"status\": \"%s\"", sec, error ? "failed" : "ok");
    if (error) {
        ADD(", \"error\": ");
        px_batch_json_string(b, cap, &n, error);
    }
    ADD("}\n");
#undef ADD
    int rc = n < cap ? px_batch_manifest_append(r->manifest_fd, b, n) : px_set_error("manifest line too long");
    free(b);
    return rc;
}

/* One job: 0 done, 1 failed (recorded, the run goes on), -1 fatal (the
 * manifest cannot be written), RC_INTERRUPTED (nothing recorded). */
static int run_job(batch_run *r, int k, float *emb, float *mask)
{
    const px_batch_job *j = &r->js.jobs[r->mine[k]];
    const int n = j->r_cfg ? 2 : 1;
    const size_t nE = (size_t)r->L * r->D, nM = (size_t)r->L;
    double t0 = now_s();
    if (read_all(r->spill_fd, emb, sizeof(float) * n * nE, r->emb_off[k]) ||
        read_all(r->spill_fd, mask, sizeof(float) * n * nM, r->emb_off[k] + (int64_t)(sizeof(float) * n * nE)))
        return -1;
    uint64_t rseed;
    const uint64_t *seeds = j->r_seeds;
    int nseeds = j->r_nseeds;
    if (!nseeds) {
        rseed = random_seed();
        seeds = &rseed;
        nseeds = 1;
    }
    px_generate_params prm;
    px_generate_params_init(&prm);
    sampling_params(r->o, j, &prm);
    prm.prompt_embeds = emb;
    prm.prompt_attention_mask = mask;
    if (j->r_cfg) {
        prm.negative_prompt_embeds = emb + nE;
        prm.negative_prompt_attention_mask = mask + nM;
    }
    prm.embeds_len = r->L;
    prm.num_prompts = 1;
    prm.seeds = seeds;
    prm.num_seeds = nseeds;
    step_ctx sc = {r, k + 1};
    prm.progress = on_progress;
    prm.progress_user = &sc;
    px_generate_result res;
    uint64_t *hashes = calloc((size_t)j->r_nipp, sizeof(uint64_t));
    int64_t *sizes = calloc((size_t)j->r_nipp, sizeof(int64_t));
    int rc = 1;
    if (!hashes || !sizes) px_set_error("out of memory");
    else if (px_pipeline_generate(r->p, &prm, &res) == 0) {
        rc = write_job_pngs(r, j, &res, seeds, nseeds, hashes, sizes) ? 1 : 0;
        px_generate_result_free(&res);
    } else if (stop_level >= 2) {
        rc = RC_INTERRUPTED;
    }
    double sec = now_s() - t0;
    if (rc == 0 && manifest_line(r, j, seeds, nseeds, j->r_nipp, hashes, sizes, sec, NULL)) rc = -1;
    else if (rc == 1) {
        char err[512];
        snprintf(err, sizeof err, "%s", px_last_error());
        report(r, "line %d (%s) failed: %s", j->line, j->stem, err);
        if (manifest_line(r, j, seeds, nseeds, 0, NULL, NULL, sec, err)) rc = -1;
    }
    if (rc == 0) {
        r->jobs_done++;
        r->images_done += j->r_nipp;
        progress_line(r, j, sec, "wrote");
    } else if (rc == 1) {
        r->jobs_failed++;
        r->images_total -= j->r_nipp;
    }
    free(hashes);
    free(sizes);
    return rc;
}

static int run_jobs(batch_run *r)
{
    const size_t nE = (size_t)r->L * r->D, nM = (size_t)r->L;
    float *emb = malloc(sizeof(float) * 2 * nE), *mask = malloc(sizeof(float) * 2 * nM);
    int rc = 0;
    if (!emb || !mask) rc = px_set_error("out of memory (embeddings)");
    r->t_start = now_s();
    for (int k = 0; k < r->nmine && rc == 0; k++) {
        if (stop_level) {
            rc = RC_INTERRUPTED;
            break;
        }
        int s = run_job(r, k, emb, mask);
        if (s < 0 || s == RC_INTERRUPTED) rc = s;
    }
    free(emb);
    free(mask);
    return rc;
}

// ---------------------------------------------------------------------------

/* Threads: --threads, else PIXART_NUM_THREADS (the library reads it), else
 * under MPI this node's cores shared by the ranks on it. */
static void choose_threads(batch_run *r)
{
    const char *env = getenv("PIXART_NUM_THREADS");
    r->threads = env && atoi(env) > 0 ? atoi(env) : 0;
    if (r->o->threads) r->threads = (int)r->o->threads;
    else if (r->mpi.size > 1 && !r->threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        int t = (int)(cores > 0 ? cores : 1) / (r->mpi.local_size > 0 ? r->mpi.local_size : 1);
        r->threads = t > 0 ? t : 1;
    }
    if (r->threads) px_set_num_threads(r->threads);
}

static void print_resume_hint(const batch_run *r, int argc, char **argv)
{
    if (r->mpi.rank != 0) return;
    fprintf(stderr, "pixart batch: stopped; the finished images are kept. To resume, run the same command again:\n ");
    fprintf(stderr, " %spixart", r->mpi.size > 1 ? "mpirun ... " : "");
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int plain = *a && strspn(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=./,:+") == strlen(a);
        if (plain) fprintf(stderr, " %s", a);
        else {
            fputs(" '", stderr);
            for (; *a; a++) fputs(*a == '\'' ? "'\\''" : (char[2]){*a, 0}, stderr);
            fputc('\'', stderr);
        }
    }
    fputc('\n', stderr);
}

/* Reads the jobs and opens the checkpoint (every rank: the same files give
 * the same jobs). 0, or the exit status. */
static int prepare(batch_run *r)
{
    const batch_opts *o = r->o;
    FILE *err = r->mpi.rank == 0 ? stderr : NULL;
    if (px_batch_read_jobs(o->prompts, err, &r->js)) return 1;
    r->p = px_pipeline_open(o->model, o->variant);
    if (!r->p) return 1;
    px_pipeline_set_vae_tiling(r->p, o->vae_tiling);
    if (o->max_memory) px_pipeline_set_max_memory(r->p, o->max_memory);
    r->L = o->max_seq ? (int)o->max_seq : px_pipeline_max_sequence_length(r->p);
    r->D = px_pipeline_text_dim(r->p);
    resolve_jobs(o, r->p, r->L, &r->js, err);
    if (o->strict && r->js.bad) {
        if (err) fprintf(err, "pixart batch: %d bad line%s in %s; nothing done (--strict)\n", r->js.bad,
                         r->js.bad == 1 ? "" : "s", o->prompts);
        return 2;
    }
    return 0;
}

/* Rank 0 plans and broadcasts the list of jobs left; every rank takes its
 * share. 0, or the exit status. */
static int share_jobs(batch_run *r)
{
    int n = r->js.n, *todo = malloc(sizeof(int) * (size_t)(n + 1)), ntodo = -1;
    if (!todo) return 1;
    if (r->mpi.rank == 0) ntodo = plan_todo(r, todo);
    if (px_mpi_bcast_ints(&ntodo, 1) || ntodo < 0 || px_mpi_bcast_ints(todo, ntodo)) {
        free(todo);
        return 1;
    }
    if (r->mpi.rank == 0) {
        report(r, "%d job%s in %s: %d complete, %d to do%s", n, n == 1 ? "" : "s", r->o->prompts, n - ntodo, ntodo,
               r->mpi.size > 1 ? " over the MPI ranks" : "");
    }
    int rc = split_for_rank(r, todo, ntodo) ? 1 : 0;
    free(todo);
    for (int k = 0; k < r->nmine; k++) r->images_total += r->js.jobs[r->mine[k]].r_nipp;
    return rc;
}

static void batch_free(batch_run *r)
{
    if (r->spill_fd >= 0) close(r->spill_fd);
    if (r->manifest_fd >= 0) close(r->manifest_fd);
    px_pipeline_close(r->p);
    px_batch_jobs_free(&r->js);
    free(r->mine);
    free(r->emb_off);
}

int cmd_batch(int argc, char **argv)
{
    batch_opts *o = calloc(1, sizeof *o);
    if (!o) return 1;
    int rc = parse_args(argc, argv, o);
    if (rc) {
        free(o);
        return rc == 1 ? 0 : rc;
    }
    batch_run run = {0}, *r = &run;
    r->o = o;
    r->spill_fd = r->manifest_fd = -1;
    if (px_mpi_init(&argc, &argv, &r->mpi)) {
        free(o);
        return 1;
    }
    if (r->mpi.size > 1) snprintf(r->who, sizeof r->who, "rank %d: ", r->mpi.rank);
    r->tty = isatty(2) && r->mpi.size == 1;
    choose_threads(r);
    install_signals();

    // every rank must reach the same collectives: failures are agreed on first
    rc = prepare(r);
    rc = px_mpi_allreduce_max(rc);
    if (rc == 0) rc = share_jobs(r);
    if (rc == 0 && r->mpi.size > 1)
        report(r, "%d of the jobs, %d thread%s (rank %d of %d on this node)", r->nmine, r->threads,
               r->threads == 1 ? "" : "s", r->mpi.local_rank, r->mpi.local_size);
    if (rc == 0 && r->nmine) {
        r->manifest_fd = px_batch_manifest_open(o->outdir, r->mpi.size > 1 ? r->mpi.rank : -1);
        rc = r->manifest_fd < 0 ? 1 : encode_all(r);
        if (rc == 0) rc = run_jobs(r);
        if (rc < 0) rc = 1;
    }
    if (rc == 1 && !stop_level && px_last_error()[0]) fprintf(stderr, "pixart batch: %s%s\n", r->who, px_last_error());
    int interrupted = rc == RC_INTERRUPTED;
    // the end: everyone stops here, rank 0 merges the ranks' manifests
    rc = px_mpi_allreduce_max(rc);
    int failed_jobs = px_mpi_allreduce_max(r->jobs_failed); // jobs recorded as failed (the run went on)
    if (r->mpi.rank == 0 && r->mpi.size > 1 && r->js.n && px_batch_manifest_merge(o->outdir)) {
        fprintf(stderr, "pixart batch: %s\n", px_last_error());
        if (!rc) rc = 1;
    }
    if (interrupted || rc == RC_INTERRUPTED) print_resume_hint(r, argc, argv);
    else if (r->mpi.rank == 0 && !o->quiet && rc == 0) {
        char bad[PATH_MAX + 64] = "";
        if (r->js.bad)
            snprintf(bad, sizeof bad, "; %d bad line%s of %s skipped", r->js.bad, r->js.bad == 1 ? "" : "s", o->prompts);
        fprintf(stderr, "pixart batch: %s: %s%s\n", o->outdir,
                failed_jobs ? "finished, but some jobs failed (see above; a rerun retries them)"
                : r->js.n   ? "all jobs complete"
                            : "no jobs",
                bad);
    }
    if (rc == 0 && (r->js.bad || failed_jobs)) rc = 1;
    if (rc == 0 && r->js.bad) rc = 1;
    batch_free(r);
    px_mpi_finalize();
    free(o);
    return rc;
}
