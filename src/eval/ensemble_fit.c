/* Ensemble fitting (see ensemble_fit.h): member probabilities on a split,
 * simplex weights, cross-validated logistic stacking, and the JSON file. */
#include "eval/ensemble_fit.h"
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/json.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"

#define LOGREG_MAX_STEPS 100
#define LOGREG_GRAD_TOL 1e-10
#define LOGREG_MAX_DIM 8192  /* stack-features: two DenseNet-169s give 3328 */
#define WEIGHTS_MAX_STEPS 20000
#define WEIGHTS_LOSS_TOL 1e-13
#define ARMIJO 1e-4

/* ---- member probabilities ---- */

typedef struct collect_ctx {
  ens_progress_fn fn;
  void *ctx;
  int member, m;
} collect_ctx;

static void collect_progress(void *ctx, int done, int total, long images, double seconds) {
  collect_ctx *c = ctx;
  (void)images, (void)seconds;
  c->fn(c->ctx, c->member, c->m, done, total);
}

void ens_data_free(ens_data *d) {
  free(d->p);
  free(d->thr);
  free(d->y);
  free(d->study);
  memset(d, 0, sizeof *d);
}

/* Runs member j over the split into columns j of full_p/full_thr (NaN where not predicted). */
static int collect_member(const char *path, int j, int m, const dataset *d, const eval_config *c,
                          const predictor_options *po, collect_ctx *cc, double *full_p, double *full_thr,
                          mskx_err *e) {
  predictor *p = NULL;
  eval_run *r = NULL;
  int rc = predictor_load(path, po, &p, e);
  if (!rc && predictor_get_info(p)->kind == PNODE_ENSEMBLE)
    rc = err_set(e, MSKX_EUNSUPPORTED, "%s: an ensemble cannot be a member of an ensemble (use its members)", path);
  eval_config cfg = *c;
  if (cc->fn) {
    cc->member = j;
    cfg.progress = collect_progress;
    cfg.progress_ctx = cc;
  }
  if (!rc) rc = eval_run_split(p, d, &cfg, &r, e);
  for (int i = 0; !rc && i < r->n_studies; i++) {
    full_p[(size_t)i * m + j] = r->studies[i].ok ? r->studies[i].probability : NAN;
    full_thr[(size_t)i * m + j] = r->studies[i].threshold;
  }
  eval_run_free(r);
  predictor_free(p);
  if (rc) err_prefix(e, "member %d", j + 1);
  return rc;
}

int ens_collect(const char *const *members, int m, const dataset *d, const eval_config *c,
                const predictor_options *po, ens_progress_fn progress, void *ctx, ens_data *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  const ds_split *s = dataset_split(d, c->split);
  if (!s || s->n_studies == 0) return err_set(e, MSKX_EINVAL, "%s: the split has no studies", d->root);
  size_t ns = (size_t)s->n_studies;
  double *fp = malloc(ns * m * sizeof *fp), *ft = malloc(ns * m * sizeof *ft);
  out->p = malloc(ns * m * sizeof *out->p);
  out->thr = malloc(ns * m * sizeof *out->thr);
  out->y = malloc(ns * sizeof *out->y);
  out->study = malloc(ns * sizeof *out->study);
  int rc = !fp || !ft || !out->p || !out->thr || !out->y || !out->study ? err_set(e, MSKX_ENOMEM, "out of memory") : 0;
  collect_ctx cc = {progress, ctx, 0, m};
  for (int j = 0; !rc && j < m; j++) rc = collect_member(members[j], j, m, d, c, po, &cc, fp, ft, e);
  for (size_t i = 0; !rc && i < ns; i++) {
    int all = 1;
    for (int j = 0; j < m; j++) all &= !isnan(fp[i * m + j]);
    if (!all) continue;
    memcpy(out->p + (size_t)out->n * m, fp + i * m, m * sizeof *fp);
    memcpy(out->thr + (size_t)out->n * m, ft + i * m, m * sizeof *ft);
    out->y[out->n] = s->studies[i].label;
    out->study[out->n++] = (int)i;
  }
  free(fp);
  free(ft);
  out->m = m;
  out->split = s;
  if (!rc && out->n == 0) rc = err_set(e, MSKX_EIO, "%s: no study was predicted by every member", d->root);
  if (rc) ens_data_free(out);
  return rc;
}

