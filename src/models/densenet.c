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
#include "models/net.h"

typedef struct dense_layer {
  bn_layer norm1, norm2;
  conv_layer conv1, conv2;
  int c_in;
  float *z;             /* bottleneck conv output (per layer when training) */
  conv_bn_fold fold1;   /* inference: conv1 + norm2 + ReLU in one convolution */
  conv_int8 q1, q2;     /* int8 inference: the same fold as u8 -> u8, and conv2 u8 -> f32 */
} dense_layer;

typedef struct dense_block {
  dense_layer *layers;
  int n_layers, c_first, c_total;
  int has_trans;
  bn_layer tnorm;       /* transition after this block */
  conv_layer tconv;
  conv_int8 qt;         /* int8 inference: tconv */
  pool_desc tpool;
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
  float *c0out, *feat, *dfeat;
  int32_t *argmax0;
  float *s1, *ds1, *s2, *ds2, *s3, *ds3, *dz;
  float *zarena;
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
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.norm2", b + 1, l + 1);
      if (!rc) rc = bn_layer_declare(ps, &L->norm2, p, inter, e);
      snprintf(p, sizeof p, "features.denseblock%d.denselayer%d.conv2", b + 1, l + 1);
      if (!rc) rc = conv_layer_declare(ps, &L->conv2, p, inter, a->growth, 3, 1, 1, 0, e);
      L->conv2.src_bf16 = 1;
      L->conv2.ddst_bf16 = 1; /* from the block gradient (layer_grad_for_conv) */
    }
    c += blk->n_layers * a->growth;
    blk->c_total = c;
    if (b + 1 < a->n_blocks && !rc) {
      blk->has_trans = 1;
      snprintf(p, sizeof p, "features.transition%d.norm", b + 1);
      rc = bn_layer_declare(ps, &blk->tnorm, p, c, e);
      snprintf(p, sizeof p, "features.transition%d.conv", b + 1);
      if (!rc) rc = conv_layer_declare(ps, &blk->tconv, p, c, c / 2, 1, 1, 0, 0, e);
      blk->tconv.src_bf16 = 1;
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
      bn_layer_init(&m->ps, &blk->tnorm);
      init_conv(m, &blk->tconv, seed);
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
      L->z = NULL;
    }
    if (blk->has_trans) {
      conv_layer_unplan(cx, &blk->tconv);
      conv_int8_unplan(cx, &blk->qt);
      bn_layer_unplan(&blk->tnorm);
    }
    free(blk->buf);
    free(blk->grad);
    free(blk->stats.mean);
    blk->buf = blk->grad = NULL;
    blk->stats = (bn_channel_stats){0};
  }
  if (d->head) cx->eng->ops->linear_destroy(d->head);
  d->head = NULL;
  float **bufs[] = {&d->c0out, &d->feat, &d->dfeat, &d->s1, &d->ds1, &d->s2, &d->ds2, &d->s3, &d->ds3, &d->dz, &d->zarena};
  for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
    free(*bufs[i]);
    *bufs[i] = NULL;
  }
  free(d->argmax0);
  d->argmax0 = NULL;
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
  size_t s1 = (size_t)n * d->h0 * d->w0 * a->init_features, s2 = 0, s3 = 0, dz = 0, zsum = 0;
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
      s1 = zmax(s1, px * (size_t)(L->c_in > inter ? L->c_in : inter));
      zsum += px * (size_t)inter;
    }
    dz = zmax(dz, px * (size_t)inter);
    s2 = zmax(s2, px * (size_t)a->growth);
    s1 = zmax(s1, px * (size_t)blk->c_total);
    if (!rc && !(blk->buf = falloc(px * (size_t)blk->c_total, e))) rc = e->code;
    if (!rc && train && !(blk->grad = falloc(px * (size_t)blk->c_total, e))) rc = e->code;
    if (!rc && train) {
      if (!(blk->stats.mean = falloc(3 * (size_t)blk->c_total, e))) return e->code;
      blk->stats.invstd = blk->stats.mean + blk->c_total;
      blk->stats.varu = blk->stats.invstd + blk->c_total;
      for (int l = 0; l < blk->n_layers; l++) blk->layers[l].norm1.shared = &blk->stats;
      blk->tnorm.shared = &blk->stats;
    }
    if (blk->has_trans && !rc) {
      rc = q ? conv_int8_plan(cx, &blk->qt, &blk->tconv, NULL, 0, 0, n, bh, bw, NULL, NULL, e)
             : conv_layer_plan(cx, &blk->tconv, n, bh, bw, NULL, NULL, e);
      if (!rc) rc = bn_layer_plan(&blk->tnorm, e);
      s3 = zmax(s3, px * (size_t)(blk->c_total / 2));
      blk->tpool = (pool_desc){.n = n, .h = bh, .w = bw, .c = blk->c_total / 2, .k = 2, .s = 2, .p = 0};
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
  size_t zbytes = train ? zsum : dz;
  struct {
    float **p;
    size_t n;
    int need;
  } plan[] = {{&d->c0out, (size_t)n * d->h0 * d->w0 * a->init_features, 1},
              {&d->feat, (size_t)n * d->c_final, 1},
              {&d->dfeat, (size_t)n * d->c_final, train},
              {&d->s1, s1, 1},
              {&d->ds1, s1, train},
              {&d->s2, s2, 1},
              {&d->ds2, s2, train},
              {&d->s3, s3, 1},
              {&d->ds3, s3, train},
              {&d->dz, dz, train},
              {&d->zarena, zbytes, 1}};
  for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++)
    if (plan[i].need && !(*plan[i].p = falloc(plan[i].n, e))) return e->code;
  d->argmax0 = malloc(((size_t)n * pool_out(d->h0, 3, 2, 1) * pool_out(d->w0, 3, 2, 1) * a->init_features) *
                      sizeof(int32_t));
  if (!d->argmax0) return err_set(e, MSKX_ENOMEM, "out of memory");
  float *zp = d->zarena;
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++) {
      blk->layers[l].z = zp;
      if (train) zp += (size_t)n * blk->h * blk->w * inter;
    }
  }
  return MSKX_OK;
}

