/* Image decoding: PNG fixtures in every colour type and bit depth and JPEG
 * fixtures are encoded here with libspng's and libjpeg's own encoders, then
 * decoded and compared with luminance computed from the source samples;
 * plus truncated, corrupted, oversized and hostile inputs. */
#include "core/error.h"
#include "core/rng.h"
#include "core/util.h"
#include "io/image.h"
#include "test.h"
#include <jpeglib.h>
#include <spng.h>
#include <stdint.h>
#include <unistd.h>

/* ------------------------------------------------------------ fixtures */

/* Packs samples (one uint16 per channel value) into PNG scanlines as spng's
 * SPNG_FMT_PNG expects them: sub-byte depths MSB first, 16-bit host-endian. */
static uint8_t *pack_samples(const uint16_t *smp, int w, int h, int ch, int depth, size_t *len) {
  size_t row = ((size_t)w * ch * depth + 7) / 8;
  uint8_t *out = calloc(row * h, 1);
  for (int y = 0; y < h; y++) {
    uint8_t *r = out + row * y;
    for (int i = 0; i < w * ch; i++) {
      uint16_t v = smp[(size_t)y * w * ch + i];
      if (depth == 16) memcpy(r + 2 * i, &v, 2);
      else if (depth == 8) r[i] = (uint8_t)v;
      else r[i * depth / 8] |= (uint8_t)(v << (8 - depth - (i * depth) % 8));
    }
  }
  *len = row * h;
  return out;
}

static int encode_png(const uint16_t *smp, int w, int h, int ct, int depth, int interlace, struct spng_plte *plte,
                      struct spng_trns *trns, uint8_t **out, size_t *len) {
  static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
  size_t raw_len;
  uint8_t *raw = pack_samples(smp, w, h, channels[ct], depth, &raw_len);
  spng_ctx *ctx = spng_ctx_new(SPNG_CTX_ENCODER);
  spng_set_option(ctx, SPNG_ENCODE_TO_BUFFER, 1);
  struct spng_ihdr ihdr = {(uint32_t)w, (uint32_t)h, (uint8_t)depth, (uint8_t)ct, 0, 0, (uint8_t)interlace};
  int rc = spng_set_ihdr(ctx, &ihdr);
  if (!rc && plte) rc = spng_set_plte(ctx, plte);
  if (!rc && trns) rc = spng_set_trns(ctx, trns);
  if (!rc) rc = spng_encode_image(ctx, raw, raw_len, SPNG_FMT_PNG, SPNG_ENCODE_FINALIZE);
  int gerr = 0;
  *out = rc ? NULL : spng_get_png_buffer(ctx, len, &gerr);
  spng_ctx_free(ctx);
  free(raw);
  return rc ? rc : gerr;
}

/* Exact luminance (not rounded) of 8- or 16-bit RGB: the decoder must land
 * within 0.5 of it. */
static double luma_exact(double r, double g, double b, int depth) {
  double y = (299.0 * r + 587.0 * g + 114.0 * b) / 1000.0;
  return depth == 16 ? y * 255.0 / 65535.0 : y;
}

static int encode_jpeg(const uint8_t *px, int w, int h, int comps, J_COLOR_SPACE in_cs, J_COLOR_SPACE jpeg_cs,
                       int progressive, const jpeg_scan_info *scans, int n_scans, uint8_t **out, size_t *len) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr jerr;
  c.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&c);
  unsigned char *buf = NULL;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &buf, &size);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = comps;
  c.in_color_space = in_cs;
  jpeg_set_defaults(&c);
  jpeg_set_colorspace(&c, jpeg_cs);
  jpeg_set_quality(&c, 95, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  if (scans) {
    c.scan_info = scans;
    c.num_scans = n_scans;
  }
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = (JSAMPROW)(px + (size_t)c.next_scanline * w * comps);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  *out = buf;
  *len = size;
  return 0;
}

/* A smooth synthetic picture (JPEG-friendly), channel ch of 3. */
static uint8_t smooth_px(int x, int y, int ch) {
  double v = 128 + 90 * sin(x / (6.0 + ch)) * cos(y / (9.0 - ch)) + 20 * sin((x + y) / 23.0);
  return (uint8_t)lround(v);
}

