/* pixart randn: torch.randn(shape, generator=torch.Generator('cpu').manual_seed(S))
 * as a float32 .npy file, bit for bit (sched/rng.h). */
#include "cli.h"
#include "pixart/pixart.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RANDN_MAX_DIMS 8
#define RANDN_MAX_NUMEL (INT64_C(1) << 31) /* 8 GiB of float32 is plenty */

static void randn_usage(FILE *f)
{
    fprintf(f,
            "usage: pixart randn --seed S --shape D0,D1,... -o FILE.npy\n\n"
            "Writes torch.randn(shape, generator=torch.Generator('cpu').manual_seed(S)) as a\n"
            "float32 .npy file, bit-identical to PyTorch 1.13 on x86-64 (AVX2 kernels),\n"
            "e.g. the initial latents of a diffusers pipeline called with that generator.\n\n"
            "options:\n"
            "  --seed S        generator seed: an integer in [-2**63, 2**64) (negative values\n"
            "                  wrap like Python's; only the low 32 bits reach mt19937, as in torch)\n"
            "  --shape D0,...  comma-separated dimensions (1 to %d of them, each >= 0)\n"
            "  -o, --output F  output .npy path (never half a file: doc/pipeline.md)\n"
            "  -h, --help      this text\n",
            RANDN_MAX_DIMS);
}

/* Decimal integer in [-2**63, 2**64), two's-complement wrapped to uint64. */
static int parse_seed(const char *s, uint64_t *out)
{
    const char *p = s;
    int neg = 0;
    if (*p == '-') { neg = 1; p++; }
    if (!isdigit((unsigned char)*p)) return -1;
    errno = 0;
    char *end;
    unsigned long long v = strtoull(p, &end, 10);
    if (errno || *end) return -1;
    if (neg) {
        if (v > (UINT64_C(1) << 63)) return -1;
        *out = (uint64_t)0 - (uint64_t)v;
    } else {
        *out = (uint64_t)v;
    }
    return 0;
}

static int parse_shape(const char *s, int64_t *shape, int *ndim)
{
    int n = 0;
    const char *p = s;
    for (;;) {
        if (!isdigit((unsigned char)*p)) return -1;
        errno = 0;
        char *end;
        long long v = strtoll(p, &end, 10);
        if (errno || v < 0 || v > RANDN_MAX_NUMEL) return -1;
        if (n == RANDN_MAX_DIMS) return -1;
        shape[n++] = v;
        if (*end == 0) break;
        if (*end != ',') return -1;
        p = end + 1;
    }
    *ndim = n;
    return 0;
}

int cmd_randn(int argc, char **argv)
{
    const char *seed_s = NULL, *shape_s = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            randn_usage(stdout);
            return 0;
        }
        const char **dst = NULL;
        const char *val = NULL;
        if (!strcmp(a, "--seed")) dst = &seed_s;
        else if (!strcmp(a, "--shape")) dst = &shape_s;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) dst = &out;
        else if (!strncmp(a, "--seed=", 7)) { dst = &seed_s; val = a + 7; }
        else if (!strncmp(a, "--shape=", 8)) { dst = &shape_s; val = a + 8; }
        else if (!strncmp(a, "--output=", 9)) { dst = &out; val = a + 9; }
        else {
            fprintf(stderr, "pixart randn: unknown argument '%s'\n", a);
            randn_usage(stderr);
            return 2;
        }
        if (!val) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pixart randn: %s needs a value\n", a);
                return 2;
            }
            val = argv[++i];
        }
        *dst = val;
    }
    if (!seed_s || !shape_s || !out) {
        fprintf(stderr, "pixart randn: --seed, --shape and -o are required\n");
        randn_usage(stderr);
        return 2;
    }
    uint64_t seed;
    if (parse_seed(seed_s, &seed)) {
        fprintf(stderr, "pixart randn: --seed: '%s' is not an integer in [-2**63, 2**64)\n", seed_s);
        return 2;
    }
    int64_t shape[RANDN_MAX_DIMS];
    int ndim = 0;
    if (parse_shape(shape_s, shape, &ndim)) {
        fprintf(stderr, "pixart randn: --shape: '%s' is not a list of 1 to %d non-negative integers "
                        "separated by commas\n", shape_s, RANDN_MAX_DIMS);
        return 2;
    }
    if (px_output_check(out)) {
        fprintf(stderr, "pixart randn: %s\n", px_last_error());
        return 1;
    }
    int64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] && numel > RANDN_MAX_NUMEL / shape[i]) {
            fprintf(stderr, "pixart randn: --shape %s has more than %lld elements\n", shape_s,
                    (long long)RANDN_MAX_NUMEL);
            return 2;
        }
        numel *= shape[i];
    }

    float *x = malloc((size_t)(numel ? numel : 1) * sizeof *x);
    if (!x) {
        fprintf(stderr, "pixart randn: out of memory (%lld floats)\n", (long long)numel);
        return 1;
    }
    int rc = px_torch_randn(x, ndim, shape, seed) || px_npy_save_f32(out, ndim, shape, x);
    free(x);
    if (rc) {
        fprintf(stderr, "pixart randn: %s\n", px_last_error());
        return 1;
    }
    return 0;
}
