/* `pixart batch` as a user runs it ($PIXART_BIN) on the tiny data/pipe_small
 * checkpoint (with the small SentencePiece model data/tok/t5mini.model as its
 * vocabulary, so that prompts are real text): every image is the PNG
 * `pixart generate` writes for the same job, byte for byte; a run killed at
 * a random point and rerun ends with every image correct and no partial
 * file; bad lines are reported and skipped (--strict: nothing done); two MPI
 * ranks write the same files as one process. */
#include "testutil.h"
#include "ops/ops.h"
#include "src/pipeline/png.h"
#include "tensor/error.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char tmp[256], model[300], err_txt[320];

static const char *bin(void)
{
    const char *b = getenv("PIXART_BIN");
    ck_assert_msg(b && *b, "PIXART_BIN is not set to the built pixart program");
    return b;
}

static void setup(void)
{
    px_test_tmpdir_make(tmp, sizeof tmp, "batch");
    snprintf(err_txt, sizeof err_txt, "%s/stderr.txt", tmp);
    // pipe_small with a vocabulary: data/tok/t5mini.model (400 pieces, T5's control ids)
    snprintf(model, sizeof model, "%s/model", tmp);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s' && cp '%s' '%s/tokenizer/spiece.model'", px_test_data("pipe_small"),
             model, px_test_data("tok/t5mini.model"), model);
    ck_assert_int_eq(system(cmd), 0);
}

static void teardown(void) { px_test_tmpdir_remove(tmp); }

/* "$PIXART_BIN ARGS" (shell text) with stderr to err_txt; the exit status. */
static int run(const char *fmt, ...)
{
    char args[8192], cmd[9000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "PIXART_NUM_THREADS=1 '%s' %s >/dev/null 2>'%s'", bin(), args, err_txt);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

static char *stderr_text(void) { return px_test_read_text(err_txt, NULL); }

static void files_equal(const char *a, const char *b)
{
    size_t na, nb;
    char *x = px_test_read_text(a, &na), *y = px_test_read_text(b, &nb);
    ck_assert_msg(na == nb && !memcmp(x, y, na), "%s (%zu bytes) and %s (%zu bytes) differ", a, na, b, nb);
    free(x);
    free(y);
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Every entry of dir is a PNG that decodes, manifest.jsonl, or (allow_tmp)
 * a temporary .pixart.tmp.PID.N of the output writers; returns the number of PNGs. */
static int check_dir_entries(const char *dir, int allow_tmp)
{
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    int pngs = 0;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (!strcmp(n, ".") || !strcmp(n, "..") || !strcmp(n, "manifest.jsonl")) continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, n);
        size_t len = strlen(n);
        if (len > 4 && !strcmp(n + len - 4, ".png")) {
            uint8_t *rgb;
            int w, h;
            ck_assert_msg(px_png_read(path, &rgb, &w, &h, NULL, NULL) == 0, "%s is not a whole PNG: %s", path,
                          px_last_error());
            free(rgb);
            pngs++;
            continue;
        }
        ck_assert_msg(allow_tmp && (strstr(n, ".tmp.") || !strncmp(n, "manifest.rank-", 14)), "unexpected file %s",
                      path);
    }
    closedir(d);
    return pngs;
}

// ---------------------------------------------------------------------------

/* A mixed batch: seeds (one, a list, none given with --seed), several images,
 * no guidance with a negative prompt, another scheduler and size, a name. */
static const char *mixed_jobs =
    "{\"prompt\": \"a small cactus with a happy face\", \"seed\": 3}\n"
    "{\"prompt\": \"a blue dog\", \"seed\": [5, 6], \"num_images_per_prompt\": 2, \"name\": \"dog\"}\n"
    "\n"
    "{\"prompt\": \"a tree\", \"seed\": 9, \"steps\": 5, \"guidance_scale\": 1.0, \"negative_prompt\": \"ugly\"}\n"
    "{\"prompt\": \"a house\", \"seed\": 11, \"scheduler\": \"ddim\", \"height\": 16, \"width\": 24, "
    "\"negative_prompt\": \"blurry\"}\n"
    "{\"prompt\": \"Ünïcödé ßtreet\", \"guidance_scale\": 7}\n";

