/* Image files of a study: which names are images, the natural order of names,
 * and the listing of one study folder (see study_folder.h). */
#include "data/study_folder.h"
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "core/error.h"
#include "core/util.h"

bool ds_is_image_name(const char *name) {
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (base[0] == '.' || !base[0]) return false;
  const char *dot = strrchr(base, '.');
  if (!dot || dot == base) return false;
  return !strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") ||
         !strcasecmp(dot, ".dcm") || !strcasecmp(dot, ".dicom");
}

bool ds_is_image_file(const char *dir, const char *name) {
  if (ds_is_image_name(name)) return true;
  const char *base = strrchr(name, '/');
  base = base ? base + 1 : name;
  if (base[0] == '.' || !base[0] || strchr(base, '.')) return false;
  char path[STUDY_PATH_MAX];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return false;
  FILE *f = fopen(path, "rb");
  if (!f) return false;
  unsigned char head[132];
  size_t n = fread(head, 1, sizeof head, f);
  fclose(f);
  return n == sizeof head && !memcmp(head + 128, "DICM", 4);
}

/* Orders digit runs by value, so image2 < image10 and patient9 < patient10. */
int ds_natural_cmp(const char *a, const char *b) {
  while (*a && *b) {
    if (isdigit((unsigned char)*a) && isdigit((unsigned char)*b)) {
      while (*a == '0' && isdigit((unsigned char)a[1])) a++;
      while (*b == '0' && isdigit((unsigned char)b[1])) b++;
      size_t la = 0, lb = 0;
      while (isdigit((unsigned char)a[la])) la++;
      while (isdigit((unsigned char)b[lb])) lb++;
      if (la != lb) return la < lb ? -1 : 1;
      int c = strncmp(a, b, la);
      if (c) return c;
      a += la;
      b += lb;
      continue;
    }
    if (*a != *b) return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
    a++;
    b++;
  }
  return (unsigned char)*a - (unsigned char)*b;
}

static int natural_sort(const void *a, const void *b) {
  return ds_natural_cmp(*(char *const *)a, *(char *const *)b);
}

void study_folder_list_free(char **paths, int n) {
  for (int i = 0; paths && i < n; i++) free(paths[i]);
  free(paths);
}

/* Appends a copy of path to the growing list. */
static int list_push(char ***v, int *n, int *cap, const char *path, mskx_err *e) {
  if (*n == *cap) {
    int c = *cap ? 2 * *cap : 8;
    char **g = realloc(*v, (size_t)c * sizeof *g);
    if (!g) return err_set(e, MSKX_ENOMEM, "out of memory");
    *v = g;
    *cap = c;
  }
  if (!((*v)[*n] = str_dup(path))) return err_set(e, MSKX_ENOMEM, "out of memory");
  (*n)++;
  return MSKX_OK;
}

int study_folder_list(const char *path, char ***out, int *n, mskx_err *e) {
  *out = NULL;
  *n = 0;
  int cap = 0, rc = MSKX_OK;
  if (!path_is_dir(path)) {
    if (!path_exists(path)) return err_set(e, MSKX_EIO, "%s: no such file or folder", path);
    rc = list_push(out, n, &cap, path, e);
  } else {
    DIR *d = opendir(path);
    if (!d) return err_set(e, MSKX_EIO, "%s: cannot open folder", path);
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
      char full[STUDY_PATH_MAX];
      if (!ds_is_image_file(path, de->d_name)) continue;
      if ((rc = path_join(full, sizeof full, path, de->d_name, e))) break;
      if (!path_is_dir(full)) rc = list_push(out, n, &cap, full, e);
    }
    closedir(d);
    if (!rc && *n == 0) rc = err_set(e, MSKX_EINVAL, "%s: no .png/.jpg/.jpeg/.dcm images in the folder", path);
  }
  if (rc) {
    study_folder_list_free(*out, *n);
    *out = NULL;
    *n = 0;
    return rc;
  }
  qsort(*out, (size_t)*n, sizeof **out, natural_sort);
  return MSKX_OK;
}
