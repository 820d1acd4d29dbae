/* Plain-C reference engine (tests only): every op of engine_ops as naive loops
 * with double accumulators, matching PyTorch's semantics, to check the oneDNN
 * backend against. Correctness over speed; no oneDNN, no OpenMP.
 *
 * Conventions (the oneDNN backend follows the same ones):
 * - maxpool argmax: per output element (n, oy, ox, c), the input SPATIAL index
 *   iy*w + ix within image n (n is not included), as in PyTorch's
 *   max_pool2d(return_indices=True). Padding acts as -inf; ties go to the
 *   first maximum in row-major window order and a NaN wins (PyTorch's CPU
 *   rule `v > best || isnan(v)`); the index starts at the first in-bounds
 *   element of the window.
 * - bn_forward_train with m = n*h*w == 1: var_unbiased is the biased variance
 *   (PyTorch refuses m == 1 in training; we define it instead of dividing by 0).
 * - bce_logits with n <= 0 returns NaN (PyTorch's mean of nothing), writes no dz.
 * - ReLU is `v < 0 ? 0 : v`, so NaN propagates like torch.relu. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "engine/engine.h"

struct conv_op {
  conv_desc d;
};
struct linear_op {
  int n, in, out;
};

static inline float *at(view v, int n, int y, int x, int ch) {
  return v.p + (((size_t)n * v.h + y) * v.w + x) * (size_t)v.ld + ch;
}

/* ---- convolution: y = b + sum x * w, zero padding, cross-correlation ---- */

static int ref_conv_create(engine *eng, const conv_desc *d, conv_op **out, mskx_err *e) {
  (void)eng;
  *out = NULL;
  if (d->n < 1 || d->h < 1 || d->w < 1 || d->cin < 1 || d->cout < 1 || d->kh < 1 || d->kw < 1 ||
      d->sh < 1 || d->sw < 1 || d->ph < 0 || d->pw < 0)
    return err_set(e, MSKX_EINVAL, "engine_ref.c: conv_create: invalid descriptor");
  if (d->src_bf16 || d->ddst_bf16 || d->dsrc_bf16 || d->dst_bf16 || d->relu_post || d->int8 || d->dst_u8)
    return err_set(e, MSKX_EUNSUPPORTED,
                   "engine_ref.c: conv_create: bf16 and int8 operands and fusions are not supported");
  if (d->h + 2 * d->ph < d->kh || d->w + 2 * d->pw < d->kw)
    return err_set(e, MSKX_ESHAPE, "engine_ref.c: conv_create: kernel %dx%d larger than padded input %dx%d",
                   d->kh, d->kw, d->h + 2 * d->ph, d->w + 2 * d->pw);
  conv_op *op = malloc(sizeof *op);
  if (!op) return err_set(e, MSKX_ENOMEM, "engine_ref.c: conv_create: out of memory");
  op->d = *d;
  *out = op;
  return MSKX_OK;
}

static void ref_conv_destroy(conv_op *op) { free(op); }

static size_t widx(const conv_desc *d, int co, int ci, int ky, int kx) {
  return (((size_t)co * d->cin + ci) * d->kh + ky) * d->kw + kx;
}

static int ref_conv_forward(conv_op *op, const void *xv, const void *wv, uint64_t wver, const float *b,
                            void *yv, mskx_err *e) {
  (void)wver, (void)e;
  const float *x = xv, *w = wv;
  float *y = yv;
  const conv_desc *d = &op->d;
  int oh = conv_out_h(d), ow = conv_out_w(d);
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int co = 0; co < d->cout; co++) {
          double acc = d->has_bias && b ? b[co] : 0.0;
          for (int ky = 0; ky < d->kh; ky++) {
            int iy = oy * d->sh - d->ph + ky;
            if (iy < 0 || iy >= d->h) continue;
            for (int kx = 0; kx < d->kw; kx++) {
              int ix = ox * d->sw - d->pw + kx;
              if (ix < 0 || ix >= d->w) continue;
              const float *xp = x + (((size_t)n * d->h + iy) * d->w + ix) * d->cin;
              for (int ci = 0; ci < d->cin; ci++) acc += (double)xp[ci] * w[widx(d, co, ci, ky, kx)];
            }
          }
          y[(((size_t)n * oh + oy) * ow + ox) * d->cout + co] = (float)acc;
        }
  return MSKX_OK;
}

