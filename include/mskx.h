/* mskx: abnormality detection in musculoskeletal radiographs (MURA task).
 *
 * Public C API. Every function that can fail returns an MSKX_* status code
 * (0 on success) and, when given a non-NULL mskx_err, fills it with a
 * one-line message. The library never prints and never exits. */
#ifndef MSKX_H
#define MSKX_H

#ifdef __cplusplus
extern "C" {
#endif

#define MSKX_VERSION "0.1.0"

enum mskx_status {
  MSKX_OK = 0,
  MSKX_EINVAL = 1,      /* invalid argument or option value */
  MSKX_EIO = 2,         /* file missing, unreadable or unwritable */
  MSKX_EFORMAT = 3,     /* malformed or truncated file content */
  MSKX_ENOMEM = 4,      /* allocation failed */
  MSKX_ESHAPE = 5,      /* tensor shape or count mismatch */
  MSKX_EUNSUPPORTED = 6,/* valid but not supported (dtype, layout, arch) */
  MSKX_ELIMIT = 7,      /* a configured limit was exceeded (pixels, sizes) */
  MSKX_EBACKEND = 8,    /* the compute backend (oneDNN) reported a failure */
  MSKX_EINTERNAL = 9
};

typedef struct mskx_err {
  int code;
  char msg[1024];
} mskx_err;

/* A short English name for a status code. */
const char *mskx_status_name(int code);

#ifdef __cplusplus
}
#endif
#endif
