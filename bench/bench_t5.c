/* Benchmark of the T5 v1.1 XXL encoder shape (d_model 4096, d_ff 10240,
 * 64 heads x 64, vocab 32128) with random weights generated here, for a
 * batch of 2 x 120 tokens (prompt + negative prompt), with F32 and BF16
 * weights. Only a few of the 24 blocks are instantiated; the time of one
 * block is (t(N blocks) - t(1 block)) / (N - 1) and the full model is
 * extrapolated as fixed + 24 * block. The raw cblas_sgemm rate on the same
 * GEMM shapes (block 0's F32 weights) is measured in the same run.
 *
 * usage: bench_t5 [blocks (2..4, default 3)] [repetitions (default 3)] */
#include "model/t5.h"
#include "ops/ops.h"
#include "pixart/pixart.h" /* px_blas_fix_core */
#include "tensor/error.h"
#include "tensor/half.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

enum { B = 2, L = 120, FULL_LAYERS = 24 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* user + system CPU seconds of the process (all threads) */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_sec +
           1e-6 * (double)ru.ru_stime.tv_usec;
}

static double peak_rss_gib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / (1024.0 * 1024.0); /* ru_maxrss is in KiB on Linux */
}

// ----------------------------------------------------------------------------
// random weights, named like a transformers state dict

typedef struct {
    char name[128];
    px_tensor t;
} wentry;

typedef struct {
    wentry *e;
    int n, cap;
} wtable;

static const px_tensor *lookup(void *ctx, const char *name)
{
    wtable *w = ctx;
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0) return &w->e[i].t;
    return NULL;
}

/* Uniform in [-a, a) from a counter-based hash: any thread count gives the same values. */
static inline float rnd(uint64_t seed, uint64_t i, float a)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return a * (float)((double)(z >> 40) * (2.0 / 16777216.0) - 1.0);
}

static int add_weight(wtable *w, px_dtype dt, int64_t rows, int64_t cols, float a, float offset,
                      const char *name)
{
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->e = realloc(w->e, (size_t)w->cap * sizeof *w->e);
        if (!w->e) return px_fail("out of memory");
    }
    wentry *e = &w->e[w->n];
    snprintf(e->name, sizeof e->name, "%s", name);
    int64_t shape[2] = { rows, cols };
    int nd = cols ? 2 : 1;
    if (!cols) shape[1] = 1;
    const int64_t n = rows * shape[1];
    void *data = px_malloc((size_t)n * px_dtype_size(dt), name);
    if (!data) return -1;
    const uint64_t seed = (uint64_t)w->n + 1;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = offset + rnd(seed, (uint64_t)i, a);
        if (dt == PX_F32) ((float *)data)[i] = v;
        else ((uint16_t *)data)[i] = px_f32_to_bf16(v);
    }
    e->t = px_tensor_view(dt, data, nd, shape);
    w->n++;
    return 0;
}

static void free_weights(wtable *w)
{
    for (int i = 0; i < w->n; i++) free(w->e[i].t.data);
    free(w->e);
    memset(w, 0, sizeof *w);
}

static int make_weights(wtable *w, const px_t5_config *c, px_dtype dt)
{
    const int64_t D = c->d_model, In = c->num_heads * c->d_kv, F = c->d_ff;
    char n[128];
    /* entries ~ var 1/K keep activations O(1) through the blocks */
    const float aD = sqrtf(3.0f / (float)D), aI = sqrtf(3.0f / (float)In), aF = sqrtf(3.0f / (float)F);
    if (add_weight(w, dt, c->vocab_size, D, 1.0f, 0.0f, "shared.weight") ||
        add_weight(w, dt, c->num_buckets, c->num_heads, 0.5f, 0.0f,
                   "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight") ||
        add_weight(w, dt, D, 0, 0.1f, 1.0f, "encoder.final_layer_norm.weight"))
        return -1;
    for (int64_t i = 0; i < c->num_layers; i++) {
#define W(rows, cols, a, off, fmt)                                        \
    snprintf(n, sizeof n, "encoder.block.%lld." fmt, (long long)i);      \
    if (add_weight(w, dt, rows, cols, a, off, n)) return -1;
        W(D, 0, 0.1f, 1.0f, "layer.0.layer_norm.weight")
        W(In, D, aD, 0.0f, "layer.0.SelfAttention.q.weight")
        W(In, D, aD, 0.0f, "layer.0.SelfAttention.k.weight")
        W(In, D, aD, 0.0f, "layer.0.SelfAttention.v.weight")
        W(D, In, aI, 0.0f, "layer.0.SelfAttention.o.weight")
        W(D, 0, 0.1f, 1.0f, "layer.1.layer_norm.weight")
        W(F, D, aD, 0.0f, "layer.1.DenseReluDense.wi_0.weight")
        W(F, D, aD, 0.0f, "layer.1.DenseReluDense.wi_1.weight")
        W(D, F, aF, 0.0f, "layer.1.DenseReluDense.wo.weight")
#undef W
    }
    return 0;
}

