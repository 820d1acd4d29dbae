/* DICOM header scanner (see dicom_internal.h): walks a Part 10 file element
 * by element without recursion, with every length checked against its
 * enclosing item and the buffer, sequences nested at most DICOM_MAX_DEPTH
 * deep, and only the attributes the pipeline and the SR writer need kept.
 * Defined-length sequences that hold nothing we read are skipped whole. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include "core/error.h"
#include "io/dicom_internal.h"

/* A deflated data set may not inflate beyond this (the file cap of the image decoders). */
#define DICOM_MAX_INFLATED ((size_t)512 << 20)
/* Fragments in one encapsulated pixel data element. */
#define DICOM_MAX_FRAGMENTS (1 << 20)
#define UNDEFINED_LENGTH 0xFFFFFFFFu

#define TAG(g, e) (((uint32_t)(g) << 16) | (uint32_t)(e))
#define TAG_PIXEL_DATA TAG(0x7FE0, 0x0010)
#define TAG_MODALITY_LUT_SEQ TAG(0x0028, 0x3000)
#define TAG_VOI_LUT_SEQ TAG(0x0028, 0x3010)

static const dicom_ts ts_table[] = {
    {"1.2.840.10008.1.2", "Implicit VR Little Endian", TS_IMPLICIT_LE},
    {"1.2.840.10008.1.2.1", "Explicit VR Little Endian", TS_EXPLICIT_LE},
    {"1.2.840.10008.1.2.1.99", "Deflated Explicit VR Little Endian", TS_DEFLATED},
    {"1.2.840.10008.1.2.2", "Explicit VR Big Endian", TS_EXPLICIT_BE},
    {"1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)", TS_JPEG},
    {"1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)", TS_JPEG},
    {"1.2.840.10008.1.2.4.57", "JPEG Lossless (Process 14)", TS_JPEG},
    {"1.2.840.10008.1.2.4.70", "JPEG Lossless SV1", TS_JPEG},
    {"1.2.840.10008.1.2.4.80", "JPEG-LS Lossless", TS_JPEG_LS},
    {"1.2.840.10008.1.2.4.81", "JPEG-LS Near-Lossless", TS_JPEG_LS},
    {"1.2.840.10008.1.2.4.90", "JPEG 2000 Lossless", TS_J2K},
    {"1.2.840.10008.1.2.4.91", "JPEG 2000", TS_J2K},
    {"1.2.840.10008.1.2.5", "RLE Lossless", TS_RLE},
};

const dicom_ts *dicom_ts_find(const char *uid) {
  for (size_t i = 0; i < sizeof ts_table / sizeof ts_table[0]; i++)
    if (!strcmp(uid, ts_table[i].uid)) return &ts_table[i];
  return NULL;
}

/* ---------------------------------------------------------------- reading */

typedef struct reader {
  const uint8_t *p;
  size_t n;
  int explicit_vr, be;
} reader;

static unsigned rd16(const reader *r, size_t off) {
  const uint8_t *q = r->p + off;
  return r->be ? (unsigned)q[0] << 8 | q[1] : (unsigned)q[1] << 8 | q[0];
}
static uint32_t rd32(const reader *r, size_t off) {
  const uint8_t *q = r->p + off;
  return r->be ? (uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3]
               : (uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0];
}

/* VRs whose explicit header has 2 reserved bytes and a 32-bit length (PS3.5 7.1.2). */
static int long_vr(const uint8_t *v) {
  static const char *const l[] = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"};
  for (size_t i = 0; i < sizeof l / sizeof l[0]; i++)
    if (v[0] == l[i][0] && v[1] == l[i][1]) return 1;
  return 0;
}
static int vr_chars_ok(const uint8_t *v) { return isupper(v[0]) && isupper(v[1]); }

/* Copies a string value: first of several values (backslash-separated),
 * leading and trailing spaces and NULs removed, cut to n-1 bytes. */
