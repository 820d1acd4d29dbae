/* mskx ensemble: combines model files and bundles into an ensemble JSON
 * (mean, vote, weighted or stacked), fitting weights or the stacker on the
 * validation split when the method needs it. */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/json.h"
#include "core/util.h"
#include "eval/ensemble_fit.h"
#include "eval/stack_features.h"
#include "eval/threshold.h"

static const char *const usage_head =
    "usage: mskx ensemble --out ENS.json --method M [options] MODEL MODEL...\n"
    "\n"
    "Writes an ensemble of two or more model files or per-part bundles (archs, input\n"
    "sizes and parts may differ). Member paths are stored relative to the ensemble's\n"
    "folder when they share a folder with it.\n"
    "\n";

#define method_names ens_method_names

typedef struct ens_args {
  char out_text[4096], data_text[4096], features_text[4096], method_text[32];
  const char *out, *data, *features_csv;   /* NULL when not given */
  int method, split, split_train, folds, agg, tta, threads, bf16;
  uint64_t seed;
  double threshold;
  char **members;
  int m;
} ens_args;

/* --method: one of ens_method_names. */
static int method_index(const char *v) {
  for (int i = 0; i < ENS_METHODS; i++)
    if (!strcmp(v, method_names[i])) return i;
  return -1;
}

static int check_method(const char *v, mskx_err *e) {
  if (method_index(v) >= 0) return MSKX_OK;
  char list[128] = "";
  for (int i = 0, k = 0; i < ENS_METHODS && k < (int)sizeof list; i++)
    k += snprintf(list + k, sizeof list - (size_t)k, "%s%s", i == 0 ? "" : i + 1 < ENS_METHODS ? ", " : " or ",
                  method_names[i]);
  return err_set(e, MSKX_EINVAL, "expected %s, got '%s'", list, v);
}

#define A(m) .off = offsetof(ens_args, m), .size = sizeof(((ens_args *)0)->m)
#define G_ENS "options"
static const opt_spec rows[] = {
    {.flag = "out", .type = OPT_PATH, A(out_text), .arg = "FILE", .group = G_ENS, .flags = OPT_REQUIRED,
     .help = "the ensemble JSON to write (format mskx-ensemble-1)"},
    {.flag = "method", .type = OPT_STRING, A(method_text), .arg = "M", .group = G_ENS, .flags = OPT_REQUIRED,
     .check = check_method,
     .help = "mean      mean of the members' study probabilities\n"
             "vote      fraction of members calling the study abnormal\n"
             "weighted  weighted mean; weights fit on --data (log-loss)\n"
             "stack     logistic regression over the members' logits,\n"
             "          fit on --data with k-fold cross-validation\n"
             "stack-features  L2 logistic regression over the members'\n"
             "          standardised pooled penultimate features (model\n"
             "          files only), C by cross-validation stratified by\n"
             "          part and class; members must not have been trained\n"
             "          on the fit split"},
    {.flag = "data", .type = OPT_PATH, A(data_text), .arg = "DIR", .group = G_ENS,
     .help = "dataset whose split fits weighted/stack (required for them);\n"
             "with mean/vote the members and the ensemble are scored on it"},
    {.flag = "split", .type = OPT_CHOICE, A(split_train), .choices = "valid|train", .def_str = "valid",
     .arg = "valid|train", .group = G_ENS, .help = "split to fit on"},
    {.flag = "fit-split", .type = OPT_CHOICE, A(split_train), .choices = "valid|train", .def_str = "valid",
     .arg = "valid|train", .group = G_ENS, .flags = OPT_HIDE_DEFAULT, .help = "the same as --split"},
    {.flag = "folds", .type = OPT_INT, A(folds), .lo = 2, .hi = 100, .def = ENS_DEFAULT_FOLDS, .arg = "K",
     .group = G_ENS, .help = "cross-validation folds for stack and stack-features"},
    {.flag = "features-csv", .type = OPT_PATH, A(features_text), .arg = "FILE", .group = G_ENS,
     .help = "stack-features: also write the study features it fit on\n"
             "(study,part,label,f1..fD; for checks with other tools)"},
    {.flag = "seed", .type = OPT_U64, A(seed), .lo = 0, .hi = 0x7fffffff, .def = 1, .arg = "S", .group = G_ENS,
     .help = "fold assignment seed"},
    {.flag = "threshold", .type = OPT_DOUBLE, A(threshold), .lo = 0, .hi = 1, .def = MODEL_DEFAULT_THRESHOLD,
     .arg = "T", .group = G_ENS, .help = "the ensemble's decision threshold"},
    {.flag = "agg", .type = OPT_CHOICE, A(agg), .choices = "mean|max", .def_str = "mean", .arg = "mean|max",
     .group = G_ENS, .help = "study probability from image probabilities"},
    {.flag = "tta", .type = OPT_CHOICE, A(tta), .choices = "none|flip", .def_str = "none", .arg = "none|flip",
     .group = G_ENS, .help = "flip: average each image with its horizontal mirror"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_ENS,
     .flags = OPT_HIDE_DEFAULT, .help = "compute threads (default: all cores)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16", .def_str = "fp32", .arg = "fp32|bf16",
     .group = G_ENS, .help = "compute precision while fitting"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, ens_args *a) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, N_ROWS, a);
  cli_opt_table tab = {rows, N_ROWS, a, NULL, NULL};
  int help, first, rc = cli_options_parse_operands("ensemble", argc, argv, &tab, 1, &help, &first);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a->out_text[0] || !a->method_text[0])
    return cli_usage_errorf("ensemble", "--out and --method are required (see --help)");
  a->out = a->out_text;
  a->data = a->data_text[0] ? a->data_text : NULL;
  a->features_csv = a->features_text[0] ? a->features_text : NULL;
  a->method = method_index(a->method_text);
  a->split = a->split_train ? DS_TRAIN : DS_VALID;
  a->members = argv + first;
  a->m = argc - first;
  if (a->m < 2) return cli_usage_errorf("ensemble", "an ensemble needs at least 2 member models (got %d)", a->m);
  if (a->method != ENS_MEAN && a->method != ENS_VOTE && !a->data)
    return cli_usage_errorf("ensemble", "--method %s is fit on labelled studies: give --data DIR",
                            method_names[a->method]);
  return -1;
}