/* The generate call of each job above (with the command's --steps 4 --seed 77). */
static const struct {
    const char *args, *files[2], *gen_out;
} mixed_want[] = {
    {"--prompt 'a small cactus with a happy face' --seed 3", {"1-0.png"}, "g1.png"},
    {"--prompt 'a blue dog' --seed 5,6 --num-images-per-prompt 2", {"dog-0.png", "dog-1.png"}, "gdog.png"},
    {"--prompt 'a tree' --seed 9 --steps 5 --guidance-scale 1.0 --negative-prompt ugly", {"4-0.png"}, "g4.png"},
    {"--prompt 'a house' --seed 11 --scheduler ddim --height 16 --width 24 --negative-prompt blurry", {"5-0.png"},
     "g5.png"},
    {"--prompt 'Ünïcödé ßtreet' --guidance-scale 7 --seed 77", {"6-0.png"}, "g6.png"},
};

START_TEST(batch_equals_generate)
{
    char prompts[400], out[400], a[600], b[600];
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    px_test_write_text(prompts, mixed_jobs);
    int st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 4 --seed 77 --no-resolution-binning", model,
                 prompts, out);
    char *e = stderr_text();
    ck_assert_msg(st == 0, "batch failed (%d):\n%s", st, e);
    free(e);
    const int njobs = (int)(sizeof mixed_want / sizeof mixed_want[0]);
    for (int i = 0; i < njobs; i++) {
        snprintf(a, sizeof a, "%s/%s", tmp, mixed_want[i].gen_out);
        st = run("generate --model '%s' --steps 4 %s --no-resolution-binning --quiet -o '%s'", model,
                 mixed_want[i].args, a);
        ck_assert_msg(st == 0, "generate %s failed", mixed_want[i].args);
        for (int k = 0; k < 2 && mixed_want[i].files[k]; k++) {
            // generate numbers several images out-K.png
            if (mixed_want[i].files[1]) snprintf(a, sizeof a, "%s/gdog-%d.png", tmp, k);
            snprintf(b, sizeof b, "%s/%s", out, mixed_want[i].files[k]);
            files_equal(b, a); // pixels and text chunks: the same bytes
        }
    }
    ck_assert_int_eq(check_dir_entries(out, 0), 6);
    // one "ok" line per job, naming its files
    snprintf(a, sizeof a, "%s/manifest.jsonl", out);
    char *m = px_test_read_text(a, NULL);
    int lines = 0;
    for (char *p = m; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, njobs);
    ck_assert_ptr_nonnull(strstr(m, "\"job\": \"dog\", \"line\": 2,"));
    ck_assert_ptr_nonnull(strstr(m, "\"files\": [\"dog-0.png\", \"dog-1.png\"]"));
    ck_assert_ptr_nonnull(strstr(m, "\"seed\": [5, 6]"));
    ck_assert_ptr_nonnull(strstr(m, "\"seed\": 77"));
    ck_assert_ptr_null(strstr(m, "failed"));
    free(m);

    // the same command again: everything is complete, nothing rewritten
    struct stat before, after;
    snprintf(b, sizeof b, "%s/dog-1.png", out);
    ck_assert_int_eq(stat(b, &before), 0);
    st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 4 --seed 77 --no-resolution-binning", model, prompts,
             out);
    e = stderr_text();
    ck_assert_msg(st == 0 && strstr(e, "5 complete, 0 to do"), "rerun: %d\n%s", st, e);
    free(e);
    ck_assert_int_eq(stat(b, &after), 0);
    ck_assert_int_eq((long)before.st_ino, (long)after.st_ino);

    // a changed default changes the jobs that use it: redone, not skipped
    st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 4 --seed 78 --no-resolution-binning", model, prompts,
             out);
    e = stderr_text();
    ck_assert_msg(st == 0 && strstr(e, "4 complete, 1 to do") && strstr(e, "line 6 (6): parameters changed"),
                  "changed --seed: %d\n%s", st, e);
    free(e);
}
END_TEST

