/* Model files (see model_file.h). */
#include "models/model_file.h"
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/error.h"
#include "core/util.h"

void model_meta_default(model_meta *m) {
  memset(m, 0, sizeof *m);
  m->size = ARCH_PAPER_SIZE;
  m->norm = norm_imagenet();
  strcpy(m->parts, "all");
  m->threshold = MODEL_DEFAULT_THRESHOLD;
  strcpy(m->metrics, "{}");
  m->bn_eps = BN_EPS;
}

int model_bn_eps_read(const st_file *f, const char *path, float *eps, mskx_err *e) {
  *eps = BN_EPS;
  const char *v = st_meta_get(f, "bn_eps");
  if (!v) return MSKX_OK;
  char *end;
  errno = 0;
  double x = strtod(v, &end);
  /* Keras allows any positive epsilon; above 1 it is surely a mistake. */
  if (end == v || *end || errno || !(x > 0 && x <= 1))
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'bn_eps' is invalid: '%s' (expected a number in (0, 1])", path, v);
  *eps = (float)x;
  return MSKX_OK;
}

static int parse_floats3(const char *s, float out[3]) {
  char *end;
  for (int i = 0; i < 3; i++) {
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v)) return 0;
    out[i] = (float)v;
    s = end;
    if (i < 2) {
      if (*s != ',') return 0;
      s++;
    }
  }
  return *s == 0;
}

/* Numeric metadata: absent leaves *out as it is; present must be a whole
 * number in [lo, hi] (an integer for meta_long), else an error naming the file. */
static int meta_long(const st_file *f, const char *path, const char *key, long lo, long hi, long *out, mskx_err *e) {
  const char *v = st_meta_get(f, key);
  mskx_err why = {0};
  if (!v || !parse_long(v, lo, hi, "", out, &why)) return MSKX_OK;
  return err_set(e, MSKX_EFORMAT, "%s: metadata '%s'%s", path, key, why.msg);
}

static int meta_double(const st_file *f, const char *path, const char *key, double lo, double hi, double *out,
                       mskx_err *e) {
  const char *v = st_meta_get(f, key);
  mskx_err why = {0};
  if (!v || !parse_double(v, lo, hi, "", out, &why)) return MSKX_OK;
  return err_set(e, MSKX_EFORMAT, "%s: metadata '%s'%s", path, key, why.msg);
}

int model_meta_read(const st_file *f, const char *path, model_meta *out, mskx_err *e) {
  model_meta_default(out);
  const char *fmt = st_meta_get(f, "format"), *arch = st_meta_get(f, "arch");
  if (!fmt || strcmp(fmt, MODEL_FORMAT))
    return err_set(e, MSKX_EFORMAT, "%s: not an mskx model file (metadata 'format' is %s%s%s, expected '%s')", path,
                   fmt ? "'" : "", fmt ? fmt : "missing", fmt ? "'" : "", MODEL_FORMAT);
  if (!arch) return err_set(e, MSKX_EFORMAT, "%s: metadata 'arch' missing", path);
  if (strlen(arch) >= sizeof out->arch)
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'arch' is %zu characters long, more than the %zu allowed", path,
                   strlen(arch), sizeof out->arch - 1);
  strcpy(out->arch, arch);
  const char *v;
  long l = out->size, ep = 0;
  double thr = out->threshold;
  int rc = meta_long(f, path, "size", MODEL_MIN_SIZE, MODEL_MAX_SIZE, &l, e);
  if (!rc) rc = meta_long(f, path, "epoch", 0, INT_MAX, &ep, e);
  if (!rc) rc = meta_double(f, path, "threshold", 0, 1, &thr, e);
  if (rc) return rc;
  out->size = (int)l;
  out->epoch = (int)ep;
  out->threshold = thr;
  if ((v = st_meta_get(f, "keep_aspect"))) {
    if (strcmp(v, "0") && strcmp(v, "1"))
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'keep_aspect' must be 0 or 1, got '%.64s'", path, v);
    out->keep_aspect = v[0] == '1';
  }
  if ((v = st_meta_get(f, "mean")) && !parse_floats3(v, out->norm.mean))
    return err_set(e, MSKX_EFORMAT, "%s: metadata 'mean' is invalid: '%.64s'", path, v);
  if ((v = st_meta_get(f, "std"))) {
    if (!parse_floats3(v, out->norm.std) || out->norm.std[0] <= 0 || out->norm.std[1] <= 0 || out->norm.std[2] <= 0)
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'std' is invalid: '%.64s'", path, v);
  }
  if ((v = st_meta_get(f, "parts"))) {
    if (strlen(v) >= sizeof out->parts)
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'parts' is %zu characters long, more than the %zu allowed", path,
                     strlen(v), sizeof out->parts - 1);
    strcpy(out->parts, v);
  }
  if ((v = st_meta_get(f, "transform_input"))) {
    if (strcmp(v, "0") && strcmp(v, "1"))
      return err_set(e, MSKX_EFORMAT, "%s: metadata 'transform_input' must be 0 or 1, got '%.64s'", path, v);
    out->transform_input = v[0] == '1';
  }
  /* A JSON object; one too long for the field (mskx writes a few hundred
   * bytes) is dropped rather than cut into invalid JSON: its figures are
   * informative only. */
  if ((v = st_meta_get(f, "metrics")) && strlen(v) < sizeof out->metrics) strcpy(out->metrics, v);
  return model_bn_eps_read(f, path, &out->bn_eps, e);
}

