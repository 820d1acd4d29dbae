/* Host tensors: a name, a shape and float32 data in C (row-major) order,
 * the exchange types of the file formats (safetensors, npy); the compute
 * engine keeps its own layouts. Two types, so that a declaration says who
 * frees what:
 *   htensor     OWNS its name and data (malloc'd): what the readers return
 *               (npy_read_f32, st_read's st_file, pth, Keras). Its holder
 *               frees it with htensor_release (st_free for a whole file), or
 *               moves it (copy the struct, then zero the source).
 *   tensor_ref  BORROWS them: a view of memory someone else owns (the
 *               parameter store, optimizer state, an htensor, a stack
 *               array); never freed through it, valid while the owner is.
 *               What writers (st_write) and views (ps_as_tensors,
 *               optim_state_tensors) use. */
#ifndef MSKX_CORE_TENSOR_H
#define MSKX_CORE_TENSOR_H
#include <stdint.h>
#include <stddef.h>

#define TENSOR_MAX_DIMS 8

/* Element types of the file formats (little-endian), all read as float32. */
typedef enum elem_dtype { EL_F32, EL_F16, EL_BF16, EL_F64, EL_I64, EL_I8 } elem_dtype;

typedef struct htensor {
  char *name;                      /* owned; may be NULL */
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  float *data;                     /* owned, numel floats */
  /* How a writer stores it: EL_F32 (0, the default), or EL_I8 for integer
   * values in [-128, 127] (quantised weights; safetensors only). */
  elem_dtype file_dtype;
} htensor;

typedef struct tensor_ref {
  const char *name;                /* borrowed */
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
  const float *data;               /* borrowed, numel floats */
  /* How a writer stores it: EL_F32 (0, the default), or EL_I8 for integer
   * values in [-128, 127] (quantised weights; safetensors only). */
  elem_dtype file_dtype;
} tensor_ref;

int64_t htensor_numel(const htensor *t);
int64_t tensor_ref_numel(const tensor_ref *t);
/* A view of an owned tensor (valid while t is). */
tensor_ref htensor_ref(const htensor *t);
/* Frees name and data and zeroes the struct. */
void htensor_release(htensor *t);
/* "[2, 3, 64, 64]" into buf. */
const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape);

size_t elem_size(elem_dtype dt);
float f16_to_f32(uint16_t h);
/* n contiguous elements of src into dst. */
void elem_convert(float *dst, const unsigned char *src, size_t n, elem_dtype dt);
float elem_to_f32(const unsigned char *p, elem_dtype dt);

#endif
