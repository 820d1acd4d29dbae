/* The oneDNN CPU backend: convolutions (the bulk of the FLOPs) run as oneDNN
 * primitives planned once per shape; the memory-bound ops come from
 * kernels_cpu.c. All oneDNN-specific code of the project lives in this file. */
#include <dnnl.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "engine/bf16_cpu.h"
#include "engine/engine.h"
#include "engine/kernels_cpu.h"

/* Shared, growable buffers: ops run one at a time, so one scratchpad and two
 * bf16 conversion buffers serve every primitive of the engine. */
typedef struct dnnl_state {
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  void *scratch;
  size_t scratch_size;
  void *conv_a, *conv_b;   /* bf16 copies of conv inputs */
  size_t conv_a_size, conv_b_size;
} dnnl_state;

/* One direction (forward, backward data or backward weights) of a convolution
 * plus the reorders of its weights between torchvision's OIHW and the layout
 * oneDNN chose. */
typedef struct conv_pass {
  dnnl_primitive_t prim;
  dnnl_memory_desc_t wei_md;     /* oneDNN's chosen (diff_)weights layout */
  dnnl_memory_desc_t user_md;    /* the caller's weights as this primitive sees them */
  dnnl_primitive_t wei_reorder;  /* user OIHW f32 <-> wei_md */
  void *wei_buf;                 /* weights in wei_md (NULL if wei_md is plain OIHW f32) */
  uint64_t wei_ver;              /* version cached in wei_buf (0 = none) */
  size_t scratch_size;
} conv_pass;

struct conv_op {
  engine *eng;
  conv_desc d;
  int oh, ow;
  dnnl_memory_desc_t src_md, dst_md, src_user_md, dst_user_md, wei_user_md, bias_md;
  dnnl_memory_desc_t dst_fwd_md;   /* forward output: dst_user_md, or bf16 with dst_bf16 */
  dnnl_memory_desc_t dsrc_md;      /* backward-data output: src_user_md, or bf16 with dsrc_bf16 */
  dnnl_primitive_t src_to_bf16, dst_to_bf16;   /* bf16 only */
  conv_pass fwd, bwd_data, bwd_wei;
  /* fp32 1x1 convolutions (stride 1, no padding, no bias): both backward
   * passes as oneDNN matmuls over the (pixels x channels) matrices, whose
   * brgemm kernels beat oneDNN 2.6's direct jit backward kernels here
   * (docs/benchmarks.md): dx = dy W, dW = dy^T x. */
  int mm;
  dnnl_memory_desc_t mm_dy, mm_dyt, mm_x;     /* (P,O), its transpose (O,P), (P,C) */
  /* int8: the output scales (the descriptor's pointer is only valid during
   * creation) and the bias in accumulator units: oneDNN 2.x scales the sum
   * of accumulator and bias, conv_desc promises oscale * acc + bias. */
  float *oscales, *bias_q;
};

static int dnnl_check(dnnl_status_t st, const char *what, mskx_err *e) {
  if (st == dnnl_success) return MSKX_OK;
  return err_set(e, MSKX_EBACKEND, "oneDNN: %s failed (status %d)", what, (int)st);
}
#define DN(call, what)                                   \
  do {                                                   \
    int rc_ = dnnl_check((call), what, e);               \
    if (rc_) return rc_;                                 \
  } while (0)

static dnnl_state *state_of(engine *eng) { return (dnnl_state *)eng->impl; }

static int grow(void **buf, size_t *cap, size_t need, mskx_err *e) {
  if (need <= *cap) return MSKX_OK;
  free(*buf);
  *buf = big_alloc(need);
  *cap = *buf ? need : 0;
  if (!*buf) return err_set(e, MSKX_ENOMEM, "cannot allocate %zu bytes of engine scratch", need);
  return MSKX_OK;
}

static void md_nhwc(dnnl_memory_desc_t *md, int n, int c, int h, int w, dnnl_data_type_t dt) {
  dnnl_dims_t dims = {n, c, h, w};
  dnnl_memory_desc_init_by_tag(md, 4, dims, dt, dnnl_nhwc);
}

/* Executes a primitive with up to 6 (arg, md, pointer) bindings. Memory
 * objects wrap caller buffers; they are cheap in oneDNN 2.x. */
typedef struct binding {
  int arg;
  const dnnl_memory_desc_t *md;
  void *ptr;
} binding;

