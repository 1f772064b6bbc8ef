/* Benchmark of the VAE decoder in the sd-vae-ft-ema configuration PixArt-alpha
 * ships (block_out_channels 128/256/512/512, layers_per_block 2, 32 groups,
 * 4 latent channels, sample_size 256) with random weights generated here:
 * decodes of 64x64 (512 px) and 128x128 (1024 px) latents, untiled and with
 * enable_tiling() semantics (tiles of 32 latents every 24, 64 px blends).
 *
 * Each run is a child process (fork before any thread pool exists), so its
 * peak RSS (wait4) is that of one decode: weights + activations. GFLOP counts
 * are analytic (2 x multiply-adds of the convolutions, linears and attention
 * products; norms and activations not counted) and compared with the raw
 * cblas_sgemm rate on a conv-shaped GEMM measured in the same run.
 *
 * The "estimate" column is what the pipeline's memory budget uses
 * (px_vae_decode_work_bytes: the decoder's buffers replayed in allocation
 * order) plus the decoder weights, z and the output; peak RSS minus estimate
 * is the process baseline (libraries, thread stacks, OpenBLAS buffers).
 *
 * --sample-size N sets the config's sample_size, i.e. the tile size of the
 * tiled decode: 256 as in sd-vae-ft-ema (PixArt-alpha), 512 as in the
 * PixArt-Sigma VAE (its other differences, scaling_factor and
 * force_upcast, do not change the decoder's work); e.g.
 * `bench_vae --sample-size 512 256:t` is the 2048x2048 Sigma decode in tiles.
 *
 * usage: bench_vae [--sample-size N] [RUNS [CONVS]]   RUNS: comma-separated SIZE:MODES with MODES u
 * (untiled) and/or t (tiled); default "64:ut,128:u" (about 4 minutes on 2 idle
 * cores: a 1024 px decode is 10.5 TFLOP). The tiled 1024 px decode (36 tiles,
 * 1.6x the work of the untiled one) is left to `bench_vae 128:t`. CONVS:
 * comma-separated convolution paths to run every decode with, each of auto
 * (px_conv2d's choice), im2col (im2col + cblas_sgemm) and blocked (the
 * blocked GEMM with implicit im2col); default "auto". */
#include "model/vae.h"
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "pixart/pixart.h" /* px_blas_fix_core */
#include "tensor/error.h"

