/* Image decoding (see image.h): PNG through libspng, JPEG through libjpeg-turbo,
 * both reduced to 8-bit luminance with the pixel count checked before any
 * pixel buffer is allocated. */
#include "io/image.h"
#include "core/error.h"
#include "core/util.h"
#include <limits.h>
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

/* Bytes a codec holds besides its rows and buffers: inflate or Huffman state,
 * tables, chunk bookkeeping (zlib's inflate window alone is 32 KiB). */
#define CODEC_FIXED_BYTES ((uint64_t)256 << 10)

static uint64_t sink_cost(const image_sink *s, int w, int h) { return s->cost ? s->cost(s->ctx, w, h) : 0; }

static int budget_take(const image_limits *lim, uint64_t bytes, const char *name, mskx_err *e) {
  return lim && lim->budget ? mem_budget_take(lim->budget, bytes, name, e) : MSKX_OK;
}

static void budget_give(const image_limits *lim, uint64_t bytes) {
  if (lim && lim->budget) mem_budget_give(lim->budget, bytes);
}

static int check_pixels(const char *name, uint64_t w, uint64_t h, uint64_t max, mskx_err *e) {
  if (w == 0 || h == 0) return err_set(e, MSKX_EFORMAT, "%s: declares an empty image (%llux%llu)", name,
                                       (unsigned long long)w, (unsigned long long)h);
  if (w > INT32_MAX || h > INT32_MAX || w * h > max)
    return err_set(e, MSKX_ELIMIT, "%s: declares %llux%llu pixels, above the limit of %llu", name,
                   (unsigned long long)w, (unsigned long long)h, (unsigned long long)max);
  return MSKX_OK;
}

/* BT.601 luma, rounded to nearest; 16-bit samples scale by 255/65535 in the
 * same rounding step so no precision is lost to an intermediate 8-bit value. */