static int run(engine *eng, dnnl_primitive_t prim, const binding *b, int nb, mskx_err *e) {
  dnnl_state *s = state_of(eng);
  dnnl_exec_arg_t args[8];
  dnnl_memory_t mems[8];
  int n = 0, rc = MSKX_OK;
  for (int i = 0; i < nb && rc == MSKX_OK; i++) {
    rc = dnnl_check(dnnl_memory_create(&mems[n], b[i].md, s->eng, b[i].ptr), "memory_create", e);
    if (rc == MSKX_OK) {
      args[n].arg = b[i].arg;
      args[n].memory = mems[n];
      n++;
    }
  }
  if (rc == MSKX_OK) rc = dnnl_check(dnnl_primitive_execute(prim, s->stream, n, args), "execute", e);
  if (rc == MSKX_OK) rc = dnnl_check(dnnl_stream_wait(s->stream), "stream_wait", e);
  for (int i = 0; i < n; i++) dnnl_memory_destroy(mems[i]);
  return rc;
}

static int reorder_create(engine *eng, const dnnl_memory_desc_t *from, const dnnl_memory_desc_t *to,
                          dnnl_primitive_t *out, mskx_err *e) {
  dnnl_state *s = state_of(eng);
  dnnl_primitive_desc_t pd;
  DN(dnnl_reorder_primitive_desc_create(&pd, from, s->eng, to, s->eng, NULL), "reorder_pd");
  dnnl_status_t st = dnnl_primitive_create(out, pd);
  dnnl_primitive_desc_destroy(pd);
  eng->prims_created++;
  return dnnl_check(st, "reorder", e);
}

static int reorder_run(engine *eng, dnnl_primitive_t r, const dnnl_memory_desc_t *from, const void *src,
                       const dnnl_memory_desc_t *to, void *dst, mskx_err *e) {
  binding b[2] = {{DNNL_ARG_FROM, from, (void *)src}, {DNNL_ARG_TO, to, dst}};
  return run(eng, r, b, 2, e);
}

/* Finishes a pass from its op descriptor: creates the primitive with a user
 * scratchpad, records oneDNN's weights layout and prepares the reorder. */
static int pass_init(engine *eng, conv_op *op, conv_pass *p, const void *desc, dnnl_query_t wei_query,
                     const dnnl_memory_desc_t *user_md, int to_user, int relu_post,
                     const_dnnl_primitive_desc_t hint, dnnl_primitive_desc_t *pd_out, mskx_err *e) {
  dnnl_state *s = state_of(eng);
  dnnl_primitive_attr_t attr;
  DN(dnnl_primitive_attr_create(&attr), "attr_create");
  dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
  dnnl_status_t st = dnnl_success;
  /* int8: one scale per output channel (mask bit 1 = the channel dimension). */
  if (op->d.int8 && wei_query == dnnl_query_weights_md)
    st = dnnl_primitive_attr_set_output_scales(attr, op->d.cout, 1 << 1, op->oscales);
  if (relu_post && st == dnnl_success) {
    dnnl_post_ops_t po = NULL;
    st = dnnl_post_ops_create(&po);
    if (st == dnnl_success) st = dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_relu, 0.0f, 0.0f);
    if (st == dnnl_success) st = dnnl_primitive_attr_set_post_ops(attr, po);
    if (po) dnnl_post_ops_destroy(po);
  }
  dnnl_primitive_desc_t pd;
  if (st == dnnl_success) st = dnnl_primitive_desc_create(&pd, desc, attr, s->eng, hint);
  dnnl_primitive_attr_destroy(attr);
  if (st != dnnl_success)
    return err_set(e, MSKX_EBACKEND, "oneDNN: no implementation for a pass of the %dx%d %d->%d convolution (status %d)",
                   op->d.kh, op->d.kw, op->d.cin, op->d.cout, (int)st);
  p->wei_md = *dnnl_primitive_desc_query_md(pd, wei_query, 0);
  p->user_md = *user_md;
  p->scratch_size = dnnl_memory_desc_get_size(dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0));
  int rc = dnnl_check(dnnl_primitive_create(&p->prim, pd), "conv primitive", e);
  eng->prims_created++;
  if (!rc) rc = grow(&s->scratch, &s->scratch_size, p->scratch_size, e);
  if (!rc && !dnnl_memory_desc_equal(&p->wei_md, &p->user_md)) {
    rc = to_user ? reorder_create(eng, &p->wei_md, &p->user_md, &p->wei_reorder, e)
                 : reorder_create(eng, &p->user_md, &p->wei_md, &p->wei_reorder, e);
    if (!rc) {
      p->wei_buf = big_alloc(dnnl_memory_desc_get_size(&p->wei_md));
      if (!p->wei_buf) rc = err_set(e, MSKX_ENOMEM, "cannot allocate convolution weights");
    }
  }
  if (pd_out && !rc)
    *pd_out = pd;
  else
    dnnl_primitive_desc_destroy(pd);
  return rc;
}

