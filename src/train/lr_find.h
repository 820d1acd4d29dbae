/* The learning-rate finder (Smith 2017, "Cyclical Learning Rates", section
 * 3.3; fastai's lr_find): one optimisation step per mini-batch with the rate
 * growing exponentially from start to end, from the same initialisation,
 * data order and class weights that `mskx train` would use; the sweep stops
 * early once the smoothed loss exceeds LR_FIND_DIVERGE times its minimum. */
#ifndef MSKX_TRAIN_LR_FIND_H
#define MSKX_TRAIN_LR_FIND_H
#include "data/dataset.h"
#include "mskx.h"
#include "train/trainer.h"

/* fastai's defaults (fastai.callback.schedule.lr_find: start_lr 1e-7,
 * end_lr 10, num_it 100, stop_div when the smoothed loss passes 4x the best;
 * the smoothing of fastai.callback.core.AvgSmoothLoss, beta 0.98, with its
 * bias correction). */
#define LR_FIND_START 1e-7
#define LR_FIND_END 10.0
#define LR_FIND_STEPS 100
#define LR_FIND_MIN_STEPS 5
#define LR_FIND_MAX_STEPS 100000
#define LR_FIND_BETA 0.98
#define LR_FIND_DIVERGE 4.0

typedef struct lr_find_options {
  double start, end;
  int steps;
} lr_find_options;

/* The sweep's options (core/options.h): `mskx lr-find` parses and prints them. */
extern const opt_spec lr_find_option_rows[];
extern const size_t lr_find_option_count;

void lr_find_options_default(lr_find_options *o);
int lr_find_options_validate(const lr_find_options *o, mskx_err *e);

typedef struct lr_find_result {
  int n;                    /* steps taken */
  double *lr, *loss, *smooth;
  int diverged;             /* stopped early: smoothed loss > 4x minimum, or not finite */
  int steep_idx, min_idx;   /* indices of the steepest descent and of the minimum */
  double lr_steepest;       /* the rate where the smoothed loss falls fastest (per log-lr) */
  double lr_min_tenth;      /* a tenth of the rate at the smoothed loss's minimum */
  double lr_chosen;         /* what `train --lr auto` uses: lr_min_tenth */
} lr_find_result;

/* The sweep for the model c describes (c->per_part is ignored: every
 * selected part is swept together; c->cache is ignored, so nothing is written
 * in c->out). d: the opened dataset, or NULL to open c->data. fn receives
 * TRAIN_PHASE_LR_FIND progress (batch/batches: step, loss: smoothed). The
 * training run that follows does not depend on the sweep: the sweep has its
 * own network, optimizer and loaders, and no global state changes. */
int lr_find_run(const train_config *c, const dataset *d, const lr_find_options *o, train_progress_fn fn,
                void *ctx, lr_find_result *out, mskx_err *e);
void lr_find_result_free(lr_find_result *r);

/* Suggestions from the smoothed losses already in r (lr_find_run calls it). */
void lr_find_suggest(lr_find_result *r);

/* lr_find.csv (step,lr,loss,smoothed_loss) and lr_find.png in dir, each
 * written atomically. */
int lr_find_write(const lr_find_result *r, const char *dir, mskx_err *e);
/* The PNG alone (bytes malloc'd into *png). */
int lr_find_plot(const lr_find_result *r, unsigned char **png, size_t *len, mskx_err *e);
/* A JSON object (malloc'd text): start, end, steps, diverged, the two
 * suggestions, the chosen rate and, with points, [lr, loss, smoothed] rows. */
char *lr_find_json(const lr_find_result *r, const lr_find_options *o, int points);

#endif
