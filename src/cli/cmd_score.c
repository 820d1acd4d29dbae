/* mskx score: metrics of a study-level predictions CSV against MURA's
 * labelled-studies CSV, per body part and overall, with bootstrap CIs. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "core/json.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/metrics.h"
#include "eval/studyset.h"
#include "eval/table.h"

/* At least this many resamples for a percentile interval (when any). */
#define SCORE_MIN_BOOT 1000
#define SCORE_MAX_BOOT 1000000

static void usage(FILE *f) {
  fprintf(f,
          "usage: mskx score --pred PRED.csv --truth TRUTH.csv [options]\n\n"
          "Scores study-level predictions against labelled studies: Cohen's kappa, AUROC,\n"
          "accuracy, sensitivity, specificity, precision and F1 per body part and overall,\n"
          "with percentile-bootstrap 95%% confidence intervals, beside the MURA paper's kappas.\n\n"
          "  --pred FILE        predictions, lines 'study_path/,value' without header; values\n"
          "                     are probabilities in [0,1], or decisions if all exactly 0 or 1\n"
          "  --truth FILE       labels, e.g. MURA-v1.1/valid_labeled_studies.csv ('study_path/,0|1')\n"
          "  --threshold T      abnormal when probability > T (default %g, the paper's rule)\n"
          "  --bootstrap N      bootstrap resamples, 0 or >= %d (default %d; 0 = no CIs)\n"
          "  --seed S           bootstrap seed (default %u)\n"
          "  --allow-missing    score only the predicted studies when some labelled ones lack\n"
          "                     a prediction (default: error)\n"
          "  --json             print the JSON results instead of the table\n"
          "  --out FILE         also write the JSON results to FILE (atomically)\n"
          "  -h, --help         this help\n",
          EVAL_DEFAULT_THRESHOLD, SCORE_MIN_BOOT, EVAL_DEFAULT_BOOT, EVAL_DEFAULT_SEED);
}

typedef struct score_args {
  const char *pred, *truth, *out;
  int json, allow_missing;
  eval_options opt;
} score_args;

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, score_args *a) {
  static const struct option opts[] = {
      {"pred", required_argument, 0, 'p'},      {"truth", required_argument, 0, 't'},
      {"threshold", required_argument, 0, 'T'}, {"bootstrap", required_argument, 0, 'b'},
      {"seed", required_argument, 0, 's'},      {"out", required_argument, 0, 'o'},
      {"json", no_argument, 0, 'j'},            {"allow-missing", no_argument, 0, 'm'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  eval_options_default(&a->opt);
  optind = 1;
  int c;
  long v;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'p': a->pred = optarg; break;
      case 't': a->truth = optarg; break;
      case 'o': a->out = optarg; break;
      case 'j': a->json = 1; break;
      case 'm': a->allow_missing = 1; break;
      case 'T':
        if (cli_parse_double("score", "threshold", optarg, 0.0, 1.0, &a->opt.threshold)) return 2;
        break;
      case 'b':
        if (cli_parse_int("score", "bootstrap", optarg, 0, SCORE_MAX_BOOT, &v)) return 2;
        if (v > 0 && v < SCORE_MIN_BOOT)
          return cli_errorf("score", "--bootstrap: %ld resamples are too few for a 95%% interval (use 0 or >= %d)",
                            v, SCORE_MIN_BOOT) + 1;
        a->opt.n_boot = (int)v;
        break;
      case 's':
        if (cli_parse_int("score", "seed", optarg, 0, 0x7fffffffL, &v)) return 2;
        a->opt.seed = (uint64_t)v;
        break;
      case 'h': usage(stdout); return 0;
      default: return cli_usage_error("score");
    }
  }
  if (optind < argc) return cli_errorf("score", "unexpected argument '%s'", argv[optind]) + 1;
  if (!a->pred || !a->truth) return cli_errorf("score", "--pred and --truth are required (see --help)") + 1;
  return -1;
}

static int report(const score_args *a, const eval_results *r) {
  mskx_err e = {0, ""};
  cJSON *j = eval_results_to_json(r);
  size_t len = 0;
  char *js = j ? json_print_line(j, &len) : NULL;
  cJSON_Delete(j);
  if (!js) return cli_errorf("score", "out of memory");
  int rc = 0;
  if (a->out && file_write_atomic(a->out, js, len, &e)) rc = cli_error("score", &e);
  if (!rc && a->json) {
    fputs(js, stdout);
  } else if (!rc) {
    char *table;
    if (eval_results_format_table(r, &table, &e)) rc = cli_error("score", &e);
    else fputs(table, stdout);
    free(table);
  }
  free(js);
  return rc;
}

int cmd_score(int argc, char **argv) {
  score_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  mskx_err e = {0, ""};
  study_table *pred = NULL, *truth = NULL;
  study_pred *sp = NULL;
  eval_results *r = NULL;
  int n = 0, missing = 0;
  if (studyset_read(a.pred, STUDYSET_PRED, &pred, &e) || studyset_read(a.truth, STUDYSET_TRUTH, &truth, &e)) {
    rc = cli_error("score", &e);
    goto done;
  }
  if (studyset_join(pred, truth, a.allow_missing, &sp, &n, &missing, &e)) {
    rc = cli_error("score", &e);
    if (e.code == MSKX_ESHAPE) fprintf(stderr, "mskx score: pass --allow-missing to score only the predicted studies\n");
    goto done;
  }
  if (missing)
    fprintf(stderr, "mskx score: warning: %d labelled studies in %s have no prediction; scoring the %d predicted\n",
            missing, a.truth, n);
  a.opt.decisions_only = studyset_all_decisions(pred);
  if (metrics_evaluate(sp, n, &a.opt, &r, &e)) {
    rc = cli_error("score", &e);
    goto done;
  }
  rc = report(&a, r);
done:
  eval_results_free(r);
  free(sp);
  studyset_free(pred);
  studyset_free(truth);
  return rc;
}
