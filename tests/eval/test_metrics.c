/* Metrics vs scikit-learn/numpy (reference data from tests/tools/sklearn_metrics.py),
 * bootstrap properties, the paper table vs data/mura_paper.json, the JSON
 * shape, and the study CSV parser on malformed and hostile input. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>
#include "core/rng.h"
#include "core/util.h"
#include "eval/bootstrap.h"
#include "eval/metrics.h"
#include "eval/paper.h"
#include "eval/studyset.h"
#include "eval/table.h"
#include "test.h"

#define TOL 1e-9

/* ---- fixtures --------------------------------------------------------- */

static const char *repo_root(void) {
  static char root[4096];
  const char *env = getenv("MSKX_ROOT");
  if (env) return env;
  snprintf(root, sizeof root, "%s", __FILE__);
  char *cut = strstr(root, "tests/eval/");
  if (cut) *cut = 0;
  if (!root[0]) strcpy(root, ".");
  return root;
}

static char tmp_dir[4096];
static void remove_tmp(void) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmp_dir);
}

/* A private scratch folder (under $MSKX_TMP when run by tests/run). */
static const char *scratch(void) {
  if (tmp_dir[0]) return tmp_dir;
  const char *base = getenv("MSKX_TMP") ? getenv("MSKX_TMP") : "/tmp";
  snprintf(tmp_dir, sizeof tmp_dir, "%s/test_metrics.XXXXXX", base);
  if (!mkdtemp(tmp_dir)) {
    tmp_dir[0] = 0;
    return NULL;
  }
  atexit(remove_tmp);
  return tmp_dir;
}

/* Runs the sklearn tool once; returns the folder with its files or NULL. */
static const char *reference_dir(void) {
  static int done, ok;
  if (!done) {
    done = 1;
    const char *d = scratch();
    char cmd[8400];
    ok = d && snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/sklearn_metrics.py' '%s' >/dev/null",
                       repo_root(), d) < (int)sizeof cmd &&
         system(cmd) == 0;
  }
  return ok ? tmp_dir : NULL;
}

/* Reads a line "TAG v v v ..." into a malloc'd array of doubles. */
static int read_vec(FILE *f, const char *tag, double **out, int want) {
  char t[16];
  if (fscanf(f, "%15s", t) != 1 || strcmp(t, tag) != 0) return -1;
  double *v = malloc((size_t)(want > 0 ? want : 1) * sizeof *v);
  for (int i = 0; i < want; i++) {
    char w[64];
    if (fscanf(f, "%63s", w) != 1) {
      free(v);
      return -1;
    }
    v[i] = strtod(w, NULL);
  }
  *out = v;
  return 0;
}

static int same(double a, double b, double tol) {
  if (isnan(a) || isnan(b)) return isnan(a) && isnan(b);
  if (isinf(a) || isinf(b)) return a == b;
  return fabs(a - b) <= tol;
}

/* ---- against scikit-learn --------------------------------------------- */

typedef struct ref_case {
  char name[96];
  int n, m;
  double thr;
  double *y, *s, *cm, *ref, *fpr, *tpr, *thr_roc;
} ref_case;

static void case_free(ref_case *c) {
  free(c->y);
  free(c->s);
  free(c->cm);
  free(c->ref);
  free(c->fpr);
  free(c->tpr);
  free(c->thr_roc);
  memset(c, 0, sizeof *c);
}

static int read_case(FILE *f, ref_case *c) {
  memset(c, 0, sizeof *c);
  char tag[16];
  if (fscanf(f, "%15s %95s %d %lf", tag, c->name, &c->n, &c->thr) != 4 || strcmp(tag, "case")) return -1;
  if (read_vec(f, "y", &c->y, c->n) || read_vec(f, "s", &c->s, c->n) || read_vec(f, "cm", &c->cm, 4) ||
      read_vec(f, "ref", &c->ref, 7))
    return -1;
  if (fscanf(f, "%15s %d", tag, &c->m) != 2 || strcmp(tag, "roc")) return -1;
  if (read_vec(f, "fpr", &c->fpr, c->m) || read_vec(f, "tpr", &c->tpr, c->m) || read_vec(f, "thr", &c->thr_roc, c->m))
    return -1;
  return 0;
}

