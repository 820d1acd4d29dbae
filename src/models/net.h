/* Networks: an architecture (an arch string, models/arch.h), its parameters
 * in one store with torchvision's names, and plans for concrete shapes.
 *
 *   net_create("densenet169") -> declare + allocate + torchvision init
 *   net_plan(n, h, w, train, prec) -> primitives and activation memory, once
 *   net_forward(x) -> logits; net_backward(dlogits) -> ps.grads
 *
 * Parameters change through optim_step (train/optim.h), which bumps
 * ps.version itself, or through a load (net_load_tensors); anything else
 * that writes ps.params calls net_params_changed, or the cached oneDNN
 * weights and folded batch norms keep the old values. */
#ifndef MSKX_MODELS_NET_H
#define MSKX_MODELS_NET_H
#include "engine/engine.h"
#include "graph/layers.h"
#include "graph/params.h"
#include "io/safetensors.h"
#include "models/arch.h"

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
  float planned_aux_weight;       /* aux_weight of the current plan */
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
/* Marks parameters as changed after a write to ps.params other than
 * optim_step (which marks them itself) and net_load_tensors. */
static inline void net_params_changed(net *m) { m->ps.version++; }
/* The classifier's slice of the flat parameter buffer, [*offset, n_params):
 * training only the head ("freeze the backbone") updates this tail. The
 * builders declare the classifier last; an arch whose head is not the tail
 * is an error here (MSKX_EINTERNAL naming the parameter after it) rather
 * than a frozen backbone that quietly trains. */
int net_head_slice(const net *m, size_t *offset, mskx_err *e);

/* A training checkpoint's tensors that are not weights (optimizer state):
 * TRAIN_STATE_PREFIX + the optimizer's names. */
#define TRAIN_STATE_PREFIX "train_state."

/* Loads every parameter and buffer by torchvision name. Missing, unexpected
 * or mis-shaped tensors are errors naming the tensor; "*.num_batches_tracked"
 * and a checkpoint's TRAIN_STATE_PREFIX tensors are accepted and ignored. With reinit_head, a classifier of another shape
 * (e.g. ImageNet's 1000 classes) is skipped and the 1-logit head keeps its
 * fresh initialisation. `what` names the source in messages. A metadata
 * entry "transform_input" ("0"/"1") sets it (Inception-v3 only). */
int net_load_tensors(net *m, const st_file *f, const char *what, int reinit_head, mskx_err *e);

#endif
