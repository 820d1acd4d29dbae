/* DenseNet-BC exactly as torchvision builds it (pre-activation BN-ReLU-conv,
 * bottleneck 1x1 to bn_size*growth channels, 3x3 to growth channels,
 * transitions halving channels and resolution, norm5 + ReLU + global average
 * pool + one-logit classifier), with memory-efficient dense blocks:
 *   - each block owns one buffer holding all of its channels; every layer
 *     reads a channel prefix of it in place and writes its `growth` new
 *     channels at its offset (no concatenation copies of the growing map);
 *   - BN+ReLU outputs are never stored: backward recomputes them from the
 *     block buffer and the saved batch statistics;
 *   - per layer only the bottleneck output (bn_size*growth channels) is kept
 *     for backward. Memory therefore grows linearly with depth. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "models/families.h"
#include "models/net.h"

typedef struct dense_layer {
  bn_layer norm1, norm2;
  conv_layer conv1, conv2;
  int c_in;
  float *bottleneck;    /* conv1's output, bn_size*growth channels (per layer when training) */
  conv_bn_fold fold1;   /* inference: conv1 + norm2 + ReLU in one convolution */
  conv_int8 q1, q2;     /* int8 inference: the same fold as u8 -> u8, and conv2 u8 -> f32 */
} dense_layer;

typedef struct dense_block {
  dense_layer *layers;
  int n_layers, c_first, c_total;
  int has_trans;
  bn_layer trans_norm;       /* transition after this block */
  conv_layer trans_conv;
  conv_int8 qt;         /* int8 inference: trans_conv */
  pool_desc trans_pool;
  int h, w;             /* planned spatial size */
  float *buf, *grad;    /* (n, h, w, c_total) */
  /* Training: the batch statistics of every channel of buf, computed once
   * when the channel is written and shared by the batch norms reading it. */
  bn_channel_stats stats;
} dense_block;

typedef struct densenet {
  conv_layer conv0;
  bn_layer norm0, norm5;
  conv_bn_fold fold0;   /* int8 inference: conv0 + norm0 + ReLU in one fp32 convolution */
  pool_desc pool0;
  dense_block blocks[ARCH_MAX_BLOCKS];
  int n_blocks, c_final;
  linear_op *head;
  /* plan */
  int h0, w0;                      /* after conv0 */
  const float *x;                  /* input of the latest forward (caller-owned) */
  float *conv0_out;                /* the stem convolution's output, norm0's input */
  float *pooled, *d_pooled;        /* global average pool of the last block: the classifier's input */
  int32_t *pool0_argmax;           /* the stem max pool's argmax, for its backward */
  /* Scratch shared by every layer in turn, each with its gradient (training): */
  float *bnrelu, *d_bnrelu;        /* a BN+ReLU output, the input of the convolution after it */
  float *new_features, *d_new_features;   /* a dense layer's `growth` new channels (conv2's output) */
  float *trans_out, *d_trans_out;  /* a transition's convolution output, before its average pool */
  float *d_bottleneck;             /* the gradient of a dense layer's bottleneck (conv1's output) */
  float *bottleneck_arena;         /* the layers' bottleneck outputs (dense_layer.bottleneck) */
  view last_features;
} densenet;

static densenet *dn(const net *m) { return (densenet *)m->impl; }

/* ---- declaration and initialisation ---- */

