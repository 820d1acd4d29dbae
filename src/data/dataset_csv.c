/* Dataset readers for CSV listings: MURA's four header-less CSVs and the
 * generic "image_path,label[,study_id][,part][,split]" CSV (see docs/data.md). */
#include "core/error.h"
#include "core/util.h"
#include "data/dataset_build.h"
#include "data/parts.h"
#include "data/study_folder.h"
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* CSV listings above this size are refused (MURA's largest is ~3 MB). */
#define DS_CSV_MAX_BYTES (512u << 20)
#define DS_CSV_MAX_FIELDS 32
#define DS_PATH_MAX 4096

typedef struct line_iter {
  char *p, *end;
  int line;
  int has_nul;
} line_iter;

static void line_iter_init(line_iter *it, unsigned char *buf, size_t len) {
  it->p = (char *)buf;
  it->end = (char *)buf + len;
  it->line = 0;
  if (len >= 3 && buf[0] == 0xEF && buf[1] == 0xBB && buf[2] == 0xBF) it->p += 3; /* UTF-8 BOM */
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

static char *trim(char *s) {
  while (is_space(*s)) s++;
  size_t n = strlen(s);
  while (n && is_space(s[n - 1])) s[--n] = 0;
  return s;
}

/* The next line, NUL-terminated in place and trimmed; NULL at the end. */
static char *next_line(line_iter *it) {
  if (it->p >= it->end) return NULL;
  char *start = it->p;
  char *nl = memchr(start, '\n', (size_t)(it->end - start));
  char *stop = nl ? nl : it->end;
  it->has_nul = memchr(start, 0, (size_t)(stop - start)) != NULL;
  *stop = 0; /* the buffer from file_read_all has a spare byte at end */
  it->p = stop + 1;
  it->line++;
  return trim(start);
}

/* Splits a CSV line in place (RFC 4180 quoting, no embedded newlines).
 * Returns the number of fields, or -1 for a malformed quote. */
static int split_fields(char *line, char **f, int max) {
  int n = 0;
  char *p = line;
  for (;;) {
    if (n == max) return max + 1;
    while (is_space(*p)) p++;
    if (*p == '"') {
      char *w = ++p, *start = p;
      for (;;) {
        if (!*p) return -1;
        if (*p == '"') {
          if (p[1] == '"') {
            *w++ = '"';
            p += 2;
            continue;
          }
          p++;
          break;
        }
        *w++ = *p++;
      }
      while (is_space(*p)) p++;
      if (*p && *p != ',') return -1;
      char sep = *p;
      *w = 0;
      f[n++] = start;
      if (!sep) return n;
      p++;
    } else {
      char *start = p;
      char *c = strchr(p, ',');
      if (c) *c = 0;
      if (strchr(start, '"')) return -1;
      f[n++] = trim(start);
      if (!c) return n;
      p = c + 1;
    }
  }
}

/* Why a MURA CSV path is unacceptable, or NULL. Listings must stay inside the dataset. */
static const char *bad_rel(const char *rel) {
  if (!*rel) return "empty path";
  if (rel[0] == '/') return "absolute path";
  if (strstr(rel, "//")) return "empty path component";
  for (const char *p = rel; p; p = strchr(p, '/')) {
    if (*p == '/') p++;
    if (!strncmp(p, "..", 2) && (p[2] == '/' || !p[2])) return "'..' leaves the dataset folder";
  }
  return NULL;
}

static int parse_label(const char *s) {
  if (!strcmp(s, "0")) return 0;
  if (!strcmp(s, "1")) return 1;
  return -1;
}

/* How MURA CSV paths ("MURA-v1.1/train/...") map onto the disk: against the
 * parent of the data folder, or into the folder itself when it was renamed or
 * a path starts directly with train/ or valid/. */
typedef struct mura_root {
  char dir[DS_PATH_MAX];    /* the data folder, no trailing slash */
  char parent[DS_PATH_MAX]; /* its parent with a trailing slash, or "" */
  const char *name;         /* its last component */
} mura_root;

static int mura_root_init(mura_root *r, const char *dir, mskx_err *e) {
  if (strlen(dir) >= sizeof r->dir) return err_set(e, MSKX_EINVAL, "%s: path too long", dir);
  strcpy(r->dir, dir);
  size_t n = strlen(r->dir);
  while (n > 1 && r->dir[n - 1] == '/') r->dir[--n] = 0;
  char *slash = strrchr(r->dir, '/');
  if (slash) {
    size_t pl = (size_t)(slash - r->dir) + 1;
    memcpy(r->parent, r->dir, pl);
    r->parent[pl] = 0;
    r->name = slash + 1;
  } else {
    r->parent[0] = 0;
    r->name = r->dir;
  }
  return MSKX_OK;
}

static int mura_resolve(const mura_root *r, const char *rel, char *out, size_t n) {
  const char *slash = strchr(rel, '/');
  size_t first = slash ? (size_t)(slash - rel) : strlen(rel);
  int w;
  if (first == strlen(r->name) && !strncmp(rel, r->name, first))
    w = snprintf(out, n, "%s%s", r->parent, rel);
  else if ((first == 5 && (!strncmp(rel, "train", 5) || !strncmp(rel, "valid", 5))) || !slash)
    w = snprintf(out, n, "%s/%s", r->dir, rel);
  else
    w = snprintf(out, n, "%s/%s", r->dir, slash + 1);
  return w < 0 || (size_t)w >= n ? -1 : 0;
}

static void read_mura_studies(ds_build *b, int split, const char *file, unsigned char *buf, size_t len) {
  line_iter it;
  line_iter_init(&it, buf, len);
  char *line;
  char key[DS_PATH_MAX];
  while ((line = next_line(&it))) {
    if (!*line) continue;
    if (it.has_nul) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: line contains a NUL byte", file, it.line);
      continue;
    }
    char orig[201], *f[3];
    snprintf(orig, sizeof orig, "%s", line);
    int nf = split_fields(line, f, 2);
    if (nf != 2) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: expected 'study_path,label', got '%s'", file, it.line, orig);
      continue;
    }
    int label = parse_label(f[1]);
    if (label < 0) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: label '%.40s' is not 0 or 1", file, it.line, f[1]);
      continue;
    }
    const char *why = bad_rel(f[0]);
    size_t kl = strlen(f[0]);
    if (!why && kl + 2 > sizeof key) why = "path too long";
    if (why) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: %s: '%.200s'", file, it.line, why, f[0]);
      continue;
    }
    snprintf(key, sizeof key, "%s%s", f[0], f[0][kl - 1] == '/' ? "" : "/");
    char part[256];
    if (!part_from_path(key, part, sizeof part)) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: no XR_<PART> folder in study path %.200s", file, it.line, key);
      continue;
    }
    int suffix = ds_suffix_label(key);
    if (suffix >= 0 && suffix != label)
      ds_build_warn(b, "%s:%d: label %d disagrees with the folder name of %s; the CSV label is used", file,
                    it.line, label, key);
    ds_build_add_study(b, split, key, label, part, file, it.line);
  }
}

