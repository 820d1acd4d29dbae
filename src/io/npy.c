/* NumPy .npy reader and writer for float32 C-order arrays (see npy.h). The
 * header is a tiny Python dict literal, parsed here by a bounded scanner. */
#include "io/npy.h"
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "'<f4' data is copied as is: a little-endian host is required"
#endif

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* NumPy pads headers so the data starts on a 64-byte boundary (numpy.lib.format.ARRAY_ALIGN). */
#define NPY_ALIGN 64

/* A cursor over the header text; every read is bounded by end. */
typedef struct scan {
  const char *start, *p, *end;
} scan;

typedef struct npy_header {
  char descr[32];
  int have_descr, have_fortran, have_shape, fortran;
  int ndim;
  int64_t shape[TENSOR_MAX_DIMS];
} npy_header;

static void skip_ws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r')) s->p++;
}

static int eat(scan *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return 1;
  }
  return 0;
}

/* A quoted Python string without escapes (all NumPy writes); copied into out
 * (truncated to n-1 bytes, flagged by *long_out). */
static int scan_str(scan *s, char *out, size_t n, int *long_out) {
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return 0;
  char q = *s->p++;
  size_t k = 0;
  *long_out = 0;
  while (s->p < s->end && *s->p != q) {
    if (*s->p == '\\' || *s->p == '\n') return 0;
    if (k + 1 < n) out[k++] = *s->p;
    else *long_out = 1;
    s->p++;
  }
  out[k] = 0;
  if (s->p >= s->end) return 0;
  s->p++;
  return 1;
}

static int scan_word(scan *s, const char *w) {
  skip_ws(s);
  size_t n = strlen(w);
  if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0) return 0;
  s->p += n;
  return 1;
}

/* An integer, possibly negative, with Python 2's optional 'L' suffix; *neg
 * reports a minus sign, *ovf a value beyond int64. */
static int scan_int(scan *s, int64_t *v, int *neg, int *ovf) {
  skip_ws(s);
  *neg = s->p < s->end && *s->p == '-';
  if (*neg) s->p++;
  if (s->p >= s->end || *s->p < '0' || *s->p > '9') return 0;
  uint64_t x = 0;
  *ovf = 0;
  for (; s->p < s->end && *s->p >= '0' && *s->p <= '9'; s->p++) {
    unsigned dgt = (unsigned)(*s->p - '0');
    if (x > ((uint64_t)INT64_MAX - dgt) / 10) *ovf = 1;
    else x = x * 10 + dgt;
  }
  if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++;
  *v = (int64_t)x;
  return 1;
}

static int parse_shape(scan *s, npy_header *h, const char *path, mskx_err *e) {
  if (!eat(s, '(')) return err_set(e, MSKX_EFORMAT, "%s: header 'shape' is not a tuple", path);
  h->ndim = 0;
  while (!eat(s, ')')) {
    int64_t v;
    int neg, ovf;
    if (!scan_int(s, &v, &neg, &ovf))
      return err_set(e, MSKX_EFORMAT, "%s: header 'shape' entry %d is not an integer", path, h->ndim);
    if (neg) return err_set(e, MSKX_EFORMAT, "%s: header 'shape' entry %d is negative", path, h->ndim);
    if (ovf) return err_set(e, MSKX_EFORMAT, "%s: header 'shape' entry %d is too large", path, h->ndim);
    if (h->ndim == TENSOR_MAX_DIMS)
      return err_set(e, MSKX_EUNSUPPORTED, "%s: more than %d dimensions not supported", path, TENSOR_MAX_DIMS);
    h->shape[h->ndim++] = v;
    if (!eat(s, ',')) {
      if (!eat(s, ')')) return err_set(e, MSKX_EFORMAT, "%s: header 'shape' tuple is malformed", path);
      break;
    }
  }
  return MSKX_OK;
}

