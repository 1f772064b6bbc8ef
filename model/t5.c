/* T5 v1.1 encoder: transformers T5EncoderModel / T5Stack (modeling_t5.py,
 * transformers e770f03), the text encoder of PixArt-alpha.
 *
 *   h = shared[ids]                                      encoder.embed_tokens
 *   per block i:
 *     x = T5LayerNorm(h)                                 layer.0.layer_norm
 *     h = h + o(attention(q(x), k(x), v(x), bias))       layer.0 (SelfAttention.q/k/v/o)
 *     x = T5LayerNorm(h)                                 layer.1.layer_norm
 *     h = h + wo(gelu_new(wi_0(x)) * wi_1(x))            layer.1 (DenseReluDense.*)
 *   out = T5LayerNorm(h)                                 final_layer_norm
 *
 * Attention scores are q.k with no 1/sqrt(d_kv) scaling, plus the relative
 * position bias that block 0 computes (and every block reuses), plus
 * (1 - mask) * finfo(float32).min on padded keys. Dropout is identity. */
#include "t5.h"

#include "model/module.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


// ----------------------------------------------------------------------------
// config

/* Sizes far beyond any T5 (XXL is 4096/10240/64 heads): they keep every
 * product below int64 and buffer sizes sane for hostile configs. */
#define MAX_DIM (1 << 20)

static int get_size(const px_json *j, const char *key, int64_t *out, int64_t def, int required,
                    const char *path)
{
    int r = required ? px_json_req_int(j, key, out, path) : px_json_opt_int(j, key, out, path);
    if (r < 0) return -1;
    if (r == 1) *out = def;
    if (*out < 1 || *out > MAX_DIM)
        return px_fail("%s: '%s' = %lld is out of range [1, %d]", path, key, (long long)*out, MAX_DIM);
    return 0;
}

/* Relations between the sizes that the forward pass relies on. */
static int check_config(const px_t5_config *c, const char *what)
{
    const int64_t sizes[6] = { c->vocab_size, c->d_model, c->d_kv, c->num_heads, c->d_ff, c->num_layers };
    for (int i = 0; i < 6; i++)
        if (sizes[i] < 1 || sizes[i] > MAX_DIM) return px_fail("%s: T5 sizes out of range", what);
    if (c->num_heads * c->d_kv > MAX_DIM)
        return px_fail("%s: num_heads * d_kv = %lld is too large", what, (long long)(c->num_heads * c->d_kv));
    /* bidirectional buckets: half per direction, half of those exact */
    if (c->num_buckets < 4 || c->num_buckets > MAX_DIM)
        return px_fail("%s: relative_attention_num_buckets = %lld (at least 4 needed)", what,
                       (long long)c->num_buckets);
    if (c->max_distance <= c->num_buckets / 4 || c->max_distance > MAX_DIM)
        return px_fail("%s: relative_attention_max_distance = %lld must exceed num_buckets/4 = %lld", what,
                       (long long)c->max_distance, (long long)(c->num_buckets / 4));
    if (!(c->eps >= 0 && c->eps < 1)) return px_fail("%s: layer_norm_epsilon = %g is out of range [0, 1)", what, c->eps);
    return 0;
}

