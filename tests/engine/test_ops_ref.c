/* The reference engine checked two independent ways: every backward against
 * central finite differences of L = sum(r * y) (see ops_testutil.h for how
 * float noise is kept out), and every forward (and backward) against PyTorch
 * via tests/tools/ops_torch_ref.py. */
#include "core/util.h"
#include "ops_testutil.h"
#include "test.h"

/* Finite differences in double over float storage land well below this. */
#define FD_TOL 1e-3
/* Reference vs PyTorch (float64): relative to the largest PyTorch value. */
#define TORCH_TOL 1e-5

static const fd_opts FD_LINEAR = {0.5, 0, 400, 3};  /* exact differences for linear ops */
static const fd_opts FD_KINKED = {1e-2, 0, 400, 3}; /* piecewise linear, away from kinks */
static const fd_opts FD_SMOOTH = {2e-2, 1, 400, 3}; /* Richardson for smooth ops */

#define REQUIRE_FD(res, what)                                                                        \
  do {                                                                                               \
    fd_result r_ = (res);                                                                            \
    printf("# %s: fd elem err %.2e, dir err %.2e\n", what, r_.elem_err, r_.dir_err);               \
    REQUIRE(r_.elem_err < FD_TOL && r_.dir_err < FD_TOL, "%s: fd elem err %.3g (element %ld), dir err %.3g", \
            what, r_.elem_err, r_.worst, r_.dir_err);                                              \
  } while (0)

static engine *ref_engine(void) {
  static engine *eng;
  mskx_err e;
  if (!eng && engine_ref_create(&eng, &e) != 0) return NULL;
  return eng;
}

static int has_nan(const float *p, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (isnan(p[i])) return 1;
  return 0;
}

/* ---- convolution ---- */

typedef struct conv_case {
  int n, h, w, cin, cout, kh, kw, sh, sw, ph, pw, bias;
} conv_case;

typedef struct conv_ctx {
  engine *eng;
  conv_op *op;
  float *x, *w, *b, *y, *r;
  int ny;
} conv_ctx;

static double conv_loss(void *p) {
  conv_ctx *c = p;
  mskx_err e;
  c->eng->ops->conv_forward(c->op, c->x, c->w, 1, c->b, c->y, &e);
  return dot_rv(dense1(c->r, c->ny), dense1(c->y, c->ny));
}

static int conv_fd_case(const conv_case *cc, uint64_t seed, char *why) {
  engine *eng = ref_engine();
  conv_desc d = {.n = cc->n, .h = cc->h, .w = cc->w, .cin = cc->cin, .cout = cc->cout, .kh = cc->kh,
                 .kw = cc->kw, .sh = cc->sh, .sw = cc->sw, .ph = cc->ph, .pw = cc->pw, .has_bias = cc->bias,
                 .prec = PREC_FP32, .need_backward = 1};
  int oh = conv_out_h(&d), ow = conv_out_w(&d), rc = -1;
  int nx = d.n * d.h * d.w * d.cin, nw = d.cout * d.cin * d.kh * d.kw, ny = d.n * oh * ow * d.cout;
  conv_ctx c = {eng, NULL, malloc(nx * 4), malloc(nw * 4), malloc(d.cout * 4), malloc(ny * 4), malloc(ny * 4), ny};
  float *dx = malloc(nx * 4), *dw = malloc(nw * 4), *db = malloc(d.cout * 4);
  double *g = NULL;
  mskx_err e;
  char what[128];
  snprintf(what, sizeof what, "conv n%d %dx%d %d->%d k%dx%d s%d,%d p%d,%d bias%d", d.n, d.h, d.w, d.cin, d.cout,
           d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.has_bias);
  REQUIRE(c.x && c.w && c.b && c.y && c.r && dx && dw && db, "out of memory");
  rng r;
  rng_seed(&r, seed);
  fill_uniform(c.x, nx, &r, -1, 1), fill_uniform(c.w, nw, &r, -1, 1);
  fill_uniform(c.b, d.cout, &r, -1, 1), fill_uniform(c.r, ny, &r, -1, 1);
  for (int i = 0; i < nx; i++) dx[i] = NAN; /* both backwards must overwrite */
  for (int i = 0; i < nw; i++) dw[i] = NAN;
  for (int i = 0; i < d.cout; i++) db[i] = NAN;
  REQUIRE(eng->ops->conv_create(eng, &d, &c.op, &e) == 0, "%s: conv_create: %s", what, e.msg);
  REQUIRE(eng->ops->conv_backward_data(c.op, c.r, c.w, 1, dx, &e) == 0, "%s: %s", what, e.msg);
  REQUIRE(eng->ops->conv_backward_weights(c.op, c.x, c.r, dw, db, &e) == 0, "%s: %s", what, e.msg);
  REQUIRE(!has_nan(dx, nx) && !has_nan(dw, nw) && (!d.has_bias || !has_nan(db, d.cout)),
          "%s: backward left elements unwritten", what);
  char sub[160];
  snprintf(sub, sizeof sub, "%s dx", what);
  g = view_to_double(dense1(dx, nx));
  REQUIRE_FD(fd_check(dense1(c.x, nx), g, conv_loss, &c, FD_LINEAR, seed + 1), sub);
  free(g);
  snprintf(sub, sizeof sub, "%s dw", what);
  g = view_to_double(dense1(dw, nw));
  REQUIRE_FD(fd_check(dense1(c.w, nw), g, conv_loss, &c, FD_LINEAR, seed + 2), sub);
  if (d.has_bias) {
    free(g);
    snprintf(sub, sizeof sub, "%s db", what);
    g = view_to_double(dense1(db, d.cout));
    REQUIRE_FD(fd_check(dense1(c.b, d.cout), g, conv_loss, &c, FD_LINEAR, seed + 3), sub);
  }
  rc = 0;
out:
  if (c.op) eng->ops->conv_destroy(c.op);
  free(g), free(c.x), free(c.w), free(c.b), free(c.y), free(c.r), free(dx), free(dw), free(db);
  return rc;
}

TEST(conv_fd) {
  static const conv_case cases[] = {
      {2, 5, 4, 3, 4, 1, 1, 1, 1, 0, 0, 0}, /* 1x1 */
      {2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1, 1}, /* 3x3 pad 1, non-square input */
      {2, 7, 5, 3, 5, 3, 3, 2, 2, 1, 1, 0}, /* 3x3 stride 2 */
      {1, 9, 8, 3, 4, 7, 7, 2, 2, 3, 3, 1}, /* the 7x7 s2 p3 stem */
      {2, 6, 6, 4, 3, 3, 3, 2, 2, 0, 0, 1}, /* last row and column never read */
      {2, 5, 7, 3, 2, 3, 1, 2, 1, 1, 0, 1}, /* non-square kernel and stride */
      {1, 4, 4, 2, 3, 7, 7, 1, 1, 3, 3, 0}, /* kernel wider than the input */
  };
  char why[WHY];
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    CHECKF(conv_fd_case(&cases[i], 100 + i, why) == 0, "%s", why);
}

