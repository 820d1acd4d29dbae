/* Error reporting helpers (see error.h). */
#include "core/error.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "core/util.h"

int err_set(mskx_err *e, int code, const char *fmt, ...) {
  if (e) {
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    /* A message too long for the fixed buffer says that it was cut. */
    if (n >= (int)sizeof e->msg) str_mark_cut(e->msg, sizeof e->msg);
  }
  return code;
}

int err_prefix(mskx_err *e, const char *fmt, ...) {
  if (!e) return MSKX_EINTERNAL;
  char prefix[512], old[sizeof e->msg];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(prefix, sizeof prefix, fmt, ap);
  va_end(ap);
  if (n >= (int)sizeof prefix) str_mark_cut(prefix, sizeof prefix);
  memcpy(old, e->msg, sizeof old);
  if (snprintf(e->msg, sizeof e->msg, "%s: %s", prefix, old) >= (int)sizeof e->msg) str_mark_cut(e->msg, sizeof e->msg);
  return e->code;
}

void err_clear(mskx_err *e) {
  if (e) {
    e->code = MSKX_OK;
    e->msg[0] = '\0';
  }
}

const char *mskx_version(void) { return MSKX_VERSION; }

const char *mskx_status_name(int code) {
  switch (code) {
    case MSKX_OK: return "ok";
    case MSKX_EINVAL: return "invalid argument";
    case MSKX_EIO: return "I/O error";
    case MSKX_EFORMAT: return "bad file format";
    case MSKX_ENOMEM: return "out of memory";
    case MSKX_ESHAPE: return "shape mismatch";
    case MSKX_EUNSUPPORTED: return "unsupported";
    case MSKX_ELIMIT: return "limit exceeded";
    case MSKX_EBACKEND: return "compute backend error";
    case MSKX_EINTERNAL: return "internal error";
    case MSKX_ECANCELED: return "canceled";
    case MSKX_EBUSY: return "busy";
    default: return "unknown error";
  }
}
