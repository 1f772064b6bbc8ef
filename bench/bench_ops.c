/* Operator benchmark (not a test).
 *
 *  gemm     px_linear with F32 / BF16 / F16 weights against raw cblas_sgemm on
 *           the same shapes in the same run, on both of its paths (cblas and
 *           the blocked GEMM, ops/gemm_blocked.c; * marks the one px_linear
 *           picks): the PixArt-XL-2 DiT at 512 px with classifier-free
 *           guidance (2 x 1024 = 2048 tokens, hidden 1152, FF 4608, fused
 *           QKV 3456, adaLN 6 x 1152 with M = 2, caption projection
 *           4096 -> 1152 with 2 x 120 tokens), and T5-XXL's (2 x 120 tokens,
 *           d_model 4096, d_ff 10240: two gated wi of one shape). Targets: px_linear >= 95 % of
 *           raw for F32 weights, >= 85 % for BF16/F16.
 *  gemm1024 the same plus the 1024 px shapes (2 x 4096 = 8192 tokens).
 *  gemmparts where the cblas path's BF16 overhead goes (splitting into
 *           panels, the widening pass) on the 512 px large-M shapes.
 *  attn     px_attention, batch 2, 16 heads x 72, N = 1024 and 4096, with
 *           every SIMD kernel table the CPU runs (AVX2 and AVX-512 back to
 *           back on an AVX-512 CPU): time, GFLOP/s, its ratio to a raw
 *           cblas_sgemm 2048^3 measured in between (the OpenBLAS core is
 *           printed: set OPENBLAS_CORETYPE when it is an older one than the
 *           CPU), and the peak resident memory it adds (measured in a fresh
 *           child process from ru_maxrss), next to what a full N x N score
 *           matrix would take. q, k, v and the output are in 2 MiB pages
 *           (px_malloc_huge, as the DiT's activations) unless
 *           PIXART_BENCH_SMALL_PAGES=1.
 *  kernels  every px_kernels entry of every ISA this CPU runs, elements/s and
 *           speedup over the scalar reference (one thread, rows of 1152).
 *
 * Each timing is the best of several repetitions, variants interleaved so
 * they see the same machine load.
 *  sgemm    only the raw cblas_sgemm 2048^3 rate and the OpenBLAS core (to
 *           compare OPENBLAS_CORETYPE values).
 *
 * usage: bench_ops [gemm | gemm1024] [gemmparts] [attn] [kernels] [sgemm]
 *        (default: gemm, attn, kernels)
 *        PIXART_NUM_THREADS sets the thread count (default: all cores);
 *        PIXART_BENCH_CPU_TIME=1 times by process CPU time (for one thread
 *        on a busy machine: PIXART_NUM_THREADS=1 OMP_NUM_THREADS=1). */
#include "ops/gemm_internal.h"
#include "ops/ops.h"
#include "pixart/pixart.h" /* px_blas_fix_core */
#include "tensor/error.h" /* px_malloc */
#include "tensor/half.h"
#include "tensor/tensor.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

char *openblas_get_corename(void); /* OpenBLAS, which the library links */

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

