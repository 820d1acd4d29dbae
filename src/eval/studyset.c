/* Reading prediction and truth CSVs of MURA studies and joining them (see
 * studyset.h). Every message names the file and, for a row, its line. */
#include "eval/studyset.h"
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"
#include "data/parts.h"

/* How many offending studies a message lists before "...". */
#define STUDYSET_LIST_FIRST 3

void studyset_free(study_table *t) {
  if (!t) return;
  for (int i = 0; i < t->n; i++) {
    free(t->rows[i].path);
    free(t->rows[i].part);
    free(t->rows[i].split);
  }
  free(t->rows);
  free(t->file);
  free(t);
}

/* The path component just before the XR_* one, or "" when there is none. */
static char *split_of(const char *path) {
  size_t len;
  const char *at = part_in_path(path, &len);
  if (!at || at == path) return str_dup("");
  const char *end = at - 1, *start = end;
  while (start > path && start[-1] != '/') start--;
  char *s = malloc((size_t)(end - start) + 1);
  if (s) {
    memcpy(s, start, (size_t)(end - start));
    s[end - start] = 0;
  }
  return s;
}

static char *trim(char *s, char *end) {
  while (s < end && isspace((unsigned char)*s)) s++;
  while (end > s && isspace((unsigned char)end[-1])) end--;
  *end = 0;
  return s;
}

static int parse_value(const char *file, int line, const char *v, enum studyset_kind kind, double *out, mskx_err *e) {
  const char *hint = line == 1 ? " (the file must have no header line)" : "";
  if (kind == STUDYSET_TRUTH) {
    if (!strcmp(v, "0") || !strcmp(v, "1")) {
      *out = v[0] - '0';
      return MSKX_OK;
    }
    return err_set(e, MSKX_EFORMAT, "%s:%d: label '%.40s' is not 0 or 1%s", file, line, v, hint);
  }
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  if (end == v || *end) return err_set(e, MSKX_EFORMAT, "%s:%d: value '%.40s' is not a number%s", file, line, v, hint);
  if (isnan(x)) return err_set(e, MSKX_EFORMAT, "%s:%d: value is NaN", file, line);
  if (!(x >= 0.0 && x <= 1.0))
    return err_set(e, MSKX_EFORMAT, "%s:%d: value %.40s is outside [0, 1] (a probability or a 0/1 decision)", file,
                   line, v);
  *out = x;
  return MSKX_OK;
}

/* Parses one non-blank line into row (owning its strings). */
static int parse_line(const char *file, int line, char *s, char *end, enum studyset_kind kind, study_row *row,
                      mskx_err *e) {
  char *comma = NULL;
  for (char *c = s; c < end; c++)
    if (*c == ',') comma = c;
  if (!comma) return err_set(e, MSKX_EFORMAT, "%s:%d: expected 'study_path,%s', found no comma", file, line,
                             kind == STUDYSET_TRUTH ? "label" : "value");
  char *path = trim(s, comma), *val = trim(comma + 1, end);
  if (!*path) return err_set(e, MSKX_EFORMAT, "%s:%d: empty study path", file, line);
  if (!*val) return err_set(e, MSKX_EFORMAT, "%s:%d: missing value after the comma", file, line);
  int rc = parse_value(file, line, val, kind, &row->value, e);
  if (rc) return rc;
  char part[64];
  if (!part_from_path(path, part, sizeof part))
    return err_set(e, MSKX_EFORMAT, "%s:%d: study path '%.200s' has no XR_<PART> component", file, line, path);
  size_t len = strlen(path);
  int slash = path[len - 1] != '/';
  row->line = line;
  row->path = malloc(len + 2);
  row->part = str_dup(part);
  if (row->path) {
    memcpy(row->path, path, len);
    strcpy(row->path + len, slash ? "/" : "");
  }
  row->split = row->path ? split_of(row->path) : NULL;
  if (!row->path || !row->part || !row->split) return err_set(e, MSKX_ENOMEM, "%s:%d: out of memory", file, line);
  return MSKX_OK;
}

