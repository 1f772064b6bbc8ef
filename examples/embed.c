/* Embedding pixart.c in a program: a few images from one checkpoint, the
 * models loaded once, through nothing but the public header.
 *
 *   embed MODEL_DIR OUT_PREFIX [PROMPT]
 *
 * writes OUT_PREFIX-0.png ... OUT_PREFIX-2.png, one per seed. Without a
 * PROMPT the text conditioning is random T5-sized embeddings (the tiny test
 * checkpoints in data/ carry no tokenizer vocabulary); with one, the
 * checkpoint's T5 tokenizer and encoder run as in diffusers.
 *
 * Build against an installed library:
 *   cc embed.c $(pkg-config --cflags --libs pixart) -o embed */
#include <pixart/pixart.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what)
{
    fprintf(stderr, "embed: %s: %s\n", what, px_last_error());
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: embed MODEL_DIR OUT_PREFIX [PROMPT]\n");
        return 2;
    }
    px_pipeline *p = px_pipeline_open(argv[1], NULL);
    if (!p) return fail(argv[1]);
    // several images: load the text encoder, transformer and VAE once, not per call
    px_pipeline_keep_models(p, PX_MODEL_ALL);

    px_generate_params prm;
    px_generate_params_init(&prm); // diffusers' defaults: 20 steps, guidance 4.5, ...
    prm.num_inference_steps = 4;
    // the default (square) size; binning would pick the same size for a real checkpoint,
    // and the tiny test ones have no aspect-ratio table
    prm.use_resolution_binning = 0;
    prm.num_prompts = 1;
    const char *prompt = argc == 4 ? argv[3] : NULL;
    enum { L = 8 };
    const int D = px_pipeline_text_dim(p);
    float *embeds = malloc(sizeof(float) * L * D), mask[L];
    if (!embeds) return 1;
    if (prompt) {
        prm.prompt = &prompt;
    } else {
        // torch.randn((1, L, D), generator=torch.Generator().manual_seed(42)) as the prompt embedding
        if (px_torch_randn(embeds, 3, (const int64_t[]){1, L, D}, 42)) return fail("randn");
        for (int i = 0; i < L; i++) mask[i] = 1;
        prm.prompt_embeds = embeds;
        prm.prompt_attention_mask = mask;
        prm.embeds_len = L;
        prm.guidance_scale = 1.0; // no guidance: the negative prompt "" would need the vocabulary
    }

    int rc = 0;
    for (uint64_t seed = 0; seed < 3 && !rc; seed++) {
        prm.seeds = &seed;
        prm.num_seeds = 1;
        px_generate_result res;
        if (px_pipeline_generate(p, &prm, &res)) {
            rc = fail("generate");
            break;
        }
        // res.images: (1, height, width, 3) float in [0, 1] -> 8-bit RGB PNG with its seed
        size_t n = (size_t)res.height * res.width * 3;
        uint8_t *rgb = malloc(n);
        char path[4096], seed_text[32];
        snprintf(path, sizeof path, "%s-%d.png", argv[2], (int)seed);
        snprintf(seed_text, sizeof seed_text, "%d", (int)seed);
        px_png_text text[] = {{"prompt", prompt ? prompt : "(random embeddings)"}, {"seed", seed_text}};
        if (!rgb) rc = 1;
        else {
            px_image_to_u8(rgb, res.images, n);
            if (px_png_write(path, rgb, res.width, res.height, text, 2)) rc = fail(path);
            else printf("%s: %dx%d, %s, %.2f s denoising\n", path, res.width, res.height, res.scheduler,
                        res.stage_seconds[PX_STAGE_DENOISE]);
        }
        free(rgb);
        px_generate_result_free(&res);
    }
    free(embeds);
    px_pipeline_close(p); // releases the kept models
    return rc;
}
