/* safetensors I/O (see safetensors.h). */
#include "safetensors.h"
#include "error.h"
#include "lfs.h"
#include "outfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = px_malloc(n, "string");
    if (p) memcpy(p, s, n);
    return p;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const px_st_entry *)a)->name, ((const px_st_entry *)b)->name);
}

typedef struct { uint64_t begin, end; size_t idx; } span;

static int cmp_span(const void *a, const void *b)
{
    const span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

void px_st_close(px_st_file *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->n; i++) {
        free(f->entries[i].name);
        free(f->entries[i].copy);
    }
    free(f->entries);
    px_json_free(f->header); /* and with it metadata */
    if (f->map && f->map != MAP_FAILED) munmap(f->map, f->size);
    free(f->path);
    free(f);
}

/* Validates one header entry and fills e. data_size = bytes after the header. */
static int parse_entry(px_st_file *f, const char *name, const px_json *v, const uint8_t *data,
                       uint64_t data_size, px_st_entry *e, span *sp)
{
    const char *path = f->path;
    if (v->type != PX_JSON_OBJECT)
        return px_fail("%s: tensor '%s': header entry is not an object", path, name);
    const px_json *dt = px_json_get(v, "dtype"), *shp = px_json_get(v, "shape"),
                  *off = px_json_get(v, "data_offsets");
    if (!dt || dt->type != PX_JSON_STRING)
        return px_fail("%s: tensor '%s': missing or non-string 'dtype'", path, name);
    px_dtype dtype;
    if (px_dtype_from_name(dt->string, &dtype))
        return px_fail("%s: tensor '%s': unknown dtype '%s'", path, name, dt->string);
    if (!shp || shp->type != PX_JSON_ARRAY)
        return px_fail("%s: tensor '%s': missing or non-array 'shape'", path, name);
    if (shp->count > PX_MAX_DIMS)
        return px_fail("%s: tensor '%s': %zu dimensions (at most %d supported)", path, name,
                       shp->count, PX_MAX_DIMS);
    int64_t shape[PX_MAX_DIMS];
    for (size_t i = 0; i < shp->count; i++) {
        const px_json *d = shp->items[i];
        if (d->type != PX_JSON_NUMBER || !d->is_integer || d->int_overflow || d->integer < 0)
            return px_fail("%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name, i);
        shape[i] = d->integer;
    }
    /* the strides too must fit: [0, 2, 2^62] has no elements but overflowed them */
    uint64_t nbytes;
    if (px_shape_check((int)shp->count, shape, px_dtype_size(dtype), &nbytes))
        return px_fail_ctx("%s: tensor '%s'", path, name);
    if (!off || off->type != PX_JSON_ARRAY || off->count != 2)
        return px_fail("%s: tensor '%s': 'data_offsets' must be [begin, end]", path, name);
    uint64_t be[2];
    for (int i = 0; i < 2; i++) {
        const px_json *d = off->items[i];
        if (d->type != PX_JSON_NUMBER || !d->is_integer || d->int_overflow || d->integer < 0)
            return px_fail("%s: tensor '%s': data_offsets[%d] is not a non-negative integer", path,
                           name, i);
        be[i] = (uint64_t)d->integer;
    }
    if (be[0] > be[1])
        return px_fail("%s: tensor '%s': data_offsets begin %llu > end %llu", path, name,
                       (unsigned long long)be[0], (unsigned long long)be[1]);
    if (be[1] > data_size)
        return px_fail("%s: tensor '%s': data_offsets end %llu is past the end of the data (%llu bytes)",
                       path, name, (unsigned long long)be[1], (unsigned long long)data_size);
    if (be[1] - be[0] != nbytes)
        return px_fail("%s: tensor '%s': data_offsets span %llu bytes but shape and dtype need %llu",
                       path, name, (unsigned long long)(be[1] - be[0]), (unsigned long long)nbytes);
    e->name = xstrdup(name);
    if (!e->name) return -1;
    void *p = (void *)(data + be[0]);
    size_t esz = px_dtype_size(dtype);
    if (((uintptr_t)p % esz) != 0 && nbytes > 0) { /* misaligned: keep an aligned copy */
        e->copy = px_malloc((size_t)nbytes, name);
        if (!e->copy) return -1;
        memcpy(e->copy, p, (size_t)nbytes);
        p = e->copy;
    }
    e->t = px_tensor_view(dtype, p, (int)shp->count, shape);
    sp->begin = be[0];
    sp->end = be[1];
    return 0;
}

px_st_file *px_st_open(const char *path)
{
    px_st_file *f = px_calloc(1, sizeof *f, "safetensors file");
    if (!f) return NULL;
    f->path = xstrdup(path);
    if (!f->path) { free(f); return NULL; }
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        px_fail("%s: cannot open: %s", path, strerror(errno));
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        px_fail("%s: not a regular file", path);
        goto fail;
    }
    f->size = (size_t)st.st_size;
    if (f->size < 8) {
        close(fd);
        px_fail("%s: file is %zu bytes, too short for a safetensors header", path, f->size);
        goto fail;
    }
    f->map = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        px_fail("%s: mmap failed: %s", path, strerror(errno));
        goto fail;
    }
    const uint8_t *b = f->map;
    if (px_is_lfs_pointer(b, f->size)) {
        px_fail("%s: %s", path, PX_LFS_MESSAGE);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > f->size - 8) {
        px_fail("%s: header claims %llu bytes but the file has only %zu after the length field", path,
                (unsigned long long)hlen, f->size - 8);
        goto fail;
    }
    if (hlen > (100u << 20)) {
        px_fail("%s: header of %llu bytes is larger than the 100 MB limit", path, (unsigned long long)hlen);
        goto fail;
    }
    /* a header holds tensor entries (arrays: a shape and two offsets) and a
     * string-to-string "__metadata__" (the format's HashMap<String, String>):
     * anything else is refused while parsing, before it costs memory */
    static const px_json_limits lim = { .max_array_items = 64, .string_map_member = "__metadata__" };
    px_json *h = px_json_parse_limits((const char *)b + 8, (size_t)hlen, path, &lim);
    if (!h) goto fail;
    f->header = h;
    if (h->type != PX_JSON_OBJECT) {
        px_fail("%s: header is not a JSON object", path);
        goto fail;
    }
    const uint8_t *data = b + 8 + hlen;
    uint64_t data_size = f->size - 8 - hlen;
    f->entries = px_calloc(h->count ? h->count : 1, sizeof *f->entries, "safetensors entries");
    span *spans = px_calloc(h->count ? h->count : 1, sizeof *spans, "safetensors spans");
    if (!f->entries || !spans) {
        free(spans);
        goto fail;
    }
    for (size_t i = 0; i < h->count; i++) {
        if (strcmp(h->keys[i], "__metadata__") == 0) {
            if (h->items[i]->type != PX_JSON_OBJECT) {
                px_fail("%s: __metadata__ is not an object", path);
                goto fail_h;
            }
            f->metadata = h->items[i]; /* the last one, as Python's json keeps it */
            continue;
        }
        if (parse_entry(f, h->keys[i], h->items[i], data, data_size, &f->entries[f->n], &spans[f->n]))
            goto fail_h;
        spans[f->n].idx = f->n;
        f->n++;
    }
    /* no two tensors may share bytes. Empty tensors cannot overlap anything
     * and are left out: comparing neighbours only, an empty one between two
     * overlapping ones ([0,10], [3,3], [5,12]) hid the overlap. Sorted by
     * begin, each span is compared with the furthest end seen so far. */
    size_t ns = 0;
    for (size_t i = 0; i < f->n; i++)
        if (spans[i].begin != spans[i].end) spans[ns++] = spans[i];
    qsort(spans, ns, sizeof *spans, cmp_span);
    for (size_t i = 1, far = 0; i < ns; i++) {
        if (spans[i].begin < spans[far].end) {
            px_fail("%s: tensors '%s' and '%s' overlap in the data block", path,
                    f->entries[spans[far].idx].name, f->entries[spans[i].idx].name);
            goto fail_h;
        }
        if (spans[i].end > spans[far].end) far = i;
    }
    qsort(f->entries, f->n, sizeof *f->entries, cmp_entry);
    for (size_t i = 1; i < f->n; i++)
        if (strcmp(f->entries[i].name, f->entries[i - 1].name) == 0) {
            px_fail("%s: tensor '%s' appears twice in the header", path, f->entries[i].name);
            goto fail_h;
        }
    free(spans);
    return f;
