/* Shared by the I/O tests: a per-process scratch folder, the NumPy/PyTorch
 * fixture script tests/tools/make_io_fixtures.py (via tests/scratch.h), and raw
 * file writing.
 * Define IO_FIXTURE_TAG (the scratch folder's prefix) before including. */
#ifndef MSKX_TESTS_IO_FIXTURES_H
#define MSKX_TESTS_IO_FIXTURES_H
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#define SCRATCH_TAG IO_FIXTURE_TAG
#include "scratch.h"

/* Runs make_io_fixtures.py MODE DIR; returns its exit status. */
static inline int run_tool(const char *mode) { return run_tool_script("make_io_fixtures.py", mode); }

/* The reference files, generated once per process. */
static inline int fixtures(void) {
  static int done = -1;
  if (done < 0) done = run_tool("gen") == 0;
  return done;
}

static inline int write_bytes(const char *path, const void *b, size_t n) {
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  int ok = fwrite(b, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

#endif