static inline uint8_t luma8(uint32_t r, uint32_t g, uint32_t b) {
  return (uint8_t)((299u * r + 587u * g + 114u * b + 500u) / 1000u);
}
static inline uint8_t luma16(uint32_t r, uint32_t g, uint32_t b) {
  uint64_t n = 299ull * r + 587ull * g + 114ull * b;
  return (uint8_t)((n * 255u + 32767500u) / 65535000u);
}
static inline uint8_t grey16(uint32_t v) { return (uint8_t)((v * 255u + 32767u) / 65535u); }

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
    else for (int x = 0; x < w; x++) out[x] = luma8(row[c * x], row[c * x + 1], row[c * x + 2]);
  } else {
    const uint16_t *r16 = (const uint16_t *)(const void *)row;
    if (c <= 2) for (int x = 0; x < w; x++) out[x] = grey16(r16[c * x]);
    else for (int x = 0; x < w; x++) out[x] = luma16(r16[c * x], r16[c * x + 1], r16[c * x + 2]);
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

/* Adam7: the first column and row of each pass, and their steps. */
static const int adam7_x0[7] = {0, 4, 0, 2, 0, 1, 0}, adam7_dx[7] = {8, 8, 4, 4, 2, 2, 1};

/* Interlaced images arrive pass by pass, so rows are only complete at the
 * end: each pass row is reduced to grey at once and scattered into one 8-bit
 * image (w*h bytes, charged to the budget), which then streams out. */
static int png_stream_interlaced(spng_ctx *ctx, const png_plan *p, int w, int h, uint8_t *tmp, uint8_t *grey,
                                 const image_sink *sink) {
  size_t row_bytes = png_row_bytes(p, w);
  uint8_t *img = calloc((size_t)h, (size_t)w);
  if (!img) return SPNG_EMEM;
  int rc = spng_decode_image(ctx, NULL, 0, p->fmt, SPNG_DECODE_PROGRESSIVE);
  while (!rc) {
    struct spng_row_info ri;
    rc = spng_get_row_info(ctx, &ri);
    if (rc) break;
    /* Zeroed: spng deinterlaces sub-byte samples by OR-ing them into place. */
    memset(tmp, 0, row_bytes);
    int drc = spng_decode_row(ctx, tmp, row_bytes);
    if (drc && drc != SPNG_EOI) {
      rc = drc;
      break;
    }
    if (ri.row_num >= (uint32_t)h || ri.pass < 0 || ri.pass > 6) {
      rc = SPNG_EINTERNAL;
      break;
    }
    png_row_to_grey(p, tmp, w, grey);
    uint8_t *dst = img + (size_t)ri.row_num * w;
    for (int x = adam7_x0[ri.pass]; x < w; x += adam7_dx[ri.pass]) dst[x] = grey[x];
    if (drc == SPNG_EOI) break;
  }
  for (int y = 0; !rc && y < h; y++) sink->row(sink->ctx, img + (size_t)y * w);
  free(img);
  return rc;
}

static int png_stream_rows(spng_ctx *ctx, const png_plan *p, int w, int h, uint8_t *tmp, uint8_t *grey,
                           const image_sink *sink) {
  size_t row_bytes = png_row_bytes(p, w);
  int rc = spng_decode_image(ctx, NULL, 0, p->fmt, SPNG_DECODE_PROGRESSIVE);
  for (int y = 0; !rc && y < h; y++) {
    rc = spng_decode_row(ctx, tmp, row_bytes);
    if (rc == SPNG_EOI && y == h - 1) rc = 0;
    if (!rc) {
      png_row_to_grey(p, tmp, w, grey);
      sink->row(sink->ctx, grey);
    }
  }
  return rc;
}

/* Bytes a PNG decode holds besides the sink: one decoded row, one grey row,
 * zlib's inflate state, and for interlaced images the whole grey image. */
static uint64_t png_cost(const png_plan *p, int w, int h, int interlaced) {
  uint64_t c = png_row_bytes(p, w) + (uint64_t)w + CODEC_FIXED_BYTES;
  return interlaced ? c + (uint64_t)w * (uint64_t)h : c;
}

static int png_stream(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, uint64_t extra,
                      const image_sink *sink, mskx_err *e) {
  uint64_t max_pixels = effective_max_pixels(lim);
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
  int w = (int)ihdr.width, h = (int)ihdr.height, interlaced = ihdr.interlace_method != 0;
  png_plan plan = png_plan_for(&ihdr);
  uint64_t cost = extra + png_cost(&plan, w, h, interlaced) + sink_cost(sink, w, h);
  rc = budget_take(lim, cost, name, e);
  if (rc) {
    spng_ctx_free(ctx);
    return rc;
  }
  uint8_t *tmp = malloc(png_row_bytes(&plan, w)), *grey = malloc((size_t)w);
  rc = !tmp || !grey ? err_set(e, MSKX_ENOMEM, "%s: cannot allocate a %d-pixel row", name, w)
                     : sink->begin(sink->ctx, w, h, e);
  if (!rc) {
    int src = interlaced ? png_stream_interlaced(ctx, &plan, w, h, tmp, grey, sink)
                         : png_stream_rows(ctx, &plan, w, h, tmp, grey, sink);
    /* Read through IEND so a file cut after its pixel data, or with a bad CRC
     * in a trailing chunk, is still refused. */
    if (!src) src = spng_decode_chunks(ctx);
    if (src) {
      free(tmp), free(grey);
      budget_give(lim, cost);
      return png_fail(ctx, name, "PNG decode failed", src, e);
    }
  }
  free(tmp), free(grey);
  budget_give(lim, cost);
  spng_ctx_free(ctx);
  return rc;
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
  uint8_t *row;
  uint64_t charged;   /* bytes taken from the budget, given back by the caller */
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
  else if (c == JERR_NO_BACKING_STORE) {
    /* Our memory manager has no backing store: libjpeg asks for one only
     * when a whole-image buffer would exceed max_memory_to_use. */
    jpeg_job *job = (jpeg_job *)(void *)cinfo;
    job->code = MSKX_ELIMIT;
    snprintf(job->msg, sizeof job->msg, "needs more memory than the %llu bytes allowed for it",
             (unsigned long long)cinfo->mem->max_memory_to_use);
    longjmp(job->jump, 1);
  }
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

static uint64_t round_up(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }

/* Bytes libjpeg holds for one image, from the header: a few MCU rows per
 * component for the sample buffers and, when the image has several scans
 * (progressive, or components in separate scans), the whole-image DCT
 * coefficient buffer of 64 two-byte coefficients per 8x8 block. */
static uint64_t jpeg_cost(const struct jpeg_decompress_struct *ci) {
  uint64_t c = CODEC_FIXED_BYTES, coef = 0;
  for (int i = 0; i < ci->num_components; i++) {
    const jpeg_component_info *k = &ci->comp_info[i];
    c += (uint64_t)k->width_in_blocks * DCTSIZE * (uint64_t)ci->max_v_samp_factor * DCTSIZE * 4;
    coef += round_up(k->width_in_blocks, (uint64_t)k->h_samp_factor) *
            round_up(k->height_in_blocks, (uint64_t)k->v_samp_factor) * DCTSIZE2 * sizeof(JCOEF);
  }
  int whole_image = ci->progressive_mode || ci->comps_in_scan < ci->num_components;
  return whole_image ? c + coef : c;
}

/* Runs libjpeg up to the header (sink NULL), or through all scanlines into
 * the sink. Returns 0, or -1 after a libjpeg error (job->code, job->msg), or
 * a status already set in e. All state lives in *job (owned by the caller),
 * so nothing here is clobbered by longjmp. */
static int jpeg_run(jpeg_job *job, const uint8_t *buf, size_t len, const char *name, const image_limits *lim,
                    uint64_t extra, const image_sink *sink, mskx_err *e) {
  struct jpeg_decompress_struct *ci = &job->cinfo;
  if (setjmp(job->jump)) return -1;
  jpeg_create_decompress(ci);
  ci->progress = &job->progress;
  jpeg_mem_src(ci, buf, (unsigned long)len);
  jpeg_read_header(ci, TRUE);
  if (!sink) return 0;
  if (ci->jpeg_color_space == JCS_CMYK || ci->jpeg_color_space == JCS_YCCK)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: CMYK JPEG images are not supported", name);
  if (ci->jpeg_color_space != JCS_GRAYSCALE && ci->jpeg_color_space != JCS_YCbCr && ci->jpeg_color_space != JCS_RGB)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: JPEG with %d components in an unknown colour space is not supported",
                   name, ci->num_components);
  int rc = check_pixels(name, ci->image_width, ci->image_height, effective_max_pixels(lim), e);
  if (rc) return rc;
  int w = (int)ci->image_width, h = (int)ci->image_height;
  uint64_t codec = jpeg_cost(ci), cost = extra + codec + (uint64_t)w + sink_cost(sink, w, h);
  /* libjpeg may not hold more than was charged for it: a whole-image buffer
   * beyond this fails (JERR_NO_BACKING_STORE) instead of being allocated. */
  ci->mem->max_memory_to_use = codec < LONG_MAX ? (long)codec : LONG_MAX;
  if ((rc = budget_take(lim, cost, name, e))) return rc;
  job->charged = cost;
  if (!(job->row = malloc((size_t)w))) return err_set(e, MSKX_ENOMEM, "%s: cannot allocate a %d-pixel row", name, w);
  if ((rc = sink->begin(sink->ctx, w, h, e))) return rc;
  /* libjpeg computes grey output from YCbCr by keeping Y (BT.601 luma) and
   * from RGB with the same weights. */
  ci->out_color_space = JCS_GRAYSCALE;
  ci->dct_method = JDCT_ISLOW;
  jpeg_start_decompress(ci);
  if (ci->output_width != (JDIMENSION)w || ci->output_height != (JDIMENSION)h)
    return err_set(e, MSKX_EINTERNAL, "%s: JPEG output size differs from its header", name);
  while (ci->output_scanline < ci->output_height) {
    JSAMPROW row = job->row;
    jpeg_read_scanlines(ci, &row, 1);
    sink->row(sink->ctx, job->row);
  }
  jpeg_finish_decompress(ci);
  return 0;
}

static int jpeg_stream_or_probe(const uint8_t *buf, size_t len, const char *name, const image_limits *lim,
                                uint64_t extra, const image_sink *sink, int *w, int *h, mskx_err *e) {
  jpeg_job *job = malloc(sizeof *job);
  if (!job) return err_set(e, MSKX_ENOMEM, "%s: cannot create JPEG decoder", name);
  jpeg_job_init(job);
  int rc = jpeg_run(job, buf, len, name, lim, extra, sink, e);
  if (rc < 0) rc = err_set(e, job->code, "%s: JPEG decode failed: %s", name, job->msg);
  if (!rc && !sink) {
    *w = (int)job->cinfo.image_width;
    *h = (int)job->cinfo.image_height;
  }
  budget_give(lim, job->charged);
  jpeg_destroy_decompress(&job->cinfo);
  free(job->row);
  free(job);
  return rc;
}

/* ---------------------------------------------------------------- API */

static int stream_buffer(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, uint64_t extra,
                         const image_sink *sink, mskx_err *e) {
  if (!name) name = "image";
  if (len == 0) return err_set(e, MSKX_EFORMAT, "%s: empty file", name);
  if (is_png(buf, len)) return png_stream(buf, len, name, lim, extra, sink, e);
  if (is_jpeg(buf, len)) return jpeg_stream_or_probe(buf, len, name, lim, extra, sink, NULL, NULL, e);
  return err_set(e, MSKX_EFORMAT, "%s: not a PNG or JPEG image", name);
}

int image_stream(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, const image_sink *sink,
                 mskx_err *e) {
  return stream_buffer(buf, len, name, lim, 0, sink, e);
}

int image_stream_file(const char *path, const image_limits *lim, const image_sink *sink, mskx_err *e) {
  unsigned char *buf;
  size_t len;
  int rc = file_read_all(path, IMAGE_MAX_FILE_BYTES, &buf, &len, e);
  if (rc) return rc;
  /* The file's bytes are held while it decodes: charged with the decode. */
  rc = stream_buffer(buf, len, path, lim, len, sink, e);
  free(buf);
  return rc;
}

int image_stream_pixels(const uint8_t *px, int w, int h, int channels, size_t stride, const char *name,
                        const image_limits *lim, const image_sink *sink, mskx_err *e) {
  if (!name) name = "image";
  if (!px || w <= 0 || h <= 0 || (channels != 1 && channels != 3))
    return err_set(e, MSKX_EINVAL, "%s: needs pixels, a positive size and 1 or 3 channels", name);
  uint64_t cap = effective_max_pixels(lim);
  if ((uint64_t)w * (uint64_t)h > cap)
    return err_set(e, MSKX_ELIMIT, "%s: %dx%d exceeds the pixel limit %llu", name, w, h, (unsigned long long)cap);
  size_t row = (size_t)w * (size_t)channels;
  if (!stride) stride = row;
  if (stride < row) return err_set(e, MSKX_EINVAL, "%s: stride %zu is below width*channels", name, stride);
  uint64_t cost = (uint64_t)w + sink_cost(sink, w, h);
  int rc = budget_take(lim, cost, name, e);
  if (rc) return rc;
  uint8_t *grey = channels == 3 ? malloc((size_t)w) : NULL;
  rc = channels == 3 && !grey ? err_set(e, MSKX_ENOMEM, "%s: out of memory", name) : sink->begin(sink->ctx, w, h, e);
  for (int y = 0; !rc && y < h; y++) {
    const uint8_t *r = px + stride * (size_t)y;
    if (channels == 3) {
      for (int x = 0; x < w; x++) grey[x] = luma8(r[3 * x], r[3 * x + 1], r[3 * x + 2]);
      r = grey;
    }
    sink->row(sink->ctx, r);
  }
  free(grey);
  budget_give(lim, cost);
  return rc;
}

/* A sink that keeps the whole image: what image_decode returns. */
typedef struct collect_sink {
  gray_image *out;
  int y;
} collect_sink;

static uint64_t collect_cost(void *ctx, int w, int h) {
  (void)ctx;
  return (uint64_t)w * (uint64_t)h;
}

static int collect_begin(void *ctx, int w, int h, mskx_err *e) {
  collect_sink *c = ctx;
  if (!(c->out->px = malloc((size_t)w * (size_t)h)))
    return err_set(e, MSKX_ENOMEM, "cannot allocate a %dx%d image", w, h);
  c->out->w = w;
  c->out->h = h;
  return MSKX_OK;
}

static void collect_row(void *ctx, const uint8_t *row) {
  collect_sink *c = ctx;
  if (c->y < c->out->h) memcpy(c->out->px + (size_t)c->y++ * c->out->w, row, (size_t)c->out->w);
}

static int collect(int (*run)(const void *, const char *, const image_limits *, const image_sink *, mskx_err *),
                   const void *src, const char *name, const image_limits *lim, gray_image *out, mskx_err *e) {
  out->w = out->h = 0;
  out->px = NULL;
  collect_sink c = {out, 0};
  image_sink sink = {collect_cost, collect_begin, collect_row, &c};
  int rc = run(src, name, lim, &sink, e);
  if (rc) gray_image_free(out);
  return rc;
}

typedef struct buf_ref {
  const uint8_t *buf;
  size_t len;
} buf_ref;

static int run_buffer(const void *src, const char *name, const image_limits *lim, const image_sink *sink,
                      mskx_err *e) {
  const buf_ref *b = src;
  return image_stream(b->buf, b->len, name, lim, sink, e);
}

static int run_file(const void *src, const char *name, const image_limits *lim, const image_sink *sink, mskx_err *e) {
  (void)name;
  return image_stream_file(src, lim, sink, e);
}

int image_decode(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, gray_image *out,
                 mskx_err *e) {
  buf_ref b = {buf, len};
  return collect(run_buffer, &b, name, lim, out, e);
}

int image_load(const char *path, const image_limits *lim, gray_image *out, mskx_err *e) {
  return collect(run_file, path, path, lim, out, e);
}

int image_probe(const uint8_t *buf, size_t len, const char *name, int *w, int *h, mskx_err *e) {
  *w = *h = 0;
  if (!name) name = "image";
  if (len == 0) return err_set(e, MSKX_EFORMAT, "%s: empty file", name);
  if (is_png(buf, len)) return png_probe(buf, len, name, w, h, e);
  if (is_jpeg(buf, len)) return jpeg_stream_or_probe(buf, len, name, NULL, 0, NULL, w, h, e);
  return err_set(e, MSKX_EFORMAT, "%s: not a PNG or JPEG image", name);
}

void gray_image_free(gray_image *img) {
  if (!img) return;
  free(img->px);
  img->px = NULL;
  img->w = img->h = 0;
}
