/* diffusers PixArtAlphaPipeline (v0.30.3, pipelines/pixart_alpha/
 * pipeline_pixart_alpha.py): encode_prompt, prepare_latents, the denoising
 * loop with classifier-free guidance, VAE decode and the image
 * post-processing, on top of the T5 encoder, the DiT, the VAE and the
 * schedulers.
 *
 * Memory policy: each model is loaded for its stage and freed right after it,
 * so the text encoder (4.7 B parameters for T5-XXL) and the transformer are
 * never resident together. */
#include "src/pipeline/pipeline.h"
#include "src/pipeline/binning.h"
#include "src/tokenizer/t5_tokenizer.h"
#include "src/tokenizer/unicode.h"
#include "model/dit.h"
#include "model/t5.h"
#include "model/vae.h"
#include "sched/rng.h"
#include "sched/config.h"
#include "sched/scheduler.h"
#include "tensor/dump.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

// ---------------------------------------------------------------------------
// Small pieces of the loop body (tested on their own)

/* torch evaluates `uncond + g * (cond - uncond)` as separate float32 kernels;
 * keep the compiler from fusing the multiply-add (GCC contracts across
 * statements with -ffp-contract=fast, its gnu11 default, when FMA is enabled). */
#if defined(__GNUC__) && !defined(__clang__)
#define PX_NO_CONTRACT __attribute__((optimize("fp-contract=off")))
#else
#define PX_NO_CONTRACT
#endif
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

PX_NO_CONTRACT void px_guidance_combine(float *eps, const float *model_out, int N, int out_ch, int in_ch, int64_t hw,
                         int cfg, float g)
{
    int keep = (out_ch / 2 == in_ch) ? in_ch : out_ch; // learned sigma: keep the first half
    for (int n = 0; n < N; n++)
        for (int c = 0; c < keep; c++) {
            float *e = eps + ((int64_t)n * keep + c) * hw;
            if (cfg) {
                // noise_pred.chunk(2): [uncond; cond]
                const float *u = model_out + ((int64_t)n * out_ch + c) * hw;
                const float *t = model_out + ((int64_t)(N + n) * out_ch + c) * hw;
                for (int64_t i = 0; i < hw; i++) {
                    float d = t[i] - u[i]; // (noise_pred_text - noise_pred_uncond)
                    float s = g * d;       // guidance_scale * (...)
                    e[i] = u[i] + s;       // noise_pred_uncond + ...
                }
            } else {
                memcpy(e, model_out + ((int64_t)n * out_ch + c) * hw, sizeof(float) * (size_t)hw);
            }
        }
}

void px_repeat_rows(float *out, const float *in, int B, int n, int64_t row)
{
    for (int i = 0; i < B * n; i++) memcpy(out + (int64_t)i * row, in + (int64_t)(i / n) * row, sizeof(float) * (size_t)row);
}

void px_repeat_rows_i32(int32_t *out, const int32_t *in, int B, int n, int64_t row)
{
    for (int i = 0; i < B * n; i++)
        memcpy(out + (int64_t)i * row, in + (int64_t)(i / n) * row, sizeof(int32_t) * (size_t)row);
}

void px_postprocess_image(float *out, const float *x, int N, int C, int H, int W)
{
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    float v = x[(((int64_t)n * C + c) * H + y) * W + xx];
                    v = v / 2.0f + 0.5f;              // images / 2 + 0.5
                    v = v < 0.f ? 0.f : v > 1.f ? 1.f : v; // .clamp(0, 1) (NaN stays NaN)
                    out[(((int64_t)n * H + y) * W + xx) * C + c] = v;
                }
}

const char *px_stage_name(int stage)
{
    static const char *names[PX_STAGE_COUNT] = {"load text encoder", "encode prompt", "load transformer",
                                                "denoise", "load VAE", "decode"};
    return stage >= 0 && stage < PX_STAGE_COUNT ? names[stage] : "?";
}

// ---------------------------------------------------------------------------
// model_index.json

static char *path_join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = px_malloc(n, "path");
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Component entry ["library", "Class"] or [null, null]. 1 = present (class
 * copied), 0 = null, -1 = malformed/absent. */
static int index_component(const px_json *mi, const char *path, const char *name, char *cls, size_t cls_size)
{
    const px_json *e = px_json_get(mi, name);
    if (!e) return px_fail("%s: component '%s' is missing", path, name);
    if (e->type != PX_JSON_ARRAY || e->count != 2)
        return px_fail("%s: '%s' must be a [library, class] pair", path, name);
    if (e->items[1]->type == PX_JSON_NULL) return 0;
    if (e->items[1]->type != PX_JSON_STRING)
        return px_fail("%s: '%s' class must be a string", path, name);
    snprintf(cls, cls_size, "%s", e->items[1]->string);
    return 1;
}

int px_model_index_check(const char *dir, px_model_index *mi)
{
    memset(mi, 0, sizeof *mi);
    char *path = path_join(dir, "model_index.json");
    if (!path) return -1;
    px_json *j = NULL;
    if (!is_file(path)) {
        px_fail("%s: not a diffusers checkpoint folder (no model_index.json)", dir);
        goto fail;
    }
    j = px_json_load_file(path);
    if (!j) goto fail;
    if (j->type != PX_JSON_OBJECT) {
        px_fail("%s: not a JSON object", path);
        goto fail;
    }
    const char *cls;
    if (px_json_req_string(j, "_class_name", &cls, path)) goto fail;
    if (strcmp(cls, "PixArtAlphaPipeline")) {
        px_fail("%s: _class_name is '%s'; pixart.c implements PixArtAlphaPipeline", path, cls);
        goto fail;
    }
    static const struct {
        const char *name;
        const char *classes[3];
        int optional;
    } comps[] = {
        {"scheduler", {"DPMSolverMultistepScheduler", "DDIMScheduler", NULL}, 0},
        {"text_encoder", {"T5EncoderModel", NULL, NULL}, 1},
        {"tokenizer", {"T5Tokenizer", "T5TokenizerFast", NULL}, 1},
        {"transformer", {"PixArtTransformer2DModel", "Transformer2DModel", NULL}, 0},
        {"vae", {"AutoencoderKL", NULL, NULL}, 0},
    };
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++) {
        char c[64] = "";
        int r = index_component(j, path, comps[i].name, c, sizeof c);
        if (r < 0) goto fail;
        if (r == 0 && !comps[i].optional) {
            px_fail("%s: component '%s' is null; the pipeline needs it", path, comps[i].name);
            goto fail;
        }
        if (r == 1) {
            int ok = 0;
            for (int k = 0; k < 3 && comps[i].classes[k]; k++) ok |= !strcmp(c, comps[i].classes[k]);
            // an unsupported scheduler can still be replaced (--scheduler-config)
            if (!ok && strcmp(comps[i].name, "scheduler")) {
                px_fail("%s: %s class is '%s'; expected %s%s%s", path, comps[i].name, c, comps[i].classes[0],
                        comps[i].classes[1] ? " or " : "", comps[i].classes[1] ? comps[i].classes[1] : "");
                goto fail;
            }
            char *sub = path_join(dir, comps[i].name);
            if (!sub) goto fail;
            int d = is_dir(sub);
            if (!d) px_fail("%s: component folder '%s' is missing", dir, comps[i].name);
            free(sub);
            if (!d) goto fail;
        }
        if (!strcmp(comps[i].name, "scheduler")) snprintf(mi->scheduler_class, sizeof mi->scheduler_class, "%s", c);
        if (!strcmp(comps[i].name, "transformer")) snprintf(mi->transformer_class, sizeof mi->transformer_class, "%s", c);
        if (!strcmp(comps[i].name, "text_encoder")) mi->has_text_encoder = r == 1;
        if (!strcmp(comps[i].name, "tokenizer")) mi->has_tokenizer = r == 1;
    }
    px_json_free(j);
    free(path);
    return 0;
