/* Networks as ONNX graphs (see onnx_graph.h). The wiring follows the
 * torchvision modules that densenet.c and resnet.c reproduce:
 *   DenseNet-BC: conv0-norm0-relu-maxpool, dense layers (norm1-relu-conv1-
 *     norm2-relu-conv2, output concatenated to the block), transitions
 *     (norm-relu-conv-avgpool), norm5-relu-global average pool-classifier;
 *   ResNet-50: conv1-bn1-relu-maxpool, bottlenecks (conv1-bn1-relu-conv2
 *     (stride)-bn2-relu-conv3-bn3, plus the identity or downsample, relu),
 *     global average pool-fc;
 *   Inception-v3 (inception.c): transform_input when on, the stem, Mixed_5b..
 *     7c (BasicConv2d = conv-bn-relu; branches concatenated on channels in
 *     torchvision's order), global average pool-fc; AuxLogits and dropout
 *     exist in training only. */
#include "models/onnx_graph.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "models/families.h"

#define VNAME 160

/* The emitter state shared by every family's graph function. */
typedef struct onnx_emit {
  const net *m;
  onnx_graph *g;
  int fold;
  float eps;                /* every batch norm's epsilon (bn_eps of its layers) */
  mskx_err *e;
  int rc;
} onnx_emit;

/* Writes a value or tensor name into out (VNAME bytes); a name that does not
 * fit sets rc (a cut name would connect the wrong tensors) and leaves out empty. */
__attribute__((format(printf, 3, 4))) static void vname(onnx_emit *c, char *out, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(out, VNAME, fmt, ap);
  va_end(ap);
  if (n >= 0 && n < VNAME) return;
  out[0] = 0;
  if (!c->rc)
    c->rc = err_set(c->e, MSKX_ELIMIT, "onnx export: a tensor name of %s is longer than %d characters", c->m->arch.name,
                    VNAME - 1);
}

/* The parameter called name (with its shape), or NULL after setting rc. */
static const param_entry *param(onnx_emit *c, const char *name, const float **data) {
  *data = NULL;
  int idx = ps_find(&c->m->ps, name);
  if (idx < 0) {
    if (!c->rc) c->rc = err_set(c->e, MSKX_EINTERNAL, "onnx export: %s has no tensor '%s'", c->m->arch.name, name);
    return NULL;
  }
  *data = ps_data(&c->m->ps, idx);
  return &c->m->ps.entries[idx];
}

/* Emits the parameter prefix.suffix as an initializer; its name goes to out. */
static void init_param(onnx_emit *c, const char *prefix, const char *suffix, char *out) {
  vname(c, out, "%s.%s", prefix, suffix);
  const float *d;
  const param_entry *en = param(c, out, &d);
  if (en) onnx_initializer(c->g, out, en->shape, en->ndim, d);
}

static void op1(onnx_emit *c, const char *op, const char *x, const char *y, const onnx_attr *a, int na) {
  const char *in[1] = {x};
  onnx_node(c->g, op, in, 1, y, a, na);
}

static void relu(onnx_emit *c, const char *x, const char *y) { op1(c, "Relu", x, y, NULL, 0); }

/* count_include_pad: an AveragePool divides by k*k at the borders too
 * (PyTorch's default; ONNX's default is 0). */
static void pool(onnx_emit *c, const char *op, const char *x, const char *y, int k, int s, int p, int count_include_pad) {
  int64_t ks[2] = {k, k}, st[2] = {s, s}, pd[4] = {p, p, p, p};
  onnx_attr a[4] = {{"kernel_shape", ONNX_ATTR_INTS, 0, ks, 2, 0},
                    {"strides", ONNX_ATTR_INTS, 0, st, 2, 0},
                    {"pads", ONNX_ATTR_INTS, 0, pd, 4, 0},
                    {"count_include_pad", ONNX_ATTR_INT, 1, NULL, 0, 0}};
  op1(c, op, x, y, a, count_include_pad ? 4 : 3);
}

static void batchnorm(onnx_emit *c, const char *prefix, const char *x, const char *y) {
  char w[VNAME], b[VNAME], mu[VNAME], var[VNAME];
  init_param(c, prefix, "weight", w);
  init_param(c, prefix, "bias", b);
  init_param(c, prefix, "running_mean", mu);
  init_param(c, prefix, "running_var", var);
  const char *in[5] = {x, w, b, mu, var};
  onnx_attr a[1] = {{"epsilon", ONNX_ATTR_FLOAT, 0, NULL, 0, c->eps}};
  onnx_node(c->g, "BatchNormalization", in, 5, y, a, 1);
}