static void copy_str(char *out, size_t n, const uint8_t *v, size_t len) {
  size_t a = 0, b = len;
  for (size_t i = 0; i < len; i++)
    if (v[i] == '\\') { b = i; break; }
  while (a < b && (v[a] == ' ' || v[a] == 0)) a++;
  while (b > a && (v[b - 1] == ' ' || v[b - 1] == 0)) b--;
  size_t k = b - a < n - 1 ? b - a : n - 1;
  memcpy(out, v + a, k);
  out[k] = 0;
}

/* Attribute descriptions for messages (never values: those may identify a patient). */
static int number_value(const uint8_t *v, size_t len, const char *what, const char *name, double *out, mskx_err *e) {
  char tmp[80];
  copy_str(tmp, sizeof tmp, v, len);
  char *end;
  double d = strtod(tmp, &end);
  if (!tmp[0] || *end || d != d)
    return err_set(e, MSKX_EFORMAT, "%s: %s is not a number", name, what);
  *out = d;
  return MSKX_OK;
}

/* ---------------------------------------------------------------- attributes */

typedef struct str_attr {
  uint32_t tag;
  size_t off, size; /* field in dicom_meta */
} str_attr;

#define STR(g, e, field) {TAG(g, e), offsetof(dicom_meta, field), sizeof(((dicom_meta *)0)->field)}
static const str_attr str_attrs[] = {
    STR(0x0008, 0x0005, charset),
    STR(0x0008, 0x0016, sop_class_uid),     STR(0x0008, 0x0018, sop_instance_uid),
    STR(0x0008, 0x0020, study_date),        STR(0x0008, 0x0030, study_time),
    STR(0x0008, 0x0050, accession),         STR(0x0008, 0x0060, modality),
    STR(0x0008, 0x0090, referring_physician), STR(0x0008, 0x1030, study_desc),
    STR(0x0008, 0x103E, series_desc),       STR(0x0010, 0x0010, patient_name),
    STR(0x0010, 0x0020, patient_id),        STR(0x0010, 0x0030, patient_birth_date),
    STR(0x0010, 0x0040, patient_sex),       STR(0x0018, 0x0015, body_part),
    STR(0x0020, 0x000D, study_uid),         STR(0x0020, 0x000E, series_uid),
    STR(0x0020, 0x0010, study_id),          STR(0x0020, 0x0060, laterality),
    STR(0x0028, 0x0004, photometric),
};

typedef struct us_attr {
  uint32_t tag;
  const char *what;
  size_t off; /* int field in dicom_meta */
} us_attr;
static const us_attr us_attrs[] = {
    {TAG(0x0028, 0x0002), "Samples per Pixel", offsetof(dicom_meta, samples)},
    {TAG(0x0028, 0x0006), "Planar Configuration", offsetof(dicom_meta, planar)},
    {TAG(0x0028, 0x0010), "Rows", offsetof(dicom_meta, rows)},
    {TAG(0x0028, 0x0011), "Columns", offsetof(dicom_meta, cols)},
    {TAG(0x0028, 0x0100), "Bits Allocated", offsetof(dicom_meta, bits_allocated)},
    {TAG(0x0028, 0x0101), "Bits Stored", offsetof(dicom_meta, bits_stored)},
    {TAG(0x0028, 0x0102), "High Bit", offsetof(dicom_meta, high_bit)},
    {TAG(0x0028, 0x0103), "Pixel Representation", offsetof(dicom_meta, pixel_rep)},
};

/* Raw 16-bit values whose sign depends on Pixel Representation, resolved after the scan. */
typedef struct scan_state {
  int have_padding, have_padding_limit, have_frames;
  unsigned padding_raw, padding_limit_raw;
  unsigned lut_desc[2][3];
  int have_desc[2];
  int have_center, have_width;
} scan_state;

static int want_us(const reader *r, const uint8_t *v, size_t len, const char *what, const char *name, unsigned *out,
                   mskx_err *e) {
  if (len != 2) return err_set(e, MSKX_EFORMAT, "%s: %s has length %zu, expected 2 (US)", name, what, len);
  *out = rd16(&(reader){v, 2, r->explicit_vr, r->be}, 0);
  return MSKX_OK;
}

