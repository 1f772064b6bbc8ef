/* pixart.c public API: PixArt-alpha text-to-image in C.
 *
 * The library is organised like the pipeline it implements (see
 * doc/walkthrough.md); this header is the stable entry point for programs
 * that link libpixart. It is plain C and needs no other header of the
 * project.
 *
 *   px_pipeline *p = px_pipeline_open("PixArt-XL-2-512x512", NULL);
 *   px_generate_params prm;
 *   px_generate_params_init(&prm);
 *   const char *prompt = "a small cactus with a happy face in the sahara desert";
 *   uint64_t seed = 0;
 *   prm.prompt = &prompt; prm.num_prompts = 1;
 *   prm.seeds = &seed; prm.num_seeds = 1;
 *   px_generate_result res;
 *   if (px_pipeline_generate(p, &prm, &res)) fprintf(stderr, "%s\n", px_last_error());
 *   // res.images: (res.num_images, res.height, res.width, 3) float32 in [0, 1]
 *   px_generate_result_free(&res);
 *   px_pipeline_close(p);
 */
#ifndef PIXART_H
#define PIXART_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library exports these functions and nothing else (it is built with
 * -fvisibility=hidden where the compiler has it). */
#if defined(__GNUC__) || defined(__clang__)
#define PX_API __attribute__((visibility("default")))
#else
#define PX_API
#endif

/* The last error message recorded on this thread (file and field named). */
PX_API const char *px_last_error(void);

/* Threads used by every operator (also PIXART_NUM_THREADS). */
PX_API void px_set_num_threads(int n);

/* The process's peak resident memory so far in bytes (VmHWM), 0 if unknown. */
PX_API uint64_t px_peak_rss_bytes(void);

/* First thing in a program's main(argv), before any thread or OpenBLAS call:
 * when the OpenBLAS library picked kernels older than the CPU (a DYNAMIC_ARCH
 * build that does not know the CPU model falls back to e.g. "Prescott") and
 * the user did not set OPENBLAS_CORETYPE, says so once on stderr and
 * re-executes the program with OPENBLAS_CORETYPE set to the right core
 * (Linux; elsewhere it only says what to set). Returns when there is nothing
 * to do. A user-set OPENBLAS_CORETYPE always wins. doc/performance.md. */
PX_API void px_blas_fix_core(char **argv);

/* ---- tokenizer: transformers T5Tokenizer(legacy=True) as PixArt calls it --- */

typedef struct px_t5tok px_t5tok;
/* PATH: a SentencePiece spiece.model file, or a checkpoint folder with
 * tokenizer/spiece.model. NULL on error (px_last_error). */
PX_API px_t5tok *px_t5tok_load_path(const char *path);
PX_API void px_t5tok_free(px_t5tok *t);
/* All ids of text (len bytes, may hold NUL) including the final </s>, no
 * truncation or padding: *ids malloc'ed (free it), *n >= 1. 0 or -1. */
PX_API int px_t5tok_tokenize(const px_t5tok *t, const char *text, size_t len, int32_t **ids, size_t *n);
/* The pipeline's call: padding="max_length", truncation to max_length (>= 2)
 * tokens; ids and mask (either may be NULL) get max_length entries, *n_real
 * (optional) the number of real tokens. 0 or -1. */
PX_API int px_t5tok_encode_n(const px_t5tok *t, const char *text, size_t len, int max_length, int32_t *ids,
                             int32_t *mask, int *n_real);
/* The token string of id: a SentencePiece piece (bytes, not NUL-terminated,
 * *len set) or, for the 100 extra ids, NULL with *extra = N of <extra_id_N>. */
PX_API const char *px_t5tok_piece(const px_t5tok *t, int32_t id, size_t *len, int *extra);
/* PixArt's prompt preprocessing with clean_caption=False: Python's
 * text.lower().strip(). *out malloc'ed and NUL-terminated. 0 or -1. */
PX_API int px_pixart_preprocess_n(const char *text, size_t len, char **out, size_t *out_len);

/* ---- pipeline: diffusers PixArtAlphaPipeline (v0.30.3) ------------------ */

typedef struct px_pipeline px_pipeline;