fail:
    px_json_free(j);
    free(path);
    return -1;
}

// ---------------------------------------------------------------------------
// The opened checkpoint

struct px_pipeline {
    char *dir, *variant;
    char *te_dir, *tok_dir, *tr_dir, *vae_dir, *sched_config;
    px_model_index mi;
    /* transformer/config.json */
    int sample_size, in_channels, out_channels, patch_size, caption_channels;
    /* vae/config.json */
    px_vae_config vae;
    int vae_scale;
    /* text_encoder/config.json (or caption_channels without a text encoder) */
    int text_dim;
    px_t5tok *tok; /* loaded on first use (small) */
    /* the models while loaded: for one stage, or between calls when kept */
    struct {
        px_t5 *t5;
        px_dit *dit;
        px_vae *vae;
    } models;
    int keep_models; /* PX_MODEL_* mask (px_pipeline_keep_models) */
    int vae_tiling;  /* px_pipeline_set_vae_tiling */
};

static int read_transformer_config(px_pipeline *p)
{
    char *path = path_join(p->tr_dir, "config.json");
    if (!path) return -1;
    px_json *j = px_json_load_file(path);
    int rc = -1;
    if (!j) goto out;
    if (j->type != PX_JSON_OBJECT) {
        px_fail("%s: not a JSON object", path);
        goto out;
    }
    int64_t ss, ic = 4, oc = -1, ps = 1, cc = -1;
    if (px_json_req_int(j, "sample_size", &ss, path) || px_json_opt_int(j, "in_channels", &ic, path) < 0 ||
        px_json_opt_int(j, "out_channels", &oc, path) < 0 || px_json_opt_int(j, "patch_size", &ps, path) < 0 ||
        px_json_opt_int(j, "caption_channels", &cc, path) < 0)
        goto out;
    if (oc < 0) oc = ic; // out_channels None -> in_channels
    if (ss <= 0 || ss > 65536 || ic <= 0 || ic > 4096 || oc <= 0 || oc > 4096 || ps <= 0 || ps > 64 ||
        cc == 0 || cc > 1 << 20) {
        px_fail("%s: implausible sizes (sample_size %lld, in_channels %lld, out_channels %lld, patch_size %lld, "
                "caption_channels %lld)",
                path, (long long)ss, (long long)ic, (long long)oc, (long long)ps, (long long)cc);
        goto out;
    }
    p->sample_size = (int)ss;
    p->in_channels = (int)ic;
    p->out_channels = (int)oc;
    p->patch_size = (int)ps;
    p->caption_channels = (int)cc;
    rc = 0;
out:
    px_json_free(j);
    free(path);
    return rc;
}

void px_pipeline_close(px_pipeline *p)
{
    if (!p) return;
    px_pipeline_release_models(p, PX_MODEL_ALL);
    px_t5tok_free(p->tok);
    free(p->dir);
    free(p->variant);
    free(p->te_dir);
    free(p->tok_dir);
    free(p->tr_dir);
    free(p->vae_dir);
    free(p->sched_config);
    free(p);
}

px_pipeline *px_pipeline_open(const char *dir, const char *variant)
{
    if (!dir || !*dir) {
        px_fail("pipeline: no model folder given");
        return NULL;
    }
    if (variant && *variant && strcmp(variant, "fp16") && strcmp(variant, "bf16") && strcmp(variant, "fp32")) {
        px_fail("pipeline: unknown variant '%s' (fp16, bf16)", variant);
        return NULL;
    }
    px_pipeline *p = px_calloc(1, sizeof *p, "pipeline");
    if (!p) return NULL;
    p->dir = strdup(dir);
    p->variant = variant && *variant ? strdup(variant) : NULL;
    p->te_dir = path_join(dir, "text_encoder");
    p->tok_dir = path_join(dir, "tokenizer");
    p->tr_dir = path_join(dir, "transformer");
    p->vae_dir = path_join(dir, "vae");
    p->sched_config = path_join(dir, "scheduler/scheduler_config.json");
    if (!p->dir || (variant && *variant && !p->variant) || !p->te_dir || !p->tok_dir || !p->tr_dir ||
        !p->vae_dir || !p->sched_config) {
        px_fail("out of memory (pipeline)");
        goto fail;
    }
    if (px_model_index_check(dir, &p->mi)) goto fail;
    if (read_transformer_config(p)) goto fail;
    char *vc = path_join(p->vae_dir, "config.json");
    if (!vc) goto fail;
    int r = px_vae_config_load(&p->vae, vc);
    free(vc);
    if (r) goto fail;
    p->vae_scale = 1 << (p->vae.nblocks - 1); // 2 ** (len(block_out_channels) - 1)
    if (p->vae.latent_channels != p->in_channels) {
        px_fail("%s: transformer in_channels %d != vae latent_channels %d", dir, p->in_channels,
                p->vae.latent_channels);
        goto fail;
    }
    if (p->mi.has_text_encoder) {
        char *tc = path_join(p->te_dir, "config.json");
        if (!tc) goto fail;
        px_t5_config c;
        r = px_t5_config_load(&c, tc);
        free(tc);
        if (r) goto fail;
        p->text_dim = (int)c.d_model;
        if (p->caption_channels > 0 && p->text_dim != p->caption_channels) {
            px_fail("%s: text_encoder d_model %d != transformer caption_channels %d", dir, p->text_dim,
                    p->caption_channels);
            goto fail;
        }
    } else {
        p->text_dim = p->caption_channels;
    }
    return p;
fail:
    px_fail_ctx("%s", "cannot open pipeline");
    px_pipeline_close(p);
    return NULL;
}

int px_pipeline_sample_size(const px_pipeline *p) { return p->sample_size; }
int px_pipeline_vae_scale_factor(const px_pipeline *p) { return p->vae_scale; }
int px_pipeline_latent_channels(const px_pipeline *p) { return p->in_channels; }
int px_pipeline_text_dim(const px_pipeline *p) { return p->text_dim; }

void px_pipeline_default_size(const px_pipeline *p, int *height, int *width)
{
    // height = height or self.transformer.config.sample_size * self.vae_scale_factor
    *height = p->sample_size * p->vae_scale;
    *width = p->sample_size * p->vae_scale;
}

int px_torch_randn(float *out, int ndim, const int64_t *shape, uint64_t seed)
{
    px_rng g;
    px_rng_seed(&g, seed);
    return px_randn_tensor(&g, 1, out, ndim, shape);
}

void px_generate_params_init(px_generate_params *prm)
{
    memset(prm, 0, sizeof *prm);
    prm->num_inference_steps = 20;
    prm->guidance_scale = 4.5;
    prm->num_images_per_prompt = 1;
    prm->use_resolution_binning = 1;
    prm->max_sequence_length = 120;
    prm->output_type = PX_OUTPUT_IMAGE;
}

void px_generate_result_free(px_generate_result *res)
{
    if (!res) return;
    free(res->images);
    free(res->latents);
    free(res->timesteps);
    memset(res, 0, sizeof *res);
}

