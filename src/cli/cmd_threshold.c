/* mskx threshold: chooses a decision threshold on a split (kappa, Youden's J
 * or a target sensitivity) and stores it in the model file's metadata, the
 * ensemble's JSON, or each member model of a per-part bundle. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "cli/cli.h"
#include "core/error.h"
#include "core/json.h"
#include "core/util.h"
#include "eval/evaluate.h"
#include "eval/threshold_targets.h"

static const char *const usage =
    "usage: mskx threshold --model M --data DIR --policy P [options]\n"
    "\n"
    "Chooses the decision threshold (abnormal when study probability > t) on a split\n"
    "and stores it: in a model file's metadata, in an ensemble's JSON, or for a per-part\n"
    "bundle in each member model (chosen on the studies that member serves).\n"
    "Candidates: midpoints between consecutive distinct study probabilities (plus 0.5\n"
    "and the points below/above all of them); ties go to the candidate nearest 0.5.\n"
    "\n"
    "  --model FILE           model (.safetensors), per-part bundle or ensemble (.json)\n"
    "  --data DIR             dataset\n"
    "  --policy P             kappa          maximise Cohen's kappa\n"
    "                         youden         maximise sensitivity + specificity - 1\n"
    "                         sensitivity=S  the highest threshold with sensitivity >= S\n"
    "  --split valid|train    split to choose on (default valid)\n"
    "  --dry-run              print the choice, store nothing\n"
    "  --agg mean|max         study probability from image probabilities (default mean)\n"
    "  --tta flip             average each image with its horizontal mirror\n"
    "  --threads N            compute threads (default: all cores)\n"
    "  --precision fp32|bf16  compute precision (default fp32)\n"
    "  --json                 print the result as JSON\n"
    "  -h, --help             this help\n";

typedef struct thr_args {
  const char *model, *data;
  thr_policy pol;
  int split, dry, agg, tta, threads, bf16, json;
} thr_args;

static int parse_args(int argc, char **argv, thr_args *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
      {"policy", required_argument, 0, 'p'}, {"split", required_argument, 0, 'S'},
      {"dry-run", no_argument, 0, 'n'},     {"agg", required_argument, 0, 'a'},
      {"tta", required_argument, 0, 't'},   {"threads", required_argument, 0, 'T'},
      {"precision", required_argument, 0, 'P'}, {"json", no_argument, 0, 'j'},
      {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->split = DS_VALID;
  int c, have_policy = 0;
  long v;
  mskx_err e = {0, ""};
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': a->model = optarg; break;
      case 'd': a->data = optarg; break;
      case 'n': a->dry = 1; break;
      case 'j': a->json = 1; break;
      case 'p':
        if (thr_policy_parse(optarg, &a->pol, &e)) return cli_errorf("threshold", "--policy: %s", e.msg) + 1;
        have_policy = 1;
        break;
      case 'S':
        if (strcmp(optarg, "valid") && strcmp(optarg, "train"))
          return cli_errorf("threshold", "--split: expected valid or train, got '%s'", optarg) + 1;
        a->split = strcmp(optarg, "train") ? DS_VALID : DS_TRAIN;
        break;
      case 'a':
        if (strcmp(optarg, "mean") && strcmp(optarg, "max"))
          return cli_errorf("threshold", "--agg: expected mean or max, got '%s'", optarg) + 1;
        a->agg = !strcmp(optarg, "max");
        break;
      case 't':
        if (strcmp(optarg, "flip")) return cli_errorf("threshold", "--tta: expected flip, got '%s'", optarg) + 1;
        a->tta = 1;
        break;
      case 'P':
        if (cli_parse_choice("threshold", "precision", optarg, "fp32", "bf16", &a->bf16)) return 2;
        break;
      case 'T':
        if (cli_parse_int("threshold", "threads", optarg, 1, 1024, &v)) return 2;
        a->threads = (int)v;
        break;
      case 'h': fputs(usage, stdout); return 0;
      default: return cli_usage_error("threshold");
    }
  }
  if (optind < argc) return cli_errorf("threshold", "unexpected argument '%s'", argv[optind]) + 1;
  if (!a->model || !a->data || !have_policy)
    return cli_errorf("threshold", "--model, --data and --policy are required (see --help)") + 1;
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
  cfg.split = a.split;
  cfg.po.agg = a.agg ? AGG_MAX : AGG_MEAN;
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
