/* Evaluation, thresholds, ensemble fitting and the report: split runs vs an
 * independent batch-1 reference, metrics vs point metrics, mixed bundle
 * thresholds, unreadable images, threshold choice vs brute force, logistic
 * stacking vs scikit-learn (tests/tools/sklearn_logreg.py), simplex weights
 * vs a grid, relative paths, base64 (RFC 4648 vectors), plots, training log
 * parsing (malformed input) and the self-contained HTML. */
#include <cjson/cJSON.h>
#include <sys/stat.h>
#include "eval/ensemble_fit.h"
#include "eval/evaluate.h"
#include "eval/plots.h"
#include "eval/report.h"
#include "eval/threshold.h"
#include "eval/threshold_targets.h"
#include "infer/infer_fixtures.h"
#include "test.h"

/* ---- fixtures ---- */

/* Font caches are process-wide; release them before the leak check runs. */
__attribute__((constructor)) static void release_fonts_at_exit(void) { atexit(plot_release_fonts); }

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

/* Study layout of the tiny valid split: part, label, images. */
typedef struct fx_study {
  const char *part;
  int label, n;
} fx_study;
static const fx_study studies[] = {{"XR_WRIST", 1, 2}, {"XR_WRIST", 0, 1}, {"XR_WRIST", 1, 3}, {"XR_WRIST", 0, 2},
                                   {"XR_WRIST", 0, 1}, {"XR_HAND", 1, 1},  {"XR_HAND", 0, 2},  {"XR_HAND", 1, 2},
                                   {"XR_HAND", 0, 1},  {"XR_HAND", 1, 3}};
#define N_STUDIES ((int)(sizeof studies / sizeof studies[0]))

static int mkdirs(const char *p) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
  return system(cmd);
}

/* A bare-tree dataset under fx_tmp()/name (valid split only); the path is
 * valid until the next call. */
static const char *make_dataset(const char *name) {
  static char root[1024];
  char dir[2048], file[2100];
  snprintf(root, sizeof root, "%s/%s", fx_tmp(), name);
  for (int s = 0; s < N_STUDIES; s++) {
    snprintf(dir, sizeof dir, "%s/valid/%s/patient%d/study1_%s", root, studies[s].part, s + 1,
             studies[s].label ? "positive" : "negative");
    if (mkdirs(dir)) return NULL;
    for (int k = 0; k < studies[s].n; k++) {
      gray_image g = fx_image(36 + 3 * k, 40 - 2 * s % 7, 1000u + 10u * s + k);
      mskx_err e;
      snprintf(file, sizeof file, "%s/image%d.png", dir, k + 1);
      int rc = image_write_png(file, g.px, g.w, g.h, 1, &e);
      gray_image_free(&g);
      if (rc) return NULL;
    }
  }
  return root;
}

static char model_a[600], model_b[600], ds_root_buf[1024];
static const char *ds_root = ds_root_buf;

static int setup(mskx_err *e) {
  static int done, ok;
  if (done) return ok ? 0 : -1;
  done = 1;
  const char *root = make_dataset("ds");
  if (root) snprintf(ds_root_buf, sizeof ds_root_buf, "%s", root);
  ok = root && !fx_make_model(fx_path(model_a, sizeof model_a, "a.safetensors"), TINY_ARCH, 5, 32, 0, 0.5, e) &&
       !fx_make_model(fx_path(model_b, sizeof model_b, "b.safetensors"), TINY_ARCH2, 6, 24, 0, 0.3, e);
  return ok ? 0 : -1;
}

static int run_model(const char *model, const char *data, int strict, predictor **p, dataset **d, eval_run **r,
                     mskx_err *e) {
  predictor_options po = {1, PREC_FP32, 0, {0}};
  eval_config c;
  eval_config_default(&c);
  c.strict = strict;
  eval_session s;
  int rc = eval_session_open(model, data, &po, &c, &s, e);
  *p = s.pred;
  *d = s.data;
  *r = s.run;
  return rc;
}

static void close_run(predictor *p, dataset *d, eval_run *r) {
  eval_run_free(r);
  predictor_free(p);
  dataset_free(d);
}

/* ---- evaluation runs ---- */