// ---------------------------------------------------------------------------
// Text: tokenizer + T5

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int tokenizer_get(px_pipeline *p)
{
    if (p->tok) return 0;
    if (!p->mi.has_tokenizer) return px_fail("%s: the checkpoint has no tokenizer (model_index.json)", p->dir);
    char *sp = path_join(p->tok_dir, "spiece.model");
    if (!sp) return -1;
    if (!is_file(sp)) {
        px_fail("%s: missing (the T5 SentencePiece vocabulary; see doc/checkpoints.md)", sp);
        free(sp);
        return -1;
    }
    p->tok = px_t5tok_load(sp);
    free(sp);
    return p->tok ? 0 : -1;
}

int px_pipeline_tokenize(px_pipeline *p, const char *text, int max_length, int32_t *ids, int32_t *mask)
{
    if (max_length < 2 || max_length > 1 << 16) return px_fail("tokenizer: max_length %d out of range", max_length);
    if (tokenizer_get(p)) return -1;
    char *pre = NULL;
    // _text_preprocessing(clean_caption=False): text.lower().strip()
    if (px_pixart_preprocess(text, &pre)) return -1;
    int rc = px_t5tok_encode(p->tok, pre, max_length, ids, mask, NULL);
    free(pre);
    return rc;
}

/* Everything the prompt stage produces: (B, L, D) embeddings and (B, L)
 * masks for the prompts and (with guidance) the negative prompts; and, while
 * the text encoder has to run, the token rows it runs on. */
typedef struct {
    int B, L, D;
    float *cond, *uncond;
    int32_t *cond_mask, *uncond_mask;
    int need_cond_t5, need_neg_t5;  /* which halves the text encoder computes */
    int32_t *cid, *nid, *nmask;     /* (B, L) prompt ids, negative ids and mask */
} text_state;

static void text_state_free(text_state *t)
{
    free(t->cond);
    free(t->uncond);
    free(t->cond_mask);
    free(t->uncond_mask);
    free(t->cid);
    free(t->nid);
    free(t->nmask);
    memset(t, 0, sizeof *t);
}

/* Records x under "pipeline/<name>NN" exactly (the reference's pipeline keys
 * have no "#k" call index). */
static int dump_step(px_dump *d, const char *name, int step, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    char key[128];
    snprintf(key, sizeof key, "pipeline/%s%02d", name, step);
    return px_dump_add_key(d, key, x, ndim, shape);
}

static int dump_ids(px_dump *d, const char *key, const int32_t *v, int B, int L)
{
    if (!d) return 0;
    float *f = px_malloc(sizeof(float) * (size_t)B * L, key);
    if (!f) return -1;
    for (int64_t i = 0; i < (int64_t)B * L; i++) f[i] = (float)v[i];
    int rc = px_dump_add_key(d, key, f, 2, (int64_t[]){B, L});
    free(f);
    return rc;
}

/* T5 on n token rows. Without a dump identical rows are encoded once (the
 * encoder is row-independent); with a dump the batch runs as diffusers runs
 * it, so the activation names and shapes match the reference. */
static int t5_run(px_t5 *m, const int32_t *ids, const int32_t *mask, int n, int L, int D, float *out, px_dump *dump)
{
    if (dump) return px_t5_encode(m, ids, mask, n, L, out, dump);
    int *src = px_malloc(sizeof(int) * (size_t)n, "t5 row map");
    int32_t *uids = px_malloc(sizeof(int32_t) * (size_t)n * L, "t5 ids");
    int32_t *umask = px_malloc(sizeof(int32_t) * (size_t)n * L, "t5 mask");
    float *uout = NULL;
    int nu = 0, rc = -1;
    if (!src || !uids || !umask) goto out;
    for (int i = 0; i < n; i++) {
        int k;
        for (k = 0; k < nu; k++)
            if (!memcmp(uids + (int64_t)k * L, ids + (int64_t)i * L, sizeof(int32_t) * L) &&
                !memcmp(umask + (int64_t)k * L, mask + (int64_t)i * L, sizeof(int32_t) * L))
                break;
        if (k == nu) {
            memcpy(uids + (int64_t)nu * L, ids + (int64_t)i * L, sizeof(int32_t) * L);
            memcpy(umask + (int64_t)nu * L, mask + (int64_t)i * L, sizeof(int32_t) * L);
            nu++;
        }
        src[i] = k;
    }
    uout = px_malloc(sizeof(float) * (size_t)nu * L * D, "t5 output");
    if (!uout) goto out;
    if (px_t5_encode(m, uids, umask, nu, L, uout, NULL)) goto out;
    for (int i = 0; i < n; i++)
        memcpy(out + (int64_t)i * L * D, uout + (int64_t)src[i] * L * D, sizeof(float) * (size_t)L * D);
    rc = 0;
out:
    free(src);
    free(uids);
    free(umask);
    free(uout);
    return rc;
}

static int emit(const px_generate_params *prm, int kind, int stage, double seconds)
{
    if (!prm->progress) return 0;
    px_progress_event ev = {0};
    ev.kind = kind;
    ev.stage = stage;
    ev.seconds = seconds;
    if (prm->progress(prm->progress_user, &ev)) return px_fail("interrupted");
    return 0;
}

// ---------------------------------------------------------------------------
// The models: loaded when a stage needs them, released after it unless the
// caller asked to keep them (px_pipeline_keep_models)

static int t5_get(px_pipeline *p)
{
    if (p->models.t5) return 0;
    p->models.t5 = px_t5_load(p->te_dir, p->variant);
    if (!p->models.t5) return -1;
    if (px_t5_d_model(p->models.t5) != p->text_dim) {
        px_fail("%s: text encoder d_model %d != %d", p->te_dir, px_t5_d_model(p->models.t5), p->text_dim);
        px_t5_free(p->models.t5);
        p->models.t5 = NULL;
        return -1;
    }
    return 0;
}

static int dit_get(px_pipeline *p)
{
    if (p->models.dit) return 0;
    p->models.dit = px_dit_load(p->tr_dir, p->variant);
    return p->models.dit ? 0 : -1;
}

static int vae_get(px_pipeline *p)
{
    if (p->models.vae) return 0;
    p->models.vae = px_vae_load(p->vae_dir, p->variant);
    return p->models.vae ? 0 : -1;
}

void px_pipeline_release_models(px_pipeline *p, int mask)
{
    if (mask & PX_MODEL_TEXT_ENCODER) {
        px_t5_free(p->models.t5);
        p->models.t5 = NULL;
    }
    if (mask & PX_MODEL_TRANSFORMER) {
        px_dit_free(p->models.dit);
        p->models.dit = NULL;
    }
    if (mask & PX_MODEL_VAE) {
        px_vae_free(p->models.vae);
        p->models.vae = NULL;
    }
}

/* After a stage (or a failure): the models in mask the caller did not ask to keep. */
static void release_unkept(px_pipeline *p, int mask) { px_pipeline_release_models(p, mask & ~p->keep_models); }

int px_pipeline_keep_models(px_pipeline *p, int mask)
{
    int old = p->keep_models;
    p->keep_models = mask & PX_MODEL_ALL;
    release_unkept(p, PX_MODEL_ALL);
    return old;
}

int px_pipeline_set_vae_tiling(px_pipeline *p, int enabled)
{
    int old = p->vae_tiling;
    p->vae_tiling = !!enabled;
    return old;
}

