/* The compute interface. Models and training talk only to this header; the
 * oneDNN backend (engine_dnnl.c) and the plain-C reference (engine_ref.c,
 * linked into tests only) implement it, and a GPU backend can be added
 * beside them.
 *
 * Layout: activations are float32 channels-last (NHWC). A `view` can address
 * a channel range of a wider buffer (ld > c), which is how dense blocks let
 * each layer read a prefix of, and write its new channels into, one shared
 * block buffer without copying the growing feature map.
 *
 * Gradient conventions (llm.c-style): parameter gradients are written (each
 * parameter is used by exactly one op); activation gradients of ops that can
 * read a view (batch norm, pools, copy) are ACCUMULATED into dx, because a
 * dense-block buffer collects gradients from every later layer; convolution
 * and linear backward-data overwrite their dense dx. */
#ifndef MSKX_ENGINE_H
#define MSKX_ENGINE_H
#include <stddef.h>
#include <stdint.h>
#include "mskx.h"

/* PREC_AUTO is a request, never a plan's precision: net_plan resolves it to
 * the fastest allowed precision on this machine (net_choose_precision). */
typedef enum precision { PREC_FP32 = 0, PREC_BF16 = 1, PREC_AUTO = 2 } precision;
#define PREC_COUNT 2    /* concrete precisions */
static inline const char *precision_name(precision p) {
  return p == PREC_BF16 ? "bf16" : p == PREC_AUTO ? "auto" : "fp32";
}

/* NHWC view: element (n, y, x, ch) lives at p[((n*h + y)*w + x)*ld + ch].
 * With bf16 set the elements are bf16 (uint16_t) at ((uint16_t *)p)[...]:
 * only the batch-norm backward ops accept such a view, and only as dy (a
 * bf16 convolution's input gradient, written by a convolution with
 * dsrc_bf16); every other op takes float views. */
typedef struct view {
  float *p;
  int n, h, w, c;
  int ld;
  int bf16;
} view;

static inline view view_make(float *p, int n, int h, int w, int c) {
  view v = {p, n, h, w, c, c, 0};
  return v;
}
/* A dense (n,h,w,c) buffer of bf16 values. */
static inline view view_bf16(void *p, int n, int h, int w, int c) {
  view v = {(float *)p, n, h, w, c, c, 1};
  return v;
}
/* Channels [c0, c0 + c) of v. */
static inline view view_channels(view v, int c0, int c) {
  view s = v;
  s.p = v.bf16 ? (float *)((uint16_t *)(void *)v.p + c0) : v.p + c0;
  s.c = c;
  return s;
}
static inline size_t view_numel(view v) { return (size_t)v.n * v.h * v.w * v.c; }

typedef struct conv_desc {
  int n, h, w;          /* input batch and spatial size */
  int cin, cout;
  int kh, kw, sh, sw, ph, pw;
  int has_bias;
  precision prec;       /* PREC_BF16: bf16 compute with f32 inputs/outputs */
  int need_backward;    /* plan backward-data/-weights too (training) */
  int src_bf16;         /* with PREC_BF16: x is already bf16 (uint16 NHWC), written by
                           bn_forward_affine_bf16, so no conversion pass is needed */
  int ddst_bf16;        /* with PREC_BF16: the output gradient dy of both backward
                           passes is already bf16 (uint16 NHWC), as written by
                           bn_backward_dx_dense, so no conversion pass is needed */
  int dsrc_bf16;        /* with PREC_BF16 and need_backward: backward-data writes dx
                           as bf16 (uint16 NHWC, half the bytes), for a batch norm's
                           backward to read as a bf16 view (view_bf16) */
  /* Forward-only fusions (need_backward 0; inference with batch norm folded
   * into the weights and bias, see conv_bn_fold in nn/layers.h): */
  int relu_post;        /* y = max(conv + bias, 0) in the same pass */
  int dst_bf16;         /* with PREC_BF16: y written as bf16 (uint16 NHWC), ready
                           to be the input of a convolution with src_bf16 */
  /* int8 inference (forward only, prec PREC_FP32): x is u8 NHWC (a post-ReLU
   * activation quantised as x_u8 * in_scale), the weights s8 OIHW (int8_t),
   * the bias f32, and
   *   y[oc] = oscales[oc] * sum(x_u8 * w_s8) + bias[oc]
   * in f32, or with dst_u8 rounded and saturated to u8 (after relu_post).
   * oscales (cout values) is read at creation. */
  int int8;
  int dst_u8;
  const float *oscales;
} conv_desc;

static inline int conv_out_h(const conv_desc *d) { return (d->h + 2 * d->ph - d->kh) / d->sh + 1; }
static inline int conv_out_w(const conv_desc *d) { return (d->w + 2 * d->pw - d->kw) / d->sw + 1; }

typedef struct pool_desc {
  int n, h, w, c;
  int k, s, p;          /* square window, stride, padding */
} pool_desc;
static inline int pool_out(int in, int k, int s, int p) { return (in + 2 * p - k) / s + 1; }

