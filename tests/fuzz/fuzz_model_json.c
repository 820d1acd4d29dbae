/* libFuzzer: model loading through the public API: the file is sniffed
 * (safetensors model file, or a bundle/ensemble JSON whose members then
 * fail to resolve), so this reaches the bundle, ensemble and stacker JSON
 * readers and the model metadata. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "mskx.h"

static char dir[64], path[96];

static void cleanup(void) {
  unlink(path);
  rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc, (void)argv;
  snprintf(dir, sizeof dir, "/tmp/mskx-fuzz-model.XXXXXX");
  if (!mkdtemp(dir)) return 0;
  snprintf(path, sizeof path, "%s/model.json", dir);
  atexit(cleanup);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  size_t w = fwrite(data, 1, size, f);
  if (fclose(f) || w != size) return 0;
  mskx_load_options o;
  mskx_load_options_default(&o);
  o.threads = 1;
  o.max_contexts = 1;
  mskx_model *m = NULL;
  mskx_err e = {0, ""};
  if (mskx_model_load(path, &o, &m, &e) == MSKX_OK) mskx_model_free(m);
  return 0;
}
