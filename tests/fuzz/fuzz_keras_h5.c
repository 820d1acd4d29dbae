/* libFuzzer: Keras HDF5 weight files from memory (libhdf5's core driver on
 * a file image, then the string attributes and datasets Keras writes) and
 * the Keras-to-torchvision name mapping. */
#include <stdint.h>
#include "io/keras_h5.h"
#include "models/import.h"

/* libhdf5 (not instrumented) sizes some metadata buffers from the file and
 * relies on malloc failing for absurd ones; it also leaks on some corrupt
 * files. Let malloc return NULL as it does outside ASan, and keep leak
 * reports to allocations that do not pass through libhdf5. */
/* Above 3 GiB malloc fails at once, so libFuzzer's malloc limit (the 4 GiB RSS
 * limit) never sees the absurd sizes libhdf5 asks for. */
const char *__asan_default_options(void) { return "allocator_may_return_null=1:max_allocation_size_mb=3072"; }
const char *__lsan_default_suppressions(void) { return "leak:libhdf5_serial.so\n"; }

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  st_file *f = NULL;
  mskx_err e = {0, ""};
  if (kh5_read_mem(data, size, "fuzz.h5", &f, &e) == MSKX_OK) {
    arch_spec a;
    import_info info = {0};
    st_file *out = NULL;
    /* import_map_keras consumes f, whatever it returns. */
    if (arch_parse(size % 2 ? "densenet121" : "densenet:growth=4,blocks=1-1,init=8,bn_size=2", &a, &e) != MSKX_OK)
      st_free(f);
    else if (import_map_keras(f, &a, "fuzz.h5", &out, &info, &e) == MSKX_OK)
      st_free(out);
  }
  return 0;
}