/* ---- losses and features ---- */

double ens_log_loss(const double *p, const int *y, int n) {
  double acc = 0;
  for (int i = 0; i < n; i++) {
    double q = p[i] < ENS_LOGLOSS_EPS ? ENS_LOGLOSS_EPS : p[i] > 1 - ENS_LOGLOSS_EPS ? 1 - ENS_LOGLOSS_EPS : p[i];
    acc -= y[i] ? log(q) : log1p(-q);
  }
  return n ? acc / n : NAN;
}

int ens_score(const double *p, const double *thr, double thr1, const int *y, int n, ens_scores *out, mskx_err *e) {
  *out = (ens_scores){NAN, ens_log_loss(p, y, n), NAN};
  mskx_err why;
  if (roc_auc(y, p, n, &out->auc, &why)) out->auc = NAN; /* one class only: AUROC is undefined, not an error */
  int *dec = malloc((size_t)(n ? n : 1) * sizeof *dec);
  if (!dec) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; i < n; i++) dec[i] = p[i] > (thr ? thr[i] : thr1);
  confusion c = confusion_from_labels(y, dec, n);
  out->kappa = metric_kappa(&c);
  free(dec);
  return MSKX_OK;
}

int ens_score_members(const double *p, const double *thr, const double *member_thr, const int *y, int n, int m,
                      ens_scores *out, mskx_err *e) {
  int rc = MSKX_OK;
  double *col = malloc((size_t)(n ? n : 1) * sizeof *col), *t = malloc((size_t)(n ? n : 1) * sizeof *t);
  if (!col || !t) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int j = 0; !rc && j < m; j++) {
    for (int i = 0; i < n; i++) col[i] = p[(size_t)i * m + j], t[i] = thr ? thr[(size_t)i * m + j] : member_thr[j];
    rc = ens_score(col, t, 0, y, n, &out[j], e);
  }
  free(col);
  free(t);
  return rc;
}

cJSON *ens_scores_json(const ens_scores *s) {
  cJSON *o = cJSON_CreateObject();
  if (!o) return NULL;
  json_add_finite(o, "auc", s->auc);
  json_add_finite(o, "log_loss", s->log_loss);
  json_add_finite(o, "kappa", s->kappa);
  return o;
}

void ens_stack_features(const double *p, int n, int m, double *x) {
  for (size_t k = 0; k < (size_t)n * m; k++) {
    double q = p[k] < STACK_CLAMP ? STACK_CLAMP : p[k] > 1 - STACK_CLAMP ? 1 - STACK_CLAMP : p[k];
    x[k] = log(q / (1 - q));
  }
}

/* log(1 + e^z) without overflow. */
static double log1pexp(double z) { return z > 0 ? z + log1p(exp(-z)) : log1p(exp(z)); }

/* ---- logistic regression ---- */

typedef struct lr_prob {
  const double *x;
  const int *y;
  int n, d;
  double C;
} lr_prob;

static double lr_objective(const lr_prob *q, const double *w) {
  double f = 0, r = 0;
  for (int i = 0; i < q->n; i++) {
    const double *xi = q->x + (size_t)i * q->d;
    double z = w[q->d];
    for (int k = 0; k < q->d; k++) z += xi[k] * w[k];
    f += log1pexp(z) - (q->y[i] ? z : 0);
  }
  for (int k = 0; k < q->d; k++) r += w[k] * w[k];
  return q->C * f + 0.5 * r;
}

/* Gradient g and Hessian h ((d+1)^2) at w; the last coordinate is the intercept. */
static void lr_derivs(const lr_prob *q, const double *w, double *g, double *h) {
  int D = q->d + 1;
  memset(g, 0, D * sizeof *g);
  memset(h, 0, (size_t)D * D * sizeof *h);
  for (int i = 0; i < q->n; i++) {
    const double *xi = q->x + (size_t)i * q->d;
    double z = w[q->d];
    for (int k = 0; k < q->d; k++) z += xi[k] * w[k];
    double s = sigmoid(z), r = q->C * (s - (q->y[i] != 0)), v = q->C * s * (1 - s);
    for (int a = 0; a < D; a++) {
      double xa = a < q->d ? xi[a] : 1;
      g[a] += r * xa;
      for (int b = 0; b <= a; b++) h[a * D + b] += v * xa * (b < q->d ? xi[b] : 1);
    }
  }
  for (int k = 0; k < q->d; k++) g[k] += w[k], h[k * D + k] += 1;
  for (int a = 0; a < D; a++)
    for (int b = a + 1; b < D; b++) h[a * D + b] = h[b * D + a];
}