typedef struct conv_op conv_op;      /* a planned convolution (opaque per backend) */
typedef struct linear_op linear_op;  /* a planned fully connected layer */
typedef struct engine engine;

/* Per-op functions. Weights are torchvision's layout: conv OIHW, linear
 * (out, in). `wver` is a version number of the weights: a backend may cache
 * converted weights while it does not change (pass a new value after every
 * optimizer step). */
typedef struct engine_ops {
  const char *name;
  void (*destroy)(engine *eng);

  int (*conv_create)(engine *eng, const conv_desc *d, conv_op **out, mskx_err *e);
  void (*conv_destroy)(conv_op *op);
  /* x: dense (n,h,w,cin) float, or bf16 when d->src_bf16, or u8 when d->int8;
   * w: float OIHW, or int8_t OIHW when d->int8; y: dense (n,oh,ow,cout)
   * overwritten, float, or bf16 when d->dst_bf16, or u8 when d->dst_u8. */
  int (*conv_forward)(conv_op *op, const void *x, const void *w, uint64_t wver, const float *b,
                      void *y, mskx_err *e);
  /* dy: dense (n,oh,ow,cout) float, or bf16 when d->ddst_bf16. dx overwritten:
   * dense (n,h,w,cin) float, or bf16 (uint16_t) when d->dsrc_bf16. */
  int (*conv_backward_data)(conv_op *op, const void *dy, const float *w, uint64_t wver, float *dx,
                            mskx_err *e);
  /* dw (OIHW) and db (if bias) overwritten. */
  int (*conv_backward_weights)(conv_op *op, const void *x, const void *dy, float *dw, float *db,
                               mskx_err *e);

  int (*linear_create)(engine *eng, int n, int in, int out, linear_op **op, mskx_err *e);
  void (*linear_destroy)(linear_op *op);
  int (*linear_forward)(linear_op *op, const float *x, const float *w, const float *b, float *y,
                        mskx_err *e);
  /* dx, dw, db overwritten; dx may be NULL. */
  int (*linear_backward)(linear_op *op, const float *x, const float *dy, const float *w, float *dx,
                         float *dw, float *db, mskx_err *e);

  /* Batch norm (+ optional ReLU) in training mode: batch statistics over
   * (n,h,w); writes mean and invstd = 1/sqrt(var_biased + eps) per channel,
   * and var_unbiased for the running-statistics update. The four ops that
   * reduce over rows return MSKX_OK, or MSKX_ENOMEM when their scratch
   * cannot be allocated (outputs then unspecified; the caller names the op). */
  int (*bn_forward_train)(view x, const float *gamma, const float *beta, float eps, int relu,
                          view y, float *mean, float *invstd, float *var_unbiased);
  /* Inference: running statistics. */
  void (*bn_forward_infer)(view x, const float *gamma, const float *beta, const float *rmean,
                           const float *rvar, float eps, int relu, view y);
  /* y = x * scale + shift per channel (+ ReLU): recomputes a training-mode
   * output bit-exactly, since bn_forward_train normalises through
   * scale = gamma * invstd, shift = beta - mean * scale (float arithmetic). */
  void (*bn_forward_affine)(view x, const float *scale, const float *shift, int relu, view y);
  /* The same, rounded to bf16 (round to nearest even, as oneDNN's reorder)
   * into a dense (n,h,w,c) buffer: a bf16 convolution's input. A subnormal
   * value may become a signed zero instead: the oneDNN engine converts with
   * vcvtneps2bf16 where the CPU has AVX512-BF16, which flushes them, as
   * oneDNN's own reorder does there (src/engine/bf16_cpu.h). */
  void (*bn_forward_affine_bf16)(view x, const float *scale, const float *shift, int relu, uint16_t *y);
  /* The same with ReLU, quantised to u8 for an int8 convolution's input
   * (dense (n,h,w,c)): y = min(255, round_half_up(max(x * scale + shift, 0))),
   * the caller's scale and shift already divided by the quantisation step. */
  void (*bn_forward_affine_u8)(view x, const float *scale, const float *shift, uint8_t *y);
  /* Backward of the training-mode forward. With relu, the mask is recomputed
   * from x (nothing but x and the saved statistics is stored). dx ACCUMULATED;
   * dgamma, dbeta overwritten. Here and in the split ops below, dy may be a
   * bf16 view (view_bf16: a convolution's dsrc_bf16 input gradient); its
   * values are read exactly, as floats. */
  int (*bn_backward)(view x, view dy, const float *gamma, const float *beta, const float *mean,
                     const float *invstd, int relu, view dx, float *dgamma, float *dbeta);
  /* Synchronised batch norm (data-parallel training) splits the two ops
   * above where per-channel sums must be added over processes:
   *   bn_stats: out[ch] = sum over (n,h,w) of x (mean NULL) or of
   *     (x - mean)^2, in double, in bn_forward_train's order;
   *   bn_backward_stats: sums[ch] = sum g, sums[c+ch] = sum g*xhat, with g
   *     as in bn_backward (these are dbeta and dgamma of the rows);
   *   bn_backward_dx: dx += gamma*invstd * (g - sums[ch]/count -
   *     xhat*sums[c+ch]/count), sums and count (rows) of the whole batch;
   *   bn_backward_dx_dense: the same values written to a dense (n,h,w,c)
   *     buffer (OVERWRITTEN, no accumulation), as floats, or with bf16 set
   *     rounded to bf16 (as bn_forward_affine_bf16 rounds) for a bf16
   *     convolution's output gradient (ddst_bf16).
   * With one process's sums and count = n*h*w, the results equal
   * bn_forward_train's (through bn_forward_affine) and bn_backward's. */
  int (*bn_stats)(view x, const float *mean, double *out);
  int (*bn_backward_stats)(view x, view dy, const float *gamma, const float *beta, const float *mean,
                           const float *invstd, int relu, double *sums);
  void (*bn_backward_dx)(view x, view dy, const float *gamma, const float *beta, const float *mean,
                         const float *invstd, int relu, const double *sums, double count, view dx);
  void (*bn_backward_dx_dense)(view x, view dy, const float *gamma, const float *beta, const float *mean,
                               const float *invstd, int relu, const double *sums, double count, void *dx,
                               int bf16);

  /* y = relu(a + b) (residual join); b may equal y. */
  void (*add_relu_forward)(view a, view b, view y);
  /* Given y and dy: da = db = dy * (y > 0); both overwritten (skip db with db.p == NULL). */
  void (*add_relu_backward)(view y, view dy, view da, view db);
  void (*relu_forward)(view x, view y);

  /* Max pooling with padding as -inf; argmax saved for backward: per output
   * element, the input index iy*w+ix within its image (first maximum in
   * row-major window order, as PyTorch). dx ACCUMULATED. */
  void (*maxpool_forward)(const pool_desc *d, view x, view y, int32_t *argmax);
  void (*maxpool_backward)(const pool_desc *d, view dy, const int32_t *argmax, view dx);
  /* Average pooling, count_include_pad = true (torchvision's transitions use
   * no padding, where both conventions agree). dx ACCUMULATED. */
  void (*avgpool_forward)(const pool_desc *d, view x, view y);
  void (*avgpool_backward)(const pool_desc *d, view dy, view dx);
  /* Global average pooling to y (n, c) dense; backward ACCUMULATES into dx. */
  void (*gap_forward)(view x, float *y);
  void (*gap_backward)(const float *dy, view dx);

  /* Channel copy (the concat of a dense block): dst = src. */
  void (*copy)(view src, view dst);
  /* dst += src. */
  void (*accumulate)(view src, view dst);

  /* Mean over i of w_i * BCEWithLogits(z_i, t_i) (PyTorch's
   * BCEWithLogitsLoss(weight=w, reduction='mean')); w may be NULL (all 1).
   * dz (may be NULL) receives d loss / d z_i. Returns the loss. */
  double (*bce_logits)(const float *z, const float *t, const float *w, int n, float *dz);
} engine_ops;

