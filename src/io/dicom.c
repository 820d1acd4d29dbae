/* DICOM rendering (see dicom.h and docs/dicom.md): stored values through
 * the Modality LUT, the VOI LUT or window, MONOCHROME1 inversion and pixel
 * padding to 8-bit grey, done as one lookup table over the stored range;
 * codestream size checks; the options parsers; the body-part table. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "io/dicom_codec.h"
#include "io/dicom_internal.h"

/* All frames of one file decoded at once may not exceed this (a 16384^2
 * 16-bit radiograph is 512 MiB). */
#define DICOM_MAX_DECODED_BYTES ((size_t)1 << 30)

/* ---------------------------------------------------------------- options */

int dicom_options_parse_window(const char *s, dicom_options *o, mskx_err *e) {
  if (!strcmp(s, "auto")) {
    o->window = DICOM_WINDOW_AUTO;
    return MSKX_OK;
  }
  if (!strcmp(s, "minmax")) {
    o->window = DICOM_WINDOW_MINMAX;
    return MSKX_OK;
  }
  char *end;
  double c = strtod(s, &end);
  if (end != s && *end == ',') {
    const char *w0 = end + 1;
    double w = strtod(w0, &end);
    if (end != w0 && !*end && isfinite(c) && isfinite(w) && w >= 1) {
      o->window = DICOM_WINDOW_FIXED;
      o->center = c;
      o->width = w;
      return MSKX_OK;
    }
  }
  return err_set(e, MSKX_EINVAL, "--dicom-window: expected auto, minmax or CENTER,WIDTH (width >= 1), got '%s'", s);
}

int dicom_options_parse_frames(const char *s, dicom_options *o, mskx_err *e) {
  if (!strcmp(s, "all")) o->frames = DICOM_FRAMES_ALL;
  else if (!strcmp(s, "first")) o->frames = DICOM_FRAMES_FIRST;
  else return err_set(e, MSKX_EINVAL, "--dicom-frames: expected all or first, got '%s'", s);
  return MSKX_OK;
}

/* Syntax checks for option tables (core/options.h opt_spec.check). */
int dicom_check_window(const char *s, mskx_err *e) {
  dicom_options o = {0};
  return dicom_options_parse_window(s, &o, e);
}

int dicom_check_frames(const char *s, mskx_err *e) {
  dicom_options o = {0};
  return dicom_options_parse_frames(s, &o, e);
}

/* ---------------------------------------------------------------- pipeline */

static unsigned lut_entry(const dicom_lut *l, int be, long idx) {
  if (idx < 0) idx = 0;
  if (idx >= l->entries) idx = l->entries - 1;
  const uint8_t *q = l->data + 2 * (size_t)idx;
  return be ? (unsigned)q[0] << 8 | q[1] : (unsigned)q[1] << 8 | q[0];
}

static double modality_value(const dicom_render_params *rp, int s) {
  if (rp->modality_lut.present) return lut_entry(&rp->modality_lut, rp->big_endian, (long)s - rp->modality_lut.first_mapped);
  return s * rp->slope + rp->intercept;
}

/* PS3.3 C.11.2.1.2 (LINEAR, LINEAR_EXACT) and C.11.2.1.3.1 (SIGMOID), to 0..255. */
static double window_value(double x, double c, double w, int fn) {
  if (fn == VOI_SIGMOID) return 255.0 / (1.0 + exp(-4.0 * (x - c) / w));
  if (fn == VOI_LINEAR_EXACT) {
    if (x <= c - w / 2) return 0;
    if (x > c + w / 2) return 255;
    return ((x - c) / w + 0.5) * 255.0;
  }
  if (x <= c - 0.5 - (w - 1) / 2) return 0;
  if (x > c - 0.5 + (w - 1) / 2) return 255;
  return ((x - (c - 0.5)) / (w - 1) + 0.5) * 255.0;
}

typedef struct mv_count {
  double v;
  uint64_t n;
} mv_count;
static int cmp_mv(const void *a, const void *b) {
  double x = ((const mv_count *)a)->v, y = ((const mv_count *)b)->v;
  return (x > y) - (x < y);
}

/* The window of auto (percentiles DICOM_AUTO_LO/HI, ranks rounded outwards)
 * or minmax mode, over the modality values of the non-padding pixels. */
