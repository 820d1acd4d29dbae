/* Inception-v3 exactly as torchvision 0.14 builds it (BasicConv2d = conv
 * without bias + batch norm with eps 1e-3 + ReLU; Mixed_5b..7c; the
 * auxiliary head AuxLogits on Mixed_6e in training; one-logit fc and
 * AuxLogits.fc), as a list of units over activation buffers:
 *   - every branch writes its output into its channel range of the mixed
 *     block's output buffer: in training straight from its batch norm and
 *     max pool (views); in inference the folded convolution writes a dense
 *     scratch copied into the range, as the dense blocks' conv2 does
 *     (oneDNN 2.6 has only its reference kernel for a convolution with a
 *     strided output: measured 100x slower), no separate concatenation;
 *   - backward walks the units in reverse; each unit accumulates its input's
 *     gradient into that buffer's gradient, so a tensor read by several
 *     branches (a block input, Mixed_7b/c's shared 1x1 outputs) collects
 *     them all;
 *   - buffers live from their first writer to their last reader (in unit
 *     order); inference activations and training gradients share memory
 *     between buffers whose live ranges do not meet (training keeps every
 *     activation for backward). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "models/families.h"
#include "models/net.h"

/* torchvision's init_weights: trunc_normal_(std=0.1 or the module's stddev, a=-2, b=2). */
#define INIT_STD 0.1
#define INIT_STD_AUX_FC 0.001
#define INIT_TRUNC 2.0
/* nn.Dropout(p=0.5) before fc (torchvision's default). */
#define INCEPTION_DROPOUT 0.5f
#define DROPOUT_STREAM 0x64726f70ULL

typedef enum unit_kind { U_CONV, U_AVGPOOL, U_MAXPOOL } unit_kind;

/* An NHWC buffer of c channels; h, w planned. g: its gradient (training).
 * Live from unit `first` (its first writer) to unit `last` (its last reader;
 * the unit count for the heads' inputs). */
typedef struct act {
  int c, h, w;
  int first, last;
  size_t off;               /* in its packed region (pack_acts) */
  float *p, *g;
} act;

typedef struct unit {
  unit_kind kind;
  int in, out, c0;          /* activations read and written; written channels start at c0 */
  int aux;                  /* part of AuxLogits (training with an aux weight only) */
  conv_layer conv;          /* U_CONV: a BasicConv2d */
  bn_layer bn;
  conv_bn_fold f;           /* inference: conv + bn + ReLU in one convolution */
  float *z;                 /* training: the convolution's output */
  int k, s, p;              /* pools */
  pool_desc pd;
  int32_t *argmax;
} unit;

typedef struct inception {
  unit *u;
  int nu, cap_u;
  act *a;
  int na, cap_a;
  int feat_act, aux_act;    /* Mixed_7c's output; AuxLogits.conv1's output */
  int aux_w, aux_b;         /* AuxLogits.fc */
  int aux_first, aux_end;   /* store entries of AuxLogits: [first, end) */
  int aux_on;               /* planned with the auxiliary head */
  linear_op *head, *aux_head;
  float *xt;                /* transform_input's output */
  float *feat, *dfeat, *dropout_mask, *aux_feat, *aux_dfeat, *aux_logits, *aux_dz;
  float *dz, *dx;           /* backward scratch; dz: inference's folded outputs too */
  float *arena;
  int32_t *argmax_arena;
} inception;

static inception *inc(const net *m) { return (inception *)m->impl; }

static int new_act(inception *r, int c, mskx_err *e) {
  if (r->na == r->cap_a) {
    int cap = r->cap_a ? 2 * r->cap_a : 64;
    act *a = realloc(r->a, (size_t)cap * sizeof *a);
    if (!a) return err_set(e, MSKX_ENOMEM, "out of memory"), -1;
    r->a = a;
    r->cap_a = cap;
  }
  r->a[r->na] = (act){.c = c};
  return r->na++;
}

static unit *new_unit(inception *r, unit_kind kind, int in, int out, int c0, int aux, mskx_err *e) {
  if (r->nu == r->cap_u) {
    int cap = r->cap_u ? 2 * r->cap_u : 128;
    unit *u = realloc(r->u, (size_t)cap * sizeof *u);
    if (!u) return err_set(e, MSKX_ENOMEM, "out of memory"), NULL;
    r->u = u;
    r->cap_u = cap;
  }
  unit *u = &r->u[r->nu++];
  *u = (unit){.kind = kind, .in = in, .out = out, .c0 = c0, .aux = aux};
  return u;
}

