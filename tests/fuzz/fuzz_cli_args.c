/* libFuzzer harness: the command line's string parsers. The input is a
 * command line, arguments separated by NUL bytes:
 *   - `pixart generate`'s whole option parser (parse_args: every option and
 *     value, --seed lists, --timesteps lists, --height/--width, --scheduler,
 *     --output-type, "--opt=value"), then what a parsed line implies: the
 *     numbered output names (out-N.png) and, for a given size, the
 *     resolution-binning bucket of the 256/512/1024/2048 tables;
 *   - `pixart randn`'s --seed and --shape parsers, on the first two arguments.
 * The CLI's parsers are static functions of src/cli/cmd_generate.c and
 * cmd_randn.c, so those files are compiled into this harness; nothing but
 * the parsers runs (no model is opened, no file written). Each parsed value
 * is checked against the range its option promises (abort: a finding). */
#include "fuzz_util.h"

#include "src/cli/cmd_generate.c"
#include "src/cli/cmd_randn.c"
#include "src/pipeline/binning.h"

#define MAX_ARGS 64

#define EXPECT(cond)                                                                   \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(saved_err, "fuzz_cli_args: %s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static FILE *devnull, *saved_err;

/* What parse_args promises about a line it accepted (its option ranges). */
static void check_generate(const gen_opts *o)
{
    EXPECT(o->model && o->out);
    EXPECT(o->nprompts > 0 || o->prompt_embeds);
    EXPECT(o->steps >= 1 && o->steps <= 1000);
    EXPECT(o->height == 0 || (o->height >= 8 && o->height <= 65536));
    EXPECT(o->width == 0 || (o->width >= 8 && o->width <= 65536));
    EXPECT(o->nipp >= 1 && o->nipp <= 1024);
    EXPECT(isfinite(o->guidance) && isfinite(o->eta) && o->eta >= 0);
    EXPECT(o->nseeds >= 0 && o->nseeds <= MAX_LIST);
    EXPECT(o->ntimesteps >= 0 && o->ntimesteps <= 1000);
    for (int i = 0; i < o->ntimesteps; i++) {
        EXPECT(o->timesteps[i] >= 0 && o->timesteps[i] <= 1000000);
        EXPECT(i == 0 || o->timesteps[i] < o->timesteps[i - 1]);
    }
    EXPECT(!strcmp(o->output_type, "png") || !strcmp(o->output_type, "npy") || !strcmp(o->output_type, "latent"));
    EXPECT(!(o->ntimesteps && o->steps_set));
    // the numbered names: NUL-terminated within the buffer, or refused
    char path[PATH_MAX];
    const int last = (o->nprompts ? o->nprompts : 1) * (int)o->nipp - 1;
    const int idx[3] = {0, 1, last};
    for (int k = 0; k < 3; k++)
        if (numbered_path(path, sizeof path, o->out, idx[k]) == 0) EXPECT(strlen(path) < sizeof path);
    // the bucket resolution binning picks for this size, in every table
    if (o->height && o->width) {
        static const int sizes[4] = {32, 64, 128, 256};
        for (int k = 0; k < 4; k++) {
            int n, bh, bw;
            const px_ar_bin *t = k < 3 ? px_ar_bin_table(sizes[k], &n) : px_ar_bin_table_sigma(sizes[k], &n);
            EXPECT(t && n > 0);
            EXPECT(px_classify_height_width_bin((int)o->height, (int)o->width, t, n, &bh, &bw) == 0);
            EXPECT(bh >= 8 && bw >= 8 && bh % 8 == 0 && bw % 8 == 0);
            // the generated bin-size image is resized to cover the asked size, then cropped
            int rh, rw;
            px_resize_crop_size(bh, bw, (int)o->height, (int)o->width, &rh, &rw);
            EXPECT(rh >= o->height && rw >= o->width);
        }
    }
}

static void check_randn(const char *seed, const char *shape_s)
{
    uint64_t s;
    if (parse_seed(seed, &s) == 0) {
        // the value reads back the same: decimal of the wrapped uint64
        char back[32];
        snprintf(back, sizeof back, "%llu", (unsigned long long)s);
        uint64_t s2;
        EXPECT(parse_seed(back, &s2) == 0 && s2 == s);
    }
    int64_t shape[RANDN_MAX_DIMS];
    int nd = -1;
    if (parse_shape(shape_s, shape, &nd) == 0) {
        EXPECT(nd >= 1 && nd <= RANDN_MAX_DIMS);
        for (int i = 0; i < nd; i++) EXPECT(shape[i] >= 0 && shape[i] <= RANDN_MAX_NUMEL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        if (!devnull) abort();
    }
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = "generate";
    for (size_t i = 0; i <= size && argc <= MAX_ARGS;) {
        argv[argc++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    argv[argc] = NULL;

    static gen_opts opts; // ~100 KB: not allocated per input (parse_args clears it)
    gen_opts *o = &opts;
    // the parsers print their errors (and --help): not into the fuzzer's log
    saved_err = stderr;
    FILE *saved_out = stdout;
    stderr = devnull;
    stdout = devnull;
    int rc = parse_args(argc, argv, o);
    stderr = saved_err;
    stdout = saved_out;
    EXPECT(rc == 0 || rc == 1 || rc == 2);
    if (rc == 0) check_generate(o);
    check_randn(argc > 1 ? argv[1] : "", argc > 2 ? argv[2] : "");
    free(buf);
    px_clear_error();
    return 0;
}
