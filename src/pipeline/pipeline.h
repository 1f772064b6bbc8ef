/* diffusers PixArtAlphaPipeline.__call__ (v0.30.3) as a C library call: the
 * public entry points are declared in include/pixart/pixart.h; this header
 * adds the pieces of the pipeline that tests exercise on their own.
 *
 * Stages (doc/walkthrough.md): model_index.json -> tokenizer -> T5 encoder
 * (released) -> scheduler + initial noise -> DiT denoising loop with
 * classifier-free guidance (released) -> VAE decode -> resize/crop back from
 * the resolution bucket -> float image. */
#ifndef PX_PIPELINE_H
#define PX_PIPELINE_H

#include <stdint.h>

#include "pixart/pixart.h"
#include "sched/scheduler.h"
#include "tensor/dump.h"

/* Classifier-free guidance and the learned-sigma split, as the pipeline's
 * loop body does them:
 *   noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
 *   noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)
 *   if out_channels // 2 == latent_channels: noise_pred = noise_pred.chunk(2, dim=1)[0]
 * model_out: (cfg ? 2N : N, out_ch, hw); eps: (N, keep, hw) where keep =
 * out_ch / 2 when that equals in_ch, else out_ch. guidance_scale is used as a
 * float32 scalar, as torch does with a Python float. */
void px_guidance_combine(float *eps, const float *model_out, int N, int out_ch, int in_ch, int64_t hw,
                         int cfg, float guidance_scale);

/* The repetition encode_prompt applies for num_images_per_prompt = n:
 * out row i = in row i / n (embeddings p0,p0,p1,p1; diffusers v0.30 repeats
 * the masks as m0,m1,m0,m1 instead: that bug is NOT reproduced, see
 * doc/pipeline.md). in: (B, row) -> out: (B*n, row). */
void px_repeat_rows(float *out, const float *in, int B, int n, int64_t row);
void px_repeat_rows_i32(int32_t *out, const int32_t *in, int B, int n, int64_t row);

/* VaeImageProcessor.postprocess(output_type="np") after the decoder:
 * (x / 2 + 0.5).clamp(0, 1), permuted NCHW -> NHWC.
 * x: (N, C, H, W) -> out: (N, H, W, C). */
void px_postprocess_image(float *out, const float *x, int N, int C, int H, int W);

/* The denoiser as the loop sees it: diffusers' self.transformer(
 * latent_model_input, encoder_hidden_states=..., encoder_attention_mask=...,
 * timestep=current_timestep, added_cond_kwargs=...). The text conditioning is
 * bound in user. out: (batch, out_channels, h, w) for x: (batch, channels, h,
 * w) at timestep[batch]; step is the loop index (activations are dumped at
 * step 0 only). Returns 0 or -1. */
typedef int (*px_denoiser_fn)(void *user, float *out, const float *x, const float *timestep, int batch, int step);

typedef struct {
    px_denoiser_fn model;
    void *model_user;
    int model_out_channels;   /* 8 for PixArt (learned sigma), or channels */
    int num_images, channels, height, width; /* the latents */
    int cfg;                  /* do_classifier_free_guidance: model batch 2 * num_images, [uncond; cond] */
    float guidance_scale;
    double eta;               /* DDIM */
    px_rng *generators;       /* the pipeline's generator(s) (eta > 0, sde-dpmsolver*) */
    size_t n_generators;
    px_progress_fn progress;  /* one PX_EVENT_STEP per step */
    void *progress_user;
    px_dump *dump;            /* pipeline/transformer_out_stepNN, latents_stepNN, the step's noise and
                               * intermediates (ddim_variance_noise, lcm_noise/denoised, sasolver_*) */
    int no_one_step_x0;       /* PixArtSigmaPipeline: a 1-step run keeps prev_sample like any other */
} px_denoise_args;

/* The denoising loop of __call__ (step 7): for each timestep t of s,
 *   latent_model_input = cat([latents] * 2) if cfg else latents
 *   noise_pred = model(latent_model_input, t) -> guidance -> learned-sigma split
 *   latents = scheduler.step(noise_pred, t, latents).prev_sample
 *             (.pred_original_sample for a 1-step run: the DMD path of
 *             PixArtAlphaPipeline, unless no_one_step_x0)
 * latents: (num_images, channels, h, w), updated in place. The scheduler must
 * have its timesteps set. Returns 0 or -1 (model/scheduler failure,
 * "interrupted" when the progress callback returns nonzero). */
int px_denoise_loop(px_scheduler *s, const px_denoise_args *a, float *latents);

/* Reads DIR/model_index.json and checks it describes a PixArtAlphaPipeline
 * whose components pixart.c implements. On success fills, for each of
 * "scheduler", "text_encoder", "tokenizer", "transformer", "vae", whether the
 * component is present (diffusers allows null text_encoder/tokenizer). */
typedef struct {
    int has_text_encoder, has_tokenizer;
    int sigma; /* _class_name PixArtSigmaPipeline (else PixArtAlphaPipeline) */
    char scheduler_class[64];
    char transformer_class[64];
} px_model_index;
int px_model_index_check(const char *model_dir, px_model_index *mi);

#endif
