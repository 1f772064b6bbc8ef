/* The manifest of `pixart batch` (OUTDIR/manifest.jsonl) and the durable
 * file handling that makes a run resumable: a line is appended only after
 * the job's images are renamed into place and fsynced, in one write() that is
 * fsynced too, so a killed run (SIGKILL, power loss) leaves at worst a
 * partial last line, which the reader skips and the next writer cuts off.
 * Formats: batch.h and doc/batch.md. */
#include "src/cli/batch.h"
#include "tensor/json.h"
#include "pixart/pixart.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

uint64_t px_fnv1a64(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

int px_batch_file_digest(const char *path, uint64_t *hash, int64_t *size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return -1;
    uint64_t h = PX_FNV1A64_INIT;
    int64_t total = 0;
    char buf[1 << 16];
    ssize_t got;
    while ((got = read(fd, buf, sizeof buf)) > 0) {
        h = px_fnv1a64(h, buf, (size_t)got);
        total += got;
    }
    close(fd);
    if (got < 0) return -1;
    *hash = h;
    *size = total;
    return 0;
}

int px_batch_fsync_path(const char *path, int is_dir)
{
    int fd = open(path, is_dir ? O_RDONLY | O_DIRECTORY : O_RDONLY);
    if (fd < 0) return px_set_error("%s: cannot open for fsync: %s", path, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    // some file systems cannot fsync a directory (EINVAL): the rename is then as durable as they make it
    if (rc && !(is_dir && (e == EINVAL || e == EBADF))) return px_set_error("%s: fsync: %s", path, strerror(e));
    return 0;
}

void px_batch_json_string(char *buf, size_t size, size_t *len, const char *s)
{
    size_t n = *len;
#define PUT(c) \
    do { \
        if (n + 1 < size) buf[n] = (c); \
        n++; \
    } while (0)
    PUT('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            PUT('\\');
            PUT((char)*p);
        } else if (*p < 0x20) {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", *p);
            for (int k = 0; e[k]; k++) PUT(e[k]);
        } else {
            PUT((char)*p);
        }
    }
    PUT('"');
#undef PUT
    if (size) buf[n < size ? n : size - 1] = 0;
    *len = n;
}

// ---------------------------------------------------------------------------
// Appending

static void part_path(char *dst, size_t size, const char *outdir, int part)
{
    if (part < 0) snprintf(dst, size, "%s/manifest.jsonl", outdir);
    else snprintf(dst, size, "%s/manifest.rank-%d.jsonl", outdir, part);
}

int px_batch_manifest_open(const char *outdir, int part)
{
    char path[PATH_MAX];
    part_path(path, sizeof path, outdir, part);
    int fd = open(path, O_RDWR | O_APPEND | O_CREAT, 0644);
    if (fd < 0) return px_set_error("%s: cannot open: %s", path, strerror(errno));
    // a run killed inside its last write left a line without '\n' (only this
    // process writes this file): cut it off, so our first line starts clean
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_size > 0) {
        off_t end = st.st_size; // the file's bytes up to and with the last '\n' stay
        char buf[4096];
        for (int found = 0; end > 0 && !found;) {
            size_t n = end < (off_t)sizeof buf ? (size_t)end : sizeof buf, k;
            ssize_t got = pread(fd, buf, n, end - (off_t)n);
            if (got != (ssize_t)n) {
                px_set_error("%s: read error: %s", path, got < 0 ? strerror(errno) : "short read");
                close(fd);
                return -1;
            }
            for (k = n; k > 0 && buf[k - 1] != '\n'; k--) {
            }
            end -= (off_t)(n - k);
            found = k > 0;
        }
        if (end < st.st_size && (ftruncate(fd, end) || fsync(fd))) {
            px_set_error("%s: cannot cut a partial last line: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

int px_batch_manifest_append(int fd, const char *line, size_t len)
{
    ssize_t w = write(fd, line, len); // O_APPEND: one write, one place
    if (w != (ssize_t)len) return px_set_error("manifest: write failed: %s", w < 0 ? strerror(errno) : "short write");
    if (fsync(fd)) return px_set_error("manifest: fsync failed: %s", strerror(errno));
    return 0;
}

// ---------------------------------------------------------------------------
// Merging the per-rank parts, removing temporary files

static int is_part_name(const char *n) // manifest.rank-<digits>.jsonl
{
    static const char pre[] = "manifest.rank-";
    if (strncmp(n, pre, sizeof pre - 1)) return 0;
    n += sizeof pre - 1;
    size_t d = strspn(n, "0123456789");
    return d > 0 && !strcmp(n + d, ".jsonl");
}

/* Appends the complete lines of one part to fd (one write, fsynced). */
static int merge_one(int fd, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return px_set_error("%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb) free(buf);
            buf = nb;
        }
    }
    fclose(f);
    if (!buf) return px_set_error("%s: out of memory", path);
    while (n && buf[n - 1] != '\n') n--; // a killed rank's partial last line
    int rc = n ? px_batch_manifest_append(fd, buf, n) : 0;
    free(buf);
    return rc;
}

int px_batch_manifest_merge(const char *outdir)
{
    DIR *d = opendir(outdir);
    if (!d) return px_set_error("%s: cannot list: %s", outdir, strerror(errno));
    int fd = -1, rc = 0;
    struct dirent *e;
    while (!rc && (e = readdir(d))) {
        if (!is_part_name(e->d_name)) continue;
        if (fd < 0 && (fd = px_batch_manifest_open(outdir, -1)) < 0) {
            rc = -1;
            break;
        }
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", outdir, e->d_name);
        // merged lines are durable before the part goes (a crash in between
        // leaves duplicate lines, which say the same thing twice)
        rc = merge_one(fd, path);
        if (!rc && unlink(path)) rc = px_set_error("%s: cannot remove: %s", path, strerror(errno));
    }
    closedir(d);
    if (fd >= 0) close(fd);
    return rc;
}

/* "PID.N": the tail of the writers' ".pixart.tmp.PID.N" (tensor/outfile.h).
 * The PID, or -1 when name is not of that form. */
static long temp_pid(const char *name)
{
    static const char prefix[] = ".pixart.tmp.";
    if (strncmp(name, prefix, sizeof prefix - 1)) return -1;
    const char *q = name + sizeof prefix - 1;
    size_t np = strspn(q, "0123456789");
    if (!np || np > 9 || q[np] != '.') return -1;
    const char *k = q + np + 1;
    if (!*k || strspn(k, "0123456789") != strlen(k)) return -1;
    return strtol(q, NULL, 10);
}

int px_batch_clean_temps(const char *outdir)
{
    DIR *d = opendir(outdir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        // only the writers' own temporaries, and not those of a process that
        // still runs on this machine (a generate writing into the same folder)
        long pid = temp_pid(e->d_name);
        if (pid <= 0 || (pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM))) continue;
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", outdir, e->d_name);
        if (unlink(path) == 0) n++;
    }
    closedir(d);
    return n;
}

// ---------------------------------------------------------------------------
// Reading: which jobs are complete

static const px_batch_job *find_jobs;
static int cmp_stem_ix(const void *a, const void *b)
{
    return strcmp(find_jobs[*(const int *)a].stem, find_jobs[*(const int *)b].stem);
}

static int find_job(const px_batch_job *jobs, const int *ix, int n, const char *stem)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(jobs[ix[mid]].stem, stem);
        if (!c) return ix[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* An "ok" record whose files are all there with the recorded size and hash
 * and named as this job's files. */
static int record_verifies(const char *outdir, const px_batch_job *j, const px_json *rec)
{
    const px_json *files = px_json_get(rec, "files"), *bytes = px_json_get(rec, "bytes"),
                  *hashes = px_json_get(rec, "fnv1a64");
    if (!files || !bytes || !hashes || files->type != PX_JSON_ARRAY || bytes->type != PX_JSON_ARRAY ||
        hashes->type != PX_JSON_ARRAY || files->count != (size_t)j->r_nipp || bytes->count != files->count ||
        hashes->count != files->count)
        return 0;
    for (size_t k = 0; k < files->count; k++) {
        const px_json *f = files->items[k], *b = bytes->items[k], *h = hashes->items[k];
        char want[PX_BATCH_NAME_MAX + 32], path[PATH_MAX];
        snprintf(want, sizeof want, "%s-%zu.png", j->stem, k);
        if (f->type != PX_JSON_STRING || strcmp(f->string, want) || b->type != PX_JSON_NUMBER || !b->is_integer ||
            h->type != PX_JSON_STRING)
            return 0;
        snprintf(path, sizeof path, "%s/%s", outdir, want);
        uint64_t got_h;
        int64_t got_n;
        char hex[17];
        if (px_batch_file_digest(path, &got_h, &got_n) || got_n != b->integer) return 0;
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)got_h);
        if (strcmp(hex, h->string)) return 0;
    }
    return 1;
}

/* One manifest line: marks its job done (or changed). Malformed lines are
 * counted (a killed run's fragment), never fatal. */
static void check_line(const char *outdir, const px_batch_job *jobs, const int *ix, int n, const char *s, size_t len,
                       int *done, int *changed, int *skipped)
{
    px_json *rec = px_json_parse(s, len, "manifest line");
    const char *stem = NULL, *key = NULL, *status = NULL;
    if (!rec || rec->type != PX_JSON_OBJECT || px_json_opt_string(rec, "job", &stem, "manifest") ||
        px_json_opt_string(rec, "key", &key, "manifest") || px_json_opt_string(rec, "status", &status, "manifest") ||
        !stem || !key || !status) {
        (*skipped)++;
        px_json_free(rec);
        return;
    }
    int i = find_job(jobs, ix, n, stem);
    if (i >= 0 && !done[i]) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)jobs[i].key);
        changed[i] = strcmp(hex, key) != 0;
        if (!changed[i] && !strcmp(status, "ok") && record_verifies(outdir, &jobs[i], rec)) done[i] = 1;
    }
    px_json_free(rec);
}