TEST(conv_create_rejects_bad_desc) {
  engine *eng = ref_engine();
  conv_op *op = (conv_op *)1;
  mskx_err e;
  conv_desc bad = {.n = 1, .h = 4, .w = 4, .cin = 0, .cout = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1};
  CHECK(eng->ops->conv_create(eng, &bad, &op, &e) == MSKX_EINVAL && op == NULL);
  conv_desc big = {.n = 1, .h = 2, .w = 2, .cin = 1, .cout = 2, .kh = 7, .kw = 7, .sh = 1, .sw = 1, .ph = 1, .pw = 1};
  CHECK(eng->ops->conv_create(eng, &big, &op, &e) == MSKX_ESHAPE && op == NULL);
  CHECK(strstr(e.msg, "engine_ref.c") != NULL);
}

/* ---- linear ---- */

typedef struct linear_ctx {
  engine *eng;
  linear_op *op;
  float *x, *w, *b, *y, *r;
  int ny;
} linear_ctx;

static double linear_loss(void *p) {
  linear_ctx *c = p;
  mskx_err e;
  c->eng->ops->linear_forward(c->op, c->x, c->w, c->b, c->y, &e);
  return dot_rv(dense1(c->r, c->ny), dense1(c->y, c->ny));
}

TEST(linear_fd) {
  enum { N = 3, IN = 7, OUT = 4 };
  engine *eng = ref_engine();
  float x[N * IN], w[OUT * IN], b[OUT], y[N * OUT], r[N * OUT], dx[N * IN], dw[OUT * IN], db[OUT], dw2[OUT * IN];
  double g[OUT * IN > N * IN ? OUT * IN : N * IN];
  mskx_err e;
  rng rg;
  rng_seed(&rg, 7);
  fill_uniform(x, N * IN, &rg, -1, 1), fill_uniform(w, OUT * IN, &rg, -1, 1);
  fill_uniform(b, OUT, &rg, -1, 1), fill_uniform(r, N * OUT, &rg, -1, 1);
  linear_ctx c = {eng, NULL, x, w, b, y, r, N * OUT};
  CHECK_OK(eng->ops->linear_create(eng, N, IN, OUT, &c.op, &e), &e);
  CHECK_OK(eng->ops->linear_backward(c.op, x, r, w, dx, dw, db, &e), &e);
  CHECK_OK(eng->ops->linear_backward(c.op, x, r, w, NULL, dw2, db, &e), &e);
  CHECK(memcmp(dw, dw2, sizeof dw) == 0);
  struct {
    float *p, *grad;
    int n;
    const char *what;
  } parts[] = {{x, dx, N * IN, "linear dx"}, {w, dw, OUT * IN, "linear dw"}, {b, db, OUT, "linear db"}};
  for (int i = 0; i < 3; i++) {
    for (int k = 0; k < parts[i].n; k++) g[k] = parts[i].grad[k];
    fd_result res = fd_check(dense1(parts[i].p, parts[i].n), g, linear_loss, &c, FD_LINEAR, 70 + i);
    printf("# %s: fd elem err %.2e, dir err %.2e\n", parts[i].what, res.elem_err, res.dir_err);
    if (!(res.elem_err < FD_TOL && res.dir_err < FD_TOL)) eng->ops->linear_destroy(c.op);
    CHECKF(res.elem_err < FD_TOL && res.dir_err < FD_TOL, "%s: elem err %.3g dir err %.3g", parts[i].what,
           res.elem_err, res.dir_err);
  }
  eng->ops->linear_destroy(c.op);
}

/* ---- batch norm ---- */

typedef struct bn_ctx {
  engine *eng;
  view x, y, r;
  float *gamma, *beta, *mean, *invstd, *varu;
  float eps;
  int relu;
} bn_ctx;

static double bn_loss(void *p) {
  bn_ctx *c = p;
  c->eng->ops->bn_forward_train(c->x, c->gamma, c->beta, c->eps, c->relu, c->y, c->mean, c->invstd, c->varu);
  return dot_rv(c->r, c->y);
}

/* x, y and dx are channel windows of wider buffers when ld > c. */
static int bn_fd_case(int n, int h, int w, int c, int relu, int ld, uint64_t seed, char *why) {
  engine *eng = ref_engine();
  int rc = -1, c0 = ld > c ? ld - c - 1 : 0;
  vbuf x = {0}, y = {0}, dx = {0}, dy = {0};
  float *gamma = malloc(c * 4), *beta = malloc(c * 4), *mean = malloc(c * 4), *invstd = malloc(c * 4);
  float *varu = malloc(c * 4), *dgamma = malloc(c * 4), *dbeta = malloc(c * 4);
  double *g = NULL, *before = NULL;
  char what[96], sub[128];
  snprintf(what, sizeof what, "bn n%d %dx%d c%d ld%d relu%d", n, h, w, c, ld, relu);
  int ok = vbuf_alloc(&x, n, h, w, c, ld, c0, seed) == 0 && vbuf_alloc(&y, n, h, w, c, ld, 0, seed + 1) == 0 &&
           vbuf_alloc(&dx, n, h, w, c, ld, ld - c, seed + 2) == 0 && vbuf_dense(&dy, n, h, w, c, seed + 3) == 0;
  REQUIRE(ok && gamma && beta && mean && invstd && varu && dgamma && dbeta, "out of memory");
  rng r;
  rng_seed(&r, seed);
  view_fill_normal(x.v, &r, 0.3, 1.2);
  for (int i = 0; i < c; i++) {
    gamma[i] = (float)((0.5 + rng_uniform(&r)) * (i % 3 == 2 ? -1 : 1));
    beta[i] = (float)(rng_uniform(&r) - 0.5);
    dgamma[i] = dbeta[i] = NAN; /* overwritten, never accumulated */
  }
  const float eps = 1e-5f;
  REQUIRE(bn_push_margin(x.v, gamma, beta, eps, 0.2) == 0, "%s: could not clear the ReLU kinks", what);
  vbuf_snapshot(&x), vbuf_snapshot(&y), vbuf_snapshot(&dx);
  bn_ctx ctx = {eng, x.v, y.v, dy.v, gamma, beta, mean, invstd, varu, eps, relu};
  bn_loss(&ctx);
  before = view_to_double(dx.v);
  eng->ops->bn_backward(x.v, dy.v, gamma, beta, mean, invstd, relu, dx.v, dgamma, dbeta);
  REQUIRE(before && !has_nan(dgamma, c) && !has_nan(dbeta, c), "%s: dgamma/dbeta not written", what);
  g = malloc(view_numel(dx.v) * sizeof *g);
  REQUIRE(g, "out of memory");
  for (size_t k = 0; k < view_numel(dx.v); k++) g[k] = *vat_k(dx.v, k) - before[k];
  snprintf(sub, sizeof sub, "%s dx (accumulated)", what);
  REQUIRE_FD(fd_check(x.v, g, bn_loss, &ctx, FD_SMOOTH, seed + 4), sub);
  for (int i = 0; i < c; i++) g[i] = dgamma[i];
  snprintf(sub, sizeof sub, "%s dgamma", what);
  REQUIRE_FD(fd_check(dense1(gamma, c), g, bn_loss, &ctx, FD_SMOOTH, seed + 5), sub);
  for (int i = 0; i < c; i++) g[i] = dbeta[i];
  snprintf(sub, sizeof sub, "%s dbeta", what);
  REQUIRE_FD(fd_check(dense1(beta, c), g, bn_loss, &ctx, FD_SMOOTH, seed + 6), sub);
  REQUIRE(vbuf_outside_ok(&x) && vbuf_outside_ok(&y) && vbuf_outside_ok(&dx),
          "%s: wrote outside its views", what);
  rc = 0;
out:
  vbuf_free(&x), vbuf_free(&y), vbuf_free(&dx), vbuf_free(&dy);
  free(gamma), free(beta), free(mean), free(invstd), free(varu), free(dgamma), free(dbeta), free(g), free(before);
  return rc;
}