static int declare(net *m, densenet *d, mskx_err *e) {
  const arch_spec *a = &m->arch;
  param_store *ps = &m->ps;
  char p[128];
  int c = a->init_features, inter = a->bn_size * a->growth;
  int rc = conv_layer_declare(ps, &d->conv0, "features.conv0", 3, c, 7, 2, 3, 0, e);
  if (!rc) rc = bn_layer_declare(ps, &d->norm0, "features.norm0", c, e);
  d->n_blocks = a->n_blocks;
  for (int b = 0; b < a->n_blocks && !rc; b++) {
    dense_block *blk = &d->blocks[b];
    blk->n_layers = a->blocks[b];
    blk->c_first = c;
    blk->layers = calloc((size_t)blk->n_layers, sizeof *blk->layers);
    if (!blk->layers) return err_set(e, MSKX_ENOMEM, "out of memory");
    for (int l = 0; l < blk->n_layers && !rc; l++) {
      dense_layer *L = &blk->layers[l];
      L->c_in = c + l * a->growth;
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.norm1", b + 1, l + 1);
      rc = bn_layer_declare(ps, &L->norm1, p, L->c_in, e);
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.conv1", b + 1, l + 1);
      if (!rc) rc = conv_layer_declare(ps, &L->conv1, p, L->c_in, inter, 1, 1, 0, 0, e);
      L->conv1.src_bf16 = 1;  /* fed by norm1 (bn_layer_forward_conv) */
      L->conv1.ddst_bf16 = 1; /* its output gradient from norm2 (bn_layer_backward_conv) */
      L->conv1.dsrc_bf16 = 1; /* its input gradient only to norm1's backward */
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.norm2", b + 1, l + 1);
      if (!rc) rc = bn_layer_declare(ps, &L->norm2, p, inter, e);
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.conv2", b + 1, l + 1);
      if (!rc) rc = conv_layer_declare(ps, &L->conv2, p, inter, a->growth, 3, 1, 1, 0, e);
      L->conv2.src_bf16 = 1;
      L->conv2.ddst_bf16 = 1; /* from the block gradient (layer_grad_for_conv) */
      L->conv2.dsrc_bf16 = 1; /* to norm2's backward */
    }
    c += blk->n_layers * a->growth;
    blk->c_total = c;
    if (b + 1 < a->n_blocks && !rc) {
      blk->has_trans = 1;
      snprintf(p, sizeof p, "features.transition%d.norm", b + 1);
      rc = bn_layer_declare(ps, &blk->trans_norm, p, c, e);
      snprintf(p, sizeof p, "features.transition%d.conv", b + 1);
      if (!rc) rc = conv_layer_declare(ps, &blk->trans_conv, p, c, c / 2, 1, 1, 0, 0, e);
      blk->trans_conv.src_bf16 = 1;
      blk->trans_conv.dsrc_bf16 = 1; /* to trans_norm's backward */
      c /= 2;
    }
  }
  d->c_final = c;
  if (!rc) rc = bn_layer_declare(ps, &d->norm5, "features.norm5", c, e);
  int64_t ws[2] = {1, c}, bs[1] = {1};
  if (!rc && (m->head_w = ps_declare(ps, "classifier.weight", PK_PARAM, 2, ws, e)) < 0) rc = e->code;
  if (!rc && (m->head_b = ps_declare(ps, "classifier.bias", PK_PARAM, 1, bs, e)) < 0) rc = e->code;
  return rc;
}

static void init_conv(const net *m, const conv_layer *l, uint64_t seed) {
  /* torchvision DenseNet: kaiming_normal_ (fan_in, ReLU gain). */
  const param_entry *en = &m->ps.entries[l->w];
  init_kaiming_normal(ps_data(&m->ps, l->w), en->numel, (double)l->cin * l->kh * l->kw, seed, (uint64_t)l->w);
}

static void densenet_init(net *m, uint64_t seed) {
  densenet *d = dn(m);
  init_conv(m, &d->conv0, seed);
  bn_layer_init(&m->ps, &d->norm0);
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++) {
      dense_layer *L = &blk->layers[l];
      bn_layer_init(&m->ps, &L->norm1);
      bn_layer_init(&m->ps, &L->norm2);
      init_conv(m, &L->conv1, seed);
      init_conv(m, &L->conv2, seed);
    }
    if (blk->has_trans) {
      bn_layer_init(&m->ps, &blk->trans_norm);
      init_conv(m, &blk->trans_conv, seed);
    }
  }
  bn_layer_init(&m->ps, &d->norm5);
  /* nn.Linear's default weight init (kaiming_uniform a=sqrt(5): bound 1/sqrt(fan_in)); bias 0. */
  init_uniform(ps_data(&m->ps, m->head_w), (size_t)d->c_final, 1.0 / sqrt((double)d->c_final), seed,
               (uint64_t)m->head_w);
  ps_data(&m->ps, m->head_b)[0] = 0.f;
  net_params_changed(m);
}