/* Solves h x = g in place (x overwrites g) by Cholesky; h is overwritten. */
static int cholesky_solve(double *h, double *g, int D) {
  for (int j = 0; j < D; j++) {
    double s = h[j * D + j];
    for (int k = 0; k < j; k++) s -= h[j * D + k] * h[j * D + k];
    if (!(s > 0)) return -1;
    h[j * D + j] = sqrt(s);
    for (int i = j + 1; i < D; i++) {
      double t = h[i * D + j];
      for (int k = 0; k < j; k++) t -= h[i * D + k] * h[j * D + k];
      h[i * D + j] = t / h[j * D + j];
    }
  }
  for (int i = 0; i < D; i++) {
    for (int k = 0; k < i; k++) g[i] -= h[i * D + k] * g[k];
    g[i] /= h[i * D + i];
  }
  for (int i = D - 1; i >= 0; i--) {
    for (int k = i + 1; k < D; k++) g[i] -= h[k * D + i] * g[k];
    g[i] /= h[i * D + i];
  }
  return 0;
}

static double max_abs(const double *v, int n) {
  double m = 0;
  for (int i = 0; i < n; i++) m = fabs(v[i]) > m ? fabs(v[i]) : m;
  return m;
}

int logreg_fit(const double *x, const int *y, int n, int d, double C, double *coef, double *intercept, int *iters,
               mskx_err *e) {
  if (n < 2 || d < 1 || d > LOGREG_MAX_DIM || !(C > 0))
    return err_set(e, MSKX_EINVAL, "logistic regression: needs n >= 2, 1 <= d <= %d and C > 0", LOGREG_MAX_DIM);
  int pos = 0;
  for (int i = 0; i < n; i++) pos += y[i] != 0;
  if (pos == 0 || pos == n) return err_set(e, MSKX_EINVAL, "logistic regression: the labels hold one class only");
  int D = d + 1, steps = 0, rc = MSKX_OK;
  double *w = calloc(D, sizeof *w), *g = malloc(D * sizeof *g), *h = malloc((size_t)D * D * sizeof *h);
  double *step = malloc(D * sizeof *step), *t = malloc(D * sizeof *t);
  if (!w || !g || !h || !step || !t) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  lr_prob q = {x, y, n, d, C};
  double f = rc ? 0 : lr_objective(&q, w);
  for (; !rc && steps < LOGREG_MAX_STEPS; steps++) {
    lr_derivs(&q, w, g, h);
    if (max_abs(g, D) < LOGREG_GRAD_TOL * (1 + C * n)) break;
    memcpy(step, g, D * sizeof *g);
    if (cholesky_solve(h, step, D)) {
      rc = err_set(e, MSKX_EINTERNAL, "logistic regression: the Hessian is not positive definite");
      break;
    }
    double slope = 0, a = 1, fn = f;
    for (int k = 0; k < D; k++) slope -= g[k] * step[k];
    for (int tries = 0; tries < 60; tries++, a *= 0.5) {
      for (int k = 0; k < D; k++) t[k] = w[k] - a * step[k];
      fn = lr_objective(&q, t);
      if (fn <= f + ARMIJO * a * slope) break;
    }
    if (!(fn <= f)) break; /* no descent left: at the optimum to rounding */
    memcpy(w, t, D * sizeof *w);
    f = fn;
  }
  if (!rc) {
    memcpy(coef, w, d * sizeof *w);
    *intercept = w[d];
    if (iters) *iters = steps;
  }
  free(w);
  free(g);
  free(h);
  free(step);
  free(t);
  return rc;
}

/* ---- simplex weights ---- */

typedef struct wt_prob {
  const double *p;
  const int *y;
  int n, m;
} wt_prob;

static void softmax(const double *a, int m, double *w) {
  double mx = a[0], s = 0;
  for (int j = 1; j < m; j++) mx = a[j] > mx ? a[j] : mx;
  for (int j = 0; j < m; j++) s += (w[j] = exp(a[j] - mx));
  for (int j = 0; j < m; j++) w[j] /= s;
}