fail_h:
    free(spans);
fail:
    px_st_close(f);
    return NULL;
}

const px_tensor *px_st_find(const px_st_file *f, const char *name)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(f->entries[mid].name, name);
        if (c == 0) return &f->entries[mid].t;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* ---- sets ------------------------------------------------------------- */

void px_st_set_close(px_st_set *s)
{
    if (!s) return;
    for (int i = 0; i < s->nfiles; i++) px_st_close(s->files[i]);
    free(s->files);
    free(s->desc);
    free(s);
}

px_st_set *px_st_set_open_file(const char *path)
{
    px_st_set *s = px_calloc(1, sizeof *s, "safetensors set");
    if (!s) return NULL;
    s->desc = xstrdup(path);
    s->files = px_calloc(1, sizeof *s->files, "safetensors set");
    if (!s->desc || !s->files) { px_st_set_close(s); return NULL; }
    s->files[0] = px_st_open(path);
    if (!s->files[0]) { px_st_set_close(s); return NULL; }
    s->nfiles = 1;
    return s;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

px_st_set *px_st_set_open(const char *dir, const char *base, const char *variant)
{
    char path[PATH_MAX], index[PATH_MAX];
    if (variant && *variant) {
        snprintf(path, sizeof path, "%s/%s.%s.safetensors", dir, base, variant);
        snprintf(index, sizeof index, "%s/%s.safetensors.index.%s.json", dir, base, variant);
    } else {
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, base);
        snprintf(index, sizeof index, "%s/%s.safetensors.index.json", dir, base);
    }
    if (file_exists(path)) return px_st_set_open_file(path);
    if (!file_exists(index)) {
        px_fail("%s: no %s nor %s", dir, path, index);
        return NULL;
    }
    px_json *j = px_json_load_file_max(index, PX_JSON_INDEX_MAX);
    if (!j) return NULL;
    const px_json *wm = px_json_get(j, "weight_map");
    if (!wm || wm->type != PX_JSON_OBJECT || wm->count == 0) {
        px_json_free(j);
        px_fail("%s: missing or empty 'weight_map' object", index);
        return NULL;
    }
    px_st_set *s = px_calloc(1, sizeof *s, "safetensors set");
    if (!s) { px_json_free(j); return NULL; }
    s->desc = xstrdup(index);
    s->files = px_calloc(wm->count, sizeof *s->files, "safetensors shards");
    char **names = px_calloc(wm->count, sizeof *names, "safetensors shard names");
    if (!s->desc || !s->files || !names) goto fail;
    for (size_t i = 0; i < wm->count; i++) {
        const px_json *v = wm->items[i];
        if (v->type != PX_JSON_STRING || strchr(v->string, '/') || strcmp(v->string, "..") == 0 ||
            v->len != strlen(v->string) || v->len == 0) {
            px_fail("%s: weight_map['%s'] is not a plain file name", index, wm->keys[i]);
            goto fail;
        }
        int k;
        for (k = 0; k < s->nfiles; k++)
            if (strcmp(names[k], v->string) == 0) break;
        if (k == s->nfiles) {
            snprintf(path, sizeof path, "%s/%s", dir, v->string);
            names[k] = v->string;
            s->files[k] = px_st_open(path);
            if (!s->files[k]) { px_fail_ctx("%s", index); goto fail; }
            s->nfiles++;
        }
        if (!px_st_find(s->files[k], wm->keys[i])) {
            px_fail("%s: weight_map says tensor '%s' is in %s, but it is not there", index,
                    wm->keys[i], v->string);
            goto fail;
        }
    }
    free(names);
    px_json_free(j);
    return s;
fail:
    free(names);
    px_json_free(j);
    px_st_set_close(s);
    return NULL;
}