/* ---- planning ---- */

static float *falloc(size_t n, mskx_err *e) {
  float *p = big_alloc((n ? n : 1) * sizeof(float));
  if (!p) err_set(e, MSKX_ENOMEM, "cannot allocate %zu MB of activations", n * sizeof(float) >> 20);
  return p;
}

static size_t zmax(size_t a, size_t b) { return a > b ? a : b; }

static void densenet_unplan(net *m) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  conv_layer_unplan(cx, &d->conv0);
  conv_bn_fold_unplan(cx, &d->fold0);
  bn_layer_unplan(&d->norm0);
  bn_layer_unplan(&d->norm5);
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++) {
      dense_layer *L = &blk->layers[l];
      conv_layer_unplan(cx, &L->conv1);
      conv_bn_fold_unplan(cx, &L->fold1);
      conv_int8_unplan(cx, &L->q1);
      conv_int8_unplan(cx, &L->q2);
      conv_layer_unplan(cx, &L->conv2);
      bn_layer_unplan(&L->norm1);
      bn_layer_unplan(&L->norm2);
      L->bottleneck = NULL;
    }
    if (blk->has_trans) {
      conv_layer_unplan(cx, &blk->trans_conv);
      conv_int8_unplan(cx, &blk->qt);
      bn_layer_unplan(&blk->trans_norm);
    }
    free(blk->buf);
    free(blk->grad);
    free(blk->stats.mean);
    blk->buf = blk->grad = NULL;
    blk->stats = (bn_channel_stats){0};
  }
  if (d->head) cx->eng->ops->linear_destroy(d->head);
  d->head = NULL;
  float **bufs[] = {&d->conv0_out,      &d->pooled,           &d->d_pooled,  &d->bnrelu,
                    &d->d_bnrelu,       &d->new_features,     &d->d_new_features, &d->trans_out,
                    &d->d_trans_out,    &d->d_bottleneck,     &d->bottleneck_arena};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    free(*bufs[i]);
    *bufs[i] = NULL;
  }
  free(d->pool0_argmax);
  d->pool0_argmax = NULL;
}

