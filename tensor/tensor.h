/* The tensor core: a dtype, up to PX_MAX_DIMS dimensions in PyTorch order
 * (shape[0] outermost), element strides, and a data pointer that is either
 * owned (allocated by px_tensor_new, freed by px_tensor_free) or a view into
 * memory someone else owns (an mmap'd checkpoint, another tensor).
 *
 * Model code mostly works on plain float buffers with their shapes in
 * comments (llm.c style); px_tensor describes weights (whose dtype matters)
 * and everything that crosses a file boundary. */
#ifndef PX_TENSOR_H
#define PX_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#define PX_MAX_DIMS 5

typedef enum {
    PX_F32 = 0,
    PX_F16,
    PX_BF16,
    PX_F64,
    PX_I64,
    PX_I32,
    PX_I16,
    PX_I8,
    PX_U8,
    PX_BOOL,
    PX_DTYPE_COUNT
} px_dtype;

/* Size in bytes of one element; name as safetensors spells it ("F32", "BF16"...). */
size_t px_dtype_size(px_dtype t);
const char *px_dtype_name(px_dtype t);
/* Parse a safetensors dtype name; -1 when unknown. */
int px_dtype_from_name(const char *name, px_dtype *out);

typedef struct {
    px_dtype dtype;
    int ndim;
    int64_t shape[PX_MAX_DIMS];
    int64_t stride[PX_MAX_DIMS]; /* in elements */
    void *data;
    int owns; /* 1: data was allocated for this tensor and is freed with it */
} px_tensor;

/* Number of elements (1 for a 0-d tensor). */
int64_t px_numel(const px_tensor *t);
/* Shapes from files: 0 when ndim is in [0, PX_MAX_DIMS], every dimension is
 * >= 0 and the product of the dimensions, each counted as at least 1 (so the
 * contiguous strides fit too, even when another dimension is 0), times
 * elsize fits in int64; *nbytes (may be NULL) = numel * elsize. Else -1 with
 * "shape ... overflows" / "shape[i] is negative" (callers add file and field). */
int px_shape_check(int ndim, const int64_t *shape, size_t elsize, uint64_t *nbytes);
/* 1 when strides are the contiguous row-major ones. */
int px_is_contiguous(const px_tensor *t);
/* Fill contiguous strides from the shape. */
void px_set_contiguous_strides(px_tensor *t);

/* New owned, zero-filled, contiguous tensor. NULL on failure. */
px_tensor *px_tensor_new(px_dtype dtype, int ndim, const int64_t *shape);
/* A view over data someone else owns (contiguous strides). */
px_tensor px_tensor_view(px_dtype dtype, void *data, int ndim, const int64_t *shape);
/* Free a tensor from px_tensor_new (and its data if owned). NULL is fine. */
void px_tensor_free(px_tensor *t);

/* Element i (row-major logical index) converted to float, for any float dtype. */
float px_tensor_get_f32(const px_tensor *t, int64_t i);

/* Copy any F32/F16/BF16/F64 tensor (any strides) into a contiguous float
 * buffer of numel elements. Returns -1 for non-float dtypes. */
int px_tensor_to_f32(const px_tensor *t, float *out);
/* Same, into a newly malloc'd buffer (caller frees). NULL on failure. */
float *px_tensor_to_f32_alloc(const px_tensor *t, const char *what);

/* Convert n elements between dtypes, exactly as torch's .to() does. */
void px_convert_to_f32(float *dst, const void *src, px_dtype src_dtype, size_t n);
void px_convert_from_f32(void *dst, px_dtype dst_dtype, const float *src, size_t n);

/* "(2, 4, 8, 8)" into buf. Returns buf. */
const char *px_shape_str(const px_tensor *t, char *buf, size_t size);

/* Check a tensor's shape; on mismatch records "<what>: expected shape (..), got (..)". */
int px_check_shape(const px_tensor *t, const char *what, int ndim, const int64_t *shape);

#endif
