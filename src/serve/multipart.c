/* Strict multipart/form-data parsing: anything a conforming browser would
 * not send (missing delimiters, headers without Content-Disposition, bare
 * LFs in headers, unterminated quotes, truncated bodies) is refused. */
#include "serve/multipart.h"
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/error.h"

void media_type(const char *ct, char *out, size_t n) {
  size_t k = 0;
  if (n == 0) return;
  while (ct && (*ct == ' ' || *ct == '\t')) ct++;
  for (; ct && *ct && *ct != ';' && *ct != ' ' && *ct != '\t' && k + 1 < n; ct++)
    out[k++] = (char)tolower((unsigned char)*ct);
  out[k] = 0;
}

/* RFC 7230 token characters. */
static int is_tchar(int c) {
  return c > 32 && c < 127 && !strchr("()<>@,;:\\\"/[]?={}", c);
}

/* RFC 2046 bchars (the last one may not be a space). */
static int is_bchar(int c) {
  return isalnum(c) || (c && strchr("'()+_,-./:=? ", c));
}

static const char *skip_ows(const char *s) {
  while (*s == ' ' || *s == '\t') s++;
  return s;
}

/* Reads a token at *s into out (n bytes, NUL included); advances *s. */
static int read_token(const char **s, char *out, size_t n, const char *what, mskx_err *e) {
  const char *p = *s;
  size_t k = 0;
  if (n == 0) return err_set(e, MSKX_EFORMAT, "multipart: no room for the %s", what);
  for (; is_tchar((unsigned char)*p); p++) {
    if (k + 1 >= n) return err_set(e, MSKX_EFORMAT, "multipart: %s longer than %zu bytes", what, n - 1);
    out[k++] = *p;
  }
  if (k == 0) return err_set(e, MSKX_EFORMAT, "multipart: empty %s", what);
  out[k] = 0;
  *s = p;
  return MSKX_OK;
}

/* Reads a token or a quoted-string at *s into out (n bytes, NUL included);
 * advances *s. */
static int read_value(const char **s, char *out, size_t n, const char *what, mskx_err *e) {
  const char *p = *s;
  size_t k = 0;
  if (*p != '"') return read_token(s, out, n, what, e);
  if (n == 0) return err_set(e, MSKX_EFORMAT, "multipart: no room for the %s", what);
  for (p++; *p != '"'; p++) {
    if (!*p) return err_set(e, MSKX_EFORMAT, "multipart: unterminated quoted %s", what);
    if (*p == '\\' && p[1]) p++;
    if (k + 1 >= n) return err_set(e, MSKX_EFORMAT, "multipart: %s longer than %zu bytes", what, n - 1);
    out[k++] = *p;
  }
  out[k] = 0;
  *s = p + 1;
  return MSKX_OK;
}

/* Parameters after the first token: "; a=b; c=\"d\"". cb gets each one. */
typedef int (*param_fn)(void *user, const char *name, const char *value, mskx_err *e);

static int parse_params(const char *p, param_fn cb, void *user, mskx_err *e) {
  char name[64], value[MP_VALUE_MAX];
  for (;;) {
    p = skip_ows(p);
    if (!*p) return MSKX_OK;
    if (*p != ';') return err_set(e, MSKX_EFORMAT, "multipart: expected ';' between header parameters");
    p = skip_ows(p + 1);
    if (!*p) return MSKX_OK;   /* a trailing ';' is harmless */
    size_t k = 0;
    for (; is_tchar((unsigned char)*p) && *p != '='; p++) {
      if (k + 1 >= sizeof name)
        return err_set(e, MSKX_EFORMAT, "multipart: header parameter name longer than %zu bytes", sizeof name - 1);
      name[k++] = (char)tolower((unsigned char)*p);
    }
    name[k] = 0;
    p = skip_ows(p);
    if (k == 0 || *p != '=') return err_set(e, MSKX_EFORMAT, "multipart: malformed header parameter");
    p = skip_ows(p + 1);
    int rc = read_value(&p, value, sizeof value, "parameter value", e);
    if (!rc) rc = cb(user, name, value, e);
    if (rc) return rc;
  }
}

typedef struct disposition {
  mp_part *part;
  int has_name;
} disposition;

static int disposition_param(void *user, const char *name, const char *value, mskx_err *e) {
  disposition *d = user;
  if (!strcmp(name, "name")) {
    if (d->has_name) return err_set(e, MSKX_EFORMAT, "multipart: two name parameters in one part");
    snprintf(d->part->name, sizeof d->part->name, "%s", value);
    d->has_name = 1;
  } else if (!strcmp(name, "filename")) {
    if (d->part->has_filename) return err_set(e, MSKX_EFORMAT, "multipart: two filename parameters in one part");
    snprintf(d->part->filename, sizeof d->part->filename, "%s", value);
    d->part->has_filename = 1;
  }
  return MSKX_OK;
}

