/* DICOM pieces that need no fixture files: option parsing, the body-part
 * table, the display pipeline on hand-made frames (windows by their PS3.3
 * formulas, MONOCHROME1, padding, LUTs, auto/minmax), codestream checks and
 * the header scanner on minimal hand-built files. Reference pixels from
 * pydicom are compared in tests/io/dicom_test.sh. Streaming: frames one at
 * a time into an image sink, charged to a decode budget. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "core/error.h"
#include "io/dicom.h"
#include "io/dicom_internal.h"
#include "io/image.h"
#include "test.h"

TEST(options_parse) {
  dicom_options o = {0};
  mskx_err e = {0, ""};
  CHECK(dicom_options_parse_window("auto", &o, &e) == MSKX_OK && o.window == DICOM_WINDOW_AUTO);
  CHECK(dicom_options_parse_window("minmax", &o, &e) == MSKX_OK && o.window == DICOM_WINDOW_MINMAX);
  CHECK(dicom_options_parse_window("-600.5,1500", &o, &e) == MSKX_OK && o.window == DICOM_WINDOW_FIXED);
  CHECK(o.center == -600.5 && o.width == 1500);
  CHECK(dicom_options_parse_window("40,0.5", &o, &e) == MSKX_EINVAL);
  CHECK(dicom_options_parse_window("40", &o, &e) == MSKX_EINVAL);
  CHECK(dicom_options_parse_window("40,400x", &o, &e) == MSKX_EINVAL);
  CHECK(strstr(e.msg, "--dicom-window"));
  CHECK(dicom_options_parse_frames("first", &o, &e) == MSKX_OK && o.frames == DICOM_FRAMES_FIRST);
  CHECK(dicom_options_parse_frames("all", &o, &e) == MSKX_OK && o.frames == DICOM_FRAMES_ALL);
  CHECK(dicom_options_parse_frames("2", &o, &e) == MSKX_EINVAL);
}

TEST(part_table) {
  dicom_meta m;
  char p[32];
  memset(&m, 0, sizeof m);
  strcpy(m.body_part, "WRIST");
  CHECK(dicom_mura_part(&m, p, sizeof p) && !strcmp(p, "XR_WRIST"));
  strcpy(m.body_part, "forearm");
  CHECK(dicom_mura_part(&m, p, sizeof p) && !strcmp(p, "XR_FOREARM"));
  strcpy(m.body_part, "ARM");   /* ambiguous defined term: not guessed */
  CHECK(!dicom_mura_part(&m, p, sizeof p) && !p[0]);
  strcpy(m.study_desc, "XR HAND AND WRIST 3 VIEWS");  /* two parts: not guessed */
  CHECK(!dicom_mura_part(&m, p, sizeof p));
  strcpy(m.series_desc, "R THUMB PA");
  CHECK(dicom_mura_part(&m, p, sizeof p) && !strcmp(p, "XR_FINGER"));
  memset(&m, 0, sizeof m);
  strcpy(m.study_desc, "Rö Schulter");  /* not in the table */
  CHECK(!dicom_mura_part(&m, p, sizeof p));
  strcpy(m.study_desc, "SHOULDER-2V");
  CHECK(dicom_mura_part(&m, p, sizeof p) && !strcmp(p, "XR_SHOULDER"));
}

/* A 1-row frame of 16-bit stored values through the pipeline. */
static void render(const uint16_t *v, int n, const dicom_meta *m, const dicom_render_params *rp, const dicom_options *o,
                   const char *pi, uint8_t *out) {
  dicom_frame f = {(const uint8_t *)v, 1, n, 1, 16, 0, 0, 0, pi};
  mskx_err e = {0, ""};
  if (dicom_render_frame(&f, m, rp, o, out, "t", &e)) memset(out, 0xAA, (size_t)n);
}

static dicom_meta meta12(void) {
  dicom_meta m;
  memset(&m, 0, sizeof m);
  m.bits_allocated = 16, m.bits_stored = 12, m.high_bit = 11, m.samples = 1;
  return m;
}

