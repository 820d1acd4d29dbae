/* libFuzzer: NumPy .npy reading (mskx forward's input and targets). */
#include <stdint.h>
#include <stdlib.h>
#include "fuzz_util.h"
#include "io/npy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char path[64];
  int fd = fuzz_memfd(data, size, path, sizeof path);
  if (fd < 0) return 0;
  htensor t = {0};
  mskx_err e = {0, ""};
  if (npy_read_f32(path, &t, &e) == MSKX_OK) htensor_release(&t);
  close(fd);
  return 0;
}