/* Gather form: each dx element sums the outputs whose window covers it. */
static int ref_conv_backward_data(conv_op *op, const void *dyv, const float *w, uint64_t wver, float *dx,
                                  mskx_err *e) {
  (void)wver, (void)e;
  const float *dy = dyv;
  const conv_desc *d = &op->d;
  int oh = conv_out_h(d), ow = conv_out_w(d);
  for (int n = 0; n < d->n; n++)
    for (int iy = 0; iy < d->h; iy++)
      for (int ix = 0; ix < d->w; ix++)
        for (int ci = 0; ci < d->cin; ci++) {
          double acc = 0.0;
          for (int ky = 0; ky < d->kh; ky++) {
            int ty = iy + d->ph - ky;
            if (ty < 0 || ty % d->sh) continue;
            int oy = ty / d->sh;
            if (oy >= oh) continue;
            for (int kx = 0; kx < d->kw; kx++) {
              int tx = ix + d->pw - kx;
              if (tx < 0 || tx % d->sw) continue;
              int ox = tx / d->sw;
              if (ox >= ow) continue;
              const float *g = dy + (((size_t)n * oh + oy) * ow + ox) * d->cout;
              for (int co = 0; co < d->cout; co++) acc += (double)g[co] * w[widx(d, co, ci, ky, kx)];
            }
          }
          dx[(((size_t)n * d->h + iy) * d->w + ix) * d->cin + ci] = (float)acc;
        }
  return MSKX_OK;
}

static double conv_dw_one(const conv_desc *d, const float *x, const float *dy, int co, int ci, int ky,
                          int kx) {
  int oh = conv_out_h(d), ow = conv_out_w(d);
  double acc = 0.0;
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++) {
      int iy = oy * d->sh - d->ph + ky;
      if (iy < 0 || iy >= d->h) continue;
      for (int ox = 0; ox < ow; ox++) {
        int ix = ox * d->sw - d->pw + kx;
        if (ix < 0 || ix >= d->w) continue;
        acc += (double)dy[(((size_t)n * oh + oy) * ow + ox) * d->cout + co] *
               x[(((size_t)n * d->h + iy) * d->w + ix) * d->cin + ci];
      }
    }
  return acc;
}

static int ref_conv_backward_weights(conv_op *op, const void *xv, const void *dyv, float *dw, float *db,
                                     mskx_err *e) {
  (void)e;
  const float *x = xv, *dy = dyv;
  const conv_desc *d = &op->d;
  for (int co = 0; co < d->cout; co++)
    for (int ci = 0; ci < d->cin; ci++)
      for (int ky = 0; ky < d->kh; ky++)
        for (int kx = 0; kx < d->kw; kx++)
          dw[widx(d, co, ci, ky, kx)] = (float)conv_dw_one(d, x, dy, co, ci, ky, kx);
  if (d->has_bias && db) {
    size_t pix = (size_t)d->n * conv_out_h(d) * conv_out_w(d);
    for (int co = 0; co < d->cout; co++) {
      double acc = 0.0;
      for (size_t i = 0; i < pix; i++) acc += dy[i * d->cout + co];
      db[co] = (float)acc;
    }
  }
  return MSKX_OK;
}

/* ---- fully connected: y = x W^T + b, W (out, in) ---- */

static int ref_linear_create(engine *eng, int n, int in, int out, linear_op **op, mskx_err *e) {
  (void)eng;
  *op = NULL;
  if (n < 1 || in < 1 || out < 1)
    return err_set(e, MSKX_EINVAL, "engine_ref.c: linear_create: invalid sizes n=%d in=%d out=%d", n, in, out);
  linear_op *l = malloc(sizeof *l);
  if (!l) return err_set(e, MSKX_ENOMEM, "engine_ref.c: linear_create: out of memory");
  l->n = n, l->in = in, l->out = out;
  *op = l;
  return MSKX_OK;
}

static void ref_linear_destroy(linear_op *op) { free(op); }

static int ref_linear_forward(linear_op *op, const float *x, const float *w, const float *b, float *y,
                              mskx_err *e) {
  (void)e;
  for (int i = 0; i < op->n; i++)
    for (int o = 0; o < op->out; o++) {
      double acc = b ? b[o] : 0.0;
      for (int k = 0; k < op->in; k++) acc += (double)x[(size_t)i * op->in + k] * w[(size_t)o * op->in + k];
      y[(size_t)i * op->out + o] = (float)acc;
    }
  return MSKX_OK;
}