/* Folds bn into conv's weights: scale = gamma / sqrt(var + eps) rounded to
 * float, w' = w * scale, b' = beta - mean * scale (the arithmetic of
 * conv_bn_fold in nn/layers.c). */
static void fold_weights(onnx_emit *c, const char *conv, const char *bn, char *wname, char *bname) {
  char n[VNAME];
  const float *w = NULL, *g = NULL, *beta = NULL, *mu = NULL, *var = NULL;
  vname(c, n, "%s.weight", conv);
  const param_entry *we = param(c, n, &w);
  vname(c, n, "%s.weight", bn);
  const param_entry *ge = param(c, n, &g);
  vname(c, n, "%s.bias", bn);
  param(c, n, &beta);
  vname(c, n, "%s.running_mean", bn);
  param(c, n, &mu);
  vname(c, n, "%s.running_var", bn);
  param(c, n, &var);
  if (c->rc || !w || !g || !beta || !mu || !var) return;
  int64_t cout = we->shape[0];
  size_t per = we->numel / (size_t)cout;
  float *fw = malloc(we->numel * sizeof *fw), *fb = malloc((size_t)cout * sizeof *fb);
  if (!fw || !fb || ge->numel != (size_t)cout) {
    c->rc = err_set(c->e, fw && fb ? MSKX_EINTERNAL : MSKX_ENOMEM, "onnx export: cannot fold %s into %s", bn, conv);
  } else {
    for (int64_t o = 0; o < cout; o++) {
      float s = (float)(g[o] / sqrt((double)var[o] + c->eps));
      for (size_t k = 0; k < per; k++) fw[o * per + k] = w[o * per + k] * s;
      fb[o] = beta[o] - mu[o] * s;
    }
    vname(c, wname, "%s.weight+%s", conv, bn);
    vname(c, bname, "%s.bias+%s", conv, bn);
    onnx_initializer(c->g, wname, we->shape, we->ndim, fw);
    onnx_initializer(c->g, bname, &cout, 1, fb);
  }
  free(fw);
  free(fb);
}

/* Convolution `conv` (kernel kh x kw from its weight, given stride, padding
 * ph rows at top and bottom and pw columns at left and right: Inception's
 * 1x7/7x1 convolutions pad one axis only), followed by batch norm `bn` when
 * not NULL (folded with --fold-bn). */
static void conv_bn(onnx_emit *c, const char *conv, const char *bn, const char *x, const char *y, int stride, int ph, int pw) {
  char w[VNAME], b[VNAME], z[VNAME];
  const float *d;
  vname(c, w, "%s.weight", conv);
  const param_entry *we = param(c, w, &d);
  if (!we) return;
  int64_t ks[2] = {we->shape[2], we->shape[3]}, st[2] = {stride, stride}, pd[4] = {ph, pw, ph, pw};
  onnx_attr a[3] = {{"kernel_shape", ONNX_ATTR_INTS, 0, ks, 2, 0},
                    {"strides", ONNX_ATTR_INTS, 0, st, 2, 0},
                    {"pads", ONNX_ATTR_INTS, 0, pd, 4, 0}};
  if (bn && c->fold) {
    fold_weights(c, conv, bn, w, b);
    const char *in[3] = {x, w, b};
    onnx_node(c->g, "Conv", in, 3, y, a, 3);
    return;
  }
  onnx_initializer(c->g, w, we->shape, we->ndim, d);
  const char *in[2] = {x, w};
  vname(c, z, "%s.out", conv);
  onnx_node(c->g, "Conv", in, 2, bn ? z : y, a, 3);
  if (bn) batchnorm(c, bn, z, y);
}

/* Global average pool, flatten and the one-logit linear head. */
static void head(onnx_emit *c, const char *x, const char *name, const char *logit) {
  char w[VNAME], b[VNAME];
  op1(c, "GlobalAveragePool", x, "pooled", NULL, 0);
  onnx_attr fa[1] = {{"axis", ONNX_ATTR_INT, 1, NULL, 0, 0}};
  op1(c, "Flatten", "pooled", "features", fa, 1);
  init_param(c, name, "weight", w);
  init_param(c, name, "bias", b);
  const char *in[3] = {"features", w, b};
  onnx_attr ga[1] = {{"transB", ONNX_ATTR_INT, 1, NULL, 0, 0}};
  onnx_node(c->g, "Gemm", in, 3, logit, ga, 1);
}