static void fill(float *x, size_t n, uint32_t seed, float lo, float hi)
{
    uint32_t s = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = lo + (hi - lo) * (float)(s >> 8) * (1.0f / 16777216.0f);
    }
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p) {
        fprintf(stderr, "bench_ops: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

static void cpu_model(char *buf, size_t len)
{
    snprintf(buf, len, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        char *c = strchr(line, ':');
        if (c && strncmp(line, "model name", 10) == 0) {
            c++;
            while (*c == ' ' || *c == '\t') c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(buf, len, "%s", c);
            break;
        }
    }
    fclose(f);
}

// ----------------------------------------------------------------------------
// GEMM

typedef struct {
    const char *what;
    int64_t M, N, K;
} gshape;

/* 512 px (M = 2 x 1024 tokens) and the small-M products of every size */
static const gshape gshapes[] = {
    { "attn q/k/v/out 1152->1152", 2048, 1152, 1152 },
    { "fused qkv 1152->3456", 2048, 3456, 1152 },
    { "ff up 1152->4608", 2048, 4608, 1152 },
    { "ff down 4608->1152", 2048, 1152, 4608 },
    { "adaLN 1152->6912 (M=2)", 2, 6912, 1152 },
    { "caption 4096->1152 (M=240)", 240, 1152, 4096 },
    { "caption 1152->1152 (M=240)", 240, 1152, 1152 },
    { "T5-XXL q/k/v/o 4096->4096", 240, 4096, 4096 },
    { "T5-XXL wi 4096->10240", 240, 10240, 4096 },
    { "T5-XXL wo 10240->4096", 240, 4096, 10240 },
};

/* 1024 px (M = 2 x 4096 tokens) */
static const gshape gshapes1024[] = {
    { "attn q/k/v/out 1152->1152", 8192, 1152, 1152 },
    { "ff up 1152->4608", 8192, 4608, 1152 },
    { "ff down 4608->1152", 8192, 1152, 4608 },
};

/* variants timed per shape, interleaved: raw cblas_sgemm (no bias), then
 * px_linear with F32 / BF16 / F16 weights on the cblas path and on the
 * blocked path (ops/gemm_blocked.c) */
enum { V_RAW, V_CB32, V_CB16B, V_CB16F, V_BL32, V_BL16B, V_BL16F, NV };
static const char *vname[NV] = { "raw", "cblas F32", "cblas BF16", "cblas F16", "blocked F32", "blocked BF16",
                                 "blocked F16" };

/* 1 when px_linear's own choice for this shape and dtype is the blocked path
 * (decided by timing a call's path: both paths run, the choice is whichever
 * gives bits equal to the blocked run) */
static int auto_is_blocked(const float *x, const px_tensor *w, const float *bias, int64_t M, float *y1,
                           float *y2)
{
    const size_t n = (size_t)(M * w->shape[0]);
    px_gemm_path = PX_GEMM_BLOCKED;
    px_linear(y1, x, w, bias, M);
    px_gemm_path = PX_GEMM_AUTO;
    px_linear(y2, x, w, bias, M);
    int same_blocked = memcmp(y1, y2, n * 4) == 0;
    px_gemm_path = PX_GEMM_CBLAS;
    px_linear(y1, x, w, bias, M);
    px_gemm_path = PX_GEMM_AUTO;
    return same_blocked && memcmp(y1, y2, n * 4) != 0;
}

static void bench_gemm_set(const gshape *gs, size_t ns, double worst[NV], double worst_auto[3])
{
    for (size_t si = 0; si < ns; si++) {
        const gshape *g = &gs[si];
        const int64_t M = g->M, N = g->N, K = g->K;
        float *x = xmalloc((size_t)(M * K) * 4), *w = xmalloc((size_t)(N * K) * 4);
        float *bias = xmalloc((size_t)N * 4), *y = xmalloc((size_t)(M * N) * 4), *y2 = xmalloc((size_t)(M * N) * 4);
        uint16_t *wb = xmalloc((size_t)(N * K) * 2), *wf = xmalloc((size_t)(N * K) * 2);
        fill(x, (size_t)(M * K), 1, -1, 1);
        fill(w, (size_t)(N * K), 2, -0.05f, 0.05f);
        fill(bias, (size_t)N, 3, -1, 1);
        px_convert_from_f32(wb, PX_BF16, w, N * K);
        px_convert_from_f32(wf, PX_F16, w, N * K);
        px_tensor tw[3] = { px_tensor_view(PX_F32, w, 2, (int64_t[]){ N, K }),
                            px_tensor_view(PX_BF16, wb, 2, (int64_t[]){ N, K }),
                            px_tensor_view(PX_F16, wf, 2, (int64_t[]){ N, K }) };
        const double flop = 2.0 * (double)M * (double)N * (double)K;
        /* enough repetitions for ~0.4 s per variant at 100 GFLOP/s, at least 5 */
        int reps = (int)(0.4 * 100e9 / flop);
        if (reps < 5) reps = 5;
        if (reps > 200) reps = 200;
        double best[NV];
        for (int v = 0; v < NV; v++) best[v] = 1e30;
        for (int r = -1; r < reps; r++) { /* r = -1: warm-up (threads, page faults) */
            for (int v = 0; v < NV; v++) {
                double t0 = now();
                if (v == V_RAW) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K,
                                w, (int)K, 0.0f, y, (int)N);
                } else {
                    px_gemm_path = v < V_BL32 ? PX_GEMM_CBLAS : PX_GEMM_BLOCKED;
                    int rc = px_linear(y, x, &tw[(v - 1) % 3], bias, M);
                    px_gemm_path = PX_GEMM_AUTO;
                    if (rc) {
                        fprintf(stderr, "bench_ops: px_linear failed\n");
                        exit(1);
                    }
                }
                double t = now() - t0;
                if (r >= 0 && t < best[v]) best[v] = t;
            }
        }
        printf("%-27s %5lld %5lld %5lld | %6.1f |", g->what, (long long)M, (long long)N, (long long)K,
               flop / best[V_RAW] * 1e-9);
        int blk[3];
        for (int d = 0; d < 3; d++) blk[d] = auto_is_blocked(x, &tw[d], bias, M, y, y2);
        for (int v = 1; v < NV; v++) {
            double ratio = best[V_RAW] / best[v];
            int d = (v - 1) % 3, chosen = (v >= V_BL32) == blk[d];
            if (ratio < worst[v]) worst[v] = ratio;
            if (chosen && ratio < worst_auto[d]) worst_auto[d] = ratio;
            printf(" %5.1f%%%c%s", 100 * ratio, chosen ? '*' : ' ', v == V_CB16F ? " |" : "");
        }
        printf("\n");
        free(x); free(w); free(bias); free(y); free(y2); free(wb); free(wf);
    }
}

