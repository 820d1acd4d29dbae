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
#include "nn/layers.h"
#include "nn/params.h"
#include "io/safetensors.h"
#include "models/arch.h"

typedef struct net net;

/* A plan's state at the level of the network: the model's implementation
 * (layers, primitives, activations) and what it was planned for. */
typedef struct net_plan_slot {
  void *impl;
  int planned, n, h, w, train;
  precision prec;
  float aux;                    /* aux_weight of the plan */
  float *aux_logits, *aux_dz;
} net_plan_slot;

/* Planning work done by a network (for the per-epoch overhead figures):
 * plans built, plans found resident, seconds spent building and freeing
 * plans, and convolution primitives (oneDNN primitives and reorders) the
 * engine created meanwhile. */
typedef struct net_plan_stats {
  long built, reused, dropped;
  double seconds;
} net_plan_stats;

/* At most this many plans are kept resident (the training plan and the
 * validation plan of a training run). */
#define NET_MAX_PLANS 2

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
  /* A quantised model (quantize.h): per store entry, the quantisation step
   * of the u8 input of the convolution whose weight it is (0: fp32). Its
   * inference plans run in int8; training plans are refused. NULL: fp32. */
  float *in_scale;
  void *impl;              /* model-specific layers and activations */
  /* Resident plans besides the current one (see net_set_keep_plans): a
   * parked plan and a spare, never planned implementation to plan into. */
  net_plan_slot parked;
  void *spare_impl;
  int keep_plans;          /* 1 (default): re-plan on every change; 2: keep two */
  net_plan_stats plan_stats;
  /* PREC_AUTO's choice per mode (inference, training), -1 before the first. */
  int auto_prec[2];
};

int net_create(const char *arch, engine *eng, uint64_t seed, net **out, mskx_err *e);
void net_destroy(net *m);
/* (Re)plans for a batch shape and mode; a no-op if unchanged. x is NHWC (n,h,w,3).
 * With net_set_keep_plans(m, 2), the plan being left stays resident and
 * switching back to it builds nothing (the trainer's train/validation
 * alternation); results are the same either way. */
int net_plan(net *m, int n, int h, int w, int train, precision prec, mskx_err *e);
/* How many plans to keep resident: 1 or 2 (NET_MAX_PLANS). Lowering it
 * frees the parked plan. */
int net_set_keep_plans(net *m, int keep, mskx_err *e);
/* --precision auto: times one step (after one warmup step, the faster of
 * two) of each candidate precision for a plan of this shape and mode, and
 * plans the fastest; forward only for inference, forward and backward for
 * training (no optimizer step). Candidates: fp32, and bf16 where the engine
 * runs it natively (AVX512-BF16 or AMX); `allowed` (bits 1 << precision, 0:
 * all) can narrow them. The trial leaves the network as it was: running
 * statistics, gradients and dropout state are restored and data-parallel
 * hooks are not called. The choice is remembered per mode: net_plan with
 * PREC_AUTO uses it (or makes it). */
typedef struct net_prec_choice {
  precision chosen;
  int n;                        /* candidates timed */
  precision cand[PREC_COUNT];
  double ms[PREC_COUNT];        /* their step times */
} net_prec_choice;
int net_choose_precision(net *m, int n, int h, int w, int train, unsigned allowed, net_prec_choice *out,
                         mskx_err *e);
/* Whether the engine runs bf16 natively (a candidate of auto). */
int net_bf16_native(const net *m);
/* Frees the parked plan, if any (memory is short). */
void net_drop_parked(net *m);
/* Whether a plan other than the current one is resident. */
static inline int net_has_parked(const net *m) { return m->parked.planned; }
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
/* Whether store entry idx is the weight of a convolution a quantised model
 * of this arch runs in int8 (DenseNet: every convolution but the stem's,
 * whose input, the normalised image, is not a post-ReLU tensor). */
int net_int8_conv(const net *m, int idx);

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