static int densenet_plan(net *m, int n, int h, int w, mskx_err *e) {
  densenet *d = dn(m);
  const layer_ctx *cx = &m->cx;
  const arch_spec *a = &m->arch;
  int train = cx->train, inter = a->bn_size * a->growth, q = cx->int8;
  int rc = q ? conv_bn_fold_plan(cx, &d->fold0, &d->conv0, 1, 0, n, h, w, &d->h0, &d->w0, e)
             : conv_layer_plan(cx, &d->conv0, n, h, w, &d->h0, &d->w0, e);
  if (!rc) rc = bn_layer_plan(&d->norm0, e);
  if (rc) return rc;
  d->pool0 = (pool_desc){.n = n, .h = d->h0, .w = d->w0, .c = a->init_features, .k = 3, .s = 2, .p = 1};
  int bh = pool_out(d->h0, 3, 2, 1), bw = pool_out(d->w0, 3, 2, 1);
  /* Float counts of the scratch buffers: the largest use of each. */
  size_t n_bnrelu = (size_t)n * d->h0 * d->w0 * a->init_features, n_new = 0, n_trans = 0;
  size_t n_bottleneck_max = 0, n_bottleneck_all = 0;
  for (int b = 0; b < d->n_blocks && !rc; b++) {
    dense_block *blk = &d->blocks[b];
    blk->h = bh;
    blk->w = bw;
    size_t px = (size_t)n * bh * bw;
    for (int l = 0; l < blk->n_layers && !rc; l++) {
      dense_layer *L = &blk->layers[l];
      if (q) {
        float z_step = 0;
        rc = layer_in_scale(cx, &L->conv2, &z_step, e);
        if (!rc) rc = conv_int8_plan(cx, &L->q1, &L->conv1, &L->norm2, 1, z_step, n, bh, bw, NULL, NULL, e);
        if (!rc) rc = conv_int8_plan(cx, &L->q2, &L->conv2, NULL, 0, 0, n, bh, bw, NULL, NULL, e);
      } else {
        rc = train ? conv_layer_plan(cx, &L->conv1, n, bh, bw, NULL, NULL, e)
                   : conv_bn_fold_plan(cx, &L->fold1, &L->conv1, 1, L->conv2.src_bf16, n, bh, bw, NULL, NULL, e);
        if (!rc) rc = conv_layer_plan(cx, &L->conv2, n, bh, bw, NULL, NULL, e);
      }
      if (!rc) rc = bn_layer_plan(&L->norm1, e);
      if (!rc) rc = bn_layer_plan(&L->norm2, e);
      n_bnrelu = zmax(n_bnrelu, px * (size_t)(L->c_in > inter ? L->c_in : inter));
      n_bottleneck_all += px * (size_t)inter;
    }
    n_bottleneck_max = zmax(n_bottleneck_max, px * (size_t)inter);
    n_new = zmax(n_new, px * (size_t)a->growth);
    n_bnrelu = zmax(n_bnrelu, px * (size_t)blk->c_total);
    if (!rc && !(blk->buf = falloc(px * (size_t)blk->c_total, e))) rc = e->code;
    if (!rc && train && !(blk->grad = falloc(px * (size_t)blk->c_total, e))) rc = e->code;
    if (!rc && train) {
      if (!(blk->stats.mean = falloc(3 * (size_t)blk->c_total, e))) return e->code;
      blk->stats.invstd = blk->stats.mean + blk->c_total;
      blk->stats.varu = blk->stats.invstd + blk->c_total;
      for (int l = 0; l < blk->n_layers; l++) blk->layers[l].norm1.shared = &blk->stats;
      blk->trans_norm.shared = &blk->stats;
    }
    if (blk->has_trans && !rc) {
      rc = q ? conv_int8_plan(cx, &blk->qt, &blk->trans_conv, NULL, 0, 0, n, bh, bw, NULL, NULL, e)
             : conv_layer_plan(cx, &blk->trans_conv, n, bh, bw, NULL, NULL, e);
      if (!rc) rc = bn_layer_plan(&blk->trans_norm, e);
      n_trans = zmax(n_trans, px * (size_t)(blk->c_total / 2));
      blk->trans_pool = (pool_desc){.n = n, .h = bh, .w = bw, .c = blk->c_total / 2, .k = 2, .s = 2, .p = 0};
      bh = pool_out(bh, 2, 2, 0);
      bw = pool_out(bw, 2, 2, 0);
    }
  }
  if (rc) return rc;
  rc = bn_layer_plan(&d->norm5, e);
  d->norm5.shared = &d->blocks[d->n_blocks - 1].stats;
  if (!rc) rc = cx->eng->ops->linear_create(cx->eng, n, d->c_final, 1, &d->head, e);
  if (rc) return rc;
  /* Bottleneck outputs: one per layer when training (kept for backward), one shared otherwise. */
  size_t n_bottleneck_floats = train ? n_bottleneck_all : n_bottleneck_max;
  struct {
    float **p;
    size_t n;
    int need;
  } plan[] = {{&d->conv0_out, (size_t)n * d->h0 * d->w0 * a->init_features, 1},
              {&d->pooled, (size_t)n * d->c_final, 1},
              {&d->d_pooled, (size_t)n * d->c_final, train},
              {&d->bnrelu, n_bnrelu, 1},
              {&d->d_bnrelu, n_bnrelu, train},
              {&d->new_features, n_new, 1},
              {&d->d_new_features, n_new, train},
              {&d->trans_out, n_trans, 1},
              {&d->d_trans_out, n_trans, train},
              {&d->d_bottleneck, n_bottleneck_max, train},
              {&d->bottleneck_arena, n_bottleneck_floats, 1}};
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
    if (plan[i].need && !(*plan[i].p = falloc(plan[i].n, e))) return e->code;
  d->pool0_argmax = malloc(((size_t)n * pool_out(d->h0, 3, 2, 1) * pool_out(d->w0, 3, 2, 1) * a->init_features) *
                           sizeof(int32_t));
  if (!d->pool0_argmax) return err_set(e, MSKX_ENOMEM, "out of memory");
  float *next_bottleneck = d->bottleneck_arena;
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++) {
      blk->layers[l].bottleneck = next_bottleneck;
      if (train) next_bottleneck += (size_t)n * blk->h * blk->w * inter;
    }
  }
  return MSKX_OK;
}

