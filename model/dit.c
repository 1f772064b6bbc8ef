/* The PixArt DiT: diffusers' PixArtTransformer2DModel (v0.30.3) with
 * PatchEmbed, AdaLayerNormSingle (PixArtAlphaCombinedTimestepSizeEmbeddings),
 * PixArtAlphaTextProjection and BasicTransformerBlock(norm_type="ada_norm_single").
 * Checkpoints saved as Transformer2DModel(norm_type="ada_norm_single") load too. */
#include "dit.h"

#include "model/module.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PX_TIME_CH 256 /* Timesteps(num_channels=256) of PixArtAlphaCombinedTimestepSizeEmbeddings */

// ----------------------------------------------------------------------------
// config, weights, run state

typedef struct {
    int num_layers;
    int heads, head_dim, inner; /* inner = heads * head_dim (the hidden size) */
    int in_ch, out_ch, patch, sample_size;
    int caption_ch;             /* 0: no caption_projection (ctx goes to attn2 as is) */
    int cross_dim;
    int attn_bias;              /* attention_bias: to_q/to_k/to_v have biases */
    float norm_eps;
    double interp_scale;
    int micro;                  /* use_additional_conditions */
} dit_config;

typedef struct {
    px_mod out;                 /* transformer_blocks.i */
    const float *sst;           /* scale_shift_table (6, C) */
    px_mod norm1, norm2;        /* LayerNorm(elementwise_affine=False) */
    px_lin q1, k1, v1, o1;      /* attn1.to_q/k/v, attn1.to_out.0 */
    px_lin q2, k2, v2, o2;      /* attn2 */
    px_lin ff1, ff2;            /* ff.net.0.proj, ff.net.2 */
    px_mod gelu;                /* ff.net.0: GELU(approximate="tanh") */
} dit_block;

typedef struct {
    px_mod time_proj, cond_proj; /* emb.time_proj, emb.additional_condition_proj: Timesteps(256) */
    px_lin t1, t2;               /* emb.timestep_embedder.linear_1/2 */
    px_lin r1, r2, a1, a2;       /* emb.resolution_embedder, emb.aspect_ratio_embedder */
    px_mod emb, silu;            /* emb (the sum), silu */
    px_lin linear;               /* (6C, C) */
} adaln_single;

typedef struct {
    int64_t cap_T, cap_BL, cap_B, cap_ffrows;
    float *tok, *xn, *q, *k, *v, *ao; /* (T, C) each */
    float *ffh;                       /* (ffrows, 4C) */
    float *po;                        /* (T, p*p*out) */
    float *c1, *ctxp, *k2, *v2;       /* (B*L, C) */
    float *kbias;                     /* (B*L) */
    float *cond;                      /* (B, ...) conditioning vectors, see adaln_forward */
    float *pos;                       /* (N, C) for pos_h x pos_w */
    int64_t cap_pos;
    int pos_h, pos_w;
} dit_run;

struct px_dit {
    dit_config c;
    px_weights *wt;
    px_conv patch;            /* pos_embed.proj */
    px_mod pos_embed;         /* PatchEmbed output (+ position embedding) */
    adaln_single ada;
    px_lin cap1, cap2;        /* caption_projection.linear_1/2 */
    px_mod cap_act;           /* caption_projection.act_1 */
    dit_block *blocks;
    px_tensor *wres;          /* the blocks' matrices in 2 MiB pages (make_resident), or NULL */
    void *wmem;               /* their data */
    size_t wbytes;            /* its size */
    const float *sst_out;     /* scale_shift_table (2, C) */
    px_mod norm_out;
    px_lin proj_out;
    px_mod root;              /* the model's output: "transformer/<root>" */
    dit_run r;
};

int px_dit_in_channels(const px_dit *m) { return m->c.in_ch; }
int px_dit_out_channels(const px_dit *m) { return m->c.out_ch; }
int px_dit_sample_size(const px_dit *m) { return m->c.sample_size; }
int px_dit_patch_size(const px_dit *m) { return m->c.patch; }
int px_dit_caption_channels(const px_dit *m) { return m->c.caption_ch ? m->c.caption_ch : m->c.cross_dim; }
int px_dit_hidden_size(const px_dit *m) { return m->c.inner; }
int px_dit_num_layers(const px_dit *m) { return m->c.num_layers; }
int px_dit_uses_micro_conditions(const px_dit *m) { return m->c.micro; }
size_t px_dit_resident_bytes(const px_dit *m) { return m->wmem ? m->wbytes : 0; }

// ----------------------------------------------------------------------------
// config.json

/* An integer field in [lo, hi]; absent or null -> def (def < 0: required). */
static int cfg_int(const px_json *j, const char *key, int def, int lo, int hi, int *out, const char *path)
{
    int64_t v;
    int rc = px_json_opt_int(j, key, &v, path);
    if (rc < 0) return -1;
    if (rc == 1) {
        if (def < 0) return px_fail("%s: field '%s' is missing", path, key);
        *out = def;
        return 0;
    }
    if (v < lo || v > hi)
        return px_fail("%s: field '%s' = %lld is out of range [%d, %d]", path, key, (long long)v, lo, hi);
    *out = (int)v;
    return 0;
}

static int cfg_bool(const px_json *j, const char *key, int def, int *out, const char *path)
{
    int rc = px_json_opt_bool(j, key, out, path);
    if (rc < 0) return -1;
    if (rc == 1) *out = def;
    return 0;
}

/* A string field that must be one of the accepted values when present. */
static int cfg_str_is(const px_json *j, const char *key, const char *def, const char *want,
                      const char *path)
{
    const char *s = def;
    if (px_json_opt_string(j, key, &s, path) < 0) return -1;
    if (!s || strcmp(s, want) != 0)
        return px_fail("%s: field '%s' is '%s', only '%s' is supported", path, key, s ? s : "null",
                       want);
    return 0;
}

