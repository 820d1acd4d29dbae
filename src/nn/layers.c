/* Convolution and batch-norm layers over the engine (see layers.h). */
#include "nn/layers.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"

int conv_layer_declare(param_store *ps, conv_layer *l, const char *prefix, int cin, int cout, int k, int stride,
                       int pad, int bias, mskx_err *e) {
  return conv_layer_declare_rect(ps, l, prefix, cin, cout, k, k, stride, pad, pad, bias, e);
}

int conv_layer_declare_rect(param_store *ps, conv_layer *l, const char *prefix, int cin, int cout, int kh, int kw,
                            int stride, int ph, int pw, int bias, mskx_err *e) {
  char name[160];
  int64_t ws[4] = {cout, cin, kh, kw}, bs[1] = {cout};
  *l = (conv_layer){.b = -1, .cin = cin, .cout = cout, .kh = kh, .kw = kw, .stride = stride, .ph = ph, .pw = pw};
  snprintf(name, sizeof name, "%s.weight", prefix);
  if ((l->w = ps_declare(ps, name, PK_PARAM, 4, ws, e)) < 0) return e->code;
  if (bias) {
    snprintf(name, sizeof name, "%s.bias", prefix);
    if ((l->b = ps_declare(ps, name, PK_PARAM, 1, bs, e)) < 0) return e->code;
  }
  return MSKX_OK;
}

int bn_layer_declare(param_store *ps, bn_layer *l, const char *prefix, int c, mskx_err *e) {
  static const char *const names[4] = {"weight", "bias", "running_mean", "running_var"};
  int idx[4];
  int64_t s[1] = {c};
  char name[160];
  for (int i = 0; i < 4; i++) {
    snprintf(name, sizeof name, "%s.%s", prefix, names[i]);
    if ((idx[i] = ps_declare(ps, name, i < 2 ? PK_PARAM : PK_BUFFER, 1, s, e)) < 0) return e->code;
  }
  *l = (bn_layer){.weight = idx[0], .bias = idx[1], .rmean = idx[2], .rvar = idx[3], .c = c, .eps = 0};
  return MSKX_OK;
}

/* The layer's convolution for an n x h x w input in this context's
 * precision (forward only; the callers add training and fusions). */
static conv_desc layer_conv_desc(const layer_ctx *cx, const conv_layer *l, int n, int h, int w) {
  conv_desc d = {.n = n, .h = h, .w = w, .cin = l->cin, .cout = l->cout, .kh = l->kh, .kw = l->kw,
                 .sh = l->stride, .sw = l->stride, .ph = l->ph, .pw = l->pw, .has_bias = l->b >= 0,
                 .prec = cx->prec, .src_bf16 = l->src_bf16 && cx->prec == PREC_BF16};
  return d;
}

/* Plans d into *op and reports its output size (oh, ow may be NULL). */
static int create_conv(const layer_ctx *cx, const conv_desc *d, conv_op **op, int *oh, int *ow, mskx_err *e) {
  int rc = cx->eng->ops->conv_create(cx->eng, d, op, e);
  if (rc) return rc;
  if (oh) *oh = conv_out_h(d);
  if (ow) *ow = conv_out_w(d);
  return MSKX_OK;
}

/* A bf16 gradient flag of l (ddst_bf16, dsrc_bf16) in effect: only bf16
 * training plans have them. The planned descriptor and the views of the
 * gradient buffers both ask here, so that they cannot disagree. */
static int bf16_grad(const layer_ctx *cx, int flag) { return flag && cx->prec == PREC_BF16 && cx->train; }

int conv_layer_plan(const layer_ctx *cx, conv_layer *l, int n, int h, int w, int *oh, int *ow, mskx_err *e) {
  conv_desc d = layer_conv_desc(cx, l, n, h, w);
  d.need_backward = cx->train;
  d.ddst_bf16 = bf16_grad(cx, l->ddst_bf16);
  d.dsrc_bf16 = bf16_grad(cx, l->dsrc_bf16);
  return create_conv(cx, &d, &l->op, oh, ow, e);
}

view layer_conv_dx_view(const layer_ctx *cx, const conv_layer *l, float *dx, int n, int h, int w) {
  return bf16_grad(cx, l->dsrc_bf16) ? view_bf16(dx, n, h, w, l->cin) : view_make(dx, n, h, w, l->cin);
}