static uint32_t crc32_png(const uint8_t *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
  }
  return c ^ 0xFFFFFFFFu;
}

static void put_be32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24);
  p[1] = (uint8_t)(v >> 16);
  p[2] = (uint8_t)(v >> 8);
  p[3] = (uint8_t)v;
}

/* Signature + IHDR (correct CRC) + IEND, with no pixel data: enough to declare a size. */
static size_t png_header_only(uint8_t *buf, uint32_t w, uint32_t h) {
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(buf, sig, 8);
  put_be32(buf + 8, 13);
  memcpy(buf + 12, "IHDR", 4);
  put_be32(buf + 16, w);
  put_be32(buf + 20, h);
  buf[24] = 8; /* depth */
  buf[25] = 0; /* grey */
  buf[26] = buf[27] = buf[28] = 0;
  put_be32(buf + 29, crc32_png(buf + 12, 17));
  put_be32(buf + 33, 0);
  memcpy(buf + 37, "IEND", 4);
  put_be32(buf + 41, crc32_png(buf + 37, 4));
  return 45;
}

static void grey8_png(int w, int h, uint64_t seed, uint8_t **png, size_t *len) {
  uint16_t *smp = malloc(sizeof(uint16_t) * w * h);
  rng r;
  rng_seed(&r, seed);
  for (int i = 0; i < w * h; i++) smp[i] = (uint16_t)((i % w) * 3 + (i / w) + rng_below(&r, 40));
  for (int i = 0; i < w * h; i++) smp[i] &= 255;
  encode_png(smp, w, h, SPNG_COLOR_TYPE_GRAYSCALE, 8, 0, NULL, NULL, png, len);
  free(smp);
}

static void rgb_jpeg(int w, int h, uint8_t **jpg, size_t *len) {
  uint8_t *px = malloc((size_t)w * h * 3);
  for (int y = 0; y < h; y++)
    for (int x = 0; x < w; x++)
      for (int c = 0; c < 3; c++) px[((size_t)y * w + x) * 3 + c] = smooth_px(x, y, c);
  encode_jpeg(px, w, h, 3, JCS_RGB, JCS_YCbCr, 0, NULL, 0, jpg, len);
  free(px);
}

/* ------------------------------------------------------------ PNG decoding */

/* Encodes random samples in one PNG layout, decodes, and checks every pixel
 * against the luminance of its source samples. Returns a message or NULL. */
