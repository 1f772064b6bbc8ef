/* PNG writer/reader (8-bit RGB) with zlib, and diffusers' numpy_to_pil
 * rounding of the float image. */
#include "src/pipeline/png.h"
#include "tensor/error.h"
#include "tensor/outfile.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

void px_image_to_u8(uint8_t *out, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = x[i] * 255.0f;    // images * 255 (float32)
        v = nearbyintf(v);          // .round(): half to even (default rounding mode)
        if (!(v >= 0.f)) v = 0.f;   // NaN and negatives
        if (v > 255.f) v = 255.f;
        out[i] = (uint8_t)v;        // .astype("uint8")
    }
}

// ---------------------------------------------------------------------------
// Growable byte buffer

typedef struct {
    uint8_t *p;
    size_t n, cap;
    int oom;
} buf_t;

static void buf_put(buf_t *b, const void *src, size_t n)
{
    if (b->oom) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n) cap *= 2;
        uint8_t *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* One chunk: length, type, data, CRC over type + data. */
static void put_chunk(buf_t *b, const char *type, const uint8_t *data, size_t n)
{
    uint8_t hdr[8];
    put_u32(hdr, (uint32_t)n);
    memcpy(hdr + 4, type, 4);
    buf_put(b, hdr, 8);
    if (n) buf_put(b, data, n);
    uLong crc = crc32(0L, (const Bytef *)type, 4);
    if (n) crc = crc32(crc, data, (uInt)n);
    uint8_t c[4];
    put_u32(c, (uint32_t)crc);
    buf_put(b, c, 4);
}

// ---------------------------------------------------------------------------
// Filters (PNG spec section 9): bpp = 3 for 8-bit RGB.

static inline uint8_t paeth(int a, int b, int c)
{
    int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
    if (pa <= pb && pa <= pc) return (uint8_t)a;
    if (pb <= pc) return (uint8_t)b;
    return (uint8_t)c;
}

/* Filter one row with type ft into out (stride bytes); prev is the previous
 * raw row or NULL for the first row. */
static void filter_row(uint8_t *out, const uint8_t *row, const uint8_t *prev, size_t stride, int bpp, int ft)
{
    for (size_t i = 0; i < stride; i++) {
        int a = i >= (size_t)bpp ? row[i - bpp] : 0;
        int b = prev ? prev[i] : 0;
        int c = (prev && i >= (size_t)bpp) ? prev[i - bpp] : 0;
        int pred;
        switch (ft) {
        case 0: pred = 0; break;
        case 1: pred = a; break;
        case 2: pred = b; break;
        case 3: pred = (a + b) >> 1; break;
        default: pred = paeth(a, b, c); break;
        }
        out[i] = (uint8_t)(row[i] - pred);
    }
}

