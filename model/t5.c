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

#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

#include <float.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DUMP_PREFIX "text_encoder/"

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
// weights

typedef struct {
    float *ln0;                       /* layer.0.layer_norm.weight (d_model) F32 copy */
    const px_tensor *q, *k, *v;       /* (inner, d_model) */
    const px_tensor *o;               /* (d_model, inner) */
    float *ln1;                       /* layer.1.layer_norm.weight (d_model) */
    const px_tensor *wi_0, *wi_1;     /* (d_ff, d_model) */
    const px_tensor *wo;              /* (d_model, d_ff) */
} t5_block;

struct px_t5 {
    px_t5_config c;
    px_st_set *st;          /* owned when loaded from a folder */
    const px_tensor *embed; /* shared.weight (vocab, d_model), any float dtype */
    float *rel_bias;        /* block 0 relative_attention_bias.weight (num_buckets, heads) */
    float *final_ln;        /* final_layer_norm.weight (d_model) */
    t5_block *blocks;
};

typedef struct {
    px_t5_lookup_fn get;
    void *ctx;
    const char *desc;
} loader;

/* A tensor by name, checked for dtype, shape and contiguity. */
static const px_tensor *need(const loader *ld, const int64_t *shape, int ndim, const char *fmt, ...)
    PX_PRINTF(4, 5);
static const px_tensor *need(const loader *ld, const int64_t *shape, int ndim, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const px_tensor *t = ld->get(ld->ctx, name);
    if (!t) {
        px_fail("%s: tensor '%s' is missing", ld->desc, name);
        return NULL;
    }
    if (t->dtype != PX_F32 && t->dtype != PX_F16 && t->dtype != PX_BF16) {
        px_fail("%s: tensor '%s' has dtype %s (F32, F16 or BF16 expected)", ld->desc, name,
                px_dtype_name(t->dtype));
        return NULL;
    }
    if (px_check_shape(t, name, ndim, shape)) {
        px_fail_ctx("%s", ld->desc);
        return NULL;
    }
    if (!px_is_contiguous(t)) {
        px_fail("%s: tensor '%s' is not contiguous", ld->desc, name);
        return NULL;
    }
    return t;
}

/* A small vector converted to F32 once. */
static float *need_f32(const loader *ld, int64_t n, const char *name)
{
    const px_tensor *t = need(ld, (int64_t[]){ n }, 1, "%s", name);
    if (!t) return NULL;
    return px_tensor_to_f32_alloc(t, name);
}