static const char *png_roundtrip(int ct, int depth, int interlace, int with_trns, int w, int h, uint64_t seed,
                                 char *msg, size_t msg_n) {
  static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
  int ch = channels[ct];
  uint16_t maxv = (uint16_t)((1u << depth) - 1);
  rng r;
  rng_seed(&r, seed);
  uint16_t *smp = malloc(sizeof(uint16_t) * (size_t)w * h * ch);
  struct spng_plte plte = {0};
  struct spng_trns trns = {0};
  int n_plte = ct == SPNG_COLOR_TYPE_INDEXED ? (depth == 8 ? 200 : 1 << depth) : 0;
  plte.n_entries = (uint32_t)n_plte;
  for (int i = 0; i < n_plte; i++) {
    plte.entries[i].red = (uint8_t)rng_below(&r, 256);
    plte.entries[i].green = (uint8_t)rng_below(&r, 256);
    plte.entries[i].blue = (uint8_t)rng_below(&r, 256);
  }
  for (size_t i = 0; i < (size_t)w * h * ch; i++)
    smp[i] = (uint16_t)rng_below(&r, n_plte ? (uint64_t)n_plte : (uint64_t)maxv + 1);
  if (with_trns) {
    trns.n_type3_entries = (uint32_t)(n_plte / 2);
    for (int i = 0; i < n_plte / 2; i++) trns.type3_alpha[i] = (uint8_t)rng_below(&r, 256);
    trns.gray = smp[0];
    trns.red = smp[0];
    trns.green = smp[1 % (w * h * ch)];
    trns.blue = smp[2 % (w * h * ch)];
  }
  uint8_t *png;
  size_t len;
  int rc = encode_png(smp, w, h, ct, depth, interlace, n_plte ? &plte : NULL, with_trns ? &trns : NULL, &png, &len);
  if (rc) {
    free(smp);
    snprintf(msg, msg_n, "encode ct %d depth %d: %s", ct, depth, spng_strerror(rc));
    return msg;
  }
  gray_image img;
  mskx_err e = {0};
  rc = image_decode(png, len, "fixture.png", NULL, &img, &e);
  const char *fail = NULL;
  if (rc || img.w != w || img.h != h) {
    test_fmt(msg, msg_n, "ct %d depth %d il %d: rc %d (%s), %dx%d", ct, depth, interlace, rc, e.msg, img.w, img.h);
    fail = msg;
  }
  for (int i = 0; !fail && i < w * h; i++) {
    const uint16_t *s = smp + (size_t)i * ch;
    double want;
    if (n_plte) want = luma_exact(plte.entries[s[0]].red, plte.entries[s[0]].green, plte.entries[s[0]].blue, 8);
    else if (ch <= 2) want = s[0] * 255.0 / maxv;
    else want = luma_exact(s[0], s[1], s[2], depth);
    if (fabs(img.px[i] - want) > 0.5 + 1e-9) {
      snprintf(msg, msg_n, "ct %d depth %d il %d trns %d: pixel %d is %d, want %.3f", ct, depth, interlace,
               with_trns, i, img.px[i], want);
      fail = msg;
    }
  }
  int pw = 0, ph = 0;
  if (!fail && (image_probe(png, len, "fixture.png", &pw, &ph, &e) || pw != w || ph != h)) {
    snprintf(msg, msg_n, "probe ct %d depth %d: %dx%d", ct, depth, pw, ph);
    fail = msg;
  }
  gray_image_free(&img);
  free(png);
  free(smp);
  return fail;
}

TEST(png_every_colour_type_and_depth) {
  static const struct {
    int ct, depth;
  } layouts[] = {{0, 1}, {0, 2}, {0, 4}, {0, 8}, {0, 16}, {4, 8}, {4, 16}, {2, 8},
                 {2, 16}, {6, 8}, {6, 16}, {3, 1}, {3, 2}, {3, 4}, {3, 8}};
  char msg[512];
  int n = (int)(sizeof layouts / sizeof layouts[0]);
  for (int i = 0; i < n; i++)
    for (int il = 0; il < 2; il++)
      for (int trns = 0; trns < 2; trns++) {
        if (trns && (layouts[i].ct == 4 || layouts[i].ct == 6)) continue; /* tRNS is invalid with alpha */
        const char *f = png_roundtrip(layouts[i].ct, layouts[i].depth, il, trns, 37, 23, (uint64_t)(i * 4 + il * 2 + trns), msg, sizeof msg);
        CHECKF(!f, "%s", f);
      }
}

TEST(png_16bit_rounds_not_truncates) {
  /* Keeping the high byte (v >> 8) gives 0, 254, 0, 255; rounding v * 255 / 65535
   * (0.502, 253.0, 0.498, 255) gives 1, 253, 0, 255. */
  uint16_t smp[4] = {0x0081, 0xFE00, 0x0080, 0xFFFF};
  uint8_t *png;
  size_t len;
  CHECK(encode_png(smp, 4, 1, SPNG_COLOR_TYPE_GRAYSCALE, 16, 0, NULL, NULL, &png, &len) == 0);
  gray_image img;
  mskx_err e = {0};
  CHECK_OK(image_decode(png, len, "g16.png", NULL, &img, &e), &e);
  CHECK_EQ_INT(img.px[0], 1);
  CHECK_EQ_INT(img.px[1], 253);
  CHECK_EQ_INT(img.px[2], 0);
  CHECK_EQ_INT(img.px[3], 255);
  gray_image_free(&img);
  free(png);
}

/* ------------------------------------------------------------ JPEG decoding */