static const study_table *cmp_table; /* qsort has no context argument in C11 */
static int cmp_row_path(const void *a, const void *b) {
  const study_row *ra = &cmp_table->rows[*(const int *)a], *rb = &cmp_table->rows[*(const int *)b];
  int c = strcmp(ra->path, rb->path);
  return c ? c : (ra->line > rb->line) - (ra->line < rb->line);
}

/* Row indices sorted by path (then line); malloc'd. */
static int *sorted_index(const study_table *t) {
  int *idx = malloc((size_t)(t->n > 0 ? t->n : 1) * sizeof *idx);
  if (!idx) return NULL;
  for (int i = 0; i < t->n; i++) idx[i] = i;
  cmp_table = t;
  qsort(idx, (size_t)t->n, sizeof *idx, cmp_row_path);
  cmp_table = NULL;
  return idx;
}

static int check_duplicates(const study_table *t, mskx_err *e) {
  int *idx = sorted_index(t);
  if (!idx) return err_set(e, MSKX_ENOMEM, "%s: out of memory", t->file);
  const study_row *first = NULL, *dup = NULL;
  for (int k = 1; k < t->n; k++) {
    const study_row *a = &t->rows[idx[k - 1]], *b = &t->rows[idx[k]];
    if (!strcmp(a->path, b->path) && (!dup || b->line < dup->line)) {
      first = a;
      dup = b;
    }
  }
  free(idx);
  if (dup)
    return err_set(e, MSKX_EFORMAT, "%s:%d: duplicate study '%.200s' (first at line %d)", t->file, dup->line,
                   dup->path, first->line);
  return MSKX_OK;
}

static int parse_text(study_table *t, char *text, size_t len, enum studyset_kind kind, mskx_err *e) {
  if (memchr(text, 0, len)) return err_set(e, MSKX_EFORMAT, "%s: contains NUL bytes (not a text CSV)", t->file);
  int cap = 0, line = 0;
  for (char *s = text, *stop = text + len; s < stop;) {
    char *nl = memchr(s, '\n', (size_t)(stop - s));
    char *end = nl ? nl : stop;
    line++;
    if (end > s && end[-1] == '\r') end--;
    char *c = s;
    while (c < end && isspace((unsigned char)*c)) c++;
    if (c < end) {
      if (t->n == cap) {
        int ncap = cap ? 2 * cap : 1024;
        study_row *r = realloc(t->rows, (size_t)ncap * sizeof *r);
        if (!r) return err_set(e, MSKX_ENOMEM, "%s: out of memory at line %d", t->file, line);
        t->rows = r;
        cap = ncap;
      }
      study_row *row = &t->rows[t->n];
      memset(row, 0, sizeof *row);
      t->n++; /* counted now so that studyset_free releases a half-filled row */
      int rc = parse_line(t->file, line, c, end, kind, row, e);
      if (rc) return rc;
    }
    s = nl ? nl + 1 : stop;
  }
  if (t->n == 0)
    return err_set(e, MSKX_EFORMAT, "%s: no %s (empty file)", t->file, kind == STUDYSET_TRUTH ? "labelled studies" : "predictions");
  return check_duplicates(t, e);
}

int studyset_read(const char *path, enum studyset_kind kind, study_table **out, mskx_err *e) {
  *out = NULL;
  unsigned char *data;
  size_t len;
  int rc = file_read_all(path, STUDYSET_MAX_BYTES, &data, &len, e);
  if (rc) return rc;
  study_table *t = calloc(1, sizeof *t);
  if (!t || !(t->file = str_dup(path))) {
    free(t);
    free(data);
    return err_set(e, MSKX_ENOMEM, "%s: out of memory", path);
  }
  rc = parse_text(t, (char *)data, len, kind, e);
  free(data);
  if (rc) {
    studyset_free(t);
    return rc;
  }
  *out = t;
  return MSKX_OK;
}

bool studyset_all_decisions(const study_table *t) {
  for (int i = 0; i < t->n; i++)
    if (t->rows[i].value != 0.0 && t->rows[i].value != 1.0) return 0;
  return 1;
}

/* Distinct splits of t (up to cap); returns how many, or cap + 1 when more. */
#define SPLIT_CAP 8
static int distinct_splits(const study_table *t, const char **out) {
  int k = 0;
  for (int i = 0; i < t->n; i++) {
    int seen = 0;
    for (int j = 0; j < k && !seen; j++) seen = !strcmp(out[j], t->rows[i].split);
    if (seen) continue;
    if (k == SPLIT_CAP) return SPLIT_CAP + 1;
    out[k++] = t->rows[i].split;
  }
  return k;
}

