/* A small, strict-but-Pythonic JSON parser (see json.h). Recursive descent with
 * a depth limit; numbers keep their exact integer value when they have one. */
#include "json.h"
#include "error.h"
#include "lfs.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PX_JSON_MAX_DEPTH 64

typedef struct {
    const char *p, *end, *start;
    const char *source;
    int depth;
} jparser;

static int jfail(jparser *ps, const char *what)
{
    /* report line and column of the failure point */
    int line = 1, col = 1;
    for (const char *q = ps->start; q < ps->p && q < ps->end; q++) {
        if (*q == '\n') { line++; col = 1; } else col++;
    }
    return px_fail("%s: invalid JSON at line %d, column %d: %s", ps->source, line, col, what);
}

static void skip_ws(jparser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

static int match(jparser *ps, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, lit, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static px_json *jnew(px_json_type t)
{
    px_json *j = px_calloc(1, sizeof *j, "JSON value");
    if (j) j->type = t;
    return j;
}

void px_json_free(px_json *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->count; i++) {
        px_json_free(j->items[i]);
        if (j->keys) free(j->keys[i]);
    }
    free(j->items);
    free(j->keys);
    free(j->string);
    free(j);
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(jparser *ps, unsigned *out)
{
    if (ps->end - ps->p < 4) return jfail(ps, "truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(ps->p[i]);
        if (h < 0) return jfail(ps, "bad hex digit in \\u escape");
        v = v * 16 + (unsigned)h;
    }
    ps->p += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | (cp >> 6)); o[1] = (char)(0x80 | (cp & 63)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12)); o[1] = (char)(0x80 | ((cp >> 6) & 63));
        o[2] = (char)(0x80 | (cp & 63)); return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18)); o[1] = (char)(0x80 | ((cp >> 12) & 63));
    o[2] = (char)(0x80 | ((cp >> 6) & 63)); o[3] = (char)(0x80 | (cp & 63)); return 4;
}

/* Parses a string starting at the opening quote. The decoded text is never
 * longer than the escaped text, so one allocation of the raw length suffices. */
static int parse_string(jparser *ps, char **out, size_t *out_len)
{
    ps->p++; /* opening quote */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') {
        if (*q == '\\') q++;
        q++;
    }
    if (q >= ps->end) return jfail(ps, "unterminated string");
    char *buf = px_malloc((size_t)(q - ps->p) + 1, "JSON string");
    if (!buf) return -1;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) { free(buf); return jfail(ps, "control character in string"); }
        if (c != '\\') { buf[n++] = (char)c; ps->p++; continue; }
        ps->p++;
        if (ps->p >= ps->end) { free(buf); return jfail(ps, "truncated escape"); }
        char e = *ps->p++;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u': {
            unsigned cp;
            if (read_hex4(ps, &cp)) { free(buf); return -1; }
            if (cp >= 0xD800 && cp < 0xDC00) {
                unsigned lo;
                if (ps->end - ps->p >= 6 && ps->p[0] == '\\' && ps->p[1] == 'u') {
                    ps->p += 2;
                    if (read_hex4(ps, &lo)) { free(buf); return -1; }
                    if (lo >= 0xDC00 && lo < 0xE000)
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    else { free(buf); return jfail(ps, "unpaired surrogate in \\u escape"); }
                } else { free(buf); return jfail(ps, "unpaired surrogate in \\u escape"); }
            } else if (cp >= 0xDC00 && cp < 0xE000) {
                free(buf);
                return jfail(ps, "unpaired surrogate in \\u escape");
            }
            n += put_utf8(buf + n, cp);
            break;
        }
        default: free(buf); return jfail(ps, "unknown escape");
        }
    }
    ps->p++; /* closing quote */
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return 0;
}

static px_json *parse_value(jparser *ps);

static int push(px_json *j, px_json *v, char *key)
{
    if ((j->count & (j->count - 1)) == 0) { /* grow at powers of two */
        size_t cap = j->count ? j->count * 2 : 1;
        px_json **it = realloc(j->items, cap * sizeof *it);
        if (!it) return px_fail("out of memory (JSON array)");
        j->items = it;
        if (j->type == PX_JSON_OBJECT) {
            char **k = realloc(j->keys, cap * sizeof *k);
            if (!k) return px_fail("out of memory (JSON object)");
            j->keys = k;
        }
    }
    j->items[j->count] = v;
    if (j->type == PX_JSON_OBJECT) j->keys[j->count] = key;
    j->count++;
    return 0;
}

