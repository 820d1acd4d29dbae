/* Option tables (options.h): the one code path for an option's default,
 * value parsing, range checks, JSON and fingerprint. */
#include "core/options.h"
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util.h"

#define FIELD(base, s) ((char *)(base) + (s)->off)
#define CFIELD(base, s) ((const char *)(base) + (s)->off)

const char *opt_name(const opt_spec *s, char *buf, size_t n) {
  if (s->flag)
    snprintf(buf, n, "--%s", s->flag);
  else
    snprintf(buf, n, "%s", s->key ? s->key : "?");
  return buf;
}

/* The index of value among "a|b|c", -1 when absent. */
static int choice_index(const char *choices, const char *value) {
  size_t len = strlen(value);
  int i = 0;
  for (const char *p = choices; *p; i++) {
    const char *bar = strchr(p, '|');
    size_t n = bar ? (size_t)(bar - p) : strlen(p);
    if (n == len && !strncmp(p, value, n)) return i;
    if (!bar) break;
    p = bar + 1;
  }
  return -1;
}

/* "a, b or c" for messages. */
static void choices_text(const char *choices, char *buf, size_t n) {
  size_t used = 0;
  buf[0] = 0;
  for (const char *p = choices; *p && used < n;) {
    const char *bar = strchr(p, '|');
    size_t len = bar ? (size_t)(bar - p) : strlen(p);
    const char *sep = p == choices ? "" : bar ? ", " : " or ";
    used += (size_t)snprintf(buf + used, n - used, "%s%.*s", sep, (int)len, p);
    if (!bar) break;
    p = bar + 1;
  }
}

static int out_of_range(const opt_spec *s, double v, mskx_err *e) {
  char nm[96];
  return err_set(e, MSKX_EINVAL, "%s: %.15g is out of range [%.15g, %.15g]", opt_name(s, nm, sizeof nm), v, s->lo, s->hi);
}

/* A string value's length, choice and syntax, as parsing and checking see it. */
static int check_string(const opt_spec *s, const char *v, mskx_err *e) {
  char nm[96];
  if (strlen(v) >= s->size)
    return err_set(e, MSKX_EINVAL, "%s: value too long (at most %zu bytes)", opt_name(s, nm, sizeof nm), s->size - 1);
  if (s->type == OPT_ENUM && choice_index(s->choices, v) < 0) {
    char ch[256];
    choices_text(s->choices, ch, sizeof ch);
    return err_set(e, MSKX_EINVAL, "%s: expected %s, got '%s'", opt_name(s, nm, sizeof nm), ch, v);
  }
  int rc = s->check ? s->check(v, e) : MSKX_OK;
  if (rc && e && !strstr(e->msg, opt_name(s, nm, sizeof nm))) err_prefix(e, "%s", nm);  /* named once */
  return rc;
}

static int set_string(const opt_spec *s, void *base, const char *v, mskx_err *e) {
  int rc = check_string(s, v, e);
  if (!rc) memmove(FIELD(base, s), v, strlen(v) + 1);
  return rc;
}

void opt_defaults(const opt_spec *t, size_t n, void *base) {
  for (size_t i = 0; i < n; i++) {
    const opt_spec *s = &t[i];
    char *p = FIELD(base, s);
    const char *d = s->def_str ? s->def_str : "";
    switch (s->type) {
      case OPT_INT:
      case OPT_BOOL: *(int *)p = (int)s->def; break;
      case OPT_U64: *(uint64_t *)p = (uint64_t)s->def; break;
      case OPT_DOUBLE: *(double *)p = s->def; break;
      case OPT_FLOAT: *(float *)p = (float)s->def; break;
      case OPT_STRING:
      case OPT_PATH:
      case OPT_ENUM: snprintf(p, s->size, "%s", d); break;
      case OPT_CHOICE: *(int *)p = choice_index(s->choices, d) < 0 ? 0 : choice_index(s->choices, d); break;
      case OPT_CLEAR: break;  /* an action, no field of its own */
    }
  }
}

