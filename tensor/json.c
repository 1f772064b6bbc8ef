/* A small, strict-but-Pythonic JSON parser (see json.h). Recursive descent with
 * a depth limit; numbers keep their exact integer value when they have one.
 * Memory: every node, item array, key and string of a document comes from one
 * arena (chunks freed together by px_json_free); the children of the open
 * containers wait on one stack and are copied to exactly sized arrays when
 * their container closes (no realloc slack, no malloc header per value). */
#include "json.h"
#include "error.h"
#include "lfs.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PX_JSON_MAX_DEPTH 64

// ---------------------------------------------------------------------------
// The document arena

typedef struct jchunk {
    struct jchunk *next;
    size_t cap, used;
    max_align_t data[]; /* cap bytes */
} jchunk;

typedef struct {
    px_json root; /* first: px_json_free turns the root back into its document */
    jchunk *chunks;
} jdoc;

enum { CHUNK_MIN = 4096, CHUNK_MAX = 1 << 20 };

typedef struct {
    const char *p, *end, *start;
    const char *source;
    int depth;
    jdoc *doc;
    size_t next_chunk;            /* size of the next ordinary chunk (grows to CHUNK_MAX) */
    void **stack;                 /* children (objects: key, value) of the open containers */
    size_t nstack, capstack;
    const px_json_limits *lim;
    int map_depth;                /* depth of the object whose values must be strings (0: none) */
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

/* n bytes, 8-aligned, from the document's arena (NULL: out of memory). */
static void *jalloc(jparser *ps, size_t n)
{
    n = (n + 7) & ~(size_t)7;
    jchunk *c = ps->doc->chunks;
    if (c && c->cap - c->used >= n) {
        void *r = (char *)c->data + c->used;
        c->used += n;
        return r;
    }
    const int big = n > CHUNK_MAX / 4; /* its own chunk, behind the current one */
    size_t cap = big ? n : (ps->next_chunk > n ? ps->next_chunk : n);
    jchunk *nc = px_malloc(sizeof *nc + cap, "JSON document");
    if (!nc) return NULL;
    nc->cap = cap;
    nc->used = n;
    if (big && c) {
        nc->next = c->next;
        c->next = nc;
    } else {
        nc->next = c;
        ps->doc->chunks = nc;
        if (ps->next_chunk < CHUNK_MAX) ps->next_chunk *= 2;
    }
    return nc->data;
}

static px_json *jnew(jparser *ps, px_json_type t)
{
    px_json *j = jalloc(ps, sizeof *j);
    if (j) {
        memset(j, 0, sizeof *j);
        j->type = (unsigned char)t;
    }
    return j;
}

static void doc_free(jdoc *d)
{
    for (jchunk *c = d->chunks, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    free(d);
}

void px_json_free(px_json *j)
{
    if (j) doc_free((jdoc *)(void *)j); /* j is &doc->root, the first member */
}

static int stack_push(jparser *ps, void *v)
{
    if (ps->nstack == ps->capstack) {
        size_t cap = ps->capstack ? ps->capstack + ps->capstack / 2 : 256;
        void **s = realloc(ps->stack, cap * sizeof *s);
        if (!s) return px_fail("out of memory (%zu JSON values pending)", cap);
        ps->stack = s;
        ps->capstack = cap;
    }
    ps->stack[ps->nstack++] = v;
    return 0;
}

// ---------------------------------------------------------------------------
// Tokens

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

/* A \u escape (after the 'u'), a surrogate pair when there is one, as UTF-8 at o. */
static int read_u_escape(jparser *ps, char *o, size_t *n)
{
    unsigned cp;
    if (read_hex4(ps, &cp)) return -1;
    if (cp >= 0xD800 && cp < 0xDC00) {
        unsigned lo;
        if (ps->end - ps->p < 6 || ps->p[0] != '\\' || ps->p[1] != 'u')
            return jfail(ps, "unpaired surrogate in \\u escape");
        ps->p += 2;
        if (read_hex4(ps, &lo)) return -1;
        if (lo < 0xDC00 || lo >= 0xE000) return jfail(ps, "unpaired surrogate in \\u escape");
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    } else if (cp >= 0xDC00 && cp < 0xE000) {
        return jfail(ps, "unpaired surrogate in \\u escape");
    }
    *n += put_utf8(o + *n, cp);
    return 0;
}

/* Parses a string starting at the opening quote into the arena. The decoded
 * text is never longer than the escaped text, so the raw length suffices. */
static int parse_string(jparser *ps, char **out, size_t *out_len)
{
    ps->p++; /* opening quote */
    const char *q = ps->p;
    while (q < ps->end && *q != '"') {
        if (*q == '\\') q++;
        q++;
    }
    if (q >= ps->end) return jfail(ps, "unterminated string");
    char *buf = jalloc(ps, (size_t)(q - ps->p) + 1);
    if (!buf) return -1;
    size_t n = 0;
    while (ps->p < ps->end && *ps->p != '"') {
        unsigned char c = (unsigned char)*ps->p;
        if (c < 0x20) return jfail(ps, "control character in string");
        if (c != '\\') { buf[n++] = (char)c; ps->p++; continue; }
        ps->p++;
        if (ps->p >= ps->end) return jfail(ps, "truncated escape");
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
        case 'u':
            if (read_u_escape(ps, buf, &n)) return -1;
            break;
        default: return jfail(ps, "unknown escape");
        }
    }
    ps->p++; /* closing quote */
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return 0;
}

static int parse_number(jparser *ps, px_json *j)
{
    const char *s = ps->p;
    int neg = 0, frac = 0;
    j->type = PX_JSON_NUMBER;
    if (ps->p < ps->end && *ps->p == '-') { neg = 1; ps->p++; }
    if (match(ps, "Infinity")) {
        j->number = neg ? -INFINITY : INFINITY;
        return 0;
    }
    const char *digits = ps->p;
    while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
    if (ps->p == digits) return jfail(ps, "expected a digit");
    if (*digits == '0' && ps->p - digits > 1) return jfail(ps, "leading zero in number");
    if (ps->p < ps->end && *ps->p == '.') {
        frac = 1; ps->p++;
        const char *d = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        if (ps->p == d) return jfail(ps, "expected a digit after '.'");
    }
    if (ps->p < ps->end && (*ps->p == 'e' || *ps->p == 'E')) {
        frac = 1; ps->p++;
        if (ps->p < ps->end && (*ps->p == '+' || *ps->p == '-')) ps->p++;
        const char *d = ps->p;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') ps->p++;
        if (ps->p == d) return jfail(ps, "expected a digit in exponent");
    }
    char tmp[512];
    size_t len = (size_t)(ps->p - s);
    if (len >= sizeof tmp) return jfail(ps, "number literal too long");
    memcpy(tmp, s, len);
    tmp[len] = 0;
    j->number = strtod(tmp, NULL);
    if (!frac) {
        j->is_integer = 1;
        errno = 0;
        if (neg) {
            long long v = strtoll(tmp, NULL, 10);
            if (errno == ERANGE) j->int_overflow = 1;
            else j->integer = v;
        } else {
            unsigned long long u = strtoull(tmp, NULL, 10);
            if (errno == ERANGE) j->int_overflow = 1;
            else {
                j->uinteger = u; /* the same bits as integer when u <= INT64_MAX */
                if (u > (unsigned long long)INT64_MAX) j->int_overflow = 1;
            }
        }
    }
    return 0;
}

// ---------------------------------------------------------------------------
// Values

static int parse_value(jparser *ps, px_json *j);

/* The member `key` of the top-level object: must it be an object of strings? */
static int is_string_map(const jparser *ps, int obj, const char *key)
{
    return obj && ps->depth == 1 && ps->lim && ps->lim->string_map_member && key &&
           !strcmp(key, ps->lim->string_map_member);
}

/* One member value (obj) or item of the container being parsed at ps->depth. */
static int parse_member(jparser *ps, int obj, const char *key, size_t count)
{
    skip_ws(ps);
    const int map = is_string_map(ps, obj, key);
    if (map && (ps->p >= ps->end || *ps->p != '{')) {
        char msg[160];
        snprintf(msg, sizeof msg, "'%.64s' must be an object of strings", key);
        return jfail(ps, msg);
    }
    if (obj && ps->map_depth == ps->depth && (ps->p >= ps->end || *ps->p != '"')) {
        char msg[200];
        snprintf(msg, sizeof msg, "the values of '%.64s' must be strings ('%.64s' is not)", ps->lim->string_map_member,
                 key);
        return jfail(ps, msg);
    }
    if (!obj && ps->lim && ps->lim->max_array_items && count >= ps->lim->max_array_items) {
        char msg[96];
        snprintf(msg, sizeof msg, "an array of more than %zu items", ps->lim->max_array_items);
        return jfail(ps, msg);
    }
    px_json *v = jnew(ps, PX_JSON_NULL);
    if (!v || stack_push(ps, v)) return -1;
    if (map) ps->map_depth = ps->depth + 1;
    int rc = parse_value(ps, v);
    if (map) ps->map_depth = 0;
    return rc;
}

/* An array or object starting at its bracket, into j. */
static int parse_container(jparser *ps, px_json *j)
{
    if (++ps->depth > PX_JSON_MAX_DEPTH) return jfail(ps, "nesting too deep");
    const int obj = *ps->p == '{';
    const char close = obj ? '}' : ']';
    j->type = obj ? PX_JSON_OBJECT : PX_JSON_ARRAY;
    const size_t base = ps->nstack;
    size_t count = 0;
    ps->p++;
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == close) {
        ps->p++;
    } else {
        for (;; count++) {
            char *key = NULL;
            size_t klen;
            skip_ws(ps);
            if (obj) {
                if (ps->p >= ps->end || *ps->p != '"') return jfail(ps, "expected a string key");
                if (parse_string(ps, &key, &klen) || stack_push(ps, key)) return -1;
                skip_ws(ps);
                if (ps->p >= ps->end || *ps->p != ':') return jfail(ps, "expected ':'");
                ps->p++;
            }
            if (parse_member(ps, obj, key, count)) return -1;
            skip_ws(ps);
            if (ps->p < ps->end && *ps->p == ',') { ps->p++; continue; }
            if (ps->p < ps->end && *ps->p == close) { ps->p++; count++; break; }
            return jfail(ps, obj ? "expected ',' or '}'" : "expected ',' or ']'");
        }
    }
    /* the children, from the stack into exactly sized arrays */
    if (count) {
        j->items = jalloc(ps, count * sizeof *j->items);
        if (obj && j->items) j->keys = jalloc(ps, count * sizeof *j->keys);
        if (!j->items || (obj && !j->keys)) return -1;
        for (size_t i = 0; i < count; i++) {
            if (obj) {
                j->keys[i] = ps->stack[base + 2 * i];
                j->items[i] = ps->stack[base + 2 * i + 1];
            } else {
                j->items[i] = ps->stack[base + i];
            }
        }
    }
    j->count = count;
    ps->nstack = base;
    ps->depth--;
    return 0;
}

