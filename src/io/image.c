/* Image decoding (see image.h): PNG through libspng, JPEG through libjpeg-turbo,
 * both reduced to 8-bit luminance with the pixel count checked before any
 * pixel buffer is allocated. */
#include "io/image.h"
#include "core/error.h"
#include "core/util.h"
#include <jpeglib.h>
#include <jerror.h>
#include <setjmp.h>
#include <spng.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Larger than any radiograph we expect, small enough to refuse absurd inputs. */
#define IMAGE_MAX_FILE_BYTES ((size_t)512 << 20)
/* Ancillary PNG chunks (text, ICC profiles) are cached in memory by spng;
 * these caps bound that memory. Pixel data (IDAT) is not affected. */
#define PNG_MAX_CHUNK_BYTES ((size_t)16 << 20)
#define PNG_MAX_CHUNK_CACHE ((size_t)64 << 20)
/* A progressive JPEG needs about 10 scans; thousands are a decoding-time
 * attack (libjpeg-turbo's own tools suggest a scan limit of this order). */
#define JPEG_MAX_SCANS 500

static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};

static int is_png(const uint8_t *buf, size_t len) {
  return len >= sizeof png_magic && memcmp(buf, png_magic, sizeof png_magic) == 0;
}
static int is_jpeg(const uint8_t *buf, size_t len) {
  return len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF;
}

static uint64_t effective_max_pixels(const image_limits *lim) {
  return lim && lim->max_pixels ? lim->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
}

static int check_pixels(const char *name, uint64_t w, uint64_t h, uint64_t max, mskx_err *e) {
  if (w == 0 || h == 0) return err_set(e, MSKX_EFORMAT, "%s: declares an empty image (%llux%llu)", name,
                                       (unsigned long long)w, (unsigned long long)h);
  if (w > INT32_MAX || h > INT32_MAX || w * h > max)
    return err_set(e, MSKX_ELIMIT, "%s: declares %llux%llu pixels, above the limit of %llu", name,
                   (unsigned long long)w, (unsigned long long)h, (unsigned long long)max);
  return MSKX_OK;
}

/* ---------------------------------------------------------------- PNG */

/* How a PNG is decoded: spng output format, samples per pixel and bits per
 * sample of that output. Grey below 8 bits is unpacked here: what spng's G8
 * format does with it has changed between spng releases. */
typedef struct png_plan {
  int fmt, channels, bits;
} png_plan;

static png_plan png_plan_for(const struct spng_ihdr *h) {
  png_plan p = {SPNG_FMT_PNG, 1, h->bit_depth};
  switch (h->color_type) {
    case SPNG_COLOR_TYPE_GRAYSCALE: break;
    case SPNG_COLOR_TYPE_GRAYSCALE_ALPHA: p.channels = 2; break;
    case SPNG_COLOR_TYPE_TRUECOLOR: p.channels = 3; break;
    case SPNG_COLOR_TYPE_TRUECOLOR_ALPHA: p.channels = 4; break;
    default: /* indexed: spng expands the palette; tRNS is ignored like any alpha */
      p.fmt = SPNG_FMT_RGB8;
      p.channels = 3;
      p.bits = 8;
      break;
  }
  return p;
}

static size_t png_row_bytes(const png_plan *p, int w) {
  return ((size_t)w * (size_t)p->channels * (size_t)p->bits + 7) / 8;
}

/* Grey packed MSB first at 1, 2 or 4 bits, scaled to 0..255 (exact: 255 is
 * divisible by 1, 3 and 15). */
static void unpack_low_bits(const uint8_t *row, int w, int bits, uint8_t *out) {
  unsigned mask = (1u << bits) - 1, scale = 255u / mask, per_byte = 8u / (unsigned)bits;
  for (int x = 0; x < w; x++) {
    unsigned shift = 8u - (unsigned)bits * (1u + (unsigned)x % per_byte);
    out[x] = (uint8_t)(((row[(unsigned)x / per_byte] >> shift) & mask) * scale);
  }
}

