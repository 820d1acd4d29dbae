/* Atomic writes (core/util.h) on a full disk: the temporary "<path>.tmp.<pid>"
 * is made a link to /dev/full, where every write fails with ENOSPC. The error
 * must give the system's reason, and nothing partial may be left behind. */
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/error.h"
#include "core/util.h"
#include "io/npy.h"
#include "io/safetensors.h"
#define SCRATCH_TAG "atomic"
#include "scratch.h"
#include "test.h"

#define ENOSPC_TEXT "No space left on device"

/* Makes path's temporary a link to /dev/full; 0 when /dev/full is missing. */
static int plant_full(const char *path) {
  if (access("/dev/full", W_OK) != 0) return 0;
  char tmp[4300];
  snprintf(tmp, sizeof tmp, "%s" ATOMIC_TMP_INFIX "%ld", path, (long)getpid());
  unlink(tmp);
  return symlink("/dev/full", tmp) == 0;
}

/* Entries of the scratch folder whose name starts with prefix. */
static int count_prefixed(const char *prefix) {
  DIR *d = opendir(dir());
  int n = 0;
  for (struct dirent *de; d && (de = readdir(d));)
    if (!strncmp(de->d_name, prefix, strlen(prefix))) n++;
  if (d) closedir(d);
  return n;
}

TEST(full_disk_small_write_says_why) {
  const char *p = fx("small.txt");
  if (!plant_full(p)) {
    printf("# no /dev/full: skipped\n");
    return;
  }
  mskx_err e = {0};
  /* Small enough to sit in the stdio buffer: the failure comes at the flush. */
  int rc = file_write_atomic(p, "hello\n", 6, &e);
  CHECK_EQ_INT(rc, MSKX_EIO);
  CHECKF(strstr(e.msg, ENOSPC_TEXT) && strstr(e.msg, "small.txt"), "%s", e.msg);
  CHECK_EQ_INT(count_prefixed("small.txt"), 0);
}

TEST(full_disk_large_write_says_why) {
  const char *p = fx("large.bin");
  if (!plant_full(p)) return;
  size_t n = 1 << 20;
  char *buf = calloc(n, 1);
  CHECK(buf);
  mskx_err e = {0};
  int rc = file_write_atomic(p, buf, n, &e);
  free(buf);
  CHECK_EQ_INT(rc, MSKX_EIO);
  CHECKF(strstr(e.msg, ENOSPC_TEXT), "%s", e.msg);
  CHECK_EQ_INT(count_prefixed("large.bin"), 0);
}

TEST(full_disk_printf_then_commit) {
  const char *p = fx("lines.csv");
  if (!plant_full(p)) return;
  atomic_file af;
  mskx_err e = {0};
  CHECK_EQ_INT(atomic_file_open(&af, p, &e), MSKX_OK);
  int rc = MSKX_OK;
  for (int i = 0; i < 10000 && !rc; i++) rc = atomic_file_printf(&af, &e, "line %d of a csv\n", i);
  CHECK_EQ_INT(rc, MSKX_EIO);
  CHECKF(strstr(e.msg, ENOSPC_TEXT), "%s", e.msg);
  /* A caller that commits anyway is refused with the same reason. */
  mskx_err e2 = {0};
  CHECK_EQ_INT(atomic_file_commit(&af, &e2), MSKX_EIO);
  CHECKF(strstr(e2.msg, ENOSPC_TEXT), "%s", e2.msg);
  CHECK_EQ_INT(count_prefixed("lines.csv"), 0);
}

TEST(full_disk_npy_and_safetensors) {
  const char *pn = fx("x.npy"), *ps = fx("x.safetensors");
  if (!plant_full(pn) || !plant_full(ps)) return;
  float data[4 * 8] = {1};
  int64_t shape[2] = {4, 8};
  mskx_err e = {0};
  CHECK_EQ_INT(npy_write_f32(pn, data, 2, shape, &e), MSKX_EIO);
  CHECKF(strstr(e.msg, ENOSPC_TEXT) && strstr(e.msg, "x.npy"), "%s", e.msg);
  tensor_ref t = {.name = "w", .ndim = 2, .shape = {4, 8}, .data = data};
  mskx_err e2 = {0};
  CHECK_EQ_INT(st_write(ps, &t, 1, NULL, 0, &e2), MSKX_EIO);
  CHECKF(strstr(e2.msg, ENOSPC_TEXT) && strstr(e2.msg, "x.safetensors"), "%s", e2.msg);
  CHECK_EQ_INT(count_prefixed("x."), 0);
}

TEST(full_disk_keeps_the_previous_file) {
  const char *p = fx("kept.json");
  mskx_err e = {0};
  CHECK_EQ_INT(file_write_atomic(p, "{\"v\":1}", 7, &e), MSKX_OK);
  if (!plant_full(p)) return;
  CHECK_EQ_INT(file_write_atomic(p, "{\"v\":2}", 7, &e), MSKX_EIO);
  unsigned char *text = NULL;
  size_t len = 0;
  CHECK_EQ_INT(file_read_all(p, 0, &text, &len, &e), MSKX_OK);
  CHECKF(len == 7 && !memcmp(text, "{\"v\":1}", 7), "old content lost: %.*s", (int)len, text);
  free(text);
  CHECK_EQ_INT(count_prefixed("kept.json"), 1);
}

TEST(ordinary_write_still_works) {
  const char *p = fx("ok.txt");
  mskx_err e = {0};
  CHECK_EQ_INT(file_write_atomic(p, "abc", 3, &e), MSKX_OK);
  struct stat st;
  CHECK(stat(p, &st) == 0 && st.st_size == 3);
  CHECK_EQ_INT(count_prefixed("ok.txt"), 1);
}

TEST_MAIN()
