/* diffusers AutoencoderKL (v0.30.3): Decoder, Encoder, (post_)quant_conv and
 * enable_tiling()'s tiled_decode / tiled_encode, written against ops/ops.h.
 *
 * Module map (diffusers -> here):
 *   ResnetBlock2D (resnet.py)            resnet_fwd
 *   Attention + AttnProcessor            attn_fwd (single head, group_norm, residual)
 *   UNetMidBlock2D                       mid_fwd
 *   Upsample2D / Downsample2D            upsample_fwd / downsample_fwd
 *   UpDecoderBlock2D / DownEncoderBlock2D  the loops in decoder_run / encoder_run
 *   AutoencoderKL.blend_v/blend_h/tiled_* blend_v, blend_h, run_tiled
 *
 * Every layer function consumes its input buffer (frees it, or reuses it in
 * place) and returns a newly owned output, so the buffers alive at any time
 * are exactly the ones the computation still needs. */
#include "vae.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/safetensors.h"

#define GN_EPS 1e-6f /* resnet_eps / GroupNorm eps everywhere in Encoder/Decoder */

/* ---------------------------------------------------------------------- */
/* weights                                                                 */

typedef struct {
    float *w, *b; /* (C) */
} gnorm;

typedef struct {
    const px_tensor *w; /* (cout, cin, k, k) */
    float *b;           /* (cout) */
    int64_t cin, cout;
    int k;
} conv;

typedef struct {
    const px_tensor *w; /* (C, C) */
    float *b;           /* (C) */
} lin;

typedef struct {
    int64_t cin, cout;
    gnorm norm1, norm2;
    conv conv1, conv2;
    int has_shortcut; /* in_channels != out_channels: 1x1 conv_shortcut */
    conv shortcut;
} resnet;

typedef struct {
    int64_t C;
    gnorm gn;
    lin q, k, v, o;
} attn;

typedef struct {
    resnet r0, r1;
    int has_attn;
    attn at;
} midblock;

typedef struct {
    int nres;
    resnet *res;
    int has_sampler; /* upsamplers.0 / downsamplers.0 */
    conv sampler;
} block;

typedef struct {
    conv conv_in;
    block *blocks; /* decoder: up_blocks (reversed channels); encoder: down_blocks */
    midblock mid;
    gnorm norm_out;
    conv conv_out;
} coder;

struct px_vae {
    px_vae_config c;
    px_st_set *st; /* px_vae_load only */
    char *desc;
    coder enc, dec;
    int has_quant, has_post_quant;
    conv quant, post_quant;
    int tiling;
    /* every float32 copy made at load (biases, norm weights) */
    float **owned;
    size_t nowned, capowned;
};

/* ---------------------------------------------------------------------- */
/* config                                                                  */

static int get_int(const px_json *j, const char *key, int *out, int def, int lo, int hi,
                   const char *path)
{
    int64_t v = def;
    if (px_json_opt_int(j, key, &v, path) < 0) return -1;
    if (v < lo || v > hi)
        return px_fail("%s: field '%s' = %lld is out of range [%d, %d]", path, key, (long long)v, lo,
                       hi);
    *out = (int)v;
    return 0;
}

static int get_bool(const px_json *j, const char *key, int *out, int def, const char *path)
{
    *out = def;
    return px_json_opt_bool(j, key, out, path) < 0 ? -1 : 0;
}

/* down_block_types / up_block_types: when present, one entry per block and
 * all of the one supported type. */
static int check_types(const px_json *j, const char *key, const char *want, int n, const char *path)
{
    const px_json *a = px_json_get(j, key);
    if (!a || a->type == PX_JSON_NULL) return 0;
    if (a->type != PX_JSON_ARRAY) return px_fail("%s: field '%s' is not an array", path, key);
    if ((int)a->count != n)
        return px_fail("%s: field '%s' has %zu entries but block_out_channels has %d", path, key,
                       a->count, n);
    for (size_t i = 0; i < a->count; i++) {
        const px_json *s = a->items[i];
        if (s->type != PX_JSON_STRING) return px_fail("%s: field '%s'[%zu] is not a string", path, key, i);
        if (strcmp(s->string, want) != 0)
            return px_fail("%s: field '%s'[%zu] = '%s' is not supported (only %s)", path, key, i,
                           s->string, want);
    }
    return 0;
}

int px_vae_config_load(px_vae_config *c, const char *path)
{
    px_json *j = px_json_load_file(path);
    if (!j) return -1;
    int rc = -1;
    memset(c, 0, sizeof *c);
    if (j->type != PX_JSON_OBJECT) {
        px_fail("%s: not a JSON object", path);
        goto out;
    }
    const char *cls = NULL;
    if (px_json_opt_string(j, "_class_name", &cls, path) < 0) goto out;
    if (cls && strcmp(cls, "AutoencoderKL") != 0) {
        px_fail("%s: _class_name '%s' is not supported (expected 'AutoencoderKL')", path, cls);
        goto out;
    }
    if (get_int(j, "in_channels", &c->in_channels, 3, 1, 4096, path) ||
        get_int(j, "out_channels", &c->out_channels, 3, 1, 4096, path) ||
        get_int(j, "latent_channels", &c->latent_channels, 4, 1, 4096, path) ||
        get_int(j, "layers_per_block", &c->layers_per_block, 1, 1, 64, path) ||
        get_int(j, "norm_num_groups", &c->norm_num_groups, 32, 1, 4096, path) ||
        get_bool(j, "mid_block_add_attention", &c->mid_block_add_attention, 1, path) ||
        get_bool(j, "use_quant_conv", &c->use_quant_conv, 1, path) ||
        get_bool(j, "use_post_quant_conv", &c->use_post_quant_conv, 1, path))
        goto out;
    /* sample_size: an int, or [h, w] of which diffusers' tiling uses the first */
    c->sample_size = 32;
    const px_json *ss = px_json_get(j, "sample_size");
    if (ss && ss->type == PX_JSON_ARRAY) {
        if (ss->count < 1 || ss->items[0]->type != PX_JSON_NUMBER || !ss->items[0]->is_integer) {
            px_fail("%s: field 'sample_size' is not an integer or a list of integers", path);
            goto out;
        }
        ss = ss->items[0];
    }
    if (ss && ss->type != PX_JSON_NULL) {
        if (ss->type != PX_JSON_NUMBER || !ss->is_integer || ss->int_overflow) {
            px_fail("%s: field 'sample_size' is not an integer", path);
            goto out;
        }
        if (ss->integer < 1 || ss->integer > (1 << 20)) {
            px_fail("%s: field 'sample_size' = %lld is out of range", path, (long long)ss->integer);
            goto out;
        }
        c->sample_size = (int)ss->integer;
    }
    const px_json *bo = px_json_get(j, "block_out_channels");
    if (!bo || bo->type == PX_JSON_NULL) {
        c->nblocks = 1;
        c->block_out[0] = 64;
    } else {
        if (bo->type != PX_JSON_ARRAY) {
            px_fail("%s: field 'block_out_channels' is not an array", path);
            goto out;
        }
        if (bo->count < 1 || bo->count > PX_VAE_MAX_BLOCKS) {
            px_fail("%s: field 'block_out_channels' has %zu entries (1 to %d supported)", path,
                    bo->count, PX_VAE_MAX_BLOCKS);
            goto out;
        }
        c->nblocks = (int)bo->count;
        for (int i = 0; i < c->nblocks; i++) {
            const px_json *v = bo->items[i];
            if (v->type != PX_JSON_NUMBER || !v->is_integer || v->int_overflow || v->integer < 1 ||
                v->integer > 65536) {
                px_fail("%s: field 'block_out_channels'[%d] is not an integer in [1, 65536]", path, i);
                goto out;
            }
            c->block_out[i] = (int)v->integer;
        }
    }
    for (int i = 0; i < c->nblocks; i++)
        if (c->block_out[i] % c->norm_num_groups) {
            px_fail("%s: field 'norm_num_groups' = %d does not divide block_out_channels[%d] = %d",
                    path, c->norm_num_groups, i, c->block_out[i]);
            goto out;
        }
    if (check_types(j, "down_block_types", "DownEncoderBlock2D", c->nblocks, path) ||
        check_types(j, "up_block_types", "UpDecoderBlock2D", c->nblocks, path))
        goto out;
    const char *act = "silu";
    if (px_json_opt_string(j, "act_fn", &act, path) < 0) goto out;
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0) {
        px_fail("%s: field 'act_fn' = '%s' is not supported (only 'silu')", path, act);
        goto out;
    }
    double sf = 0.18215;
    if (px_json_opt_number(j, "scaling_factor", &sf, path) < 0) goto out;
    if (!isfinite(sf) || sf == 0.0) {
        px_fail("%s: field 'scaling_factor' = %g is not a finite non-zero number", path, sf);
        goto out;
    }
    c->scaling_factor = (float)sf;
    rc = 0;
