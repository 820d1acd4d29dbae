/* ResNet-50 as torchvision builds it (bottlenecks with the stride on the 3x3
 * convolution, projection shortcuts "downsample.0/1"), with a one-logit fc.
 * BN+ReLU outputs feeding a convolution are recomputed in backward rather
 * than stored; convolution outputs and block outputs are kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "models/families.h"
#include "models/net.h"

typedef struct bottleneck {
  conv_layer conv1, conv2, conv3, conv_down;   /* conv_down: torchvision's downsample.0 */
  bn_layer bn1, bn2, bn3, bn_down;
  conv_bn_fold fold1, fold2, fold3, fold_down;   /* inference: each convolution with its batch norm */
  int has_down, cin, width, cout, stride;
  int h, w, oh, ow;                 /* planned */
  /* The convolutions' outputs (batch-norm inputs) and the block's output
   * after the residual ReLU: kept for backward when training. */
  float *conv1_out, *conv2_out, *conv3_out, *down_out, *out;
} bottleneck;

typedef struct resnet {
  conv_layer conv1;
  bn_layer bn1;
  conv_bn_fold fold1;               /* inference: conv1 + bn1 + ReLU */
  pool_desc pool;
  bottleneck *blocks;
  int n_blocks, c_final;
  linear_op *head;
  /* plan */
  int h0, w0;                       /* after conv1 */
  int stem_h, stem_w;               /* after the stem's max pool: the first block's input */
  const float *x;                   /* input of the latest forward (caller-owned) */
  float *conv1_out, *stem_out;      /* the stem convolution's output; the max pool's */
  float *pooled, *d_pooled;         /* global average pool: the classifier's input */
  int32_t *argmax;                  /* the stem max pool's argmax */
  /* Scratch shared by every block in turn (training: with gradients): */
  float *bn_out, *d_bn_out;         /* a batch norm's output, the next convolution's input */
  float *d_conv_out;                /* a convolution's output gradient (from its batch norm) */
  float *d_sum;                     /* the gradient at the residual sum (through the final ReLU) */
  float *d_down_in;                 /* the downsample branch's input gradient */
  float *d_block_out[2];            /* block output gradients, ping-pong from the last block back */
  float *arena;
} resnet;

static resnet *rn(const net *m) { return (resnet *)m->impl; }

static int declare(net *m, resnet *r, mskx_err *e) {
  param_store *ps = &m->ps;
  static const int planes[4] = {64, 128, 256, 512};
  char p[128];
  int rc = conv_layer_declare(ps, &r->conv1, "conv1", 3, 64, 7, 2, 3, 0, e);
  if (!rc) rc = bn_layer_declare(ps, &r->bn1, "bn1", 64, e);
  r->n_blocks = 0;
  for (int s = 0; s < 4; s++) r->n_blocks += m->arch.blocks[s];
  r->blocks = calloc((size_t)r->n_blocks, sizeof *r->blocks);
  if (!r->blocks) return err_set(e, MSKX_ENOMEM, "out of memory");
  int cin = 64, k = 0;
  for (int s = 0; s < 4 && !rc; s++)
    for (int i = 0; i < m->arch.blocks[s] && !rc; i++, k++) {
      bottleneck *b = &r->blocks[k];
      b->cin = cin;
      b->width = planes[s];
      b->cout = planes[s] * 4;
      b->stride = (s > 0 && i == 0) ? 2 : 1;
      b->has_down = i == 0;
      struct {
        conv_layer *c;
        bn_layer *bn;
        const char *cn, *bnn;
        int ci, co, ks, st, pad;
      } parts[4] = {{&b->conv1, &b->bn1, "conv1", "bn1", cin, b->width, 1, 1, 0},
                    {&b->conv2, &b->bn2, "conv2", "bn2", b->width, b->width, 3, b->stride, 1},
                    {&b->conv3, &b->bn3, "conv3", "bn3", b->width, b->cout, 1, 1, 0},
                    {&b->conv_down, &b->bn_down, "downsample.0", "downsample.1", cin, b->cout, 1, b->stride, 0}};
      for (int j = 0; j < (b->has_down ? 4 : 3) && !rc; j++) {
        snprintf(p, sizeof p, "layer%d.%d.%s", s + 1, i, parts[j].cn);
        rc = conv_layer_declare(ps, parts[j].c, p, parts[j].ci, parts[j].co, parts[j].ks, parts[j].st, parts[j].pad,
                                0, e);
        snprintf(p, sizeof p, "layer%d.%d.%s", s + 1, i, parts[j].bnn);
        if (!rc) rc = bn_layer_declare(ps, parts[j].bn, p, parts[j].co, e);
      }
      cin = b->cout;
    }
  r->c_final = cin;
  int64_t ws[2] = {1, cin}, bs[1] = {1};
  if (!rc && (m->head_w = ps_declare(ps, "fc.weight", PK_PARAM, 2, ws, e)) < 0) rc = e->code;
  if (!rc && (m->head_b = ps_declare(ps, "fc.bias", PK_PARAM, 1, bs, e)) < 0) rc = e->code;
  return rc;
}