static px_json *parse_number(jparser *ps)
{
    const char *s = ps->p;
    int neg = 0, frac = 0;
    if (ps->p < ps->end && *ps->p == '-') { neg = 1; ps->p++; }
    if (match(ps, "Infinity")) {
        px_json *j = jnew(PX_JSON_NUMBER);
        if (j) j->number = neg ? -INFINITY : INFINITY;
        return j;
    }
    const char *digits = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    if (ps->p == digits) { jfail(ps, "expected a digit"); return NULL; }
    if (*digits == '0' && ps->p - digits > 1) { jfail(ps, "leading zero in number"); return NULL; }
    if (ps->p < ps->end && *ps->p == '.') {
        frac = 1; ps->p++;
        const char *d = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        if (ps->p == d) { jfail(ps, "expected a digit after '.'"); return NULL; }
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        frac = 1; ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        const char *d = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        if (ps->p == d) { jfail(ps, "expected a digit in exponent"); return NULL; }
    }
    char tmp[512];
    size_t len = (size_t)(ps->p - s);
    if (len >= sizeof tmp) { jfail(ps, "number literal too long"); return NULL; }
    memcpy(tmp, s, len);
    tmp[len] = 0;
    px_json *j = jnew(PX_JSON_NUMBER);
    if (!j) return NULL;
    j->number = strtod(tmp, NULL);
    if (!frac) {
        j->is_integer = 1;
        errno = 0;
        if (neg) {
            long long v = strtoll(tmp, NULL, 10);
            if (errno == ERANGE) j->int_overflow = 1;
            j->integer = v;
        } else {
            unsigned long long u = strtoull(tmp, NULL, 10);
            if (errno == ERANGE) { j->int_overflow = 1; }
            else {
                j->uinteger = u;
                if (u > (unsigned long long)INT64_MAX) j->int_overflow = 1;
                else j->integer = (int64_t)u;
            }
        }
    }
    return j;
}

static px_json *parse_value(jparser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end) { jfail(ps, "unexpected end of input"); return NULL; }
    char c = *ps->p;
    if (c == '{' || c == '[') {
        if (++ps->depth > PX_JSON_MAX_DEPTH) { jfail(ps, "nesting too deep"); return NULL; }
        int obj = c == '{';
        char close = obj ? '}' : ']';
        px_json *j = jnew(obj ? PX_JSON_OBJECT : PX_JSON_ARRAY);
        if (!j) return NULL;
        ps->p++;
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == close) { ps->p++; ps->depth--; return j; }
        for (;;) {
            char *key = NULL;
            size_t klen;
            skip_ws(ps);
            if (obj) {
                if (ps->p >= ps->end || *ps->p != '"') { jfail(ps, "expected a string key"); goto bad; }
                if (parse_string(ps, &key, &klen)) goto bad;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') { free(key); jfail(ps, "expected ':'"); goto bad; }
                ps->p++;
            }
            px_json *v = parse_value(ps);
            if (!v) { free(key); goto bad; }
            if (push(j, v, key)) { free(key); px_json_free(v); goto bad; }
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == close) { ps->p++; break; }
            jfail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
            goto bad;
        }
        ps->depth--;
        return j;
    bad:
        px_json_free(j);
        return NULL;
    }
    if (c == '"') {
        px_json *j = jnew(PX_JSON_STRING);
        if (!j) return NULL;
        if (parse_string(ps, &j->string, &j->len)) { px_json_free(j); return NULL; }
        return j;
    }
    if (match(ps, "true") || match(ps, "false")) {
        px_json *j = jnew(PX_JSON_BOOL);
        if (j) j->boolean = ps->p[-1] == 'e' && ps->p[-2] == 'u';
        return j;
    }
    if (match(ps, "null")) return jnew(PX_JSON_NULL);
    if (match(ps, "NaN")) {
        px_json *j = jnew(PX_JSON_NUMBER);
        if (j) j->number = NAN;
        return j;
    }
    if (c == '-' || (c >= '0' && c <= '9') || c == 'I') return parse_number(ps);
    jfail(ps, "unexpected character");
    return NULL;
}

