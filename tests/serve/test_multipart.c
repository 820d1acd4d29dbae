/* The multipart/form-data parser of the server: valid bodies, every
 * truncation, malformed headers and boundaries, limits, and random
 * mutations (which must never read outside the body). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/rng.h"
#include "serve/multipart.h"
#include "test.h"

#define B "XyZ-b0und'ry"

/* A valid body: a file whose bytes contain CRLFs, dashes and a near-boundary,
 * an empty file, and a plain field. */
static const char body_text[] =
    "--" B "\r\n"
    "Content-Disposition: form-data; name=\"images\"; filename=\"a \\\"1\\\".png\"\r\n"
    "Content-Type: Image/PNG; charset=x\r\n"
    "\r\n"
    "\x89PNG\r\n--" "XyZ-b0und" "\r\n\r\n--\r\n"
    "\r\n--" B "  \r\n"
    "content-disposition: FORM-DATA; filename=empty.jpg; name=images\r\n"
    "\r\n"
    "\r\n--" B "\r\n"
    "Content-Disposition: form-data; name=\"part\"\r\n"
    "\r\n"
    "XR_WRIST"
    "\r\n--" B "--";

static int parse_text(const char *text, size_t len, int max_parts, mp_part **p, int *n, mskx_err *e) {
  return multipart_parse((const unsigned char *)text, len, B, max_parts, p, n, e);
}

TEST(valid_body) {
  mp_part *p = NULL;
  int n = 0;
  mskx_err e = {0, ""};
  CHECK_OK(parse_text(body_text, sizeof body_text - 1, 8, &p, &n, &e), &e);
  CHECK(n == 3);
  CHECK(!strcmp(p[0].name, "images") && p[0].has_filename && !strcmp(p[0].filename, "a \"1\".png"));
  CHECK(!strcmp(p[0].content_type, "image/png"));
  static const char first[] = "\x89PNG\r\n--XyZ-b0und\r\n\r\n--\r\n";
  CHECK(p[0].len == sizeof first - 1 && !memcmp(p[0].data, first, p[0].len));
  CHECK(!strcmp(p[1].name, "images") && !strcmp(p[1].filename, "empty.jpg") && p[1].len == 0 && !p[1].content_type[0]);
  CHECK(!strcmp(p[2].name, "part") && !p[2].has_filename && p[2].len == 8 && !memcmp(p[2].data, "XR_WRIST", 8));
  free(p);
}

TEST(preamble_and_epilogue) {
  char buf[2048];
  int k = snprintf(buf, sizeof buf, "This is a preamble.\r\n%s\r\nepilogue --" B "--\r\n", body_text);
  mp_part *p = NULL;
  int n = 0;
  mskx_err e = {0, ""};
  CHECK_OK(parse_text(buf, (size_t)k, 8, &p, &n, &e), &e);
  CHECK(n == 3 && p[2].len == 8);
  free(p);
}

/* Every strict prefix that ends before the close delimiter is complete must fail. */
TEST(every_truncation_fails) {
  size_t full = sizeof body_text - 1;
  int bad = 0;
  for (size_t cut = 0; cut < full; cut++) {
    char *copy = malloc(cut + 1);   /* exact size, so ASan sees any overread */
    memcpy(copy, body_text, cut);
    mp_part *p = NULL;
    int n = 0;
    mskx_err e = {0, ""};
    int rc = multipart_parse((const unsigned char *)copy, cut, B, 8, &p, &n, &e);
    if (rc != MSKX_EFORMAT || p || n) bad++, printf("  cut %zu: rc %d n %d\n", cut, rc, n);
    free(copy);
  }
  CHECKF(bad == 0, "%d truncations were accepted", bad);
}

static int parse_one(const char *headers, mskx_err *e) {
  char buf[12000];
  int k = snprintf(buf, sizeof buf, "--" B "\r\n%s\r\n\r\ndata\r\n--" B "--", headers);
  mp_part *p = NULL;
  int n = 0;
  int rc = parse_text(buf, (size_t)k, 8, &p, &n, e);
  free(p);
  return rc;
}