static int ref_linear_backward(linear_op *op, const float *x, const float *dy, const float *w, float *dx,
                               float *dw, float *db, mskx_err *e) {
  (void)e;
  int n = op->n, in = op->in, out = op->out;
  if (dx)
    for (int i = 0; i < n; i++)
      for (int k = 0; k < in; k++) {
        double acc = 0.0;
        for (int o = 0; o < out; o++) acc += (double)dy[(size_t)i * out + o] * w[(size_t)o * in + k];
        dx[(size_t)i * in + k] = (float)acc;
      }
  for (int o = 0; o < out; o++) {
    for (int k = 0; k < in; k++) {
      double acc = 0.0;
      for (int i = 0; i < n; i++) acc += (double)dy[(size_t)i * out + o] * x[(size_t)i * in + k];
      dw[(size_t)o * in + k] = (float)acc;
    }
    if (db) {
      double acc = 0.0;
      for (int i = 0; i < n; i++) acc += dy[(size_t)i * out + o];
      db[o] = (float)acc;
    }
  }
  return MSKX_OK;
}

/* ---- batch norm (+ ReLU) ---- */

/* Normalisation goes through per-channel float scale = gamma*invstd and
 * shift = beta - mean*scale, then y = x*scale + shift in float, as PyTorch's
 * CPU kernel does and as engine.h requires (bn_forward_affine must reproduce a
 * training output bit-exactly). The ReLU mask in backward is recomputed with
 * this same expression, so it is exactly the forward's. ISO C mode keeps gcc
 * from contracting it into an FMA. */
static inline float bn_pre(float x, float scale, float shift) { return x * scale + shift; }

static void ref_bn_forward_affine(view x, const float *scale, const float *shift, int relu, view y) {
  for (int n = 0; n < x.n; n++)
    for (int i = 0; i < x.h; i++)
      for (int j = 0; j < x.w; j++)
        for (int ch = 0; ch < x.c; ch++) {
          float v = bn_pre(*at(x, n, i, j, ch), scale[ch], shift[ch]);
          *at(y, n, i, j, ch) = relu && v < 0 ? 0.0f : v;
        }
}

/* bf16 by round to nearest even (NaN kept a quiet NaN), the rule of
 * oneDNN's f32 -> bf16 reorder, computed the obvious way. */
static uint16_t ref_bf16(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  if (f != f) return (uint16_t)((u >> 16) | 0x40u);
  uint32_t hi = u >> 16, lo = u & 0xffffu;
  if (lo > 0x8000u || (lo == 0x8000u && (hi & 1u))) hi++;
  return (uint16_t)hi;
}

static void ref_bn_forward_affine_u8(view x, const float *scale, const float *shift, uint8_t *y) {
  size_t k = 0;
  for (int n = 0; n < x.n; n++)
    for (int i = 0; i < x.h; i++)
      for (int j = 0; j < x.w; j++)
        for (int ch = 0; ch < x.c; ch++) {
          float v = bn_pre(*at(x, n, i, j, ch), scale[ch], shift[ch]);
          y[k++] = (uint8_t)(v <= 0 ? 0 : v >= 255 ? 255 : (int)floorf(v + 0.5f));
        }
}

static void ref_bn_forward_affine_bf16(view x, const float *scale, const float *shift, int relu, uint16_t *y) {
  size_t k = 0;
  for (int n = 0; n < x.n; n++)
    for (int i = 0; i < x.h; i++)
      for (int j = 0; j < x.w; j++)
        for (int ch = 0; ch < x.c; ch++) {
          float v = bn_pre(*at(x, n, i, j, ch), scale[ch], shift[ch]);
          y[k++] = ref_bf16(relu && v < 0 ? 0.0f : v);
        }
}

static void bn_scale_shift(const float *gamma, const float *beta, const float *mean, const float *invstd,
                           int c, float *scale, float *shift) {
  for (int ch = 0; ch < c; ch++) {
    scale[ch] = gamma[ch] * invstd[ch];
    shift[ch] = beta[ch] - mean[ch] * scale[ch];
  }
}