int px_pipeline_encode(px_pipeline *p, const char *const *texts, int n, int max_length, float *out, float *mask)
{
    if (n <= 0) return px_fail("encode: no prompts");
    if (!p->mi.has_text_encoder) return px_fail("%s: the checkpoint has no text encoder (model_index.json)", p->dir);
    int L = max_length;
    int32_t *ids = px_malloc(sizeof(int32_t) * (size_t)n * L, "token ids");
    int32_t *m = px_malloc(sizeof(int32_t) * (size_t)n * L, "token mask");
    int rc = -1;
    if (!ids || !m) goto out;
    for (int i = 0; i < n; i++)
        if (px_pipeline_tokenize(p, texts[i], L, ids + (int64_t)i * L, m + (int64_t)i * L)) goto out;
    if (t5_get(p)) goto out;
    if (t5_run(p->models.t5, ids, m, n, L, p->text_dim, out, NULL)) goto out;
    for (int64_t i = 0; i < (int64_t)n * L; i++) mask[i] = (float)m[i];
    rc = 0;
out:
    release_unkept(p, PX_MODEL_TEXT_ENCODER);
    free(ids);
    free(m);
    return rc;
}

// ---------------------------------------------------------------------------
// Argument checks (diffusers' check_inputs and more: we also reject what
// would crash later)

static int check_params(const px_pipeline *p, const px_generate_params *prm, int *B_out)
{
    int sources = !!prm->prompt + !!prm->prompt_ids + !!prm->prompt_embeds;
    if (sources != 1)
        return px_fail(sources ? "pass only one of prompt, prompt_ids and prompt_embeds"
                               : "provide a prompt (or prompt ids / prompt embeddings)");
    int B = prm->num_prompts;
    if (B <= 0 || B > 4096) return px_fail("num_prompts %d out of range", B);
    if (prm->prompt)
        for (int b = 0; b < B; b++)
            if (!prm->prompt[b]) return px_fail("prompt %d is NULL", b);
    if (prm->prompt_ids && !prm->prompt_mask) return px_fail("prompt_ids need prompt_mask");
    if (prm->prompt_embeds && !prm->prompt_attention_mask)
        return px_fail("Must provide `prompt_attention_mask` when specifying `prompt_embeds`.");
    if (prm->negative_prompt_embeds && !prm->negative_prompt_attention_mask)
        return px_fail("Must provide `negative_prompt_attention_mask` when specifying `negative_prompt_embeds`.");
    if (prm->negative_prompt_embeds && !prm->prompt_embeds)
        return px_fail("negative_prompt_embeds need prompt_embeds");
    if (prm->negative_prompt_embeds && prm->num_negative_prompts)
        return px_fail("pass only one of negative_prompt and negative_prompt_embeds");
    if (prm->negative_ids && (!prm->negative_mask || !prm->prompt_ids))
        return px_fail("negative_ids need negative_mask and prompt_ids");
    if (prm->prompt_ids && prm->guidance_scale > 1.0 && !prm->negative_ids)
        return px_fail("prompt_ids with guidance need negative_ids");
    if (prm->num_negative_prompts < 0 || (prm->num_negative_prompts > 1 && prm->num_negative_prompts != B))
        return px_fail("%d negative prompts for %d prompts (give one, or one per prompt)", prm->num_negative_prompts, B);
    if (prm->num_negative_prompts && !prm->negative_prompt) return px_fail("negative_prompt is NULL");
    for (int i = 0; i < prm->num_negative_prompts; i++)
        if (!prm->negative_prompt[i]) return px_fail("negative prompt %d is NULL", i);
    if (prm->prompt_embeds && (prm->embeds_len < 1 || prm->embeds_len > 1 << 16))
        return px_fail("embeds_len %d out of range", prm->embeds_len);
    if (!prm->prompt_embeds && (prm->max_sequence_length < 2 || prm->max_sequence_length > 1 << 16))
        return px_fail("max_sequence_length %d out of range", prm->max_sequence_length);
    if (prm->num_images_per_prompt < 1 || prm->num_images_per_prompt > 4096)
        return px_fail("num_images_per_prompt %d out of range", prm->num_images_per_prompt);
    if ((int64_t)B * prm->num_images_per_prompt > 4096) return px_fail("too many images in one call");
    if (prm->timesteps ? prm->num_timesteps < 1 || prm->num_timesteps > 1000000
                       : prm->num_inference_steps < 1 || prm->num_inference_steps > 1000000)
        return px_fail("the number of inference steps must be positive");
    if (!isfinite(prm->guidance_scale)) return px_fail("guidance_scale is not finite");
    if (!isfinite(prm->eta) || prm->eta < 0) return px_fail("eta must be a finite number >= 0");
    if (prm->height < 0 || prm->width < 0 || prm->height > 1 << 16 || prm->width > 1 << 16)
        return px_fail("height/width out of range (%d x %d)", prm->height, prm->width);
    if (prm->output_type != PX_OUTPUT_IMAGE && prm->output_type != PX_OUTPUT_LATENT)
        return px_fail("unknown output_type %d", prm->output_type);
    int N = B * prm->num_images_per_prompt;
    if (prm->num_seeds < 0 || (prm->num_seeds > 1 && prm->num_seeds != N))
        return px_fail("You have passed a list of generators of length %d, but requested an effective batch size "
                       "of %d. Make sure the batch size matches the length of the generators.",
                       prm->num_seeds, N);
    if (prm->num_seeds && !prm->seeds) return px_fail("seeds is NULL");
    if (!prm->num_seeds && !prm->latents) return px_fail("give a seed (or initial latents)");
    (void)p;
    *B_out = B;
    return 0;
}

/* height/width defaults, resolution binning and the divisibility checks.
 * H, W: the size generated; orig_h, orig_w: the size asked for. */
static int resolve_size(const px_pipeline *p, const px_generate_params *prm, int *H_out, int *W_out, int *orig_h,
                        int *orig_w)
{
    int H = prm->height, W = prm->width;
    int dh, dw;
    px_pipeline_default_size(p, &dh, &dw);
    if (!H) H = dh;
    if (!W) W = dw;
    *orig_h = H;
    *orig_w = W;
    if (prm->use_resolution_binning) {
        int nb;
        const px_ar_bin *tab = px_ar_bin_table(p->sample_size, &nb);
        if (!tab)
            return px_fail("resolution binning needs a transformer sample_size of 32, 64 or 128 (this one has %d); "
                           "turn it off (--no-resolution-binning)",
                           p->sample_size);
        if (px_classify_height_width_bin(H, W, tab, nb, &H, &W)) return -1;
    }
    if (H % 8 || W % 8)
        return px_fail("`height` and `width` have to be divisible by 8 but are %d and %d.", H, W);
    const int h = H / p->vae_scale, w = W / p->vae_scale;
    if (h <= 0 || w <= 0 || h % p->patch_size || w % p->patch_size)
        return px_fail("%dx%d gives %dx%d latents, which the transformer's patch size %d does not divide", H, W, h,
                       w, p->patch_size);
    *H_out = H;
    *W_out = W;
    return 0;
}

int px_pipeline_latent_shape(const px_pipeline *p, const px_generate_params *prm, int64_t shape[4])
{
    int H, W, oh, ow;
    if (resolve_size(p, prm, &H, &W, &oh, &ow)) return -1;
    int n = prm->num_prompts * prm->num_images_per_prompt;
    if (n <= 0) return px_fail("no images requested");
    shape[0] = n;
    shape[1] = p->in_channels;
    shape[2] = H / p->vae_scale;
    shape[3] = W / p->vae_scale;
    return 0;
}

