/* mskx lr-find: option parsing and printing over lr_find_run() (the
 * learning-rate finder, src/train/lr_find.h). */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/plots.h"
#include "train/lr_find.h"
#include "train/trainer.h"

static const char *const usage_head =
    "usage: mskx lr-find --data DIR --arch ARCH [options]\n"
    "\n"
    "The learning-rate finder (Smith 2017; fastai's lr_find): one training step per\n"
    "mini-batch from the initialisation `mskx train` would use, the rate growing\n"
    "exponentially from --start to --end; the loss is smoothed (beta 0.98, bias-corrected)\n"
    "and the sweep stops once it exceeds 4x its minimum. Writes lr_find.csv and\n"
    "lr_find.png in --out and prints the suggestions: the steepest descent of the\n"
    "smoothed loss and the minimum's tenth (what `train --lr auto` uses).\n"
    "The training options below mean what they mean for `mskx train` (same defaults).\n"
    "\n";

/* The training options that shape the sweep (train_options' rows); the
 * rest (epochs, schedule, run folder, ...) do not apply to it. */
static const char *const train_flags[] = {
    "data", "arch", "aux-weight", "parts", "size", "keep-aspect", "batch", "seed", "threads", "loader-threads",
    "precision", "pretrained", "freeze-backbone-epochs", "optimizer", "beta1", "beta2", "eps", "weight-decay",
    "momentum", "nesterov", "rho", "class-weights", "hflip", "vflip", "rotate", "shift", "zoom", "brightness",
    "contrast", "no-augment", "strict", "max-skipped", "dicom-window", "dicom-frames", NULL};

typedef struct lf_cli {
  char out[1024];
} lf_cli;

static const opt_spec cli_rows[] = {
    {.flag = "out", .type = OPT_PATH, .off = offsetof(lf_cli, out), .size = sizeof(((lf_cli *)0)->out), .def_str = ".",
     .arg = "DIR", .group = "The sweep", .help = "folder for lr_find.csv and lr_find.png"},
};

static void on_progress(void *ctx, const train_progress *p) {
  int tty = *(int *)ctx;
  if (p->phase != TRAIN_PHASE_LR_FIND) return;
  if (!tty && p->batch % 10 && p->batch != p->batches) return;
  fprintf(stderr, "%slr-find %d/%d  lr %.2e  smoothed loss %.4f%s", tty ? "\r\033[K" : "", p->batch, p->batches, p->lr,
          p->loss, tty ? "" : "\n");
}

int cmd_lr_find(int argc, char **argv) {
  train_config tc;
  lr_find_options lo;
  lf_cli a;
  train_config_default(&tc);
  lr_find_options_default(&lo);
  opt_defaults(cli_rows, 1, &a);
  unsigned char given[TRAIN_OPTIONS_MAX];
  cli_opt_table tabs[] = {{lr_find_option_rows, lr_find_option_count, &lo, NULL, NULL},
                          {cli_rows, 1, &a, NULL, NULL},
                          {train_options, train_options_count, &tc, train_flags, given}};
  int help, rc = cli_options_parse("lr-find", argc, argv, tabs, 3, &help);
  if (rc) return rc;
  if (help) {
    cli_print_help(usage_head, tabs, 3, NULL);
    return 0;
  }
  train_config *c = &tc;
  mskx_err e = {0};
  snprintf(c->out, sizeof c->out, "%s", a.out);  /* the same size: never cut */
  if (train_config_resolve(c, given, &e) || train_config_validate(c, &e) || lr_find_options_validate(&lo, &e))
    return cli_usage_errorf("lr-find", "%s", e.msg);
  if (mkdir_p(a.out, &e)) return cli_error("lr-find", &e);
  cli_pin_threads(c->threads);
  int tty = isatty(2);
  lr_find_result r;
  rc = lr_find_run(c, NULL, &lo, on_progress, &tty, &r, &e);
  if (tty) fputs("\r\033[K", stderr);
  if (!rc) rc = lr_find_write(&r, a.out, &e);
  plot_release_fonts();
  if (rc) {
    lr_find_result_free(&r);
    return cli_error("lr-find", &e);
  }
  fprintf(stderr, "%d steps%s; wrote %s/lr_find.csv and %s/lr_find.png\n", r.n,
          r.diverged ? " (stopped: the smoothed loss passed 4x its minimum)" : "", a.out, a.out);
  printf("steepest descent  %.3g\n", r.lr_steepest);
  printf("minimum / 10      %.3g\n", r.lr_min_tenth);
  printf("suggested lr      %.3g\n", r.lr_chosen);
  lr_find_result_free(&r);
  return 0;
}