static int record_top(const reader *r, uint32_t tag, const uint8_t *v, size_t len, dicom_scan *s, scan_state *st,
                      const char *name, mskx_err *e) {
  dicom_meta *m = &s->meta;
  for (size_t i = 0; i < sizeof str_attrs / sizeof str_attrs[0]; i++)
    if (str_attrs[i].tag == tag) {
      copy_str((char *)m + str_attrs[i].off, str_attrs[i].size, v, len);
      return MSKX_OK;
    }
  for (size_t i = 0; i < sizeof us_attrs / sizeof us_attrs[0]; i++)
    if (us_attrs[i].tag == tag) {
      unsigned u = 0;
      int rc = want_us(r, v, len, us_attrs[i].what, name, &u, e);
      if (!rc) *(int *)(void *)((char *)m + us_attrs[i].off) = (int)u;
      return rc;
    }
  double d = 0;
  int rc = MSKX_OK;
  char tmp[32];
  switch (tag) {
    case TAG(0x0028, 0x0008):
      rc = number_value(v, len, "Number of Frames", name, &d, e);
      if (!rc && (d < 1 || d > DICOM_MAX_FRAMES || d != (int)d))
        rc = err_set(e, MSKX_ELIMIT, "%s: Number of Frames must be 1..%d", name, DICOM_MAX_FRAMES);
      if (!rc) m->frames = (int)d, st->have_frames = 1;
      break;
    case TAG(0x0028, 0x0120):
      rc = want_us(r, v, len, "Pixel Padding Value", name, &st->padding_raw, e);
      st->have_padding = !rc;
      break;
    case TAG(0x0028, 0x0121):
      rc = want_us(r, v, len, "Pixel Padding Range Limit", name, &st->padding_limit_raw, e);
      st->have_padding_limit = !rc;
      break;
    case TAG(0x0028, 0x1050):
      if (len) rc = number_value(v, len, "Window Center", name, &s->rp.window_center, e), st->have_center = !rc;
      break;
    case TAG(0x0028, 0x1051):
      if (len) rc = number_value(v, len, "Window Width", name, &s->rp.window_width, e), st->have_width = !rc;
      break;
    case TAG(0x0028, 0x1052): if (len) rc = number_value(v, len, "Rescale Intercept", name, &s->rp.intercept, e); break;
    case TAG(0x0028, 0x1053): if (len) rc = number_value(v, len, "Rescale Slope", name, &s->rp.slope, e); break;
    case TAG(0x0028, 0x1056):
      copy_str(tmp, sizeof tmp, v, len);
      if (!strcmp(tmp, "LINEAR_EXACT")) s->rp.voi_function = VOI_LINEAR_EXACT;
      else if (!strcmp(tmp, "SIGMOID")) s->rp.voi_function = VOI_SIGMOID;
      else s->rp.voi_function = VOI_LINEAR; /* LINEAR, empty or unknown: the default function */
      break;
    case TAG(0x7FE0, 0x0008): case TAG(0x7FE0, 0x0009):
      rc = err_set(e, MSKX_EUNSUPPORTED, "%s: float pixel data is not supported", name);
      break;
    default: break;
  }
  return rc;
}

/* An element in the first item of the Modality (which = 0) or VOI (1) LUT Sequence. */
static int record_lut(const reader *r, int which, uint32_t tag, const uint8_t *v, size_t len, dicom_scan *s,
                      scan_state *st, const char *name, mskx_err *e) {
  dicom_lut *l = which ? &s->rp.voi_lut : &s->rp.modality_lut;
  if (tag == TAG(0x0028, 0x3002)) {
    if (len != 6) return err_set(e, MSKX_EFORMAT, "%s: LUT Descriptor has length %zu, expected 6", name, len);
    reader q = {v, 6, r->explicit_vr, r->be};
    for (int i = 0; i < 3; i++) st->lut_desc[which][i] = rd16(&q, 2 * (size_t)i);
    st->have_desc[which] = 1;
  } else if (tag == TAG(0x0028, 0x3006)) {
    l->data = v;
    l->data_len = len;
  }
  return MSKX_OK;
}