static void init_conv(const net *m, const conv_layer *l, uint64_t seed) {
  /* torchvision ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"). */
  init_kaiming_normal(ps_data(&m->ps, l->w), m->ps.entries[l->w].numel, (double)l->cout * l->kh * l->kw, seed,
                      (uint64_t)l->w);
}

static void resnet_init(net *m, uint64_t seed) {
  resnet *r = rn(m);
  init_conv(m, &r->conv1, seed);
  bn_layer_init(&m->ps, &r->bn1);
  for (int k = 0; k < r->n_blocks; k++) {
    bottleneck *b = &r->blocks[k];
    init_conv(m, &b->conv1, seed);
    init_conv(m, &b->conv2, seed);
    init_conv(m, &b->conv3, seed);
    bn_layer_init(&m->ps, &b->bn1);
    bn_layer_init(&m->ps, &b->bn2);
    bn_layer_init(&m->ps, &b->bn3);
    if (b->has_down) {
      init_conv(m, &b->conv_down, seed);
      bn_layer_init(&m->ps, &b->bn_down);
    }
  }
  /* nn.Linear defaults: weight and bias uniform in +-1/sqrt(fan_in). */
  double bound = 1.0 / sqrt((double)r->c_final);
  init_uniform(ps_data(&m->ps, m->head_w), (size_t)r->c_final, bound, seed, (uint64_t)m->head_w);
  init_uniform(ps_data(&m->ps, m->head_b), 1, bound, seed, (uint64_t)m->head_b);
  net_params_changed(m);
}

static void resnet_unplan(net *m) {
  resnet *r = rn(m);
  layer_ctx *cx = &m->cx;
  conv_layer_unplan(cx, &r->conv1);
  bn_layer_unplan(&r->bn1);
  conv_bn_fold_unplan(cx, &r->fold1);
  for (int k = 0; k < r->n_blocks; k++) {
    bottleneck *b = &r->blocks[k];
    conv_layer *cs[4] = {&b->conv1, &b->conv2, &b->conv3, &b->conv_down};
    bn_layer *bs[4] = {&b->bn1, &b->bn2, &b->bn3, &b->bn_down};
    conv_bn_fold *fs[4] = {&b->fold1, &b->fold2, &b->fold3, &b->fold_down};
    for (int j = 0; j < 4; j++) {
      conv_layer_unplan(cx, cs[j]);
      bn_layer_unplan(bs[j]);
      conv_bn_fold_unplan(cx, fs[j]);
    }
  }
  if (r->head) cx->eng->ops->linear_destroy(r->head);
  r->head = NULL;
  free(r->arena);
  r->arena = NULL;
  free(r->argmax);
  r->argmax = NULL;
}

/* Plans every layer and returns the float counts of the activations: the
 * largest scratch buffer, every block's kept tensors (training) and the
 * largest one block's (inference, which reuses one block's worth). */
