/* pixart: command-line entry point. Dispatches to subcommands; only this
 * file (and the subcommands it calls) print and exit. */
#include "config.h"
#include "cli.h"
#include "pixart/pixart.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* subcommands, each in src/cmd_*.c */
int cmd_tokenize(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_encode(int argc, char **argv);
int cmd_randn(int argc, char **argv);
int cmd_batch(int argc, char **argv);

static const px_command commands[] = {
    { "generate", "text to image: run the PixArt pipeline (alpha or Sigma) on a checkpoint", cmd_generate },
    { "batch", "many images from a prompt file: resumable, T5 loaded once, MPI", cmd_batch },
    { "encode", "save the T5 embeddings of prompts (for generate --prompt-embeds)", cmd_encode },
    { "tokenize", "print the T5 token ids of prompts", cmd_tokenize },
    { "randn", "write torch.randn(shape, generator=manual_seed(S)) as .npy", cmd_randn },
    { NULL, NULL, NULL },
};

int px_cli_parse_int(const char *opt, const char *s, long long lo, long long hi, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "pixart: %s: '%s' is not an integer in [%lld, %lld]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: pixart COMMAND [OPTIONS]\n\n"
               "PixArt-alpha and PixArt-Sigma text-to-image in C (diffusers PixArtAlphaPipeline,\n"
               "PixArtSigmaPipeline).\n\ncommands:\n");
    for (const px_command *c = commands; c->name; c++) fprintf(f, "  %-10s %s\n", c->name, c->summary);
    fprintf(f, "\n'pixart COMMAND --help' describes a command's options; 'pixart --version' prints the version.\n"
               "Environment: PIXART_NUM_THREADS (threads), PIXART_FORCE_REF=1 (scalar reference kernels),\n"
               "PIXART_ISA, PIXART_T5_STREAM, OPENBLAS_CORETYPE: see pixart(1).\n");
}

int main(int argc, char **argv)
{
    px_blas_fix_core(argv); /* OpenBLAS's kernels for this CPU; may re-execute */
    /* Ctrl-C or a kill removes the output temporaries (.pixart.tmp.PID.N) */
    if (px_output_cleanup_on_signals()) fprintf(stderr, "pixart: %s (continuing)\n", px_last_error());
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("pixart %s\n", PACKAGE_VERSION);
        return 0;
    }
    for (const px_command *c = commands; c->name; c++)
        if (!strcmp(argv[1], c->name)) return c->run(argc - 1, argv + 1);
    fprintf(stderr, "pixart: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
