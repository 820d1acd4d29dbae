/* The dataset builder (see dataset_build.h): what the readers fill, the
 * checks that need the whole listing, assembly into a dataset and layout
 * detection. */
#include "data/dataset_build.h"
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/error.h"
#include "core/util.h"
#include "data/parts.h"

/* Missing files named in the error message before "...". */
#define DS_MISSING_SHOWN 3

/* Open-addressing map from borrowed strings to ints (study and image keys;
 * MURA has ~40k images, so lookups must not be linear). */
typedef struct strmap {
  const char **keys;
  int *vals;
  size_t cap, n;
} strmap;

static uint64_t str_hash(const char *s) {
  return fnv1a_str(FNV1A_INIT, s);
}

static int strmap_grow(strmap *m) {
  size_t cap = m->cap ? m->cap * 2 : 256;
  const char **keys = calloc(cap, sizeof *keys);
  int *vals = malloc(cap * sizeof *vals);
  if (!keys || !vals) {
    free(keys);
    free(vals);
    return -1;
  }
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->keys[i]) continue;
    size_t j = str_hash(m->keys[i]) & (cap - 1);
    while (keys[j]) j = (j + 1) & (cap - 1);
    keys[j] = m->keys[i];
    vals[j] = m->vals[i];
  }
  free(m->keys);
  free(m->vals);
  m->keys = keys;
  m->vals = vals;
  m->cap = cap;
  return 0;
}

static int strmap_get(const strmap *m, const char *key) {
  if (!m->cap) return -1;
  for (size_t j = str_hash(key) & (m->cap - 1); m->keys[j]; j = (j + 1) & (m->cap - 1))
    if (!strcmp(m->keys[j], key)) return m->vals[j];
  return -1;
}

/* Inserts key (borrowed; must outlive the map). Returns -1 on allocation failure. */
static int strmap_put(strmap *m, const char *key, int val) {
  if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return -1;
  size_t j = str_hash(key) & (m->cap - 1);
  while (m->keys[j]) j = (j + 1) & (m->cap - 1);
  m->keys[j] = key;
  m->vals[j] = val;
  m->n++;
  return 0;
}

static void strmap_free(strmap *m) {
  free(m->keys);
  free(m->vals);
  memset(m, 0, sizeof *m);
}

/* ---- Builder ---- */

typedef struct build_split {
  ds_study *st;
  char **st_part;
  int *st_line, *st_src;
  int n_st, cap_st;
  ds_image *im;
  int *im_line, *im_src;
  int n_im, cap_im;
  strmap st_map, im_map;
} build_split;

#define DS_MAX_SOURCES 16

struct ds_build {
  dataset_options opt;
  build_split sp[DS_NSPLITS];
  char *srcs[DS_MAX_SOURCES];
  int n_srcs;
  int n_errors, err_code;
  char err_msg[sizeof(((mskx_err *)0)->msg)];
  char **warn;
  int n_warn, n_warn_msgs;
};

void ds_build_error(ds_build *b, int code, const char *fmt, ...) {
  if (b->n_errors++ == 0) {
    b->err_code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err_msg, sizeof b->err_msg, fmt, ap);
    va_end(ap);
  }
}

void ds_build_warn(ds_build *b, const char *fmt, ...) {
  if (b->n_warn_msgs < b->opt.max_warnings) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char *s = str_dup(msg);
    if (s) b->warn[b->n_warn_msgs++] = s;
  }
  b->n_warn++;
}

bool ds_build_failed(const ds_build *b) { return b->n_errors > 0; }
int ds_build_options_generic_split(const ds_build *b) { return b->opt.generic_split; }

static int src_index(ds_build *b, const char *src) {
  for (int i = 0; i < b->n_srcs; i++)
    if (!strcmp(b->srcs[i], src)) return i;
  if (b->n_srcs == DS_MAX_SOURCES) return 0;
  char *s = str_dup(src);
  if (!s) return 0;
  b->srcs[b->n_srcs] = s;
  return b->n_srcs++;
}

