/* mskx train: option parsing and progress display over train_run(); under
 * mpirun (or srun) it also starts MPI and ends the job if a process fails. */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "core/util.h"
#include "dist/dist.h"
#include "eval/plots.h"
#include "models/net.h"
#include "train/trainer.h"
#ifdef MSKX_HAVE_MPI
#include <mpi.h>
#endif

static const char *const usage =
    "usage: mskx train --data DIR --out RUN_DIR [options]\n"
    "       mskx train --resume RUN_DIR [--epochs N]\n"
    "\n"
    "Trains a network on a MURA-format dataset (defaults: the MURA paper's recipe).\n"
    "\n"
    "Data and model:\n"
    "  --data DIR              dataset (MURA-v1.1 folder, its parent, or a generic CSV)\n"
    "  --out RUN_DIR           run folder: config.json, log.jsonl, last/best.safetensors\n"
    "  --arch ARCH             one of the architectures below (default densenet169)\n"
    "  --aux-weight W          inception_v3: loss = main + W * auxiliary head's (default 0.4;\n"
    "                          0 turns the auxiliary head off and allows sizes from 75)\n"
    "  --parts all|P1,P2       body parts to train on (default all: one model)\n"
    "  --per-part              one model per part, plus RUN_DIR/bundle.json routing studies;\n"
    "                          --arch may then map parts: XR_HAND=densenet121,densenet169\n"
    "                          (the unnamed entry is the default)\n"
    "  --size S                input size (default: the arch's)  --keep-aspect  pad, not stretch\n"
    "  --batch B               batch size (default 8)       --epochs N      (default 10)\n"
    "  --seed S                (default 0)                  --threads T     compute threads\n"
    "  --loader-threads T      image decoding threads (default 2); compute threads are pinned\n"
    "                          one per CPU (MSKX_PIN=0 or OMP_PROC_BIND turns that off)\n"
    "  --precision fp32|bf16   bf16: mixed precision, fp32 master weights and optimizer state\n"
    "  --pretrained FILE       e.g. ImageNet weights: torchvision .pth, Keras .h5 (DenseNets) or\n"
    "                          safetensors, by content (see mskx import --help); a 1000-way\n"
    "                          head is re-initialised, Keras's batch-norm epsilon kept\n"
    "                          (inception_v3: transform_input on, as torchvision's ImageNet\n"
    "                          weights, unless the file's metadata says transform_input=0)\n"
    "  --freeze-backbone-epochs K   train only the classifier for the first K epochs\n"
    "Optimisation:\n"
    "  --optimizer adam|adamw|sgd|rmsprop (default adam)   --lr LR (default 1e-4)\n"
    "  --lr auto               sweep with the learning-rate finder first (mskx lr-find's defaults)\n"
    "                          and train with the minimum's tenth; recorded in config.json\n"
    "  --beta1 B --beta2 B --eps E --weight-decay W --momentum M --nesterov --rho R\n"
    "  --schedule constant|step|plateau|cosine (default plateau)\n"
    "    step:    --drop D (0.5) --epochs-drop N (10): lr0 * D^floor((1+epoch)/N)\n"
    "    plateau: --monitor val_loss|val_kappa --factor F (0.1) --patience P (1)\n"
    "             --min-delta D --cooldown C --min-lr L  (Keras ReduceLROnPlateau)\n"
    "    cosine:  --warmup-epochs W --min-lr L\n"
    "  --class-weights mura|balanced|none|0:W0,1:W1   (default mura: the paper's per-part weights)\n"
    "  --early-stop N          stop after N epochs without improvement (default off)\n"
    "  --select kappa|loss     best checkpoint by validation kappa (default) or loss\n"
    "Augmentation (training only; defaults: the paper's flips and 30 degree rotations):\n"
    "  --hflip P --vflip P --rotate DEG --shift F --zoom F --brightness F --contrast F\n"
    "  --no-augment\n"
    "Other:\n"
    "  --strict                unreadable images are errors (default: skipped and counted)\n"
    "  --max-skipped F         fraction of an epoch's training images that may be skipped as\n"
    "                          unreadable (default 0.01); beyond it, or when none can be read,\n"
    "                          training stops with an error\n"
    "  --cache                 keep decoded, resized images in a memory-mapped cache\n"
    "  --max-batches N         at most N training batches per epoch (quick experiments)\n"
    "  --force                 overwrite an existing run in RUN_DIR\n"
    "  --resume RUN_DIR        continue an interrupted run from its last checkpoint\n"
    "Data-parallel training (docs/distributed.md): mpirun -np P mskx train ...\n"
    "  runs P processes, each on its share of every batch (--batch is the global\n"
    "  batch and must divide by P); rank 0 writes the run folder.\n"
    "  --sync-bn               batch-norm statistics over all processes (default: per process)\n"
    "  --bucket-kb K           gradient all-reduce bucket size (default 4096)\n"
    "DICOM images (.dcm files in the dataset, docs/dicom.md):\n" CLI_DICOM_HELP;