/* ---- forward ---- */

static view block_view(const dense_block *blk, float *p, int n) {
  return view_make(p, n, blk->h, blk->w, blk->c_total);
}

/* Training: records the batch statistics of channels [c0, c0 + v.c) of the
 * block buffer, which v holds (the channels themselves or a dense copy). */
static int block_stats(net *m, dense_block *blk, view v, int c0, mskx_err *e) {
  if (!m->cx.train || !blk->stats.mean) return MSKX_OK;
  return bn_batch_stats(&m->cx, v, layer_bn_eps(&m->cx), blk->stats.mean + c0, blk->stats.invstd + c0, blk->stats.varu + c0, e);
}

static int layer_forward(net *m, dense_block *blk, dense_layer *L, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, inter = m->arch.bn_size * m->arch.growth;
  view B = block_view(blk, blk->buf, n);
  int rc;
  if (cx->int8) {
    /* norm1 + ReLU quantised to u8; conv1 + norm2 + ReLU u8 -> u8; conv2 u8 -> f32. */
    bn_layer_forward_u8(cx, &L->norm1, view_channels(B, 0, L->c_in), cx->in_scale[L->conv1.w], (uint8_t *)d->bnrelu);
    rc = conv_int8_forward(cx, &L->q1, (const uint8_t *)d->bnrelu, L->bottleneck, e);
    if (!rc) rc = conv_int8_forward(cx, &L->q2, (const uint8_t *)L->bottleneck, d->new_features, e);
    if (rc) return rc;
  } else if ((rc = bn_layer_forward_conv(cx, &L->norm1, view_channels(B, 0, L->c_in), d->bnrelu, 1, e))) {
    return rc;
  } else if (!cx->train) {
    layer_observe(cx, &L->conv1, d->bnrelu, (size_t)n * blk->h * blk->w * L->c_in);
    /* norm2 (running statistics) and its ReLU are folded into conv1, whose
     * output is then conv2's input as it is (bf16 in bf16 plans). */
    rc = conv_bn_fold_forward(cx, &L->fold1, &L->conv1, &L->norm2, d->bnrelu, L->bottleneck, e);
    if (!rc) layer_observe(cx, &L->conv2, L->bottleneck, (size_t)n * blk->h * blk->w * inter);
    if (!rc) rc = conv_layer_forward(cx, &L->conv2, L->bottleneck, d->new_features, e);
    if (rc) return rc;
  } else {
    rc = conv_layer_forward(cx, &L->conv1, d->bnrelu, L->bottleneck, e);
    if (rc) return rc;
    rc = bn_layer_forward_conv(cx, &L->norm2, view_make(L->bottleneck, n, blk->h, blk->w, inter), d->bnrelu, 1, e);
    if (!rc) rc = conv_layer_forward(cx, &L->conv2, d->bnrelu, d->new_features, e);
    if (rc) return rc;
  }
  view out = view_make(d->new_features, n, blk->h, blk->w, m->arch.growth);
  cx->eng->ops->copy(out, view_channels(B, L->c_in, m->arch.growth));
  return block_stats(m, blk, out, L->c_in, e);
}

