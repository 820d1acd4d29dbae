/* cJSON helpers (core/json.h): non-finite numbers as null, printing with a
 * final newline, and the atomic write of a document. */
#include <math.h>
#include <string.h>
#include <cjson/cJSON.h>
#include "core/error.h"
#include "core/json.h"
#include "core/util.h"
#define SCRATCH_TAG "json"
#include "scratch.h"
#include "test.h"

TEST(finite_numbers_and_null) {
  cJSON *o = cJSON_CreateObject();
  json_add_finite(o, "a", 0.25);
  json_add_finite(o, "b", NAN);
  json_add_finite(o, "c", INFINITY);
  cJSON_AddItemToObject(o, "d", json_finite(-2));
  cJSON_AddItemToObject(o, "e", json_finite(-INFINITY));
  char *s = cJSON_PrintUnformatted(o);
  CHECKF(s && !strcmp(s, "{\"a\":0.25,\"b\":null,\"c\":null,\"d\":-2,\"e\":null}"), "%s", s ? s : "(null)");
  free(s);
  cJSON_Delete(o);
}

TEST(print_line_ends_in_one_newline) {
  cJSON *o = cJSON_CreateObject();
  cJSON_AddNumberToObject(o, "threshold", 0.5);
  size_t len = 0;
  char *s = json_print_line(o, &len);
  CHECK(s != NULL);
  CHECK_EQ_INT(len, strlen(s));
  CHECK(len >= 2 && s[len - 1] == '\n' && s[len - 2] != '\n');
  cJSON *back = cJSON_Parse(s);
  CHECK(back && cJSON_GetNumberValue(cJSON_GetObjectItem(back, "threshold")) == 0.5);
  cJSON_Delete(back);
  free(s);
  cJSON_Delete(o);
}

TEST(write_atomic_replaces_the_file) {
  const char *path = fx("doc.json");
  mskx_err e = {0};
  CHECK_OK(file_write_atomic(path, "old", 3, &e), &e);
  cJSON *o = cJSON_CreateObject();
  cJSON_AddStringToObject(o, "format", "x");
  CHECK_OK(json_write_atomic(path, o, &e), &e);
  unsigned char *text = NULL;
  size_t len = 0;
  CHECK_OK(file_read_all(path, 1 << 20, &text, &len, &e), &e);
  char *want = json_print_line(o, NULL);
  CHECKF(len == strlen(want) && !memcmp(text, want, len), "file holds '%.*s'", (int)len, (char *)text);
  free(want);
  free(text);
  /* A folder that does not exist: an error naming the path, no crash. */
  int rc = json_write_atomic(fx("no/such/folder/doc.json"), o, &e);
  CHECK(rc != 0);
  CHECKF(strstr(e.msg, "doc.json"), "%s", e.msg);
  cJSON_Delete(o);
}

TEST_MAIN()
