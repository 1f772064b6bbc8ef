/* diffusers PixArtAlphaPipeline.__call__ (v0.30.3, pipeline_pixart_alpha.py)
 * as a short sequence of stages: check_inputs and sizes, scheduler and
 * timesteps, encode_prompt, prepare_latents, micro-conditions, the denoising
 * loop, VAE decode and post-processing. The model stages run through one
 * timed_stage() helper (progress events, timings); each model is released
 * after its stage unless the caller keeps it (px_pipeline_keep_models). */
#include "src/pipeline/internal.h"
#include "src/pipeline/binning.h"
#include "sched/rng.h"
#include "sched/config.h"
#include "sched/scheduler.h"
#include "tensor/dump.h"
#include "tensor/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    int vae_tiled;                /* the decode's path (plan_decode) */
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
    double t0 = px_pl_now_s();
    if (emit(r->prm, PX_EVENT_BEGIN, stage, 0)) return -1;
    if (fn(p, r)) return -1;
    double *sec = r->res->stage_seconds;
    sec[stage] = px_pl_now_s() - t0;
    return emit(r->prm, PX_EVENT_END, stage, sec[stage]);
}

// ---------------------------------------------------------------------------
// 3. encode_prompt

/* The token rows of both halves, or the caller's embeddings copied in. */
static int prompt_inputs(px_pipeline *p, run_state *r)
{
    const px_generate_params *prm = r->prm;
    text_state *ts = &r->ts;
    const int B = r->B, D = p->text_dim;
    const int L = prm->prompt_embeds           ? prm->embeds_len
                  : prm->max_sequence_length ? prm->max_sequence_length
                                             : px_pipeline_max_sequence_length(p);
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

static int stage_load_text_encoder(px_pipeline *p, run_state *r) { return px_pl_t5_get(p); }

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
    if (px_pl_t5_run(p->models.t5, aid, am, n, L, D, ao, NULL)) goto out;
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
        px_pl_release_unkept(p, PX_MODEL_TEXT_ENCODER); // before the transformer is loaded
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
        if (kind < 0) return px_fail("unknown scheduler '%s' (dpm, ddim, lcm, sa-solver)", prm->scheduler);
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
    // PixArtAlphaPipeline keeps .pred_original_sample of a 1-step run (DMD);
    // PixArtSigmaPipeline has no such branch
    if (nsteps == 1 && !p->mi.sigma && r->sched.kind != PX_SCHED_DDIM)
        return px_fail("a 1-step run returns the scheduler's pred_original_sample, which %s does not have "
                       "(diffusers 0.30.3 raises AttributeError); use DDIM (--scheduler ddim) or more steps",
                       res->scheduler);
    if (px_scheduler_needs_generator(&r->sched, prm->eta) && !prm->num_seeds)
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

static int stage_load_transformer(px_pipeline *p, run_state *r) { return px_pl_dit_get(p); }

static int stage_denoise(px_pipeline *p, run_state *r)
{
    px_dit *dit = p->models.dit;
    const int D = r->D;
    if (px_dit_in_channels(dit) != r->C || px_dit_caption_channels(dit) != D)
        return px_fail("%s: transformer expects %d latent / %d caption channels, the pipeline has %d / %d", p->tr_dir,
                       px_dit_in_channels(dit), px_dit_caption_channels(dit), r->C, D);
    // PixArtAlphaPipeline passes resolution/aspect_ratio (for sample_size 128;
    // the transformer ignores them unless use_additional_conditions), Sigma never
    const int micro = px_dit_uses_micro_conditions(dit);
    if (micro && p->mi.sigma)
        return px_fail("%s: PixArtSigmaPipeline gives the transformer no resolution/aspect_ratio, but its config "
                       "turns micro-conditioning on (say \"use_additional_conditions\": false)",
                       p->tr_dir);
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
    da.no_one_step_x0 = p->mi.sigma;
    return px_denoise_loop(&r->sched, &da, r->latents);
}

// ---------------------------------------------------------------------------
// 8. VAE decode, resize back from the bucket, postprocess

/* "2.41 GiB", "310.5 MiB", "92.0 KiB" */
static const char *fmt_bytes(char *buf, size_t n, double b)
{
    if (b >= 1024.0 * 1024 * 1024) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else if (b >= 1024.0 * 1024) snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024));
    else snprintf(buf, n, "%.1f KiB", b / 1024.0);
    return buf;
}

