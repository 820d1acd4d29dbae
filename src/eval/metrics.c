/* Point metrics, ROC curve and AUROC with scikit-learn's definitions, and the
 * percentile used by the bootstrap (see metrics.h). */
#include "eval/metrics.h"
#include <math.h>
#include <stdlib.h>
#include "core/error.h"

const char *const metric_names[METRIC_COUNT] = {"kappa", "auc", "accuracy", "sensitivity",
                                                "specificity", "precision", "f1"};

confusion confusion_from_labels(const int *y_true, const int *y_pred, int n) {
  confusion c = {0, 0, 0, 0};
  for (int i = 0; i < n; i++) {
    int t = y_true[i] != 0, p = y_pred[i] != 0;
    if (t) {
      if (p) c.tp++;
      else c.fn++;
    } else {
      if (p) c.fp++;
      else c.tn++;
    }
  }
  return c;
}

/* zero_division=0: sklearn returns 0 when the denominator is 0. */
static double ratio0(int64_t num, int64_t den) { return den > 0 ? (double)num / (double)den : 0.0; }

double metric_accuracy(const confusion *c) {
  int64_t n = c->tn + c->fp + c->fn + c->tp;
  return n > 0 ? (double)(c->tp + c->tn) / (double)n : NAN;
}
double metric_sensitivity(const confusion *c) { return ratio0(c->tp, c->tp + c->fn); }
double metric_specificity(const confusion *c) { return ratio0(c->tn, c->tn + c->fp); }
double metric_precision(const confusion *c) { return ratio0(c->tp, c->tp + c->fp); }
/* 2PR/(P+R) simplifies to 2tp/(2tp+fp+fn) whenever P+R > 0; with P+R = 0
 * (tp = 0) both sklearn and this formula give 0. */
double metric_f1(const confusion *c) { return ratio0(2 * c->tp, 2 * c->tp + c->fp + c->fn); }

double metric_kappa(const confusion *c) {
  /* sklearn: expected = outer(column sums, row sums) / n; kappa = 1 - sum of
   * off-diagonal observed / sum of off-diagonal expected. */
  double n = (double)(c->tn + c->fp + c->fn + c->tp);
  if (n <= 0) return NAN;
  double pred0 = (double)(c->tn + c->fn), pred1 = (double)(c->fp + c->tp);
  double true0 = (double)(c->tn + c->fp), true1 = (double)(c->fn + c->tp);
  double expected_off = pred0 * true1 / n + pred1 * true0 / n;
  double observed_off = (double)(c->fp + c->fn);
  if (expected_off == 0.0) return NAN; /* sklearn computes 0/0 here */
  return 1.0 - observed_off / expected_off;
}

typedef struct scored {
  double s;
  int i;
} scored;

static int cmp_scored_desc(const void *a, const void *b) {
  const scored *x = a, *y = b;
  if (x->s > y->s) return -1;
  if (x->s < y->s) return 1;
  return (x->i > y->i) - (x->i < y->i);
}

int sort_by_score_desc(const double *score, int n, int **order, unsigned char **tie_start, mskx_err *e) {
  *order = NULL;
  *tie_start = NULL;
  if (n < 0) return err_set(e, MSKX_EINVAL, "negative study count %d", n);
  for (int i = 0; i < n; i++)
    if (isnan(score[i])) return err_set(e, MSKX_EINVAL, "score %d is NaN", i);
  size_t m = n > 0 ? (size_t)n : 1;
  scored *tmp = malloc(m * sizeof *tmp);
  int *ord = malloc(m * sizeof *ord);
  unsigned char *ts = malloc(m);
  if (!tmp || !ord || !ts) {
    free(tmp);
    free(ord);
    free(ts);
    return err_set(e, MSKX_ENOMEM, "cannot allocate a sort of %d scores", n);
  }
  for (int i = 0; i < n; i++) tmp[i] = (scored){score[i], i};
  qsort(tmp, (size_t)n, sizeof *tmp, cmp_scored_desc);
  for (int k = 0; k < n; k++) {
    ord[k] = tmp[k].i;
    ts[k] = k == 0 || tmp[k].s != tmp[k - 1].s;
  }
  free(tmp);
  *order = ord;
  *tie_start = ts;
  return MSKX_OK;
}

