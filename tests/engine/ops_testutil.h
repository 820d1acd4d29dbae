/* Shared helpers for the engine op tests (test_ops_ref.c, test_ops_dnnl.c):
 * views over guarded buffers, random fills, comparisons, finite differences. */
#ifndef MSKX_TESTS_OPS_TESTUTIL_H
#define MSKX_TESTS_OPS_TESTUTIL_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"
#include "engine/engine.h"
#include "test.h"

/* Case helpers return 0, or -1 with a one-line reason in why[WHY]. */
#define WHY 512
#define REQUIRE(cond, ...)             \
  do {                                 \
    if (!(cond)) {                     \
      test_fmt(why, WHY, __VA_ARGS__); \
      goto out;                        \
    }                                  \
  } while (0)

static inline float *vat(view v, int n, int y, int x, int ch) {
  return v.p + (((size_t)n * v.h + y) * v.w + x) * (size_t)v.ld + ch;
}
/* Element k of v in (n, y, x, ch) order. */
static inline float *vat_k(view v, size_t k) {
  int ch = (int)(k % (size_t)v.c);
  size_t pix = k / (size_t)v.c;
  return v.p + pix * (size_t)v.ld + ch;
}
static inline view dense1(float *p, int len) { return view_make(p, 1, 1, 1, len); }

/* A view of channels [c0, c0 + c) of an (n, h, w, ld) buffer. The whole buffer
 * starts random, and a snapshot lets a test prove that ops never touch the
 * elements outside their view. */
typedef struct vbuf {
  float *base, *init;
  size_t len;
  view v;
} vbuf;

static inline int vbuf_alloc(vbuf *b, int n, int h, int w, int c, int ld, int c0, uint64_t seed) {
  memset(b, 0, sizeof *b);
  if (ld < c0 + c) return -1;
  b->len = (size_t)n * h * w * ld;
  b->base = malloc(b->len * sizeof(float));
  b->init = malloc(b->len * sizeof(float));
  if (!b->base || !b->init) return -1;
  rng r;
  rng_seed(&r, seed ^ 0x5eedf00dULL);
  for (size_t i = 0; i < b->len; i++) b->base[i] = (float)(rng_uniform(&r) * 2 - 1);
  memcpy(b->init, b->base, b->len * sizeof(float));
  b->v = (view){b->base + c0, n, h, w, c, ld, 0};
  return 0;
}
static inline int vbuf_dense(vbuf *b, int n, int h, int w, int c, uint64_t seed) {
  return vbuf_alloc(b, n, h, w, c, c, 0, seed);
}
static inline void vbuf_free(vbuf *b) {
  free(b->base);
  free(b->init);
  memset(b, 0, sizeof *b);
}
/* Marks the current content as the reference for vbuf_outside_ok. */
static inline void vbuf_snapshot(vbuf *b) { memcpy(b->init, b->base, b->len * sizeof(float)); }
/* 1 when every element outside the view is bitwise what the snapshot held. */
static inline int vbuf_outside_ok(const vbuf *b) {
  size_t c0 = (size_t)(b->v.p - b->base);
  for (size_t i = 0; i < b->len; i++) {
    size_t ch = i % (size_t)b->v.ld;
    if (ch >= c0 && ch < c0 + (size_t)b->v.c) continue;
    if (memcmp(&b->base[i], &b->init[i], sizeof(float)) != 0) return 0;
  }
  return 1;
}

static inline void view_fill_uniform(view v, rng *r, double lo, double hi) {
  for (size_t k = 0; k < view_numel(v); k++) *vat_k(v, k) = (float)(lo + (hi - lo) * rng_uniform(r));
}
static inline void view_fill_normal(view v, rng *r, double mean, double sd) {
  for (size_t k = 0; k < view_numel(v); k++) *vat_k(v, k) = (float)(mean + sd * rng_normal(r));
}
static inline void view_fill(view v, float val) {
  for (size_t k = 0; k < view_numel(v); k++) *vat_k(v, k) = val;
}
static inline void fill_uniform(float *p, size_t n, rng *r, double lo, double hi) {
  for (size_t i = 0; i < n; i++) p[i] = (float)(lo + (hi - lo) * rng_uniform(r));
}
static inline void view_to_dense(view v, float *out) {
  for (size_t k = 0; k < view_numel(v); k++) out[k] = *vat_k(v, k);
}
/* Distinct values spaced `gap` apart in random order, so max pooling has no
 * ties or near-ties that a small perturbation could flip. */
