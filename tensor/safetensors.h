/* safetensors reader (mmap) and writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data block; offsets are relative to it.
 * Everything in the header is validated before a byte of data is touched:
 * the header length against the file size, every dtype, shape and offset
 * (in bounds, begin <= end, end - begin = numel * dtype size, no overlaps).
 *
 * Checkpoints are looked up by their exact PyTorch state-dict names. A
 * px_st_set covers one file or the shards named by a *.safetensors.index.json;
 * the models load through model/weights.h, which checks dtype and shape and
 * reports the tensors no module used. */
#ifndef PX_SAFETENSORS_H
#define PX_SAFETENSORS_H

#include "json.h"
#include "tensor.h"

typedef struct {
    char *name;
    px_tensor t;    /* view into the mapping (or into an aligned copy) */
    void *copy;     /* aligned copy when the mapped data was misaligned */
} px_st_entry;

typedef struct {
    char *path;
    void *map;
    size_t size;
    size_t n;
    px_st_entry *entries; /* sorted by name */
    px_json *metadata;    /* "__metadata__" object (inside header), or NULL */
    px_json *header;      /* the parsed header, kept for metadata */
} px_st_file;

px_st_file *px_st_open(const char *path);
void px_st_close(px_st_file *f);
/* Tensor by exact name, or NULL (no error recorded). */
const px_tensor *px_st_find(const px_st_file *f, const char *name);

typedef struct {
    char *desc;        /* for messages: the file or index path */
    int nfiles;
    px_st_file **files;
} px_st_set;

/* Opens DIR/BASE.safetensors if it exists, else the shards listed by
 * DIR/BASE.safetensors.index.json. With variant (e.g. "fp16") the names are
 * BASE.VARIANT.safetensors / BASE.safetensors.index.VARIANT.json, as diffusers
 * and transformers spell them. */
px_st_set *px_st_set_open(const char *dir, const char *base, const char *variant);
/* A set holding exactly one file. */
px_st_set *px_st_set_open_file(const char *path);
void px_st_set_close(px_st_set *s);

const px_tensor *px_st_set_find(const px_st_set *s, const char *name);
/* ---- writer ----------------------------------------------------------- */
typedef struct px_st_writer px_st_writer;
px_st_writer *px_st_writer_new(void);
/* Adds a tensor; the data is copied. */
int px_st_writer_add(px_st_writer *w, const char *name, px_dtype dtype, int ndim,
                     const int64_t *shape, const void *data);
/* Adds a float32 tensor converted to `dtype` (F32, F16 or BF16). */
int px_st_writer_add_f32_as(px_st_writer *w, const char *name, px_dtype dtype, int ndim,
                            const int64_t *shape, const float *data);
int px_st_writer_set_metadata(px_st_writer *w, const char *key, const char *value);
/* Writes PATH through px_out_write (tensor/outfile.h): never half a file. */
int px_st_writer_save(px_st_writer *w, const char *path);
void px_st_writer_free(px_st_writer *w);

#endif

/* ---- residency: streaming a model larger than memory ------------------ */
/* The mapping is read-only, so the pages of a tensor can be dropped from the
 * process at any time and are read again (from the page cache, or the disk)
 * if touched later. A model that uses its weights in order (the T5 encoder,
 * block by block) releases each block when it is done: its resident set is
 * then about one block instead of the whole file. */

/* The file of s holding the tensor t (a pointer px_st_find returned), or
 * NULL when t is not one of s's tensors. */
const px_st_file *px_st_set_file_of(const px_st_set *s, const px_tensor *t);
/* madvise(MADV_DONTNEED) of the pages t's bytes lie on (rounded outward: a
 * page shared with a neighbouring tensor is harmless, it is read again when
 * touched). Returns the bytes of the page range released, 0 when t is not
 * backed by f's mapping (an aligned copy, an empty tensor). */
size_t px_st_release(const px_st_file *f, const px_tensor *t);
/* madvise(MADV_WILLNEED) of the same pages: the kernel starts reading them
 * into the page cache without mapping them (the resident set does not grow). */
void px_st_prefetch(const px_st_file *f, const px_tensor *t);
/* Copies t's bytes into dst (numel * dtype size bytes) with pread from the
 * file, leaving the mapping untouched. 0, or -1 with a message. */
int px_st_read(const px_st_file *f, const px_tensor *t, void *dst);
