/* The operators the models are written in.
 *
 * Each op has a scalar reference implementation (ops/ref.c and the *_ref
 * functions: the specification, never deleted) and, where it matters for
 * speed, AVX2 / AVX-512 / NEON kernels beside it. The per-row kernels live in
 * a function table (px_kernels) that is filled once at start-up from CPU
 * detection, the reference first and then whatever the CPU supports
 * (xiph/opus x86_celt_map.c pattern). PIXART_FORCE_REF=1 keeps the reference
 * everywhere, GEMM and convolution included (no OpenBLAS call);
 * PIXART_ISA=ref|avx2|avx512|neon chooses a variant the CPU supports.
 *
 * Threads: OpenMP over independent rows/channels only, never a reduction
 * whose order depends on the thread count, so results are bit-identical for
 * any number of threads (OpenBLAS sgemm splits M and N, not K).
 *
 * Layout conventions: activations are contiguous float32 in PyTorch order;
 * "rows" are the last dimension. Weights are px_tensor views (F32/F16/BF16). */
#ifndef PX_OPS_H
#define PX_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

/* ---- runtime CPU dispatch -------------------------------------------- */

typedef enum { PX_ISA_REF = 0, PX_ISA_AVX2, PX_ISA_AVX512, PX_ISA_NEON, PX_ISA_COUNT } px_isa;

/* Row kernels: every pointer is always valid (the reference fills all). */
typedef struct {
    /* y[i] = f(x[i]); y may equal x */
    void (*gelu_tanh)(float *y, const float *x, size_t n);
    void (*gelu_erf)(float *y, const float *x, size_t n);
    void (*silu)(float *y, const float *x, size_t n);
    /* y = a + b, y = a * b (y may alias a or b) */
    void (*add)(float *y, const float *a, const float *b, size_t n);
    void (*mul)(float *y, const float *a, const float *b, size_t n);
    /* y = x * (1 + scale) + shift  (adaLN modulate) */
    void (*modulate)(float *y, const float *x, const float *shift, const float *scale, size_t n);
    /* one row of LayerNorm: w, b may be NULL (no affine) */
    void (*layernorm)(float *y, const float *x, const float *w, const float *b, size_t n, float eps);
    /* one row of T5 RMSNorm: y = w * x / sqrt(mean(x^2) + eps) */
    void (*rmsnorm)(float *y, const float *x, const float *w, size_t n, float eps);
    /* in-place softmax of one row */
    void (*softmax)(float *x, size_t n);
    /* half-precision widening (exact) */
    void (*bf16_to_f32)(float *y, const uint16_t *x, size_t n);
    void (*f16_to_f32)(float *y, const uint16_t *x, size_t n);
    /* ---- row reductions for the attention softmax and GroupNorm ---- */
    /* max_i x[i]; NaNs are skipped, -INFINITY when n == 0 */
    float (*max)(const float *x, size_t n);
    /* y[i] = exp(x[i] - c), returns sum_i y[i] (float; y may equal x) */
    float (*exp_sum)(float *y, const float *x, float c, size_t n);
    /* sum_i x[i] and sum_i (x[i] - mean)^2, accumulated in double */
    double (*sum)(const float *x, size_t n);
    double (*sumsq_dev)(const float *x, double mean, size_t n);
    /* y[i] = (x[i] - mean) * rstd * w + b, evaluated in that order (GroupNorm) */
    void (*norm_affine)(float *y, const float *x, float mean, float rstd, float w, float b, size_t n);
    /* ---- attention micro-kernels (ops/attention.c), 4 query rows at a time ----
     * They read K and V packed in panels whose widths are part of the table
     * (attn_kp, attn_vp below): the reference, AVX2 and NEON use PX_ATTN_KP
     * for both, AVX-512 its own (ops/simd_avx512.c).
     * Q: 4 rows of dk floats (row stride dk). Kp: np panels of attn_kp keys,
     * each dimension-major (panel[d][j] = k_j[d], dk x attn_kp floats).
     * S (4 rows, stride lds) = scale * (Q . k_j), 4 x (np * attn_kp); each dot
     * product is summed in increasing d. */
    void (*attn_qk)(float *S, size_t lds, const float *Q, const float *Kp, size_t dk, size_t np, float scale);
    /* O (4 rows of dv, stride dv; dv a multiple of attn_vp) = O[r] * alpha[r]
     * + sum_{j < nk} P[r][j] v_j, P rows of stride ldp; V in dv / attn_vp
     * column panels, panel c at Vp + c * vstride holding row j's columns
     * [c attn_vp, (c + 1) attn_vp) at j * attn_vp. The sum runs in increasing
     * j, starting from O * alpha. */
    void (*attn_pv)(float *O, const float *alpha, const float *P, size_t ldp, const float *Vp, size_t vstride,
                    size_t nk, size_t dv);
    /* keys per K^T panel and columns per V panel of the two kernels above */
    size_t attn_kp, attn_vp;
} px_kernels;

