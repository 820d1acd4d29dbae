/* Private to src/models: the per-family pieces that arch_table (arch.c)
 * wires together. Nothing outside src/models calls these directly. */
#ifndef MSKX_MODELS_FAMILIES_H
#define MSKX_MODELS_FAMILIES_H
#include "models/arch.h"
#include "models/import_rules.h"

/* Builders (densenet.c, resnet.c, inception.c): declare layers and
 * parameters and set the net's vtable. */
int densenet_build(struct net *m, mskx_err *e);
int resnet_build(struct net *m, mskx_err *e);
int inception_build(struct net *m, mskx_err *e);

/* ONNX emitters (onnx_graph.c). */
void onnx_densenet_graph(struct onnx_emit *c, const char *input, const char *logit);
void onnx_resnet_graph(struct onnx_emit *c, const char *input, const char *logit);
void onnx_inception_graph(struct onnx_emit *c, const char *input, const char *logit);

/* mskx import's name rules: models/import_rules.h. */

#endif