static double mean_abs_diff(const uint8_t *a, const double *want, size_t n, double *max_diff) {
  double s = 0, m = 0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs(a[i] - want[i]);
    s += d;
    if (d > m) m = d;
  }
  *max_diff = m;
  return s / n;
}

TEST(jpeg_grey_and_colour_match_source_luminance) {
  const int w = 61, h = 45; /* not a multiple of the 8x8 / 16x16 MCU */
  uint8_t *rgb = malloc((size_t)w * h * 3), *grey = malloc((size_t)w * h);
  double *want_rgb = malloc(sizeof(double) * w * h), *want_grey = malloc(sizeof(double) * w * h);
  for (int i = 0; i < w * h; i++) {
    for (int c = 0; c < 3; c++) rgb[3 * i + c] = smooth_px(i % w, i / w, c);
    grey[i] = smooth_px(i % w, i / w, 1);
    want_rgb[i] = luma_exact(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2], 8);
    want_grey[i] = grey[i];
  }
  struct {
    const char *name;
    const uint8_t *px;
    int comps;
    J_COLOR_SPACE in, stored;
    int progressive;
    const double *want;
  } cases[] = {
      {"grey baseline", grey, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, want_grey},
      {"grey progressive", grey, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 1, want_grey},
      {"ycbcr baseline", rgb, 3, JCS_RGB, JCS_YCbCr, 0, want_rgb},
      {"ycbcr progressive", rgb, 3, JCS_RGB, JCS_YCbCr, 1, want_rgb},
      {"rgb stored", rgb, 3, JCS_RGB, JCS_RGB, 0, want_rgb},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    uint8_t *jpg;
    size_t len;
    encode_jpeg(cases[k].px, w, h, cases[k].comps, cases[k].in, cases[k].stored, cases[k].progressive, NULL, 0, &jpg, &len);
    gray_image img;
    mskx_err e = {0};
    int rc = image_decode(jpg, len, "fixture.jpg", NULL, &img, &e);
    free(jpg);
    CHECKF(rc == 0, "%s: %s", cases[k].name, e.msg);
    CHECKF(img.w == w && img.h == h, "%s: %dx%d", cases[k].name, img.w, img.h);
    double mx, mean = mean_abs_diff(img.px, cases[k].want, (size_t)w * h, &mx);
    gray_image_free(&img);
    /* Quality 95 on a smooth picture: JPEG error is around one grey level. */
    CHECKF(mean < 1.5 && mx <= 8, "%s: mean |diff| %.3f, max %.0f", cases[k].name, mean, mx);
  }
  free(rgb);
  free(grey);
  free(want_rgb);
  free(want_grey);
}

TEST(jpeg_cmyk_is_unsupported) {
  const int w = 16, h = 16;
  uint8_t px[16 * 16 * 4];
  for (int i = 0; i < w * h * 4; i++) px[i] = (uint8_t)(i * 7);
  uint8_t *jpg;
  size_t len;
  encode_jpeg(px, w, h, 4, JCS_CMYK, JCS_CMYK, 0, NULL, 0, &jpg, &len);
  gray_image img;
  mskx_err e = {0};
  CHECK_EQ_INT(image_decode(jpg, len, "cmyk.jpg", NULL, &img, &e), MSKX_EUNSUPPORTED);
  CHECKF(strstr(e.msg, "cmyk.jpg") && strstr(e.msg, "CMYK"), "message: %s", e.msg);
  CHECK(img.px == NULL);
  free(jpg);
}

TEST(jpeg_too_many_scans_is_refused) {
  /* A legal progressive script with 1 + 63 * 11 = 694 scans (each AC
   * coefficient alone, then refined bit by bit). */
  static jpeg_scan_info scans[1 + 63 * 11];
  int n = 0;
  scans[n++] = (jpeg_scan_info){1, {0}, 0, 0, 0, 0};
  for (int k = 1; k < 64; k++) scans[n++] = (jpeg_scan_info){1, {0}, k, k, 0, 10};
  for (int al = 9; al >= 0; al--)
    for (int k = 1; k < 64; k++) scans[n++] = (jpeg_scan_info){1, {0}, k, k, al + 1, al};
  uint8_t px[16 * 16];
  for (int i = 0; i < 256; i++) px[i] = smooth_px(i % 16, i / 16, 0);
  uint8_t *jpg;
  size_t len;
  encode_jpeg(px, 16, 16, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, scans, n, &jpg, &len);
  gray_image img;
  mskx_err e = {0};
  CHECK_EQ_INT(image_decode(jpg, len, "scans.jpg", NULL, &img, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "scans.jpg") && strstr(e.msg, "scans"), "message: %s", e.msg);
  free(jpg);
}