// ----------------------------------------------------------------------------

/* FLOPs of one block for B x L tokens: 7 GEMMs and the attention. */
static double block_flops(const px_t5_config *c)
{
    const double M = B * L, D = (double)c->d_model, In = (double)(c->num_heads * c->d_kv),
                 F = (double)c->d_ff;
    double gemm = 2 * M * (4 * D * In + 3 * D * F);
    double attn = (double)B * (double)c->num_heads * 2.0 * (2.0 * L * L * (double)c->d_kv);
    return gemm + attn;
}

/* One encode: wall seconds; *cpu = CPU seconds of the process meanwhile. */
static double time_encode(px_t5 *m, const int32_t *ids, const int32_t *mask, float *out, double *cpu)
{
    double c0 = cpu_seconds(), t0 = now();
    if (px_t5_encode(m, ids, mask, B, L, out, NULL)) {
        fprintf(stderr, "bench_t5: %s\n", px_last_error());
        exit(1);
    }
    double t = now() - t0;
    if (cpu) *cpu = cpu_seconds() - c0;
    return t;
}

typedef struct {
    double t1, tn;           /* best wall time of the 1-block and the N-block model */
    double block, fixed;     /* (tN - t1) / (N - 1), t1 - block */
    double block_avg;        /* tN / N: includes a share of the fixed part */
    double full, gflops, rss;
    double c1, cn, cpu_block; /* CPU seconds (all threads) of the same runs */
    double weights_gib_full;
} result;

static int run(px_dtype dt, const px_t5_config *full, int nblocks, int reps, const int32_t *ids,
               const int32_t *mask, result *r, double *sgemm_gflops)
{
    px_t5_config c = *full;
    c.num_layers = nblocks;
    wtable w = { 0 };
    double tg = now();
    if (make_weights(&w, &c, dt)) return -1;
    tg = now() - tg;
    px_t5_config c1 = c;
    c1.num_layers = 1;
    px_t5 *m1 = px_t5_new(&c1, lookup, &w, "random weights");
    px_t5 *mn = px_t5_new(&c, lookup, &w, "random weights");
    if (!m1 || !mn) return -1;
    float *out = px_malloc((size_t)(B * L * c.d_model) * sizeof(float), "output");
    if (!out) return -1;
    time_encode(mn, ids, mask, out, NULL); /* warm-up: page in, thread pools */
    /* interleaved, best of reps each: other load on the machine hits both alike */
    r->t1 = r->tn = 1e30;
    for (int rep = 0; rep < reps; rep++) {
        double c, t = time_encode(m1, ids, mask, out, &c);
        if (t < r->t1) { r->t1 = t; r->c1 = c; }
        t = time_encode(mn, ids, mask, out, &c);
        if (t < r->tn) { r->tn = t; r->cn = c; }
    }
    r->block = (r->tn - r->t1) / (nblocks - 1);
    r->block_avg = r->tn / nblocks;
    r->cpu_block = (r->cn - r->c1) / (nblocks - 1);
    r->fixed = r->t1 - r->block;
    r->full = r->t1 + (FULL_LAYERS - 1) * r->block;
    r->gflops = block_flops(&c) / r->block * 1e-9;
    double fin = 0;
    for (int64_t i = 0; i < (int64_t)B * L * c.d_model; i++) fin += fabs(out[i]);
    fprintf(stderr, "  %s: weights generated in %.1f s; mean |out| %.3f\n", px_dtype_name(dt), tg,
            fin / (double)(B * L * c.d_model));

    if (sgemm_gflops) {
        /* raw cblas_sgemm on block 0's seven weight matrices, as px_linear calls it */
        const char *names[7] = { "q", "k", "v", "o", "wi_0", "wi_1", "wo" };
        const int64_t M = B * L;
        float *in = px_malloc((size_t)(M * c.d_ff) * sizeof(float), "sgemm input");
        float *o = px_malloc((size_t)(M * c.d_ff) * sizeof(float), "sgemm output");
        if (!in || !o) return -1;
        for (int64_t i = 0; i < M * c.d_ff; i++) in[i] = rnd(99, (uint64_t)i, 1.0f);
        double best = 1e30, flops = 0;
        for (int rep = 0; rep < reps + 1; rep++) {
            double t0 = now();
            flops = 0;
            for (int g = 0; g < 7; g++) {
                char n[128];
                snprintf(n, sizeof n, "encoder.block.0.layer.%d.%s.%s.weight", g < 4 ? 0 : 1,
                         g < 4 ? "SelfAttention" : "DenseReluDense", names[g]);
                const px_tensor *t = lookup(&w, n);
                const int64_t N = t->shape[0], K = t->shape[1];
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, in,
                            (int)K, (const float *)t->data, (int)K, 0.0f, o, (int)N);
                flops += 2.0 * (double)M * (double)N * (double)K;
            }
            double t = now() - t0;
            if (rep > 0 && t < best) best = t; /* rep 0 warms up */
        }
        *sgemm_gflops = flops / best * 1e-9;
        free(in);
        free(o);
    }
    free(out);
    px_t5_free(m1);
    px_t5_free(mn);
    free_weights(&w);
    r->rss = peak_rss_gib();
    const double D = (double)c.d_model, In = (double)(c.num_heads * c.d_kv), F = (double)c.d_ff;
    double params = (double)c.vocab_size * D + FULL_LAYERS * (4 * D * In + 3 * D * F + 2 * D) + D +
                    (double)(c.num_buckets * c.num_heads);
    r->weights_gib_full = params * (double)px_dtype_size(dt) / (1024.0 * 1024.0 * 1024.0);
    return 0;
}