static int plan_layers(net *m, int n, int h, int w, size_t *scratch, size_t *kept_all, size_t *one_block,
                       mskx_err *e) {
  resnet *r = rn(m);
  const layer_ctx *cx = &m->cx;
  /* Inference folds every batch norm into the convolution before it. */
  int train = cx->train;
#define PLAN(conv, fold, relu, n, h, w, oh, ow)                      \
  (train ? conv_layer_plan(cx, conv, n, h, w, oh, ow, e) \
         : conv_bn_fold_plan(cx, fold, conv, relu, 0, n, h, w, oh, ow, e))
  int rc = PLAN(&r->conv1, &r->fold1, 1, n, h, w, &r->h0, &r->w0);
  if (!rc) rc = bn_layer_plan(&r->bn1, e);
  r->pool = (pool_desc){.n = n, .h = r->h0, .w = r->w0, .c = 64, .k = 3, .s = 2, .p = 1};
  r->stem_h = pool_out(r->h0, 3, 2, 1);
  r->stem_w = pool_out(r->w0, 3, 2, 1);
  size_t n_scratch = (size_t)n * r->h0 * r->w0 * 64, n_kept_all = 0, n_one_block = 0;
  int ch = r->stem_h, cw = r->stem_w;
  for (int k = 0; k < r->n_blocks && !rc; k++) {
    bottleneck *b = &r->blocks[k];
    b->h = ch;
    b->w = cw;
    rc = PLAN(&b->conv1, &b->fold1, 1, n, ch, cw, NULL, NULL);
    if (!rc) rc = PLAN(&b->conv2, &b->fold2, 1, n, ch, cw, &b->oh, &b->ow);
    if (!rc) rc = PLAN(&b->conv3, &b->fold3, 0, n, b->oh, b->ow, NULL, NULL);
    if (!rc && b->has_down) rc = PLAN(&b->conv_down, &b->fold_down, 0, n, ch, cw, NULL, NULL);
    bn_layer *bs[4] = {&b->bn1, &b->bn2, &b->bn3, &b->bn_down};
    for (int j = 0; j < (b->has_down ? 4 : 3) && !rc; j++) rc = bn_layer_plan(bs[j], e);
    size_t in = (size_t)n * ch * cw, out = (size_t)n * b->oh * b->ow;
    size_t n_block = in * b->width + out * b->width + out * b->cout * (b->has_down ? 3 : 2);
    n_kept_all += n_block;
    n_one_block = n_one_block > n_block ? n_one_block : n_block;
    size_t big = in * (size_t)(b->cin > b->width ? b->cin : b->width);
    n_scratch = n_scratch > big ? n_scratch : big;
    n_scratch = n_scratch > out * b->cout ? n_scratch : out * b->cout;
    ch = b->oh;
    cw = b->ow;
  }
#undef PLAN
  *scratch = n_scratch;
  *kept_all = n_kept_all;
  *one_block = n_one_block;
  return rc;
}

static int resnet_plan(net *m, int n, int h, int w, mskx_err *e) {
  resnet *r = rn(m);
  const layer_ctx *cx = &m->cx;
  size_t n_scratch, n_kept_all, n_one_block;
  int rc = plan_layers(m, n, h, w, &n_scratch, &n_kept_all, &n_one_block, e);
  if (!rc) rc = cx->eng->ops->linear_create(cx->eng, n, r->c_final, 1, &r->head, e);
  if (rc) return rc;
  int train = cx->train;
  size_t n_conv1_out = (size_t)n * r->h0 * r->w0 * 64, n_stem_out = (size_t)n * r->stem_h * r->stem_w * 64;
  size_t n_pooled = (size_t)n * r->c_final;
  /* Training keeps every block's tensors; inference shares one block's worth
   * plus two ping-pong outputs. */
  size_t total = n_conv1_out + n_stem_out + 2 * n_pooled + 2 * n_scratch +
                 (train ? n_kept_all + 5 * n_scratch : n_one_block + 2 * n_scratch);
  r->arena = big_alloc(total * sizeof(float));
  r->argmax = malloc(n_stem_out * sizeof(int32_t));
  if (!r->arena || !r->argmax) return err_set(e, MSKX_ENOMEM, "cannot allocate %zu MB of activations", total >> 18);
  float *p = r->arena;
#define TAKE(ptr, count) (ptr = p, p += (count))
  TAKE(r->conv1_out, n_conv1_out);
  TAKE(r->stem_out, n_stem_out);
  TAKE(r->pooled, n_pooled);
  TAKE(r->d_pooled, n_pooled);
  TAKE(r->bn_out, n_scratch);
  TAKE(r->d_bn_out, n_scratch);
  float *out_pp[2];
  if (train) {
    TAKE(r->d_conv_out, n_scratch);
    TAKE(r->d_sum, n_scratch);
    TAKE(r->d_down_in, n_scratch);
    TAKE(r->d_block_out[0], n_scratch);
    TAKE(r->d_block_out[1], n_scratch);
  } else {
    TAKE(out_pp[0], n_scratch);
    TAKE(out_pp[1], n_scratch);
  }
  float *one_block = p; /* inference: every block reuses this one block's worth */
  for (int k = 0; k < r->n_blocks; k++) {
    bottleneck *b = &r->blocks[k];
    size_t in = (size_t)n * b->h * b->w, out = (size_t)n * b->oh * b->ow;
    if (!train) p = one_block;
    TAKE(b->conv1_out, in * b->width);
    TAKE(b->conv2_out, out * b->width);
    TAKE(b->conv3_out, out * b->cout);
    if (b->has_down) TAKE(b->down_out, out * b->cout);
    if (train)
      TAKE(b->out, out * b->cout);
    else
      b->out = out_pp[k % 2];
  }
#undef TAKE
  return MSKX_OK;
}

