/* Resident set sizes (see memstat.h). */
#include "pixart/pixart.h" /* px_peak_rss_bytes is exported */
#include "memstat.h"

#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

/* "KEY:   123 kB" from /proc/self/status, in bytes; 0 when absent. */
static uint64_t proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    unsigned long long kb = 0;
    const size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') {
            if (sscanf(line + n + 1, "%llu", &kb) != 1) kb = 0;
            break;
        }
    fclose(f);
    return (uint64_t)kb * 1024;
}

uint64_t px_peak_rss_bytes(void)
{
    uint64_t b = proc_status_kb("VmHWM");
    if (b) return b;
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
#if defined(__APPLE__)
    return (uint64_t)ru.ru_maxrss; /* bytes on macOS */
#else
    return (uint64_t)ru.ru_maxrss * 1024; /* kilobytes on Linux and the BSDs */
#endif
}

uint64_t px_rss_bytes(void) { return proc_status_kb("VmRSS"); }