/* Members must exist and be distinct files. */
static int check_members(const ens_args *a, mskx_err *e) {
  char (*real)[PATH_MAX] = calloc((size_t)a->m, sizeof *real);
  if (!real) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = MSKX_OK;
  for (int i = 0; !rc && i < a->m; i++) {
    if (!realpath(a->members[i], real[i])) rc = err_set(e, MSKX_EIO, "%s: no such file", a->members[i]);
    for (int j = 0; !rc && j < i; j++)
      if (!strcmp(real[i], real[j]))
        rc = err_set(e, MSKX_EINVAL, "members %d and %d are the same file (%s); list each model once", j + 1, i + 1,
                     a->members[i]);
  }
  free(real);
  return rc;
}

/* Without data: every member must load and must not be an ensemble. */
static int load_members(const ens_args *a, const predictor_options *po, mskx_err *e) {
  for (int i = 0; i < a->m; i++) {
    predictor *p = NULL;
    int rc = predictor_load(a->members[i], po, &p, e);
    if (!rc && predictor_get_info(p)->kind == PNODE_ENSEMBLE)
      rc = err_set(e, MSKX_EUNSUPPORTED, "%s: an ensemble cannot be a member of an ensemble (use its members)",
                   a->members[i]);
    predictor_free(p);
    if (rc) return err_prefix(e, "member %d", i + 1);
  }
  return MSKX_OK;
}

static void progress(void *ctx, int member, int n_members, int done, int total) {
  int tty = *(int *)ctx;
  if (tty) fprintf(stderr, "\r[ensemble] member %d/%d: %d/%d studies\033[K%s", member + 1, n_members, done, total,
                   done == total && member + 1 == n_members ? "\n" : "");
  else if (done == total) fprintf(stderr, "[ensemble] member %d/%d: %d studies predicted\n", member + 1, n_members, total);
}