/* ---- forward ---- */

static view block_view(const dense_block *blk, float *p, int n) {
  view v = {p, n, blk->h, blk->w, blk->c_total, blk->c_total};
  return v;
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
    bn_layer_forward_u8(cx, &L->norm1, view_channels(B, 0, L->c_in), cx->in_scale[L->conv1.w], (uint8_t *)d->s1);
    rc = conv_int8_forward(cx, &L->q1, (const uint8_t *)d->s1, L->z, e);
    if (!rc) rc = conv_int8_forward(cx, &L->q2, (const uint8_t *)L->z, d->s2, e);
    if (rc) return rc;
  } else if ((rc = bn_layer_forward_conv(cx, &L->norm1, view_channels(B, 0, L->c_in), d->s1, 1, e))) {
    return rc;
  } else if (!cx->train) {
    layer_observe(cx, &L->conv1, d->s1, (size_t)n * blk->h * blk->w * L->c_in);
    /* norm2 (running statistics) and its ReLU are folded into conv1, whose
     * output is then conv2's input as it is (bf16 in bf16 plans). */
    rc = conv_bn_fold_forward(cx, &L->fold1, &L->conv1, &L->norm2, d->s1, L->z, e);
    if (!rc) layer_observe(cx, &L->conv2, L->z, (size_t)n * blk->h * blk->w * inter);
    if (!rc) rc = conv_layer_forward(cx, &L->conv2, L->z, d->s2, e);
    if (rc) return rc;
  } else {
    rc = conv_layer_forward(cx, &L->conv1, d->s1, L->z, e);
    if (rc) return rc;
    rc = bn_layer_forward_conv(cx, &L->norm2, view_make(L->z, n, blk->h, blk->w, inter), d->s1, 1, e);
    if (!rc) rc = conv_layer_forward(cx, &L->conv2, d->s1, d->s2, e);
    if (rc) return rc;
  }
  view out = view_make(d->s2, n, blk->h, blk->w, m->arch.growth);
  cx->eng->ops->copy(out, view_channels(B, L->c_in, m->arch.growth));
  return block_stats(m, blk, out, L->c_in, e);
}