px_json *px_json_parse(const char *text, size_t len, const char *source)
{
    jparser ps = { text, text + len, text, source ? source : "<json>", 0 };
    /* skip a UTF-8 byte order mark */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) ps.p += 3;
    px_json *j = parse_value(&ps);
    if (!j) {
        /* px_malloc's "out of memory (N bytes for JSON value)" does not know the file */
        if (strncmp(px_last_error(), "out of memory", 13) == 0) px_fail_ctx("%s", ps.source);
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        jfail(&ps, "trailing characters after the value");
        px_json_free(j);
        return NULL;
    }
    return j;
}

px_json *px_json_load_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { px_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); px_fail("%s: cannot seek", path); return NULL; }
    long n = ftell(f);
    if (n < 0 || n > (64L << 20)) {
        fclose(f);
        px_fail("%s: %ld bytes, larger than the 64 MB pixart reads as a JSON file", path, n);
        return NULL;
    }
    rewind(f);
    char *buf = px_malloc((size_t)n + 1, path);
    if (!buf) { fclose(f); return NULL; }
    size_t got = fread(buf, 1, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) { free(buf); px_fail("%s: short read", path); return NULL; }
    buf[n] = 0;
    if (px_is_lfs_pointer(buf, (size_t)n)) {
        free(buf);
        px_fail("%s: %s", path, PX_LFS_MESSAGE);
        return NULL;
    }
    px_json *j = px_json_parse(buf, (size_t)n, path);
    free(buf);
    return j;
}

const px_json *px_json_get(const px_json *obj, const char *key)
{
    if (!obj || obj->type != PX_JSON_OBJECT) return NULL;
    for (size_t i = obj->count; i-- > 0;)
        if (strcmp(obj->keys[i], key) == 0) return obj->items[i];
    return NULL;
}

static const char *type_name(px_json_type t)
{
    static const char *names[] = { "null", "boolean", "number", "string", "array", "object" };
    return names[t];
}

static const px_json *opt_member(const px_json *obj, const char *key, px_json_type want,
                                 const char *ctx, int *rc)
{
    const px_json *v = px_json_get(obj, key);
    if (!v || v->type == PX_JSON_NULL) { *rc = 1; return NULL; }
    if (v->type != want) {
        *rc = px_fail("%s: field '%s' should be a %s, not a %s", ctx, key, type_name(want),
                      type_name(v->type));
        return NULL;
    }
    *rc = 0;
    return v;
}

int px_json_opt_number(const px_json *obj, const char *key, double *out, const char *ctx)
{
    int rc;
    const px_json *v = opt_member(obj, key, PX_JSON_NUMBER, ctx, &rc);
    if (v) *out = v->number;
    return rc;
}

int px_json_opt_int(const px_json *obj, const char *key, int64_t *out, const char *ctx)
{
    int rc;
    const px_json *v = opt_member(obj, key, PX_JSON_NUMBER, ctx, &rc);
    if (!v) return rc;
    if (!v->is_integer || v->int_overflow)
        return px_fail("%s: field '%s' should be an integer (got %g)", ctx, key, v->number);
    *out = v->integer;
    return 0;
}

int px_json_opt_bool(const px_json *obj, const char *key, int *out, const char *ctx)
{
    int rc;
    const px_json *v = opt_member(obj, key, PX_JSON_BOOL, ctx, &rc);
    if (v) *out = v->boolean;
    return rc;
}

int px_json_opt_string(const px_json *obj, const char *key, const char **out, const char *ctx)
{
    int rc;
    const px_json *v = opt_member(obj, key, PX_JSON_STRING, ctx, &rc);
    if (v) *out = v->string;
    return rc;
}

#define REQ(fn, T)                                                                \
    int px_json_req_##fn(const px_json *obj, const char *key, T out, const char *ctx) \
    {                                                                             \
        int rc = px_json_opt_##fn(obj, key, out, ctx);                            \
        if (rc == 1) return px_fail("%s: required field '%s' is missing", ctx, key); \
        return rc;                                                                \
    }
REQ(number, double *)
REQ(int, int64_t *)
REQ(string, const char **)
