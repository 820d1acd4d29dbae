/* mskx train: option parsing and progress display over train_run(); under
 * mpirun (or srun) it also starts MPI and ends the job if a process fails. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli/cli.h"
#include "cli/cli_options.h"
#include "core/util.h"
#include "dist/dist.h"
#include "eval/plots.h"
#include "train/trainer.h"
#ifdef MSKX_HAVE_MPI
#include <mpi.h>
#endif

static const char *const usage_head =
    "usage: mskx train --data DIR --out RUN_DIR [options]\n"
    "       mskx train --resume RUN_DIR [--epochs N] [--threads T] [--keep-plans auto|on|off]\n"
    "\n"
    "Trains a network on a MURA-format dataset (defaults: the MURA paper's recipe;\n"
    "every option with its range and the source of its default: docs/training_options.md).\n"
    "\n";

static const cli_usage_note usage_notes[] = {
    {"Learning-rate schedule", "  plateau is Keras's ReduceLROnPlateau; each schedule brings its own defaults\n"},
    {"Data-parallel", "  mpirun -np P mskx train ... runs P processes, each on its share of every batch\n"
                      "  (--batch is the global batch and must divide by P); rank 0 writes the run folder.\n"},
    {NULL, NULL}};

/* What the command line adds to a run's options. */
typedef struct train_cli {
  int force;
  char resume[1024];
} train_cli;

#define CLI_FLD(m) .off = offsetof(train_cli, m), .size = sizeof(((train_cli *)0)->m)
static const opt_spec cli_rows[] = {
    {.flag = "force", .type = OPT_BOOL, CLI_FLD(force), .group = "Other", .help = "overwrite an existing run in RUN_DIR"},
    {.flag = "resume", .type = OPT_PATH, CLI_FLD(resume), .arg = "RUN_DIR", .group = "Other",
     .help = "continue an interrupted run from its last checkpoint"},
};

static void print_usage(cli_opt_table *tabs, int ntabs) {
  fputs(usage_head, stdout);
  cli_options_usage(stdout, tabs, ntabs, usage_notes);
  cli_print_archs(stdout, 0);
  puts(dist_built_with_mpi() ? "  (this mskx is built with MPI)" : "  (this mskx is built without MPI: one process only)");
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
  if (!launched_by_mpi() || !n) return 0;
  char *end = NULL;
  errno = 0;
  long procs = strtol(n, &end, 10);
  if (errno || end == n || *end) return cli_errorf("train", "the process count '%s' from the environment is not a number", n);
  if (procs > 1)
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
  train_config c;
  train_cli t;
  memset(&t, 0, sizeof t);
  train_config_default(&c);
  unsigned char given[TRAIN_OPTIONS_MAX];
  cli_opt_table tabs[] = {{train_options, train_options_count, &c, NULL, given},
                          {cli_rows, sizeof cli_rows / sizeof *cli_rows, &t, NULL, NULL}};
  int help, rc = cli_options_parse("train", argc, argv, tabs, 2, &help);
  if (rc) return rc;
  if (help) {
    print_usage(tabs, 2);
    return 0;
  }
  const char *resume = t.resume[0] ? t.resume : NULL;
  for (size_t i = 0; resume && i < train_options_count; i++)
    if (given[i] && strcmp(train_options[i].flag, "epochs") && strcmp(train_options[i].flag, "threads") &&
        strcmp(train_options[i].flag, "keep-plans"))
      return cli_usage_errorf("train", "--resume takes the run folder, --epochs, --threads and --keep-plans only "
                              "(--%s: its config.json holds the options)", train_options[i].flag);
  if (!resume) {
    mskx_err e = {0};
    /* Option values are checked before anything is read: a bad one is a usage error. */
    if (train_config_resolve(&c, given, &e) || train_config_validate(&c, &e)) return cli_usage_errorf("train", "%s", e.msg);
  }
  dist *d = NULL;
  if (job_start(&d)) return 1;
  cli_pin_threads(c.threads);
  /* Rank 0 alone reports progress. */
  int root = dist_rank(d) == 0;
  progress_ctx pc = {isatty(2), 0};
  train_hooks hooks = {root ? on_progress : NULL, &pc, &stop_signal};
  train_summary sum = {0};
  mskx_err e = {0};
  double t0 = now_seconds();
  const char *dir = resume ? resume : c.out;
  catch_stop_signals();
  if (resume) {
    train_resume_overrides o = {
        .epochs = given[opt_find(train_options, train_options_count, "epochs")] ? c.epochs : 0,
        .threads = given[opt_find(train_options, train_options_count, "threads")] ? c.threads : 0,
        .set_keep_plans = given[opt_find(train_options, train_options_count, "keep-plans")],
        .keep_plans = c.keep_plans};
    rc = train_resume(resume, &o, d, &hooks, &sum, &e);
  }
  else
    rc = train_run(&c, t.force, d, &hooks, &sum, &e);
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
