/* The file and error helpers of the public API (include/pixart/pixart.h):
 * one tensor of a safetensors file as float32, a float32 .npy, an error
 * message for px_last_error. Programs get them without the tensor core's
 * headers (the pixart command's generate and randn use only these). */
#include "pixart/pixart.h"
#include "tensor/error.h"
#include "tensor/npy.h"
#include "tensor/outfile.h"
#include "tensor/safetensors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int px_set_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return px_fail("%s", msg);
}

int px_safetensors_has_tensor(const char *path, const char *key)
{
    px_st_file *f = px_st_open(path);
    if (!f) return -1;
    int has = px_st_find(f, key) != NULL;
    px_st_close(f);
    return has;
}

float *px_safetensors_read_f32(const char *path, const char *key, int max_ndim, int *ndim, int64_t *shape)
{
    px_st_file *f = px_st_open(path);
    if (!f) return NULL;
    float *v = NULL;
    const px_tensor *t = px_st_find(f, key);
    if (!t) {
        px_fail("%s: no tensor '%s'", path, key);
        goto out;
    }
    if (t->ndim > max_ndim) {
        px_fail("%s: tensor '%s' has %d dimensions, at most %d expected", path, key, t->ndim, max_ndim);
        goto out;
    }
    const int64_t n = px_numel(t);
    v = px_malloc(sizeof(float) * (size_t)(n ? n : 1), key);
    if (!v) goto out;
    if (t->dtype == PX_I64 || t->dtype == PX_I32) {
        for (int64_t i = 0; i < n; i++)
            v[i] = t->dtype == PX_I64 ? (float)((const int64_t *)t->data)[i] : (float)((const int32_t *)t->data)[i];
    } else if (px_tensor_to_f32(t, v)) {
        free(v);
        v = NULL;
        px_fail("%s: tensor '%s' has dtype %s; expected F32/F16/BF16", path, key, px_dtype_name(t->dtype));
        goto out;
    }
    *ndim = t->ndim;
    for (int i = 0; i < t->ndim; i++) shape[i] = t->shape[i];
out:
    px_st_close(f);
    return v;
}

int px_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data)
{
    return px_npy_save(path, PX_F32, ndim, shape, data);
}

int px_safetensors_save_f32(const char *path, const px_named_tensor *t, int n, const char *const *metadata, int nmeta)
{
    px_st_writer *w = px_st_writer_new();
    int rc = -1;
    if (!w) return -1;
    for (int i = 0; i < n; i++)
        if (px_st_writer_add(w, t[i].name, PX_F32, t[i].ndim, t[i].shape, t[i].data)) goto out;
    for (int i = 0; i < nmeta; i++)
        if (px_st_writer_set_metadata(w, metadata[2 * i], metadata[2 * i + 1])) goto out;
    rc = px_st_writer_save(w, path);
out:
    px_st_writer_free(w);
    return rc;
}

int px_output_check(const char *path) { return px_out_check(path); }
void px_output_stage_begin(void) { px_out_stage_begin(); }
int px_output_stage_commit(void) { return px_out_stage_commit(); }
void px_output_stage_discard(void) { px_out_stage_discard(); }
int px_output_cleanup_on_signals(void) { return px_out_cleanup_on_signals(); }
void px_output_remove_temporaries(void) { px_out_remove_temporaries(); }