static int parse_config(dit_config *c, const px_json *j, const char *path)
{
    if (j->type != PX_JSON_OBJECT) return px_fail("%s: not a JSON object", path);
    const char *cls = NULL;
    if (px_json_opt_string(j, "_class_name", &cls, path) < 0) return -1;
    int legacy = 0;
    if (cls) {
        if (strcmp(cls, "Transformer2DModel") == 0) legacy = 1;
        else if (strcmp(cls, "PixArtTransformer2DModel") != 0)
            return px_fail("%s: field '_class_name' is '%s', expected PixArtTransformer2DModel or "
                           "Transformer2DModel", path, cls);
    }
    /* Defaults are PixArtTransformer2DModel's; the legacy class has other
     * defaults, so there every structural field must be spelled out. */
    int d = legacy ? -1 : 0;
    const int MAXD = 1 << 16;
    if (cfg_str_is(j, "norm_type", legacy ? NULL : "ada_norm_single", "ada_norm_single", path) < 0 ||
        cfg_str_is(j, "activation_fn", legacy ? NULL : "gelu-approximate", "gelu-approximate", path) < 0 ||
        cfg_str_is(j, "attention_type", "default", "default", path) < 0)
        return -1;
    if (cfg_int(j, "num_attention_heads", d ? -1 : 16, 1, MAXD, &c->heads, path) < 0 ||
        cfg_int(j, "attention_head_dim", d ? -1 : 72, 1, MAXD, &c->head_dim, path) < 0 ||
        cfg_int(j, "in_channels", d ? -1 : 4, 1, MAXD, &c->in_ch, path) < 0 ||
        cfg_int(j, "num_layers", d ? -1 : 28, 0, 4096, &c->num_layers, path) < 0 ||
        cfg_int(j, "sample_size", d ? -1 : 128, 1, MAXD, &c->sample_size, path) < 0 ||
        cfg_int(j, "patch_size", d ? -1 : 2, 1, 64, &c->patch, path) < 0 ||
        cfg_int(j, "out_channels", c->in_ch, 1, MAXD, &c->out_ch, path) < 0)
        return -1;
    if (!legacy) {
        /* PixArtTransformer2DModel: out_channels defaults to 8, null means in_channels */
        const px_json *oc = px_json_get(j, "out_channels");
        if (!oc) c->out_ch = 8;
    }
    if ((int64_t)c->heads * c->head_dim > MAXD)
        return px_fail("%s: num_attention_heads * attention_head_dim = %lld is too large", path,
                       (long long)c->heads * c->head_dim);
    c->inner = c->heads * c->head_dim;
    if (c->inner % 4 != 0)
        return px_fail("%s: fields 'num_attention_heads' * 'attention_head_dim' = %d must be a multiple "
                       "of 4 for the 2-D sin-cos position embedding", path, c->inner);
    if (c->sample_size < c->patch)
        return px_fail("%s: field 'sample_size' (%d) is smaller than 'patch_size' (%d)", path,
                       c->sample_size, c->patch);
    if (cfg_int(j, "cross_attention_dim", d ? -1 : 1152, 1, MAXD, &c->cross_dim, path) < 0) return -1;
    c->caption_ch = 0;
    if (cfg_int(j, "caption_channels", 0, 1, MAXD, &c->caption_ch, path) < 0) return -1;
    if (c->caption_ch && c->cross_dim != c->inner)
        return px_fail("%s: field 'cross_attention_dim' (%d) must equal the hidden size %d when "
                       "'caption_channels' is set", path, c->cross_dim, c->inner);
    int affine;
    if (cfg_bool(j, "attention_bias", legacy ? 0 : 1, &c->attn_bias, path) < 0 ||
        cfg_bool(j, "norm_elementwise_affine", legacy ? 1 : 0, &affine, path) < 0)
        return -1;
    /* PixArt's norm1/norm2 have no affine parameters (the adaLN tables modulate) */
    if (affine) return px_fail("%s: field 'norm_elementwise_affine' = true is not supported", path);
    double eps = legacy ? 1e-5 : 1e-6;
    if (px_json_opt_number(j, "norm_eps", &eps, path) < 0) return -1;
    if (!(eps >= 0 && eps < 1)) return px_fail("%s: field 'norm_eps' = %g is out of range", path, eps);
    c->norm_eps = (float)eps;
    int v;
    if (cfg_bool(j, "only_cross_attention", 0, &v, path) < 0) return -1;
    if (v) return px_fail("%s: field 'only_cross_attention' = true is not supported", path);
    if (cfg_bool(j, "double_self_attention", 0, &v, path) < 0) return -1;
    if (v) return px_fail("%s: field 'double_self_attention' = true is not supported", path);
    const px_json *nve = px_json_get(j, "num_vector_embeds");
    if (nve && nve->type != PX_JSON_NULL)
        return px_fail("%s: field 'num_vector_embeds' must be null for a patched PixArt model", path);
    /* num_embeds_ada_norm must not be null (diffusers raises); its value is unused */
    const px_json *nea = px_json_get(j, "num_embeds_ada_norm");
    if (nea && nea->type == PX_JSON_NULL)
        return px_fail("%s: field 'num_embeds_ada_norm' must not be null with ada_norm_single", path);

    /* interpolation_scale: config value, else max(sample_size // 64, 1) */
    c->interp_scale = c->sample_size / 64 > 1 ? c->sample_size / 64 : 1;
    int rc = px_json_opt_number(j, "interpolation_scale", &c->interp_scale, path);
    if (rc < 0) return -1;
    if (!(c->interp_scale > 0 && c->interp_scale < 1e6))
        return px_fail("%s: field 'interpolation_scale' = %g is out of range", path, c->interp_scale);
    /* use_additional_conditions: config value, else sample_size == 128 */
    if (cfg_bool(j, "use_additional_conditions", c->sample_size == 128, &c->micro, path) < 0) return -1;
    if (c->micro && c->inner % 3 != 0)
        return px_fail("%s: use_additional_conditions needs a hidden size divisible by 3 (got %d)", path,
                       c->inner);
    return 0;
}