/* ------------------------------------------------------------ bad input */

TEST(empty_random_and_text_inputs) {
  gray_image img;
  mskx_err e = {0};
  CHECK_EQ_INT(image_decode((const uint8_t *)"", 0, "zero.png", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "zero.png: empty file"), "message: %s", e.msg);
  uint8_t junk[1000];
  rng r;
  rng_seed(&r, 7);
  for (int i = 0; i < 1000; i++) junk[i] = (uint8_t)rng_u64(&r);
  junk[0] = 0x12;
  CHECK_EQ_INT(image_decode(junk, sizeof junk, "junk.bin", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "junk.bin: not a PNG, JPEG or DICOM image"), "message: %s", e.msg);
  CHECK(img.px == NULL);
  /* The right magic followed by noise. */
  static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  memcpy(junk, sig, 8);
  CHECK_EQ_INT(image_decode(junk, sizeof junk, "noise.png", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "noise.png"), "message: %s", e.msg);
  junk[0] = 0xFF, junk[1] = 0xD8, junk[2] = 0xFF;
  CHECK_EQ_INT(image_decode(junk, sizeof junk, "noise.jpg", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "noise.jpg"), "message: %s", e.msg);
  CHECK(img.px == NULL);
}

static void temp_dir(char *out, size_t n) {
  const char *base = getenv("MSKX_TMP");
  snprintf(out, n, "%s/test_image.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(out)) out[0] = 0;
}

TEST(load_from_files) {
  char dir[512], path[700];
  temp_dir(dir, sizeof dir);
  CHECK(dir[0]);
  mskx_err e = {0};
  gray_image img;
  snprintf(path, sizeof path, "%s/notes.txt", dir);
  CHECK_OK(file_write_atomic(path, "Patient 1: elbow, normal\n", 25, &e), &e);
  CHECK_EQ_INT(image_load(path, NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, path) && strstr(e.msg, "not a PNG, JPEG or DICOM"), "message: %s", e.msg);
  unlink(path);
  snprintf(path, sizeof path, "%s/missing.png", dir);
  CHECK_EQ_INT(image_load(path, NULL, &img, &e), MSKX_EIO);
  CHECKF(strstr(e.msg, path), "message: %s", e.msg);
  uint8_t *png;
  size_t len;
  grey8_png(40, 30, 3, &png, &len);
  snprintf(path, sizeof path, "%s/ok.png", dir);
  CHECK_OK(file_write_atomic(path, png, len, &e), &e);
  free(png);
  CHECK_OK(image_load(path, NULL, &img, &e), &e);
  CHECK(img.w == 40 && img.h == 30 && img.px);
  gray_image_free(&img);
  CHECK(img.px == NULL && img.w == 0);
  gray_image_free(&img); /* twice is harmless */
  unlink(path);
  rmdir(dir);
}

/* Every proper prefix of a valid file shorter than len - keep must fail
 * cleanly, never decode partially. */
static const char *all_truncations_fail(const uint8_t *buf, size_t len, const char *name, size_t keep, char *msg,
                                        size_t msg_n) {
  for (size_t cut = 0; cut + keep < len; cut++) {
    gray_image img = {1, 1, (uint8_t *)1};
    mskx_err e = {0};
    int rc = image_decode(buf, cut, name, NULL, &img, &e);
    if (rc != MSKX_EFORMAT || img.px != NULL || !strstr(e.msg, name)) {
      test_fmt(msg, msg_n, "%s cut at %zu of %zu: rc %d, %s", name, cut, len, rc, e.msg);
      return msg;
    }
  }
  return NULL;
}

TEST(truncated_png_and_jpeg_fail) {
  char msg[600];
  uint8_t *png, *jpg;
  size_t plen, jlen;
  grey8_png(64, 48, 11, &png, &plen);
  CHECK(plen > 1000);
  /* spng stops at IEND's type and never reads its CRC, so only a cut inside
   * those last 4 bytes (all pixel data intact) is accepted. */
  const char *f = all_truncations_fail(png, plen, "cut.png", 4, msg, sizeof msg);
  CHECKF(!f, "%s", f);
  /* Interlaced and 16-bit colour take other decoder paths. */
  uint16_t *smp = malloc(sizeof(uint16_t) * 30 * 20 * 3);
  for (int i = 0; i < 30 * 20 * 3; i++) smp[i] = (uint16_t)(i * 977);
  uint8_t *png2;
  size_t plen2;
  CHECK(encode_png(smp, 30, 20, SPNG_COLOR_TYPE_TRUECOLOR, 16, 1, NULL, NULL, &png2, &plen2) == 0);
  free(smp);
  f = all_truncations_fail(png2, plen2, "cut16.png", 4, msg, sizeof msg);
  free(png2);
  CHECKF(!f, "%s", f);
  rgb_jpeg(80, 64, &jpg, &jlen);
  f = all_truncations_fail(jpg, jlen, "cut.jpg", 0, msg, sizeof msg);
  CHECKF(!f, "%s", f);
  /* Cut in the middle of the entropy-coded scan: the named case. */
  gray_image img;
  mskx_err e = {0};
  CHECK_EQ_INT(image_decode(jpg, jlen / 2, "half.jpg", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "half.jpg") && strstr(e.msg, "Premature end"), "message: %s", e.msg);
  free(png);
  free(jpg);
}

/* Finds the first chunk of a type in a PNG; returns its offset (length field) or 0. */
static size_t png_find_chunk(const uint8_t *p, size_t len, const char *type) {
  size_t off = 8;
  while (off + 12 <= len) {
    uint32_t n = (uint32_t)p[off] << 24 | (uint32_t)p[off + 1] << 16 | (uint32_t)p[off + 2] << 8 | p[off + 3];
    if (memcmp(p + off + 4, type, 4) == 0) return off;
    off += 12 + (size_t)n;
  }
  return 0;
}

TEST(png_bad_crc_fails) {
  uint8_t *png;
  size_t len;
  grey8_png(32, 32, 5, &png, &len);
  size_t idat = png_find_chunk(png, len, "IDAT");
  CHECK(idat > 0);
  uint32_t n = (uint32_t)png[idat] << 24 | (uint32_t)png[idat + 1] << 16 | (uint32_t)png[idat + 2] << 8 | png[idat + 3];
  gray_image img;
  mskx_err e = {0};
  png[idat + 8 + n] ^= 0x01; /* first CRC byte */
  CHECK_EQ_INT(image_decode(png, len, "crc.png", NULL, &img, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "crc.png"), "message: %s", e.msg);
  png[idat + 8 + n] ^= 0x01;
  png[idat + 8 + n / 2] ^= 0x40; /* pixel data, CRC now stale */
  CHECK_EQ_INT(image_decode(png, len, "crc.png", NULL, &img, &e), MSKX_EFORMAT);
  png[idat + 8 + n / 2] ^= 0x40;
  size_t ihdr = png_find_chunk(png, len, "IHDR");
  png[ihdr + 8 + 13] ^= 0x80; /* IHDR CRC */
  CHECK_EQ_INT(image_decode(png, len, "crc.png", NULL, &img, &e), MSKX_EFORMAT);
  CHECK(img.px == NULL);
  png[ihdr + 8 + 13] ^= 0x80;
  CHECK_OK(image_decode(png, len, "crc.png", NULL, &img, &e), &e);
  gray_image_free(&img);
  free(png);
}

TEST(declared_size_above_limit) {
  uint8_t hdr[64];
  size_t n = png_header_only(hdr, 100000, 100000);
  gray_image img;
  mskx_err e = {0};
  CHECK_EQ_INT(image_decode(hdr, n, "bomb.png", NULL, &img, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "bomb.png: declares 100000x100000 pixels, above the limit of 268435456"), "message: %s", e.msg);
  int w, h;
  CHECK_OK(image_probe(hdr, n, "bomb.png", &w, &h, &e), &e);
  CHECK(w == 100000 && h == 100000);
  /* Width 2^31 breaks the PNG spec itself. */
  n = png_header_only(hdr, 0x80000000u, 1);
  CHECK_EQ_INT(image_decode(hdr, n, "wide.png", NULL, &img, &e), MSKX_EFORMAT);
  /* A small caller limit against a real image. */
  uint8_t *png;
  size_t len;
  grey8_png(64, 48, 1, &png, &len);
  image_limits lim = {.max_pixels = 1000};
  CHECK_EQ_INT(image_decode(png, len, "small.png", &lim, &img, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "small.png: declares 64x48 pixels, above the limit of 1000"), "message: %s", e.msg);
  lim.max_pixels = 64 * 48;
  CHECK_OK(image_decode(png, len, "small.png", &lim, &img, &e), &e);
  gray_image_free(&img);
  free(png);
  /* JPEG: patch the SOF of a real file to 65000 x 65000. */
  uint8_t *jpg;
  rgb_jpeg(32, 32, &jpg, &len);
  size_t sof = 0;
  for (size_t i = 2; i + 9 < len && !sof; i++)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) sof = i;
  CHECK(sof > 0);
  lim.max_pixels = 1000;
  CHECK_EQ_INT(image_decode(jpg, len, "small.jpg", &lim, &img, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "small.jpg: declares 32x32 pixels, above the limit of 1000"), "message: %s", e.msg);
  jpg[sof + 5] = jpg[sof + 7] = 65000 >> 8;
  jpg[sof + 6] = jpg[sof + 8] = 65000 & 255;
  CHECK_EQ_INT(image_decode(jpg, len, "bomb.jpg", NULL, &img, &e), MSKX_ELIMIT);
  CHECKF(strstr(e.msg, "bomb.jpg: declares 65000x65000 pixels, above the limit of 268435456"), "message: %s", e.msg);
  CHECK_OK(image_probe(jpg, len, "bomb.jpg", &w, &h, &e), &e);
  CHECK(w == 65000 && h == 65000);
  free(jpg);
}

