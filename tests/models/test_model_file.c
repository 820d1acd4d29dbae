/* Model-file metadata (models/model_file.h): numbers are parsed whole and
 * range-checked; a file whose metadata holds a non-numeric, partly numeric or
 * out-of-range number is refused with a message naming the file, the key and
 * the value, instead of being read as 0 or a wrapped integer. */
#include <stdlib.h>
#include <unistd.h>
#include "core/util.h"
#include "models/model_file.h"
#include "test.h"

static char dir[64] = "/tmp/mskx-test-model-file.XXXXXX", path[128];

/* Writes a model file with the base metadata plus one (key, value), or the
 * base value replaced when key is already there, and reads its metadata. */
static int read_with(const char *key, const char *value, model_meta *m, mskx_err *e) {
  float w[1] = {1};
  tensor_ref t = {.name = "w", .ndim = 1, .shape = {1}, .data = w};
  st_meta md[4] = {{(char *)"format", (char *)MODEL_FORMAT}, {(char *)"arch", (char *)"densenet121"},
                   {(char *)"size", (char *)"224"}, {NULL, NULL}};
  int n = 3, found = 0;
  for (int i = 0; i < n; i++)
    if (key && !strcmp(md[i].key, key)) md[i].value = (char *)value, found = 1;
  if (key && !found) md[n++] = (st_meta){(char *)key, (char *)value};
  int rc = st_write(path, &t, 1, md, n, e);
  if (rc) return rc;
  st_file *f = NULL;
  if ((rc = st_read(path, &f, e))) return rc;
  rc = model_meta_read(f, path, m, e);
  st_free(f);
  return rc;
}

/* Refused with MSKX_EFORMAT and a message containing every word of want. */
#define CHECK_REFUSED(key, value, want)                                                            \
  do {                                                                                             \
    model_meta m_;                                                                                 \
    mskx_err e_ = {0, ""};                                                                         \
    int rc_ = read_with(key, value, &m_, &e_);                                                     \
    CHECKF(rc_ == MSKX_EFORMAT, "%s='%s': rc %d (%s)", key, value, rc_, e_.msg);                  \
    CHECKF(strstr(e_.msg, path) && strstr(e_.msg, "'" key "'") && strstr(e_.msg, want), "%s", e_.msg); \
  } while (0)

TEST(setup) { CHECK(mkdtemp(dir) != NULL && snprintf(path, sizeof path, "%s/m.safetensors", dir) > 0); }

TEST(valid_numbers_are_read) {
  model_meta m;
  mskx_err e = {0, ""};
  CHECK_OK(read_with("epoch", "17", &m, &e), &e);
  CHECK_EQ_INT(m.epoch, 17);
  CHECK_EQ_INT(m.size, 224);
  CHECK_OK(read_with("threshold", "0.25", &m, &e), &e);
  CHECK_NEAR(m.threshold, 0.25, 0);
  CHECK_OK(read_with(NULL, NULL, &m, &e), &e); /* absent: the defaults */
  CHECK_EQ_INT(m.epoch, 0);
  CHECK_NEAR(m.threshold, MODEL_DEFAULT_THRESHOLD, 0);
}

TEST(non_numeric_numbers_are_refused) {
  CHECK_REFUSED("epoch", "twelve", "'twelve'");
  CHECK_REFUSED("epoch", "12abc", "'12abc'"); /* atoi read this as 12 */
  CHECK_REFUSED("epoch", "", "expected an integer");
  CHECK_REFUSED("epoch", " 3", "expected an integer");
  CHECK_REFUSED("epoch", "3.5", "expected an integer");
  CHECK_REFUSED("size", "224px", "'224px'");
  CHECK_REFUSED("threshold", "", "expected a number");  /* strtod's empty parse read as 0 */
  CHECK_REFUSED("threshold", "nan", "'nan'");
  CHECK_REFUSED("threshold", "0.5x", "'0.5x'");
}

TEST(out_of_range_numbers_are_refused) {
  CHECK_REFUSED("epoch", "-1", "from 0 to");
  CHECK_REFUSED("epoch", "4294967296", "'4294967296'");  /* atoi: undefined; wrapped to 0 on glibc */
  CHECK_REFUSED("epoch", "99999999999999999999999", "expected an integer");
  CHECK_REFUSED("size", "8193", "from 16 to 8192");
  CHECK_REFUSED("size", "15", "from 16 to 8192");
  CHECK_REFUSED("threshold", "1.5", "from 0 to 1");
  CHECK_REFUSED("threshold", "1e999", "expected a number");
}

TEST(flags_and_long_text_are_checked) {
  CHECK_REFUSED("keep_aspect", "yes", "must be 0 or 1");
  char arch[MODEL_ARCH_MAX + 8];
  memset(arch, 'a', sizeof arch - 1);
  arch[sizeof arch - 1] = 0;
  CHECK_REFUSED("arch", arch, "more than the 127 allowed");
  /* Metrics too long for the field are dropped, not cut into invalid JSON. */
  char *big = malloc(sizeof ((model_meta *)0)->metrics + 16);
  CHECK(big != NULL);
  memset(big, ' ', sizeof ((model_meta *)0)->metrics + 15);
  memcpy(big, "{\"kappa\": 0.5", 13);
  big[sizeof ((model_meta *)0)->metrics + 14] = '}';
  big[sizeof ((model_meta *)0)->metrics + 15] = 0;
  model_meta m;
  mskx_err e = {0, ""};
  int rc = read_with("metrics", big, &m, &e);
  free(big);
  CHECK_OK(rc, &e);
  CHECK(!strcmp(m.metrics, "{}"));
}

TEST(cleanup) {
  unlink(path);
  CHECK(rmdir(dir) == 0);
}

TEST_MAIN()
