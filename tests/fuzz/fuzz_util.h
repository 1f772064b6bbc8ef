/* Shared by the libFuzzer harnesses (tests/fuzz/, doc/fuzzing.md): the
 * parsers that take a path get the input through a file in a private
 * scratch folder (on /dev/shm when it exists), created once per process. */
#ifndef PX_FUZZ_UTIL_H
#define PX_FUZZ_UTIL_H

#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tensor/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char fuzz_dir_path[256];

/* at exit: the scratch folder and what the harness wrote into it */
static void fuzz_dir_remove(void)
{
    DIR *d = opendir(fuzz_dir_path);
    if (!d) return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            snprintf(p, sizeof p, "%s/%s", fuzz_dir_path, e->d_name);
            unlink(p);
        }
    closedir(d);
    rmdir(fuzz_dir_path);
}

/* The scratch folder, made on the first call, removed at exit. */
static inline const char *fuzz_dir(void)
{
    if (!fuzz_dir_path[0]) {
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        snprintf(fuzz_dir_path, sizeof fuzz_dir_path, "%s/pixart-fuzz-XXXXXX", base);
        if (!mkdtemp(fuzz_dir_path)) { perror("mkdtemp"); abort(); }
        atexit(fuzz_dir_remove);
    }
    return fuzz_dir_path;
}

/* DIR/name (static buffer rotated over 4 calls). */
static inline const char *fuzz_path(const char *name)
{
    static char buf[4][512];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, sizeof buf[0], "%s/%s", fuzz_dir(), name);
    return p;
}

/* Writes n bytes to DIR/name and returns its path. */
static inline const char *fuzz_write(const char *name, const void *data, size_t n)
{
    const char *p = fuzz_path(name);
    FILE *f = fopen(p, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) { perror(p); abort(); }
    return p;
}

/* A fixture from data/ ($PIXART_DATA, else the source tree's, compiled in). */
static inline const char *fuzz_data(const char *rel)
{
    static char buf[4][1024];
    static int k;
    char *p = buf[k++ & 3];
    const char *d = getenv("PIXART_DATA");
#ifdef PX_FUZZ_DATA
    if (!d || !*d) d = PX_FUZZ_DATA;
#endif
    snprintf(p, sizeof buf[0], "%s/%s", d ? d : "data", rel);
    return p;
}

/* Every failure must leave a message: an empty one is a defect too. */
static inline void fuzz_expect_message(int failed)
{
    if (failed && !px_last_error()[0]) {
        fprintf(stderr, "parser failed without a message\n");
        abort();
    }
    px_clear_error();
}

#endif
