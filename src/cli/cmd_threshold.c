/* mskx threshold: chooses a decision threshold on a split (kappa, Youden's J
 * or a target sensitivity) and stores it in the model file's metadata, the
 * ensemble's JSON, or each member model of a per-part bundle. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/json.h"
#include "core/util.h"
#include "eval/evaluate.h"
#include "eval/threshold_targets.h"

static const char *const usage_head =
    "usage: mskx threshold --model M --data DIR --policy P [options]\n"
    "\n"
    "Chooses the decision threshold (abnormal when study probability > t) on a split\n"
    "and stores it: in a model file's metadata, in an ensemble's JSON, or for a per-part\n"
    "bundle in each member model (chosen on the studies that member serves).\n"
    "Candidates: midpoints between consecutive distinct study probabilities (plus 0.5\n"
    "and the points below/above all of them); ties go to the candidate nearest 0.5.\n"
    "\n";

typedef struct thr_args {
  char model[4096], data[4096], policy[64];
  thr_policy pol;
  int split_train, dry, agg_max, tta, threads, bf16, json;
} thr_args;

static int check_policy(const char *v, mskx_err *e) {
  thr_policy p;
  return thr_policy_parse(v, &p, e);
}

#define A(m) .off = offsetof(thr_args, m), .size = sizeof(((thr_args *)0)->m)
#define G_THR "options"
static const opt_spec rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "FILE", .group = G_THR, .flags = OPT_REQUIRED,
     .help = "model (.safetensors), per-part bundle or ensemble (.json)"},
    {.flag = "data", .type = OPT_PATH, A(data), .arg = "DIR", .group = G_THR, .flags = OPT_REQUIRED, .help = "dataset"},
    {.flag = "policy", .type = OPT_STRING, A(policy), .arg = "P", .group = G_THR, .flags = OPT_REQUIRED,
     .check = check_policy,
     .help = "kappa          maximise Cohen's kappa\n"
             "youden         maximise sensitivity + specificity - 1\n"
             "sensitivity=S  the highest threshold with sensitivity >= S"},
    {.flag = "split", .type = OPT_CHOICE, A(split_train), .choices = "valid|train", .def_str = "valid",
     .arg = "valid|train", .group = G_THR, .help = "split to choose on"},
    {.flag = "dry-run", .type = OPT_BOOL, A(dry), .group = G_THR, .help = "print the choice, store nothing"},
    {.flag = "agg", .type = OPT_CHOICE, A(agg_max), .choices = "mean|max", .def_str = "mean", .arg = "mean|max",
     .group = G_THR, .help = "study probability from image probabilities"},
    {.flag = "tta", .type = OPT_CHOICE, A(tta), .choices = "none|flip", .def_str = "none", .arg = "none|flip",
     .group = G_THR, .help = "flip: average each image with its horizontal mirror"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_THR,
     .flags = OPT_HIDE_DEFAULT, .help = "compute threads (default: all cores)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16", .def_str = "fp32", .arg = "fp32|bf16",
     .group = G_THR, .help = "compute precision"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_THR, .help = "print the result as JSON"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, thr_args *a) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, N_ROWS, a);
  cli_opt_table tab = {rows, N_ROWS, a, NULL, NULL};
  int help, rc = cli_options_parse("threshold", argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (!a->model[0] || !a->data[0] || !a->policy[0])
    return cli_usage_errorf("threshold", "--model, --data and --policy are required (see --help)");
  mskx_err e = {0, ""};
  if (thr_policy_parse(a->policy, &a->pol, &e)) return cli_usage_errorf("threshold", "--policy: %s", e.msg);
  return -1;
}

static cJSON *point_json(const thr_point *pt) {
  cJSON *o = cJSON_CreateObject();
  double v[5] = {pt->threshold, pt->kappa, pt->youden, pt->sensitivity, pt->specificity};
  const char *k[5] = {"threshold", "kappa", "youden", "sensitivity", "specificity"};
  for (int i = 0; o && i < 5; i++) json_add_finite(o, k[i], v[i]);
  return o;
}

static void print_results(const thr_args *a, const thr_target *t, int n) {
  if (a->json) {
    cJSON *arr = cJSON_CreateArray();
    for (int i = 0; arr && i < n; i++) {
      cJSON *o = cJSON_CreateObject();
      cJSON_AddStringToObject(o, "path", t[i].path);
      cJSON_AddNumberToObject(o, "n_studies", t[i].n);
      cJSON_AddItemToObject(o, "before", point_json(&t[i].before));
      if (t[i].chosen) cJSON_AddItemToObject(o, "after", point_json(&t[i].after));
      else cJSON_AddStringToObject(o, "error", t[i].why);
      cJSON_AddBoolToObject(o, "stored", t[i].stored);
      cJSON_AddItemToArray(arr, o);
    }
    char *s = cJSON_Print(arr);
    if (s) printf("%s\n", s);
    free(s);
    cJSON_Delete(arr);
    return;
  }
  const char *mn = thr_policy_metric_name(&a->pol);
  for (int i = 0; i < n; i++) {
    const thr_target *x = &t[i];
    if (!x->chosen) {
      printf("%s: %d studies: no threshold chosen (%s); keeping %.6g\n", x->path, x->n, x->why, x->old_thr);
      continue;
    }
    thr_policy kp = {THR_KAPPA, 0};
    printf("%s: %d studies: threshold %.6g -> %.6g", x->path, x->n, x->old_thr, x->after.threshold);
    if (a->pol.kind != THR_SENSITIVITY)
      printf("  %s %.4f -> %.4f", mn, thr_metric(&a->pol, &x->before), thr_metric(&a->pol, &x->after));
    if (a->pol.kind != THR_KAPPA) printf("  kappa %.4f -> %.4f", thr_metric(&kp, &x->before), thr_metric(&kp, &x->after));
    printf("  sensitivity %.3f -> %.3f  specificity %.3f -> %.3f%s\n", x->before.sensitivity, x->after.sensitivity,
           x->before.specificity, x->after.specificity, x->stored ? "  (stored)" : a->dry ? "  (dry run)" : "");
  }
}

int cmd_threshold(int argc, char **argv) {
  thr_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  mskx_err e = {0, ""};
  eval_session s;
  thr_target *t = NULL;
  int nt = 0;
  predictor_options popt = {a.threads, a.bf16 ? PREC_BF16 : PREC_FP32, 0, {0}};
  eval_config cfg;
  eval_config_default(&cfg);
  cfg.split = a.split_train ? DS_TRAIN : DS_VALID;
  cfg.po.agg = a.agg_max ? AGG_MAX : AGG_MEAN;
  cfg.po.tta_flip = a.tta;
  rc = eval_session_open(a.model, a.data, &popt, &cfg, &s, &e);
  if (!rc && s.run->n_skipped)
    fprintf(stderr, "mskx threshold: warning: %ld unreadable images skipped\n", s.run->n_skipped);
  if (!rc) rc = thr_targets_make(s.run, s.pred, a.model, &t, &nt, &e);
  bool ens = !rc && predictor_get_info(s.pred)->kind == PNODE_ENSEMBLE;
  int chosen = 0;
  for (int i = 0; !rc && i < nt; i++) {
    rc = thr_target_choose(&t[i], &a.pol, ens, a.dry, &e);
    chosen += t[i].chosen;
  }
  if (!rc) print_results(&a, t, nt);
  if (!rc && chosen == 0) rc = err_set(&e, MSKX_EINVAL, "no threshold could be chosen: %s", nt ? t[0].why : "no studies");
  if (rc) cli_error("threshold", &e);
  thr_targets_free(t, nt);
  eval_session_close(&s);
  return rc ? 1 : 0;
}