static int fallback_window(const uint64_t *hist, int count, int smin, const dicom_render_params *rp, int minmax,
                           double *lo, double *hi) {
  mv_count *mv = malloc((size_t)count * sizeof *mv);
  if (!mv) return MSKX_ENOMEM;
  int k = 0;
  uint64_t total = 0;
  for (int i = 0; i < count; i++)
    if (hist[i]) mv[k++] = (mv_count){modality_value(rp, smin + i), hist[i]}, total += hist[i];
  *lo = *hi = 0;
  if (total) {
    qsort(mv, (size_t)k, sizeof *mv, cmp_mv);
    double plo = minmax ? 0 : DICOM_AUTO_LO, phi = minmax ? 1 : DICOM_AUTO_HI;
    uint64_t rlo = (uint64_t)floor(plo * (double)(total - 1)), rhi = (uint64_t)ceil(phi * (double)(total - 1));
    uint64_t cum = 0;
    int have_lo = 0;
    for (int i = 0; i < k; i++) {
      cum += mv[i].n; /* ranks [cum - n, cum) hold mv[i].v */
      if (!have_lo && rlo < cum) *lo = mv[i].v, have_lo = 1;
      if (rhi < cum) {
        *hi = mv[i].v;
        break;
      }
    }
  }
  free(mv);
  return MSKX_OK;
}

static inline uint8_t round8(double y) {
  if (!(y > 0)) return 0;
  if (y >= 255) return 255;
  return (uint8_t)(y + 0.5);
}

static inline unsigned raw_sample(const dicom_frame *f, size_t i) {
  if (f->bits_allocated == 8) return f->samples[i];
  uint16_t v;
  memcpy(&v, f->samples + 2 * i, 2);
  return f->swap16 ? (unsigned)(uint16_t)(v << 8 | v >> 8) : v;
}

static int render_mono(const dicom_frame *f, const dicom_meta *m, const dicom_render_params *rp,
                       const dicom_options *opt, uint8_t *out, const char *name, mskx_err *e) {
  int nbits = m->bits_stored, shift = m->high_bit + 1 - nbits, sign = m->pixel_rep == 1;
  unsigned mask = nbits >= 32 ? 0xFFFFFFFFu : (1u << nbits) - 1;
  int count = 1 << nbits, smin = sign ? -(1 << (nbits - 1)) : 0;
  size_t n = (size_t)f->rows * (size_t)f->cols;
  int pad_lo = rp->padding, pad_hi = rp->padding;
  if (rp->have_padding_limit) {
    pad_lo = rp->padding < rp->padding_limit ? rp->padding : rp->padding_limit;
    pad_hi = rp->padding < rp->padding_limit ? rp->padding_limit : rp->padding;
  }
  int *sv = malloc(n * sizeof *sv);
  uint8_t *lut = malloc((size_t)count);
  uint64_t *hist = calloc((size_t)count, sizeof *hist);
  if (!sv || !lut || !hist) {
    free(sv), free(lut), free(hist);
    return err_set(e, MSKX_ENOMEM, "%s: out of memory rendering a %dx%d frame", name, f->cols, f->rows);
  }
  unsigned high = f->bits_allocated == 16 ? 0xFFFFu & ~mask : 0xFFu & ~mask;
  for (size_t i = 0; i < n; i++) {
    unsigned raw = raw_sample(f, i);
    int s;
    if (!f->decoded) {
      unsigned v = (raw >> shift) & mask;
      s = sign && (v >> (nbits - 1)) ? (int)v - count : (int)v;
    } else {
      /* Signed output comes sign-extended to the container, or not at all. */
      if (!sign) s = (int)raw;
      else if (raw & high) s = f->bits_allocated == 16 ? (int)(int16_t)raw : (int)(int8_t)raw;
      else s = (raw >> (nbits - 1)) & 1 ? (int)raw - count : (int)raw;
      s = s < smin ? smin : s > smin + count - 1 ? smin + count - 1 : s;
    }
    sv[i] = s;
    if (!(rp->have_padding && s >= pad_lo && s <= pad_hi)) hist[s - smin]++;
  }
  int fixed = opt && opt->window == DICOM_WINDOW_FIXED;
  int use_lut = !fixed && rp->voi_lut.present;
  int use_win = !fixed && !use_lut && rp->have_window &&
                (rp->voi_function == VOI_LINEAR ? rp->window_width >= 1 : rp->window_width > 0);
  double lo = 0, hi = 0;
  int rc = MSKX_OK;
  if (!fixed && !use_lut && !use_win)
    rc = fallback_window(hist, count, smin, rp, opt && opt->window == DICOM_WINDOW_MINMAX, &lo, &hi);
  int invert = !strcmp(f->photometric, "MONOCHROME1");
  double voi_max = use_lut ? (double)((1u << rp->voi_lut.bits) - 1) : 1;
  for (int k = 0; !rc && k < count; k++) {
    double x = modality_value(rp, smin + k), y;
    if (fixed) y = window_value(x, opt->center, opt->width, VOI_LINEAR);
    else if (use_lut) y = lut_entry(&rp->voi_lut, rp->big_endian, (long)floor(x) - rp->voi_lut.first_mapped) * 255.0 / voi_max;
    else if (use_win) y = window_value(x, rp->window_center, rp->window_width, rp->voi_function);
    else y = hi > lo ? (x - lo) / (hi - lo) * 255.0 : (x > lo ? 255 : 0);
    uint8_t b = round8(y);
    lut[k] = invert ? (uint8_t)(255 - b) : b;
  }
  for (size_t i = 0; !rc && i < n; i++) {
    int s = sv[i];
    out[i] = rp->have_padding && s >= pad_lo && s <= pad_hi ? 0 : lut[s - smin];
  }
  free(sv), free(lut), free(hist);
  return rc ? err_set(e, rc, "%s: out of memory computing the window", name) : MSKX_OK;
}