static void pass_free(conv_pass *p) {
  if (p->prim) dnnl_primitive_destroy(p->prim);
  if (p->wei_reorder) dnnl_primitive_destroy(p->wei_reorder);
  free(p->wei_buf);
  memset(p, 0, sizeof *p);
}

/* Weights in the pass's layout, reordered from OIHW only when wver changed. */
static int pass_weights(conv_op *op, conv_pass *p, const void *w, uint64_t wver, const void **out,
                        mskx_err *e) {
  if (!p->wei_buf) {
    *out = w;
    return MSKX_OK;
  }
  if (wver == 0 || wver != p->wei_ver) {
    int rc = reorder_run(op->eng, p->wei_reorder, &p->user_md, w, &p->wei_md, p->wei_buf, e);
    if (rc) return rc;
    p->wei_ver = wver;
  }
  *out = p->wei_buf;
  return MSKX_OK;
}

static void conv_destroy(conv_op *op) {
  if (!op) return;
  pass_free(&op->fwd);
  pass_free(&op->bwd_data);
  pass_free(&op->bwd_wei);
  if (op->src_to_bf16) dnnl_primitive_destroy(op->src_to_bf16);
  if (op->dst_to_bf16) dnnl_primitive_destroy(op->dst_to_bf16);
  free(op->oscales);
  free(op->bias_q);
  free(op);
}

/* The matmul form of a 1x1 convolution's backward passes (see conv_op.mm). */
static int mm_plan(engine *eng, conv_op *op, mskx_err *e) {
  const conv_desc *d = &op->d;
  dnnl_dim_t P = (dnnl_dim_t)d->n * op->oh * op->ow, C = d->cin, O = d->cout;
  dnnl_dims_t dy_d = {P, O}, dyt_d = {O, P}, dyt_s = {1, O}, x_d = {P, C}, w_d = {O, C};
  dnnl_memory_desc_t w_user, w_any;
  dnnl_memory_desc_init_by_tag(&op->mm_dy, 2, dy_d, dnnl_f32, dnnl_ab);
  dnnl_memory_desc_init_by_strides(&op->mm_dyt, 2, dyt_d, dnnl_f32, dyt_s);
  dnnl_memory_desc_init_by_tag(&op->mm_x, 2, x_d, dnnl_f32, dnnl_ab);
  dnnl_memory_desc_init_by_tag(&w_user, 2, w_d, dnnl_f32, dnnl_ab);  /* OIHW with 1x1 is (O, C) row-major */
  dnnl_memory_desc_init_by_tag(&w_any, 2, w_d, dnnl_f32, dnnl_format_tag_any);
  dnnl_matmul_desc_t bd, wd;
  DN(dnnl_matmul_desc_init(&bd, &op->mm_dy, &w_any, NULL, &op->mm_x), "matmul backward data desc");
  int rc = pass_init(eng, op, &op->bwd_data, &bd, dnnl_query_weights_md, &w_user, 0, 0, NULL, NULL, e);
  if (rc) return rc;
  /* dW = dy^T x lands in the caller's (O, C) layout: no reorder. */
  DN(dnnl_matmul_desc_init(&wd, &op->mm_dyt, &op->mm_x, NULL, &w_user), "matmul backward weights desc");
  rc = pass_init(eng, op, &op->bwd_wei, &wd, dnnl_query_dst_md, &w_user, 1, 0, NULL, NULL, e);
  if (!rc) op->mm = 1;
  return rc;
}

