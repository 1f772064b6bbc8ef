/* Error reporting for pixart.c.
 *
 * Library code never exits: a failing function records one message (naming the
 * file and the field or tensor that is wrong) and returns -1 / NULL. The message
 * is thread-local; main() prints it. */
#ifndef PX_ERROR_H
#define PX_ERROR_H

#include <stddef.h>

#if defined(__GNUC__)
#define PX_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define PX_PRINTF(a, b)
#endif

/* Record an error message (printf-style) and return -1, so callers can write
 * `return px_fail("%s: tensor '%s' missing", path, name);`. */
int px_fail(const char *fmt, ...) PX_PRINTF(1, 2);

/* Prefix the current message with more context: "ctx: <old message>". Returns -1. */
int px_fail_ctx(const char *fmt, ...) PX_PRINTF(1, 2);

/* The last message recorded on this thread ("" when none). */
const char *px_last_error(void);

void px_clear_error(void);

/* malloc/calloc that record "out of memory (N bytes for WHAT)" on failure. */
void *px_malloc(size_t n, const char *what);
void *px_calloc(size_t count, size_t size, const char *what);

#endif