TEST(bn_train_fd) {
  char why[WHY];
  CHECKF(bn_fd_case(2, 5, 5, 3, 0, 3, 11, why) == 0, "%s", why);
  CHECKF(bn_fd_case(2, 5, 4, 6, 1, 11, 12, why) == 0, "%s", why);
  CHECKF(bn_fd_case(1, 3, 7, 4, 1, 4, 13, why) == 0, "%s", why);
  CHECKF(bn_fd_case(2, 4, 3, 5, 0, 9, 14, why) == 0, "%s", why);
}

/* Known properties: without ReLU each output channel has mean beta and
 * biased variance gamma^2 var/(var+eps); var_unbiased = var * m/(m-1); and
 * inference with the batch's own statistics reproduces training mode. */
TEST(bn_forward_properties) {
  enum { N = 2, H = 3, W = 4, C = 5 };
  engine *eng = ref_engine();
  float x[N * H * W * C], y[N * H * W * C], y2[N * H * W * C], gamma[C], beta[C], mean[C], invstd[C], varu[C];
  float rvar[C];
  rng r;
  rng_seed(&r, 21);
  fill_uniform(x, N * H * W * C, &r, -2, 3), fill_uniform(gamma, C, &r, 0.5, 2), fill_uniform(beta, C, &r, -1, 1);
  const float eps = 1e-3f;
  view xv = view_make(x, N, H, W, C), yv = view_make(y, N, H, W, C);
  eng->ops->bn_forward_train(xv, gamma, beta, eps, 0, yv, mean, invstd, varu);
  const double m = N * H * W;
  for (int ch = 0; ch < C; ch++) {
    double s = 0, s2 = 0, xs = 0, xs2 = 0;
    for (int i = 0; i < N * H * W; i++) s += y[i * C + ch], xs += x[i * C + ch];
    for (int i = 0; i < N * H * W; i++) {
      s2 += (y[i * C + ch] - s / m) * (y[i * C + ch] - s / m);
      xs2 += (x[i * C + ch] - xs / m) * (x[i * C + ch] - xs / m);
    }
    double var = xs2 / m;
    CHECK_NEAR(s / m, beta[ch], 1e-6);
    CHECK_NEAR(s2 / m, gamma[ch] * gamma[ch] * var / (var + eps), 1e-5);
    CHECK_NEAR(mean[ch], xs / m, 1e-6);
    CHECK_NEAR(invstd[ch], 1 / sqrt(var + eps), 1e-6);
    CHECK_NEAR(varu[ch], var * m / (m - 1), 1e-5);
    rvar[ch] = (float)var;
  }
  eng->ops->bn_forward_infer(xv, gamma, beta, mean, rvar, eps, 0, view_make(y2, N, H, W, C));
  double md = arr_maxdiff(y2, y, N * H * W * C, NULL);
  CHECKF(md < 1e-5, "infer with batch statistics differs from train by %g", md);
  eng->ops->bn_forward_train(xv, gamma, beta, eps, 1, yv, mean, invstd, varu);
  /* engine.h: the affine form with float scale/shift reproduces it bit-exactly. */
  float scale[C], shift[C];
  for (int ch = 0; ch < C; ch++) scale[ch] = gamma[ch] * invstd[ch], shift[ch] = beta[ch] - mean[ch] * scale[ch];
  eng->ops->bn_forward_affine(xv, scale, shift, 1, view_make(y2, N, H, W, C));
  CHECK(memcmp(y, y2, sizeof y) == 0);
}

/* ---- add + ReLU, ReLU ---- */

typedef struct add_ctx {
  engine *eng;
  view a, b, y, r;
} add_ctx;

static double add_loss(void *p) {
  add_ctx *c = p;
  c->eng->ops->add_relu_forward(c->a, c->b, c->y);
  return dot_rv(c->r, c->y);
}

