/* ONNX export of a model file, bundle or ensemble (mskx export --onnx).
 *
 * A model file becomes one .onnx file: input "input" (N, 3, S, S) float32,
 * already preprocessed as metadata_props describe; outputs "logit" (N, 1) and
 * "probability" (N, 1) = Sigmoid(logit). A bundle or ensemble becomes one
 * .onnx file per network, OUT.<tag>.onnx (tag: the bundle part, or m1, m2,
 * ... for ensemble members), plus OUT.json (format "mskx-onnx-combine-1")
 * saying how mskx predict combines them; OUT is the output path without its
 * ".onnx" suffix. */
#ifndef MSKX_INFER_ONNX_EXPORT_H
#define MSKX_INFER_ONNX_EXPORT_H
#include "mskx.h"

#define ONNX_OPSET_MIN 13
#define ONNX_OPSET_MAX 21
#define ONNX_OPSET_DEFAULT 17
#define ONNX_BATCH_MAX 65536

typedef struct onnx_export_options {
  int batch;    /* fixed batch size, or 0 for a symbolic dimension "N" */
  int opset;    /* ONNX_OPSET_MIN..ONNX_OPSET_MAX */
  int fold_bn;  /* fold batch norms that follow convolutions into them */
} onnx_export_options;

/* The files written, in order (the combination JSON last). */
typedef struct onnx_export_files {
  int n;
  char **paths;
} onnx_export_files;

int onnx_export(const char *model_path, const char *out_path, const onnx_export_options *o, onnx_export_files *files,
                mskx_err *e);
void onnx_export_files_free(onnx_export_files *f);

#endif
