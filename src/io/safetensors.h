/* safetensors files (https://github.com/huggingface/safetensors format):
 * 8-byte little-endian header length, a JSON header mapping tensor names to
 * {dtype, shape, data_offsets} plus an optional "__metadata__" object of
 * string values, then the raw little-endian data.
 * Reading accepts F32, F16, BF16, F64, I64 and I8 (converted to float32); writing is
 * F32, or I8 for tensors whose file_dtype asks (quantised weights).
 * Every length, offset and shape is validated against the file size. */
#ifndef MSKX_IO_SAFETENSORS_H
#define MSKX_IO_SAFETENSORS_H
#include "core/tensor.h"
#include "mskx.h"

typedef struct st_meta {
  char *key;
  char *value;
} st_meta;

typedef struct st_file {
  int n_tensors;
  htensor *tensors;   /* in header order; owned (st_free) */
  int n_meta;
  st_meta *meta;      /* "__metadata__" entries */
} st_file;

int st_read(const char *path, st_file **out, mskx_err *e);
/* Same, from memory (path is used in messages only). */
int st_read_mem(const unsigned char *buf, size_t len, const char *path, st_file **out, mskx_err *e);
void st_free(st_file *f);
/* Lookup by name; NULL if absent. */
const htensor *st_find(const st_file *f, const char *name);
const char *st_meta_get(const st_file *f, const char *key);
/* An error naming the first tensor name that appears twice (what: the source). */
int st_check_unique(const st_file *f, const char *what, mskx_err *e);

/* Writes tensors (F32, or I8 where file_dtype says) and metadata atomically.
 * The tensors are views of any float arrays (a file's own tensors: htensor_ref). */
int st_write(const char *path, const tensor_ref *tensors, int n_tensors,
             const st_meta *meta, int n_meta, mskx_err *e);

#endif