int px_t5_config_load(px_t5_config *c, const char *path)
{
    px_json *j = px_json_load_file(path);
    if (!j) return -1;
    int rc = -1;
    if (j->type != PX_JSON_OBJECT) {
        px_fail("%s: not a JSON object", path);
        goto out;
    }
    memset(c, 0, sizeof *c);
    const char *s = NULL;
    if (px_json_opt_string(j, "model_type", &s, path) < 0) goto out;
    if (s && strcmp(s, "t5") != 0) {
        px_fail("%s: model_type '%s' is not supported (expected 't5')", path, s);
        goto out;
    }
    if (get_size(j, "vocab_size", &c->vocab_size, 0, 1, path) ||
        get_size(j, "d_model", &c->d_model, 0, 1, path) ||
        get_size(j, "d_kv", &c->d_kv, 0, 1, path) ||
        get_size(j, "num_heads", &c->num_heads, 0, 1, path) ||
        get_size(j, "d_ff", &c->d_ff, 0, 1, path) ||
        get_size(j, "num_layers", &c->num_layers, 0, 1, path) ||
        get_size(j, "relative_attention_num_buckets", &c->num_buckets, 32, 0, path) ||
        get_size(j, "relative_attention_max_distance", &c->max_distance, 128, 0, path))
        goto out;
    double eps = 1e-6;
    if (px_json_opt_number(j, "layer_norm_epsilon", &eps, path) < 0) goto out;
    if (!(eps >= 0 && eps < 1)) {
        px_fail("%s: layer_norm_epsilon = %g is out of range [0, 1)", path, eps);
        goto out;
    }
    c->eps = (float)eps;
    if (check_config(c, path)) goto out;
    /* T5Config: feed_forward_proj "gated-gelu" means is_gated_act and
     * dense_act_fn "gelu_new"; explicit dense_act_fn / is_gated_act keys
     * override it (PretrainedConfig sets them after T5Config derives them). */
    const char *ff = "relu"; /* T5Config default */
    if (px_json_opt_string(j, "feed_forward_proj", &ff, path) < 0) goto out;
    if (strcmp(ff, "gated-gelu") != 0) {
        px_fail("%s: feed_forward_proj '%s' is not supported (only 'gated-gelu', T5 v1.1)", path, ff);
        goto out;
    }
    const char *act = "gelu_new";
    int gated = 1;
    if (px_json_opt_string(j, "dense_act_fn", &act, path) < 0 ||
        px_json_opt_bool(j, "is_gated_act", &gated, path) < 0)
        goto out;
    if (strcmp(act, "gelu_new") != 0 || !gated) {
        px_fail("%s: dense_act_fn '%s' / is_gated_act %s are not supported (gelu_new, gated)", path,
                act, gated ? "true" : "false");
        goto out;
    }
    rc = 0;
out:
    px_json_free(j);
    return rc;
}

// ----------------------------------------------------------------------------
// weights and run state

typedef struct {
    px_mod m;
    const float *w; /* (d_model) */
} rms_norm;         /* T5LayerNorm: scale only, no mean subtraction, no bias */

typedef struct {
    rms_norm ln0;                     /* layer.0.layer_norm */
    px_lin q, k, v, o;                /* layer.0.SelfAttention: (inner, d_model), o (d_model, inner) */
    px_mod layer0;                    /* layer.0 (T5LayerSelfAttention) output */
    rms_norm ln1;                     /* layer.1.layer_norm */
    px_lin wi_0, wi_1, wo;            /* layer.1.DenseReluDense: (d_ff, d_model), wo (d_model, d_ff) */
    px_mod act;                       /* DenseReluDense.act: gelu_new */
    px_mod layer1;                    /* layer.1 (T5LayerFF) output */
} t5_block;

/* A block's seven matrices, in the order block_forward uses them. */
#define BLOCK_MATS 7
static px_lin *block_mat(t5_block *b, int j)
{
    px_lin *const l[BLOCK_MATS] = { &b->q, &b->k, &b->v, &b->o, &b->wi_0, &b->wi_1, &b->wo };
    return l[j];
}

typedef struct {
    int64_t cap_M, cap_L;
    float *h, *x, *y;        /* (M, d_model): hidden states, normed, sublayer output */
    float *q, *k, *v, *att;  /* (M, inner) */
    float *f0, *f1;          /* (M, d_ff) */
    float *keyb;             /* (M) mask bias */
    float *pos;              /* (H, L, L) position bias */
} t5_run;

