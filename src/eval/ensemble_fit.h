/* Fitting ensembles on the validation split: members' study probabilities,
 * weights for "weighted" (log-loss of the weighted mean over the simplex),
 * an L2 logistic regression over members' logits for "stack" (scikit-learn's
 * LogisticRegression objective, solved by Newton's method in double) with
 * k-fold cross-validation, and the ensemble JSON (docs/predict.md). */
#ifndef MSKX_EVAL_ENSEMBLE_FIT_H
#define MSKX_EVAL_ENSEMBLE_FIT_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "data/dataset.h"
#include "eval/evaluate.h"
#include "infer/predictor.h"

/* sklearn.linear_model.LogisticRegression's default inverse regularisation. */
#define ENS_DEFAULT_C 1.0
#define ENS_DEFAULT_FOLDS 5
/* sklearn.metrics.log_loss clips probabilities to [eps, 1 - eps] with this eps
 * (the float64 machine epsilon in sklearn >= 1.2 would be stricter; a fixed
 * value keeps results independent of the reference's version). */
#define ENS_LOGLOSS_EPS 1e-15

/* Members' study probabilities on one split, over the studies every member
 * predicted. */
typedef struct ens_data {
  int n, m;                 /* studies, members */
  double *p;                /* n x m, row-major: p[i*m + j] = member j on study i */
  double *thr;              /* n x m: the threshold member j decided study i with */
  int *y;                   /* labels */
  int *study;               /* index into the split's studies */
  const ds_split *split;
} ens_data;

typedef void (*ens_progress_fn)(void *ctx, int member, int n_members, int done, int total);

/* Loads each member (with po) and predicts every study of c->split; a study
 * that some member could not predict is left out. */
int ens_collect(const char *const *members, int m, const dataset *d, const eval_config *c,
                const predictor_options *po, ens_progress_fn progress, void *ctx, ens_data *out, mskx_err *e);
void ens_data_free(ens_data *d);

/* Mean binary log-loss (sklearn.metrics.log_loss with ENS_LOGLOSS_EPS clipping). */
double ens_log_loss(const double *p, const int *y, int n);

/* How well one set of study probabilities does: AUROC (NaN with one class
 * only), log-loss (ens_log_loss) and Cohen's kappa of the decisions
 * p[i] > thr[i] (thr NULL: p[i] > thr1 for every study). */
typedef struct ens_scores {
  double auc, log_loss, kappa;
} ens_scores;
int ens_score(const double *p, const double *thr, double thr1, const int *y, int n, ens_scores *out, mskx_err *e);
/* ens_score of each member j of p (n x m, row-major) against y: member j
 * decides study i with thr[i*m + j] (n x m, as ens_data holds them) or, when
 * thr is NULL, with member_thr[j]. out holds m entries. */
int ens_score_members(const double *p, const double *thr, const double *member_thr, const int *y, int n, int m,
                      ens_scores *out, mskx_err *e);
/* {"auc", "log_loss", "kappa"}, non-finite values as null; NULL when out of memory. */
cJSON *ens_scores_json(const ens_scores *s);

/* Stacking features: logit(clamp(p, STACK_CLAMP, 1 - STACK_CLAMP)), as the
 * predictor computes them. x receives n x m values. */
void ens_stack_features(const double *p, int n, int m, double *x);

/* L2-regularised logistic regression as sklearn's LogisticRegression(C)
 * (lbfgs/newton-cg solvers): minimises
 *   C * sum_i log(1 + exp(-s_i (x_i . coef + intercept))) + |coef|^2 / 2,
 * s_i = +-1, intercept not penalised, by Newton steps with backtracking until
 * the gradient's largest component is below 1e-10 (or 100 steps). x is n x d
 * row-major; y holds both classes. *iters (may be NULL) receives the steps. */
int logreg_fit(const double *x, const int *y, int n, int d, double C, double *coef, double *intercept, int *iters,
               mskx_err *e);

/* Weights for method "weighted": w on the simplex minimising the log-loss of
 * q_i = sum_j w_j p_ij (convex in w). Parametrised as w = softmax(a) and
 * solved by gradient descent with Armijo backtracking from equal weights,
 * until the loss changes by less than 1e-13 or 20000 steps. */
int ens_fit_weights(const double *p, const int *y, int n, int m, double *w, int *iters, mskx_err *e);

/* Cross-validated stacking: stratified k folds (studies of each class
 * shuffled with seed and dealt round-robin), a fit on k-1 folds predicts
 * the held-out fold; oof (n values, may be NULL) receives the out-of-fold
 * probabilities. Then coef/intercept are fit on all n studies. Errors: k < 2,
 * or fewer than k studies of a class. */
int ens_fit_stack(const double *p, const int *y, int n, int m, int folds, uint64_t seed, double C, double *coef,
                  double *intercept, double *oof, mskx_err *e);

/* The ensemble's study probabilities for a method on the collected data
 * (ensemble_combine per study; w and coef may be NULL where unused). */
int ens_combine_all(const ens_data *d, ens_method method, const double *w, const double *coef, double intercept,
                    double *out, mskx_err *e);

/* target expressed relative to the folder dir when both share a folder below
 * "/" (with "../" steps), else target's absolute path. Both must exist. */
int ens_relative_path(const char *dir, const char *target, char *out, size_t n, mskx_err *e);

/* One member of the file to write. */
typedef struct ens_member_out {
  const char *path;          /* as given; stored relative to the file's folder when possible */
  double weight;
} ens_member_out;

/* Writes the ensemble JSON (format mskx-ensemble-1) atomically: method,
 * threshold, members, "stacker" for stack, and fit (may be NULL; an object
 * describing how it was fitted; ownership taken). */
int ens_write_json(const char *path, const char *method, double threshold, const ens_member_out *members, int m,
                   const double *coef, double intercept, cJSON *fit, mskx_err *e);
/* The same with any "stacker" object (may be NULL; ownership taken). */
int ens_write_json_stacker(const char *path, const char *method, double threshold, const ens_member_out *members,
                           int m, cJSON *stacker, cJSON *fit, mskx_err *e);

#endif