TEST(add_relu_fd) {
  enum { N = 2, H = 4, W = 3, C = 5, LD = 9 };
  engine *eng = ref_engine();
  vbuf a = {0}, b = {0}, y = {0}, r = {0}, da = {0}, db = {0};
  CHECK(vbuf_alloc(&a, N, H, W, C, LD, 1, 1) == 0 && vbuf_alloc(&b, N, H, W, C, LD, 4, 2) == 0 &&
        vbuf_alloc(&y, N, H, W, C, LD, 2, 3) == 0 && vbuf_dense(&r, N, H, W, C, 4) == 0 &&
        vbuf_alloc(&da, N, H, W, C, LD, 3, 5) == 0 && vbuf_alloc(&db, N, H, W, C, LD, 0, 6) == 0);
  for (size_t k = 0; k < view_numel(a.v); k++) { /* keep a + b clear of the kink */
    float s = *vat_k(a.v, k) + *vat_k(b.v, k);
    if (fabsf(s) < 0.1f) *vat_k(b.v, k) += s < 0 ? -0.3f : 0.3f;
  }
  vbuf_snapshot(&y), vbuf_snapshot(&da), vbuf_snapshot(&db);
  add_ctx c = {eng, a.v, b.v, y.v, r.v};
  add_loss(&c);
  eng->ops->add_relu_backward(y.v, r.v, da.v, db.v);
  double *g = view_to_double(da.v), *g2 = view_to_double(db.v);
  CHECK(g && g2 && view_maxdiff(da.v, db.v, NULL) == 0);
  fd_result ra = fd_check(a.v, g, add_loss, &c, FD_KINKED, 31), rb = fd_check(b.v, g2, add_loss, &c, FD_KINKED, 32);
  free(g), free(g2);
  printf("# add_relu: fd da %.2e/%.2e db %.2e/%.2e\n", ra.elem_err, ra.dir_err, rb.elem_err, rb.dir_err);
  CHECK(ra.elem_err < FD_TOL && ra.dir_err < FD_TOL && rb.elem_err < FD_TOL && rb.dir_err < FD_TOL);
  CHECK(vbuf_outside_ok(&y) && vbuf_outside_ok(&da) && vbuf_outside_ok(&db));
  /* db may be NULL; b may be y (the residual join writes in place). */
  view_fill(da.v, NAN);
  view none = {0};
  eng->ops->add_relu_backward(y.v, r.v, da.v, none);
  CHECK(view_maxdiff(da.v, db.v, NULL) == 0);
  add_loss(&c); /* fd_check left y at a perturbed point */
  eng->ops->copy(b.v, da.v);
  eng->ops->add_relu_forward(a.v, da.v, da.v);
  CHECK(view_maxdiff(da.v, y.v, NULL) == 0);
  int relu_ok = 1;
  eng->ops->relu_forward(a.v, y.v);
  for (size_t k = 0; k < view_numel(a.v); k++) relu_ok &= *vat_k(y.v, k) == fmaxf(*vat_k(a.v, k), 0.0f);
  CHECK(relu_ok && vbuf_outside_ok(&y));
  vbuf_free(&a), vbuf_free(&b), vbuf_free(&y), vbuf_free(&r), vbuf_free(&da), vbuf_free(&db);
}

/* ---- pooling ---- */

typedef struct pool_ctx {
  engine *eng;
  pool_desc d;
  int max;
  view x, y, r;
  int32_t *argmax;
} pool_ctx;

static double pool_loss(void *p) {
  pool_ctx *c = p;
  if (c->max)
    c->eng->ops->maxpool_forward(&c->d, c->x, c->y, c->argmax);
  else
    c->eng->ops->avgpool_forward(&c->d, c->x, c->y);
  return dot_rv(c->r, c->y);
}

/* x, y and dx are strided channel windows; dx starts random (accumulation). */
static int pool_fd_case(int max, pool_desc d, int ld, uint64_t seed, char *why) {
  engine *eng = ref_engine();
  int oh = pool_out(d.h, d.k, d.s, d.p), ow = pool_out(d.w, d.k, d.s, d.p), rc = -1;
  vbuf x = {0}, y = {0}, r = {0}, dx = {0};
  int32_t *argmax = malloc((size_t)d.n * oh * ow * d.c * sizeof *argmax);
  double *before = NULL, *g = NULL;
  char what[128];
  snprintf(what, sizeof what, "%spool n%d %dx%d c%d k%d s%d p%d ld%d", max ? "max" : "avg", d.n, d.h, d.w, d.c,
           d.k, d.s, d.p, ld);
  int ok = vbuf_alloc(&x, d.n, d.h, d.w, d.c, ld, ld - d.c, seed) == 0 &&
           vbuf_alloc(&y, d.n, oh, ow, d.c, ld, ld > d.c, seed + 1) == 0 && vbuf_dense(&r, d.n, oh, ow, d.c, seed + 2) == 0 &&
           vbuf_alloc(&dx, d.n, d.h, d.w, d.c, ld, 0, seed + 3) == 0;
  REQUIRE(ok && argmax, "out of memory");
  rng rg;
  rng_seed(&rg, seed);
  if (max) view_fill_distinct(x.v, &rg, 0.05); /* no ties a 1e-2 step could flip */
  pool_ctx c = {eng, d, max, x.v, y.v, r.v, argmax};
  pool_loss(&c);
  before = view_to_double(dx.v);
  REQUIRE(before, "out of memory");
  if (max)
    eng->ops->maxpool_backward(&d, r.v, argmax, dx.v);
  else
    eng->ops->avgpool_backward(&d, r.v, dx.v);
  g = malloc(view_numel(dx.v) * sizeof *g);
  REQUIRE(g, "out of memory");
  for (size_t k = 0; k < view_numel(dx.v); k++) g[k] = *vat_k(dx.v, k) - before[k];
  REQUIRE_FD(fd_check(x.v, g, pool_loss, &c, max ? FD_KINKED : FD_LINEAR, seed + 4), what);
  REQUIRE(vbuf_outside_ok(&y) && vbuf_outside_ok(&dx), "%s: wrote outside its views", what);
  rc = 0;
out:
  vbuf_free(&x), vbuf_free(&y), vbuf_free(&r), vbuf_free(&dx);
  free(argmax), free(before), free(g);
  return rc;
}

TEST(maxpool_fd) {
  char why[WHY];
  CHECKF(pool_fd_case(1, (pool_desc){2, 5, 5, 3, 3, 2, 1}, 3, 41, why) == 0, "%s", why);
  CHECKF(pool_fd_case(1, (pool_desc){2, 6, 7, 4, 3, 2, 1}, 7, 42, why) == 0, "%s", why);
  CHECKF(pool_fd_case(1, (pool_desc){1, 7, 6, 5, 2, 2, 0}, 8, 43, why) == 0, "%s", why);
  CHECKF(pool_fd_case(1, (pool_desc){2, 5, 5, 3, 3, 1, 1}, 5, 44, why) == 0, "%s", why);
}