TEST(malformed_headers) {
  mskx_err e = {0, ""};
  CHECK(parse_one("Content-Disposition: form-data; name=\"ok\"", &e) == MSKX_OK);
  static const char *bad[] = {
      "Content-Type: image/png",                                   /* no disposition */
      "Content-Disposition: attachment; name=\"x\"",               /* not form-data */
      "Content-Disposition: form-data; filename=\"a.png\"",        /* no name */
      "Content-Disposition: form-data; name=a; name=b",            /* two names */
      "Content-Disposition: form-data; name=a; filename=x; filename=y",
      "Content-Disposition: form-data; name=\"unterminated",
      "Content-Disposition: form-data; name=a\nX-Other: 1",        /* bare LF */
      "Content-Disposition: form-data; name=a\r\n folded",
      "Content-Disposition: form-data name=a",                     /* no ';' */
      "Content-Disposition: form-data; =a",
      "Content-Disposition: form-data; name=",
      "Content-Disposition: form-data; name=a\r\nno colon here",
      "Content-Disposition: form-data; name=a\r\nBad Name: x",
      "Content-Disposition: form-data; name=a\r\nContent-Disposition: form-data; name=b",
      "Content-Disposition: form-data; name=a\r\nContent-Type: image",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    e.msg[0] = 0;
    int rc = parse_one(bad[i], &e);
    CHECKF(rc == MSKX_EFORMAT && strstr(e.msg, "multipart"), "case %zu accepted (rc %d): %s", i, rc, bad[i]);
  }
  char big[10000] = "Content-Disposition: form-data; name=a\r\nX-Pad: ";
  memset(big + strlen(big), 'x', 9000);
  CHECK(parse_one(big, &e) == MSKX_EFORMAT);
  char nul[] = "Content-Disposition: form-data; name=a\r\nX: \0y";
  char buf[256];
  int k = snprintf(buf, sizeof buf, "--" B "\r\n");
  memcpy(buf + k, nul, sizeof nul - 1);
  k += (int)sizeof nul - 1;
  k += snprintf(buf + k, sizeof buf - (size_t)k, "\r\n\r\nd\r\n--" B "--");
  mp_part *p = NULL;
  int n = 0;
  CHECK(parse_text(buf, (size_t)k, 8, &p, &n, &e) == MSKX_EFORMAT && strstr(e.msg, "NUL"));
}

TEST(malformed_bodies) {
  static const char *bad[] = {
      "",                                                   /* empty */
      "no delimiter at all",
      "--" B "--",                                          /* no parts */
      "--" B "X\r\nContent-Disposition: form-data; name=a\r\n\r\nd\r\n--" B "--",   /* junk after boundary */
      "--" B "\r\nContent-Disposition: form-data; name=a\r\n\r\nd--" B "--",        /* delimiter without CRLF */
      "--" B "\r\nContent-Disposition: form-data; name=a\r\n\r\nd\r\n--" B,         /* no close */
      "--" B "\r\nContent-Disposition: form-data; name=a\r\nd\r\n--" B "--",        /* headers never end */
      "--" B "\r\n\r\nd\r\n--" B "--",                                              /* no headers at all */
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    mp_part *p = NULL;
    int n = 0;
    mskx_err e = {0, ""};
    int rc = parse_text(bad[i], strlen(bad[i]), 8, &p, &n, &e);
    CHECKF(rc == MSKX_EFORMAT && !p && n == 0, "body %zu accepted (rc %d)", i, rc);
  }
}

TEST(part_limit) {
  mp_part *p = NULL;
  int n = 0;
  mskx_err e = {0, ""};
  CHECK(parse_text(body_text, sizeof body_text - 1, 2, &p, &n, &e) == MSKX_ELIMIT && !p && n == 0);
  CHECK_OK(parse_text(body_text, sizeof body_text - 1, 3, &p, &n, &e), &e);
  free(p);
}

TEST(boundaries) {
  char b[MP_BOUNDARY_MAX + 1];
  mskx_err e = {0, ""};
  CHECK_OK(multipart_boundary("multipart/form-data; boundary=abc123", b, &e), &e);
  CHECK(!strcmp(b, "abc123"));
  CHECK_OK(multipart_boundary("Multipart/Form-Data ; charset=utf-8; BOUNDARY=\"a b:c?\"", b, &e), &e);
  CHECK(!strcmp(b, "a b:c?"));
  char longest[128] = "multipart/form-data; boundary=";
  memset(longest + strlen(longest), 'x', MP_BOUNDARY_MAX);
  CHECK_OK(multipart_boundary(longest, b, &e), &e);
  strcat(longest, "x");
  static const char *bad[] = {"multipart/form-data", "multipart/form-data; boundary=", "multipart/form-data; boundary=\"\"",
                              "multipart/form-data; boundary=\"a;b\"", "multipart/form-data; boundary=\"ab \"",
                              "multipart/form-data; boundary=\"unterminated", "multipart/mixed; boundary=abc",
                              "text/plain; boundary=abc", "", NULL};
  CHECK(multipart_boundary(longest, b, &e) == MSKX_EFORMAT);
  for (int i = 0; bad[i]; i++) CHECKF(multipart_boundary(bad[i], b, &e) == MSKX_EFORMAT, "accepted '%s'", bad[i]);
  char t[32];
  media_type(" Image/JPEG;q=1", t, sizeof t);
  CHECK(!strcmp(t, "image/jpeg"));
  media_type(NULL, t, sizeof t);
  CHECK(!t[0]);
}