/* Grows the parallel arrays of one kind (studies or images) to hold one more. */
static int grow_arrays(void **base, size_t elem, int **a, int **c, int n, int *cap) {
  if (n < *cap) return 0;
  int nc = *cap ? *cap * 2 : 64;
  void *nb = realloc(*base, (size_t)nc * elem);
  if (!nb) return -1;
  *base = nb;
  int *na = realloc(*a, (size_t)nc * sizeof(int));
  if (!na) return -1;
  *a = na;
  int *ncc = realloc(*c, (size_t)nc * sizeof(int));
  if (!ncc) return -1;
  *c = ncc;
  *cap = nc;
  return 0;
}

/* The number of a "patient<digits>" component, -1 if there is none. */
static int patient_number(const char *path) {
  const char *p = path;
  while ((p = strstr(p, "patient"))) {
    int at_start = p == path || p[-1] == '/';
    const char *q = p + 7;
    long v = 0;
    int nd = 0;
    while (isdigit((unsigned char)*q) && nd < 9) v = v * 10 + (*q++ - '0'), nd++;
    if (at_start && nd > 0 && (*q == '/' || *q == 0)) return (int)v;
    p += 7;
  }
  return -1;
}

int ds_build_add_study(ds_build *b, int split, const char *key, int label, const char *part_name,
                       const char *src, int line) {
  build_split *s = &b->sp[split];
  int prev = strmap_get(&s->st_map, key);
  if (prev >= 0) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: duplicate study %s (first listed at %s:%d)", src, line, key,
                   b->srcs[s->st_src[prev]], s->st_line[prev]);
    return -1;
  }
  int cap = s->cap_st;
  if (grow_arrays((void **)&s->st, sizeof *s->st, &s->st_line, &s->st_src, s->n_st, &s->cap_st)) goto oom;
  if (cap != s->cap_st) {
    char **np = realloc(s->st_part, (size_t)s->cap_st * sizeof *np);
    if (!np) goto oom;
    s->st_part = np;
  }
  char xr[256];
  const char *pn = part_name ? part_name : part_from_path(key, xr, sizeof xr) ? xr : "ALL";
  ds_study *st = &s->st[s->n_st];
  memset(st, 0, sizeof *st);
  st->path = str_dup(key);
  s->st_part[s->n_st] = str_dup(pn);
  if (!st->path || !s->st_part[s->n_st]) {
    free(st->path);
    free(s->st_part[s->n_st]);
    goto oom;
  }
  st->label = label;
  st->patient = patient_number(key);
  s->st_line[s->n_st] = line;
  s->st_src[s->n_st] = src_index(b, src);
  if (strmap_put(&s->st_map, st->path, s->n_st)) {
    free(st->path);
    free(s->st_part[s->n_st]);
    goto oom;
  }
  return s->n_st++;
oom:
  ds_build_error(b, MSKX_ENOMEM, "%s:%d: out of memory", src, line);
  return -1;
}

int ds_build_find_study(const ds_build *b, int split, const char *key) {
  return strmap_get(&b->sp[split].st_map, key);
}

int ds_build_study_label(const ds_build *b, int split, int study) { return b->sp[split].st[study].label; }
const char *ds_build_study_part(const ds_build *b, int split, int study) {
  return b->sp[split].st_part[study];
}

int ds_build_add_image(ds_build *b, int split, const char *rel, const char *path, int study, const char *src,
                       int line) {
  build_split *s = &b->sp[split];
  int prev = strmap_get(&s->im_map, rel);
  if (prev >= 0) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: duplicate image %s (first listed at %s:%d)", src, line, rel,
                   b->srcs[s->im_src[prev]], s->im_line[prev]);
    return -1;
  }
  if (grow_arrays((void **)&s->im, sizeof *s->im, &s->im_line, &s->im_src, s->n_im, &s->cap_im)) goto oom;
  ds_image *im = &s->im[s->n_im];
  im->rel = str_dup(rel);
  im->path = str_dup(path);
  im->study = study;
  if (!im->rel || !im->path || strmap_put(&s->im_map, im->rel, s->n_im)) {
    free(im->rel);
    free(im->path);
    goto oom;
  }
  s->im_line[s->n_im] = line;
  s->im_src[s->n_im] = src_index(b, src);
  s->st[study].n_images++;
  s->n_im++;
  return 0;
oom:
  ds_build_error(b, MSKX_ENOMEM, "%s:%d: out of memory", src, line);
  return -1;
}