const px_tensor *px_st_set_find(const px_st_set *s, const char *name)
{
    for (int i = 0; i < s->nfiles; i++) {
        const px_tensor *t = px_st_find(s->files[i], name);
        if (t) return t;
    }
    return NULL;
}

/* ---- writer ----------------------------------------------------------- */

typedef struct {
    char *name;
    px_dtype dtype;
    int ndim;
    int64_t shape[PX_MAX_DIMS];
    void *data;
    size_t nbytes;
} wentry;

struct px_st_writer {
    wentry *e;
    size_t n, cap;
    char **meta; /* key, value pairs */
    size_t nmeta;
};

px_st_writer *px_st_writer_new(void) { return px_calloc(1, sizeof(px_st_writer), "safetensors writer"); }

void px_st_writer_free(px_st_writer *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    for (size_t i = 0; i < 2 * w->nmeta; i++) free(w->meta[i]);
    free(w->meta);
    free(w->e);
    free(w);
}

static wentry *writer_slot(px_st_writer *w, const char *name, px_dtype dtype, int ndim,
                           const int64_t *shape)
{
    if (ndim < 0 || ndim > PX_MAX_DIMS) {
        px_fail("safetensors writer: tensor '%s' has %d dimensions", name, ndim);
        return NULL;
    }
    for (size_t i = 0; i < w->n; i++)
        if (strcmp(w->e[i].name, name) == 0) {
            px_fail("safetensors writer: tensor '%s' added twice", name);
            return NULL;
        }
    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 16;
        wentry *e = realloc(w->e, cap * sizeof *e);
        if (!e) { px_fail("out of memory (safetensors writer)"); return NULL; }
        w->e = e;
        w->cap = cap;
    }
    wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = xstrdup(name);
    if (!e->name) return NULL;
    e->dtype = dtype;
    e->ndim = ndim;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        numel *= (size_t)shape[i];
    }
    e->nbytes = numel * px_dtype_size(dtype);
    e->data = px_malloc(e->nbytes, name);
    if (!e->data) { free(e->name); return NULL; }
    w->n++;
    return e;
}