/* One decoded row (host-endian 16-bit samples where bits == 16) to luminance. */
static void png_row_to_grey(const png_plan *p, const uint8_t *row, int w, uint8_t *out) {
  int c = p->channels;
  if (p->bits < 8) {
    unpack_low_bits(row, w, p->bits, out);
  } else if (p->bits == 8) {
    if (c == 1) memcpy(out, row, (size_t)w);
    else if (c == 2) for (int x = 0; x < w; x++) out[x] = row[2 * x];
    else for (int x = 0; x < w; x++) out[x] = image_luma8(row[c * x], row[c * x + 1], row[c * x + 2]);
  } else {
    const uint16_t *r16 = (const uint16_t *)(const void *)row;
    if (c <= 2) for (int x = 0; x < w; x++) out[x] = image_grey16(r16[c * x]);
    else for (int x = 0; x < w; x++) out[x] = image_luma16(r16[c * x], r16[c * x + 1], r16[c * x + 2]);
  }
}

static int png_fail(spng_ctx *ctx, const char *name, const char *what, int rc, mskx_err *e) {
  int code = MSKX_EFORMAT;
  if (rc == SPNG_EMEM) code = MSKX_ENOMEM;
  else if (rc == SPNG_EUSER_WIDTH || rc == SPNG_EUSER_HEIGHT || rc == SPNG_ECHUNK_LIMITS) code = MSKX_ELIMIT;
  err_set(e, code, "%s: %s: %s", name, what, rc == SPNG_IO_EOF ? "file is truncated" : spng_strerror(rc));
  spng_ctx_free(ctx);
  return code;
}

static spng_ctx *png_open(const uint8_t *buf, size_t len, uint64_t max_pixels) {
  spng_ctx *ctx = spng_ctx_new(0);
  if (!ctx) return NULL;
  uint32_t dim = max_pixels < INT32_MAX ? (uint32_t)max_pixels : INT32_MAX;
  if (spng_set_image_limits(ctx, dim, dim) || spng_set_chunk_limits(ctx, PNG_MAX_CHUNK_BYTES, PNG_MAX_CHUNK_CACHE) ||
      spng_set_png_buffer(ctx, buf, len)) {
    spng_ctx_free(ctx);
    return NULL;
  }
  return ctx;
}

/* Decodes the pixel rows into out->px (already allocated, w*h). Interlaced
 * images need the whole decoded image at once; others go row by row so only
 * one decoded row is held besides the output. */
static int png_decode_rows(spng_ctx *ctx, const png_plan *p, int w, int h, int interlaced, uint8_t *px) {
  size_t row_bytes = png_row_bytes(p, w);
  size_t n_rows = interlaced ? (size_t)h : 1;
  /* Zeroed: spng deinterlaces sub-byte samples by OR-ing them into place. */
  uint8_t *tmp = calloc(n_rows, row_bytes);
  if (!tmp) return SPNG_EMEM;
  int rc;
  if (interlaced) {
    rc = spng_decode_image(ctx, tmp, row_bytes * n_rows, p->fmt, 0);
    for (int y = 0; !rc && y < h; y++) png_row_to_grey(p, tmp + (size_t)y * row_bytes, w, px + (size_t)y * w);
  } else {
    rc = spng_decode_image(ctx, NULL, 0, p->fmt, SPNG_DECODE_PROGRESSIVE);
    for (int y = 0; !rc && y < h; y++) {
      rc = spng_decode_row(ctx, tmp, row_bytes);
      if (rc == SPNG_EOI && y == h - 1) rc = 0;
      if (!rc) png_row_to_grey(p, tmp, w, px + (size_t)y * w);
    }
  }
  free(tmp);
  /* Read through IEND so a file cut after its pixel data, or with a bad CRC
   * in a trailing chunk, is still refused. */
  if (!rc) rc = spng_decode_chunks(ctx);
  return rc;
}

static int png_decode(const uint8_t *buf, size_t len, const char *name, uint64_t max_pixels, gray_image *out,
                      mskx_err *e) {
  spng_ctx *ctx = png_open(buf, len, max_pixels);
  if (!ctx) return err_set(e, MSKX_ENOMEM, "%s: cannot create PNG decoder", name);
  struct spng_ihdr ihdr;
  int rc = spng_get_ihdr(ctx, &ihdr);
  if (rc) return png_fail(ctx, name, "bad PNG header", rc, e);
  rc = check_pixels(name, ihdr.width, ihdr.height, max_pixels, e);
  if (rc) {
    spng_ctx_free(ctx);
    return rc;
  }
  int w = (int)ihdr.width, h = (int)ihdr.height;
  png_plan plan = png_plan_for(&ihdr);
  uint8_t *px = malloc((size_t)w * (size_t)h);
  if (!px) {
    spng_ctx_free(ctx);
    return err_set(e, MSKX_ENOMEM, "%s: cannot allocate %dx%d image", name, w, h);
  }
  rc = png_decode_rows(ctx, &plan, w, h, ihdr.interlace_method != 0, px);
  if (rc) {
    free(px);
    return png_fail(ctx, name, "PNG decode failed", rc, e);
  }
  spng_ctx_free(ctx);
  out->w = w;
  out->h = h;
  out->px = px;
  return MSKX_OK;
}

