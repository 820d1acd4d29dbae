/* Feature-level stacking (`mskx ensemble --method stack-features`): per
 * study, every member's pooled penultimate features (the classifier's input,
 * averaged over the study's images) concatenated, standardised as
 * scikit-learn's StandardScaler does, and an L2 logistic regression
 * (logreg_fit, scikit-learn's LogisticRegression objective) whose C is chosen
 * by cross-validation stratified by part and class. The members must not have
 * been trained on the fit split: the in-sample fit says nothing, the
 * out-of-fold figures do. */
#ifndef MSKX_EVAL_STACK_FEATURES_H
#define MSKX_EVAL_STACK_FEATURES_H
#include <stdint.h>
#include <cjson/cJSON.h>
#include "data/dataset.h"
#include "eval/ensemble_fit.h"
#include "infer/predictor.h"

/* C candidates: half decades from 1e-4 to 1e2 (LogisticRegressionCV's
 * default grid is ten log-spaced values over 1e-4 .. 1e4; with standardised
 * features and a few hundred studies the upper end only overfits). */
#define SF_N_C 13
#define SF_C_MIN_LOG10 (-4.0)
#define SF_C_STEP_LOG10 0.5

/* Study features of the fit split, over the studies every member predicted. */
typedef struct sf_data {
  int n, d, m;           /* studies, features (members concatenated), members */
  double *x;             /* n x d */
  int *dims;             /* m feature widths */
  int *y, *part, *study; /* label, part index, index into the split */
  double *member_p;      /* n x m: each member's own study probability */
  double *member_thr;    /* m: each member's threshold */
  const dataset *d_src;
  const ds_split *split;
  long skipped_images;
} sf_data;

/* Members must be model files. Unreadable images are skipped; a study with
 * none left is dropped. */
int sf_collect(const char *const *members, int m, const dataset *d, int split, const predictor_options *po,
               const predict_options *pr, ens_progress_fn fn, void *ctx, sf_data *out, mskx_err *e);
void sf_data_free(sf_data *s);
/* The collected features as CSV (header study,part,label,f1..fD; %.17g),
 * written atomically. */
int sf_write_features_csv(const sf_data *s, const char *path, mskx_err *e);

/* sklearn.preprocessing.StandardScaler: column means and population standard
 * deviations; a constant column gets scale 1. */
void sf_scaler_fit(const double *x, int n, int d, double *mean, double *scale);

/* Folds stratified by (part, class): each stratum's studies shuffled with
 * seed and dealt round-robin, continuing where the previous stratum ended. */
int sf_folds(const int *y, const int *part, int n, int k, uint64_t seed, int *fold, mskx_err *e);

typedef struct sf_fit {
  double C, intercept;
  double *mean, *scale, *coef;  /* d values: the final fit on all studies */
  double *oof;                  /* n out-of-fold probabilities at the chosen C */
  double Cs[SF_N_C], cv_loss[SF_N_C];  /* mean out-of-fold log-loss per candidate */
  int folds;
} sf_fit;

/* The C with the lowest out-of-fold log-loss (ties: the smaller C), the
 * scaler fitted inside each fold on its training studies; then scaler and
 * regression on all studies with that C. */
int sf_fit_run(const sf_data *s, int folds, uint64_t seed, sf_fit *out, mskx_err *e);
void sf_fit_free(sf_fit *f);

/* The ensemble file (method stack-features): members (relative paths),
 * threshold, the stacker (dims, mean, scale, coef, intercept) and fit (may be
 * NULL; ownership taken). */
int sf_write_json(const char *path, const char *const *members, int m, const int *dims, const sf_fit *f, int d,
                  double threshold, cJSON *fit, mskx_err *e);

#endif