/* Builder state: the store, the block prefix and the first error. */
typedef struct builder {
  net *m;
  inception *r;
  const char *block;
  int aux;
  int rc;
  mskx_err *e;
} builder;

/* prefix.name: a BasicConv2d from act `in` into channels [c0, c0 + cout) of
 * act `out` (a fresh act of cout channels when out < 0). Returns out. */
static int bconv(builder *b, const char *name, int in, int out, int c0, int cout, int kh, int kw, int stride, int ph,
                 int pw) {
  if (b->rc) return -1;
  inception *r = b->r;
  if (out < 0 && (out = new_act(r, cout, b->e)) < 0) return b->rc = b->e->code, -1;
  unit *u = new_unit(r, U_CONV, in, out, c0, b->aux, b->e);
  if (!u) return b->rc = b->e->code, -1;
  char p[160];
  snprintf(p, sizeof p, "%s%s%s.conv", b->block, *b->block ? "." : "", name);
  b->rc = conv_layer_declare_rect(&b->m->ps, &u->conv, p, r->a[in].c, cout, kh, kw, stride, ph, pw, 0, b->e);
  snprintf(p, sizeof p, "%s%s%s.bn", b->block, *b->block ? "." : "", name);
  if (!b->rc) b->rc = bn_layer_declare(&b->m->ps, &u->bn, p, cout, b->e);
  u->bn.eps = INCEPTION_BN_EPS;
  /* Its output gradient comes from bn_layer_backward_conv (bf16 in bf16 plans). */
  u->conv.ddst_bf16 = 1;
  return out;
}

static int pool(builder *b, unit_kind kind, int in, int out, int c0, int k, int s, int p) {
  if (b->rc) return -1;
  if (out < 0 && (out = new_act(b->r, b->r->a[in].c, b->e)) < 0) return b->rc = b->e->code, -1;
  unit *u = new_unit(b->r, kind, in, out, c0, b->aux, b->e);
  if (!u) return b->rc = b->e->code, -1;
  u->k = k;
  u->s = s;
  u->p = p;
  return out;
}

static int out_act(builder *b, int c) {
  if (b->rc) return -1;
  int o = new_act(b->r, c, b->e);
  if (o < 0) b->rc = b->e->code;
  return o;
}

/* The five block types of torchvision's inception.py, branch by branch in
 * registration order (which is also the state_dict order). */
static int block_a(builder *b, int x, int pool_features) {
  int o = out_act(b, 64 + 64 + 96 + pool_features);
  bconv(b, "branch1x1", x, o, 0, 64, 1, 1, 1, 0, 0);
  int t = bconv(b, "branch5x5_1", x, -1, 0, 48, 1, 1, 1, 0, 0);
  bconv(b, "branch5x5_2", t, o, 64, 64, 5, 5, 1, 2, 2);
  t = bconv(b, "branch3x3dbl_1", x, -1, 0, 64, 1, 1, 1, 0, 0);
  t = bconv(b, "branch3x3dbl_2", t, -1, 0, 96, 3, 3, 1, 1, 1);
  bconv(b, "branch3x3dbl_3", t, o, 128, 96, 3, 3, 1, 1, 1);
  t = pool(b, U_AVGPOOL, x, -1, 0, 3, 1, 1);
  bconv(b, "branch_pool", t, o, 224, pool_features, 1, 1, 1, 0, 0);
  return o;
}

static int block_b(builder *b, int x) {
  int cin = b->rc ? 0 : b->r->a[x].c;
  int o = out_act(b, 384 + 96 + cin);
  bconv(b, "branch3x3", x, o, 0, 384, 3, 3, 2, 0, 0);
  int t = bconv(b, "branch3x3dbl_1", x, -1, 0, 64, 1, 1, 1, 0, 0);
  t = bconv(b, "branch3x3dbl_2", t, -1, 0, 96, 3, 3, 1, 1, 1);
  bconv(b, "branch3x3dbl_3", t, o, 384, 96, 3, 3, 2, 0, 0);
  pool(b, U_MAXPOOL, x, o, 480, 3, 2, 0);
  return o;
}

