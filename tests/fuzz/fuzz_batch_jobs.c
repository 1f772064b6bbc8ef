/* libFuzzer harness: the prompt file of `pixart batch` (src/cli/batch_jobs.c),
 * JSON Lines or plain text, read by px_batch_read_jobs. Every job it accepts
 * is checked against what the reader promises (batch.h, doc/batch.md): a
 * prompt of valid UTF-8, a stem that is a safe file name and unique, line
 * numbers increasing, the numeric fields in their ranges, a seed list that
 * fits the image count (an abort is a finding). */
#include "fuzz_util.h"
#include "src/cli/batch.h"

#define EXPECT(cond)                                                                                 \
    do {                                                                                             \
        if (!(cond)) {                                                                               \
            fprintf(stderr, "fuzz_batch_jobs: %s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
            abort();                                                                                 \
        }                                                                                            \
    } while (0)

static FILE *devnull;

static int stem_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > PX_BATCH_NAME_MAX || s[0] == '.' || s[0] == '-') return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", s[i])) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!devnull) devnull = fopen("/dev/null", "w");
    px_batch_jobs js;
    int rc = px_batch_read_jobs(fuzz_write("prompts.txt", data, size), devnull, &js);
    fuzz_expect_message(rc != 0);
    if (rc) return 0;
    EXPECT(js.n >= 0 && js.bad >= 0);
    for (int i = 0; i < js.n; i++) {
        const px_batch_job *j = &js.jobs[i];
        EXPECT(j->line >= 1 && (i == 0 || j->line > js.jobs[i - 1].line));
        EXPECT(j->prompt && px_batch_utf8_ok(j->prompt, strlen(j->prompt)));
        EXPECT(!j->negative || px_batch_utf8_ok(j->negative, strlen(j->negative)));
        EXPECT(stem_ok(j->stem));
        for (int k = 0; k < i; k++) EXPECT(strcmp(js.jobs[k].stem, j->stem) != 0);
        EXPECT((j->nseeds == 0) == (j->seeds == NULL));
        EXPECT(j->nseeds >= 0 && j->nseeds <= PX_BATCH_MAX_IMAGES);
        EXPECT(j->steps == 0 || (j->steps >= 1 && j->steps <= 1000));
        EXPECT(j->height == 0 || (j->height >= 8 && j->height <= 65536));
        EXPECT(j->width == 0 || (j->width >= 8 && j->width <= 65536));
        EXPECT(j->nipp >= 0 && j->nipp <= PX_BATCH_MAX_IMAGES);
        EXPECT(j->nseeds <= 1 || j->nipp == 0 || j->nseeds == j->nipp);
        EXPECT(!j->has_guidance || (j->guidance >= -1e6 && j->guidance <= 1e6));
        EXPECT(!j->scheduler[0] || !strcmp(j->scheduler, "dpm") || !strcmp(j->scheduler, "ddim") ||
               !strcmp(j->scheduler, "lcm") || !strcmp(j->scheduler, "sa-solver"));
    }
    px_batch_jobs_free(&js);
    px_clear_error();
    return 0;
}
