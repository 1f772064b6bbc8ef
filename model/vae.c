/* diffusers AutoencoderKL (v0.30.3): Decoder, Encoder and (post_)quant_conv,
 * written against ops/ops.h; enable_tiling()'s tiled_decode / tiled_encode
 * are in vae_tiled.c.
 *
 * Module map (diffusers -> here):
 *   ResnetBlock2D (resnet.py)              resnet_fwd
 *   Attention + AttnProcessor              attn_fwd (single head, group_norm, residual)
 *   UNetMidBlock2D                         mid_fwd
 *   Upsample2D / Downsample2D              upsample_fwd / downsample_fwd
 *   UpDecoderBlock2D / DownEncoderBlock2D  block_fwd
 *   Decoder / Encoder                      decoder_fwd / encoder_fwd
 *
 * Every module carries its diffusers name and records its own activations
 * when given a dump (model/module.h). Every layer function consumes its input
 * buffer (frees it, or reuses it in place) and returns a newly owned output,
 * so the buffers alive at any time are exactly the ones the computation still
 * needs: that, not a fixed run state, is what bounds a 1024 px decode to
 * about 2 GiB (doc/vae.md). */
#include "vae.h"
#include "vae_tiled.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/module.h"
#include "model/weights.h"
#include "ops/ops.h"
#include "tensor/error.h"
#include "tensor/json.h"

#define GN_EPS 1e-6f /* resnet_eps / GroupNorm eps everywhere in Encoder/Decoder */

/* ---------------------------------------------------------------------- */
/* modules                                                                 */

typedef struct {
    px_mod m;
    const float *w, *b; /* (C) */
    int64_t C;
    int flat;           /* recorded as (B, C, H*W): the attention's view */
} gnorm;

typedef struct {
    px_mod m;
    int64_t cin, cout;
    gnorm norm1, norm2;
    px_conv conv1, conv2;
    int has_shortcut; /* in_channels != out_channels: 1x1 conv_shortcut */
    px_conv shortcut;
} resnet;

typedef struct {
    px_mod m;
    int64_t C;
    gnorm gn;
    px_lin q, k, v, o;
} attn;

typedef struct {
    px_mod m;
    resnet r0, r1;
    int has_attn;
    attn at;
} midblock;

typedef struct {
    px_mod m;      /* upsamplers.0 / downsamplers.0 */
    px_conv conv;  /* its .conv */
} sampler;

typedef struct {
    px_mod m;
    int nres;
    resnet *res;
    int has_sampler;
    sampler smp;
} block;

typedef struct {
    px_mod m;      /* "vae/decoder", "vae/encoder" */
    px_conv conv_in;
    block *blocks; /* decoder: up_blocks (reversed channels); encoder: down_blocks */
    midblock mid;
    gnorm norm_out;
    px_mod act;    /* conv_act */
    px_conv conv_out;
} coder;