static int densenet_forward(net *m, const float *x, float *logits, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, c0 = m->arch.init_features;
  d->x = x;
  view stem = view_make(d->s1, n, d->h0, d->w0, c0);
  int rc;
  if (cx->int8) {
    if ((rc = conv_bn_fold_forward(cx, &d->fold0, &d->conv0, &d->norm0, x, d->s1, e))) return rc;
  } else {
    if ((rc = conv_layer_forward(cx, &d->conv0, x, d->c0out, e))) return rc;
    if ((rc = bn_layer_forward(cx, &d->norm0, view_make(d->c0out, n, d->h0, d->w0, c0), stem, 1, e))) return rc;
  }
  view b0 = view_channels(block_view(&d->blocks[0], d->blocks[0].buf, n), 0, c0);
  cx->eng->ops->maxpool_forward(&d->pool0, stem, b0, d->argmax0);
  if ((rc = block_stats(m, &d->blocks[0], b0, 0, e))) return rc;
  for (int b = 0; b < d->n_blocks; b++) {
    dense_block *blk = &d->blocks[b];
    for (int l = 0; l < blk->n_layers; l++)
      if ((rc = layer_forward(m, blk, &blk->layers[l], e))) return rc;
    if (!blk->has_trans) continue;
    view B = block_view(blk, blk->buf, n);
    int ct = blk->c_total / 2;
    if (cx->int8) {
      bn_layer_forward_u8(cx, &blk->tnorm, B, cx->in_scale[blk->tconv.w], (uint8_t *)d->s1);
      if ((rc = conv_int8_forward(cx, &blk->qt, (const uint8_t *)d->s1, d->s3, e))) return rc;
    } else {
      if ((rc = bn_layer_forward_conv(cx, &blk->tnorm, B, d->s1, 1, e))) return rc;
      if (!cx->train) layer_observe(cx, &blk->tconv, d->s1, view_numel(B));
      if ((rc = conv_layer_forward(cx, &blk->tconv, d->s1, d->s3, e))) return rc;
    }
    dense_block *next = &d->blocks[b + 1];
    view nb = view_channels(block_view(next, next->buf, n), 0, ct);
    cx->eng->ops->avgpool_forward(&blk->tpool, view_make(d->s3, n, blk->h, blk->w, ct), nb);
    if ((rc = block_stats(m, next, nb, 0, e))) return rc;
  }
  dense_block *last = &d->blocks[d->n_blocks - 1];
  view F = view_make(d->s1, n, last->h, last->w, d->c_final);
  if ((rc = bn_layer_forward(cx, &d->norm5, block_view(last, last->buf, n), F, 1, e))) return rc;
  d->last_features = F;
  cx->eng->ops->gap_forward(F, d->feat);
  return cx->eng->ops->linear_forward(d->head, d->feat, ps_data(&m->ps, m->head_w), ps_data(&m->ps, m->head_b),
                                      logits, e);
}

/* ---- backward ---- */

static int layer_backward(net *m, dense_block *blk, dense_layer *L, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, inter = m->arch.bn_size * m->arch.growth, g = m->arch.growth;
  view B = block_view(blk, blk->buf, n), dB = block_view(blk, blk->grad, n);
  view zv = view_make(L->z, n, blk->h, blk->w, inter);
  layer_grad_for_conv(cx, view_channels(dB, L->c_in, g), d->ds2);
  bn_layer_recompute_conv(cx, &L->norm2, zv, d->s1, 1);
  int rc = conv_layer_backward(cx, &L->conv2, d->s1, d->ds2, d->ds1, e);
  if (rc) return rc;
  if ((rc = bn_layer_backward_conv(cx, &L->norm2, zv, view_make(d->ds1, n, blk->h, blk->w, inter), d->dz, 1, e)))
    return rc;
  view prefix = view_channels(B, 0, L->c_in);
  bn_layer_recompute_conv(cx, &L->norm1, prefix, d->s1, 1);
  if ((rc = conv_layer_backward(cx, &L->conv1, d->s1, d->dz, d->ds1, e))) return rc;
  return bn_layer_backward(cx, &L->norm1, prefix, view_make(d->ds1, n, blk->h, blk->w, L->c_in),
                           view_channels(dB, 0, L->c_in), 1, e);
}

