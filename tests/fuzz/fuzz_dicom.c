/* libFuzzer: DICOM reading (header scan, display pipeline, and GDCM for the
 * compressed syntaxes), with a small pixel limit so the fuzzer explores
 * structure rather than allocating. */
#include <stdint.h>
#include <stdlib.h>
#include "io/dicom.h"

#define FUZZ_MAX_PIXELS (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  image_limits lim = {.max_pixels = FUZZ_MAX_PIXELS};
  /* The first byte picks the window mode so every branch of the pipeline runs. */
  if (size) lim.dicom.window = data[0] % 3, lim.dicom.center = 100, lim.dicom.width = 50;
  dicom_image img;
  mskx_err e = {0, ""};
  if (dicom_decode(data, size, "fuzz.dcm", &lim, &img, &e) == MSKX_OK) dicom_image_free(&img);
  dicom_meta m;
  (void)dicom_scan_meta(data, size, "fuzz.dcm", &m, &e);
  return 0;
}