int px_png_encode(uint8_t **out, size_t *out_len, const uint8_t *rgb, int w, int h, const px_png_text *text,
                  int ntext)
{
    *out = NULL;
    *out_len = 0;
    if (w <= 0 || h <= 0 || w > (1 << 24) || h > (1 << 24))
        return px_fail("png: image size %dx%d out of range", w, h);
    size_t stride = (size_t)w * 3;
    if (stride + 1 > SIZE_MAX / (size_t)h) return px_fail("png: image %dx%d too large", w, h);
    size_t raw_n = (stride + 1) * (size_t)h;
    uint8_t *raw = px_malloc(raw_n, "png filtered rows");
    uint8_t *cand = px_malloc(stride * 5, "png filter candidates");
    if (!raw || !cand) {
        free(raw);
        free(cand);
        return -1;
    }
    for (int y = 0; y < h; y++) {
        const uint8_t *row = rgb + (size_t)y * stride, *prev = y ? row - stride : NULL;
        int best = 0;
        uint64_t best_sum = UINT64_MAX;
        for (int ft = 0; ft < 5; ft++) {
            uint8_t *c = cand + (size_t)ft * stride;
            filter_row(c, row, prev, stride, 3, ft);
            uint64_t s = 0; // minimum sum of absolute (signed) differences
            for (size_t i = 0; i < stride; i++) s += c[i] < 128 ? c[i] : 256 - c[i];
            if (s < best_sum) {
                best_sum = s;
                best = ft;
            }
        }
        uint8_t *dst = raw + (size_t)y * (stride + 1);
        dst[0] = (uint8_t)best;
        memcpy(dst + 1, cand + (size_t)best * stride, stride);
    }
    free(cand);

    uLongf zn = compressBound((uLong)raw_n);
    uint8_t *z = px_malloc(zn, "png deflate buffer");
    if (!z) {
        free(raw);
        return -1;
    }
    int zr = compress2(z, &zn, raw, (uLong)raw_n, 6);
    free(raw);
    if (zr != Z_OK) {
        free(z);
        return px_fail("png: zlib compress2 failed (%d)", zr);
    }

    buf_t b = {0};
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    buf_put(&b, sig, 8);
    uint8_t ihdr[13];
    put_u32(ihdr, (uint32_t)w);
    put_u32(ihdr + 4, (uint32_t)h);
    ihdr[8] = 8;  // bit depth
    ihdr[9] = 2;  // colour type: truecolour
    ihdr[10] = 0; // deflate
    ihdr[11] = 0; // adaptive filtering
    ihdr[12] = 0; // no interlace
    put_chunk(&b, "IHDR", ihdr, 13);

    for (int i = 0; i < ntext; i++) {
        const char *k = text[i].key, *v = text[i].value ? text[i].value : "";
        size_t kn = strlen(k), vn = strlen(v);
        if (kn < 1 || kn > 79) {
            free(z);
            free(b.p);
            return px_fail("png: text keyword '%s' must be 1..79 characters", k);
        }
        int ascii = 1;
        for (size_t j = 0; j < vn; j++)
            if ((unsigned char)v[j] >= 0x80) ascii = 0;
        buf_t c = {0};
        buf_put(&c, k, kn);
        if (ascii) { // tEXt: keyword NUL text (Latin-1; ASCII is a subset)
            buf_put(&c, "", 1);
            buf_put(&c, v, vn);
            if (!c.oom) put_chunk(&b, "tEXt", c.p, c.n);
        } else { // iTXt: keyword NUL, flag 0, method 0, language "" NUL, translated "" NUL, UTF-8 text
            static const uint8_t mid[5] = {0, 0, 0, 0, 0};
            buf_put(&c, mid, 5);
            buf_put(&c, v, vn);
            if (!c.oom) put_chunk(&b, "iTXt", c.p, c.n);
        }
        if (c.oom) b.oom = 1;
        free(c.p);
    }
    // IDAT in pieces of at most 1 MiB
    for (size_t off = 0; off < zn; off += 1u << 20) {
        size_t n = zn - off < (1u << 20) ? zn - off : (1u << 20);
        put_chunk(&b, "IDAT", z + off, n);
    }
    free(z);
    put_chunk(&b, "IEND", NULL, 0);
    if (b.oom) {
        free(b.p);
        return px_fail("png: out of memory");
    }
    *out = b.p;
    *out_len = b.n;
    return 0;
}

int px_png_write(const char *path, const uint8_t *rgb, int w, int h, const px_png_text *text, int ntext)
{
    uint8_t *data;
    size_t n;
    if (px_png_encode(&data, &n, rgb, w, h, text, ntext)) return px_fail_ctx("%s", path);
    const px_span part = {data, n};
    int rc = px_out_write(path, &part, 1);
    free(data);
    return rc;
}

// ---------------------------------------------------------------------------
// Reader

void px_png_text_free(px_png_kv *text, int ntext)
{
    if (!text) return;
    for (int i = 0; i < ntext; i++) {
        free(text[i].key);
        free(text[i].value);
    }
    free(text);
}

