/* The bf16 convolution-input path: bn_forward_affine_bf16 rounds exactly as
 * the reference (round to nearest even) and as oneDNN's own f32 -> bf16
 * conversion, so a convolution fed bf16 directly (src_bf16, ddst_bf16) gives
 * the same bits as one fed the f32 values. */
#include <string.h>
#include "core/rng.h"
#include "engine/bf16_cpu.h"
#include "engine/engine.h"
#include "test.h"

#define N 2
#define H 7
#define W 5
#define C 19
#define CO 8

static void fill(float *p, size_t n, uint64_t seed) {
  rng r = rng_for(seed, 0, 0);
  for (size_t i = 0; i < n; i++) p[i] = (float)rng_normal(&r);
}

TEST(affine_bf16_matches_reference_rounding) {
  mskx_err e = {0};
  engine *d = NULL, *r = NULL;
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  CHECK_OK(engine_ref_create(&r, &e), &e);
  static float x[N * H * W * (C + 3)], sc[C], sh[C];
  fill(x, sizeof x / sizeof x[0], 1);
  fill(sc, C, 2);
  fill(sh, C, 3);
  x[5] = 1.0f + 0x1p-8f;  /* exactly halfway between two bf16 values: ties to even */
  view v = {x, N, H, W, C, C + 3, 0};  /* a strided channel range */
  static uint16_t yd[N * H * W * C], yr[N * H * W * C];
  for (int relu = 0; relu < 2; relu++) {
    d->ops->bn_forward_affine_bf16(v, sc, sh, relu, yd);
    r->ops->bn_forward_affine_bf16(v, sc, sh, relu, yr);
    CHECKF(!memcmp(yd, yr, sizeof yd), "relu=%d: oneDNN-engine and reference bf16 outputs differ", relu);
  }
  engine_destroy(d);
  engine_destroy(r);
}

TEST(conv_on_bf16_input_equals_conv_on_f32_input) {
  if (!engine_dnnl_has_bf16()) return;   /* nothing to compare on this CPU */
  mskx_err e = {0};
  engine *d = NULL;
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  static float x[N * H * W * C], y32[N * H * W * C], w[CO * C * 9], out_a[N * H * W * CO], out_b[N * H * W * CO],
      one[C], zero[C];
  static uint16_t y16[N * H * W * C];
  fill(x, sizeof x / sizeof x[0], 4);
  fill(w, sizeof w / sizeof w[0], 5);
  for (int c = 0; c < C; c++) one[c] = 1.0f, zero[c] = 0.0f;
  view v = view_make(x, N, H, W, C);
  d->ops->bn_forward_affine(v, one, zero, 1, view_make(y32, N, H, W, C));
  d->ops->bn_forward_affine_bf16(v, one, zero, 1, y16);
  conv_desc cd = {.n = N, .h = H, .w = W, .cin = C, .cout = CO, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1,
                  .prec = PREC_BF16, .need_backward = 1};
  conv_op *a = NULL, *b = NULL;
  CHECK_OK(d->ops->conv_create(d, &cd, &a, &e), &e);
  cd.src_bf16 = 1;
  CHECK_OK(d->ops->conv_create(d, &cd, &b, &e), &e);
  CHECK_OK(d->ops->conv_forward(a, y32, w, 1, NULL, out_a, &e), &e);
  CHECK_OK(d->ops->conv_forward(b, y16, w, 1, NULL, out_b, &e), &e);
  CHECKF(!memcmp(out_a, out_b, sizeof out_a), "forward differs between f32 and bf16 inputs");
  static float dy[N * H * W * CO], dwa[CO * C * 9], dwb[CO * C * 9];
  fill(dy, sizeof dy / sizeof dy[0], 6);
  CHECK_OK(d->ops->conv_backward_weights(a, y32, dy, dwa, NULL, &e), &e);
  CHECK_OK(d->ops->conv_backward_weights(b, y16, dy, dwb, NULL, &e), &e);
  CHECKF(!memcmp(dwa, dwb, sizeof dwa), "weight gradients differ between f32 and bf16 inputs");
  /* An output gradient given in bf16 (ddst_bf16) is what oneDNN computes from
   * the f32 gradient it would round itself: same weight and input gradients. */
  static uint16_t dy16[N * H * W * CO];
  static float ones[CO], zeros[CO], dxa[N * H * W * C], dxb[N * H * W * C];
  for (int c = 0; c < CO; c++) ones[c] = 1.0f, zeros[c] = 0.0f;
  d->ops->bn_forward_affine_bf16(view_make(dy, N, H, W, CO), ones, zeros, 0, dy16);
  conv_op *g = NULL;
  cd.ddst_bf16 = 1;
  CHECK_OK(d->ops->conv_create(d, &cd, &g, &e), &e);
  CHECK_OK(d->ops->conv_backward_weights(g, y16, dy16, dwa, NULL, &e), &e);
  CHECKF(!memcmp(dwa, dwb, sizeof dwa), "weight gradients differ between f32 and bf16 output gradients");
  CHECK_OK(d->ops->conv_backward_data(b, dy, w, 1, dxa, &e), &e);
  CHECK_OK(d->ops->conv_backward_data(g, dy16, w, 1, dxb, &e), &e);
  CHECKF(!memcmp(dxa, dxb, sizeof dxa), "input gradients differ between f32 and bf16 output gradients");
  d->ops->conv_destroy(g);
  cd.ddst_bf16 = 0;
  d->ops->conv_destroy(a);
  d->ops->conv_destroy(b);
  cd.prec = PREC_FP32;
  CHECK(d->ops->conv_create(d, &cd, &a, &e) == MSKX_EINVAL);  /* bf16 input needs bf16 precision */
  cd.src_bf16 = 0;
  cd.ddst_bf16 = 1;
  CHECK(d->ops->conv_create(d, &cd, &a, &e) == MSKX_EINVAL);  /* so does a bf16 output gradient */
  engine_destroy(d);
}