static int transition_backward(net *m, dense_block *blk, dense_block *next, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, ct = blk->c_total / 2;
  view ds3 = view_make(d->ds3, n, blk->h, blk->w, ct);
  memset(d->ds3, 0, view_numel(ds3) * sizeof(float));
  cx->eng->ops->avgpool_backward(&blk->tpool, view_channels(block_view(next, next->grad, n), 0, ct), ds3);
  view B = block_view(blk, blk->buf, n);
  bn_layer_recompute_conv(cx, &blk->tnorm, B, d->s1, 1);
  int rc = conv_layer_backward(cx, &blk->tconv, d->s1, d->ds3, d->ds1, e);
  if (rc) return rc;
  return bn_layer_backward(cx, &blk->tnorm, B, view_make(d->ds1, n, blk->h, blk->w, blk->c_total),
                           block_view(blk, blk->grad, n), 1, e);
}

static int densenet_backward(net *m, const float *dlogits, mskx_err *e) {
  densenet *d = dn(m);
  layer_ctx *cx = &m->cx;
  int n = m->n, c0 = m->arch.init_features;
  for (int b = 0; b < d->n_blocks; b++)
    memset(d->blocks[b].grad, 0, view_numel(block_view(&d->blocks[b], NULL, n)) * sizeof(float));
  int rc = cx->eng->ops->linear_backward(d->head, d->feat, dlogits, ps_data(&m->ps, m->head_w), d->dfeat,
                                         ps_grad(&m->ps, m->head_w), ps_grad(&m->ps, m->head_b), e);
  if (rc) return rc;
  layer_grads_written(cx, m->head_w);
  layer_grads_written(cx, m->head_b);
  dense_block *last = &d->blocks[d->n_blocks - 1];
  view dF = view_make(d->ds1, n, last->h, last->w, d->c_final);
  memset(d->ds1, 0, view_numel(dF) * sizeof(float));
  cx->eng->ops->gap_backward(d->dfeat, dF);
  rc = bn_layer_backward(cx, &d->norm5, block_view(last, last->buf, n), dF, block_view(last, last->grad, n), 1, e);
  if (rc) return rc;
  for (int b = d->n_blocks - 1; b >= 0; b--) {
    dense_block *blk = &d->blocks[b];
    if (blk->has_trans && (rc = transition_backward(m, blk, &d->blocks[b + 1], e))) return rc;
    for (int l = blk->n_layers - 1; l >= 0; l--)
      if ((rc = layer_backward(m, blk, &blk->layers[l], e))) return rc;
  }
  /* Stem: maxpool -> norm0/relu0 -> conv0 (no input gradient needed). */
  view dstem = view_make(d->ds1, n, d->h0, d->w0, c0);
  memset(d->ds1, 0, view_numel(dstem) * sizeof(float));
  cx->eng->ops->maxpool_backward(&d->pool0, view_channels(block_view(&d->blocks[0], d->blocks[0].grad, n), 0, c0),
                                 d->argmax0, dstem);
  view dc0 = view_make(d->s1, n, d->h0, d->w0, c0);
  memset(d->s1, 0, view_numel(dc0) * sizeof(float));
  if ((rc = bn_layer_backward(cx, &d->norm0, view_make(d->c0out, n, d->h0, d->w0, c0), dstem, dc0, 1, e))) return rc;
  return conv_layer_backward(cx, &d->conv0, d->x, d->s1, NULL, e);
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