enum {
  O_DATA = 256, O_OUT, O_ARCH, O_PARTS, O_PERPART, O_SIZE, O_KEEP, O_BATCH, O_EPOCHS, O_SEED, O_THREADS, O_LTHREADS,
  O_PREC, O_PRE, O_FREEZE, O_OPT, O_LR, O_B1, O_B2, O_EPS, O_WD, O_MOM, O_NEST, O_RHO, O_SCHED, O_DROP, O_EDROP,
  O_MON, O_FACTOR, O_PAT, O_MIND, O_COOL, O_MINLR, O_WARM, O_CW, O_EARLY, O_SELECT, O_HFLIP, O_VFLIP, O_ROT,
  O_SHIFT, O_ZOOM, O_BRIGHT, O_CONTRAST, O_NOAUG, O_STRICT, O_MAXSKIP, O_CACHE, O_MAXB, O_FORCE, O_RESUME,
  O_SYNCBN, O_BUCKET, O_AUXW, O_HELP
};

static const struct option longs[] = {
    {"data", 1, 0, O_DATA}, {"out", 1, 0, O_OUT}, {"arch", 1, 0, O_ARCH}, {"parts", 1, 0, O_PARTS},
    {"per-part", 0, 0, O_PERPART}, {"size", 1, 0, O_SIZE}, {"keep-aspect", 0, 0, O_KEEP}, {"batch", 1, 0, O_BATCH},
    {"epochs", 1, 0, O_EPOCHS}, {"seed", 1, 0, O_SEED}, {"threads", 1, 0, O_THREADS},
    {"loader-threads", 1, 0, O_LTHREADS}, {"precision", 1, 0, O_PREC}, {"pretrained", 1, 0, O_PRE},
    {"freeze-backbone-epochs", 1, 0, O_FREEZE}, {"optimizer", 1, 0, O_OPT}, {"lr", 1, 0, O_LR},
    {"beta1", 1, 0, O_B1}, {"beta2", 1, 0, O_B2}, {"eps", 1, 0, O_EPS}, {"weight-decay", 1, 0, O_WD},
    {"momentum", 1, 0, O_MOM}, {"nesterov", 0, 0, O_NEST}, {"rho", 1, 0, O_RHO}, {"schedule", 1, 0, O_SCHED},
    {"drop", 1, 0, O_DROP}, {"epochs-drop", 1, 0, O_EDROP}, {"monitor", 1, 0, O_MON}, {"factor", 1, 0, O_FACTOR},
    {"patience", 1, 0, O_PAT}, {"min-delta", 1, 0, O_MIND}, {"cooldown", 1, 0, O_COOL}, {"min-lr", 1, 0, O_MINLR},
    {"warmup-epochs", 1, 0, O_WARM}, {"class-weights", 1, 0, O_CW}, {"early-stop", 1, 0, O_EARLY},
    {"select", 1, 0, O_SELECT}, {"hflip", 1, 0, O_HFLIP}, {"vflip", 1, 0, O_VFLIP}, {"rotate", 1, 0, O_ROT},
    {"shift", 1, 0, O_SHIFT}, {"zoom", 1, 0, O_ZOOM}, {"brightness", 1, 0, O_BRIGHT},
    {"contrast", 1, 0, O_CONTRAST}, {"no-augment", 0, 0, O_NOAUG}, {"strict", 0, 0, O_STRICT},
    {"max-skipped", 1, 0, O_MAXSKIP},
    {"cache", 0, 0, O_CACHE}, {"max-batches", 1, 0, O_MAXB}, {"force", 0, 0, O_FORCE}, {"resume", 1, 0, O_RESUME},
    {"sync-bn", 0, 0, O_SYNCBN}, {"bucket-kb", 1, 0, O_BUCKET}, {"aux-weight", 1, 0, O_AUXW},
    {"help", 0, 0, O_HELP}, CLI_DICOM_OPTIONS, {0, 0, 0, 0}};

