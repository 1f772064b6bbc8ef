/* 8-bit RGB PNG output (and a small reader for tests and tools).
 *
 * The float image -> 8-bit conversion is diffusers' numpy_to_pil:
 * (images * 255).round().astype("uint8") on the float32 [0, 1] image, i.e.
 * a float32 multiply and round-half-to-even. Files are written through
 * px_out_write (tensor/outfile.h), so a crash never leaves half an image.
 * The generation parameters go into tEXt chunks (iTXt when a value is not
 * plain ASCII, since tEXt is Latin-1 only). */
#ifndef PX_PNG_H
#define PX_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "pixart/pixart.h" /* px_image_to_u8, px_png_text, px_png_write (public) */

/* Encode rgb (h, w, 3) row-major into a PNG in memory (*out malloc'ed).
 * Rows are filtered with the usual minimum-sum-of-absolute-differences
 * heuristic and deflated with zlib. Returns 0 or -1. */
int px_png_encode(uint8_t **out, size_t *out_len, const uint8_t *rgb, int w, int h, const px_png_text *text,
                  int ntext);


/* Decode an 8-bit, non-interlaced RGB or RGBA PNG (colour type 2 or 6) into
 * *rgb (h, w, 3), alpha dropped. Every chunk length and CRC is checked.
 * text (optional) receives the tEXt/iTXt chunks (free with
 * px_png_text_free). Returns 0 or -1 with a message naming the file. */
typedef struct {
    char *key, *value;
} px_png_kv;
int px_png_read(const char *path, uint8_t **rgb, int *w, int *h, px_png_kv **text, int *ntext);
int px_png_decode(const uint8_t *buf, size_t len, const char *name, uint8_t **rgb, int *w, int *h,
                  px_png_kv **text, int *ntext);
void px_png_text_free(px_png_kv *text, int ntext);

#endif