static void read_mura_images(ds_build *b, int split, const mura_root *r, const char *file,
                             const char *studies_file, unsigned char *buf, size_t len) {
  line_iter it;
  line_iter_init(&it, buf, len);
  char *line;
  char key[DS_PATH_MAX], path[DS_PATH_MAX];
  while ((line = next_line(&it))) {
    if (!*line) continue;
    if (it.has_nul) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: line contains a NUL byte", file, it.line);
      continue;
    }
    if (strchr(line, ',')) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: expected one image path per line, got '%.200s'", file, it.line,
                     line);
      continue;
    }
    const char *why = bad_rel(line);
    if (!why && !ds_is_image_name(line)) why = "not a .png/.jpg/.jpeg/.dcm image";
    const char *slash = strrchr(line, '/');
    if (!why && !slash) why = "image is not inside a study folder";
    if (!why && (size_t)(slash - line) + 2 > sizeof key) why = "path too long";
    if (!why && mura_resolve(r, line, path, sizeof path)) why = "path too long";
    if (why) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: %s: '%.200s'", file, it.line, why, line);
      continue;
    }
    size_t kl = (size_t)(slash - line) + 1;
    memcpy(key, line, kl);
    key[kl] = 0;
    int study = ds_build_find_study(b, split, key);
    if (study < 0) {
      ds_build_error(b, MSKX_EFORMAT, "%s:%d: image %.200s: its study %.200s has no row in %s", file, it.line,
                     line, key, studies_file);
      continue;
    }
    ds_build_add_image(b, split, line, path, study, file, it.line);
  }
}