/* Inference: each convolution with its batch norm (and ReLU) folded in. */
static int block_forward_folded(net *m, bottleneck *b, const float *X, mskx_err *e) {
  layer_ctx *cx = &m->cx;
  int n = m->n;
  int rc = conv_bn_fold_forward(cx, &b->fold1, &b->conv1, &b->bn1, X, b->conv1_out, e);
  if (!rc) rc = conv_bn_fold_forward(cx, &b->fold2, &b->conv2, &b->bn2, b->conv1_out, b->conv2_out, e);
  if (!rc) rc = conv_bn_fold_forward(cx, &b->fold3, &b->conv3, &b->bn3, b->conv2_out, b->out, e);
  if (!rc && b->has_down) rc = conv_bn_fold_forward(cx, &b->fold_down, &b->conv_down, &b->bn_down, X, b->down_out, e);
  if (rc) return rc;
  view y = view_make(b->out, n, b->oh, b->ow, b->cout);
  view id = b->has_down ? view_make(b->down_out, n, b->oh, b->ow, b->cout) : view_make((float *)X, n, b->h, b->w, b->cin);
  cx->eng->ops->add_relu_forward(y, id, y);
  return MSKX_OK;
}

static int block_forward(net *m, bottleneck *b, const float *X, mskx_err *e) {
  resnet *r = rn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n;
  if (!cx->train) return block_forward_folded(m, b, X, e);
  int rc = conv_layer_forward(cx, &b->conv1, X, b->conv1_out, e);
  if (rc) return rc;
  if ((rc = bn_layer_forward(cx, &b->bn1, view_make(b->conv1_out, n, b->h, b->w, b->width),
                              view_make(r->bn_out, n, b->h, b->w, b->width), 1, e)))
    return rc;
  if ((rc = conv_layer_forward(cx, &b->conv2, r->bn_out, b->conv2_out, e))) return rc;
  if ((rc = bn_layer_forward(cx, &b->bn2, view_make(b->conv2_out, n, b->oh, b->ow, b->width),
                              view_make(r->bn_out, n, b->oh, b->ow, b->width), 1, e)))
    return rc;
  if ((rc = conv_layer_forward(cx, &b->conv3, r->bn_out, b->conv3_out, e))) return rc;
  view y = view_make(b->out, n, b->oh, b->ow, b->cout);
  if ((rc = bn_layer_forward(cx, &b->bn3, view_make(b->conv3_out, n, b->oh, b->ow, b->cout), y, 0, e))) return rc;
  view id = view_make((float *)X, n, b->h, b->w, b->cin);
  if (b->has_down) {
    if ((rc = conv_layer_forward(cx, &b->conv_down, X, b->down_out, e))) return rc;
    id = view_make(r->bn_out, n, b->oh, b->ow, b->cout);
    if ((rc = bn_layer_forward(cx, &b->bn_down, view_make(b->down_out, n, b->oh, b->ow, b->cout), id, 0, e))) return rc;
  }
  cx->eng->ops->add_relu_forward(y, id, y);
  return MSKX_OK;
}

