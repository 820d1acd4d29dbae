/* Shared by the I/O tests: a per-process scratch folder, the NumPy/PyTorch
 * fixture script tests/tools/make_io_fixtures.py, and raw file writing.
 * Define IO_FIXTURE_TAG (the scratch folder's prefix) before including. */
#ifndef MSKX_TESTS_IO_FIXTURES_H
#define MSKX_TESTS_IO_FIXTURES_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "core/util.h"

static inline const char *dir(void) {
  static char d[2048];
  if (!d[0]) {
    const char *t = getenv("MSKX_TMP");
    snprintf(d, sizeof d, "%s/%s.%ld", t && *t ? t : "/tmp", IO_FIXTURE_TAG, (long)getpid());
    mkdir_p(d, NULL);
  }
  return d;
}

/* Runs make_io_fixtures.py MODE DIR; returns its exit status. */
static inline int run_tool(const char *mode) {
  const char *root = getenv("MSKX_ROOT");
  char cmd[4096];
  snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tests/tools/make_io_fixtures.py' %s '%s'", root && *root ? root : ".",
           mode, dir());
  return system(cmd);
}

/* The reference files, generated once per process. */
static inline int fixtures(void) {
  static int done = -1;
  if (done < 0) done = run_tool("gen") == 0;
  return done;
}

/* DIR/name (four rotating buffers, so a few can be live at once). */
static inline const char *fx(const char *name) {
  static char p[4][2200];
  static int k;
  k = (k + 1) % 4;
  snprintf(p[k], sizeof p[k], "%s/%s", dir(), name);
  return p[k];
}

static inline int write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  int ok = fwrite(b, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

#endif
