/* Activation dumps (see dump.h). */
#include "dump.h"
#include "pixart/pixart.h" // the exported (PX_API) declarations
#include "error.h"
#include "safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key;
    float *data;
    int ndim;
    int64_t shape[PX_MAX_DIMS];
    size_t numel;
} dentry;

struct px_dump {
    dentry *e;
    size_t n, cap;
    int (*keep)(const char *key, void *user); /* NULL: keep everything */
    void *keep_user;
};

void px_dump_set_filter(px_dump *d, int (*keep)(const char *key, void *user), void *user)
{
    if (!d) return;
    d->keep = keep;
    d->keep_user = user;
}

px_dump *px_dump_new(void) { return px_calloc(1, sizeof(px_dump), "dump"); }

void px_dump_free(px_dump *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n; i++) {
        free(d->e[i].key);
        free(d->e[i].data);
    }
    free(d->e);
    free(d);
}

int px_dump_add_key(px_dump *d, const char *key, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    if (ndim > PX_MAX_DIMS) return px_fail("dump: '%s' has %d dimensions", key, ndim);
    if (d->n == d->cap) {
        size_t cap = d->cap ? 2 * d->cap : 64;
        dentry *e = realloc(d->e, cap * sizeof *e);
        if (!e) return px_fail("out of memory (dump)");
        d->e = e;
        d->cap = cap;
    }
    dentry *e = &d->e[d->n];
    if (d->keep && !d->keep(key, d->keep_user)) {
        /* a filtered key: kept as a name only (data NULL), so that call
         * indices still count it; invisible to get/count/key/save */
        e->key = px_malloc(strlen(key) + 1, "dump key");
        if (!e->key) return -1;
        memcpy(e->key, key, strlen(key) + 1);
        e->data = NULL;
        e->numel = 0;
        e->ndim = 0;
        d->n++;
        return 0;
    }
    e->numel = 1;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        e->shape[i] = shape[i];
        e->numel *= (size_t)shape[i];
    }
    size_t kl = strlen(key) + 1;
    e->key = px_malloc(kl, "dump key");
    e->data = px_malloc(e->numel * sizeof(float), key);
    if (!e->key || !e->data) {
        free(e->key);
        free(e->data);
        return -1;
    }
    memcpy(e->key, key, kl);
    memcpy(e->data, x, e->numel * sizeof(float));
    d->n++;
    return 0;
}

int px_dump_add(px_dump *d, const char *name, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    size_t nl = strlen(name);
    int k = 0;
    for (size_t i = 0; i < d->n; i++)
        if (strncmp(d->e[i].key, name, nl) == 0 && d->e[i].key[nl] == '#' &&
            strchr(d->e[i].key + nl + 1, '.') == NULL)
            k++;
    char key[512];
    snprintf(key, sizeof key, "%s#%d", name, k);
    return px_dump_add_key(d, key, x, ndim, shape);
}

int px_dump_add_in(px_dump *d, const char *name, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    size_t nl = strlen(name);
    int k = 0;
    for (size_t i = 0; i < d->n; i++) /* same count as px_dump_add */
        if (strncmp(d->e[i].key, name, nl) == 0 && d->e[i].key[nl] == '#' &&
            strchr(d->e[i].key + nl + 1, '.') == NULL)
            k++;
    char key[512];
    snprintf(key, sizeof key, "%s#%d.in", name, k);
    return px_dump_add_key(d, key, x, ndim, shape);
}

int px_dump_addf(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
{
    if (!d) return 0;
    char name[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    return px_dump_add(d, name, x, ndim, shape);
}

const float *px_dump_get(const px_dump *d, const char *key, size_t *numel)
{
    if (!d) return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].data && strcmp(d->e[i].key, key) == 0) {
            if (numel) *numel = d->e[i].numel;
            return d->e[i].data;
        }
    return NULL;
}

size_t px_dump_count(const px_dump *d)
{
    size_t n = 0;
    for (size_t i = 0; d && i < d->n; i++) n += d->e[i].data != NULL;
    return n;
}

/* i-th recorded (not filtered) key */
const char *px_dump_key(const px_dump *d, size_t i)
{
    for (size_t k = 0; d && k < d->n; k++)
        if (d->e[k].data && i-- == 0) return d->e[k].key;
    return NULL;
}

int px_dump_save(const px_dump *d, const char *path)
{
    px_st_writer *w = px_st_writer_new();
    if (!w) return -1;
    for (size_t i = 0; i < d->n; i++)
        if (d->e[i].data && px_st_writer_add(w, d->e[i].key, PX_F32, d->e[i].ndim, d->e[i].shape, d->e[i].data)) {
            px_st_writer_free(w);
            return -1;
        }
    px_st_writer_set_metadata(w, "producer", "pixart.c");
    int rc = px_st_writer_save(w, path);
    px_st_writer_free(w);
    return rc;
}