/* Colour: BT.601 luma like the PNG and JPEG decoders; YBR already carries it as Y. */
static int render_colour(const dicom_frame *f, uint8_t *out, const char *name, mskx_err *e) {
  size_t n = (size_t)f->rows * (size_t)f->cols;
  const uint8_t *p = f->samples;
  const char *pi = f->photometric;
  if (!strcmp(pi, "YBR_FULL_422") && f->spp == 2) {
    /* Native 4:2:2: Y0 Y1 Cb Cr per pair of pixels along a row. */
    for (int y = 0; y < f->rows; y++)
      for (int x = 0; x < f->cols; x++)
        out[(size_t)y * f->cols + x] = p[(size_t)y * f->cols * 2 + (size_t)(x / 2) * 4 + (x & 1)];
    return MSKX_OK;
  }
  int ybr = !strcmp(pi, "YBR_FULL") || !strcmp(pi, "YBR_FULL_422");
  int rgb = !strcmp(pi, "RGB") || !strcmp(pi, "YBR_RCT") || !strcmp(pi, "YBR_ICT"); /* J2K decoders undo the transform */
  if ((!ybr && !rgb) || f->spp != 3)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: photometric interpretation %s is not supported", name, pi);
  for (size_t i = 0; i < n; i++) {
    unsigned a, b, c;
    if (f->planar) a = p[i], b = p[n + i], c = p[2 * n + i];
    else a = p[3 * i], b = p[3 * i + 1], c = p[3 * i + 2];
    out[i] = ybr ? (uint8_t)a : (uint8_t)((299u * a + 587u * b + 114u * c + 500u) / 1000u);
  }
  return MSKX_OK;
}

int dicom_render_frame(const dicom_frame *f, const dicom_meta *m, const dicom_render_params *rp,
                       const dicom_options *opt, uint8_t *out, const char *name, mskx_err *e) {
  if (!strcmp(f->photometric, "MONOCHROME1") || !strcmp(f->photometric, "MONOCHROME2")) {
    if (f->spp != 1) return err_set(e, MSKX_EFORMAT, "%s: monochrome pixel data with %d samples", name, f->spp);
    return render_mono(f, m, rp, opt, out, name, e);
  }
  if (f->bits_allocated != 8) return err_set(e, MSKX_EUNSUPPORTED, "%s: colour images must have 8 bits per sample", name);
  return render_colour(f, out, name, e);
}

/* ---------------------------------------------------------------- codestream checks */