int model_save(const char *path, const net *m, const model_meta *meta, const tensor_ref *extra, int n_extra,
               const st_meta *extra_meta, int n_extra_meta, mskx_err *e) {
  tensor_ref *t = NULL;
  int n = 0;
  int rc = ps_as_tensors(&m->ps, 0, &t, &n, e);
  if (rc) return rc;
  tensor_ref *all = realloc(t, (size_t)(n + n_extra + 1) * sizeof *all);
  if (!all) {
    free(t);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  if (n_extra) memcpy(all + n, extra, (size_t)n_extra * sizeof *all);
  char size[32], ka[8], mean[96], std[96], thr[48], ep[32], eps[32];
  snprintf(size, sizeof size, "%d", meta->size);
  snprintf(ka, sizeof ka, "%d", meta->keep_aspect);
  snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", meta->norm.mean[0], meta->norm.mean[1], meta->norm.mean[2]);
  snprintf(std, sizeof std, "%.9g,%.9g,%.9g", meta->norm.std[0], meta->norm.std[1], meta->norm.std[2]);
  snprintf(thr, sizeof thr, "%.17g", meta->threshold);
  snprintf(ep, sizeof ep, "%d", meta->epoch);
  /* The shortest text that reads back as the same float ("1e-05", not "9.99999975e-06"). */
  float epsv = meta->bn_eps > 0 ? meta->bn_eps : BN_EPS;
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(eps, sizeof eps, "%.*g", prec, epsv);
    if ((float)strtod(eps, NULL) == epsv) break;
  }
  st_meta base[] = {{"format", MODEL_FORMAT}, {"arch", (char *)meta->arch}, {"size", size},
                    {"keep_aspect", ka},      {"mean", mean},                {"std", std},
                    {"parts", (char *)meta->parts}, {"threshold", thr},      {"epoch", ep},
                    {"metrics", (char *)meta->metrics}, {"bn_eps", eps}};
  int nb = (int)(sizeof base / sizeof base[0]);
  st_meta *md = malloc((size_t)(nb + 1 + n_extra_meta) * sizeof *md);
  if (!md) {
    free(all);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  memcpy(md, base, sizeof base);
  /* Read back by net_load_tensors; only the archs that have it write it. */
  if (arch_has_aux(&m->arch)) md[nb++] = (st_meta){(char *)"transform_input", (char *)(m->transform_input ? "1" : "0")};
  if (n_extra_meta) memcpy(md + nb, extra_meta, (size_t)n_extra_meta * sizeof *md);
  rc = st_write(path, all, n + n_extra, md, nb + n_extra_meta, e);
  free(md);
  free(all);
  return rc;
}

int model_load(const char *path, engine *eng, net **out, model_meta *meta, st_file **file, mskx_err *e) {
  *out = NULL;
  if (file) *file = NULL;
  st_file *f = NULL;
  int rc = st_read(path, &f, e);
  if (!rc) rc = model_meta_read(f, path, meta, e);
  net *m = NULL;
  if (!rc) rc = net_create(meta->arch, eng, 0, &m, e);
  if (!rc) m->cx.bn_eps = meta->bn_eps;
  /* A checkpoint's training-state tensors are skipped by the load. */
  if (!rc) rc = net_load_tensors(m, f, path, 0, e);
  if (rc) {
    net_destroy(m);
    st_free(f);
    return rc;
  }
  *out = m;
  if (file)
    *file = f;
  else
    st_free(f);
  return MSKX_OK;
}

int model_set_threshold(const char *path, double threshold, mskx_err *e) {
  if (!(threshold >= 0 && threshold <= 1)) return err_set(e, MSKX_EINVAL, "threshold must be in [0, 1]");
  st_file *f = NULL;
  int rc = st_read(path, &f, e);
  model_meta meta;
  if (!rc) rc = model_meta_read(f, path, &meta, e);
  if (rc) {
    st_free(f);
    return rc;
  }
  char thr[48];
  snprintf(thr, sizeof thr, "%.17g", threshold);
  st_meta *md = malloc((size_t)(f->n_meta + 1) * sizeof *md);
  if (!md) {
    st_free(f);
    return err_set(e, MSKX_ENOMEM, "out of memory");
  }
  int n = 0, found = 0;
  for (int i = 0; i < f->n_meta; i++) {
    md[n] = f->meta[i];
    if (!strcmp(md[n].key, "threshold")) {
      md[n].value = thr;
      found = 1;
    }
    n++;
  }
  if (!found) md[n++] = (st_meta){"threshold", thr};
  tensor_ref *refs = malloc((size_t)(f->n_tensors ? f->n_tensors : 1) * sizeof *refs);
  if (!refs) rc = err_set(e, MSKX_ENOMEM, "out of memory");
  for (int i = 0; !rc && i < f->n_tensors; i++) refs[i] = htensor_ref(&f->tensors[i]);
  if (!rc) rc = st_write(path, refs, f->n_tensors, md, n, e);
  free(refs);
  free(md);
  st_free(f);
  return rc;
}