typedef struct train_cli {
  train_config c;
  int force, epochs_set, size_set, aux_set;
  const char *resume;
  /* Optimizer and schedule options are applied after the names are known. */
  double opt_vals[8];
  int opt_set[8];
  double sched_vals[9];
  int sched_set[9];
} train_cli;

enum { OV_LR, OV_B1, OV_B2, OV_EPS, OV_WD, OV_MOM, OV_RHO, OV_NEST };
enum { SV_DROP, SV_EDROP, SV_FACTOR, SV_PAT, SV_MIND, SV_COOL, SV_MINLR, SV_WARM, SV_MON };

static int copy_str(char *dst, size_t n, const char *opt, const char *v) {
  if (strlen(v) >= n) return cli_usage_errorf("train", "--%s: value too long", opt);
  strcpy(dst, v);
  return 0;
}

static int num(const char *opt, double lo, double hi, double *out) {
  return cli_parse_double("train", opt, optarg, lo, hi, out);
}

static int parse_one(train_cli *t, int o, char *monitor) {
  train_config *c = &t->c;
  long v;
  int bf16;
  double d;
  switch (o) {
    case O_DATA: return copy_str(c->data, sizeof c->data, "data", optarg);
    case O_OUT: return copy_str(c->out, sizeof c->out, "out", optarg);
    case O_ARCH: return copy_str(c->arch, sizeof c->arch, "arch", optarg);
    case O_PARTS: return copy_str(c->parts, sizeof c->parts, "parts", optarg);
    case O_PERPART: c->per_part = 1; return 0;
    case O_KEEP: c->keep_aspect = 1; return 0;
    case O_SIZE:
      if (cli_parse_int("train", "size", optarg, 1, 8192, &v)) return CLI_EXIT_USAGE;
      c->size = (int)v;
      t->size_set = 1;
      return 0;
    case O_AUXW:
      if (num("aux-weight", 0, 100, &d)) return CLI_EXIT_USAGE;
      c->aux_weight = d;
      t->aux_set = 1;
      return 0;
    case O_BATCH: if (cli_parse_int("train", "batch", optarg, 1, 4096, &v)) return CLI_EXIT_USAGE; c->batch = (int)v; return 0;
    case O_EPOCHS:
      if (cli_parse_int("train", "epochs", optarg, 1, 100000, &v)) return CLI_EXIT_USAGE;
      c->epochs = (int)v;
      t->epochs_set = 1;
      return 0;
    case O_SEED: if (cli_parse_int("train", "seed", optarg, 0, 2147483647L, &v)) return CLI_EXIT_USAGE; c->seed = (uint64_t)v; return 0;
    case O_THREADS: if (cli_parse_int("train", "threads", optarg, 1, 1024, &v)) return CLI_EXIT_USAGE; c->threads = (int)v; return 0;
    case O_LTHREADS:
      if (cli_parse_int("train", "loader-threads", optarg, 1, 256, &v)) return CLI_EXIT_USAGE;
      c->loader_threads = (int)v;
      return 0;
    case O_PREC:
      if (cli_parse_choice("train", "precision", optarg, "fp32", "bf16", &bf16)) return CLI_EXIT_USAGE;
      c->prec = bf16 ? PREC_BF16 : PREC_FP32;
      return 0;
    case O_PRE: return copy_str(c->pretrained, sizeof c->pretrained, "pretrained", optarg);
    case O_FREEZE:
      if (cli_parse_int("train", "freeze-backbone-epochs", optarg, 0, 100000, &v)) return CLI_EXIT_USAGE;
      c->freeze_backbone_epochs = (int)v;
      return 0;
    case O_OPT: return copy_str(c->optim.name, sizeof c->optim.name, "optimizer", optarg);
    case O_SCHED: return copy_str(c->sched.name, sizeof c->sched.name, "schedule", optarg);
    case O_CW: return copy_str(c->class_weights, sizeof c->class_weights, "class-weights", optarg);
    case O_SELECT: return copy_str(c->select, sizeof c->select, "select", optarg);
    case CLI_DICOM_OPT_WINDOW: {
      dicom_options d;
      if (cli_dicom_option("train", CLI_DICOM_OPT_WINDOW, optarg, &d)) return 1;
      return copy_str(c->dicom_window, sizeof c->dicom_window, "dicom-window", optarg);
    }
    case CLI_DICOM_OPT_FRAMES: {
      dicom_options d;
      if (cli_dicom_option("train", CLI_DICOM_OPT_FRAMES, optarg, &d)) return 1;
      return copy_str(c->dicom_frames, sizeof c->dicom_frames, "dicom-frames", optarg);
    }
    case O_MON:
      if (strcmp(optarg, "val_loss") && strcmp(optarg, "val_kappa"))
        return cli_usage_errorf("train", "--monitor: expected val_loss or val_kappa, got '%s'", optarg);
      strcpy(monitor, optarg);
      t->sched_set[SV_MON] = 1;
      return 0;
    case O_EARLY: if (cli_parse_int("train", "early-stop", optarg, 0, 100000, &v)) return CLI_EXIT_USAGE; c->early_stop = (int)v; return 0;
    case O_MAXB: if (cli_parse_int("train", "max-batches", optarg, 0, 1L << 30, &v)) return CLI_EXIT_USAGE; c->max_batches = (int)v; return 0;
    case O_NEST: t->opt_set[OV_NEST] = 1; return 0;
    case O_NOAUG: memset(&c->aug, 0, sizeof c->aug); return 0;
    case O_STRICT: c->strict = 1; return 0;
    case O_MAXSKIP: if (num("max-skipped", 0, 1, &d)) return CLI_EXIT_USAGE; c->max_skipped = d; return 0;
    case O_CACHE: c->cache = 1; return 0;
    case O_SYNCBN: c->sync_bn = 1; return 0;
    case O_BUCKET:
      if (cli_parse_int("train", "bucket-kb", optarg, 1, 1L << 21, &v)) return CLI_EXIT_USAGE;
      c->bucket_kb = (int)v;
      return 0;
    case O_FORCE: t->force = 1; return 0;
    case O_RESUME: t->resume = optarg; return 0;
    case O_HFLIP: if (num("hflip", 0, 1, &d)) return CLI_EXIT_USAGE; c->aug.p_hflip = (float)d; return 0;
    case O_VFLIP: if (num("vflip", 0, 1, &d)) return CLI_EXIT_USAGE; c->aug.p_vflip = (float)d; return 0;
    case O_ROT: if (num("rotate", 0, 180, &d)) return CLI_EXIT_USAGE; c->aug.rotate_deg = (float)d; return 0;
    case O_SHIFT: if (num("shift", 0, 0.99, &d)) return CLI_EXIT_USAGE; c->aug.shift_frac = (float)d; return 0;
    case O_ZOOM: if (num("zoom", 0, 0.99, &d)) return CLI_EXIT_USAGE; c->aug.zoom = (float)d; return 0;
    case O_BRIGHT: if (num("brightness", 0, 1, &d)) return CLI_EXIT_USAGE; c->aug.brightness = (float)d; return 0;
    case O_CONTRAST: if (num("contrast", 0, 0.99, &d)) return CLI_EXIT_USAGE; c->aug.contrast = (float)d; return 0;
    default: break;
  }
  if (o == O_LR && !strcmp(optarg, "auto")) {
    c->lr_auto = 1;
    return 0;
  }
  static const struct {
    int o, idx, sched;
    const char *name;
    double lo, hi;
  } nums[] = {{O_LR, OV_LR, 0, "lr", 0, 1000},         {O_B1, OV_B1, 0, "beta1", 0, 1},
              {O_B2, OV_B2, 0, "beta2", 0, 1},        {O_EPS, OV_EPS, 0, "eps", 0, 1},
              {O_WD, OV_WD, 0, "weight-decay", 0, 10}, {O_MOM, OV_MOM, 0, "momentum", 0, 1},
              {O_RHO, OV_RHO, 0, "rho", 0, 1},        {O_DROP, SV_DROP, 1, "drop", 0, 1},
              {O_EDROP, SV_EDROP, 1, "epochs-drop", 1, 1e6}, {O_FACTOR, SV_FACTOR, 1, "factor", 0, 1},
              {O_PAT, SV_PAT, 1, "patience", 0, 1e6}, {O_MIND, SV_MIND, 1, "min-delta", 0, 1e6},
              {O_COOL, SV_COOL, 1, "cooldown", 0, 1e6}, {O_MINLR, SV_MINLR, 1, "min-lr", 0, 10},
              {O_WARM, SV_WARM, 1, "warmup-epochs", 0, 1e6}};
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++)
    if (nums[i].o == o) {
      if (num(nums[i].name, nums[i].lo, nums[i].hi, &d)) return CLI_EXIT_USAGE;
      if (nums[i].sched) {
        t->sched_vals[nums[i].idx] = d;
        t->sched_set[nums[i].idx] = 1;
      } else {
        t->opt_vals[nums[i].idx] = d;
        t->opt_set[nums[i].idx] = 1;
      }
      return 0;
    }
  return cli_usage_error("train");
}