int px_st_writer_add(px_st_writer *w, const char *name, px_dtype dtype, int ndim, const int64_t *shape,
                     const void *data)
{
    wentry *e = writer_slot(w, name, dtype, ndim, shape);
    if (!e) return -1;
    memcpy(e->data, data, e->nbytes);
    return 0;
}

int px_st_writer_add_f32_as(px_st_writer *w, const char *name, px_dtype dtype, int ndim,
                            const int64_t *shape, const float *data)
{
    wentry *e = writer_slot(w, name, dtype, ndim, shape);
    if (!e) return -1;
    px_convert_from_f32(e->data, dtype, data, e->nbytes / px_dtype_size(dtype));
    return 0;
}

int px_st_writer_set_metadata(px_st_writer *w, const char *key, const char *value)
{
    char **m = realloc(w->meta, (w->nmeta + 1) * 2 * sizeof *m);
    if (!m) return px_fail("out of memory (safetensors metadata)");
    w->meta = m;
    m[2 * w->nmeta] = xstrdup(key);
    m[2 * w->nmeta + 1] = xstrdup(value);
    if (!m[2 * w->nmeta] || !m[2 * w->nmeta + 1]) return -1;
    w->nmeta++;
    return 0;
}

/* JSON string literal of s into a growing buffer */
typedef struct { char *p; size_t n, cap; } sbuf;

static int sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return px_fail("out of memory (safetensors header)");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

static int sb_str(sbuf *b, const char *s)
{
    if (sb_put(b, "\"", 1)) return -1;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; if (sb_put(b, esc, 2)) return -1; }
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); if (sb_put(b, esc, 6)) return -1; }
        else if (sb_put(b, (const char *)&c, 1)) return -1;
    }
    return sb_put(b, "\"", 1);
}

static int cmp_wentry(const void *a, const void *b)
{
    /* like the Rust writer: larger dtypes first (keeps data aligned), then by name */
    const wentry *x = a, *y = b;
    size_t sx = px_dtype_size(x->dtype), sy = px_dtype_size(y->dtype);
    if (sx != sy) return sx > sy ? -1 : 1;
    return strcmp(x->name, y->name);
}

