/* mskx lr-find: option parsing and printing over lr_find_run() (the
 * learning-rate finder, src/train/lr_find.h). */
#include <getopt.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/error.h"
#include "core/util.h"
#include "eval/plots.h"
#include "train/lr_find.h"
#include "train/trainer.h"

static const char *const usage =
    "usage: mskx lr-find --data DIR --arch ARCH [options]\n"
    "\n"
    "The learning-rate finder (Smith 2017; fastai's lr_find): one training step per\n"
    "mini-batch from the initialisation `mskx train` would use, the rate growing\n"
    "exponentially from --start to --end; the loss is smoothed (beta 0.98, bias-corrected)\n"
    "and the sweep stops once it exceeds 4x its minimum. Writes lr_find.csv and\n"
    "lr_find.png in --out and prints the suggestions: the steepest descent of the\n"
    "smoothed loss and the minimum's tenth (what `train --lr auto` uses).\n"
    "\n"
    "  --data DIR              dataset (training split)\n"
    "  --arch ARCH             as for train (default densenet169)\n"
    "  --pretrained FILE       torchvision-named safetensors; head re-initialised\n"
    "  --start LR              first rate (default 1e-7)    --end LR   last rate (default 10)\n"
    "  --steps N               mini-batches (default 100)   --out DIR  (default .)\n"
    "  --parts all|P1,P2       parts to sweep on (default all)\n"
    "  --size S --batch B --seed S --threads T --loader-threads T --precision fp32|bf16|auto\n"
    "  --optimizer adam|adamw|sgd|rmsprop --weight-decay W --momentum M\n"
    "  --class-weights mura|balanced|none|0:W0,1:W1 --freeze-backbone-epochs K\n"
    "  --keep-aspect --no-augment   as for train (training defaults otherwise)\n"
    "  -h, --help              this help\n";

enum {
  O_DATA = 256, O_ARCH, O_PRE, O_START, O_END, O_STEPS, O_OUT, O_PARTS, O_SIZE, O_BATCH, O_SEED, O_THREADS,
  O_LTHREADS, O_PREC, O_OPT, O_WD, O_MOM, O_CW, O_FREEZE, O_KEEP, O_NOAUG, O_HELP
};

