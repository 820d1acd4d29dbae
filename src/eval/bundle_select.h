/* `mskx bundle --select`: the best candidate per body part. Candidates are
 * model files, per-part bundles and run folders (a per-part run's bundle.json
 * or a run's best.safetensors); for each part the candidate with the best
 * validation figure on that part is chosen, and the result is a per-part
 * bundle (the format `train --per-part` writes) with a "selection" record of
 * every candidate's figure, its source and why the winner won. */
#ifndef MSKX_EVAL_BUNDLE_SELECT_H
#define MSKX_EVAL_BUNDLE_SELECT_H
#include "data/dataset.h"
#include "infer/predictor.h"
#include "mskx.h"

#define SELECT_MAX_CANDIDATES 32
#define SELECT_MAX_PARTS DS_MAX_PARTS
/* Study probabilities are clamped before the log loss, as scikit-learn's
 * log_loss clips (eps = 1e-15 there; 1e-7 keeps float32 models' 0 and 1 finite
 * without dominating). */
#define SELECT_LOSS_CLAMP 1e-7

typedef enum sel_metric { SEL_KAPPA = 0, SEL_AUC = 1, SEL_LOSS = 2 } sel_metric;
typedef enum sel_source { SEL_NONE = 0, SEL_STORED = 1, SEL_COMPUTED = 2 } sel_source;

typedef struct sel_cell {
  double value;          /* NaN when not available */
  sel_source source;
  char *model;           /* the model file that serves the part (owned); NULL: none */
} sel_cell;

typedef struct bundle_selection {
  sel_metric metric;
  char *data;            /* the dataset figures were computed on, or NULL */
  int n_cand;
  char **cand_path;      /* as given */
  char **cand_kind;      /* "model", "bundle", "run", "per-part run" */
  int n_parts;
  char (*parts)[PART_NAME_MAX];
  sel_cell *cells;       /* [part * n_cand + candidate] */
  int *chosen;           /* per part: a candidate, or -1 */
  char **why;            /* per part */
} bundle_selection;

typedef struct bundle_select_options {
  sel_metric metric;
  const char *data;      /* NULL: stored figures only */
  int recompute;         /* compute every figure on data, ignoring stored ones */
  predictor_options po;
  int decode_threads;
} bundle_select_options;

const char *sel_metric_name(sel_metric m);
int sel_metric_parse(const char *s, sel_metric *m, mskx_err *e);

/* Figures: a model file's stored ones are its metadata's validation metrics
 * ("metrics".parts.<PART>.kappa|auc, written by `mskx train`); the per-part
 * log loss is never stored. A figure not stored (or all, with recompute) is
 * computed on data's validation split with the evaluation code of `mskx
 * eval` (kappa at the candidate's own thresholds, AUROC, and the mean log
 * loss of study probabilities); without data a missing figure leaves the
 * candidate out of that part. Ties go to the earlier candidate. */
int bundle_select_run(const char *const *cands, int n, const bundle_select_options *o, bundle_selection **out,
                      mskx_err *e);
/* The bundle (models: the chosen model file per part, relative to the
 * bundle's folder when they share one) with its "selection" record (figures'
 * "model": absolute paths), written atomically. */
int bundle_selection_write(const bundle_selection *s, const char *path, mskx_err *e);
/* The "selection" record of a bundle file; *out NULL (and MSKX_OK) when the
 * file has none or is not a bundle. */
int bundle_selection_read(const char *path, bundle_selection **out, mskx_err *e);
/* The same from a bundle's text (len bytes, not NUL-terminated). */
int bundle_selection_parse(const char *text, size_t len, bundle_selection **out, mskx_err *e);
void bundle_selection_free(bundle_selection *s);

#endif