static void build_free(ds_build *b) {
  for (int k = 0; k < DS_NSPLITS; k++) {
    build_split *s = &b->sp[k];
    for (int i = 0; i < s->n_st; i++) {
      free(s->st[i].path);
      free(s->st_part[i]);
    }
    for (int i = 0; i < s->n_im; i++) {
      free(s->im[i].path);
      free(s->im[i].rel);
    }
    free(s->st);
    free(s->st_part);
    free(s->st_line);
    free(s->st_src);
    free(s->im);
    free(s->im_line);
    free(s->im_src);
    strmap_free(&s->st_map);
    strmap_free(&s->im_map);
  }
  for (int i = 0; i < b->n_srcs; i++) free(b->srcs[i]);
  for (int i = 0; i < b->n_warn_msgs; i++) free(b->warn[i]);
  free(b->warn);
}

/* ---- Checks over the whole listing ---- */

static const char *split_name(int k) { return k == DS_TRAIN ? "train" : "valid"; }

static void check_studies_have_images(ds_build *b) {
  for (int k = 0; k < DS_NSPLITS; k++) {
    build_split *s = &b->sp[k];
    for (int i = 0; i < s->n_st; i++)
      if (s->st[i].n_images == 0)
        ds_build_error(b, MSKX_EFORMAT, "%s:%d: study %s has no images", b->srcs[s->st_src[i]], s->st_line[i],
                       s->st[i].path);
  }
}

/* A study or image in both splits would leak training data into validation. */
static void check_split_overlap(ds_build *b) {
  build_split *t = &b->sp[DS_TRAIN], *v = &b->sp[DS_VALID];
  for (int i = 0; i < v->n_st; i++) {
    int j = strmap_get(&t->st_map, v->st[i].path);
    if (j >= 0)
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: study %s is also in the train split (%s:%d)",
                     b->srcs[v->st_src[i]], v->st_line[i], v->st[i].path, b->srcs[t->st_src[j]],
                     t->st_line[j]);
  }
  for (int i = 0; i < v->n_im; i++) {
    int j = strmap_get(&t->im_map, v->im[i].rel);
    if (j >= 0)
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: image %s is also in the train split (%s:%d)",
                     b->srcs[v->im_src[i]], v->im_line[i], v->im[i].rel, b->srcs[t->im_src[j]],
                     t->im_line[j]);
  }
  /* Patients shared between splits: allowed (a generic CSV may do so), but worth a warning. */
  int max_p = -1;
  for (int k = 0; k < DS_NSPLITS; k++)
    for (int i = 0; i < b->sp[k].n_st; i++)
      if (b->sp[k].st[i].patient > max_p) max_p = b->sp[k].st[i].patient;
  if (max_p < 0 || max_p > 100000000) return;
  unsigned char *seen = calloc((size_t)max_p + 1, 1);
  if (!seen) return;
  for (int i = 0; i < t->n_st; i++)
    if (t->st[i].patient >= 0) seen[t->st[i].patient] = 1;
  int shared = 0, example = -1;
  for (int i = 0; i < v->n_st; i++) {
    int p = v->st[i].patient;
    if (p >= 0 && seen[p] == 1) {
      seen[p] = 2;
      if (shared++ == 0) example = p;
    }
  }
  free(seen);
  if (shared)
    ds_build_warn(b, "%d patients have studies in both train and valid (e.g. patient%05d)", shared, example);
}

static void check_files_exist(ds_build *b) {
  for (int k = 0; k < DS_NSPLITS; k++) {
    build_split *s = &b->sp[k];
    int missing = 0;
    char shown[900] = "";
    size_t used = 0;
    for (int i = 0; i < s->n_im; i++) {
      struct stat st;
      if (stat(s->im[i].path, &st) == 0 && S_ISREG(st.st_mode)) continue;
      if (missing++ < DS_MISSING_SHOWN && used < sizeof shown) {
        int w = snprintf(shown + used, sizeof shown - used, "%s%s:%d %s", used ? ", " : "",
                         b->srcs[s->im_src[i]], s->im_line[i], s->im[i].path);
        if (w > 0) used += (size_t)w;
      }
    }
    if (missing)
      ds_build_error(b, MSKX_EIO, "%s split: %d of %d listed images are missing on disk: %s%s", split_name(k),
                     missing, s->n_im, shown, missing > DS_MISSING_SHOWN ? ", ..." : "");
  }
}