static int ignore_param(void *user, const char *name, const char *value, mskx_err *e) {
  (void)user, (void)name, (void)value, (void)e;
  return MSKX_OK;
}

/* One header line "Name: value" (NUL-terminated). */
static int parse_header(char *line, mp_part *part, int *seen_cd, mskx_err *e) {
  char *colon = strchr(line, ':');
  if (!colon || colon == line) return err_set(e, MSKX_EFORMAT, "multipart: part header line without a name");
  for (char *c = line; c < colon; c++)
    if (!is_tchar((unsigned char)*c)) return err_set(e, MSKX_EFORMAT, "multipart: bad character in a part header name");
  *colon = 0;
  const char *v = skip_ows(colon + 1);
  if (!strcasecmp(line, "content-disposition")) {
    if ((*seen_cd)++) return err_set(e, MSKX_EFORMAT, "multipart: two Content-Disposition headers in one part");
    char type[32];
    int rc = read_token(&v, type, sizeof type, "disposition type", e);
    if (rc) return rc;
    if (strcasecmp(type, "form-data")) return err_set(e, MSKX_EFORMAT, "multipart: disposition '%s' is not form-data", type);
    disposition d = {part, 0};
    if ((rc = parse_params(v, disposition_param, &d, e))) return rc;
    if (!d.has_name) return err_set(e, MSKX_EFORMAT, "multipart: a part has no field name");
  } else if (!strcasecmp(line, "content-type")) {
    /* type "/" subtype, both tokens (RFC 7231 3.1.1.1), together at most
     * MP_VALUE_MAX - 1 bytes. */
    char type[MP_VALUE_MAX];
    int rc = read_token(&v, type, sizeof type, "content type", e);
    if (rc) return rc;
    size_t k = strlen(type);
    if (*v != '/') return err_set(e, MSKX_EFORMAT, "multipart: content type '%s' has no subtype", type);
    if (k + 2 >= sizeof type)   /* '/', at least one subtype byte, the NUL */
      return err_set(e, MSKX_EFORMAT, "multipart: content type longer than %zu bytes", sizeof type - 1);
    v++;
    type[k++] = '/';
    if ((rc = read_token(&v, type + k, sizeof type - k, "content type", e))) return rc;
    media_type(type, part->content_type, sizeof part->content_type);
    if ((rc = parse_params(v, ignore_param, NULL, e))) return rc;
  }
  return MSKX_OK;
}

/* The header block of a part: lines separated by CRLF, no empty line inside. */
static int parse_headers(const unsigned char *h, size_t len, mp_part *part, mskx_err *e) {
  char buf[MP_HEADERS_MAX + 1];
  if (len > MP_HEADERS_MAX) return err_set(e, MSKX_EFORMAT, "multipart: part headers exceed %d bytes", MP_HEADERS_MAX);
  memcpy(buf, h, len);
  buf[len] = 0;
  if (strlen(buf) != len) return err_set(e, MSKX_EFORMAT, "multipart: NUL byte in part headers");
  int seen_cd = 0;
  char *line = buf;
  while (line < buf + len) {
    char *end = strstr(line, "\r\n");
    char *next = end ? end + 2 : buf + len;   /* never past the buffer's end */
    if (!end) end = buf + len;
    *end = 0;
    if (strchr(line, '\r') || strchr(line, '\n')) return err_set(e, MSKX_EFORMAT, "multipart: bare CR or LF in part headers");
    if (*line == ' ' || *line == '\t') return err_set(e, MSKX_EFORMAT, "multipart: folded part header");
    int rc = parse_header(line, part, &seen_cd, e);
    if (rc) return rc;
    line = next;
  }
  if (!seen_cd) return err_set(e, MSKX_EFORMAT, "multipart: a part has no Content-Disposition header");
  return MSKX_OK;
}