int main(int argc, char **argv)
{
    int nblocks = argc > 1 ? atoi(argv[1]) : 3;
    int reps = argc > 2 ? atoi(argv[2]) : 3;
    if (nblocks < 2 || nblocks > 4 || reps < 1) {
        fprintf(stderr, "usage: bench_t5 [blocks 2..4] [repetitions >= 1]\n");
        return 2;
    }
    px_blas_fix_core(argv); /* OpenBLAS's best kernels for the raw baseline */
    px_ops_init();
    const px_t5_config xxl = { .vocab_size = 32128, .d_model = 4096, .d_kv = 64, .num_heads = 64,
                               .d_ff = 10240, .num_layers = FULL_LAYERS, .num_buckets = 32,
                               .max_distance = 128, .eps = 1e-6f };
    /* prompt with 18 real tokens, negative prompt "" = just </s> */
    int32_t ids[B * L], mask[B * L];
    for (int i = 0; i < B * L; i++) {
        int b = i / L, j = i % L, len = b == 0 ? 18 : 1;
        ids[i] = j < len - 1 ? 100 + (int32_t)((rnd(7, (uint64_t)i, 0.5f) + 0.5f) * 31000.0f) : j == len - 1 ? 1 : 0;
        mask[i] = j < len;
    }
    double load[3] = { 0, 0, 0 };
    if (getloadavg(load, 3) < 0) load[0] = -1;
    printf("T5 v1.1 XXL encoder shape: d_model 4096, d_ff 10240, 64 heads x 64, vocab 32128; "
           "batch %d x %d tokens; %d blocks instantiated, best of %d runs; ISA %s (PIXART_ISA to force), "
           "OpenBLAS core %s, %d threads; load average %.2f at start\n",
           B, L, nblocks, reps, px_isa_name(px_ops_isa()), px_blas_core(), px_get_num_threads(), load[0]);
    result rb, rf;
    double sgemm = 0;
    /* BF16 first so its peak RSS is not hidden by the larger F32 run */
    if (run(PX_BF16, &xxl, nblocks, reps, ids, mask, &rb, NULL) ||
        run(PX_F32, &xxl, nblocks, reps, ids, mask, &rf, &sgemm)) {
        fprintf(stderr, "bench_t5: %s\n", px_last_error());
        return 1;
    }
    const double fb = block_flops(&xxl) * 1e-9;
    printf("per block: %.1f GFLOP (7 GEMMs of 240 rows + attention)\n", fb);
    printf("raw cblas_sgemm on the block's GEMM shapes (F32): %.1f GFLOP/s\n", sgemm);
    const result *rs[2] = { &rf, &rb };
    const char *nm[2] = { "F32", "BF16" };
    for (int i = 0; i < 2; i++)
        printf("%-4s weights: 1 block %.3f s, %d blocks %.3f s -> %.3f s/block (%.1f GFLOP/s, %.0f%% of "
               "sgemm; CPU %.3f s/block; %d-block time / %d = %.3f s), fixed %.3f s; 24 blocks "
               "extrapolated %.1f s; peak RSS %.2f GiB (full model weights %.1f GiB)\n",
               nm[i], rs[i]->t1, nblocks, rs[i]->tn, rs[i]->block, rs[i]->gflops,
               100.0 * rs[i]->gflops / sgemm, rs[i]->cpu_block, nblocks, nblocks, rs[i]->block_avg,
               rs[i]->fixed, rs[i]->full, rs[i]->rss, rs[i]->weights_gib_full);
    return 0;
}