void onnx_densenet_graph(onnx_emit *c, const char *input, const char *logit) {
  const arch_spec *a = &c->m->arch;
  char x[VNAME], p[VNAME], q[VNAME], t1[VNAME], t2[VNAME], t3[VNAME], cat[VNAME];
  conv_bn(c, "features.conv0", "features.norm0", input, "features.norm0", 2, 3, 3);
  relu(c, "features.norm0", "features.relu0");
  pool(c, "MaxPool", "features.relu0", "features.pool0", 3, 2, 1, 0);
  vname(c, x, "features.pool0");
  for (int b = 0; b < a->n_blocks && !c->rc; b++) {
    for (int l = 0; l < a->blocks[b]; l++) {
      vname(c, p, "features.denseblock%d.denselayer%d", b + 1, l + 1);
      vname(c, q, "%s.norm1", p);
      batchnorm(c, q, x, q);
      vname(c, t2, "%s.relu1", p);
      relu(c, q, t2);
      vname(c, q, "%s.conv1", p);
      vname(c, t1, "%s.norm2", p);
      conv_bn(c, q, t1, t2, t1, 1, 0, 0);
      vname(c, t3, "%s.relu2", p);
      relu(c, t1, t3);
      vname(c, q, "%s.conv2", p);
      vname(c, t2, "%s.new", p);
      conv_bn(c, q, NULL, t3, t2, 1, 1, 1);
      /* torchvision concatenates [input, new features of every layer]; one
       * Concat of the running block with the newest features is the same. */
      vname(c, cat, "%s.concat", p);
      const char *in[2] = {x, t2};
      onnx_attr ca[1] = {{"axis", ONNX_ATTR_INT, 1, NULL, 0, 0}};
      onnx_node(c->g, "Concat", in, 2, cat, ca, 1);
      vname(c, x, "%s", cat);
    }
    if (b + 1 < a->n_blocks) {
      vname(c, p, "features.transition%d", b + 1);
      vname(c, q, "%s.norm", p);
      vname(c, t1, "%s.norm", p);
      batchnorm(c, q, x, t1);
      vname(c, t2, "%s.relu", p);
      relu(c, t1, t2);
      vname(c, q, "%s.conv", p);
      conv_bn(c, q, NULL, t2, q, 1, 0, 0);
      vname(c, x, "%s.pool", p);
      pool(c, "AveragePool", q, x, 2, 2, 0, 0);
    }
  }
  batchnorm(c, "features.norm5", x, "features.norm5");
  relu(c, "features.norm5", "features.relu5");
  head(c, "features.relu5", "classifier", logit);
}

void onnx_resnet_graph(onnx_emit *c, const char *input, const char *logit) {
  char x[VNAME], p[VNAME], q[VNAME], r[VNAME], t1[VNAME], t2[VNAME], id[VNAME], sum[VNAME];
  conv_bn(c, "conv1", "bn1", input, "bn1", 2, 3, 3);
  relu(c, "bn1", "relu");
  pool(c, "MaxPool", "relu", "maxpool", 3, 2, 1, 0);
  vname(c, x, "maxpool");
  for (int s = 0; s < 4 && !c->rc; s++)
    for (int i = 0; i < c->m->arch.blocks[s]; i++) {
      int stride = s > 0 && i == 0 ? 2 : 1;
      vname(c, p, "layer%d.%d", s + 1, i);
      vname(c, q, "%s.conv1", p);
      vname(c, r, "%s.bn1", p);
      conv_bn(c, q, r, x, r, 1, 0, 0);
      vname(c, t1, "%s.relu1", p);
      relu(c, r, t1);
      vname(c, q, "%s.conv2", p);
      vname(c, r, "%s.bn2", p);
      conv_bn(c, q, r, t1, r, stride, 1, 1);
      vname(c, t2, "%s.relu2", p);
      relu(c, r, t2);
      vname(c, q, "%s.conv3", p);
      vname(c, r, "%s.bn3", p);
      conv_bn(c, q, r, t2, r, 1, 0, 0);
      if (i == 0) {
        vname(c, q, "%s.downsample.0", p);
        vname(c, id, "%s.downsample.1", p);
        conv_bn(c, q, id, x, id, stride, 0, 0);
      } else {
        vname(c, id, "%s", x);
      }
      vname(c, sum, "%s.add", p);
      const char *in[2] = {r, id};
      onnx_node(c->g, "Add", in, 2, sum, NULL, 0);
      vname(c, x, "%s.relu", p);
      relu(c, sum, x);
    }
  head(c, x, "fc", logit);
}

/* torchvision's BasicConv2d block.name (conv, bn, ReLU) on x; stride and
 * padding as inception.c declares them; its output's name goes to y. */
