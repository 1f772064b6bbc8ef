/* Multi-head scaled-dot-product attention (diffusers AttnProcessor /
 * transformers T5Attention semantics), with optional additive biases.
 *
 * px_attention_ref is the specification: one query row at a time, scores for
 * all keys, exact two-pass softmax, weighted sum of values.
 *
 * px_attention is the fast path, a fused ("flash") attention: for one
 * (batch, head) it packs K^T and V once, then for each block of query rows
 * walks the keys in tiles. Per tile and 4 query rows, the attn_qk micro-kernel
 * computes the scores S = scale Q K^T, an online softmax keeps a running max
 * m and running sum l per row and turns S into P = exp(S - m) in place, and
 * the attn_pv micro-kernel rescales the output rows and accumulates P V
 * (O = O exp(m_old - m_new) + P V). The scores never leave L1 and nothing is
 * repacked per tile; memory is O(Nk * D) per thread for the packed K and V.
 * A row's result depends only on the key tiling, not on which rows share a
 * block or which thread runs it, so it is the same for any thread count.
 * The panel widths of the packing belong to the micro-kernels
 * (px_kernels.attn_kp, attn_vp: 24 for the reference, AVX2 and NEON; 64 keys
 * and 16 columns for AVX-512); AVX2 and AVX-512 compute every score and
 * output element as the same chain of operations, so they give the same bits.
 * Timings: doc/performance.md, doc/dit.md. */
#include "ops.h"
#include "tensor/error.h"

#include <math.h>
#include <stdint.h>
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

/* Query rows per block and keys per tile (a multiple of every ISA's K panel
 * width, 24 and 64). The packed K and V tiles, KT x (dk + dv) floats (221 KiB
 * for a head of 72 with 24-wide panels, 233 KiB with AVX-512's), stay in L2
 * while every 4-row strip of the block uses them; a strip's own rows of Q and
 * O (2.4 KiB) are touched once per tile, so they may as well come from L3.
 * A larger block reuses each K/V tile fetched from L3 over more rows: at N =
 * 4096, QB = 256 took 5-15 % less time than 64 with the AVX-512 kernels
 * (one thread; 128 and 512 in between). The key tiling is the same for
 * every ISA, so the online softmax rescales at the same keys everywhere. */
enum { QB = 256, KT = 384, ALIGN = 64 };

static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

/* The packing layout of the active micro-kernels (px_k.attn_kp/attn_vp). */
typedef struct {
    size_t kp, vp; /* keys per K^T panel, columns per V panel */
    size_t dk;     /* depth of the dot products: the head size D */
    size_t dv;     /* D rounded up to a multiple of vp: row stride of O */
    size_t nkp;    /* Nk rounded up to a multiple of kp */
} attn_layout;

typedef struct {
    float *Kp;   /* nkp / kp panels of dk x kp: K^T, zero-padded keys */
    float *Vp;   /* dv / vp panels of nkp rows x vp columns: V, zero-padded */
    float *Qb;   /* QB x dk: the query block */
    float *Ob;   /* QB x dv: its unnormalised output */
    float *S;    /* 4 x KT: scores, then probabilities, of one strip */
    float *m, *l; /* QB: running max and sum per row */
} attn_scratch;

/* Copy head h of batch b of K (as K^T panels) and V (as column panels),
 * zero-padded; returns the V panel stride. K is transposed one panel at a
 * time with the keys innermost: each load of a dimension d touches kp rows
 * (kp independent cache misses in flight at d = 0, the rest of those rows
 * then come from L1) and the stores run along the panel. Copying row by row
 * instead (contiguous loads, stores kp floats apart) waited on one K row at
 * a time: ~8 % of the perf samples of an N = 1024 attention, ~2 % this way
 * (doc/performance.md). V is copied row by row (each row read once), and
 * only the padding is zeroed, not the whole buffers. */
static size_t pack_kv(attn_scratch *w, const attn_layout *L, const float *k, const float *v, const px_attn_args *a,
                      int64_t ks, int64_t vs, int64_t b, int64_t h)
{
    const int64_t Nk = a->Nk, D = a->D;
    const size_t kp = L->kp, vp = L->vp, vstride = L->nkp * vp, dk = L->dk;
    const float *k0 = k + b * Nk * ks + h * D, *v0 = v + b * Nk * vs + h * D;
    for (size_t j0 = 0; j0 < (size_t)Nk; j0 += kp) {
        const size_t nj = (size_t)Nk - j0 < kp ? (size_t)Nk - j0 : kp;
        float *panel = w->Kp + j0 * dk;
        const float *kj = k0 + (int64_t)j0 * ks;
        for (size_t d = 0; d < dk; d++) {
            float *dst = panel + d * kp;
            for (size_t jj = 0; jj < nj; jj++) dst[jj] = kj[(int64_t)jj * ks + (int64_t)d];
            for (size_t jj = nj; jj < kp; jj++) dst[jj] = 0.0f;
        }
    }
    for (int64_t j = 0; j < Nk; j++) {
        const float *vj = v0 + j * vs;
        for (int64_t d0 = 0; d0 < D; d0 += (int64_t)vp) {
            float *dst = w->Vp + (size_t)d0 / vp * vstride + (size_t)j * vp;
            const int64_t n = D - d0 < (int64_t)vp ? D - d0 : (int64_t)vp;
            memcpy(dst, vj + d0, (size_t)n * sizeof(float));
            if (n < (int64_t)vp) memset(dst + n, 0, (vp - (size_t)n) * sizeof(float));
        }
    }
    for (size_t d0 = 0; d0 < L->dv; d0 += vp)
        memset(w->Vp + d0 / vp * vstride + (size_t)Nk * vp, 0, (L->nkp - (size_t)Nk) * vp * sizeof(float));
    return vstride;
}

