/* Choosing a decision threshold (abnormal when probability > t) on study
 * probabilities: the one maximising Cohen's kappa or Youden's J, or the
 * highest one reaching a sensitivity, among the midpoints between consecutive
 * distinct probabilities. */
#ifndef MSKX_EVAL_THRESHOLD_H
#define MSKX_EVAL_THRESHOLD_H
#include "mskx.h"

enum thr_policy_kind { THR_KAPPA = 0, THR_YOUDEN = 1, THR_SENSITIVITY = 2 };

typedef struct thr_policy {
  int kind;          /* enum thr_policy_kind */
  double target;     /* THR_SENSITIVITY: the sensitivity to reach, in (0, 1] */
} thr_policy;

/* "kappa", "youden" or "sensitivity=0.90". */
int thr_policy_parse(const char *s, thr_policy *out, mskx_err *e);
/* "kappa", "Youden's J" or "sensitivity"; the metric the policy reports. */
const char *thr_policy_metric_name(const thr_policy *p);

/* Candidate thresholds, ascending and distinct: 0.5 (for reference), the
 * midpoints between consecutive distinct probabilities, and the midpoints
 * between 0 and the smallest and between the largest and 1 (so that "all
 * abnormal" and "all normal" are candidates too). *out is malloc'd. */
int thr_candidates(const double *p, int n, double **out, int *m, mskx_err *e);

/* Study-level figures at threshold t. */
typedef struct thr_point {
  double threshold;
  double kappa, youden, sensitivity, specificity;
} thr_point;
thr_point thr_evaluate(const double *p, const int *y, int n, double t);

/* The policy's metric at a point (kappa, J or sensitivity). */
double thr_metric(const thr_policy *pol, const thr_point *pt);

/* Chooses a threshold among thr_candidates: kappa and youden take the
 * largest metric (NaN never wins; ties within 1e-12 go to the candidate
 * closest to 0.5, then the smaller); sensitivity takes the highest threshold
 * whose sensitivity reaches the target. Errors: n == 0, probabilities that
 * are not in [0, 1], and labels of a single class (the metrics are then
 * undefined). */
int thr_choose(const double *p, const int *y, int n, const thr_policy *pol, thr_point *out, mskx_err *e);

#endif