TEST(avgpool_fd) {
  char why[WHY];
  CHECKF(pool_fd_case(0, (pool_desc){2, 5, 5, 3, 2, 2, 0}, 3, 51, why) == 0, "%s", why);
  CHECKF(pool_fd_case(0, (pool_desc){2, 6, 4, 5, 2, 2, 0}, 8, 52, why) == 0, "%s", why);
  CHECKF(pool_fd_case(0, (pool_desc){2, 5, 5, 3, 3, 1, 1}, 6, 53, why) == 0, "%s", why);
  CHECKF(pool_fd_case(0, (pool_desc){1, 7, 7, 2, 3, 2, 1}, 2, 54, why) == 0, "%s", why);
}

/* Known values: on a constant plane every window ties, so argmax is the
 * window's first in-bounds element; padding is -inf (a negative plane stays
 * negative); with count_include_pad a 3x3 corner window averages 4 of 9. */
TEST(pool_conventions) {
  enum { H = 5, W = 6 };
  engine *eng = ref_engine();
  float x[H * W], y[H * W];
  int32_t am[H * W];
  pool_desc d = {1, H, W, 1, 3, 2, 1};
  for (int i = 0; i < H * W; i++) x[i] = -5;
  eng->ops->maxpool_forward(&d, view_make(x, 1, H, W, 1), view_make(y, 1, 3, 3, 1), am);
  for (int oy = 0; oy < 3; oy++)
    for (int ox = 0; ox < 3; ox++) {
      int y0 = oy * 2 - 1 < 0 ? 0 : oy * 2 - 1, x0 = ox * 2 - 1 < 0 ? 0 : ox * 2 - 1;
      CHECK_EQ_INT(am[oy * 3 + ox], y0 * W + x0);
      CHECK(y[oy * 3 + ox] == -5);
    }
  for (int i = 0; i < H * W; i++) x[i] = 1;
  pool_desc a = {1, H, W, 1, 3, 1, 1};
  eng->ops->avgpool_forward(&a, view_make(x, 1, H, W, 1), view_make(y, 1, H, W, 1));
  CHECK_NEAR(y[0], 4.0 / 9, 1e-7);
  CHECK_NEAR(y[1], 6.0 / 9, 1e-7);
  CHECK_NEAR(y[W + 1], 1.0, 1e-7);
  CHECK_NEAR(y[H * W - 1], 4.0 / 9, 1e-7);
}

typedef struct gap_ctx {
  engine *eng;
  view x;
  float *y, *r;
} gap_ctx;

static double gap_loss(void *p) {
  gap_ctx *c = p;
  c->eng->ops->gap_forward(c->x, c->y);
  return dot_rv(dense1(c->r, c->x.n * c->x.c), dense1(c->y, c->x.n * c->x.c));
}

TEST(gap_fd) {
  enum { N = 2, H = 3, W = 4, C = 5, LD = 8 };
  engine *eng = ref_engine();
  vbuf x = {0}, dx = {0};
  float y[N * C], r[N * C];
  double g[N * H * W * C];
  CHECK(vbuf_alloc(&x, N, H, W, C, LD, 2, 61) == 0 && vbuf_alloc(&dx, N, H, W, C, LD, 1, 62) == 0);
  rng rg;
  rng_seed(&rg, 63);
  fill_uniform(r, N * C, &rg, -1, 1);
  gap_ctx c = {eng, x.v, y, r};
  double *before = view_to_double(dx.v);
  eng->ops->gap_backward(r, dx.v);
  for (size_t k = 0; k < view_numel(dx.v); k++) g[k] = *vat_k(dx.v, k) - before[k];
  free(before);
  fd_result res = fd_check(x.v, g, gap_loss, &c, FD_LINEAR, 64);
  printf("# gap: fd elem err %.2e, dir err %.2e\n", res.elem_err, res.dir_err);
  CHECK(res.elem_err < FD_TOL && res.dir_err < FD_TOL);
  CHECK(vbuf_outside_ok(&dx));
  vbuf_free(&x), vbuf_free(&dx);
}

TEST(copy_accumulate_views) {
  enum { N = 2, H = 3, W = 2, C = 5 };
  engine *eng = ref_engine();
  vbuf src = {0}, dst = {0};
  CHECK(vbuf_alloc(&src, N, H, W, C, 7, 2, 71) == 0 && vbuf_alloc(&dst, N, H, W, C, 12, 6, 72) == 0);
  double *before = view_to_double(dst.v);
  eng->ops->accumulate(src.v, dst.v);
  int ok = 1;
  for (size_t k = 0; k < view_numel(src.v); k++) ok &= *vat_k(dst.v, k) == (float)(before[k] + *vat_k(src.v, k));
  free(before);
  CHECK(ok && vbuf_outside_ok(&dst));
  eng->ops->copy(src.v, dst.v);
  CHECK(view_maxdiff(src.v, dst.v, NULL) == 0 && vbuf_outside_ok(&dst) && vbuf_outside_ok(&src));
  vbuf_free(&src), vbuf_free(&dst);
}

/* ---- loss ---- */

typedef struct bce_ctx {
  engine *eng;
  float *z, *t, *w;
  int n;
} bce_ctx;

static double bce_loss(void *p) {
  bce_ctx *c = p;
  return c->eng->ops->bce_logits(c->z, c->t, c->w, c->n, NULL);
}

TEST(bce_fd) {
  enum { N = 9 };
  engine *eng = ref_engine();
  float z[N], t[N], w[N], dz[N];
  double g[N];
  rng rg;
  rng_seed(&rg, 81);
  fill_uniform(z, N, &rg, -4, 4), fill_uniform(w, N, &rg, 0.2, 2);
  for (int i = 0; i < N; i++) t[i] = i % 3 == 2 ? 0.3f : (float)(i % 2);
  for (int pass = 0; pass < 2; pass++) {
    bce_ctx c = {eng, z, t, pass ? NULL : w, N};
    eng->ops->bce_logits(z, t, c.w, N, dz);
    for (int i = 0; i < N; i++) g[i] = dz[i];
    fd_result res = fd_check(dense1(z, N), g, bce_loss, &c, FD_SMOOTH, 82 + pass);
    printf("# bce (weights %d): fd elem err %.2e, dir err %.2e\n", !pass, res.elem_err, res.dir_err);
    CHECK(res.elem_err < FD_TOL && res.dir_err < FD_TOL);
  }
}

/* Large logits stay finite: the loss tends to |z| on the wrong side, 0 on the right. */
TEST(bce_extremes) {
  engine *eng = ref_engine();
  float z[4] = {100, -100, 1e4f, -1e4f}, t[4] = {0, 1, 1, 0}, dz[4];
  double l = eng->ops->bce_logits(z, t, NULL, 4, dz);
  CHECK_NEAR(l, 200.0 / 4, 1e-9);
  CHECK_NEAR(dz[0], 0.25, 1e-7);
  CHECK_NEAR(dz[1], -0.25, 1e-7);
  CHECK(dz[2] == 0 && dz[3] == 0);
  CHECK(isnan(eng->ops->bce_logits(z, t, NULL, 0, NULL)));
}

