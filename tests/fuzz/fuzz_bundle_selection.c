/* libFuzzer: the "selection" record of a bundle, read by the evaluation
 * report (`mskx eval` of a bundle written by `mskx bundle --select`). */
#include <stdint.h>
#include <stdlib.h>
#include "eval/bundle_select.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  bundle_selection *s = NULL;
  mskx_err e = {0, ""};
  if (!bundle_selection_parse((const char *)data, size, &s, &e)) bundle_selection_free(s);
  return 0;
}
