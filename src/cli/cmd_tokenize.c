/* `pixart tokenize`: T5 token ids of prompts, as PixArtAlphaPipeline's
 * tokenizer call produces them (transformers T5Tokenizer, legacy=True). */
#include "src/cli/cli.h"
#include "pixart/pixart.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void tokenize_usage(FILE *f)
{
    fprintf(f,
            "usage: pixart tokenize --tokenizer PATH [--max-length N] [--preprocess] [--pieces] [TEXT...]\n"
            "\n"
            "Prints the T5 token ids of each TEXT, or of each line of standard input when\n"
            "no TEXT is given, as one line of space-separated integers: the real tokens\n"
            "including the final </s> (id 1), without the padding. The ids are those of\n"
            "transformers' T5Tokenizer(legacy=True) called as PixArtAlphaPipeline does:\n"
            "special tokens written in the text (</s>, <pad>, <unk>, <extra_id_0>..<extra_id_99>)\n"
            "become their ids, and at most N tokens are kept (the first N-1 plus </s>).\n"
            "\n"
            "options:\n"
            "  --tokenizer PATH  a SentencePiece spiece.model file, or a checkpoint folder\n"
            "                    containing tokenizer/spiece.model\n"
            "  --max-length N    truncation length (default 120, the pipeline's; 0 = no\n"
            "                    truncation; otherwise at least 2)\n"
            "  --preprocess      first apply PixArt's prompt preprocessing (clean_caption=False):\n"
            "                    Python's text.lower().strip(), as the pipeline does\n"
            "  --pieces          print the piece strings instead of the ids\n"
            "  -h, --help        show this help\n"
            "\n"
            "Lines read from standard input lose their final newline only. '--' ends the\n"
            "options (for a TEXT that starts with '-').\n");
}

static int print_ids(const px_t5tok *tok, const int32_t *ids, size_t n, int pieces)
{
    for (size_t i = 0; i < n; i++) {
        if (i) putchar(' ');
        size_t len;
        int extra;
        const char *p = pieces ? px_t5tok_piece(tok, ids[i], &len, &extra) : NULL;
        if (!pieces) printf("%d", (int)ids[i]);
        else if (p) fwrite(p, 1, len, stdout);
        else printf("<extra_id_%d>", extra);
    }
    putchar('\n');
    return ferror(stdout) ? -1 : 0;
}

static int tokenize_one(const px_t5tok *tok, const char *text, size_t len, int max_length, int preprocess,
                        int pieces)
{
    char *pre = NULL;
    if (preprocess) {
        if (px_pixart_preprocess_n(text, len, &pre, &len) != 0) return -1;
        text = pre;
    }
    int rc;
    if (max_length == 0) {
        int32_t *ids;
        size_t n;
        rc = px_t5tok_tokenize(tok, text, len, &ids, &n);
        if (rc == 0) {
            rc = print_ids(tok, ids, n, pieces);
            free(ids);
        }
    } else {
        int32_t *ids = malloc((size_t)max_length * sizeof *ids);
        int n = 0;
        rc = ids ? px_t5tok_encode_n(tok, text, len, max_length, ids, NULL, &n) : px_set_error("out of memory");
        if (rc == 0) rc = print_ids(tok, ids, (size_t)n, pieces);
        free(ids);
    }
    free(pre);
    return rc;
}

int cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL;
    long long max_length = 120;
    int preprocess = 0, pieces = 0;
    int i = 1;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--")) { i++; break; }
        if (a[0] != '-' || !a[1]) break; /* first TEXT */
        const char *val = NULL;
        const char *eq = strchr(a, '=');
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            tokenize_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--preprocess")) {
            preprocess = 1;
        } else if (!strcmp(a, "--pieces")) {
            pieces = 1;
        } else if ((nl == 11 && !strncmp(a, "--tokenizer", nl)) || (nl == 12 && !strncmp(a, "--max-length", nl))) {
            if (eq) val = eq + 1;
            else if (i + 1 < argc) val = argv[++i];
            else {
                fprintf(stderr, "pixart tokenize: %s needs a value\n", a);
                return 2;
            }
            if (nl == 11) path = val;
            else {
                if (px_cli_parse_int("--max-length", val, 0, 1 << 24, &max_length) != 0) return 2;
                if (max_length == 1) {
                    fprintf(stderr, "pixart tokenize: --max-length 1: must be 0 (no truncation) or at least 2\n");
                    return 2;
                }
            }
        } else {
            fprintf(stderr, "pixart tokenize: unknown option '%s'\n", a);
            tokenize_usage(stderr);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "pixart tokenize: --tokenizer PATH is required\n");
        tokenize_usage(stderr);
        return 2;
    }
    px_t5tok *tok = px_t5tok_load_path(path);
    if (!tok) {
        fprintf(stderr, "pixart tokenize: %s\n", px_last_error());
        return 1;
    }
    int rc = 0;
    if (i < argc) {
        for (; i < argc && rc == 0; i++)
            rc = tokenize_one(tok, argv[i], strlen(argv[i]), (int)max_length, preprocess, pieces);
    } else {
        char *line = NULL;
        size_t cap = 0;
        ssize_t n;
        while (rc == 0 && (n = getline(&line, &cap, stdin)) >= 0) {
            size_t len = (size_t)n;
            if (len > 0 && line[len - 1] == '\n') len--;
            rc = tokenize_one(tok, line, len, (int)max_length, preprocess, pieces);
        }
        free(line);
    }
    if (rc != 0) fprintf(stderr, "pixart tokenize: %s\n", px_last_error()[0] ? px_last_error() : "write error");
    if (fflush(stdout) != 0 && rc == 0) {
        fprintf(stderr, "pixart tokenize: write error\n");
        rc = -1;
    }
    px_t5tok_free(tok);
    return rc == 0 ? 0 : 1;
}