static int parse_number(const opt_spec *s, const char *v, double *out, mskx_err *e) {
  char nm[96], *end;
  errno = 0;
  if (s->type == OPT_INT) {
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end) return err_set(e, MSKX_EINVAL, "%s: '%s' is not an integer", opt_name(s, nm, sizeof nm), v);
    *out = (double)x;
  } else if (s->type == OPT_U64) {
    unsigned long long x = strtoull(v, &end, 10);
    if (!isdigit((unsigned char)v[0]) || errno || *end)
      return err_set(e, MSKX_EINVAL, "%s: '%s' is not an unsigned integer", opt_name(s, nm, sizeof nm), v);
    *out = (double)x;
  } else {
    double x = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(x))
      return err_set(e, MSKX_EINVAL, "%s: '%s' is not a number", opt_name(s, nm, sizeof nm), v);
    *out = x;
  }
  return MSKX_OK;
}

int opt_parse(const opt_spec *s, void *base, const char *value, mskx_err *e) {
  char *p = FIELD(base, s), nm[96];
  if (s->type == OPT_CLEAR) {
    memset(p, 0, s->size);
    return MSKX_OK;
  }
  if (s->type == OPT_BOOL) {
    int b = !value || !strcmp(value, "1") || !strcmp(value, "true");
    if (value && !b && strcmp(value, "0") && strcmp(value, "false"))
      return err_set(e, MSKX_EINVAL, "%s: expected true or false, got '%s'", opt_name(s, nm, sizeof nm), value);
    *(int *)p = b;
    return MSKX_OK;
  }
  if (!value) return err_set(e, MSKX_EINVAL, "%s needs a value", opt_name(s, nm, sizeof nm));
  if (s->word && !strcmp(value, s->word)) {
    *(int *)((char *)base + s->word_off) = 1;
    return MSKX_OK;
  }
  if (s->type == OPT_STRING || s->type == OPT_PATH || s->type == OPT_ENUM) return set_string(s, base, value, e);
  if (s->type == OPT_CHOICE) {
    int k = choice_index(s->choices, value);
    if (k < 0) {
      char ch[256];
      choices_text(s->choices, ch, sizeof ch);
      return err_set(e, MSKX_EINVAL, "%s: expected %s, got '%s'", opt_name(s, nm, sizeof nm), ch, value);
    }
    *(int *)p = k;
    return MSKX_OK;
  }
  double v = 0;
  int rc = parse_number(s, value, &v, e);
  if (rc) return rc;
  if (s->type == OPT_U64) {  /* exact: a double cannot hold every uint64 */
    unsigned long long u = strtoull(value, NULL, 10);
    if (v < s->lo || v > s->hi) return out_of_range(s, v, e);
    *(uint64_t *)p = (uint64_t)u;
    return MSKX_OK;
  }
  if (!(v >= s->lo && v <= s->hi)) return out_of_range(s, v, e);
  if (s->type == OPT_INT)
    *(int *)p = (int)v;  /* within [lo, hi], which an int table row keeps within int's range */
  else if (s->type == OPT_DOUBLE)
    *(double *)p = v;
  else
    *(float *)p = (float)v;
  return MSKX_OK;
}

/* In range, or the default itself (a sentinel such as 0 = all cores, which
 * is not a value to give). */
static int number_ok(const opt_spec *s, double v, mskx_err *e) {
  return (v >= s->lo && v <= s->hi) || v == s->def ? MSKX_OK : out_of_range(s, v, e);
}

/* The number of values of an OPT_ENUM or OPT_CHOICE row. */
static int choice_count(const char *choices) {
  int k = 1;
  for (const char *c = choices; *c; c++) k += *c == '|';
  return k;
}