/* Online-softmax update of 4 rows of a strip (rows i0..i0+3 of the query
 * block; rows >= nrow are padding) for keys [j0, j0 + nk): adds the biases,
 * turns S into P = exp(S - m_new) in place and returns alpha = exp(m_old -
 * m_new) per row. */
static void softmax_strip(attn_scratch *w, float *alpha, const px_attn_args *a, int64_t b, int64_t h,
                          int64_t qrow0, int64_t i0, int64_t nrow, int64_t j0, int64_t nk)
{
    const int64_t Nq = a->Nq, Nk = a->Nk;
    for (int64_t r = 0; r < 4; r++) {
        float *s = w->S + r * KT;
        int64_t i = i0 + r;
        if (i >= nrow) {
            /* padding row of the last block: contributes nothing anywhere */
            memset(s, 0, (size_t)nk * sizeof(float));
            alpha[r] = 1.0f;
            continue;
        }
        if (a->key_bias) px_k.add(s, s, a->key_bias + b * Nk + j0, (size_t)nk);
        if (a->score_bias) px_k.add(s, s, a->score_bias + (h * Nq + qrow0 + i) * Nk + j0, (size_t)nk);
        float mx = px_k.max(s, (size_t)nk);
        if (w->m[i] > mx) mx = w->m[i];
        float sum = 0.0f;
        alpha[r] = 1.0f;
        if (mx == -INFINITY) {
            /* every score so far is -inf: nothing to add yet */
            memset(s, 0, (size_t)nk * sizeof(float));
        } else {
            sum = px_k.exp_sum(s, s, mx, (size_t)nk);
            alpha[r] = expf(w->m[i] - mx); /* 0 on the first finite tile (m = -inf) */
        }
        w->l[i] = w->l[i] * alpha[r] + sum;
        w->m[i] = mx;
    }
}

#if defined(__GNUC__)
#define PREFETCH(p, rw) __builtin_prefetch((p), (rw), 3)
#else
#define PREFETCH(p, rw) ((void)(p))
#endif

/* Asks for the cache lines of one row of D floats (rw 1: to be written). */
static void prefetch_row(const float *row, int64_t D, int rw)
{
    const char *c = (const char *)row, *end = (const char *)(row + D) - 1;
    for (; c < end; c += 64) {
        if (rw) PREFETCH(c, 1);
        else PREFETCH(c, 0);
    }
    if (rw) PREFETCH(end, 1);
    else PREFETCH(end, 0);
}

/* During the last key tile of a block, strip i0 asks for its 4 output rows
 * (written when the block ends) and the next block's 4 query rows (copied
 * when it starts): rows H*D floats apart, a cache miss each, which the
 * output stores and the copy of Q otherwise waited on (a few per cent of an
 * N = 1024 attention in perf). */
static void prefetch_rows(const float *out, const float *q, const px_attn_args *a, int64_t qs, int64_t os,
                          int64_t b, int64_t h, int64_t qrow0, int64_t i0, int64_t nrow)
{
    const int64_t Nq = a->Nq, D = a->D;
    for (int64_t i = i0; i < i0 + 4 && i < nrow; i++) {
        prefetch_row(out + (b * Nq + qrow0 + i) * os + h * D, D, 1);
        if (qrow0 + QB + i < Nq) prefetch_row(q + (b * Nq + qrow0 + QB + i) * qs + h * D, D, 0);
    }
}

/* Query rows [qrow0, qrow0 + nrow) (nrow <= QB) of head h of batch b, with K
 * and V already packed in w. */
