/* Option values shared by the commands (pixart generate and batch). Kept
 * apart from main.c so the fuzz harness of the parsers (tests/fuzz/
 * fuzz_cli_args.c) links it without the command table. */
#include "config.h"
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int px_cli_parse_size(const char *cmd, const char *opt, const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end), mul = 1;
    const char *units = "KMGT", *u = *end ? strchr(units, toupper((unsigned char)*end)) : NULL;
    if (u) {
        for (const char *q = units; q <= u; q++) mul *= 1024;
        end++;
    }
    if (*end == 'B' || (u && *end == 'i' && end[1] == 'B')) end += *end == 'B' ? 1 : 2;
    if (errno || end == s || *end || *s == '-' || !(v * mul >= 1) || v * mul >= 1.8e19) {
        fprintf(stderr, "pixart %s: %s: '%s' is not a size (bytes, or a number with K, M, G or T: 3G, 2500M)\n",
                cmd, opt, s);
        return -1;
    }
    *out = (unsigned long long)(v * mul);
    return 0;
}

int px_cli_parse_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "pixart %s: %s: '%s' is not a number in [%g, %g]\n", cmd, opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}
