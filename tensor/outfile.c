/* Atomic output files, staging, and removal of temporaries on signals
 * (see outfile.h). POSIX: lstat/readlink, open(O_EXCL), fsync, rename. */
#include "outfile.h"
#include "error.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

// ---------------------------------------------------------------------------
// The registry of live temporaries
//
// A linked list that a signal handler may walk at any moment. Every change
// is made with the handled signals blocked in the changing thread and under
// a spin lock; a handler running on another thread waits for the lock (the
// holder is not interrupted, so it finishes in microseconds). Nodes are
// freed only after they are unlinked from the list under the lock.

typedef struct tmpfile_ent {
    struct tmpfile_ent *next;
    int staged;               // written, waiting for px_out_stage_commit
    char *target;             // the final (symlink-resolved) path
    char tmp[];               // the temporary's path
} tmpfile_ent;

static tmpfile_ent *live;     // newest first
static atomic_flag live_lock = ATOMIC_FLAG_INIT;
static atomic_int staging;
static unsigned long long tmp_seq;
static const int handled[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

static void lock_registry(sigset_t *saved)
{
    sigset_t block;
    sigemptyset(&block);
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++) sigaddset(&block, handled[i]);
    pthread_sigmask(SIG_BLOCK, &block, saved);
    while (atomic_flag_test_and_set_explicit(&live_lock, memory_order_acquire)) {
    }
}

static void unlock_registry(const sigset_t *saved)
{
    atomic_flag_clear_explicit(&live_lock, memory_order_release);
    pthread_sigmask(SIG_SETMASK, saved, NULL);
}

static void unregister(tmpfile_ent *e)
{
    sigset_t saved;
    lock_registry(&saved);
    for (tmpfile_ent **p = &live; *p; p = &(*p)->next)
        if (*p == e) {
            *p = e->next;
            break;
        }
    unlock_registry(&saved);
    free(e->target);
    free(e);
}

void px_out_remove_temporaries(void)
{
    // async-signal-safe: no allocation, no stdio; waits for a writer on
    // another thread to finish its (short) update of the list
    while (atomic_flag_test_and_set_explicit(&live_lock, memory_order_acquire)) {
    }
    for (tmpfile_ent *e = live; e; e = e->next) unlink(e->tmp);
    atomic_flag_clear_explicit(&live_lock, memory_order_release);
}

static void on_signal(int sig)
{
    int saved_errno = errno;
    px_out_remove_temporaries();
    signal(sig, SIG_DFL);
    errno = saved_errno;
    raise(sig); // delivered when the handler returns: the default action (termination)
}

int px_out_cleanup_on_signals(void)
{
    for (size_t i = 0; i < sizeof handled / sizeof handled[0]; i++) {
        struct sigaction old, sa;
        if (sigaction(handled[i], NULL, &old) != 0) return px_fail("sigaction: %s", strerror(errno));
        if (old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO)) continue; // ignored or the program's own
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        for (size_t k = 0; k < sizeof handled / sizeof handled[0]; k++) sigaddset(&sa.sa_mask, handled[k]);
        if (sigaction(handled[i], &sa, NULL) != 0) return px_fail("sigaction: %s", strerror(errno));
    }
    return 0;
}

// ---------------------------------------------------------------------------
// What the path names

enum { TARGET_NEW, TARGET_REGULAR, TARGET_SPECIAL };

/* Follows symbolic links from path to the final name (which may not exist)
 * into out. Returns TARGET_NEW, TARGET_REGULAR (st filled), TARGET_SPECIAL
 * (a device, FIFO or socket; out is path itself), or -1 (empty, a
 * directory, a loop, ...). */