/* ---- PyTorch cross-check ----
 * Each case generates inputs, runs the reference forward and backward, and
 * writes the inputs plus a manifest line; one run of ops_torch_ref.py computes
 * the same ops in float64; every result is compared. */

#define TC_BUFS 8
#define TC_MAX 40
typedef struct tbuf {
  char name[12];
  float *p;
  size_t n;
} tbuf;
typedef struct tcase {
  char name[16], line[160];
  tbuf in[TC_BUFS], out[TC_BUFS];
  int nin, nout;
  char fail[WHY];
} tcase;
static tcase tcases[TC_MAX];
static int ntcases;
static char torch_fail[WHY]; /* set when the Python side could not run */

static float *tc_buf(tbuf *list, int *cnt, const char *name, size_t n) {
  if (*cnt >= TC_BUFS) return NULL;
  tbuf *b = &list[(*cnt)++];
  snprintf(b->name, sizeof b->name, "%s", name);
  b->n = n;
  b->p = calloc(n + 1, sizeof(float));
  return b->p;
}
/* Inputs are filled uniformly in [-1, 1) from the case's own stream. */
static float *tc_in(tcase *t, const char *name, size_t n, rng *r) {
  float *p = tc_buf(t->in, &t->nin, name, n);
  if (p) fill_uniform(p, n, r, -1, 1);
  return p;
}
static float *tc_out(tcase *t, const char *name, size_t n) { return tc_buf(t->out, &t->nout, name, n); }
static tcase *tc_new(const char *name, rng *r, uint64_t seed) {
  tcase *t = &tcases[ntcases++];
  snprintf(t->name, sizeof t->name, "%s", name);
  rng_seed(r, seed);
  return t;
}

static void tc_conv(const char *name, conv_desc d, uint64_t seed) {
  rng r;
  tcase *t = tc_new(name, &r, seed);
  mskx_err e;
  engine *eng = ref_engine();
  conv_op *op = NULL;
  int oh = conv_out_h(&d), ow = conv_out_w(&d);
  size_t nx = (size_t)d.n * d.h * d.w * d.cin, nw = (size_t)d.cout * d.cin * d.kh * d.kw;
  size_t ny = (size_t)d.n * oh * ow * d.cout;
  snprintf(t->line, sizeof t->line, "conv %s %d %d %d %d %d %d %d %d %d %d %d %d", name, d.n, d.h, d.w, d.cin, d.cout,
           d.kh, d.kw, d.sh, d.sw, d.ph, d.pw, d.has_bias);
  float *x = tc_in(t, "x", nx, &r), *w = tc_in(t, "w", nw, &r), *dy = tc_in(t, "dy", ny, &r);
  float *b = d.has_bias ? tc_in(t, "b", d.cout, &r) : NULL;
  if (eng->ops->conv_create(eng, &d, &op, &e) != 0) {
    test_fmt(t->fail, WHY, "%s: conv_create: %s", name, e.msg);
    return;
  }
  eng->ops->conv_forward(op, x, w, 1, b, tc_out(t, "y", ny), &e);
  eng->ops->conv_backward_data(op, dy, w, 1, tc_out(t, "dx", nx), &e);
  float *dw = tc_out(t, "dw", nw), *db = d.has_bias ? tc_out(t, "db", d.cout) : NULL;
  eng->ops->conv_backward_weights(op, x, dy, dw, db, &e);
  eng->ops->conv_destroy(op);
}

static void tc_linear(const char *name, int n, int in, int out, uint64_t seed) {
  rng r;
  tcase *t = tc_new(name, &r, seed);
  mskx_err e;
  engine *eng = ref_engine();
  linear_op *op = NULL;
  snprintf(t->line, sizeof t->line, "linear %s %d %d %d", name, n, in, out);
  float *x = tc_in(t, "x", (size_t)n * in, &r), *w = tc_in(t, "w", (size_t)out * in, &r);
  float *b = tc_in(t, "b", out, &r), *dy = tc_in(t, "dy", (size_t)n * out, &r);
  if (eng->ops->linear_create(eng, n, in, out, &op, &e) != 0) {
    test_fmt(t->fail, WHY, "%s: linear_create: %s", name, e.msg);
    return;
  }
  eng->ops->linear_forward(op, x, w, b, tc_out(t, "y", (size_t)n * out), &e);
  float *dx = tc_out(t, "dx", (size_t)n * in), *dw = tc_out(t, "dw", (size_t)out * in), *db = tc_out(t, "db", out);
  eng->ops->linear_backward(op, x, dy, w, dx, dw, db, &e);
  eng->ops->linear_destroy(op);
}

/* Batch norm on strided views of wider buffers (ld > c) when ld > c. */
static void tc_bn(const char *name, int n, int h, int w, int c, int relu, int ld, int train, uint64_t seed) {
  rng r;
  tcase *t = tc_new(name, &r, seed);
  engine *eng = ref_engine();
  const float eps = 1e-5f;
  size_t m = (size_t)n * h * w * c;
  vbuf x = {0}, y = {0}, dx = {0};
  snprintf(t->line, sizeof t->line, "%s %s %d %d %d %d %d %.9g", train ? "bn_train" : "bn_infer", name, n, h, w, c,
           relu, eps);
  float *xd = tc_in(t, "x", m, &r), *gamma = tc_in(t, "gamma", c, &r), *beta = tc_in(t, "beta", c, &r);
  if (vbuf_alloc(&x, n, h, w, c, ld, ld - c, seed) || vbuf_alloc(&y, n, h, w, c, ld, 0, seed + 1) ||
      vbuf_alloc(&dx, n, h, w, c, ld, ld > c, seed + 2)) {
    snprintf(t->fail, WHY, "%s: out of memory", name);
    goto out;
  }
  view_fill_normal(x.v, &r, 0.5, 2.0); /* not centred, not unit variance */
  view_to_dense(x.v, xd);
  if (train) {
    float *dy = tc_in(t, "dy", m, &r), *y_d = tc_out(t, "y", m);
    float *mean = tc_out(t, "mean", c), *invstd = tc_out(t, "invstd", c), *varu = tc_out(t, "varu", c);
    eng->ops->bn_forward_train(x.v, gamma, beta, eps, relu, y.v, mean, invstd, varu);
    view_to_dense(y.v, y_d);
    view_fill(dx.v, 0);
    eng->ops->bn_backward(x.v, view_make(dy, n, h, w, c), gamma, beta, mean, invstd, relu, dx.v,
                          tc_out(t, "dgamma", c), tc_out(t, "dbeta", c));
    view_to_dense(dx.v, tc_out(t, "dx", m));
  } else {
    float *rmean = tc_in(t, "rmean", c, &r), *rvar = tc_in(t, "rvar", c, &r);
    for (int i = 0; i < c; i++) rvar[i] = 0.2f + rvar[i] * rvar[i]; /* positive variances */
    eng->ops->bn_forward_infer(x.v, gamma, beta, rmean, rvar, eps, relu, y.v);
    view_to_dense(y.v, tc_out(t, "y", m));
  }
out:
  vbuf_free(&x), vbuf_free(&y), vbuf_free(&dx);
}

