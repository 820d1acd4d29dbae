/* Networks: an architecture (parsed from an arch string), its parameters in
 * one store with torchvision's names, and plans for concrete shapes.
 *
 *   net_create("densenet169") -> declare + allocate + torchvision init
 *   net_plan(n, h, w, train, prec) -> primitives and activation memory, once
 *   net_forward(x) -> logits; net_backward(dlogits) -> ps.grads
 *
 * Arch strings: densenet121 | densenet169 | densenet201 | resnet50 |
 * inception_v3 | densenet:growth=G,blocks=A-B-C[-D...],init=F,bn_size=S (any
 * small DenseNet-BC). */
#ifndef MSKX_MODELS_NET_H
#define MSKX_MODELS_NET_H
#include "engine/engine.h"
#include "graph/layers.h"
#include "graph/params.h"
#include "io/safetensors.h"

#define ARCH_MAX_BLOCKS 8

typedef enum arch_family { ARCH_DENSENET = 0, ARCH_RESNET = 1, ARCH_INCEPTION = 2 } arch_family;

/* Inception-v3's auxiliary loss weight (torchvision's training reference
 * recipe: loss = main + 0.4 * aux). */
#define INCEPTION_AUX_WEIGHT 0.4f
/* Inception-v3's smallest input (torchvision's meta "min_size"), and the
 * smallest with the auxiliary head: its 5x5 average pool (stride 3) and 5x5
 * convolution need Mixed_6e's map to be at least 17x17. */
#define INCEPTION_MIN_SIZE 75
#define INCEPTION_AUX_MIN_SIZE 299
/* Its native input size (torchvision's weights: 299x299 crops). */
#define INCEPTION_SIZE 299

typedef struct arch_spec {
  arch_family family;
  char name[128];               /* canonical arch string */
  int growth, bn_size, init_features;
  int n_blocks, blocks[ARCH_MAX_BLOCKS];   /* dense layers per block / bottlenecks per stage */
} arch_spec;

int arch_parse(const char *s, arch_spec *out, mskx_err *e);
/* Spatial sizes must be multiples of this (and at least arch_min_size). */
int arch_size_multiple(const arch_spec *a);
/* The smallest input side; aux: training with Inception-v3's auxiliary head. */
int arch_min_size(const arch_spec *a, int aux);
/* Whether the arch has an auxiliary classifier / torchvision's transform_input. */
static inline int arch_has_aux(const arch_spec *a) { return a->family == ARCH_INCEPTION; }

/* torchvision's BasicConv2d: nn.BatchNorm2d(out_channels, eps=0.001), the
 * epsilon of every Inception-v3 batch norm (inception.c, onnx_graph.c). */
#define INCEPTION_BN_EPS 1e-3f

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
  float planned_aux;       /* aux_weight of the current plan */
  int head_w, head_b;      /* classifier (densenet) / fc (resnet, inception) indices */
  int aux_head_w, aux_head_b;   /* AuxLogits.fc (inception), else -1: also a one-logit head */
  /* Inception-v3: the auxiliary loss weight of training plans (0: the aux
   * head is not computed; set before net_plan), and torchvision's
   * transform_input (on for its ImageNet weights). Others: 0. */
  float aux_weight;
  int transform_input;
  /* Inception-v3: torchvision's dropout before fc in training (0.5). Its
   * masks come from (seed, dropout_key); each training forward then adds 1
   * to the key. The trainer sets the key per step (rank, epoch, batch), so
   * a resumed run draws the same masks. Others: 0. */
  float dropout;
  uint64_t seed, dropout_key;
  /* Set by a training plan that computes the auxiliary head: its logits
   * (after net_forward) and the loss gradient for them (net_loss). */
  float *aux_logits, *aux_dz;
  /* A quantised model (quantize.h): per store entry, the quantisation step
   * of the u8 input of the convolution whose weight it is (0: fp32). Its
   * inference plans run in int8; training plans are refused. NULL: fp32. */
  float *in_scale;
  void *impl;              /* model-specific layers and activations */
};

int net_create(const char *arch, engine *eng, uint64_t seed, net **out, mskx_err *e);
void net_destroy(net *m);
/* (Re)plans for a batch shape and mode; a no-op if unchanged. x is NHWC (n,h,w,3). */
int net_plan(net *m, int n, int h, int w, int train, precision prec, mskx_err *e);
int net_forward(net *m, const float *x, float *logits, mskx_err *e);
int net_backward(net *m, const float *dlogits, mskx_err *e);
/* The training loss of the latest forward: PyTorch's
 * BCEWithLogitsLoss(weight=w) of the logits, plus aux_weight times that of
 * the auxiliary logits when the plan computes them; dz (may be NULL) gets
 * d loss / d logits and the net keeps the auxiliary part for net_backward.
 * Without an auxiliary head this is the engine's bce_logits. */
double net_loss(net *m, const float *logits, const float *t, const float *w, int n, float *dz);
/* Scales the loss gradients (dz and the auxiliary one) by s: a process's
 * share of a global batch. */
void net_scale_loss_grad(net *m, float *dz, int n, float s);
/* Sets transform_input; an error for archs without it. */
int net_set_transform_input(net *m, int on, mskx_err *e);
/* Copies src's parameters, buffers, settings and quantisation into dst, a
 * net of the same arch (a second planned copy of a loaded model). */
int net_copy_weights(net *dst, const net *src, mskx_err *e);
/* Whether the arch family can run int8 inference (quantize refuses others). */
static inline int arch_has_int8(const arch_spec *a) { return a->family == ARCH_DENSENET; }
/* Whether store entry idx is the weight of a convolution a quantised model
 * of this arch runs in int8 (DenseNet: every convolution but the stem's,
 * whose input, the normalised image, is not a post-ReLU tensor). */
int net_int8_conv(const net *m, int idx);

/* Marks parameters as changed (after an optimizer step or a load). */
static inline void net_params_changed(net *m) { m->ps.version++; }

/* Loads every parameter and buffer by torchvision name. Missing, unexpected
 * or mis-shaped tensors are errors naming the tensor; "*.num_batches_tracked"
 * is accepted and ignored. With reinit_head, a classifier of another shape
 * (e.g. ImageNet's 1000 classes) is skipped and the 1-logit head keeps its
 * fresh initialisation. `what` names the source in messages. A metadata
 * entry "transform_input" ("0"/"1") sets it (Inception-v3 only). */
int net_load_tensors(net *m, const st_file *f, const char *what, int reinit_head, mskx_err *e);

/* Model-family constructors (densenet.c, resnet.c, inception.c). */
int densenet_build(net *m, mskx_err *e);
int resnet_build(net *m, mskx_err *e);
int inception_build(net *m, mskx_err *e);

#endif
