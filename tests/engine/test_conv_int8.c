/* The int8 convolution (u8 activations x s8 weights, per-output-channel
 * scales, through oneDNN) against the fp32 convolution: exact (to float
 * rounding) on the dequantised operands, and within the analytic bound of
 * the quantisation steps on the original floats. Also the u8 batch-norm pass
 * against the reference engine. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "core/rng.h"
#include "engine/engine.h"
#include "test.h"

#define N 2
#define H 9
#define W 7
#define C 21
#define CO 13

typedef struct shape {
  int k, s, p, bias, relu, u8;
} shape;

static const shape shapes[] = {{1, 1, 0, 0, 0, 0}, {3, 1, 1, 0, 0, 0}, {7, 2, 3, 1, 0, 0},
                               {1, 1, 0, 1, 1, 1}, {3, 2, 1, 1, 1, 0}, {3, 1, 1, 1, 0, 1}};

static float absmax(const float *p, size_t n) {
  float m = 0;
  for (size_t i = 0; i < n; i++) m = fabsf(p[i]) > m ? fabsf(p[i]) : m;
  return m;
}

/* fp32 convolution through the reference engine (double accumulation). */
static int conv_ref(engine *r, const conv_desc *cd, const float *x, const float *w, const float *b, float *y) {
  mskx_err e = {0};
  conv_op *op = NULL;
  conv_desc d = *cd;
  d.int8 = d.dst_u8 = d.relu_post = 0;
  d.oscales = NULL;
  d.has_bias = b != NULL;
  if (r->ops->conv_create(r, &d, &op, &e)) return -1;
  int rc = r->ops->conv_forward(op, x, w, 1, b, y, &e);
  r->ops->conv_destroy(op);
  return rc;
}

TEST(int8_conv_matches_fp32_conv) {
  mskx_err e = {0};
  engine *d = NULL, *r = NULL;
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  CHECK_OK(engine_ref_create(&r, &e), &e);
  for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
    const shape *sh = &shapes[si];
    conv_desc cd = {.n = N, .h = H, .w = W, .cin = C, .cout = CO, .kh = sh->k, .kw = sh->k, .sh = sh->s,
                    .sw = sh->s, .ph = sh->p, .pw = sh->p, .has_bias = sh->bias, .relu_post = sh->relu,
                    .int8 = 1, .dst_u8 = sh->u8};
    int oh = conv_out_h(&cd), ow = conv_out_w(&cd);
    size_t nx = (size_t)N * H * W * C, nw = (size_t)CO * C * sh->k * sh->k, ny = (size_t)N * oh * ow * CO,
           per = (size_t)C * sh->k * sh->k;
    float *x = malloc(nx * 4), *xd = malloc(nx * 4), *w = malloc(nw * 4), *wd = malloc(nw * 4), *b = malloc(CO * 4);
    float *y = malloc(ny * 4), *yx = malloc(ny * 4), *ya = malloc(ny * 4), *tmp = malloc(ny * 4),
          *ax = malloc(nx * 4), *aw = malloc(nw * 4), *cx = malloc(nx * 4), *cw = malloc(nw * 4);
    uint8_t *xq = malloc(nx), *yq = malloc(ny);
    int8_t *wq = malloc(nw);
    float sw[CO], os[CO];
    rng g = rng_for(7, si, 0);
    /* A post-ReLU activation: non-negative, many zeros. */
    for (size_t i = 0; i < nx; i++) x[i] = fmaxf(0.f, (float)rng_normal(&g));
    for (size_t i = 0; i < nw; i++) w[i] = (float)rng_normal(&g) * (0.1f + (float)(i / per) * 0.05f);
    for (int o = 0; o < CO; o++) b[o] = (float)rng_normal(&g);
    float s_in = absmax(x, nx) / 255.f;
    for (size_t i = 0; i < nx; i++) {
      xq[i] = (uint8_t)fminf(255.f, floorf(x[i] / s_in + 0.5f));
      xd[i] = xq[i] * s_in;
    }
    /* Output scale of u8 outputs: a step that keeps most outputs in range. */
    float s_out = 0.05f;
    for (int o = 0; o < CO; o++) {
      sw[o] = absmax(w + o * per, per) / 127.f;
      for (size_t i = 0; i < per; i++) {
        wq[o * per + i] = (int8_t)lrintf(w[o * per + i] / sw[o]);
        wd[o * per + i] = wq[o * per + i] * sw[o];
      }
      os[o] = s_in * sw[o] / (sh->u8 ? s_out : 1.f);
    }
    float bu[CO];  /* the bias in output units */
    for (int o = 0; o < CO; o++) bu[o] = sh->u8 ? b[o] / s_out : b[o];
    cd.oscales = os;
    conv_op *op = NULL;
    int ok = d->ops->conv_create(d, &cd, &op, &e) == 0;
    if (ok) ok = d->ops->conv_forward(op, xq, wq, 1, sh->bias ? bu : NULL, sh->u8 ? (void *)yq : y, &e) == 0;
    if (op) d->ops->conv_destroy(op);
    if (!ok) FAILF("shape %zu: %s", si, e.msg);
    if (sh->u8)
      for (size_t i = 0; i < ny; i++) y[i] = yq[i] * s_out;
    /* Exact operands: the fp32 convolution of the dequantised values. */
    CHECK(conv_ref(r, &cd, xd, wd, sh->bias ? b : NULL, yx) == 0);
    /* Bound on the original floats: sum over taps of |x| dw + |w| dx + dx dw,
     * with dx = s_in / 2 and dw = sw / 2, as three convolutions. */
    CHECK(conv_ref(r, &cd, x, w, sh->bias ? b : NULL, ya) == 0);
    for (size_t i = 0; i < nx; i++) ax[i] = fabsf(x[i]), cx[i] = s_in / 2;
    for (int o = 0; o < CO; o++)
      for (size_t i = 0; i < per; i++) aw[o * per + i] = fabsf(w[o * per + i]), cw[o * per + i] = sw[o] / 2;
    float *bound = malloc(ny * 4);
    CHECK(conv_ref(r, &cd, ax, cw, NULL, bound) == 0);
    CHECK(conv_ref(r, &cd, cx, aw, NULL, tmp) == 0);
    for (size_t i = 0; i < ny; i++) bound[i] += tmp[i];
    CHECK(conv_ref(r, &cd, cx, cw, NULL, tmp) == 0);
    double worst_exact = 0, worst_ratio = 0;
    for (size_t i = 0; i < ny; i++) {
      float ex = yx[i], ap = ya[i];
      if (sh->relu) ex = fmaxf(ex, 0.f), ap = fmaxf(ap, 0.f);
      /* u8 output: rounded to the step and saturated at 255 steps. */
      double tol = 1e-4 * (1 + fabs(ex)) + (sh->u8 ? s_out / 2 : 0);
      if (sh->u8 && ex > 255 * s_out) ex = 255 * s_out, ap = fminf(ap, 255 * s_out);
      if (sh->u8 && ex < 0) ex = 0, ap = fmaxf(ap, 0.f);
      double de = fabs(y[i] - ex);
      if (de > tol) FAILF("shape %zu: output %zu is %g, fp32 on dequantised operands %g", si, i, y[i], ex);
      double lim = bound[i] + tmp[i] + tol;
      if (fabs(y[i] - ap) > lim)
        FAILF("shape %zu: output %zu is %g, fp32 %g: error above the quantisation bound %g", si, i, y[i], ap, lim);
      worst_exact = fmax(worst_exact, de);
      worst_ratio = fmax(worst_ratio, fabs(y[i] - ap) / lim);
    }
    printf("  shape %zu (k%d s%d bias%d relu%d u8%d): max |int8 - fp32(dequantised)| %.3g, max error / bound %.3f\n",
           si, sh->k, sh->s, sh->bias, sh->relu, sh->u8, worst_exact, worst_ratio);
    free(bound);
    free(x), free(xd), free(w), free(wd), free(b), free(y), free(yx), free(ya), free(tmp), free(ax), free(aw), free(cx),
        free(cw), free(xq), free(yq), free(wq);
  }
  engine_destroy(d);
  engine_destroy(r);
}