/* ---------------------------------------------------------------- walking */

typedef struct container {
  size_t end;          /* defined length: offset just past the container */
  int undefined, is_item;
  uint32_t seq_tag;    /* for items: their sequence's tag */
  int n_items;         /* for sequences: items seen */
  int item_index;      /* for items: index in the sequence */
} container;

static int push(container *stk, int *depth, container c, const char *name, mskx_err *e) {
  if (*depth >= DICOM_MAX_DEPTH)
    return err_set(e, MSKX_ELIMIT, "%s: sequences nested deeper than %d levels", name, DICOM_MAX_DEPTH);
  stk[(*depth)++] = c;
  return MSKX_OK;
}

static int add_fragment(dicom_scan *s, size_t off, size_t len, int *cap, const char *name, mskx_err *e) {
  if (s->n_frags == *cap) {
    if (*cap >= DICOM_MAX_FRAGMENTS)
      return err_set(e, MSKX_ELIMIT, "%s: more than %d pixel data fragments", name, DICOM_MAX_FRAGMENTS);
    int nc = *cap ? 2 * *cap : 16;
    size_t *a = realloc(s->frag_off, (size_t)nc * sizeof *a);
    if (a) s->frag_off = a;
    size_t *b = a ? realloc(s->frag_len, (size_t)nc * sizeof *b) : NULL;
    if (b) s->frag_len = b;
    if (!a || !b) return err_set(e, MSKX_ENOMEM, "out of memory");
    *cap = nc;
  }
  s->frag_off[s->n_frags] = off;
  s->frag_len[s->n_frags++] = len;
  return MSKX_OK;
}

/* Items of an encapsulated pixel data element, from *pos to its sequence
 * delimiter; kept when record is set (the image's own pixel data). */
static int walk_fragments(const reader *r, size_t *pos, int record, dicom_scan *s, const char *name, mskx_err *e) {
  int cap = 0, first = 1;
  for (;;) {
    if (*pos + 8 > r->n) return err_set(e, MSKX_EFORMAT, "%s: truncated inside the pixel data", name);
    unsigned g = rd16(r, *pos), el = rd16(r, *pos + 2);
    uint32_t L = rd32(r, *pos + 4);
    *pos += 8;
    if (g == 0xFFFE && el == 0xE0DD) return MSKX_OK;
    if (g != 0xFFFE || el != 0xE000)
      return err_set(e, MSKX_EFORMAT, "%s: unexpected element (%04X,%04X) in encapsulated pixel data", name, g, el);
    if (L == UNDEFINED_LENGTH || L > r->n - *pos)
      return err_set(e, MSKX_EFORMAT, "%s: pixel data fragment of %u bytes runs past the end of the file", name, L);
    if (record && first) s->bot_off = *pos, s->bot_len = L;
    else if (record) {
      int rc = add_fragment(s, *pos, L, &cap, name, e);
      if (rc) return rc;
    }
    first = 0;
    *pos += L;
  }
}

/* Implicit VR: the few sequences whose contents we read must be known as SQ
 * even with a defined length (undefined-length elements are always SQ). */
static int implicit_is_sq(uint32_t tag) { return tag == TAG_MODALITY_LUT_SEQ || tag == TAG_VOI_LUT_SEQ; }