/* Log-loss at weights w; ga (may be NULL) receives the gradient in a. */
static double wt_loss(const wt_prob *q, const double *w, double *gw, double *ga) {
  double L = 0;
  if (gw) memset(gw, 0, q->m * sizeof *gw);
  for (int i = 0; i < q->n; i++) {
    const double *pi = q->p + (size_t)i * q->m;
    double s = 0;
    for (int j = 0; j < q->m; j++) s += w[j] * pi[j];
    int clipped = s < ENS_LOGLOSS_EPS || s > 1 - ENS_LOGLOSS_EPS;
    s = s < ENS_LOGLOSS_EPS ? ENS_LOGLOSS_EPS : s > 1 - ENS_LOGLOSS_EPS ? 1 - ENS_LOGLOSS_EPS : s;
    L -= q->y[i] ? log(s) : log1p(-s);
    double dl = clipped ? 0 : q->y[i] ? -1 / s : 1 / (1 - s);
    for (int j = 0; gw && j < q->m; j++) gw[j] += dl * pi[j] / q->n;
  }
  if (ga) {
    double mean = 0;
    for (int j = 0; j < q->m; j++) mean += w[j] * gw[j];
    for (int j = 0; j < q->m; j++) ga[j] = w[j] * (gw[j] - mean);
  }
  return L / q->n;
}

static int cmp_desc(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? 1 : x > y ? -1 : 0;
}

/* Euclidean projection of v onto the probability simplex (sort-based, after
 * Held, Wolfe and Crowder 1974; Duchi et al. 2008). */
static void simplex_project(const double *v, int m, double *out) {
  double u[m];
  memcpy(u, v, (size_t)m * sizeof *u);
  qsort(u, (size_t)m, sizeof *u, cmp_desc);
  double cum = 0, theta = 0;
  for (int j = 0; j < m; j++) {
    cum += u[j];
    double t = (cum - 1) / (j + 1);
    if (u[j] - t > 0) theta = t;
  }
  for (int j = 0; j < m; j++) out[j] = v[j] - theta > 0 ? v[j] - theta : 0;
}

int ens_fit_weights(const double *p, const int *y, int n, int m, double *w, int *iters, mskx_err *e) {
  if (n < 1 || m < 1) return err_set(e, MSKX_EINVAL, "weights: no studies or members");
  double *a = calloc(m, sizeof *a), *ta = malloc(m * sizeof *ta), *tw = malloc(m * sizeof *tw);
  double *gw = malloc(m * sizeof *gw), *ga = malloc(m * sizeof *ga);
  int rc = !a || !ta || !tw || !gw || !ga ? err_set(e, MSKX_ENOMEM, "out of memory") : 0, steps = 0;
  wt_prob q = {p, y, n, m};
  double eta = 1, L = 0;
  if (!rc) {
    softmax(a, m, w);
    L = wt_loss(&q, w, gw, ga);
  }
  for (; !rc && steps < WEIGHTS_MAX_STEPS; steps++) {
    double g2 = 0, Ln = L;
    for (int j = 0; j < m; j++) g2 += ga[j] * ga[j];
    if (g2 == 0) break;
    int accepted = 0;
    for (int tries = 0; tries < 60 && !accepted; tries++) {
      for (int j = 0; j < m; j++) ta[j] = a[j] - eta * ga[j];
      softmax(ta, m, tw);
      Ln = wt_loss(&q, tw, NULL, NULL);
      if (Ln <= L - ARMIJO * eta * g2) accepted = 1;
      else eta *= 0.5;
    }
    if (!accepted) break;
    memcpy(a, ta, m * sizeof *a);
    memcpy(w, tw, m * sizeof *w);
    double drop = L - Ln;
    L = wt_loss(&q, w, gw, ga);
    eta *= 2; /* let the step grow back after a cautious stretch */
    if (drop < WEIGHTS_LOSS_TOL) break;
  }
  /* The softmax parametrisation only approaches a weight of exactly 0 (an
   * optimum on the simplex's boundary, e.g. a useless member) slowly; polish
   * with projected gradient steps, which reach the boundary exactly. */
  if (!rc) L = wt_loss(&q, w, gw, NULL);
  eta = 1;
  for (int k = 0; !rc && k < WEIGHTS_MAX_STEPS; k++, steps++) {
    int accepted = 0;
    double Ln = L;
    for (int tries = 0; tries < 60 && !accepted; tries++) {
      for (int j = 0; j < m; j++) ta[j] = w[j] - eta * gw[j];
      simplex_project(ta, m, tw);
      double dec = 0; /* gradient . (w - tw): the first-order decrease */
      for (int j = 0; j < m; j++) dec += gw[j] * (w[j] - tw[j]);
      if (dec <= 0) break; /* stationary: the projected step does not move */
      Ln = wt_loss(&q, tw, NULL, NULL);
      if (Ln <= L - ARMIJO * dec) accepted = 1;
      else eta *= 0.5;
    }
    if (!accepted) break;
    memcpy(w, tw, m * sizeof *w);
    double drop = L - Ln;
    L = wt_loss(&q, w, gw, NULL);
    eta *= 2;
    if (drop < WEIGHTS_LOSS_TOL) break;
  }
  if (iters) *iters = steps;
  free(a);
  free(ta);
  free(tw);
  free(gw);
  free(ga);
  return rc;
}

