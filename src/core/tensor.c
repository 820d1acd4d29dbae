/* Host tensor helpers. */
#include "core/tensor.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int64_t htensor_numel(const htensor *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

int64_t tensor_ref_numel(const tensor_ref *t) {
  int64_t n = 1;
  for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
  return n;
}

tensor_ref htensor_ref(const htensor *t) {
  tensor_ref r = {t->name, t->ndim, {0}, t->data, t->file_dtype};
  memcpy(r.shape, t->shape, sizeof r.shape);
  return r;
}

void htensor_release(htensor *t) {
  free(t->name);
  free(t->data);
  memset(t, 0, sizeof *t);
}

const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
  size_t off = 0;
  off += (size_t)snprintf(buf + off, n - off, "[");
  for (int i = 0; i < ndim && off < n; i++)
    off += (size_t)snprintf(buf + off, n - off, "%s%lld", i ? ", " : "", (long long)shape[i]);
  if (off < n) snprintf(buf + off, n - off, "]");
  return buf;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16, ex = (h >> 10) & 0x1fu, mant = h & 0x3ffu, bits;
  if (ex == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (ex == 0) {
    float v = (float)mant * 0x1p-24f; /* subnormal (or zero): exact in float32 */
    memcpy(&bits, &v, 4);
    bits |= sign;
  } else {
    bits = sign | ((ex + 112u) << 23) | (mant << 13); /* rebias 15 -> 127 */
  }
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

void elem_convert(float *dst, const unsigned char *src, size_t n, elem_dtype dt) {
  switch (dt) {
    case EL_F32: memcpy(dst, src, n * 4); break;
    case EL_F16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        dst[i] = f16_to_f32(h);
      }
      break;
    case EL_BF16:
      for (size_t i = 0; i < n; i++) {
        uint16_t h;
        memcpy(&h, src + 2 * i, 2);
        uint32_t bits = (uint32_t)h << 16;
        memcpy(&dst[i], &bits, 4);
      }
      break;
    case EL_F64:
      for (size_t i = 0; i < n; i++) {
        double d;
        memcpy(&d, src + 8 * i, 8);
        dst[i] = (float)d;
      }
      break;
    case EL_I64:
      for (size_t i = 0; i < n; i++) {
        int64_t v;
        memcpy(&v, src + 8 * i, 8);
        dst[i] = (float)v;
      }
      break;
    case EL_I8:
      for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)src[i];
      break;
  }
}

float elem_to_f32(const unsigned char *p, elem_dtype dt) {
  float f;
  elem_convert(&f, p, 1, dt);
  return f;
}

size_t elem_size(elem_dtype dt) {
  return dt == EL_I8 ? 1 : dt == EL_F16 || dt == EL_BF16 ? 2 : dt == EL_F32 ? 4 : 8;
}
