/* mskx score: metrics of a study-level predictions CSV against MURA's
 * labelled-studies CSV, per body part and overall, with bootstrap CIs. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/json.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/metrics.h"
#include "eval/studyset.h"
#include "eval/table.h"

/* At least this many resamples for a percentile interval (when any). */
#define SCORE_MIN_BOOT 1000
#define SCORE_MAX_BOOT 1000000

static const char *const usage_head =
    "usage: mskx score --pred PRED.csv --truth TRUTH.csv [options]\n\n"
    "Scores study-level predictions against labelled studies: Cohen's kappa, AUROC,\n"
    "accuracy, sensitivity, specificity, precision and F1 per body part and overall,\n"
    "with percentile-bootstrap 95% confidence intervals, beside the MURA paper's kappas.\n\n";

#define STR_(x) #x
#define STR(x) STR_(x)

typedef struct score_args {
  char pred_text[4096], truth_text[4096], out_text[4096];
  const char *pred, *truth, *out;   /* out: NULL when not given */
  int json, allow_missing;
  eval_options opt;
} score_args;

#define A(m) .off = offsetof(score_args, m), .size = sizeof(((score_args *)0)->m)
#define G_SCORE "options"
static const opt_spec rows[] = {
    {.flag = "pred", .type = OPT_PATH, A(pred_text), .arg = "FILE", .group = G_SCORE, .flags = OPT_REQUIRED,
     .help = "predictions, lines 'study_path/,value' without header; values\n"
             "are probabilities in [0,1], or decisions if all exactly 0 or 1"},
    {.flag = "truth", .type = OPT_PATH, A(truth_text), .arg = "FILE", .group = G_SCORE, .flags = OPT_REQUIRED,
     .help = "labels, e.g. MURA-v1.1/valid_labeled_studies.csv ('study_path/,0|1')"},
    {.flag = "threshold", .type = OPT_DOUBLE, A(opt.threshold), .lo = 0, .hi = 1, .def = EVAL_DEFAULT_THRESHOLD,
     .arg = "T", .group = G_SCORE, .help = "abnormal when probability > T (the paper's rule)"},
    {.flag = "bootstrap", .type = OPT_INT, A(opt.n_boot), .lo = 0, .hi = SCORE_MAX_BOOT, .def = EVAL_DEFAULT_BOOT,
     .arg = "N", .group = G_SCORE, .help = "bootstrap resamples, 0 or >= " STR(SCORE_MIN_BOOT) " (0 = no CIs)"},
    {.flag = "seed", .type = OPT_U64, A(opt.seed), .lo = 0, .hi = 0x7fffffff, .def = EVAL_DEFAULT_SEED, .arg = "S",
     .group = G_SCORE, .help = "bootstrap seed"},
    {.flag = "allow-missing", .type = OPT_BOOL, A(allow_missing), .group = G_SCORE,
     .help = "score only the predicted studies when some labelled ones lack\na prediction (default: error)"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_SCORE, .help = "print the JSON results instead of the table"},
    {.flag = "out", .type = OPT_PATH, A(out_text), .arg = "FILE", .group = G_SCORE,
     .help = "also write the JSON results to FILE (atomically)"},
};
#define N_ROWS (sizeof rows / sizeof *rows)

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, score_args *a) {
  memset(a, 0, sizeof *a);
  eval_options_default(&a->opt);
  opt_defaults(rows, N_ROWS, a);
  cli_opt_table tab = {rows, N_ROWS, a, NULL, NULL};
  int help, rc = cli_options_parse("score", argc, argv, &tab, 1, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, &tab, 1, NULL);
    return 0;
  }
  if (a->opt.n_boot > 0 && a->opt.n_boot < SCORE_MIN_BOOT)
    return cli_usage_errorf("score", "--bootstrap: %d resamples are too few for a 95%% interval (use 0 or >= %d)",
                            a->opt.n_boot, SCORE_MIN_BOOT);
  if (!a->pred_text[0] || !a->truth_text[0])
    return cli_usage_errorf("score", "--pred and --truth are required (see --help)");
  a->pred = a->pred_text;
  a->truth = a->truth_text;
  a->out = a->out_text[0] ? a->out_text : NULL;
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
