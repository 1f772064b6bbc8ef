/* Progress reporting for the `pixart` command (not part of the library: the
 * pipeline only calls back; this turns the callbacks into text on stderr).
 *
 * On a terminal: a bar redrawn in place, "denoise [#####.....] 7/20
 * 1.23 s/step ETA 16 s". Elsewhere (a log file, a pipe): one line per step.
 * At the end, a summary of the time spent in each stage. */
#ifndef PX_PROGRESS_H
#define PX_PROGRESS_H

#include <stdio.h>

#include "pixart/pixart.h"

typedef struct px_progress px_progress;

/* quiet: print nothing at all. tty: -1 = detect with isatty(fileno(f)). */
px_progress *px_progress_new(FILE *f, int quiet, int tty);
void px_progress_free(px_progress *p);

/* A px_progress_fn for px_generate_params.progress (user = the px_progress). */
int px_progress_callback(void *user, const px_progress_event *ev);

/* "time: load text encoder 1.2 s, encode 3.4 s, ... total 42.0 s" from the
 * stage times a run measured. */
void px_progress_summary(px_progress *p, const double *stage_seconds);

/* Formats a duration as "0.42 s", "12.3 s", "3 min 05 s" into buf. */
const char *px_format_seconds(double s, char *buf, size_t size);

#endif