px_t5 *px_t5_new(const px_t5_config *c, px_t5_lookup_fn get, void *ctx, const char *desc)
{
    px_ops_init();
    if (!desc) desc = "t5";
    if (check_config(c, desc)) return NULL;
    px_t5 *m = px_calloc(1, sizeof *m, "t5 model");
    if (!m) return NULL;
    m->c = *c;
    const loader ld = { get, ctx, desc };
    const int64_t D = c->d_model, I = c->num_heads * c->d_kv, F = c->d_ff;
    m->blocks = px_calloc((size_t)c->num_layers, sizeof *m->blocks, "t5 blocks");
    if (!m->blocks) goto fail;

    /* encoder.embed_tokens is tied to shared and not saved; accept either */
    if (get(ctx, "shared.weight"))
        m->embed = need(&ld, (int64_t[]){ c->vocab_size, D }, 2, "shared.weight");
    else if (get(ctx, "encoder.embed_tokens.weight"))
        m->embed = need(&ld, (int64_t[]){ c->vocab_size, D }, 2, "encoder.embed_tokens.weight");
    else
        px_fail("%s: tensor 'shared.weight' is missing (nor is 'encoder.embed_tokens.weight' there)",
                desc);
    if (!m->embed) goto fail;

    const px_tensor *rb = need(&ld, (int64_t[]){ c->num_buckets, c->num_heads }, 2,
                               "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight");
    if (!rb || !(m->rel_bias = px_tensor_to_f32_alloc(rb, "relative_attention_bias"))) goto fail;

    char name[256];
    for (int64_t i = 0; i < c->num_layers; i++) {
        t5_block *b = &m->blocks[i];
        const char *p = "encoder.block";
        snprintf(name, sizeof name, "%s.%lld.layer.0.layer_norm.weight", p, (long long)i);
        if (!(b->ln0 = need_f32(&ld, D, name))) goto fail;
        b->q = need(&ld, (int64_t[]){ I, D }, 2, "%s.%lld.layer.0.SelfAttention.q.weight", p, (long long)i);
        b->k = need(&ld, (int64_t[]){ I, D }, 2, "%s.%lld.layer.0.SelfAttention.k.weight", p, (long long)i);
        b->v = need(&ld, (int64_t[]){ I, D }, 2, "%s.%lld.layer.0.SelfAttention.v.weight", p, (long long)i);
        b->o = need(&ld, (int64_t[]){ D, I }, 2, "%s.%lld.layer.0.SelfAttention.o.weight", p, (long long)i);
        if (!b->q || !b->k || !b->v || !b->o) goto fail;
        snprintf(name, sizeof name, "%s.%lld.layer.1.layer_norm.weight", p, (long long)i);
        if (!(b->ln1 = need_f32(&ld, D, name))) goto fail;
        b->wi_0 = need(&ld, (int64_t[]){ F, D }, 2, "%s.%lld.layer.1.DenseReluDense.wi_0.weight", p, (long long)i);
        b->wi_1 = need(&ld, (int64_t[]){ F, D }, 2, "%s.%lld.layer.1.DenseReluDense.wi_1.weight", p, (long long)i);
        b->wo = need(&ld, (int64_t[]){ D, F }, 2, "%s.%lld.layer.1.DenseReluDense.wo.weight", p, (long long)i);
        if (!b->wi_0 || !b->wi_1 || !b->wo) goto fail;
    }
    if (!(m->final_ln = need_f32(&ld, D, "encoder.final_layer_norm.weight"))) goto fail;
    return m;
fail:
    px_t5_free(m);
    return NULL;
}

static const px_tensor *st_lookup(void *ctx, const char *name)
{
    return px_st_set_find((const px_st_set *)ctx, name);
}

px_t5 *px_t5_load(const char *dir, const char *variant)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    px_t5_config c;
    if (px_t5_config_load(&c, path)) return NULL;
    px_st_set *st = px_st_set_open(dir, "model", variant);
    if (!st) return NULL;
    px_t5 *m = px_t5_new(&c, st_lookup, st, st->desc);
    if (!m) {
        px_st_set_close(st);
        return NULL;
    }
    m->st = st;
    return m;
}

void px_t5_free(px_t5 *m)
{
    if (!m) return;
    if (m->blocks)
        for (int64_t i = 0; i < m->c.num_layers; i++) {
            free(m->blocks[i].ln0);
            free(m->blocks[i].ln1);
        }
    free(m->blocks);
    free(m->rel_bias);
    free(m->final_ln);
    px_st_set_close(m->st);
    free(m);
}

int px_t5_d_model(const px_t5 *m) { return (int)m->c.d_model; }
const px_t5_config *px_t5_get_config(const px_t5 *m) { return &m->c; }

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
// forward

/* Records an activation (B, L, C) of block `i` under DUMP_PREFIX "encoder.block.i.SUFFIX". */
static int dump_blk(px_dump *d, int64_t i, const char *suffix, const float *x, int64_t B, int64_t L,
                    int64_t C)
{
    if (!d) return 0;
    return px_dump_addf(d, x, 3, (int64_t[]){ B, L, C }, DUMP_PREFIX "encoder.block.%lld.%s",
                        (long long)i, suffix);
}