static int walk_dataset(const reader *r, size_t pos, dicom_scan *s, scan_state *st, const char *name, mskx_err *e) {
  container stk[DICOM_MAX_DEPTH];
  int depth = 0, rc;
  for (;;) {
    while (depth > 0 && !stk[depth - 1].undefined && pos == stk[depth - 1].end) depth--;
    size_t limit = r->n;
    for (int i = depth - 1; i >= 0; i--)
      if (!stk[i].undefined) { limit = stk[i].end; break; }
    if (pos > limit) return err_set(e, MSKX_EFORMAT, "%s: an element runs past the end of its item", name);
    if (pos == r->n) {
      if (depth) return err_set(e, MSKX_EFORMAT, "%s: file ends inside a sequence", name);
      return MSKX_OK;
    }
    if (r->n - pos < 8) return err_set(e, MSKX_EFORMAT, "%s: truncated element header at byte %zu", name, pos);
    unsigned g = rd16(r, pos), el = rd16(r, pos + 2);
    uint32_t tag = TAG(g, el);
    int in_seq = depth > 0 && !stk[depth - 1].is_item;
    if (g == 0xFFFE) {
      uint32_t L = rd32(r, pos + 4);
      pos += 8;
      if (el == 0xE000 && in_seq) {
        container c = {0, L == UNDEFINED_LENGTH, 1, stk[depth - 1].seq_tag, 0, stk[depth - 1].n_items++};
        if (!c.undefined) {
          if (L > limit - pos) return err_set(e, MSKX_EFORMAT, "%s: item of %u bytes runs past its sequence", name, L);
          c.end = pos + L;
        }
        if ((rc = push(stk, &depth, c, name, e))) return rc;
      } else if (el == 0xE00D && depth > 0 && stk[depth - 1].is_item && stk[depth - 1].undefined) {
        depth--;
      } else if (el == 0xE0DD && in_seq && stk[depth - 1].undefined) {
        depth--;
      } else {
        return err_set(e, MSKX_EFORMAT, "%s: misplaced item or delimiter (FFFE,%04X) at byte %zu", name, el, pos - 8);
      }
      continue;
    }
    if (in_seq) return err_set(e, MSKX_EFORMAT, "%s: element (%04X,%04X) outside an item in a sequence", name, g, el);
    uint32_t L;
    int is_sq;
    if (r->explicit_vr) {
      const uint8_t *vr = r->p + pos + 4;
      if (!vr_chars_ok(vr)) return err_set(e, MSKX_EFORMAT, "%s: element (%04X,%04X) has an invalid VR", name, g, el);
      if (long_vr(vr)) {
        if (r->n - pos < 12) return err_set(e, MSKX_EFORMAT, "%s: truncated element header at byte %zu", name, pos);
        L = rd32(r, pos + 8);
        pos += 12;
      } else {
        L = rd16(r, pos + 6);
        pos += 8;
      }
      is_sq = vr[0] == 'S' && vr[1] == 'Q';
      if (L == UNDEFINED_LENGTH && !is_sq && tag != TAG_PIXEL_DATA)
        return err_set(e, MSKX_EUNSUPPORTED, "%s: element (%04X,%04X) with VR %c%c has an undefined length", name, g,
                       el, vr[0], vr[1]);
    } else {
      L = rd32(r, pos + 4);
      pos += 8;
      is_sq = implicit_is_sq(tag) || (L == UNDEFINED_LENGTH && tag != TAG_PIXEL_DATA);
    }
    if (tag == TAG_PIXEL_DATA && L == UNDEFINED_LENGTH) {
      if ((rc = walk_fragments(r, &pos, depth == 0, s, name, e))) return rc;
      if (depth == 0) {
        s->have_pixels = s->encapsulated = 1;
        return MSKX_OK;
      }
      continue;
    }
    if (is_sq && L == UNDEFINED_LENGTH) {
      if ((rc = push(stk, &depth, (container){0, 1, 0, tag, 0, 0}, name, e))) return rc;
      continue;
    }
    if (L > limit - pos)
      return err_set(e, MSKX_EFORMAT, "%s: element (%04X,%04X) of %u bytes runs past the end of %s", name, g, el, L,
                     limit == r->n ? "the file" : "its item");
    if (is_sq && depth == 0 && (tag == TAG_MODALITY_LUT_SEQ || tag == TAG_VOI_LUT_SEQ)) {
      if ((rc = push(stk, &depth, (container){pos + L, 0, 0, tag, 0, 0}, name, e))) return rc;
      continue;
    }
    const uint8_t *v = r->p + pos;
    rc = MSKX_OK;
    if (depth == 0 && tag == TAG_PIXEL_DATA) {
      s->have_pixels = 1;
      s->pixel_off = pos;
      s->pixel_len = L;
      return MSKX_OK;
    }
    if (depth == 0) rc = record_top(r, tag, v, L, s, st, name, e);
    else if (depth == 2 && stk[1].item_index == 0 && stk[0].seq_tag == stk[1].seq_tag &&
             (stk[0].seq_tag == TAG_MODALITY_LUT_SEQ || stk[0].seq_tag == TAG_VOI_LUT_SEQ))
      rc = record_lut(r, stk[0].seq_tag == TAG_VOI_LUT_SEQ, tag, v, L, s, st, name, e);
    if (rc) return rc;
    pos += L;
  }
}