TEST(run_matches_batch1_reference) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(model_a, ds_root, 0, &p, &d, &r, &e), &e);
  fx_ref ref;
  CHECK_OK(fx_ref_open(&ref, model_a, &e), &e);
  int bad = 0;
  CHECK_EQ_INT(r->n_studies, N_STUDIES);
  for (int i = 0; i < r->n_studies && !bad; i++) {
    const eval_study *st = &r->studies[i];
    double sum = 0;
    for (int k = 0; k < st->ds->n_images; k++) {
      gray_image g = {0, 0, NULL};
      double q = 0;
      if (image_load(r->split->images[st->ds->first_image + k].path, NULL, &g, &e) || fx_ref_prob(&ref, &g, &q, &e))
        bad = 1;
      gray_image_free(&g);
      sum += q;
    }
    double mean = sum / st->ds->n_images;
    if (!st->ok || st->n_used != st->ds->n_images || fabs(st->probability - mean) > 1e-5 ||
        st->abnormal != (st->probability > 0.5) || st->threshold != 0.5)
      bad = 2 + i;
  }
  fx_ref_close(&ref);
  close_run(p, d, r);
  CHECKF(!bad, "study %d differs from the reference (or could not be read)", bad - 2);
}

TEST(metrics_equal_point_metrics) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(model_a, ds_root, 0, &p, &d, &r, &e), &e);
  double *prob;
  int *y, n, dec[N_STUDIES];
  CHECK_OK(eval_run_arrays(r, &prob, &y, NULL, &n, &e), &e);
  for (int i = 0; i < n; i++) dec[i] = prob[i] > 0.5;
  confusion c = confusion_from_labels(y, dec, n);
  double auc;
  CHECK_OK(roc_auc(y, prob, n, &auc, &e), &e);
  eval_results *res = NULL;
  CHECK_OK(eval_run_metrics(r, 1000, 7, &res, &e), &e);
  CHECK_NEAR(res->overall.value[METRIC_KAPPA], metric_kappa(&c), 1e-12);
  CHECK_NEAR(res->overall.value[METRIC_AUC], auc, 1e-12);
  CHECK_EQ_INT(res->n_parts, 2);
  CHECK(res->opt.threshold == 0.5 && res->opt.n_boot == 1000);
  eval_results_free(res);
  free(prob);
  free(y);
  close_run(p, d, r);
}

TEST(bundle_mixed_thresholds) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  char bpath[600], js[1600];
  snprintf(js, sizeof js, "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"%s\", \"XR_HAND\": \"%s\"}}",
           model_a, model_b);
  CHECK(fx_write_text(fx_path(bpath, sizeof bpath, "bundle.json"), js) == 0);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(bpath, ds_root, 0, &p, &d, &r, &e), &e);
  double t;
  CHECK(!eval_run_common_threshold(r, &t));
  int y[N_STUDIES], dec[N_STUDIES], n = 0;
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    double want = strcmp(st->part, "XR_HAND") ? 0.5 : 0.3;
    CHECKF(st->threshold == want, "study %d decided at %g", i, st->threshold);
    y[n] = st->ds->label;
    dec[n++] = st->probability > want;
  }
  confusion c = confusion_from_labels(y, dec, n);
  eval_results *res = NULL;
  CHECK_OK(eval_run_metrics(r, 0, 1, &res, &e), &e);
  CHECK_NEAR(res->overall.value[METRIC_KAPPA], metric_kappa(&c), 1e-12);
  CHECK(isfinite(res->overall.value[METRIC_AUC]) && isnan(res->opt.threshold));
  char *json = NULL;
  CHECK_OK(eval_write_metrics_json(r, res, bpath, NULL, &json, &e), &e);
  cJSON *j = cJSON_Parse(json);
  cJSON *parts = cJSON_GetObjectItem(j, "parts");
  CHECK(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "overall"), "threshold")));
  CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(parts, "XR_HAND"), "threshold")->valuedouble, 0.3, 0);
  CHECK_NEAR(cJSON_GetObjectItem(cJSON_GetObjectItem(parts, "XR_WRIST"), "threshold")->valuedouble, 0.5, 0);
  cJSON_Delete(j);
  free(json);
  eval_results_free(res);
  close_run(p, d, r);
}

TEST(unreadable_images_skipped_or_strict) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  const char *root = make_dataset("ds_bad");
  CHECK(root);
  char f1[1200], f2[1200];
  /* Study 1 (3 images) loses one; study 4 (XR_WRIST, 1 image) loses its only one. */
  snprintf(f1, sizeof f1, "%s/valid/XR_WRIST/patient3/study1_positive/image2.png", root);
  snprintf(f2, sizeof f2, "%s/valid/XR_WRIST/patient5/study1_negative/image1.png", root);
  CHECK(truncate(f1, 30) == 0 && truncate(f2, 0) == 0);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(model_a, root, 0, &p, &d, &r, &e), &e);
  CHECK_EQ_INT(r->n_skipped, 2);
  CHECK_EQ_INT(r->n_ok, N_STUDIES - 1);
  int found = 0;
  for (int i = 0; i < r->n_studies; i++) {
    const eval_study *st = &r->studies[i];
    if (strstr(st->ds->path, "patient3/")) found += st->ok && st->n_used == 2 && st->n_skipped == 0;
    if (strstr(st->ds->path, "patient5/")) found += !st->ok;
  }
  CHECK_EQ_INT(found, 2);
  CHECK(r->n_skip_msgs == 2 && strstr(r->skip_msgs[0], "image2.png"));
  close_run(p, d, r);
  p = NULL, d = NULL, r = NULL;
  int rc = run_model(model_a, root, 1, &p, &d, &r, &e);
  CHECK(rc != 0 && r == NULL && strstr(e.msg, "patient3/study1_positive/image2.png"));
  close_run(p, d, r);
}

