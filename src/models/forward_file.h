/* A network on one batch given as files: the forward pass (logits), the
 * training loss and the backward pass with every parameter's gradient. This
 * is what `mskx forward` runs and what the PyTorch parity checks compare. */
#ifndef MSKX_MODELS_FORWARD_FILE_H
#define MSKX_MODELS_FORWARD_FILE_H
#include <stdint.h>
#include "models/net.h"

/* Largest batch and image side accepted from an input file. */
#define FORWARD_MAX_BATCH 4096
#define FORWARD_MAX_SIDE 8192

typedef struct forward_options {
  const char *arch;    /* arch string (net_create) */
  const char *weights; /* safetensors with torchvision names; metadata bn_eps honoured */
  int train;           /* batch norm with batch statistics (1) or running ones (0) */
  precision prec;
  int threads;         /* engine threads; <= 0: all cores */
  double aux_weight;   /* inception_v3, train mode: auxiliary loss weight */
  double dropout;      /* inception_v3, train mode: dropout before fc; < 0: the arch's default */
} forward_options;

/* Defaults: eval mode, fp32, all cores, INCEPTION_AUX_WEIGHT, the arch's dropout. */
void forward_options_default(forward_options *o);

/* (N, C, H, W) -> (N, H, W, C): PyTorch's layout to the engine's. */
void nchw_to_nhwc(const float *x, int64_t n, int64_t c, int64_t h, int64_t w, float *out);

/* Runs the network of o on input_npy (float32 (N, 3, H, W), C order, already
 * normalised). output_npy (may be NULL) receives the logits, float32 (N, 1).
 * With target_npy (float32 (N, 1) or (N) of 0/1), *loss receives the mean
 * BCE with logits (plus aux_weight times the auxiliary head's for
 * inception_v3 in train mode), else NaN. grads (may be NULL; needs target_npy
 * and o->train) receives the gradient of that loss by parameter name
 * (safetensors, metadata arch). Errors name the file and the problem. */
int forward_file_run(const forward_options *o, const char *input_npy, const char *target_npy, const char *output_npy,
                     const char *grads, double *loss, mskx_err *e);

#endif
