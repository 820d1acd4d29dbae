/* Errors: every fallible function returns an mskx status code and fills an
 * mskx_err with a one-line message; only the CLI prints it. */
#ifndef MSKX_CORE_ERROR_H
#define MSKX_CORE_ERROR_H
#include "mskx.h"

/* Sets e (if non-NULL) to code and a printf-style message; returns code so
 * callers can write `return err_set(e, MSKX_EIO, "...")`. */
int err_set(mskx_err *e, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Prefixes an existing message: "context: old message". Returns e->code. */
int err_prefix(mskx_err *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void err_clear(mskx_err *e);

#endif
