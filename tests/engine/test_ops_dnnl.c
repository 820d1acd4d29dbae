/* The oneDNN engine against the reference engine, op by op: the same random
 * inputs through both, every forward output and every backward result
 * compared, on the DenseNet/ResNet layer shapes at small spatial size, odd
 * channel counts, batch 1 and 3, and strided channel views. Each comparison
 * prints "# <op> <shape> <result>: maxdiff ..." for the record. */
#include "ops_testutil.h"
#include "test.h"

/* fp32: |dnnl - ref| <= 1e-4 * max|ref| + 1e-5; bf16 convolutions: 2e-2 * max|ref|. */
#define F32_REL 1e-4
#define F32_ABS 1e-5
#define BF16_REL 2e-2

/* Compares two float arrays or views; on a mismatch records it and goes to out. */
#define REQUIRE_CLOSE(what, md_, ref_max_, rel, abs)                                                      \
  do {                                                                                                    \
    double md__ = (md_), rm__ = (ref_max_), tol__ = (rel) * rm__ + (abs);                                 \
    printf("# %s: maxdiff %.2e (max|ref| %.2e)\n", what, md__, rm__);                                     \
    REQUIRE(md__ <= tol__, "%s: maxdiff %.3g exceeds %.3g (max|ref| %.3g)", what, md__, tol__, rm__);     \
  } while (0)
#define CLOSE_ARR(what, got, ref, n)                                                                      \
  do {                                                                                                    \
    double rm_;                                                                                           \
    double md_ = arr_maxdiff(got, ref, n, &rm_);                                                          \
    REQUIRE_CLOSE(what, md_, rm_, F32_REL, F32_ABS);                                                      \
  } while (0)
#define CLOSE_VIEW(what, got, ref)                                                                        \
  do {                                                                                                    \
    double rm_;                                                                                           \
    double md_ = view_maxdiff(got, ref, &rm_);                                                            \
    REQUIRE_CLOSE(what, md_, rm_, F32_REL, F32_ABS);                                                      \
  } while (0)

static engine *eng_ref, *eng_dnnl;
static char setup_err[WHY];

/* Both engines, created once; threads = 1 unless a test asks for more. */
static int engines(int threads) {
  static int cur = -1;
  mskx_err e = {0};
  if (!eng_ref && engine_ref_create(&eng_ref, &e) != 0) {
    test_fmt(setup_err, WHY, "engine_ref_create: %s", e.msg);
    return -1;
  }
  if (cur != threads) {
    engine_free(eng_dnnl);
    eng_dnnl = NULL;
    if (engine_dnnl_create(threads, &eng_dnnl, &e) != 0) {
      test_fmt(setup_err, WHY, "engine_dnnl_create(%d): %s", threads, e.msg);
      return -1;
    }
    cur = threads;
  }
  return 0;
}

/* Runs every case of a table, reporting all mismatches, failing on any. */
#define RUN_CASES(threads, count, call)                                             \
  do {                                                                              \
    CHECKF(engines(threads) == 0, "%s", setup_err);                                 \
    char why[WHY], first[WHY] = "";                                                 \
    int bad = 0;                                                                    \
    for (int i = 0; i < (int)(count); i++)                                          \
      if ((call) != 0) {                                                            \
        printf("# MISMATCH %s\n", why);                                             \
        if (!bad++) snprintf(first, WHY, "%s", why);                                \
      }                                                                             \
    CHECKF(bad == 0, "%d of %d cases failed; first: %s", bad, (int)(count), first); \
  } while (0)

/* ---- convolution ---- */

typedef struct cshape {
  int n, h, w, cin, cout, k, s, p, bias;
} cshape;

static const cshape conv_cases[] = {
    {1, 20, 20, 3, 16, 7, 2, 3, 0},  /* stem 7x7 s2 p3 */
    {3, 18, 14, 3, 8, 7, 2, 3, 0},   /* stem, batch 3, non-square */
    {3, 6, 6, 40, 48, 1, 1, 0, 0},   /* dense layer 1x1 bottleneck (4 x growth 12); fp32 backward as matmuls */
    {3, 6, 6, 48, 12, 3, 1, 1, 0},   /* dense layer 3x3 pad 1 to growth 12 */
    {1, 5, 5, 30, 15, 1, 1, 0, 0},   /* transition 1x1, halving channels */
    {2, 4, 4, 64, 128, 1, 1, 0, 0},  /* DenseNet-121 bottleneck widths */
    {1, 4, 4, 128, 32, 3, 1, 1, 0},  /* DenseNet-121 3x3 to growth 32 */
    {2, 8, 8, 16, 16, 3, 1, 1, 0},   /* ResNet basic block */
    {2, 8, 8, 16, 32, 3, 2, 1, 0},   /* ResNet stride-2 3x3 */
    {2, 8, 8, 16, 32, 1, 2, 0, 0},   /* ResNet downsample 1x1 s2 */
    {1, 7, 9, 5, 7, 3, 1, 1, 1},     /* odd channels, bias */
    {3, 7, 6, 3, 5, 3, 2, 0, 1},     /* last row/column never read */
    {2, 3, 3, 4, 6, 7, 1, 3, 0},     /* kernel wider than the input */
};