static int parse_value(jparser *ps, px_json *j)
{
    skip_ws(ps);
    if (ps->p >= ps->end) return jfail(ps, "unexpected end of input");
    char c = *ps->p;
    if (c == '{' || c == '[') return parse_container(ps, j);
    if (c == '"') {
        j->type = PX_JSON_STRING;
        return parse_string(ps, &j->string, &j->len);
    }
    if (match(ps, "true") || match(ps, "false")) {
        j->type = PX_JSON_BOOL;
        j->boolean = ps->p[-1] == 'e' && ps->p[-2] == 'u';
        return 0;
    }
    if (match(ps, "null")) {
        j->type = PX_JSON_NULL;
        return 0;
    }
    if (match(ps, "NaN")) {
        j->type = PX_JSON_NUMBER;
        j->number = NAN;
        return 0;
    }
    if (c == '-' || (c >= '0' && c <= '9') || c == 'I') return parse_number(ps, j);
    return jfail(ps, "unexpected character");
}

px_json *px_json_parse_limits(const char *text, size_t len, const char *source, const px_json_limits *lim)
{
    jparser ps = { .p = text, .end = text + len, .start = text, .source = source ? source : "<json>",
                   .next_chunk = CHUNK_MIN, .lim = lim };
    ps.doc = px_calloc(1, sizeof *ps.doc, "JSON document");
    if (!ps.doc) return NULL;
    /* skip a UTF-8 byte order mark */
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) ps.p += 3;
    int rc = parse_value(&ps, &ps.doc->root);
    free(ps.stack);
    if (rc) {
        doc_free(ps.doc);
        /* "out of memory (N bytes for JSON document)" does not know the file */
        if (strncmp(px_last_error(), "out of memory", 13) == 0) px_fail_ctx("%s", ps.source);
        return NULL;
    }
    skip_ws(&ps);
    if (ps.p != ps.end) {
        jfail(&ps, "trailing characters after the value");
        doc_free(ps.doc);
        return NULL;
    }
    return &ps.doc->root;
}

px_json *px_json_parse(const char *text, size_t len, const char *source)
{
    return px_json_parse_limits(text, len, source, NULL);
}

px_json *px_json_load_file(const char *path) { return px_json_load_file_max(path, PX_JSON_CONFIG_MAX); }

px_json *px_json_load_file_max(const char *path, size_t max_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f) { px_fail("%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); px_fail("%s: cannot seek", path); return NULL; }
    long n = ftell(f);
    if (n < 0 || (unsigned long)n > max_bytes) {
        fclose(f);
        px_fail("%s: %ld bytes; pixart reads at most %zu MB from this JSON file (real ones are far smaller)", path,
                n, max_bytes >> 20);
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