static void bench_gemm(int with1024)
{
    printf("\n== GEMM: px_linear (with bias) vs raw cblas_sgemm (no bias): raw GFLOP/s, then raw time /\n"
           "   px_linear time for F32, BF16, F16 weights on the cblas path and on the blocked path;\n"
           "   * marks the path px_linear takes by itself\n");
    printf("%-27s %5s %5s %5s | %6s | %7s %7s %7s | %7s %7s %7s\n", "shape", "M", "N", "K", "raw", "cb F32",
           "BF16", "F16", "bl F32", "BF16", "F16");
    double worst[NV], worst_auto[3] = { 1e9, 1e9, 1e9 };
    for (int v = 0; v < NV; v++) worst[v] = 1e9;
    bench_gemm_set(gshapes, sizeof gshapes / sizeof gshapes[0], worst, worst_auto);
    if (with1024) bench_gemm_set(gshapes1024, sizeof gshapes1024 / sizeof gshapes1024[0], worst, worst_auto);
    printf("worst ratio:");
    for (int v = 1; v < NV; v++) printf(" %s %.1f%%,", vname[v], 100 * worst[v]);
    printf("\nworst ratio of px_linear's choice: F32 %.1f%% (target >= 95%%), BF16 %.1f%%, F16 %.1f%% (target >= 85%%)\n",
           100 * worst_auto[0], 100 * worst_auto[1], 100 * worst_auto[2]);
}

/* Where the cblas path's half-precision overhead goes, for the large-M
 * shapes: (a) raw sgemm of the whole product; (b) the same F32 product cut
 * into the cblas path's panels of rows of w (16 MiB of F32 each, one
 * threaded sgemm per panel, beta = 0); (c) the widening pass alone (BF16 ->
 * F32 of every panel, threaded like the path); (d) the cblas path with BF16
 * weights (bias included). d - a = splitting (b - a) + widening (~c) + bias. */
