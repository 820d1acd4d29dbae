/* Timing of inference batches and training steps on random data, for
 * `mskx bench` and the side-by-side comparison with PyTorch (bench/compare). */
#ifndef MSKX_TRAIN_BENCH_H
#define MSKX_TRAIN_BENCH_H
#include <stdint.h>
#include "engine/engine.h"
#include "mskx.h"

typedef struct bench_config {
  const char *arch;
  const char *model;    /* a model file to time instead of a fresh arch (NULL: arch) */
  int int8;             /* a fresh arch quantised in memory (inputs calibrate it); a
                           model file is int8 when it was quantised */
  int size, batch;      /* square inputs (batch, size, size, 3); size 0 with a model: its own */
  int train;            /* 0: inference batch; 1: forward + loss + backward + Adam step */
  precision prec;       /* PREC_AUTO: the faster on this machine, chosen at plan time */
  int iters, warmup;    /* timed and untimed repetitions */
  int threads;          /* <= 0: OpenMP's default */
  uint64_t seed;        /* weights, inputs and targets */
  int no_fp32_check;    /* bf16: skip timing one fp32 step afterwards (profiles) */
} bench_config;

typedef struct bench_result {
  char arch[128];           /* the network timed (the model file's arch) */
  int size;                 /* the input side used */
  int int8;                 /* int8 convolutions (a quantised network) */
  int threads;              /* threads actually used */
  double images_per_s;      /* batch / median batch time */
  double ms_median, ms_min, ms_mean; /* per batch (or training step) */
  double ms_total;          /* all repetitions, warmup included (for profiles) */
  double peak_rss_mb;       /* process peak resident set, MiB */
  double loss_first, loss_last; /* training: loss of the first and last step (NAN for inference) */
  precision prec;           /* the precision timed (PREC_AUTO resolved) */
  /* One step of each precision timed by net_choose_precision (0: not
   * timed): every candidate with PREC_AUTO; fp32 after a bf16 run, to tell
   * whether bf16 pays on this machine. */
  double prec_ms[PREC_COUNT];
} bench_result;

/* Builds the network and runs warmup + iters repetitions, timing each. */
int bench_run(const bench_config *c, bench_result *r, mskx_err *e);

/* Peak resident set size of this process in MiB (VmHWM, as getrusage's
 * ru_maxrss reports it on Linux); 0 if unavailable. */
double bench_peak_rss_mb(void);

#endif