TEST(window_linear_formula) {
  dicom_meta m = meta12();
  dicom_render_params rp;
  memset(&rp, 0, sizeof rp);
  rp.slope = 1;
  rp.have_window = 1, rp.window_center = 2048, rp.window_width = 1001;
  uint16_t v[6] = {0, 1547, 1548, 2048, 2548, 4095};
  uint8_t out[6];
  render(v, 6, &m, &rp, NULL, "MONOCHROME2", out);
  for (int i = 0; i < 6; i++) {
    double c = 2048, w = 1001, x = v[i], y;
    if (x <= c - 0.5 - (w - 1) / 2) y = 0;
    else if (x > c - 0.5 + (w - 1) / 2) y = 255;
    else y = ((x - (c - 0.5)) / (w - 1) + 0.5) * 255;
    CHECKF(out[i] == (uint8_t)floor(y + 0.5), "x=%d got %d want %.2f", v[i], out[i], y);
  }
  render(v, 6, &m, &rp, NULL, "MONOCHROME1", out);
  CHECK(out[0] == 255 && out[5] == 0);
}

TEST(high_bits_masked_and_padding_black) {
  dicom_meta m = meta12();
  dicom_render_params rp;
  memset(&rp, 0, sizeof rp);
  rp.slope = 1;
  rp.have_window = 1, rp.window_center = 2048, rp.window_width = 4096;
  rp.have_padding = 1, rp.padding = 4095;
  uint16_t v[3] = {0xF000 | 4095, 0xF000 | 2048, 4095}; /* overlay bits above Bits Stored */
  uint8_t out[3];
  render(v, 3, &m, &rp, NULL, "MONOCHROME1", out);
  CHECK(out[0] == 0 && out[2] == 0);  /* padding is black whatever the photometric */
  CHECK(out[1] == 127 || out[1] == 128);
}

TEST(signed_rescale_and_fixed_override) {
  dicom_meta m = meta12();
  m.pixel_rep = 1;
  dicom_render_params rp;
  memset(&rp, 0, sizeof rp);
  rp.slope = 2, rp.intercept = -100;
  rp.have_window = 1, rp.window_center = 5000, rp.window_width = 10;  /* overridden */
  uint16_t v[3] = {(uint16_t)(4096 - 2048), 0, 2047};                  /* -2048, 0, 2047 in 12 bits */
  uint8_t out[3];
  dicom_options o = {DICOM_WINDOW_FIXED, -100, 8000, 0};
  render(v, 3, &m, &rp, &o, "MONOCHROME2", out);
  for (int i = 0; i < 3; i++) {
    double s = i == 0 ? -2048 : i == 1 ? 0 : 2047, x = s * 2 - 100;
    double y = x <= -100.5 - 3999.5 ? 0 : x > -100.5 + 3999.5 ? 255 : ((x + 100.5) / 7999 + 0.5) * 255;
    CHECKF(out[i] == (uint8_t)floor(y + 0.5), "i=%d got %d want %.2f", i, out[i], y);
  }
}

TEST(auto_and_minmax_windows) {
  dicom_meta m = meta12();
  dicom_render_params rp;
  memset(&rp, 0, sizeof rp);
  rp.slope = 1;
  uint16_t v[1000];
  for (int i = 0; i < 1000; i++) v[i] = (uint16_t)(1000 + i);
  v[0] = 0, v[999] = 4095;  /* outliers the percentile window clips */
  uint8_t out[1000];
  dicom_options mm = {DICOM_WINDOW_MINMAX, 0, 0, 0};
  render(v, 1000, &m, &rp, &mm, "MONOCHROME2", out);
  CHECK(out[0] == 0 && out[999] == 255 && out[500] == (uint8_t)floor(1500.0 / 4095 * 255 + 0.5));
  render(v, 1000, &m, &rp, NULL, "MONOCHROME2", out);
  /* ranks floor(0.005*999)=4 and ceil(0.995*999)=994: values 1004 and 1994 */
  CHECK(out[4] == 0 && out[994] == 255 && out[1] == 0 && out[998] == 255);
  CHECKF(out[500] == (uint8_t)floor((1500.0 - 1004) / 990 * 255 + 0.5), "got %d", out[500]);
}

TEST(voi_lut_sequence) {
  dicom_meta m = meta12();
  dicom_render_params rp;
  memset(&rp, 0, sizeof rp);
  rp.slope = 1;
  uint8_t lut[2 * 4];
  uint16_t vals[4] = {0, 100, 200, 255};
  for (int i = 0; i < 4; i++) lut[2 * i] = (uint8_t)vals[i], lut[2 * i + 1] = 0;
  rp.voi_lut = (dicom_lut){1, 4, 10, 8, lut, sizeof lut};
  uint16_t v[4] = {5, 11, 12, 50};  /* below first-mapped, inside, inside, beyond the end */
  uint8_t out[4];
  render(v, 4, &m, &rp, NULL, "MONOCHROME2", out);
  CHECK(out[0] == 0 && out[1] == 100 && out[2] == 200 && out[3] == 255);
}