// ----------------------------------------------------------------------------
// weights: every module under its checkpoint name (which is also its dump name)

static int load_adaln(adaln_single *a, px_weights *w, const dit_config *c)
{
    const int64_t C = c->inner, S = C / 3; /* size_emb_dim = embedding_dim // 3 */
    const char *e = "adaln_single.emb";
    px_mod_init(&a->time_proj, w, PX_REC_IN, "%s.time_proj", e);
    px_mod_init(&a->cond_proj, w, PX_REC_IN, "%s.additional_condition_proj", e);
    px_mod_init(&a->emb, w, PX_OUT_ONLY, "%s", e);
    px_mod_init(&a->silu, w, PX_OUT_ONLY, "adaln_single.silu");
    if (px_lin_load(&a->t1, w, C, PX_TIME_CH, 1, PX_OUT_ONLY, "%s.timestep_embedder.linear_1", e) ||
        px_lin_load(&a->t2, w, C, C, 1, PX_REC_IN, "%s.timestep_embedder.linear_2", e) ||
        px_lin_load(&a->linear, w, 6 * C, C, 1, PX_OUT_ONLY, "adaln_single.linear"))
        return -1;
    if (c->micro &&
        (px_lin_load(&a->r1, w, S, PX_TIME_CH, 1, PX_OUT_ONLY, "%s.resolution_embedder.linear_1", e) ||
         px_lin_load(&a->r2, w, S, S, 1, PX_REC_IN, "%s.resolution_embedder.linear_2", e) ||
         px_lin_load(&a->a1, w, S, PX_TIME_CH, 1, PX_OUT_ONLY, "%s.aspect_ratio_embedder.linear_1", e) ||
         px_lin_load(&a->a2, w, S, S, 1, PX_REC_IN, "%s.aspect_ratio_embedder.linear_2", e)))
        return -1;
    return 0;
}

/* BasicTransformerBlock i. Recorded inputs: those the reference hooks see
 * that are no other recorded module's output (to_q's modulated norm, ...). */
static int load_block(dit_block *b, px_weights *w, const dit_config *c, int i)
{
    const int64_t C = c->inner, X = c->cross_dim;
    const int ab = c->attn_bias;
    const char *p = "transformer_blocks";
    px_mod_init(&b->out, w, PX_OUT_ONLY, "%s.%d", p, i);
    px_mod_init(&b->norm1, w, PX_OUT_ONLY, "%s.%d.norm1", p, i);
    px_mod_init(&b->norm2, w, PX_REC_IN, "%s.%d.norm2", p, i);
    px_mod_init(&b->gelu, w, PX_OUT_ONLY, "%s.%d.ff.net.0", p, i);
    if (!(b->sst = px_weights_f32(w, 2, (int64_t[]){ 6, C }, "%s.%d.scale_shift_table", p, i))) return -1;
    if (px_lin_load(&b->q1, w, C, C, ab, PX_REC_IN, "%s.%d.attn1.to_q", p, i) ||
        px_lin_load(&b->k1, w, C, C, ab, PX_OUT_ONLY, "%s.%d.attn1.to_k", p, i) ||
        px_lin_load(&b->v1, w, C, C, ab, PX_OUT_ONLY, "%s.%d.attn1.to_v", p, i) ||
        px_lin_load(&b->o1, w, C, C, 1, PX_REC_IN, "%s.%d.attn1.to_out.0", p, i) ||
        px_lin_load(&b->q2, w, C, C, ab, PX_REC_IN, "%s.%d.attn2.to_q", p, i) ||
        px_lin_load(&b->k2, w, C, X, ab, PX_OUT_ONLY, "%s.%d.attn2.to_k", p, i) ||
        px_lin_load(&b->v2, w, C, X, ab, PX_OUT_ONLY, "%s.%d.attn2.to_v", p, i) ||
        px_lin_load(&b->o2, w, C, C, 1, PX_REC_IN, "%s.%d.attn2.to_out.0", p, i) ||
        px_lin_load(&b->ff1, w, 4 * C, C, 1, PX_REC_IN, "%s.%d.ff.net.0.proj", p, i) ||
        px_lin_load(&b->ff2, w, C, 4 * C, 1, PX_OUT_ONLY, "%s.%d.ff.net.2", p, i))
        return -1;
    return 0;
}

static int load_weights(px_dit *m)
{
    const dit_config *c = &m->c;
    px_weights *w = m->wt;
    const int64_t C = c->inner;
    px_mod_init(&m->pos_embed, w, PX_OUT_ONLY, "pos_embed");
    px_mod_init(&m->cap_act, w, PX_OUT_ONLY, "caption_projection.act_1");
    px_mod_init(&m->norm_out, w, PX_OUT_ONLY, "norm_out");
    px_mod_init(&m->root, w, PX_OUT_ONLY, "<root>");
    if (px_conv_load(&m->patch, w, c->in_ch, C, c->patch, c->patch, 0, PX_REC_IN, "pos_embed.proj") ||
        load_adaln(&m->ada, w, c))
        return -1;
    if (c->caption_ch &&
        (px_lin_load(&m->cap1, w, C, c->caption_ch, 1, PX_REC_IN, "caption_projection.linear_1") ||
         px_lin_load(&m->cap2, w, C, C, 1, PX_OUT_ONLY, "caption_projection.linear_2")))
        return -1;
    m->blocks = px_calloc((size_t)(c->num_layers ? c->num_layers : 1), sizeof(dit_block), "DiT blocks");
    if (!m->blocks) return -1;
    for (int i = 0; i < c->num_layers; i++)
        if (load_block(&m->blocks[i], w, c, i)) return -1;
    if (!(m->sst_out = px_weights_f32(w, 2, (int64_t[]){ 2, C }, "scale_shift_table")) ||
        px_lin_load(&m->proj_out, w, (int64_t)c->patch * c->patch * c->out_ch, C, 1, PX_REC_IN, "proj_out"))
        return -1;
    /* every tensor of the file must have been taken by a module */
    return px_weights_check_unused(w);
}

