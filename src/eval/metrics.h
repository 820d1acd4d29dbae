/* Binary classification metrics (1 = abnormal) defined exactly as scikit-learn
 * defines them, and the per-part evaluation of study predictions with
 * bootstrap confidence intervals (implemented in bootstrap.c). */
#ifndef MSKX_EVAL_METRICS_H
#define MSKX_EVAL_METRICS_H
#include <stdint.h>
#include "mskx.h"

/* ---- point metrics ---------------------------------------------------- */

/* Counts are int64 so that bootstrap multiplicities fit. */
typedef struct confusion {
  int64_t tn, fp, fn, tp;
} confusion;

/* y_true and y_pred hold 0 or 1 (anything non-zero counts as 1). */
confusion confusion_from_labels(const int *y_true, const int *y_pred, int n);

/* Ratios with scikit-learn's zero_division=0: a metric whose denominator is
 * zero is 0 (precision with no predicted positives, sensitivity with no true
 * positives, specificity with no true negatives, F1 with neither). Specificity
 * is sklearn's recall_score(pos_label=0). Accuracy of an empty matrix is NaN. */
double metric_accuracy(const confusion *c);
double metric_sensitivity(const confusion *c);
double metric_specificity(const confusion *c);
double metric_precision(const confusion *c);
double metric_f1(const confusion *c);
/* Cohen's kappa as sklearn.metrics.cohen_kappa_score: 1 - observed/expected
 * disagreement. When truth and predictions are all one and the same class the
 * expected disagreement is 0 and sklearn (1.2) returns NaN; so do we. */
double metric_kappa(const confusion *c);

/* AUROC as sklearn.metrics.roc_auc_score: trapezoidal area under the ROC
 * curve whose points are the distinct score values (tied scores form one
 * step, i.e. count one half). NaN when y holds only one class. */
int roc_auc(const int *y, const double *score, int n, double *auc, mskx_err *e);

/* The ROC curve as sklearn.metrics.roc_curve(drop_intermediate=False), for
 * plotting: point 0 is (0, 0) with threshold max(score) + 1 (sklearn < 1.3;
 * newer sklearn writes +inf there), then one point per distinct score in
 * decreasing order, with threshold = that score. fpr (tpr) is NaN throughout
 * when there are no negatives (positives), as in sklearn. Arrays are
 * malloc'd, *m points each; release with roc_curve_free. */
typedef struct roc_points {
  int m;
  double *fpr, *tpr, *thresholds;
} roc_points;
int roc_curve(const int *y, const double *score, int n, roc_points *out, mskx_err *e);
void roc_curve_free(roc_points *r);

/* AUROC from a score order that is already sorted by decreasing score.
 * order[k] is the study at rank k, tie_start[k] is 1 when its score differs
 * from rank k-1's (tie_start[0] = 1), label[study] is 0/1, and weight[study]
 * is its multiplicity (NULL = 1 each). Used by bootstrap resamples so they
 * need no sort. NaN when either class has zero total weight. */
/* Sorts 0..n-1 by decreasing score (ties by index) into malloc'd *order and
 * fills malloc'd *tie_start as auc_sorted wants it. NaN scores are refused. */
int sort_by_score_desc(const double *score, int n, int **order, unsigned char **tie_start, mskx_err *e);
double auc_sorted(const int *order, const unsigned char *tie_start, int m, const unsigned char *label,
                  const int *weight);

/* Percentile p in [0, 100] of sorted[0..n) with linear interpolation between
 * closest ranks (numpy.percentile's default "linear" method): position
 * h = (n-1) p/100, value sorted[floor h] + (h - floor h)(sorted[floor h + 1] -
 * sorted[floor h]). NaN when n == 0. */
double percentile_linear(const double *sorted, int n, double p);

/* ---- evaluation of study predictions ---------------------------------- */

/* One study: borrowed strings. score is a probability in [0, 1] or a 0/1
 * decision; label is 0 (normal) or 1 (abnormal). part is the body part
 * (any name, usually XR_*); studies are grouped by it. */
typedef struct study_pred {
  const char *study;
  const char *part;
  double score;
  int label;
} study_pred;

/* Metrics in the order of the JSON keys. */
enum metric_id {
  METRIC_KAPPA,
  METRIC_AUC,
  METRIC_ACCURACY,
  METRIC_SENSITIVITY,
  METRIC_SPECIFICITY,
  METRIC_PRECISION,
  METRIC_F1,
  METRIC_COUNT
};
/* JSON key of each metric: "kappa", "auc", "accuracy", ... */
extern const char *const metric_names[METRIC_COUNT];

/* Decision rule of the MURA paper: abnormal when probability > 0.5. */
#define EVAL_DEFAULT_THRESHOLD 0.5
/* Bootstrap resamples: 2000 keeps the Monte Carlo error of a 95% percentile
 * interval's ends well below the third decimal of kappa. */
#define EVAL_DEFAULT_BOOT 2000
#define EVAL_DEFAULT_SEED 20171220u

typedef struct eval_options {
  double threshold;   /* abnormal when score > threshold (strictly) */
  int n_boot;         /* bootstrap resamples; 0 = no confidence intervals */
  uint64_t seed;      /* the resamples depend only on seed, not on threads */
  int decisions_only; /* scores are 0/1 decisions: AUROC is not reported */
} eval_options;
void eval_options_default(eval_options *o);

/* Results of one group of studies (one part, or all of them). value[] holds
 * the point estimates (NaN = undefined or not reported), ci_lo/ci_hi the
 * 2.5th and 97.5th bootstrap percentiles (NaN without resamples), and
 * boot_undefined[] how many resamples were skipped because the metric was
 * undefined in them (zero denominator, one class for AUROC). */
typedef struct eval_group {
  char *part; /* "overall" for the overall group */
  int n_studies;
  int n_abnormal;
  confusion cm;
  double value[METRIC_COUNT];
  double ci_lo[METRIC_COUNT], ci_hi[METRIC_COUNT];
  int boot_undefined[METRIC_COUNT];
} eval_group;

typedef struct eval_results {
  eval_options opt;
  int n_parts;
  eval_group *parts; /* sorted by part name */
  eval_group overall;
} eval_results;

/* Evaluates n studies: point metrics per part and overall, and percentile
 * bootstrap CIs. Each resample draws every part's studies with replacement
 * within that part (n_p draws from part p); per-part metrics come from that
 * part's draws and the overall metrics from all of them, so the overall
 * figure is stratified by part. opt NULL = defaults. */
int metrics_evaluate(const study_pred *s, int n, const eval_options *opt, eval_results **out, mskx_err *e);
void eval_results_free(eval_results *r);

#endif