/* Compares every metric of one case; returns a message or NULL. */
static const char *check_case(const ref_case *c, char *why, size_t n) {
  int *y = malloc((size_t)c->n * sizeof *y), *yp = malloc((size_t)c->n * sizeof *yp);
  for (int i = 0; i < c->n; i++) {
    y[i] = (int)c->y[i];
    yp[i] = c->s[i] > c->thr;
  }
  confusion cm = confusion_from_labels(y, yp, c->n);
  double mine[7] = {metric_accuracy(&cm),    metric_precision(&cm), metric_sensitivity(&cm),
                    metric_specificity(&cm), metric_f1(&cm),        metric_kappa(&cm)};
  static const char *names[7] = {"accuracy", "precision", "recall", "specificity", "f1", "kappa", "auc"};
  mskx_err e = {0, ""};
  roc_points r = {0};
  why[0] = 0;
  if (roc_auc(y, c->s, c->n, &mine[6], &e) || roc_curve(y, c->s, c->n, &r, &e))
    snprintf(why, n, "%s: %s", c->name, e.msg);
  else if (cm.tn != c->cm[0] || cm.fp != c->cm[1] || cm.fn != c->cm[2] || cm.tp != c->cm[3])
    snprintf(why, n, "%s: confusion %lld %lld %lld %lld vs sklearn %g %g %g %g", c->name, (long long)cm.tn,
             (long long)cm.fp, (long long)cm.fn, (long long)cm.tp, c->cm[0], c->cm[1], c->cm[2], c->cm[3]);
  for (int k = 0; k < 7 && !why[0]; k++)
    if (!same(mine[k], c->ref[k], TOL))
      snprintf(why, n, "%s: %s %.17g vs sklearn %.17g", c->name, names[k], mine[k], c->ref[k]);
  if (!why[0] && r.m != c->m) snprintf(why, n, "%s: %d ROC points vs sklearn %d", c->name, r.m, c->m);
  for (int k = 0; k < r.m && !why[0]; k++) {
    /* sklearn >= 1.3 puts +inf where 1.2 (and we) put max + 1. */
    int thr_ok = same(r.thresholds[k], c->thr_roc[k], TOL) || (k == 0 && isinf(c->thr_roc[0]));
    if (!same(r.fpr[k], c->fpr[k], TOL) || !same(r.tpr[k], c->tpr[k], TOL) || !thr_ok)
      snprintf(why, n, "%s: ROC point %d (%g, %g, %g) vs sklearn (%g, %g, %g)", c->name, k, r.fpr[k], r.tpr[k],
               r.thresholds[k], c->fpr[k], c->tpr[k], c->thr_roc[k]);
  }
  roc_curve_free(&r);
  free(y);
  free(yp);
  return why[0] ? why : NULL;
}

TEST(metrics_match_sklearn) {
  const char *d = reference_dir();
  CHECKF(d, "tests/tools/sklearn_metrics.py failed (needs /usr/bin/python3 with sklearn)");
  char path[4200];
  snprintf(path, sizeof path, "%s/metrics_cases.txt", d);
  FILE *f = fopen(path, "r");
  CHECKF(f, "cannot open %s", path);
  int count = 0, kinds = 0;
  char why[512];
  ref_case c;
  while (read_case(f, &c) == 0) {
    const char *bad = check_case(&c, why, sizeof why);
    kinds += isnan(c.ref[5]) + isnan(c.ref[6]); /* degenerate cases really occur */
    case_free(&c);
    if (bad) {
      fclose(f);
      FAILF("%s", bad);
    }
    count++;
  }
  case_free(&c);
  fclose(f);
  CHECKF(count > 400, "only %d cases read", count);
  CHECKF(kinds > 20, "only %d undefined kappa/AUROC cases", kinds);
}