static inline void view_fill_distinct(view v, rng *r, double gap) {
  size_t n = view_numel(v);
  int64_t *idx = malloc(n * sizeof *idx);
  if (!idx) return;
  for (size_t i = 0; i < n; i++) idx[i] = (int64_t)i;
  rng_shuffle(r, idx, (int64_t)n);
  for (size_t k = 0; k < n; k++) *vat_k(v, k) = (float)(((double)idx[k] - n / 2.0) * gap);
  free(idx);
}

/* Max |a - b| over two views of the same shape; *ref_max gets max |b|. NaN
 * anywhere makes the difference infinite. */
static inline double view_maxdiff(view a, view b, double *ref_max) {
  double md = 0, rm = 0;
  for (size_t k = 0; k < view_numel(a); k++) {
    double x = *vat_k(a, k), y = *vat_k(b, k), d = fabs(x - y);
    if (isnan(d)) d = INFINITY;
    if (d > md) md = d;
    if (fabs(y) > rm) rm = fabs(y);
  }
  if (ref_max) *ref_max = rm;
  return md;
}
static inline double arr_maxdiff(const float *a, const float *b, size_t n, double *ref_max) {
  return view_maxdiff(dense1((float *)a, (int)n), dense1((float *)b, (int)n), ref_max);
}
static inline double darr_maxabs(const double *g, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; i++) m = fabs(g[i]) > m ? fabs(g[i]) : m;
  return m;
}

/* Moves elements of x until every batch-norm pre-activation
 * gamma*(x-mean)*invstd + beta is at least `margin` from 0, so a ReLU mask
 * cannot flip under a small perturbation or a different rounding. */
static inline int bn_push_margin(view x, const float *gamma, const float *beta, float eps, double margin) {
  double m = (double)x.n * x.h * x.w;
  for (int it = 0; it < 200; it++) {
    int moved = 0;
    for (int ch = 0; ch < x.c; ch++) {
      double s = 0, ss = 0;
      for (size_t k = (size_t)ch; k < view_numel(x); k += (size_t)x.c) s += *vat_k(x, k);
      double mu = s / m;
      for (size_t k = (size_t)ch; k < view_numel(x); k += (size_t)x.c) {
        double d = *vat_k(x, k) - mu;
        ss += d * d;
      }
      double is = 1.0 / sqrt(ss / m + eps);
      for (size_t k = (size_t)ch; k < view_numel(x); k += (size_t)x.c) {
        double pre = gamma[ch] * (*vat_k(x, k) - mu) * is + beta[ch];
        if (fabs(pre) >= margin) continue;
        double dir = (pre >= 0) == (gamma[ch] > 0) ? 1.0 : -1.0;
        *vat_k(x, k) += (float)(dir * 3 * margin / (fabs(gamma[ch]) * is));
        moved = 1;
      }
    }
    if (!moved) return 0;
  }
  return -1;
}

/* Finite differences. A test wraps "run the forward, return L = sum(r*y) in
 * double" as a loss_fn; fd_check compares an analytic gradient (dense, in the
 * view's (n,y,x,ch) order) with central differences.
 * Float noise: perturbed inputs are floats, so every difference quotient
 * divides by the step actually taken ((float)(x+s) - (float)(x-s), exact in
 * double) rather than by 2s; the remaining noise is the float rounding of the
 * outputs, which linear and piecewise-linear ops beat with a large step (their
 * differences are exact away from kinks, which the tests keep clear of) and
 * smooth ops with Richardson extrapolation (error O(s^4)) at a moderate step. */
