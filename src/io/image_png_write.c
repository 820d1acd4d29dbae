/* PNG encoding with libspng (see image.h). */
#include "io/image.h"
#include "core/error.h"
#include "core/util.h"
#include <spng.h>
#include <stdlib.h>

int image_encode_png(const uint8_t *px, int w, int h, int channels, uint8_t **out, size_t *len,
                     mskx_err *e) {
  *out = NULL;
  *len = 0;
  if (w <= 0 || h <= 0 || (channels != 1 && channels != 3))
    return err_set(e, MSKX_EINVAL, "png encode: bad image %dx%d with %d channels", w, h, channels);
  spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  if (!ctx) return err_set(e, MSKX_ENOMEM, "png encode: cannot create encoder");
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  /* zlib dominates encoding time; level 3 is ~40% faster than the default
   * for files ~10% larger (measured on synthetic radiographs). */
  spng_set_option(ctx, SPNG_IMG_COMPRESSION_LEVEL, 3);
  struct spng_ihdr ihdr = {0};
  ihdr.width = (uint32_t)w;
  ihdr.height = (uint32_t)h;
  ihdr.bit_depth = 8;
  ihdr.color_type = channels == 1 ? SPNG_COLOR_TYPE_GRAYSCALE : SPNG_COLOR_TYPE_TRUECOLOR;
  int rc = spng_set_ihdr(ctx, &ihdr);
  size_t bytes = (size_t)w * (size_t)h * (size_t)channels;
  if (!rc) rc = spng_encode_image(ctx, px, bytes, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  if (rc) {
    spng_ctx_free(ctx);
    return err_set(e, MSKX_EFORMAT, "png encode: %s", spng_strerror(rc));
  }
  int gerr = 0;
  void *buf = spng_get_png_buffer(ctx, len, &gerr);
  spng_ctx_free(ctx);
  if (!buf || gerr) return err_set(e, MSKX_ENOMEM, "png encode: %s", spng_strerror(gerr));
  *out = buf;
  return MSKX_OK;
}

int image_write_png(const char *path, const uint8_t *px, int w, int h, int channels, mskx_err *e) {
  uint8_t *buf;
  size_t len;
  int rc = image_encode_png(px, w, h, channels, &buf, &len, e);
  if (rc) return err_prefix(e, "%s", path);
  rc = file_write_atomic(path, buf, len, e);
  free(buf);
  return rc;
}