static const struct option longs[] = {
    {"data", 1, 0, O_DATA}, {"arch", 1, 0, O_ARCH}, {"pretrained", 1, 0, O_PRE}, {"start", 1, 0, O_START},
    {"end", 1, 0, O_END}, {"steps", 1, 0, O_STEPS}, {"out", 1, 0, O_OUT}, {"parts", 1, 0, O_PARTS},
    {"size", 1, 0, O_SIZE}, {"batch", 1, 0, O_BATCH}, {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS},
    {"loader-threads", 1, 0, O_LTHREADS}, {"precision", 1, 0, O_PREC}, {"optimizer", 1, 0, O_OPT},
    {"weight-decay", 1, 0, O_WD}, {"momentum", 1, 0, O_MOM}, {"class-weights", 1, 0, O_CW},
    {"freeze-backbone-epochs", 1, 0, O_FREEZE}, {"keep-aspect", 0, 0, O_KEEP}, {"no-augment", 0, 0, O_NOAUG},
    {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};

static int copy_str(char *dst, size_t n, const char *opt, const char *v) {
  if (strlen(v) >= n) return cli_errorf("lr-find", "--%s: value too long", opt);
  strcpy(dst, v);
  return 0;
}

typedef struct lf_args {
  train_config c;
  lr_find_options o;
  const char *out;
  double wd, mom;
  int wd_set, mom_set;
} lf_args;

static int parse_one(lf_args *a, int o) {
  train_config *c = &a->c;
  long v;
  int bf16;
  switch (o) {
    case O_DATA: return copy_str(c->data, sizeof c->data, "data", optarg);
    case O_ARCH: return copy_str(c->arch, sizeof c->arch, "arch", optarg);
    case O_PRE: return copy_str(c->pretrained, sizeof c->pretrained, "pretrained", optarg);
    case O_PARTS: return copy_str(c->parts, sizeof c->parts, "parts", optarg);
    case O_OPT: return copy_str(c->optim.name, sizeof c->optim.name, "optimizer", optarg);
    case O_CW: return copy_str(c->class_weights, sizeof c->class_weights, "class-weights", optarg);
    case O_OUT: a->out = optarg; return 0;
    case O_START: return cli_parse_double("lr-find", "start", optarg, 1e-12, 1e3, &a->o.start);
    case O_END: return cli_parse_double("lr-find", "end", optarg, 1e-12, 1e3, &a->o.end);
    case O_WD: a->wd_set = 1; return cli_parse_double("lr-find", "weight-decay", optarg, 0, 10, &a->wd);
    case O_MOM: a->mom_set = 1; return cli_parse_double("lr-find", "momentum", optarg, 0, 1, &a->mom);
    case O_KEEP: c->keep_aspect = 1; return 0;
    case O_NOAUG: memset(&c->aug, 0, sizeof c->aug); return 0;
    case O_PREC:
      if (cli_parse_precision("lr-find", optarg, &bf16)) return 1;
      c->prec = (precision)bf16;
      return 0;
    default: break;
  }
  static const struct {
    int o;
    const char *name;
    long lo, hi;
    size_t off;
  } ints[] = {{O_STEPS, "steps", LR_FIND_MIN_STEPS, LR_FIND_MAX_STEPS, 0},
              {O_SIZE, "size", 1, 8192, offsetof(train_config, size)},
              {O_BATCH, "batch", 1, 4096, offsetof(train_config, batch)},
              {O_THREADS, "threads", 1, 1024, offsetof(train_config, threads)},
              {O_LTHREADS, "loader-threads", 1, 256, offsetof(train_config, loader_threads)},
              {O_FREEZE, "freeze-backbone-epochs", 0, 100000, offsetof(train_config, freeze_backbone_epochs)},
              {O_SEED, "seed", 0, 2147483647L, 0}};
  for (size_t i = 0; i < sizeof ints / sizeof *ints; i++) {
    if (ints[i].o != o) continue;
    if (cli_parse_int("lr-find", ints[i].name, optarg, ints[i].lo, ints[i].hi, &v)) return 1;
    if (o == O_STEPS)
      a->o.steps = (int)v;
    else if (o == O_SEED)
      c->seed = (uint64_t)v;
    else
      *(int *)((char *)c + ints[i].off) = (int)v;
    return 0;
  }
  return cli_usage_error("lr-find");
}

static void on_progress(void *ctx, const train_progress *p) {
  int tty = *(int *)ctx;
  if (p->phase != TRAIN_PHASE_LR_FIND) return;
  if (!tty && p->batch % 10 && p->batch != p->batches) return;
  fprintf(stderr, "%slr-find %d/%d  lr %.2e  smoothed loss %.4f%s", tty ? "\r\033[K" : "", p->batch, p->batches, p->lr,
          p->loss, tty ? "" : "\n");
}

int cmd_lr_find(int argc, char **argv) {
  lf_args a;
  memset(&a, 0, sizeof a);
  train_config_default(&a.c);
  lr_find_options_default(&a.o);
  a.out = ".";
  optind = 1;
  int o;
  while ((o = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
    if (o == O_HELP || o == 'h') {
      fputs(usage, stdout);
      return 0;
    }
    if (o == '?') return cli_usage_error("lr-find");
    if (parse_one(&a, o)) return 1;
  }
  if (optind < argc) return cli_errorf("lr-find", "unexpected argument '%s'", argv[optind]);
  train_config *c = &a.c;
  mskx_err e = {0};
  char oname[16];
  snprintf(oname, sizeof oname, "%s", c->optim.name);
  if (optim_config_defaults(oname, &c->optim, &e)) return cli_errorf("lr-find", "--optimizer: %s", e.msg);
  if (a.wd_set) c->optim.weight_decay = a.wd;
  if (a.mom_set) c->optim.momentum = a.mom;
  if (copy_str(c->out, sizeof c->out, "out", a.out)) return 1;
  if (train_config_validate(c, &e) || lr_find_options_validate(&a.o, &e)) return cli_error("lr-find", &e);
  if (mkdir_p(a.out, &e)) return cli_error("lr-find", &e);
  cli_pin_threads(c->threads);
  int tty = isatty(2);
  lr_find_result r;
  int rc = lr_find_run(c, NULL, &a.o, on_progress, &tty, &r, &e);
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