/* Two-pass statistics in double. */
static int ref_bn_forward_train(view x, const float *gamma, const float *beta, float eps, int relu,
                                view y, float *mean, float *invstd, float *var_unbiased) {
  double m = (double)x.n * x.h * x.w;
  float scale[x.c], shift[x.c];
  for (int ch = 0; ch < x.c; ch++) {
    double s = 0.0, ss = 0.0;
    for (int n = 0; n < x.n; n++)
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) s += *at(x, n, i, j, ch);
    double mu = s / m;
    for (int n = 0; n < x.n; n++)
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) {
          double dv = *at(x, n, i, j, ch) - mu;
          ss += dv * dv;
        }
    double var = ss / m;
    mean[ch] = (float)mu;
    invstd[ch] = (float)(1.0 / sqrt(var + (double)eps));
    var_unbiased[ch] = (float)(m > 1 ? var * m / (m - 1) : var);
  }
  bn_scale_shift(gamma, beta, mean, invstd, x.c, scale, shift);
  ref_bn_forward_affine(x, scale, shift, relu, y);
  return MSKX_OK;
}

static void ref_bn_forward_infer(view x, const float *gamma, const float *beta, const float *rmean,
                                 const float *rvar, float eps, int relu, view y) {
  float scale[x.c], shift[x.c];
  for (int ch = 0; ch < x.c; ch++) {
    scale[ch] = (float)((double)gamma[ch] / sqrt((double)rvar[ch] + (double)eps));
    shift[ch] = beta[ch] - rmean[ch] * scale[ch];
  }
  ref_bn_forward_affine(x, scale, shift, relu, y);
}

/* Element (n, i, j, ch) of an output gradient, a float or a bf16 view. */
static double dy_at(view dy, int n, int i, int j, int ch) {
  if (!dy.bf16) return *at(dy, n, i, j, ch);
  uint16_t h = ((const uint16_t *)(const void *)dy.p)[(((size_t)n * dy.h + i) * dy.w + j) * (size_t)dy.ld + ch];
  uint32_t u = (uint32_t)h << 16;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

/* dx += gamma*invstd/m * (m*g - sum(g) - xhat*sum(g*xhat)), g = dy masked by
 * the ReLU; dgamma = sum(g*xhat), dbeta = sum(g). */
static int ref_bn_backward(view x, view dy, const float *gamma, const float *beta, const float *mean,
                           const float *invstd, int relu, view dx, float *dgamma, float *dbeta) {
  double m = (double)x.n * x.h * x.w;
  float scale[x.c], shift[x.c];
  bn_scale_shift(gamma, beta, mean, invstd, x.c, scale, shift);
  for (int ch = 0; ch < x.c; ch++) {
    double sg = 0.0, sgx = 0.0;
    for (int pass = 0; pass < 2; pass++)
      for (int n = 0; n < x.n; n++)
        for (int i = 0; i < x.h; i++)
          for (int j = 0; j < x.w; j++) {
            float xv = *at(x, n, i, j, ch);
            double g = dy_at(dy, n, i, j, ch);
            if (relu && !(bn_pre(xv, scale[ch], shift[ch]) > 0)) g = 0.0;
            double xhat = ((double)xv - mean[ch]) * invstd[ch];
            if (pass == 0) {
              sg += g;
              sgx += g * xhat;
            } else {
              float *o = at(dx, n, i, j, ch);
              double dv = (double)gamma[ch] * invstd[ch] / m * (m * g - sg - xhat * sgx);
              *o = (float)((double)*o + dv);
            }
          }
    dgamma[ch] = (float)sgx;
    dbeta[ch] = (float)sg;
  }
  return MSKX_OK;
}

/* Sync batch norm: ref_bn_forward_train's and ref_bn_backward's sums, and
 * the dx formula with sums and row count given. */
static int ref_bn_stats(view x, const float *mean, double *out) {
  for (int ch = 0; ch < x.c; ch++) {
    double s = 0.0;
    for (int n = 0; n < x.n; n++)
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) {
          double v = *at(x, n, i, j, ch);
          s += mean ? (v - mean[ch]) * (v - mean[ch]) : v;
        }
    out[ch] = s;
  }
  return MSKX_OK;
}

/* dy masked by the ReLU recomputed as the forward computed it. */
static inline double bn_masked_grad(view x, view dy, int n, int i, int j, int ch, const float *scale,
                                    const float *shift, int relu) {
  double g = dy_at(dy, n, i, j, ch);
  return relu && !(bn_pre(*at(x, n, i, j, ch), scale[ch], shift[ch]) > 0) ? 0.0 : g;
}