/* A convolution writing its input gradient in bf16 (dsrc_bf16) gives the
 * bf16 rounding of the f32 gradient of the same bf16 convolution. */
TEST(conv_bf16_input_gradient_is_rounded_f32_gradient) {
  if (!engine_dnnl_has_bf16()) return;   /* nothing to compare on this CPU */
  mskx_err e = {0};
  engine *d = NULL;
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  static float dy[N * H * W * CO], w[CO * C * 9], dx32[N * H * W * C];
  static uint16_t dx16[N * H * W * C], want[N * H * W * C];
  fill(dy, sizeof dy / sizeof dy[0], 11);
  fill(w, sizeof w / sizeof w[0], 12);
  for (int k = 0; k < 2; k++) {  /* a 3x3 and a 1x1 convolution (densenet's conv2 and conv1) */
    conv_desc cd = {.n = N, .h = H, .w = W, .cin = C, .cout = CO, .kh = k ? 1 : 3, .kw = k ? 1 : 3, .sh = 1,
                    .sw = 1, .ph = k ? 0 : 1, .pw = k ? 0 : 1, .prec = PREC_BF16, .need_backward = 1};
    conv_op *a = NULL, *b = NULL;
    CHECK_OK(d->ops->conv_create(d, &cd, &a, &e), &e);
    cd.dsrc_bf16 = 1;
    CHECK_OK(d->ops->conv_create(d, &cd, &b, &e), &e);
    CHECK_OK(d->ops->conv_backward_data(a, dy, w, 1, dx32, &e), &e);
    CHECK_OK(d->ops->conv_backward_data(b, dy, w, 1, (float *)dx16, &e), &e);
    bf16_from_floats(dx32, want, sizeof dx32 / sizeof dx32[0]);
    size_t diff = 0;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) diff += want[i] != dx16[i];
    CHECKF(diff == 0, "%dx%d: %zu of %zu bf16 input gradients are not the rounded f32 ones", cd.kh, cd.kw, diff,
           sizeof want / sizeof want[0]);
    d->ops->conv_destroy(a);
    d->ops->conv_destroy(b);
  }
  conv_desc bad = {.n = N, .h = H, .w = W, .cin = C, .cout = CO, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                   .prec = PREC_FP32, .need_backward = 1, .dsrc_bf16 = 1};
  conv_op *x = NULL;
  CHECK(d->ops->conv_create(d, &bad, &x, &e) == MSKX_EINVAL);  /* needs bf16 precision */
  bad.prec = PREC_BF16;
  bad.need_backward = 0;
  CHECK(d->ops->conv_create(d, &bad, &x, &e) == MSKX_EINVAL);  /* and a training plan */
  engine_destroy(d);
}