int px_t5_encode(px_t5 *m, const int32_t *ids, const int32_t *mask, int B, int L, float *out,
                 px_dump *dump)
{
    px_ops_init();
    const px_t5_config *c = &m->c;
    const int64_t D = c->d_model, H = c->num_heads, Dh = c->d_kv, I = H * Dh, F = c->d_ff;
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

    /* run state, sized for this call */
    float *h = px_malloc((size_t)(M * D) * sizeof(float), "t5 hidden states");
    float *x = px_malloc((size_t)(M * D) * sizeof(float), "t5 normed states");
    float *y = px_malloc((size_t)(M * D) * sizeof(float), "t5 sublayer output");
    float *q = px_malloc((size_t)(M * I) * sizeof(float), "t5 q");
    float *k = px_malloc((size_t)(M * I) * sizeof(float), "t5 k");
    float *v = px_malloc((size_t)(M * I) * sizeof(float), "t5 v");
    float *att = px_malloc((size_t)(M * I) * sizeof(float), "t5 attention output");
    float *f0 = px_malloc((size_t)(M * F) * sizeof(float), "t5 wi_0 output");
    float *f1 = px_malloc((size_t)(M * F) * sizeof(float), "t5 wi_1 output");
    float *pos = px_malloc((size_t)(H * L * L) * sizeof(float), "t5 position bias");
    float *keyb = px_malloc((size_t)M * sizeof(float), "t5 mask bias");
    float *tmp = NULL;
    int rc = -1;
    if (!h || !x || !y || !q || !k || !v || !att || !f0 || !f1 || !pos || !keyb) goto out;

    /* inputs_embeds = self.embed_tokens(input_ids): widen only the rows used */
    const size_t esz = px_dtype_size(m->embed->dtype);
    for (int64_t r = 0; r < M; r++)
        px_convert_to_f32(h + r * D, (const char *)m->embed->data + (size_t)ids[r] * (size_t)D * esz,
                          m->embed->dtype, (size_t)D);
    if (dump) {
        if (!(tmp = px_malloc((size_t)(L * L > M ? L * L : M) * sizeof(float), "t5 dump"))) goto out;
        for (int64_t r = 0; r < M; r++) tmp[r] = (float)ids[r];
        if (px_dump_add_in(dump, DUMP_PREFIX "encoder.embed_tokens", tmp, 2, (int64_t[]){ B, L }) ||
            px_dump_add(dump, DUMP_PREFIX "encoder.embed_tokens", h, 3, (int64_t[]){ B, L, D }))
            goto out;
    }

    /* extended mask: (1.0 - mask) * torch.finfo(float32).min on keys */
    for (int64_t r = 0; r < M; r++) keyb[r] = (1.0f - (float)mask[r]) * -FLT_MAX;

    /* position_bias = relative_attention_bias(buckets).permute(2, 0, 1): (H, L, L),
     * buckets[i, j] from memory_position j - context_position i */
    for (int64_t i = 0; i < L; i++)
        for (int64_t j = 0; j < L; j++) {
            int bk = px_t5_bucket(j - i, c->num_buckets, c->max_distance);
            for (int64_t hh = 0; hh < H; hh++) pos[(hh * L + i) * L + j] = m->rel_bias[bk * H + hh];
        }
    if (dump) {
        const char *rn = DUMP_PREFIX "encoder.block.0.layer.0.SelfAttention.relative_attention_bias";
        for (int64_t i = 0; i < L; i++)
            for (int64_t j = 0; j < L; j++)
                tmp[i * L + j] = (float)px_t5_bucket(j - i, c->num_buckets, c->max_distance);
        if (px_dump_add_in(dump, rn, tmp, 2, (int64_t[]){ L, L })) goto out;
        /* the Embedding's output, (L, L, H), before the permute */
        float *e = px_malloc((size_t)(L * L * H) * sizeof(float), "t5 dump");
        if (!e) goto out;
        for (int64_t i = 0; i < L * L; i++)
            for (int64_t hh = 0; hh < H; hh++) e[i * H + hh] = pos[hh * L * L + i];
        int r = px_dump_add(dump, rn, e, 3, (int64_t[]){ L, L, H });
        free(e);
        if (r) goto out;
    }

    const px_attn_args aa = { .B = B, .Nq = L, .Nk = L, .H = H, .D = Dh, .scale = 1.0f,
                              .key_bias = keyb, .score_bias = pos };
    for (int64_t i = 0; i < c->num_layers; i++) {
        const t5_block *b = &m->blocks[i];
        /* ---- T5LayerSelfAttention: h = h + o(attn(layer_norm(h))) ---- */
        px_rmsnorm(x, h, b->ln0, M, D, c->eps);
        if (px_linear(q, x, b->q, NULL, M) || px_linear(k, x, b->k, NULL, M) ||
            px_linear(v, x, b->v, NULL, M))
            goto out;
        /* scores = q @ k^T + position_bias + mask; softmax in float32; @ v */
        if (px_attention(att, q, k, v, &aa)) goto out;
        if (px_linear(y, att, b->o, NULL, M)) goto out;
        if (dump) {
            if (dump_blk(dump, i, "layer.0.layer_norm", x, B, L, D) ||
                dump_blk(dump, i, "layer.0.SelfAttention.q", q, B, L, I) ||
                dump_blk(dump, i, "layer.0.SelfAttention.k", k, B, L, I) ||
                dump_blk(dump, i, "layer.0.SelfAttention.v", v, B, L, I))
                goto out;
            char nm[256];
            snprintf(nm, sizeof nm, DUMP_PREFIX "encoder.block.%lld.layer.0.SelfAttention.o", (long long)i);
            if (px_dump_add_in(dump, nm, att, 3, (int64_t[]){ B, L, I }) || dump_blk(dump, i, "layer.0.SelfAttention.o", y, B, L, D))
                goto out;
        }
        px_add(h, h, y, M * D);
        if (dump_blk(dump, i, "layer.0", h, B, L, D)) goto out;

        /* ---- T5LayerFF: h = h + wo(gelu_new(wi_0(x)) * wi_1(x)), x = layer_norm(h) ---- */
        px_rmsnorm(x, h, b->ln1, M, D, c->eps);
        if (px_linear(f0, x, b->wi_0, NULL, M) || px_linear(f1, x, b->wi_1, NULL, M)) goto out;
        if (dump && (dump_blk(dump, i, "layer.1.layer_norm", x, B, L, D) ||
                     dump_blk(dump, i, "layer.1.DenseReluDense.wi_0", f0, B, L, F)))
            goto out;
        px_gelu_tanh(f0, f0, M * F);
        if (dump && (dump_blk(dump, i, "layer.1.DenseReluDense.act", f0, B, L, F) ||
                     dump_blk(dump, i, "layer.1.DenseReluDense.wi_1", f1, B, L, F)))
            goto out;
        px_mul(f0, f0, f1, M * F);
        if (dump) {
            char nm[256];
            snprintf(nm, sizeof nm, DUMP_PREFIX "encoder.block.%lld.layer.1.DenseReluDense.wo", (long long)i);
            if (px_dump_add_in(dump, nm, f0, 3, (int64_t[]){ B, L, F })) goto out;
        }
        if (px_linear(y, f0, b->wo, NULL, M)) goto out;
        if (dump_blk(dump, i, "layer.1.DenseReluDense.wo", y, B, L, D)) goto out;
        px_add(h, h, y, M * D);
        if (dump_blk(dump, i, "layer.1", h, B, L, D)) goto out;
    }
    /* last_hidden_state = dropout(final_layer_norm(h)) */
    px_rmsnorm(out, h, m->final_ln, M, D, c->eps);
    if (px_dump_add(dump, DUMP_PREFIX "encoder.final_layer_norm", out, 3, (int64_t[]){ B, L, D })) goto out;
    rc = 0;
out:
    free(h); free(x); free(y); free(q); free(k); free(v); free(att);
    free(f0); free(f1); free(pos); free(keyb); free(tmp);
    return rc;
}