TEST(percentile_matches_numpy) {
  const char *d = reference_dir();
  CHECKF(d, "tests/tools/sklearn_metrics.py failed");
  char path[4200];
  snprintf(path, sizeof path, "%s/percentile_cases.txt", d);
  FILE *f = fopen(path, "r");
  CHECKF(f, "cannot open %s", path);
  int n, count = 0;
  char tag[16];
  while (fscanf(f, "%15s %d", tag, &n) == 2) {
    double *x, *ref;
    if (read_vec(f, "x", &x, n) || read_vec(f, "ref", &ref, 2)) break;
    int und;
    double lo, hi;
    bootstrap_ci(x, n, &lo, &hi, &und);
    double r0 = ref[0], r1 = ref[1];
    free(x);
    free(ref);
    CHECKF(same(lo, r0, TOL) && same(hi, r1, TOL) && und == 0, "n=%d: [%.17g, %.17g] vs numpy [%.17g, %.17g]", n,
           lo, hi, r0, r1);
    count++;
  }
  fclose(f);
  CHECKF(count == 18, "read %d percentile cases", count);
}

/* ---- bootstrap -------------------------------------------------------- */

static const char *const parts7[] = {"XR_ELBOW", "XR_FINGER", "XR_FOREARM", "XR_HAND",
                                     "XR_HUMERUS", "XR_SHOULDER", "XR_WRIST"};

/* n studies over 7 parts, scores informative about labels. */
static study_pred *synth(int n, uint64_t seed) {
  study_pred *s = malloc((size_t)n * sizeof *s);
  rng r;
  rng_seed(&r, seed);
  for (int i = 0; i < n; i++) {
    int y = rng_uniform(&r) < 0.45;
    double z = rng_normal(&r) * 1.2 + (y ? 1.2 : -1.0);
    s[i] = (study_pred){"study", parts7[i % 7], 1.0 / (1.0 + exp(-z)), y};
  }
  return s;
}

TEST(auc_from_counts_equals_auc_of_expanded_sample) {
  rng r;
  rng_seed(&r, 7);
  for (int trial = 0; trial < 50; trial++) {
    int n = 1 + (int)rng_below(&r, 60);
    double *s = malloc((size_t)n * sizeof *s);
    unsigned char *lab = malloc((size_t)n);
    int *w = calloc((size_t)n, sizeof *w), *order;
    unsigned char *ts;
    for (int i = 0; i < n; i++) {
      s[i] = (double)rng_below(&r, 6) / 5.0; /* heavy ties */
      lab[i] = rng_uniform(&r) < 0.5;
    }
    for (int i = 0; i < n; i++) w[rng_below(&r, (uint64_t)n)]++;
    mskx_err e;
    CHECK_OK(sort_by_score_desc(s, n, &order, &ts, &e), &e);
    double fast = auc_sorted(order, ts, n, lab, w);
    /* The same resample materialised and scored from scratch. */
    int m = 0, *y2 = malloc((size_t)n * sizeof *y2);
    double *s2 = malloc((size_t)n * sizeof *s2), slow;
    for (int i = 0; i < n; i++)
      for (int k = 0; k < w[i]; k++) {
        y2[m] = lab[i];
        s2[m++] = s[i];
      }
    CHECK_OK(roc_auc(y2, s2, m, &slow, &e), &e);
    CHECKF(same(fast, slow, 1e-12), "trial %d: %.17g vs %.17g", trial, fast, slow);
    free(s);
    free(lab);
    free(w);
    free(order);
    free(ts);
    free(y2);
    free(s2);
  }
}

