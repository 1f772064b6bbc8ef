/* The weight layer the three models load through: a tensor is looked up by
 * its checkpoint (state-dict) name, printf-style
 * ("transformer_blocks.%d.attn1.to_q.weight"), checked for dtype (F32, F16 or
 * BF16), shape and contiguity, and marked as used. Matrices stay as the file
 * stores them (mmap'd, half precision included); only the small vectors the
 * operators read as float32 (biases, norm weights, tables) are widened, and
 * F32 ones are not copied at all. When loading is done, px_weights_check_unused
 * names every tensor of the file that no module took: a config that does not
 * match its weights (attention_bias false next to a file with the biases,
 * num_layers 1 next to two layers of weights) is an error instead of a
 * silently different model (stable-diffusion.cpp reports unknown tensors too).
 *
 * The same object names the modules for activation dumps (model/module.h):
 * the module that loaded "transformer_blocks.0.attn1.to_q.weight" records its
 * output as "transformer/transformer_blocks.0.attn1.to_q", so a tensor in a
 * .safetensors file, the line that loads it and its dump key share a name. */
#ifndef PX_WEIGHTS_H
#define PX_WEIGHTS_H

#include <stdint.h>

#include "tensor/error.h"
#include "tensor/tensor.h"

typedef struct px_weights px_weights;

/* A tensor by exact state-dict name, or NULL: a source of weights the caller
 * owns (benchmarks, tests). The tensors must outlive the model. */
typedef const px_tensor *(*px_weights_lookup_fn)(void *ctx, const char *name);

/* DIR/BASE[.VARIANT].safetensors or its sharded index (px_st_set_open).
 * component names the model in dump keys ("transformer", "text_encoder",
 * "vae"). NULL with a message on failure. */
px_weights *px_weights_open(const char *dir, const char *base, const char *variant, const char *component);
/* Tensors from get(ctx, name); desc names them in messages. Such a source
 * cannot list its tensors, so px_weights_check_unused has nothing to report. */
px_weights *px_weights_wrap(px_weights_lookup_fn get, void *ctx, const char *desc, const char *component);
/* Frees the float32 vectors handed out and closes the files. NULL is fine. */
void px_weights_close(px_weights *w);

const char *px_weights_desc(const px_weights *w);      /* the file (or index) for messages */
const char *px_weights_component(const px_weights *w); /* "transformer", ... */

/* The tensor called NAME with this shape, in its checkpoint dtype. Records
 * "<file>: tensor 'NAME' is missing" (or names the wrong dtype / shape) and
 * returns NULL. */
const px_tensor *px_weights_get(px_weights *w, int ndim, const int64_t *shape, const char *fmt, ...)
    PX_PRINTF(4, 5);
/* The same tensor as float32 values: the mapping itself when the file stores
 * F32, else a copy owned by w (freed by px_weights_close). */
const float *px_weights_f32(px_weights *w, int ndim, const int64_t *shape, const char *fmt, ...)
    PX_PRINTF(4, 5);
/* 1 when the source has a tensor NAME (no error recorded, not marked used). */
int px_weights_has(const px_weights *w, const char *name);
/* Marks NAME (when present) as accounted for without a module using it: a
 * tied copy of a tensor that is used under another name. */
void px_weights_tied(px_weights *w, const char *name);

/* -1 with "<file>: N tensors are not used by this configuration (...): 'a',
 * 'b', ..." when the file holds tensors no lookup took; 0 otherwise. */
int px_weights_check_unused(const px_weights *w);

// ----------------------------------------------------------------------------
// streaming: weights used once per pass, in order (the T5 blocks)

/* Drops the pages of t (a tensor px_weights_get returned) from the process
 * (px_st_release); they are read again if t is used later, so this changes
 * memory, never results. Nothing for a px_weights_wrap source (the caller
 * owns that memory). */
void px_weights_release(px_weights *w, const px_tensor *t);
/* Starts reading t's pages into the page cache (px_st_prefetch). */
void px_weights_prefetch(const px_weights *w, const px_tensor *t);
/* Copies t's bytes (numel * dtype size) into dst: pread from the file
 * (px_st_read), or a memcpy for a px_weights_wrap source. */
int px_weights_read(const px_weights *w, const px_tensor *t, void *dst);
/* Bytes px_weights_release has dropped so far (page-rounded): lets a test
 * see that a model really streams. */
size_t px_weights_released_bytes(const px_weights *w);

#endif