static int resolve_target(const char *path, char *out, size_t size, struct stat *st)
{
    if (!*path) return px_fail("output path is empty");
    if ((size_t)snprintf(out, size, "%s", path) >= size) return px_fail("%s: path too long", path);
    // what the path ends at, links followed: a device, FIFO or socket is opened
    // by the path itself (/dev/stdout -> /proc/self/fd/1 -> "pipe:[N]" is no name)
    if (stat(path, st) == 0 && !S_ISREG(st->st_mode) && !S_ISDIR(st->st_mode)) return TARGET_SPECIAL;
    for (int hops = 0;; hops++) {
        if (lstat(out, st) != 0) {
            if (errno == ENOENT) return TARGET_NEW;
            if (errno == ENAMETOOLONG)
                return px_fail("%s: a name in the path is longer than the file system allows", path);
            return px_fail("%s: %s", path, strerror(errno));
        }
        if (!S_ISLNK(st->st_mode)) break;
        if (hops >= 40) return px_fail("%s: too many levels of symbolic links", path);
        char link[PATH_MAX];
        ssize_t n = readlink(out, link, sizeof link - 1);
        if (n < 0) return px_fail("%s: cannot read the symbolic link '%s': %s", path, out, strerror(errno));
        link[n] = 0;
        const char *slash = strrchr(out, '/');
        if (link[0] == '/' || !slash) {
            if ((size_t)snprintf(out, size, "%s", link) >= size) return px_fail("%s: path too long", path);
        } else {
            char dir[PATH_MAX];
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - out), out);
            if ((size_t)snprintf(out, size, "%s/%s", dir, link) >= size) return px_fail("%s: path too long", path);
        }
    }
    if (S_ISDIR(st->st_mode)) return px_fail("%s: is a directory", path);
    return S_ISREG(st->st_mode) ? TARGET_REGULAR : TARGET_SPECIAL;
}

/* The directory part of path ("." or "/" when it has none). */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, size, ".");
    else if (slash == path) snprintf(dir, size, "/");
    else snprintf(dir, size, "%.*s", (int)(slash - path), path);
}