typedef double (*loss_fn)(void *ctx);
typedef struct fd_opts {
  double step;
  int richardson;
  int max_elems; /* per-element checks; an evenly spread subset beyond this */
  int ndirs;     /* directional checks along random directions over all elements */
} fd_opts;
typedef struct fd_result {
  double elem_err; /* max |fd - g| / max |g| */
  double dir_err;  /* max |fd - g.d| / sum |g_i d_i| */
  long worst;      /* element of the worst per-element error */
} fd_result;

static inline double fd_elem(view pv, size_t k, loss_fn f, void *ctx, double s) {
  float *p = vat_k(pv, k), orig = *p;
  *p = (float)(orig + s);
  double xp = *p, lp = f(ctx);
  *p = (float)(orig - s);
  double xm = *p, lm = f(ctx);
  *p = orig;
  return (lp - lm) / (xp - xm);
}

/* The relative error of L(x + s d) - L(x - s d) against g . (actual step). */
static inline double fd_dir(view pv, const double *g, const float *orig, const double *d, loss_fn f,
                            void *ctx, double s) {
  size_t n = view_numel(pv);
  for (size_t k = 0; k < n; k++) *vat_k(pv, k) = (float)(orig[k] + s * d[k]);
  double lp = f(ctx);
  double pred = 0, scale = 0;
  for (size_t k = 0; k < n; k++) {
    double up = *vat_k(pv, k);
    *vat_k(pv, k) = (float)(orig[k] - s * d[k]);
    double step = up - *vat_k(pv, k);
    pred += g[k] * step;
    scale += fabs(g[k] * step);
  }
  double lm = f(ctx);
  for (size_t k = 0; k < n; k++) *vat_k(pv, k) = orig[k];
  return (lp - lm - pred) / (scale > 0 ? scale : 1e-300);
}

static inline fd_result fd_check(view pv, const double *g, loss_fn f, void *ctx, fd_opts o, uint64_t seed) {
  fd_result res = {0, 0, -1};
  size_t n = view_numel(pv);
  double gmax = darr_maxabs(g, n);
  size_t cnt = o.max_elems > 0 && n > (size_t)o.max_elems ? (size_t)o.max_elems : n;
  for (size_t j = 0; j < cnt; j++) {
    size_t k = j * n / cnt;
    double est = fd_elem(pv, k, f, ctx, o.step);
    if (o.richardson) est = (4 * fd_elem(pv, k, f, ctx, o.step / 2) - est) / 3;
    double err = fabs(est - g[k]) / (gmax > 0 ? gmax : 1e-300);
    if (isnan(err)) err = INFINITY;
    if (err > res.elem_err || res.worst < 0) res.elem_err = err, res.worst = (long)k;
  }
  float *orig = malloc(n * sizeof *orig);
  double *d = malloc(n * sizeof *d);
  if (!orig || !d) {
    free(orig), free(d);
    res.dir_err = INFINITY;
    return res;
  }
  rng r;
  rng_seed(&r, seed);
  for (size_t k = 0; k < n; k++) orig[k] = *vat_k(pv, k);
  for (int t = 0; t < o.ndirs; t++) {
    for (size_t k = 0; k < n; k++) d[k] = rng_uniform(&r) * 2 - 1;
    double err = fd_dir(pv, g, orig, d, f, ctx, o.step);
    if (o.richardson) err = (4 * fd_dir(pv, g, orig, d, f, ctx, o.step / 2) - err) / 3;
    err = fabs(err);
    if (isnan(err)) err = INFINITY;
    if (err > res.dir_err) res.dir_err = err;
  }
  free(orig), free(d);
  return res;
}

/* A dense double copy of a float view (analytic gradients for fd_check). */
static inline double *view_to_double(view v) {
  double *g = malloc(view_numel(v) * sizeof *g + 1);
  if (g)
    for (size_t k = 0; k < view_numel(v); k++) g[k] = *vat_k(v, k);
  return g;
}
/* sum(r * y) in double. */
static inline double dot_rv(view r, view y) {
  double s = 0;
  for (size_t k = 0; k < view_numel(y); k++) s += (double)*vat_k(r, k) * *vat_k(y, k);
  return s;
}

static inline void engine_free(engine *eng) {
  if (eng) eng->ops->destroy(eng);
}

#endif