static void bench_gemm_parts(void)
{
    printf("\n== GEMM parts of the cblas path with BF16 weights, ms (best of reps)\n");
    printf("%-27s %5s %5s %5s | %8s | %8s | %8s | %8s | %6s\n", "shape", "M", "N", "K", "a raw", "b panels",
           "c widen", "d path", "d/a");
    for (size_t si = 0; si < 4; si++) {
        const gshape *g = &gshapes[si];
        const int64_t M = g->M, N = g->N, K = g->K;
        float *x = xmalloc((size_t)(M * K) * 4), *w = xmalloc((size_t)(N * K) * 4);
        float *bias = xmalloc((size_t)N * 4), *y = xmalloc((size_t)(M * N) * 4);
        uint16_t *wb = xmalloc((size_t)(N * K) * 2);
        fill(x, (size_t)(M * K), 1, -1, 1);
        fill(w, (size_t)(N * K), 2, -0.05f, 0.05f);
        fill(bias, (size_t)N, 3, -1, 1);
        px_convert_from_f32(wb, PX_BF16, w, N * K);
        px_tensor tb = px_tensor_view(PX_BF16, wb, 2, (int64_t[]){ N, K });
        int64_t P = (16 << 20) / (K * 4);
        if (P > N) P = N;
        P = (N + (N + P - 1) / P - 1) / ((N + P - 1) / P);
        float *panel = xmalloc((size_t)(P * K) * 4);
        double best[4] = { 1e30, 1e30, 1e30, 1e30 };
        for (int r = -1; r < 8; r++)
            for (int v = 0; v < 4; v++) {
                double t0 = now();
                if (v == 0) {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, x, (int)K,
                                w, (int)K, 0.0f, y, (int)N);
                } else if (v == 1) {
                    for (int64_t p0 = 0; p0 < N; p0 += P) {
                        int64_t pb = N - p0 < P ? N - p0 : P;
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)pb, (int)K, 1.0f, x,
                                    (int)K, w + p0 * K, (int)K, 0.0f, y + p0, (int)N);
                    }
                } else if (v == 2) {
                    for (int64_t p0 = 0; p0 < N; p0 += P) {
                        int64_t pb = N - p0 < P ? N - p0 : P;
#pragma omp parallel for schedule(static)
                        for (int64_t r0 = 0; r0 < pb; r0 += 16) {
                            int64_t rb = pb - r0 < 16 ? pb - r0 : 16;
                            px_k.bf16_to_f32(panel + r0 * K, wb + (p0 + r0) * K, (size_t)(rb * K));
                        }
                    }
                } else {
                    px_gemm_path = PX_GEMM_CBLAS;
                    px_linear(y, x, &tb, bias, M);
                    px_gemm_path = PX_GEMM_AUTO;
                }
                double t = now() - t0;
                if (r >= 0 && t < best[v]) best[v] = t;
            }
        printf("%-27s %5lld %5lld %5lld | %8.2f | %8.2f | %8.2f | %8.2f | %5.1f%%\n", g->what, (long long)M,
               (long long)N, (long long)K, best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, best[3] * 1e3,
               100 * best[3] / best[0]);
        free(x); free(w); free(bias); free(y); free(wb); free(panel);
    }
}

// ----------------------------------------------------------------------------
// attention

static long maxrss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* "bench_ops attn-child N ISA": one measurement with the kernels of ISA, in
 * a fresh process (exec'd, so ru_maxrss starts from this measurement's
 * inputs and no OpenMP state is inherited across fork); prints "seconds
 * extra_bytes". */
