/* NumPy .npy files (format versions 1.0, 2.0 and 3.0 headers), float32
 * little-endian ('<f4'), C order. Anything else is a clear error. */
#ifndef MSKX_IO_NPY_H
#define MSKX_IO_NPY_H
#include "core/tensor.h"
#include "mskx.h"

/* Reads into out (out->name = NULL). */
int npy_read_f32(const char *path, htensor *out, mskx_err *e);
/* Writes a version 1.0 file atomically. */
int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, mskx_err *e);

#endif