static int png_probe(const uint8_t *buf, size_t len, const char *name, int *w, int *h, mskx_err *e) {
  spng_ctx *ctx = png_open(buf, len, INT32_MAX);
  if (!ctx) return err_set(e, MSKX_ENOMEM, "%s: cannot create PNG decoder", name);
  struct spng_ihdr ihdr;
  int rc = spng_get_ihdr(ctx, &ihdr);
  if (rc) return png_fail(ctx, name, "bad PNG header", rc, e);
  spng_ctx_free(ctx);
  *w = (int)ihdr.width;
  *h = (int)ihdr.height;
  return MSKX_OK;
}

/* ---------------------------------------------------------------- JPEG */

/* libjpeg reports errors by calling error_exit, which must not return; we
 * longjmp back to the decoder with a status code and the library's text. */
typedef struct jpeg_job {
  struct jpeg_decompress_struct cinfo;
  struct jpeg_error_mgr jerr;
  struct jpeg_progress_mgr progress;
  jmp_buf jump;
  int code;
  char msg[JMSG_LENGTH_MAX];
  uint8_t *px;
} jpeg_job;

static void jpeg_raise(j_common_ptr cinfo, int code) {
  jpeg_job *job = (jpeg_job *)(void *)cinfo; /* cinfo is the first member */
  job->code = code;
  cinfo->err->format_message(cinfo, job->msg);
  longjmp(job->jump, 1);
}

static void jpeg_on_error(j_common_ptr cinfo) {
  int c = cinfo->err->msg_code, code = MSKX_EFORMAT;
  if (c == JERR_OUT_OF_MEMORY) code = MSKX_ENOMEM;
  else if (c == JERR_BAD_PRECISION || c == JERR_CONVERSION_NOTIMPL || c == JERR_NOT_COMPILED) code = MSKX_EUNSUPPORTED;
  else if (c == JERR_IMAGE_TOO_BIG) code = MSKX_ELIMIT;
  jpeg_raise(cinfo, code);
}

/* Warnings (level -1) are corrupt or truncated data that libjpeg would
 * otherwise paper over with grey; only metadata-only oddities are let pass. */
static void jpeg_on_message(j_common_ptr cinfo, int level) {
  int c = cinfo->err->msg_code;
  if (level < 0 && c != JWRN_JFIF_MAJOR && c != JWRN_BOGUS_ICC) jpeg_raise(cinfo, MSKX_EFORMAT);
}

static void jpeg_on_progress(j_common_ptr cinfo) {
  j_decompress_ptr d = (j_decompress_ptr)cinfo;
  if (d->input_scan_number > JPEG_MAX_SCANS) {
    jpeg_job *job = (jpeg_job *)(void *)cinfo;
    job->code = MSKX_ELIMIT;
    snprintf(job->msg, sizeof job->msg, "more than %d scans", JPEG_MAX_SCANS);
    longjmp(job->jump, 1);
  }
}

static void jpeg_job_init(jpeg_job *job) {
  memset(job, 0, sizeof *job);
  job->cinfo.err = jpeg_std_error(&job->jerr);
  job->jerr.error_exit = jpeg_on_error;
  job->jerr.emit_message = jpeg_on_message;
  job->progress.progress_monitor = jpeg_on_progress;
}

/* Runs libjpeg up to the header, and with decode set through all scanlines
 * into job->px. Returns 0, or -1 after a libjpeg error (job->code, job->msg),
 * or a status already set in e. All state lives in *job (owned by the
 * caller), so nothing here is clobbered by longjmp. */