TEST(bootstrap_is_deterministic_and_contains_estimate) {
  int n = 700;
  study_pred *s = synth(n, 1);
  eval_options o;
  eval_options_default(&o);
  o.n_boot = 1000;
  eval_results *a, *b, *c;
  mskx_err e;
  CHECK_OK(metrics_evaluate(s, n, &o, &a, &e), &e);
  CHECK_OK(metrics_evaluate(s, n, &o, &b, &e), &e);
  o.seed++;
  CHECK_OK(metrics_evaluate(s, n, &o, &c, &e), &e);
  int differs = 0;
  for (int g = 0; g <= a->n_parts; g++) {
    const eval_group *ga = g < a->n_parts ? &a->parts[g] : &a->overall;
    const eval_group *gb = g < b->n_parts ? &b->parts[g] : &b->overall;
    const eval_group *gc = g < c->n_parts ? &c->parts[g] : &c->overall;
    for (int k = 0; k < METRIC_COUNT; k++) {
      CHECKF(ga->ci_lo[k] == gb->ci_lo[k] && ga->ci_hi[k] == gb->ci_hi[k], "%s %s differs between runs", ga->part,
             metric_names[k]);
      CHECKF(ga->ci_lo[k] <= ga->value[k] && ga->value[k] <= ga->ci_hi[k], "%s %s: %g not in [%g, %g]", ga->part,
             metric_names[k], ga->value[k], ga->ci_lo[k], ga->ci_hi[k]);
      CHECKF(ga->boot_undefined[k] == 0, "%s %s: %d undefined resamples", ga->part, metric_names[k],
             ga->boot_undefined[k]);
      differs |= ga->ci_lo[k] != gc->ci_lo[k];
    }
  }
  CHECKF(differs, "another seed gave the same intervals");
  CHECK_EQ_INT(a->n_parts, 7);
  CHECK_EQ_INT(a->overall.n_studies, n);
  eval_results_free(a);
  eval_results_free(b);
  eval_results_free(c);
  free(s);
}

TEST(bootstrap_draw_keeps_stratum_totals) {
  int members_a[] = {0, 2, 4, 6}, members_b[] = {1, 3, 5, 7, 8};
  rng r = bootstrap_stream(3, 0, 0);
  for (int t = 0; t < 100; t++) {
    int count[9] = {0};
    bootstrap_draw(&r, members_a, 4, count);
    bootstrap_draw(&r, members_b, 5, count);
    CHECK_EQ_INT(count[0] + count[2] + count[4] + count[6], 4);
    CHECK_EQ_INT(count[1] + count[3] + count[5] + count[7] + count[8], 5);
  }
}

/* Part A always right, part B always wrong: with stratified resampling the
 * overall accuracy is n_A/n in every resample, so its interval is a point. */
TEST(overall_bootstrap_is_stratified_by_part) {
  int na = 30, nb = 70, n = na + nb;
  study_pred *s = malloc((size_t)n * sizeof *s);
  for (int i = 0; i < n; i++) {
    int y = i % 2, right = i < na;
    s[i] = (study_pred){"s", right ? "XR_A" : "XR_B", right == y ? 0.9 : 0.1, y};
  }
  eval_options o;
  eval_options_default(&o);
  eval_results *r;
  mskx_err e;
  CHECK_OK(metrics_evaluate(s, n, &o, &r, &e), &e);
  CHECK_NEAR(r->overall.value[METRIC_ACCURACY], 0.3, 1e-15);
  CHECK_NEAR(r->overall.ci_lo[METRIC_ACCURACY], 0.3, 1e-15);
  CHECK_NEAR(r->overall.ci_hi[METRIC_ACCURACY], 0.3, 1e-15);
  CHECK_EQ_INT(r->parts[0].n_studies, na);
  CHECK_EQ_INT(r->parts[1].n_studies, nb);
  eval_results_free(r);
  free(s);
}

static double ci_width(const eval_group *g, int k) { return g->ci_hi[k] - g->ci_lo[k]; }

TEST(ci_width_matches_theory_and_shrinks_with_n) {
  eval_options o;
  eval_options_default(&o);
  mskx_err e;
  eval_results *small, *big;
  study_pred *s1 = synth(200, 11), *s2 = synth(3200, 12);
  CHECK_OK(metrics_evaluate(s1, 200, &o, &small, &e), &e);
  CHECK_OK(metrics_evaluate(s2, 3200, &o, &big, &e), &e);
  /* Accuracy is a proportion: a 95% interval is ~ 2 * 1.96 * sqrt(p(1-p)/n)
   * (stratification only removes the little between-part variance). */
  double p = big->overall.value[METRIC_ACCURACY];
  double normal = 2 * 1.959964 * sqrt(p * (1 - p) / 3200);
  double w = ci_width(&big->overall, METRIC_ACCURACY);
  CHECKF(fabs(w / normal - 1) < 0.15, "accuracy CI width %g vs normal approximation %g", w, normal);
  for (int k = 0; k < METRIC_COUNT; k++) {
    double ratio = ci_width(&small->overall, k) / ci_width(&big->overall, k);
    CHECKF(ratio > 3.0 && ratio < 5.3, "%s: width ratio n=200 / n=3200 is %g, expected ~4", metric_names[k], ratio);
  }
  eval_results_free(small);
  eval_results_free(big);
  free(s1);
  free(s2);
}