static int densenet_forward(net *m, const float *x, float *logits, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, c0 = m->arch.init_features;
  d->x = x;
  view stem = view_make(d->bnrelu, n, d->h0, d->w0, c0);
  int rc;
  if (cx->int8) {
    if ((rc = conv_bn_fold_forward(cx, &d->fold0, &d->conv0, &d->norm0, x, d->bnrelu, e))) return rc;
  } else {
    if ((rc = conv_layer_forward(cx, &d->conv0, x, d->conv0_out, e))) return rc;
    if ((rc = bn_layer_forward(cx, &d->norm0, view_make(d->conv0_out, n, d->h0, d->w0, c0), stem, 1, e))) return rc;
  }
  view b0 = view_channels(block_view(&d->blocks[0], d->blocks[0].buf, n), 0, c0);
  cx->eng->ops->maxpool_forward(&d->pool0, stem, b0, d->pool0_argmax);
  if ((rc = block_stats(m, &d->blocks[0], b0, 0, e))) return rc;
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++)
      if ((rc = layer_forward(m, blk, &blk->layers[l], e))) return rc;
    if (!blk->has_trans) continue;
    view B = block_view(blk, blk->buf, n);
    int ct = blk->c_total / 2;
    if (cx->int8) {
      bn_layer_forward_u8(cx, &blk->trans_norm, B, cx->in_scale[blk->trans_conv.w], (uint8_t *)d->bnrelu);
      if ((rc = conv_int8_forward(cx, &blk->qt, (const uint8_t *)d->bnrelu, d->trans_out, e))) return rc;
    } else {
      if ((rc = bn_layer_forward_conv(cx, &blk->trans_norm, B, d->bnrelu, 1, e))) return rc;
      if (!cx->train) layer_observe(cx, &blk->trans_conv, d->bnrelu, view_numel(B));
      if ((rc = conv_layer_forward(cx, &blk->trans_conv, d->bnrelu, d->trans_out, e))) return rc;
    }
    dense_block *next = &d->blocks[b + 1];
    view nb = view_channels(block_view(next, next->buf, n), 0, ct);
    cx->eng->ops->avgpool_forward(&blk->trans_pool, view_make(d->trans_out, n, blk->h, blk->w, ct), nb);
    if ((rc = block_stats(m, next, nb, 0, e))) return rc;
  }
  dense_block *last = &d->blocks[d->n_blocks - 1];
  view F = view_make(d->bnrelu, n, last->h, last->w, d->c_final);
  if ((rc = bn_layer_forward(cx, &d->norm5, block_view(last, last->buf, n), F, 1, e))) return rc;
  d->last_features = F;
  cx->eng->ops->gap_forward(F, d->pooled);
  return cx->eng->ops->linear_forward(d->head, d->pooled, ps_data(&m->ps, m->head_w), ps_data(&m->ps, m->head_b),
                                      logits, e);
}

/* ---- backward ---- */

static int layer_backward(net *m, dense_block *blk, dense_layer *L, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, inter = m->arch.bn_size * m->arch.growth, g = m->arch.growth;
  view B = block_view(blk, blk->buf, n), dB = block_view(blk, blk->grad, n);
  view bottleneck = view_make(L->bottleneck, n, blk->h, blk->w, inter);
  layer_grad_for_conv(cx, view_channels(dB, L->c_in, g), d->d_new_features);
  bn_layer_recompute_conv(cx, &L->norm2, bottleneck, d->bnrelu, 1);
  int rc = conv_layer_backward(cx, &L->conv2, d->bnrelu, d->d_new_features, d->d_bnrelu, e);
  if (rc) return rc;
  view d_norm2 = layer_conv_dx_view(cx, &L->conv2, d->d_bnrelu, n, blk->h, blk->w);
  if ((rc = bn_layer_backward_conv(cx, &L->norm2, bottleneck, d_norm2, d->d_bottleneck, 1, e))) return rc;
  view prefix = view_channels(B, 0, L->c_in);
  bn_layer_recompute_conv(cx, &L->norm1, prefix, d->bnrelu, 1);
  if ((rc = conv_layer_backward(cx, &L->conv1, d->bnrelu, d->d_bottleneck, d->d_bnrelu, e))) return rc;
  view d_norm1 = layer_conv_dx_view(cx, &L->conv1, d->d_bnrelu, n, blk->h, blk->w);
  return bn_layer_backward(cx, &L->norm1, prefix, d_norm1, view_channels(dB, 0, L->c_in), 1, e);
}

