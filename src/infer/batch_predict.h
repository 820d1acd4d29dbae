/* Many studies through one model, as fast as its network computes: decoder
 * threads read and resize the studies' images (in input order, a bounded
 * window ahead) while the calling thread computes the decoded ones, whole
 * studies gathered into shared forward passes of up to the model's
 * max_batch inputs (predictor_predict_batch, as `mskx serve`'s scheduler),
 * and hands each study's result to a callback in input order. What `mskx
 * predict` runs over a folder of studies. */
#ifndef MSKX_INFER_BATCH_PREDICT_H
#define MSKX_INFER_BATCH_PREDICT_H
#include "mskx.h"

/* Decoder threads when batch_predict_options.decode_threads is 0: up to a
 * quarter of the cores (decoding a radiograph costs a few per cent of a
 * DenseNet's forward pass on it), at least one, at most this many. */
#define BATCH_PREDICT_DECODERS_MAX 4
/* Studies decoded or computed ahead of the one being delivered (each holds
 * its network inputs: a 3-image study for a 320 px network 2.4 MiB), when
 * batch_predict_options.window is 0. */
#define BATCH_PREDICT_WINDOW 32
#define BATCH_PREDICT_MAX_THREADS 64

/* One study: its image files in order, and its part (NULL or "": the XR_*
 * component of the first path, else the DICOM attributes), exactly as
 * mskx_predict_files takes them. */
typedef struct batch_study {
  const char *const *paths;
  int n;
  const char *part;
} batch_study;

typedef struct batch_predict_options {
  int decode_threads;   /* 0: default (above) */
  int window;           /* 0: BATCH_PREDICT_WINDOW; at least the decoders */
} batch_predict_options;

/* Receives study i's result (r, NULL on failure) or its error (rc, e). r
 * belongs to the engine and is freed after the call returns. Called on the
 * thread that called batch_predict_files, for i = 0, 1, ... n-1 in order;
 * a nonzero return stops the run (the engine returns that value). */
typedef int (*batch_predict_fn)(void *user, int i, const mskx_result *r, int rc, const mskx_err *e);

/* Predicts n studies; each study's result equals mskx_predict_files of the
 * same files, up to the convolution algorithm oneDNN picks for the batch
 * size (2e-5 in probability; docs/predict.md). A study that fails (an
 * unreadable image, a part the bundle has no model for) is delivered with
 * its own error; the others go on. opt and bo may be NULL. Returns nonzero
 * only when the run itself failed (no memory, no thread) or fn stopped it;
 * studies not yet delivered then are not. Uses one prediction context of m
 * at a time, on the calling thread (whose OpenMP team computes). */
int batch_predict_files(mskx_model *m, const batch_study *studies, int n, const mskx_predict_options *opt,
                        const batch_predict_options *bo, batch_predict_fn fn, void *user, mskx_err *e);

#endif