int px_st_writer_save(px_st_writer *w, const char *path)
{
    qsort(w->e, w->n, sizeof *w->e, cmp_wentry);
    sbuf h = { 0 };
    char num[64];
    int rc = sb_put(&h, "{", 1);
    if (w->nmeta) {
        rc |= sb_put(&h, "\"__metadata__\":{", 16);
        for (size_t i = 0; i < w->nmeta; i++) {
            if (i) rc |= sb_put(&h, ",", 1);
            rc |= sb_str(&h, w->meta[2 * i]);
            rc |= sb_put(&h, ":", 1);
            rc |= sb_str(&h, w->meta[2 * i + 1]);
        }
        rc |= sb_put(&h, "}", 1);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n && !rc; i++) {
        const wentry *e = &w->e[i];
        if (i || w->nmeta) rc |= sb_put(&h, ",", 1);
        rc |= sb_str(&h, e->name);
        int k = snprintf(num, sizeof num, ":{\"dtype\":\"%s\",\"shape\":[", px_dtype_name(e->dtype));
        rc |= sb_put(&h, num, (size_t)k);
        for (int d = 0; d < e->ndim; d++) {
            k = snprintf(num, sizeof num, d ? ",%lld" : "%lld", (long long)e->shape[d]);
            rc |= sb_put(&h, num, (size_t)k);
        }
        k = snprintf(num, sizeof num, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                     (unsigned long long)(off + e->nbytes));
        rc |= sb_put(&h, num, (size_t)k);
        off += e->nbytes;
    }
    rc |= sb_put(&h, "}", 1);
    while (!rc && h.n % 8) rc |= sb_put(&h, " ", 1);
    if (rc) { free(h.p); return -1; }

    uint8_t len8[8];
    uint64_t hl = h.n;
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)(hl >> (8 * i));
    if (w->n > (size_t)INT_MAX - 2) { free(h.p); return px_fail("%s: too many tensors", path); }
    px_span *parts = px_malloc((w->n + 2) * sizeof *parts, "safetensors writer");
    if (!parts) { free(h.p); return -1; }
    parts[0] = (px_span){ len8, 8 };
    parts[1] = (px_span){ h.p, h.n };
    for (size_t i = 0; i < w->n; i++) parts[2 + i] = (px_span){ w->e[i].data, w->e[i].nbytes };
    int r = px_out_write(path, parts, (int)w->n + 2);
    free(parts);
    free(h.p);
    return r;
}

/* ---- residency -------------------------------------------------------- */

const px_st_file *px_st_set_file_of(const px_st_set *s, const px_tensor *t)
{
    for (int i = 0; i < s->nfiles; i++) {
        const px_st_file *f = s->files[i];
        /* t is &entries[k].t for some k when it lies inside the array */
        if (f->n && (const char *)t >= (const char *)f->entries && (const char *)t < (const char *)(f->entries + f->n))
            return f;
    }
    return NULL;
}

/* The pages of f's mapping under t's bytes, rounded outward; 0 when t's data
 * is not in the mapping. */
static size_t page_range(const px_st_file *f, const px_tensor *t, char **start)
{
    const size_t nbytes = (size_t)px_numel(t) * px_dtype_size(t->dtype);
    const char *map = f->map, *p = t->data;
    if (!nbytes || !map || p < map || p + nbytes > map + f->size) return 0;
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const uintptr_t lo = (uintptr_t)p & ~(page - 1), hi = ((uintptr_t)p + nbytes + page - 1) & ~(page - 1);
    *start = (char *)lo;
    return (size_t)(hi - lo);
}

size_t px_st_release(const px_st_file *f, const px_tensor *t)
{
    char *start;
    size_t len = page_range(f, t, &start);
    /* a failure leaves the pages resident: slower to shrink, never wrong */
    return len && madvise(start, len, MADV_DONTNEED) == 0 ? len : 0;
}

void px_st_prefetch(const px_st_file *f, const px_tensor *t)
{
    char *start;
    size_t len = page_range(f, t, &start);
    if (len) (void)madvise(start, len, MADV_WILLNEED); /* a hint: failure only costs time */
}

int px_st_read(const px_st_file *f, const px_tensor *t, void *dst)
{
    const size_t nbytes = (size_t)px_numel(t) * px_dtype_size(t->dtype);
    const char *map = f->map, *p = t->data;
    if (!nbytes) return 0;
    if (!map || p < map || p + nbytes > map + f->size) { /* an aligned copy, not in the mapping */
        memcpy(dst, p, nbytes);
        return 0;
    }
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return px_fail("%s: cannot open: %s", f->path, strerror(errno));
    off_t off = (off_t)(p - map);
    size_t done = 0;
    while (done < nbytes) {
        ssize_t r = pread(fd, (char *)dst + done, nbytes - done, off + (off_t)done);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int err = r < 0 ? errno : EIO;
            close(fd);
            return px_fail("%s: read of %zu bytes at offset %lld failed: %s", f->path, nbytes, (long long)off,
                           strerror(err));
        }
        done += (size_t)r;
    }
    close(fd);
    return 0;
}