struct px_vae {
    px_vae_config c;
    px_weights *wt;
    coder enc, dec;
    int has_quant, has_post_quant;
    px_conv quant, post_quant;
    int tiling;
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
/* loading: every module under its state-dict name                         */

static int load_gnorm(gnorm *g, px_weights *w, int64_t C, int flat, const char *name)
{
    px_mod_init(&g->m, w, PX_REC_IN, "%s", name);
    g->C = C;
    g->flat = flat;
    if (!(g->w = px_weights_f32(w, 1, &C, "%s.weight", name))) return -1;
    return (g->b = px_weights_f32(w, 1, &C, "%s.bias", name)) ? 0 : -1;
}

static int load_resnet(resnet *r, px_weights *w, int64_t cin, int64_t cout, const char *name)
{
    char sub[224];
    px_mod_init(&r->m, w, PX_REC_IN, "%s", name);
    r->cin = cin;
    r->cout = cout;
    snprintf(sub, sizeof sub, "%s.norm1", name);
    if (load_gnorm(&r->norm1, w, cin, 0, sub) ||
        px_conv_load(&r->conv1, w, cin, cout, 3, 1, 1, PX_REC_IN, "%s.conv1", name))
        return -1;
    snprintf(sub, sizeof sub, "%s.norm2", name);
    if (load_gnorm(&r->norm2, w, cout, 0, sub) ||
        px_conv_load(&r->conv2, w, cout, cout, 3, 1, 1, PX_REC_IN, "%s.conv2", name))
        return -1;
    r->has_shortcut = cin != cout;
    if (r->has_shortcut && px_conv_load(&r->shortcut, w, cin, cout, 1, 1, 0, PX_REC_IN, "%s.conv_shortcut", name))
        return -1;
    return 0;
}

static int load_mid(midblock *mb, px_weights *w, int64_t C, int add_attn, const char *coder_name)
{
    char name[224];
    px_mod_init(&mb->m, w, PX_REC_IN, "%s.mid_block", coder_name);
    snprintf(name, sizeof name, "%s.mid_block.resnets.0", coder_name);
    if (load_resnet(&mb->r0, w, C, C, name)) return -1;
    snprintf(name, sizeof name, "%s.mid_block.resnets.1", coder_name);
    if (load_resnet(&mb->r1, w, C, C, name)) return -1;
    mb->has_attn = add_attn;
    if (!add_attn) return 0;
    snprintf(name, sizeof name, "%s.mid_block.attentions.0", coder_name);
    attn *a = &mb->at;
    px_mod_init(&a->m, w, PX_REC_IN, "%s", name);
    a->C = C;
    char gn[240];
    snprintf(gn, sizeof gn, "%s.group_norm", name);
    if (load_gnorm(&a->gn, w, C, 1, gn) || px_lin_load(&a->q, w, C, C, 1, PX_REC_IN, "%s.to_q", name) ||
        px_lin_load(&a->k, w, C, C, 1, PX_REC_IN, "%s.to_k", name) ||
        px_lin_load(&a->v, w, C, C, 1, PX_REC_IN, "%s.to_v", name) ||
        px_lin_load(&a->o, w, C, C, 1, PX_REC_IN, "%s.to_out.0", name))
        return -1;
    return 0;
}

/* up_blocks.i / down_blocks.i: nres ResNets (the first from cin channels),
 * then, unless last, upsamplers.0 (3x3 conv after 2x nearest) or
 * downsamplers.0 (3x3 stride-2 conv after padding). */
static int load_block(block *b, px_weights *w, int up, int i, int nres, int64_t cin, int64_t cout, int last)
{
    const char *kind = up ? "decoder.up_blocks" : "encoder.down_blocks";
    px_mod_init(&b->m, w, PX_REC_IN, "%s.%d", kind, i);
    b->nres = nres;
    b->res = px_calloc((size_t)nres, sizeof(resnet), "vae resnets");
    if (!b->res) return -1;
    for (int r = 0; r < nres; r++) {
        char name[128];
        snprintf(name, sizeof name, "%s.%d.resnets.%d", kind, i, r);
        if (load_resnet(&b->res[r], w, r == 0 ? cin : cout, cout, name)) return -1;
    }
    b->has_sampler = !last;
    if (last) return 0;
    const char *s = up ? "upsamplers" : "downsamplers";
    px_mod_init(&b->smp.m, w, PX_REC_IN, "%s.%d.%s.0", kind, i, s);
    return px_conv_load(&b->smp.conv, w, cout, cout, 3, up ? 1 : 2, up ? 1 : 0, PX_REC_IN, "%s.%d.%s.0.conv", kind,
                        i, s);
}

static int load_coder_end(coder *cd, px_weights *w, const char *name, int64_t C, int64_t cout)
{
    char sub[64];
    snprintf(sub, sizeof sub, "%s.conv_norm_out", name);
    px_mod_init(&cd->act, w, PX_REC_IN, "%s.conv_act", name);
    if (load_gnorm(&cd->norm_out, w, C, 0, sub)) return -1;
    return px_conv_load(&cd->conv_out, w, C, cout, 3, 1, 1, PX_REC_IN, "%s.conv_out", name);
}

/* Decoder(...): conv_in -> mid_block -> up_blocks (reversed channels,
 * layers_per_block + 1 ResNets, Upsample2D in all but the last) -> out. */
static int load_decoder(coder *d, px_weights *w, const px_vae_config *c)
{
    const int n = c->nblocks;
    const int64_t top = c->block_out[n - 1];
    px_mod_init(&d->m, w, PX_REC_IN, "decoder");
    if (px_conv_load(&d->conv_in, w, c->latent_channels, top, 3, 1, 1, PX_REC_IN, "decoder.conv_in") ||
        load_mid(&d->mid, w, top, c->mid_block_add_attention, "decoder"))
        return -1;
    if (!(d->blocks = px_calloc((size_t)n, sizeof(block), "vae decoder blocks"))) return -1;
    for (int i = 0; i < n; i++)
        if (load_block(&d->blocks[i], w, 1, i, c->layers_per_block + 1,
                       i ? c->block_out[n - i] : top, c->block_out[n - 1 - i], i == n - 1))
            return -1;
    return load_coder_end(d, w, "decoder", c->block_out[0], c->out_channels);
}

/* Encoder(double_z=True): conv_in -> down_blocks (layers_per_block ResNets,
 * Downsample2D(padding=0) in all but the last) -> mid_block -> out. */
static int load_encoder(coder *e, px_weights *w, const px_vae_config *c)
{
    const int n = c->nblocks;
    const int64_t top = c->block_out[n - 1];
    px_mod_init(&e->m, w, PX_REC_IN, "encoder");
    if (px_conv_load(&e->conv_in, w, c->in_channels, c->block_out[0], 3, 1, 1, PX_REC_IN, "encoder.conv_in"))
        return -1;
    if (!(e->blocks = px_calloc((size_t)n, sizeof(block), "vae encoder blocks"))) return -1;
    for (int i = 0; i < n; i++)
        if (load_block(&e->blocks[i], w, 0, i, c->layers_per_block,
                       c->block_out[i ? i - 1 : 0], c->block_out[i], i == n - 1))
            return -1;
    return load_mid(&e->mid, w, top, c->mid_block_add_attention, "encoder") ||
           load_coder_end(e, w, "encoder", top, 2 * (int64_t)c->latent_channels);
}

/* The model over w (taken over: closed by px_vae_free, also on failure). */
static px_vae *vae_build(const px_vae_config *c, px_weights *w)
{
    px_vae *m = px_calloc(1, sizeof *m, "vae");
    if (!m) {
        px_weights_close(w);
        return NULL;
    }
    m->c = *c;
    m->wt = w;
    const int64_t lc = c->latent_channels;
    m->has_quant = c->use_quant_conv;
    m->has_post_quant = c->use_post_quant_conv;
    if (load_decoder(&m->dec, w, c) || load_encoder(&m->enc, w, c) ||
        (m->has_post_quant && px_conv_load(&m->post_quant, w, lc, lc, 1, 1, 0, PX_REC_IN, "post_quant_conv")) ||
        (m->has_quant && px_conv_load(&m->quant, w, 2 * lc, 2 * lc, 1, 1, 0, PX_REC_IN, "quant_conv")) ||
        px_weights_check_unused(w)) {
        px_vae_free(m);
        return NULL;
    }
    return m;
}

px_vae *px_vae_new(const px_vae_config *c, px_vae_lookup_fn get, void *ctx, const char *desc)
{
    px_weights *w = px_weights_wrap(get, ctx, desc ? desc : "vae", "vae");
    return w ? vae_build(c, w) : NULL;
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
    px_weights *w = px_weights_open(dir, "diffusion_pytorch_model", variant, "vae");
    return w ? vae_build(&c, w) : NULL;
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
    px_weights_close(m->wt);
    free(m);
}

const px_vae_config *px_vae_get_config(const px_vae *m) { return &m->c; }
float px_vae_scaling_factor(const px_vae *m) { return m->c.scaling_factor; }
int px_vae_downscale(const px_vae *m) { return 1 << (m->c.nblocks - 1); }
int px_vae_latent_channels(const px_vae *m) { return m->c.latent_channels; }
const char *px_vae_desc(const px_vae *m) { return px_weights_desc(m->wt); }

int px_vae_set_tiling(px_vae *m, int enabled)
{
    int old = m->tiling;
    m->tiling = enabled != 0;
    return old;
}

/* ---------------------------------------------------------------------- */
/* layers                                                                  */

static float *alloc_f(int64_t n, const char *what) { return px_malloc((size_t)n * sizeof(float), what); }

/* nn.Conv2d into a new buffer: x (B, cin, H, W) -> (B, cout, Ho, Wo). */
static float *conv_new(const px_conv *c, const float *x, int64_t B, int64_t H, int64_t W, px_dump *d)
{
    const int64_t Ho = (H + 2 * c->pad - c->k) / c->stride + 1, Wo = (W + 2 * c->pad - c->k) / c->stride + 1;
    float *y = alloc_f(B * c->cout * Ho * Wo, "vae conv output");
    if (y && px_conv_fwd(y, x, c, B, H, W, d)) {
        free(y);
        return NULL;
    }
    return y;
}

/* nn.GroupNorm(G, C, eps=1e-6): y = norm(x), x (B, C, H, W); y may be x. */
static int gnorm_fwd(float *y, const float *x, const gnorm *g, int64_t B, int64_t H, int64_t W, int G, px_dump *d)
{
    const int64_t C = g->C;
    if (g->flat ? px_mod_in(&g->m, d, x, PX_SHAPE(B, C, H * W)) : px_mod_in(&g->m, d, x, PX_SHAPE(B, C, H, W)))
        return -1;
    px_groupnorm(y, x, g->w, g->b, B, C, H * W, G, GN_EPS);
    return g->flat ? px_mod_out(&g->m, d, y, PX_SHAPE(B, C, H * W)) : px_mod_out(&g->m, d, y, PX_SHAPE(B, C, H, W));
}

/* nn.Linear per batch element, so that a batch gives bit for bit what its
 * elements give alone (sgemm's blocking depends on M): (B, N, K) -> (B, N, N_out). */
static int lin_per_batch(float *out, const float *in, const px_lin *l, int64_t B, int64_t N, px_dump *d)
{
    const int64_t No = l->w->shape[0], K = l->w->shape[1];
    if (px_mod_in(&l->m, d, in, PX_SHAPE(B, N, K))) return -1;
    for (int64_t b = 0; b < B; b++)
        if (px_linear(out + b * N * No, in + b * N * K, l->w, l->b, N)) return -1;
    return px_mod_out(&l->m, d, out, PX_SHAPE(B, N, No));
}

/* ResnetBlock2D (temb None, output_scale_factor 1), consumes x:
 *   h = conv1(silu(norm1(x))); h = conv2(silu(norm2(h)))
 *   out = (conv_shortcut(x) if cin != cout else x) + h
 * x: (B, cin, H, W) -> (B, cout, H, W). */
static float *resnet_fwd(const resnet *r, float *x, int64_t B, int64_t H, int64_t W, int G, px_dump *d)
{
    const int64_t HW = H * W, nin = B * r->cin * HW, nout = B * r->cout * HW;
    float *sc = NULL, *h = NULL, *h2 = NULL;
    if (px_mod_in(&r->m, d, x, PX_SHAPE(B, r->cin, H, W))) goto fail;
    if (r->has_shortcut) {
        /* input_tensor = self.conv_shortcut(input_tensor): done first, so that
         * x is dead afterwards and norm1 can run in place */
        if (!(sc = conv_new(&r->shortcut, x, B, H, W, d))) goto fail;
        h = x;
        x = NULL;
    } else if (!(h = alloc_f(nin, "vae resnet hidden"))) {
        goto fail;
    }
    // hidden_states = self.conv1(self.nonlinearity(self.norm1(input_tensor)))
    if (gnorm_fwd(h, x ? x : h, &r->norm1, B, H, W, G, d)) goto fail;
    px_silu(h, h, nin);
    h2 = conv_new(&r->conv1, h, B, H, W, d);
    free(h);
    h = NULL;
    if (!h2) goto fail;
    // hidden_states = self.conv2(self.nonlinearity(self.norm2(hidden_states)))
    if (gnorm_fwd(h2, h2, &r->norm2, B, H, W, G, d)) goto fail;
    px_silu(h2, h2, nout);
    h = conv_new(&r->conv2, h2, B, H, W, d);
    free(h2);
    h2 = NULL;
    if (!h) goto fail;
    // output_tensor = (input_tensor + hidden_states) / 1.0
    px_add(h, sc ? sc : x, h, nout);
    free(sc); free(x);
    if (px_mod_out(&r->m, d, h, PX_SHAPE(B, r->cout, H, W))) {
        free(h);
        return NULL;
    }
    return h;
fail:
    free(x); free(sc); free(h); free(h2);
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
 * rescale_output_factor 1) with AttnProcessor; x (B, C, H, W) is updated in
 * place (x += attention(x)). */
static int attn_fwd(const attn *a, float *x, int64_t B, int64_t H, int64_t W, int G, px_dump *d)
{
    const int64_t C = a->C, N = H * W, n = B * C * N;
    float *g = NULL, *t = NULL, *q = NULL, *k = NULL, *v = NULL, *o = NULL;
    int rc = -1;
    if (px_mod_in(&a->m, d, x, PX_SHAPE(B, C, H, W))) goto out;
    g = alloc_f(n, "vae attention norm");
    t = alloc_f(n, "vae attention tokens");
    if (!g || !t) goto out;
    // hidden_states = self.group_norm(hidden_states.view(B, C, H * W)).transpose(1, 2)   (B, N, C)
    if (gnorm_fwd(g, x, &a->gn, B, H, W, G, d)) goto out;
    transpose_cn(t, g, B, C, N);
    free(g);
    g = NULL;
    q = alloc_f(n, "vae attention q");
    k = alloc_f(n, "vae attention k");
    v = alloc_f(n, "vae attention v");
    if (!q || !k || !v) goto out;
    // query, key, value = attn.to_q(hidden_states), attn.to_k(...), attn.to_v(...)
    if (lin_per_batch(q, t, &a->q, B, N, d) || lin_per_batch(k, t, &a->k, B, N, d) ||
        lin_per_batch(v, t, &a->v, B, N, d))
        goto out;
    // hidden_states = softmax(query @ key^T * scale) @ value, scale = dim_head ** -0.5 (baddbmm alpha)
    px_attn_args args = {.B = B, .Nq = N, .Nk = N, .H = 1, .D = C, .scale = (float)pow((double)C, -0.5)};
    if (px_attention(t, q, k, v, &args)) goto out; /* t: (B, N, C) attention output */
    free(q); free(k); free(v);
    q = k = v = NULL;
    // hidden_states = attn.to_out[0](hidden_states)
    if (!(o = alloc_f(n, "vae attention out")) || lin_per_batch(o, t, &a->o, B, N, d)) goto out;
    // hidden_states.transpose(-1, -2).reshape(B, C, H, W) + residual
    transpose_cn(t, o, B, N, C); /* (B, N, C) -> (B, C, N) */
    px_add(x, t, x, n);
    rc = px_mod_out(&a->m, d, x, PX_SHAPE(B, C, H, W));
out:
    free(g); free(t); free(q); free(k); free(v); free(o);
    return rc;
}

/* UNetMidBlock2D: resnets[0] -> attentions[0] -> resnets[1]; consumes x (B, C, H, W). */
static float *mid_fwd(const midblock *mb, float *x, int64_t B, int64_t H, int64_t W, int G, px_dump *d)
{
    const int64_t C = mb->r0.cin;
    if (px_mod_in(&mb->m, d, x, PX_SHAPE(B, C, H, W))) goto fail;
    if (!(x = resnet_fwd(&mb->r0, x, B, H, W, G, d))) return NULL;
    if (mb->has_attn && attn_fwd(&mb->at, x, B, H, W, G, d)) goto fail;
    if (!(x = resnet_fwd(&mb->r1, x, B, H, W, G, d))) return NULL;
    if (px_mod_out(&mb->m, d, x, PX_SHAPE(B, C, H, W))) goto fail;
    return x;
fail:
    free(x);
    return NULL;
}

/* Upsample2D(use_conv): conv(interpolate(x, scale_factor=2, mode="nearest"));
 * consumes x (B, C, H, W) -> (B, C, 2H, 2W). */
static float *upsample_fwd(const sampler *s, float *x, int64_t B, int64_t H, int64_t W, px_dump *d)
{
    const int64_t C = s->conv.cin;
    float *u = NULL, *y = NULL;
    if (px_mod_in(&s->m, d, x, PX_SHAPE(B, C, H, W)) || !(u = alloc_f(B * C * 4 * H * W, "vae upsampled"))) goto out;
    px_upsample_nearest2x(u, x, B, C, H, W);
    free(x);
    x = NULL;
    y = conv_new(&s->conv, u, B, 2 * H, 2 * W, d);
    if (y && px_mod_out(&s->m, d, y, PX_SHAPE(B, C, 2 * H, 2 * W))) {
        free(y);
        y = NULL;
    }
out:
    free(x); free(u);
    return y;
}

/* Downsample2D(use_conv, padding=0): conv(F.pad(x, (0, 1, 0, 1)), stride 2);
 * consumes x (B, C, H, W) -> (B, C, H/2, W/2) (integer division). */
static float *downsample_fwd(const sampler *s, float *x, int64_t B, int64_t H, int64_t W, px_dump *d)
{
    const int64_t C = s->conv.cin, Hp = H + 1, Wp = W + 1, Ho = (Hp - 3) / 2 + 1, Wo = (Wp - 3) / 2 + 1;
    float *p = NULL, *y = NULL;
    if (px_mod_in(&s->m, d, x, PX_SHAPE(B, C, H, W)) || !(p = alloc_f(B * C * Hp * Wp, "vae padded"))) goto out;
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
    y = conv_new(&s->conv, p, B, Hp, Wp, d);
    if (y && px_mod_out(&s->m, d, y, PX_SHAPE(B, C, Ho, Wo))) {
        free(y);
        y = NULL;
    }
out:
    free(x); free(p);
    return y;
}

/* UpDecoderBlock2D / DownEncoderBlock2D: ResNets, then the up/down sampler;
 * consumes x (B, *C, *H, *W) and updates the sizes. */
static float *block_fwd(const block *b, float *x, int64_t B, int64_t *C, int64_t *H, int64_t *W, int G, int up,
                        px_dump *d)
{
    if (px_mod_in(&b->m, d, x, PX_SHAPE(B, *C, *H, *W))) goto fail;
    for (int r = 0; r < b->nres; r++) {
        if (!(x = resnet_fwd(&b->res[r], x, B, *H, *W, G, d))) return NULL;
        *C = b->res[r].cout;
    }
    if (b->has_sampler) {
        x = up ? upsample_fwd(&b->smp, x, B, *H, *W, d) : downsample_fwd(&b->smp, x, B, *H, *W, d);
        if (!x) return NULL;
        *H = up ? 2 * *H : *H / 2;
        *W = up ? 2 * *W : *W / 2;
    }
    if (px_mod_out(&b->m, d, x, PX_SHAPE(B, *C, *H, *W))) goto fail;
    return x;
fail:
    free(x);
    return NULL;
}

/* conv_out(conv_act(conv_norm_out(x))) into `out`; consumes x (B, C, H, W). */
static int out_fwd(const coder *cd, float *out, float *x, int64_t B, int64_t C, int64_t H, int64_t W, int G,
                   px_dump *d)
{
    int rc = -1;
    if (gnorm_fwd(x, x, &cd->norm_out, B, H, W, G, d) || px_mod_in(&cd->act, d, x, PX_SHAPE(B, C, H, W)))
        goto out;
    px_silu(x, x, B * C * H * W);
    if (px_mod_out(&cd->act, d, x, PX_SHAPE(B, C, H, W))) goto out;
    rc = px_conv_fwd(out, x, &cd->conv_out, B, H, W, d);
out:
    free(x);
    return rc;
}

/* ---------------------------------------------------------------------- */
/* decoder / encoder                                                       */

/* Decoder.forward: consumes x (B, lc, h, w) -> out (B, out_ch, h*f, w*f). */
static int decoder_fwd(const coder *dec, float *out, float *x, int64_t B, int64_t h, int64_t w, int G, int nblocks,
                       px_dump *d)
{
    int64_t C = dec->conv_in.cout, H = h, W = w;
    // sample = self.conv_in(z)
    float *y = conv_new(&dec->conv_in, x, B, H, W, d);
    free(x);
    // sample = self.mid_block(sample)
    if (!y || !(x = mid_fwd(&dec->mid, y, B, H, W, G, d))) return -1;
    // for up_block in self.up_blocks: sample = up_block(sample)
    for (int i = 0; i < nblocks; i++)
        if (!(x = block_fwd(&dec->blocks[i], x, B, &C, &H, &W, G, 1, d))) return -1;
    // sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
    return out_fwd(dec, out, x, B, C, H, W, G, d);
}

/* Encoder.forward: img (B, in_ch, H, W) -> out (B, 2*lc, H/f, W/f). */
static int encoder_fwd(const coder *enc, float *out, const float *img, int64_t B, int64_t H, int64_t W, int G,
                       int nblocks, px_dump *d)
{
    int64_t C = enc->conv_in.cout;
    // sample = self.conv_in(sample)
    float *x = conv_new(&enc->conv_in, img, B, H, W, d);
    if (!x) return -1;
    // for down_block in self.down_blocks: sample = down_block(sample)
    for (int i = 0; i < nblocks; i++)
        if (!(x = block_fwd(&enc->blocks[i], x, B, &C, &H, &W, G, 0, d))) return -1;
    // sample = self.mid_block(sample)
    if (!(x = mid_fwd(&enc->mid, x, B, H, W, G, d))) return -1;
    // sample = self.conv_out(self.conv_act(self.conv_norm_out(sample)))
    return out_fwd(enc, out, x, B, C, H, W, G, d);
}

/* AutoencoderKL._decode: z (B, lc, h, w) -> out (B, out_ch, h*f, w*f) =
 * decoder(post_quant_conv(z)); the Decoder records its own input and output. */
static int decode_tile(px_vae *m, float *out, const float *z, int64_t B, int64_t h, int64_t w, px_dump *d)
{
    const px_vae_config *c = &m->c;
    const int64_t lc = c->latent_channels, f = px_vae_downscale(m), n = B * lc * h * w;
    float *x = m->has_post_quant ? conv_new(&m->post_quant, z, B, h, w, d) : alloc_f(n, "vae latents");
    if (!x) return -1;
    if (!m->has_post_quant) memcpy(x, z, (size_t)n * sizeof(float));
    if (px_mod_in(&m->dec.m, d, x, PX_SHAPE(B, lc, h, w))) {
        free(x);
        return -1;
    }
    if (decoder_fwd(&m->dec, out, x, B, h, w, c->norm_num_groups, c->nblocks, d)) return -1;
    return px_mod_out(&m->dec.m, d, out, PX_SHAPE(B, c->out_channels, h * f, w * f));
}

/* AutoencoderKL._encode + latent_dist.mean: img (B, in_ch, H, W) ->
 * mean (B, lc, H/f, W/f), the first half of quant_conv(encoder(img)). */
static int encode_tile(px_vae *m, float *mean, const float *img, int64_t B, int64_t H, int64_t W, px_dump *d)
{
    const px_vae_config *c = &m->c;
    const int64_t lc = c->latent_channels;
    int64_t Ho = H, Wo = W; /* each Downsample2D: floor(n / 2) */
    for (int i = 0; i + 1 < c->nblocks; i++) Ho /= 2, Wo /= 2;
    float *h = alloc_f(B * 2 * lc * Ho * Wo, "vae encoder output"), *mom = NULL;
    if (!h || px_mod_in(&m->enc.m, d, img, PX_SHAPE(B, c->in_channels, H, W)) ||
        encoder_fwd(&m->enc, h, img, B, H, W, c->norm_num_groups, c->nblocks, d) ||
        px_mod_out(&m->enc.m, d, h, PX_SHAPE(B, 2 * lc, Ho, Wo)))
        goto out;
    // moments = self.quant_conv(h)
    mom = m->has_quant ? conv_new(&m->quant, h, B, Ho, Wo, d) : h;
    if (!mom) goto out;
    // DiagonalGaussianDistribution: mean, logvar = torch.chunk(moments, 2, dim=1)
    for (int64_t b = 0; b < B; b++)
        memcpy(mean + b * lc * Ho * Wo, mom + b * 2 * lc * Ho * Wo, (size_t)(lc * Ho * Wo) * sizeof(float));
out:
    if (mom != h) free(mom);
    free(h);
    return mom ? 0 : -1;
}

/* ---------------------------------------------------------------------- */
/* public entry points                                                     */

int px_vae_decode(px_vae *m, float *out, const float *z, int B, int h, int w, px_dump *dump)
{
    px_ops_init();
    if (B < 1 || h < 1 || w < 1 || h > (1 << 16) || w > (1 << 16))
        return px_fail("%s: decode: bad latent size %dx%dx%d", px_vae_desc(m), B, h, w);
    const px_vae_config *c = &m->c;
    const int f = px_vae_downscale(m);
    const int64_t lc = c->latent_channels, oc = c->out_channels;
    px_vae_tiling t;
    const int64_t T = (int64_t)((double)c->sample_size / f);
    const int tiled = m->tiling && (h > T || w > T);
    if (tiled && px_vae_tiling_make(m, &t, 1, h, w, "decode")) return -1;
    /* one batch element at a time (bounded memory), the whole batch when
     * dumping (so the dump holds (B, ...) tensors like the reference) */
    const int64_t per = dump ? B : 1, zs = lc * h * w, os = oc * (int64_t)h * f * w * f;
    for (int64_t b = 0; b < B; b += per) {
        int rc = tiled ? px_vae_run_tiled(m, &t, decode_tile, out + b * os, z + b * zs, per, lc, h, w, oc, dump)
                       : decode_tile(m, out + b * os, z + b * zs, per, h, w, dump);
        if (rc) return px_fail_ctx("%s: decode", px_vae_desc(m));
    }
    return 0;
}

int px_vae_encode(px_vae *m, float *mean, const float *x, int B, int H, int W, px_dump *dump)
{
    px_ops_init();
    const px_vae_config *c = &m->c;
    const int f = px_vae_downscale(m);
    if (B < 1 || H < f || W < f || H > (1 << 19) || W > (1 << 19))
        return px_fail("%s: encode: bad image size %dx%dx%d (at least %d pixels per side)", px_vae_desc(m),
                       B, H, W, f);
    const int64_t ic = c->in_channels, lc = c->latent_channels;
    px_vae_tiling t;
    const int tiled = m->tiling && (H > c->sample_size || W > c->sample_size);
    if (tiled && px_vae_tiling_make(m, &t, 0, H, W, "encode")) return -1;
    const int64_t per = dump ? B : 1, xs = ic * H * W, ms = lc * (int64_t)(H / f) * (W / f);
    for (int64_t b = 0; b < B; b += per) {
        int rc = tiled ? px_vae_run_tiled(m, &t, encode_tile, mean + b * ms, x + b * xs, per, ic, H, W, lc, dump)
                       : encode_tile(m, mean + b * ms, x + b * xs, per, H, W, dump);
        if (rc) return px_fail_ctx("%s: encode", px_vae_desc(m));
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* memory estimate: the buffers the decode functions above allocate        */

/* Live bytes while replaying the decoder's allocations in order. */
typedef struct {
    int64_t live, peak;
} mem_walk;

static void mw_alloc(mem_walk *m, int64_t floats)
{
    m->live += floats * (int64_t)sizeof(float);
    if (m->live > m->peak) m->peak = m->live;
}
static void mw_free(mem_walk *m, int64_t floats) { m->live -= floats * (int64_t)sizeof(float); }
/* Scratch that exists only inside one operator call. */
static void mw_scratch(mem_walk *m, int64_t bytes)
{
    if (m->live + bytes > m->peak) m->peak = m->live + bytes;
}

/* px_conv2d's scratch for a stride-1 convolution (the blocked path the
 * decoder takes): the packed weights, a float32 copy of half-precision
 * weights, and per thread one column panel of at most KC_MAX x NU_MAX (256 x
 * 256) floats (ops/gemm_blocked.c). */
static void mw_conv(mem_walk *m, int64_t cin, int64_t cout, int64_t k, int nt)
{
    mw_scratch(m, (int64_t)sizeof(float) * (2 * (cout + 16) * cin * k * k + (int64_t)nt * (256 * 256 + 16)));
}

/* conv_new: the output buffer, allocated before the convolution runs. */
static void mw_conv_new(mem_walk *m, int64_t cin, int64_t cout, int64_t k, int64_t n_out, int nt)
{
    mw_alloc(m, n_out);
    mw_conv(m, cin, cout, k, nt);
}

/* resnet_fwd: x (cin) in, h (cout) out. */
static void mw_resnet(mem_walk *m, int64_t cin, int64_t cout, int64_t n, int nt)
{
    if (cin != cout) {
        mw_conv_new(m, cin, cout, 1, cout * n, nt); /* sc; x becomes h */
        mw_conv_new(m, cin, cout, 3, cout * n, nt); /* h2 = conv1(h): x, sc, h2 live */
        mw_free(m, cin * n);                        /* h */
        mw_conv_new(m, cout, cout, 3, cout * n, nt); /* h = conv2(h2): sc, h2, h */
        mw_free(m, 2 * cout * n);                    /* h2, sc */
    } else {
        mw_alloc(m, cin * n);                        /* h = norm1(x) */
        mw_conv_new(m, cin, cout, 3, cout * n, nt);  /* h2: x, h, h2 */
        mw_free(m, cin * n);
        mw_conv_new(m, cout, cout, 3, cout * n, nt); /* h: x, h2, h */
        mw_free(m, cout * n + cin * n);              /* h2, x */
    }
}

/* attn_fwd on x (C, N) in place: g, t; then t, q, k, v and px_attention's
 * per-thread scratch (the packed K and V of all N keys, a query block and
 * its output: ops/attention.c, QB 256, KT 384); then t, o. */
static void mw_attn(mem_walk *m, int64_t C, int64_t N, int nt)
{
    mw_alloc(m, 2 * C * N);
    mw_free(m, C * N);
    mw_alloc(m, 3 * C * N);
    const int64_t Cp = C + 32, per = 2 * N * Cp + 2 * 256 * Cp + 4 * 384 + 2 * 256 + 64;
    mw_scratch(m, (int64_t)sizeof(float) * (int64_t)nt * per);
    mw_free(m, 3 * C * N);
    mw_alloc(m, C * N); /* o */
    mw_free(m, 2 * C * N);
}

/* decode_tile on (B, lc, h, w) latents: the peak bytes it allocates besides
 * z and out (both the caller's). */
static int64_t decode_tile_peak(const px_vae_config *c, int64_t B, int64_t h, int64_t w, int nt)
{
    mem_walk m = {0, 0};
    const int n = c->nblocks;
    const int64_t lc = c->latent_channels, top = c->block_out[n - 1];
    int64_t H = h, W = w, C = top;
    mw_conv_new(&m, lc, lc, 1, B * lc * H * W, nt);       /* post_quant_conv (or the copy) */
    mw_conv_new(&m, lc, top, 3, B * top * H * W, nt);     /* conv_in */
    mw_free(&m, B * lc * H * W);
    mw_resnet(&m, top, top, B * H * W, nt);               /* mid_block */
    if (c->mid_block_add_attention) mw_attn(&m, top, H * W, nt);
    mw_resnet(&m, top, top, B * H * W, nt);
    for (int i = 0; i < n; i++) {                         /* up_blocks */
        const int64_t cout = c->block_out[n - 1 - i];
        for (int r = 0; r <= c->layers_per_block; r++) {
            mw_resnet(&m, C, cout, B * H * W, nt);
            C = cout;
        }
        if (i == n - 1) break;
        mw_alloc(&m, 4 * B * C * H * W);                  /* upsampled */
        mw_free(&m, B * C * H * W);
        H *= 2;
        W *= 2;
        mw_conv_new(&m, C, C, 3, B * C * H * W, nt);
        mw_free(&m, B * C * H * W);
    }
    mw_conv(&m, C, c->out_channels, 3, nt);               /* conv_out into out */
    return m.peak;
}

int64_t px_vae_decode_work_bytes(const px_vae_config *c, int64_t B, int64_t h, int64_t w, int tiled, int nt)
{
    if (nt < 1) nt = 1;
    const int64_t f = (int64_t)1 << (c->nblocks - 1), T = (int64_t)((double)c->sample_size / (double)f),
                  step = (int64_t)((double)T * (1 - 0.25));
    if (!tiled || (h <= T && w <= T) || step < 1) return decode_tile_peak(c, B, h, w, nt);
    /* px_vae_run_tiled: the input tile, the previous row of decoded tiles and
     * the current one (nj each, the last being decoded into), and one tile's
     * decode */
    const int64_t th = h < T ? h : T, tw = w < T ? w : T, nj = (w + step - 1) / step,
                  tile_out = B * c->out_channels * th * f * tw * f;
    return (int64_t)sizeof(float) * (B * c->latent_channels * th * tw + 2 * nj * tile_out) +
           2 * nj * (int64_t)sizeof(float *) + decode_tile_peak(c, B, th, tw, nt);
}

/* Parameters of nn.Conv2d(ci, co, k) with bias, of a norm with weight and bias,
 * and of a ResnetBlock2D (ci -> co). */
static int64_t conv_params(int64_t ci, int64_t co, int64_t k) { return co * ci * k * k + co; }
static int64_t resnet_params(int64_t ci, int64_t co)
{
    return 2 * ci + conv_params(ci, co, 3) + 2 * co + conv_params(co, co, 3) + (ci != co ? conv_params(ci, co, 1) : 0);
}

int64_t px_vae_decoder_params(const px_vae_config *c)
{
    const int n = c->nblocks;
    const int64_t lc = c->latent_channels, top = c->block_out[n - 1];
    int64_t p = (c->use_post_quant_conv ? conv_params(lc, lc, 1) : 0) + conv_params(lc, top, 3);
    p += 2 * resnet_params(top, top);                                 /* mid_block */
    if (c->mid_block_add_attention) p += 2 * top + 4 * (top * top + top); /* group_norm, q, k, v, out */
    int64_t C = top;
    for (int i = 0; i < n; i++) {
        const int64_t cout = c->block_out[n - 1 - i];
        for (int r = 0; r <= c->layers_per_block; r++) {
            p += resnet_params(C, cout);
            C = cout;
        }
        if (i != n - 1) p += conv_params(C, C, 3); /* upsamplers.0.conv */
    }
    return p + 2 * C + conv_params(C, c->out_channels, 3); /* conv_norm_out, conv_out */
}