/* The blocks' ten matrices (97 % of the weights) copied out of the file
 * mapping into anonymous memory in 2 MiB pages, and the mapped pages given
 * back (px_weights_release), so the resident size stays the same. The GEMM
 * packs a weight block by reading rows K floats apart, one 4 KiB page each
 * in the mapping: with the weights in 2 MiB pages the 512 px forward took
 * 7-10 % less time on Zen 5 (at 1024 px no difference beyond the noise;
 * doc/performance.md, "Zen 5, the evening of 2026-12-03"). The values,
 * hence the results, are the same.
 * PIXART_DIT_MMAP_WEIGHTS=1 keeps the mapping: processes sharing one
 * checkpoint (batch ranks) then share its page-cache pages instead of
 * holding a copy each. So does a failed allocation of the copy. */
static int make_resident(px_dit *m)
{
    const char *e = getenv("PIXART_DIT_MMAP_WEIGHTS");
    if ((e && *e && strcmp(e, "0")) || m->c.num_layers == 0) return 0;
    enum { MATS = 10 };
    const size_t n = (size_t)m->c.num_layers * MATS;
    px_lin **lins = px_calloc(n, sizeof *lins, "DiT weight list");
    if (!lins) return -1;
    size_t bytes = 0;
    for (int i = 0; i < m->c.num_layers; i++) {
        dit_block *b = &m->blocks[i];
        px_lin *l[MATS] = { &b->q1, &b->k1, &b->v1, &b->o1, &b->q2, &b->k2, &b->v2, &b->o2, &b->ff1, &b->ff2 };
        for (int j = 0; j < MATS; j++) {
            lins[(size_t)i * MATS + j] = l[j];
            bytes += ((size_t)px_numel(l[j]->w) * px_dtype_size(l[j]->w->dtype) + 63) / 64 * 64;
        }
    }
    m->wres = px_calloc(n, sizeof *m->wres, "DiT weights");
    m->wmem = px_malloc_huge(bytes, "DiT weights");
    if (!m->wres || !m->wmem) { /* no room for a copy: keep reading the mapping */
        free(lins);
        free(m->wres);
        free(m->wmem);
        m->wres = NULL;
        m->wmem = NULL;
        return 0;
    }
    m->wbytes = bytes;
    char *dst = m->wmem;
    for (size_t i = 0; i < n; i++) {
        const px_tensor *t = lins[i]->w;
        const size_t nb = (size_t)px_numel(t) * px_dtype_size(t->dtype);
        m->wres[i] = *t; /* contiguous (checked at load), not owning */
        m->wres[i].owns = 0;
        m->wres[i].data = memcpy(dst, t->data, nb);
        lins[i]->w = &m->wres[i];
        px_weights_release(m->wt, t);
        dst += (nb + 63) / 64 * 64;
    }
    free(lins);
    return 0;
}

static void run_free(dit_run *r)
{
    free(r->tok); free(r->xn); free(r->q); free(r->k); free(r->v); free(r->ao);
    free(r->ffh); free(r->po);
    free(r->c1); free(r->ctxp); free(r->k2); free(r->v2); free(r->kbias);
    free(r->cond); free(r->pos);
    memset(r, 0, sizeof *r);
}

void px_dit_free(px_dit *m)
{
    if (!m) return;
    run_free(&m->r);
    free(m->blocks);
    free(m->wres);
    free(m->wmem);
    px_weights_close(m->wt);
    free(m);
}

px_dit *px_dit_load(const char *dir, const char *variant)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        px_fail("%s: path too long", dir);
        return NULL;
    }
    px_json *j = px_json_load_file(path);
    if (!j) return NULL;
    px_dit *m = px_calloc(1, sizeof *m, "DiT");
    if (!m) { px_json_free(j); return NULL; }
    int rc = parse_config(&m->c, j, path);
    px_json_free(j);
    if (rc < 0) { free(m); return NULL; }
    m->wt = px_weights_open(dir, "diffusion_pytorch_model", variant, "transformer");
    if (!m->wt || load_weights(m) < 0 || make_resident(m) < 0) {
        px_dit_free(m);
        return NULL;
    }
    return m;
}

// ----------------------------------------------------------------------------
// embeddings