static void bconv(onnx_emit *c, const char *block, const char *name, const char *x, char *y, int stride, int ph, int pw) {
  char conv[VNAME], bn[VNAME];
  vname(c, conv, "%s%s%s.conv", block, *block ? "." : "", name);
  vname(c, bn, "%s%s%s.bn", block, *block ? "." : "", name);
  conv_bn(c, conv, bn, x, bn, stride, ph, pw);
  vname(c, y, "%s%s%s.relu", block, *block ? "." : "", name);
  relu(c, bn, y);
}

/* block.name: a pool of x (max 3x3 stride 2, or average 3x3 stride 1 pad 1
 * counting the padding, as F.avg_pool2d does by default). */
static void ipool(onnx_emit *c, const char *block, const char *name, const char *x, char *y, int avg) {
  vname(c, y, "%s%s%s", block, *block ? "." : "", name);
  if (avg) pool(c, "AveragePool", x, y, 3, 1, 1, 1);
  else pool(c, "MaxPool", x, y, 3, 2, 0, 0);
}

#define MAX_BRANCHES 6

/* Concatenates the branch outputs br[0..n) on channels into block.cat (y). */
static void concat(onnx_emit *c, const char *block, char br[][VNAME], int n, char *y) {
  const char *in[MAX_BRANCHES];
  for (int i = 0; i < n; i++) in[i] = br[i];
  vname(c, y, "%s.cat", block);
  onnx_attr ca[1] = {{"axis", ONNX_ATTR_INT, 1, NULL, 0, 0}};
  onnx_node(c->g, "Concat", in, n, y, ca, 1);
}

/* InceptionA..E of torchvision's inception.py; the output of block on x goes
 * to x. Branch outputs in the order of its torch.cat (E's 3x3 pairs are
 * concatenated inside their branch, then with the others: one flat Concat
 * is the same). */
static void block_a(onnx_emit *c, const char *k, char *x) {
  char br[4][VNAME], t[VNAME], u[VNAME];
  bconv(c, k, "branch1x1", x, br[0], 1, 0, 0);
  bconv(c, k, "branch5x5_1", x, t, 1, 0, 0);
  bconv(c, k, "branch5x5_2", t, br[1], 1, 2, 2);
  bconv(c, k, "branch3x3dbl_1", x, t, 1, 0, 0);
  bconv(c, k, "branch3x3dbl_2", t, u, 1, 1, 1);
  bconv(c, k, "branch3x3dbl_3", u, br[2], 1, 1, 1);
  ipool(c, k, "avg_pool", x, t, 1);
  bconv(c, k, "branch_pool", t, br[3], 1, 0, 0);
  concat(c, k, br, 4, x);
}

static void block_b(onnx_emit *c, const char *k, char *x) {
  char br[3][VNAME], t[VNAME], u[VNAME];
  bconv(c, k, "branch3x3", x, br[0], 2, 0, 0);
  bconv(c, k, "branch3x3dbl_1", x, t, 1, 0, 0);
  bconv(c, k, "branch3x3dbl_2", t, u, 1, 1, 1);
  bconv(c, k, "branch3x3dbl_3", u, br[1], 2, 0, 0);
  ipool(c, k, "max_pool", x, br[2], 0);
  concat(c, k, br, 3, x);
}

static void block_c(onnx_emit *c, const char *k, char *x) {
  char br[4][VNAME], t[VNAME], u[VNAME];
  bconv(c, k, "branch1x1", x, br[0], 1, 0, 0);
  bconv(c, k, "branch7x7_1", x, t, 1, 0, 0);
  bconv(c, k, "branch7x7_2", t, u, 1, 0, 3);
  bconv(c, k, "branch7x7_3", u, br[1], 1, 3, 0);
  bconv(c, k, "branch7x7dbl_1", x, t, 1, 0, 0);
  bconv(c, k, "branch7x7dbl_2", t, u, 1, 3, 0);
  bconv(c, k, "branch7x7dbl_3", u, t, 1, 0, 3);
  bconv(c, k, "branch7x7dbl_4", t, u, 1, 3, 0);
  bconv(c, k, "branch7x7dbl_5", u, br[2], 1, 0, 3);
  ipool(c, k, "avg_pool", x, t, 1);
  bconv(c, k, "branch_pool", t, br[3], 1, 0, 0);
  concat(c, k, br, 4, x);
}

