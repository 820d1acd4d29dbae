/* libFuzzer: safetensors parsing from memory and the model metadata read
 * from its __metadata__ (every model file passes through both). */
#include <stdint.h>
#include "io/safetensors.h"
#include "models/model_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file *f = NULL;
  mskx_err e = {0, ""};
  if (st_read_mem(data, size, "fuzz.safetensors", &f, &e) == MSKX_OK) {
    model_meta m;
    model_meta_read(f, "fuzz.safetensors", &m, &e);
    st_find(f, "classifier.weight");
    st_free(f);
  }
  return 0;
}
