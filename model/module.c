/* Module instances that record their own activations (see module.h). */
#include "module.h"

#include <stdarg.h>
#include <stdio.h>

#include "ops/ops.h"

/* name = "<component>/<path>"; returns the path part (the checkpoint prefix) */
static const char *mod_vinit(px_mod *m, const px_weights *w, int rec_in, const char *fmt, va_list ap)
{
    int n = snprintf(m->name, sizeof m->name, "%s/", px_weights_component(w));
    if (n < 0 || (size_t)n >= sizeof m->name) n = 0;
    vsnprintf(m->name + n, sizeof m->name - (size_t)n, fmt, ap);
    m->rec_in = rec_in;
    return m->name + n;
}

void px_mod_init(px_mod *m, const px_weights *w, int rec_in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mod_vinit(m, w, rec_in, fmt, ap);
    va_end(ap);
}

int px_mod_in(const px_mod *m, px_dump *d, const float *x, int ndim, const int64_t *shape)
{
    if (!d || !m->rec_in) return 0;
    return px_dump_add_in(d, m->name, x, ndim, shape);
}

int px_mod_out(const px_mod *m, px_dump *d, const float *x, int ndim, const int64_t *shape)
{
    if (!d) return 0;
    return px_dump_add(d, m->name, x, ndim, shape);
}

// ----------------------------------------------------------------------------
// nn.Linear

int px_lin_load(px_lin *l, px_weights *w, int64_t N, int64_t K, int bias, int rec_in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *prefix = mod_vinit(&l->m, w, rec_in, fmt, ap);
    va_end(ap);
    l->b = NULL;
    if (!(l->w = px_weights_get(w, 2, (int64_t[]){ N, K }, "%s.weight", prefix))) return -1;
    if (bias && !(l->b = px_weights_f32(w, 1, &N, "%s.bias", prefix))) return -1;
    return 0;
}

int px_lin_fwd(float *out, const float *in, const px_lin *l, int64_t B, int64_t T, px_dump *d)
{
    const int64_t N = l->w->shape[0], K = l->w->shape[1];
    if (px_mod_in(&l->m, d, in, PX_SHAPE(B, T, K)) || px_linear(out, in, l->w, l->b, B * T) ||
        px_mod_out(&l->m, d, out, PX_SHAPE(B, T, N)))
        return -1;
    return 0;
}

int px_lin_rows(float *out, const float *in, const px_lin *l, int64_t M, px_dump *d)
{
    const int64_t N = l->w->shape[0], K = l->w->shape[1];
    if (px_mod_in(&l->m, d, in, PX_SHAPE(M, K)) || px_linear(out, in, l->w, l->b, M) ||
        px_mod_out(&l->m, d, out, PX_SHAPE(M, N)))
        return -1;
    return 0;
}

// ----------------------------------------------------------------------------
// nn.Conv2d

int px_conv_load(px_conv *c, px_weights *w, int64_t cin, int64_t cout, int k, int stride, int pad, int rec_in,
                 const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const char *prefix = mod_vinit(&c->m, w, rec_in, fmt, ap);
    va_end(ap);
    c->cin = cin;
    c->cout = cout;
    c->k = k;
    c->stride = stride;
    c->pad = pad;
    c->b = NULL;
    if (!(c->w = px_weights_get(w, 4, (int64_t[]){ cout, cin, k, k }, "%s.weight", prefix))) return -1;
    return (c->b = px_weights_f32(w, 1, &cout, "%s.bias", prefix)) ? 0 : -1;
}

int px_conv_fwd(float *out, const float *in, const px_conv *c, int64_t B, int64_t H, int64_t W, px_dump *d)
{
    const int64_t Ho = (H + 2 * c->pad - c->k) / c->stride + 1, Wo = (W + 2 * c->pad - c->k) / c->stride + 1;
    if (px_mod_in(&c->m, d, in, PX_SHAPE(B, c->cin, H, W)) ||
        px_conv2d(out, in, c->w, c->b, B, c->cin, H, W, c->cout, c->k, c->stride, c->pad) ||
        px_mod_out(&c->m, d, out, PX_SHAPE(B, c->cout, Ho, Wo)))
        return -1;
    return 0;
}
