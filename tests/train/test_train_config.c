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

TEST_MAIN()