TEST(empty_split_is_an_error) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  predictor_options po = {1, PREC_FP32, 0, {0}};
  dataset *d = NULL;
  predictor *p = NULL;
  eval_run *r = NULL;
  CHECK_OK(dataset_open(ds_root, NULL, &d, &e), &e);
  CHECK_OK(predictor_load(model_a, &po, &p, &e), &e);
  eval_config c;
  eval_config_default(&c);
  c.split = DS_TRAIN;
  int rc = eval_run_split(p, d, &c, &r, &e);
  close_run(p, d, r);
  CHECK(rc == MSKX_EINVAL && strstr(e.msg, "train split has no studies"));
}

TEST(csv_outputs) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(model_a, ds_root, 0, &p, &d, &r, &e), &e);
  char pred[600], prob[600];
  CHECK_OK(eval_write_predictions_csv(r, fx_path(pred, sizeof pred, "pred.csv"), &e), &e);
  CHECK_OK(eval_write_probabilities_csv(r, fx_path(prob, sizeof prob, "prob.csv"), &e), &e);
  FILE *f = fopen(pred, "r"), *g = fopen(prob, "r");
  CHECK(f && g);
  char a[1024], b[1024];
  CHECK(fgets(b, sizeof b, g) && !strcmp(b, "study,part,n_images,probability,label\n"));
  int i = 0, bad = 0;
  char why[3000] = "";
  while (fgets(a, sizeof a, f) && fgets(b, sizeof b, g)) {
    const eval_study *st = &r->studies[i++];
    char want[1100];
    snprintf(want, sizeof want, "%s,%d\n", st->ds->path, st->probability > 0.5);
    char *c4 = b;
    for (int k = 0; k < 3; k++) c4 = strchr(c4, ',') + 1;
    double q = strtod(c4, NULL);
    if (!bad && (strcmp(a, want) != 0 || q != st->probability || strncmp(b, st->ds->path, strlen(st->ds->path)))) {
      test_fmt(why, sizeof why, "line %d: '%s' vs '%s'; '%s' vs %.17g", i, a, want, b, st->probability);
      bad = 1;
    }
  }
  fclose(f);
  fclose(g);
  close_run(p, d, r);
  CHECKF(!bad && i == N_STUDIES, "%d lines; %s", i, why);
}

/* ---- thresholds ---- */

static double kappa_at(const double *p, const int *y, int n, double t) {
  int dec[256];
  for (int i = 0; i < n; i++) dec[i] = p[i] > t;
  confusion c = confusion_from_labels(y, dec, n);
  return metric_kappa(&c);
}

TEST(threshold_kappa_brute_force) {
  rng r;
  rng_seed(&r, 42);
  for (int trial = 0; trial < 40; trial++) {
    int n = 5 + (int)rng_below(&r, 60), y[256];
    double p[256];
    for (int i = 0; i < n; i++) {
      y[i] = rng_uniform(&r) < 0.4;
      p[i] = round((0.5 + 0.25 * y[i] - 0.1 + 0.35 * rng_normal(&r)) * 20) / 20; /* ties */
      p[i] = p[i] < 0 ? 0 : p[i] > 1 ? 1 : p[i];
    }
    y[0] = 1, y[1] = 0;
    thr_policy pol = {THR_KAPPA, 0};
    thr_point pt;
    mskx_err e;
    CHECK_OK(thr_choose(p, y, n, &pol, &pt, &e), &e);
    /* Brute force: every cut of the sorted distinct values, at its own midpoint. */
    double best = -INFINITY;
    for (int i = -1; i < n; i++) {
      double t = i < 0 ? -1 : p[i];
      double k = kappa_at(p, y, n, t);
      if (isfinite(k) && k > best) best = k;
    }
    CHECK_NEAR(pt.kappa, best, 1e-12);
    CHECK_NEAR(kappa_at(p, y, n, pt.threshold), best, 1e-12);
    /* No candidate nearer 0.5 reaches the same kappa. */
    double *c;
    int m;
    CHECK_OK(thr_candidates(p, n, &c, &m, &e), &e);
    for (int k = 0; k < m; k++)
      if (fabs(c[k] - 0.5) < fabs(pt.threshold - 0.5))
        CHECKF(kappa_at(p, y, n, c[k]) < best - 1e-12, "candidate %g nearer 0.5 ties", c[k]);
    free(c);
  }
}