START_TEST(plain_text_prompts)
{
    char prompts[400], out[400], a[600], b[600];
    snprintf(prompts, sizeof prompts, "%s/jobs.txt", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    px_test_write_text(prompts, "a red apple\r\n\n  a green pear\n");
    int st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 3 --seed 5 --num-images-per-prompt 2 "
                 "--negative-prompt dark --no-resolution-binning --quiet",
                 model, prompts, out);
    ck_assert_int_eq(st, 0);
    const char *p[2] = {"a red apple", "  a green pear"};
    const int line[2] = {1, 3};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/g.png", tmp);
        ck_assert_int_eq(run("generate --model '%s' --prompt '%s' --steps 3 --seed 5 --num-images-per-prompt 2 "
                             "--negative-prompt dark --no-resolution-binning --quiet -o '%s'",
                             model, p[i], a),
                         0);
        for (int k = 0; k < 2; k++) {
            snprintf(a, sizeof a, "%s/g-%d.png", tmp, k);
            snprintf(b, sizeof b, "%s/%d-%d.png", out, line[i], k);
            files_equal(b, a);
        }
    }
}
END_TEST

// ---------------------------------------------------------------------------
// Killed at a random point

#define KILL_JOBS 8

static void write_kill_jobs(const char *path)
{
    char text[2048];
    size_t n = 0;
    for (int i = 0; i < KILL_JOBS; i++)
        if (i % 3 == 1)
            n += (size_t)snprintf(text + n, sizeof text - n,
                                  "{\"prompt\": \"job number %d\", \"seed\": [%d, 1], \"num_images_per_prompt\": 2}\n", i,
                                  100 + i);
        else
            n += (size_t)snprintf(text + n, sizeof text - n, "{\"prompt\": \"job number %d\", \"seed\": %d}\n", i, 100 + i);
    px_test_write_text(path, text);
}

static const char *kill_args = "--steps 8 --height 48 --width 48 --no-resolution-binning";

/* Starts the batch in a child process and sends sig after delay_us. */
static int run_and_kill(const char *prompts, const char *out, long delay_us, int sig)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(err_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        setenv("PIXART_NUM_THREADS", "1", 1);
        char cmd[4096];
        snprintf(cmd, sizeof cmd, "exec '%s' batch --model '%s' --prompts '%s' -o '%s' %s", bin(), model, prompts,
                 out, kill_args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    usleep((useconds_t)delay_us);
    kill(pid, sig);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    return st;
}

/* After a kill: every PNG under its final name is whole, and every finished
 * manifest line names files that are there with the reference's bytes. */
static void check_manifest_files(const char *out, const char *ref, const char *manifest)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", out, manifest);
    if (!exists(path)) return;
    char *m = px_test_read_text(path, NULL);
    for (char *line = m, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = 0;
        char *f = strstr(line, "\"files\": [");
        ck_assert_msg(f, "manifest line without files: %s", line);
        for (char *q = strchr(f, '[') + 1; *q == '"';) {
            char *end = strchr(q + 1, '"');
            char name[200], a[600], b[600];
            snprintf(name, sizeof name, "%.*s", (int)(end - q - 1), q + 1);
            snprintf(a, sizeof a, "%s/%s", out, name);
            snprintf(b, sizeof b, "%s/%s", ref, name);
            files_equal(a, b);
            q = end + 1;
            if (*q == ',') q += 2;
        }
    }
    free(m);
}

static void check_after_kill(const char *out, const char *ref)
{
    check_dir_entries(out, 1);
    check_manifest_files(out, ref, "manifest.jsonl");
    for (int rank = 0; rank < 2; rank++) {
        char part[64];
        snprintf(part, sizeof part, "manifest.rank-%d.jsonl", rank);
        check_manifest_files(out, ref, part);
    }
}