static int resnet_forward(net *m, const float *x, float *logits, mskx_err *e) {
  resnet *r = rn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n;
  r->x = x;
  view a0 = view_make(r->bn_out, n, r->h0, r->w0, 64);
  int rc;
  if (cx->train) {
    if ((rc = conv_layer_forward(cx, &r->conv1, x, r->conv1_out, e))) return rc;
    if ((rc = bn_layer_forward(cx, &r->bn1, view_make(r->conv1_out, n, r->h0, r->w0, 64), a0, 1, e))) return rc;
  } else if ((rc = conv_bn_fold_forward(cx, &r->fold1, &r->conv1, &r->bn1, x, r->bn_out, e))) {
    return rc;
  }
  cx->eng->ops->maxpool_forward(&r->pool, a0, view_make(r->stem_out, n, r->stem_h, r->stem_w, 64), r->argmax);
  const float *X = r->stem_out;
  for (int k = 0; k < r->n_blocks; k++) {
    if ((rc = block_forward(m, &r->blocks[k], X, e))) return rc;
    X = r->blocks[k].out;
  }
  bottleneck *last = &r->blocks[r->n_blocks - 1];
  cx->eng->ops->gap_forward(view_make(last->out, n, last->oh, last->ow, last->cout), r->pooled);
  return cx->eng->ops->linear_forward(r->head, r->pooled, ps_data(&m->ps, m->head_w), ps_data(&m->ps, m->head_b), logits,
                                      e);
}

/* dY -> dX (overwritten; dX has the block input's shape). */
static int block_backward(net *m, bottleneck *b, const float *X, const float *dY, float *dX, mskx_err *e) {
  resnet *r = rn(m);
  layer_ctx *cx = &m->cx;
  const engine_ops *op = cx->eng->ops;
  int n = m->n;
  size_t in = (size_t)n * b->h * b->w, out = (size_t)n * b->oh * b->ow;
  view G = view_make(r->d_sum, n, b->oh, b->ow, b->cout);
  op->add_relu_backward(view_make(b->out, n, b->oh, b->ow, b->cout), view_make((float *)dY, n, b->oh, b->ow, b->cout), G,
                        (view){0});
  memset(r->d_conv_out, 0, out * b->cout * sizeof(float));
  int rc = bn_layer_backward(cx, &b->bn3, view_make(b->conv3_out, n, b->oh, b->ow, b->cout), G,
                             view_make(r->d_conv_out, n, b->oh, b->ow, b->cout), 0, e);
  if (rc) return rc;
  bn_layer_recompute(cx, &b->bn2, view_make(b->conv2_out, n, b->oh, b->ow, b->width), view_make(r->bn_out, n, b->oh, b->ow, b->width),
                     1);
  if ((rc = conv_layer_backward(cx, &b->conv3, r->bn_out, r->d_conv_out, r->d_bn_out, e))) return rc;
  memset(r->d_conv_out, 0, out * b->width * sizeof(float));
  if ((rc = bn_layer_backward(cx, &b->bn2, view_make(b->conv2_out, n, b->oh, b->ow, b->width),
                               view_make(r->d_bn_out, n, b->oh, b->ow, b->width), view_make(r->d_conv_out, n, b->oh, b->ow, b->width),
                               1, e)))
    return rc;
  bn_layer_recompute(cx, &b->bn1, view_make(b->conv1_out, n, b->h, b->w, b->width), view_make(r->bn_out, n, b->h, b->w, b->width), 1);
  if ((rc = conv_layer_backward(cx, &b->conv2, r->bn_out, r->d_conv_out, r->d_bn_out, e))) return rc;
  memset(r->d_conv_out, 0, in * b->width * sizeof(float));
  if ((rc = bn_layer_backward(cx, &b->bn1, view_make(b->conv1_out, n, b->h, b->w, b->width),
                               view_make(r->d_bn_out, n, b->h, b->w, b->width), view_make(r->d_conv_out, n, b->h, b->w, b->width), 1,
                               e)))
    return rc;
  if ((rc = conv_layer_backward(cx, &b->conv1, X, r->d_conv_out, dX, e))) return rc;
  view dXv = view_make(dX, n, b->h, b->w, b->cin);
  if (!b->has_down) {
    op->accumulate(G, dXv);
    return MSKX_OK;
  }
  memset(r->d_conv_out, 0, out * b->cout * sizeof(float));
  if ((rc = bn_layer_backward(cx, &b->bn_down, view_make(b->down_out, n, b->oh, b->ow, b->cout), G,
                               view_make(r->d_conv_out, n, b->oh, b->ow, b->cout), 0, e)))
    return rc;
  if ((rc = conv_layer_backward(cx, &b->conv_down, X, r->d_conv_out, r->d_down_in, e))) return rc;
  op->accumulate(view_make(r->d_down_in, n, b->h, b->w, b->cin), dXv);
  return MSKX_OK;
}