static int conv_plan(engine *eng, conv_op *op, mskx_err *e) {
  const conv_desc *d = &op->d;
  dnnl_data_type_t cdt = d->prec == PREC_BF16 ? dnnl_bf16 : dnnl_f32;
  dnnl_data_type_t wdt = d->int8 ? dnnl_s8 : cdt, wudt = d->int8 ? dnnl_s8 : dnnl_f32;
  md_nhwc(&op->src_user_md, d->n, d->cin, d->h, d->w, dnnl_f32);
  md_nhwc(&op->dst_user_md, d->n, d->cout, op->oh, op->ow, dnnl_f32);
  md_nhwc(&op->src_md, d->n, d->cin, d->h, d->w, d->int8 ? dnnl_u8 : cdt);
  md_nhwc(&op->dst_md, d->n, d->cout, op->oh, op->ow, d->dst_u8 ? dnnl_u8 : cdt);
  op->dst_fwd_md = d->dst_bf16 || d->dst_u8 ? op->dst_md : op->dst_user_md;
  op->dsrc_md = d->dsrc_bf16 ? op->src_md : op->src_user_md;
  dnnl_dims_t wdims = {d->cout, d->cin, d->kh, d->kw}, bdims = {d->cout};
  dnnl_memory_desc_init_by_tag(&op->wei_user_md, 4, wdims, wudt, dnnl_oihw);
  dnnl_memory_desc_init_by_tag(&op->bias_md, 1, bdims, dnnl_f32, dnnl_x);
  /* Weight gradients stay f32 even in bf16 (fp32 master weights). */
  dnnl_memory_desc_t wany, wany_f32;
  dnnl_memory_desc_init_by_tag(&wany, 4, wdims, wdt, dnnl_format_tag_any);
  dnnl_memory_desc_init_by_tag(&wany_f32, 4, wdims, dnnl_f32, dnnl_format_tag_any);
  dnnl_dims_t strides = {d->sh, d->sw}, pad = {d->ph, d->pw};
  /* oneDNN wants the right/bottom padding that makes the output size exact. */
  dnnl_dims_t pad_r = {(op->oh - 1) * d->sh + d->kh - d->h - d->ph, (op->ow - 1) * d->sw + d->kw - d->w - d->pw};
  const dnnl_memory_desc_t *bias = d->has_bias ? &op->bias_md : NULL;

  dnnl_convolution_desc_t fd;
  dnnl_prop_kind_t prop = d->need_backward ? dnnl_forward_training : dnnl_forward_inference;
  DN(dnnl_convolution_forward_desc_init(&fd, prop, dnnl_convolution_direct, &op->src_md, &wany,
                                        bias, &op->dst_fwd_md, strides, pad, pad_r),
     "conv forward desc");
  dnnl_primitive_desc_t fwd_pd;
  int rc = pass_init(eng, op, &op->fwd, &fd, dnnl_query_weights_md, &op->wei_user_md, 0, d->relu_post, NULL,
                     &fwd_pd, e);
  if (rc) return rc;

  dnnl_convolution_desc_t bd, wd;
  if (!d->need_backward) goto planned;
  if (d->prec == PREC_FP32 && d->kh == 1 && d->kw == 1 && d->sh == 1 && d->sw == 1 && d->ph == 0 && d->pw == 0 &&
      !d->has_bias) {
    rc = mm_plan(eng, op, e);
    goto planned;
  }
  rc = dnnl_check(dnnl_convolution_backward_data_desc_init(&bd, dnnl_convolution_direct, &op->dsrc_md, &wany,
                                                           &op->dst_md, strides, pad, pad_r),
                  "conv backward data desc", e);
  if (!rc) rc = pass_init(eng, op, &op->bwd_data, &bd, dnnl_query_weights_md, &op->wei_user_md, 0, 0, fwd_pd, NULL, e);
  if (!rc)
    rc = dnnl_check(dnnl_convolution_backward_weights_desc_init(&wd, dnnl_convolution_direct, &op->src_md, &wany_f32,
                                                                bias, &op->dst_md, strides, pad, pad_r),
                    "conv backward weights desc", e);
  if (!rc)
    rc = pass_init(eng, op, &op->bwd_wei, &wd, dnnl_query_diff_weights_md, &op->wei_user_md, 1, 0, fwd_pd, NULL, e);
planned:
  dnnl_primitive_desc_destroy(fwd_pd);
  if (rc) return rc;
  if (d->prec == PREC_BF16) {
    rc = reorder_create(eng, &op->src_user_md, &op->src_md, &op->src_to_bf16, e);
    if (!rc) rc = reorder_create(eng, &op->dst_user_md, &op->dst_md, &op->dst_to_bf16, e);
    dnnl_state *s = state_of(eng);
    if (!rc) rc = grow(&s->conv_a, &s->conv_a_size, dnnl_memory_desc_get_size(&op->src_md), e);
    if (!rc) rc = grow(&s->conv_b, &s->conv_b_size, dnnl_memory_desc_get_size(&op->dst_md), e);
  }
  return rc;
}

