/* The weight layer (see weights.h): checked lookups by state-dict name, use
 * tracking over the safetensors entries, and the unused-tensor report. */
#include "weights.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tensor/safetensors.h"

struct px_weights {
    px_st_set *st;            /* px_weights_open: owned */
    px_weights_lookup_fn get; /* px_weights_wrap: the caller's source */
    void *ctx;
    char *desc, *component;
    unsigned char **used;     /* per file of st, per entry: taken by a lookup */
    float **owned;            /* float32 copies handed out by px_weights_f32 */
    size_t nowned, capowned;
    size_t released;          /* bytes dropped by px_weights_release */
};

static char *dup_str(const char *s)
{
    char *d = px_malloc(strlen(s) + 1, "weights name");
    if (d) memcpy(d, s, strlen(s) + 1);
    return d;
}

static px_weights *weights_new(const char *desc, const char *component)
{
    px_weights *w = px_calloc(1, sizeof *w, "weights");
    if (!w) return NULL;
    w->desc = dup_str(desc);
    w->component = dup_str(component);
    if (!w->desc || !w->component) {
        px_weights_close(w);
        return NULL;
    }
    return w;
}

px_weights *px_weights_open(const char *dir, const char *base, const char *variant, const char *component)
{
    px_st_set *st = px_st_set_open(dir, base, variant);
    if (!st) return NULL;
    px_weights *w = weights_new(st->desc, component);
    if (!w) {
        px_st_set_close(st);
        return NULL;
    }
    w->st = st;
    w->used = px_calloc((size_t)st->nfiles, sizeof *w->used, "weights use marks");
    if (!w->used) goto fail;
    for (int i = 0; i < st->nfiles; i++)
        if (!(w->used[i] = px_calloc(st->files[i]->n ? st->files[i]->n : 1, 1, "weights use marks"))) goto fail;
    return w;
fail:
    px_weights_close(w);
    return NULL;
}

px_weights *px_weights_wrap(px_weights_lookup_fn get, void *ctx, const char *desc, const char *component)
{
    px_weights *w = weights_new(desc, component);
    if (!w) return NULL;
    w->get = get;
    w->ctx = ctx;
    return w;
}

void px_weights_close(px_weights *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->nowned; i++) free(w->owned[i]);
    free(w->owned);
    if (w->used)
        for (int i = 0; i < w->st->nfiles; i++) free(w->used[i]);
    free(w->used);
    px_st_set_close(w->st);
    free(w->desc);
    free(w->component);
    free(w);
}

const char *px_weights_desc(const px_weights *w) { return w->desc; }
const char *px_weights_component(const px_weights *w) { return w->component; }

/* The tensor called name, marked used when mark is set; NULL when absent. */
static const px_tensor *find(const px_weights *w, const char *name, int mark)
{
    if (!w->st) return w->get(w->ctx, name);
    for (int i = 0; i < w->st->nfiles; i++) {
        const px_st_file *f = w->st->files[i];
        const px_tensor *t = px_st_find(f, name);
        if (!t) continue;
        /* px_st_find returns &entries[k].t */
        const px_st_entry *e = (const px_st_entry *)(const void *)((const char *)t - offsetof(px_st_entry, t));
        if (mark) w->used[i][e - f->entries] = 1;
        return t;
    }
    return NULL;
}

int px_weights_has(const px_weights *w, const char *name) { return find(w, name, 0) != NULL; }

void px_weights_tied(px_weights *w, const char *name) { (void)find(w, name, 1); }

static const px_tensor *get_named(px_weights *w, int ndim, const int64_t *shape, const char *name)
{
    const px_tensor *t = find(w, name, 1);
    if (!t) {
        px_fail("%s: tensor '%s' is missing", w->desc, name);
        return NULL;
    }
    char what[400];
    snprintf(what, sizeof what, "%s: tensor '%s'", w->desc, name);
    if (t->dtype != PX_F32 && t->dtype != PX_F16 && t->dtype != PX_BF16) {
        px_fail("%s has dtype %s (F32, F16 or BF16 expected)", what, px_dtype_name(t->dtype));
        return NULL;
    }
    if (px_check_shape(t, what, ndim, shape)) return NULL;
    if (!px_is_contiguous(t)) {
        px_fail("%s is not contiguous", what);
        return NULL;
    }
    return t;
}

const px_tensor *px_weights_get(px_weights *w, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return get_named(w, ndim, shape, name);
}

/* float32 values of a checked tensor: the mapping itself, or a copy owned by w */
static const float *as_f32(px_weights *w, const px_tensor *t, const char *name)
{
    if (!t) return NULL;
    if (t->dtype == PX_F32) return (const float *)t->data;
    if (w->nowned == w->capowned) {
        size_t cap = w->capowned ? 2 * w->capowned : 64;
        float **o = realloc(w->owned, cap * sizeof *o);
        if (!o) {
            px_fail("out of memory (%s: float32 weights)", w->desc);
            return NULL;
        }
        w->owned = o;
        w->capowned = cap;
    }
    float *v = px_tensor_to_f32_alloc(t, name);
    if (v) w->owned[w->nowned++] = v;
    return v;
}

const float *px_weights_f32(px_weights *w, int ndim, const int64_t *shape, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return as_f32(w, get_named(w, ndim, shape, name), name);
}

int px_weights_check_unused(const px_weights *w)
{
    if (!w->st) return 0;
    size_t n = 0;
    for (int i = 0; i < w->st->nfiles; i++)
        for (size_t k = 0; k < w->st->files[i]->n; k++) n += !w->used[i][k];
    if (!n) return 0;
    /* the first few names; the count says how many there are */
    char list[1024] = "";
    size_t len = 0, shown = 0;
    for (int i = 0; i < w->st->nfiles; i++)
        for (size_t k = 0; k < w->st->files[i]->n; k++) {
            if (w->used[i][k] || shown == 8) continue;
            int r = snprintf(list + len, sizeof list - len, "%s'%s'", shown ? ", " : "",
                             w->st->files[i]->entries[k].name);
            if (r < 0 || (size_t)r >= sizeof list - len) break;
            len += (size_t)r;
            shown++;
        }
    return px_fail("%s: %zu tensor%s not used by this configuration (does config.json match the "
                   "weights?): %s%s", w->desc, n, n == 1 ? " is" : "s are", list, n > shown ? ", ..." : "");
}

// ----------------------------------------------------------------------------
// streaming

void px_weights_release(px_weights *w, const px_tensor *t)
{
    const px_st_file *f = w->st ? px_st_set_file_of(w->st, t) : NULL;
    if (f) w->released += px_st_release(f, t);
}

void px_weights_prefetch(const px_weights *w, const px_tensor *t)
{
    const px_st_file *f = w->st ? px_st_set_file_of(w->st, t) : NULL;
    if (f) px_st_prefetch(f, t);
}

int px_weights_read(const px_weights *w, const px_tensor *t, void *dst)
{
    const px_st_file *f = w->st ? px_st_set_file_of(w->st, t) : NULL;
    if (f) return px_st_read(f, t, dst);
    memcpy(dst, t->data, (size_t)px_numel(t) * px_dtype_size(t->dtype));
    return 0;
}

size_t px_weights_released_bytes(const px_weights *w) { return w->released; }