// ---------------------------------------------------------------------------
// The denoising loop (the transformer behind a callback)

int px_denoise_loop(px_scheduler *s, const px_denoise_args *a, float *latents)
{
    const int N = a->num_images, C = a->channels, NB = a->cfg ? 2 * N : N;
    const int64_t hw = (int64_t)a->height * a->width, lat_n = (int64_t)N * C * hw;
    const int out_ch = a->model_out_channels;
    if (N <= 0 || C <= 0 || hw <= 0 || out_ch <= 0) return px_fail("denoise: bad latent shape");
    if (out_ch != C && out_ch != 2 * C)
        return px_fail("denoise: the model predicts %d channels for %d latent channels (expected %d or %d)", out_ch,
                       C, C, 2 * C);
    const int nsteps = (int)s->n_timesteps;
    if (nsteps <= 0) return px_fail("denoise: the scheduler has no timesteps (set_timesteps)");
    float *x_in = px_malloc(sizeof(float) * (size_t)NB * C * hw, "latent_model_input");
    float *out = px_malloc(sizeof(float) * (size_t)NB * out_ch * hw, "noise_pred");
    float *eps = px_malloc(sizeof(float) * (size_t)lat_n, "noise_pred (guided)");
    float *next = px_malloc(sizeof(float) * (size_t)lat_n, "prev_sample");
    float *noise = a->dump ? px_malloc(sizeof(float) * (size_t)lat_n, "variance noise") : NULL;
    float *tvec = px_malloc(sizeof(float) * (size_t)NB, "timestep");
    int rc = -1;
    if (!x_in || !out || !eps || !next || !tvec || (a->dump && !noise)) goto out;
    const int64_t dshape[4] = {N, C, a->height, a->width};
    for (int i = 0; i < nsteps; i++) {
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        const int64_t t = s->timesteps[i];
        // latent_model_input = torch.cat([latents] * 2) if do_classifier_free_guidance else latents;
        // scale_model_input is the identity for DDIM and DPM-Solver
        memcpy(x_in, latents, sizeof(float) * (size_t)lat_n);
        if (a->cfg) memcpy(x_in + lat_n, latents, sizeof(float) * (size_t)lat_n);
        // current_timestep.expand(latent_model_input.shape[0])
        for (int k = 0; k < NB; k++) tvec[k] = (float)t;
        if (a->model(a->model_user, out, x_in, tvec, NB, i)) goto out;
        if (a->dump && (i == 0 || hw <= 64 * 64) &&
            dump_step(a->dump, "transformer_out_step", i, out, 4, (int64_t[]){NB, out_ch, a->height, a->width}))
            goto out;
        px_guidance_combine(eps, out, N, out_ch, C, hw, a->cfg, a->guidance_scale);
        // compute previous image: x_t -> x_t-1
        px_step_args sa = {0};
        sa.eta = a->eta;
        sa.generators = a->generators;
        sa.n_generators = a->n_generators;
        sa.variance_noise_out = noise;
        px_sched_dims dims = {N, C, hw};
        if (nsteps == 1) {
            // For DMD one step sampling: the pipeline keeps .pred_original_sample
            float *prev = px_malloc(sizeof(float) * (size_t)lat_n, "prev_sample");
            if (!prev) goto out;
            int r = px_scheduler_step(s, eps, C, t, latents, dims, &sa, prev, next);
            free(prev);
            if (r) goto out;
        } else if (px_scheduler_step(s, eps, C, t, latents, dims, &sa, next, NULL)) {
            goto out;
        }
        if (a->dump && s->kind == PX_SCHED_DDIM && a->eta > 0 &&
            dump_step(a->dump, "ddim_variance_noise_step", i, noise, 4, dshape))
            goto out;
        memcpy(latents, next, sizeof(float) * (size_t)lat_n);
        if (dump_step(a->dump, "latents_step", i, latents, 4, dshape)) goto out;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (a->progress) {
            px_progress_event ev = {0};
            ev.kind = PX_EVENT_STEP;
            ev.stage = PX_STAGE_DENOISE;
            ev.seconds = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
            ev.step = i;
            ev.num_steps = nsteps;
            ev.timestep = t;
            ev.latents = latents;
            ev.num_images = N;
            ev.channels = C;
            ev.height = a->height;
            ev.width = a->width;
            if (a->progress(a->progress_user, &ev)) {
                px_fail("interrupted");
                goto out;
            }
        }
    }
    rc = 0;
out:
    free(x_in);
    free(out);
    free(eps);
    free(next);
    free(noise);
    free(tvec);
    return rc;
}

/* The PixArt transformer as a px_denoiser_fn: the text conditioning and the
 * micro-conditions are bound here. */
typedef struct {
    px_dit *dit;
    const float *ctx;       /* (NB, L, D) = cat([negative, prompt]) */
    const int32_t *ctx_mask; /* (NB, L) */
    int L, h, w;
    const float *resolution, *aspect_ratio; /* (NB, 2), (NB) or NULL */
    px_dump *dump;
} dit_call;

static int dit_denoiser(void *user, float *out, const float *x, const float *timestep, int batch, int step)
{
    const dit_call *c = user;
    return px_dit_forward(c->dit, out, x, timestep, c->ctx, c->ctx_mask, batch, c->h, c->w, c->L, c->resolution,
                          c->aspect_ratio, step == 0 ? c->dump : NULL);
}

/* One call of px_pipeline_generate: its arguments, the sizes derived from
 * them, and every buffer that lives longer than one stage. */
typedef struct {
    const px_generate_params *prm;
    px_generate_result *res;
    int B, n_per, N, NB, cfg;     /* prompts, images per prompt, images, model batch, guidance on */
    int H, W, orig_h, orig_w;     /* generated (binned) and requested image size */
    int h, w, C;                  /* latents (N, C, h, w) */
    int64_t lat_n;
    int L, D;                     /* text tokens and channels (T5 d_model) */
    text_state ts;
    px_sched_config sched_cfg;
    int sched_cfg_ok, sched_ok;
    px_scheduler sched;
    px_rng *gens;                 /* (num_seeds) torch.Generator */
    float *ctx;                   /* (NB, L, D) = cat([negative, prompt]) */
    int32_t *ctx_mask;            /* (NB, L) */
    float *latents;               /* (N, C, h, w) */
    float *micro_res, *micro_ar;  /* (NB, 2), (NB) */
} run_state;

static void run_free(run_state *r)
{
    text_state_free(&r->ts);
    free(r->gens);
    if (r->sched_ok) px_scheduler_free(&r->sched);
    if (r->sched_cfg_ok) px_sched_config_free(&r->sched_cfg);
    free(r->ctx);
    free(r->ctx_mask);
    free(r->latents);
    free(r->micro_res);
    free(r->micro_ar);
}

typedef int (*stage_fn)(px_pipeline *p, run_state *r);

/* Runs one stage of the call between its BEGIN and END progress events and
 * records its duration in res->stage_seconds. */
static int timed_stage(px_pipeline *p, run_state *r, int stage, stage_fn fn)
{
    double t0 = now_s();
    if (emit(r->prm, PX_EVENT_BEGIN, stage, 0)) return -1;
    if (fn(p, r)) return -1;
    double *sec = r->res->stage_seconds;
    sec[stage] = now_s() - t0;
    return emit(r->prm, PX_EVENT_END, stage, sec[stage]);
}