/* Long member paths keep their distinctive tail. */
static void print_row(const char *name, const ens_scores *s) {
  size_t l = strlen(name);
  printf("%s%-*s %7.4f %9.4f %7.4f\n", l > 44 ? "..." : "", l > 44 ? 41 : 44, l > 44 ? name + l - 41 : name, s->auc,
         s->log_loss, s->kappa);
}

/* Fits the method on the data, prints the comparison, fills weights/coef and the "fit" record. */
static int fit(const ens_args *a, const ens_data *d, const dataset *ds, double *w, double *coef, double *b,
               cJSON *info, mskx_err *e) {
  int n = d->n, m = d->m, rc = MSKX_OK, iters = 0;
  double *q = malloc((size_t)n * sizeof *q), *oof = malloc((size_t)n * sizeof *oof);
  ens_scores *ms = malloc((size_t)m * sizeof *ms), s, cv;
  if (!q || !oof || !ms) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int j = 0; j < m; j++) w[j] = 1;
  if (!rc && a->method == ENS_WEIGHTED) rc = ens_fit_weights(d->p, d->y, n, m, w, &iters, e);
  if (!rc && a->method == ENS_STACK) rc = ens_fit_stack(d->p, d->y, n, m, a->folds, a->seed, ENS_DEFAULT_C, coef, b, oof, e);
  if (!rc) rc = ens_combine_all(d, (ens_method)a->method, w, coef, *b, q, e);
  if (!rc) rc = ens_score_members(d->p, d->thr, NULL, d->y, n, m, ms, e);
  if (!rc) rc = ens_score(q, NULL, a->threshold, d->y, n, &s, e);
  if (!rc && a->method == ENS_STACK) rc = ens_score(oof, NULL, a->threshold, d->y, n, &cv, e);
  if (rc) goto done;
  cJSON_AddStringToObject(info, "data", ds->root);
  cJSON_AddStringToObject(info, "split", d->split->name);
  cJSON_AddNumberToObject(info, "n_studies", n);
  printf("%-44s %7s %9s %7s   (%s split, %d studies)\n", "", "AUROC", "log-loss", "kappa", d->split->name, n);
  cJSON *mem = cJSON_AddArrayToObject(info, "members");
  for (int j = 0; j < m; j++) {
    cJSON_AddItemToArray(mem, ens_scores_json(&ms[j]));
    print_row(a->members[j], &ms[j]);
  }
  char name[64];
  snprintf(name, sizeof name, "ensemble (%s%s)", method_names[a->method],
           a->method >= ENS_WEIGHTED ? ", in-sample" : "");
  print_row(name, &s);
  cJSON_AddItemToObject(info, "validation", ens_scores_json(&s));
  if (a->method == ENS_WEIGHTED) {
    cJSON_AddStringToObject(info, "objective", "log-loss of the weighted mean, weights = softmax(a), gradient descent");
    cJSON_AddNumberToObject(info, "iterations", iters);
  }
  if (a->method == ENS_STACK) {
    snprintf(name, sizeof name, "ensemble (stack, %d-fold cross-validated)", a->folds);
    print_row(name, &cv);
    cJSON *o = ens_scores_json(&cv);
    cJSON_AddNumberToObject(o, "folds", a->folds);
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON_AddItemToObject(info, "cv", o);
    cJSON_AddStringToObject(info, "objective", "L2 logistic regression on logit(p), C = 1 (scikit-learn's default)");
    cJSON_AddNumberToObject(info, "C", ENS_DEFAULT_C);
  }
done:
  free(ms);
  free(q);
  free(oof);
  return rc;
}

/* "kappa 0.61 [0.52, 0.70]" style figures of one group, into the record. */
static cJSON *group_json(const eval_group *g) {
  cJSON *o = cJSON_CreateObject();
  const int ids[2] = {METRIC_KAPPA, METRIC_AUC};
  for (int k = 0; k < 2; k++) {
    cJSON *v = cJSON_AddObjectToObject(o, metric_names[ids[k]]);
    double x[3] = {g->value[ids[k]], g->ci_lo[ids[k]], g->ci_hi[ids[k]]};
    const char *n[3] = {"value", "ci_lo", "ci_hi"};
    for (int i = 0; i < 3; i++) json_add_finite(v, n[i], x[i]);
  }
  return o;
}