static int attn_child(int64_t N, const char *isa_name)
{
    int isa = 0;
    while (isa < PX_ISA_COUNT && strcmp(px_isa_name((px_isa)isa), isa_name)) isa++;
    if (isa == PX_ISA_COUNT || px_ops_select((px_isa)isa)) return 1;
    const int64_t B = 2, H = 16, D = 72, HD = H * D;
    const size_t nel = (size_t)(B * N * HD);
    /* in 2 MiB pages like the DiT's activations (px_malloc_huge), unless
     * PIXART_BENCH_SMALL_PAGES=1 (4 KiB pages: what the DiT had before) */
    const char *sp = getenv("PIXART_BENCH_SMALL_PAGES");
    void *(*alloc)(size_t, const char *) = sp && *sp && strcmp(sp, "0") ? px_malloc : px_malloc_huge;
    float *q = alloc(nel * 4, "q"), *k = alloc(nel * 4, "k"), *v = alloc(nel * 4, "v"), *o = alloc(nel * 4, "o");
    if (!q || !k || !v || !o) return 1;
    fill(q, nel, 11, -1, 1);
    fill(k, nel, 12, -1, 1);
    fill(v, nel, 13, -1, 1);
    memset(o, 0, nel * 4);
    px_attn_args a = { .B = B, .Nq = N, .Nk = N, .H = H, .D = D, .scale = 1.0f / sqrtf((float)D) };
    long rss0 = maxrss_kib();
    double best = 1e30;
    for (int r = 0; r < (N <= 1024 ? 10 : 3); r++) {
        double t0 = now();
        if (px_attention(o, q, k, v, &a)) return 1;
        double t = now() - t0;
        if (t < best) best = t;
    }
    long rss1 = maxrss_kib();
    printf("%.9g %.0f\n", best, (double)(rss1 - rss0) * 1024.0);
    return 0;
}

/* Runs attn-child; 0 on success. */
static int run_attn_child(int64_t N, px_isa isa, double res[2])
{
    char self[4096], cmd[4300];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) return -1;
    self[len] = 0;
    snprintf(cmd, sizeof cmd, "'%s' attn-child %lld %s", self, (long long)N, px_isa_name(isa));
    fflush(stdout);
    FILE *p = popen(cmd, "r");
    int ok = p && fscanf(p, "%lf %lf", &res[0], &res[1]) == 2;
    if (p && pclose(p) != 0) ok = 0;
    return ok ? 0 : -1;
}

/* Rate (GFLOP/s) of raw cblas_sgemm 2048^3 (all threads), the yardstick of
 * the attention ratio: best of `reps` timings of `calls` back-to-back calls,
 * about as many FLOPs as one attention call, so that on a busy machine it
 * cannot win by fitting into a quiet moment that the attention cannot. It is
 * measured between the attention runs, so both see the same machine load. */
static double sgemm_2048_rate(int calls, int reps)
{
    const int n = 2048;
    float *A = xmalloc((size_t)n * n * 4), *Bm = xmalloc((size_t)n * n * 4), *C = xmalloc((size_t)n * n * 4);
    fill(A, (size_t)n * n, 31, -1, 1);
    fill(Bm, (size_t)n * n, 32, -1, 1);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, C, n); /* warm-up */
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        for (int c = 0; c < calls; c++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, Bm, n, 0.0f, C, n);
        double t = now() - t0;
        if (t < best) best = t;
    }
    free(A); free(Bm); free(C);
    return calls * 2.0 * n * n * n / best * 1e-9;
}

/* Attention on every SIMD kernel table this CPU runs (on an AVX-512 CPU: the
 * AVX2 kernels and the AVX-512 ones, back to back), two rounds interleaved
 * with the sgemm measurement, best of each. */
