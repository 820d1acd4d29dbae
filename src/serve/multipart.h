/* A strict multipart/form-data parser (RFC 7578 over RFC 2046) for bodies
 * already held in memory: parts point into the body, nothing is copied. */
#ifndef MSKX_SERVE_MULTIPART_H
#define MSKX_SERVE_MULTIPART_H
#include <stddef.h>
#include "mskx.h"

#define MP_BOUNDARY_MAX 70     /* RFC 2046 section 5.1.1 */
#define MP_HEADERS_MAX 8192    /* bytes of headers per part */
#define MP_VALUE_MAX 256       /* field names, file names, content types */

typedef struct mp_part {
  char name[MP_VALUE_MAX];          /* the form field's name */
  char filename[MP_VALUE_MAX];      /* the file's name; "" when absent */
  int has_filename;                 /* a file part (filename parameter present) */
  char content_type[MP_VALUE_MAX];  /* media type, lower case, no parameters; "" when absent */
  const unsigned char *data;        /* into the body */
  size_t len;
} mp_part;

/* The boundary of a "multipart/form-data; boundary=..." Content-Type
 * (quoted or not). MSKX_EFORMAT when it is not multipart/form-data or the
 * boundary is missing, empty, too long or holds characters RFC 2046 forbids. */
int multipart_boundary(const char *content_type, char out[MP_BOUNDARY_MAX + 1], mskx_err *e);

/* Splits body into parts. Every part needs a Content-Disposition: form-data
 * header with a name; the body must end with the close delimiter. More than
 * max_parts parts is MSKX_ELIMIT, any malformation MSKX_EFORMAT. *parts is
 * malloc'd (free it), also when *n is 0 on error (then NULL). */
int multipart_parse(const unsigned char *body, size_t len, const char *boundary, int max_parts, mp_part **parts,
                    int *n, mskx_err *e);

/* Lower-cased media type of a Content-Type value without its parameters
 * ("Image/PNG; x=y" -> "image/png"); "" for NULL. */
void media_type(const char *content_type, char *out, size_t n);

#endif
