/* mskx train: the MURA paper's recipe (and the common variations) as a
 * library call. A run lives in one folder:
 *   config.json        the full configuration (enough to reproduce or resume)
 *   log.jsonl          one JSON object per finished epoch
 *   last.safetensors   weights + metadata + "train_state.*" (optimizer,
 *                      schedule, early-stopping state) after the latest epoch
 *   best.safetensors   the best epoch's weights by the selection metric
 * With per_part, one such folder per body part plus bundle.json routing each
 * study to its part's best model. Every file is written atomically. */
#ifndef MSKX_TRAIN_TRAINER_H
#define MSKX_TRAIN_TRAINER_H
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include "data/preprocess.h"
#include "core/options.h"
#include "engine/engine.h"
#include "io/dicom_options.h"
#include "mskx.h"
#include "train/optim.h"
#include "train/schedule.h"

/* An arch map holds several architecture strings. */
#define TRAIN_ARCH_MAX 1024
#define TRAIN_ARCH_MAP_MAX 64

typedef struct train_config {
  char data[1024];
  /* One architecture, or with per_part an arch map: "XR_FINGER=densenet121,
   * XR_HAND=densenet121,densenet169" (the unnamed entry is the default). */
  char arch[TRAIN_ARCH_MAX];
  char out[1024];
  char parts[1024];          /* "all" or "XR_WRIST,XR_HAND" */
  int per_part;
  int size, batch, epochs, threads, loader_threads;
  uint64_t seed;
  optim_config optim;
  schedule_config sched;
  char class_weights[64];    /* "mura" | "balanced" | "none" | "0:1,1:1.5" */
  char pretrained[1024];     /* "" = random initialisation */
  int freeze_backbone_epochs;
  double aux_weight;         /* inception_v3: loss = main + aux_weight * aux (0: no aux head) */
  precision prec;
  int early_stop;            /* epochs without improvement before stopping; 0 = off */
  char select[16];           /* "kappa" (higher is better) or "loss" */
  aug_config aug;
  int keep_aspect;
  char dicom_window[48];     /* DICOM rendering: "auto" | "minmax" | "C,W" (docs/dicom.md) */
  char dicom_frames[8];      /* "all" (multi-frame files refused: one image per file) | "first" */
  int strict;                /* unreadable images are errors instead of skipped */
  double max_skipped;        /* fraction of an epoch's training images that may be skipped as unreadable */
  int cache;                 /* preprocessing cache under the run folder */
  /* Without --cache, the cache is used anyway when the decoded splits
   * (images x S x S bytes) fit this budget in MB; -1 (default): a quarter
   * of the memory available at the start; 0: never. Not in the
   * configuration's fingerprint (processes may differ). */
  int cache_budget_mb;
  int max_batches;           /* per epoch, 0 = all (quick experiments and tests) */
  int keep_plans;            /* TRAIN_KEEP_PLANS_*: the training and validation plans stay resident */
  int sync_bn;               /* data-parallel: batch-norm statistics over all processes */
  int bucket_kb;             /* data-parallel: gradient all-reduce bucket in KiB (0: default); not saved */
  /* --lr auto: train_run sweeps with the learning-rate finder (lr_find.h)
   * first and trains with its choice, which then is optim.lr and sched.lr0;
   * the two suggestions are kept for the record (0 until the sweep ran). */
  int lr_auto;
  double lr_found_steepest, lr_found_min_tenth;
} train_config;

/* train_config.keep_plans, the index of --keep-plans's value: auto keeps
 * the validation plan resident while the memory available allows it (else
 * the plans are rebuilt at every switch), on keeps it whatever the memory,
 * off rebuilds at every switch (the behaviour before resident plans). */
enum { TRAIN_KEEP_PLANS_AUTO, TRAIN_KEEP_PLANS_ON, TRAIN_KEEP_PLANS_OFF };

/* Every option of train_config, once: JSON key, command-line flag, type,
 * field, range, default and its source, help line (core/options.h). It
 * drives the defaults, `mskx train` and `mskx lr-find` parsing and usage,
 * validation, config.json and the fingerprint that processes of a job
 * compare; docs/training_options.md lists it (a test keeps them equal). */
#define TRAIN_OPTIONS_MAX 128 /* rows of train_options, at most (for callers' given[] arrays) */
extern const opt_spec train_options[];
extern const size_t train_options_count;

/* The table's defaults: the MURA paper's recipe (densenet169, 320 px, batch
 * 8, Adam 1e-4, plateau on val_loss dividing by 10, MURA class weights,
 * flips + 30 degree rotations). */
void train_config_default(train_config *c);
/* After options were given (set[i] nonzero: train_options[i] was given;
 * set NULL: none): the options not given that belong to the chosen
 * optimizer or schedule take its own defaults (the table's when it is the
 * paper's); the schedule's lr0 and epochs follow --lr and --epochs;
 * inception_v3 gets its input size unless --size was given; --aux-weight
 * given for an arch without an auxiliary head is an error. */