/* Activation recorder for px_generate_params.dump: every intermediate of a
 * run under the reference's key names ("pipeline/latents_step03",
 * "transformer/transformer_blocks.12#0", ...), saved as F32 safetensors. */
struct px_dump;
PX_API struct px_dump *px_dump_new(void);
PX_API void px_dump_free(struct px_dump *d);
PX_API int px_dump_save(const struct px_dump *d, const char *path);

/* Opens an unmodified diffusers checkpoint folder (model_index.json,
 * scheduler/, text_encoder/, tokenizer/, transformer/, vae/). Checks the
 * component classes and reads the configurations; the weights are loaded
 * when a stage needs them and released after it (the text encoder is freed
 * before the transformer is loaded; see px_pipeline_keep_models). variant: NULL, "fp16" or "bf16" loads
 * *.VARIANT.safetensors files like diffusers' variant= argument.
 * NULL with px_last_error() naming the file and field on failure. */
PX_API px_pipeline *px_pipeline_open(const char *model_dir, const char *variant);
PX_API void px_pipeline_close(px_pipeline *p);

/* The transformer's sample_size, the VAE's downscale factor (8 for the real
 * VAE), the latent channels, the T5 d_model, and the default image size
 * (sample_size * downscale, like diffusers' height/width defaults). */
/* The three models, as masks for px_pipeline_keep_models. */
enum {
    PX_MODEL_TEXT_ENCODER = 1, /* T5EncoderModel */
    PX_MODEL_TRANSFORMER = 2,  /* PixArtTransformer2DModel */
    PX_MODEL_VAE = 4,          /* AutoencoderKL */
    PX_MODEL_ALL = 7
};

/* Which models stay loaded between calls, for programs that generate many
 * images: a mask of PX_MODEL_*. A kept model is loaded the first time a
 * stage needs it and reused by later px_pipeline_generate /
 * px_pipeline_encode calls until released or the pipeline is closed; the
 * others are released right after their stage (0, the default: nothing is
 * kept, so the text encoder and the transformer are never resident
 * together). The outputs are the same bits either way. Loaded models no
 * longer in the mask are released now. Returns the previous mask. */
PX_API int px_pipeline_keep_models(px_pipeline *p, int mask);
/* Releases the loaded models of mask now (they stay in the keep mask and are
 * loaded again when next needed), e.g. the text encoder once every prompt
 * of a batch is encoded. */
PX_API void px_pipeline_release_models(px_pipeline *p, int mask);

/* diffusers' vae.enable_tiling() (1) / disable_tiling() (0), or
 * PX_VAE_TILING_AUTO (the default): latents larger than the VAE's tile are
 * decoded in overlapping tiles blended together, which bounds the decoder's
 * memory at large sizes; the image differs slightly from the untiled one, as
 * in diffusers (doc/vae.md). Auto decodes untiled unless the estimated
 * memory of the untiled decode exceeds the budget (px_pipeline_set_max_memory),
 * and then tiled, saying so once on stderr. Returns the previous setting. */
enum { PX_VAE_TILING_AUTO = -1 };
PX_API int px_pipeline_set_vae_tiling(px_pipeline *p, int mode);
/* The memory budget of the VAE decode stage in bytes (its weights, buffers
 * and activations, estimated from the buffers the decoder allocates;
 * doc/vae.md "Memory"): 0, the default, takes PIXART_MAX_MEMORY (e.g. "3G",
 * "2500M": K/M/G/T are powers of 1024) or else half the physical RAM.
 * px_pipeline_generate checks it before any model runs: tiling (in auto
 * mode) when the untiled decode would exceed it, and an error when even the
 * decode it will run would. Models kept loaded (px_pipeline_keep_models) are
 * not counted. Returns the previous setting. */
PX_API uint64_t px_pipeline_set_max_memory(px_pipeline *p, uint64_t bytes);