static int block_c(builder *b, int x, int c7) {
  int o = out_act(b, 768);
  bconv(b, "branch1x1", x, o, 0, 192, 1, 1, 1, 0, 0);
  int t = bconv(b, "branch7x7_1", x, -1, 0, c7, 1, 1, 1, 0, 0);
  t = bconv(b, "branch7x7_2", t, -1, 0, c7, 1, 7, 1, 0, 3);
  bconv(b, "branch7x7_3", t, o, 192, 192, 7, 1, 1, 3, 0);
  t = bconv(b, "branch7x7dbl_1", x, -1, 0, c7, 1, 1, 1, 0, 0);
  t = bconv(b, "branch7x7dbl_2", t, -1, 0, c7, 7, 1, 1, 3, 0);
  t = bconv(b, "branch7x7dbl_3", t, -1, 0, c7, 1, 7, 1, 0, 3);
  t = bconv(b, "branch7x7dbl_4", t, -1, 0, c7, 7, 1, 1, 3, 0);
  bconv(b, "branch7x7dbl_5", t, o, 384, 192, 1, 7, 1, 0, 3);
  t = pool(b, U_AVGPOOL, x, -1, 0, 3, 1, 1);
  bconv(b, "branch_pool", t, o, 576, 192, 1, 1, 1, 0, 0);
  return o;
}

static int block_d(builder *b, int x) {
  int cin = b->rc ? 0 : b->r->a[x].c;
  int o = out_act(b, 320 + 192 + cin);
  int t = bconv(b, "branch3x3_1", x, -1, 0, 192, 1, 1, 1, 0, 0);
  bconv(b, "branch3x3_2", t, o, 0, 320, 3, 3, 2, 0, 0);
  t = bconv(b, "branch7x7x3_1", x, -1, 0, 192, 1, 1, 1, 0, 0);
  t = bconv(b, "branch7x7x3_2", t, -1, 0, 192, 1, 7, 1, 0, 3);
  t = bconv(b, "branch7x7x3_3", t, -1, 0, 192, 7, 1, 1, 3, 0);
  bconv(b, "branch7x7x3_4", t, o, 320, 192, 3, 3, 2, 0, 0);
  pool(b, U_MAXPOOL, x, o, 512, 3, 2, 0);
  return o;
}

static int block_e(builder *b, int x) {
  int o = out_act(b, 320 + 768 + 768 + 192);
  bconv(b, "branch1x1", x, o, 0, 320, 1, 1, 1, 0, 0);
  int t = bconv(b, "branch3x3_1", x, -1, 0, 384, 1, 1, 1, 0, 0);
  bconv(b, "branch3x3_2a", t, o, 320, 384, 1, 3, 1, 0, 1);
  bconv(b, "branch3x3_2b", t, o, 704, 384, 3, 1, 1, 1, 0);
  t = bconv(b, "branch3x3dbl_1", x, -1, 0, 448, 1, 1, 1, 0, 0);
  t = bconv(b, "branch3x3dbl_2", t, -1, 0, 384, 3, 3, 1, 1, 1);
  bconv(b, "branch3x3dbl_3a", t, o, 1088, 384, 1, 3, 1, 0, 1);
  bconv(b, "branch3x3dbl_3b", t, o, 1472, 384, 3, 1, 1, 1, 0);
  t = pool(b, U_AVGPOOL, x, -1, 0, 3, 1, 1);
  bconv(b, "branch_pool", t, o, 1856, 192, 1, 1, 1, 0, 0);
  return o;
}

static int declare_linear(net *m, const char *prefix, int cin, int *w, int *bias, mskx_err *e) {
  char name[128];
  int64_t ws[2] = {1, cin}, bs[1] = {1};
  snprintf(name, sizeof name, "%s.weight", prefix);
  if ((*w = ps_declare(&m->ps, name, PK_PARAM, 2, ws, e)) < 0) return e->code;
  snprintf(name, sizeof name, "%s.bias", prefix);
  if ((*bias = ps_declare(&m->ps, name, PK_PARAM, 1, bs, e)) < 0) return e->code;
  return MSKX_OK;
}

