/* mskx eval: a model, bundle or ensemble over a split of a dataset; writes
 * predictions.csv, probabilities.csv, metrics.json and report.html, and
 * prints the kappa table beside the MURA paper's. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/evaluate.h"
#include "eval/report.h"
#include "eval/table.h"

#define EVAL_MIN_BOOT 1000
#define EVAL_MAX_BOOT 1000000
#define EVAL_SHOWN_SKIPS 10

static const char *const usage =
    "usage: mskx eval --model M --data DIR [options]\n"
    "\n"
    "Predicts every study of a split, aggregates image probabilities per study and\n"
    "decides at the model's stored threshold (bundles: each member's). Writes to --out:\n"
    "  predictions.csv    competition format 'study_path/,0|1' (no header)\n"
    "  probabilities.csv  study,part,n_images,probability,label\n"
    "  metrics.json       kappa, AUROC, ... per part and overall with 95% bootstrap CIs\n"
    "  report.html        self-contained report (figures embedded)\n"
    "and prints the kappa table beside the MURA paper's model and radiologists.\n"
    "\n"
    "  --model FILE           model (.safetensors), per-part bundle or ensemble (.json)\n"
    "  --data DIR             dataset (MURA layout, folder tree or generic CSV)\n"
    "  --split valid|train    split to evaluate (default valid)\n"
    "  --out DIR              output folder (default ./eval-<split>)\n"
    "  --agg mean|max         study probability from image probabilities (default mean)\n"
    "  --tta flip             average each image with its horizontal mirror\n"
    "  --cam DIR              also write a CAM overlay PNG for every image into DIR\n"
    "  --bootstrap N          bootstrap resamples, 0 or >= 1000 (default 2000)\n"
    "  --seed S               bootstrap seed (default 20171220)\n"
    "  --threads N            compute threads (default: all cores), pinned one per CPU\n"
    "                         (MSKX_PIN=0 or OMP_PROC_BIND turns pinning off)\n"
    "  --precision fp32|bf16|auto  compute precision (default fp32; auto: the faster\n"
    "                         of one timed batch each, named in the report)\n"
    "  --run RUN_DIR          training run whose log.jsonl the report plots (default:\n"
    "                         the model's folder when it holds one)\n"
    "  --strict               an unreadable image is an error (default: skipped, counted)\n"
    "  --no-report            do not write report.html\n"
    "  --json                 print metrics.json instead of the table\n"
    CLI_DICOM_HELP
    "  -h, --help             this help\n";

typedef struct eval_args {
  const char *model, *data, *out, *cam, *run;
  int split, agg, tta, bf16, threads, n_boot, json, strict, no_report;
  uint64_t seed;
  char out_buf[64];
  dicom_options dicom;
} eval_args;

static int eval_choice(const char *opt, const char *v, const char *a, const char *b, int *out) {
  return cli_parse_choice("eval", opt, v, a, b, out) ? 2 : 0;
}

static int parse_args(int argc, char **argv, eval_args *a) {
  static const struct option opts[] = {
      {"model", required_argument, 0, 'm'}, {"data", required_argument, 0, 'd'},
      {"split", required_argument, 0, 'S'}, {"out", required_argument, 0, 'o'},
      {"agg", required_argument, 0, 'a'},   {"tta", required_argument, 0, 't'},
      {"cam", required_argument, 0, 'c'},   {"bootstrap", required_argument, 0, 'b'},
      {"seed", required_argument, 0, 's'},  {"threads", required_argument, 0, 'T'},
      {"precision", required_argument, 0, 'P'}, {"run", required_argument, 0, 'r'},
      {"strict", no_argument, 0, 'x'},      {"no-report", no_argument, 0, 'n'},
      {"json", no_argument, 0, 'j'},        {"help", no_argument, 0, 'h'},
      CLI_DICOM_OPTIONS,                    {0, 0, 0, 0}};
  memset(a, 0, sizeof *a);
  a->split = DS_VALID;
  a->n_boot = EVAL_DEFAULT_BOOT;
  a->seed = EVAL_DEFAULT_SEED;
  long v;
  int c, rc, x = 0;
  optind = 1;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'm': a->model = optarg; break;
      case 'd': a->data = optarg; break;
      case 'o': a->out = optarg; break;
      case 'c': a->cam = optarg; break;
      case 'r': a->run = optarg; break;
      case 'x': a->strict = 1; break;
      case 'n': a->no_report = 1; break;
      case 'j': a->json = 1; break;
      case 'S':
        if ((rc = eval_choice("split", optarg, "valid", "train", &x))) return rc;
        a->split = x ? DS_TRAIN : DS_VALID;
        break;
      case 'a':
        if ((rc = eval_choice("agg", optarg, "mean", "max", &a->agg))) return rc;
        break;
      case 't':
        if ((rc = eval_choice("tta", optarg, "flip", NULL, &x))) return rc;
        a->tta = 1;
        break;
      case 'P':
        if (cli_parse_precision("eval", optarg, &a->bf16)) return 2;
        break;
      case 'b':
        if (cli_parse_int("eval", "bootstrap", optarg, 0, EVAL_MAX_BOOT, &v)) return 2;
        if (v > 0 && v < EVAL_MIN_BOOT)
          return cli_errorf("eval", "--bootstrap: %ld resamples are too few for a 95%% interval (use 0 or >= %d)", v,
                            EVAL_MIN_BOOT) + 1;
        a->n_boot = (int)v;
        break;
      case 's':
        if (cli_parse_int("eval", "seed", optarg, 0, 0x7fffffffL, &v)) return 2;
        a->seed = (uint64_t)v;
        break;
      case 'T':
        if (cli_parse_int("eval", "threads", optarg, 1, 1024, &v)) return 2;
        a->threads = (int)v;
        break;
      case 'h': fputs(usage, stdout); return 0;
      case CLI_DICOM_OPT_WINDOW: case CLI_DICOM_OPT_FRAMES:
        if (cli_dicom_option("eval", c, optarg, &a->dicom)) return 2;
        break;
      default: return cli_usage_error("eval");
    }
  }
  if (optind < argc) return cli_errorf("eval", "unexpected argument '%s'", argv[optind]) + 1;
  if (!a->model || !a->data) return cli_errorf("eval", "--model and --data are required (see --help)") + 1;
  if (!a->out) {
    snprintf(a->out_buf, sizeof a->out_buf, "eval-%s", a->split == DS_TRAIN ? "train" : "valid");
    a->out = a->out_buf;
  }
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
  if (a->run) {
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
  } else if (!found && a->run) {
    fprintf(stderr, "mskx eval: warning: %s holds no log.jsonl; the report has no training curves\n", a->run);
    snprintf(note, n, "%s holds no log.jsonl.", a->run);
  }
}

static int write_report(const eval_args *a, predictor *p, const eval_run *run, const eval_results *res,
                        mskx_err *e) {
  char path[4096], note[1200];
  int rc = path_join(path, sizeof path, a->out, "report.html", e);
  report_gallery gal;
  train_logs logs;
  memset(&logs, 0, sizeof logs);
  predict_options po = {a->agg ? AGG_MAX : AGG_MEAN, a->tta, 0, 0};
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
  dataset *d = NULL;
  predictor *p = NULL;
  eval_run *run = NULL;
  eval_results *res = NULL;
  predictor_options popt = {a.threads, (precision)a.bf16, 0, {.max_pixels = 0, .dicom = a.dicom}};
  cli_pin_threads(a.threads);
  int tty = isatty(STDERR_FILENO);
  eval_config cfg;
  eval_config_default(&cfg);
  cfg.split = a.split;
  cfg.po.agg = a.agg ? AGG_MAX : AGG_MEAN;
  cfg.po.tta_flip = a.tta;
  cfg.cam_dir = a.cam;
  cfg.strict = a.strict;
  cfg.progress = progress;
  cfg.progress_ctx = &tty;
  rc = dataset_open(a.data, NULL, &d, &e);
  if (!rc) rc = predictor_load(a.model, &popt, &p, &e);
  if (!rc) rc = eval_run_split(p, d, &cfg, &run, &e);
  if (!rc) {
    warn_skips(run);
    rc = eval_run_metrics(run, a.n_boot, a.seed, &res, &e);
  }
  if (!rc) rc = write_outputs(&a, p, run, res, &e);
  if (rc) cli_error("eval", &e);
  plot_release_fonts();
  eval_results_free(res);
  eval_run_free(run);
  predictor_free(p);
  dataset_free(d);
  return rc ? 1 : 0;
}