/* ---- stacking with cross-validation ---- */

static int fold_assign(const int *y, int n, int k, uint64_t seed, int *fold, mskx_err *e) {
  int64_t *idx = malloc((size_t)n * sizeof *idx);
  if (!idx) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int cls = 0; cls < 2; cls++) {
    int64_t c = 0;
    for (int i = 0; i < n; i++)
      if ((y[i] != 0) == cls) idx[c++] = i;
    if (c < k) {
      free(idx);
      return err_set(e, MSKX_EINVAL, "%d-fold cross-validation needs at least %d %s studies (there are %lld); "
                     "lower --folds", k, k, cls ? "abnormal" : "normal", (long long)c);
    }
    rng r = rng_for(seed, 0x5eed5eedULL, (uint64_t)cls);
    rng_shuffle(&r, idx, c);
    for (int64_t t = 0; t < c; t++) fold[idx[t]] = (int)(t % k);
  }
  free(idx);
  return MSKX_OK;
}

int ens_fit_stack(const double *p, const int *y, int n, int m, int folds, uint64_t seed, double C, double *coef,
                  double *intercept, double *oof, mskx_err *e) {
  if (folds < 2 || folds > n) return err_set(e, MSKX_EINVAL, "--folds must be in [2, %d] (the number of studies)", n);
  double *x = malloc((size_t)n * m * sizeof *x), *xt = malloc((size_t)n * m * sizeof *xt);
  int *fold = malloc((size_t)n * sizeof *fold), *yt = malloc((size_t)n * sizeof *yt);
  double *cf = malloc((size_t)m * sizeof *cf);
  int rc = !x || !xt || !fold || !yt || !cf ? err_set(e, MSKX_ENOMEM, "out of memory") : 0;
  if (!rc) {
    ens_stack_features(p, n, m, x);
    rc = fold_assign(y, n, folds, seed, fold, e);
  }
  for (int f = 0; !rc && oof && f < folds; f++) {
    int nt = 0;
    for (int i = 0; i < n; i++) {
      if (fold[i] == f) continue;
      memcpy(xt + (size_t)nt * m, x + (size_t)i * m, m * sizeof *x);
      yt[nt++] = y[i];
    }
    double b;
    rc = logreg_fit(xt, yt, nt, m, C, cf, &b, NULL, e);
    if (rc) err_prefix(e, "fold %d", f + 1);
    for (int i = 0; !rc && i < n; i++) {
      if (fold[i] != f) continue;
      double z = b;
      for (int j = 0; j < m; j++) z += cf[j] * x[(size_t)i * m + j];
      oof[i] = sigmoid(z);
    }
  }
  if (!rc) rc = logreg_fit(x, y, n, m, C, coef, intercept, NULL, e);
  free(x);
  free(xt);
  free(fold);
  free(yt);
  free(cf);
  return rc;
}