static int check_one(const opt_spec *s, const void *base, mskx_err *e) {
  const char *p = CFIELD(base, s);
  char nm[96];
  switch (s->type) {
    case OPT_INT: return number_ok(s, *(const int *)p, e);
    case OPT_U64: return number_ok(s, (double)*(const uint64_t *)p, e);
    case OPT_DOUBLE:
    case OPT_FLOAT: {
      double v = s->type == OPT_DOUBLE ? *(const double *)p : *(const float *)p;
      if (isnan(v)) return err_set(e, MSKX_EINVAL, "%s: not a number", opt_name(s, nm, sizeof nm));
      return number_ok(s, s->type == OPT_FLOAT ? (double)(float)v : v, e);
    }
    case OPT_STRING:
    case OPT_PATH:
    case OPT_ENUM: {
      if (memchr(p, 0, s->size) == NULL) return err_set(e, MSKX_EINVAL, "%s: value too long", opt_name(s, nm, sizeof nm));
      if ((s->flags & OPT_REQUIRED) && !p[0]) return err_set(e, MSKX_EINVAL, "%s is required", opt_name(s, nm, sizeof nm));
      return check_string(s, p, e);
    }
    case OPT_CHOICE: {
      int v = *(const int *)p;
      if (v < 0 || v >= choice_count(s->choices))
        return err_set(e, MSKX_EINVAL, "%s: %d is not one of %s", opt_name(s, nm, sizeof nm), v, s->choices);
      return MSKX_OK;
    }
    case OPT_BOOL: {
      int v = *(const int *)p;
      return v == 0 || v == 1 ? MSKX_OK : err_set(e, MSKX_EINVAL, "%s: %d is not 0 or 1", opt_name(s, nm, sizeof nm), v);
    }
    case OPT_CLEAR: return MSKX_OK;
  }
  return MSKX_OK;
}

