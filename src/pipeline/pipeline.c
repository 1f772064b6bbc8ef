/* diffusers PixArtAlphaPipeline (v0.30.3, pipelines/pixart_alpha/
 * pipeline_pixart_alpha.py), the opened checkpoint: model_index.json and the
 * component configs (from_pretrained), the models' lifetime, the tokenizer
 * and text encoder (encode_prompt's pieces), check_inputs. __call__ itself
 * is generate.c; the denoising loop is denoise.c.
 *
 * Memory policy: each model is loaded for its stage and freed right after it,
 * so the text encoder (4.7 B parameters for T5-XXL) and the transformer are
 * never resident together, unless the caller keeps them
 * (px_pipeline_keep_models). */
#include "src/pipeline/pipeline.h"
#include "src/pipeline/internal.h"
#include "src/pipeline/binning.h"
#include "src/tokenizer/t5_tokenizer.h"
#include "src/tokenizer/unicode.h"
#include "model/dit.h"
#include "model/t5.h"
#include "model/vae.h"
#include "ops/ops.h"
#include "sched/rng.h"
#include "sched/config.h"
#include "sched/scheduler.h"
#include "tensor/dump.h"
#include "tensor/error.h"
#include "tensor/json.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <time.h>

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
    if (strcmp(cls, "PixArtAlphaPipeline") && strcmp(cls, "PixArtSigmaPipeline")) {
        px_fail("%s: _class_name is '%s'; pixart.c implements PixArtAlphaPipeline and PixArtSigmaPipeline", path,
                cls);
        goto fail;
    }
    mi->sigma = !strcmp(cls, "PixArtSigmaPipeline");
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
// The opened checkpoint (struct px_pipeline: internal.h)

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
    p->vae_tiling = PX_VAE_TILING_AUTO;
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
int px_pipeline_is_sigma(const px_pipeline *p) { return p->mi.sigma; }
const char *px_pipeline_scheduler_class(const px_pipeline *p) { return p->mi.scheduler_class; }

int px_pipeline_max_sequence_length(const px_pipeline *p)
{
    // __call__(max_sequence_length=120) in PixArtAlphaPipeline, 300 in PixArtSigmaPipeline
    return p->mi.sigma ? 300 : 120;
}

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
    prm->max_sequence_length = 0; /* the pipeline's: 120 (alpha), 300 (Sigma) */
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

double px_pl_now_s(void)
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
/* T5 on n token rows. Without a dump identical rows are encoded once (the
 * encoder is row-independent); with a dump the batch runs as diffusers runs
 * it, so the activation names and shapes match the reference. */
int px_pl_t5_run(px_t5 *m, const int32_t *ids, const int32_t *mask, int n, int L, int D, float *out, px_dump *dump)
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
// ---------------------------------------------------------------------------
// The models: loaded when a stage needs them, released after it unless the
// caller asked to keep them (px_pipeline_keep_models)

int px_pl_t5_get(px_pipeline *p)
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

int px_pl_dit_get(px_pipeline *p)
{
    if (p->models.dit) return 0;
    p->models.dit = px_dit_load(p->tr_dir, p->variant);
    return p->models.dit ? 0 : -1;
}

int px_pl_vae_get(px_pipeline *p)
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
void px_pl_release_unkept(px_pipeline *p, int mask) { px_pipeline_release_models(p, mask & ~p->keep_models); }

int px_pipeline_keep_models(px_pipeline *p, int mask)
{
    int old = p->keep_models;
    p->keep_models = mask & PX_MODEL_ALL;
    px_pl_release_unkept(p, PX_MODEL_ALL);
    return old;
}

int px_pipeline_set_vae_tiling(px_pipeline *p, int mode)
{
    int old = p->vae_tiling;
    p->vae_tiling = mode == PX_VAE_TILING_AUTO ? PX_VAE_TILING_AUTO : !!mode;
    return old;
}

uint64_t px_pipeline_set_max_memory(px_pipeline *p, uint64_t bytes)
{
    uint64_t old = p->max_memory;
    p->max_memory = bytes;
    return old;
}

// ---------------------------------------------------------------------------
// the decode's memory budget