int px_batch_manifest_check(const char *outdir, const px_batch_job *jobs, int n, int *done, int *changed, FILE *warn)
{
    memset(done, 0, sizeof(int) * (size_t)n);
    memset(changed, 0, sizeof(int) * (size_t)n);
    char path[PATH_MAX];
    part_path(path, sizeof path, outdir, -1);
    FILE *f = fopen(path, "rb");
    if (!f) return errno == ENOENT ? 0 : px_set_error("%s: cannot open: %s", path, strerror(errno));
    int *ix = malloc(sizeof(int) * (size_t)(n ? n : 1));
    if (!ix) {
        fclose(f);
        return px_set_error("out of memory");
    }
    for (int i = 0; i < n; i++) ix[i] = i;
    find_jobs = jobs;
    qsort(ix, (size_t)n, sizeof *ix, cmp_stem_ix);
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int skipped = 0;
    while ((len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') { // a fragment (the writer terminates it)
            skipped++;
            continue;
        }
        if (len > 1) check_line(outdir, jobs, ix, n, line, (size_t)len - 1, done, changed, &skipped);
    }
    int rc = ferror(f) ? px_set_error("%s: read error", path) : 0;
    free(line);
    free(ix);
    fclose(f);
    if (skipped && warn)
        fprintf(warn, "pixart batch: %s: %d unreadable line%s ignored (a run killed while writing it)\n", path,
                skipped, skipped == 1 ? "" : "s");
    return rc;
}