static int copy_file(const char *from, const char *to, mskx_err *e) {
  unsigned char *b = NULL;
  size_t n = 0;
  int rc = file_read_all(from, 1u << 30, &b, &n, e);
  if (!rc) rc = file_write_atomic(to, b, n, e);
  free(b);
  return rc;
}

static double stored_threshold(const char *path) {
  st_file *f = NULL;
  model_meta m;
  mskx_err e = {0, ""};
  double t = st_read(path, &f, &e) || model_meta_read(f, path, &m, &e) ? NAN : m.threshold;
  st_free(f);
  return t;
}

/* A bundle's studies are grouped by the member that decided them; each member
 * gets the threshold thr_choose picks on its own studies, stored in its file. */
TEST(threshold_targets_per_bundle_member) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  char ca[600], cb[600], bpath[600], js[1600];
  CHECK_OK(copy_file(model_a, fx_path(ca, sizeof ca, "ta.safetensors"), &e), &e);
  CHECK_OK(copy_file(model_b, fx_path(cb, sizeof cb, "tb.safetensors"), &e), &e);
  snprintf(js, sizeof js, "{\"format\": \"mskx-bundle-1\", \"models\": {\"XR_WRIST\": \"%s\", \"XR_HAND\": \"%s\"}}", ca, cb);
  CHECK(fx_write_text(fx_path(bpath, sizeof bpath, "tbundle.json"), js) == 0);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(bpath, ds_root, 0, &p, &d, &r, &e), &e);
  thr_target *t = NULL;
  int nt = 0;
  CHECK_OK(thr_targets_make(r, p, bpath, &t, &nt, &e), &e);
  CHECK_EQ_INT(nt, 2);
  thr_policy pol = {THR_KAPPA, 0};
  int total = 0, stored = 0;
  for (int k = 0; k < nt; k++) {
    int wrist = strstr(t[k].path, "ta.safetensors") != NULL;
    CHECKF(wrist || strstr(t[k].path, "tb.safetensors"), "target %s", t[k].path);
    CHECK_NEAR(t[k].old_thr, wrist ? 0.5 : 0.3, 0);
    CHECK_EQ_INT(t[k].n, 5); /* five studies of each part */
    total += t[k].n;
    thr_point want;
    mskx_err why = {0, ""};
    int can = !thr_choose(t[k].p, t[k].y, t[k].n, &pol, &want, &why);
    CHECK_OK(thr_target_choose(&t[k], &pol, false, false, &e), &e);
    CHECK_EQ_INT(t[k].chosen, can);
    CHECK_EQ_INT(t[k].stored, can);
    if (can) {
      stored++;
      CHECK_NEAR(t[k].after.threshold, want.threshold, 0);
      CHECK_NEAR(stored_threshold(t[k].path), want.threshold, 0);
    } else {
      CHECK(t[k].why[0]);
      CHECK_NEAR(stored_threshold(t[k].path), t[k].old_thr, 0);
    }
  }
  CHECK_EQ_INT(total, r->n_ok);
  CHECK(stored > 0);
  thr_targets_free(t, nt);
  close_run(p, d, r);
}

TEST(threshold_sensitivity_and_youden) {
  double p[] = {0.1, 0.2, 0.3, 0.35, 0.4, 0.55, 0.6, 0.7, 0.8, 0.9};
  int y[] = {0, 1, 0, 0, 1, 0, 1, 1, 0, 1};
  mskx_err e;
  thr_policy pol;
  thr_point pt;
  CHECK_OK(thr_policy_parse("sensitivity=0.8", &pol, &e), &e);
  CHECK_OK(thr_choose(p, y, 10, &pol, &pt, &e), &e);
  /* 5 positives: 4 of them are >= 0.4, so the highest threshold keeping 0.4 is (0.35 + 0.4) / 2. */
  CHECK_NEAR(pt.threshold, 0.375, 1e-15);
  CHECK_NEAR(pt.sensitivity, 0.8, 1e-15);
  CHECK_OK(thr_policy_parse("sensitivity=1", &pol, &e), &e);
  CHECK_OK(thr_choose(p, y, 10, &pol, &pt, &e), &e);
  CHECK_NEAR(pt.threshold, 0.15, 1e-15);
  CHECK_OK(thr_policy_parse("youden", &pol, &e), &e);
  CHECK_OK(thr_choose(p, y, 10, &pol, &pt, &e), &e);
  double best = -1;
  for (int i = 0; i < 10; i++) {
    thr_point q = thr_evaluate(p, y, 10, p[i]);
    best = fmax(best, q.sensitivity + q.specificity - 1);
  }
  CHECK_NEAR(pt.youden, best, 1e-12);
}