static void check_nonempty(ds_build *b) {
  int need[DS_NSPLITS] = {b->opt.require_train, b->opt.require_valid};
  for (int k = 0; k < DS_NSPLITS; k++)
    if (need[k] && b->sp[k].n_im == 0)
      ds_build_error(b, MSKX_EFORMAT, "the %s split is empty: no studies with images", split_name(k));
  if (b->sp[DS_TRAIN].n_im == 0 && b->sp[DS_VALID].n_im == 0)
    ds_build_error(b, MSKX_EFORMAT, "no images found in either split");
}

/* ---- Assembly ---- */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int collect_parts(ds_build *b, dataset *d) {
  int total = b->sp[0].n_st + b->sp[1].n_st;
  char **all = malloc((size_t)(total ? total : 1) * sizeof *all);
  if (!all) return -1;
  int n = 0;
  for (int k = 0; k < DS_NSPLITS; k++)
    for (int i = 0; i < b->sp[k].n_st; i++) all[n++] = b->sp[k].st_part[i];
  qsort(all, (size_t)n, sizeof *all, cmp_str);
  d->parts = malloc((size_t)(n ? n : 1) * sizeof *d->parts);
  if (!d->parts) {
    free(all);
    return -1;
  }
  for (int i = 0; i < n; i++) {
    if (d->n_parts && !strcmp(d->parts[d->n_parts - 1], all[i])) continue;
    if (!(d->parts[d->n_parts] = str_dup(all[i]))) {
      free(all);
      return -1;
    }
    d->n_parts++;
  }
  free(all);
  for (int k = 0; k < DS_NSPLITS; k++)
    for (int i = 0; i < b->sp[k].n_st; i++) {
      char *const key = b->sp[k].st_part[i];
      char **hit = bsearch(&key, d->parts, (size_t)d->n_parts, sizeof *d->parts, cmp_str);
      b->sp[k].st[i].part = (int)(hit - d->parts);
    }
  return 0;
}

/* Moves a split's studies and images into out, images grouped by study in
 * listing order (a stable counting sort by study index). */
static int assemble_split(build_split *s, ds_split *out) {
  ds_image *im = malloc((size_t)(s->n_im ? s->n_im : 1) * sizeof *im);
  int *next = malloc((size_t)(s->n_st ? s->n_st : 1) * sizeof *next);
  if (!im || !next) {
    free(im);
    free(next);
    return -1;
  }
  int at = 0;
  for (int i = 0; i < s->n_st; i++) {
    s->st[i].first_image = at;
    next[i] = at;
    at += s->st[i].n_images;
  }
  for (int i = 0; i < s->n_im; i++) {
    ds_image x = s->im[i];
    ds_study *st = &s->st[x.study];
    x.label = st->label;
    x.part = st->part;
    im[next[x.study]++] = x;
  }
  free(next);
  free(s->im);
  s->im = NULL;
  out->images = im;
  out->n_images = s->n_im;
  s->n_im = 0;
  out->studies = s->st;
  out->n_studies = s->n_st;
  s->st = NULL;
  for (int i = 0; i < s->n_st; i++) free(s->st_part[i]);
  s->n_st = 0;
  return 0;
}

static int finish(ds_build *b, dataset *d, mskx_err *e) {
  if (!ds_build_failed(b)) {
    check_studies_have_images(b);
    check_split_overlap(b);
  }
  if (!ds_build_failed(b) && !b->opt.skip_file_check) check_files_exist(b);
  if (!ds_build_failed(b)) check_nonempty(b);
  if (ds_build_failed(b)) {
    if (b->n_errors > 1)
      return err_set(e, b->err_code, "%s (and %d more error%s)", b->err_msg, b->n_errors - 1,
                     b->n_errors > 2 ? "s" : "");
    return err_set(e, b->err_code, "%s", b->err_msg);
  }
  if (collect_parts(b, d)) return err_set(e, MSKX_ENOMEM, "%s: out of memory while indexing the dataset", d->root);
  if (d->n_parts > DS_MAX_PARTS)
    return err_set(e, MSKX_ELIMIT, "%s: %d body parts; at most %d are supported (a part set is a 64-bit mask)",
                   d->root, d->n_parts, DS_MAX_PARTS);
  if (assemble_split(&b->sp[DS_TRAIN], &d->train) || assemble_split(&b->sp[DS_VALID], &d->valid))
    return err_set(e, MSKX_ENOMEM, "%s: out of memory while indexing the dataset", d->root);
  d->warnings = b->warn;
  d->n_warning_msgs = b->n_warn_msgs;
  d->n_warnings = b->n_warn;
  b->warn = NULL;
  b->n_warn_msgs = 0;
  return MSKX_OK;
}