TEST(bootstrap_3200_studies_2000_resamples_is_fast) {
  study_pred *s = synth(3200, 5);
  eval_options o;
  eval_options_default(&o);
  o.n_boot = 2000;
  eval_results *r;
  mskx_err e;
  double t0 = now_seconds();
  CHECK_OK(metrics_evaluate(s, 3200, &o, &r, &e), &e);
  double dt = now_seconds() - t0;
  printf("# metrics_evaluate: 3200 studies, 7 parts, 2000 resamples, all metrics: %.3f s\n", dt);
  /* Target well under 1 s; 2 s leaves room for a loaded shared machine. */
  CHECKF(dt < 2.0, "took %.3f s", dt);
  eval_results_free(r);
  free(s);
}

/* Per-part and overall results agree with the plain metric functions. */
TEST(results_agree_with_point_metrics) {
  int n = 500;
  study_pred *s = synth(n, 9);
  eval_options o;
  eval_options_default(&o);
  o.n_boot = 0;
  o.threshold = 0.4;
  eval_results *r;
  mskx_err e;
  CHECK_OK(metrics_evaluate(s, n, &o, &r, &e), &e);
  int *y = malloc((size_t)n * sizeof *y), *yp = malloc((size_t)n * sizeof *yp);
  double *sc = malloc((size_t)n * sizeof *sc);
  for (int g = 0; g <= r->n_parts; g++) {
    const eval_group *gr = g < r->n_parts ? &r->parts[g] : &r->overall;
    int m = 0;
    for (int i = 0; i < n; i++)
      if (g == r->n_parts || !strcmp(s[i].part, gr->part)) {
        y[m] = s[i].label;
        yp[m] = s[i].score > 0.4;
        sc[m++] = s[i].score;
      }
    confusion c = confusion_from_labels(y, yp, m);
    double auc;
    CHECK_OK(roc_auc(y, sc, m, &auc, &e), &e);
    CHECK_EQ_INT(gr->n_studies, m);
    CHECK(gr->cm.tn == c.tn && gr->cm.fp == c.fp && gr->cm.fn == c.fn && gr->cm.tp == c.tp);
    CHECK_NEAR(gr->value[METRIC_KAPPA], metric_kappa(&c), 1e-15);
    CHECK_NEAR(gr->value[METRIC_AUC], auc, 1e-12);
    CHECK_NEAR(gr->value[METRIC_F1], metric_f1(&c), 1e-15);
    CHECK(isnan(gr->ci_lo[METRIC_KAPPA]));
  }
  free(y);
  free(yp);
  free(sc);
  eval_results_free(r);
  free(s);
}