static int ref_bn_backward_stats(view x, view dy, const float *gamma, const float *beta, const float *mean,
                                 const float *invstd, int relu, double *sums) {
  float scale[x.c], shift[x.c];
  bn_scale_shift(gamma, beta, mean, invstd, x.c, scale, shift);
  for (int ch = 0; ch < x.c; ch++) {
    double sg = 0.0, sgx = 0.0;
    for (int n = 0; n < x.n; n++)
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) {
          double g = bn_masked_grad(x, dy, n, i, j, ch, scale, shift, relu);
          sg += g;
          sgx += g * (((double)*at(x, n, i, j, ch) - mean[ch]) * invstd[ch]);
        }
    sums[ch] = sg;
    sums[x.c + ch] = sgx;
  }
  return MSKX_OK;
}

/* The dx term of element (n, i, j, ch), from the whole batch's sums and count. */
static double ref_bn_dx(view x, view dy, int n, int i, int j, int ch, const float *gamma, const float *mean,
                        const float *invstd, const float *scale, const float *shift, int relu, const double *sums,
                        double count) {
  double g = bn_masked_grad(x, dy, n, i, j, ch, scale, shift, relu);
  double xhat = ((double)*at(x, n, i, j, ch) - mean[ch]) * invstd[ch];
  return (double)gamma[ch] * invstd[ch] / count * (count * g - sums[ch] - xhat * sums[x.c + ch]);
}

static void ref_bn_backward_dx(view x, view dy, const float *gamma, const float *beta, const float *mean,
                               const float *invstd, int relu, const double *sums, double count, view dx) {
  float scale[x.c], shift[x.c];
  bn_scale_shift(gamma, beta, mean, invstd, x.c, scale, shift);
  for (int ch = 0; ch < x.c; ch++)
    for (int n = 0; n < x.n; n++)
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) {
          float *o = at(dx, n, i, j, ch);
          *o = (float)((double)*o + ref_bn_dx(x, dy, n, i, j, ch, gamma, mean, invstd, scale, shift, relu, sums, count));
        }
}

/* The same values stored, not added, into a dense buffer: floats or bf16. */
static void ref_bn_backward_dx_dense(view x, view dy, const float *gamma, const float *beta, const float *mean,
                                     const float *invstd, int relu, const double *sums, double count, void *dx,
                                     int bf16) {
  float scale[x.c], shift[x.c];
  bn_scale_shift(gamma, beta, mean, invstd, x.c, scale, shift);
  size_t k = 0;
  for (int n = 0; n < x.n; n++)
    for (int i = 0; i < x.h; i++)
      for (int j = 0; j < x.w; j++)
        for (int ch = 0; ch < x.c; ch++, k++) {
          float v = (float)ref_bn_dx(x, dy, n, i, j, ch, gamma, mean, invstd, scale, shift, relu, sums, count);
          if (bf16)
            ((uint16_t *)dx)[k] = ref_bf16(v);
          else
            ((float *)dx)[k] = v;
        }
}

/* ---- elementwise ---- */

static void ref_add_relu_forward(view a, view b, view y) {
  for (int n = 0; n < a.n; n++)
    for (int i = 0; i < a.h; i++)
      for (int j = 0; j < a.w; j++)
        for (int ch = 0; ch < a.c; ch++) {
          float s = *at(a, n, i, j, ch) + *at(b, n, i, j, ch);
          *at(y, n, i, j, ch) = s < 0 ? 0.0f : s;
        }
}

static void ref_add_relu_backward(view y, view dy, view da, view db) {
  for (int n = 0; n < y.n; n++)
    for (int i = 0; i < y.h; i++)
      for (int j = 0; j < y.w; j++)
        for (int ch = 0; ch < y.c; ch++) {
          float g = *at(y, n, i, j, ch) > 0 ? *at(dy, n, i, j, ch) : 0.0f;
          *at(da, n, i, j, ch) = g;
          if (db.p) *at(db, n, i, j, ch) = g;
        }
}

static void ref_relu_forward(view x, view y) {
  for (int n = 0; n < x.n; n++)
    for (int i = 0; i < x.h; i++)
      for (int j = 0; j < x.w; j++)
        for (int ch = 0; ch < x.c; ch++) {
          float v = *at(x, n, i, j, ch);
          *at(y, n, i, j, ch) = v < 0 ? 0.0f : v;
        }
}

