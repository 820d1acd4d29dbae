/* mskx eval: a model, bundle or ensemble over a split of a dataset; writes
 * predictions.csv, probabilities.csv, metrics.json and report.html, and
 * prints the kappa table beside the MURA paper's. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "eval/table.h"

#define EVAL_MIN_BOOT 1000
#define EVAL_MAX_BOOT 1000000
#define EVAL_SHOWN_SKIPS 10

static const char *const usage_head =
    "usage: mskx eval --model M --data DIR [options]\n"
    "\n"
    "Predicts every study of a split, aggregates image probabilities per study and\n"
    "decides at the model's stored threshold (bundles: each member's). Writes to --out:\n"
    "  predictions.csv    competition format 'study_path/,0|1' (no header)\n"
    "  probabilities.csv  study,part,n_images,probability,label\n"
    "  metrics.json       kappa, AUROC, ... per part and overall with 95% bootstrap CIs\n"
    "  report.html        self-contained report (figures embedded)\n"
    "and prints the kappa table beside the MURA paper's model and radiologists.\n"
    "\n";

typedef struct eval_args {
  char model[4096], data[4096], out[4096], cam[4096], run[4096];
  int split_train, agg_max, tta, bf16, threads, n_boot, json, strict, no_report;
  uint64_t seed;
  cli_dicom_args dicom;
} eval_args;

#define A(m) .off = offsetof(eval_args, m), .size = sizeof(((eval_args *)0)->m)
#define G_EVAL "Evaluation"
static const opt_spec rows[] = {
    {.flag = "model", .type = OPT_PATH, A(model), .arg = "FILE", .group = G_EVAL, .flags = OPT_REQUIRED,
     .help = "model (.safetensors), per-part bundle or ensemble (.json)"},
    {.flag = "data", .type = OPT_PATH, A(data), .arg = "DIR", .group = G_EVAL, .flags = OPT_REQUIRED,
     .help = "dataset (MURA layout, folder tree or generic CSV)"},
    {.flag = "split", .type = OPT_CHOICE, A(split_train), .choices = "valid|train", .def_str = "valid",
     .arg = "valid|train", .group = G_EVAL, .help = "split to evaluate"},
    {.flag = "out", .type = OPT_PATH, A(out), .arg = "DIR", .group = G_EVAL, .help = "output folder (default ./eval-<split>)"},
    {.flag = "agg", .type = OPT_CHOICE, A(agg_max), .choices = "mean|max", .def_str = "mean", .arg = "mean|max",
     .group = G_EVAL, .help = "study probability from image probabilities"},
    {.flag = "tta", .type = OPT_CHOICE, A(tta), .choices = "none|flip", .def_str = "none", .arg = "none|flip",
     .group = G_EVAL, .help = "flip: average each image with its horizontal mirror"},
    {.flag = "cam", .type = OPT_PATH, A(cam), .arg = "DIR", .group = G_EVAL,
     .help = "also write a CAM overlay PNG for every image into DIR"},
    {.flag = "bootstrap", .type = OPT_INT, A(n_boot), .lo = 0, .hi = EVAL_MAX_BOOT, .def = EVAL_DEFAULT_BOOT,
     .arg = "N", .group = G_EVAL, .help = "bootstrap resamples, 0 or >= 1000"},
    {.flag = "seed", .type = OPT_U64, A(seed), .lo = 0, .hi = 18446744073709551615.0, .def = EVAL_DEFAULT_SEED,
     .arg = "S", .group = G_EVAL, .help = "bootstrap seed"},
    {.flag = "threads", .type = OPT_INT, A(threads), .lo = 1, .hi = OPT_MAX_THREADS, .arg = "N", .group = G_EVAL,
     .flags = OPT_HIDE_DEFAULT,
     .help = "compute threads (default: all cores), pinned one per CPU\n"
             "(MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)"},
    {.flag = "precision", .type = OPT_CHOICE, A(bf16), .choices = "fp32|bf16|auto", .def_str = "fp32",
     .arg = "fp32|bf16|auto", .group = G_EVAL,
     .help = "compute precision (auto: the faster of one timed batch each,\nnamed in the report)"},
    {.flag = "run", .type = OPT_PATH, A(run), .arg = "RUN_DIR", .group = G_EVAL,
     .help = "training run whose log.jsonl the report plots (default:\nthe model's folder when it holds one)"},
    {.flag = "strict", .type = OPT_BOOL, A(strict), .group = G_EVAL,
     .help = "an unreadable image is an error (default: skipped, counted)"},
    {.flag = "no-report", .type = OPT_BOOL, A(no_report), .group = G_EVAL, .help = "do not write report.html"},
    {.flag = "json", .type = OPT_BOOL, A(json), .group = G_EVAL, .help = "print metrics.json instead of the table"},
};

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, eval_args *a) {
  memset(a, 0, sizeof *a);
  opt_defaults(rows, sizeof rows / sizeof *rows, a);
  opt_defaults(cli_dicom_rows, cli_dicom_row_count, &a->dicom);
  cli_opt_table tabs[] = {{rows, sizeof rows / sizeof *rows, a, NULL, NULL},
                          {cli_dicom_rows, cli_dicom_row_count, &a->dicom, NULL, NULL}};
  int help, rc = cli_options_parse("eval", argc, argv, tabs, 2, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, tabs, 2, NULL);
    return 0;
  }
  mskx_err e = {0, ""};
  if (opt_check_all(rows, sizeof rows / sizeof *rows, a, &e)) return cli_usage_errorf("eval", "%s (see --help)", e.msg);
  if (a->n_boot > 0 && a->n_boot < EVAL_MIN_BOOT)
    return cli_usage_errorf("eval", "--bootstrap: %d resamples are too few for a 95%% interval (use 0 or >= %d)",
                            a->n_boot, EVAL_MIN_BOOT);
  if (!a->out[0]) snprintf(a->out, sizeof a->out, "eval-%s", a->split_train ? "train" : "valid");
  return -1;
}

static void progress(void *ctx, int done, int total, long images, double seconds) {
  int tty = *(int *)ctx;
  double ips = seconds > 0 ? images / seconds : 0, eta = done ? seconds * (total - done) / done : 0;
  if (tty) {
    fprintf(stderr, "\r[eval] %d/%d studies  %.1f images/s  eta %.0fs\033[K", done, total, ips, eta);
    if (done == total) fputc('\n', stderr);
  } else if (done == total || (done * 10 / total) != ((done - 1) * 10 / total)) {
    fprintf(stderr, "[eval] %d/%d studies, %.1f images/s\n", done, total, ips);
  }
}

/* The training log for the report: --run, else the model's own folder. */
static void find_logs(const eval_args *a, const predictor_info *pi, train_logs *logs, char *note, size_t n) {
  char dir[4096];
  mskx_err e = {0, ""};
  int found = 0;
  note[0] = 0;
  if (a->run[0]) {
    snprintf(dir, sizeof dir, "%s", a->run);
  } else {
    if (pi->kind == PNODE_ENSEMBLE) return;
    snprintf(dir, sizeof dir, "%s", a->model);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
  }
  if (train_logs_read(dir, logs, &found, &e)) {
    fprintf(stderr, "mskx eval: warning: no training curves in the report: %s\n", e.msg);
    snprintf(note, n, "The training log could not be read: %s", e.msg);
  } else if (!found && a->run[0]) {
    fprintf(stderr, "mskx eval: warning: %s holds no log.jsonl; the report has no training curves\n", a->run);
    snprintf(note, n, "%s holds no log.jsonl.", a->run);
  }
}

