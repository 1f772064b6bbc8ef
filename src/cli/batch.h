/* `pixart batch`: the jobs of a prompt file, the manifest that makes a run
 * resumable, and the pieces shared by cmd_batch.c, batch_jobs.c and
 * batch_manifest.c. The design and the file formats: doc/batch.md. */
#ifndef PX_BATCH_H
#define PX_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define PX_BATCH_NAME_MAX 100 /* bytes of a job's "name" (the output file stem) */
#define PX_BATCH_MAX_IMAGES 1024 /* num_images_per_prompt, as `generate` allows */

/* One line of the prompt file. Fields a line does not give are 0 / NULL and
 * take the command's options (then generate's defaults): cmd_batch.c fills
 * the resolved values below the line. */
typedef struct {
    int line;                          /* 1-based line of the prompt file */
    char stem[PX_BATCH_NAME_MAX + 1];  /* output stem: "name", or the line number */
    char *prompt;                      /* UTF-8 */
    char *negative;                    /* negative_prompt, NULL = not given */
    uint64_t *seeds;                   /* "seed": one, or one per image */
    int nseeds;                        /* 0 = not given */
    int steps, height, width, nipp;    /* 0 = not given */
    double guidance;
    int has_guidance;
    char scheduler[16];                /* "" = not given; else dpm|ddim|lcm|sa-solver */

    // ---- resolved by cmd_batch.c (what the run uses) ----
    const char *r_negative;            /* "" when none */
    const uint64_t *r_seeds;           /* NULL/0 = a random seed drawn when the job runs */
    int r_nseeds;
    int r_steps, r_height, r_width, r_nipp, r_cfg;
    double r_guidance;
    const char *r_scheduler;           /* NULL = the checkpoint's (or --scheduler-config) */
    uint64_t key;                      /* hash of every parameter that changes the images */
    double cost;                       /* relative work, for splitting over MPI ranks */
} px_batch_job;

typedef struct {
    px_batch_job *jobs;
    int n;
    int bad; /* lines reported and skipped */
} px_batch_jobs;

/* Reads the prompt file: JSON Lines (the first non-blank line starts with
 * '{') or plain text, one prompt per line. Blank lines are skipped. A bad line
 * is reported on err ("FILE:LINE: why"; err may be NULL), counted in ->bad and
 * skipped. Returns 0, or -1 (px_last_error) when the file cannot be read. */
int px_batch_read_jobs(const char *path, FILE *err, px_batch_jobs *out);
void px_batch_jobs_free(px_batch_jobs *j);
/* Nonzero when s[0..n) is valid UTF-8 without NUL bytes. */
int px_batch_utf8_ok(const char *s, size_t n);

// ---------------------------------------------------------------------------
// Hashes and durable files (batch_manifest.c)

/* FNV-1a, 64 bits: job keys and file digests (not a cryptographic hash: it
 * detects truncated, changed or foreign files, not tampering). */
uint64_t px_fnv1a64(uint64_t h, const void *data, size_t n);
#define PX_FNV1A64_INIT 0xcbf29ce484222325ull
/* The size and FNV-1a 64 of a file's bytes. 0, or -1 when it cannot be read. */
int px_batch_file_digest(const char *path, uint64_t *hash, int64_t *size);
/* fsync of a written file, and of a directory (makes a rename durable). 0 or -1. */
int px_batch_fsync_path(const char *path, int is_dir);

// ---------------------------------------------------------------------------
// The manifest: OUTDIR/manifest.jsonl, one line per finished job
//   {"job": STEM, "line": N, "key": "HEX16", "files": [...], "bytes": [...],
//    "fnv1a64": ["HEX16", ...], "seed": S | [S, ...], "seconds": T, "status": "ok"}
// ("status": "failed" with "error" for a job that failed; it claims no file).
// Under MPI each rank appends to manifest.rank-R.jsonl; rank 0 merges those
// into manifest.jsonl at the end (and at the start of the next run).

/* Appends the parts' complete lines to manifest.jsonl (durably) and removes
 * the parts. 0 or -1. */
int px_batch_manifest_merge(const char *outdir);
/* Removes the temporary files a killed run may have left (".pixart.tmp.PID.N"
 * of the output writers, tensor/outfile.h, whose process is gone). Returns
 * how many were removed. */
int px_batch_clean_temps(const char *outdir);
/* done[i] = 1 for every job whose outputs are complete: an "ok" line with the
 * job's key and file names, and every file there with the recorded size and
 * FNV-1a 64. changed[i] = 1 when the last line for its stem had another key
 * (the parameters changed). 0, or -1 when the manifest cannot be read. */
int px_batch_manifest_check(const char *outdir, const px_batch_job *jobs, int n, int *done, int *changed,
                            FILE *warn);
/* Opens the manifest this process appends to (manifest.jsonl, or
 * manifest.rank-R.jsonl when part >= 0): O_APPEND, a partial last line of a
 * killed run cut off first (one writer per file). fd, or -1. */
int px_batch_manifest_open(const char *outdir, int part);
/* Writes one line (with its '\n') in a single write() and fsyncs. 0 or -1. */
int px_batch_manifest_append(int fd, const char *line, size_t len);
/* Appends s as a JSON string literal (quotes, escapes) to buf[*len..size). */
void px_batch_json_string(char *buf, size_t size, size_t *len, const char *s);

#endif
