/* libFuzzer: safetensors parsing from memory and the model metadata read
 * from its __metadata__ (every model file passes through both); for small
 * custom DenseNets also the whole model load, int8 scales and quantised
 * weights included (model_from_file, model_quant_load). */
#include <stdint.h>
#include <string.h>
#include "io/safetensors.h"
#include "models/model_file.h"

/* Networks small enough to build for every input. */
#define FUZZ_MAX_LAYERS 8
#define FUZZ_MAX_WIDTH 64

static int small_arch(const char *s) {
  arch_spec a;
  mskx_err e = {0, ""};
  if (strncmp(s, "densenet:", 9) || arch_parse(s, &a, &e)) return 0;
  int layers = 0;
  for (int b = 0; b < a.n_blocks; b++) layers += a.blocks[b];
  return layers <= FUZZ_MAX_LAYERS && a.growth <= FUZZ_MAX_WIDTH && a.init_features <= FUZZ_MAX_WIDTH &&
         a.bn_size * a.growth <= FUZZ_MAX_WIDTH;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file *f = NULL;
  mskx_err e = {0, ""};
  if (st_read_mem(data, size, "fuzz.safetensors", &f, &e) == MSKX_OK) {
    model_meta m;
    if (model_meta_read(f, "fuzz.safetensors", &m, &e) == MSKX_OK && small_arch(m.arch)) {
      net *n = NULL;
      if (model_from_file(f, "fuzz.safetensors", NULL, &n, &m, &e) == MSKX_OK) net_destroy(n);
    }
    st_find(f, "classifier.weight");
    st_free(f);
  }
  return 0;
}
