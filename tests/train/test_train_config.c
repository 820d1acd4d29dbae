/* config.json reading (what `train --resume` trusts): the round trip, and
 * values a hand-edited or hostile file may hold (found by fuzz_train_config). */
#include <stdlib.h>
#include "test.h"
#include "train/trainer.h"

/* The default configuration's JSON with one key's value replaced by `value`. */
static int read_with(const char *key, const char *value, train_config *c, mskx_err *e) {
  train_config d;
  train_config_default(&d);
  char *text = train_config_to_json(&d);
  char needle[64], *buf = malloc(strlen(text) + strlen(value) + 64);
  snprintf(needle, sizeof needle, "\"%s\":", key);
  char *at = strstr(text, needle), *end = at ? strpbrk(at + strlen(needle), ",\n}") : NULL;
  int rc = -100;
  if (at && end) {
    sprintf(buf, "%.*s %s%s", (int)(at - text + (int)strlen(needle)), text, value, end);
    rc = train_config_from_json(buf, "config.json", c, e);
  }
  free(buf);
  free(text);
  return rc;
}

TEST(round_trip) {
  train_config a, b;
  train_config_default(&a);
  a.epochs = 7;
  a.seed = 18446744073709551615ull;
  char *text = train_config_to_json(&a);
  mskx_err e = {0, ""};
  CHECK_OK(train_config_from_json(text, "config.json", &b, &e), &e);
  free(text);
  CHECK_EQ_INT(b.epochs, 7);
  CHECK(b.seed == 18446744073709551615ull);
}

TEST(int_out_of_range_is_refused) {
  train_config c;
  mskx_err e = {0, ""};
  CHECK_EQ_INT(read_with("epochs", "8.88889e+23", &c, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "epochs") && strstr(e.msg, "integer"), "message: %s", e.msg);
  CHECK_EQ_INT(read_with("epochs", "-3e10", &c, &e), MSKX_EFORMAT);
  CHECK_EQ_INT(read_with("epochs", "2.5", &c, &e), MSKX_EFORMAT);
  CHECK_OK(read_with("epochs", "12", &c, &e), &e);
  CHECK_EQ_INT(c.epochs, 12);
}

TEST(seed_must_be_a_whole_decimal) {
  train_config c;
  mskx_err e = {0, ""};
  CHECK_EQ_INT(read_with("seed", "\"12abc\"", &c, &e), MSKX_EFORMAT);
  CHECKF(strstr(e.msg, "seed"), "message: %s", e.msg);
  CHECK_EQ_INT(read_with("seed", "\"-1\"", &c, &e), MSKX_EFORMAT);
  CHECK_EQ_INT(read_with("seed", "\"99999999999999999999999\"", &c, &e), MSKX_EFORMAT);
  CHECK_EQ_INT(read_with("seed", "\"\"", &c, &e), MSKX_EFORMAT);
  CHECK_OK(read_with("seed", "\"42\"", &c, &e), &e);
  CHECK(c.seed == 42);
}

/* Arch maps: named entries, the default, custom architectures' comma options. */
TEST(arch_map) {
  const char *custom = "densenet:growth=4,blocks=1-1,init=8,bn_size=2";
  char m[1024], out[1024];
  mskx_err e = {0, ""};
  snprintf(m, sizeof m, "XR_FINGER=densenet121,HAND=%s,densenet169", custom);
  CHECK(train_arch_is_map(m));
  CHECK_OK(train_arch_for(m, "XR_FINGER", out, sizeof out, &e), &e);
  CHECK(!strcmp(out, "densenet121"));
  CHECK_OK(train_arch_for(m, "XR_HAND", out, sizeof out, &e), &e);
  CHECKF(!strcmp(out, custom), "got %s", out);
  CHECK_OK(train_arch_for(m, "XR_WRIST", out, sizeof out, &e), &e);
  CHECK(!strcmp(out, "densenet169"));
  CHECK_OK(train_arch_for(m, NULL, out, sizeof out, &e), &e);
  CHECK(!strcmp(out, "densenet169"));
  /* One custom architecture is not a map and comes back unchanged. */
  CHECK(!train_arch_is_map(custom));
  CHECK_OK(train_arch_for(custom, "XR_HAND", out, sizeof out, &e), &e);
  CHECK(!strcmp(out, custom));
  /* A part without an entry and no default; duplicates; two defaults. */
  CHECK_EQ_INT(train_arch_for("XR_HAND=densenet121", "XR_WRIST", out, sizeof out, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "XR_WRIST") && strstr(e.msg, "default"), "message: %s", e.msg);
  CHECK_EQ_INT(train_arch_for("XR_HAND=densenet121,XR_HAND=resnet50", "XR_HAND", out, sizeof out, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "twice"), "message: %s", e.msg);
  CHECK_EQ_INT(train_arch_for("XR_HAND=densenet121,densenet169,resnet50", "XR_HAND", out, sizeof out, &e),
               MSKX_EINVAL);
  CHECK_EQ_INT(train_arch_for("XR_HAND=,densenet169", "XR_HAND", out, sizeof out, &e), MSKX_EINVAL);
  CHECK_EQ_INT(train_arch_for("XR_HAND=densenet121,,densenet169", "XR_HAND", out, sizeof out, &e), MSKX_EINVAL);
  /* The map validates every entry, needs --per-part, and survives config.json. */
  train_config c, r;
  train_config_default(&c);
  strcpy(c.data, "d");
  strcpy(c.out, "o");
  snprintf(c.arch, sizeof c.arch, "XR_HAND=densenet121,densenet169");
  CHECK_EQ_INT(train_config_validate(&c, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "--per-part"), "message: %s", e.msg);
  c.per_part = 1;
  CHECK_OK(train_config_validate(&c, &e), &e);
  snprintf(c.arch, sizeof c.arch, "XR_HAND=densenet12,densenet169");
  CHECK_EQ_INT(train_config_validate(&c, &e), MSKX_EINVAL);
  CHECKF(strstr(e.msg, "XR_HAND"), "message: %s", e.msg);
  snprintf(c.arch, sizeof c.arch, "XR_HAND=%s,densenet169", custom);
  char *text = train_config_to_json(&c);
  CHECK_OK(train_config_from_json(text, "config.json", &r, &e), &e);
  CHECK(!strcmp(r.arch, c.arch));
  free(text);
}

TEST_MAIN()