TEST(threshold_bad_input) {
  mskx_err e;
  thr_policy pol;
  const char *bad[] = {"", "kapa", "sensitivity", "sensitivity=", "sensitivity=0", "sensitivity=1.5",
                       "sensitivity=0.9x", "sensitivity=nan", "youden "};
  for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++)
    CHECKF(thr_policy_parse(bad[i], &pol, &e) == MSKX_EINVAL, "'%s' accepted", bad[i]);
  thr_point pt;
  double p[] = {0.2, 0.7}, q[] = {0.2, 1.5};
  int one[] = {1, 1}, two[] = {0, 1};
  CHECK_OK(thr_policy_parse("kappa", &pol, &e), &e);
  CHECK(thr_choose(p, one, 2, &pol, &pt, &e) == MSKX_EINVAL && strstr(e.msg, "both normal and abnormal"));
  CHECK(thr_choose(q, two, 2, &pol, &pt, &e) == MSKX_EINVAL && strstr(e.msg, "not in [0, 1]"));
  CHECK(thr_choose(p, two, 0, &pol, &pt, &e) == MSKX_EINVAL);
}

/* ---- ensemble fitting ---- */

static void random_members(rng *r, int n, int m, double *p, int *y) {
  for (int i = 0; i < n; i++) {
    y[i] = rng_uniform(r) < 0.45;
    for (int j = 0; j < m; j++) {
      double z = (y[i] ? 1.0 : -1.0) * (0.3 + 0.4 * j) + rng_normal(r);
      p[(size_t)i * m + j] = 1 / (1 + exp(-z));
    }
  }
  y[0] = 1, y[1] = 0;
}

TEST(logreg_matches_sklearn) {
  rng r;
  rng_seed(&r, 9);
  int n = 120, m = 3, y[120];
  double p[360], coef[3], b;
  random_members(&r, n, m, p, y);
  p[5 * m] = 0.0, p[6 * m + 1] = 1.0; /* clamped to 1e-6 / 1 - 1e-6 */
  char csv[600], cmd[2000];
  FILE *f = fopen(fx_path(csv, sizeof csv, "stack.csv"), "w");
  CHECK(f);
  for (int i = 0; i < n; i++) fprintf(f, "%.17g,%.17g,%.17g,%d\n", p[i * m], p[i * m + 1], p[i * m + 2], y[i]);
  fclose(f);
  double *x = malloc(sizeof p);
  ens_stack_features(p, n, m, x);
  mskx_err e;
  int iters;
  CHECK_OK(logreg_fit(x, y, n, m, 1.0, coef, &b, &iters, &e), &e);
  free(x);
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/sklearn_logreg.py' stack '%s' --logit", repo_root(), csv);
  FILE *py = popen(cmd, "r");
  char out[4096] = "";
  size_t len = py ? fread(out, 1, sizeof out - 1, py) : 0;
  int st = py ? pclose(py) : -1;
  out[len] = 0;
  CHECKF(st == 0, "sklearn_logreg.py failed (needs /usr/bin/python3 with sklearn)");
  cJSON *j = cJSON_Parse(out);
  cJSON *c = cJSON_GetObjectItem(j, "coef");
  CHECK(cJSON_GetArraySize(c) == 3);
  for (int k = 0; k < 3; k++) CHECK_NEAR(coef[k], cJSON_GetArrayItem(c, k)->valuedouble, 1e-6);
  CHECK_NEAR(b, cJSON_GetObjectItem(j, "intercept")->valuedouble, 1e-6);
  cJSON_Delete(j);
  CHECK(iters < 20);
}

TEST(logreg_separable_stays_finite) {
  double x[] = {-3, -2, -1, 1, 2, 3};
  int y[] = {0, 0, 0, 1, 1, 1};
  double coef, b;
  mskx_err e;
  CHECK_OK(logreg_fit(x, y, 6, 1, 1.0, &coef, &b, NULL, &e), &e);
  /* Stationarity: coef = C * sum (y - s) x and 0 = sum (y - s). */
  double g0 = 0, g1 = 0;
  for (int i = 0; i < 6; i++) {
    double s = 1 / (1 + exp(-(coef * x[i] + b)));
    g0 += y[i] - s;
    g1 += (y[i] - s) * x[i];
  }
  CHECK(isfinite(coef) && coef > 0 && coef < 10);
  CHECK_NEAR(g0, 0, 1e-9);
  CHECK_NEAR(g1, coef, 1e-9);
  int one[] = {1, 1, 1, 1, 1, 1};
  CHECK(logreg_fit(x, one, 6, 1, 1.0, &coef, &b, NULL, &e) == MSKX_EINVAL);
}