static int transition_backward(net *m, dense_block *blk, dense_block *next, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, ct = blk->c_total / 2;
  view d_trans = view_make(d->d_trans_out, n, blk->h, blk->w, ct);
  memset(d->d_trans_out, 0, view_numel(d_trans) * sizeof(float));
  cx->eng->ops->avgpool_backward(&blk->trans_pool, view_channels(block_view(next, next->grad, n), 0, ct), d_trans);
  view B = block_view(blk, blk->buf, n);
  bn_layer_recompute_conv(cx, &blk->trans_norm, B, d->bnrelu, 1);
  int rc = conv_layer_backward(cx, &blk->trans_conv, d->bnrelu, d->d_trans_out, d->d_bnrelu, e);
  if (rc) return rc;
  view d_norm = layer_conv_dx_view(cx, &blk->trans_conv, d->d_bnrelu, n, blk->h, blk->w);
  return bn_layer_backward(cx, &blk->trans_norm, B, d_norm, block_view(blk, blk->grad, n), 1, e);
}

static int densenet_backward(net *m, const float *dlogits, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, c0 = m->arch.init_features;
  for (int b = 0; b < d->n_blocks; b++)
    memset(d->blocks[b].grad, 0, view_numel(block_view(&d->blocks[b], NULL, n)) * sizeof(float));
  int rc = cx->eng->ops->linear_backward(d->head, d->pooled, dlogits, ps_data(&m->ps, m->head_w), d->d_pooled,
                                         ps_grad(&m->ps, m->head_w), ps_grad(&m->ps, m->head_b), e);
  if (rc) return rc;
  layer_grads_written(cx, m->head_w);
  layer_grads_written(cx, m->head_b);
  dense_block *last = &d->blocks[d->n_blocks - 1];
  view dF = view_make(d->d_bnrelu, n, last->h, last->w, d->c_final);
  memset(d->d_bnrelu, 0, view_numel(dF) * sizeof(float));
  cx->eng->ops->gap_backward(d->d_pooled, dF);
  rc = bn_layer_backward(cx, &d->norm5, block_view(last, last->buf, n), dF, block_view(last, last->grad, n), 1, e);
  if (rc) return rc;
  for (int b = d->n_blocks - 1; b >= 0; b--) {
    dense_block *blk = &d->blocks[b];
    if (blk->has_trans && (rc = transition_backward(m, blk, &d->blocks[b + 1], e))) return rc;
    for (int l = blk->n_layers - 1; l >= 0; l--)
      if ((rc = layer_backward(m, blk, &blk->layers[l], e))) return rc;
  }
  /* Stem: maxpool -> norm0/relu0 -> conv0 (no input gradient needed). */
  view dstem = view_make(d->d_bnrelu, n, d->h0, d->w0, c0);
  memset(d->d_bnrelu, 0, view_numel(dstem) * sizeof(float));
  cx->eng->ops->maxpool_backward(&d->pool0, view_channels(block_view(&d->blocks[0], d->blocks[0].grad, n), 0, c0),
                                 d->pool0_argmax, dstem);
  /* bnrelu is free by now: it takes conv0's output gradient. */
  view dc0 = view_make(d->bnrelu, n, d->h0, d->w0, c0);
  memset(d->bnrelu, 0, view_numel(dc0) * sizeof(float));
  if ((rc = bn_layer_backward(cx, &d->norm0, view_make(d->conv0_out, n, d->h0, d->w0, c0), dstem, dc0, 1, e))) return rc;
  return conv_layer_backward(cx, &d->conv0, d->x, d->bnrelu, NULL, e);
}

static view densenet_features(const net *m) { return dn(m)->last_features; }

static void densenet_destroy_model(net *m) {
  densenet *d = dn(m);
  if (!d) return;
  for (int b = 0; b < d->n_blocks; b++) free(d->blocks[b].layers);
  free(d);
  m->impl = NULL;
}

static const net_vtbl densenet_vt = {
    .plan = densenet_plan,
    .unplan = densenet_unplan,
    .forward = densenet_forward,
    .backward = densenet_backward,
    .init = densenet_init,
    .destroy_model = densenet_destroy_model,
    .features = densenet_features,
};

int densenet_build(net *m, mskx_err *e) {
  densenet *d = calloc(1, sizeof *d);
  if (!d) return err_set(e, MSKX_ENOMEM, "out of memory");
  m->impl = d;
  m->vt = &densenet_vt;
  return declare(m, d, e);
}