int px_pl_parse_size(const char *s, uint64_t *bytes)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0 || *s == '-' || *s == '+') return -1;
    double mul = 1;
    const char *u = "KMGT";
    const char *hit = *end ? strchr(u, toupper((unsigned char)*end)) : NULL;
    if (hit) {
        for (const char *q = u; q <= hit; q++) mul *= 1024;
        end++;
        if (*end == 'i' && end[1] == 'B') end += 2;
        else if (*end == 'B' || *end == 'b') end++;
    } else if (*end == 'B' || *end == 'b') {
        end++;
    }
    if (*end || v * mul >= 18446744073709551615.0 || v * mul < 1) return -1;
    *bytes = (uint64_t)(v * mul);
    return 0;
}

/* Half the physical RAM, not MemAvailable: the same command then makes the
 * same image on a machine whatever else runs on it (0 if unknown). */
static uint64_t default_budget(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page / 2 : 0;
}

int px_pl_memory_budget(const px_pipeline *p, uint64_t *bytes, const char **source)
{
    if (p->max_memory) {
        *bytes = p->max_memory;
        *source = "--max-memory";
        return 0;
    }
    const char *e = getenv("PIXART_MAX_MEMORY");
    if (e && *e) {
        if (px_pl_parse_size(e, bytes))
            return px_fail("PIXART_MAX_MEMORY='%s' is not a size (bytes, or a number with K, M, G or T: 3G, 2500M)",
                           e);
        *source = "PIXART_MAX_MEMORY";
        return 0;
    }
    *bytes = default_budget();
    *source = "half the RAM";
    if (!*bytes) *bytes = UINT64_MAX; /* unknown: no budget */
    return 0;
}

double px_pl_decode_stage_bytes(const px_pipeline *p, int N, int h, int w, int out_h, int out_w, int dump, int tiled)
{
    px_ops_init(); /* the thread count */
    const double f = p->vae_scale, fl = sizeof(float);
    const double weights = fl * (double)px_vae_decoder_params(&p->vae);
    const double z = fl * N * p->vae.latent_channels * (double)h * w;
    const double decoded = fl * N * 3.0 * (h * f) * (w * f);
    const double resized = out_h != h * f || out_w != w * f ? fl * N * 3.0 * out_h * out_w : 0;
    const double images = fl * N * 3.0 * out_h * out_w; /* postprocessed (N, H, W, 3) */
    const double work =
        (double)px_vae_decode_work_bytes(&p->vae, dump ? N : 1, h, w, tiled, px_get_num_threads());
    // during px_vae_decode: z, decoded, the decoder's buffers; after it:
    // decoded, resize_and_crop's output and the final images
    const double during = z + decoded + work, after = decoded + resized + images;
    return weights + (during > after ? during : after);
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
    if (px_pl_t5_get(p)) goto out;
    if (px_pl_t5_run(p->models.t5, ids, m, n, L, p->text_dim, out, NULL)) goto out;
    for (int64_t i = 0; i < (int64_t)n * L; i++) mask[i] = (float)m[i];
    rc = 0;
out:
    px_pl_release_unkept(p, PX_MODEL_TEXT_ENCODER);
    free(ids);
    free(m);
    return rc;
}

// ---------------------------------------------------------------------------
// Argument checks (diffusers' check_inputs and more: we also reject what
// would crash later)

int px_pl_check_params(const px_pipeline *p, const px_generate_params *prm, int *B_out)
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
    if (!prm->prompt_embeds && prm->max_sequence_length &&
        (prm->max_sequence_length < 2 || prm->max_sequence_length > 1 << 16))
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
int px_pl_resolve_size(const px_pipeline *p, const px_generate_params *prm, int *H_out, int *W_out, int *orig_h,
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
        // PixArtSigmaPipeline adds the 2048 table for sample_size 256
        const px_ar_bin *tab = p->mi.sigma ? px_ar_bin_table_sigma(p->sample_size, &nb)
                                           : px_ar_bin_table(p->sample_size, &nb);
        if (!tab)
            return px_fail("resolution binning needs a transformer sample_size of 32, 64, 128%s (this one has %d); "
                           "turn it off (--no-resolution-binning)",
                           p->mi.sigma ? " or 256" : "", p->sample_size);
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
    if (px_pl_resolve_size(p, prm, &H, &W, &oh, &ow)) return -1;
    int n = prm->num_prompts * prm->num_images_per_prompt;
    if (n <= 0) return px_fail("no images requested");
    shape[0] = n;
    shape[1] = p->in_channels;
    shape[2] = H / p->vae_scale;
    shape[3] = W / p->vae_scale;
    return 0;
}