TEST(codestream_checks) {
  dicom_meta m;
  memset(&m, 0, sizeof m);
  m.rows = 100, m.cols = 80, m.samples = 1, m.bits_allocated = 16;
  mskx_err e = {0, ""};
  /* SOI, SOF3 (precision 12, 100x80, 1 component), SOS */
  uint8_t jpg[] = {0xFF, 0xD8, 0xFF, 0xC3, 0, 11, 12, 0, 100, 0, 80, 1, 1, 0x11, 0, 0xFF, 0xDA, 0, 2};
  int prec = 0;
  CHECK(dicom_check_fragment(TS_JPEG, jpg, sizeof jpg, &m, &prec, "t", &e) == MSKX_OK && prec == 12);
  jpg[8] = 200;  /* height 200 */
  CHECK(dicom_check_fragment(TS_JPEG, jpg, sizeof jpg, &m, NULL, "t", &e) == MSKX_EFORMAT);
  CHECK(strstr(e.msg, "declares 80x200"));
  jpg[8] = 100;
  uint8_t stray[sizeof jpg + 1];
  memcpy(stray, jpg, 15);
  stray[15] = 0x00;
  memcpy(stray + 16, jpg + 15, sizeof jpg - 15);
  CHECK(dicom_check_fragment(TS_JPEG, stray, sizeof stray, &m, NULL, "t", &e) == MSKX_EFORMAT);
  CHECK(dicom_check_fragment(TS_JPEG, jpg, 12, &m, NULL, "t", &e) == MSKX_EFORMAT);  /* cut inside SOF */
  /* J2K: SOC, SIZ with Xsiz=80, Ysiz=100, offsets 0, Csiz=1 */
  uint8_t j2k[4 + 2 + 38 + 3] = {0xFF, 0x4F, 0xFF, 0x51, 0, 41, 0, 0, 0, 0, 0, 80, 0, 0, 0, 100};
  j2k[40] = 0, j2k[41] = 1; /* Csiz */
  CHECK(dicom_check_fragment(TS_J2K, j2k, sizeof j2k, &m, NULL, "t", &e) == MSKX_OK);
  j2k[11] = 0xFF, j2k[10] = 0xFF;  /* Xsiz 65535 */
  CHECK(dicom_check_fragment(TS_J2K, j2k, sizeof j2k, &m, NULL, "t", &e) == MSKX_EFORMAT);
  /* RLE: 2 segments for 16-bit grey, offsets 64 and 70 */
  uint8_t rle[80] = {2, 0, 0, 0, 64, 0, 0, 0, 70, 0, 0, 0};
  CHECK(dicom_check_fragment(TS_RLE, rle, sizeof rle, &m, NULL, "t", &e) == MSKX_OK);
  rle[8] = 60;  /* out of order */
  CHECK(dicom_check_fragment(TS_RLE, rle, sizeof rle, &m, NULL, "t", &e) == MSKX_EFORMAT);
}

/* A minimal explicit-VR little-endian file: preamble, meta with the
 * transfer syntax, Rows/Columns/bits, 2x2 pixels. */
static size_t put_el(uint8_t *b, unsigned g, unsigned el, const char *vr, const void *v, unsigned len) {
  size_t k = 0;
  b[k++] = (uint8_t)g, b[k++] = (uint8_t)(g >> 8), b[k++] = (uint8_t)el, b[k++] = (uint8_t)(el >> 8);
  b[k++] = (uint8_t)vr[0], b[k++] = (uint8_t)vr[1];
  if (!strcmp(vr, "OW") || !strcmp(vr, "OB") || !strcmp(vr, "SQ")) {
    b[k++] = 0, b[k++] = 0;
    for (int i = 0; i < 4; i++) b[k++] = (uint8_t)(len >> (8 * i));
  } else {
    b[k++] = (uint8_t)len, b[k++] = (uint8_t)(len >> 8);
  }
  memcpy(b + k, v, len);
  return k + len;
}

