/* libFuzzer: the HTTP service's multipart/form-data parser. The input's
 * first line is the request's Content-Type header (boundary extraction),
 * the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "serve/multipart.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nl = memchr(data, '\n', size < 512 ? size : 512);
  if (!nl) return 0;
  size_t hl = (size_t)(nl - data);
  char *ct = malloc(hl + 1);
  if (!ct) return 0;
  memcpy(ct, data, hl);
  ct[hl] = 0;
  char boundary[MP_BOUNDARY_MAX + 1], type[MP_VALUE_MAX];
  mskx_err e = {0, ""};
  media_type(ct, type, sizeof type);
  if (multipart_boundary(ct, boundary, &e) == MSKX_OK) {
    /* The body in an exact-size copy, so ASan sees any read past its end. */
    size_t blen = size - hl - 1;
    unsigned char *body = malloc(blen ? blen : 1);
    if (body) {
      memcpy(body, nl + 1, blen);
      mp_part *parts = NULL;
      int n = 0;
      multipart_parse(body, blen, boundary, 24, &parts, &n, &e);
      free(parts);
      free(body);
    }
  }
  free(ct);
  return 0;
}
