/* Multi-head scaled-dot-product attention (diffusers AttnProcessor /
 * transformers T5Attention semantics), with optional additive biases.
 *
 * px_attention_ref is the specification: one query row at a time, scores for
 * all keys, exact two-pass softmax, weighted sum of values.
 *
 * px_attention is the fast path: for each (batch, head) and block of query
 * rows it walks the keys in tiles; S = Q K^T per tile through sgemm, an online
 * softmax keeps a running max m and running sum l per row, and the output
 * block is rescaled and accumulated (O = O * exp(m_old - m_new) + P V). Memory
 * is O(QB * KB + QB * D) per thread, never the full Nq x Nk matrix. Each
 * (batch, head, query block) is one work item computed start to end by one
 * thread with single-threaded sgemm calls (ops/gemm.c), so results do not
 * depend on the thread count. Timings: doc/performance.md. */
#include "gemm_internal.h"
#include "ops.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static void resolve_strides(const px_attn_args *a, int64_t *qs, int64_t *ks, int64_t *vs, int64_t *os)
{
    int64_t hd = a->H * a->D;
    *qs = a->q_stride ? a->q_stride : hd;
    *ks = a->k_stride ? a->k_stride : hd;
    *vs = a->v_stride ? a->v_stride : hd;
    *os = a->o_stride ? a->o_stride : hd;
}

int px_attention_ref(float *out, const float *q, const float *k, const float *v, const px_attn_args *a)
{
    int64_t qs, ks, vs, os;
    resolve_strides(a, &qs, &ks, &vs, &os);
    const int64_t B = a->B, Nq = a->Nq, Nk = a->Nk, H = a->H, D = a->D;
    float *p = px_malloc((size_t)Nk * sizeof(float), "attention scores");
    if (!p) return -1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < Nq; i++) {
                const float *qi = q + (b * Nq + i) * qs + h * D;
                for (int64_t j = 0; j < Nk; j++) {
                    const float *kj = k + (b * Nk + j) * ks + h * D;
                    double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (double)qi[d] * kj[d];
                    float sc = a->scale * (float)dot;
                    if (a->key_bias) sc += a->key_bias[b * Nk + j];
                    if (a->score_bias) sc += a->score_bias[(h * Nq + i) * Nk + j];
                    p[j] = sc;
                }
                float mx = -INFINITY;
                for (int64_t j = 0; j < Nk; j++) mx = p[j] > mx ? p[j] : mx;
                double sum = 0;
                for (int64_t j = 0; j < Nk; j++) {
                    p[j] = expf(p[j] - mx);
                    sum += p[j];
                }
                float *oi = out + (b * Nq + i) * os + h * D;
                for (int64_t d = 0; d < D; d++) {
                    double acc = 0;
                    for (int64_t j = 0; j < Nk; j++) acc += (double)p[j] * v[(b * Nk + j) * vs + h * D + d];
                    oi[d] = (float)(acc / sum);
                }
            }
    free(p);
    return 0;
}

// ----------------------------------------------------------------------------
// fast path

/* Query rows per work item and keys per tile: the score tile (QB x KB), the
 * output block (QB x D) and the K/V tiles stay in L2 for D <= 128. Fixed, so
 * the result does not depend on the number of threads. */
enum { QB = 128, KB = 512 };