out:
    px_json_free(j);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* loading                                                                 */

typedef struct {
    px_vae *m;
    px_vae_lookup_fn get;
    void *ctx;
} loader;

static const px_tensor *fetch(loader *L, int ndim, const int64_t *shape, const char *fmt, ...)
    PX_PRINTF(4, 5);
static const px_tensor *fetch(loader *L, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const px_tensor *t = L->get(L->ctx, name);
    if (!t) {
        px_fail("%s: tensor '%s' is missing", L->m->desc, name);
        return NULL;
    }
    char what[320];
    snprintf(what, sizeof what, "%s: tensor '%s'", L->m->desc, name);
    if (px_check_shape(t, what, ndim, shape)) return NULL;
    if (t->dtype != PX_F32 && t->dtype != PX_F16 && t->dtype != PX_BF16) {
        px_fail("%s has dtype %s (F32, F16 or BF16 expected)", what, px_dtype_name(t->dtype));
        return NULL;
    }
    if (!px_is_contiguous(t)) {
        px_fail("%s is not contiguous", what);
        return NULL;
    }
    return t;
}

/* A small vector converted to float32 once, owned by the model. */
static float *fetch_vec(loader *L, int64_t n, const char *prefix, const char *suffix)
{
    const px_tensor *t = fetch(L, 1, (int64_t[]){n}, "%s.%s", prefix, suffix);
    if (!t) return NULL;
    px_vae *m = L->m;
    if (m->nowned == m->capowned) {
        size_t cap = m->capowned ? 2 * m->capowned : 64;
        float **o = realloc(m->owned, cap * sizeof *o);
        if (!o) {
            px_fail("out of memory (vae weights)");
            return NULL;
        }
        m->owned = o;
        m->capowned = cap;
    }
    float *v = px_tensor_to_f32_alloc(t, "vae bias");
    if (v) m->owned[m->nowned++] = v;
    return v;
}

static int load_conv(loader *L, conv *c, int64_t cin, int64_t cout, int k, const char *fmt, ...)
    PX_PRINTF(6, 7);
static int load_conv(loader *L, conv *c, int64_t cin, int64_t cout, int k, const char *fmt, ...)
{
    char name[224];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->w = fetch(L, 4, (int64_t[]){cout, cin, k, k}, "%s.weight", name);
    if (!c->w) return -1;
    c->b = fetch_vec(L, cout, name, "bias");
    return c->b ? 0 : -1;
}

static int load_gnorm(loader *L, gnorm *g, int64_t C, const char *name)
{
    g->w = fetch_vec(L, C, name, "weight");
    if (!g->w) return -1;
    g->b = fetch_vec(L, C, name, "bias");
    return g->b ? 0 : -1;
}

static int load_lin(loader *L, lin *l, int64_t C, const char *prefix, const char *name)
{
    char full[224];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    l->w = fetch(L, 2, (int64_t[]){C, C}, "%s.weight", full);
    if (!l->w) return -1;
    l->b = fetch_vec(L, C, full, "bias");
    return l->b ? 0 : -1;
}

static int load_resnet(loader *L, resnet *r, int64_t cin, int64_t cout, const char *name)
{
    char sub[224];
    r->cin = cin;
    r->cout = cout;
    snprintf(sub, sizeof sub, "%s.norm1", name);
    if (load_gnorm(L, &r->norm1, cin, sub)) return -1;
    if (load_conv(L, &r->conv1, cin, cout, 3, "%s.conv1", name)) return -1;
    snprintf(sub, sizeof sub, "%s.norm2", name);
    if (load_gnorm(L, &r->norm2, cout, sub)) return -1;
    if (load_conv(L, &r->conv2, cout, cout, 3, "%s.conv2", name)) return -1;
    r->has_shortcut = cin != cout;
    if (r->has_shortcut && load_conv(L, &r->shortcut, cin, cout, 1, "%s.conv_shortcut", name))
        return -1;
    return 0;
}

