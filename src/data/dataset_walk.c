/* Dataset reader for a MURA folder tree without CSVs:
 * DIR/{train,valid}/XR_<PART>/<patient>/<study>_{positive,negative}/<image>. */
#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "core/util.h"
#include "data/dataset_build.h"
#include "data/parts.h"
#include "data/study_folder.h"

#define DS_PATH_MAX 4096

typedef struct name_list {
  char **names;
  unsigned char *is_dir; /* 1 folder, 0 regular file, 2 something else */
  int n;
} name_list;

static void name_list_free(name_list *l) {
  for (int i = 0; i < l->n; i++) free(l->names[i]);
  free(l->names);
  free(l->is_dir);
  memset(l, 0, sizeof *l);
}

static int cmp_natural(const void *a, const void *b) {
  return ds_natural_cmp(*(char *const *)a, *(char *const *)b);
}

/* The visible entries of a folder in natural order; hidden ones (".*", such as
 * macOS "._image1.png" resource forks) are never part of a dataset. */
static int list_dir(const char *dir, name_list *out, mskx_err *e) {
  memset(out, 0, sizeof *out);
  DIR *dh = opendir(dir);
  if (!dh) return err_set(e, MSKX_EIO, "%s: cannot open folder", dir);
  int cap = 0;
  struct dirent *de;
  while ((de = readdir(dh))) {
    if (de->d_name[0] == '.') continue;
    if (out->n == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(out->names, (size_t)cap * sizeof *nn);
      if (!nn) break;
      out->names = nn;
    }
    if (!(out->names[out->n] = str_dup(de->d_name))) break;
    out->n++;
  }
  int failed = de != NULL;
  closedir(dh);
  if (!failed && out->n) {
    qsort(out->names, (size_t)out->n, sizeof *out->names, cmp_natural);
    out->is_dir = malloc((size_t)out->n);
    failed = !out->is_dir;
  }
  if (failed) {
    name_list_free(out);
    return err_set(e, MSKX_ENOMEM, "%s: out of memory listing the folder", dir);
  }
  char p[DS_PATH_MAX];
  for (int i = 0; i < out->n; i++) {
    struct stat st; /* stat, not d_type: it follows symlinks and works on every filesystem */
    int ok = path_join(p, sizeof p, dir, out->names[i], NULL) == 0 && stat(p, &st) == 0;
    out->is_dir[i] = !ok ? 2 : S_ISDIR(st.st_mode) ? 1 : S_ISREG(st.st_mode) ? 0 : 2;
  }
  return MSKX_OK;
}

typedef struct walk_ctx {
  ds_build *b;
  int split;
  char dir[DS_PATH_MAX]; /* on disk */
  char rel[DS_PATH_MAX]; /* as MURA's CSVs would list it */
} walk_ctx;

static int join2(char *out, const char *a, const char *b) {
  int w = snprintf(out, DS_PATH_MAX, "%s/%s", a, b);
  return w < 0 || w >= DS_PATH_MAX ? -1 : 0;
}

static int walk_study(walk_ctx *c, const char *dir, const char *rel, const char *part, mskx_err *e) {
  name_list l;
  int rc = list_dir(dir, &l, e);
  if (rc) return rc;
  char key[DS_PATH_MAX], ip[DS_PATH_MAX], ir[DS_PATH_MAX];
  snprintf(key, sizeof key, "%s/", rel);
  int label = ds_suffix_label(key), n_img = 0;
  for (int i = 0; i < l.n; i++) n_img += l.is_dir[i] == 0 && ds_is_image_file(dir, l.names[i]);
  if (label < 0) {
    ds_build_error(c->b, MSKX_EFORMAT, "%s: study folder name must end in _positive or _negative", dir);
  } else if (n_img == 0) {
    ds_build_warn(c->b, "%s: study folder has no images; skipped", dir);
  } else {
    int study = ds_build_add_study(c->b, c->split, key, label, part, dir, 0);
    for (int i = 0; study >= 0 && i < l.n; i++) {
      if (l.is_dir[i] != 0 || !ds_is_image_file(dir, l.names[i])) continue;
      if (join2(ip, dir, l.names[i]) || join2(ir, rel, l.names[i])) {
        ds_build_error(c->b, MSKX_EINVAL, "%s/%s: path too long", dir, l.names[i]);
        continue;
      }
      ds_build_add_image(c->b, c->split, ir, ip, study, dir, 0);
    }
  }
  for (int i = 0; i < l.n; i++)
    if (l.is_dir[i] != 0 || !ds_is_image_file(dir, l.names[i]))
      ds_build_warn(c->b, "%s/%s: ignored (not a .png/.jpg/.jpeg/.dcm image)", dir, l.names[i]);
  name_list_free(&l);
  return MSKX_OK;
}

/* Walks one level of folders, calling fn on each subfolder; files are warned about. */
typedef int (*walk_fn)(walk_ctx *c, const char *dir, const char *rel, const char *part, mskx_err *e);

static int walk_level(walk_ctx *c, const char *dir, const char *rel, const char *part, walk_fn fn,
                      const char *what, mskx_err *e) {
  name_list l;
  int rc = list_dir(dir, &l, e);
  if (rc) return rc;
  char sd[DS_PATH_MAX], sr[DS_PATH_MAX];
  for (int i = 0; i < l.n && !rc; i++) {
    if (l.is_dir[i] != 1) {
      ds_build_warn(c->b, "%s/%s: ignored (expected %s folders here)", dir, l.names[i], what);
      continue;
    }
    if (join2(sd, dir, l.names[i]) || join2(sr, rel, l.names[i])) {
      ds_build_error(c->b, MSKX_EINVAL, "%s/%s: path too long", dir, l.names[i]);
      continue;
    }
    rc = fn(c, sd, sr, part ? part : l.names[i], e);
  }
  name_list_free(&l);
  return rc;
}

static int walk_patient(walk_ctx *c, const char *dir, const char *rel, const char *part, mskx_err *e) {
  return walk_level(c, dir, rel, part, walk_study, "study", e);
}

static int walk_part(walk_ctx *c, const char *dir, const char *rel, const char *part, mskx_err *e) {
  const char *base = strrchr(dir, '/');
  base = base ? base + 1 : dir;
  if (!part_has_prefix(base)) {
    ds_build_warn(c->b, "%s: ignored (not an XR_<PART> folder)", dir);
    return MSKX_OK;
  }
  return walk_level(c, dir, rel, part, walk_patient, "patient", e);
}

int ds_read_tree(ds_build *b, const char *dir, mskx_err *e) {
  /* Keys and rel paths start with the folder's own name, as in MURA's CSVs. */
  char real[PATH_MAX], name[DS_PATH_MAX];
  const char *src = realpath(dir, real) ? real : dir;
  size_t n = strlen(src);
  while (n > 1 && src[n - 1] == '/') n--;
  size_t s = n;
  while (s > 0 && src[s - 1] != '/') s--;
  snprintf(name, sizeof name, "%.*s", (int)(n - s), src + s);
  if (!name[0]) snprintf(name, sizeof name, "data");
  for (int k = 0; k < DS_NSPLITS; k++) {
    walk_ctx c = {.b = b, .split = k};
    const char *sp = k == DS_TRAIN ? "train" : "valid";
    if (join2(c.dir, dir, sp) || join2(c.rel, name, sp))
      return err_set(e, MSKX_EINVAL, "%s: path too long", dir);
    if (!path_is_dir(c.dir)) continue;
    int rc = walk_level(&c, c.dir, c.rel, NULL, walk_part, "XR_<PART>", e);
    if (rc) return rc;
  }
  return MSKX_OK;
}