static int declare(net *m, inception *r, mskx_err *e) {
  builder b = {.m = m, .r = r, .block = "", .e = e};
  int x = out_act(&b, 3);
  x = bconv(&b, "Conv2d_1a_3x3", x, -1, 0, 32, 3, 3, 2, 0, 0);
  x = bconv(&b, "Conv2d_2a_3x3", x, -1, 0, 32, 3, 3, 1, 0, 0);
  x = bconv(&b, "Conv2d_2b_3x3", x, -1, 0, 64, 3, 3, 1, 1, 1);
  x = pool(&b, U_MAXPOOL, x, -1, 0, 3, 2, 0);
  x = bconv(&b, "Conv2d_3b_1x1", x, -1, 0, 80, 1, 1, 1, 0, 0);
  x = bconv(&b, "Conv2d_4a_3x3", x, -1, 0, 192, 3, 3, 1, 0, 0);
  x = pool(&b, U_MAXPOOL, x, -1, 0, 3, 2, 0);
  static const struct {
    const char *name;
    char type;
    int arg;
  } blocks[] = {{"Mixed_5b", 'A', 32},  {"Mixed_5c", 'A', 64},  {"Mixed_5d", 'A', 64},  {"Mixed_6a", 'B', 0},
                {"Mixed_6b", 'C', 128}, {"Mixed_6c", 'C', 160}, {"Mixed_6d", 'C', 160}, {"Mixed_6e", 'C', 192},
                {"AuxLogits", 'X', 0},  {"Mixed_7a", 'D', 0},   {"Mixed_7b", 'E', 0},   {"Mixed_7c", 'E', 0}};
  for (size_t i = 0; i < sizeof blocks / sizeof blocks[0] && !b.rc; i++) {
    b.block = blocks[i].name;
    switch (blocks[i].type) {
      case 'A': x = block_a(&b, x, blocks[i].arg); break;
      case 'B': x = block_b(&b, x); break;
      case 'C': x = block_c(&b, x, blocks[i].arg); break;
      case 'D': x = block_d(&b, x); break;
      case 'E': x = block_e(&b, x); break;
      default: {
        /* InceptionAux on Mixed_6e: avg_pool2d(5, stride 3), conv0 1x1, conv1 5x5,
         * adaptive average pool, fc. */
        r->aux_first = m->ps.n;
        b.aux = 1;
        int t = pool(&b, U_AVGPOOL, x, -1, 0, 5, 3, 0);
        t = bconv(&b, "conv0", t, -1, 0, 128, 1, 1, 1, 0, 0);
        r->aux_act = bconv(&b, "conv1", t, -1, 0, 768, 5, 5, 1, 0, 0);
        if (!b.rc) b.rc = declare_linear(m, "AuxLogits.fc", 768, &r->aux_w, &r->aux_b, e);
        m->aux_head_w = r->aux_w;
        m->aux_head_b = r->aux_b;
        r->aux_end = m->ps.n;
        b.aux = 0;
      }
    }
  }
  r->feat_act = x;
  if (!b.rc) b.rc = declare_linear(m, "fc", 2048, &m->head_w, &m->head_b, e);
  return b.rc;
}

static void inception_init(net *m, uint64_t seed) {
  inception *r = inc(m);
  param_store *ps = &m->ps;
  for (int i = 0; i < r->nu; i++) {
    const unit *u = &r->u[i];
    if (u->kind != U_CONV) continue;
    /* AuxLogits.conv1's stddev 0.01 is set on the BasicConv2d, not on its
     * nn.Conv2d, so torchvision's init loop uses 0.1 for it as for every conv. */
    init_trunc_normal(ps_data(ps, u->conv.w), ps->entries[u->conv.w].numel, INIT_STD, -INIT_TRUNC, INIT_TRUNC, seed,
                      (uint64_t)u->conv.w);
    bn_layer_init(ps, &u->bn);
  }
  init_trunc_normal(ps_data(ps, r->aux_w), 768, INIT_STD_AUX_FC, -INIT_TRUNC, INIT_TRUNC, seed, (uint64_t)r->aux_w);
  init_trunc_normal(ps_data(ps, m->head_w), 2048, INIT_STD, -INIT_TRUNC, INIT_TRUNC, seed, (uint64_t)m->head_w);
  /* The biases keep nn.Linear's default: uniform in +-1/sqrt(fan_in). */
  init_uniform(ps_data(ps, r->aux_b), 1, 1.0 / sqrt(768.0), seed, (uint64_t)r->aux_b);
  init_uniform(ps_data(ps, m->head_b), 1, 1.0 / sqrt(2048.0), seed, (uint64_t)m->head_b);
  net_params_changed(m);
}

