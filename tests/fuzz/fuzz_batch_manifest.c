/* libFuzzer harness: the manifest of `pixart batch` (src/cli/batch_manifest.c),
 * the file that makes a run resumable. The input is OUTDIR/manifest.jsonl,
 * optionally followed by a NUL byte and the bytes of a rank's part
 * (manifest.rank-0.jsonl). Against three fixed jobs and their files in a
 * scratch OUTDIR it runs what a resumed run does:
 *   - px_batch_manifest_check: a job counts as done only with an "ok" line of
 *     its key whose files all verify (here: never the job without files, and
 *     only when the manifest holds the job's key and "ok" at all);
 *   - px_batch_manifest_merge: the part's complete lines are appended to the
 *     manifest, whose partial last line is cut off first, and the part goes;
 *   - px_batch_manifest_open on the result: nothing more to cut.
 * The resulting manifest is compared byte for byte with what those rules give. */
#define _GNU_SOURCE 1 /* memmem */
#include "fuzz_util.h"
#include "src/cli/batch.h"

#include <sys/stat.h>

#define EXPECT(cond)                                                                                     \
    do {                                                                                                 \
        if (!(cond)) {                                                                                   \
            fprintf(stderr, "fuzz_batch_manifest: %s:%d: %s does not hold\n", __FILE__, __LINE__, #cond); \
            abort();                                                                                     \
        }                                                                                                \
    } while (0)

/* The fixed jobs: stems, keys (the dictionary holds their hex forms) and
 * image counts; their files' contents, whose FNV-1a 64 the dictionary holds
 * too (a-0.png 93c2d40dac90f864, a-1.png 93c2d50dac90fa17, 1-0.png
 * cbf29ce484222325). b-x has no file. */
#define NJOBS 3
static const char *stems[NJOBS] = {"1", "a", "b-x"};
static const uint64_t keys[NJOBS] = {0x0123456789abcdefull, 0xfedcba9876543210ull, 0x00000000000000ffull};
static const int nipp[NJOBS] = {1, 2, 1};
static FILE *devnull;

static void write_or_die(const char *name, const void *p, size_t n)
{
    (void)fuzz_write(name, p, n);
}

/* The complete lines of s[0..n): up to and with its last '\n'. */
static size_t complete(const uint8_t *s, size_t n)
{
    while (n && s[n - 1] != '\n') n--;
    return n;
}

static uint8_t *slurp(const char *path, size_t *n)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f || fstat(fileno(f), &st)) abort();
    uint8_t *b = malloc((size_t)st.st_size + 1);
    *n = b ? fread(b, 1, (size_t)st.st_size + 1, f) : 0;
    fclose(f);
    return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1 << 18)) return 0;
    if (!devnull) {
        devnull = fopen("/dev/null", "w");
        write_or_die("a-0.png", "png0", 4);
        write_or_die("a-1.png", "png1", 4);
        write_or_die("1-0.png", "", 0);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t nman = nul ? (size_t)(nul - data) : size;
    const uint8_t *part = nul ? nul + 1 : NULL;
    size_t npart = nul ? size - nman - 1 : 0;
    const char *dir = fuzz_dir();
    write_or_die("manifest.jsonl", data, nman);
    if (part) write_or_die("manifest.rank-0.jsonl", part, npart);
    else unlink(fuzz_path("manifest.rank-0.jsonl"));

    px_batch_job jobs[NJOBS];
    memset(jobs, 0, sizeof jobs);
    for (int i = 0; i < NJOBS; i++) {
        snprintf(jobs[i].stem, sizeof jobs[i].stem, "%s", stems[i]);
        jobs[i].key = keys[i];
        jobs[i].r_nipp = nipp[i];
        jobs[i].line = i + 1;
    }
    int done[NJOBS], changed[NJOBS];
    int rc = px_batch_manifest_check(dir, jobs, NJOBS, done, changed, devnull);
    fuzz_expect_message(rc != 0);
    EXPECT(rc == 0); // a readable file, whatever it holds
    for (int i = 0; i < NJOBS; i++) {
        EXPECT(done[i] == 0 || done[i] == 1);
        EXPECT(!(done[i] && changed[i]));
        EXPECT(!done[i] || i != 2); // b-x has no file: never done
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)keys[i]);
        EXPECT(!done[i] || (memmem(data, nman, hex, 16) && memmem(data, nman, "\"ok\"", 4)));
    }

    rc = px_batch_manifest_merge(dir);
    fuzz_expect_message(rc != 0);
    EXPECT(rc == 0);
    struct stat st;
    EXPECT(stat(fuzz_path("manifest.rank-0.jsonl"), &st) != 0); // merged parts are removed
    size_t got_n = 0;
    uint8_t *got = slurp(fuzz_path("manifest.jsonl"), &got_n);
    EXPECT(got);
    size_t keep = part ? complete(data, nman) : nman, add = part ? complete(part, npart) : 0;
    EXPECT(got_n == keep + add);
    EXPECT(!memcmp(got, data, keep) && !memcmp(got + keep, part ? part : data, add));
    free(got);

    int fd = px_batch_manifest_open(dir, -1);
    fuzz_expect_message(fd < 0);
    EXPECT(fd >= 0);
    EXPECT(fstat(fd, &st) == 0 && (size_t)st.st_size == complete(data, keep) + add);
    close(fd);
    px_clear_error();
    return 0;
}
