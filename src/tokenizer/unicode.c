/* Python str.lower() / str.strip() on UTF-8 text (CPython 3.11 unicodeobject.c:
 * lower_ucs4 + handle_capital_sigma, and Py_UNICODE_ISSPACE), and PixArt's
 * `text.lower().strip()` prompt preprocessing. Tables: unicode_tables.c. */
#include "pixart/pixart.h" /* px_pixart_preprocess_n is exported */
#include "src/tokenizer/unicode.h"

#include <stdlib.h>
#include <string.h>

#include "tensor/error.h"

// ---------------------------------------------------------------------------
// per code point lookups (binary search over the generated sorted tables)

int px_uc_isspace(uint32_t cp)
{
    size_t lo = 0, hi = px_uc_space_table_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (px_uc_space_table[mid] == cp) return 1;
        if (px_uc_space_table[mid] < cp) lo = mid + 1; else hi = mid;
    }
    return 0;
}

int px_uc_case_class(uint32_t cp)
{
    size_t lo = 0, hi = px_uc_case_table_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const px_uc_range *r = &px_uc_case_table[mid];
        if (cp < r->first) hi = mid;
        else if (cp > r->last) lo = mid + 1;
        else return r->cls;
    }
    return PX_UC_OTHER;
}

int px_uc_tolower_full(uint32_t cp, uint32_t out[3])
{
    size_t lo = 0, hi = px_uc_lower_table_len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const px_uc_lower_entry *e = &px_uc_lower_table[mid];
        if (e->cp == cp) {
            for (int k = 0; k < e->n; k++) out[k] = e->out[k];
            return e->n;
        }
        if (e->cp < cp) lo = mid + 1; else hi = mid;
    }
    out[0] = cp;
    return 1;
}

// ---------------------------------------------------------------------------
// UTF-8

int px_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0) return 0;
    unsigned c0 = s[0];
    if (c0 < 0x80) { *cp = c0; return 1; }
    int n;
    uint32_t v, min;
    if (c0 >= 0xC2 && c0 <= 0xDF) { n = 2; v = c0 & 0x1F; min = 0x80; }
    else if (c0 >= 0xE0 && c0 <= 0xEF) { n = 3; v = c0 & 0x0F; min = 0x800; }
    else if (c0 >= 0xF0 && c0 <= 0xF4) { n = 4; v = c0 & 0x07; min = 0x10000; }
    else return 0;
    if (len < (size_t)n) return 0;
    for (int k = 1; k < n; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return n;
}

int px_utf8_encode(uint32_t cp, unsigned char out[4])
{
    if (cp < 0x80) { out[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (cp >> 18));
    out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

// ---------------------------------------------------------------------------
// lower()

/* A decoded character: a code point, or (for a byte that is not well-formed
 * UTF-8) the raw byte, flagged so it is copied through unchanged. */
#define PX_RAW_BYTE 0x80000000u

static int char_class(uint32_t c)
{
    return (c & PX_RAW_BYTE) ? PX_UC_OTHER : px_uc_case_class(c);
}

/* CPython handle_capital_sigma: U+03A3 at index i is final (-> U+03C2) when
 *   \p{cased} \p{case-ignorable}* U+03A3 !( \p{case-ignorable}* \p{cased} ). */
static uint32_t capital_sigma(const uint32_t *cs, size_t n, size_t i)
{
    size_t j = i;
    while (j > 0 && char_class(cs[j - 1]) == PX_UC_IGNORABLE) j--;
    int final = j > 0 && char_class(cs[j - 1]) == PX_UC_CASED;
    if (final && i + 1 < n) {
        size_t k = i + 1;
        while (k < n && char_class(cs[k]) == PX_UC_IGNORABLE) k++;
        final = k == n || char_class(cs[k]) != PX_UC_CASED;
    }
    return final ? 0x3C2 : 0x3C3;
}

int px_py_lower(const char *s, size_t len, char **out, size_t *out_len)
{
    const unsigned char *u = (const unsigned char *)s;
    uint32_t *cs = px_malloc((len + 1) * sizeof *cs, "lower(): decoded text");
    if (!cs) return -1;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int k = px_utf8_decode(u + i, len - i, &cp);
        if (k == 0) { cs[n++] = PX_RAW_BYTE | u[i]; i++; }
        else { cs[n++] = cp; i += (size_t)k; }
    }
    /* A lower-cased code point takes at most 3 code points of at most 4 bytes;
     * a raw byte stays one byte. */
    char *o = px_malloc(n * 12 + 1, "lower(): result");
    if (!o) { free(cs); return -1; }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t c = cs[i];
        if (c & PX_RAW_BYTE) { o[m++] = (char)(c & 0xFF); continue; }
        uint32_t mapped[3];
        int k;
        if (c == 0x3A3) { mapped[0] = capital_sigma(cs, n, i); k = 1; }
        else k = px_uc_tolower_full(c, mapped);
        for (int t = 0; t < k; t++) m += (size_t)px_utf8_encode(mapped[t], (unsigned char *)o + m);
    }
    o[m] = 0;
    free(cs);
    *out = o;
    if (out_len) *out_len = m;
    return 0;
}

// ---------------------------------------------------------------------------
// strip()

size_t px_py_lstrip_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        int k = px_utf8_decode(u + i, len - i, &cp);
        if (k == 0 || !px_uc_isspace(cp)) break;
        i += (size_t)k;
    }
    return i;
}

size_t px_py_rstrip_len(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t end = len;
    while (end > 0) {
        /* step back over at most 3 continuation bytes to a candidate start */
        size_t b = end - 1;
        while (b > 0 && end - b < 4 && (u[b] & 0xC0) == 0x80) b--;
        uint32_t cp;
        int k = px_utf8_decode(u + b, end - b, &cp);
        if (k == 0 || (size_t)k != end - b || !px_uc_isspace(cp)) break;
        end = b;
    }
    return end;
}

void px_py_strip(const char *s, size_t len, size_t *begin, size_t *out_len)
{
    size_t a = px_py_lstrip_len(s, len);
    size_t e = a + px_py_rstrip_len(s + a, len - a);
    *begin = a;
    *out_len = e - a;
}

// ---------------------------------------------------------------------------
// PixArt preprocessing

int px_pixart_preprocess_n(const char *text, size_t len, char **out, size_t *out_len)
{
    char *low;
    size_t n;
    if (px_py_lower(text, len, &low, &n) != 0)
        return px_fail_ctx("prompt preprocessing");
    size_t a, m;
    px_py_strip(low, n, &a, &m);
    memmove(low, low + a, m);
    low[m] = 0;
    *out = low;
    if (out_len) *out_len = m;
    return 0;
}

int px_pixart_preprocess(const char *text, char **out)
{
    return px_pixart_preprocess_n(text, strlen(text), out, NULL);
}