#include <cblas.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* PIXART_BENCH_CPU_TIME=1 times everything by process CPU time instead of the
 * wall clock: with one thread (PIXART_NUM_THREADS=1 OMP_NUM_THREADS=1) on a
 * machine shared with other jobs, time slices lost to them do not count
 * (with more threads it would count waiting threads' spinning). */
static int cpu_time(void)
{
    const char *e = getenv("PIXART_BENCH_CPU_TIME");
    return e && *e && strcmp(e, "0");
}

static double now(void)
{
    static int cpu = -1;
    if (cpu < 0) cpu = cpu_time();
    struct timespec ts;
    clock_gettime(cpu ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int sample_size = 256; /* --sample-size */

/* sd-vae-ft-ema's config.json */
static px_vae_config sd_vae_config(void)
{
    px_vae_config c = {.in_channels = 3, .out_channels = 3, .latent_channels = 4, .nblocks = 4,
                       .block_out = {128, 256, 512, 512}, .layers_per_block = 2,
                       .norm_num_groups = 32, .sample_size = sample_size, .mid_block_add_attention = 1,
                       .use_quant_conv = 1, .use_post_quant_conv = 1, .scaling_factor = 0.18215f};
    return c;
}

// ----------------------------------------------------------------------------
// random weights, named like the diffusers state dict

typedef struct {
    char name[96];
    px_tensor t;
} wentry;

typedef struct {
    wentry *e;
    int n, cap;
    int touch; /* 1: random values (decoder); 0: zero pages never touched (encoder) */
    uint64_t seed;
} wtable;

static const px_tensor *lookup(void *ctx, const char *name)
{
    wtable *w = ctx;
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0) return &w->e[i].t;
    return NULL;
}

/* Uniform in [-a, a) from a counter-based hash. */
static inline float rnd(uint64_t seed, uint64_t i, float a)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return a * (float)((double)(z >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* kind 0: weight U(-1/sqrt(fan_in), ..); 1: norm weight 1 + U(-0.1, 0.1); 2: bias U(-0.1, 0.1) */
static void add(wtable *w, int kind, int ndim, const int64_t *shape, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void add(wtable *w, int kind, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        if (!w->e) { fprintf(stderr, "out of memory\n"); exit(1); }
    }
    wentry *e = &w->e[w->n++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->name, sizeof e->name, fmt, ap);
    va_end(ap);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *x = calloc((size_t)n, sizeof *x);
    if (!x) { fprintf(stderr, "out of memory\n"); exit(1); }
    /* the encoder's big matrices stay untouched zero pages (as unused mmap'd
     * weights would); its small vectors are read once at load anyway */
    if (w->touch || ndim == 1) {
        float a = kind == 0 ? 1.0f / sqrtf((float)(n / shape[0])) : 0.1f;
        uint64_t seed = w->seed++;
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t i = 0; i < n; i++) x[i] = (kind == 1 ? 1.0f : 0.0f) + rnd(seed, (uint64_t)i, a);
    }
    e->t = px_tensor_view(PX_F32, x, ndim, shape);
}

#define S1(a) 1, (const int64_t[]){(a)}
#define S2(a, b) 2, (const int64_t[]){(a), (b)}
#define S4(a, b, k) 4, (const int64_t[]){(a), (b), (k), (k)}

static void add_conv(wtable *w, int64_t cin, int64_t cout, int k, const char *name)
{
    add(w, 0, S4(cout, cin, k), "%s.weight", name);
    add(w, 2, S1(cout), "%s.bias", name);
}

static void add_norm(wtable *w, int64_t c, const char *name)
{
    add(w, 1, S1(c), "%s.weight", name);
    add(w, 2, S1(c), "%s.bias", name);
}

static void add_resnet(wtable *w, int64_t cin, int64_t cout, const char *p)
{
    char n[160];
    snprintf(n, sizeof n, "%s.norm1", p); add_norm(w, cin, n);
    snprintf(n, sizeof n, "%s.conv1", p); add_conv(w, cin, cout, 3, n);
    snprintf(n, sizeof n, "%s.norm2", p); add_norm(w, cout, n);
    snprintf(n, sizeof n, "%s.conv2", p); add_conv(w, cout, cout, 3, n);
    if (cin != cout) { snprintf(n, sizeof n, "%s.conv_shortcut", p); add_conv(w, cin, cout, 1, n); }
}

static void add_mid(wtable *w, int64_t C, const char *coder)
{
    char n[160];
    snprintf(n, sizeof n, "%s.mid_block.resnets.0", coder); add_resnet(w, C, C, n);
    snprintf(n, sizeof n, "%s.mid_block.resnets.1", coder); add_resnet(w, C, C, n);
    snprintf(n, sizeof n, "%s.mid_block.attentions.0.group_norm", coder); add_norm(w, C, n);
    const char *lin[4] = {"to_q", "to_k", "to_v", "to_out.0"};
    for (int i = 0; i < 4; i++) {
        add(w, 0, S2(C, C), "%s.mid_block.attentions.0.%s.weight", coder, lin[i]);
        add(w, 2, S1(C), "%s.mid_block.attentions.0.%s.bias", coder, lin[i]);
    }
}

static void build_weights(wtable *w, const px_vae_config *c)
{
    const int n = c->nblocks, lpb = c->layers_per_block;
    const int64_t top = c->block_out[n - 1], lc = c->latent_channels;
    char name[160];
    w->touch = 1;
    add_conv(w, lc, lc, 1, "post_quant_conv");
    add_conv(w, lc, top, 3, "decoder.conv_in");
    add_mid(w, top, "decoder");
    int64_t out = top;
    for (int i = 0; i < n; i++) {
        int64_t prev = out;
        out = c->block_out[n - 1 - i];
        for (int r = 0; r <= lpb; r++) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%d", i, r);
            add_resnet(w, r == 0 ? prev : out, out, name);
        }
        if (i != n - 1) {
            snprintf(name, sizeof name, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            add_conv(w, out, out, 3, name);
        }
    }
    add_norm(w, c->block_out[0], "decoder.conv_norm_out");
    add_conv(w, c->block_out[0], c->out_channels, 3, "decoder.conv_out");

    w->touch = 0;
    add_conv(w, 2 * lc, 2 * lc, 1, "quant_conv");
    add_conv(w, c->in_channels, c->block_out[0], 3, "encoder.conv_in");
    out = c->block_out[0];
    for (int i = 0; i < n; i++) {
        int64_t in = out;
        out = c->block_out[i];
        for (int r = 0; r < lpb; r++) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%d", i, r);
            add_resnet(w, r == 0 ? in : out, out, name);
        }
        if (i != n - 1) {
            snprintf(name, sizeof name, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            add_conv(w, out, out, 3, name);
        }
    }
    add_mid(w, top, "encoder");
    add_norm(w, top, "encoder.conv_norm_out");
    add_conv(w, top, 2 * lc, 3, "encoder.conv_out");
}

// ----------------------------------------------------------------------------
// FLOP counts

static double conv_flops(int64_t cin, int64_t cout, int k, int64_t H, int64_t W)
{
    return 2.0 * (double)cin * cout * k * k * H * W;
}

/* post_quant_conv + Decoder on h x w latents */
static double decode_flops(const px_vae_config *c, int64_t h, int64_t w)
{
    const int n = c->nblocks, lpb = c->layers_per_block;
    const int64_t top = c->block_out[n - 1], lc = c->latent_channels;
    double f = conv_flops(lc, lc, 1, h, w) + conv_flops(lc, top, 3, h, w);
    double N = (double)h * w;
    f += 2 * (2 * conv_flops(top, top, 3, h, w));                /* mid resnets */
    f += 4 * 2.0 * N * top * top + 2 * 2.0 * N * N * top;         /* q, k, v, out; QK^T, PV */
    int64_t out = top, H = h, W = w;
    for (int i = 0; i < n; i++) {
        int64_t prev = out;
        out = c->block_out[n - 1 - i];
        for (int r = 0; r <= lpb; r++) {
            int64_t ci = r == 0 ? prev : out;
            f += conv_flops(ci, out, 3, H, W) + conv_flops(out, out, 3, H, W);
            if (ci != out) f += conv_flops(ci, out, 1, H, W);
        }
        if (i != n - 1) {
            H *= 2;
            W *= 2;
            f += conv_flops(out, out, 3, H, W);
        }
    }
    return f + conv_flops(c->block_out[0], c->out_channels, 3, H, W);
}

/* the same over diffusers' tiles (tile_latent_min_size, overlap 0.25) */
static double tiled_decode_flops(const px_vae_config *c, int64_t h, int64_t w, int *ntiles)
{
    const int64_t f = 1 << (c->nblocks - 1), T = c->sample_size / f, step = (int64_t)(T * 0.75);
    double total = 0;
    *ntiles = 0;
    for (int64_t i = 0; i < h; i += step)
        for (int64_t j = 0; j < w; j += step) {
            total += decode_flops(c, h - i < T ? h - i : T, w - j < T ? w - j : T);
            (*ntiles)++;
        }
    return total;
}

// ----------------------------------------------------------------------------
// runs (each in a child process)

typedef struct {
    double seconds, value; /* value: GFLOP/s for the sgemm run, checksum for decodes */
    double estimate;       /* decodes: estimated peak bytes (weights, z, out, decoder buffers) */
    int ok;
} result;

/* raw cblas_sgemm on the GEMM of a 3x3 conv band at 1024 px with 256 -> 256
 * channels (M = 256 output channels, K = 2304, N = 4096 pixels) */
static result run_sgemm(void)
{
    const int M = 256, K = 2304, N = 4096;
    float *A = malloc((size_t)M * K * sizeof *A), *Bm = malloc((size_t)K * N * sizeof *Bm),
          *C = calloc((size_t)M * N, sizeof *C);
    for (int64_t i = 0; i < (int64_t)M * K; i++) A[i] = rnd(1, (uint64_t)i, 1);
    for (int64_t i = 0; i < (int64_t)K * N; i++) Bm[i] = rnd(2, (uint64_t)i, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, Bm, N, 0, C, N);
    int reps = 0;
    double t0 = now(), t;
    do {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, Bm, N, 0, C, N);
        reps++;
        t = now() - t0;
    } while (t < 2.0);
    result r = {t / reps, 2.0 * M * N * K * reps / t / 1e9, 0, 1};
    free(A); free(Bm); free(C);
    return r;
}

static result run_decode(int h, int w, int tiled)
{
    result r = {0, 0, 0, 0};
    px_vae_config c = sd_vae_config();
    wtable wt = {0};
    wt.seed = 7;
    build_weights(&wt, &c);
    px_vae *m = px_vae_new(&c, lookup, &wt, "sd-vae-ft-ema (random weights)");
    if (!m) {
        fprintf(stderr, "%s\n", px_last_error());
        return r;
    }
    px_vae_set_tiling(m, tiled);
    const int f = px_vae_downscale(m);
    float *z = malloc((size_t)4 * h * w * sizeof *z);
    float *out = malloc((size_t)3 * h * f * w * f * sizeof *out);
    for (int64_t i = 0; i < (int64_t)4 * h * w; i++) z[i] = rnd(99, (uint64_t)i, 3.0f) / 0.18215f;
    double t0 = now();
    int rc = px_vae_decode(m, out, z, 1, h, w, NULL);
    r.seconds = now() - t0;
    r.estimate = (double)sizeof(float) * ((double)px_vae_decoder_params(&c) + 4.0 * h * w + 3.0 * h * f * w * f) +
                 (double)px_vae_decode_work_bytes(&c, 1, h, w, tiled, px_get_num_threads());
    if (rc) {
        fprintf(stderr, "%s\n", px_last_error());
    } else {
        double s = 0;
        int finite = 1;
        for (int64_t i = 0; i < (int64_t)3 * h * f * w * f; i++) {
            finite &= isfinite(out[i]);
            s += out[i];
        }
        r.value = s;
        r.ok = finite;
    }
    free(z);
    free(out);
    px_vae_free(m);
    for (int i = 0; i < wt.n; i++) free(wt.e[i].t.data);
    free(wt.e);
    return r;
}

/* Runs job in a child; returns its result and peak RSS (GiB). */
static result in_child(int job, int h, int w, int tiled, int conv_path, double *rss_gib)
{
    int fd[2];
    result r = {0, 0, 0, 0};
    if (pipe(fd)) return r;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        px_conv_path = conv_path;
        result cr = job == 0 ? run_sgemm() : run_decode(h, w, tiled);
        ssize_t wr = write(fd[1], &cr, sizeof cr);
        _exit(wr == (ssize_t)sizeof cr ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &r, sizeof r);
    close(fd[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (got != (ssize_t)sizeof r || !WIFEXITED(status) || WEXITSTATUS(status) != 0) r.ok = 0;
    *rss_gib = (double)ru.ru_maxrss / (1024.0 * 1024.0);
    return r;
}

int main(int argc, char **argv)
{
    px_blas_fix_core(argv); /* OpenBLAS's best kernels for the raw baseline */
    if (argc > 2 && !strcmp(argv[1], "--sample-size")) {
        sample_size = atoi(argv[2]);
        if (sample_size < 8 || sample_size % 32) {
            fprintf(stderr, "--sample-size: want a multiple of 32 (256, 512)\n");
            return 1;
        }
        argc -= 2;
        argv += 2;
    }
    const char *runs = argc > 1 ? argv[1] : "64:ut,128:u";
    const char *convs = argc > 2 ? argv[2] : "auto";
    static const char *conv_names[] = { "auto", "im2col", "blocked" };
    static const int conv_ids[] = { PX_GEMM_AUTO, PX_GEMM_CBLAS, PX_GEMM_BLOCKED };
    int conv_list[8], nconv = 0;
    for (const char *c0 = convs; *c0 && nconv < 8;) {
        size_t len = strcspn(c0, ",");
        int id = -1;
        for (int i = 0; i < 3; i++)
            if (strlen(conv_names[i]) == len && !strncmp(c0, conv_names[i], len)) id = i;
        if (id < 0) {
            fprintf(stderr, "bad conv path in '%s' (auto, im2col, blocked)\n", convs);
            return 1;
        }
        conv_list[nconv++] = id;
        c0 += len + (c0[len] == ',');
    }
    px_vae_config c = sd_vae_config();
    double rss;
    printf("VAE decoder, sd-vae-ft-ema configuration (128/256/512/512, 2 layers, 32 groups), sample_size %d "
           "(tiles of %d latents), random F32 weights\n", sample_size, sample_size / 8);
    printf("threads: %s (PIXART_NUM_THREADS), one child process per run; ISA %s (PIXART_ISA to force), "
           "OpenBLAS core %s\n", getenv("PIXART_NUM_THREADS") ? getenv("PIXART_NUM_THREADS") : "default",
           px_isa_name(px_ops_default_isa()), px_blas_core());
    if (cpu_time()) printf("times are process CPU time (PIXART_BENCH_CPU_TIME)\n");
    result g = in_child(0, 0, 0, 0, PX_GEMM_AUTO, &rss);
    if (!g.ok) return 1;
    printf("raw cblas_sgemm (256 x 2304 x 4096): %.1f GFLOP/s\n\n", g.value);
    printf("%-9s %-8s %-8s %6s %9s %9s %9s %8s %10s %10s\n", "latents", "tiling", "conv", "tiles", "seconds",
           "GFLOP", "GFLOP/s", "of sgemm", "peak RSS", "estimate");
    char *list = strdup(runs);
    for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
        int h = atoi(tok);
        const char *modes = strchr(tok, ':');
        modes = modes ? modes + 1 : "ut";
        if (h < 1 || h > 512 || strspn(modes, "ut") != strlen(modes)) {
            fprintf(stderr, "bad run '%s' (SIZE:MODES, e.g. 64:ut)\n", tok);
            return 1;
        }
        for (const char *md = modes; *md; md++)
        for (int ci = 0; ci < nconv; ci++) {
            int tiled = *md == 't';
            int ntiles = 1;
            double fl = decode_flops(&c, h, h);
            if (tiled && h > c.sample_size / 8) fl = tiled_decode_flops(&c, h, h, &ntiles);
            result r = in_child(1, h, h, tiled, conv_ids[conv_list[ci]], &rss);
            if (!r.ok) {
                printf("%dx%d %s: FAILED\n", h, h, tiled ? "tiled" : "untiled");
                return 1;
            }
            char lat[32];
            snprintf(lat, sizeof lat, "%dx%d", h, h);
            printf("%-9s %-8s %-8s %6d %9.2f %9.0f %9.1f %7.0f%% %7.3f GiB %6.3f GiB\n", lat,
                   tiled ? "tiled" : "untiled", conv_names[conv_list[ci]], ntiles, r.seconds, fl / 1e9,
                   fl / 1e9 / r.seconds, 100 * fl / 1e9 / r.seconds / g.value, rss, r.estimate / (1 << 30));
            fflush(stdout);
        }
    }
    free(list);
    return 0;
}