int opt_check_all(const opt_spec *t, size_t n, const void *base, mskx_err *e) {
  for (size_t i = 0; i < n; i++) {
    int rc = check_one(&t[i], base, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

int opt_to_json(const opt_spec *t, size_t n, const void *base, cJSON *o, mskx_err *e) {
  for (size_t i = 0; i < n; i++) {
    const opt_spec *s = &t[i];
    if (!s->key || (s->flags & OPT_NOT_SAVED) || s->type == OPT_CLEAR) continue;
    const char *p = CFIELD(base, s);
    cJSON *v = NULL;
    char buf[32];
    switch (s->type) {
      case OPT_INT:
      case OPT_CHOICE: v = cJSON_CreateNumber(*(const int *)p); break;
      case OPT_U64:
        snprintf(buf, sizeof buf, "%llu", (unsigned long long)*(const uint64_t *)p);
        v = cJSON_CreateString(buf);
        break;
      case OPT_DOUBLE: v = cJSON_CreateNumber(*(const double *)p); break;
      case OPT_FLOAT: v = cJSON_CreateNumber(*(const float *)p); break;
      case OPT_STRING:
      case OPT_PATH:
      case OPT_ENUM: v = cJSON_CreateString(p); break;
      case OPT_BOOL: v = cJSON_CreateBool(*(const int *)p); break;
      case OPT_CLEAR: break;
    }
    if (!v || !cJSON_AddItemToObject(o, s->key, v)) {
      cJSON_Delete(v);
      return err_set(e, MSKX_ENOMEM, "out of memory");
    }
  }
  return MSKX_OK;
}

static int from_json_one(const opt_spec *s, const cJSON *v, const char *path, void *base, mskx_err *e) {
  char *p = FIELD(base, s);
  const char *k = s->key;
  switch (s->type) {
    case OPT_STRING:
    case OPT_PATH:
    case OPT_ENUM:
      if (!cJSON_IsString(v)) return err_set(e, MSKX_EFORMAT, "%s: '%s' must be a string", path, k);
      if (strlen(v->valuestring) >= s->size) return err_set(e, MSKX_EFORMAT, "%s: '%s' is too long", path, k);
      strcpy(p, v->valuestring);
      return MSKX_OK;
    case OPT_U64: {
      const char *str = cJSON_IsString(v) ? v->valuestring : "";
      char *end = NULL;
      errno = 0;
      unsigned long long u = strtoull(str, &end, 10);
      if (!isdigit((unsigned char)str[0]) || *end || errno == ERANGE)
        return err_set(e, MSKX_EFORMAT, "%s: '%s' must be a string holding an unsigned decimal integer", path, k);
      *(uint64_t *)p = (uint64_t)u;
      return MSKX_OK;
    }
    case OPT_BOOL:
      if (cJSON_IsBool(v)) {
        *(int *)p = cJSON_IsTrue(v);
        return MSKX_OK;
      }
      /* Files written before booleans were booleans hold 0 or 1. */
      if (cJSON_IsNumber(v) && (v->valuedouble == 0 || v->valuedouble == 1)) {
        *(int *)p = v->valuedouble == 1;
        return MSKX_OK;
      }
      return err_set(e, MSKX_EFORMAT, "%s: '%s' must be true or false", path, k);
    case OPT_CLEAR: return MSKX_OK;
    default: break;
  }
  if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
    return err_set(e, MSKX_EFORMAT, "%s: '%s' must be a number", path, k);
  double d = v->valuedouble;
  if (s->type == OPT_INT || s->type == OPT_CHOICE) {
    /* A cast of a double outside int's range is undefined behaviour. */
    if (d != floor(d) || d < INT_MIN || d > INT_MAX)
      return err_set(e, MSKX_EFORMAT, "%s: '%s' must be an integer in int's range", path, k);
    if (s->type == OPT_CHOICE && (d < 0 || d >= choice_count(s->choices)))
      return err_set(e, MSKX_EFORMAT, "%s: '%s' must be the index of one of %s", path, k, s->choices);
    *(int *)p = (int)d;
  } else if (s->type == OPT_DOUBLE) {
    *(double *)p = d;
  } else {
    if (fabs(d) > FLT_MAX) return err_set(e, MSKX_EFORMAT, "%s: '%s' is out of float's range", path, k);
    *(float *)p = (float)d;
  }
  return MSKX_OK;
}

int opt_from_json(const opt_spec *t, size_t n, const cJSON *o, const char *path, void *base, mskx_err *e) {
  for (size_t i = 0; i < n; i++) {
    if (!t[i].key || (t[i].flags & OPT_NOT_SAVED)) continue;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, t[i].key);
    if (!v) continue;  /* keys added later keep their defaults */
    int rc = from_json_one(&t[i], v, path, base, e);
    if (rc) return rc;
  }
  return MSKX_OK;
}

uint64_t opt_fingerprint(const opt_spec *t, size_t n, const void *base, uint64_t h) {
  for (size_t i = 0; i < n; i++) {
    const opt_spec *s = &t[i];
    if ((s->flags & OPT_LOCAL) || s->type == OPT_CLEAR) continue;
    const char *p = CFIELD(base, s);
    char buf[64];
    h = fnv1a_str(h, s->key ? s->key : s->flag);
    h = fnv1a(h, "=", 1);
    switch (s->type) {
      case OPT_STRING:
      case OPT_PATH:
      case OPT_ENUM: h = fnv1a(h, p, strnlen(p, s->size)); break;
      case OPT_INT:
      case OPT_CHOICE:
      case OPT_BOOL: snprintf(buf, sizeof buf, "%d", *(const int *)p); h = fnv1a_str(h, buf); break;
      case OPT_U64: snprintf(buf, sizeof buf, "%llu", (unsigned long long)*(const uint64_t *)p); h = fnv1a_str(h, buf); break;
      case OPT_DOUBLE: snprintf(buf, sizeof buf, "%.17g", *(const double *)p); h = fnv1a_str(h, buf); break;
      case OPT_FLOAT: snprintf(buf, sizeof buf, "%.9g", *(const float *)p); h = fnv1a_str(h, buf); break;
      case OPT_CLEAR: break;
    }
    h = fnv1a(h, ";", 1);
  }
  return h;
}

int opt_default_text(const opt_spec *s, char *buf, size_t n) {
  buf[0] = 0;
  if (s->flags & OPT_HIDE_DEFAULT) return 0;
  switch (s->type) {
    case OPT_INT:
    case OPT_U64:
    case OPT_DOUBLE:
    case OPT_FLOAT:
      snprintf(buf, n, "%.15g", s->def);
      /* A float constant (0.4f) in a double: its shortest text as a float, not 0.400000005960464. */
      if (s->def != floor(s->def) && (double)(float)s->def == s->def)
        for (int digits = 1; digits <= FLT_DECIMAL_DIG; digits++) {
          snprintf(buf, n, "%.*g", digits, s->def);
          if ((float)strtod(buf, NULL) == (float)s->def) break;
        }
      break;
    case OPT_STRING:
    case OPT_PATH:
    case OPT_ENUM:
    case OPT_CHOICE: snprintf(buf, n, "%s", s->def_str ? s->def_str : ""); break;
    case OPT_BOOL:
    case OPT_CLEAR: break;
  }
  return buf[0] != 0;
}

int opt_find(const opt_spec *t, size_t n, const char *name) {
  for (size_t i = 0; i < n; i++)
    if ((t[i].flag && !strcmp(t[i].flag, name)) || (t[i].key && !strcmp(t[i].key, name))) return (int)i;
  return -1;
}