static int conv_create(engine *eng, const conv_desc *d, conv_op **out, mskx_err *e) {
  *out = NULL;
  if (d->n <= 0 || d->h <= 0 || d->w <= 0 || d->cin <= 0 || d->cout <= 0 || d->kh <= 0 || d->kw <= 0 ||
      d->sh <= 0 || d->sw <= 0 || d->ph < 0 || d->pw < 0)
    return err_set(e, MSKX_EINVAL, "convolution: invalid shape");
  if ((d->src_bf16 || d->ddst_bf16 || d->dsrc_bf16) && d->prec != PREC_BF16)
    return err_set(e, MSKX_EINVAL, "convolution: bf16 %s needs bf16 precision",
                   d->src_bf16 ? "input" : d->ddst_bf16 ? "output gradient" : "input gradient");
  if (d->dsrc_bf16 && !d->need_backward)
    return err_set(e, MSKX_EINVAL, "convolution: a bf16 input gradient needs a training plan");
  if ((d->relu_post || d->dst_bf16) && d->need_backward)
    return err_set(e, MSKX_EINVAL, "convolution: fused ReLU and bf16 output are forward-only");
  if (d->dst_bf16 && d->prec != PREC_BF16)
    return err_set(e, MSKX_EINVAL, "convolution: bf16 output needs bf16 precision");
  if (d->dst_u8 && !d->int8) return err_set(e, MSKX_EINVAL, "convolution: u8 output needs an int8 convolution");
  if (d->int8 && (d->need_backward || d->prec != PREC_FP32 || !d->oscales))
    return err_set(e, MSKX_EINVAL, "convolution: int8 is forward-only, without bf16, and needs output scales");
  for (int o = 0; d->int8 && o < d->cout; o++)
    if (!isfinite(d->oscales[o]) || d->oscales[o] <= 0)
      return err_set(e, MSKX_EINVAL, "convolution: int8 output scale %d is %g (must be finite and positive)", o,
                     (double)d->oscales[o]);
  if (d->h + 2 * d->ph < d->kh || d->w + 2 * d->pw < d->kw)
    return err_set(e, MSKX_ESHAPE, "convolution: %dx%d input (padding %d,%d) is smaller than the %dx%d kernel", d->h,
                   d->w, d->ph, d->pw, d->kh, d->kw);
  conv_op *op = calloc(1, sizeof *op);
  if (!op) return err_set(e, MSKX_ENOMEM, "convolution: out of memory");
  op->eng = eng;
  op->d = *d;
  op->oh = conv_out_h(d);
  op->ow = conv_out_w(d);
  op->d.oscales = NULL;
  if (d->int8) {
    op->oscales = malloc((size_t)d->cout * sizeof(float));
    op->bias_q = malloc((size_t)d->cout * sizeof(float));
    if (!op->oscales || !op->bias_q) {
      conv_destroy(op);
      return err_set(e, MSKX_ENOMEM, "convolution: out of memory");
    }
    memcpy(op->oscales, d->oscales, (size_t)d->cout * sizeof(float));
  }
  int rc = conv_plan(eng, op, e);
  if (rc) {
    conv_destroy(op);
    return rc;
  }
  *out = op;
  return MSKX_OK;
}

/* src in the compute type: the caller's buffer as it is (f32, or bf16 already
 * when src_bf16), or a bf16 copy. */
static int compute_src(conv_op *op, const void *x, const void **out, mskx_err *e) {
  if (op->d.prec != PREC_BF16 || op->d.src_bf16) {
    *out = x;
    return MSKX_OK;
  }
  dnnl_state *s = state_of(op->eng);
  *out = s->conv_a;
  return reorder_run(op->eng, op->src_to_bf16, &op->src_user_md, x, &op->src_md, s->conv_a, e);
}

static int compute_dst(conv_op *op, const void *dy, const void **out, mskx_err *e) {
  if (op->d.prec != PREC_BF16 || op->d.ddst_bf16) {
    *out = dy;
    return MSKX_OK;
  }
  dnnl_state *s = state_of(op->eng);
  *out = s->conv_b;
  return reorder_run(op->eng, op->dst_to_bf16, &op->dst_user_md, dy, &op->dst_md, s->conv_b, e);
}