static void bench_attn(void)
{
    enum { ROUNDS = 2 };
    printf("\n== attention: batch 2, 16 heads x 72, self-attention, best of reps and %d rounds;\n"
           "   ratio = attention GFLOP/s / cblas_sgemm 2048^3 GFLOP/s (same run, OpenBLAS core %s)\n",
           ROUNDS, openblas_get_corename());
    printf("%6s | %-7s | %9s %8s | %8s %6s | %14s | %14s | %16s\n", "N", "kernels", "time ms", "GFLOP/s",
           "sgemm", "ratio", "peak extra MiB", "q,k,v,out MiB", "NxN scores MiB");
    px_isa isas[PX_ISA_COUNT];
    int ni = 0;
    for (int i = PX_ISA_REF + 1; i < PX_ISA_COUNT; i++)
        if (px_isa_supported((px_isa)i)) isas[ni++] = (px_isa)i;
    if (ni == 0) isas[ni++] = PX_ISA_REF;
    const int64_t Ns[] = { 1024, 4096 };
    for (int i = 0; i < 2; i++) {
        const int64_t N = Ns[i];
        const double B = 2, H = 16, D = 72;
        const double flop = 4.0 * B * H * (double)N * (double)N * D; /* QK^T and PV */
        const int calls = (int)(flop / (2.0 * 2048.0 * 2048.0 * 2048.0) + 0.5);
        double best[PX_ISA_COUNT][2], srate = 0;
        int ok[PX_ISA_COUNT] = { 0 };
        for (int r = 0; r < ROUNDS; r++) {
            for (int j = 0; j < ni; j++) {
                double res[2];
                if (run_attn_child(N, isas[j], res)) continue;
                if (!ok[j] || res[0] < best[j][0]) best[j][0] = res[0];
                if (!ok[j] || res[1] > best[j][1]) best[j][1] = res[1];
                ok[j] = 1;
            }
            double g = sgemm_2048_rate(calls > 1 ? calls : 1, N <= 1024 ? 5 : 2);
            if (g > srate) srate = g;
        }
        for (int j = 0; j < ni; j++) {
            if (!ok[j]) {
                printf("%6lld | %-7s | failed\n", (long long)N, px_isa_name(isas[j]));
                continue;
            }
            const double rate = flop / best[j][0] * 1e-9;
            printf("%6lld | %-7s | %9.1f %8.1f | %8.1f %5.1f%% | %14.2f | %14.1f | %16.1f\n", (long long)N,
                   px_isa_name(isas[j]), best[j][0] * 1e3, rate, srate, 100 * rate / srate, best[j][1] / (1 << 20),
                   4.0 * B * (double)N * H * D * 4 / (1 << 20), B * H * (double)N * (double)N * 4 / (1 << 20));
        }
    }
}

// ----------------------------------------------------------------------------
// table kernels

enum { KN = 1152, KROWS = 64 };

typedef struct {
    float *x, *a, *b, *w, *y;
    uint16_t *h;
} kbuf;

/* Runs kernel `which` of table k over KROWS rows of KN; returns seconds. */
static double run_kernel(const px_kernels *k, int which, kbuf *z)
{
    double t0 = now();
    volatile float sink = 0;
    volatile double dsink = 0;
    for (int r = 0; r < KROWS; r++) {
        size_t o = (size_t)r * KN;
        float *y = z->y + o;
        const float *x = z->x + o, *a = z->a + o, *b = z->b + o;
        switch (which) {
        case 0: k->gelu_tanh(y, x, KN); break;
        case 1: k->gelu_erf(y, x, KN); break;
        case 2: k->silu(y, x, KN); break;
        case 3: k->add(y, a, b, KN); break;
        case 4: k->mul(y, a, b, KN); break;
        case 5: k->modulate(y, x, a, b, KN); break;
        case 6: k->layernorm(y, x, z->w, b, KN, 1e-6f); break;
        case 7: k->rmsnorm(y, x, z->w, KN, 1e-6f); break;
        case 8: memcpy(y, x, KN * 4); k->softmax(y, KN); break;
        case 9: k->bf16_to_f32(y, z->h + o, KN); break;
        case 10: k->f16_to_f32(y, z->h + o, KN); break;
        case 11: sink = k->max(x, KN); break;
        case 12: sink = k->exp_sum(y, x, 8.0f, KN); break;
        case 13: dsink = k->sum(x, KN); break;
        case 14: dsink = k->sumsq_dev(x, 0.1, KN); break;
        case 15: k->norm_affine(y, x, 0.1f, 1.3f, 0.7f, -0.2f, KN); break;
        }
    }
    (void)sink;
    (void)dsink;
    return now() - t0;
}