void px_timestep_embedding(float *out, const float *t, int n, int dim)
{
    /* get_timestep_embedding(t, dim, flip_sin_to_cos=True, downscale_freq_shift=0), all float32:
     *   exponent = -log(10000) * arange(half) / half;  emb = t[:, None] * exp(exponent)
     *   out = cat([cos(emb), sin(emb)]) (flipped), zero pad when dim is odd */
    const int half = dim / 2;
    const float nlog = (float)-log(10000.0);
    for (int i = 0; i < n; i++) {
        float *o = out + (size_t)i * dim;
        for (int k = 0; k < half; k++) {
            float e = expf(nlog * (float)k / (float)half);
            float a = t[i] * e;
            o[k] = cosf(a);
            o[half + k] = sinf(a);
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}

int px_sincos_pos_embed_2d(float *out, int D, int gh, int gw, int base_size, double interp)
{
    /* get_2d_sincos_pos_embed(D, (gh, gw), base_size, interpolation_scale):
     *   grid_h = arange(gh, float32) / (gh / base_size) / interpolation_scale (float32; likewise w)
     *   channels [0, D/2) encode the w coordinate, [D/2, D) the h coordinate, each as
     *   [sin(pos * omega_k), cos(pos * omega_k)], omega_k = 1 / 10000^(k / (D/4)), in float64. */
    if (D % 4 != 0 || gh < 1 || gw < 1 || base_size < 1)
        return px_fail("pos_embed: bad size (dim %d, grid %dx%d, base %d)", D, gh, gw, base_size);
    const int Q = D / 4;
    double *omega = px_malloc((size_t)Q * sizeof(double), "pos_embed omega");
    float *ph = px_malloc((size_t)gh * sizeof(float), "pos_embed grid");
    float *pw = px_malloc((size_t)gw * sizeof(float), "pos_embed grid");
    if (!omega || !ph || !pw) { free(omega); free(ph); free(pw); return -1; }
    for (int k = 0; k < Q; k++) omega[k] = 1.0 / pow(10000.0, (double)k / (D / 4.0));
    /* numpy: float32 array / python float -> float32 arithmetic */
    for (int i = 0; i < gh; i++) ph[i] = (float)i / (float)((double)gh / base_size) / (float)interp;
    for (int i = 0; i < gw; i++) pw[i] = (float)i / (float)((double)gw / base_size) / (float)interp;
#pragma omp parallel for schedule(static) if ((int64_t)gh * gw * D > 65536)
    for (int i = 0; i < gh; i++)
        for (int j = 0; j < gw; j++) {
            float *o = out + ((size_t)i * gw + j) * D;
            for (int k = 0; k < Q; k++) {
                double aw = (double)pw[j] * omega[k], ah = (double)ph[i] * omega[k];
                o[k] = (float)sin(aw);
                o[Q + k] = (float)cos(aw);
                o[2 * Q + k] = (float)sin(ah);
                o[3 * Q + k] = (float)cos(ah);
            }
        }
    free(omega); free(ph); free(pw);
    return 0;
}

int px_dit_pos_embed(const px_dit *m, float *out, int h, int w)
{
    const int p = m->c.patch;
    if (h < p || w < p || h % p || w % p)
        return px_fail("transformer: latent size %dx%d is not a multiple of the patch size %d", h, w, p);
    return px_sincos_pos_embed_2d(out, m->c.inner, h / p, w / p, m->c.sample_size / p, m->c.interp_scale);
}

// ----------------------------------------------------------------------------
// run state: buffers sized by the largest call so far

static int grow(float **p, int64_t n, const char *what)
{
    free(*p);
    /* 2 MiB pages for the big ones: the attention reads a head's rows H*D
     * floats apart, one 4 KiB page each (doc/performance.md, "AMD Zen 5") */
    *p = px_malloc_huge((size_t)(n > 0 ? n : 1) * sizeof(float), what);
    return *p ? 0 : -1;
}

/* FF rows per chunk: the MLP's hidden activations are (rows, 4C), kept to
 * about one (T, C) buffer's worth, while sgemm still sees M >= 1024. A dump
 * records whole (B, N, 4C) activations: one chunk. */
static int64_t ff_rows(int64_t T, int full)
{
    if (full) return T;
    return T < 2048 ? T : 2048;
}

/* The conditioning vectors of one call, carved out of run.cond. */
typedef struct {
    float *tp;    /* (B, 256) time_proj, later the aspect ratio's */
    float *sp;    /* (2B, 256) the resolution's */
    float *emb;   /* (B, C) embedded_timestep */
    float *t1;    /* (B, C) */
    float *sil;   /* (B, C) */
    float *t6;    /* (B, 6C) adaln_single output */
    float *ss;    /* (B, 6C) one block's modulation table */
    float *sflat; /* (3B) sizes as float */
    float *r1;    /* (2B, S) */
    float *r2;    /* (2B, S) */
} cond_bufs;

static int64_t cond_size(int64_t B, int64_t C) { return B * 3 * PX_TIME_CH + B * 16 * C + 3 * B + 4 * B * (C / 3); }

static cond_bufs cond_of(float *base, int64_t B, int64_t C)
{
    cond_bufs v;
    const int64_t S = C / 3;
    v.tp = base;
    v.sp = v.tp + B * PX_TIME_CH;
    v.emb = v.sp + 2 * B * PX_TIME_CH;
    v.t1 = v.emb + B * C;
    v.sil = v.t1 + B * C;
    v.t6 = v.sil + B * C;
    v.ss = v.t6 + 6 * B * C;
    v.sflat = v.ss + 6 * B * C;
    v.r1 = v.sflat + 3 * B;
    v.r2 = v.r1 + 2 * B * S;
    return v;
}

static int run_reserve(px_dit *m, int64_t B, int64_t T, int64_t BL, int full_ff)
{
    dit_run *r = &m->r;
    const int64_t C = m->c.inner, PO = (int64_t)m->c.patch * m->c.patch * m->c.out_ch;
    const int64_t fr = ff_rows(T, full_ff);
    if (T > r->cap_T) {
        if (grow(&r->tok, T * C, "DiT hidden states") < 0 || grow(&r->xn, T * C, "DiT norm") < 0 ||
            grow(&r->q, T * C, "DiT q") < 0 || grow(&r->k, T * C, "DiT k") < 0 ||
            grow(&r->v, T * C, "DiT v") < 0 || grow(&r->ao, T * C, "DiT attention out") < 0 ||
            grow(&r->po, T * PO, "DiT proj_out") < 0)
            goto fail;
        r->cap_T = T;
    }
    if (fr > r->cap_ffrows) {
        if (grow(&r->ffh, fr * 4 * C, "DiT MLP hidden") < 0) goto fail;
        r->cap_ffrows = fr;
    }
    if (BL > r->cap_BL) {
        if (grow(&r->c1, BL * C, "DiT caption") < 0 || grow(&r->ctxp, BL * C, "DiT caption") < 0 ||
            grow(&r->k2, BL * C, "DiT cross k") < 0 || grow(&r->v2, BL * C, "DiT cross v") < 0 ||
            grow(&r->kbias, BL, "DiT mask bias") < 0)
            goto fail;
        r->cap_BL = BL;
    }
    if (B > r->cap_B) {
        if (grow(&r->cond, cond_size(B, C), "DiT conditioning") < 0) goto fail;
        r->cap_B = B;
    }
    return 0;
fail:
    run_free(r);
    return -1;
}

// ----------------------------------------------------------------------------
// modules

/* Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0): t (n) -> out (n, 256) */
static int time_proj(float *out, const float *t, int64_t n, const px_mod *mod, px_dump *d)
{
    if (px_mod_in(mod, d, t, PX_SHAPE(n))) return -1;
    px_timestep_embedding(out, t, (int)n, PX_TIME_CH);
    return px_mod_out(mod, d, out, PX_SHAPE(n, PX_TIME_CH));
}

/* TimestepEmbedding: out (n, dim) = linear_2(silu(linear_1(x (n, 256)))); tmp (n, dim) */
static int timestep_embedder(float *out, float *tmp, const float *x, const px_lin *l1, const px_lin *l2, int64_t n,
                             px_dump *d)
{
    if (px_lin_rows(tmp, x, l1, n, d)) return -1;
    px_silu(tmp, tmp, n * l1->w->shape[0]);
    return px_lin_rows(out, tmp, l2, n, d);
}

/* AdaLayerNormSingle: cb.emb (B, C) = PixArtAlphaCombinedTimestepSizeEmbeddings(timestep,
 * resolution, aspect_ratio); cb.t6 (B, 6C) = linear(silu(emb)). */
static int adaln_forward(const adaln_single *a, const cond_bufs *cb, const float *timestep, const float *resolution,
                         const float *aspect_ratio, int64_t B, int64_t C, int micro, px_dump *d)
{
    const int64_t S = C / 3;
    // timesteps_emb = timestep_embedder(time_proj(timestep))
    if (time_proj(cb->tp, timestep, B, &a->time_proj, d) ||
        timestep_embedder(cb->emb, cb->t1, cb->tp, &a->t1, &a->t2, B, d))
        return -1;
    if (micro) {
        // resolution_emb = resolution_embedder(additional_condition_proj(resolution.flatten())).reshape(B, 2S)
        for (int64_t i = 0; i < 2 * B; i++) cb->sflat[i] = resolution[i];
        if (time_proj(cb->sp, cb->sflat, 2 * B, &a->cond_proj, d) ||
            timestep_embedder(cb->r2, cb->r1, cb->sp, &a->r1, &a->r2, 2 * B, d))
            return -1;
        // conditioning = timesteps_emb + cat([resolution_emb, aspect_ratio_emb], dim=1)
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < 2 * S; i++) cb->emb[b * C + i] += cb->r2[b * 2 * S + i];
        // aspect_ratio_emb = aspect_ratio_embedder(additional_condition_proj(aspect_ratio))  (B, S)
        for (int64_t i = 0; i < B; i++) cb->sflat[i] = aspect_ratio[i];
        if (time_proj(cb->tp, cb->sflat, B, &a->cond_proj, d) ||
            timestep_embedder(cb->r2, cb->r1, cb->tp, &a->a1, &a->a2, B, d))
            return -1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < S; i++) cb->emb[b * C + 2 * S + i] += cb->r2[b * S + i];
    }
    if (px_mod_out(&a->emb, d, cb->emb, PX_SHAPE(B, C))) return -1;
    // self.linear(self.silu(embedded_timestep))
    px_silu(cb->sil, cb->emb, B * C);
    if (px_mod_out(&a->silu, d, cb->sil, PX_SHAPE(B, C))) return -1;
    return px_lin_rows(cb->t6, cb->sil, &a->linear, B, d);
}

