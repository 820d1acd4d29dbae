/* Networks: an architecture (parsed from an arch string), its parameters in
 * one store with torchvision's names, and plans for concrete shapes.
 *
 *   net_create("densenet169") -> declare + allocate + torchvision init
 *   net_plan(n, h, w, train, prec) -> primitives and activation memory, once
 *   net_forward(x) -> logits; net_backward(dlogits) -> ps.grads
 *
 * Arch strings: densenet121 | densenet169 | densenet201 | resnet50 |
 * densenet:growth=G,blocks=A-B-C[-D...],init=F,bn_size=S (any small DenseNet-BC). */
#ifndef MSKX_MODELS_NET_H
#define MSKX_MODELS_NET_H
#include "engine/engine.h"
#include "graph/layers.h"
#include "graph/params.h"
#include "io/safetensors.h"

#define ARCH_MAX_BLOCKS 8

typedef enum arch_family { ARCH_DENSENET = 0, ARCH_RESNET = 1 } arch_family;

typedef struct arch_spec {
  arch_family family;
  char name[128];               /* canonical arch string */
  int growth, bn_size, init_features;
  int n_blocks, blocks[ARCH_MAX_BLOCKS];   /* dense layers per block / bottlenecks per stage */
} arch_spec;

int arch_parse(const char *s, arch_spec *out, mskx_err *e);
/* Spatial sizes must be multiples of this (and at least it). */
int arch_size_multiple(const arch_spec *a);

typedef struct net net;

typedef struct net_vtbl {
  int (*plan)(net *m, int n, int h, int w, mskx_err *e);
  void (*unplan)(net *m);
  int (*forward)(net *m, const float *x, float *logits, mskx_err *e);
  int (*backward)(net *m, const float *dlogits, mskx_err *e);
  void (*init)(net *m, uint64_t seed);
  void (*destroy_model)(net *m);
  /* The last feature map (after the final ReLU) of the latest forward, for
   * class activation maps: NHWC view valid until the next forward. */
  view (*features)(const net *m);
} net_vtbl;

struct net {
  const net_vtbl *vt;
  arch_spec arch;
  param_store ps;
  layer_ctx cx;
  int planned, n, h, w;
  int head_w, head_b;      /* classifier (densenet) / fc (resnet) indices */
  void *impl;              /* model-specific layers and activations */
};

int net_create(const char *arch, engine *eng, uint64_t seed, net **out, mskx_err *e);
void net_destroy(net *m);
/* (Re)plans for a batch shape and mode; a no-op if unchanged. x is NHWC (n,h,w,3). */
int net_plan(net *m, int n, int h, int w, int train, precision prec, mskx_err *e);
int net_forward(net *m, const float *x, float *logits, mskx_err *e);
int net_backward(net *m, const float *dlogits, mskx_err *e);
/* Marks parameters as changed (after an optimizer step or a load). */
static inline void net_params_changed(net *m) { m->ps.version++; }

/* Loads every parameter and buffer by torchvision name. Missing, unexpected
 * or mis-shaped tensors are errors naming the tensor; "*.num_batches_tracked"
 * is accepted and ignored. With reinit_head, a classifier of another shape
 * (e.g. ImageNet's 1000 classes) is skipped and the 1-logit head keeps its
 * fresh initialisation. `what` names the source in messages. */
int net_load_tensors(net *m, const st_file *f, const char *what, int reinit_head, mskx_err *e);

/* Model-family constructors (densenet.c, resnet.c). */
int densenet_build(net *m, mskx_err *e);
int resnet_build(net *m, mskx_err *e);

#endif
