/* The process's memory, as the commands report it next to their stage
 * timings: the peak resident set (Linux VmHWM in /proc/self/status, else
 * getrusage's ru_maxrss) and the current one (VmRSS). */
#ifndef PX_MEMSTAT_H
#define PX_MEMSTAT_H

#include <stdint.h>

/* Peak resident set size of this process so far, in bytes; 0 when unknown. */
uint64_t px_peak_rss_bytes(void);
/* Current resident set size in bytes; 0 when unknown (no /proc). */
uint64_t px_rss_bytes(void);

#endif
