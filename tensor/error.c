/* Thread-local error messages (see error.h). */
#include "error.h"
#include "pixart/pixart.h" // the exported (PX_API) declarations

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char px_errbuf[2048];

int px_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(px_errbuf, sizeof px_errbuf, fmt, ap);
    va_end(ap);
    return -1;
}

int px_fail_ctx(const char *fmt, ...)
{
    char old[sizeof px_errbuf];
    memcpy(old, px_errbuf, sizeof old);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(px_errbuf, sizeof px_errbuf, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof px_errbuf)
        snprintf(px_errbuf + n, sizeof px_errbuf - (size_t)n, ": %s", old);
    return -1;
}

const char *px_last_error(void) { return px_errbuf; }

void px_clear_error(void) { px_errbuf[0] = 0; }

void *px_malloc(size_t n, const char *what)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        px_fail("out of memory (%zu bytes for %s)", n, what);
    return p;
}

void *px_calloc(size_t count, size_t size, const char *what)
{
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p)
        px_fail("out of memory (%zu x %zu bytes for %s)", count, size, what);
    return p;
}