static double wloss(const double *p, const int *y, int n, int m, const double *w) {
  double q[200];
  for (int i = 0; i < n; i++) {
    q[i] = 0;
    for (int j = 0; j < m; j++) q[i] += w[j] * p[i * m + j];
  }
  return ens_log_loss(q, y, n);
}

TEST(weights_minimise_log_loss) {
  rng r;
  rng_seed(&r, 3);
  int n = 150, y[150];
  double p[450], w[3];
  mskx_err e;
  random_members(&r, n, 2, p, y);
  CHECK_OK(ens_fit_weights(p, y, n, 2, w, NULL, &e), &e);
  CHECK_NEAR(w[0] + w[1], 1, 1e-12);
  double best = INFINITY;
  for (int k = 0; k <= 10000; k++) {
    double v[2] = {k / 10000.0, 1 - k / 10000.0};
    best = fmin(best, wloss(p, y, n, 2, v));
  }
  CHECK(wloss(p, y, n, 2, w) <= best + 1e-9);
  random_members(&r, n, 3, p, y);
  CHECK_OK(ens_fit_weights(p, y, n, 3, w, NULL, &e), &e);
  double mine = wloss(p, y, n, 3, w);
  for (int k = 0; k < 20000; k++) {
    double a = rng_uniform(&r), b = rng_uniform(&r) * (1 - a), v[3] = {a, b, 1 - a - b};
    CHECKF(wloss(p, y, n, 3, v) >= mine - 1e-9, "(%g, %g, %g) beats the fit", v[0], v[1], v[2]);
  }
}

/* A member that only hurts (it predicts the opposite class): the optimum
 * lies on the simplex's boundary, weight exactly 0, which the fit must reach
 * (the softmax parametrisation alone only approaches it). */
TEST(weights_reach_the_boundary) {
  rng r;
  rng_seed(&r, 5);
  int n = 200, y[200];
  double p[600], w[3];
  mskx_err e;
  random_members(&r, n, 3, p, y);
  for (int i = 0; i < n; i++) p[i * 3 + 1] = 1 - p[i * 3 + 2];  /* member 1: the mirror of member 2 */
  CHECK_OK(ens_fit_weights(p, y, n, 3, w, NULL, &e), &e);
  CHECKF(w[1] == 0, "the harmful member keeps weight %g", w[1]);
  double best = INFINITY;
  for (int k = 0; k <= 100000; k++) {
    double v[3] = {k / 100000.0, 0, 1 - k / 100000.0};
    best = fmin(best, wloss(p, y, n, 3, v));
  }
  double mine = wloss(p, y, n, 3, w);
  CHECKF(mine <= best + 1e-9, "fit %.12g, best on the boundary %.12g", mine, best);
}

TEST(stack_cross_validation) {
  rng r;
  rng_seed(&r, 4);
  int n = 60, y[60];
  double p[120], coef[2], b, oof[60];
  mskx_err e;
  random_members(&r, n, 2, p, y);
  CHECK_OK(ens_fit_stack(p, y, n, 2, 5, 1, 1.0, coef, &b, oof, &e), &e);
  for (int i = 0; i < n; i++) CHECK(oof[i] > 0 && oof[i] < 1);
  double x[120], c2[2], b2;
  ens_stack_features(p, n, 2, x);
  CHECK_OK(logreg_fit(x, y, n, 2, 1.0, c2, &b2, NULL, &e), &e);
  CHECK(coef[0] == c2[0] && coef[1] == c2[1] && b == b2); /* the final fit uses every study */
  int few[60] = {1, 1, 1};
  CHECK(ens_fit_stack(p, few, n, 2, 5, 1, 1.0, coef, &b, oof, &e) == MSKX_EINVAL && strstr(e.msg, "lower --folds"));
  CHECK(ens_fit_stack(p, y, n, 2, 1, 1, 1.0, coef, &b, oof, &e) == MSKX_EINVAL);
}

TEST(relative_paths_and_json) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  char sub[600], out[4096], ens[700];
  CHECK(mkdirs(fx_path(sub, sizeof sub, "ens/deeper")) == 0);
  CHECK_OK(ens_relative_path(sub, model_a, out, sizeof out, &e), &e);
  CHECK(!strcmp(out, "../../a.safetensors"));
  CHECK_OK(ens_relative_path(fx_tmp(), model_a, out, sizeof out, &e), &e);
  CHECK(!strcmp(out, "a.safetensors"));
  CHECK_OK(ens_relative_path("/", model_a, out, sizeof out, &e), &e);
  CHECK(out[0] == '/');
  CHECK(ens_relative_path(sub, "/nonexistent/x", out, sizeof out, &e) == MSKX_EIO);
  ens_member_out mo[2] = {{model_a, 0.25}, {model_b, 0.75}};
  double coef[2] = {1.5, -0.5};
  snprintf(ens, sizeof ens, "%s/stack.json", sub);
  CHECK_OK(ens_write_json(ens, "stack", 0.4, mo, 2, coef, 0.125, NULL, &e), &e);
  predictor *p = NULL;
  CHECK_OK(predictor_load(ens, NULL, &p, &e), &e);
  CHECK(p->root.kind == PNODE_ENSEMBLE && p->root.method == ENS_STACK && p->root.threshold == 0.4);
  CHECK(p->root.coef[0] == 1.5 && p->root.coef[1] == -0.5 && p->root.intercept == 0.125);
  CHECK(p->root.weight[0] == 0.25 && p->root.weight[1] == 0.75);
  predictor_free(p);
}

