/* MURA body-part names (see parts.h). */
#include "data/parts.h"
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool part_has_prefix(const char *name) {
  return !strncmp(name, PART_PREFIX, PART_PREFIX_LEN) && name[PART_PREFIX_LEN] && name[PART_PREFIX_LEN] != '/';
}

const char *part_in_path(const char *path, size_t *len) {
  const char *c = path;
  for (;;) {
    size_t n = strcspn(c, "/");
    if (n > PART_PREFIX_LEN && part_has_prefix(c)) {
      *len = n;
      return c;
    }
    if (!c[n]) return NULL;
    c += n + 1;
  }
}

bool part_from_path(const char *path, char *out, size_t n) {
  size_t len;
  const char *c = part_in_path(path, &len);
  if (!c || len >= n) return false;
  memcpy(out, c, len);
  out[len] = 0;
  return true;
}

bool part_canonical(const char *in, char out[PART_NAME_MAX]) {
  char tmp[PART_NAME_MAX + PART_PREFIX_LEN];
  size_t len = strlen(in), pre = strncasecmp(in, PART_PREFIX, PART_PREFIX_LEN) ? PART_PREFIX_LEN : 0;
  if (len == 0 || len + pre >= PART_NAME_MAX) return false;
  snprintf(tmp, sizeof tmp, "%s%s", pre ? PART_PREFIX : "", in);
  for (size_t i = 0; tmp[i]; i++) {
    unsigned char c = (unsigned char)tmp[i];
    if (!isalnum(c) && c != '_') return false;
    out[i] = (char)toupper(c);
    out[i + 1] = 0;
  }
  return true;
}

bool part_name_matches(const char *part, const char *name) {
  return !strcasecmp(part, name) ||
         (!strncmp(part, PART_PREFIX, PART_PREFIX_LEN) && !strcasecmp(part + PART_PREFIX_LEN, name));
}