// ---------------------------------------------------------------------------
// 3. encode_prompt

/* The token rows of both halves, or the caller's embeddings copied in. */
static int prompt_inputs(px_pipeline *p, run_state *r)
{
    const px_generate_params *prm = r->prm;
    text_state *ts = &r->ts;
    const int B = r->B, L = prm->prompt_embeds ? prm->embeds_len : prm->max_sequence_length, D = p->text_dim;
    ts->B = B;
    ts->L = r->L = L;
    ts->D = r->D = D;
    size_t nE = (size_t)B * L * D, nM = (size_t)B * L;
    ts->cond = px_malloc(sizeof(float) * nE, "prompt_embeds");
    ts->cond_mask = px_malloc(sizeof(int32_t) * nM, "prompt_attention_mask");
    if (r->cfg) {
        ts->uncond = px_malloc(sizeof(float) * nE, "negative_prompt_embeds");
        ts->uncond_mask = px_malloc(sizeof(int32_t) * nM, "negative_prompt_attention_mask");
    }
    ts->cid = px_malloc(sizeof(int32_t) * nM, "prompt ids");
    ts->nid = px_malloc(sizeof(int32_t) * nM, "negative ids");
    ts->nmask = px_malloc(sizeof(int32_t) * nM, "negative mask");
    if (!ts->cond || !ts->cond_mask || (r->cfg && (!ts->uncond || !ts->uncond_mask)) || !ts->cid || !ts->nid ||
        !ts->nmask)
        return -1;

    // ---- the conditional half
    if (prm->prompt) {
        for (int b = 0; b < B; b++)
            if (px_pipeline_tokenize(p, prm->prompt[b], L, ts->cid + (int64_t)b * L, ts->cond_mask + (int64_t)b * L))
                return -1;
        ts->need_cond_t5 = 1;
    } else if (prm->prompt_ids) {
        memcpy(ts->cid, prm->prompt_ids, sizeof(int32_t) * nM);
        memcpy(ts->cond_mask, prm->prompt_mask, sizeof(int32_t) * nM);
        ts->need_cond_t5 = 1;
    } else {
        memcpy(ts->cond, prm->prompt_embeds, sizeof(float) * nE);
        for (size_t i = 0; i < nM; i++) ts->cond_mask[i] = prm->prompt_attention_mask[i] != 0.f;
    }
    // ---- the unconditional half
    if (!r->cfg) return 0;
    if (prm->negative_prompt_embeds) {
        memcpy(ts->uncond, prm->negative_prompt_embeds, sizeof(float) * nE);
        for (size_t i = 0; i < nM; i++) ts->uncond_mask[i] = prm->negative_prompt_attention_mask[i] != 0.f;
    } else if (prm->negative_ids) {
        memcpy(ts->nid, prm->negative_ids, sizeof(int32_t) * nM);
        memcpy(ts->nmask, prm->negative_mask, sizeof(int32_t) * nM);
        ts->need_neg_t5 = 1;
    } else {
        // uncond_tokens = [negative_prompt] * batch_size if a str, else the list
        for (int b = 0; b < B; b++) {
            const char *neg = prm->num_negative_prompts == 0   ? ""
                              : prm->num_negative_prompts == 1 ? prm->negative_prompt[0]
                                                               : prm->negative_prompt[b];
            if (px_pipeline_tokenize(p, neg, L, ts->nid + (int64_t)b * L, ts->nmask + (int64_t)b * L)) return -1;
        }
        ts->need_neg_t5 = 1;
    }
    return 0;
}

static int stage_load_text_encoder(px_pipeline *p, run_state *r) { return t5_get(p); }

/* self.text_encoder(text_input_ids, attention_mask=...)[0] for both halves. */
static int stage_encode_prompt(px_pipeline *p, run_state *r)
{
    text_state *ts = &r->ts;
    const int B = ts->B, L = ts->L, D = ts->D;
    const size_t nE = (size_t)B * L * D, nM = (size_t)B * L;
    px_dump *dump = r->prm->dump;
    if (dump) {
        // diffusers: one text_encoder call for the prompts, one for the negatives
        if (ts->need_cond_t5 && px_t5_encode(p->models.t5, ts->cid, ts->cond_mask, B, L, ts->cond, dump)) return -1;
        if (ts->need_neg_t5 && px_t5_encode(p->models.t5, ts->nid, ts->nmask, B, L, ts->uncond, dump)) return -1;
        return 0;
    }
    // one batch for both halves, each distinct token row encoded once
    int n = 0, rc = -1;
    int32_t *aid = px_malloc(sizeof(int32_t) * 2 * nM, "ids"), *am = px_malloc(sizeof(int32_t) * 2 * nM, "mask");
    float *ao = px_malloc(sizeof(float) * 2 * nE, "embeddings");
    if (!aid || !am || !ao) goto out;
    if (ts->need_cond_t5) {
        memcpy(aid, ts->cid, sizeof(int32_t) * nM);
        memcpy(am, ts->cond_mask, sizeof(int32_t) * nM);
        n += B;
    }
    if (ts->need_neg_t5) {
        memcpy(aid + (int64_t)n * L, ts->nid, sizeof(int32_t) * nM);
        memcpy(am + (int64_t)n * L, ts->nmask, sizeof(int32_t) * nM);
        n += B;
    }
    if (t5_run(p->models.t5, aid, am, n, L, D, ao, NULL)) goto out;
    if (ts->need_cond_t5) memcpy(ts->cond, ao, sizeof(float) * nE);
    if (ts->need_neg_t5) memcpy(ts->uncond, ao + (ts->need_cond_t5 ? nE : 0), sizeof(float) * nE);
    rc = 0;
out:
    free(aid);
    free(am);
    free(ao);
    return rc;
}

/* encode_prompt (without the num_images_per_prompt repetition): tokenise,
 * then load the text encoder and run it when a half needs it. */
static int encode_prompt(px_pipeline *p, run_state *r)
{
    text_state *ts = &r->ts;
    px_dump *dump = r->prm->dump;
    if (prompt_inputs(p, r)) return -1;
    if (ts->need_cond_t5 && (dump_ids(dump, "pipeline/prompt_ids", ts->cid, ts->B, ts->L) ||
                             dump_ids(dump, "pipeline/prompt_mask", ts->cond_mask, ts->B, ts->L)))
        return -1;
    if (ts->need_neg_t5 && (dump_ids(dump, "pipeline/negative_ids", ts->nid, ts->B, ts->L) ||
                            dump_ids(dump, "pipeline/negative_mask", ts->nmask, ts->B, ts->L)))
        return -1;
    if (ts->need_cond_t5 || ts->need_neg_t5) {
        if (!p->mi.has_text_encoder)
            return px_fail("%s: the checkpoint has no text encoder; pass prompt embeddings", p->dir);
        int rc = timed_stage(p, r, PX_STAGE_LOAD_TEXT_ENCODER, stage_load_text_encoder) ||
                 timed_stage(p, r, PX_STAGE_ENCODE_PROMPT, stage_encode_prompt);
        release_unkept(p, PX_MODEL_TEXT_ENCODER); // before the transformer is loaded
        if (rc) return -1;
    }
    if (ts->need_neg_t5) memcpy(ts->uncond_mask, ts->nmask, sizeof(int32_t) * (size_t)ts->B * ts->L);
    return 0;
}

