/* The parameter store: every trainable tensor of a network lives in one
 * contiguous float buffer (and its gradient in a second one of the same
 * layout), every non-trainable buffer (batch-norm running statistics) in a
 * third. One optimizer loop, one all-reduce, one checkpoint write. Entries
 * carry torchvision's state_dict names and shapes. */
#ifndef MSKX_GRAPH_PARAMS_H
#define MSKX_GRAPH_PARAMS_H
#include <stddef.h>
#include <stdint.h>
#include "core/tensor.h"
#include "mskx.h"

typedef enum param_kind { PK_PARAM = 0, PK_BUFFER = 1 } param_kind;

typedef struct param_entry {
  char name[112];
  param_kind kind;
  int ndim;
  int64_t shape[4];
  size_t offset;   /* into params (PK_PARAM) or buffers (PK_BUFFER) */
  size_t numel;
} param_entry;

typedef struct param_store {
  param_entry *entries;
  int n, cap;
  size_t n_params, n_buffers;
  float *params, *grads, *buffers;   /* allocated by ps_alloc */
  uint64_t version;                  /* bumped whenever params change */
} param_store;

/* Declares a tensor (before ps_alloc); returns its index or -1 (e is set). */
int ps_declare(param_store *ps, const char *name, param_kind kind, int ndim, const int64_t *shape, mskx_err *e);
int ps_alloc(param_store *ps, mskx_err *e);
void ps_free(param_store *ps);
float *ps_data(const param_store *ps, int idx);
float *ps_grad(const param_store *ps, int idx);
int ps_find(const param_store *ps, const char *name);

/* Views of every entry (with_grads: of every parameter's gradient) for
 * writing safetensors; names and data stay the store's. *out (the array
 * only) is malloc'd: free it. */
int ps_as_tensors(const param_store *ps, int with_grads, tensor_ref **out, int *n, mskx_err *e);

#endif
