/* Activation dumps: a model's forward function reports intermediate tensors
 * under the names of the diffusers/transformers modules that produce them
 * ("transformer/transformer_blocks.0.attn1.to_q"), exactly as the reference
 * set names them. Each report of the same name gets the next call index
 * ("#0", "#1", ...), like the reference's forward hooks.
 *
 * Passing a NULL dump costs nothing; tests collect a dump in memory and
 * compare it with the reference module by module, and `pixart generate
 * --dump FILE` saves one as safetensors. */
#ifndef PX_DUMP_H
#define PX_DUMP_H

#include <stddef.h>
#include <stdint.h>

typedef struct px_dump px_dump;

px_dump *px_dump_new(void);
void px_dump_free(px_dump *d);

/* Records a copy of x (float32, contiguous) as "NAME#k" (k = how many times
 * NAME was recorded before). No-op when d is NULL. Returns -1 on OOM. */
int px_dump_add(px_dump *d, const char *name, const float *x, int ndim, const int64_t *shape);
/* printf-style name. */
int px_dump_addf(px_dump *d, const float *x, int ndim, const int64_t *shape, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;
/* Records x as "NAME#k.in", k being the index the next px_dump_add(NAME)
 * will get (filtered keys included): the input of the call about to be
 * recorded, as the reference names module inputs. */
int px_dump_add_in(px_dump *d, const char *name, const float *x, int ndim, const int64_t *shape);
/* Records under the exact key given (no "#k" suffix). */
int px_dump_add_key(px_dump *d, const char *key, const float *x, int ndim, const int64_t *shape);

/* A recorded tensor by full key ("NAME#k"), or NULL. */
const float *px_dump_get(const px_dump *d, const char *key, size_t *numel);
size_t px_dump_count(const px_dump *d);
const char *px_dump_key(const px_dump *d, size_t i);

/* Record only the keys keep(full_key, user) accepts ("NAME#k", "NAME#k.in"
 * or an exact key); the others cost no copy but still advance the call index
 * of their name, so the kept keys are numbered as without a filter. NULL keep
 * records everything. For `pixart generate --dump` on full-size models, where
 * recording every module would take tens of gigabytes. */
void px_dump_set_filter(px_dump *d, int (*keep)(const char *key, void *user), void *user);

/* Saves every recorded tensor as F32 safetensors (px_out_write: atomic). */
int px_dump_save(const px_dump *d, const char *path);

#endif