struct px_t5 {
    px_t5_config c;
    px_weights *wt;
    const px_tensor *embed; /* shared.weight (vocab, d_model), any float dtype */
    px_mod embed_tokens;    /* encoder.embed_tokens */
    const float *rel_bias;  /* block 0 relative_attention_bias.weight (num_buckets, heads) */
    px_mod rel;             /* encoder.block.0.layer.0.SelfAttention.relative_attention_bias */
    rms_norm final_ln;      /* encoder.final_layer_norm */
    t5_block *blocks;
    px_t5_stream stream;
    void *stage;            /* PX_T5_STREAM_READ: one block's matrices, read from the file */
    size_t stage_size;
    px_tensor staged[BLOCK_MATS]; /* views into stage standing in for the block's matrices */
    t5_run r;
};

static int load_rms(rms_norm *n, px_weights *w, int64_t D, const char *prefix)
{
    px_mod_init(&n->m, w, PX_OUT_ONLY, "%s", prefix);
    return (n->w = px_weights_f32(w, 1, &D, "%s.weight", prefix)) ? 0 : -1;
}

static int load_block(t5_block *b, px_weights *w, const px_t5_config *c, int64_t i)
{
    const int64_t D = c->d_model, I = c->num_heads * c->d_kv, F = c->d_ff;
    char p[96];
    snprintf(p, sizeof p, "encoder.block.%lld", (long long)i);
    char ln[128];
    snprintf(ln, sizeof ln, "%s.layer.0.layer_norm", p);
    if (load_rms(&b->ln0, w, D, ln) ||
        px_lin_load(&b->q, w, I, D, 0, PX_OUT_ONLY, "%s.layer.0.SelfAttention.q", p) ||
        px_lin_load(&b->k, w, I, D, 0, PX_OUT_ONLY, "%s.layer.0.SelfAttention.k", p) ||
        px_lin_load(&b->v, w, I, D, 0, PX_OUT_ONLY, "%s.layer.0.SelfAttention.v", p) ||
        px_lin_load(&b->o, w, D, I, 0, PX_REC_IN, "%s.layer.0.SelfAttention.o", p))
        return -1;
    snprintf(ln, sizeof ln, "%s.layer.1.layer_norm", p);
    if (load_rms(&b->ln1, w, D, ln) ||
        px_lin_load(&b->wi_0, w, F, D, 0, PX_OUT_ONLY, "%s.layer.1.DenseReluDense.wi_0", p) ||
        px_lin_load(&b->wi_1, w, F, D, 0, PX_OUT_ONLY, "%s.layer.1.DenseReluDense.wi_1", p) ||
        px_lin_load(&b->wo, w, D, F, 0, PX_REC_IN, "%s.layer.1.DenseReluDense.wo", p))
        return -1;
    px_mod_init(&b->layer0, w, PX_OUT_ONLY, "%s.layer.0", p);
    px_mod_init(&b->act, w, PX_OUT_ONLY, "%s.layer.1.DenseReluDense.act", p);
    px_mod_init(&b->layer1, w, PX_OUT_ONLY, "%s.layer.1", p);
    return 0;
}

/* The model over w (taken over: closed by px_t5_free, also on failure). */
static px_t5 *t5_build(const px_t5_config *c, px_weights *w)
{
    px_ops_init();
    if (check_config(c, px_weights_desc(w))) {
        px_weights_close(w);
        return NULL;
    }
    px_t5 *m = px_calloc(1, sizeof *m, "t5 model");
    if (!m) {
        px_weights_close(w);
        return NULL;
    }
    m->c = *c;
    m->wt = w;
    m->stream = PX_T5_STREAM_MMAP;
    const int64_t D = c->d_model;
    m->blocks = px_calloc((size_t)c->num_layers, sizeof *m->blocks, "t5 blocks");
    if (!m->blocks) goto fail;

    /* encoder.embed_tokens is tied to shared: transformers saves shared.weight
     * and may save the tied copy too (then it must match); accept either */
    const int64_t es[2] = { c->vocab_size, D };
    px_mod_init(&m->embed_tokens, w, PX_REC_IN, "encoder.embed_tokens");
    if (px_weights_has(w, "shared.weight")) {
        m->embed = px_weights_get(w, 2, es, "shared.weight");
        if (m->embed && px_weights_has(w, "encoder.embed_tokens.weight") &&
            !px_weights_get(w, 2, es, "encoder.embed_tokens.weight"))
            goto fail;
    } else if (px_weights_has(w, "encoder.embed_tokens.weight")) {
        m->embed = px_weights_get(w, 2, es, "encoder.embed_tokens.weight");
    } else {
        px_fail("%s: tensor 'shared.weight' is missing (nor is 'encoder.embed_tokens.weight' there)",
                px_weights_desc(w));
    }
    if (!m->embed) goto fail;

    const char *rel = "encoder.block.0.layer.0.SelfAttention.relative_attention_bias";
    px_mod_init(&m->rel, w, PX_REC_IN, "%s", rel);
    if (!(m->rel_bias = px_weights_f32(w, 2, (int64_t[]){ c->num_buckets, c->num_heads }, "%s.weight", rel)))
        goto fail;
    for (int64_t i = 0; i < c->num_layers; i++)
        if (load_block(&m->blocks[i], w, c, i)) goto fail;
    if (load_rms(&m->final_ln, w, D, "encoder.final_layer_norm") || px_weights_check_unused(w)) goto fail;
    return m;
fail:
    px_t5_free(m);
    return NULL;
}

