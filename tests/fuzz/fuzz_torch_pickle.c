/* libFuzzer: the restricted state-dict unpickler on raw pickle bytes (the
 * zip layer's CRCs would otherwise reject nearly every mutation). */
#include <stdint.h>
#include "io/torch_pickle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  pkl_doc *d = NULL;
  mskx_err e = {0, ""};
  if (pkl_parse(data, size, "fuzz.pkl", &d, &e) == MSKX_OK) {
    pkl_dict_get(d->root, "state_dict");
    pkl_free(d);
  }
  return 0;
}
