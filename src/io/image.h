/* Image decoding and encoding: PNG through libspng, JPEG through
 * libjpeg-turbo. Every decoded image becomes 8-bit luminance (grey); colour
 * images are converted with ITU-R BT.601 luma weights, 16-bit samples are
 * rounded to 8 bits, alpha is ignored. Guards against decompression bombs. */
#ifndef MSKX_IO_IMAGE_H
#define MSKX_IO_IMAGE_H
#include <stddef.h>
#include <stdint.h>
#include "core/budget.h"
#include "mskx.h"

/* Default pixel cap: 16384 x 16384. */
#define IMAGE_DEFAULT_MAX_PIXELS (16384ULL * 16384ULL)

typedef struct gray_image {
  int w, h;
  uint8_t *px;      /* w*h bytes, row-major, owned */
} gray_image;

typedef struct image_limits {
  uint64_t max_pixels;   /* 0 means IMAGE_DEFAULT_MAX_PIXELS */
  mem_budget *budget;    /* NULL, or charged with what decoding one image holds
                            (codec state, rows, the sink's cost) while it runs */
} image_limits;

/* Where decoded rows go: 8-bit grey rows, top to bottom, each exactly once.
 * cost (may be NULL) is what the sink will hold for a w x h image, charged
 * to the budget with the codec's own bytes before begin; begin sets the sink
 * up (it may fail: decoding stops); row receives row y (w bytes, valid only
 * during the call). */
typedef struct image_sink {
  uint64_t (*cost)(void *ctx, int w, int h);
  int (*begin)(void *ctx, int w, int h, mskx_err *e);
  void (*row)(void *ctx, const uint8_t *row);
  void *ctx;
} image_sink;

/* Streams a PNG or JPEG into sink with bounded memory: one decoded row at a
 * time for sequential images; interlaced PNGs collect one 8-bit grey image
 * (w*h bytes) and progressive or multi-scan JPEGs need libjpeg's coefficient
 * buffer (about 2 bytes per pixel per component), both charged to the budget
 * (a JPEG whose buffer would exceed its charge fails with MSKX_ELIMIT).
 * Rows are what image_decode returns, bit for bit. */
int image_stream(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, const image_sink *sink,
                 mskx_err *e);
/* The same from a file (read whole; its size is charged too). */
int image_stream_file(const char *path, const image_limits *lim, const image_sink *sink, mskx_err *e);
/* The same from 8-bit pixels in memory: channels 1, or 3 (RGB to BT.601
 * luma as decoding does); stride = bytes per row, 0 = w * channels. */
int image_stream_pixels(const uint8_t *px, int w, int h, int channels, size_t stride, const char *name,
                        const image_limits *lim, const image_sink *sink, mskx_err *e);

/* Whole images, for callers that need every pixel at once (an eval report's
 * overlays, tests): image_stream into one w*h buffer. Detects the format from
 * the leading bytes (PNG or JPEG). `name` is used in messages only. On error
 * *out is left empty (px == NULL). */
int image_decode(const uint8_t *buf, size_t len, const char *name, const image_limits *lim,
                 gray_image *out, mskx_err *e);
int image_load(const char *path, const image_limits *lim, gray_image *out, mskx_err *e);
/* Header only: dimensions without decoding pixels. */
int image_probe(const uint8_t *buf, size_t len, const char *name, int *w, int *h, mskx_err *e);
void gray_image_free(gray_image *img);

/* PNG encoding of 8-bit grey (channels = 1) or RGB (channels = 3) pixels.
 * image_encode_png returns a malloc'd buffer; image_write_png writes a file
 * atomically. */
int image_encode_png(const uint8_t *px, int w, int h, int channels, uint8_t **out, size_t *len,
                     mskx_err *e);
int image_write_png(const char *path, const uint8_t *px, int w, int h, int channels, mskx_err *e);

#endif
