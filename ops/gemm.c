/* GEMM for nn.Linear and plain sgemm: OpenBLAS's cblas_sgemm, and for
 * px_linear with many rows the blocked GEMM of ops/gemm_blocked.c.
 *
 * px_linear paths (weights F32, or F16/BF16 kept half precision in memory):
 *  - M > 256 rows on a CPU with the AVX2 or AVX-512 micro-kernel: the
 *    blocked GEMM. Its weight packing widens F16/BF16 on the fly, so
 *    half-precision weights cost no separate widening pass; on the DiT's
 *    shapes it also matches or beats OpenBLAS for F32 weights (bench_ops
 *    gemm, doc/performance.md), so all three dtypes take it and equal values
 *    give equal bits.
 *  - The reference ISA (PIXART_FORCE_REF=1): the blocked GEMM's scalar
 *    kernels at every M, and px_sgemm_ref for px_sgemm: no OpenBLAS call.
 *  - Otherwise cblas_sgemm, with F16/BF16 weights widened to F32 one
 *    cache-sized panel of rows at a time (never a whole-model copy). On
 *    AVX-512 the blocked GEMM was measured slower at M <= 256 (T5's 240
 *    rows, adaLN's 2), so those stay here; ops/blas.c makes sure OpenBLAS
 *    runs kernels made for the CPU.
 *
 * Threading of the cblas paths. OpenMP and OpenBLAS must not run two busy
 * thread pools on the same cores (both spin-wait after a job; on 2 cores that
 * costs 2-10x). The output is cut into tiles whose size depends on the shape
 * only (M in parts of at most 256 rows, N narrowed until there are at least 8
 * tiles); each tile is one single-threaded cblas_sgemm and the tiles are
 * spread over the OpenMP threads, so the result is bit-identical for any
 * thread count by construction. (OpenBLAS threading one whole-width call
 * itself was a few percent faster for M = 2048, but its results change with
 * the thread count: measured on 5 shapes, 6-93 % of the elements differed in
 * the last bits between 1 and 2 threads.) The OpenMP build of OpenBLAS runs
 * single-threaded inside our parallel regions by itself; a pthreads OpenBLAS
 * is set to one thread meanwhile (px_blas_enter). Half-precision weights:
 * M > 256 widens shared panels inside the same parallel region; M <= 256
 * widens per tile into a per-thread buffer (in L2-sized pieces for M <= 16,
 * where reading the weights is the cost and half precision halves it).
 * Measurements against raw cblas_sgemm: doc/performance.md (bench/bench_ops). */
#include "gemm_internal.h"
#include "ops.h"
#include "tensor/error.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS extensions (cblas.h of OpenBLAS declares them; repeated so that
 * other cblas.h headers compile too). */
void openblas_set_num_threads(int num_threads);
int openblas_get_parallel(void);

// ----------------------------------------------------------------------------
// one thread pool at a time

/* With a pthreads OpenBLAS, calls made from OpenMP threads would each start
 * the library's own pool: drop it to one thread while our tiles run. (The
 * OpenMP build detects omp_in_parallel() itself and must not be told, as its
 * set_num_threads changes OpenMP's count; the sequential build needs nothing.) */
int px_blas_enter(void)
{
#ifdef _OPENMP
    if (px_get_num_threads() <= 1 || omp_in_parallel()) return 0;
    if (openblas_get_parallel() != 1) return 0;
    openblas_set_num_threads(1);
    return 1;
#else
    return 0;
#endif
}

void px_blas_leave(int entered)
{
    if (entered) openblas_set_num_threads(px_get_num_threads());
}

static int nthreads_for(double flops)
{
    /* below ~2 MFLOP a fork/join costs more than it saves */
    return flops < 2e6 ? 1 : px_get_num_threads();
}

void px_sgemm1(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
               int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
#if defined(_OPENMP) && defined(__clang__)
    /* clang's libomp runs the GOMP_parallel of Debian's OpenMP OpenBLAS (built
     * for libgomp). Outside an active region (also in our regions serialised
     * by their if clause) OpenBLAS threads the call itself, and that nested
     * team deadlocks (OpenBLAS spins in exec_blas). This call is meant to be
     * single-threaded: make OpenBLAS see one thread (the OpenMP build follows
     * omp_get_max_threads() on every call), then restore. */
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > 1) omp_set_num_threads(1);
#endif
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, alpha, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
#if defined(_OPENMP) && defined(__clang__)
    if (nt > 1) omp_set_num_threads(nt);
#endif
}

// ----------------------------------------------------------------------------
// tiling (a function of the shape only)

enum { TILE_M = 256, MIN_TILES = 8, TILE_ALIGN = 16 };

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* Rows per M tile: M cut into ceil(M / 256) near-equal parts. */
static int64_t tile_rows(int64_t M)
{
    int64_t parts = ceil_div(M, TILE_M);
    return ceil_div(M, parts);
}

/* Columns per N tile of a width-N block so that (M tiles) x (N tiles) >= 8,
 * a multiple of 16 when split, at least 16. */