static void inception_unplan(net *m) {
  inception *r = inc(m);
  layer_ctx *cx = &m->cx;
  for (int i = 0; i < r->nu; i++) {
    unit *u = &r->u[i];
    if (u->kind != U_CONV) continue;
    conv_layer_unplan(cx, &u->conv);
    bn_layer_unplan(&u->bn);
    conv_bn_fold_unplan(cx, &u->f);
  }
  if (r->head) cx->eng->ops->linear_destroy(r->head);
  if (r->aux_head) cx->eng->ops->linear_destroy(r->aux_head);
  r->head = r->aux_head = NULL;
  free(r->arena);
  free(r->argmax_arena);
  r->arena = NULL;
  r->argmax_arena = NULL;
  r->aux_on = 0;
  m->aux_logits = m->aux_dz = NULL;
}

static int active(const inception *r, const unit *u) { return !u->aux || r->aux_on; }

static view act_view(const net *m, const act *a, float *p) { return view_make(p, m->n, a->h, a->w, a->c); }

/* Spatial sizes of every activation and the plans of every unit. */
static int plan_units(net *m, int n, int h, int w, size_t *conv_out_max, size_t *conv_in_max, mskx_err *e) {
  inception *r = inc(m);
  const layer_ctx *cx = &m->cx;
  for (int i = 0; i < r->na; i++) r->a[i].h = r->a[i].w = 0;
  r->a[0].h = h;
  r->a[0].w = w;
  *conv_out_max = *conv_in_max = 0;
  for (int i = 0; i < r->nu; i++) {
    unit *u = &r->u[i];
    if (!active(r, u)) continue;
    act *in = &r->a[u->in], *out = &r->a[u->out];
    int oh, ow, rc = MSKX_OK;
    if (u->kind == U_CONV) {
      if (cx->train) {
        rc = conv_layer_plan(cx, &u->conv, n, in->h, in->w, &oh, &ow, e);
        if (!rc) rc = bn_layer_plan(&u->bn, e);
      } else {
        rc = conv_bn_fold_plan(cx, &u->f, &u->conv, 1, 0, n, in->h, in->w, &oh, &ow, e);
      }
      if (rc) return rc;
      size_t o = (size_t)n * oh * ow * u->conv.cout, x = (size_t)n * in->h * in->w * in->c;
      *conv_out_max = *conv_out_max > o ? *conv_out_max : o;
      *conv_in_max = *conv_in_max > x ? *conv_in_max : x;
    } else {
      if (in->h + 2 * u->p < u->k || in->w + 2 * u->p < u->k)
        return err_set(e, MSKX_ESHAPE, "%s: a %dx%d map is smaller than a %dx%d pooling window", m->arch.name, in->h,
                       in->w, u->k, u->k);
      oh = pool_out(in->h, u->k, u->s, u->p);
      ow = pool_out(in->w, u->k, u->s, u->p);
      u->pd = (pool_desc){.n = n, .h = in->h, .w = in->w, .c = in->c, .k = u->k, .s = u->s, .p = u->p};
    }
    if (out->h && (out->h != oh || out->w != ow))
      return err_set(e, MSKX_EINTERNAL, "%s: branch outputs of different sizes", m->arch.name);
    out->h = oh;
    out->w = ow;
  }
  return MSKX_OK;
}

static size_t act_numel(const net *m, const act *a) { return (size_t)m->n * a->h * a->w * a->c; }

/* Live ranges of the planned activations (act 0, the input, is the caller's). */
static void live_ranges(net *m) {
  inception *r = inc(m);
  for (int i = 0; i < r->na; i++) r->a[i].first = r->a[i].last = -1;
  for (int i = 0; i < r->nu; i++) {
    const unit *u = &r->u[i];
    if (!active(r, u)) continue;
    act *o = &r->a[u->out];
    if (o->first < 0) o->first = i;
    r->a[u->in].last = i;
  }
  r->a[r->feat_act].last = r->nu;
  if (r->aux_on) r->a[r->aux_act].last = r->nu;
}

/* First-fit packing, largest first: each planned activation gets an offset
 * such that buffers live at the same time do not overlap. Returns the
 * region's size in floats. */