int train_config_resolve(train_config *c, const unsigned char *set, mskx_err *e);
/* Checks every value (the table's ranges, then the options together);
 * errors name the option. */
int train_config_validate(const train_config *c, mskx_err *e);
/* FNV-1a of every option that must be the same on every process of a job
 * (the table's rows without OPT_LOCAL: not paths or thread counts). */
uint64_t train_config_fingerprint(const train_config *c);
/* The architecture for part (NULL: the default entry) of c->arch, which is
 * one architecture (the answer for every part) or an arch map. A map
 * entry "NAME=ARCH" starts at a token whose NAME is upper case ([A-Z0-9_],
 * "XR_" optional); a token with ':' or without '=' starts the default entry;
 * other "key=value" tokens continue the entry before (custom architectures'
 * options, "densenet:growth=4,blocks=1-1"). Errors when part has no entry and
 * there is no default. */
int train_arch_for(const char *arch, const char *part, char *out, size_t n, mskx_err *e);
/* 1 when arch names parts (an arch map). */
int train_arch_is_map(const char *arch);
/* Full JSON round trip (config.json). */
char *train_config_to_json(const train_config *c);
/* The DICOM rendering options of a configuration (validated). */
int train_config_dicom(const train_config *c, dicom_options *o, mskx_err *e);
int train_config_from_json(const char *text, const char *path, train_config *c, mskx_err *e);

/* TRAIN_PHASE_LR_FIND: a step of the learning-rate finder's sweep (train
 * --lr auto, lr_find.h): batch/batches the step, loss the smoothed loss. */
enum train_phase {
  TRAIN_PHASE_TRAIN = 0, TRAIN_PHASE_VALID = 1, TRAIN_PHASE_EPOCH = 2, TRAIN_PHASE_INFO = 3, TRAIN_PHASE_LR_FIND = 4
};

typedef struct train_progress {
  int phase;
  const char *part;          /* per-part runs: the part being trained, else NULL */
  int epoch, epochs;         /* epoch is 0-based */
  int batch, batches;        /* within the phase */
  double images_per_s, loss, lr, eta_s;
  const char *text;          /* TRAIN_PHASE_EPOCH: the epoch summary; INFO: a notice */
} train_progress;

typedef void (*train_progress_fn)(void *ctx, const train_progress *p);

/* How a caller follows and stops a run; none of it is saved with the run. */
typedef struct train_hooks {
  train_progress_fn progress;  /* NULL: no reports */
  void *ctx;                   /* passed to progress */
  /* Polled between steps (the library installs no signal handler; the
   * caller's may set it). Once nonzero the run stops at the next step or
   * validation batch, or right after the checkpoint being written, and
   * returns MSKX_ECANCELED saying which epoch is saved: the folder is left
   * as after a finished epoch, ready for train_resume. NULL: never stops. */
  const volatile sig_atomic_t *cancel;
} train_hooks;

typedef struct train_summary {
  int epochs_run;
  int best_epoch;
  double best_value;         /* of the selection metric */
  double best_kappa;
  double seconds;
  long long skipped_images;
} train_summary;

struct dist;

/* Starts a new run in c->out (refused if it holds another run, unless force).
 * d: the processes of a data-parallel job (see dist/dist.h), or NULL for one
 * process. Every process calls with the same options; each trains on its
 * share of every global batch of c->batch images (which must divide evenly),
 * gradients are summed over processes and every process takes the same
 * optimizer step. Only rank 0 writes in the run folder; give it the progress
 * callback. Errors are agreed between processes where possible (see dist.h). */
int train_run(const train_config *c, int force, struct dist *d, const train_hooks *h, train_summary *out, mskx_err *e);
/* What `--resume` may change in a run's configuration; a zeroed struct
 * changes nothing. None changes the results: epochs extends a finished
 * run, threads and keep_plans are local. What is changed is saved in the
 * run's config.json for later resumes. */
typedef struct train_resume_overrides {
  int epochs;          /* > 0: the configured number of epochs */
  int threads;         /* > 0: compute threads */
  int set_keep_plans;  /* nonzero: keep_plans replaces the configured one */
  int keep_plans;      /* TRAIN_KEEP_PLANS_* */
} train_resume_overrides;
/* Continues the run in dir from its last checkpoint with the overrides in
 * o (NULL: none). With d, every process reads dir (a shared filesystem).
 * Resuming owns the folder: the temporaries of its files that an
 * interrupted process left (see atomic_file in core/util.h) are removed
 * first, with an INFO report. */
int train_resume(const char *dir, const train_resume_overrides *o, struct dist *d, const train_hooks *h, train_summary *out, mskx_err *e);

#endif