int ds_read_mura_csv(ds_build *b, const char *dir, mskx_err *e) {
  mura_root r;
  int rc = mura_root_init(&r, dir, e);
  if (rc) return rc;
  for (int k = 0; k < DS_NSPLITS; k++) {
    const char *name = k == DS_TRAIN ? "train" : "valid";
    char sf[DS_PATH_MAX + 64], imf[DS_PATH_MAX + 64];
    snprintf(sf, sizeof sf, "%s/%s_labeled_studies.csv", r.dir, name);
    snprintf(imf, sizeof imf, "%s/%s_image_paths.csv", r.dir, name);
    int hs = path_exists(sf), hi = path_exists(imf);
    if (!hs && !hi) continue; /* an absent split; finish() decides whether it is needed */
    if (hs != hi) {
      ds_build_error(b, MSKX_EIO,
                     "%s: missing (the %s split needs both %s_labeled_studies.csv and %s_image_paths.csv)",
                     hs ? imf : sf, name, name, name);
      continue;
    }
    unsigned char *sb = NULL, *ib = NULL;
    size_t sl, il;
    if ((rc = file_read_all(sf, DS_CSV_MAX_BYTES, &sb, &sl, e)) ||
        (rc = file_read_all(imf, DS_CSV_MAX_BYTES, &ib, &il, e))) {
      free(sb);
      return rc;
    }
    read_mura_studies(b, k, sf, sb, sl);
    read_mura_images(b, k, &r, imf, sf, ib, il);
    free(sb);
    free(ib);
  }
  return MSKX_OK;
}

/* ---- Generic CSV ---- */

enum { COL_IMAGE, COL_LABEL, COL_STUDY, COL_PART, COL_SPLIT, COL_N };

static int parse_split(const char *s, int dflt) {
  if (!*s) return dflt;
  if (!strcasecmp(s, "train")) return DS_TRAIN;
  if (!strcasecmp(s, "valid") || !strcasecmp(s, "val") || !strcasecmp(s, "validation")) return DS_VALID;
  return -1;
}

static int read_header(ds_build *b, const char *file, char *line, int *col, int *nfields) {
  static const char *const names[COL_N] = {"image_path", "label", "study_id", "part", "split"};
  char *f[DS_CSV_MAX_FIELDS];
  int nf = split_fields(line, f, DS_CSV_MAX_FIELDS);
  if (nf < 0 || nf > DS_CSV_MAX_FIELDS) {
    ds_build_error(b, MSKX_EFORMAT, "%s:1: header is not a CSV line of at most %d fields", file,
                   DS_CSV_MAX_FIELDS);
    return -1;
  }
  for (int c = 0; c < COL_N; c++) col[c] = -1;
  for (int i = 0; i < nf; i++) {
    int c = 0;
    while (c < COL_N && strcasecmp(f[i], names[c])) c++;
    if (c == COL_N) {
      ds_build_warn(b, "%s:1: column '%.80s' is not used", file, f[i]);
    } else if (col[c] >= 0) {
      ds_build_error(b, MSKX_EFORMAT, "%s:1: column '%s' appears twice", file, names[c]);
      return -1;
    } else {
      col[c] = i;
    }
  }
  if (col[COL_IMAGE] < 0 || col[COL_LABEL] < 0) {
    ds_build_error(b, MSKX_EFORMAT, "%s:1: header must name the columns image_path and label, got '%.200s'",
                   file, line);
    return -1;
  }
  *nfields = nf;
  return 0;
}

/* Study key of a row: its study_id, else the image's folder (with a trailing
 * slash), else (an image at the top level) the image itself. */
static void study_key(const char *sid, const char *img, char *key, size_t n) {
  if (sid && *sid) {
    snprintf(key, n, "%s", sid);
    return;
  }
  const char *slash = strrchr(img, '/');
  if (!slash) {
    snprintf(key, n, "%s", img);
    return;
  }
  size_t kl = (size_t)(slash - img) + 1;
  if (kl >= n) kl = n - 1;
  memcpy(key, img, kl);
  key[kl] = 0;
}