TEST(decisions_and_degenerate_parts) {
  /* XR_ONE has only abnormal studies, all called abnormal: kappa and AUROC
   * are undefined there, and every resample of it is skipped and counted. */
  study_pred s[40];
  for (int i = 0; i < 40; i++) {
    int one = i < 10;
    s[i] = (study_pred){"s", one ? "XR_ONE" : "XR_TWO", one ? 1.0 : (double)(i % 3 == 0), one ? 1 : i % 2};
  }
  eval_options o;
  eval_options_default(&o);
  o.n_boot = 1000;
  o.decisions_only = 1;
  eval_results *r;
  mskx_err e;
  CHECK_OK(metrics_evaluate(s, 40, &o, &r, &e), &e);
  const eval_group *one = &r->parts[0];
  CHECK(!strcmp(one->part, "XR_ONE"));
  CHECK(isnan(one->value[METRIC_KAPPA]) && isnan(one->ci_lo[METRIC_KAPPA]));
  CHECK_EQ_INT(one->boot_undefined[METRIC_KAPPA], 1000);
  CHECK_EQ_INT(one->boot_undefined[METRIC_SPECIFICITY], 1000);
  CHECK_NEAR(one->value[METRIC_SPECIFICITY], 0.0, 0); /* sklearn's zero_division=0 */
  CHECK(isnan(r->overall.value[METRIC_AUC]) && isnan(r->overall.ci_hi[METRIC_AUC]));
  CHECK(isfinite(r->overall.ci_lo[METRIC_KAPPA]));
  cJSON *j = eval_results_to_json(r);
  CHECK(j);
  cJSON *ov = cJSON_GetObjectItem(j, "overall"), *p1 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "parts"), "XR_ONE");
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(ov, "auc")));
  CHECK(cJSON_IsNull(cJSON_GetArrayItem(cJSON_GetObjectItem(ov, "auc_ci"), 1)));
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(p1, "kappa")));
  static const char *keys[] = {"kappa", "kappa_ci", "auc", "auc_ci", "accuracy", "accuracy_ci", "sensitivity",
                               "sensitivity_ci", "specificity", "specificity_ci", "precision", "precision_ci",
                               "f1", "f1_ci", "confusion", "n_studies", "threshold"};
  for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) CHECKF(cJSON_HasObjectItem(ov, keys[k]), "no %s", keys[k]);
  CHECK_EQ_INT(cJSON_GetArraySize(ov), (int)(sizeof keys / sizeof *keys));
  cJSON *cm = cJSON_GetObjectItem(ov, "confusion");
  CHECK_EQ_INT(cJSON_GetArrayItem(cJSON_GetArrayItem(cm, 1), 1)->valueint, r->overall.cm.tp);
  CHECK_EQ_INT(cJSON_GetArrayItem(cJSON_GetArrayItem(cm, 0), 1)->valueint, r->overall.cm.fp);
  char *text;
  CHECK_OK(eval_results_format_table(r, &text, &e), &e);
  CHECK(strstr(text, "XR_ONE") && strstr(text, "n/a"));
  free(text);
  cJSON_Delete(j);
  eval_results_free(r);
}

TEST(evaluate_rejects_bad_input) {
  study_pred s[2] = {{"a", "XR_A", 0.5, 1}, {"b", "XR_A", 0.5, 2}};
  eval_results *r;
  mskx_err e;
  CHECK(metrics_evaluate(s, 2, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "label 2"));
  s[1].label = 0;
  s[1].score = NAN;
  CHECK(metrics_evaluate(s, 2, NULL, &r, &e) == MSKX_EINVAL && strstr(e.msg, "NaN"));
  CHECK(metrics_evaluate(s, 0, NULL, &r, &e) == MSKX_EINVAL);
}

/* ---- the paper's numbers ---------------------------------------------- */

static int kappa_matches(cJSON *arr, const paper_kappa *k) {
  return cJSON_GetArraySize(arr) == 3 && cJSON_GetArrayItem(arr, 0)->valuedouble == k->kappa &&
         cJSON_GetArrayItem(arr, 1)->valuedouble == k->lo && cJSON_GetArrayItem(arr, 2)->valuedouble == k->hi;
}