static int64_t tile_cols(int64_t M, int64_t N)
{
    int64_t mt = ceil_div(M, tile_rows(M));
    int64_t want = ceil_div(MIN_TILES, mt);
    if (want <= 1) return N;
    int64_t nt = ceil_div(ceil_div(N, want), TILE_ALIGN) * TILE_ALIGN;
    if (nt < TILE_ALIGN) nt = TILE_ALIGN;
    return nt < N ? nt : N;
}

/* The reference: per output row, acc[j] = fmaf(op(A)[i][k], op(B)[k][j],
 * acc[j]) over k in increasing order from 0, then C = alpha * acc (+ beta *
 * C; C not read when beta is 0, as in BLAS). Threaded over rows. */
void px_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                  int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    const int nt = nthreads_for(2.0 * (double)M * (double)N * (double)K);
    float *accs = px_malloc((size_t)nt * (size_t)N * sizeof(float), "sgemm reference row");
    if (!accs) abort(); /* cblas_sgemm cannot fail either; a few KiB */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        float *acc = accs + (size_t)omp_get_thread_num() * (size_t)N;
#else
        float *acc = accs;
#endif
#pragma omp for schedule(static)
        for (int64_t i = 0; i < M; i++) {
            for (int64_t j = 0; j < N; j++) acc[j] = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                const float a = trans_a ? A[k * lda + i] : A[i * lda + k];
                for (int64_t j = 0; j < N; j++) acc[j] = fmaf(a, trans_b ? B[j * ldb + k] : B[k * ldb + j], acc[j]);
            }
            float *c = C + i * ldc;
            for (int64_t j = 0; j < N; j++) c[j] = beta == 0.0f ? alpha * acc[j] : alpha * acc[j] + beta * c[j];
        }
    }
    free(accs);
}

void px_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float *A,
              int64_t lda, const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    px_ops_init();
    if (M <= 0 || N <= 0) return;
    if (px_ops_isa() == PX_ISA_REF) {
        px_sgemm_ref(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    const int64_t rm = tile_rows(M), cn = tile_cols(M, N);
    const int64_t tm = ceil_div(M, rm), tn = ceil_div(N, cn);
    const int nt = nthreads_for(2.0 * (double)M * (double)N * (double)K);
    int entered = nt > 1 ? px_blas_enter() : 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && tm * tn > 1)
    for (int64_t t = 0; t < tm * tn; t++) {
        int64_t m0 = (t / tn) * rm, n0 = (t % tn) * cn;
        int64_t mb = M - m0 < rm ? M - m0 : rm, nb = N - n0 < cn ? N - n0 : cn;
        /* op(A) rows m0.. and op(B) columns n0.. */
        const float *a = trans_a ? A + m0 : A + m0 * lda;
        const float *b = trans_b ? B + n0 * ldb : B + n0;
        px_sgemm1(trans_a, trans_b, mb, nb, K, alpha, a, lda, b, ldb, beta, C + m0 * ldc + n0, ldc);
    }
    px_blas_leave(entered);
}

// ----------------------------------------------------------------------------
// nn.Linear

/* F32 bytes of one widened weight panel shared by all threads (half the 32 MiB
 * L3 of the machine in doc/performance.md: fewer panels mean fewer re-packings
 * of the activations, 8 MiB cost ff-down 5-10%), and of one thread's piece for
 * matrix-vector-like products (L2-sized). */
enum { PANEL_BYTES = 16 << 20, PIECE_BYTES = 256 << 10 };

/* out tile (mb, nb) = bias, then += in @ w^T (torch.addmm order) */
static void linear_tile(float *out, int64_t ldo, const float *in, int64_t K, const float *w, const float *bias,
                        int64_t mb, int64_t nb)
{
    float beta = 0.0f;
    if (bias) {
        for (int64_t m = 0; m < mb; m++) memcpy(out + m * ldo, bias, (size_t)nb * sizeof(float));
        beta = 1.0f;
    }
    px_sgemm1(0, 1, mb, nb, K, 1.0f, in, K, w, K, beta, out, ldo);
}

int px_gemm_path = PX_GEMM_AUTO;