/* PatchEmbed: r.tok (B, N, C) = proj(x (B, in, h, w)).flatten(2).transpose(1, 2) + pos_embed */
static int patch_embed(px_dit *m, const float *x, int64_t B, int h, int w, px_dump *d)
{
    dit_run *r = &m->r;
    const int64_t C = m->c.inner, gh = h / m->c.patch, gw = w / m->c.patch, N = gh * gw, T = B * N;
    if (px_conv_fwd(r->q, x, &m->patch, B, h, w, d)) return -1; /* (B, C, gh, gw) */
    if (r->pos_h != gh || r->pos_w != gw || r->cap_pos < N * C) {
        if (r->cap_pos < N * C) {
            if (grow(&r->pos, N * C, "DiT pos_embed") < 0) return -1;
            r->cap_pos = N * C;
        }
        if (px_dit_pos_embed(m, r->pos, h, w) < 0) return -1;
        r->pos_h = (int)gh;
        r->pos_w = (int)gw;
    }
#pragma omp parallel for collapse(2) schedule(static) if (T * C > 65536)
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++)
            for (int64_t ch = 0; ch < C; ch++)
                r->tok[(b * N + n) * C + ch] = r->q[(b * C + ch) * N + n] + r->pos[n * C + ch];
    return px_mod_out(&m->pos_embed, d, r->tok, PX_SHAPE(B, N, C));
}

/* PixArtAlphaTextProjection: linear_2(gelu_tanh(linear_1(ctx (B, L, caption_ch)))) (B, L, C),
 * or ctx itself without caption_channels. */