TEST(paper_table_matches_shipped_json) {
  char path[4200];
  snprintf(path, sizeof path, "%s/data/mura_paper.json", repo_root());
  unsigned char *data;
  size_t len;
  mskx_err e;
  CHECK_OK(file_read_all(path, 0, &data, &len, &e), &e);
  cJSON *j = cJSON_Parse((char *)data);
  free(data);
  CHECKF(j, "%s does not parse", path);
  cJSON *k = cJSON_GetObjectItem(j, "kappa"), *parts = cJSON_GetObjectItem(k, "parts");
  CHECK_EQ_INT(cJSON_GetArraySize(parts), paper_n_parts);
  static const char *who[] = {"stanford_model", "radiologist_1", "radiologist_2", "radiologist_3"};
  for (int i = 0; i < paper_n_parts; i++) {
    const char *name = cJSON_GetArrayItem(parts, i)->valuestring;
    const paper_part *p = paper_find(name);
    CHECKF(p, "%s missing from paper.c", name);
    for (int w = 0; w < 4; w++)
      CHECKF(kappa_matches(cJSON_GetObjectItem(cJSON_GetObjectItem(k, who[w]), name),
                           w ? &p->radiologist[w - 1] : &p->model),
             "%s %s differs", name, who[w]);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "leaderboard_best"), name)->valuedouble == p->leaderboard_best);
  }
  cJSON *other = cJSON_GetObjectItem(j, "stanford_model_other");
  CHECK(cJSON_GetObjectItem(other, "auroc")->valuedouble == PAPER_MODEL_AUROC);
  CHECK(cJSON_GetObjectItem(other, "sensitivity")->valuedouble == PAPER_MODEL_SENSITIVITY);
  CHECK(cJSON_GetObjectItem(other, "specificity")->valuedouble == PAPER_MODEL_SPECIFICITY);
  CHECK(!strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(k, "leaderboard_best"), "entry")->valuestring,
                paper_leaderboard_entry));
  CHECK(paper_find("XR_KNEE") == NULL);
  cJSON_Delete(j);
}

/* ---- study CSVs ------------------------------------------------------- */

static const char *write_tmp(const char *name, const void *data, size_t len) {
  static char path[4200];
  snprintf(path, sizeof path, "%s/%s", scratch(), name);
  mskx_err e;
  return file_write_atomic(path, data, len, &e) ? NULL : path;
}

/* Reads text as kind; returns the status and leaves the message in e. */
static int read_text(const char *text, enum studyset_kind kind, study_table **t, mskx_err *e) {
  const char *p = write_tmp("t.csv", text, strlen(text));
  if (!p) return -1;
  return studyset_read(p, kind, t, e);
}

TEST(studyset_reads_crlf_blank_lines_and_normalises_slash) {
  study_table *t;
  mskx_err e;
  CHECK_OK(read_text("MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/,1\r\n\r\n"
                     "MURA-v1.1/valid/XR_HAND/patient2/study1_negative,0\r\n",
                     STUDYSET_TRUTH, &t, &e),
           &e);
  CHECK_EQ_INT(t->n, 2);
  CHECK(!strcmp(t->rows[1].path, "MURA-v1.1/valid/XR_HAND/patient2/study1_negative/"));
  CHECK(!strcmp(t->rows[0].part, "XR_WRIST") && !strcmp(t->rows[0].split, "valid"));
  CHECK_EQ_INT(t->rows[1].line, 3);
  CHECK(studyset_all_decisions(t));
  studyset_free(t);
}

TEST(studyset_rejects_malformed_lines) {
  static const struct {
    const char *text, *want;
    enum studyset_kind kind;
  } bad[] = {
      {"a/XR_A/p/s/,0.5\nno comma here\n", ":2: expected", STUDYSET_PRED},
      {"a/XR_A/p/s/,abc\n", ":1: value 'abc' is not a number (the file must have no header", STUDYSET_PRED},
      {"a/XR_A/p/s/,0.5x\n", "is not a number", STUDYSET_PRED},
      {"a/XR_A/p/s/,nan\n", ":1: value is NaN", STUDYSET_PRED},
      {"a/XR_A/p/s/,1.5\n", "outside [0, 1]", STUDYSET_PRED},
      {"a/XR_A/p/s/,-inf\n", "outside [0, 1]", STUDYSET_PRED},
      {"a/XR_A/p/s/,\n", "missing value", STUDYSET_PRED},
      {",0.5\n", "empty study path", STUDYSET_PRED},
      {"a/b/p/s/,0.5\n", "no XR_<PART> component", STUDYSET_PRED},
      {"a/XR_/p/s/,0.5\n", "no XR_<PART> component", STUDYSET_PRED},
      {"a/XR_A/p/s/,2\n", "label '2' is not 0 or 1", STUDYSET_TRUTH},
      {"a/XR_A/p/s/,0.0\n", "is not 0 or 1", STUDYSET_TRUTH},
      {"a/XR_A/p/s/,1\nb/XR_A/p/s/,0\na/XR_A/p/s,1\n", ":3: duplicate study 'a/XR_A/p/s/' (first at line 1)",
       STUDYSET_TRUTH},
      {"", "empty file", STUDYSET_PRED},
      {"\n \r\n", "empty file", STUDYSET_TRUTH},
  };
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
    study_table *t = NULL;
    mskx_err e = {0, ""};
    int rc = read_text(bad[i].text, bad[i].kind, &t, &e);
    CHECKF(rc != 0 && t == NULL, "case %zu accepted", i);
    CHECKF(strstr(e.msg, bad[i].want) && strstr(e.msg, "t.csv"), "case %zu: message '%s' lacks '%s'", i, e.msg,
           bad[i].want);
  }
  study_table *t;
  mskx_err e;
  const char nul[] = "a/XR_A/p/s/,0\0junk\n";
  CHECK(studyset_read(write_tmp("nul.csv", nul, sizeof nul - 1), STUDYSET_PRED, &t, &e) == MSKX_EFORMAT);
  CHECK(strstr(e.msg, "NUL"));
  CHECK(studyset_read("/nonexistent/x.csv", STUDYSET_PRED, &t, &e) == MSKX_EIO);
}