static int add_text(px_png_kv **text, int *ntext, const uint8_t *k, size_t kn, const uint8_t *v, size_t vn)
{
    px_png_kv *t = realloc(*text, sizeof(px_png_kv) * (size_t)(*ntext + 1));
    if (!t) return px_fail("png: out of memory");
    *text = t;
    char *ks = malloc(kn + 1), *vs = malloc(vn + 1);
    if (!ks || !vs) {
        free(ks);
        free(vs);
        return px_fail("png: out of memory");
    }
    memcpy(ks, k, kn);
    ks[kn] = 0;
    memcpy(vs, v, vn);
    vs[vn] = 0;
    t[*ntext].key = ks;
    t[*ntext].value = vs;
    (*ntext)++;
    return 0;
}

/* A tEXt or iTXt chunk's keyword and (uncompressed) text, appended to *text. */
static int read_text_chunk(const char *name, const uint8_t *type, const uint8_t *data, uint32_t n, px_png_kv **text,
                           int *ntext)
{
    const uint8_t *nul = memchr(data, 0, n);
    if (!nul) return px_fail("%s: %.4s chunk without keyword terminator", name, (const char *)type);
    size_t kn = (size_t)(nul - data);
    const uint8_t *v = nul + 1;
    size_t vn = n - kn - 1;
    if (!memcmp(type, "iTXt", 4)) { // flag, method, language NUL, translated keyword NUL
        if (vn < 2 || v[0] != 0) // compressed iTXt is not produced by pixart
            return px_fail("%s: unsupported iTXt chunk", name);
        v += 2;
        vn -= 2;
        for (int k = 0; k < 2; k++) {
            const uint8_t *e = memchr(v, 0, vn);
            if (!e) return px_fail("%s: malformed iTXt chunk", name);
            vn -= (size_t)(e - v) + 1;
            v = e + 1;
        }
    }
    if (add_text(text, ntext, data, kn, v, vn)) return px_fail_ctx("%s", name);
    return 0;
}

/* The IDAT stream z inflated, unfiltered row by row and reduced to RGB
 * (h, w, 3), or NULL with a message. */
static uint8_t *inflate_image(const char *name, const buf_t *z, uint32_t w, uint32_t h, int channels)
{
    size_t stride = (size_t)w * (size_t)channels;
    size_t raw_n = (stride + 1) * (size_t)h;
    uint8_t *raw = px_malloc(raw_n ? raw_n : 1, "png inflate buffer");
    uint8_t *rgb = px_malloc((size_t)w * h * 3, "png image");
    uint8_t *img = px_malloc(stride * h, "png rows");
    if (!raw || !rgb || !img) goto fail;
    uLongf got = (uLongf)raw_n;
    int zr = uncompress(raw, &got, z->p, (uLong)z->n);
    if (zr != Z_OK || got != raw_n) {
        px_fail("%s: image data does not inflate to %zu bytes (zlib %d)", name, raw_n, zr);
        goto fail;
    }
    for (uint32_t y = 0; y < h; y++) {
        const uint8_t *src = raw + (size_t)y * (stride + 1);
        uint8_t *row = img + (size_t)y * stride, *prev = y ? row - stride : NULL;
        int ft = src[0];
        if (ft > 4) {
            px_fail("%s: row %u has invalid filter type %d", name, y, ft);
            goto fail;
        }
        for (size_t i = 0; i < stride; i++) {
            int a = i >= (size_t)channels ? row[i - channels] : 0;
            int b = prev ? prev[i] : 0;
            int c = (prev && i >= (size_t)channels) ? prev[i - channels] : 0;
            int pred = ft == 0 ? 0 : ft == 1 ? a : ft == 2 ? b : ft == 3 ? (a + b) >> 1 : paeth(a, b, c);
            row[i] = (uint8_t)(src[1 + i] + pred);
        }
    }
    for (size_t i = 0; i < (size_t)w * h; i++) memcpy(rgb + 3 * i, img + channels * i, 3);
    free(raw);
    free(img);
    return rgb;
fail:
    free(raw);
    free(rgb);
    free(img);
    return NULL;
}

