/* The T5 v1.1 text encoder: transformers T5EncoderModel (modeling_t5.py,
 * T5Stack with is_decoder=False), as PixArt-alpha uses it to embed prompts.
 *
 * Weights are looked up by their exact state-dict names ("shared.weight",
 * "encoder.block.N.layer.0.SelfAttention.q.weight", ...). Matrices stay in
 * their checkpoint dtype (F32, F16 or BF16, mmap'd) and are widened inside
 * px_linear; the embedding widens only the rows of the tokens being looked
 * up. All arithmetic is float32. */
#ifndef PX_T5_H
#define PX_T5_H

#include <stdint.h>

#include "tensor/dump.h"
#include "tensor/tensor.h"

/* ---- config ("the blueprint", from config.json) ---------------------- */
typedef struct {
    int64_t vocab_size;   /* rows of the shared embedding (32128) */
    int64_t d_model;      /* hidden size (4096 for XXL) */
    int64_t d_kv;         /* per-head size (64) */
    int64_t num_heads;    /* (64); inner dim = num_heads * d_kv may differ from d_model */
    int64_t d_ff;         /* gated FF width (10240) */
    int64_t num_layers;   /* encoder blocks (24) */
    int64_t num_buckets;  /* relative_attention_num_buckets (32) */
    int64_t max_distance; /* relative_attention_max_distance (128) */
    float eps;            /* layer_norm_epsilon (1e-6) */
} px_t5_config;

/* Parses a transformers T5Config JSON file. Only feed_forward_proj
 * "gated-gelu" (T5 v1.1: gelu_new on wi_0 times wi_1) is supported; anything
 * else is rejected with a message naming the file and field. Fields absent
 * from the file take T5Config's defaults where transformers has one
 * (buckets 32, max distance 128, eps 1e-6); the sizes are required. */
int px_t5_config_load(px_t5_config *c, const char *path);

/* ---- model ----------------------------------------------------------- */
typedef struct px_t5 px_t5;

/* Loads DIR/config.json and DIR/model.safetensors, or the shards listed by
 * DIR/model.safetensors.index.json (with variant "fp16"/"bf16":
 * model.VARIANT.safetensors / model.safetensors.index.VARIANT.json).
 * NULL with a message naming the file and tensor on failure, also when the
 * file holds tensors the encoder does not use (the tied copy
 * encoder.embed_tokens.weight next to shared.weight excepted). */
px_t5 *px_t5_load(const char *dir, const char *variant);

/* Builds a model over tensors owned by the caller (benchmarks, tests):
 * get(ctx, name) returns the tensor called `name` in a transformers
 * state dict, or NULL. The tensors must outlive the model. */
typedef const px_tensor *(*px_t5_lookup_fn)(void *ctx, const char *name);
px_t5 *px_t5_new(const px_t5_config *c, px_t5_lookup_fn get, void *ctx, const char *desc);

void px_t5_free(px_t5 *m);

int px_t5_d_model(const px_t5 *m);

/* How px_t5_encode holds the weights of its blocks, which it uses once each,
 * in order. The results are the same bits in every mode.
 *  PX_T5_RESIDENT     every page of the mapping that was used stays resident
 *                     until px_t5_free (the resident set grows to the whole
 *                     file: 19 GB for the float32 XXL encoder).
 *  PX_T5_STREAM_MMAP  (the default) the next block is prefetched
 *                     (MADV_WILLNEED) while one computes, and each block's
 *                     pages are dropped (MADV_DONTNEED) when it ends; so is
 *                     the embedding table after the lookup: about one block
 *                     stays resident.
 *  PX_T5_STREAM_READ  each block is read (pread) into one reused buffer.
 * Sources from px_t5_new (caller-owned memory) are never released. */
typedef enum { PX_T5_RESIDENT, PX_T5_STREAM_MMAP, PX_T5_STREAM_READ } px_t5_stream;
void px_t5_set_stream(px_t5 *m, px_t5_stream mode);
/* Bytes of mapped weights the encoder has released so far (see
 * px_weights_released_bytes): 0 unless it streamed from a file. */
size_t px_t5_released_bytes(const px_t5 *m);
const px_t5_config *px_t5_get_config(const px_t5 *m);

/* last_hidden_state of T5EncoderModel(input_ids=ids, attention_mask=mask).
 * ids, mask: (B, L) int32, mask 1 = real token, 0 = padding (other values are
 * rejected); out: (B, L, d_model) float32. Every position is computed,
 * padding rows included, as transformers does. dump (or NULL) receives the
 * activations under "text_encoder/<module>" names, one call index per call.
 * Activation buffers are kept in m between calls (grown when B * L grows), so
 * a model must not be used by two threads at once.
 * Returns 0, or -1 with a message (bad token id, out of memory). */
int px_t5_encode(px_t5 *m, const int32_t *ids, const int32_t *mask, int B, int L, float *out,
                 px_dump *dump);

/* T5Attention._relative_position_bucket(memory - query, bidirectional=True):
 * the bucket of a relative position, computed in float32 as torch does. */
int px_t5_bucket(int64_t relative_position, int64_t num_buckets, int64_t max_distance);

#endif