int px_linear(float *out, const float *in, const px_tensor *w, const float *bias, int64_t M)
{
    px_ops_init();
    if (w->ndim != 2) return px_fail("linear: weight has %d dims, want 2", w->ndim);
    const int64_t N = w->shape[0], K = w->shape[1];
    if (M <= 0 || N == 0) return 0;
    if (w->dtype != PX_F32 && w->dtype != PX_F16 && w->dtype != PX_BF16)
        return px_fail("linear: weight dtype %s not supported", px_dtype_name(w->dtype));
    const int nt = nthreads_for(2.0 * (double)M * (double)N * (double)K);
    px_gemm_kernels gk;
    /* The reference ISA (PIXART_FORCE_REF=1, PIXART_ISA=ref): the blocked
     * GEMM with its scalar kernels at every M, never OpenBLAS. Many rows
     * (M > 256) on AVX2 and AVX-512: the blocked GEMM with SIMD kernels,
     * measured faster than the cblas paths for every weight dtype
     * (doc/performance.md); so F32, BF16 and F16 weights holding the same
     * values give the same bits at every M, and the same bits as the
     * reference. */
    const int simd = px_gemm_blocked_kernels(&gk);
    if (simd == 0 || (px_gemm_path != PX_GEMM_CBLAS && simd > 0 &&
                      (px_gemm_path == PX_GEMM_BLOCKED || M > TILE_M)))
        return px_linear_blocked(out, in, w, bias, M, &gk, nt);
    const int64_t rm = tile_rows(M), tm = ceil_div(M, rm);

    if (w->dtype == PX_F32) {
        const float *wf = w->data;
        const int64_t cn = tile_cols(M, N), tn = ceil_div(N, cn);
        int entered = nt > 1 ? px_blas_enter() : 0;
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1 && tm * tn > 1)
        for (int64_t t = 0; t < tm * tn; t++) {
            int64_t m0 = (t / tn) * rm, n0 = (t % tn) * cn;
            int64_t mb = M - m0 < rm ? M - m0 : rm, nb = N - n0 < cn ? N - n0 : cn;
            linear_tile(out + m0 * N + n0, N, in + m0 * K, K, wf + n0 * K, bias ? bias + n0 : NULL, mb, nb);
        }
        px_blas_leave(entered);
        return 0;
    }

    const uint16_t *wh = w->data;
    void (*widen)(float *, const uint16_t *, size_t) =
        w->dtype == PX_BF16 ? px_k.bf16_to_f32 : px_k.f16_to_f32;

    if (tm == 1) {
        /* Few rows (M <= 256): every N tile widens its own rows of w into a
         * per-thread buffer and multiplies them; the weights are read once,
         * no barrier. For M <= 16 (matrix-vector like) the tile is widened in
         * L2-sized pieces, as the sgemm is bound by reading them. */
        const int64_t cn = tile_cols(M, N), tn = ceil_div(N, cn);
        int64_t piece = cn;
        if (M <= 16) {
            piece = (PIECE_BYTES / (K * (int64_t)sizeof(float))) / TILE_ALIGN * TILE_ALIGN;
            if (piece < TILE_ALIGN) piece = TILE_ALIGN;
            if (piece > cn) piece = cn;
        }
        float *bufs = px_malloc((size_t)nt * (size_t)(piece * K) * sizeof(float), "linear weight panel");
        if (!bufs) return -1;
        int entered = nt > 1 ? px_blas_enter() : 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
        {
#ifdef _OPENMP
            float *buf = bufs + (size_t)omp_get_thread_num() * (size_t)(piece * K);
#else
            float *buf = bufs;
#endif
#pragma omp for schedule(static)
            for (int64_t t = 0; t < tn; t++) {
                int64_t n0 = t * cn, nb = N - n0 < cn ? N - n0 : cn;
                for (int64_t j = 0; j < nb; j += piece) {
                    int64_t jb = nb - j < piece ? nb - j : piece;
                    widen(buf, wh + (n0 + j) * K, (size_t)(jb * K));
                    linear_tile(out + n0 + j, N, in, K, buf, bias ? bias + n0 + j : NULL, M, jb);
                }
            }
        }
        px_blas_leave(entered);
        free(bufs);
        return 0;
    }

    /* Many rows: panels of P rows of w (near-equal parts of N, at most
     * PANEL_BYTES as F32) widened by all threads into one shared buffer, then
     * the (M tile x N tile) products of that panel. */
    int64_t P = PANEL_BYTES / (K * (int64_t)sizeof(float));
    if (P < TILE_ALIGN) P = TILE_ALIGN;
    if (P > N) P = N;
    const int64_t npanel = ceil_div(N, P);
    P = ceil_div(N, npanel);
    float *panel = px_malloc((size_t)(P * K) * sizeof(float), "linear weight panel");
    if (!panel) return -1;
    const int64_t cn = tile_cols(M, P), tn = ceil_div(P, cn);
    int entered = nt > 1 ? px_blas_enter() : 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    for (int64_t p0 = 0; p0 < N; p0 += P) {
        const int64_t pb = N - p0 < P ? N - p0 : P;
        /* rows of the panel in blocks of 16 (an even split of the copy) */
#pragma omp for schedule(static)
        for (int64_t r0 = 0; r0 < pb; r0 += 16) {
            int64_t rb = pb - r0 < 16 ? pb - r0 : 16;
            widen(panel + r0 * K, wh + (p0 + r0) * K, (size_t)(rb * K));
        }
        /* implicit barrier: the panel is complete */
#pragma omp for schedule(static)
        for (int64_t t = 0; t < tm * tn; t++) {
            int64_t m0 = (t / tn) * rm, n0 = (t % tn) * cn;
            int64_t mb = M - m0 < rm ? M - m0 : rm;
            if (n0 >= pb) continue; /* the last panel may be narrower */
            int64_t nb = pb - n0 < cn ? pb - n0 : cn;
            linear_tile(out + m0 * N + p0 + n0, N, in + m0 * K, K, panel + n0 * K,
                        bias ? bias + p0 + n0 : NULL, mb, nb);
        }
        /* implicit barrier: done with the panel before it is overwritten */
    }
    px_blas_leave(entered);
    free(panel);
    return 0;
}