struct engine {
  const engine_ops *ops;
  int threads;          /* OpenMP threads of its ops (engine_threads_enter) */
  /* oneDNN primitives (convolutions, matmuls, reorders) created so far: the
   * planning work, counted for the per-epoch overhead figures. */
  long prims_created;
  void *impl;           /* backend state */
};

/* The oneDNN CPU engine. threads <= 0: OpenMP's default for the creating
 * thread at creation (omp_get_max_threads). */
int engine_dnnl_create(int threads, engine **out, mskx_err *e);
/* Also frees the calling thread's kernel scratch (kernels_cpu.h). */
void engine_destroy(engine *eng);

/* The engine's thread count for the duration of one call. oneDNN (built on
 * the OpenMP runtime) takes no thread count of its own: it sizes its
 * parallel regions, at primitive creation and at execution, by the calling
 * thread's nthreads ICV (omp_get_max_threads), and so do the kernels'
 * regions. The library must not change that setting behind its caller's
 * back (another library, or the caller's own OpenMP code, would inherit it),
 * so every entry point that runs ops (net_plan, net_forward, net_backward,
 * the optimizer step) sets the ICV to eng->threads on entry and puts the
 * caller's value back before it returns. The ICV belongs to the calling
 * thread alone, so concurrent callers on other threads are unaffected.
 * Returns the caller's value, to pass to engine_threads_leave. */
int engine_threads_enter(const engine *eng);
void engine_threads_leave(int saved);
/* Whether this CPU runs bf16 natively (AVX512-BF16 or AMX). */
int engine_dnnl_has_bf16(void);

/* The plain-C reference engine (tests only; built into libmskx_ref). */
int engine_ref_create(engine **out, mskx_err *e);

#endif