/* Streaming holds rows, not images: a sequential PNG or baseline JPEG decodes
 * under a budget far below its pixel count; an interlaced PNG or a
 * progressive JPEG (whole-image state in the codec) is charged for it and
 * refused under the same budget; rows streamed equal image_decode's. */
typedef struct row_hash {
  int w, h, rows;
  uint64_t hash;
} row_hash;

static int rh_begin(void *ctx, int w, int h, mskx_err *e) {
  (void)e;
  row_hash *r = ctx;
  r->w = w, r->h = h;
  return MSKX_OK;
}

static void rh_row(void *ctx, const uint8_t *row) {
  row_hash *r = ctx;
  for (int x = 0; x < r->w; x++) r->hash = r->hash * 1099511628211ull ^ row[x];
  r->rows++;
}

static uint64_t hash_image(const gray_image *g) {
  uint64_t h = 0;
  for (size_t i = 0; i < (size_t)g->w * g->h; i++) h = h * 1099511628211ull ^ g->px[i];
  return h;
}

TEST(streaming_budget_counts_whole_image_codecs) {
  enum { W = 3000, H = 2000 };
  uint8_t *px = malloc((size_t)W * H);
  for (size_t i = 0; i < (size_t)W * H; i++) px[i] = (uint8_t)(i * 2654435761u >> 24);
  uint16_t *smp = malloc((size_t)W * H * sizeof *smp);
  for (size_t i = 0; i < (size_t)W * H; i++) smp[i] = px[i];
  uint8_t *seq_png, *il_png, *base_jpg, *prog_jpg;
  size_t n_seq, n_il, n_base, n_prog;
  CHECK(encode_png(smp, W, H, 0, 8, 0, NULL, NULL, &seq_png, &n_seq) == 0);
  CHECK(encode_png(smp, W, H, 0, 8, 1, NULL, NULL, &il_png, &n_il) == 0);
  CHECK(encode_jpeg(px, W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 0, NULL, 0, &base_jpg, &n_base) == 0);
  CHECK(encode_jpeg(px, W, H, 1, JCS_GRAYSCALE, JCS_GRAYSCALE, 1, NULL, 0, &prog_jpg, &n_prog) == 0);
  mskx_err e = {0};
  mem_budget *b;
  CHECK_OK(mem_budget_create((uint64_t)W * H / 4, 0, &b, &e), &e);
  image_limits lim = {.budget = b};
  const uint8_t *bufs[4] = {seq_png, base_jpg, il_png, prog_jpg};
  size_t lens[4] = {n_seq, n_base, n_il, n_prog};
  for (int k = 0; k < 4; k++) {
    row_hash rh = {0};
    image_sink sink = {NULL, rh_begin, rh_row, &rh};
    int rc = image_stream(bufs[k], lens[k], "big", &lim, &sink, &e);
    CHECK(mem_budget_used(b) == 0);
    if (k < 2) {
      CHECKF(rc == 0, "case %d: %s", k, e.msg);
      gray_image g;
      CHECK_OK(image_decode(bufs[k], lens[k], "big", NULL, &g, &e), &e);
      CHECK(rh.w == W && rh.h == H && rh.rows == H && rh.hash == hash_image(&g));
      gray_image_free(&g);
    } else {
      CHECKF(rc == MSKX_ELIMIT && strstr(e.msg, "budget"), "case %d: rc %d %s", k, rc, e.msg);
      CHECK(rh.rows == 0);
    }
  }
  /* With room for them, they stream the same rows as image_decode. */
  mem_budget_destroy(b);
  CHECK_OK(mem_budget_create((uint64_t)W * H * 3, 0, &b, &e), &e);
  lim.budget = b;
  for (int k = 2; k < 4; k++) {
    row_hash rh = {0};
    image_sink sink = {NULL, rh_begin, rh_row, &rh};
    CHECK_OK(image_stream(bufs[k], lens[k], "big", &lim, &sink, &e), &e);
    gray_image g;
    CHECK_OK(image_decode(bufs[k], lens[k], "big", NULL, &g, &e), &e);
    CHECK(rh.rows == H && rh.hash == hash_image(&g));
    gray_image_free(&g);
  }
  mem_budget_destroy(b);
  free(px), free(smp), free(seq_png), free(il_png), free(base_jpg), free(prog_jpg);
}