static int load_mid(loader *L, midblock *mb, int64_t C, int add_attn, const char *coder_name)
{
    char name[224];
    snprintf(name, sizeof name, "%s.mid_block.resnets.0", coder_name);
    if (load_resnet(L, &mb->r0, C, C, name)) return -1;
    snprintf(name, sizeof name, "%s.mid_block.resnets.1", coder_name);
    if (load_resnet(L, &mb->r1, C, C, name)) return -1;
    mb->has_attn = add_attn;
    if (!add_attn) return 0;
    snprintf(name, sizeof name, "%s.mid_block.attentions.0", coder_name);
    attn *a = &mb->at;
    a->C = C;
    char gn[240];
    snprintf(gn, sizeof gn, "%s.group_norm", name);
    if (load_gnorm(L, &a->gn, C, gn) || load_lin(L, &a->q, C, name, "to_q") ||
        load_lin(L, &a->k, C, name, "to_k") || load_lin(L, &a->v, C, name, "to_v") ||
        load_lin(L, &a->o, C, name, "to_out.0"))
        return -1;
    return 0;
}

/* Decoder(...): conv_in -> mid_block -> up_blocks (reversed channels,
 * layers_per_block + 1 ResNets, Upsample2D in all but the last) -> out. */
static int load_decoder(loader *L, coder *d)
{
    const px_vae_config *c = &L->m->c;
    const int n = c->nblocks;
    const int64_t top = c->block_out[n - 1];
    if (load_conv(L, &d->conv_in, c->latent_channels, top, 3, "decoder.conv_in")) return -1;
    if (load_mid(L, &d->mid, top, c->mid_block_add_attention, "decoder")) return -1;
    d->blocks = px_calloc((size_t)n, sizeof(block), "vae decoder blocks");
    if (!d->blocks) return -1;
    int64_t out_ch = top;
    for (int i = 0; i < n; i++) {
        block *b = &d->blocks[i];
        int64_t prev = out_ch;
        out_ch = c->block_out[n - 1 - i];
        b->nres = c->layers_per_block + 1;
        b->res = px_calloc((size_t)b->nres, sizeof(resnet), "vae decoder resnets");
        if (!b->res) return -1;
        for (int r = 0; r < b->nres; r++) {
            char name[128];
            snprintf(name, sizeof name, "decoder.up_blocks.%d.resnets.%d", i, r);
            if (load_resnet(L, &b->res[r], r == 0 ? prev : out_ch, out_ch, name)) return -1;
        }
        b->has_sampler = i != n - 1;
        if (b->has_sampler &&
            load_conv(L, &b->sampler, out_ch, out_ch, 3, "decoder.up_blocks.%d.upsamplers.0.conv", i))
            return -1;
    }
    if (load_gnorm(L, &d->norm_out, c->block_out[0], "decoder.conv_norm_out")) return -1;
    return load_conv(L, &d->conv_out, c->block_out[0], c->out_channels, 3, "decoder.conv_out");
}

/* Encoder(double_z=True): conv_in -> down_blocks (layers_per_block ResNets,
 * Downsample2D(padding=0) in all but the last) -> mid_block -> out. */
static int load_encoder(loader *L, coder *e)
{
    const px_vae_config *c = &L->m->c;
    const int n = c->nblocks;
    if (load_conv(L, &e->conv_in, c->in_channels, c->block_out[0], 3, "encoder.conv_in")) return -1;
    e->blocks = px_calloc((size_t)n, sizeof(block), "vae encoder blocks");
    if (!e->blocks) return -1;
    int64_t out_ch = c->block_out[0];
    for (int i = 0; i < n; i++) {
        block *b = &e->blocks[i];
        int64_t in_ch = out_ch;
        out_ch = c->block_out[i];
        b->nres = c->layers_per_block;
        b->res = px_calloc((size_t)b->nres, sizeof(resnet), "vae encoder resnets");
        if (!b->res) return -1;
        for (int r = 0; r < b->nres; r++) {
            char name[128];
            snprintf(name, sizeof name, "encoder.down_blocks.%d.resnets.%d", i, r);
            if (load_resnet(L, &b->res[r], r == 0 ? in_ch : out_ch, out_ch, name)) return -1;
        }
        b->has_sampler = i != n - 1;
        if (b->has_sampler &&
            load_conv(L, &b->sampler, out_ch, out_ch, 3, "encoder.down_blocks.%d.downsamplers.0.conv",
                      i))
            return -1;
    }
    const int64_t top = c->block_out[n - 1];
    if (load_mid(L, &e->mid, top, c->mid_block_add_attention, "encoder")) return -1;
    if (load_gnorm(L, &e->norm_out, top, "encoder.conv_norm_out")) return -1;
    return load_conv(L, &e->conv_out, top, 2 * (int64_t)c->latent_channels, 3, "encoder.conv_out");
}

px_vae *px_vae_new(const px_vae_config *c, px_vae_lookup_fn get, void *ctx, const char *desc)
{
    px_vae *m = px_calloc(1, sizeof *m, "vae");
    if (!m) return NULL;
    m->c = *c;
    m->desc = strdup(desc ? desc : "vae");
    if (!m->desc) {
        free(m);
        px_fail("out of memory (vae)");
        return NULL;
    }
    loader L = {m, get, ctx};
    const int64_t lc = c->latent_channels;
    m->has_quant = c->use_quant_conv;
    m->has_post_quant = c->use_post_quant_conv;
    if (load_decoder(&L, &m->dec) || load_encoder(&L, &m->enc) ||
        (m->has_post_quant && load_conv(&L, &m->post_quant, lc, lc, 1, "post_quant_conv")) ||
        (m->has_quant && load_conv(&L, &m->quant, 2 * lc, 2 * lc, 1, "quant_conv"))) {
        px_vae_free(m);
        return NULL;
    }
    return m;
}

static const px_tensor *st_lookup(void *ctx, const char *name)
{
    return px_st_set_find((const px_st_set *)ctx, name);
}

px_vae *px_vae_load(const char *dir, const char *variant)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/config.json", dir) >= (int)sizeof path) {
        px_fail("%s: path too long", dir);
        return NULL;
    }
    px_vae_config c;
    if (px_vae_config_load(&c, path)) return NULL;
    px_st_set *st = px_st_set_open(dir, "diffusion_pytorch_model", variant);
    if (!st) return NULL;
    px_vae *m = px_vae_new(&c, st_lookup, st, st->desc);
    if (!m) {
        px_st_set_close(st);
        return NULL;
    }
    m->st = st;
    return m;
}

static void free_coder(coder *cd, int n)
{
    if (cd->blocks)
        for (int i = 0; i < n; i++) free(cd->blocks[i].res);
    free(cd->blocks);
}

void px_vae_free(px_vae *m)
{
    if (!m) return;
    free_coder(&m->dec, m->c.nblocks);
    free_coder(&m->enc, m->c.nblocks);
    for (size_t i = 0; i < m->nowned; i++) free(m->owned[i]);
    free(m->owned);
    px_st_set_close(m->st);
    free(m->desc);
    free(m);
}