static size_t pack_acts(net *m, mskx_err *e, int *rc) {
  inception *r = inc(m);
  int *order = malloc((size_t)r->na * sizeof *order), k = 0;
  if (!order) return *rc = err_set(e, MSKX_ENOMEM, "out of memory"), 0;
  for (int i = 1; i < r->na; i++)
    if (r->a[i].first >= 0) order[k++] = i;
  for (int i = 1; i < k; i++)  /* insertion sort by size, descending */
    for (int j = i; j > 0 && act_numel(m, &r->a[order[j]]) > act_numel(m, &r->a[order[j - 1]]); j--) {
      int t = order[j];
      order[j] = order[j - 1];
      order[j - 1] = t;
    }
  size_t end = 0;
  for (int i = 0; i < k; i++) {
    act *a = &r->a[order[i]];
    size_t sz = act_numel(m, a), off = 0;
    for (int moved = 1; moved;) {
      moved = 0;
      for (int j = 0; j < i; j++) {
        const act *b = &r->a[order[j]];
        int meet = a->first <= b->last && b->first <= a->last;
        if (meet && off < b->off + act_numel(m, b) && b->off < off + sz) {
          off = b->off + act_numel(m, b);
          moved = 1;
        }
      }
    }
    a->off = off;
    end = end > off + sz ? end : off + sz;
  }
  free(order);
  return end;
}

static int inception_plan(net *m, int n, int h, int w, mskx_err *e) {
  inception *r = inc(m);
  const layer_ctx *cx = &m->cx;
  int train = cx->train;
  r->aux_on = train && m->aux_weight > 0;
  size_t zmax, xmax;
  int rc = plan_units(m, n, h, w, &zmax, &xmax, e);
  if (!rc) rc = cx->eng->ops->linear_create(cx->eng, n, 2048, 1, &r->head, e);
  if (!rc && r->aux_on) rc = cx->eng->ops->linear_create(cx->eng, n, 768, 1, &r->aux_head, e);
  if (rc) return rc;
  /* m->n is set after planning; the sizes below need it now. */
  m->n = n;
  live_ranges(m);
  /* Packed: inference activations, or training gradients (training keeps
   * every activation, one after the other). */
  size_t packed = pack_acts(m, e, &rc), acts = 0, zs = 0, nargmax = 0;
  if (rc) return rc;
  for (int i = 1; i < r->na && train; i++) acts += act_numel(m, &r->a[i]);
  for (int i = 0; i < r->nu; i++) {
    const unit *u = &r->u[i];
    if (!active(r, u)) continue;
    const act *o = &r->a[u->out];
    if (u->kind == U_CONV && train) zs += (size_t)n * o->h * o->w * u->conv.cout;
    if (u->kind == U_MAXPOOL) nargmax += (size_t)n * o->h * o->w * r->a[u->in].c;
  }
  size_t xt = (size_t)n * h * w * 3, heads = (size_t)n * (3 * 2048 + 2 * 768 + 2);
  size_t total = packed + acts + zs + xt + heads + zmax + (train ? xmax : 0);
  r->arena = big_alloc(total * sizeof(float));
  r->argmax_arena = malloc((nargmax ? nargmax : 1) * sizeof(int32_t));
  if (!r->arena || !r->argmax_arena)
    return err_set(e, MSKX_ENOMEM, "cannot allocate %zu MB of activations", total >> 18);
  float *p = r->arena;
  int32_t *q = r->argmax_arena;
  size_t at = packed;
  for (int i = 1; i < r->na; i++) {
    act *a = &r->a[i];
    if (train) {
      a->g = p + a->off;
      a->p = p + at;
      at += act_numel(m, a);
    } else {
      a->p = p + a->off;
    }
  }
  p += at;
  for (int i = 0; i < r->nu; i++) {
    unit *u = &r->u[i];
    if (!active(r, u)) continue;
    const act *o = &r->a[u->out];
    if (u->kind == U_CONV && train) {
      u->z = p;
      p += (size_t)n * o->h * o->w * u->conv.cout;
    }
    if (u->kind == U_MAXPOOL) {
      u->argmax = q;
      q += (size_t)n * o->h * o->w * r->a[u->in].c;
    }
  }
  r->xt = p, p += xt;
  r->feat = p, p += (size_t)n * 2048;
  r->dfeat = p, p += (size_t)n * 2048;
  r->dropout_mask = p, p += (size_t)n * 2048;
  r->aux_feat = p, p += (size_t)n * 768;
  r->aux_dfeat = p, p += (size_t)n * 768;
  r->aux_logits = p, p += n;
  r->aux_dz = p, p += n;
  r->dz = p, p += zmax;
  if (train) r->dx = p;
  if (r->aux_on) {
    m->aux_logits = r->aux_logits;
    m->aux_dz = r->aux_dz;
  }
  return MSKX_OK;
}

