/* pixart.c public API: PixArt-alpha text-to-image in C.
 *
 * The library is organised like the pipeline it implements (see
 * doc/walkthrough.md); this header is the stable entry point for programs
 * that link libpixart. */
#ifndef PIXART_H
#define PIXART_H

#ifdef __cplusplus
extern "C" {
#endif

/* The last error message recorded on this thread (file and field named). */
const char *px_last_error(void);

/* Threads used by every operator (also PIXART_NUM_THREADS). */
void px_set_num_threads(int n);

#ifdef __cplusplus
}
#endif

#endif