/* Random byte mutations: each decode either succeeds with a full image or
 * fails with a message naming the file; under ASan, never touches bad memory. */
TEST(mutated_files_never_crash) {
  uint8_t *png, *jpg;
  size_t plen, jlen;
  grey8_png(48, 40, 9, &png, &plen);
  rgb_jpeg(48, 40, &jpg, &jlen);
  rng r;
  rng_seed(&r, 2024);
  int failures = 0;
  for (int t = 0; t < 400; t++) {
    const uint8_t *orig = t % 2 ? jpg : png;
    size_t len = t % 2 ? jlen : plen;
    uint8_t *m = malloc(len);
    memcpy(m, orig, len);
    int flips = 1 + (int)rng_below(&r, 4);
    for (int k = 0; k < flips; k++) m[2 + rng_below(&r, len - 2)] ^= (uint8_t)(1 + rng_below(&r, 255));
    gray_image img;
    mskx_err e = {0};
    int rc = image_decode(m, len, "mutant", NULL, &img, &e);
    free(m);
    if (rc == 0) {
      CHECKF(img.w > 0 && img.h > 0 && img.px, "ok without pixels");
      gray_image_free(&img);
    } else {
      failures++;
      CHECKF(img.px == NULL && strstr(e.msg, "mutant"), "rc %d: %s", rc, e.msg);
    }
  }
  CHECKF(failures > 100, "only %d of 400 mutants rejected", failures);
  free(png);
  free(jpg);
}

TEST_MAIN()