static unsigned be16(const uint8_t *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const uint8_t *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

static int size_mismatch(const char *name, const char *what, uint32_t w, uint32_t h, unsigned c, const dicom_meta *m,
                         mskx_err *e) {
  return err_set(e, MSKX_EFORMAT, "%s: %s codestream declares %ux%u with %u components, the data set %dx%d with %d", name,
                 what, w, h, c, m->cols, m->rows, m->samples);
}

/* JPEG and JPEG-LS: every marker segment from SOI to the first SOS. GDCM
 * (Debian builds keep assertions) aborts the process when libjpeg warns
 * while reading the header (gdcmJPEGBITSCodec.hxx, DecodeByStreams), so the
 * header is refused here for what makes libjpeg warn there: bytes between
 * markers, a header cut short, a JFIF major version other than 1, an Adobe
 * transform other than 0..2; and a frame size other than the data set's. */
static int check_jpeg(const uint8_t *p, size_t n, const dicom_meta *m, int *precision, const char *name, mskx_err *e) {
  size_t pos = 2;
  int have_sof = 0;
  while (pos + 2 <= n) {
    if (p[pos] != 0xFF) return err_set(e, MSKX_EFORMAT, "%s: JPEG header has stray bytes between markers", name);
    unsigned mk = p[pos + 1];
    if (mk == 0xFF) { pos++; continue; }
    if (mk == 0x01 || (mk >= 0xD0 && mk <= 0xD7)) { pos += 2; continue; }
    if (mk == 0xD8 || mk == 0xD9 || mk == 0x00) break;
    if (pos + 4 > n) break;
    size_t L = be16(p + pos + 2);
    if (L < 2 || L > n - pos - 2) break;
    const uint8_t *q = p + pos + 4;
    size_t ql = L - 2;
    int sof = (mk >= 0xC0 && mk <= 0xCF && mk != 0xC4 && mk != 0xC8 && mk != 0xCC) || mk == 0xF7;
    if (sof) {
      if (ql < 6) break;
      unsigned h = be16(q + 1), w = be16(q + 3), c = q[5];
      if ((int)h != m->rows || (int)w != m->cols || (int)c != m->samples)
        return size_mismatch(name, mk == 0xF7 ? "JPEG-LS" : "JPEG", w, h, c, m, e);
      /* Precisions the processes allow (ITU T.81 B.2.2, T.87): others make
       * GDCM retry with a decoder it cannot create and crash. */
      int lossless = mk == 0xC3 || mk == 0xC7 || mk == 0xCB || mk == 0xCF || mk == 0xF7;
      int ok = mk == 0xC0 ? q[0] == 8 : lossless ? q[0] >= 2 && q[0] <= 16 : q[0] == 8 || q[0] == 12;
      if (!ok) return err_set(e, MSKX_EFORMAT, "%s: JPEG frame header declares an invalid precision of %u bits", name, q[0]);
      if (precision && !*precision) *precision = q[0];
      have_sof = 1;
    } else if (mk == 0xE0 && ql >= 6 && !memcmp(q, "JFIF\0", 5) && q[5] != 1) {
      return err_set(e, MSKX_EFORMAT, "%s: JPEG has an unknown JFIF version", name);
    } else if (mk == 0xEE && ql >= 12 && !memcmp(q, "Adobe", 5) && q[11] > 2) {
      return err_set(e, MSKX_EFORMAT, "%s: JPEG has an unknown Adobe colour transform", name);
    } else if (mk == 0xDA) {
      if (have_sof) return MSKX_OK;
      break;
    }
    pos += 2 + L;
  }
  return err_set(e, MSKX_EFORMAT, "%s: JPEG header is incomplete or has no frame header before its data", name);
}

static int check_j2k_siz(const uint8_t *p, size_t n, const dicom_meta *m, const char *name, mskx_err *e) {
  /* SOC, then SIZ: Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz */
  if (n < 4 + 40 || be16(p + 2) != 0xFF51) return err_set(e, MSKX_EFORMAT, "%s: JPEG 2000 codestream has no SIZ marker", name);
  const uint8_t *q = p + 4;
  uint32_t xs = be32(q + 4), ys = be32(q + 8), xo = be32(q + 12), yo = be32(q + 16);
  unsigned c = be16(q + 36);
  uint32_t w = xs > xo ? xs - xo : 0, h = ys > yo ? ys - yo : 0;
  if ((int64_t)w != m->cols || (int64_t)h != m->rows || (int)c != m->samples)
    return size_mismatch(name, "JPEG 2000", w, h, c, m, e);
  return MSKX_OK;
}

static int check_j2k(const uint8_t *p, size_t n, const dicom_meta *m, const char *name, mskx_err *e) {
  if (n >= 2 && p[0] == 0xFF && p[1] == 0x4F) return check_j2k_siz(p, n, m, name, e);
  /* JP2 file format: boxes up to the contiguous codestream box. */
  size_t pos = 0;
  while (n - pos >= 8) {
    uint64_t L = be32(p + pos), hdr = 8;
    if (L == 1) {
      if (n - pos < 16) break;
      L = (uint64_t)be32(p + pos + 8) << 32 | be32(p + pos + 12);
      hdr = 16;
    } else if (L == 0) {
      L = n - pos;
    }
    if (L < hdr || L > n - pos) break;
    if (!memcmp(p + pos + 4, "jp2c", 4)) return check_j2k_siz(p + pos + hdr, (size_t)(L - hdr), m, name, e);
    pos += (size_t)L;
  }
  return err_set(e, MSKX_EFORMAT, "%s: JPEG 2000 data has no codestream", name);
}

/* RLE (PS3.5 G.3.1): a 64-byte header of segment count and offsets. */
static int check_rle(const uint8_t *p, size_t n, const dicom_meta *m, const char *name, mskx_err *e) {
  if (n < 64) return err_set(e, MSKX_EFORMAT, "%s: RLE fragment shorter than its header", name);
  uint32_t segs = (uint32_t)p[3] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[1] << 8 | p[0];
  uint32_t want = (uint32_t)(m->samples * (m->bits_allocated / 8));
  if (segs != want) return err_set(e, MSKX_EFORMAT, "%s: RLE header has %u segments, the data set needs %u", name, segs, want);
  uint32_t prev = 63;
  for (uint32_t i = 0; i < segs; i++) {
    const uint8_t *q = p + 4 + 4 * i;
    uint32_t off = (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0];
    if (off <= prev || off >= n) return err_set(e, MSKX_EFORMAT, "%s: RLE segment offsets are out of order or past the fragment", name);
    prev = off;
  }
  return MSKX_OK;
}

int dicom_check_fragment(int kind, const uint8_t *p, size_t n, const dicom_meta *m, int *jpeg_precision,
                         const char *name, mskx_err *e) {
  if (kind == TS_RLE) return check_rle(p, n, m, name, e);
  if ((kind == TS_JPEG || kind == TS_JPEG_LS) && n >= 2 && p[0] == 0xFF && p[1] == 0xD8) return check_jpeg(p, n, m, jpeg_precision, name, e);
  if (kind == TS_J2K && n >= 12 &&
      ((p[0] == 0xFF && p[1] == 0x4F) || (!memcmp(p, "\0\0\0\x0cjP  ", 8))))
    return check_j2k(p, n, m, name, e);
  return MSKX_OK;
}

/* ---------------------------------------------------------------- decoding */

/* Decodes `count` frames from frame *first. With one fragment per frame only
 * those frames' fragments reach the codec (*first becomes 0: the output
 * starts there); otherwise every frame is decoded and *first is kept. */
static int decode_encapsulated(const dicom_scan *s, const char *name, int *first, int count, dicom_codec_out *co,
                               mskx_err *e) {
  const dicom_meta *m = &s->meta;
  int f0 = 0, n = s->n_frags, frames = m->frames;
  if (s->n_frags == m->frames && count < m->frames) {
    f0 = *first, n = count, frames = count;
    *first = 0;
  }
  if (s->ts->kind == TS_RLE && s->n_frags != m->frames)
    return err_set(e, MSKX_EFORMAT, "%s: RLE needs one fragment per frame (%d fragments, %d frames)", name, s->n_frags, m->frames);
  const uint8_t **frag = malloc((size_t)n * sizeof *frag);
  if (!frag) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = MSKX_OK, precision = 0;
  for (int i = 0; !rc && i < n; i++) {
    frag[i] = s->data + s->frag_off[f0 + i];
    rc = dicom_check_fragment(s->ts->kind, frag[i], s->frag_len[f0 + i], m, &precision, name, e);
    /* GDCM's multi-frame JPEG-LS path asserts (aborts) on a fragment with no
     * 0xD9 byte (gdcmJPEGLSCodec.cxx); a frame without its EOI is corrupt anyway. */
    if (!rc && s->ts->kind == TS_JPEG_LS && frames > 1 && !memchr(frag[i], 0xD9, s->frag_len[f0 + i]))
      rc = err_set(e, MSKX_EFORMAT, "%s: JPEG-LS frame %d has no end-of-image marker", name, f0 + i + 1);
  }
  dicom_codec_in in = {s->ts->uid, m->photometric, m->rows, m->cols, frames, m->samples, m->bits_allocated,
                       m->bits_stored, m->high_bit, m->pixel_rep, m->planar,
                       s->data + s->bot_off, frames == m->frames ? s->bot_len : 0, n, frag, s->frag_len + f0,
                       DICOM_MAX_DECODED_BYTES, precision};
  if (!rc) rc = dicom_codec_decode(&in, name, co, e);
  free(frag);
  return rc;
}

/* What decoding frames [first, first + count) holds besides the file and the
 * 8-bit output: the inflated data set, and for encapsulated data GDCM's copy
 * of the fragments it is given, its decoded samples and the codec's own
 * output stream (a second copy of them); for monochrome frames the
 * renderer's stored values (an int per pixel), LUT and histogram. */
static uint64_t decode_bytes(const dicom_scan *s, int count, uint64_t frame_bytes) {
  const dicom_meta *m = &s->meta;
  uint64_t c = s->inflated ? (uint64_t)s->data_len : 0;
  if (s->encapsulated) {
    int one_each = s->n_frags == m->frames && count < m->frames;
    for (int i = 0; i < s->n_frags; i++) c += s->frag_len[i];
    c += 2 * frame_bytes * (uint64_t)(one_each ? count : m->frames);
  }
  if (m->samples == 1) {
    uint64_t values = (uint64_t)1 << (m->bits_stored > 16 ? 16 : m->bits_stored);
    c += (uint64_t)m->rows * (uint64_t)m->cols * sizeof(int) + values * (1 + sizeof(uint64_t));
  }
  return c;
}

static int budget_take(const image_limits *lim, uint64_t bytes, const char *name, mskx_err *e) {
  return lim && lim->budget ? mem_budget_take(lim->budget, bytes, name, e) : MSKX_OK;
}

/* The core of dicom_decode and dicom_stream. With sink: frame (0-based; -1:
 * the file's one image, see dicom_stream) is rendered and its rows go to the
 * sink. Else every frame (the first with DICOM_FRAMES_FIRST) lands in out. extra (bytes the caller holds for this file)
 * is charged to lim->budget with everything decoding holds. */
static int decode_run(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, uint64_t extra,
                      int frame, const image_sink *sink, dicom_image *out, mskx_err *e) {
  if (!name) name = "DICOM file";
  dicom_options opt = {0};
  if (lim) opt = lim->dicom;
  uint64_t max_px = lim && lim->max_pixels ? lim->max_pixels : IMAGE_DEFAULT_MAX_PIXELS;
  dicom_scan s;
  int rc = dicom_scan_parse(buf, len, name, &s, e);
  if (rc) return rc;
  dicom_meta *m = &s.meta;
  uint64_t px = (uint64_t)m->rows * (uint64_t)m->cols;
  int first = 0, count = opt.frames == DICOM_FRAMES_FIRST ? 1 : m->frames;
  if (sink) first = frame < 0 ? 0 : frame, count = 1;
  uint64_t bytes_per_sample = (uint64_t)m->bits_allocated / 8;
  int packed422 = !s.encapsulated && !strcmp(m->photometric, "YBR_FULL_422");
  uint64_t frame_bytes = px * (packed422 ? 2 : (uint64_t)m->samples) * bytes_per_sample;
  if (px > max_px)
    rc = err_set(e, MSKX_ELIMIT, "%s: declares %dx%d pixels, above the limit of %llu", name, m->cols, m->rows,
                 (unsigned long long)max_px);
  else if (frame_bytes * (uint64_t)m->frames > DICOM_MAX_DECODED_BYTES)
    rc = err_set(e, MSKX_ELIMIT, "%s: %d frames of %dx%d decode to more than %zu MiB", name, m->frames, m->cols, m->rows,
                 DICOM_MAX_DECODED_BYTES >> 20);
  else if (!s.encapsulated && s.pixel_len < frame_bytes * (uint64_t)m->frames)
    rc = err_set(e, MSKX_EFORMAT, "%s: pixel data holds %zu bytes, the header declares %llu", name, s.pixel_len,
                 (unsigned long long)(frame_bytes * (uint64_t)m->frames));
  else if (sink && frame < 0 && m->frames > 1 && opt.frames != DICOM_FRAMES_FIRST)
    rc = err_set(e, MSKX_EUNSUPPORTED,
                 "%s: multi-frame DICOM (%d frames) where one image is expected; use --dicom-frames first", name,
                 m->frames);
  else if (first >= m->frames)
    rc = err_set(e, MSKX_EINVAL, "%s: has %d frame%s, no frame %d", name, m->frames, m->frames == 1 ? "" : "s", first + 1);
  uint64_t cost = 0;
  if (!rc) {
    cost = extra + decode_bytes(&s, count, frame_bytes) + px * (uint64_t)(sink ? 1 : count) +
           (sink && sink->cost ? sink->cost(sink->ctx, m->cols, m->rows) : 0);
    rc = budget_take(lim, cost, name, e);
    if (rc) cost = 0;
  }
  dicom_codec_out co = {0};
  dicom_frame f = {NULL, m->rows, m->cols, packed422 ? 2 : m->samples, m->bits_allocated, m->planar, 0, 0, m->photometric};
  int at = first;  /* index of frame `first` in f.samples */
  if (!rc && s.encapsulated) {
    rc = decode_encapsulated(&s, name, &at, count, &co, e);
    if (!rc) {
      f.samples = co.buf;
      f.bits_allocated = co.bits_allocated;
      f.spp = co.samples;
      f.planar = co.planar;
      f.photometric = co.photometric;
      f.decoded = 1;
      frame_bytes = px * (uint64_t)co.samples * (uint64_t)(co.bits_allocated / 8);
      if (co.len < frame_bytes * (uint64_t)(at + count))
        rc = err_set(e, MSKX_EFORMAT, "%s: decoder returned %zu bytes for %d frames of %llu", name, co.len, at + count,
                     (unsigned long long)frame_bytes);
    }
  } else if (!rc) {
    f.samples = s.data + s.pixel_off;
    uint16_t one = 1;
    int host_le = *(uint8_t *)&one == 1;
    f.swap16 = s.rp.big_endian == host_le;
  }
  if (!rc && out && !(out->frames = calloc((size_t)count, sizeof *out->frames))) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < count; i++) {
    gray_image g = {m->cols, m->rows, malloc((size_t)px)};
    if (!g.px) {
      rc = err_set(e, MSKX_ENOMEM, "%s: cannot allocate a %dx%d image", name, m->cols, m->rows);
      break;
    }
    dicom_frame fi = f;
    fi.samples = f.samples + (size_t)frame_bytes * (size_t)(at + i);
    rc = dicom_render_frame(&fi, m, &s.rp, &opt, g.px, name, e);
    if (!rc && sink) {
      /* The samples are released before the rows go out: the sink's work
       * (resizing) then runs with only the 8-bit frame held. */
      free(co.buf);
      co.buf = NULL;
      rc = sink->begin(sink->ctx, g.w, g.h, e);
      for (int y = 0; !rc && y < g.h; y++) sink->row(sink->ctx, g.px + (size_t)y * g.w);
    }
    if (out) {
      out->frames[i] = g;
      out->n_frames = i + 1;
    } else {
      gray_image_free(&g);
    }
  }
  free(co.buf);
  if (out) out->meta = s.meta;
  dicom_scan_free(&s);
  if (cost && lim && lim->budget) mem_budget_give(lim->budget, cost);
  if (rc && out) dicom_image_free(out);
  return rc;
}