/* ---- report pieces ---- */

TEST(base64_rfc4648_vectors) {
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    char *s = base64_encode((const unsigned char *)in[i], strlen(in[i]));
    CHECKF(s && !strcmp(s, want[i]), "'%s' -> '%s'", in[i], s ? s : "(null)");
    free(s);
  }
  unsigned char all[256];
  for (int i = 0; i < 256; i++) all[i] = (unsigned char)i;
  char *s = base64_encode(all, 256);
  CHECK(s && strlen(s) == 344 && !strncmp(s, "AAECAwQFBgcICQoL", 16) && !strcmp(s + 336, "/P3+/w=="));
  free(s);
}

TEST(thumbnail_and_plots_are_pngs) {
  int w = 600, h = 300;
  uint8_t *rgb = malloc((size_t)w * h * 3);
  for (int i = 0; i < w * h; i++) rgb[3 * i] = 200, rgb[3 * i + 1] = 100, rgb[3 * i + 2] = 50;
  png_buf b;
  mskx_err e;
  CHECK_OK(plot_thumbnail(rgb, w, h, 256, &b, &e), &e);
  free(rgb);
  CHECK(b.css_w == 256 && b.css_h == 128);
  gray_image g;
  CHECK_OK(image_decode(b.data, b.len, "thumb", NULL, &g, &e), &e);
  /* Grey of a uniform (200, 100, 50) image: BT.601 luma 0.299*200 + 0.587*100 + 0.114*50 = 124.2. */
  CHECK(g.w == 256 && g.h == 128 && abs(g.px[64 * 256 + 128] - 124) <= 1);
  gray_image_free(&g);
  png_buf_free(&b);
  double x[3] = {0, 0.5, 1}, y[3] = {0, 0.8, 1};
  plot_series s = {x, y, 3, "curve", plot_palette[0], 0, 0, 1};
  plot_spec sp = {300, 200, "t", "x", "y", 0, 1, 0, 1, 1, 0, 0};
  CHECK_OK(plot_lines(&sp, &s, 1, &b, &e), &e);
  CHECK_OK(image_decode(b.data, b.len, "plot", NULL, &g, &e), &e);
  CHECK(g.w == 300 * PLOT_SCALE && g.h == 200 * PLOT_SCALE);
  gray_image_free(&g);
  png_buf_free(&b);
  sp.xmax = 0;
  CHECK(plot_lines(&sp, &s, 1, &b, &e) == MSKX_EINVAL);
}

TEST(train_log_parsing) {
  const char *good = "{\"epoch\": 1, \"lr\": 0.001, \"train_loss\": 0.7, \"val\": {\"loss\": 0.69, \"kappa\": 0.1, "
                     "\"auc\": 0.6}, \"best\": true}\n\n{\"epoch\": 2, \"train_loss\": 0.5, \"val\": {\"loss\": null, "
                     "\"kappa\": 0.3}, \"best\": false}\r\n";
  train_log l;
  mskx_err e;
  CHECK_OK(train_log_parse(good, strlen(good), "log.jsonl", &l, &e), &e);
  CHECK(l.n == 2 && l.epoch[1] == 2 && l.train_loss[0] == 0.7 && l.val_kappa[1] == 0.3 && isnan(l.val_loss[1]) &&
        isnan(l.val_auc[1]) && l.best == 0);
  train_log_free(&l);
  const char *bad[] = {"", "\n\n", "{\"epoch\": 1}\n{\"epoch\": 2", "[1, 2]\n", "{\"val\": {}}\n",
                       "{\"epoch\": \"one\"}\n", "{\"epoch\": -1}\n", "nonsense"};
  const char *where[] = {"no epochs", "no epochs", ":2:", ":1:", ":1:", ":1:", ":1:", ":1:"};
  for (int i = 0; i < 8; i++) {
    int rc = train_log_parse(bad[i], strlen(bad[i]), "log.jsonl", &l, &e);
    CHECKF(rc == MSKX_EFORMAT && strstr(e.msg, where[i]), "case %d: rc %d, '%s'", i, rc, e.msg);
  }
}