/* One "'key': value" item of the header dict. */
static int parse_item(scan *s, npy_header *h, const char *path, mskx_err *e) {
  char key[32];
  int lng;
  if (!scan_str(s, key, sizeof key, &lng) || !eat(s, ':'))
    return err_set(e, MSKX_EFORMAT, "%s: header dict is malformed at character %ld", path, (long)(s->p - s->start));
  if (!lng && strcmp(key, "descr") == 0) {
    if (!scan_str(s, h->descr, sizeof h->descr, &lng) || lng)
      return err_set(e, MSKX_EUNSUPPORTED, "%s: dtype is not a simple type string (need float32 '<f4')", path);
    h->have_descr++;
  } else if (!lng && strcmp(key, "fortran_order") == 0) {
    if (scan_word(s, "True")) h->fortran = 1;
    else if (scan_word(s, "False")) h->fortran = 0;
    else return err_set(e, MSKX_EFORMAT, "%s: header 'fortran_order' is not True or False", path);
    h->have_fortran++;
  } else if (!lng && strcmp(key, "shape") == 0) {
    int rc = parse_shape(s, h, path, e);
    if (rc) return rc;
    h->have_shape++;
  } else {
    for (char *c = key; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return err_set(e, MSKX_EFORMAT, "%s: header has unexpected key '%s%s'", path, key, lng ? "..." : "");
  }
  return MSKX_OK;
}

static int parse_header(const char *txt, size_t n, npy_header *h, const char *path, mskx_err *e) {
  scan s = {txt, txt, txt + n};
  memset(h, 0, sizeof *h);
  if (!eat(&s, '{')) return err_set(e, MSKX_EFORMAT, "%s: header is not a dict literal", path);
  while (!eat(&s, '}')) {
    int rc = parse_item(&s, h, path, e);
    if (rc) return rc;
    if (!eat(&s, ',')) {
      if (!eat(&s, '}')) return err_set(e, MSKX_EFORMAT, "%s: header dict is missing ',' or '}'", path);
      break;
    }
  }
  skip_ws(&s);
  if (s.p != s.end) return err_set(e, MSKX_EFORMAT, "%s: unexpected text after the header dict", path);
  if (h->have_descr != 1 || h->have_fortran != 1 || h->have_shape != 1)
    return err_set(e, MSKX_EFORMAT, "%s: header needs exactly one each of 'descr', 'fortran_order' and 'shape'", path);
  if (strcmp(h->descr, "<f4") != 0) {
    for (char *c = h->descr; *c; c++)
      if ((unsigned char)*c < 0x20 || *c == 0x7f) *c = '?';
    return err_set(e, MSKX_EUNSUPPORTED, "%s: dtype '%s' not supported (need float32 '<f4')", path, h->descr);
  }
  if (h->fortran)
    return err_set(e, MSKX_EUNSUPPORTED, "%s: fortran_order True not supported (need C order)", path);
  return MSKX_OK;
}

/* Locates the header text and data offset from the magic and version. */
static int parse_preamble(const unsigned char *buf, size_t len, const char *path, size_t *hdr_off, size_t *hdr_len,
                          mskx_err *e) {
  if (len < NPY_MAGIC_LEN + 2 || memcmp(buf, NPY_MAGIC, NPY_MAGIC_LEN) != 0)
    return err_set(e, MSKX_EFORMAT, "%s: not a .npy file (bad magic)", path);
  int major = buf[6], minor = buf[7];
  size_t lenbytes;
  if (major == 1 && minor == 0) lenbytes = 2;
  else if ((major == 2 || major == 3) && minor == 0) lenbytes = 4;
  else return err_set(e, MSKX_EUNSUPPORTED, "%s: .npy format version %d.%d not supported", path, major, minor);
  if (len < 8 + lenbytes) return err_set(e, MSKX_EFORMAT, "%s: truncated in the header length", path);
  size_t hl = 0;
  for (size_t i = lenbytes; i-- > 0;) hl = (hl << 8) | buf[8 + i];
  if (hl > len - 8 - lenbytes)
    return err_set(e, MSKX_EFORMAT, "%s: header length %zu runs past the end of the %zu-byte file", path, hl, len);
  *hdr_off = 8 + lenbytes;
  *hdr_len = hl;
  return MSKX_OK;
}

int npy_read_f32(const char *path, htensor *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  unsigned char *buf;
  size_t len, hoff = 0, hlen = 0;
  int rc = file_read_all(path, 0, &buf, &len, e);
  if (rc) return rc;
  npy_header h = {0};
  rc = parse_preamble(buf, len, path, &hoff, &hlen, e);
  if (!rc) rc = parse_header((const char *)buf + hoff, hlen, &h, path, e);
  size_t numel = 1, bytes = 0, have = len - hoff - hlen;
  for (int i = 0; !rc && i < h.ndim; i++)
    if (!size_mul(numel, (size_t)h.shape[i], &numel)) rc = err_set(e, MSKX_EFORMAT, "%s: shape overflows", path);
  if (!rc && !size_mul(numel, 4, &bytes)) rc = err_set(e, MSKX_EFORMAT, "%s: shape overflows", path);
  if (!rc && bytes != have) {
    char sb[256];
    rc = err_set(e, MSKX_EFORMAT, "%s: %s for shape %s: %zu data bytes, need %zu", path,
                 have < bytes ? "truncated" : "trailing bytes", shape_str(sb, sizeof sb, h.ndim, h.shape), have,
                 bytes);
  }
  if (!rc) {
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) rc = err_set(e, MSKX_ENOMEM, "%s: cannot allocate %zu bytes", path, bytes);
  }
  if (!rc) {
    memcpy(out->data, buf + hoff + hlen, bytes);
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
  }
  free(buf);
  return rc;
}