static int resnet_backward(net *m, const float *dlogits, mskx_err *e) {
  resnet *r = rn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n;
  int rc = cx->eng->ops->linear_backward(r->head, r->pooled, dlogits, ps_data(&m->ps, m->head_w), r->d_pooled,
                                         ps_grad(&m->ps, m->head_w), ps_grad(&m->ps, m->head_b), e);
  if (rc) return rc;
  layer_grads_written(cx, m->head_w);
  layer_grads_written(cx, m->head_b);
  bottleneck *last = &r->blocks[r->n_blocks - 1];
  view dY = view_make(r->d_block_out[0], n, last->oh, last->ow, last->cout);
  memset(r->d_block_out[0], 0, view_numel(dY) * sizeof(float));
  cx->eng->ops->gap_backward(r->d_pooled, dY);
  int cur = 0;
  for (int k = r->n_blocks - 1; k >= 0; k--) {
    const float *X = k > 0 ? r->blocks[k - 1].out : r->stem_out;
    if ((rc = block_backward(m, &r->blocks[k], X, r->d_block_out[cur], r->d_block_out[1 - cur], e))) return rc;
    cur = 1 - cur;
  }
  view dstem = view_make(r->d_bn_out, n, r->h0, r->w0, 64);
  memset(r->d_bn_out, 0, view_numel(dstem) * sizeof(float));
  cx->eng->ops->maxpool_backward(&r->pool, view_make(r->d_block_out[cur], n, r->stem_h, r->stem_w, 64), r->argmax, dstem);
  view d_conv1 = view_make(r->d_conv_out, n, r->h0, r->w0, 64);
  memset(r->d_conv_out, 0, view_numel(d_conv1) * sizeof(float));
  if ((rc = bn_layer_backward(cx, &r->bn1, view_make(r->conv1_out, n, r->h0, r->w0, 64), dstem, d_conv1, 1, e)))
    return rc;
  return conv_layer_backward(cx, &r->conv1, r->x, r->d_conv_out, NULL, e);
}

static view resnet_features(const net *m) {
  const resnet *r = rn(m);
  const bottleneck *last = &r->blocks[r->n_blocks - 1];
  return view_make(last->out, m->n, last->oh, last->ow, last->cout);
}

static void resnet_destroy_model(net *m) {
  resnet *r = rn(m);
  if (!r) return;
  free(r->blocks);
  free(r);
  m->impl = NULL;
}

static const net_vtbl resnet_vt = {
    .plan = resnet_plan,
    .unplan = resnet_unplan,
    .forward = resnet_forward,
    .backward = resnet_backward,
    .init = resnet_init,
    .destroy_model = resnet_destroy_model,
    .features = resnet_features,
};

int resnet_build(net *m, mskx_err *e) {
  resnet *r = calloc(1, sizeof *r);
  if (!r) return err_set(e, MSKX_ENOMEM, "out of memory");
  m->impl = r;
  m->vt = &resnet_vt;
  return declare(m, r, e);
}