/* Each optimizer's and schedule's own defaults, then the user's values. */
static int apply_named(train_cli *t, const char *monitor) {
  train_config *c = &t->c;
  mskx_err e = {0};
  char oname[16], sname[16];
  snprintf(oname, sizeof oname, "%s", c->optim.name);
  snprintf(sname, sizeof sname, "%s", c->sched.name);
  if (optim_config_defaults(oname, &c->optim, &e)) return cli_usage_errorf("train", "--optimizer: %s", e.msg);
  if (!strcmp(oname, "adam")) c->optim.lr = 1e-4;  /* the paper's learning rate */
  double *ov = t->opt_vals;
  if (t->opt_set[OV_LR]) c->optim.lr = ov[OV_LR];
  if (t->opt_set[OV_B1]) c->optim.beta1 = ov[OV_B1];
  if (t->opt_set[OV_B2]) c->optim.beta2 = ov[OV_B2];
  if (t->opt_set[OV_EPS]) c->optim.eps = ov[OV_EPS];
  if (t->opt_set[OV_WD]) c->optim.weight_decay = ov[OV_WD];
  if (t->opt_set[OV_MOM]) c->optim.momentum = ov[OV_MOM];
  if (t->opt_set[OV_RHO]) c->optim.rho = ov[OV_RHO];
  if (t->opt_set[OV_NEST]) c->optim.nesterov = 1;
  if (schedule_config_defaults(sname, c->optim.lr, &c->sched, &e))
    return cli_usage_errorf("train", "--schedule: %s", e.msg);
  if (!strcmp(sname, "plateau")) {  /* the paper: divide by 10 when validation loss stops improving */
    c->sched.factor = 0.1;
    c->sched.patience = 1;
  }
  double *sv = t->sched_vals;
  if (t->sched_set[SV_DROP]) c->sched.drop = sv[SV_DROP];
  if (t->sched_set[SV_EDROP]) c->sched.epochs_drop = sv[SV_EDROP];
  if (t->sched_set[SV_FACTOR]) c->sched.factor = sv[SV_FACTOR];
  if (t->sched_set[SV_PAT]) c->sched.patience = (int)sv[SV_PAT];
  if (t->sched_set[SV_MIND]) c->sched.min_delta = sv[SV_MIND];
  if (t->sched_set[SV_COOL]) c->sched.cooldown = (int)sv[SV_COOL];
  if (t->sched_set[SV_MINLR]) c->sched.min_lr = sv[SV_MINLR];
  if (t->sched_set[SV_WARM]) c->sched.warmup_epochs = sv[SV_WARM];
  if (t->sched_set[SV_MON]) snprintf(c->sched.monitor, sizeof c->sched.monitor, "%s", monitor);
  c->sched.epochs = c->epochs;
  return 0;
}