static bool has_file(const char *dir, const char *name) {
  char p[4096];
  struct stat st;
  return path_join(p, sizeof p, dir, name, NULL) == 0 && stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static bool has_dir(const char *dir, const char *name) {
  char p[4096];
  return path_join(p, sizeof p, dir, name, NULL) == 0 && path_is_dir(p);
}

/* Picks the reader for path; may descend once into a MURA-v1.1 subfolder. */
static int read_any(ds_build *b, dataset *d, const char *path, mskx_err *e) {
  struct stat st;
  if (stat(path, &st) != 0) return err_set(e, MSKX_EIO, "%s: no such file or folder", path);
  if (S_ISREG(st.st_mode)) {
    d->layout = DS_LAYOUT_GENERIC_CSV;
    return ds_read_generic_csv(b, path, e);
  }
  if (!S_ISDIR(st.st_mode)) return err_set(e, MSKX_EIO, "%s: not a folder or CSV file", path);
  static const char *const csvs[] = {"train_labeled_studies.csv", "valid_labeled_studies.csv",
                                     "train_image_paths.csv", "valid_image_paths.csv"};
  for (int i = 0; i < 4; i++)
    if (has_file(path, csvs[i])) {
      d->layout = DS_LAYOUT_MURA_CSV;
      return ds_read_mura_csv(b, path, e);
    }
  if (has_dir(path, "train") || has_dir(path, "valid")) {
    d->layout = DS_LAYOUT_TREE;
    return ds_read_tree(b, path, e);
  }
  if (has_dir(path, "MURA-v1.1")) {
    char sub[4096];
    if (path_join(sub, sizeof sub, path, "MURA-v1.1", e)) return e->code;
    free(d->root);
    if (!(d->root = str_dup(sub))) return err_set(e, MSKX_ENOMEM, "out of memory");
    return read_any(b, d, sub, e);
  }
  return err_set(e, MSKX_EFORMAT,
                 "%s: not a MURA dataset folder: none of train_labeled_studies.csv, "
                 "valid_labeled_studies.csv, train/, valid/ or MURA-v1.1/ is there",
                 path);
}

int ds_build_dataset(const char *path, const dataset_options *opt, dataset *d, mskx_err *e) {
  ds_build *b = calloc(1, sizeof *b);
  if (!b) return err_set(e, MSKX_ENOMEM, "out of memory");
  if (opt)
    b->opt = *opt;
  else
    b->opt.generic_split = DS_VALID;
  if (b->opt.generic_split != DS_TRAIN) b->opt.generic_split = DS_VALID;
  if (b->opt.max_warnings <= 0) b->opt.max_warnings = DS_DEFAULT_MAX_WARNINGS;
  b->warn = calloc((size_t)b->opt.max_warnings, sizeof *b->warn);
  int rc = b->warn ? MSKX_OK : err_set(e, MSKX_ENOMEM, "out of memory");
  if (!rc) rc = read_any(b, d, path, e);
  if (!rc) rc = finish(b, d, e);
  build_free(b);
  free(b);
  return rc;
}

/* ---- Helpers shared by the readers ---- */

int ds_suffix_label(const char *study_dir) {
  size_t n = strlen(study_dir);
  while (n && study_dir[n - 1] == '/') n--;
  if (n >= 9 && !strncmp(study_dir + n - 9, "_positive", 9)) return 1;
  if (n >= 9 && !strncmp(study_dir + n - 9, "_negative", 9)) return 0;
  return -1;
}
