/* libFuzzer: PyTorch zip checkpoints from memory (libzip, CRCs, the
 * restricted unpickler, strided tensor reads) and the mapping of their
 * names onto torchvision's for two DenseNets and resnet50. */
#include <stdint.h>
#include "io/pth.h"
#include "models/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static const char *const archs[] = {"densenet121", "resnet50", "densenet:growth=4,blocks=1-1,init=8,bn_size=2"};
  st_file *f = NULL;
  mskx_err e = {0, ""};
  if (pth_read_mem(data, size, "fuzz.pth", &f, &e) == MSKX_OK) {
    arch_spec a;
    import_info info = {0};
    st_file *out = NULL;
    /* import_map_torch consumes f, whatever it returns. */
    if (arch_parse(archs[size % 3], &a, &e) != MSKX_OK)
      st_free(f);
    else if (import_map_torch(f, &a, "fuzz.pth", &out, &info, &e) == MSKX_OK)
      st_free(out);
  }
  return 0;
}
