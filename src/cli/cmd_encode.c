/* `pixart encode`: the T5 embeddings of prompts (PixArtAlphaPipeline.
 * encode_prompt, without the per-image repetition) saved as safetensors, so
 * that `pixart generate --prompt-embeds FILE` can skip the text encoder. */
#include "pixart/pixart.h" // the only library header: the CLI is a client of the public API
#include "src/cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

#define MAX_LIST 4096

static void encode_usage(FILE *f)
{
    fprintf(f,
            "usage: pixart encode --model DIR --prompt TEXT [--prompt TEXT ...] [--negative-prompt TEXT]\n"
            "                     -o FILE.safetensors [options]\n"
            "\n"
            "Writes the T5 embeddings PixArtAlphaPipeline.encode_prompt computes (prompts\n"
            "lower()/strip()-ed, tokenised to --max-sequence-length tokens, encoded by the\n"
            "checkpoint's text encoder) as float32 tensors:\n"
            "  prompt_embeds (B, L, D), prompt_attention_mask (B, L),\n"
            "  negative_prompt_embeds (B, L, D), negative_prompt_attention_mask (B, L)\n"
            "for 'pixart generate --prompt-embeds FILE'.\n"
            "\n"
            "options:\n"
            "  --model DIR               diffusers checkpoint folder\n"
            "  --prompt TEXT             a prompt; repeat for several\n"
            "  --negative-prompt TEXT    once (for every prompt) or once per prompt (default \"\")\n"
            "  --no-negative             do not write the negative pair (generate then encodes it)\n"
            "  --max-sequence-length N   tokens per prompt (120; PixArt-Sigma: 300)\n"
            "  -o, --output FILE         output .safetensors file\n"
            "  --variant fp16|bf16       load *.VARIANT.safetensors weights\n"
            "  --threads N               operator threads\n"
            "  -q, --quiet               no progress output\n"
            "  -h, --help                show this help\n");
}

static int parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "pixart encode: %s: '%s' is not an integer in [%lld, %lld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_encode(int argc, char **argv)
{
    const char *model = NULL, *out = NULL, *variant = NULL;
    const char **prompts = calloc(MAX_LIST, sizeof *prompts), **negs = calloc(MAX_LIST, sizeof *negs);
    int np = 0, nn = 0, no_neg = 0, quiet = 0;
    long long max_seq = 0, threads = 0; /* max_seq 0: the pipeline's */
    int rc = 2;
    if (!prompts || !negs) {
        fprintf(stderr, "pixart encode: out of memory\n");
        rc = 1;
        goto end;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            encode_usage(stdout);
            rc = 0;
            goto end;
        }
        if (!strcmp(a, "--no-negative")) {
            no_neg = 1;
            continue;
        }
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            quiet = 1;
            continue;
        }
        char name[32];
        const char *eq = a[0] == '-' && a[1] == '-' ? strchr(a, '=') : NULL;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        static const char *opts[] = {"--model", "--prompt", "--negative-prompt", "--max-sequence-length", "-o",
                                     "--output", "--variant", "--threads", NULL};
        int known = 0;
        if (nl < sizeof name) {
            memcpy(name, a, nl);
            name[nl] = 0;
            for (int k = 0; opts[k]; k++) known |= !strcmp(name, opts[k]);
        }
        if (!known) {
            fprintf(stderr, "pixart encode: unknown option '%s' (see pixart encode --help)\n", a);
            goto end;
        }
        const char *val = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!val) {
            fprintf(stderr, "pixart encode: %s needs a value\n", name);
            goto end;
        }
        if (!strcmp(name, "--model")) model = val;
        else if (!strcmp(name, "--prompt")) {
            if (np >= MAX_LIST) goto end;
            prompts[np++] = val;
        } else if (!strcmp(name, "--negative-prompt")) {
            if (nn >= MAX_LIST) goto end;
            negs[nn++] = val;
        } else if (!strcmp(name, "--max-sequence-length")) {
            if (parse_int("--max-sequence-length", val, 2, 4096, &max_seq)) goto end;
        } else if (!strcmp(name, "-o") || !strcmp(name, "--output")) out = val;
        else if (!strcmp(name, "--variant")) {
            if (strcmp(val, "fp16") && strcmp(val, "bf16")) {
                fprintf(stderr, "pixart encode: --variant: '%s' is not fp16 or bf16\n", val);
                goto end;
            }
            variant = val;
        } else if (!strcmp(name, "--threads")) {
            if (parse_int("--threads", val, 1, 4096, &threads)) goto end;
        }
    }
    if (!model || !out || !np) {
        fprintf(stderr, "pixart encode: --model DIR, --prompt TEXT and -o FILE are required\n");
        goto end;
    }
    if (nn > 1 && nn != np) {
        fprintf(stderr, "pixart encode: give --negative-prompt once, or once per --prompt\n");
        goto end;
    }
    if (no_neg && nn) {
        fprintf(stderr, "pixart encode: --no-negative and --negative-prompt exclude each other\n");
        goto end;
    }
    if (threads) px_set_num_threads((int)threads);

    rc = 1;
    px_pipeline *p = px_pipeline_open(model, variant);
    float *emb = NULL, *mask = NULL;
    const char **all = NULL;
    if (!p) goto fail;
    const int L = max_seq ? (int)max_seq : px_pipeline_max_sequence_length(p), D = px_pipeline_text_dim(p);
    const int n = no_neg ? np : 2 * np;
    all = calloc((size_t)n, sizeof *all);
    emb = malloc(sizeof(float) * (size_t)n * L * D);
    mask = malloc(sizeof(float) * (size_t)n * L);
    if (!all || !emb || !mask) {
        px_set_error("out of memory (%d embeddings of %d x %d)", n, L, D);
        goto fail;
    }
    for (int i = 0; i < np; i++) {
        all[i] = prompts[i];
        if (!no_neg) all[np + i] = nn == 0 ? "" : nn == 1 ? negs[0] : negs[i];
    }
    if (!quiet) fprintf(stderr, "encoding %d text%s with %s/text_encoder ...\n", n, n > 1 ? "s" : "", model);
    if (px_pipeline_encode(p, all, n, L, emb, mask)) goto fail;
    int64_t se[3] = {np, L, D}, sm[2] = {np, L};
    const px_named_tensor t[4] = {
        {"prompt_embeds", 3, se, emb},
        {"prompt_attention_mask", 2, sm, mask},
        {"negative_prompt_embeds", 3, se, emb + (size_t)np * L * D},
        {"negative_prompt_attention_mask", 2, sm, mask + (size_t)np * L},
    };
    const char *meta[4] = {"producer", "pixart encode", "model", model};
    if (px_safetensors_save_f32(out, t, no_neg ? 2 : 4, meta, 2)) goto fail;
    if (!quiet) fprintf(stderr, "wrote %s (peak RSS %.2f GiB)\n", out, (double)px_peak_rss_bytes() / (1 << 30));
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "pixart encode: %s\n", px_last_error());
done:
    free(emb);
    free(mask);
    free(all);
    px_pipeline_close(p);
end:
    free(prompts);
    free(negs);
    return rc;
}
