/* What the pipeline's files share (not part of any public or test API):
 * the opened checkpoint and the helpers generate.c calls in pipeline.c.
 *   pipeline.c  the checkpoint: model_index.json, configs, the models'
 *               lifetime, tokenizer and text encoder, argument checks
 *   generate.c  PixArtAlphaPipeline.__call__ as a sequence of stages
 *   denoise.c   the denoising loop and the small pieces of its body */
#ifndef PX_PIPELINE_INTERNAL_H
#define PX_PIPELINE_INTERNAL_H

#include "src/pipeline/pipeline.h"
#include "src/tokenizer/t5_tokenizer.h"
#include "model/dit.h"
#include "model/t5.h"
#include "model/vae.h"

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
    int vae_tiling;  /* px_pipeline_set_vae_tiling: 1, 0 or PX_VAE_TILING_AUTO */
    uint64_t max_memory; /* px_pipeline_set_max_memory (0: PIXART_MAX_MEMORY or half the RAM) */
    int tiling_noted;    /* the switch to tiling was reported on stderr */
};

/* Monotonic clock in seconds (stage timings). */
double px_pl_now_s(void);

/* The models, loaded into p->models on first use (the text encoder's d_model
 * checked against the pipeline's). 0 or -1. */
int px_pl_t5_get(px_pipeline *p);
int px_pl_dit_get(px_pipeline *p);
int px_pl_vae_get(px_pipeline *p);
/* Releases the models of mask that p->keep_models does not keep. */
void px_pl_release_unkept(px_pipeline *p, int mask);

/* T5 on n token rows (n, L) -> out (n, L, D); identical rows encoded once
 * unless dump is given. */
int px_pl_t5_run(px_t5 *m, const int32_t *ids, const int32_t *mask, int n, int L, int D, float *out, px_dump *dump);

/* The decode stage's memory budget in bytes, and where it comes from (for
 * messages: "--max-memory", "PIXART_MAX_MEMORY", "half the RAM"). 0 or -1
 * (a malformed PIXART_MAX_MEMORY). */
int px_pl_memory_budget(const px_pipeline *p, uint64_t *bytes, const char **source);
/* A size: a number of bytes with an optional K, M, G or T (powers of 1024,
 * optionally followed by "B" or "iB"; "1.5G" allowed). 0 or -1. */
int px_pl_parse_size(const char *s, uint64_t *bytes);
/* Estimated peak bytes of the decode stage of N images from (h, w) latents
 * resized to out_h x out_w (DH x DW when equal): the decoder's weights (as
 * float32), the stage's buffers, px_vae_decode's own (the whole batch at
 * once with a dump); tiled 0 or 1. */
double px_pl_decode_stage_bytes(const px_pipeline *p, int N, int h, int w, int out_h, int out_w, int dump,
                                int tiled);

/* check_inputs (and more): *B = the number of prompts. */
int px_pl_check_params(const px_pipeline *p, const px_generate_params *prm, int *B);
/* The generated size H x W (binned) and the requested one. */
int px_pl_resolve_size(const px_pipeline *p, const px_generate_params *prm, int *H, int *W, int *orig_h, int *orig_w);

#endif