void conv_layer_unplan(const layer_ctx *cx, conv_layer *l) {
  if (l->op) cx->eng->ops->conv_destroy(l->op);
  l->op = NULL;
}

int bn_layer_plan(bn_layer *l, mskx_err *e) {
  l->mean = malloc(3 * (size_t)l->c * sizeof(float));
  if (!l->mean) return err_set(e, MSKX_ENOMEM, "out of memory (batch-norm statistics)");
  l->invstd = l->mean + l->c;
  l->varu = l->invstd + l->c;
  return MSKX_OK;
}

void bn_layer_unplan(bn_layer *l) {
  free(l->mean);
  l->mean = l->invstd = l->varu = NULL;
}

int conv_layer_forward(const layer_ctx *cx, conv_layer *l, const void *x, float *y, mskx_err *e) {
  const param_store *ps = cx->ps;
  return cx->eng->ops->conv_forward(l->op, x, ps_data(ps, l->w), ps->version, l->b >= 0 ? ps_data(ps, l->b) : NULL,
                                    y, e);
}

static void bn_infer_affine(const layer_ctx *cx, const bn_layer *l, float *scale, float *shift);

int conv_bn_fold_plan(const layer_ctx *cx, conv_bn_fold *f, const conv_layer *conv, int relu, int out_bf16, int n,
                      int h, int w, int *oh, int *ow, mskx_err *e) {
  *f = (conv_bn_fold){0};
  if (cx->train) return err_set(e, MSKX_EINTERNAL, "batch norm folding is for inference plans only");
  conv_desc d = layer_conv_desc(cx, conv, n, h, w);
  d.has_bias = 1; /* the folded shift */
  d.relu_post = relu;
  d.dst_bf16 = out_bf16 && cx->prec == PREC_BF16;
  size_t nw = (size_t)conv->cout * conv->cin * conv->kh * conv->kw;
  f->w = big_alloc(nw * sizeof(float));
  f->b = malloc((size_t)conv->cout * sizeof(float));
  if (!f->w || !f->b) {
    conv_bn_fold_unplan(cx, f);
    return err_set(e, MSKX_ENOMEM, "out of memory (folded convolution weights)");
  }
  int rc = create_conv(cx, &d, &f->op, oh, ow, e);
  if (rc) conv_bn_fold_unplan(cx, f);
  return rc;
}

void conv_bn_fold_unplan(const layer_ctx *cx, conv_bn_fold *f) {
  if (f->op) cx->eng->ops->conv_destroy(f->op);
  free(f->w);
  free(f->b);
  *f = (conv_bn_fold){0};
}

int conv_bn_fold_forward(const layer_ctx *cx, conv_bn_fold *f, const conv_layer *conv, const bn_layer *bn,
                         const void *x, void *y, mskx_err *e) {
  const param_store *ps = cx->ps;
  if (f->ver != ps->version) {
    int co = conv->cout;
    float scale[co], shift[co];
    bn_infer_affine(cx, bn, scale, shift);
    const float *w = ps_data(ps, conv->w), *cb = conv->b >= 0 ? ps_data(ps, conv->b) : NULL;
    size_t per = (size_t)conv->cin * conv->kh * conv->kw;
    for (int o = 0; o < co; o++) {
      for (size_t i = 0; i < per; i++) f->w[(size_t)o * per + i] = w[(size_t)o * per + i] * scale[o];
      f->b[o] = shift[o] + (cb ? cb[o] * scale[o] : 0.0f);
    }
    f->ver = ps->version;
  }
  return cx->eng->ops->conv_forward(f->op, x, f->w, ps->version, f->b, y, e);
}