/* torchvision's _transform_input: ImageNet-normalised input to the
 * (x - 0.5) / 0.5 normalisation its ported Google weights expect. */
static const float *transform_input(net *m, const float *x) {
  inception *r = inc(m);
  static const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
  float scale[3], shift[3];
  for (int c = 0; c < 3; c++) {
    scale[c] = std[c] / 0.5f;
    shift[c] = (mean[c] - 0.5f) / 0.5f;
  }
  m->cx.eng->ops->bn_forward_affine(view_make((float *)x, m->n, m->h, m->w, 3), scale, shift, 0,
                                    view_make(r->xt, m->n, m->h, m->w, 3));
  return r->xt;
}

static int unit_forward(net *m, unit *u, mskx_err *e) {
  inception *r = inc(m);
  layer_ctx *cx = &m->cx;
  const act *in = &r->a[u->in], *out = &r->a[u->out];
  view vin = act_view(m, in, in->p), vout = act_view(m, out, out->p);
  switch (u->kind) {
    case U_CONV: {
      int co = u->conv.cout, rc;
      if (!cx->train) {
        if (co == out->c) return conv_bn_fold_forward(cx, &u->f, &u->conv, &u->bn, in->p, out->p, e);
        rc = conv_bn_fold_forward(cx, &u->f, &u->conv, &u->bn, in->p, r->dz, e);
        if (!rc) cx->eng->ops->copy(view_make(r->dz, m->n, out->h, out->w, co), view_channels(vout, u->c0, co));
        return rc;
      }
      rc = conv_layer_forward(cx, &u->conv, in->p, u->z, e);
      if (rc) return rc;
      return bn_layer_forward(cx, &u->bn, view_make(u->z, m->n, out->h, out->w, u->conv.cout),
                              view_channels(vout, u->c0, u->conv.cout), 1, e);
    }
    case U_AVGPOOL: cx->eng->ops->avgpool_forward(&u->pd, vin, view_channels(vout, u->c0, in->c)); return MSKX_OK;
    case U_MAXPOOL:
      cx->eng->ops->maxpool_forward(&u->pd, vin, view_channels(vout, u->c0, in->c), u->argmax);
      return MSKX_OK;
  }
  return MSKX_OK;
}

/* Inverted dropout on the pooled features (PyTorch's): kept ones scaled by
 * 1/(1-p); the scale (or 0) of each is kept for backward. */
static void dropout_forward(net *m) {
  inception *r = inc(m);
  rng g = rng_for(m->seed, DROPOUT_STREAM, m->dropout_key++);
  float p = m->dropout, s = p < 1 ? 1.0f / (1.0f - p) : 0.0f;
  for (size_t i = 0; i < (size_t)m->n * 2048; i++) {
    r->dropout_mask[i] = rng_uniform(&g) >= p ? s : 0.0f;
    r->feat[i] *= r->dropout_mask[i];
  }
}

static int inception_forward(net *m, const float *x, float *logits, mskx_err *e) {
  inception *r = inc(m);
  layer_ctx *cx = &m->cx;
  r->a[0].p = (float *)(m->transform_input ? transform_input(m, x) : x);
  int rc = MSKX_OK;
  for (int i = 0; i < r->nu && !rc; i++)
    if (active(r, &r->u[i])) rc = unit_forward(m, &r->u[i], e);
  if (rc) return rc;
  const act *f = &r->a[r->feat_act];
  cx->eng->ops->gap_forward(act_view(m, f, f->p), r->feat);
  if (cx->train && m->dropout > 0) dropout_forward(m);
  rc = cx->eng->ops->linear_forward(r->head, r->feat, ps_data(&m->ps, m->head_w), ps_data(&m->ps, m->head_b), logits,
                                    e);
  if (rc || !r->aux_on) return rc;
  const act *a = &r->a[r->aux_act];
  cx->eng->ops->gap_forward(act_view(m, a, a->p), r->aux_feat);
  return cx->eng->ops->linear_forward(r->aux_head, r->aux_feat, ps_data(&m->ps, r->aux_w), ps_data(&m->ps, r->aux_b),
                                      r->aux_logits, e);
}