/* Keys per packed K^T panel and columns per packed V panel of the reference,
 * AVX2 and NEON attention micro-kernels (3 AVX2 vectors). */
#define PX_ATTN_KP 24

/* The active table (after px_ops_init). */
extern px_kernels px_k;

/* Chooses the best supported ISA (or the reference when PIXART_FORCE_REF=1)
 * and reads PIXART_NUM_THREADS. Idempotent; called by every public entry point
 * that needs it, and safe to call from main. */
void px_ops_init(void);
px_isa px_ops_isa(void);
/* The ISA px_ops_init chooses (PIXART_FORCE_REF, PIXART_ISA, the CPU), without
 * initialising anything (no thread pool: callable before fork). */
px_isa px_ops_default_isa(void);
const char *px_isa_name(px_isa isa);
/* 1 when this build has kernels for isa and this CPU can run them. */
int px_isa_supported(px_isa isa);
/* Force a variant (tests, benchmarks). -1 when unsupported. */
int px_ops_select(px_isa isa);
/* A table for one ISA without activating it (tests compare variants). */
int px_kernels_for(px_isa isa, px_kernels *out);

/* Fillers per ISA (each overrides the entries it implements). */
void px_kernels_init_ref(px_kernels *k);
void px_kernels_init_avx2(px_kernels *k);
void px_kernels_init_avx512(px_kernels *k);
void px_kernels_init_neon(px_kernels *k);

/* ---- large activation buffers ---------------------------------------- */
/* Like px_malloc (freed with free(); NULL and px_last_error on failure), for
 * activations of a few MiB and more: from PX_HUGE_BYTES on, the block is
 * aligned to and rounded up to 2 MiB and, on Linux, marked MADV_HUGEPAGE, so
 * that with transparent huge pages in "madvise" mode it is mapped with 2 MiB
 * pages ("always" does so anyway, "never" not at all). The attention and the GEMM read rows thousands of
 * floats apart (one 4 KiB page per row); with 2 MiB pages those reads stop
 * missing the TLB (doc/performance.md, "AMD Zen 5"). Only speed changes. */
enum { PX_HUGE_BYTES = 2 << 20 };
void *px_malloc_huge(size_t n, const char *what);

/* ---- threads ---------------------------------------------------------- */
void px_set_num_threads(int n);
int px_get_num_threads(void);

/* ---- OpenBLAS's kernels (ops/blas.c) ---------------------------------- */

/* openblas_get_corename(): the kernels OpenBLAS chose ("SkylakeX",
 * "Haswell", "Prescott", ...). */
const char *px_blas_core(void);
/* The core OpenBLAS should run on this CPU when its own choice is older
 * (e.g. "Prescott" on an AVX-512 CPU its version does not know): "SkylakeX"
 * on AVX-512, "Haswell" (Intel) or "Zen" (AMD) on AVX2; NULL when its choice
 * is one of those or newer, or the CPU has neither. */
const char *px_blas_wanted_core(void);
/* px_blas_fix_core(argv) (public, include/pixart/pixart.h): re-executes the
 * program with OPENBLAS_CORETYPE = px_blas_wanted_core() when that is not NULL
 * and the user did not set it. */

/* ---- GEMM ------------------------------------------------------------- */

/* nn.Linear: out (M, N) = in (M, K) @ w^T + bias, w (N, K) F32/F16/BF16,
 * bias (N) or NULL. Half-precision weights are never copied whole: with AVX2
 * or AVX-512 and M > 256 (and always with the reference ISA, through its
 * scalar kernels) the blocked GEMM (ops/gemm_blocked.c) widens them while packing
 * its weight micro-panels; otherwise cblas_sgemm runs on cache-sized widened
 * panels of rows (ops/gemm.c). Half-precision weights give the same bits as
 * F32 weights holding the same rounded values. Returns -1 on OOM. */
