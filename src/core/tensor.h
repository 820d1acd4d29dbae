/* Host tensors: a name, a shape and float32 data in C (row-major) order.
 * This is the exchange type of the file formats (safetensors, npy); the
 * compute engine keeps its own layouts. */
#ifndef MSKX_CORE_TENSOR_H
#define MSKX_CORE_TENSOR_H
#include <stdint.h>
#include <stddef.h>

#define TENSOR_MAX_DIMS 8

typedef struct htensor {
  char *name;                      /* owned; may be NULL */
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  float *data;                     /* owned, numel floats */
} htensor;

int64_t htensor_numel(const htensor *t);
/* Frees name and data and zeroes the struct. */
void htensor_release(htensor *t);
/* "[2, 3, 64, 64]" into buf. */
const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

#endif
