/* Activation dumps (see dump.h). */
#include "dump.h"
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
};

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
        if (strcmp(d->e[i].key, key) == 0) {
            if (numel) *numel = d->e[i].numel;
            return d->e[i].data;
        }
    return NULL;
}

size_t px_dump_count(const px_dump *d) { return d ? d->n : 0; }

const char *px_dump_key(const px_dump *d, size_t i) { return d && i < d->n ? d->e[i].key : NULL; }

int px_dump_save(const px_dump *d, const char *path)
{
    px_st_writer *w = px_st_writer_new();
    if (!w) return -1;
    for (size_t i = 0; i < d->n; i++)
        if (px_st_writer_add(w, d->e[i].key, PX_F32, d->e[i].ndim, d->e[i].shape, d->e[i].data)) {
            px_st_writer_free(w);
            return -1;
        }
    px_st_writer_set_metadata(w, "producer", "pixart.c");
    int rc = px_st_writer_save(w, path);
    px_st_writer_free(w);
    return rc;
}