static int unit_backward(net *m, unit *u, mskx_err *e) {
  inception *r = inc(m);
  layer_ctx *cx = &m->cx;
  const engine_ops *op = cx->eng->ops;
  const act *in = &r->a[u->in], *out = &r->a[u->out];
  view gin = act_view(m, in, in->g), gout = act_view(m, out, out->g);
  switch (u->kind) {
    case U_CONV: {
      int co = u->conv.cout;
      int rc = bn_layer_backward_conv(cx, &u->bn, view_make(u->z, m->n, out->h, out->w, co),
                                      view_channels(gout, u->c0, co), r->dz, 1, e);
      if (rc) return rc;
      int first = u->in == 0;
      rc = conv_layer_backward(cx, &u->conv, in->p, r->dz, first ? NULL : r->dx, e);
      if (!rc && !first) op->accumulate(act_view(m, in, r->dx), gin);
      return rc;
    }
    case U_AVGPOOL: op->avgpool_backward(&u->pd, view_channels(gout, u->c0, in->c), gin); return MSKX_OK;
    case U_MAXPOOL: op->maxpool_backward(&u->pd, view_channels(gout, u->c0, in->c), u->argmax, gin); return MSKX_OK;
  }
  return MSKX_OK;
}

static int linear_back(net *m, linear_op *lin, const float *x, const float *dy, int w, int b, float *dx,
                       mskx_err *e) {
  layer_ctx *cx = &m->cx;
  int rc = cx->eng->ops->linear_backward(lin, x, dy, ps_data(&m->ps, w), dx, ps_grad(&m->ps, w), ps_grad(&m->ps, b), e);
  if (rc) return rc;
  layer_grads_written(cx, w);
  layer_grads_written(cx, b);
  return MSKX_OK;
}

static int inception_backward(net *m, const float *dlogits, mskx_err *e) {
  inception *r = inc(m);
  layer_ctx *cx = &m->cx;
  /* Each gradient is zeroed when its live range begins (backward order:
   * at its last reader). */
  const act *f = &r->a[r->feat_act];
  memset(f->g, 0, act_numel(m, f) * sizeof(float));
  int rc = linear_back(m, r->head, r->feat, dlogits, m->head_w, m->head_b, r->dfeat, e);
  if (rc) return rc;
  if (m->dropout > 0)
    for (size_t i = 0; i < (size_t)m->n * 2048; i++) r->dfeat[i] *= r->dropout_mask[i];
  cx->eng->ops->gap_backward(r->dfeat, act_view(m, f, f->g));
  if (r->aux_on) {
    if ((rc = linear_back(m, r->aux_head, r->aux_feat, r->aux_dz, r->aux_w, r->aux_b, r->aux_dfeat, e))) return rc;
    const act *a = &r->a[r->aux_act];
    memset(a->g, 0, act_numel(m, a) * sizeof(float));
    cx->eng->ops->gap_backward(r->aux_dfeat, act_view(m, a, a->g));
  } else {
    /* Without the auxiliary loss its parameters get zero gradients, as with
     * PyTorch's aux weight 0. */
    for (int i = r->aux_first; i < r->aux_end; i++) {
      if (m->ps.entries[i].kind != PK_PARAM) continue;
      memset(ps_grad(&m->ps, i), 0, m->ps.entries[i].numel * sizeof(float));
      layer_grads_written(cx, i);
    }
  }
  for (int i = r->nu - 1; i >= 0 && !rc; i--) {
    const unit *u = &r->u[i];
    if (!active(r, u)) continue;
    act *in = &r->a[u->in];
    if (u->in != 0 && in->last == i) memset(in->g, 0, act_numel(m, in) * sizeof(float));
    rc = unit_backward(m, &r->u[i], e);
  }
  return rc;
}

static view inception_features(const net *m) {
  const inception *r = inc(m);
  const act *f = &r->a[r->feat_act];
  return act_view(m, f, f->p);
}

static void inception_destroy_model(net *m) {
  inception *r = inc(m);
  if (!r) return;
  free(r->u);
  free(r->a);
  free(r);
  m->impl = NULL;
}

static const net_vtbl inception_vt = {
    .plan = inception_plan,
    .unplan = inception_unplan,
    .forward = inception_forward,
    .backward = inception_backward,
    .init = inception_init,
    .destroy_model = inception_destroy_model,
    .features = inception_features,
};

int inception_build(net *m, mskx_err *e) {
  inception *r = calloc(1, sizeof *r);
  if (!r) return err_set(e, MSKX_ENOMEM, "out of memory");
  m->impl = r;
  m->vt = &inception_vt;
  m->aux_weight = INCEPTION_AUX_WEIGHT;
  m->dropout = INCEPTION_DROPOUT;
  return declare(m, r, e);
}