static void block_d(onnx_emit *c, const char *k, char *x) {
  char br[3][VNAME], t[VNAME], u[VNAME];
  bconv(c, k, "branch3x3_1", x, t, 1, 0, 0);
  bconv(c, k, "branch3x3_2", t, br[0], 2, 0, 0);
  bconv(c, k, "branch7x7x3_1", x, t, 1, 0, 0);
  bconv(c, k, "branch7x7x3_2", t, u, 1, 0, 3);
  bconv(c, k, "branch7x7x3_3", u, t, 1, 3, 0);
  bconv(c, k, "branch7x7x3_4", t, br[1], 2, 0, 0);
  ipool(c, k, "max_pool", x, br[2], 0);
  concat(c, k, br, 3, x);
}

static void block_e(onnx_emit *c, const char *k, char *x) {
  char br[6][VNAME], t[VNAME], u[VNAME];
  bconv(c, k, "branch1x1", x, br[0], 1, 0, 0);
  bconv(c, k, "branch3x3_1", x, t, 1, 0, 0);
  bconv(c, k, "branch3x3_2a", t, br[1], 1, 0, 1);
  bconv(c, k, "branch3x3_2b", t, br[2], 1, 1, 0);
  bconv(c, k, "branch3x3dbl_1", x, t, 1, 0, 0);
  bconv(c, k, "branch3x3dbl_2", t, u, 1, 1, 1);
  bconv(c, k, "branch3x3dbl_3a", u, br[3], 1, 0, 1);
  bconv(c, k, "branch3x3dbl_3b", u, br[4], 1, 1, 0);
  ipool(c, k, "avg_pool", x, t, 1);
  bconv(c, k, "branch_pool", t, br[5], 1, 0, 0);
  concat(c, k, br, 6, x);
}

/* torchvision's _transform_input as inception.c computes it: channel c
 * becomes x * (std[c] / 0.5) + (mean[c] - 0.5) / 0.5 (float constants). */
static void transform_input(onnx_emit *c, const char *x, const char *y) {
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  float scale[3], shift[3];
  for (int ch = 0; ch < 3; ch++) {
    scale[ch] = std[ch] / 0.5f;
    shift[ch] = (mean[ch] - 0.5f) / 0.5f;
  }
  int64_t shape[4] = {1, 3, 1, 1};
  onnx_initializer(c->g, "transform_input.scale", shape, 4, scale);
  onnx_initializer(c->g, "transform_input.shift", shape, 4, shift);
  const char *mul[2] = {x, "transform_input.scale"}, *add[2] = {"transform_input.scaled", "transform_input.shift"};
  onnx_node(c->g, "Mul", mul, 2, "transform_input.scaled", NULL, 0);
  onnx_node(c->g, "Add", add, 2, y, NULL, 0);
}

void onnx_inception_graph(onnx_emit *c, const char *input, const char *logit) {
  char x[VNAME], t[VNAME];
  const char *in = input;
  if (c->m->transform_input) {
    transform_input(c, input, "transform_input");
    in = "transform_input";
  }
  bconv(c, "", "Conv2d_1a_3x3", in, x, 2, 0, 0);
  bconv(c, "", "Conv2d_2a_3x3", x, t, 1, 0, 0);
  bconv(c, "", "Conv2d_2b_3x3", t, x, 1, 1, 1);
  ipool(c, "", "maxpool1", x, t, 0);
  bconv(c, "", "Conv2d_3b_1x1", t, x, 1, 0, 0);
  bconv(c, "", "Conv2d_4a_3x3", x, t, 1, 0, 0);
  ipool(c, "", "maxpool2", t, x, 0);
  block_a(c, "Mixed_5b", x);
  block_a(c, "Mixed_5c", x);
  block_a(c, "Mixed_5d", x);
  block_b(c, "Mixed_6a", x);
  block_c(c, "Mixed_6b", x);
  block_c(c, "Mixed_6c", x);
  block_c(c, "Mixed_6d", x);
  block_c(c, "Mixed_6e", x);
  block_d(c, "Mixed_7a", x);
  block_e(c, "Mixed_7b", x);
  block_e(c, "Mixed_7c", x);
  head(c, x, "fc", logit);
}

int net_onnx_graph(const net *m, onnx_graph *g, const char *input, const char *logit, int fold_bn, mskx_err *e) {
  const arch_family *f = m->arch.family;
  /* A family whose layers carry their own epsilon (Inception's) exports it; the others use the model's. */
  float eps = f->bn_eps > 0 ? f->bn_eps : layer_bn_eps(&m->cx);
  onnx_emit c = {m, g, fold_bn, eps, e, MSKX_OK};
  if (!f->onnx_graph) return err_set(e, MSKX_EUNSUPPORTED, "onnx export: arch %s has no ONNX graph", m->arch.name);
  f->onnx_graph(&c, input, logit);
  return c.rc;
}