TEST(calibration_bins) {
  double p[] = {0.05, 0.07, 0.15, 0.95, 1.0, 0.5};
  int y[] = {0, 1, 0, 1, 1, 0};
  calib c;
  report_calibration(p, y, 6, &c);
  CHECK(c.count[0] == 2 && c.count[1] == 1 && c.count[5] == 1 && c.count[9] == 2);
  CHECK_NEAR(c.mean_pred[0], 0.06, 1e-15);
  CHECK_NEAR(c.frac_pos[0], 0.5, 0);
  CHECK_NEAR(c.mean_pred[9], 0.975, 1e-15);
  double ece = (2 * 0.44 + 1 * 0.15 + 1 * 0.5 + 2 * 0.025) / 6;
  CHECK_NEAR(c.ece, ece, 1e-12);
  CHECK_NEAR(c.brier, (0.0025 + 0.8649 + 0.0225 + 0.0025 + 0 + 0.25) / 6, 1e-12);
  CHECK(isnan(c.mean_pred[3]));
}

TEST(report_is_self_contained) {
  mskx_err e = {0, ""};
  CHECK_OK(setup(&e), &e);
  predictor *p = NULL;
  dataset *d = NULL;
  eval_run *r = NULL;
  CHECK_OK(run_model(model_a, ds_root, 0, &p, &d, &r, &e), &e);
  eval_results *res = NULL;
  report_gallery gal;
  CHECK_OK(eval_run_metrics(r, 1000, 1, &res, &e), &e);
  predict_options po = {AGG_MEAN, 0, 0, 0};
  CHECK_OK(report_gallery_build(p, r, &po, 4, &gal, &e), &e);
  int shown = gal.n[GALLERY_TP] + gal.n[GALLERY_FP] + gal.n[GALLERY_FN];
  const char *log = "{\"epoch\": 1, \"train_loss\": 0.7, \"val\": {\"loss\": 0.6, \"kappa\": 0.2}}\n";
  train_logs logs;
  memset(&logs, 0, sizeof logs);
  CHECK_OK(train_log_parse(log, strlen(log), "log", &logs.log[0], &e), &e);
  logs.n = 1;
  report_input in = {model_a, predictor_get_info(p), "fp32", r, res, &gal, &logs, NULL, 1};
  char *html = NULL;
  size_t len = 0;
  CHECK_OK(report_render_html(&in, &html, &len, &e), &e);
  int imgs = 0;
  for (const char *s = html; (s = strstr(s, "<img ")); s++) imgs++;
  CHECK(strlen(html) == len && !strstr(html, "http") && !strstr(html, "<script") && !strstr(html, "<link"));
  CHECK(strstr(html, "Synthetic data") && strstr(html, "Wrist") && strstr(html, "0.931"));
  /* kappa plot, ROC, reliability, two training plots and the gallery. */
  CHECKF(imgs == 5 + shown, "%d images for %d gallery items", imgs, shown);
  CHECK(shown > 0);
  const char *a = strstr(html, "src=\"data:image/png;base64,");
  CHECK(a && !strncmp(a + 27, "iVBORw0KGgo", 11)); /* the PNG signature in base64 */
  free(html);
  /* Figures too wide for three decimals in the table's fixed cells (the
   * formatter once overran them) come out with three significant digits. */
  eval_group *g = &res->overall;
  g->value[METRIC_KAPPA] = -123456789.0;
  g->ci_lo[METRIC_KAPPA] = -1e300;
  g->ci_hi[METRIC_KAPPA] = 1e300;
  CHECK_OK(report_render_html(&in, &html, &len, &e), &e);
  CHECKF(html && strstr(html, "&minus;123456789.000") && strstr(html, "&minus;1e+300") && strstr(html, " 1e+300"),
         "%s", html ? "huge figures not shown" : "no html");
  free(html);
  train_logs_free(&logs);
  report_gallery_free(&gal);
  eval_results_free(res);
  close_run(p, d, r);
}

TEST(synthetic_detection) {
  char dir[600], f[700];
  fx_path(dir, sizeof dir, "synthdet/MURA-v1.1");
  CHECK(mkdirs(dir) == 0);
  CHECK(!report_data_is_synthetic(dir));
  snprintf(f, sizeof f, "%s/../synth_findings.csv", dir);
  CHECK(fx_write_text(f, "image,label\n") == 0);
  CHECK(report_data_is_synthetic(dir));
  fx_path(dir, sizeof dir, "synthdet");
  CHECK(report_data_is_synthetic(dir));
  CHECK(!report_data_is_synthetic(fx_tmp()));
}

TEST_MAIN()