static const float *caption_projection(px_dit *m, const float *ctx, int64_t B, int64_t L, px_dump *d)
{
    dit_run *r = &m->r;
    const int64_t C = m->c.inner;
    if (!m->c.caption_ch) return ctx;
    if (px_lin_fwd(r->c1, ctx, &m->cap1, B, L, d)) return NULL;
    px_gelu_tanh(r->c1, r->c1, B * L * C);
    if (px_mod_out(&m->cap_act, d, r->c1, PX_SHAPE(B, L, C)) || px_lin_fwd(r->ctxp, r->c1, &m->cap2, B, L, d))
        return NULL;
    return r->ctxp;
}

/* nn.LayerNorm(C, elementwise_affine=False, eps): y (B, N, C) = norm(x) */
static int layer_norm(float *y, const float *x, const px_mod *mod, float eps, int64_t B, int64_t N, int64_t C,
                      px_dump *d)
{
    if (px_mod_in(mod, d, x, PX_SHAPE(B, N, C))) return -1;
    px_layernorm(y, x, NULL, NULL, B * N, C, eps);
    return px_mod_out(mod, d, y, PX_SHAPE(B, N, C));
}

/* x (B, N, C) = x * (1 + scale[b]) + shift[b]; shift/scale rows `stride` apart */
static void modulate(float *x, const float *shift, const float *scale, int64_t stride, int64_t B, int64_t N,
                     int64_t C)
{
    for (int64_t b = 0; b < B; b++) px_modulate(x + b * N * C, x + b * N * C, shift + b * stride, scale + b * stride, N, C);
}

/* h (B, N, C) += gate (B, C) * a (B, N, C) -- diffusers: hidden = gate * attn_output + hidden */
static void gated_residual(float *h, const float *a, const float *gate, int64_t B, int64_t N, int64_t C,
                           int64_t gate_stride)
{
#pragma omp parallel for collapse(2) schedule(static) if (B * N * C > 65536)
    for (int64_t b = 0; b < B; b++)
        for (int64_t n = 0; n < N; n++) {
            const float *g = gate + b * gate_stride;
            float *hr = h + (b * N + n) * C;
            const float *ar = a + (b * N + n) * C;
            for (int64_t c = 0; c < C; c++) hr[c] = g[c] * ar[c] + hr[c];
        }
}

/* FeedForward(activation_fn="gelu-approximate"): out (B, N, C) = net.2(net.0(x)),
 * net.0 = GELU(proj(x), approximate="tanh"), over chunks of at most FR rows. */
static int feed_forward(float *out, const float *x, const dit_block *bk, float *hid, int64_t B, int64_t N,
                        int64_t C, int64_t FR, px_dump *d)
{
    const int64_t T = B * N;
    for (int64_t r0 = 0; r0 < T; r0 += FR) {
        const int64_t nr = T - r0 < FR ? T - r0 : FR;
        const int64_t b = nr == T ? B : 1, n = nr == T ? N : nr; /* the chunk as (b, n) rows */
        if (px_lin_fwd(hid, x + r0 * C, &bk->ff1, b, n, d)) return -1; /* (b, n, 4C) */
        px_gelu_tanh(hid, hid, nr * 4 * C);
        if (px_mod_out(&bk->gelu, d, hid, PX_SHAPE(b, n, 4 * C)) ||
            px_lin_fwd(out + r0 * C, hid, &bk->ff2, b, n, d))
            return -1;
    }
    return 0;
}

/* BasicTransformerBlock(norm_type="ada_norm_single"): r.tok (B, N, C) updated in place.
 * cb.t6 (B, 6C) the adaln_single output (cb.ss receives this block's table);
 * kv (B, L, cross_dim) the (projected) caption. */
static int block_forward(px_dit *m, const dit_block *bk, const cond_bufs *cb, const float *kv, int64_t B, int64_t N,
                         int64_t L, px_dump *d)
{
    dit_run *r = &m->r;
    const dit_config *c = &m->c;
    const int64_t C = c->inner, T = B * N;
    const float *ss = cb->ss;
    const px_attn_args self = { .B = B, .Nq = N, .Nk = N, .H = c->heads, .D = c->head_dim,
                                .scale = 1.0f / sqrtf((float)c->head_dim) };
    px_attn_args cross = self;
    cross.Nk = L;
    cross.key_bias = r->kbias;
    // shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp =
    //     (self.scale_shift_table[None] + timestep.reshape(B, 6, -1)).chunk(6, dim=1)
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < 6 * C; i++) cb->ss[b * 6 * C + i] = bk->sst[i] + cb->t6[b * 6 * C + i];

    // norm_hidden_states = self.norm1(hidden_states) * (1 + scale_msa) + shift_msa
    if (layer_norm(r->xn, r->tok, &bk->norm1, c->norm_eps, B, N, C, d)) return -1;
    modulate(r->xn, ss + 0 * C, ss + 1 * C, 6 * C, B, N, C);
    // attn_output = self.attn1(norm_hidden_states): to_out(softmax(q k^T / sqrt(d)) v)
    if (px_lin_fwd(r->q, r->xn, &bk->q1, B, N, d) || px_lin_fwd(r->k, r->xn, &bk->k1, B, N, d) ||
        px_lin_fwd(r->v, r->xn, &bk->v1, B, N, d) || px_attention(r->ao, r->q, r->k, r->v, &self) ||
        px_lin_fwd(r->xn, r->ao, &bk->o1, B, N, d))
        return -1;
    // hidden_states = gate_msa * attn_output + hidden_states
    gated_residual(r->tok, r->xn, ss + 2 * C, B, N, C, 6 * C);

    // hidden_states = self.attn2(hidden_states, encoder_hidden_states, encoder_attention_mask) + hidden_states
    if (px_lin_fwd(r->q, r->tok, &bk->q2, B, N, d) || px_lin_fwd(r->k2, kv, &bk->k2, B, L, d) ||
        px_lin_fwd(r->v2, kv, &bk->v2, B, L, d) || px_attention(r->ao, r->q, r->k2, r->v2, &cross) ||
        px_lin_fwd(r->xn, r->ao, &bk->o2, B, N, d))
        return -1;
    px_add(r->tok, r->xn, r->tok, T * C);

    // norm_hidden_states = self.norm2(hidden_states) * (1 + scale_mlp) + shift_mlp
    if (layer_norm(r->xn, r->tok, &bk->norm2, c->norm_eps, B, N, C, d)) return -1;
    modulate(r->xn, ss + 3 * C, ss + 4 * C, 6 * C, B, N, C);
    // hidden_states = gate_mlp * self.ff(norm_hidden_states) + hidden_states
    if (feed_forward(r->ao, r->xn, bk, r->ffh, B, N, C, ff_rows(T, d != NULL), d)) return -1;
    gated_residual(r->tok, r->ao, ss + 5 * C, B, N, C, 6 * C);
    return px_mod_out(&bk->out, d, r->tok, PX_SHAPE(B, N, C));
}