START_TEST(resume_after_kill)
{
    char prompts[400], out[400], ref[400], a[600], b[600];
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    write_kill_jobs(prompts);
    // the uninterrupted run, timed: the kills land inside it
    struct timeval t0, t1;
    gettimeofday(&t0, NULL);
    ck_assert_int_eq(run("batch --model '%s' --prompts '%s' -o '%s' %s --quiet", model, prompts, ref, kill_args), 0);
    gettimeofday(&t1, NULL);
    long full_us = (t1.tv_sec - t0.tv_sec) * 1000000L + (t1.tv_usec - t0.tv_usec);
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    srand(seed);
    // SIGKILL twice at random points (each run resumes the last), then SIGINT
    for (int round = 0; round < 3; round++) {
        long delay = 50000 + (long)((double)rand() / RAND_MAX * (double)full_us);
        int sig = round < 2 ? SIGKILL : SIGINT;
        fprintf(stderr, "resume_after_kill: %s after %.3f s of a %.3f s run (srand %u)\n",
                sig == SIGKILL ? "SIGKILL" : "SIGINT", delay / 1e6, full_us / 1e6, seed);
        int st = run_and_kill(prompts, out, delay, sig);
        if (sig == SIGINT && WIFEXITED(st) && WEXITSTATUS(st) == 130) {
            char *e = stderr_text();
            ck_assert_msg(strstr(e, "To resume, run the same command again"), "SIGINT message:\n%s", e);
            free(e);
        }
        check_after_kill(out, ref);
    }
    // a leftover of a process that is gone for certain (PID above Linux's
    // pid_max), whatever the kills above left: the rerun removes it
    snprintf(a, sizeof a, "%s/.pixart.tmp.999999999.1", out);
    px_test_write_text(a, "half a PNG");
    int st = run("batch --model '%s' --prompts '%s' -o '%s' %s", model, prompts, out, kill_args);
    char *e = stderr_text();
    ck_assert_msg(st == 0, "resume failed (%d):\n%s", st, e);
    free(e);
    // every image right, nothing else left (no temporary file, no scratch)
    ck_assert_int_eq(check_dir_entries(out, 0), KILL_JOBS + (KILL_JOBS + 1) / 3);
    for (int i = 0; i < KILL_JOBS; i++)
        for (int k = 0; k < (i % 3 == 1 ? 2 : 1); k++) {
            snprintf(a, sizeof a, "%s/%d-%d.png", out, i + 1, k);
            snprintf(b, sizeof b, "%s/%d-%d.png", ref, i + 1, k);
            files_equal(a, b);
        }
}
END_TEST

/* A manifest line for an image that is not there (or was changed) does not
 * make its job complete; a partial last line is skipped and terminated. */