/* Random bytes and truncations of a good file must give a clean status. */
TEST(studyset_survives_hostile_input) {
  const char good[] = "MURA-v1.1/valid/XR_WRIST/patient1/study1_positive/,0.25\n"
                      "MURA-v1.1/valid/XR_HAND/patient2/study1_negative/,1\n";
  rng r;
  rng_seed(&r, 99);
  char buf[sizeof good];
  for (int t = 0; t < 400; t++) {
    size_t len = rng_below(&r, sizeof good);
    memcpy(buf, good, len);
    for (int k = 0; k < 3 && len; k++) buf[rng_below(&r, len)] = (char)rng_below(&r, 256);
    study_table *tab = NULL;
    mskx_err e = {0, ""};
    const char *p = write_tmp("fuzz.csv", buf, len);
    CHECK(p);
    int rc = studyset_read(p, t % 2 ? STUDYSET_TRUTH : STUDYSET_PRED, &tab, &e);
    CHECK((rc == 0) == (tab != NULL));
    CHECK(rc == 0 || e.msg[0]);
    studyset_free(tab);
  }
}

TEST(studyset_join_checks_split_unknown_and_missing) {
  study_table *pred, *truth, *train;
  mskx_err e;
  CHECK_OK(read_text("r/valid/XR_A/p1/s1/,0.9\nr/valid/XR_A/p2/s1/,0.1\n", STUDYSET_PRED, &pred, &e), &e);
  CHECK_OK(read_text("r/valid/XR_A/p1/s1/,1\nr/valid/XR_A/p2/s1/,0\nr/valid/XR_B/p3/s1/,1\n", STUDYSET_TRUTH, &truth,
                     &e),
           &e);
  CHECK_OK(read_text("r/train/XR_A/p1/s1/,1\n", STUDYSET_TRUTH, &train, &e), &e);
  study_pred *sp;
  int n, missing;
  CHECK(studyset_join(pred, train, 0, &sp, &n, &missing, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "split 'valid'") && strstr(e.msg, "split 'train'"), "%s", e.msg);
  CHECK(studyset_join(pred, truth, 0, &sp, &n, &missing, &e) == MSKX_ESHAPE);
  CHECKF(strstr(e.msg, "1 of 3 labelled studies have no prediction") && strstr(e.msg, "XR_B/p3/s1/' (line 3)"),
         "%s", e.msg);
  CHECK_OK(studyset_join(pred, truth, 1, &sp, &n, &missing, &e), &e);
  CHECK(n == 2 && missing == 1 && sp[0].label == 1 && sp[1].label == 0 && sp[0].score == 0.9);
  free(sp);
  CHECK(studyset_join(truth, pred, 0, &sp, &n, &missing, &e) == MSKX_EINVAL);
  CHECKF(strstr(e.msg, "1 of 3 predicted studies are not in"), "%s", e.msg);
  studyset_free(pred);
  studyset_free(truth);
  studyset_free(train);
}

TEST_MAIN()
