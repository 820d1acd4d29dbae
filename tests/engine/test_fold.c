/* Inference batch-norm folding (conv_bn_fold): one fused convolution gives
 * what the convolution followed by batch norm (running statistics) and ReLU
 * gives, in fp32 and with a bf16 output, and it refolds when the parameters
 * change. */
#include "core/rng.h"
#include "engine/ops_testutil.h"
#include "nn/layers.h"
#include "test.h"

#define N 2
#define H 9
#define W 7
#define CI 19
#define CO 24

typedef struct fixture {
  param_store ps;
  conv_layer conv;
  bn_layer bn;
  layer_ctx cx;
} fixture;

static float *ps_fill(const param_store *ps, int idx, rng *r, double lo, double hi) {
  float *p = ps_data(ps, idx);
  fill_uniform(p, ps->entries[idx].numel, r, lo, hi);
  return p;
}

static int fixture_init(fixture *f, engine *eng, precision prec, int k, int bias, uint64_t seed) {
  memset(f, 0, sizeof *f);
  mskx_err e = {0};
  if (conv_layer_declare(&f->ps, &f->conv, "conv", CI, CO, k, 1, k / 2, bias, &e) ||
      bn_layer_declare(&f->ps, &f->bn, "bn", CO, &e) || ps_alloc(&f->ps, &e))
    return -1;
  rng r;
  rng_seed(&r, seed);
  ps_fill(&f->ps, f->conv.w, &r, -0.3, 0.3);
  if (bias) ps_fill(&f->ps, f->conv.b, &r, -0.5, 0.5);
  ps_fill(&f->ps, f->bn.weight, &r, 0.5, 1.5);
  ps_fill(&f->ps, f->bn.bias, &r, -0.5, 0.5);
  ps_fill(&f->ps, f->bn.rmean, &r, -0.5, 0.5);
  ps_fill(&f->ps, f->bn.rvar, &r, 0.3, 2.0);
  f->conv.src_bf16 = 1;
  f->cx = (layer_ctx){.eng = eng, .ps = &f->ps, .train = 0, .prec = prec};
  return 0;
}

static float bf16_value(uint16_t h) {
  uint32_t u = (uint32_t)h << 16;
  float v;
  memcpy(&v, &u, 4);
  return v;
}

/* The unfused path: convolution, then batch norm + ReLU (fp32 output), and the
 * fused one; returns the largest difference relative to max|unfused|. */
static int compare(fixture *f, const float *x, const uint16_t *x16, double *rel, char *why) {
  int ok = -1, bf16 = f->cx.prec == PREC_BF16;
  mskx_err e = {0};
  conv_bn_fold fold = {0};
  static float z[N * H * W * CO], y[N * H * W * CO], yf[N * H * W * CO];
  int oh = 0, ow = 0;
  REQUIRE(!conv_layer_plan(&f->cx, &f->conv, N, H, W, &oh, &ow, &e), "conv plan: %s", e.msg);
  REQUIRE(oh == H && ow == W, "unexpected output size");
  REQUIRE(!conv_bn_fold_plan(&f->cx, &fold, &f->conv, 1, 1, N, H, W, NULL, NULL, &e), "fold plan: %s", e.msg);
  REQUIRE(!conv_layer_forward(&f->cx, &f->conv, bf16 ? (const void *)x16 : x, z, &e), "conv: %s", e.msg);
  REQUIRE(!bn_layer_forward(&f->cx, &f->bn, view_make(z, N, H, W, CO), view_make(y, N, H, W, CO), 1, &e), "bn: %s",
          e.msg);
  REQUIRE(!conv_bn_fold_forward(&f->cx, &fold, &f->conv, &f->bn, bf16 ? (const void *)x16 : x, yf, &e), "fold: %s",
          e.msg);
  double ref = 0, d = 0;
  size_t cnt = (size_t)N * H * W * CO;
  for (size_t i = 0; i < cnt; i++) {
    double v = bf16 ? bf16_value(((const uint16_t *)yf)[i]) : yf[i];
    REQUIRE(v >= 0, "ReLU not applied (element %zu is %g)", i, v);
    ref = fmax(ref, fabs(y[i]));
    d = fmax(d, fabs(v - y[i]));
  }
  *rel = d / fmax(ref, 1e-30);
  ok = 0;
out:
  conv_layer_unplan(&f->cx, &f->conv);
  conv_bn_fold_unplan(&f->cx, &fold);
  return ok;
}

static engine *eng;

static void input(float *x, uint16_t *x16, size_t n, uint64_t seed) {
  rng r;
  rng_seed(&r, seed);
  fill_uniform(x, n, &r, -1, 1);
  /* bf16 plans feed the convolution bf16 (as bn_layer_forward_conv does);
   * the fp32 comparison uses the same, exactly representable, values. */
  float one[CI], zero[CI];
  for (int c = 0; c < CI; c++) one[c] = 1.0f, zero[c] = 0.0f;
  eng->ops->bn_forward_affine_bf16(view_make(x, N, H, W, CI), one, zero, 0, x16);
  for (size_t i = 0; i < n; i++) x[i] = bf16_value(x16[i]);
}