PX_API int px_pipeline_sample_size(const px_pipeline *p);
PX_API int px_pipeline_vae_scale_factor(const px_pipeline *p);
PX_API int px_pipeline_latent_channels(const px_pipeline *p);
PX_API int px_pipeline_text_dim(const px_pipeline *p);
/* 1 for a PixArtSigmaPipeline checkpoint (model_index.json), 0 for PixArtAlphaPipeline. */
PX_API int px_pipeline_is_sigma(const px_pipeline *p);
/* The pipeline's default max_sequence_length: 120 (alpha), 300 (Sigma). */
PX_API int px_pipeline_max_sequence_length(const px_pipeline *p);
/* The checkpoint's scheduler class (model_index.json), e.g. "DPMSolverMultistepScheduler",
 * "LCMScheduler" for PixArt-LCM. */
PX_API const char *px_pipeline_scheduler_class(const px_pipeline *p);
PX_API void px_pipeline_default_size(const px_pipeline *p, int *height, int *width);

/* Stages of a run, in order (progress events, timings). */
typedef enum {
    PX_STAGE_LOAD_TEXT_ENCODER = 0,
    PX_STAGE_ENCODE_PROMPT,
    PX_STAGE_LOAD_TRANSFORMER,
    PX_STAGE_DENOISE,
    PX_STAGE_LOAD_VAE,
    PX_STAGE_DECODE,
    PX_STAGE_COUNT
} px_stage;
/* "load text encoder", "encode prompt", ... */
PX_API const char *px_stage_name(int stage);

typedef enum {
    PX_EVENT_BEGIN = 0, /* a stage starts */
    PX_EVENT_END,       /* a stage ended (seconds) */
    PX_EVENT_STEP,      /* a denoising step ended (latents after it) */
    PX_EVENT_LATENTS    /* the initial latents are ready (prepare_latents), before step 0 */
} px_event_kind;

typedef struct {
    int kind;           /* px_event_kind */
    int stage;          /* px_stage */
    double seconds;     /* END: duration of the stage; STEP: duration of this step */
    /* STEP: the denoising step just finished (0-based) of num_steps, its
     * timestep, and the latents after it (num_images, channels, height,
     * width) - diffusers' legacy callback(step, t, latents); for a 1-step run
     * this is the scheduler's pred_original_sample. LATENTS: the initial
     * latents (already scaled by init_noise_sigma). Valid during the call. */
    int step, num_steps;
    int64_t timestep;
    const float *latents;
    int num_images, channels, height, width;
} px_progress_event;

/* Called at every stage boundary and after every denoising step. A nonzero
 * return stops the run (px_pipeline_generate then fails with "interrupted"). */
typedef int (*px_progress_fn)(void *user, const px_progress_event *ev);

typedef enum {
    PX_OUTPUT_IMAGE = 0, /* decode: float image (diffusers output_type="np") */
    PX_OUTPUT_LATENT = 1 /* stop after the denoising loop (output_type="latent") */
} px_output_type;

/* The arguments of PixArtAlphaPipeline.__call__. Initialise with
 * px_generate_params_init (diffusers' defaults), then set what you need.
 * Every pointer is borrowed for the duration of the call. */
