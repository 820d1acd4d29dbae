/* The self-contained HTML evaluation report: model and data details, the
 * kappa table beside the MURA paper's model and radiologists, ROC curves,
 * confusion matrices, calibration, training curves and a gallery of CAM
 * overlays. Every figure is a PNG drawn with cairo (plots.h) and embedded as
 * a data: URI; the page loads nothing from elsewhere. */
#ifndef MSKX_EVAL_REPORT_H
#define MSKX_EVAL_REPORT_H
#include <stdbool.h>
#include "eval/evaluate.h"
#include "eval/metrics.h"
#include "eval/plots.h"
#include "infer/predictor.h"

#define REPORT_GALLERY_MAX 4    /* studies shown per gallery row */
#define REPORT_THUMB_SIDE 256   /* longest side of a gallery thumbnail, CSS px */
#define REPORT_CAL_BINS 10      /* reliability diagram bins */
#define REPORT_MAX_LOGS 8       /* training logs plotted (per-part runs) */

/* ---- gallery ---- */

enum gallery_kind { GALLERY_TP = 0, GALLERY_FP = 1, GALLERY_FN = 2, GALLERY_KINDS = 3 };

typedef struct gallery_item {
  int study;          /* index into run->studies */
  int image;          /* which of the study's used images is shown */
  double image_prob;
  png_buf thumb;      /* the predictor's CAM overlay, downscaled */
} gallery_item;

typedef struct report_gallery {
  int n[GALLERY_KINDS];
  gallery_item items[GALLERY_KINDS][REPORT_GALLERY_MAX];
} report_gallery;

/* Picks the most confident true positives and false positives (highest
 * study probability) and false negatives (lowest), up to per_kind each
 * (<= REPORT_GALLERY_MAX), and renders for each the study image with the
 * highest probability with its class activation map. */
int report_gallery_build(predictor *p, const eval_run *r, const predict_options *po, int per_kind,
                         report_gallery *g, mskx_err *e);
void report_gallery_free(report_gallery *g);

/* ---- training logs (log.jsonl of `mskx train`) ---- */

typedef struct train_log {
  char label[64];     /* "" for a single run, else the subfolder (part) name */
  int n;              /* epochs */
  double *epoch, *train_loss, *val_loss, *val_kappa, *val_auc; /* NaN where absent */
  int best;           /* index of the last epoch marked "best", -1 if none */
} train_log;

typedef struct train_logs {
  int n;
  train_log log[REPORT_MAX_LOGS];
  char dir[4096];
} train_logs;

/* Parses log.jsonl text (one JSON object per line, blank lines ignored);
 * name is for messages. Errors name the line. */
int train_log_parse(const char *text, size_t len, const char *name, train_log *out, mskx_err *e);
void train_log_free(train_log *l);
/* Reads dir/log.jsonl, or else dir/<sub>/log.jsonl of each subfolder (a
 * per-part run), sorted by name. *found is 0 when there is no log. */
int train_logs_read(const char *dir, train_logs *out, int *found, mskx_err *e);
void train_logs_free(train_logs *l);

/* ---- calibration ---- */

typedef struct calib {
  int count[REPORT_CAL_BINS];
  double mean_pred[REPORT_CAL_BINS], frac_pos[REPORT_CAL_BINS];
  double ece;         /* sum over bins of count/n * |frac_pos - mean_pred| */
  double brier;       /* mean squared error of the probabilities */
} calib;
/* Bins [k/10, (k+1)/10), the last one closed. */
void report_calibration(const double *p, const int *y, int n, calib *out);

/* ---- the page ---- */

typedef struct report_input {
  const char *model_path;
  const predictor_info *info;
  const char *precision;       /* "fp32" or "bf16" */
  const eval_run *run;
  const eval_results *res;
  const report_gallery *gallery; /* may be NULL */
  const train_logs *logs;        /* may be NULL */
  const char *logs_note;         /* why no curves are shown (may be NULL) */
  int synthetic;                 /* the data came from `mskx synth` */
} report_input;

/* True when the dataset at root was written by `mskx synth` (synth_findings.csv
 * in root or, for root = .../MURA-v1.1, beside it). */
bool report_data_is_synthetic(const char *root);

/* Renders the page into a malloc'd string. */
int report_render_html(const report_input *in, char **html, size_t *len, mskx_err *e);
/* Renders and writes it atomically. */
int report_write_html(const char *path, const report_input *in, mskx_err *e);

#endif