px_t5 *px_t5_new(const px_t5_config *c, px_t5_lookup_fn get, void *ctx, const char *desc)
{
    px_weights *w = px_weights_wrap(get, ctx, desc ? desc : "t5", "text_encoder");
    return w ? t5_build(c, w) : NULL;
}

px_t5 *px_t5_load(const char *dir, const char *variant)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    px_t5_config c;
    if (px_t5_config_load(&c, path)) return NULL;
    px_weights *w = px_weights_open(dir, "model", variant, "text_encoder");
    px_t5 *m = w ? t5_build(&c, w) : NULL;
    /* PIXART_T5_STREAM=resident|mmap|read picks the mode for measurements
     * (doc/checkpoints.md, "Memory"); anything else keeps the default */
    const char *e = getenv("PIXART_T5_STREAM");
    if (m && e) {
        if (!strcmp(e, "resident")) m->stream = PX_T5_RESIDENT;
        else if (!strcmp(e, "read")) m->stream = PX_T5_STREAM_READ;
    }
    return m;
}

static void run_free(t5_run *r)
{
    free(r->h); free(r->x); free(r->y);
    free(r->q); free(r->k); free(r->v); free(r->att);
    free(r->f0); free(r->f1); free(r->keyb); free(r->pos);
    memset(r, 0, sizeof *r);
}

void px_t5_free(px_t5 *m)
{
    if (!m) return;
    run_free(&m->r);
    free(m->stage);
    free(m->blocks);
    px_weights_close(m->wt);
    free(m);
}

int px_t5_d_model(const px_t5 *m) { return (int)m->c.d_model; }
void px_t5_set_stream(px_t5 *m, px_t5_stream mode) { m->stream = mode; }
size_t px_t5_released_bytes(const px_t5 *m) { return px_weights_released_bytes(m->wt); }
const px_t5_config *px_t5_get_config(const px_t5 *m) { return &m->c; }

/* Buffers for M = B * L rows, grown when a call needs more, kept between calls. */
static int run_reserve(px_t5 *m, int64_t M, int64_t L)
{
    t5_run *r = &m->r;
    const px_t5_config *c = &m->c;
    const int64_t D = c->d_model, H = c->num_heads, I = H * c->d_kv, F = c->d_ff;
    if (M > r->cap_M) {
        run_free(r);
        r->h = px_malloc((size_t)(M * D) * sizeof(float), "t5 hidden states");
        r->x = px_malloc((size_t)(M * D) * sizeof(float), "t5 normed states");
        r->y = px_malloc((size_t)(M * D) * sizeof(float), "t5 sublayer output");
        r->q = px_malloc((size_t)(M * I) * sizeof(float), "t5 q");
        r->k = px_malloc((size_t)(M * I) * sizeof(float), "t5 k");
        r->v = px_malloc((size_t)(M * I) * sizeof(float), "t5 v");
        r->att = px_malloc((size_t)(M * I) * sizeof(float), "t5 attention output");
        r->f0 = px_malloc((size_t)(M * F) * sizeof(float), "t5 wi_0 output");
        r->f1 = px_malloc((size_t)(M * F) * sizeof(float), "t5 wi_1 output");
        r->keyb = px_malloc((size_t)M * sizeof(float), "t5 mask bias");
        if (!r->h || !r->x || !r->y || !r->q || !r->k || !r->v || !r->att || !r->f0 || !r->f1 || !r->keyb) {
            run_free(r);
            return -1;
        }
        r->cap_M = M;
    }
    if (L > r->cap_L) {
        free(r->pos);
        r->cap_L = 0;
        if (!(r->pos = px_malloc((size_t)(H * L * L) * sizeof(float), "t5 position bias"))) return -1;
        r->cap_L = L;
    }
    return 0;
}