int dicom_decode(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, dicom_image *out,
                 mskx_err *e) {
  memset(out, 0, sizeof *out);
  return decode_run(buf, len, name, lim, 0, 0, NULL, out, e);
}

void dicom_image_free(dicom_image *img) {
  if (!img) return;
  for (int i = 0; img->frames && i < img->n_frames; i++) gray_image_free(&img->frames[i]);
  free(img->frames);
  img->frames = NULL;
  img->n_frames = 0;
}

int dicom_stream(const uint8_t *buf, size_t len, const char *name, const image_limits *lim, uint64_t extra, int frame,
                 const image_sink *sink, mskx_err *e) {
  return decode_run(buf, len, name, lim, extra, frame - 1, sink, NULL, e);
}

/* ---------------------------------------------------------------- body parts */

/* Words (after upper-casing, non-alphanumerics as spaces) that name one MURA
 * part; a text naming two parts names none. Kept in docs/dicom.md. */
static const struct {
  const char *part, *words[6];
} part_words[] = {
    {"XR_ELBOW", {"ELBOW", "OLECRANON", NULL}},
    {"XR_FINGER", {"FINGER", "FINGERS", "THUMB", "DIGIT", "PHALANX", NULL}},
    {"XR_FOREARM", {"FOREARM", "RADIUS ULNA", "ULNA", NULL}},
    {"XR_HAND", {"HAND", "HANDS", "METACARPAL", NULL}},
    {"XR_HUMERUS", {"HUMERUS", "UPPER ARM", NULL}},
    {"XR_SHOULDER", {"SHOULDER", "SCAPULA", NULL}},
    {"XR_WRIST", {"WRIST", "CARPUS", "SCAPHOID", NULL}},
};

