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
 * is O(QB * KB + QB * D), never the full Nq x Nk matrix. */
#include "ops.h"
#include "tensor/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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

enum { QB = 256, KB = 512 };

int px_attention(float *out, const float *q, const float *k, const float *v, const px_attn_args *a)
{
    px_ops_init();
    int64_t qs, ks, vs, os;
    resolve_strides(a, &qs, &ks, &vs, &os);
    const int64_t B = a->B, Nq = a->Nq, Nk = a->Nk, H = a->H, D = a->D;
    float *S = px_malloc((size_t)QB * KB * sizeof(float), "attention score tile");
    float *O = px_malloc((size_t)QB * D * sizeof(float), "attention output block");
    float *m = px_malloc((size_t)QB * sizeof(float), "attention running max");
    float *l = px_malloc((size_t)QB * sizeof(float), "attention running sum");
    float *alpha = px_malloc((size_t)QB * sizeof(float), "attention rescale");
    if (!S || !O || !m || !l || !alpha) {
        free(S); free(O); free(m); free(l); free(alpha);
        return -1;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i0 = 0; i0 < Nq; i0 += QB) {
                const int64_t nq = Nq - i0 < QB ? Nq - i0 : QB;
                const float *Q = q + (b * Nq + i0) * qs + h * D;
                for (int64_t i = 0; i < nq; i++) { m[i] = -INFINITY; l[i] = 0.0f; }
                memset(O, 0, (size_t)(nq * D) * sizeof(float));
                for (int64_t j0 = 0; j0 < Nk; j0 += KB) {
                    const int64_t nk = Nk - j0 < KB ? Nk - j0 : KB;
                    const float *K = k + (b * Nk + j0) * ks + h * D;
                    const float *V = v + (b * Nk + j0) * vs + h * D;
                    /* S (nq, nk) = scale * Q K^T */
                    px_sgemm(0, 1, nq, nk, D, a->scale, Q, qs, K, ks, 0.0f, S, nk);
#pragma omp parallel for schedule(static) if (nq * nk > 16384)
                    for (int64_t i = 0; i < nq; i++) {
                        float *s = S + i * nk;
                        if (a->key_bias) px_k.add(s, s, a->key_bias + b * Nk + j0, (size_t)nk);
                        if (a->score_bias)
                            px_k.add(s, s, a->score_bias + (h * Nq + i0 + i) * Nk + j0, (size_t)nk);
                        float mx = m[i];
                        for (int64_t j = 0; j < nk; j++) mx = s[j] > mx ? s[j] : mx;
                        float sum = 0.0f;
                        for (int64_t j = 0; j < nk; j++) {
                            s[j] = expf(s[j] - mx);
                            sum += s[j];
                        }
                        alpha[i] = expf(m[i] - mx); /* 0 on the first tile (m = -inf) */
                        l[i] = l[i] * alpha[i] + sum;
                        m[i] = mx;
                        float *o = O + i * D;
                        for (int64_t d = 0; d < D; d++) o[d] *= alpha[i];
                    }
                    /* O (nq, D) += P (nq, nk) @ V (nk, D) */
                    px_sgemm(0, 0, nq, D, nk, 1.0f, S, nk, V, vs, 1.0f, O, D);
                }
                for (int64_t i = 0; i < nq; i++) {
                    float inv = 1.0f / l[i];
                    float *dst = out + (b * Nq + i0 + i) * os + h * D;
                    for (int64_t d = 0; d < D; d++) dst[d] = O[i * D + d] * inv;
                }
            }
    free(S); free(O); free(m); free(l); free(alpha);
    return 0;
}