// ----------------------------------------------------------------------------
// relative position bias

int px_t5_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance)
{
    /* bidirectional: keys after the query get the upper half of the buckets */
    int64_t nb = num_buckets / 2;
    int64_t bucket = relative_position > 0 ? nb : 0;
    int64_t rp = relative_position < 0 ? -relative_position : relative_position;
    int64_t max_exact = nb / 2;
    if (rp < max_exact) return (int)(bucket + rp);
    /* max_exact + (log(rp.float() / max_exact) / math.log(max_distance / max_exact)
     *              * (num_buckets - max_exact)).to(long), all float32 in torch:
     * the Python scalars are cast to the tensor's dtype. */
    float x = (float)rp / (float)max_exact;
    float den = (float)log((double)max_distance / (double)max_exact);
    float v = logf(x) / den * (float)(nb - max_exact);
    int64_t large = max_exact + (int64_t)v; /* .to(long) truncates toward zero */
    if (large > nb - 1) large = nb - 1;
    return (int)(bucket + large);
}

// ----------------------------------------------------------------------------
// modules

/* embed_tokens(input_ids): h (B, L, D), widening only the rows used. Records
 * the ids (as float32, (B, L)) as its input. */
static int embed_tokens(px_t5 *m, float *h, const int32_t *ids, int64_t B, int64_t L, px_dump *d)
{
    const int64_t D = m->c.d_model, M = B * L;
    const size_t esz = px_dtype_size(m->embed->dtype);
    for (int64_t r = 0; r < M; r++)
        px_convert_to_f32(h + r * D, (const char *)m->embed->data + (size_t)ids[r] * (size_t)D * esz,
                          m->embed->dtype, (size_t)D);
    if (!d) return 0;
    float *fid = px_malloc((size_t)M * sizeof(float), "t5 dump");
    if (!fid) return -1;
    for (int64_t r = 0; r < M; r++) fid[r] = (float)ids[r];
    int rc = px_mod_in(&m->embed_tokens, d, fid, PX_SHAPE(B, L)) ||
             px_mod_out(&m->embed_tokens, d, h, PX_SHAPE(B, L, D));
    free(fid);
    return rc ? -1 : 0;
}

/* T5Attention.compute_bias(L, L) of block 0: pos (H, L, L) =
 * relative_attention_bias(buckets).permute(2, 0, 1), buckets[i, j] from
 * memory position j - query position i. Records the Embedding's input (the
 * buckets, (L, L)) and output ((L, L, H), before the permute). */
static int position_bias(px_t5 *m, float *pos, int64_t L, px_dump *d)
{
    const px_t5_config *c = &m->c;
    const int64_t H = c->num_heads;
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) {
            int bk = px_t5_bucket(j - i, c->num_buckets, c->max_distance);
            for (int64_t hh = 0; hh < H; hh++) pos[(hh * L + i) * L + j] = m->rel_bias[bk * H + hh];
        }
    if (!d) return 0;
    float *bk = px_malloc((size_t)(L * L) * sizeof(float), "t5 dump");
    float *e = px_malloc((size_t)(L * L * H) * sizeof(float), "t5 dump");
    int rc = -1;
    if (bk && e) {
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < L; j++) bk[i * L + j] = (float)px_t5_bucket(j - i, c->num_buckets, c->max_distance);
        for (int64_t i = 0; i < L * L; i++)
            for (int64_t hh = 0; hh < H; hh++) e[i * H + hh] = pos[hh * L * L + i];
        rc = px_mod_in(&m->rel, d, bk, PX_SHAPE(L, L)) || px_mod_out(&m->rel, d, e, PX_SHAPE(L, L, H)) ? -1 : 0;
    }
    free(bk);
    free(e);
    return rc;
}

