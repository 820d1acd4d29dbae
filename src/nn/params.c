/* Parameter store (see params.h). */
#include "nn/params.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

int ps_declare(param_store *ps, const char *name, param_kind kind, int ndim, const int64_t *shape, mskx_err *e) {
  if (ps->params || ps->buffers) {
    err_set(e, MSKX_EINTERNAL, "parameter '%s' declared after allocation", name);
    return -1;
  }
  if (strlen(name) >= sizeof ps->entries[0].name || ndim < 1 || ndim > 4) {
    err_set(e, MSKX_EINTERNAL, "bad parameter declaration '%s'", name);
    return -1;
  }
  if (ps->n == ps->cap) {
    int cap = ps->cap ? 2 * ps->cap : 64;
    param_entry *p = realloc(ps->entries, (size_t)cap * sizeof *p);
    if (!p) {
      err_set(e, MSKX_ENOMEM, "out of memory declaring parameters");
      return -1;
    }
    ps->entries = p;
    ps->cap = cap;
  }
  param_entry *en = &ps->entries[ps->n];
  memset(en, 0, sizeof *en);
  strcpy(en->name, name);
  en->kind = kind;
  en->ndim = ndim;
  en->numel = 1;
  for (int i = 0; i < ndim; i++) {
    en->shape[i] = shape[i];
    en->numel *= (size_t)shape[i];
  }
  /* Keep each tensor 16-float aligned so vector loops and reorders start aligned. */
  size_t *total = kind == PK_PARAM ? &ps->n_params : &ps->n_buffers;
  en->offset = *total;
  *total += (en->numel + 15) & ~(size_t)15;
  return ps->n++;
}

int ps_alloc(param_store *ps, mskx_err *e) {
  size_t np = ps->n_params ? ps->n_params : 16, nb = ps->n_buffers ? ps->n_buffers : 16;
  ps->params = big_alloc(np * sizeof(float));
  ps->grads = big_alloc(np * sizeof(float));
  ps->buffers = big_alloc(nb * sizeof(float));
  if (!ps->params || !ps->grads || !ps->buffers) return err_set(e, MSKX_ENOMEM, "cannot allocate parameters");
  memset(ps->params, 0, np * sizeof(float));
  memset(ps->grads, 0, np * sizeof(float));
  memset(ps->buffers, 0, nb * sizeof(float));
  ps->version = 1;
  return MSKX_OK;
}

void ps_free(param_store *ps) {
  free(ps->entries);
  free(ps->params);
  free(ps->grads);
  free(ps->buffers);
  memset(ps, 0, sizeof *ps);
}

float *ps_data(const param_store *ps, int idx) {
  const param_entry *en = &ps->entries[idx];
  return (en->kind == PK_PARAM ? ps->params : ps->buffers) + en->offset;
}

float *ps_grad(const param_store *ps, int idx) {
  const param_entry *en = &ps->entries[idx];
  return en->kind == PK_PARAM ? ps->grads + en->offset : NULL;
}

int ps_find(const param_store *ps, const char *name) {
  for (int i = 0; i < ps->n; i++)
    if (!strcmp(ps->entries[i].name, name)) return i;
  return -1;
}

int ps_as_tensors(const param_store *ps, int with_grads, tensor_ref **out, int *n, mskx_err *e) {
  int count = 0;
  for (int i = 0; i < ps->n; i++)
    if (!with_grads || ps->entries[i].kind == PK_PARAM) count++;
  tensor_ref *t = calloc((size_t)(count ? count : 1), sizeof *t);
  if (!t) return err_set(e, MSKX_ENOMEM, "out of memory");
  int k = 0;
  for (int i = 0; i < ps->n; i++) {
    const param_entry *en = &ps->entries[i];
    if (with_grads && en->kind != PK_PARAM) continue;
    t[k].name = en->name;
    t[k].ndim = en->ndim;
    memcpy(t[k].shape, en->shape, sizeof en->shape);
    t[k].data = with_grads ? ps_grad(ps, i) : ps_data(ps, i);
    k++;
  }
  *out = t;
  *n = count;
  return MSKX_OK;
}