typedef struct {
    /* -- what to draw: exactly one of prompt, prompt_ids, prompt_embeds -- */
    const char *const *prompt;  /* num_prompts UTF-8 prompts (lower()/strip()-ed and tokenised here) */
    int num_prompts;
    /* negative_prompt: NULL/0 = "" for every prompt; 1 = the same for every
     * prompt (a str in diffusers); num_prompts = one each (a list). */
    const char *const *negative_prompt;
    int num_negative_prompts;
    /* Already tokenised prompts (num_prompts, max_sequence_length) int32 ids
     * and 0/1 masks, e.g. from px_pipeline_tokenize or your own tokenizer;
     * the negative pair is needed with guidance (then negative_prompt is
     * ignored). */
    const int32_t *prompt_ids, *prompt_mask;
    const int32_t *negative_ids, *negative_mask;
    /* Precomputed T5 embeddings (num_prompts, embeds_len, text_dim) float32
     * and masks (num_prompts, embeds_len) 0/1 float32, as `pixart encode`
     * writes them. Without negative_prompt_embeds the negative prompt is
     * encoded with the text encoder (to embeds_len tokens). */
    const float *prompt_embeds, *prompt_attention_mask;
    const float *negative_prompt_embeds, *negative_prompt_attention_mask;
    int embeds_len;

    /* -- sampling -- */
    int num_inference_steps;  /* 20 */
    const int64_t *timesteps; /* custom timesteps (descending), or NULL */
    int num_timesteps;
    double guidance_scale;    /* 4.5; <= 1 disables classifier-free guidance */
    int num_images_per_prompt; /* 1 */
    int height, width;        /* 0 = transformer sample_size * VAE scale factor */
    double eta;               /* DDIM eta (0) */
    /* Seeds of torch.Generator('cpu').manual_seed: 1 seed = one generator for
     * the whole batch; num_prompts * num_images_per_prompt seeds = diffusers'
     * list of generators (one per image). 0 seeds: only valid with latents. */
    const uint64_t *seeds;
    int num_seeds;
    /* diffusers' latents= : (num_images, latent_channels, h, w) float32 noise
     * (scaled by the scheduler's init_noise_sigma like diffusers does). */
    const float *latents;
    int use_resolution_binning; /* 1 */
    int max_sequence_length;    /* 0: the pipeline's (120 alpha, 300 Sigma) */
    int output_type;            /* px_output_type */

    /* -- scheduler -- */
    /* NULL: the checkpoint's scheduler; "dpm" / "ddim": that class built
     * from the checkpoint's scheduler config (diffusers' X.from_config). */
    const char *scheduler;
    /* A diffusers scheduler_config.json (its _class_name decides the class);
     * replaces the checkpoint's scheduler. */
    const char *scheduler_config;

    /* -- observation -- */
    px_progress_fn progress;
    void *progress_user;
    /* Records the run's intermediates under the reference key names
     * (pipeline/..., text_encoder/..., transformer/... at the first step,
     * vae/...), or NULL. */
    struct px_dump *dump;
} px_generate_params;

PX_API void px_generate_params_init(px_generate_params *prm);

typedef struct {
    int num_images;          /* num_prompts * num_images_per_prompt */
    int height, width;       /* of the images (the requested size) */
    float *images;           /* (num_images, height, width, 3) in [0, 1]; NULL for latent output */
    int gen_height, gen_width; /* the size actually generated (after resolution binning) */
    int latent_channels, latent_height, latent_width;
    float *latents;          /* final latents (num_images, C, h, w) (always) */
    int num_steps;           /* denoising steps run */
    int64_t *timesteps;      /* (num_steps) the scheduler's timesteps */
    char scheduler[64];      /* class used: "DPMSolverMultistepScheduler" / "DDIMScheduler" */
    double stage_seconds[PX_STAGE_COUNT];
} px_generate_result;

/* Runs the pipeline. Returns 0 and fills *res (free with
 * px_generate_result_free), or -1 with px_last_error(). */
PX_API int px_pipeline_generate(px_pipeline *p, const px_generate_params *prm, px_generate_result *res);
PX_API void px_generate_result_free(px_generate_result *res);

/* The shape of the latents a call with these parameters uses (num_images,
 * latent_channels, h, w) (after resolution binning), e.g. to check a
 * latents= array before the run. Returns 0 or -1 (bad size). */
PX_API int px_pipeline_latent_shape(const px_pipeline *p, const px_generate_params *prm, int64_t shape[4]);

/* The tokenizer step of encode_prompt for one text: lower()/strip(), then
 * T5Tokenizer(padding="max_length", truncation=True) to max_length tokens.
 * ids/mask: (max_length) int32. Returns 0 or -1. */
PX_API int px_pipeline_tokenize(px_pipeline *p, const char *text, int max_length, int32_t *ids, int32_t *mask);

/* encode_prompt without repetition: the T5 embeddings of n texts,
 * out (n, max_length, text_dim) float32 and mask (n, max_length) 0/1 float32.
 * Loads the text encoder for the call and releases it afterwards (unless
 * kept: px_pipeline_keep_models). */
PX_API int px_pipeline_encode(px_pipeline *p, const char *const *texts, int n, int max_length, float *out,
                       float *mask);

/* ---- images and noise ------------------------------------------------- */

/* diffusers' numpy_to_pil rounding: out[i] = uint8(round_half_even(float(x[i] * 255)))
 * for a float image in [0, 1] (values outside are saturated, NaN becomes 0). */
PX_API void px_image_to_u8(uint8_t *out, const float *x, size_t n);