int px_out_check(const char *path)
{
    char target[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    int kind = resolve_target(path, target, sizeof target, &st);
    if (kind < 0) return -1;
    if (kind == TARGET_SPECIAL) {
        if (access(target, W_OK) != 0) return px_fail("%s: cannot write: %s", path, strerror(errno));
        return 0;
    }
    dir_of(target, dir, sizeof dir);
    struct stat ds;
    if (stat(dir, &ds) != 0) return px_fail("%s: cannot write to directory '%s': %s", path, dir, strerror(errno));
    if (!S_ISDIR(ds.st_mode)) return px_fail("%s: '%s' is not a directory", path, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return px_fail("%s: cannot write to directory '%s': %s", path, dir, strerror(errno));
    const char *base = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
    long name_max = pathconf(dir, _PC_NAME_MAX);
    if (name_max <= 0) name_max = NAME_MAX;
    if (!*base) return px_fail("%s: names a directory, not a file", path);
    if ((long)strlen(base) > name_max)
        return px_fail("%s: file name of %zu bytes is longer than the %ld the file system allows", path,
                       strlen(base), name_max);
    return 0;
}

// ---------------------------------------------------------------------------
// Writing

static int write_all(int fd, const px_span *parts, int nparts)
{
    for (int i = 0; i < nparts; i++) {
        const char *p = parts[i].p;
        size_t left = parts[i].n;
        while (left) {
            ssize_t w = write(fd, p, left < (1u << 30) ? left : (1u << 30));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return -1;
            p += w;
            left -= (size_t)w;
        }
    }
    return 0;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) return;
    (void)fsync(fd); // some file systems refuse (EINVAL): the rename itself is done
    close(fd);
}

/* A device, FIFO or socket: written in place. */
static int write_special(const char *path, const char *target, const px_span *parts, int nparts)
{
    int fd = open(target, O_WRONLY | O_TRUNC | O_NOCTTY);
    if (fd < 0) return px_fail("%s: cannot open for writing: %s", path, strerror(errno));
    int ok = write_all(fd, parts, nparts) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    return ok ? 0 : px_fail("%s: write failed: %s", path, strerror(err));
}

/* Creates and registers an O_EXCL temporary next to target; its fd in *fd. */
static tmpfile_ent *create_temporary(const char *path, const char *target, int *fd)
{
    char dir[PATH_MAX];
    dir_of(target, dir, sizeof dir);
    size_t tn = strlen(dir) + 64;
    tmpfile_ent *e = px_calloc(1, sizeof *e + tn, "output temporary");
    if (!e) return NULL;
    e->target = strdup(target);
    if (!e->target) {
        free(e);
        px_fail("out of memory (output path)");
        return NULL;
    }
    sigset_t saved;
    for (int tries = 0;; tries++) {
        lock_registry(&saved);
        snprintf(e->tmp, tn, "%s/.pixart.tmp.%ld.%llu", dir, (long)getpid(), tmp_seq++);
        // opened under the lock with signals blocked: a signal never finds it unregistered
        *fd = open(e->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        int err = errno;
        if (*fd >= 0) {
            e->next = live;
            live = e;
        }
        unlock_registry(&saved);
        if (*fd >= 0) return e;
        if (err != EEXIST || tries >= 100) { // EEXIST: a leftover of a killed run with our pid
            px_fail("%s: cannot create the temporary file '%s': %s", path, e->tmp, strerror(err));
            free(e->target);
            free(e);
            return NULL;
        }
    }
}

/* Renames e's temporary onto its target, fsyncs the directory, frees e. */
static int commit_one(tmpfile_ent *e)
{
    int rc = 0;
    if (rename(e->tmp, e->target) != 0) {
        rc = px_fail("%s: cannot rename the temporary file '%s' onto it: %s", e->target, e->tmp, strerror(errno));
        unlink(e->tmp);
    } else {
        char dir[PATH_MAX];
        dir_of(e->target, dir, sizeof dir);
        fsync_dir(dir);
    }
    unregister(e);
    return rc;
}

int px_out_write(const char *path, const px_span *parts, int nparts)
{
    char target[PATH_MAX];
    struct stat st;
    int kind = resolve_target(path, target, sizeof target, &st);
    if (kind < 0) return -1;
    if (kind == TARGET_SPECIAL) return write_special(path, target, parts, nparts);
    int fd;
    tmpfile_ent *e = create_temporary(path, target, &fd);
    if (!e) return -1;
    // an existing file keeps its permission bits (a new one gets 0666 & ~umask)
    int ok = (kind != TARGET_REGULAR || fchmod(fd, st.st_mode & 07777) == 0) && write_all(fd, parts, nparts) == 0 &&
             fsync(fd) == 0;
    int err = errno;
    if (close(fd) != 0 && ok) {
        ok = 0;
        err = errno;
    }
    if (!ok) {
        px_fail("%s: write to the temporary file '%s' failed: %s", path, e->tmp, strerror(err));
        unlink(e->tmp);
        unregister(e);
        return -1;
    }
    if (atomic_load(&staging)) {
        e->staged = 1; // renamed by px_out_stage_commit
        return 0;
    }
    return commit_one(e);
}

// ---------------------------------------------------------------------------
// Staging

void px_out_stage_begin(void) { atomic_store(&staging, 1); }

/* The staged entries, oldest first, *n of them (NULL with *n > 0: out of
 * memory). */
static tmpfile_ent **staged_entries(size_t *n)
{
    sigset_t saved;
    lock_registry(&saved);
    size_t k = 0;
    for (tmpfile_ent *e = live; e; e = e->next) k += e->staged;
    tmpfile_ent **v = k ? malloc(k * sizeof *v) : NULL;
    if (v) {
        size_t i = k;
        for (tmpfile_ent *e = live; e; e = e->next)
            if (e->staged) v[--i] = e;
    }
    unlock_registry(&saved);
    *n = k;
    return v;
}

void px_out_stage_discard(void)
{
    atomic_store(&staging, 0);
    size_t n;
    tmpfile_ent **v = staged_entries(&n);
    if (!v && n) { // out of memory: remove the files at least (the entries stay registered)
        px_out_remove_temporaries();
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unlink(v[i]->tmp);
        unregister(v[i]);
    }
    free(v);
}

int px_out_stage_commit(void)
{
    atomic_store(&staging, 0);
    size_t n;
    tmpfile_ent **v = staged_entries(&n);
    if (!v && n) {
        px_out_remove_temporaries();
        return px_fail("out of memory (committing %zu output files)", n);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (rc) { // after a failed rename: remove the rest, replace nothing more
            unlink(v[i]->tmp);
            unregister(v[i]);
        } else {
            rc = commit_one(v[i]);
        }
    }
    free(v);
    return rc;
}