static void read_generic_row(ds_build *b, const char *file, int line_no, char **f, const int *col,
                             const char *csv_dir) {
  const char *img = f[col[COL_IMAGE]];
  int label = parse_label(f[col[COL_LABEL]]);
  int split = parse_split(col[COL_SPLIT] >= 0 ? f[col[COL_SPLIT]] : "", ds_build_options_generic_split(b));
  if (!*img) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: empty image_path", file, line_no);
    return;
  }
  if (label < 0) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: label '%.40s' is not 0 or 1", file, line_no, f[col[COL_LABEL]]);
    return;
  }
  if (split < 0) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: split '%.40s' is not train or valid", file, line_no,
                   f[col[COL_SPLIT]]);
    return;
  }
  char key[DS_PATH_MAX], path[DS_PATH_MAX], part[256];
  study_key(col[COL_STUDY] >= 0 ? f[col[COL_STUDY]] : NULL, img, key, sizeof key);
  const char *pn = col[COL_PART] >= 0 && *f[col[COL_PART]] ? f[col[COL_PART]]
                   : part_from_path(img, part, sizeof part)    ? part
                                                           : "ALL";
  int w = img[0] == '/' ? snprintf(path, sizeof path, "%s", img)
                        : snprintf(path, sizeof path, "%s/%s", csv_dir, img);
  if (w < 0 || (size_t)w >= sizeof path) {
    ds_build_error(b, MSKX_EFORMAT, "%s:%d: path too long", file, line_no);
    return;
  }
  int study = ds_build_find_study(b, split, key);
  if (study >= 0) {
    int l0 = ds_build_study_label(b, split, study);
    if (l0 != label) {
      ds_build_error(b, MSKX_EFORMAT,
                     "%s:%d: label %d disagrees with label %d of earlier rows of study %.200s", file, line_no,
                     label, l0, key);
      return;
    }
    if (strcmp(ds_build_study_part(b, split, study), pn)) {
      ds_build_error(b, MSKX_EFORMAT,
                     "%s:%d: part %.80s disagrees with part %.80s of earlier rows of study %.200s", file,
                     line_no, pn, ds_build_study_part(b, split, study), key);
      return;
    }
  } else {
    char folder[DS_PATH_MAX];
    study_key(NULL, img, folder, sizeof folder);
    int suffix = strchr(img, '/') ? ds_suffix_label(folder) : -1;
    if (suffix >= 0 && suffix != label)
      ds_build_warn(b, "%s:%d: label %d disagrees with the folder name of %s; the CSV label is used", file,
                    line_no, label, folder);
    study = ds_build_add_study(b, split, key, label, pn, file, line_no);
    if (study < 0) return;
  }
  ds_build_add_image(b, split, img, path, study, file, line_no);
}

int ds_read_generic_csv(ds_build *b, const char *csv, mskx_err *e) {
  unsigned char *buf;
  size_t len;
  int rc = file_read_all(csv, DS_CSV_MAX_BYTES, &buf, &len, e);
  if (rc) return rc;
  char csv_dir[DS_PATH_MAX];
  const char *slash = strrchr(csv, '/');
  if (!slash)
    snprintf(csv_dir, sizeof csv_dir, ".");
  else if (slash == csv)
    snprintf(csv_dir, sizeof csv_dir, "/");
  else
    snprintf(csv_dir, sizeof csv_dir, "%.*s", (int)(slash - csv), csv);
  line_iter it;
  line_iter_init(&it, buf, len);
  char *line = next_line(&it);
  int col[COL_N], nfields = 0;
  if (!line || it.has_nul || !*line) {
    ds_build_error(b, MSKX_EFORMAT,
                   "%s:1: expected a header line 'image_path,label[,study_id][,part][,split]'", csv);
  } else if (!read_header(b, csv, line, col, &nfields)) {
    while ((line = next_line(&it))) {
      if (!*line) continue;
      char *f[DS_CSV_MAX_FIELDS];
      int nf = it.has_nul ? -2 : split_fields(line, f, DS_CSV_MAX_FIELDS);
      if (nf == -2)
        ds_build_error(b, MSKX_EFORMAT, "%s:%d: line contains a NUL byte", csv, it.line);
      else if (nf < 0)
        ds_build_error(b, MSKX_EFORMAT, "%s:%d: malformed quotes in '%.200s'", csv, it.line, line);
      else if (nf != nfields)
        ds_build_error(b, MSKX_EFORMAT, "%s:%d: expected %d fields as in the header, got %d", csv, it.line,
                       nfields, nf > DS_CSV_MAX_FIELDS ? DS_CSV_MAX_FIELDS + 1 : nf);
      else
        read_generic_row(b, csv, it.line, f, col, csv_dir);
    }
  }
  free(buf);
  return MSKX_OK;
}
