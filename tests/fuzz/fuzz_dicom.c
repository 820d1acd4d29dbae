/* libFuzzer: DICOM reading (header scan, display pipeline, and GDCM for the
 * compressed syntaxes), with a small pixel limit so the fuzzer explores
 * structure rather than allocating; then the streaming path (frame 1 into a
 * row-counting sink under a decode budget), which must give every charged
 * byte back. */
#include <stdint.h>
#include <stdlib.h>
#include "core/budget.h"
#include "io/dicom.h"

#define FUZZ_MAX_PIXELS (1u << 20)
#define FUZZ_BUDGET ((uint64_t)64 << 20)

typedef struct rows {
  int h, y;
} rows;
static int rows_begin(void *ctx, int w, int h, mskx_err *e) {
  (void)w, (void)e;
  ((rows *)ctx)->h = h;
  return MSKX_OK;
}
static void rows_row(void *ctx, const uint8_t *row) {
  (void)row;
  ((rows *)ctx)->y++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  image_limits lim = {.max_pixels = FUZZ_MAX_PIXELS};
  /* The first byte picks the window mode so every branch of the pipeline runs. */
  if (size) lim.dicom.window = data[0] % 3, lim.dicom.center = 100, lim.dicom.width = 50;
  dicom_image img;
  mskx_err e = {0, ""};
  if (dicom_decode(data, size, "fuzz.dcm", &lim, &img, &e) == MSKX_OK) dicom_image_free(&img);
  dicom_meta m;
  (void)dicom_scan_meta(data, size, "fuzz.dcm", &m, &e);
  mem_budget *b;
  if (mem_budget_create(FUZZ_BUDGET, 0, &b, &e) == MSKX_OK) {
    lim.budget = b;
    rows r = {0, 0};
    image_sink sink = {NULL, rows_begin, rows_row, &r};
    int rc = dicom_stream(data, size, "fuzz.dcm", &lim, 0, 1, &sink, &e);
    if ((rc == MSKX_OK && r.y != r.h) || mem_budget_used(b) != 0) __builtin_trap();
    mem_budget_destroy(b);
  }
  return 0;
}