/* The batch-norm backward ops read a bf16 dy exactly: the same bits as with
 * a float dy holding the same (widened) values, on both engines. */
TEST(bn_backward_reads_bf16_dy_exactly) {
  mskx_err e = {0};
  engine *engs[2] = {NULL, NULL};
  CHECK_OK(engine_dnnl_create(2, &engs[0], &e), &e);
  CHECK_OK(engine_ref_create(&engs[1], &e), &e);
  enum { LD = C + 5 };
  static float x[N * H * W * LD], dyf[N * H * W * C], g[C], b[C], m[C], is[C];
  static float dxa[N * H * W * LD], dxb[N * H * W * LD], da[N * H * W * C], db[N * H * W * C];
  static uint16_t dy16[N * H * W * C], ha[N * H * W * C], hb[N * H * W * C];
  fill(x, sizeof x / sizeof x[0], 21);
  fill(dyf, sizeof dyf / sizeof dyf[0], 22);
  fill(g, C, 23);
  fill(b, C, 24);
  fill(m, C, 25);
  for (int c = 0; c < C; c++) is[c] = 0.9f + 0.01f * (float)c;
  bf16_from_floats_c(dyf, dy16, sizeof dyf / sizeof dyf[0]);
  for (size_t i = 0; i < sizeof dyf / sizeof dyf[0]; i++) dyf[i] = bf16_to_float(dy16[i]);
  view xv = {x, N, H, W, C, LD, 0}, v32 = view_make(dyf, N, H, W, C), v16 = view_bf16(dy16, N, H, W, C);
  CHECK(view_channels(v16, 3, 4).p == (float *)(void *)(dy16 + 3));  /* bf16 channel offsets count bf16 values */
  for (int k = 0; k < 2; k++) {
    const engine_ops *o = engs[k]->ops;
    for (int relu = 0; relu < 2; relu++) {
      double sa[2 * C], sb[2 * C];
      float dga[C], dgb[C], dba[C], dbb[C];
      CHECK(!o->bn_backward_stats(xv, v32, g, b, m, is, relu, sa));
      CHECK(!o->bn_backward_stats(xv, v16, g, b, m, is, relu, sb));
      CHECKF(!memcmp(sa, sb, sizeof sa), "%s relu %d: bn_backward_stats differ", o->name, relu);
      memset(dxa, 0, sizeof dxa), memset(dxb, 0, sizeof dxb);
      o->bn_backward_dx(xv, v32, g, b, m, is, relu, sa, 77.0, (view){dxa, N, H, W, C, LD, 0});
      o->bn_backward_dx(xv, v16, g, b, m, is, relu, sa, 77.0, (view){dxb, N, H, W, C, LD, 0});
      CHECKF(!memcmp(dxa, dxb, sizeof dxa), "%s relu %d: bn_backward_dx differ", o->name, relu);
      o->bn_backward_dx_dense(xv, v32, g, b, m, is, relu, sa, 77.0, da, 0);
      o->bn_backward_dx_dense(xv, v16, g, b, m, is, relu, sa, 77.0, db, 0);
      CHECKF(!memcmp(da, db, sizeof da), "%s relu %d: bn_backward_dx_dense (f32) differ", o->name, relu);
      o->bn_backward_dx_dense(xv, v32, g, b, m, is, relu, sa, 77.0, ha, 1);
      o->bn_backward_dx_dense(xv, v16, g, b, m, is, relu, sa, 77.0, hb, 1);
      CHECKF(!memcmp(ha, hb, sizeof ha), "%s relu %d: bn_backward_dx_dense (bf16) differ", o->name, relu);
      memset(dxa, 0, sizeof dxa), memset(dxb, 0, sizeof dxb);
      CHECK(!o->bn_backward(xv, v32, g, b, m, is, relu, (view){dxa, N, H, W, C, LD, 0}, dga, dba));
      CHECK(!o->bn_backward(xv, v16, g, b, m, is, relu, (view){dxb, N, H, W, C, LD, 0}, dgb, dbb));
      CHECKF(!memcmp(dxa, dxb, sizeof dxa) && !memcmp(dga, dgb, sizeof dga) && !memcmp(dba, dbb, sizeof dba),
             "%s relu %d: bn_backward differs", o->name, relu);
    }
  }
  engine_destroy(engs[0]);
  engine_destroy(engs[1]);
}

TEST_MAIN()