/* ---------------------------------------------------------------- meta and syntax */

static int looks_explicit(const uint8_t *p, size_t n) { return n >= 6 && vr_chars_ok(p + 4); }

int dicom_is_dicom(const uint8_t *buf, size_t len) {
  if (len >= 132 && !memcmp(buf + 128, "DICM", 4)) return 1;
  if (len < 8) return 0;
  unsigned g = (unsigned)buf[1] << 8 | buf[0];
  if (g != 0x0002 && g != 0x0008) return 0;
  if (looks_explicit(buf, len)) return 1;
  /* implicit VR: a plausible 32-bit length within the buffer */
  uint32_t L = (uint32_t)buf[7] << 24 | (uint32_t)buf[6] << 16 | (uint32_t)buf[5] << 8 | buf[4];
  return L < len;
}

static int inflate_dataset(const uint8_t *p, size_t n, uint8_t **out, size_t *out_len, const char *name, mskx_err *e) {
  z_stream z;
  memset(&z, 0, sizeof z);
  if (inflateInit2(&z, -15) != Z_OK) return err_set(e, MSKX_ENOMEM, "%s: cannot start inflating", name);
  size_t cap = n * 4 + 4096, used = 0;
  uint8_t *buf = NULL;
  int zr = Z_OK, rc = MSKX_OK;
  z.next_in = (unsigned char *)(uintptr_t)p;
  while (!rc && zr != Z_STREAM_END) {
    if (!buf || used == cap) {
      if (buf) cap *= 2;
      if (cap > DICOM_MAX_INFLATED) cap = DICOM_MAX_INFLATED;
      if (buf && used == cap) {
        rc = err_set(e, MSKX_ELIMIT, "%s: deflated data set inflates beyond %zu MiB", name, DICOM_MAX_INFLATED >> 20);
        break;
      }
      uint8_t *nb = realloc(buf, cap);
      if (!nb) {
        rc = err_set(e, MSKX_ENOMEM, "out of memory");
        break;
      }
      buf = nb;
    }
    size_t in_left = n - (size_t)(z.next_in - p);
    z.avail_in = in_left > UINT32_MAX ? UINT32_MAX : (uInt)in_left;
    z.next_out = buf + used;
    z.avail_out = cap - used > UINT32_MAX ? UINT32_MAX : (uInt)(cap - used);
    size_t before = z.avail_out;
    zr = inflate(&z, Z_NO_FLUSH);
    used += before - z.avail_out;
    if (zr == Z_BUF_ERROR && z.avail_in == 0 && z.avail_out) zr = Z_DATA_ERROR; /* input ended early */
    if (zr != Z_OK && zr != Z_STREAM_END && zr != Z_BUF_ERROR)
      rc = err_set(e, MSKX_EFORMAT, "%s: deflated data set is corrupt or truncated", name);
  }
  inflateEnd(&z);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  *out_len = used;
  return MSKX_OK;
}

/* File meta information (group 0002, always explicit VR little endian):
 * returns the offset of the data set and the transfer syntax UID. */
