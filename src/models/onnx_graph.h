/* A network as an ONNX graph: the same wiring as densenet.c, resnet.c and
 * inception.c written as ONNX operators over the parameters, which become
 * initializers under their torchvision names. */
#ifndef MSKX_MODELS_ONNX_GRAPH_H
#define MSKX_MODELS_ONNX_GRAPH_H
#include "io/onnx.h"
#include "models/net.h"

/* Appends m's nodes and initializers to g, from the value `input` (N,3,H,W,
 * normalised) to the value `logit` (N,1). fold_bn: every batch norm that
 * directly follows a convolution is folded into it (weights scaled by
 * gamma/sqrt(var+eps), as mskx's own inference does); the others stay
 * BatchNormalization nodes. */
int net_onnx_graph(const net *m, onnx_graph *g, const char *input, const char *logit, int fold_bn, mskx_err *e);

#endif