static size_t tiny_file(uint8_t *b, const char *ts) {
  memset(b, 0, 132);
  memcpy(b + 128, "DICM", 4);
  size_t k = 132;
  char uid[32];
  snprintf(uid, sizeof uid, "%s", ts);
  unsigned ul = (unsigned)strlen(uid);
  if (ul % 2) uid[ul++] = 0;
  k += put_el(b + k, 0x0002, 0x0010, "UI", uid, ul);
  uint16_t two = 2, sixteen = 16, twelve = 12, eleven = 11, zero = 0, one = 1;
  k += put_el(b + k, 0x0028, 0x0002, "US", &one, 2);
  k += put_el(b + k, 0x0028, 0x0004, "CS", "MONOCHROME2 ", 12);
  k += put_el(b + k, 0x0028, 0x0010, "US", &two, 2);
  k += put_el(b + k, 0x0028, 0x0011, "US", &two, 2);
  k += put_el(b + k, 0x0028, 0x0100, "US", &sixteen, 2);
  k += put_el(b + k, 0x0028, 0x0101, "US", &twelve, 2);
  k += put_el(b + k, 0x0028, 0x0102, "US", &eleven, 2);
  k += put_el(b + k, 0x0028, 0x0103, "US", &zero, 2);
  uint16_t px[4] = {0, 1000, 3000, 4095};
  k += put_el(b + k, 0x7FE0, 0x0010, "OW", px, 8);
  return k;
}

TEST(scanner_minimal_and_truncations) {
  uint8_t b[512];
  size_t n = tiny_file(b, "1.2.840.10008.1.2.1");
  mskx_err e = {0, ""};
  CHECK(dicom_is_dicom(b, n));
  dicom_image img;
  CHECKF(dicom_decode(b, n, "t.dcm", NULL, &img, &e) == MSKX_OK, "%s", e.msg);
  CHECK(img.n_frames == 1 && img.frames[0].w == 2 && img.frames[0].px[0] == 0 && img.frames[0].px[3] == 255);
  dicom_image_free(&img);
  /* Every truncation is refused cleanly. */
  for (size_t cut = 0; cut < n; cut++) {
    int rc = dicom_decode(b, cut, "t.dcm", NULL, &img, &e);
    CHECKF(rc != MSKX_OK, "cut at %zu accepted", cut);
    CHECK(img.frames == NULL);
  }
  n = tiny_file(b, "1.2.840.10008.1.2.4.100");
  CHECK(dicom_decode(b, n, "t.dcm", NULL, &img, &e) == MSKX_EUNSUPPORTED);
  CHECK(strstr(e.msg, "1.2.840.10008.1.2.4.100"));
  image_limits lim = {.max_pixels = 3};
  n = tiny_file(b, "1.2.840.10008.1.2.1");
  CHECK(dicom_decode(b, n, "t.dcm", &lim, &img, &e) == MSKX_ELIMIT);
}

TEST(uids_deterministic_and_valid) {
  char a[DICOM_UI_MAX + 1], b[DICOM_UI_MAX + 1];
  dicom_make_uid(1, 2, a);
  dicom_make_uid(1, 2, b);
  CHECK(!strcmp(a, b) && !strncmp(a, "2.25.", 5) && strlen(a) <= DICOM_UI_MAX && a[5] != '0');
  dicom_make_uid(1, 3, b);
  CHECK(strcmp(a, b));
  for (const char *p = a; *p; p++) CHECK((*p >= '0' && *p <= '9') || *p == '.');
}