static int conv_case(cshape c, precision prec, uint64_t seed, char *why) {
  conv_desc d = {.n = c.n, .h = c.h, .w = c.w, .cin = c.cin, .cout = c.cout, .kh = c.k, .kw = c.k, .sh = c.s,
                 .sw = c.s, .ph = c.p, .pw = c.p, .has_bias = c.bias, .prec = PREC_FP32, .need_backward = 1};
  int oh = conv_out_h(&d), ow = conv_out_w(&d), rc = -1;
  size_t nx = (size_t)c.n * c.h * c.w * c.cin, nw = (size_t)c.cout * c.cin * c.k * c.k;
  size_t ny = (size_t)c.n * oh * ow * c.cout, nb = (size_t)c.cout;
  size_t total = 3 * nx + 3 * nw + 3 * ny + 3 * nb;
  float *mem = malloc(total * sizeof(float));
  conv_op *opr = NULL, *opd = NULL;
  mskx_err e = {0};
  char what[160], sub[200];
  snprintf(what, sizeof what, "conv%s n%d %dx%d %d->%d k%d s%d p%d bias%d", prec == PREC_BF16 ? " bf16" : "", c.n,
           c.h, c.w, c.cin, c.cout, c.k, c.s, c.p, c.bias);
  REQUIRE(mem, "%s: out of memory", what);
  float *x = mem, *dxr = x + nx, *dxd = dxr + nx, *w = dxd + nx, *dwr = w + nw, *dwd = dwr + nw;
  float *dy = dwd + nw, *yr = dy + ny, *yd = yr + ny, *b = yd + ny, *dbr = b + nb, *dbd = dbr + nb;
  rng r;
  rng_seed(&r, seed);
  fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1), fill_uniform(dy, ny, &r, -1, 1);
  fill_uniform(b, nb, &r, -1, 1);
  REQUIRE(eng_ref->ops->conv_create(eng_ref, &d, &opr, &e) == 0, "%s: ref conv_create: %s", what, e.msg);
  d.prec = prec;
  REQUIRE(eng_dnnl->ops->conv_create(eng_dnnl, &d, &opd, &e) == 0, "%s: dnnl conv_create: %s", what, e.msg);
  double rel = prec == PREC_BF16 ? BF16_REL : F32_REL, abs = prec == PREC_BF16 ? 0 : F32_ABS;
  engine *es[2] = {eng_ref, eng_dnnl};
  conv_op *ops[2] = {opr, opd};
  float *ys[2] = {yr, yd}, *dxs[2] = {dxr, dxd}, *dws[2] = {dwr, dwd}, *dbs[2] = {dbr, dbd};
  for (int k = 0; k < 2; k++) {
    const engine_ops *o = es[k]->ops;
    REQUIRE(o->conv_forward(ops[k], x, w, 1, c.bias ? b : NULL, ys[k], &e) == 0, "%s: %s forward: %s", what, o->name,
            e.msg);
    REQUIRE(o->conv_backward_data(ops[k], dy, w, 1, dxs[k], &e) == 0, "%s: %s bwd data: %s", what, o->name, e.msg);
    REQUIRE(o->conv_backward_weights(ops[k], x, dy, dws[k], c.bias ? dbs[k] : NULL, &e) == 0, "%s: %s bwd weights: %s",
            what, o->name, e.msg);
  }
  double rm, md;
  md = arr_maxdiff(yd, yr, ny, &rm);
  snprintf(sub, sizeof sub, "%s y", what);
  REQUIRE_CLOSE(sub, md, rm, rel, abs);
  md = arr_maxdiff(dxd, dxr, nx, &rm);
  snprintf(sub, sizeof sub, "%s dx", what);
  REQUIRE_CLOSE(sub, md, rm, rel, abs);
  md = arr_maxdiff(dwd, dwr, nw, &rm);
  snprintf(sub, sizeof sub, "%s dw", what);
  REQUIRE_CLOSE(sub, md, rm, rel, abs);
  if (c.bias) {
    md = arr_maxdiff(dbd, dbr, nb, &rm);
    snprintf(sub, sizeof sub, "%s db", what);
    REQUIRE_CLOSE(sub, md, rm, rel, abs);
  }
  rc = 0;
out:
  if (opr) eng_ref->ops->conv_destroy(opr);
  if (opd) eng_dnnl->ops->conv_destroy(opd);
  free(mem);
  return rc;
}

#define NCONV (sizeof conv_cases / sizeof *conv_cases)

TEST(conv_fp32) { RUN_CASES(1, NCONV, conv_case(conv_cases[i], PREC_FP32, 100 + i, why)); }