static void attend_block(float *out, const float *q, const px_attn_args *a, int64_t qs, int64_t os, int64_t b,
                         int64_t h, int64_t qrow0, int64_t nrow, const attn_layout *L, size_t vstride,
                         attn_scratch *w)
{
    const int64_t Nq = a->Nq, Nk = a->Nk, D = a->D;
    const size_t dk = L->dk, dv = L->dv;
    const int64_t nr4 = (nrow + 3) / 4 * 4;
    for (int64_t i = 0; i < nr4; i++) {
        float *qd = w->Qb + (size_t)i * dk;
        if (i < nrow) memcpy(qd, q + (b * Nq + qrow0 + i) * qs + h * D, (size_t)D * sizeof(float));
        else memset(qd, 0, dk * sizeof(float));
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    memset(w->Ob, 0, (size_t)nr4 * dv * sizeof(float));
    for (int64_t j0 = 0; j0 < Nk; j0 += KT) {
        const int64_t nk = Nk - j0 < KT ? Nk - j0 : KT;
        const size_t np = round_up((size_t)nk, L->kp) / L->kp;
        const float *Kt = w->Kp + (size_t)j0 * dk, *Vt = w->Vp + (size_t)j0 * L->vp;
        const int last = j0 + KT >= Nk;
        for (int64_t i0 = 0; i0 < nrow; i0 += 4) {
            float alpha[4];
            if (last) prefetch_rows(out, q, a, qs, os, b, h, qrow0, i0, nrow);
            px_k.attn_qk(w->S, KT, w->Qb + (size_t)i0 * dk, Kt, dk, np, a->scale);
            softmax_strip(w, alpha, a, b, h, qrow0, i0, nrow, j0, nk);
            px_k.attn_pv(w->Ob + (size_t)i0 * dv, alpha, w->S, KT, Vt, vstride, (size_t)nk, dv);
        }
    }
    /* out = O / l; the cache lines of these rows (H*D floats apart) were
     * asked for by prefetch_rows during the last key tile */
    for (int64_t i = 0; i < nrow; i++) {
        const float inv = 1.0f / w->l[i];
        float *dst = out + (b * Nq + qrow0 + i) * os + h * D;
        const float *o = w->Ob + (size_t)i * dv;
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
    if (Nk <= 0) return px_fail("attention: no keys (Nk = %lld)", (long long)Nk);
    attn_layout L = { .kp = px_k.attn_kp, .vp = px_k.attn_vp, .dk = (size_t)D };
    if (KT % L.kp) return px_fail("attention: key tile %d is not a multiple of the panel width %zu", KT, L.kp);
    L.dv = round_up((size_t)D, L.vp);
    L.nkp = round_up((size_t)Nk, L.kp);
    const int64_t nqb = (Nq + QB - 1) / QB;
    /* Work items: (batch, head, range of query blocks). K and V are packed
     * once per item, so ranges are as long as possible: one per head unless
     * there are too few heads to give every thread ~4 items. */
    int nt = 4.0 * (double)(B * H) * (double)Nq * (double)Nk * (double)D < 2e6 ? 1 : px_get_num_threads();
    int64_t split = (4 * (int64_t)nt + B * H - 1) / (B * H);
    if (split > nqb) split = nqb;
    if (split < 1) split = 1;
    const int64_t blocks_per = (nqb + split - 1) / split, items = B * H * split;
    if (nt > items) nt = (int)items;
    /* per thread, each piece starting on a cache line */
    const size_t fl = ALIGN / sizeof(float), kn = round_up(L.nkp * L.dk, fl), vn = round_up(L.nkp * L.dv, fl);
    const size_t qn = round_up((size_t)QB * L.dk, fl), on = round_up((size_t)QB * L.dv, fl);
    const size_t per = round_up(kn + vn + qn + on + 4 * (size_t)KT + 2 * (size_t)QB, fl);
    float *scratch = px_malloc((size_t)nt * per * sizeof(float) + ALIGN, "attention tiles");
    if (!scratch) return -1;
    float *base = (float *)(((uintptr_t)scratch + ALIGN - 1) & ~(uintptr_t)(ALIGN - 1));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        float *mine = base + (size_t)omp_get_thread_num() * per;
#else
        float *mine = base;
#endif
        attn_scratch w;
        w.Kp = mine;
        w.Vp = w.Kp + kn;
        w.Qb = w.Vp + vn;
        w.Ob = w.Qb + qn;
        w.S = w.Ob + on;
        w.m = w.S + 4 * (size_t)KT;
        w.l = w.m + QB;
        /* dynamic: items are equal work, but the machine may not be idle;
         * which thread runs an item never changes what it computes */
#pragma omp for schedule(dynamic, 1)
        for (int64_t it = 0; it < items; it++) {
            const int64_t bh = it / split, b = bh / H, h = bh % H, s0 = (it % split) * blocks_per;
            const size_t vstride = pack_kv(&w, &L, k, v, a, ks, vs, b, h);
            for (int64_t qb = s0; qb < s0 + blocks_per && qb < nqb; qb++) {
                const int64_t r0 = qb * QB, nrow = Nq - r0 < QB ? Nq - r0 : QB;
                attend_block(out, q, a, qs, os, b, h, r0, nrow, &L, vstride, &w);
            }
        }
    }
    free(scratch);
    return 0;
}