/* The engine's shared scratchpad as the memory of a pass's scratch_size bytes. */
static dnnl_memory_desc_t scratch_md_of(const conv_pass *p) {
  dnnl_memory_desc_t md;
  dnnl_dims_t sd = {(dnnl_dim_t)p->scratch_size};
  dnnl_memory_desc_init_by_tag(&md, 1, sd, dnnl_u8, dnnl_x);
  return md;
}

static int conv_forward(conv_op *op, const void *x, const void *w, uint64_t wver, const float *b, void *y,
                        mskx_err *e) {
  const void *src, *wei;
  int rc = compute_src(op, x, &src, e);
  if (!rc) rc = pass_weights(op, &op->fwd, w, wver, &wei, e);
  if (rc) return rc;
  if (op->d.int8 && op->d.has_bias) {
    for (int o = 0; o < op->d.cout; o++) op->bias_q[o] = b[o] / op->oscales[o];
    b = op->bias_q;
  }
  dnnl_state *s = state_of(op->eng);
  dnnl_memory_desc_t scratch_md = scratch_md_of(&op->fwd);
  binding bind[5] = {{DNNL_ARG_SRC, &op->src_md, (void *)src},
                     {DNNL_ARG_WEIGHTS, &op->fwd.wei_md, (void *)wei},
                     {DNNL_ARG_DST, &op->dst_fwd_md, y},
                     {DNNL_ARG_SCRATCHPAD, &scratch_md, s->scratch},
                     {DNNL_ARG_BIAS, &op->bias_md, (void *)b}};
  return run(op->eng, op->fwd.prim, bind, op->d.has_bias ? 5 : 4, e);
}

static int conv_backward_data(conv_op *op, const void *dy, const float *w, uint64_t wver, float *dx,
                              mskx_err *e) {
  if (!op->d.need_backward) return err_set(e, MSKX_EINTERNAL, "convolution planned without backward");
  const void *ddst, *wei;
  int rc = compute_dst(op, dy, &ddst, e);
  if (!rc) rc = pass_weights(op, &op->bwd_data, w, wver, &wei, e);
  if (rc) return rc;
  dnnl_state *s = state_of(op->eng);
  dnnl_memory_desc_t scratch_md = scratch_md_of(&op->bwd_data);
  if (op->mm) {
    binding mb[4] = {{DNNL_ARG_SRC, &op->mm_dy, (void *)ddst},
                     {DNNL_ARG_WEIGHTS, &op->bwd_data.wei_md, (void *)wei},
                     {DNNL_ARG_DST, &op->mm_x, dx},
                     {DNNL_ARG_SCRATCHPAD, &scratch_md, s->scratch}};
    return run(op->eng, op->bwd_data.prim, mb, 4, e);
  }
  binding bind[4] = {{DNNL_ARG_DIFF_DST, &op->dst_md, (void *)ddst},
                     {DNNL_ARG_WEIGHTS, &op->bwd_data.wei_md, (void *)wei},
                     {DNNL_ARG_DIFF_SRC, &op->dsrc_md, dx},
                     {DNNL_ARG_SCRATCHPAD, &scratch_md, s->scratch}};
  return run(op->eng, op->bwd_data.prim, bind, 4, e);
}

static int conv_backward_weights(conv_op *op, const void *x, const void *dy, float *dw, float *db,
                                 mskx_err *e) {
  if (!op->d.need_backward) return err_set(e, MSKX_EINTERNAL, "convolution planned without backward");
  const void *src, *ddst;
  int rc = compute_src(op, x, &src, e);
  if (!rc) rc = compute_dst(op, dy, &ddst, e);
  if (rc) return rc;
  dnnl_state *s = state_of(op->eng);
  conv_pass *p = &op->bwd_wei;
  dnnl_memory_desc_t scratch_md = scratch_md_of(p);
  if (op->mm) {
    binding mb[4] = {{DNNL_ARG_SRC, &op->mm_dyt, (void *)ddst},
                     {DNNL_ARG_WEIGHTS, &op->mm_x, (void *)src},
                     {DNNL_ARG_DST, &p->user_md, dw},
                     {DNNL_ARG_SCRATCHPAD, &scratch_md, s->scratch}};
    return run(op->eng, p->prim, mb, 4, e);
  }
  binding bind[5] = {{DNNL_ARG_SRC, &op->src_md, (void *)src},
                     {DNNL_ARG_DIFF_DST, &op->dst_md, (void *)ddst},
                     {DNNL_ARG_DIFF_WEIGHTS, &p->wei_md, p->wei_buf ? p->wei_buf : dw},
                     {DNNL_ARG_SCRATCHPAD, &scratch_md, s->scratch},
                     {DNNL_ARG_DIFF_BIAS, &op->bias_md, db}};
  rc = run(op->eng, p->prim, bind, op->d.has_bias ? 5 : 4, e);
  if (!rc && p->wei_buf) rc = reorder_run(op->eng, p->wei_reorder, &p->wei_md, p->wei_buf, &p->user_md, dw, e);
  return rc;
}