const px_vae_config *px_vae_get_config(const px_vae *m) { return &m->c; }
float px_vae_scaling_factor(const px_vae *m) { return m->c.scaling_factor; }
int px_vae_downscale(const px_vae *m) { return 1 << (m->c.nblocks - 1); }
int px_vae_latent_channels(const px_vae *m) { return m->c.latent_channels; }

int px_vae_set_tiling(px_vae *m, int enabled)
{
    int old = m->tiling;
    m->tiling = enabled != 0;
    return old;
}

/* ---------------------------------------------------------------------- */
/* dumps                                                                   */

/* Output of module NAME: "NAME#k". */
static int dump_out(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
    PX_PRINTF(5, 6);
static int dump_out(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (!d) return 0;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return px_dump_add(d, name, x, ndim, shape);
}

/* Input of module NAME for the call about to run: "NAME#k.in", numbered by
 * px_dump_add_in (the input is recorded before the output). */
static int dump_in(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
    PX_PRINTF(5, 6);
static int dump_in(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (!d) return 0;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return px_dump_add_in(d, name, x, ndim, shape);
}

#define SHAPE4(a, b, c, e) ((const int64_t[]){(a), (b), (c), (e)})
#define SHAPE3(a, b, c) ((const int64_t[]){(a), (b), (c)})

/* ---------------------------------------------------------------------- */
/* layers                                                                  */

static float *alloc_f(int64_t n, const char *what) { return px_malloc((size_t)n * sizeof(float), what); }

/* nn.Conv2d(k, stride s, padding p): x (B, cin, H, W) -> new (B, cout, Ho, Wo). */
static float *conv_fwd(const conv *c, const float *x, int64_t B, int64_t H, int64_t W, int s, int p)
{
    int64_t Ho = (H + 2 * p - c->k) / s + 1, Wo = (W + 2 * p - c->k) / s + 1;
    float *y = alloc_f(B * c->cout * Ho * Wo, "vae conv output");
    if (!y) return NULL;
    if (px_conv2d(y, x, c->w, c->b, B, c->cin, H, W, c->cout, c->k, s, p)) {
        free(y);
        return NULL;
    }
    return y;
}

/* ResnetBlock2D (temb None, output_scale_factor 1), consumes x:
 *   h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h)))
 *   out = (conv_shortcut(x) if cin != cout else x) + h
 * x: (B, cin, H, W) -> (B, cout, H, W). */
static float *resnet_fwd(const resnet *r, float *x, int64_t B, int64_t H, int64_t W, int G,
                         px_dump *d, const char *name)
{
    const int64_t HW = H * W, nin = B * r->cin * HW, nout = B * r->cout * HW;
    const int64_t *sin = SHAPE4(B, r->cin, H, W), *sout = SHAPE4(B, r->cout, H, W);
    float *sc = NULL, *h = NULL, *h2 = NULL;
    if (dump_in(d, x, 4, sin, "%s", name) || dump_in(d, x, 4, sin, "%s.norm1", name)) goto fail;
    if (r->has_shortcut) {
        /* input_tensor = self.conv_shortcut(input_tensor): done first, so that
         * x is dead afterwards and norm1 can run in place */
        if (dump_in(d, x, 4, sin, "%s.conv_shortcut", name)) goto fail;
        sc = conv_fwd(&r->shortcut, x, B, H, W, 1, 0);
        if (!sc || dump_out(d, sc, 4, sout, "%s.conv_shortcut", name)) goto fail;
        h = x;
        x = NULL;
    } else {
        h = alloc_f(nin, "vae resnet hidden");
        if (!h) goto fail;
    }
    /* hidden_states = self.nonlinearity(self.norm1(input_tensor)) */
    px_groupnorm(h, x ? x : h, r->norm1.w, r->norm1.b, B, r->cin, HW, G, GN_EPS);
    if (dump_out(d, h, 4, sin, "%s.norm1", name)) goto fail;
    px_silu(h, h, nin);
    if (dump_in(d, h, 4, sin, "%s.conv1", name)) goto fail;
    /* hidden_states = self.conv1(hidden_states) */
    h2 = conv_fwd(&r->conv1, h, B, H, W, 1, 1);
    free(h);
    h = NULL;
    if (!h2 || dump_out(d, h2, 4, sout, "%s.conv1", name) ||
        dump_in(d, h2, 4, sout, "%s.norm2", name))
        goto fail;
    /* hidden_states = self.conv2(self.nonlinearity(self.norm2(hidden_states))) */
    px_groupnorm(h2, h2, r->norm2.w, r->norm2.b, B, r->cout, HW, G, GN_EPS);
    if (dump_out(d, h2, 4, sout, "%s.norm2", name)) goto fail;
    px_silu(h2, h2, nout);
    if (dump_in(d, h2, 4, sout, "%s.conv2", name)) goto fail;
    h = conv_fwd(&r->conv2, h2, B, H, W, 1, 1);
    free(h2);
    h2 = NULL;
    if (!h || dump_out(d, h, 4, sout, "%s.conv2", name)) goto fail;
    /* output_tensor = (input_tensor + hidden_states) / 1.0 */
    px_add(h, sc ? sc : x, h, nout);
    free(sc);
    free(x);
    if (dump_out(d, h, 4, sout, "%s", name)) {
        free(h);
        return NULL;
    }
    return h;
fail:
    free(x);
    free(sc);
    free(h);
    free(h2);
    return NULL;
}

/* y (B, N, C) = x (B, C, N) transposed, in cache-sized blocks. */
static void transpose_cn(float *y, const float *x, int64_t B, int64_t C, int64_t N)
{
    enum { T = 64 };
    for (int64_t b = 0; b < B; b++) {
        const float *xb = x + b * C * N;
        float *yb = y + b * C * N;
#pragma omp parallel for collapse(2) schedule(static) if (C * N > 65536)
        for (int64_t c0 = 0; c0 < C; c0 += T)
            for (int64_t n0 = 0; n0 < N; n0 += T) {
                int64_t c1 = c0 + T < C ? c0 + T : C, n1 = n0 + T < N ? n0 + T : N;
                for (int64_t n = n0; n < n1; n++)
                    for (int64_t c = c0; c < c1; c++) yb[n * C + c] = xb[c * N + n];
            }
    }
}

/* Attention(heads = C / attention_head_dim = 1, group_norm, residual_connection,
 * rescale_output_factor 1) with AttnProcessor, consumes nothing: x is updated
 * in place (x += attention(x)).
 *   h = group_norm(x.view(B, C, N)).transpose(1, 2)            (B, N, C)
 *   out = to_out(softmax(q k^T / sqrt(C)) v), q/k/v = to_q/k/v(h)
 *   x = out.transpose(1, 2).view(B, C, H, W) + x */
static int attn_fwd(const attn *a, float *x, int64_t B, int64_t H, int64_t W, int G, px_dump *d,
                    const char *name)
{
    const int64_t C = a->C, N = H * W, n = B * C * N;
    const int64_t *s4 = SHAPE4(B, C, H, W), *scn = SHAPE3(B, C, N), *snc = SHAPE3(B, N, C);
    float *g = NULL, *t = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL;
    int rc = -1;
    if (dump_in(d, x, 4, s4, "%s", name) || dump_in(d, x, 3, scn, "%s.group_norm", name)) goto out;
    g = alloc_f(n, "vae attention norm");
    t = alloc_f(n, "vae attention tokens");
    if (!g || !t) goto out;
    px_groupnorm(g, x, a->gn.w, a->gn.b, B, C, N, G, GN_EPS);
    if (dump_out(d, g, 3, scn, "%s.group_norm", name)) goto out;
    transpose_cn(t, g, B, C, N);
    free(g);
    g = NULL;
    if (dump_in(d, t, 3, snc, "%s.to_q", name) || dump_in(d, t, 3, snc, "%s.to_k", name) ||
        dump_in(d, t, 3, snc, "%s.to_v", name))
        goto out;
    q = alloc_f(n, "vae attention q");
    k = alloc_f(n, "vae attention k");
    v = alloc_f(n, "vae attention v");
    if (!q || !k || !v) goto out;
    /* per batch element, so that a batch gives bit for bit what its elements
     * give alone (sgemm's blocking depends on M) */
    for (int64_t b = 0; b < B; b++)
        if (px_linear(q + b * N * C, t + b * N * C, a->q.w, a->q.b, N) ||
            px_linear(k + b * N * C, t + b * N * C, a->k.w, a->k.b, N) ||
            px_linear(v + b * N * C, t + b * N * C, a->v.w, a->v.b, N))
            goto out;
    if (dump_out(d, q, 3, snc, "%s.to_q", name) || dump_out(d, k, 3, snc, "%s.to_k", name) ||
        dump_out(d, v, 3, snc, "%s.to_v", name))
        goto out;
    /* attn.scale = dim_head ** -0.5, passed to baddbmm as alpha */
    px_attn_args args = {.B = B, .Nq = N, .Nk = N, .H = 1, .D = C,
                         .scale = (float)pow((double)C, -0.5)};
    if (px_attention(t, q, k, v, &args)) goto out; /* t: (B, N, C) attention output */
    free(q);
    free(k);
    free(v);
    q = k = v = NULL;
    if (dump_in(d, t, 3, snc, "%s.to_out.0", name)) goto out;
    o = alloc_f(n, "vae attention out");
    if (!o) goto out;
    for (int64_t b = 0; b < B; b++)
        if (px_linear(o + b * N * C, t + b * N * C, a->o.w, a->o.b, N)) goto out;
    if (dump_out(d, o, 3, snc, "%s.to_out.0", name)) goto out;
    /* hidden_states.transpose(-1, -2).reshape(B, C, H, W) + residual */
    transpose_cn(t, o, B, N, C); /* (B, N, C) -> (B, C, N) */
    px_add(x, t, x, n);
    rc = dump_out(d, x, 4, s4, "%s", name);
out:
    free(g);
    free(t);
    free(q);
    free(k);
    free(v);
    free(o);
    return rc;
}

/* UNetMidBlock2D: resnets[0] -> attentions[0] -> resnets[1]; consumes x. */
static float *mid_fwd(const midblock *mb, float *x, int64_t B, int64_t H, int64_t W, int G,
                      px_dump *d, const char *coder_name)
{
    char name[128];
    int64_t C = mb->r0.cin;
    if (dump_in(d, x, 4, SHAPE4(B, C, H, W), "%s.mid_block", coder_name)) goto fail;
    snprintf(name, sizeof name, "%s.mid_block.resnets.0", coder_name);
    x = resnet_fwd(&mb->r0, x, B, H, W, G, d, name);
    if (!x) return NULL;
    if (mb->has_attn) {
        snprintf(name, sizeof name, "%s.mid_block.attentions.0", coder_name);
        if (attn_fwd(&mb->at, x, B, H, W, G, d, name)) goto fail;
    }
    snprintf(name, sizeof name, "%s.mid_block.resnets.1", coder_name);
    x = resnet_fwd(&mb->r1, x, B, H, W, G, d, name);
    if (!x) return NULL;
    if (dump_out(d, x, 4, SHAPE4(B, C, H, W), "%s.mid_block", coder_name)) goto fail;
    return x;
fail:
    free(x);
    return NULL;
}

/* Upsample2D(use_conv): conv(interpolate(x, scale_factor=2, mode="nearest"));
 * consumes x (B, C, H, W) -> (B, C, 2H, 2W). */
static float *upsample_fwd(const conv *c, float *x, int64_t B, int64_t H, int64_t W, px_dump *d,
                           const char *name)
{
    const int64_t C = c->cin, *s2 = SHAPE4(B, C, 2 * H, 2 * W);
    float *u = NULL, *y = NULL;
    if (dump_in(d, x, 4, SHAPE4(B, C, H, W), "%s", name)) goto out;
    u = alloc_f(B * C * 4 * H * W, "vae upsampled");
    if (!u) goto out;
    px_upsample_nearest2x(u, x, B, C, H, W);
    free(x);
    x = NULL;
    if (dump_in(d, u, 4, s2, "%s.conv", name)) goto out;
    y = conv_fwd(c, u, B, 2 * H, 2 * W, 1, 1);
    if (y && (dump_out(d, y, 4, s2, "%s.conv", name) || dump_out(d, y, 4, s2, "%s", name))) {
        free(y);
        y = NULL;
    }
out:
    free(x);
    free(u);
    return y;
}

/* Downsample2D(use_conv, padding=0): conv(F.pad(x, (0, 1, 0, 1)), stride 2);
 * consumes x (B, C, H, W) -> (B, C, H/2, W/2) (integer division). */
static float *downsample_fwd(const conv *c, float *x, int64_t B, int64_t H, int64_t W, px_dump *d,
                             const char *name)
{
    const int64_t C = c->cin, Hp = H + 1, Wp = W + 1, Ho = (Hp - 3) / 2 + 1, Wo = (Wp - 3) / 2 + 1;
    float *p = NULL, *y = NULL;
    if (dump_in(d, x, 4, SHAPE4(B, C, H, W), "%s", name)) goto out;
    p = alloc_f(B * C * Hp * Wp, "vae padded");
    if (!p) goto out;
#pragma omp parallel for schedule(static) if (B * C * Hp * Wp > 65536)
    for (int64_t bc = 0; bc < B * C; bc++) {
        const float *src = x + bc * H * W;
        float *dst = p + bc * Hp * Wp;
        for (int64_t i = 0; i < H; i++) {
            memcpy(dst + i * Wp, src + i * W, (size_t)W * sizeof(float));
            dst[i * Wp + W] = 0.0f;
        }
        memset(dst + H * Wp, 0, (size_t)Wp * sizeof(float));
    }
    free(x);
    x = NULL;
    if (dump_in(d, p, 4, SHAPE4(B, C, Hp, Wp), "%s.conv", name)) goto out;
    y = conv_fwd(c, p, B, Hp, Wp, 2, 0);
    const int64_t *so = SHAPE4(B, C, Ho, Wo);
    if (y && (dump_out(d, y, 4, so, "%s.conv", name) || dump_out(d, y, 4, so, "%s", name))) {
        free(y);
        y = NULL;
    }
out:
    free(x);
    free(p);
    return y;
}

/* conv_norm_out -> conv_act -> conv_out into `out`; consumes x. */
static int out_fwd(const coder *cd, float *out, float *x, int64_t B, int64_t C, int64_t H,
                   int64_t W, int G, px_dump *d, const char *coder_name)
{
    const int64_t *s = SHAPE4(B, C, H, W), n = B * C * H * W;
    const int64_t *so = SHAPE4(B, cd->conv_out.cout, H, W);
    int rc = -1;
    if (dump_in(d, x, 4, s, "%s.conv_norm_out", coder_name)) goto out;
    px_groupnorm(x, x, cd->norm_out.w, cd->norm_out.b, B, C, H * W, G, GN_EPS);
    if (dump_out(d, x, 4, s, "%s.conv_norm_out", coder_name) ||
        dump_in(d, x, 4, s, "%s.conv_act", coder_name))
        goto out;
    px_silu(x, x, n);
    if (dump_out(d, x, 4, s, "%s.conv_act", coder_name) ||
        dump_in(d, x, 4, s, "%s.conv_out", coder_name))
        goto out;
    if (px_conv2d(out, x, cd->conv_out.w, cd->conv_out.b, B, C, H, W, cd->conv_out.cout, 3, 1, 1))
        goto out;
    rc = dump_out(d, out, 4, so, "%s.conv_out", coder_name);
out:
    free(x);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* decoder / encoder                                                       */

/* post_quant_conv + Decoder: z (B, lc, h, w) -> out (B, out_ch, h*f, w*f). */
static int decoder_run(px_vae *m, float *out, const float *z, int64_t B, int64_t h, int64_t w,
                       px_dump *d)
{
    const px_vae_config *c = &m->c;
    const coder *dec = &m->dec;
    const int G = c->norm_num_groups;
    const int64_t lc = c->latent_channels, *sz = SHAPE4(B, lc, h, w);
    float *x;
    if (m->has_post_quant) {
        if (dump_in(d, z, 4, sz, "vae/post_quant_conv")) return -1;
        x = conv_fwd(&m->post_quant, z, B, h, w, 1, 0);
        if (!x) return -1;
        if (dump_out(d, x, 4, sz, "vae/post_quant_conv")) goto fail;
    } else {
        x = alloc_f(B * lc * h * w, "vae latents");
        if (!x) return -1;
        memcpy(x, z, (size_t)(B * lc * h * w) * sizeof(float));
    }
    if (dump_in(d, x, 4, sz, "vae/decoder") || dump_in(d, x, 4, sz, "vae/decoder.conv_in")) goto fail;
    float *y = conv_fwd(&dec->conv_in, x, B, h, w, 1, 1);
    free(x);
    x = y;
    int64_t C = dec->conv_in.cout, H = h, W = w;
    if (!x || dump_out(d, x, 4, SHAPE4(B, C, H, W), "vae/decoder.conv_in")) goto fail;
    x = mid_fwd(&dec->mid, x, B, H, W, G, d, "vae/decoder");
    if (!x) return -1;
    for (int i = 0; i < c->nblocks; i++) {
        const block *b = &dec->blocks[i];
        char name[128];
        if (dump_in(d, x, 4, SHAPE4(B, C, H, W), "vae/decoder.up_blocks.%d", i)) goto fail;
        for (int r = 0; r < b->nres; r++) {
            snprintf(name, sizeof name, "vae/decoder.up_blocks.%d.resnets.%d", i, r);
            x = resnet_fwd(&b->res[r], x, B, H, W, G, d, name);
            if (!x) return -1;
            C = b->res[r].cout;
        }
        if (b->has_sampler) {
            snprintf(name, sizeof name, "vae/decoder.up_blocks.%d.upsamplers.0", i);
            x = upsample_fwd(&b->sampler, x, B, H, W, d, name);
            if (!x) return -1;
            H *= 2;
            W *= 2;
        }
        if (dump_out(d, x, 4, SHAPE4(B, C, H, W), "vae/decoder.up_blocks.%d", i)) goto fail;
    }
    if (out_fwd(dec, out, x, B, C, H, W, G, d, "vae/decoder")) return -1;
    return dump_out(d, out, 4, SHAPE4(B, c->out_channels, H, W), "vae/decoder");
fail:
    free(x);
    return -1;
}

/* Encoder + quant_conv, keeping the mean: x (B, in_ch, H, W) -> mean (B, lc, H/f, W/f). */
static int encoder_run(px_vae *m, float *mean, const float *img, int64_t B, int64_t H, int64_t W,
                       px_dump *d)
{
    const px_vae_config *c = &m->c;
    const coder *enc = &m->enc;
    const int G = c->norm_num_groups;
    const int64_t lc = c->latent_channels;
    const int64_t *sin = SHAPE4(B, c->in_channels, H, W);
    if (dump_in(d, img, 4, sin, "vae/encoder") || dump_in(d, img, 4, sin, "vae/encoder.conv_in"))
        return -1;
    float *x = conv_fwd(&enc->conv_in, img, B, H, W, 1, 1);
    int64_t C = enc->conv_in.cout;
    if (!x || dump_out(d, x, 4, SHAPE4(B, C, H, W), "vae/encoder.conv_in")) goto fail;
    for (int i = 0; i < c->nblocks; i++) {
        const block *b = &enc->blocks[i];
        char name[128];
        if (dump_in(d, x, 4, SHAPE4(B, C, H, W), "vae/encoder.down_blocks.%d", i)) goto fail;
        for (int r = 0; r < b->nres; r++) {
            snprintf(name, sizeof name, "vae/encoder.down_blocks.%d.resnets.%d", i, r);
            x = resnet_fwd(&b->res[r], x, B, H, W, G, d, name);
            if (!x) return -1;
            C = b->res[r].cout;
        }
        if (b->has_sampler) {
            snprintf(name, sizeof name, "vae/encoder.down_blocks.%d.downsamplers.0", i);
            x = downsample_fwd(&b->sampler, x, B, H, W, d, name);
            if (!x) return -1;
            H /= 2;
            W /= 2;
        }
        if (dump_out(d, x, 4, SHAPE4(B, C, H, W), "vae/encoder.down_blocks.%d", i)) goto fail;
    }
    x = mid_fwd(&enc->mid, x, B, H, W, G, d, "vae/encoder");
    if (!x) return -1;
    const int64_t *sm = SHAPE4(B, 2 * lc, H, W);
    float *h = alloc_f(B * 2 * lc * H * W, "vae encoder output");
    if (!h) goto fail;
    if (out_fwd(enc, h, x, B, C, H, W, G, d, "vae/encoder") ||
        dump_out(d, h, 4, sm, "vae/encoder")) {
        free(h);
        return -1;
    }
    float *mom = h;
    if (m->has_quant) {
        if (dump_in(d, h, 4, sm, "vae/quant_conv")) {
            free(h);
            return -1;
        }
        mom = conv_fwd(&m->quant, h, B, H, W, 1, 0);
        free(h);
        if (!mom || dump_out(d, mom, 4, sm, "vae/quant_conv")) {
            free(mom);
            return -1;
        }
    }
    /* DiagonalGaussianDistribution: mean, logvar = torch.chunk(moments, 2, dim=1) */
    for (int64_t b = 0; b < B; b++)
        memcpy(mean + b * lc * H * W, mom + b * 2 * lc * H * W, (size_t)(lc * H * W) * sizeof(float));
    free(mom);
    return 0;
fail:
    free(x);
    return -1;
}

/* ---------------------------------------------------------------------- */
/* tiling (AutoencoderKL.tiled_decode / tiled_encode)                      */

/* b[:, :, y, :] = a[:, :, -e + y, :] * (1 - y / e) + b[:, :, y, :] * (y / e)
 * for y < e = min(a_h, b_h, extent). The weights are Python floats (double)
 * that torch rounds to float32 for the float32 multiply; each product is
 * rounded before the sum (volatile keeps the compiler from fusing them). */
static void blend_v(const float *a, int64_t ah, float *b, int64_t bh, int64_t BC, int64_t w,
                    int64_t extent)
{
    int64_t e = extent;
    if (ah < e) e = ah;
    if (bh < e) e = bh;
    for (int64_t y = 0; y < e; y++) {
        const float wb = (float)((double)y / (double)e), wa = (float)(1.0 - (double)y / (double)e);
        for (int64_t i = 0; i < BC; i++) {
            const float *ar = a + (i * ah + ah - e + y) * w;
            float *br = b + (i * bh + y) * w;
            for (int64_t x = 0; x < w; x++) {
                volatile float pa = ar[x] * wa;
                br[x] = pa + br[x] * wb;
            }
        }
    }
}

/* b[:, :, :, x] = a[:, :, :, -e + x] * (1 - x / e) + b[:, :, :, x] * (x / e) */
static void blend_h(const float *a, int64_t aw, float *b, int64_t bw, int64_t BC, int64_t h,
                    int64_t extent)
{
    int64_t e = extent;
    if (aw < e) e = aw;
    if (bw < e) e = bw;
    for (int64_t x = 0; x < e; x++) {
        const float wb = (float)((double)x / (double)e), wa = (float)(1.0 - (double)x / (double)e);
        for (int64_t i = 0; i < BC * h; i++) {
            volatile float pa = a[i * aw + aw - e + x] * wa;
            b[i * bw + x] = pa + b[i * bw + x] * wb;
        }
    }
}

typedef int (*tile_fn)(px_vae *m, float *out, const float *in, int64_t B, int64_t h, int64_t w,
                       px_dump *d);

typedef struct {
    int64_t tile;      /* input tile size (tile_latent_min_size / tile_sample_min_size) */
    int64_t overlap;   /* step between tile starts: int(tile * (1 - 0.25)) */
    int64_t blend;     /* blend_extent (output pixels) */
    int64_t row_limit; /* output rows/cols kept per tile */
    int up;            /* 1: output = input * f (decode); 0: input / f (encode) */
} tiling;

static int64_t tile_out(const tiling *t, int64_t n, int f) { return t->up ? n * f : n / f; }

/* Output extent of the tiled result along one axis of n input positions. */
static int64_t tiled_extent(const tiling *t, int64_t n, int f)
{
    int64_t total = 0;
    for (int64_t s = 0; s < n; s += t->overlap) {
        int64_t len = n - s < t->tile ? n - s : t->tile, o = tile_out(t, len, f);
        total += o < t->row_limit ? o : t->row_limit;
    }
    return total;
}

/* Runs fn on every tile of in (B, cin, H, W), blends and crops into out
 * (B, cout, OH, OW). Tiles are decoded row by row; only the previous row of
 * decoded tiles is kept (the blends read the tile above and the tile to the
 * left, both already blended, as diffusers' in-place blending does). */
static int run_tiled(px_vae *m, const tiling *t, tile_fn fn, float *out, const float *in, int64_t B,
                     int64_t cin, int64_t H, int64_t W, int64_t cout, px_dump *d)
{
    const int f = px_vae_downscale(m);
    const int64_t nj = (W + t->overlap - 1) / t->overlap, OW = tiled_extent(t, W, f),
                  OH = tiled_extent(t, H, f);
    float **prev = px_calloc((size_t)nj, sizeof(float *), "vae tile row");
    float **cur = px_calloc((size_t)nj, sizeof(float *), "vae tile row");
    float *tin = alloc_f(B * cin * t->tile * t->tile, "vae input tile");
    int rc = -1;
    if (!prev || !cur || !tin) goto out;
    int64_t oy = 0, prev_oh = 0;
    for (int64_t i = 0; i < H; i += t->overlap) {
        const int64_t th = H - i < t->tile ? H - i : t->tile, oh = tile_out(t, th, f);
        for (int64_t jj = 0; jj < nj; jj++) {
            const int64_t j = jj * t->overlap, tw = W - j < t->tile ? W - j : t->tile,
                          ow = tile_out(t, tw, f);
            /* tile = x[:, :, i : i + tile, j : j + tile] */
            for (int64_t bc = 0; bc < B * cin; bc++)
                for (int64_t y = 0; y < th; y++)
                    memcpy(tin + (bc * th + y) * tw, in + (bc * H + i + y) * W + j,
                           (size_t)tw * sizeof(float));
            cur[jj] = alloc_f(B * cout * oh * ow, "vae output tile");
            if (!cur[jj] || fn(m, cur[jj], tin, B, th, tw, d)) goto out;
        }
        int64_t ox = 0;
        for (int64_t jj = 0; jj < nj; jj++) {
            const int64_t j = jj * t->overlap, tw = W - j < t->tile ? W - j : t->tile,
                          ow = tile_out(t, tw, f);
            if (i > 0) blend_v(prev[jj], prev_oh, cur[jj], oh, B * cout, ow, t->blend);
            if (jj > 0) {
                const int64_t pw = tile_out(t, W - (j - t->overlap) < t->tile ? W - (j - t->overlap)
                                                                              : t->tile, f);
                blend_h(cur[jj - 1], pw, cur[jj], ow, B * cout, oh, t->blend);
            }
            /* result_row.append(tile[:, :, :row_limit, :row_limit]) */
            const int64_t ch = oh < t->row_limit ? oh : t->row_limit,
                          cw = ow < t->row_limit ? ow : t->row_limit;
            for (int64_t bc = 0; bc < B * cout; bc++)
                for (int64_t y = 0; y < ch; y++)
                    memcpy(out + (bc * OH + oy + y) * OW + ox, cur[jj] + (bc * oh + y) * ow,
                           (size_t)cw * sizeof(float));
            ox += cw;
        }
        for (int64_t jj = 0; jj < nj; jj++) {
            free(prev[jj]);
            prev[jj] = cur[jj];
            cur[jj] = NULL;
        }
        prev_oh = oh;
        oy += oh < t->row_limit ? oh : t->row_limit;
    }
    rc = 0;
out:
    if (prev)
        for (int64_t jj = 0; jj < nj; jj++) free(prev[jj]);
    if (cur)
        for (int64_t jj = 0; jj < nj; jj++) free(cur[jj]);
    free(prev);
    free(cur);
    free(tin);
    return rc;
}

/* The tiling parameters diffusers derives from the config, and a check that
 * the tiled result has the untiled size (true whenever sample_size is a
 * multiple of 4 * f; otherwise diffusers returns a differently sized image,
 * which this API cannot represent). */
static int make_tiling(const px_vae *m, tiling *t, int up, int64_t H, int64_t W, const char *what)
{
    const int f = px_vae_downscale(m);
    const int64_t sample = m->c.sample_size, latent = (int64_t)((double)sample / f);
    /* tile_overlap_factor 0.25; int() truncates like Python */
    if (up) {
        t->tile = latent;
        t->overlap = (int64_t)((double)latent * (1 - 0.25));
        t->blend = (int64_t)((double)sample * 0.25);
        t->row_limit = sample - t->blend;
    } else {
        t->tile = sample;
        t->overlap = (int64_t)((double)sample * (1 - 0.25));
        t->blend = (int64_t)((double)latent * 0.25);
        t->row_limit = latent - t->blend;
    }
    t->up = up;
    if (t->overlap < 1)
        return px_fail("%s: %s: tiling with sample_size %d and %d blocks gives empty tiles",
                       m->desc, what, m->c.sample_size, m->c.nblocks);
    const int64_t eh = up ? H * f : H / f, ew = up ? W * f : W / f;
    if (tiled_extent(t, H, f) != eh || tiled_extent(t, W, f) != ew)
        return px_fail("%s: %s: tiling with sample_size %d gives a %lldx%lld result instead of "
                       "%lldx%lld (diffusers' tiles do not cover it exactly)",
                       m->desc, what, m->c.sample_size, (long long)tiled_extent(t, H, f),
                       (long long)tiled_extent(t, W, f), (long long)eh, (long long)ew);
    if (!up) /* the encoder needs at least f pixels in every tile */
        for (int64_t s = 0; s < H || s < W; s += t->overlap)
            if ((s < H && H - s < f) || (s < W && W - s < f))
                return px_fail("%s: %s: an edge tile is smaller than %d pixels", m->desc, what, f);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* public entry points                                                     */

int px_vae_decode(px_vae *m, float *out, const float *z, int B, int h, int w, px_dump *dump)
{
    px_ops_init();
    if (B < 1 || h < 1 || w < 1 || h > (1 << 16) || w > (1 << 16))
        return px_fail("%s: decode: bad latent size %dx%dx%d", m->desc, B, h, w);
    const px_vae_config *c = &m->c;
    const int f = px_vae_downscale(m);
    const int64_t lc = c->latent_channels, oc = c->out_channels;
    tiling t;
    const int64_t T = (int64_t)((double)c->sample_size / f);
    const int tiled = m->tiling && (h > T || w > T);
    if (tiled && make_tiling(m, &t, 1, h, w, "decode")) return -1;
    /* one batch element at a time (bounded memory), the whole batch when
     * dumping (so the dump holds (B, ...) tensors like the reference) */
    const int64_t per = dump ? B : 1, zs = lc * h * w, os = oc * (int64_t)h * f * w * f;
    for (int64_t b = 0; b < B; b += per) {
        int rc = tiled ? run_tiled(m, &t, decoder_run, out + b * os, z + b * zs, per, lc, h, w, oc, dump)
                       : decoder_run(m, out + b * os, z + b * zs, per, h, w, dump);
        if (rc) return px_fail_ctx("%s: decode", m->desc);
    }
    return 0;
}

int px_vae_encode(px_vae *m, float *mean, const float *x, int B, int H, int W, px_dump *dump)
{
    px_ops_init();
    const px_vae_config *c = &m->c;
    const int f = px_vae_downscale(m);
    if (B < 1 || H < f || W < f || H > (1 << 19) || W > (1 << 19))
        return px_fail("%s: encode: bad image size %dx%dx%d (at least %d pixels per side)", m->desc,
                       B, H, W, f);
    const int64_t ic = c->in_channels, lc = c->latent_channels;
    tiling t;
    const int tiled = m->tiling && (H > c->sample_size || W > c->sample_size);
    if (tiled && make_tiling(m, &t, 0, H, W, "encode")) return -1;
    const int64_t per = dump ? B : 1, xs = ic * H * W, ms = lc * (int64_t)(H / f) * (W / f);
    for (int64_t b = 0; b < B; b += per) {
        int rc = tiled ? run_tiled(m, &t, encoder_run, mean + b * ms, x + b * xs, per, ic, H, W, lc, dump)
                       : encoder_run(m, mean + b * ms, x + b * xs, per, H, W, dump);
        if (rc) return px_fail_ctx("%s: encode", m->desc);
    }
    return 0;
}
