/* Building blocks shared by the models: a convolution and a batch norm bound
 * to their parameters in the store, each with its forward and backward side
 * by side. A model is a list of these plus its own wiring (densenet.c,
 * resnet.c). */
#ifndef MSKX_GRAPH_LAYERS_H
#define MSKX_GRAPH_LAYERS_H
#include "engine/engine.h"
#include "nn/params.h"

/* PyTorch's BatchNorm2d defaults. */
#define BN_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* What every layer needs at run time. */
typedef struct layer_ctx {
  engine *eng;
  param_store *ps;
  int train;          /* batch statistics + running update (PyTorch's model.train()) */
  precision prec;
  /* Batch-norm epsilon; 0 (a zeroed context) means BN_EPS. Models imported
   * from Keras keep Keras's 1.001e-5 here so their numerics match. */
  float bn_eps;
  /* Data-parallel training hooks, NULL in a single process. grad_ready: the
   * gradients [offset, offset + numel) of ps->grads are final, so their
   * all-reduce can start while backward goes on (a failure to start one is
   * reported by the hook's owner later, when it waits for them). bn_sum: adds
   * n doubles over every process in place, returning MSKX_OK or an error
   * code with e set; set, training-mode batch norm uses the statistics of the
   * global batch (synchronised batch norm). */
  void (*grad_ready)(void *ctx, size_t offset, size_t numel);
  void *grad_ready_ctx;
  int (*bn_sum)(void *ctx, double *v, int n, mskx_err *e);
  void *bn_sum_ctx;
  /* int8 inference (a quantised model's inference plans): in_scale[idx] is
   * the quantisation step of the u8 input of the convolution whose weight is
   * store entry idx (0: that convolution stays fp32). NULL: an fp32 model. */
  int int8;
  const float *in_scale;
  /* Calibration (fp32 inference plans): called with every tensor that is the
   * input of a convolution a quantised model runs in int8 (post-ReLU, dense,
   * n floats), conv_w naming that convolution's weight entry. */
  void (*observe)(void *ctx, int conv_w, const float *x, size_t n);
  void *observe_ctx;
} layer_ctx;

/* The batch-norm epsilon a context uses (cx->bn_eps, or BN_EPS when 0). */
float layer_bn_eps(const layer_ctx *cx);
struct bn_layer;
/* The epsilon bn layer l uses: its own when set, else the context's. */
float bn_eps(const layer_ctx *cx, const struct bn_layer *l);

typedef struct conv_layer {
  int w, b;           /* store indices; b = -1 without bias */
  int cin, cout, kh, kw, stride, ph, pw;
  int src_bf16;       /* its input comes from bn_layer_forward_conv (bf16 in bf16 plans) */
  int ddst_bf16;      /* its output gradient comes from bn_layer_backward_conv or
                         layer_grad_for_conv (bf16 in bf16 plans) */
  int dsrc_bf16;      /* its input gradient goes only to a batch-norm backward, which
                         reads it as layer_conv_dx_view gives it (bf16 in bf16
                         training plans: half the bytes of that pass) */
  conv_op *op;        /* planned per shape */
} conv_layer;

/* Per-channel batch statistics of a buffer (training mode). */
typedef struct bn_channel_stats {
  float *mean, *invstd, *varu;
} bn_channel_stats;

typedef struct bn_layer {
  int weight, bias, rmean, rvar;
  int c;
  float eps;          /* the layer's own epsilon (Inception-v3: 1e-3); 0: the model's (bn_eps) */
  float *mean, *invstd, *varu;   /* saved batch statistics (train plans) */
  /* If set (and its arrays allocated), training mode takes the statistics of
   * its c channels from channels [0, c) of *shared instead of computing them:
   * DenseNet's norm1 layers, transition norm and norm5 all normalise channel
   * prefixes of one block buffer, whose per-channel batch statistics do not
   * change from layer to layer. The owner keeps *shared current (see
   * bn_batch_stats); the values are those the layer would compute. */
  const bn_channel_stats *shared;
} bn_layer;