START_TEST(resume_checks_files)
{
    char prompts[400], out[400], path[600];
    snprintf(prompts, sizeof prompts, "%s/jobs.txt", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    px_test_write_text(prompts, "one\ntwo\nthree\n");
    const char *args = "--steps 2 --seed 1 --no-resolution-binning";
    ck_assert_int_eq(run("batch --model '%s' --prompts '%s' -o '%s' %s --quiet", model, prompts, out, args), 0);
    snprintf(path, sizeof path, "%s/1-0.png", out);
    ck_assert_int_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/2-0.png", out);
    px_test_write_text(path, "not the image");
    snprintf(path, sizeof path, "%s/manifest.jsonl", out);
    FILE *f = fopen(path, "ab");
    fputs("{\"job\": \"3\", \"li", f); // a killed writer's fragment
    fclose(f);
    int st = run("batch --model '%s' --prompts '%s' -o '%s' %s", model, prompts, out, args);
    char *e = stderr_text();
    ck_assert_msg(st == 0 && strstr(e, "1 complete, 2 to do") && strstr(e, "1 unreadable line"), "%d:\n%s", st, e);
    free(e);
    ck_assert_int_eq(check_dir_entries(out, 0), 3);
    st = run("batch --model '%s' --prompts '%s' -o '%s' %s", model, prompts, out, args);
    e = stderr_text();
    ck_assert_msg(st == 0 && strstr(e, "3 complete, 0 to do") && !strstr(e, "unreadable"), "%d:\n%s", st, e);
    free(e);
}
END_TEST

// ---------------------------------------------------------------------------
// Bad lines

START_TEST(bad_lines)
{
    char prompts[400], out[400];
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    px_test_write_text(prompts,
                       "{\"prompt\": \"fine\", \"seed\": 1}\n"          // 1
                       "{\"prompt\": \"x\", \"steps\": \"many\"}\n"     // 2
                       "not json\n"                                    // 3
                       "{\"negative_prompt\": \"no prompt\"}\n"        // 4
                       "{\"prompt\": \"x\", \"stepz\": 3}\n"            // 5
                       "{\"prompt\": \"x\", \"name\": \"../evil\"}\n"   // 6
                       "{\"prompt\": \"x\", \"seed\": [1, 2]}\n"        // 7: 2 seeds, 1 image
                       "{\"prompt\": \"x\", \"height\": 20}\n"          // 8: not a multiple of 8
                       "{\"prompt\": \"x\", \"seed\": -4}\n"            // 9
                       "{\"prompt\": \"also fine\", \"name\": \"1\"}\n" // 10: the name of line 1's files
                       "[1, 2]\n"                                      // 11
                       "{\"prompt\": \"x\", \"scheduler\": \"euler\"}\n" // 12
                       "{\"prompt\": \"last\", \"seed\": 2}\n");        // 13
    const int bad[] = {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 2 --no-resolution-binning", model, prompts, out);
    char *e = stderr_text();
    ck_assert_msg(st == 1, "bad lines: exit %d, want 1:\n%s", st, e);
    char want[64];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(want, sizeof want, "jobs.jsonl:%d: ", bad[i]);
        ck_assert_msg(strstr(e, want), "line %d not reported:\n%s", bad[i], e);
    }
    ck_assert_msg(strstr(e, "'prompt' is missing") && strstr(e, "unknown field 'stepz'") &&
                      strstr(e, "already used by line 1") && strstr(e, "divisible by 8"),
                  "messages:\n%s", e);
    free(e);
    // the good lines ran
    char path[600];
    snprintf(path, sizeof path, "%s/1-0.png", out);
    ck_assert(exists(path));
    snprintf(path, sizeof path, "%s/13-0.png", out);
    ck_assert(exists(path));

    // --strict: the same file stops before any work, nothing is created
    char out2[400];
    snprintf(out2, sizeof out2, "%s/strict", tmp);
    st = run("batch --model '%s' --prompts '%s' -o '%s' --steps 2 --no-resolution-binning --strict", model, prompts,
             out2);
    e = stderr_text();
    ck_assert_msg(st == 2 && strstr(e, "nothing done (--strict)"), "--strict: %d\n%s", st, e);
    free(e);
    ck_assert(!exists(out2));
    // a missing prompt file: one clear error
    st = run("batch --model '%s' --prompts '%s/none.jsonl' -o '%s'", model, tmp, out2);
    e = stderr_text();
    ck_assert_msg(st == 1 && strstr(e, "none.jsonl: cannot open"), "%d\n%s", st, e);
    free(e);
}
END_TEST

/* A job the pipeline refuses at run time (a 1-step DPM-Solver run) is
 * recorded as failed, the other jobs run, and a rerun tries it again. */
START_TEST(failed_job_recorded)
{
    char prompts[400], out[400], path[600];
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    px_test_write_text(prompts, "{\"prompt\": \"one step\", \"seed\": 2, \"steps\": 1}\n"
                                "{\"prompt\": \"fine\", \"seed\": 1, \"steps\": 2}\n");
    int st = run("batch --model '%s' --prompts '%s' -o '%s' --no-resolution-binning", model, prompts, out);
    char *e = stderr_text();
    ck_assert_msg(st == 1 && strstr(e, "line 1 (1) failed: a 1-step run") && strstr(e, "some jobs failed"), "%d\n%s",
                  st, e);
    free(e);
    snprintf(path, sizeof path, "%s/2-0.png", out);
    ck_assert(exists(path));
    snprintf(path, sizeof path, "%s/manifest.jsonl", out);
    char *m = px_test_read_text(path, NULL);
    ck_assert_msg(strstr(m, "\"job\": \"1\"") && strstr(m, "\"files\": [], \"bytes\": [], \"fnv1a64\": [], \"seed\": 2") &&
                      strstr(m, "\"status\": \"failed\", \"error\": \"a 1-step run"),
                  "manifest:\n%s", m);
    free(m);
    st = run("batch --model '%s' --prompts '%s' -o '%s' --no-resolution-binning", model, prompts, out);
    e = stderr_text();
    ck_assert_msg(st == 1 && strstr(e, "1 complete, 1 to do"), "%d\n%s", st, e);
    free(e);
}
END_TEST

// ---------------------------------------------------------------------------
// MPI

START_TEST(mpi_two_ranks_same_files)
{
    char prompts[400], one[400], two[400], a[600], b[600];
    snprintf(a, sizeof a, "'%s' batch --help | grep -q 'not built with MPI'", bin());
    if (system(a) == 0) {
        px_test_skip("pixart was built without MPI (configure --without-mpi, or no MPI found: apt-get install libopenmpi-dev openmpi-bin)");
        return;
    }
    if (system("command -v mpirun >/dev/null 2>&1") != 0) {
        px_test_skip("mpirun is not installed (apt-get install openmpi-bin)");
        return;
    }
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(one, sizeof one, "%s/one", tmp);
    snprintf(two, sizeof two, "%s/two", tmp);
    px_test_write_text(prompts, mixed_jobs);
    const char *args = "--steps 3 --seed 77 --no-resolution-binning";
    ck_assert_int_eq(run("batch --model '%s' --prompts '%s' -o '%s' %s --quiet", model, prompts, one, args), 0);
    // root needs Open MPI's consent; leak checking is off for the MPI runtime's own allocations
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
             "ASAN_OPTIONS=detect_leaks=0 mpirun --oversubscribe -n 2 '%s' batch --model '%s' --prompts '%s' -o '%s' %s "
             ">'%s.out' 2>'%s'",
             bin(), model, prompts, two, args, err_txt, err_txt);
    int st = system(cmd);
    char *e = stderr_text();
    ck_assert_msg(st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0, "mpirun -n 2 failed:\n%s", e);
    ck_assert_msg(strstr(e, "rank 1: ") && strstr(e, "rank 0: "), "both ranks report:\n%s", e);
    free(e);
    const char *files[] = {"1-0.png", "dog-0.png", "dog-1.png", "4-0.png", "5-0.png", "6-0.png"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", one, files[i]);
        snprintf(b, sizeof b, "%s/%s", two, files[i]);
        files_equal(a, b);
    }
    // one manifest, merged from the ranks' parts: a line per job, no part left
    ck_assert_int_eq(check_dir_entries(two, 0), 6);
    snprintf(a, sizeof a, "%s/manifest.jsonl", two);
    char *m = px_test_read_text(a, NULL);
    int lines = 0;
    for (char *p = m; *p; p++) lines += *p == '\n';
    ck_assert_int_eq(lines, 5);
    free(m);
}
END_TEST