static int jpeg_run(jpeg_job *job, const uint8_t *buf, size_t len, const char *name, uint64_t max_pixels,
                    int decode, mskx_err *e) {
  struct jpeg_decompress_struct *ci = &job->cinfo;
  if (setjmp(job->jump)) return -1;
  jpeg_create_decompress(ci);
  ci->progress = &job->progress;
  jpeg_mem_src(ci, buf, (unsigned long)len);
  jpeg_read_header(ci, TRUE);
  if (!decode) return 0;
  if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: CMYK JPEG images are not supported", name);
  if (ci->jpeg_color_space != JCS_GRAYSCALE && ci->jpeg_color_space != JCS_YCbCr && ci->jpeg_color_space != JCS_RGB)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: JPEG with %d components in an unknown colour space is not supported",
                   name, ci->num_components);
  int rc = check_pixels(name, ci->image_width, ci->image_height, max_pixels, e);
  if (rc) return rc;
  /* libjpeg computes grey output from YCbCr by keeping Y (BT.601 luma) and
   * from RGB with the same weights. */
  ci->out_color_space = JCS_GRAYSCALE;
  ci->dct_method = JDCT_ISLOW;
  jpeg_start_decompress(ci);
  size_t w = ci->output_width;
  job->px = malloc(w * ci->output_height);
  if (!job->px) return err_set(e, MSKX_ENOMEM, "%s: cannot allocate %zux%u image", name, w, ci->output_height);
  while (ci->output_scanline < ci->output_height) {
    JSAMPROW row = job->px + (size_t)ci->output_scanline * w;
    jpeg_read_scanlines(ci, &row, 1);
  }
  jpeg_finish_decompress(ci);
  return 0;
}

static int jpeg_decode_or_probe(const uint8_t *buf, size_t len, const char *name, uint64_t max_pixels,
                                gray_image *out, int *w, int *h, mskx_err *e) {
  jpeg_job *job = malloc(sizeof *job);
  if (!job) return err_set(e, MSKX_ENOMEM, "%s: cannot create JPEG decoder", name);
  jpeg_job_init(job);
  int rc = jpeg_run(job, buf, len, name, max_pixels, out != NULL, e);
  if (rc < 0) rc = err_set(e, job->code, "%s: JPEG decode failed: %s", name, job->msg);
  if (!rc && out) {
    out->w = (int)job->cinfo.output_width;
    out->h = (int)job->cinfo.output_height;
    out->px = job->px;
    job->px = NULL;
  } else if (!rc) {
    *w = (int)job->cinfo.image_width;
    *h = (int)job->cinfo.image_height;
  }
  jpeg_destroy_decompress(&job->cinfo);
  free(job->px);
  free(job);
  return rc;
}

/* ---------------------------------------------------------------- API */

int image_decode(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, gray_image *out,
                 mskx_err *e) {
  out->w = out->h = 0;
  out->px = NULL;
  if (!name) name = "image";
  if (len == 0) return err_set(e, MSKX_EFORMAT, "%s: empty file", name);
  uint64_t max = effective_max_pixels(lim);
  if (is_png(buf, len)) return png_decode(buf, len, name, max, out, e);
  if (is_jpeg(buf, len)) return jpeg_decode_or_probe(buf, len, name, max, out, NULL, NULL, e);
  return err_set(e, MSKX_EFORMAT, "%s: not a PNG or JPEG image", name);
}

int image_probe(const uint8_t *buf, size_t len, const char *name, int *w, int *h, mskx_err *e) {
  *w = *h = 0;
  if (!name) name = "image";
  if (len == 0) return err_set(e, MSKX_EFORMAT, "%s: empty file", name);
  if (is_png(buf, len)) return png_probe(buf, len, name, w, h, e);
  if (is_jpeg(buf, len)) return jpeg_decode_or_probe(buf, len, name, 0, NULL, w, h, e);
  return err_set(e, MSKX_EFORMAT, "%s: not a PNG or JPEG image", name);
}

int image_load(const char *path, const image_limits *lim, gray_image *out, mskx_err *e) {
  out->w = out->h = 0;
  out->px = NULL;
  unsigned char *buf;
  size_t len;
  int rc = file_read_all(path, IMAGE_MAX_FILE_BYTES, &buf, &len, e);
  if (rc) return rc;
  rc = image_decode(buf, len, path, lim, out, e);
  free(buf);
  return rc;
}

void gray_image_free(gray_image *img) {
  if (!img) return;
  free(img->px);
  img->px = NULL;
  img->w = img->h = 0;
}
