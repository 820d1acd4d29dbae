/* Model files: a safetensors file holding every parameter and buffer under
 * torchvision's names plus "__metadata__" that says how to use it:
 *   format "mskx-model-1", arch, size, keep_aspect, mean, std (3 comma-separated
 *   floats each), parts ("all" or a comma list of XR_* names), threshold,
 *   epoch, metrics (a JSON object as text), bn_eps (the batch-norm epsilon;
 *   absent means PyTorch's 1e-5; Keras's models use 1.001e-5).
 *   For Inception-v3 also transform_input ("0"/"1": torchvision's input
 *   re-normalisation, which the network applies itself).
 * Imported models (mskx import) add source and preprocessing (text for people).
 * Training checkpoints add tensors named "train_state.*" (optimizer moments)
 * and "train_state" metadata; model loading ignores them. */
#ifndef MSKX_MODELS_MODEL_FILE_H
#define MSKX_MODELS_MODEL_FILE_H
#include "data/preprocess.h"
#include "io/safetensors.h"
#include "models/net.h"

#define MODEL_FORMAT "mskx-model-1"
#define MODEL_DEFAULT_THRESHOLD 0.5   /* the MURA paper: abnormal when p > 0.5 */
#define MODEL_ARCH_MAX 128            /* bytes of an arch string in model_meta, NUL included */
#define MODEL_MIN_SIZE 16             /* input sizes a model file may declare (pixels per side) */
#define MODEL_MAX_SIZE 8192

typedef struct model_meta {
  char arch[MODEL_ARCH_MAX];
  int size, keep_aspect;
  norm_params norm;
  char parts[1024];
  double threshold;
  int epoch;
  int transform_input;
  char metrics[4096];        /* JSON text, "{}" when none */
  float bn_eps;              /* batch-norm epsilon (BN_EPS unless imported from Keras) */
} model_meta;

/* The "bn_eps" metadata of f into *eps (BN_EPS when absent); an invalid value
 * is an error naming path. */
int model_bn_eps_read(const st_file *f, const char *path, float *eps, mskx_err *e);

void model_meta_default(model_meta *m);
/* Parses the metadata of an opened file; `path` for messages. */
int model_meta_read(const st_file *f, const char *path, model_meta *out, mskx_err *e);

/* Writes m's parameters and buffers with meta (atomically). extra/n_extra:
 * more tensors (e.g. train_state.*), extra_meta: more metadata entries. */
int model_save(const char *path, const net *m, const model_meta *meta, const tensor_ref *extra, int n_extra,
               const st_meta *extra_meta, int n_extra_meta, mskx_err *e);

/* The network of an opened model file (metadata, tensors, int8 scales);
 * path names it in messages. */
int model_from_file(const st_file *f, const char *path, engine *eng, net **out, model_meta *meta, mskx_err *e);

/* Opens a model file: creates the network of its arch on eng and loads it.
 * *file (if non-NULL) receives the open st_file (for train_state); else it is freed. */
int model_load(const char *path, engine *eng, net **out, model_meta *meta, st_file **file, mskx_err *e);

/* Quantised (int8) models (mskx quantize) are model files with metadata
 * "quantization" = "int8" and "calibration" (a JSON object: images, source,
 * split, statistic, date), in which every convolution net_int8_conv names has
 *   <conv>.weight        I8, the per-output-channel quantised weights
 *   <conv>.weight_scale  F32 [cout], their steps (finite, > 0)
 *   <conv>.input_scale   F32 [1], the step of its u8 input (finite, > 0)
 * Loading dequantises the weights into the store (q * step, exactly what the
 * int8 plan quantises again) and sets m->in_scale. */
#define QUANT_INT8 "int8"
#define QUANT_META_KEY "quantization"
/* Whether f is a quantised model file (any "quantization" metadata; its value
 * is checked where the model is loaded, model_quant_load). */
int model_file_is_quantised(const st_file *f);
#define QUANT_WEIGHT_SCALE ".weight_scale"
#define QUANT_INPUT_SCALE ".input_scale"

/* Reads a quantised file's scales into m (loaded from f by
 * net_load_tensors): checks them and the weights, dequantises; a no-op for
 * fp32 files. */
int model_quant_load(net *m, const st_file *f, const char *path, mskx_err *e);

/* Rewrites only the metadata threshold of a model file (atomically). */
int model_set_threshold(const char *path, double threshold, mskx_err *e);

#endif
