/* Output files that are never half written and never replace what they
 * should not: the one writer behind the PNG, .npy and safetensors writers
 * (issue 17, findings 5-7; the semantics are in doc/pipeline.md, "Output
 * files").
 *
 *   - the target absent or a regular file: the bytes go to a temporary file
 *     in the target's directory (".pixart.tmp.PID.N", created with O_EXCL),
 *     which is fsync'ed, renamed onto the target, and the directory fsync'ed;
 *     an existing target keeps its permission bits;
 *   - a symbolic link: followed to its final target, which is written as
 *     above, so the link survives and points at the new file;
 *   - a device, FIFO or socket, also at the end of links: written in place
 *     (no temporary, no rename: `-o /dev/null` stays a device, `-o
 *     /dev/stdout` writes into the pipe);
 *   - a directory, or an empty path: refused.
 *
 * Temporaries that are still live are kept in a registry that a signal
 * handler (px_out_cleanup_on_signals) can remove async-signal-safely.
 * Staging (px_out_stage_begin .. commit/discard) keeps every temporary
 * until commit renames them all, so a run that fails half-way replaces none
 * of the user's files. */
#ifndef PX_OUTFILE_H
#define PX_OUTFILE_H

#include <stddef.h>

typedef struct {
    const void *p;
    size_t n;
} px_span;

/* Writes the concatenation of parts[0..nparts) to path as described above.
 * 0, or -1 with a message naming path (and the temporary, when the failure
 * is there). Nothing is left behind on failure. */
int px_out_write(const char *path, const px_span *parts, int nparts);

/* Checks, before any work, that px_out_write(path) can succeed as far as
 * one can tell: path not empty, not a directory, its directory exists and is
 * writable, its last component fits NAME_MAX. 0 or -1 with a message. */
int px_out_check(const char *path);

/* Staging: between begin and commit/discard, px_out_write leaves regular
 * targets untouched and keeps the written, fsync'ed temporaries. commit
 * renames them all (in the order they were written) and fsyncs their
 * directories; discard removes them. One staged group per process at a
 * time. commit: 0, or -1 if a rename failed (the remaining temporaries are
 * removed; the ones already renamed stay). Devices and FIFOs are written at
 * once even while staging: they hold nothing that could be lost. */
void px_out_stage_begin(void);
int px_out_stage_commit(void);
void px_out_stage_discard(void);

/* Removes every live temporary (async-signal-safe: only unlink). */
void px_out_remove_temporaries(void);

/* Installs handlers for SIGINT, SIGTERM, SIGHUP and SIGQUIT (those whose
 * disposition is the default) that remove the live temporaries and then
 * re-raise the signal with its default action. 0 or -1. */
int px_out_cleanup_on_signals(void);

#endif
