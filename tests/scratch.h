/* Scratch files for C tests: a per-process folder under $MSKX_TMP (set by
 * tests/run), paths in it, and the reference scripts of tests/tools/ run with
 * Debian's /usr/bin/python3. Define SCRATCH_TAG (the folder's prefix) before
 * including. */
#ifndef MSKX_TESTS_SCRATCH_H
#define MSKX_TESTS_SCRATCH_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/util.h"

static inline const char *dir(void) {
  static char d[2048];
  if (!d[0]) {
    const char *t = getenv("MSKX_TMP");
    snprintf(d, sizeof d, "%s/%s.%ld", t && *t ? t : "/tmp", SCRATCH_TAG, (long)getpid());
    mkdir_p(d, NULL);
  }
  return d;
}

/* DIR/name, in four rotating buffers so a few can be live at once. */
static inline const char *fx(const char *name) {
  static char p[4][2400];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir(), name);
  return p[k];
}

/* Runs tests/tools/SCRIPT MODE DIR; returns its exit status. */
static inline int run_tool_script(const char *script, const char *mode) {
  const char *root = getenv("MSKX_ROOT");
  char cmd[4600];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/%s' %s '%s'", root && *root ? root : ".", script, mode,
           dir());
  return system(cmd);
}

#endif