TEST(fold_equals_conv_then_batch_norm) {
  mskx_err e = {0};
  if (!eng) CHECK_OK(engine_dnnl_create(2, &eng, &e), &e);
  static float x[N * H * W * CI];
  static uint16_t x16[N * H * W * CI];
  input(x, x16, sizeof x / sizeof *x, 7);
  char why[WHY] = "";
  for (int k = 1; k <= 3; k += 2)
    for (int bias = 0; bias < 2; bias++) {
      fixture f;
      double rel = 0;
      CHECKF(!fixture_init(&f, eng, PREC_FP32, k, bias, 10 + k + bias), "setup failed");
      int rc = compare(&f, x, x16, &rel, why);
      ps_free(&f.ps);
      CHECKF(!rc, "%s", why);
      printf("# fp32 %dx%d bias=%d: max rel diff %.2e\n", k, k, bias, rel);
      CHECKF(rel <= 1e-5, "fp32 %dx%d bias=%d: folded differs by %.2e of max", k, k, bias, rel);
      if (!engine_dnnl_has_bf16()) continue;
      CHECKF(!fixture_init(&f, eng, PREC_BF16, k, bias, 10 + k + bias), "setup failed");
      rc = compare(&f, x, x16, &rel, why);
      ps_free(&f.ps);
      CHECKF(!rc, "%s", why);
      printf("# bf16 %dx%d bias=%d: max rel diff %.2e\n", k, k, bias, rel);
      /* bf16 weights (scaled before rounding) and a bf16 output: a few bf16 ulps. */
      CHECKF(rel <= 3e-2, "bf16 %dx%d bias=%d: folded differs by %.2e of max", k, k, bias, rel);
    }
}

TEST(fold_follows_parameter_changes) {
  mskx_err e = {0};
  if (!eng) CHECK_OK(engine_dnnl_create(2, &eng, &e), &e);
  static float x[N * H * W * CI], y1[N * H * W * CO], y2[N * H * W * CO];
  static uint16_t x16[N * H * W * CI];
  input(x, x16, sizeof x / sizeof *x, 8);
  fixture f;
  CHECKF(!fixture_init(&f, eng, PREC_FP32, 3, 0, 20), "setup failed");
  conv_bn_fold fold;
  CHECK_OK(conv_bn_fold_plan(&f.cx, &fold, &f.conv, 1, 0, N, H, W, NULL, NULL, &e), &e);
  CHECK_OK(conv_bn_fold_forward(&f.cx, &fold, &f.conv, &f.bn, x, y1, &e), &e);
  /* New parameters (as an optimizer step or a weight load makes them), then
   * the version bump: channel 0's batch-norm bias and channel 1's weights. */
  ps_data(&f.ps, f.bn.bias)[0] += 1.0f;
  float *w = ps_data(&f.ps, f.conv.w);
  for (int i = 0; i < CI * 9; i++) w[CI * 9 + i] *= -1.0f;
  f.ps.version++;
  CHECK_OK(conv_bn_fold_forward(&f.cx, &fold, &f.conv, &f.bn, x, y2, &e), &e);
  double d0 = 0, d1 = 0, dother = 0;
  for (size_t i = 0; i < (size_t)N * H * W * CO; i++) {
    double d = fabs(y2[i] - y1[i]);
    if (i % CO == 0)
      d0 = fmax(d0, d);
    else if (i % CO == 1)
      d1 = fmax(d1, d);
    else
      dother = fmax(dother, d);
  }
  conv_bn_fold_unplan(&f.cx, &fold);
  ps_free(&f.ps);
  CHECKF(d0 > 0.5, "channel 0 did not follow its new bias (max change %.3g)", d0);
  CHECKF(d1 > 0.1, "channel 1 did not follow its new weights (max change %.3g)", d1);
  CHECKF(dother == 0, "channels whose parameters did not change moved by %.3g", dother);
}

TEST(fused_options_are_forward_only) {
  mskx_err e = {0};
  if (!eng) CHECK_OK(engine_dnnl_create(2, &eng, &e), &e);
  conv_desc d = {.n = 1, .h = 4, .w = 4, .cin = 3, .cout = 2, .kh = 1, .kw = 1, .sh = 1, .sw = 1,
                 .prec = PREC_FP32, .need_backward = 1, .relu_post = 1};
  conv_op *op = NULL;
  CHECK(eng->ops->conv_create(eng, &d, &op, &e) == MSKX_EINVAL && !op);
  d.need_backward = 0, d.relu_post = 0, d.dst_bf16 = 1;  /* bf16 output needs bf16 precision */
  CHECK(eng->ops->conv_create(eng, &d, &op, &e) == MSKX_EINVAL && !op);
}

TEST_MAIN()