/* relu_in: inputs through a ReLU first, so windows hold tied zeros. */
static void tc_pool(const char *name, int max, pool_desc d, int relu_in, uint64_t seed) {
  rng r;
  tcase *t = tc_new(name, &r, seed);
  engine *eng = ref_engine();
  int oh = pool_out(d.h, d.k, d.s, d.p), ow = pool_out(d.w, d.k, d.s, d.p);
  size_t nx = (size_t)d.n * d.h * d.w * d.c, ny = (size_t)d.n * oh * ow * d.c;
  snprintf(t->line, sizeof t->line, "%s %s %d %d %d %d %d %d %d", max ? "maxpool" : "avgpool", name, d.n, d.h, d.w,
           d.c, d.k, d.s, d.p);
  float *x = tc_in(t, "x", nx, &r), *dy = tc_in(t, "dy", ny, &r);
  if (relu_in)
    for (size_t i = 0; i < nx; i++) x[i] = x[i] > 0 ? x[i] : 0;
  view xv = view_make(x, d.n, d.h, d.w, d.c), yv = view_make(tc_out(t, "y", ny), d.n, oh, ow, d.c);
  view dyv = view_make(dy, d.n, oh, ow, d.c), dxv = view_make(tc_out(t, "dx", nx), d.n, d.h, d.w, d.c);
  if (max) {
    int32_t *am = malloc(ny * sizeof *am + 1);
    float *idx = tc_out(t, "idx", ny);
    eng->ops->maxpool_forward(&d, xv, yv, am);
    for (size_t i = 0; i < ny; i++) idx[i] = (float)am[i];
    eng->ops->maxpool_backward(&d, dyv, am, dxv);
    free(am);
  } else {
    eng->ops->avgpool_forward(&d, xv, yv);
    eng->ops->avgpool_backward(&d, dyv, dxv);
  }
}

static void tc_misc(const char *kind, const char *name, int n, int h, int w, int c, uint64_t seed) {
  rng r;
  tcase *t = tc_new(name, &r, seed);
  engine *eng = ref_engine();
  size_t m = (size_t)n * h * w * c;
  if (strcmp(kind, "gap") == 0) {
    snprintf(t->line, sizeof t->line, "gap %s %d %d %d %d", name, n, h, w, c);
    float *x = tc_in(t, "x", m, &r), *dy = tc_in(t, "dy", (size_t)n * c, &r);
    eng->ops->gap_forward(view_make(x, n, h, w, c), tc_out(t, "y", (size_t)n * c));
    eng->ops->gap_backward(dy, view_make(tc_out(t, "dx", m), n, h, w, c));
  } else if (strcmp(kind, "add_relu") == 0) {
    snprintf(t->line, sizeof t->line, "add_relu %s %d %d %d %d", name, n, h, w, c);
    float *a = tc_in(t, "a", m, &r), *b = tc_in(t, "b", m, &r), *dy = tc_in(t, "dy", m, &r);
    view yv = view_make(tc_out(t, "y", m), n, h, w, c);
    eng->ops->add_relu_forward(view_make(a, n, h, w, c), view_make(b, n, h, w, c), yv);
    view none = {0};
    eng->ops->add_relu_backward(yv, view_make(dy, n, h, w, c), view_make(tc_out(t, "da", m), n, h, w, c), none);
  } else { /* bce: n logits, h = weighted */
    snprintf(t->line, sizeof t->line, "bce %s %d %d", name, n, h);
    float *z = tc_in(t, "z", n, &r), *tg = tc_in(t, "t", n, &r), *wt = h ? tc_in(t, "w", n, &r) : NULL;
    for (int i = 0; i < n; i++) {
      z[i] = i < 2 ? (i ? -60.0f : 60.0f) : z[i] * 6; /* saturated logits too */
      tg[i] = i % 4 == 3 ? (tg[i] + 1) / 2 : (float)(i % 2);
      if (wt) wt[i] = 0.1f + wt[i] * wt[i];
    }
    float *loss = tc_out(t, "loss", 1);
    loss[0] = (float)eng->ops->bce_logits(z, tg, wt, n, tc_out(t, "dz", n));
  }
}

static void torch_build_cases(void) {
  conv_desc d = {.n = 2, .h = 6, .w = 5, .cin = 3, .cout = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1,
                 .has_bias = 1, .need_backward = 1};
  tc_conv("conv3", d, 1);
  d = (conv_desc){.n = 1, .h = 11, .w = 9, .cin = 3, .cout = 5, .kh = 7, .kw = 7, .sh = 2, .sw = 2, .ph = 3, .pw = 3};
  tc_conv("conv7s2", d, 2);
  d = (conv_desc){.n = 3, .h = 4, .w = 4, .cin = 12, .cout = 7, .kh = 1, .kw = 1, .sh = 1, .sw = 1};
  tc_conv("conv1", d, 3);
  d = (conv_desc){.n = 2, .h = 7, .w = 7, .cin = 4, .cout = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1,
                  .has_bias = 1};
  tc_conv("conv3s2", d, 4);
  d = (conv_desc){.n = 2, .h = 5, .w = 6, .cin = 3, .cout = 2, .kh = 3, .kw = 1, .sh = 2, .sw = 1, .ph = 1, .has_bias = 1};
  tc_conv("conv3x1", d, 5);
  tc_linear("linear", 3, 10, 4, 6);
  tc_linear("linear1", 1, 16, 1, 7);
  tc_bn("bn", 2, 5, 4, 6, 0, 6, 1, 8);
  tc_bn("bnrelu", 3, 4, 4, 5, 1, 9, 1, 9);
  tc_bn("bninf", 2, 3, 3, 4, 1, 7, 0, 10);
  tc_pool("max7", 1, (pool_desc){2, 7, 7, 3, 3, 2, 1}, 0, 11);
  tc_pool("maxties", 1, (pool_desc){2, 6, 5, 4, 3, 2, 1}, 1, 12);
  tc_pool("max2", 1, (pool_desc){1, 5, 5, 2, 2, 2, 0}, 0, 13);
  tc_pool("avg2", 0, (pool_desc){2, 6, 6, 3, 2, 2, 0}, 0, 14);
  tc_pool("avg2odd", 0, (pool_desc){2, 5, 5, 3, 2, 2, 0}, 0, 15);
  tc_pool("avg3p1", 0, (pool_desc){2, 5, 6, 2, 3, 1, 1}, 0, 16);
  tc_pool("avg3s2p1", 0, (pool_desc){1, 7, 7, 2, 3, 2, 1}, 0, 17);
  tc_misc("gap", "gap", 2, 3, 5, 4, 18);
  tc_misc("add_relu", "addrelu", 2, 3, 3, 5, 19);
  tc_misc("bce", "bcew", 9, 1, 0, 0, 20);
  tc_misc("bce", "bce", 6, 0, 0, 0, 21);
}