int px_linear(float *out, const float *in, const px_tensor *w, const float *bias, int64_t M);

/* Row-major F32 GEMM: C = alpha * op(A) @ op(B) + beta * C (cblas_sgemm;
 * px_sgemm_ref, a scalar fmaf chain over k per element, when the active ISA
 * is the reference). */
void px_sgemm(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
              const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
              int64_t ldc);
void px_sgemm_ref(int trans_a, int trans_b, int64_t M, int64_t N, int64_t K, float alpha,
                  const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                  int64_t ldc);

/* ---- elementwise and norms (threaded over rows) ----------------------- */

void px_gelu_tanh(float *y, const float *x, int64_t n);
void px_gelu_erf(float *y, const float *x, int64_t n);
void px_silu(float *y, const float *x, int64_t n);
void px_add(float *y, const float *a, const float *b, int64_t n);
void px_mul(float *y, const float *a, const float *b, int64_t n);
/* y (rows, C) = x * (1 + scale) + shift with shift/scale (C) shared by all rows */
void px_modulate(float *y, const float *x, const float *shift, const float *scale, int64_t rows,
                 int64_t C);
/* y (rows, C) += bias (C) */
void px_add_bias(float *y, const float *bias, int64_t rows, int64_t C);
void px_layernorm(float *y, const float *x, const float *w, const float *b, int64_t rows, int64_t C,
                  float eps);
void px_rmsnorm(float *y, const float *x, const float *w, int64_t rows, int64_t C, float eps);
void px_softmax(float *x, int64_t rows, int64_t n);
/* GroupNorm over x (B, C, HW): G groups of C/G channels; w, b (C) or NULL. */
void px_groupnorm(float *y, const float *x, const float *w, const float *b, int64_t B, int64_t C,
                  int64_t HW, int64_t G, float eps);

/* ---- convolution and resampling -------------------------------------- */

/* nn.Conv2d with square kernel k, stride s, zero padding p (k=3,s=1,p=1;
 * k=1; and the patch-embedding conv with k=s, p=0):
 * out (B, Cout, Ho, Wo) = conv(in (B, Cin, H, W), w (Cout, Cin, k, k)) + bias (Cout).
 * Ho = (H + 2p - k)/s + 1. Returns -1 on OOM. */
int px_conv2d(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
              int64_t Cin, int64_t H, int64_t W, int64_t Cout, int k, int s, int p);
int px_conv2d_ref(float *out, const float *in, const px_tensor *w, const float *bias, int64_t B,
                  int64_t Cin, int64_t H, int64_t W, int64_t Cout, int k, int s, int p);

/* F.interpolate(scale_factor=2, mode="nearest"): out (B, C, 2H, 2W). */
void px_upsample_nearest2x(float *out, const float *in, int64_t B, int64_t C, int64_t H, int64_t W);

/* ---- attention ------------------------------------------------------- */

/* Multi-head scaled-dot-product attention.
 * q: (B, Nq, H*D) rows of stride q_stride (0 -> H*D), head h at columns [h*D, (h+1)*D)
 * k, v: (B, Nk, H*D) rows of stride k_stride / v_stride
 * out: (B, Nq, H*D) rows of stride o_stride
 * scores[b,h,i,j] = scale * q.k + key_bias[b, j] + score_bias[h, i, j]
 * out = softmax_j(scores) @ v.
 * key_bias (B, Nk): additive key mask (e.g. -10000 for padding), or NULL.
 * score_bias (H, Nq, Nk): e.g. T5's relative position bias, or NULL. */
typedef struct {
    int64_t B, Nq, Nk, H, D;
    float scale;
    const float *key_bias;
    const float *score_bias;
    int64_t q_stride, k_stride, v_stride, o_stride;
} px_attn_args;

/* Tiled over keys with an online (running max / running sum) softmax:
 * memory O(tile * (Nq-block + D)), never the full Nq x Nk matrix. */
int px_attention(float *out, const float *q, const float *k, const float *v, const px_attn_args *a);
/* The reference: one query row at a time, exact two-pass softmax. */
int px_attention_ref(float *out, const float *q, const float *k, const float *v, const px_attn_args *a);

#endif