/* ---- pooling ---- */

static void ref_maxpool_forward(const pool_desc *d, view x, view y, int32_t *argmax) {
  int oh = pool_out(d->h, d->k, d->s, d->p), ow = pool_out(d->w, d->k, d->s, d->p);
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < d->c; ch++) {
          int y0 = oy * d->s - d->p, x0 = ox * d->s - d->p;
          int y1 = y0 + d->k < d->h ? y0 + d->k : d->h, x1 = x0 + d->k < d->w ? x0 + d->k : d->w;
          if (y0 < 0) y0 = 0;
          if (x0 < 0) x0 = 0;
          float best = -INFINITY;
          int32_t bi = y0 * d->w + x0;
          for (int iy = y0; iy < y1; iy++)
            for (int ix = x0; ix < x1; ix++) {
              float v = *at(x, n, iy, ix, ch);
              if (v > best || isnan(v)) best = v, bi = iy * d->w + ix;
            }
          *at(y, n, oy, ox, ch) = best;
          argmax[(((size_t)n * oh + oy) * ow + ox) * d->c + ch] = bi;
        }
}

static void ref_maxpool_backward(const pool_desc *d, view dy, const int32_t *argmax, view dx) {
  int oh = pool_out(d->h, d->k, d->s, d->p), ow = pool_out(d->w, d->k, d->s, d->p);
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++)
        for (int ch = 0; ch < d->c; ch++) {
          int32_t a = argmax[(((size_t)n * oh + oy) * ow + ox) * d->c + ch];
          *at(dx, n, a / d->w, a % d->w, ch) += *at(dy, n, oy, ox, ch);
        }
}

/* PyTorch's window with count_include_pad: the divisor counts padding inside
 * [-p, size + p) but the sum only real pixels. */
typedef struct window {
  int y0, y1, x0, x1;
  double div;
} window;

static window avg_window(const pool_desc *d, int oy, int ox) {
  window wd;
  int ys = oy * d->s - d->p, xs = ox * d->s - d->p;
  int ye = ys + d->k < d->h + d->p ? ys + d->k : d->h + d->p;
  int xe = xs + d->k < d->w + d->p ? xs + d->k : d->w + d->p;
  wd.div = (double)(ye - ys) * (xe - xs);
  wd.y0 = ys < 0 ? 0 : ys, wd.x0 = xs < 0 ? 0 : xs;
  wd.y1 = ye < d->h ? ye : d->h, wd.x1 = xe < d->w ? xe : d->w;
  return wd;
}

static void ref_avgpool_forward(const pool_desc *d, view x, view y) {
  int oh = pool_out(d->h, d->k, d->s, d->p), ow = pool_out(d->w, d->k, d->s, d->p);
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        window wd = avg_window(d, oy, ox);
        for (int ch = 0; ch < d->c; ch++) {
          double acc = 0.0;
          for (int iy = wd.y0; iy < wd.y1; iy++)
            for (int ix = wd.x0; ix < wd.x1; ix++) acc += *at(x, n, iy, ix, ch);
          *at(y, n, oy, ox, ch) = (float)(acc / wd.div);
        }
      }
}

static void ref_avgpool_backward(const pool_desc *d, view dy, view dx) {
  int oh = pool_out(d->h, d->k, d->s, d->p), ow = pool_out(d->w, d->k, d->s, d->p);
  for (int n = 0; n < d->n; n++)
    for (int oy = 0; oy < oh; oy++)
      for (int ox = 0; ox < ow; ox++) {
        window wd = avg_window(d, oy, ox);
        for (int ch = 0; ch < d->c; ch++) {
          double g = *at(dy, n, oy, ox, ch) / wd.div;
          for (int iy = wd.y0; iy < wd.y1; iy++)
            for (int ix = wd.x0; ix < wd.x1; ix++) {
              float *o = at(dx, n, iy, ix, ch);
              *o = (float)((double)*o + g);
            }
        }
      }
}

static void ref_gap_forward(view x, float *y) {
  for (int n = 0; n < x.n; n++)
    for (int ch = 0; ch < x.c; ch++) {
      double acc = 0.0;
      for (int i = 0; i < x.h; i++)
        for (int j = 0; j < x.w; j++) acc += *at(x, n, i, j, ch);
      y[(size_t)n * x.c + ch] = (float)(acc / ((double)x.h * x.w));
    }
}