int ens_combine_all(const ens_data *d, ens_method method, const double *w, const double *coef, double intercept,
                    double *out, mskx_err *e) {
  double *ones = malloc((size_t)d->m * sizeof *ones);
  if (!ones) return err_set(e, MSKX_ENOMEM, "out of memory");
  for (int j = 0; j < d->m; j++) ones[j] = 1;
  pnode ens;
  memset(&ens, 0, sizeof ens);
  ens.kind = PNODE_ENSEMBLE;
  ens.method = method;
  ens.n_children = d->m;
  ens.weight = w ? (double *)w : ones;   /* read only */
  ens.coef = coef ? (double *)coef : ones;
  ens.intercept = intercept;
  for (int i = 0; i < d->n; i++) out[i] = ensemble_combine(&ens, d->p + (size_t)i * d->m, d->thr + (size_t)i * d->m);
  free(ones);
  return MSKX_OK;
}

/* ---- the file ---- */

int ens_relative_path(const char *dir, const char *target, char *out, size_t n, mskx_err *e) {
  char rd[PATH_MAX], rt[PATH_MAX];
  if (!realpath(dir, rd)) return err_set(e, MSKX_EIO, "%s: cannot resolve the folder", dir);
  if (!realpath(target, rt)) return err_set(e, MSKX_EIO, "%s: cannot resolve the path", target);
  size_t common = 0, i = 0;
  /* The longest prefix of whole components. */
  for (; rd[i] && rd[i] == rt[i]; i++)
    if (rd[i] == '/') common = i;
  if (!rd[i] && rt[i] == '/') common = i;
  if (common == 0) {
    if (strlen(rt) >= n) return err_set(e, MSKX_EINVAL, "path too long: %s", rt);
    strcpy(out, rt);
    return MSKX_OK;
  }
  size_t len = 0;
  out[0] = 0;
  for (const char *c = rd + common; *c; c++)
    if (*c == '/') {
      if (len + 4 >= n) return err_set(e, MSKX_EINVAL, "path too long: %s", rt);
      memcpy(out + len, "../", 4);
      len += 3;
    }
  if (len + strlen(rt + common + 1) >= n) return err_set(e, MSKX_EINVAL, "path too long: %s", rt);
  strcpy(out + len, rt + common + 1);
  return MSKX_OK;
}

int ens_write_json(const char *path, const char *method, double threshold, const ens_member_out *members, int m,
                   const double *coef, double intercept, cJSON *fit, mskx_err *e) {
  cJSON *st = NULL;
  if (coef) {
    st = cJSON_CreateObject();
    cJSON_AddItemToObject(st, "coef", cJSON_CreateDoubleArray(coef, m));
    cJSON_AddNumberToObject(st, "intercept", intercept);
  }
  return ens_write_json_stacker(path, method, threshold, members, m, st, fit, e);
}

int ens_write_json_stacker(const char *path, const char *method, double threshold, const ens_member_out *members,
                           int m, cJSON *stacker, cJSON *fit, mskx_err *e) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (!slash) snprintf(dir, sizeof dir, ".");
  else if (slash == dir) dir[1] = 0;
  else *slash = 0;
  cJSON *o = cJSON_CreateObject(), *arr = NULL;
  int rc = o && mkdir_p(dir, e) == MSKX_OK ? MSKX_OK : (o ? e->code : err_set(e, MSKX_ENOMEM, "out of memory"));
  if (!rc) {
    cJSON_AddStringToObject(o, "format", "mskx-ensemble-1");
    cJSON_AddStringToObject(o, "method", method);
    cJSON_AddNumberToObject(o, "threshold", threshold);
    arr = cJSON_AddArrayToObject(o, "members");
  }
  for (int j = 0; !rc && j < m; j++) {
    char rel[4096];
    rc = ens_relative_path(dir, members[j].path, rel, sizeof rel, e);
    cJSON *it = rc ? NULL : cJSON_CreateObject();
    if (!rc && !it) rc = err_set(e, MSKX_ENOMEM, "out of memory");
    if (!rc) {
      cJSON_AddStringToObject(it, "path", rel);
      cJSON_AddNumberToObject(it, "weight", members[j].weight);
      cJSON_AddItemToArray(arr, it);
    }
  }
  if (!rc && stacker) {
    cJSON_AddItemToObject(o, "stacker", stacker);
    stacker = NULL;
  }
  if (!rc && fit) {
    cJSON_AddItemToObject(o, "fit", fit);
    fit = NULL;
  }
  if (!rc) rc = json_write_atomic(path, o, e);
  cJSON_Delete(o);
  cJSON_Delete(stacker);
  cJSON_Delete(fit);
  return rc;
}