static int read_meta(const uint8_t *buf, size_t len, size_t start, size_t *ds, char *ts, size_t tsn, const char *name,
                     mskx_err *e) {
  reader r = {buf, len, 1, 0};
  size_t pos = start;
  ts[0] = 0;
  while (len - pos >= 8 && rd16(&r, pos) == 0x0002) {
    unsigned el = rd16(&r, pos + 2);
    const uint8_t *vr = buf + pos + 4;
    if (!vr_chars_ok(vr)) return err_set(e, MSKX_EFORMAT, "%s: file meta element (0002,%04X) has an invalid VR", name, el);
    uint32_t L;
    if (long_vr(vr)) {
      if (len - pos < 12) break;
      L = rd32(&r, pos + 8);
      pos += 12;
    } else {
      L = rd16(&r, pos + 6);
      pos += 8;
    }
    if (L > len - pos) return err_set(e, MSKX_EFORMAT, "%s: file meta element (0002,%04X) runs past the end of the file", name, el);
    if (el == 0x0010) copy_str(ts, tsn, buf + pos, L);
    pos += L;
  }
  *ds = pos;
  return MSKX_OK;
}

static int finish(dicom_scan *s, const scan_state *st, const char *name, mskx_err *e) {
  dicom_meta *m = &s->meta;
  if (!s->have_pixels) return err_set(e, MSKX_EFORMAT, "%s: no pixel data (not an image)", name);
  if (m->rows <= 0 || m->cols <= 0) return err_set(e, MSKX_EFORMAT, "%s: Rows and Columns are missing or zero", name);
  if (!st->have_frames) m->frames = 1;
  if (m->samples == 0) m->samples = 1;
  if (m->samples != 1 && m->samples != 3)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: %d samples per pixel (only 1 or 3)", name, m->samples);
  if (m->bits_allocated != 8 && m->bits_allocated != 16)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: %d bits allocated (only 8 or 16)", name, m->bits_allocated);
  if (m->bits_stored == 0) m->bits_stored = m->bits_allocated;
  if (m->bits_stored > m->bits_allocated)
    return err_set(e, MSKX_EFORMAT, "%s: Bits Stored %d exceeds Bits Allocated %d", name, m->bits_stored, m->bits_allocated);
  if (m->high_bit == 0 && m->bits_stored > 1) m->high_bit = m->bits_stored - 1;
  if (m->high_bit >= m->bits_allocated || m->high_bit < m->bits_stored - 1)
    return err_set(e, MSKX_EFORMAT, "%s: High Bit %d does not fit Bits Stored %d in Bits Allocated %d", name, m->high_bit,
                   m->bits_stored, m->bits_allocated);
  if (m->pixel_rep != 0 && m->pixel_rep != 1)
    return err_set(e, MSKX_EFORMAT, "%s: Pixel Representation %d is neither 0 nor 1", name, m->pixel_rep);
  if (m->samples == 1) m->planar = 0; /* meaningless for one sample; GDCM asserts on values other than 0 and 1 */
  else if (m->planar != 0 && m->planar != 1)
    return err_set(e, MSKX_EFORMAT, "%s: Planar Configuration %d is neither 0 nor 1", name, m->planar);
  if (!m->photometric[0]) strcpy(m->photometric, m->samples == 1 ? "MONOCHROME2" : "RGB");
  int mono = !strcmp(m->photometric, "MONOCHROME1") || !strcmp(m->photometric, "MONOCHROME2");
  if (mono != (m->samples == 1))
    return err_set(e, MSKX_EUNSUPPORTED, "%s: Photometric Interpretation %s with %d samples per pixel is not supported",
                   name, m->photometric, m->samples);
  if (!mono && m->bits_allocated != 8)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: colour images must have 8 bits per sample", name);
  if (s->encapsulated != (s->ts->kind >= TS_JPEG))
    return err_set(e, MSKX_EFORMAT, "%s: pixel data is %s but the transfer syntax %s says otherwise", name,
                   s->encapsulated ? "encapsulated" : "native", s->ts->uid);
  if (s->encapsulated && s->n_frags == 0) return err_set(e, MSKX_EFORMAT, "%s: encapsulated pixel data has no fragments", name);
  /* Values whose sign follows Pixel Representation. */
  int sign = m->pixel_rep == 1;
  dicom_render_params *rp = &s->rp;
  rp->have_padding = st->have_padding;
  rp->have_padding_limit = st->have_padding_limit;
  rp->padding = sign ? (int)(int16_t)st->padding_raw : (int)st->padding_raw;
  rp->padding_limit = sign ? (int)(int16_t)st->padding_limit_raw : (int)st->padding_limit_raw;
  rp->have_window = st->have_center && st->have_width;
  for (int w = 0; w < 2; w++) {
    dicom_lut *l = w ? &rp->voi_lut : &rp->modality_lut;
    if (!st->have_desc[w] || !l->data) {
      l->data = NULL;
      continue;
    }
    l->entries = st->lut_desc[w][0] ? (int)st->lut_desc[w][0] : 65536;
    l->first_mapped = sign ? (int)(int16_t)st->lut_desc[w][1] : (int)st->lut_desc[w][1];
    l->bits = (int)st->lut_desc[w][2];
    if (l->bits < 8 || l->bits > 16)
      return err_set(e, MSKX_EUNSUPPORTED, "%s: %s LUT with %d-bit entries (only 8 to 16)", name, w ? "VOI" : "Modality", l->bits);
    if (l->data_len < 2 * (size_t)l->entries)
      return err_set(e, MSKX_EFORMAT, "%s: %s LUT Data holds %zu bytes for %d entries", name, w ? "VOI" : "Modality",
                     l->data_len, l->entries);
    l->present = 1;
  }
  return MSKX_OK;
}