/* Repeats the embeddings for num_images_per_prompt and concatenates
 * [negative; prompt] into the transformer's encoder_hidden_states. */
static int conditioning(run_state *r)
{
    const text_state *ts = &r->ts;
    const int N = r->N, NB = r->NB, L = ts->L, D = ts->D, cfg = r->cfg;
    const int64_t rowE = (int64_t)L * D;
    r->ctx = px_malloc(sizeof(float) * (size_t)NB * rowE, "encoder_hidden_states");
    r->ctx_mask = px_malloc(sizeof(int32_t) * (size_t)NB * L, "encoder_attention_mask");
    if (!r->ctx || !r->ctx_mask) return -1;
    float *ce = cfg ? r->ctx + (int64_t)N * rowE : r->ctx;
    int32_t *cm = cfg ? r->ctx_mask + (int64_t)N * L : r->ctx_mask;
    px_repeat_rows(ce, ts->cond, r->B, r->n_per, rowE);
    px_repeat_rows_i32(cm, ts->cond_mask, r->B, r->n_per, L);
    if (cfg) {
        px_repeat_rows(r->ctx, ts->uncond, r->B, r->n_per, rowE);
        px_repeat_rows_i32(r->ctx_mask, ts->uncond_mask, r->B, r->n_per, L);
    }
    px_dump *dump = r->prm->dump;
    if (!dump) return 0;
    int64_t se[3] = {N, L, D}, sm[2] = {N, L};
    float *mf = px_malloc(sizeof(float) * (size_t)NB * L, "mask");
    if (!mf) return -1;
    for (int64_t i = 0; i < (int64_t)NB * L; i++) mf[i] = (float)r->ctx_mask[i];
    int bad = px_dump_add_key(dump, "pipeline/prompt_embeds", ce, 3, se) ||
              px_dump_add_key(dump, "pipeline/prompt_attention_mask", cfg ? mf + (int64_t)N * L : mf, 2, sm) ||
              (cfg && (px_dump_add_key(dump, "pipeline/negative_prompt_embeds", r->ctx, 3, se) ||
                       px_dump_add_key(dump, "pipeline/negative_prompt_attention_mask", mf, 2, sm)));
    free(mf);
    return bad ? -1 : 0;
}

// ---------------------------------------------------------------------------
// 4. scheduler and timesteps, 5. prepare_latents, 6.1 micro-conditions

/* Builds the scheduler the call asks for: a scheduler_config.json given by
 * the caller (its _class_name decides), the checkpoint's config loaded as
 * another class (X.from_config), or the checkpoint's scheduler. */
static int build_scheduler(const px_pipeline *p, const px_generate_params *prm, px_sched_config *cfg)
{
    if (prm->scheduler_config) return px_sched_config_load(cfg, prm->scheduler_config, -1);
    int kind = -1;
    if (prm->scheduler) {
        kind = px_sched_kind_from_name(prm->scheduler);
        if (kind < 0) return px_fail("unknown scheduler '%s' (dpm, ddim)", prm->scheduler);
    }
    return px_sched_config_load(cfg, p->sched_config, kind);
}

/* The scheduler with its timesteps set (checked before any heavy work). */
static int setup_scheduler(px_pipeline *p, run_state *r)
{
    const px_generate_params *prm = r->prm;
    px_generate_result *res = r->res;
    if (build_scheduler(p, prm, &r->sched_cfg)) return -1;
    r->sched_cfg_ok = 1;
    if (px_scheduler_init(&r->sched, &r->sched_cfg)) return -1;
    r->sched_ok = 1;
    if (px_scheduler_set_timesteps(&r->sched, prm->timesteps ? 0 : prm->num_inference_steps, prm->timesteps,
                                   prm->timesteps ? (size_t)prm->num_timesteps : 0))
        return -1;
    const int nsteps = (int)r->sched.n_timesteps;
    snprintf(res->scheduler, sizeof res->scheduler, "%s", px_sched_class_name(r->sched.kind));
    if (nsteps == 1 && r->sched.kind != PX_SCHED_DDIM)
        return px_fail("a 1-step run returns the scheduler's pred_original_sample, which %s does not have "
                       "(diffusers 0.30.3 raises AttributeError); use DDIM (--scheduler ddim) or more steps",
                       res->scheduler);
    const int sde = r->sched_cfg.algorithm_type == PX_DPM_SDE_DPMSOLVER_PP ||
                    r->sched_cfg.algorithm_type == PX_DPM_SDE_DPMSOLVER;
    const int needs_noise = (r->sched.kind == PX_SCHED_DDIM && prm->eta > 0) || (r->sched.kind == PX_SCHED_DPM && sde);
    if (needs_noise && !prm->num_seeds)
        return px_fail("%s draws noise in every step from the generator: give a seed", res->scheduler);
    res->num_steps = nsteps;
    res->timesteps = px_malloc(sizeof(int64_t) * (size_t)nsteps, "timesteps");
    if (!res->timesteps) return -1;
    memcpy(res->timesteps, r->sched.timesteps, sizeof(int64_t) * (size_t)nsteps);
    if (prm->dump && nsteps <= 1024) {
        float tf[1024];
        for (int i = 0; i < nsteps; i++) tf[i] = (float)r->sched.timesteps[i];
        if (px_dump_add_key(prm->dump, "pipeline/timesteps", tf, 1, (int64_t[]){nsteps})) return -1;
    }
    return 0;
}

/* prepare_latents: randn_tensor(shape, generator) * init_noise_sigma, or the
 * caller's latents; then the PX_EVENT_LATENTS progress event. */
static int prepare_latents(run_state *r)
{
    const px_generate_params *prm = r->prm;
    const int64_t shape[4] = {r->N, r->C, r->h, r->w};
    r->latents = px_malloc(sizeof(float) * (size_t)r->lat_n, "latents");
    if (!r->latents) return -1;
    if (prm->num_seeds) {
        r->gens = px_malloc(sizeof(px_rng) * (size_t)prm->num_seeds, "generators");
        if (!r->gens) return -1;
        for (int i = 0; i < prm->num_seeds; i++) px_rng_seed(&r->gens[i], prm->seeds[i]);
    }
    if (prm->latents) memcpy(r->latents, prm->latents, sizeof(float) * (size_t)r->lat_n);
    else if (px_randn_tensor(r->gens, (size_t)prm->num_seeds, r->latents, 4, shape)) return -1;
    // latents * self.scheduler.init_noise_sigma (1.0 for DDIM and DPM-Solver)
    for (int64_t i = 0; i < r->lat_n; i++) r->latents[i] *= r->sched.init_noise_sigma;
    if (px_dump_add_key(prm->dump, "pipeline/initial_latents", r->latents, 4, shape)) return -1;
    if (!prm->progress) return 0;
    px_progress_event ev = {0};
    ev.kind = PX_EVENT_LATENTS;
    ev.stage = PX_STAGE_DENOISE;
    ev.num_steps = (int)r->sched.n_timesteps;
    ev.latents = r->latents;
    ev.num_images = r->N;
    ev.channels = r->C;
    ev.height = r->h;
    ev.width = r->w;
    if (prm->progress(prm->progress_user, &ev)) return px_fail("interrupted");
    return 0;
}

/* added_cond_kwargs: the generated (binned) size as float32, one row per
 * model batch element. */
