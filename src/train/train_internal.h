/* Shared state of one training run, between trainer.c (the loop),
 * validate.c (validation) and run_dir.c (files of the run folder). */
#ifndef MSKX_TRAIN_INTERNAL_H
#define MSKX_TRAIN_INTERNAL_H
#include "core/json.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "dist/dist.h"
#include "models/model_file.h"
#include "train/trainer.h"

/* What a checkpoint must carry besides weights and optimizer moments. */
typedef struct run_state {
  int epochs_done;
  int best_epoch;       /* -1 before the first validation */
  double best_value, best_kappa;
  int bad_epochs;       /* epochs since the last improvement (early stopping) */
  int finished;
  int early_stopped;
  long long skipped;
} run_state;

typedef struct epoch_stats {
  double lr, train_loss, train_seconds, images_per_s, seconds;
  double val_loss, val_kappa, val_auc, val_accuracy;
  double comm_seconds;  /* data-parallel: time in collectives during training */
  /* Planning work of the epoch (training and validation): plans built and
   * found resident, seconds building/freeing them, oneDNN primitives created. */
  long plans_built, plans_reused, prims_created;
  long page_faults;     /* minor page faults of the epoch: freshly allocated plans fault theirs in again */
  double plan_seconds;
  int ranks;
  long long skipped;
  int n_parts;
  struct {
    const char *name;
    int n;
    double kappa, auc, accuracy;
  } parts[DS_MAX_PARTS];
} epoch_stats;

typedef struct run_ctx {
  train_config cfg;
  const dataset *data;
  const char *part_label;
  train_progress_fn fn;
  void *ctx;
  const volatile sig_atomic_t *cancel;  /* see train_hooks */
  char dir[1024], last_path[1100], best_path[1100], log_path[1100];
  uint64_t mask;
  double (*cw)[2];
  engine *eng;
  net *net;
  optimizer *opt;
  schedule *sched;
  loader *ltrain, *lvalid;
  cache *ctrain, *cvalid;   /* --cache */
  float *logits, *dz, *sw, *xpad;
  char *log_text;
  run_state st;
  struct dist *dist;      /* NULL: one process */
  int rank, ranks;
  int local_batch;        /* this process's share of cfg.batch */
  struct grad_sync *gsync;
  /* Resident plans: the memory the validation plan added when first built
   * (RSS growth over that validation), to check it still fits. */
  uint64_t valid_plan_bytes;
  /* --precision auto: the precision a resumed checkpoint trained in (-1: none). */
  int prec_resumed;
  /* Whether the decoded cache is used (--cache, or within the budget), and
   * what a resumed checkpoint used (-1: none), so resuming reads the same pixels. */
  int use_cache, cache_resumed;
} run_ctx;

/* run_dir.c */
/* Refuses a folder that holds another run (unless force) or is a file. */
int run_dir_check(const train_config *c, int force, mskx_err *e);
/* lr_find: the sweep's JSON record for config.json, or NULL. */
int run_dir_prepare(const train_config *c, int force, const char *lr_find, mskx_err *e);
int run_dir_read_config(const char *dir, train_config *c, mskx_err *e);
int run_dir_write_config(const train_config *c, mskx_err *e);
/* Removes the temporaries of a run's files ("<file>.tmp.<pid>") in dir and
 * its per-part subfolders; *removed counts them, names lists a few. */
int run_dir_remove_temps(const char *dir, int *removed, char *names, size_t n, mskx_err *e);
int run_paths(run_ctx *r, mskx_err *e);
int checkpoint_save(run_ctx *r, const model_meta *meta, mskx_err *e);
int checkpoint_load(run_ctx *r, mskx_err *e);
int log_append(run_ctx *r, int epoch, const epoch_stats *st, int improved, mskx_err *e);
char *epoch_metrics_json(const epoch_stats *st);

/* trainer.c: whether the caller asked to stop, and the MSKX_ECANCELED error
 * saying what is saved (the run stops during epoch `epoch`). */
int run_cancelled(const run_ctx *r);
int run_cancel_error(const run_ctx *r, int epoch, mskx_err *e);
/* trainer.c: the pieces of one model's run that the learning-rate finder
 * (lr_find.c) shares, so that its sweep starts exactly where training would. */
void run_init(run_ctx *r, const train_config *c, const dataset *d, struct dist *dd, const train_hooks *h,
              const char *part_label);
/* Part mask, class weights, engine, network (seeded or pretrained, or from
 * the checkpoint when resuming), optimizer, schedule and loaders. */
int run_build(run_ctx *r, int resuming, mskx_err *e);
/* One optimisation step; a non-finite loss is an error with *loss set. */
int train_step(run_ctx *r, const batch *b, int total, double lr, int frozen, double *loss, mskx_err *e);
void run_free(run_ctx *r);

/* validate.c */
int run_validation(run_ctx *r, int epoch, epoch_stats *st, mskx_err *e);

#endif