int multipart_boundary(const char *content_type, char out[MP_BOUNDARY_MAX + 1], mskx_err *e) {
  char type[64];
  media_type(content_type, type, sizeof type);
  if (strcmp(type, "multipart/form-data")) return err_set(e, MSKX_EFORMAT, "not multipart/form-data");
  const char *p = strchr(content_type, ';');
  out[0] = 0;
  for (; p; p = strchr(p + 1, ';')) {
    const char *q = skip_ows(p + 1);
    if (strncasecmp(q, "boundary", 8)) continue;
    q = skip_ows(q + 8);
    if (*q != '=') continue;
    q = skip_ows(q + 1);
    char v[MP_BOUNDARY_MAX + 2];
    mskx_err sub;
    if (read_value(&q, v, sizeof v, "boundary", &sub)) return err_set(e, MSKX_EFORMAT, "multipart: bad boundary parameter");
    size_t n = strlen(v);
    if (n < 1 || n > MP_BOUNDARY_MAX || v[n - 1] == ' ')
      return err_set(e, MSKX_EFORMAT, "multipart: boundary must be 1 to %d characters", MP_BOUNDARY_MAX);
    for (size_t i = 0; i < n; i++)
      if (!is_bchar((unsigned char)v[i])) return err_set(e, MSKX_EFORMAT, "multipart: invalid character in the boundary");
    memcpy(out, v, n + 1);
    return MSKX_OK;
  }
  return err_set(e, MSKX_EFORMAT, "multipart: Content-Type has no boundary parameter");
}

/* After a delimiter: "--" closes, else optional padding then CRLF. Returns
 * the offset after it, 0 for the close delimiter, or -1 when malformed. */
static long after_delimiter(const unsigned char *b, size_t len, size_t pos) {
  if (pos + 2 <= len && b[pos] == '-' && b[pos + 1] == '-') return 0;
  while (pos < len && (b[pos] == ' ' || b[pos] == '\t')) pos++;
  if (pos + 2 <= len && b[pos] == '\r' && b[pos + 1] == '\n') return (long)(pos + 2);
  return -1;
}

int multipart_parse(const unsigned char *body, size_t len, const char *boundary, int max_parts, mp_part **parts,
                    int *n, mskx_err *e) {
  *parts = NULL;
  *n = 0;
  char dash[MP_BOUNDARY_MAX + 5];
  size_t bl = strlen(boundary);
  if (bl < 1 || bl > MP_BOUNDARY_MAX) return err_set(e, MSKX_EINVAL, "multipart: bad boundary");
  snprintf(dash, sizeof dash, "\r\n--%s", boundary);
  size_t dl = bl + 4;
  /* The first delimiter opens the body or follows a preamble and CRLF. */
  size_t pos;
  if (len >= dl - 2 && !memcmp(body, dash + 2, dl - 2)) {
    pos = dl - 2;
  } else {
    const unsigned char *d = memmem(body, len, dash, dl);
    if (!d) return err_set(e, MSKX_EFORMAT, "multipart: no boundary delimiter in the body");
    pos = (size_t)(d - body) + dl;
  }
  int cap = 0, rc = MSKX_OK;
  for (;;) {
    long next = after_delimiter(body, len, pos);
    if (next < 0) { rc = err_set(e, MSKX_EFORMAT, "multipart: malformed or truncated boundary line"); break; }
    if (next == 0) {
      if (*n == 0) rc = err_set(e, MSKX_EFORMAT, "multipart: the body has no parts");
      break;
    }
    if (*n >= max_parts) { rc = err_set(e, MSKX_ELIMIT, "multipart: more than %d parts", max_parts); break; }
    size_t hstart = (size_t)next, hend, dstart;
    if (hstart + 2 <= len && body[hstart] == '\r' && body[hstart + 1] == '\n') {
      hend = hstart;
      dstart = hstart + 2;
    } else {
      size_t window = len - hstart < MP_HEADERS_MAX + 4 ? len - hstart : MP_HEADERS_MAX + 4;
      const unsigned char *x = memmem(body + hstart, window, "\r\n\r\n", 4);
      if (!x) { rc = err_set(e, MSKX_EFORMAT, "multipart: part headers are unterminated or longer than %d bytes", MP_HEADERS_MAX); break; }
      hend = (size_t)(x - body);
      dstart = hend + 4;
    }
    const unsigned char *end = memmem(body + dstart, len - dstart, dash, dl);
    if (!end) { rc = err_set(e, MSKX_EFORMAT, "multipart: truncated body (part %d has no closing boundary)", *n + 1); break; }
    if (*n == cap) {
      cap = cap ? 2 * cap : 4;
      mp_part *g = realloc(*parts, (size_t)cap * sizeof *g);
      if (!g) { rc = err_set(e, MSKX_ENOMEM, "out of memory"); break; }
      *parts = g;
    }
    mp_part *p = &(*parts)[*n];
    memset(p, 0, sizeof *p);
    if ((rc = parse_headers(body + hstart, hend - hstart, p, e))) {
      err_prefix(e, "part %d", *n + 1);
      break;
    }
    size_t dend = (size_t)(end - body);
    p->data = body + dstart;
    p->len = dend > dstart ? dend - dstart : 0;
    (*n)++;
    pos = dend + dl;
  }
  if (rc) {
    free(*parts);
    *parts = NULL;
    *n = 0;
  }
  return rc;
}