static int micro_conditions(run_state *r)
{
    r->micro_res = px_malloc(sizeof(float) * 2 * (size_t)r->NB, "resolution");
    r->micro_ar = px_malloc(sizeof(float) * (size_t)r->NB, "aspect_ratio");
    if (!r->micro_res || !r->micro_ar) return -1;
    for (int i = 0; i < r->NB; i++) {
        r->micro_res[2 * i] = (float)r->H; // torch.tensor([height, width])
        r->micro_res[2 * i + 1] = (float)r->W;
        r->micro_ar[i] = (float)((double)r->H / (double)r->W); // torch.tensor([float(height / width)])
    }
    return 0;
}

// ---------------------------------------------------------------------------
// 7. the denoising loop

static int stage_load_transformer(px_pipeline *p, run_state *r) { return dit_get(p); }

static int stage_denoise(px_pipeline *p, run_state *r)
{
    px_dit *dit = p->models.dit;
    const int D = r->D;
    if (px_dit_in_channels(dit) != r->C || px_dit_caption_channels(dit) != D)
        return px_fail("%s: transformer expects %d latent / %d caption channels, the pipeline has %d / %d", p->tr_dir,
                       px_dit_in_channels(dit), px_dit_caption_channels(dit), r->C, D);
    const int micro = px_dit_uses_micro_conditions(dit);
    dit_call dc = {dit,  r->ctx, r->ctx_mask, r->L, r->h, r->w, micro ? r->micro_res : NULL,
                   micro ? r->micro_ar : NULL, r->prm->dump};
    px_denoise_args da = {0};
    da.model = dit_denoiser;
    da.model_user = &dc;
    da.model_out_channels = px_dit_out_channels(dit);
    da.num_images = r->N;
    da.channels = r->C;
    da.height = r->h;
    da.width = r->w;
    da.cfg = r->cfg;
    da.guidance_scale = (float)r->prm->guidance_scale; // a Python float meets a float32 tensor
    da.eta = r->prm->eta;
    da.generators = r->gens;
    da.n_generators = (size_t)r->prm->num_seeds;
    da.progress = r->prm->progress;
    da.progress_user = r->prm->progress_user;
    da.dump = r->prm->dump;
    return px_denoise_loop(&r->sched, &da, r->latents);
}

// ---------------------------------------------------------------------------
// 8. VAE decode, resize back from the bucket, postprocess

static int stage_load_vae(px_pipeline *p, run_state *r) { return vae_get(p); }

static int stage_decode(px_pipeline *p, run_state *r)
{
    px_vae *vae = p->models.vae;
    px_generate_result *res = r->res;
    px_dump *dump = r->prm->dump;
    const int N = r->N, f = px_vae_downscale(vae), Co = px_vae_get_config(vae)->out_channels;
    const int DH = r->h * f, DW = r->w * f;
    if (Co != 3) return px_fail("%s: the VAE decodes %d channels; an RGB image needs 3", p->vae_dir, Co);
    // self.vae.decode(latents / self.vae.config.scaling_factor): a float32 division
    const float sf = px_vae_scaling_factor(vae);
    float *z = px_malloc(sizeof(float) * (size_t)r->lat_n, "latents / scaling_factor");
    float *decoded = px_malloc(sizeof(float) * (size_t)N * 3 * DH * DW, "decoded image"), *cropped = NULL;
    int rc = -1;
    if (!z || !decoded) goto out;
    for (int64_t i = 0; i < r->lat_n; i++) z[i] = res->latents[i] / sf;
    px_vae_set_tiling(vae, p->vae_tiling);
    if (px_vae_decode(vae, decoded, z, N, r->h, r->w, dump)) goto out;
    release_unkept(p, PX_MODEL_VAE);
    if (px_dump_add_key(dump, "pipeline/vae_decoded", decoded, 4, (int64_t[]){N, 3, DH, DW})) goto out;
    const float *img = decoded;
    if (r->prm->use_resolution_binning && (DH != r->orig_h || DW != r->orig_w)) {
        // image_processor.resize_and_crop_tensor(image, orig_width, orig_height)
        cropped = px_malloc(sizeof(float) * (size_t)N * 3 * r->orig_h * r->orig_w, "resized image");
        if (!cropped || px_resize_and_crop(cropped, decoded, N, 3, DH, DW, r->orig_h, r->orig_w)) goto out;
        img = cropped;
    } else {
        res->height = DH;
        res->width = DW;
    }
    res->images = px_malloc(sizeof(float) * (size_t)N * 3 * res->height * res->width, "image");
    if (!res->images) goto out;
    px_postprocess_image(res->images, img, N, 3, res->height, res->width);
    rc = px_dump_add_key(dump, "pipeline/image", res->images, 4, (int64_t[]){N, res->height, res->width, 3});
out:
    free(z);
    free(decoded);
    free(cropped);
    return rc;
}

// ---------------------------------------------------------------------------
// __call__

/* check_inputs, the batch sizes, and 1. the image size: default, resolution
 * binning (the result records both sizes). */
static int run_init(px_pipeline *p, const px_generate_params *prm, px_generate_result *res, run_state *r)
{
    memset(r, 0, sizeof *r);
    r->prm = prm;
    r->res = res;
    if (check_params(p, prm, &r->B)) return -1;
    r->n_per = prm->num_images_per_prompt;
    r->N = r->B * r->n_per;
    r->cfg = prm->guidance_scale > 1.0; // do_classifier_free_guidance
    r->NB = r->cfg ? 2 * r->N : r->N;
    if (resolve_size(p, prm, &r->H, &r->W, &r->orig_h, &r->orig_w)) return -1;
    r->h = r->H / p->vae_scale;
    r->w = r->W / p->vae_scale;
    r->C = p->in_channels;
    r->lat_n = (int64_t)r->N * r->C * r->h * r->w;
    res->num_images = r->N;
    res->gen_height = r->H;
    res->gen_width = r->W;
    res->height = r->orig_h;
    res->width = r->orig_w;
    res->latent_channels = r->C;
    res->latent_height = r->h;
    res->latent_width = r->w;
    return 0;
}

int px_pipeline_generate(px_pipeline *p, const px_generate_params *prm, px_generate_result *res)
{
    memset(res, 0, sizeof *res);
    run_state r;
    if (run_init(p, prm, res, &r)) return -1;
    if (setup_scheduler(p, &r) || encode_prompt(p, &r) || conditioning(&r)) goto fail;
    text_state_free(&r.ts);
    if (prepare_latents(&r) || micro_conditions(&r)) goto fail;
    if (timed_stage(p, &r, PX_STAGE_LOAD_TRANSFORMER, stage_load_transformer) ||
        timed_stage(p, &r, PX_STAGE_DENOISE, stage_denoise))
        goto fail;
    release_unkept(p, PX_MODEL_TRANSFORMER); // before the VAE is loaded
    free(r.ctx);
    r.ctx = NULL;
    res->latents = r.latents;
    r.latents = NULL;
    if (prm->output_type == PX_OUTPUT_IMAGE &&
        (timed_stage(p, &r, PX_STAGE_LOAD_VAE, stage_load_vae) || timed_stage(p, &r, PX_STAGE_DECODE, stage_decode)))
        goto fail;
    run_free(&r);
    return 0;
fail:
    release_unkept(p, PX_MODEL_ALL);
    run_free(&r);
    px_generate_result_free(res);
    return -1;
}
