/* JSON parser memory on hostile inputs (issue 17, finding 10): parses one
 * file the way pixart does and prints the time and the peak RSS, so that
 * bench/json_memory.sh can compare inputs and builds.
 *
 *   bench_json st FILE.safetensors   px_st_open (the header), then close
 *   bench_json json FILE.json        px_json_load_file (a config: at most 4 MB), then free
 *   bench_json index FILE.json       px_json_load_file_max with the 64 MB of an index
 *   bench_json dit DIR               the transformer config as a generate run
 *                                    reads it: px_pipeline_open's reader, then
 *                                    px_dit_load's (DIR: a checkpoint folder) */
#include "pixart/pixart.h"
#include "model/dit.h"
#include "tensor/error.h"
#include "tensor/json.h"
#include "tensor/memstat.h"
#include "tensor/safetensors.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: bench_json st|json|index|dit PATH\n");
        return 2;
    }
    double t0 = now();
    int ok = 0;
    if (!strcmp(argv[1], "st")) {
        px_st_file *f = px_st_open(argv[2]);
        ok = f != NULL;
        px_st_close(f);
    } else if (!strcmp(argv[1], "json")) {
        px_json *j = px_json_load_file(argv[2]);
        ok = j != NULL;
        px_json_free(j);
    } else if (!strcmp(argv[1], "index")) {
        px_json *j = px_json_load_file_max(argv[2], PX_JSON_INDEX_MAX);
        ok = j != NULL;
        px_json_free(j);
    } else if (!strcmp(argv[1], "dit")) {
        px_pipeline *p = px_pipeline_open(argv[2], NULL);
        ok = p != NULL;
        if (p) {
            char dir[4200];
            snprintf(dir, sizeof dir, "%s/transformer", argv[2]);
            px_dit *m = px_dit_load(dir, NULL);
            ok = m != NULL;
            px_dit_free(m);
        }
        px_pipeline_close(p);
    } else {
        fprintf(stderr, "bench_json: unknown mode '%s'\n", argv[1]);
        return 2;
    }
    printf("%s %s: %s in %.2f s, peak RSS %.1f MB%s%s\n", argv[1], argv[2], ok ? "parsed" : "refused", now() - t0,
           (double)px_peak_rss_bytes() / 1e6, ok ? "" : ": ", ok ? "" : px_last_error());
    return 0;
}