typedef struct progress_ctx {
  int tty;
  double last;
} progress_ctx;

static void fmt_time(double s, char *buf, size_t n) {
  if (!isfinite(s) || s < 0) s = 0;
  int t = (int)(s + 0.5);
  snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
}

static void on_progress(void *vctx, const train_progress *p) {
  progress_ctx *pc = vctx;
  const char *part = p->part ? p->part : "";
  const char *sep = p->part ? " " : "";
  if (p->phase == TRAIN_PHASE_EPOCH || p->phase == TRAIN_PHASE_INFO) {
    if (pc->tty) fputs("\r\033[K", stderr);
    fprintf(stderr, "%s%s%s\n", part, sep, p->text);
    return;
  }
  double now = now_seconds();
  int last_batch = p->batch == p->batches;
  if (!pc->tty && !last_batch && now - pc->last < 30) return;   /* plain lines every 30 s in logs */
  if (pc->tty && !last_batch && now - pc->last < 0.2) return;
  pc->last = now;
  char eta[32];
  fmt_time(p->eta_s, eta, sizeof eta);
  if (p->phase == TRAIN_PHASE_LR_FIND) {
    fprintf(stderr, "%slr-find %d/%d  lr %.2e  smoothed loss %.4f%s", pc->tty ? "\r\033[K" : "", p->batch, p->batches,
            p->lr, p->loss, pc->tty ? "" : "\n");
    return;
  }
  if (p->phase == TRAIN_PHASE_VALID) {
    if (pc->tty) fprintf(stderr, "\r\033[K%s%sepoch %d/%d validating %d/%d", part, sep, p->epoch + 1, p->epochs, p->batch, p->batches);
    return;
  }
  int width = 24, filled = p->batches ? (int)((double)width * p->batch / p->batches) : 0;
  char bar[32];
  for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
  bar[width] = 0;
  fprintf(stderr, "%s%s%sepoch %d/%d [%s] %d/%d  %.1f img/s  loss %.4f  lr %.2e  ETA %s%s", pc->tty ? "\r\033[K" : "",
          part, sep, p->epoch + 1, p->epochs, bar, p->batch, p->batches, p->images_per_s, p->loss, p->lr, eta,
          pc->tty ? "" : "\n");
}