/* Accumulates like the other view-reading ops. */
static void ref_gap_backward(const float *dy, view dx) {
  for (int n = 0; n < dx.n; n++)
    for (int ch = 0; ch < dx.c; ch++) {
      double g = dy[(size_t)n * dx.c + ch] / ((double)dx.h * dx.w);
      for (int i = 0; i < dx.h; i++)
        for (int j = 0; j < dx.w; j++) {
          float *o = at(dx, n, i, j, ch);
          *o = (float)((double)*o + g);
        }
    }
}

static void ref_copy(view src, view dst) {
  for (int n = 0; n < src.n; n++)
    for (int i = 0; i < src.h; i++)
      for (int j = 0; j < src.w; j++)
        for (int ch = 0; ch < src.c; ch++) *at(dst, n, i, j, ch) = *at(src, n, i, j, ch);
}

static void ref_accumulate(view src, view dst) {
  for (int n = 0; n < src.n; n++)
    for (int i = 0; i < src.h; i++)
      for (int j = 0; j < src.w; j++)
        for (int ch = 0; ch < src.c; ch++) *at(dst, n, i, j, ch) += *at(src, n, i, j, ch);
}

/* ---- loss ---- */

/* Stable forms: log(1 + e^z) - z t = max(z,0) - z t + log1p(e^-|z|). */
static double ref_bce_logits(const float *z, const float *t, const float *w, int n, float *dz) {
  if (n <= 0) return NAN;
  double sum = 0.0;
  for (int i = 0; i < n; i++) {
    double zi = z[i], ti = t[i], wi = w ? w[i] : 1.0;
    sum += wi * ((zi > 0 ? zi : 0.0) - zi * ti + log1p(exp(-fabs(zi))));
    if (dz) {
      double sig = zi >= 0 ? 1.0 / (1.0 + exp(-zi)) : exp(zi) / (1.0 + exp(zi));
      dz[i] = (float)(wi * (sig - ti) / n);
    }
  }
  return sum / n;
}

/* ---- engine ---- */

static void ref_destroy(engine *eng) { free(eng); }

static const engine_ops ref_ops = {
    .name = "ref",
    .destroy = ref_destroy,
    .conv_create = ref_conv_create,
    .conv_destroy = ref_conv_destroy,
    .conv_forward = ref_conv_forward,
    .conv_backward_data = ref_conv_backward_data,
    .conv_backward_weights = ref_conv_backward_weights,
    .linear_create = ref_linear_create,
    .linear_destroy = ref_linear_destroy,
    .linear_forward = ref_linear_forward,
    .linear_backward = ref_linear_backward,
    .bn_forward_train = ref_bn_forward_train,
    .bn_forward_infer = ref_bn_forward_infer,
    .bn_forward_affine = ref_bn_forward_affine,
    .bn_forward_affine_bf16 = ref_bn_forward_affine_bf16,
    .bn_forward_affine_u8 = ref_bn_forward_affine_u8,
    .bn_backward = ref_bn_backward,
    .bn_stats = ref_bn_stats,
    .bn_backward_stats = ref_bn_backward_stats,
    .bn_backward_dx = ref_bn_backward_dx,
    .bn_backward_dx_dense = ref_bn_backward_dx_dense,
    .add_relu_forward = ref_add_relu_forward,
    .add_relu_backward = ref_add_relu_backward,
    .relu_forward = ref_relu_forward,
    .maxpool_forward = ref_maxpool_forward,
    .maxpool_backward = ref_maxpool_backward,
    .avgpool_forward = ref_avgpool_forward,
    .avgpool_backward = ref_avgpool_backward,
    .gap_forward = ref_gap_forward,
    .gap_backward = ref_gap_backward,
    .copy = ref_copy,
    .accumulate = ref_accumulate,
    .bce_logits = ref_bce_logits,
};

int engine_ref_create(engine **out, mskx_err *e) {
  *out = NULL;
  engine *eng = calloc(1, sizeof *eng);
  if (!eng) return err_set(e, MSKX_ENOMEM, "engine_ref.c: engine_ref_create: out of memory");
  eng->ops = &ref_ops;
  eng->threads = 1;
  *out = eng;
  return MSKX_OK;
}