/* T5LayerNorm: y = weight * x / sqrt(mean(x^2) + eps), x (B, L, D) */
static int t5_layer_norm(float *y, const float *x, const rms_norm *n, int64_t B, int64_t L, int64_t D, float eps,
                         px_dump *d)
{
    px_rmsnorm(y, x, n->w, B * L, D, eps);
    return px_mod_out(&n->m, d, y, PX_SHAPE(B, L, D));
}

/* T5Block: T5LayerSelfAttention then T5LayerFF, r.h (B, L, D) updated in place. */
static int block_forward(px_t5 *m, const t5_block *b, int64_t B, int64_t L, px_dump *d)
{
    t5_run *r = &m->r;
    const px_t5_config *c = &m->c;
    const int64_t D = c->d_model, F = c->d_ff, M = B * L;
    /* scores = q @ k^T (no 1/sqrt(d_kv)) + position_bias + mask; softmax in float32; @ v */
    const px_attn_args aa = { .B = B, .Nq = L, .Nk = L, .H = c->num_heads, .D = c->d_kv, .scale = 1.0f,
                              .key_bias = r->keyb, .score_bias = r->pos };
    // hidden_states = hidden_states + SelfAttention.o(attention(q(x), k(x), v(x))), x = layer_norm(hidden_states)
    if (t5_layer_norm(r->x, r->h, &b->ln0, B, L, D, c->eps, d) || px_lin_fwd(r->q, r->x, &b->q, B, L, d) ||
        px_lin_fwd(r->k, r->x, &b->k, B, L, d) || px_lin_fwd(r->v, r->x, &b->v, B, L, d) ||
        px_attention(r->att, r->q, r->k, r->v, &aa) || px_lin_fwd(r->y, r->att, &b->o, B, L, d))
        return -1;
    px_add(r->h, r->h, r->y, M * D);
    if (px_mod_out(&b->layer0, d, r->h, PX_SHAPE(B, L, D))) return -1;
    // hidden_states = hidden_states + wo(gelu_new(wi_0(x)) * wi_1(x)), x = layer_norm(hidden_states)
    if (t5_layer_norm(r->x, r->h, &b->ln1, B, L, D, c->eps, d) || px_lin_fwd(r->f0, r->x, &b->wi_0, B, L, d))
        return -1;
    px_gelu_tanh(r->f0, r->f0, M * F);
    if (px_mod_out(&b->act, d, r->f0, PX_SHAPE(B, L, F)) || px_lin_fwd(r->f1, r->x, &b->wi_1, B, L, d)) return -1;
    px_mul(r->f0, r->f0, r->f1, M * F);
    if (px_lin_fwd(r->y, r->f0, &b->wo, B, L, d)) return -1;
    px_add(r->h, r->h, r->y, M * D);
    return px_mod_out(&b->layer1, d, r->h, PX_SHAPE(B, L, D));
}

// ----------------------------------------------------------------------------
// streaming: one block's weights in memory at a time

/* Starts reading block b's matrices into the page cache while the block
 * before it computes. */
static void prefetch_block(px_t5 *m, t5_block *b)
{
    for (int j = 0; j < BLOCK_MATS; j++) px_weights_prefetch(m->wt, block_mat(b, j)->w);
}

/* Drops block b's matrix pages from the process once the block is done. */
static void release_block(px_t5 *m, t5_block *b)
{
    for (int j = 0; j < BLOCK_MATS; j++) px_weights_release(m->wt, block_mat(b, j)->w);
}