int dicom_scan_parse(const uint8_t *buf, size_t len, const char *name, dicom_scan *s, mskx_err *e) {
  memset(s, 0, sizeof *s);
  s->rp.slope = 1;
  if (!name) name = "DICOM file";
  size_t start = len >= 132 && !memcmp(buf + 128, "DICM", 4) ? 132 : 0, ds = start;
  int rc = read_meta(buf, len, start, &ds, s->meta.transfer_syntax, sizeof s->meta.transfer_syntax, name, e);
  if (rc) return rc;
  if (!s->meta.transfer_syntax[0]) {
    if (ds != start) return err_set(e, MSKX_EFORMAT, "%s: file meta information has no Transfer Syntax UID", name);
    /* No meta group (an old ACR-NEMA-style stream): explicit or implicit little endian by the look of the first element. */
    strcpy(s->meta.transfer_syntax, looks_explicit(buf + ds, len - ds) ? "1.2.840.10008.1.2.1" : "1.2.840.10008.1.2");
  }
  if (!(s->ts = dicom_ts_find(s->meta.transfer_syntax)))
    return err_set(e, MSKX_EUNSUPPORTED, "%s: transfer syntax %s is not supported", name, s->meta.transfer_syntax);
  reader r = {buf + ds, len - ds, s->ts->kind != TS_IMPLICIT_LE, s->ts->kind == TS_EXPLICIT_BE};
  if (s->ts->kind == TS_DEFLATED) {
    size_t n = 0;
    if ((rc = inflate_dataset(buf + ds, len - ds, &s->inflated, &n, name, e))) return rc;
    r.p = s->inflated;
    r.n = n;
  }
  s->data = r.p;
  s->data_len = r.n;
  s->rp.big_endian = r.be;
  scan_state st;
  memset(&st, 0, sizeof st);
  rc = walk_dataset(&r, 0, s, &st, name, e);
  if (!rc) rc = finish(s, &st, name, e);
  if (rc) dicom_scan_free(s);
  return rc;
}

void dicom_scan_free(dicom_scan *s) {
  if (!s) return;
  free(s->inflated);
  free(s->frag_off);
  free(s->frag_len);
  s->inflated = NULL;
  s->frag_off = s->frag_len = NULL;
  s->n_frags = 0;
}

int dicom_scan_meta(const uint8_t *buf, size_t len, const char *name, dicom_meta *out, mskx_err *e) {
  dicom_scan s;
  int rc = dicom_scan_parse(buf, len, name, &s, e);
  if (rc) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  *out = s.meta;
  dicom_scan_free(&s);
  return MSKX_OK;
}