/* A part Content-Type whose type fills the whole buffer and then has a
 * subtype: "T...T/\"\"" once wrote one byte past the stack buffer (issue 12,
 * item 1; ASan reports it). Type and subtype are tokens (RFC 7231 3.1.1.1):
 * around the buffer size each must parse when type/subtype fits in
 * MP_VALUE_MAX - 1 bytes and be refused otherwise, and never overflow. */
TEST(content_type_at_buffer_size) {
  char exact[1024] = "Content-Disposition: form-data; name=a\r\nContent-Type: ";
  size_t k0 = strlen(exact);
  memset(exact + k0, 'i', MP_VALUE_MAX - 1);
  strcpy(exact + k0 + MP_VALUE_MAX - 1, "/\"\"");
  mskx_err e0 = {0, ""};
  CHECKF(parse_one(exact, &e0) == MSKX_EFORMAT, "a %d-byte type with an empty quoted subtype was accepted",
         MP_VALUE_MAX - 1);
  static const char *subtypes[] = {"png", "\"\"", "", "\"png\""};
  for (size_t len = MP_VALUE_MAX - 8; len <= MP_VALUE_MAX + 2; len++) {
    for (size_t s = 0; s < sizeof subtypes / sizeof subtypes[0]; s++) {
      char headers[1024] = "Content-Disposition: form-data; name=a\r\nContent-Type: ";
      size_t k = strlen(headers);
      memset(headers + k, 'i', len);
      snprintf(headers + k + len, sizeof headers - k - len, "/%s", subtypes[s]);
      mskx_err e = {0, ""};
      int rc = parse_one(headers, &e);
      int fits = s == 0 && len + 1 + strlen(subtypes[s]) <= MP_VALUE_MAX - 1;
      if (fits)
        CHECKF(rc == MSKX_OK, "type of %zu + '/%s' refused: %s", len, subtypes[s], e.msg);
      else
        CHECKF(rc == MSKX_EFORMAT && strstr(e.msg, "content type"), "type of %zu + '/%s' gave rc %d: %s", len,
               subtypes[s], rc, e.msg);
    }
  }
}

/* Random byte flips, insertions of CR/LF/'-'/'"' and truncations: any
 * outcome but a crash or a part outside the body is fine. */
TEST(random_mutations) {
  rng r;
  rng_seed(&r, 12345);
  size_t full = sizeof body_text - 1;
  int ok = 0;
  for (int it = 0; it < 3000; it++) {
    unsigned char *m = malloc(full);
    memcpy(m, body_text, full);
    size_t len = full;
    int flips = 1 + (int)(rng_uniform(&r) * 4);
    for (int f = 0; f < flips; f++) {
      size_t at = (size_t)(rng_uniform(&r) * (double)len);
      static const unsigned char pick[] = {'\r', '\n', '-', '"', ';', '=', 0, ' ', 'x', '\\'};
      m[at] = rng_uniform(&r) < 0.5 ? pick[(int)(rng_uniform(&r) * sizeof pick)] : (unsigned char)(rng_uniform(&r) * 256);
    }
    if (rng_uniform(&r) < 0.3) len = (size_t)(rng_uniform(&r) * (double)len);
    mp_part *p = NULL;
    int n = 0;
    mskx_err e = {0, ""};
    int rc = multipart_parse(m, len, B, 8, &p, &n, &e);
    if (rc == MSKX_OK) {
      ok++;
      for (int i = 0; i < n; i++) CHECK(p[i].data >= m && p[i].data + p[i].len <= m + len && p[i].name[0]);
    } else {
      CHECK((rc == MSKX_EFORMAT || rc == MSKX_ELIMIT) && !p && n == 0 && e.msg[0]);
    }
    free(p);
    free(m);
  }
  printf("  %d of 3000 mutated bodies still parsed\n", ok);
}

TEST_MAIN()