static void bench_kernels(void)
{
    static const char *names[] = { "gelu_tanh", "gelu_erf", "silu", "add", "mul", "modulate",
                                   "layernorm", "rmsnorm", "softmax", "bf16_to_f32", "f16_to_f32",
                                   "max", "exp_sum", "sum", "sumsq_dev", "norm_affine" };
    const int nk = (int)(sizeof names / sizeof names[0]);
    kbuf z;
    const size_t n = (size_t)KN * KROWS;
    z.x = xmalloc(n * 4); z.a = xmalloc(n * 4); z.b = xmalloc(n * 4);
    z.w = xmalloc(KN * 4); z.y = xmalloc(n * 4); z.h = xmalloc(n * 2);
    fill(z.x, n, 21, -8, 8);
    fill(z.a, n, 22, -2, 2);
    fill(z.b, n, 23, -2, 2);
    fill(z.w, KN, 24, 0.5f, 1.5f);
    px_convert_from_f32(z.h, PX_F16, z.x, (int64_t)n);
    px_kernels tab[PX_ISA_COUNT];
    int have[PX_ISA_COUNT];
    for (int i = 0; i < PX_ISA_COUNT; i++) have[i] = px_kernels_for((px_isa)i, &tab[i]) == 0;
    printf("\n== table kernels: one thread, %d rows of %d, Melem/s (speedup over ref)\n", KROWS, KN);
    printf("%-12s", "kernel");
    for (int i = 0; i < PX_ISA_COUNT; i++)
        if (have[i]) printf(" | %18s", px_isa_name((px_isa)i));
    printf("\n");
    for (int kk = 0; kk < nk; kk++) {
        double best[PX_ISA_COUNT];
        for (int i = 0; i < PX_ISA_COUNT; i++) best[i] = 1e30;
        for (int rep = 0; rep < 15; rep++)
            for (int i = 0; i < PX_ISA_COUNT; i++) {
                if (!have[i]) continue;
                double t = run_kernel(&tab[i], kk, &z);
                if (t < best[i]) best[i] = t;
            }
        printf("%-12s", names[kk]);
        for (int i = 0; i < PX_ISA_COUNT; i++)
            if (have[i])
                printf(" | %9.0f (%5.1fx)", (double)n / best[i] * 1e-6, best[PX_ISA_REF] / best[i]);
        printf("\n");
    }
    free(z.x); free(z.a); free(z.b); free(z.w); free(z.y); free(z.h);
}

int main(int argc, char **argv)
{
    px_blas_fix_core(argv); /* OpenBLAS's best kernels for the raw baseline */
    px_ops_init();
    if (argc == 4 && !strcmp(argv[1], "attn-child")) return attn_child(atoll(argv[2]), argv[3]);
    int do_gemm = argc < 2, do_attn = argc < 2, do_kernels = argc < 2, with1024 = 0, do_parts = 0, do_sgemm = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "gemm")) do_gemm = 1;
        else if (!strcmp(argv[i], "gemm1024")) do_gemm = with1024 = 1;
        else if (!strcmp(argv[i], "gemmparts")) do_parts = 1;
        else if (!strcmp(argv[i], "attn")) do_attn = 1;
        else if (!strcmp(argv[i], "kernels")) do_kernels = 1;
        else if (!strcmp(argv[i], "sgemm")) do_sgemm = 1;
        else {
            fprintf(stderr, "usage: bench_ops [gemm | gemm1024] [gemmparts] [attn] [kernels] [sgemm]\n");
            return 2;
        }
    }
    char model[256], load[64] = "?";
    cpu_model(model, sizeof model);
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fgets(load, sizeof load, lf)) load[strcspn(load, "\n")] = 0;
        fclose(lf);
    }
    printf("bench_ops: %s, %ld online CPUs, %d threads, kernels: %s (PIXART_ISA to force), OpenBLAS core %s, "
           "load average before: %s\n", model, sysconf(_SC_NPROCESSORS_ONLN), px_get_num_threads(),
           px_isa_name(px_ops_isa()), px_blas_core(), load);
    if (cpu_time()) printf("times are process CPU time (PIXART_BENCH_CPU_TIME)\n");
    /* the yardstick alone, e.g. to compare OPENBLAS_CORETYPE values */
    if (do_sgemm)
        printf("\n== raw cblas_sgemm 2048^3, best of 5: %.1f GFLOP/s (OpenBLAS core %s)\n", sgemm_2048_rate(1, 5),
               px_blas_core());
    if (do_gemm) bench_gemm(with1024);
    if (do_parts) bench_gemm_parts();
    if (do_attn) bench_attn();
    if (do_kernels) bench_kernels();
    return 0;
}