/* Declarations ("prefix.weight", ...). */
int conv_layer_declare(param_store *ps, conv_layer *l, const char *prefix, int cin, int cout, int k, int stride,
                       int pad, int bias, mskx_err *e);
/* A kh x kw kernel with padding (ph, pw) (Inception's 1x7/7x1, 1x3/3x1). */
int conv_layer_declare_rect(param_store *ps, conv_layer *l, const char *prefix, int cin, int cout, int kh, int kw,
                            int stride, int ph, int pw, int bias, mskx_err *e);
int bn_layer_declare(param_store *ps, bn_layer *l, const char *prefix, int c, mskx_err *e);

/* Planning for an input of n x h x w; sets *oh, *ow if non-NULL. */
int conv_layer_plan(const layer_ctx *cx, conv_layer *l, int n, int h, int w, int *oh, int *ow, mskx_err *e);
void conv_layer_unplan(const layer_ctx *cx, conv_layer *l);
int bn_layer_plan(bn_layer *l, mskx_err *e);
void bn_layer_unplan(bn_layer *l);

int conv_layer_forward(const layer_ctx *cx, conv_layer *l, const void *x, float *y, mskx_err *e);
/* Writes the weight (and bias) gradients; dx (may be NULL) overwritten. */
int conv_layer_backward(const layer_ctx *cx, conv_layer *l, const void *x, const void *dy, float *dx, mskx_err *e);
/* The input gradient dx that conv_layer_backward wrote for an n x h x w
 * input, as the view a batch-norm backward reads as dy: bf16 when the layer
 * has dsrc_bf16 in a bf16 training plan, else floats. */
view layer_conv_dx_view(const layer_ctx *cx, const conv_layer *l, float *dx, int n, int h, int w);
/* A convolution's output gradient from a view: src copied to the dense
 * (n,h,w,c) buffer dst, as floats, or in bf16 plans rounded to bf16 (for a
 * conv_layer with ddst_bf16). */
void layer_grad_for_conv(const layer_ctx *cx, view src, float *dst);

/* The per-channel batch statistics bn_layer_forward computes in training
 * mode (bit-identical, synchronised over processes when cx->bn_sum is set):
 * mean, 1/sqrt(biased var + eps) and unbiased var, each x.c floats. */
int bn_batch_stats(const layer_ctx *cx, view x, float eps, float *mean, float *invstd, float *varu, mskx_err *e);

/* Train: batch statistics, saved, running statistics updated. Eval: running.
 * Training-mode batch norm fails (MSKX_ENOMEM) when the engine cannot
 * allocate the scratch of its reductions; inference cannot fail. */
int bn_layer_forward(const layer_ctx *cx, bn_layer *l, view x, view y, int relu, mskx_err *e);
/* Batch norm (+ReLU) whose output feeds a convolution with src_bf16 set:
 * y is a dense (n,h,w,c) buffer of floats, or, in bf16 plans, of bf16 values
 * (half the bytes), so the convolution needs no conversion pass. The values
 * are those of bn_layer_forward rounded as oneDNN rounds. */
int bn_layer_forward_conv(const layer_ctx *cx, bn_layer *l, view x, float *y, int relu, mskx_err *e);
void bn_layer_recompute_conv(const layer_ctx *cx, const bn_layer *l, view x, float *y, int relu);
/* Recomputes the training-mode output from x and the saved statistics (the
 * memory-efficient path: outputs are not stored between forward and backward). */
void bn_layer_recompute(const layer_ctx *cx, const bn_layer *l, view x, view y, int relu);
/* dx accumulated; parameter gradients written. */
int bn_layer_backward(const layer_ctx *cx, bn_layer *l, view x, view dy, view dx, int relu, mskx_err *e);
/* The same for a batch norm whose input is a convolution's output: dx is a
 * dense (n,h,w,c) buffer, OVERWRITTEN, of floats, or in bf16 plans of bf16
 * values (that convolution's output gradient, with ddst_bf16 set). */
int bn_layer_backward_conv(const layer_ctx *cx, bn_layer *l, view x, view dy, float *dx, int relu, mskx_err *e);

