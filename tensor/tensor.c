/* Tensor core (see tensor.h). */
#include "tensor.h"
#include "error.h"
#include "half.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; size_t size; } dtype_info[PX_DTYPE_COUNT] = {
    [PX_F32] = { "F32", 4 },  [PX_F16] = { "F16", 2 }, [PX_BF16] = { "BF16", 2 },
    [PX_F64] = { "F64", 8 },  [PX_I64] = { "I64", 8 }, [PX_I32] = { "I32", 4 },
    [PX_I16] = { "I16", 2 },  [PX_I8] = { "I8", 1 },   [PX_U8] = { "U8", 1 },
    [PX_BOOL] = { "BOOL", 1 },
};

size_t px_dtype_size(px_dtype t) { return (unsigned)t < PX_DTYPE_COUNT ? dtype_info[t].size : 0; }

const char *px_dtype_name(px_dtype t) { return (unsigned)t < PX_DTYPE_COUNT ? dtype_info[t].name : "?"; }

int px_dtype_from_name(const char *name, px_dtype *out)
{
    for (int i = 0; i < PX_DTYPE_COUNT; i++)
        if (strcmp(name, dtype_info[i].name) == 0) {
            *out = (px_dtype)i;
            return 0;
        }
    return -1;
}

int64_t px_numel(const px_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

int px_shape_check(int ndim, const int64_t *shape, size_t elsize, uint64_t *nbytes)
{
    if (ndim < 0 || ndim > PX_MAX_DIMS) return px_fail("%d dimensions (at most %d)", ndim, PX_MAX_DIMS);
    uint64_t span = elsize ? elsize : 1, numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return px_fail("shape[%d] = %lld is negative", i, (long long)shape[i]);
        uint64_t d = shape[i] > 0 ? (uint64_t)shape[i] : 1;
        if (span > (uint64_t)INT64_MAX / d) return px_fail("shape overflows (dimension %d)", i);
        span *= d;
        numel *= (uint64_t)shape[i];
    }
    if (nbytes) *nbytes = numel * (elsize ? elsize : 1);
    return 0;
}

void px_set_contiguous_strides(px_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

int px_is_contiguous(const px_tensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

px_tensor px_tensor_view(px_dtype dtype, void *data, int ndim, const int64_t *shape)
{
    px_tensor t;
    memset(&t, 0, sizeof t);
    t.dtype = dtype;
    t.ndim = ndim;
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    px_set_contiguous_strides(&t);
    t.data = data;
    return t;
}

px_tensor *px_tensor_new(px_dtype dtype, int ndim, const int64_t *shape)
{
    if (ndim < 0 || ndim > PX_MAX_DIMS) {
        px_fail("tensor: %d dimensions (at most %d)", ndim, PX_MAX_DIMS);
        return NULL;
    }
    uint64_t nbytes;
    if (px_shape_check(ndim, shape, 8, &nbytes) || nbytes / 8 > SIZE_MAX / 8) {
        px_fail_ctx("tensor: invalid shape");
        return NULL;
    }
    size_t n = (size_t)(nbytes / 8);
    px_tensor *t = px_calloc(1, sizeof *t, "tensor");
    if (!t) return NULL;
    *t = px_tensor_view(dtype, NULL, ndim, shape);
    t->data = px_calloc(n, px_dtype_size(dtype), "tensor data");
    if (!t->data) {
        free(t);
        return NULL;
    }
    t->owns = 1;
    return t;
}

void px_tensor_free(px_tensor *t)
{
    if (!t) return;
    if (t->owns) free(t->data);
    free(t);
}

static float load_f32(const void *base, px_dtype dt, int64_t off)
{
    switch (dt) {
    case PX_F32: return ((const float *)base)[off];
    case PX_F16: return px_f16_to_f32(((const uint16_t *)base)[off]);
    case PX_BF16: return px_bf16_to_f32(((const uint16_t *)base)[off]);
    case PX_F64: return (float)((const double *)base)[off];
    case PX_I64: return (float)((const int64_t *)base)[off];
    case PX_I32: return (float)((const int32_t *)base)[off];
    case PX_I16: return (float)((const int16_t *)base)[off];
    case PX_I8: return (float)((const int8_t *)base)[off];
    case PX_U8: case PX_BOOL: return (float)((const uint8_t *)base)[off];
    default: return 0.f;
    }
}

float px_tensor_get_f32(const px_tensor *t, int64_t i)
{
    int64_t off = 0;
    for (int d = t->ndim - 1; d >= 0; d--) {
        int64_t idx = i % t->shape[d];
        i /= t->shape[d];
        off += idx * t->stride[d];
    }
    return load_f32(t->data, t->dtype, off);
}

void px_convert_to_f32(float *dst, const void *src, px_dtype dt, size_t n)
{
    if (dt == PX_F32) {
        memcpy(dst, src, n * 4);
        return;
    }
    for (size_t i = 0; i < n; i++) dst[i] = load_f32(src, dt, (int64_t)i);
}

void px_convert_from_f32(void *dst, px_dtype dt, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        switch (dt) {
        case PX_F32: ((float *)dst)[i] = src[i]; break;
        case PX_F16: ((uint16_t *)dst)[i] = px_f32_to_f16(src[i]); break;
        case PX_BF16: ((uint16_t *)dst)[i] = px_f32_to_bf16(src[i]); break;
        case PX_F64: ((double *)dst)[i] = src[i]; break;
        case PX_I64: ((int64_t *)dst)[i] = (int64_t)src[i]; break;
        case PX_I32: ((int32_t *)dst)[i] = (int32_t)src[i]; break;
        default: ((uint8_t *)dst)[i] = (uint8_t)src[i]; break;
        }
    }
}

int px_tensor_to_f32(const px_tensor *t, float *out)
{
    if (t->dtype != PX_F32 && t->dtype != PX_F16 && t->dtype != PX_BF16 && t->dtype != PX_F64)
        return px_fail("tensor of dtype %s is not floating point", px_dtype_name(t->dtype));
    int64_t n = px_numel(t);
    if (px_is_contiguous(t)) {
        px_convert_to_f32(out, t->data, t->dtype, (size_t)n);
        return 0;
    }
    for (int64_t i = 0; i < n; i++) out[i] = px_tensor_get_f32(t, i);
    return 0;
}

float *px_tensor_to_f32_alloc(const px_tensor *t, const char *what)
{
    float *p = px_malloc((size_t)px_numel(t) * sizeof(float), what);
    if (p && px_tensor_to_f32(t, p)) {
        free(p);
        return NULL;
    }
    return p;
}

const char *px_shape_str(const px_tensor *t, char *buf, size_t size)
{
    size_t n = 0;
    n += (size_t)snprintf(buf, size, "(");
    for (int i = 0; i < t->ndim && n < size; i++)
        n += (size_t)snprintf(buf + n, size - n, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (n < size) snprintf(buf + n, size - n, ")");
    return buf;
}

int px_check_shape(const px_tensor *t, const char *what, int ndim, const int64_t *shape)
{
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == shape[i];
    if (ok) return 0;
    px_tensor want = px_tensor_view(t->dtype, NULL, ndim, shape);
    char a[96], b[96];
    return px_fail("%s: expected shape %s, got %s", what, px_shape_str(&want, a, sizeof a),
                   px_shape_str(t, b, sizeof b));
}
