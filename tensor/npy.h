/* NumPy .npy files (format version 1.0), little-endian float32 or int64,
 * C order: what `pixart randn` and `--output-type npy|latent` write and what
 * numpy.load reads. */
#ifndef PX_NPY_H
#define PX_NPY_H

#include "tensor.h"

/* Writes PATH through px_out_write (tensor/outfile.h): never half a file.
 * dtype: PX_F32 or PX_I64. */
int px_npy_save(const char *path, px_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* Reads a little-endian '<f4' or '<i8' C-order array. Caller frees with px_tensor_free. */
px_tensor *px_npy_load(const char *path);

#endif