TEST(int8_conv_refuses_bad_scales) {
  mskx_err e = {0};
  engine *d = NULL;
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  float os[4] = {1, 1, NAN, 1};
  conv_desc cd = {.n = 1, .h = 4, .w = 4, .cin = 4, .cout = 4, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                  .int8 = 1, .oscales = os};
  conv_op *op = NULL;
  CHECK(d->ops->conv_create(d, &cd, &op, &e) == MSKX_EINVAL && !op);
  CHECK(strstr(e.msg, "output scale 2"));
  os[2] = 0;
  CHECK(d->ops->conv_create(d, &cd, &op, &e) == MSKX_EINVAL && !op);
  cd.oscales = NULL;
  CHECK(d->ops->conv_create(d, &cd, &op, &e) == MSKX_EINVAL && !op);
  engine_destroy(d);
}

TEST(affine_u8_matches_reference) {
  engine *d = NULL, *r = NULL;
  mskx_err e = {0};
  CHECK_OK(engine_dnnl_create(2, &d, &e), &e);
  CHECK_OK(engine_ref_create(&r, &e), &e);
  static float x[N * H * W * (C + 2)], sc[C], shf[C];
  rng g = rng_for(11, 0, 0);
  for (size_t i = 0; i < sizeof x / sizeof x[0]; i++) x[i] = (float)rng_normal(&g) * 100;
  for (int c = 0; c < C; c++) sc[c] = (float)rng_normal(&g), shf[c] = (float)rng_normal(&g) * 10;
  view v = {x, N, H, W, C, C + 2, 0};
  static uint8_t yd[N * H * W * C], yr[N * H * W * C];
  d->ops->bn_forward_affine_u8(v, sc, shf, yd);
  r->ops->bn_forward_affine_u8(v, sc, shf, yr);
  CHECK(!memcmp(yd, yr, sizeof yd));
  int sat = 0, zero = 0;
  for (size_t i = 0; i < sizeof yd; i++) sat += yd[i] == 255, zero += yd[i] == 0;
  CHECKF(sat > 0 && zero > 0, "the data should reach both ends (%d saturated, %d zero)", sat, zero);
  engine_destroy(d);
  engine_destroy(r);
}

TEST_MAIN()