/* The pid of the child of parent whose environment says OMPI_COMM_WORLD_RANK=rank, or 0. */
static pid_t mpi_rank_pid(pid_t parent, int rank)
{
    char path[128], want[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)parent, (int)parent);
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    char *kids = exists(path) ? px_test_read_text(path, NULL) : NULL;
    pid_t found = 0;
    for (char *p = kids; p && *p && !found;) {
        long pid = strtol(p, &p, 10);
        if (pid <= 0) break;
        size_t n;
        snprintf(path, sizeof path, "/proc/%ld/environ", pid);
        char *env = exists(path) ? px_test_read_text(path, &n) : NULL;
        for (size_t k = 0; env && k < n; k += strlen(env + k) + 1)
            if (!strcmp(env + k, want)) found = (pid_t)pid;
        free(env);
    }
    free(kids);
    return found;
}

/* Rank 1 killed (SIGKILL) in the middle of an MPI run: what rank 0 wrote is
 * intact, and a rerun, here as one process, finishes rank 1's jobs. */
START_TEST(mpi_dead_rank_resume)
{
    char prompts[400], out[400], ref[400], a[600], b[600];
    snprintf(a, sizeof a, "'%s' batch --help | grep -q 'not built with MPI'", bin());
    if (system(a) == 0 || system("command -v mpirun >/dev/null 2>&1") != 0) {
        px_test_skip("no MPI build or no mpirun (apt-get install libopenmpi-dev openmpi-bin, reconfigure)");
        return;
    }
    snprintf(prompts, sizeof prompts, "%s/jobs.jsonl", tmp);
    snprintf(out, sizeof out, "%s/out", tmp);
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    write_kill_jobs(prompts);
    ck_assert_int_eq(run("batch --model '%s' --prompts '%s' -o '%s' %s --quiet", model, prompts, ref, kill_args), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int fd = open(err_txt, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        char cmd[4096];
        snprintf(cmd, sizeof cmd,
                 "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ASAN_OPTIONS=detect_leaks=0 "
                 "exec mpirun --oversubscribe -n 2 '%s' batch --model '%s' --prompts '%s' -o '%s' %s",
                 bin(), model, prompts, out, kill_args);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    // rank 1 once it has started working (its first image or a few seconds)
    pid_t victim = 0;
    for (int i = 0; i < 400 && !victim; i++) {
        usleep(20000);
        char part[600];
        snprintf(part, sizeof part, "%s/manifest.rank-1.jsonl", out);
        struct stat st;
        if ((stat(part, &st) == 0 && st.st_size > 0) || i == 399) victim = mpi_rank_pid(pid, 1);
    }
    if (victim) kill(victim, SIGKILL);
    int st;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    fprintf(stderr, "mpi_dead_rank_resume: rank 1 (pid %d) killed; mpirun exit %d\n", (int)victim,
            WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    check_after_kill(out, ref);
    st = run("batch --model '%s' --prompts '%s' -o '%s' %s", model, prompts, out, kill_args);
    char *e = stderr_text();
    ck_assert_msg(st == 0, "resume after the dead rank failed (%d):\n%s", st, e);
    char *plan = strstr(e, " jobs in ");
    fprintf(stderr, "mpi_dead_rank_resume: rerun:%.*s\n", plan ? (int)strcspn(plan, "\n") : 0, plan ? plan : "");
    free(e);
    ck_assert_int_eq(check_dir_entries(out, 0), KILL_JOBS + (KILL_JOBS + 1) / 3); // parts merged, nothing else
    for (int i = 0; i < KILL_JOBS; i++)
        for (int k = 0; k < (i % 3 == 1 ? 2 : 1); k++) {
            snprintf(a, sizeof a, "%s/%d-%d.png", out, i + 1, k);
            snprintf(b, sizeof b, "%s/%d-%d.png", ref, i + 1, k);
            files_equal(a, b);
        }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("batch");
    TCase *t = tcase_create("batch");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, batch_equals_generate);
    tcase_add_test(t, plain_text_prompts);
    tcase_add_test(t, resume_after_kill);
    tcase_add_test(t, resume_checks_files);
    tcase_add_test(t, bad_lines);
    tcase_add_test(t, failed_job_recorded);
    tcase_add_test(t, mpi_two_ranks_same_files);
    tcase_add_test(t, mpi_dead_rank_resume);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    // pixart restarts itself with OPENBLAS_CORETYPE when the library picked
    // older kernels: start it with the core it wants so all runs are alike
    const char *user = getenv("OPENBLAS_CORETYPE");
    const char *want = user && *user ? NULL : px_blas_wanted_core();
    if (want) setenv("OPENBLAS_CORETYPE", want, 1);
    return px_test_run(suite());
}