static void join_names(char *buf, size_t n, const char **s, int k) {
  buf[0] = 0;
  for (int i = 0; i < k; i++)
    snprintf(buf + strlen(buf), n - strlen(buf), "%s'%.40s'", i ? ", " : "", s[i][0] ? s[i] : "(none)");
}

/* A clear message for the common mistake of scoring valid predictions
 * against train labels: the split sets of the two files do not meet. */
static int check_splits(const study_table *pred, const study_table *truth, mskx_err *e) {
  const char *ps[SPLIT_CAP], *ts[SPLIT_CAP];
  int np = distinct_splits(pred, ps), nt = distinct_splits(truth, ts);
  if (np > SPLIT_CAP || nt > SPLIT_CAP) return MSKX_OK;
  for (int i = 0; i < np; i++)
    for (int j = 0; j < nt; j++)
      if (!strcmp(ps[i], ts[j])) return MSKX_OK;
  char a[256], b[256];
  join_names(a, sizeof a, ps, np);
  join_names(b, sizeof b, ts, nt);
  return err_set(e, MSKX_EINVAL,
                 "%s holds predictions for split %s but %s labels split %s: use the truth file of the same split",
                 pred->file, a, truth->file, b);
}

/* Index into truth of path, via idx sorted by path; -1 when absent. */
static int find_row(const study_table *t, const int *idx, const char *path) {
  int lo = 0, hi = t->n - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int c = strcmp(t->rows[idx[mid]].path, path);
    if (c == 0) return idx[mid];
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* Appends "'path' (line L)" to a listing of the first few offenders. */
static void list_add(char *buf, size_t n, int k, const study_row *r) {
  if (k < STUDYSET_LIST_FIRST)
    snprintf(buf + strlen(buf), n - strlen(buf), "%s'%.160s' (line %d)", k ? ", " : "", r->path, r->line);
  else if (k == STUDYSET_LIST_FIRST)
    snprintf(buf + strlen(buf), n - strlen(buf), ", ...");
}

int studyset_join(const study_table *pred, const study_table *truth, int allow_missing, study_pred **out, int *n,
                  int *n_missing, mskx_err *e) {
  *out = NULL;
  *n = 0;
  if (n_missing) *n_missing = 0;
  int rc = check_splits(pred, truth, e);
  if (rc) return rc;
  int *idx = sorted_index(truth);
  unsigned char *used = calloc((size_t)truth->n, 1);
  study_pred *sp = malloc((size_t)pred->n * sizeof *sp);
  if (!idx || !used || !sp) {
    rc = err_set(e, MSKX_ENOMEM, "out of memory joining %s and %s", pred->file, truth->file);
    goto fail;
  }
  char list[700] = "";
  int unknown = 0;
  for (int i = 0; i < pred->n; i++) {
    const study_row *p = &pred->rows[i];
    int j = find_row(truth, idx, p->path);
    if (j < 0) {
      list_add(list, sizeof list, unknown++, p);
      continue;
    }
    used[j] = 1;
    sp[i] = (study_pred){p->path, p->part, p->value, (int)truth->rows[j].value};
  }
  if (unknown) {
    rc = err_set(e, MSKX_EINVAL, "%s: %d of %d predicted studies are not in %s: %s", pred->file, unknown, pred->n,
                 truth->file, list);
    goto fail;
  }
  int missing = 0;
  for (int j = 0; j < truth->n; j++)
    if (!used[j]) list_add(list, sizeof list, missing++, &truth->rows[j]);
  if (missing && !allow_missing) {
    rc = err_set(e, MSKX_ESHAPE, "%s: %d of %d labelled studies have no prediction in %s: %s", truth->file,
                 missing, truth->n, pred->file, list);
    goto fail;
  }
  if (n_missing) *n_missing = missing;
  free(idx);
  free(used);
  *out = sp;
  *n = pred->n;
  return MSKX_OK;
fail:
  free(idx);
  free(used);
  free(sp);
  return rc;
}