static void onednn_engine_free(engine *eng) {
  dnnl_state *s = state_of(eng);
  if (s) {
    if (s->stream) dnnl_stream_destroy(s->stream);
    if (s->eng) dnnl_engine_destroy(s->eng);
    free(s->scratch);
    free(s->conv_a);
    free(s->conv_b);
    free(s);
  }
  free(eng);
}

static const engine_ops dnnl_ops = {
    .name = "onednn",
    .destroy = onednn_engine_free,
    .conv_create = conv_create,
    .conv_destroy = conv_destroy,
    .conv_forward = conv_forward,
    .conv_backward_data = conv_backward_data,
    .conv_backward_weights = conv_backward_weights,
    .linear_create = cpu_linear_create,
    .linear_destroy = cpu_linear_destroy,
    .linear_forward = cpu_linear_forward,
    .linear_backward = cpu_linear_backward,
    .bn_forward_train = cpu_bn_forward_train,
    .bn_forward_infer = cpu_bn_forward_infer,
    .bn_forward_affine = cpu_bn_forward_affine,
    .bn_forward_affine_bf16 = cpu_bn_forward_affine_bf16,
    .bn_forward_affine_u8 = cpu_bn_forward_affine_u8,
    .bn_backward = cpu_bn_backward,
    .bn_stats = cpu_bn_stats,
    .bn_backward_stats = cpu_bn_backward_stats,
    .bn_backward_dx = cpu_bn_backward_dx,
    .bn_backward_dx_dense = cpu_bn_backward_dx_dense,
    .add_relu_forward = cpu_add_relu_forward,
    .add_relu_backward = cpu_add_relu_backward,
    .relu_forward = cpu_relu_forward,
    .maxpool_forward = cpu_maxpool_forward,
    .maxpool_backward = cpu_maxpool_backward,
    .avgpool_forward = cpu_avgpool_forward,
    .avgpool_backward = cpu_avgpool_backward,
    .gap_forward = cpu_gap_forward,
    .gap_backward = cpu_gap_backward,
    .copy = cpu_copy,
    .accumulate = cpu_accumulate,
    .bce_logits = cpu_bce_logits,
};

int engine_dnnl_create(int threads, engine **out, mskx_err *e) {
  *out = NULL;
  engine *eng = calloc(1, sizeof *eng);
  dnnl_state *s = calloc(1, sizeof *s);
  if (!eng || !s) {
    free(eng);
    free(s);
    return err_set(e, MSKX_ENOMEM, "engine: out of memory");
  }
  eng->ops = &dnnl_ops;
  eng->impl = s;
  eng->threads = threads > 0 ? threads : omp_get_max_threads();
  int rc = dnnl_check(dnnl_engine_create(&s->eng, dnnl_cpu, 0), "engine_create", e);
  if (!rc) rc = dnnl_check(dnnl_stream_create(&s->stream, s->eng, dnnl_stream_default_flags), "stream_create", e);
  if (rc) {
    onednn_engine_free(eng);
    return rc;
  }
  bf16_native();   /* the kernels' conversion path, decided before they run threads */
  *out = eng;
  return MSKX_OK;
}

void engine_destroy(engine *eng) {
  if (eng) eng->ops->destroy(eng);
  cpu_scratch_release();
}

int engine_threads_enter(const engine *eng) {
  int saved = omp_get_max_threads();
  if (eng && eng->threads > 0 && eng->threads != saved) omp_set_num_threads(eng->threads);
  return saved;
}

void engine_threads_leave(int saved) {
  if (saved > 0 && omp_get_max_threads() != saved) omp_set_num_threads(saved);
}

int engine_dnnl_has_bf16(void) { return bf16_cpu_has_avx512bf16(); }