/* Inference: a convolution followed by batch norm (running statistics) and
 * an optional ReLU, folded into one oneDNN convolution: weights scaled per
 * output channel by gamma / sqrt(running_var + eps), bias beta -
 * running_mean * scale (plus the convolution's own bias, scaled), the ReLU a
 * post-op, and the output written in the next convolution's input type
 * (bf16 with out_bf16 in bf16 plans). One pass instead of a convolution, a
 * batch-norm pass and a conversion. Refolded whenever the parameters change
 * (ps->version). */
typedef struct conv_bn_fold {
  conv_op *op;
  float *w, *b;       /* folded weights (the convolution's OIHW shape) and bias */
  uint64_t ver;       /* ps->version folded (0: none yet) */
} conv_bn_fold;

int conv_bn_fold_plan(const layer_ctx *cx, conv_bn_fold *f, const conv_layer *conv, int relu, int out_bf16, int n,
                      int h, int w, int *oh, int *ow, mskx_err *e);
void conv_bn_fold_unplan(const layer_ctx *cx, conv_bn_fold *f);
/* y: dense (n,oh,ow,cout), float or (out_bf16 in bf16 plans) bf16. */
int conv_bn_fold_forward(const layer_ctx *cx, conv_bn_fold *f, const conv_layer *conv, const bn_layer *bn,
                         const void *x, void *y, mskx_err *e);

/* Int8 inference: a convolution with u8 input, its weights (folded with a
 * following batch norm, if any) quantised per output channel to s8 at plan
 * time, y = f32, or u8 with step out_step (> 0) for the next int8
 * convolution. The plan bakes the scales in, so a forward after the
 * parameters changed is refused (re-plan). */
typedef struct conv_int8 {
  conv_op *op;
  int8_t *w;          /* OIHW */
  float *b;           /* bias in output units (NULL: none) */
  uint64_t ver;       /* ps->version quantised */
} conv_int8;

/* Symmetric per-output-channel quantisation of cout rows of `per` weights:
 * scale[o] = max |w[o]| / 127 (1 for an all-zero row), q = round(w / scale). */
void quantize_rows_s8(const float *w, int cout, size_t per, int8_t *q, float *scale);
/* The step of conv's u8 input (cx->in_scale), or an error naming conv. */
int layer_in_scale(const layer_ctx *cx, const conv_layer *conv, float *step, mskx_err *e);
int conv_int8_plan(const layer_ctx *cx, conv_int8 *q, const conv_layer *conv, const bn_layer *bn, int relu,
                   float out_step, int n, int h, int w, int *oh, int *ow, mskx_err *e);
void conv_int8_unplan(const layer_ctx *cx, conv_int8 *q);
/* x: dense u8 (n,h,w,cin); y: dense (n,oh,ow,cout) f32 or u8. */
int conv_int8_forward(const layer_ctx *cx, conv_int8 *q, const uint8_t *x, void *y, mskx_err *e);
/* Inference batch norm + ReLU quantised to u8 with the given step: the input
 * of an int8 convolution (y dense (n,h,w,c)). */
void bn_layer_forward_u8(const layer_ctx *cx, const bn_layer *l, view x, float step, uint8_t *y);
/* Reports a calibration tensor to cx->observe (if set). */
static inline void layer_observe(const layer_ctx *cx, const conv_layer *conv, const void *x, size_t n) {
  if (cx->observe) cx->observe(cx->observe_ctx, conv->w, (const float *)x, n);
}

/* Tells cx->grad_ready (if any) that entry idx's gradient is final. */
void layer_grads_written(const layer_ctx *cx, int idx);

/* Torchvision initialisations. */
void init_kaiming_normal(float *w, size_t n, double fan, uint64_t seed, uint64_t stream);
void init_uniform(float *w, size_t n, double bound, uint64_t seed, uint64_t stream);
/* torch.nn.init.trunc_normal_(mean 0, std, a, b): normal draws outside
 * [a, b] (absolute bounds, as PyTorch's) are redrawn. */
void init_trunc_normal(float *w, size_t n, double std, double a, double b, uint64_t seed, uint64_t stream);
void bn_layer_init(const param_store *ps, const bn_layer *l);

#endif
