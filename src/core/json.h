/* cJSON helpers shared by every module that writes JSON: non-finite numbers
 * as null (JSON has no NaN), and a document written to a file atomically. */
#ifndef MSKX_CORE_JSON_H
#define MSKX_CORE_JSON_H
#include <stddef.h>
#include <cjson/cJSON.h>
#include "mskx.h"

/* A number item, or null when v is not finite. NULL when out of memory. */
cJSON *json_finite(double v);
/* Adds v to o under k, or null when v is not finite. */
void json_add_finite(cJSON *o, const char *k, double v);

/* o printed with indentation and a final newline (malloc'd, NUL-terminated;
 * *len, when not NULL, receives its length). NULL when out of memory. */
char *json_print_line(const cJSON *o, size_t *len);
/* Writes json_print_line(o) to path atomically (util.h's file_write_atomic). */
int json_write_atomic(const char *path, const cJSON *o, mskx_err *e);

#endif