/* mskx ensemble --method stack-features: collect, fit, report out of fold, write. */
static int stack_features(const ens_args *a, const predictor_options *po, mskx_err *e) {
  dataset *ds = NULL;
  sf_data d;
  sf_fit f;
  memset(&d, 0, sizeof d);
  memset(&f, 0, sizeof f);
  eval_results *res = NULL;
  study_pred *sp = NULL;
  predict_options pr = {a->agg ? AGG_MAX : AGG_MEAN, a->tta, 0, 0};
  int tty = isatty(STDERR_FILENO);
  fprintf(stderr, "mskx ensemble: stack-features fits on the %s split: its members must not have been trained on "
          "it (the out-of-fold figures below are the honest ones; in-sample figures are not accuracy)\n",
          a->split == DS_TRAIN ? "train" : "valid");
  int rc = dataset_open(a->data, NULL, &ds, e);
  if (!rc) rc = sf_collect((const char *const *)a->members, a->m, ds, a->split, po, &pr, progress, &tty, &d, e);
  if (!rc && a->features_csv) rc = sf_write_features_csv(&d, a->features_csv, e);
  if (!rc) rc = sf_fit_run(&d, a->folds, a->seed, &f, e);
  if (!rc && !(sp = calloc((size_t)d.n, sizeof *sp))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < d.n; i++)
    sp[i] = (study_pred){d.split->studies[d.study[i]].path, ds->parts[d.part[i]], f.oof[i], d.y[i]};
  eval_options eo;
  eval_options_default(&eo);
  eo.threshold = a->threshold;
  eo.seed = a->seed;
  if (!rc) rc = metrics_evaluate(sp, d.n, &eo, &res, e);
  ens_scores *ms = rc ? NULL : malloc((size_t)d.m * sizeof *ms), cv;
  if (!rc && !ms) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = ens_score_members(d.member_p, NULL, d.member_thr, d.y, d.n, d.m, ms, e);
  if (!rc) rc = ens_score(f.oof, NULL, a->threshold, d.y, d.n, &cv, e);
  cJSON *info = rc ? NULL : cJSON_CreateObject();
  if (!rc) {
    const char *split = d.split->name;
    printf("fit split: %s, %d studies, %d features from %d members; C = %g by %d-fold cross-validation "
           "(stratified by part and class)\n", split, d.n, d.d, d.m, f.C, f.folds);
    printf("%-44s %7s %9s %7s\n", "", "AUROC", "log-loss", "kappa");
    cJSON_AddStringToObject(info, "data", ds->root);
    cJSON_AddStringToObject(info, "split", split);
    cJSON_AddNumberToObject(info, "n_studies", d.n);
    cJSON_AddNumberToObject(info, "skipped_images", (double)d.skipped_images);
    cJSON_AddStringToObject(info, "warning", "the members must not have been trained on the fit split");
    cJSON *mem = cJSON_AddArrayToObject(info, "members");
    for (int j = 0; j < d.m; j++) {
      cJSON_AddItemToArray(mem, ens_scores_json(&ms[j]));
      print_row(a->members[j], &ms[j]);
    }
    char name[80];
    snprintf(name, sizeof name, "stack-features, %d-fold out-of-fold", f.folds);
    print_row(name, &cv);
    const eval_group *g = &res->overall;
    printf("out-of-fold kappa %.4f [%.4f, %.4f], AUROC %.4f [%.4f, %.4f] (95%% bootstrap, %d resamples by part)\n",
           g->value[METRIC_KAPPA], g->ci_lo[METRIC_KAPPA], g->ci_hi[METRIC_KAPPA], g->value[METRIC_AUC],
           g->ci_lo[METRIC_AUC], g->ci_hi[METRIC_AUC], eo.n_boot);
    cJSON *o = ens_scores_json(&cv);
    cJSON_AddNumberToObject(o, "folds", f.folds);
    cJSON_AddNumberToObject(o, "seed", (double)a->seed);
    cJSON_AddItemToObject(o, "bootstrap", group_json(g));
    cJSON_AddItemToObject(info, "cv", o);
    cJSON *grid = cJSON_AddArrayToObject(info, "C_grid");
    for (int c = 0; c < SF_N_C; c++) {
      cJSON *x = cJSON_CreateObject();
      cJSON_AddNumberToObject(x, "C", f.Cs[c]);
      cJSON_AddNumberToObject(x, "cv_log_loss", f.cv_loss[c]);
      cJSON_AddItemToArray(grid, x);
    }
    cJSON_AddStringToObject(info, "objective", "StandardScaler, then L2 logistic regression (scikit-learn's "
                            "objective) on the members' pooled penultimate features; C by out-of-fold log-loss");
    rc = sf_write_json(a->out, (const char *const *)a->members, a->m, d.dims, &f, d.d, a->threshold, info, e);
  }
  predictor *check = NULL;
  if (!rc && (rc = predictor_load(a->out, po, &check, e))) err_prefix(e, "the written ensemble does not load");
  predictor_free(check);
  if (!rc) fprintf(stderr, "mskx ensemble: wrote %s (stack-features of %d members, %d features)\n", a->out, a->m, d.d);
  eval_results_free(res);
  free(ms);
  free(sp);
  sf_fit_free(&f);
  sf_data_free(&d);
  dataset_free(ds);
  return rc;
}