/* Returns the part index the text names, -1 for none, -2 for several. */
static int part_of_text(const char *s) {
  char t[2 * DICOM_LO_MAX + 4];
  size_t k = 0;
  t[k++] = ' ';
  for (; *s && k + 2 < sizeof t; s++) {
    char c = isalnum((unsigned char)*s) ? (char)toupper((unsigned char)*s) : ' ';
    if (c == ' ' && t[k - 1] == ' ') continue;
    t[k++] = c;
  }
  if (t[k - 1] != ' ') t[k++] = ' ';
  t[k] = 0;
  int found = -1;
  for (int p = 0; p < (int)(sizeof part_words / sizeof part_words[0]); p++)
    for (int w = 0; part_words[p].words[w]; w++) {
      char key[40];
      snprintf(key, sizeof key, " %s ", part_words[p].words[w]);
      if (strstr(t, key)) {
        if (found >= 0 && found != p) return -2;
        found = p;
      }
    }
  return found;
}

int dicom_mura_part(const dicom_meta *m, char *out, size_t n) {
  const char *src[3] = {m->body_part, m->study_desc, m->series_desc};
  if (n) out[0] = 0;
  for (int i = 0; i < 3; i++) {
    int p = part_of_text(src[i]);
    if (p >= 0) {
      snprintf(out, n, "%s", part_words[p].part);
      return 1;
    }
  }
  return 0;
}

/* ---------------------------------------------------------------- studies */

int dicom_group_by_study(const char *const *paths, int n, int *group, int *n_groups, char (*uids)[DICOM_UI_MAX + 1],
                         mskx_err *e) {
  *n_groups = 0;
  for (int i = 0; i < n; i++) {
    unsigned char *buf = NULL;
    size_t len = 0;
    char uid[DICOM_UI_MAX + 1] = "";
    int rc = file_read_all(paths[i], IMAGE_MAX_FILE_BYTES, &buf, &len, e);
    if (rc) return rc;
    if (dicom_is_dicom(buf, len)) {
      dicom_meta m;
      rc = dicom_scan_meta(buf, len, paths[i], &m, e);
      if (!rc) snprintf(uid, sizeof uid, "%s", m.study_uid);
    }
    free(buf);
    if (rc) return rc;
    int g = 0;
    while (g < *n_groups && strcmp(uids[g], uid)) g++;
    if (g == *n_groups) snprintf(uids[(*n_groups)++], sizeof uids[0], "%s", uid);
    group[i] = g;
  }
  return MSKX_OK;
}
