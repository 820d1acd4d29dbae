/* Post-training int8 quantisation (mskx quantize): activation steps from
 * calibration images of a dataset's training split, preprocessed as
 * inference preprocesses them, and per-output-channel symmetric weight
 * steps; the result is a model file (model_file.h, "quantization" int8). */
#ifndef MSKX_INFER_QUANTIZE_H
#define MSKX_INFER_QUANTIZE_H
#include "mskx.h"

/* Calibration images when --calib is not given (all of them if fewer). */
#define QUANT_DEFAULT_CALIB 256
/* The default statistic: the maximum of each convolution input over the
 * calibration images (100th percentile). Measured against the 99.9th,
 * 99.99th and 99.999th percentiles (docs/quantize.md), it kept the int8
 * probabilities closest to fp32 on both networks tried. */
#define QUANT_DEFAULT_PERCENTILE 100.0
/* Histogram bins over [0, max] for percentiles (a bin is max/4096 wide,
 * well under one u8 step of max/255). */
#define QUANT_HIST_BINS 4096
#define QUANT_CALIB_BATCH 8

typedef struct quant_options {
  const char *data;       /* dataset (its training split) */
  int calib;              /* images; <= 0: QUANT_DEFAULT_CALIB */
  double percentile;      /* in (0, 100]; 100: the maximum */
  int threads;            /* engine threads; <= 0: all cores */
  const char *date;       /* recorded calibration date (NULL: now, UTC) */
} quant_options;

typedef struct quant_report {
  int images;             /* calibration images used */
  int convs;              /* convolutions quantised */
  /* The written file, loaded back and run on the calibration images against
   * the fp32 model: the largest probability difference and whether the
   * int8 model loaded from the file gives the outputs of the one in memory. */
  double max_prob_diff;
  int roundtrip_equal;
} quant_report;

struct net;
/* Quantises a network in memory, its input steps the maxima over one batch x
 * (n, h, w, 3): the model a file would hold (for mskx bench --precision int8
 * on a fresh arch, where the values matter less than the work). */
int quantize_net_on(struct net *m, const float *x, int n, int h, int w, mskx_err *e);

int quantize_model(const char *model, const char *out, const quant_options *o, quant_report *r, mskx_err *e);

#endif