int px_png_decode(const uint8_t *buf, size_t len, const char *name, uint8_t **rgb_out, int *w_out, int *h_out,
                  px_png_kv **text, int *ntext)
{
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    *rgb_out = NULL;
    if (text) {
        *text = NULL;
        *ntext = 0;
    }
    if (len < 8 || memcmp(buf, sig, 8)) return px_fail("%s: not a PNG file (bad signature)", name);
    size_t pos = 8;
    uint32_t w = 0, h = 0;
    int channels = 0, seen_ihdr = 0, seen_iend = 0;
    buf_t z = {0};
    while (pos < len && !seen_iend) {
        if (len - pos < 12) goto truncated;
        uint32_t n = get_u32(buf + pos);
        const uint8_t *type = buf + pos + 4;
        if (n > 0x7fffffffu || n > len - pos - 12) goto truncated;
        const uint8_t *data = buf + pos + 8;
        uLong crc = crc32(crc32(0L, type, 4), data, n);
        if (crc != get_u32(data + n)) {
            free(z.p);
            return px_fail("%s: CRC mismatch in chunk '%.4s' at offset %zu", name, (const char *)type, pos);
        }
        if (!memcmp(type, "IHDR", 4)) {
            if (n != 13 || seen_ihdr) {
                free(z.p);
                return px_fail("%s: bad IHDR chunk", name);
            }
            seen_ihdr = 1;
            w = get_u32(data);
            h = get_u32(data + 4);
            if (w == 0 || h == 0 || w > (1u << 24) || h > (1u << 24)) {
                free(z.p);
                return px_fail("%s: IHDR: image size %ux%u out of range", name, w, h);
            }
            if (data[8] != 8 || (data[9] != 2 && data[9] != 6) || data[10] || data[11] || data[12]) {
                free(z.p);
                return px_fail("%s: IHDR: only 8-bit non-interlaced RGB/RGBA is supported "
                               "(depth %d, colour type %d, interlace %d)",
                               name, data[8], data[9], data[12]);
            }
            channels = data[9] == 2 ? 3 : 4;
        } else if (!memcmp(type, "IDAT", 4)) {
            if (!seen_ihdr) {
                free(z.p);
                return px_fail("%s: IDAT before IHDR", name);
            }
            buf_put(&z, data, n);
        } else if (!memcmp(type, "IEND", 4)) {
            seen_iend = 1;
        } else if (text && (!memcmp(type, "tEXt", 4) || !memcmp(type, "iTXt", 4))) {
            if (read_text_chunk(name, type, data, n, text, ntext)) {
                free(z.p);
                return -1;
            }
        } else if (!(type[0] & 0x20)) { // unknown critical chunk
            free(z.p);
            return px_fail("%s: unsupported critical chunk '%.4s'", name, (const char *)type);
        }
        pos += 12 + (size_t)n;
    }
    if (!seen_ihdr || !seen_iend) {
        free(z.p);
        return px_fail("%s: missing %s chunk", name, seen_ihdr ? "IEND" : "IHDR");
    }
    if (z.oom) return px_fail("%s: out of memory", name);

    uint8_t *rgb = inflate_image(name, &z, w, h, channels);
    free(z.p);
    if (!rgb) return -1;
    *rgb_out = rgb;
    *w_out = (int)w;
    *h_out = (int)h;
    return 0;
truncated:
    free(z.p);
    return px_fail("%s: truncated chunk at offset %zu", name, pos);
}

int px_png_read(const char *path, uint8_t **rgb, int *w, int *h, px_png_kv **text, int *ntext)
{
    FILE *f = fopen(path, "rb");
    if (!f) return px_fail("%s: cannot open: %s", path, strerror(errno));
    buf_t b = {0};
    uint8_t tmp[65536];
    size_t n;
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0) buf_put(&b, tmp, n);
    int err = ferror(f);
    fclose(f);
    if (err || b.oom) {
        free(b.p);
        return px_fail("%s: cannot read", path);
    }
    int r = px_png_decode(b.p ? b.p : (const uint8_t *)"", b.n, path, rgb, w, h, text, ntext);
    free(b.p);
    return r;
}