/* PX_T5_STREAM_READ: *out = b with its matrices read (pread) into m->stage,
 * one buffer reused by every block; the mapping is not touched. */
static int stage_block(px_t5 *m, const t5_block *b, t5_block *out)
{
    *out = *b;
    /* each matrix at a 64-byte boundary: aligned for any dtype mix */
    size_t need = 0;
    for (int j = 0; j < BLOCK_MATS; j++) {
        const px_tensor *w = block_mat(out, j)->w;
        need += ((size_t)px_numel(w) * px_dtype_size(w->dtype) + 63) & ~(size_t)63;
    }
    if (need > m->stage_size) {
        free(m->stage);
        m->stage_size = 0;
        if (!(m->stage = px_malloc(need, "t5 block weights"))) return -1;
        m->stage_size = need;
    }
    size_t off = 0;
    for (int j = 0; j < BLOCK_MATS; j++) {
        px_lin *l = block_mat(out, j);
        m->staged[j] = *l->w;
        m->staged[j].data = (char *)m->stage + off;
        m->staged[j].owns = 0;
        if (px_weights_read(m->wt, l->w, m->staged[j].data)) return -1;
        off += ((size_t)px_numel(l->w) * px_dtype_size(l->w->dtype) + 63) & ~(size_t)63;
        l->w = &m->staged[j];
    }
    return 0;
}

// ----------------------------------------------------------------------------
// forward

int px_t5_encode(px_t5 *m, const int32_t *ids, const int32_t *mask, int B, int L, float *out,
                 px_dump *dump)
{
    px_ops_init();
    const px_t5_config *c = &m->c;
    if (B < 1 || L < 1) return px_fail("t5: batch %d x length %d is empty", B, L);
    const int64_t M = (int64_t)B * L;
    for (int64_t r = 0; r < M; r++) {
        if (ids[r] < 0 || ids[r] >= c->vocab_size)
            return px_fail("t5: token id %d at (%lld, %lld) is out of range [0, %lld)", ids[r],
                           (long long)(r / L), (long long)(r % L), (long long)c->vocab_size);
        if (mask[r] != 0 && mask[r] != 1)
            return px_fail("t5: attention mask value %d at (%lld, %lld) is not 0 or 1", mask[r],
                           (long long)(r / L), (long long)(r % L));
    }
    if (run_reserve(m, M, L)) return -1;
    t5_run *r = &m->r;

    const int stream = m->stream != PX_T5_RESIDENT;
    if (stream) prefetch_block(m, &m->blocks[0]);
    // inputs_embeds = self.embed_tokens(input_ids)                              (B, L, D)
    if (embed_tokens(m, r->h, ids, B, L, dump)) return -1;
    if (stream) px_weights_release(m->wt, m->embed); /* only the prompt's rows were touched */
    // extended_attention_mask = (1.0 - attention_mask) * finfo(float32).min     (B, L) over keys
    for (int64_t i = 0; i < M; i++) r->keyb[i] = (1.0f - (float)mask[i]) * -FLT_MAX;
    // position_bias = block[0].layer[0].SelfAttention.compute_bias(L, L)        (H, L, L)
    if (position_bias(m, r->pos, L, dump)) return -1;
    for (int64_t i = 0; i < c->num_layers; i++) {
        t5_block *b = &m->blocks[i], staged;
        if (stream && i + 1 < c->num_layers) prefetch_block(m, &m->blocks[i + 1]);
        if (m->stream == PX_T5_STREAM_READ && stage_block(m, b, &staged)) return -1;
        if (block_forward(m, m->stream == PX_T5_STREAM_READ ? &staged : b, B, L, dump)) return -1;
        if (m->stream == PX_T5_STREAM_MMAP) release_block(m, b);
    }
    // last_hidden_state = self.dropout(self.final_layer_norm(hidden_states))   (B, L, D)
    return t5_layer_norm(out, r->h, &m->final_ln, B, L, c->d_model, c->eps, dump);
}