static const char *repo_root(void) {
  static char root[4096];
  const char *env = getenv("MSKX_ROOT");
  if (env) return env;
  snprintf(root, sizeof root, "%s", __FILE__);
  char *s = strstr(root, "tests/engine/test_ops_ref.c");
  if (s) *s = 0;
  if (!root[0]) snprintf(root, sizeof root, ".");
  return root;
}

static int tc_write_inputs(const char *dir, FILE *man, mskx_err *e) {
  char path[4600];
  for (int i = 0; i < ntcases; i++) {
    fprintf(man, "%s\n", tcases[i].line);
    for (int j = 0; j < tcases[i].nin; j++) {
      tbuf *b = &tcases[i].in[j];
      snprintf(path, sizeof path, "%s/%s.%s.f32", dir, tcases[i].name, b->name);
      if (file_write_atomic(path, b->p, b->n * sizeof(float), e)) return -1;
    }
  }
  return 0;
}

/* Compares every result of case t with the file PyTorch wrote. */
static void tc_compare(const char *dir, tcase *t) {
  char path[4600];
  for (int j = 0; j < t->nout && !t->fail[0]; j++) {
    tbuf *b = &t->out[j];
    unsigned char *data = NULL;
    size_t len = 0;
    mskx_err e;
    snprintf(path, sizeof path, "%s/%s.%s.out.f32", dir, t->name, b->name);
    if (file_read_all(path, 0, &data, &len, &e) || len != b->n * sizeof(float)) {
      test_fmt(t->fail, WHY, "%s.%s: no PyTorch result of %zu floats (%s)", t->name, b->name, b->n, e.msg);
      free(data);
      return;
    }
    double ref_max, md = arr_maxdiff(b->p, (const float *)data, b->n, &ref_max);
    double tol = strcmp(b->name, "idx") == 0 ? 0 : TORCH_TOL * ref_max + 1e-12;
    printf("# torch %s.%s: maxdiff %.2e (max|torch| %.2e)\n", t->name, b->name, md, ref_max);
    if (!(md <= tol))
      snprintf(t->fail, WHY, "%s.%s: maxdiff %.3g vs PyTorch exceeds %.3g (max|torch| %.3g)", t->name, b->name, md, tol,
               ref_max);
    free(data);
  }
}

static void torch_run_once(void) {
  static int done;
  if (done) return;
  done = 1;
  torch_build_cases();
  const char *base = getenv("MSKX_TMP") ? getenv("MSKX_TMP") : "/tmp";
  char dir[4096], path[4600], cmd[9000];
  mskx_err e = {0};
  snprintf(dir, sizeof dir, "%s/ops_torch.XXXXXX", base);
  if (!mkdtemp(dir)) {
    snprintf(torch_fail, WHY, "mkdtemp in %s failed", base);
    return;
  }
  snprintf(path, sizeof path, "%s/manifest.txt", dir);
  FILE *man = fopen(path, "w");
  if (!man || tc_write_inputs(dir, man, &e)) test_fmt(torch_fail, WHY, "writing inputs: %s", e.msg);
  if (man) fclose(man);
  if (snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/ops_torch_ref.py' '%s' > '%s/py.log' 2>&1",
               repo_root(), dir, dir) >= (int)sizeof cmd)
    snprintf(torch_fail, WHY, "the reference command does not fit %zu bytes (a very long TMPDIR?)", sizeof cmd);
  if (!torch_fail[0] && system(cmd) != 0) {
    unsigned char *log = NULL;
    size_t len = 0;
    snprintf(path, sizeof path, "%s/py.log", dir);
    file_read_all(path, 0, &log, &len, &e);
    snprintf(torch_fail, WHY, "ops_torch_ref.py failed: %s", log && len > 300 ? (char *)log + len - 300 : log ? (char *)log : "");
    free(log);
  }
  for (int i = 0; i < ntcases && !torch_fail[0]; i++) tc_compare(dir, &tcases[i]);
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) printf("# could not remove %s\n", dir);
}

/* Passes when every case whose manifest line starts with one of kinds matched PyTorch. */
static void torch_check(const char *const *kinds, int nk, char *why) {
  torch_run_once();
  why[0] = 0;
  if (torch_fail[0]) {
    snprintf(why, WHY, "%s", torch_fail);
    return;
  }
  for (int i = 0; i < ntcases; i++)
    for (int k = 0; k < nk; k++)
      if (strncmp(tcases[i].line, kinds[k], strlen(kinds[k])) == 0 && tcases[i].line[strlen(kinds[k])] == ' ' &&
          tcases[i].fail[0] && !why[0])
        snprintf(why, WHY, "%s", tcases[i].fail);
}

#define TORCH_TEST(tname, ...)                                     \
  TEST(tname) {                                                    \
    static const char *const kinds_[] = {__VA_ARGS__};             \
    char why[WHY];                                                 \
    torch_check(kinds_, sizeof kinds_ / sizeof *kinds_, why);      \
    CHECKF(!why[0], "%s", why);                                    \
  }

TORCH_TEST(torch_conv, "conv")
TORCH_TEST(torch_linear, "linear")
TORCH_TEST(torch_batchnorm, "bn_train", "bn_infer")
TORCH_TEST(torch_pooling, "maxpool", "avgpool", "gap")
TORCH_TEST(torch_add_relu_bce, "add_relu", "bce")

TEST_MAIN()
