/* Choosing and storing decision thresholds from an evaluation run: the
 * studies are grouped by the file whose threshold decided them (the model or
 * ensemble itself, or each member model of a per-part bundle), a threshold is
 * chosen for each with a policy (threshold.h) and stored in that file. */
#ifndef MSKX_EVAL_THRESHOLD_TARGETS_H
#define MSKX_EVAL_THRESHOLD_TARGETS_H
#include <stdbool.h>
#include "eval/evaluate.h"
#include "eval/threshold.h"

/* One file whose threshold is chosen. */
typedef struct thr_target {
  const char *path;     /* borrowed from the run (bundle members) or the caller */
  int n;                /* studies it decided */
  double *p;            /* their probabilities */
  int *y;               /* their labels */
  double old_thr;       /* the threshold they were decided with */
  thr_point before, after;
  bool chosen, stored;
  char why[1100];       /* why nothing was chosen (chosen false) */
} thr_target;

/* Groups the run's predicted studies by deciding file: one target for a model
 * or ensemble (path model_path), one per serving member for a bundle.
 * Free with thr_targets_free (also after a failure). */
int thr_targets_make(const eval_run *r, const predictor *p, const char *model_path, thr_target **out, int *n,
                     mskx_err *e);
void thr_targets_free(thr_target *t, int n);

/* Fills t->before and chooses t->after with pol. When no threshold can be
 * chosen (e.g. a single class) t->why says so and chosen stays false: not an
 * error. Unless dry, a chosen threshold is stored in t->path: with
 * ensemble_set_threshold when is_ensemble, else model_set_threshold. */
int thr_target_choose(thr_target *t, const thr_policy *pol, bool is_ensemble, bool dry, mskx_err *e);

#endif
