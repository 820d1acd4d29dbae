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