TEST(conv_bf16) {
  if (!engine_dnnl_has_bf16()) {
    printf("# no native bf16 on this CPU: bf16 convolutions not compared\n");
    return;
  }
  RUN_CASES(1, NCONV, conv_case(conv_cases[i], PREC_BF16, 200 + i, why));
}

/* Two threads must give the same answers (within tolerance) as one. */
TEST(conv_fp32_two_threads) { RUN_CASES(2, 4, conv_case(conv_cases[2 * i + 1], PREC_FP32, 300 + i, why)); }

/* A new weight version must be picked up; the cached conversion must not be reused. */
static int conv_wver_case(char *why) {
  cshape c = {2, 6, 6, 8, 12, 3, 1, 1, 0};
  conv_desc d = {.n = c.n, .h = c.h, .w = c.w, .cin = c.cin, .cout = c.cout, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                 .ph = 1, .pw = 1, .need_backward = 1};
  size_t nx = (size_t)2 * 6 * 6 * 8, nw = (size_t)12 * 8 * 9, ny = (size_t)2 * 6 * 6 * 12;
  float *x = malloc(nx * 4), *w = malloc(nw * 4), *yr = malloc(ny * 4), *yd = malloc(ny * 4), *dy = malloc(ny * 4);
  float *dxr = malloc(nx * 4), *dxd = malloc(nx * 4);
  conv_op *opr = NULL, *opd = NULL;
  mskx_err e = {0};
  int rc = -1;
  REQUIRE(x && w && yr && yd && dy && dxr && dxd, "out of memory");
  rng r;
  rng_seed(&r, 77);
  fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1), fill_uniform(dy, ny, &r, -1, 1);
  REQUIRE(eng_ref->ops->conv_create(eng_ref, &d, &opr, &e) == 0 && eng_dnnl->ops->conv_create(eng_dnnl, &d, &opd, &e) == 0,
          "conv_create: %s", e.msg);
  for (uint64_t ver = 1; ver <= 3; ver++) {
    if (ver > 1) fill_uniform(w, nw, &r, -1, 1); /* an optimizer step */
    eng_ref->ops->conv_forward(opr, x, w, ver, NULL, yr, &e);
    eng_ref->ops->conv_backward_data(opr, dy, w, ver, dxr, &e);
    REQUIRE(eng_dnnl->ops->conv_forward(opd, x, w, ver, NULL, yd, &e) == 0, "forward: %s", e.msg);
    REQUIRE(eng_dnnl->ops->conv_backward_data(opd, dy, w, ver, dxd, &e) == 0, "bwd data: %s", e.msg);
    char what[64];
    snprintf(what, sizeof what, "conv wver %d y", (int)ver);
    CLOSE_ARR(what, yd, yr, ny);
    snprintf(what, sizeof what, "conv wver %d dx", (int)ver);
    CLOSE_ARR(what, dxd, dxr, nx);
  }
  rc = 0;
out:
  if (opr) eng_ref->ops->conv_destroy(opr);
  if (opd) eng_dnnl->ops->conv_destroy(opd);
  free(x), free(w), free(yr), free(yd), free(dy), free(dxr), free(dxd);
  return rc;
}

TEST(conv_weight_versions) { RUN_CASES(1, 1, conv_wver_case(why)); }

TEST(conv_rejects_bad_desc) {
  CHECKF(engines(1) == 0, "%s", setup_err);
  mskx_err e = {0};
  conv_op *op = NULL;
  conv_desc zero = {.n = 1, .h = 4, .w = 4, .cin = 0, .cout = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .need_backward = 1};
  CHECK(eng_dnnl->ops->conv_create(eng_dnnl, &zero, &op, &e) != 0 && op == NULL);
  conv_desc small = {.n = 1, .h = 2, .w = 2, .cin = 1, .cout = 2, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .need_backward = 1};
  int rc = eng_dnnl->ops->conv_create(eng_dnnl, &small, &op, &e);
  if (op) eng_dnnl->ops->conv_destroy(op);
  CHECKF(rc != 0 && op == NULL, "2x2 input, 3x3 kernel, stride 2, no padding: conv_create returned %d", rc);
}

/* ---- linear ---- */

static const int linear_cases[][3] = {{3, 64, 1}, {1, 37, 5}, {3, 1024, 2}, {1, 1, 1}};