/* A PNG text chunk: key 1..79 printable Latin-1 characters (no leading or
 * trailing space), value UTF-8 (written as iTXt when not plain ASCII). */
typedef struct {
    const char *key;
    const char *value;
} px_png_text;

/* Writes rgb (h, w, 3) 8-bit row-major as an RGB PNG with ntext text chunks
 * (e.g. the generation parameters). Never half a file: see "output files"
 * below. Returns 0 or -1. */
PX_API int px_png_write(const char *path, const uint8_t *rgb, int w, int h, const px_png_text *text, int ntext);

/* torch.randn(shape, generator=torch.Generator("cpu").manual_seed(seed))
 * in float32, bit for bit: out has the product of shape[0..ndim) values.
 * Returns 0 or -1. */
PX_API int px_torch_randn(float *out, int ndim, const int64_t *shape, uint64_t seed);

/* ---- files and errors -------------------------------------------------- */

/* Tensor `key` of a safetensors file as a malloc'd float32 array (F32, F16,
 * BF16, I32 and I64 converted), its dimensions in *ndim and shape[0..ndim)
 * (at most max_ndim). NULL with px_last_error() naming the file and the
 * tensor. px_safetensors_has_tensor: 1, 0, or -1 (unreadable file). */
PX_API float *px_safetensors_read_f32(const char *path, const char *key, int max_ndim, int *ndim, int64_t *shape);
PX_API int px_safetensors_has_tensor(const char *path, const char *key);

/* Writes n float32 tensors (names unique) and nmeta metadata string pairs
 * (metadata[2k] = key, metadata[2k + 1] = value) as a safetensors file, e.g.
 * the prompt embeddings `pixart encode` writes. Returns 0 or -1. */
typedef struct {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} px_named_tensor;
PX_API int px_safetensors_save_f32(const char *path, const px_named_tensor *t, int n, const char *const *metadata,
                                   int nmeta);

/* A float32 .npy file (numpy format 1.0). Returns 0 or -1. */
PX_API int px_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data);

/* ---- output files (doc/pipeline.md, "Output files") --------------------
 * px_png_write, px_npy_save_f32, px_safetensors_save_f32 and px_dump_save
 * write a regular file (or a new one) through a temporary
 * ".pixart.tmp.PID.N" in its directory: fsync, rename, fsync of the
 * directory. A symbolic link is followed (the link stays, its target gets
 * the new file); a device or FIFO is written in place; a directory is
 * refused. */

/* Whether path can be written, checked before a long run: not empty, not a
 * directory, its directory exists and is writable, the name fits NAME_MAX.
 * 0 or -1 with a message naming path. */
PX_API int px_output_check(const char *path);
/* All or nothing for several files: after px_output_stage_begin the writers
 * above leave existing files untouched and keep their temporaries;
 * px_output_stage_commit renames them all onto their targets (0, or -1 when
 * a rename failed: the files not yet renamed are left as they were), and
 * px_output_stage_discard removes them. One staged group per process at a
 * time. */
PX_API void px_output_stage_begin(void);
PX_API int px_output_stage_commit(void);
PX_API void px_output_stage_discard(void);
/* Makes SIGINT, SIGTERM, SIGHUP and SIGQUIT (where their disposition is the
 * default) remove the live temporaries before the process dies of the
 * signal. For programs; a library never installs handlers on its own.
 * 0 or -1. A program with its own handler (one that ends the process) calls
 * px_output_remove_temporaries from it instead: it only calls unlink, and is
 * async-signal-safe. */
PX_API int px_output_cleanup_on_signals(void);
PX_API void px_output_remove_temporaries(void);

/* Only the keys for which keep(key, user) returns nonzero are recorded (e.g.
 * the main modules' outputs, not every submodule's). */
PX_API void px_dump_set_filter(struct px_dump *d, int (*keep)(const char *key, void *user), void *user);

/* Records a message for px_last_error() (e.g. why a progress callback
 * stopped a run); returns -1. */
#if defined(__GNUC__) || defined(__clang__)
__attribute__((format(printf, 1, 2)))
#endif
PX_API int px_set_error(const char *fmt, ...);

#ifdef __cplusplus
}
#endif

#endif