/* Chooses the decode's path before any model runs: explicit tiling on/off,
 * or (auto) untiled unless its estimated memory exceeds the budget; fails
 * now, not after the denoising loop, when the chosen decode would exceed the
 * budget (e.g. 65528 x 65528 with binning: two 51.5 GB image buffers). */
static int plan_decode(px_pipeline *p, run_state *r)
{
    const px_generate_params *prm = r->prm;
    if (prm->output_type != PX_OUTPUT_IMAGE) return 0;
    uint64_t budget;
    const char *src;
    if (px_pl_memory_budget(p, &budget, &src)) return -1;
    const int N = r->N, dump = prm->dump != NULL;
    const double untiled = px_pl_decode_stage_bytes(p, N, r->h, r->w, r->orig_h, r->orig_w, dump, 0);
    const double tiled = px_pl_decode_stage_bytes(p, N, r->h, r->w, r->orig_h, r->orig_w, dump, 1);
    const int can_tile = tiled < untiled && px_vae_tiling_covers(&p->vae, r->h, r->w);
    int mode = p->vae_tiling;
    if (mode == PX_VAE_TILING_AUTO) mode = untiled > (double)budget && can_tile;
    const double need = mode ? tiled : untiled;
    char a[32], b[32], c[32];
    if (need > (double)budget)
        return px_fail("decoding %d image%s of %dx%d%s needs about %s%s, over the memory budget of %s "
                       "(%s; raise it with --max-memory or PIXART_MAX_MEMORY)",
                       N, N > 1 ? "s" : "", r->orig_w, r->orig_h, mode ? " in tiles" : "",
                       fmt_bytes(a, sizeof a, need), !mode && can_tile ? " (--vae-tiling would need less)" : "",
                       fmt_bytes(b, sizeof b, (double)budget), src);
    r->vae_tiled = mode;
    if (p->vae_tiling == PX_VAE_TILING_AUTO && mode && !p->tiling_noted) {
        fprintf(stderr,
                "pixart: the untiled VAE decode of %dx%d would need about %s, over the memory budget of %s (%s): "
                "decoding in tiles (about %s; the image differs slightly, as with diffusers' vae.enable_tiling())\n",
                r->w * p->vae_scale, r->h * p->vae_scale, fmt_bytes(a, sizeof a, untiled),
                fmt_bytes(b, sizeof b, (double)budget), src, fmt_bytes(c, sizeof c, tiled));
        p->tiling_noted = 1;
    }
    return 0;
}

static int stage_load_vae(px_pipeline *p, run_state *r) { return px_pl_vae_get(p); }

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
    px_vae_set_tiling(vae, r->vae_tiled);
    if (px_vae_decode(vae, decoded, z, N, r->h, r->w, dump)) goto out;
    px_pl_release_unkept(p, PX_MODEL_VAE);
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
    if (px_pl_check_params(p, prm, &r->B)) return -1;
    r->n_per = prm->num_images_per_prompt;
    r->N = r->B * r->n_per;
    r->cfg = prm->guidance_scale > 1.0; // do_classifier_free_guidance
    r->NB = r->cfg ? 2 * r->N : r->N;
    if (px_pl_resolve_size(p, prm, &r->H, &r->W, &r->orig_h, &r->orig_w)) return -1;
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
    if (plan_decode(p, &r) || setup_scheduler(p, &r) || encode_prompt(p, &r) || conditioning(&r)) goto fail;
    text_state_free(&r.ts);
    if (prepare_latents(&r) || micro_conditions(&r)) goto fail;
    if (timed_stage(p, &r, PX_STAGE_LOAD_TRANSFORMER, stage_load_transformer) ||
        timed_stage(p, &r, PX_STAGE_DENOISE, stage_denoise))
        goto fail;
    px_pl_release_unkept(p, PX_MODEL_TRANSFORMER); // before the VAE is loaded
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
    px_pl_release_unkept(p, PX_MODEL_ALL);
    run_free(&r);
    px_generate_result_free(res);
    return -1;
}