int cmd_ensemble(int argc, char **argv) {
  ens_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  mskx_err e = {0, ""};
  predictor_options popt = {a.threads, a.bf16 ? PREC_BF16 : PREC_FP32, 0, {0}};
  if (a.method == ENS_STACK_FEATURES) {
    rc = check_members(&a, &e);
    if (!rc) rc = stack_features(&a, &popt, &e);
    return rc ? cli_error("ensemble", &e) : 0;
  }
  dataset *ds = NULL;
  ens_data d;
  memset(&d, 0, sizeof d);
  double *w = calloc((size_t)a.m, sizeof *w), *coef = calloc((size_t)a.m, sizeof *coef), b = 0;
  ens_member_out *mo = calloc((size_t)a.m, sizeof *mo);
  cJSON *info = a.data ? cJSON_CreateObject() : NULL;
  int tty = isatty(STDERR_FILENO);
  rc = !w || !coef || !mo || (a.data && !info) ? err_set(&e, MSKX_ENOMEM, "out of memory") : check_members(&a, &e);
  if (!rc && !a.data) rc = load_members(&a, &popt, &e);
  if (!rc && a.data) {
    eval_config cfg;
    eval_config_default(&cfg);
    cfg.split = a.split;
    cfg.po.agg = a.agg ? AGG_MAX : AGG_MEAN;
    cfg.po.tta_flip = a.tta;
    rc = dataset_open(a.data, NULL, &ds, &e);
    if (!rc) rc = ens_collect((const char *const *)a.members, a.m, ds, &cfg, &popt, progress, &tty, &d, &e);
    if (!rc) rc = fit(&a, &d, ds, w, coef, &b, info, &e);
  }
  for (int j = 0; !rc && j < a.m; j++) mo[j] = (ens_member_out){a.members[j], a.method == ENS_WEIGHTED ? w[j] : 1.0};
  if (!rc) {
    rc = ens_write_json(a.out, method_names[a.method], a.threshold, mo, a.m, a.method == ENS_STACK ? coef : NULL, b,
                        info, &e);
    info = NULL;
  }
  predictor *check = NULL;
  if (!rc && (rc = predictor_load(a.out, &popt, &check, &e))) err_prefix(&e, "the written ensemble does not load");
  predictor_free(check);
  if (!rc) {
    fprintf(stderr, "mskx ensemble: wrote %s (%s of %d members", a.out, method_names[a.method], a.m);
    if (a.method == ENS_WEIGHTED)
      for (int j = 0; j < a.m; j++) fprintf(stderr, "%s%.4f", j ? ", " : "; weights ", w[j]);
    if (a.method == ENS_STACK)
      for (int j = 0; j < a.m; j++) fprintf(stderr, "%s%.4f", j ? ", " : "; coefficients ", coef[j]);
    fprintf(stderr, ")\n");
  }
  if (rc) cli_error("ensemble", &e);
  cJSON_Delete(info);
  ens_data_free(&d);
  dataset_free(ds);
  free(w);
  free(coef);
  free(mo);
  return rc ? 1 : 0;
}
