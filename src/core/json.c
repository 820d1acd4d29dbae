/* cJSON helpers (see json.h). */
#include "core/json.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

cJSON *json_finite(double v) { return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

void json_add_finite(cJSON *o, const char *k, double v) {
  if (isfinite(v))
    cJSON_AddNumberToObject(o, k, v);
  else
    cJSON_AddNullToObject(o, k);
}

char *json_print_line(const cJSON *o, size_t *len) {
  char *s = cJSON_Print(o);
  if (!s) return NULL;
  size_t l = strlen(s);
  char *t = realloc(s, l + 2);
  if (!t) {
    free(s);
    return NULL;
  }
  t[l] = '\n';
  t[l + 1] = 0;
  if (len) *len = l + 1;
  return t;
}

int json_write_atomic(const char *path, const cJSON *o, mskx_err *e) {
  size_t len;
  char *s = json_print_line(o, &len);
  if (!s) return err_set(e, MSKX_ENOMEM, "out of memory");
  int rc = file_write_atomic(path, s, len, e);
  free(s);
  return rc;
}