void quantize_rows_s8(const float *w, int cout, size_t per, int8_t *q, float *scale) {
  for (int o = 0; o < cout; o++) {
    const float *r = w + (size_t)o * per;
    float m = 0;
    for (size_t i = 0; i < per; i++) m = fabsf(r[i]) > m ? fabsf(r[i]) : m;
    float sc = m > 0 ? m / 127.0f : 1.0f;
    /* A step s with (127 s) / 127 == s in float (one more round trip reaches
     * it): quantising the dequantised weights q * s again then gives q and s
     * back exactly, so a quantised model saved again is the same model. */
    for (int it = 0; it < 4; it++) {
      float again = (sc * 127.0f) / 127.0f;
      if (again == sc) break;
      sc = again;
    }
    scale[o] = sc;
    for (size_t i = 0; i < per; i++) {
      long v = lrintf(r[i] / scale[o]);
      q[(size_t)o * per + i] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
  }
}

int layer_in_scale(const layer_ctx *cx, const conv_layer *conv, float *step, mskx_err *e) {
  float s = cx->in_scale ? cx->in_scale[conv->w] : 0;
  if (!(s > 0) || !isfinite(s)) {
    const char *name = cx->ps->entries[conv->w].name, *dot = strrchr(name, '.');
    return err_set(e, MSKX_EFORMAT, "int8 plan: convolution %.*s has no valid input scale (%g)",
                   (int)(dot ? dot - name : (ptrdiff_t)strlen(name)), name, (double)s);
  }
  *step = s;
  return MSKX_OK;
}

int conv_int8_plan(const layer_ctx *cx, conv_int8 *q, const conv_layer *conv, const bn_layer *bn, int relu,
                   float out_step, int n, int h, int w, int *oh, int *ow, mskx_err *e) {
  *q = (conv_int8){0};
  float in_step = 0;
  int rc = layer_in_scale(cx, conv, &in_step, e);
  if (rc) return rc;
  const param_store *ps = cx->ps;
  int co = conv->cout;
  size_t per = (size_t)conv->cin * conv->kh * conv->kw;
  float *wf = big_alloc((size_t)co * per * sizeof(float)), *ws = malloc((size_t)co * sizeof(float) * 2);
  int has_b = bn || conv->b >= 0;
  q->w = big_alloc((size_t)co * per);
  q->b = has_b ? malloc((size_t)co * sizeof(float)) : NULL;
  if (!wf || !ws || !q->w || (has_b && !q->b)) {
    free(wf), free(ws);
    conv_int8_unplan(cx, q);
    return err_set(e, MSKX_ENOMEM, "out of memory (int8 convolution weights)");
  }
  float *os = ws + co;
  const float *w0 = ps_data(ps, conv->w), *cb = conv->b >= 0 ? ps_data(ps, conv->b) : NULL;
  float scale[co], shift[co];
  if (bn) bn_infer_affine(cx, bn, scale, shift);
  for (int o = 0; o < co; o++) {
    float sc = bn ? scale[o] : 1.0f;
    for (size_t i = 0; i < per; i++) wf[(size_t)o * per + i] = w0[(size_t)o * per + i] * sc;
    if (has_b) q->b[o] = (bn ? shift[o] : 0.0f) + (cb ? cb[o] * sc : 0.0f);
  }
  quantize_rows_s8(wf, co, per, q->w, ws);
  for (int o = 0; o < co; o++) {
    os[o] = in_step * ws[o] / (out_step > 0 ? out_step : 1.0f);
    if (has_b && out_step > 0) q->b[o] /= out_step;
  }
  conv_desc d = layer_conv_desc(cx, conv, n, h, w);
  d.prec = PREC_FP32;
  d.src_bf16 = 0;
  d.has_bias = has_b;
  d.relu_post = relu;
  d.int8 = 1;
  d.dst_u8 = out_step > 0;
  d.oscales = os;
  rc = create_conv(cx, &d, &q->op, oh, ow, e);
  free(wf);
  free(ws);
  if (rc) {
    conv_int8_unplan(cx, q);
    return err_prefix(e, "%s", ps->entries[conv->w].name);
  }
  q->ver = ps->version;
  return MSKX_OK;
}

void conv_int8_unplan(const layer_ctx *cx, conv_int8 *q) {
  if (q->op) cx->eng->ops->conv_destroy(q->op);
  free(q->w);
  free(q->b);
  *q = (conv_int8){0};
}

int conv_int8_forward(const layer_ctx *cx, conv_int8 *q, const uint8_t *x, void *y, mskx_err *e) {
  if (q->ver != cx->ps->version)
    return err_set(e, MSKX_EINTERNAL, "int8 plan: the parameters changed after planning (plan again)");
  /* wver 1: the weights are fixed for the plan's life, reordered once. */
  return cx->eng->ops->conv_forward(q->op, x, q->w, 1, q->b, y, e);
}

void bn_layer_forward_u8(const layer_ctx *cx, const bn_layer *l, view x, float step, uint8_t *y) {
  float scale[l->c], shift[l->c];
  bn_infer_affine(cx, l, scale, shift);
  for (int c = 0; c < l->c; c++) {
    scale[c] /= step;
    shift[c] /= step;
  }
  cx->eng->ops->bn_forward_affine_u8(x, scale, shift, y);
}

void layer_grads_written(const layer_ctx *cx, int idx) {
  if (cx->grad_ready) cx->grad_ready(cx->grad_ready_ctx, cx->ps->entries[idx].offset, cx->ps->entries[idx].numel);
}

int conv_layer_backward(const layer_ctx *cx, conv_layer *l, const void *x, const void *dy, float *dx, mskx_err *e) {
  const param_store *ps = cx->ps;
  int rc = cx->eng->ops->conv_backward_weights(l->op, x, dy, ps_grad(ps, l->w), l->b >= 0 ? ps_grad(ps, l->b) : NULL,
                                               e);
  if (!rc && cx->grad_ready) {
    layer_grads_written(cx, l->w);
    if (l->b >= 0) layer_grads_written(cx, l->b);
  }
  if (!rc && dx) rc = cx->eng->ops->conv_backward_data(l->op, dy, ps_data(ps, l->w), ps->version, dx, e);
  return rc;
}

/* Training-mode statistics in two passes (sum, then squared deviations),
 * with the per-channel sums added over processes in between when
 * synchronising, then bn_forward_train's arithmetic, so one process gives its
 * results exactly. Each channel's sums depend only on its own column, so the
 * statistics of a channel range equal those of the same channels in a wider view. */
float layer_bn_eps(const layer_ctx *cx) { return cx->bn_eps > 0 ? cx->bn_eps : BN_EPS; }

/* A layer's own epsilon (Inception-v3's 1e-3), else the model's. */
float bn_eps(const layer_ctx *cx, const bn_layer *l) { return l->eps > 0 ? l->eps : layer_bn_eps(cx); }

/* An engine op's failure (only ever running out of scratch memory), named. */
static int bn_failed(int rc, const char *what, int c, mskx_err *e) {
  return err_set(e, rc, "batch norm (%d channels): %s: %s", c, what,
                 rc == MSKX_ENOMEM ? "out of memory for the per-thread sums" : mskx_status_name(rc));
}

int bn_batch_stats(const layer_ctx *cx, view x, float eps, float *mean, float *invstd, float *varu, mskx_err *e) {
  int c = x.c;
  double s[c + 1];
  int rc = cx->eng->ops->bn_stats(x, NULL, s);
  if (rc) return bn_failed(rc, "batch statistics", c, e);
  s[c] = (double)x.n * x.h * x.w;
  if (cx->bn_sum && (rc = cx->bn_sum(cx->bn_sum_ctx, s, c + 1, e))) return rc;
  double m = s[c];
  for (int ch = 0; ch < c; ch++) mean[ch] = (float)(s[ch] / m);
  if ((rc = cx->eng->ops->bn_stats(x, mean, s))) return bn_failed(rc, "batch statistics", c, e);
  if (cx->bn_sum && (rc = cx->bn_sum(cx->bn_sum_ctx, s, c, e))) return rc;
  for (int ch = 0; ch < c; ch++) {
    double var = s[ch] / m;
    invstd[ch] = (float)(1.0 / sqrt(var + eps));
    varu[ch] = (float)(m > 1 ? var * m / (m - 1) : var);
  }
  return MSKX_OK;
}

/* scale/shift of the training-mode output from the saved statistics. */
static void bn_saved_affine(const layer_ctx *cx, const bn_layer *l, float *scale, float *shift) {
  const param_store *ps = cx->ps;
  const float *g = ps_data(ps, l->weight), *b = ps_data(ps, l->bias);
  for (int i = 0; i < l->c; i++) {
    scale[i] = g[i] * l->invstd[i];
    shift[i] = b[i] - l->mean[i] * scale[i];
  }
}

static int bn_has_shared(const bn_layer *l) { return l->shared && l->shared->mean; }

/* The layer's batch statistics (computed, or taken from l->shared) and its
 * output's scale/shift. */
static int bn_train_stats(const layer_ctx *cx, bn_layer *l, view x, float *scale, float *shift, mskx_err *e) {
  size_t c = (size_t)l->c;
  if (bn_has_shared(l)) {
    memcpy(l->mean, l->shared->mean, c * sizeof(float));
    memcpy(l->invstd, l->shared->invstd, c * sizeof(float));
    memcpy(l->varu, l->shared->varu, c * sizeof(float));
  } else {
    int rc = bn_batch_stats(cx, x, bn_eps(cx, l), l->mean, l->invstd, l->varu, e);
    if (rc) return rc;
  }
  bn_saved_affine(cx, l, scale, shift);
  return MSKX_OK;
}

static void bn_update_running(const layer_ctx *cx, const bn_layer *l) {
  float *rm = ps_data(cx->ps, l->rmean), *rv = ps_data(cx->ps, l->rvar);
  for (int c = 0; c < l->c; c++) {
    rm[c] = (1.0f - BN_MOMENTUM) * rm[c] + BN_MOMENTUM * l->mean[c];
    rv[c] = (1.0f - BN_MOMENTUM) * rv[c] + BN_MOMENTUM * l->varu[c];
  }
}

/* Inference scale/shift from the running statistics, as bn_forward_infer. */
static void bn_infer_affine(const layer_ctx *cx, const bn_layer *l, float *scale, float *shift) {
  const param_store *ps = cx->ps;
  const float *g = ps_data(ps, l->weight), *b = ps_data(ps, l->bias);
  const float *rm = ps_data(ps, l->rmean), *rv = ps_data(ps, l->rvar);
  for (int c = 0; c < l->c; c++) {
    scale[c] = (float)(g[c] / sqrt((double)rv[c] + bn_eps(cx, l)));
    shift[c] = b[c] - rm[c] * scale[c];
  }
}

int bn_layer_forward(const layer_ctx *cx, bn_layer *l, view x, view y, int relu, mskx_err *e) {
  const param_store *ps = cx->ps;
  const float *g = ps_data(ps, l->weight), *b = ps_data(ps, l->bias);
  if (!cx->train) {
    cx->eng->ops->bn_forward_infer(x, g, b, ps_data(ps, l->rmean), ps_data(ps, l->rvar), bn_eps(cx, l), relu, y);
    return MSKX_OK;
  }
  int rc;
  if (cx->bn_sum || bn_has_shared(l)) {
    float scale[l->c], shift[l->c];
    if ((rc = bn_train_stats(cx, l, x, scale, shift, e))) return rc;
    cx->eng->ops->bn_forward_affine(x, scale, shift, relu, y);
  } else if ((rc = cx->eng->ops->bn_forward_train(x, g, b, bn_eps(cx, l), relu, y, l->mean, l->invstd, l->varu))) {
    return bn_failed(rc, "forward", l->c, e);
  }
  bn_update_running(cx, l);
  return MSKX_OK;
}

int bn_layer_forward_conv(const layer_ctx *cx, bn_layer *l, view x, float *y, int relu, mskx_err *e) {
  if (cx->prec != PREC_BF16) return bn_layer_forward(cx, l, x, view_make(y, x.n, x.h, x.w, x.c), relu, e);
  float scale[l->c], shift[l->c];
  if (cx->train) {
    int rc = bn_train_stats(cx, l, x, scale, shift, e);
    if (rc) return rc;
  } else {
    bn_infer_affine(cx, l, scale, shift);
  }
  cx->eng->ops->bn_forward_affine_bf16(x, scale, shift, relu, (uint16_t *)y);
  if (cx->train) bn_update_running(cx, l);
  return MSKX_OK;
}

void bn_layer_recompute(const layer_ctx *cx, const bn_layer *l, view x, view y, int relu) {
  float scale[l->c], shift[l->c];
  bn_saved_affine(cx, l, scale, shift);
  cx->eng->ops->bn_forward_affine(x, scale, shift, relu, y);
}

void bn_layer_recompute_conv(const layer_ctx *cx, const bn_layer *l, view x, float *y, int relu) {
  if (cx->prec != PREC_BF16) {
    bn_layer_recompute(cx, l, x, view_make(y, x.n, x.h, x.w, x.c), relu);
    return;
  }
  float scale[l->c], shift[l->c];
  bn_saved_affine(cx, l, scale, shift);
  cx->eng->ops->bn_forward_affine_bf16(x, scale, shift, relu, (uint16_t *)y);
}

void layer_grad_for_conv(const layer_ctx *cx, view src, float *dst) {
  if (cx->prec != PREC_BF16) {
    cx->eng->ops->copy(src, view_make(dst, src.n, src.h, src.w, src.c));
    return;
  }
  float one[src.c], zero[src.c];
  for (int ch = 0; ch < src.c; ch++) one[ch] = 1.0f, zero[ch] = 0.0f;
  /* x * 1 + 0 is x exactly (a -0 becomes +0), then rounded as oneDNN rounds. */
  cx->eng->ops->bn_forward_affine_bf16(src, one, zero, 0, (uint16_t *)dst);
}

/* Backward in two steps, per-channel sums then dx. The parameter gradients
 * are this process's share (the gradient all-reduce adds them up); when
 * synchronising, dx needs the sums of the global batch, added over processes
 * in between. Without sums to add, dense_out NULL is the fused op. */
static int bn_backward_split(const layer_ctx *cx, bn_layer *l, view x, view dy, view dx, void *dense_out, int relu,
                             mskx_err *e) {
  const param_store *ps = cx->ps;
  const float *g = ps_data(ps, l->weight), *b = ps_data(ps, l->bias);
  float *dg = ps_grad(ps, l->weight), *db = ps_grad(ps, l->bias);
  int c = l->c, sync = cx->bn_sum && cx->train, rc;
  if (!sync && !dense_out) {
    if ((rc = cx->eng->ops->bn_backward(x, dy, g, b, l->mean, l->invstd, relu, dx, dg, db)))
      return bn_failed(rc, "backward", l->c, e);
  } else {
    double s[2 * c + 1];
    if ((rc = cx->eng->ops->bn_backward_stats(x, dy, g, b, l->mean, l->invstd, relu, s)))
      return bn_failed(rc, "backward", l->c, e);
    for (int ch = 0; ch < c; ch++) {
      db[ch] = (float)s[ch];
      dg[ch] = (float)s[c + ch];
    }
    s[2 * c] = (double)x.n * x.h * x.w;
    if (sync && (rc = cx->bn_sum(cx->bn_sum_ctx, s, 2 * c + 1, e))) return rc;
    if (dense_out)
      cx->eng->ops->bn_backward_dx_dense(x, dy, g, b, l->mean, l->invstd, relu, s, s[2 * c], dense_out,
                                         cx->prec == PREC_BF16);
    else
      cx->eng->ops->bn_backward_dx(x, dy, g, b, l->mean, l->invstd, relu, s, s[2 * c], dx);
  }
  if (cx->grad_ready) {
    layer_grads_written(cx, l->weight);
    layer_grads_written(cx, l->bias);
  }
  return MSKX_OK;
}

int bn_layer_backward(const layer_ctx *cx, bn_layer *l, view x, view dy, view dx, int relu, mskx_err *e) {
  return bn_backward_split(cx, l, x, dy, dx, NULL, relu, e);
}

int bn_layer_backward_conv(const layer_ctx *cx, bn_layer *l, view x, view dy, float *dx, int relu, mskx_err *e) {
  return bn_backward_split(cx, l, x, dy, (view){0}, dx, relu, e);
}

void init_kaiming_normal(float *w, size_t n, double fan, uint64_t seed, uint64_t stream) {
  rng r = rng_for(seed, stream, 1);
  double std = sqrt(2.0 / fan);
  for (size_t i = 0; i < n; i++) w[i] = (float)(std * rng_normal(&r));
}

void init_uniform(float *w, size_t n, double bound, uint64_t seed, uint64_t stream) {
  rng r = rng_for(seed, stream, 2);
  for (size_t i = 0; i < n; i++) w[i] = (float)(bound * (2.0 * rng_uniform(&r) - 1.0));
}

void init_trunc_normal(float *w, size_t n, double std, double a, double b, uint64_t seed, uint64_t stream) {
  rng r = rng_for(seed, stream, 3);
  for (size_t i = 0; i < n; i++) {
    double v;
    do v = std * rng_normal(&r);
    while (v < a || v > b);
    w[i] = (float)v;
  }
}

void bn_layer_init(const param_store *ps, const bn_layer *l) {
  float *g = ps_data(ps, l->weight), *b = ps_data(ps, l->bias), *rm = ps_data(ps, l->rmean),
        *rv = ps_data(ps, l->rvar);
  for (int i = 0; i < l->c; i++) {
    g[i] = 1.f;
    b[i] = 0.f;
    rm[i] = 0.f;
    rv[i] = 1.f;
  }
}
