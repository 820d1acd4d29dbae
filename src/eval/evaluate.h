/* Running a loaded model over one split of a dataset: images decoded ahead on
 * worker threads, one prediction per study through the predictor, and the
 * per-study table that `mskx eval`, `mskx threshold` and `mskx ensemble`
 * share (CSV outputs, metrics with one threshold or per-part thresholds). */
#ifndef MSKX_EVAL_EVALUATE_H
#define MSKX_EVAL_EVALUATE_H
#include <stdint.h>
#include "data/dataset.h"
#include "eval/metrics.h"
#include "infer/predictor.h"

/* Decoding threads when the caller gives none: decoding a radiograph costs a
 * few milliseconds, a forward pass far more, so two keep the network fed. */
#define EVAL_DEFAULT_DECODE_THREADS 2
/* Studies decoded ahead of the one being predicted. */
#define EVAL_DECODE_WINDOW 8
/* Texts of skipped-image warnings kept (all are counted). */
#define EVAL_MAX_SKIP_MSGS 20

typedef void (*eval_progress_fn)(void *ctx, int done, int total, long images, double seconds);

typedef struct eval_config {
  int split;                 /* DS_VALID or DS_TRAIN */
  predict_options po;        /* agg and tta; maps are computed only for cam_dir */
  const char *cam_dir;       /* NULL, or a folder for one overlay PNG per image */
  int decode_threads;        /* <= 0: EVAL_DEFAULT_DECODE_THREADS */
  int strict;                /* an unreadable image fails the run instead of being skipped */
  eval_progress_fn progress; /* called after every study; may be NULL */
  void *progress_ctx;
} eval_config;

void eval_config_default(eval_config *c);

/* One study of the split. Strings and the dataset entry are borrowed from the
 * dataset, which must outlive the run. */
typedef struct eval_study {
  const ds_study *ds;        /* path, label, part */
  const char *part;          /* the part's name ("XR_WRIST", or "ALL") */
  int ok;                    /* predicted (else every image was unreadable) */
  int n_used, n_skipped;     /* images predicted / skipped as unreadable */
  int *image_idx;            /* n_used indices into split->images */
  double *image_prob;        /* n_used per-image probabilities */
  double probability;        /* study probability */
  double threshold;          /* the threshold that decided (bundles: the member's) */
  int abnormal;              /* probability > threshold */
  char *model_used;          /* bundles: the member file that served the study */
  int n_members;             /* ensembles: per-member study probabilities */
  double *member_prob;
} eval_study;

typedef struct eval_run {
  const dataset *d;
  const ds_split *split;
  int agg, tta;              /* the options it ran with */
  int n_studies;             /* all studies of the split, in split order */
  eval_study *studies;
  int n_ok;                  /* studies predicted */
  long n_images;             /* images predicted */
  long n_skipped;            /* unreadable images skipped */
  int n_skip_msgs;           /* the first EVAL_MAX_SKIP_MSGS messages */
  char **skip_msgs;
  double seconds;
} eval_run;

/* Predicts every study of c->split with p. A study part named "ALL" (a
 * generic CSV without parts) is passed to the predictor as unknown. Errors:
 * an empty split, a study the predictor refuses (e.g. a bundle without a
 * model for its part), an unreadable image with c->strict, a failed overlay
 * write. Without strict, unreadable images are skipped (counted, messages
 * kept) and a study without any readable image is left out (ok = 0). */
int eval_run_split(predictor *p, const dataset *d, const eval_config *c, eval_run **out, mskx_err *e);
void eval_run_free(eval_run *r);

/* A model run over a dataset's split, owning all three: how `mskx eval` and
 * `mskx threshold` begin. */
typedef struct eval_session {
  dataset *data;
  predictor *pred;
  eval_run *run;
} eval_session;
/* Opens the dataset at data_path, loads the model (file, bundle or ensemble)
 * at model_path with po and runs it over c->split (eval_run_split). On
 * failure s holds what was made, for eval_session_close. */
int eval_session_open(const char *model_path, const char *data_path, const predictor_options *po,
                      const eval_config *c, eval_session *s, mskx_err *e);
/* Frees the run, the predictor and the dataset; s is left zeroed. */
void eval_session_close(eval_session *s);

/* 1 when every predicted study was decided with the same threshold (then
 * *thr holds it), 0 when they differ (bundles whose members disagree). */
int eval_run_common_threshold(const eval_run *r, double *thr);

/* Metrics of the predicted studies with bootstrap CIs (n_boot resamples,
 * seed). With a common threshold this is metrics_evaluate at it; otherwise
 * the threshold metrics come from each study's own decision and AUROC from
 * the probabilities (the same resamples, as they depend only on the seed),
 * and opt.threshold is NaN. */
int eval_run_metrics(const eval_run *r, int n_boot, uint64_t seed, eval_results **out, mskx_err *e);

/* metrics.json: eval_results_to_json's document plus "run" (model, data,
 * split, options, failed studies and skipped images). Per-part thresholds
 * replace the groups' "threshold" when they differ. path NULL: not written;
 * json_out (may be NULL) receives the text. */
int eval_write_metrics_json(const eval_run *r, const eval_results *res, const char *model_path, const char *path,
                            char **json_out, mskx_err *e);

/* predictions.csv in the competition's format: "study_path/,0|1" per
 * predicted study, no header. */
int eval_write_predictions_csv(const eval_run *r, const char *path, mskx_err *e);
/* probabilities.csv: header study,part,n_images,probability,label. */
int eval_write_probabilities_csv(const eval_run *r, const char *path, mskx_err *e);

/* Predicted studies' probabilities and labels (indices of the ok studies in
 * *idx when idx is non-NULL); arrays are malloc'd, *n receives the count. */
int eval_run_arrays(const eval_run *r, double **prob, int **label, int **idx, int *n, mskx_err *e);

/* Re-predicts one study with class activation maps: the images the run used
 * at display size (CAM_DISPLAY_MAX_SIDE) and one map per image of that size,
 * both malloc'd; free with eval_cam_free. */
typedef struct eval_cam {
  int n;
  gray_image *imgs;
  float **maps;
  double *image_prob;
} eval_cam;
int eval_study_cam(predictor *p, const eval_run *r, int study, const predict_options *po, eval_cam *out,
                   mskx_err *e);
void eval_cam_free(eval_cam *c);

#endif