int npy_write_f32(const char *path, const float *data, int ndim, const int64_t *shape, mskx_err *e) {
  if (ndim < 0 || ndim > TENSOR_MAX_DIMS || (ndim && !shape))
    return err_set(e, MSKX_EINVAL, "%s: ndim %d out of range", path, ndim);
  size_t numel = 1, bytes;
  for (int i = 0; i < ndim; i++)
    if (shape[i] < 0 || !size_mul(numel, (size_t)shape[i], &numel))
      return err_set(e, MSKX_EINVAL, "%s: invalid shape", path);
  if (!size_mul(numel, 4, &bytes) || (numel && !data))
    return err_set(e, MSKX_EINVAL, "%s: no data or size overflow", path);
  /* Same text as numpy.lib.format: a 1-tuple keeps its trailing comma. */
  char dict[512];
  int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (");
  for (int i = 0; i < ndim; i++)
    n += snprintf(dict + n, sizeof dict - (size_t)n, "%s%lld", i ? ", " : "", (long long)shape[i]);
  n += snprintf(dict + n, sizeof dict - (size_t)n, "%s), }", ndim == 1 ? "," : "");
  /* magic(6) + version(2) + u16 length + dict + padding + '\n' is a multiple of 64. */
  size_t total = ((size_t)n + 11 + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN, hlen = total - 10;
  unsigned char hdr[640];
  memcpy(hdr, NPY_MAGIC "\x01\x00", 8);
  hdr[8] = (unsigned char)(hlen & 0xff);
  hdr[9] = (unsigned char)(hlen >> 8);
  memcpy(hdr + 10, dict, (size_t)n);
  memset(hdr + 10 + n, ' ', hlen - (size_t)n - 1);
  hdr[total - 1] = '\n';
  atomic_file af;
  int rc = atomic_file_open(&af, path, e);
  if (rc) return rc;
  if ((rc = atomic_file_write(&af, hdr, total, e)) || (rc = atomic_file_write(&af, data, bytes, e))) {
    atomic_file_abort(&af);
    return rc;
  }
  return atomic_file_commit(&af, e);
}