/* ---- SIGTERM and SIGINT ---- */

/* The signal that asked the run to stop (0: none); the trainer polls it as
 * its cancel flag, so checkpoints are finished and no temporary is left. */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig) {
  if (stop_signal) {  /* asked twice: stop at once (--resume removes what is left) */
    signal(sig, SIG_DFL);
    raise(sig);
    return;
  }
  stop_signal = sig;
  static const char msg[] = "\nmskx train: stopping at the next step, after any checkpoint being written "
                            "(signal again to stop at once)\n";
  ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)w;
}

static void catch_stop_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
}

/* ---- processes of an mpirun/srun launch ---- */

/* Set by mpirun (OpenMPI), Slurm's srun (PMI/PMIx) or by hand; without them
 * mskx trains as one process and never starts MPI. */
static int launched_by_mpi(void) {
  static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "MSKX_MPI"};
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++)
    if (getenv(vars[i])) return 1;
  return 0;
}

#ifdef MSKX_HAVE_MPI
/* *d stays NULL when not launched by MPI. Returns nonzero (printed) on failure. */
static int job_start(dist **d) {
  *d = NULL;
  if (!launched_by_mpi()) return 0;
  int provided = 0;
  /* Only the training thread calls MPI (loader threads never do). */
  if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return cli_errorf("train", "MPI_Init_thread failed");
  mskx_err e = {0};
  if (provided < MPI_THREAD_FUNNELED) {
    cli_errorf("train", "this MPI library does not allow threads (MPI_THREAD_FUNNELED)");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (dist_create_world(d, &e)) {
    cli_error("train", &e);
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  return 0;
}

/* A failure in a job of several processes. The failing process prints its
 * message and rank 0 a summary. An error every process agreed on ends with
 * MPI_Finalize everywhere; any other one with MPI_Abort, since the other
 * processes wait inside a collective that will never complete. */
static int job_fail(dist *d, const mskx_err *e) {
  int me = dist_rank(d), n = dist_size(d), k = dist_failed_rank(d);
  const char *msg = e->msg[0] ? e->msg : mskx_status_name(e->code);
  if (k < 0 || (k == me && me != 0))
    fprintf(stderr, "mskx train: rank %d of %d: %s\n", me, n, msg);
  else if (me == 0)
    fprintf(stderr, "mskx train: %s%s\n", msg, k > 0 ? " (stopping all processes)" : "");
  fflush(stderr);
  if (k < 0) MPI_Abort(MPI_COMM_WORLD, 1);
  dist_destroy(d);
  MPI_Finalize();
  return 1;
}

static void job_end(dist *d) {
  if (!d) return;
  dist_destroy(d);
  MPI_Finalize();
}
#else
static int job_start(dist **d) {
  *d = NULL;
  const char *n = getenv("OMPI_COMM_WORLD_SIZE");
  if (!n) n = getenv("PMI_SIZE");
  /* Each process would train the whole run alone, all into one folder. */
  if (launched_by_mpi() && n && atoi(n) > 1)
    return cli_errorf("train", "launched as %s processes, but this mskx was built without MPI "
                      "(install libopenmpi-dev and rebuild; see docs/distributed.md)", n);
  return 0;
}
static int job_fail(dist *d, const mskx_err *e) { return (void)d, cli_error("train", e); }
static void job_end(dist *d) { (void)d; }
#endif

/* A run stopped by SIGTERM or SIGINT (on any process of a job: the stop is
 * agreed): what is saved, how to go on, and the shell's code for the signal. */
static int stopped(dist *d, const mskx_err *e, const char *dir) {
  int sig = stop_signal ? stop_signal : SIGTERM;
  if (dist_rank(d) == 0) {
    fprintf(stderr, "mskx train: interrupted by %s: %s\n", sig == SIGINT ? "SIGINT" : "SIGTERM", e->msg);
    fprintf(stderr, "mskx train: continue with: mskx train --resume %s\n", dir);
  }
  job_end(d);
  return 128 + sig;
}

int cmd_train(int argc, char **argv) {
  train_cli t;
  memset(&t, 0, sizeof t);
  train_config_default(&t.c);
  char monitor[16] = "val_loss";
  optind = 1;
  int o;
  while ((o = getopt_long(argc, argv, "", longs, NULL)) != -1) {
    if (o == O_HELP) {
      fputs(usage, stdout);
      cli_print_archs(stdout, 0);
      puts(dist_built_with_mpi() ? "  (this mskx is built with MPI)" : "  (this mskx is built without MPI: one process only)");
      return 0;
    }
    if (o == '?') return cli_usage_error("train");
    int rc = parse_one(&t, o, monitor);
    if (rc) return rc;
  }
  if (optind < argc) return cli_usage_errorf("train", "unexpected argument '%s'", argv[optind]);
  if (t.resume && (t.c.data[0] || t.c.out[0]))
    return cli_usage_errorf("train", "--resume takes the run folder only (its config.json holds the options)");
  if (!t.resume) {
    /* The arch's own input size (Inception-v3's 299); an arch map keeps the paper's. */
    if (!t.size_set && arch_default_size(t.c.arch)) t.c.size = arch_default_size(t.c.arch);
    arch_spec as;
    mskx_err ae = {0};
    if (t.aux_set && (arch_parse(t.c.arch, &as, &ae) || !arch_has_aux(&as)))
      return cli_usage_errorf("train", "--aux-weight: arch %s has no auxiliary classifier (inception_v3 has)",
                              t.c.arch);
    int rc = apply_named(&t, monitor);
    mskx_err e = {0};
    /* Option values are checked before anything is read: a bad one is a usage error. */
    if (!rc && train_config_validate(&t.c, &e)) rc = cli_usage_errorf("train", "%s", e.msg);
    if (rc) return rc;
  }
  dist *d = NULL;
  if (job_start(&d)) return 1;
  cli_pin_threads(t.c.threads);
  /* Rank 0 alone reports progress. */
  int root = dist_rank(d) == 0;
  progress_ctx pc = {isatty(2), 0};
  train_hooks hooks = {root ? on_progress : NULL, &pc, &stop_signal};
  train_summary sum = {0};
  mskx_err e = {0};
  double t0 = now_seconds();
  const char *dir = t.resume ? t.resume : t.c.out;
  catch_stop_signals();
  int rc;
  if (t.resume)
    rc = train_resume(t.resume, t.epochs_set ? t.c.epochs : 0, d, &hooks, &sum, &e);
  else
    rc = train_run(&t.c, t.force, d, &hooks, &sum, &e);
  plot_release_fonts();  /* --lr auto drew its sweep: leak checkers see a clean exit */
  if (rc == MSKX_ECANCELED && (dist_size(d) == 1 || dist_failed_rank(d) >= 0)) return stopped(d, &e, dir);
  if (rc) return dist_size(d) > 1 ? job_fail(d, &e) : (job_end(d), cli_error("train", &e));
  job_end(d);
  if (!root) return 0;
  if (stop_signal)  /* it came during the last checkpoint: the run is complete, nothing to resume */
    fprintf(stderr, "mskx train: %s came as the last epoch was saved; the run is complete\n",
            stop_signal == SIGINT ? "SIGINT" : "SIGTERM");
  fprintf(stderr, "done in %.0f s: %d epochs, best validation kappa %.4f", now_seconds() - t0, sum.epochs_run,
          sum.best_kappa);
  if (sum.best_epoch >= 0) fprintf(stderr, " (epoch %d)", sum.best_epoch + 1);
  fputc('\n', stderr);
  if (sum.skipped_images) fprintf(stderr, "warning: %lld unreadable images were skipped\n", sum.skipped_images);
  /* The model to use next: a per-part run's bundle, else the best checkpoint. */
  char model[2048];
  snprintf(model, sizeof model, "%s/bundle.json", dir);
  if (!path_exists(model)) snprintf(model, sizeof model, "%s/best.safetensors", dir);
  printf("%s\n", model);
  return 0;
}
