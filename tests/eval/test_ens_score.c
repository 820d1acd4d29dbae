/* Member and ensemble scores (eval/ensemble_fit.h: ens_score,
 * ens_score_members, ens_scores_json) against scikit-learn on the same
 * numbers: roc_auc_score, log_loss and cohen_kappa_score. */
#include <cjson/cJSON.h>
#include "eval/ensemble_fit.h"
#include "test.h"

/* sklearn 1.x: roc_auc_score(y, p), log_loss(y, p),
 * cohen_kappa_score(y, p > thr) and cohen_kappa_score(y, p > 0.5). */
static const double P[8] = {0.1, 0.4, 0.35, 0.8, 0.7, 0.2, 0.9, 0.55};
static const int Y[8] = {0, 0, 1, 1, 0, 0, 1, 1};
static const double THR[8] = {0.5, 0.3, 0.5, 0.5, 0.75, 0.5, 0.5, 0.6};
#define SK_AUC 0.8125
#define SK_LOGLOSS 0.5024332109112871
#define SK_KAPPA_THR 0.25
#define SK_KAPPA_HALF 0.5

TEST(score_matches_sklearn) {
  ens_scores s;
  mskx_err e = {0};
  CHECK_OK(ens_score(P, THR, 0, Y, 8, &s, &e), &e);
  CHECK_NEAR(s.auc, SK_AUC, 1e-12);
  CHECK_NEAR(s.log_loss, SK_LOGLOSS, 1e-12);
  CHECK_NEAR(s.kappa, SK_KAPPA_THR, 1e-12);
  CHECK_OK(ens_score(P, NULL, 0.5, Y, 8, &s, &e), &e);
  CHECK_NEAR(s.kappa, SK_KAPPA_HALF, 1e-12);
}

TEST(one_class_has_no_auc) {
  const int y1[3] = {1, 1, 1};
  ens_scores s;
  mskx_err e = {0};
  CHECK_OK(ens_score(P, NULL, 0.5, y1, 3, &s, &e), &e);
  CHECK(isnan(s.auc));
  CHECK(isfinite(s.log_loss));
  cJSON *o = ens_scores_json(&s);
  CHECK(o && cJSON_IsNull(cJSON_GetObjectItem(o, "auc")) && cJSON_IsNumber(cJSON_GetObjectItem(o, "log_loss")));
  cJSON_Delete(o);
}

TEST(members_are_columns) {
  /* Two members: column 0 is P with per-study thresholds THR, column 1 is 1 - P. */
  double p[16], thr[16], q[8];
  for (int i = 0; i < 8; i++) {
    p[2 * i] = P[i], p[2 * i + 1] = 1 - P[i];
    thr[2 * i] = THR[i], thr[2 * i + 1] = 0.5;
    q[i] = 1 - P[i];
  }
  ens_scores s[2], want;
  mskx_err e = {0};
  CHECK_OK(ens_score_members(p, thr, NULL, Y, 8, 2, s, &e), &e);
  CHECK_NEAR(s[0].auc, SK_AUC, 1e-12);
  CHECK_NEAR(s[0].kappa, SK_KAPPA_THR, 1e-12);
  CHECK_OK(ens_score(q, NULL, 0.5, Y, 8, &want, &e), &e);
  CHECK_NEAR(s[1].auc, 1 - SK_AUC, 1e-12);
  CHECK_NEAR(s[1].log_loss, want.log_loss, 0);
  CHECK_NEAR(s[1].kappa, want.kappa, 0);
  /* One threshold per member instead of per study. */
  const double mt[2] = {0.5, 0.5};
  CHECK_OK(ens_score_members(p, NULL, mt, Y, 8, 2, s, &e), &e);
  CHECK_NEAR(s[0].kappa, SK_KAPPA_HALF, 1e-12);
}

TEST_MAIN()