static int linear_case(const int *s, char *why) {
  int n = s[0], in = s[1], out = s[2], rc = -1;
  size_t nx = (size_t)n * in, nw = (size_t)out * in, ny = (size_t)n * out;
  float *mem = malloc((3 * nx + 4 * nw + 3 * ny + 3 * (size_t)out) * sizeof(float));
  linear_op *lr = NULL, *ld = NULL;
  mskx_err e = {0};
  char what[96], sub[128];
  snprintf(what, sizeof what, "linear n%d %d->%d", n, in, out);
  REQUIRE(mem, "out of memory");
  float *x = mem, *dxr = x + nx, *dxd = dxr + nx, *w = dxd + nx, *dwr = w + nw, *dwd = dwr + nw, *dy = dwd + nw;
  float *yr = dy + ny, *yd = yr + ny, *b = yd + ny, *dbr = b + out, *dbd = dbr + out, *dw2 = dbd + out;
  rng r;
  rng_seed(&r, (uint64_t)(n * 7919 + in * 31 + out));
  fill_uniform(x, nx, &r, -1, 1), fill_uniform(w, nw, &r, -1, 1), fill_uniform(dy, ny, &r, -1, 1);
  fill_uniform(b, out, &r, -1, 1);
  REQUIRE(eng_ref->ops->linear_create(eng_ref, n, in, out, &lr, &e) == 0 &&
              eng_dnnl->ops->linear_create(eng_dnnl, n, in, out, &ld, &e) == 0,
          "%s: create: %s", what, e.msg);
  eng_ref->ops->linear_forward(lr, x, w, b, yr, &e);
  eng_ref->ops->linear_backward(lr, x, dy, w, dxr, dwr, dbr, &e);
  REQUIRE(eng_dnnl->ops->linear_forward(ld, x, w, b, yd, &e) == 0, "%s: forward: %s", what, e.msg);
  REQUIRE(eng_dnnl->ops->linear_backward(ld, x, dy, w, dxd, dwd, dbd, &e) == 0, "%s: backward: %s", what, e.msg);
  snprintf(sub, sizeof sub, "%s y", what);
  CLOSE_ARR(sub, yd, yr, ny);
  snprintf(sub, sizeof sub, "%s dx", what);
  CLOSE_ARR(sub, dxd, dxr, nx);
  snprintf(sub, sizeof sub, "%s dw", what);
  CLOSE_ARR(sub, dwd, dwr, nw);
  snprintf(sub, sizeof sub, "%s db", what);
  CLOSE_ARR(sub, dbd, dbr, (size_t)out);
  REQUIRE(eng_dnnl->ops->linear_backward(ld, x, dy, w, NULL, dw2, dbd, &e) == 0, "%s: backward dx NULL: %s", what,
          e.msg);
  snprintf(sub, sizeof sub, "%s dw (dx NULL)", what);
  CLOSE_ARR(sub, dw2, dwr, nw);
  rc = 0;
out:
  if (lr) eng_ref->ops->linear_destroy(lr);
  if (ld) eng_dnnl->ops->linear_destroy(ld);
  free(mem);
  return rc;
}

TEST(linear) { RUN_CASES(1, sizeof linear_cases / sizeof *linear_cases, linear_case(linear_cases[i], why)); }

/* ---- batch norm ---- */

typedef struct bnshape {
  int n, h, w, c, ld, relu;
  double offset; /* mean of x: activations are rarely centred */
} bnshape;

static const bnshape bn_cases[] = {
    {3, 4, 4, 12, 12, 1, 0.0}, {1, 5, 5, 20, 48, 1, 0.5}, {3, 3, 3, 7, 7, 0, 0.0}, {2, 8, 8, 64, 64, 1, 0.3},
    {3, 7, 7, 5, 9, 1, 0.0},   {2, 1, 1, 6, 10, 1, 0.0},  {1, 1, 1, 6, 6, 0, 0.0}, {2, 6, 6, 10, 16, 1, 4.0},
};

/* Per-channel scale = gamma*invstd, shift = beta - mean*scale, in float as engine.h specifies. */
static void scale_shift(const float *gamma, const float *beta, const float *mean, const float *invstd, int c,
                        float *scale, float *shift) {
  for (int i = 0; i < c; i++) scale[i] = gamma[i] * invstd[i], shift[i] = beta[i] - mean[i] * scale[i];
}