static int write_report(const eval_args *a, predictor *p, const eval_run *run, const eval_results *res,
                        mskx_err *e) {
  char path[4096], note[sizeof ((eval_args *)0)->run + 1200];  /* a message naming --run */
  int rc = path_join(path, sizeof path, a->out, "report.html", e);
  report_gallery gal;
  train_logs logs;
  memset(&logs, 0, sizeof logs);
  predict_options po = {a->agg_max ? AGG_MAX : AGG_MEAN, a->tta, 0, 0};
  if (!rc) rc = report_gallery_build(p, run, &po, REPORT_GALLERY_MAX, &gal, e);
  if (rc) return rc;
  find_logs(a, predictor_get_info(p), &logs, note, sizeof note);
  report_input in = {a->model, predictor_get_info(p), precision_name(predictor_precision(p)), run, res, &gal, &logs,
                     note[0] ? note : NULL, report_data_is_synthetic(run->d->root)};
  rc = report_write_html(path, &in, e);
  report_gallery_free(&gal);
  train_logs_free(&logs);
  return rc;
}

static int write_outputs(const eval_args *a, predictor *p, const eval_run *run, const eval_results *res, mskx_err *e) {
  char path[4096], *json = NULL, *table = NULL;
  int rc = mkdir_p(a->out, e);
  if (!rc) rc = path_join(path, sizeof path, a->out, "predictions.csv", e);
  if (!rc) rc = eval_write_predictions_csv(run, path, e);
  if (!rc) rc = path_join(path, sizeof path, a->out, "probabilities.csv", e);
  if (!rc) rc = eval_write_probabilities_csv(run, path, e);
  if (!rc) rc = path_join(path, sizeof path, a->out, "metrics.json", e);
  if (!rc) rc = eval_write_metrics_json(run, res, a->model, path, &json, e);
  if (!rc && !a->no_report) rc = write_report(a, p, run, res, e);
  if (!rc && !a->json) rc = eval_results_format_table(res, &table, e);
  if (!rc) {
    fputs(a->json ? json : table, stdout);
    fprintf(stderr, "mskx eval: wrote predictions.csv, probabilities.csv, metrics.json%s to %s\n",
            a->no_report ? "" : ", report.html", a->out);
  }
  free(json);
  free(table);
  return rc;
}

