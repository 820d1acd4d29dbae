/* Threshold policies over study probabilities (see threshold.h): one sorted
 * sweep over the candidates keeps the confusion counts up to date. */
#include "eval/threshold.h"
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "eval/metrics.h"

/* Metrics this close count as equal, so that rounding noise does not decide
 * between thresholds giving the same decisions. */
#define THR_TIE_TOL 1e-12

int thr_policy_parse(const char *s, thr_policy *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  if (!strcmp(s, "kappa")) return MSKX_OK;
  if (!strcmp(s, "youden")) {
    out->kind = THR_YOUDEN;
    return MSKX_OK;
  }
  if (!strncmp(s, "sensitivity=", 12)) {
    char *end;
    errno = 0;
    double v = strtod(s + 12, &end);
    if (errno || end == s + 12 || *end || !(v > 0 && v <= 1))
      return err_set(e, MSKX_EINVAL, "policy '%s': the sensitivity must be a number in (0, 1]", s);
    out->kind = THR_SENSITIVITY;
    out->target = v;
    return MSKX_OK;
  }
  return err_set(e, MSKX_EINVAL, "policy '%s': expected kappa, youden or sensitivity=S (e.g. sensitivity=0.90)", s);
}

const char *thr_policy_metric_name(const thr_policy *p) {
  return p->kind == THR_KAPPA ? "kappa" : p->kind == THR_YOUDEN ? "Youden's J" : "sensitivity";
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* A point strictly between a < b that keeps a below and b above. */
static double between(double a, double b) {
  double t = a + (b - a) / 2;
  return t < b ? t : a;
}

int thr_candidates(const double *p, int n, double **out, int *m, mskx_err *e) {
  *out = NULL;
  *m = 0;
  double *u = malloc(((size_t)n + 1) * sizeof *u), *c = malloc(((size_t)n + 3) * sizeof *c);
  if (!u || !c) {
    free(u);
    free(c);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(u, p, (size_t)n * sizeof *u);
  qsort(u, (size_t)n, sizeof *u, cmp_double);
  int k = 0, nc = 0;
  for (int i = 0; i < n; i++)
    if (i == 0 || u[i] != u[k - 1]) u[k++] = u[i];
  c[nc++] = 0.5;
  if (k > 0) {
    c[nc++] = u[0] > 0 ? between(0, u[0]) : 0;
    c[nc++] = u[k - 1] < 1 ? between(u[k - 1], 1) : 1;
  }
  for (int i = 0; i + 1 < k; i++) c[nc++] = between(u[i], u[i + 1]);
  qsort(c, (size_t)nc, sizeof *c, cmp_double);
  int w = 0;
  for (int i = 0; i < nc; i++)
    if (w == 0 || c[i] != c[w - 1]) c[w++] = c[i];
  free(u);
  *out = c;
  *m = w;
  return MSKX_OK;
}

static thr_point point_from(const confusion *cm, double t) {
  thr_point pt = {t, metric_kappa(cm), 0, metric_sensitivity(cm), metric_specificity(cm)};
  pt.youden = pt.sensitivity + pt.specificity - 1;
  return pt;
}

thr_point thr_evaluate(const double *p, const int *y, int n, double t) {
  confusion cm = {0, 0, 0, 0};
  for (int i = 0; i < n; i++) {
    int pos = p[i] > t;
    cm.tp += y[i] && pos;
    cm.fn += y[i] && !pos;
    cm.fp += !y[i] && pos;
    cm.tn += !y[i] && !pos;
  }
  return point_from(&cm, t);
}

double thr_metric(const thr_policy *pol, const thr_point *pt) {
  return pol->kind == THR_KAPPA ? pt->kappa : pol->kind == THR_YOUDEN ? pt->youden : pt->sensitivity;
}

typedef struct py {
  double p;
  int y;
} py;

static int cmp_py(const void *a, const void *b) { return cmp_double(&((const py *)a)->p, &((const py *)b)->p); }

/* Does candidate b beat the best so far a (both with finite metrics)? */
static int better(double mb, double tb, double ma, double ta) {
  if (mb > ma + THR_TIE_TOL) return 1;
  if (mb < ma - THR_TIE_TOL) return 0;
  double db = fabs(tb - 0.5), da = fabs(ta - 0.5);
  return db < da || (db == da && tb < ta);
}

static int check_input(const double *p, const int *y, int n, mskx_err *e) {
  if (n <= 0) return err_set(e, MSKX_EINVAL, "no studies to choose a threshold on");
  int pos = 0;
  for (int i = 0; i < n; i++) {
    if (!(p[i] >= 0 && p[i] <= 1)) return err_set(e, MSKX_EINVAL, "study %d: probability %g is not in [0, 1]", i, p[i]);
    pos += y[i] != 0;
  }
  if (pos == 0 || pos == n)
    return err_set(e, MSKX_EINVAL, "all %d studies are %s: a threshold needs both normal and abnormal studies", n,
                   pos ? "abnormal" : "normal");
  return MSKX_OK;
}

int thr_choose(const double *p, const int *y, int n, const thr_policy *pol, thr_point *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  int rc = check_input(p, y, n, e);
  if (rc) return rc;
  double *c = NULL;
  int m = 0;
  py *s = malloc((size_t)n * sizeof *s);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  if ((rc = thr_candidates(p, n, &c, &m, e))) {
    free(s);
    return rc;
  }
  int n_pos = 0;
  for (int i = 0; i < n; i++) s[i] = (py){p[i], y[i] != 0}, n_pos += y[i] != 0;
  qsort(s, (size_t)n, sizeof *s, cmp_py);
  /* Sweep: studies [0, j) have p <= t (called normal). */
  confusion cm = {0, 0, 0, 0};
  int j = 0, found = 0;
  double best_m = 0;
  for (int k = 0; k < m; k++) {
    for (; j < n && s[j].p <= c[k]; j++) {
      if (s[j].y) cm.fn++;
      else cm.tn++;
    }
    cm.tp = n_pos - cm.fn;
    cm.fp = (n - n_pos) - cm.tn;
    thr_point pt = point_from(&cm, c[k]);
    double mv = thr_metric(pol, &pt);
    if (pol->kind == THR_SENSITIVITY) {
      if (mv >= pol->target - THR_TIE_TOL) *out = pt, found = 1; /* ascending: the last one wins */
    } else if (isfinite(mv) && (!found || better(mv, pt.threshold, best_m, out->threshold))) {
      *out = pt;
      best_m = mv;
      found = 1;
    }
  }
  free(s);
  free(c);
  if (!found && pol->kind == THR_SENSITIVITY)
    return err_set(e, MSKX_EINVAL, "no threshold reaches sensitivity %g (abnormal studies with probability 0)",
                   pol->target);
  if (!found) return err_set(e, MSKX_EINVAL, "the %s is undefined at every threshold", thr_policy_metric_name(pol));
  return MSKX_OK;
}