static int bn_case(bnshape s, uint64_t seed, char *why) {
  int c = s.c, rc = -1;
  const float eps = 1e-5f;
  vbuf x = {0}, dy = {0}, yr = {0}, yd = {0}, dxr = {0}, dxd = {0};
  float *pm = malloc(16 * (size_t)c * sizeof(float));
  char what[96], sub[160];
  snprintf(what, sizeof what, "bn n%d %dx%d c%d ld%d relu%d mean%.1f", s.n, s.h, s.w, c, s.ld, s.relu, s.offset);
  int c0 = s.ld - c, ok = vbuf_alloc(&x, s.n, s.h, s.w, c, s.ld, c0, seed) == 0 &&
                          vbuf_alloc(&dy, s.n, s.h, s.w, c, s.ld + 3, 1, seed + 1) == 0 &&
                          vbuf_alloc(&yr, s.n, s.h, s.w, c, s.ld, 0, seed + 2) == 0 &&
                          vbuf_alloc(&yd, s.n, s.h, s.w, c, s.ld, 0, seed + 2) == 0 &&
                          vbuf_alloc(&dxr, s.n, s.h, s.w, c, s.ld, c0 / 2, seed + 3) == 0 &&
                          vbuf_alloc(&dxd, s.n, s.h, s.w, c, s.ld, c0 / 2, seed + 3) == 0;
  REQUIRE(ok && pm, "%s: out of memory", what);
  float *gamma = pm, *beta = pm + c, *meanr = pm + 2 * c, *invr = pm + 3 * c, *varr = pm + 4 * c;
  float *meand = pm + 5 * c, *invd = pm + 6 * c, *vard = pm + 7 * c, *rmean = pm + 8 * c, *rvar = pm + 9 * c;
  float *scale = pm + 10 * c, *shift = pm + 11 * c, *dgr = pm + 12 * c, *dgd = pm + 13 * c, *dbr = pm + 14 * c;
  float *dbd = pm + 15 * c;
  rng r;
  rng_seed(&r, seed);
  view_fill_normal(x.v, &r, s.offset, 1.5);
  for (int i = 0; i < c; i++) {
    gamma[i] = (float)((0.5 + rng_uniform(&r)) * (i % 4 == 3 ? -1 : 1));
    beta[i] = (float)(rng_uniform(&r) - 0.5);
    rmean[i] = (float)(rng_uniform(&r) - 0.5 + s.offset);
    rvar[i] = (float)(0.3 + 2 * rng_uniform(&r));
  }
  /* A ReLU mask that flips on a 1-ulp difference would be a false alarm. */
  REQUIRE(!s.relu || bn_push_margin(x.v, gamma, beta, eps, 0.01) == 0, "%s: cannot clear ReLU kinks", what);
  vbuf_snapshot(&yd), vbuf_snapshot(&dxd);
  eng_ref->ops->bn_forward_train(x.v, gamma, beta, eps, s.relu, yr.v, meanr, invr, varr);
  eng_dnnl->ops->bn_forward_train(x.v, gamma, beta, eps, s.relu, yd.v, meand, invd, vard);
  snprintf(sub, sizeof sub, "%s train y", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  snprintf(sub, sizeof sub, "%s mean", what);
  CLOSE_ARR(sub, meand, meanr, (size_t)c);
  snprintf(sub, sizeof sub, "%s invstd", what);
  CLOSE_ARR(sub, invd, invr, (size_t)c);
  snprintf(sub, sizeof sub, "%s var_unbiased", what);
  CLOSE_ARR(sub, vard, varr, (size_t)c);
  /* engine.h: the affine form with the engine's own statistics is bit-exact. */
  scale_shift(gamma, beta, meand, invd, c, scale, shift);
  eng_dnnl->ops->bn_forward_affine(x.v, scale, shift, s.relu, yr.v);
  REQUIRE(view_maxdiff(yr.v, yd.v, NULL) == 0, "%s: bn_forward_affine does not reproduce train output exactly", what);
  eng_ref->ops->bn_forward_infer(x.v, gamma, beta, rmean, rvar, eps, s.relu, yr.v);
  eng_dnnl->ops->bn_forward_infer(x.v, gamma, beta, rmean, rvar, eps, s.relu, yd.v);
  snprintf(sub, sizeof sub, "%s infer y", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  REQUIRE(vbuf_outside_ok(&yd), "%s: forward wrote outside its view", what);
  /* Backward from the same saved statistics; dx starts equal and random. */
  eng_ref->ops->bn_backward(x.v, dy.v, gamma, beta, meanr, invr, s.relu, dxr.v, dgr, dbr);
  eng_dnnl->ops->bn_backward(x.v, dy.v, gamma, beta, meanr, invr, s.relu, dxd.v, dgd, dbd);
  snprintf(sub, sizeof sub, "%s dx (accumulated)", what);
  CLOSE_VIEW(sub, dxd.v, dxr.v);
  snprintf(sub, sizeof sub, "%s dgamma", what);
  CLOSE_ARR(sub, dgd, dgr, (size_t)c);
  snprintf(sub, sizeof sub, "%s dbeta", what);
  CLOSE_ARR(sub, dbd, dbr, (size_t)c);
  REQUIRE(vbuf_outside_ok(&dxd), "%s: backward wrote outside its view", what);
  rc = 0;
out:
  vbuf_free(&x), vbuf_free(&dy), vbuf_free(&yr), vbuf_free(&yd), vbuf_free(&dxr), vbuf_free(&dxd);
  free(pm);
  return rc;
}

#define NBN (sizeof bn_cases / sizeof *bn_cases)
TEST(batchnorm) { RUN_CASES(1, NBN, bn_case(bn_cases[i], 400 + i, why)); }
TEST(batchnorm_two_threads) { RUN_CASES(2, NBN, bn_case(bn_cases[i], 500 + i, why)); }

/* ---- elementwise, copies ---- */

static int eltwise_case(int n, int h, int w, int c, uint64_t seed, char *why) {
  vbuf a = {0}, b = {0}, yr = {0}, yd = {0}, dy = {0}, dar = {0}, dad = {0}, dbr = {0}, dbd = {0};
  int rc = -1;
  char what[96], sub[160];
  snprintf(what, sizeof what, "n%d %dx%d c%d", n, h, w, c);
  int ok = vbuf_alloc(&a, n, h, w, c, c + 8, 0, seed) == 0 && vbuf_alloc(&b, n, h, w, c, c + 4, 3, seed + 1) == 0 &&
           vbuf_alloc(&yr, n, h, w, c, c + 12, 10, seed + 2) == 0 &&
           vbuf_alloc(&yd, n, h, w, c, c + 12, 10, seed + 2) == 0 && vbuf_dense(&dy, n, h, w, c, seed + 3) == 0 &&
           vbuf_alloc(&dar, n, h, w, c, c + 2, 1, seed + 4) == 0 && vbuf_alloc(&dad, n, h, w, c, c + 2, 1, seed + 4) == 0 &&
           vbuf_alloc(&dbr, n, h, w, c, c + 5, 5, seed + 5) == 0 && vbuf_alloc(&dbd, n, h, w, c, c + 5, 5, seed + 5) == 0;
  REQUIRE(ok, "out of memory");
  eng_ref->ops->add_relu_forward(a.v, b.v, yr.v);
  eng_dnnl->ops->add_relu_forward(a.v, b.v, yd.v);
  snprintf(sub, sizeof sub, "add_relu %s y", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  REQUIRE(vbuf_outside_ok(&yd), "add_relu %s: wrote outside its view", what);
  eng_ref->ops->add_relu_backward(yr.v, dy.v, dar.v, dbr.v);
  eng_dnnl->ops->add_relu_backward(yr.v, dy.v, dad.v, dbd.v);
  snprintf(sub, sizeof sub, "add_relu %s da", what);
  CLOSE_VIEW(sub, dad.v, dar.v);
  snprintf(sub, sizeof sub, "add_relu %s db", what);
  CLOSE_VIEW(sub, dbd.v, dbr.v);
  REQUIRE(vbuf_outside_ok(&dad) && vbuf_outside_ok(&dbd), "add_relu %s: backward wrote outside its views", what);
  view_fill(dad.v, NAN);
  view none = {0};
  eng_dnnl->ops->add_relu_backward(yr.v, dy.v, dad.v, none);
  snprintf(sub, sizeof sub, "add_relu %s da (db NULL)", what);
  CLOSE_VIEW(sub, dad.v, dar.v);
  /* In place, as the residual join runs: b is y. */
  eng_dnnl->ops->copy(b.v, yd.v);
  eng_dnnl->ops->add_relu_forward(a.v, yd.v, yd.v);
  snprintf(sub, sizeof sub, "add_relu %s in place", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  eng_ref->ops->relu_forward(a.v, yr.v);
  eng_dnnl->ops->relu_forward(a.v, yd.v);
  snprintf(sub, sizeof sub, "relu %s", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  REQUIRE(vbuf_outside_ok(&yd), "relu %s: wrote outside its view", what);
  rc = 0;
out:
  vbuf_free(&a), vbuf_free(&b), vbuf_free(&yr), vbuf_free(&yd), vbuf_free(&dy);
  vbuf_free(&dar), vbuf_free(&dad), vbuf_free(&dbr), vbuf_free(&dbd);
  return rc;
}

static const int elt_cases[][4] = {{3, 5, 5, 12}, {1, 4, 4, 64}, {2, 3, 7, 5}, {1, 1, 1, 1}};
TEST(add_relu_relu) {
  RUN_CASES(1, 4, eltwise_case(elt_cases[i][0], elt_cases[i][1], elt_cases[i][2], elt_cases[i][3], 600 + i, why));
}

/* The dense-block concat: a layer's channels copied into a slice of the block
 * buffer, and gradients accumulated back. */
static int copy_case(int n, int h, int w, int c, int ld_src, int ld_dst, uint64_t seed, char *why) {
  vbuf src = {0}, dr = {0}, dd = {0};
  int rc = -1;
  char what[96];
  int ok = vbuf_alloc(&src, n, h, w, c, ld_src, ld_src - c, seed) == 0 &&
           vbuf_alloc(&dr, n, h, w, c, ld_dst, (ld_dst - c) / 2, seed + 1) == 0 &&
           vbuf_alloc(&dd, n, h, w, c, ld_dst, (ld_dst - c) / 2, seed + 1) == 0;
  REQUIRE(ok, "out of memory");
  eng_ref->ops->accumulate(src.v, dr.v);
  eng_dnnl->ops->accumulate(src.v, dd.v);
  snprintf(what, sizeof what, "accumulate n%d %dx%d c%d ld %d->%d", n, h, w, c, ld_src, ld_dst);
  CLOSE_VIEW(what, dd.v, dr.v);
  REQUIRE(vbuf_outside_ok(&dd), "%s: wrote outside its view", what);
  eng_ref->ops->copy(src.v, dr.v);
  eng_dnnl->ops->copy(src.v, dd.v);
  snprintf(what, sizeof what, "copy n%d %dx%d c%d ld %d->%d", n, h, w, c, ld_src, ld_dst);
  REQUIRE(view_maxdiff(dd.v, dr.v, NULL) == 0 && vbuf_outside_ok(&dd), "%s: not an exact copy of the view", what);
  rc = 0;
out:
  vbuf_free(&src), vbuf_free(&dr), vbuf_free(&dd);
  return rc;
}

static const int copy_cases[][6] = {{2, 5, 5, 12, 12, 40}, {3, 4, 4, 7, 30, 21}, {1, 3, 3, 5, 5, 5}};
TEST(copy_accumulate) {
  RUN_CASES(1, 3, copy_case(copy_cases[i][0], copy_cases[i][1], copy_cases[i][2], copy_cases[i][3], copy_cases[i][4],
                            copy_cases[i][5], 700 + i, why));
}

/* ---- pooling ---- */

typedef struct pshape {
  pool_desc d;
  int ld, relu_in; /* relu_in: inputs through a ReLU, so windows hold tied zeros */
} pshape;

static const pshape maxpool_cases[] = {
    {{3, 16, 16, 8, 3, 2, 1}, 8, 0},  /* the stem pool */
    {{1, 9, 7, 12, 3, 2, 1}, 20, 0},  /* strided view, odd size */
    {{2, 10, 10, 12, 3, 2, 1}, 12, 1}, /* ties: the stem pool follows a ReLU */
    {{3, 7, 7, 5, 2, 2, 0}, 9, 0},
    {{1, 4, 4, 3, 3, 2, 1}, 3, 0},
};
static const pshape avgpool_cases[] = {
    {{3, 8, 8, 24, 2, 2, 0}, 24, 0},  /* DenseNet transition */
    {{1, 7, 7, 12, 2, 2, 0}, 20, 0},  /* odd size: last row dropped, strided */
    {{2, 5, 5, 3, 3, 1, 1}, 3, 0},    /* padding counted in the divisor */
    {{2, 9, 9, 6, 3, 2, 1}, 8, 0},
};

static int pool_case(pshape s, int max, uint64_t seed, char *why) {
  pool_desc d = s.d;
  int oh = pool_out(d.h, d.k, d.s, d.p), ow = pool_out(d.w, d.k, d.s, d.p), rc = -1;
  size_t ny = (size_t)d.n * oh * ow * d.c;
  vbuf x = {0}, yr = {0}, yd = {0}, dy = {0}, dxr = {0}, dxd = {0};
  int32_t *amr = malloc(ny * sizeof *amr), *amd = malloc(ny * sizeof *amd);
  char what[96], sub[160];
  snprintf(what, sizeof what, "%spool n%d %dx%d c%d k%d s%d p%d ld%d%s", max ? "max" : "avg", d.n, d.h, d.w, d.c, d.k,
           d.s, d.p, s.ld, s.relu_in ? " ties" : "");
  int ok = vbuf_alloc(&x, d.n, d.h, d.w, d.c, s.ld, s.ld - d.c, seed) == 0 &&
           vbuf_alloc(&yr, d.n, oh, ow, d.c, s.ld + 1, 1, seed + 1) == 0 &&
           vbuf_alloc(&yd, d.n, oh, ow, d.c, s.ld + 1, 1, seed + 1) == 0 &&
           vbuf_alloc(&dy, d.n, oh, ow, d.c, s.ld, 0, seed + 2) == 0 &&
           vbuf_alloc(&dxr, d.n, d.h, d.w, d.c, s.ld + 2, 2, seed + 3) == 0 &&
           vbuf_alloc(&dxd, d.n, d.h, d.w, d.c, s.ld + 2, 2, seed + 3) == 0;
  REQUIRE(ok && amr && amd, "out of memory");
  if (s.relu_in)
    for (size_t k = 0; k < view_numel(x.v); k++) *vat_k(x.v, k) = fmaxf(*vat_k(x.v, k), 0.0f);
  if (max) {
    eng_ref->ops->maxpool_forward(&d, x.v, yr.v, amr);
    eng_dnnl->ops->maxpool_forward(&d, x.v, yd.v, amd);
    size_t diff = 0, first = 0;
    for (size_t i = ny; i-- > 0;)
      if (amr[i] != amd[i]) diff++, first = i;
    REQUIRE(diff == 0, "%s: argmax differs in %zu of %zu outputs (first at %zu: ref %d, dnnl %d)", what, diff, ny,
            first, (int)amr[first], (int)amd[first]);
    eng_ref->ops->maxpool_backward(&d, dy.v, amr, dxr.v);
    eng_dnnl->ops->maxpool_backward(&d, dy.v, amd, dxd.v);
  } else {
    eng_ref->ops->avgpool_forward(&d, x.v, yr.v);
    eng_dnnl->ops->avgpool_forward(&d, x.v, yd.v);
    eng_ref->ops->avgpool_backward(&d, dy.v, dxr.v);
    eng_dnnl->ops->avgpool_backward(&d, dy.v, dxd.v);
  }
  snprintf(sub, sizeof sub, "%s y", what);
  CLOSE_VIEW(sub, yd.v, yr.v);
  snprintf(sub, sizeof sub, "%s dx (accumulated)", what);
  CLOSE_VIEW(sub, dxd.v, dxr.v);
  REQUIRE(vbuf_outside_ok(&yd) && vbuf_outside_ok(&dxd), "%s: wrote outside its views", what);
  rc = 0;
out:
  vbuf_free(&x), vbuf_free(&yr), vbuf_free(&yd), vbuf_free(&dy), vbuf_free(&dxr), vbuf_free(&dxd);
  free(amr), free(amd);
  return rc;
}

TEST(maxpool) { RUN_CASES(1, sizeof maxpool_cases / sizeof *maxpool_cases, pool_case(maxpool_cases[i], 1, 800 + i, why)); }
TEST(avgpool) { RUN_CASES(1, sizeof avgpool_cases / sizeof *avgpool_cases, pool_case(avgpool_cases[i], 0, 850 + i, why)); }

static int gap_case(int n, int h, int w, int c, int ld, uint64_t seed, char *why) {
  vbuf x = {0}, dxr = {0}, dxd = {0};
  float *mem = malloc(3 * (size_t)n * c * sizeof(float));
  int rc = -1;
  char what[96];
  int ok = vbuf_alloc(&x, n, h, w, c, ld, ld - c, seed) == 0 && vbuf_alloc(&dxr, n, h, w, c, ld, 0, seed + 1) == 0 &&
           vbuf_alloc(&dxd, n, h, w, c, ld, 0, seed + 1) == 0;
  REQUIRE(ok && mem, "out of memory");
  float *yr = mem, *yd = mem + n * c, *dy = mem + 2 * n * c;
  rng r;
  rng_seed(&r, seed);
  fill_uniform(dy, (size_t)n * c, &r, -1, 1);
  eng_ref->ops->gap_forward(x.v, yr);
  eng_dnnl->ops->gap_forward(x.v, yd);
  snprintf(what, sizeof what, "gap n%d %dx%d c%d ld%d y", n, h, w, c, ld);
  CLOSE_ARR(what, yd, yr, (size_t)n * c);
  eng_ref->ops->gap_backward(dy, dxr.v);
  eng_dnnl->ops->gap_backward(dy, dxd.v);
  snprintf(what, sizeof what, "gap n%d %dx%d c%d ld%d dx (accumulated)", n, h, w, c, ld);
  CLOSE_VIEW(what, dxd.v, dxr.v);
  REQUIRE(vbuf_outside_ok(&dxd), "%s: wrote outside its view", what);
  rc = 0;
out:
  vbuf_free(&x), vbuf_free(&dxr), vbuf_free(&dxd);
  free(mem);
  return rc;
}

static const int gap_cases[][5] = {{3, 4, 4, 40, 48}, {1, 7, 7, 64, 64}, {2, 1, 1, 5, 5}, {3, 2, 3, 12, 15}};
TEST(gap) {
  RUN_CASES(1, 4, gap_case(gap_cases[i][0], gap_cases[i][1], gap_cases[i][2], gap_cases[i][3], gap_cases[i][4],
                           900 + i, why));
}

/* ---- loss ---- */

static int bce_case(int n, int weighted, uint64_t seed, char *why) {
  float *mem = malloc(5 * (size_t)n * sizeof(float));
  int rc = -1;
  char what[64];
  snprintf(what, sizeof what, "bce n%d weights%d", n, weighted);
  REQUIRE(mem, "out of memory");
  float *z = mem, *t = z + n, *w = t + n, *dzr = w + n, *dzd = dzr + n;
  rng r;
  rng_seed(&r, seed);
  fill_uniform(z, n, &r, -8, 8), fill_uniform(w, n, &r, 0.1, 3);
  for (int i = 0; i < n; i++) t[i] = (float)(i % 2);
  if (n > 2) z[0] = 80, z[1] = -80; /* saturated, on the wrong side */
  double lr = eng_ref->ops->bce_logits(z, t, weighted ? w : NULL, n, dzr);
  double ld = eng_dnnl->ops->bce_logits(z, t, weighted ? w : NULL, n, dzd);
  double ln = eng_dnnl->ops->bce_logits(z, t, weighted ? w : NULL, n, NULL);
  printf("# %s loss: ref %.10g dnnl %.10g\n", what, lr, ld);
  REQUIRE(fabs(ld - lr) <= F32_REL * fabs(lr) + F32_ABS && ln == ld, "%s: loss %.10g vs ref %.10g (dz NULL: %.10g)",
          what, ld, lr, ln);
  CLOSE_ARR(what, dzd, dzr, (size_t)n);
  rc = 0;
out:
  free(mem);
  return rc;
}

TEST(bce_logits) {
  static const int cases[][2] = {{1, 0}, {3, 1}, {37, 1}, {37, 0}};
  RUN_CASES(1, 4, bce_case(cases[i][0], cases[i][1], 950 + i, why));
}

TEST_MAIN()