static void warn_skips(const eval_run *r) {
  if (!r->n_skipped) return;
  for (int i = 0; i < r->n_skip_msgs && i < EVAL_SHOWN_SKIPS; i++)
    fprintf(stderr, "mskx eval: warning: skipped unreadable image: %s\n", r->skip_msgs[i]);
  fprintf(stderr, "mskx eval: warning: %ld unreadable images skipped (counted in metrics.json run.skipped_images)\n",
          r->n_skipped);
  for (int i = 0; i < r->n_studies; i++)
    if (!r->studies[i].ok)
      fprintf(stderr, "mskx eval: warning: study %s left out: none of its images could be read\n",
              r->studies[i].ds->path);
}

int cmd_eval(int argc, char **argv) {
  eval_args a;
  int rc = parse_args(argc, argv, &a);
  if (rc >= 0) return rc;
  mskx_err e = {0, ""};
  eval_session s;
  eval_results *res = NULL;
  predictor_options popt = {a.threads, (precision)a.bf16, 0,
                           {.max_pixels = 0, .dicom = cli_dicom_args_options(&a.dicom)}};
  cli_pin_threads(a.threads);
  int tty = isatty(STDERR_FILENO);
  eval_config cfg;
  eval_config_default(&cfg);
  cfg.split = a.split_train ? DS_TRAIN : DS_VALID;
  cfg.po.agg = a.agg_max ? AGG_MAX : AGG_MEAN;
  cfg.po.tta_flip = a.tta;
  cfg.cam_dir = a.cam[0] ? a.cam : NULL;
  cfg.strict = a.strict;
  cfg.progress = progress;
  cfg.progress_ctx = &tty;
  rc = eval_session_open(a.model, a.data, &popt, &cfg, &s, &e);
  if (!rc) {
    warn_skips(s.run);
    rc = eval_run_metrics(s.run, a.n_boot, a.seed, &res, &e);
  }
  if (!rc) rc = write_outputs(&a, s.pred, s.run, res, &e);
  if (rc) cli_error("eval", &e);
  plot_release_fonts();
  eval_results_free(res);
  eval_session_close(&s);
  return rc ? 1 : 0;
}