/* A 3-frame 12-bit file of 4x2 pixels: frame f holds 1000 * f + pixel index. */
static size_t three_frames(uint8_t *b) {
  memset(b, 0, 132);
  memcpy(b + 128, "DICM", 4);
  size_t k = 132;
  k += put_el(b + k, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1", 20);
  uint16_t two = 2, four = 4, sixteen = 16, twelve = 12, eleven = 11, zero = 0, one = 1;
  k += put_el(b + k, 0x0028, 0x0002, "US", &one, 2);
  k += put_el(b + k, 0x0028, 0x0004, "CS", "MONOCHROME2 ", 12);
  k += put_el(b + k, 0x0028, 0x0008, "IS", "3 ", 2);
  k += put_el(b + k, 0x0028, 0x0010, "US", &two, 2);
  k += put_el(b + k, 0x0028, 0x0011, "US", &four, 2);
  k += put_el(b + k, 0x0028, 0x0100, "US", &sixteen, 2);
  k += put_el(b + k, 0x0028, 0x0101, "US", &twelve, 2);
  k += put_el(b + k, 0x0028, 0x0102, "US", &eleven, 2);
  k += put_el(b + k, 0x0028, 0x0103, "US", &zero, 2);
  k += put_el(b + k, 0x0028, 0x1050, "DS", "2048", 4);
  k += put_el(b + k, 0x0028, 0x1051, "DS", "4096", 4);
  uint16_t px[24];
  for (int i = 0; i < 24; i++) px[i] = (uint16_t)(1000 * (i / 8) + i % 8);
  k += put_el(b + k, 0x7FE0, 0x0010, "OW", px, sizeof px);
  return k;
}

/* Collects one image, and records what the budget held when it began. */
typedef struct grab {
  uint8_t px[64];
  int w, h, y;
  mem_budget *b;
  uint64_t used_at_begin;
} grab;
static uint64_t grab_cost(void *ctx, int w, int h) {
  (void)ctx;
  return (uint64_t)w * (uint64_t)h;
}
static int grab_begin(void *ctx, int w, int h, mskx_err *e) {
  grab *g = ctx;
  if (w * h > 64) return err_set(e, MSKX_EINTERNAL, "too big");
  g->w = w, g->h = h, g->y = 0;
  g->used_at_begin = g->b ? mem_budget_used(g->b) : 0;
  return MSKX_OK;
}
static void grab_row(void *ctx, const uint8_t *row) {
  grab *g = ctx;
  memcpy(g->px + (size_t)g->y++ * g->w, row, (size_t)g->w);
}

TEST(stream_frames_under_budget) {
  uint8_t b[1024];
  size_t n = three_frames(b);
  mskx_err e = {0, ""};
  dicom_image all;
  CHECK_OK(dicom_decode(b, n, "mf.dcm", NULL, &all, &e), &e);
  CHECK(all.n_frames == 3 && all.frames[0].w == 4 && all.frames[0].h == 2);
  mem_budget *bud;
  CHECK_OK(mem_budget_create(1 << 20, 0, &bud, &e), &e);
  image_limits lim = {.budget = bud};
  grab g = {.b = bud};
  image_sink sink = {grab_cost, grab_begin, grab_row, &g};
  /* Frame k (1-based) streams exactly what decoding every frame gives. */
  for (int k = 1; k <= 3; k++) {
    CHECK_OK(image_stream_frame(b, n, "mf.dcm", k, &lim, &sink, &e), &e);
    CHECK(g.w == 4 && g.h == 2 && g.y == 2 && !memcmp(g.px, all.frames[k - 1].px, 8));
    /* Charged while it ran: the 8-bit frame, the sink's image and the
     * renderer's tables (an int per pixel, 4096 LUT and histogram entries). */
    CHECKF(g.used_at_begin >= 8 + 8 + 8 * sizeof(int) + 4096 * 9, "charged %llu", (unsigned long long)g.used_at_begin);
    CHECK(mem_budget_used(bud) == 0);
  }
  CHECK(image_stream_frame(b, n, "mf.dcm", 4, &lim, &sink, &e) == MSKX_EINVAL && strstr(e.msg, "3 frames"));
  /* The file's one image: refused for a multi-frame file unless first frames are asked for. */
  CHECK(image_stream(b, n, "mf.dcm", &lim, &sink, &e) == MSKX_EUNSUPPORTED && strstr(e.msg, "multi-frame"));
  lim.dicom.frames = DICOM_FRAMES_FIRST;
  CHECK_OK(image_stream(b, n, "mf.dcm", &lim, &sink, &e), &e);
  CHECK(!memcmp(g.px, all.frames[0].px, 8));
  gray_image one;
  CHECK_OK(image_decode(b, n, "mf.dcm", &lim, &one, &e), &e);
  CHECK(one.w == 4 && !memcmp(one.px, all.frames[0].px, 8));
  gray_image_free(&one);
  mem_budget_destroy(bud);
  /* A budget below what the frame needs: refused before decoding. */
  CHECK_OK(mem_budget_create(1000, 0, &bud, &e), &e);
  lim.budget = bud;
  g.y = -1;
  CHECKF(image_stream_frame(b, n, "mf.dcm", 2, &lim, &sink, &e) == MSKX_ELIMIT, "%s", e.msg);
  CHECK(g.y == -1 && mem_budget_used(bud) == 0);
  mem_budget_destroy(bud);
  /* A frame of a PNG or JPEG does not exist. */
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  CHECK(image_stream_frame(png, sizeof png, "x.png", 2, NULL, &sink, &e) == MSKX_EINVAL);
  dicom_image_free(&all);
}

TEST_MAIN()
