/* Module instances that record their own activations.
 *
 * Every module a model loads (a linear, a convolution, a norm, an activation,
 * a ResNet, an attention, a transformer block) carries the name diffusers /
 * transformers gives it, prefixed with its component:
 * "transformer/transformer_blocks.0.attn1.to_q". When its forward function is
 * handed a dump (tensor/dump.h), it records its output as "NAME#k" and, when
 * the reference records that input too (rec_in), its input as "NAME#k.in",
 * exactly as the reference set's forward hooks name them. The models' forward
 * functions therefore contain only the computation; the names live in the
 * loaders, next to the checkpoint names they come from. */
#ifndef PX_MODULE_H
#define PX_MODULE_H

#include <stdint.h>

#include "model/weights.h"
#include "tensor/dump.h"

/* rec_in: the reference records this module's input (it is not the output of
 * a module recorded just before). */
enum { PX_OUT_ONLY = 0, PX_REC_IN = 1 };

typedef struct {
    char name[128]; /* "<component>/<module path>" */
    int rec_in;
} px_mod;

/* name = "<component of w>/" + the formatted module path. */
void px_mod_init(px_mod *m, const px_weights *w, int rec_in, const char *fmt, ...) PX_PRINTF(4, 5);

/* With a dump: records x (shape as given) as "NAME#k.in" when m->rec_in /
 * as "NAME#k". Without one (d NULL): nothing, 0. -1 on out of memory. */
int px_mod_in(const px_mod *m, px_dump *d, const float *x, int ndim, const int64_t *shape);
int px_mod_out(const px_mod *m, px_dump *d, const float *x, int ndim, const int64_t *shape);

/* "shape" arguments: PX_SHAPE(B, N, C) -> 3, (const int64_t[]){B, N, C} */
#define PX_SHAPE(...) \
    (int)(sizeof((int64_t[]){ __VA_ARGS__ }) / sizeof(int64_t)), (const int64_t[]){ __VA_ARGS__ }

// ----------------------------------------------------------------------------
// nn.Linear

typedef struct {
    px_mod m;
    const px_tensor *w; /* (out, in), checkpoint dtype */
    const float *b;     /* (out) float32, or NULL */
} px_lin;

/* nn.Linear PREFIX.weight (N, K) [+ PREFIX.bias (N) when bias]. */
int px_lin_load(px_lin *l, px_weights *w, int64_t N, int64_t K, int bias, int rec_in, const char *fmt, ...)
    PX_PRINTF(7, 8);
/* out (B, T, N) = in (B, T, K) @ w^T + b: one px_linear over B*T rows. */
int px_lin_fwd(float *out, const float *in, const px_lin *l, int64_t B, int64_t T, px_dump *d);
/* The same over M rows, recorded as (M, N) / (M, K). */
int px_lin_rows(float *out, const float *in, const px_lin *l, int64_t M, px_dump *d);

// ----------------------------------------------------------------------------
// nn.Conv2d (square kernel)

typedef struct {
    px_mod m;
    const px_tensor *w; /* (cout, cin, k, k), checkpoint dtype */
    const float *b;     /* (cout) float32 */
    int64_t cin, cout;
    int k, stride, pad;
} px_conv;

/* nn.Conv2d(cin, cout, k, stride, padding) PREFIX.weight / PREFIX.bias. */
int px_conv_load(px_conv *c, px_weights *w, int64_t cin, int64_t cout, int k, int stride, int pad, int rec_in,
                 const char *fmt, ...) PX_PRINTF(9, 10);
/* out (B, cout, Ho, Wo) = conv(in (B, cin, H, W)). */
int px_conv_fwd(float *out, const float *in, const px_conv *c, int64_t B, int64_t H, int64_t W, px_dump *d);

#endif