/* One work item: query rows [i0, i0 + nq) of head h of batch b. */
static void attend_block(float *out, const float *q, const float *k, const float *v, const px_attn_args *a,
                         int64_t qs, int64_t ks, int64_t vs, int64_t os, int64_t b, int64_t h, int64_t i0,
                         int64_t nq, float *S, float *O, float *m, float *l)
{
    const int64_t Nq = a->Nq, Nk = a->Nk, D = a->D;
    const float *Q = q + (b * Nq + i0) * qs + h * D;
    for (int64_t i = 0; i < nq; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    memset(O, 0, (size_t)(nq * D) * sizeof(float));
    for (int64_t j0 = 0; j0 < Nk; j0 += KB) {
        const int64_t nk = Nk - j0 < KB ? Nk - j0 : KB;
        const float *K = k + (b * Nk + j0) * ks + h * D;
        const float *V = v + (b * Nk + j0) * vs + h * D;
        /* S (nq, nk) = scale * Q K^T */
        px_sgemm1(0, 1, nq, nk, D, a->scale, Q, qs, K, ks, 0.0f, S, nk);
        for (int64_t i = 0; i < nq; i++) {
            float *s = S + i * nk;
            if (a->key_bias) px_k.add(s, s, a->key_bias + b * Nk + j0, (size_t)nk);
            if (a->score_bias) px_k.add(s, s, a->score_bias + (h * Nq + i0 + i) * Nk + j0, (size_t)nk);
            /* online softmax: new running max, rescale what was summed so far */
            float mx = px_k.max(s, (size_t)nk);
            if (m[i] > mx) mx = m[i];
            float sum = 0.0f, alpha = 1.0f;
            if (mx == -INFINITY) {
                /* every score so far is -inf: nothing to add yet */
                memset(s, 0, (size_t)nk * sizeof(float));
            } else {
                sum = px_k.exp_sum(s, s, mx, (size_t)nk);
                alpha = expf(m[i] - mx); /* 0 on the first finite tile (m = -inf) */
            }
            l[i] = l[i] * alpha + sum;
            m[i] = mx;
            if (alpha != 1.0f) {
                float *o = O + i * D;
                for (int64_t d = 0; d < D; d++) o[d] *= alpha;
            }
        }
        /* O (nq, D) += P (nq, nk) @ V (nk, D) */
        px_sgemm1(0, 0, nq, D, nk, 1.0f, S, nk, V, vs, 1.0f, O, D);
    }
    for (int64_t i = 0; i < nq; i++) {
        float inv = 1.0f / l[i];
        float *dst = out + (b * Nq + i0 + i) * os + h * D;
        const float *o = O + i * D;
        for (int64_t d = 0; d < D; d++) dst[d] = o[d] * inv;
    }
}

int px_attention(float *out, const float *q, const float *k, const float *v, const px_attn_args *a)
{
    px_ops_init();
    int64_t qs, ks, vs, os;
    resolve_strides(a, &qs, &ks, &vs, &os);
    const int64_t B = a->B, Nq = a->Nq, Nk = a->Nk, H = a->H, D = a->D;
    if (B <= 0 || Nq <= 0 || H <= 0 || D <= 0) return 0;
    const int64_t nqb = (Nq + QB - 1) / QB, items = B * H * nqb;
    /* work items (batch, head, block of query rows), spread over the threads */
    int nt = 4.0 * (double)(B * H) * (double)Nq * (double)Nk * (double)D < 2e6 ? 1 : px_get_num_threads();
    if (nt > items) nt = (int)items;
    const size_t per = (size_t)QB * KB + (size_t)QB * (size_t)D + 2 * (size_t)QB;
    float *scratch = px_malloc((size_t)nt * per * sizeof(float), "attention tiles");
    if (!scratch) return -1;
    int entered = nt > 1 ? px_blas_enter() : 0;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        float *S = scratch + (size_t)omp_get_thread_num() * per;
#else
        float *S = scratch;
#endif
        float *O = S + (size_t)QB * KB, *m = O + (size_t)QB * (size_t)D, *l = m + QB;
        /* dynamic: items are equal work, but the machine may not be idle;
         * which thread runs an item never changes what it computes */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            int64_t b = it / (H * nqb), h = (it / nqb) % H, i0 = (it % nqb) * QB;
            int64_t nq = Nq - i0 < QB ? Nq - i0 : QB;
            attend_block(out, q, k, v, a, qs, ks, vs, os, b, h, i0, nq, S, O, m, l);
        }
    }
    px_blas_leave(entered);
    free(scratch);
    return 0;
}