double auc_sorted(const int *order, const unsigned char *tie_start, int m, const unsigned char *label,
                  const int *weight) {
  /* Trapezoids between the ROC points at the ends of tie groups; the sums
   * are integers (or halves) held exactly in doubles, divided once. */
  double area2 = 0.0; /* twice the unnormalised area */
  double tps = 0.0, fps = 0.0, g_pos = 0.0, g_neg = 0.0;
  for (int k = 0; k < m; k++) {
    if (tie_start[k] && k > 0) {
      area2 += g_neg * (2.0 * tps + g_pos);
      tps += g_pos;
      fps += g_neg;
      g_pos = g_neg = 0.0;
    }
    int s = order[k];
    double w = weight ? (double)weight[s] : 1.0;
    if (label[s]) g_pos += w;
    else g_neg += w;
  }
  area2 += g_neg * (2.0 * tps + g_pos);
  tps += g_pos;
  fps += g_neg;
  if (tps <= 0.0 || fps <= 0.0) return NAN;
  return area2 / (2.0 * tps * fps);
}

static int labels_as_bytes(const int *y, int n, unsigned char **out, mskx_err *e) {
  unsigned char *b = malloc(n > 0 ? (size_t)n : 1);
  if (!b) return err_set(e, MSKX_ENOMEM, "cannot allocate %d labels", n);
  for (int i = 0; i < n; i++) b[i] = y[i] != 0;
  *out = b;
  return MSKX_OK;
}

int roc_auc(const int *y, const double *score, int n, double *auc, mskx_err *e) {
  *auc = NAN;
  int *order;
  unsigned char *ts, *lab = NULL;
  int rc = sort_by_score_desc(score, n, &order, &ts, e);
  if (rc) return rc;
  rc = labels_as_bytes(y, n, &lab, e);
  if (rc == MSKX_OK) *auc = auc_sorted(order, ts, n, lab, NULL);
  free(order);
  free(ts);
  free(lab);
  return rc;
}

int roc_curve(const int *y, const double *score, int n, roc_points *out, mskx_err *e) {
  *out = (roc_points){0, NULL, NULL, NULL};
  if (n <= 0) return err_set(e, MSKX_EINVAL, "ROC curve of no samples");
  int *order;
  unsigned char *ts;
  int rc = sort_by_score_desc(score, n, &order, &ts, e);
  if (rc) return rc;
  int groups = 0;
  for (int k = 0; k < n; k++) groups += ts[k];
  int m = groups + 1;
  double *fpr = malloc((size_t)m * sizeof *fpr), *tpr = malloc((size_t)m * sizeof *tpr);
  double *thr = malloc((size_t)m * sizeof *thr);
  if (!fpr || !tpr || !thr) {
    free(order);
    free(ts);
    free(fpr);
    free(tpr);
    free(thr);
    return err_set(e, MSKX_ENOMEM, "cannot allocate a ROC curve of %d points", m);
  }
  /* Cumulative counts at the end of each tie group, then normalised. */
  double tps = 0, fps = 0;
  int j = 0;
  fpr[0] = tpr[0] = 0.0;
  thr[0] = score[order[0]] + 1.0;
  for (int k = 0; k < n; k++) {
    if (y[order[k]]) tps += 1;
    else fps += 1;
    if (k == n - 1 || ts[k + 1]) {
      j++;
      fpr[j] = fps;
      tpr[j] = tps;
      thr[j] = score[order[k]];
    }
  }
  for (int k = 0; k < m; k++) {
    fpr[k] = fps > 0 ? fpr[k] / fps : NAN;
    tpr[k] = tps > 0 ? tpr[k] / tps : NAN;
  }
  free(order);
  free(ts);
  *out = (roc_points){m, fpr, tpr, thr};
  return MSKX_OK;
}

void roc_curve_free(roc_points *r) {
  if (!r) return;
  free(r->fpr);
  free(r->tpr);
  free(r->thresholds);
  *r = (roc_points){0, NULL, NULL, NULL};
}

double percentile_linear(const double *sorted, int n, double p) {
  if (n <= 0) return NAN;
  double h = (double)(n - 1) * p / 100.0;
  if (h <= 0) return sorted[0];
  if (h >= n - 1) return sorted[n - 1];
  int lo = (int)floor(h);
  double t = h - lo;
  return sorted[lo] + t * (sorted[lo + 1] - sorted[lo]);
}