/* norm_out, (scale_shift_table + embedded_timestep) modulation, proj_out and unpatchify:
 * r.tok (B, N, C) -> out (B, out_ch, h, w). */
static int final_layer(px_dit *m, float *out, const cond_bufs *cb, int64_t B, int64_t h, int64_t w, px_dump *d)
{
    dit_run *r = &m->r;
    const int64_t C = m->c.inner, p = m->c.patch, oc = m->c.out_ch, gw = w / p, N = (h / p) * gw, PO = p * p * oc;
    // shift, scale = (self.scale_shift_table[None] + embedded_timestep[:, None]).chunk(2, dim=1)
    float *shift = cb->ss, *scale = cb->ss + B * C; /* (B, C) each */
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < C; i++) {
            shift[b * C + i] = m->sst_out[i] + cb->emb[b * C + i];
            scale[b * C + i] = m->sst_out[C + i] + cb->emb[b * C + i];
        }
    // hidden_states = self.norm_out(hidden_states) * (1 + scale) + shift   (norm_out: eps fixed at 1e-6)
    if (layer_norm(r->xn, r->tok, &m->norm_out, 1e-6f, B, N, C, d)) return -1;
    modulate(r->xn, shift, scale, C, B, N, C);
    if (px_lin_fwd(r->po, r->xn, &m->proj_out, B, N, d)) return -1; /* (B, N, p*p*oc) */
    // (B, gh, gw, p, p, oc) -> einsum("nhwpqc->nchpwq") -> (B, oc, gh*p, gw*p)
#pragma omp parallel for collapse(2) schedule(static) if (B * N * PO > 65536)
    for (int64_t b = 0; b < B; b++)
        for (int64_t ch = 0; ch < oc; ch++)
            for (int64_t y = 0; y < h; y++)
                for (int64_t xx = 0; xx < w; xx++) {
                    int64_t n = (y / p) * gw + xx / p, pq = (y % p) * p + xx % p;
                    out[((b * oc + ch) * h + y) * w + xx] = r->po[(b * N + n) * PO + pq * oc + ch];
                }
    return px_mod_out(&m->root, d, out, PX_SHAPE(B, oc, h, w));
}

// ----------------------------------------------------------------------------
// forward

int px_dit_forward(px_dit *m, float *out, const float *x, const float *timestep, const float *ctx,
                   const int32_t *ctx_mask, int B, int h, int w, int L, const float *resolution,
                   const float *aspect_ratio, px_dump *dump)
{
    const dit_config *c = &m->c;
    const int p = c->patch;
    if (B < 1 || L < 1) return px_fail("transformer: batch %d and caption length %d must be >= 1", B, L);
    if (h < p || w < p || h % p || w % p)
        return px_fail("transformer: latent size %dx%d is not a multiple of the patch size %d", h, w, p);
    if (c->micro && (!resolution || !aspect_ratio))
        return px_fail("transformer: this model is micro-conditioned (sample_size %d): resolution and "
                       "aspect_ratio are required", c->sample_size);
    for (int64_t i = 0; i < (int64_t)B * L; i++)
        if (ctx_mask[i] != 0 && ctx_mask[i] != 1)
            return px_fail("transformer: caption mask value %d at (%lld, %lld) is not 0 or 1", (int)ctx_mask[i],
                           (long long)(i / L), (long long)(i % L));
    px_ops_init();
    const int64_t N = (int64_t)(h / p) * (w / p), BL = (int64_t)B * L;
    if (run_reserve(m, B, B * N, BL, dump != NULL) < 0) return -1;
    dit_run *r = &m->r;
    const cond_bufs cb = cond_of(r->cond, B, c->inner);

    // hidden_states = self.pos_embed(hidden_states)                                (B, N, C)
    if (patch_embed(m, x, B, h, w, dump)) return -1;
    // timestep, embedded_timestep = self.adaln_single(timestep, added_cond_kwargs)  (B, 6C), (B, C)
    if (adaln_forward(&m->ada, &cb, timestep, resolution, aspect_ratio, B, c->inner, c->micro, dump)) return -1;
    // encoder_hidden_states = self.caption_projection(encoder_hidden_states)       (B, L, C)
    const float *kv = caption_projection(m, ctx, B, L, dump);
    if (!kv) return -1;
    // encoder_attention_mask = (1 - encoder_attention_mask) * -10000.0             (B, L)
    for (int64_t i = 0; i < BL; i++) r->kbias[i] = (1.0f - (float)ctx_mask[i]) * -10000.0f;
    for (int i = 0; i < c->num_layers; i++)
        if (block_forward(m, &m->blocks[i], &cb, kv, B, N, L, dump)) return -1;
    // norm_out, modulation, proj_out, unpatchify                                   (B, out_ch, h, w)
    return final_layer(m, out, &cb, B, h, w, dump);
}
