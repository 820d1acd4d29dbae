/* Optimizers over the flat parameter buffer: Adam, AdamW and SGD with
 * PyTorch's update rules, RMSprop with Keras's defaults (epsilon outside the
 * square root). One element-wise loop per step; see docs/training_options.md. */
#ifndef MSKX_TRAIN_OPTIM_H
#define MSKX_TRAIN_OPTIM_H
#include <stddef.h>
#include <stdint.h>
#include "core/tensor.h"
#include "nn/params.h"
#include "io/safetensors.h"
#include "mskx.h"

typedef struct optim_config {
  char name[16];       /* "adam", "adamw", "sgd" or "rmsprop" */
  double lr;           /* default learning rate (schedules pass their own per step) */
  double beta1, beta2; /* adam, adamw */
  double eps;          /* adam, adamw, rmsprop */
  double weight_decay; /* L2 added to the gradient; decoupled for adamw */
  double momentum;     /* sgd, rmsprop */
  int nesterov;        /* sgd (needs momentum > 0) */
  double rho;          /* rmsprop: decay of the squared-gradient average */
} optim_config;

typedef struct optimizer optimizer;

/* Fills c with the named optimizer's own defaults (PyTorch's for adam, adamw
 * and sgd, Keras's for rmsprop). Unknown names are MSKX_EINVAL. */
int optim_config_defaults(const char *name, optim_config *c, mskx_err *e);
/* Range checks: lr >= 0, betas and rho in [0, 1), eps, weight decay and
 * momentum >= 0, nesterov only with momentum; all finite. */
int optim_config_validate(const optim_config *c, mskx_err *e);

/* Allocates zeroed state for n_params floats (the param_store's n_params). */
int optim_create(const optim_config *c, size_t n_params, optimizer **out, mskx_err *e);
void optim_destroy(optimizer *o);
const optim_config *optim_get_config(const optimizer *o);

/* One update of every parameter of ps in place from ps->grads, with
 * learning rate lr (the schedule's value for this step). Element-wise, so
 * the result does not depend on the OpenMP thread count. Bumps ps->version:
 * everything cached from the old values (oneDNN weight reorders, batch
 * norms folded into convolutions) is rebuilt by the next forward, with no
 * call for the caller to remember. MSKX_ESHAPE when ps is not the size
 * the optimizer was created for. */
int optim_step(optimizer *o, param_store *ps, double lr, mskx_err *e);
/* The same for elements [offset, offset + count) only; the others, their state
 * and their step counts are untouched, as PyTorch skips parameters whose grad
 * is None (e.g. a frozen backbone: when it is unfrozen its Adam bias
 * correction starts from step 1). MSKX_EINVAL for a range outside the
 * buffer, MSKX_ELIMIT when more than OPTIM_MAX_SEGMENTS ranges with
 * different step counts would be needed; nothing changes then. */
#define OPTIM_MAX_SEGMENTS 32
int optim_step_range(optimizer *o, param_store *ps, size_t offset, size_t count, double lr, mskx_err *e);

/* ---- Checkpoint state ---- */
#define OPTIM_MAX_STATE 3
/* Views of the state buffers as 1-D tensors named like PyTorch's state keys
 * with an "optim." prefix ("optim.exp_avg", "optim.exp_avg_sq",
 * "optim.momentum_buffer", "optim.square_avg"); names and data stay the
 * optimizer's. out has OPTIM_MAX_STATE slots; returns the number filled (0
 * for SGD without momentum). */
int optim_state_tensors(const optimizer *o, tensor_ref out[OPTIM_MAX_STATE]);
/* Steps taken by the most-updated parameters (Adam's bias correction uses
 * each parameter's own count; they differ only after optim_step_range). */
int64_t optim_get_step(const optimizer *o);
/* The step counts as text for a checkpoint: "N" when all parameters share
 * one count, else "lo:hi:N;lo:hi:N;..." ranges tiling the buffer.
 * OPTIM_STEPS_TEXT_MAX bytes always suffice. Parse accepts both forms and
 * checks that the ranges tile exactly the optimizer's n_params. */
#define OPTIM_STEPS_TEXT_MAX (OPTIM_MAX_SEGMENTS * 64)
int optim_steps_format(const optimizer *o, char *buf, size_t n, mskx_err *e);
int optim_steps_parse(optimizer *o, const char *text, mskx_err *e);
/* Restores every state buffer from f's tensors named prefix + the state's
 * name (a checkpoint's "train_state.optim.exp_avg"; other tensors are
 * ignored). Each must be present with exactly n_params elements; on any
 * error nothing is changed. Step counts are restored separately
 * (optim_steps_parse). */
int optim_state_load(optimizer *o, const st_file *f, const char *prefix, mskx_err *e);

#endif
